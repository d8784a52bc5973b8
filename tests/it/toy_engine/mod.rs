//! A toy fourth engine that lives in the test suite only: `sqlite-split://DIR`, a directory
//! where every table lives in its own SQLite file `DIR/<table>.db`, ATTACHed (as schema
//! `<table>`) to a main connection on `DIR/main.db`, which holds the ledger. It is an engine
//! folder like those under `src/engines/` (this entry, `reader.rs`, `loader.rs`) and joins
//! the conformance suite with one line there (`tests/it/conformance.rs`, `ENGINES`). The
//! library learns of it through `ferry::engines::register` (the CLI never does).

pub mod loader;
pub mod reader;

use ferry::engines::Engine;

pub static ENGINE: Engine = Engine {
    name: "sqlite-split",
    schemes: &["sqlite-split://"],
    url_form: "sqlite-split://DIR",
    sql: ferry::expr::Engine::Sqlite,
    schemas: false,
    tables_without_columns: false,
    names_fold_case: true,
    identifier_limit: None,
    no_shards: Some("the toy engine has no snapshot to share"),
    open_source: |url, _| Ok(Box::new(reader::SplitSource::open(url)?)),
    open_target: |url, _| Ok(Box::new(loader::SplitTarget::open(url)?)),
    type_map: None,
};

/// The directory of a `sqlite-split://DIR` URL.
pub fn dir_of(url: &str) -> ferry::Result<std::path::PathBuf> {
    match url.strip_prefix("sqlite-split://") {
        Some(d) if !d.is_empty() => Ok(std::path::PathBuf::from(d)),
        _ => Err(ferry::Error::Usage(format!(
            "{url}: expected sqlite-split://DIR"
        ))),
    }
}

/// The file holding the ledger; every other `*.db` in the directory is one table.
pub const MAIN: &str = "main.db";

/// A new, empty target of this engine under `dir` for one test (registered with the library
/// first): the conformance suite's line for the toy engine.
pub fn temp_target(dir: &std::path::Path, tag: &str) -> Option<(String, Box<dyn std::any::Any>)> {
    ferry::engines::register(&ENGINE);
    let d = dir.join(format!("{tag}.split"));
    Some((format!("sqlite-split://{}", d.display()), Box::new(())))
}

/// The toy is what it says: after an import, every table is its own file and `main.db`
/// holds only the ledger.
#[test]
fn every_table_lives_in_its_own_file_and_main_holds_the_ledger() {
    let fx = crate::common::fixture();
    let (url, _keep) = temp_target(fx.dir.path(), "files").expect("no server needed");
    let bundle = fx.export("b");
    let (k, _) = ferry::crypto::keys::KeyFileKey::load(&fx.key).unwrap();
    let mut plan = ferry::import::ImportPlan::new(bundle.to_str().unwrap(), &url);
    plan.keys.key_files.push(k);
    ferry::import::import(&plan, &ferry::report::Progress::hidden()).unwrap();
    let dir = dir_of(&url).unwrap();
    let tables = |f: &str| crate::common::user_tables(&dir.join(f));
    assert_eq!(tables("items.db"), ["items"]);
    assert_eq!(tables("notes.db"), ["notes"]);
    assert_eq!(tables(MAIN), [ferry::load::ledger::LEDGER]);
}
