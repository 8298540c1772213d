//! `hyok key new|list|destroy` for PKCS#11 tokens: keys are generated inside the token as
//! token objects that are private, sensitive and never extractable, with only the usages
//! hyok needs.

use std::collections::BTreeMap;

use async_trait::async_trait;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::types::Ulong;

use super::blocking;
use super::objects::{self, Obj, P256_OID, P384_OID};
use super::token::open_token;
use super::uri::{pct, Pkcs11Uri};
use crate::admin::{Created, KeyAdmin, KeyKind, KeyListing};
use crate::error::{Error, Result};
use crate::uri::KeyUri;

/// Key lifecycle in a PKCS#11 token.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pkcs11Admin;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The URI to use a key with: what identifies it, plus the non-secret how-to-reach
/// attributes the caller gave.
fn usable_uri(p: &Pkcs11Uri, original: &KeyUri, extra: &[(&str, &str)]) -> String {
    let mut s = p.display();
    let mut q: Vec<String> = Vec::new();
    for k in ["module-path", "pin-source"] {
        if let Some(v) = original.query.get(k) {
            q.push(format!("{k}={}", pct_path(v)));
        }
    }
    for (k, v) in extra {
        q.push(format!("{k}={v}"));
    }
    if !q.is_empty() {
        s.push(if s.contains('?') { '&' } else { '?' });
        s.push_str(&q.join("&"));
    }
    s
}

fn pct_path(v: &str) -> String {
    v.split('/')
        .map(|seg| pct(seg.as_bytes()))
        .collect::<Vec<_>>()
        .join("/")
        .replace("%3A", ":")
}

fn create_blocking(p: Pkcs11Uri, original: KeyUri, kind: KeyKind) -> Result<Created> {
    let label = p.object_label()?.to_owned();
    let who = p.display();
    let token = open_token(&p, &who)?;
    let existing = token
        .run(&mut |s| objects::find(s, Some(&label), None))
        .map_err(|e| e.into_error(&who))?;
    if !existing.is_empty() {
        return Err(Error::Config(format!(
            "{who}: a key labelled {label:?} already exists on token {:?}; refusing to create \
             another (choose another label, or destroy the old key first)",
            token.label
        )));
    }
    let id = match &p.id {
        Some(id) => id.clone(),
        None => {
            let mut id = vec![0u8; 8];
            aws_lc_rs::rand::fill(&mut id).map_err(|_| Error::Backend {
                key: who.clone(),
                detail: "random id".into(),
            })?;
            id
        }
    };
    let common = |private: bool| {
        let mut v = vec![
            Attribute::Token(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        if private {
            v.extend([
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
            ]);
        } else {
            v.push(Attribute::Private(false));
        }
        v
    };
    let ulong = |n: usize| {
        Ulong::try_from(n).map_err(|_| Error::Backend {
            key: who.clone(),
            detail: "number out of range".into(),
        })
    };
    let (kind_name, usage) = match kind {
        KeyKind::Aes256 => {
            let mut t = common(true);
            t.extend([
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(ulong(32)?),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::Sign(false),
                Attribute::Verify(false),
                Attribute::Derive(false),
            ]);
            token
                .run(&mut |s| s.generate_key(&Mechanism::AesKeyGen, &t))
                .map_err(|e| e.into_error(&who))?;
            ("AES-256".to_owned(), "encrypt,decrypt (AES-GCM)")
        }
        KeyKind::Rsa(bits) => {
            if !(2048..=8192).contains(&bits) {
                return Err(Error::Config(format!(
                    "{who}: RSA keys must have 2048 to 8192 bits"
                )));
            }
            let mut public = common(false);
            public.extend([
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::RSA),
                Attribute::ModulusBits(ulong(bits)?),
                Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                Attribute::Encrypt(true),
                Attribute::Verify(false),
                Attribute::Wrap(false),
            ]);
            let mut private = common(true);
            private.extend([
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::RSA),
                Attribute::Decrypt(true),
                Attribute::Sign(false),
                Attribute::Unwrap(false),
                Attribute::Derive(false),
            ]);
            token
                .run(&mut |s| s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private))
                .map_err(|e| e.into_error(&who))?;
            (
                format!("RSA-{bits}"),
                "decrypt (RSA-OAEP); public key: encrypt",
            )
        }
        KeyKind::EcP256 | KeyKind::EcP384 => {
            let (oid, name) = if kind == KeyKind::EcP256 {
                (P256_OID.to_vec(), "EC-P256")
            } else {
                (P384_OID.to_vec(), "EC-P384")
            };
            let mut public = common(false);
            public.extend([
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::EC),
                Attribute::EcParams(oid),
                Attribute::Verify(true),
                Attribute::Encrypt(false),
            ]);
            let mut private = common(true);
            private.extend([
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::EC),
                Attribute::Sign(true),
                Attribute::Decrypt(false),
                Attribute::Derive(false),
            ]);
            token
                .run(&mut |s| s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private))
                .map_err(|e| e.into_error(&who))?;
            (name.to_owned(), "sign (ECDSA); public key: verify")
        }
    };
    // SoftHSM 2.6 decrypts RSA-OAEP with SHA-1 only: hand out a URI that works there.
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if matches!(kind, KeyKind::Rsa(_)) && !p.oaep_hash_given {
        let softhsm = token
            .module
            .ctx
            .get_library_info()
            .map(|i| i.manufacturer_id().contains("SoftHSM"))
            .unwrap_or(false);
        if softhsm {
            extra.push(("oaep-hash", "sha1"));
        }
    }
    let mut with_id = p.clone();
    with_id.id = None;
    Ok(Created {
        uri: usable_uri(&with_id, &original, &extra),
        detail: format!(
            "{kind_name} key {label:?} (id {}) in token {:?}: private, sensitive, never \
             extractable; usage {usage}",
            hex(&id),
            token.label
        ),
    })
}

/// Objects grouped into keys: (label, id) → objects.
fn group(objs: Vec<Obj>) -> BTreeMap<(String, Vec<u8>), Vec<Obj>> {
    let mut m: BTreeMap<(String, Vec<u8>), Vec<Obj>> = BTreeMap::new();
    for o in objs {
        m.entry((o.label.clone(), o.id.clone()))
            .or_default()
            .push(o);
    }
    m
}

fn list_blocking(p: Pkcs11Uri) -> Result<Vec<KeyListing>> {
    let who = p.token_display();
    let token = open_token(&p, &who)?;
    token
        .run(&mut |s| {
            let objs = objects::find(s, p.object.as_deref(), p.id.as_deref())?;
            let mut out = Vec::new();
            for ((label, id), objs) in group(objs) {
                // Secret keys are listed one by one; a key pair is one key.
                let secrets: Vec<&Obj> = objs.iter().filter(|o| o.is_secret()).collect();
                for o in &secrets {
                    out.push(KeyListing {
                        name: label.clone(),
                        id: hex(&id),
                        kind: objects::kind(s, o)?,
                        attributes: objects::security_attributes(s, o)?,
                    });
                }
                let private = objs.iter().find(|o| o.is_private());
                let public = objs.iter().find(|o| o.is_public());
                if let Some(main) = private.or(public) {
                    let mut kind = objects::kind(s, public.unwrap_or(main))?;
                    if private.is_none() {
                        kind.push_str(" (public key only)");
                    }
                    let mut attributes = objects::security_attributes(s, main)?;
                    attributes.push((
                        "public-key".into(),
                        if public.is_some() { "yes" } else { "no" }.into(),
                    ));
                    out.push(KeyListing {
                        name: label.clone(),
                        id: hex(&id),
                        kind,
                        attributes,
                    });
                }
            }
            Ok(out)
        })
        .map_err(|e| e.into_error(&who))
}

fn destroy_blocking(p: Pkcs11Uri) -> Result<String> {
    let label = p.object_label()?.to_owned();
    let who = p.display();
    let token = open_token(&p, &who)?;
    token
        .run(&mut |s| {
            let objs = objects::find(s, Some(&label), p.id.as_deref())?;
            if objs.is_empty() {
                return Ok(Err(Error::NotFound {
                    key: who.clone(),
                    detail: format!("no key labelled {label:?} on token {:?}", token.label),
                }));
            }
            let keys = group(objs);
            if keys.len() > 1 {
                return Ok(Err(Error::Config(format!(
                    "{who}: {} different keys are labelled {label:?} (ids {}); add ;id=… to \
                     destroy exactly one",
                    keys.len(),
                    keys.keys()
                        .map(|(_, id)| hex(id))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))));
            }
            let mut described = Vec::new();
            for ((_, id), objs) in keys {
                let kind = objects::kind(s, &objs[0])?;
                for o in &objs {
                    s.destroy_object(o.handle)?;
                }
                described.push(format!(
                    "destroyed {kind} key {label:?} (id {}, {} object{}) in token {:?}",
                    hex(&id),
                    objs.len(),
                    if objs.len() == 1 { "" } else { "s" },
                    token.label
                ));
            }
            Ok(Ok(described.join("; ")))
        })
        .map_err(|e| e.into_error(&who))?
}

#[async_trait]
impl KeyAdmin for Pkcs11Admin {
    async fn create(&self, uri: &KeyUri, kind: KeyKind) -> Result<Created> {
        let p = Pkcs11Uri::from_key_uri(uri)?;
        p.object_label()?;
        let original = uri.clone();
        blocking(move || create_blocking(p, original, kind)).await
    }

    async fn list(&self, uri: &KeyUri) -> Result<Vec<KeyListing>> {
        let p = Pkcs11Uri::from_key_uri(uri)?;
        blocking(move || list_blocking(p)).await
    }

    async fn destroy(&self, uri: &KeyUri) -> Result<String> {
        let p = Pkcs11Uri::from_key_uri(uri)?;
        p.object_label()?;
        blocking(move || destroy_blocking(p)).await
    }
}
