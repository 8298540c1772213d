//! Building a Transit key or admin: `from_env()`, URI attributes or setters, `build()`;
//! and the checks of addresses, mounts and namespaces.

use super::*;

/// Settings of the Vault backend, by their key URI attribute names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VaultConfigKey {
    /// `addr` (alias `address`): `https://host:8200`, or several nodes of one cluster
    /// separated by commas (`https://a:8200,https://b:8200`).
    Addr,
    /// `mount` (alias `path`): the Transit mount path, default `transit`.
    Mount,
    /// `namespace` (alias `ns`): Vault Enterprise / OpenBao namespace.
    Namespace,
    /// `ca` (aliases `cacert`, `ca_cert`): PEM file of the CA(s) to trust instead of the
    /// system roots.
    CaFile,
    /// `token_file`: file holding the token (e.g. a Vault agent sink).
    TokenFile,
    /// `auth`: `token` or `approle`.
    Auth,
    /// `approle_mount`: where AppRole is mounted, default `approle`.
    AppRoleMount,
    /// `timeout`: seconds for connecting and for each request.
    Timeout,
    /// `retries`: retries after refused connections, 429 and 5xx.
    Retries,
    /// `cooldown`: seconds a failed node is skipped (with several nodes in `addr`).
    CoolDown,
}

impl FromStr for VaultConfigKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "addr" | "address" => Self::Addr,
            "mount" | "path" => Self::Mount,
            "namespace" | "ns" => Self::Namespace,
            "ca" | "cacert" | "ca_cert" => Self::CaFile,
            "token_file" => Self::TokenFile,
            "auth" => Self::Auth,
            "approle_mount" => Self::AppRoleMount,
            "timeout" => Self::Timeout,
            "retries" => Self::Retries,
            "cooldown" => Self::CoolDown,
            other => {
                return Err(Error::Config(format!(
                    "vault-transit: unknown key URI attribute {other:?} (allowed: addr, mount, \
                     namespace, ca, token_file, auth, approle_mount, timeout, retries, cooldown)"
                )))
            }
        })
    }
}

/// How to authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AuthMethod {
    Token,
    AppRole,
}

/// Builds a [`VaultTransit`] key or a [`VaultAdmin`]: `from_env()`, then URI attributes or
/// setters, then `build()`.
#[derive(Debug, Default)]
pub struct VaultTransitBuilder {
    key_name: Option<String>,
    addr: Option<String>,
    mount: Option<String>,
    namespace: Option<String>,
    ca_file: Option<PathBuf>,
    token: Option<Secret>,
    token_file: Option<PathBuf>,
    auth: Option<AuthMethod>,
    approle_mount: Option<String>,
    role_id: Option<Secret>,
    secret_id: Option<Secret>,
    retry: RetryConfig,
    timeouts: Timeouts,
    cool_down: Option<std::time::Duration>,
}

impl VaultTransitBuilder {
    /// An empty builder (nothing from the environment).
    pub fn new() -> Self {
        Self::default()
    }

    /// Settings from `VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_NAMESPACE`, `VAULT_CACERT`,
    /// `VAULT_ROLE_ID` and `VAULT_SECRET_ID`.
    pub fn from_env() -> Self {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        Self {
            addr: var("VAULT_ADDR"),
            namespace: var("VAULT_NAMESPACE"),
            ca_file: var("VAULT_CACERT").map(PathBuf::from),
            token: Secret::from_env("VAULT_TOKEN"),
            role_id: Secret::from_env("VAULT_ROLE_ID"),
            secret_id: Secret::from_env("VAULT_SECRET_ID"),
            ..Self::default()
        }
    }

    /// The Transit key name.
    pub fn with_key_name(mut self, name: impl Into<String>) -> Self {
        self.key_name = Some(name.into());
        self
    }

    /// Set one setting by key.
    pub fn with_config(mut self, key: VaultConfigKey, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        match key {
            VaultConfigKey::Addr => self.addr = Some(value),
            VaultConfigKey::Mount => self.mount = Some(value),
            VaultConfigKey::Namespace => self.namespace = Some(value).filter(|v| !v.is_empty()),
            VaultConfigKey::CaFile => self.ca_file = Some(PathBuf::from(value)),
            VaultConfigKey::TokenFile => self.token_file = Some(PathBuf::from(value)),
            VaultConfigKey::Auth => {
                self.auth = Some(match value.as_str() {
                    "token" => AuthMethod::Token,
                    "approle" => AuthMethod::AppRole,
                    other => {
                        return Err(Error::Config(format!(
                            "vault-transit: auth={other:?} is not supported (token or approle)"
                        )))
                    }
                })
            }
            VaultConfigKey::AppRoleMount => self.approle_mount = Some(value),
            VaultConfigKey::Timeout => self.timeouts = Timeouts::from_secs_attr(&value, SCHEME)?,
            VaultConfigKey::Retries => {
                self.retry.max_retries = RetryConfig::max_retries_attr(&value, SCHEME)?
            }
            VaultConfigKey::CoolDown => {
                self.cool_down = Some(crate::endpoints::cool_down_attr(&value, SCHEME)?)
            }
        }
        Ok(self)
    }

    /// Retry settings.
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Time limits.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// A token (instead of `VAULT_TOKEN`).
    pub fn with_token(mut self, token: Secret) -> Self {
        self.token = Some(token);
        self
    }

    /// AppRole credentials (instead of `VAULT_ROLE_ID` / `VAULT_SECRET_ID`); selects AppRole.
    pub fn with_approle(mut self, role_id: Secret, secret_id: Secret) -> Self {
        self.role_id = Some(role_id);
        self.secret_id = Some(secret_id);
        self.auth = Some(AuthMethod::AppRole);
        self
    }

    /// Apply a key URI: `vault-transit:NAME?attr=value&…` (NAME may be empty for admin calls
    /// that need none).
    pub fn with_uri(mut self, uri: &KeyUri) -> Result<Self> {
        net::refuse_secret_attributes(
            uri,
            &[
                ("token", "set VAULT_TOKEN or use token_file=PATH"),
                ("secret_id", "set VAULT_SECRET_ID"),
                ("role_id", "set VAULT_ROLE_ID"),
                (
                    "password",
                    "use a token (VAULT_TOKEN, token_file=PATH) or AppRole",
                ),
            ],
        )?;
        if uri.path.starts_with("//") {
            return Err(Error::Config(
                "vault-transit: write vault-transit:NAME?addr=https://HOST:8200, not \
                 vault-transit://…"
                    .into(),
            ));
        }
        let name = decode(&uri.path, "Transit key name")?;
        if !name.is_empty() {
            self.key_name = Some(name);
        }
        for (k, v) in &uri.query {
            self = self.with_config(k.parse()?, v.clone())?;
        }
        Ok(self)
    }

    fn client(self) -> Result<(Arc<Client>, Option<String>, String)> {
        let addr = self.addr.ok_or_else(|| {
            Error::Config(
                "vault-transit: no Vault address: add addr=https://HOST:8200 to the key URI or \
                 set VAULT_ADDR"
                    .into(),
            )
        })?;
        let addrs = crate::endpoints::split_list(&addr, SCHEME)?
            .iter()
            .map(|a| check_addr(a))
            .collect::<Result<Vec<_>>>()?;
        let endpoints = crate::endpoints::Endpoints::new(
            addrs,
            self.cool_down
                .unwrap_or(crate::endpoints::DEFAULT_COOL_DOWN),
        )?;
        let mount = self.mount.unwrap_or_else(|| "transit".to_owned());
        let mount = mount.trim_matches('/').to_owned();
        check_path(&mount, "mount")?;
        if let Some(ns) = &self.namespace {
            check_path(ns.trim_matches('/'), "namespace")?;
        }
        if let Some(n) = &self.key_name {
            check_segment(n, "Transit key name")?;
        }
        let approle_mount = self.approle_mount.unwrap_or_else(|| "approle".to_owned());
        check_path(approle_mount.trim_matches('/'), "approle_mount")?;
        let auth = match (self.token_file, self.auth) {
            (Some(path), None | Some(AuthMethod::Token)) => AuthConfig::TokenFile(path),
            (Some(_), Some(AuthMethod::AppRole)) => {
                return Err(Error::Config(
                    "vault-transit: token_file= and auth=approle exclude each other".into(),
                ))
            }
            (None, method) => {
                let approle = method == Some(AuthMethod::AppRole)
                    || (method.is_none()
                        && self.token.is_none()
                        && (self.role_id.is_some() || self.secret_id.is_some()));
                if approle {
                    match (self.role_id, self.secret_id) {
                        (Some(role_id), Some(secret_id)) => AuthConfig::AppRole {
                            mount: approle_mount.trim_matches('/').to_owned(),
                            role_id,
                            secret_id,
                        },
                        _ => {
                            return Err(Error::Config(
                                "vault-transit: AppRole needs both VAULT_ROLE_ID and \
                                 VAULT_SECRET_ID in the environment"
                                    .into(),
                            ))
                        }
                    }
                } else {
                    match self.token {
                        Some(t) => AuthConfig::Token(t),
                        None => {
                            return Err(Error::Config(
                                "vault-transit: no Vault token: set VAULT_TOKEN, add \
                                 token_file=PATH to the key URI (e.g. a Vault agent sink), or \
                                 set VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole"
                                    .into(),
                            ))
                        }
                    }
                }
            }
        };
        let ca = match &self.ca_file {
            None => None,
            Some(path) => Some(
                net::pem_files::certificates(path, "Vault CA certificate file")?
                    .into_iter()
                    .map(|der| {
                        reqwest::Certificate::from_der(&der).map_err(|e| {
                            Error::Config(format!(
                                "vault-transit: CA certificate in {}: {e}",
                                path.display()
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        let namespace = self.namespace.map(|n| n.trim_matches('/').to_owned());
        let client = Client::new(endpoints, namespace, ca, auth, self.retry, self.timeouts)?;
        Ok((Arc::new(client), self.key_name, mount))
    }

    /// Build the key store; a key name is required.
    pub fn build(self) -> Result<VaultTransit> {
        let (client, name, mount) = self.client()?;
        let name = name.ok_or_else(|| {
            Error::Config("vault-transit: no key name: write vault-transit:NAME?addr=…".into())
        })?;
        Ok(VaultTransit::with_client(client, name, mount))
    }

    /// Build the key management side (create, list, rotate, destroy).
    pub fn build_admin(self) -> Result<VaultAdmin> {
        let (client, _, mount) = self.client()?;
        Ok(VaultAdmin::new(client, mount))
    }
}

/// Check `addr`: http(s), host and port only, no credentials; plain http only to loopback.
pub(super) fn check_addr(addr: &str) -> Result<String> {
    let url = reqwest::Url::parse(addr)
        .map_err(|e| Error::Config(format!("vault-transit: addr={addr:?} is not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Config(
            "vault-transit: addr= must not contain credentials (user:password@); use a token"
                .into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.path().trim_matches('/').is_empty()
    {
        return Err(Error::Config(format!(
            "vault-transit: addr={addr:?} must be scheme://host:port only (the mount goes in \
             mount=)"
        )));
    }
    let host = url.host_str().unwrap_or("");
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(Error::Config(format!(
                "vault-transit: addr={addr} would send the Vault token unencrypted; use \
                 https:// (plain http is accepted only for 127.0.0.1 and localhost)"
            )))
        }
        other => {
            return Err(Error::Config(format!(
                "vault-transit: addr= must be an https:// URL, not {other}://"
            )))
        }
    }
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!(
        "{}://{}{port}",
        url.scheme(),
        url.host_str().unwrap_or("")
    ))
}

/// One path segment of a Vault API path: letters, digits, `-`, `_`, `.`, not `.`/`..`.
pub(super) fn check_segment(s: &str, what: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 256
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "vault-transit: {what} {s:?} may contain only letters, digits, '-', '_' and '.'"
        )))
    }
}

/// A `/`-separated path (mount, namespace) of valid segments.
pub(super) fn check_path(s: &str, what: &str) -> Result<()> {
    for seg in s.split('/') {
        check_segment(seg, what)?;
    }
    Ok(())
}
