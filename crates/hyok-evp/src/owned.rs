//! Owners of AWS-LC objects: each holds one non-null pointer it alone may free, and frees it
//! in `Drop`. Constructors return `Err` instead of an owner of a null pointer.

use crate::{fail, ffi, Error, Result};

macro_rules! owner {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $free:ident) => {
        $(#[$doc])*
        pub(crate) struct $name(*mut $ty);

        impl $name {
            /// Take ownership of `ptr` (the result of an AWS-LC allocating function);
            /// `Err(Failed(what))` if it is null.
            pub(crate) fn from_ptr(ptr: *mut $ty, what: &'static str) -> Result<Self> {
                if ptr.is_null() {
                    fail(Error::Failed(what))
                } else {
                    Ok(Self(ptr))
                }
            }

            pub(crate) fn as_ptr(&self) -> *mut $ty {
                self.0
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: self.0 is non-null (checked in from_ptr), owned by this value
                // alone (into_ptr forgets self), and freed exactly once, here.
                unsafe { ffi::$free(self.0) }
            }
        }
    };
}

owner!(
    /// An `EVP_PKEY` (the key a signing or verifying context uses). Freeing a private key
    /// wipes it: AWS-LC's `OPENSSL_free` cleanses every allocation before releasing it.
    Pkey,
    ffi::EVP_PKEY,
    EVP_PKEY_free
);
owner!(
    /// An `EC_KEY` not yet handed to an `EVP_PKEY`.
    EcKey,
    ffi::EC_KEY,
    EC_KEY_free
);
owner!(
    /// An `EC_POINT`.
    EcPoint,
    ffi::EC_POINT,
    EC_POINT_free
);
owner!(
    /// A `BIGNUM` that may hold a secret: freed with `BN_clear_free`.
    SecretBn,
    ffi::BIGNUM,
    BN_clear_free
);
owner!(
    /// An `EVP_MD_CTX` (a streaming signing, verifying or hashing context).
    MdCtx,
    ffi::EVP_MD_CTX,
    EVP_MD_CTX_free
);

impl EcKey {
    /// Give up ownership (the pointer now belongs to whatever it was passed to).
    fn into_ptr(self) -> *mut ffi::EC_KEY {
        let p = self.0;
        std::mem::forget(self);
        p
    }
}

impl Pkey {
    /// An `EVP_PKEY` that takes over `key`.
    pub(crate) fn from_ec_key(key: EcKey) -> Result<Self> {
        // SAFETY: EVP_PKEY_new takes no arguments and returns a new object or null.
        let pkey = Self::from_ptr(unsafe { ffi::EVP_PKEY_new() }, "EVP_PKEY_new")?;
        // SAFETY: both pointers are valid and owned. On success the EVP_PKEY takes over the
        // EC_KEY's reference (so `key` must not free it: into_ptr below); on failure it does
        // not, and dropping `key` frees the EC_KEY.
        let ok = unsafe { ffi::EVP_PKEY_assign_EC_KEY(pkey.as_ptr(), key.as_ptr()) } == 1;
        if !ok {
            return fail(Error::Failed("EVP_PKEY_assign_EC_KEY"));
        }
        let _ = key.into_ptr();
        Ok(pkey)
    }

    /// The `EC_KEY` inside (borrowed: owned by the `EVP_PKEY`).
    pub(crate) fn ec_key(&self) -> Result<*const ffi::EC_KEY> {
        // SAFETY: self.0 is a valid EVP_PKEY; the result is borrowed from it (get0) and
        // used only while `self` lives.
        let k = unsafe { ffi::EVP_PKEY_get0_EC_KEY(self.0) };
        if k.is_null() {
            fail(Error::Failed("EVP_PKEY_get0_EC_KEY"))
        } else {
            Ok(k.cast_const())
        }
    }
}

// SAFETY: the owners hold AWS-LC objects with no thread affinity (no thread-local state is
// tied to them; AWS-LC's objects may be used from any thread as long as one thread at a
// time does). Each owner has exclusive access to its object (no `Clone`, no shared raw
// pointers escape the crate), so moving it to another thread is sound. They are not `Sync`.
unsafe impl Send for Pkey {}
// SAFETY: as for `Pkey`.
unsafe impl Send for MdCtx {}
