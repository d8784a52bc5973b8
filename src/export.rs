//! `ferry export`: source tables -> Arrow batches -> Parquet parts -> encryptor -> store,
//! then the catalog, SHA256SUMS, the manifest (created, never overwritten) and its MAC.
//! Written once against the `Source` trait; engines plug in below it.
//!
//! Each table is read on its own thread and handed over through a bounded channel, so
//! reading overlaps Parquet encoding, zstd and encryption; memory is bounded by
//! `CHANNEL_BATCHES` batches plus one row group per open part.

use std::sync::mpsc;
use std::time::Instant;

use bytes::Bytes;

use crate::bundle::catalog::{Catalog, CatalogTable, PartInfo};
use crate::bundle::layout;
use crate::bundle::manifest::{self, Encryption, FileEntry, Manifest};
use crate::bundle::parts::{PartWriter, Seal, write_small, writer_properties_without};
use crate::crypto::envelope::{DataKey, KeySlot, file_context};
use crate::crypto::keys::Keys;
use crate::report::{Progress, RunReport};
use crate::source::{self, BatchLimits, Selection};
use crate::storage::Store;
use crate::types::fingerprint::Fingerprint;
use crate::{Error, Result};

/// Batches in flight between a reader and the writer.
const CHANNEL_BATCHES: usize = 2;

/// Encoded bytes of open row groups, shared by all jobs: a part buffers its row group until
/// it is complete, so this is most of an export's memory when rows are wide.
pub(crate) const ROW_GROUP_BUDGET: usize = 64 << 20;

/// `export --max-part-rows` default: one default row group's rows. A table of more rows is
/// several parts, which `import --streams` loads at once.
pub const DEFAULT_MAX_PART_ROWS: u64 = 1 << 20;

/// Everything `ferry export` was asked to do, validated.
pub struct ExportPlan {
    pub source_url: String,
    pub bundle_url: String,
    pub keys: Keys,
    pub encrypt: bool,
    pub selection: Selection,
    /// `TABLE:PREDICATE` filters, by table name.
    pub filters: Vec<(String, String)>,
    pub batch: BatchLimits,
    pub row_group_rows: usize,
    /// `--zstd-level`: zstd's level inside the Parquet pages (1 fastest … 22 smallest).
    pub zstd_level: i32,
    pub max_part_bytes: u64,
    /// `--max-part-rows`: a part is also closed once it holds this many rows (0: no bound),
    /// so that a big table arrives in several parts an import loads over several
    /// connections (`import --streams`) and resumes from in smaller steps.
    pub max_part_rows: u64,
    pub source_id: Option<String>,
    pub sequence: Option<u64>,
    pub dry_run: bool,
    /// Tables exported at once, each on its own connection sharing one snapshot.
    pub jobs: usize,
    /// With several jobs, tables at least this large are read as several ranges at once.
    pub split_min_bytes: u64,
    /// Connections one table at least `split_min_bytes` large is read over at once, into
    /// the same parts (`--streams`); `None`: [`ExportPlan::streams`] chooses.
    pub streams: Option<usize>,
    /// Reader options (MySQL zero dates).
    pub source_options: source::SourceOptions,
    /// `--cursor TABLE=COLUMN`: starts a chain (docs/MIGRATIONS.md).
    pub cursors: Vec<(String, String)>,
    /// `--since PREV`: the bundle this one is the next link after.
    pub since: Option<String>,
    /// `--lookback`: how far below the predecessor's marks a link reads (a duration for
    /// temporal cursors and a count for integer ones; one of each at most).
    pub lookback: Vec<crate::chain::Lookback>,
    /// `--deletes`: a link carries each cursor table's primary-key set.
    pub deletes: bool,
    /// `--mask TABLE.COLUMN=RULE`: applied to each batch as it leaves the reader.
    pub masks: Vec<crate::mask::MaskSpec>,
    /// `--mask-key-file`: the HMAC key of `hash` and `email`.
    pub mask_key: Option<std::sync::Arc<crate::mask::MaskKey>>,
    /// `--sign-key`: signs manifest.json (manifest.json.minisig, written before it).
    pub sign_key: Option<crate::crypto::signing::SigningKey>,
    /// `--shards N`: a sharded export of N workers (crate::shard).
    pub shards: Option<usize>,
    /// `--coordinate`: open the snapshot, write the shard plan, hold it until `seal`.
    pub coordinate: bool,
    /// `--coordinate-timeout`: how long the coordinator holds the snapshot at most.
    pub coordinate_timeout: std::time::Duration,
    /// `--shard I`: run worker I of the plan found at the bundle location.
    pub shard: Option<usize>,
}

/// The most connections [`ExportPlan::streams`] chooses by itself for one table.
pub const MAX_AUTO_STREAMS: usize = 4;

impl ExportPlan {
    /// Connections one large table is read over: `--streams`, or else the machine's cores
    /// (at most [`MAX_AUTO_STREAMS`]), so that on a PostgreSQL server the table's COPY runs
    /// in several server processes at once; 1 with `--jobs` above 1, which reads large
    /// tables as ranges of their own already. Engines that cannot share a snapshot read on
    /// one connection whatever this says.
    pub fn streams(&self) -> usize {
        if self.jobs > 1 {
            return 1;
        }
        self.streams.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(MAX_AUTO_STREAMS)
        })
    }

    pub fn new(source_url: &str, bundle_url: &str) -> Self {
        ExportPlan {
            source_url: source_url.into(),
            bundle_url: bundle_url.into(),
            keys: Keys::default(),
            encrypt: true,
            selection: Selection::default(),
            filters: vec![],
            batch: BatchLimits::default(),
            row_group_rows: 1024 * 1024,
            zstd_level: crate::bundle::parts::DEFAULT_ZSTD_LEVEL,
            max_part_bytes: 1 << 30,
            max_part_rows: DEFAULT_MAX_PART_ROWS,
            source_id: None,
            sequence: None,
            dry_run: false,
            jobs: 1,
            split_min_bytes: 64 << 20,
            streams: None,
            source_options: source::SourceOptions::default(),
            cursors: vec![],
            since: None,
            lookback: vec![],
            deletes: false,
            masks: vec![],
            mask_key: None,
            sign_key: None,
            shards: None,
            coordinate: false,
            coordinate_timeout: std::time::Duration::from_secs(24 * 3600),
            shard: None,
        }
    }
}

pub fn export(plan: &ExportPlan, progress: &Progress) -> Result<RunReport> {
    match (plan.shards, plan.coordinate, plan.shard) {
        (Some(n), true, None) => {
            return crate::shard::coordinate(plan, n, plan.coordinate_timeout, progress);
        }
        (n, false, Some(i)) => return crate::shard::work(plan, i, n, progress),
        (None, false, None) => {}
        (Some(_), false, None) => {
            return Err(Error::Usage(
                "--shards N: add --coordinate (the process that holds the snapshot and writes the shard plan); \
                 the workers then run with --shard I"
                    .into(),
            ));
        }
        (None, true, _) => {
            return Err(Error::Usage(
                "--coordinate: say how many shards with --shards N".into(),
            ));
        }
        (_, true, Some(_)) => {
            return Err(Error::Usage(
                "--coordinate and --shard: the coordinator holds the snapshot, a worker reads a shard; run \
                 them as separate processes"
                    .into(),
            ));
        }
    }
    let started = Instant::now();
    check_encryption(plan)?;
    let prev = match &plan.since {
        Some(url) => Some(crate::chain::read_prev(
            url,
            &plan.keys,
            plan.sign_key.as_ref(),
        )?),
        None => None,
    };
    let prev_note = prev.as_ref().and_then(|p| p.note.clone());
    let (mut src, tables) = open_source_and_plan(plan)?;
    let masks = resolve_masks(plan, src.as_ref(), &tables)?;
    let chain = plan_chain(plan, prev, src.as_mut(), &tables)?;
    for (q, c) in &chain.tables {
        if let Some(cursor) = &c.cursor {
            masks.refuse_cursor(q, &cursor.column)?;
        }
    }
    let mut report = RunReport::new("export");
    report.warnings.extend(prev_note);
    report.warnings.extend(chain.notes.iter().cloned());
    report.bundle = Some(crate::redact::display_location(&plan.bundle_url));
    let mut not_carried = src.not_carried(&tables)?;
    if plan.dry_run {
        // The plan lists what is not carried.
        dry_run(plan, &chain, src, &tables, &masks, not_carried, &mut report)?;
        report.close(started.elapsed());
        return Ok(report);
    }
    report.warnings.extend(not_carried.iter().cloned());
    // What masking changes besides values: named in the summary, and in the catalog what
    // is not carried.
    report.warnings.extend(masks.notes());
    for t in &tables {
        let notes = masks.table_def(t).1;
        not_carried.extend(
            notes
                .iter()
                .filter(|n| n.starts_with("not carried"))
                .cloned(),
        );
        report.warnings.extend(notes);
    }

    let bundle = NewBundle::open(plan)?;
    report.bundle_id = Some(bundle.id.clone());
    let (mut src, exported, workers) = write_tables(
        plan,
        progress,
        &bundle,
        (&chain.filters, &masks),
        src,
        &tables,
    )?;
    if workers < plan.jobs.max(1) {
        report.warnings.push(format!(
            "--jobs {}: {} reads on {workers} connection{} (it cannot share one snapshot between more)",
            plan.jobs,
            src.info().engine,
            if workers == 1 { "" } else { "s" }
        ));
    }
    let (mut catalog_tables, mut parts) = merge_slices(exported, &mut report);
    let keys = export_keys(
        plan,
        progress,
        &bundle,
        (&chain, &masks),
        src.as_mut(),
        &tables,
    )?;
    for t in &mut catalog_tables {
        let q = t.table.qualified();
        t.masks = masks.records(&t.table);
        if let Some(c) = chain.tables.get(&q) {
            t.cursor = c.cursor.clone();
            t.partial = c.partial;
        }
        if let Some((set, entries, bytes)) = keys
            .iter()
            .find(|(n, ..)| *n == q)
            .map(|(_, k, e, b)| (k, e, b))
        {
            // On the table's own line, as import reports it: the keys are no rows moved,
            // their parts and bytes are the bundle's.
            if let Some(line) = report.tables.iter_mut().find(|l| l.table == q) {
                line.parts += set.parts.len() as u64;
                line.bytes += *bytes;
                line.status = format!(
                    "exported, with its primary-key set ({})",
                    crate::report::count(set.rows, "key", "keys")
                );
            }
            t.keys = Some(set.clone());
            parts.extend(entries.iter().cloned());
        }
    }
    let manifest = seal_catalog_and_manifest(
        plan,
        &bundle,
        &chain,
        src.as_ref(),
        (catalog_tables, not_carried),
        parts,
    )?;
    bundle
        .sealed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    report.errors.parts_total = manifest.parts.len() as u64;
    report.close(started.elapsed());
    finish_report(plan, &bundle.id, &manifest, &mut report);
    Ok(report)
}

/// What the chain options make of an export: where the bundle sits in its chain, each
/// table's cursor (its high-water mark read now, inside the snapshot) and the filter
/// each table is read with (`--where` and a link's cursor bound).
struct ChainPlan {
    link: Option<crate::chain::Link>,
    tables: std::collections::HashMap<String, TableChain>,
    /// Filter per table, by qualified name.
    filters: std::collections::HashMap<String, String>,
    /// What the operator should know (a cursor without a lookback of its kind, deletes
    /// not carried).
    notes: Vec<String>,
}

struct TableChain {
    cursor: Option<crate::bundle::catalog::Cursor>,
    partial: bool,
}

/// Resolves `--cursor`, `--since`, `--lookback` and `--deletes` against the source's
/// tables; refused (exit 2, nothing written) when a cursor names no column, a cursor table
/// has no primary key, or the options do not fit together.
fn plan_chain(
    plan: &ExportPlan,
    prev: Option<crate::chain::Prev>,
    src: &mut dyn source::Source,
    tables: &[crate::types::TableDef],
) -> Result<ChainPlan> {
    use crate::bundle::catalog::Cursor;
    if prev.is_some() && !plan.cursors.is_empty() {
        return Err(Error::Usage(
            "--cursor starts a chain and --since continues one: a link keeps its chain's cursors"
                .into(),
        ));
    }
    if prev.is_none() && (!plan.lookback.is_empty() || plan.deletes) {
        let what = match (plan.lookback.is_empty(), plan.deletes) {
            (false, true) => "--lookback and --deletes apply",
            (false, false) => "--lookback applies",
            _ => "--deletes applies",
        };
        return Err(Error::Usage(format!(
            "{what} to a link of a chain: add --since PREV_BUNDLE"
        )));
    }
    if (prev.is_some() || !plan.cursors.is_empty()) && plan.sequence.is_some() {
        return Err(Error::Usage(
            "--sequence: a chain numbers its links itself (1, 2, 3, …); leave it out".into(),
        ));
    }
    let kinds = |count: bool| {
        plan.lookback
            .iter()
            .filter(|l| matches!(l, crate::chain::Lookback::Count(_)) == count)
            .count()
    };
    if kinds(true) > 1 || kinds(false) > 1 {
        return Err(Error::Usage(
            "--lookback: give at most one duration (for temporal cursors) and one count (for integer cursors)"
                .into(),
        ));
    }
    let engine = crate::engines::for_url(&plan.source_url)?.sql;
    // Which column is each table's cursor: named now (chain start) or by the predecessor.
    let mut wanted: Vec<(&crate::types::TableDef, String, Option<&Cursor>)> = Vec::new();
    for (name, column) in &plan.cursors {
        let t = tables
            .iter()
            .find(|t| t.name == *name || t.qualified() == *name)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--cursor {name}={column}: no such table among those exported"
                ))
            })?;
        wanted.push((t, column.clone(), None));
    }
    if let Some(p) = &prev {
        let here = src.source_id();
        if plan.source_id.is_none() && here != p.source_id {
            return Err(Error::Usage(format!(
                "--since: the previous bundle was exported from source {}, this database is {here}: a chain \
                 follows one database (give --source-id to say they are the same)",
                p.source_id
            )));
        }
        for t in tables {
            if let Some(c) = p.cursors.get(&t.qualified()) {
                wanted.push((t, c.column.clone(), Some(c)));
            }
        }
    }
    let mut out = ChainPlan {
        link: match &prev {
            Some(p) => Some(p.link.clone()),
            None if !plan.cursors.is_empty() => Some(crate::chain::Link {
                chain_id: None,
                sequence: 1,
                prev_manifest_sha256: None,
            }),
            None => None,
        },
        tables: Default::default(),
        filters: Default::default(),
        notes: vec![],
    };
    for t in tables {
        if let Some(f) = filter_for(plan, t) {
            out.filters.insert(t.qualified(), f.to_string());
            out.tables.insert(
                t.qualified(),
                TableChain {
                    cursor: None,
                    partial: true,
                },
            );
        }
    }
    for (t, column, before) in wanted {
        let q = t.qualified();
        let col = t.columns.iter().find(|c| c.name == column).ok_or_else(|| {
            Error::Usage(format!(
                "--cursor {q}={column}: the table has no column {column:?}"
            ))
        })?;
        if !crate::chain::cursor_type_ok(&col.ty) {
            return Err(Error::Usage(format!(
                "--cursor {q}={column}: a cursor must be an integer, date, timestamp or ISO-8601 text column \
                 that grows with every change (it is {:?})",
                col.ty
            )));
        }
        if t.primary_key.is_empty() {
            let what = if t.from_view {
                "is a view, and a view has no primary key"
            } else {
                "has no primary key"
            };
            return Err(Error::Usage(format!(
                "--cursor {q}={column}: {q} {what}, and a link's rows are applied by primary key; \
                 export it without --cursor (it then travels whole in every link)"
            )));
        }
        // SQLite's INTEGER PRIMARY KEY is the rowid: never NULL, whatever the column says.
        let rowid = |c: &crate::types::Column| {
            t.primary_key.len() == 1 && c.source_type.eq_ignore_ascii_case("integer")
        };
        if let Some(c) = t
            .columns
            .iter()
            .find(|c| c.nullable && t.primary_key.contains(&c.name) && !rowid(c))
        {
            return Err(Error::Usage(format!(
                "--cursor {q}={column}: primary-key column {:?} may be NULL (SQLite allows it), and a row with a \
                 NULL key cannot be matched by key: make the key columns NOT NULL first",
                c.name
            )));
        }
        if filter_for(plan, t).is_some() {
            return Err(Error::Usage(format!(
                "--cursor {q}={column} and --where on the same table: a chain carries a whole table and its \
                 changes; export the filtered rows as a bundle of their own"
            )));
        }
        // Read inside the snapshot, never "the largest value seen" outside it.
        let high_water = src.high_water(t, &column)?;
        if col.ty == crate::types::ColumnType::Utf8
            && let Some(m) = high_water.as_deref()
            && !crate::chain::text_mark_ok(m)
        {
            return Err(Error::Usage(format!(
                "--cursor {q}={column}: a text cursor must hold ISO-8601 dates or timestamps \
                 (2026-12-03 16:50:00), and its largest value is {m:?}"
            )));
        }
        let lookback = crate::chain::lookback_for(&plan.lookback, &col.ty);
        if lookback.is_none() && !plan.lookback.is_empty() {
            out.notes.push(format!(
                "table {q}: no --lookback of its kind for cursor {column:?} ({}), so it reads from the \
                 previous mark exactly",
                if crate::chain::lookback_for(&[crate::chain::Lookback::Count(0)], &col.ty).is_some() {
                    "an integer: give a count too, e.g. --lookback 1000"
                } else {
                    "a date or time: give a duration too, e.g. --lookback 5m"
                }
            ));
        }
        let since = match before.and_then(|c| c.high_water.as_deref()) {
            Some(mark) => Some(crate::chain::since_bound(
                &q, &column, &col.ty, mark, lookback,
            )?),
            None => None,
        };
        let mut partial = out.tables.get(&q).is_some_and(|c| c.partial);
        if let Some(bound) = &since {
            let pred = crate::chain::cursor_predicate(engine, t, &column, bound)?;
            let f = match out.filters.remove(&q) {
                Some(user) => format!("({user}) AND ({pred})"),
                None => pred,
            };
            out.filters.insert(q.clone(), f);
            partial = true;
        }
        out.tables.insert(
            q,
            TableChain {
                cursor: Some(Cursor {
                    column,
                    high_water,
                    since,
                }),
                partial,
            },
        );
    }
    if prev.is_some() && !plan.deletes && out.tables.values().any(|c| c.cursor.is_some()) {
        out.notes.push(
            "no --deletes: rows deleted at the source since the previous link stay on the target (a later \
             link with --deletes removes them)"
                .into(),
        );
    }
    Ok(out)
}

/// One table's key set as exported: (qualified name, catalog record, manifest entries, bytes).
type KeysExported = (String, crate::bundle::catalog::KeySet, Vec<FileEntry>, u64);

/// `--deletes`: each cursor table's primary-key set, read whole in the same snapshot into
/// parts of its own. Returns, per table, the key set, its manifest entries and bytes.
fn export_keys(
    plan: &ExportPlan,
    progress: &Progress,
    bundle: &NewBundle,
    (chain, masks): (&ChainPlan, &crate::mask::Masks),
    src: &mut dyn source::Source,
    tables: &[crate::types::TableDef],
) -> Result<Vec<KeysExported>> {
    let mut out = Vec::new();
    let link = chain
        .link
        .as_ref()
        .is_some_and(|l| l.prev_manifest_sha256.is_some());
    if !link || !plan.deletes {
        return Ok(out);
    }
    let none = std::collections::HashMap::new();
    let ctx = TableCtx {
        plan,
        row_group_bytes: ROW_GROUP_BUDGET,
        store: &bundle.store,
        file_key: bundle.file_key.as_deref(),
        bundle_id: &bundle.id,
        progress,
        filters: &none,
        masks,
        part_name: None,
        key_set: true,
        streams: None,
    };
    for t in tables {
        let q = t.qualified();
        // Cursor tables carry their key set with --deletes; whole tables are replaced (their
        // publish keeps the rows that reference them: see load::publish_group).
        let cursor = chain
            .tables
            .get(&q)
            .and_then(|c| c.cursor.as_ref())
            .is_some();
        if !cursor || !plan.deletes {
            continue;
        }
        let e = export_table(src, &t.key_table(), None, true, &ctx)?;
        out.push((
            q,
            crate::bundle::catalog::KeySet {
                rows: e.fingerprint.rows,
                parts: e.infos,
            },
            e.parts,
            e.bytes,
        ));
    }
    Ok(out)
}

/// A bundle is either encrypted with a key or plain: a key with `--no-encrypt`, or no key
/// without it, is refused before anything is opened.
pub(crate) fn check_encryption(plan: &ExportPlan) -> Result<()> {
    if !plan.encrypt && !plan.keys.is_empty() {
        return Err(Error::Usage(
            "--no-encrypt conflicts with the key given (--key-file, FERRY_KEY_FILE, --identity, \
             FERRY_IDENTITY, --recipient, --recipients-file or --passphrase-env): a bundle is \
             either encrypted with a key or plain. Nothing written"
                .into(),
        ));
    }
    // A dry run writes nothing, so it needs no key.
    if plan.encrypt && plan.keys.is_empty() && !plan.dry_run {
        return Err(Error::Key(
            "no key given: pass --recipient age1… (the receiver's age recipient), --key-file PATH \
             (or set FERRY_KEY_FILE) or --passphrase-env VAR; or --no-encrypt to write plain Parquet"
                .into(),
        ));
    }
    Ok(())
}

/// Opens the source, starts its snapshot and resolves the selection; every `--table` and
/// `--where` must name a table that is exported.
pub(crate) fn open_source_and_plan(
    plan: &ExportPlan,
) -> Result<(Box<dyn source::Source>, Vec<crate::types::TableDef>)> {
    let mut src = crate::engines::open_source(&plan.source_url, plan.source_options)?;
    src.begin_snapshot()?;
    let tables = src.tables(&plan.selection)?;
    let unmatched = plan.selection.unmatched(&tables);
    if !unmatched.is_empty() {
        return Err(Error::Usage(format!(
            "--table {}: no such table in {}",
            unmatched.join(", "),
            crate::redact::display_url(&plan.source_url)
        )));
    }
    if !plan.selection.exclude.is_empty() {
        let listed = src.list()?;
        let unmatched = plan.selection.unmatched_excludes(&listed);
        if !unmatched.is_empty() {
            return Err(Error::Usage(format!(
                "--exclude {}: no such table in {}",
                unmatched.join(", "),
                crate::redact::display_url(&plan.source_url)
            )));
        }
    }
    // Every --where names an exported table and the source accepts its predicate.
    crate::plan::check_filters(src.as_mut(), &tables, &plan.filters)?;
    Ok((src, tables))
}

/// `--mask` against the exported tables (usage errors name what does not fit); the
/// source names its text type for columns masking makes text.
fn resolve_masks(
    plan: &ExportPlan,
    src: &dyn source::Source,
    tables: &[crate::types::TableDef],
) -> Result<crate::mask::Masks> {
    crate::mask::Masks::resolve(
        &plan.masks,
        plan.mask_key.clone(),
        !plan.dry_run,
        tables,
        crate::engines::for_url(&plan.source_url)?.sql,
        &|n| src.text_type(n),
    )
}

/// `--dry-run`: what `ferry plan` shows for the source (rows under each table's filter,
/// bytes, keys, columns, masks, what is not carried); nothing is written and no key is
/// needed.
fn dry_run(
    plan: &ExportPlan,
    chain: &ChainPlan,
    mut src: Box<dyn source::Source>,
    tables: &[crate::types::TableDef],
    masks: &crate::mask::Masks,
    not_carried: Vec<String>,
    report: &mut RunReport,
) -> Result<()> {
    let engine = crate::engines::for_url(&plan.source_url)?;
    let target = crate::plan::Target::open(None, engine)?;
    // The filters a link reads with include its cursor bounds: counted under them too.
    let p = crate::plan::build(
        src.as_mut(),
        tables,
        &chain.filters,
        masks,
        &target,
        false,
        false,
        not_carried,
    )?;
    crate::plan::attach(report, &p, "would export");
    report.status = "dry run".into();
    report.message = format!(
        "dry run: {} tables would be exported to {}; nothing written",
        tables.len(),
        crate::redact::display_location(&plan.bundle_url)
    );
    Ok(())
}

/// The bundle being written: its store (checked to hold no bundle yet), id and keys.
pub(crate) struct NewBundle {
    pub(crate) store: Store,
    pub(crate) id: String,
    /// The bundle data key, when encrypted.
    pub(crate) key: Option<DataKey>,
    /// The data key wrapped for each of the plan's keys.
    pub(crate) slots: Vec<KeySlot>,
    /// The key files are sealed with, when encrypted.
    pub(crate) file_key: Option<zeroize::Zeroizing<[u8; 32]>>,
    /// Set once the manifest and its MAC are written; a bundle dropped before that (the
    /// export failed) takes back every file it wrote.
    pub(crate) sealed: std::sync::atomic::AtomicBool,
}

impl Drop for NewBundle {
    fn drop(&mut self) {
        if !self.sealed.load(std::sync::atomic::Ordering::SeqCst) {
            let left = self.store.remove_written();
            if !left.is_empty() {
                tracing::warn!(
                    "{}: the failed export could not remove {}",
                    self.store.url(),
                    left.join(", ")
                );
            }
        }
    }
}

impl NewBundle {
    pub(crate) fn open(plan: &ExportPlan) -> Result<Self> {
        let store = Store::open(&plan.bundle_url, true)?;
        if store.stat(layout::MANIFEST)?.is_some() {
            return Err(Error::Usage(format!(
                "{}: a bundle is already there (manifest.json exists); ferry never overwrites a bundle",
                crate::redact::display_location(&plan.bundle_url)
            )));
        }
        // Anything else there (the parts of an export that was killed, other files) would
        // travel with the new bundle as files its manifest does not list.
        let found = store.first_entries(6)?;
        if !found.is_empty() {
            let shown: Vec<&str> = found.iter().take(5).map(String::as_str).collect();
            return Err(Error::Usage(format!(
                "{}: the location is not empty and holds no bundle ({}{}): perhaps the parts of an \
                 export that was interrupted. A bundle goes into a new or empty location: choose \
                 another, or delete what is there. Nothing written",
                crate::redact::display_location(&plan.bundle_url),
                shown.join(", "),
                if found.len() > 5 { ", …" } else { "" }
            )));
        }
        let id = layout::new_bundle_id();
        let key = plan.encrypt.then(DataKey::generate);
        let slots = match &key {
            Some(k) => k.wrap(&id, &plan.keys)?,
            None => vec![],
        };
        let file_key = key.as_ref().map(|k| k.file_key(&id));
        Ok(NewBundle {
            store,
            id,
            key,
            slots,
            file_key,
            sealed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// How a file of this bundle is sealed (`None` when plain).
    pub(crate) fn seal(&self, kind: &str, path: &str) -> Option<Seal<'_>> {
        self.file_key.as_ref().map(|k| Seal {
            key: k,
            context: file_context(&self.id, kind, path),
        })
    }
}

/// What [`write_tables`] hands back: the first source, the slices it wrote, and how many
/// connections read.
type Written = (Box<dyn source::Source>, Vec<DoneSlice>, usize);

/// One unit of work: (table index, slice index, range predicate).
type WorkItem = (usize, usize, Option<String>);

/// One unit of work done: (table index, slice index, what it wrote).
pub(crate) type DoneSlice = (usize, usize, Exported);

/// How one unit of work ended: its slice written, or its table to be read again whole (a
/// range met a value that makes a column travel as text).
enum Slice {
    Done(Box<DoneSlice>),
    Redo(usize),
}

/// Exports every table into parts of the bundle. Tables are handed out from one queue to
/// `jobs` workers; each worker has its own connection reading the same snapshot (engines
/// that cannot share one run one worker). Returns the first source (the others are closed)
/// and the exported slices, sorted by table and slice.
fn write_tables(
    plan: &ExportPlan,
    progress: &Progress,
    bundle: &NewBundle,
    (filters, masks): (
        &std::collections::HashMap<String, String>,
        &crate::mask::Masks,
    ),
    src: Box<dyn source::Source>,
    tables: &[crate::types::TableDef],
) -> Result<Written> {
    // Declared before the context that lends them, so they close after it.
    let streams = std::sync::Mutex::new(StreamPool::default());
    let ctx = TableCtx {
        plan,
        row_group_bytes: ROW_GROUP_BUDGET / plan.jobs.max(1),
        store: &bundle.store,
        file_key: bundle.file_key.as_deref(),
        bundle_id: &bundle.id,
        progress,
        filters,
        masks,
        part_name: None,
        key_set: false,
        streams: (plan.streams() > 1).then_some(&streams),
    };
    let mut sources = vec![src];
    while sources.len() < plan.jobs.max(1) {
        match sources[0].worker()? {
            Some(w) => sources.push(w),
            None => break,
        }
    }
    let workers = sources.len();
    let queue = plan_work(plan, sources[0].as_mut(), workers, tables)?;
    let failed = std::sync::atomic::AtomicBool::new(false);
    let (slices, errors) = crate::pool::run(
        &mut sources,
        queue,
        &failed,
        "export",
        |src, (ti, si, pred): WorkItem| match export_table(
            src.as_mut(),
            &tables[ti],
            pred.as_deref(),
            si == 0,
            &ctx,
        ) {
            Ok(e) => Ok(Slice::Done(Box::new((ti, si, e)))),
            Err(Error::NeedsText { .. }) if pred.is_some() => Ok(Slice::Redo(ti)),
            Err(e) => Err(e),
        },
    );
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    let mut d = Vec::new();
    let mut redo = std::collections::BTreeSet::new();
    for s in slices {
        match s {
            Slice::Done(x) => d.push(*x),
            Slice::Redo(ti) => {
                redo.insert(ti);
            }
        }
    }
    for &ti in &redo {
        // The other ranges' parts belong to no bundle now.
        for (_, _, e) in d.iter().filter(|(t, _, _)| *t == ti) {
            for p in &e.parts {
                ctx.store.delete(&p.path)?;
            }
        }
        d.retain(|(t, _, _)| *t != ti);
        let e = export_table(sources[0].as_mut(), &tables[ti], None, true, &ctx)?;
        d.push((ti, 0, e));
    }
    let src = sources.swap_remove(0);
    drop(sources);
    let streamed = streams
        .into_inner()
        .map_err(|_| Error::Other("export connection list poisoned".into()))?
        .helpers
        .len();
    let mut exported = d;
    exported.sort_by_key(|(ti, si, _)| (*ti, *si));
    Ok((src, exported, workers + streamed))
}

/// The work items. A large table is read as several ranges of the same snapshot when there
/// are several workers, so both the server and ferry use every core; small tables are one
/// slice.
fn plan_work(
    plan: &ExportPlan,
    src: &mut dyn source::Source,
    workers: usize,
    tables: &[crate::types::TableDef],
) -> Result<Vec<WorkItem>> {
    let mut work = Vec::new();
    for (ti, t) in tables.iter().enumerate() {
        let slices = if workers > 1 {
            src.split(t, workers, plan.split_min_bytes, source::Cut::Even)?
        } else {
            vec![None]
        };
        for (si, pred) in slices.into_iter().enumerate() {
            work.push((ti, si, pred));
        }
    }
    Ok(work)
}

/// Slices of one table become one catalog entry: parts in slice order, row counts and
/// fingerprints added (the fingerprint is a sum, so slices combine exactly). Each table
/// goes into the report with its notes; returns the catalog's tables and the manifest's
/// parts.
pub(crate) fn merge_slices(
    mut exported: Vec<DoneSlice>,
    report: &mut RunReport,
) -> (Vec<CatalogTable>, Vec<FileEntry>) {
    let mut parts: Vec<FileEntry> = Vec::new();
    let mut catalog_tables: Vec<CatalogTable> = Vec::new();
    let mut i = 0;
    while i < exported.len() {
        let ti = exported[i].0;
        // The table as exported: a whole table may have changed a column's type on the way.
        let t = exported[i].2.table.clone();
        report
            .warnings
            .extend(std::mem::take(&mut exported[i].2.notes));
        let (mut fp, mut bytes, mut logical, mut elapsed) = (
            Fingerprint::default(),
            0u64,
            0u64,
            std::time::Duration::ZERO,
        );
        let mut infos: Vec<PartInfo> = Vec::new();
        while i < exported.len() && exported[i].0 == ti {
            let e = &mut exported[i].2;
            fp.merge(&e.fingerprint);
            bytes += e.bytes;
            logical += e.logical;
            elapsed = elapsed.max(e.elapsed);
            for mut p in std::mem::take(&mut e.infos) {
                p.index = u32::try_from(infos.len()).unwrap_or(u32::MAX);
                infos.push(p);
            }
            parts.append(&mut e.parts);
            i += 1;
        }
        report
            .add_table(
                &t.qualified(),
                fp.rows,
                bytes,
                infos.len() as u64,
                elapsed,
                "exported",
            )
            .logical_bytes = Some(logical);
        catalog_tables.push(CatalogTable {
            table: t,
            rows: fp.rows,
            fingerprint: fp.hex(),
            parts: infos,
            cursor: None,
            partial: false,
            keys: None,
            masks: vec![],
        });
    }
    (catalog_tables, parts)
}

/// Writes the catalog, SHA256SUMS and, last, the manifest (created, never overwritten)
/// and its MAC: a bundle without a manifest is no bundle.
fn seal_catalog_and_manifest(
    plan: &ExportPlan,
    bundle: &NewBundle,
    chain: &ChainPlan,
    src: &dyn source::Source,
    (catalog_tables, not_carried): (Vec<CatalogTable>, Vec<String>),
    parts: Vec<FileEntry>,
) -> Result<Manifest> {
    let mut info = src.info();
    if plan.source_id.is_some() {
        info.source_id_basis = Some("given with --source-id".into());
    }
    let spec = SealSpec {
        bundle,
        encrypt: plan.encrypt,
        source: info,
        source_id: plan.source_id.clone().unwrap_or_else(|| src.source_id()),
        // A chain's links number themselves; other bundles take the clock.
        sequence: match &chain.link {
            Some(l) => l.sequence,
            None => plan.sequence.unwrap_or_else(|| {
                u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0)
            }),
        },
        link: chain.link.as_ref(),
        sign_key: plan.sign_key.as_ref(),
    };
    write_sealed(&spec, (catalog_tables, not_carried), parts)
}

/// What the closing files of a bundle say besides its tables and parts.
pub(crate) struct SealSpec<'a> {
    pub bundle: &'a NewBundle,
    pub encrypt: bool,
    pub source: crate::types::SourceInfo,
    pub source_id: String,
    pub sequence: u64,
    pub link: Option<&'a crate::chain::Link>,
    pub sign_key: Option<&'a crate::crypto::signing::SigningKey>,
}

/// Writes the catalog, SHA256SUMS, the signature (when signing) and, last, the manifest
/// (created, never overwritten) and its MAC: the closing steps of `export` and of `seal`.
pub(crate) fn write_sealed(
    spec: &SealSpec<'_>,
    (catalog_tables, not_carried): (Vec<CatalogTable>, Vec<String>),
    parts: Vec<FileEntry>,
) -> Result<Manifest> {
    let bundle = spec.bundle;
    let store = &bundle.store;
    let created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let catalog = Catalog {
        bundle_id: bundle.id.clone(),
        source: spec.source.clone(),
        created_at: created_at.clone(),
        tables: catalog_tables,
        not_carried,
    };
    let catalog_path = if spec.encrypt {
        layout::CATALOG_ENCRYPTED
    } else {
        layout::CATALOG_PLAIN
    };
    let catalog_entry = write_small(
        store,
        catalog_path,
        &catalog.to_json(),
        bundle.seal("catalog", catalog_path),
    )?;

    let mut sums = String::new();
    for f in std::iter::once(&catalog_entry).chain(parts.iter()) {
        sums.push_str(&format!("{}  {}\n", f.sha256, f.path));
    }
    store.put(layout::SHA256SUMS, Bytes::from(sums))?;

    let manifest = Manifest {
        format: manifest::FORMAT.into(),
        format_version: if spec.link.is_some() {
            manifest::FORMAT_VERSION_CHAIN
        } else {
            manifest::FORMAT_VERSION
        }
        .into(),
        bundle_id: bundle.id.clone(),
        source_id: spec.source_id.clone(),
        sequence: spec.sequence,
        created_at,
        tool_version: crate::TOOL_VERSION.into(),
        chain_id: spec
            .link
            .map(|l| l.chain_id.clone().unwrap_or_else(|| bundle.id.clone())),
        prev_manifest_sha256: spec.link.and_then(|l| l.prev_manifest_sha256.clone()),
        encryption: Encryption {
            scheme: if spec.encrypt {
                manifest::SCHEME_ENCRYPTED
            } else {
                manifest::SCHEME_NONE
            }
            .into(),
            key_slots: bundle.slots.clone(),
        },
        catalog: catalog_entry,
        parts,
        extensions: Default::default(),
    };
    let manifest_bytes = manifest.to_json();
    // Readers refuse what fails their own checks (a --source-id out of its alphabet, a
    // --sequence past 2^53): refused here, before anything is signed or marks the bundle
    // complete, not by every reader later.
    if let Err(findings) = manifest::Manifest::parse(&manifest_bytes) {
        return Err(Error::Usage(format!(
            "the manifest would be refused by readers: {}; no manifest was written (the parts \
             written so far are a leftover for `ferry gc`)",
            findings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    // The signature is in place before the manifest marks the bundle complete.
    if let Some(k) = spec.sign_key {
        let sig = crate::crypto::signing::sign_manifest(k, &manifest, &manifest_bytes)?;
        store.put(layout::MANIFEST_SIG, Bytes::from(sig))?;
    }
    store.put_new(layout::MANIFEST, Bytes::from(manifest_bytes.clone()))?;
    if let Some(k) = &bundle.key {
        store.put(
            layout::MANIFEST_MAC,
            Bytes::from(format!("{}\n", k.manifest_mac(&bundle.id, &manifest_bytes))),
        )?;
    }
    Ok(manifest)
}

/// The summary line of a written bundle, and the warning a plain one carries.
pub(crate) fn finish_report(
    plan: &ExportPlan,
    bundle_id: &str,
    manifest: &Manifest,
    report: &mut RunReport,
) {
    report.message = format!(
        "bundle {bundle_id} written to {} ({}{})",
        crate::redact::display_location(&plan.bundle_url),
        if plan.encrypt {
            "encrypted"
        } else {
            "NOT encrypted: plain Parquet"
        },
        if plan.encrypt {
            format!(
                ", opens with {}",
                manifest
                    .encryption
                    .key_slots
                    .iter()
                    .map(|s| s.key_id().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        }
    );
    if !plan.encrypt {
        report
            .warnings
            .push("--no-encrypt: the bundle's data is readable by anyone who holds it".into());
    }
    report.fingerprint = Some(crate::crypto::signing::fingerprint(&manifest.to_json()));
    if let Some(k) = &plan.sign_key {
        report.signed_by = Some(k.key_id().to_string());
        report.message.push_str(&format!(
            "; manifest signed by key id {} (minisign -Vm manifest.json -P {})",
            k.key_id(),
            k.public_key()
        ));
    }
}

/// What one worker needs to export a table.
pub(crate) struct TableCtx<'a> {
    pub(crate) plan: &'a ExportPlan,
    /// Row-group byte cap per worker: [`ROW_GROUP_BUDGET`] shared by all jobs.
    pub(crate) row_group_bytes: usize,
    pub(crate) store: &'a Store,
    pub(crate) file_key: Option<&'a [u8; 32]>,
    pub(crate) bundle_id: &'a str,
    pub(crate) progress: &'a Progress,
    /// Each table's filter (`--where`, a link's cursor bound), by qualified name.
    pub(crate) filters: &'a std::collections::HashMap<String, String>,
    /// `--mask`: applied to each batch as it leaves the reader.
    pub(crate) masks: &'a crate::mask::Masks,
    /// Names new parts (a shard's parts carry its prefix); `None`: random names.
    pub(crate) part_name: Option<&'a (dyn Fn() -> String + Sync)>,
    /// A chain link's primary-key set (`--deletes`) is being written, not the table's rows.
    pub(crate) key_set: bool,
    /// The extra connections a large table is read over (`--streams`), opened when the
    /// first such table comes; `None`: every table is read on one connection.
    pub(crate) streams: Option<&'a std::sync::Mutex<StreamPool>>,
}

/// The extra connections of `--streams`, kept from one large table to the next.
#[derive(Default)]
pub(crate) struct StreamPool {
    helpers: Vec<Box<dyn source::Source>>,
    /// A connection could not open: the server or role allows no more, so later tables do
    /// not try again.
    full: bool,
}

/// What the readers of a table did besides reading: the connections they opened, the
/// ranges each reader read (in reader order), and how many could not open.
#[derive(Default)]
struct ReadersDone {
    new_sources: Vec<Box<dyn source::Source>>,
    ranges_read: Vec<usize>,
    /// Connections that could not open.
    not_opened: usize,
}

/// One exported table slice: its parts (catalog and manifest entries) and figures.
pub(crate) struct Exported {
    /// The table as exported (a column's type may have changed on the way).
    pub(crate) table: crate::types::TableDef,
    /// What the operator should know about how it went.
    pub(crate) notes: Vec<String>,
    pub(crate) infos: Vec<PartInfo>,
    pub(crate) parts: Vec<FileEntry>,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) bytes: u64,
    /// The rows' logical (uncompressed Arrow) size, [`crate::types::logical_size`].
    pub(crate) logical: u64,
    pub(crate) elapsed: std::time::Duration,
}

/// Exports one table (or one range of it). A whole table whose `tinyint(1)` column turns
/// out to hold more than 0 and 1 is read again, in the same snapshot, with that column as
/// an integer ([`source::read_retyping`]); the parts of the first attempt are deleted and
/// the catalog gets the new definition. A range cannot change its type apart from the
/// table's other ranges: it fails with [`Error::NeedsText`], its parts deleted, and the
/// export reads that table again whole (MySQL never reads a table as ranges).
pub(crate) fn export_table(
    src: &mut dyn source::Source,
    t: &crate::types::TableDef,
    range: Option<&str>,
    first_slice: bool,
    ctx: &TableCtx<'_>,
) -> Result<Exported> {
    let opened = std::sync::Mutex::new(Vec::new());
    if range.is_none()
        && let Some(result) = export_table_streamed(src, t, first_slice, ctx, &opened)?
    {
        return result;
    }
    if range.is_some() {
        // A range cannot change a column's type apart from the table's other ranges: its
        // parts are deleted and the caller exports the whole table again as one slice.
        let result = export_table_once(src, t, range, first_slice, ctx, &opened);
        if matches!(result, Err(Error::NeedsText { .. })) {
            let paths = std::mem::take(
                &mut *opened
                    .lock()
                    .map_err(|_| Error::Other("export part list poisoned".into()))?,
            );
            for path in paths {
                ctx.store.delete(&path)?;
            }
        }
        return result;
    }
    let (mut e, def, notes) = source::read_retyping(src, t, |src, def| {
        let result = export_table_once(src, def, range, first_slice, ctx, &opened);
        let paths = std::mem::take(
            &mut *opened
                .lock()
                .map_err(|_| Error::Other("export part list poisoned".into()))?,
        );
        if matches!(
            result,
            Err(Error::NotBoolean { .. } | Error::NeedsText { .. })
        ) {
            // Read again: these parts belong to no bundle.
            for path in paths {
                ctx.store.delete(&path)?;
            }
        }
        result
    })?;
    for n in &notes {
        ctx.progress.line(n);
    }
    // The table as exported: masked columns as they travel.
    e.table = ctx.masks.table_def(&def).0;
    e.notes = notes;
    Ok(e)
}

/// Reads a whole table on the export's extra connections as well (`--streams`), when it
/// is large enough to split: every connection takes the next of its ranges until none is
/// left, and all of them feed the one writer, so the table's parts and row groups are
/// what one connection gives (memory: about two more batches per extra connection).
/// `None` when the table is read on one connection (one stream asked for, a small table,
/// an engine that cannot share its snapshot, a key set).
/// A column found to need its text form fails the streamed read: its parts are deleted and
/// the table is read again on one connection, which retypes it ([`source::read_retyping`]).
fn export_table_streamed(
    src: &mut dyn source::Source,
    t: &crate::types::TableDef,
    first_slice: bool,
    ctx: &TableCtx<'_>,
    opened: &std::sync::Mutex<Vec<String>>,
) -> Result<Option<Result<Exported>>> {
    let Some(pool) = ctx.streams else {
        return Ok(None);
    };
    let wanted = ctx.plan.streams();
    if wanted < 2 || ctx.key_set {
        return Ok(None);
    }
    let ranges = src.split(
        t,
        wanted * RANGES_PER_STREAM,
        ctx.plan.split_min_bytes,
        source::Cut::Tapered,
    )?;
    if ranges.len() < 2 {
        return Ok(None);
    }
    let mut pool = pool
        .lock()
        .map_err(|_| Error::Other("export connection list poisoned".into()))?;
    // Connections still to open do so on their readers' threads, while this one reads.
    let mut openers = Vec::new();
    while !pool.full && pool.helpers.len() + openers.len() + 1 < wanted {
        match src.worker_opener() {
            Some(o) => openers.push(o),
            None => break,
        }
    }
    if pool.helpers.is_empty() && openers.is_empty() {
        return Ok(None);
    }
    let pool = &mut *pool;
    let mut readers: Vec<Reader<'_>> = vec![Reader::On(src)];
    readers.extend(pool.helpers.iter_mut().map(|h| Reader::On(h.as_mut())));
    readers.extend(openers.into_iter().map(Reader::Open));
    let mut done = ReadersDone::default();
    let result = export_table_on(
        readers,
        t,
        &ranges,
        true,
        first_slice,
        ctx,
        (opened, &mut done),
    );
    pool.helpers.extend(done.new_sources);
    pool.full |= done.not_opened > 0;
    ctx.progress.line(&format!(
        "{}: read over {} connections of one snapshot ({} ranges: {} each)",
        t.qualified(),
        done.ranges_read.iter().filter(|&&n| n > 0).count(),
        ranges.len(),
        done.ranges_read
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let paths = std::mem::take(
        &mut *opened
            .lock()
            .map_err(|_| Error::Other("export part list poisoned".into()))?,
    );
    match result {
        Err(Error::NeedsText { .. } | Error::NotBoolean { .. }) => {
            // These parts belong to no bundle: the table is read again on one connection.
            for path in paths {
                ctx.store.delete(&path)?;
            }
            Ok(None)
        }
        Ok(mut e) => {
            e.table = ctx.masks.table_def(t).0;
            Ok(Some(Ok(e)))
        }
        Err(e) => Ok(Some(Err(e))),
    }
}

/// Ranges per connection a streamed table is split into: connections take them in turn, so
/// one that reads a slower range does not leave the others idle at the end for long, and
/// the ranges shrink towards the end ([`source::Cut::Tapered`]) so the last ones are short.
const RANGES_PER_STREAM: usize = 8;

/// `(f) AND r`: a table's filter and a range of it, either of which may be absent.
fn and_filter(filter: Option<&str>, range: Option<&str>) -> Option<String> {
    match (filter, range) {
        (Some(f), Some(r)) => Some(format!("({f}) AND {r}")),
        (Some(f), None) => Some(f.to_string()),
        (None, Some(r)) => Some(r.to_string()),
        (None, None) => None,
    }
}

/// One attempt at [`export_table`] on one connection: the whole table, or one range of it.
fn export_table_once(
    src: &mut dyn source::Source,
    t: &crate::types::TableDef,
    range: Option<&str>,
    first_slice: bool,
    ctx: &TableCtx<'_>,
    opened: &std::sync::Mutex<Vec<String>>,
) -> Result<Exported> {
    let ranges = [range.map(str::to_string)];
    export_table_on(
        vec![Reader::On(src)],
        t,
        &ranges,
        range.is_none(),
        first_slice,
        ctx,
        (opened, &mut ReadersDone::default()),
    )
}

/// How a reader ended: its result, the ranges it read, the connection it opened (kept
/// when it is still usable), and why it read nothing when it could not start (with
/// whether its connection could not open).
type ReaderEnd = (
    Result<()>,
    usize,
    Option<Box<dyn source::Source>>,
    Option<(String, bool)>,
);

/// A connection that reads ranges of a table: open already, or to be opened by its reader.
enum Reader<'s> {
    On(&'s mut dyn source::Source),
    Open(source::WorkerOpener),
}

/// Exports `ranges` of a table (together: the table, when `whole`), each connection of
/// `readers` taking the next range until none is left. The paths of the parts it opens go
/// to `opened`, what the readers did besides to `done`. A connection after the first that
/// cannot open, or cannot take the table's read lock without waiting, reads nothing (the
/// others read its ranges), and a line says so.
fn export_table_on(
    mut readers: Vec<Reader<'_>>,
    t: &crate::types::TableDef,
    ranges: &[Option<String>],
    whole: bool,
    first_slice: bool,
    ctx: &TableCtx<'_>,
    (opened, done): (&std::sync::Mutex<Vec<String>>, &mut ReadersDone),
) -> Result<Exported> {
    let plan = ctx.plan;
    let store = ctx.store;
    let seal = |kind: &str, path: &str| {
        ctx.file_key.map(|k| Seal {
            key: k,
            context: file_context(ctx.bundle_id, kind, path),
        })
    };
    let mut parts: Vec<FileEntry> = Vec::new();
    let t_start = Instant::now();
    let table_filter = ctx.filters.get(&t.qualified()).map(String::as_str);
    let filters: Vec<Option<String>> = ranges
        .iter()
        .map(|r| and_filter(table_filter, r.as_deref()))
        .collect();
    let Some(Reader::On(src0)) = readers.first_mut() else {
        return Err(Error::Other(
            "an export table read on no open connection".into(),
        ));
    };
    let total = if whole {
        src0.count_rows(t, table_filter)?
    } else {
        None
    };
    let bar = ctx.progress.bar(&t.qualified(), total, false);
    let engine = src0.info().engine;
    // Masked columns are replaced as each batch leaves the reader, before anything else
    // sees it; the parts hold the table as exported.
    let masker = ctx.masks.masker(t, &engine)?;
    let exported = ctx.masks.table_def(t).0;
    let schema = exported.arrow_schema(&engine);
    let zstd_level = crate::bundle::parts::zstd_level(plan.zstd_level)?;
    let (tx, rx) = mpsc::sync_channel(CHANNEL_BATCHES);
    let limits = plan.batch;
    let mut fp = Fingerprint::default();
    let mut infos: Vec<PartInfo> = Vec::new();
    let mut bytes = 0u64;
    let mut logical = 0u64;
    // Columns whose dictionary overflowed in an earlier part: the next parts leave it off.
    let no_dictionary = std::cell::RefCell::new(Vec::new());
    let new_part = || {
        let path = match ctx.part_name {
            Some(name) => name(),
            None => layout::new_part_path(plan.encrypt),
        };
        opened
            .lock()
            .map_err(|_| Error::Other("export part list poisoned".into()))?
            .push(path.clone());
        PartWriter::create(
            store,
            &path,
            schema.clone(),
            writer_properties_without(
                &schema,
                plan.row_group_rows,
                ctx.row_group_bytes,
                zstd_level,
                &no_dictionary.borrow(),
            ),
            seal("part", &path),
        )
    };
    // Set when the reader stopped only because the writer had: the writer's error is then
    // the one to report (a store that gave up is exit 75, not "writer stopped").
    let writer_gone = std::sync::atomic::AtomicBool::new(false);
    // The next range to read, and whether a reader failed (the others then take no more).
    let next = std::sync::atomic::AtomicUsize::new(0);
    let reader_failed = std::sync::atomic::AtomicBool::new(false);
    let written: Result<()> = std::thread::scope(|s| {
        let writer_gone = &writer_gone;
        let (next, reader_failed, filters, masker) = (&next, &reader_failed, &filters, &masker);
        let spawned: Vec<_> = readers
            .into_iter()
            .enumerate()
            .map(|(i, reader)| {
                let tx = tx.clone();
                s.spawn(move || -> ReaderEnd {
                    use std::sync::atomic::Ordering::SeqCst;
                    let read_ranges = |src: &mut dyn source::Source| -> (Result<()>, usize) {
                        let mut n = 0;
                        loop {
                            let k = next.fetch_add(1, SeqCst);
                            if k >= filters.len() || reader_failed.load(SeqCst) {
                                return (Ok(()), n);
                            }
                            let read = src.read(t, filters[k].as_deref(), limits, &mut |b| {
                                let b = match masker {
                                    Some(m) => m.apply(b)?,
                                    None => b,
                                };
                                tx.send(b).map_err(|_| {
                                    writer_gone.store(true, SeqCst);
                                    Error::Other("export writer stopped".into())
                                })
                            });
                            if let Err(e) = read {
                                reader_failed.store(true, SeqCst);
                                return (Err(e), n);
                            }
                            n += 1;
                        }
                    };
                    // A connection after the first reads only if the table's read lock is
                    // its at once (see Source::lock_shared_nowait).
                    let locked = |src: &mut dyn source::Source| -> Result<bool> {
                        if i == 0 {
                            return Ok(true);
                        }
                        src.lock_shared_nowait(t)
                    };
                    const NO_LOCK: &str = "another session waits for a lock on the table";
                    match reader {
                        Reader::On(src) => match locked(src) {
                            Ok(true) => {
                                let (r, n) = read_ranges(src);
                                (r, n, None, None)
                            }
                            Ok(false) => (Ok(()), 0, None, Some((NO_LOCK.into(), false))),
                            Err(e) => (Err(e), 0, None, None),
                        },
                        Reader::Open(open) => match open() {
                            Ok(mut src) => match locked(src.as_mut()) {
                                Ok(true) => {
                                    let (r, n) = read_ranges(src.as_mut());
                                    // A connection whose read failed otherwise may be
                                    // anywhere in its COPY: it is not kept.
                                    let usable = matches!(
                                        r,
                                        Ok(())
                                            | Err(
                                                Error::NeedsText { .. } | Error::NotBoolean { .. }
                                            )
                                    );
                                    (r, n, usable.then_some(src), None)
                                }
                                Ok(false) => (Ok(()), 0, Some(src), Some((NO_LOCK.into(), false))),
                                Err(e) => (Err(e), 0, None, None),
                            },
                            Err(e) => (
                                Ok(()),
                                0,
                                None,
                                Some((format!("it could not open: {e}"), true)),
                            ),
                        },
                    }
                })
            })
            .collect();
        drop(tx);
        let mut current: Option<PartWriter> = None;
        let mut write_all = || -> Result<()> {
            for batch in rx.iter() {
                fp.add(&batch)?;
                logical += crate::types::logical_size(&batch);
                if current.is_none() {
                    current = Some(new_part()?);
                }
                let w = current.as_mut().expect("just made");
                w.write(&batch)?;
                bar.inc(batch.num_rows() as u64);
                bar.set_message(format!(
                    "({} written)",
                    crate::report::human_size(bytes + w.size_estimate())
                ));
                if w.size_estimate() >= plan.max_part_bytes
                    || (plan.max_part_rows > 0 && w.rows() >= plan.max_part_rows)
                {
                    let full = current.take().expect("open part");
                    bytes += close_part(full, &mut infos, &mut parts, &no_dictionary)?;
                }
            }
            Ok(())
        };
        let res = write_all();
        drop(rx);
        // Every reader is joined before any is reported (a scope that still holds a
        // panicked thread at its end panics itself).
        let ends: Vec<_> = spawned.into_iter().map(|h| h.join()).collect();
        let mut read: Result<()> = Ok(());
        for end in ends {
            let Ok((r, n, new_source, idle)) = end else {
                read = read.and(Err(Error::Other(format!(
                    "reader of {} crashed",
                    t.qualified()
                ))));
                continue;
            };
            // The first reader error is the cause; a later one may only be its echo.
            if read.is_ok() {
                read = r;
            }
            done.ranges_read.push(n);
            done.new_sources.extend(new_source);
            if let Some((why, not_opened)) = idle {
                done.not_opened += usize::from(not_opened);
                ctx.progress.line(&format!(
                    "{}: one more connection read nothing ({why}); the others read its ranges",
                    t.qualified()
                ));
            }
        }
        // A reader error explains a writer that stopped early; report it first, unless the
        // reader stopped because the writer had failed.
        match (read, res) {
            (Err(_), Err(w)) if writer_gone.load(std::sync::atomic::Ordering::SeqCst) => {
                return Err(w);
            }
            (Err(r), _) | (Ok(_), Err(r)) => return Err(r),
            (Ok(_), Ok(())) => {}
        }
        // Every table has at least one part, so an empty table still round-trips.
        let last = match current.take() {
            Some(w) => Some(w),
            None if infos.is_empty() && first_slice => Some(new_part()?),
            None => None,
        };
        if let Some(w) = last {
            bytes += close_part(w, &mut infos, &mut parts, &no_dictionary)?;
        }
        Ok(())
    });
    written?;
    bar.finish_and_clear();
    let rows = fp.rows;
    ctx.progress.line(&format!(
        "exported {}{}{}: {}, {}, {}",
        if ctx.key_set {
            "the primary-key set of "
        } else {
            ""
        },
        t.qualified(),
        if whole { "" } else { " (one range)" },
        if ctx.key_set {
            crate::report::count(rows, "key", "keys")
        } else {
            crate::report::rows_word(rows)
        },
        crate::report::count(infos.len() as u64, "part", "parts"),
        crate::report::human_size(bytes)
    ));
    Ok(Exported {
        table: exported,
        notes: Vec::new(),
        infos,
        parts,
        fingerprint: fp,
        bytes,
        logical,
        elapsed: t_start.elapsed(),
    })
}

/// Closes a part and records it in the table's part list; returns its stored size.
fn close_part(
    w: PartWriter,
    infos: &mut Vec<PartInfo>,
    parts: &mut Vec<FileEntry>,
    no_dictionary: &std::cell::RefCell<Vec<parquet::schema::types::ColumnPath>>,
) -> Result<u64> {
    let (entry, rows, overflowed) = w.finish_noting()?;
    let mut off = no_dictionary.borrow_mut();
    for c in overflowed {
        if !off.contains(&c) {
            off.push(c);
        }
    }
    let size = entry.size;
    infos.push(PartInfo {
        path: entry.path.clone(),
        index: u32::try_from(infos.len()).unwrap_or(u32::MAX),
        rows,
    });
    parts.push(entry);
    Ok(size)
}

/// `--where TABLE:PREDICATE` values for a source URL: each predicate parsed as one boolean
/// expression in the source's dialect and printed back from its tree, so it can filter
/// rows and never end the query or start another statement (exit 2 otherwise).
pub fn parse_filters(
    source_url: &str,
    filters: Vec<(String, String)>,
) -> Result<Vec<(String, String)>> {
    let engine = crate::engines::for_url(source_url)?.sql;
    filters
        .into_iter()
        .map(|(t, pred)| {
            let rebuilt = crate::expr::rebuild_where(&pred, engine).map_err(|why| {
                Error::Usage(format!(
                    "--where {t}:…: the predicate {why}; give one boolean expression over the table's columns"
                ))
            })?;
            Ok((t, rebuilt))
        })
        .collect()
}

pub(crate) fn filter_for<'a>(plan: &'a ExportPlan, t: &crate::types::TableDef) -> Option<&'a str> {
    plan.filters
        .iter()
        .find(|(n, _)| *n == t.name || *n == t.qualified())
        .map(|(_, p)| p.as_str())
}
