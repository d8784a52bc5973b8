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

/// The decrypted catalog's file, next to the table directories.
const CATALOG_FILE: &str = "catalog.json";

/// Longest readable prefix of a table's directory name (before its hash).
const DIR_PREFIX_CHARS: usize = 64;

/// The directory a table's plain Parquet files go into: distinct for every distinct
/// (schema, name), also on a case-insensitive file system, and never `.`, `..` or hidden.
///
/// Names of lowercase ASCII letters, digits and `_` stay as they are (`items`,
/// `public.items`): such a pair maps to its own spelling. Every other table (names are
/// data: any character may occur, and `a."b.c"` and `"a.b".c` both read `a.b.c`) gets a
/// readable, escaped, truncated prefix and then, always, `-` and 16 hex digits of a hash of
/// the exact (schema, name). The plain names hold no `-`, so they never meet a hashed one;
/// `catalog.json` (schema `catalog`, table `json`) is hashed too.
pub fn table_dir_name(schema: Option<&str>, name: &str) -> String {
    fn simple(s: &str) -> bool {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }
    let plain = match schema {
        None => simple(name).then(|| name.to_string()),
        Some(s) => (simple(s) && simple(name)).then(|| format!("{s}.{name}")),
    };
    // `catalog.json` is the catalog's own file, next to the table directories.
    if let Some(p) = plain.filter(|p| p.len() <= DIR_PREFIX_CHARS && p != CATALOG_FILE) {
        return p;
    }
    let escape = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut prefix = match schema {
        Some(s) => format!("{}.{}", escape(s), escape(name)),
        None => escape(name),
    };
    if prefix.starts_with('.') || prefix.is_empty() {
        prefix.insert(0, '_');
    }
    // ASCII only after escaping: characters are bytes.
    prefix.truncate(DIR_PREFIX_CHARS);
    // The exact pair, unambiguously: a schema is length-prefixed, and "no schema" differs
    // from every schema.
    let mut h = Sha256::new();
    h.update(b"ferry decrypt table directory v1\0");
    match schema {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            h.update(
                u64::try_from(s.len())
                    .expect("a length fits u64")
                    .to_be_bytes(),
            );
            h.update(s.as_bytes());
        }
    }
    h.update(name.as_bytes());
    format!("{prefix}-{}", &hex::encode(h.finalize())[..16])
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
    let signature = bundle.check_signature(keys)?;
    let mut report = RunReport::new("decrypt");
    let encrypted = bundle.manifest.encrypted();
    // Slots and MAC first (cheap): what the MAC proves depends on the slot that opened.
    let unlocked = bundle.unlock(keys)?;
    report.set_trust_opened(encrypted, unlocked.opened_by(), signature.checked);
    report.set_signature(&signature, bundle.fingerprint());
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
    let checked = bundle.check_unlocked(unlocked, &|f| bar.inc(f.size))?;
    bar.finish_and_clear();
    // One directory per table, each name distinct (see `table_dir_name`); checked before
    // anything is written, case-insensitively, for a case-insensitive file system.
    let dirs: Vec<String> = checked
        .catalog
        .tables
        .iter()
        .map(|t| table_dir_name(t.table.schema.as_deref(), &t.table.name))
        .collect();
    let mut seen = std::collections::HashMap::new();
    for (t, d) in checked.catalog.tables.iter().zip(&dirs) {
        if let Some(other) = seen.insert(d.to_ascii_lowercase(), t.table.qualified()) {
            return Err(Error::Other(format!(
                "tables {other} and {} would share the directory {d}; nothing written",
                t.table.qualified()
            )));
        }
    }
    // catalog.json: the catalog, each table with the directory its files are in.
    let mut catalog = serde_json::to_value(&checked.catalog)
        .map_err(|e| Error::Other(format!("cannot write the catalog: {e}")))?;
    if let Some(tables) = catalog.get_mut("tables").and_then(|t| t.as_array_mut()) {
        for (t, d) in tables.iter_mut().zip(&dirs) {
            if let Some(o) = t.as_object_mut() {
                o.insert("directory".into(), serde_json::Value::String(d.clone()));
            }
        }
    }
    let catalog = serde_json::to_vec_pretty(&catalog).expect("catalog serialises");
    // Plaintext: directories 0700 and files 0600, never written through a symlink, and
    // nothing ever overwritten: every table directory and file is made new.
    private_dir(dir)?;
    // What this run made, removed again if it fails part-way (a part that changed after
    // the verification pass): the directory was new or empty, so all of it is ours.
    let mut made: Vec<std::path::PathBuf> = Vec::new();
    let written = write_tables(&checked, dir, &dirs, &catalog, &mut made, &mut report);
    if let Err(e) = written {
        for p in made.iter().rev() {
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(p)
            } else {
                std::fs::remove_file(p)
            };
        }
        return Err(e);
    }
    report.errors.parts_total = report.tables.iter().map(|t| t.parts).sum();
    report.close(started.elapsed());
    report.message = format!(
        "plain Parquet files written to {} (one directory per table; catalog.json names each table's directory)",
        dir.display()
    );
    Ok(report)
}

/// Writes catalog.json and every table's parts into `dir`, recording in `made` each file
/// and table directory it creates.
fn write_tables(
    checked: &crate::bundle::check::Checked,
    dir: &Path,
    dirs: &[String],
    catalog: &[u8],
    made: &mut Vec<std::path::PathBuf>,
    report: &mut RunReport,
) -> Result<()> {
    let cat_path = dir.join(CATALOG_FILE);
    let mut cat = private_file(&cat_path)?;
    made.push(cat_path);
    let mut done = 0usize;
    cat.write_all(catalog)
        .and_then(|()| cat.sync_all())
        .map_err(|e| Error::io(format!("cannot write {}", dir.display()), e))?;
    for (t, d) in checked.catalog.tables.iter().zip(dirs) {
        let t0 = Instant::now();
        let tdir = dir.join(d);
        new_private_dir(&tdir)?;
        made.push(tdir.clone());
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
            publish(&tmp, &final_path)?;
            done += 1;
            crate::import::pause_at("decrypted-part", done);
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
    Ok(())
}

/// A directory for plaintext: made with mode 0700 (an existing one keeps its mode).
fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))
}

/// A table's directory: made new (mode 0700); one that exists already, or a symlink, is
/// refused rather than written into.
fn new_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Usage(format!(
                "{} already exists; decrypt never writes into or over an existing directory",
                dir.display()
            )),
            _ => Error::io(format!("cannot create {}", dir.display()), e),
        })
}

/// Gives a finished part its final name without ever replacing a file of that name: a hard
/// link fails on an existing name (a rename would overwrite it); where the file system has
/// no hard links, a rename onto a name seen free.
fn publish(tmp: &Path, final_path: &Path) -> Result<()> {
    let exists = || {
        Error::Usage(format!(
            "{} already exists; decrypt never overwrites a file",
            final_path.display()
        ))
    };
    match std::fs::hard_link(tmp, final_path) {
        Ok(()) => {
            let _ = std::fs::remove_file(tmp);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(tmp);
            Err(exists())
        }
        Err(_) => {
            if std::fs::symlink_metadata(final_path).is_ok() {
                let _ = std::fs::remove_file(tmp);
                return Err(exists());
            }
            std::fs::rename(tmp, final_path)
                .map_err(|e| Error::io(format!("cannot write {}", final_path.display()), e))
        }
    }
}

/// A new file for plaintext: mode 0600, and never through a symlink or onto an existing
/// file (O_CREAT | O_EXCL does not follow a link at the last component).
fn private_file(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))
}
