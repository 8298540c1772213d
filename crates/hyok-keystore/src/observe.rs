//! The two observers every key use passes: an audit sink and a data-key cache.
//! Implementations live elsewhere (hyok-audit, the cache module); this module only defines
//! what they see, so that every backend and every cache hit goes through one place.

use std::fmt;
use std::time::Duration;

use hyok_core::{AlgorithmSuite, DataKey, EncryptedDataKey, EncryptionContext};
use sha2::{Digest, Sha256};

use crate::store::KeyInfo;

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyOp {
    /// A data key generated (and wrapped) by a key store.
    Generate,
    /// An existing data key wrapped by a key store.
    Wrap,
    /// A data key unwrapped by a key store.
    Unwrap,
    /// Encryption materials served from the data-key cache (no key store call).
    CacheHitEncrypt,
    /// A data key for decryption served from the cache (no key store call).
    CacheHitDecrypt,
}

impl KeyOp {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generate => "generate",
            Self::Wrap => "wrap",
            Self::Unwrap => "unwrap",
            Self::CacheHitEncrypt => "cache-hit-encrypt",
            Self::CacheHitDecrypt => "cache-hit-decrypt",
        }
    }
}

/// One key use, as handed to an [`AuditSink`]. Holds hashes and names only.
#[derive(Clone, Debug)]
pub struct KeyEvent {
    /// The operation.
    pub op: KeyOp,
    /// The key (URI without secrets).
    pub key: KeyInfo,
    /// Suite of the message.
    pub suite: AlgorithmSuite,
    /// SHA-256 of the serialized materials encryption context.
    pub context_sha256: [u8; 32],
    /// SHA-256 of the EDK involved (provider id ‖ info ‖ ciphertext), when there is one.
    pub edk_sha256: Option<[u8; 32]>,
    /// Message id, when known.
    pub message_id: Option<Vec<u8>>,
    /// File or object the message belongs to, when the caller named one.
    pub subject: Option<String>,
    /// `None` on success, else the error class (`unwrap-failed`, `unavailable` …).
    pub error: Option<&'static str>,
    /// Time spent in the key store.
    pub duration: Duration,
}

/// What happened to a whole message (one per message, besides its key uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageOp {
    /// A message was encrypted (or an attempt failed).
    Encrypt,
    /// A message was decrypted (or an attempt failed).
    Decrypt,
}

impl MessageOp {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Encrypt => "encrypt",
            Self::Decrypt => "decrypt",
        }
    }
}

/// One message encrypted or decrypted, or one failed attempt. Holds hashes and names only.
#[derive(Clone, Debug)]
pub struct MessageEvent {
    /// The operation.
    pub op: MessageOp,
    /// URIs (without secrets) of the keys configured for the operation, generator first.
    pub keys: Vec<std::sync::Arc<str>>,
    /// Suite of the message, when known.
    pub suite: Option<AlgorithmSuite>,
    /// SHA-256 of the serialized encryption context *stored in the header*, when known
    /// (key events hash the full materials context, which adds required-only pairs).
    pub context_sha256: Option<[u8; 32]>,
    /// Message id, when known.
    pub message_id: Option<Vec<u8>>,
    /// File or object the message belongs to, when the caller named one.
    pub subject: Option<String>,
    /// Plaintext bytes processed.
    pub bytes: Option<u64>,
    /// `None` on success, else the error class (`format`, `unwrap-failed`, `policy` …).
    pub error: Option<&'static str>,
    /// Wall time of the whole operation.
    pub duration: Duration,
}

/// Key lifecycle and policy decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdminOp {
    /// A key was created (`hyok key new`).
    KeyNew,
    /// A new key version was made (`hyok key rotate`).
    KeyRotate,
    /// A key was destroyed (`hyok key destroy`).
    KeyDestroy,
    /// A policy refused an operation (commitment policy, EDK limit, …).
    PolicyRefusal,
    /// The escrow drill checked whether given keys open one message (`hyok key
    /// verify-escrow`); no payload was decrypted.
    EscrowCheck,
    /// A decision of the `[policy]` engine, allow or deny (deciding policy ids in the
    /// detail).
    PolicyDecision,
    /// A request to a hyok server that used no key: XKS GetKeyMetadata and GetHealthStatus,
    /// and requests refused before reaching a key (malformed, unknown key).
    ServiceRequest,
}

impl AdminOp {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyNew => "key-new",
            Self::KeyRotate => "key-rotate",
            Self::KeyDestroy => "key-destroy",
            Self::PolicyRefusal => "policy-refusal",
            Self::EscrowCheck => "escrow-check",
            Self::PolicyDecision => "policy-decision",
            Self::ServiceRequest => "service-request",
        }
    }
}

/// One key lifecycle operation or policy refusal. Never holds key material or secrets.
#[derive(Clone, Debug)]
pub struct AdminEvent {
    /// The operation.
    pub op: AdminOp,
    /// The key URI or key file path, without secrets.
    pub key: Option<String>,
    /// File or object concerned (policy refusals), when there is one.
    pub subject: Option<String>,
    /// Message id concerned, when there is one.
    pub message_id: Option<Vec<u8>>,
    /// What the store or policy said (key kind, version, refused suite …), no secrets.
    pub detail: Option<String>,
    /// `None` on success, else the error class.
    pub error: Option<&'static str>,
    /// Wall time of the operation.
    pub duration: Duration,
}

/// Receives every key use. Must not block for long (buffer, then write).
///
/// Contract for implementors: `record`, `message` and `admin` are called from any thread,
/// possibly from async tasks, so they queue and return. `check` is called by the key
/// manager *before* every key operation: while it returns `Err`, key operations are
/// refused (fail closed), because a key use that cannot be recorded must not happen.
pub trait AuditSink: Send + Sync + fmt::Debug {
    /// Record one key use.
    fn record(&self, event: KeyEvent);

    /// Record one message operation (encrypt/decrypt, success or failure).
    fn message(&self, event: MessageEvent) {
        let _ = event;
    }

    /// Record one key lifecycle operation or policy refusal.
    fn admin(&self, event: AdminEvent) {
        let _ = event;
    }

    /// `Err(reason)` when the sink can no longer record (disk full, log replaced …).
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// SHA-256 of the serialized context (empty context → hash of no bytes). A context too
/// large to serialize (no message can carry it) hashes its pairs under a label of its
/// own instead, so it never shares a hash (a cache id, an audit value) with another
/// context, least of all with the empty one.
pub fn context_hash(ctx: &EncryptionContext) -> [u8; 32] {
    match ctx.serialize() {
        Ok(bytes) => Sha256::digest(&bytes).into(),
        Err(_) => {
            let mut h = Sha256::new();
            h.update(b"hyok: encryption context that does not serialize\0");
            for (k, v) in ctx.iter() {
                for part in [k, v] {
                    h.update((part.len() as u64).to_be_bytes());
                    h.update(part.as_bytes());
                }
            }
            h.finalize().into()
        }
    }
}

/// SHA-256 over an EDK's three length-prefixed fields.
pub fn edk_hash(edk: &EncryptedDataKey) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        edk.provider_id.as_bytes(),
        &edk.provider_info,
        &edk.ciphertext,
    ] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// Identifies cache entries: the keyring, suite and context (never the data key).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheId(pub [u8; 32]);

impl CacheId {
    /// Cache id for encryption materials of `keyring_id` (e.g. the list of key URIs) under
    /// the context whose [`context_hash`] is `ctx_hash`.
    pub fn for_encrypt(keyring_id: &str, suite: AlgorithmSuite, ctx_hash: &[u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"hyok-cache-encrypt\0");
        h.update(keyring_id.as_bytes());
        h.update([0]);
        h.update(suite.id().to_be_bytes());
        h.update(ctx_hash);
        Self(h.finalize().into())
    }

    /// Cache id for unwrapping the EDKs of a message under the context whose
    /// [`context_hash`] is `ctx_hash`.
    pub fn for_decrypt(
        keyring_id: &str,
        suite: AlgorithmSuite,
        edks: &[EncryptedDataKey],
        ctx_hash: &[u8; 32],
    ) -> Self {
        let mut h = Sha256::new();
        h.update(b"hyok-cache-decrypt\0");
        h.update(keyring_id.as_bytes());
        h.update([0]);
        h.update(suite.id().to_be_bytes());
        h.update(ctx_hash);
        for e in edks {
            h.update(edk_hash(e));
        }
        Self(h.finalize().into())
    }
}

/// Data keys and their EDKs served from a cache for encryption.
#[derive(Debug)]
pub struct CachedEncryption {
    /// The reused data key (each message still derives its own key from it).
    pub data_key: DataKey,
    /// The EDKs wrapped when the entry was made.
    pub edks: Vec<EncryptedDataKey>,
}

/// A data key served from a cache for decryption, with where it came from.
#[derive(Debug)]
pub struct CachedDecryption {
    /// The data key.
    pub data_key: DataKey,
    /// Index in the keyring of the key that unwrapped it.
    pub key: usize,
    /// Index in the message's EDKs of the EDK it was unwrapped from.
    pub edk: usize,
}

/// A bounded cache of data keys in front of the key stores.
///
/// Contract: entries are bounded by age, message count and byte count per data key and by
/// the number of entries; evicted entries are zeroized. `get_encrypt` counts one message
/// of `plaintext_len` bytes against the entry and refuses it when that would exceed a limit.
pub trait DataKeyCache: Send + Sync + fmt::Debug {
    /// Materials for one more message, if an entry is within its limits.
    fn get_encrypt(&self, id: &CacheId, plaintext_len: u64) -> Option<CachedEncryption>;
    /// Store materials just made (counts as their first message).
    fn put_encrypt(
        &self,
        id: CacheId,
        data_key: &DataKey,
        edks: &[EncryptedDataKey],
        plaintext_len: u64,
    );
    /// A data key unwrapped earlier for the same EDKs and context.
    fn get_decrypt(&self, id: &CacheId) -> Option<CachedDecryption>;
    /// Remember an unwrapped data key.
    /// `key` and `edk` are the indices (in the keyring, in the message's EDKs) of the key
    /// that unwrapped it and of the EDK it came from, for the audit record of a hit.
    fn put_decrypt(&self, id: CacheId, data_key: &DataKey, key: usize, edk: usize);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_that_does_not_serialize_does_not_hash_as_empty() {
        let huge: EncryptionContext = [("k", "v".repeat(70_000))].into_iter().collect();
        assert!(huge.serialize().is_err());
        let other: EncryptionContext = [("k", "w".repeat(70_000))].into_iter().collect();
        let empty = EncryptionContext::new();
        assert_ne!(context_hash(&huge), context_hash(&empty));
        assert_ne!(context_hash(&huge), context_hash(&other));
        assert_eq!(context_hash(&huge), context_hash(&huge.clone()));
        assert_eq!(context_hash(&empty), <[u8; 32]>::from(Sha256::digest(b"")));
    }
}
