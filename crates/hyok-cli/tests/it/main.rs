//! Acceptance tests for the `hyok` binary: one integration test binary with modules.
//!
//! - `vectors`: every case of every ESDK decrypt manifest in `testdata/esdk/` (plus
//!   `HYOK_EXTRA_VECTORS`) through `hyok decrypt`.
//! - `interop`: messages crossing between `hyok` and the official Python ESDK (needs
//!   `HYOK_ESDK_PYTHON`; skips loudly without it unless `HYOK_REQUIRE_SERVICES=1`).
//! - `vault`, `kmip`: Vault/OpenBao Transit and KMIP keys against the services of
//!   `scripts/services/` (skip loudly without them unless `HYOK_REQUIRE_SERVICES=1`).
//! - `audit`: the audit log: records of every key use, `hyok audit verify/show/checkpoint`.
//! - `storage`: `cp`/`cat`/`ls`/`rm`/`init` on a local folder and a real S3 server.
//! - `pipeline`: large inputs through the reader/writer threads of `encrypt`/`decrypt`.
//! - `hardening`: signals mid-run, FIFO/device outputs, signed messages on stdout, frame
//!   length and thread limits, key/config files that are devices (issue 10).
//! - `cli`: tampering, truncation, wrong keys and context, overwrite rules, `key new`, `inspect`.
//! - `session`: issue 9: the same key/cache flags everywhere, one-line typed errors, escaping.
//! - `pkcs11`: keys in a SoftHSM2 token: lifecycle, round trips, refusals, escrow (needs
//!   `scripts/services/softhsm.sh`; skips loudly without it unless `HYOK_REQUIRE_SERVICES=1`).
//! - `rotation`: issue 11: `hyok branch`, `hyok reencrypt` (kill -9, racing writer),
//!   crypto-shredding with `--check`, conditional replacement.
//! - `xks`: `hyok xks` processes on one SoftHSM key, driven with `curl --aws-sigv4`.
//! - `failover`: a Vault key on the three nodes of `scripts/services/openbao-cluster.sh`; a
//!   node is stopped during `cp -r` and during gateway uploads (issue 15).
//! - `pkcs11_slots`: one key in two private SoftHSM tokens (`token=A,B`): failover when a
//!   token goes away (also mid `cp -r`), all gone, a token with another key refused.
//! - `policy`: issue 15's `[policy]` engine: decisions of `cp`/`cat`/`ls`/`rm`/`encrypt`,
//!   `hyok policy check|explain`, bad policy files, audit records.
//! - `fips` (FIPS build only, `scripts/fips-test.sh`): what `--features fips` refuses.

mod audit;
mod cli;
mod common;
mod custody;
mod failover;
#[cfg(feature = "fips")]
mod fips;
mod format;
mod gateway;
mod hardening;
mod interop;
mod kmip;
mod pipeline;
mod pkcs11;
mod pkcs11_slots;
mod policy;
mod rotation;
mod session;
mod storage;
mod vault;
mod vectors;
mod xks;
