//! SQLite loader: tables created from the catalog (the declared types themselves when the
//! bundle came from SQLite), rows inserted through one reused prepared statement, each
//! part in one `BEGIN IMMEDIATE` transaction with its ledger row.

use std::sync::LazyLock;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;
use regex::Regex;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OptionalExtension};

use crate::engines::sqlite::reader::{db_err, path_of, quote};
use crate::load::Target;
use crate::load::typemap::{ColumnMapping, TypeMap};
use crate::load::{self, Dialect, LedgerKind, Param, Placeholders, Session, Written};
use crate::types::{Column, ColumnType, TableDef, text};
use crate::{Error, Result};

use crate::load::ledger::LEDGER;

pub struct SqliteTarget {
    conn: Connection,
    /// Each imported table's name on the target by its name in the bundle (from
    /// `prepare`), for the foreign keys a same-engine import writes into CREATE TABLE.
    targets: Vec<(String, String)>,
    /// Tables created here with foreign keys, checked once the data is in.
    with_foreign_keys: Vec<String>,
    /// What was not recreated, for the summary.
    notes: Vec<String>,
    /// The database file (`:memory:` for none).
    path: String,
    /// The run lock: an exclusive lock on `<database>.ferry-lock`, held until the process
    /// ends (the kernel releases it when a killed importer dies, so it is never stale).
    run_lock: Option<std::fs::File>,
    /// The files this target created (the database, its lock file): removed again when
    /// the run ends with nothing written to the database (a failed or dry run), so a
    /// mistyped path leaves no empty database behind.
    created: Vec<std::path::PathBuf>,
    /// The row of the last bulk load the target refused ([`Session::refused_row`]).
    refused_row: Option<u64>,
}

impl Drop for SqliteTarget {
    fn drop(&mut self) {
        let Some(db) = self.created.first() else {
            return;
        };
        if db.as_os_str() != self.path.as_str() {
            return;
        }
        let empty = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .is_ok_and(|n| n == 0);
        if empty {
            for f in &self.created {
                let _ = std::fs::remove_file(f);
            }
            for suffix in ["-journal", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.path));
            }
        }
    }
}

/// Declared types ferry will write into DDL: a type name with an optional (p[,s]).
static DECLARED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^[A-Za-z][A-Za-z0-9_ ]{0,60}(\(\s*[+-]?[0-9]{1,5}\s*(,\s*[+-]?[0-9]{1,5}\s*)?\))?$",
    )
    .expect("regex")
});
/// Words that begin or belong to a column constraint in SQLite's grammar: the type name
/// ends at the first of them, so a declared type holding one (`INTEGER PRIMARY KEY ON
/// CONFLICT REPLACE`, `TEXT UNIQUE ON CONFLICT IGNORE`, `INTEGER AS (5)`, `TEXT REFERENCES
/// x`, `TEXT COLLATE x`, `INTEGER NOT NULL DEFAULT 5`) would add constraints to the column.
const NOT_TYPE_WORDS: &[&str] = &[
    "PRIMARY",
    "KEY",
    "UNIQUE",
    "CHECK",
    "REFERENCES",
    "FOREIGN",
    "DEFAULT",
    "COLLATE",
    "GENERATED",
    "ALWAYS",
    "AS",
    "STORED",
    "VIRTUAL",
    "ON",
    "CONFLICT",
    "NULL",
    "NOT",
    "CONSTRAINT",
    "AUTOINCREMENT",
    "AUTO_INCREMENT",
    "ASC",
    "DESC",
    "IGNORE",
    "REPLACE",
    "ABORT",
    "FAIL",
    "ROLLBACK",
    "DEFERRABLE",
    "INITIALLY",
    "DEFERRED",
    "IMMEDIATE",
    "MATCH",
    "CASCADE",
    "RESTRICT",
];

/// The declared type a same-engine import writes for `c`: the source's own, checked to be a
/// type name (words and an optional `(p[,s])`) and nothing that begins a constraint.
fn declared_type(table: &str, c: &Column) -> Result<String> {
    if c.source_type.is_empty() {
        return Ok(String::new());
    }
    let refuse = |why: &str| {
        Err(Error::Data(format!(
            "table {table}, column {}: declared type {:?} is not one ferry will put into DDL{why}",
            c.name, c.source_type
        )))
    };
    if !DECLARED.is_match(&c.source_type) {
        return refuse("");
    }
    if let Some(w) = c
        .source_type
        .split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
        .map(str::to_ascii_uppercase)
        .find(|w| NOT_TYPE_WORDS.contains(&w.as_str()))
    {
        return refuse(&format!(
            " ({w} begins a column constraint, not part of a type)"
        ));
    }
    Ok(c.source_type.clone())
}

/// Constant defaults: numbers, string literals, NULL, TRUE/FALSE, CURRENT_*.
static CONSTANT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^([+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?|'([^']|'')*'|NULL|TRUE|FALSE|CURRENT_TIMESTAMP|CURRENT_DATE|CURRENT_TIME|X'[0-9A-Fa-f]*')$")
        .expect("regex")
});

/// A constant default (a literal, NULL, TRUE/FALSE, CURRENT_*), written as it is.
pub(crate) fn is_constant_default(d: &str) -> bool {
    CONSTANT.is_match(d.trim())
}

/// Significant digits SQLite keeps when NUMERIC affinity turns text into a REAL.
pub const SQLITE_EXACT_DIGITS: u8 = 15;

/// The SQLite type a canonical type becomes on a cross-engine import.
pub fn sqlite_type(ty: &ColumnType) -> String {
    sqlite_mapping(ty).sql_type
}

/// [`sqlite_type`] with what differs from the canonical type (see [`crate::load::typemap`]).
fn sqlite_mapping(ty: &ColumnType) -> ColumnMapping {
    use ColumnMapping as M;
    let text_form = "PostgreSQL's text form, as text (--as-text)";
    match ty {
        ColumnType::Boolean => M::exact("BOOLEAN"),
        ColumnType::Int64 => M::exact("INTEGER"),
        ColumnType::Int16
        | ColumnType::Int32
        | ColumnType::UInt8
        | ColumnType::UInt16
        | ColumnType::UInt32 => M::mapped(
            "INTEGER",
            format!(
                "{} as a 64-bit INTEGER (reads back as bigint)",
                ty.describe()
            ),
        ),
        ColumnType::UInt64 => M::mapped(
            "INTEGER",
            "a 64-bit signed INTEGER: values above 2^63-1 are refused by row",
        ),
        ColumnType::Float32 => M::mapped(
            "REAL",
            "a 64-bit REAL (reads back as double); NaN is refused by row (SQLite stores NULL)",
        ),
        ColumnType::Float64 => M::mapped("REAL", "NaN is refused by row (SQLite stores NULL)"),
        // NUMERIC affinity keeps only 15 significant digits of a number it converts, so
        // wider decimals (and unconstrained numerics) go into TEXT-affinity columns whose
        // declared names ferry's SQLite reader maps back to decimals.
        ColumnType::Decimal128 { precision, scale } if *precision <= SQLITE_EXACT_DIGITS => {
            M::exact(format!("DECIMAL({precision},{scale})"))
        }
        ColumnType::Decimal128 { precision, scale } => {
            M::exact(format!("DECIMAL_TEXT({precision},{scale})"))
        }
        // Only with --as-text (pre-flight refuses it otherwise).
        ColumnType::Decimal256 { precision, scale } => M::mapped(
            format!("DECIMAL_TEXT({precision},{scale})"),
            "wider than 38 digits: its exact text, read back as an unconstrained numeric (--as-text)",
        ),
        ColumnType::NumericText => M::exact("NUMERIC_TEXT"),
        ColumnType::Utf8 => M::exact("TEXT"),
        ColumnType::Uuid => M::mapped("TEXT", "as its hyphenated text (SQLite has no UUID type)"),
        ColumnType::Json => M::exact("JSON"),
        ColumnType::Binary => M::exact("BLOB"),
        ColumnType::Date32 => M::exact("DATE"),
        ColumnType::Timestamp { utc: false } => M::exact("DATETIME"),
        ColumnType::Timestamp { utc: true } => M::exact("TIMESTAMPTZ"),
        ColumnType::Time64 => M::exact("TIME"),
        // Only with --as-text: PostgreSQL's text form (`-1 years +2 mons`, `{1,NULL,3}`).
        ColumnType::Interval | ColumnType::List { .. } => M::mapped("TEXT", text_form),
    }
}

/// The column of `table` written `INTEGER PRIMARY KEY AUTOINCREMENT`: SQLite's own
/// AUTOINCREMENT key, or another engine's counter on a lone integer key (any other lone
/// INTEGER key is the rowid).
fn autoincrement_column(table: &TableDef, same_engine: bool) -> Option<String> {
    match table.primary_key.as_slice() {
        [key] => table
            .columns
            .iter()
            .find(|c| c.name == *key)
            .filter(|c| {
                let kind = c.identity.map(|i| i.kind);
                let integer = sqlite_type(&c.ty) == "INTEGER"
                    && (!same_engine || c.source_type.eq_ignore_ascii_case("INTEGER"));
                integer
                    && (kind == Some(crate::types::IdentityKind::AutoIncrement)
                        || (!same_engine && kind.is_some()))
            })
            .map(|c| c.name.clone()),
        _ => None,
    }
}

/// The type a column is created as (see [`crate::load::typemap`]): on a same-engine import
/// the declared type itself, else what its canonical type maps to.
fn column_mapping(
    name: &str,
    table: &TableDef,
    c: &Column,
    same_engine: bool,
) -> Result<ColumnMapping> {
    if same_engine {
        return declared_type(name, c).map(ColumnMapping::exact);
    }
    let mut m = sqlite_mapping(&c.ty);
    if autoincrement_column(table, same_engine).as_ref() == Some(&c.name) {
        m.sql_type = "INTEGER".into();
    }
    if c.ty == ColumnType::Utf8 {
        let declared = c
            .declared_length()
            .map(|n| format!("declared length {n} not kept (SQLite enforces none)"));
        if let Some(note) = crate::load::typemap::notes::text_column(c, declared) {
            m.note = Some(note);
        }
    }
    Ok(m)
}

/// SQLite's type mapping ([`crate::load::typemap::TypeMap`]).
pub struct SqliteTypes;

impl TypeMap for SqliteTypes {
    fn column(&self, table: &TableDef, c: &Column, same_engine: bool) -> Result<ColumnMapping> {
        column_mapping(&table.name, table, c, same_engine)
    }

    fn refuses(&self, ty: &ColumnType) -> Option<&'static str> {
        refuses(ty)
    }
}

/// Why SQLite cannot take a canonical type, if it cannot (pre-flight).
fn refuses(ty: &ColumnType) -> Option<&'static str> {
    match ty {
        // With --as-text pre-flight lets these through and `binder` writes their text.
        ColumnType::Interval => Some("SQLite has no interval type"),
        ColumnType::List { .. } => Some("SQLite has no array type"),
        ColumnType::Decimal256 { .. } => Some(
            "SQLite holds decimals wider than 38 digits only as text, read back as unconstrained numeric",
        ),
        _ => None,
    }
}

impl SqliteTarget {
    /// `Some(())` when a table of this name exists.
    fn table_exists(&mut self, name: &str) -> Result<Option<()>> {
        self.conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?1",
                [name],
                |_| Ok(()),
            )
            .optional()
            .map_err(|e| db_err("looking up a table", e))
    }

    pub fn open(url: &str) -> Result<Self> {
        let path = path_of(url)?;
        let memory = path == ":memory:" || path.starts_with("file:");
        let mut created: Vec<std::path::PathBuf> = [path.clone(), format!("{path}.ferry-lock")]
            .into_iter()
            .map(std::path::PathBuf::from)
            .filter(|p| !memory && std::fs::symlink_metadata(p).is_err())
            .collect();
        let conn = Connection::open(&path)
            .map_err(|e| db_err(&format!("cannot open or create {path}"), e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| db_err("busy_timeout", e))?;
        // One import at a time: a second one fails at once, naming the first, instead of
        // waiting on SQLite's write lock.
        let run_lock = take_run_lock(&path)?;
        // Fail now, before any verification work, if the file is not a writable database.
        conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .map_err(|e| db_err(&format!("{path} is not a writable SQLite database"), e))?;
        // Foreign keys are written into the tables (SQLite cannot add them later) but not
        // enforced while loading: a child's part may come before its parent's, and a
        // replace's DELETE must not cascade into other tables. The application's own
        // connections turn them on (`PRAGMA foreign_keys = ON`) as they did on the source.
        conn.execute_batch("PRAGMA foreign_keys = OFF")
            .map_err(|e| db_err("PRAGMA foreign_keys", e))?;
        // Only a database this run created is ever removed (its lock file with it).
        if created
            .first()
            .is_some_and(|p| p.as_os_str() != path.as_str())
        {
            created.clear();
        }
        Ok(SqliteTarget {
            conn,
            targets: Vec::new(),
            with_foreign_keys: Vec::new(),
            notes: Vec::new(),
            path,
            run_lock,
            created,
            refused_row: None,
        })
    }

    /// Creates a table from the catalog when missing. On a same-engine import it carries
    /// what SQLite can only have from its CREATE TABLE: generated columns, non-constant
    /// defaults, CHECKs and foreign keys with their actions (each expression rebuilt through
    /// `expr`; one outside its rules is named in the notes). A `staging` table (a replace's)
    /// gets no CHECK or foreign key: it holds the bundle's values until they are published.
    fn create_from_catalog(
        &mut self,
        name: &str,
        table: &TableDef,
        same_engine: bool,
        staging: bool,
    ) -> Result<()> {
        if self.table_exists(name)?.is_some() {
            return Ok(());
        }
        use crate::expr::{Engine, Scope, rebuild};
        let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
        let scope = Scope {
            columns: &names,
            value: false,
            any_function: false,
        };
        // AUTOINCREMENT (SQLite's, or another engine's counter on a lone integer key) is
        // written on its column, as SQLite wants it; any other lone INTEGER key is the rowid.
        let autoincrement = autoincrement_column(table, same_engine);
        let mut defs = Vec::new();
        for c in &table.columns {
            let ty = column_mapping(name, table, c, same_engine)?.sql_type;
            let mut d = if ty.is_empty() {
                quote(&c.name)
            } else {
                format!("{} {ty}", quote(&c.name))
            };
            if !c.nullable {
                d.push_str(" NOT NULL");
            }
            if autoincrement.as_ref() == Some(&c.name) {
                d.push_str(" PRIMARY KEY AUTOINCREMENT");
            }
            if let Some(g) = c.generated.as_ref().filter(|_| same_engine) {
                // Only a same-engine bundle keeps it (import strips it otherwise); the load
                // writes no value into it.
                d.push_str(&crate::engines::generated_clause(
                    name,
                    &c.name,
                    g,
                    Engine::Sqlite,
                    scope,
                )?);
            } else if !same_engine
                && let Some(def) = c
                    .default
                    .as_deref()
                    .and_then(|d| crate::expr::portable_default(d, Engine::Sqlite, &c.ty))
            {
                // Across engines only defaults that mean the same travel.
                d.push_str(&format!(" DEFAULT ({})", def));
            } else if let Some(def) = c.default.as_deref().filter(|_| same_engine) {
                if is_constant_default(def) {
                    d.push_str(&format!(" DEFAULT {}", def.trim()));
                } else {
                    match rebuild(def, Engine::Sqlite, scope) {
                        Ok(e) => d.push_str(&format!(" DEFAULT ({})", e.sql)),
                        Err(why) => self.notes.push(format!(
                            "not carried: DEFAULT of {name}.{}: it {why}",
                            c.name
                        )),
                    }
                }
            }
            defs.push(d);
        }
        if !table.primary_key.is_empty() && autoincrement.is_none() {
            let pk: Vec<String> = table.primary_key.iter().map(|c| quote(c)).collect();
            defs.push(format!("PRIMARY KEY ({})", pk.join(", ")));
        }
        if same_engine && !staging {
            for chk in &table.checks {
                match rebuild(&chk.expr, Engine::Sqlite, scope) {
                    Ok(e) => {
                        defs.push(format!("CONSTRAINT {} CHECK ({})", quote(&chk.name), e.sql))
                    }
                    Err(why) => self.notes.push(format!(
                        "not carried: CHECK {} on {name}: it {why}",
                        chk.name
                    )),
                }
            }
        }
        let mut has_fk = false;
        for fk in table
            .foreign_keys
            .iter()
            .filter(|_| same_engine && !staging)
        {
            let parent = self
                .targets
                .iter()
                .find(|(source, _)| source.eq_ignore_ascii_case(&fk.ref_table))
                .map(|(_, target)| target.clone());
            let Some(parent) = parent else {
                self.notes.push(format!(
                    "foreign key {} of {name} not added: {} is not in this import",
                    fk.name, fk.ref_table
                ));
                continue;
            };
            let cols: Vec<String> = fk.columns.iter().map(|c| quote(c)).collect();
            let refs: Vec<String> = fk.ref_columns.iter().map(|c| quote(c)).collect();
            defs.push(format!(
                "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}){}",
                quote(&fk.name),
                cols.join(", "),
                quote(&parent),
                refs.join(", "),
                fk.actions_sql()
            ));
            has_fk = true;
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (\n  {}\n)",
            quote(name),
            defs.join(",\n  ")
        );
        self.conn
            .execute(&sql, [])
            .map_err(|e| db_err(&format!("creating table {name}"), e))?;
        if has_fk && !self.with_foreign_keys.iter().any(|t| t == name) {
            self.with_foreign_keys.push(name.to_string());
        }
        Ok(())
    }

    /// Inserts one part's rows, one prepared statement per row. An upsert inserts with
    /// `ON CONFLICT (pk) DO NOTHING` and, when that changed nothing (the key is there),
    /// updates the row by its key with the same bound values: the same outcome as
    /// [`upsert_clause`], with the inserted and updated rows counted exactly.
    fn insert_rows(
        &mut self,
        name: &str,
        table: &TableDef,
        batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
        part: &str,
        upsert: bool,
    ) -> Result<Written> {
        let cols: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote(name),
            cols.join(", "),
            marks.join(", ")
        );
        let update = if upsert {
            let pk: Vec<String> = table.primary_key.iter().map(|c| quote(c)).collect();
            sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", pk.join(", ")));
            update_sql(name, table)
        } else {
            None
        };
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .map_err(|e| db_err(&format!("preparing insert into {name}"), e))?;
        let mut update = match &update {
            Some(u) => Some(
                self.conn
                    .prepare_cached(u)
                    .map_err(|e| db_err(&format!("preparing update of {name}"), e))?,
            ),
            None => None,
        };
        let (mut done, mut updated) = (0u64, 0u64);
        let refused = |at: u64, e: rusqlite::Error| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Error::RowRefused(format!(
                    "table {name:?}, row {at} of part {part}: the target refused the row: {e}; nothing from this part was committed"
                ))
            }
            other => db_err(
                &format!("inserting into {name}, row {at} of part {part}"),
                other,
            ),
        };
        for batch in batches {
            let batch = batch?;
            // The batch has the catalog's shape (checked where import reads the part).
            let binders = table
                .columns
                .iter()
                .zip(batch.columns())
                .map(|(c, a)| binder(a, &c.ty))
                .collect::<Result<Vec<_>>>()?;
            for row in 0..batch.num_rows() {
                let at = done + row as u64 + 1;
                self.refused_row = Some(at);
                let value = |i: usize| {
                    binders[i](row).map_err(|why| {
                        Error::RowRefused(format!(
                            "table {name:?}, column {:?}, row {at} of part {part}: {why}; nothing from this part was committed",
                            table.columns[i].name
                        ))
                    })
                };
                for i in 0..binders.len() {
                    stmt.raw_bind_parameter(i + 1, value(i)?)
                        .map_err(|e| db_err("binding a value", e))?;
                }
                let n = stmt.raw_execute().map_err(|e| refused(at, e))?;
                if n == 0 && upsert {
                    // The key is there: the row is updated (or, every column in the key,
                    // left as it is).
                    updated += 1;
                    if let Some(u) = update.as_mut() {
                        for i in 0..binders.len() {
                            u.raw_bind_parameter(i + 1, value(i)?)
                                .map_err(|e| db_err("binding a value", e))?;
                        }
                        u.raw_execute().map_err(|e| refused(at, e))?;
                    }
                }
            }
            done += batch.num_rows() as u64;
        }
        Ok(Written {
            rows: done,
            updated: upsert.then_some(updated),
        })
    }
}

/// `UPDATE t SET c = ?i, … WHERE k = ?j AND …` with the parameters numbered as the
/// insert's (one per column, in table order); `None` when every column is in the key.
fn update_sql(name: &str, table: &TableDef) -> Option<String> {
    let mark = |c: &str| {
        table
            .columns
            .iter()
            .position(|x| x.name == c)
            .map(|i| format!("{} = ?{}", quote(c), i + 1))
    };
    let set: Vec<String> = table
        .columns
        .iter()
        .filter(|c| !table.primary_key.contains(&c.name))
        .filter_map(|c| mark(&c.name))
        .collect();
    let key: Vec<String> = table.primary_key.iter().filter_map(|k| mark(k)).collect();
    if set.is_empty() || key.len() != table.primary_key.len() {
        return None;
    }
    Some(format!(
        "UPDATE {} SET {} WHERE {}",
        quote(name),
        set.join(", "),
        key.join(" AND ")
    ))
}

/// `ON CONFLICT (pk) DO UPDATE SET c = excluded.c, …` (DO NOTHING when every column is
/// in the key). Public for SQLite-like engines outside the crate (the tests' toy engine).
pub fn upsert_clause(table: &TableDef) -> String {
    let pk: Vec<String> = table.primary_key.iter().map(|c| quote(c)).collect();
    let set: Vec<String> = table
        .columns
        .iter()
        .filter(|c| !table.primary_key.contains(&c.name))
        .map(|c| format!("{0} = excluded.{0}", quote(&c.name)))
        .collect();
    if set.is_empty() {
        format!(" ON CONFLICT ({}) DO NOTHING", pk.join(", "))
    } else {
        format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            pk.join(", "),
            set.join(", ")
        )
    }
}

/// Turns row `i` of one column into the value bound to a SQLite statement, or says why not.
pub type Binder<'a> = Box<dyn Fn(usize) -> std::result::Result<ToSqlOutput<'a>, String> + 'a>;

fn int(v: i64) -> ToSqlOutput<'static> {
    ToSqlOutput::Owned(Value::Integer(v))
}

/// One conversion per column, chosen once per batch from the column's type. Public for
/// SQLite-like engines outside the crate (the tests' toy engine).
pub fn binder<'a>(a: &'a ArrayRef, ty: &ColumnType) -> Result<Binder<'a>> {
    macro_rules! ints {
        ($t:ty) => {{
            let x = a.as_primitive::<$t>();
            Box::new(move |i| Ok(int(i64::from(x.value(i)))))
        }};
    }
    let f: Binder<'a> = match ty {
        ColumnType::Boolean => {
            let x = a.as_boolean();
            Box::new(move |i| Ok(int(i64::from(x.value(i)))))
        }
        ColumnType::Int16 => ints!(Int16Type),
        ColumnType::Int32 => ints!(Int32Type),
        ColumnType::Int64 => ints!(Int64Type),
        ColumnType::UInt8 => ints!(UInt8Type),
        ColumnType::UInt16 => ints!(UInt16Type),
        ColumnType::UInt32 => ints!(UInt32Type),
        ColumnType::UInt64 => {
            let x = a.as_primitive::<UInt64Type>();
            Box::new(move |i| {
                i64::try_from(x.value(i))
                    .map(int)
                    .map_err(|_| format!("{} is above SQLite's largest integer", x.value(i)))
            })
        }
        ColumnType::Float32 | ColumnType::Float64 => {
            let get: Box<dyn Fn(usize) -> f64 + 'a> = if matches!(ty, ColumnType::Float32) {
                let x = a.as_primitive::<Float32Type>();
                Box::new(move |i| f64::from(x.value(i)))
            } else {
                let x = a.as_primitive::<Float64Type>();
                Box::new(move |i| x.value(i))
            };
            Box::new(move |i| {
                let v = get(i);
                if v.is_nan() {
                    Err("NaN cannot be stored in SQLite (it would become NULL)".into())
                } else {
                    Ok(ToSqlOutput::Owned(Value::Real(v)))
                }
            })
        }
        ColumnType::Decimal128 { scale, .. } => {
            let x = a.as_primitive::<Decimal128Type>();
            let s = *scale;
            // NUMERIC affinity turns the exact text into the INTEGER or REAL SQLite had.
            Box::new(move |i| {
                Ok(ToSqlOutput::Owned(Value::Text(text::format_decimal(
                    x.value(i),
                    s,
                ))))
            })
        }
        ColumnType::NumericText | ColumnType::Utf8 | ColumnType::Json => {
            let x = a.as_string::<i32>();
            Box::new(move |i| Ok(ToSqlOutput::Borrowed(ValueRef::Text(x.value(i).as_bytes()))))
        }
        ColumnType::Binary => {
            let x = a.as_binary::<i32>();
            Box::new(move |i| Ok(ToSqlOutput::Borrowed(ValueRef::Blob(x.value(i)))))
        }
        ColumnType::Uuid => {
            let x = a.as_fixed_size_binary();
            Box::new(move |i| {
                let u = uuid::Uuid::from_slice(x.value(i)).map_err(|e| e.to_string())?;
                Ok(ToSqlOutput::Owned(Value::Text(u.hyphenated().to_string())))
            })
        }
        ColumnType::Date32 => {
            let x = a.as_primitive::<Date32Type>();
            Box::new(move |i| {
                Ok(ToSqlOutput::Owned(Value::Text(text::format_date(
                    x.value(i),
                ))))
            })
        }
        ColumnType::Timestamp { utc } => {
            let x = a.as_primitive::<TimestampMicrosecondType>();
            let suffix = if *utc { "+00:00" } else { "" };
            Box::new(move |i| {
                Ok(ToSqlOutput::Owned(Value::Text(format!(
                    "{}{suffix}",
                    text::format_timestamp(x.value(i))
                ))))
            })
        }
        ColumnType::Time64 => {
            let x = a.as_primitive::<Time64MicrosecondType>();
            Box::new(move |i| {
                let us = x.value(i);
                let t = chrono::NaiveTime::from_num_seconds_from_midnight_opt(
                    u32::try_from(us / 1_000_000).map_err(|_| "time out of range".to_string())?,
                    u32::try_from((us % 1_000_000) * 1000)
                        .map_err(|_| "time out of range".to_string())?,
                )
                .ok_or("time out of range")?;
                Ok(ToSqlOutput::Owned(Value::Text(
                    t.format("%H:%M:%S%.f").to_string(),
                )))
            })
        }
        // Only with --as-text (pre-flight refuses them otherwise): PostgreSQL's text form,
        // into TEXT (intervals, arrays) or DECIMAL_TEXT(p,s) columns.
        ColumnType::Interval | ColumnType::List { .. } | ColumnType::Decimal256 { .. } => {
            let ty = ty.clone();
            Box::new(move |i| {
                text::pg_text(a.as_ref(), i, &ty).map(|t| ToSqlOutput::Owned(Value::Text(t)))
            })
        }
    };
    Ok(Box::new(move |i| {
        if a.is_null(i) {
            Ok(ToSqlOutput::Owned(Value::Null))
        } else {
            f(i)
        }
    }))
}

/// How long a busy run lock is tried again before another import is reported.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Takes the run lock of a database: an exclusive lock on `<database>.ferry-lock`, held by
/// the returned file until the process ends (the kernel drops it when a killed importer
/// dies, so it is never stale). The file names the holder (pid, host, start time).
/// Public for SQLite-like engines outside the crate (the tests' toy engine).
pub fn take_run_lock(path: &str) -> Result<Option<std::fs::File>> {
    if path == ":memory:" || path.starts_with("file::memory:") {
        return Ok(None);
    }
    let lock_path = format!("{path}.ferry-lock");
    // Never through a symlink (it could point at any file the importer may write), and
    // created 0600.
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(|e| Error::io(format!("opening the import lock file {lock_path}"), e))?;
    // A busy lock is tried again for a moment before it is reported: a process that
    // another thread of this program is starting (fork, then exec) holds a copy of every
    // open descriptor, this lock's included, until its exec closes them, so a lock this
    // program just released can look held for a few milliseconds. A real holder is still
    // reported after LOCK_GRACE.
    let deadline = std::time::Instant::now() + LOCK_GRACE;
    let mut tried = f.try_lock();
    while matches!(tried, Err(std::fs::TryLockError::WouldBlock))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(25));
        tried = f.try_lock();
    }
    match tried {
        Ok(()) => {
            write_holder(&mut f, path, None)?;
            Ok(Some(f))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut who = String::new();
            let _ = std::io::Read::read_to_string(&mut f, &mut who);
            let who = if who.trim().is_empty() {
                "holder unknown".to_string()
            } else {
                who.trim().to_string()
            };
            Err(Error::Temporary(format!(
                "another import into {path} is running ({who}; lock file {lock_path}); \
                 nothing was written: run again when it has finished"
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(
            format!("locking the import lock file {lock_path}"),
            e,
        )),
    }
}

/// Writes who holds the run lock into the lock file.
fn write_holder(f: &mut std::fs::File, path: &str, bundle_id: Option<&str>) -> Result<()> {
    use std::io::{Seek, Write};
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown host".into());
    let mut who = format!(
        "pid {} on host {host}, since {}",
        std::process::id(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    if let Some(b) = bundle_id {
        who.push_str(&format!(", bundle {b}"));
    }
    f.set_len(0)
        .and_then(|()| f.rewind())
        .and_then(|()| f.write_all(who.as_bytes()))
        .and_then(|()| f.flush())
        .map_err(|e| Error::io(format!("writing the import lock file of {path}"), e))
}

/// SQLite's dialect: every ledger column is TEXT or INTEGER; `loaded_at` is written as
/// RFC 3339 text (0.1 ledgers have no default on it).
static DIALECT: Dialect = Dialect {
    placeholders: Placeholders::QuestionNumbered,
    transactional_ddl: true,
    ledger_type: |k| match k {
        LedgerKind::BigInt => "INTEGER".into(),
        _ => "TEXT".into(),
    },
    ledger_options: "",
    insert_ignoring_conflict: ("INSERT OR IGNORE INTO", ""),
    now: Some("strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')"),
    as_text: |e| format!("CAST({e} AS TEXT)"),
    quote,
};

fn bind(params: &[Param<'_>]) -> Vec<Value> {
    params
        .iter()
        .map(|p| match p {
            Param::Text(t) => Value::Text((*t).to_string()),
            Param::Int(i) => Value::Integer(*i),
        })
        .collect()
}

/// A statement's error: a constraint the target holds refused a row (data, exit 65), or
/// the database's own error.
fn statement_err(what: &str, e: rusqlite::Error) -> Error {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Error::Data(format!("{what}: the target refused a row: {e}"))
        }
        _ => db_err(what, e),
    }
}

impl Session for SqliteTarget {
    fn dialect(&self) -> &'static Dialect {
        &DIALECT
    }

    fn begin(&mut self) -> Result<()> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| db_err("starting a transaction", e))
    }

    fn commit(&mut self) -> Result<()> {
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| db_err("committing", e))
    }

    fn rollback(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    fn execute(&mut self, what: &str, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        self.conn
            .execute(sql, rusqlite::params_from_iter(bind(params)))
            .map(|n| n as u64)
            .map_err(|e| statement_err(what, e))
    }

    fn query_text(
        &mut self,
        what: &str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Vec<Option<String>>>> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| db_err(what, e))?;
        let n = stmt.column_count();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(bind(params)), |r| {
                (0..n).map(|i| r.get::<_, Option<String>>(i)).collect()
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<Vec<Option<String>>>>>())
            .map_err(|e| db_err(what, e))?;
        Ok(rows)
    }

    fn referencing(&mut self, name: &str, _table: &TableDef) -> Result<Vec<load::Reference>> {
        // SQLite keeps no constraint names: a key is named by its columns.
        let rows = self.query_text(
            "looking up the foreign keys that reference a table",
            "SELECT m.name, CAST(f.id AS TEXT), f.\"from\", f.\"to\" \
             FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
             WHERE m.type = 'table' AND f.\"table\" = ?1 COLLATE NOCASE ORDER BY m.name, f.id, f.seq",
            &[Param::Text(name)],
        )?;
        // A key without target columns references the primary key.
        let pk = self.query_text(
            "reading a primary key",
            "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk",
            &[Param::Text(name)],
        )?;
        let pk: Vec<String> = pk
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect();
        let mut refs: Vec<(String, load::Reference)> = Vec::new();
        for r in rows {
            let get = |i: usize| r.get(i).cloned().flatten();
            let (child, id) = (get(0).unwrap_or_default(), get(1).unwrap_or_default());
            let key = format!("{child}\0{id}");
            if refs.last().is_none_or(|(k, _)| *k != key) {
                refs.push((
                    key,
                    load::Reference {
                        constraint: String::new(),
                        child_sql: quote(&child),
                        child,
                        columns: vec![],
                        ref_columns: vec![],
                        parent_sql: quote(name),
                        definition: String::new(),
                    },
                ));
            }
            if let Some((_, last)) = refs.last_mut() {
                last.columns.push(get(2).unwrap_or_default());
                let to = get(3);
                last.ref_columns.push(to.unwrap_or_else(|| {
                    pk.get(last.columns.len() - 1).cloned().unwrap_or_default()
                }));
            }
        }
        Ok(refs
            .into_iter()
            .map(|(_, mut r)| {
                r.constraint = format!("({}) REFERENCES {name}", r.columns.join(", "));
                r
            })
            .collect())
    }

    fn references_off(&mut self, off: bool) -> Result<()> {
        // The connection enforces foreign keys (the bundled SQLite's default), and an
        // ON DELETE action would fire inside the publish even with the checks deferred: a
        // publish runs with them off (a setting only outside a transaction), and
        // restore_references checks what they would have.
        let v = if off { "OFF" } else { "ON" };
        self.conn
            .execute_batch(&format!("PRAGMA foreign_keys = {v}"))
            .map_err(|e| db_err("setting foreign_keys", e))
    }

    fn restore_references(&mut self, refs: &[load::Reference], group: &[String]) -> Result<()> {
        // The keys of the published tables and of the tables referencing them, as the
        // checks that were off would have found them.
        let mut tables: Vec<&String> = group
            .iter()
            .chain(refs.iter().map(|r| &r.child_sql))
            .collect();
        tables.sort();
        tables.dedup();
        for t in tables {
            // The name as written in a statement, unquoted for the pragma's argument.
            let name = t
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .map_or_else(|| t.clone(), |n| n.replace("\"\"", "\""));
            let bad = self.query_text(
                "checking foreign keys",
                "SELECT \"table\", \"parent\" FROM pragma_foreign_key_check(?1) LIMIT 1",
                &[Param::Text(&name)],
            )?;
            if let Some(row) = bad.into_iter().next() {
                let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
                return Err(Error::Data(format!(
                    "--mode replace: table {} has a row whose foreign key finds no row in {}; nothing was changed",
                    get(0),
                    get(1)
                )));
            }
        }
        Ok(())
    }

    fn ledger_table(&self) -> String {
        quote(LEDGER)
    }

    fn ensure_ledger(&mut self) -> Result<()> {
        let sql = load::ledger::create_sql(&DIALECT, &quote(LEDGER));
        self.execute("creating the ledger", &sql, &[]).map(|_| ())
    }

    fn ledger_exists(&mut self) -> Result<bool> {
        Ok(self.table_exists(LEDGER)?.is_some())
    }

    fn table_sql(&self, name: &str, _table: &TableDef) -> String {
        quote(name)
    }

    fn create_table(
        &mut self,
        name: &str,
        table: &TableDef,
        same_engine: bool,
        staging: bool,
    ) -> Result<()> {
        self.create_from_catalog(name, table, same_engine, staging)
    }

    fn bulk_load(
        &mut self,
        dest: &str,
        table: &TableDef,
        batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
        part: &str,
        upsert: bool,
    ) -> Result<Written> {
        // Rows go in one at a time: a refusal names the row being written.
        let written = self.insert_rows(dest, table, batches, part, upsert);
        if !matches!(written, Err(Error::RowRefused(_))) {
            self.refused_row = None;
        }
        written
    }

    fn refused_row(&self) -> Option<u64> {
        self.refused_row
    }
}

impl Target for SqliteTarget {
    fn refuses(&self, ty: &ColumnType) -> Option<&'static str> {
        refuses(ty)
    }

    fn prepare(&mut self, tables: &[(String, &TableDef)], _same_engine: bool) -> Result<()> {
        self.targets = tables
            .iter()
            .map(|(target, t)| (t.name.clone(), target.clone()))
            .collect();
        Ok(())
    }

    fn table_rows(&mut self, name: &str, _table: &TableDef) -> Result<Option<u64>> {
        if self.table_exists(name)?.is_none() {
            return Ok(None);
        }
        let n: i64 = self
            .conn
            .query_row(&format!("SELECT count(*) FROM {}", quote(name)), [], |r| {
                r.get(0)
            })
            .map_err(|e| db_err(&format!("counting {name}"), e))?;
        Ok(u64::try_from(n).ok())
    }

    fn existing_columns(
        &mut self,
        name: &str,
        table: &TableDef,
    ) -> Result<Option<Vec<crate::load::TargetColumn>>> {
        if self.table_exists(name)?.is_none() {
            return Ok(None);
        }
        let _ = table;
        let mut st = self
            .conn
            .prepare(&format!("PRAGMA table_xinfo({})", quote(name)))
            .map_err(|e| db_err(&format!("reading the columns of {name}"), e))?;
        let cols = st
            .query_map([], |r| {
                // An INTEGER PRIMARY KEY is the rowid: it fills itself, and so does a
                // generated column (hidden 2 or 3).
                let pk: i64 = r.get(5)?;
                let ty: String = r.get(2)?;
                let hidden: i64 = r.get(6)?;
                let rowid = pk == 1 && ty.eq_ignore_ascii_case("INTEGER");
                Ok((
                    hidden,
                    crate::load::TargetColumn {
                        name: r.get(1)?,
                        nullable: r.get::<_, i64>(3)? == 0,
                        has_default: r.get::<_, Option<String>>(4)?.is_some()
                            || rowid
                            || hidden == 2
                            || hidden == 3,
                    },
                ))
            })
            .map_err(|e| db_err(&format!("reading the columns of {name}"), e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| db_err(&format!("reading the columns of {name}"), e))?;
        Ok(Some(
            cols.into_iter()
                .filter(|(hidden, _)| *hidden != 1)
                .map(|(_, c)| c)
                .collect(),
        ))
    }

    fn primary_key(&mut self, name: &str, table: &TableDef) -> Result<Option<Vec<String>>> {
        if self.table_rows(name, table)?.is_none() {
            return Ok(None);
        }
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA table_info({})", quote(name)))
            .map_err(|e| db_err(&format!("reading the columns of {name}"), e))?;
        let mut cols: Vec<(i64, String)> = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(5)?, r.get::<_, String>(1)?)))
            .and_then(|r| r.collect())
            .map_err(|e| db_err(&format!("reading the columns of {name}"), e))?;
        cols.retain(|(k, _)| *k > 0);
        cols.sort();
        Ok(Some(cols.into_iter().map(|(_, c)| c).collect()))
    }

    fn lock_run(&mut self, bundle_id: &str) -> Result<()> {
        // The lock itself is taken in `open`; now the holder's line names the bundle too.
        if let Some(f) = self.run_lock.as_mut() {
            write_holder(f, &self.path, Some(bundle_id))?;
        }
        Ok(())
    }

    fn staging_tables(&mut self, _tables: &[(String, &TableDef)]) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '\\_ferry\\_%' ESCAPE '\\'")
            .map_err(|e| db_err("listing staging tables", e))?;
        let names: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .and_then(|r| r.collect())
            .map_err(|e| db_err("listing staging tables", e))?;
        Ok(names
            .into_iter()
            .filter(|n| crate::load::is_staging_name(n))
            .collect())
    }

    fn finish_table(&mut self, name: &str, table: &TableDef) -> Result<()> {
        // An AUTOINCREMENT table's counter never goes below its largest rowid (SQLite
        // moves it on explicit inserts too; this makes sure of it after every load).
        let has_sequence: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| db_err("looking up sqlite_sequence", e))?;
        let counted = has_sequence
            && self
                .conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?1)",
                    [name],
                    |r| r.get::<_, bool>(0),
                )
                .map_err(|e| db_err("reading sqlite_sequence", e))?;
        if counted && self.table_exists(name)?.is_some() {
            let q = quote(name);
            self.conn
                .execute(
                    &format!(
                        "UPDATE sqlite_sequence SET seq = (SELECT max(rowid) FROM {q}) \
                         WHERE name = ?1 AND seq < (SELECT max(rowid) FROM {q})"
                    ),
                    [name],
                )
                .map_err(|e| db_err(&format!("advancing the counter of {name}"), e))?;
        }
        for idx in &table.indexes {
            let iname = if name == table.name {
                idx.name.clone()
            } else {
                format!("{name}_{}", idx.name)
            };
            let cols: Vec<String> = idx.columns.iter().map(|c| quote(c)).collect();
            let sql = format!(
                "CREATE {}INDEX IF NOT EXISTS {} ON {} ({})",
                if idx.unique { "UNIQUE " } else { "" },
                quote(&iname),
                quote(name),
                cols.join(", ")
            );
            self.conn
                .execute(&sql, [])
                .map_err(|e| db_err(&format!("creating index {iname} on {name}"), e))?;
        }
        Ok(())
    }

    /// The notes of the tables made (what was not recreated), and a check of the foreign
    /// keys written into them: SQLite checks no existing row when a key is made, so rows
    /// the source held against its keys (SQLite enforces them only when asked) are named.
    fn finish_all(&mut self, _tables: &[(String, &TableDef)]) -> Result<Vec<String>> {
        let mut notes: Vec<String> = Vec::new();
        for n in std::mem::take(&mut self.notes) {
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
        for name in std::mem::take(&mut self.with_foreign_keys) {
            let broken = self.conn.query_row(
                "SELECT count(*) FROM pragma_foreign_key_check(?1)",
                [&name],
                |r| r.get::<_, i64>(0),
            );
            match broken {
                Ok(0) => {}
                Ok(n) => notes.push(format!(
                    "{n} row(s) of {name} reference no row of their foreign key's table (as in the \
                     bundle; SQLite checks no existing row): PRAGMA foreign_key_check({}) lists them",
                    quote(&name)
                )),
                Err(e) => notes.push(format!("the foreign keys of {name} cannot be checked: {e}")),
            }
        }
        Ok(notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(source_type: &str) -> Column {
        Column {
            name: "c".into(),
            ty: ColumnType::Utf8,
            nullable: true,
            source_type: source_type.into(),
            default: None,
            enum_type: None,
            domain_type: None,
            as_text: false,
            text_reason: None,
            collation: None,
            identity: None,
            generated: None,
        }
    }

    #[test]
    fn declared_types_carry_no_column_constraints() {
        // SQLite's own examples of type names, and those ferry writes itself.
        for ty in [
            "",
            "INT",
            "INTEGER",
            "TINYINT",
            "UNSIGNED BIG INT",
            "INT2",
            "VARCHAR(20)",
            "VARYING CHARACTER(255)",
            "NATIVE CHARACTER(70)",
            "NVARCHAR(100)",
            "CLOB",
            "BLOB",
            "DOUBLE PRECISION",
            "FLOAT",
            "DECIMAL(10,5)",
            "DECIMAL_TEXT(30,2)",
            "NUMERIC_TEXT",
            "BOOLEAN",
            "DATE",
            "DATETIME",
            "TIMESTAMPTZ",
            "JSON",
            "text",
        ] {
            assert_eq!(declared_type("t", &col(ty)).unwrap(), ty, "{ty}");
        }
        // A key holder's constraints after a type name are refused.
        for ty in [
            "INTEGER PRIMARY KEY ON CONFLICT REPLACE",
            "INTEGER PRIMARY KEY",
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "TEXT UNIQUE ON CONFLICT IGNORE",
            "TEXT UNIQUE",
            "INTEGER AS (5)",
            "INTEGER GENERATED ALWAYS AS (5) STORED",
            "TEXT REFERENCES x",
            "TEXT COLLATE x",
            "TEXT COLLATE NOCASE",
            "INTEGER NOT NULL DEFAULT 5",
            "INTEGER DEFAULT 5",
            "INTEGER NULL",
            "INTEGER CHECK (1)",
            "INTEGER CONSTRAINT x",
            "integer primary key",
            "Text Unique",
            "VARCHAR(20) NOT NULL",
        ] {
            let e = declared_type("t", &col(ty)).expect_err(ty).to_string();
            assert!(
                e.contains("table t, column c: declared type")
                    && e.contains("is not one ferry will put into DDL"),
                "{ty}: {e}"
            );
        }
        assert!(declared_type("t", &col("INT); DROP TABLE x; --")).is_err());
    }
}
