//! Shared helpers: the SoftHSM token, OpenBao and PyKMIP from the environment, unique labels,
//! dead and silent addresses, and a minimal encrypt/decrypt through the key manager and the
//! message format core.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hyok_core::{
    AlgorithmSuite, DataKey, DecryptOptions, EncryptOptions, EncryptionContext, Encryptor,
    HeaderLimits, ParsedHeader, PendingEncryption,
};
use hyok_keystore::admin::{open_admin, KeyAdmin, KeyKind};
use hyok_keystore::observe::{AuditSink, KeyEvent, KeyOp};
use hyok_keystore::pkcs11::Pkcs11Admin;
use hyok_keystore::{KeyManager, KeyStore, KeyUri, OpLabel, WrapRequest};

/// Suite of the key-store tests' messages and wrap requests.
pub(crate) const SUITE: AlgorithmSuite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;

/// The test token, as URI parts.
pub(crate) struct Hsm {
    pub token: String,
}

impl Hsm {
    /// `pkcs11:token=…;object=LABEL` (+ `?query` when given).
    pub(crate) fn uri(&self, label: &str, query: &str) -> String {
        let mut s = format!("pkcs11:token={};object={label}", self.token);
        if !query.is_empty() {
            s.push('?');
            s.push_str(query);
        }
        s
    }
}

/// The SoftHSM token, or None after a loud skip notice (a panic when services are required).
pub(crate) fn hsm(test: &str) -> Option<Hsm> {
    let vars = [
        "HYOK_PKCS11_MODULE",
        "HYOK_TEST_PKCS11_TOKEN",
        "HYOK_PKCS11_PIN",
    ];
    let missing: Vec<&str> = vars
        .iter()
        .copied()
        .filter(|v| std::env::var_os(v).is_none_or(|x| x.is_empty()))
        .collect();
    if missing.is_empty() {
        return Some(Hsm {
            token: std::env::var("HYOK_TEST_PKCS11_TOKEN").unwrap(),
        });
    }
    let problem = format!("{} not set", missing.join(", "));
    if std::env::var("HYOK_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("{test}: SoftHSM is required (HYOK_REQUIRE_SERVICES=1): {problem}");
    }
    eprintln!("SKIPPED: {test}: {problem}; run `eval \"$(scripts/services/softhsm.sh)\"` first");
    None
}

/// A label no other test (or earlier run) uses.
pub(crate) fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
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

/// A multi-thread runtime like the CLI's.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Create a key in the token through the admin interface.
pub(crate) fn create(uri: &str, kind: KeyKind) -> String {
    let parsed = KeyUri::parse(uri).unwrap();
    runtime()
        .block_on(Pkcs11Admin.create(&parsed, kind))
        .unwrap_or_else(|e| panic!("creating {uri}: {e}"))
        .uri
}

/// Destroy a key (test cleanup; errors ignored).
pub(crate) fn destroy(uri: &str) {
    if let Ok(parsed) = KeyUri::parse(uri) {
        let _ = runtime().block_on(Pkcs11Admin.destroy(&parsed));
    }
}

/// Destroys a key when dropped, so a failing test leaves no key behind.
pub(crate) struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        destroy(&self.0);
    }
}

pub(crate) fn context(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs.iter().copied().collect()
}

/// Encrypt `plain` into one message, as `hyok::Client` does.
pub(crate) async fn encrypt(
    manager: &KeyManager,
    ctx: &EncryptionContext,
    plain: &[u8],
) -> Result<Vec<u8>, String> {
    let pending =
        PendingEncryption::new(SUITE, ctx.clone(), BTreeSet::new()).map_err(|e| e.to_string())?;
    let label = OpLabel {
        message_id: Some(pending.message_id().to_vec()),
        subject: None,
    };
    let (dk, edks) = manager
        .encryption_materials(
            pending.suite(),
            pending.context(),
            plain.len() as u64,
            &label,
        )
        .await
        .map_err(|e| e.to_string())?;
    let materials = pending.complete(dk, edks).map_err(|e| e.to_string())?;
    let mut enc = Encryptor::new(Vec::new(), materials, EncryptOptions::default())
        .map_err(|e| e.to_string())?;
    enc.write_all(plain).map_err(|e| e.to_string())?;
    Ok(enc.finish().map_err(|e| e.to_string())?.0)
}

/// Decrypt one message.
pub(crate) async fn decrypt(
    manager: &KeyManager,
    ctx: &EncryptionContext,
    msg: &[u8],
) -> Result<Vec<u8>, hyok_keystore::Error> {
    let mut input = msg;
    let parsed = ParsedHeader::read(&mut input, HeaderLimits::default())?;
    let (materials_ctx, _) = parsed.materials_context(ctx)?;
    let h = &parsed.header;
    let dk = manager
        .decrypt_data_key(h.suite, &h.edks, &materials_ctx, &OpLabel::default())
        .await?;
    let verified = parsed.verify(&dk, ctx)?;
    let mut out = Vec::new();
    verified
        .decryptor(input, DecryptOptions::default())
        .read_to_end(&mut out)
        .map_err(hyok_core::Error::from_io)?;
    Ok(out)
}

/// An audit sink that keeps the operations it saw.
#[derive(Debug, Default)]
pub(crate) struct Recorder(pub Mutex<Vec<KeyOp>>);

impl AuditSink for Recorder {
    fn record(&self, event: KeyEvent) {
        self.0.lock().unwrap().push(event.op);
    }
}

impl Recorder {
    pub(crate) fn count(&self, op: KeyOp) -> usize {
        self.0.lock().unwrap().iter().filter(|o| **o == op).count()
    }
}

pub(crate) fn shared<T: KeyStore + 'static>(k: T) -> Arc<dyn KeyStore> {
    Arc::new(k)
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub(crate) fn pseudo(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Whether missing services fail the test (`HYOK_REQUIRE_SERVICES=1`, as in CI).
pub(crate) fn required() -> bool {
    std::env::var("HYOK_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skip loudly, or fail when services are required.
pub(crate) fn skip(test: &str, why: &str) {
    if required() {
        panic!("{test}: {why}, and HYOK_REQUIRE_SERVICES=1");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `127.0.0.1:PORT` where nothing listens (a port that was free a moment ago).
pub(crate) fn dead_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = l.local_addr().expect("local addr");
    drop(l);
    addr.to_string()
}

/// A listener that accepts TCP connections (through the backlog) but never answers. Keep it
/// alive as long as it is needed.
pub(crate) fn silent_listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = l.local_addr().expect("local addr").to_string();
    (l, addr)
}

/// The OpenBao dev server from `scripts/services/openbao.sh`.
pub(crate) struct Vault {
    pub addr: String,
    pub token: String,
    http: reqwest::Client,
}

pub(crate) fn vault(test: &str) -> Option<Vault> {
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
    pub(crate) fn uri(&self, name: &str) -> String {
        format!("vault-transit:{name}?addr={}", self.addr)
    }

    /// Create an aes256-gcm96 key through hyok's admin interface.
    pub(crate) async fn create_key(&self, name: &str) {
        let uri = self.uri(name);
        let (admin, parsed) = open_admin(&uri).expect("vault admin");
        admin
            .create(&parsed, KeyKind::Aes256)
            .await
            .unwrap_or_else(|e| panic!("creating {name}: {e}"));
    }

    /// A root-token API call for test setup (policies, AppRole); returns status and body.
    pub(crate) async fn api(
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
pub(crate) struct Kmip {
    pub addr: String,
}

pub(crate) fn kmip(test: &str) -> Option<Kmip> {
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
    pub(crate) fn uri(&self, id: &str) -> String {
        format!("kmip://{}/{id}", self.addr)
    }

    /// Create an active AES-256 key through hyok's admin interface; returns its URI by
    /// unique identifier.
    pub(crate) async fn create_key(&self, name: &str) -> String {
        let uri = self.uri(name);
        let (admin, parsed) = open_admin(&uri).expect("kmip admin");
        admin
            .create(&parsed, KeyKind::Aes256)
            .await
            .unwrap_or_else(|e| panic!("creating {name}: {e}"))
            .uri
    }

    /// Destroy a key (cleanup; failures are ignored).
    pub(crate) async fn destroy(&self, uri: &str) {
        if let Ok((admin, parsed)) = open_admin(uri) {
            let _ = admin.destroy(&parsed).await;
        }
    }
}

/// Parse a URI in tests.
pub(crate) fn parse(uri: &str) -> KeyUri {
    KeyUri::parse(uri).expect("valid key URI")
}

/// A wrap request for `ctx` under [`SUITE`].
pub(crate) fn req(ctx: &EncryptionContext) -> WrapRequest<'_> {
    WrapRequest {
        suite: SUITE,
        context: ctx,
    }
}

/// Wrap `n` data keys under `n` different contexts with one `wrap_batch` call and unwrap them
/// with one `unwrap_batch` call (more than one server request each for large `n`): every
/// key comes back, in order.
pub(crate) async fn batch_round_trip(store: &dyn KeyStore, n: usize) {
    let contexts: Vec<EncryptionContext> = (0..n)
        .map(|i| {
            let mut c = hyok_keystore::testing::context(1);
            c.insert("n", i.to_string());
            c
        })
        .collect();
    let keys: Vec<DataKey> = contexts
        .iter()
        .map(|_| DataKey::generate(SUITE).unwrap())
        .collect();
    let items: Vec<_> = keys
        .iter()
        .zip(&contexts)
        .map(|(k, c)| (k, req(c)))
        .collect();
    let edks: Vec<_> = store
        .wrap_batch(&items)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let items: Vec<_> = edks
        .iter()
        .zip(&contexts)
        .map(|(e, c)| (e, req(c)))
        .collect();
    let back = store.unwrap_batch(&items).await;
    assert_eq!(back.len(), n);
    for (r, k) in back.into_iter().zip(&keys) {
        assert_eq!(r.unwrap().unwrap().expose(), k.expose());
    }
}

/// The bound of the `*_fail_in_bounded_time` tests: with the retries and timeouts they
/// configure (a few seconds in all), a failure must come well within it; a hang fails the
/// test here instead of stalling the suite.
pub(crate) const FAILURE_BOUND: std::time::Duration = std::time::Duration::from_secs(60);

/// Await `f`, failing the test if it takes longer than [`FAILURE_BOUND`].
pub(crate) async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(FAILURE_BOUND, f)
        .await
        .unwrap_or_else(|_| panic!("no result within {FAILURE_BOUND:?}"))
}
