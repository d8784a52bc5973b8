//! MySQL/MariaDB source and target against the real server (FERRY_TEST_MYSQL_URL, default
//! mysql://root@127.0.0.1:3306/test). Each test makes its own databases and drops them.
//! Without a server the tests fail under CI=true and are skipped loudly elsewhere.

use std::time::Duration;

use predicates::prelude::PredicateBooleanExt;
use sha2::{Digest, Sha256};

use crate::common::{ferry, fixture, wait_until};
use crate::servers::{MyDb, my, my_admin_url, my_client};

/// Every column type a fixture needs, with extremes, NULLs, empty strings, unicode, quoted
/// and reserved names, and an empty table. Zero dates are not here (they are refused).
pub const FIXTURE: &str = r#"
SET NAMES utf8mb4;
CREATE TABLE `Order Items` (
  id int NOT NULL,
  ti tinyint, tu tinyint unsigned, si smallint, su smallint unsigned,
  mi mediumint, mu mediumint unsigned, i int NOT NULL DEFAULT 7, iu int unsigned,
  bi bigint, bu bigint unsigned,
  d65 decimal(65,30), d12 decimal(12,2), d38 decimal(38,0),
  f float, dbl double, bo boolean, tiny_flag tinyint(1),
  c char(5), vc varchar(40) DEFAULT 'it''s', tx text, lt longtext,
  lat varchar(20) CHARACTER SET latin1 COLLATE latin1_swedish_ci,
  uc varchar(20) COLLATE utf8mb4_unicode_ci,
  bn binary(4), vb varbinary(10), bl blob,
  dt date, dtm datetime(6), dt0 datetime, ts timestamp(6) NULL, tm time(6), y year,
  b1 bit(1) DEFAULT b'0', b5 bit(5), b64 bit(64),
  e enum('a''b','x,y','é😀','','PG-13','Ünï NC') DEFAULT 'PG-13',
  s set('p','q r','z','Trailers','Ä') DEFAULT 'Trailers,Ä',
  j json, u uuid, g geometry, ip inet6,
  `select` int, `order` varchar(5),
  PRIMARY KEY (id),
  UNIQUE KEY order_items_vc (vc),
  KEY order_items_dt (dt, dtm)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO `Order Items` VALUES
 (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615,
  '-99999999999999999999999999999999999.999999999999999999999999999999', -9999999999.99,
  '99999999999999999999999999999999999999',
  3.40282e38, -1.7976931348623157e308, true, 5,
  'ab', 'plain é 中 😀 𝄞', '', repeat('long ', 1000),
  'Ã¥ latin', 'Ünïcode',
  0x00ff, 0x00, 0xdeadbeef,
  '1000-01-01', '9999-12-31 23:59:59.999999', '2024-02-29 12:34:56', '1970-01-01 00:00:01', '-838:59:59.000000', 1901,
  b'1', b'10101', b'1111111111111111111111111111111111111111111111111111111111111111',
  'a''b', 'p,q r,Trailers', '{"b": 1,  "a": [1, null, {"c": "é"}]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  ST_GeomFromText('POINT(1.5 -2.25)'), '2001:db8::1', 1, 'from'),
 (2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 9223372036854775808,
  '99999999999999999999999999999999999.999999999999999999999999999999', 0, '-99999999999999999999999999999999999999',
  -1.17549e-38, 5e-324, false, 0,
  '', '', NULL, '',
  '', '',
  '', '', '',
  '2024-02-29', '0001-01-01 00:00:00.000000', '1000-01-01 00:00:00', '2038-01-19 03:14:07.999999', '838:59:59.999999', 2155,
  b'0', b'0', b'0',
  '', '', '[]', '00000000-0000-0000-0000-000000000000',
  ST_GeomFromText('LINESTRING(0 0, 1 1)'), '::', NULL, '');
INSERT INTO `Order Items` (id, i, vc, tm, y, e, s, j) VALUES (3, 3, 'n3', '00:00:00', 0, NULL, 'z', 'null');
INSERT INTO `Order Items` (id, i, vc, d12, tx, dtm, tm, j, bl)
  SELECT seq, seq % 1000, concat('v', seq), seq / 7, repeat('x', seq % 50),
         '2020-01-01 00:00:00' + INTERVAL seq MINUTE, sec_to_time(CAST(seq AS SIGNED) - 2500), json_object('g', seq),
         unhex(sha2(seq, 256))
  FROM seq_10_to_5009;
CREATE TABLE `we``ird "name"` (`k``ey` bigint PRIMARY KEY, `desc` text, item int,
  CONSTRAINT weird_item FOREIGN KEY (item) REFERENCES `Order Items` (id));
INSERT INTO `we``ird "name"` VALUES (1, 'from', 1), (2, NULL, NULL), (3, '', 2);
CREATE TABLE empty_one (a int, b text) ENGINE=InnoDB;
"#;

/// Per table: row count and an order-independent digest of every value (numbers as their
/// text, everything else as hex bytes), and per column its COLUMN_TYPE, nullability,
/// character set, collation and default.
pub fn fingerprint(url: &str) -> Vec<String> {
    let db = url::Url::parse(url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let tables = my(
        url,
        &format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' \
             AND TABLE_NAME <> '_ferry_ledger' ORDER BY TABLE_NAME"
        ),
    );
    let mut out = Vec::new();
    for t in tables.lines() {
        let cols = my(
            url,
            &format!(
                "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' \
                 AND TABLE_NAME = '{}' ORDER BY ORDINAL_POSITION",
                t.replace('\'', "''")
            ),
        );
        let exprs: Vec<String> = cols
            .lines()
            .map(|l| {
                let (name, ty) = l.split_once('\t').unwrap();
                let q = format!("`{}`", name.replace('`', "``"));
                match ty {
                    "float" | "double" => format!("IFNULL(CAST({q} AS DOUBLE), 'N')"),
                    "decimal" | "tinyint" | "smallint" | "mediumint" | "int" | "bigint"
                    | "year" => {
                        format!("IFNULL(CAST({q} AS CHAR), 'N')")
                    }
                    _ => format!("IFNULL(HEX({q}), 'N')"),
                }
            })
            .collect();
        let tq = format!("`{}`", t.replace('`', "``"));
        let rows = my(
            url,
            &format!("SELECT CONCAT_WS('|', {}) FROM {tq}", exprs.join(", ")),
        );
        let mut rows: Vec<&str> = rows.lines().collect();
        rows.sort_unstable();
        let digest = hex::encode(Sha256::digest(rows.join("\n").as_bytes()));
        out.push(format!("{t} rows {} digest {digest}", rows.len()));
        out.push(format!(
            "{t} columns {}",
            my(
                url,
                &format!(
                    "SELECT GROUP_CONCAT(CONCAT_WS(' ', COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, \
                     IFNULL(CHARACTER_SET_NAME, '-'), IFNULL(COLLATION_NAME, '-'), IFNULL(COLUMN_DEFAULT, '-')) \
                     ORDER BY ORDINAL_POSITION SEPARATOR ', ') FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{}'",
                    t.replace('\'', "''")
                )
            )
        ));
    }
    out
}

fn key_args(fx: &crate::common::Fixture) -> Vec<String> {
    vec!["--key-file".into(), fx.key.to_str().unwrap().into()]
}

/// Keys and indexes of a database, for comparing source and target.
fn keys_of(url: &str) -> String {
    let db = url::Url::parse(url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    my(
        url,
        &format!(
            "SELECT GROUP_CONCAT(CONCAT_WS(' ', TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME) \
             ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX SEPARATOR '; ') FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME <> '_ferry_ledger'"
        ),
    )
}

#[test]
fn mariadb_round_trip_is_exact_for_every_type_and_keeps_column_types_and_keys() {
    let Some(src) = MyDb::new("src") else {
        return;
    };
    let Some(dst) = MyDb::new("dst") else {
        return;
    };
    my(&src.url, FIXTURE);
    let fx = fixture();
    let b = fx.path("b");
    // Small batches: every part spans many batches and several INSERT statements.
    fx.export_to(&src.url, &b, &["--batch-rows", "700"]);
    fx.import_to(&b, &dst.url, &["--jobs", "2"]);
    let (a, z) = (fingerprint(&src.url), fingerprint(&dst.url));
    assert_eq!(a.len(), 6, "{a:#?}");
    assert!(
        a.iter().any(|l| l.starts_with("Order Items rows 5003 ")),
        "{a:#?}"
    );
    assert_eq!(a, z);
    assert_eq!(keys_of(&src.url), keys_of(&dst.url));
    let fk = my(
        &dst.url,
        &format!(
            "SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = '{}'",
            dst.name
        ),
    );
    assert_eq!(fk, "weird_item");
    // The JSON column is still JSON (MariaDB: the json_valid check came along).
    let bad = my_client(&dst.url)
        .args([
            "-e",
            "INSERT INTO `Order Items` (id, vc, j) VALUES (99999, 'bad', 'not json')",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    // compare agrees, and a second import is a no-op
    ferry()
        .args(["compare", &src.url, &dst.url])
        .assert()
        .success();
    ferry()
        .args(["import", b.to_str().unwrap(), &dst.url])
        .args(key_args(&fx))
        .assert()
        .success()
        .stdout(predicates::str::contains("already imported"));
}

#[test]
fn mariadb_url_scheme_and_a_round_trip_through_sqlite_keep_values() {
    let Some(src) = MyDb::new("m2s") else {
        return;
    };
    let Some(dst) = MyDb::new("s2m") else {
        return;
    };
    my(
        &src.url,
        "CREATE TABLE t (id bigint PRIMARY KEY, n decimal(12,2), f double, s varchar(20), b varbinary(8), ok boolean, d date, ts datetime(6), bu bigint unsigned);
         INSERT INTO t VALUES (1, -1234567890.12, 0.1, 'é😀', 0x00ff, true, '2024-02-29', '2024-02-29 12:34:56.123456', 9223372036854775807),
                              (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                              (3, 0, -1e300, '', '', false, '1970-01-01', '1970-01-01 00:00:00', 0);",
    );
    let fx = fixture();
    let (b1, b2) = (fx.path("b1"), fx.path("b2"));
    let lite = format!("sqlite://{}", fx.path("mid.db").display());
    let src_url = src.url.replacen("mysql://", "mariadb://", 1);
    fx.export_to(&src_url, &b1, &[]);
    fx.import_to(&b1, &lite, &[]);
    fx.export_to(&lite, &b2, &[]);
    fx.import_to(&b2, &dst.url, &[]);
    let q = "SELECT id, n, f, HEX(s), HEX(b), ok, d, ts, bu FROM t ORDER BY id";
    assert_eq!(my(&src.url, q), my(&dst.url, q));
}

#[test]
fn a_tinyint1_column_travels_as_boolean_until_a_value_says_otherwise_and_nothing_stray_is_left() {
    let Some(src) = MyDb::new("flags") else {
        return;
    };
    let Some(dst) = MyDb::new("flagsdst") else {
        return;
    };
    // `ok` holds only 0, 1 and NULL; `lvl` too, until its very last row holds 7: by then
    // several parts of the table are written and must go.
    my(
        &src.url,
        "CREATE TABLE t (id int PRIMARY KEY, ok boolean, lvl tinyint(1), pad varchar(200));
         INSERT INTO t SELECT seq, IF(seq % 7 = 0, NULL, seq % 2), seq % 2, repeat(md5(seq), 6)
           FROM seq_1_to_30000;
         UPDATE t SET lvl = 7 WHERE id = 30000;",
    );
    let fx = fixture();
    let b = fx.path("b");
    let out = ferry()
        .args(["export", &src.url, b.to_str().unwrap(), "--json"])
        .args(key_args(&fx))
        .args([
            "--batch-rows",
            "1000",
            "--row-group-rows",
            "4000",
            "--max-part-size",
            "1MiB",
        ])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("column \\\"lvl\\\"")
            && warnings.contains("integer")
            && warnings.contains("read again"),
        "{warnings}"
    );
    assert!(!warnings.contains("\\\"ok\\\""), "{warnings}");
    // Exactly the files the manifest lists (plus manifest, MAC and sums): the first
    // attempt's parts are gone.
    let manifest = crate::common::manifest(&b);
    let mut listed: Vec<String> = manifest["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect();
    assert!(listed.len() >= 2, "{listed:?}");
    listed.sort();
    let on_disk: Vec<String> = crate::common::parts(&b)
        .iter()
        .map(|p| format!("data/{}", p.file_name().unwrap().to_str().unwrap()))
        .collect();
    assert_eq!(on_disk, listed);
    // Same engine: both columns come back as tinyint(1) with every value.
    fx.import_to(&b, &dst.url, &[]);
    assert_eq!(fingerprint(&src.url), fingerprint(&dst.url));
    // Across engines the difference shows: ok is a boolean, lvl an integer.
    let lite_types = {
        let lite = fx.path("t.db");
        fx.import_to(&b, &format!("sqlite://{}", lite.display()), &[]);
        let c = rusqlite::Connection::open(&lite).unwrap();
        c.prepare("SELECT name || ' ' || type FROM pragma_table_info('t') WHERE name IN ('ok', 'lvl') ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    };
    assert_eq!(lite_types, ["lvl INTEGER", "ok BOOLEAN"]);
}

#[test]
fn zero_dates_are_an_error_naming_table_column_and_row_unless_exported_as_null() {
    let Some(src) = MyDb::new("zero") else {
        return;
    };
    my(
        &src.url,
        "SET SESSION sql_mode = '';
         CREATE TABLE events (id int PRIMARY KEY, day date, at datetime);
         INSERT INTO events VALUES (1, '2024-01-01', '2024-01-01 10:00:00'), (2, '0000-00-00', '2024-01-01 10:00:00'),
                                   (3, '2024-05-01', '2024-00-00 00:00:00');",
    );
    let fx = fixture();
    let b = fx.path("b");
    ferry()
        .args(["export", &src.url, b.to_str().unwrap()])
        .args(key_args(&fx))
        .assert()
        .code(65)
        .stderr(
            predicates::str::contains("table events")
                .and(predicates::str::contains("column \"day\""))
                .and(predicates::str::contains("row 2"))
                .and(predicates::str::contains("--zero-dates null")),
        );
    assert!(!b.join("manifest.json").exists());
    fx.export_to(&src.url, &b, &["--zero-dates", "null"]);
    let lite = fx.path("z.db");
    fx.import_to(&b, &format!("sqlite://{}", lite.display()), &[]);
    let c = rusqlite::Connection::open(&lite).unwrap();
    let rows: Vec<(i64, Option<String>, Option<String>)> = c
        .prepare("SELECT id, day, at FROM events ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                1,
                Some("2024-01-01".into()),
                Some("2024-01-01 10:00:00".into())
            ),
            (2, None, Some("2024-01-01 10:00:00".into())),
            (3, Some("2024-05-01".into()), None),
        ]
    );
}

#[test]
fn a_second_import_of_the_same_bundle_while_one_runs_exits_75_naming_the_holder() {
    let Some(src) = MyDb::new("lock") else {
        return;
    };
    let Some(dst) = MyDb::new("lockdst") else {
        return;
    };
    my(
        &src.url,
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT seq FROM seq_1_to_100;",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let id = crate::common::manifest(&b)["bundle_id"]
        .as_str()
        .unwrap()
        .to_string();
    let lock = ferry::engines::mysql::loader::run_lock_name(&id, &dst.name);
    // Another importer holds the run lock of this bundle at this database.
    let mut holder = my_client(&dst.url)
        .args(["-e", &format!("SELECT GET_LOCK('{lock}', 0), SLEEP(6)")])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "the holder has the run lock",
        Duration::from_secs(10),
        || {
            my(
                &dst.url,
                &format!("SELECT IS_USED_LOCK('{lock}') IS NOT NULL"),
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
                .and(predicates::str::contains("connection id")),
        );
    assert_eq!(
        my(
            &dst.url,
            &format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}'",
                dst.name
            )
        ),
        "0"
    );
    holder.wait().unwrap();
    fx.import_to(&b, &dst.url, &[]);
    assert_eq!(my(&dst.url, "SELECT COUNT(*) FROM t"), "100");
}

#[test]
fn a_row_the_target_refuses_fails_its_part_naming_table_row_and_server_message() {
    let Some(src) = MyDb::new("dup") else {
        return;
    };
    let Some(dst) = MyDb::new("dupdst") else {
        return;
    };
    my(
        &src.url,
        "CREATE TABLE t (id int PRIMARY KEY, v varchar(10)); INSERT INTO t SELECT seq, concat('v', seq) FROM seq_1_to_50;",
    );
    my(
        &dst.url,
        "CREATE TABLE t (id int PRIMARY KEY, v varchar(10)); INSERT INTO t VALUES (42, 'mine');",
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
            predicates::str::contains("table t")
                .and(predicates::str::contains("Duplicate entry '42'"))
                .and(predicates::str::contains(
                    "nothing from this part was committed",
                )),
        );
    assert_eq!(my(&dst.url, "SELECT COUNT(*), MIN(v) FROM t"), "1\tmine");
    assert_eq!(my(&dst.url, "SELECT COUNT(*) FROM _ferry_ledger"), "0");
    // A value too long for an existing column names the row.
    my(&dst.url, "DELETE FROM t; ALTER TABLE t MODIFY v varchar(2)");
    ferry()
        .args(["import", b.to_str().unwrap(), &dst.url, "--mode", "append"])
        .args(key_args(&fx))
        .assert()
        .code(65)
        .stderr(
            // The server's words: "Data too long" for an INSERT, "Data truncated" for a
            // LOAD DATA (a warning there, which fails the part all the same).
            predicates::str::contains("row 10 of part").and(
                predicates::str::contains("Data too long")
                    .or(predicates::str::contains("Data truncated for column 'v'")),
            ),
        );
    assert_eq!(my(&dst.url, "SELECT COUNT(*) FROM t"), "0");
}

#[test]
fn connection_killed_mid_part_exits_75_keeps_whole_parts_and_a_rerun_completes() {
    let Some(src) = MyDb::new("kill") else {
        return;
    };
    let Some(dst) = MyDb::new("killdst") else {
        return;
    };
    my(
        &src.url,
        "CREATE TABLE big (id int PRIMARY KEY, pad varchar(300));
         INSERT INTO big SELECT seq, repeat(md5(seq), 8) FROM seq_1_to_150000;",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(
        &src.url,
        &b,
        &["--max-part-size", "1MiB", "--row-group-rows", "20000"],
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
    // Wait until an INSERT into the target runs, then kill that connection.
    let mut killed = false;
    for _ in 0..600 {
        let ids = my(
            &my_admin_url(),
            &format!(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '{}' AND INFO LIKE 'INSERT INTO `big`%'",
                dst.name
            ),
        );
        if let Some(id) = ids.lines().next() {
            let _ = my_client(&my_admin_url())
                .args(["-e", &format!("KILL {id}")])
                .output();
            killed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = import.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if !killed {
        eprintln!("the import finished before an INSERT could be caught; nothing to check");
        return;
    }
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("re-run") && !err.contains("panicked"), "{err}");
    let ledger_rows = my(
        &dst.url,
        "SELECT COALESCE(SUM(rows_loaded), 0) FROM _ferry_ledger",
    );
    assert_eq!(my(&dst.url, "SELECT COUNT(*) FROM big"), ledger_rows);
    // The killed connection may still be rolling back, holding the run lock (a re-run
    // would say so with 75): the re-run starts once every session of the import is gone.
    wait_until(
        "the killed import's sessions are gone",
        Duration::from_secs(30),
        || {
            my(
                &my_admin_url(),
                &format!(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{}'",
                    dst.name
                ),
            ) == "0"
        },
    );
    let out = ferry()
        .args(["import", b.to_str().unwrap(), &dst.url])
        .args(key_args(&fx))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        my(&dst.url, "SELECT COUNT(*), COUNT(DISTINCT id) FROM big"),
        "150000\t150000"
    );
}

/// Text the server would convert with loss is never read as converted: ascii columns come
/// as bytes and a byte above 0x7F is an error naming table, column and row; character sets
/// that do not always convert to utf8mb4 are refused at export start. Valid ascii and
/// latin1 text round-trips exactly.
#[test]
fn text_the_server_would_convert_with_loss_is_refused_by_name_and_valid_legacy_text_is_exact() {
    let Some(src) = MyDb::new("cs") else {
        return;
    };
    let Some(dst) = MyDb::new("csdst") else {
        return;
    };
    my(
        &src.url,
        "SET NAMES utf8mb4;
         CREATE TABLE legacy (id int PRIMARY KEY,
           a varchar(20) CHARACTER SET ascii, l varchar(20) CHARACTER SET latin1);
         INSERT INTO legacy VALUES (1, 'plain ~ text', 'caf\u{e9} \u{20ac}'), (2, '', NULL);",
    );
    let fx = fixture();
    let b = fx.path("ok");
    fx.export_to(&src.url, &b, &[]);
    fx.import_to(&b, &dst.url, &[]);
    assert_eq!(
        my(&dst.url, "SELECT HEX(a), HEX(l) FROM legacy ORDER BY id"),
        my(&src.url, "SELECT HEX(a), HEX(l) FROM legacy ORDER BY id")
    );
    assert_eq!(
        my(
            &dst.url,
            "SELECT CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'legacy' AND COLUMN_NAME = 'a'"
        ),
        "ascii"
    );

    // A byte the server would send as '?'.
    my(
        &src.url,
        "SET SESSION sql_mode = ''; INSERT INTO legacy VALUES (3, x'41E942', 'x');",
    );
    let bad = fx.path("bad");
    ferry()
        .args(["export", &src.url, bad.to_str().unwrap()])
        .args(key_args(&fx))
        .assert()
        .code(65)
        .stderr(
            predicates::str::contains("table legacy")
                .and(predicates::str::contains("column \"a\""))
                .and(predicates::str::contains("row 3"))
                .and(predicates::str::contains("0xE9")),
        );
    assert!(!bad.join("manifest.json").exists());

    // A character set without a lossless conversion: refused before any data moves.
    my(
        &src.url,
        "DELETE FROM legacy WHERE id = 3;
         CREATE TABLE sj (id int PRIMARY KEY, s varchar(10) CHARACTER SET sjis);",
    );
    let sj = fx.path("sj");
    ferry()
        .args(["export", &src.url, sj.to_str().unwrap()])
        .args(key_args(&fx))
        .assert()
        .code(65)
        .stderr(
            predicates::str::contains("table sj, column s")
                .and(predicates::str::contains("character set sjis"))
                .and(predicates::str::contains(
                    "CONVERT TO CHARACTER SET utf8mb4",
                )),
        );
}

/// Statements stay under max_allowed_packet however rows are sized: rows just under the
/// limit each go in a statement of their own, and a row larger than the server takes is
/// named with the setting to raise, before anything of its part is committed.
#[test]
fn rows_near_and_above_max_allowed_packet_load_or_are_named_with_the_fix() {
    let Some(dst) = MyDb::new("pkt") else {
        return;
    };
    let packet: usize = my(&dst.url, "SELECT @@max_allowed_packet").parse().unwrap();
    let fx = fixture();
    let src = fx.path("pkt.db");
    let c = rusqlite::Connection::open(&src).unwrap();
    c.execute_batch("CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB);")
        .unwrap();
    // Just under 4 MiB of small rows (one statement's worth), then rows of 13/16 of the
    // packet: each must go in a statement of its own, or the statement passes the limit.
    let big = packet / 16 * 13;
    {
        let tx = c.unchecked_transaction().unwrap();
        for i in 0..3900i64 {
            tx.execute("INSERT INTO blobs VALUES (?1, randomblob(1000))", [i])
                .unwrap();
        }
        tx.commit().unwrap();
    }
    for i in 3900..3902i64 {
        c.execute(
            "INSERT INTO blobs VALUES (?1, randomblob(?2))",
            rusqlite::params![i, big as i64],
        )
        .unwrap();
    }
    let b = fx.path("b");
    fx.export_to(&format!("sqlite://{}", src.display()), &b, &[]);
    fx.import_to(&b, &dst.url, &[]);
    assert_eq!(
        my(&dst.url, "SELECT COUNT(*), SUM(LENGTH(b)) FROM blobs"),
        format!("3902\t{}", 3_900_000 + 2 * big)
    );

    // One row above the packet: exit 1 naming the row and the setting, nothing committed.
    c.execute(
        "INSERT INTO blobs VALUES (100000, randomblob(?1))",
        [(packet + 1) as i64],
    )
    .unwrap();
    drop(c);
    let Some(dst2) = MyDb::new("pkt2") else {
        return;
    };
    let b2 = fx.path("b2");
    fx.export_to(&format!("sqlite://{}", src.display()), &b2, &[]);
    ferry()
        .args(["import", b2.to_str().unwrap(), &dst2.url])
        .args(key_args(&fx))
        .assert()
        .code(1)
        .stderr(
            predicates::str::contains("table blobs, row 3903")
                .and(predicates::str::contains("max_allowed_packet")),
        );
    // The ledger and the table may exist (MySQL DDL commits by itself), but hold nothing.
    assert_eq!(my(&dst2.url, "SELECT COUNT(*) FROM _ferry_ledger"), "0");
    assert_eq!(my(&dst2.url, "SELECT COUNT(*) FROM blobs"), "0");
}

/// RELIABILITY E51 on MariaDB: another session's transaction holds locks on the target
/// table. The part waits FERRY_LOCK_TIMEOUT seconds (not the server's default), rolls back,
/// and the import exits 75 naming the holder; a re-run after the holder commits completes.
#[test]
fn a_lock_held_by_another_session_ends_the_part_with_75_naming_the_holder() {
    let Some(dst) = MyDb::new("lock") else {
        return;
    };
    my(&dst.url, "CREATE TABLE notes (id bigint, body text)");
    let fx = fixture();
    let b = fx.export("b");
    let url = dst.url.clone();
    // Locks the whole (empty) table against inserts: FOR UPDATE takes the supremum's
    // next-key lock.
    let holder = std::thread::spawn(move || {
        my_client(&url)
            .args(["-N", "-B", "-e"])
            .arg("START TRANSACTION; SELECT * FROM notes FOR UPDATE; SELECT SLEEP(6); COMMIT;")
            .output()
            .unwrap()
    });
    // The holder runs its statements in order: once its SLEEP(6) runs, the FOR UPDATE
    // before it holds its locks in the open transaction. (PROCESSLIST, not INNODB_TRX: the
    // server refreshes INNODB_TRX only when nobody read it in the last 100 ms, so probing
    // it this often would keep reading the picture from before the holder began.)
    let probe = format!(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
         WHERE DB = '{}' AND INFO LIKE 'SELECT SLEEP(6)%'",
        dst.name
    );
    wait_until("the holder has its lock", Duration::from_secs(30), || {
        holder.is_finished() || my(&dst.url, &probe) == "1"
    });
    if holder.is_finished() {
        let out = holder.join().unwrap();
        panic!(
            "the holder ended before it was seen holding its lock ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let t0 = std::time::Instant::now();
    let out = ferry()
        .env("FERRY_LOCK_TIMEOUT", "1")
        .args(["import", b.to_str().unwrap(), &dst.url])
        .args(["--table", "notes", "--mode", "append"])
        .args(key_args(&fx))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("notes is locked by another session"), "{err}");
    assert!(err.contains("SELECT SLEEP(6)"), "{err}");
    assert!(err.contains("re-run"), "{err}");
    // It gave up after about a second, while the holder still held the lock.
    assert!(t0.elapsed().as_secs() < 5, "{:?}", t0.elapsed());
    assert!(holder.join().unwrap().status.success());
    assert_eq!(my(&dst.url, "SELECT COUNT(*) FROM notes"), "0");
    fx.import_to(&b, &dst.url, &["--table", "notes", "--mode", "append"]);
    assert_eq!(my(&dst.url, "SELECT COUNT(*) FROM notes"), "2");
}

/// MariaDB reads on one connection: `--jobs 2` says so instead of being silently ignored.
#[test]
fn an_export_with_jobs_says_mariadb_reads_on_one_connection() {
    let fx = crate::common::fixture();
    let Some(db) = MyDb::new("jobs") else {
        return;
    };
    my(
        &db.url,
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
    );
    let out = crate::common::ferry()
        .args([
            "export",
            &db.url,
            fx.path("b").to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
            "--jobs",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("--jobs 2: mysql reads on 1 connection"),
        "{warnings}"
    );
}
