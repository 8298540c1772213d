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
pub use hyok_keystore::observe::{
    context_hash, AdminEvent, AdminOp, AuditSink, MessageEvent, MessageOp,
};
use hyok_keystore::observe::{KeyEvent, KeyOp};

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

/// The audit log as the key manager's [`AuditSink`]: maps each key-store observation into
/// the audit crate's own record types (`hyok-audit` knows no key store).
#[derive(Clone, Debug)]
pub struct LogSink(Arc<AuditLog>);

impl LogSink {
    /// A sink writing into `log`.
    pub fn new(log: Arc<AuditLog>) -> Self {
        Self(log)
    }

    /// The log.
    pub fn log(&self) -> &Arc<AuditLog> {
        &self.0
    }
}

fn key_op(op: KeyOp) -> hyok_audit::KeyOp {
    match op {
        KeyOp::Generate => hyok_audit::KeyOp::Generate,
        KeyOp::Wrap => hyok_audit::KeyOp::Wrap,
        KeyOp::Unwrap => hyok_audit::KeyOp::Unwrap,
        KeyOp::CacheHitEncrypt => hyok_audit::KeyOp::CacheHitEncrypt,
        KeyOp::CacheHitDecrypt => hyok_audit::KeyOp::CacheHitDecrypt,
    }
}

fn admin_op(op: AdminOp) -> hyok_audit::AdminOp {
    match op {
        AdminOp::KeyNew => hyok_audit::AdminOp::KeyNew,
        AdminOp::KeyRotate => hyok_audit::AdminOp::KeyRotate,
        AdminOp::KeyDestroy => hyok_audit::AdminOp::KeyDestroy,
        AdminOp::PolicyRefusal => hyok_audit::AdminOp::PolicyRefusal,
        AdminOp::EscrowCheck => hyok_audit::AdminOp::EscrowCheck,
        AdminOp::PolicyDecision => hyok_audit::AdminOp::PolicyDecision,
        AdminOp::ServiceRequest => hyok_audit::AdminOp::ServiceRequest,
    }
}

impl AuditSink for LogSink {
    fn record(&self, e: KeyEvent) {
        self.0.record(hyok_audit::KeyEvent {
            op: key_op(e.op),
            key: hyok_audit::KeyRef {
                backend: e.key.backend,
                uri: e.key.uri,
            },
            suite: e.suite,
            context_sha256: e.context_sha256,
            edk_sha256: e.edk_sha256,
            message_id: e.message_id,
            subject: e.subject,
            error: e.error,
            duration: e.duration,
        });
    }

    fn message(&self, e: MessageEvent) {
        self.0.message(hyok_audit::MessageEvent {
            op: match e.op {
                MessageOp::Encrypt => hyok_audit::MessageOp::Encrypt,
                MessageOp::Decrypt => hyok_audit::MessageOp::Decrypt,
            },
            keys: e.keys,
            suite: e.suite,
            context_sha256: e.context_sha256,
            message_id: e.message_id,
            subject: e.subject,
            bytes: e.bytes,
            error: e.error,
            duration: e.duration,
        });
    }

    fn admin(&self, e: AdminEvent) {
        self.0.admin(hyok_audit::AdminEvent {
            op: admin_op(e.op),
            key: e.key,
            subject: e.subject,
            message_id: e.message_id,
            detail: e.detail,
            error: e.error,
            duration: e.duration,
        });
    }

    fn check(&self) -> std::result::Result<(), String> {
        self.0.check()
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
