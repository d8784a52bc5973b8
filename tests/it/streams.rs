//! Import over several connections per table (`--streams`, issue #18 "Two streams per
//! large table on import") and the spool that downloads each part of a bundle on an object
//! store once (issue #19 "the import's single download per part").

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command as Proc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use crate::common::{Fixture, ferry, fixture, wait_until};
use crate::kill::{Db, Fingerprint, paused_at, sqlite_fingerprint};
use crate::servers::Engine;

/// Rows of `big` (about 1 KB of random bytes each): four parts or more at 1 MiB.
const ROWS: i64 = 4000;

/// A source database with `big`, and its fingerprint.
fn source(fx: &Fixture) -> (String, Fingerprint) {
    let src = fx.path("streams-src.db");
    let c = Connection::open(&src).unwrap();
    c.execute_batch(&format!(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {ROWS})
           INSERT INTO big SELECT x, randomblob(1000) FROM n;"
    ))
    .unwrap();
    let f = sqlite_fingerprint(&c, "big", "b");
    (format!("sqlite://{}", src.display()), f)
}

/// Export options that cut `big` into several parts.
const SMALL_PARTS: [&str; 6] = [
    "--max-part-size",
    "1MiB",
    "--batch-rows",
    "250",
    "--row-group-rows",
    "250",
];

/// A local multi-part bundle of `big`: (fixture, bundle, fingerprint, parts).
fn bundle() -> (Fixture, PathBuf, Fingerprint, usize) {
    let fx = fixture();
    let (src, f) = source(&fx);
    let b = fx.path("streams-bundle");
    fx.export_to(&src, &b, &SMALL_PARTS);
    let parts = crate::common::manifest(&b)["parts"]
        .as_array()
        .unwrap()
        .len();
    assert!(parts >= 4, "expected big in 4 parts or more, got {parts}");
    (fx, b, f, parts)
}

/// `ferry --json import` with `extra`; the report.
fn import_json(fx: &Fixture, bundle: &str, url: &str, extra: &[&str]) -> serde_json::Value {
    let o = ferry()
        .args([
            "--json",
            "import",
            bundle,
            url,
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The report's line of `table`.
fn line<'a>(report: &'a serde_json::Value, table: &str) -> &'a serde_json::Value {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("no line for {table} in {report}"))
}

/// Two streams: while the second part this run loads waits uncommitted (paused after its
/// last row), the other connection goes on committing parts; a SIGKILL then leaves whole
/// parts only, and the re-run ends with each row once. A fresh load of the table (renamed)
/// reports its connections (the default: two on MariaDB, one on PostgreSQL) and is exact.
fn two_streams(engine: Engine) {
    let (fx, b, want, parts) = bundle();
    let Some(db) = Db::new(engine, &fx, "streams") else {
        return;
    };
    {
        // On PostgreSQL part 1 loads alone (its transaction creates the table), then two
        // connections; on MariaDB two connections from the start.
        let _paused = paused_at(
            &b,
            &fx.key,
            &db.url,
            &["--streams", "2"],
            ("part-sent", 2),
            600,
        );
        wait_until(
            "the second connection commits parts while part 2 waits",
            Duration::from_secs(120),
            || db.ledger().1 >= 3,
        );
        // `_paused` is killed (SIGKILL) here.
    }
    let (sum, n, _) = db.ledger();
    assert!(
        (3..parts as i64).contains(&n),
        "{n} of {parts} parts committed"
    );
    assert_eq!(db.fingerprint("big", "b").0, sum, "whole parts only");
    let bs = b.to_str().unwrap();
    let report = import_json(&fx, bs, &db.url, &["--streams", "2"]);
    assert_eq!(report["status"], "ok", "{report}");
    assert_eq!(
        db.fingerprint("big", "b"),
        want,
        "{}: each row once",
        db.url
    );
    let (sum, n, _) = db.ledger();
    assert_eq!((sum, n), (ROWS, parts as i64), "ledger");

    let Some(fresh) = Db::new(engine, &fx, "streams2") else {
        return;
    };
    // The default: two streams on both engines.
    let report = import_json(&fx, bs, &fresh.url, &[]);
    assert_eq!(line(&report, "big")["streams"], 2, "{report}");
    assert_eq!(fresh.fingerprint("big", "b"), want, "{}", fresh.url);
    let report = import_json(&fx, bs, &fresh.url, &["--streams", "1"]);
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("nothing to do"),
        "{report}"
    );
}

#[test]
fn postgres_loads_a_table_over_two_connections_exactly_and_resumes_after_a_kill() {
    two_streams(Engine::Postgres);
}

#[test]
fn mariadb_loads_a_table_over_two_connections_exactly_and_resumes_after_a_kill() {
    two_streams(Engine::Mysql);
}

#[test]
fn sqlite_keeps_one_writer_whatever_the_streams() {
    let (fx, b, want, parts) = bundle();
    let db = Db::new(Engine::Sqlite, &fx, "one-writer").unwrap();
    let report = import_json(&fx, b.to_str().unwrap(), &db.url, &["--streams", "4"]);
    let big = line(&report, "big");
    assert!(big.get("streams").is_none(), "{report}");
    assert_eq!(big["parts"], parts as u64, "{report}");
    assert_eq!(db.fingerprint("big", "b"), want);
}

/// A TCP front for the S3 server that relays byte for byte and records the request line
/// of every request (an import sends no bodies, so each line of the client's side that
/// starts with a method is a request).
struct CountingFront {
    endpoint: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl CountingFront {
    fn new(upstream: &str) -> CountingFront {
        let up = url::Url::parse(upstream).unwrap();
        let up = format!(
            "{}:{}",
            up.host_str().unwrap(),
            up.port_or_known_default().unwrap()
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(&up) else {
                    continue;
                };
                let (mut c1, mut s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut c2, mut s2) = (client, server);
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let (mut buf, mut pending) = ([0u8; 16384], Vec::new());
                    loop {
                        let n = match c1.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        pending.extend_from_slice(&buf[..n]);
                        while let Some(at) = pending.windows(2).position(|w| w == b"\r\n") {
                            let l = String::from_utf8_lossy(&pending[..at]).into_owned();
                            pending.drain(..at + 2);
                            if ["GET ", "HEAD ", "PUT ", "POST ", "DELETE "]
                                .iter()
                                .any(|m| l.starts_with(m))
                            {
                                seen.lock().unwrap().push(l);
                            }
                        }
                        if s1.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s1.shutdown(Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(Shutdown::Write);
                });
            }
        });
        CountingFront { endpoint, requests }
    }

    /// GETs per object under `data/` (the parts) and of the catalog, since the last call.
    fn gets(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for l in self.requests.lock().unwrap().drain(..) {
            let mut words = l.split(' ');
            let (Some("GET"), Some(path)) = (words.next(), words.next()) else {
                continue;
            };
            let path = path.split('?').next().unwrap_or(path);
            if path.contains("/data/") || path.contains("catalog") {
                *out.entry(path.to_string()).or_insert(0) += 1;
            }
        }
        out
    }
}

#[test]
fn an_import_from_s3_downloads_each_part_once_through_the_spool() {
    let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") else {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "AWS_ENDPOINT_URL is not set and CI=true (.ci/run starts moto and sets it)"
        );
        eprintln!("SKIPPED: no S3 server (set AWS_ENDPOINT_URL and the AWS_* variables)");
        return;
    };
    let bucket = format!(
        "ferry-streams-{}",
        &ferry::bundle::layout::new_bundle_id()[..12].to_ascii_lowercase()
    );
    let out = Proc::new("curl")
        .args(["-sS", "-f", "-X", "PUT", &format!("{endpoint}/{bucket}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "cannot create bucket {bucket}");
    let fx = fixture();
    let (src, want) = source(&fx);
    let url = format!("s3://{bucket}/spooled");
    let o = ferry()
        .args(["export", &src, &url, "--key-file", fx.key.to_str().unwrap()])
        .args(SMALL_PARTS)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let front = CountingFront::new(&endpoint);
    let import = |db: &Db, extra: &[&str]| {
        let o = ferry()
            .env("AWS_ENDPOINT_URL", &front.endpoint)
            .args([
                "--json",
                "import",
                &url,
                &db.url,
                "--key-file",
                fx.key.to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(db.fingerprint("big", "b"), want, "{}", db.url);
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (report, front.gets())
    };
    // Before: no spool, every part read to verify it and again to load it.
    let twice = Db::new(Engine::Sqlite, &fx, "twice").unwrap();
    let (report, before) = import(&twice, &["--spool-limit", "0"]);
    assert!(
        report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("read twice from the store")),
        "{report}"
    );
    // After: the spool, one GET per object.
    let once = Db::new(Engine::Sqlite, &fx, "once").unwrap();
    let (report, after) = import(&once, &[]);
    assert!(!report.to_string().contains("read twice"), "{report}");
    eprintln!(
        "GETs per object, --spool-limit 0: {before:#?}\nGETs per object, spooled: {after:#?}"
    );
    let parts: Vec<&String> = after.keys().filter(|p| p.contains("/data/")).collect();
    assert!(parts.len() >= 4, "{after:?}");
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "the same objects are read"
    );
    for (path, n) in &after {
        assert_eq!(
            *n, 1,
            "{path} was fetched {n} times with the spool: {after:?}"
        );
    }
    for p in parts {
        assert!(before[p] > 1, "{p}: {before:?}");
    }
    // The spool is gone with the import.
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ferry-spool-"))
        .collect();
    assert!(
        left.iter()
            .all(|n| !n.contains(&report["bundle_id"].as_str().unwrap()[..8])),
        "{left:?}"
    );
}

/// `export --max-part-rows N` closes a part at N rows, also below the batch size (the
/// batches are cut to it): a table of ROWS rows arrives in ⌈ROWS / N⌉ parts.
#[test]
fn max_part_rows_cuts_a_table_into_parts_of_that_many_rows() {
    let fx = fixture();
    let (src, _) = source(&fx);
    let n: i64 = 700;
    let out = ferry()
        .args([
            "--json",
            "export",
            &src,
            fx.path("mpr").to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
            "--max-part-rows",
            &n.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let big = line(&report, "big");
    assert_eq!(big["rows"], ROWS, "{report}");
    assert_eq!(big["parts"], (ROWS + n - 1) / n, "{report}");
}
