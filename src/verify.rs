//! `ferry verify`: what a courier can check without the key (manifest, file set, sizes,
//! SHA-256 of every file), and with the key everything else (slots, MAC, authenticated
//! decryption of every file, catalog, full Parquet decode with row counts). Every finding
//! is collected and reported at once.

use std::time::Instant;

use crate::bundle::check::{OpenBundle, findings_of};
use crate::crypto::keys::Keys;
use crate::error::Finding;
use crate::report::{Progress, RunReport};
use crate::{Error, Result};

pub fn verify(url: &str, keys: &Keys, strict: bool, progress: &Progress) -> Result<RunReport> {
    let started = Instant::now();
    let bundle = OpenBundle::open(url, strict)?;
    bundle.refuse_downgrade(keys, None)?;
    // A courier's check too: with a trust list the signature holds, key or no key.
    let signature = bundle.check_signature(keys)?;
    let mut report = RunReport::new("verify");
    report.bundle = Some(crate::redact::display_location(url));
    report.bundle_id = Some(bundle.manifest.bundle_id.clone());
    report.warnings.extend(bundle.warnings());
    let total: u64 = bundle.manifest.files().map(|f| f.size).sum();
    let files = bundle.manifest.parts.len() + 1;
    let bar = progress.bar("verifying", Some(total), true);
    let keyless = keys.is_empty() && bundle.manifest.encrypted();
    let unlocked = if keyless {
        None
    } else {
        Some(bundle.unlock(keys)?)
    };
    let encrypted = bundle.manifest.encrypted();
    report.set_trust_opened(
        encrypted,
        unlocked.as_ref().and_then(|u| u.opened_by()),
        signature.checked,
    );
    report.set_signature(&signature, bundle.fingerprint());
    let authenticated = unlocked.is_some();
    let mut scan = bundle.scan_all(unlocked, &|f| bar.inc(f.size));
    bar.finish_and_clear();
    let mut findings: Vec<Finding> = std::mem::take(&mut scan.findings);
    if authenticated && findings.is_empty() {
        let t0 = Instant::now();
        let checked = bundle.verified(scan)?;
        for t in &checked.catalog.tables {
            let (mut rows, mut bytes) = (0u64, 0u64);
            for p in t.all_parts() {
                bytes += checked
                    .bundle
                    .manifest
                    .parts
                    .iter()
                    .find(|e| e.path == p.path)
                    .map_or(0, |e| e.size);
                let label = format!("table {} part {}", t.table.qualified(), p.index);
                let decoded = checked.part_reader(&p.path).and_then(|r| {
                    let (_, batches) = r.batches(checked.bundle.url(), &label, 65_536)?;
                    let mut n = 0u64;
                    for b in batches {
                        n += b?.num_rows() as u64;
                    }
                    Ok(n)
                });
                match decoded {
                    Ok(n) if n == p.rows => rows += n,
                    Ok(n) => findings.push(Finding {
                        file: p.path.clone(),
                        message: format!(
                            "table {} part {}: decoded {n} rows, catalog says {}",
                            t.table.qualified(),
                            p.index,
                            p.rows
                        ),
                    }),
                    Err(e) => findings.extend(findings_of(e)),
                }
            }
            report.add_table(
                &t.table.qualified(),
                rows,
                bytes,
                t.parts.len() as u64,
                t0.elapsed(),
                "verified",
            );
        }
        report.message = if encrypted {
            format!(
                "bundle {} is intact: {files} files match the manifest, the key opens it, every part decrypts, decodes and has its row count",
                checked.bundle.manifest.bundle_id
            )
        } else {
            format!(
                "bundle {} is NOT encrypted and NOT authenticated: {files} files match the manifest and every part \
                 decodes and has its row count, but there is no MAC, so anyone who could write the bundle could have made it",
                checked.bundle.manifest.bundle_id
            )
        };
        report.errors.parts_total = checked.bundle.manifest.parts.len() as u64;
        if !findings.is_empty() {
            return Err(Error::InvalidBundle {
                bundle: crate::redact::display_location(url),
                findings,
            });
        }
        report.close(started.elapsed());
        return Ok(report);
    }
    if !findings.is_empty() {
        return Err(Error::InvalidBundle {
            bundle: crate::redact::display_location(url),
            findings,
        });
    }
    report.errors.parts_total = bundle.manifest.parts.len() as u64;
    report.close(started.elapsed());
    report.set_bytes(total);
    report.message = if bundle.manifest.encrypted() {
        format!(
            "bundle {}: {files} files present with the declared sizes and SHA-256 (checked without a key; \
             with --key-file, --identity or --passphrase-env verify also decrypts and decodes every part)",
            bundle.manifest.bundle_id
        )
    } else {
        format!(
            "bundle {} is NOT encrypted and NOT authenticated: {files} files present with the declared sizes and \
             SHA-256, but there is no MAC, so anyone who could write the bundle could have made it",
            bundle.manifest.bundle_id
        )
    };
    Ok(report)
}
