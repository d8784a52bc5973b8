//! Wycheproof vectors for Cobblestone-256 (C2SP chunked encryption, AES-256-GCM),
//! applied as described in C2SP/wycheproof `doc/c2sp_chunked_encryption.md`.

use std::io::{Read, Write};

use ferry::crypto::cobblestone::{
    Decryptor, Encryptor, Error, HEADER_LEN, Opened, SALT_LEN, Truncation, decrypt_all,
    key_from_slice, unwrap_io,
};
use serde_json::Value;
use sha2::{Digest, Sha512};

const VECTORS: &str = "tests/data/wycheproof/c2sp_chunked_encryption_aes_256_gcm_test.json";
const EXPECTED_VECTORS: usize = 35;

struct Vector {
    id: u64,
    comment: String,
    key: Vec<u8>,
    ctx: Vec<u8>,
    ct: Vec<u8>,
    valid: bool,
    flags: Vec<String>,
    /// Valid message, or longest valid prefix for `PartialPlaintext` vectors.
    msg: Option<(usize, Vec<u8>)>,
}

impl Vector {
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn name(&self) -> String {
        format!("tcId {} ({}, {:?})", self.id, self.comment, self.flags)
    }
}

fn hex_field(t: &Value, field: &str) -> Vec<u8> {
    hex::decode(
        t[field]
            .as_str()
            .unwrap_or_else(|| panic!("missing {field}")),
    )
    .unwrap_or_else(|e| panic!("bad hex in {field}: {e}"))
}

fn load() -> Vec<Vector> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(VECTORS);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("vector file is JSON");
    assert_eq!(doc["algorithm"], "Cobblestone-256");
    assert_eq!(doc["numberOfTests"], 35);
    let mut out = Vec::new();
    for group in doc["testGroups"].as_array().expect("testGroups") {
        assert_eq!(group["type"], "ChunkedEncryption");
        assert_eq!(group["aead"], "AEAD_AES_256_GCM");
        assert_eq!(group["sha"], "SHA-512");
        for t in group["tests"].as_array().expect("tests") {
            let mut ct = Vec::new();
            flate2::read::ZlibDecoder::new(&hex_field(t, "ct")[..])
                .read_to_end(&mut ct)
                .expect("ct is zlib-compressed");
            let msg = t.get("msgLength").map(|len| {
                (
                    usize::try_from(len.as_u64().expect("msgLength")).unwrap(),
                    hex_field(t, "msgSha512"),
                )
            });
            let result = t["result"].as_str().expect("result");
            assert!(result == "valid" || result == "invalid", "result {result}");
            out.push(Vector {
                id: t["tcId"].as_u64().expect("tcId"),
                comment: t["comment"].as_str().unwrap_or_default().to_owned(),
                key: hex_field(t, "key"),
                ctx: hex_field(t, "ctx"),
                ct,
                valid: result == "valid",
                flags: t["flags"]
                    .as_array()
                    .expect("flags")
                    .iter()
                    .map(|f| f.as_str().expect("flag").to_owned())
                    .collect(),
                msg,
            });
        }
    }
    out
}

fn check_message(v: &Vector, got: &[u8]) {
    let (len, sha) = v.msg.as_ref().expect("valid vectors carry msgLength");
    assert_eq!(got.len(), *len, "{}: plaintext length", v.name());
    assert_eq!(
        Sha512::digest(got).as_slice(),
        &sha[..],
        "{}: plaintext SHA-512",
        v.name()
    );
}

fn is_header_error(e: &Error) -> bool {
    matches!(
        e,
        Error::HeaderAuth
            | Error::InvalidKeySize { .. }
            | Error::Truncated {
                what: Truncation::Header { .. }
            }
    )
}

/// Streaming decryption through `Decryptor`.
fn check_streaming(v: &Vector, key: &[u8; 32]) {
    let mut dec = match Decryptor::new(key, &v.ctx, &v.ct[..]) {
        Ok(dec) => dec,
        Err(e) => {
            assert!(
                v.has("HeaderFailure"),
                "{}: unexpected header error {e}",
                v.name()
            );
            assert!(is_header_error(&e), "{}: not a header error: {e}", v.name());
            return;
        }
    };
    assert!(
        !v.has("HeaderFailure"),
        "{}: header accepted by Decryptor::new",
        v.name()
    );
    let mut out = Vec::new();
    let result = dec.read_to_end(&mut out);
    if v.valid {
        result.unwrap_or_else(|e| panic!("{}: streaming decryption failed: {e}", v.name()));
        check_message(v, &out);
        return;
    }
    let e = result.expect_err(&format!("{}: streaming decryption succeeded", v.name()));
    let first = unwrap_io(&e)
        .unwrap_or_else(|| panic!("{}: error without format error: {e}", v.name()))
        .to_string();
    // Only the longest valid prefix may have been released, never more.
    match &v.msg {
        Some((len, _)) if out.len() == *len => check_message(v, &out),
        Some((len, _)) => assert!(
            out.len() < *len && out.len() % (16 * 1024) == 0,
            "{}: released {} bytes",
            v.name(),
            out.len()
        ),
        None => assert!(out.is_empty(), "{}: released plaintext", v.name()),
    }
    if !v.has("PartialPlaintext") {
        assert!(out.is_empty(), "{}: released plaintext", v.name());
    }
    // And it keeps failing.
    for _ in 0..3 {
        let mut buf = [0u8; 64];
        let again = dec
            .read(&mut buf)
            .expect_err(&format!("{}: read after failure succeeded", v.name()));
        assert_eq!(
            unwrap_io(&again).map(ToString::to_string).as_deref(),
            Some(first.as_str()),
            "{}",
            v.name()
        );
    }
}

/// Random-access decryption through `Opened`, chunk by chunk.
fn check_random_access(v: &Vector, key: &[u8; 32]) {
    let total = u64::try_from(v.ct.len()).unwrap();
    let opened = match Opened::open(key, &v.ctx, &v.ct, total) {
        Ok(o) => o,
        Err(e) => {
            assert!(
                !v.valid,
                "{}: Opened::open failed on a valid vector: {e}",
                v.name()
            );
            if v.has("HeaderFailure") {
                assert!(is_header_error(&e), "{}: not a header error: {e}", v.name());
            } else {
                // Rejected by the length check, which needs no chunk either.
                assert!(
                    matches!(e, Error::Truncated { .. }),
                    "{}: unexpected {e}",
                    v.name()
                );
            }
            return;
        }
    };
    assert!(
        !v.has("HeaderFailure"),
        "{}: header accepted by Opened::open",
        v.name()
    );
    let chunk = |index: u64| {
        let (start, len) = opened.chunk_range(index);
        let start = usize::try_from(start).unwrap();
        opened.decrypt_chunk(index, &v.ct[start..start + len])
    };

    // Length authentication via the final chunk.
    let last = opened.chunk_count() - 1;
    let final_ok = chunk(last).is_ok();
    if v.valid || !v.has("ValidFinalChunk") {
        assert_eq!(final_ok, v.valid, "{}: final chunk check", v.name());
    }

    let mut out = Vec::new();
    let mut failed = false;
    for index in 0..opened.chunk_count() {
        match chunk(index) {
            Ok(p) => out.extend_from_slice(&p),
            Err(e) => {
                assert!(
                    matches!(e, Error::ChunkAuth { index: i, .. } if i == index),
                    "{}: unexpected {e}",
                    v.name()
                );
                failed = true;
            }
        }
    }
    if v.valid {
        assert!(!failed, "{}: a chunk failed", v.name());
        assert_eq!(u64::try_from(out.len()).unwrap(), opened.plaintext_len());
        check_message(v, &out);
    } else {
        assert!(failed, "{}: every chunk decrypted", v.name());
    }
}

#[test]
fn cobblestone_256_vectors() {
    let vectors = load();
    assert_eq!(
        vectors.len(),
        EXPECTED_VECTORS,
        "vector file incomplete or missing"
    );
    let (mut valid, mut invalid) = (0, 0);
    for v in &vectors {
        let key = match key_from_slice(&v.key) {
            Ok(k) => k,
            Err(e) => {
                assert!(
                    v.has("InvalidKeySize") && v.has("HeaderFailure"),
                    "{}: key rejected: {e}",
                    v.name()
                );
                assert!(matches!(e, Error::InvalidKeySize { .. }));
                invalid += 1;
                continue;
            }
        };
        assert!(
            !v.has("InvalidKeySize"),
            "{}: bad key size accepted",
            v.name()
        );

        check_streaming(v, &key);
        check_random_access(v, &key);

        match decrypt_all(&key, &v.ctx, &v.ct) {
            Ok(pt) => {
                assert!(v.valid, "{}: decrypt_all accepted", v.name());
                check_message(v, &pt);
                // Re-encrypting with the vector's salt reproduces the ciphertext exactly.
                let salt: [u8; SALT_LEN] = v.ct[..SALT_LEN].try_into().unwrap();
                let mut enc = Encryptor::with_salt(&key, &v.ctx, salt, Vec::new()).unwrap();
                for piece in pt.chunks(7919) {
                    enc.write_all(piece).unwrap();
                }
                let ct = enc.finish().unwrap();
                assert!(ct == v.ct, "{}: re-encryption differs", v.name());
                assert_eq!(&ct[..HEADER_LEN], &v.ct[..HEADER_LEN]);
                valid += 1;
            }
            Err(e) => {
                assert!(!v.valid, "{}: decrypt_all failed: {e}", v.name());
                if v.has("HeaderFailure") {
                    assert!(is_header_error(&e), "{}: not a header error: {e}", v.name());
                }
                invalid += 1;
            }
        }
    }
    assert_eq!(valid + invalid, EXPECTED_VECTORS);
    assert_eq!((valid, invalid), (10, 25));
}
