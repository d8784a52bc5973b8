//! SQLite reader: one read transaction for all tables (one instant), declared types mapped
//! by SQLite's affinity rules onto canonical types, and every value checked against its
//! column's type, since SQLite lets any column hold any value.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::engines::sqlite::loader::is_constant_default;
use crate::expr;
use crate::source::{BatchLimits, Estimate, Rows, Selection, Source};
use crate::types::SourceInfo;
use crate::types::identity::SourceIdentity;
use crate::types::text;
use crate::types::{
    Check, Column, ColumnType, FkAction, ForeignKey, Generated, Identity, IdentityKind, Index,
    TableDef,
};
use crate::{Error, Result};

/// Path of a `sqlite://PATH` URL (`sqlite:///abs` is `/abs`).
pub fn path_of(url: &str) -> Result<String> {
    let p = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| {
            Error::Usage(format!(
                "{}: not a sqlite:// URL",
                crate::redact::display_url(url)
            ))
        })?;
    let p = p.split('?').next().unwrap_or(p);
    if p.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no file path after sqlite://",
            crate::redact::display_url(url)
        )));
    }
    Ok(p.to_string())
}

/// `"name"` with embedded quotes doubled: the only way names reach SQL.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn db_err(what: &str, e: rusqlite::Error) -> Error {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            Error::Temporary(format!(
                "{what}: the database is locked by another process ({e}); try again"
            ))
        }
        _ => Error::Database(format!("{what}: {e}")),
    }
}

pub struct SqliteSource {
    conn: Connection,
    path: String,
    in_snapshot: bool,
}

/// Which file this is, whatever path names it: its device and inode number (a hard link,
/// a symlink or a relative path is the same source; a copy, or a file replaced by a
/// restore, is another). Nothing is written to the source. Where there are no inodes, the
/// canonical path.
fn file_identity(path: &str) -> SourceIdentity {
    #[cfg(unix)]
    if let Ok(m) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt;
        let (dev, ino) = (m.dev(), m.ino());
        return SourceIdentity::new(
            "sqlite",
            "file",
            &format!("{dev}:{ino}"),
            format!("the file's device {dev} and inode {ino}"),
        );
    }
    let canon = std::fs::canonicalize(path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.to_string());
    SourceIdentity::new(
        "sqlite",
        "path",
        &canon,
        format!("the file's canonical path {canon}"),
    )
}

impl SqliteSource {
    pub fn open(url: &str) -> Result<Self> {
        let path = path_of(url)?;
        if !std::path::Path::new(&path).is_file() {
            return Err(Error::Usage(format!(
                "{}: no SQLite database at {path}",
                crate::redact::display_url(url)
            )));
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| db_err(&format!("cannot open {path}"), e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| db_err("busy_timeout", e))?;
        Ok(SqliteSource {
            conn,
            path,
            in_snapshot: false,
        })
    }

    /// The table's own `CREATE TABLE` text, as SQLite keeps it.
    fn create_sql(&self, name: &str) -> Result<String> {
        self.conn
            .query_row(
                "SELECT coalesce(sql, '') FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |r| r.get(0),
            )
            .map_err(|e| db_err(&format!("reading the definition of {name}"), e))
    }

    fn table_def(&self, name: &str, view: bool) -> Result<TableDef> {
        let q = quote(name);
        // A view has no CREATE TABLE: no CHECKs, generated columns or keys to read.
        let create = if view {
            String::new()
        } else {
            self.create_sql(name)?
        };
        // CHECKs and generation expressions are only in the CREATE TABLE text: parsed once
        // by `expr`, each expression then held to its rules.
        let declared = expr::declared_exprs(&create, expr::Engine::Sqlite);
        let mut notes = Vec::new();
        // table_xinfo also lists generated columns (hidden 2: VIRTUAL, 3: STORED); hidden 1
        // is a virtual table's hidden column.
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA table_xinfo({q})"))
            .map_err(|e| db_err(&format!("reading columns of {name}"), e))?;
        type Row = (String, String, bool, Option<String>, i64, i64);
        let rows: Vec<Row> = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    r.get::<_, i64>(3)? != 0,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| db_err(&format!("reading columns of {name}"), e))?;
        let names: Vec<String> = rows
            .iter()
            .filter(|r| r.5 != 1)
            .map(|r| r.0.clone())
            .collect();
        let scope = expr::Scope {
            columns: &names,
            value: false,
            any_function: false,
        };
        let mut cols = Vec::new();
        let mut pk: Vec<(i64, String)> = Vec::new();
        for (cname, decl, notnull, default, pk_pos, hidden) in rows {
            let generated = match hidden {
                2 | 3 => {
                    if decl.is_empty() {
                        notes.push(format!(
                            "not carried: generated column {name}.{cname}: it has no declared \
                             type, so its values have none ferry can read"
                        ));
                        continue;
                    }
                    let text = match &declared {
                        Ok(d) => d
                            .generated
                            .iter()
                            .find(|g| g.column.eq_ignore_ascii_case(&cname))
                            .map(|g| g.expr.clone())
                            .unwrap_or_else(|| {
                                Err("is not found in the table's CREATE TABLE".into())
                            }),
                        Err(why) => Err(format!("is in a CREATE TABLE that {why}")),
                    };
                    match text
                        .and_then(|t| expr::rebuild(&t, expr::Engine::Sqlite, scope).map(|_| t))
                    {
                        Ok(expr) => Some(Generated {
                            expr,
                            stored: hidden == 3,
                        }),
                        Err(why) => {
                            notes.push(format!(
                                "not carried: the expression of generated column {name}.{cname}: \
                                 it {why}; its values travel as plain data"
                            ));
                            None
                        }
                    }
                }
                0 => None,
                _ => continue,
            };
            let default = match default {
                Some(d) if generated.is_none() => {
                    let d = d.trim().to_string();
                    if is_constant_default(&d) {
                        Some(d)
                    } else {
                        match expr::rebuild(&d, expr::Engine::Sqlite, scope) {
                            Ok(_) => Some(d),
                            Err(why) => {
                                notes.push(format!(
                                    "not carried: DEFAULT of {name}.{cname}: it {why}"
                                ));
                                None
                            }
                        }
                    }
                }
                _ => None,
            };
            let ty = map_declared_type(&decl);
            if pk_pos > 0 {
                pk.push((pk_pos, cname.clone()));
            }
            cols.push(Column {
                name: cname,
                ty,
                nullable: !notnull,
                source_type: decl,
                default,
                enum_type: None,
                domain_type: None,
                as_text: false,
                text_reason: None,
                collation: None,
                identity: None,
                generated,
            });
        }
        if cols.is_empty() {
            return Err(Error::Data(format!(
                "table {name} has no columns ferry can read"
            )));
        }
        pk.sort();
        // A lone INTEGER PRIMARY KEY is the rowid: it fills itself (and never reuses a
        // value with AUTOINCREMENT).
        if let [(_, key)] = pk.as_slice()
            && let Some(c) = cols.iter_mut().find(|c| c.name == *key)
            && c.source_type.eq_ignore_ascii_case("INTEGER")
        {
            let kind = if create.to_ascii_uppercase().contains("AUTOINCREMENT") {
                IdentityKind::AutoIncrement
            } else {
                IdentityKind::Rowid
            };
            c.identity = Some(Identity { kind });
        }
        let mut indexes = Vec::new();
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA index_list({q})"))
            .map_err(|e| db_err("index_list", e))?;
        let list: Vec<(String, bool, String, bool)> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(1)?,
                    r.get::<_, i64>(2)? != 0,
                    r.get(3)?,
                    r.get::<_, i64>(4)? != 0,
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| db_err("index_list", e))?;
        for (iname, unique, origin, partial) in list {
            if origin == "pk" {
                continue;
            }
            // Their WHERE and expressions wait for the expression rules: named, as
            // PostgreSQL's are.
            if partial {
                notes.push(format!(
                    "not carried: partial index {iname} on {name} (its WHERE is not rebuilt)"
                ));
                continue;
            }
            let mut istmt = self
                .conn
                .prepare(&format!("PRAGMA index_info({})", quote(&iname)))
                .map_err(|e| db_err("index_info", e))?;
            let icols: Vec<Option<String>> = istmt
                .query_map([], |r| r.get(2))
                .and_then(|rows| rows.collect())
                .map_err(|e| db_err("index_info", e))?;
            if icols.iter().any(Option::is_none) {
                notes.push(format!(
                    "not carried: expression index {iname} on {name} (its expression is not rebuilt)"
                ));
                continue;
            }
            let name = if origin == "u" {
                format!(
                    "{name}_{}_key",
                    icols
                        .iter()
                        .flatten()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("_")
                )
            } else {
                iname
            };
            indexes.push(Index {
                name,
                unique,
                columns: icols.into_iter().flatten().collect(),
                ..Default::default()
            });
        }
        let checks = checks(name, &create, &declared, scope, &mut notes);
        let foreign_keys = self.foreign_keys(name, &mut notes)?;
        if view {
            self.type_view_columns(name, &mut cols)?;
        }
        Ok(TableDef {
            schema: None,
            name: name.to_string(),
            columns: cols,
            from_view: view,
            primary_key: pk.into_iter().map(|p| p.1).collect(),
            indexes,
            foreign_keys,
            partitioning: None,
            not_carried: notes,
            checks,
            ..Default::default()
        })
    }

    /// Gives a view's expression columns a type: SQLite declares none for them (only a
    /// column taken straight from a table keeps its declared type), so the values decide,
    /// read in the export's snapshot: integers only → INTEGER, numbers → REAL, text → TEXT,
    /// blobs → BLOB, only NULLs → TEXT. Values of several kinds are refused by name: a
    /// `CAST(… AS TEXT)` in the view makes them one.
    fn type_view_columns(&self, view: &str, cols: &mut [Column]) -> Result<()> {
        for c in cols.iter_mut().filter(|c| c.source_type.is_empty()) {
            let col = quote(&c.name);
            let sql = format!(
                "SELECT DISTINCT typeof({col}) FROM {} WHERE {col} IS NOT NULL ORDER BY 1",
                quote(view)
            );
            let err = |e| {
                db_err(
                    &format!("reading the values of view {view}, column {}", c.name),
                    e,
                )
            };
            let mut st = self.conn.prepare(&sql).map_err(err)?;
            let kinds: Vec<String> = st
                .query_map([], |r| r.get(0))
                .and_then(|r| r.collect())
                .map_err(err)?;
            let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
            let (decl, ty) = match kinds.as_slice() {
                [] | ["text"] => ("TEXT", ColumnType::Utf8),
                ["integer"] => ("INTEGER", ColumnType::Int64),
                ["real"] | ["integer", "real"] => ("REAL", ColumnType::Float64),
                ["blob"] => ("BLOB", ColumnType::Binary),
                several => {
                    return Err(Error::Data(format!(
                        "view {view}, column {:?}: an expression column, which SQLite gives no type, \
                         holds values of several kinds ({}); make them one in the view, e.g. \
                         CAST(… AS TEXT), or leave the view out",
                        c.name,
                        several.join(", ")
                    )));
                }
            };
            c.source_type = decl.to_string();
            c.ty = ty;
        }
        Ok(())
    }

    /// The table's foreign keys with their actions (`PRAGMA foreign_key_list`); a key
    /// naming no parent columns references the parent's primary key. SQLite keeps no name
    /// for them: each is named `<table>_<columns>_fkey`.
    fn foreign_keys(&self, name: &str, notes: &mut Vec<String>) -> Result<Vec<ForeignKey>> {
        let err = |e| db_err(&format!("reading the foreign keys of {name}"), e);
        let mut st = self
            .conn
            .prepare(
                "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete \
                 FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
            )
            .map_err(err)?;
        type Row = (i64, String, String, Option<String>, String, String);
        let rows: Vec<Row> = st
            .query_map([name], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .and_then(|r| r.collect())
            .map_err(err)?;
        let mut out: Vec<ForeignKey> = Vec::new();
        let mut ids: Vec<i64> = Vec::new();
        let mut implicit: Vec<bool> = Vec::new();
        for (id, parent, from, to, on_update, on_delete) in rows {
            if ids.last() != Some(&id) {
                ids.push(id);
                implicit.push(false);
                out.push(ForeignKey {
                    name: String::new(),
                    columns: vec![],
                    ref_schema: None,
                    ref_table: parent,
                    ref_columns: vec![],
                    on_delete: FkAction::parse(&on_delete),
                    on_update: FkAction::parse(&on_update),
                });
            }
            let (Some(fk), Some(imp)) = (out.last_mut(), implicit.last_mut()) else {
                continue;
            };
            fk.columns.push(from);
            match to {
                Some(t) => fk.ref_columns.push(t),
                None => *imp = true,
            }
        }
        let mut kept = Vec::new();
        for (mut fk, implicit) in out.into_iter().zip(implicit) {
            if implicit {
                let mut st = self
                    .conn
                    .prepare("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")
                    .map_err(err)?;
                fk.ref_columns = st
                    .query_map([&fk.ref_table], |r| r.get(0))
                    .and_then(|r| r.collect())
                    .map_err(err)?;
            }
            if fk.ref_columns.len() != fk.columns.len() {
                notes.push(format!(
                    "not carried: the foreign key of {name} ({}) referencing {}: its parent \
                     columns cannot be read (a missing table, or no primary key)",
                    fk.columns.join(", "),
                    fk.ref_table
                ));
                continue;
            }
            let base = format!("{name}_{}_fkey", fk.columns.join("_"));
            fk.name = unique_name(&base, kept.iter().map(|k: &ForeignKey| k.name.as_str()));
            kept.push(fk);
        }
        Ok(kept)
    }
}

/// `base`, or `base1`, `base2`, … when taken.
fn unique_name<'a>(base: &str, taken: impl Iterator<Item = &'a str> + Clone) -> String {
    let free = |n: &str| !taken.clone().any(|t| t.eq_ignore_ascii_case(n));
    if free(base) {
        return base.to_string();
    }
    (1..)
        .map(|i| format!("{base}{i}"))
        .find(|n| free(n))
        .unwrap_or_else(|| base.to_string())
}

/// The table's CHECKs (of the table and its columns) from its parsed CREATE TABLE, each
/// held to the expression rules; what is not is named. A CHECK without a name is named as
/// PostgreSQL would: `<table>_<column>_check`, or `<table>_check`.
fn checks(
    table: &str,
    create: &str,
    declared: &std::result::Result<expr::DeclaredExprs, String>,
    scope: expr::Scope<'_>,
    notes: &mut Vec<String>,
) -> Vec<Check> {
    let d = match declared {
        Ok(d) => d,
        Err(why) => {
            if create.to_ascii_uppercase().contains("CHECK") {
                notes.push(format!(
                    "not carried: CHECK constraints of {table}: its CREATE TABLE {why}"
                ));
            }
            return vec![];
        }
    };
    let mut out: Vec<Check> = Vec::new();
    for c in &d.checks {
        let name = match (&c.name, &c.column) {
            (Some(n), _) => n.clone(),
            (None, Some(col)) => unique_name(
                &format!("{table}_{col}_check"),
                out.iter().map(|k| k.name.as_str()),
            ),
            (None, None) => unique_name(
                &format!("{table}_check"),
                out.iter().map(|k| k.name.as_str()),
            ),
        };
        match c
            .expr
            .clone()
            .and_then(|t| expr::rebuild(&t, expr::Engine::Sqlite, scope).map(|_| t))
        {
            Ok(expr) => out.push(Check { name, expr }),
            Err(why) => notes.push(format!("not carried: CHECK {name} on {table}: it {why}")),
        }
    }
    out
}

/// SQLite's affinity rules (§3.1 of "Datatypes In SQLite"), refined by the declared names
/// people use for booleans, dates and exact decimals.
pub fn map_declared_type(decl: &str) -> ColumnType {
    let u = decl.to_ascii_uppercase();
    let base = u.split('(').next().unwrap_or("").trim();
    // What ferry declares for exact numbers wider than NUMERIC affinity keeps (TEXT
    // affinity, see `target::sqlite::sqlite_type`), and for timestamps with a time zone.
    match base {
        "DECIMAL_TEXT" => {
            return match precision_scale(&u) {
                Some((p, s)) if (1..=38).contains(&p) && s <= p => ColumnType::Decimal128 {
                    precision: p,
                    scale: i8::try_from(s).unwrap_or(0),
                },
                _ => ColumnType::NumericText,
            };
        }
        "NUMERIC_TEXT" => return ColumnType::NumericText,
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => return ColumnType::Timestamp { utc: true },
        _ => {}
    }
    if u.contains("INT") {
        return ColumnType::Int64;
    }
    if u.contains("CHAR") || u.contains("CLOB") || u.contains("TEXT") {
        return ColumnType::Utf8;
    }
    if u.contains("BLOB") || u.trim().is_empty() {
        return ColumnType::Binary;
    }
    if u.contains("REAL") || u.contains("FLOA") || u.contains("DOUB") {
        return ColumnType::Float64;
    }
    match base {
        "BOOLEAN" | "BOOL" => return ColumnType::Boolean,
        "DATE" => return ColumnType::Date32,
        "DATETIME" | "TIMESTAMP" => return ColumnType::Timestamp { utc: false },
        "JSON" => return ColumnType::Json,
        _ => {}
    }
    if (base == "DECIMAL" || base == "NUMERIC")
        && let Some((p, s)) = precision_scale(&u)
        && (1..=38).contains(&p)
        && s <= p
    {
        return ColumnType::Decimal128 {
            precision: p,
            scale: i8::try_from(s).unwrap_or(0),
        };
    }
    ColumnType::NumericText
}

fn precision_scale(u: &str) -> Option<(u8, u8)> {
    let inner = u.split_once('(')?.1.split_once(')')?.0;
    let mut it = inner.split(',').map(|s| s.trim().parse::<u8>());
    let p = it.next()?.ok()?;
    let s = match it.next() {
        Some(s) => s.ok()?,
        None => 0,
    };
    Some((p, s))
}

/// Builds one column of a batch; chosen once per column from its canonical type.
trait ColumnReader {
    /// Appends one value, or says why it does not fit.
    fn push(&mut self, v: ValueRef<'_>) -> std::result::Result<usize, String>;
    fn finish(&mut self) -> ArrayRef;
}

fn kind(v: &ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "null",
        ValueRef::Integer(_) => "integer",
        ValueRef::Real(_) => "real",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "blob",
    }
}

fn utf8(b: &[u8]) -> std::result::Result<&str, String> {
    std::str::from_utf8(b).map_err(|e| format!("text is not valid UTF-8 ({e})"))
}

macro_rules! reader {
    ($name:ident, $builder:ty, |$b:ident, $v:ident| $body:expr) => {
        struct $name($builder);
        impl ColumnReader for $name {
            fn push(&mut self, $v: ValueRef<'_>) -> std::result::Result<usize, String> {
                let $b = &mut self.0;
                if let ValueRef::Null = $v {
                    $b.append_null();
                    return Ok(0);
                }
                $body
            }
            fn finish(&mut self) -> ArrayRef {
                Arc::new(self.0.finish())
            }
        }
    };
}

reader!(IntReader, Int64Builder, |b, v| match v {
    ValueRef::Integer(i) => {
        b.append_value(i);
        Ok(8)
    }
    other => Err(format!("a {} value in an INTEGER column", kind(&other))),
});

reader!(RealReader, Float64Builder, |b, v| match v {
    ValueRef::Real(f) => {
        b.append_value(f);
        Ok(8)
    }
    ValueRef::Integer(i) => {
        // exact only within ±2^53
        #[allow(clippy::cast_precision_loss)]
        let f = i as f64;
        if i.unsigned_abs() <= (1u64 << 53) {
            b.append_value(f);
            Ok(8)
        } else {
            Err(format!(
                "integer {i} cannot be held exactly by a REAL column"
            ))
        }
    }
    other => Err(format!("a {} value in a REAL column", kind(&other))),
});

reader!(BoolReader, BooleanBuilder, |b, v| match v {
    ValueRef::Integer(0) => {
        b.append_value(false);
        Ok(1)
    }
    ValueRef::Integer(1) => {
        b.append_value(true);
        Ok(1)
    }
    ValueRef::Integer(i) => Err(format!(
        "integer {i} in a BOOLEAN column (only 0 and 1 are booleans)"
    )),
    other => Err(format!("a {} value in a BOOLEAN column", kind(&other))),
});

reader!(TextReader, StringBuilder, |b, v| match v {
    ValueRef::Text(t) => {
        let s = utf8(t)?;
        b.append_value(s);
        Ok(s.len())
    }
    other => Err(format!("a {} value in a TEXT column", kind(&other))),
});

reader!(JsonReader, StringBuilder, |b, v| match v {
    ValueRef::Text(t) => {
        let s = utf8(t)?;
        b.append_value(s);
        Ok(s.len())
    }
    // JSON has NUMERIC affinity: a document that is a bare number is stored as one.
    ValueRef::Integer(i) => {
        b.append_value(i.to_string());
        Ok(8)
    }
    ValueRef::Real(f) if f.is_finite() => {
        b.append_value(text::format_f64(f));
        Ok(8)
    }
    other => Err(format!("a {} value in a JSON column", kind(&other))),
});

reader!(BlobReader, BinaryBuilder, |b, v| match v {
    ValueRef::Blob(x) => {
        b.append_value(x);
        Ok(x.len())
    }
    other => Err(format!(
        "a {} value in a BLOB column (declare the column's type to carry it)",
        kind(&other)
    )),
});

reader!(NumericTextReader, StringBuilder, |b, v| match v {
    ValueRef::Integer(i) => {
        b.append_value(i.to_string());
        Ok(8)
    }
    ValueRef::Real(f) if f.is_finite() => {
        b.append_value(text::format_f64(f));
        Ok(8)
    }
    ValueRef::Text(t) => {
        let s = utf8(t)?;
        if text::is_decimal_literal(s) || matches!(s, "NaN" | "Infinity" | "-Infinity") {
            b.append_value(s);
            Ok(s.len())
        } else {
            Err(format!("text {s:?} in a NUMERIC column is not a number"))
        }
    }
    other => Err(format!("a {} value in a NUMERIC column", kind(&other))),
});

reader!(DateReader, Date32Builder, |b, v| match v {
    ValueRef::Text(t) => {
        b.append_value(text::parse_date(utf8(t)?)?);
        Ok(4)
    }
    other => Err(format!(
        "a {} value in a DATE column (ferry reads dates written as YYYY-MM-DD text)",
        kind(&other)
    )),
});

reader!(
    TimestampReader,
    TimestampMicrosecondBuilder,
    |b, v| match v {
        ValueRef::Text(t) => {
            b.append_value(text::parse_timestamp(utf8(t)?)?);
            Ok(8)
        }
        other => Err(format!(
            "a {} value in a DATETIME column (ferry reads YYYY-MM-DD HH:MM:SS text)",
            kind(&other)
        )),
    }
);

reader!(
    TimestampTzReader,
    TimestampMicrosecondBuilder,
    |b, v| match v {
        ValueRef::Text(t) => {
            b.append_value(text::parse_timestamptz(utf8(t)?)?);
            Ok(8)
        }
        other => Err(format!(
            "a {} value in a TIMESTAMPTZ column (ferry reads YYYY-MM-DD HH:MM:SS[+HH:MM] text)",
            kind(&other)
        )),
    }
);

struct DecimalReader(Decimal128Builder, u8, i8);
impl ColumnReader for DecimalReader {
    fn push(&mut self, v: ValueRef<'_>) -> std::result::Result<usize, String> {
        let (p, s) = (self.1, self.2);
        let unscaled = match v {
            ValueRef::Null => {
                self.0.append_null();
                return Ok(0);
            }
            ValueRef::Integer(i) => text::parse_decimal(&i.to_string(), p, s)?,
            ValueRef::Real(f) if f.is_finite() => text::parse_decimal(&text::format_f64(f), p, s)?,
            ValueRef::Text(t) => text::parse_decimal(utf8(t)?, p, s)?,
            other => {
                return Err(format!(
                    "a {} value in a DECIMAL({p},{s}) column",
                    kind(&other)
                ));
            }
        };
        self.0.append_value(unscaled);
        Ok(16)
    }
    fn finish(&mut self) -> ArrayRef {
        let (p, s) = (self.1, self.2);
        Arc::new(
            self.0
                .finish()
                .with_precision_and_scale(p, s)
                .expect("checked precision"),
        )
    }
}

fn column_reader(ty: &ColumnType, cap: usize) -> Result<Box<dyn ColumnReader>> {
    Ok(match ty {
        ColumnType::Int64 => Box::new(IntReader(Int64Builder::with_capacity(cap))),
        ColumnType::Float64 => Box::new(RealReader(Float64Builder::with_capacity(cap))),
        ColumnType::Boolean => Box::new(BoolReader(BooleanBuilder::with_capacity(cap))),
        ColumnType::Utf8 => Box::new(TextReader(StringBuilder::new())),
        ColumnType::Json => Box::new(JsonReader(StringBuilder::new())),
        ColumnType::Binary => Box::new(BlobReader(BinaryBuilder::new())),
        ColumnType::NumericText => Box::new(NumericTextReader(StringBuilder::new())),
        ColumnType::Date32 => Box::new(DateReader(Date32Builder::with_capacity(cap))),
        ColumnType::Timestamp { utc: false } => Box::new(TimestampReader(
            TimestampMicrosecondBuilder::with_capacity(cap),
        )),
        ColumnType::Timestamp { utc: true } => Box::new(TimestampTzReader(
            TimestampMicrosecondBuilder::with_capacity(cap).with_timezone("UTC"),
        )),
        ColumnType::Decimal128 { precision, scale } => Box::new(DecimalReader(
            Decimal128Builder::with_capacity(cap),
            *precision,
            *scale,
        )),
        other => {
            return Err(Error::Data(format!(
                "the SQLite reader cannot produce {}",
                other.describe()
            )));
        }
    })
}

impl SqliteSource {
    /// What SQLite tables have that ferry does not carry: what each table's definition
    /// names (expressions outside the rules, see `table_def`), and the views and triggers
    /// of the file.
    /// Every table (virtual tables and SQLite's own left out) and view: (name, is a view).
    fn listed(&self) -> Result<Vec<(String, bool)>> {
        let err = |e| db_err("listing tables", e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, type = 'view' FROM sqlite_master WHERE type IN ('table', 'view') \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_ferry\\_%' ESCAPE '\\' \
                 AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
            )
            .map_err(err)?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|r| r.collect())
            .map_err(err)
    }

    fn file_not_carried(&self, tables: &[TableDef]) -> Result<Vec<String>> {
        let err = |e| db_err("listing what is not carried", e);
        let mut out: Vec<String> = tables
            .iter()
            .flat_map(|t| t.not_carried.iter().cloned())
            .collect();
        let mut st = self
            .conn
            .prepare(
                "SELECT type, name FROM sqlite_master WHERE type IN ('view', 'trigger') \
                 ORDER BY type DESC, name",
            )
            .map_err(err)?;
        let rows: Vec<(String, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|r| r.collect())
            .map_err(err)?;
        for kind in ["view", "trigger"] {
            let names: Vec<&str> = rows
                .iter()
                .filter(|(k, _)| k == kind)
                // A view named with --table travels as a table.
                .filter(|(k, n)| {
                    !(k == "view" && tables.iter().any(|t| t.from_view && t.name == *n))
                })
                .map(|(_, n)| n.as_str())
                .collect();
            if !names.is_empty() {
                out.push(format!("{kind}s are not carried: {}", names.join(", ")));
            }
        }
        Ok(out)
    }
}

impl Source for SqliteSource {
    fn not_carried(&mut self, tables: &[TableDef]) -> Result<Vec<String>> {
        self.file_not_carried(tables)
    }

    fn info(&self) -> SourceInfo {
        let file = std::path::Path::new(&self.path)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.clone());
        SourceInfo {
            engine: "sqlite".into(),
            database: file,
            snapshot: Some("one read transaction".into()),
            source_id_basis: Some(file_identity(&self.path).basis),
        }
    }

    fn source_id(&self) -> String {
        file_identity(&self.path).id
    }

    fn list(&mut self) -> Result<Vec<TableDef>> {
        Ok(self
            .listed()?
            .into_iter()
            .map(|(name, from_view)| TableDef {
                name,
                from_view,
                ..Default::default()
            })
            .collect())
    }

    fn tables(&mut self, selection: &Selection) -> Result<Vec<TableDef>> {
        let mut out = Vec::new();
        for (n, view) in self.listed()? {
            let probe = TableDef {
                name: n.clone(),
                ..Default::default()
            };
            // A view is read only when `--table` names it.
            let wanted = if view {
                selection.names(&probe)
            } else {
                selection.wants(&probe)
            };
            if wanted {
                out.push(self.table_def(&n, view)?);
            }
        }
        Ok(out)
    }

    fn begin_snapshot(&mut self) -> Result<()> {
        if !self.in_snapshot {
            // A deferred transaction takes its snapshot at the first read and keeps it.
            self.conn
                .execute_batch("BEGIN; SELECT count(*) FROM sqlite_master;")
                .map_err(|e| db_err("BEGIN", e))?;
            self.in_snapshot = true;
        }
        Ok(())
    }

    fn count_rows(&mut self, table: &TableDef, filter: Option<&str>) -> Result<Option<u64>> {
        let sql = format!(
            "SELECT count(*) FROM {}{}",
            quote(&table.name),
            where_clause(filter)
        );
        let n: i64 = self
            .conn
            .query_row(&sql, [], |r| r.get(0))
            .map_err(|e| db_err(&format!("counting {}", table.name), e))?;
        Ok(u64::try_from(n).ok())
    }

    fn estimate(&mut self, table: &TableDef) -> Result<Estimate> {
        // Counting is what SQLite has (no statistics to ask); the bytes are the pages of
        // the table and its indexes (the dbstat table).
        let rows = Rows::Counted(self.count_exact(table, None)?);
        let bytes: Option<i64> = self
            .conn
            .query_row(
                "SELECT sum(pgsize) FROM dbstat WHERE name = ?1 \
                 OR name IN (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1)",
                [&table.name],
                |r| r.get(0),
            )
            .ok()
            .flatten();
        Ok(Estimate {
            rows,
            bytes: bytes.and_then(|b| u64::try_from(b).ok()),
        })
    }

    fn count_exact(&mut self, table: &TableDef, filter: Option<&str>) -> Result<u64> {
        Ok(self.count_rows(table, filter)?.unwrap_or(0))
    }

    fn check_filter(&mut self, table: &TableDef, filter: &str) -> Result<()> {
        let sql = format!(
            "SELECT 1 FROM {} WHERE ({filter}) LIMIT 0",
            quote(&table.name)
        );
        match self.conn.prepare(&sql).map_err(|e| {
            let why = e.to_string();
            let what = format!("checking the --where predicate of {}", table.name);
            (db_err(&what, e), why)
        }) {
            Ok(_) => Ok(()),
            // A locked file is worth a retry; anything else is the predicate.
            Err((e @ Error::Temporary(_), _)) => Err(e),
            Err((_, why)) => Err(Error::Usage(format!(
                "--where {}:…: SQLite refuses the predicate: {why}; give one boolean expression over \
                 the table's columns",
                table.name
            ))),
        }
    }

    fn text_type(&self, max_chars: Option<u32>) -> String {
        match max_chars {
            Some(n) => format!("VARCHAR({n})"),
            None => "TEXT".into(),
        }
    }

    fn high_water(&mut self, table: &TableDef, column: &str) -> Result<Option<String>> {
        let sql = format!(
            "SELECT CAST(max({}) AS TEXT) FROM {}",
            quote(column),
            quote(&table.name)
        );
        self.conn
            .query_row(&sql, [], |r| r.get::<_, Option<String>>(0))
            .map_err(|e| db_err(&format!("reading the high-water mark of {}", table.name), e))
    }

    fn read(
        &mut self,
        table: &TableDef,
        filter: Option<&str>,
        limits: BatchLimits,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64> {
        let schema = table.arrow_schema("sqlite");
        let cols: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
        let sql = format!(
            "SELECT {} FROM {}{}",
            cols.join(", "),
            quote(&table.name),
            where_clause(filter)
        );
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(|e| db_err(&format!("reading {}", table.name), e))?;
        let make = |cap| {
            table
                .columns
                .iter()
                .map(|c| column_reader(&c.ty, cap))
                .collect::<Result<Vec<_>>>()
        };
        let mut readers = make(limits.rows)?;
        let mut rows = stmt
            .query([])
            .map_err(|e| db_err(&format!("reading {}", table.name), e))?;
        let (mut n, mut in_batch, mut bytes) = (0u64, 0usize, 0usize);
        let flush = |readers: &mut Vec<Box<dyn ColumnReader>>,
                     sink: &mut dyn FnMut(RecordBatch) -> Result<()>| {
            let arrays: Vec<ArrayRef> = readers.iter_mut().map(|r| r.finish()).collect();
            let batch = RecordBatch::try_new(schema.clone(), arrays)
                .map_err(|e| Error::Data(format!("table {}: {e}", table.name)))?;
            sink(batch)
        };
        while let Some(row) = rows
            .next()
            .map_err(|e| db_err(&format!("reading {}", table.name), e))?
        {
            n += 1;
            for (i, r) in readers.iter_mut().enumerate() {
                let v = row.get_ref(i).map_err(|e| db_err("reading a value", e))?;
                let col = &table.columns[i];
                if matches!(v, ValueRef::Null) && !col.nullable {
                    return Err(Error::Data(format!(
                        "table {:?}, column {:?}, row {n}: NULL in a NOT NULL column",
                        table.name, col.name
                    )));
                }
                bytes += r.push(v).map_err(|why| {
                    Error::Data(format!(
                        "table {:?}, column {:?} ({}), row {n}: {why}; ferry does not change values silently: \
                         fix the value or the column's declared type, or leave the table out with --exclude",
                        table.name,
                        col.name,
                        if col.source_type.is_empty() { "no declared type" } else { &col.source_type }
                    ))
                })?;
            }
            in_batch += 1;
            if in_batch >= limits.rows || bytes >= limits.bytes {
                flush(&mut readers, sink)?;
                in_batch = 0;
                bytes = 0;
            }
        }
        if in_batch > 0 {
            flush(&mut readers, sink)?;
        }
        Ok(n)
    }
}

fn where_clause(filter: Option<&str>) -> String {
    filter.map(|f| format!(" WHERE ({f})")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_rules() {
        assert_eq!(map_declared_type("INTEGER"), ColumnType::Int64);
        assert_eq!(map_declared_type("bigint"), ColumnType::Int64);
        assert_eq!(map_declared_type("VARCHAR(40)"), ColumnType::Utf8);
        assert_eq!(map_declared_type(""), ColumnType::Binary);
        assert_eq!(map_declared_type("DOUBLE PRECISION"), ColumnType::Float64);
        assert_eq!(map_declared_type("BOOLEAN"), ColumnType::Boolean);
        assert_eq!(map_declared_type("DATE"), ColumnType::Date32);
        assert_eq!(
            map_declared_type("DATETIME"),
            ColumnType::Timestamp { utc: false }
        );
        assert_eq!(
            map_declared_type("DECIMAL(12,2)"),
            ColumnType::Decimal128 {
                precision: 12,
                scale: 2
            }
        );
        assert_eq!(map_declared_type("NUMERIC"), ColumnType::NumericText);
        assert_eq!(map_declared_type("numeric(50,2)"), ColumnType::NumericText);
        // What the SQLite loader declares for exact values NUMERIC affinity would round.
        assert_eq!(
            map_declared_type("DECIMAL_TEXT(30,10)"),
            ColumnType::Decimal128 {
                precision: 30,
                scale: 10
            }
        );
        assert_eq!(
            map_declared_type("DECIMAL_TEXT(60,10)"),
            ColumnType::NumericText
        );
        assert_eq!(map_declared_type("NUMERIC_TEXT"), ColumnType::NumericText);
        assert_eq!(
            map_declared_type("TIMESTAMPTZ"),
            ColumnType::Timestamp { utc: true }
        );
        assert_eq!(path_of("sqlite:///tmp/x.db").unwrap(), "/tmp/x.db");
        assert_eq!(path_of("sqlite://rel.db").unwrap(), "rel.db");
        assert!(path_of("sqlite://").is_err());
    }
}
