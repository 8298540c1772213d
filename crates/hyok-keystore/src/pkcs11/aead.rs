//! An AES-256 key in a PKCS#11 token as an [`AeadKey`]: C_Encrypt/C_Decrypt with
//! CKM_AES_GCM and the caller's AAD; the key never leaves the token. The IV is drawn here
//! (96 random bits) and handed to the token; a token that writes its own IV into the
//! parameter buffer (AWS CloudHSM) is believed, and that IV is returned.

use async_trait::async_trait;
use cryptoki::error::Error as CkError;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType};
use cryptoki::types::Ulong;
use zeroize::Zeroizing;

use super::error::{describe, is_bad_ciphertext};
use super::token::OpError;
use super::Pkcs11Key;
use crate::aead::{random_iv, split_tag, AeadKey, Sealed, SealedRef, TAG_LEN};
use crate::error::{Error, Result};
use crate::store::{KeyInfo, KeyStore};

/// An AES-256 token key that seals and opens with caller AAD.
#[derive(Debug, Clone)]
pub struct Pkcs11Aead(Pkcs11Key);

fn gcm<'a>(iv: &'a mut [u8], aad: &'a [u8]) -> std::result::Result<GcmParams<'a>, CkError> {
    GcmParams::new(iv, aad, Ulong::try_from(128usize)?)
}

impl Pkcs11Aead {
    /// Use `key`, which must be an AES-256 secret key that may encrypt and decrypt.
    pub fn new(key: Pkcs11Key) -> Result<Self> {
        let who = key.info().uri.to_string();
        if !key.is_aes() {
            return Err(Error::Unsupported {
                key: who,
                detail: format!(
                    "{} key: only an AES-256 key can seal with AES-GCM in the token",
                    key.kind()
                ),
            });
        }
        let len = key
            .with_aes_key(&mut |s, h| s.get_attributes(h, &[AttributeType::ValueLen]))
            .map_err(|e| e.into_error(&who))?;
        let bytes = len.iter().find_map(|a| match a {
            Attribute::ValueLen(n) => Some(u64::from(*n)),
            _ => None,
        });
        if bytes.is_some_and(|n| n != 32) {
            return Err(Error::Unsupported {
                key: who,
                detail: format!(
                    "an AES-{} key; only AES-256 keys can be used",
                    bytes.unwrap_or(0) * 8
                ),
            });
        }
        Ok(Self(key))
    }

    fn who(&self) -> String {
        self.0.info().uri.to_string()
    }
}

#[async_trait]
impl AeadKey for Pkcs11Aead {
    fn info(&self) -> &KeyInfo {
        self.0.info()
    }

    async fn seal(&self, plaintext: &[u8], aad: &[u8], _version: Option<u32>) -> Result<Sealed> {
        let key = self.0.clone();
        let who = self.who();
        let pt = Zeroizing::new(plaintext.to_vec());
        let aad = aad.to_vec();
        let iv0 = random_iv(&who)?;
        self.0
            .blocking(move || {
                let (out, iv) = key
                    .with_aes_key(&mut |s, h| {
                        let mut iv = iv0;
                        let out = {
                            let params = gcm(&mut iv, &aad)?;
                            s.encrypt(&Mechanism::AesGcm(params), h, &pt)?
                        };
                        Ok((out, iv))
                    })
                    .map_err(|e| e.into_error(&who))?;
                if out.len() != pt.len() + TAG_LEN {
                    return Err(Error::Backend {
                        key: who,
                        detail: format!(
                            "C_Encrypt (CKM_AES_GCM) returned {} bytes for {} bytes of plaintext",
                            out.len(),
                            pt.len()
                        ),
                    });
                }
                let (ciphertext, tag) = split_tag(out, &who)?;
                Ok(Sealed {
                    iv: iv.to_vec(),
                    ciphertext,
                    tag,
                    version: None,
                })
            })
            .await
    }

    async fn open(&self, sealed: SealedRef<'_>, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let who = self.who();
        if !matches!(sealed.iv.len(), 12 | 16)
            || sealed.tag.len() != TAG_LEN
            || sealed.version.is_some()
        {
            return Err(Error::UnwrapFailed { key: who });
        }
        let key = self.0.clone();
        let iv0 = sealed.iv.to_vec();
        let mut input = sealed.ciphertext.to_vec();
        input.extend_from_slice(sealed.tag);
        let aad = aad.to_vec();
        let want = sealed.ciphertext.len();
        self.0
            .blocking(move || {
                let pt = key.with_aes_key(&mut |s, h| {
                    let mut iv = iv0.clone();
                    let params = gcm(&mut iv, &aad)?;
                    s.decrypt(&Mechanism::AesGcm(params), h, &input)
                        .map(Zeroizing::new)
                });
                match pt {
                    Ok(pt) if pt.len() == want => Ok(pt),
                    Ok(_) => Err(Error::UnwrapFailed { key: who }),
                    Err(OpError::Ck(e)) if is_bad_ciphertext(&e) => {
                        tracing::debug!(key = %who, error = %describe(&e), "AES-GCM open refused");
                        Err(Error::UnwrapFailed { key: who })
                    }
                    Err(e) => Err(e.into_error(&who)),
                }
            })
            .await
    }

    async fn probe(&self) -> Result<()> {
        let key = self.0.clone();
        let who = self.who();
        self.0
            .blocking(move || {
                key.with_aes_key(&mut |s, h| s.get_attributes(h, &[AttributeType::Encrypt]))
                    .map(|_| ())
                    .map_err(|e| e.into_error(&who))
            })
            .await
    }
}
