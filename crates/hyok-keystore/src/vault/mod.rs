//! HashiCorp Vault / OpenBao Transit (feature `vault`).
//!
//! The data key is encrypted by Transit (`POST MOUNT/encrypt/NAME`) with the serialized
//! encryption context as `associated_data` (Transit ignores `context` on keys that are not
//! derived), and decrypted by `POST MOUNT/decrypt/NAME` with the same associated data. The key
//! never leaves Vault.
//!
//! Key URI: `vault-transit:NAME?addr=https://vault:8200&mount=transit&namespace=NS&ca=PEM`.
//! `addr` defaults to `VAULT_ADDR`, `namespace` to `VAULT_NAMESPACE`, `ca` to `VAULT_CACERT`,
//! `mount` to `transit`. The token comes from `token_file=PATH`, `VAULT_TOKEN`, or an AppRole
//! login (`VAULT_ROLE_ID`, `VAULT_SECRET_ID`; `auth=approle` forces it), never from the URI.
//! `timeout=SECONDS` bounds connecting and each request; `retries=N` (default 3) bounds the
//! retries after refused connections, 429 and 5xx.
//!
//! EDK: provider id `vault-transit`, provider info = the key name, ciphertext = Transit's
//! `vault:vN:…` string, which records the key version.
//!
//! Calls need a tokio runtime with I/O and time enabled (the CLI and the facade have one).
//!
//! Hyok never creates a key by encrypting: Transit creates a missing key on encrypt when the
//! token may (upsert), so the first wrap of a process reads `MOUNT/keys/NAME` and fails with
//! "key not found" if it is missing (when the policy does not allow that read, the check is
//! skipped; give such tokens only `update` on `MOUNT/encrypt/NAME`, which forbids the upsert).

mod admin;
pub mod aead;
mod client;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hyok_core::{DataKey, EncryptedDataKey};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::net::{self, one_line, RetryConfig, Secret, Timeouts};
use crate::store::{KeyInfo, KeyStore, WrapRequest};
use crate::uri::{decode, KeyUri};

use crate::registry::{shared, Scheme};
pub use admin::VaultAdmin;

/// `vault-transit:`: a key of a Vault/OpenBao Transit engine.
pub(crate) const REGISTRATION: Scheme = Scheme {
    name: SCHEME,
    syntax: "vault-transit:NAME?addr=https://HOST:8200",
    note: "token from VAULT_TOKEN; see docs/KEYSTORES.md",
    open: |u| Ok(shared(VaultTransit::from_uri(u)?)),
    admin: Some(|u| Ok(Box::new(VaultAdmin::from_uri(u)?))),
};
use client::{AuthConfig, Client, Reply};

/// EDK provider id of Transit-wrapped data keys.
pub const PROVIDER_ID: &str = "vault-transit";
/// URI scheme.
pub const SCHEME: &str = "vault-transit";
/// Most items sent in one `batch_input` request.
pub const MAX_BATCH: usize = 128;
/// Longest ciphertext accepted from an EDK (a 32-byte key gives about 90 bytes).
const MAX_CIPHERTEXT: usize = 4096;

/// Settings of the Vault backend, by their key URI attribute names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VaultConfigKey {
    /// `addr` (alias `address`): `https://host:8200`.
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
            other => {
                return Err(Error::Config(format!(
                    "vault-transit: unknown key URI attribute {other:?} (allowed: addr, mount, \
                     namespace, ca, token_file, auth, approle_mount, timeout, retries)"
                )))
            }
        })
    }
}

/// How to authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AuthMethod {
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
                self.retry.max_retries = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= 10)
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "vault-transit: retries={value:?} must be a number from 0 to 10"
                        ))
                    })?
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
        let addr = check_addr(&addr)?;
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
        let client = Client::new(addr, namespace, ca, auth, self.retry, self.timeouts)?;
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
fn check_addr(addr: &str) -> Result<String> {
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
fn check_segment(s: &str, what: &str) -> Result<()> {
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
fn check_path(s: &str, what: &str) -> Result<()> {
    for seg in s.split('/') {
        check_segment(seg, what)?;
    }
    Ok(())
}

/// A Transit key used as a wrapping key.
pub struct VaultTransit {
    info: KeyInfo,
    name: String,
    mount: String,
    client: Arc<Client>,
    checked: tokio::sync::OnceCell<()>,
}

impl fmt::Debug for VaultTransit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultTransit")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct EncryptItem<'a> {
    plaintext: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    associated_data: Option<String>,
}

#[derive(Serialize)]
struct DecryptItem<'a> {
    ciphertext: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    associated_data: Option<String>,
}

#[derive(Serialize)]
struct Batch<T> {
    batch_input: Vec<T>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: Option<T>,
}

#[derive(Deserialize, Default)]
struct EncryptResult {
    ciphertext: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct EncryptData {
    batch_results: Option<Vec<EncryptResult>>,
}

#[derive(Deserialize, Default)]
struct DecryptResult {
    plaintext: Option<Secret>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct DecryptData {
    batch_results: Option<Vec<DecryptResult>>,
}

/// The key version recorded in a Transit ciphertext (`vault:v3:…` → 3).
pub fn ciphertext_version(ciphertext: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(ciphertext).ok()?;
    let rest = s.strip_prefix("vault:v")?;
    let (v, _) = rest.split_once(':')?;
    v.parse().ok()
}

impl VaultTransit {
    /// Build from `vault-transit:NAME?…` plus the environment.
    pub fn from_uri(uri: &KeyUri) -> Result<Self> {
        VaultTransitBuilder::from_env().with_uri(uri)?.build()
    }

    fn with_client(client: Arc<Client>, name: String, mount: String) -> Self {
        let mut uri = format!("{SCHEME}:{name}?addr={}&mount={mount}", client.addr);
        if let Some(ns) = &client.namespace {
            uri.push_str("&namespace=");
            uri.push_str(ns);
        }
        Self {
            info: KeyInfo {
                backend: SCHEME,
                uri: uri.into(),
                provider_id: PROVIDER_ID.into(),
                key_name: name.as_str().into(),
            },
            name,
            mount,
            client,
            checked: tokio::sync::OnceCell::new(),
        }
    }

    fn key(&self) -> &str {
        &self.info.uri
    }

    fn owns(&self, edk: &EncryptedDataKey) -> bool {
        edk.provider_id == PROVIDER_ID && edk.provider_info == self.name.as_bytes()
    }

    /// The ciphertext of one of our EDKs, if it is well-formed.
    fn edk_ciphertext<'e>(&self, edk: &'e EncryptedDataKey) -> Result<&'e str> {
        std::str::from_utf8(&edk.ciphertext)
            .ok()
            .filter(|s| s.len() <= MAX_CIPHERTEXT && ciphertext_version(s.as_bytes()).is_some())
            .ok_or_else(|| Error::UnwrapFailed {
                key: self.key().to_owned(),
            })
    }

    /// Once per process: make sure the key exists and can bind associated data, so a typo
    /// never makes Transit create a new key on encrypt.
    async fn check_key(&self) -> Result<()> {
        self.checked
            .get_or_try_init(|| async {
                let path = format!("{}/keys/{}", self.mount, self.name);
                let reply = self
                    .client
                    .call(self.key(), Method::GET, &path, None, &self.client.retry)
                    .await;
                let reply = match reply {
                    // A policy without read on MOUNT/keys/NAME: rely on it lacking `create`
                    // on MOUNT/encrypt/NAME too (see the module docs).
                    Err(Error::Denied { .. }) => {
                        tracing::debug!(target: "hyok::vault", "{}: cannot read the key's settings; skipping the existence check", self.key());
                        return Ok(());
                    }
                    other => other?,
                };
                if reply.status == StatusCode::NOT_FOUND {
                    return Err(missing_key_error(self.key(), &self.name, &self.mount, &reply));
                }
                if !reply.status.is_success() {
                    return Err(self.classify(&reply.messages(), reply.status, None));
                }
                #[derive(Deserialize)]
                struct KeyData {
                    #[serde(rename = "type")]
                    kind: String,
                    #[serde(default)]
                    derived: bool,
                }
                let data: Envelope<KeyData> = reply.parse(self.key(), "reading the key")?;
                let data = data.data.ok_or_else(|| Error::Backend {
                    key: self.key().to_owned(),
                    detail: "Vault's answer about the key has no data".into(),
                })?;
                if !matches!(
                    data.kind.as_str(),
                    "aes256-gcm96" | "aes128-gcm96" | "chacha20-poly1305"
                ) {
                    return Err(Error::Unsupported {
                        key: self.key().to_owned(),
                        detail: format!(
                            "Transit key type {} cannot bind the encryption context; use an \
                             aes256-gcm96 key (hyok key new aes-256 -o vault-transit:NAME)",
                            data.kind
                        ),
                    });
                }
                if data.derived {
                    return Err(Error::Unsupported {
                        key: self.key().to_owned(),
                        detail: "derived Transit keys are not supported; create the key \
                                 without derived=true"
                            .into(),
                    });
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Map a failed Transit call to an error class.
    fn classify(&self, msg: &str, status: StatusCode, ciphertext: Option<&str>) -> Error {
        classify(self.key(), &self.name, &self.mount, msg, status, ciphertext)
    }

    fn aad(req: &WrapRequest<'_>) -> Result<Option<String>> {
        let bytes = Zeroizing::new(req.context.serialize()?);
        Ok(if bytes.is_empty() {
            None
        } else {
            Some(B64.encode(&*bytes))
        })
    }

    fn edk(&self, ciphertext: String) -> Result<EncryptedDataKey> {
        if ciphertext_version(ciphertext.as_bytes()).is_none() || ciphertext.len() > MAX_CIPHERTEXT
        {
            return Err(Error::Backend {
                key: self.key().to_owned(),
                detail: "Vault returned a ciphertext that is not vault:vN:…".into(),
            });
        }
        Ok(EncryptedDataKey {
            provider_id: PROVIDER_ID.to_owned(),
            provider_info: self.name.as_bytes().to_vec(),
            ciphertext: ciphertext.into_bytes(),
        })
    }

    fn data_key(&self, plaintext: Option<Secret>, req: &WrapRequest<'_>) -> Result<DataKey> {
        let failed = || Error::UnwrapFailed {
            key: self.key().to_owned(),
        };
        let p = plaintext.ok_or_else(failed)?;
        let bytes = B64.decode(p.expose()).map_err(|_| failed())?;
        let dk = DataKey::new(bytes);
        if dk.len() != req.suite.key_len() {
            return Err(failed());
        }
        Ok(dk)
    }

    async fn encrypt_batch(
        &self,
        items: &[(&DataKey, WrapRequest<'_>)],
    ) -> Result<Vec<Result<EncryptedDataKey>>> {
        self.check_key().await?;
        let mut input = Vec::with_capacity(items.len());
        let mut plain: Vec<Zeroizing<String>> = Vec::with_capacity(items.len());
        for (dk, req) in items {
            plain.push(Zeroizing::new(B64.encode(dk.expose())));
            input.push(Self::aad(req)?);
        }
        let batch = Batch {
            batch_input: plain
                .iter()
                .zip(input)
                .map(|(p, aad)| EncryptItem {
                    plaintext: p.as_str(),
                    associated_data: aad,
                })
                .collect(),
        };
        // Sized up front so that no reallocation leaves a copy of the data keys behind.
        let estimate = 32
            + batch
                .batch_input
                .iter()
                .map(|i| 48 + i.plaintext.len() + i.associated_data.as_ref().map_or(0, String::len))
                .sum::<usize>();
        let mut body = Zeroizing::new(Vec::with_capacity(estimate * 2));
        serde_json::to_writer(&mut *body, &batch).map_err(|e| Error::Backend {
            key: self.key().to_owned(),
            detail: format!("encoding the request: {e}"),
        })?;
        drop(batch);
        let path = format!("{}/encrypt/{}", self.mount, self.name);
        let reply = self
            .client
            .call(
                self.key(),
                Method::POST,
                &path,
                Some(body),
                &self.client.retry,
            )
            .await?;
        let results =
            self.batch_results::<EncryptData, _>(&reply, items.len(), |d| d.batch_results)?;
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(EncryptResult {
                    ciphertext: Some(ct),
                    error: None,
                }) => self.edk(ct),
                Ok(r) => Err(self.classify(
                    &one_line(r.error.as_deref().unwrap_or("no ciphertext"), 300),
                    reply.status,
                    None,
                )),
                Err(e) => Err(e),
            })
            .collect())
    }

    async fn decrypt_batch(
        &self,
        items: &[(&str, &WrapRequest<'_>)],
    ) -> Result<Vec<Result<DataKey>>> {
        let mut input = Vec::with_capacity(items.len());
        for (ct, req) in items {
            input.push(DecryptItem {
                ciphertext: ct,
                associated_data: Self::aad(req)?,
            });
        }
        let body =
            serde_json::to_vec(&Batch { batch_input: input }).map_err(|e| Error::Backend {
                key: self.key().to_owned(),
                detail: format!("encoding the request: {e}"),
            })?;
        let path = format!("{}/decrypt/{}", self.mount, self.name);
        let reply = self
            .client
            .call(
                self.key(),
                Method::POST,
                &path,
                Some(Zeroizing::new(body)),
                &self.client.retry,
            )
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(missing_key_error(
                self.key(),
                &self.name,
                &self.mount,
                &reply,
            ));
        }
        let results =
            self.batch_results::<DecryptData, _>(&reply, items.len(), |d| d.batch_results)?;
        Ok(results
            .into_iter()
            .zip(items)
            .map(|(r, (ct, req))| match r {
                Ok(DecryptResult {
                    plaintext,
                    error: None,
                }) => self.data_key(plaintext, req),
                Ok(DecryptResult { error: Some(e), .. }) => {
                    Err(self.classify(&one_line(&e, 300), reply.status, Some(ct)))
                }
                Err(e) => Err(e),
            })
            .collect())
    }

    /// Per-item results of a batch call. A call that failed as a whole gives each item the
    /// same error.
    fn batch_results<'r, D, T>(
        &self,
        reply: &'r Reply,
        n: usize,
        results: impl Fn(D) -> Option<Vec<T>>,
    ) -> Result<Vec<Result<T>>>
    where
        D: Deserialize<'r> + Default,
    {
        let parsed: Option<Vec<T>> = serde_json::from_slice::<Envelope<D>>(&reply.body)
            .ok()
            .and_then(|e| e.data)
            .and_then(results);
        match parsed {
            Some(v) if v.len() == n => Ok(v.into_iter().map(Ok).collect()),
            Some(v) => Err(Error::Backend {
                key: self.key().to_owned(),
                detail: format!("Vault answered {} results for {n} batch items", v.len()),
            }),
            None if reply.status.is_success() => Err(Error::Backend {
                key: self.key().to_owned(),
                detail: "Vault's answer has no batch_results".into(),
            }),
            None => {
                let msg = reply.messages();
                Ok((0..n)
                    .map(|_| Err(self.classify(&msg, reply.status, None)))
                    .collect())
            }
        }
    }
}

/// "Key not found", with the mount spelled out when the mount itself is missing.
fn missing_key_error(key: &str, name: &str, mount: &str, reply: &Reply) -> Error {
    let msg = reply.messages();
    let detail = if msg.contains("no handler for route") {
        format!("no Transit engine is mounted at {mount}/")
    } else {
        format!("no Transit key {name:?} in mount {mount}/ (hyok does not create Transit keys on encrypt; create it with `hyok key new aes-256 -o vault-transit:{name}`)")
    };
    Error::NotFound {
        key: key.to_owned(),
        detail,
    }
}

/// Map a failed Transit call (its `errors` text and status) to an error class.
fn classify(
    key: &str,
    name: &str,
    mount: &str,
    msg: &str,
    status: StatusCode,
    ciphertext: Option<&str>,
) -> Error {
    let lower = msg.to_ascii_lowercase();
    let key = key.to_owned();
    if lower.contains("too old") || lower.contains("disallowed by policy") {
        let version = ciphertext
            .and_then(|c| ciphertext_version(c.as_bytes()))
            .map(|v| v.to_string())
            .unwrap_or_else(|| "?".into());
        return Error::KeyVersionTooOld {
            key,
            version,
            detail: format!(
                "the Transit key's min_decryption_version is above it; Vault says: {msg}"
            ),
        };
    }
    if lower.contains("authentication failed")
        || lower.contains("invalid ciphertext")
        || lower.contains("could not decode")
        || lower.contains("illegal base64")
    {
        return Error::UnwrapFailed { key };
    }
    if lower.contains("not found") || status == StatusCode::NOT_FOUND {
        let detail = if lower.contains("no handler for route") {
            format!("no Transit engine is mounted at {mount}/")
        } else {
            format!("no Transit key {name:?} in mount {mount}/")
        };
        return Error::NotFound { key, detail };
    }
    if lower.contains("sealed") {
        return Error::Unavailable {
            key,
            detail: format!("Vault is sealed ({msg})"),
        };
    }
    Error::Backend {
        key,
        detail: if msg.is_empty() {
            format!("Vault answered {status}")
        } else {
            format!("Vault answered {status}: {msg}")
        },
    }
}

#[async_trait]
impl KeyStore for VaultTransit {
    fn info(&self) -> &KeyInfo {
        &self.info
    }

    async fn wrap(&self, data_key: &DataKey, req: WrapRequest<'_>) -> Result<EncryptedDataKey> {
        let out = self.encrypt_batch(&[(data_key, req)]).await;
        net::single(self.key(), "Vault", out)
    }

    async fn unwrap(
        &self,
        edk: &EncryptedDataKey,
        req: WrapRequest<'_>,
    ) -> Result<Option<DataKey>> {
        if !self.owns(edk) {
            return Ok(None);
        }
        let ct = self.edk_ciphertext(edk)?;
        let mut out = self.decrypt_batch(&[(ct, &req)]).await?;
        match out.pop() {
            Some(r) => r.map(Some),
            None => Err(Error::Backend {
                key: self.key().to_owned(),
                detail: "Vault returned no result".into(),
            }),
        }
    }

    async fn wrap_batch(
        &self,
        items: &[(&DataKey, WrapRequest<'_>)],
    ) -> Vec<Result<EncryptedDataKey>> {
        net::in_chunks(self.key(), items, MAX_BATCH, |c| self.encrypt_batch(c)).await
    }

    async fn unwrap_batch(
        &self,
        items: &[(&EncryptedDataKey, WrapRequest<'_>)],
    ) -> Vec<Result<Option<DataKey>>> {
        let mut out: Vec<Option<Result<Option<DataKey>>>> = Vec::with_capacity(items.len());
        let mut todo: Vec<(usize, &str, &WrapRequest<'_>)> = Vec::new();
        for (i, (edk, req)) in items.iter().enumerate() {
            if !self.owns(edk) {
                out.push(Some(Ok(None)));
                continue;
            }
            match self.edk_ciphertext(edk) {
                Ok(ct) => {
                    out.push(None);
                    todo.push((i, ct, req));
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        for chunk in todo.chunks(MAX_BATCH) {
            let batch: Vec<(&str, &WrapRequest<'_>)> =
                chunk.iter().map(|(_, ct, req)| (*ct, *req)).collect();
            match self.decrypt_batch(&batch).await {
                Ok(results) => {
                    for ((i, _, _), r) in chunk.iter().zip(results) {
                        out[*i] = Some(r.map(Some));
                    }
                }
                Err(e) => {
                    let text = one_line(&e.to_string(), 400);
                    let mut first = Some(e);
                    for (i, _, _) in chunk {
                        out[*i] = Some(Err(first.take().unwrap_or_else(|| Error::Backend {
                            key: self.key().to_owned(),
                            detail: format!("batch failed: {text}"),
                        })));
                    }
                }
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Error::Backend {
                        key: self.key().to_owned(),
                        detail: "batch item without result".into(),
                    })
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_ciphertexts() {
        assert_eq!(ciphertext_version(b"vault:v1:abc"), Some(1));
        assert_eq!(ciphertext_version(b"vault:v12:abc"), Some(12));
        assert_eq!(ciphertext_version(b"vault:vx:abc"), None);
        assert_eq!(ciphertext_version(b"vault:v1"), None);
        assert_eq!(ciphertext_version(b"other"), None);
        assert_eq!(ciphertext_version(&[0xff, 0xfe]), None);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            check_addr("http://127.0.0.1:8200/").unwrap(),
            "http://127.0.0.1:8200"
        );
        assert_eq!(
            check_addr("http://localhost:8200").unwrap(),
            "http://localhost:8200"
        );
        assert_eq!(
            check_addr("http://[::1]:8200").unwrap(),
            "http://[::1]:8200"
        );
        assert_eq!(
            check_addr("https://vault.example:8200").unwrap(),
            "https://vault.example:8200"
        );
        assert!(check_addr("http://vault.example:8200").is_err());
        assert!(check_addr("https://u:p@vault.example").is_err());
        assert!(check_addr("https://vault.example/v1/transit").is_err());
        assert!(check_addr("ftp://vault.example").is_err());
        assert!(check_addr("vault.example:8200").is_err());
    }

    #[test]
    fn names_cannot_escape_the_path() {
        assert!(check_segment("hyok-key_1.v2", "n").is_ok());
        for bad in ["", ".", "..", "a/b", "a?b", "a%2Fb", "a b", "ä"] {
            assert!(check_segment(bad, "n").is_err(), "{bad:?}");
        }
        assert!(check_path("team/transit", "mount").is_ok());
        assert!(check_path("team/../sys", "mount").is_err());
    }

    #[test]
    fn secrets_are_refused_in_uris() {
        for uri in [
            "vault-transit:k?addr=http://127.0.0.1:8200&token=s.abc",
            "vault-transit:k?secret_id=x",
            "vault-transit:k?role_id=x",
        ] {
            let e = VaultTransitBuilder::new()
                .with_uri(&KeyUri::parse(uri).unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains("must not be in a key URI"), "{e}");
        }
    }

    #[test]
    fn builder_needs_an_address_and_a_token() {
        let uri = KeyUri::parse("vault-transit:k").unwrap();
        let e = VaultTransitBuilder::new()
            .with_uri(&uri)
            .unwrap()
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("no Vault address"), "{e}");
        let uri = KeyUri::parse("vault-transit:k?addr=http://127.0.0.1:8200").unwrap();
        let e = VaultTransitBuilder::new()
            .with_uri(&uri)
            .unwrap()
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("no Vault token"), "{e}");
        let k = VaultTransitBuilder::new()
            .with_uri(&uri)
            .unwrap()
            .with_token(Secret::new("t".into()))
            .build()
            .unwrap();
        assert_eq!(
            &*k.info().uri,
            "vault-transit:k?addr=http://127.0.0.1:8200&mount=transit"
        );
        assert!(!format!("{k:?}").contains("\"t\""));
        let e = VaultTransitBuilder::new()
            .with_uri(&KeyUri::parse("vault-transit:k?nope=1").unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("unknown key URI attribute"), "{e}");
    }

    #[test]
    fn error_classes() {
        let c = |msg: &str, status: u16| {
            classify(
                "k",
                "n",
                "transit",
                msg,
                StatusCode::from_u16(status).unwrap(),
                Some("vault:v1:x"),
            )
            .class()
        };
        assert_eq!(
            c("cipher: message authentication failed", 400),
            "unwrap-failed"
        );
        assert_eq!(
            c("invalid ciphertext: could not decode base64", 400),
            "unwrap-failed"
        );
        assert_eq!(
            c(
                "ciphertext or signature version is disallowed by policy (too old)",
                400
            ),
            "version-too-old"
        );
        assert_eq!(c("encryption key not found", 400), "not-found");
        assert_eq!(c("no handler for route \"x/decrypt/n\"", 404), "not-found");
        assert_eq!(c("Vault is sealed", 503), "unavailable");
        assert_eq!(c("something else", 400), "backend");
    }
}
