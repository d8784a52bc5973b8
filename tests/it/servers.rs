//! The database servers the tests run against, shared by every module: a throw-away
//! PostgreSQL database ([`PgDb`], FERRY_TEST_PG_URL, default
//! postgres://postgres@127.0.0.1:5432/test) run through `psql`, a throw-away MySQL/MariaDB
//! database ([`MyDb`], FERRY_TEST_MYSQL_URL, default mysql://root@127.0.0.1:3306/test) run
//! through the `mariadb` client, and the [`Engine`] a test targets. Without a server a
//! `new` fails under CI=true and returns None (skipped loudly) elsewhere.

use std::process::Command as Proc;

/// The engine behind a target a test writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    Mysql,
}

// PostgreSQL

/// The test server's URL for administration (creating and dropping databases, roles).
pub fn pg_admin_url() -> String {
    std::env::var("FERRY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The URL of database `db` on the test server.
fn pg_url_of(db: &str) -> String {
    let mut u = url::Url::parse(&pg_admin_url()).unwrap();
    u.set_path(db);
    u.to_string()
}

/// Runs SQL with psql (ON_ERROR_STOP) and returns its unaligned output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Proc::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql failed: {}\n{sql}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

/// A database that exists for one test.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    /// None (skipped, loudly) when no server answers and CI is not set.
    pub fn new(tag: &str) -> Option<PgDb> {
        let ok = Proc::new("psql")
            .args(["-X", "-q", "-d", &pg_admin_url(), "-c", "SELECT 1"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "PostgreSQL at {} is unreachable and CI=true",
                    pg_admin_url()
                );
            }
            eprintln!(
                "SKIPPED: PostgreSQL at {} is unreachable (set FERRY_TEST_PG_URL)",
                pg_admin_url()
            );
            return None;
        }
        let name = format!(
            "ferry_{tag}_{}",
            &ferry::bundle::layout::new_bundle_id()[..10]
        );
        psql(&pg_admin_url(), &format!("CREATE DATABASE {name}"));
        Some(PgDb {
            url: pg_url_of(&name),
            name,
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Proc::new("psql")
            .args([
                "-X",
                "-q",
                "-d",
                &pg_admin_url(),
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

// MySQL/MariaDB

/// The test server's URL for administration (creating and dropping databases, users).
pub fn my_admin_url() -> String {
    std::env::var("FERRY_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// The URL of database `db` on the test server.
fn my_url_of(db: &str) -> String {
    let mut u = url::Url::parse(&my_admin_url()).unwrap();
    u.set_path(db);
    u.to_string()
}

/// The command-line client (`mariadb`, else `mysql`) connected as the URL says.
pub fn my_client(url: &str) -> Proc {
    let u = url::Url::parse(url).unwrap();
    let bin = if Proc::new("mariadb").arg("--version").output().is_ok() {
        "mariadb"
    } else {
        "mysql"
    };
    let mut c = Proc::new(bin);
    c.args([
        "--protocol=tcp",
        "--default-character-set=utf8mb4",
        "-h",
        u.host_str().unwrap_or("127.0.0.1"),
        "-P",
        &u.port().unwrap_or(3306).to_string(),
        "-u",
        if u.username().is_empty() {
            "root"
        } else {
            u.username()
        },
    ]);
    if let Some(p) = u.password() {
        c.arg(format!("-p{p}"));
    }
    let db = u.path().trim_start_matches('/');
    if !db.is_empty() {
        c.arg(db);
    }
    c
}

/// Runs SQL with the client (batch mode, no column names) and returns its output.
pub fn my(url: &str, sql: &str) -> String {
    let out = my_client(url)
        .args(["-N", "-B", "-e", sql])
        .output()
        .expect("the mariadb client runs");
    assert!(
        out.status.success(),
        "mariadb failed: {}\n{sql}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

/// A database that exists for one test.
pub struct MyDb {
    pub name: String,
    pub url: String,
}

impl MyDb {
    /// None (skipped, loudly) when no server answers and CI is not set.
    pub fn new(tag: &str) -> Option<MyDb> {
        let ok = my_client(&my_admin_url())
            .args(["-N", "-B", "-e", "SELECT 1"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "MySQL/MariaDB at {} is unreachable and CI=true",
                    my_admin_url()
                );
            }
            eprintln!(
                "SKIPPED: MySQL/MariaDB at {} is unreachable (set FERRY_TEST_MYSQL_URL)",
                my_admin_url()
            );
            return None;
        }
        let name = format!(
            "ferry_{tag}_{}",
            &ferry::bundle::layout::new_bundle_id()[..10]
        );
        my(
            &my_admin_url(),
            &format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"),
        );
        Some(MyDb {
            url: my_url_of(&name),
            name,
        })
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        let _ = my_client(&my_admin_url())
            .args(["-e", &format!("DROP DATABASE IF EXISTS `{}`", self.name)])
            .output();
    }
}
