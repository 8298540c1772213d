//! Message signatures for signed suites (ESDK spec `data-format/message-footer.md`):
//! ECDSA over header ‖ body, the verification key carried in the encryption context as the
//! base64 of its compressed SEC1 point.
//!
//! Signing and verifying run as AWS-LC's streaming `EVP_DigestSign*` / `EVP_DigestVerify*`
//! service (through `hyok-evp`): the bytes are fed to the signature context as they are
//! written or read, so a message of any size is signed in bounded memory, and in a FIPS
//! build the whole signature, hash included, is an approved service of the module.

use base64::Engine as _;
use hyok_evp::{Curve, Signer, SigningKey, Verifier, VerifyingKey};

use crate::error::{Error, Result};
use crate::suite::SignatureAlgorithm;

fn curve(alg: SignatureAlgorithm) -> Curve {
    match alg {
        SignatureAlgorithm::EcdsaP256Sha256 => Curve::P256,
        SignatureAlgorithm::EcdsaP384Sha384 => Curve::P384,
    }
}

/// A failure of the module while signing (never one of the message's content).
fn module_error(e: hyok_evp::Error) -> Error {
    match e {
        hyok_evp::Error::NotApproved(_) => {
            Error::Crypto("ECDSA: the FIPS module did not report an approved service")
        }
        hyok_evp::Error::InvalidKey => Error::Crypto("ECDSA: invalid signing key"),
        hyok_evp::Error::BadSignature | hyok_evp::Error::Failed(_) => Error::Crypto("ECDSA"),
    }
}

/// The DER length every official ESDK writer gives its signatures (r with its top bit
/// set, s without): 71 bytes for P-256, 103 for P-384 (/work/shared/docs/ESDK-FORMAT.md
/// §7). hyok writes signatures of that length only for the fixed fuzzing key, so that the
/// same fuzz input always makes a message of the same length (docs/DESIGN.md).
fn official_len(curve: Curve) -> usize {
    match curve {
        Curve::P256 => 71,
        Curve::P384 => 103,
    }
}

/// The per-message signing key of a signed suite. Generated fresh for each message inside
/// the crypto module, used once and dropped (AWS-LC wipes the scalar when it is freed).
pub struct MessageSigner {
    key: SigningKey,
    /// `aws-crypto-public-key`: base64 of the compressed SEC1 point.
    public_b64: String,
    /// Sign until the DER has [`official_len`] (fuzzing key only).
    fixed_len: bool,
}

impl std::fmt::Debug for MessageSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageSigner(redacted)")
    }
}

impl MessageSigner {
    fn with_key(key: SigningKey, fixed_len: bool) -> Result<Self> {
        let point = key.public_key_compressed().map_err(module_error)?;
        Ok(Self {
            key,
            public_b64: base64::engine::general_purpose::STANDARD.encode(point),
            fixed_len,
        })
    }

    /// Generate a fresh key pair for `alg`.
    pub fn generate(alg: SignatureAlgorithm) -> Result<Self> {
        let key = SigningKey::generate(curve(alg))
            .map_err(|_| Error::Crypto("signing key generation"))?;
        Self::with_key(key, false)
    }

    /// A key pair from a fixed scalar, so that fuzzing is reproducible. For `fuzzing` only.
    pub(crate) fn fixed_for_fuzzing(alg: SignatureAlgorithm) -> Self {
        let c = curve(alg);
        // A constant scalar in [1, n): valid on both curves.
        let key = SigningKey::from_scalar(c, &vec![1u8; c.field_len()]).expect("a valid scalar");
        Self::with_key(key, true).expect("a valid key")
    }

    /// The public key as carried in the context: base64 of the compressed SEC1 point.
    pub fn public_key_b64(&self) -> String {
        self.public_b64.clone()
    }

    /// Start the signature of a message: feed it everything before the footer.
    pub(crate) fn start(self) -> Result<SigningStream> {
        Ok(SigningStream {
            signer: Signer::new(&self.key).map_err(module_error)?,
            fixed_len: self.fixed_len.then(|| official_len(self.key.curve())),
            failed: false,
        })
    }
}

/// The running signature of a message being written.
pub(crate) struct SigningStream {
    signer: Signer,
    fixed_len: Option<usize>,
    /// An update failed: [`Self::sign`] refuses (no signature of a partial message).
    failed: bool,
}

impl SigningStream {
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.failed |= self.signer.update(data).is_err();
    }

    /// The footer signature (ASN.1 DER) of everything given to [`Self::update`].
    pub(crate) fn sign(mut self) -> Result<Vec<u8>> {
        if self.failed {
            return Err(Error::Crypto("ECDSA: hashing the message failed"));
        }
        let mut der = self.signer.sign().map_err(module_error)?;
        if let Some(want) = self.fixed_len {
            // Each try has that length with probability about 1/2.
            for _ in 0..64 {
                if der.len() == want {
                    break;
                }
                der = self.signer.sign().map_err(module_error)?;
            }
        }
        Ok(der)
    }
}

/// Verification key parsed from the `aws-crypto-public-key` context value.
pub(crate) struct MessageVerifier(VerifyingKey);

impl MessageVerifier {
    pub(crate) fn from_context_value(alg: SignatureAlgorithm, b64: &str) -> Result<Self> {
        let bad = || Error::MalformedHeader("invalid aws-crypto-public-key".into());
        let point = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| bad())?;
        VerifyingKey::from_sec1(curve(alg), &point)
            .map(Self)
            .map_err(|_| bad())
    }

    /// Start the verification of a message: feed it everything before the footer.
    pub(crate) fn start(&self) -> Result<VerifyingStream> {
        Ok(VerifyingStream {
            verifier: Verifier::new(&self.0).map_err(module_error)?,
            failed: false,
        })
    }
}

/// The running verification of a message being read.
pub(crate) struct VerifyingStream {
    verifier: Verifier,
    /// An update failed: [`Self::verify`] fails.
    failed: bool,
}

impl VerifyingStream {
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.failed |= self.verifier.update(data).is_err();
    }

    /// `Ok` if `der` is a valid signature of everything given to [`Self::update`].
    pub(crate) fn verify(self, der: &[u8]) -> Result<()> {
        if self.failed {
            return Err(Error::Crypto("ECDSA: hashing the message failed"));
        }
        self.verifier.verify(der).map_err(|e| match e {
            hyok_evp::Error::BadSignature | hyok_evp::Error::InvalidKey => Error::Signature,
            e => module_error(e),
        })
    }
}
