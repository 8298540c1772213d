//! The `[xks]` section of `hyok.toml`:
//!
//! ```toml
//! [xks]
//! listen = "127.0.0.1:8443"
//! tls_cert = "cert.pem"            # optional; plain HTTP only on loopback unless allowed
//! tls_key = "key.pem"
//! client_ca = "kms-ca.pem"         # optional: require mutual TLS
//! # client_cn = ["cks.kms.us-east-1.amazonaws.com"]  # default: cks.kms.REGION.amazonaws.com of the stores
//! # allow_plain_http = false       # serve plain HTTP on a non-loopback address
//! # max_in_flight = 64             # key-store calls at once
//! # max_queue = 256                # requests waiting for one; more: ThrottlingException
//! # backend_timeout_ms = 200       # queue wait + key-store call; more: DependencyTimeoutException
//!
//! [xks.stores.main]                # one logical external key store per URI path prefix
//! uri_prefix = "example/uri/path/prefix"
//! region = "us-east-1"
//! credentials = [ { access_key_id = "BETWEEN2TENAND3TENCHARACTERS", secret_access_key_file = "xks.secret" } ]
//!
//! [xks.stores.main.keys]           # external key id -> hyok key URI (an AES-256 key)
//! foo = { uri = "pkcs11:token=hyok;object=foo" }
//! encrypt_only_key = { uri = "…", usage = ["ENCRYPT"] }
//! metadata_only = { uri = "…", usage = [] }
//! disabled_key = { uri = "…", enabled = false }
//! guarded = { uri = "…", aws_principal_arn = ["arn:aws:iam::111122223333:role/*"], kms_via_service = ["s3.us-east-1.amazonaws.com"] }
//! ```
//!
//! Relative paths are taken relative to the configuration file. Secrets come from files
//! only (`secret_access_key_file`), never from the configuration itself.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::policy::AllowLists;
use crate::sigv4::Credential;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
/// Longest `XksProxyUriPath` (`/PREFIX/kms/xks/v1`).
pub const MAX_URI_PATH: usize = 128;
/// Longest external key id.
pub const MAX_KEY_ID: usize = 128;
/// Credential pairs per store (the specification asks for at least two, for rotation).
pub const MAX_CREDENTIALS: usize = 2;

/// A configuration error (exit status 2).
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileXks {
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    client_cn: Option<Vec<String>>,
    allow_plain_http: Option<bool>,
    max_in_flight: Option<usize>,
    max_queue: Option<usize>,
    backend_timeout_ms: Option<u64>,
    #[serde(default)]
    stores: BTreeMap<String, FileStore>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStore {
    uri_prefix: String,
    region: String,
    credentials: Vec<FileCredential>,
    #[serde(default)]
    keys: BTreeMap<String, FileKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCredential {
    access_key_id: String,
    secret_access_key_file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    uri: String,
    usage: Option<Vec<String>>,
    enabled: Option<bool>,
    aws_principal_arn: Option<Vec<String>>,
    kms_key_arn: Option<Vec<String>>,
    kms_via_service: Option<Vec<String>>,
    aws_source_vpc: Option<Vec<String>>,
    aws_source_vpce: Option<Vec<String>>,
}

/// TLS files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// CA of client certificates: mutual TLS when set.
    pub client_ca: Option<PathBuf>,
    /// Subject common names a client certificate must have (one of).
    pub client_names: Vec<String>,
}

/// Capacity limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Key-store calls at once.
    pub max_in_flight: usize,
    /// Requests waiting for a key-store call; more are answered ThrottlingException.
    pub max_queue: usize,
    /// Queue wait plus key-store call; longer is answered DependencyTimeoutException.
    pub backend_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_in_flight: 64,
            max_queue: 256,
            backend_timeout: Duration::from_millis(200),
        }
    }
}

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// `ENCRYPT`.
    pub encrypt: bool,
    /// `DECRYPT`.
    pub decrypt: bool,
}

/// One external key.
#[derive(Clone, Debug)]
pub struct KeyConfig {
    /// The hyok key URI.
    pub uri: String,
    /// Allowed operations.
    pub usage: Usage,
    /// `keyStatus` ENABLED (true) or DISABLED.
    pub enabled: bool,
    /// Allow-lists over the request metadata.
    pub allow: AllowLists,
}

/// One logical external key store.
#[derive(Debug)]
pub struct StoreConfig {
    /// Its name in the configuration.
    pub name: String,
    /// The URI path prefix without surrounding slashes (may be empty).
    pub uri_prefix: String,
    /// The AWS region KMS signs for.
    pub region: String,
    /// One or two credential pairs.
    pub credentials: Vec<Credential>,
    /// External key id → key.
    pub keys: BTreeMap<String, KeyConfig>,
}

impl StoreConfig {
    /// `/PREFIX/kms/xks/v1` (the `XksProxyUriPath` to give KMS).
    pub fn base_path(&self) -> String {
        if self.uri_prefix.is_empty() {
            "/kms/xks/v1".into()
        } else {
            format!("/{}/kms/xks/v1", self.uri_prefix)
        }
    }
}

/// The whole, checked `[xks]` configuration.
#[derive(Debug)]
pub struct XksConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// TLS (plain HTTP without).
    pub tls: Option<TlsFiles>,
    /// Plain HTTP on a non-loopback address was allowed explicitly.
    pub allow_plain_http: bool,
    /// Capacity limits.
    pub limits: Limits,
    /// The stores.
    pub stores: Vec<StoreConfig>,
}

/// Whether `s` is a valid external key id: 1 to 128 of `A–Z a–z 0–9 - . _`.
pub fn valid_key_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_KEY_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

fn valid_access_key_id(s: &str) -> bool {
    (20..=30).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

fn valid_secret(s: &str) -> bool {
    (43..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// Read a secret access key file: at most 1 KiB, not readable by other users, the first
/// line, 43 to 64 characters of `A–Z a–z 0–9 + / =`.
fn read_secret(path: &Path) -> Result<Zeroizing<String>, ConfigError> {
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| bad(format!("cannot read secret_access_key_file {shown}: {e}")))?;
    if meta.len() > 1024 {
        return Err(bad(format!(
            "secret_access_key_file {shown} is {} bytes; expected one short line",
            meta.len()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o004 != 0 {
            return Err(bad(format!(
                "secret_access_key_file {shown} is readable by every user; chmod 600 it"
            )));
        }
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| bad(format!("cannot read secret_access_key_file {shown}: {e}")))?,
    );
    let first = text.lines().next().unwrap_or("").trim();
    if !valid_secret(first) {
        return Err(bad(format!(
            "secret_access_key_file {shown} must hold 43 to 64 characters of A-Z a-z 0-9 + / = \
             (e.g. `openssl rand -base64 32`)"
        )));
    }
    Ok(Zeroizing::new(first.to_owned()))
}

fn usage(list: Option<Vec<String>>, at: &str) -> Result<Usage, ConfigError> {
    let Some(list) = list else {
        return Ok(Usage {
            encrypt: true,
            decrypt: true,
        });
    };
    let mut u = Usage {
        encrypt: false,
        decrypt: false,
    };
    for item in list {
        match item.as_str() {
            "ENCRYPT" => u.encrypt = true,
            "DECRYPT" => u.decrypt = true,
            other => {
                return Err(bad(format!(
                    "{at}: usage {other:?} is not ENCRYPT or DECRYPT"
                )))
            }
        }
    }
    Ok(u)
}

impl XksConfig {
    /// Check the `[xks]` table of a configuration file (`base`: the file's directory, for
    /// relative paths); `listen` overrides the file's address.
    pub fn from_table(
        table: Option<&toml::Table>,
        base: Option<&Path>,
        listen: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let Some(table) = table else {
            return Err(bad(
                "the configuration has no [xks] section (see docs/XKS.md for an example)",
            ));
        };
        let file: FileXks = table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| bad(format!("[xks]: {}", e.message())))?;
        let resolve = |p: PathBuf| match base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p,
        };
        let listen_text = listen
            .map(str::to_owned)
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            bad(format!(
                "listen address {listen_text:?} is not ADDR:PORT (e.g. 127.0.0.1:8443)"
            ))
        })?;
        let tls = match (file.tls_cert, file.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: resolve(cert),
                key: resolve(key),
                client_ca: file.client_ca.map(&resolve),
                client_names: file.client_cn.clone().unwrap_or_else(|| {
                    let mut regions: Vec<String> = file
                        .stores
                        .values()
                        .map(|s| format!("cks.kms.{}.amazonaws.com", s.region))
                        .collect();
                    regions.sort();
                    regions.dedup();
                    regions
                }),
            }),
            (None, None) if file.client_ca.is_some() => {
                return Err(bad("[xks] client_ca needs tls_cert and tls_key"))
            }
            (None, None) => None,
            _ => return Err(bad("[xks] needs both tls_cert and tls_key, or neither")),
        };
        let allow_plain_http = file.allow_plain_http.unwrap_or(false);
        if tls.is_none() && !listen.ip().is_loopback() && !allow_plain_http {
            return Err(bad(format!(
                "refusing plain HTTP on {listen}: AWS KMS requires HTTPS; set tls_cert and \
                 tls_key (or allow_plain_http = true behind a TLS-terminating load balancer)"
            )));
        }
        let d = Limits::default();
        let limits = Limits {
            max_in_flight: file.max_in_flight.unwrap_or(d.max_in_flight).clamp(1, 4096),
            max_queue: file.max_queue.unwrap_or(d.max_queue).min(65_536),
            backend_timeout: file
                .backend_timeout_ms
                .map(|ms| Duration::from_millis(ms.clamp(1, 60_000)))
                .unwrap_or(d.backend_timeout),
        };
        if file.stores.is_empty() {
            return Err(bad("[xks] has no [xks.stores.NAME] section"));
        }
        let mut stores = Vec::new();
        for (name, s) in file.stores {
            let at = format!("[xks.stores.{name}]");
            let prefix = s.uri_prefix.trim_matches('/').to_owned();
            let store = StoreConfig {
                name: name.clone(),
                uri_prefix: prefix,
                region: s.region,
                credentials: Vec::new(),
                keys: BTreeMap::new(),
            };
            let path = store.base_path();
            if path.len() > MAX_URI_PATH
                || path.contains("//")
                || !path
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_'))
            {
                return Err(bad(format!(
                    "{at}: uri_prefix gives the path {path:?}; it must be at most \
                     {MAX_URI_PATH} characters of a-z A-Z 0-9 / - _"
                )));
            }
            if stores.iter().any(|o: &StoreConfig| o.base_path() == path) {
                return Err(bad(format!("{at}: another store has uri_prefix {path:?}")));
            }
            if store.region.is_empty()
                || !store
                    .region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(bad(format!(
                    "{at}: region {:?} is not an AWS region",
                    store.region
                )));
            }
            if s.credentials.is_empty() || s.credentials.len() > MAX_CREDENTIALS {
                return Err(bad(format!(
                    "{at}: credentials needs one or two entries (two during a rotation)"
                )));
            }
            let mut credentials = Vec::new();
            for c in s.credentials {
                if !valid_access_key_id(&c.access_key_id) {
                    return Err(bad(format!(
                        "{at}: access_key_id {:?} must be 20 to 30 characters of A-Z and 2-7",
                        c.access_key_id
                    )));
                }
                if credentials
                    .iter()
                    .any(|o: &Credential| o.access_key_id == c.access_key_id)
                {
                    return Err(bad(format!(
                        "{at}: access_key_id {} appears twice",
                        c.access_key_id
                    )));
                }
                let secret = read_secret(&resolve(c.secret_access_key_file))?;
                credentials.push(Credential {
                    access_key_id: c.access_key_id,
                    secret,
                });
            }
            let mut keys = BTreeMap::new();
            for (id, k) in s.keys {
                let kat = format!("[xks.stores.{name}.keys] {id}");
                if !valid_key_id(&id) {
                    return Err(bad(format!(
                        "{kat}: a key id has 1 to {MAX_KEY_ID} characters of A-Z a-z 0-9 - . _"
                    )));
                }
                keys.insert(
                    id,
                    KeyConfig {
                        uri: k.uri,
                        usage: usage(k.usage, &kat)?,
                        enabled: k.enabled.unwrap_or(true),
                        allow: AllowLists {
                            aws_principal_arn: k.aws_principal_arn,
                            kms_key_arn: k.kms_key_arn,
                            kms_via_service: k.kms_via_service,
                            aws_source_vpc: k.aws_source_vpc,
                            aws_source_vpce: k.aws_source_vpce,
                        },
                    },
                );
            }
            stores.push(StoreConfig {
                credentials,
                keys,
                ..store
            });
        }
        Ok(Self {
            listen,
            tls,
            allow_plain_http,
            limits,
            stores,
        })
    }
}
