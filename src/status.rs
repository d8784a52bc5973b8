//! `ferry status TARGET`: what a target's ledger says it holds, per source and chain:
//! the bundles applied (sequence, time, rows, parts), the links of each chain, and what is
//! unfinished (a replace whose parts wait in staging, a link with parts still to load).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::Result;
use crate::load::ledger::{CHAIN_LINK, STAGED};
use crate::report::RunReport;

/// One bundle as the ledger records it.
#[derive(Default)]
struct Held {
    source_id: String,
    sequence: u64,
    rows: u64,
    /// Rows the target refused (`import --on-error skip`).
    rejected: u64,
    parts: u64,
    staged: u64,
    first: String,
    last: String,
    tables: std::collections::BTreeSet<String>,
    /// (chain id, parts the link has) when the bundle is a link.
    link: Option<(String, u64)>,
}

pub fn status(target_url: &str, target_schema: Option<&str>) -> Result<RunReport> {
    let started = Instant::now();
    crate::engines::check_target_schema(target_url, target_schema)?;
    let mut target = crate::engines::open_target(target_url, target_schema)?;
    if target_schema.is_some() {
        target.separate_ledger()?;
    }
    let rows = crate::load::ledger::all_rows(target.as_mut())?;
    let mut bundles: BTreeMap<String, Held> = BTreeMap::new();
    for r in &rows {
        let [bundle, _part, source, seq, table, n, mode, at, _, rejected] = &r[..] else {
            continue;
        };
        if mode == CHAIN_LINK {
            // Keyed by the chain's place: the bundle is in `target_table`.
            let h = bundles.entry(table.clone()).or_default();
            h.link = Some((bundle.clone(), n.parse().unwrap_or(0)));
            continue;
        }
        let h = bundles.entry(bundle.clone()).or_default();
        h.source_id.clone_from(source);
        h.sequence = seq.parse().unwrap_or(0);
        if h.first.is_empty() {
            h.first.clone_from(at);
        }
        h.last.clone_from(at);
        h.parts += 1;
        // A key set's rows are keys, not rows the bundle brought.
        if mode != "deletes" {
            h.rows += n.parse::<u64>().unwrap_or(0);
            h.rejected += rejected.parse::<u64>().unwrap_or(0);
        }
        if mode == STAGED {
            h.staged += 1;
        }
        h.tables.insert(table.clone());
    }
    let mut report = RunReport::new("status");
    let mut unfinished = 0;
    // Chains first (by chain, then sequence), then other bundles by source and sequence.
    let mut order: Vec<(&String, &Held)> = bundles.iter().collect();
    order.sort_by(|(_, a), (_, b)| {
        let key = |h: &Held| {
            (
                h.link.is_none(),
                h.link.clone().map(|l| l.0),
                h.source_id.clone(),
                h.sequence,
            )
        };
        key(a).cmp(&key(b))
    });
    let mut chains = std::collections::BTreeSet::new();
    for (id, h) in order {
        let done = h.staged == 0 && h.link.as_ref().is_none_or(|(_, parts)| h.parts >= *parts);
        if !done {
            unfinished += 1;
        }
        let what = match &h.link {
            Some((chain, parts)) => {
                chains.insert(chain.clone());
                format!(
                    "chain {} link {}{}",
                    chain.chars().take(12).collect::<String>(),
                    h.sequence,
                    if h.parts < *parts {
                        format!(" ({} of {parts} parts)", h.parts)
                    } else {
                        String::new()
                    }
                )
            }
            None => format!("source {} sequence {}", h.source_id, h.sequence),
        };
        let state = if h.staged > 0 {
            format!(
                "unfinished: {} parts wait in staging (re-run its replace import)",
                h.staged
            )
        } else if !done {
            "unfinished: re-run its import".to_string()
        } else {
            format!("applied {} .. {}", h.first, h.last)
        };
        let rejected = if h.rejected > 0 {
            format!(
                "; {} refused by the target and set aside",
                crate::report::rows_word(h.rejected)
            )
        } else {
            String::new()
        };
        report
            .add_table(
                &format!("{id} {what}"),
                h.rows,
                0,
                h.parts,
                std::time::Duration::ZERO,
                &format!(
                    "{state}{rejected}; tables: {}",
                    h.tables.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
            .rows_rejected = h.rejected;
    }
    report.status = "status".into();
    report.close(started.elapsed());
    report.message = if bundles.is_empty() {
        format!(
            "{} holds no ferry ledger: nothing was imported here",
            crate::redact::display_url(target_url)
        )
    } else {
        format!(
            "{}: {} bundle{} ({} in {} chain{}), {unfinished} unfinished",
            crate::redact::display_url(target_url),
            bundles.len(),
            if bundles.len() == 1 { "" } else { "s" },
            bundles.values().filter(|h| h.link.is_some()).count(),
            chains.len(),
            if chains.len() == 1 { "" } else { "s" },
        )
    };
    Ok(report)
}
