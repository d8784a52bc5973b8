//! Arrow batches -> binary COPY bytes.
//!
//! For each batch, every column gets one encoder chosen from its [`Wire`] format and the Arrow
//! type the batch actually has (cross-engine imports bring Int32 for int8, UInt64, Decimal for
//! numeric, …); the row loop then only calls it. Values PostgreSQL would refuse (a NUL in text,
//! a date beyond its range, an interval with sub-µs nanoseconds) are refused here, with the
//! row, so the server never sees half a load.

use arrow::array::{
    Array, ArrayAccessor, ArrowPrimitiveType, AsArray, BooleanArray, FixedSizeBinaryArray,
    GenericListArray, OffsetSizeTrait, PrimitiveArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, DurationMicrosecondType,
    DurationMillisecondType, DurationNanosecondType, DurationSecondType, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, IntervalDayTimeType, IntervalMonthDayNanoType,
    IntervalUnit, IntervalYearMonthType, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;

use super::numeric::NumericWriter;
use super::{CodecError, EPOCH_DAYS, EPOCH_MICROS, HEADER_LEN, MICROS_PER_DAY, SIGNATURE, Wire};
use crate::types::ColumnType;

/// PostgreSQL's date range in days since 2000-01-01: 4713-11-24 BC up to (not including)
/// 5874898-01-01 (`IS_VALID_DATE`).
const PG_MIN_DATE: i32 = -2_451_545;
const PG_END_DATE: i32 = 2_145_031_949;
/// PostgreSQL's timestamp range in µs since 2000-01-01 (`IS_VALID_TIMESTAMP`).
const PG_MIN_TIMESTAMP: i64 = -211_813_488_000_000_000;
const PG_END_TIMESTAMP: i64 = 9_223_371_331_200_000_000;

const NULL: [u8; 4] = (-1i32).to_be_bytes();

/// One column's conversion strategy for one batch: writes the length word and the value of a
/// non-NULL row.
trait ColumnEncoder {
    fn encode(&mut self, row: usize, out: &mut Vec<u8>) -> Result<(), String>;
}

/// Encodes Arrow batches as binary COPY.
#[derive(Debug)]
pub struct CopyEncoder {
    columns: Vec<(Wire, ColumnType)>,
    field_count: [u8; 2],
}

impl CopyEncoder {
    pub fn new(columns: Vec<(Wire, ColumnType)>) -> Result<Self, CodecError> {
        let n = i16::try_from(columns.len())
            .map_err(|_| CodecError::stream(0, "binary COPY carries at most 32767 columns"))?;
        for (i, (wire, _)) in columns.iter().enumerate() {
            if let Wire::Array { elem, .. } = wire
                && matches!(**elem, Wire::Array { .. })
            {
                return Err(CodecError::at(
                    0,
                    i,
                    "arrays of arrays do not exist in PostgreSQL",
                ));
            }
        }
        Ok(CopyEncoder {
            columns,
            field_count: n.to_be_bytes(),
        })
    }

    /// Signature, flags (0) and header-extension length (0).
    pub fn header(out: &mut Vec<u8>) {
        out.reserve(HEADER_LEN);
        out.extend_from_slice(SIGNATURE);
        out.extend_from_slice(&[0; 8]);
    }

    /// Appends every row of `batch`. Errors name the row as `first_row + index in batch`;
    /// on error `out` is left as it was before the call.
    pub fn encode(
        &mut self,
        batch: &RecordBatch,
        first_row: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        if batch.num_columns() != self.columns.len() {
            return Err(CodecError::stream(
                first_row,
                format!(
                    "batch has {} columns where {} were expected",
                    batch.num_columns(),
                    self.columns.len()
                ),
            ));
        }
        let mut encoders = Vec::with_capacity(self.columns.len());
        for (i, ((wire, _), array)) in self.columns.iter().zip(batch.columns()).enumerate() {
            let enc = column_encoder(wire, array.as_ref())
                .map_err(|m| CodecError::at(first_row, i, m))?;
            encoders.push((enc, array.nulls()));
        }
        let start = out.len();
        let rows = batch.num_rows();
        out.reserve(rows * (2 + 8 * self.columns.len()));
        for (row_no, row) in (first_row..).zip(0..rows) {
            out.extend_from_slice(&self.field_count);
            for (i, (enc, nulls)) in encoders.iter_mut().enumerate() {
                if nulls.is_some_and(|n| n.is_null(row)) {
                    out.extend_from_slice(&NULL);
                } else if let Err(m) = enc.encode(row, out) {
                    out.truncate(start);
                    return Err(CodecError::at(row_no, i, m));
                }
            }
        }
        Ok(())
    }

    /// The end-of-data marker: a field count of -1.
    pub fn trailer(out: &mut Vec<u8>) {
        out.extend_from_slice(&(-1i16).to_be_bytes());
    }
}

/// The length word of a value of `n` bytes; PostgreSQL takes no field of 1 GiB or more.
#[inline]
fn length(n: usize) -> Result<[u8; 4], String> {
    i32::try_from(n)
        .ok()
        .filter(|&n| n < 1 << 30)
        .map(i32::to_be_bytes)
        .ok_or_else(|| format!("value of {n} bytes is larger than PostgreSQL's 1 GiB field limit"))
}

fn column_encoder<'a>(
    wire: &Wire,
    array: &'a dyn Array,
) -> Result<Box<dyn ColumnEncoder + 'a>, String> {
    let dt = array.data_type();
    let unsupported = || format!("cannot encode Arrow {dt} as PostgreSQL {wire:?}");
    Ok(match (wire, dt) {
        (Wire::Bool, DataType::Boolean) => Box::new(BoolEncoder(array.as_boolean())),

        (Wire::Int2, DataType::Int16) => int::<Int16Type, i16, 2>(array),
        (Wire::Int2, DataType::Int8) => int::<Int8Type, i16, 2>(array),
        (Wire::Int2, DataType::UInt8) => int::<UInt8Type, i16, 2>(array),
        (Wire::Int2, DataType::Int32) => int::<Int32Type, i16, 2>(array),
        (Wire::Int2, DataType::Int64) => int::<Int64Type, i16, 2>(array),
        (Wire::Int2, DataType::UInt16) => int::<UInt16Type, i16, 2>(array),
        (Wire::Int2, DataType::UInt32) => int::<UInt32Type, i16, 2>(array),
        (Wire::Int2, DataType::UInt64) => int::<UInt64Type, i16, 2>(array),

        (Wire::Int4, DataType::Int32) => int::<Int32Type, i32, 4>(array),
        (Wire::Int4, DataType::Int8) => int::<Int8Type, i32, 4>(array),
        (Wire::Int4, DataType::Int16) => int::<Int16Type, i32, 4>(array),
        (Wire::Int4, DataType::UInt8) => int::<UInt8Type, i32, 4>(array),
        (Wire::Int4, DataType::UInt16) => int::<UInt16Type, i32, 4>(array),
        (Wire::Int4, DataType::Int64) => int::<Int64Type, i32, 4>(array),
        (Wire::Int4, DataType::UInt32) => int::<UInt32Type, i32, 4>(array),
        (Wire::Int4, DataType::UInt64) => int::<UInt64Type, i32, 4>(array),

        (Wire::Int8, DataType::Int64) => int::<Int64Type, i64, 8>(array),
        (Wire::Int8, DataType::Int8) => int::<Int8Type, i64, 8>(array),
        (Wire::Int8, DataType::Int16) => int::<Int16Type, i64, 8>(array),
        (Wire::Int8, DataType::Int32) => int::<Int32Type, i64, 8>(array),
        (Wire::Int8, DataType::UInt8) => int::<UInt8Type, i64, 8>(array),
        (Wire::Int8, DataType::UInt16) => int::<UInt16Type, i64, 8>(array),
        (Wire::Int8, DataType::UInt32) => int::<UInt32Type, i64, 8>(array),
        (Wire::Int8, DataType::UInt64) => int::<UInt64Type, i64, 8>(array),

        (Wire::Float4, DataType::Float32) => {
            fixed::<Float32Type, 4>(array, |v| Ok(v.to_bits().to_be_bytes()))
        }
        (Wire::Float8, DataType::Float64) => {
            fixed::<Float64Type, 8>(array, |v| Ok(v.to_bits().to_be_bytes()))
        }
        (Wire::Float8, DataType::Float32) => {
            fixed::<Float32Type, 8>(array, |v| Ok(f64::from(v).to_bits().to_be_bytes()))
        }

        (Wire::Numeric, DataType::Decimal128(_, scale)) => Box::new(Decimal128Encoder {
            values: array.as_primitive::<Decimal128Type>().values(),
            scale: *scale,
            writer: NumericWriter::default(),
        }),
        (Wire::Numeric, DataType::Decimal256(_, scale)) => Box::new(Decimal256Encoder {
            values: array.as_primitive::<Decimal256Type>().values(),
            scale: *scale,
            writer: NumericWriter::default(),
        }),
        (Wire::Numeric, DataType::Utf8) => Box::new(NumericTextEncoder {
            values: array.as_string::<i32>(),
            writer: NumericWriter::default(),
        }),
        (Wire::Numeric, DataType::LargeUtf8) => Box::new(NumericTextEncoder {
            values: array.as_string::<i64>(),
            writer: NumericWriter::default(),
        }),
        (Wire::Numeric, DataType::Utf8View) => Box::new(NumericTextEncoder {
            values: array.as_string_view(),
            writer: NumericWriter::default(),
        }),
        (Wire::Numeric, DataType::Int8) => int_numeric::<Int8Type>(array),
        (Wire::Numeric, DataType::Int16) => int_numeric::<Int16Type>(array),
        (Wire::Numeric, DataType::Int32) => int_numeric::<Int32Type>(array),
        (Wire::Numeric, DataType::Int64) => int_numeric::<Int64Type>(array),
        (Wire::Numeric, DataType::UInt8) => int_numeric::<UInt8Type>(array),
        (Wire::Numeric, DataType::UInt16) => int_numeric::<UInt16Type>(array),
        (Wire::Numeric, DataType::UInt32) => int_numeric::<UInt32Type>(array),
        (Wire::Numeric, DataType::UInt64) => int_numeric::<UInt64Type>(array),

        (Wire::Text, DataType::Utf8) => Box::new(TextEncoder {
            values: array.as_string::<i32>(),
            prefix: &[],
        }),
        (Wire::Text, DataType::LargeUtf8) => Box::new(TextEncoder {
            values: array.as_string::<i64>(),
            prefix: &[],
        }),
        (Wire::Text, DataType::Utf8View) => Box::new(TextEncoder {
            values: array.as_string_view(),
            prefix: &[],
        }),
        (Wire::Jsonb, DataType::Utf8) => Box::new(TextEncoder {
            values: array.as_string::<i32>(),
            prefix: &[1],
        }),
        (Wire::Jsonb, DataType::LargeUtf8) => Box::new(TextEncoder {
            values: array.as_string::<i64>(),
            prefix: &[1],
        }),
        (Wire::Jsonb, DataType::Utf8View) => Box::new(TextEncoder {
            values: array.as_string_view(),
            prefix: &[1],
        }),

        (Wire::Bytea, DataType::Binary) => Box::new(BinaryEncoder(array.as_binary::<i32>())),
        (Wire::Bytea, DataType::LargeBinary) => Box::new(BinaryEncoder(array.as_binary::<i64>())),
        (Wire::Bytea, DataType::BinaryView) => Box::new(BinaryEncoder(array.as_binary_view())),
        (Wire::Bytea, DataType::FixedSizeBinary(_)) => {
            Box::new(BinaryEncoder(array.as_fixed_size_binary()))
        }

        (Wire::Date, DataType::Date32) => {
            fixed::<Date32Type, 4>(array, |d| date(d).map(i32::to_be_bytes))
        }

        (Wire::Timestamp | Wire::Timestamptz, DataType::Timestamp(unit, _)) => match unit {
            TimeUnit::Second => {
                fixed::<TimestampSecondType, 8>(array, |v| timestamp(v, 1_000_000, 1))
            }
            TimeUnit::Millisecond => {
                fixed::<TimestampMillisecondType, 8>(array, |v| timestamp(v, 1000, 1))
            }
            TimeUnit::Microsecond => {
                fixed::<TimestampMicrosecondType, 8>(array, |v| timestamp(v, 1, 1))
            }
            TimeUnit::Nanosecond => {
                fixed::<TimestampNanosecondType, 8>(array, |v| timestamp(v, 1, 1000))
            }
        },

        (Wire::Time, DataType::Time64(TimeUnit::Microsecond)) => {
            fixed::<Time64MicrosecondType, 8>(array, |v| time(v, 1, 1))
        }
        (Wire::Time, DataType::Time64(TimeUnit::Nanosecond)) => {
            fixed::<Time64NanosecondType, 8>(array, |v| time(v, 1, 1000))
        }
        (Wire::Time, DataType::Time32(TimeUnit::Second)) => {
            fixed::<Time32SecondType, 8>(array, |v| time(i64::from(v), 1_000_000, 1))
        }
        (Wire::Time, DataType::Time32(TimeUnit::Millisecond)) => {
            fixed::<Time32MillisecondType, 8>(array, |v| time(i64::from(v), 1000, 1))
        }

        (Wire::Interval, DataType::Interval(IntervalUnit::MonthDayNano)) => {
            fixed::<IntervalMonthDayNanoType, 16>(array, |v| {
                interval_mdn(v.months, v.days, v.nanoseconds)
            })
        }
        (Wire::Interval, DataType::Interval(IntervalUnit::YearMonth)) => {
            fixed::<IntervalYearMonthType, 16>(array, |m| Ok(interval(m, 0, 0)))
        }
        (Wire::Interval, DataType::Interval(IntervalUnit::DayTime)) => {
            fixed::<IntervalDayTimeType, 16>(array, |v| {
                Ok(interval(0, v.days, i64::from(v.milliseconds) * 1000))
            })
        }
        (Wire::Interval, DataType::Duration(unit)) => match unit {
            TimeUnit::Second => {
                fixed::<DurationSecondType, 16>(array, |v| duration(v, 1_000_000, 1))
            }
            TimeUnit::Millisecond => {
                fixed::<DurationMillisecondType, 16>(array, |v| duration(v, 1000, 1))
            }
            TimeUnit::Microsecond => {
                fixed::<DurationMicrosecondType, 16>(array, |v| duration(v, 1, 1))
            }
            TimeUnit::Nanosecond => {
                fixed::<DurationNanosecondType, 16>(array, |v| duration(v, 1, 1000))
            }
        },

        (Wire::Uuid, DataType::FixedSizeBinary(16)) => {
            Box::new(UuidEncoder(array.as_fixed_size_binary()))
        }
        (Wire::Uuid, DataType::Utf8) => Box::new(UuidTextEncoder(array.as_string::<i32>())),
        (Wire::Uuid, DataType::LargeUtf8) => Box::new(UuidTextEncoder(array.as_string::<i64>())),

        (Wire::Array { elem, elem_oid }, DataType::List(_)) => {
            list(array.as_list::<i32>(), elem, *elem_oid)?
        }
        (Wire::Array { elem, elem_oid }, DataType::LargeList(_)) => {
            list(array.as_list::<i64>(), elem, *elem_oid)?
        }
        _ => return Err(unsupported()),
    })
}

/// Arrow days since 1970 to PostgreSQL days since 2000, keeping ±infinity.
fn date(d: i32) -> Result<i32, String> {
    match d {
        i32::MAX | i32::MIN => Ok(d),
        _ => d
            .checked_sub(EPOCH_DAYS)
            .filter(|v| (PG_MIN_DATE..PG_END_DATE).contains(v))
            .ok_or_else(|| {
                format!(
                    "date {} is outside PostgreSQL's date range",
                    crate::types::text::format_date(d)
                )
            }),
    }
}

/// A timestamp whose µs are exactly `v * mul / div`, as PostgreSQL µs since 2000; ±infinity kept.
fn timestamp(v: i64, mul: i64, div: i64) -> Result<[u8; 8], String> {
    let t = match v {
        i64::MAX | i64::MIN => v,
        _ => {
            let us = to_micros(v, mul, div)?;
            us.checked_sub(EPOCH_MICROS)
                .filter(|t| (PG_MIN_TIMESTAMP..PG_END_TIMESTAMP).contains(t))
                .ok_or_else(|| {
                    format!(
                        "timestamp {} is outside PostgreSQL's range",
                        crate::types::text::format_timestamp(us)
                    )
                })?
        }
    };
    Ok(t.to_be_bytes())
}

fn to_micros(v: i64, mul: i64, div: i64) -> Result<i64, String> {
    if v % div != 0 {
        return Err(format!(
            "{v} ns is not a whole number of microseconds, which PostgreSQL keeps"
        ));
    }
    (v / div)
        .checked_mul(mul)
        .ok_or_else(|| format!("{v} is out of range in microseconds"))
}

fn time(v: i64, mul: i64, div: i64) -> Result<[u8; 8], String> {
    let us = to_micros(v, mul, div)?;
    if !(0..=MICROS_PER_DAY).contains(&us) {
        return Err(format!(
            "time of {us} µs since midnight is outside 00:00:00..24:00:00"
        ));
    }
    Ok(us.to_be_bytes())
}

fn interval(months: i32, days: i32, micros: i64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&micros.to_be_bytes());
    b[8..12].copy_from_slice(&days.to_be_bytes());
    b[12..].copy_from_slice(&months.to_be_bytes());
    b
}

fn interval_mdn(months: i32, days: i32, nanos: i64) -> Result<[u8; 16], String> {
    // The ±infinity convention of the decoder (PostgreSQL 17's infinite intervals).
    if (months, days, nanos) == (i32::MAX, i32::MAX, i64::MAX)
        || (months, days, nanos) == (i32::MIN, i32::MIN, i64::MIN)
    {
        return Ok(interval(months, days, nanos));
    }
    if nanos % 1000 != 0 {
        return Err(format!(
            "interval of {nanos} ns is not a whole number of microseconds, which PostgreSQL keeps"
        ));
    }
    Ok(interval(months, days, nanos / 1000))
}

fn duration(v: i64, mul: i64, div: i64) -> Result<[u8; 16], String> {
    Ok(interval(0, 0, to_micros(v, mul, div)?))
}

/// A fixed-width value: `convert` gives its big-endian bytes.
struct FixedEncoder<'a, T: ArrowPrimitiveType, const N: usize, F> {
    values: &'a [T::Native],
    convert: F,
    len: [u8; 4],
}

fn fixed<'a, T, const N: usize>(
    array: &'a dyn Array,
    convert: impl Fn(T::Native) -> Result<[u8; N], String> + 'a,
) -> Box<dyn ColumnEncoder + 'a>
where
    T: ArrowPrimitiveType,
{
    let values: &PrimitiveArray<T> = array.as_primitive::<T>();
    Box::new(FixedEncoder::<T, N, _> {
        values: values.values(),
        convert,
        len: length(N).unwrap_or(NULL),
    })
}

impl<T, const N: usize, F> ColumnEncoder for FixedEncoder<'_, T, N, F>
where
    T: ArrowPrimitiveType,
    F: Fn(T::Native) -> Result<[u8; N], String>,
{
    #[inline]
    fn encode(&mut self, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let b = (self.convert)(self.values[row])?;
        out.extend_from_slice(&self.len);
        out.extend_from_slice(&b);
        Ok(())
    }
}

/// Integers narrowed or widened to PostgreSQL's `D`, refusing what does not fit.
trait PgInt<const N: usize>: Sized {
    const NAME: &'static str;
    fn be(self) -> [u8; N];
}

impl PgInt<2> for i16 {
    const NAME: &'static str = "int2";
    fn be(self) -> [u8; 2] {
        self.to_be_bytes()
    }
}
impl PgInt<4> for i32 {
    const NAME: &'static str = "int4";
    fn be(self) -> [u8; 4] {
        self.to_be_bytes()
    }
}
impl PgInt<8> for i64 {
    const NAME: &'static str = "int8";
    fn be(self) -> [u8; 8] {
        self.to_be_bytes()
    }
}

fn int<'a, T, D, const N: usize>(array: &'a dyn Array) -> Box<dyn ColumnEncoder + 'a>
where
    T: ArrowPrimitiveType,
    T::Native: std::fmt::Display,
    D: PgInt<N> + TryFrom<T::Native>,
{
    fixed::<T, N>(array, |v| {
        D::try_from(v)
            .map(D::be)
            .map_err(|_| format!("{v} is out of range for PostgreSQL {}", D::NAME))
    })
}

struct BoolEncoder<'a>(&'a BooleanArray);

impl ColumnEncoder for BoolEncoder<'_> {
    fn encode(&mut self, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(&[0, 0, 0, 1, u8::from(self.0.value(row))]);
        Ok(())
    }
}

struct TextEncoder<A> {
    values: A,
    /// jsonb's version byte, or nothing.
    prefix: &'static [u8],
}

impl<'a, A: ArrayAccessor<Item = &'a str>> ColumnEncoder for TextEncoder<A> {
    #[inline]
    fn encode(&mut self, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let s = self.values.value(row).as_bytes();
        if s.contains(&0) {
            return Err("text contains a NUL byte, which PostgreSQL text cannot hold".into());
        }
        out.extend_from_slice(&length(self.prefix.len() + s.len())?);
        out.extend_from_slice(self.prefix);
        out.extend_from_slice(s);
        Ok(())
    }
}

struct BinaryEncoder<A>(A);

impl<'a, A: ArrayAccessor<Item = &'a [u8]>> ColumnEncoder for BinaryEncoder<A> {
    #[inline]
    fn encode(&mut self, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let b = self.0.value(row);
        out.extend_from_slice(&length(b.len())?);
        out.extend_from_slice(b);
        Ok(())
    }
}

struct UuidEncoder<'a>(&'a FixedSizeBinaryArray);

impl ColumnEncoder for UuidEncoder<'_> {
    fn encode(&mut self, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(&[0, 0, 0, 16]);
        out.extend_from_slice(self.0.value(row));
        Ok(())
    }
}

struct UuidTextEncoder<A>(A);

impl<'a, A: ArrayAccessor<Item = &'a str>> ColumnEncoder for UuidTextEncoder<A> {
    fn encode(&mut self, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let s = self.0.value(row);
        let u = uuid::Uuid::parse_str(s).map_err(|_| format!("{s:?} is not a uuid"))?;
        out.extend_from_slice(&[0, 0, 0, 16]);
        out.extend_from_slice(u.as_bytes());
        Ok(())
    }
}

struct Decimal128Encoder<'a> {
    values: &'a [i128],
    scale: i8,
    writer: NumericWriter,
}

impl ColumnEncoder for Decimal128Encoder<'_> {
    fn encode(&mut self, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        self.writer.decimal128(self.values[row], self.scale, out)
    }
}

struct Decimal256Encoder<'a> {
    values: &'a [arrow::datatypes::i256],
    scale: i8,
    writer: NumericWriter,
}

impl ColumnEncoder for Decimal256Encoder<'_> {
    fn encode(&mut self, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        self.writer.decimal256(self.values[row], self.scale, out)
    }
}

struct NumericTextEncoder<A> {
    values: A,
    writer: NumericWriter,
}

impl<'a, A: ArrayAccessor<Item = &'a str>> ColumnEncoder for NumericTextEncoder<A> {
    fn encode(&mut self, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        self.writer.text(self.values.value(row), out)
    }
}

struct IntNumericEncoder<'a, T: ArrowPrimitiveType> {
    values: &'a [T::Native],
    writer: NumericWriter,
}

fn int_numeric<'a, T>(array: &'a dyn Array) -> Box<dyn ColumnEncoder + 'a>
where
    T: ArrowPrimitiveType,
    i128: From<T::Native>,
{
    Box::new(IntNumericEncoder::<T> {
        values: array.as_primitive::<T>().values(),
        writer: NumericWriter::default(),
    })
}

impl<T> ColumnEncoder for IntNumericEncoder<'_, T>
where
    T: ArrowPrimitiveType,
    i128: From<T::Native>,
{
    fn encode(&mut self, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        self.writer.decimal128(i128::from(self.values[row]), 0, out)
    }
}

/// A List as a one-dimensional array with lower bound 1, as `array_send` writes it.
struct ListEncoder<'a, O: OffsetSizeTrait> {
    offsets: &'a [O],
    elem: Box<dyn ColumnEncoder + 'a>,
    elem_nulls: Option<&'a NullBuffer>,
    elem_oid: [u8; 4],
}

fn list<'a, O: OffsetSizeTrait>(
    array: &'a GenericListArray<O>,
    elem: &Wire,
    elem_oid: u32,
) -> Result<Box<dyn ColumnEncoder + 'a>, String> {
    if matches!(elem, Wire::Array { .. }) {
        return Err("arrays of arrays do not exist in PostgreSQL".into());
    }
    let values = array.values();
    Ok(Box::new(ListEncoder {
        offsets: array.value_offsets(),
        elem: column_encoder(elem, values.as_ref()).map_err(|m| format!("array elements: {m}"))?,
        elem_nulls: values.nulls(),
        elem_oid: elem_oid.to_be_bytes(),
    }))
}

impl<O: OffsetSizeTrait> ColumnEncoder for ListEncoder<'_, O> {
    fn encode(&mut self, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let (from, to) = (
            self.offsets[row].as_usize(),
            self.offsets[row + 1].as_usize(),
        );
        let at = out.len();
        out.extend_from_slice(&[0; 4]); // the length, patched below
        if from == to {
            // An empty array has no dimensions.
            out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&self.elem_oid);
        } else {
            let has_nulls = self
                .elem_nulls
                .is_some_and(|n| (from..to).any(|i| n.is_null(i)));
            let count =
                i32::try_from(to - from).map_err(|_| "array has too many elements".to_string())?;
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&i32::from(has_nulls).to_be_bytes());
            out.extend_from_slice(&self.elem_oid);
            out.extend_from_slice(&count.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            for i in from..to {
                if self.elem_nulls.is_some_and(|n| n.is_null(i)) {
                    out.extend_from_slice(&NULL);
                } else {
                    self.elem
                        .encode(i, out)
                        .map_err(|m| format!("array element {}: {m}", i - from + 1))?;
                }
            }
        }
        let len = length(out.len() - at - 4)?;
        out[at..at + 4].copy_from_slice(&len);
        Ok(())
    }
}
