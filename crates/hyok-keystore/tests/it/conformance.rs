//! The shared key-store scenarios (`hyok_keystore::testing`) for every store, and keyrings
//! that span stores.

use std::io::Write as _;

use hyok_keystore::testing::{self, Fixture};

use crate::net_common::{dead_addr, kmip, unique, vault};

/// A raw AES key in a temp file; the file lives as long as the returned dir.
fn raw_fixture() -> (tempfile::TempDir, Fixture) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("kek.bin");
    let mut f = std::fs::File::create(&path).expect("key file");
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).expect("random key");
    f.write_all(&key).expect("write key");
    let uri = format!("raw-aes:conformance/kek?file={}", path.display());
    let missing = format!(
        "raw-aes:conformance/kek?file={}",
        dir.path().join("missing.bin").display()
    );
    (
        dir,
        Fixture::from_uris("raw-aes", uri, Some(&missing), None),
    )
}

async fn vault_fixture(test: &str) -> Option<Fixture> {
    let v = vault(test)?;
    let name = unique("hyok-conf");
    v.create_key(&name).await;
    let dead = dead_addr();
    Some(Fixture::from_uris(
        "vault",
        v.uri(&name),
        Some(&v.uri(&unique("hyok-conf-missing"))),
        Some(&format!(
            "vault-transit:{name}?addr=http://{dead}&retries=1&timeout=5"
        )),
    ))
}

async fn kmip_fixture(test: &str) -> Option<Fixture> {
    let k = kmip(test)?;
    let name = unique("hyok-conf");
    let uri = k.create_key(&name).await;
    let dead = dead_addr();
    Some(Fixture::from_uris(
        "kmip",
        uri,
        Some(&k.uri(&unique("hyok-conf-missing"))),
        Some(&format!("kmip://{dead}/{name}?retries=1&timeout=5")),
    ))
}

#[tokio::test]
async fn raw_aes_conformance() {
    let (_dir, fx) = raw_fixture();
    testing::run_all(&fx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_conformance() {
    let Some(fx) = vault_fixture("vault_conformance").await else {
        return;
    };
    testing::run_all(&fx).await;
    let (_dir, raw) = raw_fixture();
    testing::foreign_edk_skipped(&fx, &[&raw]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmip_conformance() {
    let Some(fx) = kmip_fixture("kmip_conformance").await else {
        return;
    };
    testing::run_all(&fx).await;
    let (_dir, raw) = raw_fixture();
    testing::foreign_edk_skipped(&fx, &[&raw]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_keyring_raw_and_vault() {
    let Some(v) = vault_fixture("multi_keyring_raw_and_vault").await else {
        return;
    };
    let (_dir, raw) = raw_fixture();
    testing::multi_keyring(&[&raw, &v]).await;
    testing::foreign_edk_skipped(&raw, &[&v]).await;
}

/// Vault + KMIP in one keyring: each decrypts alone. (The "HSM + Vault + KMIP"
/// adds the PKCS#11 fixture once that backend exists.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_keyring_vault_and_kmip() {
    let Some(v) = vault_fixture("multi_keyring_vault_and_kmip").await else {
        return;
    };
    let Some(k) = kmip_fixture("multi_keyring_vault_and_kmip").await else {
        return;
    };
    let (_dir, raw) = raw_fixture();
    testing::multi_keyring(&[&v, &k]).await;
    testing::multi_keyring(&[&k, &raw, &v]).await;
    testing::foreign_edk_skipped(&v, &[&k]).await;
    testing::foreign_edk_skipped(&k, &[&v]).await;
}
