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

    /// Loads one part in one transaction with its ledger row; the ledger and the table are
    /// created inside that transaction when missing (`same_engine` recreates declared
    /// types), so a failed first part leaves nothing behind. `before_commit` runs last,
    /// after every row is in: it authenticates the rest of the part, and its error rolls back.
    #[allow(clippy::too_many_arguments)]
    fn load_part(
        &mut self,
        name: &str,
        table: &TableDef,
        same_engine: bool,
        ledger: &LedgerEntry,
        batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
        before_commit: &mut dyn FnMut(u64) -> Result<()>,
    ) -> Result<LoadOutcome>;

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
