//! The health view of a key store: one line per server node (reachable, role, latency,
//! circuit-breaker state). Network key stores fill it in ([`crate::KeyStore::health`]), and so
//! does a key held by several PKCS#11 tokens (one entry per token); other local ones (raw
//! keys, a single PKCS#11 token) have no nodes.

use std::fmt;
use std::time::Duration;

/// What a node said about itself when asked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeRole {
    /// Serves requests itself (Vault/OpenBao: the active node).
    Active,
    /// Answers, but forwards writes to the active node (Vault/OpenBao standby).
    Standby,
    /// A Vault Enterprise performance standby (serves reads itself).
    PerformanceStandby,
    /// Answers but is sealed: every key operation fails until it is unsealed.
    Sealed,
    /// Answers but is not initialised (or has not joined its cluster yet).
    Uninitialized,
    /// Answered a protocol-level probe (KMIP servers say no more than that).
    Up,
    /// Did not answer (refused, timed out, TLS failure); the reason is in `detail`.
    Unreachable,
    /// Answers, but hyok does not use it: a PKCS#11 token that holds a different key under
    /// the key's label (the reason is in `detail`).
    Excluded,
}

impl NodeRole {
    /// Whether key operations sent to this node can succeed.
    pub fn serves(&self) -> bool {
        matches!(
            self,
            Self::Active | Self::Standby | Self::PerformanceStandby | Self::Up
        )
    }

    /// Short lower-case name (`active`, `standby`, …) for tables and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Standby => "standby",
            Self::PerformanceStandby => "perf-standby",
            Self::Sealed => "sealed",
            Self::Uninitialized => "uninitialized",
            Self::Up => "up",
            Self::Unreachable => "unreachable",
            Self::Excluded => "excluded",
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The circuit breaker's view of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Circuit {
    /// Requests go to the node.
    Closed,
    /// The node failed recently: it is skipped (while another node is usable) until the
    /// cool-down ends.
    Open {
        /// Time left in the cool-down.
        remaining: Duration,
    },
    /// The cool-down is over but no request has succeeded on the node since it failed: the
    /// next request that needs it tries it again.
    HalfOpen,
}

impl fmt::Display for Circuit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("closed"),
            Self::Open { remaining } => write!(f, "open ({}s left)", remaining.as_secs().max(1)),
            Self::HalfOpen => f.write_str("half-open"),
        }
    }
}

/// One node of a key store, as probed just now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeHealth {
    /// The node's address as configured (`https://vault-1:8200`, `kmip-1:5696`).
    pub addr: String,
    /// What the node said, or `Unreachable`.
    pub role: NodeRole,
    /// Round-trip time of the probe (absent when it got no answer).
    pub latency: Option<Duration>,
    /// The circuit breaker's state for this node after the probe.
    pub circuit: Circuit,
    /// Consecutive failures the key store has seen on this node.
    pub failures: u32,
    /// The node's version or the error that made it unreachable (one line, escaped).
    pub detail: String,
}
