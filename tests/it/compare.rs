//! Summaries and `ferry compare`: a `--table` that names nothing is a usage error, a copy that lacks a
//! column is a difference even when the columns both sides have agree.

use crate::common::{ferry, fixture};

fn compare(a: &str, b: &str, extra: &[&str]) -> (i32, String, String) {
    let out = ferry()
        .args(["compare", a, b])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_table_that_matches_nothing_is_a_usage_error() {
    let fx = fixture();
    let src = fx.src_url();
    let (code, _, err) = compare(&src, &src, &["--table", "custmers"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("custmers"), "{err}");
    let (code, out, _) = compare(&src, &src, &["--table", "items"]);
    assert_eq!(code, 0, "{out}");
    // A compare loads nothing: its summary counts no rejected rows or failed parts.
    assert!(out.contains("compare: "), "{out}");
    assert!(
        !out.contains("rejected") && !out.contains("parts failed"),
        "{out}"
    );
}

#[test]
fn a_copy_without_a_column_differs_and_names_it() {
    let fx = fixture();
    let copy = fx.path("copy.db");
    std::fs::copy(&fx.src, &copy).unwrap();
    rusqlite::Connection::open(&copy)
        .unwrap()
        .execute_batch("ALTER TABLE notes DROP COLUMN body;")
        .unwrap();
    let (code, out, _) = compare(&fx.src_url(), &format!("sqlite://{}", copy.display()), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("different columns") && out.contains("[body]"),
        "{out}"
    );
}

#[test]
fn an_export_summary_counts_its_parts() {
    let fx = fixture();
    let out = ferry()
        .args([
            "export",
            &fx.src_url(),
            fx.path("b").to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let parts = crate::common::parts(&fx.path("b")).len() as u64;
    assert!(parts > 0);
    assert_eq!(v["errors"]["parts_total"], parts, "{v}");
}

/// A dry run prints no speed (it moves nothing); a keyless verify reports the bytes it read.
#[test]
fn a_dry_run_prints_no_speed_and_a_keyless_verify_its_bytes() {
    let fx = fixture();
    let out = ferry()
        .args([
            "export",
            &fx.src_url(),
            fx.path("d").to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
            "--dry-run",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("export: dry run — ") && text.contains("nothing moved"),
        "{text}"
    );
    assert!(!text.contains("MB/s"), "{text}");
    let b = fx.export("v");
    let out = ferry()
        .args(["verify", b.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["totals"]["bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(v["totals"]["mb_per_s"].as_f64().unwrap() > 0.0, "{v}");
}

// ---- compare as a migration's key check: across engines, and a bundle against its source.

use crate::servers::{MyDb, PgDb, my, psql};

/// `ferry --json compare A B EXTRA…`: exit code and the report.
fn compare_json(a: &str, b: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = ferry()
        .args(["--json", "compare", a, b])
        .args(extra)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // Every report, differences included, is what the schema says.
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/report.v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let errs: Vec<String> = jsonschema::validator_for(&schema)
        .unwrap()
        .iter_errors(&v)
        .map(|e| e.to_string())
        .collect();
    assert!(errs.is_empty(), "{errs:?}\n{v:#}");
    (out.status.code().unwrap_or(-1), v)
}

/// The difference the report gives for `table`.
fn difference<'a>(v: &'a serde_json::Value, table: &str) -> &'a serde_json::Value {
    v["differences"]
        .as_array()
        .and_then(|d| d.iter().find(|x| x["table"] == table))
        .unwrap_or_else(|| panic!("no difference for {table}: {v:#}"))
}

/// The keys a difference names, as `key: difference [columns]`.
fn keys_of(d: &serde_json::Value) -> Vec<String> {
    d["keys"]
        .as_array()
        .map(|k| {
            k.iter()
                .map(|k| {
                    let cols: Vec<&str> = k["columns"]
                        .as_array()
                        .map(|c| c.iter().filter_map(|x| x.as_str()).collect())
                        .unwrap_or_default();
                    let (key, what) = (
                        k["key"].as_str().unwrap(),
                        k["difference"].as_str().unwrap(),
                    );
                    if cols.is_empty() {
                        format!("{key}: {what}")
                    } else {
                        format!("{key}: {what} [{}]", cols.join(","))
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn key_args(fx: &crate::common::Fixture) -> Vec<String> {
    vec!["--key-file".into(), fx.key.to_str().unwrap().into()]
}

#[test]
fn mariadb_to_postgres_with_a_rename_and_a_schema_compares_equal_and_then_names_the_change() {
    let Some(src) = MyDb::new("cmp_my") else {
        return;
    };
    let Some(dst) = PgDb::new("cmp_mypg") else {
        return;
    };
    my(
        &src.url,
        "CREATE TABLE orders (id BIGINT UNSIGNED PRIMARY KEY, big BIGINT UNSIGNED, doc JSON, \
           u UUID, name VARCHAR(40), price DECIMAL(12,2), qty INT, at DATETIME(6), paid TINYINT(1));
         INSERT INTO orders VALUES
           (1, 18446744073709551615, '{\"b\": 1, \"a\": [1, 2.50], \"nested\": {\"z\": null, \"y\": \"é\"}}',
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'first', 12.50, 3, '2024-01-02 03:04:05.678901', 1),
           (2, 0, '[1,{\"k\":\"v\"},\"x\"]', '00000000-0000-0000-0000-000000000000', 'second', 0.10, -1,
            '1999-12-31 23:59:59', 0),
           (3, 9223372036854775808, '{\"long key\":1,\"a\":true}', NULL, 'third', NULL, NULL, NULL, NULL),
           (4, NULL, NULL, 'ffffffff-ffff-ffff-ffff-ffffffffffff', '', 99999.99, 2147483647,
            '2038-01-19 03:14:07', 1);
         CREATE TABLE notes (id INT PRIMARY KEY, body TEXT);
         INSERT INTO notes VALUES (1, 'hello'), (2, NULL);",
    );
    let fx = crate::common::fixture();
    let b = fx.path("my");
    fx.export_to(&src.url, &b, &[]);
    fx.import_to(
        &b,
        &dst.url,
        &[
            "--rename",
            "orders=legacy_orders",
            "--target-schema",
            "legacy",
        ],
    );
    // PostgreSQL holds the unsigned bigint as numeric(20,0), the JSON as jsonb (keys
    // reordered, spaces added), the uuid as uuid.
    assert_eq!(
        psql(
            &dst.url,
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'legacy.legacy_orders'::regclass AND attname IN ('big', 'doc') ORDER BY attname"
        ),
        "numeric(20,0)\njsonb"
    );
    let flags = ["--rename", "orders=legacy_orders", "--schema-b", "legacy"];
    let (code, v) = compare_json(&src.url, &dst.url, &flags);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["message"], "all 2 tables are equal", "{v:#}");
    // Without the mapping, the tables do not meet.
    let (code, v) = compare_json(&src.url, &dst.url, &[]);
    assert_eq!(code, 1, "{v:#}");
    assert!(v["differences"][0]["missing_in"].is_string(), "{v:#}");

    // One changed value on the target: table, column and key.
    psql(
        &dst.url,
        "UPDATE legacy.legacy_orders SET name = 'THIRD' WHERE id = 3",
    );
    let (code, v) = compare_json(&src.url, &dst.url, &flags);
    assert_eq!(code, 1, "{v:#}");
    let d = difference(&v, "orders → legacy_orders");
    assert_eq!(d["columns"], serde_json::json!(["name"]), "{v:#}");
    assert_eq!(keys_of(d), ["id=3: changed [name]"], "{v:#}");
    assert!(
        v["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["table"] == "notes" && t["status"].as_str().unwrap().starts_with("equal")),
        "{v:#}"
    );
    // The text summary says it too.
    let (code, out, _) = compare(&src.url, &dst.url, &flags);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("orders → legacy_orders")
            && out.contains("values differ in [name]")
            && out.contains("id=3 changed [name]"),
        "{out}"
    );
    // A JSON document changed by value (not by spelling) is a difference too.
    psql(
        &dst.url,
        "UPDATE legacy.legacy_orders SET name = 'third', doc = '{\"a\": true, \"long key\": 2}' WHERE id = 3",
    );
    let (code, v) = compare_json(&src.url, &dst.url, &flags);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(
        keys_of(difference(&v, "orders → legacy_orders")),
        ["id=3: changed [doc]"],
        "{v:#}"
    );
    // --table by either side's name for it.
    for name in ["orders", "legacy_orders"] {
        let (code, v) = compare_json(
            &src.url,
            &dst.url,
            &[&flags[..], &["--table", name]].concat(),
        );
        assert_eq!(code, 1, "{v:#}");
        assert_eq!(v["tables"].as_array().unwrap().len(), 1, "{v:#}");
    }
    let (code, v) = compare_json(
        &src.url,
        &dst.url,
        &[&flags[..], &["--table", "notes"]].concat(),
    );
    assert_eq!(code, 0, "{v:#}");
}

#[test]
fn postgres_to_sqlite_compares_equal_and_then_names_the_change() {
    let Some(src) = PgDb::new("cmp_pg") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE t (id integer PRIMARY KEY, u uuid, doc jsonb, n numeric(20,0), price numeric(10,2),
                         at timestamptz, flag boolean, label text, tags json);
         INSERT INTO t VALUES
           (1, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{\"b\": [1, 2.50], \"a\": {\"y\": null}}',
            18446744073709551615, 12.50, '2024-01-02 03:04:05.678901+02', true, 'one', '{\"z\":1, \"a\" :2}'),
           (2, NULL, '\"text\"', 0, -0.01, NULL, false, '', '[]'),
           (3, '00000000-0000-0000-0000-000000000001', 'null', 12345678901234567890, NULL,
            '1970-01-01 00:00:00+00', NULL, NULL, NULL);
         CREATE TABLE other (k text PRIMARY KEY, v bigint);
         INSERT INTO other VALUES ('a', 1), ('b', NULL);",
    );
    let fx = crate::common::fixture();
    let b = fx.path("pg");
    fx.export_to(&src.url, &b, &[]);
    let dst = fx.path("dst.db");
    let dst_url = format!("sqlite://{}", dst.display());
    fx.import_to(&b, &dst_url, &[]);
    // SQLite keeps the uuid as its lowercase text.
    let c = rusqlite::Connection::open(&dst).unwrap();
    let u: String = c
        .query_row("SELECT u FROM t WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(u, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    let (code, v) = compare_json(&src.url, &dst_url, &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["message"], "all 2 tables are equal", "{v:#}");
    // Either order.
    let (code, v) = compare_json(&dst_url, &src.url, &[]);
    assert_eq!(code, 0, "{v:#}");

    c.execute("UPDATE t SET n = '12345678901234567891' WHERE id = 3", [])
        .unwrap();
    let (code, v) = compare_json(&src.url, &dst_url, &[]);
    assert_eq!(code, 1, "{v:#}");
    let d = difference(&v, "t");
    assert_eq!(d["columns"], serde_json::json!(["n"]), "{v:#}");
    assert_eq!(keys_of(d), ["id=3: changed [n]"], "{v:#}");
    assert_eq!(
        (d["rows_a"].as_u64(), d["rows_b"].as_u64()),
        (Some(3), Some(3))
    );
    // A text key is quoted.
    c.execute("UPDATE other SET v = 2 WHERE k = 'b'", [])
        .unwrap();
    let (_, v) = compare_json(&src.url, &dst_url, &["--table", "other"]);
    assert_eq!(
        keys_of(difference(&v, "other")),
        ["k=\"b\": changed [v]"],
        "{v:#}"
    );
}

#[test]
fn sqlite_to_mariadb_compares_equal_and_a_dropped_column_is_a_difference() {
    let Some(dst) = MyDb::new("cmp_sqmy") else {
        return;
    };
    let fx = crate::common::fixture();
    let src = fx.path("typed.db");
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT, r REAL, doc JSON, price DECIMAL(10,2),
                             raw BLOB, ok BOOLEAN, day DATE, extra TEXT);
             INSERT INTO t VALUES (1, 'a', 1.5, '{\"b\":1,\"a\":[true,null]}', 12.5, x'00ff', 1, '2024-02-29', 'x'),
                                  (2, NULL, -0.25, '[]', NULL, NULL, 0, NULL, NULL),
                                  (3, 'é', 1e100, NULL, 0.01, x'', NULL, '1999-01-01', 'z');",
        )
        .unwrap();
    let src_url = format!("sqlite://{}", src.display());
    let b = fx.path("sq");
    fx.export_to(&src_url, &b, &[]);
    fx.import_to(&b, &dst.url, &[]);
    let (code, v) = compare_json(&src_url, &dst.url, &[]);
    assert_eq!(code, 0, "{v:#}");
    my(&dst.url, "ALTER TABLE t DROP COLUMN extra");
    let (code, v) = compare_json(&src_url, &dst.url, &[]);
    assert_eq!(code, 1, "{v:#}");
    let d = difference(&v, "t");
    assert_eq!(
        d["columns_only_in_a"],
        serde_json::json!(["extra"]),
        "{v:#}"
    );
    let status = v["tables"][0]["status"].as_str().unwrap();
    assert!(
        status.contains("different columns") && status.contains("[extra]"),
        "{status}"
    );
    // The columns both still have agree, and the summary says so.
    assert!(status.contains("hold the same values"), "{status}");
}

#[test]
fn a_bundle_compares_equal_with_its_source_and_names_what_changed_since() {
    let fx = fixture();
    let b = fx.export("b");
    let bs = b.to_str().unwrap();
    let key = key_args(&fx);
    let key: Vec<&str> = key.iter().map(String::as_str).collect();
    let (code, v) = compare_json(bs, &fx.src_url(), &key);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["message"], "all 2 tables are equal", "{v:#}");
    assert_eq!(v["authenticated"], true, "{v:#}");
    // Without the key: a key problem, not a difference.
    let (code, _, err) = compare(bs, &fx.src_url(), &[]);
    assert_eq!(code, 77, "{err}");

    // One update, one delete, one insert at the source since the export.
    rusqlite::Connection::open(&fx.src)
        .unwrap()
        .execute_batch(
            "UPDATE items SET name = 'renamed' WHERE id = 17;
             DELETE FROM items WHERE id = 2000;
             INSERT INTO items VALUES (5000, 'new', 1.25, NULL);
             UPDATE notes SET body = 'changed' WHERE id = 2;",
        )
        .unwrap();
    let (code, v) = compare_json(bs, &fx.src_url(), &key);
    assert_eq!(code, 1, "{v:#}");
    let d = difference(&v, "items");
    assert_eq!(
        keys_of(d),
        [
            "id=17: changed [name]",
            "id=2000: missing in B",
            "id=5000: missing in A"
        ],
        "{v:#}"
    );
    assert_eq!(d["keys_complete"], true, "{v:#}");
    assert_eq!(
        (d["rows_a"].as_u64(), d["rows_b"].as_u64()),
        (Some(3000), Some(3000))
    );
    // A table without a primary key: its columns, and why no keys.
    let n = difference(&v, "notes");
    assert_eq!(n["columns"], serde_json::json!(["body"]), "{v:#}");
    assert!(n["note"].as_str().unwrap().contains("primary key"), "{v:#}");
    // --show limits the keys named.
    let (_, v) = compare_json(bs, &fx.src_url(), &[&key[..], &["--show", "1"]].concat());
    let d = difference(&v, "items");
    assert_eq!(keys_of(d), ["id=17: changed [name]"], "{v:#}");
    assert_eq!(d["keys_total"], 3, "{v:#}");
}

#[test]
fn a_plain_bundle_needs_allow_unencrypted_and_a_rename_must_name_tables() {
    let fx = fixture();
    let b = fx.path("plain");
    ferry()
        .args(["export", &fx.src_url(), b.to_str().unwrap(), "--no-encrypt"])
        .assert()
        .success();
    let bs = b.to_str().unwrap();
    let (code, _, err) = compare(bs, &fx.src_url(), &[]);
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("--allow-unencrypted"), "{err}");
    let (code, v) = compare_json(&fx.src_url(), bs, &["--allow-unencrypted"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["authenticated"], false, "{v:#}");
    // A rename of a table that does not exist is a usage error.
    let (code, _, err) = compare(
        &fx.src_url(),
        bs,
        &["--allow-unencrypted", "--rename", "itemz=items"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("itemz"), "{err}");
    // SQLite has no schemas.
    let (code, _, err) = compare(
        &fx.src_url(),
        bs,
        &["--allow-unencrypted", "--schema-a", "public"],
    );
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_postgres_bundle_compares_with_a_copy_in_another_schema() {
    let Some(src) = PgDb::new("cmp_pgb") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE t (id bigint PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 5000) g;",
    );
    let fx = fixture();
    let b = fx.path("pgb");
    fx.export_to(&src.url, &b, &[]);
    fx.import_to(
        &b,
        &src.url,
        &["--target-schema", "copy", "--separate-copy"],
    );
    let key = key_args(&fx);
    let mut args: Vec<&str> = key.iter().map(String::as_str).collect();
    args.extend(["--schema-b", "copy"]);
    let (code, v) = compare_json(b.to_str().unwrap(), &src.url, &args);
    assert_eq!(code, 0, "{v:#}");
    psql(&src.url, "DELETE FROM copy.t WHERE id = 4321");
    let (code, v) = compare_json(b.to_str().unwrap(), &src.url, &args);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(
        keys_of(difference(&v, "t")),
        ["id=4321: missing in B"],
        "{v:#}"
    );
}

/// SQLite → MariaDB: one changed value is named by table, column and key (the other test of this pair drops a column).
#[test]
fn sqlite_to_mariadb_names_a_changed_value() {
    let Some(dst) = MyDb::new("a16_sqmy") else {
        return;
    };
    let fx = fixture();
    let b = fx.export("b");
    fx.import_to(&b, &dst.url, &[]);
    let (code, v) = compare_json(&fx.src_url(), &dst.url, &[]);
    assert_eq!(code, 0, "{v:#}");
    my(&dst.url, "UPDATE items SET name = 'changed' WHERE id = 42");
    let (code, v) = compare_json(&fx.src_url(), &dst.url, &[]);
    assert_eq!(code, 1, "{v:#}");
    let d = difference(&v, "items");
    assert_eq!(d["columns"], serde_json::json!(["name"]), "{v:#}");
    assert_eq!(d["keys"][0]["key"], "id=42", "{v:#}");
    assert_eq!(d["keys"][0]["difference"], "changed", "{v:#}");
}

/// MariaDB → PostgreSQL (renamed, other schema) and PostgreSQL → SQLite: a column missing
/// on the target is a difference.
#[test]
fn a_missing_column_is_a_difference_on_the_other_pairs() {
    let (Some(my_src), Some(pg)) = (MyDb::new("a16_mc_my"), PgDb::new("a16_mc_pg")) else {
        return;
    };
    my(
        &my_src.url,
        "CREATE TABLE orders (id int PRIMARY KEY, name varchar(20), qty int);
         INSERT INTO orders VALUES (1, 'a', 1), (2, 'b', NULL);",
    );
    let fx = fixture();
    let b = fx.path("my");
    fx.export_to(&my_src.url, &b, &[]);
    fx.import_to(
        &b,
        &pg.url,
        &[
            "--rename",
            "orders=legacy_orders",
            "--target-schema",
            "legacy",
        ],
    );
    let flags = ["--rename", "orders=legacy_orders", "--schema-b", "legacy"];
    assert_eq!(compare_json(&my_src.url, &pg.url, &flags).0, 0);
    psql(&pg.url, "ALTER TABLE legacy.legacy_orders DROP COLUMN qty");
    let (code, v) = compare_json(&my_src.url, &pg.url, &flags);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(
        difference(&v, "orders → legacy_orders")["columns_only_in_a"],
        serde_json::json!(["qty"]),
        "{v:#}"
    );

    // PostgreSQL → SQLite.
    psql(
        &pg.url,
        "CREATE TABLE t (id int PRIMARY KEY, a text, extra numeric(10,2));
         INSERT INTO t VALUES (1, 'x', 1.5), (2, NULL, NULL);",
    );
    let b2 = fx.path("pg");
    fx.export_to(&pg.url, &b2, &["--table", "public.t"]);
    let lite = fx.path("dst.db");
    let lite_url = format!("sqlite://{}", lite.display());
    fx.import_to(&b2, &lite_url, &[]);
    assert_eq!(compare_json(&pg.url, &lite_url, &["--table", "t"]).0, 0);
    rusqlite::Connection::open(&lite)
        .unwrap()
        .execute_batch("ALTER TABLE t DROP COLUMN extra")
        .unwrap();
    let (code, v) = compare_json(&pg.url, &lite_url, &["--table", "t"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(
        difference(&v, "t")["columns_only_in_a"],
        serde_json::json!(["extra"]),
        "{v:#}"
    );
}

/// A bundle compared with its MariaDB source: equal, then the change named.
#[test]
fn a_mariadb_bundle_compares_with_its_source_and_names_the_change() {
    let Some(src) = MyDb::new("a16_bsrc") else {
        return;
    };
    my(
        &src.url,
        "CREATE TABLE t (id int PRIMARY KEY, v varchar(10));
         INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, NULL);",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let key = ["--key-file", fx.key.to_str().unwrap()];
    let (code, v) = compare_json(b.to_str().unwrap(), &src.url, &key);
    assert_eq!(code, 0, "{v:#}");
    my(&src.url, "UPDATE t SET v = 'z' WHERE id = 2");
    let (code, v) = compare_json(b.to_str().unwrap(), &src.url, &key);
    assert_eq!(code, 1, "{v:#}");
    let d = difference(&v, "t");
    assert_eq!(d["keys"][0]["key"], "id=2", "{v:#}");
    assert_eq!(d["columns"], serde_json::json!(["v"]), "{v:#}");
}

/// D on export: the rows' logical size beside the stored bytes, and the import of the same
/// bundle reports the same figure for the same rows.
#[test]
fn export_and_import_report_the_same_logical_size() {
    let fx = fixture();
    let b = fx.path("b");
    let out = ferry()
        .args(["--json", "export", &fx.src_url(), b.to_str().unwrap()])
        .args(["--key-file", fx.key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let logical = e["totals"]["logical_bytes"].as_u64().unwrap_or(0);
    assert!(logical > 0, "export gives no logical size: {e}");
    for t in e["tables"].as_array().unwrap() {
        assert!(t["logical_bytes"].as_u64().is_some(), "{t}");
    }
    let dst = fx.path("dst.db");
    let out = ferry()
        .args(["--json", "import", b.to_str().unwrap()])
        .arg(format!("sqlite://{}", dst.display()))
        .args(["--key-file", fx.key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let i: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        i["totals"]["logical_bytes"].as_u64(),
        Some(logical),
        "{e}\n{i}"
    );
}

/// Sizes in text output share the summary's decimal units (kB, MB): inspect's file total and
/// plan's table sizes, never KiB beside MB/s.
#[test]
fn inspect_and_plan_print_sizes_in_decimal_units() {
    let fx = fixture();
    let b = fx.export("b");
    for args in [
        vec!["inspect", b.to_str().unwrap()],
        vec!["plan", &fx.src_url()],
    ] {
        let out = ferry().args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains("KiB") && !text.contains("MiB"),
            "{args:?}: {text}"
        );
        assert!(
            text.contains(" kB") || text.contains(" MB") || text.contains(" B"),
            "{args:?}: {text}"
        );
    }
}
