//! `ferry rekey` (issue #17): slots added and removed by rewriting the manifest and its MAC
//! only; the catalog and every part byte-identical; a rekey killed at each step leaves a
//! bundle that the old or the new key opens; concurrent rekeys: one wins, the other exits
//! 75. On disk and on S3 (moto; skipped loudly without `AWS_ENDPOINT_URL`, as tests/it/s3.rs).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ferry::KeyFileKey;
use sha2::{Digest, Sha256};

use crate::common::{dump, ferry, fixture};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn key_id_of(key_file: &Path) -> String {
    KeyFileKey::load(key_file).unwrap().0.id().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = ferry();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// SHA-256 of the catalog and of every part, by path.
fn data_hashes(bundle: &Path) -> Vec<(String, String)> {
    let mut out = vec![(
        "catalog.fe".to_string(),
        hex::encode(Sha256::digest(
            std::fs::read(bundle.join("catalog.fe")).unwrap(),
        )),
    )];
    for p in crate::common::parts(bundle) {
        out.push((
            p.file_name().unwrap().to_string_lossy().into_owned(),
            hex::encode(Sha256::digest(std::fs::read(&p).unwrap())),
        ));
    }
    assert!(out.len() >= 2, "a catalog and at least one part");
    out
}

fn slot_ids(bundle: &Path) -> Vec<String> {
    crate::common::manifest(bundle)["encryption"]["key_slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key_id"].as_str().unwrap().to_string())
        .collect()
}

fn mac_lines(bundle: &Path) -> usize {
    std::fs::read_to_string(bundle.join("manifest.mac"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

fn verify_with(bundle: &str, key: &Path) -> Output {
    run(&["verify", bundle, "--key-file", s(key)], &[])
}

#[test]
fn a_key_file_is_added_and_the_old_one_removed_with_catalog_and_parts_unchanged() {
    let fx = fixture();
    let b = fx.export("b");
    let before = data_hashes(&b);
    let sums = std::fs::read(b.join("SHA256SUMS")).unwrap();
    let new_key = fx.other_key("new.key");
    let (old_id, new_id) = (key_id_of(&fx.key), key_id_of(&new_key));
    let o = run(
        &[
            "--json",
            "rekey",
            s(&b),
            "--key-file",
            s(&fx.key),
            "--add-key-file",
            s(&new_key),
            "--remove-slot",
            &old_id,
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schemas/rekey.v1.json")).unwrap();
    let errors: Vec<String> = jsonschema::validator_for(&schema)
        .unwrap()
        .iter_errors(&r)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{r}");
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["slots_before"][0]["key_id"], old_id.as_str(), "{r}");
    assert_eq!(r["slots_before"][0]["kind"], "key-file", "{r}");
    assert_eq!(r["slots_after"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["slots_after"][0]["key_id"], new_id.as_str(), "{r}");
    assert_eq!(r["files_unchanged"], before.len(), "{r}");
    assert_ne!(r["manifest_sha256_before"], r["manifest_sha256_after"]);
    // Only the manifest and its MAC changed.
    assert_eq!(data_hashes(&b), before);
    assert_eq!(std::fs::read(b.join("SHA256SUMS")).unwrap(), sums);
    assert_eq!(slot_ids(&b), vec![new_id.clone()]);
    assert_eq!(mac_lines(&b), 1, "the tidy leaves one MAC line");
    // No staged file left behind.
    let names: Vec<String> = std::fs::read_dir(&b)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");

    // The old key is refused (77), naming the slot it would need; the new key imports.
    let o = verify_with(s(&b), &fx.key);
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
    assert!(stderr(&o).contains(&new_id), "{}", stderr(&o));
    let refused = fx.path("refused.db");
    let o = run(
        &[
            "import",
            s(&b),
            &format!("sqlite://{}", refused.display()),
            "--key-file",
            s(&fx.key),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
    assert!(!refused.exists(), "nothing written with the old key");
    let dst = fx.path("dst.db");
    let o = run(
        &[
            "import",
            s(&b),
            &format!("sqlite://{}", dst.display()),
            "--key-file",
            s(&new_key),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(dump(&fx.src), dump(&dst));
    let o = verify_with(s(&b), &new_key);
    assert!(o.status.success(), "{}", stderr(&o));

    // Adding a key that has a slot is a no-op with a note; the manifest is not rewritten.
    let manifest = std::fs::read(b.join("manifest.json")).unwrap();
    let o = run(
        &[
            "rekey",
            s(&b),
            "--key-file",
            s(&new_key),
            "--add-key-file",
            s(&new_key),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("already has a slot"), "{out}");
    assert_eq!(std::fs::read(b.join("manifest.json")).unwrap(), manifest);
}

#[test]
fn passphrase_slots_are_added_and_removed() {
    let fx = fixture();
    let b = fx.export("b");
    let before = data_hashes(&b);
    let env = [("PW1", "correct horse"), ("PW2", "battery staple")];
    let o = run(
        &[
            "--json",
            "rekey",
            s(&b),
            "--key-file",
            s(&fx.key),
            "--add-passphrase-env",
            "PW1",
            "--remove-slot",
            &key_id_of(&fx.key),
        ],
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["slots_after"][0]["kind"], "passphrase", "{r}");
    let p1 = r["slots_after"][0]["key_id"].as_str().unwrap().to_string();
    assert!(p1.starts_with("p1_"), "{p1}");
    assert_eq!(data_hashes(&b), before);
    assert_eq!(verify_with(s(&b), &fx.key).status.code(), Some(77));
    let o = run(&["verify", s(&b), "--passphrase-env", "PW1"], &env);
    assert!(o.status.success(), "{}", stderr(&o));

    // The same passphrase again: a no-op; another one: a second slot; then the first removed.
    let o = run(
        &[
            "rekey",
            s(&b),
            "--passphrase-env",
            "PW1",
            "--add-passphrase-env",
            "PW1",
        ],
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("already opens a slot"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(slot_ids(&b), vec![p1.clone()]);
    let o = run(
        &[
            "rekey",
            s(&b),
            "--passphrase-env",
            "PW1",
            "--add-passphrase-env",
            "PW2",
            "--remove-slot",
            &p1,
        ],
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let ids = slot_ids(&b);
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], p1);
    assert_eq!(
        run(&["verify", s(&b), "--passphrase-env", "PW1"], &env)
            .status
            .code(),
        Some(77)
    );
    let o = run(&["verify", s(&b), "--passphrase-env", "PW2"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(data_hashes(&b), before);
}

#[test]
fn the_last_slot_an_unknown_slot_and_a_tampered_manifest_are_refused_with_nothing_changed() {
    let fx = fixture();
    let b = fx.export("b");
    let manifest = std::fs::read(b.join("manifest.json")).unwrap();
    let mac = std::fs::read(b.join("manifest.mac")).unwrap();
    let old_id = key_id_of(&fx.key);
    let o = run(
        &[
            "rekey",
            s(&b),
            "--key-file",
            s(&fx.key),
            "--remove-slot",
            &old_id,
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("without any key slot"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &[
            "rekey",
            s(&b),
            "--key-file",
            s(&fx.key),
            "--remove-slot",
            "k1_0000000000000000",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // The message lists the slots there are.
    assert!(
        stderr(&o).contains("k1_0000000000000000") && stderr(&o).contains(&old_id),
        "{}",
        stderr(&o)
    );
    // A wrong key: 77.
    let other = fx.other_key("other.key");
    let o = run(
        &[
            "rekey",
            s(&b),
            "--key-file",
            s(&other),
            "--add-key-file",
            s(&other),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
    assert_eq!(std::fs::read(b.join("manifest.json")).unwrap(), manifest);
    assert_eq!(std::fs::read(b.join("manifest.mac")).unwrap(), mac);

    // A manifest changed after export (its MAC fails): refused (65), nothing written.
    let text = String::from_utf8(manifest.clone()).unwrap();
    let seq = crate::common::manifest(&b)["sequence"].as_u64().unwrap();
    let tampered = text.replacen(
        &format!("\"sequence\": {seq}"),
        &format!("\"sequence\": {}", seq + 1),
        1,
    );
    assert_ne!(tampered, text);
    std::fs::write(b.join("manifest.json"), &tampered).unwrap();
    let o = run(
        &[
            "rekey",
            s(&b),
            "--key-file",
            s(&fx.key),
            "--add-key-file",
            s(&other),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("MAC mismatch"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(b.join("manifest.json")).unwrap(),
        tampered.as_bytes()
    );
    assert_eq!(std::fs::read(b.join("manifest.mac")).unwrap(), mac);
}

/// A running `ferry rekey ARGS` paused at `point` (FERRY_PAUSE_AT); killed on drop.
struct Paused(Child, mpsc::Receiver<String>);

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Paused {
    /// Waits for the process to end: its exit code and the rest of its stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.0.wait().unwrap();
        let rest: Vec<String> = self.1.iter().collect();
        (status.code(), rest.join("\n"))
    }
}

fn rekey_paused_at(args: &[&str], point: &str, secs: u64) -> Paused {
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"))
        .arg("--quiet")
        .arg("rekey")
        .args(args)
        .env("FERRY_PAUSE_AT", format!("{point}:1"))
        .env("FERRY_PAUSE_SECS", secs.to_string())
        .env_remove("FERRY_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let child = Paused(child, rx);
    let want = format!("ferry: paused at {point} 1");
    let mut seen = Vec::new();
    loop {
        match child.1.recv_timeout(Duration::from_secs(120)) {
            Ok(l) if l == want => break,
            Ok(l) => seen.push(l),
            Err(e) => panic!("the rekey did not pause at {point} ({e:?}); stderr: {seen:?}"),
        }
    }
    child
}

/// Checks that `bundle` opens (MAC and every part) with `opens` and not with `refused`.
fn opens_with_only(bundle: &str, opens: &Path, refused: &Path) {
    let o = verify_with(bundle, opens);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = verify_with(bundle, refused);
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
}

#[test]
fn a_rekey_killed_at_each_step_leaves_a_bundle_the_old_or_the_new_key_opens() {
    let fx = fixture();
    let b = fx.export("b");
    let before = data_hashes(&b);
    let new_key = fx.other_key("new.key");
    let args = [
        s(&b),
        "--key-file",
        s(&fx.key),
        "--add-key-file",
        s(&new_key),
        "--remove-slot",
        &key_id_of(&fx.key),
    ];
    let args: Vec<&str> = args.to_vec();
    let manifest0 = std::fs::read(b.join("manifest.json")).unwrap();

    // Killed after the claim: the old manifest, with the old and the new MAC.
    let mut p = rekey_paused_at(&args, "rekey-claimed", 600);
    // Meanwhile a second rekey of the same directory waits for nothing: exit 75.
    let o = run(&[&["rekey"], &args[..]].concat(), &[]);
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert!(stderr(&o).contains("another ferry rekey"), "{}", stderr(&o));
    p.0.kill().unwrap();
    p.0.wait().unwrap();
    assert_eq!(std::fs::read(b.join("manifest.json")).unwrap(), manifest0);
    assert_eq!(mac_lines(&b), 2);
    opens_with_only(s(&b), &fx.key, &new_key);

    // Killed after the commit: the new manifest, verified by its line of manifest.mac.
    let mut p = rekey_paused_at(&args, "rekey-committed", 600);
    p.0.kill().unwrap();
    p.0.wait().unwrap();
    assert_ne!(std::fs::read(b.join("manifest.json")).unwrap(), manifest0);
    assert!(mac_lines(&b) >= 2);
    opens_with_only(s(&b), &new_key, &fx.key);
    assert_eq!(data_hashes(&b), before);

    // The next rekey tidies manifest.mac down to one line.
    let third = fx.other_key("third.key");
    let o = run(
        &[
            "rekey",
            s(&b),
            "--key-file",
            s(&new_key),
            "--add-key-file",
            s(&third),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mac_lines(&b), 1);
    opens_with_only(s(&b), &third, &fx.key);
    let o = verify_with(s(&b), &new_key);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(data_hashes(&b), before);
}

#[test]
fn a_mac_file_with_several_lines_verifies_by_any_and_too_many_lines_are_refused() {
    let fx = fixture();
    let b = fx.export("b");
    let mac = std::fs::read_to_string(b.join("manifest.mac")).unwrap();
    let junk = "0".repeat(64);
    std::fs::write(b.join("manifest.mac"), format!("{junk}\n{mac}")).unwrap();
    let o = verify_with(s(&b), &fx.key);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(b.join("manifest.mac"), format!("{junk}\n{junk}\n")).unwrap();
    let o = verify_with(s(&b), &fx.key);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    let many: String = std::iter::repeat_n(format!("{junk}\n"), 8).collect();
    std::fs::write(b.join("manifest.mac"), format!("{many}{mac}")).unwrap();
    let o = verify_with(s(&b), &fx.key);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("9 lines"), "{}", stderr(&o));
}

/// A bucket of its own on the S3 test server (as tests/it/s3.rs).
fn bucket() -> Option<String> {
    let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("AWS_ENDPOINT_URL is not set and CI=true (.ci/run starts moto and sets it)");
        }
        eprintln!("SKIPPED: no S3 server (set AWS_ENDPOINT_URL and the AWS_* credentials)");
        return None;
    };
    let name = format!(
        "ferry-rekey-{}",
        &ferry::bundle::layout::new_bundle_id()[..12]
    );
    let out = std::process::Command::new("curl")
        .args(["-sS", "-f", "-X", "PUT", &format!("{endpoint}/{name}")])
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(name)
}

/// SHA-256 of every object of an S3 bundle except its manifest and MAC.
fn s3_data_hashes(url: &str) -> Vec<(String, String)> {
    let store = ferry::storage::Store::open(url, false).unwrap();
    let mut out = Vec::new();
    for e in store.entries().unwrap() {
        if e.path.starts_with("manifest.") {
            continue;
        }
        let bytes = store.read_capped(&e.path, 1 << 30).unwrap();
        out.push((e.path, hex::encode(Sha256::digest(&bytes))));
    }
    assert!(out.len() >= 3, "{out:?}");
    out
}

#[test]
fn rekey_on_s3_adds_and_removes_with_the_data_unchanged() {
    let Some(bucket) = bucket() else { return };
    let fx = fixture();
    let url = format!("s3://{bucket}/archive/b1");
    let sign = fx.path("archive.sign");
    let pubkey = keygen_json(&["--signing", s(&sign)])["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let o = run(
        &[
            "export",
            &fx.src_url(),
            &url,
            "--key-file",
            s(&fx.key),
            "--sign-key",
            s(&sign),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let before = s3_data_hashes(&url);
    let new_key = fx.other_key("new.key");
    let o = run(
        &[
            "rekey",
            &url,
            "--key-file",
            s(&fx.key),
            "--add-key-file",
            s(&new_key),
            "--remove-slot",
            &key_id_of(&fx.key),
            "--sign-key",
            s(&sign),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s3_data_hashes(&url), before);
    opens_with_only(&url, &new_key, &fx.key);
    // Re-signed: the new manifest verifies under the trusted key.
    let o = run(
        &[
            "verify",
            &url,
            "--key-file",
            s(&new_key),
            "--trust",
            &pubkey,
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let dst = fx.path("dst.db");
    let o = run(
        &[
            "import",
            &url,
            &format!("sqlite://{}", dst.display()),
            "--key-file",
            s(&new_key),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(dump(&fx.src), dump(&dst));
}

#[test]
fn two_concurrent_rekeys_on_s3_one_wins_and_the_other_exits_75() {
    let Some(bucket) = bucket() else { return };
    let fx = fixture();
    let url = format!("s3://{bucket}/b2");
    let o = run(
        &["export", &fx.src_url(), &url, "--key-file", s(&fx.key)],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let before = s3_data_hashes(&url);
    let (ka, kb) = (fx.other_key("a.key"), fx.other_key("b.key"));
    let old = key_id_of(&fx.key);
    // A claims (its MAC beside the old one) and stops for a few seconds before its commit.
    let a = rekey_paused_at(
        &[
            &url,
            "--key-file",
            s(&fx.key),
            "--add-key-file",
            s(&ka),
            "--remove-slot",
            &old,
        ],
        "rekey-claimed",
        4,
    );
    // B runs through meanwhile, on the same manifest: it wins.
    let o = run(
        &[
            "rekey",
            &url,
            "--key-file",
            s(&fx.key),
            "--add-key-file",
            s(&kb),
            "--remove-slot",
            &old,
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // A's commit finds another manifest: exit 75, nothing of A in the bundle.
    let (code, err) = a.finish();
    assert_eq!(code, Some(75), "{err}");
    assert!(err.contains("another rekey changed manifest.json"), "{err}");
    opens_with_only(&url, &kb, &ka);
    assert_eq!(verify_with(&url, &fx.key).status.code(), Some(77));
    assert_eq!(s3_data_hashes(&url), before);
}

#[test]
fn a_chain_link_keeps_its_chain_fields_and_the_rekey_warns_of_its_successors() {
    let fx = fixture();
    let b = fx.path("link1");
    fx.export_to(&fx.src_url(), &b, &["--cursor", "items=id"]);
    let m0 = crate::common::manifest(&b);
    assert!(m0["chain_id"].is_string(), "{m0}");
    // A staged manifest left by a rekey killed before its rename is cleared.
    let staged = b.join(".manifest.json.ferry-0123456789abcdef.tmp");
    std::fs::write(&staged, b"{}").unwrap();
    let new_key = fx.other_key("new.key");
    let o = run(
        &[
            "--json",
            "rekey",
            s(&b),
            "--key-file",
            s(&fx.key),
            "--add-key-file",
            s(&new_key),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!staged.exists());
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("link 1 of chain") && warnings.contains("--accept-gap"),
        "{r}"
    );
    let m1 = crate::common::manifest(&b);
    for f in [
        "chain_id",
        "sequence",
        "bundle_id",
        "source_id",
        "catalog",
        "parts",
    ] {
        assert_eq!(m0[f], m1[f], "{f}");
    }
    assert_eq!(slot_ids(&b).len(), 2);
    // Both keys open it now.
    assert!(verify_with(s(&b), &fx.key).status.success());
    assert!(verify_with(s(&b), &new_key).status.success());
}

/// `ferry keygen --json` with extra arguments, parsed.
fn keygen_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json", "keygen"];
    all.extend_from_slice(args);
    let o = run(&all, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn a_rekey_adds_an_age_recipient_re_signs_and_a_signed_bundle_needs_sign_key_or_drop_signature() {
    let fx = fixture();
    let sign = fx.path("archive.sign");
    let signer = keygen_json(&["--signing", s(&sign)]);
    let pubkey = signer["public_key"].as_str().unwrap().to_string();
    let b = fx.path("b");
    let o = run(
        &[
            "export",
            &fx.src_url(),
            s(&b),
            "--key-file",
            s(&fx.key),
            "--sign-key",
            s(&sign),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let before = data_hashes(&b);
    let trusted = |key: &[&str]| {
        let mut a = vec!["verify", s(&b), "--trust", &pubkey];
        a.extend_from_slice(key);
        run(&a, &[])
    };
    assert!(trusted(&["--key-file", s(&fx.key)]).status.success());

    // Rotate from the key file to an age recipient, re-signing in the same rekey.
    let id_file = fx.path("receiver.age");
    let receiver = keygen_json(&["--age", s(&id_file)]);
    let recipient = receiver["recipient"].as_str().unwrap().to_string();
    let o = run(
        &[
            "--json",
            "rekey",
            s(&b),
            "--key-file",
            s(&fx.key),
            "--add-recipient",
            &recipient,
            "--remove-slot",
            &key_id_of(&fx.key),
            "--sign-key",
            s(&sign),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["signed_by"], signer["key_id"], "{r}");
    assert_eq!(r["added"][0]["kind"], "age", "{r}");
    assert_eq!(r["added"][0]["key_id"], receiver["key_id"], "{r}");
    assert_eq!(data_hashes(&b), before, "catalog and parts untouched");
    // The new manifest is signed by the trusted key; the old key is gone, the identity opens.
    let o = trusted(&["--identity", s(&id_file)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = trusted(&["--key-file", s(&fx.key)]);
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
    // The same recipient again: noted, not added twice.
    let o = run(
        &[
            "--json",
            "rekey",
            s(&b),
            "--identity",
            s(&id_file),
            "--add-recipient",
            &recipient,
            "--sign-key",
            s(&sign),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["status"], "re-signed", "{r}");
    assert_eq!(r["slots_after"].as_array().unwrap().len(), 1, "{r}");
    assert!(r["notes"].to_string().contains("already has a slot"), "{r}");

    // A signed bundle rekeyed without --sign-key is refused (the signature would break),
    // unless --drop-signature; a --trust reader then refuses it as unsigned.
    let k2 = fx.other_key("k2.key");
    let add_k2 = |extra: &[&str]| {
        let mut a = vec![
            "rekey",
            s(&b),
            "--identity",
            s(&id_file),
            "--add-key-file",
            s(&k2),
        ];
        a.extend_from_slice(extra);
        run(&a, &[])
    };
    let m = std::fs::read(b.join("manifest.json")).unwrap();
    let o = add_k2(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--drop-signature"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(b.join("manifest.json")).unwrap(),
        m,
        "nothing changed"
    );
    let o = add_k2(&["--drop-signature"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!b.join("manifest.json.minisig").exists());
    let o = trusted(&["--key-file", s(&k2)]);
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
    assert!(stderr(&o).contains("unsigned"), "{}", stderr(&o));
    // --sign-key vouches for the bundle: an unsigned one is refused (77) unless
    // --sign-unverified; then it is signed, the manifest unchanged.
    let m = std::fs::read(b.join("manifest.json")).unwrap();
    let o = run(
        &["rekey", s(&b), "--key-file", s(&k2), "--sign-key", s(&sign)],
        &[],
    );
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
    assert!(stderr(&o).contains("--sign-unverified"), "{}", stderr(&o));
    assert!(!b.join("manifest.json.minisig").exists());
    let o = run(
        &[
            "rekey",
            s(&b),
            "--key-file",
            s(&k2),
            "--sign-key",
            s(&sign),
            "--sign-unverified",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(b.join("manifest.json")).unwrap(), m);
    assert!(trusted(&["--key-file", s(&k2)]).status.success());
}

#[test]
fn rekey_never_vouches_for_a_bundle_another_key_signed_nor_echoes_a_bad_slot_id() {
    let fx = fixture();
    let mine = fx.path("mine.sign");
    keygen_json(&["--signing", s(&mine)]);
    let evil = fx.path("evil.sign");
    keygen_json(&["--signing", s(&evil)]);
    let b = fx.path("b");
    let o = run(
        &[
            "export",
            &fx.src_url(),
            s(&b),
            "--key-file",
            s(&fx.key),
            "--sign-key",
            s(&evil),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m = std::fs::read(b.join("manifest.json")).unwrap();
    let sig = std::fs::read(b.join("manifest.json.minisig")).unwrap();
    let k2 = fx.other_key("k2.key");
    let args = [
        "rekey",
        s(&b),
        "--key-file",
        s(&fx.key),
        "--add-key-file",
        s(&k2),
    ];
    // By option and through FERRY_SIGN_KEY alike.
    let mut with_flag = args.to_vec();
    with_flag.extend(["--sign-key", s(&mine)]);
    for o in [
        run(&with_flag, &[]),
        run(&args, &[("FERRY_SIGN_KEY", s(&mine))]),
    ] {
        assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
        assert!(stderr(&o).contains("signed by key id"), "{}", stderr(&o));
        assert_eq!(std::fs::read(b.join("manifest.json")).unwrap(), m);
        assert_eq!(std::fs::read(b.join("manifest.json.minisig")).unwrap(), sig);
    }
    // A failed rekey's --json is a report of schemas/report.v1.json.
    let o = run(
        &[
            "--json",
            "rekey",
            s(&b),
            "--key-file",
            s(&k2),
            "--add-key-file",
            s(&k2),
            "--drop-signature",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schemas/report.v1.json")).unwrap();
    let errors: Vec<String> = jsonschema::validator_for(&schema)
        .unwrap()
        .iter_errors(&r)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{r}");
    assert_eq!(r["command"], "rekey", "{r}");
    // A directory planted at the signature's name is refused before anything changes.
    let planted = fx.path("planted");
    let o = run(
        &[
            "export",
            &fx.src_url(),
            s(&planted),
            "--key-file",
            s(&fx.key),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::create_dir(planted.join("manifest.json.minisig")).unwrap();
    std::fs::write(planted.join("manifest.json.minisig").join("x"), b"x").unwrap();
    let pm = std::fs::read(planted.join("manifest.json")).unwrap();
    let o = run(
        &[
            "rekey",
            s(&planted),
            "--key-file",
            s(&fx.key),
            "--add-key-file",
            s(&k2),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("manifest.json.minisig"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(planted.join("manifest.json")).unwrap(), pm);
    assert_eq!(mac_lines(&planted), 1, "nothing claimed");
    // A secret pasted as a slot id is refused and never repeated.
    let secret = std::fs::read_to_string(&fx.key).unwrap();
    let line = secret.lines().find(|l| l.starts_with("FERRYKEY1")).unwrap();
    let o = run(
        &[
            "rekey",
            s(&b),
            "--key-file",
            s(&fx.key),
            "--remove-slot",
            line,
            "--drop-signature",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!stderr(&o).contains(line), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a key id"), "{}", stderr(&o));
    // Key, identity, trust and recipients files are read with a bound, whatever their size says.
    for (opt, code) in [("--key-file", 77), ("--identity", 77), ("--trust-file", 77)] {
        let o = run(&["verify", s(&b), opt, "/dev/zero"], &[]);
        assert_eq!(o.status.code(), Some(code), "{opt}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("too large") || stderr(&o).contains("more than"),
            "{opt}: {}",
            stderr(&o)
        );
    }
    let o = run(
        &[
            "export",
            &fx.src_url(),
            s(&fx.path("r")),
            "--recipients-file",
            "/dev/zero",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // A plain bundle cannot be signed: its signature could never be checked.
    let o = run(
        &[
            "export",
            &fx.src_url(),
            s(&fx.path("p")),
            "--no-encrypt",
            "--sign-key",
            s(&mine),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!fx.path("p").join("manifest.json").exists());
}

/// A signed bundle whose rekey is killed at each step still opens under `--trust`: before
/// the commit the old manifest with its signature, after it the new manifest with the
/// pending signature (manifest.json.minisig.next), which a re-sign then moves into place.
/// A pending signature counts only for the manifest it signs, by a trusted key.
#[test]
fn a_signed_rekey_killed_at_each_step_still_opens_under_trust() {
    let fx = fixture();
    let sign = fx.path("archive.sign");
    let pubkey = keygen_json(&["--signing", s(&sign)])["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let b = fx.path("b");
    let o = run(
        &[
            "export",
            &fx.src_url(),
            s(&b),
            "--key-file",
            s(&fx.key),
            "--sign-key",
            s(&sign),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let trusted = |key: &Path| {
        run(
            &["verify", s(&b), "--trust", &pubkey, "--key-file", s(key)],
            &[],
        )
    };
    let new_key = fx.other_key("new.key");
    let old_id = key_id_of(&fx.key);
    let args: Vec<&str> = vec![
        s(&b),
        "--key-file",
        s(&fx.key),
        "--add-key-file",
        s(&new_key),
        "--remove-slot",
        &old_id,
        "--sign-key",
        s(&sign),
    ];
    let pending = b.join("manifest.json.minisig.next");

    // Killed after the claim: the old manifest and signature; the pending one signs a
    // manifest that never was committed and changes nothing.
    let mut p = rekey_paused_at(&args, "rekey-claimed", 600);
    p.0.kill().unwrap();
    p.0.wait().unwrap();
    assert!(pending.exists());
    let o = trusted(&fx.key);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(trusted(&new_key).status.code(), Some(77));

    // Killed after the commit, before the signature moved: the pending one verifies.
    let mut p = rekey_paused_at(&args, "rekey-committed", 600);
    p.0.kill().unwrap();
    p.0.wait().unwrap();
    assert!(pending.exists());
    let o = trusted(&new_key);
    assert!(o.status.success(), "{}", stderr(&o));
    // ... and the reader says so, with the repair.
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(
        said.contains("the staged manifest.json.minisig.next")
            && said.contains("--key-file KEY --sign-key FILE`")
            && said.contains("to move it into place"),
        "{said}"
    );
    assert_eq!(trusted(&fx.key).status.code(), Some(77));
    // minisign's file itself is the old one: a trust list without the pending file refuses.
    let saved = std::fs::read(&pending).unwrap();
    std::fs::remove_file(&pending).unwrap();
    let o = trusted(&new_key);
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));
    std::fs::write(&pending, &saved).unwrap();

    // Another signer's pending signature does not count.
    let evil = fx.path("evil.sign");
    keygen_json(&["--signing", s(&evil)]);
    let b2 = fx.path("b2");
    let o = run(
        &[
            "export",
            &fx.src_url(),
            s(&b2),
            "--key-file",
            s(&fx.key),
            "--sign-key",
            s(&evil),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::copy(
        b2.join("manifest.json.minisig"),
        b2.join("manifest.json.minisig.next"),
    )
    .unwrap();
    let o = run(
        &[
            "verify",
            s(&b2),
            "--trust",
            &pubkey,
            "--key-file",
            s(&fx.key),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));

    // The repair needs no --sign-unverified: the bundle verifies; the pending file goes.
    let o = run(
        &[
            "rekey",
            s(&b),
            "--key-file",
            s(&new_key),
            "--sign-key",
            s(&sign),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!pending.exists());
    let o = trusted(&new_key);
    assert!(o.status.success(), "{}", stderr(&o));
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(!said.contains("staged"), "{said}");
    // And minisign's own view agrees: the main file now signs the manifest.
    let m = crate::common::manifest(&b);
    assert!(m["encryption"]["key_slots"].as_array().unwrap().len() == 1);

    // Something else than a file at the staged name: --strict names it (65); without
    // --strict it is never read and the bundle verifies.
    std::fs::create_dir(&pending).unwrap();
    let o = run(
        &["verify", s(&b), "--strict", "--key-file", s(&new_key)],
        &[],
    );
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("manifest.json.minisig.next")
            && stderr(&o).contains("is a directory, not a signature file"),
        "{}",
        stderr(&o)
    );
    let o = run(&["verify", s(&b), "--key-file", s(&new_key)], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A target that imported a bundle before its rekey refuses the rekeyed copy (its manifest
/// SHA-256 differs), and the message names the rekey as the likely, harmless cause: the data
/// is already there. Nothing is written.
#[test]
fn a_rekeyed_copy_at_a_target_that_loaded_it_says_it_is_already_there() {
    let fx = fixture();
    let b = fx.path("b");
    fx.export_to(&fx.src_url(), &b, &[]);
    let db = fx.path("t.db");
    let url = format!("sqlite://{}", db.display());
    fx.import_to(&b, &url, &[]);
    let before = crate::common::dump(&db);
    let new_key = fx.other_key("new.key");
    let o = run(
        &[
            "rekey",
            s(&b),
            "--key-file",
            s(&fx.key),
            "--add-key-file",
            s(&new_key),
            "--json",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // The new fingerprint is reported, the one inspect prints from now on.
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let i = run(&["inspect", s(&b), "--json"], &[]);
    let i: serde_json::Value = serde_json::from_slice(&i.stdout).unwrap();
    assert_eq!(r["fingerprint_after"], i["fingerprint"], "{r}");
    assert!(
        r["fingerprint_after"]
            .as_str()
            .is_some_and(|f| f.len() == 24),
        "{r}"
    );
    let o = run(&["import", s(&b), &url, "--key-file", s(&new_key)], &[]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("imported here before with different content")
            && e.contains("if this bundle was rekeyed, its data is already loaded here"),
        "{e}"
    );
    assert_eq!(crate::common::dump(&db), before);
}
