//! PKCS#11 benchmark (docs/BENCHMARKS.md, section "PKCS#11 key store and data-key cache").
//!
//! ```sh
//! eval "$(scripts/services/softhsm.sh)"
//! cargo run --release -p hyok --example pkcs11_bench [OBJECTS] [OPS]
//! ```
//!
//! 1. Uncached key-store operations per second against the token, at 1 and 2 threads:
//!    AES-256 wrap (C_Encrypt, CKM_AES_GCM) and unwrap (C_Decrypt), RSA-3072 unwrap
//!    (C_Decrypt, CKM_RSA_PKCS_OAEP) and RSA-3072 wrap (local public-key OAEP: no token call).
//! 2. OBJECTS (default 10,000) encrypts then decrypts of 4 KiB objects through `hyok::Client`
//!    with an AES-256 and an RSA-3072 key in the token, without and with the data-key cache
//!    (default limits: 1,000 messages per data key), counting the token's crypto calls.
//!
//! Creates its keys in the token under unique labels and destroys them at the end.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use hyok::{Client, EncryptionContext, OpLabel};
use hyok_keystore::admin::{KeyAdmin, KeyKind};
use hyok_keystore::cache::{CacheLimits, MemoryCache};
use hyok_keystore::pkcs11::{Pkcs11Admin, Pkcs11Key};
use hyok_keystore::{KeyManager, KeyStore, KeyUri, Keyring, WrapRequest};

const SIZE: usize = 4096;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!("{name} is not set: run `eval \"$(scripts/services/softhsm.sh)\"` first");
        std::process::exit(2)
    })
}

fn current() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

thread_local! {
    /// One runtime per benchmark thread; key-store calls run inline on it.
    static RT: tokio::runtime::Runtime = current();
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RT.with(|rt| rt.block_on(f))
}

/// Runs `per_thread` operations on each of `threads` threads; returns operations per second.
fn ops_per_sec(threads: usize, per_thread: usize, op: impl Fn() + Sync) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..per_thread {
                    op();
                }
            });
        }
    });
    (threads * per_thread) as f64 / start.elapsed().as_secs_f64()
}

struct Row {
    what: String,
    secs: f64,
    calls: u64,
}

fn run_objects(key: &Pkcs11Key, objects: usize, cache: bool) -> (Row, Row) {
    let mut manager = KeyManager::new(Keyring::new(vec![Arc::new(key.clone())]).expect("keyring"));
    if cache {
        manager = manager.with_cache(Arc::new(
            MemoryCache::new(CacheLimits::default()).expect("limits"),
        ));
    }
    let client = Client::new(manager);
    let rt = current();
    let ctx: EncryptionContext = [("bucket", "bench"), ("tenant", "acme")]
        .into_iter()
        .collect();
    let plain = vec![0x5au8; SIZE];
    let tag = if cache { "cache on" } else { "no cache" };

    let calls0 = key.hsm_calls();
    let start = Instant::now();
    let mut msgs = Vec::with_capacity(objects);
    for _ in 0..objects {
        let materials = rt
            .block_on(client.encryption_materials(
                &ctx,
                &BTreeSet::new(),
                SIZE as u64,
                &OpLabel::default(),
            ))
            .expect("materials");
        let mut enc = client
            .encryptor(Vec::with_capacity(SIZE + 512), materials)
            .expect("enc");
        enc.write_all(&plain).expect("write");
        msgs.push(enc.finish().expect("finish").0);
    }
    let enc_row = Row {
        what: format!("{} encrypt, {tag}", key.kind()),
        secs: start.elapsed().as_secs_f64(),
        calls: key.hsm_calls() - calls0,
    };

    let calls0 = key.hsm_calls();
    let start = Instant::now();
    for m in &msgs {
        let mut input = &m[..];
        let parsed = client.read_header(&mut input).expect("header");
        let verified = rt
            .block_on(client.open(parsed, &ctx, &OpLabel::default()))
            .expect("open");
        let mut out = Vec::with_capacity(SIZE);
        client
            .decryptor(verified, input)
            .read_to_end(&mut out)
            .expect("decrypt");
        assert_eq!(out.len(), SIZE);
    }
    let dec_row = Row {
        what: format!("{} decrypt, {tag}", key.kind()),
        secs: start.elapsed().as_secs_f64(),
        calls: key.hsm_calls() - calls0,
    };
    (enc_row, dec_row)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let objects: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let ops: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let token = env("HYOK_TEST_PKCS11_TOKEN");
    env("HYOK_PKCS11_MODULE");
    env("HYOK_PKCS11_PIN");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let suffix = format!("{}-{nanos:x}", std::process::id());
    let aes_uri = format!("pkcs11:token={token};object=bench-aes-{suffix}");
    let rsa_uri = format!("pkcs11:token={token};object=bench-rsa-{suffix}?oaep-hash=sha1");
    let rt = current();
    for (uri, kind) in [(&aes_uri, KeyKind::Aes256), (&rsa_uri, KeyKind::Rsa(3072))] {
        rt.block_on(Pkcs11Admin.create(&KeyUri::parse(uri).expect("uri"), kind))
            .expect("create key");
    }
    let aes = Pkcs11Key::from_uri_str(&aes_uri).expect("open AES key");
    let rsa = Pkcs11Key::from_uri_str(&rsa_uri).expect("open RSA key");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("pkcs11_bench: {objects} objects of {SIZE} B, {ops} ops per thread, {cores} cores");

    // 1. Uncached key-store operations.
    let ctx: EncryptionContext = [("bucket", "bench")].into_iter().collect();
    let suite = hyok::AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
    let req = WrapRequest {
        suite,
        context: &ctx,
    };
    let dk = hyok_core::DataKey::generate(suite).expect("data key");
    let aes_edk = rt.block_on(aes.wrap(&dk, req)).expect("wrap");
    let rsa_edk = rt.block_on(rsa.wrap(&dk, req)).expect("wrap");
    println!("\n| operation (no cache) | 1 thread ops/s | 2 threads ops/s | 2 vs 1 |");
    println!("|---|---:|---:|---:|");
    type Op<'a> = Box<dyn Fn() + Sync + 'a>;
    let cases: Vec<(&str, usize, Op<'_>)> = vec![
        (
            "AES-256 wrap (C_Encrypt AES-GCM)",
            ops,
            Box::new(|| {
                block_on(aes.wrap(&dk, req)).expect("wrap");
            }),
        ),
        (
            "AES-256 unwrap (C_Decrypt AES-GCM)",
            ops,
            Box::new(|| {
                assert!(block_on(aes.unwrap(&aes_edk, req))
                    .expect("unwrap")
                    .is_some());
            }),
        ),
        (
            "RSA-3072 wrap (local OAEP, no token call)",
            ops,
            Box::new(|| {
                block_on(rsa.wrap(&dk, req)).expect("wrap");
            }),
        ),
        (
            "RSA-3072 unwrap (C_Decrypt RSA-OAEP)",
            (ops / 8).max(50),
            Box::new(|| {
                assert!(block_on(rsa.unwrap(&rsa_edk, req))
                    .expect("unwrap")
                    .is_some());
            }),
        ),
    ];
    for (name, n, op) in &cases {
        let one = ops_per_sec(1, *n, op);
        let two = ops_per_sec(2, *n, op);
        println!("| {name} | {one:.0} | {two:.0} | {:.2}× |", two / one);
    }

    // 2. Objects through the client, without and with the cache.
    println!("\n| {objects} × 4 KiB, 1 thread | seconds | objects/s | token calls | cached vs uncached |");
    println!("|---|---:|---:|---:|---:|");
    for key in [&aes, &rsa] {
        let (e0, d0) = run_objects(key, objects, false);
        let (e1, d1) = run_objects(key, objects, true);
        for (plain, cached) in [(e0, e1), (d0, d1)] {
            for (r, speedup) in [(&plain, None), (&cached, Some(plain.secs / cached.secs))] {
                println!(
                    "| {} | {:.2} | {:.0} | {} | {} |",
                    r.what,
                    r.secs,
                    objects as f64 / r.secs,
                    r.calls,
                    speedup.map_or("".into(), |s| format!("{s:.1}×"))
                );
            }
        }
    }

    for uri in [&aes_uri, &rsa_uri] {
        let _ = rt.block_on(Pkcs11Admin.destroy(&KeyUri::parse(uri).expect("uri")));
    }
}
