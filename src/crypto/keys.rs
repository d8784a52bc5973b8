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
        if hrp.as_str().eq_ignore_ascii_case("age-secret-key-") {
            return Err(Error::Key(format!(
                "key file {origin}: this is an age identity, not a ferry key: give it with --identity"
            )));
        }
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
        let (text, warnings) = read_secret_file(path, "key file", KEY_FILE_CAP)?;
        let key = Self::parse(&text, &path.display().to_string())?;
        Ok((key, warnings))
    }

    /// Makes a new random key and writes it to `path` (mode 0600, never overwriting).
    pub fn generate(path: &Path) -> Result<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut key[..]);
        let k = KeyFileKey::from_bytes(*key, path.display().to_string());
        let text = Zeroizing::new(format!(
            "# ferry key file: anyone holding it can read bundles made with it. Keep it secret.\n\
             # key id: {}\n{}\n",
            k.id(),
            k.encode().as_str()
        ));
        write_secret_file(path, &text)?;
        Ok(k)
    }
}

/// Creates `path` with `text`, mode 0600: never over an existing file, never through a
/// symlink (`O_CREAT | O_EXCL` follows none), synced before it is reported written.
fn write_secret_file(path: &Path, text: &str) -> Result<()> {
    write_new_file(path, text, 0o600)
}

/// [`write_secret_file`] with another mode (a public key file is 0644).
pub(crate) fn write_new_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
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
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(format!("cannot write key file {}", path.display()), e))
}

/// Reads at most `cap` bytes of text from `path`: `Ok(None)` when it holds more. The size in
/// the file's metadata is not enough (0 for /dev/zero, a FIFO or `<(…)`), so the read itself
/// is bounded.
pub(crate) fn read_text_capped(path: &Path, cap: u64) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(cap + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        buf.iter_mut().for_each(|b| *b = 0);
        return Ok(None);
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Reads a small secret file whole: its text and, on Unix, a warning when others can read it.
/// `what` names the kind of file in messages ("key file", "identity file").
pub(crate) fn read_secret_file(
    path: &Path,
    what: &str,
    cap: u64,
) -> Result<(Zeroizing<String>, Vec<String>)> {
    let origin = path.display().to_string();
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::Key(format!("cannot read {what} {origin}: {e}")))?;
    let text = Zeroizing::new(
        read_text_capped(path, cap)
            .map_err(|e| Error::Key(format!("cannot read {what} {origin}: {e}")))?
            .ok_or_else(|| Error::Key(format!("{what} {origin}: too large to be a {what}")))?,
    );
    let mut warnings = Vec::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            warnings.push(format!(
                "{what} {origin} can be read by other users (mode {:o}); run: chmod 600 {origin}",
                mode & 0o777
            ));
        }
    }
    Ok((text, warnings))
}

/// An identity file holds a few lines per identity; anything larger is not one.
const IDENTITY_FILE_CAP: u64 = 64 * 1024;
/// A recipients file: one short line per recipient.
const RECIPIENTS_FILE_CAP: u64 = 256 * 1024;

/// The public id of an age recipient: `a1_` and 16 hex digits of a domain-separated hash of
/// its canonical (lowercase Bech32) text. Names the slot in manifests and messages.
pub fn age_key_id(recipient: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"ferry age recipient id v1\0");
    h.update(recipient.as_bytes());
    format!("a1_{}", &hex::encode(h.finalize())[..16])
}

/// An age X25519 recipient (`age1…`): a public key export wraps the data key for. Holding
/// it opens nothing.
#[derive(Clone)]
pub struct AgeRecipient {
    recipient: age::x25519::Recipient,
    /// The canonical text, `age1…`.
    text: String,
    id: String,
    /// Where it came from, for messages.
    pub origin: String,
}

impl std::fmt::Debug for AgeRecipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AgeRecipient({}, {})", self.id, self.text)
    }
}

impl AgeRecipient {
    fn from_age(recipient: age::x25519::Recipient, origin: impl Into<String>) -> Self {
        let text = recipient.to_string();
        AgeRecipient {
            id: age_key_id(&text),
            recipient,
            text,
            origin: origin.into(),
        }
    }

    /// Parses `age1…`. The value is never repeated in an error when it may be a secret key.
    /// A bad recipient is a usage error (exit 2): it is public, like any other argument.
    pub fn parse(s: &str, origin: &str) -> Result<Self> {
        let s = s.trim();
        let upper = s.to_ascii_uppercase();
        if upper.starts_with("AGE-SECRET-KEY-") {
            return Err(Error::Usage(format!(
                "{origin}: this is an age identity (a secret key, not repeated here), not a recipient: \
                 give its public key age1… (`age-keygen -y FILE` prints it); a sender never needs \
                 the receiver's identity"
            )));
        }
        if upper.starts_with("FERRYKEY1") {
            return Err(Error::Usage(format!(
                "{origin}: this is a ferry key (a secret, not repeated here), not an age recipient; \
                 give a key file with --key-file, a recipient as age1…"
            )));
        }
        if s.starts_with("ssh-") || (upper.starts_with("AGE1") && s.len() > 90) {
            return Err(Error::Usage(format!(
                "{origin}: only age X25519 recipients (age1… of 62 characters) are supported: \
                 no SSH keys, post-quantum or plugin recipients"
            )));
        }
        if !upper.starts_with("AGE1") {
            return Err(Error::Usage(format!(
                "{origin}: not an age recipient (not repeated here, in case it is a secret): \
                 expected age1… as `age-keygen` prints it"
            )));
        }
        let r: age::x25519::Recipient = s.parse().map_err(|e: &str| {
            Error::Usage(format!(
                "{origin}: {} is not an age X25519 recipient ({e}; expected age1… as \
                 `age-keygen` prints it); was it copied whole?",
                crate::report::printable(&s.chars().take(100).collect::<String>())
            ))
        })?;
        Ok(Self::from_age(r, origin))
    }

    /// Reads an age recipients file: one recipient per line, `#` comments and blank lines.
    pub fn load_file(path: &Path) -> Result<Vec<Self>> {
        let origin = path.display().to_string();
        let text = Zeroizing::new(
            read_text_capped(path, RECIPIENTS_FILE_CAP)
                .map_err(|e| Error::Usage(format!("cannot read recipients file {origin}: {e}")))?
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "recipients file {origin}: too large to be a recipients file"
                    ))
                })?,
        );
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            out.push(Self::parse(
                line,
                &format!("recipients file {origin}, line {}", n + 1),
            )?);
        }
        if out.is_empty() {
            return Err(Error::Usage(format!(
                "recipients file {origin}: no recipient in it (expected age1… lines)"
            )));
        }
        Ok(out)
    }

    /// The public id of the recipient (`a1_…`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `age1…`
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn as_age(&self) -> &age::x25519::Recipient {
        &self.recipient
    }
}

/// An age X25519 identity (`AGE-SECRET-KEY-1…`), from a file `ferry keygen --age` or
/// `age-keygen` wrote. Opens the slots made for its recipient.
pub struct AgeIdentity {
    identity: age::x25519::Identity,
    recipient: AgeRecipient,
    /// Where it came from, for messages.
    pub origin: String,
}

impl std::fmt::Debug for AgeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AgeIdentity({})", self.recipient.id)
    }
}

impl AgeIdentity {
    fn from_age(identity: age::x25519::Identity, origin: impl Into<String>) -> Self {
        let origin = origin.into();
        AgeIdentity {
            recipient: AgeRecipient::from_age(identity.to_public(), origin.clone()),
            identity,
            origin,
        }
    }

    /// The public id of its recipient (`a1_…`): the key id of the slots it opens.
    pub fn id(&self) -> &str {
        &self.recipient.id
    }

    /// Its recipient, `age1…`.
    pub fn recipient(&self) -> &AgeRecipient {
        &self.recipient
    }

    pub fn as_age(&self) -> &age::x25519::Identity {
        &self.identity
    }

    /// Parses an identity file's text: one or more `AGE-SECRET-KEY-1…` lines, with comment
    /// (`#`) and blank lines, as `age-keygen` writes it. No line is ever repeated in a message.
    pub fn parse_file(text: &str, origin: &str) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("identity file {origin}, line {}", n + 1);
            let upper = line.to_ascii_uppercase();
            let unsupported = |what: &str| {
                Err(Error::Key(format!(
                    "{at}: {what}; ferry reads age X25519 identities (AGE-SECRET-KEY-1…) only"
                )))
            };
            if upper.starts_with("AGE-PLUGIN-") {
                return unsupported("an age plugin identity");
            }
            if line.starts_with("age-encryption.org/") {
                return unsupported(
                    "a passphrase-protected identity file (decrypt it with `age -d` first)",
                );
            }
            if line.starts_with("-----BEGIN") {
                return unsupported("an SSH or PEM key");
            }
            if upper.starts_with("FERRYKEY1") {
                return unsupported("a ferry key file line (give this file with --key-file)");
            }
            if upper.starts_with("AGE1") {
                return unsupported("a recipient (a public key), not an identity");
            }
            if !upper.starts_with("AGE-SECRET-KEY-1") {
                return unsupported("not an age identity");
            }
            let id: age::x25519::Identity = line.parse().map_err(|e: &str| {
                Error::Key(format!(
                    "{at}: not a valid age identity ({e}); was it copied whole?"
                ))
            })?;
            out.push(Self::from_age(id, origin));
        }
        if out.is_empty() {
            return Err(Error::Key(format!(
                "identity file {origin}: no identity in it (expected an AGE-SECRET-KEY-1… line)"
            )));
        }
        Ok(out)
    }

    /// Reads an identity file. The warnings (a file others can read) are for the user.
    pub fn load(path: &Path) -> Result<(Vec<Self>, Vec<String>)> {
        let (text, warnings) = read_secret_file(path, "identity file", IDENTITY_FILE_CAP)?;
        Ok((
            Self::parse_file(&text, &path.display().to_string())?,
            warnings,
        ))
    }

    /// Makes a new identity and writes it to `path` in `age-keygen`'s format (mode 0600,
    /// never overwriting, never through a symlink).
    pub fn generate(path: &Path) -> Result<Self> {
        use age::secrecy::ExposeSecret;
        let id = Self::from_age(
            age::x25519::Identity::generate(),
            path.display().to_string(),
        );
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let secret = id.identity.to_string();
        let text = Zeroizing::new(format!(
            "# created: {created}\n# public key: {}\n{}\n",
            id.recipient.text,
            secret.expose_secret()
        ));
        write_secret_file(path, &text)?;
        Ok(id)
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
///
/// Key files, passphrases and identities both open bundles and, given to `export`, get a
/// slot each (an identity through its recipient); recipients only get a slot.
#[derive(Default)]
pub struct Keys {
    pub key_files: Vec<KeyFileKey>,
    pub passphrases: Vec<Passphrase>,
    /// `--identity`: age identities (several per file possible).
    pub identities: Vec<AgeIdentity>,
    /// `--recipient`, `--recipients-file`: age recipients export wraps the data key for.
    pub recipients: Vec<AgeRecipient>,
    /// `--trust`, `--trust-file`: the keys a manifest must be signed by (none: no signature
    /// required). Not a decryption key: [`Keys::is_empty`] ignores it.
    pub trust: crate::crypto::signing::TrustList,
}

impl Keys {
    /// No key option at all: the bundle is to be plain, or read without a key. A recipient
    /// counts: it stands for an encrypted bundle as much as a key file does.
    pub fn is_empty(&self) -> bool {
        self.key_files.is_empty()
            && self.passphrases.is_empty()
            && self.identities.is_empty()
            && self.recipients.is_empty()
    }

    /// The warning a report carries when an age slot opened a bundle and no trusted
    /// signature was checked ([`crate::report::trust_of`]).
    pub const AGE_ONLY_WARNING: &'static str = "opened with an age identity: its recipient is \
        public, so the manifest MAC shows only that the bundle was made for you, not who made it; \
        give --trust (the sender's signing key) to check the sender";

    /// Whether any of the keys can open a bundle (recipients cannot).
    pub fn can_open(&self) -> bool {
        !(self.key_files.is_empty() && self.passphrases.is_empty() && self.identities.is_empty())
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

    #[test]
    fn age_identity_files_are_written_0600_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.txt");
        let made = AgeIdentity::generate(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("# created: 20"), "{text}");
        assert_eq!(
            lines[1],
            format!("# public key: {}", made.recipient().text())
        );
        assert!(lines[2].starts_with("AGE-SECRET-KEY-1"), "{text}");
        assert_eq!(lines.len(), 3);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (back, warnings) = AgeIdentity::load(&path).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].id(), made.id());
        assert!(made.id().starts_with("a1_") && made.id().len() == 19);
        assert_eq!(made.id(), age_key_id(made.recipient().text()));
        // never over an existing file
        let e = AgeIdentity::generate(&path).unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        // never through a symlink, not even a dangling one
        #[cfg(unix)]
        {
            let target = dir.path().join("elsewhere");
            let link = dir.path().join("link.txt");
            std::os::unix::fs::symlink(&target, &link).unwrap();
            assert!(AgeIdentity::generate(&link).is_err());
            assert!(!target.exists());
        }
    }

    #[test]
    fn identity_files_hold_several_identities_and_comments_and_never_echo_a_line() {
        use age::secrecy::ExposeSecret;
        let a = age::x25519::Identity::generate();
        let b = age::x25519::Identity::generate();
        let text = format!(
            "# created: 2026-01-01T00:00:00Z\n# public key: {}\n{}\r\n\n  # another\n{}\n",
            a.to_public(),
            a.to_string().expose_secret(),
            b.to_string().expose_secret()
        );
        let ids = AgeIdentity::parse_file(&text, "f").unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[1].recipient().text(), b.to_public().to_string());
        // a damaged secret: named by line, never repeated
        let secret = a.to_string().expose_secret().to_string();
        let mut bad: Vec<char> = secret.chars().collect();
        let n = bad.len() - 2;
        bad[n] = if bad[n] == 'Q' { 'P' } else { 'Q' };
        let bad: String = bad.into_iter().collect();
        let e = AgeIdentity::parse_file(&format!("# c\n{bad}\n"), "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && !e.contains(&bad[20..]), "{e}");
        for (line, says) in [
            (a.to_public().to_string(), "a recipient"),
            ("AGE-PLUGIN-YUBIKEY-1QQQQ".to_string(), "plugin"),
            ("FERRYKEY1QQQQ".to_string(), "--key-file"),
            ("hunter2".to_string(), "not an age identity"),
        ] {
            let e = AgeIdentity::parse_file(&line, "f").unwrap_err().to_string();
            assert!(e.contains(says) && !e.contains(&line), "{e}");
        }
        // given as a key file, an identity is named as such
        let e = KeyFileKey::parse(&format!("# c\n{secret}\n"), "f")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--identity") && !e.contains(&secret[16..]),
            "{e}"
        );
        let e = AgeIdentity::parse_file("# nothing\n\n", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no identity"), "{e}");
    }

    #[test]
    fn recipients_parse_canonically_and_secrets_are_never_repeated() {
        use age::secrecy::ExposeSecret;
        let id = age::x25519::Identity::generate();
        let text = id.to_public().to_string();
        let r = AgeRecipient::parse(&format!("  {text} "), "t").unwrap();
        assert_eq!(r.text(), text);
        assert_eq!(r.id(), age_key_id(&text));
        // Bech32 in capitals is the same recipient, the same id
        let upper = AgeRecipient::parse(&text.to_ascii_uppercase(), "t").unwrap();
        assert_eq!(upper.id(), r.id());
        let secret = id.to_string().expose_secret().to_string();
        let e = AgeRecipient::parse(&secret, "--recipient").unwrap_err();
        assert!(matches!(e, Error::Usage(_)));
        let e = e.to_string();
        assert!(e.contains("identity") && !e.contains(&secret[16..]), "{e}");
        let e = AgeRecipient::parse("correct horse battery", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not repeated") && !e.contains("horse"), "{e}");
        let e = AgeRecipient::parse("ssh-ed25519 AAAA", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("X25519"), "{e}");
        assert!(AgeRecipient::parse(&text[..text.len() - 1], "t").is_err());
    }

    #[test]
    fn recipients_files_take_comments_and_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let a = age::x25519::Identity::generate().to_public().to_string();
        let b = age::x25519::Identity::generate().to_public().to_string();
        let path = dir.path().join("r.txt");
        std::fs::write(&path, format!("# team\n\n{a}\n   # old: age1zzz\n{b}\r\n")).unwrap();
        let rs = AgeRecipient::load_file(&path).unwrap();
        assert_eq!(
            rs.iter().map(AgeRecipient::text).collect::<Vec<_>>(),
            [a.as_str(), b.as_str()]
        );
        std::fs::write(&path, format!("{a}\nage1nope\n")).unwrap();
        let e = AgeRecipient::load_file(&path).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        std::fs::write(&path, "# only comments\n").unwrap();
        let e = AgeRecipient::load_file(&path).unwrap_err().to_string();
        assert!(e.contains("no recipient"), "{e}");
    }
}
