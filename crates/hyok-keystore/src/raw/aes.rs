//! Raw AES keyring (ESDK spec `framework/raw-aes-keyring.md`): AES-GCM with a random IV,
//! the serialized materials context as AAD; provider info = name ‖ tag bits ‖ IV len ‖ IV.

use std::path::Path;

use async_trait::async_trait;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_192_GCM, AES_256_GCM};
use hyok_core::{DataKey, EncryptedDataKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::store::{KeyInfo, KeyStore, WrapRequest};
use crate::uri::KeyUri;

const TAG_BITS: u32 = 128;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A raw AES-128/192/256 wrapping key held in memory (zeroized on drop by aws-lc).
pub struct RawAesKey {
    info: KeyInfo,
    key: LessSafeKey,
}

impl std::fmt::Debug for RawAesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAesKey")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl RawAesKey {
    /// A key from its namespace, name and raw bytes (16, 24 or 32).
    pub fn new(namespace: &str, name: &str, key: &[u8]) -> Result<Self> {
        let alg = match key.len() {
            16 => &AES_128_GCM,
            24 => &AES_192_GCM,
            32 => &AES_256_GCM,
            n => {
                return Err(Error::Config(format!(
                    "raw AES key {namespace}/{name} has {n} bytes; it must have 16, 24 or 32"
                )))
            }
        };
        let key = LessSafeKey::new(
            UnboundKey::new(alg, key).map_err(|_| Error::Config("invalid AES key".into()))?,
        );
        Ok(Self {
            info: KeyInfo {
                backend: "raw-aes",
                uri: format!("raw-aes:{namespace}/{name}").into(),
                provider_id: namespace.into(),
                key_name: name.into(),
            },
            key,
        })
    }

    /// Build from `raw-aes:NAMESPACE/NAME?file=PATH`.
    pub fn from_uri(uri: &KeyUri) -> Result<Self> {
        uri.only_attributes(&["file"])?;
        let (ns, name) = uri.namespace_and_name()?;
        let file = uri.query.get("file").ok_or_else(|| {
            Error::Config(format!(
                "raw-aes:{ns}/{name}: missing ?file=PATH (the raw key bytes)"
            ))
        })?;
        let bytes = read_key_file(Path::new(file))?;
        let mut k = Self::new(&ns, &name, &bytes)?;
        k.info.uri = format!("raw-aes:{}?file={}", uri.path, file).into();
        Ok(k)
    }

    fn aad(req: &WrapRequest<'_>) -> Result<Vec<u8>> {
        Ok(req.context.serialize()?)
    }

    fn owns(&self, edk: &EncryptedDataKey) -> bool {
        let name = self.info.key_name.as_bytes();
        let info = &edk.provider_info;
        *edk.provider_id == *self.info.provider_id
            && info.len() == name.len() + 8 + IV_LEN
            && info.starts_with(name)
            && info[name.len()..name.len() + 4] == TAG_BITS.to_be_bytes()
            && info[name.len() + 4..name.len() + 8] == (IV_LEN as u32).to_be_bytes()
    }
}

/// Read a raw key file (exact bytes), refusing anything but 16/24/32 bytes.
pub fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let bytes = crate::secret_file::read(path, "key file", 32, crate::secret_file::Secrecy::Secret)
        .map_err(|e| match e {
            Error::Config(m) if m.contains("larger than") => Error::Config(format!(
                "key file {} has more than 32 bytes; a raw AES key file holds exactly 16, 24 or 32 bytes",
                path.display()
            )),
            other => other,
        })?;
    if ![16, 24, 32].contains(&bytes.len()) {
        return Err(Error::Config(format!(
            "key file {} has {} bytes; a raw AES key file holds exactly 16, 24 or 32 bytes",
            path.display(),
            bytes.len()
        )));
    }
    Ok(bytes)
}

#[async_trait]
impl KeyStore for RawAesKey {
    fn info(&self) -> &KeyInfo {
        &self.info
    }

    async fn wrap(&self, data_key: &DataKey, req: WrapRequest<'_>) -> Result<EncryptedDataKey> {
        let mut iv = [0u8; IV_LEN];
        aws_lc_rs::rand::fill(&mut iv).map_err(|_| Error::Backend {
            key: self.info.uri.to_string(),
            detail: "random IV".into(),
        })?;
        let aad = Self::aad(&req)?;
        let mut buf = data_key.expose().to_vec();
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(&aad), &mut buf)
            .map_err(|_| Error::Backend {
                key: self.info.uri.to_string(),
                detail: "AES-GCM wrap failed".into(),
            })?;
        buf.extend_from_slice(tag.as_ref());
        let mut info = self.info.key_name.as_bytes().to_vec();
        info.extend_from_slice(&TAG_BITS.to_be_bytes());
        info.extend_from_slice(&(IV_LEN as u32).to_be_bytes());
        info.extend_from_slice(&iv);
        Ok(EncryptedDataKey {
            provider_id: self.info.provider_id.to_string(),
            provider_info: info,
            ciphertext: buf,
        })
    }

    async fn unwrap(
        &self,
        edk: &EncryptedDataKey,
        req: WrapRequest<'_>,
    ) -> Result<Option<DataKey>> {
        if !self.owns(edk) {
            return Ok(None);
        }
        if edk.ciphertext.len() != req.suite.key_len() + TAG_LEN {
            return Err(Error::UnwrapFailed {
                key: self.info.uri.to_string(),
            });
        }
        let name_len = self.info.key_name.len();
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&edk.provider_info[name_len + 8..]);
        let aad = Self::aad(&req)?;
        let mut buf = Zeroizing::new(edk.ciphertext.clone());
        let pt = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(&aad), &mut buf)
            .map_err(|_| Error::UnwrapFailed {
                key: self.info.uri.to_string(),
            })?;
        Ok(Some(DataKey::from_slice(pt)))
    }
}
