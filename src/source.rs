//! Readers: one per engine, each turning a database's tables into the canonical Arrow
//! batches of `types`. A reader knows its engine and nothing of bundles or encryption.

use arrow::record_batch::RecordBatch;

use crate::types::SourceInfo;
use crate::types::TableDef;
use crate::{Error, Result};

/// Installs ring as rustls' process-wide crypto provider, once. sqlx's `verify-ca` verifier
/// and reqwest's client (built without a provider of its own, for the object stores) both ask
/// rustls for the process default: without this, they panic or refuse to build.
pub(crate) fn tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only when another thread installed one first: any provider does.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The reason, when connecting failed in TLS itself (the server's certificate did not verify,
/// the handshake was refused, the server has TLS off while the URL requires it) rather than
/// on the network: re-running the same command will not help, so it is not temporary.
pub(crate) fn tls_failure(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Tls(m) => Some(m.to_string()),
        sqlx::Error::Io(io) => {
            let r = io.get_ref()?.downcast_ref::<rustls::Error>()?;
            Some(match r {
                rustls::Error::InvalidCertificate(_) => format!(
                    "TLS certificate verification failed: {r} (verify-ca checks that the server's \
                     certificate chains to the root given in the URL or the system's roots; \
                     verify-full also that it names the host in the URL)"
                ),
                _ => format!("TLS handshake failed: {r}"),
            })
        }
        _ => None,
    }
}

/// How [`Source::split`] sizes a table's ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Equal ranges: one per slice or shard, each read whole by one worker.
    Even,
    /// Ranges that shrink towards the end (the k-th of n weighs n - k), for connections
    /// that take them in turn: the last ranges are short, so the connections finish nearly
    /// together instead of one reading a whole range while the others idle.
    Tapered,
}

/// Which tables to read: `--table` (empty = all user tables; a view only when named) and
/// `--exclude`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub tables: Vec<String>,
    pub exclude: Vec<String>,
}

impl Selection {
    /// Whether `t` is selected; names match `schema.table` or `table`, exactly.
    pub fn wants(&self, t: &TableDef) -> bool {
        let hit = |n: &String| *n == t.name || *n == t.qualified();
        (self.tables.is_empty() || self.tables.iter().any(hit)) && !self.exclude.iter().any(hit)
    }

    /// Whether `--table` names `t` itself (not only "all tables"), and `--exclude` does
    /// not: how a view is selected, since views are read only when named.
    pub fn names(&self, t: &TableDef) -> bool {
        let hit = |n: &String| *n == t.name || *n == t.qualified();
        self.tables.iter().any(hit) && !self.exclude.iter().any(hit)
    }

    /// Names given with `--table` that matched nothing: a typo must not export less silently.
    pub fn unmatched<'a>(&'a self, found: &[TableDef]) -> Vec<&'a str> {
        self.tables
            .iter()
            .filter(|n| !found.iter().any(|t| **n == t.name || **n == t.qualified()))
            .map(String::as_str)
            .collect()
    }

    /// Names given with `--exclude` that name no table or view of the source (`listed`,
    /// from [`Source::list`]): a typo must not export more silently either.
    pub fn unmatched_excludes<'a>(&'a self, listed: &[TableDef]) -> Vec<&'a str> {
        self.exclude
            .iter()
            .filter(|n| !listed.iter().any(|t| **n == t.name || **n == t.qualified()))
            .map(String::as_str)
            .collect()
    }
}

/// What a MySQL/MariaDB zero date (`0000-00-00`, or a zero month or day) becomes at
/// export: an error naming table, column and row (default), or NULL (`--zero-dates null`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ZeroDates {
    #[default]
    Error,
    Null,
}

/// Reader options that come from the command line rather than the URL.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceOptions {
    pub zero_dates: ZeroDates,
}

/// How big a batch may grow before it is handed on: the memory bound of a reader.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub rows: usize,
    pub bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            rows: 65_536,
            bytes: 16 * 1024 * 1024,
        }
    }
}

/// How many rows a table holds, as far as the source can tell without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rows {
    /// The engine's statistics (PostgreSQL's planner estimate, InnoDB's `TABLE_ROWS`).
    Estimated(u64),
    /// Counted inside the snapshot.
    Counted(u64),
    /// The statistics do not know, and why (a PostgreSQL table never analysed).
    Unknown(String),
}

/// A table's size without reading it: rows and the bytes it occupies at the source
/// (`None` when the engine cannot tell cheaply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    pub rows: Rows,
    pub bytes: Option<u64>,
}

/// Opens another connection reading a source's snapshot ([`Source::worker_opener`]).
pub type WorkerOpener = Box<dyn FnOnce() -> Result<Box<dyn Source>> + Send>;

/// A database that tables are read from.
pub trait Source: Send {
    fn info(&self) -> SourceInfo;

    /// A stable id of this source for the manifest (per-source sequence numbers).
    fn source_id(&self) -> String;

    /// The selected tables with their columns mapped to canonical types. A column ferry
    /// cannot carry is an error here, naming table, column and type, before any data moves.
    fn tables(&mut self, selection: &Selection) -> Result<Vec<TableDef>>;

    /// Every user table and view of the source, by name only (`schema`, `name` and
    /// `from_view` set, nothing else read): what `--table` and `--exclude` may name. The
    /// default reads every table's definition; engines list names in one query.
    fn list(&mut self) -> Result<Vec<TableDef>> {
        self.tables(&Selection::default())
    }

    /// What the selected tables have that ferry does not carry (triggers, …), for the summary.
    fn not_carried(&mut self, _tables: &[TableDef]) -> Result<Vec<String>> {
        Ok(vec![])
    }

    /// Starts the consistent read: every later `read` sees the same instant.
    fn begin_snapshot(&mut self) -> Result<()>;

    /// Splits a table of at least `min_bytes` into up to `n` disjoint row ranges (SQL
    /// predicates) that together hold every row once, for reading it on several connections,
    /// sized as `cut` says.
    fn split(
        &mut self,
        _table: &TableDef,
        _n: usize,
        _min_bytes: u64,
        _cut: Cut,
    ) -> Result<Vec<Option<String>>> {
        Ok(vec![None])
    }

    /// The id other sessions attach to the snapshot [`Source::begin_snapshot`] opened with,
    /// from any machine (`export --shards N --coordinate`); `None` when the engine cannot share one.
    fn shared_snapshot(&self) -> Option<String> {
        None
    }

    /// Reads from now on in the snapshot another session exported and still holds (a shard
    /// worker of `export --shard I`), instead of opening one of its own.
    fn attach_snapshot(&mut self, _id: &str) -> Result<()> {
        Err(Error::Usage(format!(
            "{}: this engine cannot read another session's snapshot (--shard)",
            self.info().engine
        )))
    }

    /// Another connection reading the same snapshot, for parallel export (`--jobs`);
    /// `None` when the engine cannot share one.
    fn worker(&mut self) -> Result<Option<Box<dyn Source>>> {
        Ok(None)
    }

    /// [`Source::worker`] to be opened later, on another thread, so that the connection
    /// opens while this one reads (`export --streams`); `None` when the engine cannot share
    /// its snapshot.
    fn worker_opener(&self) -> Option<WorkerOpener> {
        None
    }

    /// Takes the table's shared read lock now if that needs no wait, before a second
    /// connection reads it (`export --streams`); false when it would wait, which it must
    /// not: a lock request queued behind the first connection's (an `ALTER TABLE` waiting
    /// for it) would wait for a reader that waits for this one, a cycle the server cannot
    /// see. The connection stays usable either way.
    fn lock_shared_nowait(&mut self, _table: &TableDef) -> Result<bool> {
        Ok(true)
    }

    /// Rows the table holds (for progress), when cheap to know.
    fn count_rows(&mut self, table: &TableDef, filter: Option<&str>) -> Result<Option<u64>>;

    /// The table's size from the engine's statistics, without reading it (`ferry plan`,
    /// `export --dry-run`). Default: counted.
    fn estimate(&mut self, table: &TableDef) -> Result<Estimate> {
        Ok(Estimate {
            rows: Rows::Counted(self.count_exact(table, None)?),
            bytes: None,
        })
    }

    /// The rows of `table` matching `filter`, counted inside the snapshot. Default: read
    /// and counted.
    fn count_exact(&mut self, table: &TableDef, filter: Option<&str>) -> Result<u64> {
        self.read(table, filter, BatchLimits::default(), &mut |_| Ok(()))
    }

    /// Checks a `--where` predicate against the table without reading a row (the server
    /// resolves its columns, functions and types): one it refuses is a usage error naming
    /// the table (exit 2). The predicate has passed `expr::rebuild_where` already.
    fn check_filter(&mut self, _table: &TableDef, _filter: &str) -> Result<()> {
        Ok(())
    }

    /// This engine's spelling of a text column holding at most `max_chars` characters
    /// (`None`: any length), for a column `--mask` turns into text, so a same-engine import
    /// recreates a column that holds the masked values.
    fn text_type(&self, max_chars: Option<u32>) -> String {
        match max_chars {
            Some(n) => format!("varchar({n})"),
            None => "text".into(),
        }
    }

    /// The largest value of `column` in the snapshot, as the database prints it (`None`
    /// when the table is empty): a chain's high-water mark.
    fn high_water(&mut self, table: &TableDef, column: &str) -> Result<Option<String>> {
        let _ = column;
        Err(Error::Usage(format!(
            "table {}: this engine cannot read a cursor's high-water mark (--cursor)",
            table.qualified()
        )))
    }

    /// Streams a table as batches into `sink`; returns the row count.
    fn read(
        &mut self,
        table: &TableDef,
        filter: Option<&str>,
        limits: BatchLimits,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64>;
}

/// Reads table `t` with `attempt`, and again whenever the source finds that a column it
/// read as boolean is not one ([`Error::NotBoolean`]: a MySQL `tinyint(1)` holding more than
/// 0 and 1). The source remembers such a column, so the definition it gives for the table
/// next has the column as an integer; the read stays in the same snapshot. Returns what
/// `attempt` returned, the definition it read with, and a note per retyped column.
pub fn read_retyping<T>(
    src: &mut dyn Source,
    t: &TableDef,
    mut attempt: impl FnMut(&mut dyn Source, &TableDef) -> Result<T>,
) -> Result<(T, TableDef, Vec<String>)> {
    let mut def = t.clone();
    let mut notes = Vec::new();
    loop {
        let e = match attempt(src, &def) {
            Ok(v) => return Ok((v, def, notes)),
            Err(e @ (Error::NotBoolean { .. } | Error::NeedsText { .. })) => e,
            Err(e) => return Err(e),
        };
        // The same table (a dotted name may match another), now with that column changed.
        let again = src.tables(&Selection {
            tables: vec![def.qualified()],
            exclude: vec![],
        })?;
        let changed = |d: &TableDef| {
            d.schema == def.schema
                && d.name == def.name
                && d.columns.iter().any(|c| match &e {
                    Error::NotBoolean { column, .. } => {
                        c.name == *column && c.ty != crate::types::ColumnType::Boolean
                    }
                    Error::NeedsText { column, .. } => c.name == *column && c.as_text,
                    _ => false,
                })
        };
        let Some(new_def) = again.into_iter().find(|d| changed(d)) else {
            return Err(e);
        };
        notes.push(match &e {
            Error::NotBoolean { table, column } => format!(
                "table {table}, column {column:?}: tinyint(1) holds values other than 0 and 1, \
                 so it travels as an integer (the table was read again)"
            ),
            Error::NeedsText {
                table,
                column,
                reason,
            } => format!(
                "table {table}, column {column:?} ({reason}) travels as its exact text form \
                 (the table was read again)"
            ),
            other => other.to_string(),
        });
        def = new_def;
    }
}
