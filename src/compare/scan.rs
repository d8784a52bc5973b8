//! What `compare` keeps of a table while its rows stream past: in the first pass sums only
//! (the fingerprint, one sum per column, one per bucket of keys), so memory does not grow
//! with the table; in the second pass, over tables that differ, the rows of a few buckets by
//! key. Rows never leave the thread that reads them: only these sums and entries do.

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::Result;
use crate::types::fingerprint::{Fingerprint, Rows, encode_rows, row_hash};

/// Buckets of primary-key hashes: a table that differs is read again only for the keys of
/// the buckets whose sums differ.
pub const BUCKETS: usize = 1024;

/// Which bucket a key hash falls in (its top 10 bits).
fn bucket(key_hash: u64) -> usize {
    usize::try_from(key_hash >> 54).unwrap_or(0)
}

/// The low 64 bits of a row hash.
fn low64(h: u128) -> u64 {
    u64::try_from(h & u128::from(u64::MAX)).unwrap_or(0)
}

/// The hash of a row's key: the canonical encodings of its key cells, in key order.
fn key_bytes<'r>(
    rows: &'r Rows<'_>,
    r: usize,
    key: &[usize],
    scratch: &'r mut Vec<u8>,
) -> &'r [u8] {
    if let [k] = key {
        return rows.cell(r, *k);
    }
    scratch.clear();
    for k in key {
        scratch.extend_from_slice(rows.cell(r, *k));
    }
    scratch
}

/// The first pass's sums of one table on one side.
#[derive(Debug, Clone)]
pub struct Sums {
    pub fp: Fingerprint,
    /// Per column: the wrapping sum over rows of a hash of (key, value), or of the value
    /// alone for a table without a key. Equal key columns mean equal key sets; then a column
    /// whose sum differs is one whose values changed.
    pub cols: Vec<u64>,
    /// Per bucket: (sum of the low 64 bits of its rows' hashes, rows). Empty without a key.
    pub buckets: Vec<(u64, u64)>,
}

impl Sums {
    pub fn new(columns: usize, keyed: bool) -> Sums {
        Sums {
            fp: Fingerprint::default(),
            cols: vec![0; columns],
            buckets: if keyed { vec![(0, 0); BUCKETS] } else { vec![] },
        }
    }

    /// Adds a batch (already cut to the compared columns, in their order); `key`: the key
    /// columns' positions.
    pub fn add(&mut self, batch: &RecordBatch, key: &[usize]) -> Result<()> {
        let mut scratch = Vec::new();
        let (fp, cols, buckets) = (&mut self.fp, &mut self.cols, &mut self.buckets);
        encode_rows(batch, &mut |rows| {
            for r in 0..rows.len() {
                let h = row_hash(rows.row(r));
                fp.add_row(h);
                if key.is_empty() {
                    for (c, sum) in cols.iter_mut().enumerate() {
                        *sum = sum.wrapping_add(xxh3_64(rows.cell(r, c)));
                    }
                    continue;
                }
                let kh = xxh3_64(key_bytes(rows, r, key, &mut scratch));
                let b = &mut buckets[bucket(kh)];
                b.0 = b.0.wrapping_add(low64(h));
                b.1 += 1;
                for (c, sum) in cols.iter_mut().enumerate() {
                    *sum = sum.wrapping_add(xxh3_64_with_seed(rows.cell(r, c), kh));
                }
            }
        })
    }
}

/// One key's row as the second pass saw it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `id=42`, `(a=1, b="x")`: for the report.
    pub key: String,
    pub hash: u128,
    /// A hash of each column's value.
    pub cells: Vec<u64>,
    /// Rows with this key (more than one only on a side without a unique key).
    pub count: u32,
}

/// The second pass: the rows of the wanted buckets, by the canonical encoding of their key.
#[derive(Debug)]
pub struct Keyed {
    pub rows: HashMap<Vec<u8>, Entry>,
    wanted: Vec<bool>,
}

impl Keyed {
    pub fn new(wanted: Vec<bool>) -> Keyed {
        Keyed {
            rows: HashMap::new(),
            wanted,
        }
    }

    pub fn add(&mut self, batch: &RecordBatch, key: &[usize]) -> Result<()> {
        let mut scratch = Vec::new();
        let (map, wanted) = (&mut self.rows, &self.wanted);
        encode_rows(batch, &mut |rows| {
            for r in 0..rows.len() {
                let kb = key_bytes(rows, r, key, &mut scratch);
                if !wanted[bucket(xxh3_64(kb))] {
                    continue;
                }
                let h = row_hash(rows.row(r));
                let cells = (0..batch.num_columns()).map(|c| xxh3_64(rows.cell(r, c)));
                match map.get_mut(kb) {
                    Some(e) => {
                        e.count += 1;
                        e.hash = e.hash.wrapping_add(h);
                        for (s, c) in e.cells.iter_mut().zip(cells) {
                            *s = s.wrapping_add(c);
                        }
                    }
                    None => {
                        let e = Entry {
                            key: key_text(batch, rows.first() + r, key),
                            hash: h,
                            cells: cells.collect(),
                            count: 1,
                        };
                        map.insert(kb.to_vec(), e);
                    }
                }
            }
        })
    }
}

/// A row's key for people: `id=42`, or `(a=1, b="x")` for a key of several columns. Text is
/// quoted and escaped (it is data: no control character reaches a terminal).
pub fn key_text(batch: &RecordBatch, row: usize, key: &[usize]) -> String {
    let schema = batch.schema();
    let parts: Vec<String> = key
        .iter()
        .map(|&k| {
            let a = batch.column(k);
            let v = if a.is_null(row) {
                "NULL".to_string()
            } else {
                match a.data_type() {
                    DataType::Utf8 => format!("{:?}", a.as_string::<i32>().value(row)),
                    DataType::FixedSizeBinary(16) => {
                        uuid::Uuid::from_slice(a.as_fixed_size_binary().value(row))
                            .map(|u| u.hyphenated().to_string())
                            .unwrap_or_default()
                    }
                    _ => arrow::util::display::ArrayFormatter::try_new(
                        a.as_ref(),
                        &arrow::util::display::FormatOptions::default(),
                    )
                    .map(|f| f.value(row).to_string())
                    .unwrap_or_else(|_| "?".into()),
                }
            };
            format!("{}={v}", schema.field(k).name())
        })
        .collect();
    match parts.as_slice() {
        [one] => crate::report::printable(one).into_owned(),
        _ => crate::report::printable(&format!("({})", parts.join(", "))).into_owned(),
    }
}
