//! The catalog: what the bundle holds (tables, columns, keys, row counts, fingerprints, and
//! which parts belong to which table). Encrypted in `catalog.fe`, because table and column
//! names are data too.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::manifest::Manifest;
use crate::error::Finding;
use crate::types::TableDef;

pub use crate::types::SourceInfo;

/// One part of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartInfo {
    pub path: String,
    /// Position of the part within its table, from 0.
    pub index: u32,
    pub rows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogTable {
    pub table: TableDef,
    pub rows: u64,
    /// Order-independent content fingerprint (see `compare`).
    pub fingerprint: String,
    pub parts: Vec<PartInfo>,
    /// A table of a chain that travels by changes: its cursor column and high-water mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Cursor>,
    /// The rows are a subset of the table (`--where`, or a link's changes): `--mode
    /// replace` would delete the others, so it refuses the table unless told.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// `--deletes`: the table's whole primary-key set at the snapshot, in parts of their
    /// own (primary-key columns only). Import deletes the target rows whose key is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeySet>,
    /// `export --mask`: the columns whose values were masked before they left the source,
    /// each with its rule and the mask key's id (never the key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masks: Vec<Mask>,
}

/// A column masked at export (`--mask TABLE.COLUMN=RULE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mask {
    pub column: String,
    /// `null`, `redact`, `hash`, `email` or `truncate:N`.
    pub rule: String,
    /// `hash` and `email`: the id (`k1_…`) of the `--mask-key-file` the HMAC key was
    /// derived from. The key itself is never recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The column's source type before masking, when masking changed its type (an integer
    /// hashed to text, an enum redacted): the catalog's column type is the masked one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
}

/// A cursor column and what a link read of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    pub column: String,
    /// The largest value of the column inside the export's snapshot, as the source prints
    /// it (`None` when the table was empty): where the next link starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_water: Option<String>,
    /// The lower bound this bundle read from (`column >= since`), the predecessor's mark
    /// minus `--lookback`; `None` when it holds every row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// A table's primary-key set (the parts hold only the key columns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySet {
    pub rows: u64,
    pub parts: Vec<PartInfo>,
}

impl CatalogTable {
    /// The definition the key parts are read with: the primary-key columns only, no
    /// indexes, keys or constraints.
    pub fn key_table(&self) -> TableDef {
        self.table.key_table()
    }

    /// Every part of the table: its rows, then its key set.
    pub fn all_parts(&self) -> impl Iterator<Item = &PartInfo> {
        self.parts
            .iter()
            .chain(self.keys.iter().flat_map(|k| k.parts.iter()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub bundle_id: String,
    pub source: SourceInfo,
    pub created_at: String,
    pub tables: Vec<CatalogTable>,
    /// What the export did not carry (views, functions, sequences, triggers, expressions
    /// outside the allowlist, …), as the summary named it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_carried: Vec<String>,
}

impl Catalog {
    /// Strict: unknown fields are errors, and so is anything but whitespace after the
    /// JSON document (a `Deserializer` does not check that by itself: `end` does).
    pub fn parse(bytes: &[u8]) -> Result<Catalog, String> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let catalog = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
        de.end()
            .map_err(|e| format!("data after the catalog's JSON document: {e}"))?;
        Ok(catalog)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("catalog serialises")
    }

    /// The table and part record of every part path.
    pub fn part_index(&self) -> HashMap<&str, (&CatalogTable, &PartInfo)> {
        self.tables
            .iter()
            .flat_map(|t| t.parts.iter().map(move |p| (p.path.as_str(), (t, p))))
            .collect()
    }

    /// Checks the catalog against the manifest it came with: same bundle, every part listed
    /// exactly once, part indexes unique per table, row counts add up.
    pub fn check_against(&self, manifest: &Manifest) -> Vec<Finding> {
        let file = manifest.catalog.path.clone();
        let mut out = Vec::new();
        let mut bad = |m: String| {
            out.push(Finding {
                file: file.clone(),
                message: m,
            })
        };
        if self.bundle_id != manifest.bundle_id {
            bad(format!(
                "belongs to bundle {}, not {}",
                self.bundle_id, manifest.bundle_id
            ));
        }
        let listed: HashSet<&str> = manifest.parts.iter().map(|p| p.path.as_str()).collect();
        let mut seen = HashSet::new();
        let mut names = HashSet::new();
        for t in &self.tables {
            let q = t.table.qualified();
            // By schema and name: `a."b.c"` and `"a.b".c` print alike but are two tables.
            if !names.insert((t.table.schema.clone(), t.table.name.clone())) {
                bad(format!("table {q} appears twice"));
            }
            if t.keys.is_some() && t.table.primary_key.is_empty() {
                bad(format!(
                    "table {q} carries a key set but has no primary key"
                ));
            }
            if let Some(k) = &t.keys {
                let mut idx = HashSet::new();
                let mut sum = 0u64;
                for p in &k.parts {
                    if !listed.contains(p.path.as_str()) {
                        bad(format!(
                            "table {q} key part {} is not in the manifest",
                            p.path
                        ));
                    }
                    if !seen.insert(p.path.as_str()) {
                        bad(format!("part {} is claimed twice", p.path));
                    }
                    if !idx.insert(p.index) {
                        bad(format!(
                            "table {q} has two key parts with index {}",
                            p.index
                        ));
                    }
                    sum = sum.saturating_add(p.rows);
                }
                if sum != k.rows {
                    bad(format!(
                        "table {q}: key parts hold {sum} keys but the table says {}",
                        k.rows
                    ));
                }
            }
            let mut idx = HashSet::new();
            let mut sum = 0u64;
            for p in &t.parts {
                if !listed.contains(p.path.as_str()) {
                    bad(format!("table {q} part {} is not in the manifest", p.path));
                }
                if !seen.insert(p.path.as_str()) {
                    bad(format!("part {} is claimed twice", p.path));
                }
                if !idx.insert(p.index) {
                    bad(format!("table {q} has two parts with index {}", p.index));
                }
                sum = sum.saturating_add(p.rows);
            }
            if sum != t.rows {
                bad(format!(
                    "table {q}: parts hold {sum} rows but the table says {}",
                    t.rows
                ));
            }
        }
        for p in &manifest.parts {
            if !seen.contains(p.path.as_str()) {
                bad(format!(
                    "part {} of the manifest belongs to no table",
                    p.path
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Catalog;

    const EMPTY: &str = r#"{"bundle_id":"00000000000000000000000000000000","source":{"engine":"sqlite","database":"d"},"created_at":"t","tables":[]}"#;

    #[test]
    fn trailing_bytes_after_the_catalog_are_refused() {
        assert!(Catalog::parse(EMPTY.as_bytes()).is_ok());
        assert!(Catalog::parse(format!("{EMPTY}\n \t").as_bytes()).is_ok());
        for tail in ["x", "{}", "\u{1b}]0;owned\u{7}", "\u{0}"] {
            let e = Catalog::parse(format!("{EMPTY}{tail}").as_bytes()).unwrap_err();
            assert!(e.contains("data after"), "{tail:?}: {e}");
        }
    }
}
