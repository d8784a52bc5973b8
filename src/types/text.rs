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
    let neg = unscaled < 0;
    let digits = unscaled.unsigned_abs().to_string();
    let s = if scale <= 0 {
        let zeros = usize::try_from(-i32::from(scale)).unwrap_or(0);
        if digits == "0" {
            digits
        } else {
            format!("{digits}{}", "0".repeat(zeros))
        }
    } else {
        let scale = usize::try_from(scale).unwrap_or(0);
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (i, f) = padded.split_at(padded.len() - scale);
        format!("{i}.{f}")
    };
    if neg { format!("-{s}") } else { s }
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
    EPOCH
        .checked_add_signed(chrono::Duration::days(i64::from(days)))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("(day {days})"))
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
    let Some(dt) = DateTime::from_timestamp_micros(micros) else {
        return format!("(timestamp {micros})");
    };
    let frac = micros.rem_euclid(1_000_000);
    let base = dt.format("%Y-%m-%d %H:%M:%S").to_string();
    if frac == 0 {
        base
    } else if frac % 1000 == 0 {
        format!("{base}.{:03}", frac / 1000)
    } else {
        format!("{base}.{frac:06}")
    }
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
}
