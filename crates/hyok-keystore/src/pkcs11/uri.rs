//! PKCS#11 URIs (RFC 7512) as hyok uses them:
//! `pkcs11:token=LABEL;object=KEYLABEL[;id=%01%02]?module-path=PATH&pin-source=file:PATH`.
//!
//! Path attributes (`;`-separated) select the token and the object; query attributes
//! (`&`-separated) say how to reach them. When `module-path` is absent the module comes from
//! `HYOK_PKCS11_MODULE`; when `pin-source` is absent the PIN comes from `HYOK_PKCS11_PIN`.
//! `pin-value` is refused: a PIN on the command line is visible in `ps` and shell history.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::uri::{decode, KeyUri};

/// Environment variable naming the PKCS#11 module when the URI has no `module-path`.
pub const MODULE_ENV: &str = "HYOK_PKCS11_MODULE";
/// Environment variable holding the user PIN when the URI has no `pin-source`.
pub const PIN_ENV: &str = "HYOK_PKCS11_PIN";

/// Provider id written into EDKs when the URI has no `namespace`.
pub const DEFAULT_NAMESPACE: &str = "pkcs11";

/// Hash of RSA-OAEP (and of its MGF1) for RSA keys in the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OaepHash {
    /// SHA-1 (the only one SoftHSM 2.6 supports).
    Sha1,
    /// SHA-256 (the default; AWS CloudHSM, Thales Luna).
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl OaepHash {
    /// Name as used in the `oaep-hash` URI attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }
}

impl FromStr for OaepHash {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().replace('-', "").as_str() {
            "sha1" => Self::Sha1,
            "sha256" => Self::Sha256,
            "sha384" => Self::Sha384,
            "sha512" => Self::Sha512,
            other => {
                return Err(Error::Config(format!(
                    "pkcs11: unknown oaep-hash {other:?} (use sha1, sha256, sha384 or sha512)"
                )))
            }
        })
    }
}

/// Where the user PIN comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum PinSource {
    /// `HYOK_PKCS11_PIN` (read when the token is opened).
    Env,
    /// `pin-source=file:PATH` (or a plain path): the first line of the file.
    File(PathBuf),
}

impl fmt::Debug for PinSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env => write!(f, "env {PIN_ENV}"),
            Self::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

/// Largest PIN file read (PKCS#11 PINs are short; a line ending may follow).
const MAX_PIN_FILE: u64 = 1024;

impl PinSource {
    /// Read the PIN. `None` when the environment variable is unset.
    pub fn read(&self) -> Result<Option<Zeroizing<String>>> {
        match self {
            Self::Env => Ok(std::env::var(PIN_ENV).ok().map(Zeroizing::new)),
            Self::File(p) => {
                let bytes = crate::secret_file::read(
                    p,
                    "pkcs11: PIN file",
                    MAX_PIN_FILE,
                    crate::secret_file::Secrecy::Secret,
                )
                .map_err(|e| match e {
                    // A name without a `/` may be a PIN typed as `pin-source=1234`: never
                    // echo it. Real paths (`/run/secrets/pin`, `./pin`) are shown.
                    Error::Config(m) if !p.as_os_str().as_encoded_bytes().contains(&b'/') => {
                        Error::Config(m.replace(
                            &p.display().to_string(),
                            "that pin-source names (not shown, in case it is a PIN)",
                        ))
                    }
                    other => other,
                })?;
                let text = Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
                let line = text.lines().next().unwrap_or("");
                Ok(Some(Zeroizing::new(line.trim_end_matches('\r').to_owned())))
            }
        }
    }
}

/// A parsed `pkcs11:` URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token=`: the token label.
    pub token: Option<String>,
    /// `serial=`: the token serial number.
    pub serial: Option<String>,
    /// `slot-id=`: the slot number.
    pub slot_id: Option<u64>,
    /// `object=`: the key label.
    pub object: Option<String>,
    /// `id=`: the key's CKA_ID bytes.
    pub id: Option<Vec<u8>>,
    /// `type=`: `secret-key`, `private` or `public` (a filter; optional).
    pub object_type: Option<String>,
    /// The module to load (`module-path=` or `HYOK_PKCS11_MODULE`); `None` if neither is set.
    pub module_path: Option<PathBuf>,
    /// Where the PIN comes from.
    pub pin_source: PinSource,
    /// RSA-OAEP hash (`oaep-hash=`, default SHA-256).
    pub oaep_hash: OaepHash,
    /// Whether `oaep-hash` was given.
    pub oaep_hash_given: bool,
    /// Provider id written into EDKs (`namespace=`, default `pkcs11`).
    pub namespace: String,
    /// Sessions kept open per token (`pool-size=`, default 16).
    pub pool_size: Option<usize>,
    /// Further tokens holding the same key, after the one `token`/`serial`/`slot_id` select
    /// (`token=A,B`, `serial=S1,S2` or `slot-id=1,2`: one of them may list several values).
    /// Empty for a single token. See [`super::slots`].
    pub more_tokens: Vec<TokenSelector>,
    /// `cooldown=SECONDS`: how long a failed token is skipped (several tokens only).
    pub cool_down: Option<std::time::Duration>,
}

/// Which token one member of a several-token URI is: the `token`, `serial` and `slot-id`
/// attributes as they apply to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSelector {
    /// Token label.
    pub token: Option<String>,
    /// Token serial number.
    pub serial: Option<String>,
    /// Slot number.
    pub slot_id: Option<u64>,
}

const PATH_ATTRS: [&str; 6] = ["token", "serial", "slot-id", "object", "id", "type"];
const QUERY_ATTRS: [&str; 7] = [
    "module-path",
    "cooldown",
    "pin-source",
    "oaep-hash",
    "namespace",
    "pool-size",
    "pin-value",
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Percent-encode a URI attribute value (everything but RFC 3986 unreserved characters).
pub(crate) fn pct(s: &[u8]) -> String {
    let mut out = String::new();
    for &b in s {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Pkcs11Uri {
    /// Parse from a generic key URI (scheme `pkcs11`).
    pub fn from_key_uri(uri: &KeyUri) -> Result<Self> {
        if uri.scheme != "pkcs11" {
            return Err(Error::Config(format!(
                "not a pkcs11: URI (scheme {:?})",
                uri.scheme
            )));
        }
        if uri.query.contains_key("pin-value") {
            return Err(Error::Config(
                "pkcs11: pin-value is refused: a PIN in a URI ends up in shell history, `ps` \
                 output and logs; use pin-source=file:PATH or the HYOK_PKCS11_PIN variable"
                    .into(),
            ));
        }
        if let Some(k) = uri
            .query
            .keys()
            .find(|k| !QUERY_ATTRS.contains(&k.as_str()))
        {
            return Err(Error::Config(format!(
                "pkcs11: unknown query attribute {k:?} (allowed: module-path, pin-source, \
                 oaep-hash, namespace, pool-size)"
            )));
        }
        let mut out = Self {
            token: None,
            serial: None,
            slot_id: None,
            object: None,
            id: None,
            object_type: None,
            module_path: None,
            pin_source: PinSource::Env,
            oaep_hash: OaepHash::Sha256,
            oaep_hash_given: false,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            pool_size: None,
            more_tokens: Vec::new(),
            cool_down: None,
        };
        // `token`, `serial` and `slot-id` values, split at literal commas (a comma inside a
        // label is written %2C); at most one of them may list several tokens.
        let mut lists: Vec<(&str, Vec<String>)> = Vec::new();
        for part in uri.path.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                Error::Config(format!(
                    "pkcs11: path attribute {part:?} has no value (expected NAME=VALUE)"
                ))
            })?;
            let k = decode(k, "pkcs11 attribute name")?;
            if k == "pin-value" {
                return Err(Error::Config(
                    "pkcs11: pin-value is refused: a PIN in a URI ends up in shell history; use \
                     pin-source=file:PATH or HYOK_PKCS11_PIN"
                        .into(),
                ));
            }
            let dup = || Error::Config(format!("pkcs11: attribute {k:?} given twice"));
            match k.as_str() {
                name @ ("token" | "serial" | "slot-id") => {
                    let name = match name {
                        "token" => "token",
                        "serial" => "serial",
                        _ => "slot-id",
                    };
                    if lists.iter().any(|(n, _)| *n == name) {
                        return Err(dup());
                    }
                    let mut values = Vec::new();
                    for piece in v.split(',') {
                        let d = decode(piece, name)?;
                        if d.is_empty() {
                            return Err(Error::Config(format!(
                                "pkcs11: {name}={v:?} has an empty entry"
                            )));
                        }
                        if name == "slot-id" && d.parse::<u64>().is_err() {
                            return Err(Error::Config(format!(
                                "pkcs11: slot-id {v:?} is not a number"
                            )));
                        }
                        if values.contains(&d) {
                            return Err(Error::Config(format!(
                                "pkcs11: {name} {d:?} is listed twice"
                            )));
                        }
                        values.push(d);
                    }
                    lists.push((name, values));
                }
                "object" => {
                    if out.object.replace(decode(v, "object")?).is_some() {
                        return Err(dup());
                    }
                }
                "id" => {
                    let bytes = percent_encoding::percent_decode_str(v).collect::<Vec<u8>>();
                    if out.id.replace(bytes).is_some() {
                        return Err(dup());
                    }
                }
                "type" => {
                    let t = decode(v, "type")?;
                    if !["secret-key", "private", "public"].contains(&t.as_str()) {
                        return Err(Error::Config(format!(
                            "pkcs11: type={t:?} is not a key type hyok uses (secret-key, private, public)"
                        )));
                    }
                    out.object_type = Some(t);
                }
                _ => {
                    return Err(Error::Config(format!(
                        "pkcs11: unknown path attribute {k:?} (allowed: {})",
                        PATH_ATTRS.join(", ")
                    )))
                }
            }
        }
        let several: Vec<&str> = lists
            .iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(n, _)| *n)
            .collect();
        if several.len() > 1 {
            return Err(Error::Config(format!(
                "pkcs11: only one of token=, serial= and slot-id= may list several tokens \
                 ({} both do)",
                several.join(" and ")
            )));
        }
        let count = lists.iter().map(|(_, v)| v.len()).max().unwrap_or(1);
        if count > crate::endpoints::MAX_ENDPOINTS {
            return Err(Error::Config(format!(
                "pkcs11: {count} tokens listed; at most {} per key",
                crate::endpoints::MAX_ENDPOINTS
            )));
        }
        let mut selectors = vec![
            TokenSelector {
                token: None,
                serial: None,
                slot_id: None,
            };
            count
        ];
        for (name, values) in &lists {
            for (i, sel) in selectors.iter_mut().enumerate() {
                let v = values[if values.len() > 1 { i } else { 0 }].clone();
                match *name {
                    "token" => sel.token = Some(v),
                    "serial" => sel.serial = Some(v),
                    _ => sel.slot_id = v.parse().ok(),
                }
            }
        }
        let first = selectors.remove(0);
        (out.token, out.serial, out.slot_id) = (first.token, first.serial, first.slot_id);
        out.more_tokens = selectors;
        if let Some(c) = uri.query.get("cooldown") {
            out.cool_down = Some(crate::endpoints::cool_down_attr(c, "pkcs11")?);
        }
        if out.token.is_none() && out.serial.is_none() && out.slot_id.is_none() {
            return Err(Error::Config(
                "pkcs11: the URI names no token (add token=LABEL, e.g. pkcs11:token=my-hsm;object=my-key)"
                    .into(),
            ));
        }
        out.module_path = match uri.query.get("module-path") {
            Some(p) => Some(PathBuf::from(p)),
            None => std::env::var_os(MODULE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        };
        if let Some(src) = uri.query.get("pin-source") {
            let path = src.strip_prefix("file:").unwrap_or(src);
            if path.is_empty() {
                return Err(Error::Config("pkcs11: pin-source names no file".into()));
            }
            out.pin_source = PinSource::File(PathBuf::from(path));
        }
        if let Some(h) = uri.query.get("oaep-hash") {
            out.oaep_hash = h.parse()?;
            out.oaep_hash_given = true;
        }
        if let Some(ns) = uri.query.get("namespace") {
            if ns.is_empty() || ns.starts_with("aws-kms") {
                return Err(Error::Config(
                    "pkcs11: namespace must be non-empty and not start with \"aws-kms\"".into(),
                ));
            }
            out.namespace = ns.clone();
        }
        if let Some(n) = uri.query.get("pool-size") {
            let n = n
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1024).contains(n))
                .ok_or_else(|| {
                    Error::Config(format!("pkcs11: pool-size {n:?} must be 1 to 1024"))
                })?;
            out.pool_size = Some(n);
        }
        Ok(out)
    }

    /// Parse a URI string.
    pub fn parse(s: &str) -> Result<Self> {
        Self::from_key_uri(&KeyUri::parse(s)?)
    }

    /// The module path, or a configuration error that says how to give one.
    pub fn module(&self) -> Result<PathBuf> {
        self.module_path.clone().ok_or_else(|| {
            Error::Config(format!(
                "pkcs11: no PKCS#11 module: set {MODULE_ENV} or add ?module-path=PATH to the URI"
            ))
        })
    }

    /// The object label, or a configuration error.
    pub fn object_label(&self) -> Result<&str> {
        self.object.as_deref().ok_or_else(|| {
            Error::Config(format!(
                "{}: the URI names no key (add ;object=LABEL)",
                self.token_display()
            ))
        })
    }

    /// The token part as text (`pkcs11:token=…`; several tokens as `token=A,B`), for
    /// messages.
    pub fn token_display(&self) -> String {
        format!("pkcs11:{}", self.selectors_display())
    }

    /// The selectors of every token, in order (one for a single-token URI).
    pub fn selectors(&self) -> Vec<TokenSelector> {
        let mut out = vec![TokenSelector {
            token: self.token.clone(),
            serial: self.serial.clone(),
            slot_id: self.slot_id,
        }];
        out.extend(self.more_tokens.iter().cloned());
        out
    }

    /// One URI per token of a several-token URI, in order (each with one token and
    /// everything else the same); the URI itself for a single token.
    pub fn members(&self) -> Vec<Self> {
        self.selectors()
            .into_iter()
            .map(|sel| Self {
                token: sel.token,
                serial: sel.serial,
                slot_id: sel.slot_id,
                more_tokens: Vec::new(),
                ..self.clone()
            })
            .collect()
    }

    /// `token=A;serial=S` (several tokens: `token=A,B`), without the scheme.
    pub fn selectors_display(&self) -> String {
        let sels = self.selectors();
        let join = |f: &dyn Fn(&TokenSelector) -> Option<String>| -> Option<String> {
            let vals: Vec<String> = sels.iter().filter_map(f).collect();
            if vals.is_empty() {
                return None;
            }
            // An attribute that is the same for every token is written once.
            if vals.iter().all(|v| *v == vals[0]) {
                return Some(vals[0].clone());
            }
            Some(vals.join(","))
        };
        let mut parts = Vec::new();
        if let Some(t) = join(&|s| s.token.as_ref().map(|t| pct(t.as_bytes()))) {
            parts.push(format!("token={t}"));
        }
        if let Some(s) = join(&|s| s.serial.as_ref().map(|t| pct(t.as_bytes()))) {
            parts.push(format!("serial={s}"));
        }
        if let Some(n) = join(&|s| s.slot_id.map(|n| n.to_string())) {
            parts.push(format!("slot-id={n}"));
        }
        parts.join(";")
    }

    /// The URI without secrets and without how-to-reach attributes: token, object, id and
    /// the attributes that change what the EDK looks like. Safe for logs and audit records.
    pub fn display(&self) -> String {
        let mut s = self.token_display();
        if let Some(o) = &self.object {
            s.push_str(&format!(";object={}", pct(o.as_bytes())));
        }
        if let Some(id) = &self.id {
            s.push_str(";id=");
            for b in id {
                s.push_str(&format!("%{b:02x}"));
            }
        }
        let mut q = Vec::new();
        if self.namespace != DEFAULT_NAMESPACE {
            q.push(format!("namespace={}", pct(self.namespace.as_bytes())));
        }
        if self.oaep_hash_given {
            q.push(format!("oaep-hash={}", self.oaep_hash.as_str()));
        }
        if !q.is_empty() {
            s.push('?');
            s.push_str(&q.join("&"));
        }
        s
    }

    /// The id as hex, for messages.
    pub fn id_hex(&self) -> Option<String> {
        self.id.as_deref().map(hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc7512_attributes() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=my%20hsm;object=kek-1;id=%01%02?module-path=/x/lib.so&pin-source=file:/run/pin&oaep-hash=sha1&namespace=bank",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("my hsm"));
        assert_eq!(u.object.as_deref(), Some("kek-1"));
        assert_eq!(u.id.as_deref(), Some(&[1u8, 2][..]));
        assert_eq!(u.module_path, Some(PathBuf::from("/x/lib.so")));
        assert_eq!(u.pin_source, PinSource::File(PathBuf::from("/run/pin")));
        assert_eq!(u.oaep_hash, OaepHash::Sha1);
        assert_eq!(u.namespace, "bank");
        assert_eq!(
            u.display(),
            "pkcs11:token=my%20hsm;object=kek-1;id=%01%02?namespace=bank&oaep-hash=sha1"
        );
    }

    #[test]
    fn refuses_pin_value_and_unknown_attributes() {
        for bad in [
            "pkcs11:token=t;object=k?pin-value=1234",
            "pkcs11:token=t;object=k;pin-value=1234",
        ] {
            let e = Pkcs11Uri::parse(bad).unwrap_err().to_string();
            assert!(e.contains("pin-value is refused"), "{e}");
            assert!(!e.contains("1234"), "{e}");
        }
        assert!(Pkcs11Uri::parse("pkcs11:token=t;colour=red").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:token=t?colour=red").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:object=k").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:token=t;token=u").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:token=t?oaep-hash=md5").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:token=t?pool-size=0").is_err());
    }

    #[test]
    fn several_tokens_are_one_list() {
        let u = Pkcs11Uri::parse("pkcs11:token=hsm-a,hsm%2Cb;object=kek?cooldown=5").unwrap();
        let m = u.members();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].token.as_deref(), Some("hsm-a"));
        assert_eq!(m[1].token.as_deref(), Some("hsm,b"));
        assert!(m
            .iter()
            .all(|m| m.more_tokens.is_empty() && m.object == u.object));
        assert_eq!(m[1].selectors_display(), "token=hsm%2Cb");
        assert_eq!(u.display(), "pkcs11:token=hsm-a,hsm%2Cb;object=kek");
        assert_eq!(u.cool_down, Some(std::time::Duration::from_secs(5)));
        // One list; the other attributes apply to every token.
        let u = Pkcs11Uri::parse("pkcs11:token=part;serial=11,22;object=k").unwrap();
        assert_eq!(u.display(), "pkcs11:token=part;serial=11,22;object=k");
        let m = u.members();
        assert_eq!(m[1].token.as_deref(), Some("part"));
        assert_eq!(m[1].serial.as_deref(), Some("22"));
        let u = Pkcs11Uri::parse("pkcs11:slot-id=3,4;object=k").unwrap();
        assert_eq!(u.members()[1].slot_id, Some(4));
        assert!(Pkcs11Uri::parse("pkcs11:token=a;object=k")
            .unwrap()
            .more_tokens
            .is_empty());
        for (bad, why) in [
            ("pkcs11:token=a,b;serial=1,2;object=k", "only one of"),
            ("pkcs11:token=a,a;object=k", "listed twice"),
            ("pkcs11:token=a,,b;object=k", "empty entry"),
            ("pkcs11:slot-id=1,x;object=k", "not a number"),
            ("pkcs11:token=a,b;object=k?cooldown=0", "cooldown"),
        ] {
            let e = Pkcs11Uri::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let many = (0..17)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(Pkcs11Uri::parse(&format!("pkcs11:token={many};object=k")).is_err());
    }

    #[test]
    fn pin_files_are_bounded_and_devices_refused() {
        let e = PinSource::File(PathBuf::from("/dev/zero"))
            .read()
            .unwrap_err();
        assert!(
            matches!(&e, Error::Config(m) if m.contains("is a device")),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let long = dir.path().join("long");
        std::fs::write(&long, vec![b'1'; MAX_PIN_FILE as usize + 1]).unwrap();
        let e = PinSource::File(long).read().unwrap_err();
        assert!(
            matches!(&e, Error::Config(m) if m.contains("larger than")),
            "{e}"
        );
        let ok = dir.path().join("ok");
        std::fs::write(&ok, "1234\n").unwrap();
        let pin = PinSource::File(ok).read().unwrap().unwrap();
        assert_eq!(pin.as_str(), "1234");
    }
}
