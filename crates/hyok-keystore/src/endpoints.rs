//! Several endpoints (nodes) of one key-store cluster: which node a request goes to, failing
//! over to the next one, and a circuit breaker that skips a node that just failed.
//!
//! Used by the Vault/OpenBao and KMIP backends. The rules:
//!
//! * A request goes to the node that answered last (sticky: its connections are warm), then to
//!   the other nodes whose circuit is closed or half-open, in the configured order. Nodes whose
//!   circuit is open are skipped, unless every node's is, when all are tried (soonest to
//!   reopen first) rather than failing without trying.
//! * A failed attempt moves on to the next node at once only when it is safe to send the
//!   request again ([`AttemptError::retryable`], decided by the backend: always after a refused
//!   connection, which means nothing was sent; after a timeout, a reset connection, 429 or 5xx
//!   only for idempotent calls such as Transit encrypt/decrypt and KMIP Encrypt/Decrypt/Get).
//! * A failure that blames the node ([`AttemptError::node_failed`]: no connection, timeout,
//!   429/5xx, sealed) opens the node's circuit for the cool-down. A success closes it.
//! * When every candidate failed, the round is over: after a backoff pause
//!   ([`RetryConfig`]) a new round starts, until `max_retries` rounds or `retry_timeout` are
//!   spent. With one node this is exactly the single-server retry loop.
//! * When every node failed, the error names each node's failure on one line.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::health::Circuit;
use crate::net::{one_line, AttemptError, RetryConfig};

/// Most nodes one key URI may name.
pub const MAX_ENDPOINTS: usize = 16;

/// Default cool-down of a failed node.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct NodeState {
    /// Consecutive failures.
    failures: u32,
    /// While in the future: the circuit is open.
    open_until: Option<Instant>,
    /// Set from the first failure until the next success (open or half-open).
    tripped: bool,
}

#[derive(Debug)]
struct Node {
    addr: String,
    state: Mutex<NodeState>,
}

/// The nodes of one cluster with their circuit-breaker state. Shared by every task that uses
/// the key store.
#[derive(Debug)]
pub struct Endpoints {
    nodes: Vec<Node>,
    cool_down: Duration,
    /// The node that answered last.
    preferred: AtomicUsize,
}

/// The breaker's state of one node (for the health view).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's address.
    pub addr: String,
    /// Its circuit.
    pub circuit: Circuit,
    /// Consecutive failures.
    pub failures: u32,
}

/// Split a comma-separated address list (`a,b,c`), trimming blanks; at least one, at most
/// [`MAX_ENDPOINTS`], no repeats.
pub fn split_list(list: &str, scheme: &str) -> Result<Vec<String>> {
    let addrs: Vec<String> = list
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if addrs.is_empty() {
        return Err(Error::Config(format!(
            "{scheme}: the address list is empty"
        )));
    }
    if addrs.len() > MAX_ENDPOINTS {
        return Err(Error::Config(format!(
            "{scheme}: {} addresses given; at most {MAX_ENDPOINTS} nodes per key store",
            addrs.len()
        )));
    }
    Ok(addrs)
}

/// Parse a `cooldown=SECONDS` attribute (1 to 3600).
pub fn cool_down_attr(value: &str, scheme: &str) -> Result<Duration> {
    value
        .parse::<u64>()
        .ok()
        .filter(|s| (1..=3600).contains(s))
        .map(Duration::from_secs)
        .ok_or_else(|| {
            Error::Config(format!(
                "{scheme}: cooldown={value:?} must be a whole number of seconds from 1 to 3600"
            ))
        })
}

impl Endpoints {
    /// The nodes at `addrs` (already checked and normalised by the backend; not empty, no
    /// repeats), each failed node skipped for `cool_down`.
    pub fn new(addrs: Vec<String>, cool_down: Duration) -> Result<Self> {
        if addrs.is_empty() || addrs.len() > MAX_ENDPOINTS {
            return Err(Error::Config(format!(
                "a key store needs 1 to {MAX_ENDPOINTS} node addresses, not {}",
                addrs.len()
            )));
        }
        for (i, a) in addrs.iter().enumerate() {
            if addrs[..i].contains(a) {
                return Err(Error::Config(format!(
                    "the node address {a} is listed twice"
                )));
            }
        }
        Ok(Self {
            nodes: addrs
                .into_iter()
                .map(|addr| Node {
                    addr,
                    state: Mutex::new(NodeState::default()),
                })
                .collect(),
            cool_down,
            preferred: AtomicUsize::new(0),
        })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false (there is at least one node); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Address of node `i`.
    pub fn addr(&self, i: usize) -> &str {
        &self.nodes[i].addr
    }

    /// The addresses, comma-separated, in the configured order (for key URIs and labels).
    pub fn joined(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.addr.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node that answered last (where a request without failover, such as a follow-up
    /// lookup, should go).
    pub fn preferred(&self) -> usize {
        self.preferred
            .load(Ordering::Relaxed)
            .min(self.nodes.len() - 1)
    }

    fn lock(&self, i: usize) -> std::sync::MutexGuard<'_, NodeState> {
        // A panic while holding this lock cannot leave the counters inconsistent.
        self.nodes[i]
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn circuit(&self, i: usize, now: Instant) -> Circuit {
        let s = self.lock(i);
        match s.open_until {
            Some(t) if t > now => Circuit::Open { remaining: t - now },
            _ if s.tripped => Circuit::HalfOpen,
            _ => Circuit::Closed,
        }
    }

    /// The nodes to try, in order (see the module docs).
    pub fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let first = self.preferred();
        let ring = (0..self.nodes.len()).map(|k| (first + k) % self.nodes.len());
        let mut usable = Vec::new();
        let mut open = Vec::new();
        for i in ring {
            match self.circuit(i, now) {
                Circuit::Open { remaining } => open.push((remaining, i)),
                _ => usable.push(i),
            }
        }
        if usable.is_empty() {
            open.sort_by_key(|(r, _)| *r);
            return open.into_iter().map(|(_, i)| i).collect();
        }
        // Keep the configured order after the sticky node, so failover is predictable.
        let sticky = usable[0];
        usable[1..].sort_unstable();
        let mut out = vec![sticky];
        out.extend(usable.into_iter().skip(1));
        out
    }

    /// Node `i` answered.
    pub fn success(&self, i: usize) {
        self.success_probe(i);
        self.preferred.store(i, Ordering::Relaxed);
    }

    /// A health probe found node `i` serving: close its circuit (without making it the
    /// preferred node, which only a real request does).
    pub fn success_probe(&self, i: usize) {
        let mut s = self.lock(i);
        s.failures = 0;
        s.open_until = None;
        s.tripped = false;
    }

    /// Node `i` failed: open its circuit for the cool-down.
    pub fn failure(&self, i: usize) {
        let mut s = self.lock(i);
        s.failures = s.failures.saturating_add(1);
        s.open_until = Some(Instant::now() + self.cool_down);
        s.tripped = true;
    }

    /// The breaker's state of every node, in the configured order.
    pub fn status(&self) -> Vec<NodeStatus> {
        let now = Instant::now();
        (0..self.nodes.len())
            .map(|i| NodeStatus {
                addr: self.nodes[i].addr.clone(),
                circuit: self.circuit(i, now),
                failures: self.lock(i).failures,
            })
            .collect()
    }

    /// Run `attempt(node index)` on the nodes in turn until one succeeds, a failure may not be
    /// sent again, or the retry budget is spent (see the module docs).
    pub async fn run<T, F, Fut>(&self, retry: &RetryConfig, what: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = std::result::Result<T, AttemptError>>,
    {
        let started = Instant::now();
        let mut bound = retry.backoff.init_backoff;
        let mut rounds = 0;
        loop {
            let mut failed: Vec<(usize, Error)> = Vec::new();
            for i in self.order() {
                match attempt(i).await {
                    Ok(v) => {
                        if !failed.is_empty() {
                            tracing::info!(
                                target: "hyok::failover",
                                "{what}: node {} answered after {} other node(s) failed",
                                self.addr(i),
                                failed.len()
                            );
                        }
                        self.success(i);
                        return Ok(v);
                    }
                    Err(e) => {
                        if e.node_failed {
                            self.failure(i);
                        }
                        if !e.retryable {
                            return Err(e.error);
                        }
                        tracing::debug!(
                            target: "hyok::failover",
                            "{what}: node {} failed ({}); trying the next node",
                            self.addr(i),
                            e.error
                        );
                        failed.push((i, e.error));
                    }
                }
            }
            let pause = crate::net::jitter(bound);
            if rounds >= retry.max_retries || started.elapsed() + pause > retry.retry_timeout {
                return Err(self.all_failed(failed));
            }
            rounds += 1;
            tracing::debug!(
                target: "hyok::failover",
                "{what}: round {rounds} failed on every node tried; again in {pause:?}"
            );
            tokio::time::sleep(pause).await;
            let next = bound.as_secs_f64() * retry.backoff.base;
            bound = Duration::from_secs_f64(next.min(retry.backoff.max_backoff.as_secs_f64()));
        }
    }

    /// One error for a round in which every node tried failed: the only error as it is, or
    /// (several nodes) each node's cause on one line.
    fn all_failed(&self, mut failed: Vec<(usize, Error)>) -> Error {
        if failed.len() <= 1 {
            return failed
                .pop()
                .map(|(_, e)| e)
                .unwrap_or_else(|| Error::Config("no node to send the request to".into()));
        }
        let n = failed.len();
        let key = match &failed[0].1 {
            Error::Unavailable { key, .. } => key.clone(),
            _ => return failed.swap_remove(0).1,
        };
        let causes: Vec<String> = failed
            .iter()
            .map(|(_, e)| match e {
                Error::Unavailable { detail, .. } => detail.clone(),
                other => other.to_string(),
            })
            .collect();
        Error::Unavailable {
            key,
            detail: one_line(
                &format!("all {n} nodes failed: {}", causes.join("; ")),
                1200,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::BackoffConfig;

    fn quick(max_retries: usize) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(2),
                base: 2.0,
            },
            max_retries,
            retry_timeout: Duration::from_secs(5),
        }
    }

    fn down(i: usize) -> AttemptError {
        AttemptError::retryable(Error::Unavailable {
            key: "k".into(),
            detail: format!("node {i} refused"),
        })
    }

    fn three() -> Endpoints {
        Endpoints::new(
            vec!["a".into(), "b".into(), "c".into()],
            Duration::from_secs(60),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn fails_over_and_skips_the_failed_node_until_the_cool_down_ends() {
        let e = three();
        let mut tried = Vec::new();
        let r = e
            .run(&quick(0), "t", |i| {
                tried.push(i);
                async move {
                    if i == 0 {
                        Err(down(i))
                    } else {
                        Ok(i)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!((r, tried), (1, vec![0, 1]));
        assert!(matches!(e.status()[0].circuit, Circuit::Open { .. }));
        assert_eq!(e.status()[0].failures, 1);
        // Node a is skipped now; b is sticky.
        assert_eq!(e.order(), vec![1, 2]);
    }

    #[tokio::test]
    async fn a_failure_that_may_not_be_repeated_stops_at_once() {
        let e = three();
        let mut tried = 0;
        let r: Result<()> = e
            .run(&quick(3), "t", |_| {
                tried += 1;
                async {
                    Err(AttemptError::node(
                        Error::Unavailable {
                            key: "k".into(),
                            detail: "no answer".into(),
                        },
                        false,
                    ))
                }
            })
            .await;
        assert!(r.unwrap_err().to_string().contains("no answer"));
        assert_eq!(tried, 1);
        assert!(matches!(e.status()[0].circuit, Circuit::Open { .. }));
    }

    #[tokio::test]
    async fn all_nodes_down_gives_one_line_naming_each() {
        let e = three();
        let mut tried = 0;
        let r: Result<()> = e
            .run(&quick(1), "t", |i| {
                tried += 1;
                async move { Err(down(i)) }
            })
            .await;
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains("all 3 nodes failed"), "{msg}");
        for i in 0..3 {
            assert!(msg.contains(&format!("node {i} refused")), "{msg}");
        }
        assert!(!msg.contains('\n'));
        // Round 1 tries all three; round 2 finds every circuit open and tries all again.
        assert_eq!(tried, 6);
    }

    #[tokio::test]
    async fn a_permanent_error_is_returned_as_is_and_blames_no_node() {
        let e = three();
        let r: Result<()> = e
            .run(&quick(3), "t", |_| async {
                Err(AttemptError::permanent(Error::Denied {
                    key: "k".into(),
                    detail: "no".into(),
                }))
            })
            .await;
        assert!(matches!(r, Err(Error::Denied { .. })));
        assert_eq!(e.status()[0].circuit, Circuit::Closed);
    }

    #[test]
    fn half_open_after_the_cool_down_and_closed_after_a_success() {
        let e = Endpoints::new(vec!["a".into(), "b".into()], Duration::ZERO).unwrap();
        e.failure(0);
        assert_eq!(e.status()[0].circuit, Circuit::HalfOpen);
        assert_eq!(e.order(), vec![0, 1]);
        e.success(0);
        assert_eq!(e.status()[0].circuit, Circuit::Closed);
        assert_eq!(e.status()[0].failures, 0);
    }

    #[test]
    fn lists_and_settings_are_checked() {
        assert_eq!(split_list(" a, b ,", "s").unwrap(), vec!["a", "b"]);
        assert!(split_list(",", "s").is_err());
        assert!(split_list(&vec!["x"; 17].join(","), "s").is_err());
        assert!(Endpoints::new(vec!["a".into(), "a".into()], DEFAULT_COOL_DOWN).is_err());
        assert_eq!(cool_down_attr("5", "s").unwrap(), Duration::from_secs(5));
        for bad in ["0", "3601", "1.5", "x"] {
            assert!(cool_down_attr(bad, "s").is_err(), "{bad}");
        }
    }
}
