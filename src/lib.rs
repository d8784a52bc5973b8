//! ferry: move relational data between databases through encrypted, portable Parquet bundles.
//!
//! Data flows one way: a [`source::Source`] yields Arrow batches, [`export`] writes them as
//! Parquet parts through the [`crypto`] layer into a [`storage::Store`], and [`import`] reads
//! a verified [`bundle`] back into a [`target::Target`]. Each module owns one step.

pub mod bundle;
pub mod compare;
pub mod crypto;
pub mod decrypt;
pub mod engines;
pub mod error;
pub mod export;
pub mod expr;
pub mod import;
pub mod inspect;
pub mod load;
pub mod pool;
pub mod preflight;
pub mod redact;
pub mod report;
pub mod source;
pub mod storage;
pub mod types;
pub mod verify;

pub use error::{Error, Result};
pub use redact::display_url;

/// The tool version written into manifests and ledgers.
pub const TOOL_VERSION: &str = concat!("ferry ", env!("CARGO_PKG_VERSION"));
