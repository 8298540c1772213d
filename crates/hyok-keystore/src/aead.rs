//! AES-256-GCM performed inside the key store with caller-supplied associated data: the
//! capability a front end needs when the store itself must encrypt small payloads under a
//! key that never leaves it (the XKS proxy, `hyok xks`).
//!
//! [`AeadKey`] is separate from [`KeyStore`](crate::KeyStore) because few stores can do it:
//! - `raw-aes:` — a 32-byte key file (tests and demos): aws-lc-rs in this process.
//! - `pkcs11:` — an AES-256 key in the token: C_Encrypt/C_Decrypt with CKM_AES_GCM; an IV
//!   the token writes itself is used.
//! - `vault-transit:` — an `aes256-gcm96` Transit key: `associated_data`; the Transit
//!   ciphertext `vault:vN:base64(nonce ‖ ciphertext ‖ tag)` is split into its parts and the
//!   key version is handed back to the caller to keep.
//!
//! - `kmip://` — an AES-256 key on a KMIP 1.4 server: Encrypt/Decrypt in AES-GCM mode with
//!   the caller's AAD as Authenticated Encryption Additional Data; an IV drawn here.
//!
//! Every other scheme (raw RSA, branch keys) is refused by [`open_aead`] with a line that
//! says why. Each seal draws a fresh random 96-bit IV (in this process or in the
//! store); see `docs/DESIGN.md` for the bound this puts on seals per key.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::store::KeyInfo;
use crate::uri::KeyUri;

/// IV length of every seal (96 bits).
pub const IV_LEN: usize = 12;
/// Tag length (128 bits).
pub const TAG_LEN: usize = 16;

/// The output of one seal: the IV, the ciphertext (as long as the plaintext) and the tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The IV the store used (12 bytes).
    pub iv: Vec<u8>,
    /// The ciphertext.
    pub ciphertext: Vec<u8>,
    /// The 16-byte tag.
    pub tag: Vec<u8>,
    /// The key version that sealed, for stores with versioned keys (Vault Transit).
    pub version: Option<u32>,
}

/// A sealed input to open: borrowed parts of an earlier [`Sealed`].
#[derive(Clone, Copy, Debug)]
pub struct SealedRef<'a> {
    /// The IV (12 bytes; 16 only where the store supports it).
    pub iv: &'a [u8],
    /// The ciphertext.
    pub ciphertext: &'a [u8],
    /// The 16-byte tag.
    pub tag: &'a [u8],
    /// The key version that sealed (required by stores with versioned keys).
    pub version: Option<u32>,
}

/// A key that performs AES-256-GCM inside its store.
///
/// Contract: `seal` never reuses an IV it chose before (fresh random 96-bit IVs);
/// `open` answers [`Error::UnwrapFailed`] when the tag does not verify (wrong AAD, tampered
/// input, wrong key), and other errors when the store failed.
#[async_trait]
pub trait AeadKey: Send + Sync + fmt::Debug {
    /// Public description of the key.
    fn info(&self) -> &KeyInfo;

    /// Whether ciphertexts of this key carry a key version (then [`AeadKey::seal_version`]
    /// names the version the next seal will use, and `open` needs it back).
    fn versioned(&self) -> bool {
        false
    }

    /// The version the next seal uses (`None` for unversioned keys). The caller binds it
    /// into the AAD before sealing.
    async fn seal_version(&self) -> Result<Option<u32>> {
        Ok(None)
    }

    /// Encrypt `plaintext` with `aad` under `version` (from [`AeadKey::seal_version`]).
    async fn seal(&self, plaintext: &[u8], aad: &[u8], version: Option<u32>) -> Result<Sealed>;

    /// Decrypt and verify.
    async fn open(&self, sealed: SealedRef<'_>, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>>;

    /// A cheap reachability check that performs no cryptographic operation with the key
    /// (health reports must not show up as key uses): the key is still there and usable.
    async fn probe(&self) -> Result<()>;
}

/// A shared AEAD key.
pub type SharedAeadKey = Arc<dyn AeadKey>;

/// Open the AEAD key a URI names, or say why that store cannot seal with caller AAD.
pub fn open_aead(uri: &str) -> Result<SharedAeadKey> {
    let parsed = KeyUri::parse(uri)?;
    match parsed.scheme.as_str() {
        "raw-aes" => Ok(Arc::new(crate::raw::RawAesKey::from_uri(&parsed)?.aead()?)),
        #[cfg(feature = "pkcs11")]
        "pkcs11" => {
            let k =
                crate::pkcs11::Pkcs11Key::open(&crate::pkcs11::Pkcs11Uri::from_key_uri(&parsed)?)?;
            Ok(Arc::new(crate::pkcs11::aead::Pkcs11Aead::new(k)?))
        }
        #[cfg(feature = "vault")]
        "vault-transit" => Ok(Arc::new(crate::vault::aead::TransitAead::new(
            crate::vault::VaultTransit::from_uri(&parsed)?,
        ))),
        #[cfg(feature = "kmip")]
        "kmip" => Ok(Arc::new(crate::kmip::KmipAead::new(
            crate::kmip::KmipKey::from_uri(&parsed)?,
        ))),
        other => Err(Error::Config(format!(
            "{uri}: a {other}: key cannot encrypt with AES-256-GCM and caller-supplied \
             associated data inside its store; use pkcs11:, vault-transit:, kmip: or raw-aes:"
        ))),
    }
}

/// Split `ciphertext ‖ tag` as the stores return it.
pub(crate) fn split_tag(mut ct_tag: Vec<u8>, who: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    if ct_tag.len() < TAG_LEN {
        return Err(Error::Backend {
            key: who.to_owned(),
            detail: "the store returned a ciphertext shorter than a GCM tag".into(),
        });
    }
    let tag = ct_tag.split_off(ct_tag.len() - TAG_LEN);
    Ok((ct_tag, tag))
}

/// A fresh random 96-bit IV.
pub(crate) fn random_iv(who: &str) -> Result<[u8; IV_LEN]> {
    let mut iv = [0u8; IV_LEN];
    aws_lc_rs::rand::fill(&mut iv).map_err(|_| Error::Backend {
        key: who.to_owned(),
        detail: "the system random generator failed".into(),
    })?;
    Ok(iv)
}
