//! The PostgreSQL export's COPY lane (src/engines/postgres/lane.rs): a table copied on the
//! lane holds exactly what the reader's own connection reads, over TLS when the URL asks for
//! it; a URL asking for what only sqlx does (here `sslmode=verify-ca`) is read without it.

use std::path::Path;

use crate::common::{ferry, fixture};
use crate::servers::{PgDb, psql};

const TABLES: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE t (id bigint PRIMARY KEY, s text, n numeric(12,2), f float8, ts timestamptz,
  d date, u uuid, j jsonb, b bytea, m mood, iv interval, arr int[]);
INSERT INTO t SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'row ' || g END, g / 3.0, g * 1.5,
  timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', date '2020-01-01' + g % 1000,
  md5(g::text)::uuid, jsonb_build_object('k', g, 'x', 'y'), decode(md5(g::text), 'hex'),
  (ARRAY['sad','ok','happy']::mood[])[1 + g % 3], g * interval '1 second', ARRAY[g, g + 1]
  FROM generate_series(1, 30000) g;
CREATE TABLE nan (id int PRIMARY KEY, v numeric(10,2));
INSERT INTO nan VALUES (1, 1.5), (2, 'NaN'), (3, NULL);
"#;

/// Exports `url` into `bundle` with `env`, debug logging on; returns stderr.
fn export(url: &str, bundle: &Path, key: &Path, env: &[(&str, &str)]) -> String {
    let mut c = ferry();
    c.args([
        "export",
        url,
        bundle.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--streams",
        "2",
    ])
    .env("FERRY_LOG", "ferry::engines::postgres=debug")
    .env_remove("FERRY_PG_COPY_LANE");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

/// Each table's rows and content fingerprint, as `inspect --json` reports them.
fn tables(bundle: &Path, key: &Path) -> Vec<String> {
    let out = ferry()
        .args(["inspect", bundle.to_str().unwrap(), "--key-file"])
        .arg(key)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut found = Vec::new();
    fn walk(v: &serde_json::Value, found: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(o) => {
                if let (Some(f), Some(r)) = (o.get("fingerprint"), o.get("rows")) {
                    let name = o.get("name").or_else(|| o.get("table"));
                    found.push(format!("{name:?} {r} {f}"));
                }
                o.values().for_each(|x| walk(x, found));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, found)),
            _ => {}
        }
    }
    walk(&v, &mut found);
    found.sort();
    found
}

#[test]
fn the_copy_lane_reads_exactly_what_the_readers_own_connection_reads() {
    let Some(db) = PgDb::new("lane") else {
        return;
    };
    psql(&db.url, TABLES);
    let fx = fixture();
    let (on, off) = (fx.path("on"), fx.path("off"));
    let err = export(&db.url, &on, &fx.key, &[]);
    assert!(err.contains("COPY lane open"), "{err}");
    // The numeric(10,2) holding NaN is read again as text: on the lane too.
    let err = export(&db.url, &off, &fx.key, &[("FERRY_PG_COPY_LANE", "off")]);
    assert!(
        err.contains("COPY lane not used: FERRY_PG_COPY_LANE=off"),
        "{err}"
    );
    assert!(!err.contains("COPY lane open"), "{err}");
    let (a, b) = (tables(&on, &fx.key), tables(&off, &fx.key));
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(a.iter().any(|t| t.contains(" 30000 ")), "{a:?}");
    assert_eq!(a, b);
    // And the bundle loads back to the source's rows.
    let Some(dst) = PgDb::new("lane_dst") else {
        return;
    };
    fx.import_to(&on, &dst.url, &[]);
    for q in [
        "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM t",
        "SELECT string_agg(id || ':' || coalesce(v::text, '-'), ',' ORDER BY id) FROM nan",
    ] {
        let want = psql(&db.url, q);
        let got = psql(&dst.url, &q.replace("v::text", "v::numeric::text"));
        assert_eq!(got, want, "{q}");
    }
}

#[test]
fn the_copy_lane_talks_tls_when_the_url_requires_it_and_stays_away_from_verify_modes() {
    let Some(db) = PgDb::new("lane_tls") else {
        return;
    };
    if psql(&db.url, "SHOW ssl") != "on" {
        eprintln!("SKIPPED: PostgreSQL has ssl off");
        return;
    }
    psql(&db.url, TABLES);
    let fx = fixture();
    let err = export(
        &format!("{}?sslmode=require", db.url),
        &fx.path("tls"),
        &fx.key,
        &[],
    );
    assert!(err.contains("COPY lane open (TLS)"), "{err}");
    let err = export(
        &format!("{}?sslmode=disable", db.url),
        &fx.path("plain"),
        &fx.key,
        &[],
    );
    assert!(err.contains("COPY lane open (no TLS)"), "{err}");
    assert_eq!(
        tables(&fx.path("tls"), &fx.key),
        tables(&fx.path("plain"), &fx.key)
    );
    // verify-ca needs the server's root; with the URL's (Debian's snakeoil) the export runs,
    // without the lane.
    let snakeoil = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    if psql(&db.url, "SHOW ssl_cert_file") == snakeoil && Path::new(snakeoil).is_file() {
        let err = export(
            &format!("{}?sslmode=verify-ca&sslrootcert={snakeoil}", db.url),
            &fx.path("ca"),
            &fx.key,
            &[],
        );
        assert!(
            err.contains("COPY lane not used: the URL sets sslrootcert"),
            "{err}"
        );
        assert_eq!(
            tables(&fx.path("ca"), &fx.key),
            tables(&fx.path("plain"), &fx.key)
        );
    } else {
        eprintln!("SKIPPED (verify-ca half): not the snakeoil setup");
    }
}

#[test]
fn an_export_under_a_queued_alter_table_waits_its_turn_and_reads_the_same_rows() {
    use std::io::Write;
    use std::process::{Command as Proc, Stdio};
    use std::time::Duration;
    let Some(db) = PgDb::new("lane_lock") else {
        return;
    };
    psql(&db.url, TABLES);
    // A session holds t, and an ALTER TABLE waits behind it: a new ACCESS SHARE request
    // now queues behind the ALTER. The export waits its turn (its catalog reads queue too,
    // so where it waits depends on timing: a refused NOWAIT sends t to the reader's own
    // connection), never for ever, and reads what an export without the lane reads.
    let session = |sql: &str| {
        let mut p = Proc::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.url])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        p.stdin.as_mut().unwrap().write_all(sql.as_bytes()).unwrap();
        p
    };
    let mut holder =
        session("BEGIN; LOCK TABLE t IN ACCESS SHARE MODE; SELECT pg_sleep(3); COMMIT;\n");
    crate::common::wait_until("the holder has t", Duration::from_secs(10), || {
        psql(
            &db.url,
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 't' AND l.granted",
        ) != "0"
    });
    let mut alter =
        session("ALTER TABLE t ADD COLUMN extra int; ALTER TABLE t DROP COLUMN extra;\n");
    crate::common::wait_until("the ALTER waits", Duration::from_secs(10), || {
        psql(
            &db.url,
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND mode = 'AccessExclusiveLock'",
        ) != "0"
    });
    let fx = fixture();
    let err = export(&db.url, &fx.path("queued"), &fx.key, &[]);
    assert!(err.contains("COPY lane open"), "{err}");

    holder.stdin.take();
    alter.stdin.take();
    assert!(holder.wait().unwrap().success());
    assert!(alter.wait().unwrap().success());
    let off = fx.path("off");
    export(&db.url, &off, &fx.key, &[("FERRY_PG_COPY_LANE", "off")]);
    assert_eq!(tables(&fx.path("queued"), &fx.key), tables(&off, &fx.key));
}
