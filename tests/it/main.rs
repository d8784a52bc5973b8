//! One integration-test binary (as ripgrep does): every module runs the real `ferry`
//! binary or the library against real files.

mod common;
mod reliability;
mod roundtrip;
mod wycheproof;
