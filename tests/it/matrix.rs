//! The cross-engine matrix: PostgreSQL <-> MySQL, MySQL <-> SQLite, SQLite <-> PostgreSQL
//! on a table of the portable types, values compared after every hop (read back through
//! ferry's own readers and rendered engine-independently), and the conversions that must
//! be refused: by type in pre-flight before any write, by value per row.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow::record_batch::RecordBatch;
use ferry::source::{BatchLimits, Selection};
use predicates::prelude::PredicateBooleanExt;

use crate::common::{ferry, fixture};
use crate::postgres;
use crate::servers::{MyDb, PgDb, my, psql};

/// One value as text that does not depend on the engine it was read from: integers of
/// any width alike, floats as the double they denote, decimals without trailing zeros,
/// bytes and UUIDs as hex/hyphenated text, timestamps as microseconds (zone flag aside).
fn render(a: &dyn Array, i: usize) -> String {
    if a.is_null(i) {
        return "NULL".into();
    }
    match a.data_type() {
        DataType::Float32 => format!("{:?}", f64::from(a.as_primitive::<Float32Type>().value(i))),
        DataType::Float64 => format!("{:?}", a.as_primitive::<Float64Type>().value(i)),
        DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => {
            let s = arrow::util::display::array_value_to_string(a, i).unwrap();
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            }
        }
        DataType::Binary => hex::encode(a.as_binary::<i32>().value(i)),
        DataType::FixedSizeBinary(16) => uuid::Uuid::from_slice(a.as_fixed_size_binary().value(i))
            .unwrap()
            .hyphenated()
            .to_string(),
        DataType::Timestamp(_, _) => a
            .as_primitive::<TimestampMicrosecondType>()
            .value(i)
            .to_string(),
        DataType::Time64(_) => a
            .as_primitive::<Time64MicrosecondType>()
            .value(i)
            .to_string(),
        _ => arrow::util::display::array_value_to_string(a, i).unwrap(),
    }
}

/// Every row of `table` in the database at `url`, as sorted `col=value|…` lines, read with
/// ferry's reader for that engine.
fn values(url: &str, table: &str) -> Vec<String> {
    let mut src = ferry::engines::open_source(url, Default::default()).unwrap();
    src.begin_snapshot().unwrap();
    let mut tables = src
        .tables(&Selection {
            tables: vec![table.into()],
            exclude: vec![],
        })
        .unwrap();
    assert_eq!(tables.len(), 1, "{table} in {url}");
    let t = tables.remove(0);
    let mut rows = Vec::new();
    src.read(&t, None, BatchLimits::default(), &mut |b: RecordBatch| {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b
                .schema()
                .fields()
                .iter()
                .zip(b.columns())
                .map(|(f, a)| format!("{}={}", f.name(), render(a.as_ref(), r)))
                .collect();
            rows.push(cells.join("|"));
        }
        Ok(())
    })
    .unwrap();
    rows.sort();
    rows
}

fn lite_url(p: &std::path::Path) -> String {
    format!("sqlite://{}", p.display())
}

/// A bundle of `url` exported with the fixture's key, then imported into `target`.
fn hop(fx: &crate::common::Fixture, from: &str, to: &str, name: &str) {
    let b = fx.path(name);
    fx.export_to(from, &b, &[]);
    fx.import_to(&b, to, &[]);
}

const PG_PORTABLE: &str = r#"
CREATE TABLE portable (
  id bigint PRIMARY KEY, si smallint, i integer, bi bigint,
  n numeric(12,2), nw numeric(30,10), r real, f double precision,
  t text, vc varchar(40), b bytea, ok boolean,
  d date, ts timestamp, tz timestamptz, u uuid, j jsonb
);
CREATE INDEX portable_vc ON portable (vc);
INSERT INTO portable VALUES
 (1, -32768, -2147483648, -9223372036854775808, -9999999999.99, -12345678901234567890.0123456789,
  3.4028235e38, 0.1, E'\u00e9 \u4e2d \U0001F600 \U0001D11E', 'it''s "quoted"', '\x00ff10'::bytea, true,
  '0001-01-01', '0001-01-01 00:00:00', '1970-01-01 00:00:01+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{"a": [1, null, {"c": "\u00e9"}], "b": 1}'),
 (2, 32767, 2147483647, 9223372036854775807, 9999999999.99, 12345678901234567890.0123456789,
  -1.17549435e-38, -1e300, '', '', ''::bytea, false,
  '9999-12-31', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999+00', '00000000-0000-0000-0000-000000000000',
  '[]'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, 0, 0, 0, 0, 0, 0, 5e-324, 'tab	and
newline', 'x', '\x00'::bytea, true,
  '2024-02-29', '2024-02-29 12:34:56.123456', '2024-02-29 12:34:56.123456+05:30', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '"text"');
"#;

#[test]
fn postgres_to_mysql_to_postgres_keeps_every_portable_value() {
    let Some(pg1) = PgDb::new("mx1") else {
        return;
    };
    let Some(pg2) = PgDb::new("mx2") else {
        return;
    };
    let Some(m) = MyDb::new("mx") else {
        return;
    };
    psql(&pg1.url, PG_PORTABLE);
    let fx = fixture();
    let original = values(&pg1.url, "portable");
    assert_eq!(original.len(), 4);
    hop(&fx, &pg1.url, &m.url, "b1");
    assert_eq!(values(&m.url, "portable"), original, "PostgreSQL -> MySQL");
    // What each type became on MySQL.
    assert_eq!(
        my(
            &m.url,
            &format!(
                "SELECT GROUP_CONCAT(CONCAT(COLUMN_NAME, ' ', COLUMN_TYPE) ORDER BY ORDINAL_POSITION SEPARATOR ', ') \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = 'portable'",
                m.name
            )
        ),
        "id bigint(20), si smallint(6), i int(11), bi bigint(20), n decimal(12,2), nw decimal(30,10), \
         r float, f double, t longtext, vc varchar(40), b longblob, ok tinyint(1), d date, ts datetime(6), \
         tz timestamp(6), u uuid, j longtext"
    );
    hop(&fx, &m.url, &pg2.url, "b2");
    assert_eq!(
        values(&pg2.url, "portable"),
        original,
        "MySQL -> PostgreSQL"
    );
    let types = "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) \
                 FROM pg_attribute WHERE attrelid = 'portable'::regclass AND attnum > 0";
    assert_eq!(
        psql(&pg2.url, types),
        "id bigint, si smallint, i integer, bi bigint, n numeric(12,2), nw numeric(30,10), r real, \
         f double precision, t text, vc text, b bytea, ok boolean, d date, ts timestamp without time zone, \
         tz timestamp with time zone, u uuid, j jsonb"
    );
}

const MY_PORTABLE: &str = r#"
CREATE TABLE portable (
  id bigint PRIMARY KEY, si smallint, i int, bi bigint, bu bigint unsigned, iu int unsigned,
  n decimal(12,2), r float, f double, t text, vc varchar(40), b varbinary(16), ok boolean,
  d date, ts datetime(6), u uuid, j json
) DEFAULT CHARSET=utf8mb4;
INSERT INTO portable VALUES
 (1, -32768, -2147483648, -9223372036854775808, 9223372036854775807, 4294967295, -9999999999.99,
  3.40282e38, 0.1, 'é 中 😀 𝄞', 'it''s', 0x00ff10, true, '0001-01-01', '0001-01-01 00:00:00',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, null], "b": 1}'),
 (2, 32767, 2147483647, 9223372036854775807, 0, 0, 9999999999.99, -1.17549e-38, -1e300, '', '', '',
  false, '9999-12-31', '9999-12-31 23:59:59.999999', '00000000-0000-0000-0000-000000000000', '[]'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, 0, 0, 0, 1, 1, 0.01, 0, 5e-324, 'tab\tand\nnewline', 'x', 0x00, true, '2024-02-29',
  '2024-02-29 12:34:56.123456', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '"text"');
"#;

#[test]
fn mysql_to_sqlite_to_mysql_keeps_every_portable_value() {
    let Some(m1) = MyDb::new("ms1") else {
        return;
    };
    let Some(m2) = MyDb::new("ms2") else {
        return;
    };
    my(&m1.url, MY_PORTABLE);
    let fx = fixture();
    let lite = lite_url(&fx.path("mid.db"));
    let original = values(&m1.url, "portable");
    assert_eq!(original.len(), 4);
    hop(&fx, &m1.url, &lite, "b1");
    assert_eq!(values(&lite, "portable"), original, "MySQL -> SQLite");
    hop(&fx, &lite, &m2.url, "b2");
    assert_eq!(values(&m2.url, "portable"), original, "SQLite -> MySQL");
}

const LITE_PORTABLE: &str = r#"
CREATE TABLE portable (
  id INTEGER PRIMARY KEY, i INTEGER, n DECIMAL(12,2), f REAL, t TEXT, vc VARCHAR(40),
  b BLOB, ok BOOLEAN, d DATE, ts DATETIME, j JSON
);
INSERT INTO portable VALUES
 (1, -9223372036854775808, -9999999999.99, 0.1, 'é 中 😀 𝄞', 'it''s', x'00ff10', 1, '0001-01-01',
  '0001-01-01 00:00:00', '{"a": [1, null], "b": 1}'),
 (2, 9223372036854775807, 9999999999.99, -1e300, '', '', x'', 0, '9999-12-31',
  '9999-12-31 23:59:59.999999', '[]'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, 0, 0.01, 5e-324, 'tab' || char(9) || 'and' || char(10) || 'newline', 'x', x'00', 1, '2024-02-29',
  '2024-02-29 12:34:56.123456', '"text"');
"#;

#[test]
fn sqlite_to_postgres_to_sqlite_and_on_to_mysql_keeps_every_portable_value() {
    let Some(pg) = PgDb::new("sp") else {
        return;
    };
    let Some(m) = MyDb::new("spm") else {
        return;
    };
    let fx = fixture();
    let src = fx.path("src2.db");
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute_batch(LITE_PORTABLE)
        .unwrap();
    let original = values(&lite_url(&src), "portable");
    assert_eq!(original.len(), 4);
    hop(&fx, &lite_url(&src), &pg.url, "b1");
    assert_eq!(
        values(&pg.url, "portable"),
        original,
        "SQLite -> PostgreSQL"
    );
    let back = lite_url(&fx.path("back.db"));
    hop(&fx, &pg.url, &back, "b2");
    assert_eq!(values(&back, "portable"), original, "PostgreSQL -> SQLite");
    hop(&fx, &lite_url(&src), &m.url, "b3");
    assert_eq!(values(&m.url, "portable"), original, "SQLite -> MySQL");
}

#[test]
fn conversions_mysql_cannot_take_are_refused_before_any_write_naming_table_column_and_types() {
    let Some(pg) = PgDb::new("mref") else {
        return;
    };
    let Some(m) = MyDb::new("mref") else {
        return;
    };
    psql(
        &pg.url,
        "CREATE TABLE ok_one (id int PRIMARY KEY);
         CREATE TABLE plan (id int, every interval, tags int[], wide numeric(70,5));
         INSERT INTO ok_one VALUES (1); INSERT INTO plan VALUES (1, '1 day', '{1,2}', 1.5);",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&pg.url, &b, &[]);
    ferry()
        .args(["import", b.to_str().unwrap(), &m.url, "--key-file"])
        .arg(&fx.key)
        .assert()
        .code(65)
        .stderr(
            predicates::str::contains("public.plan.every (interval from interval)")
                .and(predicates::str::contains(
                    "public.plan.tags (int32[] from integer[])",
                ))
                .and(predicates::str::contains(
                    "public.plan.wide (decimal(70,5) from numeric(70,5))",
                ))
                .and(predicates::str::contains("MySQL has no interval type")),
        );
    // Nothing at all was written: not the table that could load, not the ledger.
    assert_eq!(
        my(
            &m.url,
            &format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}'",
                m.name
            )
        ),
        "0"
    );
}

#[test]
fn unsigned_bigint_above_i64_goes_into_numeric_20_or_fails_naming_table_column_and_row() {
    let Some(m) = MyDb::new("ubig") else {
        return;
    };
    let Some(pg) = PgDb::new("ubig") else {
        return;
    };
    let Some(pg2) = PgDb::new("ubig2") else {
        return;
    };
    my(
        &m.url,
        "CREATE TABLE counters (id int PRIMARY KEY, hits bigint unsigned);
         INSERT INTO counters VALUES (1, 0), (2, 9223372036854775807), (3, 18446744073709551615), (4, NULL);",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&m.url, &b, &[]);
    // A new table: the column is numeric(20,0), every value exact.
    fx.import_to(&b, &pg.url, &[]);
    assert_eq!(
        psql(
            &pg.url,
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'counters'::regclass AND attname = 'hits'"
        ),
        "numeric(20,0)"
    );
    assert_eq!(
        psql(
            &pg.url,
            "SELECT string_agg(coalesce(hits::text, 'NULL'), ',' ORDER BY id) FROM counters"
        ),
        "0,9223372036854775807,18446744073709551615,NULL"
    );
    // An existing bigint column cannot hold row 3: the part fails naming it, nothing stays.
    psql(
        &pg2.url,
        "CREATE TABLE counters (id int PRIMARY KEY, hits bigint)",
    );
    ferry()
        .args([
            "import",
            b.to_str().unwrap(),
            &pg2.url,
            "--mode",
            "append",
            "--key-file",
        ])
        .arg(&fx.key)
        .assert()
        .code(65)
        .stderr(
            predicates::str::contains("column \"hits\"")
                .and(predicates::str::contains("row 3"))
                .and(predicates::str::contains("18446744073709551615")),
        );
    assert_eq!(psql(&pg2.url, "SELECT count(*) FROM counters"), "0");
    // SQLite's integers are signed 64-bit: the same row is refused there by name.
    let lite = fx.path("c.db");
    ferry()
        .args([
            "import",
            b.to_str().unwrap(),
            &lite_url(&lite),
            "--key-file",
        ])
        .arg(&fx.key)
        .assert()
        .code(65)
        .stderr(
            predicates::str::contains("column \"hits\"").and(predicates::str::contains("row 3")),
        );
}

#[test]
fn values_mysql_cannot_hold_fail_their_part_naming_table_column_and_row() {
    let Some(pg) = PgDb::new("mval") else {
        return;
    };
    let Some(m) = MyDb::new("mval") else {
        return;
    };
    psql(
        &pg.url,
        "CREATE TABLE readings (id int PRIMARY KEY, v double precision, at timestamptz);
         INSERT INTO readings VALUES (1, 1.5, '2024-01-01 00:00:00+00'), (2, 'NaN', '2024-01-01 00:00:00+00');",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&pg.url, &b, &[]);
    ferry()
        .args(["import", b.to_str().unwrap(), &m.url, "--key-file"])
        .arg(&fx.key)
        .assert()
        .code(65)
        .stderr(
            predicates::str::contains("table readings, column \"v\", row 2")
                .and(predicates::str::contains("NaN")),
        );
    assert_eq!(my(&m.url, "SELECT COUNT(*) FROM readings"), "0");
    assert_eq!(my(&m.url, "SELECT COUNT(*) FROM _ferry_ledger"), "0");
}

#[test]
fn wide_decimals_and_timestamptz_survive_a_hop_through_sqlite_exactly() {
    let Some(a) = PgDb::new("wide") else {
        return;
    };
    let Some(z) = PgDb::new("wideback") else {
        return;
    };
    psql(
        &a.url,
        "CREATE TABLE wide (id bigint PRIMARY KEY, d30 numeric(30,10), d38 numeric(38,0), nu numeric, tz timestamptz);
         INSERT INTO wide VALUES
          (1, -12345678901234567890.0123456789, 99999999999999999999999999999999999999,
           '1234567890123456789012345678901234567890.0000000001', '2024-02-29 12:34:56.123456+05:30'),
          (2, 0.0000000001, -1, 'NaN', '0001-01-01 00:00:00+00'),
          (3, 1.5, 0, '-Infinity', '1969-12-31 23:59:59.999999-08'),
          (4, NULL, NULL, NULL, NULL);",
    );
    let fx = fixture();
    let lite = fx.path("mid.db");
    hop(&fx, &a.url, &lite_url(&lite), "b1");
    // In SQLite the wide values are exact text, not REALs rounded to 15 digits.
    let c = rusqlite::Connection::open(&lite).unwrap();
    let (d30, ty): (String, String) = c
        .query_row("SELECT d30, typeof(d30) FROM wide WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        (d30.as_str(), ty.as_str()),
        ("-12345678901234567890.0123456789", "text")
    );
    assert_eq!(
        values(&lite_url(&lite), "wide"),
        values(&a.url, "wide"),
        "PostgreSQL -> SQLite"
    );
    hop(&fx, &lite_url(&lite), &z.url, "b2");
    assert_eq!(postgres::fingerprint(&a.url), postgres::fingerprint(&z.url));
}
