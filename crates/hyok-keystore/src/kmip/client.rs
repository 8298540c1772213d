//! One KMIP server connection set: version negotiation, requests, and batch results
//! mapped to key-store errors.

use super::*;
use crate::health::{NodeHealth, NodeRole};
use crate::net::one_line;

/// One KMIP server connection set, with the negotiated protocol version.
pub(crate) struct KmipClient {
    pub(super) conn: Connector,
    pub(crate) addr: String,
    pub(super) version: tokio::sync::OnceCell<Version>,
}

impl fmt::Debug for KmipClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmipClient")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

pub(super) fn malformed(key: &str, e: TtlvError) -> Error {
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

impl KmipClient {
    /// Ask every server for DiscoverVersions (one at a time, no retries) and record the
    /// outcome in its circuit breaker.
    pub(crate) async fn health(&self, key: &str) -> Vec<NodeHealth> {
        let msg = proto::request(proto::V1_1, vec![(Operation::DiscoverVersions, vec![])]).encode();
        let endpoints = self.conn.endpoints();
        let mut out = Vec::with_capacity(endpoints.len());
        for node in 0..endpoints.len() {
            let started = std::time::Instant::now();
            let answer = self.conn.roundtrip_on(node, key, &msg).await;
            let latency = started.elapsed();
            let parsed = answer.and_then(|resp| {
                let item = Ttlv::decode(&resp).map_err(|e| malformed(key, e))?;
                proto::parse_response(item, 1).map_err(|e| malformed(key, e))
            });
            let (role, latency, detail) = match parsed {
                Ok(mut results) => {
                    let versions = results
                        .pop()
                        .and_then(|r| r.payload)
                        .map(|p| {
                            p.children(tag::PROTOCOL_VERSION)
                                .filter_map(|v| Version::parse(v).ok())
                                .map(|v| v.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default();
                    (NodeRole::Up, Some(latency), format!("KMIP {versions}"))
                }
                Err(e) => (NodeRole::Unreachable, None, one_line(&e.to_string(), 300)),
            };
            if role.serves() {
                endpoints.success_probe(node);
            } else {
                endpoints.failure(node);
            }
            let status = &endpoints.status()[node];
            out.push(NodeHealth {
                addr: endpoints.addr(node).to_owned(),
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
