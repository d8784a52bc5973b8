//! `manifest.json` parser: arbitrary bytes must give a manifest or findings, never a panic;
//! a manifest that parses must parse again from its own serialisation.
#![no_main]

use ferry::bundle::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data) {
        let again = Manifest::parse(&m.to_json());
        assert!(again.is_ok(), "a parsed manifest does not re-parse: {again:?}");
    }
});
