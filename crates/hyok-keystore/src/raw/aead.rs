//! A raw AES-256 key file as an [`AeadKey`]: AES-256-GCM in this process (aws-lc-rs), for
//! tests and demos of front ends that need a store-side AEAD (the XKS proxy).

use async_trait::async_trait;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, AES_256_GCM};
use zeroize::Zeroizing;

use super::RawAesKey;
use crate::aead::{random_iv, AeadKey, Sealed, SealedRef, IV_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::store::{KeyInfo, KeyStore};

/// A raw AES-256 key that seals and opens with caller AAD.
#[derive(Debug)]
pub struct RawAead(RawAesKey);

impl RawAesKey {
    /// This key as an [`AeadKey`]; only AES-256 keys qualify.
    pub fn aead(self) -> Result<RawAead> {
        if self.gcm_key().algorithm() != &AES_256_GCM {
            return Err(Error::Unsupported {
                key: self.info().uri.to_string(),
                detail: "the key file must hold a 32-byte AES-256 key".into(),
            });
        }
        Ok(RawAead(self))
    }
}

impl RawAead {
    fn key(&self) -> &LessSafeKey {
        self.0.gcm_key()
    }

    fn who(&self) -> String {
        self.0.info().uri.to_string()
    }
}

#[async_trait]
impl AeadKey for RawAead {
    fn info(&self) -> &KeyInfo {
        self.0.info()
    }

    async fn seal(&self, plaintext: &[u8], aad: &[u8], _version: Option<u32>) -> Result<Sealed> {
        let iv = random_iv(&self.who())?;
        let mut buf = plaintext.to_vec();
        let tag = self
            .key()
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut buf)
            .map_err(|_| Error::Backend {
                key: self.who(),
                detail: "AES-GCM encryption failed".into(),
            })?;
        Ok(Sealed {
            iv: iv.to_vec(),
            ciphertext: buf,
            tag: tag.as_ref().to_vec(),
            version: None,
        })
    }

    async fn open(&self, sealed: SealedRef<'_>, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let failed = || Error::UnwrapFailed { key: self.who() };
        let iv: [u8; IV_LEN] = sealed.iv.try_into().map_err(|_| failed())?;
        if sealed.tag.len() != TAG_LEN || sealed.version.is_some() {
            return Err(failed());
        }
        let mut buf = Zeroizing::new(Vec::with_capacity(sealed.ciphertext.len() + TAG_LEN));
        buf.extend_from_slice(sealed.ciphertext);
        buf.extend_from_slice(sealed.tag);
        let n = self
            .key()
            .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut buf)
            .map_err(|_| failed())?
            .len();
        buf.truncate(n);
        Ok(buf)
    }

    async fn probe(&self) -> Result<()> {
        Ok(())
    }
}
