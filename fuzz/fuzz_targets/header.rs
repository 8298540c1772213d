//! Header parser: never panics, and a parsed header encodes back to the bytes received.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hyok_core::fuzzing::header(data));
