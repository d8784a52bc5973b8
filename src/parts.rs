//! Parts: a table's rows as Parquet files, written through the encryptor into the store,
//! and read back through an authenticating random-access decryptor, so the Parquet reader
//! only ever sees bytes that passed AEAD authentication.

use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, Int64Array, IntervalMonthDayNanoArray, StructArray,
};
use arrow::datatypes::{
    DataType, Field, Fields, Int32Type, Int64Type, IntervalMonthDayNano, IntervalMonthDayNanoType,
    IntervalUnit, Schema, SchemaRef,
};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, Length};
use parquet::schema::types::ColumnPath;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::bundle::FileEntry;
use crate::crypto::cobblestone::{self, CHUNK_SIZE, Encryptor, HEADER_LEN, Opened};
use crate::storage::{ObjectWriter, Store};
use crate::{Error, Result};

/// Target size of a data page before compression. zstd sizes its match tables to its input:
/// for pages up to 128 KB its level 3 uses tables that stay in the CPU's cache, and on the
/// MySQL benchmark table (bench/mysql.sh) this made zstd's share of the export about a
/// third cheaper than with 1 MiB pages (2.3 s of ferry CPU instead of 2.6 s), for a bundle
/// 0.5% larger. Pages close at a write batch's end, so they run somewhat over this.
pub const DATA_PAGE_BYTES: usize = 64 * 1024;

/// Parquet writer settings of DESIGN.md: zstd level 3 inside pages, dictionaries and
/// statistics on, row groups of at most `row_group_rows` rows or `row_group_bytes` bytes
/// (the writer buffers one row group: this is its memory bound). Dictionaries are left off
/// for columns whose values are nearly always distinct (floats, timestamps, UUIDs,
/// decimals): the encoder would build one per row group only to fall back to plain.
pub fn writer_properties(
    schema: &SchemaRef,
    row_group_rows: usize,
    row_group_bytes: usize,
) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .set_dictionary_enabled(true)
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_max_row_group_bytes(Some(row_group_bytes))
        .set_data_page_size_limit(DATA_PAGE_BYTES)
        .set_created_by(crate::TOOL_VERSION.to_string());
    for f in schema.fields() {
        let distinct = matches!(
            f.data_type(),
            DataType::Float32
                | DataType::Float64
                | DataType::Timestamp(_, _)
                | DataType::FixedSizeBinary(_)
                | DataType::Decimal128(_, _)
                | DataType::Decimal256(_, _)
        );
        if distinct {
            b = b.set_column_dictionary_enabled(ColumnPath::from(f.name().as_str()), false);
        }
    }
    b.build()
}

/// Parquet cannot hold Arrow's Interval(MonthDayNano); a part stores such a column as a
/// struct of its three fields (exact, and readable by any Parquet reader), marked in the
/// field metadata so reading restores the canonical type.
const INTERVAL_MARK: &str = "interval";

fn interval_struct_fields() -> Fields {
    Fields::from(vec![
        Field::new("months", DataType::Int32, false),
        Field::new("days", DataType::Int32, false),
        Field::new("nanoseconds", DataType::Int64, false),
    ])
}

/// Marks the one column a part of a table without columns is written with: Parquet keeps
/// no row count for a file without columns, so each row is a NULL of this column.
const ROWS_MARK: &str = "rows";
const ROWS_COLUMN: &str = "_ferry_rows";

/// The schema a part is written with: the canonical schema with intervals as structs, and
/// a placeholder column for a table without columns.
pub fn storage_schema(schema: &SchemaRef) -> SchemaRef {
    if schema.fields().is_empty() {
        let f = Field::new(ROWS_COLUMN, DataType::Boolean, true).with_metadata(
            std::collections::HashMap::from([(
                crate::types::META_LOGICAL.to_string(),
                ROWS_MARK.to_string(),
            )]),
        );
        return Arc::new(Schema::new_with_metadata(
            vec![f],
            schema.metadata().clone(),
        ));
    }
    if !schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Interval(_)))
    {
        return schema.clone();
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Interval(IntervalUnit::MonthDayNano) => {
                let mut meta = f.metadata().clone();
                meta.insert(
                    crate::types::META_LOGICAL.to_string(),
                    INTERVAL_MARK.to_string(),
                );
                Field::new(
                    f.name(),
                    DataType::Struct(interval_struct_fields()),
                    f.is_nullable(),
                )
                .with_metadata(meta)
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn to_storage(batch: &RecordBatch, storage: &SchemaRef) -> Result<RecordBatch> {
    if Arc::ptr_eq(&batch.schema(), storage) || batch.schema().as_ref() == storage.as_ref() {
        return Ok(batch.clone());
    }
    if batch.num_columns() == 0 {
        let rows: ArrayRef = Arc::new(arrow::array::BooleanArray::new_null(batch.num_rows()));
        return RecordBatch::try_new(storage.clone(), vec![rows])
            .map_err(|e| Error::Other(format!("preparing a part: {e}")));
    }
    let cols: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Interval(IntervalUnit::MonthDayNano) => {
                let x = c.as_primitive::<IntervalMonthDayNanoType>();
                let months = Int32Array::from_iter_values(x.values().iter().map(|v| v.months));
                let days = Int32Array::from_iter_values(x.values().iter().map(|v| v.days));
                let nanos = Int64Array::from_iter_values(x.values().iter().map(|v| v.nanoseconds));
                let children: Vec<ArrayRef> =
                    vec![Arc::new(months), Arc::new(days), Arc::new(nanos)];
                Arc::new(StructArray::new(
                    interval_struct_fields(),
                    children,
                    x.nulls().cloned(),
                )) as ArrayRef
            }
            _ => c.clone(),
        })
        .collect();
    RecordBatch::try_new(storage.clone(), cols)
        .map_err(|e| Error::Other(format!("preparing a part: {e}")))
}

/// Restores canonical types in a batch read from a part.
pub fn from_storage(batch: RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    if let [f] = schema.fields().as_ref()
        && f.metadata()
            .get(crate::types::META_LOGICAL)
            .is_some_and(|v| v == ROWS_MARK)
    {
        let empty = Arc::new(Schema::new_with_metadata(
            Vec::<Field>::new(),
            schema.metadata().clone(),
        ));
        let options =
            arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        return RecordBatch::try_new_with_options(empty, vec![], &options)
            .map_err(|e| Error::Data(format!("a part of a table without columns: {e}")));
    }
    let marked = |f: &Field| {
        f.metadata()
            .get(crate::types::META_LOGICAL)
            .is_some_and(|v| v == INTERVAL_MARK)
    };
    if !schema.fields().iter().any(|f| marked(f)) {
        return Ok(batch);
    }
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        if marked(f) {
            let s = c.as_struct_opt().ok_or_else(|| {
                Error::Data(format!(
                    "column {}: interval part is not a struct",
                    f.name()
                ))
            })?;
            let (m, d, n) = (
                s.column(0).as_primitive_opt::<Int32Type>(),
                s.column(1).as_primitive_opt::<Int32Type>(),
                s.column(2).as_primitive_opt::<Int64Type>(),
            );
            let (Some(m), Some(d), Some(n)) = (m, d, n) else {
                return Err(Error::Data(format!(
                    "column {}: malformed interval struct",
                    f.name()
                )));
            };
            let values: Vec<IntervalMonthDayNano> = (0..s.len())
                .map(|i| IntervalMonthDayNano::new(m.value(i), d.value(i), n.value(i)))
                .collect();
            let arr = IntervalMonthDayNanoArray::new(values.into(), s.nulls().cloned());
            let mut meta = f.metadata().clone();
            meta.remove(crate::types::META_LOGICAL);
            fields.push(
                Field::new(
                    f.name(),
                    DataType::Interval(IntervalUnit::MonthDayNano),
                    f.is_nullable(),
                )
                .with_metadata(meta),
            );
            cols.push(Arc::new(arr));
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    RecordBatch::try_new(
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
        cols,
    )
    .map_err(|e| Error::Data(format!("restoring intervals: {e}")))
}

/// The key and context a file is sealed with.
pub struct Seal<'a> {
    pub key: &'a [u8; 32],
    pub context: Vec<u8>,
}

/// Counts and hashes the stored bytes on their way to storage.
struct Tally<W> {
    inner: W,
    sha: Sha256,
    len: u64,
}

impl<W: Write> Write for Tally<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Where a file's bytes go: through the encryptor, or straight to storage (`--no-encrypt`).
enum Sink {
    Sealed(Encryptor<Tally<ObjectWriter>>),
    Plain(Tally<ObjectWriter>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Sealed(w) => w.write(buf),
            Sink::Plain(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Sealed(w) => w.flush(),
            Sink::Plain(w) => w.flush(),
        }
    }
}

impl Sink {
    fn create(store: &Store, path: &str, seal: Option<Seal<'_>>) -> Result<Sink> {
        let tally = Tally {
            inner: store.writer(path)?,
            sha: Sha256::new(),
            len: 0,
        };
        Ok(match seal {
            Some(s) => {
                Sink::Sealed(Encryptor::new(s.key, &s.context, tally).map_err(|e| {
                    crate::storage::write_failure(path.to_string(), &e, Error::Other)
                })?)
            }
            None => Sink::Plain(tally),
        })
    }

    /// Ends the file (final chunk), completes the upload, returns its manifest entry.
    fn finish(self, path: &str) -> Result<FileEntry> {
        let tally = match self {
            Sink::Sealed(e) => e
                .finish()
                .map_err(|e| crate::storage::write_failure(path.to_string(), &e, Error::Other))?,
            Sink::Plain(t) => t,
        };
        let sha256 = hex::encode(tally.sha.finalize());
        let size = tally.len;
        tally.inner.finish()?;
        Ok(FileEntry {
            path: path.to_string(),
            size,
            sha256,
        })
    }
}

/// Writes a small whole file (the catalog) sealed or plain.
pub fn write_small(
    store: &Store,
    path: &str,
    bytes: &[u8],
    seal: Option<Seal<'_>>,
) -> Result<FileEntry> {
    let mut sink = Sink::create(store, path, seal)?;
    sink.write_all(bytes)
        .map_err(|e| crate::storage::write_failure(format!("writing {path}"), &e, Error::Other))?;
    sink.finish(path)
}

/// One Parquet part being written.
pub struct PartWriter {
    writer: ArrowWriter<Sink>,
    path: String,
    rows: u64,
    storage: SchemaRef,
}

impl PartWriter {
    pub fn create(
        store: &Store,
        path: &str,
        schema: SchemaRef,
        props: WriterProperties,
        seal: Option<Seal<'_>>,
    ) -> Result<Self> {
        let sink = Sink::create(store, path, seal)?;
        let storage = storage_schema(&schema);
        let writer = ArrowWriter::try_new(sink, storage.clone(), Some(props))
            .map_err(|e| Error::Other(format!("{path}: cannot start Parquet writer: {e}")))?;
        Ok(PartWriter {
            writer,
            path: path.to_string(),
            rows: 0,
            storage,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let stored = to_storage(batch, &self.storage)?;
        self.writer.write(&stored).map_err(|e| {
            crate::storage::write_failure(
                format!("{}: Parquet write failed", self.path),
                &e,
                Error::Other,
            )
        })?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Bytes this part will take at least if closed now (written plus buffered row group).
    pub fn size_estimate(&self) -> u64 {
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn finish(self) -> Result<(FileEntry, u64)> {
        // `into_inner` flushes the row group and writes the footer.
        let sink = self.writer.into_inner().map_err(|e| {
            crate::storage::write_failure(
                format!("{}: Parquet close failed", self.path),
                &e,
                Error::Other,
            )
        })?;
        Ok((sink.finish(&self.path)?, self.rows))
    }
}

/// What a decryption failure means for the operator, for a file at `path`.
pub fn explain_crypto(e: &cobblestone::Error) -> String {
    use cobblestone::Error as E;
    match e {
        E::HeaderAuth => "header or key-commitment check failed: the file was altered, or moved here from another \
                          position or bundle (the key is right: it opened the manifest); copy the bundle again"
            .into(),
        E::ChunkAuth { index, offset } => format!(
            "chunk {index} at byte {offset} failed authentication: the file was modified, truncated or its chunks \
             reordered after export; copy it again from the source"
        ),
        E::Truncated { what } => format!("truncated ({what}); copy it again"),
        E::TrailingData { offset } => format!("has data after its final chunk at byte {offset} (garbage appended?)"),
        other => other.to_string(),
    }
}

/// Random access to a part's plaintext. Every chunk handed out has been authenticated; the
/// reader remembers which chunks it has seen so the rest can be checked before a commit.
pub struct PartReader {
    store: Store,
    path: String,
    stored_len: u64,
    opened: Option<Opened>,
    seen: Mutex<Vec<bool>>,
}

/// Largest Parquet footer accepted (a hostile footer length is refused before allocating).
const MAX_FOOTER: u64 = 64 * 1024 * 1024;
/// Chunks fetched per storage request when authenticating the rest of a part.
const AUTH_RUN: u64 = 64;

impl PartReader {
    pub fn open(
        store: &Store,
        bundle: &str,
        entry: &FileEntry,
        key: Option<(&[u8; 32], Vec<u8>)>,
    ) -> Result<Arc<Self>> {
        let invalid = |m: String| Error::invalid(bundle, &entry.path, m);
        let opened = match key {
            None => None,
            Some((k, ctx)) => {
                if entry.size < HEADER_LEN as u64 {
                    return Err(invalid(format!(
                        "{} bytes: too short to be a ferry encrypted file",
                        entry.size
                    )));
                }
                let header = store.read_range(&entry.path, 0..HEADER_LEN as u64)?;
                if header.starts_with(b"PAR1") {
                    return Err(invalid(
                        "is not a ferry encrypted file (starts with PAR1: unencrypted Parquet?)"
                            .into(),
                    ));
                }
                Some(
                    Opened::open(k, &ctx, &header, entry.size)
                        .map_err(|e| invalid(explain_crypto(&e)))?,
                )
            }
        };
        let chunks = opened.as_ref().map_or(0, Opened::chunk_count);
        Ok(Arc::new(PartReader {
            store: store.clone(),
            path: entry.path.clone(),
            stored_len: entry.size,
            seen: Mutex::new(vec![false; usize::try_from(chunks).unwrap_or(0)]),
            opened,
        }))
    }

    fn plain_len(&self) -> u64 {
        self.opened
            .as_ref()
            .map_or(self.stored_len, Opened::plaintext_len)
    }

    /// Decrypts chunks `first..=last` with one storage read.
    fn chunks(
        &self,
        o: &Opened,
        first: u64,
        last: u64,
    ) -> std::result::Result<Vec<u8>, std::io::Error> {
        let (start, _) = o.chunk_range(first);
        let (lstart, llen) = o.chunk_range(last);
        let end = lstart + llen as u64;
        let cipher = self
            .store
            .read_range(&self.path, start..end)
            .map_err(std::io::Error::other)?;
        let mut out = Vec::with_capacity(
            usize::try_from((last - first + 1) * CHUNK_SIZE as u64).unwrap_or(0),
        );
        let mut off = 0usize;
        for i in first..=last {
            let (_, len) = o.chunk_range(i);
            let piece = cipher.get(off..off + len).ok_or_else(|| {
                std::io::Error::other(format!(
                    "{}: short read from storage (file changed while read?)",
                    self.path
                ))
            })?;
            let plain = o
                .decrypt_chunk(i, piece)
                .map_err(|e| std::io::Error::other(explain_crypto(&e)))?;
            out.extend_from_slice(&plain);
            off += len;
            if let Ok(mut seen) = self.seen.lock()
                && let Some(s) = usize::try_from(i).ok().and_then(|i| seen.get_mut(i))
            {
                *s = true;
            }
        }
        Ok(out)
    }

    fn range(&self, start: u64, len: usize) -> std::result::Result<Bytes, std::io::Error> {
        let Some(o) = &self.opened else {
            return self
                .store
                .read_range(&self.path, start..start + len as u64)
                .map_err(std::io::Error::other);
        };
        if len == 0 {
            return Ok(Bytes::new());
        }
        let end = start + len as u64;
        if end > o.plaintext_len() {
            return Err(std::io::Error::other(format!(
                "{}: read past the end of the part",
                self.path
            )));
        }
        let chunk = CHUNK_SIZE as u64;
        let (first, last) = (start / chunk, (end - 1) / chunk);
        let plain = self.chunks(o, first, last)?;
        let from = usize::try_from(start - first * chunk).map_err(std::io::Error::other)?;
        Ok(Bytes::from(plain).slice(from..from + len))
    }

    /// Authenticates every chunk the Parquet reader did not touch, so no transaction is
    /// committed before the whole part, up to its final chunk, has been checked.
    pub fn authenticate_rest(&self, bundle: &str) -> Result<()> {
        let Some(o) = &self.opened else { return Ok(()) };
        let todo: Vec<u64> = {
            let seen = self
                .seen
                .lock()
                .map_err(|_| Error::Other("part reader lock poisoned".into()))?;
            seen.iter()
                .enumerate()
                .filter(|(_, s)| !**s)
                .map(|(i, _)| i as u64)
                .collect()
        };
        let mut i = 0;
        while i < todo.len() {
            let first = todo[i];
            let mut last = first;
            while i + 1 < todo.len() && todo[i + 1] == last + 1 && last - first + 1 < AUTH_RUN {
                i += 1;
                last = todo[i];
            }
            self.chunks(o, first, last)
                .map_err(|e| Error::invalid(bundle, &self.path, e.to_string()))?;
            i += 1;
        }
        Ok(())
    }

    /// Opens the part's Parquet data: footer checked against limits first, decoding guarded
    /// against panics in the Parquet crate. Returns the footer's row count and the batches.
    pub fn batches(
        self: &Arc<Self>,
        bundle: &str,
        label: &str,
        batch_rows: usize,
    ) -> Result<(u64, PartBatches)> {
        let invalid = |m: String| Error::invalid(bundle, &self.path, format!("{label}: {m}"));
        let len = self.plain_len();
        if len < 12 {
            return Err(invalid(format!(
                "{len} bytes of data: too short to be Parquet"
            )));
        }
        let tail = self.range(len - 8, 8).map_err(|e| invalid(e.to_string()))?;
        if &tail[4..] != b"PAR1" {
            return Err(invalid(
                "the decrypted data is not a Parquet file (no PAR1 footer)".into(),
            ));
        }
        let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
        if footer > MAX_FOOTER || footer + 8 > len {
            return Err(invalid(format!(
                "Parquet footer of {footer} bytes is larger than allowed or than the file"
            )));
        }
        let src = PartSource(self.clone());
        let built = catch_unwind(AssertUnwindSafe(|| {
            let b = ParquetRecordBatchReaderBuilder::try_new(src)?;
            let rows = u64::try_from(b.metadata().file_metadata().num_rows()).unwrap_or(u64::MAX);
            Ok::<_, parquet::errors::ParquetError>((rows, b.with_batch_size(batch_rows).build()?))
        }))
        .map_err(|_| {
            invalid("the Parquet decoder crashed on this part's footer (malformed Parquet)".into())
        })?
        .map_err(|e| invalid(format!("malformed Parquet: {e}")))?;
        Ok((
            built.0,
            PartBatches {
                inner: built.1,
                path: self.path.clone(),
                bundle: bundle.to_string(),
                label: label.to_string(),
                rows: 0,
                done: false,
            },
        ))
    }
}

/// Decoded batches of one part; a decode error or panic ends the stream with an error.
pub struct PartBatches {
    inner: ParquetRecordBatchReader,
    path: String,
    bundle: String,
    /// `table T part N`, for messages.
    label: String,
    /// Rows decoded so far, to say where decoding failed.
    rows: u64,
    done: bool,
}

impl Iterator for PartBatches {
    type Item = Result<RecordBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match catch_unwind(AssertUnwindSafe(|| self.inner.next())) {
            Ok(None) => None,
            Ok(Some(Ok(b))) => {
                self.rows += b.num_rows() as u64;
                Some(from_storage(b))
            }
            Ok(Some(Err(e))) => {
                self.done = true;
                let m = format!(
                    "{} after row {}: cannot decode the Parquet data ({e}); the part is malformed",
                    self.label, self.rows
                );
                Some(Err(Error::invalid(&self.bundle, &self.path, m)))
            }
            Err(_) => {
                self.done = true;
                let m = format!(
                    "{} after row {}: the Parquet decoder crashed on this part (malformed data)",
                    self.label, self.rows
                );
                Some(Err(Error::invalid(&self.bundle, &self.path, m)))
            }
        }
    }
}

/// The Parquet crate's view of a part.
struct PartSource(Arc<PartReader>);

impl Length for PartSource {
    fn len(&self) -> u64 {
        self.0.plain_len()
    }
}

impl ChunkReader for PartSource {
    type T = PartRead;
    fn get_read(&self, start: u64) -> parquet::errors::Result<PartRead> {
        Ok(PartRead {
            part: self.0.clone(),
            pos: start,
            buf: Bytes::new(),
        })
    }
    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.0
            .range(start, length)
            .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
    }
}

/// Sequential reads over a part's plaintext, a window at a time.
pub struct PartRead {
    part: Arc<PartReader>,
    pos: u64,
    buf: Bytes,
}

impl Read for PartRead {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buf.is_empty() {
            let left = self.part.plain_len().saturating_sub(self.pos);
            if left == 0 {
                return Ok(0);
            }
            let n = usize::try_from(left.min(256 * 1024)).unwrap_or(256 * 1024);
            self.buf = self.part.range(self.pos, n)?;
            self.pos += n as u64;
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf.split_to(n));
        Ok(n)
    }
}

/// Streams a stored file once: SHA-256 of the stored bytes, and, with a key, a full
/// authenticated decryption whose plaintext goes to `plain` (or is discarded).
pub fn scan_file(
    store: &Store,
    bundle: &str,
    entry: &FileEntry,
    key: Option<(&[u8; 32], Vec<u8>)>,
    plain: &mut dyn Write,
) -> Result<()> {
    let invalid = |m: String| Error::invalid(bundle, &entry.path, m);
    struct HashRead<R> {
        inner: R,
        sha: Sha256,
        len: u64,
        /// The first bytes, to name a file that is not ours (plain Parquet) when it fails.
        head: Vec<u8>,
    }
    impl<R: Read> Read for HashRead<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.sha.update(&buf[..n]);
            self.len += n as u64;
            if self.head.len() < 4 {
                let take = (4 - self.head.len()).min(n);
                self.head.extend_from_slice(&buf[..take]);
            }
            Ok(n)
        }
    }
    let mut src = HashRead {
        inner: store.reader(&entry.path)?,
        sha: Sha256::new(),
        len: 0,
        head: Vec::new(),
    };
    let mut crypto_err = None;
    match key {
        Some((k, ctx)) => {
            let res = cobblestone::Decryptor::new(k, &ctx, &mut src)
                .map_err(std::io::Error::from)
                .and_then(|mut d| {
                    let mut buf = Zeroizing::new(vec![0u8; 256 * 1024]);
                    loop {
                        let n = d.read(&mut buf)?;
                        if n == 0 {
                            break Ok(());
                        }
                        plain.write_all(&buf[..n])?;
                    }
                });
            if let Err(e) = res {
                crypto_err = Some(match cobblestone::unwrap_io(&e) {
                    Some(ce) => explain_crypto(ce),
                    None => e.to_string(),
                });
            }
        }
        None => {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = src
                    .read(&mut buf)
                    .map_err(|e| Error::io(format!("reading {}", entry.path), e))?;
                if n == 0 {
                    break;
                }
                plain
                    .write_all(&buf[..n])
                    .map_err(|e| Error::io(format!("writing {}", entry.path), e))?;
            }
        }
    }
    // Drain what the decryptor did not read, so the hash covers the whole stored file.
    std::io::copy(&mut src, &mut std::io::sink())
        .map_err(|e| Error::io(format!("reading {}", entry.path), e))?;
    let digest = hex::encode(src.sha.clone().finalize());
    if src.len != entry.size {
        return Err(invalid(format!(
            "size {}, manifest says {} (changed while read?)",
            src.len, entry.size
        )));
    }
    if digest != entry.sha256 {
        return Err(invalid(format!(
            "SHA-256 {digest} does not match the manifest's {}: the file is damaged or was replaced; copy it again",
            entry.sha256
        )));
    }
    if let Some(m) = crypto_err {
        if src.head == b"PAR1" {
            return Err(invalid(
                "is not a ferry encrypted file (starts with PAR1: unencrypted Parquet?)".into(),
            ));
        }
        return Err(invalid(m));
    }
    Ok(())
}
