//! The full decrypt path: raw messages with a fixed key, and generated messages with one
//! change each, which must never decrypt (see `hyok_core::fuzzing::decrypt`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hyok_core::fuzzing::decrypt(data));
