//! `--as-text` across engines: PostgreSQL values a target has no column type for
//! (intervals, arrays, decimals wider than the target holds, inet) load as PostgreSQL's own
//! text form and come back exactly on a hop back to PostgreSQL; without the flag each such
//! column is refused by name (table, column, type) before anything is written.

use crate::common::{Fixture, ferry, fixture, ledger_rows, user_tables};
use crate::servers::{MyDb, PgDb, my, psql};

/// The acceptance table, with NULLs, empty arrays, NULL elements and elements that need
/// quoting, plus an unconstrained numeric holding NaN (which SQLite takes without the flag).
const KINDS: &str = r#"
CREATE TABLE kinds (
  id int PRIMARY KEY,
  n50 numeric(50,10), iv interval, ai int[], at text[], ip inet, nu numeric
);
INSERT INTO kinds VALUES
 (1, 1234567890123456789012345678901234567890.1234567890, '-1 year 2 mons -3 days 04:05:06.789',
  '{1,NULL,3}', '{"a",NULL,"","quote\"d"}', '192.168.0.1/24', 'NaN'),
 (2, -0.0000000001, '0 seconds', '{}', '{}', '::1', '123.4500'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, 0, '1 mon 1 day 0.000001 sec', '{NULL}',
  ARRAY[' x', 'null', 'NULL', 'a,b', '{}', 'back\slash', E'tab\there', E'line\nbreak', 'é 中', 'a b'],
  '10.0.0.0/8', '-Infinity'),
 (5, 42, '1 day -00:00:01', ARRAY[-2147483648, 2147483647, 0], '{x}', '::ffff:1.2.3.4', '1e-20'),
 (6, -1, '-1 days +00:00:01', ARRAY[NULL, NULL]::int[], ARRAY[NULL]::text[], NULL, '0'),
 (7, 1, '1000000 hours 0.5 sec', '{7}', '{""}', NULL, NULL),
 (8, 2, '-1 mons -00:00:01', NULL, NULL, NULL, NULL),
 (9, 3, '14 mons', NULL, NULL, NULL, NULL),
 (10, 4, '-2 mons +3 days', NULL, NULL, NULL, NULL);
"#;

/// Arrays of the element types PostgreSQL arrays carry, so each element's text form is
/// checked against PostgreSQL's own output. Not interval[]: it travels as PostgreSQL's text
/// form already (Parquet has no interval type to nest), like inet; see `fidelity`.
const ELEMS: &str = r#"
CREATE TABLE elems (
  id int PRIMARY KEY,
  f8 float8[], f4 real[], nn numeric(5,2)[], nx numeric[], b bool[], d date[], ts timestamp[],
  tz timestamptz[], tm time[], by bytea[], jb jsonb[], u uuid[],
  vc varchar(5)[], ch char(3)[], big int8[], sm int2[]
);
INSERT INTO elems VALUES
 (1, '{1.5,NaN,-Infinity,Infinity,1e+15,100000000000000,1e-05,0.0001,-0,5e-324,0.1,1e+300,-1.2345678901234567e-300}',
  '{1e+06,123456,1.1754944e-38,3.4028235e+38,0.1,-2.5}', '{1.50,NULL,-0.01,999.99}', '{NaN,123.4500,-1e-20,0}',
  '{t,f,NULL}', '{2024-02-29,0044-03-15 BC,infinity,-infinity,0001-01-01}',
  '{"2024-02-29 12:34:56.123456","4713-11-24 00:00:00 BC",infinity,"1999-12-31 23:59:59.5"}',
  '{"2024-01-01 10:00:00+00","1970-01-01 00:00:00.5+00",-infinity,"0044-03-15 12:00:00+00 BC"}',
  '{10:00:00.5,24:00:00,00:00:00,23:59:59.999999}',
  '{"\\x00ff","\\x",NULL}',
  ARRAY['{"a": [1, null], "b\"": "x y"}'::jsonb, '"x y"', 'null', '[]'],
  '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,00000000-0000-0000-0000-000000000000}',
  '{"a b","",NULL,"NULL",é}', '{ab,x,NULL}', '{-9223372036854775808,9223372036854775807}', '{-32768,32767}'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}');
"#;

const KINDS_COLS: &[&str] = &["n50", "iv", "ai", "at", "ip", "nu"];
const ELEMS_COLS: &[&str] = &[
    "f8", "f4", "nn", "nx", "b", "d", "ts", "tz", "tm", "by", "jb", "u", "vc", "ch", "big", "sm",
];

/// Every row of `table` as `id|col::text|…` (NULL as `<null>`), printed in a session with
/// PostgreSQL's default output settings and TimeZone UTC.
fn texts(url: &str, table: &str, cols: &[&str]) -> Vec<String> {
    let sel: Vec<String> = cols
        .iter()
        .map(|c| format!("coalesce({c}::text, '<null>')"))
        .collect();
    psql(
        url,
        &format!(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = postgres; \
             SET extra_float_digits = 1; SET bytea_output = hex; \
             SELECT id, {} FROM {table} ORDER BY id",
            sel.join(", ")
        ),
    )
    .lines()
    .map(str::to_string)
    .collect()
}

fn key(fx: &Fixture) -> [&str; 2] {
    ["--key-file", fx.key.to_str().unwrap()]
}

fn column_types(url: &str, table: &str) -> String {
    psql(
        url,
        &format!(
            "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) \
             FROM pg_attribute WHERE attrelid = 'public.{table}'::regclass AND attnum > 0"
        ),
    )
}

#[test]
fn postgres_to_sqlite_and_back_carries_intervals_arrays_wide_numerics_and_inet_only_with_as_text() {
    let Some(src) = PgDb::new("astext_src") else {
        return;
    };
    let Some(dst) = PgDb::new("astext_dst") else {
        return;
    };
    psql(&src.url, KINDS);
    psql(&src.url, ELEMS);
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let lite = fx.path("kinds.db");
    let lite_url = format!("sqlite://{}", lite.display());

    // Without --as-text: one pre-flight message naming table, column and type of each, and
    // nothing written (no table, no ledger).
    let out = ferry()
        .args(["import", b.to_str().unwrap(), &lite_url])
        .args(key(&fx))
        .assert()
        .code(65);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    for named in [
        "public.kinds.n50 (decimal(50,10) from numeric(50,10)): sqlite cannot take it",
        "public.kinds.iv (interval from interval): sqlite cannot take it: SQLite has no interval type",
        "public.kinds.ai (int32[] from integer[]): sqlite cannot take it: SQLite has no array type",
        "public.kinds.at (utf8[] from text[]): sqlite cannot take it",
        "public.kinds.ip (inet) has no portable type",
        "public.elems.f8 (float64[] from double precision[])",
        "public.elems.tz (timestamptz[] from timestamp with time zone[])",
        "nothing was written",
        "--as-text",
    ] {
        assert!(err.contains(named), "{named:?} not in:\n{err}");
    }
    assert!(!err.contains("kinds.nu "), "{err}");
    assert_eq!(user_tables(&lite), Vec::<String>::new());
    assert_eq!(ledger_rows(&lite), 0);

    // With it: PostgreSQL's text form, in TEXT columns (DECIMAL_TEXT for the wide decimal).
    fx.import_to(&b, &lite_url, &["--as-text"]);
    let c = rusqlite::Connection::open(&lite).unwrap();
    let declared: Vec<String> = c
        .prepare("SELECT name || ' ' || type FROM pragma_table_info('kinds') ORDER BY cid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        declared,
        [
            "id INTEGER",
            "n50 DECIMAL_TEXT(50,10)",
            "iv TEXT",
            "ai TEXT",
            "at TEXT",
            "ip TEXT",
            "nu NUMERIC_TEXT"
        ]
    );
    let row1: (String, String, String, String, String) = c
        .query_row(
            "SELECT n50, iv, ai, at, nu FROM kinds WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        row1,
        (
            "1234567890123456789012345678901234567890.1234567890".into(),
            "-10 mons -3 days +04:05:06.789".into(),
            "{1,NULL,3}".into(),
            r#"{a,NULL,"","quote\"d"}"#.into(),
            "NaN".into()
        )
    );
    let empty: (String, String, Option<String>) = c
        .query_row(
            "SELECT ai, at, typeof(iv) FROM kinds WHERE id = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(empty, ("{}".into(), "{}".into(), Some("text".into())));
    let nulls: i64 = c
        .query_row(
            "SELECT count(*) FROM kinds WHERE id = 3 AND n50 IS NULL AND iv IS NULL AND ai IS NULL \
             AND at IS NULL AND ip IS NULL AND nu IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(nulls, 1);
    drop(c);

    // The hop back: every value's text on the final PostgreSQL is the source's `col::text`.
    // The wide decimal comes back as numeric (SQLite's DECIMAL_TEXT(50,10) reads as an
    // exact unconstrained numeric, which keeps its scale), the others as text.
    let back = fx.path("back");
    fx.export_to(&lite_url, &back, &[]);
    fx.import_to(&back, &dst.url, &[]);
    assert_eq!(
        texts(&dst.url, "kinds", KINDS_COLS),
        texts(&src.url, "kinds", KINDS_COLS)
    );
    assert_eq!(
        texts(&dst.url, "elems", ELEMS_COLS),
        texts(&src.url, "elems", ELEMS_COLS)
    );
    assert_eq!(
        column_types(&dst.url, "kinds"),
        "id bigint, n50 numeric, iv text, ai text, at text, ip text, nu numeric"
    );
    // Into tables that already have the source's types (--mode append): each text value
    // goes through its type's input function and the copy is the source again.
    let Some(typed) = PgDb::new("astext_typed") else {
        return;
    };
    psql(
        &typed.url,
        "CREATE TABLE kinds (id int PRIMARY KEY, n50 numeric(50,10), iv interval, ai int[],          at text[], ip inet, nu numeric);",
    );
    fx.import_to(&back, &typed.url, &["--mode", "append", "--table", "kinds"]);
    assert_eq!(
        texts(&typed.url, "kinds", KINDS_COLS),
        texts(&src.url, "kinds", KINDS_COLS)
    );
    assert_eq!(
        column_types(&typed.url, "kinds"),
        "id integer, n50 numeric(50,10), iv interval, ai integer[], at text[], ip inet, nu numeric"
    );
    // spot checks of PostgreSQL's spelling, so equal-but-wrong on both sides cannot pass
    let e1 = &texts(&dst.url, "elems", &["f8", "tz", "by", "ch"])[0];
    assert_eq!(
        e1,
        r#"1|{1.5,NaN,-Infinity,Infinity,1e+15,100000000000000,1e-05,0.0001,-0,5e-324,0.1,1e+300,-1.2345678901234568e-300}|{"2024-01-01 10:00:00+00","1970-01-01 00:00:00.5+00",-infinity,"0044-03-15 12:00:00+00 BC"}|{"\\x00ff","\\x",NULL}|{"ab ","x  ",NULL}"#
    );
}

#[test]
fn postgres_to_mariadb_loads_intervals_arrays_and_too_wide_decimals_as_text_only_with_as_text() {
    let Some(src) = PgDb::new("astext_my_src") else {
        return;
    };
    let Some(back) = PgDb::new("astext_my_back") else {
        return;
    };
    let Some(m) = MyDb::new("astext") else {
        return;
    };
    // No NaN here: MySQL's DECIMAL has none (an unconstrained numeric is refused by row).
    psql(
        &src.url,
        &format!(
            "{KINDS}
             ALTER TABLE kinds DROP COLUMN nu, ADD COLUMN wide numeric(70,5), ADD COLUMN deep numeric(38,35);
             UPDATE kinds SET wide = -1234567890123456789012345678901234567890123456789012345678901234.5,
                              deep = 0.12345678901234567890123456789012345 WHERE id = 1;"
        ),
    );
    let cols = ["n50", "iv", "ai", "at", "ip", "wide", "deep"];
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);

    let out = ferry()
        .args(["import", b.to_str().unwrap(), &m.url])
        .args(key(&fx))
        .assert()
        .code(65);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    for named in [
        "public.kinds.iv (interval from interval): mysql cannot take it: MySQL has no interval type; \
         load it as its text form with --as-text",
        "public.kinds.ai (int32[] from integer[]): mysql cannot take it: MySQL has no array type",
        "public.kinds.at (utf8[] from text[])",
        "public.kinds.ip (inet) has no portable type",
        "public.kinds.wide (decimal(70,5) from numeric(70,5))",
        "public.kinds.deep (decimal(38,35) from numeric(38,35))",
        "nothing was written",
    ] {
        assert!(err.contains(named), "{named:?} not in:\n{err}");
    }
    // numeric(50,10) fits MariaDB's DECIMAL(50,10) (65 digits, 30 after the point): exact.
    assert!(!err.contains("kinds.n50"), "{err}");
    let tables = |m: &MyDb| {
        my(
            &m.url,
            &format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}'",
                m.name
            ),
        )
    };
    assert_eq!(tables(&m), "0");

    fx.import_to(&b, &m.url, &["--as-text"]);
    assert_eq!(
        my(
            &m.url,
            &format!(
                "SELECT GROUP_CONCAT(CONCAT(COLUMN_NAME, ' ', COLUMN_TYPE) ORDER BY ORDINAL_POSITION SEPARATOR ', ') \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = 'kinds'",
                m.name
            )
        ),
        "id int(11), n50 decimal(50,10), iv longtext, ai longtext, at longtext, ip longtext, wide longtext, \
         deep longtext"
    );
    assert_eq!(
        my(
            &m.url,
            "SELECT CONCAT_WS('|', n50, iv, ai) FROM kinds WHERE id = 1"
        ),
        "1234567890123456789012345678901234567890.1234567890|-10 mons -3 days +04:05:06.789|{1,NULL,3}"
    );
    // Back to PostgreSQL: the same text as the source's `col::text`, numeric(50,10) again.
    let b2 = fx.path("b2");
    fx.export_to(&m.url, &b2, &[]);
    fx.import_to(&b2, &back.url, &[]);
    assert_eq!(
        texts(&back.url, "kinds", &cols),
        texts(&src.url, "kinds", &cols)
    );
    assert!(
        column_types(&back.url, "kinds").starts_with("id integer, n50 numeric(50,10), iv text"),
        "{}",
        column_types(&back.url, "kinds")
    );
}

#[test]
fn a_numeric_column_that_travels_as_text_because_of_nan_says_so_and_loads_as_text_into_mariadb() {
    let Some(src) = PgDb::new("astext_nan") else {
        return;
    };
    let Some(m) = MyDb::new("astext_nan") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE price (id int PRIMARY KEY, p numeric(10,2));
         INSERT INTO price VALUES (1, 'NaN'), (2, 12.50), (3, NULL);",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    // Without --as-text: the reason is the value, named with its row; nothing written.
    let out = ferry()
        .args(["import", b.to_str().unwrap(), &m.url])
        .args(key(&fx))
        .assert()
        .code(65);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("public.price.p (numeric(10,2)) travels as its text form because a value has no portable form (row 1:"),
        "{err}"
    );
    assert!(err.contains("NaN"), "{err}");
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
    // With it: the text PostgreSQL prints, in a text column.
    fx.import_to(&b, &m.url, &["--as-text"]);
    assert_eq!(
        my(
            &m.url,
            "SELECT id, IFNULL(p, 'N'), DATA_TYPE FROM price, information_schema.COLUMNS \
                    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'price' AND COLUMN_NAME = 'p' ORDER BY id"
        ),
        "1\tNaN\tlongtext\n2\t12.50\tlongtext\n3\tN\tlongtext"
    );
}
