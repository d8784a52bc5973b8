//! Chains of bundles (docs/MIGRATIONS.md): a first bundle that records, per cursor table,
//! the high-water mark of its cursor column inside the export's snapshot, then links that
//! each carry the rows at or above their predecessor's mark (minus `--lookback`), and
//! optionally every cursor table's primary-key set so the target can delete what the
//! source deleted. This module holds what export needs to write a link (the predecessor,
//! the bounds, the predicates); import's side is in `import` and `load::ledger`.

use std::collections::HashMap;
use std::time::Duration;

use crate::bundle::catalog::Cursor;
use crate::bundle::check::OpenBundle;
use crate::crypto::keys::Keys;
use crate::types::{ColumnType, TableDef};
use crate::{Error, Result};

/// Where a new bundle sits in a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The chain's name: its first bundle's id (`None` for the first link: its own id).
    pub chain_id: Option<String>,
    /// Place in the chain, from 1.
    pub sequence: u64,
    /// SHA-256 of the predecessor's manifest.json (none for the first link).
    pub prev_manifest_sha256: Option<String>,
}

/// What a link's export needs from its predecessor.
pub struct Prev {
    pub link: Link,
    pub source_id: String,
    /// Cursor of each table, by qualified name.
    pub cursors: HashMap<String, Cursor>,
    /// A warning for the export's report: a signed link names a predecessor that the
    /// signing key's own signature does not cover.
    pub note: Option<String>,
}

/// Reads the predecessor bundle `url`: its manifest (MAC checked with `keys`) and its
/// catalog (authenticated). Its parts are not read: only its marks matter.
///
/// With `sign_key` (the link is to be signed), the predecessor's signature is checked with
/// that key and any `--trust`ed one: the link's signature covers the predecessor's manifest
/// SHA-256, so it vouches for that bundle too. One the keys do not cover gets a warning.
pub fn read_prev(
    url: &str,
    keys: &Keys,
    sign_key: Option<&crate::crypto::signing::SigningKey>,
) -> Result<Prev> {
    // Key errors are about the predecessor, not the bundle being written: said so.
    let about_prev = |e: Error| match e {
        Error::Key(m) => Error::Key(format!(
            "--since {} (the previous link, which export opens to read its marks): {m}",
            crate::redact::display_location(url)
        )),
        other => other,
    };
    let bundle = OpenBundle::open(url, false)?;
    bundle
        .refuse_downgrade(keys, Some(true))
        .map_err(about_prev)?;
    let note = match sign_key {
        Some(k) => {
            let mut trust = keys.trust.clone();
            trust.add(crate::crypto::signing::TrustedKey::parse(
                &k.public_key(),
                "--sign-key",
            )?);
            match bundle.check_signature_with(&trust) {
                Ok(sc) => sc
                    .note
                    .map(|n| format!("--since {}: {n}", crate::redact::display_location(url))),
                Err(e) => Some(format!(
                    "--since {}: the predecessor's signature does not check with the signing key \
                     (key id {}){}: {}. This link's signature covers that bundle's manifest \
                     SHA-256 as its predecessor, so it vouches for a bundle nothing here verified; \
                     compare its fingerprint (`ferry inspect`) with the one its export printed",
                    crate::redact::display_location(url),
                    k.key_id(),
                    if keys.trust.is_empty() {
                        ""
                    } else {
                        " or a --trust key"
                    },
                    // The export goes on: the reason, without a reader's refusal.
                    crate::crypto::signing::refusal_reason(&e.to_string())
                )),
            }
        }
        None => None,
    };
    let unlocked = bundle.unlock(keys).map_err(about_prev)?;
    let catalog = bundle.read_catalog(&unlocked)?;
    let m = &bundle.manifest;
    let chain_id = m.chain_id.clone().ok_or_else(|| {
        Error::Usage(format!(
            "--since {}: that bundle starts no chain (it was exported without --cursor or --since); \
             export a first bundle with --cursor TABLE=COLUMN, import it, then export links with --since",
            crate::redact::display_location(url)
        ))
    })?;
    let cursors = catalog
        .tables
        .iter()
        .filter_map(|t| t.cursor.clone().map(|c| (t.table.qualified(), c)))
        .collect();
    Ok(Prev {
        link: Link {
            chain_id: Some(chain_id),
            sequence: m.sequence + 1,
            prev_manifest_sha256: Some(bundle.manifest_sha256.clone()),
        },
        source_id: m.source_id.clone(),
        cursors,
        note,
    })
}

/// The `--lookback` (given once per kind) that applies to a cursor of type `ty`: the
/// duration for temporal and text cursors, the count for integer ones.
pub fn lookback_for(given: &[Lookback], ty: &ColumnType) -> Option<Lookback> {
    given.iter().copied().find(|l| match l {
        Lookback::Count(_) => is_integer(ty),
        Lookback::Time(_) => !is_integer(ty),
    })
}

/// `--lookback`: how far below the predecessor's mark a link starts reading, so a row
/// whose transaction committed after that export's snapshot with a cursor value below its
/// mark still travels. A duration (`90s`, `5m`, `2h`, `1d`) for temporal cursors, a
/// plain count (`1000`) for integer cursors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookback {
    Time(Duration),
    Count(u64),
}

impl Lookback {
    pub fn parse(s: &str) -> std::result::Result<Lookback, String> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u64>() {
            return Ok(Lookback::Count(n));
        }
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: u64 = num.parse().map_err(|_| {
            format!("{s:?}: give a duration such as 90s, 5m, 2h, 1d, or a count such as 1000")
        })?;
        let secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => {
                return Err(format!(
                    "{s:?}: unknown unit {unit:?} (s, m, h or d; a bare number is a count for integer cursors)"
                ));
            }
        };
        n.checked_mul(secs)
            .map(|t| Lookback::Time(Duration::from_secs(t)))
            .ok_or_else(|| format!("{s:?}: too long"))
    }
}

/// The lower bound a link reads `column` from: the predecessor's mark minus `lookback`,
/// printed the way the source printed the mark (a temporal mark keeps its separator,
/// fractional digits and zone suffix). Errors name the table and column.
pub fn since_bound(
    table: &str,
    column: &str,
    ty: &ColumnType,
    mark: &str,
    lookback: Option<Lookback>,
) -> Result<String> {
    let bad = |m: String| Error::Usage(format!("table {table}, cursor column {column:?}: {m}"));
    let integer = is_integer(ty);
    match lookback {
        None => Ok(mark.to_string()),
        Some(Lookback::Count(n)) if integer => {
            let m: i128 = mark
                .parse()
                .map_err(|_| bad(format!("high-water mark {mark:?} is not an integer")))?;
            Ok((m - i128::from(n)).to_string())
        }
        Some(Lookback::Count(0)) => Ok(mark.to_string()),
        Some(Lookback::Count(_)) => Err(bad(
            "--lookback is a count, but the column is not an integer: give a duration (5m)".into(),
        )),
        Some(Lookback::Time(_)) if integer => Err(bad(
            "--lookback is a duration, but the column is an integer: give a count (1000)".into(),
        )),
        Some(Lookback::Time(d)) => minus_duration(mark, d).ok_or_else(|| {
            bad(format!(
                "high-water mark {mark:?} is not a date or timestamp ferry can step back from"
            ))
        }),
    }
}

/// `2026-12-03 16:50:00.123+00` minus `d`, in the same form.
fn minus_duration(mark: &str, d: Duration) -> Option<String> {
    use chrono::{NaiveDate, NaiveDateTime};
    let step = chrono::Duration::from_std(d).ok()?;
    if mark.len() == 10 {
        let day = NaiveDate::parse_from_str(mark, "%Y-%m-%d").ok()?;
        let back = day.and_hms_opt(0, 0, 0)? - step;
        // A date column compares with a date: step back whole days (rounding down).
        return Some(back.date().format("%Y-%m-%d").to_string());
    }
    if mark.len() < 19 {
        return None;
    }
    let sep = mark.as_bytes().get(10).copied()?;
    if sep != b' ' && sep != b'T' {
        return None;
    }
    // The date and time, an optional fraction, then an optional zone suffix kept as is.
    let mut end = 19;
    let bytes = mark.as_bytes();
    if bytes.get(19) == Some(&b'.') {
        end = 20;
        while bytes.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
    }
    let (stamp, zone) = mark.split_at(end);
    let fmt = if sep == b'T' {
        "%Y-%m-%dT%H:%M:%S%.f"
    } else {
        "%Y-%m-%d %H:%M:%S%.f"
    };
    let t = NaiveDateTime::parse_from_str(stamp, fmt).ok()?;
    let back = t - step;
    let digits = end.saturating_sub(20);
    let base = back.format(if sep == b'T' {
        "%Y-%m-%dT%H:%M:%S"
    } else {
        "%Y-%m-%d %H:%M:%S"
    });
    let frac = if digits > 0 {
        let nanos = format!("{:09}", back.and_utc().timestamp_subsec_nanos());
        format!(".{}", &nanos[..digits.min(9)])
    } else {
        String::new()
    };
    Some(format!("{base}{frac}{zone}"))
}

/// `column >= bound` in the source's dialect, `OR column IS NULL` when it may be NULL: such rows
/// travel in every link (a cursor cannot tell when they changed).
pub fn cursor_predicate(
    engine: crate::expr::Engine,
    table: &TableDef,
    column: &str,
    bound: &str,
) -> Result<String> {
    let col = table
        .columns
        .iter()
        .find(|c| c.name == column)
        .ok_or_else(|| {
            Error::Usage(format!(
                "table {}: no cursor column {column:?}",
                table.qualified()
            ))
        })?;
    let integer = is_integer(&col.ty);
    crate::expr::cursor_bound(engine, column, bound, integer, col.nullable).map_err(|why| {
        Error::Usage(format!(
            "table {}, cursor {column:?}: the bound {why}",
            table.qualified()
        ))
    })
}

/// A text cursor's mark must read as an ISO-8601 date or timestamp: other text sorts in an
/// order that says nothing about when a row changed.
pub fn text_mark_ok(mark: &str) -> bool {
    minus_duration(mark, Duration::ZERO).is_some()
}

fn is_integer(ty: &ColumnType) -> bool {
    ty.is_integer()
}

/// A column may be a cursor when it grows with every change: integers, dates, timestamps,
/// and text (SQLite keeps timestamps as ISO-8601 text, which sorts as it reads).
pub fn cursor_type_ok(ty: &ColumnType) -> bool {
    is_integer(ty)
        || matches!(
            ty,
            ColumnType::Date32 | ColumnType::Timestamp { .. } | ColumnType::Utf8
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookback_parses_durations_and_counts() {
        assert_eq!(
            Lookback::parse("5m"),
            Ok(Lookback::Time(Duration::from_secs(300)))
        );
        assert_eq!(
            Lookback::parse("2h"),
            Ok(Lookback::Time(Duration::from_secs(7200)))
        );
        assert_eq!(Lookback::parse("1000"), Ok(Lookback::Count(1000)));
        assert!(Lookback::parse("5 weeks").is_err());
        assert!(Lookback::parse("m").is_err());
    }

    #[test]
    fn a_temporal_mark_steps_back_in_its_own_form() {
        let d = Duration::from_secs(300);
        assert_eq!(
            minus_duration("2026-12-03 16:50:00", d).as_deref(),
            Some("2026-12-03 16:45:00")
        );
        assert_eq!(
            minus_duration("2026-12-03 00:02:00.123456+00", d).as_deref(),
            Some("2026-12-02 23:57:00.123456+00")
        );
        assert_eq!(
            minus_duration("2026-12-03T16:50:00.5+05:30", d).as_deref(),
            Some("2026-12-03T16:45:00.5+05:30")
        );
        assert_eq!(
            minus_duration("2026-12-03", Duration::from_secs(3600)).as_deref(),
            Some("2026-12-02")
        );
        assert_eq!(minus_duration("yesterday", d), None);
    }

    #[test]
    fn an_integer_mark_steps_back_by_a_count_and_refuses_a_duration() {
        let b = since_bound(
            "t",
            "id",
            &ColumnType::Int64,
            "1000",
            Some(Lookback::Count(10)),
        )
        .unwrap();
        assert_eq!(b, "990");
        assert!(
            since_bound(
                "t",
                "id",
                &ColumnType::Int64,
                "1000",
                Some(Lookback::Time(Duration::from_secs(5)))
            )
            .is_err()
        );
        assert!(
            since_bound(
                "t",
                "ts",
                &ColumnType::Timestamp { utc: false },
                "2026-01-01 00:00:00",
                Some(Lookback::Count(5))
            )
            .is_err()
        );
    }
}
