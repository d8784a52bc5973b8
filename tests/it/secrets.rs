//! Secrets never printed (DESIGN.md "Trust", issue #13 point 3): every command runs with a
//! password in its database URL (in the userinfo, as `?password=` and other secret query
//! parameters, on PostgreSQL and MySQL/MariaDB, and in URLs that do not parse), progress on,
//! text and `--json`, successes and failures; then all of stdout and stderr is searched for
//! the secrets.

use std::process::Command as Proc;

use assert_cmd::Command;

use crate::common::fixture;
use crate::servers::{MyDb, PgDb, my, psql};

/// Every output of every run, labelled (the arguments hold the secrets, so they are not
/// recorded), and the secrets that must never appear in it.
struct Transcript {
    text: String,
    secrets: Vec<String>,
}

/// One run's exit code and output.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl Transcript {
    fn new(secrets: &[&str]) -> Self {
        Transcript {
            text: String::new(),
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `ferry ARGS…` with progress lines on (not `--quiet`), recorded under `label`.
    fn run(&mut self, label: &str, args: &[&str]) -> Out {
        self.run_env(label, args, &[])
    }

    fn run_env(&mut self, label: &str, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut c = Command::cargo_bin("ferry").expect("ferry binary");
        c.env_remove("FERRY_KEY_FILE").env_remove("FERRY_LOG");
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.args(args).output().expect("ferry runs");
        let out = Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        self.text.push_str(&format!(
            "=== {label} (exit {})\n--- stdout\n{}--- stderr\n{}",
            out.code, out.stdout, out.stderr
        ));
        out
    }

    /// No secret anywhere in the transcript; the offending lines otherwise.
    fn assert_clean(&self) {
        let mut leaks = Vec::new();
        for s in &self.secrets {
            for (i, line) in self.text.lines().enumerate() {
                if line.contains(s.as_str()) {
                    leaks.push(format!("{s:?} on transcript line {i}: {line}"));
                }
            }
        }
        assert!(
            leaks.is_empty(),
            "secrets printed:\n{}\n\nfull transcript:\n{}",
            leaks.join("\n"),
            self.text
        );
    }
}

/// A fresh random tag for names and secrets.
fn tag() -> String {
    ferry::bundle::layout::new_bundle_id()[..12].to_string()
}

fn pg_admin_url() -> String {
    std::env::var("FERRY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A PostgreSQL role with a password that owns the test databases; dropped after them.
struct PgRole {
    name: String,
    dbs: Vec<PgDb>,
}

impl Drop for PgRole {
    fn drop(&mut self) {
        self.dbs.clear();
        let _ = Proc::new("psql")
            .args([
                "-X",
                "-q",
                "-d",
                &pg_admin_url(),
                "-c",
                &format!("DROP ROLE IF EXISTS {}", self.name),
            ])
            .output();
    }
}

/// `scheme://user:password@host:port/db?query` from a test database's URL.
fn with_credentials(db_url: &str, user: &str, password: &str, query: &str) -> String {
    let u = url::Url::parse(db_url).unwrap();
    let mut s = format!(
        "{}://{user}:{password}@{}:{}{}",
        u.scheme(),
        u.host_str().unwrap(),
        u.port().unwrap(),
        u.path()
    );
    if !query.is_empty() {
        s.push('?');
        s.push_str(query);
    }
    s
}

#[test]
fn no_command_prints_a_database_password() {
    let t = tag();
    // Each secret has its own stem; the userinfo ones carry a percent-encoded `!`, so the
    // stem covers the encoded and the decoded form.
    let pg_pw = format!("PgPw{t}");
    let pg_query_pw = format!("PgQueryPw{t}");
    let pg_ssl_pw = format!("PgSslPw{t}");
    let pg_token = format!("PgToken{t}");
    let bad_port_pw = format!("BadPortPw{t}");
    let my_pw = format!("MyPw{t}");
    let my_query_pw = format!("MyQueryPw{t}");
    let my_wrong_pw = format!("MyWrongPw{t}");
    let my_bad_port_pw = format!("MyBadPortPw{t}");
    let bundle_pw = format!("BundlePw{t}");
    let bundle_token = format!("BundleToken{t}");
    let mut tr = Transcript::new(&[
        &pg_pw,
        &pg_query_pw,
        &pg_ssl_pw,
        &pg_token,
        &bad_port_pw,
        &my_pw,
        &my_query_pw,
        &my_wrong_pw,
        &my_bad_port_pw,
        &bundle_pw,
        &bundle_token,
    ]);

    let f = fixture();
    let key = f.key.to_str().unwrap().to_string();
    let bundle = |n: &str| f.path(n).to_str().unwrap().to_string();

    // keygen, and the bundle-only commands on a SQLite bundle (no database URL, but every
    // command is searched).
    let k2 = bundle("k2.key");
    let k3 = bundle("k3.key");
    tr.run("keygen", &["keygen", &k2]);
    tr.run("keygen --json", &["--json", "keygen", &k3]);

    // ---- PostgreSQL: a role with a password, in the userinfo and in the query.
    let mut pg_ran = false;
    if let (Some(src), Some(dst), Some(empty)) = (
        PgDb::new("secrets_src"),
        PgDb::new("secrets_dst"),
        PgDb::new("secrets_empty"),
    ) {
        pg_ran = true;
        let role_name = format!("ferry_secret_{t}");
        psql(
            &pg_admin_url(),
            &format!("CREATE ROLE {role_name} LOGIN PASSWORD '{pg_pw}!x'"),
        );
        let pw = format!("{pg_pw}%21x");
        let src_url = with_credentials(&src.url, &role_name, &pw, "");
        let dst_url = with_credentials(&dst.url, &role_name, &pw, "");
        let empty_url = with_credentials(&empty.url, &role_name, &pw, "");
        // The password only in the query, with more secret parameters sqlx does not know.
        let q = format!(
            "password={pg_query_pw}%21x&sslpassword={pg_ssl_pw}&api_token={pg_token}&application_name=ferry"
        );
        let src_q = with_credentials(&src.url, &role_name, "", &q).replace(":@", "@");
        let dst_q = with_credentials(&dst.url, &role_name, "", &q).replace(":@", "@");
        let bad_port_url = format!(
            "postgres://{role_name}:{bad_port_pw}@127.0.0.1:99999/{}",
            src.name
        );
        let bad_port: &str = &bad_port_url;
        for d in [&src, &dst, &empty] {
            psql(
                &pg_admin_url(),
                &format!("ALTER DATABASE {} OWNER TO {role_name}", d.name),
            );
        }
        // Drops the databases, then the role that owns them.
        let role_guard = PgRole {
            name: role_name,
            dbs: vec![src, dst, empty],
        };
        psql(
            &src_url,
            "CREATE TABLE items (id integer PRIMARY KEY, name text); \
             INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g; \
             CREATE TABLE notes (id integer, body text); INSERT INTO notes VALUES (1, 'hi');",
        );

        let (b1, b2, b3) = (bundle("pg1"), bundle("pg2"), bundle("pg3"));
        for (label, u) in [("userinfo", &src_url), ("query", &src_q)] {
            let o = tr.run(
                &format!("pg export --dry-run ({label})"),
                &[
                    "export",
                    u,
                    &bundle("pg-dry"),
                    "--key-file",
                    &key,
                    "--dry-run",
                ],
            );
            assert_eq!(o.code, 0, "{}", o.all());
            tr.run(
                &format!("pg export --dry-run --json ({label})"),
                &[
                    "--json",
                    "export",
                    u,
                    &bundle("pg-dry"),
                    "--key-file",
                    &key,
                    "--dry-run",
                ],
            );
            let o = tr.run(
                &format!("pg export no such table ({label})"),
                &[
                    "export",
                    u,
                    &bundle("pg-none"),
                    "--key-file",
                    &key,
                    "--table",
                    "nope",
                ],
            );
            assert!(
                o.all().contains("no such table in postgres://"),
                "{}",
                o.all()
            );
            tr.run(
                &format!("pg export no such table --json ({label})"),
                &[
                    "--json",
                    "export",
                    u,
                    &bundle("pg-none"),
                    "--key-file",
                    &key,
                    "--table",
                    "nope",
                ],
            );
        }
        let o = tr.run("pg export", &["export", &src_url, &b1, "--key-file", &key]);
        assert_eq!(o.code, 0, "{}", o.all());
        let o = tr.run(
            "pg export --json (query password)",
            &["--json", "export", &src_q, &b2, "--key-file", &key],
        );
        assert_eq!(o.code, 0, "{}", o.all());
        let o = tr.run(
            "pg export --jobs 2",
            &["export", &src_url, &b3, "--key-file", &key, "--jobs", "2"],
        );
        assert_eq!(o.code, 0, "{}", o.all());

        // import: the plan, the load, "already imported" (text and JSON), a failing pre-flight.
        let o = tr.run(
            "pg import --dry-run",
            &["import", &b1, &dst_url, "--key-file", &key, "--dry-run"],
        );
        assert_eq!(o.code, 0, "{}", o.all());
        tr.run(
            "pg import --dry-run --json (query password)",
            &[
                "--json",
                "import",
                &b1,
                &dst_q,
                "--key-file",
                &key,
                "--dry-run",
            ],
        );
        let o = tr.run("pg import", &["import", &b1, &dst_url, "--key-file", &key]);
        assert_eq!(o.code, 0, "{}", o.all());
        assert!(
            o.stdout.contains("imported into postgres://"),
            "{}",
            o.all()
        );
        assert!(o.stdout.contains(":***@"), "{}", o.all());
        let o = tr.run(
            "pg import again",
            &["import", &b1, &dst_url, "--key-file", &key],
        );
        assert!(o.stdout.contains("already imported"), "{}", o.all());
        let o = tr.run(
            "pg import again --json (query password)",
            &["--json", "import", &b1, &dst_q, "--key-file", &key],
        );
        assert!(o.stdout.contains("already imported"), "{}", o.all());
        assert!(o.stdout.contains("password=***"), "{}", o.all());
        let o = tr.run(
            "pg import pre-flight failure",
            &["import", &b2, &dst_url, "--key-file", &key],
        );
        assert_ne!(o.code, 0, "{}", o.all());
        assert!(o.all().contains("pre-flight"), "{}", o.all());
        tr.run(
            "pg import pre-flight failure --json",
            &["--json", "import", &b2, &dst_q, "--key-file", &key],
        );
        tr.run(
            "pg import --jobs 2 --mode append",
            &[
                "import",
                &b3,
                &dst_url,
                "--key-file",
                &key,
                "--jobs",
                "2",
                "--mode",
                "append",
            ],
        );

        // compare: progress lines, equal, different and missing tables.
        let o = tr.run("pg compare", &["compare", &src_url, &dst_q]);
        assert!(
            o.stderr.contains("fingerprinting postgres://"),
            "{}",
            o.all()
        );
        tr.run(
            "pg compare --json",
            &["--json", "compare", &src_q, &dst_url],
        );
        let o = tr.run("pg compare missing", &["compare", &src_url, &empty_url]);
        assert!(o.stdout.contains("missing in postgres://"), "{}", o.all());
        tr.run(
            "pg compare missing --json",
            &["--json", "compare", &empty_url, &src_q],
        );

        // A URL that does not parse (port out of range): every command that takes one.
        let (pg_bad, b1s, k) = (bundle("pg-bad"), b1.as_str(), key.as_str());
        let cases: [(&str, Vec<&str>); 6] = [
            ("export", vec!["export", bad_port, &pg_bad, "--key-file", k]),
            (
                "export --dry-run --json",
                vec![
                    "--json",
                    "export",
                    bad_port,
                    &pg_bad,
                    "--key-file",
                    k,
                    "--dry-run",
                ],
            ),
            ("import", vec!["import", b1s, bad_port, "--key-file", k]),
            (
                "import --json",
                vec!["--json", "import", b1s, bad_port, "--key-file", k],
            ),
            ("compare", vec!["compare", bad_port, &src_url]),
            (
                "compare --json",
                vec!["--json", "compare", &src_url, bad_port],
            ),
        ];
        for (label, args) in cases {
            let o = tr.run(&format!("pg bad port {label}"), &args);
            assert_ne!(o.code, 0, "{}", o.all());
            assert!(o.all().contains("<database URL>"), "{label}: {}", o.all());
        }

        // The bundle commands on a PostgreSQL bundle.
        tr.run("verify", &["verify", &b1]);
        tr.run(
            "verify --key-file --json",
            &["--json", "verify", &b1, "--key-file", &key],
        );
        tr.run("inspect", &["inspect", &b1]);
        tr.run("inspect --key-file", &["inspect", &b1, "--key-file", &key]);
        tr.run(
            "inspect --json --key-file",
            &["--json", "inspect", &b1, "--key-file", &key],
        );
        tr.run(
            "decrypt",
            &["decrypt", &b1, &bundle("plain1"), "--key-file", &key],
        );
        tr.run(
            "decrypt --json",
            &[
                "--json",
                "decrypt",
                &b1,
                &bundle("plain2"),
                "--key-file",
                &key,
            ],
        );
        drop(role_guard);
    }

    // ---- MySQL/MariaDB: a user with a password.
    let mut my_ran = false;
    if let (Some(src), Some(dst), Some(empty)) = (
        MyDb::new("secrets_src"),
        MyDb::new("secrets_dst"),
        MyDb::new("secrets_empty"),
    ) {
        my_ran = true;
        let user = format!("ferry_secret_{t}");
        my(
            &src.url,
            &format!(
                "CREATE USER '{user}'@'%' IDENTIFIED BY '{my_pw}!x'; \
                 GRANT ALL ON `{}`.* TO '{user}'@'%'; GRANT ALL ON `{}`.* TO '{user}'@'%'; \
                 GRANT ALL ON `{}`.* TO '{user}'@'%';",
                src.name, dst.name, empty.name
            ),
        );
        struct DropUser(String, String);
        impl Drop for DropUser {
            fn drop(&mut self) {
                let _ = std::panic::catch_unwind(|| {
                    my(&self.0, &format!("DROP USER IF EXISTS '{}'@'%'", self.1))
                });
            }
        }
        let _user_guard = DropUser(src.url.clone(), user.clone());
        my(
            &src.url,
            "CREATE TABLE items (id int PRIMARY KEY, name varchar(40)); \
             INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, NULL); \
             CREATE TABLE notes (id int, body text); INSERT INTO notes VALUES (1, 'hi');",
        );
        let pw = format!("{my_pw}%21x");
        let q = format!("password={my_query_pw}&token={pg_token}");
        let src_url = with_credentials(&src.url, &user, &pw, "");
        let src_q = with_credentials(&src.url, &user, &pw, &q).replace("mysql://", "mariadb://");
        let dst_url = with_credentials(&dst.url, &user, &pw, &q);
        let empty_url = with_credentials(&empty.url, &user, &pw, "");
        let wrong = with_credentials(&src.url, &user, &format!("{my_wrong_pw}%21"), "");
        let bad_port_url = format!(
            "mysql://{user}:{my_bad_port_pw}@127.0.0.1:99999/{}",
            src.name
        );
        let bad_port: &str = &bad_port_url;
        let (b1, b2) = (bundle("my1"), bundle("my2"));

        let o = tr.run(
            "my export --dry-run",
            &[
                "export",
                &src_q,
                &bundle("my-dry"),
                "--key-file",
                &key,
                "--dry-run",
            ],
        );
        assert_eq!(o.code, 0, "{}", o.all());
        tr.run(
            "my export --dry-run --json",
            &[
                "--json",
                "export",
                &src_url,
                &bundle("my-dry"),
                "--key-file",
                &key,
                "--dry-run",
            ],
        );
        let o = tr.run(
            "my export no such table",
            &[
                "export",
                &src_q,
                &bundle("my-none"),
                "--key-file",
                &key,
                "--table",
                "nope",
            ],
        );
        assert!(
            o.all().contains("no such table in mariadb://"),
            "{}",
            o.all()
        );
        tr.run(
            "my export no such table --json",
            &[
                "--json",
                "export",
                &src_url,
                &bundle("my-none"),
                "--key-file",
                &key,
                "--table",
                "nope",
            ],
        );
        let o = tr.run("my export", &["export", &src_url, &b1, "--key-file", &key]);
        assert_eq!(o.code, 0, "{}", o.all());
        let o = tr.run(
            "my export --json",
            &["--json", "export", &src_q, &b2, "--key-file", &key],
        );
        assert_eq!(o.code, 0, "{}", o.all());
        tr.run(
            "my import --dry-run",
            &["import", &b1, &dst_url, "--key-file", &key, "--dry-run"],
        );
        let o = tr.run("my import", &["import", &b1, &dst_url, "--key-file", &key]);
        assert_eq!(o.code, 0, "{}", o.all());
        assert!(o.stdout.contains("imported into mysql://"), "{}", o.all());
        let o = tr.run(
            "my import again",
            &["import", &b1, &dst_url, "--key-file", &key],
        );
        assert!(o.stdout.contains("already imported"), "{}", o.all());
        tr.run(
            "my import again --json",
            &["--json", "import", &b1, &dst_url, "--key-file", &key],
        );
        let o = tr.run(
            "my import pre-flight failure",
            &["import", &b2, &dst_url, "--key-file", &key],
        );
        assert_ne!(o.code, 0, "{}", o.all());
        tr.run(
            "my import pre-flight failure --json",
            &["--json", "import", &b2, &dst_url, "--key-file", &key],
        );
        let o = tr.run("my compare", &["compare", &src_q, &dst_url]);
        assert!(
            o.stderr.contains("fingerprinting mariadb://"),
            "{}",
            o.all()
        );
        tr.run(
            "my compare missing --json",
            &["--json", "compare", &src_url, &empty_url],
        );
        let o = tr.run("my wrong password", &["compare", &wrong, &src_url]);
        assert_ne!(o.code, 0, "{}", o.all());
        tr.run(
            "my wrong password --json",
            &["--json", "import", &b1, &wrong, "--key-file", &key],
        );
        let (my_bad, b1s, k) = (bundle("my-bad"), b1.as_str(), key.as_str());
        let cases: [(&str, Vec<&str>); 3] = [
            ("export", vec!["export", bad_port, &my_bad, "--key-file", k]),
            (
                "import --json",
                vec!["--json", "import", b1s, bad_port, "--key-file", k],
            ),
            ("compare", vec!["compare", &src_url, bad_port]),
        ];
        for (label, args) in cases {
            let o = tr.run(&format!("my bad port {label}"), &args);
            assert_ne!(o.code, 0, "{}", o.all());
            assert!(o.all().contains("<database URL>"), "{label}: {}", o.all());
        }
    }

    // ---- SQLite and an object-store bundle URL with credentials in it (nothing listens on
    // the endpoint: each command fails fast), parsable and not.
    let s3 = [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("FERRY_STORE_MAX_RETRIES", "0"),
        ("FERRY_STORE_RETRY_TIMEOUT", "1"),
    ];
    let s3_url = format!("s3://AKIA:{bundle_pw}@bucket/prefix?token={bundle_token}");
    let s3_pw = format!("s3://AKIA:{bundle_pw}@bucket/prefix");
    let s3_bad = format!("s3://AKIA:{bundle_pw}@bucket:99999/prefix");
    let sqlite_b = bundle("sq1");
    let o = tr.run(
        "sqlite export",
        &["export", &f.src_url(), &sqlite_b, "--key-file", &key],
    );
    assert_eq!(o.code, 0, "{}", o.all());
    for u in [&s3_url, &s3_pw, &s3_bad] {
        tr.run_env(
            "s3 export",
            &["export", &f.src_url(), u, "--key-file", &key],
            &s3,
        );
        tr.run_env(
            "s3 export --json",
            &["--json", "export", &f.src_url(), u, "--key-file", &key],
            &s3,
        );
        tr.run_env("s3 verify", &["verify", u], &s3);
        tr.run_env("s3 verify --json", &["--json", "verify", u], &s3);
        tr.run_env("s3 inspect", &["inspect", u], &s3);
        tr.run_env(
            "s3 inspect --json",
            &["--json", "inspect", u, "--key-file", &key],
            &s3,
        );
        tr.run_env(
            "s3 decrypt",
            &["decrypt", u, &bundle("plain-s3"), "--key-file", &key],
            &s3,
        );
        tr.run_env(
            "s3 import",
            &[
                "import",
                u,
                &format!("sqlite://{}", bundle("s3.db")),
                "--key-file",
                &key,
            ],
            &s3,
        );
    }

    tr.assert_clean();
    if !pg_ran {
        eprintln!("SKIPPED (partly): no PostgreSQL server; its commands were not run");
    }
    if !my_ran {
        eprintln!("SKIPPED (partly): no MySQL/MariaDB server; its commands were not run");
    }
}
