//! Review 13 (a): `ferry decrypt` gives every table its own directory and never overwrites
//! a file; a passphrase passed to `--passphrase-env` by mistake is never echoed; a key
//! option (or FERRY_KEY_FILE) with `export --no-encrypt` is a usage error, nothing written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::common::{ferry, fixture};
use crate::servers::{PgDb, psql};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(c: &mut assert_cmd::Command) -> Out {
    let o = c.output().expect("ferry runs");
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `ferry decrypt BUNDLE DIR --key-file K`, asserted to succeed.
fn decrypt(bundle: &Path, dir: &Path, key: &Path) {
    let out = run(ferry().args(["decrypt", s(bundle), s(dir), "--key-file", s(key)]));
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
}

/// Rows of every Parquet file under `dir`, by the file's path relative to `dir` (read with
/// the parquet crate alone).
fn part_rows(dir: &Path) -> BTreeMap<PathBuf, i64> {
    let mut out = BTreeMap::new();
    for d in std::fs::read_dir(dir).unwrap() {
        let d = d.unwrap().path();
        if !d.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&d).unwrap() {
            let f = f.unwrap().path();
            assert!(
                f.extension().is_some_and(|e| e == "parquet"),
                "stray file {}",
                f.display()
            );
            let reader = SerializedFileReader::new(std::fs::File::open(&f).unwrap()).unwrap();
            out.insert(
                f.strip_prefix(dir).unwrap().to_path_buf(),
                reader.metadata().file_metadata().num_rows(),
            );
        }
    }
    out
}

/// The decrypted catalog.json's `(schema, name) -> directory` of every table.
fn catalog_dirs(dir: &Path) -> BTreeMap<(Option<String>, String), String> {
    let cat: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("catalog.json")).unwrap()).unwrap();
    cat["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let schema = t["table"]["schema"].as_str().map(str::to_string);
            let name = t["table"]["name"].as_str().unwrap().to_string();
            let d = t["directory"]
                .as_str()
                .unwrap_or_else(|| panic!("no directory for {name}: {t}"))
                .to_string();
            ((schema, name), d)
        })
        .collect()
}

/// Rows under one table directory (all its parts).
fn rows_in(all: &BTreeMap<PathBuf, i64>, d: &str) -> i64 {
    all.iter()
        .filter(|(p, _)| p.parent() == Some(Path::new(d)))
        .map(|(_, n)| n)
        .sum()
}

/// a."b.c" and "a.b".c both read `a.b.c`: each gets its own directory, with its own rows,
/// recorded in catalog.json; and a table catalog.json does not meet the catalog's file.
#[test]
fn decrypt_keeps_tables_whose_qualified_names_read_alike_apart() {
    let Some(src) = PgDb::new("r13a_dec") else {
        return;
    };
    psql(
        &src.url,
        r#"CREATE SCHEMA a; CREATE SCHEMA "a.b";
           CREATE TABLE a."b.c" (id int, v text);
           INSERT INTO a."b.c" VALUES (1, 'first'), (2, 'second');
           CREATE TABLE "a.b".c (id int, v text);
           INSERT INTO "a.b".c VALUES (3, 'third');"#,
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let out = fx.path("plain");
    decrypt(&b, &out, &fx.key);

    // Two part files, one per table, each with its own rows: none written over the other.
    let parts = part_rows(&out);
    assert_eq!(parts.len(), 2, "{parts:?}");
    let mut rows: Vec<i64> = parts.values().copied().collect();
    rows.sort();
    assert_eq!(rows, vec![1, 2], "{parts:?}");

    let dirs = catalog_dirs(&out);
    let dir_of = |schema: &str, name: &str| -> String {
        dirs.get(&(Some(schema.to_string()), name.to_string()))
            .unwrap_or_else(|| panic!("{schema}.{name} not in {dirs:?}"))
            .clone()
    };
    let (abc, ab_c) = (dir_of("a", "b.c"), dir_of("a.b", "c"));
    assert_ne!(abc, ab_c);
    assert_eq!(rows_in(&parts, &abc), 2, "{parts:?}");
    assert_eq!(rows_in(&parts, &ab_c), 1, "{parts:?}");
    // Still readable: the escaped qualified name comes first.
    assert!(
        abc.starts_with("a.b.c-") && ab_c.starts_with("a.b.c-"),
        "{dirs:?}"
    );
}

/// A table catalog.json (schema `catalog`) does not meet the decrypted catalog's own file.
#[test]
fn decrypt_gives_a_table_named_like_the_catalog_file_its_own_directory() {
    let Some(src) = PgDb::new("r13a_cat") else {
        return;
    };
    psql(
        &src.url,
        "CREATE SCHEMA catalog; CREATE TABLE catalog.json (id int);
         INSERT INTO catalog.json VALUES (4), (5), (6);",
    );
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &[]);
    let out = fx.path("plain");
    decrypt(&b, &out, &fx.key);
    let parts = part_rows(&out);
    assert_eq!(parts.values().copied().collect::<Vec<_>>(), vec![3]);
    let dirs = catalog_dirs(&out);
    let d = &dirs[&(Some("catalog".into()), "json".into())];
    assert!(d.starts_with("catalog.json-"), "{d}");
    assert_eq!(rows_in(&parts, d), 3, "{parts:?}");
}

/// Names past the length of a directory name's readable prefix, alike in it: still apart.
#[test]
fn decrypt_keeps_long_table_names_apart() {
    let fx = fixture();
    let db = fx.path("long.db");
    let stem = "x".repeat(110);
    let (t1, t2) = (format!("{stem}_one"), format!("{stem}_two"));
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TABLE {t1} (id INTEGER); INSERT INTO {t1} VALUES (1), (2);
             CREATE TABLE {t2} (id INTEGER); INSERT INTO {t2} VALUES (3);"
        ))
        .unwrap();
    let b = fx.path("b");
    fx.export_to(&format!("sqlite://{}", s(&db)), &b, &[]);
    let out = fx.path("plain");
    decrypt(&b, &out, &fx.key);
    let parts = part_rows(&out);
    assert_eq!(parts.len(), 2, "{parts:?}");
    let dirs = catalog_dirs(&out);
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    let d1 = &dirs[&(None, t1)];
    let d2 = &dirs[&(None, t2)];
    assert_ne!(d1, d2);
    assert_eq!(rows_in(&parts, d1), 2, "{parts:?}");
    assert_eq!(rows_in(&parts, d2), 1, "{parts:?}");
    for d in [d1, d2] {
        assert!(d.len() < 100 && d.starts_with(&"x".repeat(40)), "{d}");
    }
    // A simple name keeps its own spelling.
    let plain = fx.path("plain-fixture");
    decrypt(&fx.export("b2"), &plain, &fx.key);
    assert!(plain.join("items/part-00000.parquet").exists());
    assert!(plain.join("notes/part-00000.parquet").exists());
}

/// The directory names themselves: one per (schema, name), whatever the spelling.
#[test]
fn table_directory_names_are_distinct_per_schema_and_name() {
    use ferry::decrypt::table_dir_name;
    let long = "n".repeat(300);
    let pairs: Vec<(Option<&str>, String)> = vec![
        (Some("a"), "b.c".into()),
        (Some("a.b"), "c".into()),
        (None, "a.b.c".into()),
        (Some("a"), "b".into()),
        (None, "a.b".into()),
        (None, "items".into()),
        (None, "Items".into()),
        (None, "ITEMS".into()),
        (Some("public"), "items".into()),
        (None, "public.items".into()),
        (Some("catalog"), "json".into()),
        (None, "catalog.json".into()),
        (None, ".".into()),
        (None, "..".into()),
        (None, "".into()),
        (Some(""), "".into()),
        (None, "a/b".into()),
        (None, "a_b".into()),
        (None, "a-b".into()),
        (None, format!("{long}1")),
        (None, format!("{long}2")),
        (Some(&long), "1".into()),
        (Some(&long), "2".into()),
    ];
    let mut seen = std::collections::HashMap::new();
    for (schema, name) in &pairs {
        let d = table_dir_name(*schema, name);
        assert!(!d.is_empty() && d.len() <= 100, "{d}");
        assert!(!d.starts_with('.') && !d.contains('/'), "{d}");
        assert_ne!(d, "catalog.json");
        // Apart also on a case-insensitive file system.
        if let Some(other) = seen.insert(d.to_ascii_lowercase(), (schema, name)) {
            panic!("{other:?} and {:?} both give {d}", (schema, name));
        }
        assert_eq!(d, table_dir_name(*schema, name), "stable");
    }
}

/// The passphrase given where the NAME of its variable belongs: refused, and never repeated
/// on stderr or stdout, with or without --json, by any command.
#[test]
fn a_passphrase_given_to_passphrase_env_is_never_echoed() {
    let fx = fixture();
    let b = fx.export("b");
    let secret = "hunter2 correct-horse secret";
    let dst = format!("sqlite://{}", s(&fx.path("dst.db")));
    let src = fx.src_url();
    let (new, plain) = (fx.path("new"), fx.path("plain"));
    let commands: Vec<Vec<&str>> = vec![
        vec!["export", &src, s(&new)],
        vec!["import", s(&b), &dst],
        vec!["verify", s(&b)],
        vec!["inspect", s(&b)],
        vec!["decrypt", s(&b), s(&plain)],
    ];
    for cmd in &commands {
        // No variable of that name (the usual case), and one that exists: either way the
        // value is refused, unread.
        for (json, set) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut c = ferry();
            if json {
                c.arg("--json");
            }
            if set {
                c.env(secret, "whatever");
            }
            let out = run(c.args(cmd).args(["--passphrase-env", secret]));
            let what = format!("{cmd:?} json={json} set={set}");
            for (stream, text) in [("stderr", &out.stderr), ("stdout", &out.stdout)] {
                assert!(
                    !text.contains("hunter2") && !text.contains("horse"),
                    "{what}: the passphrase is on {stream}: {text}"
                );
            }
            assert_eq!(out.code, Some(2), "{what}: {}{}", out.stdout, out.stderr);
            assert!(
                out.stderr.contains(
                    "the value given to --passphrase-env is not an environment variable name"
                ),
                "{what}: {}",
                out.stderr
            );
            if json {
                let r: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
                assert_eq!(r["exit_code"], 2, "{what}: {r}");
                assert!(
                    r["message"]
                        .as_str()
                        .unwrap()
                        .contains("not an environment variable name"),
                    "{what}: {r}"
                );
            }
        }
    }
    assert!(!fx.path("new").join("manifest.json").exists());
    assert!(!fx.path("dst.db").exists());
    assert!(!fx.path("plain").exists());

    // A name is still a name: an unset variable is named in the message.
    let out = run(ferry().args(["verify", s(&b), "--passphrase-env", "FERRY_R13A_UNSET"]));
    assert_eq!(out.code, Some(77), "{}", out.stderr);
    assert!(out.stderr.contains("FERRY_R13A_UNSET"), "{}", out.stderr);
}

/// One case: its label, extra arguments, environment, and the option the error names.
type Case<'a> = (&'a str, Vec<String>, Vec<(&'a str, String)>, &'a str);

/// `--no-encrypt` with a key option, or with FERRY_KEY_FILE set: exit 2, naming the
/// option, and no bundle written.
#[test]
fn no_encrypt_with_a_key_option_is_a_usage_error() {
    let fx = fixture();
    let src = fx.src_url();
    let cases: Vec<Case<'_>> = vec![
        (
            "--key-file",
            vec!["--key-file".into(), s(&fx.key).into()],
            vec![],
            "--key-file",
        ),
        (
            "--passphrase-env",
            vec!["--passphrase-env".into(), "FERRY_R13A_PW".into()],
            vec![("FERRY_R13A_PW", "a passphrase".into())],
            "--passphrase-env",
        ),
        (
            "FERRY_KEY_FILE",
            vec![],
            vec![("FERRY_KEY_FILE", s(&fx.key).into())],
            "FERRY_KEY_FILE",
        ),
        (
            "FERRY_KEY_FILE naming no file",
            vec![],
            vec![("FERRY_KEY_FILE", s(&fx.path("missing.key")).into())],
            "FERRY_KEY_FILE",
        ),
    ];
    for (i, (what, args, env, needle)) in cases.iter().enumerate() {
        for json in [false, true] {
            let b = fx.path(&format!("b{i}-{json}"));
            let mut c = ferry();
            if json {
                c.arg("--json");
            }
            c.args(["export", &src, s(&b), "--no-encrypt"]).args(args);
            for (k, v) in env {
                c.env(k, v);
            }
            let out = run(&mut c);
            assert_eq!(
                out.code,
                Some(2),
                "{what} json={json}: {}{}",
                out.stdout,
                out.stderr
            );
            assert!(
                out.stderr.contains("--no-encrypt conflicts with") && out.stderr.contains(needle),
                "{what}: {}",
                out.stderr
            );
            assert!(!out.stderr.contains("a passphrase"), "{}", out.stderr);
            if json {
                let r: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
                assert_eq!(r["exit_code"], 2, "{r}");
                assert!(r["message"].as_str().unwrap().contains(needle), "{r}");
            }
            assert!(!b.exists(), "{what}: {} was created", b.display());
        }
    }
    // With no key anywhere, --no-encrypt still writes a plain bundle.
    let b = fx.path("plain");
    let out = run(ferry().args(["export", &src, s(&b), "--no-encrypt"]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(b.join("manifest.json").exists());
}
