//! manifest.json: the plaintext table of contents of a bundle, validated strictly against
//! `schemas/manifest.v1.json` and then field by field.

use std::collections::HashSet;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::layout::{self, MAX_FILE_SIZE, MAX_PARTS};
use crate::crypto::envelope::{KeySlot, check_age_slot, check_kdf, kdf_work};
use crate::error::Finding;

pub const FORMAT: &str = "ferry-bundle";
pub const FORMAT_VERSION: &str = "1.0";
/// The version a link of a chain carries (`chain_id`, `prev_manifest_sha256`): a 1.0 reader
/// refuses the unknown fields rather than load a link as a whole bundle.
pub const FORMAT_VERSION_CHAIN: &str = "1.1";
pub const SUPPORTED_MAJOR: u64 = 1;
pub const SCHEME_ENCRYPTED: &str = "cobblestone-256";
pub const SCHEME_NONE: &str = "none";

/// The JSON Schema of the manifest, compiled once.
pub const SCHEMA_TEXT: &str = include_str!("../../schemas/manifest.v1.json");

static SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let v: serde_json::Value = serde_json::from_str(SCHEMA_TEXT).expect("manifest schema is JSON");
    jsonschema::validator_for(&v).expect("manifest schema compiles")
});

/// A stored file: where, how big, and the SHA-256 of its stored (encrypted) bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    pub scheme: String,
    pub key_slots: Vec<KeySlot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub format_version: String,
    pub bundle_id: String,
    pub source_id: String,
    pub sequence: u64,
    pub created_at: String,
    pub tool_version: String,
    /// A link of a chain: the chain's name (its first bundle's id). `sequence` is then the
    /// link's place in the chain, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<String>,
    /// A link after the first: SHA-256 of its predecessor's manifest.json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_manifest_sha256: Option<String>,
    pub encryption: Encryption,
    pub catalog: FileEntry,
    pub parts: Vec<FileEntry>,
    /// The one place a future minor version may add fields.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Manifest {
    pub fn encrypted(&self) -> bool {
        self.encryption.scheme == SCHEME_ENCRYPTED
    }

    /// Every file the manifest lists: the catalog, then the parts.
    pub fn files(&self) -> impl Iterator<Item = &FileEntry> {
        std::iter::once(&self.catalog).chain(self.parts.iter())
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serialises");
        v.push(b'\n');
        v
    }

    /// Parses and validates manifest bytes (already size-capped by the caller).
    /// Every problem found is returned, each with a JSON path.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, Vec<Finding>> {
        let f = |m: String| {
            vec![Finding {
                file: layout::MANIFEST.into(),
                message: m,
            }]
        };
        let text = std::str::from_utf8(bytes).map_err(|e| f(format!("not UTF-8 text ({e})")))?;
        if text.starts_with('\u{feff}') {
            return Err(f(
                "starts with a byte-order mark; a manifest is plain UTF-8 JSON".into(),
            ));
        }
        // serde_json's recursion limit (128) bounds nesting; trailing data is an error.
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            f(format!(
                "not valid JSON: {e} (the file is damaged or not a ferry manifest)"
            ))
        })?;
        // The version decides how to read the rest, so it is checked first, by itself.
        if let Some(v) = value.get("format_version").and_then(|v| v.as_str()) {
            let major = v.split('.').next().and_then(|m| m.parse::<u64>().ok());
            match major {
                Some(m) if m > SUPPORTED_MAJOR => {
                    return Err(f(format!(
                        "bundle format {v} requires ferry ≥ {m}.0; this is {} (reads format {SUPPORTED_MAJOR}.x)",
                        crate::TOOL_VERSION
                    )));
                }
                _ => {}
            }
        }
        if value
            .get("format")
            .and_then(|v| v.as_str())
            .is_some_and(|s| s != FORMAT)
        {
            return Err(f(
                "not a ferry bundle manifest (format is not \"ferry-bundle\")".into(),
            ));
        }
        // A slot of a kind this ferry does not know is named as such, not as a schema
        // mismatch: it may come from a newer ferry.
        let unknown = slot_findings(&value);
        if !unknown.is_empty() {
            return Err(unknown
                .into_iter()
                .map(|m| Finding {
                    file: layout::MANIFEST.into(),
                    message: m,
                })
                .collect());
        }
        let schema_errors: Vec<Finding> = SCHEMA
            .iter_errors(&value)
            .take(50)
            .map(|e| Finding {
                file: layout::MANIFEST.into(),
                message: format!("{}: {}", json_path(e.instance_path().as_str()), e),
            })
            .collect();
        if !schema_errors.is_empty() {
            return Err(schema_errors);
        }
        // Strict typed parse: duplicate keys and unknown fields are errors here.
        let mut de = serde_json::Deserializer::from_str(text);
        let manifest: Manifest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                f(e.inner().to_string())
            } else {
                f(format!("{path}: {}", e.inner()))
            }
        })?;
        let problems = manifest.validate();
        if problems.is_empty() {
            Ok(manifest)
        } else {
            Err(problems)
        }
    }

    /// Checks what the schema cannot: consistency between fields, uniqueness, caps.
    fn validate(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut bad = |m: String| {
            out.push(Finding {
                file: layout::MANIFEST.into(),
                message: m,
            })
        };
        let enc = self.encrypted();
        if enc && self.encryption.key_slots.is_empty() {
            bad("encryption.key_slots: an encrypted bundle needs at least one key slot".into());
        }
        if !enc && !self.encryption.key_slots.is_empty() {
            bad("encryption.key_slots: an unencrypted bundle has no key slots".into());
        }
        let want_catalog = if enc {
            layout::CATALOG_ENCRYPTED
        } else {
            layout::CATALOG_PLAIN
        };
        if self.catalog.path != want_catalog {
            bad(format!(
                "catalog.path: {:?} but this bundle's catalog must be {want_catalog}",
                self.catalog.path
            ));
        }
        if self.parts.len() > MAX_PARTS {
            bad(format!(
                "parts: {} entries, more than the limit of {MAX_PARTS}",
                self.parts.len()
            ));
        }
        let ext = if enc { ".fe" } else { ".parquet" };
        let mut seen = HashSet::new();
        for (i, p) in self.parts.iter().enumerate() {
            if !layout::is_part_path(&p.path) || !p.path.ends_with(ext) {
                bad(format!(
                    "parts[{i}].path: {:?} is not a part name of this bundle (data/<32 hex>{ext})",
                    p.path
                ));
            }
            if !seen.insert(p.path.as_str()) {
                bad(format!("parts[{i}].path: {} is listed twice", p.path));
            }
        }
        for (name, file) in self.files().enumerate().map(|(i, f)| {
            (
                if i == 0 {
                    "catalog".to_string()
                } else {
                    format!("parts[{}]", i - 1)
                },
                f,
            )
        }) {
            if file.size > MAX_FILE_SIZE {
                bad(format!(
                    "{name}.size: {} is larger than any file ferry writes",
                    file.size
                ));
            }
        }
        match (&self.chain_id, &self.prev_manifest_sha256) {
            (None, Some(_)) => bad(
                "prev_manifest_sha256: only a link of a chain (chain_id) has a predecessor".into(),
            ),
            (Some(c), None) if self.sequence != 1 || *c != self.bundle_id => bad(format!(
                "chain_id: the first link of a chain has sequence 1 and is named by its own bundle id \
                 (sequence {}, chain {c})",
                self.sequence
            )),
            (Some(c), Some(_)) if self.sequence < 2 || *c == self.bundle_id => bad(format!(
                "sequence: a link after the first has sequence 2 or more and names its chain's first \
                 bundle (sequence {}, chain {c})",
                self.sequence
            )),
            _ => {}
        }
        let mut kdf_ok = true;
        for (i, s) in self.encryption.key_slots.iter().enumerate() {
            if let KeySlot::Passphrase { kdf, .. } = s
                && let Err(e) = check_kdf(kdf)
            {
                kdf_ok = false;
                bad(format!(
                    "encryption.key_slots[{i}].kdf: {}: {e}",
                    s.describe(i)
                ));
            }
        }
        for (i, s) in self.encryption.key_slots.iter().enumerate() {
            if let KeySlot::Age { age_file, .. } = s
                && let Err(e) = check_age_slot(age_file)
            {
                bad(format!(
                    "encryption.key_slots[{i}].age_file: {}: {e}",
                    s.describe(i)
                ));
            }
        }
        // Slot count and total Argon2 work, before any key derivation (docs/RELIABILITY.md, B27).
        if kdf_ok && let Err(e) = kdf_work(&self.encryption.key_slots) {
            bad(format!("encryption.key_slots: {e}"));
        }
        let mut ids = HashSet::new();
        for (i, s) in self.encryption.key_slots.iter().enumerate() {
            if !ids.insert(s.key_id()) {
                bad(format!(
                    "encryption.key_slots[{i}].key_id: {} appears twice",
                    s.key_id()
                ));
            }
        }
        out
    }
}

/// The slot kinds this ferry opens, as `type` spells them.
const SLOT_TYPES: &[&str] = &["key-file", "passphrase", "age"];

/// A finding for every key slot whose `type` is a string this ferry does not know, and for
/// every age slot whose content is not a bounded age message (at most the first 64 slots
/// are looked at: the schema refuses more).
fn slot_findings(value: &serde_json::Value) -> Vec<String> {
    let Some(slots) = value
        .get("encryption")
        .and_then(|e| e.get("key_slots"))
        .and_then(|s| s.as_array())
    else {
        return vec![];
    };
    slots
        .iter()
        .take(64)
        .enumerate()
        .filter_map(|(i, s)| {
            let t = s.get("type")?.as_str()?;
            if t == "age" {
                // Checked before the schema, whose message would quote the whole value.
                let f = s.get("age_file")?.as_str()?;
                return check_age_slot(f)
                    .err()
                    .map(|e| format!("encryption.key_slots[{i}].age_file: slot #{}: {e}", i + 1));
            }
            (!SLOT_TYPES.contains(&t)).then(|| {
                let shown: String = t.chars().take(40).collect();
                format!(
                    "encryption.key_slots[{i}].type: key slot #{} is of a kind this ferry does not know \
                     ({}{}); it opens {} slots. Made by a newer ferry, or edited: refused before any key is tried",
                    i + 1,
                    crate::report::printable(&format!("{shown:?}")),
                    if t.chars().count() > 40 { "…" } else { "" },
                    SLOT_TYPES.join(", ")
                )
            })
        })
        .collect()
}

/// `/parts/3/size` -> `parts[3].size`
fn json_path(pointer: &str) -> String {
    if pointer.is_empty() {
        return "(top level)".into();
    }
    let mut out = String::new();
    for seg in pointer.trim_start_matches('/').split('/') {
        if seg.chars().all(|c| c.is_ascii_digit()) && !seg.is_empty() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION.into(),
            bundle_id: "0123456789abcdef0123456789abcdef".into(),
            source_id: "sqlite:abc".into(),
            sequence: 7,
            created_at: "2026-11-25T12:00:00Z".into(),
            tool_version: crate::TOOL_VERSION.into(),
            chain_id: None,
            prev_manifest_sha256: None,
            encryption: Encryption {
                scheme: SCHEME_NONE.into(),
                key_slots: vec![],
            },
            catalog: FileEntry {
                path: "catalog.json".into(),
                size: 10,
                sha256: "ab".repeat(32),
            },
            parts: vec![FileEntry {
                path: "data/0123456789abcdef0123456789abcdef.parquet".into(),
                size: 100,
                sha256: "cd".repeat(32),
            }],
            extensions: Default::default(),
        }
    }

    fn errors_of(json: &str) -> String {
        Manifest::parse(json.as_bytes())
            .unwrap_err()
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn schema_violations_name_the_json_path() {
        let mut v: serde_json::Value = serde_json::to_value(sample()).unwrap();
        v["parts"][0]["size"] = serde_json::json!(-1);
        assert!(errors_of(&v.to_string()).contains("parts[0].size"));
        v["parts"][0]["size"] = serde_json::json!("12");
        assert!(errors_of(&v.to_string()).contains("parts[0].size"));
        let mut v: serde_json::Value = serde_json::to_value(sample()).unwrap();
        v.as_object_mut().unwrap().remove("bundle_id");
        assert!(errors_of(&v.to_string()).contains("bundle_id"));
        let mut v: serde_json::Value = serde_json::to_value(sample()).unwrap();
        v["surprise"] = serde_json::json!(1);
        assert!(errors_of(&v.to_string()).contains("surprise"));
        let mut v: serde_json::Value = serde_json::to_value(sample()).unwrap();
        v["bundle_id"] = serde_json::json!("0123");
        assert!(errors_of(&v.to_string()).contains("bundle_id"));
    }

    #[test]
    fn duplicate_keys_and_paths_are_refused() {
        let text = String::from_utf8(sample().to_json()).unwrap();
        let dup = text.replacen("\"sequence\": 7,", "\"sequence\": 7, \"sequence\": 8,", 1);
        assert!(errors_of(&dup).contains("duplicate field"));
        let mut m = sample();
        m.parts.push(m.parts[0].clone());
        assert!(errors_of(&String::from_utf8(m.to_json()).unwrap()).contains("listed twice"));
    }

    #[test]
    fn future_major_version_is_named() {
        let text = String::from_utf8(sample().to_json())
            .unwrap()
            .replace("\"1.0\"", "\"2.0\"");
        let e = errors_of(&text);
        assert!(e.contains("bundle format 2.0 requires ferry ≥ 2.0"), "{e}");
    }

    #[test]
    fn trailing_garbage_bom_and_deep_nesting_are_refused() {
        let text = String::from_utf8(sample().to_json()).unwrap();
        assert!(Manifest::parse(format!("{text}x").as_bytes()).is_err());
        assert!(Manifest::parse(format!("\u{feff}{text}").as_bytes()).is_err());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(errors_of(&deep).contains("not valid JSON"));
        assert!(Manifest::parse(b"\xff\xfe").is_err());
    }

    fn encrypted_sample(slot: serde_json::Value) -> String {
        let mut m = sample();
        m.encryption.scheme = SCHEME_ENCRYPTED.into();
        m.catalog.path = "catalog.fe".into();
        m.parts[0].path = "data/0123456789abcdef0123456789abcdef.fe".into();
        let mut v = serde_json::to_value(m).unwrap();
        v["encryption"]["key_slots"] = serde_json::json!([slot]);
        v.to_string()
    }

    #[test]
    fn age_slots_round_trip_and_unknown_kinds_are_named() {
        let r = crate::crypto::keys::AgeRecipient::parse(
            &age::x25519::Identity::generate().to_public().to_string(),
            "t",
        )
        .unwrap();
        let slot = crate::crypto::envelope::DataKey::generate()
            .wrap_age(&sample().bundle_id, &r)
            .unwrap();
        let text = encrypted_sample(serde_json::to_value(&slot).unwrap());
        let m = Manifest::parse(text.as_bytes()).unwrap();
        assert_eq!(m.encryption.key_slots, std::slice::from_ref(&slot));
        assert_eq!(Manifest::parse(&m.to_json()).unwrap(), m);
        // a kind this ferry does not know: named, in a sentence, not a schema or serde dump
        let mut v = serde_json::to_value(&slot).unwrap();
        v["type"] = serde_json::json!("foo");
        let e = errors_of(&encrypted_sample(v));
        assert!(
            e.contains("key_slots[0].type") && e.contains("\"foo\"") && e.contains("does not know"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
        // an age slot's key id must be a1_, a key file's k1_
        let mut v = serde_json::to_value(&slot).unwrap();
        v["key_id"] = serde_json::json!("k1_0123456789abcdef");
        assert!(errors_of(&encrypted_sample(v)).contains("key_slots[0].key_id"));
        // fields of another kind are refused
        let mut v = serde_json::to_value(&slot).unwrap();
        v["nonce"] = serde_json::json!("00".repeat(12));
        assert!(errors_of(&encrypted_sample(v)).contains("key_slots[0]"));
    }

    #[test]
    fn oversize_or_garbage_age_slots_are_refused_unquoted() {
        let slot = |age_file: String| serde_json::json!({"type": "age", "key_id": "a1_0123456789abcdef", "age_file": age_file});
        let huge = "ab".repeat(1 << 20);
        let e = errors_of(&encrypted_sample(slot(huge)));
        assert!(
            e.contains("age_file") && e.contains("refused unread"),
            "{e}"
        );
        assert!(e.len() < 400, "{e}");
        let e = errors_of(&encrypted_sample(slot("xyz!".repeat(10))));
        assert!(e.contains("not hex") && !e.contains("xyz!"), "{e}");
        let e = errors_of(&encrypted_sample(slot(hex::encode(b"not an age message"))));
        assert!(e.contains("age v1"), "{e}");
        let e = errors_of(&encrypted_sample(serde_json::json!(
            {"type": "age", "key_id": "a1_0123456789abcdef", "age_file": 7}
        )));
        assert!(e.contains("key_slots[0].age_file"), "{e}");
    }

    #[test]
    fn traversal_in_a_plain_manifest_is_refused() {
        for bad in ["../../etc/passwd", "/etc/passwd", "data/../../x.parquet"] {
            let mut m = sample();
            m.parts[0].path = bad.into();
            assert!(Manifest::parse(&m.to_json()).is_err(), "{bad}");
        }
        let mut m = sample();
        m.parts[0].size = u64::MAX / 2;
        assert!(errors_of(&String::from_utf8(m.to_json()).unwrap()).contains("parts[0].size"));
    }
}

/// Properties of the strict parser (proptest): what it accepts round-trips, and no damage to
/// a valid manifest makes it panic.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::Manifest;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn damaged_manifests_are_refused_or_parse_without_panic(
            cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            truncate in any::<Option<prop::sample::Index>>(),
        ) {
            let mut bytes = super::tests::sample().to_json();
            for (at, b) in cuts {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            if let Some(t) = truncate {
                bytes.truncate(t.index(bytes.len() + 1));
            }
            // Whatever it says, it says it without a panic; what it accepts prints back
            // to a manifest that parses to the same value.
            if let Ok(m) = Manifest::parse(&bytes) {
                prop_assert_eq!(Manifest::parse(&m.to_json()).ok(), Some(m));
            }
        }
    }

    #[test]
    fn the_sample_round_trips() {
        let m = super::tests::sample();
        assert_eq!(Manifest::parse(&m.to_json()).ok(), Some(m));
    }
}
