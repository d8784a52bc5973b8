//! Which tables of the two sides meet, and which of their columns: names across engines
//! (PostgreSQL `public.t` = MySQL/SQLite `t`), `--schema-a`/`--schema-b`, `--rename` and
//! `--table`; columns by name; the primary key that names rows.

use super::ComparePlan;
use super::side::Side;
use crate::source::Selection;
use crate::types::{ColumnType, TableDef};
use crate::{Error, Result};

/// `--table` narrows what each side lists: the names given, and a renamed table's own name
/// on each side; with `--schema-a`/`--schema-b` each also in that schema (PostgreSQL takes
/// a bare name as `public`'s).
pub(super) fn selection(plan: &ComparePlan, side_a: bool) -> Selection {
    if plan.tables.is_empty() {
        return Selection::default();
    }
    let mut tables = plan.tables.clone();
    for (src, dst) in &plan.renames {
        if plan.tables.contains(src) || plan.tables.contains(dst) {
            tables.push(if side_a { src } else { dst }.clone());
        }
    }
    let schema = if side_a {
        &plan.schema_a
    } else {
        &plan.schema_b
    };
    if let Some(s) = schema {
        let qualified: Vec<String> = tables.iter().map(|t| format!("{s}.{t}")).collect();
        tables.extend(qualified);
    }
    Selection {
        tables,
        exclude: vec![],
    }
}

/// A table of one side under the name it is compared by.
#[derive(Debug, Clone)]
struct Named {
    table: usize,
    name: String,
}

/// A side's tables under their compared names: with `schema`, those of that schema by
/// their own name; else by `schema.table` where the side has schemas.
fn named(side: &Side, schema: Option<&str>) -> Vec<Named> {
    side.tables
        .iter()
        .enumerate()
        .filter(|(_, t)| schema.is_none_or(|s| t.schema.as_deref() == Some(s)))
        .map(|(i, t)| Named {
            table: i,
            name: if schema.is_some() {
                t.name.clone()
            } else {
                t.qualified()
            },
        })
        .collect()
}

/// Names `schema.t` on the side with schemas as plain `t` when `t` is a table of the other
/// side and no other schema there has a `t`, so the two are compared with each other.
/// Returns the names left qualified because several schemas have them.
fn unqualify(flat: &[Named], schemed: &mut [Named], defs: &[TableDef]) -> Vec<String> {
    let base = |n: &Named| defs[n.table].name.clone();
    let bases: Vec<String> = schemed.iter().map(base).collect();
    let mut ambiguous = Vec::new();
    for (n, b) in schemed.iter_mut().zip(&bases) {
        if !flat.iter().any(|f| f.name == *b) {
            continue;
        }
        if bases.iter().filter(|x| *x == b).count() == 1 {
            n.name = b.clone();
        } else if !ambiguous.contains(b) {
            ambiguous.push(b.clone());
        }
    }
    ambiguous
}

/// Two tables (or one, missing on the other side) compared with each other.
#[derive(Debug, Clone)]
pub(super) struct Pair {
    /// What the summary calls it: the compared name, `SRC → DST` for a rename.
    pub name: String,
    /// The table's index among each side's tables.
    pub a: Option<usize>,
    pub b: Option<usize>,
    /// Columns both have, in A's order: (A's name, B's name).
    pub columns: Vec<(String, String)>,
    pub only_a: Vec<String>,
    pub only_b: Vec<String>,
    /// Positions in `columns` of the primary key used to name rows (empty: none).
    pub key: Vec<usize>,
    /// Per column of `columns`: whether A's, and B's, is text (a column of the other side
    /// that [`crate::types::fingerprint::compares_as_pg_text`] names is then compared as
    /// its PostgreSQL text form).
    pub text_a: Vec<bool>,
    pub text_b: Vec<bool>,
}

/// Columns matched by name: exactly, else ignoring case when that names one column.
fn match_columns(a: &TableDef, b: &TableDef) -> (Vec<(String, String)>, Vec<String>, Vec<String>) {
    let mut used = vec![false; b.columns.len()];
    let mut both = Vec::new();
    let mut only_a = Vec::new();
    let mut pending = Vec::new();
    for c in &a.columns {
        match b.columns.iter().position(|d| d.name == c.name) {
            Some(j) => {
                used[j] = true;
                both.push((c.name.clone(), b.columns[j].name.clone()));
            }
            None => pending.push(c.name.clone()),
        }
    }
    for name in pending {
        let hits: Vec<usize> = (0..b.columns.len())
            .filter(|&j| !used[j] && b.columns[j].name.eq_ignore_ascii_case(&name))
            .collect();
        match hits.as_slice() {
            [j] => {
                used[*j] = true;
                both.push((name, b.columns[*j].name.clone()));
            }
            _ => only_a.push(name),
        }
    }
    // Back in A's column order.
    both.sort_by_key(|(n, _)| a.columns.iter().position(|c| c.name == *n));
    let only_b = b
        .columns
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(c, _)| c.name.clone())
        .collect();
    (both, only_a, only_b)
}

impl Pair {
    fn new(
        name: String,
        a: Option<&TableDef>,
        b: Option<&TableDef>,
        ai: Option<usize>,
        bi: Option<usize>,
    ) -> Pair {
        let (columns, only_a, only_b) = match (a, b) {
            (Some(a), Some(b)) => match_columns(a, b),
            (Some(t), None) | (None, Some(t)) => (
                t.columns
                    .iter()
                    .map(|c| (c.name.clone(), c.name.clone()))
                    .collect(),
                vec![],
                vec![],
            ),
            (None, None) => (vec![], vec![], vec![]),
        };
        // A's primary key when both sides have its columns, else B's.
        let key = [a, b]
            .into_iter()
            .flatten()
            .map(|t| &t.primary_key)
            .filter(|pk| !pk.is_empty())
            .find_map(|pk| {
                let pos: Vec<usize> = pk
                    .iter()
                    .filter_map(|k| columns.iter().position(|(x, y)| x == k || y == k))
                    .collect();
                (pos.len() == pk.len()).then_some(pos)
            })
            .unwrap_or_default();
        let is_text = |t: Option<&TableDef>, side_a: bool| -> Vec<bool> {
            columns
                .iter()
                .map(|(x, y)| {
                    let n = if side_a { x } else { y };
                    t.and_then(|t| t.columns.iter().find(|c| c.name == *n))
                        .is_some_and(|c| c.ty == ColumnType::Utf8)
                })
                .collect()
        };
        let (text_a, text_b) = (is_text(a, true), is_text(b, false));
        Pair {
            name,
            a: ai,
            b: bi,
            text_a,
            text_b,
            columns,
            only_a,
            only_b,
            key: if a.is_some() && b.is_some() {
                key
            } else {
                vec![]
            },
        }
    }
}

/// What one side reads of one table.
#[derive(Debug, Clone)]
pub(super) struct Job {
    pub table: usize,
    /// The columns read, in the order both sides use.
    pub columns: Vec<String>,
    pub key: Vec<usize>,
    /// Per column: the other side holds it as text.
    pub other_text: Vec<bool>,
}

impl Pair {
    /// What side A (`side_a`) or B reads of this pair; `None` when it has no such table.
    pub fn job(&self, side_a: bool) -> Option<Job> {
        Some(Job {
            table: if side_a { self.a } else { self.b }?,
            columns: self
                .columns
                .iter()
                .map(|(x, y)| if side_a { x.clone() } else { y.clone() })
                .collect(),
            key: self.key.clone(),
            other_text: if side_a {
                self.text_b.clone()
            } else {
                self.text_a.clone()
            },
        })
    }
}

/// The pairs of tables to compare, by name; warnings for names several schemas have. A
/// `--rename` or `--table` that names no table is a usage error.
pub(super) fn pair_tables(
    plan: &ComparePlan,
    sa: &Side,
    sb: &Side,
    warnings: &mut Vec<String>,
) -> Result<Vec<Pair>> {
    let mut na = named(sa, plan.schema_a.as_deref());
    let mut nb = named(sb, plan.schema_b.as_deref());
    let (flat_a, flat_b) = (
        !sa.schemas || plan.schema_a.is_some(),
        !sb.schemas || plan.schema_b.is_some(),
    );
    let ambiguous = match (flat_a, flat_b) {
        (true, false) => unqualify(&na, &mut nb, &sb.tables),
        (false, true) => unqualify(&nb, &mut na, &sa.tables),
        _ => vec![],
    };
    for n in ambiguous {
        warnings.push(format!(
            "{n}: several schemas have a table of this name, so it is compared by its qualified name; \
             name the schema with --schema-a or --schema-b"
        ));
    }
    let find = |names: &[Named], side: &Side, n: &str| -> Option<usize> {
        names
            .iter()
            .position(|x| x.name == n)
            .or_else(|| {
                names
                    .iter()
                    .position(|x| side.tables[x.table].qualified() == n)
            })
            .or_else(|| {
                let hits: Vec<usize> = (0..names.len())
                    .filter(|&i| side.tables[names[i].table].name == n)
                    .collect();
                (hits.len() == 1).then(|| hits[0])
            })
    };
    let (mut used_a, mut used_b) = (vec![false; na.len()], vec![false; nb.len()]);
    let mut pairs = Vec::new();
    let pair = |i: Option<usize>, j: Option<usize>| {
        let (a, b) = (i.map(|i| &na[i]), j.map(|j| &nb[j]));
        let name = match (a, b) {
            (Some(a), Some(b)) if a.name == b.name => a.name.clone(),
            (Some(a), Some(b)) => format!("{} → {}", a.name, b.name),
            (Some(a), None) => a.name.clone(),
            (None, Some(b)) => b.name.clone(),
            (None, None) => String::new(),
        };
        Pair::new(
            name,
            a.map(|a| &sa.tables[a.table]),
            b.map(|b| &sb.tables[b.table]),
            a.map(|a| a.table),
            b.map(|b| b.table),
        )
    };
    for (src, dst) in &plan.renames {
        let narrowed =
            !plan.tables.is_empty() && !plan.tables.contains(src) && !plan.tables.contains(dst);
        let (i, j) = (find(&na, sa, src), find(&nb, sb, dst));
        match (i, j) {
            (Some(i), Some(j)) if !used_a[i] && !used_b[j] => {
                used_a[i] = true;
                used_b[j] = true;
                pairs.push(pair(Some(i), Some(j)));
            }
            _ if narrowed => {}
            (None, _) => {
                return Err(Error::Usage(format!(
                    "--rename {src}={dst}: {} has no table {src}",
                    sa.label
                )));
            }
            (_, None) => {
                return Err(Error::Usage(format!(
                    "--rename {src}={dst}: {} has no table {dst}",
                    sb.label
                )));
            }
            _ => {
                return Err(Error::Usage(format!(
                    "--rename {src}={dst}: one of these tables is in another --rename too"
                )));
            }
        }
    }
    for i in 0..na.len() {
        if used_a[i] {
            continue;
        }
        let j = (0..nb.len()).find(|&j| !used_b[j] && nb[j].name == na[i].name);
        used_a[i] = true;
        if let Some(j) = j {
            used_b[j] = true;
        }
        pairs.push(pair(Some(i), j));
    }
    for (j, used) in used_b.iter().enumerate() {
        if !used {
            pairs.push(pair(None, Some(j)));
        }
    }
    // `--table`: by either side's name for the table, and a name that matches nothing is a
    // typo, not "all 0 tables are equal".
    let hit = |p: &Pair, n: &str| {
        p.name == n
            || p.a.is_some_and(|i| {
                let t = &sa.tables[i];
                t.name == n || t.qualified() == n || na.iter().any(|x| x.table == i && x.name == n)
            })
            || p.b.is_some_and(|j| {
                let t = &sb.tables[j];
                t.name == n || t.qualified() == n || nb.iter().any(|x| x.table == j && x.name == n)
            })
    };
    let unmatched: Vec<&str> = plan
        .tables
        .iter()
        .filter(|n| !pairs.iter().any(|p| hit(p, n)))
        .map(String::as_str)
        .collect();
    if !unmatched.is_empty() {
        return Err(Error::Usage(format!(
            "--table {}: no such table on either side",
            unmatched.join(", ")
        )));
    }
    if !plan.tables.is_empty() {
        pairs.retain(|p| plan.tables.iter().any(|n| hit(p, n)));
    }
    pairs.sort_by(|x, y| x.name.cmp(&y.name));
    Ok(pairs)
}
