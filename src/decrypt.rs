//! `ferry decrypt`: a verified bundle written out as the plain Parquet files it holds, one
//! directory per table, for any Parquet reader. Files appear only once fully authenticated.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::bundle::check::OpenBundle;
use crate::crypto::keys::Keys;
use crate::report::{Progress, RunReport};
use crate::{Error, Result};

/// A file-system-safe directory name for a table (names are data: any character may occur).
fn safe_name(table: &str) -> String {
    let mut s: String = table
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') || s.is_empty() {
        s.insert(0, '_');
    }
    if s != table {
        s.push_str(&format!(
            "-{}",
            &hex::encode(Sha256::digest(table.as_bytes()))[..8]
        ));
    }
    s.chars().take(100).collect()
}

/// `allow_unencrypted`: take a plain (`--no-encrypt`) bundle (see [`OpenBundle::refuse_downgrade`]).
pub fn decrypt(
    url: &str,
    dir: &Path,
    keys: &Keys,
    allow_unencrypted: bool,
    progress: &Progress,
) -> Result<RunReport> {
    let started = Instant::now();
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::Usage(format!(
            "{}: exists and is not empty; decrypt writes into a new or empty directory",
            dir.display()
        )));
    }
    let bundle = OpenBundle::open(url, false)?;
    bundle.refuse_downgrade(keys, Some(allow_unencrypted))?;
    let mut report = RunReport::new("decrypt");
    let encrypted = bundle.manifest.encrypted();
    report.set_trust(encrypted, encrypted);
    if !encrypted {
        report.warnings.push(
            "bundle is NOT encrypted (accepted with --allow-unencrypted): no MAC, so anyone who could write \
             the bundle could have made it"
                .into(),
        );
    }
    report.bundle = Some(crate::redact::display_location(url));
    report.bundle_id = Some(bundle.manifest.bundle_id.clone());
    report.warnings.extend(bundle.warnings());
    let total: u64 = bundle.manifest.files().map(|f| f.size).sum();
    let bar = progress.bar("verifying", Some(total), true);
    let checked = bundle.check(keys, &|f| bar.inc(f.size))?;
    bar.finish_and_clear();
    // Plaintext: directories 0700 and files 0600, never written through a symlink.
    private_dir(dir)?;
    let mut cat = private_file(&dir.join("catalog.json"))?;
    cat.write_all(&checked.catalog.to_json())
        .map_err(|e| Error::io(format!("cannot write {}", dir.display()), e))?;
    for t in &checked.catalog.tables {
        let t0 = Instant::now();
        let tdir = dir.join(safe_name(&t.table.qualified()));
        private_dir(&tdir)?;
        let mut bytes = 0u64;
        for p in &t.parts {
            let final_path = tdir.join(format!("part-{:05}.parquet", p.index));
            let tmp = tdir.join(format!(".part-{:05}.parquet.partial", p.index));
            let mut f = private_file(&tmp)?;
            let res = checked.write_plain_part(&p.path, &mut f).and_then(|()| {
                f.flush()
                    .and_then(|()| f.sync_all())
                    .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))
            });
            if let Err(e) = res {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            bytes += f.metadata().map(|m| m.len()).unwrap_or(0);
            std::fs::rename(&tmp, &final_path)
                .map_err(|e| Error::io(format!("cannot write {}", final_path.display()), e))?;
        }
        report.add_table(
            &t.table.qualified(),
            t.rows,
            bytes,
            t.parts.len() as u64,
            t0.elapsed(),
            "decrypted",
        );
    }
    report.close(started.elapsed());
    report.message = format!(
        "plain Parquet files written to {} (one directory per table; catalog.json lists them)",
        dir.display()
    );
    Ok(report)
}

/// A directory for plaintext: made with mode 0700 (an existing one keeps its mode).
fn private_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))
}

/// A new file for plaintext: mode 0600, and never through a symlink or onto an existing
/// file (O_CREAT | O_EXCL does not follow a link at the last component).
fn private_file(path: &std::path::Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))
}
