//! The engine registry: one line per engine. An engine is its folder's reader (`source`),
//! loader (`target`, a [`crate::load::Session`]) and this description of what the rest of
//! ferry may know about it; nothing outside an engine's own files names an engine.

pub mod mysql;
pub mod postgres;
pub mod sqlite;

use crate::load::target::Target;
use crate::load::typemap::TypeMap;
use crate::source::{Source, SourceOptions};
use crate::{Error, Result};

/// How an engine limits identifiers: PostgreSQL truncates names past 63 bytes (two long
/// names then collide), MySQL refuses names past 64 characters.
#[derive(Debug, Clone, Copy)]
pub struct IdentifierLimit {
    pub max: usize,
    pub unit: &'static str,
    pub measure: fn(&str) -> usize,
}

/// Opens an engine's reader from a URL.
pub type OpenSource = fn(&str, SourceOptions) -> Result<Box<dyn Source>>;
/// Opens an engine's loader from a URL (and `--target-schema`, where it has schemas).
pub type OpenTarget = fn(&str, Option<&str>) -> Result<Box<dyn Target>>;
/// An engine's type mapping, for the server at a URL when its version matters (MySQL's
/// UUID type); `None`: the engine's defaults. Reads nothing but the server's version and
/// writes nothing (a SQLite path is not even opened).
pub type OpenTypeMap = fn(Option<&str>) -> Result<Box<dyn TypeMap>>;

/// What ferry knows about an engine outside the engine's own files.
#[derive(Debug)]
pub struct Engine {
    /// The name catalogs record (`source.engine`) and messages use.
    pub name: &'static str,
    /// URL prefixes that select it.
    pub schemes: &'static [&'static str],
    /// The URL form, for help and errors.
    pub url_form: &'static str,
    /// The dialect its expressions (`--where`, catalog expressions) are parsed in.
    pub sql: crate::expr::Engine,
    /// Tables live in schemas (`--target-schema` applies; names are schema-qualified).
    pub schemas: bool,
    /// A table may have no columns (and still have rows).
    pub tables_without_columns: bool,
    /// Table and column names compare without regard to case.
    pub names_fold_case: bool,
    pub identifier_limit: Option<IdentifierLimit>,
    /// Why the engine refuses `export --shards` (workers on other machines must read one
    /// snapshot); `None` when its readers can share one across sessions.
    pub no_shards: Option<&'static str>,
    pub open_source: OpenSource,
    /// Opens a target (`schema`: `--target-schema`, where the engine has schemas).
    pub open_target: OpenTarget,
    /// What its loader creates for each column (`ferry plan`); `None` for an engine that
    /// cannot say without a connection, which `plan` then names.
    pub type_map: Option<OpenTypeMap>,
}

/// Every engine ferry knows: adding one is a folder and a line here.
pub static ENGINES: &[&Engine] = &[&sqlite::ENGINE, &postgres::ENGINE, &mysql::ENGINE];

/// Engines registered at run time with [`register`], consulted after [`ENGINES`].
static EXTRA: std::sync::RwLock<Vec<&'static Engine>> = std::sync::RwLock::new(Vec::new());

/// Registers an engine at run time, for engines that live outside this crate, such as the
/// test suite's toy engine (`tests/it/toy_engine`): the library's pipelines (`export`,
/// `import`, `compare`) then find it by URL and by name like a built-in one. The command
/// line only knows [`ENGINES`]. Registering the same engine twice is harmless.
pub fn register(engine: &'static Engine) {
    let mut extra = EXTRA
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !extra.iter().any(|e| std::ptr::eq(*e, engine)) {
        extra.push(engine);
    }
}

/// Every engine: the built-in ones, then those registered at run time.
fn all() -> Vec<&'static Engine> {
    let extra = EXTRA
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    ENGINES
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect()
}

/// The engine a database URL names.
pub fn for_url(url: &str) -> Result<&'static Engine> {
    let all = all();
    all.iter()
        .copied()
        .find(|e| e.schemes.iter().any(|s| url.starts_with(s)))
        .ok_or_else(|| {
            let forms: Vec<&str> = all.iter().map(|e| e.url_form).collect();
            Error::Usage(format!(
                "{}: not a database URL ferry knows ({})",
                crate::redact::display_url(url),
                forms.join(", ")
            ))
        })
}

/// The engine a catalog names (`None` for one this ferry does not know).
pub fn by_name(name: &str) -> Option<&'static Engine> {
    all().into_iter().find(|e| e.name == name)
}

/// Refuses `export --shards`/`--shard` (exit 2) for an engine whose sessions cannot share
/// a snapshot, naming it and saying why.
pub fn check_shards(url: &str) -> Result<&'static Engine> {
    let engine = for_url(url)?;
    match engine.no_shards {
        Some(why) => Err(Error::Usage(format!(
            "--shards/--shard: {} sources cannot be exported in shards: {why}. Export it with one \
             process (--jobs reads tables in parallel where the engine can)",
            engine.name
        ))),
        None => Ok(engine),
    }
}

/// Opens the reader of the database a URL names.
pub fn open_source(url: &str, options: SourceOptions) -> Result<Box<dyn Source>> {
    (for_url(url)?.open_source)(url, options)
}

/// `--target-schema` is for engines with schemas: elsewhere it is refused (exit 2) naming
/// the URL's engine and where its tables go instead.
pub fn check_target_schema(url: &str, schema: Option<&str>) -> Result<()> {
    let engine = for_url(url)?;
    match schema {
        Some(s) if !engine.schemas => Err(Error::Usage(format!(
            "--target-schema {s}: a {} target has no schemas; its tables go into the database the \
             URL names ({}): name another database there instead",
            engine.name,
            crate::redact::display_url(url)
        ))),
        _ => Ok(()),
    }
}

/// Opens the loader of the database a URL names (SQLite creates the file when missing);
/// `schema` is `--target-schema`, for engines with schemas.
pub fn open_target(url: &str, schema: Option<&str>) -> Result<Box<dyn Target>> {
    (for_url(url)?.open_target)(url, schema)
}

/// ` GENERATED ALWAYS AS (expr) STORED|VIRTUAL` for a generated column of a same-engine
/// bundle, its expression rebuilt through the expression rules in `engine`'s dialect (an
/// expression outside them is a data error naming table and column).
pub(crate) fn generated_clause(
    table: &str,
    column: &str,
    g: &crate::types::Generated,
    engine: crate::expr::Engine,
    scope: crate::expr::Scope<'_>,
) -> crate::Result<String> {
    let e = crate::expr::rebuild(&g.expr, engine, scope).map_err(|why| {
        crate::Error::Data(format!(
            "table {table}, generated column {column:?}: its expression {why}; ferry does not create it"
        ))
    })?;
    Ok(format!(
        " GENERATED ALWAYS AS ({}) {}",
        e.sql,
        if g.stored { "STORED" } else { "VIRTUAL" }
    ))
}
