//! Tables of the same name in different PostgreSQL schemas are different tables to the
//! ledger too: publishing `a.t` (replace) must not mark `b.t`'s staged parts published.
//! Before the ledger named tables schema-qualified, a run killed between the two publishes
//! left `b.t` with its old rows while a re-run said "already imported".

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use crate::common::fixture;
use crate::servers::{PgDb, psql};

#[test]
fn replace_of_same_named_tables_in_two_schemas_publishes_each_on_its_own() {
    let Some(src) = PgDb::new("same_src") else {
        return;
    };
    let Some(dst) = PgDb::new("same_dst") else {
        return;
    };
    let make = "CREATE SCHEMA a; CREATE SCHEMA b;
                CREATE TABLE a.t (id int PRIMARY KEY, v text);
                CREATE TABLE b.t (id int PRIMARY KEY, v text);";
    psql(
        &src.url,
        &format!(
            "{make} INSERT INTO a.t SELECT i, 'a' || i FROM generate_series(1, 300) i;
                    INSERT INTO b.t SELECT i, 'b' || i FROM generate_series(1, 500) i;"
        ),
    );
    psql(
        &dst.url,
        &format!("{make} INSERT INTO a.t VALUES (0, 'old'); INSERT INTO b.t VALUES (0, 'old');"),
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);

    // Run 1 loads only b.t and is killed in its publish, before the COMMIT: b.t's parts
    // stay staged.
    killed_in_publish(&fx, &b, &dst.url, &["--table", "b.t"], 1);
    let counts = |url: &str| {
        psql(
            url,
            "SELECT (SELECT count(*) FROM a.t) || ' ' || (SELECT count(*) FROM b.t)",
        )
    };
    assert_eq!(counts(&dst.url), "1 1");
    let staged = || {
        psql(
            &dst.url,
            "SELECT count(*) FROM public._ferry_ledger WHERE mode = 'replace-staged'",
        )
    };
    assert_ne!(staged(), "0", "b.t's parts are staged");
    // Run 2 takes every table: a.t loads and publishes first, and that publish must leave
    // b.t's staged parts alone; the run is killed in b.t's publish.
    killed_in_publish(&fx, &b, &dst.url, &["--jobs", "1"], 2);
    assert_eq!(counts(&dst.url), "300 1");
    assert_ne!(staged(), "0", "b.t's parts are still staged");
    // Run 3 publishes b.t.
    let out = fx.import_to(&b, &dst.url, &["--mode", "replace"]);
    assert!(!out.contains("nothing to do"), "{out}");
    assert_eq!(counts(&dst.url), "300 500", "{out}");
    assert_eq!(staged(), "0");
    let out = fx.import_to(&b, &dst.url, &["--mode", "replace"]);
    assert!(out.contains("nothing to do"), "{out}");
}

/// Runs `ferry import --mode replace` with `extra` until it pauses in publish `n` (before
/// its COMMIT), then kills it.
fn killed_in_publish(
    fx: &crate::common::Fixture,
    b: &std::path::Path,
    url: &str,
    extra: &[&str],
    n: usize,
) {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"))
        .args(["--quiet", "import", b.to_str().unwrap(), url, "--key-file"])
        .arg(&fx.key)
        .args(["--mode", "replace"])
        .args(extra)
        .env("FERRY_PAUSE_AT", format!("publish:{n}"))
        .env_remove("FERRY_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let want = format!("ferry: paused at publish {n}");
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(l) if l == want => break,
            Ok(l) => seen.push(l),
            Err(e) => {
                let _ = child.kill();
                panic!("the import did not pause at publish {n} ({e:?}): {seen:?}");
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
