//! Column masking at export (`--mask TABLE.COLUMN=RULE`): each batch is masked as it comes
//! out of the source's reader, before Parquet, fingerprints or row counts see it, so an
//! unmasked value never reaches a part, a bundle or a log. docs/MIGRATIONS.md ("Clean").
//!
//! Rules (NULL stays NULL under every rule):
//! - `null`: every value NULL (the column must be nullable);
//! - `redact`: every value the text `REDACTED` (text columns);
//! - `hash`: HMAC-SHA256 of the value under the mask key, 64 lowercase hex digits (text
//!   columns, and integer columns, hashed as their decimal text: the column becomes text).
//!   Equal values give equal hashes, in every table and every export under the same key, so
//!   joins survive;
//! - `email`: `hash` of the local part (before the last `@`), the `@domain` kept (a value
//!   without `@` is hashed whole);
//! - `truncate:N`: the first N characters (text columns).
//!
//! The mask key comes from a key file (`ferry keygen`): the HMAC key is derived from it by
//! HKDF-SHA256 (info `ferry mask v1`), so it never equals a bundle's key even when the same
//! file opens both. The catalog records per column the rule and the key file's id, never
//! the key. This module knows no engine: the source names its text type.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder, new_null_array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::bundle::catalog::Mask;
use crate::crypto::keys::KeyFileKey;
use crate::types::{Column, ColumnType, TableDef};
use crate::{Error, Result};

/// What `redact` writes.
pub const REDACTED: &str = "REDACTED";
/// Hex digits of an HMAC-SHA256.
const HASH_CHARS: u32 = 64;
/// The HKDF info the mask key is derived with.
const MASK_INFO: &[u8] = b"ferry mask v1";

/// A masking rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Null,
    Redact,
    Hash,
    Email,
    Truncate(u32),
}

impl Rule {
    pub fn parse(s: &str) -> std::result::Result<Rule, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "null" => Ok(Rule::Null),
            "redact" => Ok(Rule::Redact),
            "hash" => Ok(Rule::Hash),
            "email" => Ok(Rule::Email),
            other => match other.strip_prefix("truncate:").map(str::parse::<u32>) {
                Some(Ok(n)) if n > 0 => Ok(Rule::Truncate(n)),
                Some(_) => Err(format!(
                    "{s:?}: truncate takes a number of characters above 0 (truncate:8)"
                )),
                None => Err(format!(
                    "{s:?} is not a mask rule (null, redact, hash, email, truncate:N)"
                )),
            },
        }
    }

    /// The rule as the command line and the catalog spell it.
    pub fn name(&self) -> String {
        match self {
            Rule::Null => "null".into(),
            Rule::Redact => "redact".into(),
            Rule::Hash => "hash".into(),
            Rule::Email => "email".into(),
            Rule::Truncate(n) => format!("truncate:{n}"),
        }
    }

    /// Whether the rule needs the mask key.
    pub fn keyed(&self) -> bool {
        matches!(self, Rule::Hash | Rule::Email)
    }
}

/// One `--mask TABLE.COLUMN=RULE` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskSpec {
    /// `TABLE.COLUMN` (`schema.table.column` too).
    pub target: String,
    pub rule: Rule,
}

impl MaskSpec {
    /// Parses `TABLE.COLUMN=RULE`; a malformed one is a usage error.
    pub fn parse(s: &str) -> Result<MaskSpec> {
        let (target, rule) = s
            .rsplit_once('=')
            .filter(|(t, r)| t.contains('.') && !r.is_empty())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--mask {s:?}: expected TABLE.COLUMN=RULE (rules: null, redact, hash, email, truncate:N)"
                ))
            })?;
        let rule = Rule::parse(rule).map_err(|why| Error::Usage(format!("--mask {s:?}: {why}")))?;
        Ok(MaskSpec {
            target: target.to_string(),
            rule,
        })
    }
}

/// The HMAC key of `hash` and `email`, derived from a key file.
pub struct MaskKey {
    mac: Hmac<Sha256>,
    /// The key file's id (`k1_…`), for the catalog.
    key_id: String,
}

impl std::fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MaskKey({})", self.key_id)
    }
}

impl MaskKey {
    /// HKDF-SHA256 of the key file's key, info `ferry mask v1`, no salt (the same key file
    /// gives the same hashes in every export, so tables exported apart still join).
    pub fn derive(k: &KeyFileKey) -> MaskKey {
        let hk = hkdf::Hkdf::<Sha256>::new(None, k.bytes());
        let mut okm = zeroize::Zeroizing::new([0u8; 32]);
        hk.expand(MASK_INFO, &mut okm[..])
            .expect("32 bytes is a valid HKDF-SHA256 length");
        MaskKey {
            mac: Hmac::<Sha256>::new_from_slice(&okm[..]).expect("HMAC takes any key size"),
            key_id: k.id().to_string(),
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// HMAC-SHA256 of `data`, 64 lowercase hex digits.
    pub fn hash_hex(&self, data: &[u8]) -> String {
        let mut m = self.mac.clone();
        m.update(data);
        hex::encode(m.finalize().into_bytes())
    }
}

/// A mask resolved against an exported table's column.
#[derive(Debug, Clone)]
pub struct ColumnMask {
    /// The table's qualified name.
    pub table: String,
    pub column: String,
    pub rule: Rule,
    /// The column as exported when masking changes its definition (made text), else `None`.
    masked: Option<Column>,
    /// The column's source type before masking, when it changed.
    was: Option<String>,
}

/// Every mask of an export, checked against its tables.
#[derive(Debug, Clone, Default)]
pub struct Masks {
    columns: Vec<ColumnMask>,
    key: Option<Arc<MaskKey>>,
    /// Per table (qualified name): what masking changed besides values (constraints not
    /// carried, types made text), for the summary, `plan` and the catalog's not-carried list.
    notes: HashMap<String, Vec<String>>,
    /// The source's dialect, for reading its expressions.
    engine: Option<crate::expr::Engine>,
}

/// Whether a column may hold this rule's output: its canonical type before masking.
fn fits(rule: Rule, ty: &ColumnType) -> bool {
    match rule {
        Rule::Null => true,
        Rule::Hash => *ty == ColumnType::Utf8 || ty.is_integer(),
        Rule::Redact | Rule::Email | Rule::Truncate(_) => *ty == ColumnType::Utf8,
    }
}

impl Masks {
    /// Resolves `--mask` against the exported tables. Each `TABLE.COLUMN` must name one
    /// column of one of them, once; the rule must fit the column; a keyed rule needs `key`
    /// unless `need_key` is false (`plan`, a dry run). `text_type` is the source's spelling
    /// of a text column of at most N characters. Refusals are usage errors (exit 2).
    pub fn resolve(
        specs: &[MaskSpec],
        key: Option<Arc<MaskKey>>,
        need_key: bool,
        tables: &[TableDef],
        engine: crate::expr::Engine,
        text_type: &dyn Fn(Option<u32>) -> String,
    ) -> Result<Masks> {
        let mut out = Masks {
            columns: vec![],
            key,
            notes: HashMap::new(),
            engine: Some(engine),
        };
        for spec in specs {
            let (t, c) = find(tables, &spec.target)?;
            let q = t.qualified();
            let given = format!("--mask {}={}", spec.target, spec.rule.name());
            if out
                .columns
                .iter()
                .any(|m| m.table == q && m.column == c.name)
            {
                return Err(Error::Usage(format!(
                    "{given}: column {q}.{} is masked twice; give one rule per column",
                    c.name
                )));
            }
            if !fits(spec.rule, &c.ty) {
                return Err(Error::Usage(format!(
                    "{given}: {q}.{} is {} ({}), and {} applies to text columns{}",
                    c.name,
                    c.ty.describe(),
                    c.source_type,
                    spec.rule.name(),
                    if spec.rule == Rule::Hash {
                        " and integers"
                    } else {
                        ""
                    }
                )));
            }
            let in_key = t.primary_key.contains(&c.name);
            let unique = in_key
                || t.indexes
                    .iter()
                    .any(|i| i.unique && i.columns.contains(&c.name));
            let notes = out.notes.entry(q.clone()).or_default();
            match spec.rule {
                Rule::Null if !c.nullable || in_key => {
                    return Err(Error::Usage(format!(
                        "{given}: {q}.{} is NOT NULL{}, so null cannot apply; mask it with redact or hash",
                        c.name,
                        if in_key { " (in the primary key)" } else { "" }
                    )));
                }
                Rule::Redact if unique => {
                    return Err(Error::Usage(format!(
                        "{given}: {q}.{} is a unique key, and redact gives every row the same value; \
                         mask it with hash",
                        c.name
                    )));
                }
                Rule::Hash | Rule::Email if unique => notes.push(format!(
                    "{q}.{}: a key column masked with {}: distinct values stay distinct (HMAC-SHA256: a \
                     collision has negligible probability), and equal values in other tables masked \
                     with the same key still match",
                    c.name,
                    spec.rule.name()
                )),
                Rule::Truncate(n) if unique => notes.push(format!(
                    "{q}.{}: a key column truncated to {n} characters: values that share their first {n} \
                     characters collide, and the import refuses the duplicate key",
                    c.name
                )),
                _ => {}
            }
            if spec.rule.keyed() && out.key.is_none() && need_key {
                return Err(Error::Key(format!(
                    "{given}: {} needs a mask key: give --mask-key-file FILE (a key file made by ferry keygen)",
                    spec.rule.name()
                )));
            }
            // A column that is not plain text (an integer, an enum, a domain, a type that
            // travels as its text form) becomes plain text; so does every column the rule
            // makes longer than it may have been declared.
            let plain = c.enum_type.is_none()
                && c.domain_type.is_none()
                && !c.as_text
                && !c.ty.is_integer();
            let max = match spec.rule {
                Rule::Null => None,
                Rule::Truncate(_) if plain => None,
                Rule::Truncate(n) => Some(Some(n)),
                Rule::Redact => Some(Some(u32::try_from(REDACTED.len()).unwrap_or(8))),
                Rule::Hash => Some(Some(HASH_CHARS)),
                Rule::Email => Some(c.declared_length().map(|n| n.saturating_add(HASH_CHARS))),
            };
            let masked = max.map(|max| Column {
                name: c.name.clone(),
                ty: ColumnType::Utf8,
                nullable: c.nullable,
                source_type: text_type(max),
                default: None,
                enum_type: None,
                domain_type: None,
                as_text: false,
                text_reason: None,
                collation: None,
                identity: None,
                generated: None,
            });
            if masked.is_some() && c.ty != ColumnType::Utf8 {
                notes.push(format!(
                    "{q}.{}: {} is hashed as its decimal text: the column travels as text",
                    c.name, c.source_type
                ));
            }
            if masked.is_some() && c.default.is_some() {
                notes.push(format!(
                    "not carried: DEFAULT of {q}.{}: the column is masked",
                    c.name
                ));
            }
            if masked.is_some() && c.identity.is_some() {
                notes.push(format!(
                    "not carried: the counter of {q}.{}: the column is masked",
                    c.name
                ));
            }
            for g in t.columns.iter().filter(|g| {
                g.name != c.name
                    && g.generated
                        .as_ref()
                        .is_some_and(|x| crate::expr::mentions(&x.expr, engine, &c.name))
            }) {
                notes.push(format!(
                    "{q}.{}: generated from masked column {:?}, its values travel as the source computed \
                     them (unmasked): mask it too",
                    g.name, c.name
                ));
            }
            out.columns.push(ColumnMask {
                table: q,
                column: c.name.clone(),
                rule: spec.rule,
                was: masked
                    .as_ref()
                    .filter(|m| m.source_type != c.source_type)
                    .map(|_| c.source_type.clone()),
                masked,
            });
        }
        if out.key.is_some() && !out.columns.iter().any(|m| m.rule.keyed()) {
            out.notes
                .entry(String::new())
                .or_default()
                .push("--mask-key-file is not used: no --mask rule is hash or email".into());
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The masks of one table (matched by qualified name).
    pub fn of(&self, t: &TableDef) -> impl Iterator<Item = &ColumnMask> {
        let q = t.qualified();
        self.columns.iter().filter(move |m| m.table == q)
    }

    /// The rule masking column `column` of the table called `q`, if any.
    fn rule(&self, q: &str, column: &str) -> Option<Rule> {
        self.columns
            .iter()
            .find(|m| m.table == q && m.column == column)
            .map(|m| m.rule)
    }

    /// A chain's cursor column cannot be masked: the next link reads from its high-water
    /// mark, which must be a source value.
    pub fn refuse_cursor(&self, table: &str, column: &str) -> Result<()> {
        match self.rule(table, column) {
            Some(r) => Err(Error::Usage(format!(
                "--mask {table}.{column}={}: {column} is the table's --cursor, and a chain's next link reads \
                 from its largest source value; mask another column, or leave the table out of the chain",
                r.name()
            ))),
            None => Ok(()),
        }
    }

    /// What masking changes of table `q` besides its values (`""`: of the run).
    pub fn notes_for(&self, q: &str) -> Vec<String> {
        self.notes.get(q).cloned().unwrap_or_default()
    }

    /// What masking changed besides the values, per table (the empty name: the run).
    pub fn notes(&self) -> Vec<String> {
        let mut v: Vec<(&String, &Vec<String>)> = self.notes.iter().collect();
        v.sort();
        v.into_iter().flat_map(|(_, n)| n.iter().cloned()).collect()
    }

    /// The table as exported: masked columns redefined, and what their masked values would
    /// break left out (CHECKs and a partition key that name one; foreign keys whose two
    /// sides are not masked alike), each named in the returned notes.
    pub fn table_def(&self, t: &TableDef) -> (TableDef, Vec<String>) {
        let q = t.qualified();
        let mine: Vec<&ColumnMask> = self.of(t).collect();
        if self.columns.is_empty() {
            return (t.clone(), vec![]);
        }
        let mut def = t.clone();
        let mut notes = Vec::new();
        for m in &mine {
            if let (Some(new), Some(c)) = (
                &m.masked,
                def.columns.iter_mut().find(|c| c.name == m.column),
            ) {
                *c = new.clone();
            }
        }
        let engine = self.engine.unwrap_or(crate::expr::Engine::Postgres);
        // NULL passes a CHECK and a foreign key; other masked values may not.
        let changed: Vec<&str> = mine
            .iter()
            .filter(|m| m.rule != Rule::Null)
            .map(|m| m.column.as_str())
            .collect();
        def.checks.retain(|chk| {
            let hit = changed
                .iter()
                .find(|c| crate::expr::mentions(&chk.expr, engine, c));
            if let Some(c) = hit {
                notes.push(format!(
                    "not carried: CHECK {} on {q}: it reads masked column {c:?}",
                    chk.name
                ));
            }
            hit.is_none()
        });
        if let Some(p) = &def.partitioning
            && let Some(c) = changed
                .iter()
                .find(|c| crate::expr::mentions(&p.key, engine, c))
        {
            notes.push(format!(
                "not carried: the partitions of {q}: it is partitioned by masked column {c:?}, so it \
                 loads as one plain table"
            ));
            def.partitioning = None;
        }
        def.foreign_keys.retain(|fk| {
            let parent = match &fk.ref_schema {
                Some(s) => format!("{s}.{}", fk.ref_table),
                None => fk.ref_table.clone(),
            };
            let ok = fk.columns.iter().zip(&fk.ref_columns).all(|(c, r)| {
                let here = self.rule(&q, c);
                let there = self.rule(&parent, r);
                here == Some(Rule::Null)
                    || (here == there && here != Some(Rule::Redact) && here != Some(Rule::Null))
            });
            if !ok {
                notes.push(format!(
                    "not carried: foreign key {} of {q}: its columns and those of {parent} they reference \
                     are not masked alike",
                    fk.name
                ));
            }
            ok
        });
        (def, notes)
    }

    /// The catalog's record of a table's masks.
    pub fn records(&self, t: &TableDef) -> Vec<Mask> {
        self.of(t)
            .map(|m| Mask {
                column: m.column.clone(),
                rule: m.rule.name(),
                key_id: m
                    .rule
                    .keyed()
                    .then(|| self.key.as_ref().map(|k| k.key_id.clone()))
                    .flatten(),
                source_type: m.was.clone(),
            })
            .collect()
    }

    /// The id of the mask key, when one was given.
    pub fn key_id(&self) -> Option<&str> {
        self.key.as_deref().map(MaskKey::key_id)
    }

    /// What masks a table's batches as they come out of the reader: `read` is the
    /// definition the source reads with, `engine` the source's name (parts' metadata).
    /// `None` when nothing of this table is masked (a key set without masked columns too).
    pub fn masker(&self, read: &TableDef, engine: &str) -> Result<Option<Masker>> {
        let mut cols = Vec::new();
        for m in self.of(read) {
            if let Some(i) = read.columns.iter().position(|c| c.name == m.column) {
                if m.rule.keyed() && self.key.is_none() {
                    return Err(Error::Key(format!(
                        "--mask {}.{}={} needs a mask key: give --mask-key-file FILE",
                        m.table,
                        m.column,
                        m.rule.name()
                    )));
                }
                cols.push((i, m.rule));
            }
        }
        if cols.is_empty() {
            return Ok(None);
        }
        Ok(Some(Masker {
            cols,
            key: self.key.clone(),
            schema: self.table_def(read).0.arrow_schema(engine),
        }))
    }
}

/// `TABLE.COLUMN` with double-quoted parts (`t."a.b"`, `"my.table".col`, `s.t."x""y"`):
/// the parts, unquoted; `None` when `target` has no quote or is malformed.
fn quoted_parts(target: &str) -> Option<Vec<String>> {
    if !target.contains('"') {
        return None;
    }
    let mut parts = Vec::new();
    let mut chars = target.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' || c == '"' {
                    break;
                }
                part.push(c);
                chars.next();
            }
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        match chars.next() {
            None => break,
            Some('.') => {}
            Some(_) => return None,
        }
    }
    (parts.len() >= 2).then_some(parts)
}

/// `TABLE.COLUMN` against the tables: the split at a dot that names a table (`t` or
/// `schema.t`) having that column. Exactly one must match.
fn find<'a>(tables: &'a [TableDef], target: &str) -> Result<(&'a TableDef, &'a Column)> {
    let mut hits = Vec::new();
    if let Some(parts) = quoted_parts(target)
        && let Some((column, table)) = parts.split_last()
    {
        for t in tables.iter().filter(|t| match table {
            [name] => t.name == *name,
            [schema, name] => t.schema.as_deref() == Some(schema.as_str()) && t.name == *name,
            _ => false,
        }) {
            if let Some(c) = t.columns.iter().find(|c| c.name == *column) {
                hits.push((t, c));
            }
        }
        return match hits.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::Usage(format!(
                "--mask {target}: no such column among the tables exported"
            ))),
            _ => Err(Error::Usage(format!(
                "--mask {target}: names more than one column; give SCHEMA.TABLE.COLUMN"
            ))),
        };
    }
    for (i, _) in target.match_indices('.') {
        let (tn, cn) = (&target[..i], &target[i + 1..]);
        for t in tables
            .iter()
            .filter(|t| t.name == tn || t.qualified() == tn)
        {
            if let Some(c) = t.columns.iter().find(|c| c.name == cn) {
                hits.push((t, c));
            }
        }
    }
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::Usage(format!(
            "--mask {target}: no such column among the tables exported (give TABLE.COLUMN, or \
             SCHEMA.TABLE.COLUMN)"
        ))),
        _ => Err(Error::Usage(format!(
            "--mask {target}: names more than one column ({}); quote the names that hold a dot, \
             e.g. 't.\"a.b\"=RULE', or give SCHEMA.TABLE.COLUMN",
            hits.iter()
                .map(|(t, c)| format!("column {:?} of table {}", c.name, t.qualified()))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Masks the batches of one table.
pub struct Masker {
    /// (column index, rule).
    cols: Vec<(usize, Rule)>,
    key: Option<Arc<MaskKey>>,
    /// The masked batches' schema: the table as exported.
    schema: SchemaRef,
}

impl Masker {
    /// The batch with its masked columns replaced.
    pub fn apply(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
        for &(i, rule) in &self.cols {
            let a = cols
                .get(i)
                .ok_or_else(|| Error::Other(format!("masked column {i} is not in the batch")))?;
            let masked = mask_array(a, rule, self.key.as_deref())?;
            cols[i] = masked;
        }
        RecordBatch::try_new(self.schema.clone(), cols)
            .map_err(|e| Error::Other(format!("masking a batch: {e}")))
    }
}

/// One column's values masked (NULL stays NULL).
fn mask_array(a: &ArrayRef, rule: Rule, key: Option<&MaskKey>) -> Result<ArrayRef> {
    if rule == Rule::Null {
        return Ok(new_null_array(a.data_type(), a.len()));
    }
    let text: ArrayRef = if *a.data_type() == DataType::Utf8 {
        a.clone()
    } else {
        // Integers hash as their decimal text, so 42 and '42' hash alike.
        arrow::compute::cast(a, &DataType::Utf8)
            .map_err(|e| Error::Other(format!("masking a column: {e}")))?
    };
    let s = text.as_string::<i32>();
    let need_key =
        || key.ok_or_else(|| Error::Key("--mask: hash and email need --mask-key-file".into()));
    let mut b = StringBuilder::with_capacity(s.len(), s.len() * 16);
    for v in s.iter() {
        let Some(v) = v else {
            b.append_null();
            continue;
        };
        match rule {
            Rule::Null => b.append_null(),
            Rule::Redact => b.append_value(REDACTED),
            Rule::Hash => b.append_value(need_key()?.hash_hex(v.as_bytes())),
            Rule::Email => match v.rfind('@') {
                Some(at) => {
                    let h = need_key()?.hash_hex(&v.as_bytes()[..at]);
                    b.append_value(format!("{h}{}", &v[at..]));
                }
                None => b.append_value(need_key()?.hash_hex(v.as_bytes())),
            },
            Rule::Truncate(n) => {
                let end = v
                    .char_indices()
                    .nth(usize::try_from(n).unwrap_or(usize::MAX))
                    .map_or(v.len(), |(i, _)| i);
                b.append_value(&v[..end]);
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};

    fn key(byte: u8) -> MaskKey {
        MaskKey::derive(&KeyFileKey::from_bytes([byte; 32], "test"))
    }

    #[test]
    fn quoted_names_split_at_their_own_dots() {
        let v = |s: &str| quoted_parts(s).map(|p| p.join("|"));
        assert_eq!(v(r#"t."a.b""#).as_deref(), Some("t|a.b"));
        assert_eq!(v(r#""t.a".b"#).as_deref(), Some("t.a|b"));
        assert_eq!(v(r#"s."t"."x""y""#).as_deref(), Some(r#"s|t|x"y"#));
        assert_eq!(v("t.a.b"), None);
        for bad in [r#"t."a"#, r#"t.""#, r#""t"x.b"#, r#"t.."a""#, r#""t""#] {
            assert_eq!(v(bad), None, "{bad}");
        }
    }

    #[test]
    fn rules_parse_and_print_back() {
        for r in ["null", "redact", "hash", "email", "truncate:3"] {
            assert_eq!(Rule::parse(r).unwrap().name(), r);
        }
        assert!(Rule::parse("truncate:0").is_err());
        assert!(Rule::parse("truncate:x").is_err());
        assert!(Rule::parse("scramble").is_err());
        let s = MaskSpec::parse("public.t.c=hash").unwrap();
        assert_eq!(s.target, "public.t.c");
        assert!(MaskSpec::parse("c=hash").is_err());
        assert!(MaskSpec::parse("t.c=").is_err());
    }

    #[test]
    fn the_mask_key_is_derived_and_never_the_key_itself() {
        let raw = [7u8; 32];
        let k = key(7);
        // HMAC under the raw key differs from HMAC under the derived one.
        let mut direct = Hmac::<Sha256>::new_from_slice(&raw).unwrap();
        direct.update(b"alice");
        assert_ne!(
            k.hash_hex(b"alice"),
            hex::encode(direct.finalize().into_bytes())
        );
        // Deterministic, lowercase hex, 64 digits; another key gives another hash.
        assert_eq!(k.hash_hex(b"alice"), key(7).hash_hex(b"alice"));
        assert_eq!(k.hash_hex(b"alice").len(), 64);
        assert!(
            k.hash_hex(b"alice")
                .chars()
                .all(|c| matches!(c, '0'..='9' | 'a'..='f'))
        );
        assert_ne!(k.hash_hex(b"alice"), key(8).hash_hex(b"alice"));
    }

    #[test]
    fn each_rule_masks_values_and_keeps_nulls() {
        let k = key(1);
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("alice@example.org"),
            None,
            Some("bob"),
            Some("héllo wörld"),
        ]));
        let s = |r: Rule| {
            let m = mask_array(&a, r, Some(&k)).unwrap();
            let m = m.as_string::<i32>();
            (0..m.len())
                .map(|i| m.is_valid(i).then(|| m.value(i).to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(s(Rule::Null), vec![None, None, None, None]);
        assert_eq!(s(Rule::Redact)[0].as_deref(), Some(REDACTED));
        assert_eq!(s(Rule::Redact)[1], None);
        assert_eq!(s(Rule::Truncate(4))[3].as_deref(), Some("héll"));
        assert_eq!(s(Rule::Truncate(40))[2].as_deref(), Some("bob"));
        let e = s(Rule::Email);
        assert_eq!(
            e[0].as_deref(),
            Some(format!("{}@example.org", k.hash_hex(b"alice")).as_str())
        );
        assert_eq!(e[2].as_deref(), Some(k.hash_hex(b"bob").as_str()));
        assert_eq!(s(Rule::Hash)[2], e[2]);
        // An integer hashes as its decimal text.
        let n: ArrayRef = Arc::new(Int32Array::from(vec![Some(42), None]));
        let h = mask_array(&n, Rule::Hash, Some(&k)).unwrap();
        assert_eq!(h.as_string::<i32>().value(0), k.hash_hex(b"42"));
        assert!(h.is_null(1));
    }
}
