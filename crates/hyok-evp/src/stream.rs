//! Streaming ECDSA: `EVP_DigestSign*` and `EVP_DigestVerify*`, the service AWS-LC's FIPS
//! module approves for signing a message given in pieces (the hash runs inside the
//! signature service, not before it).

use std::ptr::null_mut;

use crate::key::{SigningKey, VerifyingKey};
use crate::owned::{MdCtx, Pkey};
use crate::{approved_call, fail, ffi, Curve, Error, Result};

/// Which of the two services a context was set up for.
#[derive(Clone, Copy)]
enum Op {
    Sign,
    Verify,
}

/// A new `EVP_MD_CTX` set up to sign or verify with `pkey` and the curve's hash.
fn init(curve: Curve, pkey: &Pkey, op: Op) -> Result<MdCtx> {
    // SAFETY: takes no arguments; returns a new context or null.
    let ctx = MdCtx::from_ptr(unsafe { ffi::EVP_MD_CTX_new() }, "EVP_MD_CTX_new")?;
    // SAFETY: valid context, static digest, no engine, valid key. A null `pctx` out
    // pointer is allowed (we do not need the EVP_PKEY_CTX). The context takes its own
    // reference to the key, so it stays valid even if the caller's key is dropped first.
    let ok = unsafe {
        match op {
            Op::Sign => ffi::EVP_DigestSignInit(
                ctx.as_ptr(),
                null_mut(),
                curve.digest(),
                null_mut(),
                pkey.as_ptr(),
            ),
            Op::Verify => ffi::EVP_DigestVerifyInit(
                ctx.as_ptr(),
                null_mut(),
                curve.digest(),
                null_mut(),
                pkey.as_ptr(),
            ),
        }
    };
    if ok != 1 {
        return fail(Error::Failed(match op {
            Op::Sign => "EVP_DigestSignInit",
            Op::Verify => "EVP_DigestVerifyInit",
        }));
    }
    Ok(ctx)
}

/// A streaming ECDSA signature: [`Self::update`] with the message in pieces, then
/// [`Self::sign`].
pub struct Signer {
    ctx: MdCtx,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// Start a signature with `key` (SHA-256 for P-256, SHA-384 for P-384).
    pub fn new(key: &SigningKey) -> Result<Self> {
        Ok(Self {
            ctx: init(key.curve(), key.pkey(), Op::Sign)?,
        })
    }

    /// Add `data` to the signed message.
    pub fn update(&mut self, data: &[u8]) -> Result<()> {
        // SAFETY: valid signing context; reads data.len() bytes from a valid slice.
        let ok = unsafe {
            ffi::EVP_DigestSignUpdate(self.ctx.as_ptr(), data.as_ptr().cast(), data.len())
        };
        if ok != 1 {
            return fail(Error::Failed("EVP_DigestSignUpdate"));
        }
        Ok(())
    }

    /// The signature (ASN.1 DER `SEQUENCE { r INTEGER, s INTEGER }`) of everything given to
    /// [`Self::update`]. ECDSA is randomized: each call signs the same message anew with a
    /// fresh nonce (`EVP_DigestSignFinal` finishes a copy of the hash state), so a caller
    /// may call it again, e.g. to get a signature of a given length. In a FIPS build an
    /// `Err(NotApproved)` if the module's service indicator did not count an approved
    /// service.
    pub fn sign(&mut self) -> Result<Vec<u8>> {
        let mut len = 0usize;
        // SAFETY: valid signing context; a null output asks only for the maximum length.
        if unsafe { ffi::EVP_DigestSignFinal(self.ctx.as_ptr(), null_mut(), &mut len) } != 1 {
            return fail(Error::Failed("EVP_DigestSignFinal (length)"));
        }
        let mut sig = vec![0u8; len];
        approved_call("EVP_DigestSignFinal", || {
            // SAFETY: valid signing context; writes at most `len` bytes (the maximum it
            // reported, sig.len()) and stores the real length in `len`.
            unsafe { ffi::EVP_DigestSignFinal(self.ctx.as_ptr(), sig.as_mut_ptr(), &mut len) }
        })?;
        if len == 0 || len > sig.len() {
            return fail(Error::Failed("EVP_DigestSignFinal (length)"));
        }
        sig.truncate(len);
        Ok(sig)
    }
}

/// A streaming ECDSA verification: [`Self::update`] with the message in pieces, then
/// [`Self::verify`].
pub struct Verifier {
    ctx: MdCtx,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(..)")
    }
}

impl Verifier {
    /// Start a verification with `key` (SHA-256 for P-256, SHA-384 for P-384).
    pub fn new(key: &VerifyingKey) -> Result<Self> {
        Ok(Self {
            ctx: init(key.curve(), key.pkey(), Op::Verify)?,
        })
    }

    /// Add `data` to the message being verified.
    pub fn update(&mut self, data: &[u8]) -> Result<()> {
        // SAFETY: valid verifying context; reads data.len() bytes from a valid slice.
        let ok = unsafe {
            ffi::EVP_DigestVerifyUpdate(self.ctx.as_ptr(), data.as_ptr().cast(), data.len())
        };
        if ok != 1 {
            return fail(Error::Failed("EVP_DigestVerifyUpdate"));
        }
        Ok(())
    }

    /// `Ok` if `der` (strict ASN.1 DER `SEQUENCE { r, s }`) is a valid signature of
    /// everything given to [`Self::update`]; `Err(BadSignature)` otherwise (malformed DER
    /// included). In a FIPS build a valid signature also needs the module's service
    /// indicator to count an approved service (`Err(NotApproved)` otherwise).
    pub fn verify(self, der: &[u8]) -> Result<()> {
        #[cfg(feature = "fips")]
        // SAFETY: reads a thread-local counter of the module; no arguments.
        let before = unsafe { ffi::FIPS_service_indicator_before_call() };
        // SAFETY: valid verifying context; reads der.len() bytes from a valid slice.
        let ok = unsafe { ffi::EVP_DigestVerifyFinal(self.ctx.as_ptr(), der.as_ptr(), der.len()) };
        if ok != 1 {
            return fail(Error::BadSignature);
        }
        #[cfg(feature = "fips")]
        {
            // SAFETY: as above.
            let after = unsafe { ffi::FIPS_service_indicator_after_call() };
            if after == before {
                return fail(Error::NotApproved("EVP_DigestVerifyFinal"));
            }
        }
        Ok(())
    }
}
