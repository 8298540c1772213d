//! k-of-n custody against real key stores: SoftHSM, OpenBao and a raw key as three groups.

use std::sync::Arc;

use hyok_keystore::admin::KeyKind;
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
    assert_eq!(rec.count(hyok_keystore::observe::KeyOp::Wrap), 3);
    assert!(ThresholdKey::new("x", 1, vec![group(vec![keys[0].clone()])]).is_err());
    assert!(ThresholdKey::new(
        "x",
        3,
        vec![group(vec![keys[0].clone()]), group(vec![keys[1].clone()])]
    )
    .is_err());
}
