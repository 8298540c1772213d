//! Key URIs: `scheme:PATH?k=v&k=v`, with percent-decoding of the path parts and values.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};

/// A parsed key URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUri {
    /// Scheme before the first `:` (`raw-aes`, `raw-rsa`, `pkcs11`, `vault-transit`, `kmip`).
    pub scheme: String,
    /// Everything between `:` and `?`, still percent-encoded.
    pub path: String,
    /// Query attributes, percent-decoded.
    pub query: BTreeMap<String, String>,
}

/// Percent-decode one URI component into UTF-8.
pub fn decode(s: &str, what: &str) -> Result<String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| Error::Config(format!("{what} is not valid UTF-8 after percent-decoding")))
}

impl KeyUri {
    /// Parse `scheme:path?query`.
    pub fn parse(s: &str) -> Result<Self> {
        let (scheme, rest) = s.split_once(':').ok_or_else(|| {
            Error::Config(format!(
                "key URI {s:?} has no scheme (e.g. raw-aes:NS/NAME?file=PATH)"
            ))
        })?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, q),
            None => (rest, ""),
        };
        let mut map = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k, "query attribute")?;
            if map.insert(k.clone(), decode(v, &k)?).is_some() {
                return Err(Error::Config(format!(
                    "key URI repeats the attribute {k:?}"
                )));
            }
        }
        Ok(Self {
            scheme: scheme.to_ascii_lowercase(),
            path: path.to_owned(),
            query: map,
        })
    }

    /// Split a `NAMESPACE/NAME` path and percent-decode both parts.
    pub fn namespace_and_name(&self) -> Result<(String, String)> {
        let (ns, name) = self.path.split_once('/').ok_or_else(|| {
            Error::Config(format!(
                "{}: key URI path must be NAMESPACE/NAME, got {:?}",
                self.scheme, self.path
            ))
        })?;
        let ns = decode(ns, "key namespace")?;
        let name = decode(name, "key name")?;
        if ns.is_empty() || name.is_empty() {
            return Err(Error::Config(format!(
                "{}: key namespace and name must not be empty",
                self.scheme
            )));
        }
        if ns.starts_with("aws-kms") {
            return Err(Error::Config(
                "key namespaces starting with \"aws-kms\" are reserved for AWS KMS".into(),
            ));
        }
        Ok((ns, name))
    }

    /// Fail on query attributes other than `allowed`.
    pub fn only_attributes(&self, allowed: &[&str]) -> Result<()> {
        match self.query.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(Error::Config(format!(
                "{}: unknown key URI attribute {k:?} (allowed: {})",
                self.scheme,
                allowed.join(", ")
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes() {
        let u = KeyUri::parse("raw-aes:my%20ns/key%2F1?file=%2Ftmp%2Fa%20b.key").unwrap();
        assert_eq!(u.scheme, "raw-aes");
        assert_eq!(
            u.namespace_and_name().unwrap(),
            ("my ns".into(), "key/1".into())
        );
        assert_eq!(u.query["file"], "/tmp/a b.key");
        assert!(KeyUri::parse("nocolon").is_err());
        assert!(KeyUri::parse("raw-aes:ns/n?file=a&file=b").is_err());
        assert!(KeyUri::parse("raw-aes:aws-kms/n")
            .unwrap()
            .namespace_and_name()
            .is_err());
        assert!(KeyUri::parse("raw-aes:justname")
            .unwrap()
            .namespace_and_name()
            .is_err());
    }
}
