//! Failures that leave nothing behind and say what happened (#16's small items): an
//! `--exclude` that names nothing, a full disk during export, the parts of a failed
//! export, a location holding a killed export's parts, `--target-schema` where the target
//! has no schemas, a failed import into a new SQLite path, and MySQL's position noise.

use std::path::Path;

use crate::common::{ferry, fixture};
use crate::servers::{MyDb, my};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = ferry().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every entry under `dir`, recursively, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(
                files_under(&p)
                    .into_iter()
                    .map(|f| format!("{}/{f}", p.file_name().unwrap().to_string_lossy())),
            );
        } else {
            out.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

#[test]
fn an_exclude_that_names_no_table_is_a_usage_error() {
    let fx = fixture();
    let key = fx.key.to_str().unwrap();
    let b = fx.path("b");
    let (code, _, err) = run(&[
        "export",
        &fx.src_url(),
        b.to_str().unwrap(),
        "--key-file",
        key,
        "--exclude",
        "notse",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--exclude notse: no such table"), "{err}");
    assert!(!b.exists(), "nothing is written");
    // A real one is fine, and leaves its table out.
    let (code, out, err) = run(&[
        "export",
        &fx.src_url(),
        b.to_str().unwrap(),
        "--key-file",
        key,
        "--exclude",
        "notes",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["tables"].as_array().unwrap().len(), 1, "{r}");
    // Import: the bundle has no such table.
    let target = fx.path("t.db");
    let (code, _, err) = run(&[
        "import",
        b.to_str().unwrap(),
        &format!("sqlite://{}", target.display()),
        "--key-file",
        key,
        "--exclude",
        "notse",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("notse: the bundle has no such table"), "{err}");
}

/// A failed export takes back the parts it wrote (and the directory it made); a location
/// that holds files but no manifest (a killed export's parts) is refused, naming them.
#[test]
fn a_failed_export_leaves_nothing_and_leftovers_are_refused() {
    let fx = fixture();
    let key = fx.key.to_str().unwrap();
    let src = fx.path("bad.db");
    let c = rusqlite::Connection::open(&src).unwrap();
    // `a_good` is exported first (tables go in name order), then `b_bad` fails on its
    // 2000th row: a text value in an INTEGER column.
    c.execute_batch(
        "CREATE TABLE a_good (id INTEGER PRIMARY KEY, payload BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO a_good SELECT i, randomblob(600) FROM n;
         CREATE TABLE b_bad (id INTEGER PRIMARY KEY, n INTEGER);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO b_bad SELECT i, CASE WHEN i = 2000 THEN 'two thousand' ELSE i END FROM n;",
    )
    .unwrap();
    let url = format!("sqlite://{}", src.display());
    let b = fx.path("failed");
    let (code, _, err) = run(&[
        "export",
        &url,
        b.to_str().unwrap(),
        "--key-file",
        key,
        "--max-part-size",
        "1MiB",
    ]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("b_bad"), "{err}");
    assert!(!b.exists(), "a failed export left {:?}", files_under(&b));
    // Into a directory that existed: it stays, empty.
    let existing = fx.path("existing");
    std::fs::create_dir(&existing).unwrap();
    let (code, _, err) = run(&[
        "export",
        &url,
        existing.to_str().unwrap(),
        "--key-file",
        key,
    ]);
    assert_eq!(code, 65, "{err}");
    assert_eq!(files_under(&existing), Vec::<String>::new());

    // What a killed export leaves: parts without a manifest.
    let left = fx.path("left");
    std::fs::create_dir_all(left.join("data")).unwrap();
    std::fs::write(
        left.join("data/0123456789abcdef0123456789abcdef.fe"),
        b"part",
    )
    .unwrap();
    let (code, _, err) = run(&[
        "export",
        &fx.src_url(),
        left.to_str().unwrap(),
        "--key-file",
        key,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not empty and holds no bundle") && err.contains("data/"),
        "{err}"
    );
    assert_eq!(
        files_under(&left),
        ["data/0123456789abcdef0123456789abcdef.fe"]
    );
    // An empty directory is fine.
    fx.export_to(&fx.src_url(), &existing, &[]);
    let (code, _, err) = run(&["verify", existing.to_str().unwrap(), "--strict"]);
    assert_eq!(code, 0, "{err}");
}

/// A tmpfs of 1 MiB mounted for one test, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// `None` (skipped, loudly) where mounting is not allowed (not root).
    fn mount(at: &Path) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!(
                "SKIPPED: cannot mount a small tmpfs at {} (needs root)",
                at.display()
            );
            return None;
        }
        Some(SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).output();
    }
}

/// A full disk is named as such (which file, "no space left on device", what to do), and
/// the export removes what it wrote.
#[test]
fn a_full_disk_says_so_and_the_export_removes_its_parts() {
    let fx = fixture();
    let Some(disk) = SmallDisk::mount(&fx.path("small")) else {
        return;
    };
    let src = fx.path("big.db");
    rusqlite::Connection::open(&src)
        .unwrap()
        .execute_batch(
            "CREATE TABLE big (id INTEGER PRIMARY KEY, payload BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)
             INSERT INTO big SELECT i, randomblob(1000) FROM n;",
        )
        .unwrap();
    let b = disk.0.join("bundle");
    let (code, _, err) = run(&[
        "export",
        &format!("sqlite://{}", src.display()),
        b.to_str().unwrap(),
        "--key-file",
        fx.key.to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("no space left on device"), "{err}");
    assert!(err.contains("data/") && err.contains("free space"), "{err}");
    assert!(!b.exists(), "the failed export left {:?}", files_under(&b));
}

#[test]
fn target_schema_on_an_engine_without_schemas_names_that_engine() {
    let fx = fixture();
    let b = fx.export("b");
    for (url, engine) in [
        ("mysql://root@127.0.0.1:1/shop".to_string(), "mysql"),
        (format!("sqlite://{}", fx.path("t.db").display()), "sqlite"),
    ] {
        let (code, _, err) = run(&[
            "import",
            b.to_str().unwrap(),
            &url,
            "--key-file",
            fx.key.to_str().unwrap(),
            "--target-schema",
            "legacy",
        ]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(&format!("a {engine} target has no schemas")),
            "{engine}: {err}"
        );
        let other = if engine == "mysql" { "sqlite" } else { "mysql" };
        assert!(
            !err.contains(other) && !err.contains("SQLite"),
            "{engine}: {err}"
        );
        let (code, _, err) = run(&["status", &url, "--target-schema", "legacy"]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(&format!("a {engine} target has no schemas")),
            "{err}"
        );
    }
    assert!(!fx.path("t.db").exists());
}

/// A failed (or dry) import into a new SQLite path leaves no file behind; a database that
/// existed stays.
#[test]
fn a_failed_import_into_a_new_sqlite_path_leaves_no_file() {
    let fx = fixture();
    let b = fx.export("b");
    let key = fx.key.to_str().unwrap();
    let new = fx.path("new.db");
    let url = format!("sqlite://{}", new.display());
    // Upsert is refused after the target is opened: `notes` has no primary key.
    let (code, _, err) = run(&[
        "import",
        b.to_str().unwrap(),
        &url,
        "--key-file",
        key,
        "--mode",
        "upsert",
    ]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        files_under(fx.dir.path())
            .iter()
            .filter(|f| f.starts_with("new.db"))
            .count(),
        0
    );
    let (code, _, err) = run(&[
        "import",
        b.to_str().unwrap(),
        &url,
        "--key-file",
        key,
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!new.exists());
    // An existing (empty) database is the operator's: it stays.
    std::fs::write(&new, b"").unwrap();
    let (code, _, _) = run(&[
        "import",
        b.to_str().unwrap(),
        &url,
        "--key-file",
        key,
        "--mode",
        "upsert",
    ]);
    assert_eq!(code, 2);
    assert!(new.exists());
    // A run that writes keeps it.
    std::fs::remove_file(&new).unwrap();
    fx.import_to(&b, &url, &[]);
    assert!(new.exists());
}

/// MariaDB ends messages with the position inside ferry's own statement (`at row 948`):
/// noise for the operator, who gets the part's row from ferry instead.
#[test]
fn mariadb_messages_carry_no_statement_position() {
    let Some(db) = MyDb::new("noise") else { return };
    let fx = fixture();
    let b = fx.export("b");
    my(&db.url, "CREATE TABLE notes (id int, body varchar(2))");
    let (code, _, err) = run(&[
        "import",
        b.to_str().unwrap(),
        &db.url,
        "--key-file",
        fx.key.to_str().unwrap(),
        "--table",
        "notes",
        "--mode",
        "append",
    ]);
    assert_eq!(code, 65, "{err}");
    // The server's words: an INSERT's "Data too long", a LOAD DATA's "Data truncated".
    assert!(
        err.contains("Data too long for column 'body'")
            || err.contains("Data truncated for column 'body'"),
        "{err}"
    );
    assert!(!err.contains(" at row "), "{err}");
    assert!(err.contains("row 1 of part"), "{err}");
}
