//! #16 follow-ups: compare of `--as-text` copies, and small findings of a user trial
//! (reject counts of a stopped run, part counts with `--table`, messages, `plan`'s exit).

use crate::common::{ferry, fixture};
use crate::servers::{PgDb, psql};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = ferry().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// PostgreSQL arrays and intervals loaded with `--as-text` into SQLite compare equal with
/// their source, and a changed element is still a difference named by column and key.
#[test]
fn an_as_text_copy_of_arrays_and_intervals_compares_equal_and_a_change_is_named() {
    let Some(pg) = PgDb::new("fix16_astext") else {
        return;
    };
    psql(
        &pg.url,
        r#"CREATE TABLE t (id int PRIMARY KEY, tags text[], n int[], span interval,
               wide numeric(60,20));
           INSERT INTO t VALUES
             (1, ARRAY['a b', NULL, '', 'quote"d', 'NULL'], ARRAY[1, NULL, 3],
              interval '-10 mons -3 days +04:05:06.789', 1.5),
             (2, NULL, '{}', NULL, NULL),
             (3, ARRAY['x,y', '{z}'], ARRAY[-7], interval '1 year', -123456789012345678901234567890.5);"#,
    );
    let fx = fixture();
    let bundle = fx.path("b");
    fx.export_to(&pg.url, &bundle, &["--table", "t"]);
    let lite = fx.path("t.db");
    let lite_url = format!("sqlite://{}", lite.display());
    fx.import_to(&bundle, &lite_url, &["--as-text"]);
    let (code, out, err) = run(&["compare", &pg.url, &lite_url, "--table", "t"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("equal"), "{out}");
    // The bundle against the copy, too.
    let (code, out, err) = run(&[
        "compare",
        bundle.to_str().unwrap(),
        &lite_url,
        "--key-file",
        fx.key.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // One element changed: named with its column and key, the other columns still agree.
    rusqlite::Connection::open(&lite)
        .unwrap()
        .execute("UPDATE t SET tags = '{x,\"{z}\"}' WHERE id = 3", [])
        .unwrap();
    let (code, out, err) = run(&["compare", &pg.url, &lite_url, "--table", "t"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("values differ in [tags]") && out.contains("id=3 changed [tags]"),
        "{out}"
    );
}
