//! hyok.toml parser and the lookups commands make: never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hyok::fuzzing::config(data));
