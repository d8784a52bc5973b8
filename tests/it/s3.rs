//! Bundles on S3, against a real S3-compatible server (moto, started by `.ci/run`). The
//! tests read the standard `AWS_*` variables (`AWS_ENDPOINT_URL`, keys, region,
//! `AWS_ALLOW_HTTP`); without `AWS_ENDPOINT_URL` they fail under CI=true and are skipped
//! loudly elsewhere. Each test makes its own bucket. What every store must do (round trip,
//! tamper, conditional manifest, retries, a killed or broken export, gc) is the conformance
//! suite in `stores.rs`, run over S3 too; here only what is S3's own.

use std::process::Command as Proc;

use crate::common::{ferry, fixture};
use crate::postgres::{FIXTURE, fingerprint};
use crate::servers::{PgDb, psql};

/// A bucket of its own on the test server.
struct Bucket {
    name: String,
}

impl Bucket {
    fn new() -> Option<Bucket> {
        let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("AWS_ENDPOINT_URL is not set and CI=true (.ci/run starts moto and sets it)");
            }
            eprintln!(
                "SKIPPED: no S3 server (set AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, \
                 AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP=true; .ci/run starts moto)"
            );
            return None;
        };
        let name = format!(
            "ferry-test-{}",
            &ferry::bundle::layout::new_bundle_id()[..12].to_ascii_lowercase()
        );
        // moto takes an unsigned CreateBucket; object_store has no bucket API.
        let out = Proc::new("curl")
            .args(["-sS", "-f", "-X", "PUT", &format!("{endpoint}/{name}")])
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "cannot create bucket {name} at {endpoint}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Bucket { name })
    }

    fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.name)
    }
}

fn run(args: &[&str]) -> std::process::Output {
    ferry().args(args).output().expect("ferry runs")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn postgres_round_trip_through_s3_is_identical() {
    let Some(bucket) = Bucket::new() else { return };
    let Some(src) = PgDb::new("s3src") else {
        return;
    };
    let Some(dst) = PgDb::new("s3dst") else {
        return;
    };
    psql(&src.url, FIXTURE);
    let fx = fixture();
    let url = bucket.url("pg");
    let key = fx.key.to_str().unwrap();
    let o = run(&["export", &src.url, &url, "--key-file", key, "--jobs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["import", &url, &dst.url, "--key-file", key, "--jobs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, z) = (fingerprint(&src.url), fingerprint(&dst.url));
    assert_eq!(a.len(), 6, "{a:?}");
    assert_eq!(a, z);
}

#[test]
fn a_bundle_url_with_nothing_under_it_is_no_bundle() {
    let Some(bucket) = Bucket::new() else { return };
    let o = run(&["verify", &bucket.url("nothing/here")]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("no bundle here"), "{}", stderr(&o));
}
