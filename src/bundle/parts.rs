//! Parts: a table's rows as Parquet files, written through the encryptor into the store,
//! and read back through an authenticating random-access decryptor, so the Parquet reader
//! only ever sees bytes that passed AEAD authentication.

use std::collections::{HashSet, VecDeque};
use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock, mpsc};

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
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory,
    compute_leaves,
};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::writer::SerializedFileWriter;
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

// Bounds on the work a part can ask of its reader (docs/RELIABILITY.md, A13 and
// "Bounded work before authentication"). The writer keeps every part inside the first set,
// the reader refuses what exceeds the second (twice as much: headroom for Parquet's own
// encoding) from the footer and from each page header, before anything is decompressed.

/// A row group is closed before its Arrow data (strings and binaries as offsets + bytes)
/// would exceed this, whatever it compresses to: the export's stored-size budget alone
/// lets highly compressible data make row groups of any decoded size.
pub const ROW_GROUP_DATA_BYTES: u64 = 64 << 20;
/// … or before the values of its list columns (Parquet levels, summed over the leaf
/// columns inside lists) would exceed this. Other columns are decoded a batch of rows at a
/// time, but one list can hold any number of values, all decoded at once.
pub const ROW_GROUP_LIST_VALUES: u64 = 1 << 22;
/// The largest row ferry writes (its Arrow data): export refuses a larger one, since no
/// reader could then decode it within the bounds below.
pub const MAX_ROW_BYTES: u64 = 96 << 20;
/// Reader: uncompressed bytes of a row group (its column chunks summed, and its own total),
/// unless the operator raises it with [`ROW_GROUP_LIMIT_ENV`].
pub const MAX_ROW_GROUP_BYTES: u64 = 2 * ROW_GROUP_DATA_BYTES;
/// Reader: values of a row group's list columns (4 times what ferry writes: a bundle of
/// ferry 0.1, whose row groups held 1M rows, passes with lists of 16 values on average).
pub const MAX_ROW_GROUP_LIST_VALUES: u64 = 4 * ROW_GROUP_LIST_VALUES;
/// Reader: entries of one dictionary page. The writer's dictionaries hold 1 MiB (then it
/// falls back to plain values), so at most some 263 000 entries of 4 bytes.
pub const MAX_DICTIONARY_ENTRIES: u64 = 1 << 20;
/// Reader: one page, uncompressed or compressed. Pages are 64 KiB, but a page holds at
/// least one value and a value may be as large as a row.
pub const MAX_PAGE_BYTES: u64 = MAX_ROW_GROUP_BYTES;
/// The environment variable (MiB) that raises the reader's row-group and page bounds, for a
/// bundle of ferry 0.1 the operator trusts: 0.1 closed row groups by stored size only, so
/// compressible data made row groups of several hundred MiB.
pub const ROW_GROUP_LIMIT_ENV: &str = "FERRY_MAX_ROW_GROUP_MIB";

/// The reader's row-group bound: [`MAX_ROW_GROUP_BYTES`], or more if the operator says so.
fn row_group_limit() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var(ROW_GROUP_LIMIT_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(MAX_ROW_GROUP_BYTES, |mib| {
                mib.saturating_mul(1 << 20)
                    .clamp(MAX_ROW_GROUP_BYTES, 64 << 30)
            })
    })
}
/// Reader: one page header (ferry's are some 30 bytes; page statistics are not written).
const MAX_PAGE_HEADER: u64 = 64 << 10;
/// Decoded batches are cut to about this many bytes of data (and to the caller's rows).
pub const BATCH_BYTES: u64 = 16 << 20;

/// The zstd level of `ferry export` unless `--zstd-level` says otherwise. Measured with
/// bench/mysql.sh's 2M-row table (release build, 2 cores, server on the same machine): level
/// 1 exported in 2.09–2.15 s and 137.8 MB, level 2 in 2.21–2.24 s and 135.2 MB, level 3 in
/// 2.33–2.35 s and 135.8 MB (mysqldump: 2.19 s): on a MariaDB source, where ferry's CPU
/// competes with the server's, level 1 is 10% faster for 1.4% more bytes. On bench/pg.sh's
/// 5M rows the server's COPY is the bound: 5.06–5.31 s against 5.04–5.12 s, 320.9 MB
/// against 317.9 MB (DuckDB's Parquet: 307.7 MB).
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// A zstd level for `--zstd-level`: 1 (fastest) to 22 (smallest).
pub fn zstd_level(level: i32) -> Result<ZstdLevel> {
    // zstd itself takes 0 (its default, 3) and negative levels; ferry's range is 1–22.
    (1..=22)
        .contains(&level)
        .then_some(level)
        .and_then(|l| ZstdLevel::try_new(l).ok())
        .ok_or_else(|| {
            Error::Usage(format!(
                "--zstd-level {level}: zstd levels run from 1 (fastest) to 22 (smallest); the \
             default is {DEFAULT_ZSTD_LEVEL}"
            ))
        })
}

/// Parquet writer settings (docs/FORMAT.md, "Parquet parts"): zstd (level 1 unless the export says otherwise) inside pages, dictionaries and
/// statistics on, row groups of at most `row_group_rows` rows or `row_group_bytes` bytes
/// (the writer buffers one row group: this is its memory bound). Dictionaries are left off
/// for columns whose values are nearly always distinct (floats, timestamps, UUIDs,
/// decimals): the encoder would build one per row group only to fall back to plain.
pub fn writer_properties(
    schema: &SchemaRef,
    row_group_rows: usize,
    row_group_bytes: usize,
    zstd_level: ZstdLevel,
) -> WriterProperties {
    writer_properties_without(schema, row_group_rows, row_group_bytes, zstd_level, &[])
}

/// [`writer_properties`] with the dictionary also off for `no_dictionary`: the columns
/// whose dictionary overflowed in an earlier part of the same table (ids, names, JSON
/// documents), where each row group would otherwise fill a dictionary only to fall back to
/// plain pages.
pub fn writer_properties_without(
    schema: &SchemaRef,
    row_group_rows: usize,
    row_group_bytes: usize,
    zstd_level: ZstdLevel,
    no_dictionary: &[ColumnPath],
) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd_level))
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
    for c in no_dictionary {
        b = b.set_column_dictionary_enabled(c.clone(), false);
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

/// Per-row cost of a batch: bytes of Arrow data in the plain layout (a string or binary,
/// also a view, counted as the 4-byte offset and the bytes it becomes; validity bits not
/// counted) and list values (Parquet levels of the leaf columns inside lists; an upper
/// bound). The writer sizes row groups by them, the reader sizes decoded batches.
fn row_costs(batch: &RecordBatch) -> (Vec<u64>, Vec<u64>) {
    let n = batch.num_rows();
    let (mut bytes, mut values) = (vec![0u64; n], vec![0u64; n]);
    for c in batch.columns() {
        add_row_costs(c.as_ref(), &mut bytes, &mut values, false);
    }
    (bytes, values)
}

fn add_row_costs(a: &dyn Array, bytes: &mut [u64], values: &mut [u64], in_list: bool) {
    fn by_offsets(offsets: &[i32], bytes: &mut [u64]) {
        for (b, w) in bytes.iter_mut().zip(offsets.windows(2)) {
            *b += 4 + u64::try_from(w[1] - w[0]).unwrap_or(0);
        }
    }
    fn by_lengths(lengths: impl Iterator<Item = u32>, bytes: &mut [u64]) {
        for (b, l) in bytes.iter_mut().zip(lengths) {
            *b += 4 + u64::from(l);
        }
    }
    match a.data_type() {
        DataType::Utf8 => by_offsets(a.as_string::<i32>().value_offsets(), bytes),
        DataType::Binary => by_offsets(a.as_binary::<i32>().value_offsets(), bytes),
        DataType::Utf8View => by_lengths(a.as_string_view().lengths(), bytes),
        DataType::BinaryView => by_lengths(a.as_binary_view().lengths(), bytes),
        DataType::Struct(_) => {
            for c in a.as_struct().columns() {
                add_row_costs(c.as_ref(), bytes, values, in_list);
            }
            return;
        }
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            let off: Vec<usize> = l
                .value_offsets()
                .iter()
                .map(|&o| usize::try_from(o).unwrap_or(0))
                .collect();
            let (first, last) = (off[0], off[off.len() - 1].max(off[0]));
            let child = l.values().slice(first, last - first);
            let (mut cb, mut cv) = (vec![0u64; last - first], vec![0u64; last - first]);
            add_row_costs(child.as_ref(), &mut cb, &mut cv, true);
            // Prefix sums, so each row's share is one subtraction.
            let sums = |v: &[u64]| {
                std::iter::once(0)
                    .chain(v.iter().scan(0u64, |acc, x| {
                        *acc += x;
                        Some(*acc)
                    }))
                    .collect::<Vec<u64>>()
            };
            let (pb, pv) = (sums(&cb), sums(&cv));
            for (i, w) in off.windows(2).enumerate() {
                let (s, e) = (w[0] - first, w[1].max(w[0]) - first);
                bytes[i] += 4 + pb[e] - pb[s];
                values[i] += 1 + pv[e] - pv[s];
            }
            return;
        }
        DataType::Boolean => bytes.iter_mut().for_each(|b| *b += 1),
        DataType::FixedSizeBinary(w) => {
            let w = u64::try_from(*w).unwrap_or(0);
            bytes.iter_mut().for_each(|b| *b += w);
        }
        other => {
            let w = other.primitive_width().map_or(16, |w| w as u64);
            bytes.iter_mut().for_each(|b| *b += w);
        }
    }
    if in_list {
        values.iter_mut().for_each(|v| *v += 1);
    }
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
            let values = interval_values(c.as_ref()).map_err(|m| {
                Error::Data(format!("column {}: malformed interval ({m})", f.name()))
            })?;
            let arr = IntervalMonthDayNanoArray::new(values, c.nulls().cloned());
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

/// The intervals a stored interval struct holds, checked first: the part may have been
/// crafted, so nothing is indexed before its shape is known (no panic on a wrong struct).
fn interval_values(
    c: &dyn Array,
) -> std::result::Result<arrow::buffer::ScalarBuffer<IntervalMonthDayNano>, String> {
    let s = c
        .as_struct_opt()
        .ok_or_else(|| format!("stored as {} instead of a struct", c.data_type()))?;
    let [m, d, n] = s.columns() else {
        return Err(format!(
            "a struct of {} fields instead of months, days, nanoseconds",
            s.num_columns()
        ));
    };
    let (Some(m), Some(d), Some(n)) = (
        m.as_primitive_opt::<Int32Type>(),
        d.as_primitive_opt::<Int32Type>(),
        n.as_primitive_opt::<Int64Type>(),
    ) else {
        return Err(format!(
            "fields of types {}, {}, {} instead of Int32, Int32, Int64",
            m.data_type(),
            d.data_type(),
            n.data_type()
        ));
    };
    let len = s.len();
    if m.len() != len || d.len() != len || n.len() != len {
        return Err(format!(
            "fields of {}, {} and {} values in a struct of {len}",
            m.len(),
            d.len(),
            n.len()
        ));
    }
    for nulls in [m.nulls(), d.nulls(), n.nulls()].into_iter().flatten() {
        if let Some(i) = (0..len).find(|&i| nulls.is_null(i) && s.is_valid(i)) {
            return Err(format!(
                "a field is null in the non-null interval of row {}",
                i + 1
            ));
        }
    }
    let (m, d, n) = (m.values(), d.values(), n.values());
    Ok((0..len)
        .map(|i| IntervalMonthDayNano::new(m[i], d[i], n[i]))
        .collect())
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

/// The environment variable that sets how many threads encode and compress column chunks
/// (default: the machine's cores, at most [`MAX_ENCODE_THREADS`]; `1` encodes on the
/// export's writer thread, as ferry 0.1 did).
pub const ENCODE_THREADS_ENV: &str = "FERRY_ENCODE_THREADS";
/// The largest encode pool: more threads than columns, or than cores, only wait.
pub const MAX_ENCODE_THREADS: usize = 16;

/// A job for the encode pool.
type Job = Box<dyn FnOnce() + Send>;
/// A task whose result [`EncodePool::run_all`] brings back.
type Task<T> = Box<dyn FnOnce() -> T + Send>;
/// A column writer back from encoding a leaf column on the pool, at its index.
type Encoded = (
    usize,
    Option<ArrowColumnWriter>,
    std::result::Result<(), ParquetError>,
);

/// The threads that encode and compress column chunks, shared by every part an export
/// writes at once (with `--jobs N`, N tables feed the same threads, so the machine's cores
/// are not oversubscribed N times).
struct EncodePool {
    jobs: mpsc::Sender<Job>,
}

/// The encode threads, or `None` when one thread is asked for (or there is one core).
fn encode_pool() -> Option<&'static EncodePool> {
    static POOL: OnceLock<Option<EncodePool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::env::var(ENCODE_THREADS_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .clamp(1, MAX_ENCODE_THREADS);
        EncodePool::start(threads)
    })
    .as_ref()
}

impl EncodePool {
    /// Starts `threads` encode threads; `None` for fewer than two (or if none started).
    fn start(threads: usize) -> Option<EncodePool> {
        if threads < 2 {
            return None;
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ferry-encode-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only to take a job, not to run it.
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if spawned.is_ok() {
                started += 1;
            }
        }
        (started > 0).then_some(EncodePool { jobs: tx })
    }

    /// Runs the tasks on the pool and waits for all of them; a task's result comes back at
    /// its index, `None` if it panicked (a malformed batch must not take the thread down
    /// with it: the caller turns it into an error).
    fn run_all<T: Send + 'static>(&self, tasks: Vec<Task<T>>) -> Vec<Option<T>> {
        let n = tasks.len();
        let (done_tx, done_rx) = mpsc::channel::<(usize, Option<T>)>();
        for (i, task) in tasks.into_iter().enumerate() {
            let done = done_tx.clone();
            let job: Job = Box::new(move || {
                let r = catch_unwind(AssertUnwindSafe(task)).ok();
                let _ = done.send((i, r));
            });
            if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
                // No thread left to take it: run it here.
                job();
            }
        }
        drop(done_tx);
        let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
        // Every job sends once, or drops its sender if a thread died under it: the loop
        // ends when all senders are gone.
        for (i, r) in done_rx.iter() {
            out[i] = r;
        }
        out
    }
}

/// The column writers of an open row group and the rows they hold.
struct OpenGroup {
    writers: Vec<ArrowColumnWriter>,
    rows: usize,
}

/// One part's Parquet encoder: the `parquet` crate's `ArrowWriter` (its schema conversion,
/// embedded Arrow schema and row-group limits), with the column chunks of each batch
/// encoded and compressed in parallel on the encode pool. Every column writer gets the same
/// values in the same order as on one thread, and the chunks are appended in column order,
/// so the file is byte for byte what one thread writes; memory is one row group, as before.
struct Encoder {
    file: SerializedFileWriter<Sink>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    open: Option<OpenGroup>,
    max_rows: Option<usize>,
    max_bytes: Option<usize>,
    pool: Option<&'static EncodePool>,
}

fn lost(what: &str) -> ParquetError {
    ParquetError::General(format!(
        "the Parquet encoder crashed while {what} (a bug in ferry or the parquet crate)"
    ))
}

impl Encoder {
    fn new(
        sink: Sink,
        schema: SchemaRef,
        props: WriterProperties,
        pool: Option<&'static EncodePool>,
    ) -> std::result::Result<Self, ParquetError> {
        let (max_rows, max_bytes) = (props.max_row_group_row_count(), props.max_row_group_bytes());
        let (file, factory) =
            ArrowWriter::try_new(sink, schema.clone(), Some(props))?.into_serialized_writer()?;
        Ok(Encoder {
            file,
            factory,
            schema,
            open: None,
            max_rows,
            max_bytes,
            pool,
        })
    }

    fn in_progress_rows(&self) -> usize {
        self.open.as_ref().map_or(0, |g| g.rows)
    }

    fn in_progress_size(&self) -> usize {
        self.open.as_ref().map_or(0, |g| {
            g.writers
                .iter()
                .map(ArrowColumnWriter::get_estimated_total_bytes)
                .sum()
        })
    }

    fn bytes_written(&self) -> usize {
        self.file.bytes_written()
    }

    /// `ArrowWriter::write`: rows go to the open row group, which is closed when it reaches
    /// the row or estimated-byte limit (a batch split where a limit falls).
    fn write(&mut self, batch: &RecordBatch) -> std::result::Result<(), ParquetError> {
        let mut remaining = batch.clone();
        while remaining.num_rows() > 0 {
            if self.open.is_none() {
                let writers = self
                    .factory
                    .create_column_writers(self.file.flushed_row_groups().len())?;
                self.open = Some(OpenGroup { writers, rows: 0 });
            }
            let buffered = self.in_progress_rows();
            let mut split_at = match self.max_rows {
                Some(max) if buffered + remaining.num_rows() > max => Some(max - buffered),
                _ => None,
            };
            let candidate = split_at.unwrap_or_else(|| remaining.num_rows());
            if let Some(max_bytes) = self.max_bytes
                && buffered > 0
            {
                let current = self.in_progress_size();
                if current >= max_bytes {
                    self.flush()?;
                    continue;
                }
                if let Some(fit) = (max_bytes - current).checked_div(current / buffered)
                    && candidate > fit
                {
                    if fit == 0 {
                        self.flush()?;
                        continue;
                    }
                    split_at = Some(fit);
                }
            }
            let now = match split_at {
                Some(k) => {
                    let now = remaining.slice(0, k);
                    remaining = remaining.slice(k, remaining.num_rows() - k);
                    now
                }
                None => std::mem::replace(&mut remaining, batch.slice(0, 0)),
            };
            self.encode(&now)?;
            let full = self.max_rows.is_some_and(|m| self.in_progress_rows() >= m)
                || self.max_bytes.is_some_and(|m| self.in_progress_size() >= m);
            if full {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Encodes a batch into the open row group, its columns in parallel when there is a pool.
    fn encode(&mut self, batch: &RecordBatch) -> std::result::Result<(), ParquetError> {
        let group = self
            .open
            .as_mut()
            .ok_or_else(|| lost("opening a row group"))?;
        let mut leaves: Vec<(ArrowLeafColumn, usize)> = Vec::with_capacity(group.writers.len());
        for (field, column) in self.schema.fields().iter().zip(batch.columns()) {
            let cost = column.get_array_memory_size();
            for leaf in compute_leaves(field.as_ref(), column)? {
                leaves.push((leaf, cost));
            }
        }
        if leaves.len() != group.writers.len() {
            return Err(ParquetError::General(format!(
                "{} leaf columns for {} column writers",
                leaves.len(),
                group.writers.len()
            )));
        }
        group.rows += batch.num_rows();
        let Some(pool) = self.pool.filter(|_| leaves.len() > 1) else {
            for (w, (leaf, _)) in group.writers.iter_mut().zip(&leaves) {
                w.write(leaf)?;
            }
            return Ok(());
        };
        // Largest columns first, so that no thread is left with a big one at the end.
        let mut order: Vec<usize> = (0..leaves.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(leaves[i].1));
        let mut writers: Vec<Option<ArrowColumnWriter>> = std::mem::take(&mut group.writers)
            .into_iter()
            .map(Some)
            .collect();
        let mut leaves: Vec<Option<ArrowLeafColumn>> =
            leaves.into_iter().map(|(l, _)| Some(l)).collect();
        let tasks: Vec<Task<Encoded>> = order
            .iter()
            .map(|&i| {
                let mut w = writers[i].take();
                let leaf = leaves[i].take();
                Box::new(move || {
                    let r = match (&mut w, &leaf) {
                        (Some(w), Some(l)) => w.write(l),
                        _ => Err(lost("encoding a column")),
                    };
                    (i, w, r)
                }) as Task<Encoded>
            })
            .collect();
        let mut first_err = None;
        for done in pool.run_all(tasks) {
            match done {
                Some((i, w, r)) => {
                    writers[i] = w;
                    if let Err(e) = r {
                        first_err.get_or_insert(e);
                    }
                }
                None => {
                    first_err.get_or_insert(lost("encoding a column"));
                }
            }
        }
        if let Some(e) = first_err {
            // The row group is unusable: the part fails as a whole.
            self.open = None;
            return Err(e);
        }
        let writers: Option<Vec<ArrowColumnWriter>> = writers.into_iter().collect();
        match writers {
            Some(w) => {
                group.writers = w;
                Ok(())
            }
            None => {
                self.open = None;
                Err(lost("encoding a column"))
            }
        }
    }

    /// Closes the open row group: its column chunks finished (last pages compressed) in
    /// parallel, then appended to the file in column order.
    fn flush(&mut self) -> std::result::Result<(), ParquetError> {
        let Some(group) = self.open.take() else {
            return Ok(());
        };
        let chunks: Vec<ArrowColumnChunk> = match self.pool.filter(|_| group.writers.len() > 1) {
            None => group
                .writers
                .into_iter()
                .map(ArrowColumnWriter::close)
                .collect::<std::result::Result<_, _>>()?,
            Some(pool) => {
                let tasks: Vec<Task<std::result::Result<ArrowColumnChunk, ParquetError>>> = group
                    .writers
                    .into_iter()
                    .map(|w| Box::new(move || w.close()) as Task<_>)
                    .collect();
                pool.run_all(tasks)
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|| Err(lost("closing a column"))))
                    .collect::<std::result::Result<_, _>>()?
            }
        };
        let mut rg = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut rg)?;
        }
        rg.close()?;
        Ok(())
    }

    /// Closes the open row group, writes the footer, returns the sink.
    fn into_inner(mut self) -> std::result::Result<(Sink, Vec<ColumnPath>), ParquetError> {
        self.flush()?;
        let overflowed = self.dictionaries_overflowed();
        Ok((self.file.into_inner()?, overflowed))
    }

    /// Columns whose dictionary filled up in some row group, so that the writer fell back
    /// to plain pages there (it has a dictionary page and plain data pages).
    fn dictionaries_overflowed(&self) -> Vec<ColumnPath> {
        use parquet::basic::{Encoding, PageType};
        let mut out: Vec<ColumnPath> = Vec::new();
        for rg in self.file.flushed_row_groups() {
            for c in rg.columns() {
                let Some(stats) = c.page_encoding_stats() else {
                    continue;
                };
                let dictionary = stats
                    .iter()
                    .any(|p| p.page_type == PageType::DICTIONARY_PAGE);
                let plain_data = stats.iter().any(|p| {
                    matches!(p.page_type, PageType::DATA_PAGE | PageType::DATA_PAGE_V2)
                        && p.encoding == Encoding::PLAIN
                });
                if dictionary && plain_data && !out.contains(c.column_path()) {
                    out.push(c.column_path().clone());
                }
            }
        }
        out
    }
}

/// One Parquet part being written.
pub struct PartWriter {
    writer: Encoder,
    path: String,
    rows: u64,
    storage: SchemaRef,
    /// Arrow data bytes and leaf values in the open row group (see [`ROW_GROUP_DATA_BYTES`]).
    group: (u64, u64),
}

impl PartWriter {
    pub fn create(
        store: &Store,
        path: &str,
        schema: SchemaRef,
        props: WriterProperties,
        seal: Option<Seal<'_>>,
    ) -> Result<Self> {
        Self::create_on(store, path, schema, props, seal, encode_pool())
    }

    /// [`PartWriter::create`] on the given encode threads (`None`: this thread).
    fn create_on(
        store: &Store,
        path: &str,
        schema: SchemaRef,
        props: WriterProperties,
        seal: Option<Seal<'_>>,
        pool: Option<&'static EncodePool>,
    ) -> Result<Self> {
        let sink = Sink::create(store, path, seal)?;
        let storage = storage_schema(&schema);
        let writer = Encoder::new(sink, storage.clone(), props, pool)
            .map_err(|e| Error::Other(format!("{path}: cannot start Parquet writer: {e}")))?;
        Ok(PartWriter {
            writer,
            path: path.to_string(),
            rows: 0,
            storage,
            group: (0, 0),
        })
    }

    /// Writes rows, closing a row group before it would hold more than
    /// [`ROW_GROUP_DATA_BYTES`] of data or [`ROW_GROUP_LIST_VALUES`] list values (a larger
    /// row goes alone in its row group), so the reader's bounds hold for every part ferry
    /// writes.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let stored = to_storage(batch, &self.storage)?;
        let n = stored.num_rows();
        if n == 0 {
            return Ok(());
        }
        let (bytes, values) = row_costs(&stored);
        if let Some((i, b)) = bytes.iter().enumerate().find(|(_, b)| **b > MAX_ROW_BYTES) {
            return Err(Error::Data(format!(
                "{}: row {} of this part holds {} of data; ferry carries rows of at most {} \
                 (so that every bundle can be read back in bounded memory)",
                self.path,
                self.rows + i as u64 + 1,
                crate::report::human_bytes(*b),
                crate::report::human_bytes(MAX_ROW_BYTES)
            )));
        }
        let failed = |e: ParquetError, path: &str| {
            crate::storage::write_failure(format!("{path}: Parquet write failed"), &e, Error::Other)
        };
        let mut start = 0;
        while start < n {
            let (mut gb, mut gv) = self.group;
            let mut end = start;
            while end < n {
                let (b, v) = (gb + bytes[end], gv + values[end]);
                let over = b > ROW_GROUP_DATA_BYTES || v > ROW_GROUP_LIST_VALUES;
                // An empty row group takes one row whatever its size.
                if over && (end > start || self.group != (0, 0)) {
                    break;
                }
                (gb, gv) = (b, v);
                end += 1;
            }
            if end == start {
                self.writer.flush().map_err(|e| failed(e, &self.path))?;
                self.group = (0, 0);
                continue;
            }
            let before = self.writer.in_progress_rows();
            self.writer
                .write(&stored.slice(start, end - start))
                .map_err(|e| failed(e, &self.path))?;
            let after = self.writer.in_progress_rows();
            self.group = if after == before + (end - start) {
                (gb, gv)
            } else {
                // The Parquet writer closed a row group itself (rows or stored bytes): the
                // open one holds the last `after` rows of this slice.
                let from = end - after.min(end - start);
                (
                    bytes[from..end].iter().sum(),
                    values[from..end].iter().sum(),
                )
            };
            start = end;
        }
        self.rows += n as u64;
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
        self.finish_noting().map(|(entry, rows, _)| (entry, rows))
    }

    /// [`PartWriter::finish`], with the columns whose dictionary overflowed in this part
    /// (a table's next parts leave it off for them: see [`writer_properties`]).
    pub fn finish_noting(self) -> Result<(FileEntry, u64, Vec<ColumnPath>)> {
        // `into_inner` flushes the row group and writes the footer.
        let (sink, overflowed) = self.writer.into_inner().map_err(|e| {
            crate::storage::write_failure(
                format!("{}: Parquet close failed", self.path),
                &e,
                Error::Other,
            )
        })?;
        Ok((sink.finish(&self.path)?, self.rows, overflowed))
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

/// Why a part read for loading is refused when its bytes are not those verified.
const CHANGED_SINCE_VERIFIED: &str = "changed since the verification pass read it (the stored \
    bytes differ from those whose SHA-256 the manifest lists): something rewrote the bundle \
    during the import; nothing of this part was committed. Keep the bundle read-only while it \
    is imported (or import from a copy), and run the import again";

/// Chunks per digest run (1 MiB of plaintext): see [`RunDigests`].
pub const RUN_CHUNKS: u64 = 64;

/// BLAKE3 of each stored segment of a file, as the verification pass read it: for an
/// encrypted file the header, then each run of [`RUN_CHUNKS`] chunks; for a plain one each
/// run of [`PLAIN_RUN`] bytes. A part is read twice (verified, then loaded), and its
/// chunks' AES-GCM tags prove only knowledge of the file key, which every
/// key holder has: the loading read checks each run it uses against these digests, so the
/// bytes loaded are the bytes whose SHA-256 the (signed) manifest lists, even if another key
/// holder rewrote the file in between. 32 bytes per MiB of bundle.
///
/// The digests never leave the process, so they need only be collision resistant, not
/// SHA-256: BLAKE3 hashes several times faster, and the stored bytes are hashed three times
/// otherwise (the manifest's SHA-256 and these in the verification pass, these again as the
/// load reads them), which was an eighth of a MariaDB import's CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunDigests(Vec<[u8; 32]>);

/// Bytes of a plain part per digest run.
const PLAIN_RUN: u64 = RUN_CHUNKS * CHUNK_SIZE as u64;

/// The end of the stored segment holding byte `pos` of a file of `size` bytes: encrypted,
/// the header, then runs of [`RUN_CHUNKS`] chunks; plain, runs of [`PLAIN_RUN`] bytes.
fn segment_end(pos: u64, size: u64, encrypted: bool) -> u64 {
    if !encrypted {
        return (pos / PLAIN_RUN + 1).saturating_mul(PLAIN_RUN).min(size);
    }
    let header = HEADER_LEN as u64;
    if pos < header {
        return header.min(size);
    }
    let run = RUN_CHUNKS * cobblestone::ENCRYPTED_CHUNK_SIZE as u64;
    let k = (pos - header) / run;
    header.saturating_add((k + 1).saturating_mul(run)).min(size)
}

/// Random access to a part's plaintext. Every chunk handed out has been authenticated; the
/// reader remembers which chunks it has seen so the rest can be checked before a commit.
pub struct PartReader {
    store: Store,
    path: String,
    stored_len: u64,
    opened: Option<Opened>,
    seen: Mutex<Vec<bool>>,
    /// The digests the verification pass took (`None`: the fuzz target and unit tests).
    runs: Option<Arc<RunDigests>>,
    /// The runs read and verified last.
    run_cache: Mutex<RunCache>,
    /// Runs read from the store and hashed (a test counts them).
    #[cfg(test)]
    runs_read: std::sync::atomic::AtomicU64,
}

/// Verified runs by run index, the least recently used first, at most `cap` of them:
/// [`RUN_CACHE`], or one per column chunk the Parquet reader reads side by side
/// ([`PartReader::batches`]).
struct RunCache {
    runs: VecDeque<(u64, Bytes)>,
    cap: usize,
}

impl RunCache {
    fn new(cap: usize) -> Self {
        RunCache {
            runs: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Run `k`, now the most recently used.
    fn get(&mut self, k: u64) -> Option<Bytes> {
        let at = self.runs.iter().position(|(i, _)| *i == k)?;
        let hit = self.runs.remove(at)?;
        let b = hit.1.clone();
        self.runs.push_back(hit);
        Some(b)
    }

    /// Keeps run `k`, letting the least recently used go when full.
    fn put(&mut self, k: u64, b: Bytes) {
        while self.runs.len() >= self.cap {
            self.runs.pop_front();
        }
        self.runs.push_back((k, b));
    }

    fn set_cap(&mut self, cap: usize) {
        self.cap = cap.max(1);
        while self.runs.len() > self.cap {
            self.runs.pop_front();
        }
    }

    fn clear(&mut self) {
        self.runs = VecDeque::new();
    }
}

/// Verified runs a [`PartReader`] keeps (1 MiB each) before it knows the part's columns.
const RUN_CACHE: usize = 3;
/// At most this many (16 MiB): a batch reads a few pages of every column chunk of a row
/// group in turn, each in its own run, so with fewer runs kept than columns each run was
/// read and hashed again for every batch (SHA-256 was 30% of an import's CPU). A part of
/// more columns than this reads some runs more than once.
const MAX_RUN_CACHE: usize = 16;

/// Largest Parquet footer accepted (a hostile footer length is refused before allocating).
const MAX_FOOTER: u64 = 64 * 1024 * 1024;
/// Chunks fetched per storage request when authenticating the rest of a part.
const AUTH_RUN: u64 = 64;

impl PartReader {
    /// Only for the `parquet_part` fuzz target (feature `fuzzing`): opens a part without the
    /// bundle's verification order. Everything else reads parts through
    /// [`crate::bundle::check::Checked::part_reader`].
    #[cfg(feature = "fuzzing")]
    pub fn open_for_fuzzing(store: &Store, entry: &FileEntry) -> Result<Arc<Self>> {
        Self::open(store, "fuzz", entry, None, None)
    }

    pub(crate) fn open(
        store: &Store,
        bundle: &str,
        entry: &FileEntry,
        key: Option<(&[u8; 32], Vec<u8>)>,
        runs: Option<Arc<RunDigests>>,
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
                if let Some(r) = &runs
                    && r.0.first() != Some(blake3::hash(&header).as_bytes())
                {
                    return Err(invalid(CHANGED_SINCE_VERIFIED.into()));
                }
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
            runs,
            run_cache: Mutex::new(RunCache::new(RUN_CACHE)),
            #[cfg(test)]
            runs_read: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// Lets the cached runs go (the batches ended; later reads read and check again).
    fn drop_cached_runs(&self) {
        if let Ok(mut cache) = self.run_cache.lock() {
            cache.clear();
        }
    }

    fn plain_len(&self) -> u64 {
        self.opened
            .as_ref()
            .map_or(self.stored_len, Opened::plaintext_len)
    }

    /// The stored bytes of run `k` (`range` of the file), checked against digest number
    /// `want` (kept for the next reads: a few runs, so reading a run's column chunks one by
    /// one reads and hashes it once).
    fn verified_run(
        &self,
        runs: &RunDigests,
        k: u64,
        range: std::ops::Range<u64>,
        want: usize,
        chunks: &str,
    ) -> std::result::Result<Bytes, std::io::Error> {
        // Least recently used goes first: a column still being read keeps its run.
        if let Some(b) = self.run_cache.lock().ok().and_then(|mut c| c.get(k)) {
            return Ok(b);
        }
        let stored = self
            .store
            .read_range(&self.path, range.clone())
            .map_err(std::io::Error::other)?;
        #[cfg(test)]
        self.runs_read
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if runs.0.get(want) != Some(blake3::hash(&stored).as_bytes()) {
            return Err(std::io::Error::other(format!(
                "{chunks}stored bytes {}..{}: {CHANGED_SINCE_VERIFIED}",
                range.start, range.end
            )));
        }
        if let Ok(mut cache) = self.run_cache.lock() {
            cache.put(k, stored.clone());
        }
        Ok(stored)
    }

    /// Run `k` of an encrypted part (see [`PartReader::verified_run`]).
    fn verified_chunk_run(
        &self,
        o: &Opened,
        runs: &RunDigests,
        k: u64,
    ) -> std::result::Result<Bytes, std::io::Error> {
        let (rstart, _) = o.chunk_range(k * RUN_CHUNKS);
        let rlast = (k * RUN_CHUNKS + RUN_CHUNKS - 1).min(o.chunk_count().saturating_sub(1));
        let (lstart, llen) = o.chunk_range(rlast);
        let want = usize::try_from(k + 1).unwrap_or(usize::MAX);
        let which = format!("chunks {} to {rlast}, ", k * RUN_CHUNKS);
        self.verified_run(runs, k, rstart..lstart + llen as u64, want, &which)
    }

    /// `len` bytes at `start` of a plain part, from runs checked against their digests.
    fn verified_plain(
        &self,
        runs: &RunDigests,
        start: u64,
        len: usize,
    ) -> std::result::Result<Bytes, std::io::Error> {
        let end = start + len as u64;
        if end > self.stored_len {
            return Err(std::io::Error::other(format!(
                "{}: read past the end of the part",
                self.path
            )));
        }
        if len == 0 {
            return Ok(Bytes::new());
        }
        let mut out = Vec::with_capacity(len);
        for k in start / PLAIN_RUN..=(end - 1) / PLAIN_RUN {
            let rstart = k * PLAIN_RUN;
            let rend = (rstart + PLAIN_RUN).min(self.stored_len);
            let want = usize::try_from(k).unwrap_or(usize::MAX);
            let run = self.verified_run(runs, k, rstart..rend, want, "")?;
            let from =
                usize::try_from(start.max(rstart) - rstart).map_err(std::io::Error::other)?;
            let to = usize::try_from(end.min(rend) - rstart).map_err(std::io::Error::other)?;
            out.extend_from_slice(run.get(from..to).ok_or_else(|| {
                std::io::Error::other(format!("{}: short read from storage", self.path))
            })?);
        }
        Ok(Bytes::from(out))
    }

    /// Decrypts chunks `first..=last`: from the verified runs that hold them, or, without
    /// digests, from one storage read.
    fn chunks(
        &self,
        o: &Opened,
        first: u64,
        last: u64,
    ) -> std::result::Result<Vec<u8>, std::io::Error> {
        // (stored bytes, offset of their first byte in the file, the chunks they hold)
        let mut pieces: Vec<(Bytes, u64, std::ops::RangeInclusive<u64>)> = Vec::new();
        match &self.runs {
            Some(runs) => {
                for k in first / RUN_CHUNKS..=last / RUN_CHUNKS {
                    let held =
                        first.max(k * RUN_CHUNKS)..=last.min(k * RUN_CHUNKS + RUN_CHUNKS - 1);
                    let (base, _) = o.chunk_range(k * RUN_CHUNKS);
                    pieces.push((self.verified_chunk_run(o, runs, k)?, base, held));
                }
            }
            None => {
                let (start, _) = o.chunk_range(first);
                let (lstart, llen) = o.chunk_range(last);
                let stored = self
                    .store
                    .read_range(&self.path, start..lstart + llen as u64)
                    .map_err(std::io::Error::other)?;
                pieces.push((stored, start, first..=last));
            }
        }
        let mut out = Vec::with_capacity(
            usize::try_from((last - first + 1) * CHUNK_SIZE as u64).unwrap_or(0),
        );
        for (stored, base, held) in pieces {
            for i in held {
                let (cstart, len) = o.chunk_range(i);
                let off = usize::try_from(cstart - base).map_err(std::io::Error::other)?;
                let piece = stored.get(off..off + len).ok_or_else(|| {
                    std::io::Error::other(format!(
                        "{}: short read from storage (file changed while read?)",
                        self.path
                    ))
                })?;
                let plain = o
                    .decrypt_chunk(i, piece)
                    .map_err(|e| std::io::Error::other(explain_crypto(&e)))?;
                out.extend_from_slice(&plain);
                self.mark_seen(i);
            }
        }
        Ok(out)
    }

    fn mark_seen(&self, i: u64) {
        if let Ok(mut seen) = self.seen.lock()
            && let Some(s) = usize::try_from(i).ok().and_then(|i| seen.get_mut(i))
        {
            *s = true;
        }
    }

    fn range(&self, start: u64, len: usize) -> std::result::Result<Bytes, std::io::Error> {
        let Some(o) = &self.opened else {
            if let Some(runs) = &self.runs {
                return self.verified_plain(runs, start, len);
            }
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
        self.batches_within(bundle, label, batch_rows, BATCH_BYTES)
    }

    /// [`PartReader::batches`] cut to `max_bytes` of data (at most [`BATCH_BYTES`]) instead
    /// of [`BATCH_BYTES`]: an import holds about three batches per stream.
    pub fn batches_within(
        self: &Arc<Self>,
        bundle: &str,
        label: &str,
        batch_rows: usize,
        max_bytes: u64,
    ) -> Result<(u64, PartBatches)> {
        let max_bytes = max_bytes.clamp(1, BATCH_BYTES);
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
        let data_end = len - 8 - footer;
        let guard = Arc::new(OnceLock::new());
        let src = PartSource(self.clone(), guard.clone());
        // The page index is never loaded: the crate then reads each page header through
        // `get_read`, where the guard checks it (see `PageGuard`).
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Skip);
        let meta = catch_unwind(AssertUnwindSafe(|| {
            ArrowReaderMetadata::load(&src, options.clone())
        }))
        .map_err(|_| {
            invalid("the Parquet decoder crashed on this part's footer (malformed Parquet)".into())
        })?
        .map_err(|e| invalid(format!("malformed Parquet: {e}")))?;
        let (page_guard, row_bytes) = check_footer(meta.metadata(), data_end)
            .map_err(|m| invalid(format!("{m}; the part is malformed or not ferry's")))?;
        let _ = guard.set(page_guard);
        let storage = meta.schema().clone();
        // Rows per batch: the caller's, fewer when rows are wide (the footer's mean row
        // size, at least a view's 16 bytes per column), so a batch holds about `max_bytes`.
        let leaves = meta.metadata().file_metadata().schema_descr().num_columns() as u64;
        // A run per column chunk read side by side, and a few for the runs two chunks
        // share (an LRU cache still reads such a run again once between its two uses).
        if let Ok(mut cache) = self.run_cache.lock() {
            cache.set_cap(
                usize::try_from(leaves + 4)
                    .unwrap_or(MAX_RUN_CACHE)
                    .clamp(RUN_CACHE, MAX_RUN_CACHE),
            );
        }
        let per_row = row_bytes.max(16 * leaves).max(1);
        let rows_cap = usize::try_from(max_bytes / per_row).unwrap_or(usize::MAX);
        let batch_rows = batch_rows.min(rows_cap).max(1);
        let views = view_schema(&storage);
        let built = catch_unwind(AssertUnwindSafe(|| {
            let rows =
                u64::try_from(meta.metadata().file_metadata().num_rows()).unwrap_or(u64::MAX);
            let meta = match &views {
                Some(v) => ArrowReaderMetadata::try_new(
                    meta.metadata().clone(),
                    options.with_schema(v.clone()),
                )?,
                None => meta,
            };
            let b = ParquetRecordBatchReaderBuilder::new_with_metadata(src, meta);
            Ok::<_, ParquetError>((rows, b.with_batch_size(batch_rows).build()?))
        }))
        .map_err(|_| {
            invalid("the Parquet decoder crashed on this part's footer (malformed Parquet)".into())
        })?
        .map_err(|e| invalid(format!("malformed Parquet: {e}")))?;
        Ok((
            built.0,
            PartBatches {
                inner: built.1,
                storage,
                views: views.is_some(),
                pending: VecDeque::new(),
                max_bytes,
                part: self.clone(),
                path: self.path.clone(),
                bundle: bundle.to_string(),
                label: label.to_string(),
                rows: 0,
                decoded: 0,
                done: false,
            },
        ))
    }
}

/// Decoded batches of one part; a decode error or panic ends the stream with an error.
/// Batches come out in the part's canonical types, each of about [`BATCH_BYTES`] at most.
pub struct PartBatches {
    inner: ParquetRecordBatchReader,
    /// The schema the part was written with (strings, not views).
    storage: SchemaRef,
    /// Whether strings and binaries are decoded as views (cast back per output batch).
    views: bool,
    /// Decoded rows not handed out yet, already cut to size.
    pending: VecDeque<RecordBatch>,
    /// Bytes of data per batch at most.
    max_bytes: u64,
    /// The part's reader, whose cached runs are let go once the batches end (a reader may
    /// be kept until its commit).
    part: Arc<PartReader>,
    path: String,
    bundle: String,
    /// `table T part N`, for messages.
    label: String,
    /// Rows handed out so far, to say where decoding failed.
    rows: u64,
    /// Rows decoded so far (handed out or pending).
    decoded: u64,
    done: bool,
}

impl PartBatches {
    fn fail(&mut self, m: String) -> Option<Result<RecordBatch>> {
        self.done = true;
        self.pending.clear();
        self.part.drop_cached_runs();
        Some(Err(Error::invalid(
            &self.bundle,
            &self.path,
            format!("{} after row {}: {m}", self.label, self.rows),
        )))
    }

    /// Cuts a decoded batch into pieces of at most `max_bytes` (one row at least), or
    /// refuses a row larger than any ferry writes.
    fn queue(&mut self, b: RecordBatch) -> std::result::Result<(), String> {
        let (bytes, _) = row_costs(&b);
        if let Some((i, big)) = bytes
            .iter()
            .enumerate()
            .find(|(_, x)| **x > row_group_limit())
        {
            return Err(format!(
                "row {} decodes to {}, more than ferry writes (rows of at most {}); refused \
                 before it is materialised",
                self.decoded + i as u64 + 1,
                crate::report::human_bytes(*big),
                crate::report::human_bytes(MAX_ROW_BYTES)
            ));
        }
        let total: u64 = bytes.iter().sum();
        if total <= self.max_bytes {
            self.pending.push_back(b);
            return Ok(());
        }
        let (mut from, mut acc) = (0usize, 0u64);
        for (i, x) in bytes.iter().enumerate() {
            if acc + x > self.max_bytes && i > from {
                self.pending.push_back(b.slice(from, i - from));
                (from, acc) = (i, 0);
            }
            acc += x;
        }
        self.pending.push_back(b.slice(from, b.num_rows() - from));
        Ok(())
    }

    /// A decoded piece in the part's canonical types.
    fn restore(&self, b: RecordBatch) -> Result<RecordBatch> {
        let b = if self.views {
            b.columns()
                .iter()
                .zip(self.storage.fields())
                .map(|(c, f)| {
                    if c.data_type() == f.data_type() {
                        Ok(c.clone())
                    } else {
                        arrow::compute::cast(c, f.data_type())
                    }
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .and_then(|cols| RecordBatch::try_new(self.storage.clone(), cols))
                .map_err(|e| Error::Data(format!("restoring the stored types: {e}")))?
        } else {
            b
        };
        from_storage(b)
    }
}

impl Iterator for PartBatches {
    type Item = Result<RecordBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                return match catch_unwind(AssertUnwindSafe(|| self.restore(b))) {
                    Ok(Ok(b)) => {
                        self.rows += b.num_rows() as u64;
                        Some(Ok(b))
                    }
                    Ok(Err(Error::Data(m))) => self.fail(format!("{m}; the part is malformed")),
                    Ok(Err(e)) => Some(Err(e)),
                    Err(_) => self
                        .fail("the Parquet decoder crashed on this part (malformed data)".into()),
                };
            }
            if self.done {
                return None;
            }
            match catch_unwind(AssertUnwindSafe(|| self.inner.next())) {
                Ok(None) => {
                    self.done = true;
                    self.part.drop_cached_runs();
                    return None;
                }
                Ok(Some(Ok(b))) => {
                    let n = b.num_rows() as u64;
                    let queued = catch_unwind(AssertUnwindSafe(|| self.queue(b)))
                        .unwrap_or_else(|_| Err("the decoder crashed measuring its rows".into()));
                    if let Err(m) = queued {
                        return self.fail(m);
                    }
                    self.decoded += n;
                }
                Ok(Some(Err(e))) => {
                    return self.fail(format!(
                        "cannot decode the Parquet data ({e}); the part is malformed"
                    ));
                }
                Err(_) => {
                    return self
                        .fail("the Parquet decoder crashed on this part (malformed data)".into());
                }
            }
        }
    }
}

/// What the footer declares about one column chunk, to hold its page headers to.
struct ChunkBound {
    start: u64,
    end: u64,
    /// `row group 0, column "name"`, for messages.
    what: String,
    /// Declared uncompressed bytes and values (levels) of the chunk.
    bytes: u64,
    values: u64,
}

/// The footer's column chunks, and what their pages have declared so far. The Parquet crate
/// reads a column chunk's pages one after another, each header through
/// [`ChunkReader::get_read`] (the page index is not loaded, see `batches`); the guard
/// parses each header there first and refuses it before the crate allocates the declared
/// uncompressed size and decompresses into it.
struct PageGuard {
    /// Sorted by `start`, non-overlapping (checked).
    chunks: Vec<ChunkBound>,
    state: Mutex<GuardState>,
}

struct GuardState {
    /// Header offsets already counted (a header read twice is counted once).
    seen: HashSet<u64>,
    /// Where the data of admitted pages starts (pages of at least one byte). The crate asks
    /// for a reader there too when it already holds the page's header (peeked), and then
    /// reads nothing from it; a header is never read there, since the next one starts
    /// after at least one byte of data.
    data_starts: HashSet<u64>,
    /// Per chunk: uncompressed bytes and data-page values declared by its pages so far.
    used: Vec<(u64, u64)>,
}

/// Page types of the Parquet format.
const DICTIONARY_PAGE: i32 = 2;

impl PageGuard {
    fn is_data_start(&self, offset: u64) -> bool {
        self.state
            .lock()
            .is_ok_and(|st| st.data_starts.contains(&offset))
    }

    fn chunk_at(&self, offset: u64) -> Option<usize> {
        let i = self.chunks.partition_point(|c| c.start <= offset);
        let i = i.checked_sub(1)?;
        (offset < self.chunks[i].end).then_some(i)
    }

    /// Admits the page whose header starts at `offset` in chunk `ci`, or says why not.
    fn admit(&self, ci: usize, offset: u64, h: &PageHead) -> std::result::Result<(), String> {
        let c = &self.chunks[ci];
        let at = format!("the page at byte {offset} ({})", c.what);
        let (Ok(unc), Ok(comp), Ok(vals)) = (
            u64::try_from(h.uncompressed),
            u64::try_from(h.compressed),
            u64::try_from(h.values),
        ) else {
            return Err(format!("{at} declares a negative size or value count"));
        };
        let max = MAX_PAGE_BYTES.max(row_group_limit());
        if unc > max || comp > max {
            return Err(format!(
                "{at} declares {unc} bytes uncompressed, {comp} compressed: more than the \
                 {max} bytes ferry reads per page (refused before decompressing)"
            ));
        }
        let room = c.end - offset;
        if h.len as u64 + comp > room {
            return Err(format!(
                "{at} declares {comp} bytes, more than the {room} left in its column chunk"
            ));
        }
        let mut st = self
            .state
            .lock()
            .map_err(|_| "page guard lock poisoned".to_string())?;
        if !st.seen.insert(offset) {
            return Ok(());
        }
        if comp > 0 {
            st.data_starts.insert(offset + h.len as u64);
        }
        let used = &mut st.used[ci];
        used.0 += unc;
        if used.0 > c.bytes {
            return Err(format!(
                "the pages of {} declare {} bytes uncompressed, more than the {} its footer \
                 declares (refused before decompressing)",
                c.what, used.0, c.bytes
            ));
        }
        if h.kind == DICTIONARY_PAGE {
            // A dictionary holds values the chunk has: never more entries than values.
            if vals > c.values || vals > MAX_DICTIONARY_ENTRIES {
                return Err(format!(
                    "{at} is a dictionary of {vals} entries for a column chunk of {} values \
                     (ferry reads at most {MAX_DICTIONARY_ENTRIES})",
                    c.values
                ));
            }
        } else {
            used.1 += vals;
            if used.1 > c.values {
                return Err(format!(
                    "the pages of {} declare {} values, more than the {} its footer declares",
                    c.what, used.1, c.values
                ));
            }
        }
        Ok(())
    }
}

/// Checks a part's footer against the reader's bounds; returns the page guard and the
/// largest mean uncompressed row size of its row groups. `data_end` is where the footer
/// starts: every column chunk lies before it.
fn check_footer(
    meta: &ParquetMetaData,
    data_end: u64,
) -> std::result::Result<(PageGuard, u64), String> {
    let mut chunks = Vec::new();
    let mut row_bytes = 0u64;
    let limit = row_group_limit();
    let schema = meta.file_metadata().schema_descr();
    for (g, rg) in meta.row_groups().iter().enumerate() {
        let rows = u64::try_from(rg.num_rows())
            .map_err(|_| format!("row group {g} declares a negative row count"))?;
        let total = u64::try_from(rg.total_byte_size())
            .map_err(|_| format!("row group {g} declares a negative size"))?;
        let (mut bytes, mut list_values) = (0u64, 0u64);
        for (j, c) in rg.columns().iter().enumerate() {
            let leaf = schema.columns().get(j);
            let name = leaf.map_or_else(|| format!("#{j}"), |d| d.path().string());
            let in_list = leaf.is_some_and(|d| d.max_rep_level() > 0);
            let what = format!("row group {g}, column {name:?}");
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let (Ok(start), Ok(len), Ok(unc), Ok(vals)) = (
                u64::try_from(start),
                u64::try_from(c.compressed_size()),
                u64::try_from(c.uncompressed_size()),
                u64::try_from(c.num_values()),
            ) else {
                return Err(format!("{what}: negative offset, size or value count"));
            };
            let end = start
                .checked_add(len)
                .filter(|e| *e <= data_end)
                .ok_or_else(|| format!("{what}: the column chunk lies outside the data"))?;
            if len > limit {
                return Err(format!(
                    "{what}: {len} bytes stored, more than the {limit} ferry reads per row group"
                ));
            }
            bytes = bytes.saturating_add(unc);
            if in_list {
                list_values = list_values.saturating_add(vals);
            }
            chunks.push(ChunkBound {
                start,
                end,
                what,
                bytes: unc,
                values: vals,
            });
        }
        let declared = bytes.max(total);
        if declared > limit {
            return Err(format!(
                "row group {g} declares {} of uncompressed data; ferry writes at most {} per \
                 row group and reads at most {} (refused before decoding). A bundle written by \
                 ferry 0.1 may hold larger row groups: to read one you trust, set \
                 {ROW_GROUP_LIMIT_ENV} to a size in MiB",
                crate::report::human_bytes(declared),
                crate::report::human_bytes(ROW_GROUP_DATA_BYTES),
                crate::report::human_bytes(limit)
            ));
        }
        if list_values > MAX_ROW_GROUP_LIST_VALUES {
            return Err(format!(
                "row group {g} declares {list_values} values in list columns; ferry writes at \
                 most {ROW_GROUP_LIST_VALUES} per row group and reads at most \
                 {MAX_ROW_GROUP_LIST_VALUES} (refused before decoding)"
            ));
        }
        if rows > 0 {
            row_bytes = row_bytes.max(declared.div_ceil(rows));
        }
    }
    chunks.sort_by_key(|c| c.start);
    if let Some(w) = chunks.windows(2).find(|w| w[1].start < w[0].end) {
        return Err(format!("{} overlaps {}", w[1].what, w[0].what));
    }
    let n = chunks.len();
    Ok((
        PageGuard {
            chunks,
            state: Mutex::new(GuardState {
                seen: HashSet::new(),
                data_starts: HashSet::new(),
                used: vec![(0, 0); n],
            }),
        },
        row_bytes,
    ))
}

/// The schema a part is decoded with: strings and binaries as views, which share a
/// dictionary's values instead of copying them per row, so a small dictionary page cannot
/// expand into a huge batch; batches are cut by bytes and cast back afterwards.
fn view_schema(storage: &SchemaRef) -> Option<SchemaRef> {
    fn view(t: &DataType) -> DataType {
        let field = |f: &Field| f.clone().with_data_type(view(f.data_type()));
        match t {
            DataType::Utf8 => DataType::Utf8View,
            DataType::Binary => DataType::BinaryView,
            DataType::List(f) => DataType::List(Arc::new(field(f))),
            DataType::Struct(fs) => DataType::Struct(fs.iter().map(|f| field(f)).collect()),
            other => other.clone(),
        }
    }
    let fields: Vec<Field> = storage
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(view(f.data_type())))
        .collect();
    let changed = fields
        .iter()
        .zip(storage.fields())
        .any(|(a, b)| a.data_type() != b.data_type());
    changed.then(|| {
        Arc::new(Schema::new_with_metadata(
            fields,
            storage.metadata().clone(),
        ))
    })
}

/// What ferry needs of a Parquet page header, read by a small Thrift compact-protocol
/// parser of its own before the Parquet crate sees the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PageHead {
    kind: i32,
    uncompressed: i32,
    compressed: i32,
    /// Values (levels) of a data page, entries of a dictionary page.
    values: i32,
    /// Bytes of the header itself.
    len: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    /// The header goes on past the bytes given.
    Short,
    Malformed(&'static str),
}

struct Thrift<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Thrift<'_> {
    fn byte(&mut self) -> std::result::Result<u8, HeadError> {
        let b = *self.buf.get(self.pos).ok_or(HeadError::Short)?;
        self.pos += 1;
        Ok(b)
    }

    fn skip_bytes(&mut self, n: u64) -> std::result::Result<(), HeadError> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(HeadError::Short);
        }
        self.pos += usize::try_from(n).map_err(|_| HeadError::Short)?;
        Ok(())
    }

    fn varint(&mut self) -> std::result::Result<u64, HeadError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                break;
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(HeadError::Malformed("varint longer than 64 bits"))
    }

    fn zigzag(&mut self) -> std::result::Result<i64, HeadError> {
        let n = self.varint()?;
        let half = i64::try_from(n >> 1).map_err(|_| HeadError::Malformed("varint"))?;
        Ok(if n & 1 == 1 { !half } else { half })
    }

    fn i32(&mut self) -> std::result::Result<i32, HeadError> {
        i32::try_from(self.zigzag()?).map_err(|_| HeadError::Malformed("i32 out of range"))
    }

    /// The next field's id and type, or None at the struct's end.
    fn field(&mut self, last: &mut i16) -> std::result::Result<Option<(i16, u8)>, HeadError> {
        let b = self.byte()?;
        let ty = b & 0x0f;
        if ty == 0 {
            return Ok(None);
        }
        let id = match b >> 4 {
            0 => i16::try_from(self.zigzag()?).map_err(|_| HeadError::Malformed("field id"))?,
            delta => last
                .checked_add(i16::from(delta))
                .ok_or(HeadError::Malformed("field id"))?,
        };
        *last = id;
        Ok(Some((id, ty)))
    }

    /// Skips a value of compact type `ty`; `elem` for list, set and map elements (where
    /// booleans take a byte).
    fn skip(&mut self, ty: u8, depth: u8, elem: bool) -> std::result::Result<(), HeadError> {
        if depth > 16 {
            return Err(HeadError::Malformed("nested too deep"));
        }
        match ty {
            1 | 2 if !elem => {}
            1..=3 => {
                self.byte()?;
            }
            4..=6 => {
                self.varint()?;
            }
            7 => self.skip_bytes(8)?,
            8 => {
                let n = self.varint()?;
                self.skip_bytes(n)?;
            }
            9 | 10 => {
                let h = self.byte()?;
                let n = match h >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                // Every element takes at least a byte: the loop ends with the buffer.
                for _ in 0..n {
                    self.skip(h & 0x0f, depth + 1, true)?;
                }
            }
            11 => {
                let n = self.varint()?;
                if n > 0 {
                    let kv = self.byte()?;
                    for _ in 0..n {
                        self.skip(kv >> 4, depth + 1, true)?;
                        self.skip(kv & 0x0f, depth + 1, true)?;
                    }
                }
            }
            12 => {
                let mut last = 0;
                while let Some((_, t)) = self.field(&mut last)? {
                    self.skip(t, depth + 1, false)?;
                }
            }
            _ => return Err(HeadError::Malformed("unknown Thrift type")),
        }
        Ok(())
    }

    /// Field 1 (an i32) of a nested struct: `num_values` of every page-type header.
    fn first_i32(&mut self) -> std::result::Result<Option<i32>, HeadError> {
        let (mut last, mut v) = (0, None);
        while let Some((id, ty)) = self.field(&mut last)? {
            if (id, ty) == (1, 5) {
                v = Some(self.i32()?);
            } else {
                self.skip(ty, 1, false)?;
            }
        }
        Ok(v)
    }
}

/// Parses the Parquet `PageHeader` at the start of `buf`.
fn parse_page_header(buf: &[u8]) -> std::result::Result<PageHead, HeadError> {
    let mut t = Thrift { buf, pos: 0 };
    let (mut kind, mut unc, mut comp, mut values) = (None, None, None, None);
    let mut last = 0;
    while let Some((id, ty)) = t.field(&mut last)? {
        match (id, ty) {
            (1, 5) => kind = Some(t.i32()?),
            (2, 5) => unc = Some(t.i32()?),
            (3, 5) => comp = Some(t.i32()?),
            (5 | 7 | 8, 12) => values = t.first_i32()?.or(values),
            _ => t.skip(ty, 0, false)?,
        }
    }
    let (Some(kind), Some(uncompressed), Some(compressed)) = (kind, unc, comp) else {
        return Err(HeadError::Malformed("a page header without type or sizes"));
    };
    Ok(PageHead {
        kind,
        uncompressed,
        compressed,
        values: values.unwrap_or(0),
        len: t.pos,
    })
}

/// The Parquet crate's view of a part; page headers are checked by the guard once the
/// footer has been (see [`PageGuard`]).
struct PartSource(Arc<PartReader>, Arc<OnceLock<PageGuard>>);

impl Length for PartSource {
    fn len(&self) -> u64 {
        self.0.plain_len()
    }
}

impl ChunkReader for PartSource {
    type T = PartRead;
    fn get_read(&self, start: u64) -> parquet::errors::Result<PartRead> {
        if let Some(g) = self.1.get()
            && let Some(ci) = g.chunk_at(start)
            && !g.is_data_start(start)
        {
            // A page header: parsed and admitted before the Parquet crate reads it, from
            // the same (authenticated) bytes, which the returned reader then hands out.
            let room = g.chunks[ci].end - start;
            let mut want = room.min(4096);
            loop {
                let n = usize::try_from(want).unwrap_or(4096);
                let buf = self
                    .0
                    .range(start, n)
                    .map_err(|e| ParquetError::External(Box::new(e)))?;
                match parse_page_header(&buf) {
                    Ok(h) => {
                        g.admit(ci, start, &h).map_err(ParquetError::General)?;
                        return Ok(PartRead {
                            part: self.0.clone(),
                            pos: start + want,
                            buf,
                        });
                    }
                    Err(HeadError::Short) if want < room.min(MAX_PAGE_HEADER) => {
                        want = room.min(MAX_PAGE_HEADER).min(want * 4);
                    }
                    Err(HeadError::Short) => {
                        return Err(ParquetError::General(format!(
                            "the page header at byte {start} ({}) runs past its column chunk \
                             or past {MAX_PAGE_HEADER} bytes",
                            g.chunks[ci].what
                        )));
                    }
                    Err(HeadError::Malformed(m)) => {
                        return Err(ParquetError::General(format!(
                            "the page header at byte {start} ({}) is malformed: {m}",
                            g.chunks[ci].what
                        )));
                    }
                }
            }
        }
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
    scan_file_teeing(store, bundle, entry, key, plain, &mut std::io::sink()).map(drop)
}

/// [`scan_file`] that also hands every stored byte, as read, to `stored` (the import's
/// spool keeps a part's ciphertext this way, so the part is downloaded once). An error
/// writing to `stored` fails the scan. Returns the file's [`RunDigests`], for the reads
/// that follow.
pub fn scan_file_teeing(
    store: &Store,
    bundle: &str,
    entry: &FileEntry,
    key: Option<(&[u8; 32], Vec<u8>)>,
    plain: &mut dyn Write,
    stored: &mut dyn Write,
) -> Result<RunDigests> {
    let invalid = |m: String| Error::invalid(bundle, &entry.path, m);
    struct HashRead<'a, R> {
        inner: R,
        sha: Sha256,
        len: u64,
        /// The first bytes, to name a file that is not ours (plain Parquet) when it fails.
        head: Vec<u8>,
        tee: &'a mut dyn Write,
        /// Writing to `tee` failed (kept apart: not a fault of the file).
        tee_err: Option<std::io::Error>,
        /// The segment being hashed, and the digests of those done ([`RunDigests`]).
        run: blake3::Hasher,
        runs: Vec<[u8; 32]>,
        size: u64,
        encrypted: bool,
    }
    impl<R: Read> Read for HashRead<'_, R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            let (mut off, mut pos) = (0usize, self.len);
            while off < n {
                let end = segment_end(pos, self.size, self.encrypted);
                let take = if end > pos {
                    usize::try_from(end - pos).map_or(n - off, |t| t.min(n - off))
                } else {
                    n - off
                };
                self.run.update(&buf[off..off + take]);
                off += take;
                pos += take as u64;
                if pos == end {
                    self.runs.push(*self.run.finalize().as_bytes());
                    self.run.reset();
                }
            }
            if self.tee_err.is_none()
                && let Err(e) = self.tee.write_all(&buf[..n])
            {
                self.tee_err = Some(e);
            }
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
        // One byte past the manifest's size is enough to refuse a longer file: a store that
        // sends more (a hostile endpoint, an endless object) is not read, hashed or spooled
        // beyond it.
        inner: store
            .reader(&entry.path)?
            .take(entry.size.saturating_add(1)),
        sha: Sha256::new(),
        len: 0,
        head: Vec::new(),
        tee: stored,
        tee_err: None,
        run: blake3::Hasher::new(),
        runs: Vec::new(),
        size: entry.size,
        encrypted: key.is_some(),
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
    if let Some(e) = src.tee_err.take() {
        return Err(Error::io(
            format!("keeping a copy of {} (the import's spool)", entry.path),
            e,
        ));
    }
    let digest = hex::encode(src.sha.clone().finalize());
    if src.len > entry.size {
        return Err(invalid(format!(
            "size larger than the manifest's {} bytes (read stopped there; changed while read, or not \
             the file the manifest lists)",
            entry.size
        )));
    }
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
    Ok(RunDigests(src.runs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BinaryArray, ListArray, StringArray};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    /// A store in a fresh directory, and a plain part written there by `PartWriter`.
    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap(), true).unwrap();
        (dir, store)
    }

    fn write_part(store: &Store, path: &str, batches: &[RecordBatch]) -> Result<FileEntry> {
        let schema = batches[0].schema();
        let props = writer_properties(&schema, 1 << 20, 64 << 20, zstd_level(3).unwrap());
        let mut w = PartWriter::create(store, path, schema, props, None)?;
        for b in batches {
            w.write(b)?;
        }
        Ok(w.finish()?.0)
    }

    /// A column of distinct values fills its dictionary and falls back to plain pages: the
    /// part says so, and a part written without that column's dictionary has none for it
    /// and reads back the same.
    #[test]
    fn an_overflowed_dictionary_is_named_and_left_off_in_the_next_part() {
        let (dir, store) = store();
        let n = 60_000;
        let ids: Vec<String> = (0..n).map(|i| format!("{i:040}")).collect();
        let kinds: Vec<&str> = (0..n).map(|i| ["a", "b", "c"][i % 3]).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(StringArray::from(kinds)),
            ],
        )
        .unwrap();
        let props = writer_properties(&schema, 1 << 20, 64 << 20, zstd_level(1).unwrap());
        let mut w = PartWriter::create(&store, "p0", schema.clone(), props, None).unwrap();
        w.write(&batch).unwrap();
        let (_, _, overflowed) = w.finish_noting().unwrap();
        assert_eq!(overflowed, vec![ColumnPath::from("id")]);

        let props = writer_properties_without(
            &schema,
            1 << 20,
            64 << 20,
            zstd_level(1).unwrap(),
            &overflowed,
        );
        let mut w = PartWriter::create(&store, "p1", schema, props, None).unwrap();
        w.write(&batch).unwrap();
        let (entry, _, again) = w.finish_noting().unwrap();
        assert_eq!(again, Vec::<ColumnPath>::new());
        let file = std::fs::File::open(dir.path().join("p1")).unwrap();
        let meta = SerializedFileReader::new(file).unwrap().metadata().clone();
        let rg = meta.row_group(0);
        assert!(
            !rg.column(0)
                .encodings()
                .any(|e| e == parquet::basic::Encoding::RLE_DICTIONARY)
        );
        assert!(
            rg.column(1).dictionary_page_offset().is_some(),
            "the small column keeps its dictionary"
        );
        let back = read_part(&store, &entry, n).unwrap();
        assert_eq!(back, vec![batch]);
    }

    /// A batch reads a little of every column chunk in turn: the reader keeps a run per
    /// column, so each run of the part is read from the store and hashed about once, not
    /// once per batch and column.
    #[test]
    fn each_run_is_read_and_hashed_about_once_however_many_columns_take_turns() {
        let (_dir, store) = store();
        let (cols, rows) = (12usize, 200_000usize);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            i64::from_le_bytes(x.to_le_bytes())
        };
        let fields: Vec<Field> = (0..cols)
            .map(|c| Field::new(format!("c{c}"), DataType::Int64, false))
            .collect();
        let arrays: Vec<ArrayRef> = (0..cols)
            .map(|_| {
                Arc::new(arrow::array::Int64Array::from(
                    (0..rows).map(|_| next()).collect::<Vec<_>>(),
                )) as ArrayRef
            })
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap();
        let entry = write_part(&store, "p", std::slice::from_ref(&batch)).unwrap();
        let runs = scan_file_teeing(
            &store,
            "test-bundle",
            &entry,
            None,
            &mut std::io::sink(),
            &mut std::io::sink(),
        )
        .unwrap();
        let total = entry.size.div_ceil(PLAIN_RUN);
        assert!(total > 12, "{total} runs: each column spans more than one");
        let r =
            PartReader::open(&store, "test-bundle", &entry, None, Some(Arc::new(runs))).unwrap();
        let (_, batches) = r.batches("test-bundle", "table t part 0", 2048).unwrap();
        let back: Vec<RecordBatch> = batches.collect::<Result<_>>().unwrap();
        assert_eq!(
            arrow::compute::concat_batches(&batch.schema(), &back).unwrap(),
            batch
        );
        // Each run once, and at most once more where two column chunks share it (kept
        // three runs, it read 211: a run per column and row group, again and again).
        let read = r.runs_read.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            read <= total + cols as u64 + 2,
            "{read} runs read for a part of {total} (98 batches of 12 columns)"
        );
        // The batches ended: the reader (kept until its part commits) holds no runs.
        assert!(r.run_cache.lock().unwrap().runs.is_empty());
    }

    /// The run cache lets the least recently used run go, not the oldest: a column that
    /// keeps reading its run keeps it while others come and go.
    #[test]
    fn the_run_cache_keeps_the_run_still_in_use() {
        let mut c = RunCache::new(2);
        let run = |k: u8| Bytes::from(vec![k; 4]);
        c.put(1, run(1));
        c.put(2, run(2));
        assert_eq!(c.get(1), Some(run(1)));
        c.put(3, run(3));
        assert_eq!(c.get(2), None, "the least recently used went");
        assert_eq!(
            c.get(1),
            Some(run(1)),
            "the run in use stayed (a FIFO drops it)"
        );
        assert_eq!(c.get(3), Some(run(3)));
        c.set_cap(1);
        assert_eq!((c.get(1), c.get(3)), (None, Some(run(3))));
        c.clear();
        assert_eq!(c.get(3), None);
    }

    fn read_part(store: &Store, entry: &FileEntry, batch_rows: usize) -> Result<Vec<RecordBatch>> {
        let r = PartReader::open(store, "test-bundle", entry, None, None)?;
        let (_, batches) = r.batches("test-bundle", "table t part 0", batch_rows)?;
        batches.collect()
    }

    fn text_batch(values: Vec<String>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(values))]).unwrap()
    }

    fn row_groups(store: &Store, entry: &FileEntry) -> Vec<(i64, i64)> {
        let bytes = store.read_range(&entry.path, 0..entry.size).unwrap();
        let r = SerializedFileReader::new(bytes).unwrap();
        r.metadata()
            .row_groups()
            .iter()
            .map(|g| (g.num_rows(), g.total_byte_size()))
            .collect()
    }

    #[test]
    fn every_type_round_trips_through_views_and_back() {
        let (_d, store) = store();
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
            Some(vec![]),
        ]);
        let texts = arrow::array::ListBuilder::new(arrow::array::StringBuilder::new());
        let mut texts = texts;
        texts
            .values()
            .append_value("a longer string than twelve bytes");
        texts.values().append_null();
        texts.append(true);
        texts.append(false);
        texts.values().append_value("x");
        texts.append(true);
        let texts = texts.finish();
        let iv = IntervalMonthDayNanoArray::from(vec![
            Some(IntervalMonthDayNano::new(1, 2, 3)),
            None,
            Some(IntervalMonthDayNano::new(-1, 0, i64::MAX)),
        ]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Binary, true),
            Field::new("l", list.data_type().clone(), true),
            Field::new("lt", texts.data_type().clone(), true),
            Field::new("iv", DataType::Interval(IntervalUnit::MonthDayNano), true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("short"),
                    None,
                    Some("a value longer than a view's inline twelve bytes"),
                ])),
                Arc::new(BinaryArray::from(vec![
                    Some(&b"\x00\x01"[..]),
                    Some(&[0u8; 40][..]),
                    None,
                ])),
                Arc::new(list),
                Arc::new(texts),
                Arc::new(iv),
                Arc::new(Int64Array::from(vec![Some(1), None, Some(-7)])),
            ],
        )
        .unwrap();
        let entry = write_part(&store, "data/p.parquet", std::slice::from_ref(&batch)).unwrap();
        let back = read_part(&store, &entry, 1024).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0], batch);
    }

    /// Other readers (DuckDB, Spark, Polars) go by the Parquet logical types, not by the
    /// embedded Arrow schema: each canonical type that has one is written with it, and
    /// ferry still reads back its canonical types with their metadata.
    #[test]
    fn parts_carry_parquet_logical_types_and_read_back_canonical() {
        use crate::types::{Column, ColumnType, TableDef};
        use arrow::array::{
            Date32Array, Decimal128Array, FixedSizeBinaryArray, Time64MicrosecondArray,
            TimestampMicrosecondArray,
        };
        use parquet::basic::{LogicalType, TimeUnit as PqUnit};
        let col = |name: &str, ty: ColumnType| Column {
            name: name.into(),
            ty,
            nullable: true,
            source_type: String::new(),
            default: None,
            enum_type: None,
            domain_type: None,
            as_text: false,
            text_reason: None,
            collation: None,
            identity: None,
            generated: None,
        };
        let table = TableDef {
            name: "t".into(),
            columns: vec![
                col("u", ColumnType::Uuid),
                col("j", ColumnType::Json),
                col(
                    "d",
                    ColumnType::Decimal128 {
                        precision: 12,
                        scale: 2,
                    },
                ),
                col("tz", ColumnType::Timestamp { utc: true }),
                col("ts", ColumnType::Timestamp { utc: false }),
                col("dt", ColumnType::Date32),
                col("tm", ColumnType::Time64),
                col("s", ColumnType::Utf8),
            ],
            ..Default::default()
        };
        let schema = table.arrow_schema("postgres");
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(
                    FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                        vec![Some([7u8; 16]), None].into_iter(),
                        16,
                    )
                    .unwrap(),
                ),
                Arc::new(StringArray::from(vec![Some(r#"{"a":1}"#), None])),
                Arc::new(
                    Decimal128Array::from(vec![Some(-999_999_999_999), None])
                        .with_precision_and_scale(12, 2)
                        .unwrap(),
                ),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_000), None])
                        .with_timezone("UTC"),
                ),
                Arc::new(TimestampMicrosecondArray::from(vec![Some(-1), None])),
                Arc::new(Date32Array::from(vec![Some(19_000), None])),
                Arc::new(Time64MicrosecondArray::from(vec![
                    Some(86_399_999_999),
                    None,
                ])),
                Arc::new(StringArray::from(vec![Some("happy"), None])),
            ],
        )
        .unwrap();
        let (_d, store) = store();
        let entry = write_part(&store, "p.parquet", std::slice::from_ref(&batch)).unwrap();
        let bytes = store.read_range(&entry.path, 0..entry.size).unwrap();
        let r = SerializedFileReader::new(bytes).unwrap();
        let logical: Vec<Option<LogicalType>> = r
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.logical_type_ref().cloned())
            .collect();
        assert_eq!(
            logical,
            vec![
                Some(LogicalType::Uuid),
                Some(LogicalType::Json),
                Some(LogicalType::decimal(2, 12)),
                Some(LogicalType::timestamp(true, PqUnit::MICROS)),
                Some(LogicalType::timestamp(false, PqUnit::MICROS)),
                Some(LogicalType::Date),
                Some(LogicalType::time(false, PqUnit::MICROS)),
                Some(LogicalType::String),
            ]
        );
        let back = read_part(&store, &entry, 1024).unwrap();
        assert_eq!(back.len(), 1);
        // Values, types and the field metadata ferry's readers go by.
        assert_eq!(back[0], batch);
        assert_eq!(back[0].schema(), schema);
        for f in back[0].schema().fields() {
            let ty = crate::types::fingerprint::column_type(f).unwrap();
            let want = &table
                .columns
                .iter()
                .find(|c| &c.name == f.name())
                .unwrap()
                .ty;
            assert_eq!(&ty, want, "{}", f.name());
        }
    }

    /// Columns encoded on the pool give the very file one thread writes, row groups
    /// closed at the same rows, and it reads back the same.
    #[test]
    fn parallel_column_encoding_writes_the_same_bytes_as_one_thread() {
        static POOL: OnceLock<Option<EncodePool>> = OnceLock::new();
        let pool = POOL.get_or_init(|| EncodePool::start(4)).as_ref();
        assert!(pool.is_some());
        let (_d, store) = store();
        let n = 50_000i64;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Binary, true),
            Field::new(
                "l",
                DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
                true,
            ),
        ]));
        let batches: Vec<RecordBatch> = (0..4)
            .map(|k| {
                let ids: Vec<i64> = (k * n..(k + 1) * n).collect();
                let s: Vec<Option<String>> = ids
                    .iter()
                    .map(|i| {
                        (i % 11 != 0).then(|| {
                            format!("row {i} {}", "y".repeat(usize::try_from(i % 7).unwrap()))
                        })
                    })
                    .collect();
                let b: Vec<Option<Vec<u8>>> = ids
                    .iter()
                    .map(|i| (i % 5 != 0).then(|| i.to_le_bytes().to_vec()))
                    .collect();
                let l = ListArray::from_iter_primitive::<Int32Type, _, _>(ids.iter().map(|i| {
                    (i % 3 != 0).then(|| vec![Some(i32::try_from(i % 100).unwrap()), None])
                }));
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(Int64Array::from(ids)),
                        Arc::new(StringArray::from(s)),
                        Arc::new(BinaryArray::from_iter(b)),
                        Arc::new(l),
                    ],
                )
                .unwrap()
            })
            .collect();
        let write = |path: &str, pool: Option<&'static EncodePool>| {
            // Small row groups: several close inside a batch and across batches.
            let props = writer_properties(&schema, 30_000, 64 << 20, zstd_level(3).unwrap());
            let mut w =
                PartWriter::create_on(&store, path, schema.clone(), props, None, pool).unwrap();
            for b in &batches {
                w.write(b).unwrap();
            }
            w.finish().unwrap().0
        };
        let one = write("one.parquet", None);
        let many = write("many.parquet", pool);
        let bytes = |e: &FileEntry| store.read_range(&e.path, 0..e.size).unwrap();
        assert_eq!(one.sha256, many.sha256);
        assert_eq!(bytes(&one), bytes(&many));
        assert_eq!(row_groups(&store, &many).len(), 7);
        let back = read_part(&store, &many, 1 << 20).unwrap();
        let back = arrow::compute::concat_batches(&schema, &back).unwrap();
        assert_eq!(
            back,
            arrow::compute::concat_batches(&schema, &batches).unwrap()
        );
    }

    #[test]
    fn writer_closes_row_groups_by_data_bytes_and_reader_cuts_batches_by_bytes() {
        let (_d, store) = store();
        // 100 rows of 1 MiB (compressible to almost nothing): the stored-size budget alone
        // would keep them in one row group of 100 MiB.
        let rows: Vec<String> = (0..100)
            .map(|i| format!("{i:08}{}", "x".repeat((1 << 20) - 8)))
            .collect();
        let entry = write_part(&store, "data/p.parquet", &[text_batch(rows)]).unwrap();
        let groups = row_groups(&store, &entry);
        assert!(groups.len() >= 2, "{groups:?}");
        for (rows, bytes) in &groups {
            assert!(
                u64::try_from(*bytes).unwrap() <= MAX_ROW_GROUP_BYTES,
                "{rows} rows, {bytes} bytes"
            );
        }
        assert_eq!(groups.iter().map(|g| g.0).sum::<i64>(), 100);
        let back = read_part(&store, &entry, 65_536).unwrap();
        assert_eq!(back.iter().map(RecordBatch::num_rows).sum::<usize>(), 100);
        for b in &back {
            let size: u64 = row_costs(b).0.iter().sum();
            assert!(size <= BATCH_BYTES, "a batch of {size} bytes");
        }
        assert!(back.len() >= 7, "{} batches", back.len());
    }

    #[test]
    fn writer_closes_row_groups_by_list_values_not_by_flat_ones() {
        let (_d, store) = store();
        // 5M flat values (1M rows of 5 columns) fit one row group; 100 lists of 100 000
        // values do not.
        let names = ["a", "b", "c", "d", "e"];
        let schema = Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, DataType::Int32, false))
                .collect::<Vec<_>>(),
        ));
        let column: ArrayRef = Arc::new(Int32Array::from_iter_values(0..1_000_000));
        let flat = RecordBatch::try_new(schema, vec![column; 5]).unwrap();
        let entry = write_part(&store, "data/flat.parquet", &[flat]).unwrap();
        assert_eq!(row_groups(&store, &entry).len(), 1);
        let lists = ListArray::from_iter_primitive::<Int32Type, _, _>(
            (0..100).map(|i| Some((0..100_000).map(move |j| Some(i + j)))),
        );
        let schema = Arc::new(Schema::new(vec![Field::new(
            "l",
            lists.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(lists)]).unwrap();
        let entry = write_part(&store, "data/lists.parquet", std::slice::from_ref(&batch)).unwrap();
        let groups = row_groups(&store, &entry);
        assert!(groups.len() >= 3, "{groups:?}");
        let back = read_part(&store, &entry, 65_536).unwrap();
        let back = arrow::compute::concat_batches(&back[0].schema(), &back).unwrap();
        assert_eq!(back, batch);
    }

    #[test]
    fn a_dictionary_cannot_expand_a_batch() {
        let (_d, store) = store();
        // One 1 MiB value repeated: dictionary-encoded, a few KB stored, 64 MiB decoded.
        let big = "d".repeat(1 << 20);
        let entry = write_part(
            &store,
            "data/p.parquet",
            &[text_batch(vec![big.clone(); 64])],
        )
        .unwrap();
        let back = read_part(&store, &entry, 65_536).unwrap();
        assert_eq!(back.iter().map(RecordBatch::num_rows).sum::<usize>(), 64);
        for b in &back {
            assert!(row_costs(b).0.iter().sum::<u64>() <= BATCH_BYTES);
            assert_eq!(b.column(0).as_string::<i32>().value(0), big);
        }
    }

    #[test]
    fn export_refuses_a_row_larger_than_ferry_reads() {
        let (_d, store) = store();
        let huge = "h".repeat(usize::try_from(MAX_ROW_BYTES).unwrap());
        let e = write_part(
            &store,
            "data/p.parquet",
            &[text_batch(vec!["ok".into(), huge])],
        )
        .expect_err("refused")
        .to_string();
        assert!(e.contains("row 2") && e.contains("at most 96.0 MiB"), "{e}");
    }

    /// The page header at the start of the first column chunk of a plain part.
    fn first_header(store: &Store, entry: &FileEntry) -> (u64, Vec<u8>) {
        let bytes = store.read_range(&entry.path, 0..entry.size).unwrap();
        let r = SerializedFileReader::new(bytes.clone()).unwrap();
        let c = r.metadata().row_group(0).column(0);
        let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
        let start = u64::try_from(start).unwrap();
        (start, bytes.to_vec())
    }

    #[test]
    fn page_headers_parse_as_the_parquet_crate_reads_them() {
        let (_d, store) = store();
        let rows: Vec<String> = (0..5000).map(|i| format!("row {i}")).collect();
        let entry = write_part(&store, "data/p.parquet", &[text_batch(rows)]).unwrap();
        let (start, bytes) = first_header(&store, &entry);
        let bytes = Bytes::from(bytes);
        let r = SerializedFileReader::new(bytes.clone()).unwrap();
        let meta = r.metadata().row_group(0).column(0).clone();
        // Walk every page of the chunk with our parser: sizes add up to the footer's.
        let (mut at, mut unc, mut values) = (usize::try_from(start).unwrap(), 0i64, 0i64);
        let end = at + usize::try_from(meta.compressed_size()).unwrap();
        let mut pages = 0;
        while at < end {
            let h = parse_page_header(&bytes[at..]).unwrap();
            unc += i64::from(h.uncompressed) + i64::try_from(h.len).unwrap();
            if h.kind != DICTIONARY_PAGE {
                values += i64::from(h.values);
            }
            at += h.len + usize::try_from(h.compressed).unwrap();
            pages += 1;
        }
        assert_eq!(at, end);
        assert!(pages >= 2);
        assert_eq!(unc, meta.uncompressed_size());
        assert_eq!(values, meta.num_values());
        // Cut short anywhere: asks for more, never panics or misreads.
        let h = parse_page_header(&bytes[usize::try_from(start).unwrap()..]).unwrap();
        for cut in 0..h.len {
            let from = usize::try_from(start).unwrap();
            assert_eq!(
                parse_page_header(&bytes[from..from + cut]),
                Err(HeadError::Short)
            );
        }
    }

    #[test]
    fn page_header_parser_survives_garbage() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..4000usize {
            let buf: Vec<u8> = (0..len % 97)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x.to_le_bytes()[0]
                })
                .collect();
            let _ = parse_page_header(&buf);
        }
        // A list that claims 2^32 elements ends with the buffer.
        let mut deep = vec![0x19, 0xf5];
        deep.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(parse_page_header(&deep), Err(HeadError::Short));
        // Nesting beyond 16 levels is malformed, not a stack overflow.
        let nested = [0x1c; 64];
        assert!(matches!(
            parse_page_header(&nested),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn a_page_header_lying_about_its_size_is_refused_before_decompressing() {
        let (_d, store) = store();
        // One 2 MB value: the chunk's first page header holds a 4-byte size varint.
        let entry = write_part(
            &store,
            "data/p.parquet",
            &[text_batch(vec!["a".repeat(2_000_000)])],
        )
        .unwrap();
        let (start, mut bytes) = first_header(&store, &entry);
        let at = usize::try_from(start).unwrap();
        // field 1 (type) = 0x15 + varint, then field 2 (uncompressed size) = 0x15 + varint.
        assert_eq!(bytes[at], 0x15);
        let mut p = at + 1;
        while bytes[p] & 0x80 != 0 {
            p += 1;
        }
        p += 1;
        assert_eq!(bytes[p], 0x15);
        let size_at = p + 1;
        assert_eq!(
            bytes[size_at..size_at + 4]
                .iter()
                .filter(|b| **b & 0x80 != 0)
                .count(),
            3
        );
        // The largest 4-byte varint: 2^27 - 1 bytes uncompressed, 67 times what the footer says.
        bytes[size_at..size_at + 4].copy_from_slice(&[0xfe, 0xff, 0xff, 0x7f]);
        store.put(&entry.path, Bytes::from(bytes)).unwrap();
        let e = read_part(&store, &entry, 1024).unwrap_err().to_string();
        assert!(
            e.contains("its footer declares") && e.contains("refused before decompressing"),
            "{e}"
        );
        assert!(
            e.contains("data/p.parquet") && e.contains("column \"s\""),
            "{e}"
        );
    }

    #[test]
    fn the_guard_refuses_pages_over_the_caps() {
        let g = PageGuard {
            chunks: vec![ChunkBound {
                start: 100,
                end: 1000,
                what: "row group 0, column \"s\"".into(),
                bytes: u64::MAX,
                values: 10,
            }],
            state: Mutex::new(GuardState {
                seen: HashSet::new(),
                data_starts: HashSet::new(),
                used: vec![(0, 0)],
            }),
        };
        assert_eq!(g.chunk_at(99), None);
        assert_eq!(g.chunk_at(100), Some(0));
        assert_eq!(g.chunk_at(1000), None);
        let head = |uncompressed, compressed, values| PageHead {
            kind: 0,
            uncompressed,
            compressed,
            values,
            len: 20,
        };
        let e = g.admit(0, 100, &head(i32::MAX, 10, 1)).unwrap_err();
        assert!(
            e.contains("more than the 134217728 bytes ferry reads per page"),
            "{e}"
        );
        assert!(g.admit(0, 100, &head(-1, 10, 1)).is_err());
        assert!(
            g.admit(0, 100, &head(10, 900, 1))
                .unwrap_err()
                .contains("left in its column chunk")
        );
        assert!(g.admit(0, 100, &head(10, 10, 6)).is_ok());
        // The same header read again is not counted twice.
        assert!(g.admit(0, 100, &head(10, 10, 6)).is_ok());
        assert!(
            g.admit(0, 200, &head(10, 10, 5))
                .unwrap_err()
                .contains("11 values")
        );
        // A page's data start is passed through (a peeked header), unless the page has no
        // data: then a header starts there, and it is checked.
        assert!(g.is_data_start(120));
        let g = PageGuard {
            chunks: vec![ChunkBound {
                start: 100,
                end: 1000,
                what: "row group 0, column \"s\"".into(),
                bytes: u64::MAX,
                values: 10,
            }],
            state: Mutex::new(GuardState {
                seen: HashSet::new(),
                data_starts: HashSet::new(),
                used: vec![(0, 0)],
            }),
        };
        assert!(g.admit(0, 300, &head(0, 0, 0)).is_ok());
        assert!(!g.is_data_start(320));
    }

    #[test]
    fn a_crafted_interval_column_is_an_error_not_a_panic() {
        let marked = |t: DataType, nullable| {
            Field::new("iv", t, nullable).with_metadata(std::collections::HashMap::from([(
                crate::types::META_LOGICAL.to_string(),
                INTERVAL_MARK.to_string(),
            )]))
        };
        let try_one = |fields: Fields, cols: Vec<ArrayRef>, nulls| {
            let s = StructArray::try_new(fields.clone(), cols, nulls).unwrap();
            let schema = Arc::new(Schema::new(vec![marked(DataType::Struct(fields), true)]));
            let b = RecordBatch::try_new(schema, vec![Arc::new(s)]).unwrap();
            catch_unwind(AssertUnwindSafe(|| from_storage(b))).expect("no panic")
        };
        let i32s = |v: Vec<Option<i32>>| Arc::new(Int32Array::from(v)) as ArrayRef;
        let f = |n: &str, t| Field::new(n, t, true);
        // One field only.
        let e = try_one(
            Fields::from(vec![f("months", DataType::Int32)]),
            vec![i32s(vec![Some(1)])],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("a struct of 1 fields"), "{e}");
        // Wrong types.
        let e = try_one(
            Fields::from(vec![
                f("months", DataType::Int32),
                f("days", DataType::Int32),
                f("nanoseconds", DataType::Int32),
            ]),
            vec![
                i32s(vec![Some(1)]),
                i32s(vec![Some(1)]),
                i32s(vec![Some(1)]),
            ],
            None,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("instead of Int32, Int32, Int64"),
            "{e}"
        );
        // A null field inside a non-null interval.
        let e = try_one(
            Fields::from(vec![
                f("months", DataType::Int32),
                f("days", DataType::Int32),
                f("nanoseconds", DataType::Int64),
            ]),
            vec![
                i32s(vec![Some(1), None]),
                i32s(vec![Some(1), Some(2)]),
                Arc::new(Int64Array::from(vec![Some(1), Some(2)])),
            ],
            None,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("null in the non-null interval of row 2"),
            "{e}"
        );
        // Not a struct at all.
        let schema = Arc::new(Schema::new(vec![marked(DataType::Int32, true)]));
        let b = RecordBatch::try_new(schema, vec![i32s(vec![Some(1)])]).unwrap();
        assert!(
            from_storage(b)
                .unwrap_err()
                .to_string()
                .contains("instead of a struct")
        );
        // A null interval with null fields is fine.
        let ok = try_one(
            interval_struct_fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect(),
            vec![
                i32s(vec![Some(1), None]),
                i32s(vec![Some(2), None]),
                Arc::new(Int64Array::from(vec![Some(3), None])),
            ],
            Some(arrow::buffer::NullBuffer::from(vec![true, false])),
        )
        .unwrap();
        let iv = ok.column(0).as_primitive::<IntervalMonthDayNanoType>();
        assert_eq!(iv.value(0), IntervalMonthDayNano::new(1, 2, 3));
        assert!(iv.is_null(1));
    }
}
