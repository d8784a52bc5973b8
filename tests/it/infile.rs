//! MariaDB's LOAD DATA LOCAL INFILE path (issue #18): the rows go from the decrypted batches
//! to the socket as LOAD DATA text. Every type is exact (against the source and against
//! the batched-INSERT path, `FERRY_MYSQL_LOAD_DATA=off`), a value the server would convert
//! is refused naming table, column and row, the summary says which path and why, and an
//! import killed with SIGKILL while the LOAD DATA streams resumes exactly.

use std::process::Stdio;
use std::time::Duration;

use crate::common::{ferry, fixture, wait_until};
use crate::mysql::{FIXTURE, fingerprint};
use crate::servers::{MyDb, my, my_admin_url};

const LOAD_DATA: &str = "load path: MariaDB: LOAD DATA LOCAL INFILE (local_infile=ON)";

/// Text and bytes LOAD DATA's format gives meaning to: `\N` against NULL against the
/// empty string and the word NULL, tabs, newlines, carriage returns, NUL, backslashes
/// (alone, trailing, doubled), 4-byte characters, and floats at their edges.
const TRICKY: &str = r#"
SET NAMES utf8mb4;
CREATE TABLE tricky (
  id int PRIMARY KEY, t text, v varchar(50), b varbinary(50), bl blob, j json,
  d double, f float, bits bit(8), e enum('', 'a', 'é'), dt datetime(6), tm time(6),
  dc decimal(30,10), u bigint unsigned
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO tricky VALUES
 (1, CONCAT(CHAR(92), 'N'), 'NULL', UNHEX('5C4E'), UNHEX('00090A0D5C'),
  JSON_OBJECT('k', CONCAT('a', CHAR(9), CHAR(92), '"', CHAR(10))), 1e300, 3.40282e38, b'10000001',
  'é', '2024-02-29 23:59:59.000001', '-00:00:00.000001', '-0.0000000001', 18446744073709551615),
 (2, '', '', UNHEX(''), '', '[]', -1.5e-300, 1.17549e-38, b'0', '', '1000-01-01 00:00:00', '838:59:59',
  '99999999999999999999.9999999999', 0),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, CONCAT('a', CHAR(9), 'b', CHAR(10), 'c', CHAR(13), 'd', CHAR(0), 'e', CHAR(92), 'f', CHAR(92)),
  CONCAT(CHAR(92), CHAR(92), 'N'), UNHEX('FF00095C0A'), UNHEX('5C'), JSON_QUOTE(CONCAT(CHAR(92), 'N')), 0.1, 0.1, b'11111111', 'a',
  '9999-12-31 23:59:59.999999', '-838:59:59', '0', 9223372036854775808),
 (5, '😀 𝄞 中 \\', CONCAT(' ', CHAR(92), 't '), UNHEX('0D'), UNHEX(REPEAT('FE', 3000)), 'null', 5e-324, -0.1,
  b'1', 'é', '1970-01-01 00:00:00', '00:00:00', '-12345.6789', 1),
 (6, CHAR(92), CHAR(9), UNHEX('09'), UNHEX('0A'), JSON_QUOTE(CHAR(9)), 123456789.123456789, 16777217, NULL, NULL, NULL,
  NULL, NULL, NULL);
"#;

/// `ferry import` with the key, the environment's extra variables; returns (success,
/// stdout, stderr).
fn import(
    fx: &crate::common::Fixture,
    bundle: &std::path::Path,
    url: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let mut c = ferry();
    c.args([
        "import",
        bundle.to_str().unwrap(),
        url,
        "--key-file",
        fx.key.to_str().unwrap(),
    ])
    .args(extra);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_type_is_exact_through_load_data_and_through_the_insert_path_and_the_summary_says_which() {
    let Some(src) = MyDb::new("ldsrc") else {
        return;
    };
    let (Some(a), Some(b)) = (MyDb::new("ldinfile"), MyDb::new("ldinsert")) else {
        return;
    };
    my(&src.url, FIXTURE);
    my(&src.url, TRICKY);
    let fx = fixture();
    let bundle = fx.path("b");
    // Small batches: a part spans many batches (and many channel chunks of LOAD DATA text).
    fx.export_to(&src.url, &bundle, &["--batch-rows", "700"]);
    let (ok, out, err) = import(&fx, &bundle, &a.url, &["--jobs", "2"], &[]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(LOAD_DATA), "{out}");
    let (ok, out, err) = import(
        &fx,
        &bundle,
        &b.url,
        &["--jobs", "2"],
        &[("FERRY_MYSQL_LOAD_DATA", "off")],
    );
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("load path: batched INSERT: FERRY_MYSQL_LOAD_DATA=off"),
        "{out}"
    );
    let want = fingerprint(&src.url);
    assert!(
        want.iter().any(|l| l.starts_with("tricky rows 6 ")),
        "{want:#?}"
    );
    assert_eq!(fingerprint(&a.url), want, "LOAD DATA path");
    assert_eq!(fingerprint(&b.url), want, "INSERT path");
    // The values LOAD DATA gives meaning to, read back one by one.
    assert_eq!(
        my(
            &a.url,
            "SELECT id, HEX(t), HEX(v), t IS NULL, HEX(b), HEX(bl) FROM tricky WHERE id IN (1, 2, 3, 6) ORDER BY id"
        ),
        "1\t5C4E\t4E554C4C\t0\t5C4E\t00090A0D5C\n\
         2\t\t\t0\t\t\n\
         3\tNULL\tNULL\t1\tNULL\tNULL\n\
         6\t5C\t09\t0\t09\t0A"
    );
    // A second import is a no-op on either path.
    let (ok, out, _) = import(&fx, &bundle, &a.url, &[], &[]);
    assert!(ok && out.contains("already imported"), "{out}");
}

#[test]
fn a_value_the_server_would_convert_is_refused_naming_table_column_and_row_and_nothing_commits() {
    let Some(src) = MyDb::new("ldbad") else {
        return;
    };
    let Some(dst) = MyDb::new("ldbaddst") else {
        return;
    };
    my(
        &src.url,
        "CREATE TABLE t (id int PRIMARY KEY, v varchar(10), n int);
         INSERT INTO t VALUES (1, 'ab', 1), (2, 'abcd', 2), (3, 'x', 3);
         CREATE TABLE k (id int PRIMARY KEY, v text);
         INSERT INTO k VALUES (1, 'a'), (2, 'b'), (3, 'c');",
    );
    let fx = fixture();
    let bundle = fx.path("b");
    fx.export_to(&src.url, &bundle, &["--table", "t"]);
    // The target's column is narrower: 'abcd' (row 2) would be truncated.
    my(
        &dst.url,
        "CREATE TABLE t (id int PRIMARY KEY, v varchar(3), n int)",
    );
    for env in [
        [("FERRY_MYSQL_LOAD_DATA", "on")],
        [("FERRY_MYSQL_LOAD_DATA", "off")],
    ] {
        let (ok, out, err) = import(&fx, &bundle, &dst.url, &["--mode", "append"], &env);
        assert!(!ok, "{env:?}: {out}");
        assert!(
            err.contains("table t, row 2 of part") && err.contains("'v'"),
            "{env:?}: {err}"
        );
        assert!(
            err.contains("nothing from this part was committed"),
            "{err}"
        );
        assert_eq!(my(&dst.url, "SELECT COUNT(*) FROM t"), "0", "{env:?}");
    }
    // A duplicate key (LOAD DATA LOCAL would skip it with a warning) fails the part too.
    let bundle_k = fx.path("k");
    fx.export_to(&src.url, &bundle_k, &["--table", "k"]);
    my(
        &dst.url,
        "CREATE TABLE k (id int PRIMARY KEY, v text); INSERT INTO k VALUES (2, 'old')",
    );
    let (ok, out, err) = import(&fx, &bundle_k, &dst.url, &["--mode", "append"], &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(LOAD_DATA) || err.contains("Duplicate entry"),
        "{out}\n{err}"
    );
    assert!(
        err.contains("table k") && err.contains("Duplicate entry '2'"),
        "{err}"
    );
    assert_eq!(my(&dst.url, "SELECT GROUP_CONCAT(id, v) FROM k"), "2old");
}

/// SIGKILL while the LOAD DATA streams (seen in the server's process list, no hook): the
/// part rolls back with its ledger row; the re-run loads every row once.
#[test]
fn an_import_killed_while_load_data_streams_resumes_exactly() {
    let Some(src) = MyDb::new("ldkillsrc") else {
        return;
    };
    let Some(dst) = MyDb::new("ldkill") else {
        return;
    };
    my(
        &src.url,
        "CREATE TABLE big (id int PRIMARY KEY, v varchar(300), b blob);
         INSERT INTO big SELECT seq, REPEAT(CONCAT(seq, CHAR(9), '\\\\N', CHAR(10)), 20), UNHEX(SHA2(seq, 256))
           FROM seq_1_to_150000;",
    );
    let want = fingerprint(&src.url);
    let fx = fixture();
    let bundle = fx.path("b");
    fx.export_to(&src.url, &bundle, &[]);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"))
        .args([
            "--quiet",
            "import",
            bundle.to_str().unwrap(),
            &dst.url,
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .env_remove("FERRY_KEY_FILE")
        .env_remove("FERRY_MYSQL_LOAD_DATA")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let streaming = format!(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{}' AND INFO LIKE 'LOAD DATA LOCAL%'",
        dst.name
    );
    wait_until("the LOAD DATA streams", Duration::from_secs(120), || {
        my(&my_admin_url(), &streaming) != "0"
    });
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
    // Nothing of the killed part is visible, and the ledger has no row for it.
    let rows = my(&dst.url, "SELECT COUNT(*) FROM big");
    let ledger = my(
        &dst.url,
        "SELECT IFNULL(SUM(rows_loaded), 0) FROM _ferry_ledger",
    );
    assert_eq!(
        rows, ledger,
        "rows in the table vs the ledger after the kill"
    );
    let (ok, out, err) = import(&fx, &bundle, &dst.url, &[], &[]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(LOAD_DATA), "{out}");
    assert_eq!(fingerprint(&dst.url), want);
    assert_eq!(
        my(&dst.url, "SELECT SUM(rows_loaded) FROM _ferry_ledger"),
        "150000"
    );
    let (ok, out, _) = import(&fx, &bundle, &dst.url, &[], &[]);
    assert!(ok && out.contains("already imported"), "{out}");
}

/// A LOAD DATA the server refuses before it asks for the rows (here: another session's
/// LOCK TABLES holds the table's metadata lock, and FERRY_LOCK_TIMEOUT ends the wait) ends
/// the part with exit 75: the encoder, blocked on a full channel nobody would read, is
/// released when the statement ends, instead of the import hanging.
#[test]
fn a_load_data_refused_before_the_rows_are_asked_for_ends_with_75_not_a_hang() {
    let Some(src) = MyDb::new("ldrefsrc") else {
        return;
    };
    let Some(dst) = MyDb::new("ldref") else {
        return;
    };
    // About 12 MB of rows in one part: far more than the chunks in flight.
    my(
        &src.url,
        "CREATE TABLE big (id int PRIMARY KEY, v text);
         INSERT INTO big SELECT seq, REPEAT(MD5(seq), 12) FROM seq_1_to_30000;",
    );
    my(&dst.url, "CREATE TABLE big (id int PRIMARY KEY, v text)");
    let fx = fixture();
    let bundle = fx.path("b");
    fx.export_to(&src.url, &bundle, &[]);
    let url = dst.url.clone();
    let holder = std::thread::spawn(move || {
        crate::servers::my_client(&url)
            .args(["-N", "-B", "-e"])
            .arg("LOCK TABLES big READ; SELECT SLEEP(15); UNLOCK TABLES;")
            .output()
            .unwrap()
    });
    let probe = format!(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
         WHERE DB = '{}' AND INFO LIKE 'SELECT SLEEP(15)%'",
        dst.name
    );
    wait_until("the holder has its lock", Duration::from_secs(30), || {
        my(&my_admin_url(), &probe) == "1"
    });
    let t0 = std::time::Instant::now();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"))
        .args([
            "--quiet",
            "import",
            bundle.to_str().unwrap(),
            &dst.url,
            "--mode",
            "append",
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .env("FERRY_LOCK_TIMEOUT", "1")
        .env_remove("FERRY_KEY_FILE")
        .env_remove("FERRY_MYSQL_LOAD_DATA")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(12) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the import hung on a LOAD DATA the server had refused");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(75), "{err}");
    assert!(holder.join().unwrap().status.success());
    assert_eq!(my(&dst.url, "SELECT COUNT(*) FROM big"), "0");
    let (ok, out, err) = import(&fx, &bundle, &dst.url, &["--mode", "append"], &[]);
    assert!(ok, "{out}\n{err}");
    assert_eq!(my(&dst.url, "SELECT COUNT(*) FROM big"), "30000");
}

/// The server's own switch: with `local_infile` off the import takes batched INSERTs and
/// says why. It sets a global variable (restored), which would turn other tests' imports
/// to the INSERT path meanwhile, so it runs on request only:
/// `cargo test --test it -- infile:: --ignored`.
#[test]
#[ignore = "sets the server's global local_infile: run alone with --ignored"]
fn a_server_with_local_infile_off_takes_the_insert_path_and_says_why() {
    let Some(src) = MyDb::new("ldoffsrc") else {
        return;
    };
    let Some(dst) = MyDb::new("ldoff") else {
        return;
    };
    my(&src.url, TRICKY);
    let fx = fixture();
    let bundle = fx.path("b");
    fx.export_to(&src.url, &bundle, &[]);
    struct Restore(String);
    impl Drop for Restore {
        fn drop(&mut self) {
            my(
                &my_admin_url(),
                &format!("SET GLOBAL local_infile = {}", self.0),
            );
        }
    }
    let _restore = Restore(my(&my_admin_url(), "SELECT @@GLOBAL.local_infile"));
    my(&my_admin_url(), "SET GLOBAL local_infile = 0");
    let (ok, out, err) = import(&fx, &bundle, &dst.url, &[], &[]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("load path: batched INSERT: the server has local_infile=OFF"),
        "{out}"
    );
    assert_eq!(fingerprint(&dst.url), fingerprint(&src.url));
}
