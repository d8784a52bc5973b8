//! Turning a bundle location into a bundle ferry may use, in the order of docs/RELIABILITY.md ("Import verification order"):
//! capped manifest read, strict parse, file set (regular files, sizes), key slots and
//! manifest MAC, then a full pass (SHA-256, authenticated decryption, catalog, Parquet
//! footers and row counts). Only a [`Checked`] bundle can feed a loader.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::catalog::Catalog;
use super::layout::{self, CATALOG_CAP, MAC_CAP, MANIFEST_CAP};
use super::manifest::{FileEntry, Manifest};
use crate::bundle::parts::{PartReader, RunDigests, scan_file, scan_file_teeing};
use crate::crypto::envelope::{DataKey, Opener, file_context};
use crate::crypto::keys::Keys;

/// Files a scan hashes and authenticates at once (each on its own thread, up to the
/// machine's cores).
const SCAN_THREADS: usize = 4;
use crate::crypto::signing::{self, SIG_CAP, SigFile, SignatureCheck};
use crate::error::Finding;
use crate::storage::{EntryKind, Store};
use crate::{Error, Result};

/// A bundle whose manifest parsed and whose file set matches it (sizes, regular files).
pub struct OpenBundle {
    pub store: Store,
    pub manifest: Manifest,
    pub manifest_bytes: Bytes,
    /// SHA-256 of manifest.json: which content a bundle id stands for (ledger).
    pub manifest_sha256: String,
    /// Files the manifest does not list (never read).
    pub extra_files: Vec<String>,
    /// `manifest.json.minisig`, read with its cap (checked by [`OpenBundle::check_signature`]).
    pub signature: SigFile,
    /// `manifest.json.minisig.next`, left by a rekey killed after its commit (read the same
    /// way; it counts only when it verifies this manifest under the trust list).
    pub pending_signature: SigFile,
}

/// Files a bundle has besides those the manifest lists.
fn known_extra(path: &str) -> bool {
    path == layout::MANIFEST
        || path == layout::MANIFEST_MAC
        || path == layout::SHA256SUMS
        || path == layout::MANIFEST_SIG
        || path == layout::MANIFEST_SIG_PENDING
}

impl OpenBundle {
    /// Steps 1, 3, 4 and 5: everything a courier can check without reading data.
    pub fn open(url: &str, strict: bool) -> Result<OpenBundle> {
        let store = Store::open(url, false)?;
        let manifest_bytes = match store.stat(layout::MANIFEST)? {
            None => {
                return Err(Error::invalid(
                    crate::redact::display_location(url),
                    layout::MANIFEST,
                    "missing: incomplete bundle (the export did not finish?), or not a bundle directory",
                ));
            }
            Some(_) => store.read_capped(layout::MANIFEST, MANIFEST_CAP)?,
        };
        let manifest =
            Manifest::parse(&manifest_bytes).map_err(|findings| Error::InvalidBundle {
                bundle: crate::redact::display_location(url),
                findings,
            })?;
        let manifest_sha256 = hex::encode(Sha256::digest(&manifest_bytes));
        let mut findings = Vec::new();
        let entries: HashMap<String, _> = store
            .entries()?
            .into_iter()
            .map(|e| (e.path.clone(), e))
            .collect();
        let listed: HashSet<&str> = manifest.files().map(|f| f.path.as_str()).collect();
        for f in manifest.files() {
            match entries.get(&f.path) {
                None => findings.push(Finding {
                    file: f.path.clone(),
                    message: "missing".into(),
                }),
                Some(e) if e.kind != EntryKind::File => findings.push(Finding {
                    file: f.path.clone(),
                    message: format!(
                        "is {}, not a regular file: refused, never opened",
                        e.kind.describe()
                    ),
                }),
                Some(e) if e.size != f.size => findings.push(Finding {
                    file: f.path.clone(),
                    message: format!(
                        "size {}, manifest says {} ({})",
                        e.size,
                        f.size,
                        if e.size < f.size {
                            "truncated? copy it again"
                        } else {
                            "data appended?"
                        }
                    ),
                }),
                Some(_) => {}
            }
        }
        if manifest.encrypted() {
            match entries.get(layout::MANIFEST_MAC) {
                None => findings.push(Finding {
                    file: layout::MANIFEST_MAC.into(),
                    message: "missing: an encrypted bundle must carry its manifest MAC (policy: MAC required)".into(),
                }),
                Some(e) if e.kind != EntryKind::File => findings.push(Finding {
                    file: layout::MANIFEST_MAC.into(),
                    message: "not a regular file: refused".into(),
                }),
                _ => {}
            }
        }
        let mut extra: Vec<String> = entries
            .keys()
            .filter(|p| !listed.contains(p.as_str()) && !known_extra(p))
            .cloned()
            .collect();
        extra.sort();
        // The signature: capped, a regular file, else never read (refused by name under --trust).
        let sig_file = |name: &str| -> Result<SigFile> {
            Ok(match entries.get(name) {
                None => SigFile::Absent,
                Some(e) if e.kind != EntryKind::File => {
                    SigFile::NotAFile(e.kind.describe().to_string())
                }
                Some(e) if e.size > SIG_CAP => SigFile::Oversize(e.size),
                Some(_) => SigFile::Present(store.read_capped(name, SIG_CAP)?.to_vec()),
            })
        };
        let signature = sig_file(layout::MANIFEST_SIG)?;
        let pending_signature = sig_file(layout::MANIFEST_SIG_PENDING)?;
        if strict {
            // A signature's name holding something else than a file is never read; --strict
            // says so (without it, only a trust list refuses it, by name).
            for (name, sig) in [
                (layout::MANIFEST_SIG, &signature),
                (layout::MANIFEST_SIG_PENDING, &pending_signature),
            ] {
                if let SigFile::NotAFile(kind) = sig {
                    findings.push(Finding {
                        file: name.to_string(),
                        message: format!("is {kind}, not a signature file (--strict)"),
                    });
                }
            }
        }
        if strict && !extra.is_empty() {
            for p in &extra {
                findings.push(Finding {
                    file: p.clone(),
                    message: "not listed in the manifest (--strict)".into(),
                });
            }
        }
        if !findings.is_empty() {
            return Err(Error::InvalidBundle {
                bundle: crate::redact::display_location(url),
                findings,
            });
        }
        Ok(OpenBundle {
            store,
            manifest,
            manifest_bytes,
            manifest_sha256,
            extra_files: extra,
            signature,
            pending_signature,
        })
    }

    pub fn url(&self) -> &str {
        self.store.url()
    }

    /// Warnings to show the user (files never read).
    pub fn warnings(&self) -> Vec<String> {
        if self.extra_files.is_empty() {
            return vec![];
        }
        vec![format!(
            "{} file(s) in the bundle are not in its manifest and were not read: {}",
            self.extra_files.len(),
            self.extra_files.join(", ")
        )]
    }

    /// No downgrade (docs/SECURITY.md): a plain bundle has no MAC and proves nothing, so a
    /// key option given for one is refused (exit 77, before anything is written: the
    /// operator expected an authenticated bundle), and a command that loads or writes out
    /// the data (`import`, `decrypt`) takes a plain bundle only when `accept_plain` says the
    /// operator asked for it (`--allow-unencrypted`). `accept_plain` is `None` for commands
    /// that only report (`verify`, `inspect`): they say the bundle is unauthenticated.
    ///
    /// Then, for every bundle, the signature against a trust list ([`OpenBundle::check_signature`]):
    /// every reader calls this right after opening, so an untrusted bundle stops here.
    pub fn refuse_downgrade(&self, keys: &Keys, accept_plain: Option<bool>) -> Result<()> {
        if self.manifest.encrypted() {
            self.check_signature(keys)?;
            return Ok(());
        }
        let what = "it has no MAC, so nothing shows who made it: anyone who could write the bundle could \
                    have made it (on the medium, in the bucket), its source id and sequence included";
        if !keys.trust.is_empty() {
            return Err(Error::Key(format!(
                "bundle is NOT encrypted: {} was written with --no-encrypt, yet --trust or --trust-file was \
                 given; {what}. Refused, nothing written: a trust list expects an encrypted, signed bundle",
                crate::redact::display_location(self.url())
            )));
        }
        if !keys.is_empty() {
            let given: Vec<&str> = [
                (!keys.key_files.is_empty(), "--key-file (or FERRY_KEY_FILE)"),
                (
                    !keys.identities.is_empty(),
                    "--identity (or FERRY_IDENTITY)",
                ),
                (!keys.passphrases.is_empty(), "--passphrase-env"),
                (!keys.recipients.is_empty(), "--recipient"),
            ]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
            return Err(Error::Key(format!(
                "bundle is NOT encrypted: {} was written with --no-encrypt, yet a key was given \
                 ({}); {what}. Refused, nothing written: a key expects an encrypted bundle, and a \
                 plain one in its place is a downgrade",
                crate::redact::display_location(self.url()),
                given.join(", ")
            )));
        }
        if accept_plain == Some(false) {
            return Err(Error::Key(format!(
                "bundle is NOT encrypted: {} was written with --no-encrypt; {what}. Refused, nothing \
                 written; pass --allow-unencrypted (and no key option) to accept it knowingly",
                crate::redact::display_location(self.url())
            )));
        }
        Ok(())
    }

    /// The manifest's signature against the trust list of `keys` (docs/SECURITY.md,
    /// "Signed manifests"): with a trust list, a valid signature by a trusted key or
    /// [`Error::Key`] (exit 77) naming why not. Checked right after the manifest is read,
    /// before any key slot is opened (and again by [`OpenBundle::unlock`]).
    /// A manifest.json.minisig that fails gives way to a pending signature (a rekey killed
    /// between its commit and its signature) only when that one verifies this manifest by a
    /// trusted key; the refusal otherwise is the main file's.
    pub fn check_signature(&self, keys: &Keys) -> Result<SignatureCheck> {
        self.check_signature_with(&keys.trust)
    }

    /// [`OpenBundle::check_signature`] against the trust list `trust`.
    pub fn check_signature_with(&self, trust: &signing::TrustList) -> Result<SignatureCheck> {
        let at = crate::redact::display_location(self.url());
        let main = signing::check(
            &self.signature,
            &self.manifest,
            &self.manifest_bytes,
            trust,
            &at,
        );
        if main.is_err()
            && !trust.is_empty()
            && let Ok(ok) = signing::check(
                &self.pending_signature,
                &self.manifest,
                &self.manifest_bytes,
                trust,
                &at,
            )
            && ok.checked
        {
            let mut ok = ok;
            ok.note = Some(format!(
                "{}: {} does not verify this manifest; the staged {} (left by a `ferry rekey` \
                 stopped after its commit) does, by trusted key id {}, and was accepted; run \
                 `ferry rekey {at} --key-file KEY --sign-key FILE` (or --identity, --passphrase-env: \
                 a key that opens it) to move it into place",
                at,
                layout::MANIFEST_SIG,
                layout::MANIFEST_SIG_PENDING,
                ok.signed_by.as_deref().unwrap_or("?")
            ));
            return Ok(ok);
        }
        main
    }

    /// The fingerprint of manifest.json, to compare over a phone.
    pub fn fingerprint(&self) -> String {
        signing::fingerprint(&self.manifest_bytes)
    }

    /// Step 6: opens a key slot and checks the manifest MAC. Plain bundles need no key.
    /// A trust list is checked first: no slot is opened for an unsigned or untrusted bundle.
    pub fn unlock(&self, keys: &Keys) -> Result<Unlocked> {
        self.check_signature(keys)?;
        if !self.manifest.encrypted() {
            return Ok(Unlocked {
                file_key: None,
                opened_by: None,
            });
        }
        let id = &self.manifest.bundle_id;
        let (bdk, opener) = DataKey::open(id, &self.manifest.encryption.key_slots, keys)?;
        let mac = self.store.read_capped(layout::MANIFEST_MAC, MAC_CAP)?;
        let lines =
            mac_lines(&mac).map_err(|m| Error::invalid(self.url(), layout::MANIFEST_MAC, m))?;
        if !mac_matches(&bdk, id, &self.manifest_bytes, &lines) {
            // A rekey replaces manifest.json between this reader's two reads: not tampering.
            if self
                .store
                .read_capped(layout::MANIFEST, MANIFEST_CAP)
                .is_ok_and(|now| now != self.manifest_bytes)
            {
                return Err(Error::Temporary(format!(
                    "{}: manifest.json changed while it was read (a `ferry rekey` of this bundle?); \
                     run again",
                    self.url()
                )));
            }
            return Err(Error::invalid(
                self.url(),
                layout::MANIFEST,
                "manifest modified after export (MAC mismatch); the key is right, the manifest is not: \
                 copy the bundle again from the source",
            ));
        }
        Ok(Unlocked {
            file_key: Some(bdk.file_key(id)),
            opened_by: Some(opener),
        })
    }

    /// SHA-256 (and, unlocked, full authenticated decryption) of every listed file,
    /// collecting every failure. `progress` is told the stored bytes of each file done.
    /// The [`Scan`] it returns is the only way to [`OpenBundle::verified`]: a scan without
    /// a key, or one with findings, can report but never feed a loader.
    pub fn scan_all(
        &self,
        unlocked: Option<Unlocked>,
        progress: &(dyn Fn(&FileEntry) + Sync),
    ) -> Scan {
        self.scan_all_spooling(unlocked, progress, None)
            .unwrap_or_else(|e| Scan {
                findings: findings_of(e),
                clean: None,
            })
    }

    /// [`OpenBundle::scan_all`] that keeps every file's stored bytes in `spool` as they
    /// are read (see [`Spool`]). An error of the spool itself (a full disk) is returned
    /// as such, not as a finding about the bundle.
    fn scan_all_spooling(
        &self,
        unlocked: Option<Unlocked>,
        progress: &(dyn Fn(&FileEntry) + Sync),
        spool: Option<&Spool>,
    ) -> Result<Scan> {
        // Each part's run digests, for the reads after the scan (see `RunDigests`).
        let digests: std::sync::Mutex<HashMap<String, std::sync::Arc<RunDigests>>> =
            std::sync::Mutex::new(HashMap::new());
        let keep = |f: &FileEntry, d: RunDigests| {
            if layout::is_part_path(&f.path)
                && let Ok(mut m) = digests.lock()
            {
                m.insert(f.path.clone(), std::sync::Arc::new(d));
            }
        };
        // One file's findings; `Err` only for the spool's own failure (a full disk).
        let scan_one = |f: &FileEntry| -> Result<Vec<Finding>> {
            let key = unlocked
                .as_ref()
                .and_then(|u| u.seal_for(&self.manifest.bundle_id, f));
            let scanned = match spool {
                None => scan_file_teeing(
                    &self.store,
                    self.url(),
                    f,
                    key,
                    &mut std::io::sink(),
                    &mut std::io::sink(),
                )
                .map(|d| keep(f, d)),
                Some(sp) => {
                    let mut out = sp.file(&f.path)?;
                    let r = scan_file_teeing(
                        &self.store,
                        self.url(),
                        f,
                        key,
                        &mut std::io::sink(),
                        &mut out,
                    )
                    .map(|d| keep(f, d));
                    if let Err(Error::Io { context, source }) = r {
                        if !context.starts_with("keeping a copy of") {
                            return Ok(findings_of(Error::Io { context, source }));
                        }
                        return Err(Error::Io {
                            context: format!("{context} in {}", sp.path().display()),
                            source,
                        });
                    }
                    r.and_then(|()| {
                        out.into_inner()
                            .map_err(std::io::IntoInnerError::into_error)
                            .map(drop)
                            .map_err(|e| {
                                Error::io(
                                    format!(
                                        "writing the spool copy of {} in {}",
                                        f.path,
                                        sp.path().display()
                                    ),
                                    e,
                                )
                            })
                    })
                }
            };
            Ok(scanned.err().map(findings_of).unwrap_or_default())
        };
        // Files are hashed and authenticated on up to SCAN_THREADS threads at once (SHA-256
        // and AES-GCM are CPU work: a part a thread); findings keep the manifest's order.
        let files: Vec<&FileEntry> = self.manifest.files().collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, SCAN_THREADS)
            .min(files.len().max(1));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<std::sync::Mutex<Option<Result<Vec<Finding>>>>> =
            files.iter().map(|_| std::sync::Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(f) = files.get(i) else { break };
                        let r = scan_one(f);
                        progress(f);
                        let fatal = r.is_err();
                        if let Ok(mut slot) = results[i].lock() {
                            *slot = Some(r);
                        }
                        if fatal {
                            // The spool failed: no point reading the rest.
                            next.store(files.len(), std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        let mut findings = Vec::new();
        for r in results {
            match r
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
            {
                Some(Ok(f)) => findings.extend(f),
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        let clean = unlocked
            .filter(|_| findings.is_empty())
            .map(|unlocked| Clean {
                unlocked,
                bundle_id: self.manifest.bundle_id.clone(),
                manifest_sha256: self.manifest_sha256.clone(),
                digests: digests
                    .into_inner()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            });
        Ok(Scan { findings, clean })
    }

    /// Decrypts and parses the catalog and checks it against the manifest.
    pub fn read_catalog(&self, unlocked: &Unlocked) -> Result<Catalog> {
        self.read_catalog_in(&self.store, unlocked)
    }

    /// [`OpenBundle::read_catalog`] from `store` (the bundle's, or a spool's copy of it).
    fn read_catalog_in(&self, store: &Store, unlocked: &Unlocked) -> Result<Catalog> {
        let f = &self.manifest.catalog;
        if f.size > CATALOG_CAP {
            return Err(Error::invalid(
                self.url(),
                &f.path,
                format!("{} bytes, more than the catalog limit", f.size),
            ));
        }
        let mut plain = Zeroizing::new(Vec::new());
        let key = unlocked.seal_for(&self.manifest.bundle_id, f);
        scan_file(store, self.url(), f, key, &mut *plain)?;
        let catalog = Catalog::parse(&plain)
            .map_err(|m| Error::invalid(self.url(), &f.path, format!("malformed catalog: {m}")))?;
        let problems = catalog.check_against(&self.manifest);
        if !problems.is_empty() {
            return Err(Error::InvalidBundle {
                bundle: self.url().to_string(),
                findings: problems,
            });
        }
        Ok(catalog)
    }

    /// Step 8 in full: every file hashed and authenticated, the catalog read, and every
    /// part's Parquet footer opened with its row count compared to the catalog.
    pub fn check(self, keys: &Keys, progress: &(dyn Fn(&FileEntry) + Sync)) -> Result<Checked> {
        let unlocked = self.unlock(keys)?;
        self.check_unlocked(unlocked, progress)
    }

    /// [`OpenBundle::check`] with the slots already opened (no second key derivation).
    pub fn check_unlocked(
        self,
        unlocked: Unlocked,
        progress: &(dyn Fn(&FileEntry) + Sync),
    ) -> Result<Checked> {
        let scan = self.scan_all(Some(unlocked), progress);
        self.verified(scan)
    }

    /// [`OpenBundle::check_unlocked`] that downloads each file once: the verification
    /// pass keeps every file's stored bytes (ciphertext) in `spool`, and the catalog, the
    /// footers and every later read of a part come from there. A failure of the spool
    /// itself (a full disk) is an error of its own, naming the spool directory.
    pub fn check_spooled(
        self,
        unlocked: Unlocked,
        progress: &(dyn Fn(&FileEntry) + Sync),
        spool: Spool,
    ) -> Result<Checked> {
        let scan = self.scan_all_spooling(Some(unlocked), progress, Some(&spool))?;
        self.verified_in(scan, Some(spool))
    }

    /// The rest of the check once [`OpenBundle::scan_all`] found every file clean with the
    /// key: the catalog, and every part's footer and row count. A scan with findings, one
    /// made without a key, or one of another bundle is refused.
    pub fn verified(self, scan: Scan) -> Result<Checked> {
        self.verified_in(scan, None)
    }

    /// [`OpenBundle::verified`], reading from `spool` when the scan kept the files there.
    fn verified_in(self, scan: Scan, spool: Option<Spool>) -> Result<Checked> {
        let clean = match scan.clean {
            Some(c) if scan.findings.is_empty() => c,
            _ if !scan.findings.is_empty() => {
                return Err(Error::InvalidBundle {
                    bundle: self.url().to_string(),
                    findings: scan.findings,
                });
            }
            _ => {
                return Err(Error::Key(format!(
                    "{}: the bundle was checked without its key, so nothing was authenticated: \
                     give the key to load or decrypt it",
                    self.url()
                )));
            }
        };
        if clean.bundle_id != self.manifest.bundle_id
            || clean.manifest_sha256 != self.manifest_sha256
        {
            return Err(Error::invalid(
                self.url(),
                layout::MANIFEST,
                "the scan was made of another bundle: check this one",
            ));
        }
        let unlocked = clean.unlocked;
        let catalog =
            self.read_catalog_in(spool.as_ref().map_or(&self.store, |s| &s.store), &unlocked)?;
        let checked = Checked {
            bundle: self,
            catalog,
            unlocked,
            spool,
            digests: clean.digests,
        };
        let mut findings = Vec::new();
        for (t, p) in checked
            .catalog
            .tables
            .iter()
            .flat_map(|t| t.all_parts().map(move |p| (t, p)))
        {
            match checked.part_rows(
                &p.path,
                &format!("table {} part {}", t.table.qualified(), p.index),
            ) {
                Ok(rows) if rows == p.rows => {}
                Ok(rows) => findings.push(Finding {
                    file: p.path.clone(),
                    message: format!(
                        "table {} part {}: Parquet holds {rows} rows, catalog says {}",
                        t.table.qualified(),
                        p.index,
                        p.rows
                    ),
                }),
                Err(e) => findings.extend(findings_of(e)),
            }
        }
        if !findings.is_empty() {
            return Err(Error::InvalidBundle {
                bundle: checked.bundle.url().to_string(),
                findings,
            });
        }
        Ok(checked)
    }
}

/// What [`OpenBundle::scan_all`] found. `findings` is for reports; the proof that every file
/// authenticated (private, so nothing else can make one) is what [`OpenBundle::verified`] takes.
pub struct Scan {
    pub findings: Vec<Finding>,
    clean: Option<Clean>,
}

/// Every file of one bundle hashed and decrypted with `unlocked`, and nothing found.
struct Clean {
    unlocked: Unlocked,
    bundle_id: String,
    manifest_sha256: String,
    /// Each part's [`RunDigests`], as the scan read it.
    digests: HashMap<String, std::sync::Arc<RunDigests>>,
}

/// The most lines `manifest.mac` may hold: a rekey keeps the old manifest's MAC beside the
/// new one until the new manifest is in place (docs/FORMAT.md, "Rekey").
pub const MAX_MAC_LINES: usize = 8;

/// The MAC lines of `manifest.mac` (blank lines and surrounding spaces ignored): at least
/// one and at most [`MAX_MAC_LINES`]. A line that is not a MAC simply verifies nothing.
pub fn mac_lines(bytes: &[u8]) -> std::result::Result<Vec<String>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not text: damaged".to_string())?;
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        return Err("empty: the manifest MAC is missing".into());
    }
    if lines.len() > MAX_MAC_LINES {
        return Err(format!(
            "{} lines, more than the {MAX_MAC_LINES} a bundle may carry: not written by ferry",
            lines.len()
        ));
    }
    Ok(lines)
}

/// Whether any of `lines` is the MAC of `manifest` under `bdk` (each checked in constant time).
pub fn mac_matches(bdk: &DataKey, bundle_id: &str, manifest: &[u8], lines: &[String]) -> bool {
    lines.iter().fold(false, |ok, l| {
        bdk.verify_manifest_mac(bundle_id, manifest, l) | ok
    })
}

/// The findings an error stands for (bundle errors carry several).
pub fn findings_of(e: Error) -> Vec<Finding> {
    match e {
        Error::InvalidBundle { findings, .. } => findings,
        other => vec![Finding {
            file: String::new(),
            message: other.to_string(),
        }],
    }
}

/// The file key, once a slot has opened and the MAC checked out.
pub struct Unlocked {
    file_key: Option<Zeroizing<[u8; 32]>>,
    opened_by: Option<Opener>,
}

impl Unlocked {
    /// The kind of slot that opened the bundle; `None` for a plain bundle.
    pub fn opened_by(&self) -> Option<Opener> {
        self.opened_by
    }

    /// The key and context to decrypt `f` with; `None` for a plain bundle.
    pub fn seal_for(&self, bundle_id: &str, f: &FileEntry) -> Option<(&[u8; 32], Vec<u8>)> {
        let kind = if f.path.starts_with("data/") {
            "part"
        } else {
            "catalog"
        };
        self.file_key
            .as_ref()
            .map(|k| (&**k, file_context(bundle_id, kind, &f.path)))
    }
}

/// A bundle that passed every check; the only thing loaders and `decrypt` accept.
pub struct Checked {
    pub bundle: OpenBundle,
    pub catalog: Catalog,
    unlocked: Unlocked,
    /// Each part's digests from the verification pass: every later read is checked
    /// against them ([`RunDigests`]).
    digests: HashMap<String, std::sync::Arc<RunDigests>>,
    /// Where the parts are read from after verification when they were spooled.
    spool: Option<Spool>,
}

/// The import's spool (`import --spool-dir`, `--spool-limit`; README "Importing from an
/// object store"): a private temporary directory (mode 0700, removed when the import
/// ends) that keeps the stored bytes of every file the verification pass downloads, so
/// each part of a bundle on an object store is downloaded once. It holds ciphertext only
/// (a plain bundle is never spooled), and every part read back from it is hashed again
/// against the manifest before it is used, then authenticated chunk by chunk as always.
pub struct Spool {
    dir: tempfile::TempDir,
    store: Store,
}

impl Spool {
    /// A new spool directory `ferry-spool-<bundle id first 8>-XXXXXX` inside `parent`.
    pub fn create(parent: &std::path::Path, bundle_id: &str) -> Result<Spool> {
        let id: String = bundle_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect();
        let dir = tempfile::Builder::new()
            .prefix(&format!("ferry-spool-{id}-"))
            .tempdir_in(parent)
            .map_err(|e| {
                Error::io(
                    format!(
                        "cannot make a spool directory in {} (--spool-dir; --spool-limit 0 reads each part \
                         twice from the store instead)",
                        parent.display()
                    ),
                    e,
                )
            })?;
        let path = dir.path().to_str().ok_or_else(|| {
            Error::Usage(format!(
                "--spool-dir {}: not a UTF-8 path; give another directory",
                parent.display()
            ))
        })?;
        let store = Store::open(path, false)?;
        Ok(Spool { dir, store })
    }

    /// The spool directory.
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A new file at bundle-relative `rel` (its directories made), buffered.
    fn file(&self, rel: &str) -> Result<std::io::BufWriter<std::fs::File>> {
        let p = self.dir.path().join(rel);
        let made = p
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&p)
            });
        made.map(|f| std::io::BufWriter::with_capacity(1 << 20, f))
            .map_err(|e| Error::io(format!("cannot create the spool file {}", p.display()), e))
    }
}

impl Checked {
    fn entry(&self, path: &str) -> Result<&FileEntry> {
        self.bundle
            .manifest
            .parts
            .iter()
            .find(|p| p.path == path)
            .ok_or_else(|| Error::invalid(self.bundle.url(), path, "not in the manifest"))
    }

    /// A reader of one part's plaintext (authenticated chunk by chunk). A spooled part is
    /// hashed again first: the copy must still be the bytes the manifest lists.
    pub fn part_reader(&self, path: &str) -> Result<std::sync::Arc<PartReader>> {
        self.open_part(path, true)
    }

    /// Whether the parts are read from a local spool (one download each).
    pub fn spooled(&self) -> Option<&std::path::Path> {
        self.spool.as_ref().map(Spool::path)
    }

    fn open_part(&self, path: &str, recheck: bool) -> Result<std::sync::Arc<PartReader>> {
        let entry = self.entry(path)?;
        let key = self
            .unlocked
            .seal_for(&self.bundle.manifest.bundle_id, entry);
        let Some(spool) = &self.spool else {
            return PartReader::open(
                &self.bundle.store,
                self.bundle.url(),
                entry,
                key,
                self.digests.get(path).cloned(),
            );
        };
        if recheck {
            scan_file(&spool.store, self.bundle.url(), entry, None, &mut std::io::sink()).map_err(
                |e| {
                    Error::Temporary(format!(
                        "{}: the spooled copy of {path} in {} is no longer what was verified ({}): something \
                         else changed the spool directory; nothing of this part was written: re-run the import \
                         (it resumes), with --spool-dir on a private directory",
                        self.bundle.url(),
                        spool.path().display(),
                        findings_of(e)
                            .into_iter()
                            .map(|f| f.message)
                            .collect::<Vec<_>>()
                            .join("; ")
                    ))
                },
            )?;
        }
        PartReader::open(
            &spool.store,
            self.bundle.url(),
            entry,
            key,
            self.digests.get(path).cloned(),
        )
    }

    fn part_rows(&self, path: &str, label: &str) -> Result<u64> {
        // Read right after the scan wrote it: hashed then.
        let r = self.open_part(path, false)?;
        Ok(r.batches(self.bundle.url(), label, 1024)?.0)
    }

    /// Decrypts one part to `out` as the plain Parquet file it is.
    pub fn write_plain_part(&self, path: &str, out: &mut dyn std::io::Write) -> Result<()> {
        let entry = self.entry(path)?;
        let key = self
            .unlocked
            .seal_for(&self.bundle.manifest.bundle_id, entry);
        scan_file(&self.bundle.store, self.bundle.url(), entry, key, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_lines_take_one_to_eight_lines_and_any_line_verifies() {
        let bdk = DataKey::from_bytes([3; 32]);
        let mac = bdk.manifest_mac("b", b"{}");
        let junk = "0".repeat(64);
        let lines = mac_lines(format!("{junk}\r\n\n{mac}\n").as_bytes()).unwrap();
        assert_eq!(lines, vec![junk.clone(), mac.clone()]);
        assert!(mac_matches(&bdk, "b", b"{}", &lines));
        assert!(!mac_matches(&bdk, "b", b"{ }", &lines));
        assert!(!mac_matches(&bdk, "b", b"{}", std::slice::from_ref(&junk)));
        assert!(mac_lines(b"\n \n").unwrap_err().contains("empty"));
        let nine = format!("{junk}\n").repeat(MAX_MAC_LINES + 1);
        assert!(mac_lines(nine.as_bytes()).unwrap_err().contains("9 lines"));
        assert!(mac_lines(&[0xff, 0xfe]).is_err());
        // The most lines a reader takes fit under the file's cap.
        assert!((MAX_MAC_LINES as u64) * 66 <= MAC_CAP);
    }
}
