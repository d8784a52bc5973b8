//! `ferry rekey`: adds and removes key slots of an encrypted bundle by rewriting its
//! manifest (slots, then MAC) only; the catalog and every part stay byte-identical
//! (docs/FORMAT.md, "Rekey").
//!
//! The bundle's data key does not change: an added slot wraps the same key
//! ([`DataKey::wrap`] with a [`Keys`] value, so every kind of slot `Keys` can hold is added
//! the same way), a removed slot is dropped by key id. The pipeline:
//!
//! 1. open: the manifest through the verification gate ([`OpenBundle::open`]: capped read,
//!    strict parse, file set), then manifest.json and manifest.mac read again with their
//!    versions (e-tag on an object store, content hash on disk); a key opens a slot and a
//!    line of manifest.mac must verify the manifest (else exit 65, nothing written). The
//!    parts are not re-hashed: nothing of them is read or written.
//! 2. claim: manifest.mac gets the new manifest's MAC added to its lines (conditional on
//!    the version read): the old manifest still verifies, and so will the new one.
//! 3. commit: manifest.json is replaced by the new manifest (conditional on the version
//!    read): the one step that makes the rekey happen. Another rekey that got there first
//!    → exit 75, nothing of this one in the bundle.
//! 4. tidy: manifest.mac is rewritten with the new MAC alone (conditional on the claim).
//!
//! Killed anywhere, the bundle is the old one (before 3) or the new one (after), and its
//! manifest always verifies. On a local disk the whole run holds the bundle directory's
//! lock ([`Store::lock_exclusive`]), so a second rekey exits 75 at once.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::bundle::check::{MAX_MAC_LINES, OpenBundle, mac_lines, mac_matches};
use crate::bundle::layout::{self, MAC_CAP, MANIFEST_CAP};
use crate::bundle::manifest::Manifest;
use crate::crypto::envelope::{DataKey, KeySlot};
use crate::crypto::keys::Keys;
use crate::report::Progress;
use crate::storage::{Replaced, Store, Version};
use crate::{Error, Result};

/// What to change, and the keys that open the bundle.
#[derive(Default)]
pub struct RekeyPlan {
    pub bundle_url: String,
    /// Keys that open the bundle (one must).
    pub keys: Keys,
    /// Keys to add a slot for (`--add-key-file`, `--add-passphrase-env`; the lead adds
    /// `--add-recipient` here once `Keys` holds age recipients).
    pub add: Keys,
    /// Key ids of slots to remove (`--remove-slot`).
    pub remove: Vec<String>,
    /// Signs the new manifest (`--sign-key`): `manifest.json.minisig` is rewritten after the
    /// new manifest is in place. Without it, a signature of the old manifest is removed
    /// (it would no longer verify) and the summary says so.
    pub sign_key: Option<crate::crypto::signing::SigningKey>,
    /// `--sign-unverified`: sign although the present signature cannot be checked (an
    /// unsigned bundle, or one whose rekey was killed before its signature was written).
    pub sign_unverified: bool,
    /// `--drop-signature`: a signed bundle rekeyed without --sign-key loses its signature
    /// knowingly (refused otherwise).
    pub drop_signature: bool,
}

/// One slot as the summary shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotInfo {
    /// `key-file`, `passphrase` (the manifest's `type`).
    pub kind: String,
    pub key_id: String,
}

impl SlotInfo {
    pub fn of(s: &KeySlot) -> SlotInfo {
        SlotInfo {
            kind: s.kind().to_string(),
            key_id: s.key_id().to_string(),
        }
    }
}

/// The summary of a rekey (`--json` prints it as is).
#[derive(Debug, Clone, Serialize)]
pub struct Rekeyed {
    pub command: String,
    /// `ok`, or `nothing to do` (every key asked for had a slot, nothing to remove).
    pub status: String,
    pub exit_code: i32,
    pub bundle: String,
    pub bundle_id: String,
    pub slots_before: Vec<SlotInfo>,
    pub slots_after: Vec<SlotInfo>,
    pub added: Vec<SlotInfo>,
    pub removed: Vec<SlotInfo>,
    /// The catalog and parts: never read or written.
    pub files_unchanged: usize,
    /// The key id of the signing key that signed the new manifest (`--sign-key`), if any.
    pub signed_by: Option<String>,
    pub manifest_sha256_before: String,
    pub manifest_sha256_after: String,
    /// The fingerprint of manifest.json after the rekey (`ferry inspect` prints the same):
    /// the one to read to whoever compares it.
    pub fingerprint_after: String,
    /// Keys asked for that already had a slot, and other things done as asked.
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
    pub message: String,
}

impl Rekeyed {
    pub fn render(&self) -> String {
        let list = |v: &[SlotInfo]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter()
                    .map(|s| format!("{} ({})", s.key_id, s.kind))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let mut out = format!("{}\n", crate::report::printable(&self.message));
        out.push_str(&format!("  slots before: {}\n", list(&self.slots_before)));
        out.push_str(&format!("  slots after:  {}\n", list(&self.slots_after)));
        if !self.added.is_empty() {
            out.push_str(&format!("  added:        {}\n", list(&self.added)));
        }
        if !self.removed.is_empty() {
            out.push_str(&format!("  removed:      {}\n", list(&self.removed)));
        }
        out.push_str(&format!(
            "  files unchanged: {} (catalog and parts, byte for byte)\n",
            self.files_unchanged
        ));
        if let Some(k) = &self.signed_by {
            out.push_str(&format!(
                "  signed by:    key id {k} (manifest.json.minisig)\n"
            ));
        }
        out.push_str(&format!(
            "  fingerprint:  {} (of manifest.json{})\n",
            self.fingerprint_after,
            if self.manifest_sha256_after == self.manifest_sha256_before {
                ", unchanged"
            } else {
                ": new, the one to compare from now on"
            }
        ));
        for n in &self.notes {
            out.push_str(&format!("note: {}\n", crate::report::printable(n)));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {}\n", crate::report::printable(w)));
        }
        out
    }
}

/// Runs a rekey (module docs).
pub fn rekey(plan: RekeyPlan, progress: &Progress) -> Result<Rekeyed> {
    let RekeyPlan {
        bundle_url,
        keys,
        mut add,
        remove,
        sign_key,
        sign_unverified,
        drop_signature,
    } = plan;
    let where_ = crate::redact::display_location(&bundle_url);
    let bundle = OpenBundle::open(&bundle_url, false)?;
    if !bundle.manifest.encrypted() {
        return Err(Error::Usage(format!(
            "bundle {where_} is NOT encrypted (written with --no-encrypt): it has no key slots to \
             change; export it again with a key"
        )));
    }
    if add.is_empty() && remove.is_empty() && sign_key.is_none() {
        return Err(Error::Usage(
            "nothing to change: give --add-key-file, --add-passphrase-env, --add-recipient, \
             --remove-slot or --sign-key"
                .into(),
        ));
    }
    // A signature vouches for the bundle: rekey signs only what a trusted signature already
    // covers (by the signing key itself or a key given with --trust/--trust-file), never an
    // unsigned bundle or one another key signed. With a trust list alone, it is checked as
    // every reader checks it.
    let mut sender_checked = false;
    if (sign_key.is_some() && !sign_unverified) || !keys.trust.is_empty() {
        let mut trust = keys.trust.clone();
        if let Some(k) = &sign_key {
            trust.add(crate::crypto::signing::TrustedKey::parse(
                &k.public_key(),
                "--sign-key",
            )?);
        }
        bundle.check_signature_with(&trust).map_err(|e| match e {
            Error::Key(m) if sign_key.is_some() => Error::Key(format!(
                "{m}. rekey --sign-key re-signs only a bundle already signed by that key or by a \
                 key given with --trust/--trust-file: a signature vouches for the bundle, and this \
                 one cannot be checked (FERRY_SIGN_KEY set in the environment counts as \
                 --sign-key). If you checked the bundle by other means (its fingerprint, from \
                 `ferry inspect`, with the sender's), add --sign-unverified. Nothing changed"
            )),
            other => other,
        })?;
        sender_checked = true;
    }
    // What is at the signature's name must be something a rekey can replace or remove:
    // found out now, before anything changes, not after the commit.
    match &bundle.signature {
        crate::crypto::signing::SigFile::NotAFile(what) => {
            return Err(Error::invalid(
                &where_,
                layout::MANIFEST_SIG,
                format!(
                    "is {what}, not a regular file: a rekey could not replace it; remove it (a \
                     bundle's signature is a small regular file). Nothing changed"
                ),
            ));
        }
        crate::crypto::signing::SigFile::Oversize(n) => {
            return Err(Error::invalid(
                &where_,
                layout::MANIFEST_SIG,
                format!("{n} bytes, too large to be a signature. Nothing changed"),
            ));
        }
        _ => {}
    }
    if let crate::crypto::signing::SigFile::NotAFile(what) = &bundle.pending_signature {
        return Err(Error::invalid(
            &where_,
            layout::MANIFEST_SIG_PENDING,
            format!(
                "is {what}, not a regular file: a rekey could not replace it; remove it (a \
                 pending signature is a small regular file). Nothing changed"
            ),
        ));
    }
    if sign_key.is_none()
        && !drop_signature
        && !matches!(bundle.signature, crate::crypto::signing::SigFile::Absent)
    {
        return Err(Error::Usage(format!(
            "bundle {where_} is signed (manifest.json.minisig), and a rekey changes its manifest: \
             the signature would no longer verify. Give --sign-key with the signing key to sign \
             the new manifest, or --drop-signature to remove the signature knowingly. Nothing \
             changed"
        )));
    }
    let store = &bundle.store;
    let _lock = store.lock_exclusive("ferry rekey")?;
    // What a rekey killed between staging and renaming left (never a bundle file).
    store.remove_staged(&[layout::MANIFEST, layout::MANIFEST_MAC]);
    progress.line(&format!("rekey: opening {where_}"));
    let (mbytes, mver) = store.read_versioned(layout::MANIFEST, MANIFEST_CAP)?;
    if mbytes != bundle.manifest_bytes {
        return Err(changed_meanwhile(&where_));
    }
    let (cbytes, cver) = store.read_versioned(layout::MANIFEST_MAC, MAC_CAP)?;
    let lines = mac_lines(&cbytes).map_err(|m| Error::invalid(&where_, layout::MANIFEST_MAC, m))?;
    let m0 = &bundle.manifest;
    let id = m0.bundle_id.as_str();
    let (bdk, opener) = DataKey::open(id, &m0.encryption.key_slots, &keys)?;
    if !mac_matches(&bdk, id, &mbytes, &lines) {
        // Another rekey replaced the manifest (and tidied its MAC) after it was read.
        if store
            .read_capped(layout::MANIFEST, MANIFEST_CAP)
            .is_ok_and(|now| now != mbytes)
        {
            return Err(changed_meanwhile(&where_));
        }
        return Err(Error::invalid(
            &where_,
            layout::MANIFEST,
            "manifest modified after export (MAC mismatch); the key is right, the manifest is not: \
             nothing changed; copy the bundle again from the source before a rekey",
        ));
    }

    // The new slot list: the old one without the removed slots, then the added ones.
    let before: Vec<SlotInfo> = m0.encryption.key_slots.iter().map(SlotInfo::of).collect();
    let mut notes = Vec::new();
    let mut removed = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in &remove {
        if !seen.insert(r.as_str()) {
            continue;
        }
        // A key id is public and short; anything else may be a secret pasted by mistake.
        let id_shape = r.len() == 19
            && matches!(&r[..3], "k1_" | "p1_" | "a1_")
            && r[3..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !id_shape {
            return Err(Error::Usage(
                "--remove-slot: not a key id (k1_…, p1_… or a1_… and 16 hex digits, as `ferry \
                 inspect` lists them; the value is not repeated here, in case it is a secret). \
                 Nothing changed"
                    .into(),
            ));
        }
        match before.iter().find(|s| s.key_id == *r) {
            Some(s) => removed.push(s.clone()),
            None => {
                return Err(Error::Usage(format!(
                    "--remove-slot {}: bundle {where_} has no slot with that key id; its slots: {}. \
                     Nothing changed",
                    crate::report::printable(r),
                    before
                        .iter()
                        .map(|s| format!("{} ({})", s.key_id, s.kind))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    let mut kept: Vec<KeySlot> = m0
        .encryption
        .key_slots
        .iter()
        .filter(|s| !removed.iter().any(|r| r.key_id == s.key_id()))
        .cloned()
        .collect();
    // A key that already has a slot (one that stays) is a no-op.
    add.key_files.retain(|k| {
        let has = kept.iter().any(|s| s.key_id() == k.id());
        if has {
            notes.push(format!(
                "key {} ({}) already has a slot: not added again",
                k.id(),
                k.origin
            ));
        }
        !has
    });
    add.recipients.retain(|r| {
        let has = kept.iter().any(|s| s.key_id() == r.id());
        if has {
            notes.push(format!(
                "recipient {} ({}) already has a slot: not added again",
                r.id(),
                r.origin
            ));
        }
        !has
    });
    let passphrase_slots: Vec<KeySlot> = kept
        .iter()
        .filter(|s| matches!(s, KeySlot::Passphrase { .. }))
        .cloned()
        .collect();
    if !passphrase_slots.is_empty() {
        let mut fresh = Vec::new();
        for p in std::mem::take(&mut add.passphrases) {
            let mut one = Keys::default();
            one.passphrases.push(p);
            if DataKey::unwrap(id, &passphrase_slots, &one).is_ok() {
                notes.push(
                    "a passphrase given to --add-passphrase-env already opens a slot: not added again"
                        .into(),
                );
            } else {
                fresh.extend(one.passphrases);
            }
        }
        add.passphrases = fresh;
    }
    let new_slots = if add.is_empty() {
        vec![]
    } else {
        bdk.wrap(id, &add)?
    };
    let added: Vec<SlotInfo> = new_slots.iter().map(SlotInfo::of).collect();
    kept.extend(new_slots);
    if kept.is_empty() {
        return Err(Error::Usage(format!(
            "refused: removing {} would leave bundle {where_} without any key slot, and nothing \
             could open it again; add a key in the same rekey (--add-key-file, \
             --add-passphrase-env, --add-recipient). Nothing changed",
            removed
                .iter()
                .map(|s| s.key_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let sha_before = hex::encode(Sha256::digest(&mbytes));
    let files_unchanged = m0.parts.len() + 1;
    let mut warnings = bundle.warnings();
    // An age slot opened it, and no trusted signature says who made it: anyone can make a
    // bundle for a public recipient. A key-file or passphrase slot added now would make it
    // look authenticated to whoever opens it with that secret.
    if opener == crate::crypto::envelope::Opener::Age
        && !sender_checked
        && added.iter().any(|s| s.kind != "age")
    {
        warnings.push(
            "opened with an age identity and no signature checked: its recipient is public, so \
             nothing shows who made this bundle, yet readers who open it with the key file or \
             passphrase added now will see it reported as authenticated. Check the sender first \
             (--trust with the sender's signing key, or its fingerprint from `ferry inspect` \
             compared with the sender's)"
                .into(),
        );
    }
    if added.is_empty() && removed.is_empty() {
        // Only a signature to (re)write: the manifest stays as it is, byte for byte.
        let signed_by = match &sign_key {
            Some(k) => {
                let sig = crate::crypto::signing::sign_manifest(k, m0, &mbytes)?;
                store.put(layout::MANIFEST_SIG, bytes::Bytes::from(sig))?;
                clear_pending(store);
                Some(k.key_id().to_string())
            }
            None => None,
        };
        let message = match &signed_by {
            Some(k) => format!(
                "bundle {id}: no slot to change; manifest.json.minisig rewritten, signed by {k} \
                 (the manifest itself was not rewritten)"
            ),
            None => format!("bundle {id}: nothing to change; the manifest was not rewritten"),
        };
        return Ok(Rekeyed {
            command: "rekey".into(),
            status: if signed_by.is_some() {
                "re-signed".into()
            } else {
                "nothing to do".into()
            },
            signed_by,
            exit_code: 0,
            bundle: where_.clone(),
            bundle_id: id.to_string(),
            slots_after: before.clone(),
            slots_before: before,
            added,
            removed,
            files_unchanged,
            manifest_sha256_after: sha_before.clone(),
            manifest_sha256_before: sha_before,
            fingerprint_after: crate::crypto::signing::fingerprint(&mbytes),
            notes,
            warnings,
            message,
        });
    }

    let mut m1: Manifest = m0.clone();
    m1.encryption.key_slots = kept;
    let new_bytes = m1.to_json();
    // The new manifest must pass the reader's own checks (slot caps, unique key ids).
    if let Err(findings) = Manifest::parse(&new_bytes) {
        return Err(Error::Usage(format!(
            "the rekeyed manifest would be refused by readers: {}. Nothing changed",
            findings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    let sha_after = hex::encode(Sha256::digest(&new_bytes));
    let fingerprint_after = crate::crypto::signing::fingerprint(&new_bytes);
    let new_mac = bdk.manifest_mac(id, &new_bytes);

    // The new manifest's signature, made before anything is written, staged as
    // manifest.json.minisig.next before the commit and moved into place after it: a rekey
    // killed between the commit and the move leaves the new manifest with the old
    // signature, and readers under `--trust` accept the pending one, which verifies it.
    let new_sig = match &sign_key {
        Some(k) => Some(crate::crypto::signing::sign_manifest(k, &m1, &new_bytes)?),
        None => None,
    };
    let had_sig = store.stat(layout::MANIFEST_SIG)?.is_some();

    // 2. claim: the new MAC beside the old ones.
    let claim = claim_lines(&lines, &new_mac, |l| {
        bdk.verify_manifest_mac(id, &mbytes, l)
    });
    let claimed = match store.replace_if(layout::MANIFEST_MAC, mac_file(&claim), &cver)? {
        Replaced::Done(v) => v,
        Replaced::Conflict => return Err(other_rekey(&where_, "manifest.mac")),
    };
    match &new_sig {
        Some(sig) => store.put(
            layout::MANIFEST_SIG_PENDING,
            bytes::Bytes::from(sig.clone()),
        )?,
        // A pending signature of an earlier rekey signs an older manifest: never this one.
        None => clear_pending(store),
    }
    crate::import::pause_at("rekey-claimed", 1);

    // 3. commit: the new manifest in place of the one read.
    match store.replace_if(layout::MANIFEST, bytes::Bytes::from(new_bytes), &mver)? {
        Replaced::Done(_) => {}
        Replaced::Conflict => {
            withdraw(store, &new_mac, claimed);
            return Err(other_rekey(&where_, "manifest.json"));
        }
    }
    crate::import::pause_at("rekey-committed", 1);
    let signed_by = match new_sig {
        Some(sig) => {
            store.put(layout::MANIFEST_SIG, bytes::Bytes::from(sig)).map_err(|e| {
                Error::Temporary(format!(
                    "{e}. The rekey itself is done (the new manifest is in place); its signature \
                     was not written: run `ferry rekey {where_} --key-file KEY --sign-key FILE` \
                     (or --identity, --passphrase-env: a key that opens it) to sign it"
                ))
            })?;
            clear_pending(store);
            sign_key.as_ref().map(|k| k.key_id().to_string())
        }
        None => {
            if had_sig {
                store.delete(layout::MANIFEST_SIG)?;
                warnings.push(
                    "the bundle was signed; that signature covered the old manifest and was \
                     removed (--drop-signature): readers with --trust now refuse it as unsigned"
                        .into(),
                );
            }
            None
        }
    };

    // 4. tidy: the new MAC alone.
    match store.replace_if(layout::MANIFEST_MAC, mac_file(&[new_mac]), &claimed) {
        Ok(Replaced::Done(_)) => {}
        Ok(Replaced::Conflict) | Err(_) => notes.push(
            "manifest.mac still holds the MAC of the previous manifest (another rekey wrote it \
             meanwhile, or the write failed): the bundle verifies, and the next rekey tidies it"
                .into(),
        ),
    }

    if let Some(chain) = &m0.chain_id {
        warnings.push(format!(
            "this bundle is link {} of chain {}: links exported --since it before this rekey name \
             its old manifest SHA-256 ({}…) as their predecessor, and a target that imports this \
             link after the rekey refuses them as a fork (import them with --accept-gap, or \
             import this link before rekeying it)",
            m0.sequence,
            chain.chars().take(12).collect::<String>(),
            &sha_before[..16]
        ));
    }
    notes.push(
        "a target that imported this bundle before the rekey knows it by its old manifest \
         SHA-256 and refuses the rekeyed copy as different content"
            .into(),
    );
    if !removed.is_empty() {
        notes.push(
            "a removed key no longer opens this copy of the bundle; whoever held it and opened \
             the bundle before may know its data key: to cut them off for good, export the data \
             again"
                .into(),
        );
    }
    let message = format!(
        "bundle {id} rekeyed: {} added, {} removed; only manifest.json and \
         manifest.mac{} were rewritten",
        crate::report::count(added.len() as u64, "slot", "slots"),
        removed.len(),
        if signed_by.is_some() {
            " (and manifest.json.minisig, signed again)"
        } else {
            ""
        }
    );
    Ok(Rekeyed {
        command: "rekey".into(),
        status: "ok".into(),
        signed_by,
        exit_code: 0,
        bundle: where_.clone(),
        bundle_id: id.to_string(),
        slots_before: before,
        slots_after: m1.encryption.key_slots.iter().map(SlotInfo::of).collect(),
        message,
        added,
        removed,
        files_unchanged,
        manifest_sha256_before: sha_before,
        manifest_sha256_after: sha_after,
        fingerprint_after,
        notes,
        warnings,
    })
}

/// Removes manifest.json.minisig.next, best effort: one left behind signs a manifest that
/// is no longer current, which no reader accepts.
fn clear_pending(store: &Store) {
    if matches!(store.stat(layout::MANIFEST_SIG_PENDING), Ok(Some(_))) {
        let _ = store.delete(layout::MANIFEST_SIG_PENDING);
    }
}

/// The lines of the claim: those read, then the new MAC. Past [`MAX_MAC_LINES`], the oldest
/// lines that do not verify the current manifest go first (left by rekeys killed between
/// claim and tidy; unsafe only with more than `MAX_MAC_LINES - 2` rekeys of one bundle in
/// flight at once).
fn claim_lines(lines: &[String], new_mac: &str, current: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out: Vec<String> = lines.iter().filter(|l| *l != new_mac).cloned().collect();
    while out.len() + 1 > MAX_MAC_LINES {
        match out.iter().position(|l| !current(l)) {
            Some(i) => {
                out.remove(i);
            }
            None => {
                out.remove(0);
            }
        }
    }
    out.push(new_mac.to_string());
    out
}

fn mac_file(lines: &[String]) -> bytes::Bytes {
    bytes::Bytes::from(lines.iter().map(|l| format!("{l}\n")).collect::<String>())
}

/// After a lost commit: takes this rekey's line out of manifest.mac again (best effort; a
/// line left there verifies no manifest and is harmless).
fn withdraw(store: &Store, new_mac: &str, mut version: Version) {
    for _ in 0..3 {
        let Ok((bytes, v)) = store.read_versioned(layout::MANIFEST_MAC, MAC_CAP) else {
            return;
        };
        version = v;
        let Ok(lines) = mac_lines(&bytes) else { return };
        let rest: Vec<String> = lines.iter().filter(|l| *l != new_mac).cloned().collect();
        if rest.is_empty() || rest.len() == lines.len() {
            return;
        }
        match store.replace_if(layout::MANIFEST_MAC, mac_file(&rest), &version) {
            Ok(Replaced::Conflict) => continue,
            _ => return,
        }
    }
    let _ = version;
}

fn other_rekey(where_: &str, file: &str) -> Error {
    Error::Temporary(format!(
        "bundle {where_}: another rekey changed {file} while this one ran; this one changed \
         nothing (its slots are not in the bundle), nothing lost: run it again against the new \
         manifest"
    ))
}

fn changed_meanwhile(where_: &str) -> Error {
    Error::Temporary(format!(
        "bundle {where_}: manifest.json changed while it was read (another rekey?); nothing \
         changed: run again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_keeps_the_lines_read_and_makes_room_from_the_oldest_stale_one() {
        let l = |c: char| c.to_string().repeat(64);
        let read = vec![l('a'), l('b')];
        assert_eq!(
            claim_lines(&read, &l('c'), |_| false),
            vec![l('a'), l('b'), l('c')]
        );
        // Full: the oldest line that does not verify the current manifest goes.
        let full: Vec<String> = "abcdefgh".chars().map(l).collect();
        let claim = claim_lines(&full, &l('z'), |x| x == l('a'));
        assert_eq!(claim.len(), MAX_MAC_LINES);
        assert_eq!(claim[0], l('a'));
        assert!(!claim.contains(&l('b')));
        assert_eq!(claim.last(), Some(&l('z')));
        // The same MAC twice is one line.
        assert_eq!(claim_lines(&[l('c')], &l('c'), |_| true), vec![l('c')]);
    }

    #[test]
    fn slot_kind_is_the_manifest_type() {
        let s = KeySlot::KeyFile {
            key_id: "k1_0011223344556677".into(),
            nonce: "00".repeat(12),
            wrapped: "00".repeat(48),
        };
        assert_eq!(
            SlotInfo::of(&s),
            SlotInfo {
                kind: "key-file".into(),
                key_id: "k1_0011223344556677".into()
            }
        );
    }
}
