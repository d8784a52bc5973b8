//! A table's content fingerprint: the wrapping sum of a 128-bit XXH3 hash of each row's
//! canonical encoding, independent of row order, sensitive to every value and to duplicated
//! rows. Computed beside every export (the catalog records it) and by `ferry compare`.
//!
//! # Canonical values
//!
//! A value is hashed in its canonical form ([`Form`]), not in the Arrow type a reader gave
//! it, so that what the documented mappings (docs/TYPES.md) carry exactly hashes alike on
//! every engine:
//!
//! | canonical types | form | encoding |
//! |---|---|---|
//! | Int16 … Int64, UInt8 … UInt64, Decimal128/256, numeric text | [`Form::Number`]: the exact value | `D` scale (i32) mantissa (i128), the scale as small as the value allows (12.50 = 125 × 10⁻¹, 7 as an integer or as numeric(20,0) = 7 × 10⁰); a value whose mantissa does not fit 128 bits: `W` and its digits and exponent as text; NaN, ±Infinity: `W` and the word |
//! | Boolean | [`Form::Boolean`] | `B` 0 or 1 |
//! | Float32, Float64 | [`Form::Float`] | `F` the f64 bits (a float32 widened exactly; every NaN the same) |
//! | Utf8 | [`Form::Text`] | `S` length bytes |
//! | Uuid | [`Form::Uuid`] | as the text of its lowercase hyphenated form (SQLite keeps a uuid as that text) |
//! | Json | [`Form::Json`] | `J` length canonical JSON: no insignificant whitespace, object keys in one order (shorter first, then bytewise: PostgreSQL jsonb's) with the last of duplicate keys kept (as jsonb keeps it), strings with only `"`, `\` and control characters escaped, numbers by value (1.50 = 1.5 = 15e-1); text that is not JSON hashes as text |
//! | Binary | [`Form::Binary`] | `X` length bytes |
//! | Date32 | [`Form::Date`] | `d` days |
//! | Timestamp, with or without zone | [`Form::Timestamp`] | `T` microseconds |
//! | Time64 | [`Form::Time`] | `t` microseconds |
//! | Interval | [`Form::Interval`] | `V` months days nanoseconds |
//! | List\<T\> | [`Form::List`] | `L` count, then each element in T's form |
//!
//! NULL is `N` in every form. Row encodings concatenate the columns' in order.
//!
//! One cross-type rule, for `compare` only: where one side's column is an interval, a list,
//! a decimal or numeric text ([`compares_as_pg_text`]) and the other side's is text, the
//! first is compared as its PostgreSQL text form ([`as_pg_text`]), the text `--as-text`
//! loads into an engine that has no such type, hashed as [`Form::Text`]. Export
//! fingerprints never change form.
//!
//! Bundles written before this table existed hashed integers, decimals, uuids and JSON by the
//! reader's Arrow type; their catalog fingerprints are informative only (nothing compares a
//! stored fingerprint: `compare` of a bundle reads its rows).

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, Field, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, IntervalMonthDayNanoType, IntervalUnit,
    Time64MicrosecondType, TimeUnit, TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use arrow::record_batch::RecordBatch;

use super::{ColumnType, META_EXTENSION, META_LOGICAL};
use crate::{Error, Result};

/// A table's content fingerprint under construction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    sum: u128,
    pub rows: u64,
}

/// What a value is, for hashing: the canonical form of each canonical type (see the module
/// documentation), so equal values of different Arrow types hash alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    Boolean,
    /// Integers, decimals and numeric text: the exact number.
    Number,
    Float,
    Text,
    /// A uuid, hashed as its lowercase hyphenated text.
    Uuid,
    Json,
    Binary,
    Date,
    Timestamp,
    Time,
    Interval,
    List(Box<Form>),
}

impl Form {
    /// The canonical form of a canonical type: the one table every fingerprint follows.
    pub fn of(ty: &ColumnType) -> Form {
        match ty {
            ColumnType::Boolean => Form::Boolean,
            ColumnType::Int16
            | ColumnType::Int32
            | ColumnType::Int64
            | ColumnType::UInt8
            | ColumnType::UInt16
            | ColumnType::UInt32
            | ColumnType::UInt64
            | ColumnType::Decimal128 { .. }
            | ColumnType::Decimal256 { .. }
            | ColumnType::NumericText => Form::Number,
            ColumnType::Float32 | ColumnType::Float64 => Form::Float,
            ColumnType::Utf8 => Form::Text,
            ColumnType::Uuid => Form::Uuid,
            ColumnType::Json => Form::Json,
            ColumnType::Binary => Form::Binary,
            ColumnType::Date32 => Form::Date,
            ColumnType::Timestamp { .. } => Form::Timestamp,
            ColumnType::Time64 => Form::Time,
            ColumnType::Interval => Form::Interval,
            ColumnType::List { element } => Form::List(Box::new(Form::of(element))),
        }
    }
}

/// Whether a column of canonical type `ty`, compared with a column that holds text, is
/// compared as its PostgreSQL text form (hashed as [`Form::Text`]): the types `--as-text`
/// loads as that text into an engine without a column type for them (docs/TYPES.md,
/// "`--as-text`"): intervals, one-dimensional arrays, decimals and numeric text. Any other
/// type and text stay different ("text and a number" are not made equal otherwise).
pub fn compares_as_pg_text(ty: &ColumnType) -> bool {
    matches!(
        ty,
        ColumnType::Interval
            | ColumnType::List { .. }
            | ColumnType::Decimal128 { .. }
            | ColumnType::Decimal256 { .. }
            | ColumnType::NumericText
    ) && super::text::has_pg_text_form(ty)
}

/// A column in the form `--as-text` loads it: each value as [`super::text::pg_text`] prints
/// it (the one function the SQLite and MySQL loaders call), NULL as NULL, as a plain Utf8
/// column. `None` when the column's type is not one [`compares_as_pg_text`] names.
pub fn as_pg_text(field: &Field, a: &ArrayRef) -> Result<Option<(Field, ArrayRef)>> {
    let Some(ty) = column_type(field).filter(compares_as_pg_text) else {
        return Ok(None);
    };
    let mut b = arrow::array::StringBuilder::with_capacity(a.len(), a.len() * 16);
    for i in 0..a.len() {
        if a.is_null(i) {
            b.append_null();
        } else {
            let t = super::text::pg_text(a.as_ref(), i, &ty).map_err(|e| {
                Error::Data(format!(
                    "column {:?}: its PostgreSQL text form: {e}",
                    field.name()
                ))
            })?;
            b.append_value(t);
        }
    }
    Ok(Some((
        Field::new(field.name(), DataType::Utf8, field.is_nullable()),
        std::sync::Arc::new(b.finish()),
    )))
}

/// The canonical type of a batch's column, from its Arrow type and the field metadata ferry
/// writes ([`super::TableDef::arrow_schema`]); `None` for an Arrow type no canonical type has.
pub fn column_type(field: &Field) -> Option<ColumnType> {
    let meta = |k: &str, v: &str| field.metadata().get(k).is_some_and(|x| x == v);
    Some(match field.data_type() {
        DataType::Boolean => ColumnType::Boolean,
        // Int8 is no canonical type, but a value is a value.
        DataType::Int8 | DataType::Int16 => ColumnType::Int16,
        DataType::Int32 => ColumnType::Int32,
        DataType::Int64 => ColumnType::Int64,
        DataType::UInt8 => ColumnType::UInt8,
        DataType::UInt16 => ColumnType::UInt16,
        DataType::UInt32 => ColumnType::UInt32,
        DataType::UInt64 => ColumnType::UInt64,
        DataType::Float32 => ColumnType::Float32,
        DataType::Float64 => ColumnType::Float64,
        DataType::Decimal128(p, s) => ColumnType::Decimal128 {
            precision: *p,
            scale: *s,
        },
        DataType::Decimal256(p, s) => ColumnType::Decimal256 {
            precision: *p,
            scale: *s,
        },
        DataType::Utf8 if meta(META_EXTENSION, "arrow.json") => ColumnType::Json,
        DataType::Utf8 if meta(META_LOGICAL, "numeric") => ColumnType::NumericText,
        DataType::Utf8 => ColumnType::Utf8,
        DataType::Binary => ColumnType::Binary,
        // The only fixed-size binary of the type table.
        DataType::FixedSizeBinary(16) => ColumnType::Uuid,
        DataType::Date32 => ColumnType::Date32,
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            ColumnType::Timestamp { utc: tz.is_some() }
        }
        DataType::Time64(TimeUnit::Microsecond) => ColumnType::Time64,
        DataType::Interval(IntervalUnit::MonthDayNano) => ColumnType::Interval,
        DataType::List(item) => ColumnType::List {
            element: Box::new(column_type(item)?),
        },
        _ => return None,
    })
}

type Encoder<'a> = Box<dyn Fn(usize, &mut Vec<u8>) + 'a>;

/// Writes a number given as an exact decimal `mantissa × 10^-scale`, with the scale made as
/// small as the value allows.
fn put_decimal(o: &mut Vec<u8>, mantissa: i128, scale: i32) {
    let (mut v, mut s) = (mantissa, scale);
    if s < 0 {
        // Arrow allows negative scales; ferry writes none. Scaled up where it fits.
        match 10i128
            .checked_pow(s.unsigned_abs())
            .and_then(|m| v.checked_mul(m))
        {
            Some(x) => (v, s) = (x, 0),
            None => {
                let neg = v < 0;
                let digits = v.unsigned_abs().to_string();
                put_dec(
                    o,
                    &Dec::normal(neg, digits.as_bytes(), i64::from(scale.unsigned_abs())),
                );
                return;
            }
        }
    }
    if let Ok(mut w) = i64::try_from(v) {
        // The common case, in 64-bit arithmetic: an i128 division is a library call.
        while s > 0 && w % 10 == 0 {
            w /= 10;
            s -= 1;
        }
        v = i128::from(w);
    } else {
        while s > 0 && v % 10 == 0 {
            v /= 10;
            s -= 1;
        }
    }
    if v == 0 {
        s = 0;
    }
    put_d(o, v, s);
}

fn put_d(o: &mut Vec<u8>, v: i128, s: i32) {
    o.push(b'D');
    o.extend_from_slice(&s.to_le_bytes());
    o.extend_from_slice(&v.to_le_bytes());
}

/// An exact decimal: `digits × 10^exp`, digits without leading or trailing zeros (none for 0).
#[derive(Debug, PartialEq, Eq)]
struct Dec {
    neg: bool,
    digits: Vec<u8>,
    exp: i64,
}

impl Dec {
    /// From ASCII digits (any zeros) times 10^exp.
    fn normal(neg: bool, digits: &[u8], exp: i64) -> Dec {
        let lead = digits.iter().take_while(|d| **d == b'0').count();
        let digits = &digits[lead..];
        let trail = digits.iter().rev().take_while(|d| **d == b'0').count();
        let kept = &digits[..digits.len() - trail];
        if kept.is_empty() {
            return Dec {
                neg: false,
                digits: vec![],
                exp: 0,
            };
        }
        Dec {
            neg,
            digits: kept.to_vec(),
            exp: exp.saturating_add(i64::try_from(trail).unwrap_or(i64::MAX)),
        }
    }

    /// `[+-]digits[.digits][(e|E)[+-]digits]`, surrounding whitespace allowed; `None` for
    /// anything else (NaN, Infinity, not a number).
    fn parse(s: &str) -> Option<Dec> {
        let s = s.trim().as_bytes();
        let (neg, s) = match s.first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let (m, e) = match s.iter().position(|c| matches!(c, b'e' | b'E')) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let (int, frac) = match m.iter().position(|c| *c == b'.') {
            Some(i) => (&m[..i], &m[i + 1..]),
            None => (m, &m[m.len()..]),
        };
        if (int.is_empty() && frac.is_empty()) || !int.iter().chain(frac).all(u8::is_ascii_digit) {
            return None;
        }
        let exp = match e {
            None => 0i64,
            Some(e) => {
                let (eneg, e) = match e.first() {
                    Some(b'-') => (true, &e[1..]),
                    Some(b'+') => (false, &e[1..]),
                    _ => (false, e),
                };
                if e.is_empty() || !e.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                // Saturating: an exponent past i64 is no value anyone stores exactly.
                let v = e.iter().fold(0i64, |acc, d| {
                    acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
                });
                if eneg { -v } else { v }
            }
        };
        let mut digits = Vec::with_capacity(int.len() + frac.len());
        digits.extend_from_slice(int);
        digits.extend_from_slice(frac);
        let exp = exp.saturating_sub(i64::try_from(frac.len()).unwrap_or(i64::MAX));
        Some(Dec::normal(neg, &digits, exp))
    }

    /// `-digitsEexp`: one text per value.
    /// One text per value: an integer of up to 40 digits as its digits (`-120`), anything
    /// else as digits and exponent (`15e-1`).
    fn text(&self, o: &mut Vec<u8>) {
        if self.digits.is_empty() {
            o.push(b'0');
            return;
        }
        if self.neg {
            o.push(b'-');
        }
        o.extend_from_slice(&self.digits);
        let n = i64::try_from(self.digits.len()).unwrap_or(i64::MAX);
        if (0..=40 - n).contains(&self.exp) {
            o.extend(std::iter::repeat_n(
                b'0',
                usize::try_from(self.exp).unwrap_or(0),
            ));
        } else {
            o.push(b'e');
            o.extend_from_slice(self.exp.to_string().as_bytes());
        }
    }
}

/// A number in its canonical encoding: `D` when its mantissa fits 128 bits (as every
/// integer and Decimal128 does), else `W` and its text.
fn put_dec(o: &mut Vec<u8>, d: &Dec) {
    if d.digits.is_empty() {
        return put_d(o, 0, 0);
    }
    let n = i64::try_from(d.digits.len()).unwrap_or(i64::MAX);
    let fits = if d.exp >= 0 {
        n.saturating_add(d.exp) <= 39
    } else {
        n <= 39 && i32::try_from(d.exp.saturating_neg()).is_ok()
    };
    if fits {
        let mantissa = std::str::from_utf8(&d.digits)
            .ok()
            .and_then(|s| s.parse::<i128>().ok())
            .and_then(|m| {
                let up = u32::try_from(d.exp.max(0)).ok()?;
                m.checked_mul(10i128.checked_pow(up)?)
            });
        if let Some(m) = mantissa {
            let m = if d.neg { -m } else { m };
            let scale = i32::try_from(d.exp.saturating_neg().max(0)).unwrap_or(i32::MAX);
            return put_d(o, m, scale);
        }
    }
    let mut t = Vec::new();
    d.text(&mut t);
    put_w(o, &t);
}

fn put_w(o: &mut Vec<u8>, text: &[u8]) {
    o.push(b'W');
    o.extend_from_slice(&(text.len() as u64).to_le_bytes());
    o.extend_from_slice(text);
}

fn put_s(o: &mut Vec<u8>, tag: u8, v: &[u8]) {
    o.push(tag);
    o.extend_from_slice(&(v.len() as u64).to_le_bytes());
    o.extend_from_slice(v);
}

/// Numeric text (PostgreSQL's unconstrained numeric, a wide decimal's text): its value; NaN
/// and the infinities as their words; text that is no number as text.
fn put_number_text(o: &mut Vec<u8>, s: &str) {
    match Dec::parse(s) {
        Some(d) => put_dec(o, &d),
        None => {
            let t = s.trim();
            match t {
                "NaN" | "nan" => put_w(o, b"NaN"),
                "Infinity" | "+Infinity" | "inf" | "+inf" => put_w(o, b"Infinity"),
                "-Infinity" | "-inf" => put_w(o, b"-Infinity"),
                _ => put_s(o, b'S', s.as_bytes()),
            }
        }
    }
}

/// Each byte value's two lowercase hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    t
};

/// Where each of a uuid's 16 bytes puts its two digits in the hyphenated text.
const UUID_DIGITS_AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
/// … and where its hyphens go.
const UUID_HYPHENS_AT: [usize; 4] = [8, 13, 18, 23];

/// Writes the digit pairs of a uuid's bytes at their places in its hyphenated text (the
/// hyphens are the caller's): no branch, straight into the row buffer on the hot path.
fn put_uuid_digits(b: &[u8], out: &mut [u8; 36]) {
    for (at, x) in UUID_DIGITS_AT.iter().zip(b) {
        out[*at..*at + 2].copy_from_slice(&HEX_PAIRS[usize::from(*x)]);
    }
}

/// A uuid's lowercase hyphenated text (36 bytes); a value of another width (which no
/// canonical uuid has) leaves the digits it lacks as `-`.
fn uuid_text(b: &[u8]) -> [u8; 36] {
    let mut out = [b'-'; 36];
    put_uuid_digits(b, &mut out);
    out
}

/// A uuid as its text: `S`, 36, the text.
fn put_uuid(o: &mut Vec<u8>, b: &[u8]) {
    put_s(o, b'S', &uuid_text(b));
}

fn put_json(o: &mut Vec<u8>, s: &str) {
    let start = o.len();
    o.push(b'J');
    o.extend_from_slice(&[0u8; 8]);
    if json::canonical(s, o) {
        let n = (o.len() - start - 9) as u64;
        o[start + 1..start + 9].copy_from_slice(&n.to_le_bytes());
    } else {
        o.truncate(start);
        put_s(o, b'S', s.as_bytes());
    }
}

/// The per-value encoder of one column, in the column's canonical form.
fn encoder<'a>(field: &Field, a: &'a ArrayRef) -> Result<Encoder<'a>> {
    let ty = column_type(field).ok_or_else(|| {
        Error::Data(format!(
            "cannot fingerprint column {:?} of Arrow type {}",
            field.name(),
            field.data_type()
        ))
    })?;
    macro_rules! int {
        ($t:ty) => {{
            let x = a.as_primitive::<$t>();
            Box::new(move |i, o: &mut Vec<u8>| put_d(o, i128::from(x.value(i)), 0))
        }};
    }
    let f: Encoder<'a> = match (a.data_type(), &ty) {
        (DataType::Boolean, _) => {
            let x = a.as_boolean();
            Box::new(move |i, o| o.extend_from_slice(&[b'B', u8::from(x.value(i))]))
        }
        (DataType::Int8, _) => int!(Int8Type),
        (DataType::Int16, _) => int!(Int16Type),
        (DataType::Int32, _) => int!(Int32Type),
        (DataType::Int64, _) => int!(Int64Type),
        (DataType::UInt8, _) => int!(UInt8Type),
        (DataType::UInt16, _) => int!(UInt16Type),
        (DataType::UInt32, _) => int!(UInt32Type),
        (DataType::UInt64, _) => int!(UInt64Type),
        (DataType::Float32, _) => {
            let x = a.as_primitive::<Float32Type>();
            Box::new(move |i, o| {
                o.push(b'F');
                o.extend_from_slice(&float_bits(f64::from(x.value(i))));
            })
        }
        (DataType::Float64, _) => {
            let x = a.as_primitive::<Float64Type>();
            Box::new(move |i, o| {
                o.push(b'F');
                o.extend_from_slice(&float_bits(x.value(i)));
            })
        }
        (DataType::Decimal128(_, s), _) => {
            let x = a.as_primitive::<Decimal128Type>();
            let s = i32::from(*s);
            Box::new(move |i, o| put_decimal(o, x.value(i), s))
        }
        (DataType::Decimal256(_, s), _) => {
            let x = a.as_primitive::<Decimal256Type>();
            let s = *s;
            Box::new(move |i, o| {
                put_number_text(o, &crate::types::text::format_decimal256(x.value(i), s));
            })
        }
        (DataType::Utf8, ColumnType::Json) => {
            let x = a.as_string::<i32>();
            Box::new(move |i, o| put_json(o, x.value(i)))
        }
        (DataType::Utf8, ColumnType::NumericText) => {
            let x = a.as_string::<i32>();
            Box::new(move |i, o| put_number_text(o, x.value(i)))
        }
        (DataType::Utf8, _) => {
            let x = a.as_string::<i32>();
            Box::new(move |i, o| put_s(o, b'S', x.value(i).as_bytes()))
        }
        (DataType::Binary, _) => {
            let x = a.as_binary::<i32>();
            Box::new(move |i, o| put_s(o, b'X', x.value(i)))
        }
        (DataType::FixedSizeBinary(_), _) => {
            let x = a.as_fixed_size_binary();
            Box::new(move |i, o| put_uuid(o, x.value(i)))
        }
        (DataType::Date32, _) => {
            let x = a.as_primitive::<Date32Type>();
            Box::new(move |i, o| {
                o.push(b'd');
                o.extend_from_slice(&x.value(i).to_le_bytes());
            })
        }
        (DataType::Timestamp(_, _), _) => {
            let x = a.as_primitive::<TimestampMicrosecondType>();
            Box::new(move |i, o| {
                o.push(b'T');
                o.extend_from_slice(&x.value(i).to_le_bytes());
            })
        }
        (DataType::Time64(_), _) => {
            let x = a.as_primitive::<Time64MicrosecondType>();
            Box::new(move |i, o| {
                o.push(b't');
                o.extend_from_slice(&x.value(i).to_le_bytes());
            })
        }
        (DataType::Interval(_), _) => {
            let x = a.as_primitive::<IntervalMonthDayNanoType>();
            Box::new(move |i, o| {
                let v = x.value(i);
                o.push(b'V');
                o.extend_from_slice(&v.months.to_le_bytes());
                o.extend_from_slice(&v.days.to_le_bytes());
                o.extend_from_slice(&v.nanoseconds.to_le_bytes());
            })
        }
        (DataType::List(item), _) => {
            let x = a.as_list::<i32>();
            let inner = encoder(item, x.values())?;
            Box::new(move |i, o| {
                let (start, end) = (x.value_offsets()[i], x.value_offsets()[i + 1]);
                o.push(b'L');
                o.extend_from_slice(&(end - start).to_le_bytes());
                for j in start..end {
                    inner(usize::try_from(j).unwrap_or(0), o);
                }
            })
        }
        (other, _) => {
            return Err(Error::Data(format!(
                "cannot fingerprint a {other} column yet"
            )));
        }
    };
    // The null buffer itself, not a dynamic `is_null` call per value (as `Array::is_null`).
    let nulls = a.nulls().cloned();
    Ok(Box::new(move |i, o| {
        if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
            o.push(b'N')
        } else {
            f(i, o)
        }
    }))
}

fn float_bits(v: f64) -> [u8; 8] {
    if v.is_nan() { f64::NAN } else { v }
        .to_bits()
        .to_le_bytes()
}

/// The hash a row's canonical encoding adds to a fingerprint.
pub fn row_hash(encoded: &[u8]) -> u128 {
    // A fast 128-bit hash: the fingerprint compares content, integrity is the AEAD's job.
    xxhash_rust::xxh3::xxh3_128(encoded)
}

impl Fingerprint {
    /// Adds every row of a batch.
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut sum = self.sum;
        encode_rows(batch, &mut |rows| {
            for r in 0..rows.len() {
                sum = sum.wrapping_add(row_hash(rows.row(r)));
            }
        })?;
        self.sum = sum;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Adds one row by its [`row_hash`].
    pub fn add_row(&mut self, hash: u128) {
        self.sum = self.sum.wrapping_add(hash);
        self.rows += 1;
    }

    /// [`Fingerprint::add`] one value at a time: the reference the chunked path is tested
    /// against.
    #[cfg(test)]
    fn add_per_value(&mut self, batch: &RecordBatch) -> Result<()> {
        let schema = batch.schema();
        let encoders = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(a, f)| encoder(f, a))
            .collect::<Result<Vec<_>>>()?;
        let mut buf = Vec::with_capacity(256);
        for row in 0..batch.num_rows() {
            buf.clear();
            for e in &encoders {
                e(row, &mut buf);
            }
            self.sum = self.sum.wrapping_add(row_hash(&buf));
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Adds another slice of the same table.
    pub fn merge(&mut self, other: &Fingerprint) {
        self.sum = self.sum.wrapping_add(other.sum);
        self.rows += other.rows;
    }

    /// A fingerprint as [`Fingerprint::hex`] printed it, with its row count (a shard's
    /// completion record); `None` when `hex` is not 32 hex digits.
    pub fn from_hex(hex: &str, rows: u64) -> Option<Fingerprint> {
        if hex.len() != 32 {
            return None;
        }
        let sum = u128::from_str_radix(hex, 16).ok()?;
        Some(Fingerprint { sum, rows })
    }

    pub fn hex(&self) -> String {
        format!("{:032x}", self.sum)
    }
}

/// The canonical encodings of a chunk of a batch's rows, row-major: each row's columns in
/// order, each cell at its own offset.
pub struct Rows<'b> {
    buf: &'b [u8],
    /// `bounds[c * n + r]`: where column `c` of row `r` starts; `bounds[cols * n + r]`: where
    /// row `r` ends.
    bounds: &'b [usize],
    n: usize,
    cols: usize,
    first: usize,
}

impl Rows<'_> {
    /// Rows in the chunk.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The batch's row index of the chunk's row 0.
    pub fn first(&self) -> usize {
        self.first
    }

    /// Row `r`'s encoding.
    pub fn row(&self, r: usize) -> &[u8] {
        &self.buf[self.bounds[r]..self.bounds[self.cols * self.n + r]]
    }

    /// The encoding of column `c` of row `r`.
    pub fn cell(&self, r: usize, c: usize) -> &[u8] {
        &self.buf[self.bounds[c * self.n + r]..self.bounds[(c + 1) * self.n + r]]
    }
}

/// Rows encoded at a time: their encodings stay in cache between writing and hashing.
const CHUNK: usize = 256;

/// How one column is written into a chunk.
enum Col<'a> {
    /// Every non-NULL value has this many bytes (tag included).
    Fixed(usize, &'a ArrayRef),
    /// Text or binary: tag, length, bytes.
    Bytes(&'a ArrayRef),
    /// Anything else, through its per-value encoder, into `scratch` first.
    Encoded(Encoder<'a>),
}

/// Bytes of a non-NULL value's encoding for the fixed-width types.
fn width(t: &DataType) -> Option<usize> {
    Some(match t {
        DataType::Boolean => 2,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => 21,
        // A negative scale may rescale past i128 into the variable-width form: not fixed.
        DataType::Decimal128(_, s) if *s >= 0 => 21,
        DataType::Float32
        | DataType::Float64
        | DataType::Timestamp(TimeUnit::Microsecond, _)
        | DataType::Time64(TimeUnit::Microsecond) => 9,
        DataType::FixedSizeBinary(16) => 45,
        DataType::Date32 => 5,
        DataType::Interval(IntervalUnit::MonthDayNano) => 17,
        _ => return None,
    })
}

/// Calls `each` with the canonical encodings of every row of `batch`, a chunk of rows at a
/// time, written a column at a time with no per-value dynamic call for the common types:
/// the fingerprint runs beside every export and in `compare`, so it is on the hot path. A
/// column of a type with no canonical form is an error before `each` is called.
pub fn encode_rows(batch: &RecordBatch, each: &mut dyn FnMut(&Rows<'_>)) -> Result<()> {
    let schema = batch.schema();
    let mut cols = Vec::with_capacity(batch.num_columns());
    for (a, f) in batch.columns().iter().zip(schema.fields()) {
        let ty = column_type(f);
        cols.push(match (width(a.data_type()), ty) {
            (Some(w), _) => Col::Fixed(w, a),
            (None, Some(ColumnType::Utf8 | ColumnType::Binary)) => Col::Bytes(a),
            _ => Col::Encoded(encoder(f, a)?),
        });
    }
    let n = batch.num_rows();
    let ncols = cols.len();
    let mut len = Vec::with_capacity(CHUNK);
    let mut start = Vec::with_capacity(CHUNK + 1);
    let mut cur = Vec::with_capacity(CHUNK);
    let mut bounds = Vec::with_capacity(CHUNK * (ncols + 1));
    let mut buf = Vec::new();
    let mut scratch: Vec<(Vec<u8>, Vec<usize>)> = vec![(Vec::new(), Vec::new()); ncols];
    for first in (0..n).step_by(CHUNK) {
        let rows = first..n.min(first + CHUNK);
        let k = rows.len();
        len.clear();
        len.resize(k, 0usize);
        for (c, col) in cols.iter().enumerate() {
            match col {
                Col::Fixed(w, a) => {
                    let nulls = a.nulls();
                    for (r, l) in rows.clone().zip(len.iter_mut()) {
                        *l += if nulls.is_some_and(|x| x.is_null(r)) {
                            1
                        } else {
                            *w
                        };
                    }
                }
                Col::Bytes(a) => {
                    let nulls = a.nulls();
                    // A value's length from the offsets: no call per value.
                    let offs: &[i32] = if a.data_type() == &DataType::Utf8 {
                        a.as_string::<i32>().value_offsets()
                    } else {
                        a.as_binary::<i32>().value_offsets()
                    };
                    for (r, l) in rows.clone().zip(len.iter_mut()) {
                        *l += if nulls.is_some_and(|x| x.is_null(r)) {
                            1
                        } else {
                            9 + usize::try_from(offs[r + 1] - offs[r]).unwrap_or(0)
                        };
                    }
                }
                Col::Encoded(enc) => {
                    let (s, offs) = &mut scratch[c];
                    s.clear();
                    offs.clear();
                    for r in rows.clone() {
                        offs.push(s.len());
                        enc(r, s);
                    }
                    offs.push(s.len());
                    for (i, l) in len.iter_mut().enumerate() {
                        *l += offs[i + 1] - offs[i];
                    }
                }
            }
        }
        start.clear();
        let mut total = 0usize;
        for l in &len {
            start.push(total);
            total += l;
        }
        buf.resize(total, 0u8);
        cur.clear();
        cur.extend_from_slice(&start);
        bounds.clear();
        bounds.extend_from_slice(&cur);
        for (c, col) in cols.iter().enumerate() {
            match col {
                Col::Fixed(_, a) | Col::Bytes(a) => write(a, first, &mut buf, &mut cur),
                Col::Encoded(_) => {
                    let (s, offs) = &scratch[c];
                    for (i, p) in cur.iter_mut().enumerate() {
                        let v = &s[offs[i]..offs[i + 1]];
                        buf[*p..*p + v.len()].copy_from_slice(v);
                        *p += v.len();
                    }
                }
            }
            bounds.extend_from_slice(&cur);
        }
        each(&Rows {
            buf: &buf,
            bounds: &bounds,
            n: k,
            cols: ncols,
            first,
        });
    }
    Ok(())
}

/// Writes the encoding of each row from `first` at its cursor and moves the cursor past it.
fn put<const W: usize>(
    a: &ArrayRef,
    first: usize,
    buf: &mut [u8],
    cur: &mut [usize],
    tag: u8,
    value: impl Fn(usize) -> [u8; W],
) {
    let nulls = a.nulls();
    for (r, p) in (first..).zip(cur.iter_mut()) {
        if nulls.is_some_and(|n| n.is_null(r)) {
            buf[*p] = b'N';
            *p += 1;
        } else {
            buf[*p] = tag;
            buf[*p + 1..*p + 1 + W].copy_from_slice(&value(r));
            *p += 1 + W;
        }
    }
}

fn put_bytes<'a>(
    a: &ArrayRef,
    first: usize,
    buf: &mut [u8],
    cur: &mut [usize],
    tag: u8,
    value: impl Fn(usize) -> &'a [u8],
) {
    let nulls = a.nulls();
    for (r, p) in (first..).zip(cur.iter_mut()) {
        if nulls.is_some_and(|n| n.is_null(r)) {
            buf[*p] = b'N';
            *p += 1;
        } else {
            let v = value(r);
            buf[*p] = tag;
            buf[*p + 1..*p + 9].copy_from_slice(&(v.len() as u64).to_le_bytes());
            buf[*p + 9..*p + 9 + v.len()].copy_from_slice(v);
            *p += 9 + v.len();
        }
    }
}

/// Scale 0 and the integer: an integer's [`put_d`] payload.
fn int_payload(v: i128) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[4..].copy_from_slice(&v.to_le_bytes());
    out
}

/// A fixed-width or bytes column, written as [`encoder`] would (tested to agree).
fn write(a: &ArrayRef, first: usize, buf: &mut [u8], cur: &mut [usize]) {
    macro_rules! int {
        ($t:ty) => {{
            let x = a.as_primitive::<$t>();
            put(a, first, buf, cur, b'D', |i| {
                int_payload(i128::from(x.value(i)))
            })
        }};
    }
    match a.data_type() {
        DataType::Boolean => {
            let x = a.as_boolean();
            put(a, first, buf, cur, b'B', |i| [u8::from(x.value(i))]);
        }
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float32 => {
            let x = a.as_primitive::<Float32Type>();
            put(a, first, buf, cur, b'F', |i| {
                float_bits(f64::from(x.value(i)))
            });
        }
        DataType::Float64 => {
            let x = a.as_primitive::<Float64Type>();
            put(a, first, buf, cur, b'F', |i| float_bits(x.value(i)));
        }
        DataType::Decimal128(_, s) => {
            let x = a.as_primitive::<Decimal128Type>();
            let s = i32::from(*s);
            let mut one = Vec::with_capacity(21);
            let nulls = a.nulls();
            for (r, p) in (first..).zip(cur.iter_mut()) {
                if nulls.is_some_and(|n| n.is_null(r)) {
                    buf[*p] = b'N';
                    *p += 1;
                } else {
                    one.clear();
                    put_decimal(&mut one, x.value(r), s);
                    // Always `D` here, 21 bytes: width() sends a negative scale, which may
                    // need `W`, to the per-value encoder.
                    buf[*p..*p + one.len()].copy_from_slice(&one);
                    *p += one.len();
                }
            }
        }
        DataType::Utf8 => {
            let x = a.as_string::<i32>();
            put_bytes(a, first, buf, cur, b'S', |i| x.value(i).as_bytes());
        }
        DataType::Binary => {
            let x = a.as_binary::<i32>();
            put_bytes(a, first, buf, cur, b'X', |i| x.value(i));
        }
        DataType::FixedSizeBinary(_) => {
            // Written in place: a 44-byte value returned through the stack cost more
            // than the digits (each byte store, then a wide reload of the same bytes).
            let x = a.as_fixed_size_binary();
            let nulls = a.nulls();
            for (r, p) in (first..).zip(cur.iter_mut()) {
                if nulls.is_some_and(|n| n.is_null(r)) {
                    buf[*p] = b'N';
                    *p += 1;
                    continue;
                }
                let (head, text) = buf[*p..*p + 45].split_at_mut(9);
                head[0] = b'S';
                head[1..].copy_from_slice(&36u64.to_le_bytes());
                if let Ok(text) = <&mut [u8; 36]>::try_from(text) {
                    put_uuid_digits(x.value(r), text);
                    for at in UUID_HYPHENS_AT {
                        text[at] = b'-';
                    }
                }
                *p += 45;
            }
        }
        DataType::Date32 => {
            let x = a.as_primitive::<Date32Type>();
            put(a, first, buf, cur, b'd', |i| x.value(i).to_le_bytes());
        }
        DataType::Timestamp(_, _) => {
            let x = a.as_primitive::<TimestampMicrosecondType>();
            put(a, first, buf, cur, b'T', |i| x.value(i).to_le_bytes());
        }
        DataType::Time64(_) => {
            let x = a.as_primitive::<Time64MicrosecondType>();
            put(a, first, buf, cur, b't', |i| x.value(i).to_le_bytes());
        }
        DataType::Interval(_) => {
            let x = a.as_primitive::<IntervalMonthDayNanoType>();
            put(a, first, buf, cur, b'V', |i| {
                let v = x.value(i);
                let mut out = [0u8; 16];
                out[..4].copy_from_slice(&v.months.to_le_bytes());
                out[4..8].copy_from_slice(&v.days.to_le_bytes());
                out[8..].copy_from_slice(&v.nanoseconds.to_le_bytes());
                out
            });
        }
        // `width` and the bytes types let nothing else through.
        _ => {}
    }
}

/// Canonical JSON text (see the module documentation), written straight into the output;
/// an object whose keys are not already in canonical order (PostgreSQL jsonb's are) is
/// reordered once it is complete.
mod json {
    /// Deeper documents hash as their text (the parser recurses once per level).
    const MAX_DEPTH: usize = 256;

    /// Appends the canonical form of `s` to `out`; false (and `out` as it was) when `s` is
    /// not one JSON value.
    pub fn canonical(s: &str, out: &mut Vec<u8>) -> bool {
        thread_local! {
            /// The members list, kept between values (one allocation per thread, not per value).
            static MEMBERS: std::cell::RefCell<Vec<(usize, usize, usize)>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        let start = out.len();
        let mut p = Parser {
            s: s.as_bytes(),
            i: 0,
            members: MEMBERS.with(|m| std::mem::take(&mut *m.borrow_mut())),
        };
        p.members.clear();
        let ok = p.value(out, 0).is_some() && {
            p.ws();
            p.i == p.s.len()
        };
        if !ok {
            out.truncate(start);
        }
        MEMBERS.with(|m| *m.borrow_mut() = p.members);
        ok
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
        /// Open objects' members: (key start, key end, member end) in `out`.
        members: Vec<(usize, usize, usize)>,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self
                .s
                .get(self.i)
                .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
            {
                self.i += 1;
            }
        }

        fn next(&mut self) -> Option<u8> {
            let c = *self.s.get(self.i)?;
            self.i += 1;
            Some(c)
        }

        fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Option<()> {
            if depth > MAX_DEPTH {
                return None;
            }
            self.ws();
            match *self.s.get(self.i)? {
                b'{' => self.object(out, depth),
                b'[' => self.array(out, depth),
                b'"' => self.string(out),
                b't' => self.word(b"true", out),
                b'f' => self.word(b"false", out),
                b'n' => self.word(b"null", out),
                b'-' | b'0'..=b'9' => self.number(out),
                _ => None,
            }
        }

        fn word(&mut self, w: &[u8], out: &mut Vec<u8>) -> Option<()> {
            if self.s.get(self.i..self.i + w.len())? != w {
                return None;
            }
            self.i += w.len();
            out.extend_from_slice(w);
            Some(())
        }

        fn number(&mut self, out: &mut Vec<u8>) -> Option<()> {
            let start = self.i;
            while self
                .s
                .get(self.i)
                .is_some_and(|c| matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
            {
                self.i += 1;
            }
            let token = &self.s[start..self.i];
            // A plain integer (no sign but `-`, no leading zero) is its own canonical text:
            // the common case, without parsing.
            let digits = token.strip_prefix(b"-").unwrap_or(token);
            if !digits.is_empty()
                && digits.len() <= 40
                && digits.iter().all(u8::is_ascii_digit)
                && (digits[0] != b'0' || token == b"0")
            {
                out.extend_from_slice(token);
                return Some(());
            }
            let text = std::str::from_utf8(token).ok()?;
            super::Dec::parse(text)?.text(out);
            Some(())
        }

        fn array(&mut self, out: &mut Vec<u8>, depth: usize) -> Option<()> {
            self.i += 1;
            out.push(b'[');
            self.ws();
            if self.s.get(self.i) == Some(&b']') {
                self.i += 1;
                out.push(b']');
                return Some(());
            }
            loop {
                self.value(out, depth + 1)?;
                self.ws();
                match self.next()? {
                    b',' => out.push(b','),
                    b']' => break,
                    _ => return None,
                }
            }
            out.push(b']');
            Some(())
        }

        fn object(&mut self, out: &mut Vec<u8>, depth: usize) -> Option<()> {
            self.i += 1;
            out.push(b'{');
            let base = self.members.len();
            self.ws();
            if self.s.get(self.i) == Some(&b'}') {
                self.i += 1;
                out.push(b'}');
                return Some(());
            }
            loop {
                self.ws();
                if self.s.get(self.i) != Some(&b'"') {
                    return None;
                }
                let ks = out.len();
                self.string(out)?;
                let ke = out.len();
                self.ws();
                if self.next()? != b':' {
                    return None;
                }
                out.push(b':');
                self.value(out, depth + 1)?;
                self.members.push((ks, ke, out.len()));
                self.ws();
                match self.next()? {
                    b',' => out.push(b','),
                    b'}' => break,
                    _ => return None,
                }
            }
            self.order(out, base);
            self.members.truncate(base);
            out.push(b'}');
            Some(())
        }

        /// Puts the members from `base` on in canonical key order, the last of equal keys kept.
        fn order(&mut self, out: &mut Vec<u8>, base: usize) {
            let m = &self.members[base..];
            let key = |&(ks, ke, _): &(usize, usize, usize)| (ke - ks, ks, ke);
            let in_order = m.windows(2).all(|w| {
                let ((la, a0, a1), (lb, b0, b1)) = (key(&w[0]), key(&w[1]));
                (la, &out[a0..a1]) < (lb, &out[b0..b1])
            });
            if in_order {
                return;
            }
            let from = m[0].0;
            let old = out[from..].to_vec();
            let rel = |x: usize| x - from;
            // Stable: equal keys stay in document order, so the last one is the one kept.
            let mut idx: Vec<usize> = (0..m.len()).collect();
            let k = |i: usize| {
                let (ks, ke, _) = m[i];
                &old[rel(ks)..rel(ke)]
            };
            idx.sort_by(|&x, &y| (k(x).len(), k(x)).cmp(&(k(y).len(), k(y))));
            out.truncate(from);
            let mut first = true;
            for (j, &i) in idx.iter().enumerate() {
                if idx.get(j + 1).is_some_and(|&next| k(next) == k(i)) {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                let (ks, _, me) = m[i];
                out.extend_from_slice(&old[rel(ks)..rel(me)]);
            }
        }

        /// A string, unescaped and written again with only `"`, `\` and control characters
        /// escaped.
        fn string(&mut self, out: &mut Vec<u8>) -> Option<()> {
            self.i += 1;
            out.push(b'"');
            loop {
                let run = self.s[self.i..]
                    .iter()
                    .position(|c| matches!(c, b'"' | b'\\') || *c < 0x20)
                    .map(|n| self.i + n)?;
                out.extend_from_slice(&self.s[self.i..run]);
                self.i = run;
                match self.next()? {
                    b'"' => break,
                    b'\\' => {
                        let c = match self.next()? {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'u' => {
                                let hi = self.hex4()?;
                                if (0xD800..0xDC00).contains(&hi) {
                                    if self.next()? != b'\\' || self.next()? != b'u' {
                                        return None;
                                    }
                                    let lo = self.hex4()?;
                                    if !(0xDC00..0xE000).contains(&lo) {
                                        return None;
                                    }
                                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                                } else {
                                    char::from_u32(hi)?
                                }
                            }
                            _ => return None,
                        };
                        escape(c, out);
                    }
                    // A raw control character is not JSON.
                    _ => return None,
                }
            }
            out.push(b'"');
            Some(())
        }

        fn hex4(&mut self) -> Option<u32> {
            let h = self.s.get(self.i..self.i + 4)?;
            if !h.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            self.i += 4;
            u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
        }
    }

    fn escape(c: char, out: &mut Vec<u8>) {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if u32::from(c) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes())
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array,
        FixedSizeBinaryArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array,
        Int64Array, IntervalMonthDayNanoArray, ListArray, StringArray, Time64MicrosecondArray,
        TimestampMicrosecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
    };
    use arrow::datatypes::{IntervalMonthDayNano, Schema, i256};
    use std::collections::HashMap;
    use std::sync::Arc;

    type Meta = Option<(&'static str, &'static str)>;
    const JSON: Meta = Some((META_EXTENSION, "arrow.json"));
    const NUMERIC: Meta = Some((META_LOGICAL, "numeric"));

    fn batch(cols: Vec<(&str, ArrayRef, Meta)>) -> RecordBatch {
        let fields: Vec<Field> = cols
            .iter()
            .map(|(n, a, m)| {
                let f = Field::new(*n, a.data_type().clone(), true);
                match m {
                    Some((k, v)) => {
                        f.with_metadata(HashMap::from([(k.to_string(), v.to_string())]))
                    }
                    None => f,
                }
            })
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            cols.into_iter().map(|(_, a, _)| a).collect(),
        )
        .unwrap()
    }

    /// The fingerprint of a batch, both ways (asserted equal).
    fn fp(b: &RecordBatch) -> Fingerprint {
        let (mut fast, mut slow) = (Fingerprint::default(), Fingerprint::default());
        fast.add(b).unwrap();
        slow.add_per_value(b).unwrap();
        assert_eq!(fast, slow, "{b:?}");
        fast
    }

    fn fp1(a: ArrayRef, meta: Meta) -> Fingerprint {
        fp(&batch(vec![("c", a, meta)]))
    }

    fn dec128(v: Vec<Option<i128>>, p: u8, s: i8) -> ArrayRef {
        Arc::new(
            Decimal128Array::from(v)
                .with_precision_and_scale(p, s)
                .unwrap(),
        )
    }

    fn text(v: Vec<Option<&str>>) -> ArrayRef {
        Arc::new(StringArray::from(v))
    }

    fn uuids(v: Vec<Option<[u8; 16]>>) -> ArrayRef {
        Arc::new(FixedSizeBinaryArray::try_from_sparse_iter_with_size(v.into_iter(), 16).unwrap())
    }

    fn every_type() -> RecordBatch {
        batch(vec![
            (
                "b",
                Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
                None,
            ),
            (
                "i8",
                Arc::new(Int8Array::from(vec![Some(-128), Some(127), None])),
                None,
            ),
            (
                "i16",
                Arc::new(Int16Array::from(vec![None, Some(-1), Some(5)])),
                None,
            ),
            (
                "i32",
                Arc::new(Int32Array::from(vec![Some(i32::MIN), None, Some(0)])),
                None,
            ),
            (
                "i64",
                Arc::new(Int64Array::from(vec![Some(i64::MAX), Some(-7), None])),
                None,
            ),
            (
                "u8",
                Arc::new(UInt8Array::from(vec![Some(255), None, Some(1)])),
                None,
            ),
            (
                "u16",
                Arc::new(UInt16Array::from(vec![Some(1), Some(65535), None])),
                None,
            ),
            (
                "u32",
                Arc::new(UInt32Array::from(vec![None, Some(u32::MAX), Some(3)])),
                None,
            ),
            (
                "u64",
                Arc::new(UInt64Array::from(vec![Some(u64::MAX), None, Some(0)])),
                None,
            ),
            (
                "f32",
                Arc::new(Float32Array::from(vec![Some(f32::NAN), Some(-0.5), None])),
                None,
            ),
            (
                "f64",
                Arc::new(Float64Array::from(vec![Some(1e300), None, Some(f64::NAN)])),
                None,
            ),
            ("d", dec128(vec![Some(1250), Some(0), None], 12, 2), None),
            (
                "d256",
                Arc::new(
                    Decimal256Array::from(vec![
                        Some(i256::from_i128(-1250)),
                        None,
                        Some(i256::from_i128(i128::MAX).wrapping_mul(i256::from_i128(1000))),
                    ])
                    .with_precision_and_scale(76, 10)
                    .unwrap(),
                ),
                None,
            ),
            ("s", text(vec![Some("é😀"), Some(""), None]), None),
            (
                "j",
                text(vec![
                    Some(r#"{"b": 1, "a": [1, 2.50]}"#),
                    None,
                    Some("nope"),
                ]),
                JSON,
            ),
            ("n", text(vec![Some("1.50"), Some("NaN"), None]), NUMERIC),
            (
                "x",
                Arc::new(BinaryArray::from(vec![
                    Some(&b"\x00\xff"[..]),
                    None,
                    Some(&b""[..]),
                ])),
                None,
            ),
            (
                "u",
                uuids(vec![Some([1u8; 16]), None, Some([0u8; 16])]),
                None,
            ),
            (
                "dt",
                Arc::new(Date32Array::from(vec![Some(-719_162), None, Some(19_000)])),
                None,
            ),
            (
                "ts",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(1), None, Some(-5)])
                        .with_timezone("UTC"),
                ),
                None,
            ),
            (
                "tm",
                Arc::new(Time64MicrosecondArray::from(vec![
                    None,
                    Some(86_399_999_999),
                    Some(0),
                ])),
                None,
            ),
            (
                "iv",
                Arc::new(IntervalMonthDayNanoArray::from(vec![
                    Some(IntervalMonthDayNano::new(1, -2, 3)),
                    None,
                    Some(IntervalMonthDayNano::new(0, 0, 0)),
                ])),
                None,
            ),
            (
                "l",
                Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                    Some(vec![Some(1), None]),
                    None,
                    Some(vec![]),
                ])),
                None,
            ),
        ])
    }

    #[test]
    fn the_chunked_fingerprint_equals_the_per_value_one_for_every_type_and_null() {
        let batch = every_type();
        let whole = fp(&batch);
        // Several chunks of rows, nulls included.
        let n = 1000;
        let long = RecordBatch::try_from_iter(vec![
            (
                "i",
                Arc::new(Int64Array::from_iter(
                    (0..n).map(|i| (i % 7 != 0).then_some(i)),
                )) as ArrayRef,
            ),
            (
                "s",
                Arc::new(StringArray::from_iter((0..n).map(|i| {
                    (i % 5 != 0).then(|| "x".repeat(usize::try_from(i % 300).unwrap()))
                }))),
            ),
        ])
        .unwrap();
        fp(&long);
        // Sliced batches (arrays with an offset) agree too, and every slice differs.
        let mut seen = vec![whole.sum];
        for (start, len) in [(1, 2), (0, 1), (2, 1), (1, 1)] {
            let f = fp(&batch.slice(start, len));
            assert!(!seen.contains(&f.sum), "slice {start}+{len}");
            seen.push(f.sum);
        }
    }

    #[test]
    fn a_negative_scale_past_i128_takes_the_variable_form_without_overrunning_its_row() {
        // 10^30 × 10^10 does not fit an i128: `W`, wider than the fixed 21 bytes. A bundle's
        // Parquet schema may declare such a scale; ferry never writes one.
        let big = 10i128.pow(30);
        let f = fp1(
            dec128(vec![Some(big), Some(-big), None, Some(7)], 38, -10),
            None,
        );
        assert_eq!(f.rows, 4);
    }

    #[test]
    fn cells_and_rows_are_the_same_bytes() {
        let b = every_type();
        encode_rows(&b, &mut |rows| {
            for r in 0..rows.len() {
                let cat: Vec<u8> = (0..b.num_columns())
                    .flat_map(|c| rows.cell(r, c).to_vec())
                    .collect();
                assert_eq!(cat, rows.row(r));
            }
        })
        .unwrap();
    }

    #[test]
    fn integers_and_decimals_of_one_value_hash_alike() {
        let big = Some(u64::MAX);
        let u = fp1(Arc::new(UInt64Array::from(vec![big, Some(7), None])), None);
        // numeric(20,0), as PostgreSQL holds a BIGINT UNSIGNED.
        let d = fp1(
            dec128(vec![Some(i128::from(u64::MAX)), Some(7), None], 20, 0),
            None,
        );
        let t = fp1(
            text(vec![Some("18446744073709551615"), Some("7.000"), None]),
            NUMERIC,
        );
        assert_eq!(u, d);
        assert_eq!(u, t);
        let i = fp1(Arc::new(Int16Array::from(vec![Some(5)])), None);
        assert_eq!(i, fp1(Arc::new(Int64Array::from(vec![Some(5)])), None));
        assert_eq!(i, fp1(dec128(vec![Some(500)], 10, 2), None));
        assert_ne!(i, fp1(dec128(vec![Some(501)], 10, 2), None));
        // A decimal, its numeric text and a wide decimal.
        let x = fp1(dec128(vec![Some(-1250), Some(0)], 12, 2), None);
        assert_eq!(x, fp1(text(vec![Some("-12.5"), Some("-0.000")]), NUMERIC));
        let wide = Decimal256Array::from(vec![i256::from_i128(-12_500), i256::ZERO])
            .with_precision_and_scale(50, 3)
            .unwrap();
        assert_eq!(x, fp1(Arc::new(wide), None));
        assert_eq!(
            fp1(text(vec![Some("1e3")]), NUMERIC),
            fp1(text(vec![Some("1000")]), NUMERIC)
        );
        // Beyond 128 bits, and the words, still by value.
        let huge = "123456789012345678901234567890123456789012345.5";
        assert_eq!(
            fp1(text(vec![Some(huge)]), NUMERIC),
            fp1(text(vec![Some(&format!("{huge}000"))]), NUMERIC)
        );
        assert_ne!(
            fp1(text(vec![Some("NaN")]), NUMERIC),
            fp1(text(vec![Some("Infinity")]), NUMERIC)
        );
        // A boolean is no integer.
        assert_ne!(
            fp1(Arc::new(BooleanArray::from(vec![true])), None),
            fp1(Arc::new(Int16Array::from(vec![1])), None)
        );
    }

    #[test]
    fn a_uuid_hashes_as_its_lowercase_text() {
        let id = [
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11,
        ];
        let u = fp1(uuids(vec![Some(id), None]), None);
        let s = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        assert_eq!(u, fp1(text(vec![Some(s), None]), None));
        assert_ne!(u, fp1(text(vec![Some(&s.to_uppercase()), None]), None));
    }

    #[test]
    fn uuid_text_is_the_uuid_crates_hyphenated_form_in_both_paths() {
        // Every byte value in every position, and a few random ones.
        let mut ids: Vec<[u8; 16]> = (0..=255u8)
            .map(|b| {
                std::array::from_fn(|i| b.wrapping_add(17u8.wrapping_mul(u8::try_from(i).unwrap())))
            })
            .collect();
        ids.extend((0..64).map(|_| *uuid::Uuid::new_v4().as_bytes()));
        for id in &ids {
            let want = uuid::Uuid::from_bytes(*id).hyphenated().to_string();
            assert_eq!(uuid_text(id), want.as_bytes(), "{want}");
        }
        let texts: Vec<String> = ids
            .iter()
            .map(|id| uuid::Uuid::from_bytes(*id).hyphenated().to_string())
            .collect();
        let mut with_nulls: Vec<Option<[u8; 16]>> = ids.iter().copied().map(Some).collect();
        with_nulls.insert(3, None);
        let mut text_nulls: Vec<Option<&str>> = texts.iter().map(|t| Some(t.as_str())).collect();
        text_nulls.insert(3, None);
        // `fp` also checks that the chunked writer and the per-value encoder agree.
        assert_eq!(fp1(uuids(with_nulls), None), fp1(text(text_nulls), None));
    }

    #[test]
    fn a_list_or_interval_beside_text_is_its_as_text_form() {
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None, Some(-3)]),
            None,
            Some(vec![]),
        ]));
        let field = Field::new("l", list.data_type().clone(), true);
        let (f, t) = as_pg_text(&field, &list).unwrap().unwrap();
        assert_eq!(f.data_type(), &DataType::Utf8);
        let t = t.as_string::<i32>();
        assert_eq!(t.value(0), "{1,NULL,-3}");
        assert!(t.is_null(1));
        assert_eq!(t.value(2), "{}");
        // Text lists quote as array_out does: the very function the loaders call.
        let words = arrow::array::ListBuilder::new(arrow::array::StringBuilder::new());
        let mut words = words;
        words.values().append_value("Trailers");
        words.values().append_value("Deleted Scenes");
        words.values().append_null();
        words.append(true);
        let words: ArrayRef = Arc::new(words.finish());
        let wf = Field::new("w", words.data_type().clone(), true);
        let (_, wt) = as_pg_text(&wf, &words).unwrap().unwrap();
        let expect =
            crate::types::text::pg_text(words.as_ref(), 0, &column_type(&wf).unwrap()).unwrap();
        assert_eq!(wt.as_string::<i32>().value(0), expect);
        assert_eq!(expect, r#"{Trailers,"Deleted Scenes",NULL}"#);
        // Its fingerprint is that of the text column --as-text loads.
        assert_eq!(
            fp1(wt, None),
            fp1(
                text(vec![Some(r#"{Trailers,"Deleted Scenes",NULL}"#)]),
                None
            )
        );
        let iv: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(vec![Some(
            IntervalMonthDayNano::new(-10, -3, 14_706_789_000_000),
        )]));
        let ivf = Field::new("i", iv.data_type().clone(), true);
        let (_, it) = as_pg_text(&ivf, &iv).unwrap().unwrap();
        assert_eq!(
            it.as_string::<i32>().value(0),
            "-10 mons -3 days +04:05:06.789"
        );
        // Text, integers, timestamps: no such form (they compare by their own).
        for a in [
            text(vec![Some("x")]),
            Arc::new(Int32Array::from(vec![1])) as ArrayRef,
            Arc::new(TimestampMicrosecondArray::from(vec![1])) as ArrayRef,
        ] {
            let f = Field::new("c", a.data_type().clone(), true);
            assert!(as_pg_text(&f, &a).unwrap().is_none(), "{a:?}");
        }
        let d = dec128(vec![Some(1250)], 12, 2);
        let df = Field::new("d", d.data_type().clone(), true);
        let (_, dt) = as_pg_text(&df, &d).unwrap().unwrap();
        assert_eq!(dt.as_string::<i32>().value(0), "12.50");
    }

    #[test]
    fn json_hashes_as_canonical_json() {
        let j = |s: &str| fp1(text(vec![Some(s)]), JSON);
        let a = j(r#"{"b":1,"a":[1,2.50,{"y":null,"x":true}],"cc":"\u00e9\n"}"#);
        // As PostgreSQL's jsonb prints it: keys shorter first, spaces, numbers normalised.
        assert_eq!(
            a,
            j(r#"{"a": [1, 2.5, {"x": true, "y": null}], "b": 1, "cc": "é\n"}"#)
        );
        assert_eq!(
            a,
            j(" {\"cc\":\"\\u00E9\\n\" , \"a\":[1e0,25e-1,{\"x\":true,\"y\":null}],\"b\":1.0}\n")
        );
        assert_ne!(
            a,
            j(r#"{"b":2,"a":[1,2.5,{"y":null,"x":true}],"cc":"é\n"}"#)
        );
        assert_ne!(
            a,
            j(r#"{"b":1,"a":[2.5,1,{"y":null,"x":true}],"cc":"é\n"}"#)
        );
        // The last of duplicate keys, as jsonb keeps it.
        assert_eq!(j(r#"{"a":1,"a":2}"#), j(r#"{"a":2}"#));
        assert_ne!(j(r#"{"a":1,"a":2}"#), j(r#"{"a":1}"#));
        // Surrogate pairs, escaped quotes and slashes.
        assert_eq!(j(r#"["\ud83d\ude00","\"\/"]"#), j(r#"["😀","\"/"]"#));
        // Not JSON: hashed as the text it is.
        let bad = "{\"a\":1";
        assert_eq!(j(bad), fp1(text(vec![Some(bad)]), None));
        assert_ne!(j("[1]"), fp1(text(vec![Some("[1]")]), None));
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        assert_eq!(j(&deep), fp1(text(vec![Some(&deep)]), None));
    }

    #[test]
    fn canonical_json_text() {
        let c = |s: &str| {
            let mut o = Vec::new();
            assert!(json::canonical(s, &mut o), "{s}");
            String::from_utf8(o).unwrap()
        };
        assert_eq!(
            c(r#" { "b" : [ 1 , -0.0 , 1.50e2 ] , "a" : { } } "#),
            r#"{"a":{},"b":[1,0,150]}"#
        );
        assert_eq!(
            c(r#"{"bb":1,"a":2,"b":3,"a":4}"#),
            r#"{"a":4,"b":3,"bb":1}"#
        );
        assert_eq!(c(r#""\u0001\t""#), r#""\u0001\u0009""#);
        for bad in [
            "",
            "{",
            "[1,]",
            r#"{"a"}"#,
            r#""\u12""#,
            r#""\ud800""#,
            r#""\u+123""#,
            "tru",
            "1 2",
            "\"\t\"",
        ] {
            let mut o = b"keep".to_vec();
            assert!(!json::canonical(bad, &mut o), "{bad}");
            assert_eq!(o, b"keep");
        }
    }

    #[test]
    fn numbers_parse_by_value() {
        let d = |s: &str| {
            Dec::parse(s).map(|d| {
                let mut o = Vec::new();
                d.text(&mut o);
                String::from_utf8(o).unwrap()
            })
        };
        assert_eq!(d("0012.3400").as_deref(), Some("1234e-2"));
        assert_eq!(d("-0.000").as_deref(), Some("0"));
        assert_eq!(d("+1200").as_deref(), Some("1200"));
        assert_eq!(d("1e40").as_deref(), Some("1e40"));
        assert_eq!(d("1e39").as_deref(), Some(&*format!("1{}", "0".repeat(39))));
        assert_eq!(d("-25e-1").as_deref(), Some("-25e-1"));
        assert_eq!(d(".5E+1").as_deref(), Some("5"));
        assert_eq!(d("5."), Some("5".into()));
        for bad in ["", ".", "e5", "1e", "1.2.3", "NaN", "1,5", "--1"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }
}
