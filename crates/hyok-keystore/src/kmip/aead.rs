//! A KMIP-managed AES-256 key as an [`AeadKey`]: the server's Encrypt and Decrypt operations
//! in AES-GCM mode with a 16-byte tag and the caller's AAD as Authenticated Encryption
//! Additional Data (KMIP 1.4), so the key never leaves the key manager. The 96-bit IV is
//! drawn here for each seal and sent with the request; a server that answers with another IV
//! is refused.

use async_trait::async_trait;

use super::key::get_attributes;
use super::*;
use crate::aead::{random_iv, AeadKey, Sealed, SealedRef, IV_LEN};

/// A KMIP AES-256 key that seals and opens with caller AAD inside the server.
#[derive(Debug)]
pub struct KmipAead(KmipKey);

impl KmipAead {
    /// Use `key` (checked on first use: an AES-256 key; Active to seal).
    pub fn new(key: KmipKey) -> Self {
        Self(key)
    }

    fn who(&self) -> &str {
        &self.0.info.uri
    }
}

#[async_trait]
impl AeadKey for KmipAead {
    fn info(&self) -> &KeyInfo {
        &self.0.info
    }

    async fn seal(&self, plaintext: &[u8], aad: &[u8], _version: Option<u32>) -> Result<Sealed> {
        let r = self.0.resolve_active().await?;
        let iv = random_iv(self.who())?;
        let payload = KmipKey::encrypt_payload(&r.uid, plaintext, &iv, aad);
        // Safe to resend: a repeat carries the same IV, plaintext and AAD, so the server
        // computes the same output (no second message under this IV).
        let res = self
            .0
            .client
            .call_one(self.who(), Operation::Encrypt, payload, true)
            .await?;
        let (ct, tag) = self.0.gcm_output(&res, &iv)?;
        if ct.len() != plaintext.len() {
            return Err(Error::Backend {
                key: self.who().to_owned(),
                detail: format!(
                    "the KMIP server returned {} ciphertext bytes for {} bytes of plaintext",
                    ct.len(),
                    plaintext.len()
                ),
            });
        }
        Ok(Sealed {
            iv: iv.to_vec(),
            ciphertext: ct.to_vec(),
            tag: tag.to_vec(),
            version: None,
        })
    }

    async fn open(&self, sealed: SealedRef<'_>, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let failed = || Error::UnwrapFailed {
            key: self.who().to_owned(),
        };
        if sealed.iv.len() != IV_LEN || sealed.tag.len() != TAG_LEN || sealed.ciphertext.is_empty()
        {
            return Err(failed());
        }
        let r = self.0.resolve().await?;
        let payload =
            KmipKey::decrypt_payload(&r.uid, sealed.ciphertext, sealed.iv, aad, sealed.tag);
        let res = self
            .0
            .client
            .call_one(self.who(), Operation::Decrypt, payload, true)
            .await?;
        let pt = Zeroizing::new(self.0.decrypted(&res)?.to_vec());
        if pt.len() != sealed.ciphertext.len() {
            return Err(failed());
        }
        Ok(pt)
    }

    /// GetAttributes (no cryptographic operation): the object still exists and is an AES-256
    /// key in the Active or Deactivated state.
    async fn probe(&self) -> Result<()> {
        let r = self.0.resolve().await?;
        let attrs = get_attributes(&self.0.client, self.who(), &r.uid)
            .await?
            .ok_or_else(|| Error::NotFound {
                key: self.who().to_owned(),
                detail: format!(
                    "the KMIP server at {} no longer has the object {}",
                    self.0.client.addr, r.uid
                ),
            })?;
        let unsupported = |detail: String| Error::Unsupported {
            key: self.who().to_owned(),
            detail,
        };
        if attrs.algorithm.is_some_and(|a| a != value::ALGORITHM_AES) {
            return Err(unsupported(format!(
                "KMIP object {} is not an AES key",
                r.uid
            )));
        }
        if attrs.length.is_some_and(|l| l != 256) {
            return Err(unsupported(format!(
                "KMIP object {} is an AES-{} key; only AES-256 keys can be used",
                r.uid,
                attrs.length.unwrap_or(0)
            )));
        }
        match attrs.state {
            // Active (2) seals and opens; Deactivated (3) still opens.
            Some(2 | 3) | None => Ok(()),
            Some(s) => Err(unsupported(format!(
                "KMIP key {} is {}; only Active or Deactivated keys can be used",
                r.uid,
                proto::state_name(s)
            ))),
        }
    }
}
