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
//! [`Registry`] knows every key-store scheme: it builds a key store from a key URI
//! ([`open_key`]) and opens the key management of a store ([`admin::open_admin`]).
//!
//! Features (all but `testing` on by default):
//! - `vault`: Vault/OpenBao Transit over HTTPS (reqwest + rustls).
//! - `kmip`: KMIP over mutual TLS (tokio-rustls), with its own TTLV codec.
//! - `testing`: [`testing`](crate::testing), the conformance scenarios every key store runs.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
pub mod aead;
#[cfg(feature = "branch")]
pub mod branch;
pub mod cache;
#[cfg(feature = "net")]
pub mod endpoints;
mod error;
pub mod fips;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
mod keyring;
#[cfg(feature = "kmip")]
pub mod kmip;
#[cfg(feature = "net")]
pub mod net;
pub mod observe;
pub mod pace;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod pq;
pub mod raw;
pub mod registry;
mod secret_file;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod threshold;
pub mod uri;
#[cfg(feature = "vault")]
pub mod vault;

pub use error::{Error, ErrorClass, Result};
pub use keyring::{KeyManager, Keyring, OpLabel};
pub use registry::{Registry, Scheme};
pub use store::{
    edk_key_name, edk_label, KeyGroups, KeyInfo, KeyStore, SharedKeyStore, WrapRequest,
};
pub use uri::KeyUri;

/// Open the key store a URI names, with the schemes of this build
/// ([`Registry::builtin`]).
pub fn open_key(uri: &str) -> Result<SharedKeyStore> {
    Registry::builtin().open_key(uri)
}
