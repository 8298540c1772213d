//! An `aes256-gcm96` Transit key as an [`AeadKey`]: Transit encrypts with the caller's
//! `associated_data` and a random 96-bit nonce of its own. Its ciphertext
//! `vault:vN:base64(nonce ‖ ciphertext ‖ tag)` is split into IV, ciphertext and tag, and the
//! key version N is handed back ([`Sealed::version`]) for the caller to keep; opening
//! rebuilds the Transit ciphertext from the parts.
//!
//! The version a seal will use is read from the key (`latest_version`, cached for 10 s)
//! before sealing, because the caller binds it into the AAD; the seal then names it
//! (`key_version`), so a rotation between the two calls cannot make them disagree.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::transit::{classify, missing_key_error};
use super::{ciphertext_version, VaultTransit};
use crate::aead::{split_tag, AeadKey, Sealed, SealedRef, IV_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::net::Secret;
use crate::store::KeyInfo;

/// How long the key's latest version is trusted before it is read again.
const VERSION_TTL: Duration = Duration::from_secs(10);

/// A Transit key that seals and opens with caller AAD.
#[derive(Debug)]
pub struct TransitAead {
    key: VaultTransit,
    latest: Mutex<Option<(u32, Instant)>>,
}

#[derive(Serialize)]
struct SealBody<'a> {
    plaintext: &'a str,
    associated_data: String,
    key_version: u32,
}

#[derive(Serialize)]
struct OpenBody<'a> {
    ciphertext: &'a str,
    associated_data: String,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: Option<T>,
}

#[derive(Deserialize)]
struct SealData {
    ciphertext: String,
}

#[derive(Deserialize)]
struct OpenData {
    plaintext: Secret,
}

#[derive(Deserialize)]
struct KeyData {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    derived: bool,
    #[serde(default)]
    convergent_encryption: bool,
    latest_version: u32,
}

impl TransitAead {
    /// Use this Transit key (checked on first use: it must be a non-derived `aes256-gcm96`
    /// key).
    pub fn new(key: VaultTransit) -> Self {
        Self {
            key,
            latest: Mutex::new(None),
        }
    }

    fn who(&self) -> &str {
        &self.key.info.uri
    }

    fn classify(&self, msg: &str, status: StatusCode, ciphertext: Option<&str>) -> Error {
        let k = &self.key;
        classify(self.who(), &k.name, &k.mount, msg, status, ciphertext)
    }

    /// Read the key's settings, check that it fits, and remember its latest version.
    async fn read_key(&self) -> Result<u32> {
        let k = &self.key;
        let path = format!("{}/keys/{}", k.mount, k.name);
        let reply = k
            .client
            .call(self.who(), Method::GET, &path, None, true)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(missing_key_error(self.who(), &k.name, &k.mount, &reply));
        }
        if !reply.status.is_success() {
            return Err(self.classify(&reply.messages(), reply.status, None));
        }
        let data: Envelope<KeyData> = reply.parse(self.who(), "reading the key")?;
        let data = data.data.ok_or_else(|| Error::Backend {
            key: self.who().to_owned(),
            detail: "Vault's answer about the key has no data".into(),
        })?;
        if data.kind != "aes256-gcm96" || data.derived || data.convergent_encryption {
            return Err(Error::Unsupported {
                key: self.who().to_owned(),
                detail: format!(
                    "a {}{} Transit key; only a non-derived, non-convergent aes256-gcm96 key \
                     can be used",
                    data.kind,
                    if data.derived { " derived" } else { "" }
                ),
            });
        }
        let mut slot = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some((data.latest_version, Instant::now()));
        Ok(data.latest_version)
    }

    fn fail(&self, detail: impl Into<String>) -> Error {
        Error::Backend {
            key: self.who().to_owned(),
            detail: detail.into(),
        }
    }
}

#[async_trait]
impl AeadKey for TransitAead {
    fn info(&self) -> &KeyInfo {
        &self.key.info
    }

    fn versioned(&self) -> bool {
        true
    }

    async fn seal_version(&self) -> Result<Option<u32>> {
        let cached = *self.latest.lock().unwrap_or_else(|p| p.into_inner());
        match cached {
            Some((v, at)) if at.elapsed() < VERSION_TTL => Ok(Some(v)),
            _ => self.read_key().await.map(Some),
        }
    }

    async fn seal(&self, plaintext: &[u8], aad: &[u8], version: Option<u32>) -> Result<Sealed> {
        let version = match version {
            Some(v) => v,
            None => self.read_key().await?,
        };
        let plain = Zeroizing::new(B64.encode(plaintext));
        let body = SealBody {
            plaintext: &plain,
            associated_data: B64.encode(aad),
            key_version: version,
        };
        let mut buf = Zeroizing::new(Vec::with_capacity(plain.len() + 2 * aad.len() + 128));
        serde_json::to_writer(&mut *buf, &body)
            .map_err(|e| self.fail(format!("encoding the request: {e}")))?;
        drop(body);
        let k = &self.key;
        let path = format!("{}/encrypt/{}", k.mount, k.name);
        let reply = k
            .client
            .call(self.who(), Method::POST, &path, Some(buf), true)
            .await?;
        if !reply.status.is_success() {
            return Err(self.classify(&reply.messages(), reply.status, None));
        }
        let data: Envelope<SealData> = reply.parse(self.who(), "encrypt")?;
        let ct = data
            .data
            .ok_or_else(|| self.fail("Vault's encrypt answer has no data"))?
            .ciphertext;
        if ciphertext_version(ct.as_bytes()) != Some(version) {
            return Err(self.fail(format!(
                "Vault sealed with another key version than the {version} asked for"
            )));
        }
        let b64 = ct
            .splitn(3, ':')
            .nth(2)
            .ok_or_else(|| self.fail("Vault returned a ciphertext that is not vault:vN:…"))?;
        let mut raw = B64
            .decode(b64)
            .map_err(|_| self.fail("Vault returned a ciphertext that is not base64"))?;
        if raw.len() != IV_LEN + plaintext.len() + TAG_LEN {
            return Err(self.fail(format!(
                "Vault returned {} ciphertext bytes for {} bytes of plaintext",
                raw.len(),
                plaintext.len()
            )));
        }
        let rest = raw.split_off(IV_LEN);
        let (ciphertext, tag) = split_tag(rest, self.who())?;
        Ok(Sealed {
            iv: raw,
            ciphertext,
            tag,
            version: Some(version),
        })
    }

    async fn open(&self, sealed: SealedRef<'_>, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let failed = || Error::UnwrapFailed {
            key: self.who().to_owned(),
        };
        let Some(version) = sealed.version else {
            return Err(failed());
        };
        if sealed.iv.len() != IV_LEN || sealed.tag.len() != TAG_LEN || version == 0 {
            return Err(failed());
        }
        let mut raw = Vec::with_capacity(IV_LEN + sealed.ciphertext.len() + TAG_LEN);
        raw.extend_from_slice(sealed.iv);
        raw.extend_from_slice(sealed.ciphertext);
        raw.extend_from_slice(sealed.tag);
        let ct = format!("vault:v{version}:{}", B64.encode(&raw));
        let body = serde_json::to_vec(&OpenBody {
            ciphertext: &ct,
            associated_data: B64.encode(aad),
        })
        .map_err(|e| self.fail(format!("encoding the request: {e}")))?;
        let k = &self.key;
        let path = format!("{}/decrypt/{}", k.mount, k.name);
        let reply = k
            .client
            .call(
                self.who(),
                Method::POST,
                &path,
                Some(Zeroizing::new(body)),
                true,
            )
            .await?;
        if !reply.status.is_success() {
            return Err(self.classify(&reply.messages(), reply.status, Some(&ct)));
        }
        let data: Envelope<OpenData> = reply.parse(self.who(), "decrypt")?;
        let p = data.data.ok_or_else(failed)?.plaintext;
        let pt = Zeroizing::new(B64.decode(p.expose()).map_err(|_| failed())?);
        if pt.len() != sealed.ciphertext.len() {
            return Err(failed());
        }
        Ok(pt)
    }

    async fn probe(&self) -> Result<()> {
        self.read_key().await.map(|_| ())
    }
}
