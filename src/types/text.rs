//! Exact text forms of canonical values, for engines (SQLite) that store them as text:
//! decimals, dates and timestamps. Parsing is strict: a text that does not denote exactly
//! one value of the type is an error, never a guess.

use chrono::{DateTime, NaiveDate};

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

/// Parses a decimal literal (`-12.5`, `3`, `1.5e3`) into the unscaled integer of a
/// `decimal(precision, scale)`. Fails when digits would be lost or the precision exceeded.
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Result<i128, String> {
    let t = text.trim();
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (
            &body[..i],
            body[i + 1..]
                .parse::<i32>()
                .map_err(|_| format!("{text:?} is not a number"))?,
        ),
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("{text:?} is not a number"));
    }
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    // value = digits * 10^(exp - frac_len); unscaled = value * 10^scale
    let frac_len = i32::try_from(frac_part.len()).map_err(|_| format!("{text:?} is too long"))?;
    let shift = exp - frac_len + i32::from(scale);
    let mut digits = digits.to_string();
    if shift < 0 {
        let cut = usize::try_from(-shift).unwrap_or(usize::MAX);
        if cut >= digits.len() {
            if digits.bytes().any(|b| b != b'0') {
                return Err(format!("{text} has more than {scale} decimal places"));
            }
            digits.clear();
        } else {
            let (keep, dropped) = digits.split_at(digits.len() - cut);
            if dropped.bytes().any(|b| b != b'0') {
                return Err(format!("{text} has more than {scale} decimal places"));
            }
            digits = keep.to_string();
        }
    } else {
        let pad = usize::try_from(shift).unwrap_or(usize::MAX);
        if digits.len().saturating_add(pad) > usize::from(precision) && !digits.is_empty() {
            return Err(format!("{text} does not fit decimal({precision},{scale})"));
        }
        if !digits.is_empty() {
            digits.extend(std::iter::repeat_n('0', pad));
        }
    }
    let digits = digits.trim_start_matches('0');
    if digits.len() > usize::from(precision) {
        return Err(format!("{text} does not fit decimal({precision},{scale})"));
    }
    let v: i128 = if digits.is_empty() {
        0
    } else {
        digits
            .parse()
            .map_err(|_| format!("{text} is out of range"))?
    };
    Ok(if neg { -v } else { v })
}

/// The text of an unscaled decimal: `format_decimal(1250, 2)` is `12.50`.
pub fn format_decimal(unscaled: i128, scale: i8) -> String {
    let mut b = Vec::with_capacity(24);
    push_decimal(&mut b, unscaled, scale);
    ascii(b)
}

/// Appends [`format_decimal`]'s text, with no allocation for the usual sizes (the loaders
/// write one per value).
pub fn push_decimal(out: &mut Vec<u8>, unscaled: i128, scale: i8) {
    if unscaled < 0 {
        out.push(b'-');
    }
    let mut buf = [0u8; 20];
    let wide;
    let digits: &[u8] = match u64::try_from(unscaled.unsigned_abs()) {
        Ok(n) => u64_digits(&mut buf, n),
        Err(_) => {
            wide = unscaled.unsigned_abs().to_string();
            wide.as_bytes()
        }
    };
    match usize::try_from(scale) {
        Ok(scale) if scale > 0 => {
            if digits.len() <= scale {
                out.extend_from_slice(b"0.");
                out.resize(out.len() + scale - digits.len(), b'0');
                out.extend_from_slice(digits);
            } else {
                let (i, f) = digits.split_at(digits.len() - scale);
                out.extend_from_slice(i);
                out.push(b'.');
                out.extend_from_slice(f);
            }
        }
        _ => {
            out.extend_from_slice(digits);
            if digits != b"0" {
                let zeros = usize::try_from(-i32::from(scale)).unwrap_or(0);
                out.resize(out.len() + zeros, b'0');
            }
        }
    }
}

/// The decimal digits of `n`, written at the end of `buf`.
fn u64_digits(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Appends the decimal text of an integer (as `Display` writes it).
pub fn push_int(out: &mut Vec<u8>, v: impl Into<i128>) {
    let v: i128 = v.into();
    if v < 0 {
        out.push(b'-');
    }
    let mut buf = [0u8; 20];
    match u64::try_from(v.unsigned_abs()) {
        Ok(n) => out.extend_from_slice(u64_digits(&mut buf, n)),
        Err(_) => out.extend_from_slice(v.unsigned_abs().to_string().as_bytes()),
    }
}

/// Whether `text` is a plain decimal number (what an exact numeric column may hold).
pub fn is_decimal_literal(text: &str) -> bool {
    parse_decimal(text, u8::MAX, 0).is_ok() || {
        let t = text.trim();
        let t = t.strip_prefix(['-', '+']).unwrap_or(t);
        let (m, e) = match t.find(['e', 'E']) {
            Some(i) => (&t[..i], Some(&t[i + 1..])),
            None => (t, None),
        };
        let (a, b) = m.split_once('.').unwrap_or((m, ""));
        !(a.is_empty() && b.is_empty())
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
            && e.is_none_or(|e| {
                let e = e.strip_prefix(['-', '+']).unwrap_or(e);
                !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
            })
    }
}

/// The exact text of a 256-bit decimal with `scale` fraction digits.
pub fn format_decimal256(v: arrow::datatypes::i256, scale: i8) -> String {
    let digits = v.to_string();
    let (neg, digits) = match digits.strip_prefix('-') {
        Some(d) => (true, d.to_string()),
        None => (false, digits),
    };
    let s = usize::try_from(scale).unwrap_or(0);
    let body = if s == 0 {
        digits
    } else {
        let padded = format!("{digits:0>width$}", width = s + 1);
        let (a, b) = padded.split_at(padded.len() - s);
        format!("{a}.{b}")
    };
    if neg { format!("-{body}") } else { body }
}

/// Shortest text that reads back as exactly this double.
pub fn format_f64(v: f64) -> String {
    format!("{v}")
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// Days since 1970-01-01 of the `YYYY-MM-DD` at the start of `b` (a hot path: no chrono
/// format parsing, which costs more than the rest of a row).
fn days_of(b: &[u8]) -> Option<i32> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let date = NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)?;
    i32::try_from(date.signed_duration_since(EPOCH).num_days()).ok()
}

/// `YYYY-MM-DD` to days since 1970-01-01.
pub fn parse_date(text: &str) -> Result<i32, String> {
    let b = text.as_bytes();
    if b.len() != 10 {
        return Err(format!("{text:?} is not a date (YYYY-MM-DD)"));
    }
    days_of(b).ok_or_else(|| format!("{text:?} is not a date (YYYY-MM-DD)"))
}

pub fn format_date(days: i32) -> String {
    let mut b = Vec::with_capacity(10);
    if push_date(&mut b, days) {
        return ascii(b);
    }
    EPOCH
        .checked_add_signed(chrono::Duration::days(i64::from(days)))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("(day {days})"))
}

/// The text of bytes this module wrote (ASCII digits and punctuation).
fn ascii(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Year, month and day of a day count since 1970-01-01 in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`): a few integer operations, where chrono's date
/// arithmetic and `format` cost a seventh of a MariaDB import's CPU (the loaders print one
/// date or timestamp per value).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of the 400-year era, 0..=146_096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365, from March 1st
    let mp = (5 * doy + 2) / 153; // 0..=11, March first
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let small = |v: i64| u32::try_from(v).unwrap_or(0);
    (
        yoe + era * 400 + i64::from(month <= 2),
        small(month),
        small(day),
    )
}

/// Two decimal digits of `v` (below 100).
fn push_two(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&[digit(v / 10), digit(v)]);
}

/// The last decimal digit of `v`.
fn digit(v: u32) -> u8 {
    b'0' + u8::try_from(v % 10).unwrap_or(0)
}

/// `YYYY-MM-DD` for years 0..=9999; false, writing nothing, for other years.
fn push_ymd(b: &mut Vec<u8>, (y, m, d): (i64, u32, u32)) -> bool {
    let Ok(y) = u32::try_from(y) else {
        return false;
    };
    if y > 9999 {
        return false;
    }
    push_two(b, y / 100);
    push_two(b, y % 100);
    b.push(b'-');
    push_two(b, m);
    b.push(b'-');
    push_two(b, d);
    true
}

/// Appends [`format_date`]'s text of a date in years 0..=9999 and returns true; false,
/// writing nothing, for any other date.
pub fn push_date(out: &mut Vec<u8>, days: i32) -> bool {
    push_ymd(out, civil(i64::from(days)))
}

/// Appends [`format_timestamp`]'s text of an instant in years 0..=9999 and returns true;
/// false, writing nothing, for any other instant.
pub fn push_timestamp(out: &mut Vec<u8>, micros: i64) -> bool {
    let secs = micros.div_euclid(1_000_000);
    let frac = u32::try_from(micros.rem_euclid(1_000_000)).unwrap_or(0);
    let sod = u32::try_from(secs.rem_euclid(86_400)).unwrap_or(0);
    if !push_ymd(out, civil(secs.div_euclid(86_400))) {
        return false;
    }
    out.push(b' ');
    push_two(out, sod / 3600);
    out.push(b':');
    push_two(out, sod / 60 % 60);
    out.push(b':');
    push_two(out, sod % 60);
    push_fraction(out, frac);
    true
}

/// `.fff` for whole milliseconds, `.ffffff` otherwise, nothing for none.
fn push_fraction(out: &mut Vec<u8>, micros: u32) {
    if micros == 0 {
        return;
    }
    out.push(b'.');
    let (v, n) = if micros.is_multiple_of(1000) {
        (micros / 1000, 3)
    } else {
        (micros, 6)
    };
    for k in (0..n).rev() {
        out.push(digit(v / 10u32.pow(k)));
    }
}

/// `YYYY-MM-DD HH:MM:SS[.f…]` (or with `T`) to microseconds since the epoch.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a timestamp (YYYY-MM-DD HH:MM:SS[.ffffff])");
    let b = text.as_bytes();
    if b.len() < 19 || !(b[10] == b' ' || b[10] == b'T') || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let days = days_of(b).ok_or_else(bad)?;
    let (h, m, sec) = (
        digits(&b[11..13]).ok_or_else(bad)?,
        digits(&b[14..16]).ok_or_else(bad)?,
        digits(&b[17..19]).ok_or_else(bad)?,
    );
    if h > 23 || m > 59 || sec > 59 {
        return Err(bad());
    }
    let mut micros = 0i64;
    if b.len() > 19 {
        let frac = &b[19..];
        if frac[0] != b'.'
            || frac.len() == 1
            || frac.len() > 10
            || !frac[1..].iter().all(u8::is_ascii_digit)
        {
            return Err(bad());
        }
        let f = &frac[1..];
        if f.len() > 6 && f[6..].iter().any(|c| *c != b'0') {
            return Err(format!(
                "{text:?} has sub-microsecond digits, which ferry cannot carry exactly"
            ));
        }
        for i in 0..6 {
            micros = micros * 10 + f.get(i).map_or(0, |c| i64::from(c - b'0'));
        }
    }
    let secs = i64::from(days) * 86_400 + i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(sec);
    Ok(secs * 1_000_000 + micros)
}

/// A timestamp with an optional zone suffix (`Z`, `+HH:MM`, `-HHMM`, `+HH`) as UTC
/// microseconds; text without a suffix is taken as UTC.
pub fn parse_timestamptz(text: &str) -> Result<i64, String> {
    let b = text.as_bytes();
    let zone_at = b
        .iter()
        .enumerate()
        .skip(19)
        .find(|(_, c)| matches!(c, b'+' | b'-' | b'Z' | b'z'))
        .map(|(i, _)| i);
    let Some(i) = zone_at else {
        return parse_timestamp(text);
    };
    let local = parse_timestamp(&text[..i])?;
    let zone = &text[i..];
    if zone.eq_ignore_ascii_case("z") {
        return Ok(local);
    }
    let bad = || format!("{text:?}: {zone:?} is not a time zone offset (+HH:MM)");
    let sign: i64 = if zone.starts_with('-') { -1 } else { 1 };
    let digits_only: String = zone[1..].chars().filter(|c| *c != ':').collect();
    if !matches!(digits_only.len(), 2 | 4) || !digits_only.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let h: i64 = digits_only[..2].parse().map_err(|_| bad())?;
    let m: i64 = if digits_only.len() == 4 {
        digits_only[2..].parse().map_err(|_| bad())?
    } else {
        0
    };
    if h > 15 || m > 59 {
        return Err(bad());
    }
    Ok(local - sign * (h * 3600 + m * 60) * 1_000_000)
}

/// Microseconds since the epoch as `YYYY-MM-DD HH:MM:SS`, with `.fff` or `.ffffff` when needed.
pub fn format_timestamp(micros: i64) -> String {
    let mut b = Vec::with_capacity(26);
    if push_timestamp(&mut b, micros) {
        return ascii(b);
    }
    let Some(dt) = DateTime::from_timestamp_micros(micros) else {
        return format!("(timestamp {micros})");
    };
    let base = dt.format("%Y-%m-%d %H:%M:%S").to_string();
    let frac = micros.rem_euclid(1_000_000);
    if frac == 0 {
        base
    } else if frac % 1000 == 0 {
        format!("{base}.{:03}", frac / 1000)
    } else {
        format!("{base}.{frac:06}")
    }
}

// PostgreSQL's own text output, for `--as-text` loads of values a target has no type for
// (intervals, arrays, decimals wider than it holds): the text `value::text` prints in a
// session with the defaults DateStyle=ISO, IntervalStyle=postgres, bytea_output=hex,
// extra_float_digits=1, and TimeZone=UTC for timestamptz. PostgreSQL reads it back through
// the type's input function, so it is exact.

/// Whether [`pg_text`] can print a value of this canonical type: every scalar type and
/// one-dimensional arrays of them.
pub fn has_pg_text_form(ty: &crate::types::ColumnType) -> bool {
    match ty {
        crate::types::ColumnType::List { element } => {
            !matches!(**element, crate::types::ColumnType::List { .. })
        }
        _ => true,
    }
}

/// PostgreSQL's text of the (non-null) value at `i` of `a`, a column of canonical type `ty`.
pub fn pg_text(
    a: &dyn arrow::array::Array,
    i: usize,
    ty: &crate::types::ColumnType,
) -> Result<String, String> {
    use crate::types::ColumnType as T;
    use arrow::array::AsArray;
    use arrow::datatypes as dt;
    let mismatch = || {
        format!(
            "a {} value is stored as Arrow {}",
            ty.describe(),
            a.data_type()
        )
    };
    if i >= a.len() {
        return Err(format!("row {i} is past the end of its column"));
    }
    macro_rules! prim {
        ($t:ty) => {
            a.as_primitive_opt::<$t>().ok_or_else(mismatch)?.value(i)
        };
    }
    Ok(match ty {
        T::Boolean => {
            let v = a.as_boolean_opt().ok_or_else(mismatch)?.value(i);
            if v { "t" } else { "f" }.to_string()
        }
        T::Int16 => prim!(dt::Int16Type).to_string(),
        T::Int32 => prim!(dt::Int32Type).to_string(),
        T::Int64 => prim!(dt::Int64Type).to_string(),
        T::UInt8 => prim!(dt::UInt8Type).to_string(),
        T::UInt16 => prim!(dt::UInt16Type).to_string(),
        T::UInt32 => prim!(dt::UInt32Type).to_string(),
        T::UInt64 => prim!(dt::UInt64Type).to_string(),
        T::Float32 => pg_float32(prim!(dt::Float32Type)),
        T::Float64 => pg_float64(prim!(dt::Float64Type)),
        T::Decimal128 { scale, .. } => format_decimal(prim!(dt::Decimal128Type), *scale),
        T::Decimal256 { scale, .. } => {
            let v = prim!(dt::Decimal256Type);
            if *scale < 0 {
                // value × 10^-scale, as PostgreSQL prints a negative-scale numeric
                let zeros = usize::try_from(-i32::from(*scale)).unwrap_or(0);
                let s = v.to_string();
                if s == "0" {
                    s
                } else {
                    format!("{s}{}", "0".repeat(zeros))
                }
            } else {
                format_decimal256(v, *scale)
            }
        }
        T::NumericText | T::Utf8 | T::Json => a
            .as_string_opt::<i32>()
            .ok_or_else(mismatch)?
            .value(i)
            .to_string(),
        T::Binary => {
            let b = a.as_binary_opt::<i32>().ok_or_else(mismatch)?.value(i);
            let mut s = String::with_capacity(2 + 2 * b.len());
            s.push_str("\\x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        T::Date32 => pg_date(prim!(dt::Date32Type))?,
        T::Timestamp { utc } => pg_timestamp(prim!(dt::TimestampMicrosecondType), *utc)?,
        T::Time64 => pg_time(prim!(dt::Time64MicrosecondType))?,
        T::Interval => {
            let v = prim!(dt::IntervalMonthDayNanoType);
            pg_interval(v.months, v.days, v.nanoseconds)?
        }
        T::Uuid => {
            let b = a.as_fixed_size_binary_opt().ok_or_else(mismatch)?.value(i);
            uuid::Uuid::from_slice(b)
                .map_err(|e| format!("not a UUID: {e}"))?
                .hyphenated()
                .to_string()
        }
        T::List { element } => {
            if !has_pg_text_form(ty) {
                return Err(format!("{} has no PostgreSQL text form", ty.describe()));
            }
            let l = a.as_list_opt::<i32>().ok_or_else(mismatch)?;
            pg_array(l.value(i).as_ref(), element)?
        }
    })
}

/// `array_out`: `{1,NULL,3}`, `{}`, `{a,"",NULL,"quote\"d","a b"}`. An element is quoted
/// when it is empty, reads `NULL` in any case, or holds a quote, backslash, brace, comma or
/// white space; quotes and backslashes inside quotes are escaped with a backslash.
pub fn pg_array(
    values: &dyn arrow::array::Array,
    element: &crate::types::ColumnType,
) -> Result<String, String> {
    let mut out = String::from("{");
    for j in 0..values.len() {
        if j > 0 {
            out.push(',');
        }
        if values.is_null(j) {
            out.push_str("NULL");
            continue;
        }
        let s = pg_text(values, j, element)?;
        let quote = s.is_empty()
            || s.eq_ignore_ascii_case("NULL")
            || s.chars().any(|c| {
                matches!(
                    c,
                    '"' | '\\' | '{' | '}' | ',' | ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C'
                )
            });
        if quote {
            out.push('"');
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        } else {
            out.push_str(&s);
        }
    }
    out.push('}');
    Ok(out)
}

/// `interval_out` with IntervalStyle `postgres`: `-10 mons -3 days +04:05:06.789`,
/// `1 year 2 mons`, `00:00:00`, `-1 days +00:00:01`, `infinity` (PostgreSQL 17).
pub fn pg_interval(months: i32, days: i32, nanos: i64) -> Result<String, String> {
    if (months, days, nanos) == (i32::MAX, i32::MAX, i64::MAX) {
        return Ok("infinity".into());
    }
    if (months, days, nanos) == (i32::MIN, i32::MIN, i64::MIN) {
        return Ok("-infinity".into());
    }
    if nanos % 1000 != 0 {
        return Err(format!(
            "interval of {nanos} ns has a sub-microsecond part, which PostgreSQL cannot hold"
        ));
    }
    let micros = nanos / 1000;
    let (year, mon) = (i64::from(months) / 12, i64::from(months) % 12);
    let hour = micros / 3_600_000_000;
    let rest = micros % 3_600_000_000;
    let min = rest / 60_000_000;
    let rest = rest % 60_000_000;
    let (sec, fsec) = (rest / 1_000_000, rest % 1_000_000);
    let mut out = String::new();
    let mut is_zero = true;
    let mut is_before = false;
    for (value, unit) in [(year, "year"), (mon, "mon"), (i64::from(days), "day")] {
        if value == 0 {
            continue;
        }
        if !is_zero {
            out.push(' ');
        }
        if is_before && value > 0 {
            out.push('+');
        }
        out.push_str(&format!(
            "{value} {unit}{}",
            if value == 1 { "" } else { "s" }
        ));
        // Each nonzero field sets is_before for the next one only (as PostgreSQL does).
        is_before = value < 0;
        is_zero = false;
    }
    if is_zero || hour != 0 || min != 0 || sec != 0 || fsec != 0 {
        let minus = hour < 0 || min < 0 || sec < 0 || fsec < 0;
        out.push_str(&format!(
            "{}{}{:02}:{:02}:{:02}{}",
            if is_zero { "" } else { " " },
            if minus {
                "-"
            } else if is_before {
                "+"
            } else {
                ""
            },
            hour.unsigned_abs(),
            min.unsigned_abs(),
            sec.unsigned_abs(),
            fraction(fsec.unsigned_abs())
        ));
    }
    Ok(out)
}

/// `.ffffff` without trailing zeros, empty for zero.
fn fraction(micros: u64) -> String {
    if micros == 0 {
        return String::new();
    }
    let f = format!(".{micros:06}");
    f.trim_end_matches('0').to_string()
}

/// `date_out` (DateStyle ISO): `2024-02-29`, `0044-03-15 BC`, `infinity`.
pub fn pg_date(days: i32) -> Result<String, String> {
    match days {
        i32::MAX => return Ok("infinity".into()),
        i32::MIN => return Ok("-infinity".into()),
        _ => {}
    }
    let (ymd, bc) = pg_ymd(i64::from(days)).ok_or_else(|| format!("day {days} is out of range"))?;
    Ok(format!("{ymd}{bc}"))
}

/// `YYYY-MM-DD` of days since 1970-01-01 and the ` BC` suffix for years before 1.
fn pg_ymd(days: i64) -> Option<(String, &'static str)> {
    use chrono::Datelike;
    let d = EPOCH.checked_add_signed(chrono::Duration::try_days(days)?)?;
    let y = d.year();
    Some(if y <= 0 {
        (
            format!("{:04}-{:02}-{:02}", 1 - y, d.month(), d.day()),
            " BC",
        )
    } else {
        (format!("{y:04}-{:02}-{:02}", d.month(), d.day()), "")
    })
}

/// `timestamp_out` / `timestamptz_out` (DateStyle ISO, TimeZone UTC):
/// `2024-02-29 12:34:56.123456`, `2024-01-01 10:00:00+00`, `4713-11-24 00:00:00 BC`, `infinity`.
pub fn pg_timestamp(micros: i64, utc: bool) -> Result<String, String> {
    match micros {
        i64::MAX => return Ok("infinity".into()),
        i64::MIN => return Ok("-infinity".into()),
        _ => {}
    }
    let days = micros.div_euclid(86_400_000_000);
    let (ymd, bc) = pg_ymd(days).ok_or_else(|| format!("timestamp {micros} µs is out of range"))?;
    let time = pg_time(micros.rem_euclid(86_400_000_000))?;
    Ok(format!("{ymd} {time}{}{bc}", if utc { "+00" } else { "" }))
}

/// `time_out`: `23:59:59.999999`, `10:00:00.5`, `24:00:00`.
pub fn pg_time(micros: i64) -> Result<String, String> {
    if !(0..=86_400_000_000).contains(&micros) {
        return Err(format!("time of {micros} µs is outside 00:00:00..24:00:00"));
    }
    let u = micros.unsigned_abs();
    let secs = u / 1_000_000;
    Ok(format!(
        "{:02}:{:02}:{:02}{}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        fraction(u % 1_000_000)
    ))
}

/// `float8out` (shortest exact digits): `1.5`, `100000000000000`, `1e+15`, `1e-05`, `NaN`, `-0`.
pub fn pg_float64(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    pg_shortest(&format!("{v:e}"), 15)
}

/// `float4out`: as [`pg_float64`] with fixed notation below 1e6 (`123456`, `1e+06`).
pub fn pg_float32(v: f32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    pg_shortest(&format!("{v:e}"), 6)
}

/// PostgreSQL's layout (as its Ryu output: fixed notation for decimal exponents -4 up to
/// `fixed_below`, else `d.ddde±XX`) of Rust's shortest round-trip digits (`-1.5e-7`).
fn pg_shortest(exp_form: &str, fixed_below: i32) -> String {
    let (mantissa, exp) = exp_form.split_once('e').unwrap_or((exp_form, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let body = if (-4..fixed_below).contains(&exp) {
        if exp >= 0 {
            let int_len = usize::try_from(exp).unwrap_or(0) + 1;
            if digits.len() <= int_len {
                format!("{digits}{}", "0".repeat(int_len - digits.len()))
            } else {
                format!("{}.{}", &digits[..int_len], &digits[int_len..])
            }
        } else {
            let zeros = usize::try_from(-exp - 1).unwrap_or(0);
            format!("0.{}{digits}", "0".repeat(zeros))
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        format!(
            "{first}{}{rest}e{}{:02}",
            if rest.is_empty() { "" } else { "." },
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        )
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoned_timestamps_are_read_as_utc() {
        let base = parse_timestamp("2024-02-29 12:34:56.123456").unwrap();
        assert_eq!(parse_timestamptz("2024-02-29 12:34:56.123456"), Ok(base));
        assert_eq!(parse_timestamptz("2024-02-29 12:34:56.123456Z"), Ok(base));
        assert_eq!(
            parse_timestamptz("2024-02-29 12:34:56.123456+00:00"),
            Ok(base)
        );
        assert_eq!(
            parse_timestamptz("2024-02-29 12:34:56.123456+05:30"),
            Ok(base - 19_800_000_000)
        );
        assert_eq!(
            parse_timestamptz("2024-02-29 12:34:56.123456-0800"),
            Ok(base + 28_800_000_000)
        );
        assert_eq!(
            parse_timestamptz("2024-02-29 12:34:56-08"),
            Ok(parse_timestamp("2024-02-29 20:34:56").unwrap())
        );
        assert!(parse_timestamptz("2024-02-29 12:34:56+5").is_err());
        assert!(parse_timestamptz("2024-02-29 12:34:56+25:00").is_err());
    }

    #[test]
    fn decimals_are_exact_or_refused() {
        assert_eq!(parse_decimal("12.5", 10, 2), Ok(1250));
        assert_eq!(parse_decimal("-0.01", 10, 2), Ok(-1));
        assert_eq!(parse_decimal("3", 10, 2), Ok(300));
        assert_eq!(parse_decimal("1.5e3", 10, 2), Ok(150_000));
        assert_eq!(parse_decimal("12.500", 10, 2), Ok(1250));
        assert_eq!(parse_decimal("0", 1, 0), Ok(0));
        assert!(parse_decimal("12.345", 10, 2).is_err());
        assert!(parse_decimal("123456789", 5, 2).is_err());
        assert!(parse_decimal("abc", 10, 2).is_err());
        assert!(parse_decimal("", 10, 2).is_err());
        assert!(parse_decimal("1e", 10, 2).is_err());
        assert_eq!(format_decimal(1250, 2), "12.50");
        assert_eq!(format_decimal(-1, 2), "-0.01");
        assert_eq!(format_decimal(7, 0), "7");
        for v in [0i128, 1, -1, 99_999, -123_456_789] {
            assert_eq!(parse_decimal(&format_decimal(v, 3), 38, 3), Ok(v));
        }
        assert!(
            is_decimal_literal("1e-7")
                && is_decimal_literal("-12.5")
                && !is_decimal_literal("1.2.3")
        );
    }

    /// The hand-written digits print what chrono's `%Y-%m-%d %H:%M:%S` printed, for
    /// instants across years 0..=9999 (leap days, before 1970, the ends of the range), and
    /// chrono's signed form beyond.
    #[test]
    fn format_timestamp_writes_what_chrono_wrote() {
        let chrono_form = |us: i64| {
            let dt = DateTime::from_timestamp_micros(us).unwrap();
            dt.format("%Y-%m-%d %H:%M:%S").to_string()
        };
        let ends = [
            parse_timestamp("0000-01-01 00:00:00").unwrap(),
            parse_timestamp("9999-12-31 23:59:59.999999").unwrap(),
            parse_timestamp("2024-02-29 23:59:59").unwrap(),
            parse_timestamp("1900-02-28 00:00:01").unwrap(),
            -1,
            0,
        ];
        let step = 7_777_777_777_777i64; // about 90 days, in microseconds, with odd digits
        let (lo, hi) = (ends[0], ends[1]);
        let mut us = lo;
        let mut all: Vec<i64> = ends.to_vec();
        while us < hi {
            all.push(us);
            us += step;
        }
        for us in all {
            let whole = us.div_euclid(1_000_000) * 1_000_000;
            let t = format_timestamp(whole);
            assert_eq!(t, chrono_form(whole), "{us}");
            assert_eq!(parse_timestamp(&t), Ok(whole), "{t}");
        }
        for days in (-719_528..=2_932_896)
            .step_by(997)
            .chain([-719_528, 0, -1, 2_932_896])
        {
            let d = EPOCH + chrono::Duration::days(i64::from(days));
            assert_eq!(
                format_date(days),
                d.format("%Y-%m-%d").to_string(),
                "{days}"
            );
        }
        // Beyond four-digit years: chrono's signed form, as before.
        let far = DateTime::from_timestamp(300_000_000_000, 0)
            .unwrap()
            .timestamp_micros();
        assert_eq!(format_timestamp(far), chrono_form(far));
        assert!(format_timestamp(far).starts_with('+'));
    }

    /// The day arithmetic agrees with chrono's on every day of years 0..=9999 and on both
    /// ends of `i32`, and fractions print as chrono's `%.3f`/`%.6f` did.
    #[test]
    fn civil_dates_agree_with_chrono_on_every_day() {
        use chrono::Datelike;
        for days in -719_528..=2_932_896 {
            let d = EPOCH + chrono::Duration::days(i64::from(days));
            let want = (i64::from(d.year()), d.month(), d.day());
            assert_eq!(civil(i64::from(days)), want, "{days}");
        }
        for days in [i32::MIN, i32::MAX, -719_529, 2_932_897] {
            let mut b = Vec::new();
            assert!(!push_date(&mut b, days), "{days}");
            assert!(b.is_empty());
        }
        for (us, want) in [
            (1, "1970-01-01 00:00:00.000001"),
            (-1, "1969-12-31 23:59:59.999999"),
            (1_000, "1970-01-01 00:00:00.001"),
            (120_000, "1970-01-01 00:00:00.120"),
            (123_456_789, "1970-01-01 00:02:03.456789"),
        ] {
            assert_eq!(format_timestamp(us), want);
        }
    }

    /// Decimals and integers written into a buffer read as `Display` and the old
    /// String-building form wrote them, across widths, scales and signs.
    #[test]
    fn decimals_and_integers_print_as_display_does() {
        let old = |unscaled: i128, scale: i8| {
            let digits = unscaled.unsigned_abs().to_string();
            let s = if scale <= 0 {
                let zeros = usize::try_from(-i32::from(scale)).unwrap();
                if digits == "0" {
                    digits
                } else {
                    format!("{digits}{}", "0".repeat(zeros))
                }
            } else {
                let scale = usize::try_from(scale).unwrap();
                let padded = format!("{digits:0>width$}", width = scale + 1);
                let (i, f) = padded.split_at(padded.len() - scale);
                format!("{i}.{f}")
            };
            if unscaled < 0 { format!("-{s}") } else { s }
        };
        let values = [
            0i128,
            1,
            -1,
            9,
            10,
            1250,
            -1250,
            99_999,
            i128::from(u64::MAX),
            i128::from(u64::MAX) + 1,
            -i128::from(u64::MAX) - 1,
            10i128.pow(38) - 1,
            -(10i128.pow(38) - 1),
        ];
        for v in values {
            for scale in [-3i8, 0, 1, 2, 5, 19, 20, 38] {
                assert_eq!(format_decimal(v, scale), old(v, scale), "{v} scale {scale}");
            }
            let mut b = Vec::new();
            push_int(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        }
        for v in [i64::MIN, i64::MAX, 0, -7] {
            let mut b = Vec::new();
            push_int(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        }
    }

    #[test]
    fn dates_and_timestamps_round_trip() {
        assert_eq!(parse_date("1970-01-02"), Ok(1));
        assert_eq!(format_date(parse_date("0001-01-01").unwrap()), "0001-01-01");
        assert!(parse_date("2024-02-30").is_err());
        assert!(parse_date("2024-1-5").is_err());
        for t in [
            "2024-01-01 10:00:00",
            "1969-12-31 23:59:59.999",
            "2024-06-30 12:34:56.123456",
        ] {
            assert_eq!(format_timestamp(parse_timestamp(t).unwrap()), t);
        }
        assert_eq!(
            parse_timestamp("2024-01-01T10:00:00"),
            parse_timestamp("2024-01-01 10:00:00")
        );
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("2024-01-01 24:00:00").is_err());
        assert!(parse_timestamp("2024-01-01 10:00:00.").is_err());
        assert!(parse_timestamp("2024-01-01 10:00:00Z").is_err());
        assert!(parse_timestamp("2024-01-01 10:00:00.1234567").is_err());
        assert_eq!(
            parse_timestamp("2024-01-01 10:00:00.123456000"),
            parse_timestamp("2024-01-01 10:00:00.123456")
        );
        assert_eq!(parse_timestamp("1970-01-01 00:00:01.5"), Ok(1_500_000));
        assert_eq!(parse_timestamp("1969-12-31 23:59:59"), Ok(-1_000_000));
        assert!(parse_date("2024-02-3x").is_err() && parse_date("+024-02-03").is_err());
    }

    #[test]
    fn floats_print_shortest_exact() {
        for v in [
            0.1,
            1e-7,
            1e300,
            -2.5,
            0.30000000000000004,
            f64::MIN_POSITIVE,
        ] {
            assert_eq!(format_f64(v).parse::<f64>().unwrap().to_bits(), v.to_bits());
        }
    }

    #[test]
    fn postgres_text_forms_match_its_output_functions() {
        // Each expected string is what PostgreSQL 15 prints (`value::text`).
        let iv = |m, d, us: i64| pg_interval(m, d, us * 1000).unwrap();
        assert_eq!(
            iv(-10, -3, 14_706_789_000),
            "-10 mons -3 days +04:05:06.789"
        );
        assert_eq!(iv(0, 0, 0), "00:00:00");
        assert_eq!(iv(1, 1, 1), "1 mon 1 day 00:00:00.000001");
        assert_eq!(iv(0, 0, -1_000_000), "-00:00:01");
        assert_eq!(iv(12, 0, 0), "1 year");
        assert_eq!(iv(-12, 0, 0), "-1 years");
        assert_eq!(iv(0, 1, -1_000_000), "1 day -00:00:01");
        assert_eq!(iv(0, -1, 1_000_000), "-1 days +00:00:01");
        assert_eq!(iv(0, 0, 90_000_000_000), "25:00:00");
        assert_eq!(iv(-2, 3, 0), "-2 mons +3 days");
        assert_eq!(iv(0, 0, 3_600_000_000_500_000), "1000000:00:00.5");
        assert_eq!(iv(-1, 0, -1_000_000), "-1 mons -00:00:01");
        assert_eq!(iv(14, 0, 0), "1 year 2 mons");
        assert_eq!(iv(-14, 0, 0), "-1 years -2 mons");
        assert_eq!(
            pg_interval(i32::MAX, i32::MAX, i64::MAX).unwrap(),
            "infinity"
        );
        assert!(pg_interval(0, 0, 1).is_err());

        for (v, t) in [
            (1e15, "1e+15"),
            (1e14, "100000000000000"),
            (123_456_789_012_345.0, "123456789012345"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (-0.0, "-0"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
            (1.5, "1.5"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(pg_float64(v), t);
        }
        for (v, t) in [
            (1_000_000.0f32, "1e+06"),
            (100_000.0, "100000"),
            (123_456.0, "123456"),
            (0.00001, "1e-05"),
            (1.175_494_4e-38, "1.1754944e-38"),
        ] {
            assert_eq!(pg_float32(v), t);
        }

        assert_eq!(pg_date(0).unwrap(), "1970-01-01");
        assert_eq!(pg_date(i32::MIN).unwrap(), "-infinity");
        // 0044-03-15 BC is astronomical year -43
        let ides = chrono::NaiveDate::from_ymd_opt(-43, 3, 15).unwrap();
        let ides = i32::try_from(ides.signed_duration_since(EPOCH).num_days()).unwrap();
        assert_eq!(pg_date(ides).unwrap(), "0044-03-15 BC");
        assert_eq!(
            pg_timestamp(i64::from(ides) * 86_400_000_000, false).unwrap(),
            "0044-03-15 00:00:00 BC"
        );
        assert_eq!(
            pg_timestamp(parse_timestamp("2024-01-01 10:00:00.5").unwrap(), true).unwrap(),
            "2024-01-01 10:00:00.5+00"
        );
        assert_eq!(pg_time(86_400_000_000).unwrap(), "24:00:00");
        assert!(pg_time(-1).is_err());

        use arrow::array::{ArrayRef, Int32Array, ListArray, StringArray};
        use std::sync::Arc;
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None, Some(3)]));
        assert_eq!(
            pg_array(ints.as_ref(), &crate::types::ColumnType::Int32).unwrap(),
            "{1,NULL,3}"
        );
        let texts: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            None,
            Some(""),
            Some(r#"quote"d"#),
            Some("null"),
            Some(r"back\slash"),
            Some("a b"),
            Some("é"),
        ]));
        assert_eq!(
            pg_array(texts.as_ref(), &crate::types::ColumnType::Utf8).unwrap(),
            r#"{a,NULL,"","quote\"d","null","back\\slash","a b",é}"#
        );
        let list = ListArray::from_iter_primitive::<arrow::datatypes::Int32Type, _, _>(vec![
            Some(vec![]),
            None,
        ]);
        let ty = crate::types::ColumnType::List {
            element: Box::new(crate::types::ColumnType::Int32),
        };
        assert_eq!(pg_text(&list, 0, &ty).unwrap(), "{}");
        // a value of another Arrow type, or past the end, is an error, not a panic
        assert!(pg_text(&list, 0, &crate::types::ColumnType::Utf8).is_err());
        assert!(pg_text(&list, 5, &ty).is_err());
    }
}
