//! Building a KMIP key or admin: `from_env()`, URI attributes or setters, `build()`; and
//! the server address.

use super::*;

/// Settings of the KMIP backend, by their key URI attribute names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KmipConfigKey {
    /// `ca` (alias `cacert`): PEM file with the CA certificate(s) that signed the server's.
    Ca,
    /// `cert` (alias `client_cert`): PEM file with the client certificate (chain).
    Cert,
    /// `key` (alias `client_key`): PEM file with the client's private key.
    Key,
    /// `timeout`: seconds for connecting and for each request.
    Timeout,
    /// `retries`: retries after refused connections.
    Retries,
    /// `cooldown`: seconds a failed server is skipped (with several servers in the URI).
    CoolDown,
}

impl FromStr for KmipConfigKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "ca" | "cacert" => Self::Ca,
            "cert" | "client_cert" => Self::Cert,
            "key" | "client_key" => Self::Key,
            "timeout" => Self::Timeout,
            "retries" => Self::Retries,
            "cooldown" => Self::CoolDown,
            other => {
                return Err(Error::Config(format!(
                    "kmip: unknown key URI attribute {other:?} (allowed: ca, cert, key, \
                     timeout, retries, cooldown)"
                )))
            }
        })
    }
}

/// Builds a [`KmipKey`] or [`KmipAdmin`]: `from_env()`, then a URI or setters, then `build()`.
#[derive(Debug, Default)]
pub struct KmipBuilder {
    /// The servers (host, port) of one cluster.
    servers: Option<Vec<(String, u16)>>,
    cool_down: Option<std::time::Duration>,
    target: Option<String>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    retry: RetryConfig,
    timeouts: Timeouts,
}

impl KmipBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// `HYOK_KMIP_ADDR` (HOST:PORT, or several servers of one cluster separated by commas),
    /// `HYOK_KMIP_CA`, `HYOK_KMIP_CERT`, `HYOK_KMIP_KEY`.
    pub fn from_env() -> Result<Self> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        let mut b = Self {
            ca: var("HYOK_KMIP_CA").map(PathBuf::from),
            cert: var("HYOK_KMIP_CERT").map(PathBuf::from),
            key: var("HYOK_KMIP_KEY").map(PathBuf::from),
            ..Self::default()
        };
        if let Some(addr) = var("HYOK_KMIP_ADDR") {
            b.servers = Some(parse_authorities(&addr)?);
        }
        Ok(b)
    }

    /// Set one setting by key.
    pub fn with_config(mut self, key: KmipConfigKey, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        match key {
            KmipConfigKey::Ca => self.ca = Some(PathBuf::from(value)),
            KmipConfigKey::Cert => self.cert = Some(PathBuf::from(value)),
            KmipConfigKey::Key => self.key = Some(PathBuf::from(value)),
            KmipConfigKey::Timeout => self.timeouts = Timeouts::from_secs_attr(&value, SCHEME)?,
            KmipConfigKey::Retries => {
                self.retry.max_retries = RetryConfig::max_retries_attr(&value, SCHEME)?
            }
            KmipConfigKey::CoolDown => {
                self.cool_down = Some(crate::endpoints::cool_down_attr(&value, SCHEME)?)
            }
        }
        Ok(self)
    }

    /// Server address.
    pub fn with_addr(mut self, host: impl Into<String>, port: u16) -> Self {
        self.servers = Some(vec![(host.into(), port)]);
        self
    }

    /// The key: unique identifier or name.
    pub fn with_key(mut self, id_or_name: impl Into<String>) -> Self {
        self.target = Some(id_or_name.into());
        self
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

    /// Apply `kmip://HOST:PORT/ID?…`.
    pub fn with_uri(mut self, uri: &KeyUri) -> Result<Self> {
        net::refuse_secret_attributes(
            uri,
            &[
                (
                    "password",
                    "KMIP authenticates with the client certificate (cert=, key=)",
                ),
                (
                    "pin",
                    "KMIP authenticates with the client certificate (cert=, key=)",
                ),
                (
                    "key_password",
                    "decrypt the key file into a protected file instead",
                ),
            ],
        )?;
        let rest = uri.path.strip_prefix("//").ok_or_else(|| {
            Error::Config(format!(
                "kmip: write kmip://HOST:PORT/KEY, not kmip:{}",
                uri.path
            ))
        })?;
        let (authority, id) = rest.split_once('/').unwrap_or((rest, ""));
        if !authority.is_empty() {
            self.servers = Some(parse_authorities(authority)?);
        }
        let id = decode(id, "KMIP key")?;
        if !id.is_empty() {
            self.target = Some(id);
        }
        for (k, v) in &uri.query {
            self = self.with_config(k.parse()?, v.clone())?;
        }
        Ok(self)
    }

    fn client(self) -> Result<(Arc<KmipClient>, Option<String>)> {
        let servers = self.servers.ok_or_else(|| {
            Error::Config(
                "kmip: no server address: write kmip://HOST:PORT/KEY or set HYOK_KMIP_ADDR".into(),
            )
        })?;
        let missing = |what: &str, attr: &str, var: &str| {
            Error::Config(format!(
                "kmip: no {what}: add {attr}=PEM to the key URI or set {var}"
            ))
        };
        let ca = self
            .ca
            .ok_or_else(|| missing("CA certificate", "ca", "HYOK_KMIP_CA"))?;
        let cert = self
            .cert
            .ok_or_else(|| missing("client certificate", "cert", "HYOK_KMIP_CERT"))?;
        let key = self
            .key
            .ok_or_else(|| missing("client key", "key", "HYOK_KMIP_KEY"))?;
        let roots = pem_files::certificates(&ca, "KMIP CA certificate file")?;
        let chain = pem_files::certificates(&cert, "KMIP client certificate file")?;
        let private = pem_files::private_key(&key, "KMIP client key file")?;
        let conn = Connector::new(
            servers,
            roots,
            chain,
            private,
            self.timeouts,
            self.retry,
            self.cool_down
                .unwrap_or(crate::endpoints::DEFAULT_COOL_DOWN),
        )?;
        let addr = conn.addrs();
        Ok((
            Arc::new(KmipClient {
                conn,
                addr,
                version: tokio::sync::OnceCell::new(),
            }),
            self.target,
        ))
    }

    /// Build the key store; a key (unique identifier or name) is required.
    pub fn build(self) -> Result<KmipKey> {
        let (client, target) = self.client()?;
        let target = target.ok_or_else(|| {
            Error::Config("kmip: no key: write kmip://HOST:PORT/UNIQUE_ID_OR_NAME".into())
        })?;
        Ok(KmipKey {
            info: KeyInfo {
                backend: SCHEME,
                uri: format!("kmip://{}/{target}", client.addr).into(),
                provider_id: PROVIDER_ID.into(),
                key_name: target.as_str().into(),
            },
            target,
            client,
            resolved: tokio::sync::OnceCell::new(),
        })
    }

    /// Build the key management side.
    pub fn build_admin(self) -> Result<KmipAdmin> {
        let (client, _) = self.client()?;
        Ok(KmipAdmin::new(client))
    }
}

/// A comma-separated list of [`parse_authority`] forms (the servers of one cluster).
pub(super) fn parse_authorities(s: &str) -> Result<Vec<(String, u16)>> {
    crate::endpoints::split_list(s, SCHEME)?
        .iter()
        .map(|a| parse_authority(a))
        .collect()
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
pub(super) fn parse_authority(s: &str) -> Result<(String, u16)> {
    if s.contains('@') {
        // `user:password@host`: never echo it back.
        return Err(Error::Config(
            "kmip: the address has a user part (USER:PASSWORD@), which is not shown; KMIP clients authenticate with a certificate (cert=, key= or HYOK_KMIP_CERT/KEY), never a password in the URI".into(),
        ));
    }
    let bad = || Error::Config(format!("kmip: {s:?} is not HOST:PORT"));
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (h.to_owned(), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_owned(), Some(p)),
            Some(_) => return Err(bad()),
            None => (s.to_owned(), None),
        }
    };
    if host.is_empty() || host.contains(['@', '/', '?', '#']) {
        return Err(bad());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
    };
    Ok((host, port))
}
