//! Data keys, encrypted data keys and per-message key derivation
//! (ESDK spec `framework/transitive-requirements.md`, `client-apis/encrypt.md`).

use std::fmt;

use aws_lc_rs::aead::{self, LessSafeKey, UnboundKey};
use aws_lc_rs::hkdf;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};
use crate::suite::{AlgorithmSuite, Kdf};

/// A plaintext data key. Zeroized on drop, never printed, not `Clone` (use
/// [`DataKey::duplicate`] where a second copy is really needed, e.g. a cache).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DataKey(Vec<u8>);

impl DataKey {
    /// Wrap key bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Copy key bytes out of a slice.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    /// A fresh random key for `suite` from the system CSPRNG.
    pub fn generate(suite: AlgorithmSuite) -> Result<Self> {
        let mut k = vec![0u8; suite.key_len()];
        aws_lc_rs::rand::fill(&mut k).map_err(|_| Error::Crypto("random"))?;
        Ok(Self(k))
    }

    /// The key bytes. Callers must not copy them anywhere that outlives the call.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key is empty (never for a valid key).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// An explicit second copy (for caches); the copy is zeroized on drop as well.
    pub fn duplicate(&self) -> Self {
        Self(self.0.clone())
    }

    pub(crate) fn check_len(&self, suite: AlgorithmSuite) -> Result<()> {
        if self.0.len() == suite.key_len() {
            Ok(())
        } else {
            Err(Error::DataKeyLength {
                expected: suite.key_len(),
                found: self.0.len(),
            })
        }
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({} bytes, redacted)", self.0.len())
    }
}

/// One wrapped copy of the data key, as stored in the header
/// (spec `data-format/message-header.md#encrypted-data-key-entries`).
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptedDataKey {
    /// Key provider id (for raw keyrings, the key namespace).
    pub provider_id: String,
    /// Provider-specific info (for raw AES: key name ‖ tag bits ‖ IV len ‖ IV).
    pub provider_info: Vec<u8>,
    /// The wrapped key.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for EncryptedDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedDataKey")
            .field("provider_id", &self.provider_id)
            .field(
                "provider_info",
                &String::from_utf8_lossy(&self.provider_info),
            )
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// Output length marker for aws-lc-rs HKDF.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &hkdf::Prk, info: &[&[u8]], len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    prk.expand(info, Len(len))
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| Error::Crypto("hkdf"))?;
    Ok(out)
}

/// The per-message keys derived from a data key.
pub(crate) struct DerivedKeys {
    pub(crate) aead: LessSafeKey,
    /// Key commitment (suite data), for committing suites.
    pub(crate) commitment: Option<Zeroizing<Vec<u8>>>,
}

pub(crate) fn aead_algorithm(suite: AlgorithmSuite) -> &'static aead::Algorithm {
    match suite.key_len() {
        16 => &aead::AES_128_GCM,
        24 => &aead::AES_192_GCM,
        _ => &aead::AES_256_GCM,
    }
}

/// Derive the message encryption key (and commitment) from the data key.
pub(crate) fn derive(
    suite: AlgorithmSuite,
    data_key: &DataKey,
    message_id: &[u8],
) -> Result<DerivedKeys> {
    data_key.check_len(suite)?;
    let id = suite.id().to_be_bytes();
    let (enc, commitment) = match suite.kdf() {
        Kdf::Identity => (Zeroizing::new(data_key.expose().to_vec()), None),
        Kdf::HkdfSha256 | Kdf::HkdfSha384 => {
            let alg = if suite.kdf() == Kdf::HkdfSha256 {
                hkdf::HKDF_SHA256
            } else {
                hkdf::HKDF_SHA384
            };
            let prk = hkdf::Salt::new(alg, &[]).extract(data_key.expose());
            (expand(&prk, &[&id, message_id], suite.key_len())?, None)
        }
        Kdf::HkdfSha512Commit => {
            let prk = hkdf::Salt::new(hkdf::HKDF_SHA512, message_id).extract(data_key.expose());
            let enc = expand(&prk, &[&id, b"DERIVEKEY"], 32)?;
            let commit = expand(&prk, &[b"COMMITKEY"], 32)?;
            (enc, Some(commit))
        }
    };
    let unbound =
        UnboundKey::new(aead_algorithm(suite), &enc).map_err(|_| Error::Crypto("aead key"))?;
    Ok(DerivedKeys {
        aead: LessSafeKey::new(unbound),
        commitment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_key_bytes() {
        let k = DataKey::new(vec![0xAB; 32]);
        let s = format!("{k:?}");
        assert!(
            !s.contains("171") && !s.to_lowercase().contains("ab"),
            "{s}"
        );
    }

    #[test]
    fn commitment_depends_on_key_and_message_id() {
        let s = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        let k1 = DataKey::new(vec![1; 32]);
        let k2 = DataKey::new(vec![2; 32]);
        let c = |k: &DataKey, m: &[u8]| derive(s, k, m).unwrap().commitment.unwrap().to_vec();
        assert_ne!(c(&k1, &[0; 32]), c(&k2, &[0; 32]));
        assert_ne!(c(&k1, &[0; 32]), c(&k1, &[1; 32]));
        assert_eq!(c(&k1, &[0; 32]), c(&k1, &[0; 32]));
        assert!(derive(s, &DataKey::new(vec![1; 16]), &[0; 32]).is_err());
    }
}
