//! What a FIPS build (`--features fips`, docs/CUSTODY.md §4) refuses in the key stores.
//!
//! In that build aws-lc-rs runs the AWS-LC FIPS 140-3 module. Key-store features built on a
//! method the module does not offer as an approved service are refused with one line,
//! rather than run outside the module's approved mode:
//! - `pq-escrow:` keys: X-Wing combines ML-KEM-768 (approved, FIPS 203) with X25519, which is
//!   not an approved key-establishment scheme, so the wrap is not an approved service;
//! - k-of-n keyrings: Shamir's secret sharing is not a cryptographic primitive under FIPS
//!   140-3; SP 800-133r2 §6.3 knows key splitting only as an XOR of k = n components, so a
//!   data key split k-of-n is not protected by an approved method (each share is still
//!   wrapped by an approved key);
//! - raw RSA keys with PKCS#1 v1.5 padding: not an approved key-transport scheme since 2023
//!   (SP 800-131A r2); RSA-OAEP is.

use crate::error::{Error, Result};

/// Whether this build links the AWS-LC FIPS module (`--features fips`).
pub const FIPS_BUILD: bool = cfg!(feature = "fips");

/// `Ok` in a default build; in a FIPS build the one-line refusal of `what` with `why`.
pub fn refuse_in_fips_build(what: &str, why: &str) -> Result<()> {
    if FIPS_BUILD {
        return Err(Error::Config(format!(
            "{what} is not available in a FIPS build ({why})"
        )));
    }
    Ok(())
}

/// The refusal of `pq-escrow:` keys.
pub(crate) fn refuse_pq_escrow() -> Result<()> {
    refuse_in_fips_build(
        "pq-escrow (X-Wing)",
        "its X25519 half is not an approved key-establishment scheme",
    )
}

/// The refusal of k-of-n keyrings.
pub(crate) fn refuse_threshold() -> Result<()> {
    refuse_in_fips_build(
        "a k-of-n keyring",
        "Shamir's secret sharing is not an approved key-splitting method",
    )
}

/// The refusal of RSA PKCS#1 v1.5 key transport (`padding=pkcs1`).
pub(crate) fn refuse_rsa_pkcs1() -> Result<()> {
    refuse_in_fips_build(
        "RSA PKCS#1 v1.5 key transport (padding=pkcs1)",
        "not approved since 2023, SP 800-131A r2; use padding=oaep-sha256",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_follow_the_build() {
        for r in [refuse_pq_escrow(), refuse_threshold(), refuse_rsa_pkcs1()] {
            assert_eq!(r.is_err(), FIPS_BUILD, "{r:?}");
            if let Err(e) = r {
                assert!(
                    e.to_string().contains("not available in a FIPS build"),
                    "{e}"
                );
            }
        }
    }
}
