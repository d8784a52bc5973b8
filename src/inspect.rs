//! `ferry inspect`: what a bundle holds. Without a key, the manifest's public facts (files,
//! sizes, key ids, source id and sequence); with a key, the catalog: tables, columns, types,
//! rows and lineage.

use serde::Serialize;

use crate::Result;
use crate::bundle::Catalog;
use crate::bundle::check::OpenBundle;
use crate::crypto::keys::Keys;
use crate::report::{human_size, printable, trust_line};

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub bundle: String,
    pub bundle_id: String,
    pub format_version: String,
    pub created_at: String,
    pub tool_version: String,
    pub source_id: String,
    /// How the source id was derived: the catalog's words when a key opened it, else what
    /// the id's form says ([`crate::types::identity::describe`]).
    pub source_id_basis: String,
    pub sequence: u64,
    /// A link of a chain: the chain and the predecessor's manifest hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_manifest_sha256: Option<String>,
    pub encrypted: bool,
    /// Whether the manifest MAC was checked with a key (never for a plain bundle).
    pub authenticated: bool,
    /// The minisign key id of the manifest's signer (`null`: unsigned); verified when
    /// `signature_checked`, else only what the signature file claims.
    pub signed_by: Option<String>,
    /// Whether the signature was checked against a trust list (`--trust`, `--trust-file`).
    pub signature_checked: bool,
    /// The fingerprint of manifest.json (docs/FORMAT.md, "Fingerprint").
    pub fingerprint: String,
    /// A signature file present but not understood (no trust list asked for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_note: Option<String>,
    /// Why `authenticated` is false for a bundle a key opened (an age identity alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_note: Option<String>,
    pub key_ids: Vec<String>,
    /// The slots in order: `kind` (`key-file`, `passphrase`, `age`) and `key_id`.
    pub slots: Vec<crate::rekey::SlotInfo>,
    pub files: Vec<crate::bundle::FileEntry>,
    pub total_bytes: u64,
    pub unlisted_files: Vec<String>,
    /// Present when a key opened the catalog (or the bundle is not encrypted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog: Option<Catalog>,
}

pub fn inspect(url: &str, keys: &Keys) -> Result<Inspection> {
    let b = OpenBundle::open(url, false)?;
    b.refuse_downgrade(keys, None)?;
    let signature = b.check_signature(keys)?;
    let m = &b.manifest;
    let (catalog, opened_by) = if keys.is_empty() && m.encrypted() {
        (None, None)
    } else {
        let unlocked = b.unlock(keys)?;
        (Some(b.read_catalog(&unlocked)?), unlocked.opened_by())
    };
    let (authenticated, trust_note) =
        crate::report::trust_of(m.encrypted(), opened_by, signature.checked);
    Ok(Inspection {
        bundle: crate::redact::display_location(url),
        bundle_id: m.bundle_id.clone(),
        format_version: m.format_version.clone(),
        created_at: m.created_at.clone(),
        tool_version: m.tool_version.clone(),
        source_id: m.source_id.clone(),
        source_id_basis: source_id_basis(&m.source_id, catalog.as_ref()),
        sequence: m.sequence,
        chain_id: m.chain_id.clone(),
        prev_manifest_sha256: m.prev_manifest_sha256.clone(),
        encrypted: m.encrypted(),
        authenticated,
        signed_by: signature.signed_by,
        signature_checked: signature.checked,
        fingerprint: b.fingerprint(),
        signature_note: signature.note,
        trust_note: trust_note.map(String::from),
        key_ids: m
            .encryption
            .key_slots
            .iter()
            .map(|s| s.key_id().to_string())
            .collect(),
        slots: m
            .encryption
            .key_slots
            .iter()
            .map(crate::rekey::SlotInfo::of)
            .collect(),
        files: m.files().cloned().collect(),
        total_bytes: m.files().map(|f| f.size).sum(),
        unlisted_files: b.extra_files.clone(),
        catalog,
    })
}

/// How the source id was derived, in words.
fn source_id_basis(id: &str, catalog: Option<&Catalog>) -> String {
    if let Some(b) = catalog.and_then(|c| c.source.source_id_basis.as_deref()) {
        return format!("derived from {b}");
    }
    match crate::types::identity::describe(id) {
        Some(d) => format!("derived from {d}"),
        None if catalog.is_some() => {
            "not derived from the database (given with --source-id, or an older ferry hashed the URL)".into()
        }
        None => "not derived from the database as ferry derives it now (given with --source-id, or an older \
                 ferry hashed the URL); a key shows more"
            .into(),
    }
}

impl Inspection {
    /// The text form. Every string that comes from the bundle goes through [`printable`]:
    /// a manifest read without a key is unauthenticated, and even an authentic catalog holds
    /// names chosen by the source.
    pub fn render(&self) -> String {
        let p = |s: &str| printable(s).into_owned();
        let mut o = String::new();
        o.push_str(&format!("bundle      {}\n", p(&self.bundle)));
        o.push_str(&format!("id          {}\n", p(&self.bundle_id)));
        o.push_str(&format!(
            "format      ferry-bundle {}\n",
            p(&self.format_version)
        ));
        o.push_str(&format!(
            "created     {} by {}\n",
            p(&self.created_at),
            p(&self.tool_version)
        ));
        o.push_str(&format!(
            "source      {} (sequence {})\n",
            p(&self.source_id),
            self.sequence
        ));
        o.push_str(&format!("            {}\n", p(&self.source_id_basis)));
        if let Some(chain) = &self.chain_id {
            o.push_str(&format!(
                "chain       {} link {}{}\n",
                p(chain),
                self.sequence,
                match &self.prev_manifest_sha256 {
                    Some(prev) => format!(
                        ", after the bundle whose manifest.json has SHA-256 {}",
                        p(prev)
                    ),
                    None => " (its first bundle)".to_string(),
                }
            ));
        }
        o.push_str(&format!(
            "encryption  {}\n",
            if self.encrypted {
                format!(
                    "cobblestone-256; opens with {}",
                    p(&self
                        .slots
                        .iter()
                        .map(|s| format!("{} ({})", s.key_id, s.kind))
                        .collect::<Vec<_>>()
                        .join(", "))
                )
            } else {
                "none (plain Parquet)".into()
            }
        ));
        o.push_str(&format!(
            "trust       {}\n",
            trust_line(
                self.encrypted,
                self.authenticated,
                self.signed_by.as_deref(),
                Some(self.signature_checked)
            )
        ));
        for n in [&self.signature_note, &self.trust_note]
            .into_iter()
            .flatten()
        {
            o.push_str(&format!("            warning: {}\n", p(n)));
        }
        o.push_str(&format!(
            "fingerprint {} (of manifest.json: compare it with the sender's)\n",
            self.fingerprint
        ));
        o.push_str(&format!(
            "files       {} files, {}\n",
            self.files.len(),
            human_size(self.total_bytes)
        ));
        for f in &self.files {
            o.push_str(&format!(
                "  {:<48} {:>12}  sha256 {}\n",
                p(&f.path),
                f.size,
                p(f.sha256.get(..16).unwrap_or(&f.sha256))
            ));
        }
        for f in &self.unlisted_files {
            o.push_str(&format!(
                "  warning: {} is not in the manifest (never read)\n",
                p(f)
            ));
        }
        match &self.catalog {
            None => o.push_str("tables      (encrypted: pass --key-file, --identity or --passphrase-env to list tables and columns)\n"),
            Some(c) => {
                o.push_str(&format!(
                    "lineage     {} database {}{}\n",
                    p(&c.source.engine),
                    p(&c.source.database),
                    c.source.snapshot.as_ref().map(|s| format!(", snapshot: {}", p(s))).unwrap_or_default()
                ));
                for t in &c.tables {
                    let view = if t.table.from_view { " (read from a view)" } else { "" };
                    o.push_str(&format!("table {}{view} — {} in {}\n", p(&t.table.qualified()), crate::report::rows_word(t.rows), crate::report::count(t.parts.len() as u64, "part", "parts")));
                    for col in &t.table.columns {
                        let pk = if t.table.primary_key.contains(&col.name) { " primary key" } else { "" };
                        o.push_str(&format!(
                            "  {:<24} {:<16} {}{}{}\n",
                            p(&col.name),
                            p(&col.ty.describe()),
                            if col.source_type.is_empty() { "(no declared type)".into() } else { p(&col.source_type) },
                            if col.nullable { "" } else { " not null" },
                            pk
                        ));
                    }
                }
            }
        }
        o
    }
}
