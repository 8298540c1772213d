//! ECDSA P-256/P-384 through AWS-LC's streaming signature service, for the signed ESDK
//! suites of hyok (docs/DESIGN.md, "One unsafe crate: ECDSA through AWS-LC's EVP API").
//!
//! A signed ESDK message is signed over everything before its footer, which can be many
//! GiB and is written and read as a stream. aws-lc-rs 1.19 signs only a message held whole
//! in memory (`EcdsaKeyPair::sign`) or a digest computed outside the signing service
//! (`sign_digest`, `verify_digest_sig`: "FIPS: not allowed"). AWS-LC's approved service for
//! a streamed message is `EVP_DigestSignInit/Update/Final` and
//! `EVP_DigestVerifyInit/Update/Final`; this crate calls exactly those, on the AWS-LC that
//! aws-lc-rs links: `aws-lc-sys` by default, the FIPS 140-3 module `aws-lc-fips-sys` with the
//! `fips` feature.
//!
//! It is the one library of the workspace that contains `unsafe` code (every other library
//! root says `#![forbid(unsafe_code)]`; outside libraries there is one `mallopt` call in the
//! `hyok-gateway` program and one PKCS#11 call in a test). The rules here: every `unsafe` block has a `// SAFETY:`
//! comment, every AWS-LC object has exactly one Rust owner that frees it in `Drop`, and no
//! raw pointer leaves the crate.
//!
//! - [`SigningKey`]: a fresh key pair from the module's key generation (with its pairwise
//!   consistency test), or one from a fixed scalar for reproducible fuzzing. The private
//!   scalar never leaves AWS-LC; AWS-LC wipes it when the key is freed.
//! - [`VerifyingKey`]: a public key from its SEC1 encoding, checked to be on the curve and
//!   not the point at infinity.
//! - [`Signer`] / [`Verifier`]: the streaming contexts; `update` with the message bytes,
//!   then `sign` (ASN.1 DER `SEQUENCE { r, s }`) or `verify`.
//! - [`Md5`]: AWS-LC's MD5 (its assembly), for the S3 protocol's ETags and `Content-MD5`
//!   checks in the gateway; not a security function there.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// The FFI to AWS-LC is the reason this crate exists (see above); the workspace denies
// `unsafe_code` everywhere else.
#![allow(unsafe_code)]

mod key;
mod md5;
mod owned;
mod stream;

pub use key::{SigningKey, VerifyingKey};
pub use md5::{Md5, MD5_LEN};
pub use stream::{Signer, Verifier};

#[cfg(feature = "fips")]
use aws_lc_fips_sys as ffi;
#[cfg(not(feature = "fips"))]
use aws_lc_sys as ffi;

/// The curves of the ESDK's signed suites, each with the hash the ESDK pairs it with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (secp256r1) with SHA-256.
    P256,
    /// NIST P-384 (secp384r1) with SHA-384.
    P384,
}

impl Curve {
    /// Length in bytes of a field element (and of a scalar).
    pub const fn field_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }

    /// Length of the compressed SEC1 encoding of a point: `02|03 ‖ x`.
    pub const fn compressed_len(self) -> usize {
        1 + self.field_len()
    }

    fn nid(self) -> std::os::raw::c_int {
        match self {
            Self::P256 => ffi::NID_X9_62_prime256v1,
            Self::P384 => ffi::NID_secp384r1,
        }
    }

    fn digest(self) -> *const ffi::EVP_MD {
        match self {
            // SAFETY: EVP_sha256/EVP_sha384 take no arguments and return a pointer to a
            // static, immutable method table that is never freed.
            Self::P256 => unsafe { ffi::EVP_sha256() },
            // SAFETY: as above.
            Self::P384 => unsafe { ffi::EVP_sha384() },
        }
    }
}

/// What failed. AWS-LC's error queue is cleared before this is returned, so a failure
/// leaves no state behind in the thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A public key that is not a valid point of the curve in SEC1 encoding (wrong length
    /// or prefix, not on the curve, the point at infinity) or a scalar out of range.
    InvalidKey,
    /// The signature does not verify (including one that is not strict DER).
    BadSignature,
    /// The module failed or refused an operation (allocation, key generation, signing).
    Failed(&'static str),
    /// FIPS build only: the module's service indicator did not report the operation as an
    /// approved service.
    NotApproved(&'static str),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidKey => f.write_str("invalid ECDSA key"),
            Self::BadSignature => f.write_str("ECDSA signature does not verify"),
            Self::Failed(what) => write!(f, "AWS-LC: {what} failed"),
            Self::NotApproved(what) => {
                write!(f, "AWS-LC: {what} was not an approved FIPS service")
            }
        }
    }
}

impl std::error::Error for Error {}

/// `Result` of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// `Err(e)` after clearing AWS-LC's thread-local error queue.
fn fail<T>(e: Error) -> Result<T> {
    // SAFETY: ERR_clear_error takes no arguments and only empties this thread's queue.
    unsafe { ffi::ERR_clear_error() };
    Err(e)
}

/// Run `call` (one AWS-LC function returning 1 on success) and, in a FIPS build, check
/// that the module's service indicator counted it as an approved service.
fn approved_call(what: &'static str, call: impl FnOnce() -> std::os::raw::c_int) -> Result<()> {
    #[cfg(feature = "fips")]
    // SAFETY: reads a thread-local counter of the module; no arguments.
    let before = unsafe { ffi::FIPS_service_indicator_before_call() };
    let ok = call() == 1;
    #[cfg(feature = "fips")]
    {
        // SAFETY: as above.
        let after = unsafe { ffi::FIPS_service_indicator_after_call() };
        if ok && after == before {
            return fail(Error::NotApproved(what));
        }
    }
    if ok {
        Ok(())
    } else {
        fail(Error::Failed(what))
    }
}

/// Whether this crate binds the AWS-LC FIPS module (`--features fips`).
pub const FIPS_BUILD: bool = cfg!(feature = "fips");
