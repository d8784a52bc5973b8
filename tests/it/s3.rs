//! Bundles on S3, against a real S3-compatible server (moto, started by `.ci/run`). The
//! tests read the standard `AWS_*` variables (`AWS_ENDPOINT_URL`, keys, region,
//! `AWS_ALLOW_HTTP`); without `AWS_ENDPOINT_URL` they fail under CI=true and are skipped
//! loudly elsewhere. Each test makes its own bucket.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command as Proc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry::storage::Store;

use crate::common::{dump, ferry, fixture, ledger_rows, user_tables};
use crate::postgres::{FIXTURE, fingerprint};
use crate::servers::{PgDb, psql};

/// A bucket of its own on the test server.
struct Bucket {
    name: String,
}

impl Bucket {
    fn new() -> Option<Bucket> {
        let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("AWS_ENDPOINT_URL is not set and CI=true (.ci/run starts moto and sets it)");
            }
            eprintln!(
                "SKIPPED: no S3 server (set AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, \
                 AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP=true; .ci/run starts moto)"
            );
            return None;
        };
        let name = format!(
            "ferry-test-{}",
            &ferry::bundle::layout::new_bundle_id()[..12].to_ascii_lowercase()
        );
        // moto takes an unsigned CreateBucket; object_store has no bucket API.
        let out = Proc::new("curl")
            .args(["-sS", "-f", "-X", "PUT", &format!("{endpoint}/{name}")])
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "cannot create bucket {name} at {endpoint}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Bucket { name })
    }

    fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.name)
    }
}

fn run(args: &[&str]) -> std::process::Output {
    ferry().args(args).output().expect("ferry runs")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn sqlite_round_trip_through_s3_and_a_courier_verifies_without_a_key() {
    let Some(bucket) = Bucket::new() else { return };
    let fx = fixture();
    let url = bucket.url("archive/2026-11-25");
    let key = fx.key.to_str().unwrap();
    let src = fx.src_url();
    let o = run(&[
        "export",
        &src,
        &url,
        "--key-file",
        key,
        "--max-part-size",
        "1MiB",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = ferry().args(["--json", "verify", &url]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["status"], "ok", "{report}");

    let dst = fx.path("dst.db");
    let o = run(&[
        "import",
        &url,
        &format!("sqlite://{}", dst.display()),
        "--key-file",
        key,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(dump(&fx.src), dump(&dst));
    // The objects are where the URL says, under the prefix.
    let store = Store::open(&url, false).unwrap();
    let names: Vec<String> = store
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert!(names.iter().any(|n| n == "manifest.json"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("data/")), "{names:?}");
}

#[test]
fn postgres_round_trip_through_s3_is_identical() {
    let Some(bucket) = Bucket::new() else { return };
    let Some(src) = PgDb::new("s3src") else {
        return;
    };
    let Some(dst) = PgDb::new("s3dst") else {
        return;
    };
    psql(&src.url, FIXTURE);
    let fx = fixture();
    let url = bucket.url("pg");
    let key = fx.key.to_str().unwrap();
    let o = run(&["export", &src.url, &url, "--key-file", key, "--jobs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["import", &url, &dst.url, "--key-file", key, "--jobs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, z) = (fingerprint(&src.url), fingerprint(&dst.url));
    assert_eq!(a.len(), 6, "{a:?}");
    assert_eq!(a, z);
}

#[test]
fn a_byte_changed_in_a_part_object_fails_verify_and_import_naming_it_and_writes_nothing() {
    let Some(bucket) = Bucket::new() else { return };
    let fx = fixture();
    let url = bucket.url("tampered");
    let key = fx.key.to_str().unwrap();
    let o = run(&["export", &fx.src_url(), &url, "--key-file", key]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Change one byte in the middle of the largest part, in the bucket.
    let store = Store::open(&url, false).unwrap();
    let part = store
        .entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.path.starts_with("data/"))
        .max_by_key(|e| e.size)
        .expect("a part");
    let mut bytes = store.read_range(&part.path, 0..part.size).unwrap().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    store.put(&part.path, bytes.into()).unwrap();

    for args in [
        vec!["verify", &url],
        vec!["verify", &url, "--key-file", key],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(65), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(&part.path), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
    let dst = fx.path("dst.db");
    let o = run(&[
        "import",
        &url,
        &format!("sqlite://{}", dst.display()),
        "--key-file",
        key,
    ]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains(&part.path), "{}", stderr(&o));
    assert!(user_tables(&dst).is_empty(), "{:?}", user_tables(&dst));
    assert_eq!(ledger_rows(&dst), 0);
}

#[test]
fn an_export_killed_mid_upload_leaves_no_manifest_and_an_existing_bundle_is_never_overwritten() {
    let Some(bucket) = Bucket::new() else { return };
    let fx = fixture();
    let big = blob_db(&fx);
    let key = fx.key.to_str().unwrap();
    let killed = bucket.url("killed");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"))
        .args([
            "--quiet",
            "export",
            &format!("sqlite://{}", big.display()),
            &killed,
        ])
        .args(["--key-file", key, "--max-part-size", "1MiB"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as the first part is complete in the bucket.
    let parts_seen = wait_for_a_part(&killed, &mut child);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the export finished before it was killed"
    );
    let left: Vec<String> = Store::open(&killed, false)
        .unwrap()
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert!(parts_seen > 0);
    assert!(
        !left.iter().any(|p| p.starts_with("manifest")),
        "a killed export left {left:?}"
    );
    // Neither verify nor import takes what is left for a bundle.
    let o = run(&["verify", &killed]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("manifest.json"), "{}", stderr(&o));

    // A complete bundle, then a second export to the same prefix.
    let url = bucket.url("kept");
    let o = run(&["export", &fx.src_url(), &url, "--key-file", key]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before: Vec<(String, u64)> = Store::open(&url, false)
        .unwrap()
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| (e.path, e.size))
        .collect();
    let manifest_before = Store::open(&url, false)
        .unwrap()
        .read_capped("manifest.json", 1 << 20)
        .unwrap();
    let o = run(&["export", &fx.src_url(), &url, "--key-file", key]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("already there"), "{}", stderr(&o));
    let after: Vec<(String, u64)> = Store::open(&url, false)
        .unwrap()
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| (e.path, e.size))
        .collect();
    assert_eq!(before, after);
    let manifest_after = Store::open(&url, false)
        .unwrap()
        .read_capped("manifest.json", 1 << 20)
        .unwrap();
    assert_eq!(manifest_before, manifest_after);
    let o = run(&["verify", &url, "--key-file", key]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn two_writers_racing_for_one_manifest_cannot_both_win() {
    let Some(bucket) = Bucket::new() else { return };
    let store = Store::open(&bucket.url("race"), true).unwrap();
    store.put_new("manifest.json", "first".into()).unwrap();
    let e = store
        .put_new("manifest.json", "second".into())
        .expect_err("the second create must fail");
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(e.to_string().contains("already exists"), "{e}");
    assert_eq!(
        &store.read_capped("manifest.json", 100).unwrap()[..],
        b"first"
    );
}

#[test]
fn a_bundle_url_with_nothing_under_it_is_no_bundle() {
    let Some(bucket) = Bucket::new() else { return };
    let o = run(&["verify", &bucket.url("nothing/here")]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("no bundle here"), "{}", stderr(&o));
}

/// A TCP front for the S3 server that answers the first `fail_first` connections with
/// `503 Slow Down`, relays the rest byte for byte, and can be "broken": every open relay is
/// cut and every later connection gets a 503.
struct FlakyStore {
    endpoint: String,
    failed: Arc<AtomicUsize>,
    broken: Arc<AtomicBool>,
    relays: Arc<Mutex<Vec<TcpStream>>>,
}

impl FlakyStore {
    fn new(fail_first: usize) -> FlakyStore {
        let upstream = std::env::var("AWS_ENDPOINT_URL").unwrap();
        let upstream = url::Url::parse(&upstream).unwrap();
        let upstream = format!(
            "{}:{}",
            upstream.host_str().unwrap(),
            upstream.port_or_known_default().unwrap()
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let failed = Arc::new(AtomicUsize::new(0));
        let broken = Arc::new(AtomicBool::new(false));
        let relays = Arc::new(Mutex::new(Vec::new()));
        let (f, b, r) = (failed.clone(), broken.clone(), relays.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { continue };
                if b.load(SeqCst) || f.load(SeqCst) < fail_first {
                    f.fetch_add(1, SeqCst);
                    refuse(&mut client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                {
                    let mut open = r.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                relay(client, server);
            }
        });
        FlakyStore {
            endpoint,
            failed,
            broken,
            relays,
        }
    }

    /// From now on the store answers nothing but 503s.
    fn break_now(&self) {
        self.broken.store(true, SeqCst);
        for s in self.relays.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Reads the request head and answers 503 Slow Down, closing the connection.
fn refuse(client: &mut TcpStream) {
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (mut head, mut buf) = (Vec::new(), [0u8; 16384]);
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let _ = client.write_all(
        b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let _ = client.shutdown(Shutdown::Both);
}

/// Copies bytes both ways until either side closes.
fn relay(client: TcpStream, server: TcpStream) {
    let (mut c1, mut s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut c2, mut s2) = (client, server);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c1, &mut s1);
        let _ = s1.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut s2, &mut c2);
        let _ = c2.shutdown(Shutdown::Write);
    });
}

#[test]
fn throttling_and_5xx_answers_are_retried_and_the_export_completes() {
    let Some(bucket) = Bucket::new() else { return };
    let flaky = FlakyStore::new(4);
    let fx = fixture();
    let url = bucket.url("retried");
    let o = ferry()
        .env("AWS_ENDPOINT_URL", &flaky.endpoint)
        .args(["export", &fx.src_url(), &url, "--key-file"])
        .arg(&fx.key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        flaky.failed.load(SeqCst),
        4,
        "every refusal was retried past"
    );
    // The bundle is whole, read straight from the store.
    let o = run(&["verify", &url, "--key-file", fx.key.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_store_that_fails_mid_upload_ends_the_export_with_exit_75_and_no_manifest() {
    let Some(bucket) = Bucket::new() else { return };
    let flaky = FlakyStore::new(0);
    let fx = fixture();
    let big = blob_db(&fx);
    let url = bucket.url("broken");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"))
        .env("AWS_ENDPOINT_URL", &flaky.endpoint)
        .env("FERRY_STORE_MAX_RETRIES", "2")
        .env("FERRY_STORE_RETRY_TIMEOUT", "20")
        .args([
            "--quiet",
            "export",
            &format!("sqlite://{}", big.display()),
            &url,
        ])
        .args([
            "--key-file",
            fx.key.to_str().unwrap(),
            "--max-part-size",
            "1MiB",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Break the store once the first part is complete in it.
    wait_for_a_part(&url, &mut child);
    flaky.break_now();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("try again"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let left = Store::open(&url, true).unwrap().entries().unwrap();
    assert!(
        !left.iter().any(|e| e.path.starts_with("manifest")),
        "{left:?}"
    );
}

/// A SQLite database of ~60 MB of incompressible rows: many 1 MiB parts, seconds of uploading.
fn blob_db(fx: &crate::common::Fixture) -> std::path::PathBuf {
    let big = fx.path("big.db");
    rusqlite::Connection::open(&big)
        .unwrap()
        .execute_batch(
            "CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB);
             WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 30000)
             INSERT INTO blobs SELECT i, randomblob(2000) FROM g;",
        )
        .unwrap();
    big
}

/// Waits until the export `child` has a complete part under `url`; returns how many.
fn wait_for_a_part(url: &str, child: &mut std::process::Child) -> usize {
    let started = Instant::now();
    loop {
        let n = Store::open(url, true)
            .unwrap()
            .entries()
            .unwrap()
            .iter()
            .filter(|e| e.path.starts_with("data/"))
            .count();
        if n > 0 {
            return n;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the export ended before any part was seen"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no part after 60 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
