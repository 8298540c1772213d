//! The shared key-store scenarios (`hyok_keystore::testing`) for every store (raw AES and
//! RSA, PKCS#11 AES and RSA, Vault Transit, KMIP), and keyrings that span stores — among them
//! HSM + Vault + KMIP at once, each decrypting alone.

use std::io::Write as _;

use hyok_keystore::admin::KeyKind;
use hyok_keystore::testing::{self, Fixture};
use serial_test::serial;

use crate::common::{create, dead_addr, hsm, kmip, runtime, unique, vault, Cleanup};

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

/// A raw RSA-3072 key pair in temp files (it does not bind the context).
fn raw_rsa_fixture() -> (tempfile::TempDir, Fixture) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (private, public) = hyok_keystore::raw::rsa::generate_pem(3072).expect("RSA key");
    let (priv_path, pub_path) = (dir.path().join("k.pem"), dir.path().join("k.pub.pem"));
    std::fs::write(&priv_path, private.as_bytes()).expect("write key");
    std::fs::write(&pub_path, public.as_bytes()).expect("write key");
    let uri = format!(
        "raw-rsa:conformance/rsa?public={}&private={}&padding=oaep-sha256",
        pub_path.display(),
        priv_path.display()
    );
    let missing = format!(
        "raw-rsa:conformance/rsa?private={}&padding=oaep-sha256",
        dir.path().join("missing.pem").display()
    );
    let fx = Fixture::from_uris("raw-rsa", uri, Some(&missing), None).without_context_binding();
    (dir, fx)
}

/// A PKCS#11 key of `kind` created in the SoftHSM token; the guard destroys it. The
/// "unreachable" variant names a module that cannot be loaded (PKCS#11 connects when
/// opened).
fn pkcs11_fixture(test: &str, kind: KeyKind) -> Option<(Cleanup, Fixture)> {
    let h = hsm(test)?;
    let (name, query) = match kind {
        KeyKind::Aes256 => ("pkcs11-aes", ""),
        // SoftHSM 2.6 decrypts OAEP with SHA-1 only.
        _ => ("pkcs11-rsa", "oaep-hash=sha1"),
    };
    let uri = create(&h.uri(&unique("conf"), query), kind);
    let missing = h.uri(&unique("conf-missing"), query);
    let sep = if uri.contains('?') { '&' } else { '?' };
    let unreachable = format!("{uri}{sep}module-path=/nonexistent/libhyok-missing-pkcs11.so");
    let mut fx = Fixture::from_uris(name, uri.clone(), Some(&missing), Some(&unreachable));
    if !matches!(kind, KeyKind::Aes256) {
        fx = fx.without_context_binding();
    }
    Some((Cleanup(uri), fx))
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

#[tokio::test]
async fn raw_rsa_conformance() {
    let (_dir, fx) = raw_rsa_fixture();
    testing::run_all(&fx).await;
}

#[test]
#[serial(hsm)]
fn pkcs11_conformance() {
    for kind in [KeyKind::Aes256, KeyKind::Rsa(3072)] {
        let Some((_cleanup, fx)) = pkcs11_fixture("conformance::pkcs11_conformance", kind) else {
            return;
        };
        runtime().block_on(testing::run_all(&fx));
    }
}

/// The acceptance case: a message wrapped by an HSM key, Vault and KMIP at once is
/// decrypted by any one of them alone (plus a raw RSA escrow key, which does not bind the
/// context).
#[test]
#[serial(hsm)]
fn multi_keyring_hsm_vault_and_kmip() {
    let test = "conformance::multi_keyring_hsm_vault_and_kmip";
    let Some((_cleanup, hsm_fx)) = pkcs11_fixture(test, KeyKind::Aes256) else {
        return;
    };
    let rt = runtime();
    let Some(v) = rt.block_on(vault_fixture(test)) else {
        return;
    };
    let Some(k) = rt.block_on(kmip_fixture(test)) else {
        return;
    };
    let (_dir, rsa) = raw_rsa_fixture();
    rt.block_on(async {
        testing::multi_keyring(&[&hsm_fx, &v, &k]).await;
        testing::multi_keyring(&[&v, &k, &hsm_fx, &rsa]).await;
        testing::foreign_edk_skipped(&hsm_fx, &[&v, &k]).await;
        testing::foreign_edk_skipped(&v, &[&hsm_fx]).await;
        testing::foreign_edk_skipped(&k, &[&hsm_fx]).await;
    });
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

/// Vault + KMIP (+ a raw key) in one keyring: each decrypts alone.
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

/// A post-quantum escrow key (`pq-escrow:`, X-Wing) in temp files: it binds the context.
#[tokio::test]
async fn pq_escrow_conformance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (private, public) = hyok_keystore::pq::generate_pem().expect("X-Wing key");
    let (priv_path, pub_path) = (dir.path().join("k.key"), dir.path().join("k.pub"));
    std::fs::write(&priv_path, private.as_bytes()).expect("write key");
    std::fs::write(&pub_path, public.as_bytes()).expect("write key");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&priv_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let uri = format!(
        "pq-escrow:conformance/pq?public={}&private={}",
        pub_path.display(),
        priv_path.display()
    );
    let missing = format!(
        "pq-escrow:conformance/pq?private={}",
        dir.path().join("missing.key").display()
    );
    let fx = Fixture::from_uris("pq-escrow", uri, Some(&missing), None);
    testing::run_all(&fx).await;
}
