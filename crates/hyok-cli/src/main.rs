//! The `hyok` command-line tool.
#![forbid(unsafe_code)]

mod args;
mod cmd;
mod io;
mod pipe;
mod signals;
mod stream;
mod tempout;

use std::fmt;
use std::process::ExitCode;

use clap::Parser;

/// A usage or configuration error (exit status 2), with an optional hint.
#[derive(Debug)]
pub(crate) struct Usage {
    msg: String,
    hint: Option<String>,
}

impl Usage {
    pub(crate) fn err(msg: impl Into<String>, hint: Option<&str>) -> anyhow::Error {
        anyhow::Error::new(Self {
            msg: msg.into(),
            hint: hint.map(str::to_owned),
        })
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Usage {}

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = e.exit_code();
            let _ = e.print();
            return ExitCode::from(code.clamp(0, 255) as u8);
        }
    };
    if std::env::var_os("HYOK_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("HYOK_LOG"))
            .with_writer(std::io::stderr)
            .try_init();
    }
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// Print the error once, on one line, with a hint where one helps; return the exit code.
fn report(e: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(e) {
        return ExitCode::from(1);
    }
    let one_line = |s: String| s.replace(['\n', '\r'], " ");
    let (code, hint) = classify(e);
    eprintln!("hyok: error: {}", one_line(format!("{e:#}")));
    if let Some(h) = hint {
        eprintln!("hint: {}", one_line(h));
    }
    ExitCode::from(code)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn classify(e: &anyhow::Error) -> (u8, Option<String>) {
    use hyok_core::Error as C;
    use hyok_keystore::Error as K;
    for cause in e.chain() {
        if let Some(u) = cause.downcast_ref::<Usage>() {
            return (2, u.hint.clone());
        }
        let audit = cause.downcast_ref::<hyok::audit::AuditError>().or_else(|| {
            match cause.downcast_ref::<hyok::Error>() {
                Some(hyok::Error::Audit(a)) => Some(a),
                _ => None,
            }
        });
        if let Some(a) = audit {
            use hyok::audit::AuditError as A;
            return match a {
                A::Config(_) => (2, Some("see `hyok audit --help` for HYOK_AUDIT_LOG and HYOK_AUDIT_KEY".into())),
                A::Key(_) => (2, Some("HYOK_AUDIT_KEY names a PEM EC (P-256/P-384) private key; `hyok key new ec-p256 -o NAME` makes one".into())),
                A::Verification(_) => (1, Some("the log changed after it was written; compare it with a copy (SIEM, backup) from the line named on".into())),
                A::Locked { .. } => (1, Some("another hyok process holds the audit log; retry".into())),
                _ => (1, None),
            };
        }
        let core = cause
            .downcast_ref::<C>()
            .or_else(|| match cause.downcast_ref::<hyok::Error>() {
                Some(hyok::Error::Format(c)) => Some(c),
                _ => None,
            })
            .or_else(|| match cause.downcast_ref::<K>() {
                Some(K::Core(c)) => Some(c),
                _ => None,
            });
        if let Some(c) = core {
            if let C::FrameLengthLimit { found, .. } = c {
                // A limit, like --threads: exit 2 (usage), with the way to raise it.
                let hint = (*found <= hyok_core::MAX_WRITE_FRAME_LEN).then(|| {
                    "raise --max-frame-length if this message is trusted (about two frames are held in memory)".to_owned()
                });
                return (2, hint);
            }
            let hint = match c {
                C::CommitmentPolicy(_) => Some("pass --allow-legacy to decrypt messages from older ESDK writers"),
                C::HeaderAuth => Some("check the -c KEY=VALUE pairs: a pair the writer required but did not store must be given again"),
                C::Context(_) => Some("`hyok inspect` shows the message's stored encryption context"),
                C::Truncated(_) => Some("the message is incomplete; was the transfer cut short?"),
                C::TooManyEncryptedDataKeys { .. } => Some("raise --max-edks if this message is trusted"),
                _ => None,
            };
            return (1, hint.map(str::to_owned));
        }
        if let Some(h) = cause.downcast_ref::<hyok::Error>() {
            use hyok::store::Error as S;
            match h {
                hyok::Error::Config(_) => return (2, Some("check the configuration file (hyok --config PATH, $HYOK_CONFIG, ~/.config/hyok/hyok.toml)".into())),
                hyok::Error::Residency(_) => return (1, Some("the [residency] rules of the configuration list the only places data may be stored".into())),
                hyok::Error::ObjectMoved { .. } => return (1, Some("objects are bound to their bucket and key; copy them with hyok (download, upload) instead of moving them, or upload with --no-bind-location".into())),
                hyok::Error::ObjectUnbound { .. } => return (1, Some("an object uploaded with --no-bind-location can be read only with --no-bind-location (or bind_location = false under [defaults] in hyok.toml)".into())),
                hyok::Error::Range(_) => return (1, None),
                hyok::Error::Store(S::Config(_) | S::InvalidUrl(_)) => return (2, None),
                hyok::Error::Store(S::NotFound(_)) => return (1, None),
                hyok::Error::Store(_) => return (1, Some("check the endpoint, credentials (AWS_* variables or ~/.aws) and that the bucket exists".into())),
                _ => {}
            }
        }
        let ks = cause
            .downcast_ref::<K>()
            .or_else(|| match cause.downcast_ref::<hyok::Error>() {
                Some(hyok::Error::KeyStore(k)) => Some(k),
                _ => None,
            });
        if let Some(k) = ks {
            return match k {
                K::Config(_) => (2, None),
                K::NoMatchingKey { .. } => (1, Some("pass the --key that encrypted it; `hyok inspect` lists the message's wrapping keys".into())),
                K::UnwrapFailed { .. } => (1, Some("check the -c KEY=VALUE pairs and that the key file is the one used to encrypt".into())),
                K::Denied { detail, .. } if detail.contains("CKR_PIN") => (1, Some("check the PIN in HYOK_PKCS11_PIN or in the ?pin-source=file:PATH file".into())),
                K::Unavailable { detail, .. } if detail.contains("PKCS#11 module") => (1, Some("set HYOK_PKCS11_MODULE (or ?module-path=) to the vendor's PKCS#11 library; docs/HSM.md lists them".into())),
                K::NotFound { detail, .. } if detail.starts_with("no token") => (1, Some("`pkcs11-tool --module MODULE --list-token-slots` shows the token labels".into())),
                K::NotFound { key, detail } if key.starts_with("pkcs11:") && detail.starts_with("no key") => (1, Some("`hyok key list pkcs11:token=LABEL` lists the keys in a token".into())),
                K::KeyVersionTooOld { .. } => (1, Some("an operator raised the key's minimum decryption version above the version that wrapped this message (`hyok inspect` shows it); lowering it again makes the message readable".into())),
                K::Unavailable { .. } => (1, Some("is the key store running and reachable? `timeout=SECONDS` and `retries=N` in the key URI bound the wait".into())),
                _ => (1, None),
            };
        }
    }
    (1, None)
}
