//! The XKS proxy's request parsers (bodies, SigV4 Authorization, paths, dates): never
//! panic, decoded fields within their bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hyok_xks::fuzzing::xks(data));
