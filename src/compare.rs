//! `ferry compare`: row counts and order-independent content fingerprints per table, read
//! through the same readers as export, so two databases of different engines compare by
//! their canonical values. The fingerprint of a table is the wrapping sum of a 128-bit
//! XXH3 hash of each row's canonical encoding: independent of row order, sensitive to every value and
//! to duplicated rows.

use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, IntervalMonthDayNanoType, IntervalUnit, Time64MicrosecondType,
    TimeUnit, TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;

use crate::report::{Progress, RunReport};
use crate::source::{self, BatchLimits, Selection};
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

/// What `compare` found for one table.
#[derive(Debug, Clone)]
pub struct TableComparison {
    pub table: String,
    pub a: Option<Fingerprint>,
    pub b: Option<Fingerprint>,
}

fn fingerprint_all(
    src: &mut dyn source::Source,
    sel: &Selection,
) -> Result<Vec<(String, Fingerprint, std::time::Duration)>> {
    src.begin_snapshot()?;
    let mut out = Vec::new();
    for t in src.tables(sel)? {
        let t0 = Instant::now();
        let mut fp = Fingerprint::default();
        src.read(&t, None, BatchLimits::default(), &mut |b| fp.add(&b))?;
        out.push((t.qualified(), fp, t0.elapsed()));
    }
    Ok(out)
}

/// Compares the selected tables of two databases. Exit status 0 when all are equal, 1 otherwise.
pub fn compare(
    a_url: &str,
    b_url: &str,
    tables: &[String],
    progress: &Progress,
) -> Result<RunReport> {
    let started = Instant::now();
    let sel = Selection {
        tables: tables.to_vec(),
        exclude: vec![],
    };
    let side = |url: &str| {
        progress.line(&format!("fingerprinting {url}"));
        source::retyping_flags(&source::SourceOptions::default(), |options| {
            fingerprint_all(source::open_with(url, options.clone())?.as_mut(), &sel)
        })
    };
    let (fa, mut notes) = side(a_url)?;
    let (fb, more) = side(b_url)?;
    notes.extend(more);
    let mut names: Vec<String> = fa
        .iter()
        .chain(fb.iter())
        .map(|(n, _, _)| n.clone())
        .collect();
    names.sort();
    names.dedup();
    let mut report = RunReport::new("compare");
    report.warnings.extend(notes);
    let mut differ = 0;
    for n in &names {
        let (fx, fy) = (fa.iter().find(|p| p.0 == *n), fb.iter().find(|p| p.0 == *n));
        let (x, y) = (fx.map(|p| p.1), fy.map(|p| p.1));
        // Time spent reading this table on both sides.
        let seconds = fx.map(|p| p.2).unwrap_or_default() + fy.map(|p| p.2).unwrap_or_default();
        let status = match (x, y) {
            (Some(x), Some(y)) if x == y => format!("equal ({})", x.hex()),
            (Some(x), Some(y)) => format!(
                "different: {} rows {} vs {} rows {}",
                x.rows,
                x.hex(),
                y.rows,
                y.hex()
            ),
            (Some(_), None) => format!("missing in {b_url}"),
            (None, _) => format!("missing in {a_url}"),
        };
        if !status.starts_with("equal") {
            differ += 1;
        }
        let rows = x.or(y).map_or(0, |f| f.rows);
        report.add_table(n, rows, 0, 0, seconds, &status);
    }
    report.close(started.elapsed());
    if differ > 0 {
        report.status = "different".into();
        report.exit_code = crate::error::exit::FAILURE;
        report.message = format!("{differ} of {} tables differ", names.len());
    } else {
        report.message = format!("all {} tables are equal", names.len());
    }
    Ok(report)
}
