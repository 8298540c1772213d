//! The gateway's parsers of backend records, stored headers and client text: never panic,
//! records encode back to their bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hyok_gateway::fuzzing::gateway(data));
