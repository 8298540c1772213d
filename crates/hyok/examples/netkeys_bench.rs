#![allow(clippy::needless_range_loop)]
//! Network key-store benchmark (docs/BENCHMARKS.md, section "Vault/OpenBao Transit and KMIP").
//!
//! ```sh
//! eval "$(scripts/services/openbao.sh)"; eval "$(scripts/services/kmip.sh)"
//! cargo run --release -p hyok --example netkeys_bench [OPS] [OBJECTS]
//! ```
//!
//! For each store whose service settings are present (OpenBao: `VAULT_ADDR`, `VAULT_TOKEN`;
//! PyKMIP: `HYOK_KMIP_ADDR`, `HYOK_KMIP_CA`, `HYOK_KMIP_CERT`, `HYOK_KMIP_KEY`):
//! 1. wrap and unwrap of a 32-byte data key per second: one call at a time, 4 calls in flight,
//!    and batched (`wrap_batch`/`unwrap_batch`, 64 keys per call: Transit `batch_input`, one
//!    KMIP message with 64 batch items); OPS (default 400) keys each;
//! 2. OBJECTS (default 300) objects of 4 KiB encrypted, then decrypted, one message at a time
//!    through `hyok::Client`, against a local raw AES key as the baseline without a network:
//!    without the data-key cache (one wrap and one unwrap per object) and with it (defaults:
//!    1,000 messages per data key, 5 minutes), counting the key-store calls.
//!
//! It creates one key per store under a unique name (the KMIP key is destroyed at the end;
//! the OpenBao dev server forgets its keys on restart).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use hyok::{AlgorithmSuite, Client, EncryptionContext, OpLabel};
use hyok_core::{DataKey, EncryptedDataKey};
use hyok_keystore::admin::{open_admin, KeyKind};
use hyok_keystore::cache::{CacheLimits, MemoryCache};
use hyok_keystore::{KeyInfo, KeyManager, KeyStore, Keyring, SharedKeyStore, WrapRequest};

const SIZE: usize = 4096;
const BATCH: usize = 64;
const IN_FLIGHT: usize = 4;
const SUITE: AlgorithmSuite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn ctx(i: usize) -> EncryptionContext {
    [("bucket", "bench".to_owned()), ("object", format!("o-{i}"))]
        .into_iter()
        .collect()
}

struct Rates {
    single_wrap: f64,
    single_unwrap: f64,
    parallel_wrap: f64,
    parallel_unwrap: f64,
    batch_wrap: f64,
    batch_unwrap: f64,
}

async fn measure(store: &SharedKeyStore, ops: usize) -> Rates {
    let contexts: Vec<EncryptionContext> = (0..ops).map(ctx).collect();
    let keys: Vec<DataKey> = (0..ops)
        .map(|_| DataKey::generate(SUITE).expect("data key"))
        .collect();
    let req = |i: usize| WrapRequest {
        suite: SUITE,
        context: &contexts[i],
    };
    // Warm up: connections, the key lookup, version negotiation.
    let warm = store.wrap(&keys[0], req(0)).await.expect("wrap");
    store.unwrap(&warm, req(0)).await.expect("unwrap");

    let t = Instant::now();
    let mut edks = Vec::with_capacity(ops);
    for (i, key) in keys.iter().enumerate() {
        edks.push(store.wrap(key, req(i)).await.expect("wrap"));
    }
    let single_wrap = ops as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for (i, edk) in edks.iter().enumerate() {
        assert!(store.unwrap(edk, req(i)).await.expect("unwrap").is_some());
    }
    let single_unwrap = ops as f64 / t.elapsed().as_secs_f64();

    let contexts = Arc::new(contexts);
    let edks: Arc<Vec<EncryptedDataKey>> = Arc::new(edks);
    let per_task = ops / IN_FLIGHT;
    let parallel = |unwrap: bool| {
        let mut set = tokio::task::JoinSet::new();
        for t in 0..IN_FLIGHT {
            let (store, contexts, edks) = (store.clone(), contexts.clone(), edks.clone());
            set.spawn(async move {
                for i in t * per_task..(t + 1) * per_task {
                    let req = WrapRequest {
                        suite: SUITE,
                        context: &contexts[i],
                    };
                    if unwrap {
                        store.unwrap(&edks[i], req).await.expect("unwrap");
                    } else {
                        let dk = DataKey::generate(SUITE).expect("data key");
                        store.wrap(&dk, req).await.expect("wrap");
                    }
                }
            });
        }
        set
    };
    let t = Instant::now();
    parallel(false).join_all().await;
    let parallel_wrap = (per_task * IN_FLIGHT) as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    parallel(true).join_all().await;
    let parallel_unwrap = (per_task * IN_FLIGHT) as f64 / t.elapsed().as_secs_f64();

    let req = |i: usize| WrapRequest {
        suite: SUITE,
        context: &contexts[i],
    };
    let t = Instant::now();
    let mut batched = Vec::with_capacity(ops);
    for start in (0..ops).step_by(BATCH) {
        let items: Vec<_> = (start..(start + BATCH).min(ops))
            .map(|i| (&keys[i], req(i)))
            .collect();
        for r in store.wrap_batch(&items).await {
            batched.push(r.expect("wrap_batch"));
        }
    }
    let batch_wrap = ops as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for start in (0..ops).step_by(BATCH) {
        let items: Vec<_> = (start..(start + BATCH).min(ops))
            .map(|i| (&batched[i], req(i)))
            .collect();
        for (k, r) in store.unwrap_batch(&items).await.into_iter().enumerate() {
            let dk = r.expect("unwrap_batch").expect("ours");
            assert_eq!(dk.expose(), keys[start + k].expose());
        }
    }
    let batch_unwrap = ops as f64 / t.elapsed().as_secs_f64();
    Rates {
        single_wrap,
        single_unwrap,
        parallel_wrap,
        parallel_unwrap,
        batch_wrap,
        batch_unwrap,
    }
}

/// Counts the calls that reach the key store (a batch counts once).
#[derive(Debug)]
struct Counting {
    inner: SharedKeyStore,
    calls: AtomicU64,
}

#[async_trait]
impl KeyStore for Counting {
    fn info(&self) -> &KeyInfo {
        self.inner.info()
    }

    fn can_wrap(&self) -> bool {
        self.inner.can_wrap()
    }

    async fn generate(
        &self,
        req: WrapRequest<'_>,
    ) -> hyok_keystore::Result<(DataKey, EncryptedDataKey)> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.generate(req).await
    }

    async fn wrap(
        &self,
        data_key: &DataKey,
        req: WrapRequest<'_>,
    ) -> hyok_keystore::Result<EncryptedDataKey> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.wrap(data_key, req).await
    }

    async fn unwrap(
        &self,
        edk: &EncryptedDataKey,
        req: WrapRequest<'_>,
    ) -> hyok_keystore::Result<Option<DataKey>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.unwrap(edk, req).await
    }

    async fn wrap_batch(
        &self,
        items: &[(&DataKey, WrapRequest<'_>)],
    ) -> Vec<hyok_keystore::Result<EncryptedDataKey>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.wrap_batch(items).await
    }

    async fn unwrap_batch(
        &self,
        items: &[(&EncryptedDataKey, WrapRequest<'_>)],
    ) -> Vec<hyok_keystore::Result<Option<DataKey>>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.unwrap_batch(items).await
    }
}

struct ObjectRates {
    enc: f64,
    dec: f64,
    enc_calls: u64,
    dec_calls: u64,
}

/// Encrypt then decrypt `objects` 4 KiB messages one at a time, with or without the cache.
async fn objects_per_sec(store: SharedKeyStore, objects: usize, cache: bool) -> ObjectRates {
    let counting = Arc::new(Counting {
        inner: store,
        calls: AtomicU64::new(0),
    });
    let mut manager = KeyManager::new(Keyring::new(vec![counting.clone()]).expect("keyring"));
    if cache {
        manager = manager.with_cache(Arc::new(
            MemoryCache::new(CacheLimits::default()).expect("cache limits"),
        ));
    }
    let client = Client::new(manager);
    let plain = vec![0x5au8; SIZE];
    let c = ctx(0);
    let t = Instant::now();
    let mut msgs = Vec::with_capacity(objects);
    for _ in 0..objects {
        let m = client
            .encryption_materials(&c, &BTreeSet::new(), SIZE as u64, &OpLabel::default())
            .await
            .expect("materials");
        let mut enc = client
            .encryptor(Vec::with_capacity(SIZE + 512), m)
            .expect("encryptor");
        enc.write_all(&plain).expect("write");
        msgs.push(enc.finish().expect("finish").0);
    }
    let enc = objects as f64 / t.elapsed().as_secs_f64();
    let enc_calls = counting.calls.swap(0, Ordering::Relaxed);
    let t = Instant::now();
    for m in &msgs {
        let mut input = &m[..];
        let parsed = client.read_header(&mut input).expect("header");
        let verified = client
            .open(parsed, &c, &OpLabel::default())
            .await
            .expect("open");
        let mut out = Vec::with_capacity(SIZE);
        client
            .decryptor(verified, input)
            .read_to_end(&mut out)
            .expect("decrypt");
        assert_eq!(out.len(), SIZE);
    }
    ObjectRates {
        enc,
        dec: objects as f64 / t.elapsed().as_secs_f64(),
        enc_calls,
        dec_calls: counting.calls.load(Ordering::Relaxed),
    }
}

async fn create(uri: &str) -> String {
    let (admin, parsed) = open_admin(uri).expect("admin");
    admin
        .create(&parsed, KeyKind::Aes256)
        .await
        .expect("create key")
        .uri
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let ops: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(400);
    let objects: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let ops = ops.max(IN_FLIGHT * 2);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let suffix = format!("{}-{nanos:x}", std::process::id());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "netkeys_bench: {ops} data keys per measurement, {objects} objects of {SIZE} B, {cores} cores"
    );

    let mut stores: Vec<(&str, SharedKeyStore, Option<String>)> = Vec::new();
    if let Some(addr) = var("VAULT_ADDR").filter(|_| var("VAULT_TOKEN").is_some()) {
        let uri = create(&format!("vault-transit:bench-{suffix}?addr={addr}")).await;
        stores.push((
            "OpenBao Transit",
            hyok_keystore::open_key(&uri).expect("open"),
            None,
        ));
    } else {
        eprintln!("VAULT_ADDR/VAULT_TOKEN not set: skipping OpenBao");
    }
    if let Some(addr) = var("HYOK_KMIP_ADDR") {
        let uri = create(&format!("kmip://{addr}/bench-{suffix}")).await;
        stores.push((
            "PyKMIP",
            hyok_keystore::open_key(&uri).expect("open"),
            Some(uri),
        ));
    } else {
        eprintln!("HYOK_KMIP_ADDR not set: skipping PyKMIP");
    }

    println!("\n| store | op | 1 at a time /s | {IN_FLIGHT} in flight /s | batched ({BATCH}) /s | in flight vs 1 | batched vs 1 |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (name, store, _) in &stores {
        let r = measure(store, ops).await;
        for (op, single, par, batch) in [
            ("wrap", r.single_wrap, r.parallel_wrap, r.batch_wrap),
            ("unwrap", r.single_unwrap, r.parallel_unwrap, r.batch_unwrap),
        ] {
            println!(
                "| {name} | {op} | {single:.0} | {par:.0} | {batch:.0} | {:.1}× | {:.1}× |",
                par / single,
                batch / single
            );
        }
    }

    let mut kek = [0u8; 32];
    aws_lc_rs::rand::fill(&mut kek).expect("random key");
    let raw: SharedKeyStore =
        Arc::new(hyok_keystore::raw::RawAesKey::new("bench", "local", &kek).expect("raw key"));
    let base = objects_per_sec(raw, objects, false).await;
    println!("\n| 4 KiB objects, one at a time | cache | encrypt /s | decrypt /s | encrypt vs local key | decrypt vs local key | key-store calls (enc + dec) |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    println!(
        "| local raw AES key (no network) | off | {:.0} | {:.0} | 1.00 | 1.00 | {} + {} |",
        base.enc, base.dec, base.enc_calls, base.dec_calls
    );
    for (name, store, _) in &stores {
        for cache in [false, true] {
            let r = objects_per_sec(store.clone(), objects, cache).await;
            println!(
                "| {name} | {} | {:.0} | {:.0} | {:.3} | {:.3} | {} + {} |",
                if cache { "on" } else { "off" },
                r.enc,
                r.dec,
                r.enc / base.enc,
                r.dec / base.dec,
                r.enc_calls,
                r.dec_calls
            );
        }
    }

    for (_, _, cleanup) in &stores {
        if let Some(uri) = cleanup {
            if let Ok((admin, parsed)) = open_admin(uri) {
                let _ = admin.destroy(&parsed).await;
            }
        }
    }
}
