//! `import --on-error skip [--max-errors N|P%] [--rejects DIR]` on SQLite, PostgreSQL and
//! MariaDB: rows the target refuses (here a CHECK that refuses every tenth row) are set
//! aside with their reasons and counted in E, the rest of each part commits once with its
//! ledger row (kills and re-runs included); `--max-errors` stops the run (exit 65) and the
//! failed run's `--json` lists what the ledger holds; a failed strict run's `--json` lists
//! the parts it committed; upsert reports inserted and updated rows apart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, UInt64Type};
use rusqlite::Connection;

use crate::common::{Fixture, ferry, fixture, manifest};
use crate::kill::{Db, paused_at};
use crate::servers::Engine;

/// Rows of the source table; every tenth (`v % 10 = 0`) breaks the target's CHECK.
const ROWS: i64 = 2000;
const REFUSED: i64 = ROWS / 10;

/// A source of `t (id, v = id, pad: 1400 random bytes)`, exported in 1 MiB parts (three).
struct Source {
    fx: Fixture,
    src: PathBuf,
    bundle: PathBuf,
    /// The bundle's part paths, in order.
    parts: Vec<String>,
}

fn source() -> Source {
    let fx = fixture();
    let src = fx.path("rej-src.db");
    let c = Connection::open(&src).unwrap();
    c.execute_batch(&format!(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, pad BLOB);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {ROWS})
           INSERT INTO t SELECT x, x, randomblob(1400) FROM n;"
    ))
    .unwrap();
    drop(c);
    let bundle = fx.path("rej-bundle");
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
    let parts: Vec<String> = manifest(&bundle)["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect();
    assert!(parts.len() >= 3, "expected several parts: {parts:?}");
    Source {
        fx,
        src,
        bundle,
        parts,
    }
}

/// The target table `t`, with a CHECK that refuses `v % 10 = 0`.
fn create_checked(db: &Db) {
    db.sql(match db.engine {
        Engine::Sqlite => {
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL CHECK (v % 10 <> 0), pad BLOB)"
        }
        Engine::Postgres => {
            "CREATE TABLE t (id bigint PRIMARY KEY, v bigint NOT NULL CONSTRAINT t_v_check CHECK (v % 10 <> 0), \
             pad bytea)"
        }
        Engine::Mysql => {
            "CREATE TABLE t (id bigint PRIMARY KEY, v bigint NOT NULL, pad longblob, \
             CONSTRAINT t_v_check CHECK (v % 10 <> 0))"
        }
    });
}

/// `ferry import BUNDLE URL --key-file K --json EXTRA…`: (exit code, the JSON report, stderr).
fn import_json(s: &Source, url: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let out = ferry()
        .args([
            "--json",
            "import",
            s.bundle.to_str().unwrap(),
            url,
            "--key-file",
            s.fx.key.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"));
    (out.status.code().unwrap_or(-1), json, stderr)
}

/// (sum of rows_loaded, sum of rows_rejected, ledger rows) of the parts of table t.
fn ledger(db: &Db) -> (i64, i64, i64) {
    let out = db.sql(
        "SELECT coalesce(sum(rows_loaded), 0), coalesce(sum(rows_rejected), 0), count(*) FROM _ferry_ledger \
         WHERE mode <> 'chain-link'",
    );
    let f: Vec<i64> = out.trim().split('|').map(|x| x.parse().unwrap()).collect();
    (f[0], f[1], f[2])
}

/// (rows, rows whose v breaks the CHECK, sum of ids) of the target's t.
fn target_rows(db: &Db) -> (i64, i64, i64) {
    let out = db.sql(
        "SELECT count(*), coalesce(sum(CASE WHEN v % 10 = 0 THEN 1 ELSE 0 END), 0), coalesce(sum(id), 0) FROM t",
    );
    let f: Vec<i64> = out.trim().split('|').map(|x| x.parse().unwrap()).collect();
    (f[0], f[1], f[2])
}

/// Sum of the ids 1..=ROWS whose v passes the CHECK.
fn good_id_sum() -> i64 {
    (1..=ROWS).filter(|i| i % 10 != 0).sum()
}

/// One refused row as its rejects file holds it.
#[derive(Debug)]
struct Reject {
    table: String,
    part: String,
    row: u64,
    reason: String,
    id: i64,
    v: i64,
    pad: Vec<u8>,
}

/// Every file in the rejects directory: its name and its rows.
fn read_rejects(dir: &Path) -> BTreeMap<String, Vec<Reject>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let mut rows = Vec::new();
        if name.ends_with(".parquet") {
            let f = std::fs::File::open(e.path()).unwrap();
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .unwrap()
                .build()
                .unwrap();
            for b in reader {
                let b = b.unwrap();
                let names: Vec<&str> = b
                    .schema_ref()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                assert_eq!(names, ["table", "part", "row", "reason", "id", "v", "pad"]);
                let text = |i: usize| b.column(i).as_string::<i32>().clone();
                let (table, part, reason) = (text(0), text(1), text(3));
                let row = b.column(2).as_primitive::<UInt64Type>().clone();
                let id = b.column(4).as_primitive::<Int64Type>().clone();
                let v = b.column(5).as_primitive::<Int64Type>().clone();
                let pad = b.column(6).as_binary::<i32>().clone();
                for i in 0..b.num_rows() {
                    assert!(!pad.is_null(i));
                    rows.push(Reject {
                        table: table.value(i).to_string(),
                        part: part.value(i).to_string(),
                        row: row.value(i),
                        reason: reason.value(i).to_string(),
                        id: id.value(i),
                        v: v.value(i),
                        pad: pad.value(i).to_vec(),
                    });
                }
            }
        }
        out.insert(name, rows);
    }
    out
}

/// The refused rows are exactly the source's rows with `v % 10 = 0`, each once, with the
/// table, its part, its row number in the part (ids are consecutive within a part, so
/// `id - row` is the same for every row of a part), a reason that names the CHECK, and
/// the row's own values. Returns how many refused rows each part has.
fn assert_rejects(s: &Source, dir: &Path, want: i64) -> BTreeMap<String, i64> {
    let files = read_rejects(dir);
    let src = Connection::open(&s.src).unwrap();
    let mut ids = Vec::new();
    let mut per_part = BTreeMap::new();
    for (name, rows) in &files {
        assert!(name.ends_with(".parquet"), "a stray file in DIR: {name}");
        assert!(!rows.is_empty(), "{name} holds no row");
        let offset = rows[0].id - rows[0].row as i64;
        for r in rows {
            assert_eq!(r.table, "t", "{r:?}");
            assert!(s.parts.contains(&r.part), "{r:?}");
            assert_eq!(r.part, rows[0].part, "one part per file: {name}");
            assert_eq!(r.id - r.row as i64, offset, "row number in the part: {r:?}");
            assert_eq!(r.v % 10, 0, "{r:?}");
            assert_eq!(r.v, r.id);
            let reason = r.reason.to_lowercase();
            assert!(
                reason.contains("check") || reason.contains("t_v_check"),
                "{}",
                r.reason
            );
            assert!(
                !reason.contains("of part")
                    && !reason.contains(" at row ")
                    && !reason.contains("[copy"),
                "noise in the reason: {}",
                r.reason
            );
            let pad: Vec<u8> = src
                .query_row("SELECT pad FROM t WHERE id = ?1", [r.id], |x| x.get(0))
                .unwrap();
            assert_eq!(r.pad, pad, "row {}: its own values", r.id);
            ids.push(r.id);
        }
        *per_part.entry(rows[0].part.clone()).or_insert(0) += rows.len() as i64;
    }
    ids.sort_unstable();
    let expected: Vec<i64> = (1..=ROWS)
        .filter(|i| i % 10 == 0)
        .take(want as usize)
        .collect();
    assert_eq!(ids.len() as i64, want, "refused rows in DIR");
    if want == REFUSED {
        assert_eq!(ids, expected);
    }
    per_part
}

fn table<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == name)
        .unwrap_or_else(|| panic!("no table {name} in {json}"))
}

/// A CHECK refuses 10% of the rows: with skip they are set aside (DIR holds them with
/// their reasons and values), the others load exactly once, E = 0.1 for the table and in
/// all; a second run is a no-op whose summary shows what the ledger holds.
fn skip_loads_the_good_rows(engine: Engine) {
    let s = source();
    let Some(db) = Db::new(engine, &s.fx, "rejskip") else {
        return;
    };
    create_checked(&db);
    let dir = s.fx.path("rejects");
    let args = [
        "--mode",
        "append",
        "--on-error",
        "skip",
        "--rejects",
        dir.to_str().unwrap(),
    ];
    let started = std::time::Instant::now();
    let (code, json, err) = import_json(&s, &db.url, &args);
    let skip_secs = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{err}\n{json}");
    let t = table(&json, "t");
    assert_eq!(t["rows"], ROWS - REFUSED, "{json}");
    assert_eq!(t["rows_rejected"], REFUSED, "{json}");
    assert_eq!(t["error_rate"], 0.1, "{json}");
    assert_eq!(json["errors"]["rows_rejected"], REFUSED);
    assert_eq!(json["errors"]["rows_total"], ROWS);
    assert_eq!(json["errors"]["error_rate"], 0.1, "{json}");
    assert_eq!(json["errors"]["parts_failed"], 0);
    assert!(
        t["logical_bytes"].as_u64().unwrap() > t["bytes"].as_u64().unwrap() / 2,
        "{json}"
    );
    let msg = json["message"].as_str().unwrap();
    assert!(msg.contains(dir.to_str().unwrap()), "{msg}");
    let all = format!("{err}{json}");
    assert!(!all.contains("Failing row contains"), "{all}");
    assert_eq!(
        target_rows(&db),
        (ROWS - REFUSED, 0, good_id_sum()),
        "{}",
        db.url
    );
    assert_eq!(ledger(&db), (ROWS - REFUSED, REFUSED, s.parts.len() as i64));
    // The reason says why; the row's values are in the row's own columns, not repeated in it.
    for r in read_rejects(&dir).values().flatten() {
        assert!(!r.reason.contains("Failing row contains"), "{}", r.reason);
    }
    let per_part = assert_rejects(&s, &dir, REFUSED);
    assert!(per_part.len() >= 2, "{per_part:?}");

    // Again: nothing to do, and the summary tells what the ledger holds.
    let (code, json, err) = import_json(&s, &db.url, &args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json["status"], "nothing to do", "{json}");
    let t = table(&json, "t");
    assert_eq!(t["rows"], ROWS - REFUSED, "{json}");
    assert_eq!(t["rows_rejected"], REFUSED, "{json}");
    assert_eq!(json["totals"]["rows_per_s"], 0.0, "{json}");
    assert_eq!(target_rows(&db).0, ROWS - REFUSED);

    // The cost of the skip path against a strict load of the same rows (a target without
    // the CHECK), for the record.
    let Some(plain) = Db::new(engine, &s.fx, "rejstrict") else {
        return;
    };
    let started = std::time::Instant::now();
    let (code, _, err) = import_json(&s, &plain.url, &[]);
    assert_eq!(code, 0, "{err}");
    eprintln!(
        "{engine:?}: {ROWS} rows, 10% refused, --on-error skip: {skip_secs:.2} s; strict without refusals: {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn sqlite_skip_sets_refused_rows_aside_and_loads_the_others_once() {
    skip_loads_the_good_rows(Engine::Sqlite);
}

#[test]
fn postgres_skip_sets_refused_rows_aside_and_loads_the_others_once() {
    skip_loads_the_good_rows(Engine::Postgres);
}

#[test]
fn mariadb_skip_sets_refused_rows_aside_and_loads_the_others_once() {
    skip_loads_the_good_rows(Engine::Mysql);
}

/// Killed after the first part committed, then inside the second part's transaction (its
/// refused rows written to a temporary file, not committed), then run to the end: the good
/// rows are in once, the ledger and DIR hold each refused row once, and no temporary file
/// is left.
fn kill_and_rerun(engine: Engine) {
    let s = source();
    let Some(db) = Db::new(engine, &s.fx, "rejkill") else {
        return;
    };
    create_checked(&db);
    let dir = s.fx.path("rejects");
    // One stream: the pauses below stop the run after its Nth part, which with two streams
    // could be a different part each run (tests/it/streams.rs kills runs of two streams).
    let args = [
        "--mode",
        "append",
        "--on-error",
        "skip",
        "--rejects",
        dir.to_str().unwrap(),
        "--streams",
        "1",
    ];
    let mut p = paused_at(
        &s.bundle,
        &s.fx.key,
        &db.url,
        &args,
        ("part-committed", 1),
        600,
    );
    p.0.kill().unwrap();
    p.0.wait().unwrap();
    let (rows, rejected, parts) = ledger(&db);
    assert_eq!(parts, 1, "{}", db.url);
    assert!(rejected > 0);
    // The first part's rows are ids 1..=rows+rejected: its good ones are in, once.
    let first: i64 = (1..=rows + rejected).filter(|i| i % 10 != 0).sum();
    assert_eq!(target_rows(&db), (rows, 0, first), "{}", db.url);
    let first_part_rejects = rejected;
    assert_rejects(&s, &dir, first_part_rejects);

    // Inside the next part's transaction, every row sent, before COMMIT.
    let mut p = paused_at(&s.bundle, &s.fx.key, &db.url, &args, ("part-sent", 1), 600);
    p.0.kill().unwrap();
    p.0.wait().unwrap();
    assert_eq!(
        ledger(&db),
        (rows, rejected, 1),
        "the killed part left nothing"
    );
    assert_eq!(target_rows(&db).0, rows);

    let (code, json, err) = import_json(&s, &db.url, &args);
    assert_eq!(code, 0, "{err}\n{json}");
    // This run counts its own parts: the first part's rejects are not counted again.
    let t = table(&json, "t");
    assert_eq!(t["rows_rejected"], REFUSED - first_part_rejects, "{json}");
    assert_eq!(t["rows"], ROWS - REFUSED - rows, "{json}");
    assert_eq!(
        target_rows(&db),
        (ROWS - REFUSED, 0, good_id_sum()),
        "{}",
        db.url
    );
    assert_eq!(ledger(&db), (ROWS - REFUSED, REFUSED, s.parts.len() as i64));
    assert_rejects(&s, &dir, REFUSED);
    let (_, json, _) = import_json(&s, &db.url, &args);
    assert_eq!(json["status"], "nothing to do");
    assert_eq!(table(&json, "t")["rows_rejected"], REFUSED, "{json}");
}

#[test]
fn sqlite_skip_killed_and_rerun_loads_and_counts_each_row_once() {
    kill_and_rerun(Engine::Sqlite);
}

#[test]
fn postgres_skip_killed_and_rerun_loads_and_counts_each_row_once() {
    kill_and_rerun(Engine::Postgres);
}

#[test]
fn mariadb_skip_killed_and_rerun_loads_and_counts_each_row_once() {
    kill_and_rerun(Engine::Mysql);
}

/// `--max-errors 5%` of 2000 rows allows 100 refused rows: the first part (about 70 of
/// them) commits, the part that goes over rolls back and the run stops with 65; its
/// `--json` lists what it committed, as the ledger holds it.
fn max_errors_stops(engine: Engine) {
    let s = source();
    let Some(db) = Db::new(engine, &s.fx, "rejmax") else {
        return;
    };
    create_checked(&db);
    let dir = s.fx.path("rejects");
    let (code, json, err) = import_json(
        &s,
        &db.url,
        &[
            "--mode",
            "append",
            "--on-error",
            "skip",
            "--max-errors",
            "5%",
            "--rejects",
            dir.to_str().unwrap(),
            // One stream: with two, both parts' refused rows count against the budget while
            // both are in flight, and which (if either) commits is a race.
            "--streams",
            "1",
        ],
    );
    assert_eq!(code, 65, "{err}\n{json}");
    assert_eq!(json["status"], "failed");
    assert_eq!(json["exit_code"], 65);
    let (rows, rejected, parts) = ledger(&db);
    assert!(
        parts >= 1 && parts < s.parts.len() as i64,
        "{parts} parts committed"
    );
    assert!(rejected <= 100, "{rejected}");
    let t = table(&json, "t");
    assert_eq!(t["rows"], rows, "{json}");
    assert_eq!(t["rows_rejected"], rejected, "{json}");
    assert_eq!(t["parts"], parts, "{json}");
    assert!(
        t["status"].as_str().unwrap().starts_with("failed"),
        "{json}"
    );
    assert_eq!(json["errors"]["parts_failed"], 1);
    assert_eq!(target_rows(&db).0, rows);
    assert_eq!(target_rows(&db).1, 0);
    let msg = json["message"].as_str().unwrap();
    for want in [
        "over --max-errors 5% (100 rows)",
        "of the 2000 rows",
        &format!(
            "{parts}/{} parts of this bundle are committed",
            s.parts.len()
        ),
    ] {
        assert!(msg.contains(want), "{want:?} not in {msg}");
    }
    assert!(!msg.contains("re-run the same command to resume"), "{msg}");
    // PostgreSQL's "Failing row contains (…)" would copy a row's values into logs.
    let all = format!("{err}{json}");
    assert!(!all.contains("Failing row contains"), "{all}");
    // DIR holds the refused rows of the committed parts only, and no temporary file.
    assert_rejects(&s, &dir, rejected);
}

#[test]
fn sqlite_max_errors_stops_with_65_and_reports_what_the_ledger_holds() {
    max_errors_stops(Engine::Sqlite);
}

#[test]
fn postgres_max_errors_stops_with_65_and_reports_what_the_ledger_holds() {
    max_errors_stops(Engine::Postgres);
}

#[test]
fn mariadb_max_errors_stops_with_65_and_reports_what_the_ledger_holds() {
    max_errors_stops(Engine::Mysql);
}

/// Strict (the default): a row of the last part breaks the CHECK; the parts before it
/// commit, the run fails with 65, its message names the row and says what to fix, and its
/// `--json` lists the committed parts' rows as the ledger holds them.
fn strict_failure_reports_committed(engine: Engine) {
    let s = source();
    let Some(db) = Db::new(engine, &s.fx, "rejstrict") else {
        return;
    };
    db.sql(match engine {
        Engine::Sqlite => "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL CHECK (v <> 1999), pad BLOB)",
        Engine::Postgres => {
            "CREATE TABLE t (id bigint PRIMARY KEY, v bigint NOT NULL CONSTRAINT t_v_check CHECK (v <> 1999), pad bytea)"
        }
        Engine::Mysql => {
            "CREATE TABLE t (id bigint PRIMARY KEY, v bigint NOT NULL, pad longblob, CONSTRAINT t_v_check CHECK (v <> 1999))"
        }
    });
    let (code, json, err) = import_json(&s, &db.url, &["--mode", "append"]);
    assert_eq!(code, 65, "{err}\n{json}");
    let (rows, rejected, parts) = ledger(&db);
    assert_eq!(parts, s.parts.len() as i64 - 1, "every part but the last");
    assert_eq!(rejected, 0);
    let t = table(&json, "t");
    assert_eq!(t["rows"], rows, "{json}");
    assert!(rows > 0);
    assert_eq!(t["parts"], parts, "{json}");
    assert_eq!(json["totals"]["rows"], rows, "{json}");
    assert_eq!(target_rows(&db).0, rows);
    let msg = json["message"].as_str().unwrap();
    let last = s.parts.last().unwrap();
    assert!(msg.contains(last.as_str()), "the part: {msg}");
    assert!(msg.to_lowercase().contains("check"), "the reason: {msg}");
    assert!(
        msg.contains("--on-error skip --rejects DIR") && msg.contains("fix the row"),
        "what to do: {msg}"
    );
    assert!(!msg.contains("re-run the same command to resume"), "{msg}");
    assert!(!msg.contains(" at line "), "{msg}");
    if engine != Engine::Mysql || !msg.contains(" or later)") {
        // The row of the part: 1999 is the last part's row (1999 - rows before it).
        assert!(
            msg.contains(&format!("row {} of part", 1999 - rows)),
            "{msg}"
        );
    }
    assert!(err.contains("fix the row"), "{err}");
}

#[test]
fn sqlite_failed_strict_run_reports_the_committed_parts() {
    strict_failure_reports_committed(Engine::Sqlite);
}

#[test]
fn postgres_failed_strict_run_reports_the_committed_parts() {
    strict_failure_reports_committed(Engine::Postgres);
}

#[test]
fn mariadb_failed_strict_run_reports_the_committed_parts() {
    strict_failure_reports_committed(Engine::Mysql);
}

/// Upsert reports inserted and updated rows apart: the target has keys 51..=150 (51..=60
/// already with the bundle's values: updated, unchanged, still counted as updated), the
/// bundle 1..=100. With skip and a CHECK refusing `bad` values, a refused new row and a
/// refused update are both set aside and the rest upserts.
fn upsert_counts(engine: Engine) {
    let fx = fixture();
    let src = fx.path("up-src.db");
    let c = Connection::open(&src).unwrap();
    c.execute_batch(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
         CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100)
           INSERT INTO a SELECT x, 'new ' || x FROM n;
         INSERT INTO b SELECT id, CASE WHEN id IN (7, 77) THEN 'bad' ELSE v END FROM a;",
    )
    .unwrap();
    drop(c);
    let bundle = fx.path("up");
    fx.export_to(&format!("sqlite://{}", src.display()), &bundle, &[]);
    let Some(db) = Db::new(engine, &fx, "rejup") else {
        return;
    };
    let (int, text) = match engine {
        Engine::Sqlite => ("INTEGER", "TEXT"),
        Engine::Postgres => ("bigint", "text"),
        Engine::Mysql => ("bigint", "varchar(100)"),
    };
    for t in ["a", "b"] {
        db.sql(&format!(
            "CREATE TABLE {t} (id {int} NOT NULL PRIMARY KEY, v {text} NOT NULL, CONSTRAINT {t}_v_check CHECK (v <> 'bad'))"
        ));
        let old: Vec<String> = (51..=150)
            .map(|i| {
                if i <= 60 {
                    format!("({i}, 'new {i}')")
                } else {
                    format!("({i}, 'old {i}')")
                }
            })
            .collect();
        db.sql(&format!("INSERT INTO {t} VALUES {}", old.join(", ")));
    }
    let s = Source {
        fx,
        src,
        bundle,
        parts: vec![],
    };
    let (code, json, err) = import_json(&s, &db.url, &["--mode", "upsert", "--table", "a"]);
    assert_eq!(code, 0, "{err}\n{json}");
    let a = table(&json, "a");
    assert_eq!(
        (&a["inserted"], &a["updated"]),
        (&50.into(), &50.into()),
        "{json}"
    );
    assert_eq!(a["rows"], 100);
    assert_eq!(
        db.sql("SELECT count(*), sum(CASE WHEN v LIKE 'new %' THEN 1 ELSE 0 END) FROM a"),
        "150|100"
    );

    let (code, json, err) = import_json(
        &s,
        &db.url,
        &["--mode", "upsert", "--table", "b", "--on-error", "skip"],
    );
    assert_eq!(code, 0, "{err}\n{json}");
    let b = table(&json, "b");
    assert_eq!(
        (&b["inserted"], &b["updated"]),
        (&49.into(), &49.into()),
        "{json}"
    );
    assert_eq!(b["rows_rejected"], 2, "{json}");
    assert_eq!(b["rows"], 98);
    assert!(
        json["message"].as_str().unwrap().contains("only counted"),
        "{json}"
    );
    assert_eq!(
        db.sql(
            "SELECT count(*), sum(CASE WHEN v LIKE 'new %' THEN 1 ELSE 0 END), \
             sum(CASE WHEN id = 77 AND v = 'old 77' THEN 1 ELSE 0 END), sum(CASE WHEN id = 7 THEN 1 ELSE 0 END) FROM b"
        ),
        "149|98|1|0"
    );
    // Not an upsert: no such fields.
    let (_, json, _) = import_json(&s, &db.url, &["--mode", "upsert", "--table", "a"]);
    assert_eq!(json["status"], "nothing to do");
    assert!(table(&json, "a").get("inserted").is_none(), "{json}");
}

#[test]
fn sqlite_upsert_reports_inserted_and_updated_rows_apart() {
    upsert_counts(Engine::Sqlite);
}

#[test]
fn postgres_upsert_reports_inserted_and_updated_rows_apart() {
    upsert_counts(Engine::Postgres);
}

#[test]
fn mariadb_upsert_reports_inserted_and_updated_rows_apart() {
    upsert_counts(Engine::Mysql);
}

/// `--max-errors` and `--rejects` without `--on-error skip` are usage errors (exit 2).
#[test]
fn max_errors_and_rejects_need_skip() {
    let fx = fixture();
    let b = fx.export("b");
    let dst = fx.path("dst.db");
    for extra in [&["--max-errors", "10"][..], &["--rejects", "/tmp/x"][..]] {
        let out = ferry()
            .args([
                "import",
                b.to_str().unwrap(),
                &format!("sqlite://{}", dst.display()),
                "--key-file",
                fx.key.to_str().unwrap(),
            ])
            .args(extra)
            .assert()
            .code(2);
        let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(err.contains("--on-error skip"), "{err}");
    }
    assert!(!dst.exists());
    let out = ferry()
        .args([
            "import",
            b.to_str().unwrap(),
            &format!("sqlite://{}", dst.display()),
            "--key-file",
            fx.key.to_str().unwrap(),
            "--on-error",
            "skip",
            "--max-errors",
            "five",
        ])
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("a percentage"), "{err}");
}

/// A ledger made before `rows_rejected` existed: `status` and a dry run read it as it is
/// (no rejected rows, nothing altered), the next import adds the column and records its
/// rejected rows, and `status` then shows them.
fn old_ledger(engine: Engine) {
    let s = source();
    let Some(db) = Db::new(engine, &s.fx, "rejold") else {
        return;
    };
    let plain = s.fx.export("plain");
    s.fx.import_to(&plain, &db.url, &[]);
    let ledger_sql = match engine {
        Engine::Postgres => "public._ferry_ledger",
        _ => "_ferry_ledger",
    };
    db.sql(&format!(
        "ALTER TABLE {ledger_sql} DROP COLUMN rows_rejected"
    ));
    let has_column = || {
        let sql = match engine {
            Engine::Sqlite => {
                "SELECT count(*) FROM pragma_table_info('_ferry_ledger') WHERE name = 'rows_rejected'".to_string()
            }
            Engine::Postgres => "SELECT count(*) FROM information_schema.columns WHERE table_name = '_ferry_ledger' \
                                 AND column_name = 'rows_rejected'"
                .to_string(),
            Engine::Mysql => "SELECT count(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND \
                              TABLE_NAME = '_ferry_ledger' AND COLUMN_NAME = 'rows_rejected'"
                .to_string(),
        };
        db.sql(&sql).trim() == "1"
    };
    assert!(!has_column());
    let status = |db: &Db| {
        let out = ferry()
            .args(["--json", "status", &db.url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let st = status(&db);
    assert_eq!(st["tables"].as_array().unwrap().len(), 1, "{st}");
    assert_eq!(st["errors"]["rows_rejected"], 0);
    // A dry run reads the old ledger as it is; an import (here one with nothing to do)
    // upgrades it.
    create_checked(&db);
    let (code, json, err) = import_json(
        &s,
        &db.url,
        &["--mode", "append", "--on-error", "skip", "--dry-run"],
    );
    assert_eq!(code, 0, "{err}\n{json}");
    assert!(!has_column(), "a dry run altered the ledger");
    let out = s.fx.import_to(&plain, &db.url, &[]);
    assert!(out.contains("nothing to do"), "{out}");
    assert!(has_column());
    let (code, json, err) = import_json(&s, &db.url, &["--mode", "append", "--on-error", "skip"]);
    assert_eq!(code, 0, "{err}\n{json}");
    assert!(has_column());
    assert_eq!(table(&json, "t")["rows_rejected"], REFUSED);
    let (rows, rejected, _) = ledger(&db);
    assert_eq!(rejected, REFUSED);
    assert_eq!(
        rows,
        ROWS - REFUSED + 3002,
        "the fixture's 3002 rows and t's"
    );
    let st = status(&db);
    assert_eq!(st["errors"]["rows_rejected"], REFUSED, "{st}");
    let with_t = st["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["rows_rejected"] == REFUSED)
        .unwrap_or_else(|| panic!("{st}"));
    assert!(
        with_t["status"]
            .as_str()
            .unwrap()
            .contains(&format!("{REFUSED} rows refused by the target")),
        "{st}"
    );
}

#[test]
fn sqlite_an_old_ledger_gains_rows_rejected_when_an_import_writes() {
    old_ledger(Engine::Sqlite);
}

#[test]
fn postgres_an_old_ledger_gains_rows_rejected_when_an_import_writes() {
    old_ledger(Engine::Postgres);
}

#[test]
fn mariadb_an_old_ledger_gains_rows_rejected_when_an_import_writes() {
    old_ledger(Engine::Mysql);
}

/// Skip with a generated column (PostgreSQL to PostgreSQL: the target computes it, the
/// rejects file keeps the bundle's value) and with replace (rows go through the staging
/// table; with nothing refused the publish swaps every row in).
#[test]
fn postgres_skip_with_generated_columns_and_replace() {
    let fx = fixture();
    let Some(src) = crate::servers::PgDb::new("rejgen_src") else {
        return;
    };
    crate::servers::psql(
        &src.url,
        "CREATE TABLE g (id int PRIMARY KEY, v int NOT NULL, w int GENERATED ALWAYS AS (v * 2) STORED);
         INSERT INTO g (id, v) SELECT i, i FROM generate_series(1, 500) i;",
    );
    let bundle = fx.path("gen");
    fx.export_to(&src.url, &bundle, &[]);
    let Some(db) = Db::new(Engine::Postgres, &fx, "rejgen") else {
        return;
    };
    db.sql(
        "CREATE TABLE g (id int PRIMARY KEY, v int NOT NULL CHECK (v % 10 <> 0), \
         w int GENERATED ALWAYS AS (v * 2) STORED)",
    );
    let dir = fx.path("rejects");
    let s = Source {
        fx,
        src: PathBuf::new(),
        bundle,
        parts: vec![],
    };
    let (code, json, err) = import_json(
        &s,
        &db.url,
        &[
            "--mode",
            "append",
            "--on-error",
            "skip",
            "--rejects",
            dir.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}\n{json}");
    let g = table(&json, "g");
    assert_eq!(
        (&g["rows"], &g["rows_rejected"]),
        (&450.into(), &50.into()),
        "{json}"
    );
    assert_eq!(
        db.sql("SELECT count(*), sum(CASE WHEN w = 2 * v THEN 1 ELSE 0 END), sum(CASE WHEN v % 10 = 0 THEN 1 ELSE 0 END) FROM g"),
        "450|450|0"
    );
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&files[0]).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let mut n = 0;
    for b in reader {
        let b = b.unwrap();
        let names: Vec<&str> = b
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["table", "part", "row", "reason", "id", "v", "w"]);
        let v = b.column(5).as_primitive::<arrow::datatypes::Int32Type>();
        let w = b.column(6).as_primitive::<arrow::datatypes::Int32Type>();
        for i in 0..b.num_rows() {
            assert_eq!(v.value(i) % 10, 0);
            assert_eq!(w.value(i), 2 * v.value(i), "the bundle's generated value");
        }
        n += b.num_rows();
    }
    assert_eq!(n, 50);

    // Replace under skip: the staging table refuses nothing here; every row is swapped in.
    let Some(db2) = Db::new(Engine::Postgres, &s.fx, "rejgen2") else {
        return;
    };
    db2.sql(
        "CREATE TABLE g (id int PRIMARY KEY, v int NOT NULL, w int GENERATED ALWAYS AS (v * 2) STORED); \
         INSERT INTO g (id, v) VALUES (1000, 1)",
    );
    let (code, json, err) = import_json(&s, &db2.url, &["--mode", "replace", "--on-error", "skip"]);
    assert_eq!(code, 0, "{err}\n{json}");
    assert_eq!(table(&json, "g")["rows_rejected"], 0);
    assert_eq!(
        db2.sql("SELECT count(*), max(id), sum(CASE WHEN w = 2 * v THEN 1 ELSE 0 END) FROM g"),
        "500|500|500"
    );
}

/// A PostgreSQL partitioned table has no system columns to return: its upsert counts the
/// keys it holds first, and reports the same split.
#[test]
fn postgres_upsert_into_a_partitioned_table_reports_inserted_and_updated_rows() {
    let fx = fixture();
    let src = fx.path("part-src.db");
    Connection::open(&src)
        .unwrap()
        .execute_batch(
            "CREATE TABLE pa (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
             WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100)
               INSERT INTO pa SELECT x, 'new ' || x FROM n;",
        )
        .unwrap();
    let bundle = fx.path("pa");
    fx.export_to(&format!("sqlite://{}", src.display()), &bundle, &[]);
    let Some(db) = Db::new(Engine::Postgres, &fx, "rejpart") else {
        return;
    };
    db.sql(
        "CREATE TABLE pa (id bigint NOT NULL, v text NOT NULL, PRIMARY KEY (id)) PARTITION BY RANGE (id); \
         CREATE TABLE pa_low PARTITION OF pa FOR VALUES FROM (0) TO (80); \
         CREATE TABLE pa_high PARTITION OF pa FOR VALUES FROM (80) TO (1000); \
         INSERT INTO pa SELECT i, 'old ' || i FROM generate_series(51, 150) i;",
    );
    let s = Source {
        fx,
        src,
        bundle,
        parts: vec![],
    };
    let (code, json, err) = import_json(&s, &db.url, &["--mode", "upsert"]);
    assert_eq!(code, 0, "{err}\n{json}");
    let t = table(&json, "pa");
    assert_eq!(
        (&t["inserted"], &t["updated"]),
        (&50.into(), &50.into()),
        "{json}"
    );
    assert_eq!(
        db.sql("SELECT count(*), sum(CASE WHEN v LIKE 'new %' THEN 1 ELSE 0 END) FROM pa"),
        "150|100"
    );
}
