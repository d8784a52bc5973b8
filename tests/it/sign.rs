//! Signed manifests (issue #17): `keygen --signing`, `export --sign-key`, `--trust` and
//! `--trust-file` on the reading commands, interop with the `minisign` tool (Debian package;
//! without it the interop tests fail under CI=true and are skipped loudly elsewhere), and
//! the manifest fingerprint.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use crate::common::{Fixture, ferry, fixture, ledger_rows, manifest, user_tables};
use crate::servers::{PgDb, psql};

const SIG: &str = "manifest.json.minisig";

/// Whether the `minisign` tool is installed; panics under CI=true when it is not.
fn minisign_present() -> bool {
    let ok = StdCommand::new("minisign")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("minisign is not installed and CI=true (.ci/run installs the Debian package)");
        }
        eprintln!("SKIPPED: minisign is not installed (apt-get install minisign)");
    }
    ok
}

/// `ferry keygen --signing FILE --json`: (public key, key id).
fn signing_key(fx: &Fixture, name: &str) -> (PathBuf, String, String) {
    let p = fx.path(name);
    let out = ferry()
        .args(["keygen", "--json", "--signing", p.to_str().unwrap()])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    (
        p,
        v["public_key"].as_str().unwrap().to_string(),
        v["key_id"].as_str().unwrap().to_string(),
    )
}

/// Exports the fixture's source to `name`, signed with `sign_key` when given.
fn export(fx: &Fixture, name: &str, sign_key: Option<&Path>) -> PathBuf {
    let b = fx.path(name);
    let mut extra = vec![];
    if let Some(k) = sign_key {
        extra.extend(["--sign-key", k.to_str().unwrap()]);
    }
    fx.export_to(&fx.src_url(), &b, &extra);
    b
}

/// `ferry CMD BUNDLE ARGS… --json`: (exit code, JSON on stdout, stderr).
fn run(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = ferry().args(args).arg("--json").output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn keygen_signing_writes_minisign_keys_and_the_minisign_tool_verifies_an_export() {
    let fx = fixture();
    let (key, pk, id) = signing_key(&fx, "sign.key");
    assert!(pk.starts_with("RW") && pk.len() == 56, "{pk}");
    assert_eq!(id.len(), 16, "{id}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let pubfile = std::fs::read_to_string(fx.path("sign.key.pub")).unwrap();
    assert!(pubfile.contains(&pk) && pubfile.contains(&id), "{pubfile}");
    // Never over an existing key.
    ferry()
        .args(["keygen", "--signing", s(&key)])
        .assert()
        .code(2);
    // Signed through FERRY_SIGN_KEY.
    let b = fx.path("b");
    ferry()
        .env("FERRY_SIGN_KEY", &key)
        .args(["export", &fx.src_url(), s(&b), "--key-file", s(&fx.key)])
        .assert()
        .success();
    let sig = std::fs::read_to_string(b.join(SIG)).unwrap();
    let m = manifest(&b);
    let comment = format!(
        "trusted comment: ferry bundle {} source {} chain - sequence {}",
        m["bundle_id"].as_str().unwrap(),
        m["source_id"].as_str().unwrap(),
        m["sequence"]
    );
    assert!(sig.contains(&comment), "{sig}");
    if !minisign_present() {
        return;
    }
    let out = StdCommand::new("minisign")
        .args(["-Vm", s(&b.join("manifest.json")), "-P", &pk])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "minisign -V failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ferry bundle"));
    // And the public key file as minisign reads it.
    let out = StdCommand::new("minisign")
        .args([
            "-Vm",
            s(&b.join("manifest.json")),
            "-p",
            s(&fx.path("sign.key.pub")),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A changed manifest fails minisign too.
    let mut bytes = std::fs::read(b.join("manifest.json")).unwrap();
    bytes.push(b'\n');
    std::fs::write(b.join("manifest.json"), bytes).unwrap();
    let out = StdCommand::new("minisign")
        .args(["-Vm", s(&b.join("manifest.json")), "-P", &pk])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn a_key_made_by_minisign_signs_an_export_and_minisign_reads_a_ferry_key() {
    let fx = fixture();
    if !minisign_present() {
        return;
    }
    let (sk, pk) = (fx.path("m.key"), fx.path("m.pub"));
    let out = StdCommand::new("minisign")
        .args(["-G", "-W", "-p", s(&pk), "-s", s(&sk)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = export(&fx, "b", Some(&sk));
    let out = StdCommand::new("minisign")
        .args(["-Vm", s(&b.join("manifest.json")), "-p", s(&pk)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, v, err) = run(&["verify", s(&b), "--trust-file", s(&pk)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["signature_checked"], true);
    assert!(v["signed_by"].is_string());
    // minisign signs a file with a key made by ferry keygen --signing.
    let (fkey, fpk, _) = signing_key(&fx, "f.key");
    let file = fx.path("file.txt");
    std::fs::write(&file, "hello").unwrap();
    let out = StdCommand::new("minisign")
        .args(["-S", "-s", s(&fkey), "-m", s(&file)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = StdCommand::new("minisign")
        .args(["-Vm", s(&file), "-P", &fpk])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A password-protected minisign key is refused by name (exit 77), nothing written.
    let enc = fx.path("enc.key");
    std::fs::write(
        &enc,
        "untrusted comment: minisign encrypted secret key\nRWRTY0Iy\n",
    )
    .unwrap();
    let b2 = fx.path("b2");
    let out = ferry()
        .args([
            "export",
            &fx.src_url(),
            s(&b2),
            "--key-file",
            s(&fx.key),
            "--sign-key",
            s(&enc),
        ])
        .assert()
        .code(77);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("not an Ed25519 minisign secret key") || err.contains("encrypted"),
        "{err}"
    );
    assert!(!b2.join("manifest.json").exists());
}

#[test]
fn import_under_trust_succeeds_for_the_right_signer() {
    let fx = fixture();
    let (key, pk, id) = signing_key(&fx, "sign.key");
    let b = export(&fx, "b", Some(&key));
    let db = fx.path("t.db");
    let (code, v, err) = run(&[
        "import",
        s(&b),
        &format!("sqlite://{}", db.display()),
        "--key-file",
        s(&fx.key),
        "--trust",
        &pk,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["signed_by"], id.as_str());
    assert_eq!(v["signature_checked"], true);
    assert_eq!(user_tables(&db).len(), 3, "{:?}", user_tables(&db));
    // A trust file of several keys (comments, the signer's among them) works as well; the
    // text report says who signed.
    let other = signing_key(&fx, "other.key").1;
    let tf = fx.path("trusted.txt");
    std::fs::write(
        &tf,
        format!("# receivers' list\n{other} site B\n\n{pk}  sender\n"),
    )
    .unwrap();
    let out = ferry()
        .args(["verify", s(&b), "--trust-file", s(&tf)])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        text.contains(&format!("signed by key id {id} (a trusted key")),
        "{text}"
    );
    // Without a trust list the signature is reported, marked unchecked.
    let (code, v, _) = run(&["inspect", s(&b)]);
    assert_eq!(code, 0);
    assert_eq!(v["signed_by"], id.as_str());
    assert_eq!(v["signature_checked"], false);
    // decrypt under --trust.
    let out_dir = fx.path("plain");
    let (code, v, err) = run(&[
        "decrypt",
        s(&b),
        s(&out_dir),
        "--key-file",
        s(&fx.key),
        "--trust",
        &pk,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["signature_checked"], true);
    // inspect and compare take --trust too: the right signer passes, an unsigned copy of
    // the same data is refused with 77.
    let (code, v, err) = run(&["inspect", s(&b), "--trust", &pk]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["signature_checked"], true);
    let unsigned = export(&fx, "unsigned", None);
    let (code, _, err) = run(&["inspect", s(&unsigned), "--trust", &pk]);
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("unsigned"), "{err}");
    let (code, v, err) = run(&[
        "compare",
        s(&b),
        &fx.src_url(),
        "--key-file",
        s(&fx.key),
        "--trust",
        &pk,
    ]);
    assert_eq!(code, 0, "{err}");
    // A courier's keyless verify under --trust: the signature authenticates the bundle.
    let (code2, v2, err2) = run(&["verify", s(&b), "--trust", &pk]);
    assert_eq!(code2, 0, "{err2}");
    assert_eq!(v2["authenticated"], true, "{v2}");
    assert_eq!(v2["signature_checked"], true, "{v2}");
    // Without it, nothing was checked.
    let (code2, v2, err2) = run(&["verify", s(&b)]);
    assert_eq!(code2, 0, "{err2}");
    assert_eq!(v2["authenticated"], false, "{v2}");
    // compare reports the signature it checked, as the other readers do
    assert_eq!(v["signed_by"], id.as_str(), "{v}");
    assert_eq!(v["signature_checked"], true, "{v}");
    assert_eq!(v["authenticated"], true, "{v}");
    assert!(
        v["fingerprint"].as_str().is_some_and(|f| !f.is_empty()),
        "{v}"
    );
    let out = ferry()
        .args(["compare", s(&b), &fx.src_url(), "--key-file", s(&fx.key)])
        .args(["--trust", &pk])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("signed by key id {id} (a trusted key")),
        "{text}"
    );
    // two bundles of different trust: the second's line is in a note
    let (code, v, err) = run(&["compare", s(&b), s(&unsigned), "--key-file", s(&fx.key)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["signed_by"], id.as_str(), "{v}");
    assert!(v["warnings"].to_string().contains("not signed"), "{v}");
    let (code, _, err) = run(&[
        "compare",
        s(&unsigned),
        &fx.src_url(),
        "--key-file",
        s(&fx.key),
        "--trust",
        &pk,
    ]);
    assert_eq!(code, 77, "{err}");
}

/// The ways a bundle fails a trust list: each refused with exit 77 by import (nothing
/// written: the target does not exist afterwards) and by a courier's keyless verify, whose
/// message tells them apart.
#[test]
fn untrusted_bundles_exit_77_with_nothing_written() {
    let fx = fixture();
    let (key, pk, id) = signing_key(&fx, "sign.key");
    let (other_key, _, other_id) = signing_key(&fx, "other.key");
    let b2 = export(&fx, "second", Some(&key));
    let b2_id = manifest(&b2)["bundle_id"].as_str().unwrap().to_string();
    type Damage<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Damage<'_>, String)> = vec![
        (
            "unsigned",
            Box::new(|b: &Path| std::fs::remove_file(b.join(SIG)).unwrap()),
            "is unsigned".into(),
        ),
        (
            "another signer",
            Box::new(|b: &Path| {
                let ob = export(&fx, "by-other", Some(&other_key));
                std::fs::copy(ob.join(SIG), b.join(SIG)).unwrap();
            }),
            format!("signed by key id {other_id}, not a trusted key (trusted: {id})"),
        ),
        (
            "a flipped byte in the signature",
            Box::new(|b: &Path| {
                let sig = std::fs::read_to_string(b.join(SIG)).unwrap();
                let mut lines: Vec<String> = sig.lines().map(String::from).collect();
                let mut l: Vec<u8> = lines[1].clone().into_bytes();
                l[50] = if l[50] == b'A' { b'B' } else { b'A' };
                lines[1] = String::from_utf8(l).unwrap();
                std::fs::write(b.join(SIG), lines.join("\n") + "\n").unwrap();
            }),
            "does not verify (damaged or the manifest was changed after signing)".into(),
        ),
        (
            "key slots edited after signing",
            Box::new(|b: &Path| {
                let mut m = manifest(b);
                let w = m["encryption"]["key_slots"][0]["wrapped"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let flipped = format!("{}{}", if w.starts_with('0') { "1" } else { "0" }, &w[1..]);
                m["encryption"]["key_slots"][0]["wrapped"] = flipped.into();
                std::fs::write(
                    b.join("manifest.json"),
                    serde_json::to_vec_pretty(&m).unwrap(),
                )
                .unwrap();
            }),
            "does not verify (damaged or the manifest was changed after signing)".into(),
        ),
        (
            "a signature copied from another bundle",
            Box::new(|b: &Path| {
                std::fs::copy(b2.join(SIG), b.join(SIG)).unwrap();
            }),
            format!("the signature is for another file: {SIG}"),
        ),
        (
            "an oversize signature file",
            Box::new(|b: &Path| {
                let mut sig = std::fs::read(b.join(SIG)).unwrap();
                sig.resize(5000, b'\n');
                std::fs::write(b.join(SIG), sig).unwrap();
            }),
            format!("{SIG} in"),
        ),
    ];
    for (i, (what, damage, expect)) in cases.iter().enumerate() {
        let b = export(&fx, &format!("b{i}"), Some(&key));
        damage(&b);
        let db = fx.path(&format!("t{i}.db"));
        let (code, v, err) = run(&[
            "import",
            s(&b),
            &format!("sqlite://{}", db.display()),
            "--key-file",
            s(&fx.key),
            "--trust",
            &pk,
        ]);
        assert_eq!(code, 77, "{what}: {err}");
        assert!(
            err.contains(expect.as_str()),
            "{what}: expected {expect:?} in {err}"
        );
        assert_eq!(v["exit_code"], 77, "{what}");
        assert!(!db.exists(), "{what}: the target was created");
        assert_eq!(ledger_rows(&db), 0);
        // A courier's check, without any key, says the same.
        let (code, _, err) = run(&["verify", s(&b), "--trust", &pk]);
        assert_eq!(code, 77, "{what}: {err}");
        assert!(
            err.contains(expect.as_str()),
            "{what}: expected {expect:?} in {err}"
        );
        if *what == "a signature copied from another bundle" {
            assert!(err.contains(&format!("names bundle {b2_id}")), "{err}");
        }
        if *what == "an oversize signature file" {
            assert!(err.contains("5000 bytes"), "{err}");
            // Without a trust list, a warning names it; verify still passes.
            let (code, v, err) = run(&["verify", s(&b)]);
            assert_eq!(code, 0, "{err}");
            assert!(v["warnings"].to_string().contains("5000 bytes"), "{v}");
        }
    }
    // The signed original is fine, and a plain bundle with --trust is a downgrade.
    let good = export(&fx, "good", Some(&key));
    let (code, v, err) = run(&["verify", s(&good), "--trust", &pk]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["signature_checked"], true);
    let plain = fx.path("plain");
    ferry()
        .args(["export", &fx.src_url(), s(&plain), "--no-encrypt"])
        .assert()
        .success();
    let (code, _, err) = run(&["verify", s(&plain), "--trust", &pk]);
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("NOT encrypted"), "{err}");
    // A malformed --trust value is refused before anything is read.
    let (code, _, err) = run(&["verify", s(&good), "--trust", "RWnotakey"]);
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("not a minisign public key"), "{err}");
}

#[test]
fn trust_expressions_requires_a_trusted_signature() {
    let fx = fixture();
    let (key, pk, _) = signing_key(&fx, "sign.key");
    let signed = export(&fx, "signed", Some(&key));
    let unsigned = export(&fx, "unsigned", None);
    for (b, trust) in [(&unsigned, false), (&signed, false), (&unsigned, true)] {
        let db = fx.path("t.db");
        let mut args = vec![
            "import".to_string(),
            s(b).to_string(),
            format!("sqlite://{}", db.display()),
            "--key-file".into(),
            s(&fx.key).to_string(),
            "--trust-expressions".into(),
        ];
        if trust {
            args.extend(["--trust".to_string(), pk.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = run(&args);
        assert_eq!(code, 77, "{err}");
        assert!(
            err.contains("--trust-expressions") || err.contains("unsigned"),
            "{err}"
        );
        assert!(!db.exists());
    }
    let db = fx.path("ok.db");
    let (code, v, err) = run(&[
        "import",
        s(&signed),
        &format!("sqlite://{}", db.display()),
        "--key-file",
        s(&fx.key),
        "--trust",
        &pk,
        "--trust-expressions",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["signature_checked"], true);
}

#[test]
fn fingerprints_are_equal_across_a_copy_and_change_with_the_manifest() {
    let fx = fixture();
    let b = export(&fx, "b", None);
    let fp = |b: &Path| {
        let (code, v, err) = run(&["inspect", s(b)]);
        assert_eq!(code, 0, "{err}");
        let (code, w, err) = run(&["verify", s(b)]);
        assert_eq!(code, 0, "{err}");
        let f = v["fingerprint"].as_str().unwrap().to_string();
        assert_eq!(w["fingerprint"].as_str(), Some(f.as_str()));
        f
    };
    let f = fp(&b);
    assert_eq!(f.len(), 24, "{f}");
    assert_eq!(f.split('-').count(), 5, "{f}");
    let copy = fx.path("copy");
    let st = StdCommand::new("cp")
        .args(["-r", s(&b), s(&copy)])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(fp(&copy), f);
    // The text forms show it too.
    let out = ferry().args(["inspect", s(&copy)]).assert().success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains(&f));
    let out = ferry().args(["verify", s(&copy)]).assert().success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains(&f));
    // Any change to manifest.json (here its whitespace alone) changes it.
    let mut bytes = std::fs::read(copy.join("manifest.json")).unwrap();
    bytes.push(b'\n');
    std::fs::write(copy.join("manifest.json"), bytes).unwrap();
    let (code, v, err) = run(&["inspect", s(&copy)]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(v["fingerprint"].as_str(), Some(f.as_str()));
}

/// `--trust-expressions` on a signed PostgreSQL bundle replays a domain's CHECK and DEFAULT
/// that call a function outside the allowlist; without it they are named as not carried.
#[test]
fn trust_expressions_replays_a_check_outside_the_allowlist_for_a_trusted_signer() {
    let Some(src) = PgDb::new("sign_tx") else {
        return;
    };
    let Some(plain) = PgDb::new("sign_txa") else {
        return;
    };
    let Some(trusted) = PgDb::new("sign_txb") else {
        return;
    };
    psql(
        &src.url,
        "CREATE DOMAIN hashed AS text DEFAULT md5('x') CHECK (md5(VALUE) <> '');
         CREATE TABLE t (id int PRIMARY KEY, name hashed NOT NULL);
         INSERT INTO t VALUES (1, 'a');",
    );
    let fx = fixture();
    let (key, pk, _) = signing_key(&fx, "sign.key");
    let b = fx.path("b");
    fx.export_to(&src.url, &b, &["--sign-key", s(&key)]);
    let defs = |url: &str| {
        psql(
            url,
            "SELECT coalesce(string_agg(pg_get_constraintdef(c.oid), '; '), '') FROM pg_constraint c \
             JOIN pg_type t ON t.oid = c.contypid WHERE t.typname = 'hashed'",
        ) + "|"
            + &psql(
                url,
                "SELECT coalesce(typdefault, '') FROM pg_type WHERE typname = 'hashed'",
            )
    };
    let out = fx.import_to(&b, &plain.url, &["--trust", &pk]);
    assert!(out.contains("not carried") && out.contains("md5"), "{out}");
    assert!(!defs(&plain.url).contains("md5"), "{}", defs(&plain.url));
    let out = fx.import_to(&b, &trusted.url, &["--trust", &pk, "--trust-expressions"]);
    assert!(out.contains("--trust-expressions"), "{out}");
    let d = defs(&trusted.url);
    assert!(d.contains("CHECK ((md5(VALUE) <> ''::text))"), "{d}");
    assert!(d.contains("md5('x'::text)"), "{d}");
}

/// An export whose manifest its own readers would refuse (a source id outside its alphabet)
/// is refused before anything is signed or a manifest written (exit 2), not shipped signed.
#[test]
fn an_export_its_readers_would_refuse_is_not_signed_or_finished() {
    let fx = fixture();
    let (key, _, _) = signing_key(&fx, "sign.key");
    let b = fx.path("b");
    let out = ferry()
        .args(["export", &fx.src_url(), s(&b)])
        .args(["--key-file", s(&fx.key), "--sign-key", s(&key)])
        .args(["--source-id", "a b"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("source_id"), "{err}");
    assert!(!b.join("manifest.json").exists());
    assert!(!b.join("manifest.json.minisig").exists());
}

/// A signed link vouches for its predecessor (its signature covers the predecessor's
/// manifest SHA-256): `export --since PREV --sign-key K` checks PREV's signature with K and
/// warns when it does not hold (unsigned, or signed by another key); a predecessor K
/// signed gets no warning.
#[test]
fn a_signed_link_checks_its_predecessors_signature() {
    let fx = fixture();
    let (key, _, id) = signing_key(&fx, "sign.key");
    let (other, _, _) = signing_key(&fx, "other.key");
    let link = |prev: &Path, name: &str| -> serde_json::Value {
        let b = fx.path(name);
        let (code, v, err) = run(&[
            "export",
            &fx.src_url(),
            s(&b),
            "--key-file",
            s(&fx.key),
            "--since",
            s(prev),
            "--sign-key",
            s(&key),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(b.join("manifest.json.minisig").is_file());
        v
    };
    let warned = |v: &serde_json::Value| {
        v["warnings"]
            .to_string()
            .contains("the predecessor's signature does not check with the signing key")
    };
    for (name, signer) in [("unsigned", None), ("by-other", Some(&other))] {
        let prev = fx.path(name);
        let mut extra = vec!["--cursor", "items=id"];
        if let Some(k) = signer {
            extra.extend(["--sign-key", s(k)]);
        }
        fx.export_to(&fx.src_url(), &prev, &extra);
        let v = link(&prev, &format!("{name}-next"));
        assert!(warned(&v), "{name}: {v}");
        assert!(v["warnings"].to_string().contains(&id), "{name}: {v}");
        // The export goes on: no reader's refusal text in its warning.
        assert!(
            !v["warnings"].to_string().contains("nothing written"),
            "{name}: {v}"
        );
    }
    let prev = fx.path("signed");
    fx.export_to(
        &fx.src_url(),
        &prev,
        &["--cursor", "items=id", "--sign-key", s(&key)],
    );
    let v = link(&prev, "signed-next");
    assert!(!warned(&v), "{v}");
}
