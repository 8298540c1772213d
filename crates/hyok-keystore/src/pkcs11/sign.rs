//! ECDSA signatures by an EC key inside the token (audit checkpoints). The caller hashes;
//! the token signs the digest with CKM_ECDSA (SoftHSM 2.6 has no CKM_ECDSA_SHA256).

use std::sync::Arc;

use cryptoki::error::Error as CkError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectHandle};
use cryptoki::session::Session;

use super::objects::{self, P256_OID, P384_OID};
use super::token::{CachedHandle, Token};
use super::uri::Pkcs11Uri;
use crate::error::{Error, Result};

/// DER OID of id-ecPublicKey (1.2.840.10045.2.1).
const EC_PUBLIC_KEY_OID: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// Curves of EC signing keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EcCurve {
    /// NIST P-256: 64-byte signatures, hash with SHA-256.
    P256,
    /// NIST P-384: 96-byte signatures, hash with SHA-384.
    P384,
}

impl EcCurve {
    /// Length of one coordinate (and of `r` and `s`) in bytes.
    pub fn field_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }

    fn oid(self) -> &'static [u8] {
        match self {
            Self::P256 => &P256_OID,
            Self::P384 => &P384_OID,
        }
    }
}

/// An EC private key in a token that signs digests, plus its public key.
pub struct EcSigner {
    token: Arc<Token>,
    who: String,
    label: String,
    id: Option<Vec<u8>>,
    curve: EcCurve,
    /// Uncompressed public point (0x04 ‖ X ‖ Y).
    point: Vec<u8>,
    handle: CachedHandle,
}

impl std::fmt::Debug for EcSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcSigner")
            .field("key", &self.who)
            .field("curve", &self.curve)
            .finish_non_exhaustive()
    }
}

/// The uncompressed point from CKA_EC_POINT: a DER OCTET STRING (the standard) or the raw
/// point (some tokens).
fn parse_point(v: &[u8], curve: EcCurve) -> Option<Vec<u8>> {
    let raw_len = 1 + 2 * curve.field_len();
    if v.len() == raw_len && v[0] == 0x04 {
        return Some(v.to_vec());
    }
    // OCTET STRING, short or one-byte long form length.
    let (len, body) = match v {
        [0x04, n, rest @ ..] if *n < 0x80 => (*n as usize, rest),
        [0x04, 0x81, n, rest @ ..] => (*n as usize, rest),
        _ => return None,
    };
    (len == body.len() && len == raw_len && body[0] == 0x04).then(|| body.to_vec())
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    crate::raw::rsa::der_tlv(tag, body)
}

impl EcSigner {
    /// Open the EC key a `pkcs11:` URI names (private key to sign, public key to export).
    pub fn open(uri: &Pkcs11Uri) -> Result<Self> {
        let objects::Found {
            who,
            label,
            token,
            objs,
        } = objects::find_uri(uri)?;
        if objs.is_empty() {
            return Err(Error::NotFound {
                key: who,
                detail: format!("no key labelled {label:?} on token {:?}", token.label),
            });
        }
        let private = objs
            .iter()
            .find(|o| o.is_private() && o.type_is(KeyType::EC));
        let public = objs
            .iter()
            .find(|o| o.is_public() && o.type_is(KeyType::EC));
        let (Some(private), Some(public)) = (private, public) else {
            let kind = token
                .run(&mut |s| objects::kind(s, &objs[0]))
                .map_err(|e| e.into_error(&who))?;
            return Err(Error::Unsupported {
                key: who,
                detail: format!(
                    "{label:?} is not an EC key pair ({kind}); signing needs an EC private key \
                     and its public key in the token (hyok key new ec-p256 -o URI)"
                ),
            });
        };
        let attrs = token
            .run(&mut |s| {
                s.get_attributes(
                    public.handle,
                    &[AttributeType::EcParams, AttributeType::EcPoint],
                )
            })
            .map_err(|e| e.into_error(&who))?;
        let mut params = None;
        let mut point = None;
        for a in attrs {
            match a {
                Attribute::EcParams(p) => params = Some(p),
                Attribute::EcPoint(p) => point = Some(p),
                _ => {}
            }
        }
        let curve = match params.as_deref() {
            Some(p) if p == P256_OID => EcCurve::P256,
            Some(p) if p == P384_OID => EcCurve::P384,
            _ => {
                return Err(Error::Unsupported {
                    key: who,
                    detail: "only P-256 and P-384 keys can sign".into(),
                })
            }
        };
        let point = point
            .as_deref()
            .and_then(|p| parse_point(p, curve))
            .ok_or_else(|| Error::Unsupported {
                key: who.clone(),
                detail: "the token's CKA_EC_POINT is not an uncompressed point".into(),
            })?;
        let generation = token.generation();
        Ok(Self {
            handle: CachedHandle::new(Some(private.handle), generation),
            token,
            who,
            label,
            id: uri.id.clone(),
            curve,
            point,
        })
    }

    /// Open from a URI string.
    pub fn from_uri_str(uri: &str) -> Result<Self> {
        Self::open(&Pkcs11Uri::parse(uri)?)
    }

    /// The key (URI without secrets).
    pub fn key(&self) -> &str {
        &self.who
    }

    /// The curve.
    pub fn curve(&self) -> EcCurve {
        self.curve
    }

    fn lookup(&self, s: &Session) -> std::result::Result<Option<ObjectHandle>, CkError> {
        Ok(objects::find(s, Some(&self.label), self.id.as_deref())?
            .into_iter()
            .find(|o| o.is_private() && o.type_is(KeyType::EC))
            .map(|o| o.handle))
    }

    /// Sign a digest the caller computed (SHA-256 for P-256, SHA-384 for P-384, by
    /// convention) with CKM_ECDSA. Returns the fixed-length signature `r ‖ s` (64 or 96
    /// bytes), the form aws-lc-rs calls `ECDSA_P256_SHA256_FIXED`. Blocks.
    pub fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>> {
        if digest.is_empty() || digest.len() > 64 {
            return Err(Error::Config(format!(
                "{}: a digest of 1 to 64 bytes is signed, got {}",
                self.who,
                digest.len()
            )));
        }
        let sig = self
            .handle
            .run(&self.token, &|s| self.lookup(s), &mut |s, h| {
                s.sign(&Mechanism::Ecdsa, h, digest)
            })
            .map_err(|e| e.into_error(&self.who))?;
        if sig.len() != 2 * self.curve.field_len() {
            return Err(Error::Backend {
                key: self.who.clone(),
                detail: format!("C_Sign (CKM_ECDSA) returned {} bytes", sig.len()),
            });
        }
        Ok(sig)
    }

    /// The uncompressed public point `0x04 ‖ X ‖ Y`.
    pub fn public_point(&self) -> &[u8] {
        &self.point
    }

    /// The public key as DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> Vec<u8> {
        let mut alg = EC_PUBLIC_KEY_OID.to_vec();
        alg.extend_from_slice(self.curve.oid());
        let mut bits = vec![0u8];
        bits.extend_from_slice(&self.point);
        let mut body = tlv(0x30, &alg);
        body.extend(tlv(0x03, &bits));
        tlv(0x30, &body)
    }

    /// The public key as PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_key_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", self.public_key_der()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_point_encodings() {
        let mut raw = vec![0x04];
        raw.extend([7u8; 64]);
        assert_eq!(parse_point(&raw, EcCurve::P256), Some(raw.clone()));
        let mut der = vec![0x04, 65];
        der.extend(&raw);
        assert_eq!(parse_point(&der, EcCurve::P256), Some(raw.clone()));
        assert_eq!(parse_point(&der[..60], EcCurve::P256), None);
        assert_eq!(parse_point(&der, EcCurve::P384), None);
    }
}
