//! `ferry gc BUNDLE`: what a killed or failed export left under a bundle location, and its
//! removal.
//!
//! An export writes its parts, then the catalog, `SHA256SUMS` and, last, `manifest.json`
//! (created, never overwritten). Killed before the manifest (`kill -9`, a lost machine), it
//! leaves objects no bundle will ever list; an export that lost a race for the manifest
//! leaves parts beside the winner's. `gc` lists them, and with `--delete` removes them:
//!
//! - With no `manifest.json`: every object of ferry's shapes (parts `data/<hex>.fe|parquet`,
//!   `catalog.fe`/`catalog.json`, `SHA256SUMS`, `manifest.mac`, the signature, and a local
//!   disk's staged `NAME#N` files).
//! - With a valid `manifest.json`: only part-shaped objects the manifest does not list, and
//!   staged `NAME#N` files. A complete bundle's own files are never touched; a manifest that
//!   does not parse stops gc (exit 65): it removes nothing from a location it cannot read.
//! - Objects of other names are never touched, only reported.
//!
//! A running export must not lose its parts: `--delete` refuses (exit 75) while the newest
//! object under the location is younger than `--older-than` (default 1 hour). An export
//! writes a part at least every few minutes while it runs, so the newest object says when
//! it last wrote. On a local disk gc also holds the directory's lock, as `rekey` does.

use std::time::{Duration, SystemTime};

use crate::bundle::layout;
use crate::bundle::manifest::Manifest;
use crate::report::RunReport;
use crate::storage::{Entry, EntryKind, Store};
use crate::{Error, Result};

/// How `ferry gc` runs.
#[derive(Debug, Clone)]
pub struct GcPlan {
    pub bundle: String,
    /// Remove what is found (otherwise only list it).
    pub delete: bool,
    /// The newest object under the location must be at least this old for `--delete`.
    pub older_than: Duration,
}

/// What gc found at one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Listed by a complete bundle's manifest, or one of its own files: kept.
    Bundle,
    /// Left by an unfinished export: removed with `--delete`.
    Leftover,
    /// Not a name ferry writes: never touched.
    Foreign,
}

/// A staged file `object_store` writes beside its destination on a local disk (`NAME#N`),
/// for one of the names an export writes.
fn staged(path: &str) -> bool {
    path.rsplit_once('#').is_some_and(|(base, n)| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && ferry_name(base)
    })
}

/// Names an export writes.
fn ferry_name(path: &str) -> bool {
    layout::is_part_path(path)
        || [
            layout::MANIFEST,
            layout::MANIFEST_MAC,
            layout::SHA256SUMS,
            layout::MANIFEST_SIG,
            layout::MANIFEST_SIG_PENDING,
            layout::CATALOG_ENCRYPTED,
            layout::CATALOG_PLAIN,
        ]
        .contains(&path)
}

/// Sorts every entry under a location: `manifest` is the parsed manifest, when there is one.
pub fn classify(entries: &[Entry], manifest: Option<&Manifest>) -> Vec<(Entry, Verdict)> {
    entries
        .iter()
        .map(|e| {
            let v = if e.kind != EntryKind::File || !(ferry_name(&e.path) || staged(&e.path)) {
                Verdict::Foreign
            } else if staged(&e.path) {
                Verdict::Leftover
            } else if let Some(m) = manifest {
                if layout::is_part_path(&e.path) && !m.files().any(|f| f.path == e.path) {
                    Verdict::Leftover
                } else {
                    Verdict::Bundle
                }
            } else if e.path == layout::MANIFEST {
                Verdict::Bundle
            } else {
                Verdict::Leftover
            };
            (e.clone(), v)
        })
        .collect()
}

fn age(e: &Entry, now: SystemTime) -> Option<Duration> {
    e.modified
        .map(|m| now.duration_since(m).unwrap_or_default())
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) && s < 172_800 {
        return format!("{}h", s / 3600);
    }
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn objects(n: usize) -> String {
    if n == 1 {
        "1 leftover object".to_string()
    } else {
        format!("{n} leftover objects")
    }
}

pub fn gc(plan: &GcPlan) -> Result<RunReport> {
    let store = Store::open(&plan.bundle, false)?;
    let _lock = if plan.delete {
        store.lock_exclusive("ferry command (rekey or gc)")?
    } else {
        None
    };
    let entries = store.entries()?;
    let manifest = match entries.iter().find(|e| e.path == layout::MANIFEST) {
        None => None,
        Some(_) => {
            let bytes = store.read_capped(layout::MANIFEST, layout::MANIFEST_CAP)?;
            match Manifest::parse(&bytes) {
                Ok(m) => Some(m),
                Err(findings) => {
                    return Err(Error::InvalidBundle {
                        bundle: store.url().to_string(),
                        findings: findings
                            .into_iter()
                            .map(|mut f| {
                                f.message = format!(
                                    "{}; gc removes nothing from a location whose manifest it \
                                     cannot read (run `ferry verify` on it)",
                                    f.message
                                );
                                f
                            })
                            .collect(),
                    });
                }
            }
        }
    };
    let sorted = classify(&entries, manifest.as_ref());
    let now = SystemTime::now();
    let newest = entries.iter().map(|e| age(e, now)).min().flatten();
    let unknown_age = entries.iter().any(|e| e.modified.is_none());
    let leftovers: Vec<&Entry> = sorted
        .iter()
        .filter(|(_, v)| *v == Verdict::Leftover)
        .map(|(e, _)| e)
        .collect();
    let foreign: Vec<&Entry> = sorted
        .iter()
        .filter(|(_, v)| *v == Verdict::Foreign)
        .map(|(e, _)| e)
        .collect();
    let kept = sorted.iter().filter(|(_, v)| *v == Verdict::Bundle).count();
    let bytes: u64 = leftovers.iter().map(|e| e.size).sum();

    // A sharded export waiting for `ferry seal` (its coordinator may wait a day): its parts
    // have no manifest yet, and are not leftovers.
    if manifest.is_none()
        && let Some(c) = entries.iter().find(|e| crate::shard::is_control(&e.path))
    {
        let why = format!(
            "{}: {} is there: a sharded export is waiting for `ferry seal`, and its parts are not \
             leftovers; nothing {}. Seal it, or remove the location yourself if the sharded \
             export is abandoned",
            store.url(),
            c.path,
            if plan.delete { "removed" } else { "to collect" }
        );
        if plan.delete {
            return Err(Error::Temporary(why));
        }
        let mut report = RunReport::new("gc");
        report.bundle = Some(store.url().to_string());
        report.message = why;
        return Ok(report);
    }
    let recent = unknown_age || newest.is_some_and(|a| a < plan.older_than);
    if plan.delete && !leftovers.is_empty() && recent {
        let when = newest.map_or_else(
            || "an object's time is unknown".to_string(),
            |a| format!("the newest object was written {} ago", human(a)),
        );
        return Err(Error::Temporary(format!(
            "{}: {when}, under --older-than {}: an export may still be writing here; nothing \
             removed. Run gc again later, or give a smaller --older-than when you know no \
             export is running",
            store.url(),
            human(plan.older_than)
        )));
    }

    let mut removed = Vec::new();
    let mut failed = Vec::new();
    if plan.delete {
        for e in &leftovers {
            match store.remove_listed(&e.path) {
                Ok(()) => removed.push(e.path.clone()),
                Err(err) => failed.push(format!("{}: {err}", e.path)),
            }
        }
        if manifest.is_none() {
            store.remove_empty_data_dir();
        }
    }

    let mut report = RunReport::new("gc");
    report.bundle = Some(store.url().to_string());
    report.bundle_id = manifest.as_ref().map(|m| m.bundle_id.clone());
    let state = if manifest.is_some() {
        "a complete bundle (manifest.json present)"
    } else {
        "no manifest.json: not a bundle, an unfinished export"
    };
    let mut text = format!("{}: {state}\n", store.url());
    for e in &leftovers {
        let a = age(e, now).map_or_else(|| "?".to_string(), human);
        let done = if !plan.delete {
            "leftover"
        } else if removed.contains(&e.path) {
            "removed"
        } else {
            "NOT removed"
        };
        text.push_str(&format!(
            "  {done:<11} {:<48} {:>12} bytes  {a:>5} old\n",
            e.path, e.size
        ));
    }
    for e in &foreign {
        text.push_str(&format!(
            "  {:<11} {:<48} (not a name ferry writes: left alone)\n",
            "other", e.path
        ));
    }
    report.message = if leftovers.is_empty() {
        format!("nothing to collect: {kept} bundle files kept, no leftovers")
    } else if !plan.delete {
        format!(
            "{} ({bytes} bytes); {kept} bundle files kept. Run with --delete to remove them{}",
            objects(leftovers.len()),
            if recent {
                format!(
                    " (refused now: the newest object is younger than --older-than {})",
                    human(plan.older_than)
                )
            } else {
                String::new()
            }
        )
    } else {
        format!(
            "removed {} ({bytes} bytes); {kept} bundle files kept",
            objects(removed.len())
        )
    };
    report.plan_text = text;
    report.gc = Some(serde_json::json!({
        "manifest": manifest.is_some(),
        "delete": plan.delete,
        "older_than_seconds": plan.older_than.as_secs(),
        "newest_age_seconds": newest.map(|a| a.as_secs()),
        "kept": kept,
        "leftovers": leftovers.iter().map(|e| serde_json::json!({
            "path": e.path,
            "size": e.size,
            "age_seconds": age(e, now).map(|a| a.as_secs()),
            "removed": removed.contains(&e.path),
        })).collect::<Vec<_>>(),
        "other": foreign.iter().map(|e| e.path.clone()).collect::<Vec<_>>(),
    }));
    if !failed.is_empty() {
        return Err(Error::Storage(format!(
            "{}: gc could not remove {} of {} leftovers: {}; run it again",
            store.url(),
            failed.len(),
            leftovers.len(),
            failed.join("; ")
        )));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> Entry {
        Entry {
            path: path.into(),
            size: 1,
            kind: EntryKind::File,
            modified: None,
        }
    }

    #[test]
    fn without_a_manifest_ferry_names_are_leftovers_and_others_are_left() {
        let part = layout::new_part_path(true);
        let es = [
            file(&part),
            file(&format!("{part}#1")),
            file("catalog.fe"),
            file("SHA256SUMS"),
            file("notes.txt"),
            file("data/x.fe"),
        ];
        let v: Vec<Verdict> = classify(&es, None).into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            v,
            [
                Verdict::Leftover,
                Verdict::Leftover,
                Verdict::Leftover,
                Verdict::Leftover,
                Verdict::Foreign,
                Verdict::Foreign
            ]
        );
        assert!(!staged("notes.txt#1"));
        assert!(!staged("catalog.fe#"));
    }
}
