//! `catalog.json` parser: arbitrary bytes must give a catalog or an error, never a panic;
//! a catalog that parses must parse again from its own serialisation.
#![no_main]

use ferry::bundle::catalog::Catalog;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Catalog::parse(data) {
        let again = Catalog::parse(&c.to_json());
        assert!(again.is_ok(), "a parsed catalog does not re-parse: {again:?}");
        let _ = c.part_index();
    }
});
