//! One integration-test binary (as ripgrep does): every module runs the real `ferry`
//! binary or the library against real files.

// Fixtures build data from loop counters; the numeric-cast lints guard product code.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

mod age;
mod as_text;
mod bounds;
mod chains;
mod clean_failures;
mod cli_errors;
mod cli_extras;
mod commit_lost;
mod common;
mod compare;
mod conformance;
mod fidelity;
mod fix16;
mod infile;
mod job_files;
mod kill;
mod lane;
mod load_order;
mod mask;
mod matrix;
mod modes;
mod mysql;
mod plan;
mod postgres;
mod readers;
mod real_shapes;
mod rejects;
mod rekey;
mod reliability;
mod review13_a;
mod review13_b;
mod roundtrip;
mod s3;
mod same_names;
mod schema_fidelity;
mod secrets;
mod servers;
mod shards;
mod sign;
mod sqltext;
mod stores;
mod streams;
mod tls;
mod toy_engine;
mod trust;
mod views;
mod wycheproof;
