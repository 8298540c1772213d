//! GetHealthStatus: one `ekmFleetDetails` entry per backend kind of the store's keys
//! (`pkcs11`, `vault-transit`, `kmip`, `raw-aes`), ACTIVE when every key of that backend answered
//! its probe, DEGRADED when some did, UNAVAILABLE when none did. Probes check that each key
//! is reachable and usable without a cryptographic operation, so health checks never show up
//! as key uses in the key store's logs.

use std::collections::BTreeMap;

use hyok::aead::SharedAeadKey;

use crate::api::{EkmDetail, HealthResponse};

/// At most this many entries (the specification allows ten).
const MAX_ENTRIES: usize = 10;

fn model(backend: &str) -> &'static str {
    match backend {
        "pkcs11" => "PKCS#11 token (AES-GCM in the token)",
        "vault-transit" => "Vault/OpenBao Transit (aes256-gcm96)",
        "raw-aes" => "raw AES-256 key file (tests and demos only)",
        "kmip" => "KMIP 1.4 key manager (AES-GCM in the server)",
        _ => "hyok key store",
    }
}

/// Probe every key (at once) and report per backend.
pub async fn check(keys: &[SharedAeadKey]) -> HealthResponse {
    let mut set = tokio::task::JoinSet::new();
    for k in keys {
        let k = k.clone();
        set.spawn(async move { (k.info().backend, k.probe().await.is_ok()) });
    }
    let mut by_backend: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    while let Some(r) = set.join_next().await {
        let (backend, ok) = r.unwrap_or(("hyok", false));
        let e = by_backend.entry(backend).or_default();
        e.0 += 1;
        if ok {
            e.1 += 1;
        }
    }
    let mut details: Vec<EkmDetail> = by_backend
        .into_iter()
        .take(MAX_ENTRIES)
        .map(|(backend, (total, ok))| EkmDetail {
            id: backend.to_owned(),
            model: model(backend).to_owned(),
            health_status: if ok == total {
                "ACTIVE"
            } else if ok > 0 {
                "DEGRADED"
            } else {
                "UNAVAILABLE"
            },
        })
        .collect();
    if details.is_empty() {
        details.push(EkmDetail {
            id: "none".into(),
            model: "no keys configured for this key store".into(),
            health_status: "UNAVAILABLE",
        });
    }
    let vendors: Vec<&str> = details.iter().map(|d| d.id.as_str()).collect();
    HealthResponse {
        xks_proxy_fleet_size: 1,
        xks_proxy_vendor: "hyok".into(),
        xks_proxy_model: format!("hyok xks {}", env!("CARGO_PKG_VERSION")),
        ekm_vendor: format!("hyok key stores: {}", vendors.join(", ")),
        ekm_fleet_details: details,
    }
}

/// `pkcs11 ACTIVE, kmip DEGRADED`: the report in one line (for the audit record).
pub fn summary(report: &HealthResponse) -> String {
    report
        .ekm_fleet_details
        .iter()
        .map(|d| format!("{} {}", d.id, d.health_status))
        .collect::<Vec<_>>()
        .join(", ")
}
