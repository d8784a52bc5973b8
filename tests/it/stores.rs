//! Storage conformance: one set of test bodies run over every store ferry writes bundles to
//! — a local directory, S3 (moto) and Azure Blob (Azurite), the emulators started on
//! loopback by `.ci/run`. Each body loops over [`stores`].
//!
//! GCS is not in the list: its emulator, fake-gcs-server (1.54), implements neither XML
//! multipart uploads (fsouza/fake-gcs-server#852) nor conditional writes (#994), and every
//! ferry export uses both (object_store's own CI skips the same tests against it).
//!
//! The emulators are found through the environment ferry itself reads:
//! - S3: `AWS_ENDPOINT_URL` (+ `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//!   `AWS_ALLOW_HTTP=true`);
//! - Azure: `AZURE_STORAGE_USE_EMULATOR=true` and `AZURITE_BLOB_STORAGE_URL`
//!   (`http://127.0.0.1:PORT`; account devstoreaccount1 with its well-known key).
//!
//! A store whose emulator is not configured is skipped with a loud message, except under
//! CI=true, where the test fails. Each test makes its own bucket or container.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command as Proc, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use ferry::storage::Store;

use crate::common::{dump, ferry, fixture, ledger_rows, user_tables};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Local,
    S3,
    Azure,
}

/// One store under test: where its bundles go.
pub struct Loc {
    pub kind: Kind,
    /// `s3://bucket`, `gs://bucket`, `az://container`, or a local directory.
    base: String,
    _dir: Option<tempfile::TempDir>,
}

impl Loc {
    pub fn url(&self, prefix: &str) -> String {
        format!("{}/{prefix}", self.base)
    }

    fn name(&self) -> String {
        format!("{:?}", self.kind)
    }

    /// The environment a `ferry` child needs to reach this store through `endpoint` (a
    /// front on loopback) instead of the emulator itself.
    fn endpoint_env(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        match self.kind {
            Kind::Local => vec![],
            Kind::S3 => vec![("AWS_ENDPOINT_URL", endpoint.to_string())],
            Kind::Azure => vec![("AZURITE_BLOB_STORAGE_URL", endpoint.to_string())],
        }
    }

    /// The emulator's own endpoint (`http://127.0.0.1:PORT`).
    fn endpoint(&self) -> Option<String> {
        match self.kind {
            Kind::Local => None,
            Kind::S3 => std::env::var("AWS_ENDPOINT_URL").ok(),
            Kind::Azure => std::env::var("AZURITE_BLOB_STORAGE_URL").ok(),
        }
    }
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn absent(what: &str, how: &str) {
    assert!(
        !ci(),
        "{what} is not configured and CI=true ({how}; .ci/run starts it)"
    );
    eprintln!("SKIPPED for {what}: not configured ({how}; .ci/run starts it)");
}

fn unique() -> String {
    format!(
        "ferryt{}",
        &ferry::bundle::layout::new_bundle_id()[..12].to_ascii_lowercase()
    )
}

/// Every store to run a test over, each with a fresh bucket or container: the local disk
/// always, the object stores whose emulators the environment names.
pub fn stores() -> Vec<Loc> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![Loc {
        kind: Kind::Local,
        base: dir.path().display().to_string(),
        _dir: Some(dir),
    }];
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(endpoint) => {
            let name = unique();
            // moto takes an unsigned CreateBucket; object_store has no bucket API.
            curl(&["-X", "PUT", &format!("{endpoint}/{name}")]);
            out.push(Loc {
                kind: Kind::S3,
                base: format!("s3://{name}"),
                _dir: None,
            });
        }
        Err(_) => absent("S3 (moto)", "AWS_ENDPOINT_URL and the AWS_* keys"),
    }
    match std::env::var("AZURITE_BLOB_STORAGE_URL") {
        Ok(base) if std::env::var("AZURE_STORAGE_USE_EMULATOR").is_ok_and(|v| v == "true") => {
            let name = unique();
            azure_create_container(&base, &name);
            out.push(Loc {
                kind: Kind::Azure,
                base: format!("az://{name}"),
                _dir: None,
            });
        }
        _ => absent(
            "Azure (Azurite)",
            "AZURE_STORAGE_USE_EMULATOR=true and AZURITE_BLOB_STORAGE_URL",
        ),
    }
    out
}

fn curl(args: &[&str]) {
    let out = Proc::new("curl")
        .args(["-sS", "-f"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Azurite's well-known development account.
const AZ_ACCOUNT: &str = "devstoreaccount1";
const AZ_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Create Container, signed with the account's shared key (Azurite checks it; object_store
/// has no container API).
fn azure_create_container(base: &str, name: &str) {
    use base64::Engine;
    use hmac::Mac;
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZ_ACCOUNT}/{AZ_ACCOUNT}/{name}\nrestype:container"
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(AZ_KEY)
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    curl(&[
        "-X",
        "PUT",
        "-H",
        &format!("x-ms-date: {date}"),
        "-H",
        &format!("x-ms-version: {version}"),
        "-H",
        &format!("Authorization: SharedKey {AZ_ACCOUNT}:{sig}"),
        "-H",
        "Content-Length: 0",
        &format!("{base}/{AZ_ACCOUNT}/{name}?restype=container"),
    ]);
}

fn run(args: &[&str]) -> Output {
    ferry().args(args).output().expect("ferry runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn names(url: &str) -> Vec<(String, u64)> {
    Store::open(url, false)
        .unwrap()
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| (e.path, e.size))
        .collect()
}

#[test]
fn round_trip_verify_and_import_are_exact_on_every_store() {
    let fx = fixture();
    let key = fx.key.to_str().unwrap();
    for loc in stores() {
        let url = loc.url("archive/2026-12-04");
        let o = run(&[
            "export",
            &fx.src_url(),
            &url,
            "--key-file",
            key,
            "--max-part-size",
            "1MiB",
        ]);
        assert!(o.status.success(), "{}: {}", loc.name(), stderr(&o));
        for args in [
            vec!["verify", &url],
            vec!["verify", &url, "--key-file", key],
        ] {
            let o = ferry().arg("--json").args(&args).output().unwrap();
            assert!(
                o.status.success(),
                "{} {args:?}: {}",
                loc.name(),
                stderr(&o)
            );
            let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(report["status"], "ok", "{}: {report}", loc.name());
        }
        let dst = fx.path(&format!("dst-{}.db", loc.name()));
        let o = run(&[
            "import",
            &url,
            &format!("sqlite://{}", dst.display()),
            "--key-file",
            key,
        ]);
        assert!(o.status.success(), "{}: {}", loc.name(), stderr(&o));
        assert_eq!(dump(&fx.src), dump(&dst), "{}", loc.name());
        let listed = names(&url);
        assert!(
            listed.iter().any(|(n, _)| n == "manifest.json"),
            "{}: {listed:?}",
            loc.name()
        );
        assert!(
            listed.iter().any(|(n, _)| n.starts_with("data/")),
            "{}: {listed:?}",
            loc.name()
        );
    }
}

#[test]
fn a_flipped_byte_in_a_part_object_is_refused_and_nothing_is_written_on_every_store() {
    let fx = fixture();
    let key = fx.key.to_str().unwrap();
    for loc in stores() {
        let url = loc.url("tampered");
        let o = run(&["export", &fx.src_url(), &url, "--key-file", key]);
        assert!(o.status.success(), "{}: {}", loc.name(), stderr(&o));
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
        store.delete(&part.path).unwrap();
        store.put(&part.path, bytes.into()).unwrap();

        for args in [
            vec!["verify", &url],
            vec!["verify", &url, "--key-file", key],
        ] {
            let o = run(&args);
            assert_eq!(
                o.status.code(),
                Some(65),
                "{} {args:?}: {}",
                loc.name(),
                stderr(&o)
            );
            assert!(
                stderr(&o).contains(&part.path),
                "{}: {}",
                loc.name(),
                stderr(&o)
            );
        }
        let dst = fx.path(&format!("tampered-{}.db", loc.name()));
        let o = run(&[
            "import",
            &url,
            &format!("sqlite://{}", dst.display()),
            "--key-file",
            key,
        ]);
        assert_eq!(o.status.code(), Some(65), "{}: {}", loc.name(), stderr(&o));
        assert!(
            stderr(&o).contains(&part.path),
            "{}: {}",
            loc.name(),
            stderr(&o)
        );
        // The import creates no file it then leaves empty: nothing was written.
        if dst.exists() {
            assert!(user_tables(&dst).is_empty(), "{}", loc.name());
            assert_eq!(ledger_rows(&dst), 0, "{}", loc.name());
        }
    }
}

#[test]
fn the_manifest_is_created_once_a_second_export_is_refused_and_of_two_racers_one_wins() {
    let fx = fixture();
    let key = fx.key.to_str().unwrap();
    for loc in stores() {
        let url = loc.url("kept");
        let o = run(&["export", &fx.src_url(), &url, "--key-file", key]);
        assert!(o.status.success(), "{}: {}", loc.name(), stderr(&o));
        let before = names(&url);
        let manifest = Store::open(&url, false)
            .unwrap()
            .read_capped("manifest.json", 1 << 20)
            .unwrap();
        let o = run(&["export", &fx.src_url(), &url, "--key-file", key]);
        assert_eq!(o.status.code(), Some(2), "{}: {}", loc.name(), stderr(&o));
        assert!(
            stderr(&o).contains("already there"),
            "{}: {}",
            loc.name(),
            stderr(&o)
        );
        assert_eq!(before, names(&url), "{}", loc.name());
        let again = Store::open(&url, false)
            .unwrap()
            .read_capped("manifest.json", 1 << 20)
            .unwrap();
        assert_eq!(manifest, again, "{}", loc.name());

        // Eight writers create one manifest at once: exactly one succeeds, and the object
        // holds its bytes.
        let race = loc.url("race");
        let store = Store::open(&race, true).unwrap();
        let barrier = Arc::new(Barrier::new(8));
        let results: Vec<(usize, bool)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (store, barrier) = (store.clone(), barrier.clone());
                    s.spawn(move || {
                        barrier.wait();
                        let r = store.put_new("manifest.json", format!("writer {i}").into());
                        if let Err(e) = &r {
                            assert_eq!(e.exit_code(), 2, "{e}");
                            assert!(e.to_string().contains("already exists"), "{e}");
                        }
                        (i, r.is_ok())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<usize> = results.iter().filter(|r| r.1).map(|r| r.0).collect();
        assert_eq!(winners.len(), 1, "{}: {results:?}", loc.name());
        assert_eq!(
            &store.read_capped("manifest.json", 100).unwrap()[..],
            format!("writer {}", winners[0]).as_bytes(),
            "{}",
            loc.name()
        );
    }
}

/// A TCP front on loopback for an emulator: the first `fail_first` connections are
/// answered `503 Slow Down` (or `500` every other time) and closed, the rest relayed byte
/// for byte; once "broken" every open relay is cut and every later connection refused.
/// object_store's retry (backoff, FERRY_STORE_MAX_RETRIES) must carry a run through the
/// refusals, and give up (exit 75) on a broken store.
pub struct FlakyFront {
    pub endpoint: String,
    pub failed: Arc<AtomicUsize>,
    broken: Arc<AtomicBool>,
    relays: Arc<Mutex<Vec<TcpStream>>>,
}

impl FlakyFront {
    pub fn new(upstream: &str, fail_first: usize) -> FlakyFront {
        let upstream = url::Url::parse(upstream).unwrap();
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
                let n = f.load(SeqCst);
                if b.load(SeqCst) || n < fail_first {
                    f.fetch_add(1, SeqCst);
                    refuse(&mut client, n % 2 == 1);
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
        FlakyFront {
            endpoint,
            failed,
            broken,
            relays,
        }
    }

    /// From now on the store answers nothing but errors.
    pub fn break_now(&self) {
        self.broken.store(true, SeqCst);
        for s in self.relays.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Reads the request head and answers 503 (or 500), closing the connection.
fn refuse(client: &mut TcpStream, internal: bool) {
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
    let status = if internal {
        "500 Internal Server Error"
    } else {
        "503 Slow Down"
    };
    let _ = client.write_all(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
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
fn failed_requests_are_retried_and_the_export_completes_on_every_object_store() {
    let fx = fixture();
    let key = fx.key.to_str().unwrap();
    for loc in stores() {
        let Some(upstream) = loc.endpoint() else {
            continue; // a local disk has no requests to retry
        };
        let front = FlakyFront::new(&upstream, 6);
        let url = loc.url("retried");
        let o = ferry()
            .envs(loc.endpoint_env(&front.endpoint))
            .env("FERRY_STORE_MAX_RETRIES", "10")
            .args(["export", &fx.src_url(), &url, "--key-file", key])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}: {}", loc.name(), stderr(&o));
        assert_eq!(
            front.failed.load(SeqCst),
            6,
            "{}: every refusal was retried past",
            loc.name()
        );
        // Read back straight from the emulator: the bundle is whole.
        let o = run(&["verify", &url, "--key-file", key]);
        assert!(o.status.success(), "{}: {}", loc.name(), stderr(&o));
    }
}

#[test]
fn a_store_that_fails_mid_upload_ends_the_export_with_exit_75_and_no_manifest() {
    let fx = fixture();
    let big = blob_db(fx.dir.path());
    for loc in stores() {
        let Some(upstream) = loc.endpoint() else {
            continue;
        };
        let front = FlakyFront::new(&upstream, 0);
        let url = loc.url("broken");
        let mut child = Proc::new(assert_cmd::cargo::cargo_bin("ferry"))
            .envs(loc.endpoint_env(&front.endpoint))
            .env("FERRY_STORE_MAX_RETRIES", "2")
            .env("FERRY_STORE_RETRY_TIMEOUT", "20")
            .args(["--quiet", "export", &format!("sqlite://{}", big.display())])
            .args([&url, "--key-file", fx.key.to_str().unwrap()])
            .args(["--max-part-size", "1MiB"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_a_part(&url, &mut child);
        front.break_now();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(75), "{}: {err}", loc.name());
        assert!(err.contains("try again"), "{}: {err}", loc.name());
        assert!(!err.contains("panicked"), "{}: {err}", loc.name());
        let left = Store::open(&url, true).unwrap().entries().unwrap();
        assert!(
            !left.iter().any(|e| e.path.starts_with("manifest")),
            "{}: {left:?}",
            loc.name()
        );
    }
}

/// A SQLite database of ~60 MB of incompressible rows: many 1 MiB parts, seconds of writing.
pub fn blob_db(dir: &std::path::Path) -> std::path::PathBuf {
    let big = dir.join("big.db");
    if !big.exists() {
        rusqlite::Connection::open(&big)
            .unwrap()
            .execute_batch(
                "CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB);
                 WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 30000)
                 INSERT INTO blobs SELECT i, randomblob(2000) FROM g;",
            )
            .unwrap();
    }
    big
}

/// Waits until the export `child` has a complete part under `url`; returns how many.
pub fn wait_for_a_part(url: &str, child: &mut std::process::Child) -> usize {
    let started = Instant::now();
    loop {
        let n = Store::open(url, true)
            .unwrap()
            .entries()
            .unwrap()
            .iter()
            .filter(|e| ferry::bundle::layout::is_part_path(&e.path))
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

/// `ferry --json gc ARGS…`: exit code and report.
fn gc(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let o = ferry().args(["--json", "gc"]).args(args).output().unwrap();
    let report = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    // Every report is what schemas/report.v1.json says.
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schemas/report.v1.json")).unwrap();
    let errs: Vec<String> = jsonschema::validator_for(&schema)
        .unwrap()
        .iter_errors(&report)
        .map(|e| e.to_string())
        .collect();
    assert!(errs.is_empty(), "{errs:?}\n{report:#}\n{}", stderr(&o));
    (o.status.code(), report, stderr(&o))
}

fn leftover_paths(report: &serde_json::Value) -> Vec<String> {
    report["gc"]["leftovers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| l["path"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_killed_export_leaves_no_manifest_and_gc_lists_then_removes_its_leftovers() {
    let fx = fixture();
    let key = fx.key.to_str().unwrap();
    let big = blob_db(fx.dir.path());
    for loc in stores() {
        let url = loc.url("killed");
        let mut child = Proc::new(assert_cmd::cargo::cargo_bin("ferry"))
            .args(["--quiet", "export", &format!("sqlite://{}", big.display())])
            .args([&url, "--key-file", key, "--max-part-size", "1MiB"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let seen = wait_for_a_part(&url, &mut child);
        child.kill().unwrap(); // SIGKILL: no cleanup runs
        assert!(
            !child.wait().unwrap().success(),
            "{}: finished before it was killed",
            loc.name()
        );
        let left = names(&url);
        assert!(seen > 0);
        assert!(
            !left.iter().any(|(p, _)| p.starts_with("manifest")),
            "{}: a killed export left {left:?}",
            loc.name()
        );
        let o = run(&["verify", &url]);
        assert_eq!(o.status.code(), Some(65), "{}: {}", loc.name(), stderr(&o));
        assert!(
            stderr(&o).contains("manifest.json"),
            "{}: {}",
            loc.name(),
            stderr(&o)
        );

        // gc lists (removes nothing), then refuses --delete while the objects are fresh,
        // then removes them all.
        let (code, report, err) = gc(&[&url]);
        assert_eq!(code, Some(0), "{}: {err}", loc.name());
        assert_eq!(report["gc"]["manifest"], false, "{report}");
        let listed = leftover_paths(&report);
        assert!(
            listed
                .iter()
                .any(|p| ferry::bundle::layout::is_part_path(p)),
            "{}: {report}",
            loc.name()
        );
        assert_eq!(
            left,
            names(&url),
            "{}: a listing removed something",
            loc.name()
        );
        let (code, _, err) = gc(&[&url, "--delete"]);
        assert_eq!(code, Some(75), "{}: {err}", loc.name());
        assert!(
            err.contains("may still be writing"),
            "{}: {err}",
            loc.name()
        );
        assert_eq!(
            left,
            names(&url),
            "{}: a refused gc removed something",
            loc.name()
        );
        let (code, report, err) = gc(&[&url, "--delete", "--older-than", "0"]);
        assert_eq!(code, Some(0), "{}: {err}", loc.name());
        assert!(
            report["gc"]["leftovers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|l| l["removed"] == true),
            "{report}"
        );
        let after = Store::open(&url, true).unwrap().entries().unwrap();
        assert!(after.is_empty(), "{}: gc left {after:?}", loc.name());
    }
}

#[test]
fn gc_removes_only_parts_a_complete_bundle_does_not_list_and_never_its_own_files() {
    let fx = fixture();
    let key = fx.key.to_str().unwrap();
    for loc in stores() {
        let url = loc.url("complete");
        let o = run(&["export", &fx.src_url(), &url, "--key-file", key]);
        assert!(o.status.success(), "{}: {}", loc.name(), stderr(&o));
        let bundle = names(&url);
        let (code, report, err) = gc(&[&url, "--delete", "--older-than", "0"]);
        assert_eq!(code, Some(0), "{}: {err}", loc.name());
        assert!(
            leftover_paths(&report).is_empty(),
            "{}: {report}",
            loc.name()
        );
        assert_eq!(bundle, names(&url), "{}", loc.name());

        // A loser's part beside the winner's bundle, and a file of another name.
        let store = Store::open(&url, false).unwrap();
        let stray = ferry::bundle::layout::new_part_path(true);
        store.put(&stray, "not listed".into()).unwrap();
        store.put("notes.txt", "mine".into()).unwrap();
        let (code, report, err) = gc(&[&url]);
        assert_eq!(code, Some(0), "{}: {err}", loc.name());
        assert_eq!(
            leftover_paths(&report),
            vec![stray.clone()],
            "{}",
            loc.name()
        );
        assert_eq!(report["gc"]["other"], serde_json::json!(["notes.txt"]));
        let (code, report, err) = gc(&[&url, "--delete", "--older-than", "0"]);
        assert_eq!(code, Some(0), "{}: {err}", loc.name());
        assert_eq!(
            leftover_paths(&report),
            vec![stray.clone()],
            "{}",
            loc.name()
        );
        let mut expected = bundle.clone();
        expected.push(("notes.txt".into(), 4));
        expected.sort();
        assert_eq!(names(&url), expected, "{}", loc.name());
        let o = run(&["verify", &url, "--key-file", key, "--strict"]);
        assert_eq!(
            o.status.code(),
            Some(65),
            "{}: notes.txt is not listed",
            loc.name()
        );
        store.delete("notes.txt").unwrap();
        let o = run(&["verify", &url, "--key-file", key, "--strict"]);
        assert!(o.status.success(), "{}: {}", loc.name(), stderr(&o));

        // A manifest gc cannot read: nothing is removed.
        let url = loc.url("garbled");
        let store = Store::open(&url, true).unwrap();
        store.put("manifest.json", "{ not json".into()).unwrap();
        store.put(&stray, "x".into()).unwrap();
        let (code, _, err) = gc(&[&url, "--delete", "--older-than", "0"]);
        assert_eq!(code, Some(65), "{}: {err}", loc.name());
        assert!(err.contains("gc removes nothing"), "{}: {err}", loc.name());
        assert_eq!(names(&url).len(), 2, "{}", loc.name());
    }
}

/// `AWS_PROFILE=x ferry verify s3://…` with the keys only in `~/.aws/credentials` (and the
/// region and endpoint in `~/.aws/config`); a missing profile is an error naming it.
#[test]
fn an_aws_profile_in_home_supplies_the_keys_region_and_endpoint() {
    let Some(loc) = stores().into_iter().find(|l| l.kind == Kind::S3) else {
        return;
    };
    let fx = fixture();
    let key = fx.key.to_str().unwrap();
    let url = loc.url("profiled");
    let o = run(&["export", &fx.src_url(), &url, "--key-file", key]);
    assert!(o.status.success(), "{}", stderr(&o));

    let home = tempfile::tempdir().unwrap();
    let aws = home.path().join(".aws");
    std::fs::create_dir(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!(
            "[default]\naws_access_key_id = wrong\n\n[moto]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "testing".into()),
            std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "testing".into()),
        ),
    )
    .unwrap();
    std::fs::write(
        aws.join("config"),
        format!(
            "[profile moto]\nregion = us-east-1\nendpoint_url = {}\n",
            loc.endpoint().unwrap()
        ),
    )
    .unwrap();
    let with_profile = |profile: &str| {
        ferry()
            .env("HOME", home.path())
            .env("AWS_PROFILE", profile)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE")
            .env_remove("AWS_CONFIG_FILE")
            // No instance-metadata fallback may rescue a run whose profile failed.
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9")
            .args(["verify", &url, "--key-file", key])
            .output()
            .unwrap()
    };
    let o = with_profile("moto");
    assert!(o.status.success(), "{}", stderr(&o));

    let o = with_profile("nope");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("\"nope\"") && err.contains("no profile [nope]"),
        "{err}"
    );
    assert!(err.contains("credentials"), "{err}");

    // Keys in the environment win over a profile, as in the AWS SDKs.
    let o = ferry()
        .env("HOME", home.path())
        .env("AWS_PROFILE", "nope")
        .args(["verify", &url, "--key-file", key])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    // A profile without static keys (here: the default one, which lacks its secret).
    let o = with_profile("default");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("aws_secret_access_key"),
        "{}",
        stderr(&o)
    );
}
