//! The envelope: a random bundle data key (BDK) wrapped in key slots, and what is derived
//! from it: the file-encryption key, each file's context string, and the manifest MAC.
//!
//! Slots are AES-256-GCM wraps of the BDK under a key-encryption key: the key file's key,
//! or an Argon2id hash of a passphrase. Each slot names its key id so a wrong key is
//! reported as such, not as corruption.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::keys::{Keys, Passphrase};
use crate::{Error, Result};

/// RFC 9106 second recommended option: 64 MiB, 3 passes, 4 lanes.
pub const ARGON2_M_KIB: u32 = 64 * 1024;
pub const ARGON2_T: u32 = 3;
pub const ARGON2_P: u32 = 4;
/// Caps on parameters read from a bundle, so a hostile slot cannot demand unbounded work
/// (docs/RELIABILITY.md, B27): 16 times ferry's own memory, and a
/// few times its passes and lanes.
pub const ARGON2_MAX_M_KIB: u32 = 1024 * 1024;
pub const ARGON2_MAX_T: u32 = 8;
pub const ARGON2_MAX_P: u32 = 16;
pub const ARGON2_MIN_M_KIB: u32 = 8;
/// Passphrase slots a bundle may have.
pub const MAX_PASSPHRASE_SLOTS: usize = 4;
/// Argon2 work (memory × passes, in KiB) all the derivations of one attempt to open a
/// bundle may cost together: one slot at the caps (1 GiB × 8 passes), or 42 slots with
/// ferry's defaults. Checked before any derivation runs.
pub const ARGON2_BUDGET_KIB_PASSES: u64 = ARGON2_MAX_M_KIB as u64 * ARGON2_MAX_T as u64;

/// Argon2id parameters of a passphrase slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Argon2Params {
    pub algorithm: String,
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
    /// 16 bytes, hex.
    pub salt: String,
}

/// One way to open the bundle, as stored in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum KeySlot {
    KeyFile {
        key_id: String,
        /// 12 bytes, hex.
        nonce: String,
        /// The wrapped data key and tag, 48 bytes, hex.
        wrapped: String,
    },
    Passphrase {
        key_id: String,
        kdf: Argon2Params,
        nonce: String,
        wrapped: String,
    },
}

impl KeySlot {
    pub fn key_id(&self) -> &str {
        match self {
            KeySlot::KeyFile { key_id, .. } | KeySlot::Passphrase { key_id, .. } => key_id,
        }
    }

    /// A slot's description as in messages: `slot #2 (passphrase p1_…)`.
    pub fn describe(&self, index: usize) -> String {
        match self {
            KeySlot::KeyFile { key_id, .. } => format!("slot #{} (key file {key_id})", index + 1),
            KeySlot::Passphrase { key_id, .. } => {
                format!("slot #{} (passphrase {key_id})", index + 1)
            }
        }
    }
}

/// The bundle data key.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(…)")
    }
}

impl DataKey {
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut k[..]);
        DataKey(k)
    }

    /// For tests that need a known key.
    pub fn from_bytes(k: [u8; 32]) -> Self {
        DataKey(Zeroizing::new(k))
    }

    fn derive(&self, bundle_id: &str, info: &[u8]) -> Zeroizing<[u8; 32]> {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(bundle_id.as_bytes()), &self.0[..]);
        let mut out = Zeroizing::new([0u8; 32]);
        hk.expand(info, &mut out[..])
            .expect("32 bytes is a valid HKDF-SHA256 length");
        out
    }

    /// The key every file of the bundle is encrypted with (its context keeps files apart).
    pub fn file_key(&self, bundle_id: &str) -> Zeroizing<[u8; 32]> {
        self.derive(bundle_id, b"ferry v1 file key")
    }

    fn mac_key(&self, bundle_id: &str) -> Zeroizing<[u8; 32]> {
        self.derive(bundle_id, b"ferry v1 manifest mac")
    }

    /// HMAC-SHA256 over the exact bytes of manifest.json, hex.
    pub fn manifest_mac(&self, bundle_id: &str, manifest: &[u8]) -> String {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key(bundle_id)[..])
            .expect("any key length");
        m.update(manifest);
        hex::encode(m.finalize().into_bytes())
    }

    /// Checks a manifest MAC in constant time.
    pub fn verify_manifest_mac(&self, bundle_id: &str, manifest: &[u8], mac_hex: &str) -> bool {
        let Ok(tag) = hex::decode(mac_hex.trim()) else {
            return false;
        };
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key(bundle_id)[..])
            .expect("any key length");
        m.update(manifest);
        m.verify_slice(&tag).is_ok()
    }

    /// Wraps this key for every key the user gave.
    pub fn wrap(&self, bundle_id: &str, keys: &Keys) -> Result<Vec<KeySlot>> {
        if keys.passphrases.len() > MAX_PASSPHRASE_SLOTS {
            return Err(Error::Usage(format!(
                "{} passphrases given; a bundle has at most {MAX_PASSPHRASE_SLOTS} passphrase slots \
                 (readers refuse more), add key files instead",
                keys.passphrases.len()
            )));
        }
        let mut slots = Vec::new();
        for k in &keys.key_files {
            let (nonce, wrapped) = seal(k.bytes(), &self.0, &aad(bundle_id, "key-file", k.id()))?;
            slots.push(KeySlot::KeyFile {
                key_id: k.id().to_string(),
                nonce,
                wrapped,
            });
        }
        for p in &keys.passphrases {
            let mut salt = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut salt);
            let kdf = Argon2Params {
                algorithm: "argon2id".into(),
                m_kib: ARGON2_M_KIB,
                t: ARGON2_T,
                p: ARGON2_P,
                salt: hex::encode(salt),
            };
            let key_id = passphrase_slot_id(&kdf.salt);
            let kek = argon2_kek(p, &kdf)?;
            let (nonce, wrapped) = seal(&kek, &self.0, &aad(bundle_id, "passphrase", &key_id))?;
            slots.push(KeySlot::Passphrase {
                key_id,
                kdf,
                nonce,
                wrapped,
            });
        }
        Ok(slots)
    }

    /// Opens the first slot one of the given keys fits. Errors name the key ids involved.
    pub fn unwrap(bundle_id: &str, slots: &[KeySlot], keys: &Keys) -> Result<DataKey> {
        let accepts: Vec<String> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| s.describe(i))
            .collect();
        let accepts = accepts.join(", ");
        if keys.is_empty() {
            return Err(Error::Key(format!(
                "this bundle is encrypted and no key was given: pass --key-file PATH (or set FERRY_KEY_FILE) \
                 or --passphrase-env VAR; the bundle accepts {accepts}"
            )));
        }
        // Every passphrase may be tried on every passphrase slot (when no key file opens
        // one): that whole cost is checked before any key derivation runs.
        if !keys.passphrases.is_empty() {
            check_kdf_budget(slots, keys.passphrases.len())?;
        }
        let mut failures = Vec::new();
        for k in &keys.key_files {
            let mut matched = false;
            for (i, s) in slots.iter().enumerate() {
                if let KeySlot::KeyFile {
                    key_id,
                    nonce,
                    wrapped,
                } = s
                {
                    if key_id != k.id() {
                        continue;
                    }
                    matched = true;
                    match open(k.bytes(), nonce, wrapped, &aad(bundle_id, "key-file", key_id)) {
                        Some(bdk) => return Ok(DataKey(bdk)),
                        None => failures.push(format!(
                            "{} matches key {} (from {}) but failed its integrity check: the slot is damaged",
                            s.describe(i),
                            k.id(),
                            k.origin
                        )),
                    }
                }
            }
            if !matched {
                failures.push(format!(
                    "no key slot opens with key {} ({})",
                    k.id(),
                    k.origin
                ));
            }
        }
        for p in &keys.passphrases {
            let mut any = false;
            for (i, s) in slots.iter().enumerate() {
                if let KeySlot::Passphrase {
                    key_id,
                    kdf,
                    nonce,
                    wrapped,
                } = s
                {
                    any = true;
                    let kek = argon2_kek(p, kdf)?;
                    match open(&kek, nonce, wrapped, &aad(bundle_id, "passphrase", key_id)) {
                        Some(bdk) => return Ok(DataKey(bdk)),
                        None => failures.push(format!(
                            "the passphrase did not open {}: wrong passphrase, or a corrupted slot",
                            s.describe(i)
                        )),
                    }
                }
            }
            if !any {
                failures
                    .push("a passphrase was given but the bundle has no passphrase slot".into());
            }
        }
        Err(Error::Key(format!(
            "{}. The bundle accepts: {accepts}",
            failures.join("; ")
        )))
    }
}

/// A passphrase slot's public id, from its salt.
fn passphrase_slot_id(salt_hex: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"ferry passphrase slot v1\0");
    h.update(salt_hex.as_bytes());
    format!("p1_{}", &hex::encode(h.finalize())[..16])
}

fn aad(bundle_id: &str, kind: &str, key_id: &str) -> Vec<u8> {
    format!("ferry keyslot v1\0{bundle_id}\0{kind}\0{key_id}").into_bytes()
}

/// Checks a slot's Argon2 parameters against the caps before any work is done.
pub fn check_kdf(kdf: &Argon2Params) -> std::result::Result<(), String> {
    if kdf.algorithm != "argon2id" {
        return Err(format!(
            "key slot KDF {:?} is not supported (argon2id is)",
            kdf.algorithm
        ));
    }
    if kdf.m_kib > ARGON2_MAX_M_KIB
        || kdf.m_kib < ARGON2_MIN_M_KIB
        || kdf.t > ARGON2_MAX_T
        || kdf.t == 0
        || kdf.p == 0
        || kdf.p > ARGON2_MAX_P
        || u64::from(kdf.m_kib) < 8 * u64::from(kdf.p)
    {
        return Err(format!(
            "keyslot KDF parameters exceed limits (m_kib={}, t={}, p={}; allowed: m ≤ 1 GiB (m_kib from {ARGON2_MIN_M_KIB} to {ARGON2_MAX_M_KIB}, at least 8 per lane), t from 1 to {ARGON2_MAX_T}, p from 1 to {ARGON2_MAX_P}); refused before any key derivation",
            kdf.m_kib, kdf.t, kdf.p
        ));
    }
    match hex::decode(&kdf.salt) {
        Ok(s) if (16..=64).contains(&s.len()) => Ok(()),
        _ => Err("key slot KDF salt must be 16 to 64 bytes of hex".into()),
    }
}

/// The Argon2 work of a slot list, per attempt: memory × passes of every passphrase slot.
/// Errors (each naming its slot) when a slot exceeds the caps, when there are more than
/// [`MAX_PASSPHRASE_SLOTS`], or when the total exceeds [`ARGON2_BUDGET_KIB_PASSES`].
pub fn kdf_work(slots: &[KeySlot]) -> std::result::Result<u64, String> {
    let mut total = 0u64;
    let mut count = 0usize;
    for (i, s) in slots.iter().enumerate() {
        if let KeySlot::Passphrase { kdf, .. } = s {
            check_kdf(kdf).map_err(|e| format!("{}: {e}", s.describe(i)))?;
            count += 1;
            if count > MAX_PASSPHRASE_SLOTS {
                return Err(format!(
                    "{}: more than {MAX_PASSPHRASE_SLOTS} passphrase slots; keyslot KDF \
                     parameters exceed limits, refused before any key derivation",
                    s.describe(i)
                ));
            }
            total += u64::from(kdf.m_kib) * u64::from(kdf.t);
            if total > ARGON2_BUDGET_KIB_PASSES {
                return Err(format!(
                    "{}: keyslot KDF parameters exceed limits: the passphrase slots up to this one \
                     need {} MiB × passes of Argon2, more than the budget of {} MiB × passes \
                     for all slots together; refused before any key derivation",
                    s.describe(i),
                    total / 1024,
                    ARGON2_BUDGET_KIB_PASSES / 1024
                ));
            }
        }
    }
    Ok(total)
}

/// The check before any passphrase is tried: `passphrases` runs over every passphrase slot.
fn check_kdf_budget(slots: &[KeySlot], passphrases: usize) -> Result<()> {
    let per = kdf_work(slots).map_err(Error::Key)?;
    let all = per.saturating_mul(passphrases as u64);
    if all > ARGON2_BUDGET_KIB_PASSES {
        return Err(Error::Key(format!(
            "trying {passphrases} passphrases on every passphrase slot would need {} MiB × passes \
             of Argon2, more than the budget of {} MiB × passes; give the one passphrase that \
             opens the bundle",
            all / 1024,
            ARGON2_BUDGET_KIB_PASSES / 1024
        )));
    }
    Ok(())
}

fn argon2_kek(p: &Passphrase, kdf: &Argon2Params) -> Result<Zeroizing<[u8; 32]>> {
    check_kdf(kdf).map_err(Error::Key)?;
    let salt = hex::decode(&kdf.salt).map_err(|_| Error::Key("key slot salt is not hex".into()))?;
    let params = argon2::Params::new(kdf.m_kib, kdf.t, kdf.p, Some(32))
        .map_err(|e| Error::Key(format!("key slot KDF parameters rejected: {e}")))?;
    // The work memory is reserved fallibly: a refusal, not an abort, when the address
    // space is limited (`ulimit -v`) below a slot's m.
    let blocks = params.block_count();
    let mut memory: Vec<argon2::Block> = Vec::new();
    memory.try_reserve_exact(blocks).map_err(|_| {
        Error::Other(format!(
            "cannot reserve the {} MiB a passphrase slot's Argon2 needs (m_kib={})",
            kdf.m_kib / 1024,
            kdf.m_kib
        ))
    })?;
    memory.resize(blocks, argon2::Block::default());
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    let res = a.hash_password_into_with_memory(p.as_bytes(), &salt, &mut out[..], &mut memory[..]);
    // The work memory holds values derived from the passphrase: cleared before it is freed.
    memory.fill(argon2::Block::default());
    std::hint::black_box(&memory);
    res.map_err(|e| Error::Key(format!("passphrase key derivation failed: {e}")))?;
    Ok(out)
}

fn seal(kek: &[u8; 32], bdk: &[u8; 32], aad: &[u8]) -> Result<(String, String)> {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let cipher = Aes256Gcm::new_from_slice(kek).expect("32-byte key");
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: &bdk[..], aad })
        .map_err(|_| Error::Other("key wrap failed".into()))?;
    Ok((hex::encode(nonce), hex::encode(ct)))
}

fn open(
    kek: &[u8; 32],
    nonce_hex: &str,
    wrapped_hex: &str,
    aad: &[u8],
) -> Option<Zeroizing<[u8; 32]>> {
    let nonce = hex::decode(nonce_hex).ok().filter(|n| n.len() == 12)?;
    let ct = hex::decode(wrapped_hex).ok().filter(|c| c.len() == 48)?;
    let cipher = Aes256Gcm::new_from_slice(kek).ok()?;
    let pt = Zeroizing::new(
        cipher
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ct, aad })
            .ok()?,
    );
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&pt);
    Some(out)
}

/// The context string that binds an encrypted file to its place: format, bundle, kind, path.
/// A file moved to another position or bundle fails the commitment check.
pub fn file_context(bundle_id: &str, kind: &str, rel_path: &str) -> Vec<u8> {
    format!("ferry-bundle v1\0{bundle_id}\0{kind}\0{rel_path}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::{KeyFileKey, key_id};

    fn keys_with_file(k: [u8; 32]) -> Keys {
        Keys {
            key_files: vec![KeyFileKey::from_bytes(k, "test")],
            passphrases: vec![],
            ..Keys::default()
        }
    }

    #[test]
    fn wrap_unwrap_with_key_file() {
        let bdk = DataKey::generate();
        let keys = keys_with_file([1; 32]);
        let slots = bdk.wrap("b1", &keys).unwrap();
        let back = DataKey::unwrap("b1", &slots, &keys).unwrap();
        assert_eq!(&back.0[..], &bdk.0[..]);
        // another bundle id: the AAD differs, the slot does not open
        assert!(DataKey::unwrap("b2", &slots, &keys).is_err());
        // wrong key: named by id
        let e = DataKey::unwrap("b1", &slots, &keys_with_file([2; 32]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&key_id(&[2; 32])) && e.contains(&key_id(&[1; 32])),
            "{e}"
        );
    }

    #[test]
    fn hostile_kdf_parameters_are_refused_before_work() {
        let mut kdf = Argon2Params {
            algorithm: "argon2id".into(),
            m_kib: u32::MAX,
            t: 3,
            p: 4,
            salt: "00".repeat(16),
        };
        assert!(check_kdf(&kdf).unwrap_err().contains("exceed limits"));
        kdf.m_kib = 65536;
        kdf.t = 1_000_000_000;
        assert!(check_kdf(&kdf).is_err());
        kdf.t = 3;
        assert!(check_kdf(&kdf).is_ok());
    }

    fn passphrase_slot(m_kib: u32, t: u32, p: u32, n: u8) -> KeySlot {
        let salt = hex::encode([n; 16]);
        KeySlot::Passphrase {
            key_id: passphrase_slot_id(&salt),
            kdf: Argon2Params {
                algorithm: "argon2id".into(),
                m_kib,
                t,
                p,
                salt,
            },
            nonce: "00".repeat(12),
            wrapped: "00".repeat(48),
        }
    }

    #[test]
    fn kdf_caps_are_1gib_8_passes_16_lanes() {
        let ok = |m, t, p| {
            check_kdf(&Argon2Params {
                algorithm: "argon2id".into(),
                m_kib: m,
                t,
                p,
                salt: "00".repeat(16),
            })
        };
        assert!(ok(1 << 20, 8, 16).is_ok());
        assert!(ok(ARGON2_M_KIB, ARGON2_T, ARGON2_P).is_ok());
        for (m, t, p) in [
            ((1 << 20) + 1, 1, 1),
            (1 << 16, 9, 1),
            (1 << 16, 1, 17),
            (8, 1, 2),
        ] {
            let e = ok(m, t, p).unwrap_err();
            assert!(e.contains("keyslot KDF parameters exceed limits"), "{e}");
        }
    }

    #[test]
    fn slot_count_and_total_work_are_capped_naming_the_slot() {
        let default = |n| passphrase_slot(ARGON2_M_KIB, ARGON2_T, ARGON2_P, n);
        let four: Vec<KeySlot> = (0..4).map(default).collect();
        assert_eq!(
            kdf_work(&four).unwrap(),
            4 * u64::from(ARGON2_M_KIB) * u64::from(ARGON2_T)
        );
        let mut five = four.clone();
        five.push(default(9));
        let e = kdf_work(&five).unwrap_err();
        assert!(
            e.contains("slot #5") && e.contains("more than 4 passphrase slots"),
            "{e}"
        );
        // One slot at the caps is the whole budget; a second one exceeds it.
        let at_cap = vec![passphrase_slot(1 << 20, 8, 4, 1)];
        assert!(kdf_work(&at_cap).is_ok());
        let two = vec![
            passphrase_slot(1 << 20, 8, 4, 1),
            passphrase_slot(1 << 20, 1, 4, 2),
        ];
        let e = kdf_work(&two).unwrap_err();
        assert!(e.contains("slot #2") && e.contains("budget"), "{e}");
        let hostile = vec![passphrase_slot(4 << 20, 16, 4, 1)];
        let e = kdf_work(&hostile).unwrap_err();
        assert!(e.contains("slot #1") && e.contains("exceed limits"), "{e}");
    }

    #[test]
    fn a_hostile_slot_is_refused_before_any_derivation() {
        let keys = Keys {
            key_files: vec![],
            passphrases: vec![Passphrase::new("pw", "t").unwrap()],
            ..Keys::default()
        };
        let slots = vec![
            passphrase_slot(1 << 20, 8, 4, 1),
            passphrase_slot(1 << 20, 8, 4, 2),
        ];
        let t0 = std::time::Instant::now();
        let e = DataKey::unwrap("b", &slots, &keys).unwrap_err().to_string();
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            t0.elapsed()
        );
        assert!(e.contains("slot #2") && e.contains("budget"), "{e}");
        // Several passphrases multiply the work: checked too.
        let keys = Keys {
            key_files: vec![],
            passphrases: (0..3)
                .map(|_| Passphrase::new("pw", "t").unwrap())
                .collect(),
            ..Keys::default()
        };
        let slots = vec![passphrase_slot(1 << 20, 4, 4, 1)];
        let e = DataKey::unwrap("b", &slots, &keys).unwrap_err().to_string();
        assert!(e.contains("3 passphrases") && e.contains("budget"), "{e}");
    }

    #[test]
    fn passphrase_slots_with_ferrys_defaults_open_and_more_than_four_are_refused() {
        let bdk = DataKey::generate();
        let keys = Keys {
            key_files: vec![],
            passphrases: vec![
                Passphrase::new("one", "t").unwrap(),
                Passphrase::new("two", "t").unwrap(),
            ],
            ..Keys::default()
        };
        let slots = bdk.wrap("b1", &keys).unwrap();
        let only_two = Keys {
            key_files: vec![],
            passphrases: vec![Passphrase::new("two", "t").unwrap()],
            ..Keys::default()
        };
        let back = DataKey::unwrap("b1", &slots, &only_two).unwrap();
        assert_eq!(&back.0[..], &bdk.0[..]);
        let five = Keys {
            key_files: vec![],
            passphrases: (0..5).map(|_| Passphrase::new("x", "t").unwrap()).collect(),
            ..Keys::default()
        };
        assert!(matches!(bdk.wrap("b1", &five), Err(Error::Usage(_))));
    }

    #[test]
    fn mac_detects_any_change() {
        let bdk = DataKey::from_bytes([9; 32]);
        let mac = bdk.manifest_mac("b", b"{\"a\":1}");
        assert!(bdk.verify_manifest_mac("b", b"{\"a\":1}", &mac));
        assert!(!bdk.verify_manifest_mac("b", b"{\"a\":2}", &mac));
        assert!(!bdk.verify_manifest_mac("c", b"{\"a\":1}", &mac));
    }
}
