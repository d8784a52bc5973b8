//! Shared helpers: the binary, fixtures (a key, a sample SQLite database), and a dump of a
//! SQLite database at the storage level (typeof + quote of every value) for exact checks.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use rusqlite::Connection;

/// The `ferry` binary with a clean environment for keys and quiet progress.
pub fn ferry() -> Command {
    let mut c = Command::cargo_bin("ferry").expect("ferry binary");
    c.env_remove("FERRY_KEY_FILE")
        .env_remove("FERRY_IDENTITY")
        .env_remove("FERRY_SIGN_KEY")
        .arg("--quiet");
    c
}

/// Polls `cond` every 15 ms until it holds; panics naming `what` once `timeout` has passed.
/// For waiting on another process or session to reach a state, instead of a fixed sleep.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(15));
    }
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub key: PathBuf,
    pub src: PathBuf,
}

impl Fixture {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn src_url(&self) -> String {
        format!("sqlite://{}", self.src.display())
    }

    /// Exports the source to `name` with the fixture's key; returns the bundle path.
    pub fn export(&self, name: &str) -> PathBuf {
        let b = self.path(name);
        ferry()
            .args([
                "export",
                &self.src_url(),
                b.to_str().unwrap(),
                "--key-file",
                self.key.to_str().unwrap(),
            ])
            .assert()
            .success();
        b
    }

    /// `ferry export SOURCE BUNDLE --key-file K EXTRA…`, asserted to succeed.
    pub fn export_to(&self, source: &str, bundle: &Path, extra: &[&str]) {
        ferry()
            .args([
                "export",
                source,
                bundle.to_str().unwrap(),
                "--key-file",
                self.key.to_str().unwrap(),
            ])
            .args(extra)
            .assert()
            .success();
    }

    /// `ferry import BUNDLE TARGET --key-file K EXTRA…`, asserted to succeed; returns stdout.
    pub fn import_to(&self, bundle: &Path, target: &str, extra: &[&str]) -> String {
        let out = ferry()
            .args([
                "import",
                bundle.to_str().unwrap(),
                target,
                "--key-file",
                self.key.to_str().unwrap(),
            ])
            .args(extra)
            .assert()
            .success();
        String::from_utf8_lossy(&out.get_output().stdout).into_owned()
    }

    /// A new key file next to the fixture.
    pub fn other_key(&self, name: &str) -> PathBuf {
        let k = self.path(name);
        ferry()
            .args(["keygen", k.to_str().unwrap()])
            .assert()
            .success();
        k
    }
}

/// A fresh directory with a key and a small source database of two tables: `items`
/// (3000 rows, so each part spans several 16 KiB chunks) and `notes`.
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("k.key");
    ferry()
        .args(["keygen", key.to_str().unwrap()])
        .assert()
        .success();
    let src = dir.path().join("src.db");
    let c = Connection::open(&src).unwrap();
    c.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price DECIMAL(10,2), payload BLOB);
         CREATE TABLE notes (id INTEGER, body TEXT);",
    )
    .unwrap();
    {
        let tx = c.unchecked_transaction().unwrap();
        let mut st = tx
            .prepare("INSERT INTO items VALUES (?1, ?2, ?3, ?4)")
            .unwrap();
        for i in 0..3000i64 {
            // Pseudo-random bytes (xorshift): incompressible, so the part spans several chunks.
            let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let blob: Vec<u8> = (0..(i % 97))
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            st.execute(rusqlite::params![
                i,
                format!("item {i} {}", "x".repeat((i % 13) as usize)),
                (i as f64) / 4.0,
                blob
            ])
            .unwrap();
        }
        drop(st);
        tx.execute("INSERT INTO notes VALUES (1, 'hello'), (2, NULL)", [])
            .unwrap();
        tx.commit().unwrap();
    }
    Fixture { dir, key, src }
}

/// Every table of a SQLite database (except ferry's ledger) as sorted lines of
/// `table|typeof:quote|…`, plus each column's declared type: equal dumps mean equal
/// databases down to SQLite's storage classes.
pub fn dump(db: &Path) -> Vec<String> {
    let c = Connection::open(db).unwrap();
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite%' AND name <> '_ferry_ledger' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let q = format!("\"{}\"", t.replace('"', "\"\""));
        let cols: Vec<(String, String, bool)> = c
            .prepare(&format!("PRAGMA table_info({q})"))
            .unwrap()
            .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        out.push(format!("{t} schema {:?}", cols));
        let exprs: Vec<String> = cols
            .iter()
            .map(|(n, _, _)| {
                let n = format!("\"{}\"", n.replace('"', "\"\""));
                format!("typeof({n}) || ':' || quote({n})")
            })
            .collect();
        let mut rows: Vec<String> = c
            .prepare(&format!("SELECT {} FROM {q}", exprs.join(" || '|' || ")))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.sort();
        out.extend(rows.into_iter().map(|r| format!("{t}|{r}")));
    }
    out
}

/// Rows in the ledger (0 when it does not exist).
pub fn ledger_rows(db: &Path) -> i64 {
    if !db.exists() {
        return 0;
    }
    let c = Connection::open(db).unwrap();
    c.query_row("SELECT count(*) FROM _ferry_ledger", [], |r| r.get(0))
        .unwrap_or(0)
}

/// Names of user tables in a SQLite database (0 tables when the file does not exist).
pub fn user_tables(db: &Path) -> Vec<String> {
    if !db.exists() {
        return vec![];
    }
    let c = Connection::open(db).unwrap();
    c.prepare("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Paths of a bundle's part files, sorted.
pub fn parts(bundle: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(bundle.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// The parsed manifest.
pub fn manifest(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap()
}
