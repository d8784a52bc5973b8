//! A source's identity: the manifest's `source_id`, derived from the database itself (not
//! from how its URL is spelled, so `127.0.0.1` and `localhost` are one source and replay
//! protection holds), and a sentence saying how, for the catalog and `ferry inspect`.
//!
//! The id is `<engine>-<kind>-<16 hex of SHA-256 of what identifies it>`; the kind says
//! what was hashed, so `inspect` can say it without a key:
//!
//! | id | derived from |
//! |---|---|
//! | `postgres-sysid-…` | the cluster's `system_identifier` (`pg_control_system()`) + database name |
//! | `postgres-datadir-…` | `data_directory` + `port` + database name (no access to `pg_control_system`) |
//! | `postgres-url-…` | the URL's host, port and database (neither readable) |
//! | `mysql-uuid-…` | `@@server_uuid` (MySQL) + schema |
//! | `mysql-host-…` | `@@hostname` + `@@datadir` + `@@port` + `@@server_id` + schema (MariaDB has no `server_uuid`) |
//! | `sqlite-file-…` | the file's device and inode number (nothing is written to the source) |
//! | `sqlite-path-…` | the file's canonical path (no inode on this platform) |

use sha2::{Digest, Sha256};

/// A source's id and how it was derived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIdentity {
    pub id: String,
    /// One sentence: what the id was derived from (values that are no secret, e.g. the
    /// database name; never a host's credentials).
    pub basis: String,
}

impl SourceIdentity {
    /// `<engine>-<kind>-<16 hex of SHA-256 of input>`.
    pub fn new(engine: &str, kind: &str, input: &str, basis: String) -> Self {
        let h = hex::encode(Sha256::digest(input.as_bytes()));
        SourceIdentity {
            id: format!("{engine}-{kind}-{}", &h[..16]),
            basis,
        }
    }
}

/// What an id's form says of how it was derived, for `inspect` without a key; `None` for
/// an id ferry did not derive this way (`--source-id`, older bundles).
pub fn describe(id: &str) -> Option<&'static str> {
    let (head, hash) = id.rsplit_once('-')?;
    if hash.len() != 16 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(match head {
        "postgres-sysid" => "the PostgreSQL cluster's system_identifier and the database name",
        "postgres-datadir" => "the PostgreSQL server's data_directory, port and the database name",
        "postgres-url" => "the URL's host, port and database (the server did not say who it is)",
        "mysql-uuid" => "the MySQL server's server_uuid and the schema",
        "mysql-host" => {
            "the MySQL/MariaDB server's hostname, datadir, port and server_id and the schema"
        }
        "sqlite-file" => "the SQLite file's device and inode",
        "sqlite-path" => "the SQLite file's canonical path",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_say_how_they_were_derived() {
        let a = SourceIdentity::new("postgres", "sysid", "7715116181775513729/test", "x".into());
        assert!(a.id.starts_with("postgres-sysid-"), "{}", a.id);
        assert_eq!(a.id.len(), "postgres-sysid-".len() + 16);
        assert_eq!(
            a,
            SourceIdentity::new("postgres", "sysid", "7715116181775513729/test", "x".into())
        );
        assert_ne!(
            a.id,
            SourceIdentity::new("postgres", "sysid", "7715116181775513729/other", "x".into()).id
        );
        assert!(describe(&a.id).unwrap().contains("system_identifier"));
        assert!(
            describe("mysql-host-0123456789abcdef")
                .unwrap()
                .contains("datadir")
        );
        assert_eq!(describe("postgres-0123456789abcdef"), None);
        assert_eq!(describe("my-own-id"), None);
        assert_eq!(describe("sqlite-file-xyz"), None);
    }
}
