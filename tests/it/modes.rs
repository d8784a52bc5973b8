//! Import modes beyond create/append on every engine: upsert by primary key (and its
//! refusal of keyless tables before any write), replace through a staging table published
//! atomically (what readers in another connection see meanwhile), and the SQLite run lock.

use std::process::Command as Proc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use crate::common::{ferry, fixture, user_tables, wait_until};
use crate::kill::{
    Db, OLD_BIG, OLD_MID, assert_exact, import_noop, import_ok, import_paused_at, source,
};
use crate::servers::{Engine, PgDb, psql};
use predicates::prelude::PredicateBooleanExt;

/// Upsert: rows of the bundle whose key exists replace the target's, new keys are added,
/// other target rows stay; a table the target lacks is created with its key, and a second
/// bundle upserts over it. Exact counts and values on every side.
fn upsert(engine: Engine) {
    let fx = fixture();
    let src = fx.path("up-src.db");
    let c = Connection::open(&src).unwrap();
    c.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
         CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100)
           INSERT INTO t SELECT x, 'new ' || x FROM n;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20)
           INSERT INTO u SELECT x, 'u1 ' || x FROM n;",
    )
    .unwrap();
    let src_url = format!("sqlite://{}", src.display());
    let b1 = fx.path("up1");
    fx.export_to(&src_url, &b1, &["--source-id", "up", "--sequence", "1"]);
    let Some(db) = Db::new(engine, &fx, "upsert") else {
        return;
    };
    let (int, text) = match engine {
        Engine::Sqlite => ("INTEGER", "TEXT"),
        Engine::Postgres => ("bigint", "text"),
        Engine::Mysql => ("bigint", "varchar(100)"),
    };
    db.sql(&format!(
        "CREATE TABLE t (id {int} NOT NULL PRIMARY KEY, v {text} NOT NULL)"
    ));
    let old: Vec<String> = (51..=150).map(|i| format!("({i}, 'old {i}')")).collect();
    db.sql(&format!("INSERT INTO t VALUES {}", old.join(", ")));

    let out = fx.import_to(&b1, &db.url, &["--mode", "upsert"]);
    assert!(!out.contains("nothing to do"), "{out}");
    let counts = "SELECT count(*), count(DISTINCT id), \
                  sum(CASE WHEN v LIKE 'new %' THEN 1 ELSE 0 END), \
                  sum(CASE WHEN v LIKE 'old %' THEN 1 ELSE 0 END) FROM t";
    // 1..=100 from the bundle (51..=100 updated), 101..=150 untouched.
    assert_eq!(db.sql(counts), "150|150|100|50", "{}", db.url);
    assert_eq!(
        db.sql("SELECT v FROM t WHERE id IN (10, 75, 120) ORDER BY id"),
        "new 10\nnew 75\nold 120"
    );
    assert_eq!(
        db.sql("SELECT count(*), min(v), max(v) FROM u"),
        "20|u1 1|u1 9"
    );
    assert_eq!(db.ledger().1, 2, "one ledger row per part");
    import_noop_with(&fx, &b1, &db, "upsert");

    // A second bundle updates u's rows 11..=20 and adds 21..=30.
    c.execute_batch(
        "DELETE FROM u WHERE id <= 10;
         UPDATE u SET v = 'u2 ' || id;
         WITH RECURSIVE n(x) AS (SELECT 21 UNION ALL SELECT x + 1 FROM n WHERE x < 30)
           INSERT INTO u SELECT x, 'u2 ' || x FROM n;",
    )
    .unwrap();
    let b2 = fx.path("up2");
    fx.export_to(
        &src_url,
        &b2,
        &["--source-id", "up", "--sequence", "2", "--table", "u"],
    );
    fx.import_to(&b2, &db.url, &["--mode", "upsert"]);
    assert_eq!(
        db.sql(
            "SELECT count(*), sum(CASE WHEN v LIKE 'u1 %' THEN 1 ELSE 0 END), \
             sum(CASE WHEN v LIKE 'u2 %' THEN 1 ELSE 0 END) FROM u"
        ),
        "30|10|20",
        "{}",
        db.url
    );
    assert_eq!(db.sql(counts), "150|150|100|50");
}

fn import_noop_with(fx: &crate::common::Fixture, b: &std::path::Path, db: &Db, mode: &str) {
    let out = fx.import_to(b, &db.url, &["--mode", mode]);
    assert!(
        out.contains("already imported") && out.contains("nothing to do"),
        "{out}"
    );
}

#[test]
fn sqlite_upsert_updates_existing_keys_and_inserts_new_ones() {
    upsert(Engine::Sqlite);
}

#[test]
fn postgres_upsert_updates_existing_keys_and_inserts_new_ones() {
    upsert(Engine::Postgres);
}

#[test]
fn mariadb_upsert_updates_existing_keys_and_inserts_new_ones() {
    upsert(Engine::Mysql);
}

/// The fixture's `notes` has no primary key: upsert refuses it by name before writing.
#[test]
fn upsert_of_a_table_without_primary_key_is_refused_before_any_write() {
    let fx = fixture();
    let b = fx.export("b");
    let dst = fx.path("dst.db");
    let url = format!("sqlite://{}", dst.display());
    ferry()
        .args(["import", b.to_str().unwrap(), &url, "--mode", "upsert"])
        .args(["--key-file", fx.key.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(
            predicates::str::contains("notes")
                .and(predicates::str::contains("primary key"))
                .and(predicates::str::contains("nothing was written")),
        );
    assert_eq!(user_tables(&dst), Vec::<String>::new());
    // A target table whose key differs from the bundle's is refused too, before any write.
    Connection::open(&dst)
        .unwrap()
        .execute_batch(
            "CREATE TABLE items (id INTEGER, name TEXT, price DECIMAL(10,2), payload BLOB)",
        )
        .unwrap();
    ferry()
        .args(["import", b.to_str().unwrap(), &url, "--mode", "upsert"])
        .args(["--exclude", "notes", "--key-file", fx.key.to_str().unwrap()])
        .assert()
        .code(65)
        .stderr(
            predicates::str::contains("items (bundle key (id), target key ())")
                .and(predicates::str::contains("nothing was written")),
        );
    assert_eq!(user_tables(&dst), vec!["items".to_string()]);
    let Some(pg) = PgDb::new("upnopk") else {
        return;
    };
    ferry()
        .args(["import", b.to_str().unwrap(), &pg.url, "--mode", "upsert"])
        .args(["--key-file", fx.key.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("notes"));
    assert_eq!(
        psql(
            &pg.url,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );
    // Leaving the keyless table out, the rest upserts.
    fx.import_to(&b, &pg.url, &["--mode", "upsert", "--exclude", "notes"]);
    assert_eq!(psql(&pg.url, "SELECT count(*) FROM items"), "3000");
}

/// `count(*)|sum(id)` of big and mid, as one reader in its own connection sees them.
fn observe(db: &Db) -> Option<String> {
    let sql = "SELECT (SELECT count(*) FROM big) || '/' || (SELECT coalesce(sum(id), 0) FROM big) \
               || ' ' || (SELECT count(*) FROM mid) || '/' || (SELECT coalesce(sum(id), 0) FROM mid)";
    match db.engine {
        Engine::Sqlite => {
            let c = Connection::open(db.url.trim_start_matches("sqlite://")).ok()?;
            c.busy_timeout(Duration::from_secs(30)).ok()?;
            c.query_row(sql, [], |r| r.get::<_, String>(0)).ok()
        }
        Engine::Postgres => {
            let out = Proc::new("psql")
                .args(["-X", "-q", "-A", "-t", "-d", &db.url, "-c", sql])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
        Engine::Mysql => {
            let my = "SELECT CONCAT((SELECT count(*) FROM big), '/', (SELECT coalesce(sum(id), 0) FROM big), ' ', \
                 (SELECT count(*) FROM mid), '/', (SELECT coalesce(sum(id), 0) FROM mid))";
            Some(crate::servers::my(&db.url, my))
        }
    }
}

fn tri(n: i64) -> i64 {
    n * (n + 1) / 2
}

/// Replace while a reader polls from another connection: every observation is the old rows
/// or the new rows of each table, never a mix or an empty table; the publish is held open
/// for two seconds (the pause hook) so the reader watches it. Before that, an import
/// killed inside the publish leaves the old rows, and another mode refuses to touch the
/// unfinished replace.
fn replace_visibility(engine: Engine) {
    let s = source();
    let Some(db) = Db::new(engine, &s.fx, "replvis") else {
        return;
    };
    db.create_tables_with_old_rows();
    let old_big = format!("{OLD_BIG}/{}", tri(OLD_BIG));
    let old_mid = format!("{OLD_MID}/{}", tri(OLD_MID));
    let new_big = format!("{}/{}", s.big.0, s.big.2);
    let new_mid = format!("{}/{}", s.mid.0, s.mid.2);
    let old = format!("{old_big} {old_mid}");
    assert_eq!(observe(&db).as_deref(), Some(old.as_str()));

    // Paused inside the first publish: a reader sees the old rows (PostgreSQL: it waits on
    // the lock, so it is asked not to wait).
    {
        let paused = import_paused_at(&s, &db, "replace", "publish", 1, 600);
        if engine == Engine::Postgres {
            let out = Proc::new("psql")
                .args(["-X", "-q", "-A", "-t", "-d", &db.url])
                .args(["-c", "SET lock_timeout = '300ms'"])
                .args(["-c", "SELECT count(*) FROM big"])
                .args(["-c", "SELECT count(*) FROM mid"])
                .output()
                .unwrap();
            let got = String::from_utf8_lossy(&out.stdout);
            let err = String::from_utf8_lossy(&out.stderr);
            // One of the tables is locked by the publish; the other still shows old rows.
            assert!(err.contains("lock timeout"), "{got} {err}");
            assert!(
                got.lines()
                    .all(|l| l == OLD_BIG.to_string() || l == OLD_MID.to_string()),
                "{got}"
            );
        } else {
            assert_eq!(observe(&db).as_deref(), Some(old.as_str()));
        }
        drop(paused);
    }
    assert_eq!(observe(&db).as_deref(), Some(old.as_str()));
    assert!(!db.staging_tables().is_empty());
    ferry()
        .args([
            "import",
            s.bundle.to_str().unwrap(),
            &db.url,
            "--mode",
            "append",
        ])
        .args(["--key-file", s.fx.key.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("unfinished --mode replace"));

    // The resumed replace, slowed down inside each publish, watched by a reader.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let (stop, seen, url, engine) = (stop.clone(), seen.clone(), db.url.clone(), db.engine);
        std::thread::spawn(move || {
            let view = Db::view(engine, &url);
            while !stop.load(Ordering::Relaxed) {
                if let Some(o) = observe(&view) {
                    seen.lock().unwrap().push(o);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let out = ferry()
        .args([
            "import",
            s.bundle.to_str().unwrap(),
            &db.url,
            "--mode",
            "replace",
        ])
        .args(["--key-file", s.fx.key.to_str().unwrap()])
        .env("FERRY_PAUSE_AT", "publish:1")
        .env("FERRY_PAUSE_SECS", "2")
        .assert()
        .success();
    let out = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(out.contains("imported"), "{out}");
    let new = format!("{new_big} {new_mid}");
    wait_until(
        "the reader has seen the new rows",
        Duration::from_secs(30),
        || seen.lock().unwrap().last() == Some(&new),
    );
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let allowed = [
        old.clone(),
        format!("{new_big} {old_mid}"),
        format!("{old_big} {new_mid}"),
        format!("{new_big} {new_mid}"),
    ];
    assert!(seen.len() >= 5, "{seen:?}");
    for o in &seen {
        assert!(
            allowed.contains(o),
            "a reader saw {o:?}; allowed {allowed:?}"
        );
    }
    assert_eq!(seen.first(), Some(&old), "{seen:?}");
    assert_eq!(seen.last(), Some(&format!("{new_big} {new_mid}")));
    assert_exact(&s, &db);
    import_noop(&s, &db, "replace");
}

#[test]
fn postgres_replace_readers_see_old_rows_until_the_publish_commits() {
    replace_visibility(Engine::Postgres);
}

#[test]
fn sqlite_replace_readers_see_old_rows_until_the_publish_commits() {
    replace_visibility(Engine::Sqlite);
}

#[test]
fn mariadb_replace_readers_see_old_rows_until_the_publish_commits() {
    replace_visibility(Engine::Mysql);
}

/// Two imports into one SQLite database: the second gets 75 naming the first (its pid);
/// after the first is killed, the second completes exactly.
#[test]
fn two_concurrent_imports_into_one_sqlite_database_the_second_gets_75() {
    let s = source();
    let db = Db::new(Engine::Sqlite, &s.fx, "lock").unwrap();
    let first = import_paused_at(&s, &db, "create", "part-sent", 1, 600);
    let pid = first.0.id();
    ferry()
        .args(["import", s.bundle.to_str().unwrap(), &db.url])
        .args(["--key-file", s.fx.key.to_str().unwrap()])
        .assert()
        .code(75)
        .stderr(
            predicates::str::contains("another import")
                .and(predicates::str::contains(format!("pid {pid} ")))
                .and(predicates::str::contains("nothing was written")),
        );
    drop(first);
    import_ok(&s, &db, "create");
    assert_exact(&s, &db);
}

/// Replace of a table whose bundle holds no rows empties the target table (RELIABILITY D38);
/// another bundle's staging table is left alone and named in a warning.
#[test]
fn replace_with_an_empty_table_empties_the_target_and_leaves_foreign_staging_alone() {
    let fx = fixture();
    let src = fx.path("e.db");
    Connection::open(&src)
        .unwrap()
        .execute_batch("CREATE TABLE e (id INTEGER PRIMARY KEY, v TEXT);")
        .unwrap();
    let b = fx.path("b");
    fx.export_to(&format!("sqlite://{}", src.display()), &b, &[]);
    let dst = fx.path("dst.db");
    Connection::open(&dst)
        .unwrap()
        .execute_batch(
            "CREATE TABLE e (id INTEGER PRIMARY KEY, v TEXT);
             INSERT INTO e VALUES (1, 'a'), (2, 'b'), (3, 'c');
             CREATE TABLE _ferry_0123abcd_89abcdef (x INTEGER);",
        )
        .unwrap();
    let url = format!("sqlite://{}", dst.display());
    let out = fx.import_to(&b, &url, &["--mode", "replace"]);
    assert!(
        out.contains("warning:") && out.contains("_ferry_0123abcd_89abcdef"),
        "{out}"
    );
    let c = Connection::open(&dst).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM e", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    assert!(user_tables(&dst).contains(&"_ferry_0123abcd_89abcdef".to_string()));
    assert_eq!(
        user_tables(&dst)
            .iter()
            .filter(|t| t.starts_with("_ferry_") && *t != "_ferry_ledger")
            .count(),
        1
    );
    let out = fx.import_to(&b, &url, &["--mode", "replace"]);
    assert!(out.contains("already imported"), "{out}");
}

/// A failure part-way says what the target holds: parts committed out of the bundle's, for
/// replace the tables published, and, since the data failed, what to fix (a re-run alone
/// meets the same rows) and that re-running the same command then resumes.
#[test]
fn a_failed_import_states_what_the_target_holds_and_how_to_resume() {
    let s = source();
    // append: part 2 of big collides with a row of the target; part 1 stays committed.
    let db = Db::new(Engine::Sqlite, &s.fx, "state").unwrap();
    db.create_tables();
    db.sql("INSERT INTO big VALUES (1400, x'00')");
    let out = ferry()
        .args([
            "import",
            s.bundle.to_str().unwrap(),
            &db.url,
            "--mode",
            "append",
        ])
        .args(["--key-file", s.fx.key.to_str().unwrap()])
        .assert()
        .code(65);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let committed = db.ledger().1;
    assert!(committed >= 1, "{err}");
    assert!(
        (err.contains("nothing from this part was committed")
            || err.contains("nothing from the failed part was committed"))
            && err.contains(&format!("{committed}/3 parts of this bundle are committed"))
            && err.contains("fix the row at the source")
            && err.contains("--on-error skip")
            && err.contains(
                "once fixed, re-running the same command resumes after the committed parts"
            )
            && !err.contains("re-run the same command to resume"),
        "{err}"
    );

    // replace: the publish of big fails on a CHECK the new rows break; it keeps its old rows.
    let db = Db::new(Engine::Sqlite, &s.fx, "state2").unwrap();
    db.sql(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB CHECK (length(b) < 10)); \
         INSERT INTO big VALUES (1, x'01'), (2, x'02');",
    );
    let out = ferry()
        .args([
            "import",
            s.bundle.to_str().unwrap(),
            &db.url,
            "--mode",
            "replace",
        ])
        .args(["--key-file", s.fx.key.to_str().unwrap()])
        .assert()
        .code(65);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("the publish of big was rolled back")
            && err.contains("tables published")
            && err.contains("fix the data at the source or the target table")
            && err.contains("once fixed, re-running the same command resumes")
            && !err.contains("re-run the same command to resume"),
        "{err}"
    );
    assert_eq!(db.sql("SELECT count(*), sum(id) FROM big"), "2|3");
    assert_eq!(db.staging_tables().len(), 1);
}

/// Pre-flight reports every problem with existing target tables at once, before any write:
/// a bundle column the target table lacks, a NOT NULL target column without a default that
/// the bundle cannot fill; `--dry-run` with the same target prints the plan instead.
#[test]
fn preflight_lists_every_schema_problem_at_once_and_dry_run_prints_the_plan() {
    let fx = fixture();
    let b = fx.export("b");
    let dst = fx.path("dst.db");
    Connection::open(&dst)
        .unwrap()
        .execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, owner TEXT NOT NULL);
             CREATE TABLE notes (id INTEGER, body TEXT, created TEXT NOT NULL DEFAULT 'now');
             INSERT INTO notes VALUES (7, 'kept', 'then');",
        )
        .unwrap();
    let url = format!("sqlite://{}", dst.display());
    let out = ferry()
        .args(["import", b.to_str().unwrap(), &url, "--mode", "append"])
        .arg("--key-file")
        .arg(&fx.key)
        .assert()
        .code(65)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pre-flight found 3 problems"), "{err}");
    assert!(
        err.contains("items: the target table has no column \"price\""),
        "{err}"
    );
    assert!(
        err.contains("items: the target table has no column \"payload\""),
        "{err}"
    );
    assert!(
        err.contains("items: the target's column \"owner\" is NOT NULL without a default"),
        "{err}"
    );
    // notes is compatible: its extra column has a default; nothing of it was reported.
    assert!(!err.contains("notes"), "{err}");
    let c = Connection::open(&dst).unwrap();
    let notes: i64 = c
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(notes, 1, "nothing was written");
    assert_eq!(crate::common::ledger_rows(&dst), 0);
    drop(c);

    // The plan, for the table that fits: replace through staging, nothing written.
    let out = ferry()
        .args(["import", b.to_str().unwrap(), &url, "--mode", "replace"])
        .args(["--table", "notes", "--dry-run", "--key-file"])
        .arg(&fx.key)
        .assert()
        .success()
        .get_output()
        .clone();
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("would replace its rows (staging _ferry_"),
        "{plan}"
    );
    assert!(plan.contains("pre-flight passed"), "{plan}");
    assert_eq!(
        user_tables(&dst),
        vec!["items".to_string(), "notes".to_string()]
    );
    assert_eq!(crate::common::ledger_rows(&dst), 0);
}

/// RELIABILITY E53: two bundles of one source replace the same PostgreSQL table at once.
/// The older one pauses with its parts staged; the newer one publishes meanwhile; when the
/// older one reaches its publish it is refused (exit 65) and the table keeps the newer rows.
#[test]
fn an_older_bundle_never_publishes_over_a_newer_one_that_published_while_it_ran() {
    let Some(dst) = PgDb::new("e53") else {
        return;
    };
    let fx = fixture();
    let src = fx.path("seq.db");
    let c = Connection::open(&src).unwrap();
    c.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         INSERT INTO t VALUES (1, 'old'), (2, 'old');",
    )
    .unwrap();
    let src_url = format!("sqlite://{}", src.display());
    let (b1, b2) = (fx.path("b1"), fx.path("b2"));
    fx.export_to(&src_url, &b1, &["--sequence", "1"]);
    c.execute_batch("UPDATE t SET v = 'new'; INSERT INTO t VALUES (3, 'new');")
        .unwrap();
    drop(c);
    fx.export_to(&src_url, &b2, &["--sequence", "2"]);

    let mut older = Proc::new(assert_cmd::cargo::cargo_bin("ferry"))
        .env("FERRY_PAUSE_AT", "staged:1")
        .env("FERRY_PAUSE_SECS", "3")
        .args(["--quiet", "import", b1.to_str().unwrap(), &dst.url])
        .args(["--mode", "replace", "--key-file"])
        .arg(&fx.key)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(older.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut err, &mut line).unwrap();
        assert!(n > 0, "the older import ended before pausing");
        if line.contains("paused at staged 1") {
            break;
        }
    }
    // The newer bundle publishes while the older one waits with its parts staged.
    fx.import_to(&b2, &dst.url, &["--mode", "replace"]);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let status = older.wait().unwrap();
    assert_eq!(status.code(), Some(65), "{rest}");
    assert!(rest.contains("keeps the newer rows"), "{rest}");
    assert!(rest.contains("--allow-replay"), "{rest}");
    assert_eq!(
        psql(
            &dst.url,
            "SELECT string_agg(id || v, ',' ORDER BY id) FROM t"
        ),
        "1new,2new,3new"
    );
}
