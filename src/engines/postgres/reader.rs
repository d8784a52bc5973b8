//! PostgreSQL reader: one REPEATABLE READ, READ ONLY transaction for all tables (its snapshot
//! exported and recorded in the catalog), schema captured from the system catalogs, and rows
//! streamed with `COPY (SELECT …) TO STDOUT (FORMAT binary)` straight into Arrow builders.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use regex::Regex;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Row};

use crate::engines::postgres::lane::{Lane, lane_err};
use crate::engines::postgres::pgcopy::{CopyDecoder, Wire};
use crate::source::{BatchLimits, Cut, Estimate, Rows, Selection, Source};
use crate::storage::runtime;
use crate::types::SourceInfo;
use crate::types::identity::SourceIdentity;
use crate::types::{
    Check, Column, ColumnType, CompositeAttribute, DomainType, EnumType, FkAction, ForeignKey,
    Generated, Identity, IdentityKind, Index, KeyOrder, Partition, PartitionColumn, Partitioning,
    TableDef, TableRef, UserType,
};
use crate::{Error, Result};

/// `"name"` with embedded quotes doubled.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`, or `"table"`.
pub fn qualified(schema: Option<&str>, name: &str) -> String {
    match schema {
        Some(s) => format!("{}.{}", quote(s), quote(name)),
        None => quote(name),
    }
}

/// A database error, as temporary (exit 75) when the connection itself failed.
pub fn pg_err(what: &str, e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Error::Temporary(format!(
            "{what}: connection to PostgreSQL lost ({e}); safe to re-run"
        )),
        sqlx::Error::Database(d) => by_sqlstate(d.code().as_deref(), format!("{what}: {e}")),
        _ => Error::Database(format!("{what}: {e}")),
    }
}

/// The server's error `text` by its SQLSTATE `code`: what re-running may cure is temporary
/// (exit 75), the rest a database error. For sqlx's errors and the COPY lane's alike.
pub(crate) fn by_sqlstate(code: Option<&str>, text: String) -> Error {
    match code.unwrap_or("") {
        // A lock wait that ran out (lock_timeout): the loader names who holds the lock.
        "55P03" => Error::Locked(format!("{text} (temporary; safe to re-run)")),
        c if c.starts_with("57P") || c.starts_with("08") || c == "40001" || c == "40P01" => {
            Error::Temporary(format!("{text} (temporary; safe to re-run)"))
        }
        // Disk full, out of memory, too many connections; a statement timeout.
        c if c.starts_with("53") || c == "57014" => Error::Temporary(format!(
            "{text} (the server ran out of a resource or time: the transaction was rolled back; \
             free it and re-run the same command)"
        )),
        _ => Error::Database(text),
    }
}

/// Connects, mapping an unreachable server to a temporary failure.
pub fn connect(url: &str) -> Result<PgConnection> {
    connect_on(runtime(), url)
}

/// Connects on a given runtime: the connection must then always be driven by that runtime.
pub fn connect_on(rt: &tokio::runtime::Runtime, url: &str) -> Result<PgConnection> {
    crate::source::tls_provider();
    rt.block_on(PgConnection::connect(url))
        .map_err(|e| match e {
            e if let Some(why) = crate::source::tls_failure(&e) => Error::Database(format!(
                "cannot connect to PostgreSQL at {} over TLS (sslmode): {}",
                crate::redact::display_url(url),
                crate::redact::scrub(&why, url)
            )),
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) => Error::Temporary(format!(
                "cannot reach PostgreSQL at {}: {}",
                crate::redact::display_url(url),
                crate::redact::scrub(&e.to_string(), url)
            )),
            // sqlx appends the server's own source line ("at line 948"): noise to a user.
            other => Error::Database(format!(
                "cannot connect to {}: {}",
                crate::redact::display_url(url),
                crate::load::strip_position_noise(&crate::redact::scrub(&other.to_string(), url))
            )),
        })
}

/// What the system catalogs say about one column.
#[derive(Debug, Clone)]
pub struct PgColumn {
    pub name: String,
    /// `format_type(atttypid, atttypmod)`: `character varying(40)`, `numeric(12,2)`, `mood[]`.
    pub format_type: String,
    pub typname: String,
    /// `b` base, `e` enum, `d` domain, `c` composite, `r` range, `p` pseudo.
    pub typtype: String,
    pub typmod: i32,
    pub not_null: bool,
    pub default: Option<String>,
    /// For arrays: the element type's name, kind and OID.
    pub elem: Option<(String, String, u32)>,
    pub type_schema: String,
    pub elem_schema: Option<String>,
    /// Declared array dimensions (`int[][]` is 2).
    pub ndims: i32,
    pub type_oid: u32,
    /// The column's collation when not its type's, `"schema"."name"`.
    pub collation: Option<String>,
    /// `attidentity`: `a` always, `d` by default, empty otherwise.
    pub identity: String,
    /// `attgenerated`: `s` stored, empty otherwise (`default` then holds the expression).
    pub generated: String,
    /// A sequence is owned by the column (serial or identity).
    pub owned_sequence: bool,
}

fn base_wire(typname: &str, typtype: &str, typmod: i32) -> Option<(Wire, ColumnType)> {
    if typtype == "e" {
        return Some((Wire::Text, ColumnType::Utf8));
    }
    if typtype != "b" {
        return None;
    }
    Some(match typname {
        "bool" => (Wire::Bool, ColumnType::Boolean),
        "int2" => (Wire::Int2, ColumnType::Int16),
        "int4" => (Wire::Int4, ColumnType::Int32),
        "int8" => (Wire::Int8, ColumnType::Int64),
        "float4" => (Wire::Float4, ColumnType::Float32),
        "float8" => (Wire::Float8, ColumnType::Float64),
        "numeric" => (Wire::Numeric, numeric_type(typmod)),
        "text" | "varchar" | "bpchar" | "name" | "citext" | "xml" => (Wire::Text, ColumnType::Utf8),
        "json" => (Wire::Text, ColumnType::Json),
        "jsonb" => (Wire::Jsonb, ColumnType::Json),
        "bytea" => (Wire::Bytea, ColumnType::Binary),
        "date" => (Wire::Date, ColumnType::Date32),
        "timestamp" => (Wire::Timestamp, ColumnType::Timestamp { utc: false }),
        "timestamptz" => (Wire::Timestamptz, ColumnType::Timestamp { utc: true }),
        "time" => (Wire::Time, ColumnType::Time64),
        "interval" => (Wire::Interval, ColumnType::Interval),
        "uuid" => (Wire::Uuid, ColumnType::Uuid),
        _ => return None,
    })
}

/// numeric(p,s) from its typmod; unconstrained numeric travels as exact text.
fn numeric_type(typmod: i32) -> ColumnType {
    if typmod < 4 {
        return ColumnType::NumericText;
    }
    let t = typmod - 4;
    let p = (t >> 16) & 0xffff;
    let s = ((t & 0x7ff) ^ 1024) - 1024;
    match (u8::try_from(p), i8::try_from(s)) {
        (Ok(p), Ok(s)) if p <= 38 && s >= 0 => ColumnType::Decimal128 {
            precision: p,
            scale: s,
        },
        (Ok(p), Ok(s)) if p <= 76 && s >= 0 => ColumnType::Decimal256 {
            precision: p,
            scale: s,
        },
        _ => ColumnType::NumericText,
    }
}

/// The wire format and canonical type of a column; `as_text` when it travels as its text
/// form (a type with no canonical Arrow type, restored through its input function).
pub fn map_column(c: &PgColumn) -> (Wire, ColumnType, bool) {
    // A declared multi-dimensional array has no List form: it travels as text, known at
    // export start rather than failing at its first row.
    if c.elem.is_some() && c.ndims > 1 {
        return (Wire::Text, ColumnType::Utf8, true);
    }
    if let Some((ename, etype, eoid)) = &c.elem {
        // Parquet has no interval type (ferry stores a top-level interval as a struct of
        // its three fields): an array of them travels as text.
        if let Some((w, t)) =
            base_wire(ename, etype, c.typmod).filter(|(_, t)| *t != ColumnType::Interval)
        {
            return (
                Wire::Array {
                    elem: Box::new(w),
                    elem_oid: *eoid,
                },
                ColumnType::List {
                    element: Box::new(t),
                },
                false,
            );
        }
        return (Wire::Text, ColumnType::Utf8, true);
    }
    match base_wire(&c.typname, &c.typtype, c.typmod) {
        Some((w, t)) => (w, t, false),
        None => (Wire::Text, ColumnType::Utf8, true),
    }
}

/// Column facts of a table (by OID), in column order.
pub fn columns_of(conn: &mut PgConnection, oid: u32) -> Result<Vec<PgColumn>> {
    columns_of_on(runtime(), conn, oid)
}

/// [`columns_of`] for a connection driven by `rt`.
pub fn columns_of_on(
    rt: &tokio::runtime::Runtime,
    conn: &mut PgConnection,
    oid: u32,
) -> Result<Vec<PgColumn>> {
    let rows = rt
        .block_on(
            sqlx::query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text, t.typtype::text, \
                        a.atttypmod, a.attnotnull, pg_get_expr(d.adbin, d.adrelid), \
                        e.typname::text, e.typtype::text, e.oid::int8, tn.nspname::text, en.nspname::text, \
                        a.attndims::int4, a.atttypid::int8, \
                        (SELECT cn.nspname::text FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace \
                         WHERE co.oid = a.attcollation AND a.attcollation <> t.typcollation), \
                        (SELECT co.collname::text FROM pg_collation co \
                         WHERE co.oid = a.attcollation AND a.attcollation <> t.typcollation), \
                        a.attidentity::text, a.attgenerated::text, \
                        pg_get_serial_sequence(a.attrelid::regclass::text, a.attname::text) IS NOT NULL \
                 FROM pg_attribute a \
                 JOIN pg_type t ON t.oid = a.atttypid \
                 JOIN pg_namespace tn ON tn.oid = t.typnamespace \
                 LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' \
                 LEFT JOIN pg_namespace en ON en.oid = e.typnamespace \
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
            )
            .bind(i64::from(oid))
            .fetch_all(&mut *conn),
        )
        .map_err(|e| pg_err("reading columns", e))?;
    rows.iter()
        .map(|r| {
            let elem_name: Option<String> =
                r.try_get(7).map_err(|e| pg_err("reading columns", e))?;
            let elem = match elem_name {
                Some(n) => Some((
                    n,
                    r.try_get::<String, _>(8)
                        .map_err(|e| pg_err("reading columns", e))?,
                    u32::try_from(
                        r.try_get::<i64, _>(9)
                            .map_err(|e| pg_err("reading columns", e))?,
                    )
                    .unwrap_or(0),
                )),
                None => None,
            };
            Ok(PgColumn {
                name: r.try_get(0).map_err(|e| pg_err("reading columns", e))?,
                format_type: r.try_get(1).map_err(|e| pg_err("reading columns", e))?,
                typname: r.try_get(2).map_err(|e| pg_err("reading columns", e))?,
                typtype: r.try_get(3).map_err(|e| pg_err("reading columns", e))?,
                typmod: r.try_get(4).map_err(|e| pg_err("reading columns", e))?,
                not_null: r.try_get(5).map_err(|e| pg_err("reading columns", e))?,
                default: r.try_get(6).map_err(|e| pg_err("reading columns", e))?,
                elem,
                type_schema: r.try_get(10).map_err(|e| pg_err("reading columns", e))?,
                elem_schema: r.try_get(11).map_err(|e| pg_err("reading columns", e))?,
                ndims: r.try_get(12).map_err(|e| pg_err("reading columns", e))?,
                collation: match (
                    r.try_get::<Option<String>, _>(14)
                        .map_err(|e| pg_err("reading columns", e))?,
                    r.try_get::<Option<String>, _>(15)
                        .map_err(|e| pg_err("reading columns", e))?,
                ) {
                    (Some(n), Some(c)) => Some(format!("{}.{}", quote(&n), quote(&c))),
                    _ => None,
                },
                type_oid: u32::try_from(
                    r.try_get::<i64, _>(13)
                        .map_err(|e| pg_err("reading columns", e))?,
                )
                .unwrap_or(0),
                identity: r.try_get(16).map_err(|e| pg_err("reading columns", e))?,
                generated: r.try_get(17).map_err(|e| pg_err("reading columns", e))?,
                owned_sequence: r.try_get(18).map_err(|e| pg_err("reading columns", e))?,
            })
        })
        .collect()
}

/// The multirange name PostgreSQL derives from a range's (`textrange` → `textmultirange`,
/// `floatrange_r` → `floatrange_r_multirange`).
fn default_multirange_name(range: &str) -> String {
    match range.find("range") {
        Some(i) => format!("{}multirange{}", &range[..i], &range[i + 5..]),
        None => format!("{range}_multirange"),
    }
}

/// Defaults ferry recreates: literals with an optional cast, booleans, NULL.
static CONSTANT_DEFAULT: LazyLock<Regex> = LazyLock::new(|| {
    // A cast to a built-in type (`::character varying`, `::numeric(12,2)`) or to a named
    // one, plain or quoted, maybe schema-qualified (`::"Sales".mood`, an enum's default).
    Regex::new(r#"^(\(?-?[0-9]+(\.[0-9]+)?\)?|'([^']|'')*'|true|false|NULL)(::([a-z ]+|(("([^"]|"")+"|[a-z_][a-z0-9_$]*)\.)?("([^"]|"")+"|[a-z_][a-z0-9_$]*))(\([0-9, ]+\))?(\[\])?)?$"#).expect("regex")
});

pub fn constant_default(d: &str) -> Option<String> {
    CONSTANT_DEFAULT
        .is_match(d.trim())
        .then(|| d.trim().to_string())
}

/// A column's identity (identity or serial), generated expression and default, as the
/// catalog records them: a default or generation expression outside the expression rules
/// is named in `notes` (a generated column's values then travel as plain data).
fn column_extras(
    c: &PgColumn,
    table: &str,
    columns: &[String],
    notes: &mut Vec<String>,
) -> (Option<Identity>, Option<Generated>, Option<String>) {
    let scope = crate::expr::Scope {
        columns,
        value: false,
        any_function: false,
    };
    let identity = match c.identity.as_str() {
        "a" => Some(IdentityKind::Always),
        "d" => Some(IdentityKind::ByDefault),
        _ if c.owned_sequence
            && c.default
                .as_deref()
                .is_some_and(|d| d.starts_with("nextval(")) =>
        {
            Some(IdentityKind::Serial)
        }
        _ => None,
    }
    .map(|kind| Identity { kind });
    if c.generated == "s" {
        let expr = c.default.clone().unwrap_or_default();
        return match crate::expr::rebuild(&expr, crate::expr::Engine::Postgres, scope) {
            Ok(_) => (identity, Some(Generated { expr, stored: true }), None),
            Err(why) => {
                notes.push(format!(
                    "not carried: the expression of generated column {table}.{}: it {why}; its \
                     values travel as plain data",
                    c.name
                ));
                (identity, None, None)
            }
        };
    }
    if identity.is_some() {
        return (identity, None, None);
    }
    let default = match c.default.as_deref() {
        None => None,
        Some(d) if constant_default(d).is_some() => constant_default(d),
        Some(d) => match crate::expr::rebuild(d, crate::expr::Engine::Postgres, scope) {
            Ok(_) => Some(d.trim().to_string()),
            Err(why) => {
                notes.push(format!(
                    "not carried: DEFAULT of {table}.{}: it {why}",
                    c.name
                ));
                None
            }
        },
    };
    (None, None, default)
}

/// What a table's column types need on a same-engine target: the user-defined types to
/// create (dependencies first) and the extensions that must be there.
#[derive(Default)]
struct TypeDeps {
    types: Vec<UserType>,
    extensions: Vec<String>,
    seen: HashSet<u32>,
    /// How deep the type being followed is nested.
    depth: u32,
    /// What the types have that is not carried, for the summary.
    notes: Vec<String>,
}

pub struct PgSource {
    conn: PgConnection,
    /// Drives `conn` only: a reader's socket is read on the reader's own thread, with no
    /// hand-off to the shared runtime's workers for every message.
    rt: tokio::runtime::Runtime,
    url: String,
    database: String,
    snapshot: Option<String>,
    /// The exported snapshot id workers attach to.
    snapshot_id: Option<String>,
    /// Columns (`schema.table`, column) that met a value their canonical type cannot hold
    /// (NaN in a numeric(p,s), an array with other bounds): they travel as their text form.
    /// Keyed by schema, table and column exactly (`a."b.c"` is not `"a.b".c`).
    text_columns: HashMap<(Option<String>, String, String), String>,
    /// The source id, from the server itself.
    identity: SourceIdentity,
    /// The connection tables are copied on, once the snapshot is taken ([`Lane`]).
    lane: LaneState,
}

/// Connections the server must have free (and half as many under the role's limit) for a
/// reader to open its lane.
const LANE_SPARE_CONNECTIONS: i32 = 8;

/// The page ranges [`Source::split`] cuts (no other text): the only filters a lane reads.
static PAGE_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(ctid < '\(\d+,0\)'::tid|ctid >= '\(\d+,0\)'::tid( AND ctid < '\(\d+,0\)'::tid)?)$",
    )
    .expect("a valid regex")
});

impl Drop for PgSource {
    fn drop(&mut self) {
        // The lane's session ends with a Terminate, before its runtime goes (not from
        // inside another runtime, where `block_on` would panic: the server then sees the
        // socket close).
        if let LaneState::Open(lane) = std::mem::replace(&mut self.lane, LaneState::Off)
            && tokio::runtime::Handle::try_current().is_err()
        {
            self.rt.block_on(lane.close());
        }
    }
}

/// Whether reads go through a [`Lane`].
enum LaneState {
    /// Not tried yet: opened at the first read in a snapshot.
    Untried,
    Open(Lane),
    /// Not to be had here; every table is read on the reader's own connection.
    Off,
}

/// Who the server is, whatever the URL calls it: the cluster's `system_identifier` (set
/// once by initdb; a physical replica shares it, and is the same data) and the database
/// name; without access to `pg_control_system()`, the server's `data_directory` and port;
/// failing that too, the URL's host and port (said so in the basis).
fn identity(
    rt: &tokio::runtime::Runtime,
    conn: &mut PgConnection,
    url: &str,
    database: &str,
) -> SourceIdentity {
    let sysid: Option<String> = rt
        .block_on(
            sqlx::query_scalar("SELECT system_identifier::text FROM pg_control_system()")
                .fetch_one(&mut *conn),
        )
        .ok();
    if let Some(id) = sysid {
        return SourceIdentity::new(
            "postgres",
            "sysid",
            &format!("{id}/{database}"),
            format!(
                "PostgreSQL system_identifier {id} (pg_control_system()) and database {database}"
            ),
        );
    }
    let place: Option<(String, String)> = rt
        .block_on(
            sqlx::query_as("SELECT current_setting('data_directory'), current_setting('port')")
                .fetch_one(&mut *conn),
        )
        .ok();
    if let Some((dir, port)) = place {
        return SourceIdentity::new(
            "postgres",
            "datadir",
            &format!("{dir}:{port}/{database}"),
            format!(
                "PostgreSQL data_directory {dir}, port {port} and database {database} (pg_control_system() not \
                 readable by this user)"
            ),
        );
    }
    let u = url::Url::parse(url).ok();
    let host = u
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let port = u.as_ref().and_then(url::Url::port).unwrap_or(5432);
    SourceIdentity::new(
        "postgres",
        "url",
        &format!("{host}:{port}/{database}"),
        format!(
            "the URL's host {host}, port {port} and database {database}: neither pg_control_system() nor \
             data_directory is readable by this user, so another spelling of the host is another source"
        ),
    )
}

impl PgSource {
    /// `ONLY `: an inheritance parent's rows are its own, its children travel as tables of
    /// their own. A partitioned table has no rows of its own: it is read whole.
    fn only(table: &TableDef) -> &'static str {
        if table.partitioning.is_some() {
            ""
        } else {
            "ONLY "
        }
    }

    pub fn open(url: &str) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start a reader runtime", e))?;
        let mut conn = connect_on(&rt, url)?;
        // format_type and pg_get_expr qualify every name outside pg_catalog, so a type
        // travels as `app.mood` whatever the source's search_path made of it.
        rt.block_on(
            sqlx::raw_sql("SET search_path = pg_catalog; SET standard_conforming_strings = on")
                .execute(&mut conn),
        )
        .map_err(|e| pg_err("pinning the session's settings", e))?;
        let database: String = rt
            .block_on(sqlx::query_scalar("SELECT current_database()::text").fetch_one(&mut conn))
            .map_err(|e| pg_err("current_database", e))?;
        let identity = identity(&rt, &mut conn, url, &database);
        Ok(PgSource {
            conn,
            rt,
            url: url.to_string(),
            identity,
            database,
            snapshot: None,
            snapshot_id: None,
            text_columns: HashMap::new(),
            lane: LaneState::Untried,
        })
    }

    /// Whether to read `relation` (`ONLY "s"."t"` or `"s"."t"`) under `filter` on the lane:
    /// the filter is none or one of [`Source::split`]'s page ranges (a `--where` or a
    /// chain's bounds read in the reader's own transaction: `now()` and the locks of a
    /// subquery are then its own), there is a lane, and both this connection and the lane
    /// took the table's lock without waiting. This connection locks first: a later catalog
    /// read of the table here (`pg_get_expr` takes its lock) is then never queued behind
    /// another session's lock request waiting for the lane. Otherwise this connection
    /// reads the table, as it always did.
    fn lane_for(&mut self, relation: &str, filter: Option<&str>) -> bool {
        if filter.is_some_and(|f| !PAGE_RANGE.is_match(f)) {
            return false;
        }
        if matches!(self.lane, LaneState::Untried) {
            let Some(id) = self.snapshot_id.clone() else {
                return false;
            };
            self.lane = match self.open_lane(&id) {
                Ok(lane) => {
                    tracing::debug!(
                        "COPY lane open ({})",
                        if lane.tls { "TLS" } else { "no TLS" }
                    );
                    LaneState::Open(lane)
                }
                Err(why) => {
                    let why = crate::redact::scrub(&why, &self.url);
                    tracing::debug!("COPY lane not used: {why}");
                    LaneState::Off
                }
            };
        }
        if !matches!(self.lane, LaneState::Open(_)) {
            return false;
        }
        let refused = || {
            tracing::debug!(
                "COPY lane: {relation} is read on the reader's connection (its lock is not free)"
            );
            false
        };
        if !self.lock_nowait(relation).unwrap_or(false) {
            return refused();
        }
        let LaneState::Open(lane) = &self.lane else {
            return false;
        };
        match self.rt.block_on(lane.lock_nowait(relation)) {
            Ok(true) => true,
            Ok(false) => refused(),
            Err(e) => {
                // The lane's connection went away while idle: go on without it.
                tracing::debug!("COPY lane closed: {e}");
                self.lane = LaneState::Off;
                false
            }
        }
    }

    /// A lane attached to snapshot `id`, when the server has connections to spare and the
    /// lane reads the very snapshot this connection does (the same server: a name that
    /// resolves to several could send the lane elsewhere).
    fn open_lane(&mut self, id: &str) -> std::result::Result<Lane, String> {
        // A lane must not take the connection a `--streams` helper or a shard worker needs.
        let spare: bool = self
            .rt
            .block_on(
                sqlx::query_scalar(
                    "SELECT (SELECT setting::int FROM pg_settings WHERE name = 'max_connections') \
                          - (SELECT setting::int FROM pg_settings WHERE name = 'superuser_reserved_connections') \
                          - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int >= $1 \
                        AND (SELECT rolconnlimit < 0 \
                                 OR rolconnlimit - (SELECT count(*) FROM pg_stat_activity WHERE usename = current_user)::int >= $2 \
                             FROM pg_roles WHERE rolname = current_user) IS NOT FALSE",
                )
                .bind(LANE_SPARE_CONNECTIONS)
                .bind(LANE_SPARE_CONNECTIONS / 2)
                .fetch_one(&mut self.conn),
            )
            .map_err(|e| format!("counting connections: {e}"))?;
        if !spare {
            return Err(format!(
                "fewer than {LANE_SPARE_CONNECTIONS} connections to spare on the server"
            ));
        }
        let lane = self.rt.block_on(Lane::open(&self.url, id))?;
        let ours: std::result::Result<String, String> = self
            .rt
            .block_on(
                sqlx::query_scalar("SELECT txid_current_snapshot()::text")
                    .fetch_one(&mut self.conn),
            )
            .map_err(|e| e.to_string());
        let its = self
            .rt
            .block_on(lane.snapshot_text())
            .map_err(|e| e.to_string());
        match (ours, its) {
            (Ok(a), Ok(b)) if a == b => Ok(lane),
            (a, b) => {
                self.rt.block_on(lane.close());
                Err(format!(
                    "the lane's snapshot is not this one's ({a:?}, {b:?})"
                ))
            }
        }
    }

    /// Takes `relation`'s ACCESS SHARE lock on this connection if that needs no wait; in a
    /// savepoint, so that a refused lock leaves the transaction (and its snapshot) usable.
    fn lock_nowait(&mut self, relation: &str) -> Result<bool> {
        // One round trip: a refused LOCK ends the batch before the RELEASE.
        if self
            .exec(&format!(
                "SAVEPOINT ferry_lock; LOCK TABLE {relation} IN ACCESS SHARE MODE NOWAIT; \
                 RELEASE SAVEPOINT ferry_lock"
            ))
            .is_ok()
        {
            return Ok(true);
        }
        self.exec("ROLLBACK TO SAVEPOINT ferry_lock; RELEASE SAVEPOINT ferry_lock")?;
        Ok(false)
    }

    fn exec(&mut self, sql: &str) -> Result<()> {
        self.rt
            .block_on(sqlx::raw_sql(AssertSqlSafe(sql.to_string())).execute(&mut self.conn))
            .map(|_| ())
            .map_err(|e| pg_err(sql, e))
    }

    fn domain_type(&mut self, schema: &str, name: &str) -> Result<DomainType> {
        let row = self.rt
            .block_on(
                sqlx::query(
                    "SELECT format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault, \
                            coalesce((SELECT array_agg(pg_get_constraintdef(c.oid) ORDER BY c.conname) \
                                      FROM pg_constraint c WHERE c.contypid = t.oid), '{}'::text[]) \
                     FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
                     WHERE n.nspname = $1 AND t.typname = $2",
                )
                .bind(schema)
                .bind(name)
                .fetch_one(&mut self.conn),
            )
            .map_err(|e| pg_err("reading a domain", e))?;
        let get = |e| pg_err("reading a domain", e);
        Ok(DomainType {
            schema: schema.to_string(),
            name: name.to_string(),
            base: row.try_get(0).map_err(get)?,
            not_null: row.try_get(1).map_err(get)?,
            default: row.try_get(2).map_err(get)?,
            checks: row.try_get(3).map_err(get)?,
        })
    }

    fn enum_type(&mut self, schema: &str, name: &str) -> Result<EnumType> {
        let labels: Vec<String> = self.rt
            .block_on(
                sqlx::query_scalar(
                    "SELECT e.enumlabel::text FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid \
                     JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1 AND t.typname = $2 \
                     ORDER BY e.enumsortorder",
                )
                .bind(schema)
                .bind(name)
                .fetch_all(&mut self.conn),
            )
            .map_err(|e| pg_err("reading enum labels", e))?;
        Ok(EnumType {
            schema: schema.to_string(),
            name: name.to_string(),
            labels,
        })
    }

    fn table_def(&mut self, oid: u32, schema: &str, name: &str) -> Result<TableDef> {
        // A table without columns still has rows (`CREATE TABLE t ()`): they travel as a
        // row count (see `parts::storage_schema`).
        let cols = columns_of_on(&self.rt, &mut self.conn, oid)?;
        let qualified_name = format!("{schema}.{name}");
        let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
        let mut columns = Vec::new();
        let mut deps = TypeDeps::default();
        for c in &cols {
            let (_, mut ty, mut as_text) = map_column(c);
            // A value this column's canonical type could not hold was met in an earlier
            // read (see `Error::NeedsText`): the column travels as its text form.
            let text_reason = self
                .text_columns
                .get(&(Some(schema.to_string()), name.to_string(), c.name.clone()))
                .cloned();
            if text_reason.is_some() {
                as_text = true;
                ty = match ty {
                    ColumnType::Decimal128 { .. } | ColumnType::Decimal256 { .. } => {
                        ColumnType::NumericText
                    }
                    _ => ColumnType::Utf8,
                };
            }
            self.user_types_of(c.type_oid, &qualified_name, &c.name, &mut deps)?;
            let enum_type = if c.typtype == "e" {
                Some(self.enum_type(&c.type_schema, &c.typname)?)
            } else if let (Some((en, et, _)), Some(es)) = (&c.elem, &c.elem_schema) {
                if et == "e" {
                    Some(self.enum_type(es, en)?)
                } else {
                    None
                }
            } else {
                None
            };
            let domain_type = if c.typtype == "d" {
                Some(self.domain_type(&c.type_schema, &c.typname)?)
            } else {
                None
            };
            let (identity, generated, default) =
                column_extras(c, &qualified_name, &names, &mut deps.notes);
            columns.push(Column {
                name: c.name.clone(),
                ty,
                nullable: !c.not_null,
                source_type: c.format_type.clone(),
                default,
                enum_type,
                domain_type,
                as_text,
                text_reason,
                collation: c.collation.clone(),
                identity,
                generated,
            });
        }
        let checks = self.checks(oid, &qualified_name, &names, &mut deps.notes)?;
        let get = |what: &'static str| move |e| pg_err(what, e);
        // The primary key: key columns, INCLUDE columns and the constraint's name.
        let pk_row = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT con.conname::text, \
                            ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, ord) \
                                  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
                                  WHERE k.ord <= i.indnkeyatts ORDER BY k.ord), \
                            ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, ord) \
                                  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
                                  WHERE k.ord > i.indnkeyatts ORDER BY k.ord) \
                     FROM pg_index i LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype = 'p' \
                     WHERE i.indrelid = $1 AND i.indisprimary",
                )
                .bind(i64::from(oid))
                .fetch_optional(&mut self.conn),
            )
            .map_err(get("reading the primary key"))?;
        let (primary_key_name, pk, primary_key_include) = match pk_row {
            Some(r) => (
                r.try_get::<Option<String>, _>(0)
                    .map_err(get("reading the primary key"))?,
                r.try_get::<Vec<String>, _>(1)
                    .map_err(get("reading the primary key"))?,
                r.try_get::<Vec<String>, _>(2)
                    .map_err(get("reading the primary key"))?,
            ),
            None => (None, vec![], vec![]),
        };
        let indexes = self.indexes(oid, &mut deps.extensions)?;
        let foreign_keys = self.foreign_keys(oid)?;
        // Inheritance parents (a partition's parent is its partitioned table instead).
        let parent_rows = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT pn.nspname::text, pc.relname::text FROM pg_inherits i \
                     JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class pc ON pc.oid = i.inhparent \
                     JOIN pg_namespace pn ON pn.oid = pc.relnamespace \
                     WHERE i.inhrelid = $1 AND NOT c.relispartition ORDER BY i.inhseqno",
                )
                .bind(i64::from(oid))
                .fetch_all(&mut self.conn),
            )
            .map_err(get("reading inheritance parents"))?;
        let inherits = parent_rows
            .iter()
            .map(|r| {
                let e = get("reading inheritance parents");
                Ok(TableRef {
                    schema: Some(r.try_get(0).map_err(e)?),
                    name: r.try_get(1).map_err(e)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let partitioning = self.partitioning(oid, 0)?;
        Ok(TableDef {
            schema: Some(schema.to_string()),
            name: name.to_string(),
            columns,
            primary_key: pk,
            indexes,
            foreign_keys,
            partitioning,
            primary_key_name,
            primary_key_include,
            inherits,
            not_carried: deps.notes,
            user_types: deps.types,
            extensions: deps.extensions,
            checks,
            from_view: false,
        })
    }

    /// The table's own CHECK constraints (not those inherited from a parent), each checked
    /// against the expression rules; one outside them is named in `notes` and left out.
    fn checks(
        &mut self,
        oid: u32,
        table: &str,
        columns: &[String],
        notes: &mut Vec<String>,
    ) -> Result<Vec<Check>> {
        let e = |e| pg_err("reading check constraints", e);
        let rows = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT conname::text, pg_get_expr(conbin, conrelid) FROM pg_constraint \
                     WHERE conrelid = $1 AND contype = 'c' AND conislocal ORDER BY conname",
                )
                .bind(i64::from(oid))
                .fetch_all(&mut self.conn),
            )
            .map_err(e)?;
        let mut out = Vec::new();
        for r in rows {
            let name: String = r.try_get(0).map_err(e)?;
            let expr: String = r.try_get(1).map_err(e)?;
            let scope = crate::expr::Scope {
                columns,
                value: false,
                any_function: false,
            };
            match crate::expr::rebuild(&expr, crate::expr::Engine::Postgres, scope) {
                Ok(_) => out.push(Check { name, expr }),
                Err(why) => notes.push(format!("not carried: CHECK {name} on {table}: it {why}")),
            }
        }
        Ok(out)
    }

    /// The table's own foreign keys (not those PostgreSQL clones onto partitions or for a
    /// referenced partitioned table).
    fn foreign_keys(&mut self, oid: u32) -> Result<Vec<ForeignKey>> {
        let get = |what: &'static str| move |e| pg_err(what, e);
        let fk_rows = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT con.conname::text, rn.nspname::text, rc.relname::text, \
                            (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(con.conkey) WITH ORDINALITY k(n, ord) \
                               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n), \
                            (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(con.confkey) WITH ORDINALITY k(n, ord) \
                               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n), \
                            con.confdeltype::text, con.confupdtype::text \
                     FROM pg_constraint con JOIN pg_class rc ON rc.oid = con.confrelid \
                     JOIN pg_namespace rn ON rn.oid = rc.relnamespace \
                     WHERE con.conrelid = $1 AND con.contype = 'f' AND con.conparentid = 0 ORDER BY con.conname",
                )
                .bind(i64::from(oid))
                .fetch_all(&mut self.conn),
            )
            .map_err(get("reading foreign keys"))?;
        let mut foreign_keys = Vec::new();
        for r in fk_rows {
            let e = get("reading foreign keys");
            foreign_keys.push(ForeignKey {
                name: r.try_get(0).map_err(e)?,
                ref_schema: Some(r.try_get(1).map_err(e)?),
                ref_table: r.try_get(2).map_err(e)?,
                columns: r
                    .try_get::<Option<Vec<String>>, _>(3)
                    .map_err(e)?
                    .unwrap_or_default(),
                ref_columns: r
                    .try_get::<Option<Vec<String>>, _>(4)
                    .map_err(e)?
                    .unwrap_or_default(),
                on_delete: FkAction::parse(&r.try_get::<String, _>(5).map_err(e)?),
                on_update: FkAction::parse(&r.try_get::<String, _>(6).map_err(e)?),
            });
        }
        Ok(foreign_keys)
    }

    /// The indexes a same-engine import recreates: every index of plain columns that is not
    /// the primary key, with its access method, operator classes, orders and INCLUDE
    /// columns. Expression and partial indexes and exclusion constraints are not carried
    /// (`not_carried` names them).
    fn indexes(&mut self, oid: u32, extensions: &mut Vec<String>) -> Result<Vec<Index>> {
        let e = |e| pg_err("reading indexes", e);
        let rows = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT c.relname::text, i.indisunique, am.amname::text, \
                            ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, ord) \
                                  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
                                  WHERE k.ord <= i.indnkeyatts ORDER BY k.ord), \
                            ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, ord) \
                                  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
                                  WHERE k.ord > i.indnkeyatts ORDER BY k.ord), \
                            ARRAY(SELECT CASE WHEN o.opcdefault THEN NULL ELSE n.nspname::text END \
                                  FROM unnest(i.indclass::oid[]) WITH ORDINALITY k(cls, ord) \
                                  JOIN pg_opclass o ON o.oid = k.cls JOIN pg_namespace n ON n.oid = o.opcnamespace \
                                  ORDER BY k.ord), \
                            ARRAY(SELECT CASE WHEN o.opcdefault THEN NULL ELSE o.opcname::text END \
                                  FROM unnest(i.indclass::oid[]) WITH ORDINALITY k(cls, ord) \
                                  JOIN pg_opclass o ON o.oid = k.cls ORDER BY k.ord), \
                            ARRAY(SELECT k.opt::int4 FROM unnest(i.indoption::int2[]) WITH ORDINALITY k(opt, ord) \
                                  ORDER BY k.ord), \
                            EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid \
                                    AND con.conrelid = i.indrelid AND con.contype = 'u'), \
                            (0 = ANY(i.indkey::int2[])) OR i.indpred IS NOT NULL OR i.indexprs IS NOT NULL \
                              OR EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid \
                                         AND con.conrelid = i.indrelid AND con.contype = 'x') \
                              OR EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid), \
                            coalesce(c.reloptions, '{}'::text[]), \
                            ARRAY(SELECT DISTINCT x.extname::text FROM unnest(i.indclass::oid[]) k(cls) \
                                  JOIN pg_depend d ON d.classid = 'pg_opclass'::regclass AND d.objid = k.cls \
                                       AND d.deptype = 'e' \
                                  JOIN pg_extension x ON x.oid = d.refobjid) \
                     FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam \
                     WHERE i.indrelid = $1 AND NOT i.indisprimary ORDER BY c.relname",
                )
                .bind(i64::from(oid))
                .fetch_all(&mut self.conn),
            )
            .map_err(e)?;
        let mut out = Vec::new();
        for r in rows {
            if r.try_get::<Option<bool>, _>(9).map_err(e)?.unwrap_or(false) {
                continue;
            }
            // Operator classes of an extension (pg_trgm's gist_trgm_ops) need it too.
            for x in r.try_get::<Vec<String>, _>(11).map_err(e)? {
                if !extensions.contains(&x) {
                    extensions.push(x);
                }
            }
            let method: String = r.try_get(2).map_err(e)?;
            let columns: Vec<String> = r.try_get(3).map_err(e)?;
            let schemas: Vec<Option<String>> = r.try_get(5).map_err(e)?;
            let names: Vec<Option<String>> = r.try_get(6).map_err(e)?;
            let opclasses: Vec<Option<String>> = schemas
                .into_iter()
                .zip(names)
                .map(|(s, n)| Some(format!("{}.{}", quote(&s?), quote(&n?))))
                .collect();
            let options: Vec<i32> = r.try_get(7).map_err(e)?;
            let orders: Vec<KeyOrder> = options
                .iter()
                .map(|o| KeyOrder {
                    desc: o & 1 != 0,
                    nulls_first: o & 2 != 0,
                })
                .collect();
            out.push(Index {
                name: r.try_get(0).map_err(e)?,
                unique: r.try_get(1).map_err(e)?,
                columns,
                method: (method != "btree").then_some(method),
                opclasses: if opclasses.iter().all(Option::is_none) {
                    vec![]
                } else {
                    opclasses
                },
                orders: if orders.iter().all(|o| *o == KeyOrder::default()) {
                    vec![]
                } else {
                    orders
                },
                include: r.try_get(4).map_err(e)?,
                constraint: r.try_get(8).map_err(e)?,
                options: r
                    .try_get::<Vec<String>, _>(10)
                    .map_err(e)?
                    .into_iter()
                    .map(|o| match o.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (o, String::new()),
                    })
                    .collect(),
            });
        }
        Ok(out)
    }

    /// The user-defined types a column of type `oid` needs on a same-engine import, added
    /// to `out` dependencies first. Types of extensions are left to the extension; a base
    /// type written in C, or a range with its own canonical function, cannot be created
    /// from a bundle and is refused here, naming table, column and type.
    fn user_types_of(
        &mut self,
        oid: u32,
        table: &str,
        column: &str,
        deps: &mut TypeDeps,
    ) -> Result<()> {
        if oid == 0 || !deps.seen.insert(oid) {
            return Ok(());
        }
        // Types nest (a domain over a domain, a composite of composites); a chain longer
        // than any schema needs is refused rather than followed without end.
        deps.depth += 1;
        if deps.depth > 64 {
            return Err(Error::Data(format!(
                "table {table}, column {column:?}: its type nests more than 64 levels deep \
                 (domains, composites, ranges, arrays); ferry does not follow it"
            )));
        }
        let r = self.user_type_of(oid, table, column, deps);
        deps.depth -= 1;
        r
    }

    /// One step of [`Self::user_types_of`].
    fn user_type_of(
        &mut self,
        oid: u32,
        table: &str,
        column: &str,
        deps: &mut TypeDeps,
    ) -> Result<()> {
        let e = |e| pg_err("reading a column's type", e);
        let row = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT t.typtype::text, n.nspname::text, t.typname::text, t.typcategory::text, \
                            t.typelem::int8, t.typbasetype::int8, t.typrelid::int8, \
                            coalesce((SELECT c.relkind::text FROM pg_class c WHERE c.oid = t.typrelid), ''), \
                            (SELECT e.extname::text FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid \
                             WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e' \
                             LIMIT 1), \
                            n.nspname IN ('pg_catalog', 'information_schema') \
                     FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = $1::int8::oid",
                )
                .bind(i64::from(oid))
                .fetch_one(&mut self.conn),
            )
            .map_err(e)?;
        let typtype: String = row.try_get(0).map_err(e)?;
        let schema: String = row.try_get(1).map_err(e)?;
        let name: String = row.try_get(2).map_err(e)?;
        let category: String = row.try_get(3).map_err(e)?;
        let oid_at = |i: usize| -> Result<u32> {
            Ok(u32::try_from(row.try_get::<i64, _>(i).map_err(e)?).unwrap_or(0))
        };
        let (elem, base, relid) = (oid_at(4)?, oid_at(5)?, oid_at(6)?);
        let relkind: String = row.try_get(7).map_err(e)?;
        let extension: Option<String> = row.try_get(8).map_err(e)?;
        let builtin: bool = row.try_get(9).map_err(e)?;
        if builtin {
            return Ok(());
        }
        if let Some(x) = extension {
            if !deps.extensions.contains(&x) {
                deps.extensions.push(x);
            }
            return Ok(());
        }
        let refuse = |why: &str| {
            Err(Error::Data(format!(
                "table {table}, column {column:?}: type {schema}.{name} {why}; create the type on \
                 the target first and load the table from a bundle made with --as-text, or leave \
                 the table out with --exclude"
            )))
        };
        if category == "A" && elem != 0 && typtype == "b" {
            return self.user_types_of(elem, table, column, deps);
        }
        match typtype.as_str() {
            "e" => deps
                .types
                .push(UserType::Enum(self.enum_type(&schema, &name)?)),
            "d" => {
                self.user_types_of(base, table, column, deps)?;
                deps.types
                    .push(UserType::Domain(self.domain_type(&schema, &name)?));
            }
            "c" => {
                if relkind != "c" {
                    return refuse("is the row type of a table, which ferry does not create");
                }
                let attrs = self
                    .rt
                    .block_on(
                        sqlx::query(
                            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.atttypid::int8, \
                                    cn.nspname::text, co.collname::text \
                             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                             LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> t.typcollation \
                             LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace \
                             WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 \
                             AND NOT a.attisdropped ORDER BY a.attnum",
                        )
                        .bind(i64::from(relid))
                        .fetch_all(&mut self.conn),
                    )
                    .map_err(e)?;
                let mut attributes = Vec::new();
                for a in &attrs {
                    let aoid = u32::try_from(a.try_get::<i64, _>(2).map_err(e)?).unwrap_or(0);
                    self.user_types_of(aoid, table, column, deps)?;
                    let collation = match (
                        a.try_get::<Option<String>, _>(3).map_err(e)?,
                        a.try_get::<Option<String>, _>(4).map_err(e)?,
                    ) {
                        (Some(n), Some(c)) => Some(format!("{}.{}", quote(&n), quote(&c))),
                        _ => None,
                    };
                    attributes.push(CompositeAttribute {
                        name: a.try_get(0).map_err(e)?,
                        ty: a.try_get(1).map_err(e)?,
                        collation,
                    });
                }
                deps.types.push(UserType::Composite {
                    schema,
                    name,
                    attributes,
                });
            }
            "m" => {
                let range: i64 = self
                    .rt
                    .block_on(
                        sqlx::query_scalar(
                            "SELECT rngtypid::int8 FROM pg_range WHERE rngmultitypid = $1::int8::oid",
                        )
                        .bind(i64::from(oid))
                        .fetch_one(&mut self.conn),
                    )
                    .map_err(e)?;
                self.user_types_of(u32::try_from(range).unwrap_or(0), table, column, deps)?;
            }
            "r" => {
                let r = self
                    .rt
                    .block_on(
                        sqlx::query(
                            "SELECT r.rngsubtype::int8, format_type(r.rngsubtype, NULL), \
                                    CASE WHEN o.opcdefault THEN NULL ELSE on_.nspname::text END, \
                                    CASE WHEN o.opcdefault THEN NULL ELSE o.opcname::text END, \
                                    CASE WHEN r.rngcollation = 0 OR r.rngcollation = st.typcollation THEN NULL \
                                         ELSE cn.nspname::text END, \
                                    CASE WHEN r.rngcollation = 0 OR r.rngcollation = st.typcollation THEN NULL \
                                         ELSE co.collname::text END, \
                                    r.rngcanonical <> 0, r.rngsubdiff <> 0, \
                                    mn.nspname::text, mt.typname::text, \
                                    (SELECT p.proname::text FROM pg_proc p WHERE p.oid = r.rngsubdiff \
                                       AND p.pronamespace = 'pg_catalog'::regnamespace), \
                                    r.rngsubdiff::regproc::text \
                             FROM pg_range r JOIN pg_type st ON st.oid = r.rngsubtype \
                             JOIN pg_opclass o ON o.oid = r.rngsubopc JOIN pg_namespace on_ ON on_.oid = o.opcnamespace \
                             LEFT JOIN pg_collation co ON co.oid = r.rngcollation \
                             LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace \
                             LEFT JOIN pg_type mt ON mt.oid = r.rngmultitypid \
                             LEFT JOIN pg_namespace mn ON mn.oid = mt.typnamespace \
                             WHERE r.rngtypid = $1::int8::oid",
                        )
                        .bind(i64::from(oid))
                        .fetch_one(&mut self.conn),
                    )
                    .map_err(e)?;
                if r.try_get::<bool, _>(6).map_err(e)? {
                    return refuse(
                        "is a range with its own canonical function, which ferry does not create",
                    );
                }
                let sub = u32::try_from(r.try_get::<i64, _>(0).map_err(e)?).unwrap_or(0);
                self.user_types_of(sub, table, column, deps)?;
                let pair = |a: Option<String>, b: Option<String>| {
                    Some(format!("{}.{}", quote(&a?), quote(&b?)))
                };
                let multirange = match (
                    r.try_get::<Option<String>, _>(8).map_err(e)?,
                    r.try_get::<Option<String>, _>(9).map_err(e)?,
                ) {
                    (Some(ms), Some(mn))
                        if !(ms == schema && mn == default_multirange_name(&name)) =>
                    {
                        Some((ms, mn))
                    }
                    _ => None,
                };
                // A subtype_diff function of the system catalog (float8mi) comes along;
                // one of the source's own is code ferry does not carry (GiST indexes on
                // the range work without it, less well).
                let diff: Option<String> = r.try_get(10).map_err(e)?;
                if r.try_get::<bool, _>(7).map_err(e)? && diff.is_none() {
                    let f: String = r.try_get(11).map_err(e)?;
                    deps.notes.push(format!(
                        "range type {schema}.{name}: its subtype_diff function {f} is not carried"
                    ));
                }
                deps.types.push(UserType::Range {
                    subtype_diff: diff.map(|d| format!("{}.{}", quote("pg_catalog"), quote(&d))),
                    schema,
                    name,
                    subtype: r.try_get(1).map_err(e)?,
                    subtype_opclass: pair(r.try_get(2).map_err(e)?, r.try_get(3).map_err(e)?),
                    collation: pair(r.try_get(4).map_err(e)?, r.try_get(5).map_err(e)?),
                    multirange,
                });
            }
            "b" => {
                return refuse(
                    "is a base type defined outside any extension (written in C), which a bundle \
                     cannot create",
                );
            }
            _ => return refuse("is a pseudo-type"),
        }
        Ok(())
    }

    /// The partition key and partitions of a partitioned table, each partition with its
    /// own column order, NOT NULLs and defaults, and its own partitions when it is
    /// partitioned too.
    fn partitioning(&mut self, oid: u32, depth: u32) -> Result<Option<Partitioning>> {
        let key: Option<String> = self
            .rt
            .block_on(
                sqlx::query_scalar("SELECT pg_get_partkeydef($1::int8::oid)")
                    .bind(i64::from(oid))
                    .fetch_one(&mut self.conn),
            )
            .map_err(|e| pg_err("reading the partition key", e))?;
        let Some(key) = key else { return Ok(None) };
        if depth > 32 {
            return Err(Error::Data(
                "partitions nested more than 32 levels deep".into(),
            ));
        }
        let rows = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT n.nspname::text, c.relname::text, pg_get_expr(c.relpartbound, c.oid), c.oid::int8 \
                     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE i.inhparent = $1::int8::oid ORDER BY n.nspname, c.relname",
                )
                .bind(i64::from(oid))
                .fetch_all(&mut self.conn),
            )
            .map_err(|e| pg_err("reading partitions", e))?;
        let get = |e| pg_err("reading partitions", e);
        let mut partitions = Vec::new();
        for r in &rows {
            let poid = u32::try_from(r.try_get::<i64, _>(3).map_err(get)?).unwrap_or(0);
            let columns = columns_of_on(&self.rt, &mut self.conn, poid)?
                .into_iter()
                .map(|c| PartitionColumn {
                    default: c.default.as_deref().and_then(constant_default),
                    nullable: !c.not_null,
                    name: c.name,
                })
                .collect();
            // Indexes and foreign keys made on the partition itself (not through its
            // parent's).
            let mut extensions = Vec::new();
            partitions.push(Partition {
                schema: r.try_get(0).map_err(get)?,
                name: r.try_get(1).map_err(get)?,
                bound: r.try_get(2).map_err(get)?,
                columns,
                indexes: self.indexes(poid, &mut extensions)?,
                foreign_keys: self.foreign_keys(poid)?,
                partitioning: self.partitioning(poid, depth + 1)?.map(Box::new),
            });
        }
        Ok(Some(Partitioning { key, partitions }))
    }

    /// Objects of the exported schemas ferry does not carry: views, materialized views,
    /// sequences no exported column owns, functions and procedures (an extension's own are
    /// the extension's). One line per kind, for the summary and the catalog.
    fn schema_objects_not_carried(&mut self, tables: &[TableDef]) -> Result<Vec<String>> {
        let mut schemas: Vec<String> = tables.iter().filter_map(|t| t.schema.clone()).collect();
        schemas.sort();
        schemas.dedup();
        let owners: Vec<String> = tables.iter().map(TableDef::qualified).collect();
        if schemas.is_empty() {
            return Ok(vec![]);
        }
        let e = |e| pg_err("listing objects ferry does not carry", e);
        let rows = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT CASE c.relkind WHEN 'v' THEN 'views' WHEN 'm' THEN 'materialized views' \
                                ELSE 'sequences' END, \
                            n.nspname::text || '.' || c.relname::text, \
                            (SELECT tn.nspname::text || '.' || tc.relname::text FROM pg_depend d \
                             JOIN pg_class tc ON tc.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = tc.relnamespace \
                             WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
                               AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1) \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('v', 'm', 'S') AND n.nspname = ANY($1) \
                       AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_class'::regclass \
                                       AND x.objid = c.oid AND x.deptype = 'e') \
                     UNION ALL \
                     SELECT CASE p.prokind WHEN 'p' THEN 'procedures' WHEN 'a' THEN 'aggregates' \
                                ELSE 'functions' END, p.oid::regprocedure::text, NULL \
                     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                     WHERE n.nspname = ANY($1) \
                       AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_proc'::regclass \
                                       AND x.objid = p.oid AND x.deptype = 'e') \
                     ORDER BY 1, 2",
                )
                .bind(&schemas)
                .fetch_all(&mut self.conn),
            )
            .map_err(e)?;
        let mut kinds: Vec<(String, Vec<String>)> = Vec::new();
        for r in rows {
            let kind: String = r.try_get(0).map_err(e)?;
            let name: String = r.try_get(1).map_err(e)?;
            let owner: Option<String> = r.try_get(2).map_err(e)?;
            // A sequence an exported column owns is recreated with its column; a view named
            // with --table travels as a table.
            if kind == "sequences" && owner.is_some_and(|o| owners.contains(&o))
                || kind.ends_with("views") && owners.contains(&name)
            {
                continue;
            }
            match kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, v)) => v.push(name),
                None => kinds.push((kind, vec![name])),
            }
        }
        Ok(kinds
            .into_iter()
            .map(|(k, v)| format!("{k} are not carried: {}", v.join(", ")))
            .collect())
    }

    /// Every user table (ordinary and partitioned, partitions excluded: they are read
    /// through their parent) and view (plain and materialized) outside the system schemas:
    /// (oid, schema, name, is a view).
    fn listed(&mut self) -> Result<Vec<(u32, String, String, bool)>> {
        let e = |e| pg_err("listing tables", e);
        let rows = self.rt
            .block_on(
                sqlx::query(
                    "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind IN ('v', 'm') FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition \
                       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
                       AND c.relname NOT LIKE '\\_ferry\\_%' \
                     ORDER BY n.nspname, c.relname",
                )
                .fetch_all(&mut self.conn),
            )
            .map_err(e)?;
        rows.iter()
            .map(|r| {
                let oid: i64 = r.try_get(0).map_err(e)?;
                Ok((
                    u32::try_from(oid).unwrap_or(0),
                    r.try_get(1).map_err(e)?,
                    r.try_get(2).map_err(e)?,
                    r.try_get(3).map_err(e)?,
                ))
            })
            .collect()
    }

    /// The SELECT list: text-carried columns cast to their text form.
    fn select_list(table: &TableDef) -> String {
        table
            .columns
            .iter()
            .map(|c| {
                if c.as_text {
                    format!("{}::text", quote(&c.name))
                } else {
                    quote(&c.name)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Wire formats of a table's columns, as the codec wants them (arrays by element type).
    fn wires(&mut self, table: &TableDef) -> Result<Vec<(Wire, ColumnType)>> {
        let oid = self.oid_of(table)?;
        let cols = columns_of_on(&self.rt, &mut self.conn, oid)?;
        Ok(table
            .columns
            .iter()
            .map(|c| {
                let pc = cols.iter().find(|p| p.name == c.name);
                if c.as_text {
                    return (Wire::Text, ColumnType::Utf8);
                }
                match (pc.map(map_column), &c.ty) {
                    (Some((w, _, false)), ColumnType::List { element }) => (w, (**element).clone()),
                    (Some((w, _, false)), t) => (w, t.clone()),
                    _ => (Wire::Text, ColumnType::Utf8),
                }
            })
            .collect())
    }

    fn oid_of(&mut self, table: &TableDef) -> Result<u32> {
        let q = qualified(table.schema.as_deref(), &table.name);
        let oid: i64 = self
            .rt
            .block_on(
                sqlx::query_scalar("SELECT $1::regclass::oid::int8")
                    .bind(&q)
                    .fetch_one(&mut self.conn),
            )
            .map_err(|e| pg_err(&format!("looking up {q}"), e))?;
        u32::try_from(oid).map_err(|_| Error::Database(format!("odd OID for {q}")))
    }
}

impl Source for PgSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            engine: "postgres".into(),
            database: self.database.clone(),
            snapshot: self.snapshot.clone(),
            source_id_basis: Some(self.identity.basis.clone()),
        }
    }

    fn source_id(&self) -> String {
        self.identity.id.clone()
    }

    fn list(&mut self) -> Result<Vec<TableDef>> {
        Ok(self
            .listed()?
            .into_iter()
            .map(|(_, schema, name, from_view)| TableDef {
                schema: Some(schema),
                name,
                from_view,
                ..Default::default()
            })
            .collect())
    }

    fn tables(&mut self, selection: &Selection) -> Result<Vec<TableDef>> {
        let mut out = Vec::new();
        for (oid, schema, name, from_view) in self.listed()? {
            let probe = TableDef {
                schema: Some(schema.clone()),
                name: name.clone(),
                ..Default::default()
            };
            // `--table t` means public.t when no schema is given.
            let named_here =
                schema == "public" || selection.tables.iter().any(|t| *t == probe.qualified());
            let wanted = if from_view {
                // A view is read only when `--table` names it.
                selection.names(&probe) && named_here
            } else {
                selection.wants(&probe) && (selection.tables.is_empty() || named_here)
            };
            if wanted {
                let mut def = self.table_def(oid, &schema, &name)?;
                def.from_view = from_view;
                out.push(def);
            }
        }
        Ok(out)
    }

    fn not_carried(&mut self, tables: &[TableDef]) -> Result<Vec<String>> {
        let mut out = self.schema_objects_not_carried(tables)?;
        for t in tables {
            out.extend(t.not_carried.iter().cloned());
            let q = qualified(t.schema.as_deref(), &t.name);
            let names: Vec<String> = self.rt
                .block_on(
                    sqlx::query_scalar("SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal ORDER BY 1")
                        .bind(&q)
                        .fetch_all(&mut self.conn),
                )
                .map_err(|e| pg_err("listing triggers", e))?;
            if !names.is_empty() {
                out.push(format!(
                    "triggers on {} are not carried: {}",
                    t.qualified(),
                    names.join(", ")
                ));
            }
            // Indexes whose definition holds an expression (expression and partial indexes,
            // exclusion constraints) wait for the expression rules, on partitions too.
            let skipped: Vec<String> = self
                .rt
                .block_on(
                    sqlx::query_scalar(
                        "WITH rels AS (SELECT relid, level FROM pg_partition_tree($1::regclass) \
                                       UNION SELECT $1::regclass, 0) \
                         SELECT format('%s%s (%s)', c.relname, \
                                       CASE WHEN r.level > 0 THEN ' on partition ' || pc.relname ELSE '' END, \
                                CASE WHEN EXISTS (SELECT 1 FROM pg_constraint x WHERE x.conindid = i.indexrelid \
                                                  AND x.contype = 'x') THEN 'exclusion constraint' \
                                     WHEN i.indpred IS NOT NULL THEN 'partial index' \
                                     ELSE 'expression index' END) \
                         FROM rels r JOIN pg_class pc ON pc.oid = r.relid \
                         JOIN pg_index i ON i.indrelid = r.relid JOIN pg_class c ON c.oid = i.indexrelid \
                         WHERE NOT i.indisprimary \
                           AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid) \
                           AND ((0 = ANY(i.indkey::int2[])) OR i.indpred IS NOT NULL OR i.indexprs IS NOT NULL \
                                OR EXISTS (SELECT 1 FROM pg_constraint x WHERE x.conindid = i.indexrelid \
                                           AND x.contype = 'x')) \
                         ORDER BY 1",
                    )
                    .bind(&q)
                    .fetch_all(&mut self.conn),
                )
                .map_err(|e| pg_err("listing indexes", e))?;
            if !skipped.is_empty() {
                out.push(format!(
                    "indexes of {} are not carried: {}",
                    t.qualified(),
                    skipped.join(", ")
                ));
            }
        }
        Ok(out)
    }

    fn begin_snapshot(&mut self) -> Result<()> {
        if self.snapshot.is_none() {
            // While a lane copies, this session waits in its transaction: a server's
            // idle-in-transaction timeout must not end it (and the snapshot with it).
            self.exec(
                "SET idle_in_transaction_session_timeout = 0; \
                 BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            )?;
            let snap: String = self
                .rt
                .block_on(
                    sqlx::query_scalar("SELECT pg_export_snapshot()").fetch_one(&mut self.conn),
                )
                .map_err(|e| pg_err("pg_export_snapshot", e))?;
            self.snapshot = Some(format!(
                "repeatable read, read only; exported snapshot {snap}"
            ));
            self.snapshot_id = Some(snap);
        }
        Ok(())
    }

    fn lock_shared_nowait(&mut self, table: &TableDef) -> Result<bool> {
        self.lock_nowait(&qualified(table.schema.as_deref(), &table.name))
    }

    fn split(
        &mut self,
        table: &TableDef,
        n: usize,
        min_bytes: u64,
        cut: Cut,
    ) -> Result<Vec<Option<String>>> {
        // Page ranges of the heap (TID range scans, PostgreSQL 14+): disjoint, and the last
        // range is open so pages added since the size was read are still covered.
        let q = qualified(table.schema.as_deref(), &table.name);
        let pages: i64 = self.rt
            .block_on(
                sqlx::query_scalar("SELECT (pg_relation_size($1::regclass) / current_setting('block_size')::int)::int8")
                    .bind(&q)
                    .fetch_one(&mut self.conn),
            )
            .map_err(|e| pg_err("sizing a table", e))?;
        let n = i64::try_from(n).unwrap_or(1);
        // No pages (an empty table, a view, a partitioned parent): nothing to split. Before
        // PostgreSQL 14 a ctid range is no TID range scan but a whole scan per range.
        if n < 2
            || pages == 0
            || self.conn.server_version_num().is_some_and(|v| v < 140_000)
            || pages.saturating_mul(8192) < i64::try_from(min_bytes).unwrap_or(i64::MAX)
        {
            return Ok(vec![None]);
        }
        let ends = range_ends(pages, n, cut);
        let bound = |k: i64| usize::try_from(k).ok().map_or(0, |k| ends[k]);
        Ok((0..n)
            .map(|k| {
                Some(match k {
                    0 => format!("ctid < '({},0)'::tid", bound(1)),
                    k if k == n - 1 => format!("ctid >= '({},0)'::tid", bound(k)),
                    k => format!(
                        "ctid >= '({},0)'::tid AND ctid < '({},0)'::tid",
                        bound(k),
                        bound(k + 1)
                    ),
                })
            })
            .collect())
    }

    fn shared_snapshot(&self) -> Option<String> {
        self.snapshot_id.clone()
    }

    fn attach_snapshot(&mut self, id: &str) -> Result<()> {
        // The id is data from the shard plan: one quoted literal, nothing else.
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Error::Usage(format!(
                "the shard plan names snapshot {id:?}, which is not a PostgreSQL snapshot id"
            )));
        }
        let sql = format!(
            "SET idle_in_transaction_session_timeout = 0; \
             BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{id}'"
        );
        if let Err(e) = self.exec(&sql) {
            let _ = self.exec("ROLLBACK");
            return Err(Error::Database(format!(
                "cannot attach to the export's snapshot {id}: {e}. The coordinator (`ferry export … \
                 --shards N --coordinate`) holds it only while it runs: if it stopped (killed, timed out, \
                 its connection lost), the snapshot is gone and the shards cannot finish; start over \
                 with a new coordinator in a new, empty location"
            )));
        }
        self.snapshot = Some(format!(
            "repeatable read, read only; exported snapshot {id}"
        ));
        self.snapshot_id = Some(id.to_string());
        Ok(())
    }

    fn worker(&mut self) -> Result<Option<Box<dyn Source>>> {
        self.worker_opener().map(|open| open()).transpose()
    }

    fn worker_opener(&self) -> Option<crate::source::WorkerOpener> {
        let id = self.snapshot_id.clone()?;
        let (url, snapshot) = (self.url.clone(), self.snapshot.clone());
        Some(Box::new(move || {
            let mut w = PgSource::open(&url)?;
            // The exporting transaction stays open on the first connection, so the snapshot
            // stays importable while it lives.
            // It may wait idle in its transaction while the first connection reads small
            // tables alone: a server's idle-in-transaction timeout must not end it.
            w.exec(&format!(
                "SET idle_in_transaction_session_timeout = 0; \
                 BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
                id.replace('\'', "''")
            ))?;
            w.snapshot = snapshot;
            w.snapshot_id = Some(id);
            Ok(Box::new(w) as Box<dyn Source>)
        }))
    }

    fn count_rows(&mut self, table: &TableDef, _filter: Option<&str>) -> Result<Option<u64>> {
        // The planner's estimate: progress only, never a full scan.
        let q = qualified(table.schema.as_deref(), &table.name);
        let n: f32 = self
            .rt
            .block_on(
                sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = $1::regclass")
                    .bind(&q)
                    .fetch_one(&mut self.conn),
            )
            .map_err(|e| pg_err("estimating rows", e))?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok((n >= 0.0).then_some(n as u64))
    }

    fn estimate(&mut self, table: &TableDef) -> Result<Estimate> {
        // Per leaf (the table, or each partition of a partitioned one): the planner's way,
        // reltuples scaled by the pages the heap has now. A table never analysed nor
        // vacuumed has no statistics (reltuples -1, or 0 over 0 pages while the heap has
        // pages): its rows are unknown, never 0.
        let q = qualified(table.schema.as_deref(), &table.name);
        let leaves = if table.partitioning.is_some() {
            "SELECT relid FROM pg_partition_tree($1::regclass) WHERE isleaf"
        } else {
            "SELECT $1::regclass"
        };
        let sql = format!(
            "SELECT c.reltuples::float8, c.relpages::int8, \
                    (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8, \
                    pg_table_size(c.oid)::int8 \
             FROM pg_class c WHERE c.oid IN ({leaves})"
        );
        let stats: Vec<(f64, i64, i64, i64)> = self
            .rt
            .block_on(
                sqlx::query_as(AssertSqlSafe(sql))
                    .bind(&q)
                    .fetch_all(&mut self.conn),
            )
            .map_err(|e| pg_err(&format!("reading the statistics of {q}"), e))?;
        let mut rows = Some(0f64);
        let mut bytes = 0i64;
        for (tuples, pages, pages_now, size) in stats {
            bytes = bytes.saturating_add(size);
            rows = match rows {
                _ if pages_now == 0 => rows,
                Some(n) if pages > 0 && tuples >= 0.0 => {
                    Some(n + tuples / pages as f64 * pages_now as f64)
                }
                _ => None,
            };
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(Estimate {
            rows: match rows {
                Some(n) => Rows::Estimated(n.round().max(0.0) as u64),
                None => Rows::Unknown(
                    "unknown (never analysed: run ANALYZE, or count with --exact)".into(),
                ),
            },
            bytes: u64::try_from(bytes).ok(),
        })
    }

    fn count_exact(&mut self, table: &TableDef, filter: Option<&str>) -> Result<u64> {
        let q = qualified(table.schema.as_deref(), &table.name);
        let sql = format!(
            "SELECT count(*) FROM {}{q}{}",
            Self::only(table),
            filter.map(|f| format!(" WHERE ({f})")).unwrap_or_default()
        );
        let n: i64 = self
            .rt
            .block_on(sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(&mut self.conn))
            .map_err(|e| pg_err(&format!("counting the rows of {q}"), e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn check_filter(&mut self, table: &TableDef, filter: &str) -> Result<()> {
        let q = qualified(table.schema.as_deref(), &table.name);
        let sql = format!(
            "SELECT 1 FROM {}{q} WHERE ({filter}) LIMIT 0",
            Self::only(table)
        );
        match self
            .rt
            .block_on(sqlx::query(AssertSqlSafe(sql)).fetch_all(&mut self.conn))
        {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(d)) => Err(Error::Usage(format!(
                "--where {}:…: PostgreSQL refuses the predicate: {}; give one boolean expression over the \
                 table's columns",
                table.qualified(),
                d.message()
            ))),
            Err(e) => Err(pg_err(&format!("checking the --where predicate of {q}"), e)),
        }
    }

    fn text_type(&self, max_chars: Option<u32>) -> String {
        match max_chars {
            Some(n) => format!("character varying({n})"),
            None => "text".into(),
        }
    }

    fn high_water(&mut self, table: &TableDef, column: &str) -> Result<Option<String>> {
        let sql = format!(
            "SELECT max({})::text FROM ONLY {}",
            quote(column),
            qualified(table.schema.as_deref(), &table.name)
        );
        self.rt
            .block_on(
                sqlx::query_scalar::<_, Option<String>>(AssertSqlSafe(sql))
                    .fetch_one(&mut self.conn),
            )
            .map_err(|e| {
                pg_err(
                    &format!("reading the high-water mark of {}", table.qualified()),
                    e,
                )
            })
    }

    fn read(
        &mut self,
        table: &TableDef,
        filter: Option<&str>,
        limits: BatchLimits,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64> {
        let q = qualified(table.schema.as_deref(), &table.name);
        let wires = self.wires(table)?;
        let on_lane = self.lane_for(&format!("{}{q}", Self::only(table)), filter);
        let schema = table.arrow_schema("postgres");
        let sql = format!(
            "COPY (SELECT {} FROM {}{q}{}) TO STDOUT (FORMAT binary)",
            Self::select_list(table),
            Self::only(table),
            filter.map(|f| format!(" WHERE ({f})")).unwrap_or_default()
        );
        let text_columns = &mut self.text_columns;
        let mut data_err = |e: crate::engines::postgres::pgcopy::CodecError| {
            let column = e.column.and_then(|i| table.columns.get(i));
            // A value the column's canonical type cannot hold: the column travels as its
            // text form from now on, and the caller reads the table again.
            if e.needs_text
                && let Some(c) = column
                && !c.as_text
            {
                let reason = format!("row {}: {}", e.row, e.message);
                text_columns.insert(
                    (table.schema.clone(), table.name.clone(), c.name.clone()),
                    reason.clone(),
                );
                return Error::NeedsText {
                    table: table.qualified(),
                    column: c.name.clone(),
                    reason,
                };
            }
            let col = column
                .map(|c| format!(", column {:?} ({})", c.name, c.source_type))
                .unwrap_or_default();
            Error::Data(format!("table {q}{col}, row {}: {}", e.row, e.message))
        };
        let mut dec = CopyDecoder::new(wires, schema).map_err(&mut data_err)?;
        // A column that must be read again as text: the rest of the stream is drained
        // undecoded, so the connection (and the snapshot's transaction) stays usable.
        let mut retype: Option<Error> = None;
        let mut feed = |chunk: &[u8]| -> Result<()> {
            if retype.is_some() {
                return Ok(());
            }
            let fed = dec.feed(chunk).map_err(&mut data_err).and_then(|()| {
                if dec.buffered_rows() >= limits.rows || dec.buffered_bytes() >= limits.bytes {
                    dec.take_batch().map_err(&mut data_err)
                } else {
                    Ok(None)
                }
            });
            match fed {
                Ok(Some(b)) => sink(b),
                Ok(None) => Ok(()),
                Err(e @ Error::NeedsText { .. }) => {
                    retype = Some(e);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        // One `block_on` for the whole stream: PostgreSQL sends a message per row, and
        // entering the runtime per message cost more than decoding it. The sink may block
        // (backpressure); this thread is not one of the runtime's workers, so that only
        // pauses this read.
        let lane = match &self.lane {
            LaneState::Open(lane) if on_lane => Some(lane),
            _ => None,
        };
        let conn = &mut self.conn;
        let mut lane_lost = false;
        self.rt.block_on(async {
            if let Some(lane) = lane {
                match lane.copy_out(&sql).await {
                    Ok(stream) => {
                        let mut stream = std::pin::pin!(stream);
                        while let Some(chunk) = stream.next().await {
                            feed(&chunk.map_err(|e| lane_err(&format!("reading {q}"), &e))?)?;
                        }
                        return lane
                            .copied()
                            .await
                            .map_err(|e| lane_err(&format!("COPY {q} TO STDOUT"), &e));
                    }
                    // Before any row: a lock the lane did not get in time, or an error
                    // this connection will meet (and report) as it always did.
                    Err(e) => {
                        tracing::debug!("COPY lane gave {q} back: {e}");
                        if e.as_db_error().is_none() || lane.give_back().await.is_err() {
                            lane_lost = true;
                        }
                    }
                }
            }
            let mut stream = conn
                .copy_out_raw(&sql)
                .await
                .map_err(|e| pg_err(&format!("COPY {q} TO STDOUT"), e))?;
            while let Some(chunk) = stream.next().await {
                feed(&chunk.map_err(|e| pg_err(&format!("reading {q}"), e))?)?;
            }
            Ok::<(), Error>(())
        })?;
        if lane_lost {
            self.lane = LaneState::Off;
        }
        if let Some(e) = retype {
            return Err(e);
        }
        dec.finish().map_err(&mut data_err)?;
        if let Some(b) = dec.take_batch().map_err(&mut data_err)? {
            sink(b)?;
        }
        Ok(dec.rows_decoded())
    }
}

/// Where the `n` page ranges of a table of `pages` pages start (index 0 is 0, index n is
/// `pages`), equal or tapered as `cut` says (see [`Cut`]).
fn range_ends(pages: i64, n: i64, cut: Cut) -> Vec<i64> {
    let weight = |k: i64| match cut {
        Cut::Even => 1,
        Cut::Tapered => n - k,
    };
    let total: i64 = (0..n).map(weight).sum();
    let mut ends = Vec::with_capacity(usize::try_from(n).unwrap_or(0) + 1);
    let mut sum = 0;
    ends.push(0);
    for k in 0..n {
        sum += weight(k);
        // i128: pages (up to 2^32) times a weight sum (n^2 / 2) stays far inside it.
        let end = i128::from(pages) * i128::from(sum) / i128::from(total.max(1));
        ends.push(i64::try_from(end).unwrap_or(pages));
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_page_once_even_or_tapered() {
        assert_eq!(range_ends(100, 4, Cut::Even), vec![0, 25, 50, 75, 100]);
        // Weights 4, 3, 2, 1 of 10.
        assert_eq!(range_ends(100, 4, Cut::Tapered), vec![0, 40, 70, 90, 100]);
        for (pages, n) in [(1, 16), (7, 3), (102_539, 16), (1 << 32, 32)] {
            for cut in [Cut::Even, Cut::Tapered] {
                let e = range_ends(pages, n, cut);
                assert_eq!(e.len(), usize::try_from(n).unwrap() + 1);
                assert_eq!((e[0], e[e.len() - 1]), (0, pages), "{pages} {n} {cut:?}");
                assert!(e.windows(2).all(|w| w[0] <= w[1]), "{e:?}");
            }
            if pages > 1000 {
                // Tapered: the last range is about 1/(n(n+1)/2) of the table, the first n times that.
                let e = range_ends(pages, n, Cut::Tapered);
                let len = |k: usize| e[k + 1] - e[k];
                let last = len(e.len() - 2);
                assert!(
                    len(0) >= (n - 1) * last && len(0) <= (n + 1) * last,
                    "{e:?}"
                );
            }
        }
    }
}
