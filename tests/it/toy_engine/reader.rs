//! The toy engine's reader: each table file is read by ferry's own SQLite reader (so types
//! map by SQLite's affinity rules), and the batches are relabelled as this engine's.
//! A snapshot is one read transaction per table file (the toy makes no cross-file promise).

use std::collections::BTreeMap;
use std::path::PathBuf;

use arrow::record_batch::RecordBatch;
use ferry::bundle::catalog::SourceInfo;
use ferry::engines::sqlite::reader::SqliteSource;
use ferry::source::{BatchLimits, Selection, Source};
use ferry::types::TableDef;
use ferry::{Error, Result};

use super::{ENGINE, MAIN, dir_of};

pub struct SplitSource {
    dir: PathBuf,
    /// Table name → the reader of its file.
    files: BTreeMap<String, SqliteSource>,
}

impl SplitSource {
    pub fn open(url: &str) -> Result<Self> {
        let dir = dir_of(url)?;
        if !dir.is_dir() {
            return Err(Error::Usage(format!(
                "{url}: no directory {}",
                dir.display()
            )));
        }
        let mut files = BTreeMap::new();
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        for e in entries {
            let path = e
                .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?
                .path();
            let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            let Some(table) = file.strip_suffix(".db") else {
                continue;
            };
            if file == MAIN || table.starts_with("_ferry_") {
                continue;
            }
            let src = SqliteSource::open(&format!("sqlite://{}", path.display()))?;
            files.insert(table.to_string(), src);
        }
        Ok(SplitSource { dir, files })
    }

    fn file(&mut self, table: &TableDef) -> Result<&mut SqliteSource> {
        self.files.get_mut(&table.name).ok_or_else(|| {
            Error::Data(format!(
                "table {}: no file {}.db in {}",
                table.name,
                table.name,
                self.dir.display()
            ))
        })
    }
}

impl Source for SplitSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            engine: ENGINE.name.into(),
            database: self.dir.display().to_string(),
            snapshot: Some("one read transaction per table file".into()),
            source_id_basis: None,
        }
    }

    fn source_id(&self) -> String {
        let canon = std::fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
        let h = <sha2::Sha256 as sha2::Digest>::digest(canon.display().to_string().as_bytes());
        format!("sqlite-split-{}", &hex::encode(h)[..16])
    }

    fn tables(&mut self, selection: &Selection) -> Result<Vec<TableDef>> {
        let mut out = Vec::new();
        for (name, src) in &mut self.files {
            // The table of file `<name>.db` is the one named `<name>` in it.
            out.extend(
                src.tables(selection)?
                    .into_iter()
                    .filter(|t| t.name == *name),
            );
        }
        Ok(out)
    }

    fn begin_snapshot(&mut self) -> Result<()> {
        self.files
            .values_mut()
            .try_for_each(SqliteSource::begin_snapshot)
    }

    fn count_rows(&mut self, table: &TableDef, filter: Option<&str>) -> Result<Option<u64>> {
        self.file(table)?.count_rows(table, filter)
    }

    fn read(
        &mut self,
        table: &TableDef,
        filter: Option<&str>,
        limits: BatchLimits,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<u64> {
        // The same columns, labelled with this engine's name.
        let schema = table.arrow_schema(ENGINE.name);
        self.file(table)?.read(table, filter, limits, &mut |b| {
            let b = RecordBatch::try_new(schema.clone(), b.columns().to_vec())
                .map_err(|e| Error::Data(format!("table {}: {e}", table.name)))?;
            sink(b)
        })
    }
}
