//! RELIABILITY.md sections A (data file integrity), B (bundle structure and manifest) and
//! C (keys), one test per fault: each damages a freshly exported bundle the way the
//! catalogue says, runs the real binary, and checks the exit code, that the message names
//! the file or key, that nothing panicked, and that the target holds nothing afterwards.
//!
//! "Courier" faults damage bytes only, so the size or SHA-256 check catches them. The
//! "hashes bypassed" variants play an insider who holds the key: they rewrite the manifest's
//! sizes and hashes and recompute `manifest.mac`, so the damage reaches the crypto layer
//! (commitment, chunk authentication, final-chunk rule) or the Parquet decoder.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use ferry::bundle::{FileEntry, Manifest};
use ferry::crypto::cobblestone::{
    ENCRYPTED_CHUNK_SIZE, HEADER_LEN, SALT_LEN, decrypt_all, encrypt_to_vec,
};
use ferry::crypto::envelope::{DataKey, KeySlot, file_context};
use ferry::crypto::keys::{KeyFileKey, Keys, Passphrase};
use sha2::{Digest, Sha256};

use crate::common::{Fixture, dump, ferry, fixture, ledger_rows, manifest, parts, user_tables};

/// No command in these tests may take longer: a hang (FIFO, hostile KDF) is a failure.
const TIMEOUT: Duration = Duration::from_secs(60);
/// What "fast" means for a refusal that must happen before any heavy work.
const FAST: Duration = Duration::from_secs(10);
const PASSPHRASE: &str = "correct horse battery staple";

// ---------------------------------------------------------------------------------------
// Running ferry

/// The outcome of one run of the binary.
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

fn run(mut cmd: Command) -> Out {
    cmd.timeout(TIMEOUT);
    let started = Instant::now();
    let o = cmd.output().expect("ferry runs");
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `ferry import BUNDLE sqlite://TARGET ARGS…`
fn import_with(bundle: &Path, target: &Path, args: &[&str]) -> Out {
    let mut c = ferry();
    c.args(["import", s(bundle), &format!("sqlite://{}", s(target))])
        .args(args);
    run(c)
}

/// `ferry verify BUNDLE ARGS…`
fn verify_with(bundle: &Path, args: &[&str]) -> Out {
    let mut c = ferry();
    c.args(["verify", s(bundle)]).args(args);
    run(c)
}

fn key_args(fx: &Fixture) -> [&str; 2] {
    ["--key-file", s(&fx.key)]
}

/// Asserts a refusal: the exit code, no panic, and every needle in stderr.
#[track_caller]
fn assert_refused(out: &Out, code: i32, needles: &[&str]) {
    // Captured by the test harness: shown on failure, or with --nocapture.
    eprintln!("{out}");
    assert_eq!(out.code, Some(code), "expected exit {code}\n{out}");
    assert!(!out.stderr.contains("panicked"), "ferry panicked\n{out}");
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "stderr does not mention {n:?}\n{out}"
        );
    }
}

#[track_caller]
fn assert_ok(out: &Out) {
    assert_eq!(out.code, Some(0), "expected success\n{out}");
    assert!(!out.stderr.contains("panicked"), "ferry panicked\n{out}");
}

/// Nothing written to the target: no ledger rows and no tables (an empty file is fine).
#[track_caller]
fn assert_untouched(target: &Path, out: &Out) {
    assert_eq!(
        ledger_rows(target),
        0,
        "ledger rows in {}\n{out}",
        target.display()
    );
    assert_eq!(
        user_tables(target),
        Vec::<String>::new(),
        "tables left in {}\n{out}",
        target.display()
    );
}

/// Import with the fixture's key must fail with `code` naming `needles` and write nothing;
/// returns the run for further checks.
#[track_caller]
fn expect_import_refused(fx: &Fixture, bundle: &Path, code: i32, needles: &[&str]) -> Out {
    let target = fx.path("target.db");
    let out = import_with(bundle, &target, &key_args(fx));
    assert_refused(&out, code, needles);
    assert_untouched(&target, &out);
    out
}

/// Verify with the fixture's key must fail the same way.
#[track_caller]
fn expect_verify_refused(fx: &Fixture, bundle: &Path, code: i32, needles: &[&str]) -> Out {
    let out = verify_with(bundle, &key_args(fx));
    assert_refused(&out, code, needles);
    out
}

/// Both import and verify (with the key) refuse with `code`, naming `needles`.
#[track_caller]
fn expect_refused(fx: &Fixture, bundle: &Path, code: i32, needles: &[&str]) -> Out {
    expect_verify_refused(fx, bundle, code, needles);
    expect_import_refused(fx, bundle, code, needles)
}

/// At least one of `alternatives` appears in stderr.
#[track_caller]
fn assert_mentions_any(out: &Out, alternatives: &[&str]) {
    let lower = out.stderr.to_lowercase();
    assert!(
        alternatives
            .iter()
            .any(|a| lower.contains(&a.to_lowercase())),
        "stderr mentions none of {alternatives:?}\n{out}"
    );
}

// ---------------------------------------------------------------------------------------
// Bundle surgery

/// A part's bundle-relative path (`data/<hex>.fe`).
fn rel(bundle: &Path, file: &Path) -> String {
    file.strip_prefix(bundle)
        .expect("inside the bundle")
        .to_str()
        .expect("utf-8")
        .replace('\\', "/")
}

/// The largest part (the `items` table: several chunks).
fn largest_part(bundle: &Path) -> PathBuf {
    let p = parts(bundle)
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a part");
    assert!(
        chunks(&p).len() >= 4,
        "the largest part should span at least 4 chunks"
    );
    p
}

fn len_of(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap()
}

/// Byte ranges (start, len) of a Cobblestone file's chunks, after the header.
fn chunks(file: &Path) -> Vec<(usize, usize)> {
    let size = usize_of(len_of(file));
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    while at < size {
        let len = (size - at).min(ENCRYPTED_CHUNK_SIZE);
        out.push((at, len));
        at += len;
    }
    out
}

fn flip_bit(file: &Path, offset: usize) {
    let mut b = std::fs::read(file).unwrap();
    b[offset] ^= 0x04;
    std::fs::write(file, b).unwrap();
}

fn truncate(file: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn append(file: &Path, extra: &[u8]) {
    let mut b = std::fs::read(file).unwrap();
    b.extend_from_slice(extra);
    std::fs::write(file, b).unwrap();
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn read_manifest(bundle: &Path) -> Manifest {
    serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap())
        .expect("manifest parses")
}

/// An attacker without the key: makes the manifest's sizes and hashes match the files on
/// disk again (the MAC is left as it was).
fn rehash(bundle: &Path) -> Manifest {
    let mut m = read_manifest(bundle);
    let fix = |f: &mut FileEntry| {
        let b = std::fs::read(bundle.join(&f.path)).unwrap();
        f.size = u64::try_from(b.len()).unwrap();
        f.sha256 = sha256_hex(&b);
    };
    fix(&mut m.catalog);
    m.parts.iter_mut().for_each(fix);
    std::fs::write(bundle.join("manifest.json"), m.to_json()).unwrap();
    m
}

/// The bundle data key, opened the way an insider holding the key file would.
fn data_key(m: &Manifest, key_file: &Path) -> DataKey {
    let (k, _) = KeyFileKey::load(key_file).unwrap();
    let keys = Keys {
        key_files: vec![k],
        passphrases: vec![],
        ..Default::default()
    };
    DataKey::unwrap(&m.bundle_id, &m.encryption.key_slots, &keys).expect("the key opens the bundle")
}

fn write_mac(bundle: &Path, m: &Manifest, key_file: &Path) {
    let bytes = std::fs::read(bundle.join("manifest.json")).unwrap();
    let mac = data_key(m, key_file).manifest_mac(&m.bundle_id, &bytes);
    std::fs::write(bundle.join("manifest.mac"), format!("{mac}\n")).unwrap();
}

/// An insider with the key: rewrites sizes and hashes AND recomputes `manifest.mac`, so only
/// the crypto layer (and the Parquet decoder) stand between the damage and the target.
fn reseal(bundle: &Path, key_file: &Path) {
    let m = rehash(bundle);
    write_mac(bundle, &m, key_file);
}

/// Edits manifest.json as JSON (no MAC update).
fn edit_manifest(bundle: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v = manifest(bundle);
    f(&mut v);
    std::fs::write(
        bundle.join("manifest.json"),
        serde_json::to_vec_pretty(&v).unwrap(),
    )
    .unwrap();
}

/// Edits manifest.json as text (no MAC update); the replacement must apply.
fn edit_manifest_text(bundle: &Path, from: &str, to: &str) {
    let p = bundle.join("manifest.json");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{from:?} not in the manifest");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

/// Manifest position of a part path.
fn position(bundle: &Path, rel_path: &str) -> usize {
    read_manifest(bundle)
        .parts
        .iter()
        .position(|p| p.path == rel_path)
        .expect("listed")
}

fn mkfifo(p: &Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .expect("mkfifo runs");
    assert!(st.success());
}

/// A passphrase-encrypted bundle of the fixture's source (passphrase from `$FERRY_TEST_PW`).
fn export_with_passphrase(fx: &Fixture, name: &str, passphrase: &str) -> PathBuf {
    let b = fx.path(name);
    let mut c = ferry();
    c.env("FERRY_TEST_PW", passphrase).args([
        "export",
        &fx.src_url(),
        s(&b),
        "--passphrase-env",
        "FERRY_TEST_PW",
    ]);
    assert_ok(&run(c));
    b
}

fn import_with_passphrase(bundle: &Path, target: &Path, passphrase: &str) -> Out {
    let mut c = ferry();
    c.env("FERRY_TEST_PW", passphrase).args([
        "import",
        s(bundle),
        &format!("sqlite://{}", s(target)),
        "--passphrase-env",
        "FERRY_TEST_PW",
    ]);
    run(c)
}

fn verify_with_passphrase(bundle: &Path, passphrase: &str) -> Out {
    let mut c = ferry();
    c.env("FERRY_TEST_PW", passphrase).args([
        "verify",
        s(bundle),
        "--passphrase-env",
        "FERRY_TEST_PW",
    ]);
    run(c)
}

/// A plain (`--no-encrypt`) bundle of the fixture's source.
fn export_plain(fx: &Fixture, name: &str) -> PathBuf {
    let b = fx.path(name);
    let mut c = ferry();
    c.args(["export", &fx.src_url(), s(&b), "--no-encrypt"]);
    assert_ok(&run(c));
    b
}

/// The plain Parquet bytes of the `items` table (the largest part of a plain export).
fn items_parquet(fx: &Fixture) -> Vec<u8> {
    let plain = export_plain(fx, "plain-source");
    let p = parts(&plain).into_iter().max_by_key(|p| len_of(p)).unwrap();
    let b = std::fs::read(p).unwrap();
    assert!(b.starts_with(b"PAR1") && b.ends_with(b"PAR1"));
    b
}

/// Replaces a part with a valid Cobblestone encryption of `plaintext` under the bundle's
/// own file key and context, then reseals the manifest: only the Parquet layer can object.
fn replace_with_encrypted(fx: &Fixture, bundle: &Path, part: &Path, plaintext: &[u8]) {
    let m = read_manifest(bundle);
    let rel_path = rel(bundle, part);
    let key = data_key(&m, &fx.key).file_key(&m.bundle_id);
    let ct = encrypt_to_vec(
        &key,
        &file_context(&m.bundle_id, "part", &rel_path),
        plaintext,
    )
    .unwrap();
    std::fs::write(part, ct).unwrap();
    reseal(bundle, &fx.key);
}

fn key_id_of(key_file: &Path) -> String {
    KeyFileKey::load(key_file).unwrap().0.id().to_string()
}

/// Every path under `dir`, for "nothing created outside the bundle" checks.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

// =======================================================================================
// A. Data file integrity

/// Courier damage to the largest part: refused on size or SHA-256, naming the part.
fn courier_damage(damage: impl FnOnce(&Path), needles: &[&str]) {
    let fx = fixture();
    let b = fx.export("b");
    let part = largest_part(&b);
    let name = rel(&b, &part);
    damage(&part);
    let mut all = vec![name.as_str()];
    all.extend_from_slice(needles);
    expect_refused(&fx, &b, 65, &all);
}

/// The same damage with sizes, hashes and MAC rewritten by an insider: the crypto layer
/// must refuse, naming the part; `any_of` are acceptable wordings of the crypto failure.
fn insider_damage(damage: impl FnOnce(&Path), any_of: &[&str]) -> Out {
    let fx = fixture();
    let b = fx.export("b");
    let part = largest_part(&b);
    let name = rel(&b, &part);
    damage(&part);
    reseal(&b, &fx.key);
    let v = expect_verify_refused(&fx, &b, 65, &[&name]);
    assert_mentions_any(&v, any_of);
    let out = expect_import_refused(&fx, &b, 65, &[&name]);
    assert_mentions_any(&out, any_of);
    out
}

// A1: truncation at a chunk boundary.

fn cut_at_chunk_boundary(p: &Path) {
    let c = chunks(p);
    truncate(p, u64::try_from(c[2].0).unwrap()); // header + 2 full chunks
}

#[test]
fn a1_part_truncated_at_chunk_boundary_is_refused_on_size() {
    courier_damage(cut_at_chunk_boundary, &["size", "truncated"]);
}

#[test]
fn a1_part_truncated_with_size_lie_in_manifest_fails_the_mac() {
    let fx = fixture();
    let b = fx.export("b");
    cut_at_chunk_boundary(&largest_part(&b));
    rehash(&b);
    let out = expect_refused(&fx, &b, 65, &["manifest.json", "MAC"]);
    assert!(
        !out.stderr.contains("no key slot"),
        "a MAC failure is not a wrong key\n{out}"
    );
}

#[test]
fn a1_part_truncated_at_chunk_boundary_with_hashes_bypassed_misses_final_chunk() {
    insider_damage(cut_at_chunk_boundary, &["final chunk"]);
}

// A2: truncation mid-chunk, to 0 bytes, to the header only.

fn cut_mid_chunk(p: &Path) {
    let c = chunks(p);
    truncate(p, u64::try_from(c[1].0 + 5000).unwrap());
}

#[test]
fn a2_part_truncated_mid_chunk_is_refused_on_size() {
    courier_damage(cut_mid_chunk, &["size", "truncated"]);
}

#[test]
fn a2_part_truncated_mid_chunk_with_hashes_bypassed_fails_authentication() {
    insider_damage(
        cut_mid_chunk,
        &["truncated", "failed authentication", "final chunk"],
    );
}

#[test]
fn a2_part_truncated_to_zero_bytes_is_refused_on_size() {
    courier_damage(|p| truncate(p, 0), &["size 0", "truncated"]);
}

#[test]
fn a2_part_truncated_to_zero_bytes_with_hashes_bypassed_is_too_short() {
    insider_damage(|p| truncate(p, 0), &["truncated", "too short", "header"]);
}

#[test]
fn a2_part_truncated_to_header_only_is_refused_on_size() {
    courier_damage(
        |p| truncate(p, u64::try_from(HEADER_LEN).unwrap()),
        &["size 56", "truncated"],
    );
}

#[test]
fn a2_part_truncated_to_header_only_with_hashes_bypassed_misses_final_chunk() {
    insider_damage(
        |p| truncate(p, u64::try_from(HEADER_LEN).unwrap()),
        &["final chunk", "truncated"],
    );
}

// A3: appended garbage.

#[test]
fn a3_part_with_one_byte_appended_is_refused_on_size() {
    courier_damage(|p| append(p, b"\0"), &["size", "appended"]);
}

#[test]
fn a3_part_with_1kib_garbage_appended_is_refused_on_size() {
    courier_damage(|p| append(p, &[0xa5; 1024]), &["size", "appended"]);
}

#[test]
fn a3_part_with_garbage_appended_and_hashes_bypassed_fails_authentication() {
    insider_damage(
        |p| append(p, &[0xa5; 1024]),
        &["failed authentication", "after its final chunk", "trailing"],
    );
}

#[test]
fn a3_part_with_a_valid_chunk_appended_and_hashes_bypassed_fails_authentication() {
    insider_damage(
        |p| {
            let b = std::fs::read(p).unwrap();
            let (start, len) = chunks(p)[0];
            append(p, &b[start..start + len]);
        },
        &[
            "failed authentication",
            "after its final chunk",
            "trailing",
            "final chunk",
        ],
    );
}

// A4: one bit flipped in a chunk body.

fn flip_in_chunk(p: &Path, which: fn(usize) -> usize, at: usize) {
    let c = chunks(p);
    let (start, _) = c[which(c.len())];
    flip_bit(p, start + at);
}

#[test]
fn a4_bit_flip_in_first_chunk_body_is_refused_on_sha256() {
    courier_damage(|p| flip_in_chunk(p, |_| 0, 100), &["SHA-256"]);
}

#[test]
fn a4_bit_flip_in_middle_chunk_body_is_refused_on_sha256() {
    // The largest part has at least 4 chunks: chunk 2 is neither the first nor the last.
    courier_damage(|p| flip_in_chunk(p, |_| 2, 100), &["SHA-256"]);
}

#[test]
fn a4_bit_flip_in_last_chunk_body_is_refused_on_sha256() {
    courier_damage(|p| flip_in_chunk(p, |n| n - 1, 10), &["SHA-256"]);
}

#[test]
fn a4_bit_flip_in_first_chunk_with_hashes_bypassed_names_chunk_0() {
    insider_damage(|p| flip_in_chunk(p, |_| 0, 100), &["chunk 0 at byte"]);
}

#[test]
fn a4_bit_flip_in_middle_chunk_with_hashes_bypassed_names_chunk_2() {
    insider_damage(|p| flip_in_chunk(p, |_| 2, 100), &["chunk 2 at byte"]);
}

#[test]
fn a4_bit_flip_in_last_chunk_with_hashes_bypassed_fails_authentication() {
    insider_damage(
        |p| flip_in_chunk(p, |n| n - 1, 10),
        &["failed authentication"],
    );
}

// A5: one bit flipped in a tag, the salt, the commitment.

fn flip_in_first_tag(p: &Path) {
    let (start, len) = chunks(p)[0];
    flip_bit(p, start + len - 5);
}

#[test]
fn a5_bit_flip_in_a_tag_is_refused_on_sha256() {
    courier_damage(flip_in_first_tag, &["SHA-256"]);
}

#[test]
fn a5_bit_flip_in_the_salt_is_refused_on_sha256() {
    courier_damage(|p| flip_bit(p, 3), &["SHA-256"]);
}

#[test]
fn a5_bit_flip_in_the_commitment_is_refused_on_sha256() {
    courier_damage(|p| flip_bit(p, SALT_LEN + 5), &["SHA-256"]);
}

#[test]
fn a5_bit_flip_in_a_tag_with_hashes_bypassed_fails_chunk_authentication() {
    insider_damage(flip_in_first_tag, &["chunk 0 at byte"]);
}

#[test]
fn a5_bit_flip_in_the_salt_with_hashes_bypassed_fails_the_commitment() {
    insider_damage(|p| flip_bit(p, 3), &["commitment"]);
}

#[test]
fn a5_bit_flip_in_the_commitment_with_hashes_bypassed_fails_the_commitment() {
    insider_damage(|p| flip_bit(p, SALT_LEN + 5), &["commitment"]);
}

// A6: chunks swapped or duplicated.

fn swap_chunks_0_and_1(p: &Path) {
    let mut bytes = std::fs::read(p).unwrap();
    let c = chunks(p);
    let ((first, len), (second, len2)) = (c[0], c[1]);
    assert_eq!(len, len2, "two full chunks");
    let saved = bytes[first..first + len].to_vec();
    bytes.copy_within(second..second + len, first);
    bytes[second..second + len].copy_from_slice(&saved);
    std::fs::write(p, bytes).unwrap();
}

fn duplicate_chunk_0_over_1(p: &Path) {
    let mut bytes = std::fs::read(p).unwrap();
    let c = chunks(p);
    let (first, len) = c[0];
    bytes.copy_within(first..first + len, c[1].0);
    std::fs::write(p, bytes).unwrap();
}

#[test]
fn a6_two_chunks_swapped_are_refused_on_sha256() {
    courier_damage(swap_chunks_0_and_1, &["SHA-256"]);
}

#[test]
fn a6_two_chunks_swapped_with_hashes_bypassed_fail_at_the_first_moved_chunk() {
    insider_damage(swap_chunks_0_and_1, &["chunk 0 at byte"]);
}

#[test]
fn a6_duplicated_chunk_with_hashes_bypassed_fails_authentication() {
    insider_damage(duplicate_chunk_0_over_1, &["chunk 1 at byte"]);
}

// A7: the final short chunk dropped, so the file ends on a full chunk.

fn drop_final_chunk(p: &Path) {
    let c = chunks(p);
    let (last, len) = *c.last().unwrap();
    assert!(len < ENCRYPTED_CHUNK_SIZE, "the final chunk is short");
    truncate(p, u64::try_from(last).unwrap());
}

#[test]
fn a7_final_short_chunk_dropped_is_refused_on_size() {
    courier_damage(drop_final_chunk, &["size", "truncated"]);
}

#[test]
fn a7_final_short_chunk_dropped_with_hashes_bypassed_misses_final_chunk() {
    insider_damage(drop_final_chunk, &["final chunk"]);
}

// A8: two equal-size parts swapped between manifest positions.

/// A bundle with two parts of equal size (`notes` and an identical `notez`); returns the
/// bundle and those two parts.
fn bundle_with_twin_parts(fx: &Fixture) -> (PathBuf, PathBuf, PathBuf) {
    let c = rusqlite::Connection::open(&fx.src).unwrap();
    c.execute_batch(
        "CREATE TABLE notez (id INTEGER, body TEXT); INSERT INTO notez SELECT * FROM notes;",
    )
    .unwrap();
    drop(c);
    let b = fx.export("b");
    let mut by_size: Vec<PathBuf> = parts(&b);
    by_size.sort_by_key(|p| len_of(p));
    let twins: Vec<&PathBuf> = by_size
        .windows(2)
        .find(|w| len_of(&w[0]) == len_of(&w[1]))
        .expect("two equal-size parts")
        .iter()
        .collect();
    let (x, y) = (twins[0].clone(), twins[1].clone());
    (b, x, y)
}

fn swap_files(x: &Path, y: &Path) {
    let tmp = x.with_extension("swap");
    std::fs::rename(x, &tmp).unwrap();
    std::fs::rename(y, x).unwrap();
    std::fs::rename(&tmp, y).unwrap();
}

#[test]
fn a8_equal_size_parts_swapped_are_refused_on_sha256_naming_both() {
    let fx = fixture();
    let (b, x, y) = bundle_with_twin_parts(&fx);
    swap_files(&x, &y);
    expect_refused(&fx, &b, 65, &[&rel(&b, &x), &rel(&b, &y), "SHA-256"]);
}

#[test]
fn a8_equal_size_parts_swapped_with_manifest_rehashed_fail_the_mac() {
    let fx = fixture();
    let (b, x, y) = bundle_with_twin_parts(&fx);
    swap_files(&x, &y);
    rehash(&b);
    expect_refused(&fx, &b, 65, &["manifest.json", "MAC"]);
}

#[test]
fn a8_equal_size_parts_swapped_by_an_insider_fail_the_context_check() {
    let fx = fixture();
    let (b, x, y) = bundle_with_twin_parts(&fx);
    swap_files(&x, &y);
    reseal(&b, &fx.key);
    // The first of the two in manifest order is the first one checked.
    let (rx, ry) = (rel(&b, &x), rel(&b, &y));
    let first = if position(&b, &rx) < position(&b, &ry) {
        rx
    } else {
        ry
    };
    let v = expect_verify_refused(&fx, &b, 65, &[&first, "commitment"]);
    assert!(
        !v.stderr.contains("MAC"),
        "the MAC was recomputed; the context must catch it\n{v}"
    );
    expect_import_refused(&fx, &b, 65, &[&first, "commitment"]);
}

// A9: a part replaced by the same table's part of another bundle (same source, same key).

fn transplant_from_other_bundle(fx: &Fixture) -> (PathBuf, String) {
    let b = fx.export("b");
    let other = fx.export("other");
    let mine = largest_part(&b);
    let theirs = largest_part(&other);
    std::fs::copy(&theirs, &mine).unwrap();
    let name = rel(&b, &mine);
    (b, name)
}

#[test]
fn a9_part_from_another_bundle_is_refused_on_sha256() {
    let fx = fixture();
    let (b, name) = transplant_from_other_bundle(&fx);
    expect_refused(&fx, &b, 65, &[&name]);
}

#[test]
fn a9_part_from_another_bundle_with_manifest_rehashed_fails_the_mac() {
    let fx = fixture();
    let (b, _) = transplant_from_other_bundle(&fx);
    rehash(&b);
    expect_refused(&fx, &b, 65, &["manifest.json", "MAC"]);
}

#[test]
fn a9_part_from_another_bundle_placed_by_an_insider_fails_the_context_check() {
    let fx = fixture();
    let (b, name) = transplant_from_other_bundle(&fx);
    reseal(&b, &fx.key);
    expect_refused(&fx, &b, 65, &[&name, "commitment"]);
}

// A10: a part changed after the verify pass, before it is loaded (TOCTOU). The binary runs
// both phases in one process, so this drives the library: check, damage, then read the part
// the way the loader does (decode every batch, then authenticate the chunks not touched).

#[test]
fn a10_part_changed_after_verify_fails_at_load_time() {
    let fx = fixture();
    let b = fx.export("b");
    let part = largest_part(&b);
    let name = rel(&b, &part);
    let (k, _) = KeyFileKey::load(&fx.key).unwrap();
    let keys = Keys {
        key_files: vec![k],
        passphrases: vec![],
        ..Default::default()
    };
    let bundle = ferry::bundle::OpenBundle::open(s(&b), false).unwrap();
    let checked = bundle
        .check(&keys, &|_| {})
        .expect("the intact bundle checks out");
    let (start, _) = chunks(&part)[1];
    flip_bit(&part, start + 100);
    let url = s(&b);
    let outcome = checked.part_reader(&name).and_then(|r| {
        let (_, batches) = r.batches(url, "table items part 0", 1024)?;
        for batch in batches {
            batch?;
        }
        r.authenticate_rest(url)
    });
    let e = outcome.expect_err("the changed chunk must fail authentication before any commit");
    assert_eq!(e.exit_code(), 65, "{e}");
    let msg = e.to_string();
    // The run holding chunk 1 no longer has the digest the verify pass took.
    assert!(
        msg.contains(&name)
            && msg.contains("chunks 0 to")
            && msg.contains("changed since the verification pass read it"),
        "{msg}"
    );
}

// A11: a part that is plain Parquet.

#[test]
fn a11_plain_parquet_in_place_of_a_part_is_refused() {
    let fx = fixture();
    let b = fx.export("b");
    let part = largest_part(&b);
    std::fs::write(&part, items_parquet(&fx)).unwrap();
    expect_refused(&fx, &b, 65, &[&rel(&b, &part)]);
}

#[test]
fn a11_plain_parquet_placed_by_an_insider_is_named_as_unencrypted_parquet() {
    let fx = fixture();
    let b = fx.export("b");
    let part = largest_part(&b);
    std::fs::write(&part, items_parquet(&fx)).unwrap();
    reseal(&b, &fx.key);
    expect_refused(&fx, &b, 65, &[&rel(&b, &part), "PAR1"]);
}

// A12: valid encryption of malformed Parquet.

#[test]
fn a12_encrypted_garbage_is_refused_without_panic() {
    let fx = fixture();
    let b = fx.export("b");
    let part = largest_part(&b);
    let junk: Vec<u8> = (0..40_000u32)
        .map(|i| u8::try_from(i.wrapping_mul(2_654_435_761) >> 24).unwrap())
        .collect();
    replace_with_encrypted(&fx, &b, &part, &junk);
    expect_refused(&fx, &b, 65, &[&rel(&b, &part), "Parquet"]);
}

#[test]
fn a12_encrypted_truncated_parquet_is_refused_without_panic() {
    let fx = fixture();
    let b = fx.export("b");
    let part = largest_part(&b);
    let pq = items_parquet(&fx);
    replace_with_encrypted(&fx, &b, &part, &pq[..pq.len() / 2]);
    expect_refused(&fx, &b, 65, &[&rel(&b, &part), "Parquet"]);
}

#[test]
fn a12_encrypted_parquet_with_absurd_footer_length_is_refused_without_panic() {
    let fx = fixture();
    let b = fx.export("b");
    let part = largest_part(&b);
    let mut pq = items_parquet(&fx);
    let n = pq.len();
    pq[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    replace_with_encrypted(&fx, &b, &part, &pq);
    expect_refused(&fx, &b, 65, &[&rel(&b, &part), "footer"]);
}

/// A bundle whose largest part (`items`) is a valid encryption of Parquet with an intact
/// footer (row counts match the catalog) but garbled pages: only decoding finds it.
fn bundle_with_garbled_pages(fx: &Fixture) -> (PathBuf, String) {
    let b = fx.export("b");
    let part = largest_part(&b);
    let mut pq = items_parquet(fx);
    let footer = usize_of(u64::from(u32::from_le_bytes(
        pq[pq.len() - 8..pq.len() - 4].try_into().unwrap(),
    )));
    let body_end = pq.len() - 8 - footer;
    for i in (8..body_end).step_by(7) {
        pq[i] ^= 0x5a;
    }
    replace_with_encrypted(fx, &b, &part, &pq);
    let name = rel(&b, &part);
    (b, name)
}

#[test]
fn a12_encrypted_parquet_with_garbled_pages_commits_no_rows() {
    let fx = fixture();
    let (b, name) = bundle_with_garbled_pages(&fx);
    expect_verify_refused(&fx, &b, 65, &[&name, "Parquet"]);
    let target = fx.path("target.db");
    let out = import_with(&b, &target, &key_args(&fx));
    assert_refused(
        &out,
        65,
        &[
            &name,
            "Parquet",
            "nothing from the failed part was committed",
        ],
    );
    assert_eq!(ledger_rows(&target), 0, "{out}");
    let c = rusqlite::Connection::open(&target).unwrap();
    for t in user_tables(&target) {
        let n: i64 = c
            .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "rows committed into {t}\n{out}");
    }
}

#[test]
fn a12_encrypted_parquet_with_garbled_pages_leaves_no_tables() {
    let fx = fixture();
    let (b, name) = bundle_with_garbled_pages(&fx);
    expect_import_refused(&fx, &b, 65, &[&name, "Parquet"]);
}

// =======================================================================================
// B. Bundle structure and manifest

#[test]
fn b14_missing_part_is_refused_naming_it() {
    let fx = fixture();
    let b = fx.export("b");
    let part = largest_part(&b);
    std::fs::remove_file(&part).unwrap();
    expect_refused(&fx, &b, 65, &[&rel(&b, &part), "missing"]);
}

#[test]
fn b14_two_missing_parts_are_all_listed() {
    let fx = fixture();
    let b = fx.export("b");
    let all = parts(&b);
    assert!(all.len() >= 2);
    let gone: Vec<String> = all[..2].iter().map(|p| rel(&b, p)).collect();
    for p in &all[..2] {
        std::fs::remove_file(p).unwrap();
    }
    let needles: Vec<&str> = gone.iter().map(String::as_str).collect();
    expect_refused(&fx, &b, 65, &needles);
    // A courier without the key gets the same list.
    assert_refused(&verify_with(&b, &[]), 65, &needles);
}

/// Adds OS junk beside the parts: `.DS_Store` (root and data/), `System Volume Information/`.
fn add_usb_junk(b: &Path) {
    std::fs::write(b.join(".DS_Store"), b"\0\0\0\x01Bud1").unwrap();
    std::fs::write(b.join("data/.DS_Store"), b"\0\0\0\x01Bud1").unwrap();
    std::fs::create_dir(b.join("System Volume Information")).unwrap();
    std::fs::write(
        b.join("System Volume Information/IndexerVolumeGuid"),
        b"{guid}",
    )
    .unwrap();
}

#[test]
fn b15_os_junk_is_a_warning_and_the_import_succeeds() {
    let fx = fixture();
    let b = fx.export("b");
    add_usb_junk(&b);
    let target = fx.path("target.db");
    let out = import_with(&b, &target, &key_args(&fx));
    assert_ok(&out);
    let all = format!("{}{}", out.stdout, out.stderr);
    for j in ["data/.DS_Store", ".DS_Store", "System Volume Information"] {
        assert!(all.contains(j), "the warning does not list {j}\n{out}");
    }
    assert!(all.contains("warning"), "no warning\n{out}");
    assert_eq!(dump(&target), dump(&fx.src));
}

#[test]
fn b15_os_junk_is_listed_in_verify_json_warnings() {
    let fx = fixture();
    let b = fx.export("b");
    add_usb_junk(&b);
    let out = verify_with(&b, &["--key-file", s(&fx.key), "--json"]);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("--json prints JSON");
    let warnings = report["warnings"].to_string();
    for j in ["data/.DS_Store", ".DS_Store", "System Volume Information"] {
        assert!(warnings.contains(j), "warnings do not list {j}: {warnings}");
    }
}

#[test]
fn b15_os_junk_is_an_error_under_strict() {
    let fx = fixture();
    let b = fx.export("b");
    add_usb_junk(&b);
    let out = verify_with(&b, &["--key-file", s(&fx.key), "--strict"]);
    assert_refused(
        &out,
        65,
        &["data/.DS_Store", "System Volume Information", "--strict"],
    );
    let target = fx.path("target.db");
    let out = import_with(&b, &target, &["--key-file", s(&fx.key), "--strict"]);
    assert_refused(&out, 65, &["data/.DS_Store", "System Volume Information"]);
    assert_untouched(&target, &out);
}

#[test]
fn b15_unlisted_fifo_is_never_opened() {
    // Were it opened, reading it would block until the timeout.
    let fx = fixture();
    let b = fx.export("b");
    mkfifo(&b.join("data/.DS_Store"));
    let out = verify_with(&b, &key_args(&fx));
    assert_ok(&out);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("data/.DS_Store"),
        "not listed\n{out}"
    );
    let target = fx.path("target.db");
    assert_ok(&import_with(&b, &target, &key_args(&fx)));
}

#[test]
fn b16_missing_manifest_is_an_incomplete_bundle() {
    let fx = fixture();
    let b = fx.export("b");
    std::fs::remove_file(b.join("manifest.json")).unwrap();
    expect_refused(&fx, &b, 65, &["manifest.json", "incomplete"]);
}

#[test]
fn b17_missing_manifest_mac_is_refused() {
    let fx = fixture();
    let b = fx.export("b");
    std::fs::remove_file(b.join("manifest.mac")).unwrap();
    expect_refused(&fx, &b, 65, &["manifest.mac", "missing"]);
    // Even without a key: an encrypted bundle without its MAC is incomplete.
    assert_refused(&verify_with(&b, &[]), 65, &["manifest.mac"]);
}

/// Changes the last digit of `sequence`: still valid JSON, still a valid manifest.
fn bump_sequence_digit(b: &Path) {
    let p = b.join("manifest.json");
    let mut bytes = std::fs::read(&p).unwrap();
    let key = b"\"sequence\": ";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    let end = at
        + bytes[at..]
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap()
        - 1;
    bytes[end] = b'0' + (bytes[end] - b'0' + 1) % 10;
    std::fs::write(&p, bytes).unwrap();
}

#[test]
fn b18_one_digit_changed_in_manifest_fails_the_mac_not_the_key() {
    let fx = fixture();
    let b = fx.export("b");
    bump_sequence_digit(&b);
    let out = expect_refused(&fx, &b, 65, &["manifest.json", "modified"]);
    assert!(
        !out.stderr.contains("no key slot"),
        "reported as a wrong key\n{out}"
    );
}

#[test]
fn b18_bit_flip_that_breaks_json_is_a_parse_error_with_position() {
    let fx = fixture();
    let b = fx.export("b");
    flip_bit(&b.join("manifest.json"), 0); // '{' -> '\x7f'
    let out = expect_refused(&fx, &b, 65, &["manifest.json", "not valid JSON", "line 1"]);
    assert!(
        out.stderr.contains("column"),
        "no column in the parse error\n{out}"
    );
}

#[test]
fn b20_future_major_format_version_is_named() {
    let fx = fixture();
    let b = fx.export("b");
    edit_manifest_text(
        &b,
        "\"format_version\": \"1.0\"",
        "\"format_version\": \"2.0\"",
    );
    expect_refused(&fx, &b, 65, &["manifest.json", "2.0"]);
    assert_refused(&verify_with(&b, &[]), 65, &["2.0"]);
}

#[test]
fn b21_unknown_top_level_field_is_refused() {
    let fx = fixture();
    let b = fx.export("b");
    edit_manifest(&b, |v| {
        v["surprise"] = serde_json::json!({"critical": true});
    });
    expect_refused(&fx, &b, 65, &["manifest.json", "surprise"]);
}

#[test]
fn b22_duplicate_json_key_is_refused() {
    let fx = fixture();
    let b = fx.export("b");
    let seq = manifest(&b)["sequence"].as_u64().unwrap();
    edit_manifest_text(
        &b,
        &format!("\"sequence\": {seq},"),
        &format!("\"sequence\": {seq}, \"sequence\": 1,"),
    );
    expect_refused(&fx, &b, 65, &["manifest.json", "duplicate", "sequence"]);
}

#[test]
fn b22_schema_violations_name_the_json_path() {
    let fx = fixture();
    let b = fx.export("b");
    for (bad, path) in [
        (serde_json::json!(-1), "parts[0].size"),
        (serde_json::json!("49615"), "parts[0].size"),
        (serde_json::json!(1.5), "parts[0].size"),
    ] {
        let orig = std::fs::read(b.join("manifest.json")).unwrap();
        edit_manifest(&b, |v| v["parts"][0]["size"] = bad.clone());
        expect_refused(&fx, &b, 65, &["manifest.json", path]);
        std::fs::write(b.join("manifest.json"), orig).unwrap();
    }
}

/// A hostile part path in a plain bundle's manifest is refused before any file system call.
/// `sentinel`, given the bundle directory, says where the hostile path leads (when that is
/// inside the test directory): a byte-identical copy of the real part is put there, so
/// following the path would make the import succeed. Nothing may be created anywhere in the
/// test directory, and the sentinel must be unchanged.
fn traversal_is_refused(
    evil: impl Fn(&Path) -> String,
    sentinel: impl Fn(&Path) -> Option<PathBuf>,
) {
    let fx = fixture();
    // Nested, so that `..` traversals stay inside the test's tempdir.
    let b = fx.path("a/b/plain");
    std::fs::create_dir_all(b.parent().unwrap()).unwrap();
    let mut c = ferry();
    c.args(["export", &fx.src_url(), s(&b), "--no-encrypt"]);
    assert_ok(&run(c));
    let part = parts(&b).into_iter().max_by_key(|p| len_of(p)).unwrap();
    let bytes = std::fs::read(&part).unwrap();
    let evil = evil(&b);
    let sentinel = sentinel(&b);
    if let Some(sent) = &sentinel {
        assert!(sent.starts_with(fx.dir.path()) && !sent.starts_with(&b));
        std::fs::create_dir_all(sent.parent().unwrap()).unwrap();
        std::fs::write(sent, &bytes).unwrap();
    }
    let i = position(&b, &rel(&b, &part));
    edit_manifest(&b, |v| v["parts"][i]["path"] = serde_json::json!(evil));
    let before = tree(fx.dir.path());
    let target = fx.path("target.db");
    let out = import_with(&b, &target, &["--allow-unencrypted"]);
    assert_refused(&out, 65, &["manifest.json"]);
    assert_untouched(&target, &out);
    assert_refused(&verify_with(&b, &[]), 65, &["manifest.json"]);
    let after: Vec<PathBuf> = tree(fx.dir.path())
        .into_iter()
        .filter(|p| *p != target)
        .collect();
    assert_eq!(
        after, before,
        "files created by a refused import ({evil:?})"
    );
    if let Some(sent) = sentinel {
        assert_eq!(std::fs::read(&sent).unwrap(), bytes, "sentinel changed");
    }
}

/// `levels` directories above the bundle.
fn above(b: &Path, levels: usize) -> PathBuf {
    b.ancestors().nth(levels).unwrap().to_path_buf()
}

#[test]
fn b23_relative_traversal_in_plain_manifest_is_refused() {
    traversal_is_refused(
        |_| "../../etc/passwd".into(),
        |b| Some(above(b, 2).join("etc/passwd")),
    );
}

#[test]
fn b23_absolute_etc_passwd_in_plain_manifest_is_refused() {
    traversal_is_refused(|_| "/etc/passwd".into(), |_| None);
}

#[test]
fn b23_absolute_path_to_a_valid_part_outside_the_bundle_is_refused() {
    let outside = |b: &Path| above(b, 1).join("outside.parquet");
    traversal_is_refused(|b| s(&outside(b)).to_string(), |b| Some(outside(b)));
}

#[test]
fn b23_traversal_through_data_in_plain_manifest_is_refused() {
    traversal_is_refused(
        |_| "data/../../x.parquet".into(),
        |b| Some(above(b, 1).join("x.parquet")),
    );
}

#[test]
fn b23_backslash_traversal_in_plain_manifest_is_refused() {
    traversal_is_refused(|_| "data\\..\\x".into(), |_| None);
}

#[test]
fn b23_other_hostile_names_in_plain_manifest_are_refused() {
    let long = format!("data/{}.parquet", "a".repeat(10_000));
    for evil in [
        "C:\\x",
        "data/%2e%2e/x.parquet",
        "data/0123456789abcdef0123456789abcdef.parquet\u{0}",
        "\u{ff0e}\u{ff0e}\u{ff0f}x",
        "data/0123456789ABCDEF0123456789ABCDEF.parquet",
        "data//0123456789abcdef0123456789abcdef.parquet",
        long.as_str(),
    ] {
        traversal_is_refused(|_| evil.to_string(), |_| None);
    }
}

#[test]
fn b24_part_replaced_by_a_symlink_is_refused_and_not_followed() {
    // The link points to a byte-identical copy of the part: following it would "work".
    let fx = fixture();
    let b = fx.export("b");
    let part = largest_part(&b);
    let outside = fx.path("outside.fe");
    std::fs::rename(&part, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &part).unwrap();
    expect_refused(&fx, &b, 65, &[&rel(&b, &part), "not a regular file"]);
    assert_refused(
        &verify_with(&b, &[]),
        65,
        &[&rel(&b, &part), "not a regular file"],
    );
}

#[test]
fn b24_symlink_to_a_fifo_is_refused_without_hanging() {
    let fx = fixture();
    let b = fx.export("b");
    let part = largest_part(&b);
    let fifo = fx.path("fifo");
    mkfifo(&fifo);
    std::fs::remove_file(&part).unwrap();
    std::os::unix::fs::symlink(&fifo, &part).unwrap();
    let out = expect_refused(&fx, &b, 65, &[&rel(&b, &part), "not a regular file"]);
    assert!(out.elapsed < FAST, "took {:?}", out.elapsed);
}

#[test]
fn b24_part_replaced_by_a_fifo_is_refused_without_hanging() {
    let fx = fixture();
    let b = fx.export("b");
    let part = largest_part(&b);
    std::fs::remove_file(&part).unwrap();
    mkfifo(&part);
    let out = expect_refused(&fx, &b, 65, &[&rel(&b, &part), "not a regular file"]);
    assert!(out.elapsed < FAST, "took {:?}", out.elapsed);
    assert_refused(
        &verify_with(&b, &[]),
        65,
        &[&rel(&b, &part), "not a regular file"],
    );
}

#[test]
fn b24_part_replaced_by_a_directory_is_refused() {
    let fx = fixture();
    let b = fx.export("b");
    let part = largest_part(&b);
    std::fs::remove_file(&part).unwrap();
    std::fs::create_dir(&part).unwrap();
    expect_refused(&fx, &b, 65, &[&rel(&b, &part), "not a regular file"]);
}

#[test]
fn b26_huge_declared_size_is_refused_fast() {
    let fx = fixture();
    let b = fx.export("b");
    edit_manifest(&b, |v| {
        v["parts"][0]["size"] = serde_json::json!(1u64 << 60);
    });
    let out = expect_refused(&fx, &b, 65, &["manifest.json", "parts[0].size"]);
    assert!(out.elapsed < FAST, "took {:?}", out.elapsed);
    assert_refused(&verify_with(&b, &[]), 65, &["parts[0].size"]);
}

#[test]
fn b26_manifest_of_20_mib_is_refused_by_the_size_cap() {
    // Valid JSON padded with whitespace: only the cap can refuse it.
    let fx = fixture();
    let b = fx.export("b");
    let p = b.join("manifest.json");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.extend(std::iter::repeat_n(b' ', 20 << 20));
    std::fs::write(&p, bytes).unwrap();
    let out = expect_refused(&fx, &b, 65, &["manifest.json", "limit"]);
    assert!(out.elapsed < FAST, "took {:?}", out.elapsed);
}

#[test]
fn b26_deeply_nested_manifest_is_a_clean_error() {
    let fx = fixture();
    let b = fx.export("b");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    std::fs::write(b.join("manifest.json"), deep).unwrap();
    expect_refused(&fx, &b, 65, &["manifest.json", "not valid JSON"]);
}

/// A passphrase bundle whose slot has KDF parameter `field` set to a hostile `value`.
fn hostile_kdf_bundle(fx: &Fixture, name: &str, field: &str, value: u64) -> PathBuf {
    let b = export_with_passphrase(fx, name, PASSPHRASE);
    edit_manifest(&b, |v| {
        v["encryption"]["key_slots"][0]["kdf"][field] = serde_json::json!(value);
    });
    b
}

#[track_caller]
fn assert_hostile_kdf_refused(b: &Path, target: &Path, field: &str, extra: &[&str]) {
    let import = import_with_passphrase(b, target, PASSPHRASE);
    for out in [&import, &verify_with_passphrase(b, PASSPHRASE)] {
        assert!(
            matches!(out.code, Some(65 | 77)),
            "expected 65 or 77\n{out}"
        );
        assert!(out.elapsed < FAST, "took {:?}\n{out}", out.elapsed);
        let mut needles = vec![field];
        needles.extend_from_slice(extra);
        assert_refused(out, out.code.unwrap(), &needles);
    }
    assert_untouched(target, &import);
}

#[test]
fn b27_hostile_argon2_memory_is_refused_fast() {
    let fx = fixture();
    let b = hostile_kdf_bundle(&fx, "p", "m_kib", u64::from(u32::MAX));
    assert_hostile_kdf_refused(&b, &fx.path("target.db"), "m_kib", &[]);
}

#[test]
fn b27_hostile_argon2_passes_are_refused_fast() {
    let fx = fixture();
    let b = hostile_kdf_bundle(&fx, "p", "t", 1_000_000_000);
    assert_hostile_kdf_refused(&b, &fx.path("target.db"), "kdf", &[]);
}

#[test]
fn b27_hostile_argon2_parameters_message_says_limits() {
    let fx = fixture();
    let b = hostile_kdf_bundle(&fx, "p", "m_kib", u64::from(u32::MAX));
    assert_hostile_kdf_refused(&b, &fx.path("target.db"), "kdf", &["limit"]);
    let b = hostile_kdf_bundle(&fx, "p2", "t", 1_000_000_000);
    assert_hostile_kdf_refused(&b, &fx.path("target2.db"), "kdf", &["limit"]);
}

#[test]
fn b28_catalog_row_count_differs_from_the_parquet_is_refused_before_loading() {
    // An insider rewrites the encrypted catalog so that `items` claims one row fewer than
    // its Parquet holds (table total kept consistent), then reseals the manifest.
    let fx = fixture();
    let b = fx.export("b");
    let m = read_manifest(&b);
    let key = data_key(&m, &fx.key).file_key(&m.bundle_id);
    let ctx = file_context(&m.bundle_id, "catalog", "catalog.fe");
    let plain = decrypt_all(&key, &ctx, &std::fs::read(b.join("catalog.fe")).unwrap()).unwrap();
    let mut cat: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    let items = cat["tables"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|t| t["table"]["name"] == "items")
        .expect("items");
    assert_eq!(items["rows"], 3000);
    items["rows"] = serde_json::json!(2999);
    items["parts"][0]["rows"] = serde_json::json!(items["parts"][0]["rows"].as_u64().unwrap() - 1);
    let part = items["parts"][0]["path"].as_str().unwrap().to_string();
    let ct = encrypt_to_vec(&key, &ctx, &serde_json::to_vec(&cat).unwrap()).unwrap();
    std::fs::write(b.join("catalog.fe"), ct).unwrap();
    reseal(&b, &fx.key);
    expect_refused(&fx, &b, 65, &[&part, "3000", "2999"]);
}

#[test]
fn b29_byte_order_mark_is_refused() {
    let fx = fixture();
    let b = fx.export("b");
    let p = b.join("manifest.json");
    let mut bytes = "\u{feff}".as_bytes().to_vec();
    bytes.extend(std::fs::read(&p).unwrap());
    std::fs::write(&p, bytes).unwrap();
    expect_refused(&fx, &b, 65, &["manifest.json", "byte-order mark"]);
}

#[test]
fn b29_trailing_garbage_after_the_json_is_refused() {
    let fx = fixture();
    let b = fx.export("b");
    append(&b.join("manifest.json"), b"{\"x\":1}");
    expect_refused(&fx, &b, 65, &["manifest.json", "trailing"]);
}

#[test]
fn b29_non_utf8_and_comments_are_refused() {
    let fx = fixture();
    let b = fx.export("b");
    let p = b.join("manifest.json");
    let orig = std::fs::read(&p).unwrap();
    let mut latin1 = orig.clone();
    let at = latin1.windows(8).position(|w| w == b"\"format\"").unwrap();
    latin1.insert(at, 0xe9);
    std::fs::write(&p, latin1).unwrap();
    expect_refused(&fx, &b, 65, &["manifest.json", "UTF-8"]);
    let mut commented = b"// exported by ferry\n".to_vec();
    commented.extend(&orig);
    std::fs::write(&p, commented).unwrap();
    expect_refused(&fx, &b, 65, &["manifest.json", "not valid JSON"]);
}

/// Exports the `notes` table with a given sequence number.
fn export_notes(fx: &Fixture, name: &str, sequence: u64) -> PathBuf {
    let b = fx.path(name);
    let mut c = ferry();
    c.args([
        "export",
        &fx.src_url(),
        s(&b),
        "--key-file",
        s(&fx.key),
        "--table",
        "notes",
        "--sequence",
        &sequence.to_string(),
    ]);
    assert_ok(&run(c));
    b
}

fn notes_rows(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn b30_replayed_older_bundle_is_refused() {
    let fx = fixture();
    let newer = export_notes(&fx, "newer", 1842);
    let older = export_notes(&fx, "older", 1840);
    assert_eq!(manifest(&newer)["source_id"], manifest(&older)["source_id"]);
    let target = fx.path("target.db");
    assert_ok(&import_with(&newer, &target, &key_args(&fx)));
    let out = import_with(
        &older,
        &target,
        &["--key-file", s(&fx.key), "--mode", "append"],
    );
    assert_refused(&out, 65, &["1840", "1842"]);
    assert_eq!(
        notes_rows(&target),
        2,
        "the replayed bundle was loaded\n{out}"
    );
    assert_eq!(ledger_rows(&target), 1, "{out}");
}

#[test]
fn b31_same_bundle_id_with_different_manifest_is_refused() {
    // Import a bundle, then let an insider change its manifest (sequence) and reseal the
    // MAC: the ledger knows this bundle id with another manifest hash.
    let fx = fixture();
    let b = fx.export("b");
    let target = fx.path("target.db");
    assert_ok(&import_with(&b, &target, &key_args(&fx)));
    let before = (dump(&target), ledger_rows(&target));
    let mut m = read_manifest(&b);
    m.sequence += 1;
    std::fs::write(b.join("manifest.json"), m.to_json()).unwrap();
    write_mac(&b, &m, &fx.key);
    assert_ok(&verify_with(&b, &key_args(&fx)));
    let out = import_with(&b, &target, &key_args(&fx));
    assert_refused(
        &out,
        65,
        &["manifest.json", &m.bundle_id, "different content"],
    );
    assert_eq!(
        (dump(&target), ledger_rows(&target)),
        before,
        "target changed\n{out}"
    );
}

// =======================================================================================
// C. Keys

#[test]
fn c32_wrong_key_file_names_both_key_ids() {
    let fx = fixture();
    let b = fx.export("b");
    let other = fx.other_key("other.key");
    let (mine, theirs) = (key_id_of(&fx.key), key_id_of(&other));
    let target = fx.path("target.db");
    let out = import_with(&b, &target, &["--key-file", s(&other)]);
    assert_refused(&out, 77, &[&mine, &theirs]);
    assert_untouched(&target, &out);
    assert_refused(
        &verify_with(&b, &["--key-file", s(&other)]),
        77,
        &[&mine, &theirs],
    );
}

#[test]
fn c33_wrong_passphrase_is_a_key_error() {
    let fx = fixture();
    let b = export_with_passphrase(&fx, "p", PASSPHRASE);
    let target = fx.path("target.db");
    let out = import_with_passphrase(&b, &target, "correct horse battery stapler");
    assert_refused(&out, 77, &["passphrase", "slot #1"]);
    assert_untouched(&target, &out);
    assert_refused(
        &verify_with_passphrase(&b, "Correct horse battery staple"),
        77,
        &["passphrase"],
    );
}

#[test]
fn c33_empty_passphrase_is_a_key_error() {
    let fx = fixture();
    let b = export_with_passphrase(&fx, "p", PASSPHRASE);
    let target = fx.path("target.db");
    let out = import_with_passphrase(&b, &target, "");
    assert_refused(&out, 77, &["passphrase", "empty"]);
    assert_untouched(&target, &out);
    assert_refused(&verify_with_passphrase(&b, ""), 77, &["empty"]);
}

#[test]
fn c33_unset_passphrase_variable_is_a_key_error() {
    let fx = fixture();
    let b = export_with_passphrase(&fx, "p", PASSPHRASE);
    let target = fx.path("target.db");
    let mut c = ferry();
    c.env_remove("FERRY_TEST_UNSET").args([
        "import",
        s(&b),
        &format!("sqlite://{}", s(&target)),
        "--passphrase-env",
        "FERRY_TEST_UNSET",
    ]);
    let out = run(c);
    assert_refused(&out, 77, &["FERRY_TEST_UNSET", "not set"]);
    assert_untouched(&target, &out);
}

#[test]
fn c33_nfd_passphrase_opens_a_bundle_made_with_nfc() {
    let fx = fixture();
    let nfc = "caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e";
    let nfd = "cafe\u{301} cre\u{300}me bru\u{302}le\u{301}e";
    assert_ne!(nfc.as_bytes(), nfd.as_bytes());
    // The library agrees the two are one passphrase.
    assert_eq!(
        Passphrase::new(nfc, "t").unwrap().as_bytes(),
        Passphrase::new(nfd, "t").unwrap().as_bytes()
    );
    let b = export_with_passphrase(&fx, "p", nfc);
    let target = fx.path("target.db");
    assert_ok(&import_with_passphrase(&b, &target, nfd));
    assert_eq!(dump(&target), dump(&fx.src));
    assert_ok(&verify_with_passphrase(&b, nfd));
}

#[test]
fn c32_no_key_given_names_the_key_options() {
    let fx = fixture();
    let b = fx.export("b");
    let target = fx.path("target.db");
    let out = import_with(&b, &target, &[]);
    assert_refused(&out, 77, &["--key-file", &key_id_of(&fx.key)]);
    assert_untouched(&target, &out);
}

/// A key file holding `line` must be refused by import and verify with 77 and `needle`.
fn malformed_key_file(line: &str, needle: &str) {
    let fx = fixture();
    let b = fx.export("b");
    let bad = fx.path("bad.key");
    std::fs::write(&bad, line).unwrap();
    set_mode(&bad, 0o600);
    let target = fx.path("target.db");
    let out = import_with(&b, &target, &["--key-file", s(&bad)]);
    assert_refused(&out, 77, &[s(&bad), needle]);
    assert_untouched(&target, &out);
    assert_refused(&verify_with(&b, &["--key-file", s(&bad)]), 77, &[needle]);
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The FERRYKEY1… line of a key file.
fn key_line(key_file: &Path) -> String {
    std::fs::read_to_string(key_file)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("FERRYKEY1"))
        .expect("a key line")
        .to_string()
}

#[test]
fn c35_key_file_with_bad_checksum_is_refused() {
    let fx = fixture();
    let mut line: Vec<char> = key_line(&fx.key).chars().collect();
    let i = line.len() - 3;
    line[i] = if line[i] == 'Q' { 'P' } else { 'Q' };
    malformed_key_file(
        &format!("{}\n", line.into_iter().collect::<String>()),
        "not a valid ferry key",
    );
}

#[test]
fn c35_key_file_of_31_bytes_is_refused() {
    let hrp = bech32::Hrp::parse("ferrykey").unwrap();
    let line = bech32::encode::<bech32::Bech32>(hrp, &[7u8; 31])
        .unwrap()
        .to_uppercase();
    malformed_key_file(&format!("{line}\n"), "31 bytes");
}

#[test]
fn c35_key_file_with_wrong_hrp_is_refused() {
    let hrp = bech32::Hrp::parse("age").unwrap();
    let line = bech32::encode::<bech32::Bech32>(hrp, &[7u8; 32])
        .unwrap()
        .to_uppercase();
    malformed_key_file(&format!("{line}\n"), "not a ferry key");
}

#[test]
fn c35_empty_key_file_is_refused() {
    malformed_key_file("", "no key in it");
}

#[test]
fn c35_key_file_line_ending_variants_still_work() {
    let fx = fixture();
    let b = fx.export("b");
    let line = key_line(&fx.key);
    for (i, text) in [
        line.clone(),
        format!("{line}\r\n"),
        format!("\n\n{line}\n\n"),
        format!("  {line}  \n"),
    ]
    .iter()
    .enumerate()
    {
        let k = fx.path(&format!("variant{i}.key"));
        std::fs::write(&k, text).unwrap();
        set_mode(&k, 0o600);
        assert_ok(&verify_with(&b, &["--key-file", s(&k)]));
    }
}

#[test]
fn c35_world_readable_key_file_works_but_warns() {
    let fx = fixture();
    let b = fx.export("b");
    set_mode(&fx.key, 0o644);
    let target = fx.path("target.db");
    let out = import_with(&b, &target, &key_args(&fx));
    assert_ok(&out);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("chmod 600"), "no permission warning\n{out}");
    assert_eq!(dump(&target), dump(&fx.src));
}

#[test]
fn c36_tampered_key_slot_is_a_key_error_naming_the_slot() {
    let fx = fixture();
    let b = fx.export("b");
    edit_manifest(&b, |v| {
        let w = v["encryption"]["key_slots"][0]["wrapped"]
            .as_str()
            .unwrap()
            .to_string();
        // Change the first hex digit: still 96 hex digits, so only the AEAD can object.
        let first = if w.as_bytes()[0] == b'0' { '1' } else { '0' };
        let flipped = format!("{first}{}", &w[1..]);
        v["encryption"]["key_slots"][0]["wrapped"] = serde_json::json!(flipped);
    });
    let id = key_id_of(&fx.key);
    let out = expect_refused(&fx, &b, 77, &[&id, "slot #1"]);
    assert_mentions_any(&out, &["integrity", "damaged", "corrupt"]);
}

#[test]
fn c36_slot_from_another_bundle_does_not_open() {
    // The slot's AAD binds it to its bundle id: a slot copied from another bundle of the
    // same key must not open this one.
    let fx = fixture();
    let b = fx.export("b");
    let other = fx.export("other");
    let theirs = read_manifest(&other).encryption.key_slots;
    assert!(matches!(theirs[0], KeySlot::KeyFile { .. }));
    edit_manifest(&b, |v| {
        v["encryption"]["key_slots"] = serde_json::to_value(theirs).unwrap();
    });
    let out = expect_refused(&fx, &b, 77, &[&key_id_of(&fx.key)]);
    assert_mentions_any(&out, &["integrity", "damaged", "corrupt"]);
}
