//! `ferry plan` and `export --dry-run`: each column's verdict is what an import then does.
//! For a real-shaped table of each engine (its own types, including types another engine
//! must map or refuse, each of those in a table of its own) and every target engine: the
//! plan's refused columns make the import refuse them by pre-flight's own sentence (exit
//! 65, nothing written); the import of the other tables creates every exact or mapped
//! column with the announced type (read back from the target's catalog) and loads every
//! row. Dry runs need no key, count under `--where`, check its predicate (exit 2 naming the
//! table), and never print 0 for a PostgreSQL table that was never analysed.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::common::{Fixture, ferry, fixture};
use crate::servers::{MyDb, PgDb, my, psql};

/// PostgreSQL: one table of what every engine takes (some mapped), and one table per type
/// another engine refuses. Values fit every target (MySQL's TIMESTAMP range, no NaN).
const PG_SOURCE: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE kinds (
  id integer PRIMARY KEY, si smallint, bi bigint, n numeric(12,2), nw numeric(30,10),
  nu numeric, r real, f double precision, t text, vc varchar(40), ch char(3), b bytea,
  ok boolean, d date, ts timestamp, tz timestamptz, tm time, u uuid, j json, jb jsonb,
  m mood, code text UNIQUE
);
INSERT INTO kinds
SELECT g, g, g::bigint * 1000000000, g + 0.25, g + 0.0000000001, g * 1.5, g + 0.5, g / 3.0,
       'text ' || g, 'vc ' || g, 'c' || (g % 10), '\x00ff'::bytea, g % 2 = 0,
       '2024-01-01'::date + g, '2024-01-01 10:00:00'::timestamp + g * interval '1 hour',
       '2024-01-01 10:00:00+00'::timestamptz + g * interval '1 minute', '12:34:56',
       'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": 1, "a": [1, 2]}', '{"a": 1}',
       (ARRAY['sad', 'ok', 'happy'])[g % 3 + 1]::mood, 'code-' || g
FROM generate_series(1, 25) g;
CREATE TABLE spans (id integer PRIMARY KEY, every interval);
INSERT INTO spans VALUES (1, '1 day 02:00:00'), (2, NULL);
CREATE TABLE lists (id integer PRIMARY KEY, tags text[]);
INSERT INTO lists VALUES (1, '{a,b}'), (2, '{}');
CREATE TABLE nets (id integer PRIMARY KEY, ip inet);
INSERT INTO nets VALUES (1, '10.0.0.1'), (2, NULL);
CREATE TABLE wide (id integer PRIMARY KEY, n numeric(70,10));
INSERT INTO wide VALUES (1, 12345.5), (2, NULL);
"#;

/// MariaDB: its own types; a decimal SQLite refuses, and inet6 (no portable type).
const MY_SOURCE: &str = r#"
CREATE TABLE kinds (
  id int PRIMARY KEY, ti tinyint, si smallint, mi mediumint, bi bigint, bu bigint unsigned,
  iu int unsigned, tu tinyint unsigned, n decimal(12,2), r float, f double, vc varchar(40),
  t text, e enum('x','y','z'), s set('p','q'), b varbinary(16), bl blob, ok boolean,
  y year, d date, dt datetime(6), ts timestamp(6) NULL, tm time(6), j json, u uuid, bits bit(8),
  code varchar(20) UNIQUE
) DEFAULT CHARSET=utf8mb4;
INSERT INTO kinds VALUES
 (1, -1, -2, -3, -4, 5, 6, 7, 1.25, 1.5, 2.5, 'vc one', 'text one', 'x', 'p,q', 0x00ff, 0x0102, true,
  2024, '2024-01-02', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.5', '12:00:00',
  '{"a": 1}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', b'10101010', 'one'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'two'),
 (3, 127, 32767, 8388607, 9223372036854775807, 9223372036854775807, 4294967295, 255, -0.01, 0, -1e300,
  '', '', 'z', '', '', '', false, 1999, '1999-12-31', '1999-12-31 23:59:59.999999',
  '2030-01-01 00:00:00', '23:59:59.999999', '[]', '00000000-0000-0000-0000-000000000000', b'0', 'three');
CREATE TABLE big (id int PRIMARY KEY, n decimal(50,10));
INSERT INTO big VALUES (1, 1234567890123456789012345678901234567890.1234567890), (2, NULL);
CREATE TABLE nets (id int PRIMARY KEY, ip inet6);
INSERT INTO nets VALUES (1, '::1'), (2, NULL);
"#;

/// SQLite: its declared types (every other engine takes them, some mapped).
const LITE_SOURCE: &str = r#"
CREATE TABLE kinds (
  id INTEGER PRIMARY KEY, n INTEGER, big BIGINT, t TEXT, vc VARCHAR(20), r REAL, b BLOB,
  ok BOOLEAN, dec DECIMAL(10,2), wide DECIMAL(30,5), num NUMERIC, d DATE, dt DATETIME,
  tz TIMESTAMPTZ, j JSON, code TEXT UNIQUE
);
INSERT INTO kinds VALUES
 (1, 1, 9000000000, 'one', 'vc one', 1.5, x'00ff', 1, 12.25, '1234567890123456789012345.12345', 12.5,
  '2024-01-02', '2024-01-02 03:04:05', '2024-01-02 03:04:05+00:00', '{"a": 1}', 'one'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'two'),
 (3, -1, -9000000000, '', '', -2.5, x'', 0, -0.01, '-0.00001', -3, '1999-12-31',
  '1999-12-31 23:59:59.5', '1999-12-31 23:59:59+00:00', '[]', 'three');
"#;

/// A database a test writes to, of any engine.
enum Db {
    Pg(PgDb),
    My(MyDb),
    Lite(std::path::PathBuf),
}

impl Db {
    fn url(&self) -> String {
        match self {
            Db::Pg(d) => d.url.clone(),
            Db::My(d) => d.url.clone(),
            Db::Lite(p) => format!("sqlite://{}", p.display()),
        }
    }

    fn engine(&self) -> &'static str {
        match self {
            Db::Pg(_) => "postgres",
            Db::My(_) => "mysql",
            Db::Lite(_) => "sqlite",
        }
    }

    /// A new empty database of `engine` (None: no server, the test is skipped).
    fn new(engine: &str, fx: &Fixture, tag: &str) -> Option<Db> {
        Some(match engine {
            "postgres" => Db::Pg(PgDb::new(tag)?),
            "mysql" => Db::My(MyDb::new(tag)?),
            _ => Db::Lite(fx.path(&format!("{tag}.db"))),
        })
    }

    /// The table's columns as the target's catalog prints their types, in order.
    fn column_types(&self, schema: Option<&str>, table: &str) -> Vec<(String, String)> {
        let pairs = |out: String| -> Vec<(String, String)> {
            out.lines()
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (a, b) = l.split_once('\t').unwrap_or((l, ""));
                    (a.to_string(), b.to_string())
                })
                .collect()
        };
        match self {
            Db::Pg(d) => {
                let q = format!("\"{}\".\"{table}\"", schema.unwrap_or("public"));
                pairs(psql(
                    &d.url,
                    &format!(
                        "SELECT attname || E'\\t' || format_type(atttypid, atttypmod) FROM pg_attribute \
                         WHERE attrelid = '{q}'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
                    ),
                ))
            }
            Db::My(d) => pairs(my(
                &d.url,
                &format!(
                    "SELECT COLUMN_NAME, CONCAT(COLUMN_TYPE, ' ', COALESCE(COLLATION_NAME, '')) FROM \
                     information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = '{table}' \
                     ORDER BY ORDINAL_POSITION",
                    d.name
                ),
            )),
            Db::Lite(p) => {
                let c = rusqlite::Connection::open(p).unwrap();
                let mut st = c
                    .prepare(&format!(
                        "SELECT name, type FROM pragma_table_info('{table}')"
                    ))
                    .unwrap();
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            }
        }
    }

    /// What the catalog prints for columns created with these types: a scratch table made
    /// with them (SQLite keeps declared types as written).
    fn normalised(&self, types: &[String]) -> Vec<String> {
        let cols: Vec<String> = types
            .iter()
            .enumerate()
            .map(|(i, t)| format!("c{i} {t}"))
            .collect();
        match self {
            Db::Pg(d) => {
                psql(
                    &d.url,
                    &format!(
                        "CREATE SCHEMA IF NOT EXISTS plan_scratch; DROP TABLE IF EXISTS plan_scratch.s; \
                         CREATE TABLE plan_scratch.s ({})",
                        cols.join(", ")
                    ),
                );
                self.column_types(Some("plan_scratch"), "s")
            }
            Db::My(d) => {
                my(
                    &d.url,
                    &format!(
                        "DROP TABLE IF EXISTS plan_scratch; CREATE TABLE plan_scratch ({}) DEFAULT CHARSET=utf8mb4",
                        cols.join(", ")
                    ),
                );
                self.column_types(None, "plan_scratch")
            }
            Db::Lite(_) => return types.to_vec(),
        }
        .into_iter()
        .map(|(_, t)| t)
        .collect()
    }

    fn rows(&self, schema: Option<&str>, table: &str) -> u64 {
        match self {
            Db::Pg(d) => psql(
                &d.url,
                &format!(
                    "SELECT count(*) FROM \"{}\".\"{table}\"",
                    schema.unwrap_or("public")
                ),
            )
            .parse()
            .unwrap(),
            Db::My(d) => my(&d.url, &format!("SELECT COUNT(*) FROM `{table}`"))
                .parse()
                .unwrap(),
            Db::Lite(p) => rusqlite::Connection::open(p)
                .unwrap()
                .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap() as u64,
        }
    }
}

/// `ferry plan SOURCE [--target T] --json EXTRA…`: the plan object.
fn plan_json(source: &str, target: Option<&str>, extra: &[&str]) -> Value {
    let mut c = ferry();
    c.args(["--json", "plan", source]);
    if let Some(t) = target {
        c.args(["--target", t]);
    }
    let out = c.args(extra).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "plan failed ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(v["command"], "plan", "{v}");
    // A plan exits as the import's pre-flight would: 65 when it refuses a column or finds
    // another problem, else 0.
    let refuses = v["plan"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["columns"].as_array().unwrap())
        .any(|c| c["verdict"] == "refused")
        || v["plan"]["problems"]
            .as_array()
            .is_some_and(|p| !p.is_empty());
    assert_eq!(
        out.status.code(),
        Some(if refuses { 65 } else { 0 }),
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(v["exit_code"], if refuses { 65 } else { 0 }, "{v}");
    // A plan moves nothing: no speed.
    assert_eq!(v["totals"]["rows_per_s"], 0.0, "{v}");
    assert_eq!(v["totals"]["mb_per_s"], 0.0, "{v}");
    validate(&v);
    v["plan"].clone()
}

/// The report is valid against schemas/report.v1.json, its plan against plan.v1.json.
fn validate(report: &Value) {
    for (schema, doc) in [
        (include_str!("../../schemas/report.v1.json"), report),
        (include_str!("../../schemas/plan.v1.json"), &report["plan"]),
    ] {
        let schema: Value = serde_json::from_str(schema).unwrap();
        let v = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}\n{doc}");
    }
}

/// One planned column: (table, verdict, target type, note).
type Verdicts = BTreeMap<(String, String), (String, Option<String>, Option<String>)>;

fn verdicts(plan: &Value) -> Verdicts {
    let mut out = BTreeMap::new();
    for t in plan["tables"].as_array().unwrap() {
        for c in t["columns"].as_array().unwrap() {
            out.insert(
                (
                    t["table"].as_str().unwrap().to_string(),
                    c["name"].as_str().unwrap().to_string(),
                ),
                (
                    c["verdict"].as_str().unwrap().to_string(),
                    c["target_type"].as_str().map(str::to_string),
                    c["note"].as_str().map(str::to_string),
                ),
            );
        }
    }
    out
}

/// Plans `source` for a new database of `engine` (without --target for its own engine),
/// imports the bundle there and checks every verdict against what the import did.
/// `extra`: options both take (`--as-text`). Returns the plan.
fn plan_then_import(
    fx: &Fixture,
    source: &str,
    bundle: &Path,
    engine: &str,
    tag: &str,
    extra: &[&str],
) -> Option<Value> {
    let target = Db::new(engine, fx, tag)?;
    let same = source.starts_with(match engine {
        "postgres" => "postgres",
        "mysql" => "mysql",
        _ => "sqlite",
    });
    // Counted, so the loaded rows can be checked against the plan.
    let plan = plan_json(
        source,
        (!same).then(|| target.url()).as_deref(),
        &[extra, &["--exact"]].concat(),
    );
    assert_eq!(plan["target"]["engine"], target.engine(), "{plan}");
    assert_eq!(plan["same_engine"], same, "{plan}");
    let v = verdicts(&plan);
    let refused_tables: Vec<String> = v
        .iter()
        .filter(|(_, (verdict, ..))| verdict == "refused")
        .map(|((t, _), _)| t.clone())
        .collect();
    // Everything refused: the import stops in pre-flight with exactly the plan's sentence.
    if !refused_tables.is_empty() {
        let out = ferry()
            .args([
                "import",
                bundle.to_str().unwrap(),
                &target.url(),
                "--key-file",
                fx.key.to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{tag}: {err}");
        for ((t, c), (verdict, _, note)) in &v {
            if verdict == "refused" {
                let note = note.as_deref().unwrap();
                assert!(err.contains(note), "{tag}: {t}.{c}: {note:?} not in\n{err}");
            }
        }
        assert!(err.contains("nothing was written"), "{err}");
    }
    // The rest loads, each column with the announced type.
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let mut excluded = refused_tables.clone();
    excluded.dedup();
    for t in &excluded {
        args.push("--exclude".into());
        args.push(t.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fx.import_to(bundle, &target.url(), &args);
    for t in plan["tables"].as_array().unwrap() {
        let name = t["table"].as_str().unwrap();
        if excluded.iter().any(|e| e == name) {
            continue;
        }
        let (schema, table) = match name.split_once('.') {
            Some((s, t)) if engine == "postgres" => (Some(s), t),
            Some((_, t)) => (None, t),
            None => (None, name),
        };
        let cols = t["columns"].as_array().unwrap();
        let announced: Vec<String> = cols
            .iter()
            .map(|c| c["target_type"].as_str().unwrap().to_string())
            .collect();
        let created = target.column_types(schema, table);
        let expected = target.normalised(&announced);
        assert_eq!(created.len(), cols.len(), "{tag} {name}: {created:?}");
        for ((c, (cname, got)), want) in cols.iter().zip(&created).zip(&expected) {
            assert_eq!(c["name"].as_str().unwrap(), cname, "{tag} {name}");
            assert_eq!(
                got, want,
                "{tag} {name}.{cname}: created as {got:?}, the plan announced {:?} ({})",
                c["target_type"], c["verdict"]
            );
        }
        if let Some(rows) = t["rows"].as_u64()
            && t["rows_are"] == "counted"
        {
            assert_eq!(target.rows(schema, table), rows, "{tag} {name}");
        }
    }
    Some(plan)
}

fn export(fx: &Fixture, source: &str, name: &str) -> std::path::PathBuf {
    let b = fx.path(name);
    fx.export_to(source, &b, &[]);
    b
}

/// The verdict of one column.
fn verdict<'a>(v: &'a Verdicts, table: &str, column: &str) -> &'a str {
    &v.get(&(table.to_string(), column.to_string()))
        .unwrap_or_else(|| panic!("{table}.{column} not planned: {v:?}"))
        .0
}

#[test]
fn postgres_plans_match_the_imports_into_every_engine() {
    let Some(src) = PgDb::new("plan_pg") else {
        return;
    };
    psql(&src.url, PG_SOURCE);
    psql(&src.url, "ANALYZE");
    let fx = fixture();
    let b = export(&fx, &src.url, "b");
    let Some(same) = plan_then_import(&fx, &src.url, &b, "postgres", "plan_pg_pg", &[]) else {
        return;
    };
    let v = verdicts(&same);
    assert!(v.values().all(|(verdict, ..)| verdict == "exact"), "{v:?}");
    let Some(my_plan) = plan_then_import(&fx, &src.url, &b, "mysql", "plan_pg_my", &[]) else {
        return;
    };
    let v = verdicts(&my_plan);
    assert_eq!(verdict(&v, "public.spans", "every"), "refused");
    assert_eq!(verdict(&v, "public.lists", "tags"), "refused");
    assert_eq!(verdict(&v, "public.nets", "ip"), "refused");
    assert_eq!(verdict(&v, "public.wide", "n"), "refused");
    assert_eq!(verdict(&v, "public.kinds", "nw"), "exact");
    assert_eq!(verdict(&v, "public.kinds", "m"), "mapped");
    assert_eq!(verdict(&v, "public.kinds", "nu"), "mapped");
    let lite = plan_then_import(&fx, &src.url, &b, "sqlite", "plan_pg_lite", &[]).unwrap();
    let v = verdicts(&lite);
    assert_eq!(verdict(&v, "public.kinds", "u"), "mapped");
    assert_eq!(verdict(&v, "public.kinds", "si"), "mapped");
    assert_eq!(verdict(&v, "public.kinds", "bi"), "exact");
    assert_eq!(verdict(&v, "public.wide", "n"), "refused");
    // --as-text: the plan maps what it refused, and the import creates just that.
    let lite = plan_then_import(
        &fx,
        &src.url,
        &b,
        "sqlite",
        "plan_pg_lite_text",
        &["--as-text"],
    )
    .unwrap();
    let v = verdicts(&lite);
    for (t, c) in [
        ("public.spans", "every"),
        ("public.lists", "tags"),
        ("public.nets", "ip"),
        ("public.wide", "n"),
    ] {
        assert_eq!(verdict(&v, t, c), "mapped", "{t}.{c}");
    }
    // Without --exact: rows and bytes from the source's statistics, after ANALYZE.
    let estimated = plan_json(&src.url, None, &[]);
    let kinds = estimated["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.kinds")
        .unwrap();
    assert_eq!(kinds["rows"], 25, "{kinds}");
    assert_eq!(kinds["rows_are"], "estimated", "{kinds}");
    assert!(kinds["bytes"].as_u64().unwrap() > 0, "{kinds}");
    assert_eq!(kinds["primary_key"], serde_json::json!(["id"]));
}

#[test]
fn mariadb_plans_match_the_imports_into_every_engine() {
    let Some(src) = MyDb::new("plan_my") else {
        return;
    };
    my(&src.url, MY_SOURCE);
    let fx = fixture();
    let b = export(&fx, &src.url, "b");
    let Some(same) = plan_then_import(&fx, &src.url, &b, "mysql", "plan_my_my", &[]) else {
        return;
    };
    let v = verdicts(&same);
    assert!(v.values().all(|(verdict, ..)| verdict == "exact"), "{v:?}");
    let Some(pg) = plan_then_import(&fx, &src.url, &b, "postgres", "plan_my_pg", &[]) else {
        return;
    };
    let v = verdicts(&pg);
    assert_eq!(verdict(&v, "nets", "ip"), "refused");
    assert_eq!(verdict(&v, "big", "n"), "exact");
    assert_eq!(verdict(&v, "kinds", "bu"), "mapped");
    assert_eq!(verdict(&v, "kinds", "e"), "mapped");
    assert_eq!(verdict(&v, "kinds", "id"), "exact");
    let lite = plan_then_import(&fx, &src.url, &b, "sqlite", "plan_my_lite", &[]).unwrap();
    let v = verdicts(&lite);
    assert_eq!(verdict(&v, "big", "n"), "refused");
    assert_eq!(verdict(&v, "nets", "ip"), "refused");
    assert_eq!(verdict(&v, "kinds", "u"), "mapped");
}

#[test]
fn sqlite_plans_match_the_imports_into_every_engine() {
    let fx = fixture();
    let src = fx.path("plan_src.db");
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute_batch(LITE_SOURCE)
        .unwrap();
    let url = format!("sqlite://{}", src.display());
    let b = export(&fx, &url, "b");
    let same = plan_then_import(&fx, &url, &b, "sqlite", "plan_lite_lite", &[]).unwrap();
    let v = verdicts(&same);
    assert!(v.values().all(|(verdict, ..)| verdict == "exact"), "{v:?}");
    let kinds = &same["tables"][0];
    assert_eq!(kinds["rows"], 3);
    assert_eq!(kinds["rows_are"], "counted");
    if let Some(pg) = plan_then_import(&fx, &url, &b, "postgres", "plan_lite_pg", &[]) {
        let v = verdicts(&pg);
        assert_eq!(verdict(&v, "kinds", "vc"), "mapped");
        assert_eq!(verdict(&v, "kinds", "j"), "mapped");
        assert_eq!(verdict(&v, "kinds", "wide"), "exact");
    }
    if let Some(my_plan) = plan_then_import(&fx, &url, &b, "mysql", "plan_lite_my", &[]) {
        let v = verdicts(&my_plan);
        assert_eq!(verdict(&v, "kinds", "num"), "mapped");
        assert_eq!(verdict(&v, "kinds", "d"), "mapped");
        assert_eq!(verdict(&v, "kinds", "code"), "mapped");
    }
}

/// The human plan names each column's types and verdict, and what is not carried.
#[test]
fn the_text_plan_shows_types_verdicts_and_what_is_not_carried() {
    let fx = fixture();
    let src = fx.path("t.db");
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v VARCHAR(10), at DATETIME);
             INSERT INTO t VALUES (1, 'a', '2024-01-01 00:00:00');
             CREATE VIEW tv AS SELECT id FROM t;",
        )
        .unwrap();
    let url = format!("sqlite://{}", src.display());
    let out = ferry()
        .args([
            "plan",
            &url,
            "--target",
            "postgres://u:secret@127.0.0.1:1/x",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("table t: 1 row (counted)"), "{text}");
    assert!(text.contains("primary key (id)"), "{text}");
    assert!(
        text.contains("VARCHAR(10)") && text.contains("mapped: declared length 10 not kept"),
        "{text}"
    );
    assert!(text.contains("timestamp"), "{text}");
    assert!(
        text.contains("not carried:") && text.contains("tv"),
        "{text}"
    );
    // The target was not contacted (PostgreSQL's mapping needs no connection), and its
    // password is not printed.
    assert!(!text.contains("secret"), "{text}");
    // Nothing was written next to the source.
    assert_eq!(
        std::fs::read_dir(fx.dir.path()).unwrap().count(),
        3,
        "plan wrote a file"
    );
}

/// `export --dry-run` needs no key, counts under `--where`, refuses a bad predicate naming
/// the table (exit 2), and prints the plan for the source.
#[test]
fn a_dry_run_needs_no_key_honours_where_and_checks_it() {
    let fx = fixture();
    let run = |args: &[&str]| {
        ferry()
            .args([
                "--json",
                "export",
                &fx.src_url(),
                fx.path("dry").to_str().unwrap(),
            ])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--dry-run", "--where", "items:id < 100"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "dry run", "{v}");
    validate(&v);
    let items = v["plan"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "items")
        .unwrap()
        .clone();
    assert_eq!(items["rows"], 100, "{items}");
    assert_eq!(items["rows_are"], "counted", "{items}");
    assert_eq!(items["filter"], "id < 100", "{items}");
    assert!(!fx.path("dry").exists(), "a dry run wrote the bundle");
    // A predicate the database refuses: exit 2, naming the table; nothing written.
    let out = run(&["--dry-run", "--where", "items:no_such_column > 1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--where items:") && err.contains("no_such_column"),
        "{err}"
    );
    // The same check guards a real export.
    let out = ferry()
        .args(["export", &fx.src_url(), fx.path("real").to_str().unwrap()])
        .args(["--key-file", fx.key.to_str().unwrap()])
        .args(["--where", "items:no_such_column > 1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!fx.path("real").join("manifest.json").exists());
    // Without --dry-run the key is still required.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(77));
}

#[test]
fn a_postgres_dry_run_counts_where_and_never_says_0_for_a_table_never_analysed() {
    let Some(src) = PgDb::new("plan_dry") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE fresh (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false);
         INSERT INTO fresh SELECT g, 'v' || g FROM generate_series(1, 1000) g;
         CREATE TABLE seen (id int PRIMARY KEY);
         INSERT INTO seen SELECT g FROM generate_series(1, 200) g; ANALYZE seen;",
    );
    let fx = fixture();
    let dry = |args: &[&str]| {
        ferry()
            .args([
                "--json",
                "export",
                &src.url,
                fx.path("dry").to_str().unwrap(),
                "--dry-run",
            ])
            .args(args)
            .output()
            .unwrap()
    };
    let table = |v: &Value, name: &str| {
        v["plan"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .unwrap()
            .clone()
    };
    let out = dry(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fresh = table(&v, "public.fresh");
    assert_eq!(fresh["rows"], Value::Null, "{fresh}");
    assert!(
        fresh["rows_are"]
            .as_str()
            .unwrap()
            .starts_with("unknown (never analysed"),
        "{fresh}"
    );
    assert_eq!(table(&v, "public.seen")["rows"], 200);
    // The text says so too, not 0.
    let out = ferry()
        .args([
            "export",
            &src.url,
            fx.path("dry").to_str().unwrap(),
            "--dry-run",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("table public.fresh: rows unknown (never analysed"),
        "{text}"
    );
    // --where counts inside the snapshot; plan --exact counts every table.
    let out = dry(&["--where", "fresh:id > 900"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(table(&v, "public.fresh")["rows"], 100);
    let p = plan_json(&src.url, None, &["--exact"]);
    let fresh = p["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.fresh")
        .unwrap();
    assert_eq!(fresh["rows"], 1000);
    assert_eq!(fresh["rows_are"], "counted");
    // A predicate PostgreSQL refuses (an unknown column, a type error): exit 2 naming the table.
    for bad in ["fresh:nope = 1", "fresh:v > 1"] {
        let out = dry(&["--where", bad]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("--where public.fresh:"), "{err}");
    }
}
