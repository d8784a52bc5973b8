//! Job files (`--config FILE`, README "Job files"): examples/migration.toml run stage by
//! stage, as its header says, against real servers; and the usage errors a file can cause.

use std::path::Path;

use crate::common::{ferry, fixture};
use crate::servers::{MyDb, PgDb, my, psql};

const EXAMPLE: &str = include_str!("../../examples/migration.toml");

/// `ferry ARGS…` run in `dir` (where the example's commands are typed); returns (exit
/// code, stdout, stderr).
fn run_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = ferry().current_dir(dir).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = run_in(dir, args);
    assert_eq!(code, 0, "ferry {args:?}:\n{out}\n{err}");
    out
}

/// The example's commands, in its header's order.
fn example_commands() -> Vec<Vec<String>> {
    EXAMPLE
        .lines()
        .filter_map(|l| l.trim_start_matches('#').trim().strip_prefix("ferry "))
        .map(|c| c.split_whitespace().map(String::from).collect())
        .collect()
}

#[test]
fn the_example_job_file_is_valid_toml_with_a_table_per_stage() {
    let doc: toml::Table = EXAMPLE.parse().unwrap();
    assert!(doc["export"]["start"]["cursor"].is_array());
    assert!(doc["export"]["link"]["deletes"].as_bool().unwrap());
    assert_eq!(
        doc["import"]["rename"][0].as_str(),
        Some("orders=legacy_orders")
    );
    let commands = example_commands();
    assert_eq!(commands.len(), 4, "{commands:?}");
    assert!(commands.iter().all(|c| c.contains(&"--config".to_string())));
}

/// The example migration, MariaDB → PostgreSQL, with the servers' URLs and a key of the
/// test's own put into a copy of the file: the chain's start, its import, changes at the
/// source, the link and its import, each the one short command of the header.
#[test]
fn the_example_migration_runs_stage_by_stage() {
    let (Some(src), Some(dst)) = (MyDb::new("job"), PgDb::new("job")) else {
        return;
    };
    let fx = fixture();
    let dir = fx.path("job");
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::copy(&fx.key, dir.join("keys/shop.key")).unwrap();
    let job = EXAMPLE
        .replace("mysql://ferry@old-db.internal:3306/shop", &src.url)
        .replace("postgres://ferry@new-db.internal:5432/shop", &dst.url);
    std::fs::write(dir.join("migration.toml"), job).unwrap();
    psql(&dst.url, "CREATE SCHEMA legacy");
    my(
        &src.url,
        "CREATE TABLE customers (id int PRIMARY KEY, name varchar(40) NOT NULL, deleted_at datetime NULL);
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, total decimal(10,2) NOT NULL,
             updated_at datetime(6) NOT NULL);
         CREATE TABLE order_lines (id int PRIMARY KEY, order_id int NOT NULL, product varchar(40) NOT NULL,
             qty int NOT NULL);
         CREATE TABLE products (id int PRIMARY KEY, name varchar(40) NOT NULL, active boolean NOT NULL);
         CREATE VIEW active_products AS SELECT id, name FROM products WHERE active;
         INSERT INTO customers SELECT seq, CONCAT('customer ', seq), IF(seq % 10 = 0, '2024-01-01', NULL)
             FROM seq_1_to_100;
         INSERT INTO orders SELECT seq, 1 + seq % 100, seq * 1.25, TIMESTAMP '2024-03-01 10:00:00' + INTERVAL seq MINUTE
             FROM seq_1_to_300;
         INSERT INTO order_lines SELECT seq, 1 + seq % 300, CONCAT('product ', seq % 20), 1 + seq % 4
             FROM seq_1_to_600;
         INSERT INTO products SELECT seq, CONCAT('product ', seq), seq % 3 <> 0 FROM seq_1_to_20;",
    );
    let commands = example_commands();
    let args = |i: usize| -> Vec<&str> { commands[i].iter().map(String::as_str).collect() };
    std::fs::create_dir_all(dir.join("bundles")).unwrap();

    // Stage 1: the chain's start, then its import.
    ok(&dir, &args(0));
    let count = |sql: &str| psql(&dst.url, sql).trim().parse::<i64>().unwrap();
    ok(&dir, &args(1));
    assert_eq!(count("SELECT count(*) FROM legacy.customers"), 90);
    assert_eq!(count("SELECT count(*) FROM legacy.legacy_orders"), 300);
    assert_eq!(count("SELECT count(*) FROM legacy.order_lines"), 600);
    assert_eq!(count("SELECT count(*) FROM legacy.active_products"), 14);

    // Changes at the source, then stage 2: the link and its import.
    my(
        &src.url,
        "UPDATE orders SET total = 999.99, updated_at = TIMESTAMP '2024-04-01 00:00:00' WHERE id = 7;
         INSERT INTO orders VALUES (301, 1, 5.00, TIMESTAMP '2024-04-01 00:00:01');
         INSERT INTO order_lines VALUES (601, 301, 'product 1', 1);
         DELETE FROM order_lines WHERE id = 5;
         UPDATE products SET active = TRUE WHERE id = 3;",
    );
    ok(&dir, &args(2));
    let manifest = crate::common::manifest(&dir.join("bundles/0002"));
    assert_eq!(manifest["sequence"], 2, "{manifest}");
    ok(&dir, &args(3));
    assert_eq!(count("SELECT count(*) FROM legacy.legacy_orders"), 301);
    assert_eq!(
        psql(
            &dst.url,
            "SELECT total FROM legacy.legacy_orders WHERE id = 7"
        ),
        "999.99"
    );
    assert_eq!(count("SELECT count(*) FROM legacy.order_lines"), 600);
    assert_eq!(
        count("SELECT count(*) FROM legacy.order_lines WHERE id = 5"),
        0
    );
    assert_eq!(count("SELECT count(*) FROM legacy.active_products"), 15);
    // The job's shared key-file was resolved against the file's directory, not the
    // current one: the bundles open with the test's key.
    let (code, _, err) = run_in(
        fx.dir.path(),
        &[
            "verify",
            dir.join("bundles/0002").to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
}

/// An unknown key is a usage error naming the key, the file and the valid keys; so is a
/// stage the file does not have. A command-line option replaces the file's.
#[test]
fn a_job_file_is_checked_and_the_command_line_wins() {
    let fx = fixture();
    let job = fx.path("job.toml");
    std::fs::write(
        &job,
        format!(
            "key-file = {:?}\n[export]\nsource = {:?}\ntabel = [\"items\"]\n",
            fx.key.display().to_string(),
            fx.src_url()
        ),
    )
    .unwrap();
    let b = fx.path("b");
    let (code, _, err) = run_in(
        fx.dir.path(),
        &[
            "export",
            "--config",
            job.to_str().unwrap(),
            b.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2, "{err}");
    for word in [
        "\"tabel\"",
        "[export]",
        "job.toml",
        "table",
        "exclude",
        "where",
        "cursor",
    ] {
        assert!(err.contains(word), "{word}: {err}");
    }
    assert!(!b.exists());

    std::fs::write(
        &job,
        format!(
            "key-file = {:?}\n[export]\nsource = {:?}\ntable = [\"items\"]\n",
            fx.key.display().to_string(),
            fx.src_url()
        ),
    )
    .unwrap();
    let (code, _, err) = run_in(
        fx.dir.path(),
        &[
            "export",
            "--config",
            job.to_str().unwrap(),
            "--stage",
            "link",
            b.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no stage of that name"), "{err}");

    // From the file: items only.
    let out = ok(
        fx.dir.path(),
        &[
            "export",
            "--config",
            job.to_str().unwrap(),
            b.to_str().unwrap(),
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tables: Vec<&str> = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(tables, ["items"]);
    // The command line's --table replaces the file's list.
    let b2 = fx.path("b2");
    let out = ok(
        fx.dir.path(),
        &[
            "export",
            "--config",
            job.to_str().unwrap(),
            "--table",
            "notes",
            b2.to_str().unwrap(),
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tables"][0]["table"], "notes", "{v}");
    assert_eq!(v["tables"].as_array().unwrap().len(), 1, "{v}");
}

#[test]
fn a_bad_value_from_a_job_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "[export]\nbatch-rows = -1\n").unwrap();
    let (code, out, err) = run_in(
        dir.path(),
        &["export", "sqlite://nothing.db", "b", "--config", "bad.toml"],
    );
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("--batch-rows"), "{err}");
    assert!(err.contains("bad.toml (--config)"), "{err}");
}

#[test]
fn a_job_file_that_is_not_toml_is_named_without_repeating_its_line() {
    let fx = fixture();
    let job = fx.path("bad.toml");
    std::fs::write(&job, "target = postgres://u:s3cretpw@h/db\n").unwrap();
    let (code, out, err) = run_in(
        fx.dir.path(),
        &["import", "--config", job.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.toml") && err.contains("line 1"), "{err}");
    assert!(
        !err.contains("s3cretpw") && !out.contains("s3cretpw"),
        "{err}{out}"
    );
}

/// `--config FILE` for `plan` and `compare` (README: every command takes one).
#[test]
fn a_job_file_drives_plan_and_compare() {
    let fx = fixture();
    let b = fx.export("b");
    let job = fx.path("job.toml");
    std::fs::write(
        &job,
        format!(
            "key-file = {:?}\n[plan]\nsource = {:?}\ntable = [\"items\"]\nexact = true\n\
             [compare]\na = {:?}\nb = {:?}\ntable = [\"notes\"]\n",
            fx.key.display().to_string(),
            fx.src_url(),
            b.display().to_string(),
            fx.src_url(),
        ),
    )
    .unwrap();
    let out = ferry()
        .args(["--json", "plan", "--config", job.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tables = v["plan"]["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 1, "{v}");
    assert_eq!(tables[0]["table"], "items");
    assert_eq!(
        tables[0]["rows_are"], "counted",
        "exact = true from the file: {v}"
    );

    let out = ferry()
        .args(["--json", "compare", "--config", job.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tables"].as_array().unwrap().len(), 1, "{v}");
    // The command line wins: --table items replaces the file's list.
    let out = ferry()
        .args([
            "--json",
            "compare",
            "--config",
            job.to_str().unwrap(),
            "--table",
            "items",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tables"][0]["table"], "items", "{v}");
}
