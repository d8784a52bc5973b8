//! Binary COPY decoder: arbitrary bytes as a PostgreSQL `COPY ... TO STDOUT (FORMAT binary)`
//! stream for a table with one column of every wire format (the layout of
//! tests/data/pgcopy/all_wires.copy), fed in chunks whose size comes from the first input
//! byte, with batches taken in between. Errors are fine; panics are not.
#![no_main]

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, IntervalUnit, Schema, SchemaRef, TimeUnit};
use ferry::engines::postgres::pgcopy::{CopyDecoder, Wire, default_oid};
use ferry::types::ColumnType;
use libfuzzer_sys::fuzz_target;

fn canonical(dt: &DataType) -> ColumnType {
    match dt {
        DataType::Boolean => ColumnType::Boolean,
        DataType::Int16 => ColumnType::Int16,
        DataType::Int32 => ColumnType::Int32,
        DataType::Int64 => ColumnType::Int64,
        DataType::Float32 => ColumnType::Float32,
        DataType::Float64 => ColumnType::Float64,
        DataType::Decimal128(p, s) => ColumnType::Decimal128 { precision: *p, scale: *s },
        DataType::Decimal256(p, s) => ColumnType::Decimal256 { precision: *p, scale: *s },
        DataType::Binary => ColumnType::Binary,
        DataType::Date32 => ColumnType::Date32,
        DataType::Timestamp(_, tz) => ColumnType::Timestamp { utc: tz.is_some() },
        DataType::Time64(_) => ColumnType::Time64,
        DataType::FixedSizeBinary(16) => ColumnType::Uuid,
        DataType::Interval(_) => ColumnType::Interval,
        DataType::List(f) => canonical(f.data_type()),
        _ => ColumnType::Utf8,
    }
}

fn layout() -> (Vec<(Wire, ColumnType)>, SchemaRef) {
    let list = |w: Wire, elem: DataType| {
        let oid = default_oid(&w);
        (
            Wire::Array { elem: Box::new(w), elem_oid: oid },
            DataType::List(Arc::new(Field::new("item", elem, true))),
        )
    };
    let us = |tz: Option<&str>| DataType::Timestamp(TimeUnit::Microsecond, tz.map(Arc::from));
    let mut cols = vec![
        ("b", Wire::Bool, DataType::Boolean),
        ("i2", Wire::Int2, DataType::Int16),
        ("i4", Wire::Int4, DataType::Int32),
        ("i8", Wire::Int8, DataType::Int64),
        ("f4", Wire::Float4, DataType::Float32),
        ("f8", Wire::Float8, DataType::Float64),
        ("n", Wire::Numeric, DataType::Utf8),
        ("n12", Wire::Numeric, DataType::Decimal128(12, 2)),
        ("n38", Wire::Numeric, DataType::Decimal128(38, 10)),
        ("n60", Wire::Numeric, DataType::Decimal256(60, 10)),
        ("t", Wire::Text, DataType::Utf8),
        ("bp", Wire::Text, DataType::Utf8),
        ("vc", Wire::Text, DataType::Utf8),
        ("jb", Wire::Jsonb, DataType::Utf8),
        ("js", Wire::Text, DataType::Utf8),
        ("by", Wire::Bytea, DataType::Binary),
        ("d", Wire::Date, DataType::Date32),
        ("ts", Wire::Timestamp, us(None)),
        ("tz", Wire::Timestamptz, us(Some("UTC"))),
        ("tm", Wire::Time, DataType::Time64(TimeUnit::Microsecond)),
        ("iv", Wire::Interval, DataType::Interval(IntervalUnit::MonthDayNano)),
        ("u", Wire::Uuid, DataType::FixedSizeBinary(16)),
    ];
    for (name, (w, dt)) in [
        ("ai", list(Wire::Int4, DataType::Int32)),
        ("at", list(Wire::Text, DataType::Utf8)),
        ("an", list(Wire::Numeric, DataType::Utf8)),
    ] {
        cols.push((name, w, dt));
    }
    let mut columns = Vec::new();
    let mut fields = Vec::new();
    for (name, w, dt) in cols {
        columns.push((w, canonical(&dt)));
        fields.push(Field::new(name, dt, true));
    }
    (columns, Arc::new(Schema::new(fields)))
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    // 0 feeds the whole stream at once; otherwise chunks of 1..=255 bytes.
    let chunk = if first == 0 { usize::MAX } else { usize::from(first) };
    let (columns, schema) = layout();
    let mut dec = CopyDecoder::new(columns, schema).expect("the layout is valid");
    let mut fed = 0usize;
    for piece in stream.chunks(chunk.min(stream.len().max(1))) {
        if dec.feed(piece).is_err() {
            return;
        }
        fed += 1;
        if fed % 3 == 0 && dec.take_batch().is_err() {
            return;
        }
    }
    if dec.take_batch().is_err() {
        return;
    }
    let _ = dec.finish();
});
