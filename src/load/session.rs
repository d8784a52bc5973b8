//! What the load protocol needs from an engine: a handful of primitives (transactions,
//! one parameterised statement, a text query, table creation, the bulk path) and the few
//! facts about its SQL dialect the protocol's own statements depend on.

use arrow::record_batch::RecordBatch;

use crate::Result;
use crate::types::TableDef;

/// One value bound to a statement parameter.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

/// How the engine numbers statement parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholders {
    /// `$1, $2, …` (PostgreSQL)
    Dollar,
    /// `?, ?, …` (MySQL)
    Question,
    /// `?1, ?2, …` (SQLite)
    QuestionNumbered,
}

/// The kind of a ledger column; each dialect names its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerKind {
    /// An ASCII string of exactly this many characters (ids, hashes).
    Fixed(u16),
    /// An ASCII string of at most this many characters.
    Ascii(u16),
    /// A Unicode string of at most this many characters (table names).
    Unicode(u16),
    /// A 64-bit integer.
    BigInt,
    /// When the row was written, set by the database.
    Now,
}

/// The facts about an engine's SQL the protocol's statements depend on.
#[derive(Debug)]
pub struct Dialect {
    pub placeholders: Placeholders,
    /// Whether DDL takes part in transactions. Without it (MySQL), the ledger and the table
    /// are created before a part's transaction, so a failed first part leaves an empty table.
    pub transactional_ddl: bool,
    /// The type a ledger column of this kind has here.
    pub ledger_type: fn(LedgerKind) -> String,
    /// Appended to the ledger's `CREATE TABLE` (table options).
    pub ledger_options: &'static str,
    /// Inserts one row unless its primary key is taken: (`INSERT … INTO` words, suffix).
    pub insert_ignoring_conflict: (&'static str, &'static str),
    /// The expression a ledger row's `loaded_at` takes (`None`: the column's default).
    pub now: Option<&'static str>,
    /// An expression rendered as text, for [`Session::query_text`].
    pub as_text: fn(&str) -> String,
    /// An identifier quoted.
    pub quote: fn(&str) -> String,
}

impl Dialect {
    /// The n-th parameter (from 1).
    pub fn ph(&self, n: usize) -> String {
        match self.placeholders {
            Placeholders::Dollar => format!("${n}"),
            Placeholders::Question => "?".into(),
            Placeholders::QuestionNumbered => format!("?{n}"),
        }
    }

    /// Parameters `from..from+count`, comma-separated.
    pub fn phs(&self, from: usize, count: usize) -> String {
        (from..from + count)
            .map(|n| self.ph(n))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

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

/// What one bulk load wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows written (inserted, or for an upsert inserted or updated).
    pub rows: u64,
    /// Upsert: of `rows`, those whose primary key the table already had (updated, whether
    /// any value changed or not); the others were inserted. `None` for plain inserts, and
    /// where the engine cannot tell.
    pub updated: Option<u64>,
}

impl Written {
    /// Plain inserts.
    pub fn inserted(rows: u64) -> Self {
        Written {
            rows,
            updated: None,
        }
    }
}

/// A foreign key of the target that references a table a replace publishes (found in the
/// target's own catalog, wherever the referencing table came from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The constraint's name.
    pub constraint: String,
    /// The referencing table as a statement writes it (quoted, qualified where the engine
    /// has schemas), and as a message names it.
    pub child_sql: String,
    pub child: String,
    /// The referencing columns, and the referenced table's columns they point at, in order.
    pub columns: Vec<String>,
    pub ref_columns: Vec<String>,
    /// The referenced table as a statement writes it.
    pub parent_sql: String,
    /// The engine's own text of the constraint, for recreating it exactly (PostgreSQL
    /// `pg_get_constraintdef`); empty where the engine never drops it.
    pub definition: String,
}

/// An engine's connection, as the load protocol drives it. Every method runs exactly one
/// statement (or the engine's bulk path); none takes SQL text from a bundle.
pub trait Session {
    fn dialect(&self) -> &'static Dialect;

    /// Starts a write transaction (SQLite: `BEGIN IMMEDIATE`, so writers queue here).
    fn begin(&mut self) -> Result<()>;
    fn commit(&mut self) -> Result<()>;
    /// Best effort: an error here means the connection is gone, and the server rolls back.
    fn rollback(&mut self);

    /// One statement with bound parameters; returns the rows it affected. `what` names the
    /// step for error messages ("writing the ledger").
    fn execute(&mut self, what: &str, sql: &str, params: &[Param<'_>]) -> Result<u64>;

    /// One query whose columns are all rendered as text ([`Dialect::as_text`]).
    fn query_text(
        &mut self,
        what: &str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Vec<Option<String>>>>;

    /// The ledger table, quoted (and schema-qualified where the engine has schemas).
    fn ledger_table(&self) -> String;

    /// Creates the ledger when missing (from [`super::ledger::create_sql`]).
    fn ensure_ledger(&mut self) -> Result<()>;

    /// Whether the ledger exists (reads before any import made it).
    fn ledger_exists(&mut self) -> Result<bool>;

    /// A bundle table `name` as it is written in a statement here (quoted, qualified).
    fn table_sql(&self, name: &str, table: &TableDef) -> String;

    /// How the ledger names table `name` (its `target_table`): unique per table across
    /// the whole target, so engines with schemas qualify it (`a.t` and `b.t` are two
    /// tables whose parts must never be published or discarded together).
    fn ledger_key(&self, name: &str, _table: &TableDef) -> String {
        name.to_string()
    }

    /// Creates `name` from the catalog when missing (`same_engine` recreates declared types;
    /// a `staging` table is one plain table even when the source was partitioned).
    fn create_table(
        &mut self,
        name: &str,
        table: &TableDef,
        same_engine: bool,
        staging: bool,
    ) -> Result<()>;

    /// The engine's bulk path: one part's batches into `dest` (a table with `table`'s
    /// columns; `upsert` by primary key); returns the rows written (and for an upsert how
    /// many of them updated a row). A row the target refuses (a constraint, a value its
    /// column cannot hold) is [`crate::Error::RowRefused`], and only such a row: under
    /// `--on-error skip` the protocol sets exactly those rows aside, so any other failure
    /// (a lost connection, a missing column, a full disk) must be another variant. Under
    /// skip it is called once per chunk of a part, inside a savepoint.
    fn bulk_load(
        &mut self,
        dest: &str,
        table: &TableDef,
        batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
        part: &str,
        upsert: bool,
    ) -> Result<Written>;

    /// After a [`Session::bulk_load`] that failed with [`crate::Error::RowRefused`]: the row
    /// of that load (from 1) the target refused, when the engine knows it for certain: a
    /// refusal of the row by itself or against the rows before it (a CHECK, NOT NULL, a
    /// value its column cannot hold, a duplicate key), not one found once every row was in
    /// (a foreign key checked at the end of the statement). `None` when it cannot tell; the
    /// protocol then halves the rows to find it (`--on-error skip`).
    fn refused_row(&self) -> Option<u64> {
        None
    }

    /// Words after an `INSERT INTO t (cols)` that let it write explicit values into a
    /// column that fills itself (PostgreSQL's ` OVERRIDING SYSTEM VALUE` for `GENERATED
    /// ALWAYS AS IDENTITY`); empty where plain inserts may.
    fn insert_overriding(&self) -> &'static str {
        ""
    }

    /// Inside a publish's transaction, before its first statement: takes the table's write
    /// lock where the engine needs an explicit one, and returns the words between
    /// `DELETE FROM` and the table (PostgreSQL's `ONLY ` for an inheritance parent).
    fn lock_for_replace(&mut self, _table_sql: &str) -> Result<&'static str> {
        Ok("")
    }

    /// Inside a part's transaction, first: serialises loaders of the same part where the
    /// ledger's key alone would not (default: nothing to do).
    fn lock_part(&mut self, _key: &str) -> Result<()> {
        Ok(())
    }

    /// The target's foreign keys that reference table `name` (from any table, itself
    /// included); empty when the table does not exist or has none.
    fn referencing(&mut self, _name: &str, _table: &TableDef) -> Result<Vec<Reference>> {
        Ok(vec![])
    }

    /// Inside a publish's transaction, before its `DELETE`: keeps `refs` from checking or
    /// acting on (`ON DELETE CASCADE`) the rows being replaced, until
    /// [`Session::restore_references`] in the same transaction. The default does nothing:
    /// right for an engine whose session does not enforce foreign keys while it loads.
    fn suspend_references(&mut self, _refs: &[Reference]) -> Result<()> {
        Ok(())
    }

    /// Inside the publish's transaction, after the new rows are in and checked against
    /// `refs`: puts back what [`Session::suspend_references`] took away. `group`: the
    /// published tables, as statements write them (an engine that suspended every check
    /// checks their own keys here too).
    fn restore_references(&mut self, _refs: &[Reference], _group: &[String]) -> Result<()> {
        Ok(())
    }

    /// Before a publish's transaction (`true`) and after it, committed or not (`false`):
    /// what must be set outside a transaction for [`Session::suspend_references`] (SQLite's
    /// `PRAGMA foreign_keys`, which a transaction ignores). Default: nothing.
    fn references_off(&mut self, _off: bool) -> Result<()> {
        Ok(())
    }

    /// A failed transaction's error on table `name`, with what the engine can add (who
    /// holds a lock on it).
    fn explain(&mut self, e: crate::Error, _name: &str, _table: &TableDef) -> crate::Error {
        e
    }
}
