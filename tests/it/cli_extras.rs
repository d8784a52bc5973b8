//! What users of mature CLIs reach for (issue #19): `--version` naming the bundle format,
//! shell completions and a man page generated from the same clap definitions.

use std::io::Write;
use std::process::{Command as Proc, Stdio};

use crate::common::ferry;

fn stdout_of(args: &[&str]) -> String {
    let o = ferry().args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs `tool args` with `input` on stdin: `None` when the tool is not installed.
fn pipe(tool: &str, args: &[&str], input: &str) -> Option<std::process::Output> {
    let mut child = Proc::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    Some(child.wait_with_output().unwrap())
}

#[test]
fn version_names_the_bundle_format_versions() {
    let v = stdout_of(&["--version"]);
    assert!(
        v.starts_with(&format!("ferry {}", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(
        v.contains(&format!(
            "writes {}",
            ferry::bundle::manifest::FORMAT_VERSION
        )),
        "{v}"
    );
    assert!(
        v.contains(ferry::bundle::manifest::FORMAT_VERSION_CHAIN),
        "{v}"
    );
    assert!(
        v.contains(&format!(
            "reads {}.x",
            ferry::bundle::manifest::SUPPORTED_MAJOR
        )),
        "{v}"
    );
}

#[test]
fn completions_cover_every_command_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        for word in [
            "export",
            "import",
            "rekey",
            "compare",
            "trust-file",
            "identity",
        ] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
        // The shell itself parses it, where it is installed.
        match pipe(shell, &["-n"], &script) {
            Some(o) => assert!(
                o.status.success(),
                "{shell} -n: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            None => {
                eprintln!("NOT CHECKED: {shell} is not installed; its completion was not parsed")
            }
        }
    }
    let o = ferry().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn the_man_page_renders() {
    let page = stdout_of(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH ferry 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    assert!(
        page.contains("rekey") && page.contains("export"),
        "subcommands listed"
    );
    match pipe("man", &["-l", "-"], &page) {
        Some(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert!(text.contains("NAME") && text.contains("SYNOPSIS"), "{text}");
        }
        None => eprintln!("NOT CHECKED: man is not installed; the page was not rendered"),
    }
}
