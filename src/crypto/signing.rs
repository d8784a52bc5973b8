//! Signed manifests, minisign-compatible (docs/FORMAT.md, "Signature"), and the manifest
//! fingerprint read over a phone.
//!
//! A signing key is an unencrypted minisign Ed25519 secret key (`ferry keygen --signing`,
//! or `minisign -G -W`): exports run in batch and take no password. `export --sign-key`
//! writes `manifest.json.minisig`, a prehashed minisign signature of the exact bytes of
//! manifest.json whose trusted comment names the bundle ([`trusted_comment`]), so
//! `minisign -Vm manifest.json -P RW…` checks it on a node that has no ferry and no key.
//!
//! A reader given a trust list (`--trust RW…`, `--trust-file F`) accepts a bundle only when
//! its manifest carries a valid signature by one of those keys ([`check`]), before any key
//! slot is opened or anything written. The signature file is hostile input: it is capped
//! ([`SIG_CAP`]) and its shape checked line by line before the minisign crate sees it.

use std::path::Path;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::bundle::Manifest;
use crate::{Error, Result};

/// The signature file beside the manifest.
pub const SIGNATURE_FILE: &str = "manifest.json.minisig";
/// The signature of a manifest a rekey is about to commit, written before the commit and
/// removed after the signature is in place: a rekey killed between its commit and its
/// signature leaves the new manifest signed here (docs/FORMAT.md, "Rekey").
pub const PENDING_SIGNATURE_FILE: &str = "manifest.json.minisig.next";
/// A minisign signature is four short lines (about 300 bytes); anything over this is refused
/// unread.
pub const SIG_CAP: u64 = 4096;
/// A key file (secret or public) is two lines.
const KEY_FILE_CAP: u64 = 4096;
/// A trust file lists keys one a line, with comments.
const TRUST_FILE_CAP: u64 = 64 * 1024;
/// Longest trusted comment accepted (minisign's own limit is 8 KiB; ferry's is one line).
const TRUSTED_COMMENT_MAX: usize = 1024;

/// Base64 of a public key (2 + 8 + 32 bytes), of a secret key (158 bytes), of the signature
/// line (2 + 8 + 64 bytes) and of the global signature (64 bytes).
const PK_B64_LEN: usize = 56;
const SK_B64_LEN: usize = 212;
const SIG_B64_LEN: usize = 100;
const GLOBAL_SIG_B64_LEN: usize = 88;
/// The first 8 base64 characters of a secret key: `Ed`, the KDF (`\0\0`: none, `Sc`:
/// scrypt), `B2` (the checksum).
const SK_UNENCRYPTED_PREFIX: &str = "RWQAAEIy";
const SK_SCRYPT_PREFIX: &str = "RWRTY0Iy";

/// A minisign key id as minisign prints it: 16 uppercase hex digits of the little-endian
/// key number.
fn key_id_of(keynum: &[u8]) -> String {
    let mut n = [0u8; 8];
    for (d, s) in n.iter_mut().zip(keynum) {
        *d = *s;
    }
    format!("{:016X}", u64::from_le_bytes(n))
}

fn is_b64(s: &str, len: usize, pad: usize) -> bool {
    s.len() == len
        && s.bytes().enumerate().all(|(i, b)| {
            if i >= len - pad {
                b == b'='
            } else {
                b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
            }
        })
}

fn minisign_err(e: minisign::PError) -> String {
    e.to_string()
}

/// A signing key: an unencrypted minisign Ed25519 secret key and its public key.
pub struct SigningKey {
    sk: minisign::SecretKey,
    pk: minisign::PublicKey,
    id: String,
    /// Where it came from, for messages.
    pub origin: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.id)
    }
}

impl SigningKey {
    /// The key id minisign prints (16 hex digits).
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The public key as minisign's `-P` takes it (`RW…`, 56 characters).
    pub fn public_key(&self) -> String {
        self.pk.to_base64()
    }

    /// The public key file (`FILE.pub`), as `minisign -G` writes it.
    pub fn public_key_file(&self) -> String {
        format!(
            "untrusted comment: minisign public key {}\n{}\n",
            self.id,
            self.public_key()
        )
    }

    /// Parses a secret key file's text (`untrusted comment: …` then the key line).
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .collect();
        let line = match lines.as_slice() {
            [one] => *one,
            _ => {
                return Err(Error::Key(format!(
                    "signing key {origin}: not a minisign secret key file (expected an `untrusted comment:` \
                     line and one key line); make one with `ferry keygen --signing FILE` or `minisign -G -W`"
                )));
            }
        };
        if line.starts_with(SK_SCRYPT_PREFIX) {
            return Err(Error::Key(format!(
                "signing key {origin} is encrypted with a password: ferry signs in batch and asks for none; \
                 make an unencrypted key with `ferry keygen --signing FILE` or `minisign -G -W`, and keep it \
                 where only the exporting account can read it"
            )));
        }
        if !line.starts_with(SK_UNENCRYPTED_PREFIX) || !is_b64(line, SK_B64_LEN, 1) {
            let what = if is_b64(line, PK_B64_LEN, 0) {
                " (this looks like a public key: --sign-key takes the secret key, FILE not FILE.pub)"
            } else {
                ""
            };
            return Err(Error::Key(format!(
                "signing key {origin}: not an Ed25519 minisign secret key{what}"
            )));
        }
        use base64::Engine as _;
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(line)
                .map_err(|_| {
                    Error::Key(format!(
                        "signing key {origin}: not valid base64; was it copied whole?"
                    ))
                })?,
        );
        // minisign's checksum (BLAKE2b of the key) is checked when present; `minisign -G -W`
        // leaves it zero, and then the test signature below is the check.
        let sk = if raw.get(126..158).is_some_and(|c| c.iter().all(|b| *b == 0)) {
            minisign::SecretKey::from_bytes(&raw)
        } else {
            let boxed = Zeroizing::new(format!("untrusted comment: ferry\n{line}\n"));
            minisign::SecretKeyBox::from_string(&boxed)
                .and_then(minisign::SecretKeyBox::into_unencrypted_secret_key)
        }
        .map_err(|e| {
            Error::Key(format!(
                "signing key {origin}: damaged ({}); was it copied whole?",
                minisign_err(e)
            ))
        })?;
        let pk = minisign::PublicKey::from_secret_key(&sk)
            .map_err(|e| Error::Key(format!("signing key {origin}: {}", minisign_err(e))))?;
        let key = SigningKey {
            id: key_id_of(sk.keynum()),
            sk,
            pk,
            origin: origin.to_string(),
        };
        // Its public half must verify what its secret half signs.
        minisign::sign(Some(&key.pk), &key.sk, &b"ferry"[..], None, None).map_err(|_| {
            Error::Key(format!(
                "signing key {origin}: damaged (its public key does not match its secret key); was it copied whole?"
            ))
        })?;
        Ok(key)
    }

    /// Reads a secret key file. The warnings (a key others can read) are for the user.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>)> {
        let (text, warnings) =
            crate::crypto::keys::read_secret_file(path, "signing key", KEY_FILE_CAP)?;
        Ok((Self::parse(&text, &path.display().to_string())?, warnings))
    }

    /// Makes a new key pair: the secret key in `path` (0600, created: never through a
    /// symlink, never over a file) and the public key in `path.pub`.
    pub fn generate(path: &Path) -> Result<Self> {
        let kp = minisign::KeyPair::generate_unencrypted_keypair()
            .map_err(|e| Error::Key(format!("cannot make a signing key: {}", minisign_err(e))))?;
        let key = SigningKey {
            id: key_id_of(kp.sk.keynum()),
            sk: kp.sk,
            pk: kp.pk,
            origin: path.display().to_string(),
        };
        let mut pub_path = path.as_os_str().to_owned();
        pub_path.push(".pub");
        let pub_path = std::path::PathBuf::from(pub_path);
        let boxed = key
            .sk
            .to_box(Some(&format!(
                "minisign secret key {} (unencrypted, made by ferry keygen --signing): keep it secret",
                key.id
            )))
            .map_err(|e| Error::Key(format!("cannot encode the signing key: {}", minisign_err(e))))?;
        let text = Zeroizing::new(boxed.into_string());
        crate::crypto::keys::write_new_file(path, &text, 0o600)?;
        if let Err(e) =
            crate::crypto::keys::write_new_file(&pub_path, &key.public_key_file(), 0o644)
        {
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Ok(key)
    }
}

/// The trusted comment of a bundle's signature: what the signature vouches for besides the
/// manifest's bytes, readable by `minisign -V` alone.
pub fn trusted_comment(manifest: &Manifest) -> String {
    format!(
        "ferry bundle {} source {} chain {} sequence {}",
        manifest.bundle_id,
        manifest.source_id,
        manifest.chain_id.as_deref().unwrap_or("-"),
        manifest.sequence
    )
}

/// The bytes of `manifest.json.minisig` for `manifest_bytes` (the exact bytes of
/// manifest.json, which `manifest` was parsed from or serialised to): a prehashed minisign
/// signature whose trusted comment is [`trusted_comment`]. Written before the manifest
/// (export) or before the manifest is replaced (rekey).
pub fn sign_manifest(
    key: &SigningKey,
    manifest: &Manifest,
    manifest_bytes: &[u8],
) -> Result<Vec<u8>> {
    let sig = minisign::sign(
        Some(&key.pk),
        &key.sk,
        std::io::Cursor::new(manifest_bytes),
        Some(&trusted_comment(manifest)),
        Some(&format!(
            "signature from ferry, key id {} (check: minisign -Vm manifest.json -P <public key>)",
            key.id
        )),
    )
    .map_err(|e| {
        Error::Key(format!(
            "cannot sign with {}: {}",
            key.origin,
            minisign_err(e)
        ))
    })?;
    Ok(sig.to_bytes())
}

/// One public key a reader trusts.
#[derive(Clone)]
pub struct TrustedKey {
    pk: minisign::PublicKey,
    id: String,
}

impl TrustedKey {
    /// Parses a public key as minisign prints it (`RW…`, 56 characters).
    pub fn parse(s: &str, origin: &str) -> Result<Self> {
        let s = s.trim();
        let bad = || {
            Error::Key(format!(
                "{origin}: not a minisign public key (expected `RW…`, 56 characters, as `ferry keygen \
                 --signing` and `minisign -G` print it{})",
                if origin == "--trust" {
                    "; for a file of keys use --trust-file"
                } else {
                    ""
                }
            ))
        };
        if !is_b64(s, PK_B64_LEN, 0) || !s.starts_with("RW") {
            return Err(bad());
        }
        let pk = minisign::PublicKey::from_base64(s).map_err(|_| bad())?;
        if pk.to_bytes().get(..2) != Some(b"Ed".as_slice()) {
            return Err(bad());
        }
        Ok(TrustedKey {
            id: key_id_of(pk.keynum()),
            pk,
        })
    }

    pub fn key_id(&self) -> &str {
        &self.id
    }
}

/// The keys a reader trusts to sign manifests (`--trust`, `--trust-file`). Empty: no
/// signature is required (one present is reported, not checked).
#[derive(Clone, Default)]
pub struct TrustList {
    keys: Vec<TrustedKey>,
}

impl TrustList {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn add(&mut self, key: TrustedKey) {
        if !self.keys.iter().any(|k| k.pk == key.pk) {
            self.keys.push(key);
        }
    }

    /// `--trust RW…`.
    pub fn add_key(&mut self, s: &str) -> Result<()> {
        self.add(TrustedKey::parse(s, "--trust")?);
        Ok(())
    }

    /// `--trust-file FILE`: a minisign `.pub` file, or keys one a line; blank lines, `#`
    /// comments and `untrusted comment:` lines are skipped, and a key line may end in a
    /// comment after a space.
    pub fn add_file(&mut self, path: &Path) -> Result<()> {
        let origin = path.display().to_string();
        let text = crate::crypto::keys::read_text_capped(path, TRUST_FILE_CAP)
            .map_err(|e| Error::Key(format!("cannot read trust file {origin}: {e}")))?
            .ok_or_else(|| {
                Error::Key(format!(
                    "trust file {origin}: more than the {TRUST_FILE_CAP} bytes a list of public keys needs"
                ))
            })?;
        self.add_text(&text, &origin)
    }

    fn add_text(&mut self, text: &str, origin: &str) -> Result<()> {
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("untrusted comment:") {
                continue;
            }
            let token = line.split_whitespace().next().unwrap_or("");
            self.add(TrustedKey::parse(
                token,
                &format!("trust file {origin} line {}", i + 1),
            )?);
            n += 1;
        }
        if n == 0 {
            return Err(Error::Key(format!(
                "trust file {origin}: no public key in it (expected RW… lines, or a minisign .pub file)"
            )));
        }
        Ok(())
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }
}

/// What a bundle holds at `manifest.json.minisig`, read with the cap.
#[derive(Clone, Debug)]
pub enum SigFile {
    Absent,
    /// Over [`SIG_CAP`] bytes: never read.
    Oversize(u64),
    /// A directory, a symlink, …: never read.
    NotAFile(String),
    Present(Vec<u8>),
}

/// Joins a signature refusal's reason to the trust list's rule (see [`refusal_reason`]).
const TRUST_RULE: &str = "; the trust list (--trust, --trust-file)";

/// The reason of a signature refusal ([`check`]'s `Error::Key`), without the reader's rule
/// and "refused, nothing written": for a command that goes on and warns instead.
pub fn refusal_reason(message: &str) -> &str {
    message
        .split(TRUST_RULE)
        .next()
        .unwrap_or(message)
        .trim_end_matches('.')
}

/// What the signature says, for reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureCheck {
    /// The key id of the signer: checked against the trust list when `checked`, else only
    /// what the signature file claims.
    pub signed_by: Option<String>,
    /// Whether the signature was verified with a trusted key.
    pub checked: bool,
    /// Why a signature file present was not understood (reported as a warning when no
    /// trust list asked for it).
    pub note: Option<String>,
}

/// A signature file whose shape was checked: safe to hand to the minisign crate.
struct ParsedSig {
    sig: minisign::SignatureBox,
    key_id: String,
    comment: String,
}

fn parse_sig(bytes: &[u8]) -> std::result::Result<ParsedSig, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let lines: Vec<&str> = text.lines().collect();
    let lines = match lines.as_slice() {
        [a, b, c, d, rest @ ..] if rest.iter().all(|l| l.trim().is_empty()) => [*a, *b, *c, *d],
        _ => return Err("not the four lines of a minisign signature".into()),
    };
    let [untrusted, sig, trusted, global] = lines.map(|l| l.trim_end_matches('\r'));
    if !untrusted.starts_with("untrusted comment: ") {
        return Err("its first line is not an `untrusted comment:`".into());
    }
    if !is_b64(sig, SIG_B64_LEN, 1) || !sig.starts_with("RU") {
        return Err("its second line is not a prehashed Ed25519 minisign signature".into());
    }
    let Some(comment) = trusted.strip_prefix("trusted comment: ") else {
        return Err("its third line is not a `trusted comment:`".into());
    };
    if comment.len() > TRUSTED_COMMENT_MAX {
        return Err("its trusted comment is too long".into());
    }
    if !is_b64(global, GLOBAL_SIG_B64_LEN, 2) {
        return Err("its fourth line is not a global signature".into());
    }
    let sig =
        minisign::SignatureBox::from_string(&format!("{untrusted}\n{sig}\n{trusted}\n{global}\n"))
            .map_err(minisign_err)?;
    if !sig.is_prehashed() {
        return Err("a legacy (not prehashed) signature".into());
    }
    Ok(ParsedSig {
        key_id: key_id_of(sig.keynum()),
        comment: comment.trim().to_string(),
        sig,
    })
}

/// The bundle id a ferry trusted comment names (`None`: not a ferry comment).
fn comment_bundle(comment: &str) -> Option<&str> {
    let mut w = comment.split_whitespace();
    (w.next() == Some("ferry") && w.next() == Some("bundle"))
        .then(|| w.next())
        .flatten()
}

/// Checks the signature of a bundle's manifest against `trust` (`bundle` names it in
/// messages). With an empty trust list nothing is required: a signature present is
/// reported with `checked: false`. With keys, the manifest must carry a valid signature by
/// one of them whose trusted comment (when it is ferry's) names this manifest's bundle,
/// source, chain and sequence; else [`Error::Key`] (exit 77) saying which of: unsigned,
/// signed by another key, damaged or changed after signing, for another file.
pub fn check(
    sig: &SigFile,
    manifest: &Manifest,
    manifest_bytes: &[u8],
    trust: &TrustList,
    bundle: &str,
) -> Result<SignatureCheck> {
    let trusted = || {
        let ids = trust.ids();
        if ids.is_empty() {
            "none".to_string()
        } else {
            ids.join(", ")
        }
    };
    let refuse = |what: String| {
        let list = if what.contains("(trusted: ") {
            String::new()
        } else {
            format!(" (trusted: {})", trusted())
        };
        Err(Error::Key(format!(
            "{what}{TRUST_RULE} accepts only a manifest signed by one of its keys{list}. Refused \
             before any key slot was opened: nothing written"
        )))
    };
    let bytes = match sig {
        SigFile::Absent if trust.is_empty() => return Ok(SignatureCheck::default()),
        SigFile::Absent => {
            return refuse(format!(
                "bundle {bundle} is unsigned: it has no {SIGNATURE_FILE} (exported without --sign-key, or the file \
                 was not copied)"
            ));
        }
        SigFile::Oversize(n) => {
            let what = format!(
                "{SIGNATURE_FILE} in {bundle} is {n} bytes, over the {SIG_CAP}-byte cap of a signature file: \
                 refused, never read"
            );
            if trust.is_empty() {
                return Ok(SignatureCheck {
                    note: Some(what),
                    ..Default::default()
                });
            }
            return refuse(what);
        }
        SigFile::NotAFile(kind) => {
            let what = format!(
                "{SIGNATURE_FILE} in {bundle} is {kind}, not a regular file: refused, never read"
            );
            if trust.is_empty() {
                return Ok(SignatureCheck {
                    note: Some(what),
                    ..Default::default()
                });
            }
            return refuse(what);
        }
        SigFile::Present(b) => b,
    };
    let parsed = match parse_sig(bytes) {
        Ok(p) => p,
        Err(why) => {
            let what = format!(
                "the signature does not verify (damaged or the manifest was changed after signing): \
                 {SIGNATURE_FILE} in {bundle} is not a minisign signature ({why})"
            );
            if trust.is_empty() {
                return Ok(SignatureCheck {
                    note: Some(what),
                    ..Default::default()
                });
            }
            return refuse(what);
        }
    };
    if trust.is_empty() {
        return Ok(SignatureCheck {
            signed_by: Some(parsed.key_id),
            checked: false,
            note: None,
        });
    }
    let candidates: Vec<&TrustedKey> = trust
        .keys
        .iter()
        .filter(|k| k.pk.keynum() == parsed.sig.keynum())
        .collect();
    if candidates.is_empty() {
        return refuse(format!(
            "bundle {bundle} is signed by key id {}, not a trusted key (trusted: {})",
            parsed.key_id,
            trusted()
        ));
    }
    let verified = candidates.iter().any(|k| {
        minisign::verify(
            &k.pk,
            &parsed.sig,
            std::io::Cursor::new(manifest_bytes),
            true,
            false,
            false,
        )
        .is_ok()
    });
    let named = comment_bundle(&parsed.comment);
    if !verified {
        // The comment is not authenticated here: it only words the refusal.
        return match named {
            Some(other) if other != manifest.bundle_id => refuse(format!(
                "the signature is for another file: {SIGNATURE_FILE} in {bundle} (key id {}) does not verify \
                 for this manifest (bundle {}), and its trusted comment names bundle {}",
                parsed.key_id,
                manifest.bundle_id,
                crate::report::printable(other)
            )),
            _ => refuse(format!(
                "the signature does not verify (damaged or the manifest was changed after signing): \
                 {SIGNATURE_FILE} in {bundle} claims key id {}, a trusted key, but does not match manifest.json",
                parsed.key_id
            )),
        };
    }
    if named.is_some() && parsed.comment != trusted_comment(manifest) {
        return refuse(format!(
            "the signature is for another file: {SIGNATURE_FILE} in {bundle} is signed by trusted key id {}, \
             but its trusted comment ({}) does not name this manifest ({})",
            parsed.key_id,
            crate::report::printable(&parsed.comment),
            trusted_comment(manifest)
        ));
    }
    Ok(SignatureCheck {
        signed_by: Some(parsed.key_id),
        checked: true,
        note: None,
    })
}

/// Crockford's base32 alphabet (no I, L, O, U).
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The fingerprint of a manifest: the first 100 bits of the SHA-256 of manifest.json's
/// bytes in Crockford base32, five groups of four (`7KQ2-…`), to read over a phone.
pub fn fingerprint(manifest_bytes: &[u8]) -> String {
    let h = Sha256::digest(manifest_bytes);
    let mut bits: u128 = 0;
    for b in &h[..16] {
        bits = (bits << 8) | u128::from(*b);
    }
    let mut out = String::with_capacity(24);
    for i in 0..20u32 {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        let shift = 128 - 5 * (i + 1);
        let idx = usize::try_from((bits >> shift) & 0x1f).unwrap_or(0);
        out.push(char::from(CROCKFORD[idx]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(id: &str) -> Manifest {
        let mut m = crate::bundle::manifest::tests::sample();
        m.bundle_id = id.into();
        m
    }

    fn key() -> SigningKey {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let text = kp.sk.to_box(None).unwrap().into_string();
        SigningKey::parse(&text, "t").unwrap()
    }

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn signs_and_checks_against_a_trust_list() {
        let k = key();
        let m = manifest(A);
        let bytes = m.to_json();
        let sig = sign_manifest(&k, &m, &bytes).unwrap();
        let text = String::from_utf8(sig.clone()).unwrap();
        assert!(
            text.contains(&format!("trusted comment: {}", trusted_comment(&m))),
            "{text}"
        );
        let mut trust = TrustList::default();
        trust.add_key(&k.public_key()).unwrap();
        let ok = check(&SigFile::Present(sig.clone()), &m, &bytes, &trust, "b").unwrap();
        assert_eq!(ok.signed_by.as_deref(), Some(k.key_id()));
        assert!(ok.checked);
        // No trust list: reported, not checked; nothing required.
        let none = TrustList::default();
        let r = check(&SigFile::Present(sig.clone()), &m, &bytes, &none, "b").unwrap();
        assert_eq!(
            (r.signed_by.as_deref(), r.checked),
            (Some(k.key_id()), false)
        );
        assert_eq!(
            check(&SigFile::Absent, &m, &bytes, &none, "b").unwrap(),
            SignatureCheck::default()
        );
        // Unsigned, another key, a changed manifest, a signature of another bundle.
        let e = check(&SigFile::Absent, &m, &bytes, &trust, "b").unwrap_err();
        assert!(matches!(&e, Error::Key(s) if s.contains("unsigned")), "{e}");
        let other = key();
        let mut t2 = TrustList::default();
        t2.add_key(&other.public_key()).unwrap();
        let e = check(&SigFile::Present(sig.clone()), &m, &bytes, &t2, "b").unwrap_err();
        assert!(
            e.to_string().contains(&format!(
                "signed by key id {}, not a trusted key",
                k.key_id()
            )),
            "{e}"
        );
        assert!(e.to_string().contains(other.key_id()), "{e}");
        let mut changed = bytes.clone();
        let at = changed.len() - 3;
        changed[at] ^= 1;
        let e = check(&SigFile::Present(sig.clone()), &m, &changed, &trust, "b").unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
        let m2 = manifest(B);
        let b2 = m2.to_json();
        let e = check(&SigFile::Present(sig.clone()), &m2, &b2, &trust, "b").unwrap_err();
        assert!(
            e.to_string().contains("another file") && e.to_string().contains(A),
            "{e}"
        );
        let e = check(&SigFile::Oversize(5000), &m, &bytes, &trust, "b").unwrap_err();
        assert!(e.to_string().contains("5000 bytes"), "{e}");
    }

    #[test]
    fn hostile_signature_files_never_panic() {
        let k = key();
        let m = manifest(A);
        let bytes = m.to_json();
        let sig = String::from_utf8(sign_manifest(&k, &m, &bytes).unwrap()).unwrap();
        let mut trust = TrustList::default();
        trust.add_key(&k.public_key()).unwrap();
        let lines: Vec<&str> = sig.lines().collect();
        let short_global = format!("{}\n{}\n{}\nAAAA\n", lines[0], lines[1], lines[2]);
        let legacy = format!(
            "{}\nRW{}\n{}\n{}\n",
            lines[0],
            &lines[1][2..],
            lines[2],
            lines[3]
        );
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0xff, 0xfe],
            b"untrusted comment: x\n".to_vec(),
            short_global.into_bytes(),
            legacy.into_bytes(),
            sig.replace("trusted comment: ferry", "trusted comment: FERRY")
                .into_bytes(),
            format!("{sig}extra line\n").into_bytes(),
        ];
        for c in cases {
            let e = check(&SigFile::Present(c.clone()), &m, &bytes, &trust, "b").unwrap_err();
            assert!(matches!(e, Error::Key(_)), "{e}");
            assert!(check(&SigFile::Present(c), &m, &bytes, &TrustList::default(), "b").is_ok());
        }
        // Every single-character change to the signature is refused.
        for i in 0..sig.len() {
            let mut b = sig.clone().into_bytes();
            if b[i] == b'\n' {
                continue;
            }
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            if b == sig.as_bytes() {
                continue;
            }
            let r = check(&SigFile::Present(b), &m, &bytes, &trust, "b");
            // The untrusted comment's text is not signed; everything else is.
            let free = "untrusted comment: ".len()..lines[0].len();
            assert_eq!(r.is_ok(), free.contains(&i), "byte {i}");
        }
    }

    #[test]
    fn keys_parse_strictly() {
        let k = key();
        let pk = k.public_key();
        assert!(TrustedKey::parse(&pk, "t").is_ok());
        assert_eq!(TrustedKey::parse(&pk, "t").unwrap().key_id(), k.key_id());
        for bad in ["", "RW", &pk[..55], &format!("{pk}A"), "/etc/passwd"] {
            assert!(
                matches!(TrustedKey::parse(bad, "t"), Err(Error::Key(_))),
                "{bad}"
            );
        }
        let mut t = TrustList::default();
        t.add_text(
            &format!(
                "# receivers\n\n{}\n{pk}  sender A\n{pk}\n",
                k.public_key_file().lines().next().unwrap()
            ),
            "f",
        )
        .unwrap();
        assert_eq!(t.ids(), vec![k.key_id()]);
        let e = t.add_text("# nothing\n", "f").unwrap_err().to_string();
        assert!(e.contains("no public key"), "{e}");
        let e = t.add_text("RWnope\n", "f").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        // A public key, or an encrypted secret key, given as the signing key.
        let e = SigningKey::parse(&k.public_key_file(), "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("public key"), "{e}");
        let enc = format!(
            "untrusted comment: x\n{SK_SCRYPT_PREFIX}{}\n",
            "A".repeat(204)
        );
        let e = SigningKey::parse(&enc, "f").unwrap_err().to_string();
        assert!(e.contains("encrypted with a password"), "{e}");
    }

    #[test]
    fn keygen_writes_a_private_key_and_its_public_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sign.key");
        let k = SigningKey::generate(&p).unwrap();
        let (back, warnings) = SigningKey::load(&p).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(back.public_key(), k.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut t = TrustList::default();
        t.add_file(&dir.path().join("sign.key.pub")).unwrap();
        assert_eq!(t.ids(), vec![k.key_id()]);
        // Never over an existing file, never through a symlink.
        assert!(matches!(SigningKey::generate(&p), Err(Error::Usage(_))));
        #[cfg(unix)]
        {
            let link = dir.path().join("link.key");
            std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
            assert!(SigningKey::generate(&link).is_err());
            assert!(!dir.path().join("elsewhere").exists());
        }
    }

    #[test]
    fn fingerprints_are_short_and_change_with_the_manifest() {
        let f = fingerprint(b"{}");
        assert_eq!(f.len(), 24);
        assert_eq!(f.split('-').count(), 5);
        assert!(
            f.bytes().all(|b| b == b'-' || CROCKFORD.contains(&b)),
            "{f}"
        );
        assert_eq!(f, fingerprint(b"{}"));
        assert_ne!(f, fingerprint(b"{ }"));
        // The first 100 bits of SHA-256("") = e3b0c442 98fc1c14 9afbf4c8 …
        assert_eq!(fingerprint(b""), "WERC-8GMR-ZGE1-96QV-YK49");
    }
}
