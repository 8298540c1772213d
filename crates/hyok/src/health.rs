//! Health of the key stores: every server node behind each key (reachable, active or
//! standby, latency, circuit-breaker state). `hyok key health` prints it; the gateway's and
//! the XKS proxy's `/health` can serve [`of_manager`] over their live key manager, whose
//! circuit breakers are the ones their requests use.
//!
//! ```no_run
//! # async fn f(session: &hyok::Session) -> hyok::Result<()> {
//! let key = hyok::health::open(session, "vault-transit:k?addr=https://a:8200,https://b:8200")?;
//! for node in hyok::health::of_keys(&[key]).await[0].nodes.iter() {
//!     println!("{} {} {}", node.addr, node.role, node.circuit);
//! }
//! # Ok(()) }
//! ```

use std::fmt::Write as _;

pub use hyok_keystore::health::{Circuit, NodeHealth, NodeRole};
use hyok_keystore::{KeyManager, SharedKeyStore};

use crate::text::escape_str;
use crate::{Result, Session};

/// The nodes behind one key.
#[derive(Clone, Debug)]
pub struct KeyHealth {
    /// The key's URI without secrets.
    pub key: String,
    /// One entry per node, in the configured order; empty for local key stores (raw keys,
    /// PKCS#11 tokens), which have no server nodes.
    pub nodes: Vec<NodeHealth>,
    /// For a k-of-n key: its key groups, each member key probed; `None` for other keys.
    pub groups: Option<GroupsHealth>,
}

/// The key groups of a k-of-n key, each member key probed.
#[derive(Clone, Debug)]
pub struct GroupsHealth {
    /// Groups that must serve (k); `None` for a decrypt-only opener (each message says).
    pub needed: Option<usize>,
    /// Each group's keys.
    pub groups: Vec<Vec<KeyHealth>>,
}

impl GroupsHealth {
    /// Groups with at least one key that serves.
    pub fn serving_groups(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| g.iter().any(KeyHealth::serving))
            .count()
    }
}

impl KeyHealth {
    /// Whether requests for this key can be served: a local store, or at least one node that
    /// is active, a standby or up; for a k-of-n key, at least k groups (an opener: one) with a
    /// key that serves.
    pub fn serving(&self) -> bool {
        if let Some(g) = &self.groups {
            return g.serving_groups() >= g.needed.unwrap_or(1).max(1);
        }
        self.nodes.is_empty() || self.nodes.iter().any(|n| n.role.serves())
    }

    /// The view as JSON: `{"key":…,"serving":…,"nodes":[{"addr","role","latency_ms",
    /// "circuit","failures","detail"}…]}`.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\"key\":{},\"serving\":{},\"nodes\":[",
            json_str(&self.key),
            self.serving()
        );
        for (i, n) in self.nodes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let latency = match n.latency {
                Some(d) => format!("{:.3}", d.as_secs_f64() * 1000.0),
                None => "null".into(),
            };
            let _ = write!(
                out,
                "{{\"addr\":{},\"role\":\"{}\",\"latency_ms\":{latency},\"circuit\":{},\
                 \"failures\":{},\"detail\":{}}}",
                json_str(&n.addr),
                n.role.as_str(),
                json_str(&n.circuit.to_string()),
                n.failures,
                json_str(&n.detail)
            );
        }
        out.push(']');
        if let Some(g) = &self.groups {
            let _ = write!(
                out,
                ",\"groups\":{{\"needed\":{},\"serving\":{},\"members\":[",
                g.needed.map_or("null".into(), |k| k.to_string()),
                g.serving_groups()
            );
            for (i, group) in g.groups.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('[');
                let keys: Vec<String> = group.iter().map(Self::to_json).collect();
                out.push_str(&keys.join(","));
                out.push(']');
            }
            out.push_str("]}");
        }
        out.push('}');
        out
    }

    /// The view as text lines for a terminal (untrusted text escaped).
    pub fn to_text(&self) -> String {
        let mut out = format!("{}\n", escape_str(&self.key));
        if let Some(g) = &self.groups {
            let n = g.groups.len();
            let _ = writeln!(
                out,
                "  {} of {n} key groups serve ({})",
                g.serving_groups(),
                match g.needed {
                    Some(k) => format!("{k} needed"),
                    None => "each message says how many are needed".into(),
                }
            );
            for (i, group) in g.groups.iter().enumerate() {
                let ok = group.iter().any(Self::serving);
                let _ = writeln!(
                    out,
                    "  group {} of {n}: {}",
                    i + 1,
                    if ok { "serving" } else { "NOT serving" }
                );
                for k in group {
                    for line in k.to_text().lines() {
                        let _ = writeln!(out, "    {line}");
                    }
                }
            }
            return out;
        }
        if self.nodes.is_empty() {
            out.push_str("  local key store: no server nodes\n");
            return out;
        }
        let _ = writeln!(
            out,
            "  {:<32} {:<13} {:>10}  {:<16} DETAIL",
            "NODE", "ROLE", "LATENCY", "CIRCUIT"
        );
        for n in &self.nodes {
            let latency = n
                .latency
                .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "  {:<32} {:<13} {:>10}  {:<16} {}",
                escape_str(&n.addr),
                n.role.as_str(),
                latency,
                n.circuit.to_string(),
                escape_str(&n.detail)
            );
        }
        out
    }
}

/// Open the key a URI names with the session's registry (as `--key` would), for probing.
pub fn open(session: &Session, uri: &str) -> Result<SharedKeyStore> {
    Ok(session.registry().open_key(uri)?)
}

/// Probe the nodes behind each key, one key after the other (for a k-of-n key, every key of
/// every group).
pub async fn of_keys(keys: &[SharedKeyStore]) -> Vec<KeyHealth> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        out.push(of_key(k).await);
    }
    out
}

/// Most levels of k-of-n keys inside k-of-n keys the health view follows.
const MAX_DEPTH: usize = 4;

fn of_key(
    k: &SharedKeyStore,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = KeyHealth> + Send + '_>> {
    of_key_at(k, 0)
}

fn of_key_at(
    k: &SharedKeyStore,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = KeyHealth> + Send + '_>> {
    Box::pin(async move {
        let groups = match k.key_groups() {
            Some(g) if depth < MAX_DEPTH => {
                let mut probed = Vec::with_capacity(g.groups.len());
                for group in &g.groups {
                    let mut keys = Vec::with_capacity(group.len());
                    for member in group {
                        keys.push(of_key_at(member, depth + 1).await);
                    }
                    probed.push(keys);
                }
                Some(GroupsHealth {
                    needed: g.needed,
                    groups: probed,
                })
            }
            _ => None,
        };
        KeyHealth {
            key: k.info().uri.to_string(),
            nodes: k.health().await,
            groups,
        }
    })
}

/// Probe the nodes behind every key of a key manager (a session's keyring, a server's).
pub async fn of_manager(manager: &KeyManager) -> Vec<KeyHealth> {
    of_keys(manager.keyring().keys()).await
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn json_and_text_escape_untrusted_text() {
        let h = KeyHealth {
            key: "vault-transit:k?addr=http://a".into(),
            nodes: vec![NodeHealth {
                addr: "http://a".into(),
                role: NodeRole::Unreachable,
                latency: None,
                circuit: Circuit::Open {
                    remaining: Duration::from_secs(3),
                },
                failures: 2,
                detail: "bad \"x\"\u{1b}[31m".into(),
            }],
            groups: None,
        };
        assert!(!h.serving());
        let j = h.to_json();
        assert!(j.contains(r#""detail":"bad \"x\"\u001b[31m""#), "{j}");
        assert!(j.contains(r#""latency_ms":null"#), "{j}");
        assert!(j.contains(r#""circuit":"open (3s left)""#), "{j}");
        let t = h.to_text();
        assert!(!t.contains('\u{1b}'), "{t}");
        assert!(t.contains("unreachable"), "{t}");
        let local = KeyHealth {
            key: "raw-aes:n/k".into(),
            nodes: vec![],
            groups: None,
        };
        assert!(local.serving());
        assert!(local.to_text().contains("no server nodes"));
    }

    #[test]
    fn a_k_of_n_key_serves_while_k_groups_do() {
        let local = |name: &str| KeyHealth {
            key: format!("raw-aes:n/{name}"),
            nodes: vec![],
            groups: None,
        };
        let down = KeyHealth {
            key: "vault-transit:k?addr=http://a".into(),
            nodes: vec![NodeHealth {
                addr: "http://a".into(),
                role: NodeRole::Unreachable,
                latency: None,
                circuit: Circuit::Closed,
                failures: 1,
                detail: "refused".into(),
            }],
            groups: None,
        };
        let mut h = KeyHealth {
            key: "threshold:2-of-3 …".into(),
            nodes: vec![],
            groups: Some(GroupsHealth {
                needed: Some(2),
                groups: vec![vec![local("a")], vec![down.clone()], vec![local("c")]],
            }),
        };
        assert!(h.serving());
        let t = h.to_text();
        assert!(t.contains("2 of 3 key groups serve (2 needed)"), "{t}");
        assert!(t.contains("group 2 of 3: NOT serving"), "{t}");
        assert!(t.contains("    http://a"), "{t}");
        let j = h.to_json();
        assert!(
            j.contains(r#""groups":{"needed":2,"serving":2,"members":[[{"key":"raw-aes:n/a""#),
            "{j}"
        );
        assert!(j.contains(r#""role":"unreachable""#), "{j}");
        assert!(j.ends_with("}]]}}"), "{j}");
        h.groups.as_mut().unwrap().groups[2] = vec![down];
        assert!(!h.serving());
    }
}
