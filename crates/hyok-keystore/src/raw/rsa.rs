//! Raw RSA keyring (ESDK spec `framework/raw-rsa-keyring.md`): the data key encrypted with
//! the RSA public key (PKCS#1 v1.5 or OAEP with SHA-1/256/384/512, MGF1 with the same
//! hash, empty label); provider info = key name. A public key alone can wrap (escrow: the
//! private key may live offline); unwrapping needs the private key.

use std::path::Path;
use std::str::FromStr;

use async_trait::async_trait;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::hmac;
use aws_lc_rs::rsa::{
    KeySize, OaepAlgorithm, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512,
};
use hyok_core::{DataKey, EncryptedDataKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::store::{KeyInfo, KeyStore, WrapRequest};
use crate::uri::KeyUri;

/// RSA padding scheme of a raw RSA key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RsaPadding {
    /// PKCS#1 v1.5 (legacy; prefer OAEP).
    Pkcs1,
    /// OAEP with SHA-1 and MGF1-SHA1.
    OaepSha1,
    /// OAEP with SHA-256 and MGF1-SHA256.
    OaepSha256,
    /// OAEP with SHA-384 and MGF1-SHA384.
    OaepSha384,
    /// OAEP with SHA-512 and MGF1-SHA512.
    OaepSha512,
}

impl FromStr for RsaPadding {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "pkcs1" | "pkcs1v15" | "pkcs1-v1.5" => {
                crate::fips::refuse_rsa_pkcs1()?;
                Self::Pkcs1
            }
            "oaep-sha1" | "oaep-sha1-mgf1" => Self::OaepSha1,
            "oaep-sha256" | "oaep-sha256-mgf1" | "oaep" => Self::OaepSha256,
            "oaep-sha384" | "oaep-sha384-mgf1" => Self::OaepSha384,
            "oaep-sha512" | "oaep-sha512-mgf1" => Self::OaepSha512,
            other => {
                return Err(Error::Config(format!(
                    "unknown RSA padding {other:?} (use pkcs1, oaep-sha1, oaep-sha256, oaep-sha384 or oaep-sha512)"
                )))
            }
        })
    }
}

impl RsaPadding {
    fn oaep(self) -> Option<&'static OaepAlgorithm> {
        match self {
            Self::Pkcs1 => None,
            Self::OaepSha1 => Some(&OAEP_SHA1_MGF1SHA1),
            Self::OaepSha256 => Some(&OAEP_SHA256_MGF1SHA256),
            Self::OaepSha384 => Some(&OAEP_SHA384_MGF1SHA384),
            Self::OaepSha512 => Some(&OAEP_SHA512_MGF1SHA512),
        }
    }

    /// Name as used in key URIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pkcs1 => "pkcs1",
            Self::OaepSha1 => "oaep-sha1",
            Self::OaepSha256 => "oaep-sha256",
            Self::OaepSha384 => "oaep-sha384",
            Self::OaepSha512 => "oaep-sha512",
        }
    }
}

/// A raw RSA key: a public key to wrap, a private key to unwrap, or both.
pub struct RawRsaKey {
    info: KeyInfo,
    padding: RsaPadding,
    public: Option<PublicEncryptingKey>,
    private: Option<PrivateDecryptingKey>,
    /// PKCS#1 v1.5 only: secret from which a substitute data key is derived for every
    /// ciphertext whose padding does not check (implicit rejection).
    rejection: Option<hmac::Key>,
}

/// PKCS#1 v1.5 implicit rejection: a secret bound to the private key. Derived from its
/// PKCS#8 encoding, so it is the same in every process that holds the key and unknown to
/// anyone who does not.
fn rejection_key(private: &PrivateDecryptingKey) -> Result<hmac::Key> {
    let der: Pkcs8V1Der<'_> = private
        .as_der()
        .map_err(|_| Error::Config("RSA key encoding failed".into()))?;
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, b"hyok pkcs1 implicit rejection v1"),
        der.as_ref(),
    );
    Ok(hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref()))
}

/// The data key for a PKCS#1 v1.5 EDK: the decrypted one if its padding and length
/// check, else one derived from the ciphertext with the rejection secret. Both are
/// computed every time and combined with a mask, so what follows (the audit record, the
/// error, its hint, the work done) cannot tell the cases apart: a wrong padding fails
/// later exactly like a wrong key, at the key commitment (or header authentication)
/// check. aws-lc-rs reports a bad padding as an error, so one branch on that result
/// remains (see DESIGN.md).
fn implicit_rejection(
    decrypted: std::result::Result<&[u8], ()>,
    rejection: &hmac::Key,
    suite_id: u16,
    ciphertext: &[u8],
    key_len: usize,
) -> Zeroizing<Vec<u8>> {
    let mut ctx = hmac::Context::with_key(rejection);
    ctx.update(b"data key\0");
    ctx.update(&suite_id.to_be_bytes());
    ctx.update(ciphertext);
    let substitute = Zeroizing::new(ctx.sign().as_ref().to_vec());
    let (real, len_ok) = match decrypted {
        Ok(d) => (d, d.len() == key_len),
        Err(()) => (&[][..], false),
    };
    let mask = u8::from(len_ok).wrapping_neg();
    let mut out = Zeroizing::new(vec![0u8; key_len]);
    for (i, o) in out.iter_mut().enumerate() {
        let r = real.get(i).copied().unwrap_or(0);
        *o = (r & mask) | (substitute[i] & !mask);
    }
    out
}

impl std::fmt::Debug for RawRsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRsaKey")
            .field("info", &self.info)
            .field("padding", &self.padding)
            .field("public", &self.public.is_some())
            .field("private", &self.private.is_some())
            .finish()
    }
}

fn pem_der(text: &str, path: &str, expected: &[&str]) -> Result<Zeroizing<Vec<u8>>> {
    let p = pem::parse(text).map_err(|e| Error::Config(format!("{path}: not a PEM file: {e}")))?;
    if !expected.contains(&p.tag()) {
        return Err(Error::Config(format!(
            "{path}: PEM block is {:?}, expected {}",
            p.tag(),
            expected.join(" or ")
        )));
    }
    Ok(Zeroizing::new(p.into_contents()))
}

/// DER `rsaEncryption` AlgorithmIdentifier: SEQUENCE { OID 1.2.840.113549.1.1.1, NULL }.
const RSA_ALG_ID: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

pub(crate) fn der_tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// Wrap a PKCS#1 `RSAPrivateKey` into a PKCS#8 `PrivateKeyInfo`.
fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut body = Zeroizing::new(vec![0x02, 0x01, 0x00]);
    body.extend_from_slice(&RSA_ALG_ID);
    body.extend_from_slice(&Zeroizing::new(der_tlv(0x04, pkcs1)));
    Zeroizing::new(der_tlv(0x30, &body))
}

/// Wrap a PKCS#1 `RSAPublicKey` into a `SubjectPublicKeyInfo`.
pub(crate) fn pkcs1_to_spki(pkcs1: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(pkcs1);
    let mut body = RSA_ALG_ID.to_vec();
    body.extend_from_slice(&der_tlv(0x03, &bits));
    der_tlv(0x30, &body)
}

/// Parse an RSA private key PEM (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
pub fn parse_private_pem(text: &str, path: &str) -> Result<PrivateDecryptingKey> {
    let p = pem::parse(text).map_err(|e| Error::Config(format!("{path}: not a PEM file: {e}")))?;
    let der = match p.tag() {
        "PRIVATE KEY" => Zeroizing::new(p.into_contents()),
        "RSA PRIVATE KEY" => pkcs1_to_pkcs8(&Zeroizing::new(p.into_contents())),
        t => {
            return Err(Error::Config(format!(
                "{path}: PEM block is {t:?}, expected an RSA private key"
            )))
        }
    };
    PrivateDecryptingKey::from_pkcs8(&der)
        .map_err(|_| Error::Config(format!("{path}: not a usable RSA private key")))
}

/// Parse an RSA public key PEM (SubjectPublicKeyInfo `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`).
pub fn parse_public_pem(text: &str, path: &str) -> Result<PublicEncryptingKey> {
    let der = pem_der(text, path, &["PUBLIC KEY", "RSA PUBLIC KEY"])?;
    let der = if text.contains("BEGIN RSA PUBLIC KEY") {
        Zeroizing::new(pkcs1_to_spki(&der))
    } else {
        der
    };
    PublicEncryptingKey::from_der(&der)
        .map_err(|_| Error::Config(format!("{path}: not a usable RSA public key")))
}

/// Largest RSA PEM file read: a 16384-bit PKCS#8 private key is about 12.7 KiB of PEM.
const MAX_PEM: u64 = 64 * 1024;

fn read_text(path: &str, secrecy: crate::secret_file::Secrecy) -> Result<Zeroizing<String>> {
    let what = match secrecy {
        crate::secret_file::Secrecy::Secret => "private key file",
        crate::secret_file::Secrecy::Public => "public key file",
    };
    let bytes = crate::secret_file::read(Path::new(path), what, MAX_PEM, secrecy)?;
    std::str::from_utf8(&bytes)
        .map(|s| Zeroizing::new(s.to_owned()))
        .map_err(|_| Error::Config(format!("{what} {path} is not PEM text")))
}

/// A fresh RSA key pair as (PKCS#8 private PEM, SPKI public PEM).
pub fn generate_pem(bits: usize) -> Result<(Zeroizing<String>, String)> {
    let size = match bits {
        2048 => KeySize::Rsa2048,
        3072 => KeySize::Rsa3072,
        4096 => KeySize::Rsa4096,
        8192 => KeySize::Rsa8192,
        _ => return Err(Error::Config(format!("unsupported RSA size {bits}"))),
    };
    let key = PrivateDecryptingKey::generate(size)
        .map_err(|_| Error::Config("RSA key generation failed".into()))?;
    let der: Pkcs8V1Der<'_> = key
        .as_der()
        .map_err(|_| Error::Config("RSA key encoding failed".into()))?;
    let private = private_pem("PRIVATE KEY", der.as_ref());
    let pubder: PublicKeyX509Der<'_> = key
        .public_key()
        .as_der()
        .map_err(|_| Error::Config("RSA key encoding failed".into()))?;
    let public = pem::encode(&pem::Pem::new("PUBLIC KEY", pubder.as_ref().to_vec()));
    Ok((private, public))
}

/// PEM text of private key material, built only in buffers that are zeroized when
/// dropped (each sized once, so no copy is left behind by a reallocation). Lines end in
/// `\n`, 64 base64 characters each.
pub fn private_pem(tag: &str, der: &[u8]) -> Zeroizing<String> {
    use base64::Engine as _;
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = Zeroizing::new(String::with_capacity(
        b64.len() + b64.len() / 64 + 2 * tag.len() + 40,
    ));
    out.push_str("-----BEGIN ");
    out.push_str(tag);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(tag);
    out.push_str("-----\n");
    out
}

impl RawRsaKey {
    /// A key from parsed parts. At least one of `public`/`private` must be given.
    pub fn new(
        namespace: &str,
        name: &str,
        padding: RsaPadding,
        public: Option<PublicEncryptingKey>,
        private: Option<PrivateDecryptingKey>,
    ) -> Result<Self> {
        if public.is_none() && private.is_none() {
            return Err(Error::Config(format!(
                "raw-rsa:{namespace}/{name}: give public=PEM, private=PEM, or both"
            )));
        }
        let rejection = match (padding, &private) {
            (RsaPadding::Pkcs1, Some(k)) => Some(rejection_key(k)?),
            _ => None,
        };
        Ok(Self {
            rejection,
            info: KeyInfo {
                backend: "raw-rsa",
                uri: format!("raw-rsa:{namespace}/{name}").into(),
                provider_id: namespace.into(),
                key_name: name.into(),
            },
            padding,
            public,
            private,
        })
    }

    /// Build from `raw-rsa:NS/NAME?public=PEM&private=PEM&padding=oaep-sha256`.
    pub fn from_uri(uri: &KeyUri) -> Result<Self> {
        uri.only_attributes(&["public", "private", "padding"])?;
        let (ns, name) = uri.namespace_and_name()?;
        let padding = match uri.query.get("padding") {
            Some(p) => p.parse()?,
            None => RsaPadding::OaepSha256,
        };
        let public = match uri.query.get("public") {
            Some(p) => Some(parse_public_pem(
                &read_text(p, crate::secret_file::Secrecy::Public)?,
                p,
            )?),
            None => None,
        };
        let private = match uri.query.get("private") {
            Some(p) => Some(parse_private_pem(
                &read_text(p, crate::secret_file::Secrecy::Secret)?,
                p,
            )?),
            None => None,
        };
        let mut k = Self::new(&ns, &name, padding, public, private)?;
        let mut uri_s = format!("raw-rsa:{}?padding={}", uri.path, padding.as_str());
        for a in ["public", "private"] {
            if let Some(p) = uri.query.get(a) {
                uri_s.push_str(&format!("&{a}={p}"));
            }
        }
        k.info.uri = uri_s.into();
        Ok(k)
    }

    fn fail(&self, detail: &str) -> Error {
        Error::Backend {
            key: self.info.uri.to_string(),
            detail: detail.into(),
        }
    }
}

#[async_trait]
impl KeyStore for RawRsaKey {
    fn info(&self) -> &KeyInfo {
        &self.info
    }

    fn can_wrap(&self) -> bool {
        self.public.is_some()
    }

    async fn wrap(&self, data_key: &DataKey, _req: WrapRequest<'_>) -> Result<EncryptedDataKey> {
        // The spec forbids deriving the public key from the private one for encryption.
        let public = self.public.as_ref().ok_or_else(|| Error::Unsupported {
            key: self.info.uri.to_string(),
            detail: "this RSA key has no public key (public=PEM) and cannot encrypt".into(),
        })?;
        let ct = match self.padding.oaep() {
            Some(alg) => {
                let k = OaepPublicEncryptingKey::new(public.clone())
                    .map_err(|_| self.fail("unusable RSA public key"))?;
                let mut out = vec![0u8; k.ciphertext_size()];
                let n = k
                    .encrypt(alg, data_key.expose(), &mut out, None)
                    .map_err(|_| self.fail("RSA-OAEP encryption failed"))?
                    .len();
                out.truncate(n);
                out
            }
            None => {
                let k = Pkcs1PublicEncryptingKey::new(public.clone())
                    .map_err(|_| self.fail("unusable RSA public key"))?;
                let mut out = vec![0u8; k.ciphertext_size()];
                let n = k
                    .encrypt(data_key.expose(), &mut out)
                    .map_err(|_| self.fail("RSA PKCS#1 encryption failed"))?
                    .len();
                out.truncate(n);
                out
            }
        };
        Ok(EncryptedDataKey {
            provider_id: self.info.provider_id.to_string(),
            provider_info: self.info.key_name.as_bytes().to_vec(),
            ciphertext: ct,
        })
    }

    async fn unwrap(
        &self,
        edk: &EncryptedDataKey,
        req: WrapRequest<'_>,
    ) -> Result<Option<DataKey>> {
        if *edk.provider_id != *self.info.provider_id
            || edk.provider_info != self.info.key_name.as_bytes()
        {
            return Ok(None);
        }
        let private = self.private.as_ref().ok_or_else(|| Error::Unsupported {
            key: self.info.uri.to_string(),
            detail: "this RSA key has only a public key (add private=PEM to decrypt)".into(),
        })?;
        let failed = || Error::UnwrapFailed {
            key: self.info.uri.to_string(),
        };
        let mut out = Zeroizing::new(vec![0u8; edk.ciphertext.len().max(16)]);
        let n = match self.padding.oaep() {
            Some(alg) => {
                let k = OaepPrivateDecryptingKey::new(private.clone())
                    .map_err(|_| self.fail("unusable RSA private key"))?;
                k.decrypt(alg, &edk.ciphertext, &mut out, None)
                    .map_err(|_| failed())?
                    .len()
            }
            None => {
                let k = Pkcs1PrivateDecryptingKey::new(private.clone())
                    .map_err(|_| self.fail("unusable RSA private key"))?;
                let rejection = self
                    .rejection
                    .as_ref()
                    .ok_or_else(|| self.fail("no implicit rejection secret"))?;
                let decrypted = k
                    .decrypt(&edk.ciphertext, &mut out)
                    .map(|d| &*d)
                    .map_err(|_| ());
                let key = implicit_rejection(
                    decrypted,
                    rejection,
                    req.suite.id(),
                    &edk.ciphertext,
                    req.suite.key_len(),
                );
                return Ok(Some(DataKey::from_slice(&key)));
            }
        };
        if n != req.suite.key_len() {
            return Err(failed());
        }
        Ok(Some(DataKey::from_slice(&out[..n])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyok_core::{AlgorithmSuite, EncryptionContext};

    fn key(padding: RsaPadding) -> RawRsaKey {
        let (private, public) = generate_pem(2048).unwrap();
        RawRsaKey::new(
            "ns",
            "k",
            padding,
            Some(parse_public_pem(&public, "public").unwrap()),
            Some(parse_private_pem(&private, "private").unwrap()),
        )
        .unwrap()
    }

    /// A PKCS#1 v1.5 EDK that does not decrypt to a valid block unwraps to a substitute
    /// key (fixed per ciphertext, different for another one), never to an error that a
    /// wrong key would not give.
    #[tokio::test]
    async fn pkcs1_bad_padding_unwraps_to_a_substitute_key() {
        let k = key(RsaPadding::Pkcs1);
        let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        let ctx = EncryptionContext::new();
        let req = WrapRequest {
            suite,
            context: &ctx,
        };
        let dk = DataKey::generate(suite).unwrap();
        let edk = k.wrap(&dk, req).await.unwrap();
        let back = k.unwrap(&edk, req).await.unwrap().unwrap();
        assert_eq!(back.expose(), dk.expose());

        let mut bad = edk.clone();
        bad.ciphertext = vec![0x5a; edk.ciphertext.len()];
        bad.ciphertext[0] = 0;
        let s1 = k.unwrap(&bad, req).await.unwrap().unwrap();
        let s2 = k.unwrap(&bad, req).await.unwrap().unwrap();
        assert_eq!(s1.expose(), s2.expose(), "same ciphertext, same substitute");
        assert_eq!(s1.expose().len(), suite.key_len());
        assert_ne!(s1.expose(), dk.expose());
        bad.ciphertext[1] ^= 1;
        let s3 = k.unwrap(&bad, req).await.unwrap().unwrap();
        assert_ne!(s1.expose(), s3.expose());
        // A ciphertext of the wrong length is no different.
        bad.ciphertext.truncate(100);
        assert!(k.unwrap(&bad, req).await.unwrap().is_some());
        // Another key of the same name derives other substitutes.
        let other = key(RsaPadding::Pkcs1);
        bad.ciphertext = vec![0x5a; edk.ciphertext.len()];
        bad.ciphertext[0] = 0;
        let s4 = other.unwrap(&bad, req).await.unwrap().unwrap();
        assert_ne!(s1.expose(), s4.expose());
    }

    #[test]
    fn private_pem_is_what_the_pem_crate_reads_and_writes() {
        for len in [0usize, 1, 47, 48, 49, 1218] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let text = private_pem("PRIVATE KEY", &der);
            let parsed = pem::parse(text.as_bytes()).unwrap();
            assert_eq!((parsed.tag(), parsed.contents()), ("PRIVATE KEY", &der[..]));
            let reference = pem::encode_config(
                &pem::Pem::new("PRIVATE KEY", der.clone()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            );
            assert_eq!(*text, reference, "{len} bytes");
        }
        let (private, _) = generate_pem(2048).unwrap();
        assert!(parse_private_pem(&private, "generated").is_ok());
    }

    /// OAEP keeps failing with an error: aws-lc reports every kind of OAEP decoding
    /// failure as one error, and that is all hyok passes on (Manger's attack needs two).
    #[tokio::test]
    async fn oaep_bad_ciphertext_fails() {
        let k = key(RsaPadding::OaepSha256);
        let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        let ctx = EncryptionContext::new();
        let req = WrapRequest {
            suite,
            context: &ctx,
        };
        let dk = DataKey::generate(suite).unwrap();
        let mut edk = k.wrap(&dk, req).await.unwrap();
        edk.ciphertext[10] ^= 1;
        assert!(matches!(
            k.unwrap(&edk, req).await,
            Err(Error::UnwrapFailed { .. })
        ));
    }
}
