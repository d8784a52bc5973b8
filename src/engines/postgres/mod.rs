//! PostgreSQL: schemas, quoted names compared exactly, names truncated past 63 bytes.

use super::{Engine, IdentifierLimit};

pub static ENGINE: Engine = Engine {
    name: "postgres",
    schemes: &["postgres://", "postgresql://"],
    url_form: "postgres://user@host:port/db",
    sql: crate::expr::Engine::Postgres,
    schemas: true,
    tables_without_columns: true,
    names_fold_case: false,
    identifier_limit: Some(IdentifierLimit {
        max: 63,
        unit: "bytes",
        measure: str::len,
    }),
    no_shards: None,
    open_source: |url, _| {
        Ok(Box::new(crate::engines::postgres::reader::PgSource::open(
            url,
        )?))
    },
    open_target: |url, schema| {
        Ok(Box::new(crate::engines::postgres::loader::PgTarget::open(
            url, schema,
        )?))
    },
    type_map: Some(|_| {
        Ok(Box::new(crate::engines::postgres::loader::PgTypes {
            schema: None,
        }))
    }),
};

pub mod lane;
pub mod loader;
pub mod pgcopy;
pub mod reader;
