//! The one trait every key store implements.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use hyok_core::{AlgorithmSuite, DataKey, EncryptedDataKey, EncryptionContext};

use crate::error::Result;

/// Public description of a key: never secrets. Cheap to clone (shared strings): every
/// audit event carries one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Backend name: `raw-aes`, `raw-rsa`, `pkcs11`, `vault-transit`, `kmip` …
    pub backend: &'static str,
    /// The key URI with secrets removed (safe to log and to put in audit records).
    pub uri: Arc<str>,
    /// The EDK provider id this key writes and recognises.
    pub provider_id: Arc<str>,
    /// The key name as recorded in the EDK.
    pub key_name: Arc<str>,
}

impl fmt::Display for KeyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

/// The key name an EDK records: for the raw-AES layout (name ‖ tag bits 128 ‖ IV length 12
/// ‖ IV) the name, otherwise the whole provider info. Untrusted bytes: escape them
/// ([`hyok_core::text::escape_bytes`]) before showing them.
pub fn edk_key_name(edk: &EncryptedDataKey) -> &[u8] {
    let info = &edk.provider_info;
    if info.len() >= 20 && info[info.len() - 20..info.len() - 12] == [0, 0, 0, 0x80, 0, 0, 0, 12] {
        &info[..info.len() - 20]
    } else {
        info
    }
}

/// `PROVIDER/KEY-NAME` of an EDK, escaped for display.
pub fn edk_label(edk: &EncryptedDataKey) -> String {
    format!(
        "{}/{}",
        hyok_core::text::escape_str(&edk.provider_id),
        hyok_core::text::escape_bytes(edk_key_name(edk))
    )
}

/// What a wrap or generate call binds the data key to.
#[derive(Clone, Copy, Debug)]
pub struct WrapRequest<'a> {
    /// The message's suite (fixes the data key length).
    pub suite: AlgorithmSuite,
    /// The full materials encryption context (stored and required pairs).
    pub context: &'a EncryptionContext,
}

/// A key that wraps and unwraps data keys (the ESDK "keyring" of one key).
///
/// Contract for implementors:
/// - `wrap` encrypts `data_key` so that only this key can recover it, binding the
///   request's context where the mechanism allows (AES-GCM AAD); it never logs the key.
/// - `unwrap` returns `Ok(None)` when the EDK is **not this key's** (other provider id or key
///   name) — the caller then tries other keys — and `Err` when it is this key's but
///   recovering it failed (wrong context, tampering, store down), so the user sees the
///   real cause. Exception: a raw RSA key with PKCS#1 v1.5 padding returns a substitute
///   data key for an EDK whose padding does not check (implicit rejection, see
///   `raw::rsa`), so that a padding failure is indistinguishable from a wrong key.
/// - Both may be called from many tasks at once.
#[async_trait]
pub trait KeyStore: Send + Sync + fmt::Debug {
    /// Public description of the key.
    fn info(&self) -> &KeyInfo;

    /// Whether this key can wrap (e.g. an RSA keyring with a private key only cannot).
    fn can_wrap(&self) -> bool {
        true
    }

    /// Generate a fresh data key and wrap it. The default draws from the local CSPRNG;
    /// stores that generate inside the HSM/KMS override it.
    async fn generate(&self, req: WrapRequest<'_>) -> Result<(DataKey, EncryptedDataKey)> {
        let dk = DataKey::generate(req.suite)?;
        let edk = self.wrap(&dk, req).await?;
        Ok((dk, edk))
    }

    /// Wrap an existing data key.
    async fn wrap(&self, data_key: &DataKey, req: WrapRequest<'_>) -> Result<EncryptedDataKey>;

    /// Try to unwrap one EDK: `Ok(None)` if it is not this key's.
    async fn unwrap(&self, edk: &EncryptedDataKey, req: WrapRequest<'_>)
        -> Result<Option<DataKey>>;

    /// Wrap one data key for several contexts at once (bulk re-wrap). Stores with a batch
    /// API (Vault `batch_input`) override it.
    async fn wrap_batch(
        &self,
        items: &[(&DataKey, WrapRequest<'_>)],
    ) -> Vec<Result<EncryptedDataKey>> {
        let mut out = Vec::with_capacity(items.len());
        for (dk, req) in items {
            out.push(self.wrap(dk, *req).await);
        }
        out
    }

    /// Unwrap several EDKs at once; see [`KeyStore::wrap_batch`].
    async fn unwrap_batch(
        &self,
        items: &[(&EncryptedDataKey, WrapRequest<'_>)],
    ) -> Vec<Result<Option<DataKey>>> {
        let mut out = Vec::with_capacity(items.len());
        for (edk, req) in items {
            out.push(self.unwrap(edk, *req).await);
        }
        out
    }

    /// Probe the store's server nodes, one entry per node in the configured order (network
    /// key stores: Vault/OpenBao, KMIP). Local stores (raw keys, PKCS#11) have no nodes and
    /// return nothing. Never fails: an unreachable node is an entry saying so.
    async fn health(&self) -> Vec<crate::health::NodeHealth> {
        Vec::new()
    }

    /// For a key made of key groups (a k-of-n split): how many groups must take part
    /// (`None` when only each message says, as for a decrypt-only opener) and each group's
    /// keys, so that the health view can probe every member. Other keys: `None`.
    fn key_groups(&self) -> Option<KeyGroups> {
        None
    }
}

/// The key groups of a k-of-n key ([`KeyStore::key_groups`]).
#[derive(Clone, Debug)]
pub struct KeyGroups {
    /// Groups that must take part (k); `None` when unknown until a message is read.
    pub needed: Option<usize>,
    /// Each group's keys (any one of which opens the group's share).
    pub groups: Vec<Vec<SharedKeyStore>>,
}

/// A shared key store.
pub type SharedKeyStore = Arc<dyn KeyStore>;
