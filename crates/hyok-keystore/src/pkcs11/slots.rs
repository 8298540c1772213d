//! One key held by several PKCS#11 tokens (an HSM HA pair, two partitions, two SoftHSM
//! tokens provisioned with the same key): `pkcs11:token=hsm-a,hsm-b;object=kek` (or
//! `serial=S1,S2` / `slot-id=1,2`; one of the three may list several values, the others apply
//! to every token). Each token is one node of [`crate::endpoints::Endpoints`]: requests go to
//! the token that answered last, fail over to the next on device and session failures, and a
//! failed token is skipped for the cool-down (`cooldown=SECONDS`, default 30).
//!
//! * **Same key, checked.** When the key opens, the first token found wraps a random 32-byte
//!   probe (AES-GCM with a random IV, under a fixed AAD no message uses) and every other token
//!   must unwrap it: only the same AES key passes the 128-bit GCM tag. RSA keys compare their
//!   public keys (modulus and exponent). A token that differs refuses the open with one line;
//!   a token that was absent at open is checked the same way when it is first used, and is
//!   excluded (health role `excluded`) if it differs or refuses the PIN.
//! * **Absent tokens.** The key opens with tokens absent (like a Vault key whose nodes are
//!   down); they are opened when the failover order reaches them. With every token gone a
//!   request fails with one line naming each token's failure.
//! * **What fails over.** Only failures that blame the token (key store unavailable: device
//!   error or removed, token not present, sessions lost for good, no session free, token not
//!   found; and the key missing from that token, see [`token_failed`]). A wrong PIN, a
//!   refused unwrap (wrong context) or an unsupported mechanism is returned as is: another
//!   token would say the same, and trying a wrong PIN on every token would lock them all. Wrap and unwrap are both safe to send to another token:
//!   a retried wrap draws a fresh IV, and a wrap that may have completed on the failed token
//!   never reached us, so its result is simply discarded.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use hyok_core::{DataKey, EncryptedDataKey};
use zeroize::Zeroizing;

use super::blocking;
use super::key::Pkcs11Key;
use super::uri::Pkcs11Uri;
use crate::endpoints::{Endpoints, DEFAULT_COOL_DOWN};
use crate::error::{Error, Result};
use crate::health::{NodeHealth, NodeRole};
use crate::net::{one_line, AttemptError, RetryConfig};
use crate::store::{KeyInfo, KeyStore, WrapRequest};

/// Length of the same-key check's probe.
const PROBE_LEN: usize = 32;

/// What every token must match.
enum Check {
    /// The probe and its wrap by the first token.
    Aes {
        probe: Zeroizing<Vec<u8>>,
        edk: EncryptedDataKey,
        by: String,
    },
    /// The RSA public key (DER of modulus and exponent) of the first token.
    Rsa { public_der: Vec<u8>, by: String },
}

impl Check {
    /// Make the check from the first token's key. Blocks.
    fn make(key: &Pkcs11Key, by: &str) -> Result<Self> {
        if let Some(der) = key.rsa_public_der() {
            return Ok(Self::Rsa {
                public_der: der.to_vec(),
                by: by.to_owned(),
            });
        }
        let mut probe = Zeroizing::new(vec![0u8; PROBE_LEN]);
        aws_lc_rs::rand::fill(&mut probe[..]).map_err(|_| Error::Backend {
            key: key.info().uri.to_string(),
            detail: "random probe".into(),
        })?;
        let edk = key.check_wrap(&probe)?;
        Ok(Self::Aes {
            probe,
            edk,
            by: by.to_owned(),
        })
    }

    /// `Ok(None)` when `key` (token `name`) holds the same key; `Ok(Some(why))` when it does
    /// not; `Err` when the token failed while being checked. Blocks.
    fn verify(&self, key: &Pkcs11Key, name: &str) -> Result<Option<String>> {
        let differs = |what: &str, by: &str| {
            Some(format!(
                "{name} holds {what} than {by} under the same label"
            ))
        };
        match (self, key.rsa_public_der()) {
            (Self::Rsa { public_der, by }, Some(der)) => Ok((der != &public_der[..])
                .then(|| differs("another RSA key", by))
                .flatten()),
            (Self::Rsa { by, .. }, None) => Ok(differs("an AES key, not the RSA key", by)),
            (Self::Aes { by, .. }, Some(_)) => Ok(differs("an RSA key, not the AES key", by)),
            (Self::Aes { probe, edk, by }, None) => match key.check_unwrap(edk, PROBE_LEN) {
                Ok(dk) if dk.expose() == &probe[..] => Ok(None),
                Ok(_) | Err(Error::UnwrapFailed { .. }) => Ok(differs("another AES key", by)),
                Err(e) => Err(e),
            },
        }
    }
}

/// A token's state in this process.
#[derive(Clone)]
enum State {
    /// Not opened yet (absent when the key opened, or not reached since).
    Closed,
    /// Opened and checked.
    Open(Pkcs11Key),
    /// Holds a different key: never used (the reason).
    Excluded(String),
}

struct Member {
    uri: Pkcs11Uri,
    /// `token=A` (the node name in errors and the health view).
    name: String,
    state: Mutex<State>,
}

impl Member {
    fn state(&self) -> State {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, s: State) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }
}

struct Inner {
    info: KeyInfo,
    members: Vec<Member>,
    endpoints: Endpoints,
    /// Made by the first token that opens (at open, or later if none was present then).
    check: Mutex<Option<Arc<Check>>>,
    can_wrap: bool,
    retry: RetryConfig,
}

/// One key in several PKCS#11 tokens, with failover between them (see the module docs).
#[derive(Clone)]
pub struct Pkcs11Slots {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pkcs11Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Slots")
            .field("info", &self.inner.info)
            .field("tokens", &self.inner.endpoints.joined())
            .finish_non_exhaustive()
    }
}

/// Whether a failure blames the token (another token may serve). A key missing from a
/// token that holds it at open counts: SoftHSM reports its token files going away as the key
/// vanishing (CKR_OBJECT_HANDLE_INVALID, then no object), and a key destroyed on one token
/// but not the others is that token failing, not the key being gone (destroying a key means
/// destroying it on every listed token).
fn token_failed(e: &Error) -> bool {
    matches!(
        e,
        Error::Unavailable { .. }
            | Error::ModuleUnavailable { .. }
            | Error::TokenNotFound { .. }
            | Error::NotFound { .. }
    )
}

/// The cause without the key name (the member's URI) in front.
fn cause(e: &Error) -> String {
    match e {
        Error::Unavailable { detail, .. }
        | Error::ModuleUnavailable { detail, .. }
        | Error::TokenNotFound { detail, .. } => detail.clone(),
        Error::NotFound { detail, .. } => format!("key not found: {detail}"),
        other => other.to_string(),
    }
}

impl Pkcs11Slots {
    /// Open the key in every token a several-token URI lists (at least one must open) and
    /// check that the tokens that opened hold the same key. Blocks.
    pub fn open(uri: &Pkcs11Uri) -> Result<Self> {
        let who = uri.display();
        let label = uri.object_label()?.to_owned();
        let members: Vec<Member> = uri
            .members()
            .into_iter()
            .map(|u| Member {
                name: u.selectors_display(),
                uri: u,
                state: Mutex::new(State::Closed),
            })
            .collect();
        let endpoints = Endpoints::new(
            members.iter().map(|m| m.name.clone()).collect(),
            uri.cool_down.unwrap_or(DEFAULT_COOL_DOWN),
        )?;
        let mut check: Option<Check> = None;
        let mut can_wrap = true;
        for (i, m) in members.iter().enumerate() {
            let key = match Pkcs11Key::open(&m.uri) {
                Ok(k) => k,
                // A present token without the key is a provisioning mistake: refused here.
                Err(e) if token_failed(&e) && !matches!(e, Error::NotFound { .. }) => {
                    tracing::warn!(key = %who, token = %m.name, error = %e, "token unavailable; using the others");
                    endpoints.failure(i);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match &check {
                None => {
                    check = Some(Check::make(&key, &m.name)?);
                    can_wrap = key.can_wrap();
                }
                Some(c) => {
                    if let Some(why) = c.verify(&key, &m.name)? {
                        return Err(Error::Unsupported {
                            key: who,
                            detail: format!(
                                "{why}; every listed token must hold the same key (import or \
                                 unwrap the same key into each, or list tokens of one HSM \
                                 cluster that replicates keys)"
                            ),
                        });
                    }
                }
            }
            m.set(State::Open(key));
        }
        if check.is_none() {
            // Like a Vault or KMIP key whose nodes are all down: requests fail (one line naming
            // each token) until a token is back, and the health view can say which is which.
            tracing::warn!(key = %who, "no listed token is present");
        }
        Ok(Self {
            inner: Arc::new(Inner {
                info: KeyInfo {
                    backend: "pkcs11",
                    uri: who.as_str().into(),
                    provider_id: uri.namespace.as_str().into(),
                    key_name: label.as_str().into(),
                },
                members,
                endpoints,
                check: Mutex::new(check.map(Arc::new)),
                can_wrap,
                retry: RetryConfig {
                    max_retries: 1,
                    ..RetryConfig::default()
                },
            }),
        })
    }

    /// The tokens' names (`token=A`), in the configured order.
    pub fn tokens(&self) -> Vec<String> {
        self.inner.members.iter().map(|m| m.name.clone()).collect()
    }
}

impl Inner {
    /// Token `i`'s key, opened and checked now if it was not yet. Blocks.
    fn member_key(&self, i: usize) -> Result<Pkcs11Key> {
        let m = &self.members[i];
        match m.state() {
            State::Open(k) => return Ok(k),
            State::Excluded(why) => {
                return Err(Error::Unavailable {
                    key: self.info.uri.to_string(),
                    detail: format!("excluded: {why}"),
                })
            }
            State::Closed => {}
        }
        // A token that comes back is checked like the ones found at open. Failures that do
        // not blame the device (the key is missing or differs, the PIN is refused) exclude
        // the token for the life of the process rather than fail requests another token
        // serves, and a refused PIN is not tried again (that would lock the token).
        let why = match Pkcs11Key::open(&m.uri).and_then(|key| {
            let verdict = self.verify(&key, &m.name)?;
            Ok((key, verdict))
        }) {
            Ok((key, None)) => {
                tracing::info!(key = %self.info.uri, token = %m.name, "token opened and checked");
                m.set(State::Open(key.clone()));
                return Ok(key);
            }
            Ok((_, Some(why))) => why,
            Err(e) if token_failed(&e) => return Err(e),
            Err(e) => cause(&e),
        };
        tracing::error!(key = %self.info.uri, token = %m.name, "{why}; the token is not used");
        m.set(State::Excluded(why.clone()));
        Err(Error::Unavailable {
            key: self.info.uri.to_string(),
            detail: format!("excluded: {why}"),
        })
    }

    /// Check `key` (token `name`) against the first token's key; the first token to open
    /// makes the check. Blocks.
    fn verify(&self, key: &Pkcs11Key, name: &str) -> Result<Option<String>> {
        let mut slot = self.check.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some(c) => {
                let c = c.clone();
                drop(slot);
                c.verify(key, name)
            }
            None => {
                *slot = Some(Arc::new(Check::make(key, name)?));
                Ok(None)
            }
        }
    }

    /// A failure of token `i` as the failover loop needs it.
    fn attempt_error(&self, i: usize, e: Error) -> AttemptError {
        if token_failed(&e) {
            AttemptError::retryable(Error::Unavailable {
                key: self.info.uri.to_string(),
                detail: format!("{}: {}", self.members[i].name, cause(&e)),
            })
        } else {
            AttemptError::permanent(e)
        }
    }
}

impl Pkcs11Slots {
    /// Token `i`'s key on tokio's blocking pool (opening it may block).
    async fn key(&self, i: usize) -> std::result::Result<Pkcs11Key, AttemptError> {
        let inner = self.inner.clone();
        blocking(move || inner.member_key(i))
            .await
            .map_err(|e| self.inner.attempt_error(i, e))
    }
}

#[async_trait]
impl KeyStore for Pkcs11Slots {
    fn info(&self) -> &KeyInfo {
        &self.inner.info
    }

    fn can_wrap(&self) -> bool {
        self.inner.can_wrap
    }

    async fn wrap(&self, data_key: &DataKey, req: WrapRequest<'_>) -> Result<EncryptedDataKey> {
        self.inner
            .endpoints
            .run(&self.inner.retry, "pkcs11 wrap", |i| async move {
                let key = self.key(i).await?;
                key.wrap(data_key, req)
                    .await
                    .map_err(|e| self.inner.attempt_error(i, e))
            })
            .await
    }

    async fn unwrap(
        &self,
        edk: &EncryptedDataKey,
        req: WrapRequest<'_>,
    ) -> Result<Option<DataKey>> {
        self.inner
            .endpoints
            .run(&self.inner.retry, "pkcs11 unwrap", |i| async move {
                let key = self.key(i).await?;
                key.unwrap(edk, req)
                    .await
                    .map_err(|e| self.inner.attempt_error(i, e))
            })
            .await
    }

    /// One entry per token: `up` when the key answered a lookup just now, `unreachable` when
    /// the token failed, `excluded` when it holds a different key.
    async fn health(&self) -> Vec<NodeHealth> {
        let mut out = Vec::with_capacity(self.inner.members.len());
        for i in 0..self.inner.members.len() {
            let inner = self.inner.clone();
            let started = Instant::now();
            let probed = blocking(move || {
                let key = inner.member_key(i)?;
                key.probe()?;
                Ok(format!("slot {}, {}", key.slot_id(), key.kind()))
            })
            .await;
            let latency = started.elapsed();
            let (role, latency, detail) = match probed {
                Ok(d) => {
                    self.inner.endpoints.success_probe(i);
                    (NodeRole::Up, Some(latency), d)
                }
                Err(e) => {
                    self.inner.endpoints.failure(i);
                    let role = match self.inner.members[i].state() {
                        State::Excluded(_) => NodeRole::Excluded,
                        _ => NodeRole::Unreachable,
                    };
                    (role, None, cause(&e))
                }
            };
            let status = &self.inner.endpoints.status()[i];
            out.push(NodeHealth {
                addr: self.inner.members[i].name.clone(),
                role,
                latency,
                circuit: status.circuit,
                failures: status.failures,
                detail: one_line(&detail, 300),
            });
        }
        out
    }
}
