//! Bounded work before authentication (DESIGN.md "Trust", RELIABILITY.md #13, #26, #27,
//! issue #13 point 4): a small bundle cannot make the reader allocate without bound, a
//! passphrase slot cannot make it run Argon2 without bound, and a crafted column cannot
//! panic the reader. Memory is checked by running the real binary under `ulimit -v`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray, StructArray};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use bytes::Bytes;
use ferry::bundle::Manifest;
use ferry::crypto::cobblestone::{decrypt_all, encrypt_to_vec};
use ferry::crypto::envelope::{DataKey, file_context};
use ferry::crypto::keys::{KeyFileKey, Keys};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::common::{ferry, ledger_rows, parts, user_tables};

/// The address-space limit of the acceptance test: 1 GiB.
const ULIMIT_KIB: u64 = 1_048_576;
/// A refusal that must come before heavy work (loose: debug builds, busy machines).
const FAST: Duration = Duration::from_secs(5);
const PASSPHRASE: &str = "correct horse battery staple";

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    /// Peak resident set of the ferry process in KiB, when GNU time is there to say.
    max_rss_kib: Option<u64>,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:?}, max RSS {:?} KiB\n--- stdout\n{}--- stderr\n{}",
            self.code, self.elapsed, self.max_rss_kib, self.stdout, self.stderr
        )
    }
}

const RSS_MARK: &str = "ferry-max-rss-kib=";

/// Runs `ferry ARGS…`, under `ulimit -v` when `limit_kib` is given (through `sh`, so the
/// limit holds for ferry alone), with its peak RSS measured by GNU time when installed.
fn run(args: &[&str], env: &[(&str, &str)], limit_kib: Option<u64>) -> Out {
    let bin = assert_cmd::cargo::cargo_bin("ferry");
    let time = Path::new("/usr/bin/time");
    let mut script = String::new();
    if let Some(k) = limit_kib {
        script.push_str(&format!("ulimit -v {k} || exit 99; "));
    }
    script.push_str("exec ");
    if time.exists() {
        script.push_str(&format!("/usr/bin/time -f '{RSS_MARK}%M' "));
    }
    script.push_str("\"$0\" --quiet \"$@\"");
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg(script)
        .arg(&bin)
        .args(args)
        .env_remove("FERRY_KEY_FILE");
    for (k, v) in env {
        c.env(k, v);
    }
    let started = Instant::now();
    let o = c.output().expect("sh runs");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let max_rss_kib = stderr
        .lines()
        .find_map(|l| l.strip_prefix(RSS_MARK))
        .and_then(|v| v.trim().parse().ok());
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr,
        elapsed: started.elapsed(),
        max_rss_kib,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[track_caller]
fn assert_code(out: &Out, code: i32, needles: &[&str]) {
    eprintln!("{out}");
    assert_eq!(out.code, Some(code), "expected exit {code}\n{out}");
    for bad in ["panicked", "memory allocation", "Aborted", "core dumped"] {
        assert!(!out.stderr.contains(bad), "stderr says {bad:?}\n{out}");
    }
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "stderr does not mention {n:?}\n{out}"
        );
    }
}

#[track_caller]
fn assert_untouched(target: &Path) {
    if target.exists() {
        assert_eq!(ledger_rows(target), 0);
        assert_eq!(user_tables(target), Vec::<String>::new());
    }
}

/// A directory with a key file and a SQLite source made by `sql`.
struct Fx {
    dir: tempfile::TempDir,
    key: PathBuf,
    src: PathBuf,
}

impl Fx {
    fn new(sql: &str) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.key");
        ferry().args(["keygen", s(&key)]).assert().success();
        let src = dir.path().join("src.db");
        Connection::open(&src).unwrap().execute_batch(sql).unwrap();
        Fx { dir, key, src }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn src_url(&self) -> String {
        format!("sqlite://{}", s(&self.src))
    }

    fn export(&self, name: &str) -> PathBuf {
        let b = self.path(name);
        let out = run(
            &["export", &self.src_url(), s(&b), "--key-file", s(&self.key)],
            &[],
            None,
        );
        assert_code(&out, 0, &[]);
        b
    }

    fn data_key(&self, m: &Manifest) -> DataKey {
        let (k, _) = KeyFileKey::load(&self.key).unwrap();
        let keys = Keys {
            key_files: vec![k],
            passphrases: vec![],
            ..Keys::default()
        };
        DataKey::unwrap(&m.bundle_id, &m.encryption.key_slots, &keys).unwrap()
    }
}

fn read_manifest(bundle: &Path) -> Manifest {
    serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap()
}

fn rel(bundle: &Path, file: &Path) -> String {
    file.strip_prefix(bundle)
        .unwrap()
        .to_str()
        .unwrap()
        .replace('\\', "/")
}

/// The only part of a one-table bundle: its path relative to the bundle, and its Parquet.
fn only_part(fx: &Fx, bundle: &Path) -> (String, Vec<u8>) {
    let p = parts(bundle);
    assert_eq!(p.len(), 1, "{p:?}");
    let m = read_manifest(bundle);
    let rel_path = rel(bundle, &p[0]);
    let key = fx.data_key(&m).file_key(&m.bundle_id);
    let ctx = file_context(&m.bundle_id, "part", &rel_path);
    let plain = decrypt_all(&key, &ctx, &std::fs::read(&p[0]).unwrap()).unwrap();
    (rel_path, plain)
}

fn schema_of(parquet: Vec<u8>) -> SchemaRef {
    ParquetRecordBatchReaderBuilder::try_new(Bytes::from(parquet))
        .unwrap()
        .schema()
        .clone()
}

/// An insider with the key: replaces a part by a valid encryption of `plaintext` under the
/// bundle's key and the part's context, and rewrites the manifest's size, hash and MAC, so
/// only the Parquet reader stands between the part and the target.
fn replace_part(fx: &Fx, bundle: &Path, rel_path: &str, plaintext: &[u8]) {
    let mut m = read_manifest(bundle);
    let dk = fx.data_key(&m);
    let ct = encrypt_to_vec(
        &dk.file_key(&m.bundle_id),
        &file_context(&m.bundle_id, "part", rel_path),
        plaintext,
    )
    .unwrap();
    std::fs::write(bundle.join(rel_path), &ct).unwrap();
    let entry = m.parts.iter_mut().find(|p| p.path == rel_path).unwrap();
    entry.size = ct.len() as u64;
    entry.sha256 = hex::encode(Sha256::digest(&ct));
    let json = m.to_json();
    std::fs::write(bundle.join("manifest.json"), &json).unwrap();
    let mac = dk.manifest_mac(&m.bundle_id, &json);
    std::fs::write(bundle.join("manifest.mac"), format!("{mac}\n")).unwrap();
}

fn parquet_of(schema: &SchemaRef, columns: Vec<ArrayRef>, dictionary: bool) -> Vec<u8> {
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(
            parquet::basic::ZstdLevel::try_new(3).unwrap(),
        ))
        .set_dictionary_enabled(dictionary)
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, schema.clone(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

fn bundle_bytes(bundle: &Path) -> u64 {
    std::fs::read_dir(bundle)
        .unwrap()
        .chain(std::fs::read_dir(bundle.join("data")).unwrap())
        .map(|e| e.unwrap().metadata().unwrap())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

// ---------------------------------------------------------------------------------------
// Parquet: the bomb of issue #13 (one row, 8 × 100 MB of text, a 41 KB bundle)

const BOMB_TABLE: &str =
    "CREATE TABLE bomb (c1 TEXT, c2 TEXT, c3 TEXT, c4 TEXT, c5 TEXT, c6 TEXT, c7 TEXT, c8 TEXT);
     INSERT INTO bomb VALUES ('a', 'a', 'a', 'a', 'a', 'a', 'a', 'a');";

/// The bomb: ferry's own bundle of the table above, its one part replaced by a Parquet file
/// with the same schema whose one row holds 8 × 100 MB of 'a' (zstd makes that a few KB).
fn bomb_bundle(fx: &Fx) -> (PathBuf, String) {
    let b = fx.export("bomb");
    let (rel_path, plain) = only_part(fx, &b);
    let schema = schema_of(plain);
    let value: ArrayRef = Arc::new(StringArray::from(vec!["a".repeat(100_000_000)]));
    let bomb = parquet_of(&schema, vec![value; 8], false);
    replace_part(fx, &b, &rel_path, &bomb);
    (b, rel_path)
}

#[test]
fn a_41kb_bomb_of_8x100mb_text_is_refused_within_1gib() {
    let fx = Fx::new(BOMB_TABLE);
    let (b, part) = bomb_bundle(&fx);
    let size = bundle_bytes(&b);
    eprintln!("bomb bundle: {size} bytes");
    assert!(size < 100_000, "the bomb is {size} bytes");
    let verify = run(
        &["verify", s(&b), "--key-file", s(&fx.key)],
        &[],
        Some(ULIMIT_KIB),
    );
    assert_code(
        &verify,
        65,
        &[&part, "row group 0 declares", "refused before decoding"],
    );
    let target = fx.path("t.db");
    let import = run(
        &[
            "import",
            s(&b),
            &format!("sqlite://{}", s(&target)),
            "--key-file",
            s(&fx.key),
        ],
        &[],
        Some(ULIMIT_KIB),
    );
    assert_code(&import, 65, &[&part, "row group 0 declares"]);
    assert_untouched(&target);
    for out in [&verify, &import] {
        if let Some(rss) = out.max_rss_kib {
            assert!(rss < 256 * 1024, "{rss} KiB resident\n{out}");
        }
    }
}

#[test]
fn a_90mb_value_ferry_wrote_is_read_back_within_1gib() {
    // hex(zeroblob(n)) is 2n characters of '0'.
    let fx = Fx::new(
        "CREATE TABLE big (id INTEGER, v TEXT);
         INSERT INTO big VALUES (1, hex(zeroblob(45000000))), (2, 'small');",
    );
    let b = fx.export("big");
    let verify = run(
        &["verify", s(&b), "--key-file", s(&fx.key)],
        &[],
        Some(ULIMIT_KIB),
    );
    assert_code(&verify, 0, &[]);
    let target = fx.path("t.db");
    let import = run(
        &[
            "import",
            s(&b),
            &format!("sqlite://{}", s(&target)),
            "--key-file",
            s(&fx.key),
        ],
        &[],
        Some(ULIMIT_KIB),
    );
    assert_code(&import, 0, &[]);
    let n: i64 = Connection::open(&target)
        .unwrap()
        .query_row("SELECT sum(length(v)) FROM big", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 90_000_005);
}

#[test]
fn export_refuses_a_row_no_reader_could_take_back() {
    let fx = Fx::new(
        "CREATE TABLE big (id INTEGER, v TEXT);
         INSERT INTO big VALUES (1, 'small'), (2, hex(zeroblob(52000000)));",
    );
    let b = fx.path("big");
    let out = run(
        &["export", &fx.src_url(), s(&b), "--key-file", s(&fx.key)],
        &[],
        None,
    );
    assert_code(
        &out,
        65,
        &["row 2", "ferry carries rows of at most 96.0 MiB"],
    );
    assert!(!b.join("manifest.json").exists());
}

// ---------------------------------------------------------------------------------------
// Argon2: per-slot caps, four passphrase slots, one budget, all before any KDF runs

const SMALL_TABLE: &str = "CREATE TABLE t (id INTEGER, v TEXT);
     INSERT INTO t VALUES (1, 'one'), (2, 'two');";

/// A bundle with one passphrase slot per `PW_n` variable given.
fn export_with_passphrases(fx: &Fx, name: &str, n: usize) -> (PathBuf, Out) {
    let b = fx.path(name);
    let vars: Vec<String> = (0..n).map(|i| format!("PW_{i}")).collect();
    let values: Vec<String> = (0..n).map(|i| format!("{PASSPHRASE} {i}")).collect();
    let mut args = vec!["export".to_string(), fx.src_url(), s(&b).to_string()];
    for v in &vars {
        args.extend(["--passphrase-env".to_string(), v.clone()]);
    }
    let env: Vec<(&str, &str)> = vars
        .iter()
        .zip(&values)
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args, &env, None);
    (b, out)
}

/// verify and import with passphrase number `i`.
fn open_with_passphrase(fx: &Fx, b: &Path, i: usize) -> [Out; 2] {
    let pw = format!("{PASSPHRASE} {i}");
    let env = [("PW", pw.as_str())];
    let target = fx.path("t.db");
    [
        run(&["verify", s(b), "--passphrase-env", "PW"], &env, None),
        run(
            &[
                "import",
                s(b),
                &format!("sqlite://{}", s(&target)),
                "--passphrase-env",
                "PW",
            ],
            &env,
            None,
        ),
    ]
}

fn edit_slots(b: &Path, f: impl FnOnce(&mut Vec<serde_json::Value>)) {
    let p = b.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let slots = v["encryption"]["key_slots"].as_array_mut().unwrap();
    f(slots);
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[track_caller]
fn assert_refused_fast(fx: &Fx, outs: &[Out], needles: &[&str]) {
    for out in outs {
        assert_code(out, 65, needles);
        assert!(out.elapsed < FAST, "took {:?}\n{out}", out.elapsed);
    }
    assert_untouched(&fx.path("t.db"));
}

#[test]
fn one_hostile_kdf_slot_is_refused_in_under_a_second() {
    // 4 GiB × 16 passes: within 0.1's caps, 18 s and 1 GB per attempt at a quarter of that.
    let fx = Fx::new(SMALL_TABLE);
    let (b, out) = export_with_passphrases(&fx, "p", 1);
    assert_code(&out, 0, &[]);
    edit_slots(&b, |slots| {
        slots[0]["kdf"]["m_kib"] = serde_json::json!(4 * 1024 * 1024);
        slots[0]["kdf"]["t"] = serde_json::json!(16);
    });
    let outs = open_with_passphrase(&fx, &b, 0);
    assert_refused_fast(
        &fx,
        &outs,
        &[
            "keyslot KDF parameters exceed limits",
            "slot #1",
            "m_kib=4194304",
            "m ≤ 1 GiB",
        ],
    );
    for out in &outs {
        eprintln!("hostile slot refused in {:?}", out.elapsed);
    }
}

#[test]
fn slots_within_the_caps_but_over_the_budget_are_refused_before_any_kdf() {
    // Two slots at the per-slot caps (1 GiB × 8 passes each): the second exceeds the budget.
    let fx = Fx::new(SMALL_TABLE);
    let (b, out) = export_with_passphrases(&fx, "p", 2);
    assert_code(&out, 0, &[]);
    edit_slots(&b, |slots| {
        for s in slots.iter_mut() {
            s["kdf"]["m_kib"] = serde_json::json!(1024 * 1024);
            s["kdf"]["t"] = serde_json::json!(8);
        }
    });
    let outs = open_with_passphrase(&fx, &b, 0);
    assert_refused_fast(
        &fx,
        &outs,
        &["keyslot KDF parameters exceed limits", "slot #2", "budget"],
    );
}

#[test]
fn more_than_four_passphrase_slots_are_refused() {
    let fx = Fx::new(SMALL_TABLE);
    let (_, out) = export_with_passphrases(&fx, "five", 5);
    assert_code(&out, 2, &["at most 4 passphrase slots"]);
    // A manifest edited to five slots (copies with other salts) is refused naming slot #5.
    let (b, out) = export_with_passphrases(&fx, "p", 4);
    assert_code(&out, 0, &[]);
    edit_slots(&b, |slots| {
        let mut extra = slots[0].clone();
        extra["kdf"]["salt"] = serde_json::json!("ab".repeat(16));
        extra["key_id"] = serde_json::json!("p1_0123456789abcdef");
        slots.push(extra);
    });
    let outs = open_with_passphrase(&fx, &b, 0);
    assert_refused_fast(&fx, &outs, &["slot #5", "more than 4 passphrase slots"]);
}

#[test]
fn ferrys_own_four_default_passphrase_slots_open() {
    let fx = Fx::new(SMALL_TABLE);
    let (b, out) = export_with_passphrases(&fx, "p", 4);
    assert_code(&out, 0, &[]);
    // The last slot: every earlier one is tried first (4 × 64 MiB × 3 passes).
    let [verify, import] = open_with_passphrase(&fx, &b, 3);
    assert_code(&verify, 0, &[]);
    assert_code(&import, 0, &[]);
}

// ---------------------------------------------------------------------------------------
// A crafted interval column (issue #13 point 6)

#[test]
fn a_crafted_interval_column_is_refused_naming_the_part_without_a_panic() {
    let fx = Fx::new(SMALL_TABLE);
    let b = fx.export("b");
    let (rel_path, plain) = only_part(&fx, &b);
    let schema = schema_of(plain);
    // Column v becomes a struct of one Int32 field, marked as a stored interval.
    let mut v = schema.field(1).clone();
    let mut meta = v.metadata().clone();
    meta.insert("ferry.logical".to_string(), "interval".to_string());
    let fields = Fields::from(vec![Field::new("months", DataType::Int32, true)]);
    v = Field::new(v.name(), DataType::Struct(fields.clone()), true).with_metadata(meta);
    let crafted = Arc::new(Schema::new_with_metadata(
        vec![schema.field(0).clone(), v],
        schema.metadata().clone(),
    ));
    let ids: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![1, 2]));
    let months: ArrayRef = Arc::new(Int32Array::from(vec![1, 2]));
    let iv: ArrayRef = Arc::new(StructArray::new(fields, vec![months], None));
    let part = parquet_of(&crafted, vec![ids, iv], true);
    replace_part(&fx, &b, &rel_path, &part);
    let verify = run(&["verify", s(&b), "--key-file", s(&fx.key)], &[], None);
    assert_code(&verify, 65, &[&rel_path, "malformed interval"]);
    let target = fx.path("t.db");
    let import = run(
        &[
            "import",
            s(&b),
            &format!("sqlite://{}", s(&target)),
            "--key-file",
            s(&fx.key),
        ],
        &[],
        None,
    );
    assert_code(&import, 65, &[&rel_path, "malformed interval"]);
    assert_untouched(&target);
}

// ---------------------------------------------------------------------------------------
// Bundles of ferry 0.1: row groups closed by stored size only

#[test]
fn a_large_row_group_of_ferry_0_1_is_refused_by_default_and_read_in_bounds_when_trusted() {
    // 200 000 rows of 700 bytes: some 140 MB uncompressed in one row group, as 0.1 wrote
    // compressible tables (its only bound was 64 MiB stored).
    let fx = Fx::new(
        "CREATE TABLE t (id INTEGER, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
         INSERT INTO t SELECT i, 'x' FROM n;",
    );
    let b = fx.export("b");
    let (rel_path, plain) = only_part(&fx, &b);
    let schema = schema_of(plain);
    let ids: ArrayRef = Arc::new(arrow::array::Int64Array::from_iter_values(1..=200_000));
    let v: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..200_000).map(|i| format!("{i:08}{}", "a".repeat(692))),
    ));
    let part = parquet_of(&schema, vec![ids, v], false);
    replace_part(&fx, &b, &rel_path, &part);
    let args = ["verify", s(&b), "--key-file", s(&fx.key)];
    let refused = run(&args, &[], Some(ULIMIT_KIB));
    assert_code(
        &refused,
        65,
        &[&rel_path, "row group 0 declares", "FERRY_MAX_ROW_GROUP_MIB"],
    );
    let trusted = run(
        &args,
        &[("FERRY_MAX_ROW_GROUP_MIB", "1024")],
        Some(ULIMIT_KIB),
    );
    assert_code(&trusted, 0, &[]);
}
