//! Cobblestone reader: `decrypt_all` with a fixed key and context over arbitrary bytes must
//! return an error or plaintext, never panic or allocate from a hostile length. A second
//! check seals the input with the same key and context, then requires that it opens to the
//! same bytes and that flipping any one byte (chosen from the input) makes it fail.
//!
//! Seeds sealed with the fixed key: run any build of this target with
//! `FERRY_FUZZ_SEED_DIR=DIR` set and it writes a few into DIR first.
#![no_main]

use ferry::crypto::cobblestone::{CHUNK_SIZE, decrypt_all, encrypt_to_vec};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [0x42; 32];
const CONTEXT: &[u8] = b"fuzz-bundle/data/part.fe";

fn write_seeds() {
    let Some(dir) = std::env::var_os("FERRY_FUZZ_SEED_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("seed dir");
    for len in [0, 1, 100, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 7] {
        let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let sealed = encrypt_to_vec(&KEY, CONTEXT, &plain).expect("seal");
        std::fs::write(dir.join(format!("sealed-{len}")), sealed).expect("write seed");
    }
}

fuzz_target!(init: write_seeds(), |data: &[u8]| {
    // Arbitrary ciphertext.
    if let Ok(plain) = decrypt_all(&KEY, CONTEXT, data) {
        assert!(plain.len() < data.len());
    }
    // Round trip and single-byte tamper of a valid ciphertext (small inputs only: speed).
    if data.len() <= 2 * CHUNK_SIZE + 64 {
        let sealed = encrypt_to_vec(&KEY, CONTEXT, data).expect("seal");
        assert_eq!(decrypt_all(&KEY, CONTEXT, &sealed).expect("open own"), data);
        let pick = data.iter().fold(7usize, |h, b| h.wrapping_mul(31).wrapping_add(*b as usize));
        let mut bad = sealed.clone();
        let i = pick % bad.len();
        bad[i] ^= 1 << (pick % 8);
        assert!(decrypt_all(&KEY, CONTEXT, &bad).is_err(), "tampered byte {i} accepted");
        assert!(decrypt_all(&KEY, CONTEXT, &sealed[..sealed.len() - 1]).is_err(), "truncation accepted");
    }
});
