//! The toy engine's loader: the ledger in `DIR/main.db`, every table in `DIR/<table>.db`,
//! attached to the main connection as schema `<table>`. SQLite cannot ATTACH inside a
//! transaction, so this dialect's DDL is not transactional: the protocol creates a table
//! (attaching its file) before the part's transaction, as it does for MySQL. A part's rows
//! and its ledger row still commit together: SQLite commits a transaction that spans
//! attached files atomically (rollback journals and a super-journal).

use std::path::PathBuf;

use arrow::record_batch::RecordBatch;
use ferry::engines::sqlite::loader::{binder, sqlite_type, take_run_lock, upsert_clause};
use ferry::engines::sqlite::reader::quote;
use ferry::load::ledger::LEDGER;
use ferry::load::{
    Dialect, LedgerKind, Param, Placeholders, Session, Target, TargetColumn, Written,
};
use ferry::types::{ColumnType, TableDef};
use ferry::{Error, Result};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

use super::{MAIN, dir_of};

pub struct SplitTarget {
    conn: Connection,
    dir: PathBuf,
    /// Held until the target is dropped (`DIR/main.db.ferry-lock`, as SQLite's).
    _run_lock: Option<std::fs::File>,
}

/// A statement's error: a constraint refused a row (data), a lock (temporary), or else.
fn err(what: &str, e: rusqlite::Error) -> Error {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Error::Data(format!("{what}: the target refused a row: {e}"))
        }
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            Error::Temporary(format!("{what}: the database is locked ({e})"))
        }
        _ => Error::Database(format!("{what}: {e}")),
    }
}

static DIALECT: Dialect = Dialect {
    placeholders: Placeholders::QuestionNumbered,
    // ATTACH is refused inside a transaction.
    transactional_ddl: false,
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

/// A row of `PRAGMA table_info`: name, declared type, NOT NULL, has a default, key position.
type ColumnInfo = (String, String, bool, bool, i64);

impl SplitTarget {
    pub fn open(url: &str) -> Result<Self> {
        let dir = dir_of(url)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let main = dir.join(MAIN).display().to_string();
        let run_lock = take_run_lock(&main)?;
        let conn = Connection::open(&main).map_err(|e| err(&format!("opening {main}"), e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| err("busy_timeout", e))?;
        let mut t = SplitTarget {
            conn,
            dir,
            _run_lock: run_lock,
        };
        // Every table file there is, so statements can name any existing table.
        let entries = std::fs::read_dir(&t.dir)
            .map_err(|e| Error::io(format!("listing {}", t.dir.display()), e))?;
        let mut tables: Vec<String> = entries
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                let table = name.strip_suffix(".db")?;
                (name != MAIN).then(|| table.to_string())
            })
            .collect();
        tables.sort();
        for table in tables {
            t.attach(&table)?;
        }
        Ok(t)
    }

    fn file(&self, table: &str) -> PathBuf {
        self.dir.join(format!("{table}.db"))
    }

    fn attached(&self, table: &str) -> Result<bool> {
        let mut st = self
            .conn
            .prepare("SELECT 1 FROM pragma_database_list WHERE name = ?1")
            .map_err(|e| err("listing attached files", e))?;
        st.exists([table])
            .map_err(|e| err("listing attached files", e))
    }

    /// Attaches `DIR/<table>.db` as schema `<table>` (creating the file), once.
    fn attach(&mut self, table: &str) -> Result<()> {
        if self.attached(table)? {
            return Ok(());
        }
        let file = self.file(table).display().to_string();
        self.conn
            .execute("ATTACH DATABASE ?1 AS ?2", [file.as_str(), table])
            .map_err(|e| err(&format!("attaching {file}"), e))?;
        Ok(())
    }

    /// Whether table `name` exists (its file attached and the table in it).
    fn exists(&self, name: &str) -> Result<bool> {
        if !self.attached(name)? {
            return Ok(false);
        }
        self.conn
            .query_row(
                &format!(
                    "SELECT 1 FROM {}.sqlite_master WHERE type = 'table' AND name = ?1",
                    quote(name)
                ),
                [name],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| err(&format!("looking up {name}"), e))
    }

    /// `PRAGMA table_info` of an existing table: (name, declared type, not null, default, pk).
    fn columns(&self, name: &str) -> Result<Vec<ColumnInfo>> {
        let what = format!("reading the columns of {name}");
        let mut st = self
            .conn
            .prepare(&format!(
                "PRAGMA {}.table_info({})",
                quote(name),
                quote(name)
            ))
            .map_err(|e| err(&what, e))?;
        st.query_map([], |r| {
            Ok((
                r.get(1)?,
                r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                r.get::<_, i64>(3)? != 0,
                r.get::<_, Option<String>>(4)?.is_some(),
                r.get(5)?,
            ))
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| err(&what, e))
    }
}

impl Session for SplitTarget {
    fn dialect(&self) -> &'static Dialect {
        &DIALECT
    }

    fn begin(&mut self) -> Result<()> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| err("starting a transaction", e))
    }

    fn commit(&mut self) -> Result<()> {
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| err("committing", e))
    }

    fn rollback(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    fn execute(&mut self, what: &str, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        self.conn
            .execute(sql, rusqlite::params_from_iter(bind(params)))
            .map(|n| n as u64)
            .map_err(|e| err(what, e))
    }

    fn query_text(
        &mut self,
        what: &str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Vec<Option<String>>>> {
        let mut st = self.conn.prepare(sql).map_err(|e| err(what, e))?;
        let n = st.column_count();
        st.query_map(rusqlite::params_from_iter(bind(params)), |r| {
            (0..n).map(|i| r.get::<_, Option<String>>(i)).collect()
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| err(what, e))
    }

    fn ledger_table(&self) -> String {
        format!("\"main\".{}", quote(LEDGER))
    }

    fn ensure_ledger(&mut self) -> Result<()> {
        let sql = ferry::load::ledger::create_sql(&DIALECT, &self.ledger_table());
        self.execute("creating the ledger", &sql, &[]).map(|_| ())
    }

    fn ledger_exists(&mut self) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?1",
                [LEDGER],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| err("looking up the ledger", e))
    }

    fn table_sql(&self, name: &str, _table: &TableDef) -> String {
        format!("{}.{}", quote(name), quote(name))
    }

    /// Always from the canonical types (`same_engine` changes nothing here).
    fn create_table(
        &mut self,
        name: &str,
        table: &TableDef,
        _same_engine: bool,
        _staging: bool,
    ) -> Result<()> {
        self.attach(name)?;
        let mut defs: Vec<String> = table
            .columns
            .iter()
            .map(|c| {
                let null = if c.nullable { "" } else { " NOT NULL" };
                format!("{} {}{null}", quote(&c.name), sqlite_type(&c.ty))
            })
            .collect();
        if !table.primary_key.is_empty() {
            let pk: Vec<String> = table.primary_key.iter().map(|c| quote(c)).collect();
            defs.push(format!("PRIMARY KEY ({})", pk.join(", ")));
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.table_sql(name, table),
            defs.join(", ")
        );
        self.execute(&format!("creating table {name}"), &sql, &[])
            .map(|_| ())
    }

    fn bulk_load(
        &mut self,
        dest: &str,
        table: &TableDef,
        batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
        part: &str,
        upsert: bool,
    ) -> Result<Written> {
        let cols: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.table_sql(dest, table),
            cols.join(", "),
            DIALECT.phs(1, cols.len())
        );
        if upsert {
            sql.push_str(&upsert_clause(table));
        }
        let mut st = self
            .conn
            .prepare_cached(&sql)
            .map_err(|e| err(&format!("preparing the insert into {dest}"), e))?;
        let mut done = 0u64;
        for batch in batches {
            let batch = batch?;
            let binders = table
                .columns
                .iter()
                .zip(batch.columns())
                .map(|(c, a)| binder(a, &c.ty))
                .collect::<Result<Vec<_>>>()?;
            for row in 0..batch.num_rows() {
                let at = done + row as u64 + 1;
                for (i, b) in binders.iter().enumerate() {
                    let v = b(row).map_err(|why| {
                        Error::Data(format!(
                            "table {dest:?}, column {:?}, row {at} of part {part}: {why}",
                            table.columns[i].name
                        ))
                    })?;
                    st.raw_bind_parameter(i + 1, v)
                        .map_err(|e| err("binding a value", e))?;
                }
                st.raw_execute()
                    .map_err(|e| err(&format!("table {dest:?}, row {at} of part {part}"), e))?;
            }
            done += batch.num_rows() as u64;
        }
        // An engine that cannot tell inserted from updated rows says nothing of them.
        Ok(Written {
            rows: done,
            updated: None,
        })
    }
}

impl Target for SplitTarget {
    fn refuses(&self, ty: &ColumnType) -> Option<&'static str> {
        match ty {
            ColumnType::Interval => Some("sqlite-split has no interval type"),
            ColumnType::List { .. } => Some("sqlite-split has no array type"),
            ColumnType::Decimal256 { .. } => {
                Some("sqlite-split holds decimals of at most 38 digits")
            }
            _ => None,
        }
    }

    fn table_rows(&mut self, name: &str, table: &TableDef) -> Result<Option<u64>> {
        if !self.exists(name)? {
            return Ok(None);
        }
        let n: i64 = self
            .conn
            .query_row(
                &format!("SELECT count(*) FROM {}", self.table_sql(name, table)),
                [],
                |r| r.get(0),
            )
            .map_err(|e| err(&format!("counting {name}"), e))?;
        Ok(u64::try_from(n).ok())
    }

    fn existing_columns(
        &mut self,
        name: &str,
        _table: &TableDef,
    ) -> Result<Option<Vec<TargetColumn>>> {
        if !self.exists(name)? {
            return Ok(None);
        }
        Ok(Some(
            self.columns(name)?
                .into_iter()
                .map(|(name, ty, notnull, has_default, pk)| TargetColumn {
                    // An INTEGER PRIMARY KEY is the rowid: it fills itself.
                    has_default: has_default || (pk == 1 && ty.eq_ignore_ascii_case("INTEGER")),
                    name,
                    nullable: !notnull,
                })
                .collect(),
        ))
    }

    fn primary_key(&mut self, name: &str, _table: &TableDef) -> Result<Option<Vec<String>>> {
        if !self.exists(name)? {
            return Ok(None);
        }
        let mut pk: Vec<(i64, String)> = self
            .columns(name)?
            .into_iter()
            .filter(|c| c.4 > 0)
            .map(|c| (c.4, c.0))
            .collect();
        pk.sort();
        Ok(Some(pk.into_iter().map(|(_, c)| c).collect()))
    }

    fn staging_tables(&mut self, _tables: &[(String, &TableDef)]) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT name FROM pragma_database_list")
            .map_err(|e| err("listing attached files", e))?;
        let schemas: Vec<String> = st
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| err("listing attached files", e))?;
        drop(st);
        let mut out = Vec::new();
        for s in schemas {
            if ferry::load::is_staging_name(&s) && self.exists(&s)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    fn finish_table(&mut self, name: &str, table: &TableDef) -> Result<()> {
        for idx in &table.indexes {
            let cols: Vec<String> = idx.columns.iter().map(|c| quote(c)).collect();
            let sql = format!(
                "CREATE {}INDEX IF NOT EXISTS {}.{} ON {} ({})",
                if idx.unique { "UNIQUE " } else { "" },
                quote(name),
                quote(&idx.name),
                quote(name),
                cols.join(", ")
            );
            self.execute(&format!("creating index {} on {name}", idx.name), &sql, &[])?;
        }
        Ok(())
    }
}
