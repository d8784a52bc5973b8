//! The exactly-once load protocol, written once for every engine: each part loads in one
//! transaction together with its ledger row; a replace loads into a staging table and
//! publishes it in one transaction; a re-run finds what the ledger holds and resumes.
//! Engines supply only the primitives of [`Session`] (docs/ARCHITECTURE.md).

pub mod ledger;
pub mod session;
pub mod target;
pub mod typemap;

use arrow::record_batch::RecordBatch;

pub use ledger::{LedgerEntry, LedgerState, PUBLISHED, STAGED};
pub use session::{
    Dialect, LedgerKind, LoadInto, Param, Placeholders, Reference, Session, Written,
};
pub use target::Target;

use crate::types::TableDef;
use crate::{Error, Result};

/// Import modes of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Create the tables; refuse a table that exists and holds rows (unless this bundle put them there).
    Create,
    /// Add the rows to existing tables (created when missing).
    Append,
    /// Atomically replace the tables' rows: parts load into staging tables, then one
    /// transaction per table swaps the rows; readers see the old rows until then.
    Replace,
    /// Insert, or update the row with the same primary key (tables need a primary key).
    Upsert,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Create => "create",
            Mode::Append => "append",
            Mode::Replace => "replace",
            Mode::Upsert => "upsert",
        }
    }

    /// The ledger's `mode` of a part loaded in this mode.
    pub fn ledger_mode(self) -> &'static str {
        match self {
            Mode::Replace => STAGED,
            other => other.as_str(),
        }
    }
}

/// A column of a table that already exists in the target (pre-flight: missing columns,
/// NOT NULL columns the bundle cannot fill).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetColumn {
    pub name: String,
    pub nullable: bool,
    pub has_default: bool,
}

/// How a part load ended (`T`: what it wrote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome<T = u64> {
    Loaded(T),
    /// The ledger already had it (another run committed it meanwhile).
    AlreadyLoaded,
}

/// What happens to a row the target refuses (`import --on-error`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OnError {
    /// The part rolls back and the import stops (strict; the default).
    #[default]
    Fail,
    /// The row is set aside (with `--rejects DIR`, into a Parquet file with its reason) and
    /// counted; the part's other rows commit with its ledger row.
    Skip,
}

/// Under `--on-error skip`: where the rows the target refuses go, one part at a time.
pub trait Rejects {
    /// A row of the part the target refused: its number in the part (from 1), the
    /// server's reason ([`refusal_reason`]) and the row as the bundle holds it (one row,
    /// every column of the catalog). An error here (`--max-errors` passed) fails the part.
    fn reject(&mut self, row: u64, reason: &str, values: &RecordBatch) -> Result<()>;

    /// Every row of the part is in and the part authenticated, just before its ledger row
    /// and COMMIT: make what was rejected durable (a crash after this point leaves a file
    /// for a part that may not be committed, never a committed part without its file).
    fn keep(&mut self) -> Result<()>;
}

/// What one part's load wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartLoad {
    /// Rows written.
    pub rows: u64,
    /// Rows the target refused and `--on-error skip` set aside.
    pub rejected: u64,
    /// Upsert: rows of `rows` that updated an existing row (see [`Written::updated`]).
    pub updated: Option<u64>,
}

impl PartLoad {
    fn add(&mut self, w: Written) {
        self.rows += w.rows;
        self.updated = self.updated.zip(w.updated).map(|(a, b)| a + b);
    }
}

/// Runs `body` in one transaction on table `name`: commit when it returns `Ok`, roll back
/// otherwise (the error explained by the engine, e.g. who holds a lock on the table).
fn transaction<T>(
    s: &mut dyn Session,
    (name, table): (&str, &TableDef),
    body: impl FnOnce(&mut dyn Session) -> Result<T>,
    commit: impl FnOnce(&T) -> bool,
) -> Result<T> {
    s.begin()?;
    match body(s) {
        Ok(v) if commit(&v) => {
            s.commit()?;
            Ok(v)
        }
        Ok(v) => {
            s.rollback();
            Ok(v)
        }
        Err(e) => {
            s.rollback();
            Err(s.explain(e, name, table))
        }
    }
}

/// Loads one part in one transaction with its ledger row. The ledger and the table are
/// created inside that transaction when the engine's DDL is transactional (before it
/// otherwise), so a failed first part leaves nothing behind where it can. `before_commit`
/// runs last, after every row is in: it authenticates the rest of the part (it gets the
/// rows the part held: written and rejected), and its error rolls back. `into` says where
/// the rows go: the table itself, an upsert by primary key, or a replace's staging table
/// (created from the catalog when missing). `rejects`: `--on-error skip` (see
/// [`load_skipping`]); `None` is strict, the first refused row fails the part.
#[allow(clippy::too_many_arguments)]
pub fn load_part(
    s: &mut dyn Session,
    name: &str,
    table: &TableDef,
    same_engine: bool,
    into: LoadInto<'_>,
    entry: &LedgerEntry,
    batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
    before_commit: &mut dyn FnMut(u64) -> Result<()>,
    mut rejects: Option<&mut dyn Rejects>,
) -> Result<LoadOutcome<PartLoad>> {
    let (dest, staging) = match into {
        LoadInto::Staging(st) => (st, true),
        LoadInto::Table | LoadInto::Upsert => (name, false),
    };
    let ddl_inside = s.dialect().transactional_ddl;
    if !ddl_inside {
        s.ensure_ledger()?;
        s.create_table(dest, table, same_engine, staging)?;
    }
    // Generated columns are computed by the target: their values are not loaded.
    let (loaded, keep) = if table.has_generated() {
        let (loaded, keep) = table.loaded();
        (std::borrow::Cow::Owned(loaded), Some(keep))
    } else {
        (std::borrow::Cow::Borrowed(table), None)
    };
    let project = |b: RecordBatch| -> Result<RecordBatch> {
        match &keep {
            Some(keep) => b
                .project(keep)
                .map_err(|e| Error::Data(format!("table {name}: a part's columns: {e}"))),
            None => Ok(b),
        }
    };
    let upsert = into == LoadInto::Upsert;
    transaction(
        s,
        (dest, table),
        |s| {
            s.lock_part(&format!("ferry:{}:{}", entry.bundle_id, entry.part_path))?;
            if ddl_inside {
                s.ensure_ledger()?;
                s.create_table(dest, table, same_engine, staging)?;
            }
            // The ledger row goes first: a concurrent loader of the same part waits on its
            // key, then finds it taken.
            if !ledger::claim_with_link(s, entry)? {
                return Ok(LoadOutcome::AlreadyLoaded);
            }
            let into = Chunks {
                dest,
                table: &loaded,
                project: &project,
                part: &entry.part_path,
                upsert,
            };
            let written = match rejects.as_deref_mut() {
                None => {
                    let mut projected = batches.map(|b| b.and_then(&project));
                    let w = s.bulk_load(dest, &loaded, &mut projected, &entry.part_path, upsert)?;
                    PartLoad {
                        rows: w.rows,
                        rejected: 0,
                        updated: w.updated,
                    }
                }
                Some(r) => load_skipping(s, &into, batches, r)?,
            };
            before_commit(written.rows + written.rejected)?;
            if let Some(r) = rejects {
                r.keep()?;
            }
            ledger::set_rows(s, entry, written.rows, written.rejected)?;
            Ok(LoadOutcome::Loaded(written))
        },
        |o| matches!(o, LoadOutcome::Loaded(_)),
    )
}

/// Where [`load_skipping`] writes a part's rows.
struct Chunks<'a> {
    dest: &'a str,
    /// The columns loaded (generated ones left out).
    table: &'a TableDef,
    /// From the bundle's columns to the loaded ones.
    project: &'a dyn Fn(RecordBatch) -> Result<RecordBatch>,
    part: &'a str,
    upsert: bool,
}

/// The savepoint every chunk of a part loads under with `--on-error skip` (one at a
/// time, never nested).
const SAVEPOINT: &str = "ferry_rows";

/// `--on-error skip`: known-good rows held back to travel with the next attempt, at most
/// (more are loaded on their own). Resending them costs less than a load of their own on a
/// target where each load has a fixed cost (PostgreSQL's COPY waits for a delayed TCP ack
/// when it succeeds), up to about this many rows.
const PENDING_ROWS: usize = 1024;
/// `--on-error skip`: the fewest unknown rows an attempt takes after a refused row.
const MIN_WINDOW: usize = 16;

/// `--on-error skip`: loads a part batch by batch, each attempt of rows under a savepoint of
/// the part's transaction. Rows the target refuses ([`Error::RowRefused`], and nothing
/// else) are set aside, one by one, each with the server's reason; every other row is
/// written once. Only a refused row is skipped: a lost connection, a lock timeout or a
/// full disk fails the part as in strict mode. Memory stays one batch.
///
/// How a batch goes ([`load_rows`]): it is tried whole. When the engine knows which row
/// the target refused ([`Session::refused_row`]: PostgreSQL's COPY line, SQLite's row,
/// MySQL's "at row N"), that row is set aside with the server's reason, the rows before it
/// are known good and travel with the next attempt, which takes a window of the rows after
/// it sized by how far the refused row was (dense refusals, small windows). When it does
/// not, the rows tried are halved, each half tried the same way, down to single rows.
///
/// Cost: a part without refused rows takes one savepoint per batch. A refused row costs
/// about one failed attempt when the engine names it, about 2·log2(batch rows) attempts
/// when it does not (a MySQL/MariaDB CHECK, a PostgreSQL foreign key or upsert).
fn load_skipping(
    s: &mut dyn Session,
    into: &Chunks<'_>,
    batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
    rejects: &mut dyn Rejects,
) -> Result<PartLoad> {
    let mut out = PartLoad {
        updated: into.upsert.then_some(0),
        ..PartLoad::default()
    };
    let mut first = 1u64;
    for b in batches {
        let b = b?;
        let n = u32::try_from(b.num_rows()).map_err(|_| {
            Error::Other(format!(
                "part {}: a batch of {} rows",
                into.part,
                b.num_rows()
            ))
        })?;
        let rows: Vec<u32> = (0..n).collect();
        let batch = Batch { b: &b, first, into };
        load_rows(s, &batch, &rows, rejects, &mut out)?;
        first += u64::from(n);
    }
    Ok(out)
}

/// One batch of a part under `--on-error skip`: its rows are rows `first..` of the part.
struct Batch<'a> {
    b: &'a RecordBatch,
    first: u64,
    into: &'a Chunks<'a>,
}

/// How an attempt of rows ended.
enum Tried {
    Loaded(Written),
    /// The target refused a row: the loader's message, and the row of the attempt (from 1)
    /// when the engine knows it.
    Refused(String, Option<u64>),
}

impl Batch<'_> {
    /// Rows `rows` (indices into the batch, ascending), as one batch.
    fn rows(&self, rows: &[u32]) -> Result<RecordBatch> {
        let contiguous = rows.windows(2).all(|w| w[1] == w[0] + 1);
        match rows.first() {
            Some(&start) if contiguous => Ok(self.b.slice(start as usize, rows.len())),
            _ => arrow::compute::take_record_batch(
                self.b,
                &arrow::array::UInt32Array::from(rows.to_vec()),
            )
            .map_err(|e| Error::Other(format!("part {}: taking rows: {e}", self.into.part))),
        }
    }

    /// Tries to write `rows` under the savepoint: written (savepoint released), or refused
    /// (rolled back to it); any other error fails the part.
    fn try_rows(&self, s: &mut dyn Session, rows: &[u32]) -> Result<Tried> {
        let chunk = (self.into.project)(self.rows(rows)?)?;
        s.execute(
            "setting a savepoint",
            &format!("SAVEPOINT {SAVEPOINT}"),
            &[],
        )?;
        let into = self.into;
        let tried = match s.bulk_load(
            into.dest,
            into.table,
            &mut std::iter::once(Ok(chunk)),
            into.part,
            into.upsert,
        ) {
            Ok(w) => Tried::Loaded(w),
            Err(Error::RowRefused(m)) => {
                let row = s.refused_row();
                s.execute(
                    "rolling back to a savepoint",
                    &format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"),
                    &[],
                )?;
                Tried::Refused(m, row)
            }
            Err(e) => return Err(e),
        };
        s.execute(
            "releasing a savepoint",
            &format!("RELEASE SAVEPOINT {SAVEPOINT}"),
            &[],
        )?;
        Ok(tried)
    }

    /// Row `row` of the batch, refused for the reason in `message`, to `rejects`.
    fn reject(
        &self,
        row: u32,
        message: &str,
        rejects: &mut dyn Rejects,
        out: &mut PartLoad,
    ) -> Result<()> {
        out.rejected += 1;
        rejects.reject(
            self.first + u64::from(row),
            &refusal_reason(message),
            &self.b.slice(row as usize, 1),
        )
    }
}

/// Writes rows `rows` of a batch (indices, ascending), setting aside those the target
/// refuses (see [`load_skipping`]).
fn load_rows(
    s: &mut dyn Session,
    batch: &Batch<'_>,
    rows: &[u32],
    rejects: &mut dyn Rejects,
    out: &mut PartLoad,
) -> Result<()> {
    // Rows known good (they came before a refused one), not written yet.
    let mut pending: Vec<u32> = Vec::new();
    // The first row of `rows` not tried yet, and how many to try at once.
    let (mut pos, mut window) = (0usize, rows.len().max(1));
    while pos < rows.len() || !pending.is_empty() {
        let end = (pos + window).min(rows.len());
        let mut attempt = pending.clone();
        attempt.extend_from_slice(&rows[pos..end]);
        let (message, named) = match batch.try_rows(s, &attempt)? {
            Tried::Loaded(w) => {
                out.add(w);
                pending.clear();
                pos = end;
                window = window.saturating_mul(2).min(rows.len()).max(1);
                continue;
            }
            Tried::Refused(m, row) => (m, row),
        };
        if let [only] = attempt[..] {
            batch.reject(only, &message, rejects, out)?;
            pending.clear();
            pos = end;
            continue;
        }
        // The row the engine named, when it is one of the rows not known good (a known-good
        // row refused in other company goes by halves with the rest).
        let named = named
            .and_then(|h| usize::try_from(h).ok())
            .filter(|h| *h > pending.len() && *h <= attempt.len())
            .map(|h| pos + h - 1 - pending.len());
        let Some(at) = named else {
            halve(s, batch, &attempt, rejects, out)?;
            pending.clear();
            pos = end;
            continue;
        };
        batch.reject(rows[at], &message, rejects, out)?;
        pending.extend_from_slice(&rows[pos..at]);
        window = (2 * (at - pos) + 2).clamp(MIN_WINDOW, rows.len().max(MIN_WINDOW));
        pos = at + 1;
        if pending.len() >= PENDING_ROWS {
            match batch.try_rows(s, &pending)? {
                Tried::Loaded(w) => out.add(w),
                Tried::Refused(..) => {
                    let held = std::mem::take(&mut pending);
                    halve(s, batch, &held, rejects, out)?;
                }
            }
            pending.clear();
        }
    }
    Ok(())
}

/// Rows that were refused together, in two halves, each loaded by [`load_rows`].
fn halve(
    s: &mut dyn Session,
    batch: &Batch<'_>,
    rows: &[u32],
    rejects: &mut dyn Rejects,
    out: &mut PartLoad,
) -> Result<()> {
    if rows.len() <= 1 {
        return load_rows(s, batch, rows, rejects, out);
    }
    let (a, b) = rows.split_at(rows.len() / 2);
    load_rows(s, batch, a, rejects, out)?;
    load_rows(s, batch, b, rejects, out)
}

/// The reason a row was refused, from the message of an [`Error::RowRefused`] about that
/// one row: the server's own words (and the value conversion's, for a value refused before
/// it was sent), without what the message says around them (table, part, row number, "nothing
/// from this part was committed") and without the server's position noise ("at row 3",
/// "at line 948", PostgreSQL's "[COPY t, line 1]"), which count rows of a statement, not of
/// the part.
pub fn refusal_reason(m: &str) -> String {
    let m = m
        .split("; nothing from this part was committed")
        .next()
        .unwrap_or(m);
    let reason = if let Some((_, r)) = m
        .split_once("refused a row: ")
        .or_else(|| m.split_once("refused the row: "))
    {
        r.to_string()
    } else if let Some((head, r)) = m
        .split_once(" of part ")
        .and_then(|(h, rest)| rest.split_once(": ").map(|(_, r)| (h, r)))
    {
        // A value the loader could not convert for the column: "…, column "c", row N of part P: why".
        match head
            .split_once(", column ")
            .and_then(|(_, c)| c.rsplit_once(", row "))
        {
            Some((col, _)) => format!("column {col}: {r}"),
            None => r.to_string(),
        }
    } else {
        m.to_string()
    };
    strip_position_noise(&reason)
}

/// Removes " at row N", " at line N" and a trailing "[COPY …]" context from a server message.
pub fn strip_position_noise(m: &str) -> String {
    let mut out = m.trim().to_string();
    if out.ends_with(']')
        && let Some(i) = out.rfind(" [COPY ")
    {
        out.truncate(i);
    }
    // Only a position that ends the message: "at row 5" inside a quoted value is data.
    loop {
        let digits = out.bytes().rev().take_while(u8::is_ascii_digit).count();
        let head = &out[..out.len() - digits];
        match [" at row ", " at line "]
            .iter()
            .find(|w| head.ends_with(*w))
        {
            Some(w) if digits > 0 => out.truncate(head.len() - w.len()),
            _ => break,
        }
    }
    out
}

/// Records a link of a chain that has no parts (nothing changed at the source): its
/// chain-link row alone, in a transaction of its own.
pub fn record_link(
    s: &mut dyn Session,
    table: (&str, &TableDef),
    entry: &LedgerEntry,
) -> Result<()> {
    let Some(row) = entry.link_row() else {
        return Ok(());
    };
    s.ensure_ledger()?;
    transaction(s, table, |s| ledger::claim(s, &row), |_| true).map(|_| ())
}

/// A link's deletes (`export --deletes`), in one transaction (`dry`: only counted, checked
/// against the ratio and rolled back, nothing claimed): every key part of the
/// table is claimed in the ledger, the key set goes into staging table `stage` (the key
/// columns only), and the rows of `name` whose key is absent from it are deleted. When that
/// would delete more than `max_ratio` of the table's rows the transaction rolls back and
/// nothing is deleted (exit 65). `before_commit` authenticates the key parts. Returns the
/// rows deleted, or `AlreadyLoaded` when an earlier run committed the deletes.
#[allow(clippy::too_many_arguments)]
pub fn apply_deletes(
    s: &mut dyn Session,
    name: &str,
    table: &TableDef,
    keys: &TableDef,
    stage: &str,
    same_engine: bool,
    entries: &[LedgerEntry],
    batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
    max_ratio: f64,
    dry: bool,
    before_commit: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<LoadOutcome> {
    let ddl_inside = s.dialect().transactional_ddl;
    if !ddl_inside {
        s.ensure_ledger()?;
        s.create_table(stage, keys, same_engine, true)?;
    }
    let q = s.table_sql(name, table);
    let k = s.table_sql(stage, keys);
    let quote = s.dialect().quote;
    let outcome = transaction(
        s,
        (name, table),
        |s| {
            // An empty key set (the source table is empty) has no part to claim: deleting
            // every row is the same however often it runs.
            let first_part = entries.first().map_or("", |e| e.part_path.as_str());
            if let Some(first) = entries.first() {
                s.lock_part(&format!("ferry:{}:{}", first.bundle_id, first.part_path))?;
            }
            if ddl_inside {
                s.ensure_ledger()?;
                s.create_table(stage, keys, same_engine, true)?;
            }
            for e in entries.iter().filter(|_| !dry) {
                if !ledger::claim_with_link(s, e)? {
                    return Ok(LoadOutcome::AlreadyLoaded);
                }
            }
            s.execute(
                "emptying the key staging table",
                &format!("DELETE FROM {k}"),
                &[],
            )?;
            let n_keys = s.bulk_load(stage, keys, batches, first_part, false)?.rows;
            for e in entries.iter().filter(|_| !dry) {
                ledger::set_rows(s, e, e.rows, 0)?;
            }
            let count = s.query_text(
                "counting rows",
                &format!("SELECT {} FROM {q}", (s.dialect().as_text)("COUNT(*)")),
                &[],
            )?;
            let before: u64 = count
                .first()
                .and_then(|r| r.first().cloned().flatten())
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            let matches: Vec<String> = keys
                .columns
                .iter()
                .map(|c| format!("{k}.{c} = {q}.{c}", c = quote(&c.name)))
                .collect();
            let absent = format!(
                "FROM {q} WHERE NOT EXISTS (SELECT 1 FROM {k} WHERE {})",
                matches.join(" AND ")
            );
            let deleted = if dry {
                let n = s.query_text(
                    "counting the rows the source deleted",
                    &format!("SELECT {} {absent}", (s.dialect().as_text)("COUNT(*)")),
                    &[],
                )?;
                n.first()
                    .and_then(|r| r.first().cloned().flatten())
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0)
            } else {
                s.execute(
                    "deleting the rows the source deleted",
                    &format!("DELETE {absent}"),
                    &[],
                )?
            };
            #[allow(clippy::cast_precision_loss)]
            if deleted > 0 && deleted as f64 > max_ratio * before as f64 {
                return Err(Error::Chain(format!(
                    "table {name}: this link's deletes would remove {deleted} of its {before} rows, more than \
                     --max-delete-ratio {max_ratio} allows; nothing was deleted (rolled back). If the source \
                     really lost that many rows, re-run with a higher --max-delete-ratio"
                )));
            }
            if dry {
                return Ok(LoadOutcome::Loaded(deleted));
            }
            // The key parts authenticate in full before anything commits.
            before_commit(n_keys)?;
            if ddl_inside {
                drop_staging(s, stage, keys)?;
            }
            Ok(LoadOutcome::Loaded(deleted))
        },
        |o| !dry && matches!(o, LoadOutcome::Loaded(_)),
    )?;
    if !ddl_inside {
        drop_staging(s, stage, keys)?;
    }
    Ok(outcome)
}

/// One table of a publish: its target name, definition and staging table.
#[derive(Debug, Clone, Copy)]
pub struct Publishing<'a> {
    pub name: &'a str,
    pub table: &'a TableDef,
    pub staging: &'a str,
}

/// Replace mode, once every part of a table is staged: [`publish_group`] of that one table.
#[allow(clippy::too_many_arguments)]
pub fn publish(
    s: &mut dyn Session,
    name: &str,
    table: &TableDef,
    same_engine: bool,
    staging: &str,
    bundle_id: &str,
    newer_than: Option<(&str, u64)>,
    before_commit: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let one = [Publishing {
        name,
        table,
        staging,
    }];
    publish_group(s, &one, same_engine, bundle_id, newer_than, before_commit)
}

/// Replace mode, once every part of a group of tables is staged (a group: tables of the
/// bundle that reference one another, so none can change alone): in one transaction,
/// create each table when missing, take its write lock, suspend the target's foreign keys
/// that reference the group ([`Session::suspend_references`]: their checks and their
/// `ON DELETE` actions must not touch the old rows), delete each table's rows, copy its
/// staging table's rows in, check every one of those foreign keys against the new rows
/// (a referencing row whose key the new rows lack refuses the whole publish: exit 65,
/// nothing changed), restore them, and mark the tables' `replace-staged` ledger rows of
/// this bundle `published`; `before_commit` runs just before COMMIT. Readers see the old
/// rows until the commit and the new ones after. The caller drops the staging tables after
/// the commit.
/// `newer_than`: (source id, sequence) of this bundle; when another bundle of that source
/// with a higher sequence has published into a table meanwhile, the publish is refused
/// inside the transaction (see [`newer_published`]). `None` with `--allow-replay`.
pub fn publish_group(
    s: &mut dyn Session,
    group: &[Publishing<'_>],
    same_engine: bool,
    bundle_id: &str,
    newer_than: Option<(&str, u64)>,
    before_commit: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let Some(first) = group.first() else {
        return Ok(());
    };
    let ddl_inside = s.dialect().transactional_ddl;
    if !ddl_inside {
        // A missing table is made (empty) before the transaction.
        for p in group {
            s.create_table(p.name, p.table, same_engine, false)?;
        }
    }
    s.references_off(true)?;
    let published = transaction(
        s,
        (first.name, first.table),
        |s| {
            let mut only = Vec::with_capacity(group.len());
            for p in group {
                if ddl_inside {
                    // A table made here appears with its rows or not at all.
                    s.create_table(p.name, p.table, same_engine, false)?;
                }
                let q = s.table_sql(p.name, p.table);
                only.push(s.lock_for_replace(&q)?);
            }
            // Every foreign key of the target pointing into the group, once.
            let mut refs: Vec<Reference> = Vec::new();
            for p in group {
                for r in s.referencing(p.name, p.table)? {
                    if !refs
                        .iter()
                        .any(|x| x.child_sql == r.child_sql && x.constraint == r.constraint)
                    {
                        refs.push(r);
                    }
                }
            }
            s.suspend_references(&refs)?;
            for (p, only) in group.iter().zip(&only) {
                let q = s.table_sql(p.name, p.table);
                // DELETE, not TRUNCATE: MVCC-safe for older snapshots and allowed under FKs.
                // It comes before the ledger read: once it holds the table's rows, that read
                // sees what other publishers of this table committed (also under REPEATABLE READ).
                s.execute(
                    &format!("publishing {}: deleting the old rows", p.name),
                    &format!("DELETE FROM {only}{q}"),
                    &[],
                )?;
                let key = s.ledger_key(p.name, p.table);
                if let Some((source, sequence)) = newer_than
                    && let Some((newer, newer_bundle)) =
                        ledger::newer_published(s, &key, source, bundle_id, sequence)?
                {
                    return Err(newer_published_error(
                        p.name,
                        sequence,
                        newer,
                        &newer_bundle,
                    ));
                }
            }
            for p in group {
                copy_staged(s, p)?;
            }
            for r in &refs {
                check_reference(s, group, r)?;
            }
            let tables: Vec<String> = group.iter().map(|p| s.table_sql(p.name, p.table)).collect();
            s.restore_references(&refs, &tables)?;
            for p in group {
                let key = s.ledger_key(p.name, p.table);
                for part in ledger::staged_parts(s, bundle_id, &key)? {
                    ledger::set_mode(s, bundle_id, &part, STAGED, PUBLISHED)?;
                }
            }
            before_commit()
        },
        |_| true,
    );
    let back = s.references_off(false);
    published?;
    back
}

/// `INSERT … SELECT` of one table's staging rows into it, inside the publish.
fn copy_staged(s: &mut dyn Session, p: &Publishing<'_>) -> Result<()> {
    let (name, table, staging) = (p.name, p.table, p.staging);
    let q = s.table_sql(name, table);
    let stage = s.table_sql(staging, table);
    let quote = s.dialect().quote;
    // Generated columns are computed by the target, not copied.
    let cols: Vec<String> = table
        .columns
        .iter()
        .filter(|c| c.generated.is_none())
        .map(|c| quote(&c.name))
        .collect();
    let list = if cols.is_empty() {
        String::new()
    } else {
        format!(" ({})", cols.join(", "))
    };
    let overriding = s.insert_overriding();
    s.execute(
        &format!("table {name}: publishing from {staging}"),
        &format!(
            "INSERT INTO {q}{list}{overriding} SELECT {} FROM {stage}",
            cols.join(", ")
        ),
        &[],
    )
    .map_err(|e| match e {
        Error::Data(m) => Error::Data(format!("{m}; nothing was published")),
        other => other,
    })
    .map(|_| ())
}

/// Inside the publish, after the new rows are in: a referencing row whose key (all of its
/// columns set, as `MATCH SIMPLE` checks) is not among the referenced table's rows refuses
/// the publish, naming the constraint, both tables and one such key.
fn check_reference(s: &mut dyn Session, group: &[Publishing<'_>], r: &Reference) -> Result<()> {
    let d = s.dialect();
    let (quote, as_text) = (d.quote, d.as_text);
    let set: Vec<String> = r
        .columns
        .iter()
        .map(|c| format!("c.{} IS NOT NULL", quote(c)))
        .collect();
    let matched: Vec<String> = r
        .columns
        .iter()
        .zip(&r.ref_columns)
        .map(|(c, p)| format!("p.{} = c.{}", quote(p), quote(c)))
        .collect();
    let shown: Vec<String> = r
        .columns
        .iter()
        .map(|c| as_text(&format!("c.{}", quote(c))))
        .collect();
    if r.columns.is_empty() || r.columns.len() != r.ref_columns.len() {
        return Ok(());
    }
    let sql = format!(
        "SELECT {} FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {}) LIMIT 1",
        shown.join(", "),
        r.child_sql,
        set.join(" AND "),
        r.parent_sql,
        matched.join(" AND ")
    );
    let rows = s.query_text(
        &format!("checking foreign key {} of {}", r.constraint, r.child),
        &sql,
        &[],
    )?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(());
    };
    let key: Vec<String> = row
        .into_iter()
        .map(|v| v.unwrap_or_else(|| "NULL".into()))
        .collect();
    let parent = group
        .iter()
        .find(|p| s.table_sql(p.name, p.table) == r.parent_sql)
        .map_or(r.parent_sql.as_str(), |p| p.name);
    let names: Vec<&str> = group.iter().map(|p| p.name).collect();
    let child_in_group = group
        .iter()
        .any(|p| s.table_sql(p.name, p.table) == r.child_sql);
    let what = if child_in_group {
        format!(
            "the bundle's rows of {} include ({}) = ({}), which the bundle's {parent} does not have: the bundle \
             breaks the constraint itself",
            r.child,
            r.columns.join(", "),
            key.join(", ")
        )
    } else {
        format!(
            "{} is not in this import and has rows with ({}) = ({}) (and maybe more), which the bundle's {parent} \
             does not have: delete or change those rows, or export {} with {parent} and import them together",
            r.child,
            r.columns.join(", "),
            key.join(", "),
            r.child
        )
    };
    Err(Error::Data(format!(
        "--mode replace of {} would break foreign key {} of table {} (referencing {parent}): {what}; nothing was \
         changed: {} still hold{} the old rows and the staged parts wait in staging",
        names.join(", "),
        r.constraint,
        r.child,
        names.join(", "),
        if names.len() == 1 { "s" } else { "" }
    )))
}

/// Drops a replace's staging table if it exists.
pub fn drop_staging(s: &mut dyn Session, staging: &str, table: &TableDef) -> Result<()> {
    let q = s.table_sql(staging, table);
    s.execute(
        &format!("dropping staging table {staging}"),
        &format!("DROP TABLE IF EXISTS {q}"),
        &[],
    )
    .map(|_| ())
}

/// Forgets a staging table whose contents cannot be trusted: deletes the table's
/// `replace-staged` ledger rows of this bundle and drops the staging table, in one
/// transaction where DDL is transactional. Otherwise the table goes first: a crash between
/// the steps leaves staged ledger rows without their table, which the next run's recount
/// finds and discards again.
pub fn discard_staging(
    s: &mut dyn Session,
    name: &str,
    staging: &str,
    table: &TableDef,
    bundle_id: &str,
) -> Result<()> {
    let key = s.ledger_key(name, table);
    if !s.dialect().transactional_ddl {
        drop_staging(s, staging, table)?;
        for part in ledger::staged_parts(s, bundle_id, &key)? {
            ledger::forget(s, bundle_id, &part)?;
        }
        return Ok(());
    }
    transaction(
        s,
        (staging, table),
        |s| {
            for part in ledger::staged_parts(s, bundle_id, &key)? {
                ledger::forget(s, bundle_id, &part)?;
            }
            drop_staging(s, staging, table)
        },
        |_| true,
    )
}

/// Whether a table name has the shape of a replace's staging table, `_ferry_<8 hex>_<8 hex>`.
pub fn is_staging_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("_ferry_") else {
        return false;
    };
    let hex = |s: &str| s.len() == 8 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    matches!(rest.split_once('_'), Some((a, b)) if hex(a) && hex(b))
}

/// How long a statement waits for a lock on a target table: `FERRY_LOCK_TIMEOUT` seconds,
/// default 60 (PostgreSQL `lock_timeout`; MySQL `lock_wait_timeout` and
/// `innodb_lock_wait_timeout`).
pub fn lock_timeout_secs() -> Result<u64> {
    match std::env::var("FERRY_LOCK_TIMEOUT") {
        Ok(v) => v.trim().parse().map_err(|_| {
            Error::Usage(format!(
                "FERRY_LOCK_TIMEOUT={v:?}: expected a whole number of seconds"
            ))
        }),
        Err(_) => Ok(60),
    }
}

/// Replace: an older bundle must not publish over a newer one of the same source that
/// published while it ran (docs/RELIABILITY.md, E53). The table keeps the newer rows.
pub fn newer_published_error(name: &str, sequence: u64, newer: u64, newer_bundle: &str) -> Error {
    Error::Data(format!(
        "table {name}: bundle {newer_bundle} (sequence {newer}) from the same source published into it while \
         this import ran, and this bundle is older (sequence {sequence}): {name} keeps the newer rows and this \
         bundle's parts stay staged; re-run with --allow-replay to publish the older rows anyway"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array};
    use std::sync::Arc;

    static DIALECT: Dialect = Dialect {
        placeholders: Placeholders::Question,
        transactional_ddl: true,
        ledger_type: |_| String::new(),
        ledger_options: "",
        insert_ignoring_conflict: ("INSERT INTO", ""),
        now: None,
        as_text: |e| e.to_string(),
        quote: |n| n.to_string(),
    };

    /// A target that refuses every value in `bad`, naming the row when `names`; its table
    /// is a list of values, and a savepoint is a length to go back to.
    struct Fake {
        bad: std::collections::HashSet<i64>,
        names: bool,
        written: Vec<i64>,
        savepoint: usize,
        refused: Option<u64>,
        loads: usize,
    }

    impl Session for Fake {
        fn dialect(&self) -> &'static Dialect {
            &DIALECT
        }
        fn begin(&mut self) -> Result<()> {
            Ok(())
        }
        fn commit(&mut self) -> Result<()> {
            Ok(())
        }
        fn rollback(&mut self) {}
        fn execute(&mut self, _: &str, sql: &str, _: &[Param<'_>]) -> Result<u64> {
            if sql.starts_with("SAVEPOINT") {
                self.savepoint = self.written.len();
            } else if sql.starts_with("ROLLBACK TO") {
                self.written.truncate(self.savepoint);
            }
            Ok(0)
        }
        fn query_text(
            &mut self,
            _: &str,
            _: &str,
            _: &[Param<'_>],
        ) -> Result<Vec<Vec<Option<String>>>> {
            Ok(vec![])
        }
        fn ledger_table(&self) -> String {
            String::new()
        }
        fn ensure_ledger(&mut self) -> Result<()> {
            Ok(())
        }
        fn ledger_exists(&mut self) -> Result<bool> {
            Ok(true)
        }
        fn table_sql(&self, name: &str, _: &TableDef) -> String {
            name.into()
        }
        fn create_table(&mut self, _: &str, _: &TableDef, _: bool, _: bool) -> Result<()> {
            Ok(())
        }
        fn bulk_load(
            &mut self,
            _: &str,
            _: &TableDef,
            batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
            part: &str,
            _: bool,
        ) -> Result<Written> {
            self.loads += 1;
            self.refused = None;
            let mut n = 0;
            for b in batches {
                let b = b?;
                let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                for i in 0..a.len() {
                    n += 1;
                    let v = a.value(i);
                    if self.bad.contains(&v) {
                        self.refused = self.names.then_some(n);
                        return Err(Error::RowRefused(format!(
                            "table t, row {n} of part {part}: the target refused a row: value {v} is bad; nothing \
                             from this part was committed"
                        )));
                    }
                    self.written.push(v);
                }
            }
            Ok(Written::inserted(n))
        }
        fn refused_row(&self) -> Option<u64> {
            self.refused
        }
    }

    #[derive(Default)]
    struct Kept(Vec<(u64, String, i64)>);

    impl Rejects for Kept {
        fn reject(&mut self, row: u64, reason: &str, values: &RecordBatch) -> Result<()> {
            let a = values
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            assert_eq!(values.num_rows(), 1);
            self.0.push((row, reason.to_string(), a.value(0)));
            Ok(())
        }
        fn keep(&mut self) -> Result<()> {
            Ok(())
        }
    }

    /// Rows 1..=n in batches of `batch` rows; values v = row number; `bad` refused.
    fn skip(n: i64, batch: usize, bad: &[i64], names: bool) -> (Fake, Kept, PartLoad) {
        let mut fake = Fake {
            bad: bad.iter().copied().collect(),
            names,
            written: vec![],
            savepoint: 0,
            refused: None,
            loads: 0,
        };
        let table = TableDef::default();
        let project = |b: RecordBatch| Ok(b);
        let chunks = Chunks {
            dest: "t",
            table: &table,
            project: &project,
            part: "data/t/0.fe",
            upsert: false,
        };
        let values: Vec<i64> = (1..=n).collect();
        let mut batches = values.chunks(batch.max(1)).map(|c| {
            Ok(RecordBatch::try_from_iter([(
                "v",
                Arc::new(Int64Array::from(c.to_vec())) as arrow::array::ArrayRef,
            )])
            .unwrap())
        });
        let mut kept = Kept::default();
        let out = load_skipping(&mut fake, &chunks, &mut batches, &mut kept).unwrap();
        (fake, kept, out)
    }

    fn check(n: i64, batch: usize, bad: &[i64], names: bool) -> usize {
        let (fake, kept, out) = skip(n, batch, bad, names);
        let mut bad_sorted: Vec<i64> = bad
            .iter()
            .copied()
            .filter(|v| (1..=n).contains(v))
            .collect();
        bad_sorted.sort_unstable();
        bad_sorted.dedup();
        // Every good row written exactly once, in order; every refused row set aside once,
        // with its row number in the part and the server's reason.
        let good: Vec<i64> = (1..=n).filter(|v| !bad_sorted.contains(v)).collect();
        assert_eq!(fake.written, good, "batch {batch}, names {names}");
        let mut rejected: Vec<i64> = kept.0.iter().map(|r| r.2).collect();
        rejected.sort_unstable();
        assert_eq!(rejected, bad_sorted);
        for (row, reason, v) in &kept.0 {
            assert_eq!(*row, u64::try_from(*v).unwrap());
            assert_eq!(reason, &format!("value {v} is bad"));
        }
        assert_eq!(out.rows, good.len() as u64);
        assert_eq!(out.rejected, bad_sorted.len() as u64);
        fake.loads
    }

    #[test]
    fn skip_writes_every_good_row_once_and_sets_every_refused_row_aside() {
        let every_tenth: Vec<i64> = (1..=2000).filter(|v| v % 10 == 0).collect();
        for names in [true, false] {
            for batch in [1, 7, 250, 4096] {
                check(2000, batch, &every_tenth, names);
                check(300, batch, &[], names);
                check(300, batch, &[1, 2, 3, 299, 300], names);
                check(300, batch, &(1..=300).collect::<Vec<_>>(), names);
            }
        }
        // A named row costs about one failed attempt; without names, halving.
        let named = check(2000, 2000, &every_tenth, true);
        let halved = check(2000, 2000, &every_tenth, false);
        assert!(named < 2 * 200 + 20, "{named} loads");
        assert!(halved > named, "{halved} loads");
        // Sparse: one refused row among 100000.
        assert!(check(100_000, 100_000, &[77_777], true) <= 4);
    }

    proptest::proptest! {
        #[test]
        fn skip_is_exact_for_any_refused_rows(
            bad in proptest::collection::vec(1i64..=400, 0..60),
            batch in 1usize..500,
            names: bool,
        ) {
            check(400, batch, &bad, names);
        }
    }

    #[test]
    fn a_refusal_reason_is_the_servers_words_without_position_noise() {
        let cases = [
            // PostgreSQL COPY: the row's own values stay, the COPY line goes.
            (
                "table \"public\".\"t\", row 40 of part data/t/00000.fe: the target refused a row: new row for relation \
                 \"t\" violates check constraint \"t_v_check\" (Failing row contains (40, 40)); nothing from this part \
                 was committed",
                "new row for relation \"t\" violates check constraint \"t_v_check\" (Failing row contains (40, 40))",
            ),
            (
                "table t, part p: the target refused a row: value too long [COPY t, line 3]; nothing from this part \
                 was committed",
                "value too long",
            ),
            // MariaDB: "at row N" counts rows of one statement.
            (
                "table t, row 12 of part p: the target refused a row: Out of range value for column 'v' at row 3; \
                 nothing from this part was committed",
                "Out of range value for column 'v'",
            ),
            (
                "table t, a row (row 1 or later) of part p: the target refused a row: CONSTRAINT `t_v_check` failed for \
                 `db`.`t` at line 948; nothing from this part was committed",
                "CONSTRAINT `t_v_check` failed for `db`.`t`",
            ),
            // SQLite.
            (
                "table \"t\", row 10 of part p: the target refused the row: CHECK constraint failed: v % 10 <> 0; \
                 nothing from this part was committed",
                "CHECK constraint failed: v % 10 <> 0",
            ),
            // A value the loader could not convert for the column.
            (
                "table t, column \"v\", row 5 of part data/t/1.fe: 300 is out of range for tinyint; nothing from this \
                 part was committed",
                "column \"v\": 300 is out of range for tinyint",
            ),
        ];
        for (message, reason) in cases {
            assert_eq!(refusal_reason(message), reason, "{message}");
        }
        assert_eq!(strip_position_noise("x at row y"), "x at row y");
        // A position inside a value is data, kept.
        let inside = "Key (note)=(meet at row 5) already exists";
        assert_eq!(strip_position_noise(inside), inside);
        assert_eq!(strip_position_noise("no such db at line 948"), "no such db");
    }
}
