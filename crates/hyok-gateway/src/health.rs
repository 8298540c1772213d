//! `GET /health`: a round trip through the key stores of every keyring the credentials
//! use (a fresh data key generated and wrapped, then unwrapped and compared), and the
//! backend folder present. The answer is kept for [`FRESH`] so that probes do not load the
//! key stores; concurrent probes wait for one round trip. Each round trip is an audited
//! key use with the subject `gateway /health`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hyok::{EncryptionContext, OpLabel, Session, Settings};
use tokio::sync::Mutex;

use crate::service::Gateway;

/// How long an answer is reused.
pub(crate) const FRESH: Duration = Duration::from_secs(5);
/// How long one keyring's round trip may take before it counts as failed.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The last answer: when, whether healthy, the text.
#[derive(Default)]
pub(crate) struct HealthCache(Mutex<Option<(Instant, bool, String)>>);

/// Generate, wrap and unwrap one data key with `session`'s keyring.
async fn round_trip(session: &Session) -> Result<(), String> {
    let km = session.key_manager().map_err(|e| e.to_string())?;
    let suite = Settings::default().suite;
    let mut ctx = EncryptionContext::new();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // A context of its own each time: a data-key cache cannot answer for the key stores.
    ctx.insert("hyok-gw-health", nanos.to_string());
    let label = OpLabel {
        message_id: None,
        subject: Some("gateway /health".into()),
    };
    let (key, edks) = km
        .encryption_materials(suite, &ctx, 0, &label)
        .await
        .map_err(|e| e.to_string())?;
    let back = km
        .decrypt_data_key(suite, &edks, &ctx, &label)
        .await
        .map_err(|e| e.to_string())?;
    if back.expose() == key.expose() {
        Ok(())
    } else {
        Err("the unwrapped data key differs from the generated one".into())
    }
}

/// Check every keyring (in parallel) and the backend: healthy, and one line per check.
async fn check(g: &Gateway) -> (bool, String) {
    let mut keyrings: BTreeMap<&str, &Arc<Session>> = BTreeMap::new();
    for c in g.callers.values() {
        keyrings.entry(c.keyring.as_str()).or_insert(&c.session);
    }
    let checks = keyrings.iter().map(|(name, session)| async move {
        let started = Instant::now();
        let res = match tokio::time::timeout(TIMEOUT, round_trip(session)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} s", TIMEOUT.as_secs())),
        };
        (*name, res, started.elapsed())
    });
    let mut healthy = true;
    let mut lines = Vec::new();
    for (name, res, took) in futures::future::join_all(checks).await {
        let name = hyok::text::escape_str(name);
        match res {
            Ok(()) => lines.push(format!(
                "keyring {name}: ok (key-store round trip {} ms)",
                took.as_millis()
            )),
            Err(e) => {
                healthy = false;
                lines.push(format!(
                    "keyring {name}: failed: {}",
                    hyok::text::escape_str(&e)
                ));
            }
        }
    }
    if let crate::settings::BackendKind::File(root) = g.backend.kind() {
        if root.is_dir() {
            lines.push("backend: ok".into());
        } else {
            healthy = false;
            lines.push(format!("backend: folder {} is missing", root.display()));
        }
    }
    (healthy, lines.join("\n"))
}

/// The current answer: `ok` or `unhealthy`, then one line per keyring (and the backend).
pub(crate) async fn report(g: &Gateway) -> (bool, String) {
    let mut last = g.health.0.lock().await;
    if let Some((at, healthy, text)) = &*last {
        if at.elapsed() < FRESH {
            return (*healthy, text.clone());
        }
    }
    let (healthy, lines) = check(g).await;
    let text = format!("{}\n{lines}\n", if healthy { "ok" } else { "unhealthy" });
    *last = Some((Instant::now(), healthy, text.clone()));
    (healthy, text)
}
