//! SQLite: a file (or `:memory:`); no schemas, names ignore case.

use super::Engine;

pub static ENGINE: Engine = Engine {
    name: "sqlite",
    schemes: &["sqlite:"],
    url_form: "sqlite://PATH",
    sql: crate::expr::Engine::Sqlite,
    schemas: false,
    tables_without_columns: false,
    names_fold_case: true,
    identifier_limit: None,
    no_shards: Some(
        "a SQLite database is one file read by one process: a snapshot is one read transaction on one connection, which no process on another machine can join (and the file is local to one machine anyway)",
    ),
    open_source: |url, _| {
        Ok(Box::new(
            crate::engines::sqlite::reader::SqliteSource::open(url)?,
        ))
    },
    open_target: |url, _| {
        Ok(Box::new(
            crate::engines::sqlite::loader::SqliteTarget::open(url)?,
        ))
    },
    type_map: Some(|_| Ok(Box::new(crate::engines::sqlite::loader::SqliteTypes))),
};

pub mod loader;
pub mod reader;
