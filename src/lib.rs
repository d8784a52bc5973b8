//! ferry: move relational data between databases through encrypted, portable Parquet bundles.
//!
//! Data flows one way: a [`source::Source`] yields Arrow batches, [`export()`] writes them as
//! Parquet parts through the crypto layer into a store, and [`import()`] reads a verified
//! bundle back into a target through the exactly-once protocol in [`load`].
//!
//! # The public surface
//! - The commands, each one call: [`export()`], [`import()`], [`verify()`], [`inspect()`],
//!   [`decrypt()`], [`compare()`], with their plans ([`ExportPlan`], [`ImportPlan`]), the
//!   keys they take ([`Keys`], [`KeyFileKey`], [`Passphrase`]), what they report
//!   ([`RunReport`], [`Progress`]) and the typed [`Error`] with its exit code and hint.
//! - The engine plug-in API: [`engines`] (the registry), [`load`] (the per-engine
//!   `Session` and `Target` the protocol drives), [`source`] (the reader), [`types`] (the
//!   canonical column types). A new engine is a folder plus one registry line
//!   (docs/ARCHITECTURE.md).
//!
//! Everything else is `#[doc(hidden)]`: reachable for ferry's own tests, benchmarks and fuzz
//! targets, not an API. A bundle is read only through the verification order: the one type
//! a loader accepts, [`bundle::check::Checked`], has no public constructor, and is made only
//! by [`bundle::check::OpenBundle::verified`] from a clean, keyed [`bundle::check::Scan`].

pub mod engines;
pub mod load;
pub mod source;
pub mod types;

#[doc(hidden)]
pub mod bundle;
#[doc(hidden)]
pub mod chain;
#[doc(hidden)]
pub mod compare;
#[doc(hidden)]
pub mod crypto;
#[doc(hidden)]
pub mod decrypt;
#[doc(hidden)]
pub mod error;
#[doc(hidden)]
pub mod export;
#[doc(hidden)]
pub mod expr;
#[doc(hidden)]
pub mod gc;
#[doc(hidden)]
pub mod import;
#[doc(hidden)]
pub mod inspect;
#[doc(hidden)]
pub mod job;
#[doc(hidden)]
pub mod mask;
#[doc(hidden)]
pub mod plan;
#[doc(hidden)]
pub mod pool;
#[doc(hidden)]
pub mod preflight;
#[doc(hidden)]
pub mod redact;
#[doc(hidden)]
pub mod rekey;
#[doc(hidden)]
pub mod report;
#[doc(hidden)]
pub mod shard;
#[doc(hidden)]
pub mod status;
#[doc(hidden)]
pub mod storage;
#[doc(hidden)]
pub mod verify;

pub use compare::{ComparePlan, compare};
pub use crypto::keys::{KeyFileKey, Keys, Passphrase};
pub use decrypt::decrypt;
pub use error::{Error, Result};
pub use export::{ExportPlan, export};
pub use import::{ImportPlan, import};
pub use inspect::{Inspection, inspect};
pub use redact::display_url;
pub use report::{Progress, RunReport};
pub use status::status;
pub use verify::verify;

/// The tool version written into manifests and ledgers.
pub const TOOL_VERSION: &str = concat!("ferry ", env!("CARGO_PKG_VERSION"));
