//! MySQL and MariaDB (MariaDB is the MySQL-family server ferry is tested against): one
//! database per URL, names ignore case, at most 64 characters.

use super::{Engine, IdentifierLimit};

pub static ENGINE: Engine = Engine {
    name: "mysql",
    schemes: &["mysql://", "mariadb://"],
    url_form: "mysql://user@host:port/db",
    sql: crate::expr::Engine::MySql,
    schemas: false,
    tables_without_columns: false,
    names_fold_case: true,
    identifier_limit: Some(IdentifierLimit {
        max: 64,
        unit: "characters",
        measure: |s: &str| s.chars().count(),
    }),
    no_shards: Some(
        "MySQL and MariaDB cannot share a snapshot across sessions: START TRANSACTION WITH CONSISTENT SNAPSHOT belongs to one connection, and no other session (on this machine or another) can attach to it",
    ),
    open_source: |url, options| {
        Ok(Box::new(crate::engines::mysql::reader::MySource::open(
            url, options,
        )?))
    },
    open_target: |url, _| {
        Ok(Box::new(crate::engines::mysql::loader::MyTarget::open(
            url,
        )?))
    },
    type_map: Some(|url| {
        Ok(Box::new(crate::engines::mysql::loader::MyTypes::for_url(
            url,
        )?))
    }),
};

pub mod infile;
pub mod loader;
pub mod reader;
