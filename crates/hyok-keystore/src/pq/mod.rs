//! `pq-escrow:NAMESPACE/NAME?public=PATH&private=PATH`: a post-quantum escrow key. Each
//! data key is wrapped under a fresh X-Wing (ML-KEM-768 + X25519, [`xwing`]) shared
//! secret, so a recorded message stays closed to a future quantum computer as long as
//! ML-KEM-768 holds, and to today's attacks as long as either half holds.
//!
//! Wrapping: `(ss, ct) = X-Wing.Encapsulate(pk)`; `K = HKDF-SHA256(salt = ∅, ikm = ss,
//! info = "hyok pq-escrow v1 AES-256-GCM")`; the data key is sealed with AES-256-GCM under
//! `K`, a random 96-bit nonce and the serialized encryption context as AAD. `K` is new for
//! every wrap (a fresh encapsulation), so no (key, nonce) pair repeats (docs/DESIGN.md).
//!
//! EDK: provider id `NAMESPACE`, provider info `NAME`, ciphertext
//! `01 (version) ‖ 01 (X-Wing) ‖ ct (1120) ‖ nonce (12) ‖ sealed data key ‖ tag (16)`
//! (FORMAT.md). The official ESDKs do not know this key: give such messages a raw AES or
//! RSA key too when they must be readable there.
//!
//! Key files (`hyok key new mlkem768-x25519 -o NAME`): `NAME.key` (mode 0600, PEM
//! `HYOK XWING PRIVATE KEY`: expanded secret `sk_M ‖ sk_X` then the public key) and
//! `NAME.pub` (PEM `HYOK XWING PUBLIC KEY`: the 1216-byte X-Wing public key).

pub mod xwing;

use std::path::Path;

use async_trait::async_trait;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf;
use hyok_core::{DataKey, EncryptedDataKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::registry::{shared, Scheme};
use crate::secret_file::{self, Secrecy};
use crate::store::{KeyInfo, KeyStore, WrapRequest};
use crate::uri::KeyUri;

use xwing::{PrivateKey, PublicKey, CIPHERTEXT_LEN, PUBLIC_LEN, SECRET_LEN};

/// `pq-escrow:` in the registry.
pub(crate) const SCHEME: Scheme = Scheme {
    name: "pq-escrow",
    syntax: "pq-escrow:NAMESPACE/NAME?public=PATH&private=PATH",
    note: "local X-Wing (ML-KEM-768 + X25519) key files from `hyok key new mlkem768-x25519`; see docs/CUSTODY.md",
    open: |u| Ok(shared(PqEscrowKey::from_uri(u)?)),
    admin: None,
};

/// PEM label of a private key file.
pub const PRIVATE_PEM_TAG: &str = "HYOK XWING PRIVATE KEY";
/// PEM label of a public key file.
pub const PUBLIC_PEM_TAG: &str = "HYOK XWING PUBLIC KEY";
const VERSION: u8 = 1;
const ALG_XWING: u8 = 1;
const TAG_LEN: usize = 16;
const HKDF_INFO: &[u8] = b"hyok pq-escrow v1 AES-256-GCM";
/// Largest key file read (a private key file is about 5 KiB).
const MAX_FILE: u64 = 64 * 1024;

/// A post-quantum escrow key: public part to wrap, private part to unwrap.
pub struct PqEscrowKey {
    info: KeyInfo,
    public: PublicKey,
    private: Option<PrivateKey>,
}

impl std::fmt::Debug for PqEscrowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PqEscrowKey")
            .field("info", &self.info)
            .field("private", &self.private.is_some())
            .finish_non_exhaustive()
    }
}

/// A fresh key pair as (private key file text, zeroized on drop; public key file text).
pub fn generate_pem() -> Result<(Zeroizing<String>, String)> {
    crate::fips::refuse_pq_escrow()?;
    let k = PrivateKey::generate()?;
    Ok((private_pem(&k)?, public_pem(k.public())))
}

fn private_pem(k: &PrivateKey) -> Result<Zeroizing<String>> {
    let mut body = k.secret_bytes()?;
    body.extend_from_slice(k.public().as_bytes());
    Ok(crate::raw::rsa::private_pem(PRIVATE_PEM_TAG, &body))
}

fn public_pem(k: &PublicKey) -> String {
    pem::encode(&pem::Pem::new(PUBLIC_PEM_TAG, k.as_bytes().to_vec()))
}

fn read_pem(path: &str, tag: &str, secrecy: Secrecy) -> Result<Zeroizing<Vec<u8>>> {
    let what = match secrecy {
        Secrecy::Secret => "private key file",
        Secrecy::Public => "public key file",
    };
    let bytes = secret_file::read(Path::new(path), what, MAX_FILE, secrecy)?;
    let p = pem::parse(&bytes[..])
        .map_err(|e| Error::Config(format!("{what} {path}: not a PEM file: {e}")))?;
    if p.tag() != tag {
        return Err(Error::Config(format!(
            "{what} {path}: PEM block is {:?}, expected {tag:?} (hyok key new mlkem768-x25519)",
            p.tag()
        )));
    }
    Ok(Zeroizing::new(p.into_contents()))
}

impl PqEscrowKey {
    /// A key from parsed parts (a private key carries its public key).
    pub fn new(
        namespace: &str,
        name: &str,
        public: Option<PublicKey>,
        private: Option<PrivateKey>,
    ) -> Result<Self> {
        let public = match (public, &private) {
            (Some(p), Some(k)) if p.as_bytes() != k.public().as_bytes() => {
                return Err(Error::Config(format!(
                    "pq-escrow:{namespace}/{name}: the public and private key files are not one key pair"
                )))
            }
            (Some(p), _) => p,
            (None, Some(k)) => PublicKey::from_bytes(k.public().as_bytes())?,
            (None, None) => {
                return Err(Error::Config(format!(
                    "pq-escrow:{namespace}/{name}: give public=PATH (to encrypt), private=PATH (to decrypt), or both"
                )))
            }
        };
        Ok(Self {
            info: KeyInfo {
                backend: "pq-escrow",
                uri: format!("pq-escrow:{namespace}/{name}").into(),
                provider_id: namespace.into(),
                key_name: name.into(),
            },
            public,
            private,
        })
    }

    /// Build from `pq-escrow:NS/NAME?public=PATH&private=PATH`.
    pub fn from_uri(uri: &KeyUri) -> Result<Self> {
        crate::fips::refuse_pq_escrow()?;
        uri.only_attributes(&["public", "private"])?;
        let (ns, name) = uri.namespace_and_name()?;
        let public = match uri.query.get("public") {
            Some(p) => Some(PublicKey::from_bytes(&read_pem(
                p,
                PUBLIC_PEM_TAG,
                Secrecy::Public,
            )?)?),
            None => None,
        };
        let private = match uri.query.get("private") {
            Some(p) => {
                let body = read_pem(p, PRIVATE_PEM_TAG, Secrecy::Secret)?;
                if body.len() != SECRET_LEN + PUBLIC_LEN {
                    return Err(Error::Config(format!(
                        "private key file {p}: {} bytes of key, expected {}",
                        body.len(),
                        SECRET_LEN + PUBLIC_LEN
                    )));
                }
                let (secret, public) = body.split_at(SECRET_LEN);
                Some(
                    PrivateKey::from_parts(secret, public)
                        .map_err(|e| Error::Config(format!("private key file {p}: {e}")))?,
                )
            }
            None => None,
        };
        let mut k = Self::new(&ns, &name, public, private)?;
        let mut shown = format!("pq-escrow:{}", uri.path);
        let mut sep = '?';
        for a in ["public", "private"] {
            if let Some(p) = uri.query.get(a) {
                shown.push_str(&format!("{sep}{a}={p}"));
                sep = '&';
            }
        }
        k.info.uri = shown.into();
        Ok(k)
    }

    fn owns(&self, edk: &EncryptedDataKey) -> bool {
        *edk.provider_id == *self.info.provider_id
            && edk.provider_info == self.info.key_name.as_bytes()
    }

    fn unwrap_failed(&self) -> Error {
        Error::UnwrapFailed {
            key: self.info.uri.to_string(),
        }
    }
}

/// The one-time AES-256-GCM key of a wrap, from the X-Wing shared secret.
fn wrapping_key(ss: &[u8; 32]) -> Result<LessSafeKey> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(ss);
    let okm = prk
        .expand(&[HKDF_INFO], &AES_256_GCM)
        .map_err(|_| Error::Config("HKDF failed".into()))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

#[async_trait]
impl KeyStore for PqEscrowKey {
    fn info(&self) -> &KeyInfo {
        &self.info
    }

    async fn wrap(&self, data_key: &DataKey, req: WrapRequest<'_>) -> Result<EncryptedDataKey> {
        let aad = req.context.serialize()?;
        let (ss, ct) = self.public.encapsulate()?;
        let key = wrapping_key(&ss)?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| Error::Config("the system random number generator failed".into()))?;
        let mut sealed = data_key.expose().to_vec();
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut sealed,
            )
            .map_err(|_| Error::Config("AES-GCM sealing failed".into()))?;
        let mut out = Vec::with_capacity(2 + CIPHERTEXT_LEN + NONCE_LEN + sealed.len() + TAG_LEN);
        out.extend_from_slice(&[VERSION, ALG_XWING]);
        out.extend_from_slice(&ct);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out.extend_from_slice(tag.as_ref());
        Ok(EncryptedDataKey {
            provider_id: self.info.provider_id.to_string(),
            provider_info: self.info.key_name.as_bytes().to_vec(),
            ciphertext: out,
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
        let Some(private) = &self.private else {
            return Err(Error::Unsupported {
                key: self.info.uri.to_string(),
                detail: "this escrow key has no private key (private=PATH) and cannot decrypt"
                    .into(),
            });
        };
        let c = &edk.ciphertext;
        let key_len = req.suite.key_len();
        if c.len() != 2 + CIPHERTEXT_LEN + NONCE_LEN + key_len + TAG_LEN
            || c[0] != VERSION
            || c[1] != ALG_XWING
        {
            return Err(self.unwrap_failed());
        }
        let (ct, rest) = c[2..].split_at(CIPHERTEXT_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let ss = private.decapsulate(ct).map_err(|_| self.unwrap_failed())?;
        let key = wrapping_key(&ss)?;
        let aad = req.context.serialize()?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| self.unwrap_failed())?;
        let plain = key
            .open_in_place(nonce, Aad::from(&aad), &mut buf)
            .map_err(|_| self.unwrap_failed())?;
        Ok(Some(DataKey::from_slice(plain)))
    }
}
