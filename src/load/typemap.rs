//! What a column becomes on a target engine: the type its loader writes into `CREATE
//! TABLE`, and how faithful that is. Each engine implements [`TypeMap`] once, and both its
//! loader (creating tables) and `ferry plan` (announcing them) call it, so what a plan
//! says and what an import does cannot drift apart.

use crate::Result;
use crate::types::{Column, ColumnType, TableDef};

/// A column's type on the target, as the loader writes it into DDL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMapping {
    /// The type in the target's DDL (`numeric(20,0)`, `varchar(40) CHARACTER SET …`,
    /// `DECIMAL_TEXT(30,10)`); a same-engine import writes the source's own spelling.
    pub sql_type: String,
    /// `None`: exact (the column reads back as the same canonical type, every value as it
    /// was). Otherwise what differs: a wider type, a text form, a narrower range whose
    /// outliers are refused by row, a declared length or label set not kept.
    pub note: Option<String>,
}

impl ColumnMapping {
    pub fn exact(sql_type: impl Into<String>) -> Self {
        ColumnMapping {
            sql_type: sql_type.into(),
            note: None,
        }
    }

    pub fn mapped(sql_type: impl Into<String>, note: impl Into<String>) -> Self {
        ColumnMapping {
            sql_type: sql_type.into(),
            note: Some(note.into()),
        }
    }
}

/// An engine's type mapping, for its loader and for `ferry plan`.
pub trait TypeMap: Send + Sync {
    /// What column `c` of `table` is created as. `same_engine`: the bundle came from this
    /// engine, so the source's own type is recreated. An error is a column the loader
    /// will not create (a declared type that is not one ferry puts into DDL).
    fn column(&self, table: &TableDef, c: &Column, same_engine: bool) -> Result<ColumnMapping>;

    /// Why a column of this canonical type cannot be loaded here at all, if it cannot
    /// (pre-flight refuses it by name unless `--as-text` gives it a text form).
    fn refuses(&self, _ty: &ColumnType) -> Option<&'static str> {
        None
    }
}

/// Notes shared by the engines' mappings.
pub mod notes {
    use crate::types::Column;

    /// A column of an enum type (or MySQL SET) going to another engine: its labels as text.
    pub fn enum_labels(c: &Column) -> Option<String> {
        c.enum_type.as_ref().map(|e| {
            format!(
                "{} labels as text: the label set is not enforced here",
                if e.name == "set" { "SET" } else { "enum" }
            )
        })
    }

    /// A text column's notes, joined (`None` when it loads exactly): its text form, its enum
    /// labels, and what became of its declared length here (`length`).
    pub fn text_column(c: &Column, length: Option<String>) -> Option<String> {
        let notes: Vec<String> = [text_form(c), enum_labels(c), length]
            .into_iter()
            .flatten()
            .collect();
        (!notes.is_empty()).then(|| notes.join("; "))
    }

    /// A column that travels as its text form (inet, tsvector, a NaN numeric), loaded as
    /// text with `--as-text`.
    pub fn text_form(c: &Column) -> Option<String> {
        c.as_text.then(|| {
            format!(
                "{} travels as its text form and loads as text (--as-text)",
                c.source_type
            )
        })
    }
}
