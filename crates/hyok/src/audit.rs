//! The audit log, as the facade configures it: settings from the environment (and, later,
//! the `[audit]` section of `hyok.toml`), the checkpoint signer a key URI names, and the
//! error classes recorded for failed operations.
//!
//! ```no_run
//! # fn main() -> Result<(), hyok::Error> {
//! use hyok::audit::AuditSettings;
//! // HYOK_AUDIT_LOG=/var/log/hyok/audit.log HYOK_AUDIT_KEY=/etc/hyok/audit-key.pem
//! let settings = AuditSettings::from_env()?;
//! if let Some(log) = settings.open()? {
//!     // hand `log` to KeyManager::with_audit, record, then:
//!     log.close()?;
//! }
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use hyok_audit::{
    describe, merkle, parse_line, verify_file, AuditLog, Checkpoint, CheckpointSigner,
    CheckpointVerifier, CloseSummary, Error as AuditError, Failure, FailureKind, Filter, KeyId,
    Line, LogConfig, LogEntry, LogReader, Op, OpFilter, Outcome, PemSigner, PublicKey, Record,
    SignatureAlgorithm, Summary, Timestamp, VerifyOptions,
};
pub use hyok_keystore::observe::{AdminEvent, AdminOp, AuditSink, MessageEvent, MessageOp};

use crate::{Error, Result};

/// Environment variable: the log file. Logging is on when it is set.
pub const ENV_LOG: &str = "HYOK_AUDIT_LOG";
/// Environment variable: the checkpoint signing key (PEM private key path, `file:PATH`, or
/// a `pkcs11:` URI of an EC key).
pub const ENV_KEY: &str = "HYOK_AUDIT_KEY";
/// Environment variable: identity written into every record (service account, ticket …).
pub const ENV_IDENTITY: &str = "HYOK_AUDIT_IDENTITY";
/// Environment variable: the log's origin (name signed into checkpoints).
pub const ENV_ORIGIN: &str = "HYOK_AUDIT_ORIGIN";
/// Environment variable: checkpoint every N records.
pub const ENV_CHECKPOINT_EVERY: &str = "HYOK_AUDIT_CHECKPOINT_EVERY";
/// Environment variable: checkpoint every T seconds (if records follow the last one).
pub const ENV_CHECKPOINT_SECS: &str = "HYOK_AUDIT_CHECKPOINT_SECS";

/// Audit log settings. Every field is optional so that sources can be layered:
/// [`AuditSettings::from_env`] over a config file's `[audit]` section (see
/// [`AuditSettings::or`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditSettings {
    /// The log file; `None` = logging off.
    pub log: Option<PathBuf>,
    /// Checkpoint signing key URI.
    pub key: Option<String>,
    /// Identity written into records.
    pub identity: Option<String>,
    /// Log origin (defaults to `hyok-audit`).
    pub origin: Option<String>,
    /// Checkpoint every N records (default 1,000).
    pub checkpoint_every: Option<u64>,
    /// Checkpoint every T (default 60 s).
    pub checkpoint_interval: Option<Duration>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn config(msg: String) -> Error {
    Error::Audit(AuditError::Config(msg))
}

impl AuditSettings {
    /// Read `HYOK_AUDIT_LOG`, `HYOK_AUDIT_KEY`, `HYOK_AUDIT_IDENTITY`, `HYOK_AUDIT_ORIGIN`,
    /// `HYOK_AUDIT_CHECKPOINT_EVERY` and `HYOK_AUDIT_CHECKPOINT_SECS`.
    pub fn from_env() -> Result<Self> {
        let number = |name: &str| -> Result<Option<u64>> {
            env(name)
                .map(|v| {
                    v.parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| config(format!("{name}={v:?} is not a positive number")))
                })
                .transpose()
        };
        Ok(Self {
            log: env(ENV_LOG).map(PathBuf::from),
            key: env(ENV_KEY),
            identity: env(ENV_IDENTITY),
            origin: env(ENV_ORIGIN),
            checkpoint_every: number(ENV_CHECKPOINT_EVERY)?,
            checkpoint_interval: number(ENV_CHECKPOINT_SECS)?.map(Duration::from_secs),
        })
    }

    /// Fields of `self`, falling back to `fallback` where unset. The hook for a config
    /// file: `AuditSettings::from_env()?.or(file.audit)` lets the environment override
    /// the file's `[audit]` section field by field.
    pub fn or(self, fallback: Self) -> Self {
        Self {
            log: self.log.or(fallback.log),
            key: self.key.or(fallback.key),
            identity: self.identity.or(fallback.identity),
            origin: self.origin.or(fallback.origin),
            checkpoint_every: self.checkpoint_every.or(fallback.checkpoint_every),
            checkpoint_interval: self.checkpoint_interval.or(fallback.checkpoint_interval),
        }
    }

    /// Whether logging is on.
    pub fn enabled(&self) -> bool {
        self.log.is_some()
    }

    /// The writer configuration (without opening anything).
    pub fn log_config(&self) -> Result<LogConfig> {
        let Some(path) = &self.log else {
            return Err(config(format!(
                "no audit log configured (set {ENV_LOG}=PATH)"
            )));
        };
        let mut c = LogConfig::new(path);
        if let Some(o) = &self.origin {
            c.origin.clone_from(o);
        }
        c.identity.clone_from(&self.identity);
        if let Some(n) = self.checkpoint_every {
            c.checkpoint_every = n;
        }
        if let Some(t) = self.checkpoint_interval {
            c.checkpoint_interval = t;
        }
        Ok(c)
    }

    /// The checkpoint signer these settings name.
    pub fn signer(&self) -> Result<Arc<dyn CheckpointSigner>> {
        match &self.key {
            Some(uri) => open_signer(uri),
            None => Err(config(format!(
                "{ENV_LOG} is set but {ENV_KEY} is not: checkpoints must be signed (a PEM EC private key path or a pkcs11: URI)"
            ))),
        }
    }

    /// Open the log if logging is on (`Ok(None)` if not). Needs a signing key.
    pub fn open(&self) -> Result<Option<Arc<AuditLog>>> {
        if !self.enabled() {
            return Ok(None);
        }
        let config = self.log_config()?;
        let signer = self.signer()?;
        Ok(Some(Arc::new(AuditLog::open(config, signer)?)))
    }
}

/// The checkpoint signer a key URI names: a PEM EC private key file (`PATH` or
/// `file:PATH`), or an EC key inside a PKCS#11 token (`pkcs11:…`).
pub fn open_signer(uri: &str) -> Result<Arc<dyn CheckpointSigner>> {
    let lower = uri.to_ascii_lowercase();
    if lower.starts_with("pkcs11:") {
        return pkcs11_signer(uri);
    }
    if let Some((scheme, _)) = uri.split_once(':') {
        let known_file = scheme.eq_ignore_ascii_case("file");
        if !known_file && scheme.len() > 1 && !scheme.contains('/') {
            return Err(config(format!(
                "{ENV_KEY}: unsupported key URI scheme {scheme:?} (a PEM private key path, file:PATH or pkcs11:…)"
            )));
        }
    }
    let path = uri
        .strip_prefix("file:")
        .or_else(|| uri.strip_prefix("FILE:"))
        .unwrap_or(uri);
    Ok(Arc::new(PemSigner::from_pem_file(path.as_ref())?))
}

#[cfg(feature = "pkcs11")]
fn pkcs11_signer(uri: &str) -> Result<Arc<dyn CheckpointSigner>> {
    Ok(Arc::new(Pkcs11Signer::open(uri)?))
}

#[cfg(not(feature = "pkcs11"))]
fn pkcs11_signer(_uri: &str) -> Result<Arc<dyn CheckpointSigner>> {
    Err(config(format!(
        "{ENV_KEY}: this build has no PKCS#11 support (feature `pkcs11`); use a PEM private key file"
    )))
}

/// A checkpoint signer whose EC key stays inside a PKCS#11 token: hyok hashes the
/// checkpoint (SHA-256 for P-256, SHA-384 for P-384) and the token signs the digest with
/// `CKM_ECDSA`. The PIN comes from the URI's `pin-source` or `HYOK_PKCS11_PIN`.
#[cfg(feature = "pkcs11")]
pub struct Pkcs11Signer {
    inner: hyok_keystore::pkcs11::EcSigner,
    alg: SignatureAlgorithm,
    spki: Vec<u8>,
}

#[cfg(feature = "pkcs11")]
impl std::fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("key", &self.inner.key())
            .field("alg", &self.alg)
            .finish()
    }
}

#[cfg(feature = "pkcs11")]
impl Pkcs11Signer {
    /// Open the EC key pair a `pkcs11:` URI names.
    pub fn open(uri: &str) -> Result<Self> {
        use hyok_keystore::pkcs11::{EcCurve, EcSigner};
        let inner = EcSigner::from_uri_str(uri)?;
        let alg = match inner.curve() {
            EcCurve::P256 => SignatureAlgorithm::EcdsaP256Sha256,
            EcCurve::P384 => SignatureAlgorithm::EcdsaP384Sha384,
        };
        // The same DER encoding verifiers compute the key id over.
        let spki = PublicKey::from_der(&inner.public_key_der())?.der().to_vec();
        Ok(Self { inner, alg, spki })
    }
}

#[cfg(feature = "pkcs11")]
impl CheckpointSigner for Pkcs11Signer {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.alg
    }

    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    fn sign(&self, message: &[u8]) -> hyok_audit::Result<Vec<u8>> {
        let digest = self.alg.digest(message);
        self.inner
            .sign_digest(&digest)
            .map_err(|e| AuditError::Sign(e.to_string()))
    }
}

/// Short class of a failed operation, for audit records.
pub fn error_class(e: &Error) -> &'static str {
    match e {
        Error::KeyStore(k) => k.class(),
        Error::Audit(_) => "audit",
        Error::Format(c) => core_error_class(c),
        Error::Store(_) => "storage",
        Error::Config(_) => "config",
        Error::Residency(_) => "policy",
        Error::ObjectMoved { .. } => "object-moved",
        Error::ObjectUnbound { .. } => "object-unbound",
        Error::UnsafeObjectName { .. } => "object-name",
        Error::Range(_) => "range",
        Error::Io { .. } => "io",
    }
}

/// Short class of a message format error, for audit records.
pub fn core_error_class(c: &hyok_core::Error) -> &'static str {
    use hyok_core::Error as C;
    match c {
        C::CommitmentPolicy(_) | C::TooManyEncryptedDataKeys { .. } => "policy",
        C::HeaderAuth => "header-auth",
        C::Commitment => "commitment",
        C::FrameAuth(_) => "frame-auth",
        C::Signature => "signature",
        C::Truncated(_) => "truncated",
        C::Context(_) => "context",
        C::Io(_) => "io",
        _ => "format",
    }
}

/// Whether a format error is a policy refusal (recorded as `policy-refusal` as well).
pub fn is_core_policy_refusal(c: &hyok_core::Error) -> bool {
    use hyok_core::Error as C;
    matches!(
        c,
        C::CommitmentPolicy(_) | C::TooManyEncryptedDataKeys { .. }
    )
}

/// Whether a failure is a policy refusal (recorded as `policy-refusal` as well).
pub fn is_policy_refusal(e: &Error) -> bool {
    match e {
        Error::Format(c) => is_core_policy_refusal(c),
        Error::KeyStore(hyok_keystore::Error::Policy(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layering_prefers_the_first_source() {
        let env = AuditSettings {
            log: Some("/a".into()),
            ..Default::default()
        };
        let file = AuditSettings {
            log: Some("/b".into()),
            key: Some("/k.pem".into()),
            ..Default::default()
        };
        let s = env.or(file);
        assert_eq!(s.log, Some("/a".into()));
        assert_eq!(s.key.as_deref(), Some("/k.pem"));
    }

    #[test]
    fn a_log_without_a_key_is_refused() {
        let s = AuditSettings {
            log: Some("/tmp/x".into()),
            ..Default::default()
        };
        let e = s.open().unwrap_err().to_string();
        assert!(e.contains("HYOK_AUDIT_KEY"), "{e}");
        assert!(open_signer("vault-transit:x").is_err());
        assert!(AuditSettings::default().open().unwrap().is_none());
    }
}
