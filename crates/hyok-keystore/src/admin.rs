//! Key lifecycle in a key store: create, list, rotate, destroy. Each backend that can
//! manage keys implements [`KeyAdmin`]; [`open_admin`] picks it from a URI.

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::uri::KeyUri;

/// Kind of key to create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// AES-256 secret key.
    Aes256,
    /// RSA key pair of the given size in bits.
    Rsa(usize),
    /// ECDSA P-256 key pair (audit checkpoint signing).
    EcP256,
    /// ECDSA P-384 key pair (audit checkpoint signing).
    EcP384,
}

/// One key as listed by a store. Never holds key material.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyListing {
    /// Label or name.
    pub name: String,
    /// Store-specific id (PKCS#11 CKA_ID hex, KMIP unique identifier …).
    pub id: String,
    /// Key type and size, e.g. `AES-256`, `RSA-3072`.
    pub kind: String,
    /// Further attributes as (name, value), e.g. `sensitive=true`, `latest_version=3`.
    pub attributes: Vec<(String, String)>,
}

/// What a store says after creating a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// The URI to use the key with (`--key`).
    pub uri: String,
    /// Human-readable details (unique id, attributes).
    pub detail: String,
}

/// Lifecycle operations of a key store.
#[async_trait]
pub trait KeyAdmin: Send + Sync {
    /// Create a key at `uri`; refuse if one with that name exists.
    async fn create(&self, uri: &KeyUri, kind: KeyKind) -> Result<Created>;
    /// List the keys under `uri` (a token, a mount, a server).
    async fn list(&self, uri: &KeyUri) -> Result<Vec<KeyListing>>;
    /// Make a new key version (stores with versioned keys).
    async fn rotate(&self, uri: &KeyUri) -> Result<String> {
        Err(Error::Config(format!(
            "{}: this key store has no key rotation",
            uri.scheme
        )))
    }
    /// Destroy the key for good.
    async fn destroy(&self, uri: &KeyUri) -> Result<String>;
}

/// Whether `target` names a key in a key store of this build (rather than a local file).
pub fn is_store_uri(target: &str) -> bool {
    crate::Registry::builtin().is_store_uri(target)
}

/// The admin interface of the store a URI names (schemes of this build).
pub fn open_admin(uri: &str) -> Result<(Box<dyn KeyAdmin>, KeyUri)> {
    crate::Registry::builtin().open_admin(uri)
}
