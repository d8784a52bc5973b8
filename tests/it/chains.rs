//! Chains of bundles (docs/MIGRATIONS.md): a full bundle and links with inserts, updates,
//! deletes, a new child of a new parent and a table without a cursor, applied in order on
//! every engine (and MariaDB → PostgreSQL); the target equals the source after every link.
//! Out of order (a gap), again (a no-op), a fork and too many deletes are refused with
//! nothing written.

use std::path::{Path, PathBuf};

use crate::common::{Fixture, ferry, fixture};
use crate::servers::{MyDb, PgDb, my, psql};

/// A database of one test: PostgreSQL, MariaDB or a SQLite file.
enum Db {
    Pg(PgDb),
    My(MyDb),
    Lite(PathBuf),
}

impl Db {
    fn url(&self) -> String {
        match self {
            Db::Pg(d) => d.url.clone(),
            Db::My(d) => d.url.clone(),
            Db::Lite(p) => format!("sqlite://{}", p.display()),
        }
    }

    fn exec(&self, sql: &str) {
        match self {
            Db::Pg(d) => {
                psql(&d.url, sql);
            }
            Db::My(d) => {
                my(&d.url, sql);
            }
            Db::Lite(p) => rusqlite::Connection::open(p)
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
        }
    }

    /// Every row of `sql`, columns joined by `|`.
    fn rows(&self, sql: &str) -> Vec<String> {
        let text = match self {
            Db::Pg(d) => psql(&d.url, sql),
            Db::My(d) => my(&d.url, sql).replace('\t', "|"),
            Db::Lite(p) => {
                let c = rusqlite::Connection::open(p).unwrap();
                let mut st = c.prepare(sql).unwrap();
                let n = st.column_count();
                let rows: Vec<String> = st
                    .query_map([], |r| {
                        Ok((0..n)
                            .map(|i| match r.get_ref(i).unwrap() {
                                rusqlite::types::ValueRef::Null => String::new(),
                                rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                                rusqlite::types::ValueRef::Text(t) => {
                                    String::from_utf8_lossy(t).into_owned()
                                }
                                other => format!("{other:?}"),
                            })
                            .collect::<Vec<_>>()
                            .join("|"))
                    })
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                rows.join("\n")
            }
        };
        text.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

fn pg(tag: &str) -> Option<Db> {
    PgDb::new(tag).map(Db::Pg)
}

fn maria(tag: &str) -> Option<Db> {
    MyDb::new(tag).map(Db::My)
}

fn lite(fx: &Fixture, name: &str) -> Db {
    Db::Lite(fx.path(name))
}

const QUERIES: [&str; 3] = [
    "SELECT id, name, updated_at FROM parent ORDER BY id",
    "SELECT id, parent_id, v, updated_at FROM child ORDER BY id",
    "SELECT k, v FROM config ORDER BY k",
];

/// Source and target hold the same rows in every table.
fn assert_same(src: &Db, dst: &Db, after: &str) {
    for q in QUERIES {
        assert_eq!(src.rows(q), dst.rows(q), "after {after}: {q}");
    }
}

/// How many tables the database has.
fn tables_sql(db: &Db) -> &'static str {
    match db {
        Db::Pg(_) => "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
        Db::My(_) => {
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()"
        }
        Db::Lite(_) => "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
    }
}

fn schema(src: &Db) {
    src.exec(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL, updated_at BIGINT NOT NULL);
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent (id),
                             v INTEGER, updated_at BIGINT NOT NULL);
         CREATE TABLE config (k VARCHAR(20) PRIMARY KEY, v VARCHAR(20));",
    );
    let parents: Vec<String> = (1..=100).map(|i| format!("({i}, 'p{i}', 1)")).collect();
    let children: Vec<String> = (1..=200)
        .map(|i| format!("({i}, {}, {i}, 1)", (i - 1) % 100 + 1))
        .collect();
    src.exec(&format!(
        "INSERT INTO parent VALUES {}; INSERT INTO child VALUES {}; \
         INSERT INTO config VALUES ('a', '1'), ('b', '2'), ('c', '3');",
        parents.join(", "),
        children.join(", ")
    ));
}

fn export(fx: &Fixture, src: &Db, name: &str, extra: &[&str]) -> PathBuf {
    let b = fx.path(name);
    fx.export_to(&src.url(), &b, extra);
    b
}

/// `ferry import` with the fixture's key; returns the exit code and stderr.
fn import(fx: &Fixture, b: &Path, dst: &Db, extra: &[&str]) -> (i32, String) {
    let out = ferry()
        .args([
            "import",
            b.to_str().unwrap(),
            &dst.url(),
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn chain_on(fx: &Fixture, src: &Db, dst: &Db) {
    schema(src);
    let b1 = export(
        fx,
        src,
        "b1",
        &[
            "--cursor",
            "parent=updated_at",
            "--cursor",
            "child=updated_at",
        ],
    );
    // Link 1: an update, a new parent with a new child (the child's name sorts first), a
    // delete, and a table without a cursor that changed.
    src.exec(
        "UPDATE parent SET name = 'five', updated_at = 2 WHERE id = 5;
         INSERT INTO parent VALUES (101, 'p101', 2);
         INSERT INTO child VALUES (201, 101, 201, 2);
         UPDATE child SET v = -3, updated_at = 2 WHERE id = 3;
         DELETE FROM child WHERE id = 7;
         UPDATE config SET v = 'two' WHERE k = 'b';",
    );
    let b2 = export(
        fx,
        src,
        "b2",
        &["--since", b1.to_str().unwrap(), "--deletes"],
    );
    let m2 = crate::common::manifest(&b2);
    assert_eq!(m2["sequence"], 2);
    assert_eq!(m2["chain_id"], crate::common::manifest(&b1)["bundle_id"]);

    // Link 2 before the chain's start: refused, nothing written.
    let (code, err) = import(fx, &b2, dst, &[]);
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("link 1") && err.contains("not applied"),
        "{err}"
    );
    assert_eq!(
        dst.rows(tables_sql(dst)),
        vec!["0"],
        "nothing may be written"
    );

    let (code, err) = import(fx, &b1, dst, &[]);
    assert_eq!(code, 0, "{err}");
    // Apply link 1, then compare with the source as it was when b2 was exported.
    let (code, err) = import(fx, &b2, dst, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(src, dst, "link 1");

    // Link 2: more of the same, and a parent deleted together with its children.
    src.exec(
        "INSERT INTO parent VALUES (102, 'p102', 3);
         INSERT INTO child VALUES (202, 102, 202, 3), (203, 101, 203, 3);
         DELETE FROM child WHERE parent_id = 9;
         DELETE FROM parent WHERE id = 9;
         DELETE FROM config WHERE k = 'c';",
    );
    let b3 = export(
        fx,
        src,
        "b3",
        &["--since", b2.to_str().unwrap(), "--deletes"],
    );
    assert_eq!(import(fx, &b3, dst, &[]).0, 0);
    assert_same(src, dst, "link 2");

    // Link 3: nothing but an update.
    src.exec("UPDATE parent SET name = 'one', updated_at = 4 WHERE id = 1;");
    let b4 = export(
        fx,
        src,
        "b4",
        &["--since", b3.to_str().unwrap(), "--deletes"],
    );
    assert_eq!(import(fx, &b4, dst, &[]).0, 0);
    assert_same(src, dst, "link 3");

    // The chain's start again, after link 3: "already imported", nothing changed.
    let (code, err) = import(fx, &b1, dst, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(src, dst, "re-importing the first bundle");

    // A fork: a second link 3 exported from link 2.
    let fork = export(fx, src, "b4x", &["--since", b3.to_str().unwrap()]);
    let (code, err) = import(fx, &fork, dst, &[]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("fork"), "{err}");

    // A link deleting 60% of a table: refused, nothing deleted.
    src.exec("DELETE FROM child WHERE id % 5 IN (1, 2, 3);");
    let before = dst.rows(QUERIES[1]);
    let b5 = export(
        fx,
        src,
        "b5",
        &["--since", b4.to_str().unwrap(), "--deletes"],
    );
    let (code, err) = import(fx, &b5, dst, &[]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("--max-delete-ratio"), "{err}");
    assert_eq!(dst.rows(QUERIES[1]), before, "nothing deleted");
    // Told that it is meant, it goes through.
    assert_eq!(import(fx, &b5, dst, &["--max-delete-ratio", "0.9"]).0, 0);
    assert_same(src, dst, "link 4");
    // `compare` agrees, across engines too (`t` on MariaDB is `public.t` on PostgreSQL).
    let out = ferry()
        .args(["compare", &src.url(), &dst.url()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("all 3 tables are equal"));

    // status names the chain and its five links.
    let out = ferry()
        .args(["status", &dst.url(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let links = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["table"].as_str().unwrap().contains(" link "))
        .count();
    assert_eq!(links, 5, "{v}");
}

#[test]
fn a_chain_applies_in_order_on_sqlite() {
    let fx = fixture();
    let (src, dst) = (lite(&fx, "chain_src.db"), lite(&fx, "chain_dst.db"));
    chain_on(&fx, &src, &dst);
}

#[test]
fn a_chain_applies_in_order_on_postgresql() {
    let fx = fixture();
    let (Some(src), Some(dst)) = (pg("chain_src"), pg("chain_dst")) else {
        return;
    };
    chain_on(&fx, &src, &dst);
}

#[test]
fn a_chain_applies_in_order_on_mariadb() {
    let fx = fixture();
    let (Some(src), Some(dst)) = (maria("chain_src"), maria("chain_dst")) else {
        return;
    };
    chain_on(&fx, &src, &dst);
}

#[test]
fn a_chain_from_mariadb_applies_in_order_on_postgresql() {
    let fx = fixture();
    let (Some(src), Some(dst)) = (maria("chain_msrc"), pg("chain_pdst")) else {
        return;
    };
    chain_on(&fx, &src, &dst);
}

#[test]
fn replace_refuses_a_table_exported_with_where_unless_told() {
    let fx = fixture();
    let b = export(
        &fx,
        &lite(&fx, "src.db"),
        "w",
        &["--where", "items:id <= 10"],
    );
    let dst = lite(&fx, "dst.db");
    let (code, err) = import(&fx, &b, &dst, &["--mode", "replace"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--replace-partial"), "{err}");
    let (code, err) = import(&fx, &b, &dst, &["--mode", "replace", "--replace-partial"]);
    assert_eq!(code, 0, "{err}");
    let src = lite(&fx, "src.db");
    assert_eq!(
        dst.rows("SELECT count(*) FROM items"),
        src.rows("SELECT count(*) FROM items WHERE id <= 10")
    );
}

/// A row whose cursor value is below the first bundle's mark but whose transaction commits
/// after that export's snapshot: the next link misses it without `--lookback` (the
/// documented limit of a cursor) and carries it with a lookback wider than the delay.
#[test]
fn a_late_commit_travels_with_lookback_and_is_missed_without() {
    use std::io::Write;
    let fx = fixture();
    let (Some(src), Some(plain), Some(looked)) = (pg("late_src"), pg("late_a"), pg("late_b"))
    else {
        return;
    };
    src.exec(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT, updated_at TIMESTAMPTZ NOT NULL);
         INSERT INTO events VALUES (1, 'early', '2026-01-01 10:00:00+00');",
    );
    // Another session takes its timestamp at 10:04 and commits only after the export.
    let app = format!("ferry_late_{}", std::process::id());
    let mut late = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &src.url()])
        .env("PGAPPNAME", &app)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("psql runs");
    let mut stdin = late.stdin.take().unwrap();
    writeln!(
        stdin,
        "BEGIN; INSERT INTO events VALUES (2, 'late', '2026-01-01 10:04:00+00');"
    )
    .unwrap();
    stdin.flush().unwrap();
    crate::common::wait_until(
        "the late session holds its open transaction",
        std::time::Duration::from_secs(30),
        || {
            src.rows(&format!(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = '{app}' AND state = 'idle in transaction'"
            )) == vec!["1"]
        },
    );
    src.exec("INSERT INTO events VALUES (3, 'committed', '2026-01-01 10:05:00+00');");
    let b1 = export(&fx, &src, "late1", &["--cursor", "events=updated_at"]);
    writeln!(stdin, "COMMIT;").unwrap();
    drop(stdin);
    assert!(late.wait().unwrap().success());
    src.exec("INSERT INTO events VALUES (4, 'next', '2026-01-01 10:06:00+00');");

    let without = export(&fx, &src, "late2", &["--since", b1.to_str().unwrap()]);
    let with = export(
        &fx,
        &src,
        "late2b",
        &["--since", b1.to_str().unwrap(), "--lookback", "5m"],
    );
    for (b, dst) in [(&without, &plain), (&with, &looked)] {
        assert_eq!(import(&fx, &b1, dst, &[]).0, 0);
        let (code, err) = import(&fx, b, dst, &[]);
        assert_eq!(code, 0, "{err}");
    }
    let ids = "SELECT id FROM events ORDER BY id";
    assert_eq!(
        plain.rows(ids),
        vec!["1", "3", "4"],
        "the late row is missed without --lookback"
    );
    assert_eq!(
        looked.rows(ids),
        vec!["1", "2", "3", "4"],
        "--lookback 5m carries it"
    );
}

/// A link killed inside its upsert (a part sent, not committed), then inside its deletes
/// (keys loaded, rows deleted, not committed), then re-run: the target equals the source.
fn link_killed_inside_upsert_and_deletes(fx: &Fixture, src: &Db, dst: &Db) {
    schema(src);
    let b1 = export(
        fx,
        src,
        "k1",
        &[
            "--cursor",
            "parent=updated_at",
            "--cursor",
            "child=updated_at",
        ],
    );
    assert_eq!(import(fx, &b1, dst, &[]).0, 0);
    src.exec(
        "UPDATE parent SET name = 'changed', updated_at = 2 WHERE id <= 5;
         UPDATE child SET v = 0, updated_at = 2 WHERE id > 190;
         DELETE FROM child WHERE id = 11;
         DELETE FROM child WHERE id = 12;",
    );
    let b2 = export(
        fx,
        src,
        "k2",
        &["--since", b1.to_str().unwrap(), "--deletes"],
    );
    let before: Vec<Vec<String>> = QUERIES.iter().map(|q| dst.rows(q)).collect();
    // A link's upserts run first, then its deletes (children first).
    for point in [("part-sent", 1), ("deletes", 1)] {
        let mut p = crate::kill::paused_at(&b2, &fx.key, &dst.url(), &[], point, 600);
        p.0.kill().unwrap();
        assert!(!p.0.wait().unwrap().success());
        if point.0 == "part-sent" {
            let now: Vec<Vec<String>> = QUERIES.iter().map(|q| dst.rows(q)).collect();
            assert_eq!(now, before, "a part killed before its COMMIT left nothing");
        }
    }
    let (code, err) = import(fx, &b2, dst, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(src, dst, "a link killed twice and resumed");
    let (code, err) = import(fx, &b2, dst, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same(src, dst, "the link again");
}

#[test]
fn a_link_killed_inside_upsert_and_deletes_resumes_exactly_on_sqlite() {
    let fx = fixture();
    let (src, dst) = (lite(&fx, "k_src.db"), lite(&fx, "k_dst.db"));
    link_killed_inside_upsert_and_deletes(&fx, &src, &dst);
}

#[test]
fn a_link_killed_inside_upsert_and_deletes_resumes_exactly_on_postgresql() {
    let fx = fixture();
    let (Some(src), Some(dst)) = (pg("kchain_src"), pg("kchain_dst")) else {
        return;
    };
    link_killed_inside_upsert_and_deletes(&fx, &src, &dst);
}

#[test]
fn a_link_killed_inside_upsert_and_deletes_resumes_exactly_on_mariadb() {
    let fx = fixture();
    let (Some(src), Some(dst)) = (maria("kchain_src"), maria("kchain_dst")) else {
        return;
    };
    link_killed_inside_upsert_and_deletes(&fx, &src, &dst);
}

/// A link's table without a cursor, referenced with ON DELETE CASCADE: the link upserts it
/// and deletes only what the source deleted, so the rows that reference it stay (a replace
/// would delete every row and cascade into them).
#[test]
fn a_whole_table_referenced_with_cascade_keeps_its_children() {
    let fx = fixture();
    let (Some(src), Some(dst)) = (pg("casc_src"), pg("casc_dst")) else {
        return;
    };
    src.exec(
        "CREATE TABLE category (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE product (id INTEGER PRIMARY KEY, cat INTEGER REFERENCES category ON DELETE CASCADE,
                               name TEXT, u BIGINT NOT NULL);
         INSERT INTO category VALUES (1, 'a'), (2, 'b'), (3, 'gone');
         INSERT INTO product SELECT g, 1 + g % 2, 'p' || g, g FROM generate_series(1, 100) g;",
    );
    let b1 = export(&fx, &src, "c1", &["--cursor", "product=u"]);
    assert_eq!(import(&fx, &b1, &dst, &[]).0, 0);
    src.exec("UPDATE product SET u = 200, name = 'changed' WHERE id = 1; UPDATE category SET name = 'A' WHERE id = 1; DELETE FROM category WHERE id = 3;");
    let b2 = export(&fx, &src, "c2", &["--since", b1.to_str().unwrap()]);
    let (code, err) = import(&fx, &b2, &dst, &[]);
    assert_eq!(code, 0, "{err}");
    for q in [
        "SELECT id, cat, name, u FROM product ORDER BY id",
        "SELECT id, name FROM category ORDER BY id",
    ] {
        assert_eq!(src.rows(q), dst.rows(q), "{q}");
    }
    assert_eq!(dst.rows("SELECT count(*) FROM product"), vec!["100"]);
}

/// One chain with a timestamp cursor and an integer cursor takes one lookback of each kind;
/// a text cursor that is not a date or timestamp is refused.
#[test]
fn lookbacks_of_both_kinds_apply_to_their_cursors_and_a_non_date_text_cursor_is_refused() {
    let fx = fixture();
    let src = lite(&fx, "lb_src.db");
    src.exec(
        "CREATE TABLE ev (id INTEGER PRIMARY KEY, body TEXT);
         CREATE TABLE doc (id INTEGER PRIMARY KEY, at TEXT NOT NULL, label TEXT NOT NULL);
         INSERT INTO ev VALUES (1, 'a'), (2, 'b'), (3, 'c');
         INSERT INTO doc VALUES (1, '2026-01-01 10:00:00', 'x'), (2, '2026-01-01 11:00:00', 'y');",
    );
    let b1 = export(
        &fx,
        &src,
        "lb1",
        &["--cursor", "ev=id", "--cursor", "doc=at"],
    );
    let b2 = export(
        &fx,
        &src,
        "lb2",
        &[
            "--since",
            b1.to_str().unwrap(),
            "--lookback",
            "90m",
            "--lookback",
            "1",
        ],
    );
    let catalog = ferry()
        .args([
            "inspect",
            b2.to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&catalog.stdout).unwrap();
    let since = |t: &str| {
        v["catalog"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["table"]["name"] == t)
            .unwrap()["cursor"]["since"]
            .clone()
    };
    assert_eq!(since("ev"), "2", "the count steps the integer mark back");
    assert_eq!(
        since("doc"),
        "2026-01-01 09:30:00",
        "the duration steps the timestamp back"
    );

    let bad = ferry()
        .args([
            "export",
            &src.url(),
            fx.path("lb_bad").to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
            "--cursor",
            "doc=label",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ISO-8601"));
}

/// A link must go where the chain's first bundle went: without the first import's
/// `--rename`, its cursor table is missing and nothing is written.
#[test]
fn a_link_without_the_first_imports_rename_is_refused() {
    let fx = fixture();
    let src = lite(&fx, "rn_src.db");
    src.exec(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, u INTEGER NOT NULL);
         INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 1);",
    );
    let dst = lite(&fx, "rn_dst.db");
    let b1 = export(&fx, &src, "rn1", &["--cursor", "t=u"]);
    assert_eq!(import(&fx, &b1, &dst, &["--rename", "t=orders"]).0, 0);
    src.exec("UPDATE t SET v = 'B', u = 2 WHERE id = 2;");
    let b2 = export(&fx, &src, "rn2", &["--since", b1.to_str().unwrap()]);
    let (code, err) = import(&fx, &b2, &dst, &[]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("--rename"), "{err}");
    assert_eq!(
        dst.rows(tables_sql(&dst)),
        vec!["2"],
        "orders and the ledger only"
    );
    let (code, err) = import(&fx, &b2, &dst, &["--rename", "t=orders"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        dst.rows("SELECT id, v FROM orders ORDER BY id"),
        vec!["1|a", "2|B"]
    );
}

/// A PostgreSQL database has one ledger: the same bundle imported into a second schema is
/// "already imported"; `--separate-copy` loads a deliberate second copy with a ledger of its
/// own in that schema.
#[test]
fn one_ledger_per_database_and_a_separate_copy_only_when_asked() {
    let fx = fixture();
    let Some(dst) = pg("one_ledger") else {
        return;
    };
    let b = fx.export("once");
    let count = |schema: &str| dst.rows(&format!("SELECT count(*) FROM {schema}.items"));
    assert_eq!(import(&fx, &b, &dst, &["--target-schema", "s1"]).0, 0);
    let (code, err) = import(&fx, &b, &dst, &["--target-schema", "s2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        dst.rows("SELECT count(*) FROM information_schema.tables WHERE table_schema = 's2'"),
        vec!["0"],
        "already imported into this database: nothing loaded into s2"
    );
    let (code, err) = import(&fx, &b, &dst, &["--target-schema", "s2", "--separate-copy"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count("s1"), count("s2"));
    assert_eq!(
        dst.rows("SELECT count(DISTINCT bundle_id) FROM public._ferry_ledger"),
        vec!["1"]
    );
    assert_eq!(
        dst.rows("SELECT count(DISTINCT bundle_id) FROM s2._ferry_ledger"),
        vec!["1"]
    );
    // Without --target-schema a separate copy has nowhere to go.
    let (code, _) = import(&fx, &b, &dst, &["--separate-copy"]);
    assert_eq!(code, 2);
    // s2 holds a copy's ledger: loading there under the database's ledger is refused.
    let other = fx.export("other");
    let (code, err) = import(
        &fx,
        &other,
        &dst,
        &["--target-schema", "s2", "--mode", "append"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--separate-copy"), "{err}");
}

/// A row that moved to another parent, whose old parent the source then deleted: the link
/// upserts first and deletes last (children before parents), so a foreign key without
/// CASCADE holds throughout.
#[test]
fn a_reparented_child_and_its_deleted_parent_apply_under_a_strict_foreign_key() {
    let fx = fixture();
    let (Some(src), Some(dst)) = (pg("reparent_src"), pg("reparent_dst")) else {
        return;
    };
    src.exec(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, u BIGINT NOT NULL);
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent (id), u BIGINT NOT NULL);
         INSERT INTO parent VALUES (1, 1), (2, 1);
         INSERT INTO child SELECT g, 1 + g % 2, 1 FROM generate_series(1, 40) g;",
    );
    let b1 = export(
        &fx,
        &src,
        "rp1",
        &["--cursor", "parent=u", "--cursor", "child=u"],
    );
    assert_eq!(import(&fx, &b1, &dst, &[]).0, 0);
    src.exec("UPDATE child SET parent_id = 1, u = 2 WHERE parent_id = 2; DELETE FROM parent WHERE id = 2;");
    let b2 = export(
        &fx,
        &src,
        "rp2",
        &["--since", b1.to_str().unwrap(), "--deletes"],
    );
    let (code, err) = import(&fx, &b2, &dst, &["--max-delete-ratio", "0.6"]);
    assert_eq!(code, 0, "{err}");
    for q in [
        "SELECT id FROM parent ORDER BY id",
        "SELECT id, parent_id FROM child ORDER BY id",
    ] {
        assert_eq!(src.rows(q), dst.rows(q), "{q}");
    }
}

/// On MariaDB an upsert whose row collides on another unique key with a different row
/// fails (exit 65) instead of overwriting that row.
#[test]
fn a_mariadb_upsert_never_overwrites_another_row_through_a_unique_key() {
    let fx = fixture();
    let (Some(src), Some(dst)) = (maria("uq_src"), maria("uq_dst")) else {
        return;
    };
    src.exec(
        "CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(20) NOT NULL UNIQUE, note VARCHAR(20), ts BIGINT NOT NULL);
         INSERT INTO users VALUES (1, 'a', 'one', 1), (2, 'b', 'two', 1);",
    );
    let b1 = export(&fx, &src, "uq1", &["--cursor", "users=ts"]);
    assert_eq!(import(&fx, &b1, &dst, &[]).0, 0);
    src.exec("DELETE FROM users WHERE id = 2; INSERT INTO users VALUES (3, 'b', 'three', 2);");
    let b2 = export(&fx, &src, "uq2", &["--since", b1.to_str().unwrap()]);
    let (code, err) = import(&fx, &b2, &dst, &[]);
    assert_eq!(code, 65, "{err}");
    assert_eq!(
        dst.rows("SELECT id, email, note FROM users ORDER BY id"),
        vec!["1|a|one", "2|b|two"],
        "row 2 untouched"
    );
}

/// A MariaDB BOOLEAN default (stored as 1) becomes `true` on PostgreSQL.
#[test]
fn a_mariadb_boolean_default_travels_to_postgresql_as_a_boolean() {
    let fx = fixture();
    let (Some(src), Some(dst)) = (maria("bool_src"), pg("bool_dst")) else {
        return;
    };
    src.exec(
        "CREATE TABLE b (id INT PRIMARY KEY, flag BOOLEAN NOT NULL DEFAULT 1, n INT DEFAULT 7, s VARCHAR(5) DEFAULT 'x');
         INSERT INTO b (id) VALUES (1);",
    );
    let b = export(&fx, &src, "bool", &[]);
    let (code, err) = import(&fx, &b, &dst, &[]);
    assert_eq!(code, 0, "{err}");
    dst.exec("INSERT INTO b (id) VALUES (2);");
    assert_eq!(
        dst.rows("SELECT id, flag, n, s FROM b ORDER BY id"),
        vec!["1|t|7|x", "2|t|7|x"]
    );
}

/// A link with `--deletes` reports its key sets on their tables' lines (parts and bytes,
/// and the key count in the status), never as rows moved: the totals count only rows, and
/// the logical size D is reported for the link as for any export.
#[test]
fn a_links_key_sets_are_not_counted_as_rows() {
    let fx = crate::common::fixture();
    let b1 = fx.path("b1");
    fx.export_to(&fx.src_url(), &b1, &["--cursor", "items=id"]);
    let c = rusqlite::Connection::open(&fx.src).unwrap();
    c.execute_batch("INSERT INTO items (id, name) VALUES (100000, 'new');")
        .unwrap();
    let keys: u64 = c
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    let b2 = fx.path("b2");
    let out = crate::common::ferry()
        .args(["export", &fx.src_url(), b2.to_str().unwrap()])
        .args(["--key-file", fx.key.to_str().unwrap()])
        .args(["--since", b1.to_str().unwrap(), "--deletes", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tables = r["tables"].as_array().unwrap();
    assert!(
        tables
            .iter()
            .all(|t| !t["table"].as_str().unwrap().contains("key set")),
        "{r}"
    );
    let items = tables.iter().find(|t| t["table"] == "items").unwrap();
    // The rows at or above the predecessor's mark: its last row and the new one.
    assert_eq!(items["rows"], 2, "{r}");
    assert_eq!(items["parts"], 2, "{r}");
    assert_eq!(
        items["status"],
        format!("exported, with its primary-key set ({keys} keys)"),
        "{r}"
    );
    let rows: u64 = tables.iter().map(|t| t["rows"].as_u64().unwrap()).sum();
    assert_eq!(r["totals"]["rows"], rows, "{r}");
    assert!(
        r["totals"]["logical_bytes"].as_u64().is_some_and(|b| b > 0),
        "{r}"
    );
    // Bytes still add up to the parts in the manifest.
    let m = crate::common::manifest(&b2);
    let listed: u64 = m["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["path"].as_str().unwrap().starts_with("data/"))
        .map(|p| p["size"].as_u64().unwrap())
        .sum();
    let reported: u64 = tables.iter().map(|t| t["bytes"].as_u64().unwrap()).sum();
    assert_eq!(reported, listed, "{r}");
}
