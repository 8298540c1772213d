//! ECDSA keys: a private key that stays inside AWS-LC, and a public key parsed from SEC1.

use std::ptr::{null, null_mut};

use crate::owned::{EcKey, EcPoint, Pkey, SecretBn};
use crate::{fail, ffi, Curve, Error, Result};

/// An ECDSA private key (and its public key). The scalar lives in AWS-LC's memory only,
/// which AWS-LC wipes when the key is dropped.
pub struct SigningKey {
    curve: Curve,
    pkey: Pkey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({:?}, redacted)", self.curve)
    }
}

/// A new, empty `EC_KEY` on `curve`.
fn new_ec_key(curve: Curve) -> Result<EcKey> {
    // SAFETY: takes a curve NID (one of two constants AWS-LC knows) and returns a new
    // EC_KEY or null.
    EcKey::from_ptr(
        unsafe { ffi::EC_KEY_new_by_curve_name(curve.nid()) },
        "EC_KEY_new_by_curve_name",
    )
}

impl SigningKey {
    /// A fresh key pair from the module's key generation (`EC_KEY_generate_key_fips`: the
    /// module's DRBG, then its pairwise consistency test).
    pub fn generate(curve: Curve) -> Result<Self> {
        let key = new_ec_key(curve)?;
        // SAFETY: `key` is a valid EC_KEY with its group set and no key yet.
        if unsafe { ffi::EC_KEY_generate_key_fips(key.as_ptr()) } != 1 {
            return fail(Error::Failed("EC_KEY_generate_key_fips"));
        }
        Ok(Self {
            curve,
            pkey: Pkey::from_ec_key(key)?,
        })
    }

    /// The key pair whose private scalar is `scalar` (big-endian, exactly
    /// [`Curve::field_len`] bytes, in `[1, n)`). For reproducible tests and fuzzing only:
    /// a real signing key comes from [`Self::generate`].
    pub fn from_scalar(curve: Curve, scalar: &[u8]) -> Result<Self> {
        if scalar.len() != curve.field_len() {
            return fail(Error::InvalidKey);
        }
        let key = new_ec_key(curve)?;
        // SAFETY: reads scalar.len() bytes from a valid slice; a null `ret` asks for a new
        // BIGNUM (or null on allocation failure).
        let bn = SecretBn::from_ptr(
            unsafe { ffi::BN_bin2bn(scalar.as_ptr(), scalar.len(), null_mut()) },
            "BN_bin2bn",
        )?;
        // SAFETY: valid EC_KEY and BIGNUM; the EC_KEY copies the value (it rejects 0 and
        // values ≥ n), `bn` stays ours and is cleared when dropped.
        if unsafe { ffi::EC_KEY_set_private_key(key.as_ptr(), bn.as_ptr()) } != 1 {
            return fail(Error::InvalidKey);
        }
        // SAFETY: `key` is valid; the group is borrowed from it and used while it lives.
        let group = unsafe { ffi::EC_KEY_get0_group(key.as_ptr()) };
        // SAFETY: `group` is a valid group; returns a new point or null.
        let point = EcPoint::from_ptr(unsafe { ffi::EC_POINT_new(group) }, "EC_POINT_new")?;
        // SAFETY: point = scalar × G on `group` (null q/m: no second term; null BN_CTX: a
        // temporary one). All pointers valid for the call.
        let ok = unsafe {
            ffi::EC_POINT_mul(
                group,
                point.as_ptr(),
                bn.as_ptr(),
                null(),
                null(),
                null_mut(),
            )
        };
        if ok != 1 {
            return fail(Error::Failed("EC_POINT_mul"));
        }
        // SAFETY: valid EC_KEY and point on its group; the EC_KEY copies the point.
        if unsafe { ffi::EC_KEY_set_public_key(key.as_ptr(), point.as_ptr()) } != 1 {
            return fail(Error::Failed("EC_KEY_set_public_key"));
        }
        // SAFETY: valid EC_KEY with both halves set; checks the public point and that it
        // belongs to the private scalar.
        if unsafe { ffi::EC_KEY_check_key(key.as_ptr()) } != 1 {
            return fail(Error::InvalidKey);
        }
        Ok(Self {
            curve,
            pkey: Pkey::from_ec_key(key)?,
        })
    }

    /// The curve.
    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// The public key as a compressed SEC1 point (`02|03 ‖ x`), as the ESDK carries it.
    pub fn public_key_compressed(&self) -> Result<Vec<u8>> {
        let key = self.pkey.ec_key()?;
        // SAFETY: `key` is borrowed from self.pkey, valid while `self` lives; both results
        // are borrowed from it in turn.
        let (group, point) = unsafe {
            (
                ffi::EC_KEY_get0_group(key),
                ffi::EC_KEY_get0_public_key(key),
            )
        };
        if group.is_null() || point.is_null() {
            return fail(Error::Failed("EC_KEY_get0_public_key"));
        }
        let mut out = vec![0u8; self.curve.compressed_len()];
        // SAFETY: writes at most out.len() bytes into `out`; group and point are valid.
        let n = unsafe {
            ffi::EC_POINT_point2oct(
                group,
                point,
                ffi::point_conversion_form_t::POINT_CONVERSION_COMPRESSED,
                out.as_mut_ptr(),
                out.len(),
                null_mut(),
            )
        };
        if n != out.len() {
            return fail(Error::Failed("EC_POINT_point2oct"));
        }
        Ok(out)
    }

    /// The matching verifying key.
    pub fn verifying_key(&self) -> Result<VerifyingKey> {
        VerifyingKey::from_sec1(self.curve, &self.public_key_compressed()?)
    }

    pub(crate) fn pkey(&self) -> &Pkey {
        &self.pkey
    }
}

/// An ECDSA public key.
pub struct VerifyingKey {
    curve: Curve,
    pkey: Pkey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyingKey({:?})", self.curve)
    }
}

impl VerifyingKey {
    /// A public key from its SEC1 encoding: compressed (`02|03 ‖ x`, as the ESDK carries it)
    /// or uncompressed (`04 ‖ x ‖ y`). `Err(InvalidKey)` for any other length or prefix, a
    /// point not on the curve, or the point at infinity.
    pub fn from_sec1(curve: Curve, sec1: &[u8]) -> Result<Self> {
        let f = curve.field_len();
        let shape_ok = match sec1.first() {
            Some(2 | 3) => sec1.len() == 1 + f,
            Some(4) => sec1.len() == 1 + 2 * f,
            _ => false,
        };
        if !shape_ok {
            return fail(Error::InvalidKey);
        }
        let key = new_ec_key(curve)?;
        // SAFETY: `key` is valid; the group is borrowed from it and used while it lives.
        let group = unsafe { ffi::EC_KEY_get0_group(key.as_ptr()) };
        // SAFETY: `group` is a valid group; returns a new point or null.
        let point = EcPoint::from_ptr(unsafe { ffi::EC_POINT_new(group) }, "EC_POINT_new")?;
        // SAFETY: reads sec1.len() bytes from a valid slice into a valid point of `group`;
        // rejects encodings of points not on the curve.
        let ok = unsafe {
            ffi::EC_POINT_oct2point(group, point.as_ptr(), sec1.as_ptr(), sec1.len(), null_mut())
        };
        if ok != 1 {
            return fail(Error::InvalidKey);
        }
        // SAFETY: valid EC_KEY and point of its group; the EC_KEY copies the point.
        if unsafe { ffi::EC_KEY_set_public_key(key.as_ptr(), point.as_ptr()) } != 1 {
            return fail(Error::InvalidKey);
        }
        // SAFETY: valid EC_KEY with a public key set: rejects infinity and off-curve points.
        if unsafe { ffi::EC_KEY_check_key(key.as_ptr()) } != 1 {
            return fail(Error::InvalidKey);
        }
        Ok(Self {
            curve,
            pkey: Pkey::from_ec_key(key)?,
        })
    }

    /// The curve.
    pub fn curve(&self) -> Curve {
        self.curve
    }

    pub(crate) fn pkey(&self) -> &Pkey {
        &self.pkey
    }
}
