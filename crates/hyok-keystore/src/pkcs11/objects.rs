//! Finding key objects on a token and describing them (never reading secret values).

use cryptoki::error::Error as CkError;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

/// DER OID of NIST P-256 (prime256v1), as CKA_EC_PARAMS holds it.
pub(crate) const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER OID of NIST P-384 (secp384r1).
pub(crate) const P384_OID: [u8; 7] = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// One key object on the token.
#[derive(Clone, Debug)]
pub(crate) struct Obj {
    pub(crate) handle: ObjectHandle,
    pub(crate) class: ObjectClass,
    pub(crate) key_type: Option<KeyType>,
    pub(crate) label: String,
    pub(crate) id: Vec<u8>,
}

impl Obj {
    pub(crate) fn is_secret(&self) -> bool {
        self.class == ObjectClass::SECRET_KEY
    }
    pub(crate) fn is_private(&self) -> bool {
        self.class == ObjectClass::PRIVATE_KEY
    }
    pub(crate) fn is_public(&self) -> bool {
        self.class == ObjectClass::PUBLIC_KEY
    }
    pub(crate) fn type_is(&self, t: KeyType) -> bool {
        self.key_type == Some(t)
    }
}

/// Key objects (secret, private, public) with `label` (all labels when `None`) and `id`.
/// What a key URI led to: its display name, object label, token and the objects found.
pub(crate) struct Found {
    pub(crate) who: String,
    pub(crate) label: String,
    pub(crate) token: std::sync::Arc<super::token::Token>,
    pub(crate) objs: Vec<Obj>,
}

/// Open the token a `pkcs11:` URI names (module loaded and logged in once per process) and
/// find the objects with the URI's label (and id, if given).
pub(crate) fn find_uri(uri: &super::uri::Pkcs11Uri) -> crate::error::Result<Found> {
    let who = uri.display();
    let label = uri.object_label()?.to_owned();
    let token = super::token::open_token(uri, &who)?;
    let objs = token
        .run(&mut |s| find(s, Some(&label), uri.id.as_deref()))
        .map_err(|e| e.into_error(&who))?;
    Ok(Found {
        who,
        label,
        token,
        objs,
    })
}

pub(crate) fn find(
    s: &Session,
    label: Option<&str>,
    id: Option<&[u8]>,
) -> Result<Vec<Obj>, CkError> {
    let mut template = Vec::new();
    if let Some(l) = label {
        template.push(Attribute::Label(l.as_bytes().to_vec()));
    }
    if let Some(id) = id {
        template.push(Attribute::Id(id.to_vec()));
    }
    let mut out = Vec::new();
    for class in [
        ObjectClass::SECRET_KEY,
        ObjectClass::PRIVATE_KEY,
        ObjectClass::PUBLIC_KEY,
    ] {
        let mut t = template.clone();
        t.push(Attribute::Class(class));
        for handle in s.find_objects(&t)? {
            let attrs = s.get_attributes(
                handle,
                &[
                    AttributeType::KeyType,
                    AttributeType::Label,
                    AttributeType::Id,
                ],
            )?;
            let mut obj = Obj {
                handle,
                class,
                key_type: None,
                label: String::new(),
                id: Vec::new(),
            };
            for a in attrs {
                match a {
                    Attribute::KeyType(k) => obj.key_type = Some(k),
                    Attribute::Label(l) => obj.label = String::from_utf8_lossy(&l).into_owned(),
                    Attribute::Id(i) => obj.id = i,
                    _ => {}
                }
            }
            out.push(obj);
        }
    }
    Ok(out)
}

/// `AES-256`, `RSA-3072`, `EC-P256` … from the object's public attributes.
pub(crate) fn kind(s: &Session, o: &Obj) -> Result<String, CkError> {
    let Some(kt) = o.key_type else {
        return Ok("unknown".into());
    };
    if kt == KeyType::AES || kt == KeyType::GENERIC_SECRET {
        let name = if kt == KeyType::AES {
            "AES"
        } else {
            "GENERIC-SECRET"
        };
        let bits = s
            .get_attributes(o.handle, &[AttributeType::ValueLen])?
            .into_iter()
            .find_map(|a| match a {
                Attribute::ValueLen(n) => Some(usize::from(n) * 8),
                _ => None,
            });
        return Ok(match bits {
            Some(b) => format!("{name}-{b}"),
            None => name.into(),
        });
    }
    if kt == KeyType::RSA {
        let bits = s
            .get_attributes(o.handle, &[AttributeType::Modulus])?
            .into_iter()
            .find_map(|a| match a {
                Attribute::Modulus(m) => Some(modulus_bits(&m)),
                _ => None,
            });
        return Ok(match bits {
            Some(b) => format!("RSA-{b}"),
            None => "RSA".into(),
        });
    }
    if kt == KeyType::EC {
        let params = s
            .get_attributes(o.handle, &[AttributeType::EcParams])?
            .into_iter()
            .find_map(|a| match a {
                Attribute::EcParams(p) => Some(p),
                _ => None,
            });
        return Ok(match params.as_deref() {
            Some(p) if p == P256_OID => "EC-P256".into(),
            Some(p) if p == P384_OID => "EC-P384".into(),
            _ => "EC".into(),
        });
    }
    Ok(format!("{kt}"))
}

/// Bit length of a big-endian modulus.
pub(crate) fn modulus_bits(m: &[u8]) -> usize {
    let m = match m.iter().position(|b| *b != 0) {
        Some(i) => &m[i..],
        None => return 0,
    };
    m.len() * 8 - m[0].leading_zeros() as usize
}

/// The security attributes worth showing, as (name, value) pairs.
pub(crate) fn security_attributes(s: &Session, o: &Obj) -> Result<Vec<(String, String)>, CkError> {
    let mut wanted = vec![AttributeType::Token];
    if !o.is_public() {
        wanted.extend([
            AttributeType::Private,
            AttributeType::Sensitive,
            AttributeType::AlwaysSensitive,
            AttributeType::Extractable,
            AttributeType::NeverExtractable,
        ]);
    }
    wanted.extend([
        AttributeType::Encrypt,
        AttributeType::Decrypt,
        AttributeType::Sign,
        AttributeType::Verify,
        AttributeType::Wrap,
        AttributeType::Unwrap,
        AttributeType::Derive,
    ]);
    let mut usages = Vec::new();
    let mut out = Vec::new();
    for a in s.get_attributes(o.handle, &wanted)? {
        let (name, v) = match a {
            Attribute::Token(v) => ("token", v),
            Attribute::Private(v) => ("private", v),
            Attribute::Sensitive(v) => ("sensitive", v),
            Attribute::AlwaysSensitive(v) => ("always-sensitive", v),
            Attribute::Extractable(v) => ("extractable", v),
            Attribute::NeverExtractable(v) => ("never-extractable", v),
            Attribute::Encrypt(true) => {
                usages.push("encrypt");
                continue;
            }
            Attribute::Decrypt(true) => {
                usages.push("decrypt");
                continue;
            }
            Attribute::Sign(true) => {
                usages.push("sign");
                continue;
            }
            Attribute::Verify(true) => {
                usages.push("verify");
                continue;
            }
            Attribute::Wrap(true) => {
                usages.push("wrap");
                continue;
            }
            Attribute::Unwrap(true) => {
                usages.push("unwrap");
                continue;
            }
            Attribute::Derive(true) => {
                usages.push("derive");
                continue;
            }
            _ => continue,
        };
        out.push((name.to_owned(), v.to_string()));
    }
    out.push((
        "usage".into(),
        if usages.is_empty() {
            "none".into()
        } else {
            usages.join(",")
        },
    ));
    Ok(out)
}
