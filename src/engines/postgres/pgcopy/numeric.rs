//! PostgreSQL `numeric` in its binary form (`numeric_send` / `numeric_recv`): u16 ndigits,
//! i16 weight, u16 sign, u16 dscale, then ndigits base-10000 digits, most significant first.
//! ndigits is unsigned: `numeric_recv` reads it as uint16 and `numeric_send` writes the low 16
//! bits, so a value of more than 32767 digit groups (`9e131071 + 1` has 32768) has the high
//! bit set. A stored value has weight -4096..=32767 (at most 131072 decimal digits before the
//! point, `make_result` refuses a weight beyond int16) and dscale 0..=16383, so at most
//! 36864 groups; a client may send up to 65535.
//! The value is `sum(digit[i] * 10000^(weight - i))`; dscale is the number of decimal places
//! PostgreSQL prints. Stored values are normalised: no leading or trailing zero digits, zero
//! has no digits, weight 0 and a positive sign, and no nonzero digit lies beyond dscale.
//!
//! The encoder reproduces that normalisation (and the header PostgreSQL 14+ sends for ±Infinity)
//! so that a value read and written back is byte-identical.

use arrow::datatypes::i256;

use super::ValueError;

const POS: u16 = 0x0000;
const NEG: u16 = 0x4000;
const NAN: u16 = 0xC000;
const PINF: u16 = 0xD000;
const NINF: u16 = 0xF000;
/// numeric_recv refuses a dscale outside this mask.
const DSCALE_MAX: u32 = 0x3FFF;
const NBASE: u16 = 10_000;

/// The dscale `numeric_send` writes for ±Infinity: the special header's bits read through the
/// short-format dscale mask (0x1000 >> 7). Written the same way so bytes match PostgreSQL's.
const INF_DSCALE: u16 = 0x20;

/// A binary numeric, validated, borrowing its digits from the stream.
pub(super) struct NumericView<'a> {
    weight: i16,
    sign: u16,
    dscale: u16,
    digits: &'a [u8],
}

impl<'a> NumericView<'a> {
    pub(super) fn parse(b: &'a [u8]) -> Result<Self, String> {
        let header: [u8; 8] = b.get(..8).and_then(|h| h.try_into().ok()).ok_or_else(|| {
            format!(
                "numeric value of {} bytes is shorter than its header",
                b.len()
            )
        })?;
        let ndigits = usize::from(u16::from_be_bytes([header[0], header[1]]));
        let weight = i16::from_be_bytes([header[2], header[3]]);
        let sign = u16::from_be_bytes([header[4], header[5]]);
        let dscale = u16::from_be_bytes([header[6], header[7]]);
        let digits = &b[8..];
        if digits.len() != ndigits * 2 {
            return Err(format!(
                "numeric value says {ndigits} digits but carries {} bytes of them",
                digits.len()
            ));
        }
        if !matches!(sign, POS | NEG | NAN | PINF | NINF) {
            return Err(format!(
                "numeric value has an invalid sign word 0x{sign:04x}"
            ));
        }
        if u32::from(dscale) > DSCALE_MAX {
            return Err(format!(
                "numeric value has an invalid display scale {dscale}"
            ));
        }
        if digits
            .chunks_exact(2)
            .any(|d| u16::from_be_bytes([d[0], d[1]]) >= NBASE)
        {
            return Err("numeric value has a digit outside 0..9999".into());
        }
        Ok(NumericView {
            weight,
            sign,
            dscale,
            digits,
        })
    }

    fn ndigits(&self) -> usize {
        self.digits.len() / 2
    }

    fn digit(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.digits[2 * i], self.digits[2 * i + 1]])
    }

    /// Digits up to and including the last nonzero one.
    fn significant(&self) -> usize {
        let mut n = self.ndigits();
        while n > 0 && self.digit(n - 1) == 0 {
            n -= 1;
        }
        n
    }

    /// Appends the text PostgreSQL prints for this value (`get_str_from_var`): all dscale
    /// decimals, "NaN", "Infinity", "-Infinity". A nonzero digit beyond dscale (which
    /// PostgreSQL never stores) is an error rather than silently cut.
    pub(super) fn write_text(&self, out: &mut String) -> Result<(), String> {
        match self.sign {
            NAN => {
                out.push_str("NaN");
                return Ok(());
            }
            PINF => {
                out.push_str("Infinity");
                return Ok(());
            }
            NINF => {
                out.push_str("-Infinity");
                return Ok(());
            }
            _ => {}
        }
        let nd = self.significant();
        let weight = i32::from(self.weight);
        if nd > 0 {
            // Decimal places needed to show the last nonzero digit.
            let last = i32::try_from(nd).unwrap_or(i32::MAX) - 1;
            let mut d = self.digit(nd - 1);
            let mut tz = 0;
            while d.is_multiple_of(10) {
                d /= 10;
                tz += 1;
            }
            let needed = 4 * (last - weight) - tz;
            if needed > i32::from(self.dscale) {
                return Err(format!(
                    "numeric value has digits beyond its display scale {}",
                    self.dscale
                ));
            }
        }
        let digit_at = |i: i32| -> u16 {
            usize::try_from(i)
                .ok()
                .filter(|&i| i < nd)
                .map_or(0, |i| self.digit(i))
        };
        if self.sign == NEG {
            out.push('-');
        }
        if weight < 0 {
            out.push('0');
        } else {
            push_leading(out, digit_at(0));
            for i in 1..=weight {
                push_group(out, digit_at(i), 4);
            }
        }
        let mut left = usize::from(self.dscale);
        if left > 0 {
            out.push('.');
            let mut i = weight + 1;
            while left > 0 {
                let n = left.min(4);
                push_group(out, digit_at(i), n);
                left -= n;
                i += 1;
            }
        }
        Ok(())
    }

    /// The text for messages; never fails.
    fn display(&self) -> String {
        let mut s = String::new();
        if self.write_text(&mut s).is_err() {
            s = "(malformed numeric)".into();
        }
        s
    }

    /// The unscaled integer of this value in a `decimal(precision, scale)`; exact or an error.
    /// NaN and ±Infinity are `needs_text` errors: valid values a decimal cannot carry.
    pub(super) fn to_decimal<T: DecimalInt>(
        &self,
        precision: u8,
        scale: i8,
    ) -> Result<T, ValueError> {
        self.convert(precision, scale, true)
    }

    /// [`Self::to_decimal`], with or without its 64-bit shortcut (the tests compare the two).
    pub(super) fn convert<T: DecimalInt>(
        &self,
        precision: u8,
        scale: i8,
        shortcut: bool,
    ) -> Result<T, ValueError> {
        let cannot =
            |what: &str| format!("numeric {what} cannot be stored in decimal({precision},{scale})");
        let special = |what: &str| {
            ValueError::needs_text(format!(
                "{}; only the column's text form can carry it",
                cannot(what)
            ))
        };
        match self.sign {
            NAN => return Err(special("NaN")),
            PINF => return Err(special("Infinity")),
            NINF => return Err(special("-Infinity")),
            _ => {}
        }
        let nd = self.significant();
        if nd == 0 {
            return Ok(T::ZERO);
        }
        let too_long = || cannot(&self.display());
        let last = i32::try_from(nd).map_err(|_| too_long())? - 1;
        // value = N * 10^e where N is the digits read as one base-10000 integer.
        let e = 4 * (i32::from(self.weight) - last) + i32::from(scale);
        // The common case in 64-bit arithmetic: an i128 checked multiply is a library call,
        // and this conversion ran at 35 ns a value. Anything it does not take (more than
        // four digit groups, a product past u64, dropped nonzero places, too many digits)
        // goes the general way below, which also words the error.
        if shortcut
            && let Some(v) = self.small(nd, e)
            && pow10_u64(usize::from(precision)).is_none_or(|limit| v < limit)
            && let Ok(v) = i64::try_from(v)
        {
            return Ok(T::from_i64(if self.sign == NEG { -v } else { v }));
        }
        let mut v = T::ZERO;
        let nbase = T::from_u16(NBASE);
        let fold = |v: T, i: usize| {
            v.checked_mul(nbase)?
                .checked_add(T::from_u16(self.digit(i)))
        };
        if e >= 0 {
            for i in 0..nd {
                v = fold(v, i).ok_or_else(too_long)?;
            }
            let p = u32::try_from(e)
                .ok()
                .and_then(T::pow10)
                .ok_or_else(too_long)?;
            v = v.checked_mul(p).ok_or_else(too_long)?;
        } else {
            // The last digit loses `cut` decimal places, which must all be zeros.
            let cut = u32::try_from(-e).map_err(|_| too_long())?;
            let last = self.digit(nd - 1);
            if cut >= 4 || !last.is_multiple_of(10u16.pow(cut)) {
                return Err(if scale >= 0 {
                    format!(
                        "numeric {} has more than {scale} decimal places, which decimal({precision},{scale}) cannot hold",
                        self.display()
                    )
                } else {
                    cannot(&self.display())
                }
                .into());
            }
            for i in 0..nd - 1 {
                v = fold(v, i).ok_or_else(too_long)?;
            }
            let shift = T::pow10(4 - cut).ok_or_else(too_long)?;
            v = v
                .checked_mul(shift)
                .and_then(|v| v.checked_add(T::from_u16(last / 10u16.pow(cut))))
                .ok_or_else(too_long)?;
        }
        let limit = T::pow10(u32::from(precision)).ok_or_else(too_long)?;
        if !v.lt(limit) {
            return Err(too_long().into());
        }
        Ok(if self.sign == NEG { v.neg() } else { v })
    }

    /// `to_decimal`'s magnitude in u64 when the value has at most four digit groups (so
    /// N < 10^16) and needs no nonzero place dropped; `None` sends it the general way.
    fn small(&self, nd: usize, e: i32) -> Option<u64> {
        if nd > 4 {
            return None;
        }
        let fold =
            |n: usize| (0..n).fold(0u64, |w, i| w * u64::from(NBASE) + u64::from(self.digit(i)));
        if e >= 0 {
            return fold(nd).checked_mul(pow10_u64(usize::try_from(e).ok()?)?);
        }
        let cut = u32::try_from(-e).ok().filter(|&c| c < 4)?;
        let last = self.digit(nd - 1);
        let unit = 10u16.pow(cut);
        if !last.is_multiple_of(unit) {
            return None;
        }
        // At most three groups before the last: below 10^12, times 10^4 at most.
        Some(fold(nd - 1) * 10u64.pow(4 - cut) + u64::from(last / unit))
    }
}

/// 10^n when a u64 holds it (n up to 19).
fn pow10_u64(n: usize) -> Option<u64> {
    POW10_I128.get(n).and_then(|&p| u64::try_from(p).ok())
}

fn push_leading(out: &mut String, d: u16) {
    if d >= 1000 {
        push_group(out, d, 4);
    } else if d >= 100 {
        push_group(out, d * 10, 3);
    } else if d >= 10 {
        push_group(out, d * 100, 2);
    } else {
        push_group(out, d * 1000, 1);
    }
}

/// Pushes the first `n` of the four decimal digits of `d`.
fn push_group(out: &mut String, d: u16, n: usize) {
    let ds = [d / 1000, d / 100 % 10, d / 10 % 10, d % 10];
    for &x in &ds[..n] {
        out.push(char::from(b'0' + u8::try_from(x).unwrap_or(0)));
    }
}

/// The integer types of Arrow's decimals.
pub(super) trait DecimalInt: Copy {
    const ZERO: Self;
    fn from_u16(v: u16) -> Self;
    fn from_i64(v: i64) -> Self;
    fn checked_mul(self, o: Self) -> Option<Self>;
    fn checked_add(self, o: Self) -> Option<Self>;
    fn neg(self) -> Self;
    fn lt(self, o: Self) -> bool;
    fn pow10(n: u32) -> Option<Self>;
}

const POW10_I128: [i128; 39] = {
    let mut t = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

impl DecimalInt for i128 {
    const ZERO: Self = 0;
    fn from_u16(v: u16) -> Self {
        i128::from(v)
    }
    fn from_i64(v: i64) -> Self {
        i128::from(v)
    }
    fn checked_mul(self, o: Self) -> Option<Self> {
        i128::checked_mul(self, o)
    }
    fn checked_add(self, o: Self) -> Option<Self> {
        i128::checked_add(self, o)
    }
    fn neg(self) -> Self {
        -self
    }
    fn lt(self, o: Self) -> bool {
        self < o
    }
    fn pow10(n: u32) -> Option<Self> {
        usize::try_from(n)
            .ok()
            .and_then(|n| POW10_I128.get(n).copied())
    }
}

impl DecimalInt for i256 {
    const ZERO: Self = i256::ZERO;
    fn from_u16(v: u16) -> Self {
        i256::from_i128(i128::from(v))
    }
    fn from_i64(v: i64) -> Self {
        i256::from_i128(i128::from(v))
    }
    fn checked_mul(self, o: Self) -> Option<Self> {
        i256::checked_mul(self, o)
    }
    fn checked_add(self, o: Self) -> Option<Self> {
        i256::checked_add(self, o)
    }
    fn neg(self) -> Self {
        self.wrapping_neg()
    }
    fn lt(self, o: Self) -> bool {
        self < o
    }
    fn pow10(n: u32) -> Option<Self> {
        i256::from_i128(10).checked_pow(n)
    }
}

const CHUNK: u64 = 10_000_000_000_000_000; // 10^16 = 10000^4

/// Writes numerics in PostgreSQL's normalised binary form; keeps a scratch buffer.
#[derive(Default)]
pub(super) struct NumericWriter {
    /// Base-10000 groups of the integer being written, least significant first.
    groups: Vec<u16>,
}

impl NumericWriter {
    /// `unscaled * 10^-scale`, with dscale `max(scale, 0)` as PostgreSQL gives a numeric(p,s).
    pub(super) fn decimal128(
        &mut self,
        unscaled: i128,
        scale: i8,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let u = unscaled.unsigned_abs();
        self.groups.clear();
        let chunk = u128::from(CHUNK);
        let lo = u64::try_from(u % chunk).unwrap_or(0);
        let rest = u / chunk;
        push_chunk(&mut self.groups, lo);
        if rest != 0 {
            push_chunk(&mut self.groups, u64::try_from(rest % chunk).unwrap_or(0));
            push_chunk(&mut self.groups, u64::try_from(rest / chunk).unwrap_or(0));
        }
        self.finish(unscaled < 0, -i32::from(scale), out)
    }

    pub(super) fn decimal256(
        &mut self,
        unscaled: i256,
        scale: i8,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let mut u = unscaled
            .checked_abs()
            .ok_or_else(|| "decimal value is out of range".to_string())?;
        self.groups.clear();
        let chunk = i256::from_i128(i128::from(CHUNK));
        while u != i256::ZERO {
            let (q, r) = u
                .checked_div_rem(chunk)
                .ok_or_else(|| "decimal value is out of range".to_string())?;
            let r = r.to_i128().and_then(|r| u64::try_from(r).ok()).unwrap_or(0);
            push_chunk(&mut self.groups, r);
            u = q;
        }
        self.finish(unscaled.is_negative(), -i32::from(scale), out)
    }

    /// Numeric text as `numeric_in` reads it: `[+-]digits[.digits][e[+-]digits]`, or NaN,
    /// Infinity, -Infinity (any case, `inf` too), with surrounding white space.
    pub(super) fn text(&mut self, s: &str, out: &mut Vec<u8>) -> Result<(), String> {
        let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
        let special = |sign: u16, dscale: u16, out: &mut Vec<u8>| {
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0]);
            out.extend_from_slice(&sign.to_be_bytes());
            out.extend_from_slice(&dscale.to_be_bytes());
            Ok(())
        };
        let lower = |w: &str| t.eq_ignore_ascii_case(w);
        if lower("nan") {
            return special(NAN, 0, out);
        }
        if lower("infinity") || lower("+infinity") || lower("inf") || lower("+inf") {
            return special(PINF, INF_DSCALE, out);
        }
        if lower("-infinity") || lower("-inf") {
            return special(NINF, INF_DSCALE, out);
        }
        let bad = || format!("{s:?} is not a number");
        let b = t.as_bytes();
        let (neg, b) = match b.first() {
            Some(b'-') => (true, &b[1..]),
            Some(b'+') => (false, &b[1..]),
            _ => (false, b),
        };
        let overflows = || format!("{s:?} overflows PostgreSQL's numeric format");
        let (mantissa, exp) = match b.iter().position(|&c| c == b'e' || c == b'E') {
            Some(i) => {
                let e = &b[i + 1..];
                let digits = e.strip_prefix(b"-").or(e.strip_prefix(b"+")).unwrap_or(e);
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(bad());
                }
                // numeric_in's bound (|exponent| < INT_MAX / 2; old releases stopped at
                // 1000, but numeric_recv has no such bound); the weight and dscale checks in
                // `pack` say whether the value itself fits, as make_result does.
                let e: i64 = std::str::from_utf8(e)
                    .ok()
                    .and_then(|e| e.parse().ok())
                    .filter(|e: &i64| e.unsigned_abs() < u64::from(i32::MAX.unsigned_abs() / 2))
                    .ok_or_else(overflows)?;
                (&b[..i], e)
            }
            None => (b, 0),
        };
        let (int, frac) = match mantissa.iter().position(|&c| c == b'.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, &[][..]),
        };
        if (int.is_empty() && frac.is_empty())
            || !int.iter().all(u8::is_ascii_digit)
            || !frac.iter().all(u8::is_ascii_digit)
        {
            return Err(bad());
        }
        // value = D * 10^t, D = int ++ frac as one integer.
        let frac_len = i64::try_from(frac.len()).map_err(|_| overflows())?;
        let t = exp - frac_len;
        let m = usize::try_from(t.rem_euclid(4)).unwrap_or(0);
        // Group from the right after appending `m` zeros, so the point falls on a boundary.
        let total = int.len() + frac.len() + m;
        self.groups.clear();
        self.groups.resize(total.div_ceil(4), 0);
        for (p, &c) in int.iter().chain(frac).enumerate() {
            let from_right = total - 1 - p;
            let g = &mut self.groups[from_right / 4];
            *g += u16::from(c - b'0') * 10u16.pow(u32::try_from(from_right % 4).unwrap_or(0));
        }
        self.pack(neg, t.div_euclid(4), (-t).max(0), out)
    }

    /// `groups * 10^t` (groups least significant first) with dscale `max(-t, 0)`.
    fn finish(&mut self, neg: bool, t: i32, out: &mut Vec<u8>) -> Result<(), String> {
        let m = t.rem_euclid(4);
        if m != 0 {
            // Shift left by m decimal digits so the decimal point falls between groups.
            let mul = 10u32.pow(m.unsigned_abs());
            let mut carry = 0u32;
            for g in &mut self.groups {
                let x = u32::from(*g) * mul + carry;
                *g = u16::try_from(x % 10_000).unwrap_or(0);
                carry = x / 10_000;
            }
            if carry != 0 {
                self.groups.push(u16::try_from(carry).unwrap_or(0));
            }
        }
        self.pack(neg, i64::from(t.div_euclid(4)), i64::from((-t).max(0)), out)
    }

    /// Writes `sum(groups[i] * 10000^(i + k))` normalised, with the given dscale, within the
    /// limits of `make_result`: weight an i16 and dscale at most 16383. ndigits is written as
    /// u16, as `numeric_send` does (`numeric_recv` reads it unsigned).
    fn pack(&self, neg: bool, k: i64, dscale: i64, out: &mut Vec<u8>) -> Result<(), String> {
        let dscale = u16::try_from(dscale)
            .ok()
            .filter(|&d| u32::from(d) <= DSCALE_MAX)
            .ok_or_else(|| {
                format!("numeric has {dscale} decimal places; PostgreSQL allows {DSCALE_MAX}")
            })?;
        let Some(hi) = self.groups.iter().rposition(|&g| g != 0) else {
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&dscale.to_be_bytes());
            return Ok(());
        };
        let lo = self.groups.iter().position(|&g| g != 0).unwrap_or(hi);
        let too_big = || {
            "numeric is out of PostgreSQL's range (at most 131072 digits before the decimal point)"
                .to_string()
        };
        let weight = i64::try_from(hi)
            .ok()
            .and_then(|h| h.checked_add(k))
            .and_then(|w| i16::try_from(w).ok())
            .ok_or_else(too_big)?;
        let ndigits = u16::try_from(hi - lo + 1).map_err(|_| too_big())?;
        let len = 8 + 2 * i32::from(ndigits);
        out.reserve(4 + usize::try_from(len).unwrap_or(0));
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&ndigits.to_be_bytes());
        out.extend_from_slice(&weight.to_be_bytes());
        out.extend_from_slice(&(if neg { NEG } else { POS }).to_be_bytes());
        out.extend_from_slice(&dscale.to_be_bytes());
        for g in self.groups[lo..=hi].iter().rev() {
            out.extend_from_slice(&g.to_be_bytes());
        }
        Ok(())
    }
}

/// Appends the four base-10000 groups of `c < 10^16`, least significant first.
fn push_chunk(groups: &mut Vec<u16>, mut c: u64) {
    for _ in 0..4 {
        groups.push(u16::try_from(c % 10_000).unwrap_or(0));
        c /= 10_000;
    }
}
