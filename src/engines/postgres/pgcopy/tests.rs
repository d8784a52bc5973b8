//! encode∘decode identities on edge values, a stream made by a real PostgreSQL 15
//! (tests/data/pgcopy/), and damaged streams.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array,
    FixedSizeBinaryArray, Float32Array, Float64Array, Int16Array, Int32Array, Int32Builder,
    Int64Array, IntervalMonthDayNanoArray, LargeStringArray, ListBuilder, StringArray,
    StringBuilder, Time64MicrosecondArray, TimestampMicrosecondArray, TimestampNanosecondArray,
    UInt64Array,
};
use arrow::datatypes::{
    DataType, Field, IntervalMonthDayNano, IntervalUnit, Schema, SchemaRef, TimeUnit, i256,
};
use arrow::record_batch::RecordBatch;

use super::*;
use crate::types::ColumnType;

/// The canonical type a caller passes with `dt` (for a list, its element's).
fn canonical(dt: &DataType) -> ColumnType {
    match dt {
        DataType::Boolean => ColumnType::Boolean,
        DataType::Int16 => ColumnType::Int16,
        DataType::Int32 => ColumnType::Int32,
        DataType::Int64 => ColumnType::Int64,
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

fn columns(wires: &[Wire], schema: &Schema) -> Vec<(Wire, ColumnType)> {
    wires
        .iter()
        .zip(schema.fields())
        .map(|(w, f)| (w.clone(), canonical(f.data_type())))
        .collect()
}

fn encode_stream(wires: &[Wire], batch: &RecordBatch) -> Vec<u8> {
    let mut enc = CopyEncoder::new(columns(wires, &batch.schema())).unwrap();
    let mut out = Vec::new();
    CopyEncoder::header(&mut out);
    enc.encode(batch, 1, &mut out).unwrap();
    CopyEncoder::trailer(&mut out);
    out
}

/// Feeds `bytes` in chunks of `chunk` bytes and returns everything as one batch.
fn decode_stream(
    wires: &[Wire],
    schema: SchemaRef,
    bytes: &[u8],
    chunk: usize,
) -> Result<RecordBatch, CodecError> {
    let mut dec = CopyDecoder::new(columns(wires, &schema), schema.clone())?;
    for c in bytes.chunks(chunk.max(1)) {
        dec.feed(c)?;
    }
    dec.finish()?;
    let batch = dec
        .take_batch()?
        .unwrap_or_else(|| RecordBatch::new_empty(schema));
    assert_eq!(dec.take_batch()?.map(|b| b.num_rows()), None);
    Ok(batch)
}

fn one_column(wire: Wire, array: ArrayRef) -> (Vec<Wire>, RecordBatch) {
    let schema = Schema::new(vec![Field::new("c", array.data_type().clone(), true)]);
    let batch = RecordBatch::try_new(Arc::new(schema), vec![array]).unwrap();
    (vec![wire], batch)
}

/// encode∘decode is the identity, whole and byte by byte, and re-encoding gives the same bytes.
fn round_trip(wire: Wire, array: ArrayRef) -> Vec<u8> {
    let (wires, batch) = one_column(wire, array);
    let bytes = encode_stream(&wires, &batch);
    let whole = decode_stream(&wires, batch.schema(), &bytes, usize::MAX).unwrap();
    assert_eq!(
        whole.column(0).as_ref(),
        batch.column(0).as_ref(),
        "{wires:?}"
    );
    let bytewise = decode_stream(&wires, batch.schema(), &bytes, 1).unwrap();
    assert_eq!(bytewise, whole);
    assert_eq!(encode_stream(&wires, &whole), bytes);
    bytes
}

/// The value bytes of the single field of the first row of a one-column stream.
fn first_value(bytes: &[u8]) -> &[u8] {
    let len = i32::from_be_bytes(bytes[21..25].try_into().unwrap());
    &bytes[25..25 + usize::try_from(len).unwrap()]
}

#[test]
fn scalars_round_trip() {
    round_trip(
        Wire::Bool,
        Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
    );
    round_trip(
        Wire::Int2,
        Arc::new(Int16Array::from(vec![
            Some(i16::MIN),
            None,
            Some(0),
            Some(i16::MAX),
        ])),
    );
    round_trip(
        Wire::Int4,
        Arc::new(Int32Array::from(vec![
            Some(i32::MIN),
            None,
            Some(-1),
            Some(i32::MAX),
        ])),
    );
    round_trip(
        Wire::Int8,
        Arc::new(Int64Array::from(vec![
            Some(i64::MIN),
            None,
            Some(1),
            Some(i64::MAX),
        ])),
    );
    round_trip(Wire::Int8, Arc::new(Int64Array::from(Vec::<i64>::new())));
}

#[test]
fn floats_round_trip_bit_exact() {
    let f4 = [
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7fc0_0001),
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        0.0,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::MAX,
    ];
    let (wires, batch) = one_column(Wire::Float4, Arc::new(Float32Array::from(f4.to_vec())));
    let back = decode_stream(&wires, batch.schema(), &encode_stream(&wires, &batch), 3).unwrap();
    let back: Vec<u32> = back
        .column(0)
        .as_any()
        .downcast_ref::<Float32Array>()
        .unwrap()
        .values()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert_eq!(back, f4.iter().map(|v| v.to_bits()).collect::<Vec<_>>());

    let f8 = [
        f64::NAN,
        -f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        f64::from_bits(1),
        f64::MAX,
        0.1,
    ];
    let mut with_null: Vec<Option<f64>> = f8.iter().copied().map(Some).collect();
    with_null.push(None);
    let (wires, batch) = one_column(Wire::Float8, Arc::new(Float64Array::from(with_null)));
    let back = decode_stream(&wires, batch.schema(), &encode_stream(&wires, &batch), 5).unwrap();
    let back = back
        .column(0)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert!(back.is_null(f8.len()));
    for (i, v) in f8.iter().enumerate() {
        assert_eq!(back.value(i).to_bits(), v.to_bits());
    }
}

#[test]
fn numeric_text_round_trips_canonical_text() {
    let texts = [
        Some("0"),
        Some("0.00"),
        Some("-0.01"),
        Some("1.500"),
        Some("12345678901234567890.123456789"),
        Some("NaN"),
        Some("Infinity"),
        Some("-Infinity"),
        None,
        Some("0.000000000000000000010"),
        Some("100000000000000000000"),
        Some("9999"),
        Some("10000"),
        Some("-10000.0001"),
        Some("0.1"),
        Some(
            "123456789012345678901234567890123456789012345678901234567890.123456789012345678901234567890",
        ),
    ];
    round_trip(Wire::Numeric, Arc::new(StringArray::from(texts.to_vec())));
    round_trip(
        Wire::Numeric,
        Arc::new(LargeStringArray::from(texts.to_vec())),
    );
}

/// The bytes PostgreSQL 15's numeric_send gives for these values.
#[test]
fn numeric_bytes_match_numeric_send() {
    let cases = [
        ("NaN", "00000000c0000000"),
        ("Infinity", "00000000d0000020"),
        ("-Infinity", "00000000f0000020"),
        ("0", "0000000000000000"),
        ("0.00", "0000000000000002"),
        ("1.500", "000200000000000300011388"),
        ("-0.01", "0001ffff400000020064"),
        (
            "12345678901234567890.123456789",
            "000800040000000904d2162e23340d801ed204d2162e2328",
        ),
        ("0.00000000000000000001", "0001fffb000000140001"),
        ("100000000000000000000", "00010005000000000001"),
    ];
    for (text, hex) in cases {
        let bytes = round_trip(Wire::Numeric, Arc::new(StringArray::from(vec![text])));
        assert_eq!(hex::encode(first_value(&bytes)), hex, "{text}");
    }
    // Exponents and signs are read as numeric_in reads them, then printed canonically.
    for (input, canonical) in [
        ("1.5e3", "1500"),
        ("+2.50E-1", "0.250"),
        ("-0.00", "0.00"),
        (" 7 ", "7"),
        ("inf", "Infinity"),
    ] {
        let (wires, batch) = one_column(Wire::Numeric, Arc::new(StringArray::from(vec![input])));
        let back =
            decode_stream(&wires, batch.schema(), &encode_stream(&wires, &batch), 64).unwrap();
        let back = back
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(back.value(0), canonical, "{input}");
    }
}

#[test]
fn decimals_round_trip() {
    let p38 = 10i128.pow(38) - 1;
    let d = Decimal128Array::from(vec![
        Some(0),
        Some(-1),
        Some(10i128.pow(37) - 1),
        Some(p38),
        Some(-p38),
        None,
        Some(12_345_678_901_234_567_890),
    ])
    .with_precision_and_scale(38, 10)
    .unwrap();
    let bytes = round_trip(Wire::Numeric, Arc::new(d));
    // numeric(38,10) zero, as PostgreSQL sends it: no digits, dscale 10.
    assert_eq!(hex::encode(first_value(&bytes)), "000000000000000a");
    for (p, s) in [(38, 0), (38, 38), (12, 2), (5, -2), (9, 3), (1, 0), (20, 7)] {
        let max = 10i128.pow(u32::from(p)) - 1;
        let d = Decimal128Array::from(vec![0, 1, -1, max, -max, max / 7, 1500.min(max)])
            .with_precision_and_scale(p, s)
            .unwrap();
        round_trip(Wire::Numeric, Arc::new(d));
    }
    let big = i256::from_string(&"9".repeat(76)).unwrap();
    for (p, s) in [(76, 0), (76, 20), (60, 10), (76, 76), (50, 1)] {
        let max = i256::from_i128(10).wrapping_pow(u32::from(p)) - i256::ONE;
        let d = Decimal256Array::from(vec![
            Some(i256::ZERO),
            Some(i256::MINUS_ONE),
            Some(max),
            Some(-max),
            None,
            Some(i256::from_i128(123_456_789_012_345_678_901_234_567_890)),
        ])
        .with_precision_and_scale(p, s)
        .unwrap();
        round_trip(Wire::Numeric, Arc::new(d));
    }
    assert_eq!(big, i256::from_i128(10).wrapping_pow(76) - i256::ONE);
}

#[test]
fn decimal_decoding_is_exact_or_an_error() {
    let decode_into = |text: &str, dt: DataType| {
        let (wires, batch) =
            one_column(Wire::Numeric, Arc::new(StringArray::from(vec!["0", text])));
        let bytes = encode_stream(&wires, &batch);
        let schema = Arc::new(Schema::new(vec![Field::new("c", dt, true)]));
        decode_stream(&wires, schema, &bytes, 7)
    };
    let ok = |text: &str, p: u8, s: i8| -> i128 {
        let b = decode_into(text, DataType::Decimal128(p, s)).unwrap();
        b.column(0)
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap()
            .value(1)
    };
    assert_eq!(ok("1.500", 10, 2), 150);
    assert_eq!(ok("-0.01", 10, 2), -1);
    assert_eq!(ok("12300", 5, -2), 123);
    assert_eq!(ok("0.0000", 1, 0), 0);
    assert_eq!(
        ok("99999999999999999999999999999999999999", 38, 0),
        10i128.pow(38) - 1
    );
    for (text, p, s) in [
        ("1.234", 10, 2),
        ("NaN", 10, 2),
        ("Infinity", 10, 2),
        ("-Infinity", 38, 0),
        ("1000", 3, 0),
        ("12345", 5, -2),
        ("0.00001", 38, 4),
        ("100000000000000000000000000000000000000", 38, 0),
        ("1e100", 38, 0),
    ] {
        let e = decode_into(text, DataType::Decimal128(p, s)).unwrap_err();
        assert_eq!((e.row, e.column), (2, Some(0)), "{text}: {e}");
        assert!(e.to_string().contains("decimal"), "{e}");
    }
    let e = decode_into("NaN", DataType::Decimal256(60, 10)).unwrap_err();
    assert!(e.message.contains("NaN"), "{e}");
}

/// The 64-bit shortcut of numeric -> decimal gives what the general way gives, value or
/// error word for word, over values of one to six digit groups (trailing zero groups,
/// digits that are multiples of 10, both signs) and precisions and scales around its
/// edges (10^16, 10^18, 10^19, u64 and i64 overflow, dropped places).
#[test]
fn numeric_to_decimal_shortcut_agrees_with_the_general_way() {
    use super::numeric::NumericView;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let (mut fast_ok, mut checked) = (0, 0);
    for _ in 0..40_000 {
        let groups = 1 + usize::try_from(next(6)).unwrap();
        let digits: Vec<u16> = (0..groups)
            .map(|_| match next(6) {
                0 => 0,
                1 => 9999,
                2 => 10 * u16::try_from(next(1000)).unwrap(),
                3 => 1000 * u16::try_from(next(10)).unwrap(),
                _ => u16::try_from(next(10_000)).unwrap(),
            })
            .collect();
        let weight = i16::try_from(next(14)).unwrap() - 6;
        let sign = if next(2) == 0 { 0x0000 } else { 0x4000 };
        let bytes = numeric_bytes(u16::try_from(groups).unwrap(), weight, sign, 0, &digits);
        let v = NumericView::parse(&bytes).unwrap();
        let p = [1u8, 2, 4, 9, 12, 16, 17, 18, 19, 20, 24, 38][usize::try_from(next(12)).unwrap()];
        let sc = [-4i8, -1, 0, 1, 2, 3, 4, 6, 8, 12][usize::try_from(next(10)).unwrap()];
        let fast = v.convert::<i128>(p, sc, true);
        let slow = v.convert::<i128>(p, sc, false);
        match (&fast, &slow) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b, "{digits:?} w{weight} s{sign:x} ({p},{sc})");
                fast_ok += 1;
            }
            (Err(a), Err(b)) => assert_eq!(
                (&a.message, a.needs_text),
                (&b.message, b.needs_text),
                "{digits:?} w{weight} ({p},{sc})"
            ),
            _ => panic!("{digits:?} w{weight} s{sign:x} ({p},{sc}): {fast:?} against {slow:?}"),
        }
        let wide = v
            .convert::<i256>(p.max(39), sc, true)
            .map_err(|e| e.message);
        let wide_slow = v
            .convert::<i256>(p.max(39), sc, false)
            .map_err(|e| e.message);
        assert_eq!(wide, wide_slow, "{digits:?} w{weight} (i256, {sc})");
        checked += 1;
    }
    // Both outcomes were met many times: the comparison is not all errors.
    assert!(
        fast_ok > 5_000 && checked - fast_ok > 5_000,
        "{fast_ok} of {checked}"
    );
}

/// A one-row, one-column stream carrying `value` as the field's bytes.
fn single_value_stream(value: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    CopyEncoder::header(&mut s);
    s.extend_from_slice(&1i16.to_be_bytes());
    s.extend_from_slice(&i32::try_from(value.len()).unwrap().to_be_bytes());
    s.extend_from_slice(value);
    CopyEncoder::trailer(&mut s);
    s
}

fn decode_single(wire: Wire, dt: DataType, value: &[u8]) -> Result<RecordBatch, CodecError> {
    let schema = Arc::new(Schema::new(vec![Field::new("c", dt, true)]));
    decode_stream(&[wire], schema, &single_value_stream(value), 4096)
}

/// numeric_send's bytes for a value: header words, then base-10000 digits.
fn numeric_bytes(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + 2 * digits.len());
    for w in [ndigits, weight.cast_unsigned(), sign, dscale] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    for d in digits {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

/// `9e131071 + 1`, `10::numeric ^ 131071 + 0.5` and `-(9e131071 + 1)` have 32768, 32769 and
/// 32768 digit groups: numeric_send writes the count with the high bit set (0x8000, 0x8001),
/// which numeric_recv reads as uint16. These are the bytes PostgreSQL 15.20 sends for them
/// (checked against `\copy (SELECT …) TO … (FORMAT binary)` byte for byte).
fn numerics_over_32767_groups() -> Vec<(String, Vec<u8>)> {
    let mut nine = vec![9000u16];
    nine.extend(std::iter::repeat_n(0, 32766));
    nine.push(1);
    let mut half = vec![1000u16];
    half.extend(std::iter::repeat_n(0, 32767));
    half.push(5000);
    let nine_text = format!("9{}1", "0".repeat(131_070));
    vec![
        (
            nine_text.clone(),
            numeric_bytes(0x8000, 32767, 0x0000, 0, &nine),
        ),
        (
            format!("1{}.5{}", "0".repeat(131_071), "0".repeat(15)),
            numeric_bytes(0x8001, 32767, 0x0000, 16, &half),
        ),
        (
            format!("-{nine_text}"),
            numeric_bytes(0x8000, 32767, 0x4000, 0, &nine),
        ),
    ]
}

#[test]
fn numeric_digit_count_is_unsigned() {
    for (text, bytes) in numerics_over_32767_groups() {
        // Decoding PostgreSQL's bytes gives its text ...
        let b = decode_single(Wire::Numeric, DataType::Utf8, &bytes).unwrap();
        let got = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(got.value(0).len(), text.len());
        assert!(got.value(0) == text, "{}…", &text[..8]);
        // ... and encoding the text gives PostgreSQL's bytes.
        let (wires, batch) = one_column(
            Wire::Numeric,
            Arc::new(StringArray::from(vec![text.as_str()])),
        );
        let stream = encode_stream(&wires, &batch);
        assert!(first_value(&stream) == bytes.as_slice(), "{}…", &text[..8]);
        assert_eq!(stream, single_value_stream(&bytes));
    }
    // numeric_recv takes any count up to 65535 (zeros normalise away).
    let zeros = numeric_bytes(0xffff, 0, 0, 0, &[0; 65_535]);
    let b = decode_single(Wire::Numeric, DataType::Utf8, &zeros).unwrap();
    let got = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(got.value(0), "0");
    // A count the bytes do not back is still an error, naming the unsigned count.
    let e = decode_single(
        Wire::Numeric,
        DataType::Utf8,
        &numeric_bytes(0x8000, 32767, 0, 0, &[1]),
    )
    .unwrap_err();
    assert!(e.message.contains("32768 digits"), "{e}");
    assert!(!e.needs_text);
    // Too big for a decimal: an ordinary error, not one the text form is asked to fix.
    let (_, nine) = &numerics_over_32767_groups()[0];
    let e = decode_single(Wire::Numeric, DataType::Decimal128(38, 0), nine).unwrap_err();
    assert!(e.message.contains("decimal(38,0)") && !e.needs_text, "{e}");
}

#[test]
fn numerics_over_32767_groups_round_trip() {
    let texts: Vec<String> = numerics_over_32767_groups()
        .into_iter()
        .map(|(t, _)| t)
        .chain([
            // The extremes numeric_in and make_result allow: 131072 digits before the point,
            // 16383 after, together 36864 groups.
            format!("{}.{}", "9".repeat(131_072), "9".repeat(16_383)),
            format!("-{}.{}", "1".repeat(131_072), "7".repeat(16_383)),
            format!("1{}", "0".repeat(131_071)),
            format!("0.{}1", "0".repeat(16_382)),
        ])
        .collect();
    let bytes = round_trip(
        Wire::Numeric,
        Arc::new(LargeStringArray::from(
            texts.iter().map(String::as_str).collect::<Vec<_>>(),
        )),
    );
    // The fourth value: ndigits 36864 = 0x9000, weight 32767, dscale 16383.
    let fourth = 19 + 3 * (2 + 4 + 8) + 2 * (32768 + 32769 + 32768) + 2 + 4;
    assert_eq!(hex::encode(&bytes[fourth..fourth + 8]), "90007fff00003fff");
}

#[test]
fn numeric_text_within_postgresql_limits_encodes() {
    let encode = |text: &str| {
        let (wires, batch) = one_column(Wire::Numeric, Arc::new(StringArray::from(vec![text])));
        let mut enc = CopyEncoder::new(columns(&wires, &batch.schema())).unwrap();
        let mut out = Vec::new();
        enc.encode(&batch, 1, &mut out).map(|()| out)
    };
    let value = |text: &str| hex::encode(&encode(text).unwrap()[6..]);
    // numeric_in takes exponents far beyond 1000; the value must fit make_result's limits.
    assert_eq!(value("1e131071"), "00017fff0000000003e8");
    assert_eq!(
        value("1e131071"),
        value(&format!("1{}", "0".repeat(131_071)))
    );
    assert_eq!(value("1e-16383"), "0001f00000003fff000a"); // as PostgreSQL 15 sends it
    assert_eq!(value("1E+1001"), value(&format!("1{}", "0".repeat(1001))));
    assert_eq!(value("0e200000"), "0000000000000000");
    for text in [
        "1e131072",
        "1e-16384",
        "0e-16384",
        "1e99999999999999999999",
        "1e1073741823",
        &format!("1{}", "0".repeat(131_072)),
        &format!("0.{}", "0".repeat(16_384)),
    ] {
        let e = encode(text).unwrap_err();
        assert!(
            e.message.contains("range")
                || e.message.contains("overflows")
                || e.message.contains("decimal places"),
            "{}: {e}",
            &text[..text.len().min(24)]
        );
    }
    for text in ["1e", "1e+", "1e1.5", "1e 5", "e5"] {
        assert!(
            encode(text).unwrap_err().message.contains("not a number"),
            "{text}"
        );
    }
}

#[test]
fn needs_text_marks_exactly_what_text_can_carry() {
    let hex = |h: &str| hex::decode(h).unwrap();
    let int4_list = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
    let int4_arr = || Wire::Array {
        elem: Box::new(Wire::Int4),
        elem_oid: 23,
    };
    let marked = |r: Result<RecordBatch, CodecError>, what: &str| {
        let e = r.expect_err(what);
        assert!(e.needs_text, "{what}: {e}");
        assert_eq!((e.row, e.column), (1, Some(0)), "{what}");
        e
    };
    let unmarked = |r: Result<RecordBatch, CodecError>, what: &str| {
        let e = r.expect_err(what);
        assert!(!e.needs_text, "{what}: {e}");
        e
    };
    // NaN and ±Infinity in a decimal column (numeric_send's bytes).
    for (name, value) in [
        ("NaN", "00000000c0000000"),
        ("Infinity", "00000000d0000020"),
        ("-Infinity", "00000000f0000020"),
    ] {
        for dt in [DataType::Decimal128(10, 2), DataType::Decimal256(60, 10)] {
            let e = marked(
                decode_single(Wire::Numeric, dt.clone(), &hex(value)),
                &format!("{name} into {dt}"),
            );
            assert!(
                e.message.contains(name) && e.message.contains("decimal"),
                "{e}"
            );
        }
        // The text form takes them.
        assert!(decode_single(Wire::Numeric, DataType::Utf8, &hex(value)).is_ok());
    }
    // ... also as an element of a list of decimals: array_send('{1,NaN}'::numeric(10,2)[]).
    let dec_list = DataType::List(Arc::new(Field::new(
        "item",
        DataType::Decimal128(10, 2),
        true,
    )));
    let num_arr = Wire::Array {
        elem: Box::new(Wire::Numeric),
        elem_oid: 1700,
    };
    let e = marked(
        decode_single(
            num_arr.clone(),
            dec_list.clone(),
            &hex(
                "0000000100000000000006a400000002000000010000000a000100000000000200010000000800000000c0000000",
            ),
        ),
        "NaN element",
    );
    assert!(
        e.message.contains("array element 2") && e.message.contains("NaN"),
        "{e}"
    );
    // Arrays a List cannot carry (array_send's bytes): '[0:2]={1,2,3}', '{{1,2},{3,4}}',
    // '{{{NaN}}}'::numeric[].
    let e = marked(
        decode_single(
            int4_arr(),
            int4_list.clone(),
            &hex(
                "0000000100000000000000170000000300000000000000040000000100000004000000020000000400000003",
            ),
        ),
        "lower bound 0",
    );
    assert!(e.message.contains("lower bound 0"), "{e}");
    let e = marked(
        decode_single(
            int4_arr(),
            int4_list.clone(),
            &hex(
                "000000020000000000000017000000020000000100000002000000010000000400000001000000040000000200000004000000030000000400000004",
            ),
        ),
        "2 dimensions",
    );
    assert!(e.message.contains("2-dimensional"), "{e}");
    marked(
        decode_single(
            num_arr,
            dec_list,
            &hex(
                "0000000300000000000006a40000000100000001000000010000000100000001000000010000000800000000c0000000",
            ),
        ),
        "3 dimensions",
    );
    // Ordinary errors are not marked.
    for (text, p, s) in [("1.234", 10, 2), ("1000", 3, 0), ("1e100", 38, 0)] {
        let (wires, batch) = one_column(Wire::Numeric, Arc::new(StringArray::from(vec![text])));
        let schema = Arc::new(Schema::new(vec![Field::new(
            "c",
            DataType::Decimal128(p, s),
            true,
        )]));
        unmarked(
            decode_stream(&wires, schema, &encode_stream(&wires, &batch), 64),
            text,
        );
    }
    for (what, value) in [
        ("7 dimensions", "000000070000000000000017"),
        ("negative dimensions", "ffffffff0000000000000017"),
        (
            "negative length",
            "000000010000000000000017ffffffff00000000",
        ),
        ("truncated", "0000000100000000000000170000000100000000"),
        (
            "2-D, truncated",
            "000000020000000000000017000000020000000100000002000000010000000400000001",
        ),
        (
            "lower bound 0, trailing bytes",
            "00000001000000000000001700000001000000000000000400000007ff",
        ),
        (
            "2-D, negative dimension",
            "00000002000000000000001700000002000000010000fffe00000001",
        ),
    ] {
        unmarked(
            decode_single(int4_arr(), int4_list.clone(), &hex(value)),
            what,
        );
    }
    unmarked(
        decode_single(
            Wire::Numeric,
            DataType::Decimal128(10, 2),
            &hex("0000000012340000"),
        ),
        "bad numeric sign",
    );
    unmarked(
        decode_single(Wire::Text, DataType::Utf8, &[0xff, 0xfe]),
        "invalid UTF-8",
    );
    unmarked(
        decode_single(Wire::Int4, DataType::Int32, &[0, 0, 1]),
        "short int4",
    );
    let schema = Arc::new(Schema::new(vec![Field::new("c", DataType::Int32, false)]));
    let mut s = Vec::new();
    CopyEncoder::header(&mut s);
    s.extend_from_slice(&[0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    unmarked(decode_stream(&[Wire::Int4], schema, &s, 100), "NOT NULL");
    unmarked(
        decode_stream(
            &[Wire::Int4],
            Arc::new(Schema::new(vec![Field::new("c", DataType::Int32, true)])),
            b"PGCOPY\n\xff\r\n\0garbage",
            100,
        ),
        "bad header",
    );
}

#[test]
fn text_bytea_uuid_round_trip() {
    let planes: String = [
        '\u{1}',
        'é',
        '€',
        '\u{FFFD}',
        '𝄞',
        '𠀀',
        '\u{3134A}',
        '\u{E0001}',
        '\u{F0000}',
        '\u{10FFFF}',
    ]
    .iter()
    .collect();
    let texts = vec![
        Some(planes.as_str()),
        Some(""),
        None,
        Some("ab   "),
        Some("x\ty\nz\\"),
    ];
    round_trip(Wire::Text, Arc::new(StringArray::from(texts.clone())));
    round_trip(Wire::Text, Arc::new(LargeStringArray::from(texts.clone())));
    round_trip(
        Wire::Jsonb,
        Arc::new(StringArray::from(vec![
            Some(r#"{"a": [1, 2], "b": 1}"#),
            None,
            Some("[]"),
        ])),
    );
    let bytes = round_trip(Wire::Jsonb, Arc::new(StringArray::from(vec!["{}"])));
    assert_eq!(first_value(&bytes), b"\x01{}");
    round_trip(
        Wire::Bytea,
        Arc::new(BinaryArray::from(vec![
            Some(&[0u8, 0, 255, 0][..]),
            Some(&[][..]),
            None,
            Some(&[0u8][..]),
        ])),
    );
    let u = FixedSizeBinaryArray::try_from_sparse_iter_with_size(
        vec![
            Some([0u8; 16]),
            None,
            Some([0xff; 16]),
            Some(*uuid::Uuid::new_v4().as_bytes()),
        ]
        .into_iter(),
        16,
    )
    .unwrap();
    round_trip(Wire::Uuid, Arc::new(u));
}

#[test]
fn temporal_round_trip() {
    let days = vec![
        Some(0),
        Some(-719_162),      // 0001-01-01
        Some(-2_440_588),    // 4714-11-24 BC, Julian day 0, PostgreSQL's first date
        Some(2_145_042_905), // 5874897-12-31, its last
        Some(i32::MAX),      // infinity
        Some(i32::MIN),      // -infinity
        None,
    ];
    let bytes = round_trip(Wire::Date, Arc::new(Date32Array::from(days)));
    assert_eq!(hex::encode(&bytes[21..29]), "00000004ffffd533"); // 1970-01-01 is day -10957
    let micros = vec![
        Some(0),
        Some(1),
        Some(-1),
        Some(-210_866_803_200_000_000), // 4714-11-24 00:00:00 BC
        Some(1_719_750_896_123_456),
        Some(i64::MAX),
        Some(i64::MIN),
        None,
    ];
    round_trip(
        Wire::Timestamp,
        Arc::new(TimestampMicrosecondArray::from(micros.clone())),
    );
    round_trip(
        Wire::Timestamptz,
        Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC")),
    );
    round_trip(
        Wire::Time,
        Arc::new(Time64MicrosecondArray::from(vec![
            Some(0),
            None,
            Some(43_200_500_000),
            Some(86_400_000_000),
        ])),
    );
    round_trip(
        Wire::Interval,
        Arc::new(IntervalMonthDayNanoArray::from(vec![
            Some(IntervalMonthDayNano::new(-10, -3, 14_706_789_000_000)),
            Some(IntervalMonthDayNano::new(0, 0, 0)),
            None,
            Some(IntervalMonthDayNano::new(i32::MIN + 1, i32::MAX, -1000)),
            Some(IntervalMonthDayNano::new(1, -2, i64::MAX / 1000 * 1000)),
            Some(IntervalMonthDayNano::new(i32::MAX, i32::MAX, i64::MAX)),
            Some(IntervalMonthDayNano::new(i32::MIN, i32::MIN, i64::MIN)),
        ])),
    );
}

fn int_lists() -> ArrayRef {
    let mut b = ListBuilder::new(Int32Builder::new());
    b.append_value([Some(1), None, Some(3)]);
    b.append_value([]);
    b.append_null();
    b.append_value([Some(i32::MIN), Some(i32::MAX)]);
    b.append_value([None]);
    Arc::new(b.finish())
}

fn text_lists() -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    b.append_value([Some("a"), None, Some(""), Some("ü")]);
    b.append_value(Vec::<Option<&str>>::new());
    b.append_null();
    b.append_value([None::<&str>]);
    b.append_value([Some("x y"), Some("\"q\""), Some("{}"), Some("NULL")]);
    Arc::new(b.finish())
}

#[test]
fn arrays_round_trip() {
    let int4 = Wire::Array {
        elem: Box::new(Wire::Int4),
        elem_oid: 23,
    };
    let bytes = round_trip(int4, int_lists());
    // ARRAY[1,NULL,3]::int4[] exactly as array_send writes it.
    assert_eq!(
        hex::encode(first_value(&bytes)),
        "00000001000000010000001700000003000000010000000400000001ffffffff0000000400000003"
    );
    round_trip(
        Wire::Array {
            elem: Box::new(Wire::Text),
            elem_oid: 25,
        },
        text_lists(),
    );
    // A sliced list array encodes only its own rows.
    let (wires, batch) = one_column(
        Wire::Array {
            elem: Box::new(Wire::Int4),
            elem_oid: 23,
        },
        int_lists().slice(3, 2),
    );
    let back = decode_stream(&wires, batch.schema(), &encode_stream(&wires, &batch), 2).unwrap();
    assert_eq!(back.column(0).as_ref(), batch.column(0).as_ref());
}

#[test]
fn encoder_accepts_cross_engine_types() {
    let check = |wire: Wire, input: ArrayRef, expect: ArrayRef| {
        let (wires, batch) = one_column(wire, input);
        let bytes = encode_stream(&wires, &batch);
        let schema = Arc::new(Schema::new(vec![Field::new(
            "c",
            expect.data_type().clone(),
            true,
        )]));
        let back = decode_stream(&wires, schema, &bytes, 9).unwrap();
        assert_eq!(back.column(0).as_ref(), expect.as_ref());
    };
    check(
        Wire::Int8,
        Arc::new(Int32Array::from(vec![Some(-5), None])),
        Arc::new(Int64Array::from(vec![Some(-5), None])),
    );
    check(
        Wire::Int8,
        Arc::new(UInt64Array::from(vec![0, i64::MAX.unsigned_abs()])),
        Arc::new(Int64Array::from(vec![0, i64::MAX])),
    );
    check(
        Wire::Int4,
        Arc::new(Int64Array::from(vec![7, -7])),
        Arc::new(Int32Array::from(vec![7, -7])),
    );
    check(
        Wire::Int4,
        Arc::new(Int16Array::from(vec![7, -7])),
        Arc::new(Int32Array::from(vec![7, -7])),
    );
    check(
        Wire::Numeric,
        Arc::new(Int64Array::from(vec![i64::MIN, 0, 10_000])),
        Arc::new(StringArray::from(vec![
            "-9223372036854775808",
            "0",
            "10000",
        ])),
    );
    check(
        Wire::Numeric,
        Arc::new(UInt64Array::from(vec![u64::MAX])),
        Arc::new(StringArray::from(vec!["18446744073709551615"])),
    );
    check(
        Wire::Numeric,
        Arc::new(
            Decimal128Array::from(vec![1500, -1])
                .with_precision_and_scale(10, 3)
                .unwrap(),
        ),
        Arc::new(StringArray::from(vec!["1.500", "-0.001"])),
    );
    check(
        Wire::Numeric,
        Arc::new(StringArray::from(vec!["12.30", "-0.5"])),
        Arc::new(
            Decimal128Array::from(vec![1230, -50])
                .with_precision_and_scale(12, 2)
                .unwrap(),
        ),
    );
    check(
        Wire::Timestamptz,
        Arc::new(TimestampNanosecondArray::from(vec![1_000, -2_000]).with_timezone("Europe/Paris")),
        Arc::new(TimestampMicrosecondArray::from(vec![1, -2]).with_timezone("UTC")),
    );
    check(
        Wire::Uuid,
        Arc::new(StringArray::from(vec![
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ])),
        Arc::new(
            FixedSizeBinaryArray::try_from_iter(
                vec![
                    uuid::Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
                        .unwrap()
                        .into_bytes(),
                ]
                .into_iter(),
            )
            .unwrap(),
        ),
    );
    check(
        Wire::Float8,
        Arc::new(Float32Array::from(vec![0.1f32])),
        Arc::new(Float64Array::from(vec![f64::from(0.1f32)])),
    );
}

#[test]
fn encoder_refuses_what_postgresql_cannot_take() {
    let refuse = |wire: Wire, array: ArrayRef, bad_index: u64, needle: &str| {
        let (wires, batch) = one_column(wire, array);
        let mut enc = CopyEncoder::new(columns(&wires, &batch.schema())).unwrap();
        let mut out = b"kept".to_vec();
        let e = enc.encode(&batch, 100, &mut out).unwrap_err();
        assert_eq!(out, b"kept", "output is left as it was");
        assert_eq!((e.row, e.column), (100 + bad_index, Some(0)), "{e}");
        assert!(e.message.contains(needle), "{e} lacks {needle:?}");
    };
    refuse(
        Wire::Text,
        Arc::new(StringArray::from(vec!["ok", "a\0b"])),
        1,
        "NUL",
    );
    refuse(
        Wire::Jsonb,
        Arc::new(StringArray::from(vec!["\"\0\""])),
        0,
        "NUL",
    );
    refuse(
        Wire::Int8,
        Arc::new(UInt64Array::from(vec![1, u64::MAX])),
        1,
        "out of range",
    );
    refuse(
        Wire::Int4,
        Arc::new(Int64Array::from(vec![1, 2, i64::from(i32::MAX) + 1])),
        2,
        "int4",
    );
    refuse(
        Wire::Int2,
        Arc::new(Int32Array::from(vec![40_000])),
        0,
        "int2",
    );
    refuse(
        Wire::Interval,
        Arc::new(IntervalMonthDayNanoArray::from(vec![
            IntervalMonthDayNano::new(0, 0, 1500),
        ])),
        0,
        "microseconds",
    );
    refuse(
        Wire::Date,
        Arc::new(Date32Array::from(vec![0, -2_440_589])),
        1,
        "range",
    );
    refuse(
        Wire::Date,
        Arc::new(Date32Array::from(vec![2_145_042_906])),
        0,
        "range",
    );
    refuse(
        Wire::Timestamp,
        Arc::new(TimestampNanosecondArray::from(vec![1500])),
        0,
        "microseconds",
    );
    refuse(
        Wire::Timestamp,
        Arc::new(TimestampMicrosecondArray::from(vec![
            -210_866_803_200_000_001,
        ])),
        0,
        "range",
    );
    refuse(
        Wire::Time,
        Arc::new(Time64MicrosecondArray::from(vec![86_400_000_001])),
        0,
        "24:00:00",
    );
    refuse(
        Wire::Numeric,
        Arc::new(StringArray::from(vec!["1", "12abc"])),
        1,
        "not a number",
    );
    refuse(
        Wire::Numeric,
        Arc::new(StringArray::from(vec!["1e99999", "1e131072"])),
        1,
        "range",
    );
    refuse(
        Wire::Uuid,
        Arc::new(StringArray::from(vec!["nope"])),
        0,
        "uuid",
    );
    refuse(
        Wire::Bool,
        Arc::new(Int32Array::from(vec![1])),
        0,
        "cannot encode",
    );
    let mut b = ListBuilder::new(StringBuilder::new());
    b.append_value([Some("fine")]);
    b.append_value([Some("x"), Some("\0")]);
    refuse(
        Wire::Array {
            elem: Box::new(Wire::Text),
            elem_oid: 25,
        },
        Arc::new(b.finish()),
        1,
        "element 2",
    );
}

// ---- the stream PostgreSQL made (tests/data/pgcopy/all_wires.*) ----

fn fixture() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/pgcopy/all_wires.copy"
    );
    std::fs::read(path).expect("tests/data/pgcopy/all_wires.copy")
}

fn fixture_layout() -> (Vec<Wire>, SchemaRef) {
    let list = |w: Wire, elem: DataType| {
        let oid = default_oid(&w);
        (
            Wire::Array {
                elem: Box::new(w),
                elem_oid: oid,
            },
            DataType::List(Arc::new(Field::new("item", elem, true))),
        )
    };
    let us = |tz: Option<&str>| DataType::Timestamp(TimeUnit::Microsecond, tz.map(Arc::from));
    let cols = vec![
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
        (
            "iv",
            Wire::Interval,
            DataType::Interval(IntervalUnit::MonthDayNano),
        ),
        ("u", Wire::Uuid, DataType::FixedSizeBinary(16)),
    ];
    let mut wires = Vec::new();
    let mut fields = Vec::new();
    for (name, w, dt) in cols {
        wires.push(w);
        fields.push(Field::new(name, dt, true));
    }
    for (name, (w, dt)) in [
        ("ai", list(Wire::Int4, DataType::Int32)),
        ("at", list(Wire::Text, DataType::Utf8)),
        ("an", list(Wire::Numeric, DataType::Utf8)),
    ] {
        wires.push(w);
        fields.push(Field::new(name, dt, true));
    }
    (wires, Arc::new(Schema::new(fields)))
}

#[test]
fn postgresql_stream_decodes_to_the_expected_values() {
    let (wires, schema) = fixture_layout();
    let bytes = fixture();
    let batch = decode_stream(&wires, schema.clone(), &bytes, usize::MAX).unwrap();
    assert_eq!(batch.num_rows(), 5);
    let col = |name: &str| batch.column_by_name(name).unwrap().as_ref();
    let same = |name: &str, expect: &dyn Array| assert_eq!(col(name), expect, "column {name}");

    same(
        "b",
        &BooleanArray::from(vec![Some(true), Some(false), Some(true), Some(false), None]),
    );
    same(
        "i2",
        &Int16Array::from(vec![Some(1), Some(i16::MIN), Some(i16::MAX), Some(0), None]),
    );
    same(
        "i4",
        &Int32Array::from(vec![Some(2), Some(i32::MIN), Some(i32::MAX), Some(0), None]),
    );
    same(
        "i8",
        &Int64Array::from(vec![Some(3), Some(i64::MIN), Some(i64::MAX), Some(0), None]),
    );
    let f4 = col("f4").as_any().downcast_ref::<Float32Array>().unwrap();
    let f4: Vec<Option<u32>> = f4.iter().map(|v| v.map(f32::to_bits)).collect();
    assert_eq!(
        f4,
        vec![
            Some(1.5f32.to_bits()),
            Some(f32::NEG_INFINITY.to_bits()),
            Some(0x7fc0_0000),
            Some((-0.0f32).to_bits()),
            None
        ]
    );
    let f8 = col("f8").as_any().downcast_ref::<Float64Array>().unwrap();
    let f8: Vec<Option<u64>> = f8.iter().map(|v| v.map(f64::to_bits)).collect();
    assert_eq!(
        f8,
        vec![
            Some(2.25f64.to_bits()),
            Some((-0.0f64).to_bits()),
            Some(f64::INFINITY.to_bits()),
            Some(0x7ff8_0000_0000_0000),
            None
        ]
    );
    same(
        "n",
        &StringArray::from(vec![
            Some("1.500"),
            Some("NaN"),
            Some("Infinity"),
            Some("-Infinity"),
            None,
        ]),
    );
    same(
        "n12",
        &Decimal128Array::from(vec![
            Some(1230),
            Some(-999_999_999_999),
            Some(0),
            Some(-1),
            None,
        ])
        .with_precision_and_scale(12, 2)
        .unwrap(),
    );
    let p38 = 10i128.pow(38) - 1;
    same(
        "n38",
        &Decimal128Array::from(vec![
            Some(10_000_000_000),
            Some(-p38),
            Some(p38),
            Some(-1),
            None,
        ])
        .with_precision_and_scale(38, 10)
        .unwrap(),
    );
    let p60 = i256::from_string(&"9".repeat(60)).unwrap();
    same(
        "n60",
        &Decimal256Array::from(vec![
            Some(i256::from_string("123456789012345678901234567890").unwrap()),
            Some(-p60),
            Some(i256::ZERO),
            Some(i256::ONE),
            None,
        ])
        .with_precision_and_scale(60, 10)
        .unwrap(),
    );
    same(
        "t",
        &StringArray::from(vec![
            Some("hello"),
            Some("\u{1} é € 𝄞 𠀀 \u{E0001} \u{10FFFF}"),
            Some(""),
            Some("bpchar kept: "),
            None,
        ]),
    );
    same(
        "bp",
        &StringArray::from(vec![
            Some("ab   "),
            Some("     "),
            Some("abcde"),
            Some("  x  "),
            None,
        ]),
    );
    same(
        "vc",
        &StringArray::from(vec![Some("vc"), Some(""), Some("x   "), Some("ü"), None]),
    );
    same(
        "jb",
        &StringArray::from(vec![
            Some(r#"{"a": [1, 2], "b": 1}"#),
            Some("[]"),
            Some(r#"{"a": null, "b": "é", "c": 1.50}"#),
            Some("100"),
            None,
        ]),
    );
    same(
        "js",
        &StringArray::from(vec![
            Some(r#"{"b":1,"a":[1,2]}"#),
            Some(r#" { "a" : 1 } "#),
            Some("null"),
            Some(r#"{"dup":1,"dup":2}"#),
            None,
        ]),
    );
    same(
        "by",
        &BinaryArray::from(vec![
            Some(&[0u8, 0xff, 0][..]),
            Some(&[][..]),
            Some(&[0u8][..]),
            Some(&[0xde, 0xad, 0xbe, 0xef][..]),
            None,
        ]),
    );
    same(
        "d",
        &Date32Array::from(vec![
            Some(19_782),
            Some(-2_440_588),
            Some(i32::MAX),
            Some(-719_162),
            None,
        ]),
    );
    same(
        "ts",
        &TimestampMicrosecondArray::from(vec![
            Some(1_719_750_896_123_456),
            Some(-210_866_803_200_000_000),
            Some(i64::MAX),
            Some(-62_135_596_800_000_000),
            None,
        ]),
    );
    same(
        "tz",
        &TimestampMicrosecondArray::from(vec![
            Some(1_719_743_696_123_456),
            Some(i64::MIN),
            Some(i64::MAX),
            Some(946_684_799_999_999),
            None,
        ])
        .with_timezone("UTC"),
    );
    same(
        "tm",
        &Time64MicrosecondArray::from(vec![
            Some(86_399_999_999),
            Some(0),
            Some(86_400_000_000),
            Some(43_200_500_000),
            None,
        ]),
    );
    same(
        "iv",
        &IntervalMonthDayNanoArray::from(vec![
            Some(IntervalMonthDayNano::new(-10, -3, 14_706_789_000_000)),
            Some(IntervalMonthDayNano::new(0, 0, 0)),
            Some(IntervalMonthDayNano::new(1, 2, 1000)),
            Some(IntervalMonthDayNano::new(-2_136_000_000, -3, -1000)),
            None,
        ]),
    );
    let a0 = uuid::Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        .unwrap()
        .into_bytes();
    same(
        "u",
        &FixedSizeBinaryArray::try_from_sparse_iter_with_size(
            vec![Some(a0), Some([0; 16]), Some([0xff; 16]), Some(a0), None].into_iter(),
            16,
        )
        .unwrap(),
    );
    let mut ai = ListBuilder::new(Int32Builder::new());
    ai.append_value([Some(1), None, Some(3)]);
    ai.append_value([]);
    ai.append_null();
    ai.append_value([Some(i32::MAX), Some(i32::MIN)]);
    ai.append_null();
    same("ai", &ai.finish());
    let mut at = ListBuilder::new(StringBuilder::new());
    at.append_value([Some("a"), None, Some(""), Some("ü")]);
    at.append_value(Vec::<Option<&str>>::new());
    at.append_value([None::<&str>]);
    at.append_value([Some("x y"), Some("\"q\""), Some("{}"), Some("NULL")]);
    at.append_null();
    same("at", &at.finish());
    let mut an = ListBuilder::new(StringBuilder::new());
    an.append_value([Some("1.5"), None, Some("NaN")]);
    an.append_value(Vec::<Option<&str>>::new());
    an.append_null();
    an.append_value([
        Some("-0.01"),
        Some("12345678901234567890.123456789"),
        Some("0.000000000000000000010"),
        Some("100000000000000000000"),
        Some("-Infinity"),
    ]);
    an.append_null();
    same("an", &an.finish());
}

#[test]
fn postgresql_stream_re_encodes_byte_for_byte() {
    let (wires, schema) = fixture_layout();
    let bytes = fixture();
    let batch = decode_stream(&wires, schema, &bytes, 4096).unwrap();
    assert_eq!(encode_stream(&wires, &batch), bytes);
}

#[test]
fn any_chunking_gives_the_same_batch() {
    let (wires, schema) = fixture_layout();
    let bytes = fixture();
    let whole = decode_stream(&wires, schema.clone(), &bytes, usize::MAX).unwrap();
    for chunk in [1, 2, 3, 5, 7, 13, 19, 20, 64, 255] {
        let b = decode_stream(&wires, schema.clone(), &bytes, chunk).unwrap();
        assert_eq!(b, whole, "chunk {chunk}");
    }
    // Uneven chunks, with batches taken in between.
    let mut dec = CopyDecoder::new(columns(&wires, &schema), schema.clone()).unwrap();
    let mut batches = Vec::new();
    let mut pos = 0;
    for step in (1..).cycle() {
        if pos >= bytes.len() {
            break;
        }
        let end = (pos + step * 37 % 101 + 1).min(bytes.len());
        dec.feed(&bytes[pos..end]).unwrap();
        pos = end;
        if dec.buffered_rows() >= 2 {
            assert!(dec.buffered_bytes() > 0);
            batches.extend(dec.take_batch().unwrap());
        }
    }
    dec.finish().unwrap();
    batches.extend(dec.take_batch().unwrap());
    assert_eq!(dec.rows_decoded(), 5);
    let joined = arrow::compute::concat_batches(&schema, &batches).unwrap();
    assert_eq!(joined, whole);
}

// ---- damaged streams ----

fn decode_fixture(bytes: &[u8], chunk: usize) -> Result<RecordBatch, CodecError> {
    let (wires, schema) = fixture_layout();
    decode_stream(&wires, schema, bytes, chunk)
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = fixture();
    for len in 0..bytes.len() {
        let e = decode_fixture(&bytes[..len], 1 + len % 17).unwrap_err();
        assert!(
            e.message.contains("ended") || e.message.contains("empty"),
            "{len}: {e}"
        );
    }
    let e = decode_fixture(&bytes[..bytes.len() - 2], 4096).unwrap_err();
    assert!(e.message.contains("without its trailer"), "{e}");
    assert_eq!(e.row, 6);
}

#[test]
fn bad_headers_are_errors() {
    let bytes = fixture();
    let mut bad = bytes.clone();
    bad[0] = b'p';
    assert!(
        decode_fixture(&bad, 1)
            .unwrap_err()
            .message
            .contains("signature")
    );
    // Detected before the whole signature arrives.
    let (wires, schema) = fixture_layout();
    let mut dec = CopyDecoder::new(columns(&wires, &schema), schema).unwrap();
    assert!(dec.feed(b"COPY").is_err());
    assert!(dec.feed(b"PGCOPY").is_err(), "stays failed");
    assert!(dec.take_batch().is_err());
    let mut oids = bytes.clone();
    oids[12] = 1; // flag bit 16
    assert!(
        decode_fixture(&oids, 64)
            .unwrap_err()
            .message
            .contains("OIDs")
    );
    let mut critical = bytes.clone();
    critical[11] = 0x80;
    assert!(
        decode_fixture(&critical, 64)
            .unwrap_err()
            .message
            .contains("critical")
    );
    let mut ext = bytes.clone();
    ext[15..19].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(decode_fixture(&ext, 64).is_err());
    // A header extension is skipped.
    let mut with_ext = bytes[..15].to_vec();
    with_ext.extend_from_slice(&3i32.to_be_bytes());
    with_ext.extend_from_slice(b"abc");
    with_ext.extend_from_slice(&bytes[19..]);
    assert_eq!(
        decode_fixture(&with_ext, 2).unwrap(),
        decode_fixture(&bytes, 999).unwrap()
    );
}

#[test]
fn hostile_lengths_wait_for_data_instead_of_allocating() {
    let bytes = fixture();
    // Header extension of 2 GiB: nothing is reserved; the stream simply ends short.
    let mut ext = bytes.clone();
    ext[15..19].copy_from_slice(&i32::MAX.to_be_bytes());
    let e = decode_fixture(&ext, 8).unwrap_err();
    assert!(e.message.contains("header"), "{e}");
    // First field of the first row claims 2 GiB.
    let mut field = bytes.clone();
    field[21..25].copy_from_slice(&i32::MAX.to_be_bytes());
    let e = decode_fixture(&field, 8).unwrap_err();
    assert!(e.message.contains("without its trailer"), "{e}");
    // A field length beyond the data inside a complete-looking value (bool of 2 bytes).
    let mut bool2 = bytes.clone();
    bool2[24] = 2;
    let e = decode_fixture(&bool2, 1000).unwrap_err();
    assert!(e.row >= 1, "{e}");
    let mut neg = bytes.clone();
    neg[21..25].copy_from_slice(&(-7i32).to_be_bytes());
    let e = decode_fixture(&neg, 1000).unwrap_err();
    assert_eq!((e.row, e.column), (1, Some(0)), "{e}");
}

#[test]
fn wrong_field_count_and_trailing_garbage_are_errors() {
    let bytes = fixture();
    let mut count = bytes.clone();
    count[19..21].copy_from_slice(&24i16.to_be_bytes());
    let e = decode_fixture(&count, 64).unwrap_err();
    assert_eq!(e.row, 1);
    assert!(e.message.contains("24 fields where 25"), "{e}");
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(
        decode_fixture(&extra, 64)
            .unwrap_err()
            .message
            .contains("trailer")
    );
    assert!(
        decode_fixture(&extra, 1)
            .unwrap_err()
            .message
            .contains("trailer")
    );
}

#[test]
fn values_that_break_their_format_are_errors() {
    let one = |wire: Wire, dt: DataType, value: &[u8]| {
        let mut s = Vec::new();
        CopyEncoder::header(&mut s);
        s.extend_from_slice(&1i16.to_be_bytes());
        s.extend_from_slice(&i32::try_from(value.len()).unwrap().to_be_bytes());
        s.extend_from_slice(value);
        CopyEncoder::trailer(&mut s);
        let schema = Arc::new(Schema::new(vec![Field::new("c", dt, true)]));
        decode_stream(&[wire], schema, &s, 3)
    };
    let int4_list = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
    let arr = || Wire::Array {
        elem: Box::new(Wire::Int4),
        elem_oid: 23,
    };
    let hex = |h: &str| hex::decode(h).unwrap();
    assert!(one(Wire::Int4, DataType::Int32, &[0, 0, 1]).is_err());
    assert!(
        one(Wire::Text, DataType::Utf8, &[0xff, 0xfe])
            .unwrap_err()
            .message
            .contains("UTF-8")
    );
    assert!(one(Wire::Jsonb, DataType::Utf8, b"\x02{}").is_err());
    assert!(one(Wire::Jsonb, DataType::Utf8, b"").is_err());
    assert!(one(Wire::Uuid, DataType::FixedSizeBinary(16), &[0; 15]).is_err());
    assert!(one(Wire::Numeric, DataType::Utf8, &hex("0001000000000000270f")).is_ok());
    assert!(
        one(Wire::Numeric, DataType::Utf8, &hex("00010000000000002710")).is_err(),
        "digit 10000"
    );
    assert!(
        one(Wire::Numeric, DataType::Utf8, &hex("0002000000000000")).is_err(),
        "missing digits"
    );
    assert!(
        one(Wire::Numeric, DataType::Utf8, &hex("0000000012340000")).is_err(),
        "bad sign"
    );
    assert!(
        one(Wire::Numeric, DataType::Utf8, &hex("0001ffff000000000001")).is_err(),
        "digits beyond dscale"
    );
    assert!(one(Wire::Numeric, DataType::Utf8, &hex("ffff000000000000")).is_err());
    let e = one(
        arr(),
        int4_list.clone(),
        &hex("000000020000000000000017000000010000000100000001000000010000000400000007"),
    )
    .unwrap_err();
    assert!(e.message.contains("2-dimensional"), "{e}");
    let e = one(
        arr(),
        int4_list.clone(),
        &hex("00000001000000000000001700000001000000000000000400000007"),
    )
    .unwrap_err();
    assert!(e.message.contains("lower bound 0"), "{e}");
    let e = one(
        arr(),
        int4_list.clone(),
        &hex("0000000100000000000000177fffffff00000001"),
    )
    .unwrap_err();
    assert!(e.message.contains("truncated"), "{e}");
    assert!(
        one(
            arr(),
            int4_list.clone(),
            &hex("00000001000000000000001700000001000000010000000400000007ff")
        )
        .is_err()
    );
    assert!(
        one(
            arr(),
            int4_list,
            &hex("000000010000000000000017000000010000000100000002ffff")
        )
        .is_err()
    );
    // Timestamps that Arrow cannot hold without colliding with the infinity sentinels.
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    assert!(one(Wire::Timestamp, ts.clone(), &(i64::MAX - 1).to_be_bytes()).is_err());
    assert!(
        one(
            Wire::Timestamp,
            ts,
            &(i64::MAX - EPOCH_MICROS).to_be_bytes()
        )
        .is_err()
    );
    // NULL into a NOT NULL field.
    let mut s = Vec::new();
    CopyEncoder::header(&mut s);
    s.extend_from_slice(&[0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    let schema = Arc::new(Schema::new(vec![Field::new("c", DataType::Int32, false)]));
    let e = decode_stream(&[Wire::Int4], schema, &s, 100).unwrap_err();
    assert!(e.message.contains("NOT NULL"), "{e}");
}

#[test]
fn flipped_bytes_never_panic() {
    let bytes = fixture();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..1 + next() % 4 {
            let i = usize::try_from(next() % u64::try_from(b.len()).unwrap()).unwrap();
            b[i] = b[i].wrapping_add(u8::try_from(next() % 255).unwrap() + 1);
        }
        let _ = decode_fixture(&b, usize::try_from(1 + next() % 300).unwrap());
    }
}

#[test]
fn unsupported_pairs_are_refused_up_front() {
    let schema = Arc::new(Schema::new(vec![Field::new("c", DataType::Int32, true)]));
    let e = CopyDecoder::new(vec![(Wire::Text, ColumnType::Int32)], schema.clone()).unwrap_err();
    assert_eq!(e.column, Some(0));
    assert!(CopyDecoder::new(vec![], schema).is_err());
    let nested = Wire::Array {
        elem: Box::new(Wire::Array {
            elem: Box::new(Wire::Int4),
            elem_oid: 23,
        }),
        elem_oid: 1007,
    };
    assert!(CopyEncoder::new(vec![(nested, ColumnType::Int32)]).is_err());
    assert_eq!(default_oid(&Wire::Jsonb), 3802);
    assert_eq!(
        default_oid(&Wire::Array {
            elem: Box::new(Wire::Int4),
            elem_oid: 23
        }),
        1007
    );
}

/// Throughput on a synthetic 1M-row mixed batch. Run with
/// `cargo test --release --lib pgcopy::tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark"]
fn throughput() {
    use std::time::Instant;
    const ROWS: usize = 1_000_000;
    let ids: Int64Array = (0..ROWS)
        .map(|i| i64::try_from(i).unwrap() * 7919)
        .collect();
    let qty: Int32Array = (0..ROWS)
        .map(|i| i32::try_from(i % 1000).unwrap() - 500)
        .collect();
    let price = Decimal128Array::from_iter_values(
        (0..ROWS).map(|i| i128::try_from(i).unwrap() * 12_345 % 100_000_000),
    )
    .with_precision_and_scale(12, 2)
    .unwrap();
    let names: StringArray = (0..ROWS)
        .map(|i| Some(format!("customer name {i}")))
        .collect();
    let ts = TimestampMicrosecondArray::from_iter_values(
        (0..ROWS).map(|i| 1_700_000_000_000_000 + i64::try_from(i).unwrap() * 1_000_003),
    )
    .with_timezone("UTC");
    let flag: BooleanArray = (0..ROWS)
        .map(|i| if i % 10 == 0 { None } else { Some(i % 3 == 0) })
        .collect();
    let score: Float64Array = (0..ROWS)
        .map(|i| Some(f64::from(u32::try_from(i).unwrap()) / 3.0))
        .collect();
    let day: Date32Array = (0..ROWS)
        .map(|i| Some(i32::try_from(i % 20_000).unwrap()))
        .collect();
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(ids),
        Arc::new(qty),
        Arc::new(price),
        Arc::new(names),
        Arc::new(ts),
        Arc::new(flag),
        Arc::new(score),
        Arc::new(day),
    ];
    let wires = vec![
        Wire::Int8,
        Wire::Int4,
        Wire::Numeric,
        Wire::Text,
        Wire::Timestamptz,
        Wire::Bool,
        Wire::Float8,
        Wire::Date,
    ];
    let schema = Arc::new(Schema::new(
        arrays
            .iter()
            .enumerate()
            .map(|(i, a)| Field::new(format!("c{i}"), a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    let mut enc = CopyEncoder::new(columns(&wires, &schema)).unwrap();

    let mut best_enc = f64::MAX;
    let mut bytes = Vec::new();
    for _ in 0..3 {
        bytes = Vec::new();
        let t = Instant::now();
        CopyEncoder::header(&mut bytes);
        for off in (0..ROWS).step_by(65_536) {
            let part = batch.slice(off, 65_536.min(ROWS - off));
            enc.encode(&part, u64::try_from(off).unwrap() + 1, &mut bytes)
                .unwrap();
        }
        CopyEncoder::trailer(&mut bytes);
        best_enc = best_enc.min(t.elapsed().as_secs_f64());
    }
    let mut best_dec = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let mut dec = CopyDecoder::new(columns(&wires, &schema), schema.clone()).unwrap();
        let mut rows = 0;
        for chunk in bytes.chunks(65_536) {
            dec.feed(chunk).unwrap();
            if dec.buffered_rows() >= 65_536 {
                rows += dec.take_batch().unwrap().unwrap().num_rows();
            }
        }
        dec.finish().unwrap();
        rows += dec.take_batch().unwrap().map_or(0, |b| b.num_rows());
        assert_eq!(rows, ROWS);
        best_dec = best_dec.min(t.elapsed().as_secs_f64());
    }
    let mb = bytes.len() as f64 / 1e6;
    println!(
        "{ROWS} rows, {mb:.1} MB of COPY: encode {:.0} MB/s ({:.2} s), decode {:.0} MB/s ({:.2} s)",
        mb / best_enc,
        best_enc,
        mb / best_dec,
        best_dec
    );
}

/// Writes encoder output for a by-hand `\copy … FROM … (FORMAT binary)` check against a real
/// server (see tests/data/pgcopy/README.md). Run with
/// `FERRY_PGCOPY_SAMPLES=/tmp/x cargo test --lib pgcopy::tests::write_copy_from_samples -- --ignored`.
#[test]
#[ignore = "writes files for a manual check against PostgreSQL"]
fn write_copy_from_samples() {
    use arrow::array::{DurationMillisecondArray, Int8Array, Time32SecondArray, UInt8Array};
    let dir = std::path::PathBuf::from(
        std::env::var("FERRY_PGCOPY_SAMPLES").expect("FERRY_PGCOPY_SAMPLES"),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let (wires, schema) = fixture_layout();
    let batch = decode_stream(&wires, schema, &fixture(), 4096).unwrap();
    std::fs::write(dir.join("all_wires.copy"), encode_stream(&wires, &batch)).unwrap();

    let mut tl = ListBuilder::new(StringBuilder::new());
    tl.append_value([Some("a"), None]);
    tl.append_value(Vec::<Option<&str>>::new());
    tl.append_null();
    let cross: Vec<(Wire, ArrayRef)> = vec![
        (
            Wire::Int8,
            Arc::new(Int32Array::from(vec![Some(-5), None, Some(i32::MAX)])),
        ),
        (
            Wire::Int8,
            Arc::new(UInt64Array::from(vec![0, 1, i64::MAX.unsigned_abs()])),
        ),
        (
            Wire::Int4,
            Arc::new(Int64Array::from(vec![1, -1, i64::from(i32::MIN)])),
        ),
        (Wire::Int2, Arc::new(UInt8Array::from(vec![0, 255, 7]))),
        (Wire::Int2, Arc::new(Int8Array::from(vec![-128, 127, 0]))),
        (
            Wire::Numeric,
            Arc::new(
                Decimal128Array::from(vec![1500, -1, 0])
                    .with_precision_and_scale(10, 3)
                    .unwrap(),
            ),
        ),
        (
            Wire::Numeric,
            Arc::new(Int64Array::from(vec![i64::MIN, 0, 10_000])),
        ),
        (
            Wire::Numeric,
            Arc::new(StringArray::from(vec!["1.5e3", "-Infinity", "+2.50E-1"])),
        ),
        (
            Wire::Numeric,
            Arc::new(
                Decimal128Array::from(vec![12300, -5, 0])
                    .with_precision_and_scale(5, -2)
                    .unwrap(),
            ),
        ),
        (
            Wire::Timestamptz,
            Arc::new(
                TimestampNanosecondArray::from(vec![1_000, -2_000, 1_719_743_696_123_456_000])
                    .with_timezone("Europe/Paris"),
            ),
        ),
        (
            Wire::Uuid,
            Arc::new(StringArray::from(vec![
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                "A0EEBC999C0B4EF8BB6D6BB9BD380A11",
                "00000000-0000-0000-0000-000000000000",
            ])),
        ),
        (
            Wire::Interval,
            Arc::new(DurationMillisecondArray::from(vec![1, -86_400_001, 0])),
        ),
        (
            Wire::Float8,
            Arc::new(Float32Array::from(vec![0.1, f32::NAN, -0.0])),
        ),
        (
            Wire::Time,
            Arc::new(Time32SecondArray::from(vec![0, 86_399, 86_400])),
        ),
        (
            Wire::Bytea,
            Arc::new(
                FixedSizeBinaryArray::try_from_iter(
                    vec![[0u8, 1, 2], [255, 0, 255], [0, 0, 0]].into_iter(),
                )
                .unwrap(),
            ),
        ),
        (
            Wire::Text,
            Arc::new(LargeStringArray::from(vec!["large", "", "ü"])),
        ),
        (
            Wire::Array {
                elem: Box::new(Wire::Text),
                elem_oid: 25,
            },
            Arc::new(tl.finish()),
        ),
    ];
    let fields: Vec<Field> = cross
        .iter()
        .enumerate()
        .map(|(i, (_, a))| Field::new(format!("c{i}"), a.data_type().clone(), true))
        .collect();
    let wires: Vec<Wire> = cross.iter().map(|(w, _)| w.clone()).collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        cross.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    std::fs::write(dir.join("cross.copy"), encode_stream(&wires, &batch)).unwrap();
}

/// Properties over generated values (proptest): what the fixed cases above show for a few
/// values holds for any.
mod properties {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, StringArray};
    use proptest::prelude::*;

    use super::{Wire, round_trip};

    /// Numeric text as PostgreSQL prints it: no leading zeros, every fraction digit kept,
    /// no negative zero.
    fn canonical_numeric() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            prop_oneof!["0", "[1-9][0-9]{0,60}"],
            proptest::option::of("[0-9]{1,40}"),
        )
            .prop_map(|(neg, int, frac)| {
                let zero =
                    int == "0" && frac.as_deref().is_none_or(|f| f.bytes().all(|b| b == b'0'));
                let sign = if neg && !zero { "-" } else { "" };
                match frac {
                    Some(f) => format!("{sign}{int}.{f}"),
                    None => format!("{sign}{int}"),
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn numeric_text_encode_decode_is_the_identity(
            values in proptest::collection::vec(proptest::option::of(canonical_numeric()), 1..20)
        ) {
            round_trip(Wire::Numeric, Arc::new(StringArray::from(values)));
        }

        #[test]
        fn int8_and_float8_encode_decode_is_the_identity(
            ints in proptest::collection::vec(proptest::option::of(any::<i64>()), 1..50),
            floats in proptest::collection::vec(proptest::option::of(any::<f64>().prop_filter("NaN compares unequal", |f| !f.is_nan())), 1..50),
        ) {
            round_trip(Wire::Int8, Arc::new(Int64Array::from(ints)));
            round_trip(Wire::Float8, Arc::new(Float64Array::from(floats)));
        }

        #[test]
        fn text_encode_decode_is_the_identity(
            values in proptest::collection::vec(proptest::option::of("[^\u{0}]{0,40}"), 1..20)
        ) {
            round_trip(Wire::Text, Arc::new(StringArray::from(values)));
        }
    }
}

/// Text is checked as UTF-8 a batch at a time: a value that is not UTF-8 on its own is
/// refused even where the batch's bytes together are (a character split across two
/// values), the error names its row and column, an error later in the batch still reports
/// the earlier bad value, and an array's text element is named within its row.
#[test]
fn text_checked_a_batch_at_a_time_names_the_first_bad_row() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("n", DataType::Int32, true),
        Field::new("a", DataType::Utf8, true),
        Field::new("b", DataType::Utf8, true),
    ]));
    let wires = [Wire::Int4, Wire::Text, Wire::Text];
    let stream = |rows: &[(&[u8], &[u8], &[u8])]| {
        let mut s = Vec::new();
        CopyEncoder::header(&mut s);
        for (n, a, b) in rows {
            s.extend_from_slice(&3i16.to_be_bytes());
            for v in [n, a, b] {
                s.extend_from_slice(&i32::try_from(v.len()).unwrap().to_be_bytes());
                s.extend_from_slice(v);
            }
        }
        CopyEncoder::trailer(&mut s);
        s
    };
    let one = 1i32.to_be_bytes();
    // "é" is C3 A9: split over rows 2 and 3 of column b, the batch's bytes are UTF-8.
    let split = stream(&[
        (&one, b"x", b"ok"),
        (&one, b"y", b"a\xC3"),
        (&one, b"z", b"\xA9b"),
    ]);
    for chunk in [1, 7, 4096] {
        let e = decode_stream(&wires, schema.clone(), &split, chunk).unwrap_err();
        assert_eq!((e.row, e.column), (2, Some(2)), "{e:?}");
        assert!(e.message.contains("UTF-8"), "{}", e.message);
    }
    // Row 2 column a is bad; row 3 then carries a 3-byte int4, an error met first.
    let later = stream(&[
        (&one, b"x", b"ok"),
        (&one, b"\xFF", b"ok"),
        (&[0, 0, 1], b"z", b"ok"),
    ]);
    let e = decode_stream(&wires, schema.clone(), &later, 4096).unwrap_err();
    assert_eq!((e.row, e.column), (2, Some(1)), "{e:?}");
    assert!(e.message.contains("UTF-8"), "{}", e.message);
    // Two bad values: the earlier row wins, whatever the column order.
    let two = stream(&[
        (&one, b"x", b"ok"),
        (&one, b"ok", b"\xFF"),
        (&one, b"\xFF", b"ok"),
    ]);
    let e = decode_stream(&wires, schema.clone(), &two, 4096).unwrap_err();
    assert_eq!((e.row, e.column), (2, Some(2)), "{e:?}");
    // Valid text of every width decodes as sent.
    let good = stream(&[
        (&one, "é€𝄞".as_bytes(), b""),
        (&one, b"plain", "\u{10FFFF}".as_bytes()),
    ]);
    let b = decode_stream(&wires, schema.clone(), &good, 3).unwrap();
    use arrow::array::AsArray;
    let a = b.column(1).as_string::<i32>();
    assert_eq!((a.value(0), a.value(1)), ("é€𝄞", "plain"));
    assert_eq!(b.column(2).as_string::<i32>().value(1), "\u{10FFFF}");
    // An array's text elements: the element is named.
    let list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    let arr = Wire::Array {
        elem: Box::new(Wire::Text),
        elem_oid: 25,
    };
    let mut v = Vec::new();
    for w in [1i32, 0, 25, 2, 1] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    for e in [&b"fine"[..], b"\xC3"] {
        v.extend_from_slice(&i32::try_from(e.len()).unwrap().to_be_bytes());
        v.extend_from_slice(e);
    }
    let e = decode_single(arr, list, &v).unwrap_err();
    assert!(
        e.message.contains("array element 2") && e.message.contains("UTF-8"),
        "{}",
        e.message
    );
}
