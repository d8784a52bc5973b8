//! `ferry import`: a bundle is opened and fully verified (RELIABILITY.md's order) before a
//! single row is written; then each part is loaded in its own transaction together with
//! its ledger row, so a crash or kill at any point leaves whole parts only and a re-run
//! resumes. Written once against the `Target` trait.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::bundle::check::OpenBundle;
use crate::bundle::{CatalogTable, Checked};
use crate::crypto::keys::Keys;
use crate::engines::{self, Engine};
use crate::error::exit;
use crate::load::Target;
use crate::load::{self, LedgerEntry, LedgerState, LoadInto, LoadOutcome, PartLoad};
use crate::preflight::Planned;
use crate::report::{Progress, RunReport};
use crate::types::TableDef;
use crate::{Error, Result};
use rejects::{Budget, Sink};

pub use crate::load::{Mode, OnError};
pub use rejects::MaxErrors;

mod order;
mod rejects;

/// The staging table of a replace: `_ferry_<bundle id first 8>_<8 hex of SHA-256 of the
/// target table name>`. Deterministic, so a re-run of the same bundle finds and reuses it.
pub fn staging_name(bundle_id: &str, target_table: &str) -> String {
    let h = hex::encode(Sha256::digest(target_table.as_bytes()));
    let id: String = bundle_id.chars().take(8).collect();
    format!("_ferry_{id}_{}", &h[..8])
}

/// Testing hook (documented in README.md, "Importing exactly once"):
/// `FERRY_PAUSE_AT=<point>:<n>` stops the import at a named point, prints
/// `ferry: paused at <point> <n>` to stderr and sleeps `FERRY_PAUSE_SECS` seconds (default
/// 600) before going on, so a test can kill the process there, or watch a slow step. Points: `part-sent` (every row of the n-th part this run loads
/// is sent, not committed), `part-committed` (after that part's commit), `staged` (every part
/// of the n-th table this run publishes is staged; before its publish), `publish` (inside
/// that publish transaction, before COMMIT), `deletes` (inside the n-th table's deletes
/// transaction of a link, every key loaded and the rows deleted, before COMMIT);
/// `decrypted-part` (decrypt: after the n-th part file is written).
pub(crate) fn pause_at(point: &str, n: usize) {
    static HOOK: LazyLock<Option<(String, usize)>> = LazyLock::new(|| {
        let v = std::env::var("FERRY_PAUSE_AT").ok()?;
        let (p, n) = v.rsplit_once(':')?;
        Some((p.to_string(), n.parse().ok()?))
    });
    if let Some((p, at)) = HOOK.as_ref()
        && p == point
        && *at == n
    {
        eprintln!("ferry: paused at {point} {n}");
        let secs = std::env::var("FERRY_PAUSE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600);
        std::thread::sleep(Duration::from_secs(secs));
    }
}

/// `import --streams` default on MySQL/MariaDB and PostgreSQL, whose servers parse one LOAD
/// DATA or COPY on one thread: a table with two parts or more loads on two connections
/// ([`crate::load::Target::default_streams`]).
pub const DEFAULT_STREAMS: usize = 2;
/// Rows per decoded batch on import, and bytes of data at most ([`IMPORT_BATCH_BYTES`]):
/// each stream holds about three batches (one decoding, one read ahead, one being sent),
/// so half the reader's rows and a quarter of its bytes keep two streams within the
/// 256 MiB bound, wide rows included, with no measurable cost in speed on narrow ones.
pub const IMPORT_BATCH_ROWS: usize = 32_768;
/// See [`IMPORT_BATCH_ROWS`].
pub const IMPORT_BATCH_BYTES: u64 = crate::bundle::parts::BATCH_BYTES / 4;
/// `import --spool-limit` default (4 GiB): the largest bundle on an object store that is
/// downloaded once into a local spool.
pub const DEFAULT_SPOOL_LIMIT: u64 = 4 << 30;
/// Free space the spool leaves on its file system beyond the bundle's size.
const SPOOL_HEADROOM: u64 = 256 << 20;

pub struct ImportPlan {
    pub bundle_url: String,
    pub target_url: String,
    pub keys: Keys,
    pub mode: Mode,
    pub tables: Vec<String>,
    pub exclude: Vec<String>,
    /// `SRC=DST` table renames.
    pub renames: Vec<(String, String)>,
    pub strict: bool,
    pub dry_run: bool,
    /// Load a bundle older (by sequence) than one already imported from its source.
    pub allow_replay: bool,
    /// Take a plain (`--no-encrypt`) bundle, which nothing authenticates (`--allow-unencrypted`).
    pub allow_unencrypted: bool,
    /// PostgreSQL schema to load into (default: each table's own schema).
    pub target_schema: Option<String>,
    /// Load columns that travel as text (types with no portable form) into another engine as text.
    pub as_text: bool,
    /// Tables loaded at once, each on its own connection.
    pub jobs: usize,
    /// `--streams`: connections each table with at least two parts left to load spreads its
    /// parts over (one per table when 1, and always on SQLite's single writer).
    /// `None`: the target engine's default ([`crate::load::Target::default_streams`]).
    pub streams: Option<usize>,
    /// `--spool-dir`: where the spool of a bundle on an object store is made (default: the
    /// system's temporary directory).
    pub spool_dir: Option<std::path::PathBuf>,
    /// `--spool-limit`: the largest bundle (bytes) spooled; a larger one, or 0, reads each
    /// part twice from the store (verify, then load).
    pub spool_limit: u64,
    pub batch_rows: usize,
    /// Apply a link whose predecessor is not applied here.
    pub accept_gap: bool,
    /// Most of a table a link's deletes may remove.
    pub max_delete_ratio: f64,
    /// `--mode replace` of a partial table (exported with `--where`).
    pub replace_partial: bool,
    /// A deliberate second copy in `--target-schema`, with a ledger of its own there.
    pub separate_copy: bool,
    /// `--on-error`: a row the target refuses fails its part (the default), or is set aside.
    pub on_error: OnError,
    /// `--max-errors` (with `--on-error skip`; `None`: no limit).
    pub max_errors: Option<MaxErrors>,
    /// `--rejects DIR` (with `--on-error skip`): where the refused rows go.
    pub rejects: Option<std::path::PathBuf>,
    /// `--trust-expressions`: only with a bundle signed by a `--trust`ed key (exit 77 before
    /// anything is written otherwise).
    pub trust_expressions: bool,
}

impl ImportPlan {
    pub fn new(bundle_url: &str, target_url: &str) -> Self {
        ImportPlan {
            bundle_url: bundle_url.into(),
            target_url: target_url.into(),
            keys: Keys::default(),
            mode: Mode::Create,
            tables: vec![],
            exclude: vec![],
            renames: vec![],
            strict: false,
            dry_run: false,
            allow_replay: false,
            allow_unencrypted: false,
            target_schema: None,
            as_text: false,
            jobs: 1,
            streams: None,
            spool_dir: None,
            spool_limit: DEFAULT_SPOOL_LIMIT,
            batch_rows: IMPORT_BATCH_ROWS,
            accept_gap: false,
            max_delete_ratio: 0.1,
            replace_partial: false,
            separate_copy: false,
            on_error: OnError::Fail,
            max_errors: None,
            rejects: None,
            trust_expressions: false,
        }
    }

    fn wants(&self, t: &CatalogTable) -> bool {
        let q = t.table.qualified();
        let hit = |n: &String| *n == t.table.name || *n == q;
        (self.tables.is_empty() || self.tables.iter().any(hit)) && !self.exclude.iter().any(hit)
    }

    fn target_name(&self, t: &CatalogTable) -> String {
        let q = t.table.qualified();
        self.renames
            .iter()
            .find(|(s, _)| *s == t.table.name || *s == q)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| t.table.name.clone())
    }
}

/// What a failed import leaves behind, for the summary.
struct FailureState {
    /// Parts of the selected tables committed at the target (ledger), and their parts.
    committed: usize,
    total: usize,
    /// Whether the selected tables are all of the bundle's (else `--table`/`--exclude`
    /// chose some).
    whole_bundle: bool,
    mode: Mode,
    /// Replace: tables whose publish committed, and the tables this import loads.
    published: usize,
    tables: usize,
    /// Replace: the table whose publish failed, if that is what failed.
    publish_failed: Option<String>,
    /// What a fresh connection found in the ledger after the failure.
    check: LedgerCheck,
}

/// After a failure ferry reconnects and reads the ledger again (RELIABILITY.md case 49): a
/// connection lost during COMMIT leaves its outcome unknown to the client, and only the
/// ledger can tell. Nothing is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LedgerCheck {
    /// The ledger was read again and holds nothing of what failed.
    Read,
    /// The failed part is in the ledger: its COMMIT reached the server and committed, only
    /// the answer was lost.
    CommitLost(String),
    /// The failed publish is in the ledger (its parts are published): its COMMIT committed,
    /// only the answer was lost.
    PublishLost,
    /// The ledger could not be read again (why): the counts are this run's own, and when the
    /// connection went away (`outcome_unknown`) a COMMIT in flight may have committed.
    Unread { why: String, outcome_unknown: bool },
}

impl FailureState {
    fn message(&self) -> String {
        let (committed, total) = (self.committed, self.total);
        let unknown = matches!(
            self.check,
            LedgerCheck::Unread {
                outcome_unknown: true,
                ..
            }
        );
        let unless = if unknown {
            " unless the connection was lost during its COMMIT"
        } else {
            ""
        };
        let mut m = match (&self.publish_failed, &self.check) {
            (Some(t), LedgerCheck::PublishLost) => format!(
                "the connection was lost during the COMMIT of the publish of {t}: the ledger shows it published \
                 (the server committed it; only its answer was lost)"
            ),
            (Some(t), _) => format!(
                "the publish of {t} was rolled back{unless}: it still holds its old rows and its parts wait in staging"
            ),
            (None, LedgerCheck::CommitLost(p)) => format!(
                "the connection was lost during COMMIT of part {p}: the ledger shows it committed (the server \
                 committed it; only its answer was lost)"
            ),
            (None, _) => format!("nothing from the failed part was committed{unless}"),
        };
        let source = match &self.check {
            LedgerCheck::Unread { why, .. } => format!(
                "as this run counted them: could not reconnect to read the ledger ({why}); the re-run will find out"
            ),
            _ => "ledger".to_string(),
        };
        m.push_str(&format!(
            "; {committed}/{total} parts of {} are committed ({source})",
            if self.whole_bundle {
                "this bundle"
            } else {
                "the selected tables"
            }
        ));
        if self.mode == Mode::Replace {
            m.push_str(&format!(
                "; replace: {}/{} tables published, the others still hold their old rows (their committed parts \
                 wait in staging tables _ferry_<bundle>_<table>)",
                self.published, self.tables
            ));
        }
        m.push_str("; re-run the same command to resume");
        m
    }
}

/// A failed import, with the summary of what it did before it failed (`None` when it
/// failed before loading anything: then there is nothing to tell but the error).
#[derive(Debug)]
pub struct Failed {
    pub error: Error,
    pub report: Option<Box<RunReport>>,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Failed {
            error,
            report: None,
        }
    }
}

/// Imports a bundle; the error alone on failure ([`import_reporting`] keeps the summary).
pub fn import(plan: &ImportPlan, progress: &Progress) -> Result<RunReport> {
    import_reporting(plan, progress).map_err(|f| f.error)
}

/// Imports a bundle. A run that fails once loading began comes back with its summary:
/// the tables and parts it committed (read again from the ledger), its rejected rows,
/// `status` "failed" and the exit code, so `--json` tells what the target holds.
pub fn import_reporting(
    plan: &ImportPlan,
    progress: &Progress,
) -> std::result::Result<RunReport, Failed> {
    if plan.on_error == OnError::Fail {
        let given: Vec<&str> = [
            plan.max_errors.map(|_| "--max-errors"),
            plan.rejects.as_ref().map(|_| "--rejects"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !given.is_empty() {
            return Err(Error::Usage(format!(
                "{} appl{} with --on-error skip (rows the target refuses are set aside); without it the first \
                 refused row fails its part and the import stops",
                given.join(" and "),
                if given.len() == 1 { "ies" } else { "y" }
            ))
            .into());
        }
    }
    let started = Instant::now();
    let Opened {
        mut report,
        engine,
        mut target,
        mut checked,
        ledger,
    } = open_and_verify(plan, progress)?;
    if checked.catalog.source.engine != engine.name {
        report
            .warnings
            .extend(adapt_to_engine(&mut checked.catalog, engine));
    }
    let run = Run {
        plan,
        progress,
        started,
        id: &checked.bundle.manifest.bundle_id,
        tables: plan_tables(plan, &checked, &ledger)?,
        engine,
        same_engine: checked.catalog.source.engine == engine.name,
        checked: &checked,
        ledger: &ledger,
    };
    // Pre-flight, before anything is written: modes and what the ledger says.
    check_modes(&run, target.as_mut())?;
    if !plan.dry_run {
        clear_staging(&run, target.as_mut(), &mut report)?;
    }
    if run.tables.all_done() {
        nothing_to_do(&run, &mut report);
        return Ok(report);
    }
    let planned = preflight(&run, target.as_mut(), &mut report)?;
    if plan.dry_run {
        dry_run(&run, &planned, &mut report);
        return Ok(report);
    }
    let rejects = Sink {
        dir: plan.rejects.as_deref(),
        target_url: &plan.target_url,
        bundle_id: run.id,
        budget: &Budget::new(
            plan.max_errors,
            run.tables.selected.iter().map(|t| t.rows).sum(),
            run.tables
                .selected
                .iter()
                .flat_map(|t| &t.parts)
                .filter_map(|p| ledger.counts.get(&p.path))
                .map(|c| c.1)
                .sum(),
        ),
    };
    report.warnings.extend(rejects.prepare()?);
    let skip = (plan.on_error == OnError::Skip).then_some(&rejects);
    let done = load_tables(&run, target, &mut report, skip)
        .and_then(|target| finish(&run, target, &mut report, skip));
    match done {
        Ok(()) => Ok(report),
        Err(error) => {
            report.status = "failed".into();
            report.exit_code = error.exit_code();
            report.message = error.to_string();
            if let Error::InvalidBundle { findings, .. } = &error {
                report.findings.clone_from(findings);
            }
            report.close(started.elapsed());
            Err(Failed {
                error,
                report: Some(Box::new(report)),
            })
        }
    }
}

/// The target, its ledger where this import keeps it (`--separate-copy`).
fn open_target(plan: &ImportPlan) -> Result<Box<dyn Target>> {
    let mut target = engines::open_target(&plan.target_url, plan.target_schema.as_deref())?;
    if plan.separate_copy {
        target.separate_ledger()?;
    }
    // Only reached for a bundle signed by a trusted key (checked in `open_and_verify`).
    if plan.trust_expressions {
        target.trust_expressions();
    }
    Ok(target)
}

/// What [`open_and_verify`] hands on: the report so far, the target (its run lock taken),
/// the verified bundle and what the target's ledger holds of it.
/// A bundle of another engine: what its catalog says that only the source's engine can
/// recreate. Generated columns are loaded as plain data (named); CHECKs are carried when
/// their expression means the same in the target's SQL ([`crate::expr::translate`]), else
/// named as not carried. Returns the warnings.
fn adapt_to_engine(catalog: &mut crate::bundle::catalog::Catalog, engine: &Engine) -> Vec<String> {
    let from = catalog.source.engine.clone();
    catalog
        .tables
        .iter_mut()
        .flat_map(|t| adapt_table(&mut t.table, &from, engine))
        .collect()
}

/// [`adapt_to_engine`] for one table of engine `from` (`ferry plan` uses it too).
pub(crate) fn adapt_table(table: &mut TableDef, from: &str, engine: &Engine) -> Vec<String> {
    let source_sql = engines::by_name(from).map(|e| e.sql);
    let mut notes = Vec::new();
    let qualified = table.qualified();
    let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    for c in &mut table.columns {
        if c.generated.take().is_some() {
            notes.push(format!(
                "generated column {qualified}.{} is loaded as plain data: its expression is {from}'s \
                 and is not recreated on {}",
                c.name, engine.name
            ));
        }
    }
    let scope = crate::expr::Scope {
        columns: &names,
        value: false,
        any_function: false,
    };
    let mut kept = Vec::new();
    for chk in table.checks.drain(..) {
        let translated = match source_sql {
            Some(f) => crate::expr::translate(&chk.expr, f, engine.sql, scope),
            None => Err(format!("is written for {from}")),
        };
        match translated {
            Ok(c) => kept.push(crate::types::Check {
                name: chk.name,
                expr: c.sql,
            }),
            Err(why) => notes.push(format!(
                "not carried: CHECK {} on {qualified}: it {why}",
                chk.name
            )),
        }
    }
    table.checks = kept;
    notes
}

struct Opened {
    report: RunReport,
    engine: &'static Engine,
    target: Box<dyn Target>,
    checked: Checked,
    ledger: LedgerState,
}

/// Opens the bundle and the target and verifies the bundle in full, in RELIABILITY.md's
/// order: manifest and file set, no downgrade, the target reachable and its run lock taken,
/// keys and MAC, the ledger ([`check_ledger`]), then every file.
fn open_and_verify(plan: &ImportPlan, progress: &Progress) -> Result<Opened> {
    // 1-5: manifest and file set, before touching the target.
    let bundle = OpenBundle::open(&plan.bundle_url, plan.strict)?;
    // No downgrade: decided before the target is opened (or created), so nothing is written.
    bundle.refuse_downgrade(&plan.keys, Some(plan.allow_unencrypted))?;
    // Signed by a trusted key (when a trust list is given), before the target is touched.
    let signature = bundle.check_signature(&plan.keys)?;
    if plan.trust_expressions && !signature.checked {
        return Err(Error::Key(format!(
            "--trust-expressions replays expressions outside the allowlist only for a bundle signed by a \
             --trust'ed key, and {}: give the sender's public key with --trust or --trust-file (the bundle must \
             be exported with --sign-key), or drop --trust-expressions. Refused, nothing written",
            if plan.keys.trust.is_empty() {
                "no --trust or --trust-file was given"
            } else {
                "this bundle's signature was not checked"
            }
        )));
    }
    let mut report = RunReport::new("import");
    report.bundle = Some(crate::redact::display_location(&plan.bundle_url));
    report.bundle_id = Some(bundle.manifest.bundle_id.clone());
    // An encrypted bundle goes no further than `unlock` unless a slot opens and the MAC holds.
    let encrypted = bundle.manifest.encrypted();
    report.set_signature(&signature, bundle.fingerprint());
    if plan.trust_expressions {
        report.warnings.push(format!(
            "--trust-expressions: the bundle is signed by trusted key id {}, so the expressions it carries \
             (PostgreSQL domain defaults and CHECKs) may call functions outside the allowlist (still parsed and \
             rebuilt, one expression each)",
            signature.signed_by.as_deref().unwrap_or("?")
        ));
    }
    if !encrypted {
        report.warnings.push(
            "bundle is NOT encrypted (accepted with --allow-unencrypted): no MAC, so anyone who could write \
             the bundle could have made it, its source id and sequence included"
                .into(),
        );
    }
    report.warnings.extend(bundle.warnings());
    // The target must be reachable before the expensive verification.
    let engine = engines::for_url(&plan.target_url)?;
    let mut target = open_target(plan)?;
    if let Some(s) = target.other_ledger()? {
        return Err(Error::Usage(format!(
            "schema {s} holds a ledger of its own (a copy loaded with --separate-copy, or by a ferry before 0.2): \
             loading into it under the database's ledger could load its bundles twice; nothing was written: pass \
             --separate-copy to load under that ledger"
        )));
    }
    // One import of this bundle into this target at a time (exit 75 for the second).
    target.lock_run(&bundle.manifest.bundle_id)?;
    // A ledger of an older ferry gets the columns this one writes (a dry run writes nothing:
    // the ledger is read as it is).
    if !plan.dry_run {
        load::ledger::upgrade(target.as_mut())?;
    }
    // 6: keys and MAC (cheap), then the ledger: a finished bundle is a no-op.
    let unlocked = bundle.unlock(&plan.keys)?;
    // What the MAC proves depends on the slot that opened (an age slot: nothing about the
    // sender, unless a trusted signature covers the manifest).
    report.set_trust_opened(encrypted, unlocked.opened_by(), signature.checked);
    let ledger = check_ledger(plan, &bundle, target.as_mut())?;
    // 8: the full pass.
    let id = bundle.manifest.bundle_id.clone();
    let total_bytes: u64 = bundle.manifest.files().map(|f| f.size).sum();
    let spool = spool_for(plan, &bundle, total_bytes, &mut report)?;
    let bar = progress.bar("verifying", Some(total_bytes), true);
    let checked = match spool {
        Some(spool) => bundle.check_spooled(unlocked, &|f| bar.inc(f.size), spool)?,
        None => bundle.check_unlocked(unlocked, &|f| bar.inc(f.size))?,
    };
    bar.finish_and_clear();
    if let Some(dir) = checked.spooled() {
        progress.line(&format!(
            "downloaded each file once into the spool {} (ciphertext; removed when the import ends)",
            dir.display()
        ));
    }
    progress.line(&format!(
        "verified bundle {id}: {} files, {}",
        checked.bundle.manifest.parts.len() + 1,
        crate::report::human_size(total_bytes)
    ));
    Ok(Opened {
        report,
        engine,
        target,
        checked,
        ledger,
    })
}

/// The spool of a bundle on an object store (README "Importing from an object store"):
/// each file is then downloaded once, verified as it arrives, and loaded from the local
/// copy. `None`, with a warning saying why, when the bundle is over `--spool-limit`, when
/// the spool directory lacks the space, or when the bundle is plain (the spool holds
/// ciphertext only): then each part is read twice from the store (verify, then load).
/// A local bundle is never spooled (nothing is downloaded).
fn spool_for(
    plan: &ImportPlan,
    bundle: &OpenBundle,
    total_bytes: u64,
    report: &mut RunReport,
) -> Result<Option<crate::bundle::check::Spool>> {
    if bundle.store.is_local() || plan.dry_run {
        return Ok(None);
    }
    let size = crate::report::human_size;
    let twice = "each part is read twice from the store (once to verify it, once to load it)";
    if !bundle.manifest.encrypted() {
        report.warnings.push(format!(
            "a plain bundle is not spooled (the spool keeps ciphertext only): {twice}"
        ));
        return Ok(None);
    }
    if plan.spool_limit == 0 {
        report
            .warnings
            .push(format!("--spool-limit 0: no spool, so {twice}"));
        return Ok(None);
    }
    if total_bytes > plan.spool_limit {
        report.warnings.push(format!(
            "the bundle holds {}, more than --spool-limit {}: {twice}; raise --spool-limit (the spool needs that \
             much free space in --spool-dir) to download it once",
            size(total_bytes),
            size(plan.spool_limit)
        ));
        return Ok(None);
    }
    let dir = plan.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    if let Ok(st) = rustix::fs::statvfs(dir.as_path()) {
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        if free < total_bytes.saturating_add(SPOOL_HEADROOM) {
            report.warnings.push(format!(
                "the spool directory {} has {} free, and the bundle holds {}: {twice}; give --spool-dir a \
                 directory with room to download it once",
                dir.display(),
                size(free),
                size(total_bytes)
            ));
            return Ok(None);
        }
    }
    crate::bundle::check::Spool::create(&dir, &bundle.manifest.bundle_id).map(Some)
}

/// What the target's ledger holds of this bundle, once it shows that the bundle id was not
/// imported before with other content, and that the bundle is not older (by sequence) than
/// one already imported from its source (unless `--allow-replay`).
fn check_ledger(
    plan: &ImportPlan,
    bundle: &OpenBundle,
    target: &mut dyn Target,
) -> Result<LedgerState> {
    let id = &bundle.manifest.bundle_id;
    let ledger = load::ledger::state(target, id)?;
    if ledger
        .manifest_sha256
        .iter()
        .any(|m| *m != bundle.manifest_sha256)
    {
        return Err(Error::invalid(
            crate::redact::display_location(&plan.bundle_url),
            "manifest.json",
            format!(
                "bundle id {id} was imported here before with different content (another manifest.json, \
                 first loaded {}). A `ferry rekey` after that import changes the manifest and nothing else: \
                 if this bundle was rekeyed, its data is already loaded here (`ferry status TARGET` lists it) \
                 and there is nothing to do. Otherwise the bundle id was reused or the bundle tampered with",
                ledger
                    .first_loaded_at
                    .as_deref()
                    .unwrap_or("at an unknown time")
            ),
        ));
    }
    if let Some(chain) = &bundle.manifest.chain_id {
        check_chain(plan, bundle, chain, target)?;
        return Ok(ledger);
    }
    // Replay: an older bundle from the same source is refused unless asked for.
    let seq = bundle.manifest.sequence;
    if let Some((last, last_bundle)) =
        load::ledger::last_sequence(target, &bundle.manifest.source_id)?
        && seq < last
        && last_bundle != *id
        && !plan.allow_replay
    {
        return Err(Error::invalid(
            crate::redact::display_location(&plan.bundle_url),
            "manifest.json",
            format!(
                "bundle sequence {seq} < last imported {last} from source {} (bundle {last_bundle}): an older \
                     bundle replayed, or a rollback? Pass --allow-replay to load it anyway",
                bundle.manifest.source_id
            ),
        ));
    }
    Ok(ledger)
}

/// A link of a chain goes on only after its predecessor (docs/MIGRATIONS.md): its own
/// sequence taken by another bundle is a fork, its predecessor missing (or not finished)
/// a gap (`--accept-gap` applies it anyway), a link older than one applied here is
/// refused; a link applied before passes (the ledger then finds nothing to do).
fn check_chain(
    plan: &ImportPlan,
    bundle: &OpenBundle,
    chain: &str,
    target: &mut dyn Target,
) -> Result<()> {
    let m = &bundle.manifest;
    let (id, seq) = (&m.bundle_id, m.sequence);
    let where_ = crate::redact::display_location(&plan.bundle_url);
    let refuse = |msg: String| Err(Error::Chain(format!("bundle {where_}: {msg}")));
    let links = load::ledger::chain_links(target, chain)?;
    let short = |b: &str| b.chars().take(12).collect::<String>();
    if let Some(l) = links.iter().find(|l| l.sequence == seq) {
        if l.bundle_id == *id {
            return Ok(());
        }
        return refuse(format!(
            "chain {}: link {seq} here is bundle {}, and this bundle {} claims the same place: a fork (two \
             exports --since the same bundle). Nothing was written; apply the links of one line only",
            short(chain),
            l.bundle_id,
            id
        ));
    }
    if let Some(newest) = links.iter().map(|l| l.sequence).max()
        && newest > seq
        && !plan.accept_gap
    {
        return refuse(format!(
            "chain {}: link {newest} is applied here, and this bundle is link {seq}, which never was: applying \
             it now would bring back older rows. Nothing was written (--accept-gap applies it anyway)",
            short(chain)
        ));
    }
    if seq <= 1 || plan.accept_gap {
        return Ok(());
    }
    let want_prev = m.prev_manifest_sha256.as_deref().unwrap_or("");
    match links.iter().find(|l| l.sequence == seq - 1) {
        Some(p) if p.manifest_sha256 != want_prev => refuse(format!(
            "chain {}: link {} here is bundle {}, but this link follows another bundle (manifest SHA-256 \
             {}…): a fork. Nothing was written",
            short(chain),
            seq - 1,
            p.bundle_id,
            want_prev.chars().take(16).collect::<String>()
        )),
        Some(p) if !p.complete() => refuse(format!(
            "chain {}: link {} (bundle {}) is only partly applied here ({} of {} parts); nothing was written: \
             finish it first (run its import again), then this one",
            short(chain),
            seq - 1,
            p.bundle_id,
            p.parts_in,
            p.parts
        )),
        Some(_) => Ok(()),
        None => {
            let have = if links.is_empty() {
                "none of its links".to_string()
            } else {
                format!(
                    "links {}",
                    links
                        .iter()
                        .map(|l| l.sequence.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            refuse(format!(
                "chain {}: this bundle is link {seq}, and link {} (the bundle whose manifest.json has SHA-256 \
                 {want_prev}) is not applied here ({have} applied). Nothing was written: import the missing \
                 links in order first, or pass --accept-gap to apply this one anyway",
                short(chain),
                seq - 1
            ))
        }
    }
}

/// Every part of `t` is in `parts` and none waits in `staged` (a replace's are published).
fn published_in(parts: &HashSet<&str>, staged: &HashSet<&str>, t: &CatalogTable) -> bool {
    t.parts
        .iter()
        .all(|p| parts.contains(p.path.as_str()) && !staged.contains(p.path.as_str()))
}

/// The tables this import loads, built once from the catalog, the options and the ledger.
struct TablePlan<'a> {
    /// The catalog's tables that `--table` and `--exclude` select, in catalog order.
    selected: Vec<&'a CatalogTable>,
    /// Each selected table's target name (after `--rename`) and definition, index for
    /// index: what the target's pre-flight, `prepare` and `finish_all` take.
    targets: Vec<(String, &'a TableDef)>,
    /// Parts of this bundle in the ledger.
    done: HashSet<&'a str>,
    /// Of those, the parts in a replace's staging table, not yet published.
    staged: HashSet<&'a str>,
    /// Every part of the selected tables.
    wanted_parts: Vec<&'a str>,
}

impl<'a> TablePlan<'a> {
    /// Each selected table with its target name.
    fn tables(&self) -> impl Iterator<Item = (&'a CatalogTable, &str)> + '_ {
        self.selected
            .iter()
            .copied()
            .zip(self.targets.iter().map(|(n, _)| n.as_str()))
    }

    /// Selected table `i` with its target name.
    fn at(&self, i: usize) -> (&'a CatalogTable, &str) {
        (self.selected[i], self.targets[i].0.as_str())
    }

    /// Every part of `t` is committed and none waits in staging.
    fn published(&self, t: &CatalogTable) -> bool {
        published_in(&self.done, &self.staged, t)
    }

    /// Every part of the selected tables is committed and none waits in staging.
    fn all_done(&self) -> bool {
        !self.wanted_parts.is_empty()
            && self
                .wanted_parts
                .iter()
                .all(|p| self.done.contains(p) && !self.staged.contains(p))
    }
}

/// The selected tables (a `--table`, `--exclude` or `--rename` naming a table the bundle
/// does not have is a usage error), their target names and what the ledger holds of them.
fn plan_tables<'a>(
    plan: &ImportPlan,
    checked: &'a Checked,
    ledger: &'a LedgerState,
) -> Result<TablePlan<'a>> {
    let catalog = &checked.catalog.tables;
    let selected: Vec<&CatalogTable> = catalog.iter().filter(|t| plan.wants(t)).collect();
    for n in plan
        .tables
        .iter()
        .chain(plan.exclude.iter())
        .chain(plan.renames.iter().map(|(s, _)| s))
    {
        if !catalog
            .iter()
            .any(|t| t.table.name == *n || t.table.qualified() == *n)
        {
            return Err(Error::Usage(format!("{n}: the bundle has no such table")));
        }
    }
    let targets = selected
        .iter()
        .map(|t| (plan.target_name(t), &t.table))
        .collect();
    let wanted_parts = selected
        .iter()
        .flat_map(|t| t.all_parts().map(|p| p.path.as_str()))
        .collect();
    Ok(TablePlan {
        selected,
        targets,
        done: ledger.parts.iter().map(|(p, _)| p.as_str()).collect(),
        staged: ledger.staged.iter().map(String::as_str).collect(),
        wanted_parts,
    })
}

/// What every step after [`open_and_verify`] shares.
struct Run<'a> {
    plan: &'a ImportPlan,
    progress: &'a Progress,
    /// When the import began, for the summary's times.
    started: Instant,
    /// The bundle id.
    id: &'a str,
    tables: TablePlan<'a>,
    /// The target engine, and whether the bundle comes from the same one.
    engine: &'static Engine,
    same_engine: bool,
    checked: &'a Checked,
    /// What the target's ledger held of this bundle when the import began.
    ledger: &'a LedgerState,
}

impl Run<'_> {
    /// This bundle is a link of a chain after the first.
    fn is_link(&self) -> bool {
        let m = &self.checked.bundle.manifest;
        m.chain_id.is_some() && m.prev_manifest_sha256.is_some()
    }

    /// How table `t` loads: a link applies its cursor tables by upsert and its other
    /// tables (which travel whole) by replace; any other bundle as `--mode` says.
    fn mode(&self, t: &CatalogTable) -> Mode {
        if self.is_link() {
            // A whole table is replaced; its publish keeps the rows that reference it.
            if t.cursor.is_some() {
                Mode::Upsert
            } else {
                Mode::Replace
            }
        } else {
            self.plan.mode
        }
    }

    /// The mode the run as a whole is described by (summaries, privileges).
    fn run_mode(&self) -> Mode {
        if self.is_link() {
            Mode::Replace
        } else {
            self.plan.mode
        }
    }

    /// The chain-link row a part of this bundle carries, when the bundle is a link.
    fn link(&self) -> Option<load::ledger::ChainLink> {
        let m = &self.checked.bundle.manifest;
        Some(load::ledger::ChainLink {
            chain_id: m.chain_id.clone()?,
            prev_manifest_sha256: m
                .prev_manifest_sha256
                .clone()
                .unwrap_or_else(|| "0".repeat(64)),
            parts: m.parts.len() as u64,
        })
    }
}

/// Pre-flight of the mode against the ledger and the target: upsert needs the same primary
/// key on both sides, and a table must go on in the mode that an earlier import of this
/// bundle began it in.
fn check_modes(run: &Run<'_>, target: &mut dyn Target) -> Result<()> {
    let (plan, id) = (run.plan, run.id);
    if run.is_link() && matches!(plan.mode, Mode::Append | Mode::Replace) {
        return Err(Error::Usage(format!(
            "bundle {id} is link {} of a chain: it applies its tables by itself (upsert, then deletes of what the \
             source deleted; a table without a primary key by replace); leave out --mode",
            run.checked.bundle.manifest.sequence
        )));
    }
    if run
        .tables
        .selected
        .iter()
        .any(|t| run.mode(t) == Mode::Upsert)
    {
        check_upsert_keys(run, target)?;
    }
    let partial: Vec<String> = run
        .tables
        .tables()
        .filter(|(t, _)| run.mode(t) == Mode::Replace && t.partial && !plan.replace_partial)
        .map(|(_, n)| n.to_string())
        .collect();
    if !partial.is_empty() {
        return Err(Error::Usage(format!(
            "--mode replace would delete every row of {} that the bundle does not hold, and the bundle holds only \
             part of {} (exported with --where); nothing was written: load with --mode append or upsert, or pass \
             --replace-partial to keep only the exported rows",
            partial.join(", "),
            if partial.len() == 1 { "it" } else { "them" }
        )));
    }
    let (done, staged) = (&run.tables.done, &run.tables.staged);
    for (t, name) in run.tables.tables() {
        let mode = run.mode(t);
        let n_staged = t
            .parts
            .iter()
            .filter(|p| staged.contains(p.path.as_str()))
            .count();
        let n_other = t
            .parts
            .iter()
            .filter(|p| done.contains(p.path.as_str()) && !staged.contains(p.path.as_str()))
            .count();
        if mode != Mode::Replace && n_staged > 0 {
            return Err(Error::Usage(format!(
                "table {name}: an unfinished --mode replace import of bundle {id} staged {n_staged} of its parts; \
                 nothing was written: run the same import with --mode replace to finish it"
            )));
        }
        if mode == Mode::Replace && n_other > 0 && n_other < t.parts.len() {
            return Err(Error::Usage(format!(
                "table {name}: {n_other} of its {} parts were loaded by an earlier import of bundle {id} in another \
                 mode; nothing was written: finish that import with its own --mode",
                t.parts.len()
            )));
        }
    }
    Ok(())
}

/// Upsert: every selected table has a primary key, and an existing target table has the
/// same one.
fn check_upsert_keys(run: &Run<'_>, target: &mut dyn Target) -> Result<()> {
    let keyless: Vec<String> = run
        .tables
        .selected
        .iter()
        .filter(|t| run.mode(t) == Mode::Upsert && t.table.primary_key.is_empty())
        .map(|t| {
            // A view's rows travel without a key: say so, it is not an oversight.
            if t.table.from_view {
                format!("{} (exported from a view)", t.table.qualified())
            } else {
                t.table.qualified()
            }
        })
        .collect();
    if !keyless.is_empty() {
        return Err(Error::Usage(format!(
            "--mode upsert needs a primary key, and these tables of the bundle have none: {}; nothing was \
             written: load them with --mode append or --mode replace, or leave them out with --exclude",
            keyless.join(", ")
        )));
    }
    // An existing target table must have the same key, or "same row" means something else.
    let mut mismatched = Vec::new();
    for (t, name) in run
        .tables
        .tables()
        .filter(|(t, _)| run.mode(t) == Mode::Upsert)
    {
        if let Some(mut have) = target.primary_key(name, &t.table)? {
            let mut want = t.table.primary_key.clone();
            have.sort();
            want.sort();
            if have != want {
                mismatched.push(format!(
                    "{name} (bundle key ({}), target key ({}))",
                    t.table.primary_key.join(", "),
                    have.join(", ")
                ));
            }
        }
    }
    if !mismatched.is_empty() {
        return Err(Error::Data(format!(
            "--mode upsert matches rows by primary key, and these target tables have a different one: {}; \
             nothing was written",
            mismatched.join("; ")
        )));
    }
    Ok(())
}

/// Staging tables: this bundle's, left after a publish committed, are dropped; other
/// bundles' are left alone and named.
fn clear_staging(run: &Run<'_>, target: &mut dyn Target, report: &mut RunReport) -> Result<()> {
    let found = target.staging_tables(&run.tables.targets)?;
    let mine = staging_name(run.id, "");
    let mine = &mine[..15];
    for (t, name) in run.tables.tables() {
        let stage = staging_name(run.id, name);
        if run.tables.published(t) && found.contains(&stage) {
            load::drop_staging(target, &stage, &t.table)?;
        }
    }
    for f in found.iter().filter(|f| !f.starts_with(mine)) {
        report.warnings.push(format!(
            "staging table {f} of another bundle (id {}…) is in the target; ferry leaves it alone: re-run that \
             bundle's replace import to finish it, or drop the table",
            &f[7..15]
        ));
    }
    Ok(())
}

/// The summary when every part of the selected tables is already in: per table what the
/// ledger holds of this bundle (rows, parts, rows rejected when it was loaded).
fn nothing_to_do(run: &Run<'_>, report: &mut RunReport) {
    let manifest = &run.checked.bundle.manifest;
    for (t, name) in run.tables.tables() {
        let (mut rows, mut rejected, mut bytes) = (0, 0, 0);
        for p in &t.parts {
            let (r, x) = run.ledger.counts.get(&p.path).copied().unwrap_or_default();
            rows += r;
            rejected += x;
            bytes += manifest
                .parts
                .iter()
                .find(|e| e.path == p.path)
                .map_or(0, |e| e.size);
        }
        report
            .add_table(
                name,
                rows,
                bytes,
                t.parts.len() as u64,
                Duration::ZERO,
                "skipped (already imported)",
            )
            .rows_rejected = rejected;
    }
    report.status = "nothing to do".into();
    report.message = format!(
        "bundle {} already imported into {} (first part loaded {}); nothing to do",
        run.id,
        crate::redact::display_url(&run.plan.target_url),
        run.ledger.first_loaded_at.as_deref().unwrap_or("earlier")
    );
    report.close(run.started.elapsed());
}

/// Pre-flight: every problem the target and the catalog show before anything is written,
/// reported together; then a warning names the target's existing tables the import writes
/// into. Returns what it found of each selected table, index for index.
fn preflight<'a>(
    run: &Run<'a>,
    target: &mut dyn Target,
    report: &mut RunReport,
) -> Result<Vec<Planned<'a>>> {
    let (plan, id, engine) = (run.plan, run.id, run.engine);
    let mut planned = Vec::with_capacity(run.tables.selected.len());
    for (t, name) in run.tables.tables() {
        let resuming = t
            .parts
            .iter()
            .any(|p| run.tables.done.contains(p.path.as_str()));
        // Counting rows can scan a big table: only create mode needs the number.
        let existing_rows = if (run.mode(t) == Mode::Create && !resuming) || t.keys.is_some() {
            target.table_rows(name, &t.table)?
        } else {
            None
        };
        let existing_columns = target.existing_columns(name, &t.table)?;
        planned.push(Planned {
            target_name: name.to_string(),
            target_schema: plan
                .target_schema
                .clone()
                .or_else(|| t.table.schema.clone()),
            table: &t.table,
            existing_rows,
            existing_columns,
            resuming,
        });
    }
    let privileges = target.missing_privileges(&run.tables.targets, run.run_mode())?;
    let refuses = |ty: &crate::types::ColumnType| target.refuses(ty);
    let mut problems = crate::preflight::findings(
        &crate::preflight::Rules {
            engine,
            same_engine: run.same_engine,
            as_text: plan.as_text,
            mode: run.run_mode(),
            refuses: &refuses,
        },
        &planned,
    );
    problems.extend(privileges);
    problems.extend(delete_ratio_problems(run, &planned));
    if run.is_link() {
        for (t, p) in run.tables.selected.iter().zip(&planned) {
            if t.cursor.is_some() && p.existing_columns.is_none() {
                problems.push(format!(
                    "table {}: the chain's cursor table is not in the target, yet the chain's first bundle \
                     created it: apply every link with the same --rename and --target-schema as the first",
                    p.target_name
                ));
            }
        }
    }
    if run.checked.bundle.manifest.chain_id.is_some()
        && (!plan.tables.is_empty() || !plan.exclude.is_empty())
    {
        report.warnings.push(
            "only part of a chain's bundle is applied (--table/--exclude): the chain's next link is refused \
             here until the same import runs without them"
                .into(),
        );
    }
    if !problems.is_empty() {
        return Err(Error::Data(format!(
            "pre-flight found {} problem{} loading bundle {id} into {}; nothing was written:\n  - {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            crate::redact::display_url(&plan.target_url),
            problems.join("\n  - ")
        )));
    }
    // The bundle decides which of the target's existing tables it writes into (within
    // --table, --exclude and --target-schema): every one is named, in the plan and the
    // summary alike.
    let into_existing: Vec<String> = planned
        .iter()
        .filter(|p| p.existing_columns.is_some())
        .map(|p| match &p.target_schema {
            Some(s) if engine.schemas => format!("{s}.{}", p.target_name),
            _ => p.target_name.clone(),
        })
        .collect();
    if !into_existing.is_empty() {
        report.warnings.push(format!(
            "writes into {} existing table{} of the target ({}): {}",
            into_existing.len(),
            if into_existing.len() == 1 { "" } else { "s" },
            if run.is_link() {
                "a link of a chain: upsert and deletes, whole tables replaced".to_string()
            } else {
                format!("--mode {}", plan.mode.as_str())
            },
            into_existing.join(", ")
        ));
    }
    Ok(planned)
}

/// `--dry-run`: the plan, per table what would happen, with the parts still to load.
fn dry_run(run: &Run<'_>, planned: &[Planned<'_>], report: &mut RunReport) {
    let id = run.id;
    for (t, p) in run.tables.selected.iter().zip(planned) {
        let todo = t
            .parts
            .iter()
            .filter(|p| !run.tables.done.contains(p.path.as_str()))
            .count();
        let exists = p.existing_columns.is_some();
        let action = match (run.mode(t), exists) {
            (Mode::Replace, true) => format!(
                "would replace its rows (staging {}, then one publish)",
                staging_name(id, &p.target_name)
            ),
            (Mode::Replace, false) => "would create (through staging)".to_string(),
            (Mode::Upsert, true) => "would upsert by primary key".to_string(),
            (Mode::Append, true) => "would append".to_string(),
            (Mode::Create, true) => "would load into the existing empty table".to_string(),
            (_, false) => "would create".to_string(),
        };
        let action = if todo < t.parts.len() {
            format!(
                "{action}; {} of {} parts already in",
                t.parts.len() - todo,
                t.parts.len()
            )
        } else {
            action
        };
        report.add_table(
            &p.target_name,
            t.rows,
            0,
            todo as u64,
            std::time::Duration::ZERO,
            &action,
        );
    }
    report.status = "dry run".into();
    report.message = format!(
        "dry run: bundle {id} verified and pre-flight passed; {} tables would be loaded ({}); nothing written",
        run.tables.selected.len(),
        if run.is_link() {
            format!(
                "link {} of a chain: upsert, then deletes of what the source deleted",
                run.checked.bundle.manifest.sequence
            )
        } else {
            format!("--mode {}", run.run_mode().as_str())
        }
    );
    report.close(run.started.elapsed());
}

/// A link's deletes, before anything is written: the table will keep at most as many rows
/// as the key set holds, so a table that holds more than `1 / (1 - max ratio)` times that
/// would lose more than the ratio allows. (The delete itself checks the exact count again,
/// in its transaction.)
fn delete_ratio_problems(run: &Run<'_>, planned: &[Planned<'_>]) -> Vec<String> {
    let ratio = run.plan.max_delete_ratio;
    let mut out = Vec::new();
    for ((t, name), p) in run.tables.tables().zip(planned) {
        let (Some(keys), Some(have)) = (&t.keys, p.existing_rows) else {
            continue;
        };
        if t.cursor.is_none() {
            // A whole table: its rows are the source's, as a replace would make them.
            continue;
        }
        if !keys.parts.is_empty()
            && keys
                .parts
                .iter()
                .all(|k| run.tables.done.contains(k.path.as_str()))
        {
            continue;
        }
        let gone = have.saturating_sub(keys.rows);
        #[allow(clippy::cast_precision_loss)]
        if gone > 0 && gone as f64 > ratio * have as f64 {
            // Reported with the other pre-flight problems (exit 65, nothing written).
            out.push(format!(
                "table {name}: this link's deletes would remove at least {gone} of its {have} rows (the source \
                 holds {} keys), more than --max-delete-ratio {ratio} allows: nothing will be deleted; if the source \
                 really lost that many rows, re-run with a higher --max-delete-ratio",
                keys.rows
            ));
        }
    }
    out
}

/// Loads the selected tables: `prepare` once, then `jobs` workers, each with its own
/// connection (SQLite: one writer), take tables in turn. Each table's figures go to the
/// report. On success the first connection comes back (the workers' are closed); on
/// failure the error says what the target holds, read on a fresh connection.
fn load_tables(
    run: &Run<'_>,
    mut target: Box<dyn Target>,
    report: &mut RunReport,
    skip: Option<&Sink<'_>>,
) -> Result<Box<dyn Target>> {
    let run_id = crate::bundle::layout::new_bundle_id();
    report.errors.parts_total = run.tables.wanted_parts.len() as u64;
    target.prepare(&run.tables.targets, run.same_engine)?;
    let edges = fk_edges(run, target.as_mut())?;
    let order = order::load_order(run.tables.selected.len(), &edges);
    for c in &order.cycles {
        let names: Vec<&str> = c
            .iter()
            .map(|&i| run.tables.targets[i].0.as_str())
            .collect();
        report.warnings.push(format!(
            "the foreign keys of {} form a cycle: they load in one wave, in any order (the keys ferry creates are \
             added after every table is in; a key the target already has must accept the rows in that order)",
            names.join(", ")
        ));
    }
    // Publish groups join only tables that are replaced (a link upserts some of its tables).
    let replaced = |i: usize| run.mode(run.tables.selected[i]) == Mode::Replace;
    let group_edges: Vec<(usize, usize)> = edges
        .iter()
        .copied()
        .filter(|&(a, b)| replaced(a) && replaced(b))
        .collect();
    let group_of = order::groups(run.tables.selected.len(), &group_edges);
    let mut waiting: std::collections::HashMap<usize, Group> = std::collections::HashMap::new();
    for &g in &group_of {
        waiting.entry(g).or_default().remaining += 1;
    }
    let ctx = LoadCtx {
        run,
        run_id: &run_id,
        group_of,
        groups: Mutex::new(waiting),
        committed: AtomicUsize::new(
            run.tables
                .wanted_parts
                .iter()
                .filter(|p| run.tables.done.contains(**p))
                .count(),
        ),
        failed: AtomicBool::new(false),
        parts_started: AtomicUsize::new(0),
        publishes_started: AtomicUsize::new(0),
        deletes_started: AtomicUsize::new(0),
        published: AtomicUsize::new(0),
        publish_failed: Mutex::new(None),
        failed_parts: Mutex::new(Vec::new()),
        tallies: Mutex::new(vec![Tally::default(); run.tables.selected.len()]),
        skip,
    };
    let upserts = run
        .tables
        .selected
        .iter()
        .any(|t| run.mode(t) == Mode::Upsert);
    let inserts_only = if skip.is_some() {
        Some("--on-error skip")
    } else if upserts {
        Some("upsert")
    } else {
        None
    };
    report.load_path = target.choose_load_path(inserts_only)?;
    let mut targets = vec![target];
    while targets.len() < run.plan.jobs.max(1).min(run.tables.selected.len().max(1)) {
        match targets[0].worker()? {
            Some(w) => targets.push(w),
            None => break,
        }
    }
    // `--streams`: each worker's further connections, when some table has at least two
    // parts left to load (SQLite's single writer has none to give).
    let streams = run
        .plan
        .streams
        .unwrap_or_else(|| targets[0].default_streams())
        .max(1);
    let split = run.tables.selected.iter().any(|t| {
        t.parts
            .iter()
            .filter(|p| !run.tables.done.contains(p.path.as_str()))
            .count()
            >= 2
    });
    let mut more: Vec<Vec<Box<dyn Target>>> = Vec::with_capacity(targets.len());
    for _ in 0..targets.len() {
        let mut mine = Vec::new();
        while split && mine.len() + 1 < streams {
            match targets[0].worker()? {
                Some(w) => mine.push(w),
                None => break,
            }
        }
        more.push(mine);
    }
    let mut targets: Vec<Conns> = targets
        .into_iter()
        .zip(more)
        .map(|(main, more)| Conns { main, more })
        .collect();
    // A link's deletes: counted first (nothing written), so a link that would delete more
    // than --max-delete-ratio of a table is refused before any of its rows is written;
    // applied last, children before parents (the reverse of the load order), once every
    // row that moved to another parent is in.
    let reverse: Vec<usize> = order
        .waves
        .iter()
        .rev()
        .flat_map(|w| w.iter().rev().copied())
        .collect();
    let (mut results, mut worker_errors) = (Vec::new(), Vec::new());
    if let Err(e) = check_deletes(&ctx, targets[0].main.as_mut(), &reverse) {
        worker_errors.push(e);
    } else {
        for wave in &order.waves {
            let (r, e) = run_workers(&ctx, &mut targets, wave);
            results.extend(r);
            if !e.is_empty() {
                worker_errors = e;
                break;
            }
        }
    }
    if worker_errors.is_empty()
        && let Err(e) = apply_deletes_last(&ctx, targets[0].main.as_mut(), &reverse)
    {
        worker_errors.push(e);
    }
    drop(results);
    if let Some(e) = worker_errors.into_iter().next() {
        report.errors.parts_failed += 1;
        // The failed connection may be gone (and holds SQLite's run lock): close them all,
        // then read what the target really holds on a fresh one.
        drop(targets);
        let fresh = open_target(run.plan).and_then(|mut t| load::ledger::state(t.as_mut(), run.id));
        let state = failure_state(
            &ctx,
            matches!(e, Error::Temporary(_) | Error::Locked(_)),
            fresh.as_ref().map_err(ToString::to_string),
        );
        report_tables(&ctx, report, &order.waves, fresh.as_ref().ok());
        return Err(with_state(e, &state.message(), state.committed > 0));
    }
    report_tables(&ctx, report, &order.waves, None);
    Ok(targets.swap_remove(0).main)
}

/// Each selected table's line in the summary, in load order (`waves`), from what this run
/// did to it. After a failure (`fresh`: the ledger read again on a new connection) the rows, rejected rows,
/// parts and bytes are those of the parts the ledger shows this run committed (a COMMIT
/// whose answer was lost included), and the status says how much of the table is in.
fn report_tables(
    ctx: &LoadCtx<'_>,
    report: &mut RunReport,
    waves: &[Vec<usize>],
    fresh: Option<&LedgerState>,
) {
    let run = ctx.run;
    let tallies = ctx
        .tallies
        .lock()
        .map(|g| g.clone())
        .unwrap_or_else(|e| e.into_inner().clone());
    let failed_parts: Vec<String> = ctx
        .failed_parts
        .lock()
        .map(|g| g.iter().map(|(p, _)| p.clone()).collect())
        .unwrap_or_default();
    let failed_group = ctx
        .publish_failed
        .lock()
        .ok()
        .and_then(|g| g.clone())
        .unwrap_or_default();
    let manifest = &run.checked.bundle.manifest;
    let size = |path: &str| {
        manifest
            .parts
            .iter()
            .find(|e| e.path == path)
            .map_or(0, |e| e.size)
    };
    for &i in waves.iter().flatten() {
        let (t, name) = run.tables.at(i);
        let tally = tallies.get(i).cloned().unwrap_or_default();
        let (mut rows, mut rejected, mut bytes, mut parts) =
            (tally.rows, tally.rejected, tally.bytes, tally.parts);
        let mut status = tally.status.map(str::to_string);
        // Refused rows of failed parts, but for a part the ledger shows committed.
        let rolled_back: u64 = tally
            .refused_in_failed
            .iter()
            .filter(|(p, _)| fresh.is_none_or(|f| !f.counts.contains_key(p)))
            .map(|(_, n)| n)
            .sum();
        if let Some(fresh) = fresh {
            let earlier = |p: &str| run.ledger.counts.contains_key(p);
            let mine: Vec<&str> = t
                .parts
                .iter()
                .map(|p| p.path.as_str())
                .filter(|p| fresh.counts.contains_key(*p) && !earlier(p))
                .collect();
            rows = mine.iter().map(|p| fresh.counts[*p].0).sum();
            rejected = mine.iter().map(|p| fresh.counts[*p].1).sum();
            bytes = mine.iter().map(|p| size(p)).sum();
            parts = mine.len() as u64;
            let in_all = t
                .parts
                .iter()
                .filter(|p| fresh.counts.contains_key(&p.path))
                .count();
            let n = t.parts.len();
            let published = {
                let parts: HashSet<&str> = fresh.parts.iter().map(|(p, _)| p.as_str()).collect();
                let staged: HashSet<&str> = fresh.staged.iter().map(String::as_str).collect();
                published_in(&parts, &staged, t)
            };
            let failed_here = t
                .parts
                .iter()
                .any(|p| failed_parts.contains(&p.path) && !fresh.counts.contains_key(&p.path))
                || failed_group.iter().any(|g| g == name);
            let replace = run.mode(t) == Mode::Replace;
            status = Some(if failed_here && replace && in_all == n {
                format!("failed: its publish rolled back; {n} of {n} parts staged, not published")
            } else if failed_here {
                format!(
                    "failed: {in_all} of {n} parts committed{}",
                    if replace {
                        " (staged, not published)"
                    } else {
                        ""
                    }
                )
            } else if replace && !published && in_all > 0 {
                format!("stopped: {in_all} of {n} parts staged, not published")
            } else if let Some(s) = status.filter(|_| in_all == n) {
                s
            } else if in_all == 0 {
                "not loaded (the import stopped)".to_string()
            } else if in_all < n {
                format!("stopped: {in_all} of {n} parts committed")
            } else {
                "loaded".to_string()
            });
        }
        let line = report.add_table(
            name,
            rows,
            bytes,
            parts,
            Duration::from_secs_f64(tally.seconds),
            status
                .as_deref()
                .unwrap_or("not loaded (the import stopped)"),
        );
        line.rows_rejected = rejected;
        line.rows_rejected_rolled_back = rolled_back;
        if rolled_back > 0 {
            line.status.push_str(&format!(
                " ({} refused in a part that rolled back)",
                crate::report::rows_word(rolled_back)
            ));
        }
        line.logical_bytes = Some(tally.logical);
        line.streams = (tally.streams > 1).then_some(tally.streams);
        if let Some((inserted, updated)) = tally.upsert {
            line.inserted = Some(inserted);
            line.updated = Some(updated);
        }
    }
}

/// Loads one wave of tables (indices into the selection) on one worker per connection
/// (the shared [`crate::pool`]).
fn run_workers(ctx: &LoadCtx<'_>, targets: &mut [Conns], wave: &[usize]) -> (Vec<()>, Vec<Error>) {
    crate::pool::run(targets, wave.to_vec(), &ctx.failed, "import", |conns, i| {
        import_table(ctx, conns, i)
    })
}

/// The foreign keys between the selected tables, as `(child, parent)` indices: those of
/// the bundle's catalog and those the target's own tables have (a pre-created target may
/// have keys its source lacked).
fn fk_edges(run: &Run<'_>, target: &mut dyn Target) -> Result<Vec<(usize, usize)>> {
    let selected = &run.tables.selected;
    let mut edges = Vec::new();
    for (c, t) in selected.iter().enumerate() {
        for fk in &t.table.foreign_keys {
            let parent = selected.iter().position(|p| {
                p.table.name == fk.ref_table
                    && (p.table.schema == fk.ref_schema
                        || p.table.schema.is_none()
                        || fk.ref_schema.is_none())
            });
            if let Some(p) = parent {
                edges.push((c, p));
            }
        }
    }
    let sql: Vec<String> = run
        .tables
        .targets
        .iter()
        .map(|(name, def)| target.table_sql(name, def))
        .collect();
    for (p, (name, def)) in run.tables.targets.iter().enumerate() {
        for r in target.referencing(name, def)? {
            if let Some(c) = sql.iter().position(|q| *q == r.child_sql) {
                edges.push((c, p));
            }
        }
    }
    Ok(edges)
}

/// After every table: what the target adds across tables (foreign keys; its notes become
/// warnings), then the summary.
fn finish(
    run: &Run<'_>,
    mut target: Box<dyn Target>,
    report: &mut RunReport,
    skip: Option<&Sink<'_>>,
) -> Result<()> {
    report
        .warnings
        .extend(target.finish_all(&run.tables.targets)?);
    let m = &run.checked.bundle.manifest;
    if m.parts.is_empty()
        && let Some(link) = run.link()
    {
        let entry = LedgerEntry {
            bundle_id: m.bundle_id.clone(),
            part_path: String::new(),
            manifest_sha256: run.checked.bundle.manifest_sha256.clone(),
            cipher_sha256: String::new(),
            source_id: m.source_id.clone(),
            sequence: m.sequence,
            target_table: String::new(),
            rows: 0,
            mode: String::new(),
            run_id: crate::bundle::layout::new_bundle_id(),
            link: Some(link),
        };
        let empty = crate::types::TableDef::default();
        load::record_link(target.as_mut(), (load::ledger::LEDGER, &empty), &entry)?;
    }
    report.close(run.started.elapsed());
    report.message = format!(
        "bundle {} imported into {}",
        run.id,
        crate::redact::display_url(&run.plan.target_url)
    );
    if let Some(sink) = skip {
        report.message.push_str(&rejects_note(report, sink));
    }
    report.exit_code = exit::OK;
    Ok(())
}

/// `--on-error skip`: what the summary says of the rows the target refused.
fn rejects_note(report: &RunReport, sink: &Sink<'_>) -> String {
    let e = &report.errors;
    if e.rows_rejected == 0 {
        return "; the target refused no row".into();
    }
    let files: usize = sink.dir.map_or(0, |d| {
        std::fs::read_dir(d).map_or(0, |r| {
            r.filter_map(std::result::Result::ok)
                .filter(|f| {
                    let n = f.file_name().to_string_lossy().into_owned();
                    let bundle: String = sink.bundle_id.chars().take(8).collect();
                    n.ends_with(".parquet") && n.contains(&format!("-{bundle}-part"))
                })
                .count()
        })
    });
    match sink.dir {
        Some(d) => format!(
            "; {} of {} refused by the target and set aside (E = {:.4}): they are in {} ({files} Parquet \
             file{} of this bundle, one per part, each row with its reason)",
            e.rows_rejected,
            crate::report::rows_word(e.rows_total),
            e.error_rate,
            d.display(),
            if files == 1 { "" } else { "s" }
        ),
        None => format!(
            "; {} of {} refused by the target and set aside (E = {:.4}): only counted, not kept (give \
             --rejects DIR to keep them with their reasons)",
            e.rows_rejected,
            crate::report::rows_word(e.rows_total),
            e.error_rate
        ),
    }
}

/// What every import worker shares.
struct LoadCtx<'a> {
    run: &'a Run<'a>,
    run_id: &'a str,
    /// Parts of this bundle committed at the target (ledger), for failure messages.
    committed: AtomicUsize,
    /// Set by the first failing worker; the others stop before their next table.
    failed: AtomicBool,
    /// Parts this run began to load and tables it began to publish (the pause hook's n).
    parts_started: AtomicUsize,
    publishes_started: AtomicUsize,
    /// Tables whose deletes (a link's key set) this run began.
    deletes_started: AtomicUsize,
    /// Tables this run published (replace).
    published: AtomicUsize,
    /// The tables whose publish failed.
    publish_failed: Mutex<Option<Vec<String>>>,
    /// Each selected table's group (replace publishes a group in one transaction), and
    /// what each group still waits for.
    group_of: Vec<usize>,
    groups: Mutex<std::collections::HashMap<usize, Group>>,
    /// Parts whose load failed, as `(part path, how the summary names it)`.
    failed_parts: Mutex<Vec<(String, String)>>,
    /// What this run did to each selected table (index for index), for the summary.
    tallies: Mutex<Vec<Tally>>,
    /// `--on-error skip`: where refused rows go (`None`: strict).
    skip: Option<&'a Sink<'a>>,
}

/// What this run did to one table: its committed parts' figures, for the summary of a
/// run that succeeds or fails.
#[derive(Debug, Clone, Default)]
struct Tally {
    rows: u64,
    rejected: u64,
    /// `--on-error skip`: (part, rows the target refused in it) of each part that failed
    /// after refusing rows (the one over `--max-errors`): rolled back unless the ledger
    /// shows it committed after all (a lost answer to COMMIT).
    refused_in_failed: Vec<(String, u64)>,
    /// Stored (compressed) and Arrow (uncompressed) bytes of the parts committed.
    bytes: u64,
    logical: u64,
    parts: u64,
    /// Upsert: (inserted, updated); `None` otherwise, or when the engine cannot tell.
    upsert: Option<(u64, u64)>,
    seconds: f64,
    /// Set when the table's work ended well (`loaded`, …).
    status: Option<&'static str>,
    /// Connections its parts loaded over at once (`--streams`), when more than one.
    streams: u64,
}

/// The summary of a failed import. `fresh` is the ledger read again on a new connection
/// after the failure (or why it could not be): it, not this run's own count, says what is
/// committed, and it alone knows whether a COMMIT whose answer was lost went through.
/// `temporary`: the failure was a lost connection (or the like), so a COMMIT may have been in flight.
fn failure_state(
    ctx: &LoadCtx<'_>,
    temporary: bool,
    fresh: std::result::Result<&LedgerState, String>,
) -> FailureState {
    let tables = &ctx.run.tables;
    let failed_group = ctx
        .publish_failed
        .lock()
        .ok()
        .and_then(|g| g.clone())
        .unwrap_or_default();
    let publish_failed = (!failed_group.is_empty()).then(|| failed_group.join(", "));
    let mut state = FailureState {
        committed: ctx.committed.load(Ordering::Relaxed),
        total: tables.wanted_parts.len(),
        whole_bundle: tables.selected.len() == ctx.run.checked.catalog.tables.len(),
        mode: ctx.run.run_mode(),
        published: ctx.published.load(Ordering::Relaxed)
            + tables
                .selected
                .iter()
                .filter(|t| tables.published(t))
                .count(),
        tables: tables.selected.len(),
        publish_failed,
        check: LedgerCheck::Read,
    };
    let fresh = match fresh {
        Ok(f) => f,
        Err(why) => {
            state.check = LedgerCheck::Unread {
                why,
                outcome_unknown: temporary,
            };
            return state;
        }
    };
    let parts: HashSet<&str> = fresh.parts.iter().map(|(p, _)| p.as_str()).collect();
    let staged: HashSet<&str> = fresh.staged.iter().map(String::as_str).collect();
    state.committed = tables
        .wanted_parts
        .iter()
        .filter(|p| parts.contains(**p))
        .count();
    state.published = tables
        .selected
        .iter()
        .filter(|t| published_in(&parts, &staged, t))
        .count();
    let failed = ctx
        .failed_parts
        .lock()
        .map(|g| g.clone())
        .unwrap_or_default();
    if let Some((_, part)) = failed.iter().find(|(p, _)| parts.contains(p.as_str())) {
        state.check = LedgerCheck::CommitLost(part.clone());
    } else if !failed_group.is_empty()
        && tables.tables().any(|(c, name)| {
            failed_group.iter().any(|t| t == name) && published_in(&parts, &staged, c)
        })
    {
        state.check = LedgerCheck::PublishLost;
    }
    state
}

/// A replace's group of tables linked by foreign keys, as its tables are staged: how many
/// are not yet, and those staged (index, whether it has anything to publish).
#[derive(Debug, Default)]
struct Group {
    remaining: usize,
    staged: Vec<(usize, bool)>,
}

impl LoadCtx<'_> {
    /// Table `i` is staged: when it is the last of its group, the whole group (to publish
    /// and finish now, on this worker).
    fn staged(&self, i: usize, to_publish: bool) -> Option<Vec<(usize, bool)>> {
        let mut groups = self
            .groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let g = groups.get_mut(self.group_of.get(i)?)?;
        g.staged.push((i, to_publish));
        g.remaining = g.remaining.saturating_sub(1);
        (g.remaining == 0).then(|| std::mem::take(&mut g.staged))
    }
}

/// The connections of one import worker: the one it loads tables on, and the further
/// streams (`--streams`) a table with at least two parts left spreads its parts over.
struct Conns {
    main: Box<dyn Target>,
    more: Vec<Box<dyn Target>>,
}

/// What the parts of one table came to in this run (shared by its streams).
#[derive(Default)]
struct PartsDone {
    rows: u64,
    rejected: u64,
    loaded: u64,
    skipped: u64,
    /// Replace: something waits in staging for this run's publish.
    to_publish: bool,
}

/// Loads every part of one table not yet in the ledger into `name`, then its keys and
/// indexes. Each committed part's figures go into the table's [`Tally`] at once, so a
/// failure later still reports them.
fn import_table(ctx: &LoadCtx<'_>, conns: &mut Conns, i: usize) -> Result<()> {
    let t_start = Instant::now();
    let result = import_table_parts(ctx, conns, i, t_start);
    if let Ok(mut g) = ctx.tallies.lock()
        && let Some(tally) = g.get_mut(i)
    {
        tally.seconds = t_start.elapsed().as_secs_f64();
        if let Ok(status) = &result {
            tally.status = Some(*status);
        }
    }
    result.map(|_| ())
}

/// [`import_table`]'s work; returns the table's status for the summary.
///
/// Streams (`--streams`, README "Parallel import"): when the worker has more than one
/// connection and the table at least two parts left, the parts are spread over them, each
/// part still one transaction with its ledger row. A table none of whose parts is in yet
/// first loads one part alone: that part's transaction creates the table (or the
/// replace's staging table), so the parallel loads find it there. Keys and indexes follow
/// once every part is in, as with one stream.
fn import_table_parts(
    ctx: &LoadCtx<'_>,
    conns: &mut Conns,
    i: usize,
    t_start: Instant,
) -> Result<&'static str> {
    let (t, name) = ctx.run.tables.at(i);
    let checked = ctx.run.checked;
    let bar = ctx.run.progress.bar(name, Some(t.rows), false);
    let stage = staging_name(&checked.bundle.manifest.bundle_id, name);
    let mode = ctx.run.mode(t);
    let into = match mode {
        Mode::Replace => LoadInto::Staging(&stage),
        Mode::Upsert => LoadInto::Upsert,
        Mode::Create | Mode::Append => LoadInto::Table,
    };
    let done = &ctx.run.tables.done;
    let mut todo = Vec::new();
    let mut counts = PartsDone {
        // Replace: parts staged by an earlier run wait for this run's publish.
        to_publish: t
            .parts
            .iter()
            .any(|p| ctx.run.tables.staged.contains(p.path.as_str())),
        ..PartsDone::default()
    };
    for p in &t.parts {
        if done.contains(p.path.as_str()) {
            counts.skipped += 1;
            bar.inc(p.rows);
        } else {
            todo.push(p);
        }
    }
    let counts = Mutex::new(counts);
    let load = |target: &mut dyn Target, p: &crate::bundle::PartInfo| {
        load_table_part(ctx, target, (i, t, name), p, (into, &bar, t_start), &counts)
    };
    let streams = 1 + conns.more.len();
    let mut rest = todo.as_slice();
    if streams > 1 && rest.len() >= 2 {
        // Nothing of the table is in: where DDL is transactional (PostgreSQL, SQLite) its
        // first part's transaction creates it, alone; elsewhere (MySQL/MariaDB, whose
        // CREATE TABLE IF NOT EXISTS commits on its own before the part) every stream may.
        if t.parts.len() == rest.len() && conns.main.dialect().transactional_ddl {
            load(conns.main.as_mut(), rest[0])?;
            rest = &rest[1..];
        }
        if rest.len() >= 2 {
            let mut set: Vec<&mut dyn Target> = std::iter::once(conns.main.as_mut())
                .chain(conns.more.iter_mut().map(AsMut::as_mut))
                .take(streams.min(rest.len()))
                .collect();
            // Its own stop flag: a failure elsewhere must not leave this table short of
            // parts it then reports loaded (the worker's pool stops before the next table).
            let stop = AtomicBool::new(false);
            let n = set.len() as u64;
            tally(ctx, i, |tally| tally.streams = n);
            let (_, errors) = crate::pool::run(&mut set, rest.to_vec(), &stop, "import", |c, p| {
                load(&mut **c, p)
            });
            if let Some(e) = errors.into_iter().next() {
                return Err(e);
            }
            rest = &[];
        }
    }
    for p in rest {
        load(conns.main.as_mut(), p)?;
    }
    let PartsDone {
        rows,
        rejected,
        loaded: loaded_parts,
        skipped,
        to_publish,
    } = counts
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let target = conns.main.as_mut();
    // Replace: the last table of a group staged publishes the group (one transaction) and
    // finishes its tables; the others leave that to it.
    if mode == Mode::Replace {
        if let Some(group) = ctx.staged(i, to_publish) {
            let publishing: Vec<usize> = group.iter().filter(|g| g.1).map(|g| g.0).collect();
            if !publishing.is_empty()
                && let Err(e) = publish(ctx, target, &publishing)
            {
                bar.abandon();
                return Err(e);
            }
            for (j, _) in group {
                let (tj, nj) = ctx.run.tables.at(j);
                target.finish_table(nj, &tj.table)?;
            }
        }
    } else {
        target.finish_table(name, &t.table)?;
    }
    bar.finish_and_clear();
    // Only a replace publishes: other modes commit part by part.
    let to_publish = to_publish && mode == Mode::Replace;
    let status = if loaded_parts == 0 && skipped > 0 && !to_publish {
        "skipped (already imported)"
    } else if loaded_parts == 0 && to_publish {
        "published (parts staged earlier)"
    } else if to_publish {
        "loaded and published"
    } else {
        "loaded"
    };
    let mut also = Vec::new();
    if rejected > 0 {
        also.push(format!(
            "{} refused and set aside",
            crate::report::rows_word(rejected)
        ));
    }
    if skipped > 0 {
        also.push(format!(
            "{} already imported",
            crate::report::count(skipped, "part", "parts")
        ));
    }
    let over = tally_streams(ctx, i);
    ctx.run.progress.line(&format!(
        "loaded {name}: {} from {}{over}{}",
        crate::report::rows_word(rows),
        crate::report::count(loaded_parts, "part", "parts"),
        if also.is_empty() {
            String::new()
        } else {
            format!(" ({})", also.join("; "))
        }
    ));
    Ok(status)
}

/// Loads part `p` of table `i` on `target` in one transaction with its ledger row, and
/// counts what it wrote in `counts` and the table's [`Tally`].
fn load_table_part(
    ctx: &LoadCtx<'_>,
    target: &mut dyn Target,
    (i, t, name): (usize, &CatalogTable, &str),
    p: &crate::bundle::PartInfo,
    (into, bar, t_start): (LoadInto<'_>, &indicatif::ProgressBar, Instant),
    counts: &Mutex<PartsDone>,
) -> Result<()> {
    let (plan, checked) = (ctx.run.plan, ctx.run.checked);
    let mode = ctx.run.mode(t);
    let stored = checked
        .bundle
        .manifest
        .parts
        .iter()
        .find(|e| e.path == p.path);
    let entry = LedgerEntry {
        bundle_id: checked.bundle.manifest.bundle_id.clone(),
        part_path: p.path.clone(),
        manifest_sha256: checked.bundle.manifest_sha256.clone(),
        cipher_sha256: stored.map(|e| e.sha256.clone()).unwrap_or_default(),
        source_id: checked.bundle.manifest.source_id.clone(),
        sequence: checked.bundle.manifest.sequence,
        target_table: target.ledger_key(name, &t.table),
        rows: p.rows,
        mode: mode.ledger_mode().into(),
        run_id: ctx.run_id.to_string(),
        link: ctx.run.link(),
    };
    let n = ctx.parts_started.fetch_add(1, Ordering::Relaxed) + 1;
    let mut part_rejects = ctx
        .skip
        .map(|sink| sink.part(name, &t.table, &p.path, p.index));
    let loaded = load_one(
        checked,
        target,
        name,
        t,
        p,
        (ctx.run.same_engine, into),
        &entry,
        plan.batch_rows,
        bar,
        n,
        part_rejects.as_mut().map(|r| r as &mut dyn load::Rejects),
    );
    let counted = |f: &mut dyn FnMut(&mut PartsDone)| {
        f(&mut counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    };
    match loaded {
        Ok((LoadOutcome::Loaded(part), logical)) => {
            counted(&mut |c| {
                c.rows += part.rows;
                c.rejected += part.rejected;
                c.loaded += 1;
                c.to_publish = true;
            });
            ctx.committed.fetch_add(1, Ordering::Relaxed);
            tally(ctx, i, |tally| {
                tally.rows += part.rows;
                tally.rejected += part.rejected;
                tally.parts += 1;
                tally.bytes += stored.map_or(0, |e| e.size);
                tally.logical += logical;
                tally.upsert = match (tally.parts, tally.upsert, part.updated) {
                    (1, _, Some(u)) => Some((part.rows - u, u)),
                    (_, Some((a, b)), Some(u)) => Some((a + part.rows - u, b + u)),
                    _ => None,
                };
                tally.seconds = t_start.elapsed().as_secs_f64();
            });
            if part.rejected > 0 {
                let first = part_rejects
                    .as_ref()
                    .and_then(|r| r.first.clone())
                    .map(|(row, why)| format!(", the first row {row}: {why}"))
                    .unwrap_or_default();
                ctx.run.progress.line(&format!(
                    "{name}, part {}: {} row{} refused by the target and set aside{first}",
                    p.index,
                    part.rejected,
                    if part.rejected == 1 { "" } else { "s" }
                ));
            }
            pause_at("part-committed", n);
            Ok(())
        }
        Ok((LoadOutcome::AlreadyLoaded, _)) => {
            counted(&mut |c| c.skipped += 1);
            Ok(())
        }
        Err(e) => {
            if let Some(n) = part_rejects.as_ref().map(|r| r.count).filter(|n| *n > 0) {
                tally(ctx, i, |tally| {
                    tally.refused_in_failed.push((p.path.clone(), n));
                });
            }
            if let Ok(mut g) = ctx.failed_parts.lock() {
                g.push((
                    p.path.clone(),
                    format!("{} (table {name} part {})", p.path, p.index),
                ));
            }
            bar.abandon();
            Err(e)
        }
    }
}

/// " over N connections" when table `i`'s parts loaded over more than one.
fn tally_streams(ctx: &LoadCtx<'_>, i: usize) -> String {
    let n = ctx
        .tallies
        .lock()
        .ok()
        .and_then(|g| g.get(i).map(|t| t.streams))
        .unwrap_or(0);
    if n > 1 {
        format!(" over {n} connections")
    } else {
        String::new()
    }
}

/// Updates table `i`'s tally.
fn tally(ctx: &LoadCtx<'_>, i: usize, f: impl FnOnce(&mut Tally)) {
    let mut g = ctx
        .tallies
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(t) = g.get_mut(i) {
        f(t);
    }
}

/// A link's deletes, counted before anything is written: on every table the target has,
/// the rows absent from the key set, against `--max-delete-ratio` (exit 65 when over it).
fn check_deletes(ctx: &LoadCtx<'_>, target: &mut dyn Target, order: &[usize]) -> Result<()> {
    for &i in order {
        let (t, name) = ctx.run.tables.at(i);
        if t.keys.is_none() || target.table_rows(name, &t.table)?.is_none() {
            continue;
        }
        apply_deletes(ctx, target, t, name, true)?;
    }
    Ok(())
}

/// A link's deletes, after every table's rows are in, children before parents; the rows
/// deleted go into each table's summary line.
fn apply_deletes_last(ctx: &LoadCtx<'_>, target: &mut dyn Target, order: &[usize]) -> Result<()> {
    for &i in order {
        let (t, name) = ctx.run.tables.at(i);
        if t.keys.is_none() {
            continue;
        }
        if let Some(n) = apply_deletes(ctx, target, t, name, false)? {
            ctx.run.progress.line(&format!(
                "deleted from {name}: {n} row{} absent from the source",
                if n == 1 { "" } else { "s" }
            ));
            tally(ctx, i, |r| {
                r.parts += t.keys.as_ref().map_or(0, |k| k.parts.len() as u64);
                r.status = Some("loaded, deletes applied");
            });
        }
    }
    Ok(())
}

/// A link's deletes for table `t` (its key set, in one transaction with their ledger rows);
/// `Some(rows deleted)` when this run applied them, `None` when an earlier run did.
fn apply_deletes(
    ctx: &LoadCtx<'_>,
    target: &mut dyn Target,
    t: &CatalogTable,
    name: &str,
    dry: bool,
) -> Result<Option<u64>> {
    let Some(keys) = &t.keys else {
        return Ok(None);
    };
    let run = ctx.run;
    if !keys.parts.is_empty()
        && keys
            .parts
            .iter()
            .all(|p| run.tables.done.contains(p.path.as_str()))
    {
        return Ok(None);
    }
    let checked = run.checked;
    let m = &checked.bundle.manifest;
    let url = checked.bundle.url().to_string();
    let key_def = t.key_table();
    let entries: Vec<LedgerEntry> = keys
        .parts
        .iter()
        .map(|p| LedgerEntry {
            bundle_id: m.bundle_id.clone(),
            part_path: p.path.clone(),
            manifest_sha256: checked.bundle.manifest_sha256.clone(),
            cipher_sha256: m
                .parts
                .iter()
                .find(|e| e.path == p.path)
                .map(|e| e.sha256.clone())
                .unwrap_or_default(),
            source_id: m.source_id.clone(),
            sequence: m.sequence,
            target_table: target.ledger_key(name, &t.table),
            rows: p.rows,
            mode: "deletes".into(),
            run_id: ctx.run_id.to_string(),
            link: run.link(),
        })
        .collect();
    let mut readers = Vec::new();
    let mut streams = Vec::new();
    for p in &keys.parts {
        let r = checked.part_reader(&p.path)?;
        let label = format!("table {} key part {}", t.table.qualified(), p.index);
        let (_, batches) =
            r.batches_within(&url, &label, run.plan.batch_rows, IMPORT_BATCH_BYTES)?;
        let path = p.path.clone();
        let (u, d) = (url.clone(), key_def.clone());
        streams.push(batches.map(move |b| b.and_then(|b| matches_catalog(&u, &path, &d, b))));
        readers.push(r);
    }
    let mut all = streams.into_iter().flatten();
    let expected = keys.rows;
    let started = if dry {
        0
    } else {
        ctx.deletes_started.fetch_add(1, Ordering::Relaxed) + 1
    };
    let mut before_commit = |n: u64| -> Result<()> {
        for r in &readers {
            r.authenticate_rest(&url)?;
        }
        pause_at("deletes", started);
        if n != expected {
            return Err(Error::invalid(
                &url,
                keys.parts.first().map_or("catalog", |p| p.path.as_str()),
                format!(
                    "table {}: {n} keys decoded, catalog says {expected}",
                    t.table.qualified()
                ),
            ));
        }
        Ok(())
    };
    let stage = staging_name(&m.bundle_id, &format!("keys:{name}"));
    match load::apply_deletes(
        target,
        name,
        &t.table,
        &key_def,
        &stage,
        run.same_engine,
        &entries,
        &mut all,
        if t.cursor.is_some() {
            run.plan.max_delete_ratio
        } else {
            1.0
        },
        dry,
        &mut before_commit,
    )? {
        LoadOutcome::Loaded(n) => {
            if !dry {
                ctx.committed.fetch_add(entries.len(), Ordering::Relaxed);
            }
            Ok(Some(n))
        }
        LoadOutcome::AlreadyLoaded => Ok(None),
    }
}

/// Replace, once every part of a group of tables (indices into the selection) is staged:
/// recount each staging table against the catalog, then publish the group in one
/// transaction and drop the staging tables.
fn publish(ctx: &LoadCtx<'_>, target: &mut dyn Target, members: &[usize]) -> Result<()> {
    let id = &ctx.run.checked.bundle.manifest.bundle_id;
    let n = ctx.publishes_started.fetch_add(1, Ordering::Relaxed) + 1;
    pause_at("staged", n);
    let mut group = Vec::with_capacity(members.len());
    let mut stages = Vec::with_capacity(members.len());
    for &i in members {
        let (t, name) = ctx.run.tables.at(i);
        stages.push(staging_name(id, name));
        group.push((t, name));
    }
    for ((t, name), stage) in group.iter().zip(&stages) {
        // The staging table must hold exactly the bundle's rows of this table (a server crash
        // can empty a table, a person can touch it): never publish a count that does not add up.
        let expected: u64 = t.parts.iter().map(|p| p.rows).sum();
        let have = target.table_rows(stage, &t.table)?.unwrap_or(0);
        if have != expected {
            load::discard_staging(target, name, stage, &t.table, id)?;
            return Err(Error::Temporary(format!(
                "table {name}: staging table {stage} holds {have} rows, the bundle has {expected}; ferry discarded \
                 it and its staged ledger rows, and {name} still holds its old rows"
            )));
        }
    }
    let manifest = &ctx.run.checked.bundle.manifest;
    // A chain orders its links itself (a link's sequence is its place in the chain).
    let newer_than = (!ctx.run.plan.allow_replay && manifest.chain_id.is_none())
        .then_some((manifest.source_id.as_str(), manifest.sequence));
    let publishing: Vec<load::Publishing<'_>> = group
        .iter()
        .zip(&stages)
        .map(|((t, name), stage)| load::Publishing {
            name,
            table: &t.table,
            staging: stage,
        })
        .collect();
    let result = load::publish_group(
        target,
        &publishing,
        ctx.run.same_engine,
        id,
        newer_than,
        &mut || {
            pause_at("publish", n);
            Ok(())
        },
    );
    if let Err(e) = result {
        if let Ok(mut g) = ctx.publish_failed.lock() {
            *g = Some(group.iter().map(|(_, name)| name.to_string()).collect());
        }
        return Err(e);
    }
    ctx.published.fetch_add(group.len(), Ordering::Relaxed);
    let together = if group.len() > 1 {
        let names: Vec<&str> = group.iter().map(|(_, n)| *n).collect();
        format!(" (in one transaction with {})", names.join(", "))
    } else {
        String::new()
    };
    for ((t, name), stage) in group.iter().zip(&stages) {
        let expected: u64 = t.parts.iter().map(|p| p.rows).sum();
        ctx.run.progress.line(&format!(
            "published {name}: {expected} rows replace its old rows{together}"
        ));
        load::drop_staging(target, stage, &t.table)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn load_one(
    checked: &Checked,
    target: &mut dyn Target,
    name: &str,
    t: &CatalogTable,
    p: &crate::bundle::PartInfo,
    (same_engine, into): (bool, LoadInto<'_>),
    entry: &LedgerEntry,
    batch_rows: usize,
    bar: &indicatif::ProgressBar,
    n: usize,
    rejects: Option<&mut dyn load::Rejects>,
) -> Result<(LoadOutcome<PartLoad>, u64)> {
    let bundle_url = checked.bundle.url().to_string();
    let reader = checked.part_reader(&p.path)?;
    let (_, batches) = reader.batches_within(
        &bundle_url,
        &format!("table {} part {}", t.table.qualified(), p.index),
        batch_rows,
        IMPORT_BATCH_BYTES,
    )?;
    let mut before_commit = |rows: u64| -> Result<()> {
        // Never commit before the whole part, up to its final chunk, has authenticated.
        reader.authenticate_rest(&bundle_url)?;
        if rows != p.rows {
            return Err(Error::invalid(
                &bundle_url,
                &p.path,
                format!(
                    "table {}: {rows} rows decoded, catalog says {}",
                    t.table.qualified(),
                    p.rows
                ),
            ));
        }
        pause_at("part-sent", n);
        Ok(())
    };
    // Decrypting and decoding the part overlaps with encoding and sending it: a thread
    // reads ahead by PREFETCH_BATCHES batches (the memory this costs).
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(PREFETCH_BATCHES);
        let (bundle_url, part_path, table) = (&bundle_url, &p.path, &t.table);
        let reader_thread = s.spawn(move || {
            for b in batches {
                // Every loader relies on the batch having the catalog's shape.
                let b = b.and_then(|b| matches_catalog(bundle_url, part_path, table, b));
                // The loader stopped (an error, or it has all it needs): stop reading.
                if tx.send(b).is_err() {
                    break;
                }
            }
        });
        // The Arrow size of what the part decodes to: the summary's logical bytes.
        let mut logical = 0u64;
        let mut counted = rx.iter().inspect(|b| {
            if let Ok(b) = b {
                bar.inc(b.num_rows() as u64);
                logical += crate::types::logical_size(b);
            }
        });
        let result = load::load_part(
            target,
            name,
            &t.table,
            same_engine,
            into,
            entry,
            &mut counted,
            &mut before_commit,
            rejects,
        );
        drop(counted);
        drop(rx);
        reader_thread
            .join()
            .map_err(|_| Error::Other(format!("the reader of part {} crashed", p.path)))?;
        result.map(|r| (r, logical))
    })
}

/// A part's batch with exactly the catalog's columns and types, or an error naming the
/// bundle, the part, the table and the column.
fn matches_catalog(
    bundle_url: &str,
    part: &str,
    table: &crate::types::TableDef,
    batch: arrow::record_batch::RecordBatch,
) -> Result<arrow::record_batch::RecordBatch> {
    let bad = |m: String| {
        Error::invalid(
            bundle_url,
            part,
            format!("table {}: {m}", table.qualified()),
        )
    };
    if batch.num_columns() != table.columns.len() {
        return Err(bad(format!(
            "part has {} columns, catalog {}",
            batch.num_columns(),
            table.columns.len()
        )));
    }
    for (c, a) in table.columns.iter().zip(batch.columns()) {
        if a.data_type() != &c.ty.arrow() {
            return Err(bad(format!(
                "column {}: part holds {}, catalog says {}",
                c.name,
                a.data_type(),
                c.ty.describe()
            )));
        }
    }
    Ok(batch)
}

/// Batches decoded ahead of the loader: one queued while the reader builds the next is
/// enough to keep both sides busy (the server is the slower side on PostgreSQL and
/// MariaDB); two raised a one-stream PostgreSQL import's peak RSS from 103 to 115 MiB.
const PREFETCH_BATCHES: usize = 1;

/// What to do after a failure of the data (a refused row, a publish a constraint refused,
/// `--max-errors` passed): a re-run alone meets the same rows.
const FIX_ROW: &str = "fix the row at the source (or the target table), or load the other rows with \
     --on-error skip --rejects DIR (the refused ones go to DIR with their reasons); once fixed, re-running \
     the same command resumes after the committed parts";
const FIX_DATA: &str = "fix the data at the source or the target table; once fixed, re-running the same \
     command resumes after the committed parts";
const FIX_MAX_ERRORS: &str = "fix the refused rows at the source (`ferry status` counts them; when \
     --rejects DIR was given, those of the committed parts are in DIR with their reasons), or allow more \
     with a higher --max-errors; re-running the same command then resumes after the committed parts";

/// Adds the target's state to a load failure's message (without saying twice that the
/// failed part left nothing), and for a failure of the data, or a bundle found invalid
/// after parts `committed`, what to fix instead of "re-run", which only helps a temporary
/// failure.
fn with_state(e: Error, state: &str, committed: bool) -> Error {
    // A refused row's message already says its part rolled back.
    let state = if matches!(e, Error::RowRefused(_)) {
        state
            .strip_prefix("nothing from the failed part was committed; ")
            .unwrap_or(state)
    } else {
        state
    };
    let fix = match &e {
        Error::RowRefused(_) => Some(FIX_ROW),
        Error::Data(m) if m.contains("--max-errors") => Some(FIX_MAX_ERRORS),
        Error::Data(_) => Some(FIX_DATA),
        Error::InvalidBundle { .. } if committed => Some(crate::error::FIX_BUNDLE),
        _ => None,
    };
    let state = match fix {
        Some(fix) => format!(
            "{}; {fix}",
            state
                .strip_suffix("; re-run the same command to resume")
                .unwrap_or(state)
        ),
        None => state.to_string(),
    };
    let state = state.as_str();
    match e {
        Error::InvalidBundle {
            bundle,
            mut findings,
        } => {
            if let Some(f) = findings.last_mut() {
                f.message = format!("{}; {state}", f.message);
            }
            Error::InvalidBundle { bundle, findings }
        }
        Error::Data(m) => Error::Data(format!("{m}; {state}")),
        Error::RowRefused(m) => Error::RowRefused(format!("{m}; {state}")),
        Error::Temporary(m) => Error::Temporary(format!("{m}; {state}")),
        Error::Locked(m) => Error::Locked(format!("{m}; {state}")),
        Error::Database(m) => Error::Database(format!("{m}; {state}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_that_does_not_match_the_catalog_is_refused_naming_bundle_part_table_and_column() {
        use crate::types::{Column, ColumnType, TableDef};
        use arrow::array::{ArrayRef, Int32Array, Int64Array};
        use std::sync::Arc;
        let col = |name: &str| Column {
            name: name.into(),
            ty: ColumnType::Int64,
            nullable: true,
            source_type: "bigint".into(),
            default: None,
            enum_type: None,
            domain_type: None,
            as_text: false,
            text_reason: None,
            collation: None,
            identity: None,
            generated: None,
        };
        let table = TableDef {
            schema: Some("public".into()),
            name: "t".into(),
            columns: vec![col("id"), col("n")],
            primary_key: vec![],
            indexes: vec![],
            foreign_keys: vec![],
            partitioning: None,
            ..Default::default()
        };
        let batch = |cols: Vec<ArrayRef>| {
            arrow::record_batch::RecordBatch::try_from_iter(
                cols.into_iter()
                    .enumerate()
                    .map(|(i, a)| (format!("c{i}"), a)),
            )
            .unwrap()
        };
        let good = batch(vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(Int64Array::from(vec![2])),
        ]);
        assert!(matches_catalog("b/", "data/p1.fe", &table, good).is_ok());
        let wrong_type = batch(vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(Int32Array::from(vec![2])),
        ]);
        let e = matches_catalog("b/", "data/p1.fe", &table, wrong_type).unwrap_err();
        assert_eq!(e.exit_code(), 65);
        let m = e.to_string();
        for want in ["b/", "data/p1.fe", "public.t", "column n", "Int32"] {
            assert!(m.contains(want), "{want} missing in {m}");
        }
        let too_few = batch(vec![Arc::new(Int64Array::from(vec![1]))]);
        let m = matches_catalog("b/", "data/p1.fe", &table, too_few)
            .unwrap_err()
            .to_string();
        assert!(m.contains("part has 1 columns, catalog 2"), "{m}");
    }

    #[test]
    fn staging_names_are_deterministic_and_recognised() {
        let id = "9b1f2c3d4e5f60718293a4b5c6d7e8f9";
        let a = staging_name(id, "orders");
        assert_eq!(a, staging_name(id, "orders"));
        assert_ne!(a, staging_name(id, "Orders"));
        assert!(a.starts_with("_ferry_9b1f2c3d_"), "{a}");
        assert_eq!(a.len(), "_ferry_".len() + 8 + 1 + 8);
        assert!(load::is_staging_name(&a));
        assert!(!load::is_staging_name("_ferry_ledger"));
        assert!(!load::is_staging_name("_ferry_9b1f2c3d_ABCDEF01"));
        assert!(!load::is_staging_name("_ferry_9b1f2c3d_0123456"));
        assert!(!load::is_staging_name("orders"));
    }

    #[test]
    fn a_failure_message_says_what_the_target_holds() {
        let mut st = FailureState {
            committed: 4,
            total: 12,
            whole_bundle: true,
            mode: Mode::Append,
            published: 0,
            tables: 3,
            publish_failed: None,
            check: LedgerCheck::Read,
        };
        assert_eq!(
            st.message(),
            "nothing from the failed part was committed; 4/12 parts of this bundle are committed (ledger); \
             re-run the same command to resume"
        );
        // With --table: the selected tables' parts.
        st.whole_bundle = false;
        assert!(
            st.message()
                .contains("; 4/12 parts of the selected tables are committed (ledger)"),
            "{}",
            st.message()
        );
        st.whole_bundle = true;
        st.mode = Mode::Replace;
        st.published = 1;
        st.publish_failed = Some("orders".into());
        let m = st.message();
        assert!(
            m.starts_with("the publish of orders was rolled back")
                && m.contains("4/12 parts")
                && m.contains("1/3 tables published")
                && m.ends_with("re-run the same command to resume"),
            "{m}"
        );
        st.check = LedgerCheck::PublishLost;
        let m = st.message();
        assert!(
            m.starts_with("the connection was lost during the COMMIT of the publish of orders: the ledger shows it published"),
            "{m}"
        );
    }

    /// A bundle found invalid during the load: after committed parts the message and hint
    /// say they stay and a re-run resumes (also with --table's wording), with none the
    /// hint is the usual "nothing was written".
    #[test]
    fn an_invalid_part_after_commits_says_the_committed_parts_stay() {
        let invalid = || {
            Error::invalid(
                "b/",
                "data/p.fe",
                "changed since the verification pass read it",
            )
        };
        for state in [
            "nothing from the failed part was committed; 4/12 parts of this bundle are committed (ledger); \
             re-run the same command to resume",
            "nothing from the failed part was committed; 4/12 parts of the selected tables are committed \
             (ledger); re-run the same command to resume",
        ] {
            let e = with_state(invalid(), state, true);
            assert_eq!(e.exit_code(), 65);
            let m = e.to_string();
            assert!(
                m.contains("4/12 parts") && m.ends_with(crate::error::FIX_BUNDLE),
                "{m}"
            );
            let h = e.hint().unwrap();
            assert!(
                h.contains("already committed stay") && !h.contains("nothing was written"),
                "{h}"
            );
        }
        let e = with_state(
            invalid(),
            "nothing from the failed part was committed; 0/12 parts of this bundle are committed (ledger); \
             re-run the same command to resume",
            false,
        );
        assert!(e.hint().unwrap().starts_with("nothing was written"), "{e}");
    }

    #[test]
    fn a_commit_whose_answer_was_lost_is_reported_from_the_ledger() {
        let mut st = FailureState {
            committed: 5,
            total: 12,
            whole_bundle: true,
            mode: Mode::Append,
            published: 0,
            tables: 1,
            publish_failed: None,
            check: LedgerCheck::CommitLost("data/t/00002.parquet (table t)".into()),
        };
        assert_eq!(
            st.message(),
            "the connection was lost during COMMIT of part data/t/00002.parquet (table t): the ledger shows it \
             committed (the server committed it; only its answer was lost); 5/12 parts of this bundle are \
             committed (ledger); re-run the same command to resume"
        );
        st.committed = 4;
        st.check = LedgerCheck::Unread {
            why: "cannot reach PostgreSQL".into(),
            outcome_unknown: true,
        };
        assert_eq!(
            st.message(),
            "nothing from the failed part was committed unless the connection was lost during its COMMIT; 4/12 \
             parts of this bundle are committed (as this run counted them: could not reconnect to read the \
             ledger (cannot reach PostgreSQL); the re-run will find out); re-run the same command to resume"
        );
        st.check = LedgerCheck::Unread {
            why: "x".into(),
            outcome_unknown: false,
        };
        assert!(
            st.message()
                .starts_with("nothing from the failed part was committed; 4/12 parts"),
            "{}",
            st.message()
        );
    }
}
