//! Where bundles live: a bundle URL (local path, `file://`, later `s3://…`) opened as an
//! `object_store` store rooted at the bundle. The storage layer moves bytes only: it never
//! sees plaintext or keys, and it knows nothing of the manifest.
//!
//! The pipelines are synchronous code on worker threads; this module bridges to
//! `object_store`'s async API through one shared runtime ([`runtime`]).

use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion, WriteMultipart,
};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

pub mod aws_profile;
pub mod remote;

/// The runtime that drives async I/O for the synchronous pipelines. Never call into it from
/// inside an async task.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ferry-io")
            .enable_all()
            .build()
            .expect("cannot start the I/O runtime")
    })
}

/// What a listing found at a path: only regular files are ever opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Symlink,
    Directory,
    /// FIFO, socket, device.
    Special,
}

impl EntryKind {
    /// For messages: "a symlink", "a directory", "a FIFO, socket or device".
    pub fn describe(self) -> &'static str {
        match self {
            EntryKind::File => "a regular file",
            EntryKind::Symlink => "a symlink",
            EntryKind::Directory => "a directory",
            EntryKind::Special => "a FIFO, socket or device",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Bundle-relative path with `/` separators.
    pub path: String,
    pub size: u64,
    pub kind: EntryKind,
    /// When it was last written, where the store or file system says.
    pub modified: Option<std::time::SystemTime>,
}

/// Upload buffer of an [`ObjectWriter`]: the memory one open file costs.
const UPLOAD_CHUNK: usize = 8 * 1024 * 1024;

/// A bundle location.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// The bundle directory, for stores on the local file system.
    local_root: Option<PathBuf>,
    url: String,
    /// What this handle wrote (files completed or written whole, and a local directory it
    /// made), so a failed export can take it back ([`Store::remove_written`]).
    written: Arc<std::sync::Mutex<Written>>,
}

#[derive(Default)]
struct Written {
    files: Vec<String>,
    made_root: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.url)
    }
}

impl Store {
    /// Opens a bundle URL: a local path, `file://PATH`, or an object-store URL (`s3://`,
    /// `gs://`, `az://`; see [`remote`]). `create` makes a missing local directory (export);
    /// otherwise a missing bundle is an error that says so.
    pub fn open(url: &str, create: bool) -> Result<Store> {
        let local = if let Some(rest) = url.strip_prefix("file://") {
            PathBuf::from(rest)
        } else if url.contains("://") {
            return Self::open_remote(url, create);
        } else {
            PathBuf::from(url)
        };
        let made_root = create && !local.exists();
        if create {
            std::fs::create_dir_all(&local).map_err(|e| {
                Error::io(
                    format!("cannot create bundle directory {}", local.display()),
                    e,
                )
            })?;
        } else {
            match std::fs::metadata(&local) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Error::invalid(
                        crate::redact::display_location(url),
                        "",
                        "not a directory: a bundle is a directory",
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::invalid(
                        crate::redact::display_location(url),
                        "",
                        "no bundle here (the directory does not exist)",
                    ));
                }
                Err(e) => {
                    return Err(Error::io(
                        format!(
                            "cannot open bundle {}",
                            crate::redact::display_location(url)
                        ),
                        e,
                    ));
                }
            }
        }
        let root = std::fs::canonicalize(&local).map_err(|e| {
            Error::io(
                format!("cannot open bundle directory {}", local.display()),
                e,
            )
        })?;
        let fs = LocalFileSystem::new_with_prefix(&root).map_err(|e| {
            Error::Storage(format!(
                "cannot open bundle directory {}: {e}",
                root.display()
            ))
        })?;
        Ok(Store {
            inner: Arc::new(fs),
            local_root: Some(root),
            url: crate::redact::display_location(url),
            written: Arc::new(std::sync::Mutex::new(Written {
                files: vec![],
                made_root,
            })),
        })
    }

    fn open_remote(url: &str, create: bool) -> Result<Store> {
        let inner = remote::open(url)?;
        let store = Store {
            inner,
            local_root: None,
            url: crate::redact::display_location(url),
            written: Arc::default(),
        };
        if !create {
            // One listing call: an empty prefix is "no bundle here", not a list of missing files.
            let top = runtime()
                .block_on(store.inner.list_with_delimiter(None))
                .map_err(|e| store.storage_err("list", "", e))?;
            if top.objects.is_empty() && top.common_prefixes.is_empty() {
                return Err(Error::invalid(
                    crate::redact::display_location(url),
                    "",
                    "no bundle here (nothing is stored under this prefix)",
                ));
            }
        }
        Ok(store)
    }

    /// Whether the bundle lives on the local file system.
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// The bundle location as messages show it ([`crate::redact::display_location`]).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn location(rel: &str) -> Result<Path> {
        Path::parse(rel).map_err(|e| Error::Other(format!("invalid object path {rel:?}: {e}")))
    }

    fn storage_err(&self, what: &str, rel: &str, e: object_store::Error) -> Error {
        match e {
            object_store::Error::NotFound { .. } => {
                Error::invalid(&self.url, rel, format!("missing ({what})"))
            }
            denied @ (object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }) => Error::Storage(format!(
                "{}: cannot {what} {rel}: {denied}; check the store's credentials in the environment",
                self.url
            )),
            // The client gave up after retrying 5xx, throttling or connection errors: the
            // store may answer later, and a re-run resumes.
            other if gave_up(&other) => Error::Temporary(format!(
                "{}: cannot {what} {rel}: {other}; try again when the store answers",
                self.url
            )),
            other if out_of_space(&other).is_some() => {
                out_of_space_error(&format!("{}: cannot {what} {rel}", self.url), &other)
            }
            other => Error::Storage(format!("{}: cannot {what} {rel}: {other}", self.url)),
        }
    }

    /// Up to `n` names at the top of the location (files, and directories or common
    /// prefixes with a trailing `/`), sorted: what a new export finds where it would write.
    pub fn first_entries(&self, n: usize) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if let Some(root) = &self.local_root {
            let rd = std::fs::read_dir(root)
                .map_err(|e| Error::io(format!("cannot list {}", root.display()), e))?;
            for item in rd {
                let item =
                    item.map_err(|e| Error::io(format!("cannot list {}", root.display()), e))?;
                let dir = item.file_type().is_ok_and(|t| t.is_dir());
                let name = item.file_name().to_string_lossy().into_owned();
                out.push(if dir { format!("{name}/") } else { name });
            }
        } else {
            let top = runtime()
                .block_on(self.inner.list_with_delimiter(None))
                .map_err(|e| self.storage_err("list", "", e))?;
            out.extend(top.objects.into_iter().map(|o| o.location.to_string()));
            out.extend(top.common_prefixes.into_iter().map(|p| format!("{p}/")));
        }
        out.sort();
        out.truncate(n);
        Ok(out)
    }

    /// Removes, best effort, every file this handle wrote, and the local bundle directory
    /// (and its `data/`) when this handle made it and it is empty then: what a failed
    /// export leaves is nothing a later export would ship. Returns the files it could not
    /// remove.
    pub fn remove_written(&self) -> Vec<String> {
        let written = std::mem::take(
            &mut *self
                .written
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let left: Vec<String> = written
            .files
            .into_iter()
            .filter(|f| self.delete(f).is_err())
            .collect();
        if let Some(root) = &self.local_root {
            let _ = std::fs::remove_dir(root.join("data"));
            if written.made_root {
                let _ = std::fs::remove_dir(root);
            }
        }
        left
    }

    fn wrote(&self, rel: &str) {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .files
            .push(rel.to_string());
    }

    /// Every object under the bundle, with its kind. On a local disk the walk does not
    /// follow symlinks, so a link is reported as a link and never opened.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        if let Some(root) = &self.local_root {
            let mut out = Vec::new();
            walk(root, root, &mut out, 0)?;
            out.sort_by(|a, b| a.path.cmp(&b.path));
            return Ok(out);
        }
        // At most MAX_LISTED objects are read: a prefix holding more is not a bundle ferry
        // wrote, and its listing must not grow without bound.
        let metas: Vec<_> = runtime().block_on(async {
            self.inner
                .list(None)
                .take(MAX_LISTED + 1)
                .collect::<Vec<_>>()
                .await
        });
        if metas.len() > MAX_LISTED {
            return Err(Error::Storage(format!(
                "{}: more than {MAX_LISTED} objects under the bundle's prefix: not a bundle ferry \
                 wrote; check the URL",
                self.url
            )));
        }
        let mut out = Vec::new();
        for m in metas {
            let m = m.map_err(|e| Error::Storage(format!("{}: cannot list: {e}", self.url)))?;
            out.push(Entry {
                path: m.location.to_string(),
                size: m.size,
                kind: EntryKind::File,
                modified: Some(m.last_modified.into()),
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// The entry at a bundle-relative path, without following links; `None` when absent.
    pub fn stat(&self, rel: &str) -> Result<Option<Entry>> {
        if let Some(root) = &self.local_root {
            let p = root.join(rel);
            return match std::fs::symlink_metadata(&p) {
                Ok(m) => Ok(Some(Entry {
                    path: rel.to_string(),
                    size: m.len(),
                    kind: kind_of(&m),
                    modified: m.modified().ok(),
                })),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(format!("{}: cannot stat {rel}", self.url), e)),
            };
        }
        match runtime().block_on(self.inner.head(&Self::location(rel)?)) {
            Ok(m) => Ok(Some(Entry {
                path: rel.to_string(),
                size: m.size,
                kind: EntryKind::File,
                modified: Some(m.last_modified.into()),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.storage_err("stat", rel, e)),
        }
    }

    /// Reads a whole small file, refusing it before reading when it exceeds `cap` bytes.
    pub fn read_capped(&self, rel: &str, cap: u64) -> Result<Bytes> {
        let entry = self
            .stat(rel)?
            .ok_or_else(|| Error::invalid(&self.url, rel, "missing"))?;
        if entry.kind != EntryKind::File {
            return Err(Error::invalid(
                &self.url,
                rel,
                "not a regular file (symlink, directory or device): refused",
            ));
        }
        if entry.size > cap {
            return Err(Error::invalid(
                &self.url,
                rel,
                format!(
                    "{} bytes, more than the {cap}-byte limit for this file",
                    entry.size
                ),
            ));
        }
        let mut out = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
        self.reader(rel)?
            .take(cap + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::io(format!("{}: reading {rel}", self.url), e))?;
        if out.len() as u64 > cap {
            return Err(Error::invalid(
                &self.url,
                rel,
                format!("grew past the {cap}-byte limit while read"),
            ));
        }
        Ok(Bytes::from(out))
    }

    /// A sequential reader over a file's stored bytes.
    pub fn reader(&self, rel: &str) -> Result<ObjectReader> {
        let loc = Self::location(rel)?;
        let res = runtime()
            .block_on(self.inner.get(&loc))
            .map_err(|e| self.storage_err("read", rel, e))?;
        let source = match res.payload {
            // A local file is read on the caller's thread, in LOCAL_READ pieces: the
            // store's stream would hop to the runtime's blocking pool for every 8 KiB
            // (a verify pass spent more time in futex than in SHA-256).
            object_store::GetResultPayload::File(file, _) if res.range.start == 0 => Source::File(
                std::io::BufReader::with_capacity(LOCAL_READ, file.take(res.range.end)),
            ),
            payload => Source::Stream(
                object_store::GetResult { payload, ..res }.into_stream(),
                Bytes::new(),
            ),
        };
        Ok(ObjectReader {
            source: Some(source),
        })
    }

    /// Reads a byte range of a file's stored bytes.
    pub fn read_range(&self, rel: &str, range: Range<u64>) -> Result<Bytes> {
        let loc = Self::location(rel)?;
        runtime()
            .block_on(self.inner.get_range(&loc, range))
            .map_err(|e| self.storage_err("read", rel, e))
    }

    /// A streaming writer for a new file; nothing is visible at `rel` until
    /// [`ObjectWriter::finish`], and a writer dropped unfinished leaves nothing behind.
    pub fn writer(&self, rel: &str) -> Result<ObjectWriter> {
        let loc = Self::location(rel)?;
        let upload = runtime()
            .block_on(self.inner.put_multipart(&loc))
            .map_err(|e| self.storage_err("create", rel, e))?;
        Ok(ObjectWriter {
            upload: Some(WriteMultipart::new_with_chunk_size(upload, UPLOAD_CHUNK)),
            written: 0,
            path: rel.to_string(),
            store: self.clone(),
        })
    }

    /// Writes a whole file atomically (replaces what is there).
    pub fn put(&self, rel: &str, bytes: Bytes) -> Result<()> {
        let loc = Self::location(rel)?;
        runtime()
            .block_on(self.inner.put(&loc, PutPayload::from(bytes)))
            .map(|_| self.wrote(rel))
            .map_err(|e| self.storage_err("write", rel, e))
    }

    /// Writes a whole file only if nothing exists at `rel`: how the manifest is published,
    /// so an existing bundle is never overwritten and two exports cannot both complete.
    pub fn put_new(&self, rel: &str, bytes: Bytes) -> Result<()> {
        let loc = Self::location(rel)?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match runtime().block_on(self.inner.put_opts(&loc, PutPayload::from(bytes), opts)) {
            Ok(_) => {
                self.wrote(rel);
                Ok(())
            }
            Err(object_store::Error::AlreadyExists { .. }) => Err(Error::Usage(format!(
                "{}: {rel} already exists: a bundle is already there, and ferry never overwrites one; \
                 choose a new bundle location",
                self.url
            ))),
            Err(e) => Err(self.storage_err("write", rel, e)),
        }
    }

    /// Reads a whole small file (refused over `cap` bytes, as [`Store::read_capped`]) with
    /// the version it was read at, for a later [`Store::replace_if`].
    pub fn read_versioned(&self, rel: &str, cap: u64) -> Result<(Bytes, Version)> {
        if self.local_root.is_some() {
            let bytes = self.read_capped(rel, cap)?;
            let v = Version::Local(Sha256::digest(&bytes).into());
            return Ok((bytes, v));
        }
        let loc = Self::location(rel)?;
        let res = runtime()
            .block_on(self.inner.get(&loc))
            .map_err(|e| self.storage_err("read", rel, e))?;
        if res.meta.size > cap {
            return Err(Error::invalid(
                &self.url,
                rel,
                format!(
                    "{} bytes, more than the {cap}-byte limit for this file",
                    res.meta.size
                ),
            ));
        }
        let version = Version::Remote(UpdateVersion {
            e_tag: res.meta.e_tag.clone(),
            version: res.meta.version.clone(),
        });
        let bytes = runtime()
            .block_on(res.bytes())
            .map_err(|e| self.storage_err("read", rel, e))?;
        if bytes.len() as u64 > cap {
            return Err(Error::invalid(
                &self.url,
                rel,
                format!("grew past the {cap}-byte limit while read"),
            ));
        }
        Ok((bytes, version))
    }

    /// Replaces a whole file only if it is still at `expected` (as read by
    /// [`Store::read_versioned`]); [`Replaced::Conflict`] when another writer changed it
    /// since. On an object store a conditional put (`If-Match` on the e-tag); on a local
    /// disk, under the [`Store::lock_exclusive`] lock the caller holds, a compare of the
    /// current content before a staged file is renamed over it (file and directory
    /// synced), so a reader sees the old file or the new one, never a mix.
    pub fn replace_if(&self, rel: &str, bytes: Bytes, expected: &Version) -> Result<Replaced> {
        if let Some(root) = &self.local_root {
            let Version::Local(want) = expected else {
                return Ok(Replaced::Conflict);
            };
            let current = match std::fs::read(root.join(rel)) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(Replaced::Conflict);
                }
                Err(e) => return Err(Error::io(format!("{}: cannot read {rel}", self.url), e)),
            };
            if <[u8; 32]>::from(Sha256::digest(&current)) != *want {
                return Ok(Replaced::Conflict);
            }
            let mut id = [0u8; 8];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
            let tmp = root.join(format!(".{rel}.ferry-{}.tmp", hex::encode(id)));
            let write = || -> std::io::Result<()> {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_all()?;
                drop(f);
                std::fs::rename(&tmp, root.join(rel))?;
                std::fs::File::open(root)?.sync_all()
            };
            if let Err(e) = write() {
                let _ = std::fs::remove_file(&tmp);
                return Err(write_failure(
                    format!("{}: cannot replace {rel}", self.url),
                    &e,
                    Error::Storage,
                ));
            }
            return Ok(Replaced::Done(Version::Local(
                Sha256::digest(&bytes).into(),
            )));
        }
        let Version::Remote(v) = expected else {
            return Ok(Replaced::Conflict);
        };
        if v.e_tag.is_none() && v.version.is_none() {
            return Err(Error::Storage(format!(
                "{}: the store gave no e-tag or version for {rel}, so it cannot be replaced \
                 conditionally; nothing changed",
                self.url
            )));
        }
        let loc = Self::location(rel)?;
        let opts = PutOptions {
            mode: PutMode::Update(v.clone()),
            ..Default::default()
        };
        match runtime().block_on(self.inner.put_opts(&loc, PutPayload::from(bytes), opts)) {
            Ok(r) => Ok(Replaced::Done(Version::Remote(UpdateVersion::from(r)))),
            Err(object_store::Error::Precondition { .. }) => Ok(Replaced::Conflict),
            Err(e @ object_store::Error::NotImplemented { .. }) => Err(Error::Storage(format!(
                "{}: this store does not support conditional writes ({e}), which replacing \
                 {rel} safely needs; nothing changed",
                self.url
            ))),
            Err(e) => Err(self.storage_err("replace", rel, e)),
        }
    }

    /// Removes the staged files a [`Store::replace_if`] killed before its rename left in a
    /// local bundle directory (`.<name>.ferry-<hex>.tmp`, for the given names); call it
    /// under [`Store::lock_exclusive`]. Nothing to do on an object store (a put is whole).
    pub fn remove_staged(&self, names: &[&str]) {
        let Some(root) = &self.local_root else { return };
        let Ok(rd) = std::fs::read_dir(root) else {
            return;
        };
        for item in rd.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            let staged = names.iter().any(|n| {
                name.strip_prefix(&format!(".{n}.ferry-"))
                    .and_then(|r| r.strip_suffix(".tmp"))
                    .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            });
            if staged && item.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(item.path());
            }
        }
    }

    /// An exclusive lock on a local bundle directory (`flock` on the directory itself, so
    /// no lock file is left behind, and a killed process releases it), held until the
    /// guard is dropped; another holder → exit 75. `None` on an object store, where
    /// [`Store::replace_if`]'s conditional puts keep writers apart.
    pub fn lock_exclusive(&self, who: &str) -> Result<Option<DirLock>> {
        let Some(root) = &self.local_root else {
            return Ok(None);
        };
        let dir = std::fs::File::open(root)
            .map_err(|e| Error::io(format!("cannot open {}", root.display()), e))?;
        match dir.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Temporary(format!(
                    "{}: another {who} is working on this bundle (it holds the directory's \
                     lock); nothing changed: run again when it is done",
                    self.url
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(format!("cannot lock {}", root.display()), e));
            }
        }
        Ok(Some(DirLock { _dir: dir }))
    }

    /// Removes a local bundle directory's `data/` when it is empty (`ferry gc`).
    pub fn remove_empty_data_dir(&self) {
        if let Some(root) = &self.local_root {
            let _ = std::fs::remove_dir(root.join("data"));
        }
    }

    /// Removes one file (`ferry gc`). On a local disk by its name as listed, which may be a
    /// staged `NAME#N` file `object_store` itself refuses to name; never through a link.
    pub fn remove_listed(&self, rel: &str) -> Result<()> {
        let Some(root) = &self.local_root else {
            return self.delete(rel);
        };
        if rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(Error::Other(format!("invalid object path {rel:?}")));
        }
        match std::fs::remove_file(root.join(rel)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("{}: cannot remove {rel}", self.url), e)),
        }
    }

    pub fn delete(&self, rel: &str) -> Result<()> {
        let loc = Self::location(rel)?;
        match runtime().block_on(self.inner.delete(&loc)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.storage_err("delete", rel, e)),
        }
    }
}

/// The version a file was read at ([`Store::read_versioned`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// Object store: its e-tag and version id.
    Remote(UpdateVersion),
    /// Local disk: the SHA-256 of its content.
    Local([u8; 32]),
}

/// What [`Store::replace_if`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    /// Replaced; the file's new version.
    Done(Version),
    /// Another writer changed the file since it was read: nothing written.
    Conflict,
}

/// The lock of [`Store::lock_exclusive`], released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DirLock {
    _dir: std::fs::File,
}

/// Whether an error (however wrapped) is the object store giving up after its retries, or
/// a transport failure (connection refused or reset, timeout): the store may answer later.
pub fn gave_up(e: &dyn std::fmt::Display) -> bool {
    let m = e.to_string();
    m.contains(" retries, max_retries") || m.contains("HTTP error: ")
}

/// Why a write failed, when the disk (or the process's file-size limit) ran out: the
/// operating system's words, found in the error's text however deeply it is wrapped.
pub fn out_of_space(e: &dyn std::fmt::Display) -> Option<&'static str> {
    let m = e.to_string();
    let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if has(&["os error 28)", "No space left on device", "StorageFull"]) {
        Some("no space left on device")
    } else if has(&["os error 122)", "Disk quota exceeded", "QuotaExceeded"]) {
        Some("disk quota exceeded")
    } else if has(&["os error 27)", "File too large", "FileTooLarge"]) {
        Some("file too large (the file system's or the process's file-size limit)")
    } else {
        None
    }
}

/// The error for a write that ran out of space: which file, why, and what to do.
fn out_of_space_error(what: &str, e: &dyn std::fmt::Display) -> Error {
    let why = out_of_space(e).unwrap_or("out of space");
    Error::Storage(format!(
        "{what}: {why} ({e}); the export stopped and removed the files it had written: free \
         space where the bundle goes (or choose a location with room; a smaller --max-part-size \
         for a file-size limit) and run it again"
    ))
}

/// A failed write of `what`: temporary (exit 75) when the store gave up after retrying,
/// a clear "no space left" when the disk is full, otherwise `other`.
pub fn write_failure(what: String, e: &dyn std::fmt::Display, other: fn(String) -> Error) -> Error {
    if out_of_space(e).is_some() {
        return out_of_space_error(&what, e);
    }
    if gave_up(e) {
        Error::Temporary(format!(
            "{what}: {e}; the store did not answer after retries: try again when it does"
        ))
    } else {
        other(format!("{what}: {e}"))
    }
}

fn kind_of(m: &std::fs::Metadata) -> EntryKind {
    let t = m.file_type();
    if t.is_symlink() {
        EntryKind::Symlink
    } else if t.is_dir() {
        EntryKind::Directory
    } else if t.is_file() {
        EntryKind::File
    } else {
        EntryKind::Special
    }
}

/// The most objects a bundle's listing reads: every part a manifest may list
/// (`bundle::layout::MAX_PARTS`, checked there against this), and room for the other files
/// and some junk.
pub const MAX_LISTED: usize = 1_010_000;

fn walk(root: &FsPath, dir: &FsPath, out: &mut Vec<Entry>, depth: usize) -> Result<()> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
    for item in rd {
        if out.len() > MAX_LISTED {
            return Err(Error::Storage(format!(
                "{}: more than {MAX_LISTED} entries in the bundle's directory: not a bundle ferry \
                 wrote; check the path",
                root.display()
            )));
        }
        let item = item.map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        let path = item.path();
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
        let rel = path
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_else(|_| path.to_string_lossy().into_owned());
        let kind = kind_of(&meta);
        // Only the bundle's own `data/` directory is descended into; any other directory is
        // reported as an unexpected entry, never walked (no unbounded recursion).
        if kind == EntryKind::Directory && depth == 0 && rel == "data" {
            walk(root, &path, out, depth + 1)?;
        } else {
            out.push(Entry {
                path: rel,
                size: meta.len(),
                kind,
                modified: meta.modified().ok(),
            });
        }
    }
    Ok(())
}

/// Sequential reads over an object's bytes.
pub struct ObjectReader {
    source: Option<Source>,
}

/// Bytes read from a local file at a time ([`Store::reader`]).
const LOCAL_READ: usize = 256 * 1024;

enum Source {
    /// A local file, read directly (the length the store found when it opened it).
    File(std::io::BufReader<std::io::Take<std::fs::File>>),
    /// A remote object's byte stream, and what is left of its current piece.
    Stream(BoxStream<'static, object_store::Result<Bytes>>, Bytes),
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.source.as_mut() {
            None => Ok(0),
            Some(Source::File(file)) => file.read(buf),
            Some(Source::Stream(stream, current)) => {
                while current.is_empty() {
                    match runtime().block_on(stream.next()) {
                        Some(Ok(b)) => *current = b,
                        Some(Err(e)) => return Err(std::io::Error::other(e)),
                        None => {
                            self.source = None;
                            return Ok(0);
                        }
                    }
                }
                let n = buf.len().min(current.len());
                buf[..n].copy_from_slice(&current.split_to(n));
                Ok(n)
            }
        }
    }
}

/// A file being written: a multipart upload fed in [`UPLOAD_CHUNK`] pieces, with at most
/// [`UPLOADS_IN_FLIGHT`] pieces uploading while the next one fills, so encoding and upload
/// overlap and memory stays bounded whatever the file's size.
pub struct ObjectWriter {
    upload: Option<WriteMultipart>,
    written: u64,
    path: String,
    /// The store it writes to, which records the file once it is complete.
    store: Store,
}

/// Pieces of one file uploading at once (each [`UPLOAD_CHUNK`] bytes of memory).
const UPLOADS_IN_FLIGHT: usize = 2;

impl ObjectWriter {
    /// Completes the upload: the file appears whole at its path. Returns the bytes written.
    pub fn finish(mut self) -> Result<u64> {
        let upload = self.upload.take().expect("finish called once");
        runtime().block_on(upload.finish()).map_err(|e| {
            write_failure(
                format!("{}: cannot complete {}", self.store.url, self.path),
                &e,
                Error::Storage,
            )
        })?;
        self.store.wrote(&self.path);
        Ok(self.written)
    }

    /// Bytes handed to the writer so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let upload = self
            .upload
            .as_mut()
            .ok_or_else(|| std::io::Error::other("upload already finished"))?;
        // Backpressure: wait (and surface a failed piece) before buffering more.
        runtime()
            .block_on(upload.wait_for_capacity(UPLOADS_IN_FLIGHT))
            .map_err(std::io::Error::other)?;
        let _ctx = runtime().enter();
        upload.write(data);
        self.written += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            // Unfinished: abort so no partial object is left behind to look complete.
            let _ = runtime().block_on(upload.abort());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_named_however_deeply_it_is_wrapped() {
        let io = std::io::Error::from_raw_os_error(28);
        let wrapped = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(io),
        };
        assert_eq!(out_of_space(&wrapped), Some("no space left on device"));
        let e = write_failure(
            "data/ab.fe: Parquet write failed".into(),
            &wrapped,
            Error::Other,
        );
        let m = e.to_string();
        assert!(
            m.starts_with("data/ab.fe: Parquet write failed: no space left on device"),
            "{m}"
        );
        assert!(m.contains("free space"), "{m}");
        let quota = std::io::Error::from_raw_os_error(122);
        assert_eq!(out_of_space(&quota), Some("disk quota exceeded"));
        assert_eq!(
            out_of_space(&std::io::Error::other("connection reset")),
            None
        );
    }

    #[test]
    fn a_local_file_reads_whole_and_exact_through_the_direct_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap(), false).unwrap();
        // Longer than one LOCAL_READ piece and not a multiple of it.
        let bytes: Vec<u8> = (0..LOCAL_READ * 3 + 12_345)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        store.put("data/x.fe", Bytes::from(bytes.clone())).unwrap();
        let mut reader = store.reader("data/x.fe").unwrap();
        assert!(matches!(reader.source, Some(Source::File(_))));
        let mut back = Vec::new();
        // Odd-sized reads, as a decoder makes them.
        let mut buf = [0u8; 7_777];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            back.extend_from_slice(&buf[..n]);
        }
        assert_eq!(back.len(), bytes.len());
        assert!(
            back == bytes,
            "the bytes read differ from the bytes written"
        );
        assert_eq!(
            reader.read(&mut buf).unwrap(),
            0,
            "reads past the end give nothing"
        );
    }
}
