//! The envelope: a random bundle data key (BDK) wrapped in key slots, and what is derived
//! from it: the file-encryption key, each file's context string, and the manifest MAC.
//!
//! Key-file and passphrase slots are AES-256-GCM wraps of the BDK under a key-encryption
//! key: the key file's key, or an Argon2id hash of a passphrase. An age slot is an age
//! message to one X25519 recipient whose plaintext is the slot's binding (bundle id, kind,
//! key id) followed by the BDK. Each slot names its key id so a wrong key is reported as
//! such, not as corruption.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::keys::{AgeIdentity, AgeRecipient, Keys, Passphrase};
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
/// Key slots a bundle may have (the manifest schema's `maxItems`).
pub const MAX_KEY_SLOTS: usize = 64;
/// An age slot's message, in bytes: one X25519 stanza, the binding and the data key take
/// about 330; anything over this is refused before it is parsed (hex in the manifest: twice).
pub const AGE_SLOT_MAX_BYTES: usize = 1024;
/// How every age message starts (age v1).
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
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
    /// An age X25519 recipient. `key_id` is `a1_…` of the recipient.
    Age {
        key_id: String,
        /// An age v1 message (binary, hex) to that one recipient; its plaintext is
        /// `"ferry keyslot v1\0" ‖ bundle_id ‖ "\0age\0" ‖ key_id ‖ BDK`.
        age_file: String,
    },
}

impl KeySlot {
    /// The slot's kind as the manifest's `type` names it (a test checks they agree).
    pub fn kind(&self) -> &'static str {
        match self {
            KeySlot::KeyFile { .. } => "key-file",
            KeySlot::Passphrase { .. } => "passphrase",
            KeySlot::Age { .. } => "age",
        }
    }

    pub fn key_id(&self) -> &str {
        match self {
            KeySlot::KeyFile { key_id, .. }
            | KeySlot::Passphrase { key_id, .. }
            | KeySlot::Age { key_id, .. } => key_id,
        }
    }

    /// A slot's description as in messages: `slot #2 (passphrase p1_…)`.
    pub fn describe(&self, index: usize) -> String {
        match self {
            KeySlot::KeyFile { key_id, .. } => format!("slot #{} (key file {key_id})", index + 1),
            KeySlot::Passphrase { key_id, .. } => {
                format!("slot #{} (passphrase {key_id})", index + 1)
            }
            KeySlot::Age { key_id, .. } => {
                format!("slot #{} (age recipient {key_id})", index + 1)
            }
        }
    }
}

/// The kind of key slot that opened a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opener {
    KeyFile,
    Passphrase,
    /// An age identity: its recipient is public, so anyone could have made the slot.
    Age,
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

    /// Wraps this key for every key the user gave, in this order: key files, age recipients,
    /// the recipients of age identities, passphrases. A key id already given gets no second
    /// slot; more than [`MAX_KEY_SLOTS`] slots is a usage error. (`rekey` adding slots calls
    /// this with the keys to add.)
    pub fn wrap(&self, bundle_id: &str, keys: &Keys) -> Result<Vec<KeySlot>> {
        if keys.passphrases.len() > MAX_PASSPHRASE_SLOTS {
            return Err(Error::Usage(format!(
                "{} passphrases given; a bundle has at most {MAX_PASSPHRASE_SLOTS} passphrase slots \
                 (readers refuse more), add key files instead",
                keys.passphrases.len()
            )));
        }
        let mut slots: Vec<KeySlot> = Vec::new();
        let has = |slots: &[KeySlot], id: &str| slots.iter().any(|s| s.key_id() == id);
        for k in &keys.key_files {
            // The same key given twice gets one slot (key ids are unique in a manifest).
            if has(&slots, k.id()) {
                continue;
            }
            let (nonce, wrapped) = seal(k.bytes(), &self.0, &aad(bundle_id, "key-file", k.id()))?;
            slots.push(KeySlot::KeyFile {
                key_id: k.id().to_string(),
                nonce,
                wrapped,
            });
        }
        // Recipients, then the recipients of the identities given (as a key file both
        // opens a bundle and gets a slot in a new one).
        for r in keys
            .recipients
            .iter()
            .chain(keys.identities.iter().map(AgeIdentity::recipient))
        {
            if has(&slots, r.id()) {
                continue;
            }
            slots.push(self.wrap_age(bundle_id, r)?);
        }
        if slots.len() + keys.passphrases.len() > MAX_KEY_SLOTS {
            return Err(Error::Usage(format!(
                "{} key slots asked for; a bundle has at most {MAX_KEY_SLOTS} (readers refuse more)",
                slots.len() + keys.passphrases.len()
            )));
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

    /// An age slot for `r`: an age message to it alone, carrying the binding and the BDK.
    pub fn wrap_age(&self, bundle_id: &str, r: &AgeRecipient) -> Result<KeySlot> {
        let mut plain = Zeroizing::new(aad(bundle_id, "age", r.id()));
        plain.extend_from_slice(&self.0[..]);
        let msg = age::encrypt(r.as_age(), &plain)
            .map_err(|e| Error::Other(format!("age key wrap failed: {e}")))?;
        if msg.len() > AGE_SLOT_MAX_BYTES {
            return Err(Error::Other(format!(
                "age key wrap made {} bytes, more than the {AGE_SLOT_MAX_BYTES} a reader accepts",
                msg.len()
            )));
        }
        Ok(KeySlot::Age {
            key_id: r.id().to_string(),
            age_file: hex::encode(msg),
        })
    }

    /// Opens the first slot one of the given keys fits. Errors name the key ids involved.
    pub fn unwrap(bundle_id: &str, slots: &[KeySlot], keys: &Keys) -> Result<DataKey> {
        Self::open(bundle_id, slots, keys).map(|(k, _)| k)
    }

    /// [`DataKey::unwrap`], saying which kind of slot opened: what the MAC then proves about
    /// the sender depends on it (an age recipient is public; a key file or passphrase is a
    /// secret the sender held).
    pub fn open(bundle_id: &str, slots: &[KeySlot], keys: &Keys) -> Result<(DataKey, Opener)> {
        let accepts: Vec<String> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| s.describe(i))
            .collect();
        let accepts = accepts.join(", ");
        if keys.is_empty() {
            return Err(Error::Key(format!(
                "this bundle is encrypted and no key was given: pass --key-file PATH (or set FERRY_KEY_FILE), \
                 --identity FILE (or set FERRY_IDENTITY) or --passphrase-env VAR; the bundle accepts {accepts}"
            )));
        }
        if !keys.can_open() {
            return Err(Error::Key(format!(
                "this bundle is encrypted and only recipients (--recipient, --recipients-file) were given: \
                 a recipient encrypts, it opens nothing; pass the key file, identity or passphrase that \
                 opens it (--key-file, --identity, --passphrase-env); the bundle accepts {accepts}"
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
                        Some(bdk) => return Ok((DataKey(bdk), Opener::KeyFile)),
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
        for id in &keys.identities {
            let found = slots
                .iter()
                .enumerate()
                .find(|(_, s)| matches!(s, KeySlot::Age { key_id, .. } if key_id == id.id()));
            match found {
                Some((i, s @ KeySlot::Age { key_id, age_file })) => {
                    match open_age(id, bundle_id, key_id, age_file) {
                        Ok(bdk) => return Ok((DataKey(bdk), Opener::Age)),
                        Err(why) => failures.push(format!(
                            "{} matches identity {} (from {}) but does not open: {why}",
                            s.describe(i),
                            id.id(),
                            id.origin
                        )),
                    }
                }
                _ => failures.push(format!(
                    "no key slot for identity {} (from {})",
                    id.id(),
                    id.origin
                )),
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
                        Some(bdk) => return Ok((DataKey(bdk), Opener::Passphrase)),
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

/// Checks an age slot's content before any work: hex, at most [`AGE_SLOT_MAX_BYTES`], an
/// age v1 message. Returns the message's bytes.
pub fn check_age_slot(age_file: &str) -> std::result::Result<Vec<u8>, String> {
    if age_file.len() > 2 * AGE_SLOT_MAX_BYTES {
        return Err(format!(
            "age slot of {} hex digits, more than the {} an age slot has; refused unread",
            age_file.len(),
            2 * AGE_SLOT_MAX_BYTES
        ));
    }
    let bytes = hex::decode(age_file).map_err(|_| "age slot is not hex".to_string())?;
    if !bytes.starts_with(AGE_MAGIC) {
        return Err("age slot does not hold an age v1 message".into());
    }
    Ok(bytes)
}

/// Opens an age slot with `id`: the message must decrypt with it and carry this bundle's
/// binding. The reason it does not is returned for the message.
fn open_age(
    id: &AgeIdentity,
    bundle_id: &str,
    key_id: &str,
    age_file: &str,
) -> std::result::Result<Zeroizing<[u8; 32]>, String> {
    use std::io::Read;
    let msg = check_age_slot(age_file)?;
    let dec = age::Decryptor::new_buffered(&msg[..])
        .map_err(|e| format!("the slot is damaged ({})", age_error(&e)))?;
    if dec.is_scrypt() {
        return Err("the slot is an age passphrase message, not one to a recipient".into());
    }
    let mut reader = dec
        .decrypt(std::iter::once(id.as_age() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => {
                "the slot was not made for this identity (its key id was edited, or it is damaged)"
                    .to_string()
            }
            e => format!("the slot is damaged ({})", age_error(&e)),
        })?;
    let want = aad(bundle_id, "age", key_id);
    let mut plain = Zeroizing::new(Vec::new());
    (&mut reader)
        .take((want.len() + 33) as u64)
        .read_to_end(&mut plain)
        .map_err(|_| "the slot is damaged (its payload fails authentication)".to_string())?;
    if plain.len() != want.len() + 32 || !plain.starts_with(&want) {
        return Err(
            "the slot was made for another bundle or key id (copied from elsewhere): refused"
                .into(),
        );
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&plain[want.len()..]);
    Ok(out)
}

/// Words for an age error (its own Display goes through a localiser).
fn age_error(e: &age::DecryptError) -> &'static str {
    match e {
        age::DecryptError::DecryptionFailed => "decryption failed",
        age::DecryptError::ExcessiveWork { .. } => "excessive work factor",
        age::DecryptError::InvalidHeader => "invalid age header",
        age::DecryptError::InvalidMac => "age header MAC mismatch",
        age::DecryptError::Io(_) => "truncated age message",
        age::DecryptError::KeyDecryptionFailed => "the wrapped key does not decrypt",
        age::DecryptError::NoMatchingKeys => "no matching key",
        age::DecryptError::UnknownFormat => "unknown age format",
        _ => "age refused it",
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
        .encrypt(&Nonce::from(nonce), Payload { msg: &bdk[..], aad })
        .map_err(|_| Error::Other("key wrap failed".into()))?;
    Ok((hex::encode(nonce), hex::encode(ct)))
}

fn open(
    kek: &[u8; 32],
    nonce_hex: &str,
    wrapped_hex: &str,
    aad: &[u8],
) -> Option<Zeroizing<[u8; 32]>> {
    let nonce: [u8; 12] = hex::decode(nonce_hex).ok()?.try_into().ok()?;
    let ct = hex::decode(wrapped_hex).ok().filter(|c| c.len() == 48)?;
    let cipher = Aes256Gcm::new_from_slice(kek).ok()?;
    let pt = Zeroizing::new(
        cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: &ct, aad })
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
    use crate::crypto::keys::{AgeIdentity, AgeRecipient, KeyFileKey, key_id};

    fn keys_with_file(k: [u8; 32]) -> Keys {
        Keys {
            key_files: vec![KeyFileKey::from_bytes(k, "test")],
            passphrases: vec![],
            ..Default::default()
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
            ..Default::default()
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
            ..Default::default()
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
            ..Default::default()
        };
        let slots = bdk.wrap("b1", &keys).unwrap();
        let only_two = Keys {
            key_files: vec![],
            passphrases: vec![Passphrase::new("two", "t").unwrap()],
            ..Default::default()
        };
        let back = DataKey::unwrap("b1", &slots, &only_two).unwrap();
        assert_eq!(&back.0[..], &bdk.0[..]);
        let five = Keys {
            key_files: vec![],
            passphrases: (0..5).map(|_| Passphrase::new("x", "t").unwrap()).collect(),
            ..Default::default()
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

    fn age_pair() -> (AgeIdentity, AgeRecipient) {
        use age::secrecy::ExposeSecret;
        let id = age::x25519::Identity::generate();
        let ids = AgeIdentity::parse_file(id.to_string().expose_secret(), "id.txt").unwrap();
        let r = AgeRecipient::parse(&id.to_public().to_string(), "t").unwrap();
        (ids.into_iter().next().unwrap(), r)
    }

    fn with_identity(id: AgeIdentity) -> Keys {
        Keys {
            identities: vec![id],
            ..Default::default()
        }
    }

    /// `kind` names each slot as the manifest's `type` does, and `open` says which kind of
    /// slot opened (what "authenticated" is decided by).
    #[test]
    fn slot_kinds_match_the_manifest_and_open_says_which_opened() {
        let (id, r) = age_pair();
        let bdk = DataKey::generate();
        let keys = Keys {
            key_files: vec![KeyFileKey::from_bytes([1; 32], "t")],
            passphrases: vec![Passphrase::new("pw", "t").unwrap()],
            recipients: vec![r],
            ..Default::default()
        };
        let slots = bdk.wrap("b1", &keys).unwrap();
        assert_eq!(slots.len(), 3);
        for s in &slots {
            let v = serde_json::to_value(s).unwrap();
            assert_eq!(v["type"], s.kind(), "{v}");
        }
        let (_, by) = DataKey::open("b1", &slots, &keys_with_file([1; 32])).unwrap();
        assert_eq!(by, Opener::KeyFile);
        let (_, by) = DataKey::open("b1", &slots, &with_identity(id)).unwrap();
        assert_eq!(by, Opener::Age);
        let pw = Keys {
            passphrases: vec![Passphrase::new("pw", "t").unwrap()],
            ..Default::default()
        };
        let (_, by) = DataKey::open("b1", &slots, &pw).unwrap();
        assert_eq!(by, Opener::Passphrase);
    }

    #[test]
    fn age_slots_open_with_the_identity_only() {
        let (id, r) = age_pair();
        let (other, _) = age_pair();
        let bdk = DataKey::generate();
        let sender = Keys {
            recipients: vec![r.clone()],
            ..Default::default()
        };
        let slots = bdk.wrap("b1", &sender).unwrap();
        assert_eq!(slots.len(), 1);
        assert!(matches!(&slots[0], KeySlot::Age { key_id, .. } if key_id == r.id()));
        // the sender's keys open nothing
        let e = DataKey::unwrap("b1", &slots, &sender).unwrap_err();
        assert!(matches!(e, Error::Key(_)));
        assert!(e.to_string().contains("only recipients"), "{e}");
        let other_id = other.id().to_string();
        let back = DataKey::unwrap("b1", &slots, &with_identity(id)).unwrap();
        assert_eq!(&back.0[..], &bdk.0[..]);
        // a wrong identity is named, and so is what the bundle accepts
        let e = DataKey::unwrap("b1", &slots, &with_identity(other))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(
                "no key slot for identity {other_id} (from id.txt)"
            )) && e.contains(&format!("slot #1 (age recipient {})", r.id())),
            "{e}"
        );
    }

    #[test]
    fn an_age_slot_is_bound_to_its_bundle_and_key_id() {
        let (id, r) = age_pair();
        let (id2, r2) = age_pair();
        let bdk = DataKey::generate();
        let keys = Keys {
            recipients: vec![r.clone(), r2.clone()],
            ..Default::default()
        };
        let slots = bdk.wrap("b1", &keys).unwrap();
        // copied into another bundle: refused
        let e = DataKey::unwrap("b2", &slots, &with_identity(id))
            .unwrap_err()
            .to_string();
        assert!(e.contains("another bundle"), "{e}");
        // slot #1's content under slot #2's key id: id2 does not open it
        let KeySlot::Age { age_file, .. } = &slots[0] else {
            panic!()
        };
        let swapped = vec![KeySlot::Age {
            key_id: r2.id().to_string(),
            age_file: age_file.clone(),
        }];
        let e = DataKey::unwrap("b1", &swapped, &with_identity(id2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not made for this identity"), "{e}");
    }

    #[test]
    fn identities_also_get_slots_and_duplicates_one_slot() {
        let (id, r) = age_pair();
        let bdk = DataKey::generate();
        let keys = Keys {
            key_files: vec![
                KeyFileKey::from_bytes([3; 32], "k"),
                KeyFileKey::from_bytes([3; 32], "k again"),
            ],
            recipients: vec![r.clone(), r.clone()],
            identities: vec![id],
            ..Default::default()
        };
        let slots = bdk.wrap("b1", &keys).unwrap();
        let ids: Vec<&str> = slots.iter().map(KeySlot::key_id).collect();
        assert_eq!(ids, [key_id(&[3; 32]).as_str(), r.id()]);
        // either key opens it
        assert!(DataKey::unwrap("b1", &slots, &keys_with_file([3; 32])).is_ok());
        let many = Keys {
            recipients: (0..MAX_KEY_SLOTS + 1).map(|_| age_pair().1).collect(),
            ..Default::default()
        };
        assert!(matches!(bdk.wrap("b1", &many), Err(Error::Usage(_))));
    }

    #[test]
    fn hostile_age_slots_are_refused_without_panic() {
        assert!(
            check_age_slot(&"ab".repeat(AGE_SLOT_MAX_BYTES + 1))
                .unwrap_err()
                .contains("refused unread")
        );
        assert!(check_age_slot("zz").unwrap_err().contains("not hex"));
        assert!(
            check_age_slot(&hex::encode(b"garbage"))
                .unwrap_err()
                .contains("age v1")
        );
        let (id, r) = age_pair();
        let bdk = DataKey::generate();
        let KeySlot::Age { age_file, key_id } = bdk.wrap_age("b1", &r).unwrap() else {
            panic!()
        };
        let real = hex::decode(&age_file).unwrap();
        let keys = with_identity(id);
        let mut cases: Vec<Vec<u8>> = vec![
            b"age-encryption.org/v1\n".to_vec(),
            b"age-encryption.org/v1\n-> X25519 !!!\n\n--- x\n".to_vec(),
            real[..real.len() - 1].to_vec(),
            real[..real.len() / 2].to_vec(),
        ];
        // every byte flipped in turn
        for i in AGE_MAGIC.len()..real.len() {
            let mut m = real.clone();
            m[i] ^= 0x41;
            cases.push(m);
        }
        for m in cases {
            let slots = vec![KeySlot::Age {
                key_id: key_id.clone(),
                age_file: hex::encode(&m),
            }];
            let e = DataKey::unwrap("b1", &slots, &keys).unwrap_err();
            assert!(matches!(e, Error::Key(_)), "{e}");
            assert!(e.to_string().contains("does not open"), "{e}");
        }
        // the undamaged one opens
        let slots = vec![KeySlot::Age { key_id, age_file }];
        assert!(DataKey::unwrap("b1", &slots, &keys).is_ok());
    }
}
