//! The canonical type table (docs/TYPES.md): every column travels as one of these
//! Arrow types. Readers map their engine's types onto it, loaders map back from it.
//! This module knows no engine: engine-specific names live in `source` and `target`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, IntervalUnit, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

pub mod fingerprint;
pub mod identity;

/// The logical size of a batch: the bytes of its Arrow buffers for the rows it holds
/// (values, offsets, validity; not spare capacity), the D of a run before compression.
/// Export counts it over the batches read from the source, import over those decoded from
/// the bundle, so both report the same figure for the same rows.
pub fn logical_size(batch: &arrow::record_batch::RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size()) as u64
        })
        .sum()
}
pub mod text;

/// Arrow field metadata keys ferry writes into every part's embedded schema.
pub const META_SOURCE_TYPE: &str = "ferry.source_type";
pub const META_ENGINE: &str = "ferry.engine";
pub const META_LOGICAL: &str = "ferry.logical";
/// Arrow's canonical extension-type key.
pub const META_EXTENSION: &str = "ARROW:extension:name";
/// Arrow's extension-metadata key: `arrow.json` requires it (empty), or the Parquet writer
/// does not recognise the extension and writes a plain STRING instead of JSON.
pub const META_EXTENSION_METADATA: &str = "ARROW:extension:metadata";

/// A column's canonical type, as recorded in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ColumnType {
    Boolean,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Float32,
    Float64,
    Decimal128 {
        precision: u8,
        scale: i8,
    },
    Decimal256 {
        precision: u8,
        scale: i8,
    },
    /// An exact decimal of unconstrained precision carried as its canonical text.
    NumericText,
    Utf8,
    Binary,
    Date32,
    /// Microseconds; `utc` for zone-aware timestamps.
    Timestamp {
        utc: bool,
    },
    Time64,
    /// Months, days and microseconds (PostgreSQL interval).
    Interval,
    Uuid,
    Json,
    /// A one-dimensional array of the element type; elements may be NULL.
    List {
        element: Box<ColumnType>,
    },
}

impl ColumnType {
    /// Signed or unsigned integers of any width.
    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            ColumnType::Int16
                | ColumnType::Int32
                | ColumnType::Int64
                | ColumnType::UInt8
                | ColumnType::UInt16
                | ColumnType::UInt32
                | ColumnType::UInt64
        )
    }

    pub fn arrow(&self) -> DataType {
        match self {
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Int16 => DataType::Int16,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::UInt8 => DataType::UInt8,
            ColumnType::UInt16 => DataType::UInt16,
            ColumnType::UInt32 => DataType::UInt32,
            ColumnType::UInt64 => DataType::UInt64,
            ColumnType::Float32 => DataType::Float32,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Decimal128 { precision, scale } => DataType::Decimal128(*precision, *scale),
            ColumnType::Decimal256 { precision, scale } => DataType::Decimal256(*precision, *scale),
            ColumnType::NumericText | ColumnType::Utf8 | ColumnType::Json => DataType::Utf8,
            ColumnType::Binary => DataType::Binary,
            ColumnType::Date32 => DataType::Date32,
            ColumnType::Timestamp { utc } => {
                DataType::Timestamp(TimeUnit::Microsecond, utc.then(|| Arc::from("UTC")))
            }
            ColumnType::Time64 => DataType::Time64(TimeUnit::Microsecond),
            ColumnType::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            ColumnType::Uuid => DataType::FixedSizeBinary(16),
            ColumnType::List { element } => {
                DataType::List(Arc::new(Field::new("item", element.arrow(), true)))
            }
        }
    }

    /// A short name for messages: `decimal(12,2)`, `timestamp`, `text`.
    pub fn describe(&self) -> String {
        match self {
            ColumnType::Decimal128 { precision, scale }
            | ColumnType::Decimal256 { precision, scale } => {
                format!("decimal({precision},{scale})")
            }
            ColumnType::NumericText => "numeric".into(),
            ColumnType::Timestamp { utc: true } => "timestamptz".into(),
            ColumnType::Timestamp { utc: false } => "timestamp".into(),
            ColumnType::List { element } => format!("{}[]", element.describe()),
            other => format!("{other:?}").to_lowercase(),
        }
    }
}

/// One column of a table, as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    pub nullable: bool,
    /// The source engine's own spelling of the type (`VARCHAR(40)`, `numeric(12,2)`), used
    /// to recreate it exactly on a same-engine import.
    pub source_type: String,
    /// A constant default in the source engine's SQL, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// For an enum column (or an array of one): the type to create first on a
    /// same-engine import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enum_type: Option<EnumType>,
    /// For a domain column: the domain to create first on a same-engine import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_type: Option<DomainType>,
    /// The value travels as the type's text form and is restored through the type's own
    /// input function (types without a canonical Arrow type, e.g. inet, tsvector).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub as_text: bool,
    /// Why a column of a type with a canonical Arrow type travels as text anyway: a value
    /// its canonical type has no room for (NaN in a numeric(p,s), an array with another
    /// lower bound), for pre-flight and the summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_reason: Option<String>,
    /// The column's collation when not its type's default, `"schema"."name"` (PostgreSQL;
    /// a same-engine import recreates it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<String>,
    /// The column fills itself from a counter (identity, serial, AUTO_INCREMENT, SQLite's
    /// rowid): recreated on the target and advanced past the loaded rows after every load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// A generated column: its values travel as data; a same-engine import recreates the
    /// expression (and loads nothing into it), another engine loads the values as data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<Generated>,
}

/// Declared text lengths as engines print them: `character varying(40)`, `varchar(40)`,
/// `CHAR(2)`, `nvarchar(10)`.
static TEXT_LENGTH: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"(?i)^(character varying|varchar|nvarchar|character|char|nchar)\s*\(\s*([0-9]{1,6})\s*\)",
    )
    .expect("regex")
});

impl Column {
    /// The length the source type of a text column declares (`varchar(40)` → 40), if any.
    pub fn declared_length(&self) -> Option<u32> {
        TEXT_LENGTH
            .captures(&self.source_type)
            .and_then(|m| m[2].parse().ok())
    }
}

/// How a column fills itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// PostgreSQL `GENERATED ALWAYS AS IDENTITY`.
    Always,
    /// PostgreSQL `GENERATED BY DEFAULT AS IDENTITY`.
    ByDefault,
    /// PostgreSQL `serial`: a sequence owned by the column, `nextval` as its default.
    Serial,
    /// MySQL/MariaDB `AUTO_INCREMENT`, SQLite `INTEGER PRIMARY KEY AUTOINCREMENT`.
    AutoIncrement,
    /// SQLite `INTEGER PRIMARY KEY` (an alias of the rowid).
    Rowid,
}

/// A column's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub kind: IdentityKind,
}

/// A generated column's expression, in the source engine's SQL (checked and rebuilt by
/// `expr` before any target sees it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generated {
    pub expr: String,
    /// STORED (PERSISTENT); false: VIRTUAL.
    pub stored: bool,
}

/// A CHECK constraint of a table (or one of its columns), its expression in the source
/// engine's SQL, without the `CHECK ( )` around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub name: String,
    pub expr: String,
}

/// What a foreign key does when its referenced row is deleted or its key updated (NO
/// ACTION, the default, is not recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FkAction {
    Cascade,
    SetNull,
    SetDefault,
    Restrict,
}

impl FkAction {
    /// The SQL words (the same in every engine ferry loads into).
    pub fn sql(self) -> &'static str {
        match self {
            FkAction::Cascade => "CASCADE",
            FkAction::SetNull => "SET NULL",
            FkAction::SetDefault => "SET DEFAULT",
            FkAction::Restrict => "RESTRICT",
        }
    }

    /// From the words a catalog prints (`CASCADE`, `SET NULL`, `NO ACTION`, …); `None` for
    /// NO ACTION and anything unknown.
    pub fn parse(words: &str) -> Option<FkAction> {
        match words.trim().to_ascii_uppercase().as_str() {
            "CASCADE" | "C" => Some(FkAction::Cascade),
            "SET NULL" | "N" => Some(FkAction::SetNull),
            "SET DEFAULT" | "D" => Some(FkAction::SetDefault),
            "RESTRICT" | "R" => Some(FkAction::Restrict),
            _ => None,
        }
    }
}

/// A user-defined enum type: qualified name as the engine prints it, and its labels in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnumType {
    pub schema: String,
    pub name: String,
    pub labels: Vec<String>,
}

/// A user-defined domain: its base type as the engine prints it, NOT NULL, default and
/// CHECK constraints (engine SQL, used only on a same-engine import).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainType {
    pub schema: String,
    pub name: String,
    pub base: String,
    pub not_null: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
}

/// A foreign key, added last when every referenced table is in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_schema: Option<String>,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<FkAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_update: Option<FkAction>,
}

impl ForeignKey {
    /// ` ON DELETE … ON UPDATE …`, or nothing.
    pub fn actions_sql(&self) -> String {
        let mut s = String::new();
        if let Some(a) = self.on_delete {
            s.push_str(" ON DELETE ");
            s.push_str(a.sql());
        }
        if let Some(a) = self.on_update {
            s.push_str(" ON UPDATE ");
            s.push_str(a.sql());
        }
        s
    }
}

/// An index to recreate after the data is in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    /// Key columns, in order.
    pub columns: Vec<String>,
    /// The access method when it is not the engine's default (PostgreSQL `gist`, `spgist`,
    /// `gin`, `brin`, `hash`); a same-engine import uses it, another engine refuses nothing
    /// and builds its default kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Per key column (same length as `columns`, or empty): the operator class when it is
    /// not the type's default one, as `schema.name` (PostgreSQL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opclasses: Vec<Option<String>>,
    /// Per key column (or empty): sort order and NULLS placement (PostgreSQL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orders: Vec<KeyOrder>,
    /// Non-key columns stored in the index (PostgreSQL `INCLUDE`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// A UNIQUE constraint (not only a unique index) on a same-engine import.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub constraint: bool,
    /// Storage parameters (`fillfactor`, `deduplicate_items`, BRIN `pages_per_range`), as
    /// name and value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<(String, String)>,
}

/// The order of one index key column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyOrder {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub desc: bool,
    /// NULLS FIRST (the default for DESC, not for ASC).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nulls_first: bool,
}

/// A table named by schema and name (PostgreSQL inheritance parents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub name: String,
}

/// A user-defined type a same-engine import creates before the tables that use it
/// (PostgreSQL). Definitions hold names and type names as the engine prints them, never
/// expressions, except a domain's default and CHECKs (see [`DomainType`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum UserType {
    Enum(EnumType),
    Domain(DomainType),
    /// `CREATE TYPE name AS (attr type, …)`.
    Composite {
        schema: String,
        name: String,
        /// Attributes in order.
        attributes: Vec<CompositeAttribute>,
    },
    /// `CREATE TYPE name AS RANGE (subtype = …)`.
    Range {
        schema: String,
        name: String,
        /// The subtype (`format_type`).
        subtype: String,
        /// The subtype's btree operator class when not its default, `schema.name`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subtype_opclass: Option<String>,
        /// The collation when not the subtype's default, `schema.name`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        collation: Option<String>,
        /// The multirange type's name when not the one PostgreSQL would derive.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        multirange: Option<(String, String)>,
        /// The subtype_diff function, only when it is one of the system catalog's
        /// (`"pg_catalog"."float8mi"`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subtype_diff: Option<String>,
    },
}

/// One attribute of a composite type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompositeAttribute {
    pub name: String,
    /// Its type (`format_type`).
    #[serde(rename = "type")]
    pub ty: String,
    /// Its collation when not its type's, `"schema"."name"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<String>,
}

impl UserType {
    /// `(schema, name)` of the type.
    pub fn key(&self) -> (&str, &str) {
        match self {
            UserType::Enum(e) => (&e.schema, &e.name),
            UserType::Domain(d) => (&d.schema, &d.name),
            UserType::Composite { schema, name, .. } | UserType::Range { schema, name, .. } => {
                (schema, name)
            }
        }
    }
}

/// The shape of one table: what the catalog records and what a loader recreates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub name: String,
    pub columns: Vec<Column>,
    #[serde(default)]
    pub primary_key: Vec<String>,
    #[serde(default)]
    pub indexes: Vec<Index>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKey>,
    /// A partitioned table (PostgreSQL): recreated with its partitions on a same-engine
    /// import; its rows are read once, through the parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioning: Option<Partitioning>,
    /// The primary key's constraint name, when the engine has one (PostgreSQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key_name: Option<String>,
    /// Non-key columns of the primary key's index (PostgreSQL `INCLUDE`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key_include: Vec<String>,
    /// Inheritance parents (PostgreSQL `INHERITS`), in order. The table's rows are its own
    /// (read with `ONLY`); a same-engine import links it to its parents after the load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherits: Vec<TableRef>,
    /// User-defined types the columns need, dependencies first (PostgreSQL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_types: Vec<UserType>,
    /// What the table has that ferry does not carry, as sentences for the summary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_carried: Vec<String>,
    /// Extensions whose types the columns use (PostgreSQL `citext`, `hstore`, `postgis`):
    /// a same-engine import needs them installed on the target, and pre-flight says so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
    /// CHECK constraints of the table and its columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// The rows were read from a view named with `--table` (docs/FORMAT.md): they travel
    /// and load as a plain table of the view's name, without a primary key, indexes or
    /// foreign keys.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_view: bool,
}

/// How a table is partitioned: the key as the engine prints it, and its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partitioning {
    /// `RANGE (day)`, `LIST (region)`, `HASH (id)`.
    pub key: String,
    pub partitions: Vec<Partition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    pub schema: String,
    pub name: String,
    /// `FOR VALUES FROM (…) TO (…)`, `DEFAULT`, …
    pub bound: String,
    /// The partition's own columns in its own order (a partition made apart and attached
    /// may order them differently from its parent), with its own NOT NULLs and defaults.
    /// Empty in bundles of ferry 0.1: the partition is then made `PARTITION OF` its parent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<PartitionColumn>,
    /// Indexes made on the partition itself, not through its parent's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<Index>,
    /// Foreign keys of the partition itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKey>,
    /// A partition that is itself partitioned, with its own partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioning: Option<Box<Partitioning>>,
}

/// One column of a partition: its type is the parent's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionColumn {
    pub name: String,
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

impl TableDef {
    /// The definition a table's primary-key set is written and read with (a chain's
    /// `--deletes`): the key columns only, with no indexes, foreign keys or partitions.
    pub fn key_table(&self) -> TableDef {
        let mut k = self.clone();
        k.columns.retain(|c| self.primary_key.contains(&c.name));
        k.indexes.clear();
        k.foreign_keys.clear();
        k.partitioning = None;
        k.inherits.clear();
        k.checks.clear();
        for c in &mut k.columns {
            c.generated = None;
            c.identity = None;
            c.default = None;
        }
        k
    }

    /// Whether any column is generated (its values are not loaded on a same-engine import).
    pub fn has_generated(&self) -> bool {
        self.columns.iter().any(|c| c.generated.is_some())
    }

    /// The table as a load writes it: without its generated columns (the target computes
    /// them), and the positions of the columns kept.
    pub fn loaded(&self) -> (TableDef, Vec<usize>) {
        let keep: Vec<usize> = (0..self.columns.len())
            .filter(|&i| self.columns[i].generated.is_none())
            .collect();
        let mut t = self.clone();
        t.columns = keep.iter().map(|&i| self.columns[i].clone()).collect();
        (t, keep)
    }

    /// `schema.name` or `name`, for messages and selection.
    pub fn qualified(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.name),
            None => self.name.clone(),
        }
    }

    /// The Arrow schema of this table's parts, with the source types in field metadata.
    pub fn arrow_schema(&self, engine: &str) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| {
                let mut meta = HashMap::from([
                    (META_SOURCE_TYPE.to_string(), c.source_type.clone()),
                    (META_ENGINE.to_string(), engine.to_string()),
                ]);
                match c.ty {
                    ColumnType::Uuid => {
                        meta.insert(META_EXTENSION.into(), "arrow.uuid".into());
                    }
                    ColumnType::Json => {
                        meta.insert(META_EXTENSION.into(), "arrow.json".into());
                        meta.insert(META_EXTENSION_METADATA.into(), String::new());
                    }
                    ColumnType::NumericText => {
                        meta.insert(META_LOGICAL.into(), "numeric".into());
                    }
                    _ => {}
                }
                Field::new(&c.name, c.ty.arrow(), c.nullable).with_metadata(meta)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }
}

/// Where the data came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceInfo {
    /// `sqlite`, `postgres`, `mysql`.
    pub engine: String,
    /// The database (file name for SQLite), without credentials.
    pub database: String,
    /// How the tables were read consistently (snapshot id or "single transaction").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// How the manifest's source id was derived ([`identity`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id_basis: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_types_serialise_with_a_kind_tag() {
        let t = ColumnType::Decimal128 {
            precision: 12,
            scale: 2,
        };
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(s, r#"{"kind":"decimal128","precision":12,"scale":2}"#);
        assert_eq!(serde_json::from_str::<ColumnType>(&s).unwrap(), t);
        assert!(serde_json::from_str::<ColumnType>(r#"{"kind":"nope"}"#).is_err());
    }

    #[test]
    fn schema_carries_source_types() {
        let t = TableDef {
            schema: None,
            name: "t".into(),
            columns: vec![Column {
                name: "a".into(),
                ty: ColumnType::Utf8,
                nullable: true,
                source_type: "VARCHAR(40)".into(),
                default: None,
                enum_type: None,
                domain_type: None,
                as_text: false,
                text_reason: None,
                collation: None,
                identity: None,
                generated: None,
            }],
            primary_key: vec![],
            indexes: vec![],
            foreign_keys: vec![],
            partitioning: None,
            ..Default::default()
        };
        let s = t.arrow_schema("sqlite");
        assert_eq!(s.field(0).metadata()[META_SOURCE_TYPE], "VARCHAR(40)");
        assert_eq!(s.field(0).data_type(), &DataType::Utf8);
    }
}
