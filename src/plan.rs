//! `ferry plan` (and `export --dry-run`): what an export of the source would carry and what
//! an import into a target would make of it, written nowhere and needing no key. Per table:
//! rows (estimated, counted, or unknown, and which), bytes, primary key, and each column's
//! source type → canonical type → target type with a verdict; every object not carried.
//!
//! The verdicts come from the code the import runs: each engine's
//! [`TypeMap`](crate::load::typemap::TypeMap) (which its loader creates tables with),
//! pre-flight's [`column_refusal`](crate::preflight::column_refusal) and the cross-engine
//! adaptation of generated columns and CHECKs, so a plan and the import cannot disagree.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::engines::Engine;
use crate::load::Mode;
use crate::load::typemap::TypeMap;
use crate::mask::{MaskKey, MaskSpec, Masks};
use crate::report::{Progress, RunReport, human_size, printable};
use crate::source::{Rows, Selection, Source, SourceOptions};
use crate::types::TableDef;
use crate::{Error, Result};

/// Everything `ferry plan` was asked.
#[derive(Default)]
pub struct PlanRequest {
    pub source_url: String,
    /// `--target`: where an import would go; `None`: the source's own engine.
    pub target_url: Option<String>,
    pub selection: Selection,
    /// `--where TABLE:PREDICATE`, each predicate already through `export::parse_filters`.
    pub filters: Vec<(String, String)>,
    /// `--exact`: count every table's rows instead of estimating them.
    pub exact: bool,
    /// `--as-text`, as the import would be given it.
    pub as_text: bool,
    pub masks: Vec<MaskSpec>,
    /// `--mask-key-file` (only its id is shown: a plan hashes nothing).
    pub mask_key: Option<Arc<MaskKey>>,
    pub source_options: SourceOptions,
}

/// The plan document (`plan` in the `--json` summary; schema `schemas/plan.v1.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub source: Side,
    pub target: Side,
    /// Both sides are one engine: an import recreates the source's own types.
    pub same_engine: bool,
    /// `--as-text` was assumed for the import.
    pub as_text: bool,
    pub tables: Vec<TablePlan>,
    /// What the tables have that ferry does not carry (views, triggers, routines, …).
    pub not_carried: Vec<String>,
    /// What pre-flight would refuse besides columns (names too long for the target, a
    /// table without columns, two tables folding to one name), one line each.
    pub problems: Vec<String>,
    /// What the operator should know about the run (an unused mask key).
    pub notes: Vec<String>,
    /// The `--mask-key-file`'s id, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_key_id: Option<String>,
}

/// A database of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub engine: String,
    /// The URL without credentials; for a target not given, absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One table.
#[derive(Debug, Clone, Serialize)]
pub struct TablePlan {
    pub table: String,
    /// `None` when unknown (see `rows_are`).
    pub rows: Option<u64>,
    /// `estimated`, `counted`, or why unknown (`unknown (never analysed …)`).
    pub rows_are: String,
    /// What the table occupies at the source, as its statistics tell; `None`: unknown.
    pub bytes: Option<u64>,
    /// `--where` (the rows are counted under it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    pub primary_key: Vec<String>,
    pub columns: Vec<ColumnPlan>,
    /// What differs for this table on the target besides column types (a generated
    /// expression not recreated, a CHECK not carried, a masked column's constraints).
    pub notes: Vec<String>,
}

/// One column: source type → canonical type → target type, and the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnPlan {
    pub name: String,
    pub source_type: String,
    /// The canonical type it travels as (after masking).
    pub canonical: String,
    /// The type the import creates; `None` when refused.
    pub target_type: Option<String>,
    /// `exact`, `mapped` or `refused`.
    pub verdict: Verdict,
    /// What `mapped` changes, or why `refused`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<crate::bundle::catalog::Mask>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The column reads back as the same canonical type, every value as it was.
    Exact,
    /// It loads, into a type that differs as the note says.
    Mapped,
    /// The import refuses it before writing anything.
    Refused,
}

/// `ferry plan`: opens the source (a read-only snapshot), resolves the selection, filters
/// and masks as an export would, and plans every table for the target.
pub fn plan(req: &PlanRequest, progress: &Progress) -> Result<RunReport> {
    let started = Instant::now();
    let source_engine = crate::engines::for_url(&req.source_url)?;
    let target = Target::open(req.target_url.as_deref(), source_engine)?;
    let mut src = crate::engines::open_source(&req.source_url, req.source_options)?;
    src.begin_snapshot()?;
    let tables = src.tables(&req.selection)?;
    let unmatched = req.selection.unmatched(&tables);
    if !unmatched.is_empty() {
        return Err(Error::Usage(format!(
            "--table {}: no such table in {}",
            unmatched.join(", "),
            crate::redact::display_url(&req.source_url)
        )));
    }
    let filters = check_filters(src.as_mut(), &tables, &req.filters)?;
    let masks = {
        let s: &dyn Source = src.as_ref();
        Masks::resolve(
            &req.masks,
            req.mask_key.clone(),
            false,
            &tables,
            source_engine.sql,
            &|n| s.text_type(n),
        )?
    };
    let not_carried = src.not_carried(&tables)?;
    progress.line(&format!("planning {} tables", tables.len()));
    let plan = build(
        src.as_mut(),
        &tables,
        &filters,
        &masks,
        &target,
        req.exact,
        req.as_text,
        not_carried,
    )?;
    let mut report = RunReport::new("plan");
    report.status = "ok".into();
    let refused = plan
        .tables
        .iter()
        .flat_map(|t| &t.columns)
        .filter(|c| c.verdict == Verdict::Refused)
        .count();
    report.message = format!(
        "plan: {} table{} from {} into {}{}; nothing written",
        plan.tables.len(),
        if plan.tables.len() == 1 { "" } else { "s" },
        source_engine.name,
        target.engine.name,
        match (refused, plan.problems.len()) {
            (0, 0) => String::new(),
            (r, p) => format!(
                " ({r} column{} refused, {p} other problem{}: the import would stop in pre-flight)",
                if r == 1 { "" } else { "s" },
                if p == 1 { "" } else { "s" }
            ),
        }
    );
    attach(&mut report, &plan, "planned");
    report.close(started.elapsed());
    // The import would stop in pre-flight (exit 65): so does its plan, so that a script or
    // CI step can gate on it; the plan itself is printed all the same.
    if refused > 0 || !plan.problems.is_empty() {
        report.status = "refused".into();
        report.exit_code = crate::error::exit::INVALID;
    }
    Ok(report)
}

/// The plan's figures in the summary's table list and the plan itself, JSON and text.
pub fn attach(report: &mut RunReport, plan: &Plan, status: &str) {
    for t in &plan.tables {
        report.add_table(
            &t.table,
            t.rows.unwrap_or(0),
            t.bytes.unwrap_or(0),
            0,
            std::time::Duration::ZERO,
            &format!("{status} (rows {})", t.rows_are),
        );
    }
    report.plan = serde_json::to_value(plan).ok();
    report.plan_text = plan.render();
}

/// Every `--where` names an exported table, and the source accepts its predicate
/// ([`Source::check_filter`], inside the snapshot): exit 2 naming the table otherwise.
/// Returns each table's filter by qualified name.
pub fn check_filters(
    src: &mut dyn Source,
    tables: &[TableDef],
    filters: &[(String, String)],
) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (name, pred) in filters {
        let t = tables
            .iter()
            .find(|d| d.name == *name || d.qualified() == *name)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--where {name}:…: no such table among those exported"
                ))
            })?;
        src.check_filter(t, pred)?;
        out.insert(t.qualified(), pred.clone());
    }
    Ok(out)
}

/// The engine a plan maps into, and its type mapping.
pub struct Target {
    pub engine: &'static Engine,
    pub url: Option<String>,
    pub types: Box<dyn TypeMap>,
}

impl Target {
    /// The target at `url` (its type mapping; MySQL reads the server's version, nothing is
    /// written, a SQLite path is not opened), or the source's own engine.
    pub fn open(url: Option<&str>, source: &'static Engine) -> Result<Target> {
        let engine = match url {
            Some(u) => crate::engines::for_url(u)?,
            None => source,
        };
        let open = engine.type_map.ok_or_else(|| {
            Error::Usage(format!(
                "plan: ferry cannot tell what a {} target creates without loading into it",
                engine.name
            ))
        })?;
        Ok(Target {
            engine,
            url: url.map(crate::redact::display_url),
            types: open(url)?,
        })
    }
}

/// Plans every table: rows and bytes from the source (inside its snapshot), columns
/// through the target's type mapping and pre-flight's rules.
#[allow(clippy::too_many_arguments)]
pub fn build(
    src: &mut dyn Source,
    tables: &[TableDef],
    filters: &HashMap<String, String>,
    masks: &Masks,
    target: &Target,
    exact: bool,
    as_text: bool,
    not_carried: Vec<String>,
) -> Result<Plan> {
    let info = src.info();
    let same_engine = info.engine == target.engine.name;
    let refuses = |ty: &crate::types::ColumnType| target.types.refuses(ty);
    let rules = crate::preflight::Rules {
        engine: target.engine,
        same_engine,
        as_text,
        mode: Mode::Create,
        refuses: &refuses,
    };
    let mut out = Vec::new();
    let mut defs = Vec::new();
    let mut not_carried = not_carried;
    for t in tables {
        let q = t.qualified();
        let filter = filters.get(&q);
        let estimate = src.estimate(t)?;
        let rows = if exact || filter.is_some() {
            Rows::Counted(src.count_exact(t, filter.map(String::as_str))?)
        } else {
            estimate.rows
        };
        let (masked, mut notes) = masks.table_def(t);
        notes.extend(masks.notes_for(&q));
        not_carried.extend(
            notes
                .iter()
                .filter(|n| n.starts_with("not carried"))
                .cloned(),
        );
        let mut def = masked;
        if !same_engine {
            notes.extend(crate::import::adapt_table(
                &mut def,
                &info.engine,
                target.engine,
            ));
        }
        let records = masks.records(t);
        let mut columns = Vec::new();
        for c in &def.columns {
            let (target_type, verdict, note) = match crate::preflight::column_refusal(&rules, &q, c)
            {
                Some(why) => (None, Verdict::Refused, Some(why)),
                None => match target.types.column(&def, c, same_engine) {
                    Ok(m) => (
                        Some(m.sql_type),
                        if m.note.is_some() {
                            Verdict::Mapped
                        } else {
                            Verdict::Exact
                        },
                        m.note,
                    ),
                    Err(e) => (None, Verdict::Refused, Some(e.to_string())),
                },
            };
            columns.push(ColumnPlan {
                name: c.name.clone(),
                source_type: c.source_type.clone(),
                canonical: c.ty.describe(),
                target_type,
                verdict,
                note,
                mask: records.iter().find(|m| m.column == c.name).cloned(),
            });
        }
        let (rows, rows_are) = match rows {
            Rows::Estimated(n) => (Some(n), "estimated".to_string()),
            Rows::Counted(n) => (Some(n), "counted".to_string()),
            Rows::Unknown(why) => (None, why),
        };
        out.push(TablePlan {
            table: q,
            rows,
            rows_are,
            bytes: estimate.bytes,
            filter: filter.cloned(),
            primary_key: t.primary_key.clone(),
            columns,
            notes,
        });
        defs.push(def);
    }
    // Pre-flight's other findings, as the import would report them (the columns' own
    // refusals are in their verdicts).
    let planned: Vec<crate::preflight::Planned<'_>> = defs
        .iter()
        .map(|d| crate::preflight::Planned {
            target_name: d.name.clone(),
            target_schema: d.schema.clone(),
            table: d,
            existing_rows: None,
            existing_columns: None,
            resuming: false,
        })
        .collect();
    let refusals: Vec<&String> = out
        .iter()
        .flat_map(|t| &t.columns)
        .filter(|c| c.verdict == Verdict::Refused)
        .filter_map(|c| c.note.as_ref())
        .collect();
    let problems = crate::preflight::findings(&rules, &planned)
        .into_iter()
        .filter(|f| !refusals.contains(&f))
        .collect();
    let run_notes = masks.notes_for("");
    not_carried.dedup();
    Ok(Plan {
        source: Side {
            engine: info.engine.clone(),
            url: Some(info.database.clone()),
        },
        target: Side {
            engine: target.engine.name.to_string(),
            url: target.url.clone(),
        },
        same_engine,
        as_text,
        tables: out,
        not_carried,
        problems,
        notes: run_notes,
        mask_key_id: masks.key_id().map(str::to_string),
    })
}

impl Plan {
    /// The plan for a person: a block per table, then what is not carried and the problems.
    pub fn render(&self) -> String {
        let mut o = String::new();
        o.push_str(&format!(
            "plan: {} {} -> {}{}{}\n",
            self.source.engine,
            printable(self.source.url.as_deref().unwrap_or("")),
            self.target.engine,
            match &self.target.url {
                Some(u) => format!(" {}", printable(u)),
                None => " (the same engine, as import would create it)".into(),
            },
            if self.as_text { ", with --as-text" } else { "" }
        ));
        for t in &self.tables {
            o.push('\n');
            let rows = match t.rows {
                Some(n) => format!("{} ({})", crate::report::rows_word(n), t.rows_are),
                None => format!("rows {}", t.rows_are),
            };
            o.push_str(&format!(
                "table {}: {rows}, {}, primary key {}{}\n",
                printable(&t.table),
                t.bytes
                    .map_or_else(|| "size unknown".to_string(), human_size),
                if t.primary_key.is_empty() {
                    "none".to_string()
                } else {
                    format!("({})", printable(&t.primary_key.join(", ")))
                },
                t.filter
                    .as_ref()
                    .map(|f| format!(", where {}", printable(f)))
                    .unwrap_or_default()
            ));
            let cells: Vec<[String; 5]> = t
                .columns
                .iter()
                .map(|c| {
                    [
                        printable(&c.name).into_owned(),
                        printable(&c.source_type).into_owned(),
                        c.canonical.clone(),
                        c.target_type
                            .as_deref()
                            .map_or_else(|| "-".to_string(), |s| printable(s).into_owned()),
                        match (c.verdict, &c.note) {
                            (Verdict::Exact, _) => "exact".to_string(),
                            (v, Some(n)) => format!(
                                "{}: {}",
                                if v == Verdict::Mapped {
                                    "mapped"
                                } else {
                                    "refused"
                                },
                                printable(n)
                            ),
                            (Verdict::Mapped, None) => "mapped".into(),
                            (Verdict::Refused, None) => "refused".into(),
                        },
                    ]
                })
                .collect();
            let head = [
                "column",
                "source type",
                "canonical",
                "target type",
                "verdict",
            ];
            let w: Vec<usize> = (0..4)
                .map(|i| {
                    cells
                        .iter()
                        .map(|c| c[i].chars().count())
                        .chain([head[i].len()])
                        .max()
                        .unwrap_or(0)
                        .min(72)
                })
                .collect();
            let line = |c: [&str; 5]| {
                format!(
                    "  {:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}\n",
                    c[0],
                    c[1],
                    c[2],
                    c[3],
                    c[4],
                    w0 = w[0],
                    w1 = w[1],
                    w2 = w[2],
                    w3 = w[3]
                )
            };
            o.push_str(&line(head));
            for c in &cells {
                o.push_str(&line([&c[0], &c[1], &c[2], &c[3], &c[4]]));
            }
            for c in &t.columns {
                if let Some(m) = &c.mask {
                    o.push_str(&format!(
                        "  masked: {} = {}{}\n",
                        printable(&c.name),
                        m.rule,
                        match (&m.key_id, m.rule.as_str()) {
                            (Some(k), _) => format!(" (mask key {k})"),
                            (None, "hash" | "email") => " (export needs --mask-key-file)".into(),
                            _ => String::new(),
                        }
                    ));
                }
            }
            for n in &t.notes {
                o.push_str(&format!("  note: {}\n", printable(n)));
            }
        }
        if !self.not_carried.is_empty() {
            o.push_str("\nnot carried:\n");
            for n in &self.not_carried {
                let n = n.strip_prefix("not carried: ").unwrap_or(n);
                o.push_str(&format!("  - {}\n", printable(n)));
            }
        }
        for n in &self.notes {
            o.push_str(&format!("\nnote: {}\n", printable(n)));
        }
        if !self.problems.is_empty() {
            o.push_str("\nproblems:\n");
            for n in &self.problems {
                o.push_str(&format!("  - {}\n", printable(n)));
            }
        }
        o.push('\n');
        o
    }
}
