//! Branch keys: data keys wrapped under branch key versions, the versions wrapped by master
//! keys. Master-key calls are counted through the master manager's audit sink (every call
//! to a key store passes it), not timed.

use std::sync::Arc;

use hyok_keystore::admin::KeyKind;
use hyok_keystore::branch::{BranchKey, BranchStore, PROVIDER_ID};
use hyok_keystore::observe::KeyOp;
use hyok_keystore::testing::random_raw_aes;
use hyok_keystore::{open_key, Error, KeyManager, Keyring, SharedKeyStore};

use crate::common::{self, context, decrypt, encrypt, hsm, pseudo, runtime, Recorder};

fn master(keys: Vec<SharedKeyStore>) -> (KeyManager, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let m = KeyManager::new(Keyring::new(keys).unwrap()).with_audit(rec.clone());
    (m, rec)
}

fn calls(rec: &Recorder) -> usize {
    rec.count(KeyOp::Generate) + rec.count(KeyOp::Wrap) + rec.count(KeyOp::Unwrap)
}

fn outer(name: &str, store: &BranchStore, master: KeyManager) -> KeyManager {
    let key = BranchKey::new(name, store.clone(), master).unwrap();
    KeyManager::new(Keyring::new(vec![Arc::new(key)]).unwrap())
}

fn version_of(msg: &[u8]) -> Vec<u8> {
    let parsed =
        hyok_core::ParsedHeader::read(&mut &msg[..], hyok_core::HeaderLimits::default()).unwrap();
    let edk = &parsed.header.edks[0];
    assert_eq!(edk.provider_id, PROVIDER_ID);
    edk.ciphertext[28..44].to_vec()
}

/// Thousands of messages through one branch key cost one master call to create the version,
/// one per process to unwrap it; rotation adds a version and old objects stay readable;
/// master-key rotation re-wraps versions only; destroying a version shreds exactly its
/// objects.
#[test]
fn branch_key_lifecycle_counts_master_calls() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = BranchStore::new(dir.path());
    let old_master: SharedKeyStore = Arc::new(random_raw_aes("hsm", "master-2025"));
    let new_master: SharedKeyStore = Arc::new(random_raw_aes("hsm", "master-2026"));
    let ctx = context(&[("tenant", "acme")]);
    rt.block_on(async {
        let (admin, admin_rec) = master(vec![old_master.clone()]);
        let v1 = store.create("payroll", &admin).await.unwrap();
        assert_eq!(v1.seq, 1);
        assert_eq!(calls(&admin_rec), 1, "creating a version: one generate");
        assert!(
            store.create("payroll", &admin).await.is_err(),
            "create twice"
        );

        // Process 1 writes 2,000 objects.
        let (m1, rec1) = master(vec![old_master.clone()]);
        let writer = outer("payroll", &store, m1);
        let mut objects = Vec::new();
        for i in 0..2000u64 {
            let pt = pseudo(64 + (i as usize % 100), i);
            let msg = encrypt(&writer, &ctx, &pt).await.unwrap();
            objects.push((pt, msg));
        }
        assert_eq!(
            calls(&rec1),
            1,
            "2,000 encrypts: one master unwrap of the active version"
        );
        assert!(objects.iter().all(|(_, m)| version_of(m) == v1.version.0));
        // No data key is reused: every EDK differs.
        let mut edks: Vec<&[u8]> = objects.iter().map(|(_, m)| &m[..]).collect();
        edks.dedup();
        assert_eq!(edks.len(), objects.len());

        // Process 2 reads them all back.
        let (m2, rec2) = master(vec![old_master.clone()]);
        let reader = outer("payroll", &store, m2);
        for (pt, msg) in &objects {
            assert_eq!(&decrypt(&reader, &ctx, msg).await.unwrap(), pt);
        }
        assert_eq!(calls(&rec2), 1, "2,000 decrypts: one master unwrap");
        assert!(
            decrypt(&reader, &context(&[("tenant", "other")]), &objects[0].1)
                .await
                .is_err()
        );

        // Branch rotation: a new active version; old objects still open.
        let v2 = store.rotate("payroll", &admin).await.unwrap();
        assert_eq!(v2.seq, 2);
        let (m3, rec3) = master(vec![old_master.clone()]);
        let writer2 = outer("payroll", &store, m3);
        let newer = encrypt(&writer2, &ctx, b"after rotation").await.unwrap();
        assert_eq!(version_of(&newer), v2.version.0);
        assert_eq!(
            &decrypt(&writer2, &ctx, &objects[7].1).await.unwrap(),
            &objects[7].0
        );
        assert_eq!(calls(&rec3), 2, "one unwrap per version");

        // Master-key rotation: re-wrap the versions, then the old master key is gone.
        let object_bytes: Vec<Vec<u8>> = objects.iter().map(|(_, m)| m.clone()).collect();
        let (to, to_rec) = master(vec![new_master.clone()]);
        let (from, from_rec) = master(vec![old_master.clone()]);
        assert_eq!(store.rewrap("payroll", &from, &to).await.unwrap(), 2);
        assert_eq!(calls(&from_rec), 2, "one unwrap per version");
        assert_eq!(calls(&to_rec), 2, "one wrap per version");
        drop(old_master);
        let (m4, _) = master(vec![new_master.clone()]);
        let reader = outer("payroll", &store, m4);
        for (pt, msg) in &objects {
            assert_eq!(&decrypt(&reader, &ctx, msg).await.unwrap(), pt);
        }
        assert_eq!(
            &decrypt(&reader, &ctx, &newer).await.unwrap(),
            b"after rotation"
        );
        assert_eq!(
            object_bytes,
            objects.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>(),
            "master rotation rewrote no object byte"
        );
        // The old master key no longer opens the store.
        let (stale, _) = master(vec![Arc::new(random_raw_aes("hsm", "master-2025"))]);
        let stale = outer("payroll", &store, stale);
        assert!(decrypt(&stale, &ctx, &newer).await.is_err());

        // Crypto-shredding: the active version cannot go; v1 can, and takes exactly its objects.
        assert!(store.destroy_version("payroll", &v2.version).await.is_err());
        store.destroy_version("payroll", &v1.version).await.unwrap();
        let (m5, _) = master(vec![new_master.clone()]);
        let after = outer("payroll", &store, m5);
        for (_, msg) in objects.iter().take(50) {
            let err = decrypt(&after, &ctx, msg).await.unwrap_err();
            assert!(matches!(err, Error::NotFound { .. }), "{err}");
        }
        assert_eq!(
            &decrypt(&after, &ctx, &newer).await.unwrap(),
            b"after rotation"
        );
    });
}

/// Writers rotating at once never lose a version: each gets its own sequence number.
#[test]
fn concurrent_rotations_keep_every_version() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = BranchStore::new(dir.path());
    let key: SharedKeyStore = Arc::new(random_raw_aes("hsm", "m"));
    rt.block_on(async {
        let (m, _) = master(vec![key.clone()]);
        store.create("b", &m).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            let (m, _) = master(vec![key.clone()]);
            tasks.push(tokio::spawn(
                async move { store.rotate("b", &m).await.unwrap() },
            ));
        }
        let mut made = Vec::new();
        for t in tasks {
            made.push(t.await.unwrap());
        }
        let versions = store.versions("b").await.unwrap();
        assert_eq!(versions.len(), 9);
        // Concurrent rotations may share a sequence number; the version id orders them.
        let order: Vec<(u64, _)> = versions.iter().map(|v| (v.seq, v.version)).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "oldest first, by (seq, version)");
        assert_eq!(order[0].0, 1);
        assert!(order.iter().all(|(s, _)| (1..=9).contains(s)), "{order:?}");
        assert_eq!(store.active("b").await.unwrap(), *versions.last().unwrap());
        for v in made {
            assert!(versions.contains(&v), "rotation {} lost", v.version);
        }
    });
}

/// A version file moved to another branch key, or edited, is refused.
#[test]
fn tampered_store_files_are_refused() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = BranchStore::new(dir.path());
    let key: SharedKeyStore = Arc::new(random_raw_aes("hsm", "m"));
    rt.block_on(async {
        let (m, _) = master(vec![key.clone()]);
        let a = store.create("a", &m).await.unwrap();
        store.create("b", &m).await.unwrap();
        // Copy a's version file into b's directory under b's name: the branch field differs.
        let _ = a;
        let file = "00000002.json";
        let src = std::fs::read_dir(dir.path().join("a"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let text = std::fs::read_to_string(&src).unwrap();
        std::fs::write(
            dir.path().join("b").join(file),
            text.replace("\"a\"", "\"b\"")
                .replace("\"seq\": 1", "\"seq\": 2"),
        )
        .unwrap();
        // Now b's active version is a's key with a's name swapped out: the master key binds
        // (branch, version) as context, so unwrapping it fails.
        let b = outer("b", &store, m.clone());
        let err = encrypt(&b, &context(&[]), b"x").await.unwrap_err();
        assert!(err.contains("unwrap"), "{err}");
        std::fs::write(dir.path().join("b").join(file), b"{not json").unwrap();
        assert!(store.versions("b").await.is_err());
    });
}

/// Acceptance: 10,000 objects through a branch key under a SoftHSM AES key make at most two
/// HSM calls per process per branch key version.
#[test]
fn ten_thousand_objects_under_softhsm_make_two_hsm_calls() {
    let Some(hsm) = hsm("ten_thousand_objects_under_softhsm_make_two_hsm_calls") else {
        return;
    };
    let uri = common::create(
        &hsm.uri(&common::unique("branch-master"), ""),
        KeyKind::Aes256,
    );
    let _cleanup = common::Cleanup(uri.clone());
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = BranchStore::new(dir.path());
    let ctx = context(&[("tenant", "bank")]);
    rt.block_on(async {
        let hsm_key = open_key(&uri).unwrap();
        let (admin, admin_rec) = master(vec![hsm_key.clone()]);
        store.create("ledger", &admin).await.unwrap();
        let (m, rec) = master(vec![hsm_key.clone()]);
        let writer = outer("ledger", &store, m);
        let mut msgs = Vec::new();
        for i in 0..10_000u64 {
            msgs.push(encrypt(&writer, &ctx, &i.to_le_bytes()).await.unwrap());
        }
        let (m2, rec2) = master(vec![hsm_key.clone()]);
        let reader = outer("ledger", &store, m2);
        for (i, msg) in msgs.iter().enumerate() {
            assert_eq!(
                decrypt(&reader, &ctx, msg).await.unwrap(),
                (i as u64).to_le_bytes()
            );
        }
        eprintln!(
            "HSM calls: create {}, 10,000 encrypts {}, 10,000 decrypts {}",
            calls(&admin_rec),
            calls(&rec),
            calls(&rec2)
        );
        assert_eq!(calls(&admin_rec), 1);
        assert!(calls(&rec) <= 2, "{}", calls(&rec));
        assert!(calls(&rec2) <= 2, "{}", calls(&rec2));
    });
}
