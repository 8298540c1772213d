//! Errors of key stores.

/// What went wrong in a key store. Variants carry the key's display name and the
/// operation, never key material, PINs or tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key store (HSM, Vault, KMIP server) cannot be reached or is not ready.
    #[error("{key}: key store unavailable: {detail}")]
    Unavailable {
        /// Key name as shown to users.
        key: String,
        /// What failed (connection refused, sealed …).
        detail: String,
    },
    /// Authentication to the key store failed or the operation is not permitted.
    #[error("{key}: permission denied: {detail}")]
    Denied {
        /// Key name.
        key: String,
        /// Detail.
        detail: String,
    },
    /// The key does not exist in the store.
    #[error("{key}: key not found{}", detail_suffix(.detail))]
    NotFound {
        /// Key name.
        key: String,
        /// Detail.
        detail: String,
    },
    /// The key store refused to unwrap: wrong encryption context, tampered EDK, or the
    /// EDK was wrapped by a different key with the same name.
    #[error("{key}: unwrapping the data key failed (wrong encryption context, tampered data key, or a different key with this name)")]
    UnwrapFailed {
        /// Key name.
        key: String,
    },
    /// The key exists but cannot do this (wrong type, public key only, version too old …).
    #[error("{key}: {detail}")]
    Unsupported {
        /// Key name.
        key: String,
        /// Detail.
        detail: String,
    },
    /// The key version that wrapped the data key may no longer decrypt: the store's
    /// minimum decryption version (Vault `min_decryption_version`) was raised above it.
    #[error("{key}: key version {version} is too old: the key store no longer decrypts with it ({detail})")]
    KeyVersionTooOld {
        /// Key name.
        key: String,
        /// The version recorded in the wrapped data key (e.g. `1`).
        version: String,
        /// What the store said.
        detail: String,
    },
    /// The audit log cannot record, so key operations are refused (fail closed).
    #[error("audit log unavailable: {0}; key operations are refused until it can record again")]
    Audit(String),
    /// A k-of-n split could not be opened: too few of its key groups are available.
    #[error("{key}: have {have} of the {need} shares needed to recover the data key{}", detail_suffix(.detail))]
    InsufficientShares {
        /// The split (provider id / name).
        key: String,
        /// Shares recovered.
        have: usize,
        /// Shares needed (k).
        need: usize,
        /// Why other shares failed, when a key store said more than "not mine".
        detail: String,
    },
    /// A key URI or key file is invalid.
    #[error("{0}")]
    Config(String),
    /// None of the configured keys could unwrap any of the message's data keys.
    #[error("no configured key can decrypt this message: it was encrypted for {edks}; configured: {configured}")]
    NoMatchingKey {
        /// The EDKs of the message, as provider/key names.
        edks: String,
        /// The configured keys.
        configured: String,
    },
    /// A policy of the caller (e.g. the EDK limit) refused the operation.
    #[error("{0}")]
    Policy(String),
    /// The message format core refused something.
    #[error(transparent)]
    Core(#[from] hyok_core::Error),
    /// Any other backend failure.
    #[error("{key}: {detail}")]
    Backend {
        /// Key name.
        key: String,
        /// Detail.
        detail: String,
    },
}

fn detail_suffix(d: &str) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!(": {d}")
    }
}

impl Error {
    /// Short class name for audit records and metrics.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Audit(_) => "audit",
            Self::Unavailable { .. } => "unavailable",
            Self::Denied { .. } => "denied",
            Self::NotFound { .. } => "not-found",
            Self::UnwrapFailed { .. } => "unwrap-failed",
            Self::InsufficientShares { .. } => "insufficient-shares",
            Self::Unsupported { .. } => "unsupported",
            Self::KeyVersionTooOld { .. } => "version-too-old",
            Self::Config(_) => "config",
            Self::NoMatchingKey { .. } => "no-matching-key",
            Self::Policy(_) => "policy",
            Self::Core(_) => "format",
            Self::Backend { .. } => "backend",
        }
    }

    /// Whether retrying the same call may succeed (network blips, throttling).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
