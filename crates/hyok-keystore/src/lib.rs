//! # hyok-keystore
//!
//! Key stores behind one trait, [`KeyStore`]: wrap and unwrap data keys with a key that the
//! customer holds. Backends are modules: [`raw`] (local raw AES and RSA keys, compatible
//! with the ESDK raw keyrings), `pkcs11` (HSMs), `vault` (HashiCorp Vault / OpenBao Transit)
//! and `kmip` (KMIP 1.4 servers over mutual TLS), each behind a default feature. [`cache`]
//! holds the bounded data-key cache that can sit in front of any of them. [`Keyring`]
//! combines keys (generator + extra wrapping keys)
//! and [`KeyManager`] is the single place every key use passes, where the data-key cache
//! and the audit sink observe it.
//!
//! [`open_key`] builds a key store from a key URI; [`admin::open_admin`] the key management
//! of a store.
//!
//! Features (all but `testing` on by default):
//! - `vault`: Vault/OpenBao Transit over HTTPS (reqwest + rustls).
//! - `kmip`: KMIP over mutual TLS (tokio-rustls), with its own TTLV codec.
//! - `testing`: [`testing`](crate::testing), the conformance scenarios every key store runs.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
#[cfg(feature = "branch")]
pub mod branch;
pub mod cache;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod keyring;
#[cfg(feature = "kmip")]
pub mod kmip;
#[cfg(feature = "net")]
pub mod net;
pub mod observe;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod raw;
mod secret_file;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod threshold;
pub mod uri;
#[cfg(feature = "vault")]
pub mod vault;

use std::sync::Arc;

pub use error::{Error, Result};
pub use keyring::{KeyManager, Keyring, OpLabel};
pub use store::{KeyInfo, KeyStore, SharedKeyStore, WrapRequest};
pub use uri::KeyUri;

/// Open the key store a URI names (`raw-aes:…`, `raw-rsa:…`, `pkcs11:…`,
/// `vault-transit:…`, `kmip://…`). Opening a PKCS#11 key loads the module, logs in and finds
/// the key (it blocks); network stores connect on first use, not here.
pub fn open_key(uri: &str) -> Result<SharedKeyStore> {
    let parsed = KeyUri::parse(uri)?;
    match parsed.scheme.as_str() {
        "raw-aes" => Ok(Arc::new(raw::RawAesKey::from_uri(&parsed)?)),
        "raw-rsa" => Ok(Arc::new(raw::RawRsaKey::from_uri(&parsed)?)),
        #[cfg(feature = "pkcs11")]
        "pkcs11" => Ok(Arc::new(pkcs11::Pkcs11Key::open(
            &pkcs11::Pkcs11Uri::from_key_uri(&parsed)?,
        )?)),
        #[cfg(feature = "vault")]
        "vault-transit" => Ok(Arc::new(vault::VaultTransit::from_uri(&parsed)?)),
        #[cfg(feature = "kmip")]
        "kmip" => Ok(Arc::new(kmip::KmipKey::from_uri(&parsed)?)),
        other => Err(Error::Config(format!(
            "unknown key URI scheme {other:?} (supported: {})",
            supported_schemes().join(", ")
        ))),
    }
}

/// Key URI schemes this build can open.
pub fn supported_schemes() -> Vec<&'static str> {
    let mut v = vec!["raw-aes", "raw-rsa"];
    if cfg!(feature = "pkcs11") {
        v.push("pkcs11");
    }
    if cfg!(feature = "vault") {
        v.push("vault-transit");
    }
    if cfg!(feature = "kmip") {
        v.push("kmip");
    }
    v
}
