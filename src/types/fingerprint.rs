//! A table's content fingerprint: the wrapping sum of a 128-bit XXH3 hash of each row's
//! canonical encoding, independent of row order, sensitive to every value and to duplicated
//! rows. Computed beside every export (the catalog records it) and by `ferry compare`.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, IntervalMonthDayNanoType, IntervalUnit, Time64MicrosecondType,
    TimeUnit, TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;

use crate::{Error, Result};
/// A table's content fingerprint under construction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    sum: u128,
    pub rows: u64,
}

type Encoder<'a> = Box<dyn Fn(usize, &mut Vec<u8>) + 'a>;

fn normalise_decimal(s: &str) -> String {
    let s = s.trim();
    if s.contains(['e', 'E']) {
        return s.to_string();
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (i, f) = body.split_once('.').unwrap_or((body, ""));
    let i = i.trim_start_matches('0');
    let f = f.trim_end_matches('0');
    let i = if i.is_empty() { "0" } else { i };
    let core = if f.is_empty() {
        i.to_string()
    } else {
        format!("{i}.{f}")
    };
    if neg && core != "0" {
        format!("-{core}")
    } else {
        core
    }
}

fn encoder<'a>(a: &'a ArrayRef) -> Result<Encoder<'a>> {
    macro_rules! int {
        ($t:ty) => {{
            let x = a.as_primitive::<$t>();
            Box::new(move |i, o: &mut Vec<u8>| {
                o.push(b'I');
                o.extend_from_slice(&i128::from(x.value(i)).to_le_bytes());
            })
        }};
    }
    let f: Encoder<'a> = match a.data_type() {
        DataType::Boolean => {
            let x = a.as_boolean();
            Box::new(move |i, o| o.extend_from_slice(&[b'B', u8::from(x.value(i))]))
        }
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float32 | DataType::Float64 => {
            let get: Box<dyn Fn(usize) -> f64 + 'a> = if a.data_type() == &DataType::Float32 {
                let x = a.as_primitive::<Float32Type>();
                Box::new(move |i| f64::from(x.value(i)))
            } else {
                let x = a.as_primitive::<Float64Type>();
                Box::new(move |i| x.value(i))
            };
            Box::new(move |i, o| {
                let v = get(i);
                let bits = if v.is_nan() {
                    f64::NAN.to_bits()
                } else {
                    v.to_bits()
                };
                o.push(b'F');
                o.extend_from_slice(&bits.to_le_bytes());
            })
        }
        DataType::Decimal128(_, s) => {
            let x = a.as_primitive::<Decimal128Type>();
            let s = *s;
            // Normalised without text: trailing zeros of the fraction dropped, so 12.50 as
            // decimal(12,2) and 12.5 as decimal(10,1) fingerprint alike.
            Box::new(move |i, o| {
                let (mut v, mut scale) = (x.value(i), i32::from(s));
                while scale > 0 && v % 10 == 0 {
                    v /= 10;
                    scale -= 1;
                }
                if v == 0 {
                    scale = 0;
                }
                o.push(b'D');
                o.extend_from_slice(&scale.to_le_bytes());
                o.extend_from_slice(&v.to_le_bytes());
            })
        }
        DataType::Utf8 => {
            let x = a.as_string::<i32>();
            Box::new(move |i, o| {
                let v = x.value(i);
                o.push(b'S');
                o.extend_from_slice(&(v.len() as u64).to_le_bytes());
                o.extend_from_slice(v.as_bytes());
            })
        }
        DataType::Binary => {
            let x = a.as_binary::<i32>();
            Box::new(move |i, o| {
                let v = x.value(i);
                o.push(b'X');
                o.extend_from_slice(&(v.len() as u64).to_le_bytes());
                o.extend_from_slice(v);
            })
        }
        DataType::FixedSizeBinary(_) => {
            let x = a.as_fixed_size_binary();
            Box::new(move |i, o| {
                o.push(b'U');
                o.extend_from_slice(x.value(i));
            })
        }
        DataType::Date32 => {
            let x = a.as_primitive::<Date32Type>();
            Box::new(move |i, o| {
                o.push(b'd');
                o.extend_from_slice(&x.value(i).to_le_bytes());
            })
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let x = a.as_primitive::<TimestampMicrosecondType>();
            Box::new(move |i, o| {
                o.push(b'T');
                o.extend_from_slice(&x.value(i).to_le_bytes());
            })
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            let x = a.as_primitive::<Time64MicrosecondType>();
            Box::new(move |i, o| {
                o.push(b't');
                o.extend_from_slice(&x.value(i).to_le_bytes());
            })
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let x = a.as_primitive::<IntervalMonthDayNanoType>();
            Box::new(move |i, o| {
                let v = x.value(i);
                o.push(b'V');
                o.extend_from_slice(&v.months.to_le_bytes());
                o.extend_from_slice(&v.days.to_le_bytes());
                o.extend_from_slice(&v.nanoseconds.to_le_bytes());
            })
        }
        DataType::Decimal256(_, s) => {
            let x = a.as_primitive::<Decimal256Type>();
            let s = *s;
            Box::new(move |i, o| {
                let text = normalise_decimal(&crate::types::text::format_decimal256(x.value(i), s));
                // The same encoding as Decimal128 when the value fits 128 bits.
                let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
                let scale = i32::try_from(frac.len()).unwrap_or(i32::MAX);
                match format!("{int}{frac}").parse::<i128>() {
                    Ok(v) => {
                        o.push(b'D');
                        o.extend_from_slice(&scale.to_le_bytes());
                        o.extend_from_slice(&v.to_le_bytes());
                    }
                    Err(_) => {
                        o.push(b'W');
                        o.extend_from_slice(text.as_bytes());
                        o.push(0);
                    }
                }
            })
        }
        DataType::List(_) => {
            let x = a.as_list::<i32>();
            let inner = encoder(x.values())?;
            Box::new(move |i, o| {
                let (start, end) = (x.value_offsets()[i], x.value_offsets()[i + 1]);
                o.push(b'L');
                o.extend_from_slice(&(end - start).to_le_bytes());
                for j in start..end {
                    inner(usize::try_from(j).unwrap_or(0), o);
                }
            })
        }
        other => {
            return Err(Error::Data(format!(
                "cannot fingerprint a {other} column yet"
            )));
        }
    };
    Ok(Box::new(
        move |i, o| if a.is_null(i) { o.push(b'N') } else { f(i, o) },
    ))
}

impl Fingerprint {
    /// Adds every row of a batch.
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch
            .columns()
            .iter()
            .all(|c| columnar::supports(c.data_type()))
        {
            self.sum = self.sum.wrapping_add(columnar::sum(batch));
            self.rows += batch.num_rows() as u64;
            return Ok(());
        }
        self.add_per_value(batch)
    }

    /// [`Fingerprint::add`] one value at a time: for every type, and the reference the
    /// column-at-a-time path is tested against.
    fn add_per_value(&mut self, batch: &RecordBatch) -> Result<()> {
        let encoders = batch
            .columns()
            .iter()
            .map(encoder)
            .collect::<Result<Vec<_>>>()?;
        let mut buf = Vec::with_capacity(256);
        for row in 0..batch.num_rows() {
            buf.clear();
            for e in &encoders {
                e(row, &mut buf);
            }
            // A fast 128-bit hash: the fingerprint compares content, integrity is the AEAD's job.
            self.sum = self.sum.wrapping_add(xxhash_rust::xxh3::xxh3_128(&buf));
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Adds another slice of the same table.
    pub fn merge(&mut self, other: &Fingerprint) {
        self.sum = self.sum.wrapping_add(other.sum);
        self.rows += other.rows;
    }

    pub fn hex(&self) -> String {
        format!("{:032x}", self.sum)
    }
}

/// The same row encodings as [`encoder`], written a column at a time into one buffer per
/// batch (row-major, each row at its own offset), with no per-value dynamic call: the
/// fingerprint runs beside every export and import, so it is on the hot path.
mod columnar {
    use arrow::array::{Array, ArrayRef, AsArray};
    use arrow::datatypes::{
        DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type,
        Int32Type, Int64Type, IntervalMonthDayNanoType, IntervalUnit, Time64MicrosecondType,
        TimeUnit, TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
    };
    use arrow::record_batch::RecordBatch;

    /// Whether `sum` handles the type (the rest go value by value).
    pub fn supports(t: &DataType) -> bool {
        width(t).is_some() || matches!(t, DataType::Utf8 | DataType::Binary)
    }

    /// Bytes of a non-NULL value's encoding (tag included) for fixed-width types.
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
            | DataType::UInt64 => 17,
            DataType::Float32
            | DataType::Float64
            | DataType::Timestamp(TimeUnit::Microsecond, _)
            | DataType::Time64(TimeUnit::Microsecond) => 9,
            DataType::Decimal128(_, _) => 21,
            DataType::FixedSizeBinary(w) => 1 + usize::try_from(*w).ok()?,
            DataType::Date32 => 5,
            DataType::Interval(IntervalUnit::MonthDayNano) => 17,
            _ => return None,
        })
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

    fn write(a: &ArrayRef, first: usize, buf: &mut [u8], cur: &mut [usize]) {
        macro_rules! int {
            ($t:ty) => {{
                let x = a.as_primitive::<$t>();
                put(a, first, buf, cur, b'I', |i| {
                    i128::from(x.value(i)).to_le_bytes()
                })
            }};
        }
        fn float_bits(v: f64) -> [u8; 8] {
            if v.is_nan() { f64::NAN } else { v }
                .to_bits()
                .to_le_bytes()
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
                put(a, first, buf, cur, b'D', |i| {
                    let (mut v, mut scale) = (x.value(i), s);
                    while scale > 0 && v % 10 == 0 {
                        v /= 10;
                        scale -= 1;
                    }
                    if v == 0 {
                        scale = 0;
                    }
                    let mut out = [0u8; 20];
                    out[..4].copy_from_slice(&scale.to_le_bytes());
                    out[4..].copy_from_slice(&v.to_le_bytes());
                    out
                });
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
                let x = a.as_fixed_size_binary();
                let nulls = a.nulls();
                for (r, p) in (first..).zip(cur.iter_mut()) {
                    if nulls.is_some_and(|n| n.is_null(r)) {
                        buf[*p] = b'N';
                        *p += 1;
                    } else {
                        let v = x.value(r);
                        buf[*p] = b'U';
                        buf[*p + 1..*p + 1 + v.len()].copy_from_slice(v);
                        *p += 1 + v.len();
                    }
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
            // `supports` lets nothing else through.
            _ => {}
        }
    }

    /// Rows encoded at a time: their encodings stay in cache between writing and hashing.
    const CHUNK: usize = 256;

    /// The wrapping sum of the rows' hashes. Every column's type must be `supports`ed.
    pub fn sum(batch: &RecordBatch) -> u128 {
        let n = batch.num_rows();
        let (mut len, mut start, mut cur, mut buf) = (
            Vec::with_capacity(CHUNK),
            Vec::with_capacity(CHUNK + 1),
            Vec::with_capacity(CHUNK),
            Vec::new(),
        );
        let mut total_sum = 0u128;
        for first in (0..n).step_by(CHUNK) {
            let rows = first..n.min(first + CHUNK);
            len.clear();
            len.resize(rows.len(), 0usize);
            for a in batch.columns() {
                let nulls = a.nulls();
                let is_null = |r: usize| nulls.is_some_and(|x| x.is_null(r));
                match (width(a.data_type()), a.data_type()) {
                    (Some(w), _) => {
                        for (r, l) in rows.clone().zip(len.iter_mut()) {
                            *l += if is_null(r) { 1 } else { w };
                        }
                    }
                    (None, DataType::Utf8) => {
                        let x = a.as_string::<i32>();
                        for (r, l) in rows.clone().zip(len.iter_mut()) {
                            *l += if is_null(r) { 1 } else { 9 + x.value(r).len() };
                        }
                    }
                    (None, _) => {
                        let x = a.as_binary::<i32>();
                        for (r, l) in rows.clone().zip(len.iter_mut()) {
                            *l += if is_null(r) { 1 } else { 9 + x.value(r).len() };
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
            start.push(total);
            buf.resize(total, 0u8);
            cur.clear();
            cur.extend_from_slice(&start[..rows.len()]);
            for a in batch.columns() {
                write(a, first, &mut buf, &mut cur);
            }
            total_sum = start
                .windows(2)
                .map(|w| xxhash_rust::xxh3::xxh3_128(&buf[w[0]..w[1]]))
                .fold(total_sum, u128::wrapping_add);
        }
        total_sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        BinaryArray, BooleanArray, Date32Array, Decimal128Array, FixedSizeBinaryArray,
        Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
        IntervalMonthDayNanoArray, StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
        UInt8Array, UInt16Array, UInt32Array, UInt64Array,
    };
    use arrow::datatypes::IntervalMonthDayNano;
    use std::sync::Arc;

    #[test]
    fn the_columnar_fingerprint_equals_the_per_value_one_for_every_type_and_null() {
        let cols: Vec<(&str, ArrayRef)> = vec![
            (
                "b",
                Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
            ),
            (
                "i8",
                Arc::new(Int8Array::from(vec![Some(-128), Some(127), None])),
            ),
            (
                "i16",
                Arc::new(Int16Array::from(vec![None, Some(-1), Some(5)])),
            ),
            (
                "i32",
                Arc::new(Int32Array::from(vec![Some(i32::MIN), None, Some(0)])),
            ),
            (
                "i64",
                Arc::new(Int64Array::from(vec![Some(i64::MAX), Some(-7), None])),
            ),
            (
                "u8",
                Arc::new(UInt8Array::from(vec![Some(255), None, Some(1)])),
            ),
            (
                "u16",
                Arc::new(UInt16Array::from(vec![Some(1), Some(65535), None])),
            ),
            (
                "u32",
                Arc::new(UInt32Array::from(vec![None, Some(u32::MAX), Some(3)])),
            ),
            (
                "u64",
                Arc::new(UInt64Array::from(vec![Some(u64::MAX), None, Some(0)])),
            ),
            (
                "f32",
                Arc::new(Float32Array::from(vec![Some(f32::NAN), Some(-0.5), None])),
            ),
            (
                "f64",
                Arc::new(Float64Array::from(vec![Some(1e300), None, Some(f64::NAN)])),
            ),
            (
                "d",
                Arc::new(
                    Decimal128Array::from(vec![Some(1250), Some(0), None])
                        .with_precision_and_scale(12, 2)
                        .unwrap(),
                ),
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![Some("é😀"), Some(""), None])),
            ),
            (
                "x",
                Arc::new(BinaryArray::from(vec![
                    Some(&b"\x00\xff"[..]),
                    None,
                    Some(&b""[..]),
                ])),
            ),
            (
                "u",
                Arc::new(
                    FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                        vec![Some([1u8; 16]), None, Some([0u8; 16])].into_iter(),
                        16,
                    )
                    .unwrap(),
                ),
            ),
            (
                "dt",
                Arc::new(Date32Array::from(vec![Some(-719_162), None, Some(19_000)])),
            ),
            (
                "ts",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(1), None, Some(-5)])
                        .with_timezone("UTC"),
                ),
            ),
            (
                "tm",
                Arc::new(Time64MicrosecondArray::from(vec![
                    None,
                    Some(86_399_999_999),
                    Some(0),
                ])),
            ),
            (
                "iv",
                Arc::new(IntervalMonthDayNanoArray::from(vec![
                    Some(IntervalMonthDayNano::new(1, -2, 3)),
                    None,
                    Some(IntervalMonthDayNano::new(0, 0, 0)),
                ])),
            ),
        ];
        let batch = RecordBatch::try_from_iter(cols).unwrap();
        for c in batch.columns() {
            assert!(columnar::supports(c.data_type()), "{}", c.data_type());
        }
        let (mut fast, mut slow) = (Fingerprint::default(), Fingerprint::default());
        fast.add(&batch).unwrap();
        slow.add_per_value(&batch).unwrap();
        assert_eq!(fast, slow);
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
        let (mut f, mut s) = (Fingerprint::default(), Fingerprint::default());
        f.add(&long).unwrap();
        s.add_per_value(&long).unwrap();
        assert_eq!(f, s);
        // Sliced batches (arrays with an offset) agree too, and every slice differs.
        let mut seen = vec![fast.sum];
        for (start, len) in [(1, 2), (0, 1), (2, 1), (1, 1)] {
            let part = batch.slice(start, len);
            let (mut f, mut s) = (Fingerprint::default(), Fingerprint::default());
            f.add(&part).unwrap();
            s.add_per_value(&part).unwrap();
            assert_eq!(f, s, "slice {start}+{len}");
            assert!(!seen.contains(&f.sum), "slice {start}+{len}");
            seen.push(f.sum);
        }
    }
}
