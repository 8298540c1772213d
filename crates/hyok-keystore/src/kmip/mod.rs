//! KMIP key managers (feature `kmip`): Thales CipherTrust, Fortanix DSM, Entrust, IBM, PyKMIP
//! and any other server that speaks KMIP 1.4 over mutual TLS.
//!
//! The data key is encrypted by the server's Encrypt operation with an AES key that never
//! leaves it, in AES-GCM mode with a 16-byte tag and the serialized encryption context as
//! Authenticated Encryption Additional Data (KMIP 1.4 encoding), and decrypted by Decrypt
//! with the same data. The protocol version is negotiated with DiscoverVersions; a server
//! without KMIP 1.4 is refused with a message saying so.
//!
//! Key URI: `kmip://HOST:PORT/UNIQUE_ID_OR_NAME?ca=PEM&cert=PEM&key=PEM`. The port defaults
//! to 5696; an empty `HOST:PORT` (`kmip:///NAME`) means `HYOK_KMIP_ADDR`. `ca`, `cert` and
//! `key` (PEM files: the CA that signed the server's certificate, the client certificate, its
//! private key) default to `HYOK_KMIP_CA`, `HYOK_KMIP_CERT` and `HYOK_KMIP_KEY`.
//! `timeout=SECONDS` bounds connecting and each request; `retries=N` (default 3) bounds retries
//! after refused connections. A name is looked up with Locate; the key must be an AES key in
//! the Active state to wrap (Deactivated keys still unwrap).
//!
//! Calls need a tokio runtime with I/O and time enabled. Up to 16 idle TLS connections are kept
//! for reuse; calls in flight each use their own connection.
//!
//! EDK: provider id `kmip`, provider info = the key's Unique Identifier, ciphertext =
//! IV length (1 byte) ‖ IV ‖ encrypted data key ‖ 16-byte tag. The 12-byte IV is random,
//! drawn by hyok.

mod admin;
mod conn;
mod proto;
mod ttlv;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use hyok_core::{DataKey, EncryptedDataKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::net::{self, pem_files, RetryConfig, Timeouts};
use crate::store::{KeyInfo, KeyStore, WrapRequest};
use crate::uri::{decode, KeyUri};

pub use admin::KmipAdmin;
use conn::Connector;
use proto::{reason, tag, value, BatchResult, Operation, Version};
use ttlv::{Ttlv, TtlvError};

/// EDK provider id of KMIP-wrapped data keys.
pub const PROVIDER_ID: &str = "kmip";
/// URI scheme.
pub const SCHEME: &str = "kmip";
/// Default KMIP port.
pub const DEFAULT_PORT: u16 = 5696;
/// Most batch items in one request message.
pub const MAX_BATCH: usize = 64;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

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
            other => {
                return Err(Error::Config(format!(
                    "kmip: unknown key URI attribute {other:?} (allowed: ca, cert, key, \
                     timeout, retries)"
                )))
            }
        })
    }
}

/// Builds a [`KmipKey`] or [`KmipAdmin`]: `from_env()`, then a URI or setters, then `build()`.
#[derive(Debug, Default)]
pub struct KmipBuilder {
    host: Option<String>,
    port: Option<u16>,
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

    /// `HYOK_KMIP_ADDR` (HOST:PORT), `HYOK_KMIP_CA`, `HYOK_KMIP_CERT`, `HYOK_KMIP_KEY`.
    pub fn from_env() -> Result<Self> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        let mut b = Self {
            ca: var("HYOK_KMIP_CA").map(PathBuf::from),
            cert: var("HYOK_KMIP_CERT").map(PathBuf::from),
            key: var("HYOK_KMIP_KEY").map(PathBuf::from),
            ..Self::default()
        };
        if let Some(addr) = var("HYOK_KMIP_ADDR") {
            let (h, p) = parse_authority(&addr)?;
            b.host = Some(h);
            b.port = Some(p);
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
                self.retry.max_retries = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= 10)
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "kmip: retries={value:?} must be a number from 0 to 10"
                        ))
                    })?
            }
        }
        Ok(self)
    }

    /// Server address.
    pub fn with_addr(mut self, host: impl Into<String>, port: u16) -> Self {
        self.host = Some(host.into());
        self.port = Some(port);
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
            let (h, p) = parse_authority(authority)?;
            self.host = Some(h);
            self.port = Some(p);
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
        let host = self.host.ok_or_else(|| {
            Error::Config(
                "kmip: no server address: write kmip://HOST:PORT/KEY or set HYOK_KMIP_ADDR".into(),
            )
        })?;
        let port = self.port.unwrap_or(DEFAULT_PORT);
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
            host.clone(),
            port,
            roots,
            chain,
            private,
            self.timeouts,
            self.retry,
        )?;
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
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

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn parse_authority(s: &str) -> Result<(String, u16)> {
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

/// One KMIP server connection set, with the negotiated protocol version.
pub(crate) struct KmipClient {
    conn: Connector,
    pub(crate) addr: String,
    version: tokio::sync::OnceCell<Version>,
}

impl fmt::Debug for KmipClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmipClient")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn malformed(key: &str, e: TtlvError) -> Error {
    Error::Backend {
        key: key.to_owned(),
        detail: format!("malformed KMIP response: {e}"),
    }
}

impl KmipClient {
    /// Agree on KMIP 1.4 with DiscoverVersions (once per client).
    async fn negotiate(&self, key: &str) -> Result<Version> {
        self.version
            .get_or_try_init(|| async {
                let msg = proto::request(proto::V1_1, vec![(Operation::DiscoverVersions, vec![])]);
                let mut results = self.send(key, &msg, 1, true).await?;
                let r = results.pop().ok_or_else(|| malformed(key, TtlvError::Missing("batch item")))?;
                if !r.ok() {
                    return Err(Error::Unsupported {
                        key: key.to_owned(),
                        detail: format!(
                            "the KMIP server at {} cannot negotiate a protocol version \
                             (DiscoverVersions: {}); hyok needs KMIP 1.4 or later",
                            self.addr,
                            r.describe()
                        ),
                    });
                }
                let versions = match &r.payload {
                    Some(p) => p
                        .children(tag::PROTOCOL_VERSION)
                        .map(Version::parse)
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(|e| malformed(key, e))?,
                    None => Vec::new(),
                };
                if versions.contains(&proto::V1_4) {
                    tracing::debug!(target: "hyok::kmip", "{}: server versions {versions:?}; using 1.4", self.addr);
                    Ok(proto::V1_4)
                } else {
                    let list = versions
                        .iter()
                        .map(Version::to_string)
                        .collect::<Vec<_>>()
                        .join(", ");
                    Err(Error::Unsupported {
                        key: key.to_owned(),
                        detail: format!(
                            "the KMIP server at {} speaks KMIP {}; hyok needs 1.4, the first \
                             version with AES-GCM tag length and additional data",
                            self.addr,
                            if list.is_empty() { "(no versions listed)".into() } else { list }
                        ),
                    })
                }
            })
            .await
            .copied()
    }

    /// Send a request with one batch item per (operation, payload); results in order.
    pub(crate) async fn call(
        &self,
        key: &str,
        items: Vec<(Operation, Vec<Ttlv>)>,
        idempotent: bool,
    ) -> Result<Vec<BatchResult>> {
        let version = self.negotiate(key).await?;
        let n = items.len();
        let msg = proto::request(version, items);
        self.send(key, &msg, n, idempotent).await
    }

    /// One operation; a failed result becomes an error via `on_error`.
    pub(crate) async fn call_one(
        &self,
        key: &str,
        op: Operation,
        payload: Vec<Ttlv>,
        idempotent: bool,
    ) -> Result<BatchResult> {
        let mut r = self.call(key, vec![(op, payload)], idempotent).await?;
        r.pop()
            .ok_or_else(|| malformed(key, TtlvError::Missing("batch item")))
    }

    async fn send(
        &self,
        key: &str,
        msg: &Ttlv,
        n: usize,
        idempotent: bool,
    ) -> Result<Vec<BatchResult>> {
        let bytes = msg.encode();
        if bytes.len() > ttlv::MAX_MESSAGE {
            return Err(Error::Backend {
                key: key.to_owned(),
                detail: "KMIP request too large".into(),
            });
        }
        let resp = self.conn.roundtrip(key, &bytes, idempotent).await?;
        let item = Ttlv::decode(&resp).map_err(|e| malformed(key, e))?;
        proto::parse_response(item, n).map_err(|e| malformed(key, e))
    }
}

/// Map a failed operation to an error class.
pub(crate) fn op_error(key: &str, op: Operation, r: &BatchResult) -> Error {
    let key = key.to_owned();
    let detail = format!("KMIP {} failed: {}", op.name(), r.describe());
    match r.reason {
        Some(reason::ITEM_NOT_FOUND) => Error::NotFound { key, detail },
        Some(reason::PERMISSION_DENIED | reason::AUTHENTICATION_NOT_SUCCESSFUL) => {
            Error::Denied { key, detail }
        }
        Some(reason::OPERATION_NOT_SUPPORTED | reason::FEATURE_NOT_SUPPORTED) => {
            Error::Unsupported { key, detail }
        }
        _ => Error::Backend { key, detail },
    }
}

/// What the server says about the key.
#[derive(Clone, Debug)]
struct Resolved {
    uid: String,
    state: Option<u32>,
}

/// A KMIP-managed AES key used as a wrapping key.
pub struct KmipKey {
    info: KeyInfo,
    target: String,
    client: Arc<KmipClient>,
    resolved: tokio::sync::OnceCell<Resolved>,
}

impl fmt::Debug for KmipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmipKey")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Pull apart an EDK ciphertext: IV length ‖ IV ‖ encrypted key ‖ tag.
fn split_ciphertext(c: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (&iv_len, rest) = c.split_first()?;
    let iv_len = iv_len as usize;
    if !(IV_LEN..=16).contains(&iv_len) || rest.len() < iv_len + TAG_LEN + 1 {
        return None;
    }
    let (iv, rest) = rest.split_at(iv_len);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    Some((iv, ct, tag))
}

impl KmipKey {
    /// Build from `kmip://HOST:PORT/ID?…` plus the environment.
    pub fn from_uri(uri: &KeyUri) -> Result<Self> {
        KmipBuilder::from_env()?.with_uri(uri)?.build()
    }

    fn key(&self) -> &str {
        &self.info.uri
    }

    /// Look the key up once: by Name, else as a Unique Identifier; check it is AES.
    async fn resolve(&self) -> Result<&Resolved> {
        self.resolved
            .get_or_try_init(|| async {
                let r = resolve(&self.client, self.key(), &self.target).await?;
                r.ok_or_else(|| Error::NotFound {
                    key: self.key().to_owned(),
                    detail: format!(
                        "the KMIP server at {} has no AES key with the name or unique \
                         identifier {:?}",
                        self.client.addr, self.target
                    ),
                })
            })
            .await
    }

    fn aad(req: &WrapRequest<'_>) -> Result<Zeroizing<Vec<u8>>> {
        Ok(Zeroizing::new(req.context.serialize()?))
    }

    fn encrypt_payload(uid: &str, dk: &DataKey, iv: &[u8], aad: &[u8]) -> Vec<Ttlv> {
        let mut p = vec![
            Ttlv::text(tag::UNIQUE_IDENTIFIER, uid),
            proto::gcm_parameters(),
            Ttlv::bytes(tag::DATA, dk.expose()),
            Ttlv::bytes(tag::IV_COUNTER_NONCE, iv),
        ];
        if !aad.is_empty() {
            p.push(Ttlv::bytes(
                tag::AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA,
                aad,
            ));
        }
        p
    }

    async fn encrypt_batch(
        &self,
        items: &[(&DataKey, WrapRequest<'_>)],
    ) -> Result<Vec<Result<EncryptedDataKey>>> {
        let r = self.resolve().await?;
        if r.state != Some(2) {
            return Err(Error::Unsupported {
                key: self.key().to_owned(),
                detail: format!(
                    "KMIP key {} is {}, not Active; only Active keys encrypt",
                    r.uid,
                    r.state
                        .map(proto::state_name)
                        .unwrap_or("in an unknown state")
                ),
            });
        }
        let mut ivs = Vec::with_capacity(items.len());
        let mut ops = Vec::with_capacity(items.len());
        for (dk, req) in items {
            let mut iv = [0u8; IV_LEN];
            aws_lc_rs::rand::fill(&mut iv).map_err(|_| Error::Backend {
                key: self.key().to_owned(),
                detail: "random IV".into(),
            })?;
            let aad = Self::aad(req)?;
            ops.push((
                Operation::Encrypt,
                Self::encrypt_payload(&r.uid, dk, &iv, &aad),
            ));
            ivs.push(iv);
        }
        let results = self.client.call(self.key(), ops, true).await?;
        Ok(results
            .into_iter()
            .zip(ivs)
            .zip(items)
            .map(|((res, iv), (dk, _))| self.edk_from(&r.uid, res, &iv, dk.len()))
            .collect())
    }

    fn edk_from(
        &self,
        uid: &str,
        res: BatchResult,
        iv: &[u8],
        key_len: usize,
    ) -> Result<EncryptedDataKey> {
        if !res.ok() {
            return Err(match res.reason {
                Some(
                    reason::INVALID_FIELD
                    | reason::FEATURE_NOT_SUPPORTED
                    | reason::OPERATION_NOT_SUPPORTED
                    | reason::CRYPTOGRAPHIC_FAILURE,
                ) => Error::Unsupported {
                    key: self.key().to_owned(),
                    detail: format!(
                        "the KMIP server at {} cannot encrypt with AES-GCM, a 16-byte tag and \
                         additional data ({})",
                        self.client.addr,
                        res.describe()
                    ),
                },
                _ => op_error(self.key(), Operation::Encrypt, &res),
            });
        }
        let bad = |what: &str| Error::Backend {
            key: self.key().to_owned(),
            detail: format!("KMIP Encrypt answer: {what}"),
        };
        let p = res.payload.as_ref().ok_or_else(|| bad("no payload"))?;
        let ct = p
            .child(tag::DATA)
            .and_then(|d| d.as_bytes("Data").ok())
            .ok_or_else(|| bad("no Data"))?;
        let t = p
            .child(tag::AUTHENTICATED_ENCRYPTION_TAG)
            .and_then(|d| d.as_bytes("Authenticated Encryption Tag").ok())
            .ok_or_else(|| Error::Unsupported {
                key: self.key().to_owned(),
                detail: format!(
                    "the KMIP server at {} returned no GCM tag; it cannot do AES-GCM with \
                         KMIP 1.4 encoding",
                    self.client.addr
                ),
            })?;
        if let Some(server_iv) = p.child(tag::IV_COUNTER_NONCE) {
            if server_iv.as_bytes("IV").ok() != Some(iv) {
                return Err(bad("the server used another IV than the one sent"));
            }
        }
        if ct.len() != key_len || t.len() != TAG_LEN {
            return Err(bad("unexpected lengths"));
        }
        let mut ciphertext = Vec::with_capacity(1 + iv.len() + ct.len() + TAG_LEN);
        ciphertext.push(iv.len() as u8);
        ciphertext.extend_from_slice(iv);
        ciphertext.extend_from_slice(ct);
        ciphertext.extend_from_slice(t);
        Ok(EncryptedDataKey {
            provider_id: PROVIDER_ID.to_owned(),
            provider_info: uid.as_bytes().to_vec(),
            ciphertext,
        })
    }

    async fn decrypt_batch(
        &self,
        uid: &str,
        items: &[(&EncryptedDataKey, &WrapRequest<'_>)],
    ) -> Result<Vec<Result<DataKey>>> {
        let mut ops = Vec::with_capacity(items.len());
        for (edk, req) in items {
            // Callers checked the shape.
            let (iv, ct, t) =
                split_ciphertext(&edk.ciphertext).ok_or_else(|| Error::UnwrapFailed {
                    key: self.key().to_owned(),
                })?;
            let aad = Self::aad(req)?;
            let mut p = vec![
                Ttlv::text(tag::UNIQUE_IDENTIFIER, uid),
                proto::gcm_parameters(),
                Ttlv::bytes(tag::DATA, ct),
                Ttlv::bytes(tag::IV_COUNTER_NONCE, iv),
            ];
            if !aad.is_empty() {
                p.push(Ttlv::bytes(
                    tag::AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA,
                    &aad,
                ));
            }
            p.push(Ttlv::bytes(tag::AUTHENTICATED_ENCRYPTION_TAG, t));
            ops.push((Operation::Decrypt, p));
        }
        let results = self.client.call(self.key(), ops, true).await?;
        Ok(results
            .into_iter()
            .zip(items)
            .map(|(res, (_, req))| {
                if !res.ok() {
                    return Err(match res.reason {
                        // A wrong tag: wrong context or tampered EDK (PyKMIP says General
                        // Failure, others Cryptographic Failure).
                        Some(reason::CRYPTOGRAPHIC_FAILURE | reason::GENERAL_FAILURE) => {
                            tracing::debug!(target: "hyok::kmip", "{}: Decrypt failed: {}", self.key(), res.describe());
                            Error::UnwrapFailed {
                                key: self.key().to_owned(),
                            }
                        }
                        _ => op_error(self.key(), Operation::Decrypt, &res),
                    });
                }
                let data = res
                    .payload
                    .as_ref()
                    .and_then(|p| p.child(tag::DATA))
                    .and_then(|d| d.as_bytes("Data").ok())
                    .ok_or_else(|| Error::Backend {
                        key: self.key().to_owned(),
                        detail: "KMIP Decrypt answer has no Data".into(),
                    })?;
                if data.len() != req.suite.key_len() {
                    return Err(Error::UnwrapFailed {
                        key: self.key().to_owned(),
                    });
                }
                Ok(DataKey::from_slice(data))
            })
            .collect())
    }
}

/// Find an AES key by name (Locate) or unique identifier; `None` if there is none.
async fn resolve(client: &KmipClient, key: &str, target: &str) -> Result<Option<Resolved>> {
    let locate = vec![
        proto::attribute(
            "Object Type",
            Ttlv::enumeration(tag::ATTRIBUTE_VALUE, value::OBJECT_TYPE_SYMMETRIC_KEY),
        ),
        Ttlv {
            tag: tag::ATTRIBUTE,
            value: ttlv::Value::Structure(vec![
                Ttlv::text(tag::ATTRIBUTE_NAME, "Name"),
                proto::name_value(target),
            ]),
        },
    ];
    let r = client
        .call_one(key, Operation::Locate, locate, true)
        .await?;
    if !r.ok() {
        return Err(op_error(key, Operation::Locate, &r));
    }
    let uids: Vec<String> = r
        .payload
        .as_ref()
        .map(|p| {
            p.children(tag::UNIQUE_IDENTIFIER)
                .filter_map(|u| u.as_text("Unique Identifier").ok().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let uid = match uids.len() {
        0 => target.to_owned(),
        1 => uids[0].clone(),
        n => {
            return Err(Error::Config(format!(
                "kmip: the name {target:?} matches {n} keys on the server (unique identifiers \
                 {}); use a unique identifier in the key URI",
                uids.join(", ")
            )))
        }
    };
    let attrs = get_attributes(client, key, &uid).await?;
    let Some(attrs) = attrs else {
        return Ok(None);
    };
    if let Some(alg) = attrs.algorithm {
        if alg != value::ALGORITHM_AES {
            return Err(Error::Unsupported {
                key: key.to_owned(),
                detail: format!("KMIP object {uid} is not an AES key"),
            });
        }
    }
    Ok(Some(Resolved {
        uid,
        state: attrs.state,
    }))
}

/// The attributes hyok reads.
#[derive(Debug, Default)]
pub(crate) struct Attributes {
    pub(crate) name: Option<String>,
    pub(crate) algorithm: Option<u32>,
    pub(crate) length: Option<i32>,
    pub(crate) state: Option<u32>,
}

/// GetAttributes for one object; `None` when it does not exist.
pub(crate) async fn get_attributes(
    client: &KmipClient,
    key: &str,
    uid: &str,
) -> Result<Option<Attributes>> {
    let r = client
        .call_one(
            key,
            Operation::GetAttributes,
            get_attributes_payload(uid),
            true,
        )
        .await?;
    attributes_from(key, r)
}

pub(crate) fn get_attributes_payload(uid: &str) -> Vec<Ttlv> {
    vec![
        Ttlv::text(tag::UNIQUE_IDENTIFIER, uid),
        Ttlv::text(tag::ATTRIBUTE_NAME, "Name"),
        Ttlv::text(tag::ATTRIBUTE_NAME, "Cryptographic Algorithm"),
        Ttlv::text(tag::ATTRIBUTE_NAME, "Cryptographic Length"),
        Ttlv::text(tag::ATTRIBUTE_NAME, "State"),
    ]
}

pub(crate) fn attributes_from(key: &str, r: BatchResult) -> Result<Option<Attributes>> {
    if !r.ok() {
        return match r.reason {
            // PyKMIP answers a malformed identifier with Invalid Field.
            Some(reason::ITEM_NOT_FOUND | reason::INVALID_FIELD) => Ok(None),
            _ => Err(op_error(key, Operation::GetAttributes, &r)),
        };
    }
    let mut out = Attributes::default();
    if let Some(p) = &r.payload {
        for (name, v) in proto::attributes_of(p) {
            match name {
                "Name" => {
                    out.name = v
                        .child(tag::NAME_VALUE)
                        .and_then(|n| n.as_text("Name Value").ok())
                        .map(str::to_owned)
                }
                "Cryptographic Algorithm" => out.algorithm = v.as_enum("Algorithm").ok(),
                "Cryptographic Length" => out.length = v.as_int("Length").ok(),
                "State" => out.state = v.as_enum("State").ok(),
                _ => {}
            }
        }
    }
    Ok(Some(out))
}

#[async_trait]
impl KeyStore for KmipKey {
    fn info(&self) -> &KeyInfo {
        &self.info
    }

    async fn wrap(&self, data_key: &DataKey, req: WrapRequest<'_>) -> Result<EncryptedDataKey> {
        let out = self.encrypt_batch(&[(data_key, req)]).await;
        net::single(self.key(), "KMIP server", out)
    }

    async fn unwrap(
        &self,
        edk: &EncryptedDataKey,
        req: WrapRequest<'_>,
    ) -> Result<Option<DataKey>> {
        let mut out = self.unwrap_batch(&[(edk, req)]).await;
        out.pop().unwrap_or(Ok(None))
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
        let mut out: Vec<Option<Result<Option<DataKey>>>> = items.iter().map(|_| None).collect();
        // Only EDKs of this provider need the server; resolve the key once for them.
        let ours: Vec<usize> = (0..items.len())
            .filter(|i| items[*i].0.provider_id == PROVIDER_ID)
            .collect();
        let resolved = if ours.is_empty() {
            None
        } else {
            match self.resolve().await {
                Ok(r) => Some(r),
                Err(e) => {
                    // The server could not tell whether these EDKs are ours: report why, once
                    // in full and then by reference.
                    let text = net::one_line(&e.to_string(), 400);
                    let mut first = Some(e);
                    for i in &ours {
                        out[*i] = Some(Err(first.take().unwrap_or_else(|| Error::Backend {
                            key: self.key().to_owned(),
                            detail: format!("same failure: {text}"),
                        })));
                    }
                    None
                }
            }
        };
        let mut todo: Vec<usize> = Vec::new();
        for (i, (edk, _)) in items.iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            match resolved {
                Some(r)
                    if edk.provider_id == PROVIDER_ID && edk.provider_info == r.uid.as_bytes() =>
                {
                    if split_ciphertext(&edk.ciphertext).is_some() {
                        todo.push(i);
                    } else {
                        out[i] = Some(Err(Error::UnwrapFailed {
                            key: self.key().to_owned(),
                        }));
                    }
                }
                _ => out[i] = Some(Ok(None)),
            }
        }
        if let Some(r) = resolved {
            for chunk in todo.chunks(MAX_BATCH) {
                let batch: Vec<(&EncryptedDataKey, &WrapRequest<'_>)> =
                    chunk.iter().map(|i| (items[*i].0, &items[*i].1)).collect();
                match self.decrypt_batch(&r.uid, &batch).await {
                    Ok(results) => {
                        for (i, res) in chunk.iter().zip(results) {
                            out[*i] = Some(res.map(Some));
                        }
                    }
                    Err(e) => {
                        let text = net::one_line(&e.to_string(), 400);
                        let mut first = Some(e);
                        for i in chunk {
                            out[*i] = Some(Err(first.take().unwrap_or_else(|| Error::Backend {
                                key: self.key().to_owned(),
                                detail: format!("batch failed: {text}"),
                            })));
                        }
                    }
                }
            }
        }
        out.into_iter().map(|r| r.unwrap_or(Ok(None))).collect()
    }
}

/// The `ttlv` fuzz target (see `crate::fuzzing`): decode, re-encode, parse as a response.
pub(crate) fn fuzz_ttlv(data: &[u8]) {
    let Ok(item) = Ttlv::decode(data) else {
        return;
    };
    let encoded = item.encode();
    // Padding bytes are not checked, so only the length must match the input.
    assert_eq!(encoded.len(), data.len(), "re-encoded length");
    let again = Ttlv::decode(&encoded).expect("an encoded message decodes");
    assert_eq!(again.encode(), encoded, "encoding is stable");
    for expected in 1..=3 {
        let _ = proto::parse_response(item.clone(), expected);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert_eq!(
            parse_authority("127.0.0.1:5696").unwrap(),
            ("127.0.0.1".into(), 5696)
        );
        assert_eq!(
            parse_authority("kms.example").unwrap(),
            ("kms.example".into(), 5696)
        );
        assert_eq!(
            parse_authority("[::1]:15696").unwrap(),
            ("::1".into(), 15696)
        );
        assert_eq!(parse_authority("[::1]").unwrap(), ("::1".into(), 5696));
        for bad in [
            "", ":5696", "h:0", "h:x", "h:70000", "::1:5696", "[::1", "u@h:1",
        ] {
            assert!(parse_authority(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ciphertexts() {
        let mut c = vec![12u8];
        c.extend_from_slice(&[1; 12]);
        c.extend_from_slice(&[2; 32]);
        c.extend_from_slice(&[3; 16]);
        let (iv, ct, t) = split_ciphertext(&c).unwrap();
        assert_eq!((iv.len(), ct.len(), t.len()), (12, 32, 16));
        assert!(split_ciphertext(&c[..12 + 16]).is_none());
        assert!(split_ciphertext(&[]).is_none());
        let mut bad = c.clone();
        bad[0] = 200;
        assert!(split_ciphertext(&bad).is_none());
        bad[0] = 11;
        assert!(split_ciphertext(&bad).is_none());
    }

    #[test]
    fn uri_errors_say_what_is_missing() {
        let b = |s: &str| KmipBuilder::new().with_uri(&KeyUri::parse(s).unwrap());
        assert!(b("kmip:name")
            .unwrap_err()
            .to_string()
            .contains("kmip://HOST:PORT/KEY"));
        assert!(b("kmip://h/k?password=x")
            .unwrap_err()
            .to_string()
            .contains("must not be in a key URI"));
        assert!(b("kmip://h/k?what=x")
            .unwrap_err()
            .to_string()
            .contains("unknown key URI attribute"));
        let e = b("kmip://h/k").unwrap().build().unwrap_err().to_string();
        assert!(e.contains("no CA certificate"), "{e}");
        let e = b("kmip:///k").unwrap().build().unwrap_err().to_string();
        assert!(e.contains("no server address"), "{e}");
    }
}
