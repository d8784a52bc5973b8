//! Issue #13, "No downgrade": a plain (`--no-encrypt`) bundle has no MAC and proves nothing.
//! A key option given for one is refused (exit 77, nothing written), `import` and `decrypt`
//! take one only with `--allow-unencrypted`, every report says `encrypted` and
//! `authenticated`, bundle strings are printed escaped, and a catalog with trailing bytes is
//! refused.

use std::path::{Path, PathBuf};

use ferry::bundle::Manifest;
use ferry::crypto::cobblestone::{decrypt_all, encrypt_to_vec};
use ferry::crypto::envelope::{DataKey, file_context};
use ferry::crypto::keys::{KeyFileKey, Keys};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::common::{Fixture, dump, ferry, fixture, ledger_rows, manifest, user_tables};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn sqlite(p: &Path) -> String {
    format!("sqlite://{}", s(p))
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

/// Exit 77 with the downgrade message, naming the bundle.
#[track_caller]
fn assert_downgrade(out: &Out, bundle: &Path, needles: &[&str]) {
    assert_eq!(
        out.code,
        Some(77),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    let msg = out
        .stderr
        .split_once("error: ")
        .map(|(_, m)| m)
        .unwrap_or_default();
    assert!(
        msg.starts_with("bundle is NOT encrypted"),
        "stderr: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(s(bundle)),
        "bundle not named: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("anyone who could write the bundle could have made it"),
        "{}",
        out.stderr
    );
    for n in needles {
        assert!(out.stderr.contains(n), "{n:?} not in: {}", out.stderr);
    }
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

/// `ferry export SRC BUNDLE --no-encrypt EXTRA…`
fn export_plain(src: &str, b: &Path, extra: &[&str]) {
    ferry()
        .args(["export", src, s(b), "--no-encrypt"])
        .args(extra)
        .assert()
        .success();
}

/// The report schema, compiled.
fn report_schema() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/report.v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// A `--json` report, checked against the schema.
#[track_caller]
fn json_report(out: &Out) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr));
    let errs: Vec<String> = report_schema()
        .iter_errors(&v)
        .map(|e| e.to_string())
        .collect();
    assert!(errs.is_empty(), "{errs:?}");
    v
}

#[track_caller]
fn assert_trust(v: &serde_json::Value, encrypted: bool, authenticated: bool) {
    assert_eq!(v["encrypted"], encrypted, "{v}");
    assert_eq!(v["authenticated"], authenticated, "{v}");
}

/// The attack: a plain bundle with the genuine source id and the largest sequence,
/// imported with the receiver's key. Refused (77) before the target is touched, and the
/// genuine chain goes on.
#[test]
fn a_forged_plain_bundle_with_the_genuine_source_id_is_refused_and_the_chain_is_unaffected() {
    let fx = fixture();
    let g1 = fx.export("genuine-1");
    let source_id = manifest(&g1)["source_id"].as_str().unwrap().to_string();

    let evil = fx.path("evil.db");
    Connection::open(&evil)
        .unwrap()
        .execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price DECIMAL(10,2), payload BLOB);
             INSERT INTO items VALUES (1, 'attacker', 0, x'00');",
        )
        .unwrap();
    let forged = fx.path("forged");
    export_plain(
        &sqlite(&evil),
        &forged,
        &["--source-id", &source_id, "--sequence", "9007199254740991"],
    );
    assert_eq!(manifest(&forged)["source_id"], source_id.as_str());

    // A fresh target: not even created.
    let fresh = fx.path("fresh.db");
    for extra in [&["--mode", "upsert"][..], &["--allow-unencrypted"][..]] {
        let out = run(ferry()
            .args([
                "import",
                s(&forged),
                &sqlite(&fresh),
                "--key-file",
                s(&fx.key),
            ])
            .args(extra));
        assert_downgrade(&out, &forged, &["--key-file"]);
        assert!(!fresh.exists(), "the target was created");
        assert_eq!(user_tables(&fresh), Vec::<String>::new());
        assert_eq!(ledger_rows(&fresh), 0);
    }
    // The key from the environment, and a passphrase, are key options too.
    let out =
        run(ferry()
            .env("FERRY_KEY_FILE", &fx.key)
            .args(["import", s(&forged), &sqlite(&fresh)]));
    assert_downgrade(&out, &forged, &[]);
    let out = run(ferry().env("FERRY_TEST_PW", "a passphrase").args([
        "import",
        s(&forged),
        &sqlite(&fresh),
        "--passphrase-env",
        "FERRY_TEST_PW",
    ]));
    assert_downgrade(&out, &forged, &[]);
    assert!(!fresh.exists(), "the target was created");

    // A target that holds the genuine chain: unchanged, and the next genuine bundle loads.
    let dst = fx.path("dst.db");
    fx.import_to(&g1, &sqlite(&dst), &[]);
    let (before, ledger_before) = (dump(&dst), ledger_rows(&dst));
    assert!(ledger_before > 0);
    let out = run(ferry().args([
        "import",
        s(&forged),
        &sqlite(&dst),
        "--key-file",
        s(&fx.key),
        "--mode",
        "upsert",
    ]));
    assert_downgrade(&out, &forged, &[]);
    assert_eq!(dump(&dst), before);
    assert_eq!(ledger_rows(&dst), ledger_before);

    let g2 = fx.export("genuine-2");
    assert_eq!(manifest(&g2)["source_id"], source_id.as_str());
    let out = fx.import_to(&g2, &sqlite(&dst), &["--mode", "replace"]);
    assert!(!out.contains("replay"), "{out}");
    assert_eq!(dump(&dst), dump(&fx.src));
}

/// verify, inspect and decrypt refuse a key for a plain bundle the same way.
#[test]
fn verify_inspect_and_decrypt_refuse_a_key_for_a_plain_bundle() {
    let fx = fixture();
    let b = fx.path("plain");
    export_plain(&fx.src_url(), &b, &[]);
    let dir = fx.path("out");
    let key = ["--key-file", s(&fx.key)];
    let commands: [Vec<&str>; 3] = [
        vec!["verify", s(&b)],
        vec!["inspect", s(&b)],
        vec!["decrypt", s(&b), s(&dir)],
    ];
    for cmd in &commands {
        assert_downgrade(&run(ferry().args(cmd).args(key)), &b, &["--key-file"]);
        assert_downgrade(
            &run(ferry().args(cmd).env("FERRY_KEY_FILE", &fx.key)),
            &b,
            &[],
        );
        assert_downgrade(
            &run(ferry()
                .args(cmd)
                .args(["--passphrase-env", "FERRY_TEST_PW"])
                .env("FERRY_TEST_PW", "a passphrase")),
            &b,
            &[],
        );
        // --json: the failure in the report's shape, exit 77.
        let out = run(ferry().args(cmd).args(key).arg("--json"));
        assert_eq!(out.code, Some(77));
        let v = json_report(&out);
        assert_eq!(v["exit_code"], 77);
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .starts_with("bundle is NOT encrypted")
        );
    }
    // decrypt with --allow-unencrypted and a key: still refused.
    assert_downgrade(
        &run(ferry()
            .args(["decrypt", s(&b), s(&dir), "--allow-unencrypted"])
            .args(key)),
        &b,
        &[],
    );
    assert!(!dir.exists(), "decrypt wrote {}", dir.display());
}

/// import and decrypt take a plain bundle only with --allow-unencrypted; the report then says
/// it is neither encrypted nor authenticated.
#[test]
fn import_and_decrypt_take_a_plain_bundle_only_with_allow_unencrypted() {
    let fx = fixture();
    let b = fx.path("plain");
    export_plain(&fx.src_url(), &b, &[]);
    let dst = fx.path("dst.db");
    let dir = fx.path("out");

    let out = run(ferry().args(["import", s(&b), &sqlite(&dst)]));
    assert_downgrade(&out, &b, &["--allow-unencrypted"]);
    assert!(!dst.exists(), "the target was created");
    let out = run(ferry().args(["decrypt", s(&b), s(&dir)]));
    assert_downgrade(&out, &b, &["--allow-unencrypted"]);
    assert!(!dir.exists(), "decrypt wrote {}", dir.display());

    let out = run(ferry().args([
        "import",
        s(&b),
        &sqlite(&dst),
        "--allow-unencrypted",
        "--json",
    ]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = json_report(&out);
    assert_trust(&v, false, false);
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("NOT encrypted")),
        "{v}"
    );
    assert_eq!(dump(&dst), dump(&fx.src));

    let out = run(ferry().args(["decrypt", s(&b), s(&dir), "--allow-unencrypted", "--json"]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_trust(&json_report(&out), false, false);
    assert!(dir.join("catalog.json").exists());

    // The text summary says it too.
    let dir2 = fx.path("out2");
    let out = run(ferry().args(["decrypt", s(&b), s(&dir2), "--allow-unencrypted"]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("bundle: NOT encrypted, NOT authenticated"),
        "{}",
        out.stdout
    );

    // An encrypted bundle is unaffected by the flag, and reports what it proves.
    let e = fx.export("enc");
    let dst2 = fx.path("dst2.db");
    let out = run(ferry().args([
        "import",
        s(&e),
        &sqlite(&dst2),
        "--key-file",
        s(&fx.key),
        "--json",
    ]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_trust(&json_report(&out), true, true);
}

/// verify and inspect of a plain bundle without a key still work and say it is
/// unauthenticated; keyless verify of an encrypted bundle is not authenticated either.
#[test]
fn verify_and_inspect_say_what_a_bundle_proves() {
    let fx = fixture();
    let plain = fx.path("plain");
    export_plain(&fx.src_url(), &plain, &[]);
    let enc = fx.export("enc");
    let key = ["--key-file", s(&fx.key)];

    let out = run(ferry().args(["verify", s(&plain), "--json"]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_trust(&json_report(&out), false, false);
    let out = run(ferry().args(["verify", s(&plain)]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("NOT authenticated"), "{}", out.stdout);
    assert!(!out.stdout.contains("the key opens it"), "{}", out.stdout);

    let out = run(ferry().args(["verify", s(&enc), "--json"]));
    assert_trust(&json_report(&out), true, false);
    let out = run(ferry().args(["verify", s(&enc), "--json"]).args(key));
    assert_trust(&json_report(&out), true, true);

    let inspect = |b: &Path, args: &[&str]| {
        let out = run(ferry().args(["inspect", s(b), "--json"]).args(args));
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_trust(&inspect(&plain, &[]), false, false);
    assert_trust(&inspect(&enc, &[]), true, false);
    assert_trust(&inspect(&enc, &key), true, true);
    let out = run(ferry().args(["inspect", s(&plain)]));
    assert!(
        out.stdout
            .contains("trust       NOT encrypted, NOT authenticated"),
        "{}",
        out.stdout
    );
}

/// Terminal escapes in a manifest read without a key, and in a file name in the bundle
/// directory, are printed escaped by inspect and verify.
#[test]
fn inspect_and_verify_print_bundle_strings_escaped() {
    let fx = fixture();
    let b = fx.export("enc");
    let hostile = "\u{1b}]0;owned\u{7}\u{1b}[2K\r\u{9b}31mverified OK\n";
    let mut m = manifest(&b);
    m["tool_version"] = serde_json::json!(hostile);
    std::fs::write(b.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    std::fs::write(b.join("\u{1b}[31mevil"), b"x").unwrap();

    let clean = |out: &Out| {
        for text in [&out.stdout, &out.stderr] {
            for bad in ['\u{1b}', '\u{7}', '\r', '\u{9b}'] {
                assert!(!text.contains(bad), "{bad:?} printed raw: {text:?}");
            }
        }
    };
    let out = run(ferry().args(["inspect", s(&b)]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    clean(&out);
    assert!(out.stdout.contains("\\u{1b}]0;owned"), "{}", out.stdout);
    assert!(out.stdout.contains("\\u{1b}[31mevil"), "{}", out.stdout);
    assert!(
        !out.stdout.lines().any(|l| l.starts_with("verified OK")),
        "{}",
        out.stdout
    );
    // JSON escapes control characters by itself.
    // (U+009B, CSI in C1, stays raw inside a JSON string: --json is for programs.)
    let out = run(ferry().args(["inspect", s(&b), "--json"]));
    assert!(!out.stdout.contains('\u{1b}') && !out.stdout.contains('\r'));
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["tool_version"], hostile);

    let out = run(ferry().args(["verify", s(&b)]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    clean(&out);
    assert!(out.stdout.contains("\\u{1b}[31mevil"), "{}", out.stdout);
    // With the key the MAC catches the edit; the error is printed escaped too.
    let out = run(ferry().args(["verify", s(&b), "--key-file", s(&fx.key), "--strict"]));
    assert_eq!(out.code, Some(65), "{}", out.stderr);
    clean(&out);
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Appends `tail` to the catalog's plaintext (re-encrypted with the bundle's own file key
/// when `key` is given, and the MAC recomputed: an insider) and fixes the manifest.
fn append_to_catalog(b: &Path, key: Option<&Path>, tail: &[u8]) -> PathBuf {
    let mut m: Manifest =
        serde_json::from_slice(&std::fs::read(b.join("manifest.json")).unwrap()).unwrap();
    let cat = b.join(&m.catalog.path);
    let stored = std::fs::read(&cat).unwrap();
    let dk = key.map(|k| {
        let (k, _) = KeyFileKey::load(k).unwrap();
        let keys = Keys {
            key_files: vec![k],
            passphrases: vec![],
            ..Default::default()
        };
        DataKey::unwrap(&m.bundle_id, &m.encryption.key_slots, &keys).unwrap()
    });
    let ctx = file_context(&m.bundle_id, "catalog", &m.catalog.path);
    let new = match &dk {
        Some(dk) => {
            let fk = dk.file_key(&m.bundle_id);
            let mut plain = decrypt_all(&fk, &ctx, &stored).unwrap();
            plain.extend_from_slice(tail);
            encrypt_to_vec(&fk, &ctx, &plain).unwrap()
        }
        None => [&stored[..], tail].concat(),
    };
    std::fs::write(&cat, &new).unwrap();
    m.catalog.size = u64::try_from(new.len()).unwrap();
    m.catalog.sha256 = sha256_hex(&new);
    let bytes = m.to_json();
    std::fs::write(b.join("manifest.json"), &bytes).unwrap();
    if let Some(dk) = dk {
        let mac = dk.manifest_mac(&m.bundle_id, &bytes);
        std::fs::write(b.join("manifest.mac"), format!("{mac}\n")).unwrap();
    }
    cat
}

/// Bytes after the catalog's JSON document are refused, plain or encrypted.
#[test]
fn trailing_bytes_after_the_catalog_are_refused() {
    let fx: Fixture = fixture();
    let plain = fx.path("plain");
    export_plain(&fx.src_url(), &plain, &[]);
    append_to_catalog(&plain, None, b"\n{\"tables\": []}");
    let dst = fx.path("dst.db");
    let out = run(ferry().args(["import", s(&plain), &sqlite(&dst), "--allow-unencrypted"]));
    assert_eq!(out.code, Some(65), "{}", out.stderr);
    assert!(out.stderr.contains("catalog.json"), "{}", out.stderr);
    assert!(out.stderr.contains("data after"), "{}", out.stderr);
    assert_eq!(ledger_rows(&dst), 0);
    assert!(user_tables(&dst).iter().all(|t| t == "_ferry_ledger"));

    let enc = fx.export("enc");
    append_to_catalog(&enc, Some(&fx.key), b" x");
    let out = run(ferry().args(["verify", s(&enc), "--key-file", s(&fx.key)]));
    assert_eq!(out.code, Some(65), "{}", out.stderr);
    assert!(out.stderr.contains("catalog.fe"), "{}", out.stderr);
    assert!(out.stderr.contains("data after"), "{}", out.stderr);
    // Trailing whitespace is still JSON.
    let ws = fx.export("ws");
    append_to_catalog(&ws, Some(&fx.key), b"\n\n");
    let out = run(ferry().args(["verify", s(&ws), "--key-file", s(&fx.key)]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn decrypt_writes_plaintext_private_and_the_sqlite_lock_follows_no_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let fx = crate::common::fixture();
    let b = fx.export("b");
    let out = fx.path("plain");
    crate::common::ferry()
        .args([
            "decrypt",
            b.to_str().unwrap(),
            out.to_str().unwrap(),
            "--key-file",
        ])
        .arg(&fx.key)
        .assert()
        .success();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out), 0o700);
    assert_eq!(mode(&out.join("catalog.json")), 0o600);
    let mut files = 0;
    for d in std::fs::read_dir(&out).unwrap() {
        let d = d.unwrap().path();
        if d.is_dir() {
            assert_eq!(mode(&d), 0o700, "{}", d.display());
            for f in std::fs::read_dir(&d).unwrap() {
                assert_eq!(mode(&f.unwrap().path()), 0o600);
                files += 1;
            }
        }
    }
    assert!(files >= 2, "{files} part files");

    // A lock file planted as a symlink onto another file: refused, the file untouched.
    let victim = fx.path("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let db = fx.path("t.db");
    std::os::unix::fs::symlink(&victim, fx.path("t.db.ferry-lock")).unwrap();
    let res = crate::common::ferry()
        .args(["import", b.to_str().unwrap()])
        .arg(format!("sqlite://{}", db.display()))
        .arg("--key-file")
        .arg(&fx.key)
        .output()
        .unwrap();
    assert!(!res.status.success());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}

#[test]
fn importing_as_a_postgresql_superuser_is_warned_about() {
    let Some(dst) = crate::servers::PgDb::new("superuser") else {
        return;
    };
    let super_ = crate::servers::psql(
        &dst.url,
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
    );
    let fx = crate::common::fixture();
    let b = fx.export("b");
    let out = fx.import_to(&b, &dst.url, &[]);
    assert_eq!(
        out.contains("the importing role is a PostgreSQL superuser"),
        super_ == "t",
        "{out}"
    );
}

#[test]
fn every_existing_table_a_bundle_writes_into_is_named_in_the_plan_and_the_summary() {
    let fx = crate::common::fixture();
    let b = fx.export("b");
    let db = fx.path("t.db");
    let url = format!("sqlite://{}", db.display());
    fx.import_to(&b, &url, &["--table", "notes"]);
    let b2 = fx.export("b2");
    for extra in [&["--dry-run"][..], &[][..]] {
        let out = crate::common::ferry()
            .args([
                "import",
                b2.to_str().unwrap(),
                &url,
                "--mode",
                "append",
                "--key-file",
            ])
            .arg(&fx.key)
            .args(extra)
            .assert()
            .success();
        let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(
            text.contains("writes into 1 existing table of the target (--mode append): notes"),
            "{extra:?}: {text}"
        );
    }
}

/// The file key of bundle `b` (opened with key file `key`) and its manifest.
fn file_key_of(b: &Path, key: &Path) -> (Manifest, zeroize::Zeroizing<[u8; 32]>) {
    let m: Manifest =
        serde_json::from_slice(&std::fs::read(b.join("manifest.json")).unwrap()).unwrap();
    let (k, _) = KeyFileKey::load(key).unwrap();
    let keys = Keys {
        key_files: vec![k],
        ..Default::default()
    };
    let dk = DataKey::unwrap(&m.bundle_id, &m.encryption.key_slots, &keys).unwrap();
    let fk = dk.file_key(&m.bundle_id);
    (m, fk)
}

/// The path of part `index` of table `table`, from `inspect --json` with the key (none:
/// a plain bundle).
fn part_path(b: &Path, key: Option<&Path>, table: &str, index: u64) -> String {
    let mut c = ferry();
    c.args(["inspect", s(b), "--json"]);
    if let Some(k) = key {
        c.args(["--key-file", s(k)]);
    }
    let out = run(&mut c);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    v["catalog"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"]["name"] == table)
        .unwrap()["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["index"] == index)
        .unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs `ferry --quiet ARGS…` paused at `point` 1 (`FERRY_PAUSE_AT`), calls `change` while
/// it waits, and returns its exit code and stderr once it is done.
fn run_changed_mid_way(args: &[&str], point: &str, change: impl FnOnce()) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let err_file = dir.path().join("stderr");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"))
        .arg("--quiet")
        .args(args)
        .env_remove("FERRY_KEY_FILE")
        .env_remove("FERRY_IDENTITY")
        .env("FERRY_PAUSE_AT", format!("{point}:1"))
        .env("FERRY_PAUSE_SECS", "2")
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    let paused = format!("ferry: paused at {point} 1");
    crate::common::wait_until(
        "the command to pause",
        std::time::Duration::from_secs(120),
        || std::fs::read_to_string(&err_file).is_ok_and(|e| e.contains(&paused)),
    );
    change();
    let status = child.wait().unwrap();
    (status.code(), std::fs::read_to_string(&err_file).unwrap())
}

/// A copy of the fixture's source database with every item renamed 'EVIL' (the forgery's
/// rows: same keys and shape, other content).
fn evil_copy(fx: &Fixture) -> PathBuf {
    let forged_db = fx.path("forged.db");
    std::fs::copy(&fx.src, &forged_db).unwrap();
    Connection::open(&forged_db)
        .unwrap()
        .execute_batch("UPDATE items SET name = 'EVIL';")
        .unwrap();
    forged_db
}

/// Rows of the forgery ([`evil_copy`]) that reached the SQLite database `db`.
fn evil_rows(db: &Path) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM items WHERE name = 'EVIL'", [], |r| {
            r.get(0)
        })
        .unwrap()
}

/// Parquet file `forged` padded to `len` bytes with zeros before its footer (readers skip
/// them: the footer's offsets are absolute), so a swap changes content, not size.
fn padded_to(forged: &[u8], len: usize) -> Vec<u8> {
    let n = forged.len();
    assert!(
        len >= n,
        "the forged part ({n} bytes) must not be larger than the genuine ({len})"
    );
    let footer = u32::from_le_bytes(forged[n - 8..n - 4].try_into().unwrap()) as usize;
    let cut = n - 8 - footer;
    [&forged[..cut], &vec![0u8; len - n][..], &forged[cut..]].concat()
}

/// A key holder (any slot's key gives the file key) who can write to the bundle while it
/// is imported swaps a part after the verification pass read it: a part re-encrypted with
/// the bundle's own file key passes AES-GCM, so the loading read checks each run of chunks
/// against the digests the verification pass took. The swapped part is refused (65) with
/// nothing of it committed, none of its rows reach the target, and once the genuine part is
/// back a re-run completes exactly.
#[test]
fn a_part_rewritten_by_a_key_holder_during_the_import_is_refused() {
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&fx.src_url(), &b, &["--max-part-rows", "500"]);
    // The forgery: the same rows with other names, exported with the same key.
    let forged_db = evil_copy(&fx);
    let fb = fx.path("fb");
    fx.export_to(&sqlite(&forged_db), &fb, &["--max-part-rows", "500"]);
    let last = 5;
    let (fm, ffk) = file_key_of(&fb, &fx.key);
    let fpath = part_path(&fb, Some(&fx.key), "items", last);
    let fplain = decrypt_all(
        &ffk,
        &file_context(&fm.bundle_id, "part", &fpath),
        &std::fs::read(fb.join(&fpath)).unwrap(),
    )
    .unwrap();
    let (m, fk) = file_key_of(&b, &fx.key);
    let path = part_path(&b, Some(&fx.key), "items", last);
    let ctx = file_context(&m.bundle_id, "part", &path);
    let genuine = std::fs::read(b.join(&path)).unwrap();
    // The forged Parquet padded to the genuine part's size (zeros before its footer, which
    // readers skip): the same stored size, so only the content differs.
    let want = decrypt_all(&fk, &ctx, &genuine).unwrap().len();
    let swapped = encrypt_to_vec(&fk, &ctx, &padded_to(&fplain, want)).unwrap();
    assert_eq!(swapped.len(), genuine.len());

    // The import pauses after its first commit (well after the verification pass); the
    // part is swapped then.
    let db = fx.path("t.db");
    let (code, err) = run_changed_mid_way(
        &["import", s(&b), &sqlite(&db), "--key-file", s(&fx.key)],
        "part-committed",
        || std::fs::write(b.join(&path), &swapped).unwrap(),
    );
    assert_eq!(code, Some(65), "{err}");
    assert!(
        err.contains(&path) && err.contains("changed since the verification pass read it"),
        "{err}"
    );
    assert_eq!(evil_rows(&db), 0, "forged rows were loaded: {err}");
    // Parts committed before stay; the hint does not say nothing was written.
    assert!(
        err.contains("parts already committed stay") && !err.contains("nothing was written"),
        "{err}"
    );

    // The genuine part back: the re-run resumes and completes exactly.
    std::fs::write(b.join(&path), &genuine).unwrap();
    let out = run(ferry().args(["import", s(&b), &sqlite(&db), "--key-file", s(&fx.key)]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(dump(&db), dump(&fx.src));
}

/// The same for a plain bundle (`--allow-unencrypted`): it has no MAC, but its manifest's
/// SHA-256s (a fingerprint read over the phone) still bind its parts, and a part rewritten
/// after the verification pass is refused the same way.
#[test]
fn a_plain_part_rewritten_during_the_import_is_refused() {
    let fx = fixture();
    let b = fx.path("b");
    export_plain(&fx.src_url(), &b, &["--max-part-rows", "500"]);
    let forged_db = evil_copy(&fx);
    let fb = fx.path("fb");
    export_plain(&sqlite(&forged_db), &fb, &["--max-part-rows", "500"]);
    let last = 5;
    let fplain = std::fs::read(fb.join(part_path(&fb, None, "items", last))).unwrap();
    let path = part_path(&b, None, "items", last);
    let genuine = std::fs::read(b.join(&path)).unwrap();
    let swapped = padded_to(&fplain, genuine.len());

    let db = fx.path("t.db");
    let (code, err) = run_changed_mid_way(
        &["import", s(&b), &sqlite(&db), "--allow-unencrypted"],
        "part-committed",
        || std::fs::write(b.join(&path), &swapped).unwrap(),
    );
    assert_eq!(code, Some(65), "{err}");
    assert!(
        err.contains(&path) && err.contains("changed since the verification pass read it"),
        "{err}"
    );
    assert_eq!(evil_rows(&db), 0, "forged rows were loaded: {err}");
    std::fs::write(b.join(&path), &genuine).unwrap();
    let out = run(ferry().args(["import", s(&b), &sqlite(&db), "--allow-unencrypted"]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(dump(&db), dump(&fx.src));
}

/// `decrypt` that meets a part changed after its verification pass (here: a byte flipped
/// once the first part file is written) fails with 65 and leaves nothing of its own in the
/// output directory: no catalog.json, no table directory, no plaintext.
#[test]
fn a_decrypt_that_fails_part_way_leaves_nothing_behind() {
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&fx.src_url(), &b, &["--max-part-rows", "500"]);
    let out_dir = fx.path("plain");
    std::fs::create_dir(&out_dir).unwrap();
    let path = part_path(&b, Some(&fx.key), "items", 5);
    let (code, err) = run_changed_mid_way(
        &["decrypt", s(&b), s(&out_dir), "--key-file", s(&fx.key)],
        "decrypted-part",
        || {
            assert!(out_dir.join("catalog.json").exists());
            let mut bytes = std::fs::read(b.join(&path)).unwrap();
            let i = bytes.len() / 2;
            bytes[i] ^= 1;
            std::fs::write(b.join(&path), &bytes).unwrap();
        },
    );
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains(&path), "{err}");
    let left: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "decrypt left {left:?}: {err}");
}
