//! Message signatures for signed suites (ESDK spec `data-format/message-footer.md`):
//! ECDSA over a hash of header ‖ body, the verification key carried in the encryption
//! context as the base64 of its compressed SEC1 point.

use aws_lc_rs::digest;
use base64::Engine as _;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};

use crate::error::{Error, Result};
use crate::suite::SignatureAlgorithm;

/// Incremental hash of everything a signature covers.
pub(crate) struct MessageHash(digest::Context);

impl MessageHash {
    pub(crate) fn new(alg: SignatureAlgorithm) -> Self {
        Self(digest::Context::new(match alg {
            SignatureAlgorithm::EcdsaP256Sha256 => &digest::SHA256,
            SignatureAlgorithm::EcdsaP384Sha384 => &digest::SHA384,
        }))
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn finish(self) -> digest::Digest {
        self.0.finish()
    }
}

/// The per-message signing key of a signed suite. Generated fresh for each message,
/// used once and dropped (the underlying secret scalar zeroizes on drop).
pub struct MessageSigner {
    key: SignerKey,
}

enum SignerKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

impl std::fmt::Debug for MessageSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageSigner(redacted)")
    }
}

fn random_bytes(n: usize) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let mut b = zeroize::Zeroizing::new(vec![0u8; n]);
    aws_lc_rs::rand::fill(&mut b).map_err(|_| Error::Crypto("random"))?;
    Ok(b)
}

impl MessageSigner {
    /// Generate a fresh key pair for `alg`.
    pub fn generate(alg: SignatureAlgorithm) -> Result<Self> {
        // A random scalar is invalid only if it is 0 or ≥ n (probability ~2^-128); retry.
        for _ in 0..8 {
            let key = match alg {
                SignatureAlgorithm::EcdsaP256Sha256 => {
                    p256::ecdsa::SigningKey::from_slice(&random_bytes(32)?).map(SignerKey::P256)
                }
                SignatureAlgorithm::EcdsaP384Sha384 => {
                    p384::ecdsa::SigningKey::from_slice(&random_bytes(48)?).map(SignerKey::P384)
                }
            };
            if let Ok(key) = key {
                return Ok(Self { key });
            }
        }
        Err(Error::Crypto("signing key generation"))
    }

    /// A key pair from a fixed scalar, so that fuzzing is reproducible. For `fuzzing` only.
    pub(crate) fn fixed_for_fuzzing(alg: SignatureAlgorithm) -> Self {
        // Constant scalars in [1, n): `from_slice` cannot fail on them.
        let key = match alg {
            SignatureAlgorithm::EcdsaP256Sha256 => SignerKey::P256(
                p256::ecdsa::SigningKey::from_slice(&[1u8; 32]).expect("a valid P-256 scalar"),
            ),
            SignatureAlgorithm::EcdsaP384Sha384 => SignerKey::P384(
                p384::ecdsa::SigningKey::from_slice(&[1u8; 48]).expect("a valid P-384 scalar"),
            ),
        };
        Self { key }
    }

    /// The public key as carried in the context: base64 of the compressed SEC1 point.
    pub fn public_key_b64(&self) -> String {
        let point = match &self.key {
            SignerKey::P256(k) => k.verifying_key().to_encoded_point(true).as_bytes().to_vec(),
            SignerKey::P384(k) => k.verifying_key().to_encoded_point(true).as_bytes().to_vec(),
        };
        base64::engine::general_purpose::STANDARD.encode(point)
    }

    pub(crate) fn sign(self, hash: MessageHash) -> Result<Vec<u8>> {
        let d = hash.finish();
        let der = match &self.key {
            SignerKey::P256(k) => {
                let s: p256::ecdsa::Signature = k
                    .sign_prehash(d.as_ref())
                    .map_err(|_| Error::Crypto("sign"))?;
                s.to_der().as_bytes().to_vec()
            }
            SignerKey::P384(k) => {
                let s: p384::ecdsa::Signature = k
                    .sign_prehash(d.as_ref())
                    .map_err(|_| Error::Crypto("sign"))?;
                s.to_der().as_bytes().to_vec()
            }
        };
        Ok(der)
    }
}

/// Verification key parsed from the `aws-crypto-public-key` context value.
pub(crate) enum MessageVerifier {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

impl MessageVerifier {
    pub(crate) fn from_context_value(alg: SignatureAlgorithm, b64: &str) -> Result<Self> {
        let bad = || Error::MalformedHeader("invalid aws-crypto-public-key".into());
        let point = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| bad())?;
        Ok(match alg {
            SignatureAlgorithm::EcdsaP256Sha256 => {
                Self::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| bad())?)
            }
            SignatureAlgorithm::EcdsaP384Sha384 => {
                Self::P384(p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| bad())?)
            }
        })
    }

    pub(crate) fn verify(&self, hash: MessageHash, der: &[u8]) -> Result<()> {
        let d = hash.finish();
        let ok = match self {
            Self::P256(k) => p256::ecdsa::Signature::from_der(der)
                .ok()
                .map(|s| k.verify_prehash(d.as_ref(), &s).is_ok()),
            Self::P384(k) => p384::ecdsa::Signature::from_der(der)
                .ok()
                .map(|s| k.verify_prehash(d.as_ref(), &s).is_ok()),
        };
        match ok {
            Some(true) => Ok(()),
            _ => Err(Error::Signature),
        }
    }
}
