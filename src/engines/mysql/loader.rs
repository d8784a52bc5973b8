//! MySQL/MariaDB loader: batched multi-row prepared INSERTs (sized below
//! `max_allowed_packet` and the 65535-placeholder limit), one transaction per part with its
//! ledger row. Same-engine imports recreate the exact column types (`COLUMN_TYPE`, ENUM/SET
//! members, character set and collation); secondary and unique indexes come after the data,
//! foreign keys last.
//!
//! Two deliberate differences from the PostgreSQL loader, both forced by the engine:
//! - MySQL commits implicitly around DDL, so the ledger and the table are created just
//!   before the part's transaction, not inside it; a failed first part can leave an empty
//!   table behind (which `--mode create` accepts on a re-run).
//! - The primary key is created with the table: InnoDB stores a table as its primary key
//!   (clustered index), so adding it afterwards rewrites the whole table once more, and
//!   rows arrive mostly in key order anyway.

use std::sync::LazyLock;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Time64MicrosecondType, TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use arrow::record_batch::RecordBatch;
use regex::Regex;
use sha2::{Digest, Sha256};
use sqlx::mysql::{MySqlArguments, MySqlConnection};
use sqlx::{Arguments, AssertSqlSafe};

use crate::engines::mysql::infile::Bulk;
use crate::engines::mysql::reader::{
    connect, exec, is_temporary, literal, my_err, query_texts, quote, server_message,
    server_version,
};
use crate::load::Target;
use crate::load::typemap::{ColumnMapping, TypeMap};
use crate::load::{self, Dialect, LedgerKind, Param, Placeholders, Session, Written};
use crate::storage::runtime;
use crate::types::{Column, ColumnType, TableDef, text};
use crate::{Error, Result};

use crate::load::ledger::LEDGER;

/// MySQL's limit on placeholders in one prepared statement.
const MAX_PLACEHOLDERS: usize = 65_535;
/// Upper bound of one INSERT's parameter bytes (also kept under max_allowed_packet / 2).
const MAX_STATEMENT_BYTES: usize = 4 << 20;

/// A `COLUMN_TYPE` ferry will put into DDL: a type name, optional numeric arguments and
/// attributes. ENUM and SET are rebuilt from their labels instead.
static COLUMN_TYPE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z][a-z0-9 ]{0,40}(\([0-9]{1,5}(,[0-9]{1,3})?\))?( unsigned)?( zerofill)?$")
        .expect("regex")
});
/// Words that begin or belong to a column's constraints and attributes, never to a type
/// `COLUMN_TYPE` prints (`int(10) unsigned zerofill`, `decimal(65,30)`, `timestamp(6)`):
/// a declared type holding one (`int unique key`, `int default 5`, `int invisible`,
/// `int as (5)`) would append a constraint or attribute to the column, not name a type.
const NOT_TYPE_WORDS: &[&str] = &[
    "PRIMARY",
    "KEY",
    "UNIQUE",
    "INDEX",
    "CHECK",
    "REFERENCES",
    "FOREIGN",
    "DEFAULT",
    "COLLATE",
    "CHARACTER",
    "CHARSET",
    "SET",
    "GENERATED",
    "ALWAYS",
    "AS",
    "STORED",
    "VIRTUAL",
    "PERSISTENT",
    "ON",
    "UPDATE",
    "DELETE",
    "CASCADE",
    "RESTRICT",
    "MATCH",
    "NULL",
    "NOT",
    "CONSTRAINT",
    "AUTO_INCREMENT",
    "SERIAL",
    "INVISIBLE",
    "VISIBLE",
    "COMMENT",
    "COLUMN_FORMAT",
    "STORAGE",
    "ENGINE_ATTRIBUTE",
    "SECONDARY_ENGINE_ATTRIBUTE",
    "SRID",
    "REF_SYSTEM_ID",
    "WITH",
    "WITHOUT",
    "SYSTEM",
    "VERSIONING",
    "COMPRESSED",
    "CONFLICT",
    "IGNORE",
    "REPLACE",
    "ABORT",
    "FAIL",
    "ROLLBACK",
];

/// The first word of `ty` (case-insensitively) that is a constraint or attribute keyword.
fn not_type_word(ty: &str) -> Option<String> {
    ty.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map(str::to_ascii_uppercase)
        .find(|w| NOT_TYPE_WORDS.contains(&w.as_str()))
}

/// The character set and collation suffix of a catalog source type.
static CHARSET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(.*?) CHARACTER SET ([A-Za-z0-9_]{1,64}) COLLATE ([A-Za-z0-9_]{1,64})$")
        .expect("regex")
});
/// Defaults ferry recreates: numbers, quoted strings without backslashes, bit and hex literals.
static CONSTANT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(-?[0-9]+(\.[0-9]+)?|'([^'\\]|'')*'|b'[01]+'|0x[0-9A-Fa-f]+)$").expect("regex")
});

/// What the server can take, decided once per connection.
#[derive(Debug, Clone)]
struct Flavour {
    /// MariaDB (whose JSON is text with a check) rather than MySQL (whose JSON normalises).
    mariadb: bool,
    /// MariaDB 10.7+ has a UUID type.
    uuid_type: bool,
    /// A binary, NO PAD collation: text compares and indexes as it does elsewhere ('a' and
    /// 'a ' stay distinct in a unique index).
    text_collation: &'static str,
}

fn flavour(mariadb: bool, version: &str) -> Flavour {
    let mut nums = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    let (major, minor) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    Flavour {
        mariadb,
        uuid_type: mariadb && (major, minor) >= (10, 7),
        text_collation: if mariadb {
            "utf8mb4_nopad_bin"
        } else if major >= 8 {
            "utf8mb4_0900_bin"
        } else {
            "utf8mb4_bin"
        },
    }
}

/// Whether a column is in the primary key or an index: MySQL cannot index LONGTEXT/LONGBLOB,
/// so such columns get bounded types.
fn is_key(table: &TableDef, c: &Column) -> bool {
    table
        .primary_key
        .iter()
        .chain(table.indexes.iter().flat_map(|i| i.columns.iter()))
        .any(|k| *k == c.name)
}

/// The MySQL type a column is created as (see [`crate::load::typemap`]): on a same-engine
/// import its own `COLUMN_TYPE`, else the type its canonical type maps to.
fn column_mapping(
    name: &str,
    table: &TableDef,
    c: &Column,
    same_engine: bool,
    f: &Flavour,
) -> Result<ColumnMapping> {
    if same_engine {
        return declared_type(name, c).map(ColumnMapping::exact);
    }
    Ok(mysql_type(c, is_key(table, c), f))
}

/// The MySQL type a canonical type becomes on a cross-engine import. `key` columns (in the
/// primary key or an index) get bounded types, since MySQL cannot index LONGTEXT/LONGBLOB.
fn mysql_type(c: &Column, key: bool, f: &Flavour) -> ColumnMapping {
    use ColumnMapping as M;
    let text = |n: &str| format!("{n} CHARACTER SET utf8mb4 COLLATE {}", f.text_collation);
    let as_text = |key: bool| text(if key { "varchar(768)" } else { "longtext" });
    let text_form = "PostgreSQL's text form, as text (--as-text)";
    let by_row = |what: &str| format!("{what} are refused by row");
    match &c.ty {
        ColumnType::Boolean => M::exact("tinyint(1)"),
        ColumnType::Int16 => M::exact("smallint"),
        ColumnType::Int32 => M::exact("int"),
        ColumnType::Int64 => M::exact("bigint"),
        ColumnType::UInt8 => M::exact("tinyint unsigned"),
        ColumnType::UInt16 => M::exact("smallint unsigned"),
        ColumnType::UInt32 => M::exact("int unsigned"),
        ColumnType::UInt64 => M::exact("bigint unsigned"),
        ColumnType::Float32 | ColumnType::Float64 => M::mapped(
            if c.ty == ColumnType::Float32 {
                "float"
            } else {
                "double"
            },
            by_row("NaN and ±Infinity (MySQL stores neither)"),
        ),
        // Wider than DECIMAL holds: only with --as-text (pre-flight refuses it otherwise),
        // as its exact text.
        ColumnType::Decimal128 { precision, scale }
        | ColumnType::Decimal256 { precision, scale }
            if *precision > 65 || *scale > 30 =>
        {
            M::mapped(
                as_text(key),
                "wider than DECIMAL(65,30): its exact text, as text (--as-text)",
            )
        }
        ColumnType::Decimal128 { precision, scale }
        | ColumnType::Decimal256 { precision, scale } => {
            M::exact(format!("decimal({precision},{scale})"))
        }
        // A numeric(p,s) that travels as text because it holds NaN: its text, as text.
        ColumnType::NumericText if c.as_text => M::mapped(
            as_text(key),
            crate::load::typemap::notes::text_form(c).unwrap_or_default(),
        ),
        ColumnType::NumericText => M::mapped(
            "decimal(65,30)",
            by_row(
                "unconstrained numeric as decimal(65,30): values of more than 35 integer or 30 \
                 fraction digits, NaN and ±Infinity",
            ),
        ),
        ColumnType::Utf8 => {
            // A declared length travels (as VARCHAR: MySQL's CHAR drops trailing spaces).
            let declared = c.declared_length();
            let fits = declared.filter(|n| (1..=16_383).contains(n));
            let (sql, bounded) = match fits {
                Some(n) if !key || n <= 768 => (text(&format!("varchar({n})")), None),
                _ if key => (
                    text("varchar(768)"),
                    Some(
                        "a key or index column: at most 768 characters (MySQL indexes no longer text)"
                            .to_string(),
                    ),
                ),
                _ => (
                    text("longtext"),
                    declared.map(|n| format!("declared length {n} not kept (above 16383)")),
                ),
            };
            match crate::load::typemap::notes::text_column(c, bounded) {
                None => M::exact(sql),
                Some(note) => M::mapped(sql, note),
            }
        }
        ColumnType::Json if f.mariadb => M::exact("json"),
        ColumnType::Json => M::mapped(
            "json",
            "MySQL's JSON type normalises documents (key order, duplicate keys, large numbers)",
        ),
        ColumnType::Binary if key => M::mapped(
            "varbinary(3072)",
            "a key or index column: at most 3072 bytes",
        ),
        ColumnType::Binary => M::exact("longblob"),
        ColumnType::Date32 => M::mapped(
            "date",
            by_row("dates outside 0001-01-01 … 9999-12-31 (BC, ±infinity)"),
        ),
        ColumnType::Timestamp { utc: false } => M::mapped(
            "datetime(6)",
            by_row("values outside the years 1 … 9999 (±infinity)"),
        ),
        ColumnType::Timestamp { utc: true } => M::mapped(
            "timestamp(6)",
            by_row("values outside 1970-01-01 00:00:01 … 2038-01-19 03:14:07 UTC"),
        ),
        ColumnType::Time64 => M::exact("time(6)"),
        ColumnType::Uuid if f.uuid_type => M::exact("uuid"),
        ColumnType::Uuid => M::mapped(
            "char(36) CHARACTER SET ascii COLLATE ascii_bin",
            "as its hyphenated text (this server has no UUID type)",
        ),
        // Only with --as-text (pre-flight refuses them otherwise): PostgreSQL's text form.
        ColumnType::Interval | ColumnType::List { .. } => M::mapped(as_text(key), text_form),
    }
}

/// MySQL's type mapping ([`crate::load::typemap::TypeMap`]) for a server of this flavour.
pub struct MyTypes(Flavour);

impl MyTypes {
    /// The mapping for the server at `url` (its version decides the UUID type and the text
    /// collation); without one, a current MariaDB's.
    pub fn for_url(url: Option<&str>) -> Result<Self> {
        Ok(MyTypes(match url {
            Some(u) => {
                let (mut conn, _) = connect(u)?;
                let (mariadb, version) = server_version(&mut conn)?;
                flavour(mariadb, &version)
            }
            None => flavour(true, "11.4"),
        }))
    }
}

impl TypeMap for MyTypes {
    fn column(&self, table: &TableDef, c: &Column, same_engine: bool) -> Result<ColumnMapping> {
        column_mapping(&table.name, table, c, same_engine, &self.0)
    }

    fn refuses(&self, ty: &ColumnType) -> Option<&'static str> {
        refuses(ty)
    }
}

/// Why MySQL cannot take a canonical type, if it cannot (pre-flight).
fn refuses(ty: &ColumnType) -> Option<&'static str> {
    match ty {
        ColumnType::Interval => Some("MySQL has no interval type"),
        ColumnType::List { .. } => Some("MySQL has no array type"),
        ColumnType::Decimal128 { precision, scale }
        | ColumnType::Decimal256 { precision, scale }
            if *precision > 65 || *scale > 30 =>
        {
            Some("MySQL's DECIMAL holds at most 65 digits, at most 30 after the point")
        }
        _ => None,
    }
}

/// The column type a same-engine import recreates, from the catalog: ENUM/SET rebuilt from
/// their labels, anything else checked against a strict shape before it goes into DDL.
fn declared_type(table: &str, c: &Column) -> Result<String> {
    let (base, charset) = match CHARSET.captures(&c.source_type) {
        Some(m) => (
            m[1].to_string(),
            format!(" CHARACTER SET {} COLLATE {}", &m[2], &m[3]),
        ),
        None => (c.source_type.clone(), String::new()),
    };
    if let Some(e) = &c.enum_type
        && (e.name == "enum" || e.name == "set")
    {
        let labels: Vec<String> = e.labels.iter().map(|l| literal(l)).collect();
        return Ok(format!("{}({}){charset}", e.name, labels.join(",")));
    }
    if !COLUMN_TYPE.is_match(&base) {
        return Err(Error::Data(format!(
            "table {table}, column {}: type {:?} is not one ferry will put into DDL",
            c.name, c.source_type
        )));
    }
    // The shape lets words through; a constraint's or attribute's is not part of a type.
    if let Some(w) = not_type_word(&base) {
        return Err(Error::Data(format!(
            "table {table}, column {}: type {:?} is not one ferry will put into DDL \
             ({w} begins a column constraint or attribute, not a type)",
            c.name, c.source_type
        )));
    }
    Ok(format!("{base}{charset}"))
}

pub struct MyTarget {
    conn: MySqlConnection,
    url: String,
    database: String,
    flavour: Flavour,
    /// Parameter bytes one INSERT may carry.
    statement_bytes: usize,
    /// The server's `max_allowed_packet`.
    packet: usize,
    /// What was not recreated (an expression outside the rules), for the summary.
    notes: Vec<String>,
    /// The row of the last bulk load the target refused ([`Session::refused_row`]).
    refused_row: Option<u64>,
    /// The LOAD DATA path's connection: when set, every statement of the load protocol
    /// (its transactions) runs there, and parts load with LOAD DATA LOCAL INFILE.
    bulk: Option<Bulk>,
    /// The import chose the LOAD DATA path (its workers take it too).
    load_data: bool,
}

/// The session settings of a loading connection (ferry's and the LOAD DATA one).
fn session_setup() -> Result<Vec<String>> {
    // A lock another session holds on a target table (LOCK TABLES, an open transaction's
    // row locks, DDL) ends the statement after FERRY_LOCK_TIMEOUT seconds, not the
    // server's default year for metadata locks: the part rolls back, exit 75.
    let wait = crate::load::lock_timeout_secs()?.max(1);
    Ok(vec![
        // Strict: a value the column cannot hold is an error, never a silent truncation.
        // NO_BACKSLASH_ESCAPES: ferry's literals double quotes and nothing else.
        "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO,\
         NO_BACKSLASH_ESCAPES,ERROR_FOR_DIVISION_BY_ZERO', time_zone = '+00:00', foreign_key_checks = 0"
            .to_string(),
        // Every warning of a LOAD DATA listed by SHOW WARNINGS (the default lists 64): one
        // not listed could be a truncation the part must fail on.
        "SET SESSION max_error_count = 65535".to_string(),
        // The connection holds the run lock (GET_LOCK) while the whole bundle is verified:
        // a server that drops idle connections after wait_timeout would release it silently.
        "SET SESSION wait_timeout = GREATEST(@@wait_timeout, 604800), \
         net_read_timeout = GREATEST(@@net_read_timeout, 3600)"
            .to_string(),
        format!("SET SESSION lock_wait_timeout = {wait}, innodb_lock_wait_timeout = {wait}"),
    ])
}

/// `FERRY_MYSQL_LOAD_DATA=off` keeps the batched-INSERT path on a server that allows LOAD
/// DATA LOCAL INFILE (a comparison, a test of the fallback).
const LOAD_DATA_ENV: &str = "FERRY_MYSQL_LOAD_DATA";

impl MyTarget {
    pub fn open(url: &str) -> Result<Self> {
        let (mut conn, database) = connect(url)?;
        let (mariadb, version) = server_version(&mut conn)?;
        for sql in session_setup()? {
            exec(&mut conn, &sql)?;
        }
        // TIMESTAMP columns get no implicit default or ON UPDATE (a variable older servers
        // may not let a session set; their default is the same on MariaDB 10.10+).
        let _ = exec(&mut conn, "SET SESSION explicit_defaults_for_timestamp = 1");
        let rows = query_texts(
            &mut conn,
            "checking the target",
            "SELECT CAST(@@read_only AS CHAR), CAST(@@max_allowed_packet AS CHAR)",
            &[],
        )?;
        let row = rows.into_iter().next().unwrap_or_default();
        if row.first().cloned().flatten().as_deref() == Some("1") {
            return Err(Error::Database(format!(
                "{} is read-only (a replica, or read_only is set): import needs a writable server",
                crate::redact::display_url(url)
            )));
        }
        let packet: usize = row
            .get(1)
            .cloned()
            .flatten()
            .and_then(|s| s.parse().ok())
            .unwrap_or(4 << 20);
        Ok(MyTarget {
            conn,
            url: url.to_string(),
            database,
            flavour: flavour(mariadb, &version),
            statement_bytes: (packet / 2).clamp(64 << 10, MAX_STATEMENT_BYTES),
            packet,
            notes: Vec::new(),
            refused_row: None,
            bulk: None,
            load_data: false,
        })
    }

    /// Opens the LOAD DATA connection when the server allows LOCAL INFILE and ferry's own
    /// connection is unencrypted (the LOAD DATA connection has no TLS); returns the path
    /// taken and why. `inserts_only`: why this import needs the INSERT path anyway.
    fn choose_path(&mut self, inserts_only: Option<&str>) -> Result<String> {
        let server = if self.flavour.mariadb {
            "MariaDB"
        } else {
            "MySQL"
        };
        if std::env::var(LOAD_DATA_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("off") || v == "0") {
            return Ok(format!("batched INSERT: {LOAD_DATA_ENV}=off"));
        }
        if let Some(why) = inserts_only {
            return Ok(format!(
                "batched INSERT: {why} (LOAD DATA cannot name the refused row of every error, or count \
                 the rows an upsert updated)"
            ));
        }
        let infile = self
            .texts(
                "checking local_infile",
                "SELECT CAST(@@GLOBAL.local_infile AS CHAR)",
                &[],
            )?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten());
        // MariaDB says ON, MySQL 1.
        if !infile.is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("on")) {
            return Ok(
                "batched INSERT: the server has local_infile=OFF (SET GLOBAL local_infile = 1 lets \
                 ferry use LOAD DATA LOCAL INFILE, faster)"
                    .into(),
            );
        }
        let tls = self
            .texts(
                "checking the connection's TLS",
                "SHOW SESSION STATUS LIKE 'Ssl_cipher'",
                &[],
            )
            .map(|rows| {
                rows.into_iter()
                    .next()
                    .and_then(|r| r.get(1).cloned().flatten())
                    .is_some_and(|c| !c.is_empty())
            })
            .unwrap_or(true);
        if tls {
            return Ok(
                "batched INSERT: the connection uses TLS, which ferry's LOAD DATA connection does not \
                 have yet"
                    .into(),
            );
        }
        if url::Url::parse(&crate::engines::mysql::reader::normalise_url(&self.url))
            .is_ok_and(|u| u.query_pairs().any(|(k, _)| k == "socket"))
        {
            return Ok("batched INSERT: the URL names a Unix socket".into());
        }
        match Bulk::connect(&self.url, &session_setup()?) {
            Ok(b) => {
                self.bulk = Some(b);
                self.load_data = true;
                Ok(format!(
                    "{server}: LOAD DATA LOCAL INFILE (local_infile=ON)"
                ))
            }
            Err(e) => Ok(format!("batched INSERT: {e}")),
        }
    }

    fn exec(&mut self, sql: &str) -> Result<()> {
        exec(&mut self.conn, sql)
    }

    /// A lock wait that timed out (error 1205), with the sessions that hold transactions
    /// open on the server named (best effort: without the PROCESS privilege a user sees
    /// only its own sessions). Other errors pass through.
    fn explain_lock(&mut self, e: Error, name: &str) -> Error {
        let Error::Locked(msg) = &e else {
            return e;
        };
        let holders = self
            .texts(
                "looking up lock holders",
                "SELECT CAST(GROUP_CONCAT(CONCAT('connection ', p.ID, ' (user ', p.USER, '@', p.HOST, \
                 ', transaction open since ', t.trx_started, '): ', \
                 LEFT(COALESCE(p.INFO, t.trx_query, p.COMMAND), 120)) SEPARATOR '; ') AS CHAR) \
                 FROM information_schema.INNODB_TRX t \
                 JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
                 WHERE p.ID <> CONNECTION_ID()",
                &[],
            )
            .ok()
            .and_then(|r| r.into_iter().next())
            .and_then(|r| r.into_iter().next().flatten());
        Error::Temporary(format!(
            "{msg}; {name} is locked by another session ({}); the part was rolled back: re-run \
             when the lock is released (FERRY_LOCK_TIMEOUT sets the wait, now {}s)",
            holders.map_or_else(
                || "no open transaction is visible: LOCK TABLES or DDL, see SHOW PROCESSLIST"
                    .into(),
                |h| format!("open transactions: {h}")
            ),
            crate::load::lock_timeout_secs().unwrap_or(60)
        ))
    }

    fn texts(&mut self, what: &str, sql: &str, binds: &[&str]) -> Result<Vec<Vec<Option<String>>>> {
        query_texts(&mut self.conn, what, sql, binds)
    }

    fn exists(&mut self, table: &str) -> Result<bool> {
        let db = self.database.clone();
        Ok(!self
            .texts(
                "looking up a table",
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                &[&db, table],
            )?
            .is_empty())
    }

    fn create_from_catalog(
        &mut self,
        name: &str,
        table: &TableDef,
        same_engine: bool,
    ) -> Result<()> {
        if self.exists(name)? {
            return Ok(());
        }
        use crate::expr::{Engine, Scope, rebuild};
        let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
        let scope = Scope {
            columns: &names,
            value: false,
            any_function: false,
        };
        let mut defs = Vec::new();
        let mut counter_keys = Vec::new();
        for c in &table.columns {
            let ty = column_mapping(name, table, c, same_engine, &self.flavour)?.sql_type;
            let mut d = format!("{} {ty}", quote(&c.name));
            if let Some(g) = &c.generated {
                // Only a same-engine bundle keeps it (import strips it otherwise).
                d.push_str(&crate::engines::generated_clause(
                    name,
                    &c.name,
                    g,
                    Engine::MySql,
                    scope,
                )?);
                defs.push(d);
                continue;
            }
            d.push_str(if c.nullable { " NULL" } else { " NOT NULL" });
            let integer = c.ty.is_integer();
            if c.identity.is_some() && integer {
                d.push_str(" AUTO_INCREMENT");
                // AUTO_INCREMENT needs the column to lead a key.
                if table.primary_key.first() != Some(&c.name) {
                    counter_keys.push(format!("KEY ({})", quote(&c.name)));
                }
            } else if !same_engine
                && let Some(def) = c
                    .default
                    .as_deref()
                    .and_then(|d| crate::expr::portable_default(d, Engine::MySql, &c.ty))
            {
                // Across engines only defaults that mean the same travel.
                d.push_str(&format!(" DEFAULT {}", def));
            } else if let Some(def) = c.default.as_deref().filter(|_| same_engine) {
                if CONSTANT.is_match(def) {
                    d.push_str(&format!(" DEFAULT {def}"));
                } else {
                    match rebuild(def, Engine::MySql, scope) {
                        Ok(e) if e.cast_types.is_empty() => {
                            d.push_str(&format!(" DEFAULT {}", e.sql));
                        }
                        Ok(_) => self.notes.push(format!(
                            "not carried: DEFAULT of {name}.{}: it casts, which ferry does not replay here",
                            c.name
                        )),
                        Err(why) => self
                            .notes
                            .push(format!("not carried: DEFAULT of {name}.{}: it {why}", c.name)),
                    }
                }
            }
            defs.push(d);
        }
        if !table.primary_key.is_empty() {
            let pk: Vec<String> = table.primary_key.iter().map(|c| quote(c)).collect();
            defs.push(format!("PRIMARY KEY ({})", pk.join(", ")));
        }
        defs.extend(counter_keys);
        for chk in &table.checks {
            match rebuild(&chk.expr, Engine::MySql, scope) {
                Ok(e) if e.cast_types.is_empty() => {
                    defs.push(format!("CONSTRAINT {} CHECK ({})", quote(&chk.name), e.sql))
                }
                Ok(_) => self.notes.push(format!(
                    "not carried: CHECK {} on {name}: it casts, which ferry does not replay here",
                    chk.name
                )),
                Err(why) => self.notes.push(format!(
                    "not carried: CHECK {} on {name}: it {why}",
                    chk.name
                )),
            }
        }
        self.exec(&format!(
            "CREATE TABLE IF NOT EXISTS {} (\n  {}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            quote(name),
            defs.join(",\n  ")
        ))
    }

    /// MySQL wants both ends of a foreign key to have one integer type, where PostgreSQL
    /// and SQLite let a smallint reference an integer key (Pagila's `film.language_id`). A
    /// referencing integer column narrower than its key is widened to the key's type
    /// (lossless) before the key is added; returns the note that says so.
    fn match_key_type(
        &mut self,
        table: &str,
        column: &str,
        ref_table: &str,
        ref_column: &str,
    ) -> Result<Option<String>> {
        let db = self.database.clone();
        let sql = "SELECT CAST(COLUMN_TYPE AS CHAR), CAST(IS_NULLABLE AS CHAR), CAST(COLUMN_DEFAULT AS CHAR) \
                   FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?";
        let mut of = |t: &str, c: &str| -> Result<Option<(String, bool, Option<String>)>> {
            let rows = self.texts("reading a foreign key's column types", sql, &[&db, t, c])?;
            Ok(rows.into_iter().next().map(|r| {
                let get = |i: usize| r.get(i).cloned().flatten();
                (
                    get(0).unwrap_or_default().to_ascii_lowercase(),
                    get(1).as_deref() == Some("YES"),
                    get(2),
                )
            }))
        };
        let (Some((have, nullable, default)), Some((want, _, _))) =
            (of(table, column)?, of(ref_table, ref_column)?)
        else {
            return Ok(None);
        };
        let rank = |t: &str| -> Option<u8> {
            let base = t.split(['(', ' ']).next().unwrap_or("");
            ["tinyint", "smallint", "mediumint", "int", "bigint"]
                .iter()
                .position(|n| *n == base)
                .and_then(|p| u8::try_from(p).ok())
        };
        let (Some(h), Some(w)) = (rank(&have), rank(&want)) else {
            return Ok(None);
        };
        if have == want || h > w {
            return Ok(None);
        }
        let default = default
            .filter(|d| d.parse::<i64>().is_ok())
            .map(|d| format!(" DEFAULT {d}"))
            .unwrap_or_default();
        self.exec(&format!(
            "ALTER TABLE {} MODIFY {} {want} {}{default}",
            quote(table),
            quote(column),
            if nullable { "NULL" } else { "NOT NULL" }
        ))?;
        Ok(Some(format!(
            "column {table}.{column} is {want} here ({have} as it came) so that its foreign key \
             matches {ref_table}.{ref_column}: MySQL wants one type at both ends of a foreign key"
        )))
    }

    /// Sets the table's AUTO_INCREMENT past the largest value of its counter column (the
    /// server only moves it forward): the application's next insert gets a new key.
    fn advance_counter(&mut self, name: &str) -> Result<()> {
        let db = self.database.clone();
        let col = self
            .texts(
                "looking up the table's counter",
                "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND EXTRA LIKE '%auto_increment%'",
                &[&db, name],
            )?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten());
        let Some(col) = col else { return Ok(()) };
        let next = self
            .texts(
                "reading the table's largest key",
                &format!(
                    "SELECT CAST(MAX({}) + 1 AS CHAR) FROM {}",
                    quote(&col),
                    quote(name)
                ),
                &[],
            )?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .and_then(|v| v.parse::<u64>().ok());
        match next {
            Some(n) => self.exec(&format!("ALTER TABLE {} AUTO_INCREMENT = {n}", quote(name))),
            None => Ok(()),
        }
    }

    /// Sends one part's rows as multi-row INSERTs; returns the row count (and for an upsert
    /// the rows that met their key: [`upsert_clause`] counts them in `@ferry_updated`).
    fn insert_rows(
        &mut self,
        name: &str,
        table: &TableDef,
        batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
        part: &str,
        upsert: bool,
    ) -> Result<Written> {
        if upsert {
            self.exec("SET @ferry_updated = 0")?;
        }
        let ncols = table.columns.len().max(1);
        let cols: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
        let head = format!("INSERT INTO {} ({}) VALUES ", quote(name), cols.join(", "));
        let tail = if upsert {
            upsert_clause(table)
        } else {
            String::new()
        };
        let tuple = format!("({})", vec!["?"; ncols].join(","));
        let max_rows = (MAX_PLACEHOLDERS / ncols).max(1);
        let mut args = MySqlArguments::default();
        let (mut in_stmt, mut bytes, mut done, mut first) = (0usize, 0usize, 0u64, 1u64);
        for batch in batches {
            let batch = batch?;
            // The batch has the catalog's shape (checked where import reads the part).
            let binders = table
                .columns
                .iter()
                .zip(batch.columns())
                .map(|(c, a)| {
                    // A numeric that travels as text (it holds NaN) went into a text column.
                    if c.as_text && c.ty == ColumnType::NumericText {
                        binder(a, &ColumnType::Utf8)
                    } else {
                        binder(a, &c.ty)
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            let sizes = RowSizes::of(&batch);
            for row in 0..batch.num_rows() {
                let at = done + 1;
                // The statement so far goes before a row that would push it past the packet
                // bound; a row that alone exceeds the server's limit is named, with the fix.
                let row_bytes = sizes.check(row, self.packet, (name, at, part))?;
                if in_stmt > 0 && bytes + row_bytes > self.statement_bytes {
                    let sql = statement(&head, &tuple, in_stmt) + &tail;
                    self.send(sql, std::mem::take(&mut args), name, part, first)?;
                    first = done + 1;
                    (in_stmt, bytes) = (0, 0);
                }
                for (i, b) in binders.iter().enumerate() {
                    bytes += b(row, &mut args).map_err(|why| {
                        self.refused_row = Some(at);
                        Error::RowRefused(format!(
                            "table {name}, column {:?}, row {at} of part {part}: {why}; nothing from this part was committed",
                            table.columns[i].name
                        ))
                    })?;
                }
                in_stmt += 1;
                done += 1;
                if in_stmt >= max_rows || bytes >= self.statement_bytes {
                    let sql = statement(&head, &tuple, in_stmt) + &tail;
                    self.send(sql, std::mem::take(&mut args), name, part, first)?;
                    first = done + 1;
                    (in_stmt, bytes) = (0, 0);
                }
            }
        }
        if in_stmt > 0 {
            let sql = statement(&head, &tuple, in_stmt) + &tail;
            self.send(sql, args, name, part, first)?;
        }
        if !upsert {
            return Ok(Written::inserted(done));
        }
        let updated = self
            .texts(
                "counting the rows an upsert updated",
                "SELECT CAST(@ferry_updated AS CHAR)",
                &[],
            )?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        Ok(Written {
            rows: done,
            updated: Some(updated.min(done)),
        })
    }

    /// Executes one INSERT; a row the server refuses is a data error naming the table, the
    /// row (from the server's "at row N") and the server's message.
    fn send(
        &mut self,
        sql: String,
        args: MySqlArguments,
        name: &str,
        part: &str,
        first_row: u64,
    ) -> Result<()> {
        match runtime().block_on(sqlx::query_with(AssertSqlSafe(sql), args).execute(&mut self.conn))
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let (e, row) = refused(name, part, first_row, e);
                self.refused_row = row;
                Err(e)
            }
        }
    }
}

/// The size a row counts for against the server's `max_allowed_packet`, on both load paths
/// (an INSERT statement, a LOAD DATA packet): 16 bytes a column plus the bytes of its text and
/// binary values. The offsets are taken once per batch, so a row's size is a subtraction per
/// column (a NULL counts what its slot spans, usually 0).
pub(crate) struct RowSizes<'a> {
    fixed: usize,
    wide: Vec<&'a [i32]>,
}

impl<'a> RowSizes<'a> {
    pub(crate) fn of(batch: &'a RecordBatch) -> Self {
        let wide = batch
            .columns()
            .iter()
            .filter_map(|a| match a.data_type() {
                arrow::datatypes::DataType::Utf8 => Some(a.as_string::<i32>().value_offsets()),
                arrow::datatypes::DataType::Binary => Some(a.as_binary::<i32>().value_offsets()),
                _ => None,
            })
            .collect();
        RowSizes {
            fixed: 16 * batch.num_columns(),
            wide,
        }
    }

    /// Row `row`'s size; an error naming the table, row and part, with the fix, when the row
    /// alone cannot fit in one packet.
    pub(crate) fn check(
        &self,
        row: usize,
        packet: usize,
        (table, at, part): (&str, u64, &str),
    ) -> Result<usize> {
        let bytes = self.fixed
            + self
                .wide
                .iter()
                .map(|o| usize::try_from(o[row + 1] - o[row]).unwrap_or(0))
                .sum::<usize>();
        if bytes > packet.saturating_sub(1024) {
            return Err(Error::Database(format!(
                "table {table}, row {at} of part {part}: {bytes} bytes, more than the server's \
                 max_allowed_packet ({packet}); raise max_allowed_packet (SET GLOBAL max_allowed_packet = …) \
                 and re-run"
            )));
        }
        Ok(bytes)
    }
}

/// ` ON DUPLICATE KEY UPDATE c = VALUES(c), …` for the columns outside the primary key
/// (the first key column assigned to itself when every column is in the key).
///
/// The affected-rows count cannot tell an insert from an update (sqlx connects with
/// CLIENT_FOUND_ROWS: a row updated to the values it had counts 1, as an insert), so the
/// first key column's assignment also counts the rows that met their key in the session
/// variable `@ferry_updated` (set to 0 before the part; a failed statement's count is
/// never read).
fn upsert_clause(table: &TableDef) -> String {
    // ON DUPLICATE KEY UPDATE fires on any unique key: a new row whose other unique value
    // collides with another row would overwrite that row. The key columns go first, set to
    // NULL (an error under strict mode: the part fails, naming the row) unless the row
    // that collided is the one with the same primary key.
    let mut set: Vec<String> = table
        .primary_key
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let counted = if i == 0 {
                " AND (@ferry_updated := @ferry_updated + 1) > 0"
            } else {
                ""
            };
            format!(
                "{0} = IF({0} <=> VALUES({0}){counted}, {0}, NULL)",
                quote(k)
            )
        })
        .collect();
    set.extend(
        table
            .columns
            .iter()
            .filter(|c| !table.primary_key.contains(&c.name))
            .map(|c| format!("{0} = VALUES({0})", quote(&c.name))),
    );
    if set.is_empty()
        && let Some(k) = table.primary_key.first()
    {
        set.push(format!("{0} = {0}", quote(k)));
    }
    format!(" ON DUPLICATE KEY UPDATE {}", set.join(", "))
}

fn statement(head: &str, tuple: &str, rows: usize) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (tuple.len() + 1));
    sql.push_str(head);
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(tuple);
    }
    sql
}

/// A load error: a row the server refused (a constraint, a value its column cannot hold:
/// [`row_error`]) is a refused row (exit 65) naming table, row and the server's message
/// (without its "at row N", which counts rows of one statement), with that row of the
/// load when the server named it; a lost connection is temporary (exit 75); anything else
/// a database error.
fn refused(name: &str, part: &str, first_row: u64, e: sqlx::Error) -> (Error, Option<u64>) {
    if is_temporary(&e) {
        return (my_err(&format!("loading {name}, part {part}"), e), None);
    }
    if let sqlx::Error::Database(d) = &e
        && row_error(d.as_ref())
    {
        let msg = server_message(d.message());
        let at = d
            .message()
            .rsplit_once(" at row ")
            .and_then(|(_, n)| n.trim().parse::<u64>().ok())
            .filter(|n| *n >= 1)
            .map(|n| first_row + n - 1);
        let row = at.map_or_else(
            || format!(", a row (row {first_row} or later)"),
            |n| format!(", row {n}"),
        );
        return (
            Error::RowRefused(format!(
                "table {name}{row} of part {part}: the target refused a row: {}; nothing from this part was \
                 committed",
                load::strip_position_noise(&msg)
            )),
            at,
        );
    }
    (my_err(&format!("loading {name}, part {part}"), e), None)
}

/// Whether the server refused a row's values (and nothing else went wrong): SQLSTATE
/// classes 22 (data exception) and 23 (integrity constraint), and the errors MySQL and
/// MariaDB report with the general state HY000 for a value or a CHECK (incorrect value,
/// field without a default, CHECK constraint failed).
fn row_error(d: &dyn sqlx::error::DatabaseError) -> bool {
    if d.code()
        .is_some_and(|c| c.starts_with("22") || c.starts_with("23"))
    {
        return true;
    }
    d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|m| ROW_ERRORS.contains(&m.number()))
}

/// Server errors that refuse a row's values (reported with the general SQLSTATE HY000 for
/// some): see [`row_error`].
pub const ROW_ERRORS: [u16; 18] = [
    1048, 1062, 1263, 1264, 1265, 1292, 1364, 1366, 1367, 1406, 1411, 1451, 1452, 1690, 3140, 3819,
    4025, 1859,
];

/// A float MySQL can store (it has no NaN or infinity).
pub fn check_float(v: f64) -> std::result::Result<(), String> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(format!(
            "{v} cannot be stored in MySQL (no NaN or infinity)"
        ))
    }
}

/// A date's text, inside MySQL's DATE range.
pub fn check_date(d: i32) -> std::result::Result<String, String> {
    let t = text::format_date(d);
    // PostgreSQL's ±infinity and years outside 1..9999 have no MySQL form.
    if d == i32::MAX || d == i32::MIN || t.len() != 10 || t.starts_with("0000") {
        return Err(format!(
            "date {t} is outside MySQL's DATE range (0001-01-01..9999-12-31)"
        ));
    }
    Ok(t)
}

/// A timestamp's text, inside MySQL's range.
pub fn check_timestamp(v: i64) -> std::result::Result<String, String> {
    let t = text::format_timestamp(v);
    if v == i64::MAX
        || v == i64::MIN
        || t.starts_with('(')
        || t.starts_with('-')
        || t.as_bytes().get(4) != Some(&b'-')
        || t.starts_with("0000")
    {
        return Err(format!(
            "timestamp {t} is outside MySQL's range (years 0001..9999)"
        ));
    }
    Ok(t)
}

/// A time's text, inside MySQL's TIME range.
pub fn check_time(v: i64) -> std::result::Result<String, String> {
    if v.unsigned_abs() >= 839 * 3_600_000_000 {
        return Err(format!(
            "time {} is outside MySQL's TIME range (±838:59:59.999999)",
            format_time(v)
        ));
    }
    Ok(format_time(v))
}

/// Appends a date's text (as [`check_date`]), refusing the same values with its words.
pub fn push_date(out: &mut Vec<u8>, d: i32) -> std::result::Result<(), String> {
    let at = out.len();
    if d != i32::MAX && d != i32::MIN && text::push_date(out, d) && out[at..at + 4] != *b"0000" {
        return Ok(());
    }
    out.truncate(at);
    out.extend_from_slice(check_date(d)?.as_bytes());
    Ok(())
}

/// Appends a timestamp's text (as [`check_timestamp`]), refusing the same values.
pub fn push_timestamp(out: &mut Vec<u8>, v: i64) -> std::result::Result<(), String> {
    let at = out.len();
    if v != i64::MAX && v != i64::MIN && text::push_timestamp(out, v) && out[at..at + 4] != *b"0000"
    {
        return Ok(());
    }
    out.truncate(at);
    out.extend_from_slice(check_timestamp(v)?.as_bytes());
    Ok(())
}

/// Appends a time's text (as [`check_time`]), refusing the same values.
pub fn push_time(out: &mut Vec<u8>, v: i64) -> std::result::Result<(), String> {
    if v.unsigned_abs() >= 839 * 3_600_000_000 {
        return check_time(v).map(|_| ());
    }
    write_time(out, v);
    Ok(())
}

/// Appends `[-]HHH:MM:SS.ffffff` of a signed microsecond count (MySQL TIME spans ±838
/// hours; unchecked here).
fn write_time(out: &mut Vec<u8>, us: i64) {
    if us < 0 {
        out.push(b'-');
    }
    let u = us.unsigned_abs();
    let (secs, frac) = (u / 1_000_000, u % 1_000_000);
    if secs / 3600 < 10 {
        out.push(b'0');
    }
    text::push_int(out, secs / 3600);
    for part in [(secs / 60) % 60, secs % 60] {
        out.push(b':');
        out.push(b'0' + u8::try_from(part / 10).unwrap_or(0));
        out.push(b'0' + u8::try_from(part % 10).unwrap_or(0));
    }
    out.push(b'.');
    let mut f = [b'0'; 6];
    let mut n = frac;
    for slot in f.iter_mut().rev() {
        *slot = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
    }
    out.extend_from_slice(&f);
}

type Binder<'a> =
    Box<dyn Fn(usize, &mut MySqlArguments) -> std::result::Result<usize, String> + 'a>;

fn add<'t, T>(args: &mut MySqlArguments, v: T) -> std::result::Result<(), String>
where
    T: sqlx::Encode<'t, sqlx::MySql> + sqlx::Type<sqlx::MySql>,
{
    args.add(v).map_err(|e| e.to_string())
}

/// Decimal text with at most 35 integer and 30 fraction digits (DECIMAL(65,30)); trailing
/// fraction zeros do not count.
pub fn fits_decimal_65_30(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    !(int.is_empty() && frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && int.trim_start_matches('0').len() <= 35
        && frac.trim_end_matches('0').len() <= 30
}

/// `[-]HHH:MM:SS.ffffff` of a signed microsecond count (MySQL TIME spans ±838 hours).
fn format_time(us: i64) -> String {
    let mut b = Vec::with_capacity(17);
    write_time(&mut b, us);
    String::from_utf8_lossy(&b).into_owned()
}

/// One conversion per column, chosen once per batch from the column's type.
fn binder<'a>(a: &'a ArrayRef, ty: &ColumnType) -> Result<Binder<'a>> {
    macro_rules! native {
        ($t:ty, $size:expr) => {{
            let x = a.as_primitive::<$t>();
            Box::new(move |i, args: &mut MySqlArguments| {
                add(args, x.value(i))?;
                Ok($size)
            })
        }};
    }
    let f: Binder<'a> = match ty {
        ColumnType::Boolean => {
            let x = a.as_boolean();
            Box::new(move |i, args| {
                add(args, x.value(i))?;
                Ok(1)
            })
        }
        ColumnType::Int16 => native!(Int16Type, 2),
        ColumnType::Int32 => native!(Int32Type, 4),
        ColumnType::Int64 => native!(Int64Type, 8),
        ColumnType::UInt8 => native!(UInt8Type, 1),
        ColumnType::UInt16 => native!(UInt16Type, 2),
        ColumnType::UInt32 => native!(UInt32Type, 4),
        ColumnType::UInt64 => native!(UInt64Type, 8),
        ColumnType::Float32 => {
            let x = a.as_primitive::<Float32Type>();
            Box::new(move |i, args| {
                let v = x.value(i);
                check_float(f64::from(v))?;
                add(args, v)?;
                Ok(4)
            })
        }
        ColumnType::Float64 => {
            let x = a.as_primitive::<Float64Type>();
            Box::new(move |i, args| {
                let v = x.value(i);
                check_float(v)?;
                add(args, v)?;
                Ok(8)
            })
        }
        ColumnType::Decimal128 { scale, .. } => {
            let x = a.as_primitive::<Decimal128Type>();
            let s = *scale;
            Box::new(move |i, args| {
                let t = text::format_decimal(x.value(i), s);
                let n = t.len();
                add(args, t)?;
                Ok(n)
            })
        }
        ColumnType::Decimal256 { scale, .. } => {
            let x = a.as_primitive::<Decimal256Type>();
            let s = *scale;
            Box::new(move |i, args| {
                let t = crate::types::text::format_decimal256(x.value(i), s);
                let n = t.len();
                add(args, t)?;
                Ok(n)
            })
        }
        ColumnType::NumericText => {
            let x = a.as_string::<i32>();
            Box::new(move |i, args| {
                let v = x.value(i);
                if !fits_decimal_65_30(v) {
                    return Err(format!(
                        "{v} does not fit MySQL's DECIMAL(65,30) (at most 35 digits before the point and 30 after, no NaN)"
                    ));
                }
                add(args, v)?;
                Ok(v.len())
            })
        }
        ColumnType::Utf8 | ColumnType::Json => {
            let x = a.as_string::<i32>();
            Box::new(move |i, args| {
                let v = x.value(i);
                add(args, v)?;
                Ok(v.len())
            })
        }
        ColumnType::Binary => {
            let x = a.as_binary::<i32>();
            Box::new(move |i, args| {
                let v = x.value(i);
                add(args, v)?;
                Ok(v.len())
            })
        }
        ColumnType::Uuid => {
            let x = a.as_fixed_size_binary();
            Box::new(move |i, args| {
                let u = uuid::Uuid::from_slice(x.value(i)).map_err(|e| e.to_string())?;
                add(args, u.hyphenated().to_string())?;
                Ok(36)
            })
        }
        ColumnType::Date32 => {
            let x = a.as_primitive::<Date32Type>();
            Box::new(move |i, args| {
                add(args, check_date(x.value(i))?)?;
                Ok(10)
            })
        }
        ColumnType::Timestamp { .. } => {
            let x = a.as_primitive::<TimestampMicrosecondType>();
            Box::new(move |i, args| {
                let t = check_timestamp(x.value(i))?;
                let n = t.len();
                add(args, t)?;
                Ok(n)
            })
        }
        ColumnType::Time64 => {
            let x = a.as_primitive::<Time64MicrosecondType>();
            Box::new(move |i, args| {
                add(args, check_time(x.value(i))?)?;
                Ok(16)
            })
        }
        // Only with --as-text (pre-flight refuses them otherwise): PostgreSQL's text form.
        ColumnType::Interval | ColumnType::List { .. } => {
            let ty = ty.clone();
            Box::new(move |i, args| {
                let t = text::pg_text(a.as_ref(), i, &ty)?;
                let n = t.len();
                add(args, t)?;
                Ok(n)
            })
        }
    };
    Ok(Box::new(move |i, args| {
        if a.is_null(i) {
            add(args, Option::<&str>::None)?;
            Ok(1)
        } else {
            f(i, args)
        }
    }))
}

/// MySQL's and MariaDB's dialect: DDL commits implicitly, so tables and the ledger are
/// made before a part's transaction.
static DIALECT: Dialect = Dialect {
    placeholders: Placeholders::Question,
    transactional_ddl: false,
    ledger_type: |k| match k {
        LedgerKind::Fixed(n) => format!("char({n})"),
        LedgerKind::Ascii(n) => format!("varchar({n})"),
        LedgerKind::Unicode(n) => format!("varchar({n}) CHARACTER SET utf8mb4"),
        LedgerKind::BigInt => "bigint".into(),
        LedgerKind::Now => "timestamp(6) DEFAULT CURRENT_TIMESTAMP(6)".into(),
    },
    ledger_options: " ENGINE=InnoDB DEFAULT CHARSET=ascii",
    insert_ignoring_conflict: ("INSERT IGNORE INTO", ""),
    now: None,
    as_text: |e| format!("CAST({e} AS CHAR)"),
    quote,
};

fn bind(params: &[Param<'_>]) -> Result<MySqlArguments> {
    let mut args = MySqlArguments::default();
    for p in params {
        match p {
            Param::Text(t) => args.add((*t).to_string()),
            Param::Int(i) => args.add(*i),
        }
        .map_err(|e| Error::Other(format!("binding a parameter: {e}")))?;
    }
    Ok(args)
}

/// A statement's error: a row the target refused (SQLSTATE classes 22 and 23: data, exit
/// 65), or the database's own error.
fn statement_err(what: &str, e: sqlx::Error) -> Error {
    if !is_temporary(&e)
        && let sqlx::Error::Database(d) = &e
        && d.code()
            .is_some_and(|c| c.starts_with("22") || c.starts_with("23"))
    {
        return Error::Data(format!(
            "{what}: the target refused a row: {}",
            server_message(d.message())
        ));
    }
    my_err(what, e)
}

impl Session for MyTarget {
    fn dialect(&self) -> &'static Dialect {
        &DIALECT
    }

    fn begin(&mut self) -> Result<()> {
        match &mut self.bulk {
            Some(b) => b.exec("START TRANSACTION", "START TRANSACTION"),
            None => self.exec("START TRANSACTION"),
        }
    }

    fn commit(&mut self) -> Result<()> {
        match &mut self.bulk {
            Some(b) => b.exec("COMMIT", "COMMIT"),
            None => self.exec("COMMIT"),
        }
    }

    fn rollback(&mut self) {
        let _ = match &mut self.bulk {
            Some(b) => b.exec("ROLLBACK", "ROLLBACK"),
            None => self.exec("ROLLBACK"),
        };
    }

    fn execute(&mut self, what: &str, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        if let Some(b) = &mut self.bulk {
            return b.execute(what, sql, params);
        }
        let args = bind(params)?;
        runtime()
            .block_on(
                sqlx::query_with(AssertSqlSafe(sql.to_string()), args).execute(&mut self.conn),
            )
            .map(|r| r.rows_affected())
            .map_err(|e| statement_err(what, e))
    }

    fn query_text(
        &mut self,
        what: &str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Vec<Option<String>>>> {
        if let Some(b) = &mut self.bulk {
            return b.query_text(what, sql, params);
        }
        let args = bind(params)?;
        let rows = runtime()
            .block_on(
                sqlx::query_with(AssertSqlSafe(sql.to_string()), args).fetch_all(&mut self.conn),
            )
            .map_err(|e| my_err(what, e))?;
        rows.iter()
            .map(crate::engines::mysql::reader::texts)
            .collect()
    }

    fn ledger_table(&self) -> String {
        quote(LEDGER)
    }

    fn ensure_ledger(&mut self) -> Result<()> {
        self.exec(&load::ledger::create_sql(&DIALECT, &quote(LEDGER)))
    }

    fn ledger_exists(&mut self) -> Result<bool> {
        self.exists(LEDGER)
    }

    fn table_sql(&self, name: &str, _table: &TableDef) -> String {
        quote(name)
    }

    fn create_table(
        &mut self,
        name: &str,
        table: &TableDef,
        same_engine: bool,
        _staging: bool,
    ) -> Result<()> {
        self.create_from_catalog(name, table, same_engine)
    }

    fn bulk_load(
        &mut self,
        dest: &str,
        table: &TableDef,
        batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
        part: &str,
        upsert: bool,
    ) -> Result<Written> {
        self.refused_row = None;
        match &mut self.bulk {
            Some(b) if !upsert => b.load(
                dest,
                table,
                batches,
                part,
                self.packet,
                &mut self.refused_row,
            ),
            Some(_) => Err(Error::Other(format!(
                "loading {dest}, part {part}: an upsert reached the LOAD DATA path (the import \
                 chooses INSERTs for upserts); nothing from this part was committed"
            ))),
            None => self.insert_rows(dest, table, batches, part, upsert),
        }
    }

    fn refused_row(&self) -> Option<u64> {
        self.refused_row
    }

    fn referencing(&mut self, name: &str, _table: &TableDef) -> Result<Vec<load::Reference>> {
        // The session loads with foreign_key_checks off, so nothing needs suspending in a
        // publish (no check, no ON DELETE action fires): the protocol's check of each of
        // these against the new rows is what keeps them true.
        let db = self.database.clone();
        let rows = self.texts(
            "looking up the foreign keys that reference a table",
            "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR), CAST(CONSTRAINT_NAME AS CHAR), \
                    CAST(COLUMN_NAME AS CHAR), CAST(REFERENCED_COLUMN_NAME AS CHAR) \
             FROM information_schema.KEY_COLUMN_USAGE \
             WHERE REFERENCED_TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME = ? \
             ORDER BY TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION",
            &[&db, name],
        )?;
        let mut refs: Vec<load::Reference> = Vec::new();
        for r in rows {
            let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            let (schema, child, constraint) = (get(0), get(1), get(2));
            let (child_sql, shown) = if schema == db {
                (quote(&child), child)
            } else {
                (
                    format!("{}.{}", quote(&schema), quote(&child)),
                    format!("{schema}.{child}"),
                )
            };
            match refs.last_mut() {
                Some(last) if last.child_sql == child_sql && last.constraint == constraint => {
                    last.columns.push(get(3));
                    last.ref_columns.push(get(4));
                }
                _ => refs.push(load::Reference {
                    constraint,
                    child_sql,
                    child: shown,
                    columns: vec![get(3)],
                    ref_columns: vec![get(4)],
                    parent_sql: quote(name),
                    definition: String::new(),
                }),
            }
        }
        Ok(refs)
    }

    fn explain(&mut self, e: Error, name: &str, _table: &TableDef) -> Error {
        self.explain_lock(e, name)
    }
}

impl Target for MyTarget {
    fn refuses(&self, ty: &ColumnType) -> Option<&'static str> {
        refuses(ty)
    }

    fn prepare(&mut self, _tables: &[(String, &TableDef)], _same_engine: bool) -> Result<()> {
        self.ensure_ledger()
    }

    fn lock_run(&mut self, bundle_id: &str) -> Result<()> {
        // Session-level: held until this connection closes (the process ends). Lock names are
        // server-wide, so the database is part of the name (hashed: names are ≤ 64 chars).
        // A connection that just closed may hold it until the server has reaped its session
        // (a run that ended a moment ago): wait up to RUN_LOCK_WAIT_S for that, no longer.
        let key = run_lock_name(bundle_id, &self.database);
        let got = self.texts(
            "taking the import lock",
            &format!("SELECT CAST(GET_LOCK(?, {RUN_LOCK_WAIT_S}) AS CHAR)"),
            &[&key],
        )?;
        if got
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .as_deref()
            == Some("1")
        {
            return Ok(());
        }
        let holder = self.texts(
            "finding the import lock holder",
            "SELECT CAST(p.ID AS CHAR), CAST(p.USER AS CHAR), CAST(p.HOST AS CHAR), CAST(p.COMMAND AS CHAR), \
                    CAST(p.TIME AS CHAR) \
             FROM information_schema.PROCESSLIST p WHERE p.ID = IS_USED_LOCK(?)",
            &[&key],
        )?;
        let who = holder
            .into_iter()
            .next()
            .map(|r| {
                let g = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                format!(
                    " (connection id {}, {}@{}, {} for {} s)",
                    g(0),
                    g(1),
                    g(2),
                    g(3),
                    g(4)
                )
            })
            .unwrap_or_default();
        Err(Error::Temporary(format!(
            "another import of bundle {bundle_id} into this database is running{who}; \
             nothing was written: run again when it has finished"
        )))
    }

    fn default_streams(&self) -> usize {
        crate::import::DEFAULT_STREAMS
    }

    fn worker(&self) -> Result<Option<Box<dyn Target>>> {
        let mut w = MyTarget::open(&self.url)?;
        if self.load_data {
            w.bulk = Some(Bulk::connect(&self.url, &session_setup()?)?);
            w.load_data = true;
        }
        Ok(Some(Box::new(w)))
    }

    fn choose_load_path(&mut self, inserts_only: Option<&str>) -> Result<Option<String>> {
        self.choose_path(inserts_only).map(Some)
    }

    fn table_rows(&mut self, name: &str, _table: &TableDef) -> Result<Option<u64>> {
        if !self.exists(name)? {
            return Ok(None);
        }
        let rows = self.texts(
            &format!("counting {name}"),
            &format!("SELECT CAST(COUNT(*) AS CHAR) FROM {}", quote(name)),
            &[],
        )?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .and_then(|s| s.parse().ok()))
    }

    fn existing_columns(
        &mut self,
        name: &str,
        _table: &TableDef,
    ) -> Result<Option<Vec<crate::load::TargetColumn>>> {
        if !self.exists(name)? {
            return Ok(None);
        }
        let db = self.database.clone();
        let rows = self.texts(
            "reading a table's columns",
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(IS_NULLABLE AS CHAR), \
                    CAST(COLUMN_DEFAULT IS NOT NULL OR EXTRA LIKE '%auto_increment%' \
                         OR EXTRA LIKE '%GENERATED%' AS CHAR) \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            &[&db, name],
        )?;
        Ok(Some(
            rows.into_iter()
                .map(|r| crate::load::TargetColumn {
                    name: r.first().cloned().flatten().unwrap_or_default(),
                    nullable: r.get(1).cloned().flatten().as_deref() == Some("YES"),
                    has_default: r.get(2).cloned().flatten().as_deref() == Some("1"),
                })
                .collect(),
        ))
    }

    fn primary_key(&mut self, name: &str, _table: &TableDef) -> Result<Option<Vec<String>>> {
        if !self.exists(name)? {
            return Ok(None);
        }
        let db = self.database.clone();
        let rows = self.texts(
            "reading a primary key",
            "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            &[&db, name],
        )?;
        Ok(Some(
            rows.into_iter()
                .filter_map(|r| r.into_iter().next().flatten())
                .collect(),
        ))
    }

    fn staging_tables(&mut self, _tables: &[(String, &TableDef)]) -> Result<Vec<String>> {
        let db = self.database.clone();
        let rows = self.texts(
            "listing staging tables",
            "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND LEFT(TABLE_NAME, 7) = '_ferry_' ORDER BY 1",
            &[&db],
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .filter(|n| crate::load::is_staging_name(n))
            .collect())
    }

    fn finish_table(&mut self, name: &str, table: &TableDef) -> Result<()> {
        let db = self.database.clone();
        let existing: Vec<String> = self
            .texts(
                "reading indexes",
                "SELECT DISTINCT CAST(INDEX_NAME AS CHAR) FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                &[&db, name],
            )?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect();
        let mut adds = Vec::new();
        if !table.primary_key.is_empty() && !existing.iter().any(|i| i == "PRIMARY") {
            let cols: Vec<String> = table.primary_key.iter().map(|c| quote(c)).collect();
            adds.push(format!("ADD PRIMARY KEY ({})", cols.join(", ")));
        }
        for idx in &table.indexes {
            if existing.contains(&idx.name) {
                continue;
            }
            let cols: Vec<String> = idx.columns.iter().map(|c| quote(c)).collect();
            adds.push(format!(
                "ADD {}INDEX {} ({})",
                if idx.unique { "UNIQUE " } else { "" },
                quote(&idx.name),
                cols.join(", ")
            ));
        }
        self.advance_counter(name)?;
        if adds.is_empty() {
            return Ok(());
        }
        // One ALTER: the table is read once for all its indexes.
        self.exec(&format!("ALTER TABLE {} {}", quote(name), adds.join(", ")))
            .map_err(|e| match e {
                Error::Database(m) => Error::Data(format!(
                    "table {name}: its keys could not be added after the data: {m}"
                )),
                other => other,
            })
    }

    fn finish_all(&mut self, tables: &[(String, &TableDef)]) -> Result<Vec<String>> {
        let db = self.database.clone();
        let mut notes = std::mem::take(&mut self.notes);
        for (name, t) in tables {
            for fk in &t.foreign_keys {
                let Some((ref_name, _)) = tables.iter().find(|(_, d)| {
                    d.name == fk.ref_table
                        && (d.schema == fk.ref_schema
                            || fk.ref_schema.is_none()
                            || d.schema.is_none())
                }) else {
                    notes.push(format!(
                        "foreign key {} of {name} not added: {} is not in this import",
                        fk.name, fk.ref_table
                    ));
                    continue;
                };
                // Constraint names are per database in MySQL: a renamed table gets its own.
                let cname = if *name == t.name {
                    fk.name.clone()
                } else {
                    format!("{name}_{}", fk.name)
                };
                let exists = !self
                    .texts(
                        "looking up a foreign key",
                        "SELECT 1 FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? \
                         AND TABLE_NAME = ? AND CONSTRAINT_NAME = ? AND CONSTRAINT_TYPE = 'FOREIGN KEY'",
                        &[&db, name, &cname],
                    )?
                    .is_empty();
                if exists {
                    continue;
                }
                for (col, ref_col) in fk.columns.iter().zip(&fk.ref_columns) {
                    if let Some(note) = self.match_key_type(name, col, ref_name, ref_col)? {
                        notes.push(note);
                    }
                }
                let cols: Vec<String> = fk.columns.iter().map(|c| quote(c)).collect();
                let refs: Vec<String> = fk.ref_columns.iter().map(|c| quote(c)).collect();
                // Checked as it is added (the session loads with foreign_key_checks off):
                // rows that violate it make this fail instead of a key the data breaks.
                self.exec("SET SESSION foreign_key_checks = 1")?;
                let added = self.exec(&format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}){}",
                    quote(name),
                    quote(&cname),
                    cols.join(", "),
                    quote(ref_name),
                    refs.join(", "),
                    fk.actions_sql()
                ));
                self.exec("SET SESSION foreign_key_checks = 0")?;
                added?;
            }
        }
        Ok(notes)
    }
}

/// Seconds `lock_run` waits for the run lock: long enough for the server to release the
/// lock of a session that has just ended, short enough that a second import of a running
/// one still exits 75 at once for a person.
const RUN_LOCK_WAIT_S: u32 = 2;

/// The GET_LOCK name of a run: bundle id and a hash of the database (≤ 64 characters).
pub fn run_lock_name(bundle_id: &str, database: &str) -> String {
    let h = Sha256::digest(database.as_bytes());
    format!("ferry-run:{bundle_id}:{}", &hex::encode(h)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::EnumType;

    fn col(ty: ColumnType, source_type: &str) -> Column {
        Column {
            name: "c".into(),
            ty,
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
    fn declared_types_are_rebuilt_or_refused() {
        let c = col(
            ColumnType::Utf8,
            "varchar(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        );
        assert_eq!(
            declared_type("t", &c).unwrap(),
            "varchar(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        );
        assert_eq!(
            declared_type("t", &col(ColumnType::UInt32, "int(10) unsigned")).unwrap(),
            "int(10) unsigned"
        );
        let mut e = col(
            ColumnType::Utf8,
            "enum('a''b','x') CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        );
        e.enum_type = Some(EnumType {
            schema: "db".into(),
            name: "enum".into(),
            labels: vec!["a'b".into(), "x\\y".into()],
        });
        assert_eq!(
            declared_type("t", &e).unwrap(),
            "enum('a''b','x\\y') CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        );
        assert!(declared_type("t", &col(ColumnType::Utf8, "int); DROP TABLE x; --")).is_err());
        assert!(declared_type("t", &col(ColumnType::Utf8, "enum('a')")).is_err());
    }

    #[test]
    fn declared_types_carry_no_column_constraints_or_attributes() {
        // What MySQL and MariaDB print as COLUMN_TYPE (and ferry appends) goes through.
        for ty in [
            "int(10) unsigned zerofill",
            "int",
            "int unsigned",
            "bigint(20) unsigned",
            "double unsigned",
            "float(7,4)",
            "decimal(65,30)",
            "decimal(10,2) unsigned",
            "timestamp(6)",
            "datetime(6)",
            "bit(8)",
            "year(4)",
            "year",
            "tinyint(1)",
            "mediumtext",
            "longblob",
            "varbinary(255)",
            "inet6",
            "uuid",
            "geometrycollection",
            "json",
            "varchar(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
            "char(5) CHARACTER SET latin1 COLLATE latin1_swedish_ci",
            "longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        ] {
            assert_eq!(
                declared_type("t", &col(ColumnType::Utf8, ty)).unwrap(),
                ty,
                "{ty}"
            );
        }
        // A key holder's constraints and attributes after a type name are refused.
        for ty in [
            "int unique key",
            "int unique",
            "int key",
            "int primary key",
            "int default 5",
            "int invisible",
            "int not null",
            "int null",
            "int as (5)",
            "int generated always as (5) stored",
            "int check (1)",
            "int references t (1)",
            "int serial default value",
            "serial",
            "int auto_increment",
            "timestamp on update localtime",
            "int with system versioning",
            "int storage disk",
            "point srid 4326",
            "text charset latin1",
            "text character set latin1",
            "text collate utf8mb4_bin",
            "int comment",
            "INT UNIQUE",
            "Int Primary Key",
            "int(10) unsigned KEY",
            "varchar(40) unique CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        ] {
            let e = declared_type("t", &col(ColumnType::Int32, ty))
                .expect_err(ty)
                .to_string();
            assert!(
                e.contains("table t, column c: type")
                    && e.contains("is not one ferry will put into DDL"),
                "{ty}: {e}"
            );
        }
    }

    #[test]
    fn values_take_their_mysql_text_forms() {
        assert_eq!(
            format_time(-(838 * 3600 + 59 * 60 + 59) * 1_000_000),
            "-838:59:59.000000"
        );
        assert_eq!(format_time(1), "00:00:00.000001");
        assert!(fits_decimal_65_30("-123.450000000000000000000000000000000"));
        assert!(!fits_decimal_65_30(&"9".repeat(36)));
        assert!(!fits_decimal_65_30("NaN"));
        assert!(!fits_decimal_65_30(""));
        assert_eq!(
            crate::types::text::format_decimal256(arrow::datatypes::i256::from_i128(-5), 3),
            "-0.005"
        );
        let f = flavour(true, "10.11.19-MariaDB-0+deb12u1");
        assert!(f.uuid_type);
        assert_eq!(
            mysql_type(&col(ColumnType::Utf8, "character varying(40)"), false, &f).sql_type,
            "varchar(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"
        );
        assert_eq!(
            mysql_type(&col(ColumnType::Utf8, "text"), true, &f).sql_type,
            "varchar(768) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"
        );
        assert!(run_lock_name(&"a".repeat(32), "some database").len() <= 64);
    }
}
