//! TLS to the databases (rustls): `sslmode` for PostgreSQL, `ssl-mode` for MySQL/MariaDB, as
//! URL parameters. Against the local servers of `postgres.rs` and `mysql.rs`; the certificate
//! checks need PostgreSQL with `ssl = on` and Debian's self-signed snakeoil certificate, and
//! are skipped loudly otherwise.

use std::path::Path;

use crate::common::{ferry, fixture};
use crate::postgres;
use crate::servers::{MyDb, PgDb, my, psql};

const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

/// The URL with `query` appended.
fn with(url: &str, query: &str) -> String {
    format!("{url}?{query}")
}

/// Whether the server talks TLS with the snakeoil certificate (read over a plain session).
fn snakeoil_server(url: &str) -> bool {
    let ssl = psql(url, "SHOW ssl");
    let file = psql(url, "SHOW ssl_cert_file");
    if ssl != "on" || file != SNAKEOIL || !Path::new(SNAKEOIL).is_file() {
        eprintln!(
            "SKIPPED: PostgreSQL has ssl={ssl}, ssl_cert_file={file}: not the snakeoil setup"
        );
        return false;
    }
    true
}

/// `ferry compare A B`, its exit code and stderr.
fn compare(a: &str, b: &str, env: &[(&str, &str)]) -> (i32, String) {
    let mut c = ferry();
    c.args(["compare", a, b]);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SMALL: &str = r#"
CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, price numeric(10,2), at timestamptz, raw bytea);
INSERT INTO items SELECT g, 'item ' || g, g / 4.0, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', decode(md5(g::text), 'hex')
  FROM generate_series(1, 3000) g;
"#;

#[test]
fn postgres_export_import_and_compare_run_over_sslmode_require() {
    let Some(src) = PgDb::new("tls_src") else {
        return;
    };
    let Some(dst) = PgDb::new("tls_dst") else {
        return;
    };
    if psql(&src.url, "SHOW ssl") != "on" {
        eprintln!("SKIPPED: PostgreSQL has ssl off");
        return;
    }
    psql(&src.url, SMALL);
    let (s, d) = (
        with(&src.url, "sslmode=require"),
        with(&dst.url, "sslmode=require"),
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&s, &b, &[]);
    fx.import_to(&b, &d, &[]);
    assert_eq!(
        postgres::fingerprint(&src.url),
        postgres::fingerprint(&dst.url)
    );
    let (code, err) = compare(&s, &d, &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn postgres_verify_full_refuses_a_certificate_for_another_host_and_verify_ca_accepts_its_root() {
    let Some(db) = PgDb::new("tls_verify") else {
        return;
    };
    if !snakeoil_server(&db.url) {
        return;
    }
    let host = url::Url::parse(&db.url).unwrap();
    assert_eq!(
        host.host_str(),
        Some("127.0.0.1"),
        "the test needs an IP host"
    );
    let root = format!("sslrootcert={SNAKEOIL}");
    // The snakeoil certificate names the machine (or localhost), never 127.0.0.1.
    let full = with(&db.url, &format!("sslmode=verify-full&{root}"));
    let (code, err) = compare(&full, &full, &[]);
    assert_eq!(code, 1, "refused, and not as temporary (75): {err}");
    assert!(
        err.contains("over TLS")
            && err.contains("TLS certificate verification failed")
            && err.contains("not valid for name \"127.0.0.1\""),
        "{err}"
    );
    // verify-ca checks the chain to the root only: the same certificate passes.
    let ca = with(&db.url, &format!("sslmode=verify-ca&{root}"));
    let (code, err) = compare(&ca, &ca, &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn postgres_verify_full_refuses_a_certificate_from_an_unknown_ca() {
    let Some(db) = PgDb::new("tls_unknown") else {
        return;
    };
    if !snakeoil_server(&db.url) {
        return;
    }
    // No sslrootcert, and a system trust store (rustls-native-certs reads SSL_CERT_FILE and
    // SSL_CERT_DIR) that holds no root: the server's certificate has an unknown issuer.
    let empty = tempfile::tempdir().unwrap();
    let none = empty.path().join("none.pem");
    std::fs::write(&none, "").unwrap();
    let env = [
        ("SSL_CERT_FILE", none.to_str().unwrap()),
        ("SSL_CERT_DIR", empty.path().to_str().unwrap()),
    ];
    // And as sslrootcert a real CA that did not sign it: the first of the system bundle.
    let bundle = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
    let snakeoil = std::fs::read_to_string(SNAKEOIL).unwrap();
    let end = "-----END CERTIFICATE-----";
    let other = bundle.find(end).map(|i| &bundle[..i + end.len()]);
    let other = other.filter(|c| !snakeoil.contains(c.trim()));
    let other_root = empty.path().join("other-ca.pem");
    let mut queries = vec!["sslmode=verify-full".to_string()];
    if let Some(c) = other {
        std::fs::write(&other_root, c).unwrap();
        let r = other_root.to_str().unwrap();
        queries.push(format!("sslmode=verify-full&sslrootcert={r}"));
        queries.push(format!("sslmode=verify-ca&sslrootcert={r}"));
    } else {
        eprintln!("no system CA bundle: verify-ca against another CA not tested");
    }
    for q in &queries {
        let u = with(&db.url, q);
        let (code, err) = compare(&u, &u, &env);
        assert_eq!(code, 1, "{q}: {err}");
        assert!(
            err.contains("TLS certificate verification failed") && err.contains("UnknownIssuer"),
            "{q}: {err}"
        );
    }
    // require encrypts without checking the certificate: it still connects.
    let u = with(&db.url, "sslmode=require");
    let (code, err) = compare(&u, &u, &env);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn mariadb_ssl_mode_required_is_refused_clearly_when_the_server_has_tls_off_and_preferred_connects()
{
    let Some(db) = MyDb::new("tls") else {
        return;
    };
    let have = my(&db.url, "SHOW VARIABLES LIKE 'have_ssl'");
    let on = have.split_whitespace().nth(1) == Some("YES");
    let required = with(&db.url, "ssl-mode=REQUIRED");
    let (code, err) = compare(&required, &required, &[]);
    if on {
        assert_eq!(code, 0, "{err}");
    } else {
        assert_eq!(code, 1, "refused, and not as temporary (75): {err}");
        assert!(
            err.contains("over TLS (ssl-mode)") && err.contains("server does not support TLS"),
            "{err}"
        );
    }
    for mode in ["PREFERRED", "DISABLED"] {
        let u = with(&db.url, &format!("ssl-mode={mode}"));
        let (code, err) = compare(&u, &u, &[]);
        assert_eq!(code, 0, "{mode}: {err}");
    }
}
