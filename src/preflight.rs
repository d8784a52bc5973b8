//! Pre-flight: everything an import can know is wrong before it writes anything, found
//! all at once and reported as one list, so an operator fixes every problem in one round
//! instead of one per attempt. (Mode rules that need the ledger, such as upsert's primary
//! key and an unfinished replace, are checked in `import` before this.)

use crate::engines::Engine;
use crate::load::Mode;
use crate::types::{Column, ColumnType, TableDef, text};

pub use crate::load::TargetColumn;

/// One bundle table as it would be loaded.
#[derive(Debug, Clone)]
pub struct Planned<'a> {
    /// The target table's name (after `--rename`).
    pub target_name: String,
    /// The schema it goes to, where the target has schemas (PostgreSQL: `--target-schema`,
    /// else the table's own).
    pub target_schema: Option<String>,
    pub table: &'a TableDef,
    /// Rows the target table holds; `None` when it does not exist.
    pub existing_rows: Option<u64>,
    /// The existing target table's columns, when the engine can list them.
    pub existing_columns: Option<Vec<TargetColumn>>,
    /// Some of this table's parts are already in the ledger (a re-run).
    pub resuming: bool,
}

/// What the checks depend on besides the tables.
pub struct Rules<'a> {
    /// The target engine.
    pub engine: &'static Engine,
    pub same_engine: bool,
    /// `--as-text`: columns without a portable type load as text, and so do columns of a
    /// type the target refuses (`refuses`) when the value has a text form.
    pub as_text: bool,
    pub mode: Mode,
    /// Why the target cannot take a canonical type, if it cannot.
    pub refuses: &'a dyn Fn(&ColumnType) -> Option<&'static str>,
}

/// Every problem found, one line each; empty when the import may start.
pub fn findings(rules: &Rules<'_>, tables: &[Planned<'_>]) -> Vec<String> {
    let mut out = Vec::new();
    let mut names_seen: Vec<(String, &str)> = Vec::new();
    for p in tables {
        let t = p.table;
        let name = &p.target_name;
        let q = t.qualified();
        // ferry's own tables (the ledger, replace's staging tables) are never a bundle's to
        // write: a forged ledger row would block or re-open another source's chain.
        if name
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("_ferry_"))
        {
            out.push(format!(
                "{q}: target table {name:?} is named like ferry's own tables (_ferry_…: the ledger \
                 and replace's staging tables), which no bundle may write; leave it out with \
                 --exclude or load it under another name with --rename {}=NEW",
                t.name
            ));
        }
        // PostgreSQL has tables without columns (they still have rows); no other engine does.
        if t.columns.is_empty() && !rules.engine.tables_without_columns {
            out.push(format!(
                "{q} has no columns (it holds rows only), which {} cannot create; leave the table \
                 out with --exclude",
                rules.engine.name
            ));
        }
        for c in &t.columns {
            out.extend(column_refusal(rules, &q, c));
        }
        if let Some(crate::engines::IdentifierLimit {
            max: limit,
            unit,
            measure,
        }) = rules.engine.identifier_limit
        {
            if measure(name) > limit {
                out.push(format!(
                    "table name {name:?} is longer than {}'s {limit} {unit}; choose a shorter one with \
                     --rename {}=SHORTER",
                    rules.engine.name, t.name
                ));
            }
            for c in &t.columns {
                if measure(&c.name) > limit {
                    out.push(format!(
                        "{name}: column name {:?} is longer than {}'s {limit} {unit}",
                        c.name, rules.engine.name
                    ));
                }
            }
        }
        if rules.engine.names_fold_case {
            let mut cols: Vec<(String, &str)> = Vec::new();
            for c in &t.columns {
                let folded = c.name.to_lowercase();
                if let Some((_, other)) = cols.iter().find(|(f, _)| *f == folded) {
                    out.push(format!(
                        "{name}: columns {other:?} and {:?} differ only by case, and {} column names \
                         ignore case",
                        c.name, rules.engine.name
                    ));
                } else {
                    cols.push((folded, &c.name));
                }
            }
        }
        // PostgreSQL names are quoted, so only the same schema and name meet; the others
        // fold case (MySQL's lower_case_table_names, SQLite's case-insensitive names).
        let folded = if !rules.engine.names_fold_case {
            format!("{:?}.{name:?}", p.target_schema)
        } else {
            name.to_lowercase()
        };
        if let Some((_, other)) = names_seen.iter().find(|(f, _)| *f == folded) {
            out.push(format!(
                "bundle tables {other:?} and {:?} would both load into target table {name:?}{}; rename \
                 one with --rename",
                if !rules.engine.names_fold_case {
                    ""
                } else {
                    " (names that differ only by case fold together)"
                },
                t.qualified()
            ));
        } else {
            names_seen.push((folded, name));
        }
        if rules.mode == Mode::Create
            && !p.resuming
            && let Some(n) = p.existing_rows
            && n > 0
        {
            out.push(format!(
                "table {name} already exists and holds {}; --mode create loads only into new or empty \
                 tables (use --mode append or replace, or --rename {}=NEW)",
                crate::report::rows_word(n),
                t.name
            ));
        }
        if let Some(existing) = &p.existing_columns {
            for c in &t.columns {
                if !existing
                    .iter()
                    .any(|e| same_name(rules.engine, &e.name, &c.name))
                {
                    out.push(format!(
                        "{name}: the target table has no column {:?} ({}); add it, or load into a new table \
                         with --rename",
                        c.name, c.source_type
                    ));
                }
            }
            for e in existing {
                let carried = t
                    .columns
                    .iter()
                    .any(|c| same_name(rules.engine, &e.name, &c.name));
                if !carried && !e.nullable && !e.has_default {
                    out.push(format!(
                        "{name}: the target's column {:?} is NOT NULL without a default, and the bundle \
                         has no values for it",
                        e.name
                    ));
                }
            }
        }
    }
    out
}

/// Why the target refuses column `c` of table `q` before anything is written, if it does:
/// a column that travels as its text form into another engine without `--as-text`, or a
/// canonical type the target has no column type for (`--as-text` loads those with a text
/// form as text). `ferry plan` shows the same sentence as the column's verdict.
pub fn column_refusal(rules: &Rules<'_>, q: &str, c: &Column) -> Option<String> {
    if c.as_text && !rules.same_engine && !rules.as_text {
        let why = match &c.text_reason {
            Some(r) => {
                format!("travels as its text form because a value has no portable form ({r})")
            }
            None => "has no portable type".into(),
        };
        return Some(format!(
            "{q}.{} ({}) {why} and cannot go into {}: load it as text with \
             --as-text, or leave the table out with --exclude",
            c.name, c.source_type, rules.engine.name
        ));
    }
    let why = (rules.refuses)(&c.ty)?;
    // `--as-text`: a type the target has no column type for loads as its PostgreSQL text
    // form (an interval, an array, a decimal wider than the target's) into a text column;
    // the target's loader does that for exactly the types it refuses here.
    let as_text = text::has_pg_text_form(&c.ty);
    if rules.as_text && as_text {
        return None;
    }
    Some(format!(
        "{q}.{} ({} from {}): {} cannot take it: {why}; {}leave the table out with --exclude",
        c.name,
        c.ty.describe(),
        c.source_type,
        rules.engine.name,
        if as_text {
            "load it as its text form with --as-text, or "
        } else {
            ""
        }
    ))
}

fn same_name(engine: &Engine, a: &str, b: &str) -> bool {
    if engine.names_fold_case {
        a.to_lowercase() == b.to_lowercase()
    } else {
        a == b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: ColumnType) -> Column {
        Column {
            name: name.into(),
            ty,
            nullable: true,
            source_type: "x".into(),
            default: None,
            enum_type: None,
            domain_type: None,
            as_text: false,
            text_reason: None,
            collation: None,
            identity: None,
            generated: None,
        }
    }

    fn table(name: &str, cols: Vec<Column>, pk: &[&str]) -> TableDef {
        TableDef {
            schema: None,
            name: name.into(),
            columns: cols,
            primary_key: pk.iter().map(|s| s.to_string()).collect(),
            indexes: vec![],
            foreign_keys: vec![],
            partitioning: None,
            ..Default::default()
        }
    }

    fn planned(t: &TableDef) -> Planned<'_> {
        Planned {
            target_name: t.name.clone(),
            target_schema: t.schema.clone(),
            table: t,
            existing_rows: None,
            existing_columns: None,
            resuming: false,
        }
    }

    fn rules<'a>(
        engine: &str,
        mode: Mode,
        refuses: &'a dyn Fn(&ColumnType) -> Option<&'static str>,
    ) -> Rules<'a> {
        Rules {
            engine: crate::engines::by_name(engine).expect("a known engine"),
            same_engine: false,
            as_text: false,
            mode,
            refuses,
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let long = "x".repeat(64);
        let a = table(
            &long,
            vec![
                col("Id", ColumnType::Int64),
                col("id", ColumnType::Interval),
            ],
            &[],
        );
        let b = table("Users", vec![col("id", ColumnType::Int64)], &[]);
        let c = table("users", vec![col("id", ColumnType::Int64)], &[]);
        let refuses =
            |t: &ColumnType| matches!(t, ColumnType::Interval).then_some("no interval type");
        let found = findings(
            &rules("mysql", Mode::Upsert, &refuses),
            &[planned(&a), planned(&b), planned(&c)],
        );
        let all = found.join("\n");
        assert!(all.contains("cannot take it: no interval type"), "{all}");
        assert!(
            all.contains("differ only by case, and mysql column names"),
            "{all}"
        );
        assert!(
            all.contains("would both load into target table \"users\""),
            "{all}"
        );
        // 64 characters fit MySQL; PostgreSQL counts 64 bytes as too long.
        assert!(!all.contains("longer than"), "{all}");
        let pg = findings(&rules("postgres", Mode::Append, &|_| None), &[planned(&a)]).join("\n");
        assert!(pg.contains("longer than postgres's 63 bytes"), "{pg}");
        assert!(!pg.contains("differ only by case"), "{pg}");
    }

    #[test]
    fn no_bundle_table_may_load_into_ferrys_own_tables() {
        for name in ["_ferry_ledger", "_FERRY_LEDGER", "_ferry_0123abcd_89abcdef"] {
            let t = table(name, vec![col("id", ColumnType::Int64)], &[]);
            for engine in ["postgres", "mysql", "sqlite"] {
                let found = findings(&rules(engine, Mode::Append, &|_| None), &[planned(&t)]);
                assert!(
                    found
                        .iter()
                        .any(|f| f.contains("named like ferry's own tables")),
                    "{engine} {name}: {found:?}"
                );
            }
        }
        let t = table("ferry_ledger", vec![col("id", ColumnType::Int64)], &[]);
        assert!(findings(&rules("sqlite", Mode::Append, &|_| None), &[planned(&t)]).is_empty());
    }

    #[test]
    fn an_existing_table_must_have_every_column_and_no_unfillable_one() {
        let t = table(
            "t",
            vec![col("id", ColumnType::Int64), col("note", ColumnType::Utf8)],
            &["id"],
        );
        let mut p = planned(&t);
        p.existing_rows = Some(3);
        p.existing_columns = Some(vec![
            TargetColumn {
                name: "ID".into(),
                nullable: false,
                has_default: false,
            },
            TargetColumn {
                name: "owner".into(),
                nullable: false,
                has_default: false,
            },
            TargetColumn {
                name: "created".into(),
                nullable: false,
                has_default: true,
            },
        ]);
        let none = |_: &ColumnType| None;
        let found = findings(
            &rules("sqlite", Mode::Append, &none),
            std::slice::from_ref(&p),
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("no column \"note\""), "{found:?}");
        assert!(
            found[1].contains("\"owner\" is NOT NULL without a default"),
            "{found:?}"
        );
        // create mode also refuses a table that holds rows, unless resuming
        let found = findings(
            &rules("sqlite", Mode::Create, &none),
            std::slice::from_ref(&p),
        );
        assert!(
            found.iter().any(|f| f.contains("holds 3 rows")),
            "{found:?}"
        );
        p.resuming = true;
        let found = findings(
            &rules("sqlite", Mode::Create, &none),
            std::slice::from_ref(&p),
        );
        assert!(
            !found.iter().any(|f| f.contains("holds 3 rows")),
            "{found:?}"
        );
    }

    #[test]
    fn as_text_loads_what_the_target_refuses_when_it_has_a_text_form() {
        let mut iv = col("every", ColumnType::Interval);
        iv.source_type = "interval".into();
        let t = table(
            "plan",
            vec![
                col("id", ColumnType::Int64),
                iv,
                col(
                    "tags",
                    ColumnType::List {
                        element: Box::new(ColumnType::Utf8),
                    },
                ),
            ],
            &[],
        );
        let refuses = |t: &ColumnType| match t {
            ColumnType::Interval => Some("no interval type"),
            ColumnType::List { .. } => Some("no array type"),
            _ => None,
        };
        let mut r = rules("sqlite", Mode::Create, &refuses);
        let found = findings(&r, &[planned(&t)]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            found[0],
            "plan.every (interval from interval): sqlite cannot take it: no interval type; load it as \
             its text form with --as-text, or leave the table out with --exclude"
        );
        assert!(
            found[1].starts_with("plan.tags (utf8[] from x)"),
            "{found:?}"
        );
        r.as_text = true;
        assert_eq!(findings(&r, &[planned(&t)]), Vec::<String>::new());
    }
}
