//! A wrapping key inside a PKCS#11 token: an AES key (AES-GCM inside the token, the
//! encryption context as AAD) or an RSA key pair (OAEP; wrap with the public key locally,
//! unwrap inside the token).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use aws_lc_rs::rsa::{
    OaepAlgorithm, OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1,
    OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512,
};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::types::Ulong;
use hyok_core::{DataKey, EncryptedDataKey};
use zeroize::Zeroizing;

use super::blocking;
use super::error::{describe, is_bad_ciphertext};
use super::objects::{self, Obj};
use super::token::{CachedHandle, OpError, Token};
use super::uri::{OaepHash, Pkcs11Uri};
use crate::error::{Error, Result};
use crate::store::{KeyInfo, KeyStore, WrapRequest};

const TAG_BITS: u32 = 128;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[derive(Debug)]
enum Material {
    /// AES secret key: AES-GCM in the token.
    Aes,
    /// RSA key pair: public key held here for wrapping; private key in the token.
    Rsa {
        public: PublicEncryptingKey,
        /// DER of the modulus and the exponent (to compare tokens' copies of the key).
        public_der: Vec<u8>,
        bits: usize,
        has_private: bool,
    },
}

struct Inner {
    token: Arc<Token>,
    label: String,
    id: Option<Vec<u8>>,
    info: KeyInfo,
    material: Material,
    oaep: OaepHash,
    /// The secret (AES) or private (RSA) key's handle.
    handle: CachedHandle,
    /// The token decrypted an OAEP message made with our public key and hash.
    oaep_checked: AtomicBool,
    /// C_Encrypt / C_Decrypt calls made for this key.
    calls: AtomicU64,
}

/// A wrapping key in a PKCS#11 token. Cheap to clone; every clone shares the token's
/// session pool.
#[derive(Clone)]
pub struct Pkcs11Key {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Key")
            .field("info", &self.inner.info)
            .field("token", &self.inner.token)
            .field(
                "kind",
                &match &self.inner.material {
                    Material::Aes => "AES".to_owned(),
                    Material::Rsa { bits, .. } => format!("RSA-{bits}"),
                },
            )
            .finish_non_exhaustive()
    }
}

fn oaep_alg(h: OaepHash) -> &'static OaepAlgorithm {
    match h {
        OaepHash::Sha1 => &OAEP_SHA1_MGF1SHA1,
        OaepHash::Sha256 => &OAEP_SHA256_MGF1SHA256,
        OaepHash::Sha384 => &OAEP_SHA384_MGF1SHA384,
        OaepHash::Sha512 => &OAEP_SHA512_MGF1SHA512,
    }
}

fn oaep_params(h: OaepHash) -> PkcsOaepParams<'static> {
    let (hash, mgf) = match h {
        OaepHash::Sha1 => (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1),
        OaepHash::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
        OaepHash::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
        OaepHash::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
    };
    PkcsOaepParams::new(hash, mgf, PkcsOaepSource::empty())
}

/// DER INTEGER of a big-endian unsigned number.
fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let mut body = Vec::with_capacity(bytes.len() - start + 1);
    if start == bytes.len() {
        body.push(0);
    } else {
        if bytes[start] & 0x80 != 0 {
            body.push(0);
        }
        body.extend_from_slice(&bytes[start..]);
    }
    crate::raw::rsa::der_tlv(0x02, &body)
}

fn rsa_public(modulus: &[u8], exponent: &[u8]) -> Option<PublicEncryptingKey> {
    let mut seq = der_uint(modulus);
    seq.extend(der_uint(exponent));
    let pkcs1 = crate::raw::rsa::der_tlv(0x30, &seq);
    PublicEncryptingKey::from_der(&crate::raw::rsa::pkcs1_to_spki(&pkcs1)).ok()
}

fn gcm_params<'a>(iv: &'a mut [u8], aad: &'a [u8]) -> std::result::Result<GcmParams<'a>, CkError> {
    GcmParams::new(iv, aad, Ulong::try_from(TAG_BITS as usize)?)
}

impl Pkcs11Key {
    /// Open the key a `pkcs11:` URI names: load the module (once per process), find the
    /// token, log in (once per token), find the key and check its type. Blocks.
    pub fn open(uri: &Pkcs11Uri) -> Result<Self> {
        let objects::Found {
            who,
            label,
            token,
            objs,
        } = objects::find_uri(uri)?;
        let objs: Vec<Obj> = objs
            .into_iter()
            .filter(|o| match uri.object_type.as_deref() {
                Some("secret-key") => o.is_secret(),
                Some("private") => o.is_private(),
                Some("public") => o.is_public(),
                _ => true,
            })
            .collect();
        let wrong_type = |what: &str| Error::Unsupported {
            key: who.clone(),
            detail: format!(
                "{what}; hyok wraps data keys with an AES key or an RSA key pair in the token"
            ),
        };
        if objs.is_empty() {
            return Err(Error::NotFound {
                key: who.clone(),
                detail: format!(
                    "no key labelled {label:?}{} on token {:?}",
                    uri.id_hex()
                        .map(|h| format!(" with id {h}"))
                        .unwrap_or_default(),
                    token.label
                ),
            });
        }
        let aes: Vec<&Obj> = objs
            .iter()
            .filter(|o| o.is_secret() && o.type_is(KeyType::AES))
            .collect();
        let rsa_priv: Vec<&Obj> = objs
            .iter()
            .filter(|o| o.is_private() && o.type_is(KeyType::RSA))
            .collect();
        let rsa_pub: Vec<&Obj> = objs
            .iter()
            .filter(|o| o.is_public() && o.type_is(KeyType::RSA))
            .collect();
        let ambiguous = |n: usize| Error::Unsupported {
            key: who.clone(),
            detail: format!("{n} keys are labelled {label:?}; add ;id=… to the URI to pick one"),
        };
        let (material, handle) = if !aes.is_empty() {
            if aes.len() > 1 || !rsa_priv.is_empty() {
                return Err(ambiguous(aes.len() + rsa_priv.len()));
            }
            (Material::Aes, Some(aes[0].handle))
        } else if !rsa_priv.is_empty() || !rsa_pub.is_empty() {
            if rsa_priv.len() > 1 || rsa_pub.len() > 1 {
                return Err(ambiguous(rsa_priv.len().max(rsa_pub.len())));
            }
            let source = rsa_pub.first().or(rsa_priv.first()).map(|o| o.handle);
            let attrs = match source {
                Some(h) => token
                    .run(&mut |s| {
                        s.get_attributes(
                            h,
                            &[AttributeType::Modulus, AttributeType::PublicExponent],
                        )
                    })
                    .map_err(|e| e.into_error(&who))?,
                None => Vec::new(),
            };
            let mut modulus = None;
            let mut exponent = None;
            for a in attrs {
                match a {
                    Attribute::Modulus(m) => modulus = Some(m),
                    Attribute::PublicExponent(e) => exponent = Some(e),
                    _ => {}
                }
            }
            let (Some(m), Some(e)) = (modulus, exponent) else {
                return Err(Error::Unsupported {
                    key: who.clone(),
                    detail: "the token does not reveal the RSA public key (CKA_MODULUS)".into(),
                });
            };
            let public = rsa_public(&m, &e).ok_or_else(|| Error::Unsupported {
                key: who.clone(),
                detail: "the token's RSA public key is not usable (hyok needs 2048 to 8192 bits)"
                    .into(),
            })?;
            let mut public_der = der_uint(&m);
            public_der.extend(der_uint(&e));
            (
                Material::Rsa {
                    public,
                    public_der,
                    bits: objects::modulus_bits(&m),
                    has_private: !rsa_priv.is_empty(),
                },
                rsa_priv.first().map(|o| o.handle),
            )
        } else {
            let o = &objs[0];
            let kind = token
                .run(&mut |s| objects::kind(s, o))
                .map_err(|e| e.into_error(&who))?;
            return Err(if o.type_is(KeyType::EC) {
                wrong_type(&format!(
                    "{label:?} is an {kind} key (for signatures, e.g. audit checkpoints)"
                ))
            } else {
                wrong_type(&format!("{label:?} is a {kind} key"))
            });
        };
        let generation = token.generation();
        let info = KeyInfo {
            backend: "pkcs11",
            uri: who.as_str().into(),
            provider_id: uri.namespace.as_str().into(),
            key_name: label.as_str().into(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                token,
                label,
                id: uri.id.clone(),
                info,
                material,
                oaep: uri.oaep_hash,
                handle: CachedHandle::new(handle, generation),
                oaep_checked: AtomicBool::new(false),
                calls: AtomicU64::new(0),
            }),
        })
    }

    /// Open from a URI string.
    pub fn from_uri_str(uri: &str) -> Result<Self> {
        Self::open(&Pkcs11Uri::parse(uri)?)
    }

    /// Number of cryptographic calls (C_Encrypt, C_Decrypt) this key made in the token.
    pub fn hsm_calls(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    /// Sessions opened on this key's token so far (by every key of the process).
    pub fn sessions_opened(&self) -> u64 {
        self.inner
            .token
            .counters
            .sessions_opened
            .load(Ordering::Relaxed)
    }

    /// Times the token's session pool was found closed or invalid and renewed.
    pub fn sessions_lost(&self) -> u64 {
        self.inner
            .token
            .counters
            .sessions_lost
            .load(Ordering::Relaxed)
    }

    /// The PKCS#11 slot id of the key's token.
    pub fn slot_id(&self) -> u64 {
        self.inner.token.slot.id()
    }

    /// The (canonical) path of the module the key's token belongs to.
    pub fn module_path(&self) -> PathBuf {
        self.inner.token.module.path.clone()
    }

    /// `AES-…` or `RSA-…`.
    pub fn kind(&self) -> String {
        match &self.inner.material {
            Material::Aes => "AES".into(),
            Material::Rsa { bits, .. } => format!("RSA-{bits}"),
        }
    }
}

/// AAD of the same-key check of several tokens ([`Pkcs11Key::check_wrap`]).
const CHECK_AAD: &[u8] = b"hyok pkcs11 same-key check";

impl Pkcs11Key {
    /// Same-key check of an AES key (see [`super::slots`]): wrap `probe` in the token like a
    /// data key (random IV, AES-GCM), under a fixed AAD no message uses. Blocks.
    pub(super) fn check_wrap(&self, probe: &[u8]) -> Result<EncryptedDataKey> {
        self.inner.aes_wrap(probe, CHECK_AAD)
    }

    /// Undo [`Self::check_wrap`] (made by another token) in this token: only the same key
    /// passes the GCM tag. Blocks.
    pub(super) fn check_unwrap(&self, edk: &EncryptedDataKey, len: usize) -> Result<DataKey> {
        self.inner.aes_unwrap(edk, CHECK_AAD, len)
    }

    /// The RSA public key (DER of modulus and exponent); `None` for AES keys.
    pub(super) fn rsa_public_der(&self) -> Option<&[u8]> {
        match &self.inner.material {
            Material::Rsa { public_der, .. } => Some(public_der),
            Material::Aes => None,
        }
    }

    /// Ask the token for the key again (C_FindObjects on a pooled session): a round trip
    /// that fails when the token is gone. Blocks.
    pub(super) fn probe(&self) -> Result<()> {
        let inner = &self.inner;
        match inner.token.run(&mut |s| inner.lookup(s)) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Error::NotFound {
                key: inner.who().to_owned(),
                detail: format!("no key labelled {:?} on the token any more", inner.label),
            }),
            Err(e) => Err(e.into_error(inner.who())),
        }
    }

    /// Whether this is an AES key (usable by [`super::aead`]).
    pub(super) fn is_aes(&self) -> bool {
        matches!(self.inner.material, Material::Aes)
    }

    /// Run `f` with the AES key's handle on a pooled session, counting one token call
    /// (for [`super::aead`]).
    pub(super) fn with_aes_key<T>(
        &self,
        f: &mut dyn FnMut(&Session, ObjectHandle) -> std::result::Result<T, CkError>,
    ) -> std::result::Result<T, OpError> {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.with_key(f)
    }

    /// Run `f` on the blocking pool in one of the token's turns ([`Token::blocking`]).
    pub(super) async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.inner.token.blocking(f).await
    }
}

impl Inner {
    fn who(&self) -> &str {
        &self.info.uri
    }

    /// Find the secret (AES) or private (RSA) key again.
    fn lookup(&self, s: &Session) -> std::result::Result<Option<ObjectHandle>, CkError> {
        let objs = objects::find(s, Some(&self.label), self.id.as_deref())?;
        Ok(objs
            .into_iter()
            .find(|o| match self.material {
                Material::Aes => o.is_secret() && o.type_is(KeyType::AES),
                Material::Rsa { .. } => o.is_private() && o.type_is(KeyType::RSA),
            })
            .map(|o| o.handle))
    }

    /// Run `f` with the key's handle on a pooled session (handles that went stale are
    /// looked up again).
    fn with_key<T>(
        &self,
        f: &mut dyn FnMut(&Session, ObjectHandle) -> std::result::Result<T, CkError>,
    ) -> std::result::Result<T, OpError> {
        self.handle.run(&self.token, &|s| self.lookup(s), f)
    }

    fn aes_wrap(&self, data_key: &[u8], aad: &[u8]) -> Result<EncryptedDataKey> {
        let mut iv0 = [0u8; IV_LEN];
        aws_lc_rs::rand::fill(&mut iv0).map_err(|_| Error::Backend {
            key: self.who().to_owned(),
            detail: "random IV".into(),
        })?;
        let (ct, iv) = self
            .with_key(&mut |s, h| {
                self.calls.fetch_add(1, Ordering::Relaxed);
                // A token may write its own IV into the buffer (AWS CloudHSM does): use
                // whatever the buffer holds afterwards.
                let mut iv = iv0;
                let ct = {
                    let params = gcm_params(&mut iv, aad)?;
                    s.encrypt(&Mechanism::AesGcm(params), h, data_key)?
                };
                Ok((ct, iv))
            })
            .map_err(|e| e.into_error(self.who()))?;
        if ct.len() != data_key.len() + TAG_LEN {
            return Err(Error::Backend {
                key: self.who().to_owned(),
                detail: format!(
                    "C_Encrypt (CKM_AES_GCM) returned {} bytes for a {}-byte key",
                    ct.len(),
                    data_key.len()
                ),
            });
        }
        let mut info = self.label.as_bytes().to_vec();
        info.extend_from_slice(&TAG_BITS.to_be_bytes());
        info.extend_from_slice(&(IV_LEN as u32).to_be_bytes());
        info.extend_from_slice(&iv);
        Ok(EncryptedDataKey {
            provider_id: self.info.provider_id.to_string(),
            provider_info: info,
            ciphertext: ct,
        })
    }

    fn aes_owns(&self, edk: &EncryptedDataKey) -> bool {
        let name = self.label.as_bytes();
        let info = &edk.provider_info;
        *edk.provider_id == *self.info.provider_id
            && info.len() == name.len() + 8 + IV_LEN
            && info.starts_with(name)
            && info[name.len()..name.len() + 4] == TAG_BITS.to_be_bytes()
            && info[name.len() + 4..name.len() + 8] == (IV_LEN as u32).to_be_bytes()
    }

    fn aes_unwrap(&self, edk: &EncryptedDataKey, aad: &[u8], key_len: usize) -> Result<DataKey> {
        let failed = || Error::UnwrapFailed {
            key: self.who().to_owned(),
        };
        if edk.ciphertext.len() != key_len + TAG_LEN {
            return Err(failed());
        }
        let mut iv0 = [0u8; IV_LEN];
        iv0.copy_from_slice(&edk.provider_info[self.label.len() + 8..]);
        let pt = self.with_key(&mut |s, h| {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let mut iv = iv0;
            let params = gcm_params(&mut iv, aad)?;
            s.decrypt(&Mechanism::AesGcm(params), h, &edk.ciphertext)
                .map(Zeroizing::new)
        });
        match pt {
            Ok(pt) if pt.len() == key_len => Ok(DataKey::from_slice(&pt)),
            Ok(_) => Err(failed()),
            Err(OpError::Ck(e)) if is_bad_ciphertext(&e) => {
                tracing::debug!(key = %self.who(), error = %describe(&e), "AES-GCM unwrap refused");
                Err(failed())
            }
            Err(e) => Err(e.into_error(self.who())),
        }
    }

    fn rsa_decrypt(&self, ct: &[u8]) -> std::result::Result<Zeroizing<Vec<u8>>, OpError> {
        let params = oaep_params(self.oaep);
        self.with_key(&mut |s, h| {
            self.calls.fetch_add(1, Ordering::Relaxed);
            s.decrypt(&Mechanism::RsaPkcsOaep(params), h, ct)
                .map(Zeroizing::new)
        })
    }

    fn oaep_refused(&self, e: &CkError) -> Error {
        Error::Unsupported {
            key: self.who().to_owned(),
            detail: format!(
                "{}: the token refused RSA-OAEP with {}; set oaep-hash= to a hash it supports \
                 (SoftHSM 2.6 supports only oaep-hash=sha1)",
                describe(e),
                self.oaep.as_str().to_uppercase()
            ),
        }
    }

    fn rsa_wrap(&self, data_key: &[u8]) -> Result<EncryptedDataKey> {
        let Material::Rsa {
            public,
            has_private,
            ..
        } = &self.material
        else {
            return Err(Error::Backend {
                key: self.who().to_owned(),
                detail: "not an RSA key".into(),
            });
        };
        let fail = |d: &str| Error::Backend {
            key: self.who().to_owned(),
            detail: d.into(),
        };
        let k = OaepPublicEncryptingKey::new(public.clone())
            .map_err(|_| fail("unusable RSA public key"))?;
        let encrypt = |pt: &[u8]| -> Result<Vec<u8>> {
            let mut out = vec![0u8; k.ciphertext_size()];
            let n = k
                .encrypt(oaep_alg(self.oaep), pt, &mut out, None)
                .map_err(|_| fail("RSA-OAEP encryption failed"))?
                .len();
            out.truncate(n);
            Ok(out)
        };
        // Before the first wrap, make sure the token can undo it: a message wrapped with a
        // hash the token cannot decrypt would be lost.
        if *has_private && !self.oaep_checked.load(Ordering::Acquire) {
            let mut probe = Zeroizing::new([0u8; 32]);
            aws_lc_rs::rand::fill(&mut probe[..]).map_err(|_| fail("random"))?;
            let ct = encrypt(&probe[..])?;
            match self.rsa_decrypt(&ct) {
                Ok(pt) if pt[..] == probe[..] => self.oaep_checked.store(true, Ordering::Release),
                Ok(_) => {
                    return Err(fail(
                        "the token's RSA private key does not match its public key",
                    ))
                }
                Err(OpError::Ck(e))
                    if matches!(
                        e,
                        CkError::Pkcs11(
                            RvError::ArgumentsBad
                                | RvError::MechanismParamInvalid
                                | RvError::MechanismInvalid,
                            _
                        )
                    ) =>
                {
                    return Err(self.oaep_refused(&e))
                }
                Err(e) => return Err(e.into_error(self.who())),
            }
        }
        Ok(EncryptedDataKey {
            provider_id: self.info.provider_id.to_string(),
            provider_info: self.label.as_bytes().to_vec(),
            ciphertext: encrypt(data_key)?,
        })
    }

    fn rsa_unwrap(&self, edk: &EncryptedDataKey, key_len: usize) -> Result<DataKey> {
        let Material::Rsa { has_private, .. } = &self.material else {
            return Err(Error::UnwrapFailed {
                key: self.who().to_owned(),
            });
        };
        if !has_private {
            return Err(Error::Unsupported {
                key: self.who().to_owned(),
                detail: "the token holds only the public half of this RSA key".into(),
            });
        }
        match self.rsa_decrypt(&edk.ciphertext) {
            Ok(pt) if pt.len() == key_len => Ok(DataKey::from_slice(&pt)),
            Ok(_) => Err(Error::UnwrapFailed {
                key: self.who().to_owned(),
            }),
            Err(OpError::Ck(e))
                if matches!(
                    e,
                    CkError::Pkcs11(RvError::ArgumentsBad | RvError::MechanismParamInvalid, _)
                ) =>
            {
                Err(self.oaep_refused(&e))
            }
            Err(OpError::Ck(e)) if is_bad_ciphertext(&e) => Err(Error::UnwrapFailed {
                key: self.who().to_owned(),
            }),
            Err(e) => Err(e.into_error(self.who())),
        }
    }
}

#[async_trait]
impl KeyStore for Pkcs11Key {
    fn info(&self) -> &KeyInfo {
        &self.inner.info
    }

    async fn wrap(&self, data_key: &DataKey, req: WrapRequest<'_>) -> Result<EncryptedDataKey> {
        let inner = self.inner.clone();
        let dk = Zeroizing::new(data_key.expose().to_vec());
        match &self.inner.material {
            Material::Aes => {
                let aad = req.context.serialize()?;
                self.blocking(move || inner.aes_wrap(&dk, &aad)).await
            }
            Material::Rsa { .. } => blocking(move || inner.rsa_wrap(&dk)).await,
        }
    }

    async fn unwrap(
        &self,
        edk: &EncryptedDataKey,
        req: WrapRequest<'_>,
    ) -> Result<Option<DataKey>> {
        let inner = self.inner.clone();
        let key_len = req.suite.key_len();
        match &self.inner.material {
            Material::Aes => {
                if !inner.aes_owns(edk) {
                    return Ok(None);
                }
                let aad = req.context.serialize()?;
                let edk = edk.clone();
                self.blocking(move || inner.aes_unwrap(&edk, &aad, key_len).map(Some))
                    .await
            }
            Material::Rsa { .. } => {
                if *edk.provider_id != *inner.info.provider_id
                    || edk.provider_info != inner.label.as_bytes()
                {
                    return Ok(None);
                }
                let edk = edk.clone();
                self.blocking(move || inner.rsa_unwrap(&edk, key_len).map(Some))
                    .await
            }
        }
    }
}
