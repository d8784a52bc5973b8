//! Cobblestone-256: the C2SP chunked-encryption format (<https://c2sp.org/chunked-encryption>),
//! instantiated with HKDF-SHA-512 and AES-256-GCM.
//!
//! This module owns only the chunked AEAD format: it turns an input key, an application
//! context and a byte stream into a ciphertext and back. It knows nothing about paths,
//! manifests, or where keys come from; callers bind those by choosing the `context`.
//!
//! # Format
//!
//! ```text
//! ciphertext = salt (24) || commitment (32) || chunk 0 || chunk 1 || ... || final chunk
//! aead key (32) || base nonce (12) || commitment (32) =
//!     HKDF-Expand-SHA-512(prk = input key,
//!         info = "c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM" || 0x00 || salt || context)
//! chunk i = AES-256-GCM(aead key, nonce = base nonce XOR be96(i), aad = "", plaintext_i)
//! ```
//!
//! Every chunk holds exactly [`CHUNK_SIZE`] plaintext bytes except the last, which is
//! always *shorter* (possibly empty). The short final chunk is the only end-of-message
//! signal: there is no explicit "last" flag, so a message is authenticated as complete
//! only once its short final chunk has been decrypted at the right index. The context is
//! bound solely through the key derivation (the AEAD's associated data is empty), and the
//! commitment is checked before any chunk is decrypted, so a wrong key or context is
//! reported as [`Error::HeaderAuth`] up front.

use std::io::{self, Read, Write};

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha512;
use zeroize::Zeroizing;

/// Plaintext bytes per full chunk.
pub const CHUNK_SIZE: usize = 16 * 1024;
/// AES-GCM authentication tag length appended to every chunk.
pub const TAG_LEN: usize = 16;
/// Input key length (the AES-256 key size).
pub const KEY_LEN: usize = 32;
/// Random salt length at the start of the header.
pub const SALT_LEN: usize = 24;
/// Key commitment length, following the salt in the header.
pub const COMMITMENT_LEN: usize = 32;
/// Header length: salt followed by the key commitment.
pub const HEADER_LEN: usize = SALT_LEN + COMMITMENT_LEN;
/// Ciphertext bytes per full chunk (plaintext plus tag).
pub const ENCRYPTED_CHUNK_SIZE: usize = CHUNK_SIZE + TAG_LEN;
/// Maximum number of chunks in a message (2^38, i.e. 4 PiB), final chunk included.
pub const MAX_CHUNKS: u64 = 1 << 38;
/// Largest plaintext length that can be encrypted.
pub const MAX_PLAINTEXT_LEN: u64 = MAX_CHUNKS * CHUNK_SIZE_U64 - 1;

const NONCE_LEN: usize = 12;
const AEAD_NAME: &[u8] = b"AEAD_AES_256_GCM";
const INFO_PREFIX: &[u8] = b"c2sp.org/chunked-encryption@v1+";
const CHUNK_SIZE_U64: u64 = 16 * 1024;
const TAG_LEN_U64: u64 = 16;
const HEADER_LEN_U64: u64 = 56;
const ENCRYPTED_CHUNK_SIZE_U64: u64 = CHUNK_SIZE_U64 + TAG_LEN_U64;

/// Which part of a ciphertext is missing; carried by [`Error::Truncated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// The ciphertext is shorter than the [`HEADER_LEN`]-byte header.
    Header {
        /// Bytes actually present.
        len: u64,
    },
    /// The ciphertext ends right after a full chunk: the short final chunk is missing.
    MissingFinalChunk {
        /// Number of full chunks present.
        full_chunks: u64,
    },
    /// The ciphertext ends inside chunk `index`, before the end of its authentication tag.
    PartialChunk {
        /// Index of the cut chunk.
        index: u64,
        /// Ciphertext byte offset at which that chunk starts.
        offset: u64,
    },
}

impl std::fmt::Display for Truncation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Header { len } => write!(
                f,
                "only {len} bytes, shorter than the {HEADER_LEN}-byte header (or not an encrypted file)"
            ),
            Self::MissingFinalChunk { full_chunks } => write!(
                f,
                "the final chunk is missing after {full_chunks} full chunk(s)"
            ),
            Self::PartialChunk { index, offset } => write!(
                f,
                "chunk {index} at byte offset {offset} is cut off before the end of its {TAG_LEN}-byte tag"
            ),
        }
    }
}

/// Errors of the chunked encryption format.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input key does not have [`KEY_LEN`] bytes.
    #[error("encryption key must be {KEY_LEN} bytes, got {len}")]
    InvalidKeySize {
        /// Length of the rejected key.
        len: usize,
    },
    /// The ciphertext is too short for its header, lacks its final chunk, or ends inside a chunk.
    #[error("encrypted data is truncated: {what}")]
    Truncated {
        /// Which part is missing.
        what: Truncation,
    },
    /// The key commitment in the header does not match the key and context.
    #[error(
        "encrypted header does not match the key and context: wrong key, the file was moved \
         or belongs to another bundle, or the header was altered"
    )]
    HeaderAuth,
    /// A chunk failed authentication.
    #[error(
        "chunk {index} at ciphertext byte offset {offset} failed authentication: the data was \
         modified, reordered, truncated or has bytes appended"
    )]
    ChunkAuth {
        /// Chunk index.
        index: u64,
        /// Ciphertext byte offset at which the chunk starts.
        offset: u64,
    },
    /// Data follows the authenticated final chunk.
    #[error("unexpected data after the final chunk, at ciphertext byte offset {offset}")]
    TrailingData {
        /// Ciphertext byte offset of the first unexpected byte.
        offset: u64,
    },
    /// The message would exceed [`MAX_CHUNKS`] chunks.
    #[error("message exceeds the format's limit of 2^38 chunks (4 PiB)")]
    TooLong,
    /// A random-access read asked for a chunk past the end of the message.
    #[error("chunk index {index} is out of range: the message has {count} chunk(s)")]
    ChunkOutOfRange {
        /// Requested index.
        index: u64,
        /// Number of chunks in the message.
        count: u64,
    },
    /// A random-access read supplied the wrong number of ciphertext bytes for a chunk.
    #[error("chunk {index} needs {expected} ciphertext bytes, got {actual} (short read?)")]
    ChunkLength {
        /// Chunk index.
        index: u64,
        /// Expected ciphertext length (see [`Opened::chunk_range`]).
        expected: usize,
        /// Supplied ciphertext length.
        actual: usize,
    },
    /// An earlier write to this encryptor failed; its output is incomplete and must be discarded.
    #[error("an earlier write failed; the encrypted output is incomplete and must be discarded")]
    Poisoned,
    /// Reading or writing the underlying stream failed.
    #[error("encrypted stream I/O error: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    /// A copy of this error (I/O errors are copied by kind and message).
    fn duplicate(&self) -> Self {
        match self {
            Self::InvalidKeySize { len } => Self::InvalidKeySize { len: *len },
            Self::Truncated { what } => Self::Truncated { what: *what },
            Self::HeaderAuth => Self::HeaderAuth,
            Self::ChunkAuth { index, offset } => Self::ChunkAuth {
                index: *index,
                offset: *offset,
            },
            Self::TrailingData { offset } => Self::TrailingData { offset: *offset },
            Self::TooLong => Self::TooLong,
            Self::ChunkOutOfRange { index, count } => Self::ChunkOutOfRange {
                index: *index,
                count: *count,
            },
            Self::ChunkLength {
                index,
                expected,
                actual,
            } => Self::ChunkLength {
                index: *index,
                expected: *expected,
                actual: *actual,
            },
            Self::Poisoned => Self::Poisoned,
            Self::Io(e) => Self::Io(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

impl From<Error> for io::Error {
    /// `Error::Io` is unwrapped; every other variant is wrapped so that [`unwrap_io`] recovers it.
    fn from(e: Error) -> Self {
        let kind = match e {
            Error::Io(inner) => return inner,
            Error::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            Error::InvalidKeySize { .. }
            | Error::ChunkOutOfRange { .. }
            | Error::ChunkLength { .. } => io::ErrorKind::InvalidInput,
            Error::Poisoned => io::ErrorKind::Other,
            Error::HeaderAuth
            | Error::ChunkAuth { .. }
            | Error::TrailingData { .. }
            | Error::TooLong => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// Recovers the format error carried by an `io::Error` returned from [`Encryptor`] or
/// [`Decryptor`]. Returns `None` for plain I/O errors of the underlying stream.
pub fn unwrap_io(e: &io::Error) -> Option<&Error> {
    e.get_ref()?.downcast_ref::<Error>()
}

/// Checks the length of an input key supplied as a slice.
pub fn key_from_slice(key: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, Error> {
    let arr: [u8; KEY_LEN] = key
        .try_into()
        .map_err(|_| Error::InvalidKeySize { len: key.len() })?;
    Ok(Zeroizing::new(arr))
}

/// Ciphertext length for a plaintext length (header + chunks + tags, including the
/// short or empty final chunk). Saturates for lengths above [`MAX_PLAINTEXT_LEN`].
pub fn ciphertext_len(plaintext_len: u64) -> u64 {
    let chunks = plaintext_len / CHUNK_SIZE_U64 + 1;
    plaintext_len
        .saturating_add(HEADER_LEN_U64)
        .saturating_add(chunks * TAG_LEN_U64)
}

/// Plaintext length for a ciphertext length; fails when no plaintext length maps to it.
pub fn plaintext_len(ciphertext_len: u64) -> Result<u64, Error> {
    let layout = Layout::new(ciphertext_len)?;
    Ok(layout.plaintext_len)
}

/// Chunk geometry implied by a ciphertext length.
#[derive(Debug, Clone, Copy)]
struct Layout {
    ciphertext_len: u64,
    plaintext_len: u64,
    /// Number of full chunks; the final chunk has this index.
    full_chunks: u64,
    /// Ciphertext length of the final chunk, in `TAG_LEN..ENCRYPTED_CHUNK_SIZE`.
    final_len: usize,
}

impl Layout {
    fn new(ciphertext_len: u64) -> Result<Self, Error> {
        let body = ciphertext_len
            .checked_sub(HEADER_LEN_U64)
            .ok_or(Error::Truncated {
                what: Truncation::Header {
                    len: ciphertext_len,
                },
            })?;
        let full_chunks = body / ENCRYPTED_CHUNK_SIZE_U64;
        let rest = body % ENCRYPTED_CHUNK_SIZE_U64;
        if full_chunks >= MAX_CHUNKS {
            return Err(Error::TooLong);
        }
        if rest == 0 {
            return Err(Error::Truncated {
                what: Truncation::MissingFinalChunk { full_chunks },
            });
        }
        if rest < TAG_LEN_U64 {
            return Err(Error::Truncated {
                what: Truncation::PartialChunk {
                    index: full_chunks,
                    offset: chunk_offset(full_chunks),
                },
            });
        }
        Ok(Self {
            ciphertext_len,
            plaintext_len: full_chunks * CHUNK_SIZE_U64 + (rest - TAG_LEN_U64),
            full_chunks,
            // rest < ENCRYPTED_CHUNK_SIZE, so it fits.
            final_len: usize::try_from(rest).map_err(|_| Error::TooLong)?,
        })
    }
}

/// Ciphertext offset of chunk `index`.
fn chunk_offset(index: u64) -> u64 {
    HEADER_LEN_U64.saturating_add(index.saturating_mul(ENCRYPTED_CHUNK_SIZE_U64))
}

/// HKDF-Expand (RFC 5869) with HMAC-SHA-512, for a PRK of any length.
fn hkdf_sha512_expand(prk: &[u8], info: &[&[u8]], out: &mut [u8]) {
    const HASH_LEN: usize = 64;
    assert!(out.len() <= 255 * HASH_LEN, "HKDF-Expand output too long");
    let mut previous = Zeroizing::new([0u8; HASH_LEN]);
    for (i, block) in out.chunks_mut(HASH_LEN).enumerate() {
        let mut mac =
            <Hmac<Sha512> as Mac>::new_from_slice(prk).expect("HMAC accepts any key length");
        if i > 0 {
            mac.update(&previous[..]);
        }
        for part in info {
            mac.update(part);
        }
        let counter = u8::try_from(i + 1).expect("at most 255 blocks");
        mac.update(&[counter]);
        previous.copy_from_slice(&mac.finalize().into_bytes());
        block.copy_from_slice(&previous[..block.len()]);
    }
}

/// Constant-time equality of two equal-length byte strings.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Per-message AEAD state derived from the input key, salt and context. The AEAD (its key
/// schedule and GHASH key powers) is wiped on drop: aes-gcm's `zeroize` feature. Boxed: it
/// is some 700 bytes, and moving the reader or writer that holds it then copies no key.
struct ChunkCipher {
    aead: Box<Aes256Gcm>,
    base_nonce: [u8; NONCE_LEN],
}

impl ChunkCipher {
    /// Derives the AEAD key, base nonce and commitment.
    fn derive(key: &[u8; KEY_LEN], salt: &[u8; SALT_LEN], context: &[u8]) -> (Self, [u8; 32]) {
        let mut okm = Zeroizing::new([0u8; KEY_LEN + NONCE_LEN + COMMITMENT_LEN]);
        hkdf_sha512_expand(
            key,
            &[INFO_PREFIX, AEAD_NAME, &[0], salt, context],
            &mut okm[..],
        );
        let aead_key: &[u8; KEY_LEN] = okm[..KEY_LEN].try_into().expect("KEY_LEN bytes");
        let aead = Box::new(Aes256Gcm::new(aead_key.into()));
        let mut base_nonce = [0u8; NONCE_LEN];
        base_nonce.copy_from_slice(&okm[KEY_LEN..KEY_LEN + NONCE_LEN]);
        let mut commitment = [0u8; COMMITMENT_LEN];
        commitment.copy_from_slice(&okm[KEY_LEN + NONCE_LEN..]);
        (Self { aead, base_nonce }, commitment)
    }

    /// Parses a header and checks its commitment.
    fn open_header(key: &[u8; KEY_LEN], context: &[u8], header: &[u8]) -> Result<Self, Error> {
        let Some(header) = header.get(..HEADER_LEN) else {
            return Err(Error::Truncated {
                what: Truncation::Header {
                    len: u64::try_from(header.len()).unwrap_or(u64::MAX),
                },
            });
        };
        let (salt, commitment) = header.split_at(SALT_LEN);
        let salt: &[u8; SALT_LEN] = salt.try_into().expect("split at SALT_LEN");
        let (cipher, expected) = Self::derive(key, salt, context);
        if ct_eq(&expected, commitment) {
            Ok(cipher)
        } else {
            Err(Error::HeaderAuth)
        }
    }

    fn nonce(&self, index: u64) -> Nonce<aes_gcm::aead::consts::U12> {
        let mut nonce = self.base_nonce;
        for (n, c) in nonce[NONCE_LEN - 8..].iter_mut().zip(index.to_be_bytes()) {
            *n ^= c;
        }
        Nonce::from(nonce)
    }

    /// Encrypts `buf` in place and returns its tag.
    fn seal(&self, index: u64, buf: &mut [u8]) -> Result<Tag, Error> {
        if index >= MAX_CHUNKS {
            return Err(Error::TooLong);
        }
        self.aead
            .encrypt_inout_detached(&self.nonce(index), b"", buf.into())
            .map_err(|_| Error::TooLong)
    }

    /// Decrypts `ciphertext || tag` in place; returns the plaintext length.
    fn open(&self, index: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let fail = Error::ChunkAuth {
            index,
            offset: chunk_offset(index),
        };
        if index >= MAX_CHUNKS {
            return Err(Error::TooLong);
        }
        let Some(len) = buf.len().checked_sub(TAG_LEN) else {
            return Err(fail);
        };
        let (body, tag) = buf.split_at_mut(len);
        let Ok(tag) = Tag::try_from(&*tag) else {
            return Err(fail);
        };
        self.aead
            .decrypt_inout_detached(&self.nonce(index), b"", body.into(), &tag)
            .map_err(|_| fail)?;
        Ok(len)
    }
}

/// Streaming encryptor. Writes the header on creation, buffers up to one chunk, and emits
/// each full chunk as soon as it fills. [`Encryptor::finish`] writes the short final chunk;
/// output of an encryptor dropped without `finish` lacks it and will not decrypt.
pub struct Encryptor<W: Write> {
    cipher: ChunkCipher,
    inner: W,
    /// Pending plaintext, always shorter than `CHUNK_SIZE` between calls.
    buf: Zeroizing<Vec<u8>>,
    index: u64,
    poisoned: bool,
}

impl<W: Write> Encryptor<W> {
    /// Starts a message with a random salt from the operating system.
    pub fn new(key: &[u8; KEY_LEN], context: &[u8], inner: W) -> Result<Self, Error> {
        let mut salt = [0u8; SALT_LEN];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        Self::with_salt(key, context, salt, inner)
    }

    /// Starts a message with the given salt. The salt must never repeat for a key; use
    /// [`Encryptor::new`] outside tests.
    pub fn with_salt(
        key: &[u8; KEY_LEN],
        context: &[u8],
        salt: [u8; SALT_LEN],
        mut inner: W,
    ) -> Result<Self, Error> {
        let (cipher, commitment) = ChunkCipher::derive(key, &salt, context);
        let mut header = [0u8; HEADER_LEN];
        header[..SALT_LEN].copy_from_slice(&salt);
        header[SALT_LEN..].copy_from_slice(&commitment);
        inner.write_all(&header)?;
        Ok(Self {
            cipher,
            inner,
            buf: Zeroizing::new(Vec::with_capacity(ENCRYPTED_CHUNK_SIZE)),
            index: 0,
            poisoned: false,
        })
    }

    /// Encrypts and writes the buffered plaintext as chunk `self.index`.
    fn emit(&mut self) -> Result<(), Error> {
        let tag = self.cipher.seal(self.index, &mut self.buf)?;
        self.buf.extend_from_slice(&tag);
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }

    /// Writes the short (possibly empty) final chunk, flushes, and returns the inner writer.
    pub fn finish(mut self) -> Result<W, Error> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        self.emit()?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Encryptor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.poisoned {
            return Err(Error::Poisoned.into());
        }
        let n = data.len().min(CHUNK_SIZE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_SIZE {
            // A full chunk is never final, so it can be emitted right away.
            if let Err(e) = self.emit() {
                self.poisoned = true;
                return Err(e.into());
            }
        }
        Ok(n)
    }

    /// Flushes the inner writer; the pending partial chunk stays buffered.
    fn flush(&mut self) -> io::Result<()> {
        if self.poisoned {
            return Err(Error::Poisoned.into());
        }
        self.inner.flush()
    }
}

/// Streaming decryptor. Reads and checks the header on construction, then yields plaintext
/// one authenticated chunk at a time. Errors are `io::Error`s wrapping [`Error`] (see
/// [`unwrap_io`]); after the first error every further read fails again.
pub struct Decryptor<R: Read> {
    cipher: ChunkCipher,
    inner: R,
    /// Decrypted plaintext of the current chunk, `buf[pos..len]` not yet returned.
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
    len: usize,
    index: u64,
    finished: bool,
    failed: Option<Error>,
}

impl<R: Read> Decryptor<R> {
    /// Reads the header and checks the key commitment.
    pub fn new(key: &[u8; KEY_LEN], context: &[u8], mut inner: R) -> Result<Self, Error> {
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(&mut inner, &mut header)?;
        let cipher = ChunkCipher::open_header(key, context, &header[..got])?;
        Ok(Self {
            cipher,
            inner,
            buf: Zeroizing::new(vec![0u8; ENCRYPTED_CHUNK_SIZE]),
            pos: 0,
            len: 0,
            index: 0,
            finished: false,
            failed: None,
        })
    }

    /// Reads and authenticates the next chunk into `buf`.
    fn next_chunk(&mut self) -> Result<(), Error> {
        let offset = chunk_offset(self.index);
        let got = read_full(&mut self.inner, &mut self.buf[..])?;
        if got == ENCRYPTED_CHUNK_SIZE {
            // Full chunk: never the final one.
            self.len = self.cipher.open(self.index, &mut self.buf[..])?;
            self.index += 1;
        } else if got == 0 {
            return Err(Error::Truncated {
                what: Truncation::MissingFinalChunk {
                    full_chunks: self.index,
                },
            });
        } else if got < TAG_LEN {
            return Err(Error::Truncated {
                what: Truncation::PartialChunk {
                    index: self.index,
                    offset,
                },
            });
        } else {
            // Short chunk: must be the final one and be followed by end of stream.
            self.len = self.cipher.open(self.index, &mut self.buf[..got])?;
            let mut probe = [0u8; 1];
            if read_full(&mut self.inner, &mut probe)? != 0 {
                self.len = 0;
                return Err(Error::TrailingData {
                    offset: offset + u64::try_from(got).unwrap_or(u64::MAX),
                });
            }
            self.finished = true;
        }
        self.pos = 0;
        Ok(())
    }
}

impl<R: Read> Read for Decryptor<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.failed {
            return Err(e.duplicate().into());
        }
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pos < self.len {
                let n = out.len().min(self.len - self.pos);
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.finished {
                return Ok(0);
            }
            if let Err(e) = self.next_chunk() {
                self.pos = 0;
                self.len = 0;
                let out = e.duplicate();
                self.failed = Some(e);
                return Err(out.into());
            }
        }
    }
}

/// Reads until `buf` is full or end of stream; returns the number of bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Random-access decryption of a message whose header has been checked. Each chunk is
/// still authenticated with its index; the message length is authenticated only by
/// decrypting the final chunk (index `chunk_count() - 1`), which must be short.
pub struct Opened {
    cipher: ChunkCipher,
    layout: Layout,
}

impl Opened {
    /// Checks the header (the first [`HEADER_LEN`] bytes of `header`; longer slices are
    /// fine) against the key and context, and the total ciphertext length for validity.
    pub fn open(
        key: &[u8; KEY_LEN],
        context: &[u8],
        header: &[u8],
        ciphertext_len: u64,
    ) -> Result<Self, Error> {
        if ciphertext_len < HEADER_LEN_U64 {
            return Err(Error::Truncated {
                what: Truncation::Header {
                    len: ciphertext_len,
                },
            });
        }
        let cipher = ChunkCipher::open_header(key, context, header)?;
        let layout = Layout::new(ciphertext_len)?;
        Ok(Self { cipher, layout })
    }

    /// Plaintext length implied by the ciphertext length.
    pub fn plaintext_len(&self) -> u64 {
        self.layout.plaintext_len
    }

    /// Total ciphertext length given to [`Opened::open`].
    pub fn ciphertext_len(&self) -> u64 {
        self.layout.ciphertext_len
    }

    /// Number of chunks, the short final chunk included (at least 1).
    pub fn chunk_count(&self) -> u64 {
        self.layout.full_chunks + 1
    }

    /// Index of the chunk holding plaintext byte `plaintext_offset` (may be
    /// `chunk_count()` or more when the offset is at or past the end).
    pub fn chunk_index(plaintext_offset: u64) -> u64 {
        plaintext_offset / CHUNK_SIZE_U64
    }

    /// Ciphertext byte range of chunk `index`: start offset and length including the tag.
    /// For an index past the end, returns the empty range at the end of the ciphertext.
    pub fn chunk_range(&self, index: u64) -> (u64, usize) {
        match index.cmp(&self.layout.full_chunks) {
            std::cmp::Ordering::Less => (chunk_offset(index), ENCRYPTED_CHUNK_SIZE),
            std::cmp::Ordering::Equal => (chunk_offset(index), self.layout.final_len),
            std::cmp::Ordering::Greater => (self.layout.ciphertext_len, 0),
        }
    }

    /// Authenticates and decrypts chunk `index`, given exactly its ciphertext range.
    pub fn decrypt_chunk(&self, index: u64, ciphertext: &[u8]) -> Result<Vec<u8>, Error> {
        let mut buf = ciphertext.to_vec();
        let len = self.decrypt_chunk_in_place(index, &mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }

    /// Like [`Opened::decrypt_chunk`], in place: on success `buf[..n]` holds the plaintext.
    pub fn decrypt_chunk_in_place(&self, index: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let count = self.chunk_count();
        if index >= count {
            return Err(Error::ChunkOutOfRange { index, count });
        }
        let (_, expected) = self.chunk_range(index);
        if buf.len() != expected {
            return Err(Error::ChunkLength {
                index,
                expected,
                actual: buf.len(),
            });
        }
        self.cipher.open(index, buf)
    }
}

/// Encrypts a small message in memory with a random salt.
pub fn encrypt_to_vec(
    key: &[u8; KEY_LEN],
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let capacity = usize::try_from(ciphertext_len(
        u64::try_from(plaintext.len()).unwrap_or(u64::MAX),
    ))
    .unwrap_or(usize::MAX);
    let mut enc = Encryptor::new(key, context, Vec::with_capacity(capacity))?;
    enc.write_all(plaintext)?;
    enc.finish()
}

/// Decrypts and authenticates a whole in-memory message.
pub fn decrypt_all(
    key: &[u8; KEY_LEN],
    context: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, Error> {
    let total = u64::try_from(ciphertext.len()).map_err(|_| Error::TooLong)?;
    let opened = Opened::open(key, context, ciphertext, total)?;
    let mut out = Vec::with_capacity(usize::try_from(opened.plaintext_len()).unwrap_or(0));
    for index in 0..opened.chunk_count() {
        let (start, len) = opened.chunk_range(index);
        let start = usize::try_from(start).map_err(|_| Error::TooLong)?;
        let begin = out.len();
        out.extend_from_slice(&ciphertext[start..start + len]);
        match opened.decrypt_chunk_in_place(index, &mut out[begin..]) {
            Ok(n) => out.truncate(begin + n),
            Err(e) => {
                zeroize::Zeroize::zeroize(&mut out);
                return Err(e);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; KEY_LEN] = [7u8; KEY_LEN];
    const CTX: &[u8] = b"bundle-1/table.parquet";

    fn message(len: usize) -> Vec<u8> {
        (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect()
    }

    fn encrypt(len: usize) -> (Vec<u8>, Vec<u8>) {
        let pt = message(len);
        let ct = encrypt_to_vec(&KEY, CTX, &pt).unwrap();
        (pt, ct)
    }

    fn stream_decrypt(ct: &[u8], ctx: &[u8]) -> Result<Vec<u8>, Error> {
        let mut dec = Decryptor::new(&KEY, ctx, ct)?;
        let mut out = Vec::new();
        match dec.read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(e) => Err(unwrap_io(&e).expect("format error").duplicate()),
        }
    }

    const LENGTHS: [usize; 6] = [
        0,
        1,
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 1,
        3 * CHUNK_SIZE,
    ];

    #[test]
    fn round_trip() {
        for len in LENGTHS {
            let (pt, ct) = encrypt(len);
            let len64 = u64::try_from(len).unwrap();
            let ct_len = u64::try_from(ct.len()).unwrap();
            assert_eq!(ct_len, ciphertext_len(len64), "len {len}");
            assert_eq!(plaintext_len(ct_len).unwrap(), len64);
            assert_eq!(decrypt_all(&KEY, CTX, &ct).unwrap(), pt, "len {len}");
            assert_eq!(stream_decrypt(&ct, CTX).unwrap(), pt, "len {len}");

            // Streaming encryption in odd-sized writes gives the same format.
            let salt: [u8; SALT_LEN] = ct[..SALT_LEN].try_into().unwrap();
            let mut enc = Encryptor::with_salt(&KEY, CTX, salt, Vec::new()).unwrap();
            for piece in pt.chunks(1000) {
                enc.write_all(piece).unwrap();
            }
            assert_eq!(enc.finish().unwrap(), ct, "len {len}");

            // Random access.
            let opened = Opened::open(&KEY, CTX, &ct[..HEADER_LEN], ct_len).unwrap();
            assert_eq!(opened.plaintext_len(), len64);
            assert_eq!(opened.chunk_count(), len64 / CHUNK_SIZE_U64 + 1);
            let mut joined = Vec::new();
            for i in (0..opened.chunk_count()).rev() {
                let (start, clen) = opened.chunk_range(i);
                let start = usize::try_from(start).unwrap();
                let part = opened.decrypt_chunk(i, &ct[start..start + clen]).unwrap();
                joined.splice(0..0, part);
            }
            assert_eq!(joined, pt);
        }
    }

    #[test]
    fn length_functions_agree() {
        for p in (0..5 * CHUNK_SIZE_U64).step_by(97).chain([
            CHUNK_SIZE_U64 - 1,
            CHUNK_SIZE_U64,
            CHUNK_SIZE_U64 + 1,
            MAX_PLAINTEXT_LEN,
        ]) {
            assert_eq!(plaintext_len(ciphertext_len(p)).unwrap(), p);
        }
        // Every ciphertext length maps to at most one plaintext length, and back.
        for c in 0..HEADER_LEN_U64 + 3 * ENCRYPTED_CHUNK_SIZE_U64 {
            match plaintext_len(c) {
                Ok(p) => assert_eq!(ciphertext_len(p), c),
                Err(Error::Truncated { .. }) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(matches!(
            plaintext_len(55),
            Err(Error::Truncated {
                what: Truncation::Header { len: 55 }
            })
        ));
        assert!(matches!(
            plaintext_len(56),
            Err(Error::Truncated {
                what: Truncation::MissingFinalChunk { full_chunks: 0 }
            })
        ));
        assert!(matches!(
            plaintext_len(56 + 15),
            Err(Error::Truncated {
                what: Truncation::PartialChunk { index: 0, .. }
            })
        ));
        assert!(matches!(
            plaintext_len(ciphertext_len(MAX_PLAINTEXT_LEN) + 1),
            Err(Error::TooLong)
        ));
    }

    #[test]
    fn truncation_at_chunk_boundary_fails() {
        let (_, ct) = encrypt(3 * CHUNK_SIZE);
        for chunks in 0..=3 {
            let cut = &ct[..HEADER_LEN + chunks * ENCRYPTED_CHUNK_SIZE];
            let expect = u64::try_from(chunks).unwrap();
            for r in [decrypt_all(&KEY, CTX, cut), stream_decrypt(cut, CTX)] {
                match r {
                    Err(Error::Truncated {
                        what: Truncation::MissingFinalChunk { full_chunks },
                    }) => assert_eq!(full_chunks, expect),
                    other => panic!("{other:?}"),
                }
            }
        }
        // Truncating inside the final (empty) chunk's tag.
        let cut = &ct[..ct.len() - 1];
        assert!(matches!(
            decrypt_all(&KEY, CTX, cut),
            Err(Error::Truncated {
                what: Truncation::PartialChunk { index: 3, .. }
            })
        ));
        assert!(matches!(
            stream_decrypt(cut, CTX),
            Err(Error::Truncated {
                what: Truncation::PartialChunk { index: 3, .. }
            })
        ));
        // Header-only and short header.
        assert!(matches!(
            Decryptor::new(&KEY, CTX, &ct[..HEADER_LEN - 1]),
            Err(Error::Truncated {
                what: Truncation::Header { len: 55 }
            })
        ));
    }

    #[test]
    fn appended_byte_fails() {
        for len in [0, 100, CHUNK_SIZE] {
            let (_, mut ct) = encrypt(len);
            ct.push(0);
            assert!(decrypt_all(&KEY, CTX, &ct).is_err(), "len {len}");
            assert!(stream_decrypt(&ct, CTX).is_err(), "len {len}");
        }
        // A reader that reports end of stream after each part, then continues.
        struct Flaky<'a> {
            parts: Vec<&'a [u8]>,
        }
        impl Read for Flaky<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let Some(first) = self.parts.first_mut() else {
                    return Ok(0);
                };
                if first.is_empty() {
                    self.parts.remove(0);
                    return Ok(0);
                }
                let n = out.len().min(first.len());
                out[..n].copy_from_slice(&first[..n]);
                *first = &first[n..];
                Ok(n)
            }
        }
        let (_, ct) = encrypt(10);
        let eof_at = ct.len();
        let reader = Flaky {
            parts: vec![&ct[..], b"xyz"],
        };
        let mut dec = Decryptor::new(&KEY, CTX, reader).unwrap();
        let e = dec.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(matches!(
            unwrap_io(&e),
            Some(Error::TrailingData { offset }) if *offset == u64::try_from(eof_at).unwrap()
        ));
    }

    #[test]
    fn wrong_context_or_key_fails_at_header() {
        let (_, ct) = encrypt(CHUNK_SIZE + 5);
        let total = u64::try_from(ct.len()).unwrap();
        assert!(matches!(
            Decryptor::new(&KEY, b"other", &ct[..]),
            Err(Error::HeaderAuth)
        ));
        assert!(matches!(
            Opened::open(&KEY, b"other", &ct, total),
            Err(Error::HeaderAuth)
        ));
        assert!(matches!(
            decrypt_all(&[8u8; KEY_LEN], CTX, &ct),
            Err(Error::HeaderAuth)
        ));
        let mut bad = ct.clone();
        bad[3] ^= 1;
        assert!(matches!(
            decrypt_all(&KEY, CTX, &bad),
            Err(Error::HeaderAuth)
        ));
    }

    #[test]
    fn swapped_chunks_fail() {
        let (_, ct) = encrypt(3 * CHUNK_SIZE + 10);
        let mut bad = ct.clone();
        let a = HEADER_LEN..HEADER_LEN + ENCRYPTED_CHUNK_SIZE;
        let b = a.end..a.end + ENCRYPTED_CHUNK_SIZE;
        bad[a.clone()].copy_from_slice(&ct[b.clone()]);
        bad[b].copy_from_slice(&ct[a]);
        let expected_offset = HEADER_LEN_U64;
        for r in [decrypt_all(&KEY, CTX, &bad), stream_decrypt(&bad, CTX)] {
            match r {
                Err(Error::ChunkAuth { index: 0, offset }) => {
                    assert_eq!(offset, expected_offset)
                }
                other => panic!("{other:?}"),
            }
        }
        // Random access flags chunk 1 as well.
        let opened = Opened::open(&KEY, CTX, &bad, u64::try_from(bad.len()).unwrap()).unwrap();
        let (start, len) = opened.chunk_range(1);
        let start = usize::try_from(start).unwrap();
        assert!(matches!(
            opened.decrypt_chunk(1, &bad[start..start + len]),
            Err(Error::ChunkAuth { index: 1, offset }) if offset == chunk_offset(1)
        ));
    }

    #[test]
    fn flipped_bit_in_last_tag_fails() {
        for len in [0, 5, CHUNK_SIZE] {
            let (_, mut ct) = encrypt(len);
            let last = ct.len() - 1;
            ct[last] ^= 0x80;
            let index = u64::try_from(len / CHUNK_SIZE).unwrap();
            for r in [decrypt_all(&KEY, CTX, &ct), stream_decrypt(&ct, CTX)] {
                match r {
                    Err(Error::ChunkAuth { index: i, .. }) => assert_eq!(i, index),
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    #[test]
    fn decryptor_keeps_failing() {
        let (pt, mut ct) = encrypt(2 * CHUNK_SIZE + 3);
        ct[HEADER_LEN + ENCRYPTED_CHUNK_SIZE + 2] ^= 1; // corrupt chunk 1
        let mut dec = Decryptor::new(&KEY, CTX, &ct[..]).unwrap();
        let mut out = vec![0u8; CHUNK_SIZE];
        dec.read_exact(&mut out).unwrap();
        assert_eq!(out, pt[..CHUNK_SIZE]);
        for _ in 0..3 {
            let e = dec.read(&mut out).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert!(matches!(
                unwrap_io(&e),
                Some(Error::ChunkAuth { index: 1, .. })
            ));
        }
        // Same for a missing final chunk.
        let (_, ct) = encrypt(CHUNK_SIZE);
        let cut = &ct[..HEADER_LEN + ENCRYPTED_CHUNK_SIZE];
        let mut dec = Decryptor::new(&KEY, CTX, cut).unwrap();
        let mut sink = Vec::new();
        assert!(dec.read_to_end(&mut sink).is_err());
        assert_eq!(sink.len(), CHUNK_SIZE);
        for _ in 0..3 {
            let e = dec.read(&mut out).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
            assert!(matches!(unwrap_io(&e), Some(Error::Truncated { .. })));
        }
    }

    #[test]
    fn dropped_encryptor_output_does_not_decrypt() {
        for len in [0, 10, CHUNK_SIZE, 2 * CHUNK_SIZE + 1] {
            let mut out = Vec::new();
            {
                let mut enc = Encryptor::new(&KEY, CTX, &mut out).unwrap();
                enc.write_all(&message(len)).unwrap();
                drop(enc);
            }
            assert!(
                matches!(decrypt_all(&KEY, CTX, &out), Err(Error::Truncated { .. })),
                "len {len}"
            );
            assert!(
                matches!(stream_decrypt(&out, CTX), Err(Error::Truncated { .. })),
                "len {len}"
            );
        }
    }

    #[test]
    fn random_access_bounds() {
        let (_, ct) = encrypt(CHUNK_SIZE + 1);
        let opened = Opened::open(&KEY, CTX, &ct, u64::try_from(ct.len()).unwrap()).unwrap();
        assert_eq!(opened.chunk_count(), 2);
        assert_eq!(opened.chunk_range(1), (chunk_offset(1), TAG_LEN + 1));
        assert_eq!(opened.chunk_range(2), (u64::try_from(ct.len()).unwrap(), 0));
        assert!(matches!(
            opened.decrypt_chunk(2, &[]),
            Err(Error::ChunkOutOfRange { index: 2, count: 2 })
        ));
        assert!(matches!(
            opened.decrypt_chunk(0, &ct[HEADER_LEN..HEADER_LEN + 10]),
            Err(Error::ChunkLength { index: 0, .. })
        ));
        assert!(matches!(
            key_from_slice(&[0u8; 31]),
            Err(Error::InvalidKeySize { len: 31 })
        ));
    }

    #[test]
    fn poisoned_encryptor() {
        struct Failing;
        impl Write for Failing {
            fn write(&mut self, data: &[u8]) -> io::Result<usize> {
                if data.len() > HEADER_LEN {
                    Err(io::Error::other("disk full"))
                } else {
                    Ok(data.len())
                }
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut enc = Encryptor::new(&KEY, CTX, Failing).unwrap();
        assert!(enc.write_all(&message(CHUNK_SIZE)).is_err());
        let e = enc.write(b"x").unwrap_err();
        assert!(matches!(unwrap_io(&e), Some(Error::Poisoned)));
        assert!(matches!(enc.finish(), Err(Error::Poisoned)));
    }
}

/// Properties over generated keys, contexts and messages (proptest), around the chunk size.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn length() -> impl Strategy<Value = usize> {
        prop_oneof![
            0usize..64,
            (CHUNK_SIZE - 32)..(CHUNK_SIZE + 32),
            (2 * CHUNK_SIZE - 8)..(2 * CHUNK_SIZE + 8),
            0usize..(3 * CHUNK_SIZE),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn decrypt_of_encrypt_is_the_identity(
            key in any::<[u8; KEY_LEN]>(),
            ctx in proptest::collection::vec(any::<u8>(), 0..64),
            len in length(),
            seed in any::<u8>(),
        ) {
            let msg: Vec<u8> = (0..len)
                .map(|i| (i.to_le_bytes()[0]).wrapping_mul(31).wrapping_add(seed))
                .collect();
            let ct = encrypt_to_vec(&key, &ctx, &msg).unwrap();
            prop_assert_eq!(decrypt_all(&key, &ctx, &ct).unwrap(), msg);
        }

        #[test]
        fn any_flipped_bit_or_other_context_is_refused(
            len in 1usize..(2 * CHUNK_SIZE + 100),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let key = [9u8; KEY_LEN];
            let msg = vec![0x5a; len];
            let mut ct = encrypt_to_vec(&key, b"ctx", &msg).unwrap();
            prop_assert!(decrypt_all(&key, b"other", &ct).is_err());
            let i = at.index(ct.len());
            ct[i] ^= 1 << bit;
            prop_assert!(decrypt_all(&key, b"ctx", &ct).is_err());
        }
    }
}
