//! Audit-log line parser: never panics; accepted lines round-trip through JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hyok_audit::fuzzing::line(data));
