//! The facade's one error type and what a failure means: its kind (usage, configuration or
//! operation: the exit status), its stable class ([`ErrorClass`]: audit records, later the
//! servers' status codes) and a hint, all computed from typed causes, never from message
//! text.

use std::borrow::Cow;
use std::path::PathBuf;

pub use hyok_keystore::ErrorClass;

/// Errors of the facade.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Message format or crypto.
    #[error(transparent)]
    Format(#[from] hyok_core::Error),
    /// A key store.
    #[error(transparent)]
    KeyStore(#[from] hyok_keystore::Error),
    /// The audit log.
    #[error(transparent)]
    Audit(#[from] hyok_audit::Error),
    /// Object storage.
    #[error(transparent)]
    Store(#[from] hyok_store::Error),
    /// The configuration file or a setting in it.
    #[error("configuration: {0}")]
    Config(String),
    /// A location names the default store, but none is configured.
    #[error("{location:?} refers to the default store, but {}", match .config {
        Some(p) => format!("{} sets no [defaults] store", p.display()),
        None => "there is no configuration file".to_owned(),
    })]
    NoDefaultStore {
        /// The location as given.
        location: String,
        /// The configuration file, when there is one.
        config: Option<PathBuf>,
    },
    /// A command that needs keys was given none, and no default keyring is configured.
    #[error("no key given")]
    NoKeys {
        /// Whether a configuration file was read.
        has_config: bool,
    },
    /// A caller's request that cannot be run as given (a usage error).
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// What to do instead.
        hint: Option<String>,
    },
    /// An encryption context key that the ESDK reserves (`aws-crypto-…`).
    #[error("encryption context key {0:?} is reserved: keys starting with \"aws-crypto-\" belong to the ESDK")]
    ReservedContextKey(String),
    /// Decryption failed, and context pairs given by the caller are not stored in the
    /// message (they were taken as required-but-not-stored pairs).
    #[error("the message's encryption context has no {}; decrypting with {} as required context failed ({source})",
        keys.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", "),
        if keys.len() == 1 { "it" } else { "them" })]
    ContextNotInMessage {
        /// The caller's keys that the stored context lacks.
        keys: Vec<String>,
        /// The failure.
        source: Box<Self>,
    },
    /// The residency guard refused a destination.
    #[error("residency: {0}")]
    Residency(String),
    /// A stored object's header binds it to another location (moved or renamed).
    #[error("{object} was encrypted for {bound_to}; refusing an object that was moved or renamed")]
    ObjectMoved {
        /// Where the object was read from.
        object: String,
        /// The location in its encryption context (escaped for display).
        bound_to: String,
    },
    /// Location binding is on and a stored object's header binds it to no location: it
    /// may be a message uploaded elsewhere without binding and swapped in.
    #[error("{object} is not bound to a location (uploaded with --no-bind-location?); refusing it while location binding is on, since any unbound message under the same key could have been put there")]
    ObjectUnbound {
        /// Where the object was read from.
        object: String,
    },
    /// An object whose name cannot be a local file name under the download directory.
    #[error("refusing to download {object:?}: its name has an empty, \".\" or \"..\" part or a NUL byte, which could write outside {root}")]
    UnsafeObjectName {
        /// The object's name below the downloaded prefix.
        object: String,
        /// The download directory.
        root: String,
    },
    /// A ranged read that cannot be served.
    #[error("{0}")]
    Range(String),
    /// The policy engine (`[policy]`) denied a request.
    #[error("policy denies {action} of {resource} to {principal} (policy {})", policies.join(", "))]
    Denied {
        /// The action (`put`, `decrypt` …).
        action: &'static str,
        /// Who asked.
        principal: String,
        /// On what.
        resource: String,
        /// The deciding policy ids.
        policies: Vec<String>,
    },
    /// Local I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who has to act on a failure: the exit status of a command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request cannot be run as given (exit 2).
    Usage,
    /// The configuration is unusable (exit 2).
    Config,
    /// The operation was tried and failed (exit 1).
    Operation,
}

impl ErrorKind {
    /// The process exit status for this kind: 2 for usage and configuration, 1 otherwise.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Usage | Self::Config => 2,
            Self::Operation => 1,
        }
    }
}

const CONFIG_HINT: &str =
    "check the configuration file (hyok --config PATH, $HYOK_CONFIG, ~/.config/hyok/hyok.toml)";

impl Error {
    /// A usage error with an optional hint.
    pub fn usage(message: impl Into<String>, hint: Option<&str>) -> Self {
        Self::Usage {
            message: message.into(),
            hint: hint.map(str::to_owned),
        }
    }

    /// Local I/O failed while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    /// An I/O error out of an encrypting or decrypting stream: the format error it carries
    /// (a frame that did not verify, a truncated message) or the I/O failure itself.
    pub fn from_stream(e: std::io::Error) -> Self {
        Self::Format(hyok_core::Error::from_io(e))
    }

    /// Usage, configuration or operation.
    pub fn kind(&self) -> ErrorKind {
        use hyok_audit::Error as A;
        use hyok_store::Error as S;
        match self {
            Self::Usage { .. } | Self::NoKeys { .. } | Self::ReservedContextKey(_) => {
                ErrorKind::Usage
            }
            Self::Config(_)
            | Self::NoDefaultStore { .. }
            | Self::KeyStore(hyok_keystore::Error::Config(_))
            | Self::Store(S::Config(_) | S::InvalidUrl(_))
            | Self::Audit(A::Config(_) | A::Key(_)) => ErrorKind::Config,
            // A limit, like --threads: raised on the command line.
            Self::Format(hyok_core::Error::FrameLengthLimit { .. }) => ErrorKind::Usage,
            _ => ErrorKind::Operation,
        }
    }

    /// The stable class: the one table behind exit codes, audit records and status codes.
    pub fn class(&self) -> ErrorClass {
        use hyok_audit::Error as A;
        use hyok_store::Error as S;
        match self {
            Self::Format(c) => ErrorClass::of_core(c),
            Self::KeyStore(k) => k.class(),
            Self::Audit(A::Config(_) | A::Key(_)) => ErrorClass::Config,
            Self::Audit(A::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorClass::NotFound
            }
            Self::Audit(A::Verification(_)) => ErrorClass::Tampered,
            Self::Audit(_) => ErrorClass::Audit,
            Self::Store(S::NotFound(_)) => ErrorClass::NotFound,
            Self::Store(S::Config(_) | S::InvalidUrl(_)) => ErrorClass::Config,
            Self::Store(S::Io { .. }) => ErrorClass::Io,
            Self::Store(S::NameTooLong(_) | S::PathConflict(_)) => ErrorClass::ObjectName,
            Self::Store(_) => ErrorClass::Storage,
            Self::Config(_) | Self::NoDefaultStore { .. } => ErrorClass::Config,
            Self::Usage { .. } | Self::NoKeys { .. } | Self::ReservedContextKey(_) => {
                ErrorClass::Usage
            }
            Self::ContextNotInMessage { .. } => ErrorClass::Context,
            Self::Residency(_) => ErrorClass::Policy,
            Self::Denied { .. } => ErrorClass::Denied,
            Self::ObjectMoved { .. } | Self::ObjectUnbound { .. } => ErrorClass::ObjectMoved,
            Self::UnsafeObjectName { .. } => ErrorClass::ObjectName,
            Self::Range(_) => ErrorClass::Range,
            Self::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorClass::NotFound
            }
            Self::Io { .. } => ErrorClass::Io,
        }
    }

    /// Whether a policy refused (audited as a `policy-refusal` record as well).
    pub fn is_policy_refusal(&self) -> bool {
        self.class() == ErrorClass::Policy
    }

    /// What to do about it, when there is something to say.
    pub fn hint(&self) -> Option<Cow<'static, str>> {
        use hyok_audit::Error as A;
        use hyok_core::Error as C;
        use hyok_keystore::Error as K;
        use hyok_store::Error as S;
        let h: &'static str = match self {
            Self::Usage { hint, .. } => return hint.clone().map(Cow::Owned),
            Self::NoKeys { has_config: false } => {
                "pass --key URI or --keyring NAME, or run `hyok init` to create a default keyring"
            }
            Self::NoKeys { has_config: true } => {
                "pass --key URI or --keyring NAME, or set [defaults] keyring in the configuration"
            }
            Self::NoDefaultStore { config: None, .. } => {
                "run `hyok init` to create a configuration with a default store, or give a full location (s3://BUCKET/KEY, file:///DIR/KEY)"
            }
            Self::NoDefaultStore { config: Some(_), .. } => {
                "set [defaults] store = \"NAME\" in the configuration, or write NAME:KEY"
            }
            Self::ReservedContextKey(_) => {
                "choose another context key; the ESDK adds aws-crypto-* pairs itself"
            }
            Self::ContextNotInMessage { .. } => {
                "drop the -c pairs the message does not have, or give the exact value the writer required; `hyok inspect` shows the stored context"
            }
            Self::Config(_) => CONFIG_HINT,
            Self::Residency(_) => {
                "the [residency] rules of the configuration list the only places data may be stored"
            }
            Self::ObjectMoved { .. } => {
                "objects are bound to their bucket and key; copy them with hyok (download, upload) instead of moving them, or upload with --no-bind-location"
            }
            Self::ObjectUnbound { .. } => {
                "an object uploaded with --no-bind-location can be read only with --no-bind-location (or bind_location = false under [defaults] in hyok.toml)"
            }
            Self::UnsafeObjectName { .. } => return None,
            Self::Denied { .. } => {
                "the [policy] files of the configuration decide; `hyok policy explain ACTION RESOURCE` shows which policies apply"
            }
            Self::Store(S::NotFound(_) | S::Config(_) | S::InvalidUrl(_) | S::Io { .. }) => {
                return None
            }
            Self::Store(S::NameTooLong(_)) => {
                "shorten the key's folder and file names (most file systems allow 255 bytes a name), or store it in an S3 bucket"
            }
            Self::Store(S::PathConflict(_)) => {
                "choose another key (a key cannot also be a folder of other keys in a local folder), or store it in an S3 bucket"
            }
            Self::Store(S::Store { object, .. }) if object.starts_with("file://") => {
                "check that the folder exists and that this user can read and write it"
            }
            Self::Store(_) => {
                "check the endpoint, credentials (AWS_* variables or ~/.aws) and that the bucket exists"
            }
            Self::Audit(a) => match a {
                A::Config(_) => "see `hyok audit --help` for HYOK_AUDIT_LOG and HYOK_AUDIT_KEY",
                A::Key(_) => {
                    "HYOK_AUDIT_KEY names a PEM EC (P-256/P-384) private key; `hyok key new ec-p256 -o NAME` makes one"
                }
                A::Verification(_) => {
                    "the log changed after it was written; compare it with a copy (SIEM, backup) from the line named on"
                }
                A::Locked { .. } => "another hyok process holds the audit log; retry",
                _ => return None,
            },
            Self::Format(c) | Self::KeyStore(K::Core(c)) => match c {
                C::CommitmentPolicy(_) => {
                    "pass --allow-legacy to decrypt messages from older ESDK writers"
                }
                C::HeaderAuth => {
                    "check the -c KEY=VALUE pairs: a pair the writer required but did not store must be given again"
                }
                C::Context(_) => {
                    "`hyok inspect` shows the message's stored encryption context"
                }
                C::Truncated(_) => "the message is incomplete; was the transfer cut short?",
                C::TooManyEncryptedDataKeys { .. } => "raise --max-edks if this message is trusted",
                C::FrameLengthLimit { found, .. } if *found <= hyok_core::MAX_WRITE_FRAME_LEN => {
                    "raise --max-frame-length if this message is trusted (about two frames are held in memory)"
                }
                C::UnsupportedVersion(_) | C::UnknownSuite(_) => {
                    "this input is not an AWS Encryption SDK message (hyok messages start with byte 0x02)"
                }
                _ => return None,
            },
            Self::KeyStore(k) => match k {
                K::Config(_) => return None,
                K::NoMatchingKey { .. } => {
                    "pass the --key that encrypted it; `hyok inspect` lists the message's wrapping keys"
                }
                K::UnwrapFailed { .. } => {
                    "check the -c KEY=VALUE pairs and that the key file is the one used to encrypt"
                }
                K::PinRejected { .. } => {
                    "check the PIN in HYOK_PKCS11_PIN or in the ?pin-source=file:PATH file"
                }
                K::ModuleUnavailable { .. } => {
                    "set HYOK_PKCS11_MODULE (or ?module-path=) to the vendor's PKCS#11 library; docs/HSM.md lists them"
                }
                K::TokenNotFound { .. } => {
                    "`pkcs11-tool --module MODULE --list-token-slots` shows the token labels"
                }
                K::NotFound { .. } => "`hyok key list STORE-URI` lists the keys of a key store",
                K::KeyVersionTooOld { .. } => {
                    "an operator raised the key's minimum decryption version above the version that wrapped this message (`hyok inspect` shows it); lowering it again makes the message readable"
                }
                K::Unavailable { .. } => {
                    "is the key store running and reachable? `timeout=SECONDS` and `retries=N` in the key URI bound the wait"
                }
                _ => return None,
            },
            Self::Range(_) | Self::Io { .. } => return None,
        };
        Some(Cow::Borrowed(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_classes_come_from_typed_causes() {
        let pin = Error::KeyStore(hyok_keystore::Error::PinRejected {
            key: "pkcs11:token=t;object=k".into(),
            detail: "renamed message text".into(),
        });
        assert_eq!(pin.kind(), ErrorKind::Operation);
        assert_eq!(pin.class(), ErrorClass::Denied);
        assert!(pin.hint().unwrap().contains("HYOK_PKCS11_PIN"));
        let not_esdk = Error::Format(hyok_core::Error::UnsupportedVersion(0x68));
        assert_eq!(not_esdk.class(), ErrorClass::Format);
        assert!(not_esdk
            .hint()
            .unwrap()
            .contains("not an AWS Encryption SDK message"));
        let reserved = Error::ReservedContextKey("aws-crypto-x".into());
        assert_eq!(reserved.kind().exit_code(), 2);
        assert_eq!(Error::Config("x".into()).kind().exit_code(), 2);
        assert_eq!(
            Error::Format(hyok_core::Error::FrameAuth(3)).class(),
            ErrorClass::Tampered
        );
        assert!(Error::Residency("no".into()).is_policy_refusal());
    }
}
