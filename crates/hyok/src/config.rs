//! The configuration file `hyok.toml`: named keyrings, named stores, transfer defaults and the
//! residency allowlist.
//!
//! Found, in order: an explicit path (`hyok --config PATH`), `$HYOK_CONFIG`, then the per-user
//! file `$XDG_CONFIG_HOME/hyok/hyok.toml` (default `~/.config/hyok/hyok.toml`). Without any,
//! hyok runs with an empty configuration (every key and location given on the command line).
//!
//! ```toml
//! [defaults]
//! keyring = "default"        # used by `hyok cp` when no --key/--keyring is given
//! store = "local"            # `hyok cp FILE :NAME` puts NAME into this store
//!
//! [keyrings.default]
//! keys = ["raw-aes:hyok/default?file=/home/me/.local/share/hyok/keys/default.key"]
//!
//! [stores.local]
//! url = "file:///home/me/.local/share/hyok/store/"
//!
//! [stores.eu]
//! url = "s3://my-bucket/backups/"
//! region = "eu-central-1"
//! endpoint = "https://s3.eu-central-1.amazonaws.com"
//!
//! [[residency.allow]]
//! name = "eu-only"
//! region = "eu-central-1"
//!
//! [audit]                    # the environment (HYOK_AUDIT_LOG, …) overrides each field
//! log = "/var/log/hyok/audit.log"
//! key = "/etc/hyok/audit-signing.pem"   # or a pkcs11: URI of an EC key
//! identity = "backup-job@host-7"
//! checkpoint_every = 1000
//! checkpoint_secs = 60
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyok_keystore::cache::CacheLimits;
use hyok_store::{RetrySettings, StoreOptions, StoreUrl, Transfer};
use serde::Deserialize;

use crate::policy::Residency;
use crate::{Error, Result};

/// Environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "HYOK_CONFIG";

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Defaults for commands.
    #[serde(default)]
    pub defaults: Defaults,
    /// Named keyrings.
    #[serde(default)]
    pub keyrings: BTreeMap<String, KeyringConfig>,
    /// Named stores.
    #[serde(default)]
    pub stores: BTreeMap<String, StoreConfig>,
    /// Transfer settings.
    #[serde(default)]
    pub transfer: TransferConfig,
    /// Where data may be stored.
    #[serde(default)]
    pub residency: Residency,
    /// The audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// `[xks]`: the AWS KMS external key store proxy (`hyok xks`), read by the `hyok-xks`
    /// crate; kept as a table here so the facade does not depend on it.
    #[serde(default)]
    pub xks: Option<toml::Table>,
    /// The S3 gateway (`hyok gateway`).
    #[serde(default)]
    pub gateway: Option<GatewayConfig>,
    /// `[policy]`: Cedar policy files deciding every request (see `docs/POLICY.md`).
    #[serde(default)]
    pub policy: Option<crate::policy::PolicyConfig>,
}

/// `[gateway]`: the S3-compatible encrypting endpoint (`hyok gateway`, crate `hyok-gateway`).
/// Relative paths are taken relative to the configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// `ADDR:PORT` to listen on (default `127.0.0.1:7070`).
    pub listen: Option<String>,
    /// Where objects go: `file:///DIR/` (client bucket B at `DIR/B/`) or `s3://` (client
    /// bucket B in backend bucket B; the `[stores]` endpoint and region settings apply).
    pub backend: Option<String>,
    /// TLS certificate chain (PEM). Without it the gateway speaks plain HTTP, which it only
    /// does on a loopback address unless `allow_plain_http` is set.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy).
    #[serde(default)]
    pub allow_plain_http: bool,
    /// Who may connect.
    #[serde(default)]
    pub credentials: Vec<GatewayCredential>,
    /// S3 requests served at once (default 256); one more is answered `503 SlowDown`.
    pub max_requests: Option<usize>,
    /// Seconds a client may keep the gateway waiting (default 75): for a TLS handshake, a
    /// request's headers (also the next request on a kept-alive connection), the next bytes
    /// of a request body (then `400 RequestTimeout`), or to take the next bytes of an answer;
    /// then its connection is closed.
    pub idle_timeout: Option<u64>,
    /// Seconds a CompleteMultipartUpload may run before its answer starts (default 20): then,
    /// as S3 does for a long Complete, `200 OK`, a space every 2 s, and the result (or an
    /// `<Error>` document) at the end, so that clients do not time out. 1 to 3600.
    pub keepalive_after: Option<u64>,
    /// Multipart parts of equal size sealed once as the frames of the final object
    /// ("direct frames", default on); `false` stages every part and re-encrypts at Complete.
    pub direct_parts: Option<bool>,
    /// On an S3 backend, direct parts go straight into a backend multipart upload ("parts in
    /// place", default on); `false` keeps them as objects of their own, copied at Complete.
    pub parts_in_place: Option<bool>,
    /// Base domains of virtual-hosted-style requests: with `s3.example.internal` here, a
    /// request to `B.s3.example.internal` addresses bucket B. Any other host (an IP address,
    /// the domain itself, a name not listed) is read path-style. Empty by default.
    #[serde(default)]
    pub virtual_host_domains: Vec<String>,
}

/// `[[gateway.credentials]]`: one S3 access key of the gateway.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayCredential {
    /// The access key id clients sign with.
    pub access_key_id: String,
    /// File holding the secret access key (never the secret itself).
    pub secret_access_key_file: PathBuf,
    /// The keyring that encrypts this credential's uploads (default: `[defaults] keyring`).
    pub keyring: Option<String>,
    /// Bucket or `bucket/prefix` patterns (`*` matches any run of characters).
    pub buckets: Vec<String>,
}

/// `[audit]`: the same settings as the `HYOK_AUDIT_*` variables, which override them field
/// by field. A relative `log` path is taken relative to the configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The log file; logging is off without one.
    pub log: Option<PathBuf>,
    /// Checkpoint signing key: a PEM private key path or a `pkcs11:` URI of an EC key.
    pub key: Option<String>,
    /// Identity written into every record.
    pub identity: Option<String>,
    /// Log origin written into checkpoints.
    pub origin: Option<String>,
    /// Checkpoint every N records.
    pub checkpoint_every: Option<u64>,
    /// Checkpoint every T seconds (when records follow the last checkpoint).
    pub checkpoint_secs: Option<u64>,
}

impl Loaded {
    /// The `[audit]` section as settings, with a relative log path resolved against the
    /// directory of the configuration file.
    pub fn audit_settings(&self) -> crate::audit::AuditSettings {
        let a = &self.config.audit;
        let base = self.path.as_deref().and_then(Path::parent);
        crate::audit::AuditSettings {
            log: a.log.as_ref().map(|p| match base {
                Some(b) if p.is_relative() => b.join(p),
                _ => p.clone(),
            }),
            key: a.key.clone(),
            identity: a.identity.clone(),
            origin: a.origin.clone(),
            checkpoint_every: a.checkpoint_every,
            checkpoint_interval: a.checkpoint_secs.map(Duration::from_secs),
        }
    }
}

/// `[defaults]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Keyring used when a command names none.
    pub keyring: Option<String>,
    /// Store that `:NAME` locations refer to.
    pub store: Option<String>,
    /// Bind each object's bucket and key into its encryption context (default true).
    pub bind_location: Option<bool>,
}

/// `[keyrings.NAME]`: a list of key URIs; the first generates data keys. Or a k-of-n
/// keyring: `threshold = K` and `groups = [[URI, …], …]` (see docs/CUSTODY.md).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyringConfig {
    /// Key URIs, generator first (with `groups`: extra keys, each of which alone opens).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Data-key cache for this keyring (`[keyrings.NAME.cache]`: max-age, max-messages,
    /// max-bytes, max-entries); absent means every object gets a key-store call. Entries are
    /// per encryption context, so objects bound to their location never share a data key.
    #[serde(default)]
    pub cache: Option<CacheLimits>,
    /// A branch key (`branch = "NAME"`): data keys are wrapped under its active version, and
    /// `keys` (the master keys) wrap only the branch key versions (docs/ROTATION.md).
    #[serde(default)]
    pub branch: Option<String>,
    /// The branch key store of `branch`: a directory (relative paths are taken relative to
    /// the configuration file) or `s3://BUCKET/[PREFIX/]` (versions under
    /// `PREFIX/.hyok/branches/`). Default: `$HYOK_BRANCH_STORE`, else
    /// `~/.local/share/hyok/branches`.
    #[serde(default)]
    pub branch_store: Option<PathBuf>,
    /// k of a k-of-n keyring: how many of `groups` must take part to open a message.
    pub threshold: Option<usize>,
    /// The key groups of a k-of-n keyring: each a list of key URIs, any of which opens that
    /// group's share of the data key.
    #[serde(default)]
    pub groups: Vec<Vec<String>>,
}

/// `[stores.NAME]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `s3://BUCKET/PREFIX/` or `file:///DIR/` (or a local path).
    pub url: String,
    /// Endpoint of an S3-compatible server (path-style requests).
    pub endpoint: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Profile in `~/.aws/config` and `~/.aws/credentials`.
    pub profile: Option<String>,
    /// Most retries of a request that failed transiently (default 10).
    pub max_retries: Option<usize>,
    /// Seconds after which a failing request is no longer retried (default 180).
    pub retry_timeout_secs: Option<u64>,
    /// Allow plain `http://` to `endpoint` although it is not on this machine: set it to
    /// the endpoint URL itself (plain HTTP is otherwise allowed only to loopback).
    pub allow_http: Option<String>,
}

/// `[transfer]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferConfig {
    /// Multipart part size and ranged-GET size in MiB (default 8, minimum 5).
    pub part_size_mib: Option<usize>,
    /// Parts or ranged GETs in flight at once over all objects (default 8).
    pub concurrency: Option<usize>,
    /// Objects copied at once by recursive copies (default 8).
    pub jobs: Option<usize>,
}

impl TransferConfig {
    /// The transfer settings (defaults filled in).
    pub fn transfer(&self) -> Transfer {
        Transfer::new(
            self.part_size_mib.unwrap_or(8).saturating_mul(1024 * 1024),
            self.concurrency.unwrap_or(8),
        )
    }

    /// Objects at once.
    pub fn jobs(&self) -> usize {
        self.jobs.unwrap_or(8).max(1)
    }
}

/// A loaded configuration and where it came from.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// The configuration (empty when no file was found).
    pub config: Config,
    /// The file it was read from.
    pub path: Option<PathBuf>,
}

/// The per-user configuration file location.
pub fn user_config_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("hyok").join("hyok.toml"))
}

/// The per-user data directory (`$XDG_DATA_HOME/hyok`, default `~/.local/share/hyok`).
pub fn user_data_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".local/share"),
    };
    Some(base.join("hyok"))
}

/// The per-user state directory (`$XDG_STATE_HOME/hyok`, default `~/.local/state/hyok`),
/// where the journal of multipart uploads in flight lives.
pub fn user_state_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".local/state"),
    };
    Some(base.join("hyok"))
}

/// Where the configuration file is (or would be): the explicit path, `$HYOK_CONFIG`, or the
/// per-user location. The flag says whether the file must exist (explicitly named).
pub fn config_location(explicit: Option<&Path>) -> Option<(PathBuf, bool)> {
    if let Some(p) = explicit {
        return Some((p.to_path_buf(), true));
    }
    match std::env::var_os(CONFIG_ENV) {
        Some(p) if !p.is_empty() => Some((PathBuf::from(p), true)),
        _ => user_config_path().map(|p| (p, false)),
    }
}

/// Largest `[transfer] part_size_mib`: S3's largest part, 5 GiB.
pub const MAX_PART_SIZE_MIB: usize = 5 * 1024;
/// Largest `[transfer] concurrency` and `jobs`.
pub const MAX_CONCURRENCY: usize = 1024;

/// Largest configuration file read (a real one is a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Open a configuration file: never a device or directory (`--config /dev/zero` would never
/// end); a FIFO (`--config <(…)`) is fine.
fn open_config(path: &Path) -> std::io::Result<std::fs::File> {
    use std::io::{Error as IoError, ErrorKind};
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() && !is_pipe(&meta) {
        return Err(IoError::new(
            ErrorKind::InvalidInput,
            "not a regular file (a device or directory)",
        ));
    }
    Ok(file)
}

/// The text of an opened configuration file: at most [`MAX_CONFIG_BYTES`], UTF-8.
fn read_config_text(file: std::fs::File) -> std::io::Result<String> {
    use std::io::{Error as IoError, ErrorKind, Read};
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(IoError::new(
            ErrorKind::InvalidInput,
            format!("larger than {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    String::from_utf8(bytes).map_err(|_| IoError::new(ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Whether `meta` is a FIFO (`--config <(…)`).
fn is_pipe(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        meta.file_type().is_fifo()
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}

impl Config {
    /// Load the configuration (see the module docs for the search order).
    pub fn load(explicit: Option<&Path>) -> Result<Loaded> {
        let Some((path, required)) = config_location(explicit) else {
            return Ok(Loaded::default());
        };
        let cannot_read =
            |e: std::io::Error| Error::Config(format!("cannot read {}: {e}", path.display()));
        let file = match open_config(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Loaded::default())
            }
            Err(e) => return Err(cannot_read(e)),
        };
        refuse_writable_by_others(&file, &path)?;
        let text = read_config_text(file).map_err(cannot_read)?;
        let config = Self::parse(&text).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })?;
        Ok(Loaded {
            config,
            path: Some(path),
        })
    }

    /// Parse and check a configuration text.
    pub fn parse(text: &str) -> Result<Self> {
        let config: Self =
            toml::from_str(text).map_err(|e| Error::Config(e.message().to_owned()))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        let t = &self.transfer;
        for (name, v, max) in [
            ("part_size_mib", t.part_size_mib, MAX_PART_SIZE_MIB),
            ("concurrency", t.concurrency, MAX_CONCURRENCY),
            ("jobs", t.jobs, MAX_CONCURRENCY),
        ] {
            if v.is_some_and(|v| v == 0 || v > max) {
                return Err(Error::Config(format!(
                    "[transfer] {name} must be between 1 and {max}"
                )));
            }
        }
        if self.audit.checkpoint_every == Some(0) || self.audit.checkpoint_secs == Some(0) {
            return Err(Error::Config(
                "[audit] checkpoint_every and checkpoint_secs must be positive".into(),
            ));
        }
        for (name, k) in &self.keyrings {
            crate::custody::check_keyring(name, k)?;
            if let Some(c) = &k.cache {
                c.validate()
                    .map_err(|e| Error::Config(format!("keyring {name:?}: {e}")))?;
            }
            if let Some(b) = &k.branch {
                hyok_keystore::branch::check_name(b)
                    .map_err(|e| Error::Config(format!("keyring {name:?}: {e}")))?;
            } else if k.branch_store.is_some() {
                return Err(Error::Config(format!(
                    "keyring {name:?}: branch_store without branch"
                )));
            }
        }
        for (name, s) in &self.stores {
            check_name(name, "store")?;
            StoreUrl::parse(&s.url).map_err(|e| Error::Config(format!("store {name:?}: {e}")))?;
        }
        for which in [
            ("keyring", &self.defaults.keyring),
            ("store", &self.defaults.store),
        ] {
            if let (kind, Some(n)) = which {
                let known = match kind {
                    "keyring" => self.keyrings.contains_key(n),
                    _ => self.stores.contains_key(n),
                };
                if !known {
                    return Err(Error::Config(format!(
                        "[defaults] {kind} = {n:?} names no [{kind}s.{n}] section"
                    )));
                }
            }
        }
        self.residency.check()
    }

    /// The key URIs of a keyring.
    pub fn keyring(&self, name: &str) -> Result<&KeyringConfig> {
        self.keyrings.get(name).ok_or_else(|| {
            Error::Config(format!(
                "no keyring named {name:?} in the configuration (known: {})",
                list(self.keyrings.keys())
            ))
        })
    }

    /// Resolve a location: `s3://…`, `file://…`, `NAME:PATH` for a named store, `:PATH` for
    /// the default store, or a local path. Returns the URL and the store's options.
    pub fn resolve_location(&self, loc: &str) -> Result<(StoreUrl, StoreOptions)> {
        if !loc.contains("://") {
            if let Some((name, rest)) = loc.split_once(':') {
                let name = if name.is_empty() {
                    self.defaults.store.as_deref().ok_or_else(|| {
                        Error::Config(format!(
                            "{loc:?} refers to the default store, but [defaults] store is not set"
                        ))
                    })?
                } else {
                    name
                };
                if let Some(s) = self.stores.get(name) {
                    let base = StoreUrl::parse(&s.url)
                        .map_err(|e| Error::Config(format!("store {name:?}: {e}")))?;
                    let url = if rest.is_empty() {
                        base.as_folder()
                    } else {
                        let mut u = base.join(rest)?;
                        if rest.ends_with('/') {
                            u = u.as_folder();
                        }
                        u
                    };
                    return Ok((url, s.options()));
                }
                // Only names that look like store names are taken as such; `C:…` or
                // `./a:b` stay local paths.
                if name.len() > 1 && is_name(name) && !Path::new(loc).exists() {
                    return Err(Error::Config(format!(
                        "no store named {name:?} in the configuration (known: {})",
                        list(self.stores.keys())
                    )));
                }
            }
        }
        let url = StoreUrl::parse(loc)?;
        // A URL inside a configured store's bucket uses that store's connection settings.
        let opts = self
            .stores
            .values()
            .find(|s| {
                StoreUrl::parse(&s.url)
                    .is_ok_and(|u| u.backend() == url.backend() && u.bucket() == url.bucket())
            })
            .map(StoreConfig::options)
            .unwrap_or_default();
        Ok((url, opts))
    }

    /// A starter configuration: one local AES key, one local folder store, both default.
    pub fn starter(key_file: &Path, store_dir: &Path) -> Result<String> {
        const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'/')
            .remove(b'-')
            .remove(b'_')
            .remove(b'.');
        let key_uri = format!(
            "raw-aes:hyok/default?file={}",
            percent_encoding::utf8_percent_encode(&key_file.display().to_string(), KEEP)
        );
        let store_url = StoreUrl::local(store_dir)?.as_folder().to_string();
        Ok(format!(
            r#"# hyok configuration (written by `hyok init`). Reference: docs/DESIGN.md.

[defaults]
# Keyring used when a command gets no --key/--keyring.
keyring = "default"
# Store meant by locations like ":reports/q3.pdf" (NAME:PATH picks another store).
store = "local"

[keyrings.default]
# Key URIs; the first generates each object's data key, every other one wraps it too.
keys = ["{key_uri}"]
# Data-key cache: reuse one data key for several objects with the same encryption context,
# within limits (off when absent; location-bound objects each have their own context).
# [keyrings.default.cache]
# max-age = "5m"
# max-messages = 1000
# max-bytes = "1GiB"

[stores.local]
# The embedded default: a local folder, no server.
url = "{store_url}"

# An S3 bucket (AWS or any S3-compatible server):
# [stores.eu]
# url = "s3://my-bucket/backups/"
# region = "eu-central-1"
# endpoint = "https://s3.eu-central-1.amazonaws.com"

# Residency guard: when rules are listed, `hyok cp` refuses any S3 destination that matches
# none of them, before sending a byte.
# [[residency.allow]]
# name = "eu-only"
# region = "eu-central-1"
# bucket = "my-bucket"
"#
        ))
    }
}

impl StoreConfig {
    /// Connection options of this store.
    pub fn options(&self) -> StoreOptions {
        let retry = match (self.max_retries, self.retry_timeout_secs) {
            (None, None) => None,
            (r, t) => Some(RetrySettings {
                max_retries: r.unwrap_or(10),
                timeout: Duration::from_secs(t.unwrap_or(180)),
            }),
        };
        StoreOptions {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            profile: self.profile.clone(),
            retry,
            journal_dir: None,
            allow_http: self.allow_http.clone(),
            unsigned_payload: false,
        }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_name(name: &str, what: &str) -> Result<()> {
    if is_name(name) && name.len() > 1 {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{what} name {name:?}: use two or more letters, digits, `-` or `_`"
        )))
    }
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// A configuration that others can write can add an escrow key to every upload or turn
/// off location binding: refuse it (checked on the open file, so it cannot change
/// between the check and the read).
fn refuse_writable_by_others(file: &std::fs::File, path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file
            .metadata()
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o022 != 0 {
            return Err(Error::Config(format!(
                "{} is writable by {} (mode {:o}); refusing a configuration others can change (chmod go-w {})",
                path.display(),
                if mode & 0o002 != 0 { "everyone" } else { "its group" },
                mode & 0o777,
                path.display()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = (file, path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starter_parses_and_resolves() {
        let text = Config::starter(Path::new("/h/k e y.key"), Path::new("/h/store")).unwrap();
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.defaults.keyring.as_deref(), Some("default"));
        assert!(c.keyrings["default"].keys[0].contains("file=/h/k%20e%20y.key"));
        let (u, _) = c.resolve_location(":a/b.txt").unwrap();
        assert_eq!(u.to_string(), "file:///h/store/a/b.txt");
        let (u, _) = c.resolve_location("local:").unwrap();
        assert_eq!(u.to_string(), "file:///h/store/");
        let (u, _) = c.resolve_location("s3://b/k").unwrap();
        assert_eq!(u.to_string(), "s3://b/k");
        assert!(c.resolve_location("nosuch:x").is_err());
        let (u, _) = c.resolve_location("/tmp/x").unwrap();
        assert_eq!(u.to_string(), "file:///tmp/x");
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(Config::parse("[defaults]\nkeyring = \"x\"\n").is_err());
        assert!(Config::parse("[keyrings.a]\nkeys = []\n").is_err());
        assert!(Config::parse("[stores.a]\nurl = \"s3://b/\"\n").is_err());
        assert!(Config::parse("[stores.ab]\nurl = \"gs://b/\"\n").is_err());
        assert!(Config::parse("unknown = 1\n").is_err());
        let c = Config::parse(
            "[stores.eu]\nurl = \"s3://b/p/\"\nregion = \"eu-central-1\"\nretry_timeout_secs = 5\n[keyrings.k]\nkeys = [\"raw-aes:a/b?file=x\"]\n[keyrings.k.cache]\nmax-age = \"60s\"\n",
        )
        .unwrap();
        let (u, o) = c.resolve_location("eu:x/y").unwrap();
        assert_eq!(u.to_string(), "s3://b/p/x/y");
        assert_eq!(o.region.as_deref(), Some("eu-central-1"));
        assert_eq!(o.retry.unwrap().timeout, Duration::from_secs(5));
        assert_eq!(
            c.keyrings["k"].cache.unwrap().max_age,
            Duration::from_secs(60)
        );
        assert!(Config::parse(
            "[keyrings.k]\nkeys = [\"x:y\"]\n[keyrings.k.cache]\nmax-messages = 0\n"
        )
        .is_err());
    }
}
