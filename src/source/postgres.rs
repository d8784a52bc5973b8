//! PostgreSQL reader: one REPEATABLE READ, READ ONLY transaction for all tables (its snapshot
//! exported and recorded in the catalog), schema captured from the system catalogs, and rows
//! streamed with `COPY (SELECT …) TO STDOUT (FORMAT binary)` straight into Arrow builders.

use std::sync::LazyLock;

use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use regex::Regex;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Row};

use super::{BatchLimits, Selection, Source};
use crate::bundle::catalog::SourceInfo;
use crate::pgcopy::{CopyDecoder, Wire};
use crate::storage::runtime;
use crate::types::{
    Column, ColumnType, DomainType, EnumType, ForeignKey, Index, Partition, Partitioning, TableDef,
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
        sqlx::Error::Database(d)
            if d.code().is_some_and(|c| {
                c.starts_with("57P")
                    || c.starts_with("08")
                    || c == "40001"
                    || c == "40P01"
                    || c == "55P03"
            }) =>
        {
            Error::Temporary(format!("{what}: {e} (temporary; safe to re-run)"))
        }
        // Disk full, out of memory, too many connections; a statement timeout.
        sqlx::Error::Database(d)
            if d.code()
                .is_some_and(|c| c.starts_with("53") || c == "57014") =>
        {
            Error::Temporary(format!(
                "{what}: {e} (the server ran out of a resource or time: the transaction was rolled back; \
                 free it and re-run the same command)"
            ))
        }
        _ => Error::Database(format!("{what}: {e}")),
    }
}

/// Connects, mapping an unreachable server to a temporary failure.
pub fn connect(url: &str) -> Result<PgConnection> {
    connect_on(runtime(), url)
}

/// Connects on a given runtime: the connection must then always be driven by that runtime.
pub fn connect_on(rt: &tokio::runtime::Runtime, url: &str) -> Result<PgConnection> {
    rt.block_on(PgConnection::connect(url))
        .map_err(|e| match e {
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                Error::Temporary(format!("cannot reach PostgreSQL at {}: {e}", redact(url)))
            }
            other => Error::Database(format!("cannot connect to {}: {other}", redact(url))),
        })
}

/// The URL without its password, for messages and the catalog.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
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
        if let Some((w, t)) = base_wire(ename, etype, c.typmod) {
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
                        a.attndims::int4 \
                 FROM pg_attribute a \
                 JOIN pg_type t ON t.oid = a.atttypid \
                 JOIN pg_namespace tn ON tn.oid = t.typnamespace \
                 LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' \
                 LEFT JOIN pg_namespace en ON en.oid = e.typnamespace \
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
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
            })
        })
        .collect()
}

/// Defaults ferry recreates: literals with an optional cast, booleans, NULL.
static CONSTANT_DEFAULT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\(?-?[0-9]+(\.[0-9]+)?\)?|'([^']|'')*'|true|false|NULL)(::[a-z ]+(\([0-9, ]+\))?(\[\])?)?$").expect("regex")
});

pub fn constant_default(d: &str) -> Option<String> {
    CONSTANT_DEFAULT
        .is_match(d.trim())
        .then(|| d.trim().to_string())
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
}

impl PgSource {
    pub fn open(url: &str) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start a reader runtime", e))?;
        let mut conn = connect_on(&rt, url)?;
        let database: String = rt
            .block_on(sqlx::query_scalar("SELECT current_database()::text").fetch_one(&mut conn))
            .map_err(|e| pg_err("current_database", e))?;
        Ok(PgSource {
            conn,
            rt,
            url: url.to_string(),
            database,
            snapshot: None,
            snapshot_id: None,
        })
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
        let cols = columns_of_on(&self.rt, &mut self.conn, oid)?;
        if cols.is_empty() {
            return Err(Error::Data(format!(
                "table {schema}.{name} has no columns: ferry does not export zero-column tables"
            )));
        }
        let mut columns = Vec::new();
        for c in &cols {
            let (_, ty, as_text) = map_column(c);
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
            columns.push(Column {
                name: c.name.clone(),
                ty,
                nullable: !c.not_null,
                source_type: c.format_type.clone(),
                default: c.default.as_deref().and_then(constant_default),
                enum_type,
                domain_type,
                as_text,
            });
        }
        let rt = &self.rt;
        let pk: Vec<String> = rt
            .block_on(
                sqlx::query_scalar(
                    "SELECT a.attname::text FROM pg_index i \
                     CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                     WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord",
                )
                .bind(i64::from(oid))
                .fetch_all(&mut self.conn),
            )
            .map_err(|e| pg_err("reading the primary key", e))?;
        let idx_rows = rt
            .block_on(
                sqlx::query(
                    "SELECT c.relname::text, i.indisunique, \
                            array_agg(a.attname::text ORDER BY k.ord) FILTER (WHERE a.attname IS NOT NULL), \
                            bool_or(k.attnum = 0) OR i.indpred IS NOT NULL OR i.indexprs IS NOT NULL \
                     FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                     CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) \
                     LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                     WHERE i.indrelid = $1 AND NOT i.indisprimary \
                     GROUP BY c.relname, i.indisunique, i.indpred IS NOT NULL, i.indexprs IS NOT NULL \
                     ORDER BY c.relname",
                )
                .bind(i64::from(oid))
                .fetch_all(&mut self.conn),
            )
            .map_err(|e| pg_err("reading indexes", e))?;
        let mut indexes = Vec::new();
        for r in idx_rows {
            let expr: Option<bool> = r.try_get(3).map_err(|e| pg_err("reading indexes", e))?;
            if expr.unwrap_or(false) {
                continue; // expression or partial index: not carried yet
            }
            let cols: Option<Vec<String>> =
                r.try_get(2).map_err(|e| pg_err("reading indexes", e))?;
            indexes.push(Index {
                name: r.try_get(0).map_err(|e| pg_err("reading indexes", e))?,
                unique: r.try_get(1).map_err(|e| pg_err("reading indexes", e))?,
                columns: cols.unwrap_or_default(),
            });
        }
        let fk_rows = rt
            .block_on(
                sqlx::query(
                    "SELECT con.conname::text, rn.nspname::text, rc.relname::text, \
                            (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(con.conkey) WITH ORDINALITY k(n, ord) \
                               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n), \
                            (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(con.confkey) WITH ORDINALITY k(n, ord) \
                               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n) \
                     FROM pg_constraint con JOIN pg_class rc ON rc.oid = con.confrelid \
                     JOIN pg_namespace rn ON rn.oid = rc.relnamespace \
                     WHERE con.conrelid = $1 AND con.contype = 'f' ORDER BY con.conname",
                )
                .bind(i64::from(oid))
                .fetch_all(&mut self.conn),
            )
            .map_err(|e| pg_err("reading foreign keys", e))?;
        let mut foreign_keys = Vec::new();
        for r in fk_rows {
            foreign_keys.push(ForeignKey {
                name: r
                    .try_get(0)
                    .map_err(|e| pg_err("reading foreign keys", e))?,
                ref_schema: Some(
                    r.try_get(1)
                        .map_err(|e| pg_err("reading foreign keys", e))?,
                ),
                ref_table: r
                    .try_get(2)
                    .map_err(|e| pg_err("reading foreign keys", e))?,
                columns: r
                    .try_get::<Option<Vec<String>>, _>(3)
                    .map_err(|e| pg_err("reading foreign keys", e))?
                    .unwrap_or_default(),
                ref_columns: r
                    .try_get::<Option<Vec<String>>, _>(4)
                    .map_err(|e| pg_err("reading foreign keys", e))?
                    .unwrap_or_default(),
            });
        }
        let partitioning = self.partitioning(oid)?;
        Ok(TableDef {
            schema: Some(schema.to_string()),
            name: name.to_string(),
            columns,
            primary_key: pk,
            indexes,
            foreign_keys,
            partitioning,
        })
    }

    /// The partition key and partitions of a partitioned table (one level: a partition that
    /// is itself partitioned comes back as a plain partition).
    fn partitioning(&mut self, oid: u32) -> Result<Option<Partitioning>> {
        let key: Option<String> = self
            .rt
            .block_on(
                sqlx::query_scalar("SELECT pg_get_partkeydef($1::int8::oid)")
                    .bind(i64::from(oid))
                    .fetch_one(&mut self.conn),
            )
            .map_err(|e| pg_err("reading the partition key", e))?;
        let Some(key) = key else { return Ok(None) };
        let rows = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT n.nspname::text, c.relname::text, pg_get_expr(c.relpartbound, c.oid) \
                     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE i.inhparent = $1::int8::oid ORDER BY n.nspname, c.relname",
                )
                .bind(i64::from(oid))
                .fetch_all(&mut self.conn),
            )
            .map_err(|e| pg_err("reading partitions", e))?;
        let get = |e| pg_err("reading partitions", e);
        let partitions = rows
            .iter()
            .map(|r| {
                Ok(Partition {
                    schema: r.try_get(0).map_err(get)?,
                    name: r.try_get(1).map_err(get)?,
                    bound: r.try_get(2).map_err(get)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Partitioning { key, partitions }))
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
        }
    }

    fn source_id(&self) -> String {
        let u = url::Url::parse(&self.url).ok();
        let host = u
            .as_ref()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let port = u.as_ref().and_then(url::Url::port).unwrap_or(5432);
        let h = Sha256::digest(format!("{host}:{port}/{}", self.database).as_bytes());
        format!("postgres-{}", &hex::encode(h)[..16])
    }

    fn tables(&mut self, selection: &Selection) -> Result<Vec<TableDef>> {
        let rows = self.rt
            .block_on(
                sqlx::query(
                    "SELECT c.oid::int8, n.nspname::text, c.relname::text FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
                       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
                       AND c.relname NOT LIKE '\\_ferry\\_%' \
                     ORDER BY n.nspname, c.relname",
                )
                .fetch_all(&mut self.conn),
            )
            .map_err(|e| pg_err("listing tables", e))?;
        let mut out = Vec::new();
        for r in rows {
            let oid: i64 = r.try_get(0).map_err(|e| pg_err("listing tables", e))?;
            let schema: String = r.try_get(1).map_err(|e| pg_err("listing tables", e))?;
            let name: String = r.try_get(2).map_err(|e| pg_err("listing tables", e))?;
            let probe = TableDef {
                schema: Some(schema.clone()),
                name: name.clone(),
                columns: vec![],
                primary_key: vec![],
                indexes: vec![],
                foreign_keys: vec![],
                partitioning: None,
            };
            // `--table t` means public.t when no schema is given.
            let wanted = selection.wants(&probe)
                && (selection.tables.is_empty()
                    || schema == "public"
                    || selection.tables.iter().any(|t| *t == probe.qualified()));
            if wanted {
                out.push(self.table_def(u32::try_from(oid).unwrap_or(0), &schema, &name)?);
            }
        }
        Ok(out)
    }

    fn not_carried(&mut self, tables: &[TableDef]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for t in tables {
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
        }
        Ok(out)
    }

    fn begin_snapshot(&mut self) -> Result<()> {
        if self.snapshot.is_none() {
            self.exec("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
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

    fn split(&mut self, table: &TableDef, n: usize, min_bytes: u64) -> Result<Vec<Option<String>>> {
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
        if n < 2 || pages.saturating_mul(8192) < i64::try_from(min_bytes).unwrap_or(i64::MAX) {
            return Ok(vec![None]);
        }
        let bound = |k: i64| pages * k / n;
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

    fn worker(&mut self) -> Result<Option<Box<dyn Source>>> {
        let Some(id) = self.snapshot_id.clone() else {
            return Ok(None);
        };
        let mut w = PgSource::open(&self.url)?;
        // The exporting transaction stays open on `self`, so the snapshot stays importable.
        w.exec(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
            id.replace('\'', "''")
        ))?;
        w.snapshot = self.snapshot.clone();
        w.snapshot_id = Some(id);
        Ok(Some(Box::new(w)))
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

    fn read(
        &mut self,
        table: &TableDef,
        filter: Option<&str>,
        limits: BatchLimits,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64> {
        let q = qualified(table.schema.as_deref(), &table.name);
        let wires = self.wires(table)?;
        let schema = table.arrow_schema("postgres");
        let sql = format!(
            "COPY (SELECT {} FROM {q}{}) TO STDOUT (FORMAT binary)",
            Self::select_list(table),
            filter.map(|f| format!(" WHERE ({f})")).unwrap_or_default()
        );
        let data_err = |e: crate::pgcopy::CodecError| {
            let col = e
                .column
                .and_then(|i| table.columns.get(i))
                .map(|c| format!(", column {:?} ({})", c.name, c.source_type))
                .unwrap_or_default();
            Error::Data(format!("table {q}{col}, row {}: {}", e.row, e.message))
        };
        let mut dec = CopyDecoder::new(wires, schema).map_err(data_err)?;
        let conn = &mut self.conn;
        // One `block_on` for the whole stream: PostgreSQL sends a message per row, and
        // entering the runtime per message cost more than decoding it. The sink may block
        // (backpressure); this thread is not one of the runtime's workers, so that only
        // pauses this read.
        self.rt.block_on(async {
            let mut stream = conn
                .copy_out_raw(&sql)
                .await
                .map_err(|e| pg_err(&format!("COPY {q} TO STDOUT"), e))?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| pg_err(&format!("reading {q}"), e))?;
                dec.feed(&chunk).map_err(data_err)?;
                if (dec.buffered_rows() >= limits.rows || dec.buffered_bytes() >= limits.bytes)
                    && let Some(b) = dec.take_batch().map_err(data_err)?
                {
                    sink(b)?;
                }
            }
            Ok::<(), Error>(())
        })?;
        dec.finish().map_err(data_err)?;
        if let Some(b) = dec.take_batch().map_err(data_err)? {
            sink(b)?;
        }
        Ok(dec.rows_decoded())
    }
}
