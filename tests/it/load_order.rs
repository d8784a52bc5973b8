//! Parents before children (issue #15): an import loads a table that another table of the
//! import references before it, in every mode and with any `--jobs`, so a pre-created
//! target whose foreign keys hold accepts the rows; `--mode replace` of a referenced table
//! publishes it with its referencing tables in one transaction, or keeps the target's
//! foreign keys when their rows still match the new rows, and refuses (exit 65, nothing
//! changed) when they do not.

use std::path::Path;

use crate::common::{Fixture, ferry, fixture};
use crate::servers::{MyDb, PgDb, my, psql};

/// `a_child` sorts before the table it references, `z_parent`.
const PG_SCHEMA: &str = "CREATE TABLE z_parent (id int PRIMARY KEY, name text NOT NULL);
     CREATE TABLE a_child (id int PRIMARY KEY, parent_id int NOT NULL
         CONSTRAINT a_child_parent_fk REFERENCES z_parent (id), v text);";
const MY_SCHEMA: &str = "CREATE TABLE z_parent (id int PRIMARY KEY, name varchar(20) NOT NULL) ENGINE=InnoDB;
     CREATE TABLE a_child (id int PRIMARY KEY, parent_id int NOT NULL, v varchar(20),
         CONSTRAINT a_child_parent_fk FOREIGN KEY (parent_id) REFERENCES z_parent (id)) ENGINE=InnoDB;";
const ROWS: &str = "INSERT INTO z_parent SELECT i, concat('p', i) FROM generate_series(1, 50) i;
     INSERT INTO a_child SELECT i, i % 50 + 1, concat('c', i) FROM generate_series(1, 120) i;";
/// MariaDB's sequence engine stands in for generate_series.
const MY_ROWS: &str = "INSERT INTO z_parent SELECT seq, concat('p', seq) FROM seq_1_to_50;
     INSERT INTO a_child SELECT seq, seq % 50 + 1, concat('c', seq) FROM seq_1_to_120;";

/// `ferry import … --json`: exit code, the summary's tables in the order they loaded,
/// and stdout + stderr.
fn import(fx: &Fixture, b: &Path, target: &str, extra: &[&str]) -> (i32, Vec<String>, String) {
    let out = ferry()
        .args([
            "import",
            b.to_str().unwrap(),
            target,
            "--json",
            "--key-file",
        ])
        .arg(&fx.key)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let tables = serde_json::from_str::<serde_json::Value>(&stdout)
        .ok()
        .and_then(|v| {
            v["tables"].as_array().map(|a| {
                a.iter()
                    .filter_map(|t| t["table"].as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default();
    (out.status.code().unwrap_or(-1), tables, text)
}

/// The modes whose import into a pre-created target with its foreign keys a test runs,
/// each with what the target holds before (one parent with one child of its own, except
/// for create, which needs empty tables) and the counts after.
const MODES: [(&str, bool, &str); 4] = [
    ("create", false, "50 120"),
    ("append", true, "51 121"),
    ("upsert", true, "51 121"),
    // The bundle's two tables replace both, in one transaction: the old child's parent
    // goes with it.
    ("replace", true, "50 120"),
];

#[test]
fn postgres_loads_parents_before_children_in_every_mode_and_jobs() {
    let Some(src) = PgDb::new("order_src") else {
        return;
    };
    psql(&src.url, &format!("{PG_SCHEMA} {ROWS}"));
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    for (mode, old_rows, want) in MODES {
        for jobs in ["1", "2"] {
            let Some(dst) = PgDb::new("order_dst") else {
                return;
            };
            psql(&dst.url, PG_SCHEMA);
            if old_rows {
                psql(
                    &dst.url,
                    "INSERT INTO z_parent VALUES (1000, 'old'); INSERT INTO a_child VALUES (1000, 1000, 'old');",
                );
            }
            let (code, tables, text) = import(&fx, &b, &dst.url, &["--mode", mode, "--jobs", jobs]);
            assert_eq!(code, 0, "--mode {mode} --jobs {jobs}: {text}");
            assert_eq!(
                tables,
                ["z_parent", "a_child"],
                "--mode {mode} --jobs {jobs}: the parent loads first"
            );
            let counts = psql(
                &dst.url,
                "SELECT (SELECT count(*) FROM z_parent) || ' ' || (SELECT count(*) FROM a_child)",
            );
            assert_eq!(counts, want, "--mode {mode} --jobs {jobs}");
            // The target's key is still there, and holds.
            assert_eq!(
                psql(
                    &dst.url,
                    "SELECT count(*) FROM pg_constraint WHERE conname = 'a_child_parent_fk' AND convalidated"
                ),
                "1",
                "--mode {mode} --jobs {jobs}"
            );
            assert_eq!(
                psql(
                    &dst.url,
                    "SELECT count(*) FROM a_child c WHERE NOT EXISTS (SELECT 1 FROM z_parent p WHERE p.id = c.parent_id)"
                ),
                "0"
            );
        }
    }
}

#[test]
fn mariadb_loads_parents_before_children_in_every_mode_and_jobs() {
    let Some(src) = MyDb::new("order_src") else {
        return;
    };
    my(&src.url, &format!("{MY_SCHEMA} {MY_ROWS}"));
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    for (mode, old_rows, want) in MODES {
        for jobs in ["1", "2"] {
            let Some(dst) = MyDb::new("order_dst") else {
                return;
            };
            my(&dst.url, MY_SCHEMA);
            if old_rows {
                my(
                    &dst.url,
                    "INSERT INTO z_parent VALUES (1000, 'old'); INSERT INTO a_child VALUES (1000, 1000, 'old');",
                );
            }
            let (code, tables, text) = import(&fx, &b, &dst.url, &["--mode", mode, "--jobs", jobs]);
            assert_eq!(code, 0, "--mode {mode} --jobs {jobs}: {text}");
            assert_eq!(
                tables,
                ["z_parent", "a_child"],
                "--mode {mode} --jobs {jobs}: the parent loads first"
            );
            let counts = my(
                &dst.url,
                "SELECT concat((SELECT count(*) FROM z_parent), ' ', (SELECT count(*) FROM a_child))",
            );
            assert_eq!(counts, want, "--mode {mode} --jobs {jobs}");
            assert_eq!(
                my(
                    &dst.url,
                    "SELECT count(*) FROM information_schema.REFERENTIAL_CONSTRAINTS \
                     WHERE CONSTRAINT_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'a_child_parent_fk'"
                ),
                "1"
            );
            assert_eq!(
                my(
                    &dst.url,
                    "SELECT count(*) FROM a_child c WHERE NOT EXISTS (SELECT 1 FROM z_parent p WHERE p.id = c.parent_id)"
                ),
                "0",
                "--mode {mode} --jobs {jobs}: no orphans"
            );
        }
    }
}

#[test]
fn postgres_tables_whose_keys_form_a_cycle_load_and_are_named() {
    let Some(src) = PgDb::new("order_cyc") else {
        return;
    };
    let Some(dst) = PgDb::new("order_cyc_dst") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE a (id int PRIMARY KEY, b_id int);
         CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a (id));
         ALTER TABLE a ADD CONSTRAINT a_b_fk FOREIGN KEY (b_id) REFERENCES b (id);
         INSERT INTO a VALUES (1, NULL), (2, NULL); INSERT INTO b VALUES (1, 1), (2, 2);
         UPDATE a SET b_id = id;",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let (code, _, text) = import(&fx, &b, &dst.url, &["--jobs", "2"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("the foreign keys of a, b form a cycle"),
        "{text}"
    );
    // The keys were added after the rows, and hold.
    assert_eq!(
        psql(
            &dst.url,
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated"
        ),
        "2"
    );
    assert_eq!(
        psql(
            &dst.url,
            "SELECT count(*) FROM a JOIN b ON b.id = a.b_id AND b.a_id = a.id"
        ),
        "2"
    );
}

/// The target's `orders` (not in the bundle) references `z_parent`, ON DELETE CASCADE.
const PG_ORDERS: &str = "CREATE TABLE orders (id int PRIMARY KEY, parent_id int
         CONSTRAINT orders_parent_fk REFERENCES z_parent (id) ON DELETE CASCADE);
     INSERT INTO orders SELECT i, i FROM generate_series(1, 10) i;";
const MY_ORDERS: &str = "CREATE TABLE orders (id int PRIMARY KEY, parent_id int,
         CONSTRAINT orders_parent_fk FOREIGN KEY (parent_id) REFERENCES z_parent (id) ON DELETE CASCADE) ENGINE=InnoDB;
     INSERT INTO orders SELECT seq, seq FROM seq_1_to_10;";

/// Replace of a table another table of the target references, that table not in the
/// bundle: works while the referencing rows find their keys in the new rows (the key, its
/// ON DELETE CASCADE and the referencing rows unchanged); refused with exit 65 naming the
/// tables, the constraint and a key when they do not, nothing changed, and the same again
/// on a re-run.
fn replace_of_a_referenced_table(
    url: &str,
    sql: &dyn Fn(&str, &str) -> String,
    src_url: &str,
    fk_def: &dyn Fn() -> String,
) {
    let fx = fixture();
    let b1 = fx.path("b1");
    fx.export_to(src_url, &b1, &["--table", "z_parent"]);
    let (code, _, text) = import(&fx, &b1, url, &["--mode", "replace"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        sql(
            url,
            "SELECT concat((SELECT count(*) FROM z_parent), ' ', (SELECT count(*) FROM z_parent WHERE name LIKE 'p%'), ' ', (SELECT count(*) FROM orders))"
        ),
        "50 50 10",
        "the new rows are in, and no order was cascaded away"
    );
    let def = fk_def();
    assert!(def.contains("CASCADE"), "the key keeps its action: {def}");

    // An order whose parent the next bundle does not have.
    sql(
        url,
        "INSERT INTO z_parent VALUES (999, 'extra'); INSERT INTO orders VALUES (11, 999);",
    );
    let b2 = fx.path("b2");
    fx.export_to(src_url, &b2, &["--table", "z_parent"]);
    for run in 1..=2 {
        let (code, _, text) = import(&fx, &b2, url, &["--mode", "replace"]);
        assert_eq!(code, 65, "run {run}: {text}");
        for want in [
            "orders_parent_fk",
            "orders",
            "z_parent",
            "999",
            "nothing was changed",
        ] {
            assert!(text.contains(want), "run {run}: {want} missing in {text}");
        }
        assert_eq!(
            sql(
                url,
                "SELECT concat((SELECT count(*) FROM z_parent), ' ', (SELECT count(*) FROM orders))"
            ),
            "51 11",
            "run {run}: nothing changed"
        );
        assert_eq!(fk_def(), def, "run {run}: the key is as it was");
    }
    // Once the order is gone, the same import publishes.
    sql(url, "DELETE FROM orders WHERE id = 11");
    let (code, _, text) = import(&fx, &b2, url, &["--mode", "replace"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        sql(
            url,
            "SELECT concat((SELECT count(*) FROM z_parent), ' ', (SELECT count(*) FROM orders))"
        ),
        "50 10"
    );
}

#[test]
fn postgres_replace_of_a_table_that_others_reference() {
    let Some(src) = PgDb::new("order_ref_src") else {
        return;
    };
    let Some(dst) = PgDb::new("order_ref_dst") else {
        return;
    };
    psql(&src.url, &format!("{PG_SCHEMA} {ROWS}"));
    psql(
        &dst.url,
        &format!(
            "{PG_SCHEMA} INSERT INTO z_parent SELECT i, 'old' FROM generate_series(1, 20) i; {PG_ORDERS}"
        ),
    );
    let url = dst.url.clone();
    replace_of_a_referenced_table(&dst.url, &|u, q| psql(u, q), &src.url, &|| {
        psql(
            &url,
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'orders_parent_fk' AND convalidated",
        )
    });
}

#[test]
fn mariadb_replace_of_a_table_that_others_reference() {
    let Some(src) = MyDb::new("order_ref_src") else {
        return;
    };
    let Some(dst) = MyDb::new("order_ref_dst") else {
        return;
    };
    my(&src.url, &format!("{MY_SCHEMA} {MY_ROWS}"));
    my(
        &dst.url,
        &format!(
            "{MY_SCHEMA} INSERT INTO z_parent SELECT seq, 'old' FROM seq_1_to_20; {MY_ORDERS}"
        ),
    );
    let url = dst.url.clone();
    replace_of_a_referenced_table(&dst.url, &|u, q| my(u, q), &src.url, &|| {
        my(
            &url,
            "SELECT concat(DELETE_RULE, ' ', REFERENCED_TABLE_NAME) FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'orders_parent_fk'",
        )
    });
}

// Source identity (issue #15): the source id comes from the database itself, not from how
// the URL spells its host, so replay protection holds across spellings.

/// `ferry inspect BUNDLE --json` with the fixture's key: source id and how it was derived.
fn source_of(fx: &Fixture, b: &Path) -> (String, String) {
    let out = ferry()
        .args(["inspect", b.to_str().unwrap(), "--json", "--key-file"])
        .arg(&fx.key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["source_id"].as_str().unwrap().to_string(),
        v["source_id_basis"].as_str().unwrap().to_string(),
    )
}

/// `url` with its host replaced.
fn with_host(url: &str, host: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_host(Some(host)).unwrap();
    u.to_string()
}

/// Two spellings of one database give one source id, derived as `kind` says; another
/// database another id; and a bundle exported through one spelling cannot replay an older
/// sequence over one exported through the other.
fn one_source_id_per_database(a_url: &str, other_url: &str, kind: &str, basis: &str) {
    let fx = fixture();
    let via_ip = with_host(a_url, "127.0.0.1");
    let via_name = with_host(a_url, "localhost");
    let (b1, b2, b3) = (fx.path("b1"), fx.path("b2"), fx.path("b3"));
    fx.export_to(&via_ip, &b1, &["--sequence", "2"]);
    fx.export_to(&via_name, &b2, &["--sequence", "1"]);
    fx.export_to(other_url, &b3, &[]);
    let (id1, basis1) = source_of(&fx, &b1);
    let (id2, _) = source_of(&fx, &b2);
    let (id3, _) = source_of(&fx, &b3);
    assert_eq!(id1, id2, "127.0.0.1 and localhost are one source");
    assert_ne!(id1, id3, "two databases are two sources");
    assert!(id1.starts_with(kind), "{id1}");
    assert!(basis1.contains(basis), "{basis1}");
    // Without a key, inspect still says what the id was derived from.
    let out = ferry()
        .args(["inspect", b1.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&id1) && text.contains(basis),
        "{text}"
    );
    // Replay protection holds across spellings: sequence 1 after 2 is refused.
    let dst = fx.path("dst.db");
    let dst = format!("sqlite://{}", dst.display());
    fx.import_to(&b1, &dst, &[]);
    let (code, _, text) = import(&fx, &b2, &dst, &[]);
    assert_eq!(code, 65, "{text}");
    assert!(text.contains("older"), "{text}");
}

#[test]
fn postgres_source_id_comes_from_the_cluster_and_database() {
    let Some(a) = PgDb::new("sid_a") else {
        return;
    };
    let Some(b) = PgDb::new("sid_b") else {
        return;
    };
    for db in [&a, &b] {
        psql(
            &db.url,
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);",
        );
    }
    one_source_id_per_database(&a.url, &b.url, "postgres-sysid-", "system_identifier");
}

#[test]
fn mariadb_source_id_comes_from_the_server_and_schema() {
    let Some(a) = MyDb::new("sid_a") else {
        return;
    };
    let Some(b) = MyDb::new("sid_b") else {
        return;
    };
    for db in [&a, &b] {
        my(
            &db.url,
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);",
        );
    }
    // MariaDB has no @@server_uuid: hostname, datadir, port and server_id (MySQL: uuid).
    let mariadb = my(&a.url, "SELECT @@version").contains("MariaDB");
    let (kind, basis) = if mariadb {
        ("mysql-host-", "datadir")
    } else {
        ("mysql-uuid-", "server_uuid")
    };
    one_source_id_per_database(&a.url, &b.url, kind, basis);
}

#[test]
fn sqlite_source_id_is_the_files_identity_not_its_path() {
    let fx = fixture();
    let link = fx.path("link.db");
    std::os::unix::fs::symlink(&fx.src, &link).unwrap();
    let copy = fx.path("copy.db");
    std::fs::copy(&fx.src, &copy).unwrap();
    let ids: Vec<(String, String)> = [&fx.src, &link, &copy]
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let b = fx.path(&format!("b{i}"));
            fx.export_to(&format!("sqlite://{}", p.display()), &b, &[]);
            source_of(&fx, &b)
        })
        .collect();
    assert_eq!(ids[0].0, ids[1].0, "a symlink names the same file");
    assert_ne!(ids[0].0, ids[2].0, "a copy is another file");
    assert!(ids[0].0.starts_with("sqlite-file-"), "{}", ids[0].0);
    assert!(ids[0].1.contains("inode"), "{}", ids[0].1);
}

/// Runs `ferry import --mode replace` until it pauses in its first publish (inside the
/// transaction, before COMMIT), then kills it (SIGKILL).
fn killed_in_first_publish(fx: &Fixture, b: &Path, url: &str) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"))
        .args(["--quiet", "import", b.to_str().unwrap(), url, "--key-file"])
        .arg(&fx.key)
        .args(["--mode", "replace", "--jobs", "2"])
        .env("FERRY_PAUSE_AT", "publish:1")
        .env_remove("FERRY_KEY_FILE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut paused = false;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line == "ferry: paused at publish 1" {
            paused = true;
            break;
        }
        seen.push(line);
    }
    let _ = child.kill();
    child.wait().unwrap();
    assert!(paused, "the import did not pause at publish 1: {seen:?}");
}

#[test]
fn postgres_group_publish_killed_before_commit_changes_nothing_and_resumes() {
    let Some(src) = PgDb::new("order_kill_src") else {
        return;
    };
    let Some(dst) = PgDb::new("order_kill_dst") else {
        return;
    };
    psql(&src.url, &format!("{PG_SCHEMA} {ROWS}"));
    psql(
        &dst.url,
        &format!(
            "{PG_SCHEMA} INSERT INTO z_parent VALUES (1000, 'old'); INSERT INTO a_child VALUES (1000, 1000, 'old');"
        ),
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let state = || {
        psql(
            &dst.url,
            "SELECT (SELECT count(*) FROM z_parent) || ' ' || (SELECT count(*) FROM a_child) || ' ' || \
             (SELECT count(*) FROM pg_constraint WHERE conname = 'a_child_parent_fk' AND convalidated)",
        )
    };
    killed_in_first_publish(&fx, &b, &dst.url);
    // The group's one transaction died: old rows, and the key it had dropped is there.
    assert_eq!(state(), "1 1 1");
    let (code, tables, text) = import(&fx, &b, &dst.url, &["--mode", "replace"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(tables, ["z_parent", "a_child"]);
    assert_eq!(state(), "50 120 1");
    // Both tables were published by one transaction: no staging table is left.
    assert_eq!(
        psql(
            &dst.url,
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE '\\_ferry\\_%' AND tablename <> '_ferry_ledger'"
        ),
        "0"
    );
}

#[test]
fn sqlite_replace_of_a_table_that_others_reference_checks_their_rows() {
    let fx = fixture();
    let src = fx.path("parents.db");
    let dst = fx.path("dst.db");
    let schema = "CREATE TABLE z_parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
                  CREATE TABLE orders (id INTEGER PRIMARY KEY,
                      parent_id INTEGER REFERENCES z_parent ON DELETE CASCADE);";
    let s = rusqlite::Connection::open(&src).unwrap();
    s.execute_batch(&format!(
        "{schema} WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
         INSERT INTO z_parent SELECT i, 'p' || i FROM n;"
    ))
    .unwrap();
    let d = rusqlite::Connection::open(&dst).unwrap();
    d.execute_batch(&format!(
        "{schema} INSERT INTO z_parent VALUES (1, 'old'), (999, 'extra');
         INSERT INTO orders VALUES (1, 1), (2, 999);"
    ))
    .unwrap();
    let b = fx.path("b");
    fx.export_to(
        &format!("sqlite://{}", src.display()),
        &b,
        &["--table", "z_parent"],
    );
    let dst_url = format!("sqlite://{}", dst.display());
    let (code, _, text) = import(&fx, &b, &dst_url, &["--mode", "replace"]);
    assert_eq!(code, 65, "{text}");
    for want in ["orders", "z_parent", "999", "nothing was changed"] {
        assert!(text.contains(want), "{want} missing in {text}");
    }
    let count = |sql: &str| -> i64 { d.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM z_parent"), 2, "nothing changed");
    d.execute("DELETE FROM orders WHERE id = 2", []).unwrap();
    let (code, _, text) = import(&fx, &b, &dst_url, &["--mode", "replace"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(count("SELECT count(*) FROM z_parent"), 50);
    assert_eq!(
        count("SELECT count(*) FROM orders"),
        1,
        "no order was cascaded away"
    );
}

#[test]
fn sqlite_loads_parents_before_children_in_every_mode() {
    // ferry's SQLite connection enforces foreign keys (the bundled library's default).
    let fx = fixture();
    let src = fx.path("fk.db");
    let schema = "CREATE TABLE z_parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
                  CREATE TABLE a_child (id INTEGER PRIMARY KEY,
                      parent_id INTEGER NOT NULL REFERENCES z_parent, v TEXT);";
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute_batch(&format!(
            "{schema} WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 120)
             INSERT INTO z_parent SELECT i, 'p' || i FROM n WHERE i <= 50;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 120)
             INSERT INTO a_child SELECT i, i % 50 + 1, 'c' || i FROM n;"
        ))
        .unwrap();
    let b = fx.path("b");
    fx.export_to(&format!("sqlite://{}", src.display()), &b, &[]);
    for (mode, old_rows, want) in MODES {
        let dst = fx.path(&format!("dst_{mode}.db"));
        let d = rusqlite::Connection::open(&dst).unwrap();
        d.execute_batch(schema).unwrap();
        if old_rows {
            d.execute_batch(
                "INSERT INTO z_parent VALUES (1000, 'old'); INSERT INTO a_child VALUES (1000, 1000, 'old');",
            )
            .unwrap();
        }
        let (code, tables, text) = import(
            &fx,
            &b,
            &format!("sqlite://{}", dst.display()),
            &["--mode", mode],
        );
        assert_eq!(code, 0, "--mode {mode}: {text}");
        assert_eq!(tables, ["z_parent", "a_child"], "--mode {mode}");
        let counts: String = d
            .query_row(
                "SELECT (SELECT count(*) FROM z_parent) || ' ' || (SELECT count(*) FROM a_child)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(counts, want, "--mode {mode}");
    }
}
