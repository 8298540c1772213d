//! Transit key lifecycle: create (non-exportable `aes256-gcm96`), list, rotate, destroy.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::builder::check_segment;
use super::client::{Client, Reply};
use super::SCHEME;
use crate::admin::{Created, KeyAdmin, KeyKind, KeyListing};
use crate::error::{Error, Result};
use crate::uri::{decode, KeyUri};

/// Most keys `list` describes (one request each).
const MAX_LIST: usize = 1000;

/// Key management on a Transit mount.
#[derive(Debug)]
pub struct VaultAdmin {
    client: Arc<Client>,
    mount: String,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: Option<T>,
}

/// What Transit says about a key (the fields hyok uses).
#[derive(Deserialize, Debug, Clone)]
pub struct TransitKey {
    /// Key type, e.g. `aes256-gcm96`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Newest version.
    #[serde(default)]
    pub latest_version: u64,
    /// Oldest version that may still decrypt.
    #[serde(default)]
    pub min_decryption_version: u64,
    /// Whether `destroy` is allowed.
    #[serde(default)]
    pub deletion_allowed: bool,
    /// Whether the key may be exported.
    #[serde(default)]
    pub exportable: bool,
    /// Whether the key derives per-context keys.
    #[serde(default)]
    pub derived: bool,
}

#[derive(Deserialize)]
struct KeyList {
    #[serde(default)]
    keys: Vec<String>,
}

impl VaultAdmin {
    pub(super) fn new(client: Arc<Client>, mount: String) -> Self {
        Self { client, mount }
    }

    /// Build from a `vault-transit:[NAME]?…` URI plus the environment.
    pub fn from_uri(uri: &KeyUri) -> Result<Self> {
        super::VaultTransitBuilder::from_env()
            .with_uri(uri)?
            .build_admin()
    }

    fn label(&self, name: &str) -> String {
        format!(
            "{SCHEME}:{name}?addr={}&mount={}",
            self.client.addr, self.mount
        )
    }

    fn name(uri: &KeyUri) -> Result<String> {
        let name = decode(&uri.path, "Transit key name")?;
        if name.is_empty() {
            return Err(Error::Config(
                "vault-transit: this needs a key name: vault-transit:NAME?…".into(),
            ));
        }
        check_segment(&name, "Transit key name")?;
        Ok(name)
    }

    async fn call(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        idempotent: bool,
    ) -> Result<Reply> {
        self.client
            .call(
                key,
                method,
                path,
                body.map(|b| Zeroizing::new(b.to_vec())),
                idempotent,
            )
            .await
    }

    fn failed(&self, key: &str, name: &str, what: &str, reply: &Reply) -> Error {
        let msg = reply.messages();
        if reply.status == StatusCode::NOT_FOUND || msg.contains("not found") {
            return Error::NotFound {
                key: key.to_owned(),
                detail: format!("no Transit key {name:?} in mount {}/", self.mount),
            };
        }
        Error::Backend {
            key: key.to_owned(),
            detail: format!("{what} failed: Vault answered {}: {msg}", reply.status),
        }
    }

    /// Read a key's settings; `None` when it does not exist.
    pub async fn read_key(&self, name: &str) -> Result<Option<TransitKey>> {
        check_segment(name, "Transit key name")?;
        let key = self.label(name);
        let path = format!("{}/keys/{name}", self.mount);
        let reply = self.call(&key, Method::GET, &path, None, true).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !reply.status.is_success() {
            return Err(self.failed(&key, name, "reading the key", &reply));
        }
        let env: Envelope<TransitKey> = reply.parse(&key, "reading the key")?;
        env.data.map(Some).ok_or_else(|| Error::Backend {
            key,
            detail: "Vault's answer about the key has no data".into(),
        })
    }

    async fn require_key(&self, name: &str) -> Result<TransitKey> {
        self.read_key(name).await?.ok_or_else(|| Error::NotFound {
            key: self.label(name),
            detail: format!("no Transit key {name:?} in mount {}/", self.mount),
        })
    }

    /// Set the oldest key version that may still decrypt (`min_decryption_version`).
    /// Messages whose data key was wrapped by an older version stop decrypting.
    pub async fn set_min_decryption_version(&self, name: &str, version: u64) -> Result<()> {
        self.require_key(name).await?;
        let key = self.label(name);
        let path = format!("{}/keys/{name}/config", self.mount);
        let body = format!("{{\"min_decryption_version\":{version}}}");
        let reply = self
            .call(&key, Method::POST, &path, Some(body.as_bytes()), true)
            .await?;
        if !reply.status.is_success() {
            return Err(self.failed(&key, name, "configuring the key", &reply));
        }
        Ok(())
    }

    /// Allow or forbid `destroy` for a key (`deletion_allowed`).
    pub async fn set_deletion_allowed(&self, name: &str, allowed: bool) -> Result<()> {
        self.require_key(name).await?;
        let key = self.label(name);
        let path = format!("{}/keys/{name}/config", self.mount);
        let body = format!("{{\"deletion_allowed\":{allowed}}}");
        let reply = self
            .call(&key, Method::POST, &path, Some(body.as_bytes()), true)
            .await?;
        if !reply.status.is_success() {
            return Err(self.failed(&key, name, "configuring the key", &reply));
        }
        Ok(())
    }
}

#[async_trait]
impl KeyAdmin for VaultAdmin {
    async fn create(&self, uri: &KeyUri, kind: KeyKind) -> Result<Created> {
        let name = Self::name(uri)?;
        let key = self.label(&name);
        if kind != KeyKind::Aes256 {
            return Err(Error::Config(
                "vault-transit: hyok creates aes-256 Transit keys only (aes256-gcm96)".into(),
            ));
        }
        if self.read_key(&name).await?.is_some() {
            return Err(Error::Config(format!(
                "vault-transit: a Transit key {name:?} already exists in mount {}/; choose \
                 another name",
                self.mount
            )));
        }
        let path = format!("{}/keys/{name}", self.mount);
        let body = br#"{"type":"aes256-gcm96","exportable":false,"allow_plaintext_backup":false}"#;
        let reply = self
            .call(&key, Method::POST, &path, Some(body), false)
            .await?;
        if !reply.status.is_success() {
            return Err(self.failed(&key, &name, "creating the key", &reply));
        }
        let k = self.require_key(&name).await?;
        Ok(Created {
            uri: key,
            detail: format!(
                "Transit key {name} in mount {}/ ({}, version {}, not exportable)",
                self.mount, k.kind, k.latest_version
            ),
        })
    }

    async fn list(&self, _uri: &KeyUri) -> Result<Vec<KeyListing>> {
        let label = format!("{SCHEME}:?addr={}&mount={}", self.client.addr, self.mount);
        let path = format!("{}/keys", self.mount);
        let reply = self
            .call(
                &label,
                Method::from_bytes(b"LIST").map_err(|e| Error::Config(e.to_string()))?,
                &path,
                None,
                true,
            )
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            // Transit answers 404 for a mount without keys.
            let msg = reply.messages();
            if msg.contains("no handler for route") {
                return Err(Error::NotFound {
                    key: label,
                    detail: format!("no Transit engine is mounted at {}/", self.mount),
                });
            }
            return Ok(Vec::new());
        }
        if !reply.status.is_success() {
            return Err(Error::Backend {
                key: label,
                detail: format!(
                    "listing keys failed: Vault answered {}: {}",
                    reply.status,
                    reply.messages()
                ),
            });
        }
        let env: Envelope<KeyList> = reply.parse(&label, "listing keys")?;
        let mut names = env.data.map(|d| d.keys).unwrap_or_default();
        names.sort();
        names.truncate(MAX_LIST);
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if check_segment(&name, "Transit key name").is_err() {
                continue;
            }
            let mut attrs = BTreeMap::new();
            let kind = match self.read_key(&name).await {
                Ok(Some(k)) => {
                    attrs.insert("latest_version", k.latest_version.to_string());
                    attrs.insert(
                        "min_decryption_version",
                        k.min_decryption_version.to_string(),
                    );
                    attrs.insert("deletion_allowed", k.deletion_allowed.to_string());
                    attrs.insert("exportable", k.exportable.to_string());
                    k.kind
                }
                Ok(None) => continue,
                // Listing is allowed but reading this key is not: still show its name.
                Err(Error::Denied { .. }) => "?".into(),
                Err(e) => return Err(e),
            };
            out.push(KeyListing {
                id: self.label(&name),
                name,
                kind,
                attributes: attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            });
        }
        Ok(out)
    }

    async fn rotate(&self, uri: &KeyUri) -> Result<String> {
        let name = Self::name(uri)?;
        let key = self.label(&name);
        let before = self.require_key(&name).await?;
        let path = format!("{}/keys/{name}/rotate", self.mount);
        // Not idempotent: never retried.
        let reply = self
            .call(&key, Method::POST, &path, Some(b"{}"), false)
            .await?;
        if !reply.status.is_success() {
            return Err(self.failed(&key, &name, "rotating the key", &reply));
        }
        let after = self.require_key(&name).await?;
        Ok(format!(
            "rotated Transit key {name}: new messages use version {} (was {}); messages of \
             versions {} and later still decrypt",
            after.latest_version, before.latest_version, after.min_decryption_version
        ))
    }

    async fn destroy(&self, uri: &KeyUri) -> Result<String> {
        let name = Self::name(uri)?;
        let key = self.label(&name);
        let k = self.require_key(&name).await?;
        if !k.deletion_allowed {
            return Err(Error::Denied {
                key,
                detail: format!(
                    "Vault does not allow deleting this key (deletion_allowed=false); if you \
                     mean it, first run `bao write {}/keys/{name}/config deletion_allowed=true`",
                    self.mount
                ),
            });
        }
        let path = format!("{}/keys/{name}", self.mount);
        let reply = self.call(&key, Method::DELETE, &path, None, true).await?;
        if !reply.status.is_success() {
            return Err(self.failed(&key, &name, "deleting the key", &reply));
        }
        Ok(format!(
            "destroyed Transit key {name} in mount {}/ (all {} versions)",
            self.mount, k.latest_version
        ))
    }
}
