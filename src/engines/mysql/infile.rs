//! MySQL/MariaDB bulk path: `LOAD DATA LOCAL INFILE` fed from memory. The rows go from the
//! part's decrypted Arrow batches, encoded to LOAD DATA's tab-separated text, through a
//! bounded channel to the socket: no file holds them.
//!
//! sqlx has no hook for the server's request for a local file, so this path has a
//! connection of its own, from `mysql_async` (which has one). When the path is taken, that
//! connection carries *every* statement of the load protocol's transactions (part lock,
//! ledger claim, the LOAD DATA, ledger count, COMMIT; a publish), so the part and its ledger
//! row still commit in one transaction; the sqlx connection keeps the catalog, DDL and the
//! run lock.
//!
//! The encoding (FIELDS TERMINATED BY tab, ESCAPED BY backslash, LINES TERMINATED BY
//! newline, no enclosing): `\N` is NULL; `\\`, `\t`, `\n`, `\r` and `\0` stand for the byte
//! they escape, so the text `\N` travels as `\\N` and an empty string as an empty field.
//! Binary values travel as hex into a user variable, stored with `UNHEX`. Numbers, dates
//! and times take the same text as the INSERT path's parameters and the same checks.
//!
//! LOAD DATA LOCAL turns errors the server would raise for an INSERT into warnings (it
//! cannot stop the client mid-file): every load's warnings are read, and any warning fails
//! the part, naming the row the server names, as the INSERT path would.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Time64MicrosecondType, TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Params, Value};

use crate::engines::mysql::loader::{
    ROW_ERRORS, RowSizes, check_float, fits_decimal_65_30, push_date, push_time, push_timestamp,
};
use crate::engines::mysql::reader::{TEMPORARY_ERRORS, quote, server_message};
use crate::load::{self, Param, Written};
use crate::redact::display_url;
use crate::storage::runtime;
use crate::types::{ColumnType, TableDef, text};
use crate::{Error, Result};

/// Bytes of encoded rows handed to the socket at a time (the channel holds a few).
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the encoder and the socket: memory stays a few MiB.
const IN_FLIGHT: usize = 4;

/// The connection the LOAD DATA path runs on.
pub struct Bulk {
    /// `None` only while a load has it (it is moved into the task that drives the socket).
    conn: Option<Conn>,
    /// For messages.
    url: String,
}

/// A `mysql_async` error: temporary (exit 75) when the connection failed or the server is
/// busy (a lock wait: [`Error::Locked`]), a data error for a refused value when `data`,
/// else a database error.
fn am_err(what: &str, e: mysql_async::Error, data: bool) -> Error {
    match &e {
        mysql_async::Error::Server(s) if s.code == 1205 => Error::Locked(format!(
            "{what}: connection to MySQL/MariaDB lost or busy ({}); safe to re-run",
            s.message
        )),
        mysql_async::Error::Server(s) if TEMPORARY_ERRORS.contains(&s.code) => {
            Error::Temporary(format!(
                "{what}: connection to MySQL/MariaDB lost or busy ({}); safe to re-run",
                s.message
            ))
        }
        mysql_async::Error::Server(s)
            if data && (s.state.starts_with("22") || s.state.starts_with("23")) =>
        {
            Error::Data(format!(
                "{what}: the target refused a row: {}",
                server_message(&s.message)
            ))
        }
        mysql_async::Error::Server(s) => {
            Error::Database(format!("{what}: {}", server_message(&s.message)))
        }
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => Error::Temporary(format!(
            "{what}: connection to MySQL/MariaDB lost or busy ({e}); safe to re-run"
        )),
        _ => Error::Database(format!("{what}: {e}")),
    }
}

/// `%XX` sequences of a URL's user or password decoded (as sqlx reads them).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Bulk {
    /// Connects to the URL's server and database (TCP, no TLS: the caller takes this path
    /// only where ferry's own connection is unencrypted too) and applies `setup`, the
    /// session settings of ferry's loading connection.
    pub fn connect(url: &str, setup: &[String]) -> Result<Bulk> {
        let norm = crate::engines::mysql::reader::normalise_url(url);
        let parsed = url::Url::parse(&norm)
            .map_err(|e| Error::Usage(format!("{}: not a valid URL ({e})", display_url(url))))?;
        let host = parsed.host_str().unwrap_or("localhost").to_string();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .map_or(host.clone(), str::to_string);
        let db = parsed.path().trim_start_matches('/').to_string();
        let user = percent_decode(parsed.username());
        let opts = OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(parsed.port().unwrap_or(3306))
            .user(Some(if user.is_empty() { "root".into() } else { user }))
            .pass(parsed.password().map(percent_decode))
            .db_name(Some(percent_decode(&db)))
            .prefer_socket(false)
            .client_found_rows(true)
            .setup(
                std::iter::once("SET NAMES utf8mb4".to_string())
                    .chain(setup.iter().cloned())
                    .collect::<Vec<_>>(),
            );
        let conn = runtime().block_on(Conn::new(opts)).map_err(|e| {
            Error::Database(format!(
                "cannot open the LOAD DATA connection to {}: {}",
                display_url(url),
                crate::redact::scrub(&e.to_string(), url)
            ))
        })?;
        Ok(Bulk {
            conn: Some(conn),
            url: url.to_string(),
        })
    }

    fn conn(&mut self) -> Result<&mut Conn> {
        self.conn.as_mut().ok_or_else(|| {
            Error::Temporary(format!(
                "the LOAD DATA connection to {} was lost in an earlier load; safe to re-run",
                display_url(&self.url)
            ))
        })
    }

    /// One statement through the text protocol.
    pub fn exec(&mut self, what: &str, sql: &str) -> Result<()> {
        let conn = self.conn()?;
        runtime()
            .block_on(conn.query_drop(sql))
            .map_err(|e| am_err(what, e, false))
    }

    /// One statement with bound parameters; the rows it affected. A refused value is
    /// [`Error::Data`] (SQLSTATE classes 22 and 23).
    pub fn execute(&mut self, what: &str, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let conn = self.conn()?;
        let params = to_params(params);
        runtime()
            .block_on(async {
                conn.exec_drop(sql, params).await?;
                Ok(conn.affected_rows())
            })
            .map_err(|e| am_err(what, e, true))
    }

    /// A query whose columns are rendered as text.
    pub fn query_text(
        &mut self,
        what: &str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Vec<Option<String>>>> {
        let conn = self.conn()?;
        let params = to_params(params);
        let rows: Vec<mysql_async::Row> = runtime()
            .block_on(conn.exec(sql, params))
            .map_err(|e| am_err(what, e, false))?;
        Ok(rows
            .into_iter()
            .map(|r| r.unwrap().into_iter().map(value_text).collect())
            .collect())
    }

    /// Streams one part's rows into `dest` with one `LOAD DATA LOCAL INFILE`; returns the
    /// rows written, or the refused row (`refused_row` gets its number when the server named
    /// it).
    pub fn load(
        &mut self,
        dest: &str,
        table: &TableDef,
        batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
        part: &str,
        packet: usize,
        refused_row: &mut Option<u64>,
    ) -> Result<Written> {
        // The target's column types: a YEAR or BIT column reads LOAD DATA's text unlike a
        // bound number (the text 0 is the year 2000, the text 5 the byte '5').
        // An AUTO_INCREMENT column: MariaDB's LOAD DATA with a SET clause ignores
        // NO_AUTO_VALUE_ON_ZERO (a 0 takes the next value), an assignment does not.
        let kinds: std::collections::HashMap<String, (String, bool)> = self
            .query_text(
                "reading the target's column types",
                "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), CAST(EXTRA AS CHAR) \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                &[Param::Text(dest)],
            )?
            .into_iter()
            .filter_map(|r| {
                let mut r = r.into_iter();
                let name = r.next()??.to_lowercase();
                let ty = r.next()??.to_lowercase();
                let auto = r
                    .next()
                    .flatten()
                    .is_some_and(|e| e.to_lowercase().contains("auto_increment"));
                Some((name, (ty, auto)))
            })
            .collect();
        let kind = |c: &crate::types::Column| -> Target {
            match kinds.get(&c.name.to_lowercase()) {
                Some((ty, _)) if ty == "year" => Target::Year,
                Some((ty, _)) if ty == "bit" && c.ty != ColumnType::Binary => Target::Bit,
                Some((_, true)) => Target::Assigned,
                _ => Target::Plain,
            }
        };
        let kinds: Vec<Target> = table.columns.iter().map(kind).collect();
        let sql = load_sql(dest, table, &kinds);
        let mut conn = self.conn.take().ok_or_else(|| {
            Error::Temporary(format!(
                "the LOAD DATA connection to {} was lost in an earlier load; safe to re-run",
                display_url(&self.url)
            ))
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(IN_FLIGHT);
        // The receiver is shared by the handler (which takes it when the server asks for the
        // rows) and the task (which drops it when the statement ends): a server that refuses
        // the LOAD DATA before asking (a lock wait timeout, local_infile turned off since,
        // no privilege) never calls the handler, and the encoder's sends must then fail
        // rather than wait forever on a full channel.
        let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(rx)));
        let handler_slot = std::sync::Arc::clone(&slot);
        conn.set_infile_handler(async move {
            let rx = handler_slot.lock().ok().and_then(|mut g| g.take());
            let stream = futures::stream::unfold(rx, |rx| async move {
                let mut rx = rx?;
                let b = rx.recv().await?;
                Some((Ok(b), Some(rx)))
            });
            Ok::<mysql_async::InfileData, mysql_async::Error>(stream.boxed())
        });
        let task = runtime().spawn(async move {
            let r = conn.query_drop(sql).await;
            drop(slot.lock().ok().and_then(|mut g| g.take()));
            let outcome = match r {
                Ok(()) => Ok((conn.affected_rows(), conn.get_warnings())),
                Err(e) => Err(e),
            };
            // The warnings are read at once, before any other statement clears them; a
            // failure to read them fails the part (a warning may be a truncated value).
            let warnings = match &outcome {
                Ok((_, w)) if *w > 0 => conn
                    .query::<(String, u32, String), _>("SHOW WARNINGS")
                    .await
                    .map_err(|e| e.to_string()),
                _ => Ok(vec![]),
            };
            (conn, outcome, warnings)
        });
        // Encode on this thread while the runtime sends.
        let encoded = encode(
            table,
            &kinds,
            batches,
            (dest, part),
            packet,
            &tx,
            refused_row,
        );
        drop(tx);
        let (conn, outcome, warnings) = runtime().block_on(task).map_err(|e| {
            Error::Other(format!(
                "loading {dest}, part {part}: the load task failed: {e}"
            ))
        })?;
        self.conn = Some(conn);
        // An encoding error (a value MySQL cannot hold) ended the stream early: the rows
        // sent so far roll back with the part.
        let rows = encoded?;
        let (affected, warning_count) = match outcome {
            Ok(o) => o,
            Err(e) => return Err(refused(dest, part, e, refused_row)),
        };
        let warnings = warnings.map_err(|e| {
            Error::RowRefused(format!(
                "table {dest}, part {part}: LOAD DATA reported {warning_count} warnings, which could not \
                 be read ({e}); nothing from this part was committed"
            ))
        })?;
        let serious: Vec<&(String, u32, String)> =
            warnings.iter().filter(|w| w.0 != "Note").collect();
        // Only max_error_count warnings are listed (the session sets it to the most): a
        // warning not listed may be a truncation, so the part fails.
        if serious.is_empty() && usize::from(warning_count) > warnings.len() {
            return Err(Error::RowRefused(format!(
                "table {dest}, part {part}: LOAD DATA reported {warning_count} warnings and listed {} \
                 (notes only); an unlisted one may be a changed value, so nothing from this part was \
                 committed",
                warnings.len()
            )));
        }
        if let Some((_, code, msg)) = serious.first() {
            let at = row_of(msg);
            *refused_row = at;
            let row = at.map_or_else(
                || ", a row (row 1 or later)".to_string(),
                |n| format!(", row {n}"),
            );
            let more = if serious.len() > 1 {
                format!(" (and {} more warnings)", serious.len() - 1)
            } else {
                String::new()
            };
            return Err(Error::RowRefused(format!(
                "table {dest}{row} of part {part}: the target refused a row: {} (error {code}){more}; \
                 nothing from this part was committed",
                load::strip_position_noise(&server_message(msg))
            )));
        }
        if affected != rows {
            return Err(Error::RowRefused(format!(
                "table {dest}, part {part}: LOAD DATA wrote {affected} rows of the {rows} sent and \
                 reported no warning; nothing from this part was committed"
            )));
        }
        Ok(Written::inserted(rows))
    }
}

/// A server's "… at row N" (LOAD DATA counts lines from 1: the part's rows).
fn row_of(msg: &str) -> Option<u64> {
    msg.rsplit_once(" at row ")
        .and_then(|(_, n)| n.trim().parse::<u64>().ok())
        .filter(|n| *n >= 1)
}

/// The LOAD DATA's error: a refused row (naming it where the server does), a lost
/// connection (temporary), or the database's error.
fn refused(dest: &str, part: &str, e: mysql_async::Error, refused_row: &mut Option<u64>) -> Error {
    if let mysql_async::Error::Server(s) = &e
        && !TEMPORARY_ERRORS.contains(&s.code)
        && (ROW_ERRORS.contains(&s.code) || s.state.starts_with("22") || s.state.starts_with("23"))
    {
        let at = row_of(&s.message);
        *refused_row = at;
        let row = at.map_or_else(
            || ", a row (row 1 or later)".to_string(),
            |n| format!(", row {n}"),
        );
        return Error::RowRefused(format!(
            "table {dest}{row} of part {part}: the target refused a row: {}; nothing from this part \
             was committed",
            load::strip_position_noise(&server_message(&s.message))
        ));
    }
    am_err(&format!("loading {dest}, part {part}"), e, false)
}

fn to_params(params: &[Param<'_>]) -> Params {
    if params.is_empty() {
        return Params::Empty;
    }
    Params::Positional(
        params
            .iter()
            .map(|p| match p {
                Param::Text(t) => Value::Bytes(t.as_bytes().to_vec()),
                Param::Int(i) => Value::Int(*i),
            })
            .collect(),
    )
}

fn value_text(v: Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(f) => Some(f.to_string()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

/// What the target column makes of LOAD DATA's text, where it differs from a bound value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Plain,
    /// YEAR: the text `0` is 2000, the number 0 is 0000 (sent as `0000`).
    Year,
    /// BIT receiving a number: through a variable, `CAST(@v AS UNSIGNED)`.
    Bit,
    /// AUTO_INCREMENT: through a variable, `SET col = @v` (a 0 stays 0).
    Assigned,
}

/// Whether a column travels as hex into a user variable (`SET col = UNHEX(@v)`).
fn hex_column(ty: &ColumnType) -> bool {
    matches!(ty, ColumnType::Binary)
}

/// The statement: every column named, binary ones (and numbers for BIT) through a variable.
pub fn load_sql(dest: &str, table: &TableDef, kinds: &[Target]) -> String {
    let mut cols = Vec::with_capacity(table.columns.len());
    let mut set = Vec::new();
    for (i, c) in table.columns.iter().enumerate() {
        if hex_column(&c.ty) {
            cols.push(format!("@ferry_h{i}"));
            set.push(format!("{} = UNHEX(@ferry_h{i})", quote(&c.name)));
        } else if kinds.get(i) == Some(&Target::Assigned) {
            cols.push(format!("@ferry_a{i}"));
            set.push(format!("{} = @ferry_a{i}", quote(&c.name)));
        } else if kinds.get(i) == Some(&Target::Bit) {
            cols.push(format!("@ferry_n{i}"));
            set.push(format!(
                "{} = CAST(@ferry_n{i} AS UNSIGNED)",
                quote(&c.name)
            ));
        } else {
            cols.push(quote(&c.name));
        }
    }
    // The session runs with NO_BACKSLASH_ESCAPES: '\' is one backslash, and the tab and
    // newline are written as themselves.
    let mut sql = format!(
        "LOAD DATA LOCAL INFILE 'ferry-part' INTO TABLE {} CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY '\t' ENCLOSED BY '' ESCAPED BY '\\' LINES TERMINATED BY '\n' \
         STARTING BY '' ({})",
        quote(dest),
        cols.join(", ")
    );
    if !set.is_empty() {
        sql.push_str(" SET ");
        sql.push_str(&set.join(", "));
    }
    sql
}

/// Bytes LOAD DATA needs escaped: backslash, tab, newline, carriage return, NUL.
const ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    t[b'\\' as usize] = true;
    t[b'\t' as usize] = true;
    t[b'\n' as usize] = true;
    t[b'\r' as usize] = true;
    t[0] = true;
    t
};

/// Appends `s` with LOAD DATA's escapes: the runs between escaped bytes are copied whole.
fn escape(out: &mut Vec<u8>, s: &[u8]) {
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        if ESCAPED[usize::from(b)] {
            out.extend_from_slice(&s[run..i]);
            out.extend_from_slice(match b {
                b'\\' => b"\\\\",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                _ => b"\\0",
            });
            run = i + 1;
        }
    }
    out.extend_from_slice(&s[run..]);
}

fn push_hex(out: &mut Vec<u8>, b: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(b.len() * 2);
    for &x in b {
        out.push(DIGITS[usize::from(x >> 4)]);
        out.push(DIGITS[usize::from(x & 15)]);
    }
}

type Encoder<'a> = Box<dyn Fn(usize, &mut Vec<u8>) -> std::result::Result<(), String> + 'a>;

/// One encoder per column, chosen once per batch from the column's type; a value MySQL
/// cannot hold is refused with the INSERT path's words.
fn encoder<'a>(a: &'a ArrayRef, ty: &ColumnType, kind: Target) -> Encoder<'a> {
    let year = kind == Target::Year;
    macro_rules! int {
        ($t:ty) => {{
            let x = a.as_primitive::<$t>();
            Box::new(move |i, out: &mut Vec<u8>| {
                let v = x.value(i);
                if year && v == 0 {
                    out.extend_from_slice(b"0000");
                } else {
                    // Into the buffer itself: no String and no formatter per value.
                    text::push_int(out, v);
                }
                Ok(())
            })
        }};
    }
    let f: Encoder<'a> = match ty {
        ColumnType::Boolean => {
            let x = a.as_boolean();
            Box::new(move |i, out| {
                out.push(if x.value(i) { b'1' } else { b'0' });
                Ok(())
            })
        }
        ColumnType::Int16 => int!(Int16Type),
        ColumnType::Int32 => int!(Int32Type),
        ColumnType::Int64 => int!(Int64Type),
        ColumnType::UInt8 => int!(UInt8Type),
        ColumnType::UInt16 => int!(UInt16Type),
        ColumnType::UInt32 => int!(UInt32Type),
        ColumnType::UInt64 => int!(UInt64Type),
        // Shortest round-trip text in exponent form; a FLOAT goes as its exact double, which
        // the server rounds back to the same float.
        ColumnType::Float32 => {
            let x = a.as_primitive::<Float32Type>();
            Box::new(move |i, out| {
                let v = x.value(i);
                check_float(f64::from(v))?;
                out.extend_from_slice(ryu::Buffer::new().format_finite(f64::from(v)).as_bytes());
                Ok(())
            })
        }
        ColumnType::Float64 => {
            let x = a.as_primitive::<Float64Type>();
            Box::new(move |i, out| {
                let v = x.value(i);
                check_float(v)?;
                // Shortest round-trip digits (as `{:e}` printed them), 2-3 times faster.
                out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
                Ok(())
            })
        }
        ColumnType::Decimal128 { scale, .. } => {
            let x = a.as_primitive::<Decimal128Type>();
            let s = *scale;
            Box::new(move |i, out| {
                text::push_decimal(out, x.value(i), s);
                Ok(())
            })
        }
        ColumnType::Decimal256 { scale, .. } => {
            let x = a.as_primitive::<Decimal256Type>();
            let s = *scale;
            Box::new(move |i, out| {
                out.extend_from_slice(text::format_decimal256(x.value(i), s).as_bytes());
                Ok(())
            })
        }
        ColumnType::NumericText => {
            let x = a.as_string::<i32>();
            Box::new(move |i, out| {
                let v = x.value(i);
                if !fits_decimal_65_30(v) {
                    return Err(format!(
                        "{v} does not fit MySQL's DECIMAL(65,30) (at most 35 digits before the point and 30 after, no NaN)"
                    ));
                }
                out.extend_from_slice(v.as_bytes());
                Ok(())
            })
        }
        ColumnType::Utf8 | ColumnType::Json => {
            let x = a.as_string::<i32>();
            Box::new(move |i, out| {
                escape(out, x.value(i).as_bytes());
                Ok(())
            })
        }
        ColumnType::Binary => {
            let x = a.as_binary::<i32>();
            Box::new(move |i, out| {
                push_hex(out, x.value(i));
                Ok(())
            })
        }
        ColumnType::Uuid => {
            let x = a.as_fixed_size_binary();
            Box::new(move |i, out| {
                let u = uuid::Uuid::from_slice(x.value(i)).map_err(|e| e.to_string())?;
                let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
                out.extend_from_slice(u.hyphenated().encode_lower(&mut buf).as_bytes());
                Ok(())
            })
        }
        ColumnType::Date32 => {
            let x = a.as_primitive::<Date32Type>();
            Box::new(move |i, out| push_date(out, x.value(i)))
        }
        ColumnType::Timestamp { .. } => {
            let x = a.as_primitive::<TimestampMicrosecondType>();
            Box::new(move |i, out| push_timestamp(out, x.value(i)))
        }
        ColumnType::Time64 => {
            let x = a.as_primitive::<Time64MicrosecondType>();
            Box::new(move |i, out| push_time(out, x.value(i)))
        }
        // Only with --as-text (pre-flight refuses them otherwise): PostgreSQL's text form.
        ColumnType::Interval | ColumnType::List { .. } => {
            let ty = ty.clone();
            Box::new(move |i, out| {
                let t = text::pg_text(a.as_ref(), i, &ty)?;
                escape(out, t.as_bytes());
                Ok(())
            })
        }
    };
    Box::new(move |i, out| {
        if a.is_null(i) {
            out.extend_from_slice(b"\\N");
            Ok(())
        } else {
            f(i, out)
        }
    })
}

/// Encodes every row and hands the text to the socket in chunks; returns the rows sent.
/// Stops early when the server stops reading (its error is the load's).
fn encode(
    table: &TableDef,
    kinds: &[Target],
    batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
    (dest, part): (&str, &str),
    packet: usize,
    tx: &tokio::sync::mpsc::Sender<bytes::Bytes>,
    refused_row: &mut Option<u64>,
) -> Result<u64> {
    // Each piece goes in one protocol packet: below the server's max_allowed_packet.
    let piece = CHUNK.min(packet / 2).max(4096);
    let mut buf: Vec<u8> = Vec::with_capacity(piece + (64 << 10));
    let mut done = 0u64;
    let send = |buf: &mut Vec<u8>| -> bool {
        let all = bytes::Bytes::from(std::mem::replace(
            buf,
            Vec::with_capacity(piece + (64 << 10)),
        ));
        let mut at = 0;
        while at < all.len() {
            let end = (at + piece).min(all.len());
            if tx.blocking_send(all.slice(at..end)).is_err() {
                return false;
            }
            at = end;
        }
        true
    };
    for batch in batches {
        let batch = batch?;
        let encoders: Vec<Encoder<'_>> = table
            .columns
            .iter()
            .zip(batch.columns())
            .zip(kinds)
            .map(|((c, a), k)| {
                // A numeric that travels as text (it holds NaN) went into a text column.
                if c.as_text && c.ty == ColumnType::NumericText {
                    encoder(a, &ColumnType::Utf8, *k)
                } else {
                    encoder(a, &c.ty, *k)
                }
            })
            .collect();
        let sizes = RowSizes::of(&batch);
        for row in 0..batch.num_rows() {
            let at = done + 1;
            sizes.check(row, packet, (dest, at, part))?;
            for (i, e) in encoders.iter().enumerate() {
                if i > 0 {
                    buf.push(b'\t');
                }
                e(row, &mut buf).map_err(|why| {
                    *refused_row = Some(at);
                    Error::RowRefused(format!(
                        "table {dest}, column {:?}, row {at} of part {part}: {why}; nothing from this part was committed",
                        table.columns[i].name
                    ))
                })?;
            }
            buf.push(b'\n');
            done += 1;
            if buf.len() >= CHUNK && !send(&mut buf) {
                return Ok(done);
            }
        }
    }
    if !buf.is_empty() {
        send(&mut buf);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::mysql::loader::{check_date, check_time, check_timestamp};

    #[test]
    fn text_escapes_keep_null_empty_and_backslash_n_apart() {
        let mut out = Vec::new();
        escape(&mut out, b"\\N");
        assert_eq!(out, b"\\\\N");
        out.clear();
        escape(&mut out, b"a\tb\nc\rd\0e\\f");
        assert_eq!(out, b"a\\tb\\nc\\rd\\0e\\\\f");
        out.clear();
        escape(&mut out, b"");
        assert!(out.is_empty());
        out.clear();
        escape(&mut out, "😀 plain".as_bytes());
        assert_eq!(out, "😀 plain".as_bytes());
    }

    #[test]
    fn binary_goes_as_hex_and_user_parts_are_decoded() {
        let mut out = Vec::new();
        push_hex(&mut out, &[0, 0x0a, 0xff, b'\\']);
        assert_eq!(out, b"000AFF5C");
        assert_eq!(percent_decode("p%40ss%2Fw"), "p@ss/w");
        assert_eq!(percent_decode("100%"), "100%");
    }

    /// Dates, timestamps and times written into the buffer read as the INSERT path's text
    /// (check_*), and the values it refuses are refused with its words, buffer untouched.
    #[test]
    fn temporal_values_written_in_place_match_the_insert_path() {
        let day = 86_400_000_000i64;
        let mut days: Vec<i32> = (-800_000..3_000_000).step_by(1013).collect();
        days.extend([
            i32::MIN,
            i32::MAX,
            -719_528,
            -719_162,
            -719_163,
            2_932_896,
            2_932_897,
        ]);
        for d in days {
            let mut out = b"x".to_vec();
            match (push_date(&mut out, d), check_date(d)) {
                (Ok(()), Ok(t)) => assert_eq!(&out[1..], t.as_bytes(), "{d}"),
                (Err(a), Err(b)) => assert_eq!((a, out.as_slice()), (b, &b"x"[..])),
                (a, b) => panic!("day {d}: {a:?} vs {b:?}"),
            }
        }
        let mut instants: Vec<i64> = (-70_000i64..300_000)
            .map(|k| k * day + k * 7_654_321 % day)
            .collect();
        instants.extend([
            i64::MIN,
            i64::MAX,
            -62_135_596_800_000_000,
            -62_135_596_800_000_001,
        ]);
        for v in instants {
            let mut out = b"x".to_vec();
            match (push_timestamp(&mut out, v), check_timestamp(v)) {
                (Ok(()), Ok(t)) => assert_eq!(&out[1..], t.as_bytes(), "{v}"),
                (Err(a), Err(b)) => assert_eq!((a, out.as_slice()), (b, &b"x"[..])),
                (a, b) => panic!("instant {v}: {a:?} vs {b:?}"),
            }
        }
        let hour = 3_600_000_000i64;
        for v in [
            0,
            1,
            -1,
            59_999_999,
            9 * hour,
            10 * hour + 1,
            -838 * hour,
            839 * hour,
            -839 * hour,
            838 * hour + hour - 1,
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            match (push_time(&mut out, v), check_time(v)) {
                (Ok(()), Ok(t)) => assert_eq!(out, t.as_bytes(), "{v}"),
                (Err(a), Err(b)) => assert_eq!((a, out.len()), (b, 0)),
                (a, b) => panic!("time {v}: {a:?} vs {b:?}"),
            }
        }
    }

    /// Floats go as ryu's shortest digits, which parse back to the same double.
    #[test]
    fn floats_print_the_shortest_digits_that_read_back_exactly() {
        for v in [
            0.0,
            -0.0,
            0.1,
            1e16,
            1.5e-7,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            123.456,
        ] {
            let t = ryu::Buffer::new().format_finite(v).to_owned();
            assert_eq!(t.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{t}");
        }
    }
}
