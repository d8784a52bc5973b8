//! PostgreSQL's binary COPY format <-> Arrow: the hot path of every PostgreSQL read and load.
//!
//! [`CopyDecoder`] turns the bytes of `COPY (SELECT …) TO STDOUT (FORMAT binary)` straight
//! into Arrow builders; [`CopyEncoder`] turns Arrow batches into the bytes of
//! `COPY … FROM STDIN (FORMAT binary)`. Each column gets one conversion strategy, chosen once
//! from its [`Wire`] format and Arrow type (odbc2parquet's per-type strategies); the per-value
//! loop never matches on a type.
//!
//! Value formats are those of PostgreSQL's `*_send` / `*_recv` functions (big-endian), and the
//! encoder writes what PostgreSQL itself sends — numeric normalised as `numeric_send` does,
//! arrays with the has-nulls flag as `array_send` sets it — so a value read and written back
//! is byte-identical (tests/data/pgcopy/ holds streams made by a real server).
//!
//! This module knows the wire, not the connection: it never talks to a server, never names a
//! table or column (errors carry the row and column number; the caller adds names), and never
//! decides which PostgreSQL type maps to which [`Wire`] (that is the reader's and loader's job).
//!
//! Conventions the callers rely on:
//! - dates and timestamps `±infinity` travel as `i32::MAX`/`i32::MIN` (Date32) and
//!   `i64::MAX`/`i64::MIN` (Timestamp); a finite value that would land on a sentinel is an error.
//! - intervals `±infinity` (PostgreSQL 17+) travel as months/days `i32::MAX`/`MIN` with nanoseconds
//!   `i64::MAX`/`MIN`.
//! - `numeric` NaN and ±Infinity exist only as `ColumnType::NumericText` ("NaN", "Infinity",
//!   "-Infinity"); into a Decimal column (or a List of decimals) they are an error naming the
//!   row and column, with [`CodecError::needs_text`] set.
//! - arrays must be one-dimensional with lower bound 1 (or empty); an array with another lower
//!   bound (`'[0:2]={1,2,3}'`) or with 2 to 6 dimensions (PostgreSQL does not enforce an array
//!   column's declared dimensions) is an error naming the row and column, with
//!   [`CodecError::needs_text`] set, since a List cannot carry the bounds.
//! - `needs_text` marks exactly those values: valid PostgreSQL data the column's Arrow type
//!   cannot carry but its text form can. The reader reacts by reading that column again as
//!   `col::text` (restored through the type's input function on import); every other error,
//!   damaged data included, leaves it false. The encoder never sets it.
//! - `numeric` digit counts are unsigned 16-bit, as `numeric_recv` reads them: a value of more
//!   than 32767 base-10000 digit groups (`9e131071 + 1`) decodes and encodes like any other,
//!   up to PostgreSQL's own limits (131072 digits before the point, 16383 after).

mod decode;
mod encode;
mod numeric;
#[cfg(test)]
mod tests;

pub use decode::CopyDecoder;
pub use encode::CopyEncoder;

/// How one column travels in binary COPY, chosen once per column from its PostgreSQL type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// numeric: to/from Decimal128(p,s), Decimal256(p,s) (exact; a value with more fraction
    /// digits than s is an error naming the row, NaN/±Infinity one with `needs_text`), or
    /// `ColumnType::NumericText` (Utf8 canonical text exactly as PostgreSQL prints it,
    /// including dscale trailing zeros, "NaN", "Infinity", "-Infinity").
    Numeric,
    /// text, varchar, bpchar (padding kept as sent), name, citext, enum labels, json, xml, and
    /// any column the reader casts to ::text in its SELECT: raw UTF-8 bytes <-> Utf8.
    Text,
    /// jsonb: version byte 1 + text <-> Utf8.
    Jsonb,
    Bytea,
    /// i32 days since 2000-01-01 <-> Date32 (days since 1970-01-01); PG infinity (i32::MAX)
    /// <-> i32::MAX, -infinity (i32::MIN) <-> i32::MIN.
    Date,
    /// i64 µs since 2000-01-01 <-> Timestamp(µs) / Timestamp(µs,"UTC"); ±infinity
    /// (i64::MAX/MIN) <-> i64::MAX/MIN.
    Timestamp,
    Timestamptz,
    /// i64 µs since midnight <-> Time64(µs).
    Time,
    /// i64 µs, i32 days, i32 months <-> Interval(MonthDayNano) (nanos = µs*1000, checked).
    Interval,
    /// 16 bytes <-> FixedSizeBinary(16).
    Uuid,
    /// One-dimensional array (ndim 0 or 1, NULL elements allowed) <-> List<elem>;
    /// multi-dimensional arrays and lower bounds other than 1 are a `needs_text` error naming
    /// the row. `elem_oid` is written by the encoder (array_recv checks it against the
    /// column's element type).
    Array {
        elem: Box<Wire>,
        elem_oid: u32,
    },
}

/// Where and why a value could not be converted; the caller adds table and column names.
///
/// `row` is 1-based in the decoder (the n-th tuple of the stream; 0 for the header and
/// trailer) and `first_row + index in batch` in the encoder. `column` is the 0-based field
/// index.
///
/// `needs_text` is set (by the decoder only, always with `column`) when the value is valid
/// PostgreSQL data that the column's Arrow type cannot carry but its text form can: numeric
/// NaN or ±Infinity in a Decimal column (also as an element of a list of decimals), an array
/// whose lower bound is not 1, and an array of 2 to 6 dimensions in a List column. Reading
/// that column again as `col::text` then succeeds. It is never set for damaged data.
#[derive(Debug, thiserror::Error)]
#[error("row {row}{}: {message}", column.map(|c| format!(", column #{c}")).unwrap_or_default())]
pub struct CodecError {
    pub row: u64,
    pub column: Option<usize>,
    pub message: String,
    pub needs_text: bool,
}

impl CodecError {
    fn stream(row: u64, message: impl Into<String>) -> Self {
        CodecError {
            row,
            column: None,
            message: message.into(),
            needs_text: false,
        }
    }

    fn at(row: u64, column: usize, message: impl Into<String>) -> Self {
        CodecError {
            row,
            column: Some(column),
            message: message.into(),
            needs_text: false,
        }
    }

    fn value(row: u64, column: usize, e: ValueError) -> Self {
        CodecError {
            row,
            column: Some(column),
            message: e.message,
            needs_text: e.needs_text,
        }
    }
}

/// Why one value could not be decoded; becomes a [`CodecError`] once the row and column
/// are known. Plain strings convert into it with `needs_text` false.
#[derive(Debug)]
struct ValueError {
    message: String,
    needs_text: bool,
}

impl ValueError {
    /// A valid value this column's Arrow type cannot carry, but its text form can.
    fn needs_text(message: impl Into<String>) -> Self {
        ValueError {
            message: message.into(),
            needs_text: true,
        }
    }

    /// The same error with its message prefixed (for an element of an array).
    fn context(self, prefix: &str) -> Self {
        ValueError {
            message: format!("{prefix}{}", self.message),
            needs_text: self.needs_text,
        }
    }
}

impl From<String> for ValueError {
    fn from(message: String) -> Self {
        ValueError {
            message,
            needs_text: false,
        }
    }
}

impl From<&str> for ValueError {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

/// The PostgreSQL type OID of a wire format's base type (for Array elem_oid defaults).
pub fn default_oid(w: &Wire) -> u32 {
    match w {
        Wire::Bool => 16,
        Wire::Int2 => 21,
        Wire::Int4 => 23,
        Wire::Int8 => 20,
        Wire::Float4 => 700,
        Wire::Float8 => 701,
        Wire::Numeric => 1700,
        Wire::Text => 25,
        Wire::Jsonb => 3802,
        Wire::Bytea => 17,
        Wire::Date => 1082,
        Wire::Timestamp => 1114,
        Wire::Timestamptz => 1184,
        Wire::Time => 1083,
        Wire::Interval => 1186,
        Wire::Uuid => 2950,
        Wire::Array { elem, .. } => array_oid(elem),
    }
}

/// The OID of the array type over `elem` (`_int4` is 1007 …), 0 when PostgreSQL has none.
fn array_oid(elem: &Wire) -> u32 {
    match elem {
        Wire::Bool => 1000,
        Wire::Int2 => 1005,
        Wire::Int4 => 1007,
        Wire::Int8 => 1016,
        Wire::Float4 => 1021,
        Wire::Float8 => 1022,
        Wire::Numeric => 1231,
        Wire::Text => 1009,
        Wire::Jsonb => 3807,
        Wire::Bytea => 1001,
        Wire::Date => 1182,
        Wire::Timestamp => 1115,
        Wire::Timestamptz => 1185,
        Wire::Time => 1183,
        Wire::Interval => 1187,
        Wire::Uuid => 2951,
        Wire::Array { .. } => 0,
    }
}

/// The 11-byte signature that starts every binary COPY stream.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Signature, flags and header-extension length.
const HEADER_LEN: usize = 19;
/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
const EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const EPOCH_MICROS: i64 = 946_684_800_000_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;
