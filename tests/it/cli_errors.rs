//! What the operator sees for the common failures: the error line(s) and the hint line,
//! compared whole (temporary paths, ids, times and host names normalised). A change to
//! these messages is a change to the command line's contract: update the text on purpose.

use std::path::Path;

use crate::common::{ferry, fixture};

/// Stderr with the fixture's directory as `$DIR`, ids as `<id>`, times and hosts as `<…>`.
fn normalised(stderr: &[u8], dir: &Path) -> String {
    let s = String::from_utf8_lossy(stderr).replace(&dir.display().to_string(), "$DIR");
    let rules = [
        (r"k1_[0-9a-f]{16}", "k1_<id>"),
        (r"\b[0-9a-f]{32}\b", "<id>"),
        (r"\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)", "<time>"),
        (r"pid \d+ on host [^,]+", "pid <n> on host <h>"),
    ];
    let mut s = s;
    for (re, to) in rules {
        s = regex::Regex::new(re)
            .unwrap()
            .replace_all(&s, to)
            .into_owned();
    }
    s.trim_end().to_string()
}

fn run(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let out = ferry().args(args).output().unwrap();
    (out.status.code(), normalised(&out.stderr, dir))
}

fn expect(got: (Option<i32>, String), code: i32, text: &str) {
    assert_eq!(got.0, Some(code), "{}", got.1);
    assert_eq!(got.1, text.trim_end(), "\n--- got ---\n{}\n", got.1);
}

#[test]
fn the_common_failures_read_as_they_should() {
    let fx = fixture();
    let dir = fx.dir.path();
    let b = fx.export("b");
    let key = fx.key.to_str().unwrap();
    let other = fx.other_key("other.key");
    let db = fx.path("t.db");
    let target = format!("sqlite://{}", db.display());
    let bs = b.to_str().unwrap();

    expect(
        run(&["import", bs, &target, "--key-file", other.to_str().unwrap()], dir),
        77,
        "ferry import: error: no key slot opens with key k1_<id> ($DIR/other.key). The bundle accepts: slot #1 (key file k1_<id>)
hint: give the key file (--key-file), age identity (--identity) or passphrase (--passphrase-env) the bundle was made for; `ferry inspect BUNDLE` lists the key ids that open it",
    );

    let missing = fx.path("nowhere");
    expect(
        run(&["import", missing.to_str().unwrap(), &target, "--key-file", key], dir),
        65,
        "ferry import: error: bundle $DIR/nowhere is invalid:
  - no bundle here (the directory does not exist)
hint: nothing was written; check the bundle's location, and copy a bundle that was damaged or changed in transit again from the sender (`ferry verify BUNDLE` lists every problem)",
    );

    // Another import holds the target (its lock file names it).
    std::fs::write(
        format!("{}.ferry-lock", db.display()),
        "pid 4242 on host h1, since 2026-12-03T10:00:00Z, bundle 0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("{}.ferry-lock", db.display()))
        .unwrap();
    lock.lock().unwrap();
    let got = run(&["import", bs, &target, "--key-file", key], dir);
    drop(lock);
    expect(
        got,
        75,
        "ferry import: error: another import into $DIR/t.db is running (pid <n> on host <h>, since <time>, bundle <id>; lock file $DIR/t.db.ferry-lock); nothing was written: run again when it has finished
hint: nothing partial was kept: re-run the same command once the cause is gone",
    );

    expect(
        run(&["import", bs, "postgres://postgres@127.0.0.1:1/test", "--key-file", key], dir),
        75,
        "ferry import: error: cannot reach PostgreSQL at postgres://postgres@127.0.0.1:1/test: error communicating with database: Connection refused (os error 111)
hint: nothing partial was kept: re-run the same command once the cause is gone",
    );

    expect(
        run(
            &[
                "import",
                bs,
                &target,
                "--key-file",
                key,
                "--table",
                "custmers",
            ],
            dir,
        ),
        2,
        "ferry import: error: custmers: the bundle has no such table
hint: see `ferry import --help` for the options",
    );
}

/// A reader that went away (`ferry … 2>&1 | head -1`) does not turn a refusal into a
/// panic: the exit code is still the error's (65), never 101.
#[test]
fn a_closed_stderr_keeps_the_exit_code() {
    let fx = fixture();
    let missing = fx.path("no-bundle-here");
    for _ in 0..3 {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"))
            .args(["verify", missing.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Both pipes closed on this side before ferry writes its error.
        drop(child.stdout.take());
        drop(child.stderr.take());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(65), "{status:?}");
    }
}
