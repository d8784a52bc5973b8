//! `ferry compare`: row counts and order-independent content fingerprints per table
//! ([`crate::types::fingerprint`]), read through the same readers as export, so two
//! databases of different engines compare by their canonical values.

use std::time::Instant;

use crate::Result;
use crate::report::{Progress, RunReport};
use crate::source::{self, BatchLimits, Selection};

pub use crate::types::fingerprint::Fingerprint;

/// What `compare` found for one table.
#[derive(Debug, Clone)]
pub struct TableComparison {
    pub table: String,
    pub a: Option<Fingerprint>,
    pub b: Option<Fingerprint>,
}

/// A table's name, (fingerprint, column names) and the time its read took.
type Fingerprinted = (String, (Fingerprint, Vec<String>), std::time::Duration);

/// Fingerprints every selected table in one snapshot; also returns the notes of tables
/// read again with a column retyped ([`source::read_retyping`]).
fn fingerprint_all(
    src: &mut dyn source::Source,
    sel: &Selection,
) -> Result<(Vec<Fingerprinted>, Vec<String>)> {
    src.begin_snapshot()?;
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    for t in src.tables(sel)? {
        let t0 = Instant::now();
        let (fp, _, retyped) = source::read_retyping(src, &t, |src, def| {
            let mut fp = Fingerprint::default();
            src.read(def, None, BatchLimits::default(), &mut |b| fp.add(&b))?;
            Ok(fp)
        })?;
        notes.extend(retyped);
        let mut columns: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
        columns.sort();
        out.push((t.qualified(), (fp, columns), t0.elapsed()));
    }
    Ok((out, notes))
}

/// Names `schema.t` on the side with schemas as plain `t` when `t` is a table of the other
/// side and no other schema there has a `t`, so the two are compared with each other.
fn unqualify<T, U>(flat: &[(String, T, U)], schemed: &mut [(String, T, U)]) {
    let base = |n: &str| n.rsplit_once('.').map_or(n, |(_, b)| b).to_string();
    let bases: Vec<String> = schemed.iter().map(|(n, ..)| base(n)).collect();
    for (n, ..) in schemed.iter_mut() {
        let b = base(n);
        if bases.iter().filter(|x| **x == b).count() == 1 && flat.iter().any(|(f, ..)| *f == b) {
            *n = b;
        }
    }
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
        progress.line(&format!(
            "fingerprinting {}",
            crate::redact::display_url(url)
        ));
        fingerprint_all(
            crate::engines::open_source(url, Default::default())?.as_mut(),
            &sel,
        )
    };
    let (mut fa, mut notes) = side(a_url)?;
    let (mut fb, more) = side(b_url)?;
    notes.extend(more);
    // One side without schemas (MySQL, SQLite), the other with (PostgreSQL): `t` and
    // `public.t` are the same table when the name is unique on the side with schemas.
    let (ea, eb) = (
        crate::engines::for_url(a_url)?.schemas,
        crate::engines::for_url(b_url)?.schemas,
    );
    if ea != eb {
        let (flat, schemed) = if ea { (&fb, &mut fa) } else { (&fa, &mut fb) };
        unqualify(flat, schemed);
    }
    // A --table that names no table on either side is a typo, not "all 0 tables equal".
    let unmatched: Vec<&String> = tables
        .iter()
        .filter(|n| {
            !fa.iter().chain(fb.iter()).any(|(q, ..)| {
                q == *n
                    || q.rsplit_once('.')
                        .is_some_and(|(_, base)| base == n.as_str())
            })
        })
        .collect();
    if !unmatched.is_empty() {
        return Err(crate::Error::Usage(format!(
            "--table {}: no such table in either database",
            unmatched
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
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
        let (x, y) = (fx.map(|p| p.1.0), fy.map(|p| p.1.0));
        let (cx, cy) = (fx.map(|p| &p.1.1), fy.map(|p| &p.1.1));
        // Time spent reading this table on both sides.
        let seconds = fx.map(|p| p.2).unwrap_or_default() + fy.map(|p| p.2).unwrap_or_default();
        let only = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().filter(|c| !b.contains(c)).cloned().collect()
        };
        let status = match (x, y) {
            // A copy that lacks a column (or has one more) is not the same table, even
            // when the values of the columns both have agree.
            (Some(_), Some(_)) if cx.zip(cy).is_some_and(|(a, b)| a != b) => {
                let (a, b) = (
                    cx.map(Vec::as_slice).unwrap_or(&[]),
                    cy.map(Vec::as_slice).unwrap_or(&[]),
                );
                format!(
                    "different columns: only in {}: [{}]; only in {}: [{}]",
                    crate::redact::display_url(a_url),
                    only(a, b).join(", "),
                    crate::redact::display_url(b_url),
                    only(b, a).join(", ")
                )
            }
            (Some(x), Some(y)) if x == y => format!("equal ({})", x.hex()),
            (Some(x), Some(y)) => format!(
                "different: {} rows {} vs {} rows {}",
                x.rows,
                x.hex(),
                y.rows,
                y.hex()
            ),
            (Some(_), None) => format!("missing in {}", crate::redact::display_url(b_url)),
            (None, _) => format!("missing in {}", crate::redact::display_url(a_url)),
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
