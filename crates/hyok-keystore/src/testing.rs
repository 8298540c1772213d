//! Conformance scenarios every key store runs (feature `testing`).
//!
//! A backend describes itself with a [`Fixture`]: how to open a working key, optionally a key
//! that does not exist in the same store, and the same key at an address where nothing
//! answers. [`run_all`] runs every scenario against it; [`multi_keyring`] runs one message's
//! data key through several stores at once. Each scenario is public, so a backend can run one
//! on its own, and panics with `conformance[NAME] SCENARIO: …` when the store misbehaves.
//!
//! ```no_run
//! # async fn f() {
//! use hyok_keystore::testing::{self, Fixture};
//! let vault = Fixture::from_uris(
//!     "vault",
//!     "vault-transit:my-key?addr=http://127.0.0.1:8200",
//!     Some("vault-transit:no-such-key?addr=http://127.0.0.1:8200"),
//!     Some("vault-transit:my-key?addr=http://127.0.0.1:1&retries=0"),
//! );
//! testing::run_all(&vault).await;
//! # }
//! ```
//!
//! What the scenarios require of a store (the [`KeyStore`] contract made concrete):
//! - round trip: `generate`, `wrap` and `unwrap` give back the same data key, for 16- and
//!   32-byte keys, with an empty and a non-empty encryption context;
//! - wrong context and tampering: unwrapping with another context (for keys that bind it:
//!   all but RSA), or an EDK whose ciphertext was changed or cut, fails with
//!   [`Error::UnwrapFailed`] (never a different key);
//! - foreign EDKs: an EDK of another provider or another key is `Ok(None)`;
//! - store unreachable: opening fails with [`Error::Unavailable`], or wrap fails with it and
//!   so does unwrapping one of its own EDKs, within the store's time limits;
//! - key missing: opening fails with a configuration or not-found error, or wrap fails with
//!   [`Error::NotFound`] and unwrap gives `Ok(None)` or [`Error::NotFound`];
//! - batches: `wrap_batch`/`unwrap_batch` agree with single calls, item by item;
//! - multi-keyring: a data key wrapped by several stores at once is recovered by each alone.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyok_core::{AlgorithmSuite, DataKey, EncryptedDataKey, EncryptionContext};

use crate::error::{Error, Result};
use crate::keyring::{KeyManager, Keyring, OpLabel};
use crate::store::{KeyStore, SharedKeyStore, WrapRequest};

/// Opens a key store.
pub type Opener = Box<dyn Fn() -> Result<SharedKeyStore> + Send + Sync>;

/// Longest any single key-store call may take before the scenario calls it a hang.
pub const CALL_LIMIT: Duration = Duration::from_secs(120);

/// How a backend takes part in the scenarios.
pub struct Fixture {
    name: String,
    open: Opener,
    missing: Option<Opener>,
    unreachable: Option<Opener>,
    binds_context: bool,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// A fixture named `name` (used in messages) whose working key `open` opens.
    pub fn new(
        name: impl Into<String>,
        open: impl Fn() -> Result<SharedKeyStore> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            open: Box::new(open),
            missing: None,
            unreachable: None,
            binds_context: true,
        }
    }

    /// The key does not bind the encryption context to the wrapped key (RSA-OAEP keyrings,
    /// as in the ESDK: the message's header tag binds it instead). Wrong-context checks are
    /// skipped for it; tampering checks still run.
    pub fn without_context_binding(mut self) -> Self {
        self.binds_context = false;
        self
    }

    /// How to open a key that does not exist in the same store.
    pub fn with_missing(
        mut self,
        open: impl Fn() -> Result<SharedKeyStore> + Send + Sync + 'static,
    ) -> Self {
        self.missing = Some(Box::new(open));
        self
    }

    /// How to open the same key at an address where nothing answers (or, for stores that
    /// connect when opened, such as PKCS#11, with a module that cannot be loaded). Stores
    /// without a service (local keys) have none.
    pub fn with_unreachable(
        mut self,
        open: impl Fn() -> Result<SharedKeyStore> + Send + Sync + 'static,
    ) -> Self {
        self.unreachable = Some(Box::new(open));
        self
    }

    /// A fixture from key URIs, opened with [`crate::open_key`].
    pub fn from_uris(
        name: impl Into<String>,
        uri: impl Into<String>,
        missing: Option<&str>,
        unreachable: Option<&str>,
    ) -> Self {
        let uri = uri.into();
        let mut f = Self::new(name, move || crate::open_key(&uri));
        if let Some(m) = missing {
            let m = m.to_owned();
            f = f.with_missing(move || crate::open_key(&m));
        }
        if let Some(u) = unreachable {
            let u = u.to_owned();
            f = f.with_unreachable(move || crate::open_key(&u));
        }
        f
    }

    /// The fixture's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Open the working key (panics with the reason when it cannot be opened).
    pub fn open(&self) -> SharedKeyStore {
        (self.open)().unwrap_or_else(|e| self.fail("open", format!("cannot open the key: {e}")))
    }

    fn fail(&self, scenario: &str, msg: impl std::fmt::Display) -> ! {
        panic!("conformance[{}] {scenario}: {msg}", self.name)
    }

    fn pass(&self, scenario: &str, note: &str) {
        eprintln!("conformance[{}] {scenario}: ok{note}", self.name);
    }

    /// Await `f`, or fail the scenario if it takes longer than [`CALL_LIMIT`].
    async fn bounded<T>(&self, scenario: &str, what: &str, f: impl Future<Output = T>) -> T {
        match tokio::time::timeout(CALL_LIMIT, f).await {
            Ok(v) => v,
            Err(_) => self.fail(
                scenario,
                format!("{what} hung for more than {CALL_LIMIT:?}"),
            ),
        }
    }
}

/// The contexts the scenarios bind data keys to.
pub fn context(which: u8) -> EncryptionContext {
    let mut c = EncryptionContext::new();
    match which {
        0 => {}
        1 => {
            c.insert("purpose", "hyok conformance");
            c.insert("object", "s3://bucket/dir/naïve file.txt");
        }
        _ => {
            c.insert("purpose", "hyok conformance");
            c.insert("object", "s3://bucket/dir/other file.txt");
        }
    }
    c
}

const SUITES: [AlgorithmSuite; 2] = [
    AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
    AlgorithmSuite::Aes128GcmIv12Tag16HkdfSha256,
];

fn req<'a>(suite: AlgorithmSuite, ctx: &'a EncryptionContext) -> WrapRequest<'a> {
    WrapRequest {
        suite,
        context: ctx,
    }
}

fn same(a: &DataKey, b: &DataKey) -> bool {
    a.expose() == b.expose()
}

/// Round trips: generate/unwrap and wrap/unwrap for both key lengths and contexts.
pub async fn round_trip(fx: &Fixture) {
    const S: &str = "round trip";
    let store = fx.open();
    for suite in SUITES {
        for which in [0, 1] {
            let ctx = context(which);
            let (dk, edk) = fx
                .bounded(S, "generate", store.generate(req(suite, &ctx)))
                .await
                .unwrap_or_else(|e| fx.fail(S, format!("generate: {e}")));
            if dk.len() != suite.key_len() {
                fx.fail(S, format!("generate gave a {}-byte key", dk.len()));
            }
            match fx
                .bounded(S, "unwrap", store.unwrap(&edk, req(suite, &ctx)))
                .await
            {
                Ok(Some(back)) if same(&back, &dk) => {}
                Ok(Some(_)) => fx.fail(S, "unwrap gave a different data key"),
                Ok(None) => fx.fail(S, "unwrap did not recognise its own EDK"),
                Err(e) => fx.fail(S, format!("unwrap: {e}")),
            }
            let mine = DataKey::generate(suite).unwrap_or_else(|e| fx.fail(S, e));
            let edk = fx
                .bounded(S, "wrap", store.wrap(&mine, req(suite, &ctx)))
                .await
                .unwrap_or_else(|e| fx.fail(S, format!("wrap: {e}")));
            match fx
                .bounded(S, "unwrap", store.unwrap(&edk, req(suite, &ctx)))
                .await
            {
                Ok(Some(back)) if same(&back, &mine) => {}
                other => fx.fail(S, format!("wrap then unwrap: {other:?}")),
            }
        }
    }
    fx.pass(S, "");
}

fn expect_unwrap_failed(fx: &Fixture, s: &str, what: &str, r: Result<Option<DataKey>>) {
    match r {
        Err(Error::UnwrapFailed { .. }) => {}
        Err(e) => fx.fail(
            s,
            format!(
                "{what}: expected an unwrap failure, got {} ({e})",
                e.class()
            ),
        ),
        Ok(Some(_)) => fx.fail(s, format!("{what}: a data key came back")),
        Ok(None) => fx.fail(s, format!("{what}: the store no longer recognised its EDK")),
    }
}

/// Wrong context, changed and cut EDK ciphertexts: each fails with an unwrap failure.
pub async fn wrong_context(fx: &Fixture) {
    const S: &str = "wrong context";
    let store = fx.open();
    let suite = SUITES[0];
    let (ctx, other, empty) = (context(1), context(2), context(0));
    let (_, edk) = fx
        .bounded(S, "generate", store.generate(req(suite, &ctx)))
        .await
        .unwrap_or_else(|e| fx.fail(S, format!("generate: {e}")));
    let contexts: &[(&str, &EncryptionContext)] = if fx.binds_context {
        &[("another context", &other), ("an empty context", &empty)]
    } else {
        &[]
    };
    for (name, c) in contexts {
        let r = fx
            .bounded(S, "unwrap", store.unwrap(&edk, req(suite, c)))
            .await;
        expect_unwrap_failed(fx, S, name, r);
    }
    let mut changed = edk.clone();
    let mid = changed.ciphertext.len() / 2;
    changed.ciphertext[mid] ^= 0x01;
    let r = fx
        .bounded(S, "unwrap", store.unwrap(&changed, req(suite, &ctx)))
        .await;
    expect_unwrap_failed(fx, S, "a changed ciphertext byte", r);
    let mut cut = edk.clone();
    cut.ciphertext.pop();
    let r = fx
        .bounded(S, "unwrap", store.unwrap(&cut, req(suite, &ctx)))
        .await;
    expect_unwrap_failed(fx, S, "a cut ciphertext", r);
    fx.pass(
        S,
        if fx.binds_context {
            " (also tampered and cut EDKs)"
        } else {
            " (tampered and cut EDKs; the key does not bind the context)"
        },
    );
}

/// EDKs of other providers, of other keys of the same provider, and of `others` are skipped.
pub async fn foreign_edk_skipped(fx: &Fixture, others: &[&Fixture]) {
    const S: &str = "foreign EDK skipped";
    let store = fx.open();
    let suite = SUITES[0];
    let ctx = context(1);
    let (_, own) = fx
        .bounded(S, "generate", store.generate(req(suite, &ctx)))
        .await
        .unwrap_or_else(|e| fx.fail(S, format!("generate: {e}")));
    let mut foreign = vec![
        (
            "an EDK of an unknown provider".to_owned(),
            EncryptedDataKey {
                provider_id: "hyok-conformance-foreign".into(),
                provider_info: b"nobody".to_vec(),
                ciphertext: vec![7; 48],
            },
        ),
        ("an EDK of another key of this provider".to_owned(), {
            let mut e = own.clone();
            let mut info = b"other-".to_vec();
            info.extend_from_slice(&e.provider_info);
            e.provider_info = info;
            e
        }),
    ];
    let local = Arc::new(random_raw_aes("hyok-conformance", "foreign"));
    let (_, raw_edk) = local
        .generate(req(suite, &ctx))
        .await
        .unwrap_or_else(|e| fx.fail(S, format!("raw key: {e}")));
    foreign.push(("an EDK of a local raw AES key".into(), raw_edk));
    for o in others {
        let other = o.open();
        let (_, e) = fx
            .bounded(S, "generate", other.generate(req(suite, &ctx)))
            .await
            .unwrap_or_else(|e| fx.fail(S, format!("{}: generate: {e}", o.name)));
        foreign.push((format!("an EDK of {}", o.name), e));
    }
    for (what, edk) in &foreign {
        match fx
            .bounded(S, "unwrap", store.unwrap(edk, req(suite, &ctx)))
            .await
        {
            Ok(None) => {}
            other => fx.fail(S, format!("{what}: expected Ok(None), got {other:?}")),
        }
    }
    fx.pass(S, &format!(" ({} kinds)", foreign.len()));
}

/// The store at an address where nothing answers: wrap and unwrap fail as unavailable.
pub async fn unreachable(fx: &Fixture) {
    const S: &str = "store unreachable";
    let Some(open) = &fx.unreachable else {
        fx.pass(S, " (not applicable: no service)");
        return;
    };
    let suite = SUITES[0];
    let ctx = context(1);
    let (_, edk) = fx
        .bounded(S, "generate", fx.open().generate(req(suite, &ctx)))
        .await
        .unwrap_or_else(|e| fx.fail(S, format!("generate with the working store: {e}")));
    let down = match open() {
        Ok(s) => s,
        Err(e) if e.class() == crate::ErrorClass::Unavailable => {
            fx.pass(S, " (refused when opened)");
            return;
        }
        Err(e) => fx.fail(S, format!("open: expected success or unavailable, got {e}")),
    };
    let dk = DataKey::generate(suite).unwrap_or_else(|e| fx.fail(S, e));
    match fx
        .bounded(S, "wrap", down.wrap(&dk, req(suite, &ctx)))
        .await
    {
        Err(e) if e.class() == crate::ErrorClass::Unavailable => {}
        other => fx.fail(S, format!("wrap: expected unavailable, got {other:?}")),
    }
    match fx
        .bounded(S, "unwrap", down.unwrap(&edk, req(suite, &ctx)))
        .await
    {
        Err(e) if e.class() == crate::ErrorClass::Unavailable => {}
        other => fx.fail(S, format!("unwrap: expected unavailable, got {other:?}")),
    }
    fx.pass(S, "");
}

/// A key that does not exist: refused at open, or not found on wrap.
pub async fn key_missing(fx: &Fixture) {
    const S: &str = "key missing";
    let Some(open) = &fx.missing else {
        fx.pass(S, " (not applicable)");
        return;
    };
    let store = match open() {
        Ok(s) => s,
        Err(e) if matches!(e.class().as_str(), "config" | "not-found") => {
            fx.pass(S, " (refused when opened)");
            return;
        }
        Err(e) => fx.fail(S, format!("open: expected config or not-found, got {e}")),
    };
    let suite = SUITES[0];
    let ctx = context(1);
    let dk = DataKey::generate(suite).unwrap_or_else(|e| fx.fail(S, e));
    match fx
        .bounded(S, "wrap", store.wrap(&dk, req(suite, &ctx)))
        .await
    {
        Err(Error::NotFound { .. }) => {}
        other => fx.fail(S, format!("wrap: expected not-found, got {other:?}")),
    }
    let (_, edk) = fx
        .bounded(S, "generate", fx.open().generate(req(suite, &ctx)))
        .await
        .unwrap_or_else(|e| fx.fail(S, format!("generate with the working key: {e}")));
    match fx
        .bounded(S, "unwrap", store.unwrap(&edk, req(suite, &ctx)))
        .await
    {
        Ok(None) | Err(Error::NotFound { .. }) => {}
        other => fx.fail(
            S,
            format!("unwrap: expected None or not-found, got {other:?}"),
        ),
    }
    fx.pass(S, "");
}

/// `wrap_batch`/`unwrap_batch` agree with single calls item by item, including a wrong
/// context and a foreign EDK in the middle of a batch.
pub async fn batch(fx: &Fixture) {
    const S: &str = "batch";
    let store = fx.open();
    let suite = SUITES[0];
    let contexts: Vec<EncryptionContext> = (0..5u8)
        .map(|i| {
            let mut c = context(1);
            c.insert("item", i.to_string());
            c
        })
        .collect();
    let keys: Vec<DataKey> = contexts
        .iter()
        .map(|_| DataKey::generate(suite).unwrap_or_else(|e| fx.fail(S, e)))
        .collect();
    let items: Vec<(&DataKey, WrapRequest<'_>)> = keys
        .iter()
        .zip(&contexts)
        .map(|(k, c)| (k, req(suite, c)))
        .collect();
    let edks: Vec<EncryptedDataKey> = fx
        .bounded(S, "wrap_batch", store.wrap_batch(&items))
        .await
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|e| fx.fail(S, format!("wrap_batch item {i}: {e}"))))
        .collect();
    if edks.len() != keys.len() {
        fx.fail(S, "wrap_batch returned the wrong number of results");
    }
    let wrong = context(2);
    let foreign = EncryptedDataKey {
        provider_id: "hyok-conformance-foreign".into(),
        provider_info: b"nobody".to_vec(),
        ciphertext: vec![7; 48],
    };
    let mut unwrap_items: Vec<(&EncryptedDataKey, WrapRequest<'_>)> = edks
        .iter()
        .zip(&contexts)
        .map(|(e, c)| (e, req(suite, c)))
        .collect();
    if fx.binds_context {
        unwrap_items[2].1 = req(suite, &wrong);
    }
    unwrap_items.insert(3, (&foreign, req(suite, &contexts[0])));
    let results = fx
        .bounded(S, "unwrap_batch", store.unwrap_batch(&unwrap_items))
        .await;
    if results.len() != unwrap_items.len() {
        fx.fail(S, "unwrap_batch returned the wrong number of results");
    }
    for (i, r) in results.into_iter().enumerate() {
        match (i, r) {
            (2, r) if fx.binds_context => {
                expect_unwrap_failed(fx, S, "batch item with a wrong context", r)
            }
            (3, Ok(None)) => {}
            (3, other) => fx.fail(
                S,
                format!("foreign batch item: expected None, got {other:?}"),
            ),
            (i, Ok(Some(dk))) => {
                let k = if i < 3 { i } else { i - 1 };
                if !same(&dk, &keys[k]) {
                    fx.fail(S, format!("batch item {i}: another data key came back"));
                }
            }
            (i, other) => fx.fail(S, format!("batch item {i}: {other:?}")),
        }
    }
    fx.pass(S, "");
}

/// A data key wrapped by all `fixtures` at once (one keyring, first one generates) is
/// recovered by each store alone and by the keyring in reverse order; a wrong context still
/// names the failure.
pub async fn multi_keyring(fixtures: &[&Fixture]) {
    let names: Vec<&str> = fixtures.iter().map(|f| f.name()).collect();
    let who = names.join("+");
    let who = who.as_str();
    if fixtures.len() < 2 {
        multi_fail(who, "needs at least two stores");
    }
    let stores: Vec<SharedKeyStore> = fixtures.iter().map(|f| f.open()).collect();
    let suite = SUITES[0];
    let ctx = context(1);
    let label = OpLabel::default();
    let keyring = |keys: Vec<SharedKeyStore>| {
        KeyManager::new(Keyring::new(keys).unwrap_or_else(|e| multi_fail(who, e)))
    };
    let manager = keyring(stores.clone());
    let (dk, edks) = within(who, manager.encryption_materials(suite, &ctx, 1024, &label))
        .await
        .unwrap_or_else(|e| multi_fail(who, format!("encrypting: {e}")));
    if edks.len() != stores.len() {
        multi_fail(
            who,
            format!("{} EDKs for {} stores", edks.len(), stores.len()),
        );
    }
    for (f, s) in fixtures.iter().zip(&stores) {
        let alone = keyring(vec![s.clone()]);
        let back = within(who, alone.decrypt_data_key(suite, &edks, &ctx, &label))
            .await
            .unwrap_or_else(|e| multi_fail(who, format!("{} alone: {e}", f.name())));
        if !same(&back, &dk) {
            multi_fail(
                who,
                format!("{} alone recovered another data key", f.name()),
            );
        }
        if !f.binds_context {
            continue;
        }
        match within(
            who,
            alone.decrypt_data_key(suite, &edks, &context(2), &label),
        )
        .await
        {
            Err(Error::UnwrapFailed { .. }) => {}
            other => multi_fail(
                who,
                format!(
                    "{} alone with a wrong context: expected an unwrap failure, got {other:?}",
                    f.name()
                ),
            ),
        }
    }
    let mut reversed = stores.clone();
    reversed.reverse();
    let back = within(
        who,
        keyring(reversed).decrypt_data_key(suite, &edks, &ctx, &label),
    )
    .await
    .unwrap_or_else(|e| multi_fail(who, format!("reversed keyring: {e}")));
    if !same(&back, &dk) {
        multi_fail(who, "the reversed keyring recovered another data key");
    }
    eprintln!(
        "conformance[{who}] multi-keyring: ok (each of {} stores alone)",
        stores.len()
    );
}

fn multi_fail(who: &str, msg: impl std::fmt::Display) -> ! {
    panic!("conformance[{who}] multi-keyring: {msg}")
}

async fn within<T>(who: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(CALL_LIMIT, f).await {
        Ok(v) => v,
        Err(_) => multi_fail(
            who,
            format!("a key-store call hung for more than {CALL_LIMIT:?}"),
        ),
    }
}

/// Every single-store scenario: round trip, wrong context (and tampering), foreign EDKs
/// skipped, batches, store unreachable, key missing.
pub async fn run_all(fx: &Fixture) {
    round_trip(fx).await;
    wrong_context(fx).await;
    foreign_edk_skipped(fx, &[]).await;
    batch(fx).await;
    unreachable(fx).await;
    key_missing(fx).await;
}

/// A raw AES key with random bytes (a store that is always there).
pub fn random_raw_aes(namespace: &str, name: &str) -> crate::raw::RawAesKey {
    let mut k = zeroize::Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(&mut k[..]).expect("the system RNG works");
    crate::raw::RawAesKey::new(namespace, name, &k[..]).expect("32 bytes is a valid AES key")
}
