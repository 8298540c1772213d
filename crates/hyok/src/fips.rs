//! The crypto module and FIPS mode (docs/CUSTODY.md §4).
//!
//! A FIPS build (`cargo build --release -p hyok-cli --features fips`) links aws-lc-rs on the
//! AWS-LC FIPS 140-3 module (`aws-lc-fips-sys`) instead of the default AWS-LC. Its programs
//! check at start that the module runs in FIPS mode ([`require_fips_mode`]) and stop
//! otherwise. What the build refuses: `pq-escrow:` keys, k-of-n keyrings and RSA PKCS#1 v1.5
//! ([`hyok_keystore::fips`]). The signed suites run in the module (hyok-evp).

/// Whether this is a FIPS build (`--features fips`).
pub const FIPS_BUILD: bool = cfg!(feature = "fips");

/// The crypto module and its mode, for `hyok --version`: the AWS-LC version that is linked,
/// in a FIPS build the FIPS module version, and whether the module runs in FIPS mode.
pub fn crypto_module() -> String {
    let version = aws_lc_rs::awslc_version();
    match (FIPS_BUILD, aws_lc_rs::try_fips_mode()) {
        (true, Ok(())) => format!(
            "crypto: AWS-LC FIPS {version} (aws-lc-rs, FIPS module version {}), FIPS 140-3 mode: yes",
            aws_lc_rs::fips_version().map_or_else(|| "unknown".to_owned(), |v| v.to_string())
        ),
        (true, Err(e)) => {
            format!("crypto: AWS-LC FIPS {version} (aws-lc-rs), FIPS 140-3 mode: no ({e})")
        }
        (false, _) => {
            format!("crypto: AWS-LC {version} (aws-lc-rs), FIPS 140-3 mode: no (default build)")
        }
    }
}

/// In a FIPS build: `Ok` only if the module runs in FIPS mode (its power-on self tests
/// passed); programs call this first and stop on the error. In a default build: `Ok`.
pub fn require_fips_mode() -> crate::Result<()> {
    if !FIPS_BUILD {
        return Ok(());
    }
    aws_lc_rs::try_fips_mode().map_err(|e| {
        crate::Error::Config(format!(
            "this is a FIPS build but the AWS-LC module is not in FIPS mode ({e}); refusing to run"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_matches_the_build() {
        let line = crypto_module();
        assert!(line.starts_with("crypto: AWS-LC "), "{line}");
        if FIPS_BUILD {
            assert!(line.ends_with("FIPS 140-3 mode: yes"), "{line}");
            assert!(require_fips_mode().is_ok());
        } else {
            assert!(
                line.ends_with("FIPS 140-3 mode: no (default build)"),
                "{line}"
            );
            assert!(require_fips_mode().is_ok());
        }
    }
}
