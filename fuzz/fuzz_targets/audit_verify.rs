//! Audit-log verifier (chain, Merkle tree, checkpoint signatures, torn tails): never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hyok_audit::fuzzing::verify_log(data));
