//! The exactly-once load protocol, written once for every engine: each part loads in one
//! transaction together with its ledger row; a replace loads into a staging table and
//! publishes it in one transaction; a re-run finds what the ledger holds and resumes.
//! Engines supply only the primitives of [`Session`] (docs/ARCHITECTURE.md).

pub mod ledger;
pub mod session;
pub mod target;
pub mod typemap;

use arrow::record_batch::RecordBatch;

pub use ledger::{LedgerEntry, LedgerState, PUBLISHED, STAGED};
pub use session::{Dialect, LedgerKind, LoadInto, Param, Placeholders, Reference, Session};
pub use target::Target;

use crate::types::TableDef;
use crate::{Error, Result};

/// Import modes of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Create the tables; refuse a table that exists and holds rows (unless this bundle put them there).
    Create,
    /// Add the rows to existing tables (created when missing).
    Append,
    /// Atomically replace the tables' rows: parts load into staging tables, then one
    /// transaction per table swaps the rows; readers see the old rows until then.
    Replace,
    /// Insert, or update the row with the same primary key (tables need a primary key).
    Upsert,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Create => "create",
            Mode::Append => "append",
            Mode::Replace => "replace",
            Mode::Upsert => "upsert",
        }
    }

    /// The ledger's `mode` of a part loaded in this mode.
    pub fn ledger_mode(self) -> &'static str {
        match self {
            Mode::Replace => STAGED,
            other => other.as_str(),
        }
    }
}

/// A column of a table that already exists in the target (pre-flight: missing columns,
/// NOT NULL columns the bundle cannot fill).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetColumn {
    pub name: String,
    pub nullable: bool,
    pub has_default: bool,
}

/// How a part load ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome {
    Loaded(u64),
    /// The ledger already had it (another run committed it meanwhile).
    AlreadyLoaded,
}

/// Runs `body` in one transaction on table `name`: commit when it returns `Ok`, roll back
/// otherwise (the error explained by the engine, e.g. who holds a lock on the table).
fn transaction<T>(
    s: &mut dyn Session,
    (name, table): (&str, &TableDef),
    body: impl FnOnce(&mut dyn Session) -> Result<T>,
    commit: impl FnOnce(&T) -> bool,
) -> Result<T> {
    s.begin()?;
    match body(s) {
        Ok(v) if commit(&v) => {
            s.commit()?;
            Ok(v)
        }
        Ok(v) => {
            s.rollback();
            Ok(v)
        }
        Err(e) => {
            s.rollback();
            Err(s.explain(e, name, table))
        }
    }
}

/// Loads one part in one transaction with its ledger row. The ledger and the table are
/// created inside that transaction when the engine's DDL is transactional (before it
/// otherwise), so a failed first part leaves nothing behind where it can. `before_commit`
/// runs last, after every row is in: it authenticates the rest of the part, and its error
/// rolls back. `into` says where the rows go: the table itself, an upsert by primary key,
/// or a replace's staging table (created from the catalog when missing).
#[allow(clippy::too_many_arguments)]
pub fn load_part(
    s: &mut dyn Session,
    name: &str,
    table: &TableDef,
    same_engine: bool,
    into: LoadInto<'_>,
    entry: &LedgerEntry,
    batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
    before_commit: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<LoadOutcome> {
    let (dest, staging) = match into {
        LoadInto::Staging(st) => (st, true),
        LoadInto::Table | LoadInto::Upsert => (name, false),
    };
    let ddl_inside = s.dialect().transactional_ddl;
    if !ddl_inside {
        s.ensure_ledger()?;
        s.create_table(dest, table, same_engine, staging)?;
    }
    transaction(
        s,
        (dest, table),
        |s| {
            s.lock_part(&format!("ferry:{}:{}", entry.bundle_id, entry.part_path))?;
            if ddl_inside {
                s.ensure_ledger()?;
                s.create_table(dest, table, same_engine, staging)?;
            }
            // The ledger row goes first: a concurrent loader of the same part waits on its
            // key, then finds it taken.
            if !ledger::claim_with_link(s, entry)? {
                return Ok(LoadOutcome::AlreadyLoaded);
            }
            // Generated columns are computed by the target: their values are not loaded.
            let rows = if table.has_generated() {
                let (loaded, keep) = table.loaded();
                let mut projected = batches.map(|b| {
                    b.and_then(|b| {
                        b.project(&keep).map_err(|e| {
                            Error::Data(format!("table {name}: a part's columns: {e}"))
                        })
                    })
                });
                s.bulk_load(
                    dest,
                    &loaded,
                    &mut projected,
                    &entry.part_path,
                    into == LoadInto::Upsert,
                )?
            } else {
                s.bulk_load(
                    dest,
                    table,
                    batches,
                    &entry.part_path,
                    into == LoadInto::Upsert,
                )?
            };
            before_commit(rows)?;
            ledger::set_rows(s, entry, rows)?;
            Ok(LoadOutcome::Loaded(rows))
        },
        |o| matches!(o, LoadOutcome::Loaded(_)),
    )
}

/// Records a link of a chain that has no parts (nothing changed at the source): its
/// chain-link row alone, in a transaction of its own.
pub fn record_link(
    s: &mut dyn Session,
    table: (&str, &TableDef),
    entry: &LedgerEntry,
) -> Result<()> {
    let Some(row) = entry.link_row() else {
        return Ok(());
    };
    s.ensure_ledger()?;
    transaction(s, table, |s| ledger::claim(s, &row), |_| true).map(|_| ())
}

/// A link's deletes (`export --deletes`), in one transaction (`dry`: only counted, checked
/// against the ratio and rolled back, nothing claimed): every key part of the
/// table is claimed in the ledger, the key set goes into staging table `stage` (the key
/// columns only), and the rows of `name` whose key is absent from it are deleted. When that
/// would delete more than `max_ratio` of the table's rows the transaction rolls back and
/// nothing is deleted (exit 65). `before_commit` authenticates the key parts. Returns the
/// rows deleted, or `AlreadyLoaded` when an earlier run committed the deletes.
#[allow(clippy::too_many_arguments)]
pub fn apply_deletes(
    s: &mut dyn Session,
    name: &str,
    table: &TableDef,
    keys: &TableDef,
    stage: &str,
    same_engine: bool,
    entries: &[LedgerEntry],
    batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
    max_ratio: f64,
    dry: bool,
    before_commit: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<LoadOutcome> {
    let ddl_inside = s.dialect().transactional_ddl;
    if !ddl_inside {
        s.ensure_ledger()?;
        s.create_table(stage, keys, same_engine, true)?;
    }
    let q = s.table_sql(name, table);
    let k = s.table_sql(stage, keys);
    let quote = s.dialect().quote;
    let outcome = transaction(
        s,
        (name, table),
        |s| {
            // An empty key set (the source table is empty) has no part to claim: deleting
            // every row is the same however often it runs.
            let first_part = entries.first().map_or("", |e| e.part_path.as_str());
            if let Some(first) = entries.first() {
                s.lock_part(&format!("ferry:{}:{}", first.bundle_id, first.part_path))?;
            }
            if ddl_inside {
                s.ensure_ledger()?;
                s.create_table(stage, keys, same_engine, true)?;
            }
            for e in entries.iter().filter(|_| !dry) {
                if !ledger::claim_with_link(s, e)? {
                    return Ok(LoadOutcome::AlreadyLoaded);
                }
            }
            s.execute(
                "emptying the key staging table",
                &format!("DELETE FROM {k}"),
                &[],
            )?;
            let n_keys = s.bulk_load(stage, keys, batches, first_part, false)?;
            for e in entries.iter().filter(|_| !dry) {
                ledger::set_rows(s, e, e.rows)?;
            }
            let count = s.query_text(
                "counting rows",
                &format!("SELECT {} FROM {q}", (s.dialect().as_text)("COUNT(*)")),
                &[],
            )?;
            let before: u64 = count
                .first()
                .and_then(|r| r.first().cloned().flatten())
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            let matches: Vec<String> = keys
                .columns
                .iter()
                .map(|c| format!("{k}.{c} = {q}.{c}", c = quote(&c.name)))
                .collect();
            let absent = format!(
                "FROM {q} WHERE NOT EXISTS (SELECT 1 FROM {k} WHERE {})",
                matches.join(" AND ")
            );
            let deleted = if dry {
                let n = s.query_text(
                    "counting the rows the source deleted",
                    &format!("SELECT {} {absent}", (s.dialect().as_text)("COUNT(*)")),
                    &[],
                )?;
                n.first()
                    .and_then(|r| r.first().cloned().flatten())
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0)
            } else {
                s.execute(
                    "deleting the rows the source deleted",
                    &format!("DELETE {absent}"),
                    &[],
                )?
            };
            #[allow(clippy::cast_precision_loss)]
            if deleted > 0 && deleted as f64 > max_ratio * before as f64 {
                return Err(Error::Chain(format!(
                    "table {name}: this link's deletes would remove {deleted} of its {before} rows, more than \
                     --max-delete-ratio {max_ratio} allows; nothing was deleted (rolled back). If the source \
                     really lost that many rows, re-run with a higher --max-delete-ratio"
                )));
            }
            if dry {
                return Ok(LoadOutcome::Loaded(deleted));
            }
            // The key parts authenticate in full before anything commits.
            before_commit(n_keys)?;
            if ddl_inside {
                drop_staging(s, stage, keys)?;
            }
            Ok(LoadOutcome::Loaded(deleted))
        },
        |o| !dry && matches!(o, LoadOutcome::Loaded(_)),
    )?;
    if !ddl_inside {
        drop_staging(s, stage, keys)?;
    }
    Ok(outcome)
}

/// One table of a publish: its target name, definition and staging table.
#[derive(Debug, Clone, Copy)]
pub struct Publishing<'a> {
    pub name: &'a str,
    pub table: &'a TableDef,
    pub staging: &'a str,
}

/// Replace mode, once every part of a table is staged: [`publish_group`] of that one table.
#[allow(clippy::too_many_arguments)]
pub fn publish(
    s: &mut dyn Session,
    name: &str,
    table: &TableDef,
    same_engine: bool,
    staging: &str,
    bundle_id: &str,
    newer_than: Option<(&str, u64)>,
    before_commit: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let one = [Publishing {
        name,
        table,
        staging,
    }];
    publish_group(s, &one, same_engine, bundle_id, newer_than, before_commit)
}

/// Replace mode, once every part of a group of tables is staged (a group: tables of the
/// bundle that reference one another, so none can change alone): in one transaction,
/// create each table when missing, take its write lock, suspend the target's foreign keys
/// that reference the group ([`Session::suspend_references`]: their checks and their
/// `ON DELETE` actions must not touch the old rows), delete each table's rows, copy its
/// staging table's rows in, check every one of those foreign keys against the new rows
/// (a referencing row whose key the new rows lack refuses the whole publish: exit 65,
/// nothing changed), restore them, and mark the tables' `replace-staged` ledger rows of
/// this bundle `published`; `before_commit` runs just before COMMIT. Readers see the old
/// rows until the commit and the new ones after. The caller drops the staging tables after
/// the commit.
/// `newer_than`: (source id, sequence) of this bundle; when another bundle of that source
/// with a higher sequence has published into a table meanwhile, the publish is refused
/// inside the transaction (see [`newer_published`]). `None` with `--allow-replay`.
pub fn publish_group(
    s: &mut dyn Session,
    group: &[Publishing<'_>],
    same_engine: bool,
    bundle_id: &str,
    newer_than: Option<(&str, u64)>,
    before_commit: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let Some(first) = group.first() else {
        return Ok(());
    };
    let ddl_inside = s.dialect().transactional_ddl;
    if !ddl_inside {
        // A missing table is made (empty) before the transaction.
        for p in group {
            s.create_table(p.name, p.table, same_engine, false)?;
        }
    }
    s.references_off(true)?;
    let published = transaction(
        s,
        (first.name, first.table),
        |s| {
            let mut only = Vec::with_capacity(group.len());
            for p in group {
                if ddl_inside {
                    // A table made here appears with its rows or not at all.
                    s.create_table(p.name, p.table, same_engine, false)?;
                }
                let q = s.table_sql(p.name, p.table);
                only.push(s.lock_for_replace(&q)?);
            }
            // Every foreign key of the target pointing into the group, once.
            let mut refs: Vec<Reference> = Vec::new();
            for p in group {
                for r in s.referencing(p.name, p.table)? {
                    if !refs
                        .iter()
                        .any(|x| x.child_sql == r.child_sql && x.constraint == r.constraint)
                    {
                        refs.push(r);
                    }
                }
            }
            s.suspend_references(&refs)?;
            for (p, only) in group.iter().zip(&only) {
                let q = s.table_sql(p.name, p.table);
                // DELETE, not TRUNCATE: MVCC-safe for older snapshots and allowed under FKs.
                // It comes before the ledger read: once it holds the table's rows, that read
                // sees what other publishers of this table committed (also under REPEATABLE READ).
                s.execute(
                    &format!("publishing {}: deleting the old rows", p.name),
                    &format!("DELETE FROM {only}{q}"),
                    &[],
                )?;
                let key = s.ledger_key(p.name, p.table);
                if let Some((source, sequence)) = newer_than
                    && let Some((newer, newer_bundle)) =
                        ledger::newer_published(s, &key, source, bundle_id, sequence)?
                {
                    return Err(newer_published_error(
                        p.name,
                        sequence,
                        newer,
                        &newer_bundle,
                    ));
                }
            }
            for p in group {
                copy_staged(s, p)?;
            }
            for r in &refs {
                check_reference(s, group, r)?;
            }
            let tables: Vec<String> = group.iter().map(|p| s.table_sql(p.name, p.table)).collect();
            s.restore_references(&refs, &tables)?;
            for p in group {
                let key = s.ledger_key(p.name, p.table);
                for part in ledger::staged_parts(s, bundle_id, &key)? {
                    ledger::set_mode(s, bundle_id, &part, STAGED, PUBLISHED)?;
                }
            }
            before_commit()
        },
        |_| true,
    );
    let back = s.references_off(false);
    published?;
    back
}

/// `INSERT … SELECT` of one table's staging rows into it, inside the publish.
fn copy_staged(s: &mut dyn Session, p: &Publishing<'_>) -> Result<()> {
    let (name, table, staging) = (p.name, p.table, p.staging);
    let q = s.table_sql(name, table);
    let stage = s.table_sql(staging, table);
    let quote = s.dialect().quote;
    // Generated columns are computed by the target, not copied.
    let cols: Vec<String> = table
        .columns
        .iter()
        .filter(|c| c.generated.is_none())
        .map(|c| quote(&c.name))
        .collect();
    let list = if cols.is_empty() {
        String::new()
    } else {
        format!(" ({})", cols.join(", "))
    };
    let overriding = s.insert_overriding();
    s.execute(
        &format!("table {name}: publishing from {staging}"),
        &format!(
            "INSERT INTO {q}{list}{overriding} SELECT {} FROM {stage}",
            cols.join(", ")
        ),
        &[],
    )
    .map_err(|e| match e {
        Error::Data(m) => Error::Data(format!("{m}; nothing was published")),
        other => other,
    })
    .map(|_| ())
}

/// Inside the publish, after the new rows are in: a referencing row whose key (all of its
/// columns set, as `MATCH SIMPLE` checks) is not among the referenced table's rows refuses
/// the publish, naming the constraint, both tables and one such key.
fn check_reference(s: &mut dyn Session, group: &[Publishing<'_>], r: &Reference) -> Result<()> {
    let d = s.dialect();
    let (quote, as_text) = (d.quote, d.as_text);
    let set: Vec<String> = r
        .columns
        .iter()
        .map(|c| format!("c.{} IS NOT NULL", quote(c)))
        .collect();
    let matched: Vec<String> = r
        .columns
        .iter()
        .zip(&r.ref_columns)
        .map(|(c, p)| format!("p.{} = c.{}", quote(p), quote(c)))
        .collect();
    let shown: Vec<String> = r
        .columns
        .iter()
        .map(|c| as_text(&format!("c.{}", quote(c))))
        .collect();
    if r.columns.is_empty() || r.columns.len() != r.ref_columns.len() {
        return Ok(());
    }
    let sql = format!(
        "SELECT {} FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {}) LIMIT 1",
        shown.join(", "),
        r.child_sql,
        set.join(" AND "),
        r.parent_sql,
        matched.join(" AND ")
    );
    let rows = s.query_text(
        &format!("checking foreign key {} of {}", r.constraint, r.child),
        &sql,
        &[],
    )?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(());
    };
    let key: Vec<String> = row
        .into_iter()
        .map(|v| v.unwrap_or_else(|| "NULL".into()))
        .collect();
    let parent = group
        .iter()
        .find(|p| s.table_sql(p.name, p.table) == r.parent_sql)
        .map_or(r.parent_sql.as_str(), |p| p.name);
    let names: Vec<&str> = group.iter().map(|p| p.name).collect();
    let child_in_group = group
        .iter()
        .any(|p| s.table_sql(p.name, p.table) == r.child_sql);
    let what = if child_in_group {
        format!(
            "the bundle's rows of {} include ({}) = ({}), which the bundle's {parent} does not have: the bundle \
             breaks the constraint itself",
            r.child,
            r.columns.join(", "),
            key.join(", ")
        )
    } else {
        format!(
            "{} is not in this import and has rows with ({}) = ({}) (and maybe more), which the bundle's {parent} \
             does not have: delete or change those rows, or export {} with {parent} and import them together",
            r.child,
            r.columns.join(", "),
            key.join(", "),
            r.child
        )
    };
    Err(Error::Data(format!(
        "--mode replace of {} would break foreign key {} of table {} (referencing {parent}): {what}; nothing was \
         changed: {} still hold{} the old rows and the staged parts wait in staging",
        names.join(", "),
        r.constraint,
        r.child,
        names.join(", "),
        if names.len() == 1 { "s" } else { "" }
    )))
}

/// Drops a replace's staging table if it exists.
pub fn drop_staging(s: &mut dyn Session, staging: &str, table: &TableDef) -> Result<()> {
    let q = s.table_sql(staging, table);
    s.execute(
        &format!("dropping staging table {staging}"),
        &format!("DROP TABLE IF EXISTS {q}"),
        &[],
    )
    .map(|_| ())
}

/// Forgets a staging table whose contents cannot be trusted: deletes the table's
/// `replace-staged` ledger rows of this bundle and drops the staging table, in one
/// transaction where DDL is transactional. Otherwise the table goes first: a crash between
/// the steps leaves staged ledger rows without their table, which the next run's recount
/// finds and discards again.
pub fn discard_staging(
    s: &mut dyn Session,
    name: &str,
    staging: &str,
    table: &TableDef,
    bundle_id: &str,
) -> Result<()> {
    let key = s.ledger_key(name, table);
    if !s.dialect().transactional_ddl {
        drop_staging(s, staging, table)?;
        for part in ledger::staged_parts(s, bundle_id, &key)? {
            ledger::forget(s, bundle_id, &part)?;
        }
        return Ok(());
    }
    transaction(
        s,
        (staging, table),
        |s| {
            for part in ledger::staged_parts(s, bundle_id, &key)? {
                ledger::forget(s, bundle_id, &part)?;
            }
            drop_staging(s, staging, table)
        },
        |_| true,
    )
}

/// Whether a table name has the shape of a replace's staging table, `_ferry_<8 hex>_<8 hex>`.
pub fn is_staging_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("_ferry_") else {
        return false;
    };
    let hex = |s: &str| s.len() == 8 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    matches!(rest.split_once('_'), Some((a, b)) if hex(a) && hex(b))
}

/// How long a statement waits for a lock on a target table: `FERRY_LOCK_TIMEOUT` seconds,
/// default 60 (PostgreSQL `lock_timeout`; MySQL `lock_wait_timeout` and
/// `innodb_lock_wait_timeout`).
pub fn lock_timeout_secs() -> Result<u64> {
    match std::env::var("FERRY_LOCK_TIMEOUT") {
        Ok(v) => v.trim().parse().map_err(|_| {
            Error::Usage(format!(
                "FERRY_LOCK_TIMEOUT={v:?}: expected a whole number of seconds"
            ))
        }),
        Err(_) => Ok(60),
    }
}

/// Replace: an older bundle must not publish over a newer one of the same source that
/// published while it ran (docs/RELIABILITY.md, E53). The table keeps the newer rows.
pub fn newer_published_error(name: &str, sequence: u64, newer: u64, newer_bundle: &str) -> Error {
    Error::Data(format!(
        "table {name}: bundle {newer_bundle} (sequence {newer}) from the same source published into it while \
         this import ran, and this bundle is older (sequence {sequence}): {name} keeps the newer rows and this \
         bundle's parts stay staged; re-run with --allow-replay to publish the older rows anyway"
    ))
}
