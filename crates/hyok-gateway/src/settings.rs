//! The gateway's settings: the `[gateway]` section of `hyok.toml` resolved into addresses,
//! a backend, TLS files and credentials whose secrets were read from their files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hyok::config::GatewayConfig;
use hyok::{Error, Result};
use zeroize::Zeroizing;

use crate::access::Pattern;

/// Listen address when neither `--listen` nor `[gateway] listen` says.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
/// Largest secret file read.
const MAX_SECRET_FILE: u64 = 4096;

/// Where objects are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// A local folder: client bucket B is the folder `ROOT/B/`.
    File(PathBuf),
    /// S3: client bucket B is backend bucket B.
    S3,
}

/// One S3 credential of the gateway.
pub struct Credential {
    /// The access key id.
    pub access_key_id: String,
    pub(crate) secret: Zeroizing<String>,
    /// The keyring of this credential's uploads (`None`: the default keyring).
    pub keyring: Option<String>,
    /// What it may reach.
    pub patterns: Vec<Pattern>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field("keyring", &self.keyring)
            .field("patterns", &self.patterns)
            .finish_non_exhaustive()
    }
}

/// Everything the gateway runs with.
#[derive(Debug)]
pub struct GatewaySettings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where objects go.
    pub backend: BackendKind,
    /// TLS certificate chain and key (PEM), when TLS is on.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The credentials.
    pub credentials: Vec<Credential>,
    /// S3 requests served at once.
    pub max_requests: usize,
    /// How long a client may keep the gateway waiting (`stall.rs`).
    pub idle_timeout: std::time::Duration,
    /// How long a CompleteMultipartUpload may run before its answer starts (`keepalive.rs`).
    pub keepalive_after: std::time::Duration,
    /// Whether multipart parts may be sealed in place ("direct frames", DESIGN.md).
    pub direct_parts: bool,
    /// Whether direct parts go straight into a backend multipart upload (S3 backends).
    pub parts_in_place: bool,
    /// Base domains of virtual-hosted-style requests, lower case (see `host.rs`).
    pub virtual_host_domains: Vec<String>,
}

/// Largest `[gateway] max_requests`.
const MAX_REQUESTS_LIMIT: usize = 100_000;
/// Largest `[gateway] idle_timeout`, in seconds.
const MAX_IDLE_TIMEOUT: u64 = 3600;

fn config(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

fn resolve(base: Option<&Path>, p: &Path) -> PathBuf {
    match base {
        Some(b) if p.is_relative() => b.join(p),
        _ => p.to_path_buf(),
    }
}

/// Read a secret from a file: at most 4 KiB, one line, not readable by group or others.
fn read_secret(path: &Path) -> Result<Zeroizing<String>> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let f = std::fs::File::open(path).map_err(|e| config(format!("cannot open {shown}: {e}")))?;
    let meta = f
        .metadata()
        .map_err(|e| config(format!("cannot read {shown}: {e}")))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(config(format!(
            "{shown} holds a secret but is readable or writable by group or others (chmod 600 it)"
        )));
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(config(format!(
            "{shown} is larger than {MAX_SECRET_FILE} bytes: not a secret access key file"
        )));
    }
    let mut text = Zeroizing::new(String::new());
    f.take(MAX_SECRET_FILE)
        .read_to_string(&mut text)
        .map_err(|e| config(format!("cannot read {shown}: {e}")))?;
    let secret = Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned());
    if secret.is_empty() || secret.contains(['\n', '\r']) || secret.len() < 8 {
        return Err(config(format!(
            "{shown} must hold one secret access key of at least 8 characters on one line"
        )));
    }
    Ok(secret)
}

/// Parse a backend URL: `file:///DIR/` (or an absolute path) or `s3://`.
pub fn parse_backend(s: &str, base: Option<&Path>) -> Result<BackendKind> {
    if let Some(rest) = s.strip_prefix("s3://") {
        if !rest.trim_matches('/').is_empty() {
            return Err(config(format!(
                "[gateway] backend = {s:?}: an S3 backend is `s3://` (client bucket B is stored in backend bucket B)"
            )));
        }
        return Ok(BackendKind::S3);
    }
    let path = match s.strip_prefix("file://") {
        Some(p) if p.starts_with('/') => PathBuf::from(p),
        Some(_) => {
            return Err(config(format!(
                "[gateway] backend = {s:?}: file URLs need an absolute path (file:///DIR/)"
            )))
        }
        None if s.contains("://") => {
            return Err(config(format!(
                "[gateway] backend = {s:?}: supported backends are file:///DIR/ and s3://"
            )))
        }
        None => resolve(base, Path::new(s)),
    };
    Ok(BackendKind::File(path))
}

impl GatewaySettings {
    /// Resolve the `[gateway]` section (relative paths against `base`, the configuration
    /// file's directory); `listen` overrides its address.
    pub fn resolve(
        section: Option<&GatewayConfig>,
        base: Option<&Path>,
        listen: Option<&str>,
    ) -> Result<Self> {
        let Some(c) = section else {
            return Err(config(
                "no [gateway] section in the configuration (it names the backend and the credentials)",
            ));
        };
        let text = listen.or(c.listen.as_deref()).unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = text.parse().map_err(|_| {
            config(format!(
                "listen address {text:?} is not ADDR:PORT (e.g. 127.0.0.1:7070)"
            ))
        })?;
        let backend = parse_backend(
            c.backend
                .as_deref()
                .ok_or_else(|| config("[gateway] sets no backend (file:///DIR/ or s3://)"))?,
            base,
        )?;
        let tls = match (&c.tls_cert, &c.tls_key) {
            (Some(cert), Some(key)) => Some((resolve(base, cert), resolve(base, key))),
            (None, None) => None,
            _ => {
                return Err(config(
                    "[gateway] needs both tls_cert and tls_key, or neither",
                ))
            }
        };
        if tls.is_none() && !listen.ip().is_loopback() && !c.allow_plain_http {
            return Err(config(format!(
                "refusing plain HTTP on {listen}, which is not a loopback address: set tls_cert and tls_key, or allow_plain_http = true behind a TLS-terminating proxy"
            )));
        }
        if c.credentials.is_empty() {
            return Err(config(
                "[gateway] has no [[gateway.credentials]]: nobody could connect",
            ));
        }
        let mut credentials: Vec<Credential> = Vec::new();
        for cred in &c.credentials {
            let id = &cred.access_key_id;
            if id.is_empty()
                || id.len() > 128
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(config(format!(
                    "[[gateway.credentials]] access_key_id {:?} must be 1-128 letters, digits, `-`, `_` or `.`",
                    hyok::text::escape_str(id)
                )));
            }
            if credentials.iter().any(|c| &c.access_key_id == id) {
                return Err(config(format!(
                    "[[gateway.credentials]] access_key_id {id:?} appears twice"
                )));
            }
            let patterns = cred
                .buckets
                .iter()
                .map(|p| Pattern::parse(p))
                .collect::<Result<Vec<_>>>()?;
            if patterns.is_empty() {
                return Err(config(format!(
                    "[[gateway.credentials]] {id:?} lists no buckets (use [\"*\"] for all)"
                )));
            }
            credentials.push(Credential {
                access_key_id: id.clone(),
                secret: read_secret(&resolve(base, &cred.secret_access_key_file))?,
                keyring: cred.keyring.clone(),
                patterns,
            });
        }
        let max_requests = c.max_requests.unwrap_or(crate::limit::DEFAULT_MAX_REQUESTS);
        if !(1..=MAX_REQUESTS_LIMIT).contains(&max_requests) {
            return Err(config(format!(
                "[gateway] max_requests = {max_requests}: use 1 to {MAX_REQUESTS_LIMIT}"
            )));
        }
        let idle_timeout = match c.idle_timeout {
            None => crate::stall::DEFAULT_IDLE_TIMEOUT,
            Some(s) if (1..=MAX_IDLE_TIMEOUT).contains(&s) => std::time::Duration::from_secs(s),
            Some(s) => {
                return Err(config(format!(
                    "[gateway] idle_timeout = {s}: use 1 to {MAX_IDLE_TIMEOUT} (seconds)"
                )))
            }
        };
        let keepalive_after = match c.keepalive_after {
            None => crate::keepalive::ANSWER_WITHIN,
            Some(s) if (1..=MAX_IDLE_TIMEOUT).contains(&s) => std::time::Duration::from_secs(s),
            // Not 0: a head sent the moment the request's body is read races clients that
            // are still finishing the request (keepalive.rs, "Never at once").
            Some(s) => {
                return Err(config(format!(
                    "[gateway] keepalive_after = {s}: use 1 to {MAX_IDLE_TIMEOUT} (seconds; an answer started at once breaks the Go SDK)"
                )))
            }
        };
        Ok(Self {
            listen,
            backend,
            tls,
            credentials,
            max_requests,
            idle_timeout,
            keepalive_after,
            direct_parts: c.direct_parts.unwrap_or(true),
            parts_in_place: c.parts_in_place.unwrap_or(true),
            virtual_host_domains: crate::host::check_domains(&c.virtual_host_domains)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse() {
        assert_eq!(parse_backend("s3://", None).unwrap(), BackendKind::S3);
        assert!(parse_backend("s3://bucket/", None).is_err());
        assert_eq!(
            parse_backend("file:///srv/data/", None).unwrap(),
            BackendKind::File("/srv/data/".into())
        );
        assert_eq!(
            parse_backend("data", Some(Path::new("/etc/hyok"))).unwrap(),
            BackendKind::File("/etc/hyok/data".into())
        );
        assert!(parse_backend("http://x", None).is_err());
    }

    fn section(dir: &Path, listen: &str) -> GatewayConfig {
        let secret = dir.join("gw.secret");
        std::fs::write(&secret, "0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        hyok::config::Config::parse(&format!(
            "[gateway]\nlisten = {listen:?}\nbackend = \"file:///srv/x/\"\n[[gateway.credentials]]\naccess_key_id = \"K1\"\nsecret_access_key_file = \"gw.secret\"\nkeyring = \"default\"\nbuckets = [\"*\"]\n"
        ))
        .unwrap()
        .gateway
        .unwrap()
    }

    #[test]
    fn plain_http_only_on_loopback_and_secrets_from_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let c = section(dir.path(), "127.0.0.1:7070");
        let s = GatewaySettings::resolve(Some(&c), Some(dir.path()), None).unwrap();
        assert_eq!(s.credentials[0].secret.as_str(), "0123456789abcdef");
        assert!(!format!("{s:?}").contains("0123456789abcdef"));
        let err = GatewaySettings::resolve(Some(&c), Some(dir.path()), Some("0.0.0.0:7070"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("plain HTTP"), "{err}");
        let mut allowed = c.clone();
        allowed.allow_plain_http = true;
        assert!(
            GatewaySettings::resolve(Some(&allowed), Some(dir.path()), Some("0.0.0.0:1")).is_ok()
        );
        std::fs::set_permissions(
            dir.path().join("gw.secret"),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        let err = GatewaySettings::resolve(Some(&c), Some(dir.path()), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn idle_timeout_defaults_to_75_s_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = section(dir.path(), "127.0.0.1:7070");
        let s = GatewaySettings::resolve(Some(&c), Some(dir.path()), None).unwrap();
        assert_eq!(s.idle_timeout, std::time::Duration::from_secs(75));
        c.idle_timeout = Some(5);
        let s = GatewaySettings::resolve(Some(&c), Some(dir.path()), None).unwrap();
        assert_eq!(s.idle_timeout, std::time::Duration::from_secs(5));
        for bad in [0, 3601] {
            c.idle_timeout = Some(bad);
            let err = GatewaySettings::resolve(Some(&c), Some(dir.path()), None)
                .unwrap_err()
                .to_string();
            assert!(err.contains("idle_timeout"), "{err}");
        }
    }

    #[test]
    fn keepalive_after_defaults_to_20_s_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = section(dir.path(), "127.0.0.1:7070");
        let s = GatewaySettings::resolve(Some(&c), Some(dir.path()), None).unwrap();
        assert_eq!(s.keepalive_after, std::time::Duration::from_secs(20));
        c.keepalive_after = Some(1);
        let s = GatewaySettings::resolve(Some(&c), Some(dir.path()), None).unwrap();
        assert_eq!(s.keepalive_after, std::time::Duration::from_secs(1));
        for bad in [0, 3601] {
            c.keepalive_after = Some(bad);
            let err = GatewaySettings::resolve(Some(&c), Some(dir.path()), None)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("keepalive_after") && err.contains("use 1 to"),
                "{err}"
            );
        }
    }
}
