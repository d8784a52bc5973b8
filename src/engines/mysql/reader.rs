//! MySQL/MariaDB reader: one `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY` for
//! all tables, schema captured from `information_schema`, and rows streamed through a
//! prepared statement (binary protocol: typed values, exact decimals as text) straight into
//! Arrow builders, one batch at a time.
//!
//! What it must not do: buffer a table, change a value silently (a zero date is an error
//! unless the operator asked for NULL), or guess a type: a column whose type it does not
//! know travels as its text form and is restored through the server on a same-engine import.

use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
    UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::i256;
use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlRow};
use sqlx::{AssertSqlSafe, Connection, Decode, MySql, Row};

use crate::redact::display_url;
use crate::source::{BatchLimits, Estimate, Rows, Selection, Source, ZeroDates};
use crate::storage::runtime;
use crate::types::SourceInfo;
use crate::types::identity::SourceIdentity;
use crate::types::{
    Check, Column, ColumnType, EnumType, FkAction, ForeignKey, Generated, Identity, IdentityKind,
    Index, TableDef,
};
use crate::{Error, Result};

/// `` `name` `` with embedded backticks doubled: the only way names reach SQL.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A string literal for SQL run under `NO_BACKSLASH_ESCAPES` (only `'` needs doubling).
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `mariadb://` is accepted as a synonym of `mysql://`.
pub fn normalise_url(url: &str) -> String {
    match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_string(),
    }
}

/// Server error numbers that mean "try again": lock wait timeout, deadlock, server
/// shutdown, connection killed, query interrupted, too many connections.
pub const TEMPORARY_ERRORS: [u16; 8] = [1205, 1213, 1053, 1927, 1317, 1040, 2006, 2013];

/// Whether an error is the connection (or a transient server state) failing.
pub fn is_temporary(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Protocol(m) => m.contains("EOF") || m.contains("closed"),
        sqlx::Error::Database(d) => d
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|m| TEMPORARY_ERRORS.contains(&m.number())),
        _ => false,
    }
}

/// A server message without the position MySQL and MariaDB end it with (` at row 948`,
/// ` at line 1`): a row of a multi-row INSERT or a line of a statement ferry wrote, which
/// tells the operator nothing (the loader names the part's row itself where it knows it).
pub fn server_message(m: &str) -> String {
    static POSITION: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\s+at (?:row|line) \d+\s*$").expect("a valid regex")
    });
    POSITION.replace(m, "").into_owned()
}

/// A database error, as temporary (exit 75) when the connection itself failed.
pub fn my_err(what: &str, e: sqlx::Error) -> Error {
    // A lock wait that ran out (error 1205): the loader names who holds the lock.
    if let sqlx::Error::Database(d) = &e
        && d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|m| m.number() == 1205)
    {
        return Error::Locked(format!(
            "{what}: connection to MySQL/MariaDB lost or busy ({e}); safe to re-run"
        ));
    }
    if is_temporary(&e) {
        return Error::Temporary(format!(
            "{what}: connection to MySQL/MariaDB lost or busy ({e}); safe to re-run"
        ));
    }
    Error::Database(format!("{what}: {}", server_message(&e.to_string())))
}

/// Connects (utf8mb4, time zone +00:00 so TIMESTAMP values are UTC), mapping an unreachable
/// server to a temporary failure. Returns the connection and the URL's database.
pub fn connect(url: &str) -> Result<(MySqlConnection, String)> {
    connect_on(runtime(), url)
}

/// [`connect`] on a given runtime, which must then drive the connection for its lifetime.
pub fn connect_on(rt: &tokio::runtime::Runtime, url: &str) -> Result<(MySqlConnection, String)> {
    let norm = normalise_url(url);
    let parsed = url::Url::parse(&norm)
        .map_err(|e| Error::Usage(format!("{}: not a valid URL ({e})", display_url(url))))?;
    let database = parsed.path().trim_start_matches('/').to_string();
    if database.is_empty() || database.contains('/') {
        return Err(Error::Usage(format!(
            "{}: name the database in the URL, as mysql://user:pw@host:port/DATABASE",
            display_url(url)
        )));
    }
    let opts = MySqlConnectOptions::from_str(&norm)
        .map_err(|e| {
            Error::Usage(format!(
                "{}: {}",
                display_url(url),
                crate::redact::scrub(&e.to_string(), url)
            ))
        })?
        .charset("utf8mb4")
        .timezone(Some("+00:00".to_string()));
    crate::source::tls_provider();
    let conn = rt
        .block_on(MySqlConnection::connect_with(&opts))
        .map_err(|e| match e {
            e if let Some(why) = crate::source::tls_failure(&e) => Error::Database(format!(
                "cannot connect to MySQL/MariaDB at {} over TLS (ssl-mode): {}",
                display_url(url),
                crate::redact::scrub(&why, url)
            )),
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) => Error::Temporary(format!(
                "cannot reach MySQL/MariaDB at {}: {}",
                display_url(url),
                crate::redact::scrub(&e.to_string(), url)
            )),
            other => Error::Database(format!(
                "cannot connect to {}: {}",
                display_url(url),
                crate::redact::scrub(&other.to_string(), url)
            )),
        })?;
    Ok((conn, database))
}

/// The raw bytes of a value (binary protocol: little-endian numbers, length byte first for
/// dates and times, text for decimals); `None` for SQL NULL.
pub fn raw(row: &MySqlRow, i: usize) -> Result<Option<&[u8]>> {
    let v = row
        .try_get_raw(i)
        .map_err(|e| Error::Database(format!("reading column {i}: {e}")))?;
    // Decoding bytes fails only on NULL; it does not treat zero dates as NULL (is_null does).
    Ok(<&[u8] as Decode<MySql>>::decode(v).ok())
}

/// Every value of a row as text (for catalog queries that CAST their columns to CHAR).
pub fn texts(row: &MySqlRow) -> Result<Vec<Option<String>>> {
    (0..row.len())
        .map(|i| Ok(raw(row, i)?.map(|b| String::from_utf8_lossy(b).into_owned())))
        .collect()
}

/// Runs a catalog query whose parameters are strings; every column comes back as text.
pub fn query_texts(
    conn: &mut MySqlConnection,
    what: &str,
    sql: &str,
    binds: &[&str],
) -> Result<Vec<Vec<Option<String>>>> {
    query_texts_on(runtime(), conn, what, sql, binds)
}

/// [`query_texts`] for a connection driven by `rt`.
pub fn query_texts_on(
    rt: &tokio::runtime::Runtime,
    conn: &mut MySqlConnection,
    what: &str,
    sql: &str,
    binds: &[&str],
) -> Result<Vec<Vec<Option<String>>>> {
    let mut q = sqlx::query(AssertSqlSafe(sql.to_string()));
    for b in binds {
        q = q.bind(*b);
    }
    let rows = rt
        .block_on(q.fetch_all(&mut *conn))
        .map_err(|e| my_err(what, e))?;
    rows.iter().map(texts).collect()
}

/// Runs statements through the text protocol (no result wanted).
pub fn exec(conn: &mut MySqlConnection, sql: &str) -> Result<()> {
    exec_on(runtime(), conn, sql)
}

/// [`exec`] for a connection driven by `rt`.
pub fn exec_on(rt: &tokio::runtime::Runtime, conn: &mut MySqlConnection, sql: &str) -> Result<()> {
    rt.block_on(sqlx::raw_sql(AssertSqlSafe(sql.to_string())).execute(&mut *conn))
        .map(|_| ())
        .map_err(|e| {
            let first: String = sql
                .lines()
                .next()
                .unwrap_or(sql)
                .chars()
                .take(120)
                .collect();
            my_err(&first, e)
        })
}

/// Whether the server is MariaDB (its version string says so), and its version.
pub fn server_version(conn: &mut MySqlConnection) -> Result<(bool, String)> {
    server_version_on(runtime(), conn)
}

/// [`server_version`] for a connection driven by `rt`.
pub fn server_version_on(
    rt: &tokio::runtime::Runtime,
    conn: &mut MySqlConnection,
) -> Result<(bool, String)> {
    let rows = query_texts_on(
        rt,
        conn,
        "reading the server version",
        "SELECT VERSION()",
        &[],
    )?;
    let v = rows
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .unwrap_or_default();
    Ok((v.to_ascii_lowercase().contains("mariadb"), v))
}

/// What `information_schema.COLUMNS` says about one column.
#[derive(Debug, Clone)]
pub struct MyColumn {
    pub name: String,
    /// `DATA_TYPE`, lowercase: `int`, `varchar`, `enum`, `json`, …
    pub data_type: String,
    /// `COLUMN_TYPE` as the server prints it: `int(10) unsigned`, `enum('a','b')`.
    pub column_type: String,
    pub charset: Option<String>,
    pub collation: Option<String>,
    pub nullable: bool,
    pub default: Option<String>,
    pub extra: String,
    /// MariaDB's JSON: a LONGTEXT with a `json_valid` CHECK.
    pub json_check: bool,
    /// A generated column's expression (`GENERATION_EXPRESSION`).
    pub generation: Option<String>,
}

/// How a column's values arrive and are turned into Arrow values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Int {
        signed: bool,
    },
    Bool,
    Float,
    Double,
    Decimal,
    Text,
    /// Text of an `ascii` column, read as its stored bytes: the server would turn a byte
    /// above 0x7F into `?` on the way to utf8mb4.
    Ascii,
    Bytes,
    Date,
    DateTime,
    Time,
    Uuid,
}

/// `COLUMN_TYPE` in the one case ferry compares it in: lowercase, except the members of an
/// ENUM or SET, which are data (`enum('G','PG')` is not `enum('g','pg')`).
fn column_type_case(raw: &str) -> String {
    let lower = raw.to_lowercase();
    if lower.starts_with("enum(") || lower.starts_with("set(") {
        let open = raw.find('(').unwrap_or(0);
        format!("{}{}", raw[..open].to_ascii_lowercase(), &raw[open..])
    } else {
        lower
    }
}

/// The lowercase base type of a `COLUMN_TYPE`, without arguments and attributes.
fn base_of(column_type: &str) -> &str {
    column_type
        .split(['(', ' '])
        .next()
        .unwrap_or(column_type)
        .trim()
}

/// The canonical type of a column and whether it travels as its text form. `boolean_ok`
/// says a `tinyint(1)` column is read as a boolean (not yet seen holding other values).
pub fn map_column(c: &MyColumn, boolean_ok: bool) -> (ColumnType, bool) {
    let unsigned = c.column_type.contains("unsigned");
    let ty = match c.data_type.as_str() {
        "tinyint" if unsigned => ColumnType::UInt8,
        "tinyint"
            if base_of(&c.column_type) == "tinyint"
                && c.column_type == "tinyint(1)"
                && boolean_ok =>
        {
            ColumnType::Boolean
        }
        "tinyint" => ColumnType::Int16,
        "smallint" if unsigned => ColumnType::UInt16,
        "smallint" | "year" => ColumnType::Int16,
        "mediumint" | "int" | "integer" if unsigned => ColumnType::UInt32,
        "mediumint" | "int" | "integer" => ColumnType::Int32,
        "bigint" if unsigned => ColumnType::UInt64,
        "bigint" => ColumnType::Int64,
        "decimal" | "numeric" | "fixed" | "dec" => match precision_scale(&c.column_type) {
            Some((p, s)) if p <= 38 => ColumnType::Decimal128 {
                precision: p,
                scale: s,
            },
            Some((p, s)) => ColumnType::Decimal256 {
                precision: p,
                scale: s,
            },
            None => return (ColumnType::Utf8, true),
        },
        "float" => ColumnType::Float32,
        "double" | "real" | "double precision" => ColumnType::Float64,
        "bit" => ColumnType::Binary,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" if c.json_check => {
            ColumnType::Json
        }
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set" => {
            ColumnType::Utf8
        }
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            ColumnType::Binary
        }
        "json" => ColumnType::Json,
        "date" => ColumnType::Date32,
        "datetime" => ColumnType::Timestamp { utc: false },
        "timestamp" => ColumnType::Timestamp { utc: true },
        "time" => ColumnType::Time64,
        "uuid" => ColumnType::Uuid,
        // Stored bytes, restored as they are; no portable form (refused cross-engine).
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => {
            return (ColumnType::Binary, true);
        }
        _ => return (ColumnType::Utf8, true),
    };
    (ty, false)
}

/// Character sets whose every stored string converts to utf8mb4 without loss (latin1 is
/// MySQL's cp1252 with the five undefined bytes mapped to C1 controls: all 256 bytes map).
/// `ascii` is read as bytes and checked by ferry; anything else is refused at export start.
pub const LOSSLESS_CHARSETS: &[&str] = &["utf8mb4", "utf8mb3", "utf8", "latin1", "binary"];

/// How a text value arrives: converted by the server, or as bytes ferry checks.
fn text_wire(c: &MyColumn) -> Wire {
    if c.charset.as_deref() == Some("ascii") {
        Wire::Ascii
    } else {
        Wire::Text
    }
}

fn wire_of(c: &MyColumn, ty: &ColumnType, as_text: bool) -> Wire {
    if as_text {
        return if *ty == ColumnType::Binary {
            Wire::Bytes
        } else {
            Wire::Text
        };
    }
    match ty {
        ColumnType::Boolean => Wire::Bool,
        ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 => Wire::Int { signed: true },
        ColumnType::UInt8 | ColumnType::UInt16 | ColumnType::UInt32 | ColumnType::UInt64 => {
            Wire::Int { signed: false }
        }
        ColumnType::Float32 => Wire::Float,
        ColumnType::Float64 => Wire::Double,
        ColumnType::Decimal128 { .. } | ColumnType::Decimal256 { .. } => Wire::Decimal,
        ColumnType::Binary => Wire::Bytes,
        ColumnType::Date32 => Wire::Date,
        ColumnType::Timestamp { .. } => Wire::DateTime,
        ColumnType::Time64 => Wire::Time,
        ColumnType::Uuid => Wire::Uuid,
        _ if c.data_type == "year" => Wire::Int { signed: true },
        _ => text_wire(c),
    }
}

/// `(p,s)` of `decimal(p,s)`.
fn precision_scale(column_type: &str) -> Option<(u8, i8)> {
    let inner = column_type.split_once('(')?.1.split_once(')')?.0;
    let mut it = inner.split(',').map(|s| s.trim().parse::<u8>());
    let p = it.next()?.ok()?;
    let s = match it.next() {
        Some(s) => s.ok()?,
        None => 0,
    };
    Some((p, i8::try_from(s).ok()?))
}

/// The labels of `enum('a','b')` / `set(…)` as the server prints them: quotes doubled and
/// backslash escapes. `None` when the text is not exactly that shape.
pub fn parse_labels(column_type: &str) -> Option<Vec<String>> {
    let open = column_type.find('(')?;
    let base = &column_type[..open];
    if base != "enum" && base != "set" {
        return None;
    }
    let body = column_type[open + 1..].strip_suffix(')')?;
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        if chars.next()? != '\'' {
            return None;
        }
        let mut label = String::new();
        loop {
            match chars.next()? {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => label.push(match chars.next()? {
                    '0' => '\0',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'b' => '\u{8}',
                    'Z' => '\u{1a}',
                    other => other,
                }),
                c => label.push(c),
            }
        }
        labels.push(label);
        match chars.next() {
            None => return Some(labels),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// The source type recorded in the catalog: `COLUMN_TYPE`, then the character set and
/// collation for text columns, so a same-engine import recreates the column exactly.
fn source_type_of(c: &MyColumn, ty: &ColumnType) -> String {
    if c.json_check && *ty == ColumnType::Json {
        return "json".into();
    }
    let mut s = c.column_type.clone();
    if let (Some(cs), Some(co)) = (&c.charset, &c.collation)
        && cs != "binary"
    {
        s.push_str(&format!(" CHARACTER SET {cs} COLLATE {co}"));
    }
    s
}

/// A default ferry recreates: a number, a quoted string without backslashes (MariaDB prints
/// defaults as SQL), NULL is no default at all.
fn constant_default(c: &MyColumn, mariadb: bool) -> Option<String> {
    let raw = c.default.as_deref()?;
    let d = raw.trim();
    // MariaDB prints a NULL default as `NULL` (strings come quoted); MySQL gives SQL NULL
    // for it, so its `NULL` is the four-letter string.
    if (mariadb && d.eq_ignore_ascii_case("NULL")) || c.extra.contains("DEFAULT_GENERATED") {
        return None;
    }
    // Bit and hex literals (`b'0'`, `0x1F`), as both servers print them.
    let bits = d
        .strip_prefix("b'")
        .and_then(|x| x.strip_suffix('\''))
        .is_some_and(|x| !x.is_empty() && x.bytes().all(|b| b == b'0' || b == b'1'));
    let hex = d
        .strip_prefix("0x")
        .is_some_and(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_hexdigit()));
    if bits || hex {
        return Some(d.to_string());
    }
    let number = |x: &str| {
        let x = x.strip_prefix('-').unwrap_or(x);
        !x.is_empty()
            && x.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && x.matches('.').count() <= 1
    };
    if number(d) {
        return Some(d.to_string());
    }
    if mariadb {
        let inner = d.strip_prefix('\'')?.strip_suffix('\'')?;
        if inner.contains('\\') || inner.replace("''", "").contains('\'') {
            return None;
        }
        return Some(d.to_string());
    }
    // MySQL prints the bare value of a literal default (spaces and all).
    if raw.contains('\\') || raw.contains('(') {
        return None;
    }
    Some(literal(raw))
}

/// A column's AUTO_INCREMENT, generation expression and default as the catalog records
/// them; an expression outside the expression rules is named in `notes` (a generated
/// column's values then travel as plain data).
fn column_extras(
    c: &MyColumn,
    table: &str,
    columns: &[String],
    mariadb: bool,
    notes: &mut Vec<String>,
) -> (Option<Identity>, Option<Generated>, Option<String>) {
    let scope = crate::expr::Scope {
        columns,
        value: false,
        any_function: false,
    };
    let identity = c.extra.contains("AUTO_INCREMENT").then_some(Identity {
        kind: IdentityKind::AutoIncrement,
    });
    let is_generated = (c.extra.contains("STORED GENERATED")
        || c.extra.contains("VIRTUAL GENERATED")
        || c.extra.contains("PERSISTENT")
        || c.extra == "VIRTUAL")
        && c.generation.is_some();
    if is_generated {
        let expr = c.generation.clone().unwrap_or_default();
        return match crate::expr::rebuild(&expr, crate::expr::Engine::MySql, scope) {
            Ok(_) => (
                identity,
                Some(Generated {
                    expr,
                    stored: !c.extra.contains("VIRTUAL"),
                }),
                None,
            ),
            Err(why) => {
                notes.push(format!(
                    "not carried: the expression of generated column {table}.{}: it {why}; its \
                     values travel as plain data",
                    c.name
                ));
                (identity, None, None)
            }
        };
    }
    if c.extra.contains("ON UPDATE") {
        notes.push(format!(
            "not carried: ON UPDATE of {table}.{} (the column keeps its values, the target does not \
             update it by itself)",
            c.name
        ));
    }
    if let Some(d) = constant_default(c, mariadb) {
        return (identity, None, Some(d));
    }
    let raw = c.default.as_deref().map(str::trim);
    let expression = match raw {
        Some(d) if mariadb => !d.eq_ignore_ascii_case("NULL"),
        Some(_) => c.extra.contains("DEFAULT_GENERATED"),
        None => false,
    };
    let default = match raw.filter(|_| expression) {
        Some(d) => match crate::expr::rebuild(d, crate::expr::Engine::MySql, scope) {
            Ok(_) => Some(d.to_string()),
            Err(why) => {
                notes.push(format!(
                    "not carried: DEFAULT of {table}.{}: it {why}",
                    c.name
                ));
                None
            }
        },
        None => None,
    };
    (identity, None, default)
}

pub struct MySource {
    conn: MySqlConnection,
    /// Drives `conn` only: rows are read on the reader's own thread, with no hand-off to the
    /// shared runtime's workers.
    rt: tokio::runtime::Runtime,
    database: String,
    mariadb: bool,
    snapshot: Option<String>,
    zero_dates: ZeroDates,
    /// `tinyint(1)` columns known to hold more than 0 and 1: read as integers.
    integer_flags: Vec<(String, String)>,
    /// The source id, from the server itself.
    identity: SourceIdentity,
}

/// Who the server is, whatever the URL calls it: MySQL's `@@server_uuid` (made once, at
/// the first start of the data directory) and the schema. MariaDB has no `server_uuid`:
/// there, the server's `@@hostname`, `@@datadir`, `@@port` and `@@server_id` and the schema
/// (a server moved to another host, or a container recreated with another hostname, is
/// then another source).
fn identity(
    rt: &tokio::runtime::Runtime,
    conn: &mut MySqlConnection,
    database: &str,
) -> Result<SourceIdentity> {
    let first = |rows: Vec<Vec<Option<String>>>| -> Vec<String> {
        rows.into_iter()
            .next()
            .unwrap_or_default()
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect()
    };
    if let Ok(rows) = query_texts_on(
        rt,
        conn,
        "reading the server's identity",
        "SELECT CAST(@@server_uuid AS CHAR)",
        &[],
    ) && let Some(uuid) = first(rows).into_iter().next().filter(|u| !u.is_empty())
    {
        return Ok(SourceIdentity::new(
            "mysql",
            "uuid",
            &format!("{uuid}/{database}"),
            format!("MySQL @@server_uuid {uuid} and schema {database}"),
        ));
    }
    let row = first(query_texts_on(
        rt,
        conn,
        "reading the server's identity",
        "SELECT CAST(@@hostname AS CHAR), CAST(@@datadir AS CHAR), CAST(@@port AS CHAR), \
         CAST(@@server_id AS CHAR)",
        &[],
    )?);
    let get = |i: usize| row.get(i).cloned().unwrap_or_default();
    let (host, dir, port, server) = (get(0), get(1), get(2), get(3));
    Ok(SourceIdentity::new(
        "mysql",
        "host",
        &format!("{host}:{dir}:{port}:{server}/{database}"),
        format!(
            "@@hostname {host}, @@datadir {dir}, @@port {port}, @@server_id {server} and schema {database} \
             (the server has no @@server_uuid)"
        ),
    ))
}

impl MySource {
    pub fn open(url: &str, options: crate::source::SourceOptions) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start a reader runtime", e))?;
        let (mut conn, database) = connect_on(&rt, url)?;
        let (mariadb, _) = server_version_on(&rt, &mut conn)?;
        let identity = identity(&rt, &mut conn, &database)?;
        // The reader may wait on a slow writer (a part closing, an upload) with rows in
        // flight: the server must not give up sending them after its default 60 s.
        exec_on(
            &rt,
            &mut conn,
            "SET SESSION net_write_timeout = GREATEST(@@net_write_timeout, 3600)",
        )?;
        // Literals in the SQL this reader sends (a `--where` predicate, a chain's cursor
        // bound) are printed with quotes doubled and nothing else: the server must read a
        // backslash as itself, whatever the server's default sql_mode says.
        exec_on(
            &rt,
            &mut conn,
            "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'NO_BACKSLASH_ESCAPES')",
        )?;
        Ok(MySource {
            conn,
            rt,
            database,
            mariadb,
            snapshot: None,
            zero_dates: options.zero_dates,
            integer_flags: Vec::new(),
            identity,
        })
    }

    fn columns(&mut self, table: &str) -> Result<Vec<MyColumn>> {
        let db = self.database.clone();
        let rows = query_texts_on(
            &self.rt,
            &mut self.conn,
            "reading columns",
            "SELECT CAST(c.COLUMN_NAME AS CHAR), CAST(LOWER(c.DATA_TYPE) AS CHAR), CAST(c.COLUMN_TYPE AS CHAR), \
                    CAST(c.CHARACTER_SET_NAME AS CHAR), CAST(c.COLLATION_NAME AS CHAR), CAST(c.IS_NULLABLE AS CHAR), \
                    CAST(c.COLUMN_DEFAULT AS CHAR), CAST(c.EXTRA AS CHAR), CAST(c.GENERATION_EXPRESSION AS CHAR) \
             FROM information_schema.COLUMNS c \
             WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION",
            &[&db, table],
        )?;
        let checks: Vec<String> = if self.mariadb {
            query_texts_on(
                &self.rt,
                &mut self.conn,
                "reading check constraints",
                "SELECT CAST(CHECK_CLAUSE AS CHAR) FROM information_schema.CHECK_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
                &[&db, table],
            )?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect()
        } else {
            vec![]
        };
        Ok(rows
            .into_iter()
            .map(|r| {
                let get = |i: usize| r.get(i).cloned().flatten();
                let name = get(0).unwrap_or_default();
                let json_check = checks
                    .iter()
                    .any(|c| c.trim() == format!("json_valid({})", quote(&name)));
                MyColumn {
                    data_type: get(1).unwrap_or_default(),
                    column_type: column_type_case(&get(2).unwrap_or_default()),
                    charset: get(3),
                    collation: get(4),
                    nullable: get(5).as_deref() == Some("YES"),
                    default: get(6),
                    extra: get(7).unwrap_or_default().to_ascii_uppercase(),
                    generation: get(8).filter(|g| !g.is_empty()),
                    json_check,
                    name,
                }
            })
            .collect())
    }

    /// Every base table and view of the URL's database: (name, is a view).
    fn listed(&mut self) -> Result<Vec<(String, bool)>> {
        let db = self.database.clone();
        Ok(query_texts_on(&self.rt, &mut self.conn,
            "listing tables",
            "SELECT CAST(TABLE_NAME AS CHAR), CAST(TABLE_TYPE = 'VIEW' AS CHAR) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_TYPE IN ('BASE TABLE', 'VIEW') AND TABLE_NAME NOT LIKE '\\_ferry\\_%' \
             ORDER BY TABLE_NAME",
            &[&db],
        )?
        .into_iter()
        .filter_map(|r| {
            let mut r = r.into_iter();
            let name = r.next().flatten()?;
            Some((name, r.next().flatten().as_deref() == Some("1")))
        })
        .collect())
    }

    fn table_def(&mut self, name: &str) -> Result<TableDef> {
        let cols = self.columns(name)?;
        // Generated columns are read too: their values travel as data (another engine
        // loads them as such; the same engine recreates the expression).
        let readable: Vec<MyColumn> = cols;
        let names: Vec<String> = readable.iter().map(|c| c.name.clone()).collect();
        let mut notes = Vec::new();
        if readable.is_empty() {
            return Err(Error::Data(format!(
                "table {name} has no columns ferry can read"
            )));
        }
        let mut columns = Vec::new();
        for c in &readable {
            // tinyint(1) (BOOLEAN) travels as a boolean unless a value other than 0 and 1
            // showed up in an earlier read: the reader then stopped with `Error::NotBoolean`
            // and listed the column here (see `source::read_retyping`).
            // (No scan up front: it cost a full table read before the first row.)
            let boolean_ok = c.data_type == "tinyint"
                && c.column_type == "tinyint(1)"
                && !self
                    .integer_flags
                    .iter()
                    .any(|(t, col)| t == name && *col == c.name);
            let (ty, as_text) = map_column(c, boolean_ok);
            if let Some(cs) = c.charset.as_deref()
                && cs != "ascii"
                && !LOSSLESS_CHARSETS.contains(&cs)
            {
                return Err(Error::Data(format!(
                    "table {name}, column {} ({}): character set {cs} does not always convert to \
                     utf8mb4 without loss (the server sends '?' for what it cannot map), so ferry \
                     does not read it; convert the column (ALTER TABLE … CONVERT TO CHARACTER SET \
                     utf8mb4) or leave the table out with --exclude",
                    c.name, c.column_type
                )));
            }
            let enum_type = if c.data_type == "enum" || c.data_type == "set" {
                let labels = parse_labels(&c.column_type).ok_or_else(|| {
                    Error::Data(format!(
                        "table {name}, column {}: cannot read the members of {}",
                        c.name, c.column_type
                    ))
                })?;
                Some(EnumType {
                    schema: self.database.clone(),
                    name: c.data_type.clone(),
                    labels,
                })
            } else {
                None
            };
            let (identity, generated, default) =
                column_extras(c, name, &names, self.mariadb, &mut notes);
            columns.push(Column {
                name: c.name.clone(),
                source_type: source_type_of(c, &ty),
                ty,
                nullable: c.nullable,
                default,
                enum_type,
                domain_type: None,
                as_text,
                text_reason: None,
                collation: None,
                identity,
                generated,
            });
        }
        let checks = self.checks(name, &readable, &names, &mut notes)?;
        let db = self.database.clone();
        let idx_rows = query_texts_on(
            &self.rt,
            &mut self.conn,
            "reading indexes",
            "SELECT CAST(INDEX_NAME AS CHAR), CAST(NON_UNIQUE AS CHAR), CAST(COLUMN_NAME AS CHAR), \
                    CAST(SUB_PART AS CHAR), CAST(INDEX_TYPE AS CHAR) \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
            &[&db, name],
        )?;
        let mut primary_key = Vec::new();
        let mut indexes: Vec<Index> = Vec::new();
        let mut skipped: Vec<String> = Vec::new();
        for r in idx_rows {
            let get = |i: usize| r.get(i).cloned().flatten();
            let iname = get(0).unwrap_or_default();
            let col = get(2);
            let plain = col.is_some()
                && get(3).is_none()
                && matches!(get(4).as_deref(), Some("BTREE") | Some("HASH"));
            if !plain {
                skipped.push(iname);
                continue;
            }
            let col = col.unwrap_or_default();
            if iname == "PRIMARY" {
                primary_key.push(col);
                continue;
            }
            match indexes.iter_mut().find(|i| i.name == iname) {
                Some(i) => i.columns.push(col),
                None => indexes.push(Index {
                    name: iname,
                    unique: get(1).as_deref() == Some("0"),
                    columns: vec![col],
                    ..Default::default()
                }),
            }
        }
        // An index with a prefix, an expression or a FULLTEXT/SPATIAL kind is not carried
        // at all rather than recreated differently.
        indexes.retain(|i| !skipped.contains(&i.name));
        if skipped.iter().any(|s| s == "PRIMARY") {
            primary_key.clear();
        }
        let fk_rows = query_texts_on(
            &self.rt,
            &mut self.conn,
            "reading foreign keys",
            "SELECT CAST(k.CONSTRAINT_NAME AS CHAR), CAST(k.COLUMN_NAME AS CHAR), CAST(k.REFERENCED_TABLE_SCHEMA AS CHAR), \
                    CAST(k.REFERENCED_TABLE_NAME AS CHAR), CAST(k.REFERENCED_COLUMN_NAME AS CHAR), \
                    CAST(r.DELETE_RULE AS CHAR), CAST(r.UPDATE_RULE AS CHAR) \
             FROM information_schema.KEY_COLUMN_USAGE k \
             LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS r ON r.CONSTRAINT_SCHEMA = k.TABLE_SCHEMA \
                  AND r.TABLE_NAME = k.TABLE_NAME AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
             WHERE k.TABLE_SCHEMA = ? AND k.TABLE_NAME = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL \
             ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
            &[&db, name],
        )?;
        let mut foreign_keys: Vec<ForeignKey> = Vec::new();
        for r in fk_rows {
            let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            let fname = get(0);
            let ref_schema = get(2);
            match foreign_keys.iter_mut().find(|f| f.name == fname) {
                Some(f) => {
                    f.columns.push(get(1));
                    f.ref_columns.push(get(4));
                }
                None => foreign_keys.push(ForeignKey {
                    name: fname,
                    columns: vec![get(1)],
                    ref_schema: (ref_schema != self.database).then_some(ref_schema),
                    ref_table: get(3),
                    ref_columns: vec![get(4)],
                    on_delete: FkAction::parse(&get(5)),
                    on_update: FkAction::parse(&get(6)),
                }),
            }
        }
        Ok(TableDef {
            schema: None,
            name: name.to_string(),
            columns,
            primary_key,
            indexes,
            foreign_keys,
            partitioning: None,
            checks,
            not_carried: notes,
            ..Default::default()
        })
    }

    /// The table's CHECK constraints (table and column level), each checked against the
    /// expression rules; MariaDB's own `json_valid` CHECK of a JSON column is the type's.
    fn checks(
        &mut self,
        table: &str,
        cols: &[MyColumn],
        names: &[String],
        notes: &mut Vec<String>,
    ) -> Result<Vec<Check>> {
        let db = self.database.clone();
        let sql = if self.mariadb {
            "SELECT CAST(CONSTRAINT_NAME AS CHAR), CAST(CHECK_CLAUSE AS CHAR) \
             FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY 1"
        } else {
            "SELECT CAST(cc.CONSTRAINT_NAME AS CHAR), CAST(cc.CHECK_CLAUSE AS CHAR) \
             FROM information_schema.CHECK_CONSTRAINTS cc JOIN information_schema.TABLE_CONSTRAINTS tc \
               ON tc.CONSTRAINT_SCHEMA = cc.CONSTRAINT_SCHEMA AND tc.CONSTRAINT_NAME = cc.CONSTRAINT_NAME \
             WHERE tc.CONSTRAINT_TYPE = 'CHECK' AND tc.TABLE_SCHEMA = ? AND tc.TABLE_NAME = ? ORDER BY 1"
        };
        let rows = query_texts_on(
            &self.rt,
            &mut self.conn,
            "reading check constraints",
            sql,
            &[&db, table],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            let (cname, expr) = (get(0), get(1));
            if cols
                .iter()
                .any(|c| c.json_check && expr.trim() == format!("json_valid({})", quote(&c.name)))
            {
                continue;
            }
            let scope = crate::expr::Scope {
                columns: names,
                value: false,
                any_function: false,
            };
            match crate::expr::rebuild(&expr, crate::expr::Engine::MySql, scope) {
                Ok(_) => out.push(Check { name: cname, expr }),
                Err(why) => notes.push(format!("not carried: CHECK {cname} on {table}: it {why}")),
            }
        }
        Ok(out)
    }

    /// The SELECT list: text-carried columns cast to their text form.
    fn select_expr(c: &crate::types::Column) -> String {
        if c.as_text && c.ty != ColumnType::Binary {
            format!("CAST({} AS CHAR)", quote(&c.name))
        } else {
            quote(&c.name)
        }
    }
}

/// Builds one column of a batch from raw binary-protocol values; chosen once per column.
trait ColumnReader: Send {
    /// Appends one non-NULL value (its raw bytes), or says why it does not fit.
    fn push(&mut self, v: &[u8]) -> std::result::Result<usize, String>;
    fn push_null(&mut self);
    fn finish(&mut self) -> ArrayRef;
}

fn le_signed(v: &[u8]) -> std::result::Result<i64, String> {
    Ok(match v.len() {
        1 => i64::from(i8::from_le_bytes([v[0]])),
        2 => i64::from(i16::from_le_bytes([v[0], v[1]])),
        4 => i64::from(i32::from_le_bytes([v[0], v[1], v[2], v[3]])),
        8 => i64::from_le_bytes(v.try_into().map_err(|_| "bad integer")?),
        n => return Err(format!("an integer of {n} bytes on the wire")),
    })
}

fn le_unsigned(v: &[u8]) -> std::result::Result<u64, String> {
    Ok(match v.len() {
        1 => u64::from(v[0]),
        2 => u64::from(u16::from_le_bytes([v[0], v[1]])),
        4 => u64::from(u32::from_le_bytes([v[0], v[1], v[2], v[3]])),
        8 => u64::from_le_bytes(v.try_into().map_err(|_| "bad integer")?),
        n => return Err(format!("an integer of {n} bytes on the wire")),
    })
}

macro_rules! reader {
    ($name:ident, $builder:ty, |$b:ident, $v:ident| $body:expr) => {
        struct $name($builder);
        impl ColumnReader for $name {
            fn push(&mut self, $v: &[u8]) -> std::result::Result<usize, String> {
                let $b = &mut self.0;
                $body
            }
            fn push_null(&mut self) {
                self.0.append_null();
            }
            fn finish(&mut self) -> ArrayRef {
                Arc::new(self.0.finish())
            }
        }
    };
}

macro_rules! int_reader {
    ($name:ident, $builder:ty, $native:ty, $decode:ident) => {
        reader!($name, $builder, |b, v| {
            let x = $decode(v)?;
            b.append_value(
                <$native>::try_from(x)
                    .map_err(|_| format!("{x} does not fit {}", stringify!($native)))?,
            );
            Ok(std::mem::size_of::<$native>())
        });
    };
}

int_reader!(I16Reader, Int16Builder, i16, le_signed);
int_reader!(I32Reader, Int32Builder, i32, le_signed);
int_reader!(I64Reader, Int64Builder, i64, le_signed);
int_reader!(U8Reader, UInt8Builder, u8, le_unsigned);
int_reader!(U16Reader, UInt16Builder, u16, le_unsigned);
int_reader!(U32Reader, UInt32Builder, u32, le_unsigned);
int_reader!(U64Reader, UInt64Builder, u64, le_unsigned);

reader!(BoolReader, BooleanBuilder, |b, v| match le_signed(v)? {
    0 => {
        b.append_value(false);
        Ok(1)
    }
    1 => {
        b.append_value(true);
        Ok(1)
    }
    x => Err(format!("{x} in a column read as boolean")),
});

reader!(F32Reader, Float32Builder, |b, v| {
    let a: [u8; 4] = v.try_into().map_err(|_| "a FLOAT that is not 4 bytes")?;
    b.append_value(f32::from_le_bytes(a));
    Ok(4)
});

reader!(F64Reader, Float64Builder, |b, v| {
    let a: [u8; 8] = v.try_into().map_err(|_| "a DOUBLE that is not 8 bytes")?;
    b.append_value(f64::from_le_bytes(a));
    Ok(8)
});

reader!(TextReader, StringBuilder, |b, v| {
    let s = std::str::from_utf8(v).map_err(|e| format!("text is not valid UTF-8 ({e})"))?;
    b.append_value(s);
    Ok(s.len())
});

reader!(AsciiReader, StringBuilder, |b, v| {
    if !v.is_ascii()
        && let Some(i) = v.iter().position(|c| !c.is_ascii())
    {
        return Err(format!(
            "byte 0x{:02X} at offset {i} is not ASCII, in a column declared CHARACTER SET ascii \
             (the server would have sent it as '?'); fix the value, or convert the column to utf8mb4",
            v[i]
        ));
    }
    // Checked above: every byte is ASCII, so this cannot fail.
    let s = std::str::from_utf8(v).map_err(|e| e.to_string())?;
    b.append_value(s);
    Ok(s.len())
});

reader!(BytesReader, BinaryBuilder, |b, v| {
    b.append_value(v);
    Ok(v.len())
});

reader!(UuidReader, FixedSizeBinaryBuilder, |b, v| {
    let u = if v.len() == 16 {
        uuid::Uuid::from_slice(v).map_err(|e| e.to_string())?
    } else {
        let s = std::str::from_utf8(v).map_err(|e| e.to_string())?;
        uuid::Uuid::parse_str(s).map_err(|e| format!("{s:?} is not a UUID ({e})"))?
    };
    b.append_value(u.as_bytes()).map_err(|e| e.to_string())?;
    Ok(16)
});

/// A decimal as MySQL prints it (`-123.4500`) with exactly `scale` fraction digits, as
/// (negative, integer digits, fraction digits); `None` for anything else.
fn printed_decimal(v: &[u8], scale: i8) -> Option<(bool, &[u8], &[u8])> {
    let (neg, body) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    let (int, frac) = match body.iter().position(|&c| c == b'.') {
        Some(p) => (&body[..p], &body[p + 1..]),
        None => (body, &[][..]),
    };
    let digits = |d: &[u8]| d.iter().all(u8::is_ascii_digit);
    (!int.is_empty() && frac.len() == usize::try_from(scale).ok()? && digits(int) && digits(frac))
        .then_some((neg, int, frac))
}

/// The unscaled value of a printed decimal of at most 38 digits, read straight from the
/// bytes; `None` for anything else (the careful parser then decides, and says why when it
/// refuses).
fn unscaled_i128(v: &[u8], scale: i8) -> Option<i128> {
    let (neg, int, frac) = printed_decimal(v, scale)?;
    if int.len() + frac.len() > 38 {
        return None;
    }
    let x = int
        .iter()
        .chain(frac)
        .fold(0i128, |x, c| x * 10 + i128::from(c - b'0'));
    Some(if neg { -x } else { x })
}

/// [`unscaled_i128`] for up to 76 digits.
fn unscaled_i256(v: &[u8], scale: i8) -> Option<i256> {
    let (neg, int, frac) = printed_decimal(v, scale)?;
    if int.len() + frac.len() > 76 {
        return None;
    }
    let ten = i256::from_i128(10);
    let x = int.iter().chain(frac).fold(i256::ZERO, |x, c| {
        x.wrapping_mul(ten)
            .wrapping_add(i256::from_i128(i128::from(c - b'0')))
    });
    Some(if neg { x.wrapping_neg() } else { x })
}

struct Decimal128Reader(Decimal128Builder, u8, i8);
impl ColumnReader for Decimal128Reader {
    fn push(&mut self, v: &[u8]) -> std::result::Result<usize, String> {
        let x = match unscaled_i128(v, self.2) {
            Some(x) => x,
            None => {
                let s = std::str::from_utf8(v).map_err(|e| e.to_string())?;
                crate::types::text::parse_decimal(s, self.1, self.2)?
            }
        };
        self.0.append_value(x);
        Ok(16)
    }
    fn push_null(&mut self) {
        self.0.append_null();
    }
    fn finish(&mut self) -> ArrayRef {
        Arc::new(
            self.0
                .finish()
                .with_precision_and_scale(self.1, self.2)
                .expect("checked precision"),
        )
    }
}

struct Decimal256Reader(Decimal256Builder, u8, i8);
impl ColumnReader for Decimal256Reader {
    fn push(&mut self, v: &[u8]) -> std::result::Result<usize, String> {
        let x = unscaled_i256(v, self.2).ok_or_else(|| {
            format!(
                "{:?} is not a decimal({},{})",
                String::from_utf8_lossy(v),
                self.1,
                self.2
            )
        })?;
        self.0.append_value(x);
        Ok(32)
    }
    fn push_null(&mut self) {
        self.0.append_null();
    }
    fn finish(&mut self) -> ArrayRef {
        Arc::new(
            self.0
                .finish()
                .with_precision_and_scale(self.1, self.2)
                .expect("checked precision"),
        )
    }
}

#[cfg(test)]
const EPOCH_DAYS_CE: i32 = 719_163;

/// Days since 1970-01-01 of a calendar date; `None` for a zero or invalid date.
fn days(y: u16, m: u8, d: u8) -> Option<i32> {
    let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let month_days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if y == 0 || d == 0 || d > month_days {
        return None;
    }
    // Days from civil (H. Hinnant): years start in March so leap days come last.
    let (y, m, d) = (i32::from(y), i32::from(m), i32::from(d));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// A binary-protocol DATE/DATETIME/TIMESTAMP as (days, µs of the day); `None` for a zero
/// date (all zero, or a zero month or day).
fn date_time(v: &[u8]) -> std::result::Result<Option<(i32, i64)>, String> {
    let len = usize::from(*v.first().ok_or("an empty date value")?);
    if len == 0 {
        return Ok(None);
    }
    if v.len() < len + 1 || !matches!(len, 4 | 7 | 11) {
        return Err(format!("a date value of {len} bytes on the wire"));
    }
    let y = u16::from_le_bytes([v[1], v[2]]);
    let Some(day) = days(y, v[3], v[4]) else {
        return Ok(None);
    };
    let mut us = 0i64;
    if len >= 7 {
        us = (i64::from(v[5]) * 3600 + i64::from(v[6]) * 60 + i64::from(v[7])) * 1_000_000;
    }
    if len == 11 {
        us += i64::from(u32::from_le_bytes([v[8], v[9], v[10], v[11]]));
    }
    Ok(Some((day, us)))
}

const ZERO_DATE: &str = "a zero date (0000-00-00 or a zero month or day), which no other engine can hold; \
                         pass --zero-dates null to export such dates as NULL";

struct DateReader(Date32Builder, ZeroDates);
impl ColumnReader for DateReader {
    fn push(&mut self, v: &[u8]) -> std::result::Result<usize, String> {
        match date_time(v)? {
            Some((d, _)) => self.0.append_value(d),
            None if self.1 == ZeroDates::Null => self.0.append_null(),
            None => return Err(ZERO_DATE.into()),
        }
        Ok(4)
    }
    fn push_null(&mut self) {
        self.0.append_null();
    }
    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

struct DateTimeReader(TimestampMicrosecondBuilder, ZeroDates, bool);
impl ColumnReader for DateTimeReader {
    fn push(&mut self, v: &[u8]) -> std::result::Result<usize, String> {
        match date_time(v)? {
            Some((d, us)) => self.0.append_value(i64::from(d) * 86_400_000_000 + us),
            None if self.1 == ZeroDates::Null => self.0.append_null(),
            None => return Err(ZERO_DATE.into()),
        }
        Ok(8)
    }
    fn push_null(&mut self) {
        self.0.append_null();
    }
    fn finish(&mut self) -> ArrayRef {
        let a = self.0.finish();
        Arc::new(if self.2 { a.with_timezone("UTC") } else { a })
    }
}

reader!(TimeReader, Time64MicrosecondBuilder, |b, v| {
    // [len][negative][days u32][h][m][s][µs u32]; len 0 is 00:00:00. MySQL's TIME spans
    // -838:59:59 to 838:59:59, so values outside one day are kept as they are.
    let len = usize::from(*v.first().ok_or("an empty TIME value")?);
    let us = match len {
        0 => 0,
        8 | 12 if v.len() > len => {
            let d = i64::from(u32::from_le_bytes([v[2], v[3], v[4], v[5]]));
            let mut us =
                ((d * 24 + i64::from(v[6])) * 3600 + i64::from(v[7]) * 60 + i64::from(v[8]))
                    * 1_000_000;
            if len == 12 {
                us += i64::from(u32::from_le_bytes([v[9], v[10], v[11], v[12]]));
            }
            if v[1] == 1 { -us } else { us }
        }
        n => return Err(format!("a TIME value of {n} bytes on the wire")),
    };
    b.append_value(us);
    Ok(8)
});

/// `cap` rows; `bytes`, for text and binary columns, the value bytes to reserve (what the
/// previous batch held), so that the builders do not grow by copying.
fn column_reader(
    ty: &ColumnType,
    wire: Wire,
    zero: ZeroDates,
    cap: usize,
    bytes: usize,
) -> Result<Box<dyn ColumnReader>> {
    Ok(match (wire, ty) {
        (Wire::Bool, _) => Box::new(BoolReader(BooleanBuilder::with_capacity(cap))),
        (Wire::Int { .. }, ColumnType::Int16) => {
            Box::new(I16Reader(Int16Builder::with_capacity(cap)))
        }
        (Wire::Int { .. }, ColumnType::Int32) => {
            Box::new(I32Reader(Int32Builder::with_capacity(cap)))
        }
        (Wire::Int { .. }, ColumnType::Int64) => {
            Box::new(I64Reader(Int64Builder::with_capacity(cap)))
        }
        (Wire::Int { .. }, ColumnType::UInt8) => {
            Box::new(U8Reader(UInt8Builder::with_capacity(cap)))
        }
        (Wire::Int { .. }, ColumnType::UInt16) => {
            Box::new(U16Reader(UInt16Builder::with_capacity(cap)))
        }
        (Wire::Int { .. }, ColumnType::UInt32) => {
            Box::new(U32Reader(UInt32Builder::with_capacity(cap)))
        }
        (Wire::Int { .. }, ColumnType::UInt64) => {
            Box::new(U64Reader(UInt64Builder::with_capacity(cap)))
        }
        (Wire::Float, _) => Box::new(F32Reader(Float32Builder::with_capacity(cap))),
        (Wire::Double, _) => Box::new(F64Reader(Float64Builder::with_capacity(cap))),
        (Wire::Decimal, ColumnType::Decimal128 { precision, scale }) => Box::new(Decimal128Reader(
            Decimal128Builder::with_capacity(cap),
            *precision,
            *scale,
        )),
        (Wire::Decimal, ColumnType::Decimal256 { precision, scale }) => Box::new(Decimal256Reader(
            Decimal256Builder::with_capacity(cap),
            *precision,
            *scale,
        )),
        (Wire::Text, ColumnType::Utf8 | ColumnType::Json) => {
            Box::new(TextReader(StringBuilder::with_capacity(cap, bytes)))
        }
        (Wire::Ascii, ColumnType::Utf8 | ColumnType::Json) => {
            Box::new(AsciiReader(StringBuilder::with_capacity(cap, bytes)))
        }
        (Wire::Bytes, ColumnType::Binary) => {
            Box::new(BytesReader(BinaryBuilder::with_capacity(cap, bytes)))
        }
        (Wire::Date, _) => Box::new(DateReader(Date32Builder::with_capacity(cap), zero)),
        (Wire::DateTime, ColumnType::Timestamp { utc }) => Box::new(DateTimeReader(
            TimestampMicrosecondBuilder::with_capacity(cap),
            zero,
            *utc,
        )),
        (Wire::Time, _) => Box::new(TimeReader(Time64MicrosecondBuilder::with_capacity(cap))),
        (Wire::Uuid, _) => Box::new(UuidReader(FixedSizeBinaryBuilder::with_capacity(cap, 16))),
        (w, t) => {
            return Err(Error::Data(format!(
                "the MySQL reader cannot produce {} from {w:?}",
                t.describe()
            )));
        }
    })
}

impl Source for MySource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            engine: "mysql".into(),
            database: self.database.clone(),
            snapshot: self.snapshot.clone(),
            source_id_basis: Some(self.identity.basis.clone()),
        }
    }

    fn source_id(&self) -> String {
        self.identity.id.clone()
    }

    fn list(&mut self) -> Result<Vec<TableDef>> {
        Ok(self
            .listed()?
            .into_iter()
            .map(|(name, from_view)| TableDef {
                name,
                from_view,
                ..Default::default()
            })
            .collect())
    }

    fn tables(&mut self, selection: &Selection) -> Result<Vec<TableDef>> {
        let db = self.database.clone();
        let mut out = Vec::new();
        for (n, from_view) in self.listed()? {
            let probe = TableDef {
                name: n.clone(),
                ..Default::default()
            };
            let qualified = |t: &String| *t == format!("{db}.{n}");
            let by_db_name =
                selection.tables.iter().any(qualified) && !selection.exclude.contains(&n);
            let wanted = if from_view {
                // A view is read only when `--table` names it.
                selection.names(&probe) || by_db_name
            } else {
                selection.wants(&probe) || by_db_name
            };
            if wanted {
                let mut def = self.table_def(&n)?;
                def.from_view = from_view;
                out.push(def);
            }
        }
        Ok(out)
    }

    fn not_carried(&mut self, tables: &[TableDef]) -> Result<Vec<String>> {
        let db = self.database.clone();
        let mut out = Vec::new();
        for t in tables {
            let trig: Vec<String> = query_texts_on(
                &self.rt,
                &mut self.conn,
                "listing triggers",
                "SELECT CAST(TRIGGER_NAME AS CHAR) FROM information_schema.TRIGGERS \
                 WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? ORDER BY 1",
                &[&db, &t.name],
            )?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect();
            if !trig.is_empty() {
                out.push(format!(
                    "triggers on {} are not carried: {}",
                    t.name,
                    trig.join(", ")
                ));
            }
            let idx: Vec<String> = query_texts_on(&self.rt, &mut self.conn,
                "listing indexes",
                "SELECT DISTINCT CAST(INDEX_NAME AS CHAR) FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                   AND (SUB_PART IS NOT NULL OR COLUMN_NAME IS NULL OR INDEX_TYPE NOT IN ('BTREE', 'HASH')) ORDER BY 1",
                &[&db, &t.name],
            )?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect();
            if !idx.is_empty() {
                out.push(format!(
                    "indexes of {} with prefixes, expressions or FULLTEXT/SPATIAL kinds are not carried: {}",
                    t.name,
                    idx.join(", ")
                ));
            }
            out.extend(t.not_carried.iter().cloned());
        }
        let views: Vec<String> = query_texts_on(&self.rt, &mut self.conn,
            "listing views",
            "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY 1",
            &[&db],
        )?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
        // A view named with --table travels as a table.
        let views: Vec<String> = views
            .into_iter()
            .filter(|v| !tables.iter().any(|t| t.from_view && t.name == *v))
            .collect();
        if !views.is_empty() {
            out.push(format!("views are not carried: {}", views.join(", ")));
        }
        let routines = query_texts_on(
            &self.rt,
            &mut self.conn,
            "listing routines",
            "SELECT CAST(LOWER(ROUTINE_TYPE) AS CHAR), CAST(ROUTINE_NAME AS CHAR) FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = ? \
             UNION ALL SELECT 'sequence', CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'SEQUENCE' \
             UNION ALL SELECT 'event', CAST(EVENT_NAME AS CHAR) FROM information_schema.EVENTS \
             WHERE EVENT_SCHEMA = ? ORDER BY 1, 2",
            &[&db, &db, &db],
        )?;
        let mut kinds: Vec<(String, Vec<String>)> = Vec::new();
        for r in routines {
            let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            let (kind, name) = (get(0), get(1));
            match kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, v)) => v.push(name),
                None => kinds.push((kind, vec![name])),
            }
        }
        for (kind, names) in kinds {
            out.push(format!("{kind}s are not carried: {}", names.join(", ")));
        }
        Ok(out)
    }

    fn begin_snapshot(&mut self) -> Result<()> {
        if self.snapshot.is_none() {
            exec_on(
                &self.rt,
                &mut self.conn,
                "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            )?;
            exec_on(
                &self.rt,
                &mut self.conn,
                "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
            )?;
            self.snapshot = Some("consistent snapshot, repeatable read, read only".into());
        }
        Ok(())
    }

    fn count_rows(&mut self, table: &TableDef, _filter: Option<&str>) -> Result<Option<u64>> {
        // InnoDB's estimate: progress only, never a full scan.
        let db = self.database.clone();
        let rows = query_texts_on(
            &self.rt,
            &mut self.conn,
            "estimating rows",
            "SELECT CAST(TABLE_ROWS AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            &[&db, &table.name],
        )?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .and_then(|s| s.parse().ok()))
    }

    fn estimate(&mut self, table: &TableDef) -> Result<Estimate> {
        // InnoDB's statistics: TABLE_ROWS is an estimate, DATA_LENGTH the clustered index.
        let db = self.database.clone();
        let rows = query_texts_on(
            &self.rt,
            &mut self.conn,
            "estimating rows",
            "SELECT CAST(TABLE_ROWS AS CHAR), CAST(DATA_LENGTH AS CHAR) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            &[&db, &table.name],
        )?;
        let row = rows.into_iter().next().unwrap_or_default();
        let get = |i: usize| {
            row.get(i)
                .cloned()
                .flatten()
                .and_then(|s| s.parse::<u64>().ok())
        };
        Ok(Estimate {
            rows: match get(0) {
                Some(n) => Rows::Estimated(n),
                None => Rows::Unknown("unknown (no statistics: count with --exact)".into()),
            },
            bytes: get(1),
        })
    }

    fn count_exact(&mut self, table: &TableDef, filter: Option<&str>) -> Result<u64> {
        let sql = format!(
            "SELECT CAST(COUNT(*) AS CHAR) FROM {}{}",
            quote(&table.name),
            filter.map(|f| format!(" WHERE ({f})")).unwrap_or_default()
        );
        let rows = query_texts_on(
            &self.rt,
            &mut self.conn,
            &format!("counting the rows of {}", table.name),
            &sql,
            &[],
        )?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    }

    fn check_filter(&mut self, table: &TableDef, filter: &str) -> Result<()> {
        let sql = format!(
            "SELECT 1 FROM {} WHERE ({filter}) LIMIT 0",
            quote(&table.name)
        );
        match self
            .rt
            .block_on(sqlx::query(AssertSqlSafe(sql)).fetch_all(&mut self.conn))
        {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(d)) => Err(Error::Usage(format!(
                "--where {}:…: MySQL refuses the predicate: {}; give one boolean expression over the \
                 table's columns",
                table.name,
                d.message()
            ))),
            Err(e) => Err(my_err(
                &format!("checking the --where predicate of {}", table.name),
                e,
            )),
        }
    }

    fn text_type(&self, max_chars: Option<u32>) -> String {
        match max_chars {
            Some(n) if n <= 16_383 => {
                format!("varchar({n}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            }
            _ => "longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin".into(),
        }
    }

    fn high_water(&mut self, table: &TableDef, column: &str) -> Result<Option<String>> {
        let sql = format!(
            "SELECT CAST(MAX({}) AS CHAR) FROM {}",
            quote(column),
            quote(&table.name)
        );
        let rows = query_texts_on(
            &self.rt,
            &mut self.conn,
            &format!("reading the high-water mark of {}", table.name),
            &sql,
            &[],
        )?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }

    fn read(
        &mut self,
        table: &TableDef,
        filter: Option<&str>,
        limits: BatchLimits,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64> {
        let q = quote(&table.name);
        let cols = self.columns(&table.name)?;
        let mut wires = Vec::new();
        for c in &table.columns {
            let mc = cols.iter().find(|m| m.name == c.name).ok_or_else(|| {
                Error::Data(format!("table {}: column {:?} is gone", table.name, c.name))
            })?;
            wires.push(wire_of(mc, &c.ty, c.as_text));
        }
        let schema = table.arrow_schema("mysql");
        // ascii text comes as its stored bytes (see `Wire::Ascii`).
        let select: Vec<String> = table
            .columns
            .iter()
            .zip(&wires)
            .map(|(c, w)| match w {
                Wire::Ascii => format!("CAST({} AS BINARY)", quote(&c.name)),
                _ => Self::select_expr(c),
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {q}{}",
            select.join(", "),
            filter.map(|f| format!(" WHERE ({f})")).unwrap_or_default()
        );
        let zero = self.zero_dates;
        let make = |cap: usize, hints: &[usize]| {
            table
                .columns
                .iter()
                .zip(&wires)
                .zip(hints)
                .map(|((c, w), h)| column_reader(&c.ty, *w, zero, cap, h + h / 8))
                .collect::<Result<Vec<_>>>()
        };
        let rt = &self.rt;
        let mut stream = sqlx::query(AssertSqlSafe(sql)).fetch(&mut self.conn);
        let (mut n, mut done) = (0u64, false);
        // Per column, the value bytes of the last batch: the next one reserves as much.
        let mut col_bytes = vec![1024usize; table.columns.len()];
        while !done {
            let mut readers = make(limits.rows.min(65_536), &col_bytes)?;
            col_bytes.fill(0);
            let (mut in_batch, mut bytes) = (0usize, 0usize);
            // Rows are pulled by the runtime a batch at a time; the batch goes to the sink
            // outside it.
            rt.block_on(async {
                while in_batch < limits.rows && bytes < limits.bytes {
                    let Some(row) = stream
                        .try_next()
                        .await
                        .map_err(|e| my_err(&format!("reading {}", table.name), e))?
                    else {
                        done = true;
                        break;
                    };
                    n += 1;
                    for (i, r) in readers.iter_mut().enumerate() {
                        match raw(&row, i)? {
                            None => r.push_null(),
                            Some(v) => {
                                let size = r.push(v).map_err(|why| {
                                    let col = &table.columns[i];
                                    if matches!(wires[i], Wire::Bool) {
                                        return Error::NotBoolean {
                                            table: table.name.clone(),
                                            column: col.name.clone(),
                                        };
                                    }
                                    Error::Data(format!(
                                        "table {}, column {:?} ({}), row {n}: {why}",
                                        table.name, col.name, col.source_type
                                    ))
                                })?;
                                bytes += size;
                                col_bytes[i] += size;
                            }
                        }
                    }
                    in_batch += 1;
                }
                Ok::<(), Error>(())
            })
            .inspect_err(|e| {
                // Read again, this column comes as an integer (see `table_def`).
                if let Error::NotBoolean { table, column } = e {
                    self.integer_flags.push((table.clone(), column.clone()));
                }
            })?;
            if in_batch > 0 {
                let arrays: Vec<ArrayRef> = readers.iter_mut().map(|r| r.finish()).collect();
                let batch = RecordBatch::try_new(schema.clone(), arrays)
                    .map_err(|e| Error::Data(format!("table {}: {e}", table.name)))?;
                sink(batch)?;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_lose_the_statement_position() {
        assert_eq!(
            server_message("Data too long for column 'body' at row 948"),
            "Data too long for column 'body'"
        );
        assert_eq!(
            server_message(
                "You have an error in your SQL syntax; check the manual near 'x' at line 1"
            ),
            "You have an error in your SQL syntax; check the manual near 'x'"
        );
        // Only a trailing position: a value that says "at row" stays.
        assert_eq!(
            server_message("Duplicate entry 'meet at row 5' for key 'PRIMARY'"),
            "Duplicate entry 'meet at row 5' for key 'PRIMARY'"
        );
    }

    #[test]
    fn enum_labels_parse_as_the_server_prints_them() {
        assert_eq!(
            parse_labels("enum('a''b','c\\\\d','x,y','')").unwrap(),
            vec!["a'b", "c\\d", "x,y", ""]
        );
        assert_eq!(parse_labels("set('p','q r')").unwrap(), vec!["p", "q r"]);
        assert!(parse_labels("enum('a'").is_none());
        assert!(parse_labels("enum('a')x").is_none());
        assert!(parse_labels("varchar(3)").is_none());
    }

    #[test]
    fn decimals_and_dates_decode_exactly() {
        assert_eq!(
            unscaled_i256(b"-123.4500", 4),
            Some(i256::from_i128(-1_234_500))
        );
        assert_eq!(unscaled_i256(b"7", 0), Some(i256::from_i128(7)));
        assert!(unscaled_i256(b"1.5", 2).is_none());
        let max76 = "9".repeat(76);
        assert_eq!(
            unscaled_i256(format!("-{max76}").as_bytes(), 0),
            i256::from_string(&format!("-{max76}"))
        );
        assert_eq!(unscaled_i256("9".repeat(77).as_bytes(), 0), None);
        // days() against chrono for every day of years around the edges, and invalid dates.
        use chrono::Datelike;
        for y in [
            1u16, 2, 4, 99, 100, 400, 1000, 1582, 1900, 1969, 1970, 2000, 2024, 2100, 9999,
        ] {
            for m in 1..=12u8 {
                for d in 1..=31u8 {
                    let want =
                        chrono::NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))
                            .map(|x| x.num_days_from_ce() - EPOCH_DAYS_CE);
                    assert_eq!(days(y, m, d), want, "{y}-{m}-{d}");
                }
            }
        }
        assert_eq!(days(0, 1, 1), None);
        assert_eq!(days(2024, 0, 1), None);
        assert_eq!(days(2024, 13, 1), None);
        assert_eq!(unscaled_i128(b"-123.4500", 4), Some(-1_234_500));
        assert_eq!(unscaled_i128(b"0.00", 2), Some(0));
        assert_eq!(unscaled_i128(b"7", 0), Some(7));
        let max38 = "9".repeat(38);
        assert_eq!(unscaled_i128(max38.as_bytes(), 0), Some(10i128.pow(38) - 1));
        // Not the printed form of that scale, or too long: the careful parser decides.
        for v in ["1.5", "1.", ".5", "-", "", "1e5", "+1.00", "1.0a"] {
            assert_eq!(unscaled_i128(v.as_bytes(), 2), None, "{v}");
        }
        assert_eq!(unscaled_i128("9".repeat(39).as_bytes(), 0), None);
        assert_eq!(date_time(&[0]).unwrap(), None);
        assert_eq!(date_time(&[4, 0xb2, 0x07, 1, 2]).unwrap(), Some((1, 0)));
        assert_eq!(date_time(&[4, 0xe8, 0x07, 0, 0]).unwrap(), None);
        assert_eq!(
            date_time(&[11, 0xb2, 0x07, 1, 1, 0, 0, 1, 0x40, 0x42, 0x0f, 0]).unwrap(),
            Some((0, 2_000_000))
        );
        assert_eq!(le_signed(&[0xff]).unwrap(), -1);
        assert_eq!(le_unsigned(&[0xff; 8]).unwrap(), u64::MAX);
        assert_eq!(normalise_url("mariadb://h/db"), "mysql://h/db");
        assert_eq!(quote("a`b"), "`a``b`");
    }
}
