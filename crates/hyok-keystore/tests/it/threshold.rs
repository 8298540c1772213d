//! k-of-n custody against real key stores: SoftHSM, OpenBao and a raw key as three groups.

use std::sync::Arc;
use std::time::Duration;

use hyok_keystore::admin::KeyKind;
use hyok_keystore::cache::{CacheLimits, MemoryCache};
use hyok_keystore::observe::KeyOp;
use hyok_keystore::testing::random_raw_aes;
use hyok_keystore::threshold::{ThresholdKey, PROVIDER_ID};
use hyok_keystore::{open_key, Error, KeyManager, Keyring, SharedKeyStore};

use crate::common::{self, context, decrypt, encrypt, hsm, pseudo, runtime, vault, Recorder};

fn group(keys: Vec<SharedKeyStore>) -> KeyManager {
    KeyManager::new(Keyring::new(keys).unwrap())
}

fn writer(k: usize, keys: &[SharedKeyStore]) -> KeyManager {
    let groups = keys.iter().map(|k| group(vec![k.clone()])).collect();
    let t = ThresholdKey::new("custody", k, groups).unwrap();
    KeyManager::new(Keyring::new(vec![Arc::new(t)]).unwrap())
}

fn reader(keys: &[SharedKeyStore]) -> KeyManager {
    let groups = keys.iter().map(|k| group(vec![k.clone()])).collect();
    KeyManager::new(Keyring::new(vec![Arc::new(ThresholdKey::opener("custody", groups))]).unwrap())
}

/// Every pair of three groups decrypts; every single key fails naming have/need; a tampered
/// share fails cleanly.
fn two_of_three(keys: [SharedKeyStore; 3]) {
    let rt = runtime();
    let ctx = context(&[("tenant", "gov")]);
    rt.block_on(async {
        let pt = pseudo(100_000, 7);
        let msg = encrypt(&writer(2, &keys), &ctx, &pt).await.unwrap();
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            let r = reader(&[keys[a].clone(), keys[b].clone()]);
            assert_eq!(decrypt(&r, &ctx, &msg).await.unwrap(), pt, "pair {a},{b}");
        }
        for (i, key) in keys.iter().enumerate() {
            let err = decrypt(&reader(std::slice::from_ref(key)), &ctx, &msg)
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InsufficientShares {
                        have: 1,
                        need: 2,
                        ..
                    }
                ),
                "{err}"
            );
            assert!(
                err.to_string().contains("have 1 of the 2 shares"),
                "key {i}: {err}"
            );
        }
        // Flip one byte inside the split EDK (the header is authenticated, so this is what a
        // forger would have to get past first): the reader fails with an error, never a panic.
        let mut input = &msg[..];
        let parsed =
            hyok_core::ParsedHeader::read(&mut input, hyok_core::HeaderLimits::default()).unwrap();
        let edk = &parsed.header.edks[0];
        assert_eq!(edk.provider_id, PROVIDER_ID);
        let at = msg
            .windows(edk.ciphertext.len())
            .position(|w| w == &edk.ciphertext[..])
            .unwrap();
        for off in [0, 3, 5, 40, edk.ciphertext.len() - 1] {
            let mut bad = msg.clone();
            bad[at + off] ^= 0x40;
            let all = reader(&keys);
            assert!(decrypt(&all, &ctx, &bad).await.is_err(), "offset {off}");
        }
        // The wrong context opens nothing.
        assert!(decrypt(&reader(&keys), &context(&[("tenant", "x")]), &msg)
            .await
            .is_err());
    });
}

#[test]
fn two_of_three_raw_keys() {
    two_of_three([
        Arc::new(random_raw_aes("custody", "a")),
        Arc::new(random_raw_aes("custody", "b")),
        Arc::new(random_raw_aes("custody", "c")),
    ]);
}

#[test]
fn two_of_three_across_softhsm_openbao_and_a_raw_key() {
    let test = "two_of_three_across_softhsm_openbao_and_a_raw_key";
    let (Some(hsm), Some(vault)) = (hsm(test), vault(test)) else {
        return;
    };
    let hsm_uri = common::create(&hsm.uri(&common::unique("custody"), ""), KeyKind::Aes256);
    let _cleanup = common::Cleanup(hsm_uri.clone());
    let name = common::unique("custody");
    runtime().block_on(vault.create_key(&name));
    two_of_three([
        open_key(&hsm_uri).unwrap(),
        open_key(&vault.uri(&name)).unwrap(),
        Arc::new(random_raw_aes("custody", "raw")),
    ]);
}

/// Every key-store call of the split passes a group's manager (so it is audited).
#[test]
fn shares_are_wrapped_through_audited_managers() {
    let rt = runtime();
    let rec = Arc::new(Recorder::default());
    let keys: Vec<SharedKeyStore> = (0..3)
        .map(|i| Arc::new(random_raw_aes("custody", &format!("k{i}"))) as SharedKeyStore)
        .collect();
    let groups = keys
        .iter()
        .map(|k| group(vec![k.clone()]).with_audit(rec.clone()))
        .collect();
    let t = ThresholdKey::new("custody", 2, groups).unwrap();
    let m = KeyManager::new(Keyring::new(vec![Arc::new(t)]).unwrap());
    rt.block_on(async {
        encrypt(&m, &context(&[]), b"x").await.unwrap();
    });
    assert_eq!(rec.count(KeyOp::Wrap), 3);
    assert!(ThresholdKey::new("x", 1, vec![group(vec![keys[0].clone()])]).is_err());
    assert!(ThresholdKey::new(
        "x",
        3,
        vec![group(vec![keys[0].clone()]), group(vec![keys[1].clone()])]
    )
    .is_err());
}

/// An opener over `keys` (each a group of one) whose group managers report to `rec`, with
/// `cache` in front.
fn cached_reader(
    keys: &[SharedKeyStore],
    rec: &Arc<Recorder>,
    cache: &Arc<MemoryCache>,
) -> KeyManager {
    let groups = keys
        .iter()
        .map(|k| group(vec![k.clone()]).with_audit(rec.clone()))
        .collect();
    KeyManager::new(Keyring::new(vec![Arc::new(ThresholdKey::opener("custody", groups))]).unwrap())
        .with_cache(cache.clone())
}

/// The data-key cache in front of a 2-of-3 keyring (issue 14): encryptions reuse one split
/// (each group wraps once per data key, not once per message) and the counted key-store
/// calls fall as the cache's counters say; decryptions are served from the cache; a reader
/// with fewer than k groups still fails although it shares the cache with one that opened
/// every message, also when it holds as many keys as that reader (one of them a stranger).
#[test]
fn cache_in_front_of_a_threshold_keyring() {
    const MESSAGES: u64 = 10;
    const MAX_MESSAGES: u64 = 4;
    let cache = Arc::new(
        MemoryCache::new(CacheLimits {
            max_age: Duration::from_secs(600),
            max_messages: MAX_MESSAGES,
            max_bytes: 1 << 30,
            max_entries: 16,
        })
        .unwrap(),
    );
    let keys: Vec<SharedKeyStore> = (0..3)
        .map(|i| Arc::new(random_raw_aes("custody", &format!("k{i}"))) as SharedKeyStore)
        .collect();
    let wrote = Arc::new(Recorder::default());
    let groups = keys
        .iter()
        .map(|k| group(vec![k.clone()]).with_audit(wrote.clone()))
        .collect();
    let w = KeyManager::new(
        Keyring::new(vec![Arc::new(
            ThresholdKey::new("custody", 2, groups).unwrap(),
        )])
        .unwrap(),
    )
    .with_cache(cache.clone());
    let ctx = context(&[("tenant", "gov")]);
    let rt = runtime();
    rt.block_on(async {
        let mut msgs = Vec::new();
        for i in 0..MESSAGES {
            let pt = pseudo(3000, i);
            msgs.push((encrypt(&w, &ctx, &pt).await.unwrap(), pt));
        }
        let s = cache.stats();
        assert_eq!(s.encrypt_misses, MESSAGES.div_ceil(MAX_MESSAGES), "{s:?}");
        assert_eq!(s.encrypt_hits, MESSAGES - s.encrypt_misses, "{s:?}");
        assert_eq!(
            wrote.count(KeyOp::Wrap) as u64,
            3 * s.encrypt_misses,
            "one split per data key"
        );

        // What one uncached decryption costs, then the same reader behind the cache.
        let uncached = Arc::new(Recorder::default());
        let groups = keys[..2]
            .iter()
            .map(|k| group(vec![k.clone()]).with_audit(uncached.clone()))
            .collect();
        let plain = KeyManager::new(
            Keyring::new(vec![Arc::new(ThresholdKey::opener("custody", groups))]).unwrap(),
        );
        assert_eq!(decrypt(&plain, &ctx, &msgs[0].0).await.unwrap(), msgs[0].1);
        let per_message = uncached.count(KeyOp::Unwrap) as u64;
        assert!(per_message >= 2, "two shares are unwrapped: {per_message}");
        let read = Arc::new(Recorder::default());
        let r = cached_reader(&keys[..2], &read, &cache);
        for (msg, pt) in &msgs {
            assert_eq!(&decrypt(&r, &ctx, msg).await.unwrap(), pt);
        }
        let s = cache.stats();
        assert_eq!(s.decrypt_misses, MESSAGES.div_ceil(MAX_MESSAGES), "{s:?}");
        assert_eq!(s.decrypt_hits, MESSAGES - s.decrypt_misses, "{s:?}");
        assert_eq!(
            read.count(KeyOp::Unwrap) as u64,
            per_message * s.decrypt_misses
        );

        // Fewer than k groups, on the same cache: one key, or one key and a stranger.
        let stranger: SharedKeyStore = Arc::new(random_raw_aes("custody", "stranger"));
        let too_few = [vec![keys[2].clone()], vec![keys[0].clone(), stranger]];
        for few in &too_few {
            let rec = Arc::new(Recorder::default());
            let r = cached_reader(few, &rec, &cache);
            for (msg, _) in &msgs {
                let err = decrypt(&r, &ctx, msg).await.unwrap_err();
                assert!(
                    matches!(err, Error::InsufficientShares { need: 2, .. }),
                    "{} keys: {err}",
                    few.len()
                );
            }
        }
    });
}
