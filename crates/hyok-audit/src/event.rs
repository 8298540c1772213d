//! What callers hand the log: one key use, one message operation, or one key lifecycle step
//! or policy refusal. These are the audit crate's own types, so it depends on no key store;
//! the facade (`hyok::audit`) maps the key manager's observations into them.

use std::sync::Arc;
use std::time::Duration;

use hyok_core::AlgorithmSuite;

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

/// The key of a key use: its URI without secrets and its backend name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRef {
    /// Backend name (`raw-aes`, `pkcs11`, `vault-transit` …).
    pub backend: &'static str,
    /// The key URI with secrets removed (the writer strips them a second time).
    pub uri: Arc<str>,
}

/// One key use. Holds hashes and names only.
#[derive(Clone, Debug)]
pub struct KeyEvent {
    /// The operation.
    pub op: KeyOp,
    /// The key.
    pub key: KeyRef,
    /// Suite of the message.
    pub suite: AlgorithmSuite,
    /// SHA-256 of the serialized materials encryption context.
    pub context_sha256: [u8; 32],
    /// SHA-256 of the EDK involved, when there is one.
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

/// What happened to a whole message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageOp {
    /// A message was encrypted (or an attempt failed).
    Encrypt,
    /// A message was decrypted (or an attempt failed).
    Decrypt,
}

/// One message encrypted or decrypted, or one failed attempt. Holds hashes and names only.
#[derive(Clone, Debug)]
pub struct MessageEvent {
    /// The operation.
    pub op: MessageOp,
    /// URIs (without secrets) of the keys configured for the operation, generator first.
    pub keys: Vec<Arc<str>>,
    /// Suite of the message, when known.
    pub suite: Option<AlgorithmSuite>,
    /// SHA-256 of the serialized encryption context stored in the header, when known.
    pub context_sha256: Option<[u8; 32]>,
    /// Message id, when known.
    pub message_id: Option<Vec<u8>>,
    /// File or object the message belongs to, when the caller named one.
    pub subject: Option<String>,
    /// Plaintext bytes processed.
    pub bytes: Option<u64>,
    /// `None` on success, else the error class.
    pub error: Option<&'static str>,
    /// Wall time of the whole operation.
    pub duration: Duration,
}

/// Key lifecycle and policy decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdminOp {
    /// A key was created.
    KeyNew,
    /// A new key version was made.
    KeyRotate,
    /// A key was destroyed.
    KeyDestroy,
    /// A policy refused an operation (commitment policy, EDK limit, residency …).
    PolicyRefusal,
    /// The escrow drill checked whether given keys open one message.
    EscrowCheck,
    /// A policy decision of the `[policy]` engine (allow or deny, with the deciding policy
    /// ids in the detail).
    PolicyDecision,
    /// A request to a hyok server that used no key (XKS metadata and health requests,
    /// requests refused before reaching a key).
    ServiceRequest,
}

/// One key lifecycle operation or policy refusal. Never holds key material or secrets.
#[derive(Clone, Debug)]
pub struct AdminEvent {
    /// The operation.
    pub op: AdminOp,
    /// The key URI or key file path, without secrets.
    pub key: Option<String>,
    /// File or object concerned, when there is one.
    pub subject: Option<String>,
    /// Message id concerned, when there is one.
    pub message_id: Option<Vec<u8>>,
    /// What the store or policy said, no secrets.
    pub detail: Option<String>,
    /// `None` on success, else the error class.
    pub error: Option<&'static str>,
    /// Wall time of the operation.
    pub duration: Duration,
}
