//! The user's keys: key files made by `ferry keygen` and passphrases from the environment.
//!
//! A key file holds one 256-bit key in Bech32 (`FERRYKEY1…`, checksummed, so a mangled copy
//! is detected), with comment lines. Its public key id (`k1_…`) names it in manifests and
//! messages without revealing it.

use std::io::Write;
use std::path::Path;

use bech32::{Bech32, Hrp};
use rand::RngCore;
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use crate::{Error, Result};

const HRP: &str = "ferrykey";
/// A key file is a few lines; anything larger is not one.
const KEY_FILE_CAP: u64 = 4096;

/// A 256-bit key from a key file.
pub struct KeyFileKey {
    key: Zeroizing<[u8; 32]>,
    id: String,
    /// Where it came from, for messages.
    pub origin: String,
}

impl std::fmt::Debug for KeyFileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyFileKey({})", self.id)
    }
}

/// The public id of a raw key: `k1_` and 16 hex digits of a domain-separated hash.
pub fn key_id(key: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"ferry key id v1\0");
    h.update(key);
    format!("k1_{}", &hex::encode(h.finalize())[..16])
}

impl KeyFileKey {
    pub fn from_bytes(key: [u8; 32], origin: impl Into<String>) -> Self {
        let id = key_id(&key);
        KeyFileKey {
            key: Zeroizing::new(key),
            id,
            origin: origin.into(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// The key in its file encoding (uppercase Bech32).
    pub fn encode(&self) -> Zeroizing<String> {
        let hrp = Hrp::parse(HRP).expect("valid hrp");
        let s = bech32::encode::<Bech32>(hrp, &self.key[..]).expect("32 bytes always encode");
        Zeroizing::new(s.to_uppercase())
    }

    /// Parses a key file's text. Returns the key; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let line = match lines.as_slice() {
            [one] => *one,
            [] => {
                return Err(Error::Key(format!(
                    "key file {origin}: no key in it (expected a FERRYKEY1… line)"
                )));
            }
            _ => {
                return Err(Error::Key(format!(
                    "key file {origin}: more than one key line; a key file holds one key"
                )));
            }
        };
        let (hrp, data) = bech32::decode(line).map_err(|e| {
            Error::Key(format!(
                "key file {origin}: not a valid ferry key ({e}); was it copied whole?"
            ))
        })?;
        if hrp.as_str().to_ascii_lowercase() != HRP {
            return Err(Error::Key(format!(
                "key file {origin}: this key has the prefix {:?}, so it is not a ferry key (FERRYKEY1…)",
                hrp.as_str().to_ascii_lowercase()
            )));
        }
        let data = Zeroizing::new(data);
        let key: [u8; 32] = data.as_slice().try_into().map_err(|_| {
            Error::Key(format!(
                "key file {origin}: key is {} bytes, a ferry key is 32",
                data.len()
            ))
        })?;
        Ok(KeyFileKey::from_bytes(key, origin))
    }

    /// Reads a key file. The returned warnings (a key file others can read) are for the user.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>)> {
        let origin = path.display().to_string();
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::Key(format!("cannot read key file {origin}: {e}")))?;
        if meta.len() > KEY_FILE_CAP {
            return Err(Error::Key(format!(
                "key file {origin}: {} bytes, too large to be a key file",
                meta.len()
            )));
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Error::Key(format!("cannot read key file {origin}: {e}")))?,
        );
        let key = Self::parse(&text, &origin)?;
        let mut warnings = Vec::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                warnings.push(format!(
                    "key file {origin} can be read by other users (mode {:o}); run: chmod 600 {origin}",
                    mode & 0o777
                ));
            }
        }
        Ok((key, warnings))
    }

    /// Makes a new random key and writes it to `path` (mode 0600, never overwriting).
    pub fn generate(path: &Path) -> Result<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut key[..]);
        let k = KeyFileKey::from_bytes(*key, path.display().to_string());
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Usage(format!(
                    "{} already exists; ferry keygen never overwrites a key",
                    path.display()
                ))
            } else {
                Error::io(format!("cannot create key file {}", path.display()), e)
            }
        })?;
        let text = Zeroizing::new(format!(
            "# ferry key file: anyone holding it can read bundles made with it. Keep it secret.\n\
             # key id: {}\n{}\n",
            k.id(),
            k.encode().as_str()
        ));
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io(format!("cannot write key file {}", path.display()), e))?;
        Ok(k)
    }
}

/// Longest name `--passphrase-env` takes: longer is more likely a passphrase than a name.
const ENV_NAME_MAX: usize = 64;

/// `[A-Za-z_][A-Za-z0-9_]*`, at most [`ENV_NAME_MAX`] characters: a name a shell can export.
pub fn plausible_env_name(var: &str) -> bool {
    let mut bytes = var.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && var.len() <= ENV_NAME_MAX
}

/// A passphrase, normalised to NFC so the same words typed on two systems open the same slot.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    pub fn new(raw: &str, origin: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(Error::Key(format!("the passphrase in {origin} is empty")));
        }
        Ok(Passphrase(Zeroizing::new(raw.nfc().collect())))
    }

    /// Reads the passphrase from the environment variable `var` (never from argv).
    ///
    /// A value that is not a plausible variable name may be the passphrase itself, given by
    /// mistake: it is refused without being looked up or repeated in the message.
    pub fn from_env(var: &str) -> Result<Self> {
        if !plausible_env_name(var) {
            return Err(Error::Usage(
                "the value given to --passphrase-env is not an environment variable name (not \
                 repeated here, in case it is the passphrase itself); pass the NAME of a variable \
                 that holds the passphrase, e.g. --passphrase-env FERRY_PASSPHRASE"
                    .into(),
            ));
        }
        match std::env::var(var) {
            Ok(v) => Self::new(&v, &format!("${var}")),
            Err(_) => Err(Error::Key(format!(
                "--passphrase-env {var}: the environment variable {var} is not set (or not UTF-8)"
            ))),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The keys a command was given.
#[derive(Default)]
pub struct Keys {
    pub key_files: Vec<KeyFileKey>,
    pub passphrases: Vec<Passphrase>,
    /// `--trust`, `--trust-file`: the keys a manifest must be signed by (none: no signature
    /// required). Not a decryption key: [`Keys::is_empty`] ignores it.
    pub trust: crate::crypto::signing::TrustList,
}

impl Keys {
    /// Whether no decryption key was given (the trust list is not one).
    pub fn is_empty(&self) -> bool {
        self.key_files.is_empty() && self.passphrases.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_text_round_trips_and_detects_damage() {
        let k = KeyFileKey::from_bytes([7u8; 32], "t");
        let text = format!("# comment\n{}\n", k.encode().as_str());
        let back = KeyFileKey::parse(&text, "t").unwrap();
        assert_eq!(back.bytes(), k.bytes());
        assert_eq!(back.id(), k.id());
        // one character changed: the Bech32 checksum catches it
        let enc = k.encode();
        let mut bad: Vec<char> = enc.chars().collect();
        let i = bad.len() - 3;
        bad[i] = if bad[i] == 'Q' { 'P' } else { 'Q' };
        let bad: String = bad.into_iter().collect();
        assert!(matches!(KeyFileKey::parse(&bad, "t"), Err(Error::Key(_))));
        // 31 bytes
        let hrp = Hrp::parse(HRP).unwrap();
        let short = bech32::encode::<Bech32>(hrp, &[1u8; 31]).unwrap();
        let e = KeyFileKey::parse(&short, "t").unwrap_err().to_string();
        assert!(e.contains("31 bytes"), "{e}");
        // wrong hrp
        let other = bech32::encode::<Bech32>(Hrp::parse("age").unwrap(), &[1u8; 32]).unwrap();
        assert!(
            KeyFileKey::parse(&other, "t")
                .unwrap_err()
                .to_string()
                .contains("not a ferry key")
        );
        // CRLF line endings are fine
        assert!(KeyFileKey::parse(&format!("{}\r\n", enc.as_str()), "t").is_ok());
    }

    #[test]
    fn passphrases_are_nfc_normalised() {
        let nfd = Passphrase::new("cafe\u{301}", "t").unwrap();
        let nfc = Passphrase::new("caf\u{e9}", "t").unwrap();
        assert_eq!(nfd.as_bytes(), nfc.as_bytes());
        assert!(Passphrase::new("", "t").is_err());
    }

    #[test]
    fn env_names_are_told_from_passphrases() {
        for ok in ["PW", "_x", "FERRY_PASSPHRASE_2", &"A".repeat(64)] {
            assert!(plausible_env_name(ok), "{ok}");
        }
        for bad in [
            "",
            "2PW",
            "hunter2 secret",
            "pa-ss",
            "p=w",
            "caf\u{e9}",
            &"A".repeat(65),
        ] {
            assert!(!plausible_env_name(bad), "{bad}");
            let e = Passphrase::from_env(bad).err().unwrap().to_string();
            assert!(e.contains("not an environment variable name"), "{e}");
            assert!(bad.is_empty() || !e.contains(bad), "{e}");
        }
    }
}
