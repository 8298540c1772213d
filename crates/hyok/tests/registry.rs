//! A key-store scheme added through the registry alone reaches everything a session does
//! with keys: opening keys from URIs, key administration, and the help text.

use std::sync::Arc;

use async_trait::async_trait;
use hyok::keys::{Created, KeyAdmin, KeyKind, KeyListing, KeyUri, Registry, Scheme};
use hyok::{KeySource, Session, SessionConfig};
use hyok_core::{DataKey, EncryptedDataKey};
use hyok_keystore::{KeyInfo, KeyStore, SharedKeyStore, WrapRequest};

#[derive(Debug)]
struct Toy(KeyInfo);

#[async_trait]
impl KeyStore for Toy {
    fn info(&self) -> &KeyInfo {
        &self.0
    }

    async fn wrap(
        &self,
        _: &DataKey,
        _: WrapRequest<'_>,
    ) -> hyok_keystore::Result<EncryptedDataKey> {
        Err(hyok_keystore::Error::Config("toy keys do not wrap".into()))
    }

    async fn unwrap(
        &self,
        _: &EncryptedDataKey,
        _: WrapRequest<'_>,
    ) -> hyok_keystore::Result<Option<DataKey>> {
        Ok(None)
    }
}

struct ToyAdmin;

#[async_trait]
impl KeyAdmin for ToyAdmin {
    async fn create(&self, uri: &KeyUri, _: KeyKind) -> hyok_keystore::Result<Created> {
        Err(hyok_keystore::Error::Config(format!(
            "toy: cannot create {}",
            uri.path
        )))
    }

    async fn list(&self, _: &KeyUri) -> hyok_keystore::Result<Vec<KeyListing>> {
        Ok(Vec::new())
    }

    async fn destroy(&self, _: &KeyUri) -> hyok_keystore::Result<String> {
        Err(hyok_keystore::Error::Config(
            "toy: nothing to destroy".into(),
        ))
    }
}

fn open_toy(uri: &KeyUri) -> hyok_keystore::Result<SharedKeyStore> {
    Ok(Arc::new(Toy(KeyInfo {
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
fn a_toy_scheme_reaches_keys_administration_and_help() {
    let config = SessionConfig::default()
        .registry(Registry::builtin().with(TOY))
        .keys(KeySource::Uris(vec!["toy:k1".into()]));
    let session = Session::open(config).unwrap();
    // URI parsing and opening.
    let keys = session.key_manager().unwrap();
    assert_eq!(&*keys.keyring().keys()[0].info().uri, "toy:k1");
    // Key administration, with the scheme's own errors.
    assert!(session.is_store_uri("toy:k1"));
    let (admin, uri) = session.key_admin("toy:k1").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt
        .block_on(admin.create(&uri, KeyKind::Aes256))
        .unwrap_err();
    assert_eq!(e.to_string(), "toy: cannot create k1");
    // Help text and "supported" messages.
    assert!(session
        .registry()
        .help()
        .contains("`toy:NAME` (a test scheme)"));
    let e = session.key_admin("nope:x").err().unwrap().to_string();
    // The "supported" list is the registry's, the added scheme last.
    let names = session.registry().names();
    assert_eq!(names.last(), Some(&"toy"));
    assert!(e.ends_with(&format!("{})", names.join(", "))), "{e}");

    // Without the registry line, the same URI is unknown.
    let plain =
        Session::open(SessionConfig::default().keys(KeySource::Uris(vec!["toy:k1".into()])))
            .unwrap();
    let e = plain.key_manager().unwrap_err().to_string();
    assert!(e.starts_with("unknown key URI scheme \"toy\""), "{e}");
}
