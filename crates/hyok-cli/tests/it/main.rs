//! Acceptance tests for the `hyok` binary: one integration test binary with modules.
//!
//! - `vectors`: every case of every ESDK decrypt manifest in `testdata/esdk/` (plus
//!   `HYOK_EXTRA_VECTORS`) through `hyok decrypt`.
//! - `interop`: messages crossing between `hyok` and the official Python ESDK (needs
//!   `HYOK_ESDK_PYTHON`; skips loudly without it unless `HYOK_REQUIRE_SERVICES=1`).
//! - `storage`: `cp`/`cat`/`ls`/`rm`/`init` on a local folder and a real S3 server.
//! - `cli`: tampering, truncation, wrong keys and context, overwrite rules, `key new`, `inspect`.

mod cli;
mod common;
mod format;
mod interop;
mod storage;
mod vectors;
