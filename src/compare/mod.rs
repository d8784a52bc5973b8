//! `ferry compare A B`: whether two sides hold the same tables with the same rows, where
//! each side is a database or a bundle ([`side`]). Tables match across engines by name
//! (PostgreSQL `public.t` is MySQL's or SQLite's `t`), by `--schema-a`/`--schema-b` and by
//! `--rename`; their columns by name. Values are compared in their canonical form
//! ([`crate::types::fingerprint`]), so what the documented mappings carry exactly compares
//! equal on every engine.
//!
//! Two passes, the two sides read at once on two threads (each its own connection or
//! bundle; only sums cross threads):
//! 1. every table: its fingerprint, a sum per column and, with a primary key, a sum per
//!    bucket of key hashes ([`scan::Sums`]). Memory does not grow with the tables.
//! 2. tables that differ and have a key: read again (same snapshot), keeping only the rows
//!    of buckets that differ, up to [`KEYED_BUDGET`] rows, to name the keys that differ:
//!    missing on one side, or changed (with the columns that changed).

mod pairs;
mod scan;
mod side;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::crypto::keys::Keys;
use crate::report::{KeyDifference, Progress, RunReport, TableDifference};
use crate::types::TableDef;
use crate::{Error, Result};
use pairs::{Job, Pair};
use scan::{Keyed, Sums};
use side::{Open, Side};

pub use crate::types::fingerprint::Fingerprint;
pub use side::is_database;

/// Rows (both sides together) the second pass holds at most, as whole buckets: about 100
/// bytes each. At least one bucket is always read, whatever its size.
pub const KEYED_BUDGET: u64 = 500_000;

/// What to compare, as the command line gave it.
pub struct ComparePlan {
    pub a: String,
    pub b: String,
    /// `--table` (empty: every table).
    pub tables: Vec<String>,
    /// `--schema-a`, `--schema-b`: that side's tables are those of this schema, named
    /// without it.
    pub schema_a: Option<String>,
    pub schema_b: Option<String>,
    /// `--rename SRC=DST`: A's table SRC is B's table DST.
    pub renames: Vec<(String, String)>,
    /// `--show N`: keys named per table that differs.
    pub show: usize,
    pub keys: Keys,
    pub allow_unencrypted: bool,
}

impl ComparePlan {
    pub fn new(a: &str, b: &str) -> ComparePlan {
        ComparePlan {
            a: a.into(),
            b: b.into(),
            tables: vec![],
            schema_a: None,
            schema_b: None,
            renames: vec![],
            show: 10,
            keys: Keys::default(),
            allow_unencrypted: false,
        }
    }
}

/// The positions of `names` among the columns of `def`.
fn projection(def: &TableDef, names: &[String]) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|n| {
            def.columns
                .iter()
                .position(|c| c.name == *n)
                .ok_or_else(|| {
                    Error::Other(format!(
                        "table {}: column {n:?} is gone from its definition",
                        def.qualified()
                    ))
                })
        })
        .collect()
}

/// The compared columns of `batch`, in the job's order; a column the other side holds as
/// text, of a type `--as-text` loads as its PostgreSQL text form, as that text
/// ([`crate::types::fingerprint::as_pg_text`]).
fn project(
    batch: &arrow::record_batch::RecordBatch,
    idx: &[usize],
    other_text: &[bool],
) -> Result<arrow::record_batch::RecordBatch> {
    let b = batch
        .project(idx)
        .map_err(|e| Error::Data(format!("selecting the compared columns: {e}")))?;
    if !other_text.iter().any(|t| *t) {
        return Ok(b);
    }
    let schema = b.schema();
    let mut fields: Vec<arrow::datatypes::Field> =
        schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns = b.columns().to_vec();
    let mut changed = false;
    for (c, text) in other_text.iter().enumerate() {
        if !*text || c >= columns.len() {
            continue;
        }
        if let Some((f, a)) = crate::types::fingerprint::as_pg_text(&fields[c], &columns[c])? {
            fields[c] = f;
            columns[c] = a;
            changed = true;
        }
    }
    if !changed {
        return Ok(b);
    }
    arrow::record_batch::RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        columns,
    )
    .map_err(|e| Error::Data(format!("selecting the compared columns: {e}")))
}

/// What a side stops with when the other side failed.
const STOPPED: &str = "stopped: the other side of the compare failed";

fn check_stop(stop: &AtomicBool) -> Result<()> {
    if stop.load(Ordering::Relaxed) {
        return Err(Error::Other(STOPPED.into()));
    }
    Ok(())
}

/// Runs `fa` here and `fb` on a second thread; the first real error wins, and stops the other.
fn both<TA, TB: Send>(
    stop: &AtomicBool,
    fa: impl FnOnce() -> Result<TA>,
    fb: impl FnOnce() -> Result<TB> + Send,
) -> Result<(TA, TB)> {
    std::thread::scope(|s| {
        let hb = s.spawn(|| {
            let r = fb();
            if r.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            r
        });
        let ra = fa();
        if ra.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let rb = hb
            .join()
            .unwrap_or_else(|_| Err(Error::Other("a compare reader crashed".into())));
        let stopped = |e: &Error| matches!(e, Error::Other(m) if m == STOPPED);
        match (ra, rb) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            (Err(e), _) if !stopped(&e) => Err(e),
            (_, Err(e)) => Err(e),
            (Err(e), _) => Err(e),
        }
    })
}

/// One table read by one side: what was kept, and the time it took.
#[derive(Debug)]
struct Read<T> {
    kept: T,
    elapsed: Duration,
}

/// The first pass over a side's jobs; also the notes of tables read again retyped.
fn first_pass(
    side: &mut Side,
    jobs: &[Job],
    stop: &AtomicBool,
    progress: &Progress,
) -> Result<(Vec<Read<Sums>>, Vec<String>)> {
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    for job in jobs {
        let t0 = Instant::now();
        let def = side.tables[job.table].clone();
        let n = job.columns.len();
        let keyed = !job.key.is_empty();
        let ((sums, _), def, more) = side.read(
            &def,
            |d| Ok((Sums::new(n, keyed), projection(d, &job.columns)?)),
            |(sums, idx), b| {
                check_stop(stop)?;
                sums.add(&project(b, idx, &job.other_text)?, &job.key)
            },
        )?;
        progress.line(&format!(
            "read {} of {}: {}",
            def.qualified(),
            side.label,
            crate::report::rows_word(sums.fp.rows)
        ));
        // A retyped definition is the one the second pass reads with.
        side.tables[job.table] = def;
        notes.extend(more);
        out.push(Read {
            kept: sums,
            elapsed: t0.elapsed(),
        });
    }
    Ok((out, notes))
}

/// The second pass over a side's jobs: the rows of the wanted buckets.
fn second_pass(
    side: &mut Side,
    jobs: &[(Job, Vec<bool>)],
    stop: &AtomicBool,
) -> Result<Vec<Read<Keyed>>> {
    let mut out = Vec::new();
    for (job, wanted) in jobs {
        let t0 = Instant::now();
        let def = side.tables[job.table].clone();
        let ((keyed, _), _, _) = side.read(
            &def,
            |d| Ok((Keyed::new(wanted.clone()), projection(d, &job.columns)?)),
            |(keyed, idx), b| {
                check_stop(stop)?;
                keyed.add(&project(b, idx, &job.other_text)?, &job.key)
            },
        )?;
        out.push(Read {
            kept: keyed,
            elapsed: t0.elapsed(),
        });
    }
    Ok(out)
}

/// The keys that differ between two second-pass reads, in key order.
fn key_differences(pair: &Pair, a: &Keyed, b: &Keyed) -> Vec<KeyDifference> {
    let mut out = Vec::new();
    for (k, ea) in &a.rows {
        let Some(eb) = b.rows.get(k) else {
            out.push(KeyDifference {
                key: ea.key.clone(),
                difference: "missing in B".into(),
                columns: vec![],
            });
            continue;
        };
        if ea.count != eb.count {
            out.push(KeyDifference {
                key: ea.key.clone(),
                difference: format!("{} rows in A, {} in B", ea.count, eb.count),
                columns: vec![],
            });
        } else if ea.hash != eb.hash {
            out.push(KeyDifference {
                key: ea.key.clone(),
                difference: "changed".into(),
                columns: pair
                    .columns
                    .iter()
                    .zip(ea.cells.iter().zip(&eb.cells))
                    .filter(|(_, (x, y))| x != y)
                    .map(|((n, _), _)| n.clone())
                    .collect(),
            });
        }
    }
    for (k, eb) in &b.rows {
        if !a.rows.contains_key(k) {
            out.push(KeyDifference {
                key: eb.key.clone(),
                difference: "missing in A".into(),
                columns: vec![],
            });
        }
    }
    out.sort_by(|x, y| natural(&x.key, &y.key));
    out
}

/// Key text in a reader's order: runs of digits by their value (`id=9` before `id=10`).
fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (x, y) = (chunks(a), chunks(b));
    for (p, q) in x.iter().zip(&y) {
        let o = match (p, q) {
            ((true, m), (true, n)) => {
                let (m, n) = (m.trim_start_matches('0'), n.trim_start_matches('0'));
                m.len().cmp(&n.len()).then_with(|| m.cmp(n))
            }
            ((_, m), (_, n)) => m.cmp(n),
        };
        if o.is_ne() {
            return o;
        }
    }
    x.len().cmp(&y.len()).then_with(|| a.cmp(b))
}

/// The buckets the second pass reads: those whose sums differ, in order, while their rows
/// stay within [`KEYED_BUDGET`] (the first always). Also whether that is all of them.
fn wanted_buckets(a: &Sums, b: &Sums) -> (Vec<bool>, bool) {
    let mut wanted = vec![false; scan::BUCKETS];
    let mut rows = 0u64;
    let mut all = true;
    for (i, (x, y)) in a.buckets.iter().zip(&b.buckets).enumerate() {
        if x == y {
            continue;
        }
        let n = x.1 + y.1;
        if rows > 0 && rows + n > KEYED_BUDGET {
            all = false;
            continue;
        }
        rows += n;
        wanted[i] = true;
    }
    (wanted, all)
}

fn list(names: &[String]) -> String {
    format!("[{}]", names.join(", "))
}

/// What both passes found for one pair of tables.
struct Found {
    a: Option<Read<Sums>>,
    b: Option<Read<Sums>>,
    /// Second pass: both sides' rows, and whether every differing bucket was read.
    keyed: Option<(Read<Keyed>, Read<Keyed>, bool)>,
}

/// The side labels used in the summary: `url (A)`, `url (B)`.
struct Labels {
    a: String,
    b: String,
}

/// The summary's status text of one pair, and what differs (`None`: equal).
fn describe(p: &Pair, f: &Found, l: &Labels, show: usize) -> (String, Option<TableDifference>) {
    let (x, y) = match (&f.a, &f.b) {
        (Some(x), Some(y)) => (&x.kept, &y.kept),
        (sx, sy) => {
            let rows = |s: &Option<Read<Sums>>| s.as_ref().map_or(0, |r| r.kept.fp.rows);
            let (side, label) = if sx.is_some() {
                ("B", &l.b)
            } else {
                ("A", &l.a)
            };
            return (
                format!("missing in {label}"),
                Some(TableDifference {
                    table: p.name.clone(),
                    missing_in: Some(side.into()),
                    rows_a: rows(sx),
                    rows_b: rows(sy),
                    ..Default::default()
                }),
            );
        }
    };
    if x.fp == y.fp && p.only_a.is_empty() && p.only_b.is_empty() {
        return (format!("equal ({})", x.fp.hex()), None);
    }
    let mut d = TableDifference {
        table: p.name.clone(),
        rows_a: x.fp.rows,
        rows_b: y.fp.rows,
        columns_only_in_a: p.only_a.clone(),
        columns_only_in_b: p.only_b.clone(),
        ..Default::default()
    };
    let mut says = Vec::new();
    let only: Vec<String> = [(&l.a, &p.only_a), (&l.b, &p.only_b)]
        .into_iter()
        .filter(|(_, c)| !c.is_empty())
        .map(|(side, c)| format!("only in {side}: {}", list(c)))
        .collect();
    if !only.is_empty() {
        says.push(format!("different columns: {}", only.join(", ")));
    }
    says.push(format!("{} vs {} rows", x.fp.rows, y.fp.rows));
    let sums_differ = |c: usize| x.cols[c] != y.cols[c];
    let differing = || -> Vec<String> {
        (0..p.columns.len())
            .filter(|&c| sums_differ(c))
            .map(|c| p.columns[c].0.clone())
            .collect()
    };
    if x.fp == y.fp {
        says.push(format!(
            "the {} columns both have hold the same values",
            p.columns.len()
        ));
    } else if p.key.is_empty() {
        d.columns = differing();
        says.push(format!("values differ in {}", list(&d.columns)));
        says.push("no primary key: keys are named only for tables with one".into());
        d.note =
            Some("no primary key on either side: naming the rows that differ needs one".into());
    } else if p.key.iter().all(|&c| !sums_differ(c)) {
        // The same keys on both sides: the columns whose sums differ are those changed.
        d.columns = differing();
        says.push(format!("values differ in {}", list(&d.columns)));
    }
    if let Some((ka, kb, all)) = &f.keyed {
        let keys = key_differences(p, &ka.kept, &kb.kept);
        if d.columns.is_empty() {
            // Keys differ too: the columns come from the rows examined.
            let mut cols: Vec<String> = Vec::new();
            for c in keys.iter().flat_map(|k| &k.columns) {
                if !cols.contains(c) {
                    cols.push(c.clone());
                }
            }
            cols.sort_by_key(|c| p.columns.iter().position(|(n, _)| n == c));
            if !cols.is_empty() {
                says.push(format!(
                    "values differ in {}{}",
                    list(&cols),
                    if *all {
                        ""
                    } else {
                        " (among the keys examined)"
                    }
                ));
            }
            d.columns = cols;
        }
        let total = keys.len();
        let shown: Vec<KeyDifference> = keys.into_iter().take(show).collect();
        let text: Vec<String> = shown
            .iter()
            .map(|k| match k.difference.as_str() {
                "changed" => format!("{} changed {}", k.key, list(&k.columns)),
                other => format!("{} {other}", k.key),
            })
            .collect();
        let count = match (*all, total > shown.len()) {
            (true, true) => format!(" (first {} of {total})", shown.len()),
            (true, false) => String::new(),
            (false, _) => format!(
                " (first {} of at least {total}: only the keys of {KEYED_BUDGET} rows were examined)",
                shown.len()
            ),
        };
        if !text.is_empty() {
            says.push(format!("keys{count}: {}", text.join("; ")));
        }
        d.keys = shown;
        d.keys_total = Some(total as u64);
        d.keys_complete = Some(*all);
    }
    let status = says.join("; ");
    if status.starts_with("different") {
        (status, Some(d))
    } else {
        (format!("different: {status}"), Some(d))
    }
}

/// Compares the selected tables of two sides. Exit status 0 when all are equal, 1 when
/// anything differs; a `--table` or `--rename` that names nothing, or a schema option for a
/// side without schemas, is a usage error.
pub fn compare(plan: &ComparePlan, progress: &Progress) -> Result<RunReport> {
    let started = Instant::now();
    for (opt, url, schema) in [
        ("--schema-a", &plan.a, &plan.schema_a),
        ("--schema-b", &plan.b, &plan.schema_b),
    ] {
        if schema.is_some()
            && let Ok(e) = crate::engines::for_url(url)
            && !e.schemas
        {
            return Err(Error::Usage(format!(
                "{opt} names a schema, but {} is a {} database, which has none",
                crate::redact::display_url(url),
                e.name
            )));
        }
    }
    let (sel_a, sel_b) = (pairs::selection(plan, true), pairs::selection(plan, false));
    let stop = AtomicBool::new(false);
    let open_a = Open {
        selection: &sel_a,
        keys: &plan.keys,
        allow_unencrypted: plan.allow_unencrypted,
        progress,
    };
    let open_b = Open {
        selection: &sel_b,
        ..open_a
    };
    let (mut sa, mut sb) = both(
        &stop,
        || Side::open(&plan.a, &open_a),
        || Side::open(&plan.b, &open_b),
    )?;
    for (s, opt, schema) in [
        (&sa, "--schema-a", &plan.schema_a),
        (&sb, "--schema-b", &plan.schema_b),
    ] {
        if schema.is_some() && !s.schemas {
            return Err(Error::Usage(format!(
                "{opt} names a schema, but {} has no schemas",
                s.label
            )));
        }
    }
    let mut report = RunReport::new("compare");
    report.warnings.append(&mut sa.warnings);
    report.warnings.append(&mut sb.warnings);
    let bundles: Vec<_> = [&sa.bundle, &sb.bundle].into_iter().flatten().collect();
    if let Some(first) = bundles.first() {
        report.bundle = Some(first.location.clone());
        report.bundle_id = Some(first.id.clone());
        // The report's trust fields are the first bundle's; a second bundle's go in a note.
        report.set_trust_opened(first.encrypted, first.opened_by, first.signature.checked);
        report.set_signature(&first.signature, first.fingerprint.clone());
        if let Some(second) = bundles.get(1) {
            let (authenticated, warning) = crate::report::trust_of(
                second.encrypted,
                second.opened_by,
                second.signature.checked,
            );
            report.warnings.extend(warning.map(String::from));
            let line = |b: &side::BundleInfo, authenticated: bool| {
                crate::report::trust_line(
                    b.encrypted,
                    authenticated,
                    b.signature.signed_by.as_deref(),
                    Some(b.signature.checked),
                )
            };
            let second_line = line(second, authenticated);
            if second_line != line(first, report.authenticated == Some(true)) {
                report.warnings.push(format!(
                    "the trust line is bundle {}'s; bundle {}: {second_line} (fingerprint {})",
                    first.location, second.location, second.fingerprint
                ));
            }
        }
    }
    let pairs = pairs::pair_tables(plan, &sa, &sb, &mut report.warnings)?;
    // A table missing on one side where that side has a view of the name: views are
    // compared only when named, so say how.
    for p in &pairs {
        let (there, missing) = match (p.a, p.b) {
            (Some(i), None) => (&sa.tables[i], &sb),
            (None, Some(i)) => (&sb.tables[i], &sa),
            _ => continue,
        };
        if let Some(v) = missing.views.iter().find(|v| v.name == there.name) {
            report.warnings.push(format!(
                "table {} is missing in {}, which has a view {}: views are compared only when \
                 named; add --table {} to compare it",
                crate::report::printable(&p.name),
                missing.label,
                crate::report::printable(&v.qualified()),
                crate::report::printable(&v.name)
            ));
        }
    }

    // First pass: both sides at once.
    let jobs_a: Vec<Job> = pairs.iter().filter_map(|p| p.job(true)).collect();
    let jobs_b: Vec<Job> = pairs.iter().filter_map(|p| p.job(false)).collect();
    let ((ra, notes_a), (rb, notes_b)) = both(
        &stop,
        || first_pass(&mut sa, &jobs_a, &stop, progress),
        || first_pass(&mut sb, &jobs_b, &stop, progress),
    )?;
    report.warnings.extend(notes_a);
    report.warnings.extend(notes_b);
    // Each side's results come in the order of its jobs, which is the pairs' order.
    let (mut ra, mut rb) = (ra.into_iter(), rb.into_iter());
    let mut found: Vec<Found> = pairs
        .iter()
        .map(|p| Found {
            a: p.a.and_then(|_| ra.next()),
            b: p.b.and_then(|_| rb.next()),
            keyed: None,
        })
        .collect();

    // Second pass: the tables with a key that differ.
    let mut second: Vec<(usize, Vec<bool>, bool)> = Vec::new();
    for (k, (p, f)) in pairs.iter().zip(&found).enumerate() {
        if let (Some(x), Some(y)) = (&f.a, &f.b)
            && plan.show > 0
            && !p.key.is_empty()
            && x.kept.fp != y.kept.fp
        {
            let (wanted, all) = wanted_buckets(&x.kept, &y.kept);
            second.push((k, wanted, all));
        }
    }
    if !second.is_empty() {
        progress.line(&format!(
            "{} table(s) differ: reading them again to name the keys",
            second.len()
        ));
        let jobs = |side_a: bool| -> Vec<(Job, Vec<bool>)> {
            second
                .iter()
                .filter_map(|(k, wanted, _)| Some((pairs[*k].job(side_a)?, wanted.clone())))
                .collect()
        };
        let (j2a, j2b) = (jobs(true), jobs(false));
        let (ka, kb) = both(
            &stop,
            || second_pass(&mut sa, &j2a, &stop),
            || second_pass(&mut sb, &j2b, &stop),
        )?;
        for (((k, _, all), x), y) in second.iter().zip(ka).zip(kb) {
            found[*k].keyed = Some((x, y, *all));
        }
    }

    // The summary.
    let labels = Labels {
        a: format!("{} (A)", sa.label),
        b: format!("{} (B)", sb.label),
    };
    let mut differ = 0;
    for (p, f) in pairs.iter().zip(&found) {
        let time = |r: &Option<Read<Sums>>| r.as_ref().map_or(Duration::ZERO, |r| r.elapsed);
        let seconds = time(&f.a)
            + time(&f.b)
            + f.keyed
                .as_ref()
                .map_or(Duration::ZERO, |(x, y, _)| x.elapsed + y.elapsed);
        let rows = f.a.as_ref().or(f.b.as_ref()).map_or(0, |r| r.kept.fp.rows);
        let (status, difference) = describe(p, f, &labels, plan.show);
        report.add_table(&p.name, rows, 0, 0, seconds, &status);
        if let Some(d) = difference {
            differ += 1;
            report.differences.push(d);
        }
    }
    report.close(started.elapsed());
    if differ > 0 {
        report.status = "different".into();
        report.exit_code = crate::error::exit::FAILURE;
        report.message = format!(
            "{differ} of {} tables differ (A is {}, B is {})",
            pairs.len(),
            sa.label,
            sb.label
        );
    } else {
        report.message = format!("all {} tables are equal", pairs.len());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::scan::{BUCKETS, Sums};
    use super::{KEYED_BUDGET, natural, wanted_buckets};

    #[test]
    fn the_second_pass_reads_differing_buckets_within_the_budget() {
        let (mut a, mut b) = (Sums::new(1, true), Sums::new(1, true));
        for (i, x) in a.buckets.iter_mut().enumerate() {
            *x = (i as u64, KEYED_BUDGET / 4);
        }
        b.buckets.clone_from(&a.buckets);
        // Equal: nothing to read.
        let (w, all) = wanted_buckets(&a, &b);
        assert!(all && !w.contains(&true));
        // Three buckets differ and fit: all three.
        for i in [3, 500, 1000] {
            b.buckets[i].0 += 1;
        }
        let (w, all) = wanted_buckets(&a, &b);
        assert_eq!((0..BUCKETS).filter(|&i| w[i]).collect::<Vec<_>>(), [3, 500]);
        assert!(!all, "the third would pass the budget");
        // One bucket larger than the budget is still read, alone.
        b.buckets[3].1 = KEYED_BUDGET * 2;
        let (w, all) = wanted_buckets(&a, &b);
        assert_eq!((0..BUCKETS).filter(|&i| w[i]).collect::<Vec<_>>(), [3]);
        assert!(!all);
    }

    #[test]
    fn keys_sort_by_the_numbers_in_them() {
        let mut v = vec![
            "id=10",
            "id=9",
            "id=009",
            "id=100",
            "name=\"b\"",
            "name=\"a\"",
        ];
        v.sort_by(|a, b| natural(a, b));
        assert_eq!(
            v,
            [
                "id=009",
                "id=9",
                "id=10",
                "id=100",
                "name=\"a\"",
                "name=\"b\""
            ]
        );
    }
}
