//! The one error type the pipelines return, and its mapping to exit codes (after sysexits).
//!
//! Each variant carries what an operator needs to act: the file, table, column, row or key id.

use std::fmt;

/// Exit codes of the command-line contract (README, "Commands": exit codes).
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const INVALID: i32 = 65;
    pub const TEMPORARY: i32 = 75;
    pub const KEY: i32 = 77;
}

/// One problem found while checking a bundle; a check collects all of them, then fails once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The bundle-relative file (or `manifest.json`), when one applies.
    pub file: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle is corrupt, tampered, truncated, incomplete or of an unsupported version.
    #[error("bundle {bundle} is invalid:\n{}", list(.findings))]
    InvalidBundle {
        bundle: String,
        findings: Vec<Finding>,
    },

    /// No key given, a wrong key or passphrase, a damaged key file.
    #[error("{0}")]
    Key(String),

    /// Safe to re-run: connection lost, lock held elsewhere, a transient storage failure.
    #[error("{0}")]
    Temporary(String),

    /// A lock another session holds on a target table outlasted the lock timeout: safe to
    /// re-run (the loader adds who holds it).
    #[error("{0}")]
    Locked(String),

    /// The command line asks for something that cannot be done as asked.
    #[error("{0}")]
    Usage(String),

    /// A value or schema that ferry cannot carry faithfully (at export or at the target).
    #[error("{0}")]
    Data(String),

    /// A link of a chain out of order at this target (a gap, a fork, an older link), or
    /// deletes over `--max-delete-ratio`: nothing was written.
    #[error("{0}")]
    Chain(String),

    /// The target refused a row of a part (a constraint, a value its column cannot hold):
    /// the part's transaction rolled back, and the message says so.
    #[error("{0}")]
    RowRefused(String),

    /// A database error outside a data conversion.
    #[error("{0}")]
    Database(String),

    #[error("{0}")]
    Storage(String),

    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },

    #[error("{0}")]
    Other(String),

    /// A `tinyint(1)` column read as boolean met a value other than 0 and 1. The export
    /// catches it and starts over with that column as an integer; it reaches the operator
    /// only if that fails too.
    #[error("table {table}, column {column:?}: tinyint(1) holds values other than 0 and 1")]
    NotBoolean { table: String, column: String },

    /// A value the column's canonical type cannot hold (NaN in a numeric(p,s), an array
    /// whose lower bound is not 1): the source now reads that column as its exact text
    /// form, and the export reads the table again. It reaches the operator only when the
    /// table cannot be read again (a range of a table split across connections).
    #[error("table {table}, column {column:?}: {reason}; the column must travel as its text form")]
    NeedsText {
        table: String,
        column: String,
        reason: String,
    },
}

fn list(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| format!("  - {f}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What an import that met an invalid part after committing others adds to the message
/// (and what [`Error::hint`] recognises it by).
pub const FIX_BUNDLE: &str = "get an intact copy of the bundle from the sender; re-running the same \
     command then resumes after the committed parts";

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InvalidBundle { .. }
            | Error::Data(_)
            | Error::Chain(_)
            | Error::RowRefused(_) => exit::INVALID,
            Error::Key(_) => exit::KEY,
            Error::Temporary(_) | Error::Locked(_) => exit::TEMPORARY,
            Error::Usage(_) => exit::USAGE,
            Error::Database(_)
            | Error::Storage(_)
            | Error::Io { .. }
            | Error::Other(_)
            | Error::NotBoolean { .. }
            | Error::NeedsText { .. } => exit::FAILURE,
        }
    }

    /// What to do next, one line, by the error's class (printed under the error, as age
    /// prints its hints; `COMMAND` stands for the command that failed); `None` when the
    /// message itself is all there is to say.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            // Found while loading, after parts committed (the import added FIX_BUNDLE to the
            // message): those stay, and a re-run resumes after them.
            Error::InvalidBundle { findings, .. }
                if findings.iter().any(|f| f.message.ends_with(FIX_BUNDLE)) =>
            {
                Some(
                    "the parts already committed stay (the ledger records them) and nothing of the failed \
                     part was written; get an intact copy of the bundle from the sender, then run the same \
                     command again: it resumes after the committed parts",
                )
            }
            Error::InvalidBundle { .. } => Some(
                "nothing was written; check the bundle's location, and copy a bundle that was damaged \
                 or changed in transit again from the sender (`ferry verify BUNDLE` lists every problem)",
            ),
            Error::Key(m) if m.starts_with("--mask-key-file") => Some(
                "give --mask-key-file a key file made by `ferry keygen` (the one earlier exports were \
                 masked with, for the same hashes); it is not the bundle's key",
            ),
            Error::Key(m) if m.contains("bundle is NOT encrypted") => Some(
                "a plain bundle proves nothing about who made it: if an encrypted one was expected, \
                 get the bundle again from the sender; to read this one knowingly, drop the key and \
                 trust options (import and decrypt also need --allow-unencrypted)",
            ),
            // Key material given in the wrong place or shape: not a signature failure.
            Error::Key(m)
                if m.contains("not a minisign public key")
                    || m.starts_with("cannot read trust file")
                    || m.starts_with("trust file ") =>
            {
                Some(
                    "give --trust the sender's public key (RW…, 56 characters) or --trust-file a file of \
                     them (the NAME.pub that `ferry keygen --signing NAME` or `minisign -G` wrote), never \
                     the secret key",
                )
            }
            Error::Key(m) if m.starts_with("signing key ") => Some(
                "give --sign-key the secret signing key file (`ferry keygen --signing FILE` writes FILE, \
                 and FILE.pub for the receivers' trust lists)",
            ),
            Error::Key(m) if m.contains("--trust") || m.contains("signing key") => Some(
                "a signature check failed or a signing key is unusable: compare the signer's key id \
                 (`ferry inspect BUNDLE`) and the bundle's fingerprint with the sender's, and copy the \
                 bundle again with its manifest.json.minisig; trust only public keys received out of band",
            ),
            Error::Key(_) => Some(
                "give the key file (--key-file), age identity (--identity) or passphrase (--passphrase-env) \
                 the bundle was made for; `ferry inspect BUNDLE` lists the key ids that open it",
            ),
            Error::Temporary(m) if !m.contains("re-run") => {
                Some("nothing partial was kept: re-run the same command once the cause is gone")
            }
            Error::Usage(_) => Some("see `ferry COMMAND --help` for the options"),
            Error::Chain(_) => Some(
                "`ferry status TARGET` shows which links of each chain this target holds; apply a chain's \
                 links in order (docs/MIGRATIONS.md)",
            ),
            Error::Data(m) | Error::RowRefused(m)
                if !m.contains("--exclude") && !m.contains("--on-error skip") =>
            {
                Some(
                    "fix the value or the target table, or leave the table out with --exclude; a re-run \
                     alone meets the same data",
                )
            }
            _ => None,
        }
    }

    /// A bundle error about one file.
    pub fn invalid(
        bundle: impl Into<String>,
        file: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::InvalidBundle {
            bundle: bundle.into(),
            findings: vec![Finding {
                file: file.into(),
                message: message.into(),
            }],
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
