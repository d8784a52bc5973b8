//! Acceptance 1, 4 and 5 of the foundation issue: SQLite -> bundle -> SQLite keeps every
//! row, value and declared type; verify with and without a key; decrypt gives plain Parquet.

use std::path::Path;

use rusqlite::{Connection, params};

use crate::common::{dump, ferry, fixture, ledger_rows, manifest, parts, user_tables};

/// Tables with hostile names and every kind of value SQLite's storage classes allow in
/// typed columns, plus an empty table and a `big` table of `big_rows` rows.
fn build_source(path: &Path, big_rows: i64) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(
        r#"
        CREATE TABLE "Mixed Case" (
            id INTEGER PRIMARY KEY,
            label VARCHAR(40) NOT NULL DEFAULT 'none',
            note TEXT,
            data BLOB,
            ratio REAL,
            born DATE,
            seen DATETIME,
            active BOOLEAN,
            price DECIMAL(12,2),
            amount NUMERIC,
            doc JSON,
            big BIGINT
        );
        CREATE TABLE "order" ("select" INTEGER NOT NULL, "from" TEXT, "x""; DROP TABLE y;--" TEXT, PRIMARY KEY ("select"));
        CREATE TABLE y (keep INTEGER);
        INSERT INTO y VALUES (1);
        CREATE TABLE empty_one (a INTEGER, b TEXT);
        CREATE TABLE big (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, name TEXT, score REAL, flag BOOLEAN);
        CREATE INDEX big_grp ON big (grp);
        CREATE UNIQUE INDEX mixed_label ON "Mixed Case" (label);
        "#,
    )
    .unwrap();
    let ins =
        "INSERT INTO \"Mixed Case\" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
    let floats = [
        0.1,
        -0.0,
        1e-300,
        5e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.30000000000000004,
        123456.789,
    ];
    let texts = [
        "",
        "plain",
        "é (NFC) vs e\u{301} (NFD)",
        "日本語テキスト",
        "emoji 😀🚀 and astral 𝄞 𠜎",
        "tab\tnewline\nquote' dquote\" backslash\\",
        "\u{10FFFF} last plane",
    ];
    for (i, f) in floats.iter().enumerate() {
        let i = i as i64;
        let text = texts[i as usize % texts.len()];
        let blob: Vec<u8> = match i {
            0 => vec![],
            1 => vec![0, 0, 0],
            _ => (0..=255u8).cycle().take(i as usize * 37).collect(),
        };
        c.execute(
            ins,
            params![
                i,
                format!("label {i}"),
                if i == 3 { None } else { Some(text) },
                if i == 4 { None } else { Some(blob) },
                f,
                format!("{:04}-0{}-1{}", 1 + i * 222, 1 + i % 9, i % 10),
                format!(
                    "2024-0{}-1{} 0{}:1{}:2{}{}",
                    1 + i % 9,
                    i % 10,
                    i % 10,
                    i % 6,
                    i % 10,
                    [".500", ".123", ".123456", ""][i as usize % 4]
                ),
                i % 2,
                (i * 1001) as f64 / 4.0,
                if i % 2 == 0 {
                    rusqlite::types::Value::Integer(i * 7)
                } else {
                    rusqlite::types::Value::Real(i as f64 + 0.25)
                },
                format!("{{\"k\": {i}, \"s\": \"{}\"}}", "v".repeat(i as usize)),
                [i64::MIN, i64::MAX, 0, -1, 1][i as usize % 5],
            ],
        )
        .unwrap();
    }
    // A row of NULLs where the schema allows them.
    c.execute(
        "INSERT INTO \"Mixed Case\" (id, label) VALUES (100, 'nulls')",
        [],
    )
    .unwrap();
    // A row taking the defaults.
    c.execute("INSERT INTO \"Mixed Case\" (id) VALUES (101)", [])
        .unwrap();
    c.execute(
        "INSERT INTO \"order\" VALUES (1, 'a', 'b'), (2, '', NULL), (-3, NULL, '')",
        [],
    )
    .unwrap();
    let tx = c.unchecked_transaction().unwrap();
    {
        let mut st = tx
            .prepare("INSERT INTO big VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        for i in 0..big_rows {
            st.execute(params![
                i * 3 - 1000,
                i % 113,
                if i % 17 == 0 {
                    None
                } else {
                    Some(format!("row {i} ☃ {}", i * i))
                },
                (i as f64).sqrt() * 1.000001,
                i % 3 == 0
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

fn round_trip(key_args: &[&str], envs: &[(&str, &str)], big_rows: i64, extra_export: &[&str]) {
    let fx = fixture();
    let src = fx.path("rt.db");
    build_source(&src, big_rows);
    let bundle = fx.path("bundle");
    let dst = fx.path("out/dst.db");
    std::fs::create_dir_all(fx.path("out")).unwrap();
    let mut export = ferry();
    export
        .args([
            "export",
            &format!("sqlite://{}", src.display()),
            bundle.to_str().unwrap(),
        ])
        .args(key_args)
        .args(extra_export);
    for (k, v) in envs {
        export.env(k, v);
    }
    export.assert().success();
    let mut import = ferry();
    import
        .args([
            "import",
            bundle.to_str().unwrap(),
            &format!("sqlite://{}", dst.display()),
        ])
        .args(key_args);
    for (k, v) in envs {
        import.env(k, v);
    }
    import.assert().success();
    let (a, b) = (dump(&src), dump(&dst));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b.iter()) {
        assert_eq!(x, y);
    }
    assert!(a.iter().filter(|l| l.starts_with("big|")).count() as i64 == big_rows);
    // indexes came along
    let c = Connection::open(&dst).unwrap();
    let idx: Vec<String> = c
        .prepare(
            "SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(idx, vec!["big_grp".to_string(), "mixed_label".to_string()]);
    // the table next to the injection-shaped column name is intact
    let keep: i64 = c.query_row("SELECT keep FROM y", [], |r| r.get(0)).unwrap();
    assert_eq!(keep, 1);
    // compare agrees, by the library's fingerprints
    ferry()
        .args([
            "compare",
            &format!("sqlite://{}", src.display()),
            &format!("sqlite://{}", dst.display()),
        ])
        .assert()
        .success()
        .stdout(predicates::str::contains("all 5 tables are equal"));
    // a second import is a no-op that says so
    let mut again = ferry();
    again
        .args([
            "import",
            bundle.to_str().unwrap(),
            &format!("sqlite://{}", dst.display()),
        ])
        .args(key_args);
    for (k, v) in envs {
        again.env(k, v);
    }
    again
        .assert()
        .success()
        .stdout(predicates::str::contains("already imported"));
    assert_eq!(dump(&dst), b);
}

#[test]
fn sqlite_round_trip_with_key_file_keeps_values_types_and_200k_rows() {
    let fx = fixture();
    round_trip(&["--key-file", fx.key.to_str().unwrap()], &[], 200_000, &[]);
}

#[test]
fn sqlite_round_trip_with_passphrase() {
    round_trip(
        &["--passphrase-env", "FERRY_TEST_PASS"],
        &[("FERRY_TEST_PASS", "correct horse battery staple")],
        1000,
        &[],
    );
}

#[test]
fn sqlite_round_trip_across_many_small_parts() {
    let fx = fixture();
    // 1 MiB parts force rotation within the 200k-row table.
    round_trip(
        &["--key-file", fx.key.to_str().unwrap()],
        &[],
        200_000,
        &["--max-part-size", "1MiB", "--row-group-rows", "20000"],
    );
}

#[test]
fn rotation_makes_several_parts_and_each_is_listed() {
    let fx = fixture();
    let src = fx.path("rt.db");
    build_source(&src, 150_000);
    let bundle = fx.path("b");
    ferry()
        .args([
            "export",
            &format!("sqlite://{}", src.display()),
            bundle.to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .args([
            "--max-part-size",
            "1MiB",
            "--row-group-rows",
            "5000",
            "--batch-rows",
            "5000",
            "--table",
            "big",
        ])
        .assert()
        .success();
    let m = manifest(&bundle);
    let n = m["parts"].as_array().unwrap().len();
    assert!(n >= 2, "expected rotation, got {n} part(s)");
    assert_eq!(parts(&bundle).len(), n);
}

#[test]
fn value_that_does_not_fit_its_column_names_table_column_and_row_and_leaves_no_manifest() {
    let fx = fixture();
    let src = fx.path("bad.db");
    let c = Connection::open(&src).unwrap();
    c.execute_batch(
        "CREATE TABLE t (id INTEGER, n INTEGER); INSERT INTO t VALUES (1, 5), (2, 'abc');",
    )
    .unwrap();
    let bundle = fx.path("b");
    let out = ferry()
        .args([
            "export",
            &format!("sqlite://{}", src.display()),
            bundle.to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .assert()
        .code(65)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("table \"t\"") && err.contains("column \"n\"") && err.contains("row 2"),
        "{err}"
    );
    assert!(!bundle.join("manifest.json").exists());
}

#[test]
fn verify_without_key_checks_hashes_and_with_key_decodes_every_part() {
    let fx = fixture();
    let b = fx.export("b");
    let out = ferry()
        .args(["verify", b.to_str().unwrap(), "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(j["message"].as_str().unwrap().contains("SHA-256"), "{j}");
    assert_eq!(
        j["tables"].as_array().unwrap().len(),
        0,
        "no table names without the key"
    );
    let out = ferry()
        .args([
            "verify",
            b.to_str().unwrap(),
            "--json",
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let rows: u64 = j["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, 3002);
    assert_eq!(j["totals"]["rows"], 3002);
    // a SHA-256 mismatch is found without the key
    let part = &parts(&b)[0];
    let mut bytes = std::fs::read(part).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(part, bytes).unwrap();
    let name = format!("data/{}", part.file_name().unwrap().to_str().unwrap());
    ferry()
        .args(["verify", b.to_str().unwrap()])
        .assert()
        .code(65)
        .stderr(predicates::str::contains(name).and(predicates::str::contains("SHA-256")));
}

use predicates::prelude::PredicateBooleanExt;

#[test]
fn decrypt_writes_plain_parquet_another_reader_opens() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;
    let fx = fixture();
    let b = fx.export("b");
    let out = fx.path("plain");
    ferry()
        .args([
            "decrypt",
            b.to_str().unwrap(),
            out.to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .assert()
        .success();
    let file = std::fs::File::open(out.join("items/part-00000.parquet")).unwrap();
    // The parquet crate's plain row reader: no ferry code involved.
    let reader = SerializedFileReader::new(file).unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 3000);
    let names: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    assert_eq!(names, vec!["id", "name", "price", "payload"]);
    let mut ids = Vec::new();
    for row in reader.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        ids.push(row.get_long(0).unwrap());
        if ids.len() == 3 {
            assert_eq!(row.get_string(1).unwrap(), "item 2 xx");
        }
    }
    assert_eq!(ids.len(), 3000);
    assert_eq!(ids.iter().sum::<i64>(), (0..3000).sum::<i64>());
    assert!(out.join("catalog.json").exists());
    assert!(
        std::fs::read_dir(out.join("items")).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("partial"))
    );
}

#[test]
fn no_encrypt_bundle_round_trips_and_says_so() {
    let fx = fixture();
    let b = fx.path("plain");
    ferry()
        .args(["export", &fx.src_url(), b.to_str().unwrap(), "--no-encrypt"])
        .assert()
        .success()
        .stdout(predicates::str::contains("NOT encrypted"));
    let m = manifest(&b);
    assert_eq!(m["encryption"]["scheme"], "none");
    assert!(b.join("catalog.json").exists() && !b.join("manifest.mac").exists());
    assert!(
        parts(&b)
            .iter()
            .all(|p| p.extension().unwrap() == "parquet")
    );
    let dst = fx.path("dst.db");
    ferry()
        .args([
            "import",
            b.to_str().unwrap(),
            &format!("sqlite://{}", dst.display()),
            "--allow-unencrypted",
        ])
        .assert()
        .success();
    assert_eq!(dump(&fx.src), dump(&dst));
}

#[test]
fn import_refuses_a_table_that_already_holds_rows_in_create_mode_and_appends_on_request() {
    let fx = fixture();
    let b = fx.export("b");
    let dst = fx.path("dst.db");
    let c = Connection::open(&dst).unwrap();
    c.execute_batch(
        "CREATE TABLE notes (id INTEGER, body TEXT); INSERT INTO notes VALUES (9, 'mine');",
    )
    .unwrap();
    drop(c);
    ferry()
        .args([
            "import",
            b.to_str().unwrap(),
            &format!("sqlite://{}", dst.display()),
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .assert()
        .code(65)
        .stderr(predicates::str::contains("notes").and(predicates::str::contains("--mode append")));
    assert_eq!(ledger_rows(&dst), 0);
    assert_eq!(user_tables(&dst), vec!["notes".to_string()]);
    ferry()
        .args([
            "import",
            b.to_str().unwrap(),
            &format!("sqlite://{}", dst.display()),
            "--key-file",
            fx.key.to_str().unwrap(),
            "--mode",
            "append",
        ])
        .assert()
        .success();
    let c = Connection::open(&dst).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
}

#[test]
fn rename_and_table_selection_on_import() {
    let fx = fixture();
    let b = fx.export("b");
    let dst = fx.path("dst.db");
    ferry()
        .args([
            "import",
            b.to_str().unwrap(),
            &format!("sqlite://{}", dst.display()),
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .args(["--table", "items", "--rename", "items=legacy_items"])
        .assert()
        .success();
    assert_eq!(
        user_tables(&dst),
        vec!["_ferry_ledger".to_string(), "legacy_items".to_string()]
    );
    let c = Connection::open(&dst).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM legacy_items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3000);
}

#[test]
fn json_summary_matches_the_report_schema() {
    let fx = fixture();
    let b = fx.path("b");
    let out = ferry()
        .args([
            "export",
            &fx.src_url(),
            b.to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
            "--json",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/report.v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errs: Vec<String> = v.iter_errors(&report).map(|e| e.to_string()).collect();
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(report["encrypted"], true);
    assert_eq!(report["authenticated"], true);
    assert_eq!(report["totals"]["rows"], 3002);
    assert!(report["totals"]["rows_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["totals"]["mb_per_s"].as_f64().unwrap() > 0.0);
    // failures are reported in the same shape
    let out = ferry()
        .args(["verify", fx.path("nope").to_str().unwrap(), "--json"])
        .assert()
        .code(65)
        .get_output()
        .stdout
        .clone();
    let fail: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(v.iter_errors(&fail).next().is_none());
    assert_eq!(fail["status"], "failed");
    // the manifest on disk matches its published schema
    let m = manifest(&b);
    let ms: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/manifest.v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert!(jsonschema::validator_for(&ms).unwrap().is_valid(&m));
}

#[test]
fn inspect_shows_files_without_key_and_tables_with_it() {
    let fx = fixture();
    let b = fx.export("b");
    ferry()
        .args(["inspect", b.to_str().unwrap()])
        .assert()
        .success()
        .stdout(
            predicates::str::contains("catalog.fe").and(predicates::str::contains("items").not()),
        );
    ferry()
        .args([
            "inspect",
            b.to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .assert()
        .success()
        .stdout(
            predicates::str::contains("table items — 3000 rows")
                .and(predicates::str::contains("DECIMAL(10,2)")),
        );
}

#[test]
fn an_existing_bundle_is_never_overwritten() {
    let fx = fixture();
    let b = fx.export("b");
    let before = std::fs::read(b.join("manifest.json")).unwrap();
    ferry()
        .args([
            "export",
            &fx.src_url(),
            b.to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("never overwrites"));
    assert_eq!(std::fs::read(b.join("manifest.json")).unwrap(), before);
}
