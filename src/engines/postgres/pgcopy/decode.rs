//! Binary COPY bytes -> Arrow builders.
//!
//! The stream is split into units (the header, one tuple, the trailer). A unit is first
//! *scanned* — its field lengths hopped over, nothing decoded — and decoded only once it is
//! complete, so a tuple split across `feed` calls never leaves a builder half-appended. Whole
//! units are decoded straight from the caller's slice; only a split unit's bytes are copied,
//! and its scan resumes where it stopped, so a huge value arriving in small chunks costs no
//! rescans. Nothing is allocated from a length the stream declares: a hostile length only
//! makes the decoder wait for bytes that never come, and `finish` reports the truncation.

use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, BooleanBuilder, FixedSizeBinaryBuilder,
    GenericBinaryBuilder, GenericListArray, GenericStringArray, GenericStringBuilder,
    OffsetSizeTrait, PrimitiveBuilder,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, FieldRef, Float32Type, Float64Type,
    Int16Type, Int32Type, Int64Type, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit,
    SchemaRef, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType, i256,
};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::numeric::NumericView;
use super::{CodecError, EPOCH_DAYS, EPOCH_MICROS, HEADER_LEN, SIGNATURE, ValueError, Wire};
use crate::types::ColumnType;

/// One column's conversion strategy: PostgreSQL binary values in, one Arrow array out.
trait ColumnDecoder: Send {
    /// Appends one non-NULL value given its bytes (without the length word).
    fn append(&mut self, value: &[u8]) -> Result<(), ValueError>;
    fn append_null(&mut self);
    /// The values appended since the last call, as one array; the builder starts empty again.
    /// A decoder that checks its values once per batch ([`TextDecoder`]) fails here with the
    /// index (from 0, in this batch) of the first value it refuses.
    fn finish(&mut self) -> Finished;
    /// The first value appended since the last [`ColumnDecoder::finish`] that `finish` would
    /// refuse (only the decoders that check a batch at a time have one): an error later in
    /// the batch is reported at the earlier row.
    fn first_invalid(&self) -> Option<(usize, ValueError)> {
        None
    }
}

/// What [`ColumnDecoder::finish`] gives: the batch's array, or the first refused value's
/// index in the batch and why.
type Finished = Result<ArrayRef, (usize, ValueError)>;

struct Slot {
    decoder: Box<dyn ColumnDecoder>,
    nullable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Header,
    Tuples,
    Done,
}

/// How far the scan of the unit at the front of `pending` got: fields `0..field` are
/// complete and field `field`'s length word starts at `offset`.
#[derive(Debug, Clone, Copy)]
struct ScanPos {
    field: usize,
    offset: usize,
}

const TUPLE_START: ScanPos = ScanPos {
    field: 0,
    offset: 2,
};

enum Extent {
    /// The unit is complete and this long.
    Complete(usize),
    /// At least this many bytes are needed before more can be said.
    Need(usize),
}

/// Streams binary COPY bytes (arbitrary chunk boundaries) into Arrow builders.
pub struct CopyDecoder {
    schema: SchemaRef,
    slots: Vec<Slot>,
    phase: Phase,
    /// A unit split across `feed` calls, from its first byte.
    pending: Vec<u8>,
    scan: ScanPos,
    rows: u64,
    batch_rows: usize,
    batch_bytes: usize,
    /// Set by the first error: builders may hold half a row, so nothing more is decoded.
    failed: Option<String>,
}

impl std::fmt::Debug for CopyDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyDecoder")
            .field("columns", &self.slots.len())
            .field("phase", &self.phase)
            .field("rows", &self.rows)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl CopyDecoder {
    /// `columns[i]` = (wire format, canonical type) of field i of `schema`. The strategy is
    /// chosen from the wire format and the Arrow type of the schema's field (for arrays a
    /// `List<Field("item", elem, true)>`), which is what the builders produce.
    pub fn new(columns: Vec<(Wire, ColumnType)>, schema: SchemaRef) -> Result<Self, CodecError> {
        if columns.len() != schema.fields().len() {
            return Err(CodecError::stream(
                0,
                format!(
                    "{} column formats for a schema of {} fields",
                    columns.len(),
                    schema.fields().len()
                ),
            ));
        }
        if i16::try_from(columns.len()).is_err() {
            return Err(CodecError::stream(
                0,
                "binary COPY carries at most 32767 columns",
            ));
        }
        let slots = columns
            .iter()
            .zip(schema.fields())
            .enumerate()
            .map(|(i, ((wire, _), field))| {
                Ok(Slot {
                    decoder: column_decoder(wire, field.data_type())
                        .map_err(|m| CodecError::at(0, i, m))?,
                    nullable: field.is_nullable(),
                })
            })
            .collect::<Result<_, CodecError>>()?;
        Ok(CopyDecoder {
            schema,
            slots,
            phase: Phase::Header,
            pending: Vec::new(),
            scan: TUPLE_START,
            rows: 0,
            batch_rows: 0,
            batch_bytes: 0,
            failed: None,
        })
    }

    /// Decodes every complete tuple in `pending` + `data`; keeps the incomplete tail.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), CodecError> {
        self.check_failed()?;
        let r = self
            .feed_inner(data)
            .map_err(|e| self.first_invalid(0).unwrap_or(e));
        if let Err(e) = &r {
            self.failed = Some(e.to_string());
        }
        r
    }

    /// The row number (from 1) of the first row in the builders.
    fn batch_first_row(&self) -> u64 {
        self.rows + 1 - self.batch_rows as u64
    }

    /// The first value in the builders of columns `from..` that their batch check would
    /// refuse, by row then column: reported before an error met later in the batch.
    fn first_invalid(&self, from: usize) -> Option<CodecError> {
        let first = self.batch_first_row();
        self.slots
            .iter()
            .enumerate()
            .skip(from)
            .filter_map(|(i, s)| {
                let (k, e) = s.decoder.first_invalid()?;
                Some((first + k as u64, i, e))
            })
            .min_by_key(|(row, i, _)| (*row, *i))
            .map(|(row, i, e)| CodecError::value(row, i, e))
    }

    /// Rows in the builders, not yet taken.
    pub fn buffered_rows(&self) -> usize {
        self.batch_rows
    }

    /// Approximate bytes held by the builders: the wire size of the buffered rows.
    pub fn buffered_bytes(&self) -> usize {
        self.batch_bytes
    }

    /// The buffered rows as one batch, or `None` when there are none.
    pub fn take_batch(&mut self) -> Result<Option<RecordBatch>, CodecError> {
        self.check_failed()?;
        if self.batch_rows == 0 {
            return Ok(None);
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.slots.len());
        for i in 0..self.slots.len() {
            match self.slots[i].decoder.finish() {
                Ok(a) => columns.push(a),
                Err((k, e)) => {
                    // A later column may hold a refused value in an earlier row.
                    let later = self.first_invalid(i + 1);
                    let e = match later {
                        Some(l) if l.row < self.batch_first_row() + k as u64 => l,
                        _ => CodecError::value(self.batch_first_row() + k as u64, i, e),
                    };
                    self.failed = Some(e.to_string());
                    return Err(e);
                }
            }
        }
        let options = RecordBatchOptions::new().with_row_count(Some(self.batch_rows));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map_err(|e| CodecError::stream(self.rows, format!("cannot assemble a batch: {e}")))?;
        self.batch_rows = 0;
        self.batch_bytes = 0;
        Ok(Some(batch))
    }

    /// Tuples decoded so far (taken or not).
    pub fn rows_decoded(&self) -> u64 {
        self.rows
    }

    /// End of stream: the trailer must have been seen, with no bytes left over. A bad text
    /// value in the rows not yet taken is the error reported first.
    pub fn finish(&mut self) -> Result<(), CodecError> {
        self.check_failed()?;
        self.end_of_stream()
            .map_err(|e| self.first_invalid(0).unwrap_or(e))
    }

    fn end_of_stream(&self) -> Result<(), CodecError> {
        match self.phase {
            Phase::Done => Ok(()),
            Phase::Header if self.pending.is_empty() => Err(CodecError::stream(
                0,
                "the COPY stream is empty: no binary COPY header arrived",
            )),
            Phase::Header => Err(CodecError::stream(
                0,
                format!(
                    "the COPY stream ended inside its header ({} bytes)",
                    self.pending.len()
                ),
            )),
            Phase::Tuples => Err(CodecError::stream(
                self.rows + 1,
                format!(
                    "the COPY stream ended without its trailer after {} rows ({} bytes of an incomplete row): it is truncated",
                    self.rows,
                    self.pending.len()
                ),
            )),
        }
    }

    fn check_failed(&self) -> Result<(), CodecError> {
        match &self.failed {
            Some(m) => Err(CodecError::stream(
                self.rows + 1,
                format!("the decoder stopped at an earlier error: {m}"),
            )),
            None => Ok(()),
        }
    }

    fn feed_inner(&mut self, mut data: &[u8]) -> Result<(), CodecError> {
        if !self.pending.is_empty() {
            // Complete the split unit with just the bytes it needs, then go on from `data`.
            let mut pending = std::mem::take(&mut self.pending);
            loop {
                let mut scan = self.scan;
                let extent = self.scan_unit(&pending, &mut scan);
                self.scan = scan;
                match extent? {
                    Extent::Need(n) => {
                        let take = n.saturating_sub(pending.len()).min(data.len());
                        pending.extend_from_slice(&data[..take]);
                        data = &data[take..];
                        if pending.len() < n {
                            self.pending = pending;
                            return Ok(());
                        }
                    }
                    Extent::Complete(len) => {
                        self.consume_unit(&pending[..len])?;
                        pending.clear();
                        self.pending = pending; // keeps the allocation
                        break;
                    }
                }
            }
        }
        let mut pos = 0;
        while pos < data.len() {
            let unit = &data[pos..];
            let mut scan = TUPLE_START;
            match self.scan_unit(unit, &mut scan)? {
                Extent::Complete(len) => {
                    self.consume_unit(&unit[..len])?;
                    pos += len;
                }
                Extent::Need(_) => {
                    self.scan = scan;
                    self.pending.extend_from_slice(unit);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// How long the unit at the start of `buf` is, resuming a tuple scan from `scan`.
    fn scan_unit(&self, buf: &[u8], scan: &mut ScanPos) -> Result<Extent, CodecError> {
        match self.phase {
            Phase::Header => scan_header(buf),
            Phase::Tuples => self.scan_tuple(buf, scan),
            Phase::Done => Err(CodecError::stream(
                self.rows,
                format!("{} bytes follow the COPY trailer", buf.len()),
            )),
        }
    }

    fn scan_tuple(&self, buf: &[u8], scan: &mut ScanPos) -> Result<Extent, CodecError> {
        let Some(&[a, b]) = buf.get(..2).and_then(|s| <&[u8; 2]>::try_from(s).ok()) else {
            return Ok(Extent::Need(2));
        };
        let count = i16::from_be_bytes([a, b]);
        if count == -1 {
            return Ok(Extent::Complete(2));
        }
        let ncols = self.slots.len();
        if usize::try_from(count).ok() != Some(ncols) {
            return Err(CodecError::stream(
                self.rows + 1,
                format!("the row has {count} fields where {ncols} were expected"),
            ));
        }
        let mut pos = scan.offset;
        for field in scan.field..ncols {
            let Some(len) = read_i32(buf, pos) else {
                *scan = ScanPos { field, offset: pos };
                return Ok(Extent::Need(pos + 4));
            };
            let end = match len {
                -1 => pos + 4,
                0.. => pos + 4 + usize::try_from(len).unwrap_or(0),
                _ => {
                    return Err(CodecError::at(
                        self.rows + 1,
                        field,
                        format!("invalid field length {len}"),
                    ));
                }
            };
            if end > buf.len() {
                *scan = ScanPos { field, offset: pos };
                return Ok(Extent::Need(end));
            }
            pos = end;
        }
        Ok(Extent::Complete(pos))
    }

    /// Decodes one complete unit.
    fn consume_unit(&mut self, unit: &[u8]) -> Result<(), CodecError> {
        self.scan = TUPLE_START;
        match self.phase {
            Phase::Header => {
                self.phase = Phase::Tuples;
                Ok(())
            }
            Phase::Tuples if unit == [0xff, 0xff] => {
                self.phase = Phase::Done;
                Ok(())
            }
            Phase::Tuples => self.decode_tuple(unit),
            Phase::Done => Err(CodecError::stream(self.rows, "data after the COPY trailer")),
        }
    }

    /// Appends one complete, scanned tuple to the builders.
    fn decode_tuple(&mut self, tuple: &[u8]) -> Result<(), CodecError> {
        let row = self.rows + 1;
        let mut pos = 2;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let len =
                read_i32(tuple, pos).ok_or_else(|| CodecError::at(row, i, "truncated row"))?;
            pos += 4;
            if len < 0 {
                if !slot.nullable {
                    return Err(CodecError::at(row, i, "NULL in a column declared NOT NULL"));
                }
                slot.decoder.append_null();
            } else {
                let end = pos + usize::try_from(len).unwrap_or(0);
                let value = tuple
                    .get(pos..end)
                    .ok_or_else(|| CodecError::at(row, i, "truncated row"))?;
                slot.decoder
                    .append(value)
                    .map_err(|e| CodecError::value(row, i, e))?;
                pos = end;
            }
        }
        self.rows = row;
        self.batch_rows += 1;
        self.batch_bytes += tuple.len();
        Ok(())
    }
}

fn scan_header(buf: &[u8]) -> Result<Extent, CodecError> {
    let n = buf.len().min(SIGNATURE.len());
    if buf[..n] != SIGNATURE[..n] {
        return Err(CodecError::stream(
            0,
            "not a binary COPY stream: the PGCOPY signature is missing",
        ));
    }
    if buf.len() < HEADER_LEN {
        return Ok(Extent::Need(HEADER_LEN));
    }
    let flags = read_i32(buf, 11).unwrap_or(0);
    if flags & (1 << 16) != 0 {
        return Err(CodecError::stream(
            0,
            "the COPY stream carries OIDs, which ferry does not read",
        ));
    }
    if flags & !0xffff & !(1 << 16) != 0 {
        return Err(CodecError::stream(
            0,
            format!("the COPY stream has unknown critical flags 0x{flags:08x}"),
        ));
    }
    let ext = read_i32(buf, 15).unwrap_or(0);
    let ext = usize::try_from(ext).map_err(|_| {
        CodecError::stream(0, format!("invalid COPY header extension length {ext}"))
    })?;
    let total = HEADER_LEN + ext;
    Ok(if buf.len() < total {
        Extent::Need(total)
    } else {
        Extent::Complete(total)
    })
}

fn read_i32(buf: &[u8], pos: usize) -> Option<i32> {
    let b: [u8; 4] = buf.get(pos..pos.checked_add(4)?)?.try_into().ok()?;
    Some(i32::from_be_bytes(b))
}

/// Picks the strategy for one column, or says why there is none.
fn column_decoder(wire: &Wire, dt: &DataType) -> Result<Box<dyn ColumnDecoder>, String> {
    let unsupported = || format!("cannot decode PostgreSQL {wire:?} into Arrow {dt}");
    Ok(match (wire, dt) {
        (Wire::Bool, DataType::Boolean) => Box::new(BoolDecoder(BooleanBuilder::new())),
        (Wire::Int2, DataType::Int16) => fixed::<Int16Type, 2>(dt, |b| Ok(i16::from_be_bytes(b))),
        (Wire::Int2, DataType::Int32) => {
            fixed::<Int32Type, 2>(dt, |b| Ok(i32::from(i16::from_be_bytes(b))))
        }
        (Wire::Int2, DataType::Int64) => {
            fixed::<Int64Type, 2>(dt, |b| Ok(i64::from(i16::from_be_bytes(b))))
        }
        (Wire::Int4, DataType::Int32) => fixed::<Int32Type, 4>(dt, |b| Ok(i32::from_be_bytes(b))),
        (Wire::Int4, DataType::Int64) => {
            fixed::<Int64Type, 4>(dt, |b| Ok(i64::from(i32::from_be_bytes(b))))
        }
        (Wire::Int8, DataType::Int64) => fixed::<Int64Type, 8>(dt, |b| Ok(i64::from_be_bytes(b))),
        (Wire::Float4, DataType::Float32) => {
            fixed::<Float32Type, 4>(dt, |b| Ok(f32::from_be_bytes(b)))
        }
        (Wire::Float4, DataType::Float64) => {
            fixed::<Float64Type, 4>(dt, |b| Ok(f64::from(f32::from_be_bytes(b))))
        }
        (Wire::Float8, DataType::Float64) => {
            fixed::<Float64Type, 8>(dt, |b| Ok(f64::from_be_bytes(b)))
        }
        (Wire::Numeric, DataType::Decimal128(p, s)) => {
            let (p, s) = (*p, *s);
            Box::new(DecimalDecoder {
                builder: PrimitiveBuilder::<Decimal128Type>::new().with_data_type(dt.clone()),
                convert: move |v: &[u8]| NumericView::parse(v)?.to_decimal::<i128>(p, s),
            })
        }
        (Wire::Numeric, DataType::Decimal256(p, s)) => {
            let (p, s) = (*p, *s);
            Box::new(DecimalDecoder {
                builder: PrimitiveBuilder::<Decimal256Type>::new().with_data_type(dt.clone()),
                convert: move |v: &[u8]| NumericView::parse(v)?.to_decimal::<i256>(p, s),
            })
        }
        (Wire::Numeric, DataType::Utf8) => Box::new(NumericTextDecoder::<i32>::default()),
        (Wire::Numeric, DataType::LargeUtf8) => Box::new(NumericTextDecoder::<i64>::default()),
        (Wire::Text, DataType::Utf8) => Box::new(TextDecoder::<i32>::new(false)),
        (Wire::Text, DataType::LargeUtf8) => Box::new(TextDecoder::<i64>::new(false)),
        (Wire::Jsonb, DataType::Utf8) => Box::new(TextDecoder::<i32>::new(true)),
        (Wire::Jsonb, DataType::LargeUtf8) => Box::new(TextDecoder::<i64>::new(true)),
        (Wire::Bytea, DataType::Binary) => Box::new(BinaryDecoder::<i32>::default()),
        (Wire::Bytea, DataType::LargeBinary) => Box::new(BinaryDecoder::<i64>::default()),
        (Wire::Date, DataType::Date32) => {
            fixed::<Date32Type, 4>(dt, |b| date(i32::from_be_bytes(b)))
        }
        (Wire::Timestamp | Wire::Timestamptz, DataType::Timestamp(TimeUnit::Microsecond, _)) => {
            fixed::<TimestampMicrosecondType, 8>(dt, |b| timestamp(i64::from_be_bytes(b)))
        }
        (Wire::Time, DataType::Time64(TimeUnit::Microsecond)) => {
            fixed::<Time64MicrosecondType, 8>(dt, |b| Ok(i64::from_be_bytes(b)))
        }
        (Wire::Interval, DataType::Interval(IntervalUnit::MonthDayNano)) => {
            fixed::<IntervalMonthDayNanoType, 16>(dt, interval)
        }
        (Wire::Uuid, DataType::FixedSizeBinary(16)) => {
            Box::new(UuidDecoder(FixedSizeBinaryBuilder::new(16)))
        }
        (Wire::Array { elem, .. }, DataType::List(field)) => list::<i32>(elem, field)?,
        (Wire::Array { elem, .. }, DataType::LargeList(field)) => list::<i64>(elem, field)?,
        _ => return Err(unsupported()),
    })
}

fn list<O: OffsetSizeTrait>(
    elem: &Wire,
    field: &FieldRef,
) -> Result<Box<dyn ColumnDecoder>, String> {
    if matches!(elem, Wire::Array { .. }) {
        return Err(
            "arrays of arrays do not exist in PostgreSQL (use a multi-dimensional array type)"
                .into(),
        );
    }
    let elem_decoder: Box<dyn ColumnDecoder> = match (elem, field.data_type()) {
        (Wire::Text, DataType::Utf8) => Box::new(CheckedText(TextDecoder::<i32>::new(false))),
        (Wire::Jsonb, DataType::Utf8) => Box::new(CheckedText(TextDecoder::<i32>::new(true))),
        (Wire::Text, DataType::LargeUtf8) => Box::new(CheckedText(TextDecoder::<i64>::new(false))),
        (Wire::Jsonb, DataType::LargeUtf8) => Box::new(CheckedText(TextDecoder::<i64>::new(true))),
        (elem, dt) => column_decoder(elem, dt)?,
    };
    Ok(Box::new(ListDecoder::<O> {
        elem: elem_decoder,
        field: field.clone(),
        offsets: vec![O::zero()],
        nulls: NullBufferBuilder::new(0),
        elem_nullable: field.is_nullable(),
    }))
}

/// Days since 2000-01-01 to days since 1970-01-01, keeping ±infinity.
fn date(d: i32) -> Result<i32, String> {
    match d {
        i32::MAX | i32::MIN => Ok(d),
        _ => d
            .checked_add(EPOCH_DAYS)
            .filter(|v| *v != i32::MAX)
            .ok_or_else(|| format!("date (day {d} after 2000-01-01) is out of Arrow's range")),
    }
}

/// µs since 2000-01-01 to µs since 1970-01-01, keeping ±infinity.
fn timestamp(t: i64) -> Result<i64, String> {
    match t {
        i64::MAX | i64::MIN => Ok(t),
        _ => t
            .checked_add(EPOCH_MICROS)
            .filter(|v| *v != i64::MAX)
            .ok_or_else(|| format!("timestamp ({t} µs after 2000-01-01) is out of Arrow's range")),
    }
}

fn interval(b: [u8; 16]) -> Result<IntervalMonthDayNano, String> {
    let [
        t0,
        t1,
        t2,
        t3,
        t4,
        t5,
        t6,
        t7,
        d0,
        d1,
        d2,
        d3,
        m0,
        m1,
        m2,
        m3,
    ] = b;
    let micros = i64::from_be_bytes([t0, t1, t2, t3, t4, t5, t6, t7]);
    let days = i32::from_be_bytes([d0, d1, d2, d3]);
    let months = i32::from_be_bytes([m0, m1, m2, m3]);
    // PostgreSQL 17's infinite intervals set every field to its extreme.
    if (micros, days, months) == (i64::MAX, i32::MAX, i32::MAX)
        || (micros, days, months) == (i64::MIN, i32::MIN, i32::MIN)
    {
        return Ok(IntervalMonthDayNano::new(months, days, micros));
    }
    let nanos = micros.checked_mul(1000).ok_or_else(|| {
        format!("interval time part of {micros} µs does not fit Arrow's nanoseconds")
    })?;
    Ok(IntervalMonthDayNano::new(months, days, nanos))
}

/// A fixed-width value converted by `convert` (chosen once, inlined per value).
struct FixedDecoder<T: ArrowPrimitiveType, const N: usize, F> {
    builder: PrimitiveBuilder<T>,
    convert: F,
}

fn fixed<T, const N: usize>(
    dt: &DataType,
    convert: impl Fn([u8; N]) -> Result<T::Native, String> + Send + 'static,
) -> Box<dyn ColumnDecoder>
where
    T: ArrowPrimitiveType,
{
    Box::new(FixedDecoder::<T, N, _> {
        builder: PrimitiveBuilder::<T>::new().with_data_type(dt.clone()),
        convert,
    })
}

impl<T, const N: usize, F> ColumnDecoder for FixedDecoder<T, N, F>
where
    T: ArrowPrimitiveType,
    F: Fn([u8; N]) -> Result<T::Native, String> + Send,
{
    #[inline]
    fn append(&mut self, value: &[u8]) -> Result<(), ValueError> {
        let b: [u8; N] = value
            .try_into()
            .map_err(|_| format!("expected a {N}-byte value, got {} bytes", value.len()))?;
        self.builder.append_value((self.convert)(b)?);
        Ok(())
    }
    fn append_null(&mut self) {
        self.builder.append_null();
    }
    fn finish(&mut self) -> Finished {
        Ok(finish_presized(&mut self.builder))
    }
}

struct BoolDecoder(BooleanBuilder);

impl ColumnDecoder for BoolDecoder {
    fn append(&mut self, value: &[u8]) -> Result<(), ValueError> {
        match value {
            // boolrecv: any nonzero byte is true.
            [b] => {
                self.0.append_value(*b != 0);
                Ok(())
            }
            _ => Err(format!("expected a 1-byte bool, got {} bytes", value.len()).into()),
        }
    }
    fn append_null(&mut self) {
        self.0.append_null();
    }
    fn finish(&mut self) -> Finished {
        let a = self.0.finish();
        self.0 = BooleanBuilder::with_capacity(a.len());
        Ok(Arc::new(a))
    }
}

struct DecimalDecoder<T: ArrowPrimitiveType, F> {
    builder: PrimitiveBuilder<T>,
    convert: F,
}

impl<T, F> ColumnDecoder for DecimalDecoder<T, F>
where
    T: ArrowPrimitiveType,
    F: Fn(&[u8]) -> Result<T::Native, ValueError> + Send,
{
    fn append(&mut self, value: &[u8]) -> Result<(), ValueError> {
        self.builder.append_value((self.convert)(value)?);
        Ok(())
    }
    fn append_null(&mut self) {
        self.builder.append_null();
    }
    fn finish(&mut self) -> Finished {
        Ok(finish_presized(&mut self.builder))
    }
}

/// The builder's values as one array; the next batch starts at this one's size, so the
/// builder does not regrow from empty.
fn finish_presized<T: ArrowPrimitiveType>(builder: &mut PrimitiveBuilder<T>) -> ArrayRef {
    let a = builder.finish();
    *builder = PrimitiveBuilder::with_capacity(a.len()).with_data_type(a.data_type().clone());
    Arc::new(a)
}

/// Fails instead of letting a builder's i32 offsets overflow (which would panic).
fn check_room<O: OffsetSizeTrait>(held: usize, adding: usize) -> Result<(), String> {
    match held.checked_add(adding).and_then(O::from_usize) {
        Some(_) => Ok(()),
        None => Err(format!(
            "one batch would hold more than {} bytes in this column; take batches more often",
            O::MAX_OFFSET
        )),
    }
}

/// text-like values (and jsonb, after its version byte) as UTF-8 strings. The bytes are
/// gathered as they come and checked as UTF-8 once per batch, when Arrow builds the array
/// (a check and a builder call per value were 9% of a PostgreSQL export's CPU); a batch that
/// fails is searched for its first bad value, so the error still names the row. The buffers
/// start each batch at the size the last one reached.
struct TextDecoder<O: OffsetSizeTrait> {
    values: Vec<u8>,
    offsets: Vec<O>,
    nulls: NullBufferBuilder,
    jsonb: bool,
}

impl<O: OffsetSizeTrait> TextDecoder<O> {
    fn new(jsonb: bool) -> Self {
        TextDecoder {
            values: Vec::new(),
            offsets: vec![O::zero()],
            nulls: NullBufferBuilder::new(0),
            jsonb,
        }
    }

    /// The value's text bytes: jsonb without its version byte.
    fn text<'v>(&self, value: &'v [u8]) -> Result<&'v [u8], ValueError> {
        if !self.jsonb {
            return Ok(value);
        }
        match value.split_first() {
            Some((1, rest)) => Ok(rest),
            Some((v, _)) => Err(format!("unsupported jsonb version {v}").into()),
            None => Err("empty jsonb value".into()),
        }
    }

    fn push(&mut self, text: &[u8]) -> Result<(), ValueError> {
        check_room::<O>(self.values.len(), text.len())?;
        self.values.extend_from_slice(text);
        // check_room: the end offset fits O.
        self.offsets
            .push(O::from_usize(self.values.len()).unwrap_or_else(O::zero));
        self.nulls.append_non_null();
        Ok(())
    }
}

/// Why a value is not text.
fn not_utf8(e: std::str::Utf8Error) -> ValueError {
    format!("text is not valid UTF-8 ({e}); is client_encoding UTF8?").into()
}

/// The first of `offsets`' values in `values` that is not UTF-8 on its own.
fn first_not_utf8<O: OffsetSizeTrait>(values: &[u8], offsets: &[O]) -> Option<(usize, ValueError)> {
    offsets.windows(2).enumerate().find_map(|(i, w)| {
        let v = values
            .get(w[0].as_usize()..w[1].as_usize())
            .unwrap_or_default();
        std::str::from_utf8(v).err().map(|e| (i, not_utf8(e)))
    })
}

impl<O: OffsetSizeTrait> ColumnDecoder for TextDecoder<O> {
    fn append(&mut self, value: &[u8]) -> Result<(), ValueError> {
        let text = self.text(value)?;
        self.push(text)
    }
    fn append_null(&mut self) {
        self.offsets
            .push(*self.offsets.last().unwrap_or(&O::zero()));
        self.nulls.append_null();
    }
    fn finish(&mut self) -> Finished {
        let (len, rows) = (self.values.len(), self.offsets.len());
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(len + len / 4));
        let mut next = Vec::with_capacity(rows + rows / 4);
        next.push(O::zero());
        let offsets = std::mem::replace(&mut self.offsets, next);
        let values = arrow::buffer::Buffer::from_vec(values);
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        // The one UTF-8 check: the whole buffer, and each value's bounds on a character.
        GenericStringArray::<O>::try_new(offsets.clone(), values.clone(), self.nulls.finish())
            .map(|a| Arc::new(a) as ArrayRef)
            .map_err(|e| {
                first_not_utf8(values.as_slice(), &offsets).unwrap_or_else(|| {
                    (
                        offsets.len().saturating_sub(2),
                        format!("cannot assemble the column's text: {e}").into(),
                    )
                })
            })
    }
    fn first_invalid(&self) -> Option<(usize, ValueError)> {
        first_not_utf8(&self.values, &self.offsets)
    }
}

/// [`TextDecoder`] checking each value as it comes: an array's text elements, whose error
/// names the element within its row.
struct CheckedText<O: OffsetSizeTrait>(TextDecoder<O>);

impl<O: OffsetSizeTrait> ColumnDecoder for CheckedText<O> {
    fn append(&mut self, value: &[u8]) -> Result<(), ValueError> {
        let text = self.0.text(value)?;
        std::str::from_utf8(text).map_err(not_utf8)?;
        self.0.push(text)
    }
    fn append_null(&mut self) {
        self.0.append_null();
    }
    fn finish(&mut self) -> Finished {
        self.0.finish()
    }
}

#[derive(Default)]
struct BinaryDecoder<O: OffsetSizeTrait>(GenericBinaryBuilder<O>);

impl<O: OffsetSizeTrait> ColumnDecoder for BinaryDecoder<O> {
    fn append(&mut self, value: &[u8]) -> Result<(), ValueError> {
        check_room::<O>(self.0.values_slice().len(), value.len())?;
        self.0.append_value(value);
        Ok(())
    }
    fn append_null(&mut self) {
        self.0.append_null();
    }
    fn finish(&mut self) -> Finished {
        Ok(Arc::new(self.0.finish()))
    }
}

#[derive(Default)]
struct NumericTextDecoder<O: OffsetSizeTrait> {
    builder: GenericStringBuilder<O>,
    scratch: String,
}

impl<O: OffsetSizeTrait> ColumnDecoder for NumericTextDecoder<O> {
    fn append(&mut self, value: &[u8]) -> Result<(), ValueError> {
        self.scratch.clear();
        NumericView::parse(value)?.write_text(&mut self.scratch)?;
        check_room::<O>(self.builder.values_slice().len(), self.scratch.len())?;
        self.builder.append_value(&self.scratch);
        Ok(())
    }
    fn append_null(&mut self) {
        self.builder.append_null();
    }
    fn finish(&mut self) -> Finished {
        Ok(Arc::new(self.builder.finish()))
    }
}

struct UuidDecoder(FixedSizeBinaryBuilder);

impl ColumnDecoder for UuidDecoder {
    fn append(&mut self, value: &[u8]) -> Result<(), ValueError> {
        if value.len() != 16 {
            return Err(format!("expected a 16-byte uuid, got {} bytes", value.len()).into());
        }
        self.0
            .append_value(value)
            .map_err(|e| ValueError::from(e.to_string()))
    }
    fn append_null(&mut self) {
        self.0.append_null();
    }
    fn finish(&mut self) -> Finished {
        let a = self.0.finish();
        self.0 = FixedSizeBinaryBuilder::with_capacity(a.len(), 16);
        Ok(Arc::new(a))
    }
}

/// PostgreSQL's `MAXDIM`: more dimensions than this is not an array it could have sent.
const MAXDIM: i32 = 6;

/// Checks that an array a List cannot carry is nonetheless well formed — dimensions that
/// are not negative, then exactly as many length-prefixed elements as they multiply to — so
/// that damaged bytes are reported as damage and not as an array to read as text.
fn check_array_layout(value: &[u8], ndim: i32) -> Result<(), String> {
    let word = |pos: usize| read_i32(value, pos).ok_or("array value is truncated");
    let ndim = usize::try_from(ndim).map_err(|_| format!("invalid array dimensions {ndim}"))?;
    let mut count = 1usize;
    for d in 0..ndim {
        let len = word(12 + 8 * d)?;
        word(16 + 8 * d)?;
        count = usize::try_from(len)
            .ok()
            .and_then(|len| count.checked_mul(len))
            .ok_or_else(|| format!("invalid array length {len}"))?;
    }
    let mut pos = 12 + 8 * ndim;
    for i in 0..count {
        let len = word(pos)?;
        pos = match len {
            -1 => pos + 4,
            0.. => pos + 4 + usize::try_from(len).unwrap_or(0),
            _ => return Err(format!("array element {} has invalid length {len}", i + 1)),
        };
        if pos > value.len() {
            return Err("array value is truncated".into());
        }
    }
    if pos != value.len() {
        return Err(format!(
            "array value has {} bytes after its elements",
            value.len().saturating_sub(pos)
        ));
    }
    Ok(())
}

/// A one-dimensional array (`array_send`): i32 ndim, i32 has-nulls flag, u32 element OID,
/// per dimension i32 length and i32 lower bound, then the elements as in a tuple. An array
/// PostgreSQL can hold but a List cannot carry (lower bound not 1, 2 to `MAXDIM` dimensions)
/// is a `needs_text` error.
struct ListDecoder<O: OffsetSizeTrait> {
    elem: Box<dyn ColumnDecoder>,
    field: FieldRef,
    offsets: Vec<O>,
    nulls: NullBufferBuilder,
    elem_nullable: bool,
}

impl<O: OffsetSizeTrait> ColumnDecoder for ListDecoder<O> {
    fn append(&mut self, value: &[u8]) -> Result<(), ValueError> {
        let word = |pos: usize| read_i32(value, pos).ok_or("array value is truncated");
        let ndim = word(0)?;
        let _has_nulls = word(4)?;
        let _elem_oid = word(8)?;
        let (count, mut pos) = match ndim {
            0 => (0, 12),
            1 => {
                let len = word(12)?;
                let lower = word(16)?;
                let len =
                    usize::try_from(len).map_err(|_| format!("invalid array length {len}"))?;
                if lower != 1 {
                    check_array_layout(value, ndim)?;
                    return Err(ValueError::needs_text(format!(
                        "array with lower bound {lower} cannot be carried as a list (its bounds would be lost); read the column as text"
                    )));
                }
                (len, 20)
            }
            2..=MAXDIM => {
                check_array_layout(value, ndim)?;
                return Err(ValueError::needs_text(format!(
                    "{ndim}-dimensional array cannot be carried as a list; read the column as text"
                )));
            }
            _ => return Err(format!("invalid number of array dimensions {ndim}").into()),
        };
        let last = *self.offsets.last().unwrap_or(&O::zero());
        for i in 0..count {
            let len = word(pos)?;
            pos += 4;
            if len < 0 {
                if len != -1 {
                    return Err(format!("array element {} has invalid length {len}", i + 1).into());
                }
                if !self.elem_nullable {
                    return Err(format!("array element {} is NULL", i + 1).into());
                }
                self.elem.append_null();
            } else {
                let end = pos + usize::try_from(len).unwrap_or(0);
                let v = value.get(pos..end).ok_or("array value is truncated")?;
                self.elem
                    .append(v)
                    .map_err(|e| e.context(&format!("array element {}: ", i + 1)))?;
                pos = end;
            }
        }
        if pos != value.len() {
            return Err(format!(
                "array value has {} bytes after its elements",
                value.len() - pos
            )
            .into());
        }
        let next = last
            .as_usize()
            .checked_add(count)
            .and_then(O::from_usize)
            .ok_or("one batch would hold too many array elements; take batches more often")?;
        self.offsets.push(next);
        self.nulls.append_non_null();
        Ok(())
    }
    fn append_null(&mut self) {
        let last = *self.offsets.last().unwrap_or(&O::zero());
        self.offsets.push(last);
        self.nulls.append_null();
    }
    fn finish(&mut self) -> Finished {
        let offsets = std::mem::replace(&mut self.offsets, vec![O::zero()]);
        // An element refused here (the elements are checked as they come, so none is) is
        // reported at its row.
        let values = self.elem.finish().map_err(|(k, e)| {
            let row = offsets
                .partition_point(|o| o.as_usize() <= k)
                .saturating_sub(1);
            let first = offsets.get(row).map_or(0, |o| o.as_usize());
            (
                row,
                e.context(&format!("array element {}: ", k - first.min(k) + 1)),
            )
        })?;
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        Ok(Arc::new(GenericListArray::<O>::new(
            self.field.clone(),
            offsets,
            values,
            self.nulls.finish(),
        )))
    }
}
