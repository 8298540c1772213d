//! Checkpoint signatures: the signer and verifier traits, ECDSA over P-256/P-384, a signer
//! for PEM private key files and a verifier for PEM public keys.
//!
//! Signatures are fixed-length `r ‖ s` (IEEE P1363), which is what PKCS#11 `CKM_ECDSA`
//! returns, so a token-held key plugs in without re-encoding.

use std::fmt;
use std::path::Path;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair, ParsedPublicKey, UnparsedPublicKey,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha384};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// PEM text with `\n` line endings (the `pem` crate defaults to `\r\n`).
fn pem_lf(p: &pem::Pem) -> String {
    pem::encode_config(
        p,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// PEM text (`PRIVATE KEY`, `\n` line ends) of private key material, built only in
/// buffers that are zeroized when dropped, each sized once (no reallocation leaves a
/// copy behind).
fn private_pem(der: &[u8]) -> Zeroizing<String> {
    use base64::Engine as _;
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = Zeroizing::new(String::with_capacity(b64.len() + b64.len() / 64 + 64));
    out.push_str("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

/// Signature algorithm of a checkpoint key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SignatureAlgorithm {
    /// ECDSA on P-256 over SHA-256, signature `r ‖ s` (64 bytes).
    #[serde(rename = "ecdsa-p256-sha256")]
    EcdsaP256Sha256,
    /// ECDSA on P-384 over SHA-384, signature `r ‖ s` (96 bytes).
    #[serde(rename = "ecdsa-p384-sha384")]
    EcdsaP384Sha384,
}

impl SignatureAlgorithm {
    /// Stable name, as written in checkpoints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            Self::EcdsaP384Sha384 => "ecdsa-p384-sha384",
        }
    }

    /// The digest this algorithm signs. Signers whose device signs a pre-computed digest
    /// (PKCS#11 `CKM_ECDSA`) hash the message with this first.
    pub fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::EcdsaP256Sha256 => Sha256::digest(message).to_vec(),
            Self::EcdsaP384Sha384 => Sha384::digest(message).to_vec(),
        }
    }

    /// Length of a signature in bytes.
    pub fn signature_len(self) -> usize {
        match self {
            Self::EcdsaP256Sha256 => 64,
            Self::EcdsaP384Sha384 => 96,
        }
    }

    fn signing(self) -> &'static EcdsaSigningAlgorithm {
        match self {
            Self::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            Self::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        }
    }

    fn verification(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Self::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_FIXED,
            Self::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_FIXED,
        }
    }

    const ALL: [Self; 2] = [Self::EcdsaP256Sha256, Self::EcdsaP384Sha384];
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies a checkpoint key: the first 8 bytes of SHA-256 over its DER
/// `SubjectPublicKeyInfo`, written as 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// Key id of a DER `SubjectPublicKeyInfo`.
    pub fn of_spki(spki_der: &[u8]) -> Self {
        let d = Sha256::digest(spki_der);
        let mut id = [0u8; 8];
        id.copy_from_slice(&d[..8]);
        Self(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut id = [0u8; 8];
        hex::decode_to_slice(s.as_bytes(), &mut id)
            .map_err(|_| serde::de::Error::custom("key_id must be 16 hex digits"))?;
        Ok(Self(id))
    }
}

/// Signs checkpoints.
///
/// Contract for implementors: `sign` returns an ECDSA signature of `message` under
/// [`CheckpointSigner::algorithm`] as fixed-length `r ‖ s`
/// ([`SignatureAlgorithm::signature_len`] bytes). Devices that sign a digest (PKCS#11
/// `CKM_ECDSA`) hash `message` with [`SignatureAlgorithm::digest`] first.
/// [`CheckpointSigner::public_key_der`] is the DER `SubjectPublicKeyInfo` of the key, from
/// which verifiers derive the [`KeyId`]. Errors name the key and the operation, never
/// secrets. Called from the log's writer thread: it may block (an HSM round trip).
pub trait CheckpointSigner: Send + Sync + fmt::Debug {
    /// The signature algorithm.
    fn algorithm(&self) -> SignatureAlgorithm;
    /// DER `SubjectPublicKeyInfo` of the signing key.
    fn public_key_der(&self) -> &[u8];
    /// Sign `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;
    /// Key id (derived from the public key).
    fn key_id(&self) -> KeyId {
        KeyId::of_spki(self.public_key_der())
    }
}

/// Verifies checkpoint signatures.
///
/// Contract for implementors: `verify` returns true only for a valid signature of
/// `message` by the key [`CheckpointVerifier::key_id`] names, under `algorithm`.
pub trait CheckpointVerifier: Send + Sync + fmt::Debug {
    /// The key this verifier checks.
    fn key_id(&self) -> KeyId;
    /// The algorithm of the key.
    fn algorithm(&self) -> SignatureAlgorithm;
    /// Whether `signature` is a valid signature of `message`.
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool;
}

/// An EC public key (P-256 or P-384) for verifying checkpoints.
pub struct PublicKey {
    alg: SignatureAlgorithm,
    spki: Vec<u8>,
    key: ParsedPublicKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("alg", &self.alg)
            .field("key_id", &self.key_id())
            .finish()
    }
}

impl PublicKey {
    /// From a DER `SubjectPublicKeyInfo` of an EC P-256 or P-384 key.
    pub fn from_der(spki: &[u8]) -> Result<Self> {
        for alg in SignatureAlgorithm::ALL {
            if let Ok(key) = UnparsedPublicKey::new(alg.verification(), spki).parse() {
                // Accept the raw point form only through from_pem/from_der of an SPKI:
                // re-encode so that the key id is always computed over the SPKI.
                let der = key
                    .as_der()
                    .map_err(|_| Error::Key("cannot encode the public key".into()))?;
                return Ok(Self {
                    alg,
                    spki: der.as_ref().to_vec(),
                    key,
                });
            }
        }
        Err(Error::Key(
            "not an EC P-256 or P-384 public key (SubjectPublicKeyInfo)".into(),
        ))
    }

    /// From a PEM `PUBLIC KEY` block.
    pub fn from_pem(text: &str) -> Result<Self> {
        let block =
            pem::parse(text).map_err(|e| Error::Key(format!("not a PEM public key: {e}")))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(Error::Key(format!(
                "expected a PEM \"PUBLIC KEY\" block, found {:?}",
                block.tag()
            )));
        }
        Self::from_der(block.contents())
    }

    /// Read a PEM public key file.
    pub fn from_pem_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "reading", e))?;
        Self::from_pem(&text).map_err(|e| Error::Key(format!("{}: {e}", path.display())))
    }

    /// DER `SubjectPublicKeyInfo`.
    pub fn der(&self) -> &[u8] {
        &self.spki
    }

    /// PEM `PUBLIC KEY` text.
    pub fn to_pem(&self) -> String {
        pem_lf(&pem::Pem::new("PUBLIC KEY", self.spki.clone()))
    }
}

impl CheckpointVerifier for PublicKey {
    fn key_id(&self) -> KeyId {
        KeyId::of_spki(&self.spki)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.alg
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        signature.len() == self.alg.signature_len()
            && self.key.verify_sig(message, signature).is_ok()
    }
}

/// A checkpoint signer holding an EC private key from a PEM file (PKCS#8 `PRIVATE KEY` or
/// SEC 1 `EC PRIVATE KEY`, P-256 or P-384). The key stays in aws-lc memory; `Debug` shows
/// only the key id.
pub struct PemSigner {
    alg: SignatureAlgorithm,
    pair: EcdsaKeyPair,
    spki: Vec<u8>,
    rng: SystemRandom,
}

impl fmt::Debug for PemSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemSigner")
            .field("alg", &self.alg)
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl PemSigner {
    /// From PEM text.
    pub fn from_pem(text: &str) -> Result<Self> {
        let block = pem::parse(text).map_err(|e| Error::Key(format!("not a PEM key: {e}")))?;
        if !matches!(block.tag(), "PRIVATE KEY" | "EC PRIVATE KEY") {
            return Err(Error::Key(format!(
                "expected a PEM \"PRIVATE KEY\" or \"EC PRIVATE KEY\" block, found {:?}",
                block.tag()
            )));
        }
        let der = Zeroizing::new(block.into_contents());
        for alg in SignatureAlgorithm::ALL {
            if let Ok(pair) = EcdsaKeyPair::from_private_key_der(alg.signing(), &der) {
                let spki = pair
                    .public_key()
                    .as_der()
                    .map_err(|_| Error::Key("cannot encode the public key".into()))?
                    .as_ref()
                    .to_vec();
                return Ok(Self {
                    alg,
                    pair,
                    spki,
                    rng: SystemRandom::new(),
                });
            }
        }
        Err(Error::Key(
            "not an EC P-256 or P-384 private key (PKCS#8 or SEC 1)".into(),
        ))
    }

    /// Read a PEM private key file.
    pub fn from_pem_file(path: &Path) -> Result<Self> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| Error::io(path, "reading", e))?,
        );
        Self::from_pem(&text).map_err(|e| Error::Key(format!("{}: {e}", path.display())))
    }

    /// A fresh key (tests, examples).
    pub fn generate(alg: SignatureAlgorithm) -> Result<Self> {
        let doc = EcdsaKeyPair::generate_pkcs8(alg.signing(), &SystemRandom::new())
            .map_err(|_| Error::Key("generating an EC key failed".into()))?;
        let text = private_pem(doc.as_ref());
        Self::from_pem(&text)
    }

    /// PEM text of a fresh private key (PKCS#8) and its public key, for `hyok key new`.
    pub fn generate_pem(alg: SignatureAlgorithm) -> Result<(Zeroizing<String>, String)> {
        let doc = EcdsaKeyPair::generate_pkcs8(alg.signing(), &SystemRandom::new())
            .map_err(|_| Error::Key("generating an EC key failed".into()))?;
        let private = private_pem(doc.as_ref());
        let signer = Self::from_pem(&private)?;
        let public = pem_lf(&pem::Pem::new("PUBLIC KEY", signer.spki.clone()));
        Ok((private, public))
    }

    /// The public key, for verifiers.
    pub fn public_key(&self) -> Result<PublicKey> {
        PublicKey::from_der(&self.spki)
    }
}

impl CheckpointSigner for PemSigner {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.alg
    }

    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.pair
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| Error::Sign(format!("ECDSA signing with key {} failed", self.key_id())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_pem_matches_the_pem_crate() {
        for len in [0usize, 1, 47, 48, 49, 138] {
            let der: Vec<u8> = (0..len).map(|i| (i * 5 + 1) as u8).collect();
            let text = private_pem(&der);
            assert_eq!(*text, pem_lf(&pem::Pem::new("PRIVATE KEY", der.clone())));
        }
        let (private, _) = PemSigner::generate_pem(SignatureAlgorithm::EcdsaP256Sha256).unwrap();
        assert!(PemSigner::from_pem(&private).is_ok());
    }

    #[test]
    fn sign_and_verify_both_curves() {
        for alg in SignatureAlgorithm::ALL {
            let s = PemSigner::generate(alg).unwrap();
            let v = s.public_key().unwrap();
            assert_eq!(v.algorithm(), alg);
            assert_eq!(v.key_id(), s.key_id());
            let sig = s.sign(b"hello").unwrap();
            assert_eq!(sig.len(), alg.signature_len());
            assert!(v.verify(b"hello", &sig));
            assert!(!v.verify(b"hellO", &sig));
            let mut bad = sig.clone();
            bad[5] ^= 1;
            assert!(!v.verify(b"hello", &bad));
            assert!(!v.verify(b"hello", &sig[..sig.len() - 1]));
            let pem = v.to_pem();
            let again = PublicKey::from_pem(&pem).unwrap();
            assert_eq!(again.key_id(), v.key_id());
        }
    }

    #[test]
    fn signature_verifies_with_a_digest_signer() {
        // What a PKCS#11 signer does (CKM_ECDSA): hash here, sign only the digest there.
        // The verifier (aws-lc, over the whole message) must accept that signature.
        use p384::ecdsa::signature::hazmat::PrehashSigner;
        use p384::pkcs8::EncodePublicKey;
        let alg = SignatureAlgorithm::EcdsaP384Sha384;
        let key = p384::ecdsa::SigningKey::from_slice(&[0x42u8; 48]).unwrap();
        let digest = alg.digest(b"checkpoint text");
        assert_eq!(digest.len(), 48);
        let sig: p384::ecdsa::Signature = key.sign_prehash(&digest).unwrap();
        let spki = key.verifying_key().to_public_key_der().unwrap();
        let public = PublicKey::from_der(spki.as_bytes()).unwrap();
        assert_eq!(public.algorithm(), alg);
        let sig = sig.to_bytes();
        assert_eq!(sig.len(), alg.signature_len());
        assert!(public.verify(b"checkpoint text", &sig));
        assert!(!public.verify(b"checkpoint texT", &sig));
    }

    #[test]
    fn rejects_wrong_keys() {
        assert!(PublicKey::from_pem("garbage").is_err());
        assert!(PemSigner::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
        let s = PemSigner::generate(SignatureAlgorithm::EcdsaP256Sha256).unwrap();
        let pub_pem = s.public_key().unwrap().to_pem();
        // A public key is not a signing key, and vice versa.
        assert!(PemSigner::from_pem(&pub_pem).is_err());
        let (private, _) = PemSigner::generate_pem(SignatureAlgorithm::EcdsaP256Sha256).unwrap();
        assert!(PublicKey::from_pem(&private).is_err());
    }
}
