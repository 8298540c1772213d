//! # hyok-keystore
//!
//! Key stores behind one trait, [`KeyStore`]: wrap and unwrap data keys with a key that the
//! customer holds. Backends are modules: [`raw`] (local raw AES and RSA keys, compatible
//! with the ESDK raw keyrings) and `pkcs11` (HSMs; feature `pkcs11`, on by default).
//! [`cache`] holds the bounded data-key cache that can sit in front of any of them. [`Keyring`] combines keys (generator + extra wrapping keys)
//! and [`KeyManager`] is the single place every key use passes, where the data-key cache
//! and the audit sink observe it.
//!
//! [`open_key`] builds a key store from a key URI.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
pub mod cache;
mod error;
mod keyring;
pub mod observe;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod raw;
mod store;
pub mod uri;

use std::sync::Arc;

pub use error::{Error, Result};
pub use keyring::{KeyManager, Keyring, OpLabel};
pub use store::{KeyInfo, KeyStore, SharedKeyStore, WrapRequest};
pub use uri::KeyUri;

/// Open the key store a URI names (`raw-aes:…`, `raw-rsa:…`, `pkcs11:…`). Opening a
/// PKCS#11 key loads the module, logs in and finds the key (it blocks).
pub fn open_key(uri: &str) -> Result<SharedKeyStore> {
    let parsed = KeyUri::parse(uri)?;
    match parsed.scheme.as_str() {
        "raw-aes" => Ok(Arc::new(raw::RawAesKey::from_uri(&parsed)?)),
        "raw-rsa" => Ok(Arc::new(raw::RawRsaKey::from_uri(&parsed)?)),
        #[cfg(feature = "pkcs11")]
        "pkcs11" => Ok(Arc::new(pkcs11::Pkcs11Key::open(
            &pkcs11::Pkcs11Uri::from_key_uri(&parsed)?,
        )?)),
        other => Err(Error::Config(format!(
            "unknown key URI scheme {other:?} (supported: raw-aes, raw-rsa{})",
            if cfg!(feature = "pkcs11") {
                ", pkcs11"
            } else {
                ""
            }
        ))),
    }
}
