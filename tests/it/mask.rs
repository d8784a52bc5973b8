//! `export --mask TABLE.COLUMN=RULE`: masked values never reach a part (decrypted Parquet,
//! bytes and decoded values), tables hashed under one mask key still join after import,
//! another key gives other hashes, the catalog records rule and key id and never the key,
//! and what cannot be masked as asked is refused before anything is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use serde_json::Value;

use crate::common::{Fixture, ferry, fixture};
use crate::servers::{PgDb, psql};

/// Customers and orders that reference them by e-mail address.
const SOURCE: &str = r#"
CREATE TABLE customers (
  id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name VARCHAR(30) NOT NULL, phone TEXT,
  note TEXT, ssn INTEGER, city TEXT
);
CREATE TABLE orders (
  id INTEGER PRIMARY KEY, customer_email TEXT NOT NULL, total DECIMAL(10,2)
);
"#;

const CUSTOMERS: usize = 40;

fn source(fx: &Fixture) -> (String, Vec<String>) {
    let p = fx.path("shop.db");
    let c = rusqlite::Connection::open(&p).unwrap();
    c.execute_batch(SOURCE).unwrap();
    let mut emails = Vec::new();
    for i in 0..CUSTOMERS {
        let email = format!("person.{i}.secret@example{}.org", i % 3);
        c.execute(
            "INSERT INTO customers VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                i as i64,
                email,
                format!("Name Number{i}"),
                (i % 4 != 0).then(|| format!("+41 79 000 {i:04}")),
                format!("a long private note {i}"),
                (i % 5 != 0).then_some(756_0000_0000 + i as i64),
                "Bern"
            ],
        )
        .unwrap();
        // Customer i has i % 4 orders.
        for k in 0..(i % 4) {
            c.execute(
                "INSERT INTO orders (id, customer_email, total) VALUES (?1, ?2, ?3)",
                rusqlite::params![(i * 10 + k) as i64, email, 10.5 + k as f64],
            )
            .unwrap();
        }
        emails.push(email);
    }
    (format!("sqlite://{}", p.display()), emails)
}

fn keygen(fx: &Fixture, name: &str) -> (PathBuf, String) {
    let k = fx.path(name);
    let out = ferry()
        .args(["keygen", k.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    (k, String::from_utf8(out.stdout).unwrap().trim().to_string())
}

const MASKS: &[&str] = &[
    "--mask",
    "customers.email=email",
    "--mask",
    "orders.customer_email=email",
    "--mask",
    "customers.name=redact",
    "--mask",
    "customers.phone=null",
    "--mask",
    "customers.note=truncate:6",
    "--mask",
    "customers.ssn=hash",
];

/// Exports with the masks and mask key `mk`; returns the bundle.
fn masked_export(fx: &Fixture, url: &str, name: &str, mk: &Path) -> PathBuf {
    let b = fx.path(name);
    fx.export_to(
        url,
        &b,
        &[MASKS, &["--mask-key-file", mk.to_str().unwrap()]].concat(),
    );
    b
}

/// Decrypts a bundle; returns every Parquet file's bytes and, per `table.column`, its
/// decoded values as text (None for NULL).
#[allow(clippy::type_complexity)]
fn decrypted(
    fx: &Fixture,
    bundle: &Path,
    name: &str,
) -> (Vec<Vec<u8>>, BTreeMap<String, Vec<Option<String>>>) {
    let dir = fx.path(name);
    ferry()
        .args([
            "decrypt",
            bundle.to_str().unwrap(),
            dir.to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .assert()
        .success();
    let mut files = Vec::new();
    let mut values: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for d in std::fs::read_dir(&dir).unwrap() {
        let d = d.unwrap().path();
        if !d.is_dir() {
            continue;
        }
        let table = d.file_name().unwrap().to_string_lossy().into_owned();
        for f in std::fs::read_dir(&d).unwrap() {
            let f = f.unwrap().path();
            files.push(std::fs::read(&f).unwrap());
            let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                std::fs::File::open(&f).unwrap(),
            )
            .unwrap()
            .build()
            .unwrap();
            for b in r {
                let b = b.unwrap();
                for (field, a) in b.schema().fields().iter().zip(b.columns()) {
                    let col = values
                        .entry(format!("{table}.{}", field.name()))
                        .or_default();
                    for i in 0..a.len() {
                        col.push(a.is_valid(i).then(|| {
                            arrow::util::display::array_value_to_string(a.as_ref(), i).unwrap()
                        }));
                    }
                    if field.name() == "email" {
                        assert_eq!(a.data_type(), &DataType::Utf8);
                        let _ = a.as_string::<i32>();
                    }
                }
            }
        }
    }
    (files, values)
}

/// The column's values of a decrypted table (its directory name contains `table`).
fn column<'a>(
    values: &'a BTreeMap<String, Vec<Option<String>>>,
    table: &str,
    col: &str,
) -> &'a Vec<Option<String>> {
    values
        .iter()
        .find(|(k, _)| k.ends_with(&format!("{table}.{col}")))
        .unwrap_or_else(|| panic!("{table}.{col} not in {:?}", values.keys()))
        .1
}

#[test]
fn masked_values_never_reach_the_bundle_and_hashed_keys_still_join() {
    let fx = fixture();
    let (url, emails) = source(&fx);
    let (mk, mk_id) = keygen(&fx, "mask.key");
    let b = masked_export(&fx, &url, "b1", &mk);
    let (files, values) = decrypted(&fx, &b, "plain1");
    assert!(!files.is_empty());
    // Not in any Parquet file's bytes, nor among the decoded values of any column.
    for e in &emails {
        let local = e.split('@').next().unwrap();
        for f in &files {
            assert!(
                !f.windows(local.len()).any(|w| w == local.as_bytes()),
                "{local} in a part's bytes"
            );
        }
        for (k, col) in &values {
            assert!(
                !col.iter().flatten().any(|v| v.contains(local)),
                "{local} in decoded column {k}"
            );
        }
    }
    for f in &files {
        for needle in ["Name Number", "a long private", "+41 79"] {
            assert!(
                !f.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle}"
            );
        }
    }
    // Each rule as documented; NULL stays NULL.
    let email = column(&values, "customers", "email");
    assert_eq!(email.len(), CUSTOMERS);
    for v in email {
        let v = v.as_deref().unwrap();
        let (h, domain) = v.split_once('@').unwrap();
        assert_eq!(h.len(), 64, "{v}");
        assert!(h.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')), "{v}");
        assert!(
            domain.starts_with("example") && domain.ends_with(".org"),
            "{v}"
        );
    }
    let distinct: std::collections::HashSet<_> = email.iter().collect();
    assert_eq!(
        distinct.len(),
        CUSTOMERS,
        "distinct addresses stay distinct"
    );
    assert!(
        column(&values, "customers", "name")
            .iter()
            .all(|v| v.as_deref() == Some("REDACTED"))
    );
    assert!(
        column(&values, "customers", "phone")
            .iter()
            .all(Option::is_none)
    );
    assert!(
        column(&values, "customers", "note")
            .iter()
            .all(|v| v.as_deref() == Some("a long"))
    );
    let ssn = column(&values, "customers", "ssn");
    assert_eq!(ssn.iter().filter(|v| v.is_none()).count(), CUSTOMERS / 5);
    assert!(ssn.iter().flatten().all(|v| v.len() == 64));
    assert_eq!(
        column(&values, "customers", "city")[0].as_deref(),
        Some("Bern"),
        "unmasked columns travel as they are"
    );
    // The catalog: rule and key id per column, never the key (nor the derived HMAC key).
    let catalog = std::fs::read_to_string(fx.path("plain1").join("catalog.json")).unwrap();
    let cat: Value = serde_json::from_str(&catalog).unwrap();
    let customers = cat["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"]["name"] == "customers")
        .unwrap();
    let masks = customers["masks"].as_array().unwrap();
    let rule = |c: &str| masks.iter().find(|m| m["column"] == c).unwrap().clone();
    assert_eq!(rule("email")["rule"], "email");
    assert_eq!(rule("email")["key_id"], mk_id);
    assert_eq!(rule("ssn")["rule"], "hash");
    assert_eq!(rule("ssn")["source_type"], "INTEGER");
    assert_eq!(rule("note")["rule"], "truncate:6");
    assert_eq!(rule("phone")["rule"], "null");
    assert!(rule("phone").get("key_id").is_none());
    let ssn_col = customers["table"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ssn")
        .unwrap();
    assert_eq!(
        ssn_col["type"]["kind"], "utf8",
        "a hashed integer travels as text"
    );
    let key_text = std::fs::read_to_string(&mk).unwrap();
    let key_line = key_text
        .lines()
        .find(|l| l.starts_with("FERRYKEY"))
        .unwrap();
    let (_, raw) = bech32::decode(key_line).unwrap();
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, &raw);
    let mut derived = [0u8; 32];
    hk.expand(b"ferry mask v1", &mut derived).unwrap();
    for secret in [
        key_line.to_string(),
        key_line.to_lowercase(),
        hex::encode(&raw),
        hex::encode(derived),
    ] {
        assert!(!catalog.contains(&secret), "the catalog holds key material");
    }
    // inspect --json shows the same record.
    let out = ferry()
        .args([
            "--json",
            "inspect",
            b.to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let i: Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = i["catalog"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"]["name"] == "orders")
        .unwrap();
    assert_eq!(t["masks"][0]["column"], "customer_email");
    assert_eq!(t["masks"][0]["key_id"], mk_id);

    // The same key gives the same hashes in another export; another key other hashes.
    let b2 = masked_export(&fx, &url, "b2", &mk);
    let (_, again) = decrypted(&fx, &b2, "plain2");
    assert_eq!(column(&again, "customers", "email"), email);
    let (other, _) = keygen(&fx, "other.key");
    let b3 = masked_export(&fx, &url, "b3", &other);
    let (_, third) = decrypted(&fx, &b3, "plain3");
    let third_email = column(&third, "customers", "email");
    for (a, z) in email.iter().zip(third_email) {
        assert_ne!(a, z, "another mask key gave the same hash");
        assert_eq!(
            a.as_deref().unwrap().split_once('@').unwrap().1,
            z.as_deref().unwrap().split_once('@').unwrap().1
        );
    }

    // Imported (SQLite, and PostgreSQL when there), the hashed columns still join.
    let src_join: i64 = rusqlite::Connection::open(fx.path("shop.db"))
        .unwrap()
        .query_row(
            "SELECT count(*) FROM customers c JOIN orders o ON o.customer_email = c.email",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(src_join > 0);
    let lite = fx.path("target.db");
    fx.import_to(&b, &format!("sqlite://{}", lite.display()), &[]);
    let c = rusqlite::Connection::open(&lite).unwrap();
    let joined: i64 = c
        .query_row(
            "SELECT count(*) FROM customers c JOIN orders o ON o.customer_email = c.email",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(joined, src_join);
    let nulls: i64 = c
        .query_row(
            "SELECT count(*) FROM customers WHERE phone IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(nulls, CUSTOMERS as i64);
    if let Some(pg) = PgDb::new("mask_join") {
        fx.import_to(&b, &pg.url, &[]);
        assert_eq!(
            psql(
                &pg.url,
                "SELECT count(*) FROM customers c JOIN orders o ON o.customer_email = c.email"
            ),
            src_join.to_string()
        );
        // The hashed integer is a text column there; the redacted name one that holds it.
        assert_eq!(
            psql(
                &pg.url,
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = 'customers'::regclass AND attname IN ('ssn', 'name') ORDER BY attname"
            ),
            "text\ntext"
        );
    }
}

/// `plan` and `export --dry-run` show the masks (and need no mask key); what cannot be
/// masked as asked is refused before anything is written.
#[test]
fn masks_show_in_plans_and_bad_masks_are_refused() {
    let fx = fixture();
    let (url, _) = source(&fx);
    let out = ferry()
        .args([
            "--json",
            "plan",
            &url,
            "--target",
            "postgres://u@127.0.0.1:1/x",
        ])
        .args(MASKS)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let customers = v["plan"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "customers")
        .unwrap();
    let col = |n: &str| {
        customers["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(col("ssn")["mask"]["rule"], "hash");
    assert_eq!(col("ssn")["canonical"], "utf8");
    assert_eq!(col("ssn")["target_type"], "text");
    assert_eq!(col("email")["mask"]["rule"], "email");
    assert_eq!(col("id").get("mask"), None);
    let text = String::from_utf8(
        ferry()
            .args(["plan", &url])
            .args(MASKS)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        text.contains("masked: ssn = hash (export needs --mask-key-file)"),
        "{text}"
    );
    let dry = ferry()
        .args([
            "export",
            &url,
            fx.path("dry").to_str().unwrap(),
            "--dry-run",
        ])
        .args(MASKS)
        .output()
        .unwrap();
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("masked: email = email"),
        "{}",
        String::from_utf8_lossy(&dry.stdout)
    );

    let (mk, _) = keygen(&fx, "mask.key");
    let refused = |args: &[&str], code: i32, says: &str| {
        let b = fx.path("refused");
        let out = ferry()
            .args([
                "export",
                &url,
                b.to_str().unwrap(),
                "--key-file",
                fx.key.to_str().unwrap(),
            ])
            .args(["--mask-key-file", mk.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!b.join("manifest.json").exists());
    };
    refused(&["--mask", "customers.emial=hash"], 2, "customers.emial");
    refused(&["--mask", "custmers.email=hash"], 2, "custmers.email");
    refused(
        &["--mask", "customers.email=scramble"],
        2,
        "not a mask rule",
    );
    refused(&["--mask", "customers.name=null"], 2, "NOT NULL");
    refused(&["--mask", "customers.email=redact"], 2, "unique");
    refused(&["--mask", "orders.total=hash"], 2, "decimal(10,2)");
    refused(
        &["--mask", "customers.id=hash", "--cursor", "customers=id"],
        2,
        "cursor",
    );
    // hash without a mask key: a key problem.
    let out = ferry()
        .args([
            "export",
            &url,
            fx.path("nokey").to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
        ])
        .args(["--mask", "customers.email=hash"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(77),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mask-key-file"));
}
