//! File names inside a bundle. Part names are opaque random lowercase hex, so nothing
//! about the data leaks through them and no two differ only by case (exFAT, NTFS, APFS).

use std::sync::LazyLock;

use rand::RngCore;
use regex::Regex;

pub const MANIFEST: &str = "manifest.json";
pub const MANIFEST_MAC: &str = "manifest.mac";
pub const SHA256SUMS: &str = "SHA256SUMS";
/// The minisign signature of manifest.json (`export --sign-key`).
pub const MANIFEST_SIG: &str = crate::crypto::signing::SIGNATURE_FILE;
/// The signature of the manifest a rekey commits, until it is moved to [`MANIFEST_SIG`].
pub const MANIFEST_SIG_PENDING: &str = crate::crypto::signing::PENDING_SIGNATURE_FILE;
pub const CATALOG_ENCRYPTED: &str = "catalog.fe";
pub const CATALOG_PLAIN: &str = "catalog.json";

/// Caps applied before reading or allocating.
pub const MANIFEST_CAP: u64 = 16 * 1024 * 1024;
pub const CATALOG_CAP: u64 = 64 * 1024 * 1024;
/// `manifest.mac`: up to `check::MAX_MAC_LINES` lines of 64 hex digits.
pub const MAC_CAP: u64 = 1024;
pub const MAX_PARTS: usize = 1_000_000;
// A listing reads every part of the largest bundle and the files beside them.
const _: () = assert!(MAX_PARTS + 10_000 <= crate::storage::MAX_LISTED);
/// 4 TiB: no part is larger; a larger declared size is a lie.
pub const MAX_FILE_SIZE: u64 = 1 << 42;

static PART_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^data/[0-9a-f]{32}\.(fe|parquet)$").expect("valid regex"));

/// Whether `path` has the shape of a part name. Checked before any path is used.
pub fn is_part_path(path: &str) -> bool {
    path.len() <= 64 && PART_RE.is_match(path)
}

/// A new opaque part name.
pub fn new_part_path(encrypted: bool) -> String {
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    format!(
        "data/{}.{}",
        hex::encode(id),
        if encrypted { "fe" } else { "parquet" }
    )
}

/// A new 128-bit bundle id, lowercase hex.
pub fn new_bundle_id() -> String {
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    hex::encode(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_rejected() {
        let good = new_part_path(true);
        assert!(is_part_path(&good));
        assert!(is_part_path(&new_part_path(false)));
        let long = "a".repeat(10_000);
        for bad in [
            "../../etc/passwd",
            "/etc/passwd",
            "data/../../x",
            "data\\..\\x",
            "C:\\x",
            "data/%2e%2e/x",
            "data/0123456789abcdef0123456789abcdef.fe\0",
            "．．／x",
            "data/0123456789ABCDEF0123456789ABCDEF.fe",
            "data//0123456789abcdef0123456789abcdef.fe",
            "/data/0123456789abcdef0123456789abcdef.fe",
            "data/0123456789abcdef0123456789abcdef.fe/",
            "data/0123456789abcdef0123456789abcdef.fe\n",
            long.as_str(),
        ] {
            assert!(!is_part_path(bad), "{bad:?} accepted");
        }
    }
}
