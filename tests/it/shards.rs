//! Sharded export (issue #18, acceptance 4; README "Sharded export"): a coordinator holds one
//! PostgreSQL snapshot, three workers started in any order (one killed with SIGKILL after it
//! wrote parts, then re-run) export their shares, `seal` writes the one manifest; the
//! bundle imports identical to a one-process export and lacks a row inserted after the
//! snapshot. Engines that cannot share a snapshot refuse `--shards` by name.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command as Proc, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{ferry, fixture, wait_until};
use crate::servers::{PgDb, psql};

/// A child process killed on drop, so a failing test leaves nothing running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_ferry(args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut c = Proc::new(assert_cmd::cargo::cargo_bin("ferry"));
    c.arg("--quiet")
        .args(args)
        .env_remove("FERRY_KEY_FILE")
        .env_remove("FERRY_SIGN_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    Running(c.spawn().unwrap())
}

/// Waits until the child prints `want` on stderr; panics with what it printed otherwise.
fn wait_for_line(child: &mut Running, want: &str) {
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(l) if l == want => return,
            Ok(l) => seen.push(l),
            Err(e) => panic!(
                "no {want:?} ({e:?}, status {:?}); stderr: {seen:?}",
                child.0.try_wait()
            ),
        }
    }
}

/// Runs ferry to completion; returns (exit code, stderr).
fn run(args: &[&str]) -> (i32, String) {
    let out = ferry().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn three_shards_one_killed_and_rerun_seal_into_the_one_process_bundle() {
    let Some(src) = PgDb::new("shard_src") else {
        return;
    };
    let Some(one) = PgDb::new("shard_one") else {
        return;
    };
    let Some(many) = PgDb::new("shard_many") else {
        return;
    };
    let fx = fixture();
    let key = s(&fx.key).to_string();
    psql(
        &src.url,
        "CREATE TABLE big (id int PRIMARY KEY, name text NOT NULL, amount numeric(12,2), at timestamptz, tags text[]);
         INSERT INTO big SELECT g, 'row ' || g || repeat('x', g % 90), (g * 7 % 100000) / 100.0,
                timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute',
                CASE WHEN g % 5 = 0 THEN NULL ELSE ARRAY['a' || g % 3, 'b'] END
           FROM generate_series(1, 20000) g;
         CREATE TABLE small (k text PRIMARY KEY, v bytea);
         INSERT INTO small SELECT 'k' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 300) g;
         CREATE TABLE empty (id int);
         ANALYZE;",
    );
    // The one-process bundle, before anything changes.
    let single = fx.path("single");
    fx.export_to(&src.url, &single, &[]);

    let bundle = fx.path("sharded");
    let b = s(&bundle).to_string();
    let mut coordinator = spawn_ferry(
        &[
            "export",
            &src.url,
            &b,
            "--shards",
            "3",
            "--coordinate",
            "--split-min-size",
            "64KiB",
            "--key-file",
            &key,
        ],
        &[],
    );
    wait_until(
        "the coordinator wrote the shard plan",
        Duration::from_secs(60),
        || bundle.join("shard-plan.json").exists(),
    );
    // After the snapshot: never in the bundle.
    psql(
        &src.url,
        "INSERT INTO big VALUES (999999, 'late', 1, now(), NULL)",
    );

    // Not sealed yet: verify and import refuse the location as they refuse a crashed export.
    let (code, err) = run(&["verify", &b, "--key-file", &key]);
    assert_eq!(code, 65, "verify of an unsealed bundle: {err}");
    let (code, err) = run(&["import", &b, &many.url, "--key-file", &key]);
    assert_eq!(code, 65, "import of an unsealed bundle: {err}");

    // Shard 2 first; shard 1 stops after its first item's parts and is killed there.
    let (code, err) = run(&["export", &src.url, &b, "--shard", "2", "--key-file", &key]);
    assert_eq!(code, 0, "shard 2: {err}");
    let after_shard_2 = parts_of(&bundle).len();
    // gc --delete leaves a sharded export waiting for seal alone (its parts have no
    // manifest yet, and are not leftovers).
    let (code, err) = run(&["gc", &b, "--delete", "--older-than", "0"]);
    assert_eq!(code, 75, "gc --delete beside a shard plan: {err}");
    assert!(err.contains("waiting for `ferry seal`"), "{err}");
    assert_eq!(
        parts_of(&bundle).len(),
        after_shard_2,
        "gc removed shard parts"
    );
    let mut killed = spawn_ferry(
        &["export", &src.url, &b, "--shard", "1", "--key-file", &key],
        &[
            ("FERRY_PAUSE_AT", "shard-item:1"),
            ("FERRY_PAUSE_SECS", "600"),
        ],
    );
    wait_for_line(&mut killed, "ferry: paused at shard-item 1");
    assert!(
        parts_of(&bundle).len() > after_shard_2,
        "the killed shard had written parts"
    );
    killed.0.kill().unwrap();
    assert!(!killed.0.wait().unwrap().success());
    assert!(!bundle.join("shard-1.done.fe").exists());

    // Seal refuses while shards are missing, naming them; nothing is written.
    let (code, err) = run(&["seal", &b, "--key-file", &key]);
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("0, 1"), "{err}");
    assert!(!bundle.join("manifest.json").exists());

    for i in ["0", "1"] {
        let (code, err) = run(&["export", &src.url, &b, "--shard", i, "--key-file", &key]);
        assert_eq!(code, 0, "shard {i}: {err}");
    }
    // What the killed run wrote is replaced, never listed twice: `verify --strict` below
    // finds no file the manifest does not list.
    let (code, err) = run(&["seal", &b, "--key-file", &key]);
    assert_eq!(code, 0, "seal: {err}");
    // Sealing released the coordinator.
    wait_until(
        "the coordinator ended after seal",
        Duration::from_secs(30),
        || coordinator.0.try_wait().unwrap().is_some(),
    );
    assert!(coordinator.0.try_wait().unwrap().unwrap().success());
    // One ordinary bundle: no plan, no records, no stray part.
    let (code, err) = run(&["verify", &b, "--key-file", &key, "--strict"]);
    assert_eq!(code, 0, "verify --strict: {err}");
    for f in ["shard-plan.json", "shard-plan.fe", "shard-0.done.fe"] {
        assert!(!bundle.join(f).exists(), "{f} left behind");
    }

    fx.import_to(&single, &one.url, &[]);
    fx.import_to(&bundle, &many.url, &[]);
    let out = ferry()
        .args(["compare", &one.url, &many.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(psql(&many.url, "SELECT count(*) FROM big"), "20000");
    assert_eq!(
        psql(&many.url, "SELECT count(*) FROM big WHERE id = 999999"),
        "0"
    );
    assert_eq!(psql(&many.url, "SELECT count(*) FROM small"), "300");
}

/// The part files under the bundle's data/ directory.
fn parts_of(bundle: &Path) -> Vec<String> {
    match std::fs::read_dir(bundle.join("data")) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => vec![],
    }
}

#[test]
fn mysql_and_sqlite_refuse_shards_by_name() {
    let fx = fixture();
    let key = s(&fx.key).to_string();
    let b = fx.path("b");
    for (url, name) in [
        (fx.src_url(), "sqlite"),
        ("mysql://root@127.0.0.1:3306/test".to_string(), "mysql"),
    ] {
        for extra in [
            &["--shards", "2", "--coordinate"][..],
            &["--shard", "0"][..],
        ] {
            let mut args = vec!["export", &url, s(&b), "--key-file", &key];
            args.extend_from_slice(extra);
            let (code, err) = run(&args);
            assert_eq!(code, 2, "{name} {extra:?}: {err}");
            assert!(
                err.contains(&format!("{name} sources cannot be exported in shards")),
                "{err}"
            );
            assert!(err.contains("snapshot"), "{err}");
        }
    }
    assert!(!b.exists(), "nothing written");
}
