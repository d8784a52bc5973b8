//! Parquet part reader: arbitrary bytes as a part's (decrypted) plaintext, read the way import
//! and verify read a part: `PartReader::open_for_fuzzing` (no key: the `--no-encrypt` path, whose bytes are
//! exactly the plaintext an encrypted part decrypts to), then `batches` (footer limits, page
//! guard, panic guard), then every batch. Any outcome but a panic or an abort is fine.
//!
//! `PartReader` reads through a `Store`, so each input is written to one file in a temporary
//! local bundle directory (made once per process).
#![no_main]

use std::sync::OnceLock;

use ferry::bundle::FileEntry;
use ferry::bundle::parts::PartReader;
use ferry::storage::Store;
use libfuzzer_sys::fuzz_target;

const PART: &str = "data/part.parquet";

fn store() -> &'static (tempfile::TempDir, Store) {
    static STORE: OnceLock<(tempfile::TempDir, Store)> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
        let store = Store::open(dir.path().to_str().expect("utf-8 temp path"), false).expect("store");
        (dir, store)
    })
}

fuzz_target!(|data: &[u8]| {
    let (dir, store) = store();
    std::fs::write(dir.path().join(PART), data).expect("write part");
    let entry = FileEntry {
        path: PART.into(),
        size: data.len() as u64,
        sha256: String::new(),
    };
    let Ok(reader) = PartReader::open_for_fuzzing(store, &entry) else {
        return;
    };
    let Ok((_rows, batches)) = reader.batches("fuzz", "table t part 1", 1024) else {
        return;
    };
    for b in batches {
        if b.is_err() {
            break;
        }
    }
    let _ = reader.authenticate_rest("fuzz");
});
