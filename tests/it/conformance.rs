//! One conformance suite over every engine, driven through the library (`ferry::export`,
//! `ferry::import`, the engines' own readers and targets), so an engine that lives outside
//! the crate (the toy `sqlite-split` of `toy_engine/`) runs it too. `suite!` at the end is
//! the table of engines: one line per engine gives it every check, each a test named
//! `conformance::<engine>::<check>`, and every failure message starts with `[<engine>]`.
//!
//! The checks, per engine (small data; each on its own new target):
//! - `round_trip`: the sample SQLite fixture → the engine → a new bundle → a new SQLite
//!   database: equal content fingerprints (ferry's canonical values, read by each engine's
//!   own reader) at every step, and the same SQLite storage-level dump at the end;
//! - `reimport_is_a_noop`: the same bundle again is "nothing to do" and changes nothing;
//! - `append_twice`: two different bundles appended: key ranges add up, keyless rows double;
//! - `replace_replaces`: `--mode replace` leaves exactly the new bundle's rows;
//! - `upsert_updates_by_key`: changed rows updated, a new row inserted, none duplicated;
//! - `run_lock_refuses_a_second_import`: while another session holds the run lock, an import
//!   is a temporary failure with nothing written; afterwards it loads;
//! - `resume_after_a_failed_part`: a part refused by the target fails the import after an
//!   earlier table committed; the re-run loads only what is missing, then is a no-op;
//! - `refusals_in_preflight`: a column type the engine refuses (when there is one a test
//!   source can produce), a missing target column and create into a non-empty table are
//!   refused before anything is written (no table, no ledger row).

use std::any::Any;
use std::path::Path;

use ferry::compare::Fingerprint;
use ferry::crypto::keys::{KeyFileKey, Keys};
use ferry::export::ExportPlan;
use ferry::import::{ImportPlan, Mode};
use ferry::load::Target;
use ferry::report::{Progress, RunReport};
use ferry::source::{BatchLimits, Selection};
use ferry::types::{ColumnType, TableDef};
use rusqlite::Connection;

use crate::common::{Fixture, dump, fixture};
use crate::servers::{MyDb, PgDb, psql};
use crate::toy_engine;

/// What keeps a target alive for one test (a temporary database, dropped with it).
pub type Keep = Box<dyn Any>;
/// Makes a new, empty target under a test's directory: its URL and what keeps it; `None`
/// when the engine's server is unreachable (skipped loudly; a failure under CI=true).
pub type Make = fn(&Path, &str) -> Option<(String, Keep)>;

fn sqlite_target(dir: &Path, tag: &str) -> Option<(String, Keep)> {
    let p = dir.join(format!("{tag}.db"));
    Some((format!("sqlite://{}", p.display()), Box::new(())))
}

fn postgres_target(_: &Path, tag: &str) -> Option<(String, Keep)> {
    let db = PgDb::new(&format!("conf_{tag}"))?;
    Some((db.url.clone(), Box::new(db)))
}

fn mysql_target(_: &Path, tag: &str) -> Option<(String, Keep)> {
    let db = MyDb::new(&format!("conf_{tag}"))?;
    Some((db.url.clone(), Box::new(db)))
}

/// One engine under test: its name (for messages) and its targets.
struct Under {
    engine: &'static str,
    make: Make,
    fx: Fixture,
}

impl Under {
    fn new(engine: &'static str, make: Make) -> Under {
        Under {
            engine,
            make,
            fx: fixture(),
        }
    }

    /// A new target; `None` (skipped) when the engine's server is unreachable.
    fn target(&self, tag: &str) -> Option<(String, Keep)> {
        let t = (self.make)(self.fx.dir.path(), tag);
        if t.is_none() {
            eprintln!("SKIPPED: conformance [{}] {tag}: no server", self.engine);
        }
        t
    }

    fn keys(&self) -> Keys {
        let (k, _) = KeyFileKey::load(&self.fx.key).expect("the fixture's key");
        Keys {
            key_files: vec![k],
            ..Keys::default()
        }
    }

    fn src(&self) -> String {
        self.fx.src_url()
    }

    /// A copy of the fixture's source database with `sql` run on it; its URL.
    fn src_variant(&self, name: &str, sql: &str) -> String {
        let p = self.fx.path(&format!("{name}.db"));
        std::fs::copy(&self.fx.src, &p).unwrap();
        Connection::open(&p).unwrap().execute_batch(sql).unwrap();
        format!("sqlite://{}", p.display())
    }

    /// Exports `tables` (all when empty) of `source`, with `TABLE:PREDICATE` filters, into a
    /// new bundle `name`; returns its path and bundle id.
    fn export(
        &self,
        source: &str,
        name: &str,
        tables: &[&str],
        filters: &[(&str, &str)],
    ) -> (String, String) {
        let bundle = self.fx.path(name).display().to_string();
        let mut plan = ExportPlan::new(source, &bundle);
        plan.keys = self.keys();
        plan.selection = Selection {
            tables: tables.iter().map(|t| t.to_string()).collect(),
            exclude: vec![],
        };
        plan.filters = ferry::export::parse_filters(
            source,
            filters
                .iter()
                .map(|(t, p)| (t.to_string(), p.to_string()))
                .collect(),
        )
        .unwrap();
        let r = ferry::export::export(&plan, &Progress::hidden()).unwrap_or_else(|e| {
            panic!(
                "[{}] export of {} into {name} failed: {e}",
                self.engine,
                ferry::display_url(source)
            )
        });
        (bundle, r.bundle_id.expect("an export names its bundle"))
    }

    /// Imports `bundle` into `target` (only `tables` when not empty).
    fn import(
        &self,
        bundle: &str,
        target: &str,
        mode: Mode,
        tables: &[&str],
    ) -> ferry::Result<RunReport> {
        self.import_with(bundle, target, mode, tables, |_| {})
    }

    /// `import` with the plan adjusted by `adjust` first.
    fn import_with(
        &self,
        bundle: &str,
        target: &str,
        mode: Mode,
        tables: &[&str],
        adjust: impl FnOnce(&mut ImportPlan),
    ) -> ferry::Result<RunReport> {
        let mut plan = ImportPlan::new(bundle, target);
        plan.keys = self.keys();
        plan.mode = mode;
        plan.tables = tables.iter().map(|t| t.to_string()).collect();
        adjust(&mut plan);
        ferry::import::import(&plan, &Progress::hidden())
    }

    /// `import`, asserted to succeed.
    fn import_ok(&self, bundle: &str, target: &str, mode: Mode, tables: &[&str]) -> RunReport {
        self.import(bundle, target, mode, tables)
            .unwrap_or_else(|e| {
                panic!(
                    "[{}] import ({}) of {bundle} into {} failed: {e}",
                    self.engine,
                    mode.as_str(),
                    ferry::display_url(target)
                )
            })
    }

    /// `import`, asserted to fail; the error.
    fn import_err(&self, bundle: &str, target: &str, mode: Mode, tables: &[&str]) -> ferry::Error {
        match self.import(bundle, target, mode, tables) {
            Ok(r) => panic!(
                "[{}] import ({}) of {bundle} should have failed, but: {} {}",
                self.engine,
                mode.as_str(),
                r.status,
                r.message
            ),
            Err(e) => e,
        }
    }

    /// The content fingerprint (rows and canonical values) of `table` as the database's own
    /// reader sees it, `None` when the table does not exist.
    fn fingerprint(&self, url: &str, table: &str, filter: Option<&str>) -> Option<Fingerprint> {
        let what = format!(
            "[{}] reading {table} of {}",
            self.engine,
            ferry::display_url(url)
        );
        let mut src = or_panic(ferry::engines::open_source(url, Default::default()), &what);
        or_panic(src.begin_snapshot(), &what);
        let sel = Selection {
            tables: vec![table.into()],
            exclude: vec![],
        };
        let t = or_panic(src.tables(&sel), &what).into_iter().next()?;
        let mut fp = Fingerprint::default();
        or_panic(
            src.read(&t, filter, BatchLimits::default(), &mut |b| fp.add(&b)),
            &what,
        );
        Some(fp)
    }

    /// `table` holds the same rows in `a` and `b` (with `filter` applied on `a`'s side).
    fn assert_same(&self, a: &str, b: &str, table: &str, filter: Option<&str>, step: &str) {
        let (x, y) = (
            self.fingerprint(a, table, filter),
            self.fingerprint(b, table, None),
        );
        assert!(
            x.is_some(),
            "[{}] {step}: {table} missing in {a}",
            self.engine
        );
        assert_eq!(
            x.map(|f| (f.rows, f.hex())),
            y.map(|f| (f.rows, f.hex())),
            "[{}] {step}: table {table} differs between {} and {}",
            self.engine,
            ferry::display_url(a),
            ferry::display_url(b)
        );
    }

    /// Opens the target through its engine (SQLite-like engines take the run lock while it
    /// is open: drop it before the next import).
    fn open(&self, url: &str) -> Box<dyn Target> {
        ferry::engines::open_target(url, None).unwrap_or_else(|e| {
            panic!("[{}] opening {}: {e}", self.engine, ferry::display_url(url))
        })
    }

    /// Rows of `table` in the target, `None` when it does not exist.
    fn rows(&self, url: &str, table: &str) -> Option<u64> {
        let def = TableDef {
            name: table.into(),
            ..Default::default()
        };
        self.open(url)
            .table_rows(table, &def)
            .unwrap_or_else(|e| panic!("[{}] counting {table}: {e}", self.engine))
    }

    /// Parts of `bundle_id` the target's ledger holds.
    fn ledger_parts(&self, url: &str, bundle_id: &str) -> usize {
        let mut t = self.open(url);
        ferry::load::ledger::state(t.as_mut(), bundle_id)
            .unwrap_or_else(|e| panic!("[{}] reading the ledger: {e}", self.engine))
            .parts
            .len()
    }

    /// Runs one statement on the target, `{t}` standing for `table` as the engine writes it.
    fn execute(&self, url: &str, table: &str, sql: &str) {
        let mut t = self.open(url);
        let def = TableDef {
            name: table.into(),
            ..Default::default()
        };
        let sql = sql.replace("{t}", &t.table_sql(table, &def));
        t.execute("conformance test", &sql, &[])
            .unwrap_or_else(|e| panic!("[{}] {sql}: {e}", self.engine));
    }
}

/// The value, or a panic naming what failed.
fn or_panic<T>(r: ferry::Result<T>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The data lines of a SQLite dump (the column declarations may differ by engine).
fn data_lines(db: &Path) -> Vec<String> {
    dump(db)
        .into_iter()
        .filter(|l| !l.contains(" schema "))
        .collect()
}

fn round_trip(u: &Under) {
    let Some((t, _keep)) = u.target("rt") else {
        return;
    };
    let (b1, _) = u.export(&u.src(), "b1", &[], &[]);
    u.import_ok(&b1, &t, Mode::Create, &[]);
    for table in ["items", "notes"] {
        u.assert_same(&u.src(), &t, table, None, "source → engine");
    }
    let (b2, _) = u.export(&t, "b2", &["items", "notes"], &[]);
    let back = u.fx.path("back.db");
    let back_url = format!("sqlite://{}", back.display());
    u.import_ok(&b2, &back_url, Mode::Create, &[]);
    for table in ["items", "notes"] {
        u.assert_same(&u.src(), &back_url, table, None, "engine → SQLite");
    }
    assert_eq!(
        data_lines(&u.fx.src),
        data_lines(&back),
        "[{}] round trip through the engine: SQLite storage-level dump differs",
        u.engine
    );
}

fn reimport_is_a_noop(u: &Under) {
    let Some((t, _keep)) = u.target("noop") else {
        return;
    };
    let (b1, id) = u.export(&u.src(), "b1", &[], &[]);
    let first = u.import_ok(&b1, &t, Mode::Create, &[]);
    assert_eq!(
        first.totals.rows, 3002,
        "[{}] first import's rows",
        u.engine
    );
    let parts = u.ledger_parts(&t, &id);
    for mode in [Mode::Create, Mode::Append] {
        let again = u.import_ok(&b1, &t, mode, &[]);
        assert_eq!(
            again.status,
            "nothing to do",
            "[{}] re-import ({}): {}",
            u.engine,
            mode.as_str(),
            again.message
        );
        // Nothing moved; the summary shows what the ledger holds of the bundle.
        assert_eq!(
            again.totals.rows_per_s, 0.0,
            "[{}] re-import moved rows",
            u.engine
        );
        assert!(
            again
                .tables
                .iter()
                .all(|t| t.status == "skipped (already imported)" && t.seconds == 0.0),
            "[{}] re-import: {:?}",
            u.engine,
            again.tables
        );
        assert_eq!(again.totals.rows, 3002, "[{}] the ledger's rows", u.engine);
    }
    assert_eq!(u.rows(&t, "items"), Some(3000), "[{}] items", u.engine);
    assert_eq!(u.rows(&t, "notes"), Some(2), "[{}] notes", u.engine);
    assert_eq!(u.ledger_parts(&t, &id), parts, "[{}] ledger rows", u.engine);
}

fn append_twice(u: &Under) {
    let Some((t, _keep)) = u.target("append") else {
        return;
    };
    let (lo, _) = u.export(&u.src(), "lo", &[], &[("items", "id < 1000")]);
    let (hi, _) = u.export(&u.src(), "hi", &[], &[("items", "id >= 1000")]);
    u.import_ok(&lo, &t, Mode::Append, &[]);
    assert_eq!(
        u.rows(&t, "items"),
        Some(1000),
        "[{}] first append",
        u.engine
    );
    u.import_ok(&hi, &t, Mode::Append, &[]);
    // The two key ranges add up to the source; the keyless table holds its rows twice.
    u.assert_same(&u.src(), &t, "items", None, "two appends");
    assert_eq!(u.rows(&t, "notes"), Some(4), "[{}] notes doubled", u.engine);
}

fn replace_replaces(u: &Under) {
    let Some((t, _keep)) = u.target("replace") else {
        return;
    };
    let (all, _) = u.export(&u.src(), "all", &[], &[]);
    let (hi, _) = u.export(&u.src(), "hi", &[], &[("items", "id >= 2500")]);
    u.import_ok(&all, &t, Mode::Create, &[]);
    // `hi` holds part of `items` (exported with --where): replace refuses it unless told.
    let e = u.import_err(&hi, &t, Mode::Replace, &[]);
    assert!(
        matches!(&e, ferry::Error::Usage(m) if m.contains("--replace-partial")),
        "[{}] {e}",
        u.engine
    );
    u.import_with(&hi, &t, Mode::Replace, &[], |p| p.replace_partial = true)
        .unwrap_or_else(|e| panic!("[{}] replace --replace-partial: {e}", u.engine));
    u.assert_same(&u.src(), &t, "items", Some("id >= 2500"), "replace");
    assert_eq!(
        u.rows(&t, "notes"),
        Some(2),
        "[{}] notes replaced",
        u.engine
    );
    let mut left = u.open(&t);
    let staging = left
        .staging_tables(&[])
        .unwrap_or_else(|e| panic!("[{}] listing staging tables: {e}", u.engine));
    assert!(
        staging.is_empty(),
        "[{}] staging left: {staging:?}",
        u.engine
    );
}

fn upsert_updates_by_key(u: &Under) {
    let Some((t, _keep)) = u.target("upsert") else {
        return;
    };
    let (all, _) = u.export(&u.src(), "all", &[], &[]);
    let changed = u.src_variant(
        "changed",
        "UPDATE items SET name = 'changed ' || id, price = 0.5 WHERE id % 100 = 0;
         INSERT INTO items VALUES (5000, 'new', 1.25, x'00ff');",
    );
    let (up, _) = u.export(&changed, "up", &["items"], &[]);
    u.import_ok(&all, &t, Mode::Create, &[]);
    u.import_ok(&up, &t, Mode::Upsert, &[]);
    assert_eq!(
        u.rows(&t, "items"),
        Some(3001),
        "[{}] upsert rows",
        u.engine
    );
    u.assert_same(&changed, &t, "items", None, "upsert");
}

fn run_lock_refuses_a_second_import(u: &Under) {
    let Some((t, _keep)) = u.target("lock") else {
        return;
    };
    let (b1, id) = u.export(&u.src(), "b1", &[], &[]);
    {
        // Another import of the same bundle into the same target, holding the run lock.
        let mut holder = u.open(&t);
        holder
            .lock_run(&id)
            .unwrap_or_else(|e| panic!("[{}] taking the run lock: {e}", u.engine));
        let e = u.import_err(&b1, &t, Mode::Create, &[]);
        assert!(
            matches!(e, ferry::Error::Temporary(_)),
            "[{}] a second import must be a temporary failure, got: {e}",
            u.engine
        );
        assert!(
            e.to_string().contains("import"),
            "[{}] the refusal names the running import: {e}",
            u.engine
        );
    }
    assert_eq!(u.rows(&t, "items"), None, "[{}] nothing written", u.engine);
    assert_eq!(u.ledger_parts(&t, &id), 0, "[{}] no ledger rows", u.engine);
    u.import_ok(&b1, &t, Mode::Create, &[]);
    u.assert_same(&u.src(), &t, "items", None, "after the lock");
}

fn resume_after_a_failed_part(u: &Under) {
    let Some((t, _keep)) = u.target("resume") else {
        return;
    };
    let p = u.fx.path("resume_src.db");
    Connection::open(&p)
        .unwrap()
        .execute_batch(
            "CREATE TABLE a_first (n INTEGER, s TEXT);
             CREATE TABLE b_keyed (id INTEGER PRIMARY KEY, s TEXT NOT NULL);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200)
             INSERT INTO a_first SELECT i, 'a' || i FROM c;
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300)
             INSERT INTO b_keyed SELECT i, 'b' || i FROM c;",
        )
        .unwrap();
    let src = format!("sqlite://{}", p.display());
    // The target already holds row 7 of b_keyed: the full bundle's b_keyed part fails on it.
    let (seven, _) = u.export(&src, "seven", &["b_keyed"], &[("b_keyed", "id = 7")]);
    let (full, id) = u.export(&src, "full", &[], &[]);
    u.import_ok(&seven, &t, Mode::Create, &[]);
    let e = u.import_err(&full, &t, Mode::Append, &[]);
    assert!(
        matches!(e, ferry::Error::RowRefused(_) | ferry::Error::Data(_)) && e.exit_code() == 65,
        "[{}] a refused row is a data error (exit 65), got: {e}",
        u.engine
    );
    assert!(
        e.to_string().contains("re-run"),
        "[{}] the failure says how to resume: {e}",
        u.engine
    );
    assert_eq!(
        u.rows(&t, "a_first"),
        Some(200),
        "[{}] a_first committed",
        u.engine
    );
    assert_eq!(
        u.rows(&t, "b_keyed"),
        Some(1),
        "[{}] nothing of the failed part",
        u.engine
    );
    assert_eq!(
        u.ledger_parts(&t, &id),
        1,
        "[{}] one part in the ledger",
        u.engine
    );
    u.execute(&t, "b_keyed", "DELETE FROM {t}");
    let r = u.import_ok(&full, &t, Mode::Append, &[]);
    assert_eq!(
        r.totals.rows, 300,
        "[{}] the re-run loads only b_keyed",
        u.engine
    );
    u.assert_same(&src, &t, "a_first", None, "resume");
    u.assert_same(&src, &t, "b_keyed", None, "resume");
    let again = u.import_ok(&full, &t, Mode::Append, &[]);
    assert_eq!(again.status, "nothing to do", "[{}] then a no-op", u.engine);
}

/// A bundle with one column of a type that `refused` says the engine refuses, made by a
/// source that can produce it; `None` when no candidate is refused.
fn refused_bundle(u: &Under, refused: &dyn Fn(&ColumnType) -> bool) -> Option<(String, String)> {
    // From SQLite: a decimal with 31 digits after the point (MySQL keeps at most 30).
    if refused(&ColumnType::Decimal128 {
        precision: 38,
        scale: 31,
    }) {
        let s = u.src_variant(
            "wide",
            "CREATE TABLE wide (d DECIMAL(38,31)); INSERT INTO wide VALUES (1);",
        );
        let (b, id) = u.export(&s, "wide_b", &["wide"], &[]);
        return Some((b, id));
    }
    // From PostgreSQL (when it is there): an interval.
    if refused(&ColumnType::Interval) {
        let db = PgDb::new("conf_iv")?;
        psql(
            &db.url,
            "CREATE TABLE wide (iv interval); INSERT INTO wide VALUES ('1 day');",
        );
        return Some(u.export(&db.url, "wide_b", &["wide"], &[]));
    }
    None
}

fn refusals_in_preflight(u: &Under) {
    let Some((t, _keep)) = u.target("refuse") else {
        return;
    };
    let refuses = {
        let probe = u.open(&t);
        let r: Vec<ColumnType> = [
            ColumnType::Decimal128 {
                precision: 38,
                scale: 31,
            },
            ColumnType::Interval,
        ]
        .into_iter()
        .filter(|ty| probe.refuses(ty).is_some())
        .collect();
        r
    };
    // 1. A column type the engine refuses.
    match refused_bundle(u, &|ty| refuses.contains(ty)) {
        Some((b, id)) => {
            let e = u.import_err(&b, &t, Mode::Create, &[]);
            let m = e.to_string();
            assert!(
                m.contains("pre-flight")
                    && m.contains("wide.")
                    && m.contains("nothing was written"),
                "[{}] a refused type is named in pre-flight: {m}",
                u.engine
            );
            assert_eq!(u.rows(&t, "wide"), None, "[{}] no table made", u.engine);
            assert_eq!(u.ledger_parts(&t, &id), 0, "[{}] no ledger rows", u.engine);
        }
        None => eprintln!(
            "conformance [{}]: refuses no column type a test source produces; type refusal not checked",
            u.engine
        ),
    }
    // 2. The target table lacks a column of the bundle's.
    let (b1, _) = u.export(&u.src(), "b1", &[], &[]);
    u.import_ok(&b1, &t, Mode::Create, &[]);
    let extra = u.src_variant("extra", "ALTER TABLE items ADD COLUMN extra TEXT;");
    let (bx, idx) = u.export(&extra, "bx", &["items"], &[]);
    let m = u.import_err(&bx, &t, Mode::Append, &[]).to_string();
    assert!(
        m.contains("pre-flight") && m.contains("no column \"extra\""),
        "[{}] a missing target column is refused in pre-flight: {m}",
        u.engine
    );
    assert_eq!(u.ledger_parts(&t, &idx), 0, "[{}] no ledger rows", u.engine);
    // 3. --mode create into a table that holds rows.
    let (b2, id2) = u.export(&u.src(), "b2", &[], &[]);
    let m = u.import_err(&b2, &t, Mode::Create, &[]).to_string();
    assert!(
        m.contains("pre-flight") && m.contains("already exists and holds 3000 rows"),
        "[{}] create into a non-empty table is refused in pre-flight: {m}",
        u.engine
    );
    assert_eq!(u.ledger_parts(&t, &id2), 0, "[{}] no ledger rows", u.engine);
    assert_eq!(
        u.rows(&t, "items"),
        Some(3000),
        "[{}] items untouched",
        u.engine
    );
    u.assert_same(&u.src(), &t, "items", None, "after the refusals");
}

/// The table of engines: `name => maker;`. Each line gets every check as a test
/// `conformance::<name>::<check>`.
macro_rules! suite {
    ($($engine:ident => $make:expr;)*) => {
        /// Every engine of the suite, with its maker.
        #[allow(dead_code)]
        pub const ENGINES: &[(&str, Make)] = &[$((stringify!($engine), $make)),*];
        $(
            mod $engine {
                use super::*;

                fn under() -> super::Under {
                    super::Under::new(stringify!($engine), $make)
                }
                #[test]
                fn round_trip() {
                    super::round_trip(&under());
                }
                #[test]
                fn reimport_is_a_noop() {
                    super::reimport_is_a_noop(&under());
                }
                #[test]
                fn append_twice() {
                    super::append_twice(&under());
                }
                #[test]
                fn replace_replaces() {
                    super::replace_replaces(&under());
                }
                #[test]
                fn upsert_updates_by_key() {
                    super::upsert_updates_by_key(&under());
                }
                #[test]
                fn run_lock_refuses_a_second_import() {
                    super::run_lock_refuses_a_second_import(&under());
                }
                #[test]
                fn resume_after_a_failed_part() {
                    super::resume_after_a_failed_part(&under());
                }
                #[test]
                fn refusals_in_preflight() {
                    super::refusals_in_preflight(&under());
                }
            }
        )*
    };
}

suite! {
    sqlite => sqlite_target;
    postgres => postgres_target;
    mysql => mysql_target;
    sqlite_split => toy_engine::temp_target;
}
