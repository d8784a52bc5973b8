//! Summaries and `ferry compare`: a `--table` that names nothing is a usage error, a copy that lacks a
//! column is a difference even when the columns both sides have agree.

use crate::common::{ferry, fixture};

fn compare(a: &str, b: &str, extra: &[&str]) -> (i32, String, String) {
    let out = ferry()
        .args(["compare", a, b])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_table_that_matches_nothing_is_a_usage_error() {
    let fx = fixture();
    let src = fx.src_url();
    let (code, _, err) = compare(&src, &src, &["--table", "custmers"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("custmers"), "{err}");
    let (code, out, _) = compare(&src, &src, &["--table", "items"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_copy_without_a_column_differs_and_names_it() {
    let fx = fixture();
    let copy = fx.path("copy.db");
    std::fs::copy(&fx.src, &copy).unwrap();
    rusqlite::Connection::open(&copy)
        .unwrap()
        .execute_batch("ALTER TABLE notes DROP COLUMN body;")
        .unwrap();
    let (code, out, _) = compare(&fx.src_url(), &format!("sqlite://{}", copy.display()), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("different columns") && out.contains("[body]"),
        "{out}"
    );
}

#[test]
fn an_export_summary_counts_its_parts() {
    let fx = fixture();
    let out = ferry()
        .args([
            "export",
            &fx.src_url(),
            fx.path("b").to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let parts = crate::common::parts(&fx.path("b")).len() as u64;
    assert!(parts > 0);
    assert_eq!(v["errors"]["parts_total"], parts, "{v}");
}

/// A dry run prints no speed (it moves nothing); a keyless verify reports the bytes it read.
#[test]
fn a_dry_run_prints_no_speed_and_a_keyless_verify_its_bytes() {
    let fx = fixture();
    let out = ferry()
        .args([
            "export",
            &fx.src_url(),
            fx.path("d").to_str().unwrap(),
            "--key-file",
            fx.key.to_str().unwrap(),
            "--dry-run",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("export: dry run — ") && text.contains("nothing moved"),
        "{text}"
    );
    assert!(!text.contains("MB/s"), "{text}");
    let b = fx.export("v");
    let out = ferry()
        .args(["verify", b.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["totals"]["bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(v["totals"]["mb_per_s"].as_f64().unwrap() > 0.0, "{v}");
}
