//! Loaders: one per engine, each taking canonical Arrow batches into a database, one part
//! per transaction together with its ledger row, so every part loads exactly once.

pub mod mysql;
pub mod postgres;
pub mod sqlite;

use arrow::record_batch::RecordBatch;

use crate::types::{ColumnType, TableDef};
use crate::{Error, Result};

/// The ledger row written in the same transaction as a part's rows.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub bundle_id: String,
    pub part_path: String,
    pub manifest_sha256: String,
    pub cipher_sha256: String,
    pub source_id: String,
    pub sequence: u64,
    pub target_table: String,
    pub rows: u64,
    pub mode: String,
    pub run_id: String,
}

/// What the ledger knows of one bundle at this target.
#[derive(Debug, Clone, Default)]
pub struct LedgerState {
    /// Parts already committed, with the table they went to.
    pub parts: Vec<(String, String)>,
    /// Manifest hashes recorded under this bundle id (more than one means tampering or reuse).
    pub manifest_sha256: Vec<String>,
    /// When the first part was loaded, for "already imported" messages.
    pub first_loaded_at: Option<String>,
    /// Parts loaded into a replace's staging table and not yet published (ledger mode
    /// `replace-staged`): a re-run reuses the staging table and publishes.
    pub staged: Vec<String>,
}

impl LedgerState {
    /// Adds one ledger row of the bundle (rows in load order).
    pub fn record(
        &mut self,
        part: String,
        table: String,
        manifest_sha256: String,
        loaded_at: String,
        mode: &str,
    ) {
        if mode == STAGED {
            self.staged.push(part.clone());
        }
        self.parts.push((part, table));
        if !self.manifest_sha256.contains(&manifest_sha256) {
            self.manifest_sha256.push(manifest_sha256);
        }
        self.first_loaded_at.get_or_insert(loaded_at);
    }
}

/// Ledger mode of a part loaded into a replace's staging table.
pub const STAGED: &str = "replace-staged";
/// Ledger mode of a replace's parts once the publish transaction committed.
pub const PUBLISHED: &str = "published";

/// Where a part's rows go, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadInto<'a> {
    /// Plain inserts into the target table (`create`, `append`).
    Table,
    /// Insert, or update the row with the same primary key (`upsert`).
    Upsert,
    /// Into this staging table (same columns as the target, in its schema), published
    /// later in one transaction (`replace`).
    Staging(&'a str),
}

/// Whether a table name has the shape of a replace's staging table, `_ferry_<8 hex>_<8 hex>`.
pub fn is_staging_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("_ferry_") else {
        return false;
    };
    let hex = |s: &str| s.len() == 8 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    matches!(rest.split_once('_'), Some((a, b)) if hex(a) && hex(b))
}

/// How a part load ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome {
    Loaded(u64),
    /// The ledger already had it (another run committed it meanwhile).
    AlreadyLoaded,
}

/// A database that bundles are loaded into.
pub trait Target: Send {
    fn engine(&self) -> &'static str;

    /// Why a column of this canonical type cannot be loaded here, if it cannot (checked in
    /// pre-flight, before anything is written).
    fn refuses(&self, _ty: &ColumnType) -> Option<&'static str> {
        None
    }

    /// Once, after verification and before any part: what parallel loaders must not race to
    /// create (the ledger, schemas, enum types).
    fn prepare(&mut self, _tables: &[(String, &TableDef)], _same_engine: bool) -> Result<()> {
        Ok(())
    }

    /// Takes the run-level lock: one import of a bundle into this target at a time. A
    /// second import gets a temporary failure (exit 75) naming who holds it.
    fn lock_run(&mut self, _bundle_id: &str) -> Result<()> {
        Ok(())
    }

    /// Another connection to the same target, for parallel import (`--jobs`); `None`
    /// when the engine has a single writer.
    fn worker(&self) -> Result<Option<Box<dyn Target>>> {
        Ok(None)
    }

    /// The ledger's record of a bundle (empty when no ledger exists yet).
    fn ledger_state(&mut self, bundle_id: &str) -> Result<LedgerState>;

    /// Rows in a table, `None` when it does not exist.
    fn table_rows(&mut self, name: &str, table: &TableDef) -> Result<Option<u64>>;

    /// What the connection's user may not do that this import needs (create tables in a
    /// schema, insert into or delete from an existing table), one line each, for
    /// pre-flight; empty when the engine has no privileges to check or all are there.
    fn missing_privileges(
        &mut self,
        _tables: &[(String, &TableDef)],
        _mode: crate::import::Mode,
    ) -> Result<Vec<String>> {
        Ok(vec![])
    }

    /// The columns of an existing table, for pre-flight (missing columns, NOT NULL columns
    /// the bundle cannot fill); `None` when the table does not exist.
    fn existing_columns(
        &mut self,
        name: &str,
        table: &TableDef,
    ) -> Result<Option<Vec<crate::preflight::TargetColumn>>>;

    /// The primary key columns of an existing table (empty when it has none), `None` when
    /// the table does not exist. Upsert's pre-flight compares them with the bundle's key.
    fn primary_key(&mut self, name: &str, table: &TableDef) -> Result<Option<Vec<String>>>;

    /// Loads one part in one transaction with its ledger row; the ledger and the table are
    /// created inside that transaction when missing (`same_engine` recreates declared
    /// types), so a failed first part leaves nothing behind. `before_commit` runs last,
    /// after every row is in: it authenticates the rest of the part, and its error rolls back.
    /// `into` says where the rows go: the table itself, an upsert by primary key, or a
    /// replace's staging table (created from the catalog when missing).
    #[allow(clippy::too_many_arguments)]
    fn load_part(
        &mut self,
        name: &str,
        table: &TableDef,
        same_engine: bool,
        into: LoadInto<'_>,
        ledger: &LedgerEntry,
        batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
        before_commit: &mut dyn FnMut(u64) -> Result<()>,
    ) -> Result<LoadOutcome>;

    /// Replace mode, once every part of a table is staged: in one transaction, create the
    /// table when missing, take its write lock, delete its rows, copy the staging table's
    /// rows in and mark the table's `replace-staged` ledger rows of this bundle `published`;
    /// `before_commit` runs just before COMMIT. Readers see the old rows until the commit
    /// and the new ones after. The staging table is dropped after the commit.
    /// `newer_than`: (source id, sequence) of this bundle; when another bundle of that source
    /// with a higher sequence has published into the table meanwhile, the publish is refused
    /// inside the transaction (see [`newer_published`]). `None` with `--allow-replay`.
    #[allow(clippy::too_many_arguments)]
    fn publish(
        &mut self,
        name: &str,
        table: &TableDef,
        same_engine: bool,
        staging: &str,
        bundle_id: &str,
        newer_than: Option<(&str, u64)>,
        before_commit: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()>;

    /// Names of the replace staging tables (`_ferry_<8 hex>_<8 hex>`) in the schemas these
    /// tables load into.
    fn staging_tables(&mut self, tables: &[(String, &TableDef)]) -> Result<Vec<String>>;

    /// Drops a staging table (in `table`'s target schema) if it exists.
    fn drop_staging(&mut self, staging: &str, table: &TableDef) -> Result<()>;

    /// Forgets a staging table whose contents cannot be trusted: in one transaction where
    /// the engine allows, deletes the table's `replace-staged` ledger rows of this bundle and
    /// drops the staging table, so a re-run loads the table again.
    fn discard_staging(
        &mut self,
        name: &str,
        staging: &str,
        table: &TableDef,
        bundle_id: &str,
    ) -> Result<()>;

    /// The highest sequence imported from `source_id`, and the bundle that carried it.
    fn last_sequence(&mut self, source_id: &str) -> Result<Option<(u64, String)>>;

    /// After all parts of a table are in: primary key (where not created with the table),
    /// unique and secondary indexes.
    fn finish_table(&mut self, name: &str, table: &TableDef) -> Result<()>;

    /// After every table: foreign keys whose referenced tables were imported too. Returns
    /// notes on what was not added.
    fn finish_all(&mut self, _tables: &[(String, &TableDef)]) -> Result<Vec<String>> {
        Ok(vec![])
    }
}

/// Opens a target database by URL (SQLite creates the file when missing). `schema` is
/// PostgreSQL's target schema (default `public`).
pub fn open(url: &str, schema: Option<&str>) -> Result<Box<dyn Target>> {
    if url.starts_with("sqlite:") {
        return Ok(Box::new(sqlite::SqliteTarget::open(url)?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Box::new(postgres::PgTarget::open(url, schema)?));
    }
    if url.starts_with("mysql://") || url.starts_with("mariadb://") {
        return Ok(Box::new(mysql::MyTarget::open(url)?));
    }
    let scheme = url.split(':').next().unwrap_or(url);
    Err(Error::Usage(format!(
        "{scheme}: not a target ferry knows (sqlite://PATH, postgres://…, mysql://…)"
    )))
}

/// The ledger query that finds a newer published bundle of the same source in a table
/// (placeholders: target table, source id, published mode, this bundle id, this sequence;
/// `{ph}` numbering is the engine's).
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

pub fn newer_published_sql(ledger: &str, ph: [&str; 5]) -> String {
    format!(
        "SELECT sequence, bundle_id FROM {ledger} WHERE target_table = {} AND source_id = {} \
         AND mode = {} AND bundle_id <> {} AND sequence > {} ORDER BY sequence DESC LIMIT 1",
        ph[0], ph[1], ph[2], ph[3], ph[4]
    )
}

/// Replace: an older bundle must not publish over a newer one of the same source that
/// published while it ran (RELIABILITY E53). The table keeps the newer rows.
pub fn newer_published(name: &str, sequence: u64, newer: u64, newer_bundle: &str) -> Error {
    Error::Data(format!(
        "table {name}: bundle {newer_bundle} (sequence {newer}) from the same source published into it while \
         this import ran, and this bundle is older (sequence {sequence}): {name} keeps the newer rows and this \
         bundle's parts stay staged; re-run with --allow-replay to publish the older rows anyway"
    ))
}
