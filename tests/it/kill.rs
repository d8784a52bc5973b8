//! Imports killed with SIGKILL at named points, then re-run (RELIABILITY.md E50), on
//! SQLite, PostgreSQL and MariaDB. The import stops at a point through the documented
//! testing hook `FERRY_PAUSE_AT=<point>:<n>` (it prints `ferry: paused at <point> <n>` and
//! sleeps); the test then sends a real SIGKILL. After every kill the target must hold whole
//! parts only (replace: each table all old rows or all new rows); the run after the last
//! kill must end with exactly the source rows, the ledger must add up, no staging table may
//! be left, and one more run must be a no-op ("already imported").
//!
//! Kill points in this file: 9 named points per engine (27 in all), plus 3 kills at random
//! moments per engine (`*_replace_killed_at_random_moments_*`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::common::{Fixture, fixture};
use crate::servers::{Engine, MyDb, PgDb, my, psql};

/// Rows of the multi-part table (`big`, ~1 KB of random bytes each, two parts) and of the
/// single-part one (`mid`).
pub const BIG_ROWS: i64 = 1500;
pub const MID_ROWS: i64 = 300;
/// Rows the replace scenarios put in the target first.
pub const OLD_BIG: i64 = 50;
pub const OLD_MID: i64 = 7;

/// (count, distinct ids, sum of ids, SHA-256 over the values' hashes in id order).
pub type Fingerprint = (i64, i64, i64, String);

/// A target database of one test, dropped with it.
pub struct Db {
    pub engine: Engine,
    pub url: String,
    path: Option<PathBuf>,
    _pg: Option<PgDb>,
    _my: Option<MyDb>,
}

impl Db {
    /// None when the engine's server is unreachable (skipped loudly, or a failure under CI).
    pub fn new(engine: Engine, fx: &Fixture, tag: &str) -> Option<Db> {
        match engine {
            Engine::Sqlite => {
                let p = fx.path(&format!("{tag}.db"));
                Some(Db {
                    engine,
                    url: format!("sqlite://{}", p.display()),
                    path: Some(p),
                    _pg: None,
                    _my: None,
                })
            }
            Engine::Postgres => {
                let d = PgDb::new(tag)?;
                Some(Db {
                    engine,
                    url: d.url.clone(),
                    path: None,
                    _pg: Some(d),
                    _my: None,
                })
            }
            Engine::Mysql => {
                let d = MyDb::new(tag)?;
                Some(Db {
                    engine,
                    url: d.url.clone(),
                    path: None,
                    _pg: None,
                    _my: Some(d),
                })
            }
        }
    }

    /// Another handle on an existing database (for a reader thread); drops nothing.
    pub fn view(engine: Engine, url: &str) -> Db {
        Db {
            engine,
            url: url.to_string(),
            path: url.strip_prefix("sqlite://").map(PathBuf::from),
            _pg: None,
            _my: None,
        }
    }

    /// Runs SQL; returns the last statement's rows as `a|b` lines.
    pub fn sql(&self, sql: &str) -> String {
        match self.engine {
            Engine::Sqlite => {
                let c = Connection::open(self.path.as_ref().unwrap()).unwrap();
                c.busy_timeout(Duration::from_secs(30)).unwrap();
                // One SELECT, or statements without results.
                if !sql.trim_start().to_ascii_uppercase().starts_with("SELECT") {
                    c.execute_batch(sql).unwrap();
                    return String::new();
                }
                let mut out = Vec::new();
                let mut st = c.prepare(sql).unwrap();
                let n = st.column_count();
                let mut rows = st.raw_query();
                while let Some(r) = rows.next().unwrap() {
                    let cols: Vec<String> = (0..n)
                        .map(|i| match r.get_ref(i).unwrap() {
                            rusqlite::types::ValueRef::Null => String::new(),
                            rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                            rusqlite::types::ValueRef::Real(v) => v.to_string(),
                            rusqlite::types::ValueRef::Text(t) => {
                                String::from_utf8_lossy(t).into_owned()
                            }
                            rusqlite::types::ValueRef::Blob(b) => hex::encode(b),
                        })
                        .collect();
                    out.push(cols.join("|"));
                }
                out.join("\n")
            }
            Engine::Postgres => psql(&self.url, sql),
            Engine::Mysql => my(&self.url, sql).replace('\t', "|"),
        }
    }

    /// The DDL of the two test tables as this engine types them.
    pub fn create_tables(&self) {
        let (int, blob) = match self.engine {
            Engine::Sqlite => ("INTEGER", "BLOB"),
            Engine::Postgres => ("bigint", "bytea"),
            Engine::Mysql => ("bigint", "longblob"),
        };
        let text = if self.engine == Engine::Mysql {
            "longtext"
        } else {
            "text"
        };
        self.sql(&format!(
            "CREATE TABLE big (id {int} NOT NULL PRIMARY KEY, b {blob}); \
             CREATE TABLE mid (id {int} NOT NULL PRIMARY KEY, v {text});"
        ));
    }

    /// The two test tables holding `OLD_BIG` and `OLD_MID` old rows (ids from 1, one-byte
    /// blobs, `old i` texts).
    pub fn create_tables_with_old_rows(&self) {
        self.create_tables();
        let blob = |i: i64| match self.engine {
            Engine::Postgres => format!("'\\x{i:02x}'::bytea"),
            _ => format!("x'{i:02x}'"),
        };
        let old_big: Vec<String> = (1..=OLD_BIG)
            .map(|i| format!("({i}, {})", blob(i)))
            .collect();
        let old_mid: Vec<String> = (1..=OLD_MID).map(|i| format!("({i}, 'old {i}')")).collect();
        self.sql(&format!(
            "INSERT INTO big VALUES {}; INSERT INTO mid VALUES {};",
            old_big.join(", "),
            old_mid.join(", ")
        ));
    }

    /// Rows of a table: (count, distinct ids, sum of ids, SHA-256 over the rows' value
    /// hashes in id order). `col` is a blob (`big.b`) or text (`mid.v`) column.
    pub fn fingerprint(&self, table: &str, col: &str) -> (i64, i64, i64, String) {
        let out = match self.engine {
            Engine::Sqlite => {
                let c = Connection::open(self.path.as_ref().unwrap()).unwrap();
                c.busy_timeout(Duration::from_secs(30)).unwrap();
                return sqlite_fingerprint(&c, table, col);
            }
            Engine::Postgres => self.sql(&format!(
                "SELECT count(*), count(DISTINCT id), coalesce(sum(id), 0), \
                 encode(sha256(convert_to(coalesce(string_agg(encode(sha256({v}), 'hex'), '' ORDER BY id), ''), 'UTF8')), 'hex') \
                 FROM {table}",
                v = if col == "b" {
                    col.to_string()
                } else {
                    format!("convert_to({col}, 'UTF8')")
                }
            )),
            Engine::Mysql => self.sql(&format!(
                "SET SESSION group_concat_max_len = 67108864; \
                 SELECT count(*), count(DISTINCT id), coalesce(sum(id), 0), \
                 SHA2(coalesce(GROUP_CONCAT(SHA2({col}, 256) ORDER BY id SEPARATOR ''), ''), 256) FROM {table}"
            )),
        };
        let f: Vec<&str> = out.trim().split('|').collect();
        assert_eq!(f.len(), 4, "{out}");
        (
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
            f[3].to_string(),
        )
    }

    /// Whether a table exists.
    pub fn has_table(&self, t: &str) -> bool {
        let n = match self.engine {
            Engine::Sqlite => self.sql(&format!(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{t}'"
            )),
            Engine::Postgres => self.sql(&format!(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = '{t}'"
            )),
            Engine::Mysql => self.sql(&format!(
                "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{t}'"
            )),
        };
        n.trim() != "0"
    }

    /// Names of tables that start with `_ferry_`, the ledger excepted.
    pub fn staging_tables(&self) -> Vec<String> {
        let out = match self.engine {
            Engine::Sqlite => self.sql(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, 7) = '_ferry_' \
                 AND name <> '_ferry_ledger' ORDER BY 1",
            ),
            Engine::Postgres => self.sql(
                "SELECT tablename FROM pg_tables WHERE left(tablename, 7) = '_ferry_' \
                 AND tablename <> '_ferry_ledger' ORDER BY 1",
            ),
            Engine::Mysql => self.sql(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
                 AND LEFT(TABLE_NAME, 7) = '_ferry_' AND TABLE_NAME <> '_ferry_ledger' ORDER BY 1",
            ),
        };
        out.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// (sum of rows_loaded, ledger rows, ledger rows not `published`) — zeros without a ledger.
    pub fn ledger(&self) -> (i64, i64, i64) {
        if !self.has_table("_ferry_ledger") {
            return (0, 0, 0);
        }
        let out = self.sql(
            "SELECT coalesce(sum(rows_loaded), 0), count(*), \
             coalesce(sum(CASE WHEN mode = 'published' THEN 0 ELSE 1 END), 0) FROM _ferry_ledger",
        );
        let f: Vec<i64> = out.trim().split('|').map(|x| x.parse().unwrap()).collect();
        (f[0], f[1], f[2])
    }
}

/// The fingerprint of a SQLite table, computed here (SQLite has no SHA-256 function).
pub fn sqlite_fingerprint(c: &Connection, table: &str, col: &str) -> (i64, i64, i64, String) {
    let (n, d, s): (i64, i64, i64) = c
        .query_row(
            &format!("SELECT count(*), count(DISTINCT id), coalesce(sum(id), 0) FROM {table}"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let mut st = c
        .prepare(&format!("SELECT {col} FROM {table} ORDER BY id"))
        .unwrap();
    let mut rows = st.query([]).unwrap();
    let mut all = Sha256::new();
    while let Some(r) = rows.next().unwrap() {
        let bytes: Vec<u8> = match r.get_ref(0).unwrap() {
            rusqlite::types::ValueRef::Blob(b) => b.to_vec(),
            rusqlite::types::ValueRef::Text(t) => t.to_vec(),
            other => panic!("unexpected value {other:?}"),
        };
        all.update(hex::encode(Sha256::digest(&bytes)).as_bytes());
    }
    (n, d, s, hex::encode(all.finalize()))
}

/// A source with `big` (random blobs, two parts) and `mid`, exported with 1 MiB parts.
pub struct Source {
    pub fx: Fixture,
    pub bundle: PathBuf,
    pub big: Fingerprint,
    pub mid: Fingerprint,
}

pub fn source() -> Source {
    let fx = fixture();
    let src = fx.path("kill-src.db");
    let c = Connection::open(&src).unwrap();
    c.execute_batch(&format!(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB);
         CREATE TABLE mid (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {BIG_ROWS})
           INSERT INTO big SELECT x, randomblob(1000) FROM n;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {MID_ROWS})
           INSERT INTO mid SELECT x, 'row ' || x || ' ' || hex(randomblob(8)) FROM n;"
    ))
    .unwrap();
    let big = sqlite_fingerprint(&c, "big", "b");
    let mid = sqlite_fingerprint(&c, "mid", "v");
    drop(c);
    let bundle = fx.path("kill-bundle");
    fx.export_to(
        &format!("sqlite://{}", src.display()),
        &bundle,
        &[
            "--max-part-size",
            "1MiB",
            "--batch-rows",
            "250",
            "--row-group-rows",
            "250",
        ],
    );
    let parts = crate::common::manifest(&bundle)["parts"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(parts, 3, "expected big in two parts and mid in one");
    Source {
        fx,
        bundle,
        big,
        mid,
    }
}

/// A paused import; killed on drop, so a failing test leaves no importer behind.
pub struct Paused(pub Child);

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `ferry import` with `FERRY_PAUSE_AT=point:n` (and `FERRY_PAUSE_SECS=secs`) and
/// waits until it says it paused there; dropping the result kills it. Panics when it ends
/// or errs before reaching the point.
pub fn import_paused_at(
    s: &Source,
    db: &Db,
    mode: &str,
    point: &str,
    n: usize,
    secs: u64,
) -> Paused {
    // One stream while paused: "the Nth part" is then one part, so the tests can say how
    // many parts each kill left committed (tests/it/streams.rs kills runs of two streams;
    // the runs that complete here use the default two).
    paused_at(
        &s.bundle,
        &s.fx.key,
        &db.url,
        &["--mode", mode, "--streams", "1"],
        (point, n),
        secs,
    )
}

/// `ferry import BUNDLE URL --key-file KEY EXTRA…` paused at `point:n`, as
/// [`import_paused_at`] (any bundle, any options).
pub fn paused_at(
    bundle: &std::path::Path,
    key: &std::path::Path,
    url: &str,
    extra: &[&str],
    (point, n): (&str, usize),
    secs: u64,
) -> Paused {
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"))
        .args([
            "--quiet",
            "import",
            bundle.to_str().unwrap(),
            url,
            "--key-file",
            key.to_str().unwrap(),
        ])
        .args(extra)
        .env("FERRY_PAUSE_AT", format!("{point}:{n}"))
        .env("FERRY_PAUSE_SECS", secs.to_string())
        .env_remove("FERRY_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Paused(child);
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let want = format!("ferry: paused at {point} {n}");
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(l) if l == want => break,
            Ok(l) => seen.push(l),
            Err(e) => {
                let status = child.0.try_wait().unwrap();
                panic!(
                    "{url}: the import did not pause at {point} {n} ({e:?}, status {status:?}); stderr: {seen:?}"
                );
            }
        }
    }
    child
}

/// Starts an import paused at `point:n` and kills it there with SIGKILL.
pub fn import_killed_at(s: &Source, db: &Db, mode: &str, point: &str, n: usize) {
    let mut child = import_paused_at(s, db, mode, point, n, 600);
    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    assert!(!status.success(), "killed at {point} {n}");
}

/// The run after the kills: succeeds and loads something.
pub fn import_ok(s: &Source, db: &Db, mode: &str) -> String {
    let out = s.fx.import_to(&s.bundle, &db.url, &["--mode", mode]);
    assert!(!out.contains("nothing to do"), "{out}");
    out
}

/// One more run: a no-op that says so.
pub fn import_noop(s: &Source, db: &Db, mode: &str) {
    let out = s.fx.import_to(&s.bundle, &db.url, &["--mode", mode]);
    assert!(
        out.contains("already imported") && out.contains("nothing to do"),
        "{out}"
    );
}

/// The end state: exactly the source rows, the ledger adds up, no staging left.
pub fn assert_exact(s: &Source, db: &Db) {
    assert_eq!(db.fingerprint("big", "b"), s.big, "{}: big", db.url);
    assert_eq!(db.fingerprint("mid", "v"), s.mid, "{}: mid", db.url);
    let (sum, parts, _) = db.ledger();
    assert_eq!(sum, BIG_ROWS + MID_ROWS, "{}: ledger rows_loaded", db.url);
    assert_eq!(parts, 3, "{}: ledger rows", db.url);
    assert_eq!(db.staging_tables(), Vec::<String>::new(), "{}", db.url);
}

/// After a kill in create/append mode: the tables hold exactly the rows of the parts the
/// ledger has (whole parts only).
fn assert_whole_parts(db: &Db) {
    let (sum, _, _) = db.ledger();
    let mut rows = 0;
    for t in ["big", "mid"] {
        if db.has_table(t) {
            rows += db.fingerprint(t, if t == "big" { "b" } else { "v" }).0;
        }
    }
    assert_eq!(rows, sum, "{}: rows in tables vs ledger", db.url);
}

/// After a kill in replace mode: each table holds all its old rows or all its new ones.
fn assert_old_or_new(s: &Source, db: &Db) {
    for (t, col, new, old) in [("big", "b", &s.big, OLD_BIG), ("mid", "v", &s.mid, OLD_MID)] {
        let f = db.fingerprint(t, col);
        assert!(
            f == *new || (f.0 == old && f.1 == old && f.2 == old * (old + 1) / 2),
            "{}: {t} is neither the old rows nor the new ones: {f:?}",
            db.url
        );
    }
}

/// create mode: killed with all rows of part 1 sent, right after part 2 committed (in the
/// second run, part 1 of that run), and with part 3 sent; then completed.
fn create_mode(engine: Engine) {
    let s = source();
    let Some(db) = Db::new(engine, &s.fx, "killc") else {
        return;
    };
    for (point, n) in [("part-sent", 1), ("part-committed", 1), ("part-sent", 1)] {
        import_killed_at(&s, &db, "create", point, n);
        assert_whole_parts(&db);
    }
    // The three kills committed exactly one part (the second run's first).
    assert_eq!(db.ledger().1, 1, "{}", db.url);
    import_ok(&s, &db, "create");
    assert_exact(&s, &db);
    import_noop(&s, &db, "create");
}

/// append mode into existing empty tables: killed between parts (after part 1's commit) and
/// with part 2 sent, then completed.
fn append_mode(engine: Engine) {
    let s = source();
    let Some(db) = Db::new(engine, &s.fx, "killa") else {
        return;
    };
    db.create_tables();
    import_killed_at(&s, &db, "append", "part-committed", 1);
    assert_whole_parts(&db);
    assert_eq!(db.ledger().1, 1);
    import_killed_at(&s, &db, "append", "part-sent", 1);
    assert_whole_parts(&db);
    assert_eq!(db.ledger().1, 1);
    import_ok(&s, &db, "append");
    assert_exact(&s, &db);
    import_noop(&s, &db, "append");
}

/// replace mode over old rows: killed with part 2 sent, with every part of the first table
/// staged, inside the first table's publish, and inside the second table's publish (the
/// first one then published); then completed. Readers never see a mix.
fn replace_mode(engine: Engine) {
    let s = source();
    let Some(db) = Db::new(engine, &s.fx, "killr") else {
        return;
    };
    db.create_tables_with_old_rows();
    let plan = [
        ("part-sent", 2),
        ("staged", 1),
        ("publish", 1),
        ("publish", 2),
    ];
    for (point, n) in plan {
        import_killed_at(&s, &db, "replace", point, n);
        assert_old_or_new(&s, &db);
    }
    // Killed inside the second publish: the first table is published, the second is not.
    let published: i64 = [("big", "b", &s.big), ("mid", "v", &s.mid)]
        .iter()
        .filter(|(t, c, new)| db.fingerprint(t, c) == **new)
        .count() as i64;
    assert_eq!(published, 1, "{}", db.url);
    assert_eq!(db.staging_tables().len(), 1, "{}", db.url);
    import_ok(&s, &db, "replace");
    assert_exact(&s, &db);
    assert_eq!(db.ledger().2, 0, "{}: every ledger row published", db.url);
    import_noop(&s, &db, "replace");
}

/// replace over old rows, killed three times at a random moment of the run (no hook: a
/// real SIGKILL wherever the importer happens to be), then completed.
fn random_kills(engine: Engine) {
    let s = source();
    let Some(db) = Db::new(engine, &s.fx, "killx") else {
        return;
    };
    db.create_tables_with_old_rows();
    let seed: u64 = rand::random();
    eprintln!("random kill delays from seed {seed}");
    let mut x = seed | 1;
    for _ in 0..3 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(100 + x % 1500);
        let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"))
            .args([
                "--quiet",
                "import",
                s.bundle.to_str().unwrap(),
                &db.url,
                "--key-file",
                s.fx.key.to_str().unwrap(),
                "--mode",
                "replace",
            ])
            .env_remove("FERRY_KEY_FILE")
            .env_remove("FERRY_PAUSE_AT")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut child = Paused(child);
        std::thread::sleep(delay);
        let _ = child.0.kill();
        let status = child.0.wait().unwrap();
        eprintln!("killed after {delay:?}: {status:?}");
        assert_old_or_new(&s, &db);
    }
    s.fx.import_to(&s.bundle, &db.url, &["--mode", "replace"]);
    assert_exact(&s, &db);
    assert_eq!(db.ledger().2, 0, "{}: every ledger row published", db.url);
    import_noop(&s, &db, "replace");
}

#[test]
fn sqlite_replace_killed_at_random_moments_resumes_exactly() {
    random_kills(Engine::Sqlite);
}

#[test]
fn postgres_replace_killed_at_random_moments_resumes_exactly() {
    random_kills(Engine::Postgres);
}

#[test]
fn mariadb_replace_killed_at_random_moments_resumes_exactly() {
    random_kills(Engine::Mysql);
}

#[test]
fn sqlite_create_killed_at_three_points_resumes_exactly() {
    create_mode(Engine::Sqlite);
}

#[test]
fn sqlite_append_killed_between_and_within_parts_resumes_exactly() {
    append_mode(Engine::Sqlite);
}

#[test]
fn sqlite_replace_killed_while_staging_and_publishing_resumes_exactly() {
    replace_mode(Engine::Sqlite);
}

#[test]
fn postgres_create_killed_at_three_points_resumes_exactly() {
    create_mode(Engine::Postgres);
}

#[test]
fn postgres_append_killed_between_and_within_parts_resumes_exactly() {
    append_mode(Engine::Postgres);
}

#[test]
fn postgres_replace_killed_while_staging_and_publishing_resumes_exactly() {
    replace_mode(Engine::Postgres);
}

#[test]
fn mariadb_create_killed_at_three_points_resumes_exactly() {
    create_mode(Engine::Mysql);
}

#[test]
fn mariadb_append_killed_between_and_within_parts_resumes_exactly() {
    append_mode(Engine::Mysql);
}

#[test]
fn mariadb_replace_killed_while_staging_and_publishing_resumes_exactly() {
    replace_mode(Engine::Mysql);
}
