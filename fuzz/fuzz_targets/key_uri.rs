//! Key URI and pkcs11: URI parsers: never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hyok_keystore::fuzzing::key_uri(data));
