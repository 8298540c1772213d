//! Integration tests of the key stores against real services (OpenBao, PyKMIP) started by
//! `scripts/services/*.sh`. A test whose service settings are missing prints `SKIPPED: …` and
//! returns, unless `HYOK_REQUIRE_SERVICES=1`, when it fails.
//!
//! - `conformance`: the shared scenarios of `hyok_keystore::testing` for every store, and
//!   multi-keyrings across stores.
//! - `vault`: Transit specifics (rotation, min_decryption_version, auth, admin, error paths).
//! - `kmip`: KMIP specifics (admin, certificates, timeouts, batches).

mod common;
mod conformance;
mod kmip;
mod vault;
