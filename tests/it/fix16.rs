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

/// A source `t (id, v = id, pad)` of 2000 rows in three 1 MiB parts and a one-part `u`,
/// exported; and a SQLite target whose `t` refuses `v % 10 = 0`.
fn checked_bundle(fx: &crate::common::Fixture) -> (std::path::PathBuf, String) {
    let src = fx.path("f16-src.db");
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, pad BLOB);
             WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 2000)
               INSERT INTO t SELECT x, x, randomblob(1400) FROM n;
             CREATE TABLE u (id INTEGER PRIMARY KEY); INSERT INTO u VALUES (1);",
        )
        .unwrap();
    let bundle = fx.path("f16-bundle");
    fx.export_to(
        &format!("sqlite://{}", src.display()),
        &bundle,
        &["--max-part-size", "1MiB", "--batch-rows", "250"],
    );
    let dst = fx.path("f16-dst.db");
    rusqlite::Connection::open(&dst)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL CHECK (v % 10 <> 0), pad BLOB)",
        )
        .unwrap();
    (bundle, format!("sqlite://{}", dst.display()))
}

/// A run stopped by `--max-errors` counts the rows refused in the part it rolled back
/// (apart from E, which is over what the ledger holds), and with `--table` its part counts
/// are the selected table's, not the bundle's.
#[test]
fn a_stopped_skip_run_counts_its_refused_rows_and_the_selected_tables_parts() {
    let fx = fixture();
    let (bundle, dst) = checked_bundle(&fx);
    let all_parts = crate::common::manifest(&bundle)["parts"]
        .as_array()
        .unwrap()
        .len();
    let t_parts = all_parts - 1;
    assert!(t_parts >= 3, "{all_parts}");
    let args = [
        "--json",
        "import",
        bundle.to_str().unwrap(),
        &dst,
        "--key-file",
        fx.key.to_str().unwrap(),
        "--mode",
        "append",
        "--on-error",
        "skip",
        "--max-errors",
        "5",
        "--table",
        "t",
    ];
    let (code, out, err) = run(&args);
    assert_eq!(code, 65, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The first part's 6th refused row (v = 60) goes over 5: the part rolls back.
    assert_eq!(v["errors"]["rows_rejected"], 0, "{v}");
    assert_eq!(v["errors"]["rows_rejected_rolled_back"], 6, "{v}");
    assert_eq!(v["tables"][0]["rows_rejected_rolled_back"], 6, "{v}");
    assert_eq!(v["errors"]["parts_total"], t_parts as u64, "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "0/{t_parts} parts of the selected tables are committed"
        )),
        "{msg}"
    );
    // The text summary says it too, with "1 of N parts failed".
    let text_args: Vec<&str> = args[1..].to_vec();
    let (code, out, _) = run(&text_args);
    assert_eq!(code, 65);
    assert!(
        out.contains(
            "0 of 0 rows rejected (E = 0.0000) and 6 rows refused in a part that rolled back"
        ) && out.contains(&format!("1 of {t_parts} parts failed")),
        "{out}"
    );
}

/// Counts print as `1 row`, `1 part`: an import of a one-row table.
#[test]
fn a_summary_says_1_row_and_1_part() {
    let fx = fixture();
    let src = fx.path("one.db");
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute_batch("CREATE TABLE one (id INTEGER PRIMARY KEY); INSERT INTO one VALUES (7);")
        .unwrap();
    let bundle = fx.path("one-b");
    fx.export_to(&format!("sqlite://{}", src.display()), &bundle, &[]);
    let out = fx.import_to(
        &bundle,
        &format!("sqlite://{}", fx.path("one-dst.db").display()),
        &[],
    );
    assert!(
        out.contains("import: ok — 1 row, ")
            && out.contains("0 of 1 row rejected")
            && out.contains("0 of 1 part failed"),
        "{out}"
    );
    // "51 rows/s" is a speed, not a count: only a count of exactly 1 must be singular.
    let counts = out.replace("rows/s", "");
    assert!(
        !counts.contains(" 1 rows") && !counts.contains(" 1 parts"),
        "{out}"
    );
}

/// A `--mask-key-file` that is no key file is named as such, with a hint about it and not
/// the bundle key's.
#[test]
fn a_bad_mask_key_file_is_named_in_the_error_and_the_hint() {
    let fx = fixture();
    let bad = fx.path("not-a-key");
    std::fs::write(&bad, "hello\n").unwrap();
    let (code, _, err) = run(&[
        "export",
        &fx.src_url(),
        fx.path("b").to_str().unwrap(),
        "--key-file",
        fx.key.to_str().unwrap(),
        "--mask",
        "notes.body=hash",
        "--mask-key-file",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("error: --mask-key-file: key file"), "{err}");
    assert!(
        err.contains("hint: give --mask-key-file a key file made by `ferry keygen`"),
        "{err}"
    );
    assert!(!err.contains("passphrase"), "{err}");
}

/// `--rejects DIR`: a dangling symbolic link or a file is refused as a usage error naming
/// it (nothing is loaded); an existing directory open to others gets a warning, one of
/// mode 0700 none.
#[test]
fn rejects_dir_that_is_a_dangling_link_is_refused_and_an_open_one_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let fx = fixture();
    let bundle = fx.export("b");
    let import = |dst: &str, dir: &std::path::Path| {
        run(&[
            "import",
            bundle.to_str().unwrap(),
            &format!("sqlite://{}", fx.path(dst).display()),
            "--key-file",
            fx.key.to_str().unwrap(),
            "--on-error",
            "skip",
            "--rejects",
            dir.to_str().unwrap(),
        ])
    };
    let link = fx.path("rj-link");
    std::os::unix::fs::symlink(fx.path("nowhere/else"), &link).unwrap();
    let (code, out, err) = import("d1.db", &link);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("is a symbolic link to") && err.contains("which does not exist"),
        "{err}"
    );
    assert!(!err.contains("File exists"), "{err}");
    assert!(!fx.path("nowhere").exists());
    let file = fx.path("rj-file");
    std::fs::write(&file, "x").unwrap();
    let (code, _, err) = import("d2.db", &file);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a directory"), "{err}");
    // An existing directory open to others: loaded, with a warning.
    let open = fx.path("rj-open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, out, err) = import("d3.db", &open);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("warning: --rejects") && out.contains("open to other users (mode 755)"),
        "{out}"
    );
    // Ferry's own: created 0700, no warning.
    let fresh = fx.path("rj-new/sub");
    let (code, out, err) = import("d4.db", &fresh);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("open to other users"), "{out}");
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "{mode:o}");
}

/// SQLite partial and expression indexes (here on a masked column) are named as not
/// carried by `plan`, as PostgreSQL's and MySQL's are.
#[test]
fn plan_names_sqlite_partial_and_expression_indexes_as_not_carried() {
    let fx = fixture();
    let src = fx.path("idx.db");
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute_batch(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, active INTEGER);
             CREATE INDEX people_active_email ON people (email) WHERE active = 1;
             CREATE INDEX people_lower_email ON people (lower(email));
             CREATE INDEX people_plain ON people (active);
             INSERT INTO people VALUES (1, 'a@example.org', 1);",
        )
        .unwrap();
    let (code, out, err) = run(&[
        "--json",
        "plan",
        &format!("sqlite://{}", src.display()),
        "--mask",
        "people.email=redact",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let nc: Vec<&str> = v["plan"]["not_carried"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        nc.iter()
            .any(|n| n.contains("partial index people_active_email on people")),
        "{nc:?}"
    );
    assert!(
        nc.iter()
            .any(|n| n.contains("expression index people_lower_email on people")),
        "{nc:?}"
    );
    assert!(!nc.iter().any(|n| n.contains("people_plain")), "{nc:?}");
}

/// A SQLite column whose name holds a dot is masked by quoting it when `TABLE.COLUMN` is
/// ambiguous; the ambiguous form names both candidates and the quoted form.
#[test]
fn a_dotted_sqlite_column_is_masked_by_its_quoted_name() {
    let fx = fixture();
    let src = fx.path("dots.db");
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute_batch(
            r#"CREATE TABLE t (id INTEGER PRIMARY KEY, "a.b" TEXT);
               CREATE TABLE "t.a" (id INTEGER PRIMARY KEY, b TEXT);
               INSERT INTO t VALUES (1, 'secret');
               INSERT INTO "t.a" VALUES (1, 'other');"#,
        )
        .unwrap();
    let url = format!("sqlite://{}", src.display());
    let (code, _, err) = run(&["plan", &url, "--mask", "t.a.b=redact"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("names more than one column")
            && err.contains(r#"column "a.b" of table t"#)
            && err.contains(r#"column "b" of table t.a"#)
            && err.contains(r#"'t."a.b"=RULE'"#),
        "{err}"
    );
    let masked = |spec: &str| -> Vec<(String, String)> {
        let (code, out, err) = run(&["--json", "plan", &url, "--mask", spec]);
        assert_eq!(code, 0, "{spec}: {out}{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["plan"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| {
                let table = t["table"].as_str().unwrap().to_string();
                t["columns"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|c| !c["mask"].is_null())
                    .map(move |c| (table.clone(), c["name"].as_str().unwrap().to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert_eq!(
        masked(r#"t."a.b"=redact"#),
        [("t".to_string(), "a.b".to_string())]
    );
    assert_eq!(
        masked(r#""t.a".b=redact"#),
        [("t.a".to_string(), "b".to_string())]
    );
    // The export masks it too.
    let bundle = fx.path("dots-b");
    fx.export_to(&url, &bundle, &["--mask", r#"t."a.b"=redact"#]);
    let dst = fx.path("dots-dst.db");
    fx.import_to(&bundle, &format!("sqlite://{}", dst.display()), &[]);
    let c = rusqlite::Connection::open(&dst).unwrap();
    let v: String = c
        .query_row(r#"SELECT "a.b" FROM t"#, [], |r| r.get(0))
        .unwrap();
    assert_ne!(v, "secret");
    let b: String = c
        .query_row(r#"SELECT b FROM "t.a""#, [], |r| r.get(0))
        .unwrap();
    assert_eq!(b, "other");
}
