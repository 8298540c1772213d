//! KMIP TTLV decoder: never panics; decoded messages re-encode stably; the response parser copes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hyok_keystore::fuzzing::ttlv(data));
