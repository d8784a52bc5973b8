//! Issue #17, age recipients: `ferry keygen --age`, `export --recipient`/`--recipients-file`,
//! `--identity` on every reading command. A sender holding only the receiver's recipient
//! makes a bundle it cannot open itself (exit 77 naming the bundle's slots, nothing
//! written); the receiver's identity opens it, one made by `age-keygen` as well; a wrong
//! identity is named by its key id; hostile slots are refused before any work.

use std::path::{Path, PathBuf};
use std::process::Command as Proc;

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

#[track_caller]
fn assert_code(out: &Out, code: i32, needles: &[&str]) {
    assert_eq!(
        out.code,
        Some(code),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    for n in needles {
        assert!(out.stderr.contains(n), "{n:?} not in: {}", out.stderr);
    }
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

/// An age identity made by `ferry keygen --age`: (file, recipient, key id).
fn age_identity(fx: &Fixture, name: &str) -> (PathBuf, String, String) {
    let path = fx.path(name);
    let out = run(ferry().args(["keygen", "--age", s(&path), "--json"]));
    assert_code(&out, 0, &[]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let recipient = v["recipient"].as_str().unwrap().to_string();
    let key_id = v["key_id"].as_str().unwrap().to_string();
    assert!(recipient.starts_with("age1"), "{v}");
    assert!(key_id.starts_with("a1_") && key_id.len() == 19, "{v}");
    (path, recipient, key_id)
}

/// `ferry export SRC BUNDLE EXTRA…` (no key option of its own), asserted to succeed.
fn export(fx: &Fixture, name: &str, extra: &[&str]) -> PathBuf {
    let b = fx.path(name);
    let out = run(ferry().args(["export", &fx.src_url(), s(&b)]).args(extra));
    assert_code(&out, 0, &[]);
    b
}

/// The types and key ids of a bundle's slots, in order.
fn slots(b: &Path) -> Vec<(String, String)> {
    manifest(b)["encryption"]["key_slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["type"].as_str().unwrap().to_string(),
                s["key_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Whether an optional tool is installed; without it the test is skipped loudly, and fails
/// under CI=true (`.ci/run` installs it).
fn have(tool: &str) -> bool {
    let ok = Proc::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "{tool} is not installed and CI=true (apt-get install -y age)"
        );
        eprintln!("SKIPPED: {tool} is not installed (apt-get install -y age)");
    }
    ok
}

#[test]
fn keygen_age_writes_an_age_keygen_file_and_plain_keygen_still_works() {
    let fx = fixture();
    let path = fx.path("id.txt");
    let out = run(ferry().args(["keygen", "--age", s(&path)]));
    assert_code(&out, 0, &[]);
    let recipient = out.stdout.trim();
    assert!(
        recipient.starts_with("age1") && recipient.len() == 62,
        "{recipient}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("# created: "), "{text}");
    assert_eq!(lines[1], format!("# public key: {recipient}"));
    assert!(lines[2].starts_with("AGE-SECRET-KEY-1"), "{text}");
    assert!(
        !out.stdout.contains("AGE-SECRET") && !out.stderr.contains("AGE-SECRET"),
        "the secret was printed"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // never over an existing file, nor through a symlink
    let out = run(ferry().args(["keygen", "--age", s(&path)]));
    assert_code(&out, 2, &["already exists"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    #[cfg(unix)]
    {
        let target = fx.path("target");
        let link = fx.path("link.txt");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let out = run(ferry().args(["keygen", "--age", s(&link)]));
        assert_ne!(out.code, Some(0));
        assert!(!target.exists());
    }
    // `ferry keygen FILE` is a ferry key file, as before
    let k = fx.path("plain.key");
    let out = run(ferry().args(["keygen", s(&k)]));
    assert_code(&out, 0, &[]);
    assert!(out.stdout.trim().starts_with("k1_"), "{}", out.stdout);
    assert!(std::fs::read_to_string(&k).unwrap().contains("FERRYKEY1"));
}

/// Acceptance 1: the sender holds only the recipient. Every reading command with what the
/// sender has (nothing, or its own key file, not in the bundle) exits 77 naming the
/// bundle's slot, and writes nothing; verify without a key still checks the files.
#[test]
fn a_sender_with_only_a_recipient_cannot_open_its_own_bundle() {
    let fx = fixture();
    let (_, recipient, key_id) = age_identity(&fx, "receiver.txt");
    let b = export(
        &fx,
        "b",
        &["--recipient", &recipient, "--cursor", "items=id"],
    );
    assert_eq!(slots(&b), [("age".to_string(), key_id.clone())]);
    let out = run(ferry().args(["verify", s(&b)]));
    assert_code(&out, 0, &[]);
    assert!(
        out.stdout.contains("checked without a key"),
        "{}",
        out.stdout
    );
    // Its summary says what was checked, not "0 rows".
    assert!(
        out.stdout.contains("verify: ok — 2 parts and the catalog")
            && out.stdout.contains("rows are read only with a key")
            && !out.stdout.contains("0 rows"),
        "{}",
        out.stdout
    );

    let accepts = format!("slot #1 (age recipient {key_id})");
    let key = s(&fx.key).to_string();
    let db = fx.path("t.db");
    let dir = fx.path("plain");
    let next = fx.path("next");
    for sender in [vec![], vec!["--key-file", key.as_str()]] {
        let commands: Vec<Vec<String>> = vec![
            vec!["import".into(), s(&b).into(), sqlite(&db)],
            vec!["verify".into(), s(&b).into()],
            vec!["inspect".into(), s(&b).into()],
            vec!["decrypt".into(), s(&b).into(), s(&dir).into()],
            vec!["compare".into(), s(&b).into(), fx.src_url()],
        ];
        for c in commands {
            if sender.is_empty() && (c[0] == "verify" || c[0] == "inspect") {
                continue; // without a key they report what needs none
            }
            let out = run(ferry().args(&c).args(&sender));
            assert_code(&out, 77, &[&accepts]);
            if !sender.is_empty() {
                assert!(
                    out.stderr.contains("no key slot opens with key k1_"),
                    "{c:?}: {}",
                    out.stderr
                );
            }
        }
        // the next link of the chain: the sender cannot read its predecessor either
        let out = run(ferry()
            .args(["export", &fx.src_url(), s(&next), "--since", s(&b)])
            .args(["--recipient", &recipient])
            .args(&sender));
        assert_code(&out, 77, &[&accepts]);
        if sender.is_empty() {
            assert!(out.stderr.contains("only recipients"), "{}", out.stderr);
        }
        assert!(!next.join("manifest.json").exists());
    }
    assert!(user_tables(&db).is_empty(), "{:?}", user_tables(&db));
    assert_eq!(ledger_rows(&db), 0);
    assert!(!dir.exists(), "decrypt wrote {}", dir.display());
}

/// The receiver imports with its identity (from the file, or FERRY_IDENTITY); another
/// identity is named by its key id and writes nothing.
#[test]
fn the_receiver_opens_with_its_identity_and_a_wrong_one_is_named() {
    let fx = fixture();
    let (id, recipient, key_id) = age_identity(&fx, "receiver.txt");
    let (other, _, other_id) = age_identity(&fx, "other.txt");
    let b = export(&fx, "b", &["--recipient", &recipient]);

    let db = fx.path("t.db");
    let out = run(ferry().args(["import", s(&b), &sqlite(&db), "--identity", s(&other)]));
    assert_code(
        &out,
        77,
        &[
            &format!("no key slot for identity {other_id} (from {})", s(&other)),
            &format!("slot #1 (age recipient {key_id})"),
        ],
    );
    assert!(user_tables(&db).is_empty());
    assert_eq!(ledger_rows(&db), 0);

    let out = run(ferry().args(["import", s(&b), &sqlite(&db), "--identity", s(&id)]));
    assert_code(&out, 0, &[]);
    assert_eq!(dump(&db), dump(&fx.src));

    // FERRY_IDENTITY stands for --identity; verify then decrypts every part
    let out = run(ferry()
        .env("FERRY_IDENTITY", &id)
        .args(["verify", s(&b), "--json"]));
    assert_code(&out, 0, &[]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    // An age slot is made with a public recipient: the MAC says nothing of the sender.
    assert_eq!(v["authenticated"], serde_json::json!(false), "{v}");
    assert!(v["warnings"].to_string().contains("--trust"), "{v}");
    // inspect lists the tables; its key ids name the slot
    let out = run(ferry().args(["inspect", s(&b), "--json", "--identity", s(&id)]));
    assert_code(&out, 0, &[]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["key_ids"], serde_json::json!([key_id]));
    assert_eq!(v["catalog"]["tables"].as_array().unwrap().len(), 2, "{v}");
    // compare with the identity: the bundle equals its source
    let out = run(ferry().args(["compare", s(&b), &fx.src_url(), "--identity", s(&id)]));
    assert_code(&out, 0, &[]);
}

/// An identity file made by Debian's `age-keygen` works as one made by ferry, and the age
/// CLI opens an age slot (the slot is a plain age message).
#[test]
fn an_identity_made_by_age_keygen_opens_a_bundle_and_age_opens_the_slot() {
    if !have("age-keygen") || !have("age") {
        return;
    }
    let fx = fixture();
    let id = fx.path("age-keygen.txt");
    let st = Proc::new("age-keygen").arg("-o").arg(&id).output().unwrap();
    assert!(st.status.success(), "{st:?}");
    let text = std::fs::read_to_string(&id).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("age-keygen writes the public key")
        .to_string();
    let y = Proc::new("age-keygen").arg("-y").arg(&id).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&y.stdout).trim(), recipient);

    let b = export(&fx, "b", &["--recipient", &recipient]);
    let db = fx.path("t.db");
    let out = run(ferry().args(["import", s(&b), &sqlite(&db), "--identity", s(&id)]));
    assert_code(&out, 0, &[]);
    assert_eq!(dump(&db), dump(&fx.src));

    // `age -d` opens the slot: the binding, then 32 bytes of data key
    let m = manifest(&b);
    let slot = &m["encryption"]["key_slots"][0];
    let msg = hex::decode(slot["age_file"].as_str().unwrap()).unwrap();
    let f = fx.path("slot.age");
    std::fs::write(&f, msg).unwrap();
    let out = Proc::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&id)
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let want = format!(
        "ferry keyslot v1\0{}\0age\0{}",
        m["bundle_id"].as_str().unwrap(),
        slot["key_id"].as_str().unwrap()
    );
    assert!(out.stdout.starts_with(want.as_bytes()));
    assert_eq!(out.stdout.len(), want.len() + 32);
}

/// A bundle with a key file and a recipient opens with either; slot order and key ids are
/// kept in the manifest.
#[test]
fn a_bundle_for_a_key_file_and_a_recipient_opens_with_either() {
    let fx = fixture();
    let (id, recipient, key_id) = age_identity(&fx, "receiver.txt");
    let b = export(
        &fx,
        "b",
        &["--key-file", s(&fx.key), "--recipient", &recipient],
    );
    let got = slots(&b);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, "key-file");
    assert!(got[0].1.starts_with("k1_"));
    assert_eq!(got[1], ("age".to_string(), key_id));
    let db1 = fx.path("one.db");
    fx.import_to(&b, &sqlite(&db1), &[]);
    assert_eq!(dump(&db1), dump(&fx.src));
    let db2 = fx.path("two.db");
    let out = run(ferry().args(["import", s(&b), &sqlite(&db2), "--identity", s(&id)]));
    assert_code(&out, 0, &[]);
    assert_eq!(dump(&db2), dump(&fx.src));
    // decrypt with the identity
    let dir = fx.path("plain");
    let out = run(ferry().args(["decrypt", s(&b), s(&dir), "--identity", s(&id)]));
    assert_code(&out, 0, &[]);
    assert!(dir.exists());
}

/// `--recipients-file`: comments and blank lines, a slot per recipient in file order; each
/// identity opens the bundle. A secret key in it is refused without being repeated.
#[test]
fn a_recipients_file_with_comments_gives_a_slot_per_recipient() {
    let fx = fixture();
    let (id1, r1, k1) = age_identity(&fx, "one.txt");
    let (id2, r2, k2) = age_identity(&fx, "two.txt");
    let rf = fx.path("recipients.txt");
    std::fs::write(
        &rf,
        format!("# the receiving site\n\n{r1}\n  # backup operator\n{r2}\n\n"),
    )
    .unwrap();
    let b = export(&fx, "b", &["--recipients-file", s(&rf)]);
    assert_eq!(
        slots(&b),
        [("age".to_string(), k1), ("age".to_string(), k2)]
    );
    for id in [&id1, &id2] {
        let out = run(ferry().args(["verify", s(&b), "--identity", s(id)]));
        assert_code(&out, 0, &[]);
    }
    // an identity file given as a recipients file: refused, its secret not repeated
    let secret = std::fs::read_to_string(&id1).unwrap();
    let secret = secret.lines().last().unwrap();
    let b2 = fx.path("b2");
    let out = run(ferry().args([
        "export",
        &fx.src_url(),
        s(&b2),
        "--recipients-file",
        s(&id1),
    ]));
    assert_code(&out, 2, &["line 3", "identity"]);
    assert!(!out.stderr.contains(&secret[16..]), "{}", out.stderr);
    assert!(!b2.exists());
    // a bad recipient on the command line: usage error, nothing written
    let out = run(ferry().args(["export", &fx.src_url(), s(&b2), "--recipient", "age1nope"]));
    assert_code(&out, 2, &["--recipient"]);
    assert!(!b2.exists());
}

/// An identity or a recipient is a key option: with --no-encrypt (also FERRY_IDENTITY set)
/// it is refused (exit 2); given for a plain bundle it is a downgrade (exit 77).
#[test]
fn identities_and_recipients_count_as_key_options() {
    let fx = fixture();
    let (id, recipient, _) = age_identity(&fx, "receiver.txt");
    let b = fx.path("b");
    let out = run(ferry().args([
        "export",
        &fx.src_url(),
        s(&b),
        "--no-encrypt",
        "--recipient",
        &recipient,
    ]));
    assert_code(&out, 2, &["--no-encrypt conflicts with --recipient"]);
    let out = run(ferry().env("FERRY_IDENTITY", &id).args([
        "export",
        &fx.src_url(),
        s(&b),
        "--no-encrypt",
    ]));
    assert_code(&out, 2, &["FERRY_IDENTITY (set in the environment)"]);
    assert!(!b.exists());

    let plain = export(&fx, "plain", &["--no-encrypt"]);
    let db = fx.path("t.db");
    for args in [
        vec!["import", s(&plain), &sqlite(&db), "--identity", s(&id)],
        vec![
            "import",
            s(&plain),
            &sqlite(&db),
            "--identity",
            s(&id),
            "--allow-unencrypted",
        ],
        vec!["verify", s(&plain), "--identity", s(&id)],
        vec!["inspect", s(&plain), "--identity", s(&id)],
    ] {
        let out = run(ferry().args(&args));
        assert_code(&out, 77, &["bundle is NOT encrypted"]);
    }
    assert!(user_tables(&db).is_empty());
    // the next link after a plain bundle, for a recipient: a downgrade too
    let chain = export(&fx, "chain", &["--no-encrypt", "--cursor", "items=id"]);
    let next = fx.path("next");
    let out = run(ferry().args([
        "export",
        &fx.src_url(),
        s(&next),
        "--since",
        s(&chain),
        "--recipient",
        &recipient,
    ]));
    assert_code(&out, 77, &["bundle is NOT encrypted"]);
    assert!(!next.join("manifest.json").exists());
}

/// The sender can keep chains going with an identity of its own: export --identity gives
/// its recipient a slot and opens the predecessor.
#[test]
fn a_chain_continues_with_an_identity_and_a_job_file_takes_both_options() {
    let fx = fixture();
    let (receiver, recipient, rk) = age_identity(&fx, "receiver.txt");
    let (sender, _, sk) = age_identity(&fx, "sender.txt");
    let job = fx.path("job.toml");
    std::fs::write(
        &job,
        format!(
            "[export]\nrecipient = [\"{recipient}\"]\nidentity = \"sender.txt\"\n\
             [import]\nidentity = \"receiver.txt\"\n"
        ),
    )
    .unwrap();
    let config = s(&job).to_string();
    let b1 = export(&fx, "b1", &["--config", &config, "--cursor", "items=id"]);
    assert_eq!(
        slots(&b1),
        [
            ("age".to_string(), rk.clone()),
            ("age".to_string(), sk.clone())
        ]
    );
    let b2 = export(&fx, "b2", &["--config", &config, "--since", s(&b1)]);
    assert_eq!(slots(&b2).len(), 2);
    let db = fx.path("t.db");
    for b in [&b1, &b2] {
        let out = run(ferry().current_dir(fx.dir.path()).args([
            "import",
            s(b),
            &sqlite(&db),
            "--config",
            &config,
        ]));
        assert_code(&out, 0, &[]);
    }
    assert_eq!(dump(&db), dump(&fx.src));
    let _ = (receiver, sender);
}

/// Hostile slots: an unknown kind is named (not a serde dump), an oversize or garbage age
/// slot is refused before any work, and a slot copied from another bundle does not open
/// this one; nothing is written in each case.
#[test]
fn hostile_and_foreign_age_slots_are_refused_with_nothing_written() {
    let fx = fixture();
    let (id, recipient, _) = age_identity(&fx, "receiver.txt");
    let a = export(&fx, "a", &["--recipient", &recipient]);
    let b = export(&fx, "b", &["--recipient", &recipient]);
    let db = fx.path("t.db");
    let edit = |name: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let to = fx.path(name);
        let st = Proc::new("cp").arg("-r").arg(&b).arg(&to).status().unwrap();
        assert!(st.success());
        let mut m = manifest(&to);
        f(&mut m);
        std::fs::write(
            to.join("manifest.json"),
            serde_json::to_vec_pretty(&m).unwrap(),
        )
        .unwrap();
        to
    };
    let foo = edit("foo", &|m| {
        m["encryption"]["key_slots"][0]["type"] = "foo".into()
    });
    let huge = edit("huge", &|m| {
        m["encryption"]["key_slots"][0]["age_file"] = "ab".repeat(1 << 20).into();
    });
    let garbage = edit("garbage", &|m| {
        m["encryption"]["key_slots"][0]["age_file"] =
            hex::encode("age-encryption.org/v1\n-> X25519 zz\n").into();
    });
    let a_slot = manifest(&a)["encryption"]["key_slots"][0].clone();
    let foreign = edit("foreign", &|m| {
        m["encryption"]["key_slots"][0] = a_slot.clone()
    });

    for (bundle, code, needle) in [
        (
            &foo,
            65,
            "key slot #1 is of a kind this ferry does not know (\"foo\")",
        ),
        (&huge, 65, "refused unread"),
        (&garbage, 77, "slot #1 (age recipient a1_"),
        (&foreign, 77, "made for another bundle"),
    ] {
        let out = run(ferry().args(["import", s(bundle), &sqlite(&db), "--identity", s(&id)]));
        assert_code(&out, code, &[needle]);
        assert!(out.stderr.len() < 2000, "{}", out.stderr);
        assert!(!out.stderr.contains("ababab"), "{}", out.stderr);
        assert!(user_tables(&db).is_empty());
        // a courier's verify without a key sees the malformed manifests too
        if code == 65 {
            let out = run(ferry().args(["verify", s(bundle)]));
            assert_code(&out, 65, &[needle]);
        }
    }
    assert_eq!(ledger_rows(&db), 0);
}

/// Anyone can make a bundle for a public recipient: whether a report says "authenticated"
/// is decided by the slot that opened the bundle, never by the key options given. A forged
/// bundle (an age slot only) opened by a receiver who also holds a key file is reported
/// NOT authenticated by verify, import, decrypt, inspect and compare; a bundle the key file
/// opens is authenticated; a rekey that adds a key-file slot to the forged one warns.
#[test]
fn a_bundle_anyone_could_make_for_the_recipient_is_never_reported_authenticated() {
    let fx = fixture();
    let (id, recipient, _) = age_identity(&fx, "receiver.txt");
    let key = s(&fx.key).to_string();
    let forged = fx.path("forged");
    let out = run(ferry()
        .args([
            "export",
            &fx.src_url(),
            s(&forged),
            "--recipient",
            &recipient,
        ])
        .arg("--json"));
    assert_code(&out, 0, &[]);
    // The sender is told: for recipients only and unsigned, nothing shows who made it.
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["authenticated"], false, "{v}");
    assert!(
        v["warnings"]
            .to_string()
            .contains("sign it with --sign-key"),
        "{v}"
    );
    let genuine = export(
        &fx,
        "genuine",
        &["--recipient", &recipient, "--key-file", &key],
    );
    let both = ["--identity", s(&id), "--key-file", &key];

    let json = |out: &Out| -> serde_json::Value {
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
    };
    let mut n = 0;
    for (b, want) in [(&forged, false), (&genuine, true)] {
        for cmd in ["verify", "import", "decrypt", "inspect", "compare"] {
            n += 1;
            let mut args: Vec<String> = vec![cmd.into(), s(b).into()];
            match cmd {
                "import" => args.push(sqlite(&fx.path(&format!("t{n}.db")))),
                "decrypt" => args.push(s(&fx.path(&format!("plain{n}"))).into()),
                "compare" => args.push(fx.src_url()),
                _ => {}
            }
            let out = run(ferry().args(&args).args(both).arg("--json"));
            assert_code(&out, 0, &[]);
            let v = json(&out);
            assert_eq!(
                v["authenticated"],
                serde_json::json!(want),
                "{cmd} {}: {v}",
                s(b)
            );
            if cmd == "inspect" {
                let kinds: Vec<&str> = v["slots"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["kind"].as_str().unwrap())
                    .collect();
                let expected: &[&str] = if want { &["key-file", "age"] } else { &["age"] };
                assert_eq!(kinds, expected, "{v}");
            }
            let warned = if cmd == "inspect" {
                v["trust_note"].to_string()
            } else {
                v["warnings"].to_string()
            };
            assert_eq!(warned.contains("--trust"), !want, "{cmd}: {v}");
        }
    }
    // The same with the key file from the environment, and in the text summary.
    let out =
        run(ferry()
            .env("FERRY_KEY_FILE", &key)
            .args(["verify", s(&forged), "--identity", s(&id)]));
    assert_code(&out, 0, &[]);
    assert!(
        out.stdout.contains("encrypted, NOT authenticated"),
        "{}",
        out.stdout
    );
    let out = run(ferry().args(["inspect", s(&forged), "--identity", s(&id)]));
    assert_code(&out, 0, &[]);
    assert!(out.stdout.contains("NOT authenticated"), "{}", out.stdout);

    // A rekey that gives the forged bundle a key-file slot says what it vouches for.
    let k2 = fx.path("k2.key");
    assert_code(&run(ferry().args(["keygen", s(&k2)])), 0, &[]);
    let out = run(ferry().args([
        "rekey",
        s(&forged),
        "--identity",
        s(&id),
        "--add-key-file",
        s(&k2),
    ]));
    assert_code(&out, 0, &[]);
    assert!(
        out.stdout
            .contains("opened with an age identity and no signature checked"),
        "{}",
        out.stdout
    );
    // Adding another recipient vouches for nothing: no such warning.
    let (_, r2, _) = age_identity(&fx, "second.txt");
    let out = run(ferry().args([
        "rekey",
        s(&genuine),
        "--key-file",
        &key,
        "--add-recipient",
        &r2,
    ]));
    assert_code(&out, 0, &[]);
    assert!(
        !out.stdout.contains("no signature checked"),
        "{}",
        out.stdout
    );
}

/// `FERRY_KEY_FILE` or `FERRY_IDENTITY` in the sender's environment would give a bundle for
/// recipients a slot the sender opens, unseen: refused (exit 2, nothing written); the same
/// key on the command line is a choice and gets its slot.
#[test]
fn a_key_from_the_senders_environment_never_joins_an_export_to_recipients() {
    let fx = fixture();
    let (id, recipient, rk) = age_identity(&fx, "receiver.txt");
    let (sender_id, _, _) = age_identity(&fx, "sender.txt");
    let key = s(&fx.key).to_string();
    let b = fx.path("b");
    for (var, value) in [
        ("FERRY_KEY_FILE", key.clone()),
        ("FERRY_IDENTITY", s(&sender_id).to_string()),
    ] {
        let out = run(ferry().env(var, &value).args([
            "export",
            &fx.src_url(),
            s(&b),
            "--recipient",
            &recipient,
        ]));
        assert_code(
            &out,
            2,
            &[
                &format!("--recipient given with {var} set in the environment"),
                &format!("Unset {var}"),
            ],
        );
        assert!(!b.exists(), "{var}: export wrote {}", b.display());
        // --json: the failure's summary carries the hint too.
        let out = run(ferry().env(var, &value).args([
            "export",
            &fx.src_url(),
            s(&b),
            "--recipient",
            &recipient,
            "--json",
        ]));
        assert_eq!(out.code, Some(2));
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["status"], "failed", "{v}");
        assert!(
            v["hint"]
                .as_str()
                .is_some_and(|h| h.contains("ferry export --help")),
            "{v}"
        );
    }
    // On the command line: two slots, as asked.
    let b = export(&fx, "b", &["--recipient", &recipient, "--key-file", &key]);
    let got = slots(&b);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1], ("age".to_string(), rk));
    // Without a recipient, the environment's key file encrypts as before.
    let out =
        run(ferry()
            .env("FERRY_KEY_FILE", &key)
            .args(["export", &fx.src_url(), s(&fx.path("c"))]));
    assert_code(&out, 0, &[]);
    let _ = id;
}
