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

pub fn decrypt(url: &str, dir: &Path, keys: &Keys, progress: &Progress) -> Result<RunReport> {
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
    let mut report = RunReport::new("decrypt");
    report.bundle = Some(url.to_string());
    report.bundle_id = Some(bundle.manifest.bundle_id.clone());
    report.warnings.extend(bundle.warnings());
    let total: u64 = bundle.manifest.files().map(|f| f.size).sum();
    let bar = progress.bar("verifying", Some(total), true);
    let checked = bundle.check(keys, &|f| bar.inc(f.size))?;
    bar.finish_and_clear();
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    std::fs::write(dir.join("catalog.json"), checked.catalog.to_json())
        .map_err(|e| Error::io(format!("cannot write {}", dir.display()), e))?;
    for t in &checked.catalog.tables {
        let t0 = Instant::now();
        let tdir = dir.join(safe_name(&t.table.qualified()));
        std::fs::create_dir_all(&tdir)
            .map_err(|e| Error::io(format!("cannot create {}", tdir.display()), e))?;
        let mut bytes = 0u64;
        for p in &t.parts {
            let final_path = tdir.join(format!("part-{:05}.parquet", p.index));
            let tmp = tdir.join(format!(".part-{:05}.parquet.partial", p.index));
            let mut f = std::fs::File::create(&tmp)
                .map_err(|e| Error::io(format!("cannot create {}", tmp.display()), e))?;
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
