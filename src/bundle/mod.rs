//! The bundle format v1 (docs/FORMAT.md): its layout, the plaintext manifest, the
//! encrypted catalog, and the checks that turn untrusted bytes into a bundle ferry may use.
//!
//! Everything read from a bundle is hostile input until checked here: sizes are capped
//! before allocation, paths must match the shapes the format defines before any storage
//! call, and the manifest is parsed strictly.

pub mod catalog;
pub mod check;
pub mod layout;
pub mod manifest;
pub mod parts;

pub use catalog::{Catalog, CatalogTable, PartInfo};
pub use check::{Checked, OpenBundle};
pub use manifest::{FileEntry, Manifest};
