//! Other readers of a decrypted part (issue #19, acceptance 1): DuckDB, pyarrow and polars,
//! from PyPI, read the Parquet logical types ferry writes (UUID, JSON, DECIMAL(p,s),
//! timestamps with and without time zone, DATE, TIME) and the same values ferry exported.
//!
//! The readers run in a Python virtualenv: FERRY_PY_READERS names its python, or the
//! default /var/cache/ferry-pyreaders/bin/python (`.ci/run` installs it). Without it the
//! tests fail under CI=true and are skipped loudly elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command as Proc;

use crate::common::{ferry, fixture};
use crate::servers::{MyDb, PgDb, my, psql};

const DEFAULT_PY: &str = "/var/cache/ferry-pyreaders/bin/python";

/// Reads one Parquet file with each reader; prints one JSON object: per reader, the column
/// types it reports and the rows (sorted by `id`) with every value as comparable text.
const READ_PY: &str = r#"
import datetime, decimal, json, sys, uuid
import duckdb, polars, pyarrow.parquet as pq

path = sys.argv[1]

def norm(v):
    if v is None:
        return None
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (bytes, bytearray)) and len(v) == 16:
        return str(uuid.UUID(bytes=bytes(v)))
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            return v.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)

def rows(cols, records):
    out = [{c: norm(r[i]) for i, c in enumerate(cols)} for r in records]
    return sorted(out, key=lambda r: int(r["id"]))

con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
desc = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
rel = con.execute(f"SELECT * FROM read_parquet('{path}')")
dcols = [d[0] for d in rel.description]
res = {"duckdb": {"types": {d[0]: d[1] for d in desc}, "rows": rows(dcols, rel.fetchall())}}

t = pq.read_table(path)
pcols = t.column_names
prec = list(zip(*[t.column(c).to_pylist() for c in pcols]))
res["pyarrow"] = {"types": {f.name: str(f.type) for f in t.schema}, "rows": rows(pcols, prec)}

df = polars.read_parquet(path)
res["polars"] = {"types": {c: str(df.schema[c]) for c in df.columns}, "rows": rows(df.columns, df.rows())}
print(json.dumps(res))
"#;

/// The readers' python, or None (skipped loudly; a failure under CI=true).
fn readers() -> Option<PathBuf> {
    let py = std::env::var_os("FERRY_PY_READERS")
        .map_or_else(|| PathBuf::from(DEFAULT_PY), PathBuf::from);
    let ok = Proc::new(&py)
        .args(["-c", "import duckdb, pyarrow, polars"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    let why = format!(
        "{} cannot import duckdb, pyarrow and polars (set FERRY_PY_READERS to a python that \
         can, or run .ci/run, which installs them)",
        py.display()
    );
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "CI=true and {why}"
    );
    eprintln!("SKIPPED: {why}");
    None
}

/// `ferry decrypt`s the bundle and returns the one part of the table whose directory name
/// ends with `table`.
fn decrypted_part(fx: &crate::common::Fixture, bundle: &Path, table: &str) -> PathBuf {
    let out = fx.path("plain");
    ferry()
        .args([
            "decrypt",
            bundle.to_str().unwrap(),
            out.to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .assert()
        .success();
    let dir = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().ends_with(table))
        .unwrap_or_else(|| panic!("no directory for table {table} in {}", out.display()));
    let part = dir.join("part-00000.parquet");
    assert!(part.exists(), "{}", part.display());
    part
}

fn read_with_python(py: &Path, part: &Path) -> serde_json::Value {
    let out = Proc::new(py)
        .args(["-c", READ_PY, part.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the readers failed on {}: {}",
        part.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every reader reports the expected rows; DuckDB the expected types.
fn check(got: &serde_json::Value, duck_types: &[(&str, &str)], rows: &serde_json::Value) {
    for (col, ty) in duck_types {
        assert_eq!(
            got["duckdb"]["types"][col], *ty,
            "DuckDB's type of column {col}; all: {}",
            got["duckdb"]["types"]
        );
    }
    for reader in ["duckdb", "pyarrow", "polars"] {
        assert_eq!(
            &got[reader]["rows"], rows,
            "{reader} read other values (types {})",
            got[reader]["types"]
        );
    }
}

const DUCK_TYPES: &[(&str, &str)] = &[
    ("u", "UUID"),
    ("j", "JSON"),
    ("n", "DECIMAL(12,2)"),
    ("tz", "TIMESTAMP WITH TIME ZONE"),
    ("ts", "TIMESTAMP"),
    ("d", "DATE"),
    ("t", "TIME"),
    ("e", "VARCHAR"),
];

#[test]
fn duckdb_pyarrow_and_polars_read_a_postgres_part_with_its_logical_types() {
    let Some(py) = readers() else { return };
    let Some(src) = PgDb::new("readers") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE TABLE t (id int PRIMARY KEY, u uuid, j jsonb, jt json, n numeric(12,2),
           tz timestamptz, ts timestamp, d date, t time, e mood);
         INSERT INTO t VALUES
          (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"b\": 1, \"a\": [1, 2]}', '{\"x\":  1}',
           -9999999999.99, '2024-02-29 12:34:56.123456+05:30', '2024-02-29 12:34:56.123456',
           '2024-02-29', '23:59:59.999999', 'happy'),
          (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
          (3, '00000000-0000-0000-0000-000000000000', '[]', 'null', 0.05,
           '1970-01-01 00:00:00+00', '1999-12-31 23:59:59', '1970-01-01', '00:00:00', 'sad');",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let part = decrypted_part(&fx, &b, "t");
    let got = read_with_python(&py, &part);
    let mut types = DUCK_TYPES.to_vec();
    types.push(("jt", "JSON"));
    let rows = serde_json::json!([
        {"id": "1", "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "j": "{\"a\": [1, 2], \"b\": 1}",
         "jt": "{\"x\":  1}", "n": "-9999999999.99", "tz": "2024-02-29 07:04:56.123456+00",
         "ts": "2024-02-29 12:34:56.123456", "d": "2024-02-29", "t": "23:59:59.999999",
         "e": "happy"},
        {"id": "2", "u": null, "j": null, "jt": null, "n": null, "tz": null, "ts": null,
         "d": null, "t": null, "e": null},
        {"id": "3", "u": "00000000-0000-0000-0000-000000000000", "j": "[]", "jt": "null",
         "n": "0.05", "tz": "1970-01-01 00:00:00.000000+00", "ts": "1999-12-31 23:59:59.000000",
         "d": "1970-01-01", "t": "00:00:00", "e": "sad"}
    ]);
    check(&got, &types, &rows);
}

#[test]
fn duckdb_pyarrow_and_polars_read_a_mariadb_part_with_its_logical_types() {
    let Some(py) = readers() else { return };
    let Some(src) = MyDb::new("readers") else {
        return;
    };
    my(
        &src.url,
        "CREATE TABLE t (id int PRIMARY KEY, u uuid, j json, n decimal(12,2),
           tz timestamp(6) NULL, ts datetime(6), d date, t time(6), e enum('sad','happy'));
         SET time_zone = '+00:00';
         INSERT INTO t VALUES
          (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"b\": 1, \"a\": [1, 2]}',
           -9999999999.99, '2024-02-29 07:04:56.123456', '2024-02-29 12:34:56.123456',
           '2024-02-29', '23:59:59.999999', 'happy'),
          (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
          (3, '00000000-0000-0000-0000-000000000000', '[]', 0.05,
           '1970-01-02 00:00:00', '1999-12-31 23:59:59', '1970-01-01', '00:00:00', 'sad');",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let part = decrypted_part(&fx, &b, "t");
    let got = read_with_python(&py, &part);
    let rows = serde_json::json!([
        {"id": "1", "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "j": "{\"b\": 1, \"a\": [1, 2]}",
         "n": "-9999999999.99", "tz": "2024-02-29 07:04:56.123456+00",
         "ts": "2024-02-29 12:34:56.123456", "d": "2024-02-29", "t": "23:59:59.999999",
         "e": "happy"},
        {"id": "2", "u": null, "j": null, "n": null, "tz": null, "ts": null, "d": null,
         "t": null, "e": null},
        {"id": "3", "u": "00000000-0000-0000-0000-000000000000", "j": "[]", "n": "0.05",
         "tz": "1970-01-02 00:00:00.000000+00", "ts": "1999-12-31 23:59:59.000000",
         "d": "1970-01-01", "t": "00:00:00", "e": "sad"}
    ]);
    check(&got, DUCK_TYPES, &rows);
}
