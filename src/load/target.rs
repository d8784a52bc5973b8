//! What an engine's loader offers besides the [`Session`] primitives: pre-flight facts
//! about the target (privileges, existing tables and keys), the run lock, parallel workers,
//! and the structure built after the rows (keys, indexes, foreign keys).

use crate::Result;
use crate::types::{ColumnType, TableDef};

use super::Session;

/// A database that bundles are loaded into.
pub trait Target: Session + Send {
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

    /// Once, before the first part and before [`Target::worker`]: picks the engine's bulk
    /// path for this import (its workers take the same) and says which and why, for the
    /// summary (`None`: the engine has one path). `inserts_only`: why the import needs the
    /// row-by-row path (upsert, `--on-error skip`), if it does.
    fn choose_load_path(&mut self, _inserts_only: Option<&str>) -> Result<Option<String>> {
        Ok(None)
    }

    /// `import --streams` when not given: connections one table's parts load over. One,
    /// unless the engine gains enough within ferry's memory bound: MySQL/MariaDB and
    /// PostgreSQL parse one LOAD DATA or COPY on one thread, and take
    /// [`crate::import::DEFAULT_STREAMS`] (README, "Parallel import", has the figures).
    fn default_streams(&self) -> usize {
        1
    }

    /// Another connection to the same target, for parallel import (`--jobs`); `None`
    /// when the engine has a single writer.
    fn worker(&self) -> Result<Option<Box<dyn Target>>> {
        Ok(None)
    }

    /// `import --trust-expressions`, allowed for a bundle signed by a `--trust`ed key:
    /// catalog expressions may call functions outside the allowlist (still parsed and
    /// rebuilt). Engines that replay no such expression ignore it.
    fn trust_expressions(&mut self) {}

    /// `--separate-copy`: keep this import's ledger apart from the database's one (PostgreSQL:
    /// in the `--target-schema` schema), so a bundle already loaded elsewhere in the database
    /// loads again as a deliberate second copy. Engines whose ledger is per database already
    /// refuse it.
    fn separate_ledger(&mut self) -> Result<()> {
        Err(crate::Error::Usage(
            "--separate-copy applies to PostgreSQL targets with --target-schema: elsewhere a database has one \
             ledger, and a second copy goes into another database"
                .into(),
        ))
    }

    /// A ledger other than the one this import uses, in the schema it loads into (a
    /// separate copy's, or an earlier ferry's): loading there under the database's ledger
    /// could load its bundles twice, so import refuses it without `--separate-copy`.
    fn other_ledger(&mut self) -> Result<Option<String>> {
        Ok(None)
    }

    /// Where the ledger is, for messages (`None` where there is one place only).
    fn ledger_place(&self) -> Option<String> {
        None
    }

    /// Rows in a table, `None` when it does not exist.
    fn table_rows(&mut self, name: &str, table: &TableDef) -> Result<Option<u64>>;

    /// What the connection's user may not do that this import needs (create tables in a
    /// schema, insert into or delete from an existing table), one line each, for
    /// pre-flight; empty when the engine has no privileges to check or all are there.
    fn missing_privileges(
        &mut self,
        _tables: &[(String, &TableDef)],
        _mode: crate::load::Mode,
    ) -> Result<Vec<String>> {
        Ok(vec![])
    }

    /// The columns of an existing table, for pre-flight (missing columns, NOT NULL columns
    /// the bundle cannot fill); `None` when the table does not exist.
    fn existing_columns(
        &mut self,
        name: &str,
        table: &TableDef,
    ) -> Result<Option<Vec<crate::load::TargetColumn>>>;

    /// The primary key columns of an existing table (empty when it has none), `None` when
    /// the table does not exist. Upsert's pre-flight compares them with the bundle's key.
    fn primary_key(&mut self, name: &str, table: &TableDef) -> Result<Option<Vec<String>>>;

    /// Names of the replace staging tables (`_ferry_<8 hex>_<8 hex>`) in the schemas these
    /// tables load into.
    fn staging_tables(&mut self, tables: &[(String, &TableDef)]) -> Result<Vec<String>>;

    /// After all parts of a table are in: primary key (where not created with the table),
    /// unique and secondary indexes.
    fn finish_table(&mut self, name: &str, table: &TableDef) -> Result<()>;

    /// After every table: foreign keys whose referenced tables were imported too. Returns
    /// notes on what was not added.
    fn finish_all(&mut self, _tables: &[(String, &TableDef)]) -> Result<Vec<String>> {
        Ok(vec![])
    }
}
