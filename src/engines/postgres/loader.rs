//! PostgreSQL loader: `COPY … FROM STDIN (FORMAT binary)` encoded from Arrow batches, one
//! part per transaction with its ledger row (serialised per part by an advisory lock).
//! Tables are created inside the first part's transaction; primary keys, unique and
//! secondary indexes after the data, foreign keys last.

use std::sync::LazyLock;

use arrow::record_batch::RecordBatch;
use regex::Regex;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Row};

use crate::engines::postgres::pgcopy::{CopyEncoder, Wire};
use crate::engines::postgres::reader::{
    PgColumn, columns_of, connect, map_column, pg_err, qualified, quote,
};
use crate::load::Target;
use crate::load::typemap::{ColumnMapping, TypeMap};
use crate::load::{self, Dialect, LedgerKind, Param, Placeholders, Session, Written};
use crate::storage::runtime;
use crate::types::{ColumnType, Index, Partitioning, TableDef, UserType};
use crate::{Error, Result};

use crate::load::ledger::LEDGER;
use crate::load::lock_timeout_secs;

/// Bytes of COPY data sent to the server at a time.
const SEND_CHUNK: usize = 1 << 20;

/// A type as `format_type` prints it: names, quotes, dots, spaces, (p,s) and [].
static FORMAT_TYPE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"^[A-Za-z0-9_ ."(),\[\]]{1,200}$"#).expect("regex"));

/// The PostgreSQL type a canonical type becomes on a cross-engine import.
pub fn pg_type(ty: &ColumnType) -> String {
    pg_mapping(ty).sql_type
}

/// [`pg_type`] with what differs from the canonical type (see [`crate::load::typemap`]).
fn pg_mapping(ty: &ColumnType) -> ColumnMapping {
    use ColumnMapping as M;
    let wider = |sql: &str| {
        M::mapped(
            sql,
            format!("{} as {sql}, a wider signed type", ty.describe()),
        )
    };
    match ty {
        ColumnType::Boolean => M::exact("boolean"),
        ColumnType::Int16 => M::exact("smallint"),
        ColumnType::UInt8 => wider("smallint"),
        ColumnType::Int32 => M::exact("integer"),
        ColumnType::UInt16 => wider("integer"),
        ColumnType::Int64 => M::exact("bigint"),
        ColumnType::UInt32 => wider("bigint"),
        ColumnType::UInt64 => M::mapped(
            "numeric(20,0)",
            "PostgreSQL has no unsigned 64-bit integer: numeric(20,0) holds every value",
        ),
        ColumnType::Float32 => M::exact("real"),
        ColumnType::Float64 => M::exact("double precision"),
        ColumnType::Decimal128 { precision, scale }
        | ColumnType::Decimal256 { precision, scale } => {
            M::exact(format!("numeric({precision},{scale})"))
        }
        ColumnType::NumericText => M::exact("numeric"),
        ColumnType::Utf8 => M::exact("text"),
        ColumnType::Json => M::mapped(
            "jsonb",
            "jsonb keeps documents normalised (key order, whitespace, duplicate keys)",
        ),
        ColumnType::Binary => M::exact("bytea"),
        ColumnType::Date32 => M::exact("date"),
        ColumnType::Timestamp { utc: false } => M::exact("timestamp"),
        ColumnType::Timestamp { utc: true } => M::exact("timestamptz"),
        ColumnType::Time64 => M::exact("time"),
        ColumnType::Interval => M::exact("interval"),
        ColumnType::Uuid => M::exact("uuid"),
        ColumnType::List { element } => {
            let e = pg_mapping(element);
            ColumnMapping {
                sql_type: format!("{}[]", e.sql_type),
                note: e.note.map(|n| format!("elements: {n}")),
            }
        }
    }
}

/// The type a column is created as (see [`crate::load::typemap`]): on a same-engine import
/// the source's `format_type` spelling, checked and placed by `place`; else what its
/// canonical type maps to. Without its collation (the caller adds it).
fn column_mapping(
    name: &str,
    c: &crate::types::Column,
    same_engine: bool,
    place: &TypePlace,
) -> Result<ColumnMapping> {
    if same_engine {
        let what = format!("table {name}, column {:?}", c.name);
        return checked_type(&what, &c.source_type, place).map(ColumnMapping::exact);
    }
    let mut m = pg_mapping(&c.ty);
    if c.ty == ColumnType::Utf8 {
        let declared = c
            .declared_length()
            .map(|n| format!("declared length {n} not kept"));
        if let Some(note) = crate::load::typemap::notes::text_column(c, declared) {
            m.note = Some(note);
        }
    }
    Ok(m)
}

/// PostgreSQL's type mapping ([`crate::load::typemap::TypeMap`]): it takes every canonical
/// type. `schema`: `--target-schema`, which moves a same-engine bundle's own types.
pub struct PgTypes {
    pub schema: Option<String>,
}

impl TypeMap for PgTypes {
    fn column(
        &self,
        table: &TableDef,
        c: &crate::types::Column,
        same_engine: bool,
    ) -> Result<ColumnMapping> {
        let place = TypePlace::new(self.schema.as_deref(), [table])?;
        column_mapping(&table.name, c, same_engine, &place)
    }
}

pub struct PgTarget {
    conn: PgConnection,
    url: String,
    /// `--target-schema`: every table goes there instead of its own schema.
    schema_override: Option<String>,
    /// Where the ledger lives: `public`, one per database, so a bundle loads once per
    /// database whatever `--target-schema` says; the target schema for a deliberate
    /// separate copy (`--separate-copy`).
    ledger_schema: String,
    /// What was not replayed (an expression outside the allowlist), for the summary.
    notes: Vec<String>,
    /// The columns of the table the last COPY of this transaction went into (its name),
    /// so the chunks of one part (`--on-error skip`) look them up once. Cleared when a
    /// transaction begins or ends.
    copy_columns: Option<(String, Vec<PgColumn>)>,
    /// The row of the last bulk load the target refused ([`Session::refused_row`]).
    refused_row: Option<u64>,
    /// `import --trust-expressions` (a bundle signed by a trusted key): expressions may call
    /// functions outside the allowlist ([`crate::expr::Scope::any_function`]).
    trust_expressions: bool,
}

impl PgTarget {
    pub fn open(url: &str, schema: Option<&str>) -> Result<Self> {
        let mut conn = connect(url)?;
        let (in_recovery, read_only): (bool, String) = runtime()
            .block_on(
                sqlx::query_as(
                    "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')",
                )
                .fetch_one(&mut conn),
            )
            .map_err(|e| pg_err("checking the target", e))?;
        if in_recovery || read_only == "on" {
            return Err(Error::Database(format!(
                "{} is read-only (a replica, or default_transaction_read_only): import needs a writable primary",
                crate::redact::display_url(url)
            )));
        }
        // A lock another session holds on a target table (an application's long
        // transaction) ends the part after this long, and is reported with its holder,
        // instead of an import that hangs.
        let lock_timeout = lock_timeout_secs()?;
        runtime()
            .block_on(
                // Settings a bundle's text must not depend on: string literals read one way
                // (a label's backslash is not an escape), and names resolve in the system
                // catalog first (ferry qualifies every name of its own).
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "SET lock_timeout = '{lock_timeout}s'; SET standard_conforming_strings = on; \
                     SET search_path = pg_catalog, public"
                )))
                .execute(&mut conn),
            )
            .map_err(|e| pg_err("setting lock_timeout", e))?;
        let ledger_schema = "public".to_string();
        Ok(PgTarget {
            conn,
            url: url.to_string(),
            schema_override: schema.map(str::to_string),
            ledger_schema,
            notes: Vec::new(),
            copy_columns: None,
            refused_row: None,
            trust_expressions: false,
        })
    }

    /// A lock timeout on `q`, with the sessions holding locks on it (pid, user,
    /// application, state, age, query), so the operator knows whom to ask.
    fn explain_lock(&mut self, e: Error, q: &str) -> Error {
        let Error::Locked(msg) = &e else {
            return e;
        };
        let holders: Option<String> = runtime()
            .block_on(
                sqlx::query_scalar(
                    "SELECT string_agg(DISTINCT format('pid %s (user %s, application %s, %s, transaction open %s): %s', \
                            a.pid, a.usename, coalesce(nullif(a.application_name, ''), '-'), a.state, \
                            date_trunc('second', now() - a.xact_start), left(a.query, 120)), '; ') \
                     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE l.relation = to_regclass($1) AND l.granted AND a.pid <> pg_backend_pid()",
                )
                .bind(q)
                .fetch_one(&mut self.conn),
            )
            .ok()
            .flatten();
        Error::Temporary(format!(
            "{msg}; {q} is locked by another session{}; the part was rolled back: re-run when the lock \
             is released (FERRY_LOCK_TIMEOUT sets the wait, now {}s)",
            holders.map(|h| format!(": {h}")).unwrap_or_default(),
            lock_timeout_secs().unwrap_or(60)
        ))
    }

    /// Runs one statement: the extended protocol takes exactly one, so text that came from
    /// a bundle can never carry a second.
    fn exec(&mut self, sql: &str) -> Result<()> {
        let done = if matches!(sql, "BEGIN" | "COMMIT" | "ROLLBACK") {
            // ferry's own constant words: a simple query (one round trip).
            runtime()
                .block_on(sqlx::raw_sql(AssertSqlSafe(sql.to_string())).execute(&mut self.conn))
        } else {
            runtime().block_on(sqlx::query(AssertSqlSafe(sql.to_string())).execute(&mut self.conn))
        };
        done.map(|_| ()).map_err(|e| pg_err(&first_line(sql), e))
    }

    /// Runs statements one at a time.
    fn exec_all(&mut self, statements: &[String]) -> Result<()> {
        statements.iter().try_for_each(|s| self.exec(s))
    }

    /// Whether `ty` names a type on this server (`to_regtype` with a bound parameter: the
    /// text is parsed as a type name and nothing else); text that does not parse as one
    /// does not resolve.
    fn resolves(&mut self, ty: &str) -> bool {
        runtime()
            .block_on(
                sqlx::query_scalar::<_, bool>("SELECT to_regtype($1) IS NOT NULL")
                    .bind(ty)
                    .fetch_one(&mut self.conn),
            )
            .unwrap_or(false)
    }

    fn ledger(&self) -> String {
        qualified(Some(self.ledger_schema()), LEDGER)
    }

    fn ledger_schema(&self) -> &str {
        &self.ledger_schema
    }

    /// The schema a bundle table goes to: `--target-schema`, else its own, else public.
    fn schema_for<'a>(&'a self, t: &'a TableDef) -> &'a str {
        self.schema_override
            .as_deref()
            .or(t.schema.as_deref())
            .unwrap_or("public")
    }

    fn table(&self, name: &str, t: &TableDef) -> String {
        qualified(Some(self.schema_for(t)), name)
    }

    fn exists(&mut self, q: &str) -> Result<bool> {
        let r: Option<String> = runtime()
            .block_on(
                sqlx::query_scalar("SELECT to_regclass($1)::text")
                    .bind(q)
                    .fetch_one(&mut self.conn),
            )
            .map_err(|e| pg_err("looking up a table", e))?;
        Ok(r.is_some())
    }

    /// `ONLY ` for a table with rows of its own (an inheritance parent's children are other
    /// tables); nothing for a partitioned table, whose rows are its partitions'.
    fn only(&mut self, q: &str) -> Result<&'static str> {
        let kind: Option<String> = runtime()
            .block_on(
                sqlx::query_scalar(
                    "SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)",
                )
                .bind(q)
                .fetch_optional(&mut self.conn),
            )
            .map_err(|e| pg_err("looking up a table", e))?;
        Ok(if kind.as_deref() == Some("p") {
            ""
        } else {
            "ONLY "
        })
    }

    fn type_exists(&mut self, schema: &str, name: &str) -> Result<bool> {
        runtime()
            .block_on(
                sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
                     WHERE n.nspname = $1 AND t.typname = $2)",
                )
                .bind(schema)
                .bind(name)
                .fetch_one(&mut self.conn),
            )
            .map_err(|e| pg_err("looking up a type", e))
    }

    /// Where this table's user-defined types go and how DDL names them (see [`TypePlace`]).
    fn type_place(&self, table: &TableDef) -> Result<TypePlace> {
        let mut place = TypePlace::new(self.schema_override.as_deref(), [table])?;
        place.any_function = self.trust_expressions;
        Ok(place)
    }

    /// Creates the user-defined types a same-engine table needs, in the catalog's order
    /// (dependencies first): in their original schemas, or all in `--target-schema` when
    /// it is given (see [`TypePlace`]); a type that exists is left as it is.
    fn ensure_types(&mut self, table: &TableDef) -> Result<()> {
        let place = self.type_place(table)?;
        for t in &bundle_types(table) {
            let (orig, name) = t.key();
            let schema = place.schema(orig);
            if self.type_exists(schema, name)? {
                continue;
            }
            let ddl = type_ddl(t, &place)?;
            // Every type the definition names (a domain's base, attributes, a subtype,
            // casts in its expressions) must be one on this server: asked by parameter.
            for ty in &ddl.types {
                if !self.resolves(ty) {
                    return Err(Error::Data(format!(
                        "type {schema}.{name}: {ty:?} is not a type on the target; create it \
                         (or the extension that has it) first"
                    )));
                }
            }
            let mut sql = ddl.sql;
            for (check, casts, note) in ddl.checks {
                if casts.iter().all(|ty| self.resolves(ty)) {
                    sql.push(' ');
                    sql.push_str(&check);
                } else {
                    self.notes.push(note);
                }
            }
            self.notes.extend(ddl.notes);
            self.exec_all(&[
                format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema)),
                sql,
            ])?;
        }
        Ok(())
    }

    /// Creates a table from the catalog when missing. A `staging` table (a replace's) is
    /// one plain table even when the source was partitioned.
    fn create_from_catalog(
        &mut self,
        name: &str,
        table: &TableDef,
        same_engine: bool,
        staging: bool,
    ) -> Result<()> {
        let q = self.table(name, table);
        if self.exists(&q)? {
            return Ok(());
        }
        if same_engine {
            self.ensure_types(table)?;
        }
        let place = self.type_place(table)?;
        let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
        let mut defs = Vec::new();
        for c in &table.columns {
            let mut ty = column_mapping(name, c, same_engine, &place)?.sql_type;
            if same_engine {
                let what = format!("table {name}, column {:?}", c.name);
                ty.push_str(&collate_ddl(&what, c.collation.as_deref())?);
            }
            let mut d = column_ddl(
                &c.name,
                &ty,
                c.nullable,
                (if same_engine {
                    c.default.clone()
                } else {
                    c.default.as_deref().and_then(|d| {
                        crate::expr::portable_default(d, crate::expr::Engine::Postgres, &c.ty)
                    })
                })
                .as_deref(),
                &place,
            );
            self.column_extras_ddl(name, table, c, same_engine, staging, &mut d)?;
            defs.push(d);
        }
        if !staging {
            for chk in &table.checks {
                let scope = crate::expr::Scope {
                    columns: &names,
                    value: false,
                    any_function: self.trust_expressions,
                };
                match crate::expr::rebuild(&chk.expr, crate::expr::Engine::Postgres, scope) {
                    Ok(c) if c.cast_types.iter().all(|ty| self.resolves(ty)) => {
                        defs.push(format!("CONSTRAINT {} CHECK ({})", quote(&chk.name), c.sql))
                    }
                    Ok(_) => self.notes.push(format!(
                        "not carried: CHECK {} on {name}: it casts to a type the target lacks",
                        chk.name
                    )),
                    Err(why) => self.notes.push(format!(
                        "not carried: CHECK {} on {name}: it {why}",
                        chk.name
                    )),
                }
            }
        }
        let parts = table
            .partitioning
            .as_ref()
            .filter(|_| same_engine && !staging);
        let mut create = format!("CREATE TABLE {q} (\n  {}\n)", defs.join(",\n  "));
        let mut after = Vec::new();
        if let Some(p) = parts {
            self.partitions_ddl(name, table, &q, p, &mut create, &mut after)?;
        }
        let mut statements = vec![
            format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                quote(self.schema_for(table))
            ),
            create,
        ];
        statements.extend(after);
        self.exec_all(&statements)
    }

    /// What a column definition adds for the catalog's identity, generation expression and
    /// a non-constant default (rebuilt through the expression rules; one outside them is
    /// named in the notes). A staging table gets none of them: it holds the bundle's values.
    fn column_extras_ddl(
        &mut self,
        name: &str,
        table: &TableDef,
        c: &crate::types::Column,
        same_engine: bool,
        staging: bool,
        d: &mut String,
    ) -> Result<()> {
        use crate::expr::{Engine, Scope, rebuild};
        use crate::types::IdentityKind;
        let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
        let scope = Scope {
            columns: &names,
            value: false,
            any_function: self.trust_expressions,
        };
        if let Some(g) = &c.generated {
            // Only a same-engine bundle keeps it (import strips it otherwise).
            let e = rebuild(&g.expr, Engine::Postgres, scope).map_err(|why| {
                Error::Data(format!(
                    "table {name}, generated column {:?}: its expression {why}; ferry does not create it",
                    c.name
                ))
            })?;
            d.push_str(&format!(" GENERATED ALWAYS AS ({}) STORED", e.sql));
            return Ok(());
        }
        if staging {
            return Ok(());
        }
        if let Some(id) = c.identity {
            // An unsigned 64-bit integer is numeric here, which cannot be an identity.
            let integer = c.ty.is_integer() && c.ty != ColumnType::UInt64;
            if !integer {
                self.notes.push(format!(
                    "not carried: the counter of {name}.{}: its type {} cannot be an identity column here",
                    c.name,
                    c.ty.describe()
                ));
                return Ok(());
            }
            // `serial` recreated as `serial` on a same engine: the column's own sequence
            // as its default. Any other counter becomes an identity column.
            let words = match id.kind {
                IdentityKind::Always if same_engine => " GENERATED ALWAYS AS IDENTITY",
                IdentityKind::Serial if same_engine => {
                    let serial = match c.ty {
                        ColumnType::Int16 => "smallserial",
                        ColumnType::Int64 => "bigserial",
                        _ => "serial",
                    };
                    // `"c" integer NOT NULL` becomes `"c" serial NOT NULL`.
                    let head = format!("{} ", quote(&c.name));
                    let rest = if c.nullable { "" } else { " NOT NULL" };
                    *d = format!("{head}{serial}{rest}");
                    return Ok(());
                }
                _ => " GENERATED BY DEFAULT AS IDENTITY",
            };
            d.push_str(words);
            return Ok(());
        }
        if !same_engine {
            return Ok(());
        }
        if let Some(def) = c.default.as_deref()
            && crate::engines::postgres::reader::constant_default(def).is_none()
        {
            match rebuild(def, Engine::Postgres, scope) {
                Ok(e) if e.cast_types.iter().all(|ty| self.resolves(ty)) => {
                    d.push_str(&format!(" DEFAULT {}", e.sql));
                }
                Ok(_) => self.notes.push(format!(
                    "not carried: DEFAULT of {name}.{}: it casts to a type the target lacks",
                    c.name
                )),
                Err(why) => self.notes.push(format!(
                    "not carried: DEFAULT of {name}.{}: it {why}",
                    c.name
                )),
            }
        }
        Ok(())
    }

    /// Moves every counter of the table's columns (identity, serial, a sequence the column
    /// owns) past the largest value now in the column, never backwards: the application's
    /// next insert gets a new key.
    fn advance_sequences(&mut self, q: &str) -> Result<()> {
        let rows: Vec<(String, String)> = runtime()
            .block_on(
                sqlx::query_as(
                    "SELECT a.attname::text, pg_get_serial_sequence($1, a.attname::text) \
                     FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 \
                       AND NOT a.attisdropped AND pg_get_serial_sequence($1, a.attname::text) IS NOT NULL",
                )
                .bind(q)
                .fetch_all(&mut self.conn),
            )
            .map_err(|e| pg_err("looking up the table's sequences", e))?;
        for (col, seq) in rows {
            // The sequence's name comes from the server; it is bound, never spliced.
            runtime()
                .block_on(
                    sqlx::query(AssertSqlSafe(format!(
                        "SELECT setval($1::regclass, m) FROM (SELECT max({})::int8 AS m FROM {q}) s \
                         WHERE m IS NOT NULL AND m > coalesce(pg_sequence_last_value($1::regclass), 0)",
                        quote(&col)
                    )))
                    .bind(&seq)
                    .execute(&mut self.conn),
                )
                .map_err(|e| pg_err(&format!("advancing {seq} past the loaded rows"), e))?;
        }
        Ok(())
    }

    /// `PARTITION BY` for the table being made (appended to `create`), then into `after`
    /// each partition: made as a table of its own (its own column order, NOT NULLs and
    /// defaults, the types of the parent's columns), partitioned in turn when it was, and
    /// attached with its bound. Key and bounds are parsed and rebuilt from their columns,
    /// names and constants ([`crate::expr`]), never spliced. Partitions keep their names
    /// and schemas (or go to --target-schema with the table). Bundles of ferry 0.1 record
    /// no partition columns: those partitions are made `PARTITION OF`.
    fn partitions_ddl(
        &self,
        name: &str,
        table: &TableDef,
        parent: &str,
        p: &Partitioning,
        create: &mut String,
        after: &mut Vec<String>,
    ) -> Result<()> {
        let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
        let place = self.type_place(table)?;
        let key = crate::expr::partition_key(&p.key, &names).map_err(|why| {
            Error::Data(format!(
                "table {name}: its partition key {:?} {why}; ferry does not create it",
                p.key
            ))
        })?;
        create.push_str(&format!(" PARTITION BY {key}"));
        for part in &p.partitions {
            let bound = crate::expr::partition_bound(&part.bound).map_err(|why| {
                Error::Data(format!(
                    "table {name}: the bound of partition {:?} {why}; ferry does not create it",
                    part.name
                ))
            })?;
            let schema = self.schema_override.as_deref().unwrap_or(&part.schema);
            let pq = qualified(Some(schema), &part.name);
            after.push(format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema)));
            if part.columns.is_empty() {
                if part.partitioning.is_some() {
                    return Err(Error::Data(format!(
                        "table {name}: partition {} is partitioned but the bundle lists none of its columns",
                        part.name
                    )));
                }
                after.push(format!("CREATE TABLE {pq} PARTITION OF {parent} {bound}"));
                continue;
            }
            let mut defs = Vec::new();
            for c in &part.columns {
                let col = table
                    .columns
                    .iter()
                    .find(|x| x.name == c.name)
                    .ok_or_else(|| {
                        Error::Data(format!(
                            "table {name}: partition {} has a column {:?} the table does not",
                            part.name, c.name
                        ))
                    })?;
                let what = format!("table {name}, column {:?}", c.name);
                let ty = format!(
                    "{}{}",
                    checked_type(&what, &col.source_type, &place)?,
                    collate_ddl(&what, col.collation.as_deref())?
                );
                defs.push(column_ddl(
                    &c.name,
                    &ty,
                    c.nullable,
                    c.default.as_deref(),
                    &place,
                ));
            }
            let mut sub_create = format!("CREATE TABLE {pq} (\n  {}\n)", defs.join(",\n  "));
            let mut sub_after = Vec::new();
            if let Some(sub) = &part.partitioning {
                self.partitions_ddl(name, table, &pq, sub, &mut sub_create, &mut sub_after)?;
            }
            after.push(sub_create);
            after.extend(sub_after);
            after.push(format!(
                "ALTER TABLE {parent} ATTACH PARTITION {pq} {bound}"
            ));
        }
        Ok(())
    }

    /// Creates an index (or UNIQUE constraint) of the catalog on `q` unless it exists.
    fn create_index(&mut self, q: &str, iname: &str, idx: &Index) -> Result<()> {
        if idx.constraint {
            let exists: bool = runtime()
                .block_on(
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2)")
                        .bind(q)
                        .bind(iname)
                        .fetch_one(&mut self.conn),
                )
                .map_err(|e| pg_err("looking up a unique constraint", e))?;
            if !exists {
                let cols: Vec<String> = idx.columns.iter().map(|c| quote(c)).collect();
                self.exec(&format!(
                    "ALTER TABLE {q} ADD CONSTRAINT {} UNIQUE ({}){}{}",
                    quote(iname),
                    cols.join(", "),
                    include_ddl(&idx.include),
                    storage_ddl(idx)?
                ))?;
            }
            return Ok(());
        }
        self.exec(&format!(
            "CREATE {}INDEX IF NOT EXISTS {} ON {q}{} ({}){}{}",
            if idx.unique { "UNIQUE " } else { "" },
            quote(iname),
            idx.method
                .as_deref()
                .map(|m| format!(" USING {}", quote(m)))
                .unwrap_or_default(),
            index_keys(idx)?,
            include_ddl(&idx.include),
            storage_ddl(idx)?
        ))
    }

    fn oid(&mut self, q: &str) -> Result<u32> {
        let oid: i64 = runtime()
            .block_on(
                sqlx::query_scalar("SELECT $1::regclass::oid::int8")
                    .bind(q)
                    .fetch_one(&mut self.conn),
            )
            .map_err(|e| pg_err(&format!("looking up {q}"), e))?;
        u32::try_from(oid).map_err(|_| Error::Database(format!("odd OID for {q}")))
    }

    /// Adds the catalog's primary key to a table that has none yet.
    fn ensure_pk(&mut self, q: &str, name: &str, table: &TableDef) -> Result<()> {
        if table.primary_key.is_empty() {
            return Ok(());
        }
        let has_pk: bool = runtime()
            .block_on(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = $1::regclass AND indisprimary)").bind(q).fetch_one(&mut self.conn))
            .map_err(|e| pg_err("looking up the primary key", e))?;
        if !has_pk {
            let cols: Vec<String> = table.primary_key.iter().map(|c| quote(c)).collect();
            // The constraint keeps its name unless the table was renamed (a name is unique
            // per schema: the original may be taken by the original table).
            let constraint = match &table.primary_key_name {
                Some(n) if name == table.name => format!("CONSTRAINT {} ", quote(n)),
                _ => String::new(),
            };
            self.exec(&format!(
                "ALTER TABLE {q} ADD {constraint}PRIMARY KEY ({}){}",
                cols.join(", "),
                include_ddl(&table.primary_key_include)
            ))?;
        }
        Ok(())
    }

    /// Upsert: the part goes by COPY into a temporary table, then `INSERT … SELECT … ON
    /// CONFLICT (pk) DO UPDATE` into the table; the rows it inserted are those whose new
    /// version has no deleting transaction (`xmax = 0`), the others updated a row (which a
    /// `DO NOTHING`, when every column is in the key, leaves as it was).
    fn upsert_in(
        &mut self,
        name: &str,
        table: &TableDef,
        batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
        part: &str,
    ) -> Result<Written> {
        let q = self.table(name, table);
        // ON CONFLICT needs the key: a table ferry just made gets it now, not after the data.
        self.ensure_pk(&q, name, table)?;
        let tmp = quote(&format!(
            "_ferry_upsert_{}",
            &crate::bundle::layout::new_bundle_id()[..12]
        ));
        let cols: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
        let cols = cols.join(", ");
        self.exec(&format!(
            "CREATE TEMP TABLE {tmp} ON COMMIT DROP AS SELECT {cols} FROM {q} WITH NO DATA"
        ))?;
        let rows = self.copy_in(name, table, batches, part, Some(&tmp))?;
        let pk: Vec<String> = table.primary_key.iter().map(|c| quote(c)).collect();
        let set: Vec<String> = table
            .columns
            .iter()
            .filter(|c| !table.primary_key.contains(&c.name))
            .map(|c| format!("{0} = EXCLUDED.{0}", quote(&c.name)))
            .collect();
        let action = if set.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", set.join(", "))
        };
        let upsert = format!(
            "INSERT INTO {q} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM {tmp} ON CONFLICT ({}) {action}",
            pk.join(", ")
        );
        // A partitioned table has no system columns to return: there the keys it already
        // holds are counted first, in this transaction (exact unless another session
        // inserts the same keys meanwhile).
        let inserted: i64 = if self.only(&q)?.is_empty() {
            let same: Vec<String> = pk.iter().map(|k| format!("t.{k} = s.{k}")).collect();
            let existing: i64 = runtime()
                .block_on(
                    sqlx::query_scalar(AssertSqlSafe(format!(
                        "SELECT count(*) FROM {tmp} s WHERE EXISTS (SELECT 1 FROM {q} t WHERE {})",
                        same.join(" AND ")
                    )))
                    .fetch_one(&mut self.conn),
                )
                .map_err(|e| pg_err(&format!("counting the keys {q} holds"), e))?;
            runtime()
                .block_on(sqlx::query(AssertSqlSafe(upsert)).execute(&mut self.conn))
                .map_err(|e| rejected(&q, part, e))?;
            i64::try_from(rows).unwrap_or(i64::MAX) - existing
        } else {
            runtime()
                .block_on(
                    sqlx::query_scalar(AssertSqlSafe(format!(
                        "WITH up AS ({upsert} RETURNING (xmax = 0) AS inserted) \
                         SELECT count(*) FILTER (WHERE inserted) FROM up"
                    )))
                    .fetch_one(&mut self.conn),
                )
                .map_err(|e| rejected(&q, part, e))?
        };
        // Many chunks of one part (--on-error skip) each make one: none waits for COMMIT.
        self.exec(&format!("DROP TABLE {tmp}"))?;
        let inserted = u64::try_from(inserted).unwrap_or(0).min(rows);
        Ok(Written {
            rows,
            updated: Some(rows - inserted),
        })
    }

    /// Copies one part's batches in (into `dest` when given, a table with the same columns
    /// as `name`); returns the row count the server reports.
    fn copy_in(
        &mut self,
        name: &str,
        table: &TableDef,
        batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
        part: &str,
        dest: Option<&str>,
    ) -> Result<u64> {
        let q = self.table(name, table);
        let target_cols: Vec<PgColumn> = match &self.copy_columns {
            Some((table, cols)) if *table == q => cols.clone(),
            _ => {
                let oid = self.oid(&q)?;
                let cols = columns_of(&mut self.conn, oid)?;
                self.copy_columns = Some((q.clone(), cols.clone()));
                cols
            }
        };
        let mut wires = Vec::new();
        let mut as_text = Vec::new();
        for c in &table.columns {
            let tc = target_cols
                .iter()
                .find(|t| t.name == c.name)
                .ok_or_else(|| {
                    Error::Data(format!(
                        "table {q} has no column {:?}, which the bundle carries",
                        c.name
                    ))
                })?;
            let (w, ty, text) = map_column(tc);
            let target_is_list = matches!(ty, ColumnType::List { .. });
            let elem_or_self = match ty {
                ColumnType::List { element } => *element,
                t => t,
            };
            // A bundle column of text (a value carried as its text form, e.g. after a
            // hop through SQLite with --as-text) into a typed column: through the type's
            // input function, like the other text-carried columns.
            let text_into_typed = c.ty == ColumnType::Utf8
                && (target_is_list
                    || !matches!(
                        elem_or_self,
                        ColumnType::Utf8 | ColumnType::NumericText | ColumnType::Json
                    ))
                && !matches!(w, Wire::Text);
            let text = text || c.as_text || text_into_typed;
            as_text.push(text);
            wires.push(if text {
                (Wire::Text, ColumnType::Utf8)
            } else {
                (w, elem_or_self)
            });
        }
        let staged = as_text.iter().any(|t| *t);
        let cols: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
        // Text-carried columns go through a temporary table and the types' input functions.
        let copy_target = if staged {
            let stage = quote(&format!(
                "_ferry_stage_{}",
                &crate::bundle::layout::new_bundle_id()[..12]
            ));
            let sel: Vec<String> = table
                .columns
                .iter()
                .zip(&as_text)
                .map(|(c, t)| {
                    if *t {
                        format!("{}::text AS {}", quote(&c.name), quote(&c.name))
                    } else {
                        quote(&c.name)
                    }
                })
                .collect();
            self.exec(&format!(
                "CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {} FROM {q} WITH NO DATA",
                sel.join(", ")
            ))?;
            stage
        } else {
            dest.unwrap_or(&q).to_string()
        };
        let data_err = |e: crate::engines::postgres::pgcopy::CodecError| {
            let col = e
                .column
                .and_then(|i| table.columns.get(i))
                .map(|c| format!(", column {:?}", c.name))
                .unwrap_or_default();
            Error::RowRefused(format!(
                "table {q}{col}, row {} of part {part}: {}; nothing from this part was committed",
                e.row, e.message
            ))
        };
        let mut enc = CopyEncoder::new(wires).map_err(data_err)?;
        let sql = format!(
            "COPY {copy_target}{} FROM STDIN (FORMAT binary)",
            column_list(&cols)
        );
        // Batches are pulled outside the runtime (reading a part does its own blocking I/O);
        // only the sends are driven by it.
        let rt = runtime();
        let mut copy = rt
            .block_on(self.conn.copy_in_raw(&sql))
            .map_err(|e| pg_err(&format!("COPY {q} FROM STDIN"), e))?;
        let mut buf = Vec::with_capacity(SEND_CHUNK + SEND_CHUNK / 4);
        CopyEncoder::header(&mut buf);
        let mut row = 0u64;
        let mut failure = None;
        for batch in &mut *batches {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            if let Err(e) = enc.encode(&batch, row + 1, &mut buf) {
                self.refused_row = Some(e.row);
                failure = Some(data_err(e));
                break;
            }
            row += batch.num_rows() as u64;
            if buf.len() >= SEND_CHUNK {
                if let Err(e) = rt.block_on(copy.send(std::mem::take(&mut buf))) {
                    failure = Some(pg_err(&format!("COPY into {q}"), e));
                    break;
                }
                buf.reserve(SEND_CHUNK + SEND_CHUNK / 4);
            }
        }
        if let Some(e) = failure {
            let _ = rt.block_on(copy.abort("ferry: the part failed before all its rows were sent"));
            return Err(e);
        }
        CopyEncoder::trailer(&mut buf);
        rt.block_on(copy.send(buf))
            .map_err(|e| pg_err(&format!("COPY into {q}"), e))?;
        let rows = match rt.block_on(copy.finish()) {
            Ok(rows) => rows,
            Err(e) => {
                self.refused_row = refused_line(&e);
                return Err(rejected(&q, part, e));
            }
        };
        if staged {
            let sel: Vec<String> = table
                .columns
                .iter()
                .zip(&as_text)
                .map(|(c, t)| {
                    let tc = target_cols
                        .iter()
                        .find(|x| x.name == c.name)
                        .map(|x| x.format_type.clone())
                        .unwrap_or_default();
                    if *t {
                        format!("{}::{tc}", quote(&c.name))
                    } else {
                        quote(&c.name)
                    }
                })
                .collect();
            // A text value its type's input function refuses is a refused row.
            runtime()
                .block_on(
                    sqlx::query(AssertSqlSafe(format!(
                        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {copy_target}",
                        dest.unwrap_or(&q),
                        cols.join(", "),
                        sel.join(", ")
                    )))
                    .execute(&mut self.conn),
                )
                .map_err(|e| rejected(&q, part, e))?;
            self.exec(&format!("DROP TABLE {copy_target}"))?;
        }
        Ok(rows)
    }
}

/// One column of a CREATE TABLE: name, type (already checked), NOT NULL, and a default
/// when it is a constant ferry recreates (its cast to one of the bundle's types naming the
/// type where `place` puts it).
fn column_ddl(
    name: &str,
    ty: &str,
    nullable: bool,
    default: Option<&str>,
    place: &TypePlace,
) -> String {
    let mut d = format!("{} {ty}", quote(name));
    if !nullable {
        d.push_str(" NOT NULL");
    }
    use crate::engines::postgres::reader::constant_default;
    if default == Some("CURRENT_TIMESTAMP") {
        d.push_str(" DEFAULT CURRENT_TIMESTAMP");
    } else if let Some(def) = default
        .and_then(constant_default)
        .map(|x| place.in_default(&x))
        .and_then(|x| constant_default(&x))
    {
        d.push_str(&format!(" DEFAULT {def}"));
    }
    d
}

/// The key list of an index: each column with its operator class and order.
fn index_keys(idx: &Index) -> Result<String> {
    let mut keys = Vec::new();
    for (i, c) in idx.columns.iter().enumerate() {
        let mut k = quote(c);
        if let Some(Some(opc)) = idx.opclasses.get(i) {
            if !QUOTED_PAIR.is_match(opc) {
                return Err(Error::Data(format!(
                    "index {}: operator class {opc:?} is not one ferry will put into DDL",
                    idx.name
                )));
            }
            k.push(' ');
            k.push_str(opc);
        }
        if let Some(o) = idx.orders.get(i) {
            match (o.desc, o.nulls_first) {
                (false, false) => {}
                (false, true) => k.push_str(" NULLS FIRST"),
                (true, true) => k.push_str(" DESC"),
                (true, false) => k.push_str(" DESC NULLS LAST"),
            }
        }
        keys.push(k);
    }
    Ok(keys.join(", "))
}

/// ` COLLATE "schema"."name"`, or nothing; the name is checked to be two quoted identifiers.
fn collate_ddl(what: &str, collation: Option<&str>) -> Result<String> {
    match collation {
        None => Ok(String::new()),
        Some(c) if QUOTED_PAIR.is_match(c) => Ok(format!(" COLLATE {c}")),
        Some(c) => Err(Error::Data(format!(
            "{what}: collation {c:?} is not one ferry will put into DDL"
        ))),
    }
}

/// ` (a, b)`, or nothing for a table without columns (PostgreSQL takes no empty list).
fn column_list(cols: &[String]) -> String {
    if cols.is_empty() {
        String::new()
    } else {
        format!(" ({})", cols.join(", "))
    }
}

/// ` WITH (name = 'value', …)` for an index's storage parameters, or nothing. Names are
/// checked to be plain identifiers; values go in as quoted literals.
fn storage_ddl(idx: &Index) -> Result<String> {
    if idx.options.is_empty() {
        return Ok(String::new());
    }
    let mut opts = Vec::new();
    for (k, v) in &idx.options {
        if !k.chars().all(|c| c.is_ascii_lowercase() || c == '_') || k.is_empty() || k.len() > 63 {
            return Err(Error::Data(format!(
                "index {}: storage parameter {k:?} is not one ferry will put into DDL",
                idx.name
            )));
        }
        opts.push(format!("{k} = '{}'", v.replace('\'', "''")));
    }
    Ok(format!(" WITH ({})", opts.join(", ")))
}

/// ` INCLUDE (…)` or nothing.
fn include_ddl(cols: &[String]) -> String {
    if cols.is_empty() {
        String::new()
    } else {
        let c: Vec<String> = cols.iter().map(|c| quote(c)).collect();
        format!(" INCLUDE ({})", c.join(", "))
    }
}

/// A type name ferry puts into DDL, as `format_type` printed it on the source: checked,
/// then named where `place` puts it when it is one of the bundle's own types. Every type
/// reference of the DDL ferry writes (a column's, a domain's base, a composite's
/// attribute, a range's subtype, arrays of any) goes through here.
fn checked_type(what: &str, ty: &str, place: &TypePlace) -> Result<String> {
    if !FORMAT_TYPE.is_match(ty) || ty.contains("--") {
        return Err(Error::Data(format!(
            "{what}: type {ty:?} is not one ferry will put into DDL"
        )));
    }
    Ok(place.name(ty))
}

/// The user-defined types a table needs: the catalog's list (dependencies first), then
/// those bundles of ferry 0.1 name on their columns (enums and domains only).
fn bundle_types(table: &TableDef) -> Vec<UserType> {
    let legacy = table.columns.iter().flat_map(|c| {
        let e = c.enum_type.clone().map(UserType::Enum);
        let d = c.domain_type.clone().map(UserType::Domain);
        e.into_iter().chain(d)
    });
    table.user_types.iter().cloned().chain(legacy).collect()
}

/// Where a bundle's user-defined types are created, and how DDL names them. Without
/// `--target-schema` each goes to its own schema and keeps its name. With it, every one
/// goes to the target schema, so a bundle writes nowhere else: each reference to one of
/// them is rewritten from `orig.name` to `target.name`. Two types of different schemas
/// that would land on one name are refused. Type names the bundle does not define (the
/// system's, an extension's) are left as they are.
#[derive(Debug)]
struct TypePlace {
    target: Option<String>,
    /// `--trust-expressions` on a trusted signed bundle ([`crate::expr::Scope::any_function`]).
    any_function: bool,
    /// `(schema, name)` of each of the bundle's types, once.
    types: Vec<(String, String)>,
}

impl TypePlace {
    fn new<'a>(
        target: Option<&str>,
        tables: impl IntoIterator<Item = &'a TableDef>,
    ) -> Result<Self> {
        let mut types: Vec<(String, String)> = Vec::new();
        for t in tables {
            for u in bundle_types(t) {
                let (s, n) = u.key();
                // A range comes with its multirange type, named or derived.
                let multi = match &u {
                    UserType::Range {
                        multirange: Some((ms, mn)),
                        ..
                    } => Some((ms.clone(), mn.clone())),
                    UserType::Range { .. } => Some((s.to_string(), default_multirange_name(n))),
                    _ => None,
                };
                for key in std::iter::once((s.to_string(), n.to_string())).chain(multi) {
                    if !types.contains(&key) {
                        types.push(key);
                    }
                }
            }
        }
        if let Some(target) = target {
            for (i, (s, n)) in types.iter().enumerate() {
                if let Some((s2, _)) = types[..i].iter().find(|(s2, n2)| n2 == n && s2 != s) {
                    return Err(Error::Data(format!(
                        "--target-schema {target} would put two of the bundle's types in one \
                         place: {s2}.{n} and {s}.{n} would both be {target}.{n}; ferry does not \
                         merge types: import without --target-schema, or leave out the tables \
                         that use one of them with --exclude"
                    )));
                }
            }
        }
        Ok(TypePlace {
            target: target.map(str::to_string),
            any_function: false,
            types,
        })
    }

    /// The schema a type of the bundle from schema `orig` is created in.
    fn schema<'a>(&'a self, orig: &'a str) -> &'a str {
        self.target.as_deref().unwrap_or(orig)
    }

    /// `(target schema, name, rest)` when `ty` names one of the bundle's types that
    /// `--target-schema` moves to another schema.
    fn moved<'t>(&self, ty: &'t str) -> Option<(&str, String, &'t str)> {
        let target = self.target.as_deref()?;
        let (s, n, rest) = split_type_name(ty)?;
        (s != target && self.types.iter().any(|(a, b)| *a == s && *b == n))
            .then_some((target, n, rest))
    }

    /// A type name as DDL writes it: one of the bundle's types moved by `--target-schema`
    /// becomes `"target"."name"` (with its `[]`); anything else stays as it is.
    fn name(&self, ty: &str) -> String {
        match self.moved(ty) {
            Some((target, n, rest)) => format!("{}{rest}", qualified(Some(target), &n)),
            None => ty.to_string(),
        }
    }

    /// A constant default (`'a'::evil.mood`, see `constant_default`) with its cast naming
    /// the type where it goes.
    fn in_default(&self, def: &str) -> String {
        // The literal comes first (a quoted one may hold `::`), then `::type`.
        let end = if def.starts_with('\'') {
            let b = def.as_bytes();
            let mut i = 1;
            while i < b.len() {
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            (i + 1).min(def.len())
        } else {
            def.find("::").unwrap_or(def.len())
        };
        match def[end..].strip_prefix("::") {
            Some(ty) => format!("{}::{}", &def[..end], self.name(ty)),
            None => def.to_string(),
        }
    }
}

/// The multirange name PostgreSQL derives from a range's (`textrange` → `textmultirange`,
/// `floatrange_r` → `floatrange_r_multirange`), as the PostgreSQL reader does.
fn default_multirange_name(range: &str) -> String {
    match range.find("range") {
        Some(i) => format!("{}multirange{}", &range[..i], &range[i + 5..]),
        None => format!("{range}_multirange"),
    }
}

/// `(schema, name, rest)` of a schema-qualified type name as `format_type` prints one
/// (`evil.mood`, `"Evil"."Mood"[]`): two names, quoted or plain (plain ones folded to
/// lower case, as the server does), a dot between, then nothing but `[]`s.
fn split_type_name(ty: &str) -> Option<(String, String, &str)> {
    fn ident(s: &str) -> Option<(String, &str)> {
        if let Some(inner) = s.strip_prefix('"') {
            let mut out = String::new();
            let mut it = inner.char_indices();
            while let Some((i, c)) = it.next() {
                if c != '"' {
                    out.push(c);
                } else if inner[i + 1..].starts_with('"') {
                    out.push('"');
                    it.next();
                } else {
                    return (!out.is_empty()).then(|| (out, &inner[i + 1..]));
                }
            }
            return None;
        }
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(s.len());
        let word = &s[..end];
        if word.is_empty() || word.starts_with(|c: char| c.is_ascii_digit() || c == '$') {
            return None;
        }
        Some((word.to_ascii_lowercase(), &s[end..]))
    }
    let (schema, rest) = ident(ty)?;
    let (name, rest) = ident(rest.strip_prefix('.')?)?;
    let mut tail = rest;
    while let Some(t) = tail.strip_prefix("[]") {
        tail = t;
    }
    tail.is_empty().then_some((schema, name, rest))
}

/// A user-defined type's DDL, built from the catalog: the statement, the type names it
/// names (the loader checks each resolves), domain CHECKs to append when their casts
/// resolve (with the note to give when they do not), and what was not replayed.
struct TypeDdl {
    sql: String,
    types: Vec<String>,
    checks: Vec<(String, Vec<String>, String)>,
    notes: Vec<String>,
}

/// `CREATE TYPE` / `CREATE DOMAIN` for a user-defined type of the catalog. Expressions (a
/// domain's default and CHECKs) are parsed and rebuilt ([`crate::expr`]); one that holds
/// anything outside the allowlist is left out and named in `notes`.
fn type_ddl(t: &UserType, place: &TypePlace) -> Result<TypeDdl> {
    use crate::expr::{Engine, Scope, rebuild, rebuild_check};
    let (orig, name) = t.key();
    let schema = place.schema(orig);
    let q = qualified(Some(schema), name);
    let mut types = Vec::new();
    let mut checks = Vec::new();
    let mut notes = Vec::new();
    let sql = match t {
        UserType::Enum(e) => {
            let labels: Vec<String> = e
                .labels
                .iter()
                .map(|l| crate::expr::quote_literal(l))
                .collect();
            format!("CREATE TYPE {q} AS ENUM ({})", labels.join(", "))
        }
        UserType::Domain(d) => {
            let base = checked_type(&format!("domain {schema}.{name}"), &d.base, place)?;
            types.push(base.clone());
            let mut sql = format!("CREATE DOMAIN {q} AS {base}");
            if let Some(def) = &d.default {
                // A constant with a cast (an enum domain's `'a'::evil.mood`) names the
                // type where it goes; the text is checked and rebuilt all the same.
                let def = match crate::engines::postgres::reader::constant_default(def) {
                    Some(c) => place.in_default(&c),
                    None => def.clone(),
                };
                let scope = Scope {
                    any_function: place.any_function,
                    ..Scope::default()
                };
                match rebuild(&def, Engine::Postgres, scope) {
                    // A cast to a type --target-schema moved still names its old place.
                    Ok(c) if c.cast_types.iter().any(|ty| place.moved(ty).is_some()) => {
                        notes.push(moved_note("DEFAULT of", schema, name, place));
                    }
                    Ok(c) => {
                        types.extend(c.cast_types);
                        sql.push_str(&format!(" DEFAULT {}", c.sql));
                    }
                    Err(why) => notes.push(format!(
                        "not carried: DEFAULT of domain {schema}.{name}: it {why}"
                    )),
                }
            }
            if d.not_null {
                sql.push_str(" NOT NULL");
            }
            let scope = Scope {
                columns: &[],
                value: true,
                any_function: place.any_function,
            };
            for chk in &d.checks {
                match rebuild_check(chk, Engine::Postgres, scope) {
                    Ok(c) if c.cast_types.iter().any(|ty| place.moved(ty).is_some()) => {
                        notes.push(moved_note("a CHECK on", schema, name, place));
                    }
                    Ok(c) => checks.push((
                        c.sql,
                        c.cast_types,
                        format!(
                            "not carried: a CHECK on domain {schema}.{name}: it casts to a type \
                             the target lacks"
                        ),
                    )),
                    Err(why) => notes.push(format!(
                        "not carried: a CHECK on domain {schema}.{name}: it {why}"
                    )),
                }
            }
            sql
        }
        UserType::Composite { attributes, .. } => {
            let attrs = attributes
                .iter()
                .map(|a| {
                    let what = format!("type {schema}.{name}, attribute {:?}", a.name);
                    let ty = checked_type(&what, &a.ty, place)?;
                    types.push(ty.clone());
                    Ok(format!(
                        "{} {ty}{}",
                        quote(&a.name),
                        collate_ddl(&what, a.collation.as_deref())?
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            format!("CREATE TYPE {q} AS ({})", attrs.join(", "))
        }
        UserType::Range {
            subtype,
            subtype_opclass,
            collation,
            multirange,
            subtype_diff,
            ..
        } => {
            let sub = checked_type(&format!("range type {schema}.{name}"), subtype, place)?;
            types.push(sub.clone());
            let mut sql = format!("CREATE TYPE {q} AS RANGE (subtype = {sub}");
            // Operator class, collation and function names were quoted by the reader;
            // check that they are exactly two quoted identifiers before they go into DDL.
            for (k, v) in [
                ("subtype_opclass", subtype_opclass),
                ("collation", collation),
                ("subtype_diff", subtype_diff),
            ] {
                if let Some(v) = v {
                    if !QUOTED_PAIR.is_match(v) {
                        return Err(Error::Data(format!(
                            "range type {schema}.{name}: {k} {v:?} is not one ferry will put into DDL"
                        )));
                    }
                    sql.push_str(&format!(", {k} = {v}"));
                }
            }
            if let Some((ms, mn)) = multirange {
                sql.push_str(&format!(
                    ", multirange_type_name = {}",
                    qualified(Some(place.schema(ms)), mn)
                ));
            }
            sql.push(')');
            sql
        }
    };
    Ok(TypeDdl {
        sql,
        types,
        checks,
        notes,
    })
}

/// What is said of a domain's DEFAULT or CHECK left out because it casts to one of the
/// bundle's types that `--target-schema` moved (its text is not rewritten).
fn moved_note(what: &str, schema: &str, name: &str, place: &TypePlace) -> String {
    format!(
        "not carried: {what} domain {schema}.{name}: it casts to a type of the bundle that \
         --target-schema {} moved",
        place.target.as_deref().unwrap_or_default()
    )
}

/// The two names of a `"schema"."name"` the reader wrote, unquoted.
fn unquote_pair(s: &str) -> Option<(String, String)> {
    if !QUOTED_PAIR.is_match(s) {
        return None;
    }
    // The separator is the one `"."` outside a name: inside one, quotes come doubled.
    let inner = &s[1..s.len() - 1];
    let mut i = 0;
    let b = inner.as_bytes();
    while i + 2 < b.len() {
        if b[i] == b'"' && b[i + 1] == b'"' {
            i += 2;
            continue;
        }
        if b[i] == b'"' && b[i + 1] == b'.' && b[i + 2] == b'"' {
            let (a, z) = (&inner[..i], &inner[i + 3..]);
            return Some((a.replace("\"\"", "\""), z.replace("\"\"", "\"")));
        }
        i += 1;
    }
    None
}

/// `"schema"."name"` with quotes doubled inside each part, as the reader writes them.
static QUOTED_PAIR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"^"([^"]|"")+"\."([^"]|"")+"$"#).expect("regex"));

/// A load error: a row the server refused (data exception, constraint: SQLSTATE classes
/// 22 and 23, and only those) is a refused row naming the table, the row of the part
/// (from COPY's "line N") and the server's message; anything else is a database error
/// (temporary when the connection went away).
fn rejected(q: &str, part: &str, e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(d) = &e
        && let Some(pg) = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        && (pg.code().starts_with("22") || pg.code().starts_with("23"))
    {
        let row = refused_line(&e);
        let column = pg
            .r#where()
            .and_then(|w| w.split_once(", column ").map(|(_, c)| c))
            .map(|c| format!(" (column {})", c.split(':').next().unwrap_or(c)))
            .unwrap_or_default();
        return Error::RowRefused(format!(
            "table {q}, {} of part {part}: the target refused a row: {}{}{column}; nothing from this part was \
             committed",
            row.map_or_else(|| "a row".to_string(), |n| format!("row {n}")),
            pg.message(),
            shown_detail(pg),
        ));
    }
    pg_err(&format!("COPY into {q}, part {part}"), e)
}

/// The row of a COPY a refusal names, for certain: data exceptions, NOT NULL, CHECK and
/// unique violations are raised as the row goes in; a foreign key is checked once the
/// rows are in, and its context names no row of its own.
fn refused_line(e: &sqlx::Error) -> Option<u64> {
    let sqlx::Error::Database(d) = e else {
        return None;
    };
    let pg = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    let code = pg.code();
    if !(code.starts_with("22") || matches!(code, "23502" | "23505" | "23514")) {
        return None;
    }
    pg.r#where().and_then(copy_line)
}

/// The row number in a COPY error's context (`COPY t, line 5[, column c: …]`): the COPY
/// sends one part's rows in order, so it is the row of the part.
fn copy_line(w: &str) -> Option<u64> {
    let rest = w.strip_prefix("COPY ")?.split_once(", line ")?.1;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn first_line(sql: &str) -> String {
    sql.lines()
        .next()
        .unwrap_or(sql)
        .chars()
        .take(120)
        .collect()
}

/// PostgreSQL's dialect.
static DIALECT: Dialect = Dialect {
    placeholders: Placeholders::Dollar,
    transactional_ddl: true,
    ledger_type: |k| match k {
        LedgerKind::Fixed(n) => format!("char({n})"),
        LedgerKind::Ascii(n) | LedgerKind::Unicode(n) => format!("varchar({n})"),
        LedgerKind::BigInt => "bigint".into(),
        LedgerKind::Now => "timestamptz DEFAULT now()".into(),
    },
    ledger_options: "",
    insert_ignoring_conflict: ("INSERT INTO", " ON CONFLICT DO NOTHING"),
    now: None,
    as_text: |e| format!("{e}::text"),
    quote,
};

fn bind<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    params: &[Param<'_>],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for p in params {
        q = match p {
            Param::Text(t) => q.bind((*t).to_string()),
            Param::Int(i) => q.bind(*i),
        };
    }
    q
}

/// A statement's error: a row the target refused (classes 22 and 23: data, exit 65), or
/// the database's own error.
/// The server's detail of a refused row, as messages show it: PostgreSQL's "Failing row
/// contains (…)" repeats every value of the row, which would put bundle data into logs (the
/// rejects file holds the row itself), so it is left out; other details (which key exists
/// already) stay.
fn shown_detail(pg: &sqlx::postgres::PgDatabaseError) -> String {
    match pg.detail() {
        Some(d) if !d.starts_with("Failing row contains") => format!(" ({d})"),
        _ => String::new(),
    }
}

fn statement_err(what: &str, e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(d) = &e
        && let Some(pg) = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        && (pg.code().starts_with("22") || pg.code().starts_with("23"))
    {
        return Error::Data(format!(
            "{what}: the target refused a row: {}{}",
            pg.message(),
            shown_detail(pg),
        ));
    }
    pg_err(what, e)
}

impl Session for PgTarget {
    fn dialect(&self) -> &'static Dialect {
        &DIALECT
    }

    fn begin(&mut self) -> Result<()> {
        self.copy_columns = None;
        self.exec("BEGIN")
    }

    fn commit(&mut self) -> Result<()> {
        self.copy_columns = None;
        self.exec("COMMIT")
    }

    fn rollback(&mut self) {
        self.copy_columns = None;
        let _ = self.exec("ROLLBACK");
    }

    fn execute(&mut self, what: &str, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let q = bind(sqlx::query(AssertSqlSafe(sql.to_string())), params);
        runtime()
            .block_on(q.execute(&mut self.conn))
            .map(|r| r.rows_affected())
            .map_err(|e| statement_err(what, e))
    }

    fn query_text(
        &mut self,
        what: &str,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Vec<Option<String>>>> {
        let q = bind(sqlx::query(AssertSqlSafe(sql.to_string())), params);
        let rows = runtime()
            .block_on(q.fetch_all(&mut self.conn))
            .map_err(|e| pg_err(what, e))?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        r.try_get::<Option<String>, _>(i)
                            .map_err(|e| pg_err(what, e))
                    })
                    .collect()
            })
            .collect()
    }

    fn ledger_table(&self) -> String {
        self.ledger()
    }

    fn ensure_ledger(&mut self) -> Result<()> {
        let schema = format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote(self.ledger_schema())
        );
        let table = load::ledger::create_sql(&DIALECT, &self.ledger());
        self.exec_all(&[schema, table])
    }

    fn ledger_exists(&mut self) -> Result<bool> {
        let l = self.ledger();
        self.exists(&l)
    }

    fn table_sql(&self, name: &str, table: &TableDef) -> String {
        self.table(name, table)
    }

    fn ledger_key(&self, name: &str, table: &TableDef) -> String {
        // Schema-qualified and quoted: unambiguous even for names holding dots. (Ledgers
        // of ferry 0.1 named the table alone.)
        self.table(name, table)
    }

    fn create_table(
        &mut self,
        name: &str,
        table: &TableDef,
        same_engine: bool,
        staging: bool,
    ) -> Result<()> {
        self.create_from_catalog(name, table, same_engine, staging)
    }

    fn bulk_load(
        &mut self,
        dest: &str,
        table: &TableDef,
        batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
        part: &str,
        upsert: bool,
    ) -> Result<Written> {
        self.refused_row = None;
        if upsert {
            self.upsert_in(dest, table, batches, part)
        } else {
            self.copy_in(dest, table, batches, part, None)
                .map(Written::inserted)
        }
    }

    fn insert_overriding(&self) -> &'static str {
        " OVERRIDING SYSTEM VALUE"
    }

    fn refused_row(&self) -> Option<u64> {
        self.refused_row
    }

    fn lock_for_replace(&mut self, table_sql: &str) -> Result<&'static str> {
        // Readers keep the old rows (they wait on this lock) until COMMIT.
        self.exec(&format!("LOCK TABLE {table_sql} IN ACCESS EXCLUSIVE MODE"))?;
        self.only(table_sql)
    }

    fn lock_part(&mut self, key: &str) -> Result<()> {
        // One loader per part at a time; the ledger's primary key is the last defence.
        runtime()
            .block_on(
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                    .bind(key)
                    .execute(&mut self.conn),
            )
            .map(|_| ())
            .map_err(|e| pg_err("taking the part lock", e))
    }

    fn referencing(&mut self, name: &str, table: &TableDef) -> Result<Vec<load::Reference>> {
        let q = self.table(name, table);
        // Constraints of their own (not a partition's copy of its parent's), by the table
        // itself (a partition's own rows are its parent's business).
        let rows = self.query_text(
            "looking up the foreign keys that reference a table",
            "SELECT c.conname::text, n.nspname::text, r.relname::text, \
                    (SELECT json_agg(a.attname::text ORDER BY k.i)::text \
                       FROM unnest(c.conkey) WITH ORDINALITY k(n, i) \
                       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n), \
                    (SELECT json_agg(a.attname::text ORDER BY k.i)::text \
                       FROM unnest(c.confkey) WITH ORDINALITY k(n, i) \
                       JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n), \
                    pg_get_constraintdef(c.oid) \
             FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid \
             JOIN pg_namespace n ON n.oid = r.relnamespace \
             WHERE c.contype = 'f' AND c.confrelid = to_regclass($1) AND c.conparentid = 0 \
             ORDER BY 2, 3, 1",
            &[Param::Text(&q)],
        )?;
        let names = |v: &Option<String>| -> Vec<String> {
            v.as_deref()
                .and_then(|j| serde_json::from_str(j).ok())
                .unwrap_or_default()
        };
        Ok(rows
            .into_iter()
            .map(|r| {
                let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                let (schema, child) = (get(1), get(2));
                load::Reference {
                    constraint: get(0),
                    child_sql: qualified(Some(&schema), &child),
                    child: format!("{schema}.{child}"),
                    columns: names(&r.get(3).cloned().flatten()),
                    ref_columns: names(&r.get(4).cloned().flatten()),
                    parent_sql: q.clone(),
                    definition: get(5),
                }
            })
            .collect())
    }

    fn suspend_references(&mut self, refs: &[load::Reference]) -> Result<()> {
        // Dropped inside the publish's transaction (DDL is transactional here): no check or
        // ON DELETE action sees the old rows go; restore_references adds each back.
        for r in refs {
            self.exec(&format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                r.child_sql,
                quote(&r.constraint)
            ))?;
        }
        Ok(())
    }

    fn restore_references(&mut self, refs: &[load::Reference], _group: &[String]) -> Result<()> {
        // The server's own text of each constraint (actions, MATCH, DEFERRABLE, NOT VALID),
        // under the same search_path it was printed with; adding it validates it again.
        for r in refs {
            self.exec(&format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {}",
                r.child_sql,
                quote(&r.constraint),
                r.definition
            ))
            .map_err(|e| match e {
                Error::Database(m) => Error::Data(format!(
                    "foreign key {} of {} could not be restored after the publish: {m}; nothing was changed",
                    r.constraint, r.child
                )),
                other => other,
            })?;
        }
        Ok(())
    }

    fn explain(&mut self, e: Error, name: &str, table: &TableDef) -> Error {
        let q = self.table(name, table);
        self.explain_lock(e, &q)
    }
}

/// The pre-flight checks of [`Target::missing_privileges`], one per kind; each returns
/// what is missing, in the words the operator sees.
impl PgTarget {
    /// Extensions whose types the bundle's columns use must be installed here: ferry does
    /// not install software into a database.
    fn missing_extensions(&mut self, tables: &[(String, &TableDef)]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut wanted: Vec<&str> = tables
            .iter()
            .flat_map(|(_, t)| t.extensions.iter().map(String::as_str))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(out);
        }
        let have: Vec<String> = runtime()
            .block_on(
                sqlx::query_scalar(
                    "SELECT extname::text FROM pg_extension WHERE extname = ANY($1)",
                )
                .bind(&wanted)
                .fetch_all(&mut self.conn),
            )
            .map_err(|e| pg_err("listing extensions", e))?;
        for x in wanted.iter().filter(|x| !have.iter().any(|h| h == *x)) {
            let users: Vec<String> = tables
                .iter()
                .filter(|(_, t)| t.extensions.iter().any(|e| e == x))
                .map(|(_, t)| t.qualified())
                .collect();
            out.push(format!(
                "extension {x} is not installed in the target database, and the types of {} \
                 come from it: CREATE EXTENSION {} (as a user allowed to), then re-run",
                users.join(", "),
                quote(x)
            ));
        }
        Ok(out)
    }

    /// Access methods, operator classes and collations the bundle's indexes and columns
    /// name must exist here, or the import would fail after its data is in. Each is
    /// reported with the tables that need it (so they can be left out with --exclude).
    fn missing_index_needs(&mut self, tables: &[(String, &TableDef)]) -> Result<Vec<String>> {
        let mut checked: Vec<(&str, &str, bool)> = Vec::new();
        let mut missing: Vec<(&str, &str, Vec<String>)> = Vec::new();
        for (kind, n, table) in index_needs(tables) {
            let ok = match checked.iter().find(|(k, x, _)| *k == kind && *x == n) {
                Some((_, _, ok)) => *ok,
                None => {
                    let ok = self.index_need_exists(kind, n)?;
                    checked.push((kind, n, ok));
                    ok
                }
            };
            if !ok {
                match missing.iter_mut().find(|(k, x, _)| *k == kind && *x == n) {
                    Some((_, _, ts)) => ts.push(table),
                    None => missing.push((kind, n, vec![table])),
                }
            }
        }
        Ok(missing
            .into_iter()
            .map(|(kind, n, ts)| {
                format!(
                    "{kind} {n} does not exist in the target database, and {} need{} it: create it \
                     (or the extension that has it), or leave {} out with --exclude, then re-run",
                    ts.join(", "),
                    if ts.len() == 1 { "s" } else { "" },
                    if ts.len() == 1 {
                        "that table"
                    } else {
                        "those tables"
                    }
                )
            })
            .collect())
    }

    /// Whether an index access method, operator class or collation (as [`index_needs`]
    /// names it) exists here.
    fn index_need_exists(&mut self, kind: &str, n: &str) -> Result<bool> {
        let sql = match kind {
            "index access method" => {
                "SELECT EXISTS (SELECT 1 FROM pg_am WHERE amname = $2 AND amtype = 'i' AND $1 = '')"
            }
            "operator class" => {
                "SELECT EXISTS (SELECT 1 FROM pg_opclass o JOIN pg_namespace n ON n.oid = o.opcnamespace WHERE n.nspname = $1 AND o.opcname = $2)"
            }
            _ => {
                "SELECT EXISTS (SELECT 1 FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace WHERE n.nspname = $1 AND c.collname = $2)"
            }
        };
        let (schema, name) = if kind == "index access method" {
            (String::new(), n.to_string())
        } else {
            unquote_pair(n).unwrap_or_default()
        };
        runtime()
            .block_on(
                sqlx::query_scalar(sql)
                    .bind(&schema)
                    .bind(&name)
                    .fetch_one(&mut self.conn),
            )
            .map_err(|e| pg_err("looking up what the indexes need", e))
    }

    /// Schemas that get something new apart from the bundle's tables: the ledger's when it
    /// is missing, and the schema each of the bundle's missing types goes to (its own, or
    /// --target-schema); they go to `creating`. Returns why the types cannot be placed,
    /// when --target-schema would put two on one name.
    fn type_schemas(
        &mut self,
        tables: &[(String, &TableDef)],
        creating: &mut Vec<String>,
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if !self.exists(&self.ledger())? {
            creating.push(self.ledger_schema().to_string());
        }
        match TypePlace::new(
            self.schema_override.as_deref(),
            tables.iter().map(|(_, t)| *t),
        ) {
            Ok(place) => {
                for (orig, name) in &place.types {
                    let schema = place.schema(orig);
                    if !self.type_exists(schema, name)? {
                        creating.push(schema.to_string());
                    }
                }
            }
            Err(Error::Data(why)) => out.push(why),
            Err(e) => return Err(e),
        }
        Ok(out)
    }

    /// INSERT (and DELETE for replace, UPDATE for upsert) on each table that exists. A
    /// table's schema goes to `creating` when the table is missing or replace stages into
    /// it.
    fn missing_table_privileges(
        &mut self,
        tables: &[(String, &TableDef)],
        mode: crate::load::Mode,
        creating: &mut Vec<String>,
    ) -> Result<Vec<String>> {
        use crate::load::Mode;
        let mut out = Vec::new();
        for (name, t) in tables {
            let q = self.table(name, t);
            let exists = self.exists(&q)?;
            if !exists || mode == Mode::Replace {
                creating.push(self.schema_for(t).to_string());
            }
            if !exists {
                continue;
            }
            let mut need = vec!["INSERT"];
            if mode == Mode::Replace {
                need.push("DELETE");
            }
            if mode == Mode::Upsert {
                need.push("UPDATE");
            }
            for p in need {
                let ok: bool = runtime()
                    .block_on(
                        sqlx::query_scalar("SELECT has_table_privilege($1::regclass, $2)")
                            .bind(&q)
                            .bind(p)
                            .fetch_one(&mut self.conn),
                    )
                    .map_err(|e| pg_err("checking privileges", e))?;
                if !ok {
                    out.push(format!(
                        "{q}: the user has no {p} privilege on it (GRANT {p} ON {q} TO …)"
                    ));
                }
            }
        }
        Ok(out)
    }

    /// CREATE on each schema that gets a new table or type; on the database for one that
    /// does not exist yet.
    fn missing_schema_create(&mut self, mut creating: Vec<String>) -> Result<Vec<String>> {
        let mut out = Vec::new();
        creating.sort();
        creating.dedup();
        for schema in creating {
            let (exists, create_ok): (bool, bool) = runtime()
                .block_on(
                    sqlx::query_as(
                        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), \
                                CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) \
                                     THEN has_schema_privilege($1, 'CREATE') \
                                     ELSE has_database_privilege(current_database(), 'CREATE') END",
                    )
                    .bind(&schema)
                    .fetch_one(&mut self.conn),
                )
                .map_err(|e| pg_err("checking privileges", e))?;
            if !create_ok {
                out.push(if exists {
                    format!(
                        "schema {}: the user may not create tables in it (GRANT CREATE ON SCHEMA {} TO …), \
                         and this import creates tables or types there",
                        quote(&schema),
                        quote(&schema)
                    )
                } else {
                    format!(
                        "schema {} does not exist and the user may not create schemas in this database \
                         (GRANT CREATE ON DATABASE … TO …, or --target-schema an existing one)",
                        quote(&schema)
                    )
                });
            }
        }
        Ok(out)
    }
}

/// What the tables' indexes and columns need to exist in the target: (kind, name, table),
/// sorted, once each. Kinds: "index access method", "operator class", "collation".
fn index_needs<'a>(tables: &[(String, &'a TableDef)]) -> Vec<(&'static str, &'a str, String)> {
    let mut needs: Vec<(&'static str, &'a str, String)> = Vec::new();
    for &(_, t) in tables {
        let q = t.qualified();
        let mut idxs: Vec<&Index> = t.indexes.iter().collect();
        let mut stack: Vec<&Partitioning> = t.partitioning.iter().collect();
        while let Some(p) = stack.pop() {
            for part in &p.partitions {
                idxs.extend(&part.indexes);
                stack.extend(part.partitioning.as_deref());
            }
        }
        for i in idxs {
            if let Some(m) = i.method.as_deref() {
                needs.push(("index access method", m, q.clone()));
            }
            for o in i.opclasses.iter().flatten() {
                needs.push(("operator class", o, q.clone()));
            }
        }
        for c in t.columns.iter().filter_map(|c| c.collation.as_deref()) {
            needs.push(("collation", c, q.clone()));
        }
        for u in &t.user_types {
            match u {
                UserType::Composite { attributes, .. } => {
                    for c in attributes.iter().filter_map(|a| a.collation.as_deref()) {
                        needs.push(("collation", c, q.clone()));
                    }
                }
                UserType::Range {
                    collation,
                    subtype_opclass,
                    ..
                } => {
                    if let Some(c) = collation.as_deref() {
                        needs.push(("collation", c, q.clone()));
                    }
                    if let Some(o) = subtype_opclass.as_deref() {
                        needs.push(("operator class", o, q.clone()));
                    }
                }
                _ => {}
            }
        }
    }
    needs.sort();
    needs.dedup();
    needs
}

impl Target for PgTarget {
    /// Two: the server parses one COPY on one backend, and a second connection loads the
    /// next part meanwhile (README, "Parallel import").
    fn default_streams(&self) -> usize {
        crate::import::DEFAULT_STREAMS
    }

    fn lock_run(&mut self, bundle_id: &str) -> Result<()> {
        // Session-level: held until this connection closes (the process ends).
        let key = format!("ferry-run:{bundle_id}");
        let got: bool = runtime()
            .block_on(
                sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                    .bind(&key)
                    .fetch_one(&mut self.conn),
            )
            .map_err(|e| pg_err("taking the import lock", e))?;
        if got {
            return Ok(());
        }
        let holder: Option<(i32, String, String)> = runtime()
            .block_on(
                sqlx::query_as(
                    "SELECT a.pid, coalesce(host(a.client_addr), 'local socket'), a.backend_start::text \
                     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                       AND ((l.classid::int8 << 32) | l.objid::int8) = hashtextextended($1, 0) LIMIT 1",
                )
                .bind(&key)
                .fetch_optional(&mut self.conn),
            )
            .map_err(|e| pg_err("finding the import lock holder", e))?;
        let who = holder
            .map(|(pid, host, since)| {
                format!(" (server pid {pid}, client {host}, connected since {since})")
            })
            .unwrap_or_default();
        Err(Error::Temporary(format!(
            "another import of bundle {bundle_id} into this database is running{who}; \
             nothing was written: run again when it has finished"
        )))
    }

    fn missing_privileges(
        &mut self,
        tables: &[(String, &TableDef)],
        mode: crate::load::Mode,
    ) -> Result<Vec<String>> {
        let mut out = self.missing_extensions(tables)?;
        out.extend(self.missing_index_needs(tables)?);
        // Schemas that get a new table or type, gathered on the way, checked last.
        let mut creating: Vec<String> = Vec::new();
        out.extend(self.type_schemas(tables, &mut creating)?);
        out.extend(self.missing_table_privileges(tables, mode, &mut creating)?);
        out.extend(self.missing_schema_create(creating)?);
        Ok(out)
    }

    fn prepare(&mut self, tables: &[(String, &TableDef)], same_engine: bool) -> Result<()> {
        // Two of the bundle's types that --target-schema would put on one name are refused
        // before anything is written (pre-flight has said so already).
        let place = TypePlace::new(
            self.schema_override.as_deref(),
            tables.iter().map(|(_, t)| *t),
        )?;
        // A superuser can do anything a replayed expression might ask for: ferry replays
        // only checked ones, but an ordinary role with CREATE on the schemas is safer.
        let superuser: bool = runtime()
            .block_on(
                sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
                    .fetch_optional(&mut self.conn),
            )
            .map_err(|e| pg_err("looking up the importing role", e))?
            .unwrap_or(false);
        if superuser {
            self.notes.push(
                "the importing role is a PostgreSQL superuser: import as an ordinary role that \
                 may create tables in the target schemas, so that nothing in a bundle could \
                 ever act with a superuser's rights"
                    .into(),
            );
        }
        self.ensure_ledger()?;
        let mut schemas: Vec<String> = tables
            .iter()
            .map(|(_, t)| self.schema_for(t).to_string())
            .collect();
        schemas.sort();
        schemas.dedup();
        for s in schemas {
            self.exec(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(&s)))?;
        }
        if same_engine {
            for (_, t) in tables {
                self.ensure_types(t)?;
            }
            // Every column type must be a type here: asked by parameter, before any table
            // is made (a type name that is more than one fails here, not in a part).
            for (name, t) in tables {
                for c in &t.columns {
                    if !self.resolves(&place.name(&c.source_type)) {
                        return Err(Error::Data(format!(
                            "table {name}, column {:?}: {:?} is not a type on the target; create \
                             it (or the extension that has it) first; nothing was loaded",
                            c.name, c.source_type
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn worker(&self) -> Result<Option<Box<dyn Target>>> {
        let mut w = PgTarget::open(&self.url, self.schema_override.as_deref())?;
        w.ledger_schema.clone_from(&self.ledger_schema);
        w.trust_expressions = self.trust_expressions;
        Ok(Some(Box::new(w)))
    }

    fn trust_expressions(&mut self) {
        self.trust_expressions = true;
    }

    fn separate_ledger(&mut self) -> Result<()> {
        match &self.schema_override {
            Some(s) => {
                self.ledger_schema.clone_from(s);
                Ok(())
            }
            None => Err(Error::Usage(
                "--separate-copy keeps a second copy's ledger in its --target-schema: give --target-schema".into(),
            )),
        }
    }

    fn ledger_place(&self) -> Option<String> {
        Some(format!("schema {}", self.ledger_schema))
    }

    fn other_ledger(&mut self) -> Result<Option<String>> {
        let Some(s) = self
            .schema_override
            .clone()
            .filter(|s| *s != self.ledger_schema)
        else {
            return Ok(None);
        };
        let there: bool = runtime()
            .block_on(
                sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                    .bind(qualified(Some(&s), LEDGER))
                    .fetch_one(&mut self.conn),
            )
            .map_err(|e| pg_err("looking for the ledger", e))?;
        Ok(there.then_some(s))
    }

    fn table_rows(&mut self, name: &str, table: &TableDef) -> Result<Option<u64>> {
        let q = self.table(name, table);
        if !self.exists(&q)? {
            return Ok(None);
        }
        let n: i64 = runtime()
            .block_on(
                sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT count(*) FROM {}{q}",
                    self.only(&q)?
                )))
                .fetch_one(&mut self.conn),
            )
            .map_err(|e| pg_err(&format!("counting {q}"), e))?;
        Ok(u64::try_from(n).ok())
    }

    fn existing_columns(
        &mut self,
        name: &str,
        table: &TableDef,
    ) -> Result<Option<Vec<crate::load::TargetColumn>>> {
        let q = self.table(name, table);
        if !self.exists(&q)? {
            return Ok(None);
        }
        let oid = self.oid(&q)?;
        Ok(Some(
            columns_of(&mut self.conn, oid)?
                .into_iter()
                .map(|c| crate::load::TargetColumn {
                    name: c.name,
                    nullable: !c.not_null,
                    has_default: c.default.is_some() || !c.identity.is_empty(),
                })
                .collect(),
        ))
    }

    fn primary_key(&mut self, name: &str, table: &TableDef) -> Result<Option<Vec<String>>> {
        let q = self.table(name, table);
        if !self.exists(&q)? {
            return Ok(None);
        }
        let cols: Vec<String> = runtime()
            .block_on(
                sqlx::query_scalar(
                    "SELECT a.attname::text FROM pg_index i \
                     JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n) ON true \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                     WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.n",
                )
                .bind(&q)
                .fetch_all(&mut self.conn),
            )
            .map_err(|e| pg_err(&format!("reading the primary key of {q}"), e))?;
        Ok(Some(cols))
    }

    fn staging_tables(&mut self, tables: &[(String, &TableDef)]) -> Result<Vec<String>> {
        let mut schemas: Vec<String> = tables
            .iter()
            .map(|(_, t)| self.schema_for(t).to_string())
            .collect();
        schemas.push(self.ledger_schema().to_string());
        schemas.sort();
        schemas.dedup();
        let names: Vec<String> = runtime()
            .block_on(
                sqlx::query_scalar(
                    "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') AND c.relname LIKE '\\_ferry\\_%' \
                     ORDER BY 1",
                )
                .bind(&schemas)
                .fetch_all(&mut self.conn),
            )
            .map_err(|e| pg_err("listing staging tables", e))?;
        Ok(names
            .into_iter()
            .filter(|n| crate::load::is_staging_name(n))
            .collect())
    }

    fn finish_table(&mut self, name: &str, table: &TableDef) -> Result<()> {
        let q = self.table(name, table);
        self.ensure_pk(&q, name, table)?;
        if self.exists(&q)? {
            self.advance_sequences(&q)?;
        }
        for idx in &table.indexes {
            let iname = if name == table.name {
                idx.name.clone()
            } else {
                format!("{name}_{}", idx.name)
            };
            self.create_index(&q, &iname, idx)?;
        }
        // Indexes partitions have of their own (a replace's staging table has none).
        if self.exists(&q)? && self.only(&q)?.is_empty() {
            let mut stack: Vec<&Partitioning> = table.partitioning.iter().collect();
            while let Some(p) = stack.pop() {
                for part in &p.partitions {
                    let schema = self.schema_override.as_deref().unwrap_or(&part.schema);
                    let pq = qualified(Some(schema), &part.name);
                    for idx in &part.indexes {
                        self.create_index(&pq, &idx.name, idx)?;
                    }
                    stack.extend(part.partitioning.as_deref());
                }
            }
        }
        Ok(())
    }

    fn finish_all(&mut self, tables: &[(String, &TableDef)]) -> Result<Vec<String>> {
        let mut notes = std::mem::take(&mut self.notes);
        for (name, t) in tables {
            let q = self.table(name, t);
            // The table's foreign keys, then those its partitions have of their own.
            let mut owners: Vec<(String, &str, &[crate::types::ForeignKey])> =
                vec![(q, name.as_str(), t.foreign_keys.as_slice())];
            let mut stack: Vec<&Partitioning> = t.partitioning.iter().collect();
            while let Some(p) = stack.pop() {
                for part in &p.partitions {
                    let schema = self.schema_override.as_deref().unwrap_or(&part.schema);
                    owners.push((
                        qualified(Some(schema), &part.name),
                        part.name.as_str(),
                        part.foreign_keys.as_slice(),
                    ));
                    stack.extend(part.partitioning.as_deref());
                }
            }
            for (q, owner, fks) in owners {
                for fk in fks {
                    let Some((ref_name, ref_def)) = tables
                        .iter()
                        .find(|(_, d)| d.name == fk.ref_table && d.schema == fk.ref_schema)
                    else {
                        notes.push(format!(
                            "foreign key {} of {owner} not added: {} is not in this import",
                            fk.name, fk.ref_table
                        ));
                        continue;
                    };
                    let exists: bool = runtime()
                        .block_on(
                            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2)")
                                .bind(&q)
                                .bind(&fk.name)
                                .fetch_one(&mut self.conn),
                        )
                        .map_err(|e| pg_err("looking up a foreign key", e))?;
                    if exists {
                        continue;
                    }
                    let cols: Vec<String> = fk.columns.iter().map(|c| quote(c)).collect();
                    let refs: Vec<String> = fk.ref_columns.iter().map(|c| quote(c)).collect();
                    self.exec(&format!(
                        "ALTER TABLE {q} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}){}",
                        quote(&fk.name),
                        cols.join(", "),
                        self.table(ref_name, ref_def),
                        refs.join(", "),
                        fk.actions_sql()
                    ))?;
                }
            }
        }
        // Inheritance: each child is linked to its parents once both are in, keeping the
        // child's own column order (ALTER TABLE … INHERIT, not CREATE TABLE … INHERITS).
        for (name, t) in tables {
            let q = self.table(name, t);
            for parent in &t.inherits {
                let Some((pname, pdef)) = tables
                    .iter()
                    .find(|(_, d)| d.name == parent.name && d.schema == parent.schema)
                else {
                    notes.push(format!(
                        "{name} not made a child of {}: that table is not in this import",
                        parent.name
                    ));
                    continue;
                };
                let pq = self.table(pname, pdef);
                let linked: bool = runtime()
                    .block_on(
                        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = $1::regclass AND inhparent = $2::regclass)")
                            .bind(&q)
                            .bind(&pq)
                            .fetch_one(&mut self.conn),
                    )
                    .map_err(|e| pg_err("looking up inheritance", e))?;
                if !linked {
                    self.exec(&format!("ALTER TABLE {q} INHERIT {pq}"))?;
                }
            }
        }
        Ok(notes)
    }
}

#[cfg(test)]
mod tests {
    use super::{TypePlace, split_type_name, type_ddl, unquote_pair};
    use crate::types::{CompositeAttribute, DomainType, EnumType, TableDef, UserType};

    fn table(types: Vec<UserType>) -> TableDef {
        TableDef {
            name: "t".into(),
            user_types: types,
            ..TableDef::default()
        }
    }

    fn en(schema: &str, name: &str) -> UserType {
        UserType::Enum(EnumType {
            schema: schema.into(),
            name: name.into(),
            labels: vec!["a".into()],
        })
    }

    #[test]
    fn type_names_split_as_format_type_prints_them() {
        assert_eq!(
            split_type_name("evil.mood"),
            Some(("evil".into(), "mood".into(), ""))
        );
        assert_eq!(
            split_type_name(r#""E.v""il"."Mo od"[]"#),
            Some((r#"E.v"il"#.into(), "Mo od".into(), "[]"))
        );
        assert_eq!(
            split_type_name("EVIL.Mood[][]"),
            Some(("evil".into(), "mood".into(), "[][]"))
        );
        assert_eq!(split_type_name("integer"), None);
        assert_eq!(split_type_name("character varying(40)"), None);
        assert_eq!(split_type_name("public.geometry(Point,4326)"), None);
        assert_eq!(split_type_name(r#""a"."""#), None);
        assert_eq!(split_type_name("a.b.c"), None);
    }

    #[test]
    fn target_schema_moves_the_bundles_types_and_every_reference_to_them() {
        let dom = UserType::Domain(DomainType {
            schema: "evil".into(),
            name: "posint".into(),
            base: "integer".into(),
            not_null: false,
            default: None,
            checks: vec!["CHECK ((VALUE > 0))".into()],
        });
        let comp = UserType::Composite {
            schema: "Evil Two".into(),
            name: "pair".into(),
            attributes: vec![CompositeAttribute {
                name: "m".into(),
                ty: "evil.mood[]".into(),
                collation: None,
            }],
        };
        let t = table(vec![en("evil", "mood"), dom.clone(), comp.clone()]);
        let p = TypePlace::new(Some("app"), [&t]).unwrap();
        assert_eq!(p.name("evil.mood"), r#""app"."mood""#);
        assert_eq!(p.name("evil.mood[]"), r#""app"."mood"[]"#);
        assert_eq!(p.name(r#""Evil Two".pair"#), r#""app"."pair""#);
        // Not the bundle's: left as it is.
        assert_eq!(p.name("other.mood"), "other.mood");
        assert_eq!(p.name("public.citext"), "public.citext");
        assert_eq!(p.name("integer[]"), "integer[]");
        assert_eq!(
            p.in_default("'a::evil.mood'::evil.mood"),
            r#"'a::evil.mood'::"app"."mood""#
        );
        assert_eq!(p.in_default("'x'::text"), "'x'::text");
        assert_eq!(p.in_default("5"), "5");
        assert_eq!(
            type_ddl(&dom, &p).unwrap().sql,
            r#"CREATE DOMAIN "app"."posint" AS integer"#
        );
        assert_eq!(
            type_ddl(&comp, &p).unwrap().sql,
            r#"CREATE TYPE "app"."pair" AS ("m" "app"."mood"[])"#
        );
        // Without --target-schema every type stays where it was.
        let same = TypePlace::new(None, [&t]).unwrap();
        assert_eq!(same.name("evil.mood[]"), "evil.mood[]");
        assert_eq!(
            type_ddl(&comp, &same).unwrap().sql,
            r#"CREATE TYPE "Evil Two"."pair" AS ("m" evil.mood[])"#
        );
        // A domain CHECK casting to a moved type is left out, named.
        let cast = UserType::Domain(DomainType {
            schema: "evil".into(),
            name: "m2".into(),
            base: "evil.mood".into(),
            not_null: false,
            default: Some("'a'::evil.mood".into()),
            checks: vec!["CHECK ((VALUE <> 'b'::evil.mood))".into()],
        });
        let d = type_ddl(&cast, &p).unwrap();
        // The constant default's cast is renamed; the CHECK is left out and named.
        assert_eq!(
            d.sql,
            r#"CREATE DOMAIN "app"."m2" AS "app"."mood" DEFAULT 'a'::"app"."mood""#
        );
        assert!(
            d.types.contains(&r#""app"."mood""#.to_string()),
            "{:?}",
            d.types
        );
        assert!(d.checks.is_empty());
        assert_eq!(
            d.notes,
            [
                "not carried: a CHECK on domain app.m2: it casts to a type of the bundle that \
              --target-schema app moved"
            ]
        );
        // A range's multirange goes with it, its derived name or its own.
        let r = |multirange: Option<(String, String)>| UserType::Range {
            schema: "evil".into(),
            name: "floatrange".into(),
            subtype: "double precision".into(),
            subtype_opclass: None,
            collation: None,
            multirange,
            subtype_diff: None,
        };
        let p = TypePlace::new(Some("app"), [&table(vec![r(None)])]).unwrap();
        assert_eq!(p.name("evil.floatmultirange"), r#""app"."floatmultirange""#);
        let own = r(Some(("other".into(), "many".into())));
        let p = TypePlace::new(Some("app"), [&table(vec![own.clone()])]).unwrap();
        assert_eq!(p.name("other.many[]"), r#""app"."many"[]"#);
        assert_eq!(
            type_ddl(&own, &p).unwrap().sql,
            r#"CREATE TYPE "app"."floatrange" AS RANGE (subtype = double precision, multirange_type_name = "app"."many")"#
        );
    }

    #[test]
    fn two_types_on_one_name_in_the_target_schema_are_refused() {
        let a = table(vec![en("evil", "mood")]);
        let b = table(vec![en("other", "mood"), en("evil", "mood")]);
        let e = TypePlace::new(Some("app"), [&a, &b])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("evil.mood and other.mood would both be app.mood"),
            "{e}"
        );
        // The same type twice, or without --target-schema, is fine.
        TypePlace::new(Some("app"), [&a, &a]).unwrap();
        TypePlace::new(None, [&a, &b]).unwrap();
    }

    #[test]
    fn quoted_pairs_come_apart_at_the_dot_outside_the_names() {
        assert_eq!(
            unquote_pair(r#""pg_catalog"."C""#),
            Some(("pg_catalog".into(), "C".into()))
        );
        assert_eq!(
            unquote_pair(r#""a"".""b"."c""d""#),
            Some((r#"a"."b"#.into(), r#"c"d"#.into()))
        );
        assert_eq!(unquote_pair(r#""a".b"#), None);
        assert_eq!(unquote_pair("x"), None);
    }
}
