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
    /// The PKCS#11 module (the vendor's library) cannot be loaded or initialised.
    #[error("{key}: key store unavailable: {detail}")]
    ModuleUnavailable {
        /// Key name as shown to users.
        key: String,
        /// What failed.
        detail: String,
    },
    /// The token (HSM partition) refused the PIN: wrong, locked, expired or missing.
    #[error("{key}: permission denied: {detail}")]
    PinRejected {
        /// Key name.
        key: String,
        /// What the token said (`C_Login: CKR_PIN_INCORRECT` …).
        detail: String,
    },
    /// The module has no token with the URI's label, serial or slot.
    #[error("{key}: key store not found: {detail}")]
    TokenNotFound {
        /// Key name.
        key: String,
        /// Which tokens the module has.
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
    /// The stable class of this failure (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Audit(_) => ErrorClass::Audit,
            Self::Unavailable { .. } | Self::ModuleUnavailable { .. } => ErrorClass::Unavailable,
            Self::Denied { .. } | Self::PinRejected { .. } => ErrorClass::Denied,
            Self::NotFound { .. } | Self::TokenNotFound { .. } => ErrorClass::NotFound,
            Self::UnwrapFailed { .. } => ErrorClass::UnwrapFailed,
            Self::InsufficientShares { .. } => ErrorClass::InsufficientShares,
            Self::Unsupported { .. } => ErrorClass::Unsupported,
            Self::KeyVersionTooOld { .. } => ErrorClass::VersionTooOld,
            Self::Config(_) => ErrorClass::Config,
            Self::NoMatchingKey { .. } => ErrorClass::WrongKey,
            Self::Policy(_) => ErrorClass::Policy,
            Self::Core(c) => ErrorClass::of_core(c),
            Self::Backend { .. } => ErrorClass::Backend,
        }
    }

    /// Whether retrying the same call may succeed (network blips, throttling).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// The stable meaning of a failure, whatever layer it came from: the one table that exit
/// codes, audit records and (in servers) status codes are derived from. `as_str` names are
/// written into audit records and never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The audit log cannot record (key operations are refused).
    Audit,
    /// A key store failed in a way with no better class.
    Backend,
    /// The configuration (file, key URI, environment) is unusable.
    Config,
    /// The encryption context does not match the message or is not allowed.
    Context,
    /// Authentication to a key store failed or the operation is not permitted.
    Denied,
    /// The input is not a well-formed message hyok can read.
    Format,
    /// The header tag did not verify: wrong required context pairs or a tampered header.
    HeaderAuth,
    /// Local input or output failed.
    Io,
    /// Something named (key, token, object, file) does not exist.
    NotFound,
    /// A stored object is bound to another location (moved or renamed), or to none while
    /// binding is required.
    ObjectMoved,
    /// An object's name cannot be a local file name (empty, `.` or `..` parts, NUL).
    ObjectName,
    /// A policy refused (commitment policy, EDK limit, residency).
    Policy,
    /// A byte range that cannot be served.
    Range,
    /// Object storage failed.
    Storage,
    /// A k-of-n split could not be opened: too few of its key groups answered.
    InsufficientShares,
    /// The message was changed: key commitment, frame tag or signature did not verify.
    Tampered,
    /// The message ended early.
    Truncated,
    /// A key store, server or file that should answer cannot be reached.
    Unavailable,
    /// The key exists but cannot do this.
    Unsupported,
    /// The key is the message's but refused to unwrap: wrong context or a tampered key.
    UnwrapFailed,
    /// A command line that cannot be run as given.
    Usage,
    /// The key version that wrapped the message may no longer decrypt.
    VersionTooOld,
    /// None of the given keys is one the message was encrypted for.
    WrongKey,
}

impl ErrorClass {
    /// Stable lowercase name (audit records, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audit => "audit",
            Self::Backend => "backend",
            Self::Config => "config",
            Self::Context => "context",
            Self::Denied => "denied",
            Self::Format => "format",
            Self::HeaderAuth => "header-auth",
            Self::Io => "io",
            Self::NotFound => "not-found",
            Self::ObjectMoved => "object-moved",
            Self::ObjectName => "object-name",
            Self::Policy => "policy",
            Self::Range => "range",
            Self::Storage => "storage",
            Self::InsufficientShares => "insufficient-shares",
            Self::Tampered => "tampered",
            Self::Truncated => "truncated",
            Self::Unavailable => "unavailable",
            Self::Unsupported => "unsupported",
            Self::UnwrapFailed => "unwrap-failed",
            Self::Usage => "usage",
            Self::VersionTooOld => "version-too-old",
            Self::WrongKey => "wrong-key",
        }
    }

    /// The class of a message format error.
    pub fn of_core(c: &hyok_core::Error) -> Self {
        use hyok_core::Error as C;
        match c {
            C::CommitmentPolicy(_)
            | C::TooManyEncryptedDataKeys { .. }
            | C::FrameLengthLimit { .. } => Self::Policy,
            C::HeaderAuth => Self::HeaderAuth,
            C::Commitment | C::FrameAuth(_) | C::Signature => Self::Tampered,
            C::Truncated(_) => Self::Truncated,
            C::Context(_) => Self::Context,
            C::Io(_) => Self::Io,
            _ => Self::Format,
        }
    }
}

impl PartialEq<&str> for ErrorClass {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
