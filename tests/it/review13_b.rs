//! Review 13 (b): where a bundle writes stays within what the operator bounds it to.
//! `--target-schema` puts a PostgreSQL bundle's user-defined types (enums, domains,
//! composites, ranges) in the target schema too, every reference to them rewritten, and
//! refuses two types that would land on one name; a same-engine MySQL or SQLite column's
//! declared type carries no column constraint or attribute a key holder appended.

use std::path::Path;

use rusqlite::Connection;

use crate::common::{ferry, fixture};
use crate::servers::{MyDb, PgDb, my, psql};
use crate::sqltext::{forge_catalog, table};

/// `ferry import BUNDLE TARGET --key-file K EXTRA…`: exit code and stdout + stderr.
fn import(bundle: &Path, target: &str, key: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = ferry()
        .args(["import", bundle.to_str().unwrap(), target, "--key-file"])
        .arg(key)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The user schemas of a PostgreSQL database, comma-separated.
fn schemas(url: &str) -> String {
    psql(
        url,
        "SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace \
         WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
         AND nspname NOT LIKE 'pg\\_%'",
    )
}

/// The user-defined types of a PostgreSQL database with their schema, comma-separated.
fn types(url: &str) -> String {
    psql(
        url,
        "SELECT string_agg(n.nspname || '.' || t.typname || ' ' || t.typtype::text, ',' ORDER BY n.nspname, t.typname) \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
         AND t.typtype IN ('e', 'd', 'c', 'r', 'm') \
         AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')",
    )
}

/// A table's columns as `name type [default …]`, comma-separated.
fn columns(url: &str, table: &str) -> String {
    psql(
        url,
        &format!(
            "SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) \
             || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''), ', ' ORDER BY a.attnum) \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = '{table}'::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        ),
    )
}

#[test]
fn target_schema_puts_the_bundles_types_there_and_no_other_schema_is_made() {
    let Some(src) = PgDb::new("r13b_types") else {
        return;
    };
    let Some(dst) = PgDb::new("r13b_typesd") else {
        return;
    };
    psql(
        &src.url,
        "CREATE SCHEMA evil;
         CREATE TYPE evil.mood AS ENUM ('a', 'b');
         CREATE DOMAIN evil.posint AS int CHECK (VALUE > 0);
         CREATE TABLE public.t_enum (id int PRIMARY KEY, m evil.mood, p evil.posint);
         INSERT INTO public.t_enum VALUES (1, 'a', 5), (2, 'b', 7), (3, NULL, NULL);",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    // The plan passes pre-flight and writes nothing, no schema either.
    let (code, out) = import(
        &b,
        &dst.url,
        &fx.key,
        &["--target-schema", "app", "--dry-run"],
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(schemas(&dst.url), "public");
    let (code, out) = import(&b, &dst.url, &fx.key, &["--target-schema", "app"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(schemas(&dst.url), "app,public", "schema evil was made");
    assert_eq!(types(&dst.url), "app.mood e,app.posint d");
    assert_eq!(
        columns(&dst.url, "app.t_enum"),
        "id integer, m app.mood, p app.posint"
    );
    // The domain's CHECK came along, on the type in app.
    assert_eq!(
        psql(
            &dst.url,
            "SELECT string_agg(pg_get_constraintdef(c.oid), '; ') FROM pg_constraint c \
             WHERE c.contypid = 'app.posint'::regtype"
        ),
        "CHECK ((VALUE > 0))"
    );
    let rows = "SELECT string_agg(id || ' ' || coalesce(m::text, '-') || ' ' || coalesce(p::text, '-'), ', ' ORDER BY id) FROM ";
    assert_eq!(
        psql(&dst.url, &format!("{rows}app.t_enum")),
        psql(&src.url, &format!("{rows}public.t_enum"))
    );
    assert_eq!(
        psql(&dst.url, &format!("{rows}app.t_enum")),
        "1 a 5, 2 b 7, 3 - -"
    );
    // The values are of the types in app: the enum orders, the domain checks.
    let err = std::process::Command::new("psql")
        .args(["-X", "-q", "-d", &dst.url, "-c"])
        .arg("INSERT INTO app.t_enum VALUES (4, 'a', -1)")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("posint"),
        "{}",
        String::from_utf8_lossy(&err.stderr)
    );
}

#[test]
fn target_schema_rewrites_every_reference_to_a_moved_type() {
    let Some(src) = PgDb::new("r13b_refs") else {
        return;
    };
    let Some(dst) = PgDb::new("r13b_refsd") else {
        return;
    };
    psql(
        &src.url,
        r#"CREATE SCHEMA evil; CREATE SCHEMA "Odd ""S""";
         CREATE TYPE evil.mood AS ENUM ('a', 'b', 'it''s');
         CREATE DOMAIN "Odd ""S""".posint AS int CHECK (VALUE > 0);
         CREATE DOMAIN evil.happy AS evil.mood;
         CREATE TYPE evil.pair AS (m evil.mood, p "Odd ""S""".posint, ms evil.mood[]);
         CREATE TYPE evil.span AS RANGE (subtype = "Odd ""S""".posint);
         CREATE DOMAIN evil.notb AS evil.mood DEFAULT 'a' CHECK (VALUE <> 'b');
         CREATE TABLE public.t (id int PRIMARY KEY, m evil.mood DEFAULT 'it''s', ms evil.mood[],
                                h evil.happy, pr evil.pair, sp evil.span, spm evil.span_multirange,
                                nb evil.notb);
         INSERT INTO public.t VALUES
           (1, 'a', '{a,b}', 'b', ROW('a', 3, '{b}'), '[1,5)', '{[1,2),[3,4)}', 'a'),
           (2, DEFAULT, NULL, NULL, NULL, NULL, NULL, NULL);
         CREATE TABLE public.pt (k evil.mood NOT NULL, v evil.pair) PARTITION BY LIST (k);
         CREATE TABLE public.pt_a PARTITION OF public.pt FOR VALUES IN ('a');
         CREATE TABLE public.pt_b PARTITION OF public.pt FOR VALUES IN ('b', 'it''s');
         INSERT INTO public.pt VALUES ('a', ROW('b', 1, NULL)), ('it''s', NULL);"#,
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let out = fx.import_to(&b, &dst.url, &["--target-schema", "app"]);
    assert_eq!(schemas(&dst.url), "app,public", "{out}");
    assert_eq!(
        types(&dst.url),
        "app.happy d,app.mood e,app.notb d,app.pair c,app.posint d,app.span r,app.span_multirange m"
    );
    assert_eq!(
        columns(&dst.url, "app.t"),
        "id integer, m app.mood default 'it''s'::app.mood, ms app.mood[], h app.happy, \
         pr app.pair, sp app.span, spm app.span_multirange, nb app.notb"
    );
    // A domain's constant default names the moved type; a CHECK casting to one is not
    // rewritten: left out, and said so.
    assert_eq!(
        psql(
            &dst.url,
            "SELECT typdefault || ' ' || (SELECT count(*) FROM pg_constraint WHERE contypid = t.oid) \
             FROM pg_type t WHERE oid = 'app.notb'::regtype"
        ),
        "'a'::app.mood 0"
    );
    assert!(
        out.contains("not carried: a CHECK on domain app.notb: it casts to a type of the bundle"),
        "{out}"
    );
    // A partitioned table and its partitions, in app, with the moved types.
    for t in ["app.pt", "app.pt_a", "app.pt_b"] {
        assert_eq!(columns(&dst.url, t), "k app.mood, v app.pair", "{t}");
    }
    assert_eq!(
        psql(
            &dst.url,
            "SELECT string_agg(tableoid::regclass::text || ' ' || k || ' ' || coalesce(v::text, '-'), ', ' ORDER BY k) FROM app.pt"
        ),
        "app.pt_a a (b,1,), app.pt_b it's -"
    );
    assert_eq!(
        psql(
            &dst.url,
            "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) \
             FROM pg_attribute WHERE attrelid = (SELECT typrelid FROM pg_type WHERE oid = 'app.pair'::regtype) \
             AND attnum > 0"
        ),
        "m app.mood, p app.posint, ms app.mood[]"
    );
    assert_eq!(
        psql(
            &dst.url,
            "SELECT format_type(typbasetype, typtypmod) FROM pg_type WHERE oid = 'app.happy'::regtype"
        ),
        "app.mood"
    );
    assert_eq!(
        psql(
            &dst.url,
            "SELECT format_type(rngsubtype, NULL) FROM pg_range WHERE rngtypid = 'app.span'::regtype"
        ),
        "app.posint"
    );
    let rows = "SELECT string_agg(t::text, ' | ' ORDER BY id) FROM ";
    assert_eq!(
        psql(&dst.url, &format!("{rows}app.t t")),
        psql(&src.url, &format!("{rows}public.t t"))
    );
}

#[test]
fn target_schema_refuses_two_types_that_would_share_a_name() {
    let Some(src) = PgDb::new("r13b_clash") else {
        return;
    };
    let Some(dst) = PgDb::new("r13b_clashd") else {
        return;
    };
    psql(
        &src.url,
        "CREATE SCHEMA evil; CREATE SCHEMA other;
         CREATE TYPE evil.mood AS ENUM ('a', 'b');
         CREATE TYPE other.mood AS ENUM ('x', 'y');
         CREATE TABLE public.ta (id int, m evil.mood);
         CREATE TABLE public.tb (id int, m other.mood);
         INSERT INTO public.ta VALUES (1, 'a'); INSERT INTO public.tb VALUES (1, 'x');",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    for extra in [&["--dry-run"][..], &[]] {
        let mut args = vec!["--target-schema", "app"];
        args.extend_from_slice(extra);
        let (code, out) = import(&b, &dst.url, &fx.key, &args);
        assert_eq!(code, Some(65), "{out}");
        assert!(out.contains("pre-flight"), "{out}");
        assert!(
            out.contains("evil.mood and other.mood would both be app.mood"),
            "{out}"
        );
        // Nothing written: no schema, type, table or ledger.
        assert_eq!(schemas(&dst.url), "public");
        assert_eq!(types(&dst.url), "");
    }
    // Each table alone goes in.
    fx.import_to(&b, &dst.url, &["--target-schema", "app", "--table", "ta"]);
    assert_eq!(types(&dst.url), "app.mood e");
    assert_eq!(schemas(&dst.url), "app,public");
}

#[test]
fn without_target_schema_types_keep_their_own_schemas() {
    let Some(src) = PgDb::new("r13b_own") else {
        return;
    };
    let Some(dst) = PgDb::new("r13b_ownd") else {
        return;
    };
    psql(
        &src.url,
        "CREATE SCHEMA evil;
         CREATE TYPE evil.mood AS ENUM ('a', 'b');
         CREATE TABLE public.t (id int, m evil.mood DEFAULT 'b');
         INSERT INTO public.t VALUES (1, 'a');",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    fx.import_to(&b, &dst.url, &[]);
    assert_eq!(schemas(&dst.url), "evil,public");
    assert_eq!(types(&dst.url), "evil.mood e");
    assert_eq!(
        columns(&dst.url, "public.t"),
        "id integer, m evil.mood default 'b'::evil.mood"
    );
}

#[test]
fn a_sqlite_declared_type_carrying_a_constraint_is_refused() {
    let fx = fixture();
    let src = fx.path("s.db");
    Connection::open(&src)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t (id INTEGER, v TEXT, n VARCHAR(20), u UNSIGNED BIG INT, \
                             d DOUBLE PRECISION, c NATIVE CHARACTER(70), x DECIMAL(10,5), \
                             w DATETIME, b BOOLEAN);
             INSERT INTO t VALUES (1, 'a', 'n', 7, 1.5, 'c', 1.25, '2024-01-02 03:04:05', 1),
                                  (1, 'b', NULL, NULL, NULL, NULL, NULL, NULL, 0);",
        )
        .unwrap();
    let src_url = format!("sqlite://{}", src.display());
    // Ordinary declared types come back as they were.
    let b = fx.path("b");
    fx.export_to(&src_url, &b, &[]);
    let ok = fx.path("ok.db");
    fx.import_to(&b, &format!("sqlite://{}", ok.display()), &[]);
    let decl = |db: &Path| -> Vec<String> {
        Connection::open(db)
            .unwrap()
            .prepare("SELECT type FROM pragma_table_info('t') ORDER BY cid")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(decl(&ok), decl(&src));
    let forged = [
        (0, "INTEGER PRIMARY KEY ON CONFLICT REPLACE"),
        (1, "TEXT UNIQUE ON CONFLICT IGNORE"),
        (0, "INTEGER AS (5)"),
        (1, "TEXT REFERENCES x"),
        (1, "TEXT COLLATE NOCASE"),
        (0, "INTEGER NOT NULL DEFAULT 5"),
    ];
    for (i, (col, ty)) in forged.into_iter().enumerate() {
        let bf = fx.path(&format!("bf{i}"));
        fx.export_to(&src_url, &bf, &[]);
        forge_catalog(&bf, &fx.key, |v| {
            table(v, "t")["table"]["columns"][col]["source_type"] = ty.into();
        });
        let dst = fx.path(&format!("d{i}.db"));
        let (code, out) = import(&bf, &format!("sqlite://{}", dst.display()), &fx.key, &[]);
        assert_eq!(code, Some(65), "{ty}: {out}");
        assert!(
            out.contains(&format!(
                "declared type {ty:?} is not one ferry will put into DDL"
            )),
            "{ty}: {out}"
        );
        let tables: i64 = Connection::open(&dst)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 't'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0, "{ty}: the table was made");
    }
}

#[test]
fn a_mysql_declared_type_carrying_an_attribute_is_refused() {
    let Some(src) = MyDb::new("r13b_my") else {
        return;
    };
    my(
        &src.url,
        "CREATE TABLE t (id int(10) unsigned zerofill NOT NULL, d double unsigned, \
                         v varchar(40) CHARACTER SET latin1 COLLATE latin1_swedish_ci, \
                         n decimal(65,30), ts timestamp(6) NULL, bt bit(8), y year, \
                         e enum('a','b'), PRIMARY KEY (id));
         INSERT INTO t VALUES (1, 2.5, 'x', 1.5, '2024-01-02 03:04:05.123456', b'101', 2024, 'b'), \
                              (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let cols = |url: &str| {
        my(
            url,
            "SELECT GROUP_CONCAT(CONCAT_WS(' ', COLUMN_NAME, COLUMN_TYPE, IFNULL(COLLATION_NAME, '-')) \
             ORDER BY ORDINAL_POSITION SEPARATOR ', ') FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't'",
        )
    };
    // Ordinary column types come back as they were.
    {
        let Some(dst) = MyDb::new("r13b_myok") else {
            return;
        };
        fx.import_to(&b, &dst.url, &[]);
        assert_eq!(cols(&dst.url), cols(&src.url));
        assert_eq!(
            crate::mysql::fingerprint(&dst.url),
            crate::mysql::fingerprint(&src.url)
        );
    }
    let forged = [
        (1, "double unique key"),
        (1, "int default 5"),
        (1, "int invisible"),
        (1, "int primary key"),
        (1, "int as (5)"),
        (5, "bit(8) unique"),
    ];
    for (i, (col, ty)) in forged.into_iter().enumerate() {
        let Some(dst) = MyDb::new("r13b_myf") else {
            return;
        };
        let bf = fx.path(&format!("bf{i}"));
        fx.export_to(&src.url, &bf, &[]);
        forge_catalog(&bf, &fx.key, |v| {
            table(v, "t")["table"]["columns"][col]["source_type"] = ty.into();
        });
        let (code, out) = import(&bf, &dst.url, &fx.key, &[]);
        assert_eq!(code, Some(65), "{ty}: {out}");
        assert!(
            out.contains(&format!("type {ty:?} is not one ferry will put into DDL")),
            "{ty}: {out}"
        );
        assert_eq!(
            my(
                &dst.url,
                "SELECT COUNT(*) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't'"
            ),
            "0",
            "{ty}: the table was made"
        );
    }
}
