//! The one registry of key-store schemes. A backend is its module plus one line in
//! [`Registry::builtin`]; opening keys, key administration, "supported schemes" messages and
//! the `--key` help text all read the registry, so nothing else names the schemes.

use std::sync::Arc;

use crate::admin::KeyAdmin;
use crate::error::{Error, Result};
use crate::store::SharedKeyStore;
use crate::uri::KeyUri;

/// Opens a key from its parsed URI.
pub type OpenKey = fn(&KeyUri) -> Result<SharedKeyStore>;
/// Opens the key administration of the store a parsed URI names.
pub type OpenAdmin = fn(&KeyUri) -> Result<Box<dyn KeyAdmin>>;

/// One key-store scheme: how to open its keys and, for stores that hold keys themselves,
/// their administration.
#[derive(Clone, Copy, Debug)]
pub struct Scheme {
    /// The URI scheme, lowercase (`raw-aes`, `pkcs11` …).
    pub name: &'static str,
    /// The URI's shape, for help texts (`raw-aes:NAMESPACE/NAME?file=PATH`).
    pub syntax: &'static str,
    /// Where the key material and secrets come from, in a few words, for help texts.
    pub note: &'static str,
    /// Open a key.
    pub open: OpenKey,
    /// Key administration (`hyok key new|list|rotate|destroy`), for stores that hold their
    /// keys (HSMs, servers); `None` for local key files.
    pub admin: Option<OpenAdmin>,
}

/// The key-store schemes a program can use.
#[derive(Clone, Debug)]
pub struct Registry {
    schemes: Vec<Scheme>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Registry {
    /// The schemes compiled into this build: one line per backend.
    pub fn builtin() -> Self {
        let schemes = vec![
            crate::raw::AES_SCHEME,
            crate::raw::RSA_SCHEME,
            #[cfg(feature = "pkcs11")]
            crate::pkcs11::REGISTRATION,
            #[cfg(feature = "vault")]
            crate::vault::REGISTRATION,
            #[cfg(feature = "kmip")]
            crate::kmip::REGISTRATION,
            crate::pq::SCHEME,
        ];
        Self { schemes }
    }

    /// Add a scheme (or replace one of the same name).
    pub fn with(mut self, scheme: Scheme) -> Self {
        self.schemes.retain(|s| s.name != scheme.name);
        self.schemes.push(scheme);
        self
    }

    /// Every scheme, in registration order.
    pub fn schemes(&self) -> &[Scheme] {
        &self.schemes
    }

    /// Scheme names, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.schemes.iter().map(|s| s.name).collect()
    }

    /// The scheme called `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&Scheme> {
        self.schemes.iter().find(|s| s.name == name)
    }

    /// Parse a key URI whose scheme this registry knows.
    pub fn parse(&self, uri: &str) -> Result<(&Scheme, KeyUri)> {
        let parsed = KeyUri::parse(uri)?;
        match self.get(&parsed.scheme) {
            Some(s) => Ok((s, parsed)),
            None => Err(Error::Config(format!(
                "unknown key URI scheme {:?} (supported: {})",
                parsed.scheme,
                self.names().join(", ")
            ))),
        }
    }

    /// Open the key a URI names. Opening a PKCS#11 key loads the module, logs in and finds
    /// the key (it blocks); network stores connect on first use, not here.
    pub fn open_key(&self, uri: &str) -> Result<SharedKeyStore> {
        let (scheme, parsed) = self.parse(uri)?;
        (scheme.open)(&parsed)
    }

    /// Schemes whose stores hold their keys (key administration works on them).
    pub fn store_schemes(&self) -> Vec<&'static str> {
        self.schemes
            .iter()
            .filter(|s| s.admin.is_some())
            .map(|s| s.name)
            .collect()
    }

    /// Whether `target` names a key in a key store (rather than a local file).
    pub fn is_store_uri(&self, target: &str) -> bool {
        target.split_once(':').is_some_and(|(s, _)| {
            self.get(&s.to_ascii_lowercase())
                .is_some_and(|s| s.admin.is_some())
        })
    }

    /// The key administration of the store a URI names.
    pub fn open_admin(&self, uri: &str) -> Result<(Box<dyn KeyAdmin>, KeyUri)> {
        let (scheme, parsed) = self.parse(uri)?;
        match scheme.admin {
            Some(open) => Ok((open(&parsed)?, parsed)),
            None => Err(Error::Config(format!(
                "{}: keys are local files, not kept in a key store; key management works on {}",
                scheme.name,
                self.store_schemes().join(", ")
            ))),
        }
    }

    /// One line per scheme: its syntax and note (the `--key` help text).
    pub fn help(&self) -> String {
        self.schemes
            .iter()
            .map(|s| format!("`{}` ({})", s.syntax, s.note))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Wrap a concrete key store for [`Scheme::open`].
pub(crate) fn shared<K: crate::store::KeyStore + 'static>(k: K) -> SharedKeyStore {
    Arc::new(k)
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use hyok_core::{DataKey, EncryptedDataKey};

    use super::*;
    use crate::admin::{Created, KeyKind, KeyListing};
    use crate::store::{KeyInfo, KeyStore, WrapRequest};

    #[derive(Debug)]
    struct Toy(KeyInfo);

    #[async_trait]
    impl KeyStore for Toy {
        fn info(&self) -> &KeyInfo {
            &self.0
        }

        async fn wrap(&self, _: &DataKey, _: WrapRequest<'_>) -> Result<EncryptedDataKey> {
            Err(Error::Config("toy keys do not wrap".into()))
        }

        async fn unwrap(
            &self,
            _: &EncryptedDataKey,
            _: WrapRequest<'_>,
        ) -> Result<Option<DataKey>> {
            Ok(None)
        }
    }

    struct ToyAdmin;

    #[async_trait]
    impl KeyAdmin for ToyAdmin {
        async fn create(&self, uri: &KeyUri, _: KeyKind) -> Result<Created> {
            Err(Error::Config(format!("toy: cannot create {}", uri.path)))
        }

        async fn list(&self, _: &KeyUri) -> Result<Vec<KeyListing>> {
            Ok(Vec::new())
        }

        async fn destroy(&self, _: &KeyUri) -> Result<String> {
            Err(Error::Config("toy: nothing to destroy".into()))
        }
    }

    fn open_toy(uri: &KeyUri) -> Result<SharedKeyStore> {
        Ok(shared(Toy(KeyInfo {
            backend: "toy",
            uri: format!("toy:{}", uri.path).into(),
            provider_id: "toy".into(),
            key_name: uri.path.clone().into(),
        })))
    }

    const TOY: Scheme = Scheme {
        name: "toy",
        syntax: "toy:NAME",
        note: "a test scheme",
        open: open_toy,
        admin: Some(|_| Ok(Box::new(ToyAdmin))),
    };

    #[test]
    fn a_scheme_added_to_the_registry_is_seen_everywhere() {
        let builtin = Registry::builtin();
        let e = builtin.open_key("toy:k1").unwrap_err().to_string();
        assert!(e.contains("unknown key URI scheme \"toy\""), "{e}");
        assert!(!e.contains("toy,") && !e.ends_with("toy)"), "{e}");

        let r = Registry::builtin().with(TOY);
        // URI parsing and opening.
        let k = r.open_key("TOY:k1").unwrap();
        assert_eq!(&*k.info().uri, "toy:k1");
        let e = r.open_key("nope:x").unwrap_err().to_string();
        assert!(e.ends_with(", toy)"), "{e}");
        // Key administration: reachable, and its errors are the scheme's own.
        assert!(r.is_store_uri("toy:k1"));
        let (admin, uri) = r.open_admin("toy:k1").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let e = rt
            .block_on(admin.create(&uri, KeyKind::Aes256))
            .unwrap_err();
        assert_eq!(e.to_string(), "toy: cannot create k1");
        assert!(r.store_schemes().contains(&"toy"));
        // Help text.
        assert!(
            r.help().contains("`toy:NAME` (a test scheme)"),
            "{}",
            r.help()
        );
        assert!(!builtin.help().contains("toy:"));
    }

    #[test]
    fn local_key_schemes_have_no_administration() {
        let r = Registry::builtin();
        assert!(!r.is_store_uri("raw-aes:ns/k?file=x"));
        let e = r
            .open_admin("raw-aes:ns/k?file=x")
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("raw-aes: keys are local files"), "{e}");
    }
}
