//! Same-engine fidelity: an export and an import into an empty database of the same engine
//! give the same database — rows (order-independent digest), column types, NOT NULL,
//! defaults and order, keys and index methods, inheritance and partition trees, and the
//! user-defined types behind the columns. One test per defect found with real schemas,
//! each from its minimal repro.

use crate::common::{ferry, fixture};
use crate::servers::{MyDb, PgDb, my, psql};

/// Everything a same-engine PostgreSQL copy must keep, one line per fact, for every
/// relation of the user's schemas (ferry's ledger left out).
pub fn pg_shape(url: &str) -> Vec<String> {
    let rels = psql(
        url,
        "SELECT c.oid::regclass::text || ' ' || c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname NOT LIKE 'pg\\_%' AND c.relname <> '_ferry_ledger' ORDER BY 1",
    );
    let mut out = Vec::new();
    for line in rels.lines() {
        let (t, kind) = line.rsplit_once(' ').unwrap();
        out.push(format!("{t} kind {kind}"));
        // Rows of the relation itself: ONLY, so a parent does not count its children.
        let only = if kind == "p" { "" } else { "ONLY " };
        out.push(format!(
            "{t} rows {}",
            psql(
                url,
                &format!(
                    "SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), '-') FROM {only}{t} x"
                )
            )
        ));
        out.push(format!(
            "{t} columns {}",
            psql(
                url,
                &format!(
                    "SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) \
                     || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END \
                     || CASE WHEN a.attcollation <> (SELECT typcollation FROM pg_type WHERE oid = a.atttypid) \
                             THEN ' collate ' || a.attcollation::regcollation::text ELSE '' END \
                     || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''), ', ' ORDER BY a.attnum) \
                     FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                     WHERE a.attrelid = '{t}'::regclass AND a.attnum > 0 AND NOT a.attisdropped"
                )
            )
        ));
        out.push(format!(
            "{t} constraints {}",
            psql(
                url,
                &format!(
                    "SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), '; ' ORDER BY conname) \
                     FROM pg_constraint WHERE conrelid = '{t}'::regclass AND contype IN ('p', 'u', 'f')"
                )
            )
        ));
        out.push(format!(
            "{t} indexes {}",
            psql(
                url,
                &format!(
                    "SELECT string_agg(pg_get_indexdef(indexrelid), '; ' ORDER BY pg_get_indexdef(indexrelid)) FROM pg_index \
                     WHERE indrelid = '{t}'::regclass"
                )
            )
        ));
        out.push(format!(
            "{t} parents {}",
            psql(
                url,
                &format!(
                    "SELECT string_agg(inhparent::regclass::text, ', ' ORDER BY inhseqno) FROM pg_inherits \
                     WHERE inhrelid = '{t}'::regclass"
                )
            )
        ));
        out.push(format!(
            "{t} partitioning {}",
            psql(
                url,
                &format!(
                    "SELECT coalesce(pg_get_partkeydef('{t}'::regclass), '-') || ' ' \
                     || coalesce(pg_get_expr(relpartbound, oid), '-') FROM pg_class WHERE oid = '{t}'::regclass"
                )
            )
        ));
    }
    out.push(format!(
        "types {}",
        psql(
            url,
            "SELECT string_agg(format('%s %s %s', t.oid::regtype, t.typtype, \
                    CASE t.typtype \
                      WHEN 'e' THEN (SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid) \
                      WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod) || coalesce(' default ' || t.typdefault, '') \
                      WHEN 'c' THEN (SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || ' ' || attcollation::regcollation::text, ',' ORDER BY attnum) \
                                     FROM pg_attribute WHERE attrelid = t.typrelid AND attnum > 0) \
                      WHEN 'r' THEN (SELECT format_type(rngsubtype, NULL) || ' ' || rngmultitypid::regtype || ' ' || rngsubdiff::regproc::text \
                                     || ' ' || rngcollation::regcollation::text FROM pg_range WHERE rngtypid = t.oid) \
                      ELSE '' END), '; ' ORDER BY t.oid::regtype::text) \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
             AND t.typtype IN ('e', 'd', 'c', 'r') AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')",
        )
    ));
    out
}

/// Exports `sql` loaded into a new PostgreSQL database and imports it into another:
/// returns (source, target) shapes and the import's stdout. None: no server (skipped).
fn pg_copy(tag: &str, sql: &str) -> Option<(Vec<String>, Vec<String>, String)> {
    let src = PgDb::new(&format!("{tag}s"))?;
    let dst = PgDb::new(&format!("{tag}d"))?;
    psql(&src.url, sql);
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let out = fx.import_to(&b, &dst.url, &[]);
    Some((pg_shape(&src.url), pg_shape(&dst.url), out))
}

/// Asserts the copy is identical, printing the first difference.
fn assert_same(a: &[String], z: &[String]) {
    for (x, y) in a.iter().zip(z) {
        assert_eq!(x, y, "source vs copy");
    }
    assert_eq!(a.len(), z.len(), "{a:#?}\n{z:#?}");
}

#[test]
fn mariadb_enum_and_set_labels_and_values_keep_their_case() {
    let Some(src) = MyDb::new("enc") else { return };
    let Some(dst) = MyDb::new("end") else { return };
    my(
        &src.url,
        "CREATE TABLE f (id int PRIMARY KEY, rating enum('G','PG','PG-13') DEFAULT 'G', \
                         sf set('Trailers','Commentaries'));
         INSERT INTO f VALUES (1,'PG','Trailers,Commentaries'), (2,'G',NULL);",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    fx.import_to(&b, &dst.url, &[]);
    let cols = |url: &str| {
        my(
            url,
            "SELECT GROUP_CONCAT(CONCAT_WS(' ', COLUMN_NAME, COLUMN_TYPE, IFNULL(COLUMN_DEFAULT, '-')) \
             ORDER BY ORDINAL_POSITION SEPARATOR ', ') FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'f'",
        )
    };
    assert_eq!(
        cols(&dst.url),
        "id int(11) -, rating enum('G','PG','PG-13') 'G', sf set('Trailers','Commentaries') NULL"
    );
    assert_eq!(cols(&src.url), cols(&dst.url));
    let rows = my(
        &dst.url,
        "SELECT id, BINARY rating, IFNULL(BINARY sf, 'N') FROM f ORDER BY id",
    );
    assert_eq!(rows, "1\tPG\tTrailers,Commentaries\n2\tG\tN");
    assert_eq!(
        crate::mysql::fingerprint(&src.url),
        crate::mysql::fingerprint(&dst.url)
    );
}

#[test]
fn an_inheritance_parent_keeps_only_its_own_rows_and_its_children() {
    let Some((a, z, _)) = pg_copy(
        "inh",
        "CREATE TABLE p (a int);
         CREATE TABLE c (b text) INHERITS (p);
         CREATE TABLE c2 () INHERITS (p);
         ALTER TABLE p ADD COLUMN z int;
         INSERT INTO p VALUES (1, 10); INSERT INTO c VALUES (2, 'two', 20), (3, NULL, NULL);
         INSERT INTO c2 VALUES (4, 40);",
    ) else {
        return;
    };
    assert_same(&a, &z);
    // The parent alone holds one row; with its children, four.
    assert!(a.iter().any(|l| l.starts_with("p rows 1 ")), "{a:#?}");
    // c's columns keep their order: a, b, then z (added to p after c was made).
    assert!(
        z.contains(&"c columns a integer, b text, z integer".to_string()),
        "{z:#?}"
    );
    assert!(z.contains(&"c parents p".to_string()), "{z:#?}");
}

#[test]
fn a_primary_key_with_include_columns_keeps_them_out_of_the_key() {
    let Some((a, z, _)) = pg_copy(
        "inc",
        "CREATE TABLE t (a int, b int, c text, d int, PRIMARY KEY (a, b) INCLUDE (c),
                         CONSTRAINT t_d_key UNIQUE (d) INCLUDE (c));
         CREATE UNIQUE INDEX t_b_uniq ON t (b) INCLUDE (a, d);
         INSERT INTO t VALUES (1, 1, NULL, 1), (1, 2, 'x', 2), (2, 3, NULL, NULL);",
    ) else {
        return;
    };
    assert_same(&a, &z);
    assert!(
        z.iter()
            .any(|l| l.contains("t_pkey PRIMARY KEY (a, b) INCLUDE (c)")),
        "{z:#?}"
    );
    assert!(z.contains(
        &"t columns a integer not null, b integer not null, c text, d integer".to_string()
    ));
}

#[test]
fn index_access_methods_operator_classes_and_orders_are_kept() {
    let Some((a, z, _)) = pg_copy(
        "gist",
        "CREATE TABLE g (id int PRIMARY KEY, p point, bx box, pg polygon, r int4range, tr tsrange,
                         t text, v varchar(20), n int);
         CREATE INDEX g_p ON g USING gist (p);
         CREATE INDEX g_p_sp ON g USING spgist (p);
         CREATE INDEX g_bx ON g USING gist (bx);
         CREATE INDEX g_pg ON g USING gist (pg);
         CREATE INDEX g_r ON g USING gist (r);
         CREATE INDEX g_r_sp ON g USING spgist (tr);
         CREATE INDEX g_t_hash ON g USING hash (t);
         CREATE INDEX g_v_like ON g (v varchar_pattern_ops);
         CREATE INDEX g_n_brin ON g USING brin (n) WITH (pages_per_range = 32);
         CREATE INDEX g_t_ff ON g (t) WITH (fillfactor = 70, deduplicate_items = off);
         CREATE INDEX g_order ON g (n DESC NULLS LAST, t NULLS FIRST);
         INSERT INTO g VALUES (1, '(1,2)', '((0,0),(1,1))', '((0,0),(1,0),(1,1))', '[1,5)',
                               '[2020-01-01,2021-01-01)', 'x', 'abc', 5),
                              (2, NULL, NULL, NULL, 'empty', NULL, NULL, NULL, NULL);",
    ) else {
        return;
    };
    assert_same(&a, &z);
    let idx = z.iter().find(|l| l.starts_with("g indexes")).unwrap();
    for want in [
        "USING gist (p)",
        "USING spgist (p)",
        "USING gist (r)",
        "USING spgist (tr)",
        "USING hash (t)",
        "(v varchar_pattern_ops)",
        "USING brin (n) WITH (pages_per_range='32')",
        "(t) WITH (fillfactor='70', deduplicate_items=off)",
        "(n DESC NULLS LAST, t NULLS FIRST)",
    ] {
        assert!(idx.contains(want), "{want} missing: {idx}");
    }
}

#[test]
fn composite_range_and_domain_array_types_are_created_and_c_types_refused_by_name() {
    let Some((a, z, _)) = pg_copy(
        "udt",
        "CREATE SCHEMA s;
         CREATE TYPE s.\"Mood\" AS ENUM ('Sad', 'ÉTÉ');
         CREATE DOMAIN s.pos AS integer CHECK (VALUE > 0);
         CREATE TYPE pair AS (x int, y text COLLATE \"C\", m s.\"Mood\");
         CREATE TYPE nested AS (p pair, ps pair[], d s.pos);
         CREATE TYPE textrange AS RANGE (subtype = text, collation = \"C\");
         CREATE TYPE floatrange AS RANGE (subtype = float8, multirange_type_name = s.floats,
                                          subtype_diff = float8mi);
         CREATE TABLE u (id int PRIMARY KEY, p pair, n nested, tr textrange, tmr textmultirange,
                         c text COLLATE \"C\",
                         fr floatrange, fm s.floats, ds s.pos[], dm s.\"Mood\"[]);
         INSERT INTO u VALUES
           (1, ROW(1, 'a,b \"q\"', 'ÉTÉ'), ROW(ROW(2, NULL, 'Sad'), ARRAY[ROW(3, 'x', NULL)::pair], 4),
               '[a,m)', '{[a,b), [x,z]}', 'x', '[1.5,2.5]', '{[1,2), [3,4)}', '{1,2,3}', '{Sad,NULL}'),
           (2, NULL, NULL, 'empty', '{}', NULL, NULL, NULL, NULL, NULL);",
    ) else {
        return;
    };
    assert_same(&a, &z);
    let types = z.iter().find(|l| l.starts_with("types")).unwrap();
    assert!(
        types.contains("textrange r text textmultirange - \"C\""),
        "{types}"
    );
    assert!(
        types.contains("floatrange r double precision s.floats float8mi"),
        "{types}"
    );
    assert!(types.contains("y text \"C\""), "{types}");
    assert!(
        z.iter().any(|l| l.contains("c text collate \"C\"")),
        "{z:#?}"
    );

    // A base type made outside any extension cannot be created from a bundle: the export
    // names it and writes no bundle.
    let Some(src) = PgDb::new("ctype") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TYPE myint;
         CREATE FUNCTION myint_in(cstring) RETURNS myint LANGUAGE internal IMMUTABLE STRICT AS 'int4in';
         CREATE FUNCTION myint_out(myint) RETURNS cstring LANGUAGE internal IMMUTABLE STRICT AS 'int4out';
         CREATE TYPE myint (INPUT = myint_in, OUTPUT = myint_out, LIKE = int4);
         CREATE TABLE ok (a int); CREATE TABLE bad (id int, v myint);",
    );
    let fx = fixture();
    let b = fx.path("b");
    let out = ferry()
        .args(["export", &src.url, b.to_str().unwrap(), "--key-file"])
        .arg(&fx.key)
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("public.bad") && err.contains("\"v\"") && err.contains("public.myint"),
        "{err}"
    );
    assert!(!b.join("manifest.json").exists());
}

#[test]
fn partitions_keep_their_column_order_not_nulls_and_sub_partitions() {
    let Some((a, z, _)) = pg_copy(
        "part",
        "CREATE TABLE m (a int, b text, c date) PARTITION BY RANGE (c);
         CREATE TABLE m2020 (b text NOT NULL, a int, c date DEFAULT '2020-06-01');
         ALTER TABLE m ATTACH PARTITION m2020 FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
         CREATE TABLE m2021 PARTITION OF m FOR VALUES FROM ('2021-01-01') TO ('2022-01-01')
           PARTITION BY LIST (a);
         CREATE TABLE m2021_small (c date, a int, b text);
         ALTER TABLE m2021 ATTACH PARTITION m2021_small FOR VALUES IN (1, 2);
         CREATE TABLE m2021_rest PARTITION OF m2021 DEFAULT;
         CREATE INDEX m_b ON m (b);
         CREATE TABLE region (a int PRIMARY KEY); INSERT INTO region VALUES (1), (7);
         CREATE INDEX m2020_own ON m2020 (a DESC);
         ALTER TABLE m2021_small ADD CONSTRAINT m2021_small_region FOREIGN KEY (a) REFERENCES region (a);
         INSERT INTO m VALUES (1, 'x', '2020-02-02'), (1, 'y', '2021-02-02'), (7, 'z', '2021-03-03'),
                              (NULL, 'w', '2020-12-31');",
    ) else {
        return;
    };
    assert_same(&a, &z);
    assert!(
        z.contains(
            &"m2020 columns b text not null, a integer, c date default '2020-06-01'::date"
                .to_string()
        ),
        "{z:#?}"
    );
    assert!(
        z.iter().any(|l| l.starts_with("m2021_small rows 1 ")),
        "{z:#?}"
    );
    assert!(
        z.contains(
            &"m2021 partitioning LIST (a) FOR VALUES FROM ('2021-01-01') TO ('2022-01-01')"
                .to_string()
        ),
        "{z:#?}"
    );
}

#[test]
fn values_arrow_has_no_room_for_travel_as_exact_text_on_the_same_engine() {
    let Some((a, z, out)) = pg_copy(
        "wide",
        "CREATE TABLE w (id int PRIMARY KEY, huge numeric, n numeric(12,2), ai int[], at text[],
                         iva interval[]);
         INSERT INTO w VALUES (1, 9e131071 + 1, 'NaN', '[0:2]={1,2,3}', '{{a,b},{c,NULL}}',
                               '{\"1 day\",NULL,\"-1 mons +00:00:01.5\"}'),
                              (2, -(9e131071 + 0.5), 1.5, '{4,5}', '{x}', '{}'),
                              (3, NULL, NULL, NULL, NULL, NULL);",
    ) else {
        return;
    };
    assert_same(&a, &z);
    assert!(z.iter().any(|l| l.starts_with("w rows 3 ")), "{z:#?}");
    assert!(out.contains("w"), "{out}");

    // Read as parallel ranges, a range that meets such a value makes the whole table be
    // read again as one slice (its ranges' parts deleted): the copy is the same.
    let Some(src) = PgDb::new("wider") else {
        return;
    };
    let Some(dst) = PgDb::new("widerd") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE w (id int PRIMARY KEY, n numeric(12,2), pad text);
         INSERT INTO w SELECT g, CASE WHEN g = 3000 THEN 'NaN' ELSE g / 4.0 END, repeat('x', 200)
         FROM generate_series(1, 4000) g;",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &["--jobs", "2", "--split-min-size", "1"]);
    let listed = crate::common::manifest(&b)["parts"]
        .as_array()
        .unwrap()
        .len();
    let stored = std::fs::read_dir(b.join("data")).unwrap().count();
    assert_eq!(
        listed, stored,
        "parts of the abandoned ranges are left behind"
    );
    fx.import_to(&b, &dst.url, &[]);
    assert_same(&pg_shape(&src.url), &pg_shape(&dst.url));

    // Read over several connections into one writer, the same: the streamed read stops,
    // its parts are deleted, and one connection reads the table again.
    let Some(dst2) = PgDb::new("widers") else {
        return;
    };
    let b2 = fx.path("b2");
    fx.export_to(&src.url, &b2, &["--streams", "2", "--split-min-size", "1"]);
    let listed = crate::common::manifest(&b2)["parts"]
        .as_array()
        .unwrap()
        .len();
    let stored = std::fs::read_dir(b2.join("data")).unwrap().count();
    assert_eq!(
        (listed, stored),
        (1, 1),
        "one part, none left behind by the abandoned streamed read"
    );
    fx.import_to(&b2, &dst2.url, &[]);
    assert_same(&pg_shape(&src.url), &pg_shape(&dst2.url));
}

#[test]
fn types_of_an_extension_need_it_on_the_target_and_preflight_names_it() {
    let Some(src) = PgDb::new("exts") else { return };
    let Some(dst) = PgDb::new("extd") else { return };
    psql(
        &src.url,
        "CREATE EXTENSION citext; CREATE EXTENSION pg_trgm;
         CREATE TABLE e (id int PRIMARY KEY, name citext, tags citext[]);
         CREATE INDEX e_name_trgm ON e USING gist (name gist_trgm_ops);
         INSERT INTO e VALUES (1, 'Ab', '{X,y}'), (2, NULL, NULL);",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let out = ferry()
        .args(["import", b.to_str().unwrap(), &dst.url, "--key-file"])
        .arg(&fx.key)
        .assert()
        .code(65);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("extension citext is not installed in the target database")
            && err.contains("CREATE EXTENSION \"citext\"")
            && err.contains("extension pg_trgm is not installed")
            && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(
        psql(
            &dst.url,
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        ),
        "0"
    );
    psql(
        &dst.url,
        "CREATE EXTENSION citext; CREATE EXTENSION pg_trgm;",
    );
    fx.import_to(&b, &dst.url, &[]);
    assert_same(&pg_shape(&src.url), &pg_shape(&dst.url));
}

#[test]
fn a_table_without_columns_keeps_its_rows_on_postgresql_and_is_refused_by_name_elsewhere() {
    let Some((a, z, _)) = pg_copy(
        "nocol",
        "CREATE TABLE z (); INSERT INTO z DEFAULT VALUES; INSERT INTO z DEFAULT VALUES;
         INSERT INTO z DEFAULT VALUES; CREATE TABLE z0 ();",
    ) else {
        return;
    };
    assert_same(&a, &z);
    assert!(z.iter().any(|l| l.starts_with("z rows 3 ")), "{z:#?}");
    assert!(z.iter().any(|l| l.starts_with("z0 rows 0 ")), "{z:#?}");

    // Into SQLite: refused by name before anything is written.
    let Some(src) = PgDb::new("nocol2") else {
        return;
    };
    psql(&src.url, "CREATE TABLE z (); INSERT INTO z DEFAULT VALUES;");
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let lite = fx.path("z.db");
    let out = ferry()
        .args(["import", b.to_str().unwrap()])
        .arg(format!("sqlite://{}", lite.display()))
        .arg("--key-file")
        .arg(&fx.key)
        .assert()
        .code(65);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("public.z has no columns (it holds rows only), which sqlite cannot create"),
        "{err}"
    );
    // And a bundle of it verifies with the key: every part decodes to its row count.
    ferry()
        .args(["verify", b.to_str().unwrap(), "--key-file"])
        .arg(&fx.key)
        .assert()
        .success();
}

#[test]
fn hostile_labels_dotted_names_and_a_target_without_standard_strings_change_nothing_else() {
    let Some(src) = PgDb::new("hostile") else {
        return;
    };
    let Some(dst) = PgDb::new("hostiled") else {
        return;
    };
    // An enum label that closes its quote where backslashes escape; two tables whose
    // dotted names read alike; two tables of one name in two schemas.
    psql(
        &src.url,
        r#"CREATE SCHEMA s; CREATE TYPE s.e AS ENUM ('\''); DROP TABLE victim; --', 'a''b', 'back\slash');
           CREATE TABLE s.t (id int, e s.e DEFAULT 'back\slash');
           INSERT INTO s.t VALUES (1, '\''); DROP TABLE victim; --'), (2, 'a''b'), (3, DEFAULT);
           CREATE SCHEMA a; CREATE TABLE a."b.c" (id int, n numeric(5,2)); INSERT INTO a."b.c" VALUES (1, 1.5);
           CREATE SCHEMA "a.b"; CREATE TABLE "a.b".c (id int, n numeric(5,2)); INSERT INTO "a.b".c VALUES (1, 'NaN');
           CREATE TABLE a.t (x int); CREATE TABLE s."T" (y text); CREATE TABLE "a.b".t (z date);
           INSERT INTO a.t VALUES (1); INSERT INTO "a.b".t VALUES ('2020-01-01');"#,
    );
    psql(
        &dst.url,
        &format!(
            "ALTER DATABASE {} SET standard_conforming_strings = off; CREATE SCHEMA keep; \
             CREATE TABLE keep.victim (x int); CREATE TABLE public.victim (x int);",
            dst.name
        ),
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    fx.import_to(&b, &dst.url, &[]);
    assert_eq!(
        psql(
            &dst.url,
            "SELECT count(*) FROM pg_class WHERE relname = 'victim'"
        ),
        "2"
    );
    psql(
        &dst.url,
        "DROP SCHEMA keep CASCADE; DROP TABLE public.victim;",
    );
    // Defaults print as escape strings where backslashes escape: compare in the same mode.
    psql(
        &dst.url,
        &format!(
            "ALTER DATABASE {} RESET standard_conforming_strings",
            dst.name
        ),
    );
    assert_same(&pg_shape(&src.url), &pg_shape(&dst.url));
    assert_eq!(
        psql(
            &dst.url,
            "SELECT string_agg(enumlabel, '|' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = 's.e'::regtype"
        ),
        r#"\'); DROP TABLE victim; --|a'b|back\slash"#
    );
}

#[test]
fn a_collation_the_target_lacks_is_named_in_preflight_before_anything_is_written() {
    let Some(src) = PgDb::new("coll") else { return };
    let Some(dst) = PgDb::new("colld") else {
        return;
    };
    psql(
        &src.url,
        "CREATE SCHEMA s; CREATE COLLATION s.bytes FROM \"C\";
         CREATE TABLE s.t (id int, v text COLLATE s.bytes); INSERT INTO s.t VALUES (1, 'b'), (2, 'B');",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let out = ferry()
        .args(["import", b.to_str().unwrap(), &dst.url, "--key-file"])
        .arg(&fx.key)
        .assert()
        .code(65);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("collation \"s\".\"bytes\" does not exist in the target database")
            && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(
        psql(
            &dst.url,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 's'"
        ),
        "0"
    );
    psql(
        &dst.url,
        "CREATE SCHEMA s; CREATE COLLATION s.bytes FROM \"C\";",
    );
    fx.import_to(&b, &dst.url, &[]);
    assert_same(&pg_shape(&src.url), &pg_shape(&dst.url));
}
