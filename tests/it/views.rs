//! `--table` naming a view (PostgreSQL, MariaDB, SQLite): its rows travel as a table of
//! that name, marked `from_view` in the catalog, and load as a plain table; views are never
//! exported unless named; what needs a primary key says that a view has none.

use crate::common::{ferry, fixture, user_tables};
use crate::servers::{MyDb, PgDb, my, psql};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = ferry().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The same checks on every engine: `src` holds table `t` (id, name, active; 50 rows, 34
/// active) and views `v` (the active rows, with an expression column) and `w`.
fn views_travel_as_tables(src: &str, v: &str, w: &str, t: &str) {
    let fx = fixture();
    let key = fx.key.to_str().unwrap();
    // Default selection: tables only.
    let all = fx.path("all");
    let (code, out, err) = run(&[
        "export",
        src,
        all.to_str().unwrap(),
        "--key-file",
        key,
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = r["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["table"].as_str().unwrap())
        .collect();
    assert_eq!(names, [t], "{r}");
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("views are not carried") && warnings.contains(v),
        "{r}"
    );

    // Named: it travels; the other view is still listed as not carried.
    let b = fx.path("b");
    let (code, out, err) = run(&[
        "export",
        src,
        b.to_str().unwrap(),
        "--key-file",
        key,
        "--table",
        t,
        "--table",
        v,
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows: Vec<(String, u64)> = r["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["table"].as_str().unwrap().to_string(),
                x["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [(t.to_string(), 50), (v.to_string(), 34)], "{r}");
    let not_carried: Vec<String> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .filter(|w| w.contains("views are not carried"))
        .collect();
    assert_eq!(not_carried.len(), 1, "{r}");
    let listed: Vec<&str> = not_carried[0]
        .split_once(": ")
        .map(|(_, l)| l.split(", ").collect())
        .unwrap_or_default();
    assert!(listed.contains(&w) && !listed.contains(&v), "{r}");
    let (code, out, err) = run(&["inspect", b.to_str().unwrap(), "--key-file", key, "--json"]);
    assert_eq!(code, 0, "{err}");
    let i: serde_json::Value = serde_json::from_str(&out).unwrap();
    let from_view: Vec<(String, bool)> = i["catalog"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let d = &x["table"];
            (
                d["name"].as_str().unwrap().to_string(),
                d["from_view"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let base = |q: &str| q.rsplit_once('.').map_or(q, |(_, b)| b).to_string();
    assert_eq!(from_view, [(base(t), false), (base(v), true)], "{i}");
    let (_, text, _) = run(&["inspect", b.to_str().unwrap(), "--key-file", key]);
    assert!(text.contains("(read from a view)"), "{text}");

    // Imported as a plain table with the view's rows.
    let db = fx.path("copy.db");
    let url = format!("sqlite://{}", db.display());
    fx.import_to(&b, &url, &[]);
    let tables = user_tables(&db);
    assert!(tables.contains(&base(v)), "{tables:?}");
    let c = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = c
        .query_row(&format!("SELECT count(*) FROM \"{}\"", base(v)), [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 34);
    let loud: String = c
        .query_row(
            &format!("SELECT loud FROM \"{}\" WHERE id = 1", base(v)),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(loud, "NAME 1");
    // compare: the source's view is not compared unless named, and the report says how.
    let (code, out, err) = run(&["compare", src, &url, "--json"]);
    assert_ne!(code, 0, "{out}{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        r["warnings"]
            .to_string()
            .contains(&format!("add --table {} to compare it", base(v))),
        "{r}"
    );
    let (bt, bv) = (base(t), base(v));
    let mut args = vec!["compare", src, &url, "--table", &bt, "--table", &bv];
    if let Some((schema, _)) = t.split_once('.') {
        args.extend(["--schema-a", schema]);
    }
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{out}{err}");

    // What needs a primary key says the view has none.
    let (code, _, err) = run(&[
        "export",
        src,
        fx.path("chain").to_str().unwrap(),
        "--key-file",
        key,
        "--table",
        v,
        "--cursor",
        &format!("{v}=id"),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is a view") && err.contains("primary key"),
        "{err}"
    );
    let (code, _, err) = run(&[
        "import",
        b.to_str().unwrap(),
        &format!("sqlite://{}", fx.path("upsert.db").display()),
        "--key-file",
        key,
        "--mode",
        "upsert",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exported from a view"), "{err}");
}

#[test]
fn a_sqlite_view_named_with_table_travels_as_a_table() {
    let fx = fixture();
    let src = fx.path("views.db");
    let c = rusqlite::Connection::open(&src).unwrap();
    c.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, active BOOLEAN NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
         INSERT INTO t SELECT i, 'name ' || i, i % 3 <> 0 FROM n;
         CREATE VIEW v AS SELECT id, upper(name) AS loud, id * 1.5 AS score, NULL AS empty
             FROM t WHERE active;
         CREATE VIEW w AS SELECT id FROM t;
         CREATE VIEW mixed AS SELECT CASE WHEN id % 2 = 0 THEN id ELSE 'odd' END AS m FROM t;",
    )
    .unwrap();
    let url = format!("sqlite://{}", src.display());
    // 50 rows, of which i % 3 <> 0: 34.
    views_travel_as_tables(&url, "v", "w", "t");
    // An expression column with values of several kinds has no type to travel as.
    let (code, _, err) = run(&[
        "export",
        &url,
        fx.path("mixed").to_str().unwrap(),
        "--key-file",
        fx.key.to_str().unwrap(),
        "--table",
        "mixed",
    ]);
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("view mixed, column \"m\"") && err.contains("CAST"),
        "{err}"
    );
}

#[test]
fn a_postgres_view_named_with_table_travels_as_a_table() {
    let Some(db) = PgDb::new("views") else { return };
    psql(
        &db.url,
        "CREATE TABLE t (id integer PRIMARY KEY, name text NOT NULL, active boolean NOT NULL);
         INSERT INTO t SELECT i, 'name ' || i, i % 3 <> 0 FROM generate_series(1, 50) i;
         CREATE VIEW v AS SELECT id, upper(name) AS loud, id * 1.5 AS score FROM t WHERE active;
         CREATE VIEW w AS SELECT id FROM t;",
    );
    views_travel_as_tables(&db.url, "public.v", "public.w", "public.t");
}

#[test]
fn a_mariadb_view_named_with_table_travels_as_a_table() {
    let Some(db) = MyDb::new("views") else { return };
    my(
        &db.url,
        "CREATE TABLE t (id int PRIMARY KEY, name varchar(20) NOT NULL, active boolean NOT NULL);
         INSERT INTO t SELECT seq, CONCAT('name ', seq), seq % 3 <> 0 FROM seq_1_to_50;
         CREATE VIEW v AS SELECT id, upper(name) AS loud, id * 1.5 AS score FROM t WHERE active;
         CREATE VIEW w AS SELECT id FROM t;",
    );
    views_travel_as_tables(&db.url, "v", "w", "t");
}
