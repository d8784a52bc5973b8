//! `import --on-error skip`: the rows a target refused, set aside part by part. Each part
//! with refused rows gets one Parquet file in `--rejects DIR`, named after the table, the
//! bundle and the part, so a re-run of a part (after a kill) writes the same file again
//! instead of a second one; it is written under a temporary name and renamed into place
//! just before the part's COMMIT (never a committed part without its file). Its columns:
//! `table`, `part`, `row` (the row's number in the part, from 1), `reason` (the server's
//! message, scrubbed of the target URL's secrets), then the row's own columns as the bundle
//! holds them, so the rows can be fixed and loaded again. Without a directory the rows are
//! only counted. Every refused row counts against `--max-errors`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{ArrayRef, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::load::Rejects;
use crate::types::TableDef;
use crate::{Error, Result};

/// `--max-errors`: how many refused rows an import may set aside before it stops (exit 65).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxErrors {
    /// At most this many rows.
    Rows(u64),
    /// At most this percentage of the rows of the bundle's selected tables.
    Percent(f64),
}

impl MaxErrors {
    /// `N` (rows) or `P%` (of the rows of the selected tables).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(MaxErrors::Percent(p)),
                _ => Err(format!(
                    "{s:?}: give a number of rows (1000) or a percentage from 0% to 100% (5%)"
                )),
            };
        }
        t.parse::<u64>().map(MaxErrors::Rows).map_err(|_| {
            format!("{s:?}: give a number of rows (1000) or a percentage from 0% to 100% (5%)")
        })
    }

    /// The most rows that may be refused out of `total`.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    pub fn limit(self, total: u64) -> u64 {
        match self {
            MaxErrors::Rows(n) => n,
            MaxErrors::Percent(p) => (total as f64 * p / 100.0).floor() as u64,
        }
    }
}

impl std::fmt::Display for MaxErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxErrors::Rows(n) => write!(f, "{n}"),
            MaxErrors::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// The refused rows the whole import may set aside, shared by its workers.
#[derive(Debug)]
pub struct Budget {
    /// `--max-errors` and the rows it allows (`None`: no limit).
    pub max: Option<(MaxErrors, u64)>,
    /// Rows of the bundle's selected tables (what a percentage is of).
    pub total: u64,
    /// Rows refused so far: those of parts committed by earlier runs of this bundle (the
    /// ledger's count) and this run's, committed or in flight.
    pub used: AtomicU64,
}

impl Budget {
    pub fn new(max: Option<MaxErrors>, total: u64, earlier: u64) -> Self {
        Budget {
            max: max.map(|m| (m, m.limit(total))),
            total,
            used: AtomicU64::new(earlier),
        }
    }
}

/// Where the refused rows of the parts of one import go.
pub struct Sink<'a> {
    /// `--rejects DIR`, `None`: count only.
    pub dir: Option<&'a Path>,
    /// The target's URL: a reason that quotes one of its secrets is withheld.
    pub target_url: &'a str,
    pub bundle_id: &'a str,
    pub budget: &'a Budget,
}

impl Sink<'_> {
    /// Creates `--rejects DIR` when missing (mode 0700: the rows are the bundle's
    /// plaintext), before anything is loaded. A path that is a dangling symbolic link or no
    /// directory is refused (usage). An existing directory keeps its mode (it is the
    /// user's): a warning when other users can enter it, since the files are named after
    /// the tables (their contents are mode 0600).
    pub fn prepare(&self) -> Result<Vec<String>> {
        let Some(dir) = self.dir else {
            return Ok(vec![]);
        };
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let shown = dir.display();
        if let Ok(link) = std::fs::symlink_metadata(dir)
            && link.file_type().is_symlink()
            && std::fs::metadata(dir).is_err()
        {
            let to = std::fs::read_link(dir)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into());
            return Err(Error::Usage(format!(
                "--rejects {shown} is a symbolic link to {to}, which does not exist: ferry does not \
                 create a directory through a link; give a directory (or a new path)"
            )));
        }
        match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => {
                return Err(Error::Usage(format!(
                    "--rejects {shown} exists and is not a directory: give a directory (or a new path)"
                )));
            }
            Ok(m) => {
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Ok(vec![format!(
                        "--rejects {shown} is open to other users (mode {mode:o}): the refused rows' files \
                         are mode 0600, but others can list them (named after the tables){}; run: chmod 700 {shown}",
                        if mode & 0o022 != 0 {
                            " and remove or replace them"
                        } else {
                            ""
                        }
                    )]);
                }
                return Ok(vec![]);
            }
            Err(_) => {}
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(format!("cannot create --rejects {shown}"), e))?;
        Ok(vec![])
    }

    /// The file of one part's refused rows (the name a re-run of the part writes again):
    /// the table's name made safe for a file name (other characters as `_`, at most 40),
    /// 8 hex digits of its SHA-256 (two names made alike stay apart), the bundle id's first
    /// 8 characters and the part's index.
    pub fn file_name(&self, table: &str, part_index: u32) -> String {
        use sha2::Digest;
        let bundle: String = self.bundle_id.chars().take(8).collect();
        let safe: String = table
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let hash = hex::encode(sha2::Sha256::digest(table.as_bytes()));
        format!("{safe}-{}-{bundle}-part{part_index:05}.parquet", &hash[..8])
    }

    /// The sink of one part of `table` (its target name; `def` its columns in the bundle).
    pub fn part<'s>(
        &'s self,
        table: &'s str,
        def: &'s TableDef,
        part: &'s str,
        part_index: u32,
    ) -> PartRejects<'s> {
        PartRejects {
            sink: self,
            table,
            def,
            part,
            path: self.dir.map(|d| d.join(self.file_name(table, part_index))),
            writer: None,
            count: 0,
            first: None,
        }
    }
}

/// The refused rows of one part, written as they come (memory: one row group).
pub struct PartRejects<'a> {
    sink: &'a Sink<'a>,
    table: &'a str,
    def: &'a TableDef,
    part: &'a str,
    /// The part's file in `--rejects DIR`.
    path: Option<PathBuf>,
    /// The open file: its writer, temporary path and schema.
    writer: Option<(ArrowWriter<File>, PathBuf, SchemaRef)>,
    /// Rows refused in this part.
    pub count: u64,
    /// The first refused row and its reason, for messages.
    pub first: Option<(u64, String)>,
}

/// Rows per row group of a rejects file: what one part's writer holds in memory at most.
const ROW_GROUP_ROWS: usize = 4096;

/// The four columns before a refused row's own: prefixed `_ferry_` when the table has a
/// column of one of these names.
fn meta_names(def: &TableDef) -> [String; 4] {
    let plain = ["table", "part", "row", "reason"];
    let clash = def.columns.iter().any(|c| plain.contains(&c.name.as_str()));
    plain.map(|n| {
        if clash {
            format!("_ferry_{n}")
        } else {
            n.to_string()
        }
    })
}

impl PartRejects<'_> {
    fn temp_path(path: &Path) -> PathBuf {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        path.with_file_name(format!(".{name}.partial"))
    }

    fn schema(&self, values: &RecordBatch) -> SchemaRef {
        let [t, p, r, why] = meta_names(self.def);
        let mut fields = vec![
            Field::new(t, DataType::Utf8, false),
            Field::new(p, DataType::Utf8, false),
            Field::new(r, DataType::UInt64, false),
            Field::new(why, DataType::Utf8, false),
        ];
        for (c, a) in self.def.columns.iter().zip(values.columns()) {
            fields.push(Field::new(&c.name, a.data_type().clone(), true));
        }
        Arc::new(Schema::new(fields))
    }

    fn write(&mut self, row: u64, reason: &str, values: &RecordBatch) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let io = |what: &str, p: &Path, e: std::io::Error| {
            Error::io(format!("--rejects: {what} {}", p.display()), e)
        };
        if self.writer.is_none() {
            let tmp = Self::temp_path(path);
            // A temporary file of a run that was killed goes; nothing is written through a
            // link (O_EXCL), and the rows are the bundle's plaintext (mode 0600).
            let _ = std::fs::remove_file(&tmp);
            let file = {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(|e| io("cannot create", &tmp, e))?
            };
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                .build();
            let schema = self.schema(values);
            let w = ArrowWriter::try_new(file, schema.clone(), Some(props))
                .map_err(|e| Error::Other(format!("--rejects: {}: {e}", tmp.display())))?;
            self.writer = Some((w, tmp, schema));
        }
        let Some((w, tmp, schema)) = self.writer.as_mut() else {
            return Ok(());
        };
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![self.table])),
            Arc::new(StringArray::from(vec![self.part])),
            Arc::new(UInt64Array::from(vec![row])),
            Arc::new(StringArray::from(vec![reason])),
        ];
        cols.extend(values.columns().iter().cloned());
        let batch = RecordBatch::try_new(schema.clone(), cols)
            .map_err(|e| Error::Other(format!("--rejects: a refused row of {}: {e}", self.part)))?;
        w.write(&batch)
            .map_err(|e| Error::Other(format!("--rejects: writing {}: {e}", tmp.display())))
    }
}

impl Rejects for PartRejects<'_> {
    fn reject(&mut self, row: u64, reason: &str, values: &RecordBatch) -> Result<()> {
        let reason = crate::redact::scrub(reason, self.sink.target_url);
        self.count += 1;
        if self.first.is_none() {
            self.first = Some((row, reason.clone()));
        }
        let budget = self.sink.budget;
        let used = budget.used.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some((max, limit)) = budget.max
            && used > limit
        {
            return Err(Error::Data(format!(
                "table {}, row {row} of part {}: the target refused it ({reason}); that makes {used} rows rejected \
                 of the {} rows of the tables this import loads, over --max-errors {max} ({limit} rows): the import stops and \
                 this part was rolled back",
                self.table, self.part, budget.total
            )));
        }
        self.write(row, &reason, values)
    }

    fn keep(&mut self) -> Result<()> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let Some((w, tmp, _)) = self.writer.take() else {
            // No refused row this time: a file an earlier, uncommitted attempt of this part
            // left is not this part's any more.
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
                    format!("--rejects: cannot remove {}", path.display()),
                    e,
                )),
                _ => Ok(()),
            };
        };
        let file = w
            .into_inner()
            .map_err(|e| Error::Other(format!("--rejects: finishing {}: {e}", tmp.display())))?;
        file.sync_all()
            .map_err(|e| Error::io(format!("--rejects: writing {}", tmp.display()), e))?;
        drop(file);
        std::fs::rename(&tmp, &path)
            .map_err(|e| Error::io(format!("--rejects: cannot write {}", path.display()), e))?;
        if let Some(dir) = path.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for PartRejects<'_> {
    /// A part that did not get to COMMIT leaves no temporary file.
    fn drop(&mut self) {
        if let Some((_, tmp, _)) = self.writer.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_errors_is_rows_or_a_percentage_of_the_bundles_rows() {
        assert_eq!(MaxErrors::parse("10"), Ok(MaxErrors::Rows(10)));
        assert_eq!(MaxErrors::parse("5%"), Ok(MaxErrors::Percent(5.0)));
        assert_eq!(MaxErrors::parse(" 0.5% "), Ok(MaxErrors::Percent(0.5)));
        for bad in ["", "-1", "5 rows", "101%", "x%"] {
            assert!(MaxErrors::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(MaxErrors::Percent(5.0).limit(2000), 100);
        assert_eq!(MaxErrors::Percent(5.0).limit(1999), 99);
        assert_eq!(MaxErrors::Rows(7).limit(2000), 7);
        assert_eq!(MaxErrors::Percent(5.0).to_string(), "5%");
    }

    #[test]
    fn a_part_names_its_file_the_same_way_every_time_and_keeps_it_only_when_told() {
        use crate::types::{Column, ColumnType};
        use arrow::array::Int64Array;
        let dir = tempfile::tempdir().unwrap();
        let col = |name: &str| Column {
            name: name.into(),
            ty: ColumnType::Int64,
            nullable: true,
            source_type: "bigint".into(),
            default: None,
            enum_type: None,
            domain_type: None,
            as_text: false,
            text_reason: None,
            collation: None,
            identity: None,
            generated: None,
        };
        let def = TableDef {
            name: "t".into(),
            columns: vec![col("id"), col("row")],
            ..Default::default()
        };
        let budget = Budget::new(Some(MaxErrors::Rows(3)), 100, 0);
        let sink = Sink {
            dir: Some(dir.path()),
            target_url: "postgres://u:S3cret@h/db",
            bundle_id: "0123456789abcdef0123456789abcdef",
            budget: &budget,
        };
        let name = sink.file_name("t", 3);
        assert!(
            name.starts_with("t-") && name.ends_with("-01234567-part00003.parquet"),
            "{name}"
        );
        assert_ne!(sink.file_name("a.b", 3), sink.file_name("a_b", 3));
        assert_eq!(sink.file_name("a/../b", 3), sink.file_name("a/../b", 3));
        assert!(!sink.file_name("a/../b", 3).contains('/'));
        let row = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![7])) as ArrayRef),
            ("row", Arc::new(Int64Array::from(vec![8])) as ArrayRef),
        ])
        .unwrap();
        {
            let mut p = sink.part("t", &def, "data/t/3.fe", 3);
            p.reject(4, "violates check", &row).unwrap();
            // Not kept: nothing stays behind.
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut p = sink.part("t", &def, "data/t/3.fe", 3);
        p.reject(5, "violates check (S3cret)", &row).unwrap();
        p.reject(6, "violates check", &row).unwrap();
        let over = p.reject(9, "violates check", &row).unwrap_err();
        assert_eq!(over.exit_code(), 65);
        assert!(over.to_string().contains("over --max-errors 3"), "{over}");
        p.keep().unwrap();
        drop(p);
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, vec![std::ffi::OsString::from(&name)]);
        let f = File::open(dir.path().join(&name)).unwrap();
        let batches: Vec<RecordBatch> =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .unwrap()
                .build()
                .unwrap()
                .collect::<std::result::Result<_, _>>()
                .unwrap();
        let b = &batches[0];
        let names: Vec<&str> = b
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        // The table has a column named `row`: ferry's own columns step aside.
        assert_eq!(
            names,
            [
                "_ferry_table",
                "_ferry_part",
                "_ferry_row",
                "_ferry_reason",
                "id",
                "row"
            ]
        );
        assert_eq!(b.num_rows(), 2);
        // The first reason quoted the URL's password: withheld.
        let reasons = b.column(3).as_any().downcast_ref::<StringArray>().unwrap();
        assert!(
            reasons.value(0).contains("withheld"),
            "{}",
            reasons.value(0)
        );
        assert_eq!(reasons.value(1), "violates check");
        // A later attempt without refused rows removes the file.
        let mut p = sink.part("t", &def, "data/t/3.fe", 3);
        p.keep().unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
