//! PostgreSQL source and target against the real server (FERRY_TEST_PG_URL, default
//! postgres://postgres@127.0.0.1:5432/test). Each test makes its own databases and drops
//! them. Without a server the tests fail under CI=true and are skipped loudly elsewhere.

use std::process::Command as Proc;
use std::time::Duration;

use crate::common::{ferry, fixture, wait_until};
use crate::servers::{PgDb, pg_admin_url, psql};

pub const FIXTURE: &str = r#"
CREATE SCHEMA "Sales";
CREATE TYPE "Sales".mood AS ENUM ('sad', 'ok', 'happy', 'it''s', 'Happy-ÜBER', 'ÉTÉ');
CREATE TABLE "Sales"."Order Items" (
  id bigint PRIMARY KEY,
  small smallint, i integer NOT NULL DEFAULT 7, big bigint,
  r real, d double precision,
  n12 numeric(12,2), n50 numeric(50,10), nu numeric,
  t text, vc varchar(40) DEFAULT 'none', ch char(5),
  b bytea, ok boolean,
  dt date, ts timestamp, tz timestamptz, tm time, iv interval,
  u uuid, j json, jb jsonb,
  ai integer[], at text[], m "Sales".mood DEFAULT 'Happy-ÜBER', ma "Sales".mood[],
  ip inet, net cidr, mac macaddr, tsv tsvector
);
CREATE UNIQUE INDEX order_items_vc ON "Sales"."Order Items" (vc);
CREATE INDEX order_items_dt ON "Sales"."Order Items" (dt, ts);
CREATE TABLE public."user" (id integer PRIMARY KEY, "select" text, item bigint REFERENCES "Sales"."Order Items" (id));
CREATE TABLE public.empty_one (a integer, b text);
INSERT INTO "Sales"."Order Items" VALUES
 (1, -32768, 2147483647, -9223372036854775808, 'NaN', 'Infinity', -9999999999.99,
  1234567890123456789012345678901234567890.1234567890, 'NaN',
  E'plain \u00e9 \u4e2d \U0001F600 \U0001D11E \U0010FFFF', '', 'ab', '\x00ff00'::bytea, true,
  'infinity', '-infinity', 'infinity', '23:59:59.999999', '-1 year 2 mons -3 days 04:05:06.789',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": 1,  "a": 2}', '{"b": 1, "a": [1, 2, {"c": null}]}',
  '{1,NULL,3}', '{"a",NULL,"","quote\"d"}', 'happy', '{sad,NULL,it''s,Happy-ÜBER}',
  '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', 'a fat cat sat'),
 (2, 0, 0, 9223372036854775807, '-0', '-Infinity', 0, -0.0000000001, '123.4500',
  '', 'x', 'abcde', ''::bytea, false,
  '4713-11-24 BC', '0001-01-01 00:00:00', '-infinity', '00:00:00', '0 seconds',
  '00000000-0000-0000-0000-000000000000', 'null', '[]', '{}', '{}', 'ÉTÉ', '{}',
  '::1', '::/0', '00:00:00:00:00:00', ''),
 (3, NULL, 3, NULL, NULL, 5e-324, NULL, NULL, '-Infinity', NULL, NULL, NULL, NULL, NULL,
  '2024-02-29', '2024-02-29 12:34:56.123456', '2024-02-29 12:34:56.123456+05:30', NULL, '1 mon 1 day 0.000001 sec',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO "Sales"."Order Items" (id, i, n12, nu, t, vc, dt, tz, ai, jb)
  SELECT g, g % 1000, g / 7.0, (g * 1.5)::numeric, repeat('x', g % 50) || g, 'v' || g,
         date '2000-01-01' + g, timestamptz '2020-01-01 00:00:00+00' + g * interval '1 minute',
         ARRAY[g, g + 1], jsonb_build_object('g', g)
  FROM generate_series(10, 5009) g;
INSERT INTO public."user" VALUES (1, 'from', 1), (2, NULL, NULL), (3, '', 2);
"#;

/// `md5` of every row's text form per table, and every column's format_type.
pub fn fingerprint(url: &str) -> Vec<String> {
    let tables = psql(
        url,
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_%' \
         AND c.relname <> '_ferry_ledger' ORDER BY 1",
    );
    let mut out = Vec::new();
    for t in tables.lines() {
        out.push(format!("{t} {}", psql(url, &format!("SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '-') FROM {t} t"))));
        out.push(format!(
            "{t} types {}",
            psql(url, &format!("SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = '{t}'::regclass AND attnum > 0 AND NOT attisdropped"))
        ));
    }
    out
}

fn key_args(fx: &crate::common::Fixture) -> Vec<String> {
    vec!["--key-file".into(), fx.key.to_str().unwrap().into()]
}

#[test]
fn postgres_round_trip_is_exact_for_every_type_and_keeps_constraints() {
    let Some(src) = PgDb::new("src") else {
        return;
    };
    let Some(dst) = PgDb::new("dst") else {
        return;
    };
    psql(&src.url, FIXTURE);
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    fx.import_to(&b, &dst.url, &["--jobs", "3"]);
    let (a, z) = (fingerprint(&src.url), fingerprint(&dst.url));
    assert_eq!(a, z);
    assert_eq!(a.len(), 6);
    // keys, indexes, foreign keys, defaults
    let idx = psql(
        &dst.url,
        "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname IN ('Sales', 'public') AND tablename <> '_ferry_ledger'",
    );
    assert!(
        idx.contains("order_items_vc") && idx.contains("order_items_dt"),
        "{idx}"
    );
    let pk = psql(
        &dst.url,
        "SELECT count(*) FROM pg_constraint WHERE contype = 'p' AND conrelid IN ('\"Sales\".\"Order Items\"'::regclass, 'public.\"user\"'::regclass)",
    );
    assert_eq!(pk, "2");
    let fk = psql(
        &dst.url,
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = 'public.\"user\"'::regclass",
    );
    assert_eq!(fk, "1");
    let def = psql(
        &dst.url,
        "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = '\"Sales\".\"Order Items\"'::regclass ORDER BY adnum",
    );
    assert_eq!(
        def,
        "7\n'none'::character varying\n'Happy-ÜBER'::\"Sales\".mood"
    );
    let unique = psql(
        &dst.url,
        "SELECT indisunique FROM pg_index WHERE indexrelid = '\"Sales\".order_items_vc'::regclass",
    );
    assert_eq!(unique, "t");
    // compare agrees
    ferry()
        .args(["compare", &src.url, &dst.url])
        .assert()
        .success();
    // and a second import is a no-op
    ferry()
        .args(["import", b.to_str().unwrap(), &dst.url])
        .args(key_args(&fx))
        .assert()
        .success()
        .stdout(predicates::str::contains("already imported"));
}

#[test]
fn export_is_one_consistent_snapshot_under_concurrent_writes() {
    let Some(src) = PgDb::new("snap") else {
        return;
    };
    let Some(dst) = PgDb::new("snapdst") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE a (id int PRIMARY KEY, v bigint NOT NULL, pad text);
         CREATE TABLE b (id int PRIMARY KEY, v bigint NOT NULL, pad text);
         INSERT INTO a SELECT g, 0, repeat('p', 200) FROM generate_series(1, 200000) g;
         INSERT INTO b SELECT g, 0, repeat('p', 200) FROM generate_series(1, 1000) g;",
    );
    // A writer that moves both tables forward together, one transaction per step.
    let writer_url = src.url.clone();
    let writer = std::thread::spawn(move || {
        psql(
            &writer_url,
            "DO $$ BEGIN FOR i IN 1..400 LOOP UPDATE b SET v = v + 1; UPDATE a SET v = v + 1 WHERE id <= 1000; COMMIT; PERFORM pg_sleep(0.002); END LOOP; END $$;",
        )
    });
    // The export starts once the writer has committed its first step.
    wait_until(
        "the writer has committed a step",
        Duration::from_secs(30),
        || psql(&src.url, "SELECT sum(v) > 0 FROM b") == "t",
    );
    let fx = fixture();
    let bundle = fx.path("b");
    ferry()
        .args([
            "export",
            &src.url,
            bundle.to_str().unwrap(),
            "--no-encrypt",
            "--batch-rows",
            "1000",
            "--jobs",
            "2",
            "--split-min-size",
            "1MiB",
        ])
        .assert()
        .success();
    writer.join().unwrap();
    ferry()
        .args([
            "import",
            bundle.to_str().unwrap(),
            &dst.url,
            "--allow-unencrypted",
        ])
        .assert()
        .success();
    let sa = psql(&dst.url, "SELECT sum(v) FROM a WHERE id <= 1000");
    let sb = psql(&dst.url, "SELECT sum(v) FROM b");
    assert_eq!(sa, sb, "tables from two different instants");
    let now = psql(&src.url, "SELECT sum(v) FROM b");
    assert_eq!(now, "400000", "the writer ran to completion");
}

#[test]
fn postgres_to_sqlite_to_postgres_keeps_portable_values() {
    let Some(src) = PgDb::new("p2s") else {
        return;
    };
    let Some(dst) = PgDb::new("s2p") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE portable (id bigint PRIMARY KEY, i integer, n numeric(12,2), f double precision, t text,
                                b bytea, ok boolean, d date, ts timestamp, j jsonb);
         INSERT INTO portable VALUES
           (1, -2147483648, -1234567890.12, 0.1, E'\\u00e9\\U0001F600', '\\x00ff'::bytea, true, '2024-02-29', '2024-02-29 12:34:56.123456', '{\"a\": 1}'),
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
           (3, 7, 0, -1e300, '', ''::bytea, false, '1970-01-01', '1970-01-01 00:00:00', '[]');",
    );
    let fx = fixture();
    let b1 = fx.path("b1");
    let lite = fx.path("mid.db");
    let b2 = fx.path("b2");
    fx.export_to(&src.url, &b1, &[]);
    ferry()
        .args([
            "import",
            b1.to_str().unwrap(),
            &format!("sqlite://{}", lite.display()),
        ])
        .args(key_args(&fx))
        .assert()
        .success();
    ferry()
        .args([
            "export",
            &format!("sqlite://{}", lite.display()),
            b2.to_str().unwrap(),
        ])
        .args(key_args(&fx))
        .assert()
        .success();
    fx.import_to(&b2, &dst.url, &[]);
    let q = "SELECT id, i, n, f, t, b, ok, d, ts, j FROM portable ORDER BY id";
    assert_eq!(psql(&src.url, q), psql(&dst.url, q));
    ferry()
        .args(["compare", &src.url, &dst.url])
        .assert()
        .success();
}

#[test]
fn a_type_without_portable_form_is_refused_cross_engine_by_name_unless_as_text() {
    let Some(src) = PgDb::new("astext") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE hosts (id int PRIMARY KEY, addr inet, tags tsvector); INSERT INTO hosts VALUES (1, '10.1.2.3/16', 'a b'), (2, NULL, NULL);",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let lite = fx.path("hosts.db");
    let lite_url = format!("sqlite://{}", lite.display());
    ferry()
        .args(["import", b.to_str().unwrap(), &lite_url])
        .args(key_args(&fx))
        .assert()
        .code(65)
        .stderr(
            predicates::str::contains("public.hosts.addr (inet)")
                .and(predicates::str::contains("--as-text")),
        );
    assert_eq!(crate::common::user_tables(&lite), Vec::<String>::new());
    fx.import_to(&b, &lite_url, &["--as-text"]);
    let c = rusqlite::Connection::open(&lite).unwrap();
    let addr: String = c
        .query_row("SELECT addr FROM hosts WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(addr, "10.1.2.3/16");
}

use predicates::prelude::PredicateBooleanExt;

#[test]
fn columns_sqlite_cannot_take_are_refused_before_any_write() {
    let Some(src) = PgDb::new("refuse") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE plan (id int, every interval, tags int[]); INSERT INTO plan VALUES (1, '1 day', '{1,2}');",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let lite = fx.path("plan.db");
    ferry()
        .args([
            "import",
            b.to_str().unwrap(),
            &format!("sqlite://{}", lite.display()),
        ])
        .args(key_args(&fx))
        .assert()
        .code(65)
        .stderr(
            predicates::str::contains("public.plan.every (interval from interval)")
                .and(predicates::str::contains("public.plan.tags")),
        );
    assert_eq!(crate::common::user_tables(&lite), Vec::<String>::new());
    assert_eq!(crate::common::ledger_rows(&lite), 0);
}

#[test]
fn one_table_read_as_parallel_ranges_round_trips_exactly() {
    let Some(src) = PgDb::new("split") else {
        return;
    };
    let Some(dst) = PgDb::new("splitdst") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE wide (id bigint PRIMARY KEY, v text, n numeric(12,2));
         INSERT INTO wide SELECT g, repeat(md5(g::text), 3), g / 3.0 FROM generate_series(1, 60000) g;
         DELETE FROM wide WHERE id % 7 = 0;",
    );
    let fx = fixture();
    let b = fx.path("b");
    ferry()
        .args([
            "export",
            &src.url,
            b.to_str().unwrap(),
            "--jobs",
            "3",
            "--split-min-size",
            "0",
        ])
        .args(key_args(&fx))
        .assert()
        .success();
    let (fp, _, parts) = catalog_table(&fx, &b);
    assert_eq!(parts, 3, "three ranges, three parts");
    fx.import_to(&b, &dst.url, &[]);
    assert_eq!(fingerprint(&src.url), fingerprint(&dst.url));
    // the catalog's fingerprint (summed over ranges) equals a fresh one of the source
    ferry()
        .args(["compare", &src.url, &dst.url])
        .assert()
        .success()
        .stdout(predicates::str::contains(fp));
}

/// The catalog's fingerprint and row count of the one table of a bundle, and its parts.
fn catalog_table(fx: &crate::common::Fixture, b: &std::path::Path) -> (String, u64, usize) {
    let out = ferry()
        .args(["inspect", b.to_str().unwrap(), "--json"])
        .args(key_args(fx))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let t = &j["catalog"]["tables"][0];
    (
        t["fingerprint"].as_str().unwrap().to_string(),
        t["rows"].as_u64().unwrap(),
        crate::common::manifest(b)["parts"]
            .as_array()
            .unwrap()
            .len(),
    )
}

#[test]
fn one_table_read_over_several_streams_is_the_one_connection_export() {
    let Some(src) = PgDb::new("streams") else {
        return;
    };
    let Some(dst) = PgDb::new("streamsdst") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE wide (id bigint PRIMARY KEY, v text, n numeric(12,2), j jsonb);
         INSERT INTO wide SELECT g, repeat(md5(g::text), 3), g / 3.0, jsonb_build_object('g', g)
         FROM generate_series(1, 60000) g;
         DELETE FROM wide WHERE id % 7 = 0;",
    );
    let fx = fixture();
    let one = fx.path("one");
    let three = fx.path("three");
    fx.export_to(&src.url, &one, &["--streams", "1", "--split-min-size", "0"]);
    // Not --quiet: the line that says how the table was read is checked.
    let out = assert_cmd::Command::cargo_bin("ferry")
        .unwrap()
        .args([
            "export",
            &src.url,
            three.to_str().unwrap(),
            "--streams",
            "3",
            "--split-min-size",
            "0",
            "--batch-rows",
            "1000",
        ])
        .args(key_args(&fx))
        .assert()
        .success()
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&out);
    // Every connection opened and read ranges of the table (each range is read whole, so
    // a second connection, a moment later to open, still finds ranges left).
    let line = err
        .lines()
        .find(|l| l.contains("public.wide: read over"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("of one snapshot (24 ranges: "), "{line}");
    let each: Vec<usize> = line
        .rsplit_once(": ")
        .unwrap()
        .1
        .trim_end_matches(" each)")
        .split(", ")
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(each.len(), 3, "{line}");
    assert_eq!(each.iter().sum::<usize>(), 24, "{line}");
    assert!(each.iter().filter(|&&n| n > 0).count() >= 2, "{line}");
    let (fp1, rows1, parts1) = catalog_table(&fx, &one);
    let (fp3, rows3, parts3) = catalog_table(&fx, &three);
    assert_eq!(rows1, 51429);
    assert_eq!(
        (fp3, rows3),
        (fp1, rows1),
        "the same rows, whichever connection read them"
    );
    assert_eq!(parts3, parts1, "one writer: the parts of one connection");
    fx.import_to(&three, &dst.url, &[]);
    assert_eq!(fingerprint(&src.url), fingerprint(&dst.url));
    // --jobs reads large tables as ranges of its own: both at once is a usage error.
    ferry()
        .args(["export", &src.url, fx.path("both").to_str().unwrap()])
        .args(["--jobs", "2", "--streams", "2"])
        .args(key_args(&fx))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--streams"));
}

/// A role allowed one connection: the streams that cannot open leave their ranges to the
/// first connection, which reads the whole table, and a line says so.
#[test]
fn streams_that_cannot_connect_leave_their_ranges_to_the_others() {
    let Some(src) = PgDb::new("streamlim") else {
        return;
    };
    let role = format!("ferry_one_{}", &src.name[src.name.len() - 8..]);
    psql(
        &pg_admin_url(),
        &format!("CREATE ROLE {role} LOGIN CONNECTION LIMIT 1"),
    );
    psql(
        &src.url,
        &format!(
            "CREATE TABLE t (id int PRIMARY KEY, pad text);
             INSERT INTO t SELECT g, repeat('p', 100) FROM generate_series(1, 20000) g;
             CREATE TABLE u AS SELECT * FROM t;
             GRANT SELECT ON t, u TO {role};"
        ),
    );
    let mut as_role = url::Url::parse(&src.url).unwrap();
    as_role.set_username(&role).unwrap();
    let fx = fixture();
    let b = fx.path("b");
    let out = assert_cmd::Command::cargo_bin("ferry")
        .unwrap()
        .args(["export", as_role.as_str(), b.to_str().unwrap()])
        .args(["--streams", "3", "--split-min-size", "0"])
        .args(key_args(&fx))
        .output()
        .unwrap();
    psql(&src.url, &format!("DROP OWNED BY {role}"));
    psql(&pg_admin_url(), &format!("DROP ROLE {role}"));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    // Both extra connections fail for the first table; the second table tries none.
    assert_eq!(
        err.matches("one more connection read nothing (it could not open: ")
            .count(),
        2,
        "{err}"
    );
    assert_eq!(err.matches("read over").count(), 1, "{err}");
    assert!(
        err.contains(
            "public.t: read over 1 connections of one snapshot (24 ranges: 24, 0, 0 each)"
        ),
        "{err}"
    );
    let (_, rows, _) = catalog_table(&fx, &b);
    assert_eq!(rows, 20000);
}

#[test]
fn a_table_read_over_streams_while_it_changes_is_one_instant() {
    let Some(src) = PgDb::new("streamsnap") else {
        return;
    };
    let Some(dst) = PgDb::new("streamsnapd") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE a (id int PRIMARY KEY, v bigint NOT NULL, pad text);
         INSERT INTO a SELECT g, 0, repeat('p', 200) FROM generate_series(1, 100000) g;",
    );
    // Every step moves the first and the last thousand rows (in different ranges) together.
    let writer_url = src.url.clone();
    let writer = std::thread::spawn(move || {
        psql(
            &writer_url,
            "DO $$ BEGIN FOR i IN 1..300 LOOP UPDATE a SET v = v + 1 WHERE id <= 1000 OR id > 99000; COMMIT; PERFORM pg_sleep(0.002); END LOOP; END $$;",
        )
    });
    wait_until(
        "the writer has committed a step",
        Duration::from_secs(30),
        || psql(&src.url, "SELECT sum(v) > 0 FROM a") == "t",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(
        &src.url,
        &b,
        &[
            "--streams",
            "2",
            "--split-min-size",
            "1MiB",
            "--batch-rows",
            "1000",
        ],
    );
    writer.join().unwrap();
    fx.import_to(&b, &dst.url, &[]);
    let first = psql(&dst.url, "SELECT sum(v) FROM a WHERE id <= 1000");
    let last = psql(&dst.url, "SELECT sum(v) FROM a WHERE id > 99000");
    assert_eq!(first, last, "ranges read at different instants");
    assert_eq!(psql(&dst.url, "SELECT count(*) FROM a"), "100000");
}

#[test]
fn domains_are_recreated_and_triggers_are_reported_as_not_carried() {
    let Some(src) = PgDb::new("dom") else {
        return;
    };
    let Some(dst) = PgDb::new("domdst") else {
        return;
    };
    psql(
        &src.url,
        "CREATE DOMAIN positive_qty AS integer NOT NULL DEFAULT 1 CHECK (VALUE > 0);
         CREATE DOMAIN us_zip AS text CHECK (VALUE ~ '^[0-9]{5}$');
         CREATE TABLE orders (id int PRIMARY KEY, qty positive_qty, zip us_zip);
         INSERT INTO orders VALUES (1, 3, '12345'), (2, 1, NULL);
         CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
         CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();",
    );
    let fx = fixture();
    let b = fx.path("b");
    let out = ferry()
        .args(["export", &src.url, b.to_str().unwrap(), "--json"])
        .args(key_args(&fx))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(j["warnings"].to_string().contains("orders_touch"), "{j}");
    fx.import_to(&b, &dst.url, &[]);
    assert_eq!(fingerprint(&src.url), fingerprint(&dst.url));
    let dom = "SELECT string_agg(t.typname || ' ' || format_type(t.typbasetype, t.typtypmod) || ' ' || t.typnotnull || ' ' || coalesce(t.typdefault, '-') || ' ' || \
               coalesce((SELECT string_agg(pg_get_constraintdef(c.oid), ',') FROM pg_constraint c WHERE c.contypid = t.oid), '-'), '; ' ORDER BY t.typname) \
               FROM pg_type t WHERE t.typtype = 'd' AND t.typnamespace = 'public'::regnamespace";
    assert_eq!(psql(&src.url, dom), psql(&dst.url, dom));
    // the domain's check still guards the copy
    let bad = Proc::new("psql")
        .args([
            "-X",
            "-q",
            "-d",
            &dst.url,
            "-c",
            "INSERT INTO orders VALUES (3, 0, NULL)",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn partitioned_tables_are_read_once_and_recreated_with_their_partitions() {
    let Some(src) = PgDb::new("part") else {
        return;
    };
    let Some(dst) = PgDb::new("partdst") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE measures (id bigint, day date NOT NULL, v double precision, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
         CREATE TABLE measures_2023 PARTITION OF measures FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
         CREATE TABLE measures_2024 PARTITION OF measures FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE measures_rest PARTITION OF measures DEFAULT;
         INSERT INTO measures SELECT g, date '2023-06-01' + (g % 900), g * 0.5 FROM generate_series(1, 3000) g;",
    );
    let fx = fixture();
    let b = fx.path("b");
    let out = ferry()
        .args(["export", &src.url, b.to_str().unwrap(), "--json"])
        .args(key_args(&fx))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let tables = j["tables"].as_array().unwrap();
    assert_eq!(
        tables.len(),
        1,
        "rows are read once, through the parent: {j}"
    );
    assert_eq!(tables[0]["rows"], 3000);
    fx.import_to(&b, &dst.url, &[]);
    assert_eq!(fingerprint(&src.url), fingerprint(&dst.url));
    let layout = "SELECT string_agg(c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid), '; ' ORDER BY c.relname) \
                  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'measures'::regclass";
    assert_eq!(psql(&src.url, layout), psql(&dst.url, layout));
    assert_eq!(
        psql(&dst.url, "SELECT pg_get_partkeydef('measures'::regclass)"),
        "RANGE (day)"
    );
    assert_eq!(
        psql(&dst.url, "SELECT count(*) FROM measures_2024"),
        psql(&src.url, "SELECT count(*) FROM measures_2024")
    );
    // into SQLite the parent is one plain table
    let lite = fx.path("m.db");
    ferry()
        .args([
            "import",
            b.to_str().unwrap(),
            &format!("sqlite://{}", lite.display()),
        ])
        .args(key_args(&fx))
        .assert()
        .success();
    let c = rusqlite::Connection::open(&lite).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM measures", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3000);
}

#[test]
fn multi_dimensional_arrays_travel_as_text_and_come_back_exactly() {
    let Some(src) = PgDb::new("mdim") else {
        return;
    };
    let Some(dst) = PgDb::new("mdimdst") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE grid (id int PRIMARY KEY, cells int[][], tags text[]);
         INSERT INTO grid VALUES (1, '{{1,2},{3,4}}', '{a,b}'), (2, '{}', NULL), (3, NULL, '{\"x y\",NULL}');",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    fx.import_to(&b, &dst.url, &[]);
    let q = "SELECT id, cells, tags FROM grid ORDER BY id";
    assert_eq!(psql(&src.url, q), psql(&dst.url, q));
    // carried as text: the catalog says so
    let out = ferry()
        .args(["inspect", b.to_str().unwrap(), "--json"])
        .args(key_args(&fx))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let cols = &j["catalog"]["tables"][0]["table"]["columns"];
    assert_eq!(cols[1]["as_text"], true, "{cols}");
    assert_eq!(cols[2]["type"]["kind"], "list", "{cols}");
}

#[test]
fn a_second_import_of_the_same_bundle_while_one_runs_exits_75_and_writes_nothing() {
    let Some(src) = PgDb::new("lock") else {
        return;
    };
    let Some(dst) = PgDb::new("lockdst") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100);",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let id = crate::common::manifest(&b)["bundle_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Another importer holds the run lock of this bundle at the target.
    let mut holder = Proc::new("psql")
        .args([
            "-X",
            "-q",
            "-d",
            &dst.url,
            "-c",
            &format!("SELECT pg_advisory_lock(hashtextextended('ferry-run:{id}', 0)), pg_sleep(8)"),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "the holder has the run lock",
        Duration::from_secs(30),
        || {
            psql(
                &dst.url,
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            ) == "1"
        },
    );
    ferry()
        .args(["import", b.to_str().unwrap(), &dst.url])
        .args(key_args(&fx))
        .assert()
        .code(75)
        .stderr(
            predicates::str::contains("another import of bundle")
                .and(predicates::str::contains("server pid")),
        );
    assert_eq!(
        psql(
            &dst.url,
            "SELECT count(*) FROM pg_class WHERE relname IN ('t', '_ferry_ledger')"
        ),
        "0"
    );
    holder.wait().unwrap();
    fx.import_to(&b, &dst.url, &[]);
    assert_eq!(psql(&dst.url, "SELECT count(*) FROM t"), "100");
}

#[test]
fn connection_killed_mid_part_exits_75_rolls_back_and_a_rerun_completes() {
    let Some(src) = PgDb::new("kill") else {
        return;
    };
    let Some(dst) = PgDb::new("killdst") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE big (id int PRIMARY KEY, pad text); INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 400000) g;",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(
        &src.url,
        &b,
        &["--max-part-size", "1MiB", "--row-group-rows", "50000"],
    );
    let parts = crate::common::manifest(&b)["parts"]
        .as_array()
        .unwrap()
        .len();
    assert!(parts >= 3, "{parts} parts");
    let import = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"))
        .args([
            "--quiet",
            "import",
            b.to_str().unwrap(),
            &dst.url,
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until a COPY into the target is running, then kill that backend.
    let mut killed = false;
    for _ in 0..400 {
        let n = psql(
            &pg_admin_url(),
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}' AND query LIKE 'COPY%' AND state = 'active'",
                dst.name
            ),
        );
        if n != "0" {
            killed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = import.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if !killed {
        eprintln!("the import finished before a COPY could be caught; nothing to check");
        return;
    }
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("re-run") && !err.contains("panicked"), "{err}");
    let committed: i64 = psql(&dst.url, "SELECT count(*) FROM _ferry_ledger")
        .parse()
        .unwrap_or(0);
    assert!((committed as usize) < parts);
    // Only whole parts are in: rows equal the sum of the committed parts' rows (killed in
    // the first part, even the table went with its transaction).
    let exists = psql(&dst.url, "SELECT to_regclass('big') IS NOT NULL") == "t";
    let rows_in = if exists {
        psql(&dst.url, "SELECT count(*) FROM big")
    } else {
        "0".to_string()
    };
    let ledger_rows = psql(
        &dst.url,
        "SELECT coalesce(sum(rows_loaded), 0) FROM _ferry_ledger",
    );
    assert_eq!(rows_in, ledger_rows);
    fx.import_to(&b, &dst.url, &[]);
    assert_eq!(
        psql(&dst.url, "SELECT count(*), count(DISTINCT id) FROM big"),
        "400000|400000"
    );
}

#[test]
fn a_row_the_target_refuses_fails_its_part_naming_table_and_key_and_commits_nothing() {
    let Some(src) = PgDb::new("dup") else {
        return;
    };
    let Some(dst) = PgDb::new("dupdst") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g;",
    );
    psql(
        &dst.url,
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (42, 'mine');",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    ferry()
        .args(["import", b.to_str().unwrap(), &dst.url, "--mode", "append"])
        .args(key_args(&fx))
        .assert()
        .code(65)
        .stderr(
            predicates::str::contains("table \"public\".\"t\"")
                .and(predicates::str::contains("(id)=(42)"))
                .and(predicates::str::contains(
                    "nothing from this part was committed",
                )),
        );
    assert_eq!(psql(&dst.url, "SELECT count(*), min(v) FROM t"), "1|mine");
    assert_eq!(psql(&dst.url, "SELECT count(*) FROM _ferry_ledger"), "0");
}

/// Pre-flight on PostgreSQL, before anything is written: a user who may not create tables
/// is told which grant is missing; a name PostgreSQL would truncate (over 63 bytes) and two
/// tables whose names fold together on SQLite are refused by name.
#[test]
fn preflight_names_missing_privileges_long_names_and_case_collisions() {
    let Some(dst) = PgDb::new("priv") else {
        return;
    };
    let role = format!("ferry_nopriv_{}", &dst.name[dst.name.len() - 8..]);
    psql(&pg_admin_url(), &format!("CREATE ROLE {role} LOGIN"));
    let mut as_role = url::Url::parse(&dst.url).unwrap();
    as_role.set_username(&role).unwrap();
    let fx = fixture();
    let b = fx.export("b");
    let out = ferry()
        .args(["import", b.to_str().unwrap(), as_role.as_str()])
        .args(key_args(&fx))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let _ = Proc::new("psql")
        .args([
            "-X",
            "-q",
            "-d",
            &pg_admin_url(),
            "-c",
            &format!("DROP ROLE {role}"),
        ])
        .output();
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(
        err.contains("schema \"public\": the user may not create tables in it"),
        "{err}"
    );
    assert_eq!(
        psql(
            &dst.url,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );

    // A 70-character table name from SQLite: PostgreSQL would cut it to 63 bytes.
    let long = "t".repeat(70);
    let src = fx.path("long.db");
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TABLE {long} (id INTEGER); INSERT INTO {long} VALUES (1);"
        ))
        .unwrap();
    let b2 = fx.path("b2");
    fx.export_to(&format!("sqlite://{}", src.display()), &b2, &[]);
    ferry()
        .args(["import", b2.to_str().unwrap(), &dst.url])
        .args(key_args(&fx))
        .assert()
        .code(65)
        .stderr(
            predicates::str::contains("longer than postgres's 63 bytes").and(
                predicates::str::contains(format!("--rename {long}=SHORTER")),
            ),
        );

    // "Users" and "users" from PostgreSQL fold together in SQLite.
    let Some(pg) = PgDb::new("fold") else {
        return;
    };
    psql(
        &pg.url,
        "CREATE TABLE \"Users\" (id int); CREATE TABLE users (id int); INSERT INTO users VALUES (1);",
    );
    let b3 = fx.path("b3");
    fx.export_to(&pg.url, &b3, &[]);
    let lite = fx.path("fold.db");
    ferry()
        .args(["import", b3.to_str().unwrap()])
        .arg(format!("sqlite://{}", lite.display()))
        .args(key_args(&fx))
        .assert()
        .code(65)
        .stderr(predicates::str::contains(
            "would both load into target table",
        ));
    assert!(crate::common::user_tables(&lite).is_empty());
}

/// RELIABILITY E47 and E56: a target that cannot be reached, or that is read-only, is
/// refused before any verification work, and nothing changes.
#[test]
fn an_unreachable_or_read_only_target_is_refused_before_anything_is_written() {
    let Some(dst) = PgDb::new("ro") else {
        return;
    };
    let fx = fixture();
    let b = fx.export("b");
    // Nothing listens on port 1.
    ferry()
        .args([
            "import",
            b.to_str().unwrap(),
            "postgres://postgres@127.0.0.1:1/x",
        ])
        .args(key_args(&fx))
        .assert()
        .code(75)
        .stderr(predicates::str::contains("cannot reach PostgreSQL"));
    psql(
        &pg_admin_url(),
        &format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            dst.name
        ),
    );
    ferry()
        .args(["import", b.to_str().unwrap(), &dst.url])
        .args(key_args(&fx))
        .assert()
        .failure()
        .stderr(predicates::str::contains("is read-only"));
    assert_eq!(
        psql(
            &dst.url,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );
}

/// RELIABILITY D40: text PostgreSQL cannot hold (U+0000) fails its part naming table,
/// column and row; nothing of the part is committed.
#[test]
fn a_nul_character_in_text_is_refused_by_postgresql_naming_table_and_row() {
    let Some(dst) = PgDb::new("nul") else {
        return;
    };
    let fx = fixture();
    let src = fx.path("nul.db");
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
             INSERT INTO notes VALUES (1, 'fine'), (2, 'a' || char(0) || 'b');",
        )
        .unwrap();
    let b = fx.path("b");
    fx.export_to(&format!("sqlite://{}", src.display()), &b, &[]);
    let out = ferry()
        .args(["import", b.to_str().unwrap(), &dst.url])
        .args(key_args(&fx))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(err.contains("notes") && err.contains("row 2"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let ledger_rows = psql(
        &dst.url,
        "SELECT CASE WHEN to_regclass('public._ferry_ledger') IS NULL THEN 0 \
         ELSE (xpath('/row/c/text()', query_to_xml('SELECT count(*) AS c FROM public._ferry_ledger', false, true, '')))[1]::text::int END",
    );
    assert_eq!(ledger_rows, "0");
    let loaded = psql(
        &dst.url,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'notes'",
    );
    assert_eq!(loaded, "0", "the failed first part leaves no table behind");
}

/// RELIABILITY E51: a lock an application holds on the target table ends the part after
/// FERRY_LOCK_TIMEOUT with exit 75 naming the holder; the part is rolled back and a re-run
/// after the lock is released completes.
#[test]
fn a_lock_held_by_another_session_ends_the_part_with_75_naming_the_holder() {
    let Some(dst) = PgDb::new("lock") else {
        return;
    };
    psql(&dst.url, "CREATE TABLE notes (id bigint, body text)");
    let fx = fixture();
    let b = fx.export("b");
    let url = dst.url.clone();
    let holder = std::thread::spawn(move || {
        Proc::new("psql")
            .env("PGAPPNAME", "ferry-test-holder")
            .args(["-X", "-q", "-d", &url, "-c"])
            .arg("BEGIN; LOCK TABLE notes IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6); COMMIT;")
            .output()
            .unwrap()
    });
    wait_until("the holder has its lock", Duration::from_secs(30), || {
        psql(
            &dst.url,
            "SELECT count(*) FROM pg_locks WHERE relation = 'notes'::regclass AND granted AND mode = 'AccessExclusiveLock'",
        ) == "1"
    });
    let out = ferry()
        .env("FERRY_LOCK_TIMEOUT", "1")
        .args(["import", b.to_str().unwrap(), &dst.url])
        .args(["--table", "notes", "--mode", "append"])
        .args(key_args(&fx))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("is locked by another session"), "{err}");
    assert!(err.contains("application ferry-test-holder"), "{err}");
    assert!(err.contains("re-run"), "{err}");
    assert!(holder.join().unwrap().status.success());
    assert_eq!(psql(&dst.url, "SELECT count(*) FROM notes"), "0");
    fx.import_to(&b, &dst.url, &["--table", "notes", "--mode", "append"]);
    assert_eq!(psql(&dst.url, "SELECT count(*) FROM notes"), "2");
}

/// RELIABILITY E51: the database server's disk fills up during a part (a table in a 3 MiB
/// tablespace). The part rolls back, the import exits 75, and after space is freed a re-run
/// completes with exactly the source rows. Needs root to mount a small tmpfs; skipped
/// loudly without it.
#[test]
fn a_full_disk_on_the_server_rolls_the_part_back_with_75_and_a_rerun_completes() {
    let Some(dst) = PgDb::new("full") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("ts");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Proc::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3M", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a small tmpfs (needs root) for the disk-full test");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Proc::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let _ = Proc::new("chown")
        .args(["postgres:postgres"])
        .arg(&mnt)
        .status();
    let _ = Proc::new("chmod").args(["755"]).arg(dir.path()).status();
    let ts = format!("ferry_small_{}", &dst.name[dst.name.len() - 8..]);
    psql(
        &pg_admin_url(),
        &format!("CREATE TABLESPACE {ts} LOCATION '{}'", mnt.display()),
    );
    struct DropTs(String);
    impl Drop for DropTs {
        fn drop(&mut self) {
            let _ = Proc::new("psql")
                .args(["-X", "-q", "-d", &pg_admin_url(), "-c"])
                .arg(format!("DROP TABLESPACE IF EXISTS {}", self.0))
                .output();
        }
    }
    let _drop_ts = DropTs(ts.clone());
    // ~8 MB of incompressible rows into a table that lives in the 3 MiB tablespace.
    let fx = fixture();
    let src = fx.path("full.db");
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute_batch(
            "CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB);
             WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 4000)
             INSERT INTO blobs SELECT i, randomblob(2000) FROM g;",
        )
        .unwrap();
    let b = fx.path("b");
    fx.export_to(&format!("sqlite://{}", src.display()), &b, &[]);
    psql(
        &dst.url,
        &format!("CREATE TABLE blobs (id bigint PRIMARY KEY, b bytea) TABLESPACE {ts}"),
    );
    let out = ferry()
        .args(["import", b.to_str().unwrap(), &dst.url, "--mode", "append"])
        .args(key_args(&fx))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(
        err.contains("No space left on device") || err.contains("could not extend"),
        "{err}"
    );
    assert!(err.contains("re-run"), "{err}");
    assert_eq!(psql(&dst.url, "SELECT count(*) FROM blobs"), "0");
    // Space comes back (the table moves to the default tablespace); the re-run completes.
    psql(&dst.url, "ALTER TABLE blobs SET TABLESPACE pg_default");
    fx.import_to(&b, &dst.url, &["--mode", "append"]);
    assert_eq!(
        psql(&dst.url, "SELECT count(*), sum(length(b)) FROM blobs"),
        "4000|8000000"
    );
    psql(&dst.url, "DROP TABLE blobs");
}

#[test]
fn a_database_that_does_not_exist_is_named_without_the_servers_source_line() {
    // A real server, so the message is the server's own; the database is never created.
    let Some(db) = PgDb::new("nodb") else {
        return;
    };
    let missing = db.url.replace(&db.name, &format!("{}_missing", db.name));
    let o = ferry().args(["plan", &missing]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(!err.contains(" at line "), "{err}");
}
