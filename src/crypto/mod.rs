//! Encryption of bundles: the chunked AEAD file format ([`cobblestone`]), the user's keys
//! ([`keys`]), the key slots that wrap a bundle's data key, and the sub-keys, file
//! contexts and manifest MAC derived from it ([`envelope`]).
//!
//! This layer never sees paths on disk or URLs: it turns bytes and keys into bytes.

pub mod cobblestone;
pub mod envelope;
pub mod keys;
pub mod signing;
