//! The data-key cache in front of key stores: how many key-store calls N messages cost.
//! This is the counting test behind docs/BENCHMARKS.md (no timing assertions).

use std::sync::Arc;
use std::time::Duration;

use hyok_keystore::admin::KeyKind;
use hyok_keystore::cache::{CacheLimits, MemoryCache};
use hyok_keystore::observe::KeyOp;
use hyok_keystore::pkcs11::Pkcs11Key;
use hyok_keystore::raw::RawAesKey;
use hyok_keystore::{KeyManager, Keyring};
use serial_test::serial;

use crate::common::{
    self, context, create, decrypt, encrypt, hsm, runtime, unique, Cleanup, Recorder,
};

const OBJECTS: usize = 1000;
const MAX_MESSAGES: u64 = 100;
const SIZE: usize = 4096;

fn limits() -> CacheLimits {
    CacheLimits {
        max_age: Duration::from_secs(600),
        max_messages: MAX_MESSAGES,
        max_bytes: 1 << 30,
        max_entries: 16,
    }
}

/// Encrypt and decrypt OBJECTS objects under one context with the cache on; return the
/// cache and the audit record.
fn run(key: Arc<dyn hyok_keystore::KeyStore>) -> (Arc<MemoryCache>, Arc<Recorder>) {
    let cache = Arc::new(MemoryCache::new(limits()).unwrap());
    let audit = Arc::new(Recorder::default());
    let m = KeyManager::new(Keyring::new(vec![key]).unwrap())
        .with_cache(cache.clone())
        .with_audit(audit.clone());
    let rt = runtime();
    let ctx = context(&[("bucket", "b"), ("tenant", "t")]);
    let mut msgs = Vec::with_capacity(OBJECTS);
    for i in 0..OBJECTS {
        let plain = common::pseudo(SIZE, i as u64);
        let msg = rt.block_on(encrypt(&m, &ctx, &plain)).unwrap();
        msgs.push((plain, msg));
    }
    for (plain, msg) in &msgs {
        assert_eq!(&rt.block_on(decrypt(&m, &ctx, msg)).unwrap(), plain);
    }
    (cache, audit)
}

fn bound() -> u64 {
    OBJECTS as u64 / MAX_MESSAGES + 1
}

#[test]
#[serial(hsm)]
fn cached_hsm_calls_stay_within_objects_over_max_messages() {
    let Some(hsm) = hsm("cache::cached_hsm_calls_stay_within_objects_over_max_messages") else {
        return;
    };
    for kind in [KeyKind::Aes256, KeyKind::Rsa(3072)] {
        let label = unique("cached");
        let uri = create(&hsm.uri(&label, ""), kind);
        let _c = Cleanup(uri.clone());
        let key = Pkcs11Key::from_uri_str(&uri).unwrap();
        let before = key.hsm_calls();
        let (cache, audit) = run(common::shared(key.clone()));
        let calls = key.hsm_calls() - before;
        let s = cache.stats();
        eprintln!("{kind:?}: {OBJECTS} objects encrypted and decrypted, {calls} HSM calls, {s:?}");
        // Encrypt: one generate+wrap per MAX_MESSAGES messages; decrypt: one unwrap per
        // distinct data key. Each direction stays within objects / max-messages + 1.
        assert!(
            calls <= 2 * bound(),
            "{kind:?}: {calls} HSM calls for {OBJECTS} objects, more than 2 × {}",
            bound()
        );
        assert!(s.encrypt_misses <= bound(), "{s:?}");
        assert!(s.decrypt_misses <= bound(), "{s:?}");
        // Every cache hit still reached the audit sink.
        assert_eq!(audit.count(KeyOp::CacheHitEncrypt) as u64, s.encrypt_hits);
        assert_eq!(audit.count(KeyOp::CacheHitDecrypt) as u64, s.decrypt_hits);
        assert_eq!(
            audit.count(KeyOp::CacheHitEncrypt) + audit.count(KeyOp::Generate),
            OBJECTS
        );
        assert_eq!(
            audit.count(KeyOp::CacheHitDecrypt) + audit.count(KeyOp::Unwrap),
            OBJECTS
        );
    }
}

#[test]
fn cache_works_in_front_of_a_raw_key_too() {
    let key = RawAesKey::new("ns", "k", &[7u8; 32]).unwrap();
    let (cache, audit) = run(common::shared(key));
    let s = cache.stats();
    assert_eq!(s.encrypt_misses, bound() - 1, "{s:?}");
    assert_eq!(s.decrypt_misses, bound() - 1, "{s:?}");
    assert_eq!(audit.count(KeyOp::Generate) as u64, bound() - 1);
    assert_eq!(audit.count(KeyOp::Unwrap) as u64, bound() - 1);
}
