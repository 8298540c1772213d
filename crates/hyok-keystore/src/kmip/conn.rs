//! Mutual-TLS connections to a KMIP server (or to the servers of one cluster, with failover
//! through [`crate::endpoints`]): connect with a time limit, send one request message, read
//! one response message (bounded), keep a few idle connections per server for reuse.

use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

use super::proto::tag;
use super::ttlv::{header, MAX_MESSAGE};
use crate::endpoints::Endpoints;
use crate::error::{Error, Result};
use crate::net::{AttemptError, RetryConfig, Timeouts};

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 16;

type Conn = TlsStream<TcpStream>;

/// One server of the cluster.
struct Server {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    idle: Mutex<Vec<Conn>>,
}

impl Server {
    fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Connections to the servers of one KMIP cluster (often one server) with one client
/// identity.
pub(crate) struct Connector {
    servers: Vec<Server>,
    endpoints: Endpoints,
    tls: TlsConnector,
    pub(crate) timeouts: Timeouts,
    pub(crate) retry: RetryConfig,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("servers", &self.endpoints.joined())
            .finish_non_exhaustive()
    }
}

/// Where the transport failed, for the message.
enum Stage {
    Handshake,
    Exchange { fresh: bool },
}

impl Connector {
    pub(crate) fn new(
        hosts: Vec<(String, u16)>,
        roots: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        timeouts: Timeouts,
        retry: RetryConfig,
        cool_down: std::time::Duration,
    ) -> Result<Self> {
        let mut store = rustls::RootCertStore::empty();
        for c in roots {
            store
                .add(c)
                .map_err(|e| Error::Config(format!("kmip: CA certificate not usable: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("kmip: TLS setup: {e}")))?
            .with_root_certificates(store)
            .with_client_auth_cert(chain, key)
            .map_err(|e| {
                Error::Config(format!(
                    "kmip: the client certificate and key do not fit together or are not \
                     supported: {e}"
                ))
            })?;
        let mut servers = Vec::with_capacity(hosts.len());
        for (host, port) in hosts {
            let server_name = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => ServerName::IpAddress(ip.into()),
                Err(_) => ServerName::try_from(host.clone()).map_err(|_| {
                    Error::Config(format!("kmip: {host:?} is not a valid host name"))
                })?,
            };
            servers.push(Server {
                host,
                port,
                server_name,
                idle: Mutex::new(Vec::new()),
            });
        }
        let endpoints = Endpoints::new(servers.iter().map(Server::addr).collect(), cool_down)?;
        Ok(Self {
            servers,
            endpoints,
            tls: TlsConnector::from(Arc::new(config)),
            timeouts,
            retry,
        })
    }

    /// The servers' `host:port`, comma-separated.
    pub(crate) fn addrs(&self) -> String {
        self.endpoints.joined()
    }

    /// The servers and their circuit breakers.
    pub(crate) fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Send one request message and return the response message's bytes (zeroized on drop),
    /// on a healthy server (see [`crate::endpoints`]). Idempotent requests may reuse an idle
    /// connection, are retried per the retry settings and fail over after any transport
    /// failure; others always use a fresh connection, are sent once, and go to another server
    /// only when the connection could not be made.
    pub(crate) async fn roundtrip(
        &self,
        key: &str,
        request: &[u8],
        idempotent: bool,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let retry = if idempotent {
            self.retry
        } else {
            RetryConfig::none()
        };
        self.endpoints
            .run(&retry, "KMIP request", |node| {
                self.attempt(node, key, request, idempotent)
            })
            .await
    }

    /// One request to server `node` only, without retries or failover (health probes).
    pub(crate) async fn roundtrip_on(
        &self,
        node: usize,
        key: &str,
        request: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.attempt(node, key, request, true)
            .await
            .map_err(|e| e.error)
    }

    async fn attempt(
        &self,
        node: usize,
        key: &str,
        request: &[u8],
        idempotent: bool,
    ) -> std::result::Result<Zeroizing<Vec<u8>>, AttemptError> {
        let server = &self.servers[node];
        // Repeated elsewhere after a failure that may have reached the server: idempotent
        // requests only, and only when there is another server.
        let repeat = idempotent && self.servers.len() > 1;
        if idempotent {
            if let Some(mut conn) = server.take_idle() {
                match tokio::time::timeout(self.timeouts.request, exchange(&mut conn, request))
                    .await
                {
                    Ok(Ok(resp)) => {
                        server.put_idle(conn);
                        return Ok(resp);
                    }
                    // Most likely closed by the server while idle: use a fresh connection.
                    Ok(Err(e)) => {
                        tracing::debug!(target: "hyok::kmip", "idle connection failed ({e}); reconnecting");
                    }
                    Err(_) => return Err(self.timed_out(server, key, repeat)),
                }
            }
        }
        let mut conn = self.connect(server, key).await?;
        match tokio::time::timeout(self.timeouts.request, exchange(&mut conn, request)).await {
            Ok(Ok(resp)) => {
                server.put_idle(conn);
                Ok(resp)
            }
            Ok(Err(e)) => {
                let e = self.io_error(server, key, &e, Stage::Exchange { fresh: true });
                Err(if self.servers.len() > 1 && !e.retryable {
                    // The server broke the exchange off: blame it, and let an idempotent
                    // request try another server.
                    AttemptError::node(e.error, repeat)
                } else {
                    e
                })
            }
            Err(_) => Err(self.timed_out(server, key, repeat)),
        }
    }

    fn timed_out(&self, server: &Server, key: &str, repeat: bool) -> AttemptError {
        AttemptError::node(
            Error::Unavailable {
                key: key.to_owned(),
                detail: format!(
                    "no answer from the KMIP server at {} within {:?}",
                    server.addr(),
                    self.timeouts.request
                ),
            },
            repeat,
        )
    }

    async fn connect(&self, server: &Server, key: &str) -> std::result::Result<Conn, AttemptError> {
        let unavailable = |detail: String, retryable: bool| {
            let e = Error::Unavailable {
                key: key.to_owned(),
                detail,
            };
            if retryable {
                AttemptError::retryable(e)
            } else {
                AttemptError::permanent(e)
            }
        };
        let tcp = match tokio::time::timeout(
            self.timeouts.connect,
            TcpStream::connect((server.host.as_str(), server.port)),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(unavailable(
                    format!(
                        "cannot connect to the KMIP server at {}: {e}",
                        server.addr()
                    ),
                    true,
                ))
            }
            Err(_) => {
                return Err(unavailable(
                    format!(
                        "connecting to the KMIP server at {} timed out after {:?}",
                        server.addr(),
                        self.timeouts.connect
                    ),
                    true,
                ))
            }
        };
        let _ = tcp.set_nodelay(true);
        match tokio::time::timeout(
            self.timeouts.connect,
            self.tls.connect(server.server_name.clone(), tcp),
        )
        .await
        {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(self.io_error(server, key, &e, Stage::Handshake)),
            Err(_) => Err(unavailable(
                format!(
                    "the TLS handshake with the KMIP server at {} did not finish within {:?}",
                    server.addr(),
                    self.timeouts.connect
                ),
                // Nothing was sent yet: another server may take it.
                self.servers.len() > 1,
            )),
        }
    }

    /// Map a transport error, looking for the TLS cause inside it.
    fn io_error(
        &self,
        server: &Server,
        key: &str,
        e: &std::io::Error,
        stage: Stage,
    ) -> AttemptError {
        let addr = server.addr();
        let key = key.to_owned();
        if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return AttemptError::permanent(match tls {
                rustls::Error::InvalidCertificate(c) => Error::Denied {
                    key,
                    detail: format!(
                        "the KMIP server's certificate at {addr} is not trusted ({c:?}); check \
                         ca= (or HYOK_KMIP_CA) and that the host name matches the certificate"
                    ),
                },
                rustls::Error::AlertReceived(alert) => Error::Denied {
                    key,
                    detail: format!(
                        "the KMIP server at {addr} refused our client certificate (TLS alert \
                         {alert:?}); check cert= and key= (or HYOK_KMIP_CERT, HYOK_KMIP_KEY) \
                         and that the server trusts their CA"
                    ),
                },
                rustls::Error::PeerIncompatible(p) => Error::Unavailable {
                    key,
                    detail: format!(
                        "no TLS parameters in common with the KMIP server at {addr} ({p:?}); \
                         hyok needs TLS 1.2+ with AES-GCM or ChaCha20 suites (a server with an \
                         RSA certificate may offer only CBC suites: give it an ECDSA one)"
                    ),
                },
                other => Error::Unavailable {
                    key,
                    detail: format!("TLS with the KMIP server at {addr} failed: {other}"),
                },
            });
        }
        match stage {
            Stage::Handshake => {
                let retryable = matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                );
                let e = Error::Unavailable {
                    key,
                    detail: format!("TLS handshake with the KMIP server at {addr} failed: {e}"),
                };
                if retryable {
                    AttemptError::retryable(e)
                } else {
                    AttemptError::permanent(e)
                }
            }
            Stage::Exchange { fresh } => {
                let closed = matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                );
                let detail = if closed && fresh {
                    format!(
                        "the KMIP server at {addr} closed the connection without answering (it \
                         may have refused the client certificate, e.g. one without \
                         extendedKeyUsage clientAuth, or the request; see the server's log)"
                    )
                } else {
                    format!("talking to the KMIP server at {addr} failed: {e}")
                };
                AttemptError::permanent(Error::Unavailable { key, detail })
            }
        }
    }
}

impl Server {
    fn take_idle(&self) -> Option<Conn> {
        self.idle.lock().ok()?.pop()
    }

    fn put_idle(&self, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }
}

/// Write a request, read one whole response message.
async fn exchange(conn: &mut Conn, request: &[u8]) -> std::io::Result<Zeroizing<Vec<u8>>> {
    conn.write_all(request).await?;
    conn.flush().await?;
    let mut head = [0u8; 8];
    conn.read_exact(&mut head).await?;
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let (t, item_type, len) = header(&head).map_err(|e| invalid(e.to_string()))?;
    if t != tag::RESPONSE_MESSAGE || item_type != 0x01 {
        return Err(invalid(format!(
            "the server sent something other than a KMIP response message (tag 0x{t:06x}, \
             type 0x{item_type:02x})"
        )));
    }
    let len = len as usize;
    if len > MAX_MESSAGE - 8 || len % 8 != 0 {
        return Err(invalid(format!(
            "KMIP response message length {len} is invalid or too large"
        )));
    }
    let mut msg = Zeroizing::new(vec![0u8; 8 + len]);
    msg[..8].copy_from_slice(&head);
    conn.read_exact(&mut msg[8..]).await?;
    Ok(msg)
}
