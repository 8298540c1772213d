//! Integration tests of hyok-keystore against real services (one test binary): SoftHSM2,
//! OpenBao and PyKMIP started by `scripts/services/*.sh`. A test whose service settings are
//! missing prints `SKIPPED: …` and returns, unless `HYOK_REQUIRE_SERVICES=1`, when it fails.
//!
//! - `pkcs11`: keys in a SoftHSM2 token (needs `HYOK_PKCS11_MODULE`,
//!   `HYOK_TEST_PKCS11_TOKEN`, `HYOK_PKCS11_PIN` from `scripts/services/softhsm.sh`).
//! - `cache`: the data-key cache in front of a key store, counting key-store calls.
//! - `conformance`: the shared scenarios of `hyok_keystore::testing` for every store, and
//!   multi-keyrings across stores.
//! - `vault`: Transit specifics (rotation, min_decryption_version, auth, admin, error paths).
//! - `kmip`: KMIP specifics (admin, certificates, timeouts, batches).
//! - `nonframed`: non-framed ESDK vectors: decrypt, tampering, the `max_unframed` bound.

mod branch;
mod cache;
mod common;
mod conformance;
mod kmip;
mod nonframed;
mod pkcs11;
mod pq;
mod threshold;
mod vault;
