//! No SQL text from a bundle runs on the target (issue #13, "SQL from the catalog"): a
//! source database's expressions and a key holder's forged catalog are parsed and rebuilt,
//! and what holds anything but literals, columns, operators, casts and allowed functions is
//! not replayed and is named. Also `--where` is one expression.

use std::path::Path;

use ferry::bundle::{FileEntry, Manifest};
use ferry::crypto::cobblestone::{decrypt_all, encrypt_to_vec};
use ferry::crypto::envelope::{DataKey, file_context};
use ferry::crypto::keys::{KeyFileKey, Keys};
use sha2::{Digest, Sha256};

use crate::common::{ferry, fixture};
use crate::servers::{PgDb, psql};

/// Large objects and tables a replayed function could have made on the target.
fn side_effects(url: &str) -> String {
    psql(
        url,
        "SELECT (SELECT count(*) FROM pg_largeobject_metadata) || ' ' || \
                (SELECT count(*) FROM pg_class WHERE relname = 'pwned')",
    )
}

/// A key holder's edit of the encrypted catalog: decrypt it, change the JSON, encrypt it
/// again under the bundle's file key and context, and reseal the manifest (hashes, MAC).
pub(crate) fn forge_catalog(
    bundle: &Path,
    key_file: &Path,
    edit: impl FnOnce(&mut serde_json::Value),
) {
    let mut m: Manifest =
        serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
    let (k, _) = KeyFileKey::load(key_file).unwrap();
    let keys = Keys {
        key_files: vec![k],
        passphrases: vec![],
        ..Keys::default()
    };
    let dk = DataKey::unwrap(&m.bundle_id, &m.encryption.key_slots, &keys).unwrap();
    let fk = dk.file_key(&m.bundle_id);
    let ctx = file_context(&m.bundle_id, "catalog", &m.catalog.path);
    let path = bundle.join(&m.catalog.path);
    let plain = decrypt_all(&fk, &ctx, &std::fs::read(&path).unwrap()).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    edit(&mut v);
    let ct = encrypt_to_vec(&fk, &ctx, &serde_json::to_vec(&v).unwrap()).unwrap();
    std::fs::write(&path, ct).unwrap();
    let fix = |f: &mut FileEntry| {
        let b = std::fs::read(bundle.join(&f.path)).unwrap();
        f.size = u64::try_from(b.len()).unwrap();
        f.sha256 = hex::encode(Sha256::digest(&b));
    };
    fix(&mut m.catalog);
    let sums: String = std::iter::once(&m.catalog)
        .chain(&m.parts)
        .map(|f| {
            let b = std::fs::read(bundle.join(&f.path)).unwrap();
            format!("{}  {}\n", hex::encode(Sha256::digest(&b)), f.path)
        })
        .collect();
    std::fs::write(bundle.join("SHA256SUMS"), sums).unwrap();
    let json = m.to_json();
    std::fs::write(bundle.join("manifest.json"), &json).unwrap();
    let mac = dk.manifest_mac(&m.bundle_id, &json);
    std::fs::write(bundle.join("manifest.mac"), format!("{mac}\n")).unwrap();
}

/// The first table of a catalog whose name is `name`.
pub(crate) fn table<'a>(v: &'a mut serde_json::Value, name: &str) -> &'a mut serde_json::Value {
    v["tables"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|t| t["table"]["name"] == name)
        .unwrap()
}

#[test]
fn a_domain_check_calling_a_function_is_not_replayed_and_is_named() {
    let Some(src) = PgDb::new("sqlt_dom") else {
        return;
    };
    let Some(dst) = PgDb::new("sqlt_domd") else {
        return;
    };
    psql(
        &src.url,
        "CREATE DOMAIN evil AS integer CHECK (VALUE > 0 AND lo_from_bytea(0, '\\x41'::bytea) > 0);
         CREATE DOMAIN fine AS text DEFAULT 'x' CHECK (VALUE ~ '^[a-z]+$') CHECK (length(VALUE) < 10);
         CREATE DOMAIN pos AS integer CHECK (VALUE > 0);
         CREATE TABLE t (id int PRIMARY KEY, e evil, f fine, p pos);
         INSERT INTO t VALUES (1, 5, 'abc', 3);",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let before = side_effects(&dst.url);
    let out = fx.import_to(&b, &dst.url, &[]);
    assert!(
        out.contains("not carried: a CHECK on domain public.evil: it calls lo_from_bytea"),
        "{out}"
    );
    assert_eq!(
        side_effects(&dst.url),
        before,
        "a function ran on the target"
    );
    // The ordinary ones came back exactly; the hostile one without its CHECK.
    let checks = |url: &str| {
        psql(
            url,
            "SELECT string_agg(t.typname || ' ' || pg_get_constraintdef(c.oid), '; ' ORDER BY t.typname, c.conname) \
             FROM pg_constraint c JOIN pg_type t ON t.oid = c.contypid WHERE t.typname IN ('fine', 'pos', 'evil')",
        )
    };
    let z = checks(&dst.url);
    assert!(!z.contains("lo_from_bytea"), "{z}");
    assert_eq!(
        z,
        checks(&src.url)
            .split("; ")
            .filter(|c| !c.starts_with("evil"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    assert_eq!(
        psql(&dst.url, "SELECT e || ' ' || f || ' ' || p FROM t"),
        "5 abc 3"
    );
}

#[test]
fn a_forged_catalog_runs_no_function_on_the_target() {
    let Some(src) = PgDb::new("sqlt_forge") else {
        return;
    };
    psql(
        &src.url,
        "CREATE DOMAIN d AS integer CHECK (VALUE > 0);
         CREATE TABLE parts_t (a int, b text) PARTITION BY LIST (a);
         CREATE TABLE parts_1 PARTITION OF parts_t FOR VALUES IN (1);
         CREATE TABLE plain_t (id int, v d);
         INSERT INTO parts_t VALUES (1, 'x'); INSERT INTO plain_t VALUES (1, 2);",
    );
    let fx = fixture();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let attacks: Vec<(&str, Edit, &str)> = vec![
        (
            "bound",
            Box::new(|v| {
                table(v, "parts_t")["table"]["partitioning"]["partitions"][0]["bound"] =
                    "FOR VALUES IN (lo_export(lo_from_bytea(0, '\\x41'), '/tmp/ferry_pwned') + 1)"
                        .into();
            }),
            "the bound of partition",
        ),
        (
            "key",
            Box::new(|v| {
                table(v, "parts_t")["table"]["partitioning"]["key"] =
                    "LIST ((lo_from_bytea(0, '\\x41'::bytea)::int))".into();
            }),
            "its partition key",
        ),
        (
            "type",
            Box::new(|v| {
                table(v, "plain_t")["table"]["columns"][0]["source_type"] =
                    "integer CHECK (lo_create(0) IS NOT NULL)".into();
            }),
            "is not a type on the target",
        ),
        (
            "domain",
            Box::new(|v| {
                let t = table(v, "plain_t");
                t["table"]["user_types"][0]["checks"][0] =
                    "CHECK (VALUE > 0 AND lo_create(0) > 0); CREATE TABLE pwned (x int)".into();
                t["table"]["columns"][1]["domain_type"]["checks"][0] =
                    "CHECK (VALUE > 0 AND lo_create(0) > 0); CREATE TABLE pwned (x int)".into();
            }),
            "",
        ),
    ];
    for (what, edit, said) in attacks {
        let Some(dst) = PgDb::new("sqlt_forged") else {
            return;
        };
        let b = fx.path(&format!("b_{what}"));
        fx.export_to(&src.url, &b, &[]);
        forge_catalog(&b, &fx.key, edit);
        let before = side_effects(&dst.url);
        let out = ferry()
            .args(["import", b.to_str().unwrap(), &dst.url, "--key-file"])
            .arg(&fx.key)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(said), "{what}: {text}");
        assert_eq!(
            side_effects(&dst.url),
            before,
            "{what}: a function ran: {text}"
        );
        assert!(
            !Path::new("/tmp/ferry_pwned").exists(),
            "{what}: a file was written"
        );
        if what == "domain" {
            // Not replayed, named, and the rest loads.
            assert!(out.status.success(), "{text}");
            assert!(
                text.contains("not carried: a CHECK on domain public.d"),
                "{text}"
            );
        } else {
            assert_eq!(out.status.code(), Some(65), "{what}: {text}");
        }
    }
}

#[test]
fn a_where_that_would_end_the_query_is_refused_and_the_source_is_unchanged() {
    let Some(src) = PgDb::new("sqlt_where") else {
        return;
    };
    psql(
        &src.url,
        "CREATE TABLE victim (a int); INSERT INTO victim VALUES (1), (2);",
    );
    let fx = fixture();
    let b = fx.path("b");
    let out = ferry()
        .args(["export", &src.url, b.to_str().unwrap(), "--key-file"])
        .arg(&fx.key)
        .args([
            "--where",
            "victim:true)) TO STDOUT (FORMAT binary); COMMIT; CREATE TABLE pwned (x int); --",
        ])
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("--where victim"), "{err}");
    assert_eq!(side_effects(&src.url), "0 0");
    assert!(!b.join("manifest.json").exists());
    // An ordinary predicate still filters.
    fx.export_to(&src.url, &b, &["--where", "victim:a > 1"]);
    let Some(dst) = PgDb::new("sqlt_whered") else {
        return;
    };
    fx.import_to(&b, &dst.url, &[]);
    assert_eq!(
        psql(&dst.url, "SELECT string_agg(a::text, ',') FROM victim"),
        "2"
    );
}

/// sqlparser prints a `'` that follows a backslash undoubled: a literal whose value is
/// `\')) CHECK (…) --` would close the string on the server and add a clause. A hostile
/// source's domain CHECK and an operator's `--where` holding one are refused, not sent.
#[test]
fn a_literal_the_printer_would_break_out_of_is_not_replayed() {
    let Some(src) = PgDb::new("sqlt_esc") else {
        return;
    };
    let Some(dst) = PgDb::new("sqlt_escd") else {
        return;
    };
    psql(
        &src.url,
        "CREATE DOMAIN d2 AS text CONSTRAINT c1 CHECK (VALUE <> $x$\\')) CHECK (pg_catalog.lo_from_bytea(0, $$pwned$$::bytea) > 0) --$x$);
         CREATE DOMAIN fine AS text CHECK (VALUE ~ '^\\d+$') CHECK (VALUE <> 'it''s');
         CREATE TABLE t (id int PRIMARY KEY, x d2, y fine);
         INSERT INTO t VALUES (1, 'a', '1'), (2, 'b', '22'), (3, 'c', '333');",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let before = side_effects(&dst.url);
    let out = fx.import_to(&b, &dst.url, &[]);
    assert!(
        out.contains("not carried: a CHECK on domain public.d2")
            && out.contains("does not print back"),
        "{out}"
    );
    assert_eq!(
        side_effects(&dst.url),
        before,
        "a function ran on the target"
    );
    let defs = psql(
        &dst.url,
        "SELECT string_agg(t.typname || ' ' || pg_get_constraintdef(c.oid), '; ' ORDER BY t.typname, c.conname) \
         FROM pg_constraint c JOIN pg_type t ON t.oid = c.contypid WHERE t.typname IN ('d2', 'fine')",
    );
    assert!(
        !defs.contains("lo_from_bytea") && !defs.starts_with("d2"),
        "{defs}"
    );
    assert!(
        defs.contains("'^\\d+$'") && defs.contains("'it''s'"),
        "{defs}"
    );
    assert_eq!(psql(&dst.url, "SELECT count(*) FROM t"), "3");

    // The same literal in `--where` ends neither the COPY nor the read-only transaction.
    let b2 = fx.path("b2");
    let out = ferry()
        .args(["export", &src.url, b2.to_str().unwrap(), "--key-file"])
        .arg(&fx.key)
        .args([
            "--where",
            "t:x <> '\\'')) TO STDOUT; COMMIT; CREATE TABLE public.pwned(); --'",
        ])
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("--where t"), "{err}");
    assert_eq!(side_effects(&src.url), "0 0");
    assert!(!b2.join("manifest.json").exists());
}
