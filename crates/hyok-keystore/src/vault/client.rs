//! The HTTP side of the Vault backend: one reqwest client, the token (static, from a file, or
//! from an AppRole login that is renewed before it expires), bounded retries, and the mapping
//! of Vault's answers to [`Error`] classes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::endpoints::Endpoints;
use crate::error::{Error, Result};
use crate::health::{NodeHealth, NodeRole};
use crate::net::{error_chain, one_line, AttemptError, RetryConfig, Secret, Timeouts};

/// Largest answer body read from Vault.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Where the token comes from.
#[derive(Debug)]
pub(crate) enum AuthConfig {
    /// A fixed token (`VAULT_TOKEN`).
    Token(Secret),
    /// A file holding the token, read again when Vault refuses it (Vault agent sinks rotate it).
    TokenFile(PathBuf),
    /// AppRole login; the token is renewed before it expires and fetched again when refused.
    AppRole {
        mount: String,
        role_id: Secret,
        secret_id: Secret,
    },
}

impl AuthConfig {
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Token(_) => "the token from VAULT_TOKEN".into(),
            Self::TokenFile(p) => format!("the token in {}", p.display()),
            Self::AppRole { mount, .. } => format!("the AppRole login at auth/{mount}"),
        }
    }
}

#[derive(Debug)]
struct TokenState {
    token: Secret,
    /// When to renew (AppRole), two thirds into the lease.
    renew_at: Option<Instant>,
    /// When the lease ends (AppRole).
    expires_at: Option<Instant>,
    renewable: bool,
}

/// One answer from Vault that is not a transport failure, 429 or 5xx.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    /// The JSON body; zeroized on drop because decrypt answers carry data keys.
    pub(crate) body: Zeroizing<Vec<u8>>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<String>,
}

impl Reply {
    /// Vault's `errors` array, joined and made safe for one line.
    pub(crate) fn messages(&self) -> String {
        let errors = serde_json::from_slice::<ErrorBody>(&self.body)
            .map(|b| b.errors)
            .unwrap_or_default();
        one_line(&errors.join("; "), 300)
    }

    /// Parse the body as `T`.
    pub(crate) fn parse<'a, T: Deserialize<'a>>(&'a self, key: &str, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Backend {
            key: key.to_owned(),
            detail: format!(
                "unexpected answer from Vault to {what}: {}",
                one_line(&e.to_string(), 200)
            ),
        })
    }
}

/// A Vault client for one cluster (one or several node addresses), namespace and identity.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest::Client,
    /// `scheme://host:port` of each node, comma-separated (for URIs and labels).
    pub(crate) addr: String,
    /// The nodes, with their circuit-breaker state.
    endpoints: Endpoints,
    pub(crate) namespace: Option<String>,
    auth: AuthConfig,
    state: tokio::sync::Mutex<Option<TokenState>>,
    pub(crate) retry: RetryConfig,
    pub(crate) timeouts: Timeouts,
}

#[derive(Deserialize)]
struct AuthReply {
    auth: Option<AuthData>,
}

#[derive(Deserialize)]
struct AuthData {
    client_token: Secret,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

impl Client {
    pub(crate) fn new(
        endpoints: Endpoints,
        namespace: Option<String>,
        ca: Option<Vec<reqwest::Certificate>>,
        auth: AuthConfig,
        retry: RetryConfig,
        timeouts: Timeouts,
    ) -> Result<Self> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            // A redirect would resend the token to wherever it points; Vault and OpenBao
            // standbys forward requests themselves, and every node can be listed in addr=.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hyok/", env!("CARGO_PKG_VERSION")));
        if let Some(certs) = ca {
            b = b.tls_certs_only(certs);
        }
        let http = b.build().map_err(|e| {
            Error::Config(format!(
                "vault-transit: cannot set up HTTPS: {}",
                error_chain(&e)
            ))
        })?;
        Ok(Self {
            http,
            addr: endpoints.joined(),
            endpoints,
            namespace,
            auth,
            state: tokio::sync::Mutex::new(None),
            retry,
            timeouts,
        })
    }

    /// `METHOD /v1/PATH` with the token, on a healthy node (see [`crate::endpoints`]).
    /// `idempotent` calls (reads, Transit encrypt/decrypt) are retried per the retry settings
    /// and fail over after any transport failure, timeout, 429 or 5xx; the others are sent
    /// once, and to another node only when the connection was refused (nothing was sent). A
    /// 403 is answered once by fetching a fresh token where that can help (token file,
    /// AppRole); a second 403 becomes [`Error::Denied`].
    pub(crate) async fn call(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
        idempotent: bool,
    ) -> Result<Reply> {
        let body = body.map(|b| bytes::Bytes::from_owner(ZeroizingBytes(b)));
        let retry = if idempotent {
            self.retry
        } else {
            RetryConfig::none()
        };
        let mut refreshed = false;
        loop {
            let token = self.token(key).await?;
            let what = format!("{method} {path}");
            let reply = self
                .endpoints
                .run(&retry, &what, |node| {
                    let request = Request {
                        method: method.clone(),
                        path,
                        body: body.clone(),
                        token: Some(&token),
                        idempotent,
                    };
                    self.send_once(key, node, request)
                })
                .await?;
            if reply.status == StatusCode::FORBIDDEN {
                if !refreshed && self.refresh(key, &token).await? {
                    refreshed = true;
                    continue;
                }
                return Err(self.denied(key, &method, path, &token).await);
            }
            return Ok(reply);
        }
    }

    /// One request to node `node`. Transport failures, 429, 5xx and redirects are errors
    /// (retryable where that is safe); any other status comes back as a [`Reply`].
    async fn send_once(
        &self,
        key: &str,
        node: usize,
        request: Request<'_>,
    ) -> std::result::Result<Reply, AttemptError> {
        let Request {
            method,
            path,
            body,
            token,
            idempotent,
        } = request;
        let addr = self.endpoints.addr(node);
        let url = format!("{addr}/v1/{path}");
        // Sent again elsewhere after a failure that may have reached the server: only
        // idempotent calls, and only when there is another node (one node keeps the old rule:
        // a timed-out request is not repeated, the service may still be working on it).
        let repeat = idempotent && self.endpoints.len() > 1;
        let mut headers = HeaderMap::new();
        if let Some(t) = token {
            let mut v = HeaderValue::from_str(t.expose()).map_err(|_| {
                AttemptError::permanent(Error::Config(
                    "vault-transit: the Vault token contains characters not allowed in a header"
                        .into(),
                ))
            })?;
            v.set_sensitive(true);
            headers.insert("X-Vault-Token", v);
        }
        if let Some(ns) = &self.namespace {
            if let Ok(v) = HeaderValue::from_str(ns) {
                headers.insert("X-Vault-Namespace", v);
            }
        }
        headers.insert("X-Vault-Request", HeaderValue::from_static("true"));
        let mut req = self.http.request(method, &url).headers(headers);
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.transport_error(key, addr, &e, repeat))?;
        let status = resp.status();
        let body = read_body(resp)
            .await
            .map_err(|e| self.transport_error(key, addr, &e, repeat))?;
        let reply = Reply { status, body };
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let msg = reply.messages();
            let detail = if msg.to_ascii_lowercase().contains("sealed") {
                format!("Vault at {addr} is sealed ({msg})")
            } else if msg.is_empty() {
                format!("Vault at {addr} answered {status}")
            } else {
                format!("Vault at {addr} answered {status}: {msg}")
            };
            // One node: retried per the retry settings as before (only idempotent calls get
            // a retry budget). Several: the next node, for idempotent calls.
            let e = Error::Unavailable {
                key: key.to_owned(),
                detail,
            };
            return Err(if self.endpoints.len() > 1 {
                AttemptError::node(e, idempotent)
            } else {
                AttemptError::retryable(e)
            });
        }
        if status.is_redirection() {
            // Not followed (it would carry the token elsewhere). The node did not do the
            // request, so another listed node may.
            let e = Error::Unavailable {
                key: key.to_owned(),
                detail: format!(
                    "Vault at {addr} answered {status} (a redirect, e.g. from a standby node \
                     that does not forward requests); list every node in addr= \
                     (addr=https://A:8200,https://B:8200) or point it at the active node"
                ),
            };
            return Err(if self.endpoints.len() > 1 {
                AttemptError::node(e, true)
            } else {
                AttemptError::permanent(e)
            });
        }
        Ok(reply)
    }

    fn transport_error(
        &self,
        key: &str,
        addr: &str,
        e: &reqwest::Error,
        repeat: bool,
    ) -> AttemptError {
        let chain = error_chain(e);
        if e.is_timeout() {
            // The request may still be processed: repeat it only when that is safe.
            return AttemptError::node(
                Error::Unavailable {
                    key: key.to_owned(),
                    detail: format!(
                        "no answer from Vault at {addr} within {:?}",
                        self.timeouts.request
                    ),
                },
                repeat,
            );
        }
        let tls = chain.contains("certificate")
            || chain.contains("handshake")
            || chain.contains("InvalidContentType")
            || chain.contains("tls");
        if tls {
            return AttemptError::permanent(Error::Denied {
                key: key.to_owned(),
                detail: format!(
                    "TLS with Vault at {addr} failed: {chain} (check ca=PEM or VAULT_CACERT)"
                ),
            });
        }
        let e2 = Error::Unavailable {
            key: key.to_owned(),
            detail: format!("cannot reach Vault at {addr}: {}", innermost(e)),
        };
        if e.is_connect() {
            // Nothing was sent: safe to send anywhere, idempotent or not.
            AttemptError::retryable(e2)
        } else if e.is_request() || e.is_body() {
            // A connection that broke on the way: the request may have arrived.
            if self.endpoints.len() > 1 {
                AttemptError::node(e2, repeat)
            } else {
                AttemptError::retryable(e2)
            }
        } else {
            AttemptError::node(e2, false)
        }
    }

    /// The current token, logging in or renewing first where needed.
    async fn token(&self, key: &str) -> Result<Secret> {
        let mut state = self.state.lock().await;
        match &self.auth {
            AuthConfig::Token(t) => Ok(Secret::new(t.expose().to_owned())),
            AuthConfig::TokenFile(path) => {
                if state.is_none() {
                    *state = Some(TokenState {
                        token: Secret::from_file(path, "Vault token")?,
                        renew_at: None,
                        expires_at: None,
                        renewable: false,
                    });
                }
                Ok(copy(&state.as_ref().expect("set just above").token))
            }
            AuthConfig::AppRole { .. } => {
                let now = Instant::now();
                let due = match state.as_ref() {
                    None => true,
                    Some(s) => s.renew_at.is_some_and(|r| now >= r),
                };
                if due {
                    let renewed = match state.as_ref() {
                        Some(s) if s.renewable && s.expires_at.is_some_and(|e| now < e) => {
                            self.renew(key, &s.token).await.ok()
                        }
                        _ => None,
                    };
                    *state = Some(match renewed {
                        Some(s) => s,
                        None => self.login(key).await?,
                    });
                }
                Ok(copy(&state.as_ref().expect("set just above").token))
            }
        }
    }

    /// After a 403: get a different token if the source can give one. Returns whether a new
    /// token is there to try.
    async fn refresh(&self, key: &str, refused: &Secret) -> Result<bool> {
        let mut state = self.state.lock().await;
        match &self.auth {
            AuthConfig::Token(_) => Ok(false),
            AuthConfig::TokenFile(path) => {
                let fresh = Secret::from_file(path, "Vault token")?;
                let changed = fresh.expose() != refused.expose();
                *state = Some(TokenState {
                    token: fresh,
                    renew_at: None,
                    expires_at: None,
                    renewable: false,
                });
                Ok(changed)
            }
            AuthConfig::AppRole { .. } => {
                *state = Some(self.login(key).await?);
                Ok(true)
            }
        }
    }

    async fn login(&self, key: &str) -> Result<TokenState> {
        let AuthConfig::AppRole {
            mount,
            role_id,
            secret_id,
        } = &self.auth
        else {
            return Err(Error::Config(
                "vault-transit: not an AppRole configuration".into(),
            ));
        };
        #[derive(serde::Serialize)]
        struct Login<'a> {
            role_id: &'a str,
            secret_id: &'a str,
        }
        let mut body = Zeroizing::new(Vec::new());
        serde_json::to_writer(
            &mut *body,
            &Login {
                role_id: role_id.expose(),
                secret_id: secret_id.expose(),
            },
        )
        .map_err(|e| Error::Config(format!("vault-transit: {e}")))?;
        let path = format!("auth/{mount}/login");
        let body = bytes::Bytes::from_owner(ZeroizingBytes(body));
        let reply = self
            .endpoints
            .run(&self.retry, "AppRole login", |node| {
                let request = Request {
                    method: Method::POST,
                    path: &path,
                    body: Some(body.clone()),
                    token: None,
                    idempotent: true,
                };
                self.send_once(key, node, request)
            })
            .await?;
        if !reply.status.is_success() {
            return Err(Error::Denied {
                key: key.to_owned(),
                detail: format!(
                    "AppRole login at auth/{mount} failed ({}): {} (check VAULT_ROLE_ID and \
                     VAULT_SECRET_ID)",
                    reply.status,
                    reply.messages()
                ),
            });
        }
        self.token_state(key, &reply, "AppRole login")
    }

    async fn renew(&self, key: &str, token: &Secret) -> Result<TokenState> {
        let reply = self
            .endpoints
            .run(&self.retry, "token renewal", |node| {
                let request = Request {
                    method: Method::POST,
                    path: "auth/token/renew-self",
                    body: Some(bytes::Bytes::from_static(b"{}")),
                    token: Some(token),
                    idempotent: true,
                };
                self.send_once(key, node, request)
            })
            .await?;
        if !reply.status.is_success() {
            return Err(Error::Denied {
                key: key.to_owned(),
                detail: format!("token renewal failed ({})", reply.status),
            });
        }
        self.token_state(key, &reply, "token renewal")
    }

    fn token_state(&self, key: &str, reply: &Reply, what: &str) -> Result<TokenState> {
        let parsed: AuthReply = reply.parse(key, what)?;
        let auth = parsed.auth.ok_or_else(|| Error::Backend {
            key: key.to_owned(),
            detail: format!("Vault's answer to the {what} has no auth section"),
        })?;
        let now = Instant::now();
        let (renew_at, expires_at) = if auth.lease_duration == 0 {
            (None, None)
        } else {
            let lease = Duration::from_secs(auth.lease_duration);
            (Some(now + lease * 2 / 3), Some(now + lease))
        };
        tracing::debug!(
            target: "hyok::vault",
            "{what}: token valid for {}s (renewable: {})",
            auth.lease_duration,
            auth.renewable
        );
        Ok(TokenState {
            token: auth.client_token,
            renew_at,
            expires_at,
            renewable: auth.renewable,
        })
    }

    /// The error for a 403: asks Vault whether the token itself is valid, to tell a wrong or
    /// expired token apart from a policy that lacks the capability.
    async fn denied(&self, key: &str, method: &Method, path: &str, token: &Secret) -> Error {
        let request = Request {
            method: Method::GET,
            path: "auth/token/lookup-self",
            body: None,
            token: Some(token),
            idempotent: true,
        };
        let token_ok = match self
            .send_once(key, self.endpoints.preferred(), request)
            .await
        {
            Ok(r) => Some(r.status.is_success()),
            Err(_) => None,
        };
        let source = self.auth.describe();
        let detail = match token_ok {
            Some(false) => format!(
                "Vault refused {method} {path} with {source}: the token is invalid or expired \
                 (or has neither this capability nor the default policy)"
            ),
            Some(true) => format!(
                "the policies of {source} do not allow {} on {path}",
                capability(method)
            ),
            None => format!(
                "Vault refused {method} {path} with {source} (wrong or expired token, or a policy \
                 without this capability)"
            ),
        };
        Error::Denied {
            key: key.to_owned(),
            detail,
        }
    }
}

/// What `GET /v1/sys/health` says (every node answers it, without a token).
#[derive(Deserialize)]
struct HealthBody {
    #[serde(default)]
    initialized: bool,
    #[serde(default)]
    sealed: bool,
    #[serde(default)]
    standby: bool,
    #[serde(default)]
    performance_standby: bool,
    #[serde(default)]
    version: String,
    #[serde(default)]
    cluster_name: String,
}

impl Client {
    /// Ask every node for `sys/health` (no token needed), one at a time, and record the
    /// outcome in its circuit breaker: a node that does not answer, or answers sealed or
    /// uninitialised, counts as failed; an active or standby node as healthy.
    pub(crate) async fn health(&self) -> Vec<NodeHealth> {
        let mut out = Vec::with_capacity(self.endpoints.len());
        for node in 0..self.endpoints.len() {
            let addr = self.endpoints.addr(node);
            let url = format!("{addr}/v1/sys/health");
            let started = Instant::now();
            let answer = self
                .http
                .get(&url)
                .timeout(self.timeouts.request.min(Duration::from_secs(5)))
                .send()
                .await;
            let (role, latency, detail) = match answer {
                Err(e) => (
                    NodeRole::Unreachable,
                    None,
                    if e.is_timeout() {
                        "no answer in time".to_owned()
                    } else {
                        innermost(&e)
                    },
                ),
                Ok(resp) => {
                    let status = resp.status();
                    let body = read_body(resp).await.unwrap_or_default();
                    let latency = started.elapsed();
                    match serde_json::from_slice::<HealthBody>(&body) {
                        Ok(h) => {
                            let role = if !h.initialized {
                                NodeRole::Uninitialized
                            } else if h.sealed {
                                NodeRole::Sealed
                            } else if h.performance_standby {
                                NodeRole::PerformanceStandby
                            } else if h.standby {
                                NodeRole::Standby
                            } else {
                                NodeRole::Active
                            };
                            // The cluster name tells nodes of one cluster (same keys)
                            // from look-alikes (see docs/AVAILABILITY.md).
                            let mut parts = Vec::new();
                            if !h.version.is_empty() {
                                parts.push(format!("version {}", one_line(&h.version, 40)));
                            }
                            if !h.cluster_name.is_empty() {
                                parts.push(format!("cluster {}", one_line(&h.cluster_name, 80)));
                            }
                            let detail = if parts.is_empty() {
                                format!("HTTP {}", status.as_u16())
                            } else {
                                parts.join(", ")
                            };
                            (role, Some(latency), detail)
                        }
                        Err(_) => (
                            NodeRole::Unreachable,
                            Some(latency),
                            format!("not a Vault health answer (HTTP {})", status.as_u16()),
                        ),
                    }
                }
            };
            if role.serves() {
                self.endpoints.success_probe(node);
            } else {
                self.endpoints.failure(node);
            }
            let status = &self.endpoints.status()[node];
            out.push(NodeHealth {
                addr: addr.to_owned(),
                role,
                latency,
                circuit: status.circuit,
                failures: status.failures,
                detail,
            });
        }
        out
    }
}

/// One request as [`Client::send_once`] sends it.
struct Request<'a> {
    method: Method,
    /// After `/v1/`.
    path: &'a str,
    body: Option<bytes::Bytes>,
    token: Option<&'a Secret>,
    /// Safe to send twice (see [`Client::call`]).
    idempotent: bool,
}

/// The Vault policy capability a request needs.
fn capability(m: &Method) -> &'static str {
    match m.as_str() {
        "GET" => "read",
        "LIST" => "list",
        "DELETE" => "delete",
        _ => "update",
    }
}

fn copy(s: &Secret) -> Secret {
    Secret::new(s.expose().to_owned())
}

/// The innermost cause of an error ("Connection refused (os error 111)"), which is the
/// telling part of reqwest's nested transport errors.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let s = cur.to_string();
    let mut c = s.chars();
    match c.next() {
        Some(f) => one_line(&(f.to_lowercase().collect::<String>() + c.as_str()), 200),
        None => s,
    }
}

async fn read_body(
    mut resp: reqwest::Response,
) -> std::result::Result<Zeroizing<Vec<u8>>, reqwest::Error> {
    let mut body = Zeroizing::new(Vec::new());
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            break;
        }
        if body.capacity() < body.len() + chunk.len() {
            // Grow by copying into a fresh zeroizing buffer, so no stale copy is left behind.
            let mut bigger = Zeroizing::new(Vec::with_capacity((body.len() + chunk.len()) * 2));
            bigger.extend_from_slice(&body);
            body = bigger;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Owner of a request body that zeroizes it once the HTTP stack is done with it.
struct ZeroizingBytes(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for ZeroizingBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
