//! Sharded export (DESIGN, "Beyond one machine"; docs/SCALING.md): one table set split
//! across workers on any machines, all reading one snapshot.
//!
//! ```text
//! ferry export SRC BUNDLE --shards N --coordinate   # opens the snapshot, writes the shard plan, waits
//! ferry export SRC BUNDLE --shard I                 # worker I of N (0-based), anywhere, any order, re-runnable
//! ferry seal BUNDLE                                 # after all shards: catalog, sums, manifest; releases the snapshot
//! ```
//!
//! The coordinator opens the snapshot (PostgreSQL: `pg_export_snapshot()` in a REPEATABLE
//! READ transaction it keeps open), draws the bundle id and data key, and writes into the
//! bundle location:
//! - `shard-plan.json`: plaintext, what a worker needs to open the rest: bundle id, N, and
//!   the key slots (the data key wrapped as for the manifest);
//! - `shard-plan.fe`: the plan itself, encrypted and authenticated (Cobblestone under the
//!   bundle's file key, bound to bundle id and path): snapshot id, source, tables, filters,
//!   and each shard's work items (a table, or one page range of a table that is over
//!   `--split-min-size`, as `--jobs` splits it).
//!
//! A worker opens the plan only through a key-file or passphrase slot: an age slot proves
//! nothing about who wrote the plan (anyone can wrap a key to a public recipient), and a
//! forged plan would choose what the worker reads. A worker writes its parts under a name
//! prefix of its own (`data/<16 hex of shard I><16 hex counter>.fe`): a re-run first deletes
//! its completion record and every file with its prefix, so it replaces its own parts and
//! never touches another shard's. Its results (per part: path, size, SHA-256, rows; per
//! item: fingerprint, rows) go to `shard-I.done.fe`, encrypted like the plan.
//!
//! `seal` checks that every work item was completed by its shard, merges the records into
//! the catalog exactly as a one-process export merges its ranges, and writes catalog,
//! SHA256SUMS, signature, manifest (last) and MAC; then it deletes the plan and records.
//! The coordinator sees the manifest and ends its transaction. Until `seal`, there is no
//! manifest: verify and import refuse the location as they refuse a crashed export.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bundle::catalog::PartInfo;
use crate::bundle::layout;
use crate::bundle::manifest::FileEntry;
use crate::crypto::cobblestone;
use crate::crypto::envelope::{DataKey, KeySlot, file_context};
use crate::crypto::keys::Keys;
use crate::export::{self, ExportPlan, Exported, NewBundle, TableCtx};
use crate::report::{Progress, RunReport};
use crate::storage::Store;
use crate::types::fingerprint::Fingerprint;
use crate::types::{SourceInfo, TableDef};
use crate::{Error, Result};

/// The plan's plaintext head: what opens the rest.
pub const PLAN_HEAD: &str = "shard-plan.json";
/// The plan, encrypted.
pub const PLAN_BODY: &str = "shard-plan.fe";
const FORMAT: &str = "ferry-shard-plan";
const VERSION: u32 = 1;
/// Caps before reading: a plan lists tables and ranges, a record parts.
const PLAN_CAP: u64 = 64 << 20;
const DONE_CAP: u64 = 256 << 20;
/// At most this many shards (a plan holds one item per range per shard at least).
pub const MAX_SHARDS: usize = 4096;

/// The completion record of shard `i`.
pub fn done_path(i: usize) -> String {
    format!("shard-{i}.done.fe")
}

/// Whether a top-level name is one of the sharded export's own control files.
pub fn is_control(name: &str) -> bool {
    name == PLAN_HEAD
        || name == PLAN_BODY
        || name
            .strip_prefix("shard-")
            .and_then(|r| r.strip_suffix(".done.fe"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanHead {
    format: String,
    version: u32,
    bundle_id: String,
    shards: usize,
    key_slots: Vec<KeySlot>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Plan {
    bundle_id: String,
    shards: usize,
    /// The snapshot the workers attach to.
    snapshot: String,
    /// What the coordinator's source says about itself (the catalog's `source`).
    source: SourceInfo,
    /// The source id the manifest records (`--source-id` or the source's own).
    source_id: String,
    /// The source's own id: a worker must be reading the same database.
    source_key: String,
    sequence: u64,
    created_at: String,
    tables: Vec<TableDef>,
    /// Each table's `--where` filter, by qualified name.
    filters: HashMap<String, String>,
    not_carried: Vec<String>,
    items: Vec<Item>,
}

/// One unit of work: a table, or one range of it.
#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Item {
    shard: usize,
    table: usize,
    slice: usize,
    range: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Done {
    bundle_id: String,
    shard: usize,
    slices: Vec<DoneSlice>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DoneSlice {
    /// Index into the plan's items.
    item: usize,
    table: TableDef,
    notes: Vec<String>,
    infos: Vec<PartInfo>,
    parts: Vec<FileEntry>,
    fingerprint: String,
    rows: u64,
    bytes: u64,
    /// The slice's logical size (absent in records of an older ferry: counted as 0).
    #[serde(default)]
    logical: u64,
    millis: u64,
}

/// The name prefix of shard `i`'s parts: 16 hex digits from the bundle id and `i`, so names
/// stay opaque and no two shards share one.
fn part_prefix(bundle_id: &str, i: usize) -> String {
    let mut h = Sha256::new();
    h.update(b"ferry shard parts v1\0");
    h.update(bundle_id.as_bytes());
    h.update(b"\0");
    h.update(i.to_string().as_bytes());
    hex::encode(h.finalize())[..16].to_string()
}

/// Options a sharded export does not take, refused by name (exit 2) before anything opens.
fn refuse_options(plan: &ExportPlan, worker: bool) -> Result<()> {
    let mut bad: Vec<&str> = Vec::new();
    if !plan.cursors.is_empty() {
        bad.push("--cursor");
    }
    if plan.since.is_some() {
        bad.push("--since");
    }
    if !plan.lookback.is_empty() {
        bad.push("--lookback");
    }
    if plan.deletes {
        bad.push("--deletes");
    }
    if !plan.masks.is_empty() {
        bad.push("--mask");
    }
    if plan.dry_run {
        bad.push("--dry-run");
    }
    if plan.sign_key.is_some() {
        bad.push("--sign-key (give it to `ferry seal`, which writes the manifest)");
    }
    if !bad.is_empty() {
        return Err(Error::Usage(format!(
            "{} not with a sharded export (--shards/--shard): export without shards for those. Nothing written",
            bad.join(", ")
        )));
    }
    if !plan.encrypt {
        return Err(Error::Usage(
            "--no-encrypt with --shards/--shard: workers must authenticate the shard plan they find in the \
             bundle location, which only a key can do; give --key-file or --passphrase-env. Nothing written"
                .into(),
        ));
    }
    if worker {
        let mut given: Vec<&str> = Vec::new();
        if !plan.selection.tables.is_empty() {
            given.push("--table");
        }
        if !plan.selection.exclude.is_empty() {
            given.push("--exclude");
        }
        if !plan.filters.is_empty() {
            given.push("--where");
        }
        if plan.source_id.is_some() {
            given.push("--source-id");
        }
        if plan.sequence.is_some() {
            given.push("--sequence");
        }
        if !given.is_empty() {
            return Err(Error::Usage(format!(
                "--shard: {} belong on the coordinator (`--shards N --coordinate`); a worker reads what the \
                 shard plan says",
                given.join(", ")
            )));
        }
    }
    Ok(())
}

/// The keys that may open a shard plan: key files and passphrases, the secrets the
/// coordinator, workers and seal share.
fn shared_secret(keys: &Keys, who: &str) -> Result<()> {
    if keys.key_files.is_empty() && keys.passphrases.is_empty() {
        return Err(Error::Key(format!(
            "{who}: a sharded export needs a key shared by the coordinator, the workers and `ferry seal`: \
             --key-file PATH (or FERRY_KEY_FILE) or --passphrase-env VAR. An age recipient or identity alone \
             cannot authenticate the shard plan (anyone can wrap a key to a public recipient); add them \
             besides, for the receiver"
        )));
    }
    Ok(())
}

/// `export --shards N --coordinate`: opens the snapshot, writes the shard plan, and holds
/// the snapshot until `seal` writes the manifest or `timeout` passes.
pub fn coordinate(
    plan: &ExportPlan,
    shards: usize,
    timeout: Duration,
    progress: &Progress,
) -> Result<RunReport> {
    let started = Instant::now();
    crate::engines::check_shards(&plan.source_url)?;
    refuse_options(plan, false)?;
    if shards == 0 || shards > MAX_SHARDS {
        return Err(Error::Usage(format!(
            "--shards {shards}: give 1 to {MAX_SHARDS} shards"
        )));
    }
    export::check_encryption(plan)?;
    shared_secret(&plan.keys, "--coordinate")?;
    let (mut src, tables) = export::open_source_and_plan(plan)?;
    let snapshot = src.shared_snapshot().ok_or_else(|| {
        Error::Usage(format!(
            "--shards: the {} source exported no snapshot other sessions can attach to",
            src.info().engine
        ))
    })?;
    let not_carried = src.not_carried(&tables)?;
    let mut filters = HashMap::new();
    for t in &tables {
        if let Some(f) = export::filter_for(plan, t) {
            filters.insert(t.qualified(), f.to_string());
        }
    }
    // Items: a table over --split-min-size is read as N page ranges, range k by shard k;
    // whole tables go round the shards, the largest first.
    let mut sized = Vec::new();
    for (ti, t) in tables.iter().enumerate() {
        let size = src.estimate(t).map(|e| e.bytes.unwrap_or(0)).unwrap_or(0);
        sized.push((ti, size));
    }
    let mut items = Vec::new();
    let mut load = vec![0u64; shards];
    sized.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (ti, size) in sized {
        let slices = src.split(
            &tables[ti],
            shards,
            plan.split_min_bytes,
            crate::source::Cut::Even,
        )?;
        let n = u64::try_from(slices.len()).unwrap_or(1).max(1);
        if slices.len() > 1 {
            for (si, range) in slices.into_iter().enumerate() {
                let shard = si % shards;
                load[shard] += size / n;
                items.push(Item {
                    shard,
                    table: ti,
                    slice: si,
                    range,
                });
            }
        } else {
            let shard = (0..shards).min_by_key(|&s| (load[s], s)).unwrap_or(0);
            load[shard] += size.max(1);
            items.push(Item {
                shard,
                table: ti,
                slice: 0,
                range: None,
            });
        }
    }
    items.sort_by_key(|i| (i.table, i.slice));

    let bundle = NewBundle::open(plan)?;
    let key = bundle
        .key
        .as_ref()
        .ok_or_else(|| Error::Other("a sharded export is encrypted".into()))?;
    let mut info = src.info();
    if plan.source_id.is_some() {
        info.source_id_basis = Some("given with --source-id".into());
    }
    let body = Plan {
        bundle_id: bundle.id.clone(),
        shards,
        snapshot: snapshot.clone(),
        source: info,
        source_id: plan.source_id.clone().unwrap_or_else(|| src.source_id()),
        source_key: src.source_id(),
        sequence: plan
            .sequence
            .unwrap_or_else(|| u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0)),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        tables,
        filters,
        not_carried,
        items,
    };
    let json = zeroize::Zeroizing::new(
        serde_json::to_vec(&body).map_err(|e| Error::Other(format!("shard plan: {e}")))?,
    );
    put_sealed(
        &bundle.store,
        key,
        &bundle.id,
        "shard-plan",
        PLAN_BODY,
        &json,
    )?;
    let head = PlanHead {
        format: FORMAT.into(),
        version: VERSION,
        bundle_id: bundle.id.clone(),
        shards,
        key_slots: bundle.slots.clone(),
    };
    let head =
        serde_json::to_vec_pretty(&head).map_err(|e| Error::Other(format!("shard plan: {e}")))?;
    // The head last: a plan whose head is there is whole.
    bundle.store.put(PLAN_HEAD, Bytes::from(head))?;
    // The plan stays when the coordinator ends: the shards and seal read it.
    bundle.sealed.store(true, Ordering::SeqCst);
    let where_ = crate::redact::display_location(&plan.bundle_url);
    progress.line(&format!(
        "shard plan for bundle {} written to {where_}: {} work items over {shards} shards, snapshot {snapshot}; \
         holding the snapshot until `ferry seal {where_}` (at most {}s)",
        bundle.id,
        body.items.len(),
        timeout.as_secs()
    ));
    // Hold the snapshot: the source's transaction stays open while we wait.
    let poll = if bundle.store.is_local() {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(2)
    };
    let waited = Instant::now();
    loop {
        if bundle.store.stat(layout::MANIFEST)?.is_some() {
            break;
        }
        if waited.elapsed() >= timeout {
            drop(src);
            return Err(Error::Temporary(format!(
                "--coordinate: no `ferry seal` within {}s (--coordinate-timeout); the snapshot is released, so \
                 shards that have not finished cannot attach any more. Start over in a new, empty location \
                 with a longer timeout",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(poll);
    }
    drop(src);
    let mut report = RunReport::new("export");
    // The coordinator moves no rows itself (the shards do): no speed in its summary.
    report.status = "coordinated".into();
    report.bundle = Some(where_.clone());
    report.bundle_id = Some(bundle.id.clone());
    report.message = format!(
        "bundle {} sealed at {where_}; the snapshot {snapshot} is released",
        bundle.id
    );
    report.close(started.elapsed());
    Ok(report)
}

/// Writes a small control file encrypted under the bundle's file key, bound to its path.
fn put_sealed(
    store: &Store,
    key: &DataKey,
    bundle_id: &str,
    kind: &str,
    path: &str,
    plain: &[u8],
) -> Result<()> {
    let fk = key.file_key(bundle_id);
    let ct = cobblestone::encrypt_to_vec(&fk, &file_context(bundle_id, kind, path), plain)
        .map_err(|e| Error::Other(format!("encrypting {path}: {e}")))?;
    store.put(path, Bytes::from(ct))
}

/// Reads and authenticates a control file written by [`put_sealed`].
fn read_sealed(
    store: &Store,
    key: &DataKey,
    bundle_id: &str,
    kind: &str,
    path: &str,
    cap: u64,
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let ct = store.read_capped(path, cap)?;
    let fk = key.file_key(bundle_id);
    cobblestone::decrypt_all(&fk, &file_context(bundle_id, kind, path), &ct)
        .map(zeroize::Zeroizing::new)
        .map_err(|e| {
            Error::invalid(
                store.url(),
                path,
                format!(
                    "does not authenticate under this bundle's key ({}): it was not written by this sharded \
                     export, or was changed",
                    crate::bundle::parts::explain_crypto(&e)
                ),
            )
        })
}

/// Reads the plan: the head, the data key through a key-file or passphrase slot, and the
/// authenticated body. Checks that head and body agree.
fn read_plan(store: &Store, keys: &Keys, who: &str) -> Result<(Plan, DataKey)> {
    shared_secret(keys, who)?;
    let head = match store.stat(PLAN_HEAD)? {
        Some(_) => store.read_capped(PLAN_HEAD, 1 << 20)?,
        None => {
            return Err(Error::Usage(format!(
                "{}: no shard plan here ({PLAN_HEAD}): run `ferry export SRC BUNDLE --shards N --coordinate` \
                 first, and wait until it says the plan is written",
                store.url()
            )));
        }
    };
    let head: PlanHead = serde_json::from_slice(&head)
        .map_err(|e| Error::invalid(store.url(), PLAN_HEAD, format!("malformed: {e}")))?;
    if head.format != FORMAT || head.version != VERSION {
        return Err(Error::invalid(
            store.url(),
            PLAN_HEAD,
            format!(
                "a {} version {} plan; this ferry reads {FORMAT} version {VERSION}",
                head.format, head.version
            ),
        ));
    }
    if head.bundle_id.len() != 32 || !head.bundle_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid(store.url(), PLAN_HEAD, "odd bundle id"));
    }
    if head.key_slots.len() > crate::crypto::envelope::MAX_KEY_SLOTS {
        return Err(Error::invalid(store.url(), PLAN_HEAD, "too many key slots"));
    }
    crate::crypto::envelope::kdf_work(&head.key_slots)
        .map_err(|m| Error::invalid(store.url(), PLAN_HEAD, m))?;
    // Only slots that prove who wrote the plan: never an age slot.
    let slots: Vec<KeySlot> = head
        .key_slots
        .iter()
        .filter(|s| !matches!(s, KeySlot::Age { .. }))
        .cloned()
        .collect();
    let key = DataKey::unwrap(&head.bundle_id, &slots, keys)?;
    let body = read_sealed(
        store,
        &key,
        &head.bundle_id,
        "shard-plan",
        PLAN_BODY,
        PLAN_CAP,
    )?;
    let plan: Plan = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid(store.url(), PLAN_BODY, format!("malformed: {e}")))?;
    if plan.bundle_id != head.bundle_id || plan.shards != head.shards {
        return Err(Error::invalid(
            store.url(),
            PLAN_HEAD,
            "does not match the authenticated plan (bundle id or shard count changed)",
        ));
    }
    if plan.shards == 0
        || plan.shards > MAX_SHARDS
        || plan
            .items
            .iter()
            .any(|i| i.shard >= plan.shards || i.table >= plan.tables.len())
    {
        return Err(Error::invalid(
            store.url(),
            PLAN_BODY,
            "a work item names a shard or table the plan does not have",
        ));
    }
    Ok((plan, key))
}

/// `export --shard I`: worker I reads its items in the coordinator's snapshot and writes its
/// parts and completion record; re-running it replaces what an earlier run of I wrote.
pub fn work(
    plan: &ExportPlan,
    shard: usize,
    shards: Option<usize>,
    progress: &Progress,
) -> Result<RunReport> {
    let started = Instant::now();
    let engine = crate::engines::check_shards(&plan.source_url)?;
    refuse_options(plan, true)?;
    let store = Store::open(&plan.bundle_url, false)?;
    let where_ = crate::redact::display_location(&plan.bundle_url);
    if store.stat(layout::MANIFEST)?.is_some() {
        return Err(Error::Usage(format!(
            "--shard {shard}: {where_} is sealed already (manifest.json exists); nothing to do"
        )));
    }
    let (sp, key) = read_plan(&store, &plan.keys, &format!("--shard {shard}"))?;
    if shard >= sp.shards || shards.is_some_and(|n| n != sp.shards) {
        return Err(Error::Usage(format!(
            "--shard {shard}{}: the shard plan at {where_} has {} shards, numbered 0 to {}",
            shards.map(|n| format!(" --shards {n}")).unwrap_or_default(),
            sp.shards,
            sp.shards - 1
        )));
    }
    if sp.source.engine != engine.name {
        return Err(Error::Usage(format!(
            "--shard {shard}: the shard plan is for a {} source, and {} is {}",
            sp.source.engine,
            crate::redact::display_url(&plan.source_url),
            engine.name
        )));
    }
    let mut src = crate::engines::open_source(&plan.source_url, plan.source_options)?;
    if src.source_id() != sp.source_key {
        return Err(Error::Usage(format!(
            "--shard {shard}: {} is not the database the coordinator planned ({}): give the same source",
            crate::redact::display_url(&plan.source_url),
            sp.source_id
        )));
    }
    src.attach_snapshot(&sp.snapshot)?;

    // A re-run replaces this shard's earlier run: its record first (a crash from here on
    // leaves the shard incomplete, never complete with missing parts), then its parts.
    store.delete(&done_path(shard))?;
    let prefix = format!("data/{}", part_prefix(&sp.bundle_id, shard));
    let mut removed = 0u64;
    for e in store.entries()? {
        if e.path.starts_with(&prefix) {
            store.delete(&e.path)?;
            removed += 1;
        }
    }
    if removed > 0 {
        progress.line(&format!(
            "shard {shard}: removed {removed} files of an earlier run of this shard"
        ));
    }
    let counter = AtomicU64::new(0);
    let name = || format!("{prefix}{:016x}.fe", counter.fetch_add(1, Ordering::SeqCst));
    let file_key = key.file_key(&sp.bundle_id);
    let masks = crate::mask::Masks::resolve(&[], None, true, &sp.tables, engine.sql, &|n| {
        src.text_type(n)
    })?;
    let ctx = TableCtx {
        plan,
        row_group_bytes: export::ROW_GROUP_BUDGET,
        store: &store,
        file_key: Some(&*file_key),
        bundle_id: &sp.bundle_id,
        progress,
        filters: &sp.filters,
        masks: &masks,
        part_name: Some(&name),
        key_set: false,
        streams: None,
    };
    let mut report = RunReport::new("export");
    report.bundle = Some(where_.clone());
    report.bundle_id = Some(sp.bundle_id.clone());
    let mut slices = Vec::new();
    let (mut rows, mut parts_n) = (0u64, 0u64);
    for (ii, item) in sp.items.iter().enumerate() {
        if item.shard != shard {
            continue;
        }
        let t = &sp.tables[item.table];
        let e = export::export_table(
            src.as_mut(),
            t,
            item.range.as_deref(),
            item.slice == 0,
            &ctx,
        )
        .map_err(|e| match e {
            Error::NeedsText { .. } if item.range.is_some() => Error::Data(format!(
                "shard {shard}: {e}; a table read in ranges cannot change a column's type in one range. \
                 Export {} without shards, or raise --split-min-size on the coordinator so it is read whole",
                t.qualified()
            )),
            e => e,
        })?;
        report.add_table(
            &format!(
                "{}{}",
                t.qualified(),
                if item.range.is_some() {
                    format!(" (range {})", item.slice + 1)
                } else {
                    String::new()
                }
            ),
            e.fingerprint.rows,
            e.bytes,
            e.infos.len() as u64,
            e.elapsed,
            "exported",
        );
        rows += e.fingerprint.rows;
        parts_n += e.infos.len() as u64;
        slices.push(DoneSlice {
            item: ii,
            table: e.table,
            notes: e.notes,
            infos: e.infos,
            parts: e.parts,
            fingerprint: e.fingerprint.hex(),
            rows: e.fingerprint.rows,
            bytes: e.bytes,
            logical: e.logical,
            millis: u64::try_from(e.elapsed.as_millis()).unwrap_or(u64::MAX),
        });
        // Tests stop a worker here, its parts written and its record not (FERRY_PAUSE_AT).
        crate::import::pause_at("shard-item", slices.len());
    }
    drop(src);
    let done = Done {
        bundle_id: sp.bundle_id.clone(),
        shard,
        slices,
    };
    let json = zeroize::Zeroizing::new(
        serde_json::to_vec(&done).map_err(|e| Error::Other(format!("shard record: {e}")))?,
    );
    put_sealed(
        &store,
        &key,
        &sp.bundle_id,
        "shard-done",
        &done_path(shard),
        &json,
    )?;
    report.errors.parts_total = parts_n;
    report.message = format!(
        "shard {shard} of {} done: {}, {}; when every shard is done: ferry seal {where_}",
        sp.shards,
        crate::report::rows_word(rows),
        crate::report::count(parts_n, "part", "parts")
    );
    // No trust line: there is no manifest yet for a MAC to be checked against (`seal`
    // writes it and says so).
    report.close(started.elapsed());
    Ok(report)
}

/// `ferry seal BUNDLE`: after every shard completed, writes catalog, SHA256SUMS, the
/// signature (`--sign-key`) and the manifest with its MAC, as a one-process export does;
/// then removes the plan and the records, which releases the coordinator.
pub fn seal(
    bundle_url: &str,
    keys: &Keys,
    sign_key: Option<&crate::crypto::signing::SigningKey>,
    progress: &Progress,
) -> Result<RunReport> {
    let started = Instant::now();
    let store = Store::open(bundle_url, false)?;
    let where_ = crate::redact::display_location(bundle_url);
    if store.stat(layout::MANIFEST)?.is_some() {
        // A seal that ended between the manifest and the clean-up: finish the clean-up.
        let left: Vec<String> = store
            .first_entries(usize::MAX)?
            .into_iter()
            .filter(|n| is_control(n))
            .collect();
        if left.is_empty() {
            return Err(Error::Usage(format!(
                "{where_}: a sealed bundle is here already (manifest.json exists); nothing to seal"
            )));
        }
        for n in &left {
            store.delete(n)?;
        }
        let mut r = RunReport::new("seal");
        r.bundle = Some(where_.clone());
        r.status = "nothing to do".into();
        r.message =
            format!("{where_} was sealed already; removed the shard plan files left behind");
        r.close(started.elapsed());
        return Ok(r);
    }
    let (sp, key) = read_plan(&store, keys, "seal")?;
    let mut missing = Vec::new();
    let mut records = Vec::new();
    for i in 0..sp.shards {
        let p = done_path(i);
        if store.stat(&p)?.is_none() {
            missing.push(i.to_string());
            continue;
        }
        let plain = read_sealed(&store, &key, &sp.bundle_id, "shard-done", &p, DONE_CAP)?;
        let d: Done = serde_json::from_slice(&plain)
            .map_err(|e| Error::invalid(store.url(), &p, format!("malformed: {e}")))?;
        if d.shard != i || d.bundle_id != sp.bundle_id {
            return Err(Error::invalid(
                store.url(),
                &p,
                format!("the record of shard {} of bundle {}", d.shard, d.bundle_id),
            ));
        }
        records.push(d);
    }
    if !missing.is_empty() {
        return Err(Error::Temporary(format!(
            "seal: shard{} {} of {} not done yet (no completion record at {where_}): run `ferry export SRC \
             {where_} --shard I` for {}, then seal again. Nothing written",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            sp.shards,
            if missing.len() == 1 { "it" } else { "each" }
        )));
    }
    // Every item exactly once, by its own shard, with parts under that shard's prefix that
    // are there at the size recorded.
    let mut seen = vec![false; sp.items.len()];
    let mut exported = Vec::new();
    let mut listed = std::collections::HashSet::new();
    for d in records {
        let prefix = format!("data/{}", part_prefix(&sp.bundle_id, d.shard));
        for s in d.slices {
            let bad = |m: String| Error::invalid(store.url(), done_path(d.shard), m);
            let item = sp
                .items
                .get(s.item)
                .ok_or_else(|| bad(format!("names work item {} the plan lacks", s.item)))?;
            if item.shard != d.shard || std::mem::replace(&mut seen[s.item], true) {
                return Err(bad(format!(
                    "claims work item {} twice or of another shard",
                    s.item
                )));
            }
            if s.infos.len() != s.parts.len()
                || s.infos.iter().zip(&s.parts).any(|(i, p)| i.path != p.path)
            {
                return Err(bad("part lists disagree".into()));
            }
            for p in &s.parts {
                if !layout::is_part_path(&p.path) || !p.path.starts_with(&prefix) {
                    return Err(bad(format!("lists {:?}, not a part of this shard", p.path)));
                }
                match store.stat(&p.path)? {
                    Some(e) if e.size == p.size => {}
                    Some(e) => {
                        return Err(bad(format!(
                            "{} is {} bytes, the record says {}: re-run shard {}",
                            p.path, e.size, p.size, d.shard
                        )));
                    }
                    None => {
                        return Err(bad(format!(
                            "{} is missing: re-run shard {}",
                            p.path, d.shard
                        )));
                    }
                }
                if !listed.insert(p.path.clone()) {
                    return Err(bad(format!("lists {:?} twice", p.path)));
                }
            }
            let fingerprint = Fingerprint::from_hex(&s.fingerprint, s.rows)
                .ok_or_else(|| bad("odd fingerprint".into()))?;
            exported.push((
                item.table,
                item.slice,
                Exported {
                    table: s.table,
                    notes: s.notes,
                    infos: s.infos,
                    parts: s.parts,
                    fingerprint,
                    bytes: s.bytes,
                    logical: s.logical,
                    elapsed: Duration::from_millis(s.millis),
                },
            ));
        }
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(Error::invalid(
            store.url(),
            done_path(sp.items[i].shard),
            format!(
                "does not record work item {i}: re-run shard {}",
                sp.items[i].shard
            ),
        ));
    }
    // The ranges of one table must have read it alike.
    exported.sort_by_key(|(ti, si, _)| (*ti, *si));
    for w in exported.windows(2) {
        if w[0].0 == w[1].0 && w[0].2.table != w[1].2.table {
            return Err(Error::Data(format!(
                "seal: the ranges of {} were read with different column types (a value in one range made a \
                 column travel as text): export it without shards",
                w[0].2.table.qualified()
            )));
        }
    }
    // Files of earlier, killed runs of a shard that its last run did not list.
    let prefixes: Vec<String> = (0..sp.shards)
        .map(|i| format!("data/{}", part_prefix(&sp.bundle_id, i)))
        .collect();
    for e in store.entries()? {
        if prefixes.iter().any(|p| e.path.starts_with(p)) && !listed.contains(&e.path) {
            store.delete(&e.path)?;
        }
    }
    let mut report = RunReport::new("seal");
    let (catalog_tables, parts) = export::merge_slices(exported, &mut report);
    let file_key = key.file_key(&sp.bundle_id);
    let slots = {
        let head = store.read_capped(PLAN_HEAD, 1 << 20)?;
        let head: PlanHead = serde_json::from_slice(&head)
            .map_err(|e| Error::invalid(store.url(), PLAN_HEAD, format!("malformed: {e}")))?;
        head.key_slots
    };
    let bundle = NewBundle {
        store: store.clone(),
        id: sp.bundle_id.clone(),
        key: Some(key),
        slots,
        file_key: Some(file_key),
        // Never take back the shards' parts when sealing fails: seal can run again.
        sealed: std::sync::atomic::AtomicBool::new(true),
    };
    let spec = export::SealSpec {
        bundle: &bundle,
        encrypt: true,
        source: sp.source.clone(),
        source_id: sp.source_id.clone(),
        sequence: sp.sequence,
        link: None,
        sign_key,
    };
    let manifest = export::write_sealed(&spec, (catalog_tables, sp.not_carried.clone()), parts)?;
    progress.line(&format!("sealed bundle {} at {where_}", sp.bundle_id));
    for i in 0..sp.shards {
        store.delete(&done_path(i))?;
    }
    store.delete(PLAN_BODY)?;
    store.delete(PLAN_HEAD)?;
    report.bundle = Some(where_.clone());
    report.bundle_id = Some(sp.bundle_id.clone());
    report.errors.parts_total = manifest.parts.len() as u64;
    report.close(started.elapsed());
    report.message = format!(
        "bundle {} sealed at {where_} from {} shards (encrypted, opens with {})",
        sp.bundle_id,
        sp.shards,
        manifest
            .encryption
            .key_slots
            .iter()
            .map(|s| s.key_id().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    report.fingerprint = Some(crate::crypto::signing::fingerprint(&manifest.to_json()));
    if let Some(k) = sign_key {
        report.signed_by = Some(k.key_id().to_string());
    }
    report.set_trust(true, true);
    Ok(report)
}
