//! Integration tests of hyok-keystore against real services (one test binary).
//!
//! - `pkcs11`: keys in a SoftHSM2 token (needs `HYOK_PKCS11_MODULE`,
//!   `HYOK_TEST_PKCS11_TOKEN`, `HYOK_PKCS11_PIN` from `scripts/services/softhsm.sh`; skips
//!   loudly without them unless `HYOK_REQUIRE_SERVICES=1`).
//! - `cache`: the data-key cache in front of a key store, counting key-store calls.

mod cache;
mod common;
mod pkcs11;
