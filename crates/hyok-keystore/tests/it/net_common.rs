//! Service settings, skipping, unique names, dead and silent addresses.

use std::io::Write as _;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

use hyok_keystore::admin::{open_admin, KeyKind};
use hyok_keystore::uri::KeyUri;

/// Whether missing services fail the test (`HYOK_REQUIRE_SERVICES=1`, as in CI).
pub fn required() -> bool {
    std::env::var("HYOK_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skip loudly, or fail when services are required.
pub fn skip(test: &str, why: &str) {
    if required() {
        panic!("{test}: {why}, and HYOK_REQUIRE_SERVICES=1");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `127.0.0.1:PORT` where nothing listens (a port that was free a moment ago).
pub fn dead_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = l.local_addr().expect("local addr");
    drop(l);
    addr.to_string()
}

/// A listener that accepts TCP connections (through the backlog) but never answers. Keep it
/// alive as long as it is needed.
pub fn silent_listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = l.local_addr().expect("local addr").to_string();
    (l, addr)
}

/// The OpenBao dev server from `scripts/services/openbao.sh`.
pub struct Vault {
    pub addr: String,
    pub token: String,
    http: reqwest::Client,
}

pub fn vault(test: &str) -> Option<Vault> {
    match (var("VAULT_ADDR"), var("VAULT_TOKEN")) {
        (Some(addr), Some(token)) => Some(Vault {
            addr,
            token,
            http: reqwest::Client::new(),
        }),
        _ => {
            skip(
                test,
                "VAULT_ADDR/VAULT_TOKEN not set (eval \"$(scripts/services/openbao.sh)\")",
            );
            None
        }
    }
}

impl Vault {
    /// `vault-transit:NAME?addr=…` (token from VAULT_TOKEN).
    pub fn uri(&self, name: &str) -> String {
        format!("vault-transit:{name}?addr={}", self.addr)
    }

    /// Create an aes256-gcm96 key through hyok's admin interface.
    pub async fn create_key(&self, name: &str) {
        let uri = self.uri(name);
        let (admin, parsed) = open_admin(&uri).expect("vault admin");
        admin
            .create(&parsed, KeyKind::Aes256)
            .await
            .unwrap_or_else(|e| panic!("creating {name}: {e}"));
    }

    /// A root-token API call for test setup (policies, AppRole); returns status and body.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.token);
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().await.expect("Vault API call");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }
}

/// The PyKMIP server from `scripts/services/kmip.sh`.
pub struct Kmip {
    pub addr: String,
}

pub fn kmip(test: &str) -> Option<Kmip> {
    match (
        var("HYOK_KMIP_ADDR"),
        var("HYOK_KMIP_CA"),
        var("HYOK_KMIP_CERT"),
        var("HYOK_KMIP_KEY"),
    ) {
        (Some(addr), Some(_), Some(_), Some(_)) => Some(Kmip { addr }),
        _ => {
            skip(
                test,
                "HYOK_KMIP_ADDR/CA/CERT/KEY not set (eval \"$(scripts/services/kmip.sh)\")",
            );
            None
        }
    }
}

impl Kmip {
    /// `kmip://ADDR/ID` (certificates from the environment).
    pub fn uri(&self, id: &str) -> String {
        format!("kmip://{}/{id}", self.addr)
    }

    /// Create an active AES-256 key through hyok's admin interface; returns its URI by
    /// unique identifier.
    pub async fn create_key(&self, name: &str) -> String {
        let uri = self.uri(name);
        let (admin, parsed) = open_admin(&uri).expect("kmip admin");
        admin
            .create(&parsed, KeyKind::Aes256)
            .await
            .unwrap_or_else(|e| panic!("creating {name}: {e}"))
            .uri
    }

    /// Destroy a key (cleanup; failures are ignored).
    pub async fn destroy(&self, uri: &str) {
        if let Ok((admin, parsed)) = open_admin(uri) {
            let _ = admin.destroy(&parsed).await;
        }
    }
}

/// Parse a URI in tests.
pub fn parse(uri: &str) -> KeyUri {
    KeyUri::parse(uri).expect("valid key URI")
}
