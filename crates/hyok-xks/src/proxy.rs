//! The proxy: routes a request to its store and endpoint, authenticates it, checks the
//! body and the key's settings, runs the key-store step within the capacity limits, and
//! answers JSON.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyok::aead::{KeyStoreError, SealedRef, SharedAeadKey};
use hyok::audit::{AuditSink as _, LogSink};
use zeroize::Zeroizing;

use crate::api::{self, EncryptResponse, RequestMetadata, MAX_AAD, MAX_DATA};
use crate::capacity::Capacity;
use crate::config::{KeyConfig, StoreConfig, XksConfig};
use crate::error::{err, ErrorName, XksError};
use crate::framing;
use crate::health;
use crate::record::{self, Outcome};
use crate::route::{self, Endpoint, KeyOp};
use crate::sigv4::{Signed, Verifier};

/// Largest request body read (far above the largest valid request, about 30 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// One external key: its settings and its store-side AEAD.
#[derive(Debug, Clone)]
pub struct Key {
    /// Settings.
    pub config: KeyConfig,
    /// The key.
    pub aead: SharedAeadKey,
}

/// One logical external key store.
#[derive(Debug)]
pub struct Store {
    /// Name in the configuration.
    pub name: String,
    /// `/PREFIX/kms/xks/v1`.
    pub base: String,
    /// Replaced whole by [`Proxy::reload_credentials`] (SIGHUP in `hyok xks`).
    verifier: std::sync::RwLock<Arc<Verifier>>,
    /// External key id → key.
    pub keys: BTreeMap<String, Key>,
}

/// The XKS proxy: stores, capacity, audit.
#[derive(Debug)]
pub struct Proxy {
    stores: Vec<Store>,
    bases: Vec<String>,
    capacity: Capacity,
    audit: Option<LogSink>,
    policy: Option<hyok::policy::Guard>,
}

/// An answer: status and JSON body.
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body.
    pub body: Vec<u8>,
}

impl From<XksError> for Answer {
    fn from(e: XksError) -> Self {
        Self {
            status: StatusCode::from_u16(e.name.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: e.body(),
        }
    }
}

fn ok_json<T: serde::Serialize>(v: &T) -> Answer {
    Answer {
        status: StatusCode::OK,
        body: serde_json::to_vec(v).unwrap_or_default(),
    }
}

/// The XKS error of a key-store failure during `op`.
pub fn store_error(e: &KeyStoreError, op: KeyOp) -> XksError {
    let text = e.to_string();
    let name = match e {
        KeyStoreError::UnwrapFailed { .. } if op == KeyOp::Decrypt => ErrorName::InvalidCiphertext,
        KeyStoreError::NotFound { .. } => ErrorName::KeyNotFound,
        KeyStoreError::KeyVersionTooOld { .. } => ErrorName::InvalidState,
        KeyStoreError::Unsupported { .. } => ErrorName::InvalidKeyUsage,
        _ => ErrorName::Internal,
    };
    if name == ErrorName::InvalidCiphertext {
        return err(
            name,
            "the ciphertext, IV, tag, AAD or ciphertextMetadata does not verify under this key",
        );
    }
    err(name, format!("key store: {text}"))
}

impl Proxy {
    /// Open every configured key with `open` (normally [`hyok::aead::open_aead`]) and check
    /// it can be reached. A key whose store cannot seal with caller AAD, or that does not
    /// exist, stops the start with a line naming it; a store that is down only warns.
    pub async fn open(
        config: &XksConfig,
        open: impl Fn(&str) -> Result<SharedAeadKey, KeyStoreError>,
        audit: Option<LogSink>,
    ) -> Result<Self, String> {
        let mut stores = Vec::new();
        for s in &config.stores {
            stores.push(Self::open_store(s, &open).await?);
        }
        let bases = stores.iter().map(|s| s.base.clone()).collect();
        Ok(Self {
            stores,
            bases,
            capacity: Capacity::new(config.limits),
            audit,
            policy: None,
        })
    }

    /// Ask the `[policy]` engine about every encrypt and decrypt (principal: the caller's
    /// `awsPrincipalArn`; resource: the external key id; context: key ARN, VPC, VPC
    /// endpoint, via-service), after the key's allow-lists and before its key store.
    pub fn set_policy(&mut self, guard: Option<hyok::policy::Guard>) {
        self.policy = guard;
    }

    async fn open_store(
        s: &StoreConfig,
        open: &impl Fn(&str) -> Result<SharedAeadKey, KeyStoreError>,
    ) -> Result<Store, String> {
        let mut keys = BTreeMap::new();
        for (id, k) in &s.keys {
            let at = format!("[xks.stores.{}.keys] {id}", s.name);
            let aead = open(&k.uri).map_err(|e| format!("{at}: {e}"))?;
            match aead.probe().await {
                Ok(()) => {}
                Err(
                    e @ (KeyStoreError::Unsupported { .. }
                    | KeyStoreError::NotFound { .. }
                    | KeyStoreError::Config(_)),
                ) => return Err(format!("{at}: {e}")),
                Err(e) => tracing::warn!(target: "hyok::xks", "{at}: not reachable now: {e}"),
            }
            keys.insert(
                id.clone(),
                Key {
                    config: k.clone(),
                    aead,
                },
            );
        }
        let creds = s
            .credentials
            .iter()
            .map(|c| crate::sigv4::Credential {
                access_key_id: c.access_key_id.clone(),
                secret: c.secret.clone(),
            })
            .collect();
        Ok(Store {
            name: s.name.clone(),
            base: s.base_path(),
            verifier: std::sync::RwLock::new(Arc::new(Verifier::new(s.region.clone(), creds))),
            keys,
        })
    }

    /// Take the SigV4 credentials (and regions) of `config`'s stores, matched by name, without
    /// stopping: requests signed with either pair of a rotation keep working. Stores and
    /// keys themselves are not changed (that needs a restart). Returns the names updated.
    pub fn reload_credentials(&self, config: &XksConfig) -> Vec<String> {
        let mut updated = Vec::new();
        for s in &self.stores {
            if let Some(c) = config.stores.iter().find(|c| c.name == s.name) {
                let creds = c
                    .credentials
                    .iter()
                    .map(|c| crate::sigv4::Credential {
                        access_key_id: c.access_key_id.clone(),
                        secret: c.secret.clone(),
                    })
                    .collect();
                *s.verifier.write().unwrap_or_else(|p| p.into_inner()) =
                    Arc::new(Verifier::new(c.region.clone(), creds));
                updated.push(s.name.clone());
            }
        }
        updated
    }

    /// The stores.
    pub fn stores(&self) -> &[Store] {
        &self.stores
    }

    /// Answer one request.
    pub async fn handle<B>(&self, req: http::Request<B>) -> Answer
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_owned();
        // Refused before the body is read: recorded without store or operation.
        let early = |store: &str, e: XksError| {
            record::request(
                self.audit.as_ref(),
                &Outcome {
                    store,
                    op: "-",
                    error: Some((e.name, &e.message)),
                    duration: started.elapsed(),
                    ..Outcome::default()
                },
            );
            Answer::from(e)
        };
        let (index, endpoint) = match route::route(&self.bases, &path) {
            Ok(r) if parts.uri.query().is_none() => r,
            Ok(_) => {
                return early(
                    "-",
                    err(
                        ErrorName::InvalidUriPath,
                        "XKS API paths take no query string",
                    ),
                )
            }
            Err(e) => return early("-", e),
        };
        let store = &self.stores[index];
        if parts.method != Method::POST {
            let mut a = early(
                &store.name,
                err(
                    ErrorName::UnsupportedOperation,
                    format!("{} is not allowed; XKS API requests are POST", parts.method),
                ),
            );
            a.status = StatusCode::METHOD_NOT_ALLOWED;
            return a;
        }
        let op_name = match &endpoint {
            Endpoint::Health => "health",
            Endpoint::Key { op, .. } => op.as_str(),
        };
        let key_id = match &endpoint {
            Endpoint::Key { id, .. } => Some(id.as_str()),
            Endpoint::Health => None,
        };
        let mut outcome = Outcome {
            store: &store.name,
            op: op_name,
            key_id,
            ..Outcome::default()
        };
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => Zeroizing::new(b.to_bytes().to_vec()),
            Err(e) => {
                let e = err(
                    ErrorName::UnsupportedOperation,
                    format!("the request body could not be read or exceeds {MAX_BODY} bytes ({e})"),
                );
                outcome.error = Some((e.name, &e.message));
                outcome.duration = started.elapsed();
                record::request(self.audit.as_ref(), &outcome);
                return e.into();
            }
        };
        let signed = Signed {
            method: parts.method.as_str(),
            path: &path,
            query: "",
            authority: parts.uri.authority().map(|a| a.as_str()),
            headers: &parts.headers,
            body: &body,
        };
        let verifier = store
            .verifier
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let signer = match verifier.verify(&signed, SystemTime::now()) {
            Ok(akid) => akid,
            Err(why) => {
                let e = err(ErrorName::AuthenticationFailed, format!("SigV4: {why}"));
                outcome.error = Some((e.name, &e.message));
                outcome.duration = started.elapsed();
                record::request(self.audit.as_ref(), &outcome);
                return e.into();
            }
        };
        outcome.signer = Some(signer);
        let mut metadata = None;
        let result = match &endpoint {
            Endpoint::Health => {
                self.health(store, &body, &mut metadata, &mut outcome.note)
                    .await
            }
            Endpoint::Key { id, op } => {
                self.key_op(store, id, *op, &body, &mut metadata, &mut outcome)
                    .await
            }
        };
        outcome.metadata = metadata.as_ref();
        outcome.duration = started.elapsed();
        match result {
            Ok(a) => {
                record::request(self.audit.as_ref(), &outcome);
                a
            }
            Err(e) => {
                outcome.error = Some((e.name, &e.message));
                record::request(self.audit.as_ref(), &outcome);
                e.into()
            }
        }
    }

    async fn health(
        &self,
        store: &Store,
        body: &[u8],
        metadata: &mut Option<RequestMetadata>,
        note: &mut Option<String>,
    ) -> Result<Answer, XksError> {
        // GetHealthStatus has no ValidationException: a body without the expected metadata
        // is logged as it is and answered.
        *metadata = serde_json::from_slice::<api::MetadataOnly>(body)
            .ok()
            .and_then(|m| m.request_metadata);
        let keys: Vec<SharedAeadKey> = store.keys.values().map(|k| k.aead.clone()).collect();
        let report = self
            .capacity
            .run(async { Ok(health::check(&keys).await) })
            .await?;
        *note = Some(health::summary(&report));
        Ok(ok_json(&report))
    }

    async fn key_op(
        &self,
        store: &Store,
        id: &str,
        op: KeyOp,
        body: &[u8],
        metadata: &mut Option<RequestMetadata>,
        outcome: &mut Outcome<'_>,
    ) -> Result<Answer, XksError> {
        enum Parsed {
            Metadata,
            Encrypt(api::EncryptRequest),
            Decrypt(api::DecryptRequest),
        }
        let parsed = match op {
            KeyOp::Metadata => {
                let m: api::MetadataOnly = api::parse(body)?;
                *metadata = m.request_metadata;
                Parsed::Metadata
            }
            KeyOp::Encrypt => {
                let mut r: api::EncryptRequest = api::parse(body)?;
                *metadata = r.request_metadata.take();
                Parsed::Encrypt(r)
            }
            KeyOp::Decrypt => {
                let mut r: api::DecryptRequest = api::parse(body)?;
                *metadata = r.request_metadata.take();
                Parsed::Decrypt(r)
            }
        };
        let meta = metadata
            .as_ref()
            .ok_or_else(|| err(ErrorName::Validation, "requestMetadata is required"))?;
        meta.check(true, op != KeyOp::Metadata)?;
        let key = store.keys.get(id).ok_or_else(|| {
            err(
                ErrorName::KeyNotFound,
                format!("no external key {id:?} in this key store"),
            )
        })?;
        outcome.key_uri = Some(key.aead.info().uri.clone());
        key.config
            .allow
            .permits(meta, op == KeyOp::Metadata)
            .map_err(|why| err(ErrorName::AccessDenied, why))?;
        if let (Some(g), false) = (&self.policy, op == KeyOp::Metadata) {
            use hyok::policy::{Action, Facts, Principal, Query, Resource, XksFacts};
            let field = |f: &Option<String>| f.clone().unwrap_or_default();
            let q = Query {
                principal: Principal::Caller(field(&meta.aws_principal_arn)),
                action: if op == KeyOp::Encrypt {
                    Action::XksEncrypt
                } else {
                    Action::XksDecrypt
                },
                resource: Resource::Key(id.to_owned()),
                facts: Facts {
                    via: "xks".into(),
                    xks: Some(XksFacts {
                        kms_key_arn: field(&meta.kms_key_arn),
                        kms_operation: field(&meta.kms_operation),
                        via_service: field(&meta.kms_via_service),
                        vpc: field(&meta.aws_source_vpc),
                        vpc_endpoint: field(&meta.aws_source_vpce),
                    }),
                    ..Facts::default()
                },
            };
            g.check_query(&q)
                .map_err(|e| err(ErrorName::AccessDenied, e.to_string()))?;
        }
        if op != KeyOp::Metadata && !key.config.enabled {
            return Err(err(ErrorName::InvalidState, "the external key is disabled"));
        }
        // Fail closed: no key use that the audit log cannot record.
        if let Some(sink) = &self.audit {
            if op != KeyOp::Metadata {
                sink.check().map_err(|why| {
                    err(
                        ErrorName::Internal,
                        format!("the audit log is failing: {why}"),
                    )
                })?;
            }
        }
        match parsed {
            Parsed::Metadata => {
                let mut usage = Vec::new();
                if key.config.usage.encrypt {
                    usage.push("ENCRYPT");
                }
                if key.config.usage.decrypt {
                    usage.push("DECRYPT");
                }
                Ok(ok_json(&serde_json::json!({
                    "keySpec": "AES_256",
                    "keyUsage": usage,
                    "keyStatus": if key.config.enabled { "ENABLED" } else { "DISABLED" },
                })))
            }
            Parsed::Encrypt(r) => {
                if !key.config.usage.encrypt {
                    return Err(err(ErrorName::InvalidKeyUsage, "the key may not encrypt"));
                }
                self.encrypt(key, r, outcome).await
            }
            Parsed::Decrypt(r) => {
                if !key.config.usage.decrypt {
                    return Err(err(ErrorName::InvalidKeyUsage, "the key may not decrypt"));
                }
                self.decrypt(key, r, outcome).await
            }
        }
    }

    async fn encrypt(
        &self,
        key: &Key,
        r: api::EncryptRequest,
        outcome: &mut Outcome<'_>,
    ) -> Result<Answer, XksError> {
        api::check_algorithm(r.encryption_algorithm.as_deref())?;
        let cdiv = match r.ciphertext_data_integrity_value_algorithm.as_deref() {
            None => false,
            Some("SHA_256") => true,
            Some(other) => {
                return Err(err(
                    ErrorName::UnsupportedOperation,
                    format!(
                    "ciphertextDataIntegrityValueAlgorithm {:?} is not supported (SHA_256 only)",
                    crate::error::printable(other, 64)
                ),
                ))
            }
        };
        let b64 = Zeroizing::new(
            r.plaintext
                .ok_or_else(|| err(ErrorName::Validation, "plaintext is required"))?,
        );
        let plaintext = Zeroizing::new(api::decode(
            "plaintext",
            &b64,
            MAX_DATA,
            ErrorName::Validation,
            ErrorName::UnsupportedOperation,
        )?);
        if plaintext.is_empty() {
            return Err(err(ErrorName::Validation, "plaintext is empty"));
        }
        let aad = match &r.additional_authenticated_data {
            Some(a) => api::decode(
                "additionalAuthenticatedData",
                a,
                MAX_AAD,
                ErrorName::Validation,
                ErrorName::UnsupportedOperation,
            )?,
            None => Vec::new(),
        };
        outcome.bytes = Some(plaintext.len() as u64);
        let aead = key.aead.clone();
        let (sealed, metadata, framed) = self
            .capacity
            .run(async {
                let version = aead
                    .seal_version()
                    .await
                    .map_err(|e| store_error(&e, KeyOp::Encrypt))?;
                let metadata = version.map(framing::version_metadata).unwrap_or_default();
                let framed = framing::store_aad(&aad, &metadata);
                let sealed = aead
                    .seal(&plaintext, &framed, version)
                    .await
                    .map_err(|e| store_error(&e, KeyOp::Encrypt))?;
                Ok((sealed, metadata, framed))
            })
            .await?;
        outcome.aad_sha256 = Some(sha256(&framed));
        if sealed.iv.len() != 12
            || sealed.tag.len() != 16
            || sealed.ciphertext.len() != plaintext.len()
        {
            return Err(err(
                ErrorName::Internal,
                "the key store returned malformed GCM output",
            ));
        }
        let integrity = if cdiv {
            // Appendix C: the value first, then a decrypt of exactly what is returned.
            let v = framing::integrity_value(
                &aad,
                &metadata,
                &sealed.iv,
                &sealed.ciphertext,
                &sealed.tag,
            );
            let check = self
                .capacity
                .run(async {
                    aead.open(
                        SealedRef {
                            iv: &sealed.iv,
                            ciphertext: &sealed.ciphertext,
                            tag: &sealed.tag,
                            version: sealed.version,
                        },
                        &framed,
                    )
                    .await
                    .map_err(|e| store_error(&e, KeyOp::Encrypt))
                })
                .await?;
            if check[..] != plaintext[..] {
                return Err(err(
                    ErrorName::Internal,
                    "the key store's ciphertext did not decrypt to the plaintext",
                ));
            }
            Some(B64.encode(v))
        } else {
            None
        };
        Ok(ok_json(&EncryptResponse {
            ciphertext: B64.encode(&sealed.ciphertext),
            ciphertext_metadata: (!metadata.is_empty()).then(|| B64.encode(&metadata)),
            initialization_vector: B64.encode(&sealed.iv),
            authentication_tag: B64.encode(&sealed.tag),
            ciphertext_data_integrity_value: integrity,
        }))
    }

    async fn decrypt(
        &self,
        key: &Key,
        r: api::DecryptRequest,
        outcome: &mut Outcome<'_>,
    ) -> Result<Answer, XksError> {
        api::check_algorithm(r.encryption_algorithm.as_deref())?;
        let field = |name: &str, v: &Option<String>, max: usize| -> Result<Vec<u8>, XksError> {
            let v = v
                .as_deref()
                .ok_or_else(|| err(ErrorName::InvalidCiphertext, format!("{name} is missing")))?;
            api::decode(
                name,
                v,
                max,
                ErrorName::InvalidCiphertext,
                ErrorName::InvalidCiphertext,
            )
        };
        let ciphertext = field("ciphertext", &r.ciphertext, MAX_DATA)?;
        let iv = field("initializationVector", &r.initialization_vector, 16)?;
        let tag = field("authenticationTag", &r.authentication_tag, 16)?;
        if !matches!(iv.len(), 12 | 16) || tag.len() != 16 || ciphertext.is_empty() {
            return Err(err(
                ErrorName::InvalidCiphertext,
                "the IV must be 12 or 16 bytes, the tag 16 bytes, the ciphertext not empty",
            ));
        }
        let metadata = match &r.ciphertext_metadata {
            Some(m) => api::decode(
                "ciphertextMetadata",
                m,
                framing::MAX_METADATA,
                ErrorName::InvalidCiphertext,
                ErrorName::InvalidCiphertext,
            )?,
            None => Vec::new(),
        };
        api::check_metadata_len(&metadata)?;
        let aad = match &r.additional_authenticated_data {
            Some(a) => api::decode(
                "additionalAuthenticatedData",
                a,
                MAX_AAD,
                ErrorName::InvalidCiphertext,
                ErrorName::UnsupportedOperation,
            )?,
            None => Vec::new(),
        };
        let version = if key.aead.versioned() {
            Some(framing::metadata_version(&metadata).ok_or_else(|| {
                err(
                    ErrorName::InvalidCiphertext,
                    "ciphertextMetadata does not name a key version of this key",
                )
            })?)
        } else {
            None
        };
        outcome.bytes = Some(ciphertext.len() as u64);
        let framed = framing::store_aad(&aad, &metadata);
        outcome.aad_sha256 = Some(sha256(&framed));
        let plaintext = self
            .capacity
            .run(async {
                key.aead
                    .open(
                        SealedRef {
                            iv: &iv,
                            ciphertext: &ciphertext,
                            tag: &tag,
                            version,
                        },
                        &framed,
                    )
                    .await
                    .map_err(|e| store_error(&e, KeyOp::Decrypt))
            })
            .await?;
        let b64 = Zeroizing::new(B64.encode(&plaintext[..]));
        let mut body = Vec::with_capacity(b64.len() + 16);
        body.extend_from_slice(b"{\"plaintext\":\"");
        body.extend_from_slice(b64.as_bytes());
        body.extend_from_slice(b"\"}");
        Ok(Answer {
            status: StatusCode::OK,
            body,
        })
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, b).as_ref());
    out
}

impl Drop for Answer {
    fn drop(&mut self) {
        // Decrypt answers carry plaintext.
        zeroize::Zeroize::zeroize(&mut self.body);
    }
}

/// The [`Arc`] the server shares.
pub type SharedProxy = Arc<Proxy>;
