//! KMIP against PyKMIP: key management by name and unique identifier, certificates the
//! server or we refuse, unreachable and silent servers, batches.

use std::path::Path;
use std::process::Command;

use hyok_core::DataKey;
use hyok_keystore::admin::{open_admin, KeyKind};
use hyok_keystore::testing::context;
use hyok_keystore::{open_key, Error};

use crate::common::{
    batch_round_trip, bounded, dead_addr, kmip, parse, req, silent_listener, skip, unique, SUITE,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_lifecycle_by_name_and_unique_id() {
    let Some(k) = kmip("key_lifecycle_by_name_and_unique_id") else {
        return;
    };
    let name = unique("hyok-life");
    let by_id_uri = k.create_key(&name).await;
    let uid = by_id_uri
        .rsplit_once('/')
        .map(|(_, id)| id.split('?').next().unwrap_or(id).to_owned())
        .unwrap();
    let by_name = open_key(&k.uri(&name)).unwrap();
    let by_id = open_key(&by_id_uri).unwrap();
    let ctx = context(1);
    let (dk, edk) = by_name.generate(req(&ctx)).await.unwrap();
    assert_eq!(edk.provider_id, "kmip");
    assert_eq!(
        edk.provider_info,
        uid.as_bytes(),
        "the EDK names the unique id"
    );
    assert_eq!(
        by_id
            .unwrap(&edk, req(&ctx))
            .await
            .unwrap()
            .unwrap()
            .expose(),
        dk.expose()
    );

    let (admin, parsed) = open_admin(&k.uri(&name)).unwrap();
    let again = admin.create(&parsed, KeyKind::Aes256).await.unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");
    let listed = admin.list(&parse(&k.uri(""))).await.unwrap();
    let entry = listed.iter().find(|e| e.id == uid).expect("key listed");
    assert_eq!(entry.name, name);
    assert_eq!(entry.kind, "AES-256");
    assert!(entry
        .attributes
        .contains(&("state".into(), "Active".into())));
    assert_eq!(
        admin.rotate(&parsed).await.unwrap_err().class(),
        "unsupported"
    );

    let msg = admin.destroy(&parsed).await.unwrap();
    assert!(msg.contains(&uid), "{msg}");
    let fresh = open_key(&by_id_uri).unwrap();
    match fresh.wrap(&dk, req(&ctx)).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("wrap after destroy: {other:?}"),
    }
    match fresh.unwrap(&edk, req(&ctx)).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("unwrap after destroy: {other:?}"),
    }
    match admin.destroy(&parsed).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("destroying twice: {other:?}"),
    }
}

/// Make a self-signed EC certificate (its own CA) with openssl; `None` if openssl is missing.
fn self_signed(dir: &Path) -> Option<(String, String)> {
    let key = dir.join("rogue.key");
    let cert = dir.join("rogue.crt");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=hyok-rogue-client"])
        .args(["-addext", "extendedKeyUsage=clientAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then(|| (cert.display().to_string(), key.display().to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_the_server_or_we_do_not_trust() {
    let Some(k) = kmip("certificates_the_server_or_we_do_not_trust") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, key)) = self_signed(dir.path()) else {
        skip(
            "certificates_the_server_or_we_do_not_trust",
            "openssl is not installed",
        );
        return;
    };
    let name = unique("hyok-cert");
    let uri = k.create_key(&name).await;
    let ctx = context(1);
    let dk = DataKey::generate(SUITE).unwrap();
    // Our client certificate is not signed by the CA the server trusts.
    let rogue = open_key(&format!("{}?cert={cert}&key={key}", k.uri(&name))).unwrap();
    match rogue.wrap(&dk, req(&ctx)).await {
        Err(e @ (Error::Denied { .. } | Error::Unavailable { .. })) => {
            let text = e.to_string();
            assert!(text.contains("certificate"), "{text}");
        }
        other => panic!("expected the server to refuse us, got {other:?}"),
    }
    // We do not trust the server's certificate.
    let untrusting = open_key(&format!("{}?ca={cert}", k.uri(&name))).unwrap();
    match untrusting.wrap(&dk, req(&ctx)).await {
        Err(e @ Error::Denied { .. }) => {
            assert!(e.to_string().contains("not trusted"), "{e}")
        }
        other => panic!("expected an untrusted server certificate, got {other:?}"),
    }
    // A key file that is not a key is a configuration error when opening.
    let bad = open_key(&format!("{}?key={cert}", k.uri(&name))).unwrap_err();
    assert_eq!(bad.class(), "config");
    k.destroy(&uri).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_and_silent_server_fail_in_bounded_time() {
    let Some(k) = kmip("kmip server_down_and_silent_server") else {
        return;
    };
    let ctx = context(1);
    let dk = DataKey::generate(SUITE).unwrap();
    let down = open_key(&format!("kmip://{}/some-key?retries=1", dead_addr())).unwrap();
    match bounded(down.wrap(&dk, req(&ctx))).await {
        Err(e @ Error::Unavailable { .. }) => {
            assert!(e.to_string().contains("cannot connect"), "{e}")
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    let (_listener, addr) = silent_listener();
    let silent = open_key(&format!("kmip://{addr}/some-key?timeout=1")).unwrap();
    match bounded(silent.wrap(&dk, req(&ctx))).await {
        Err(e @ Error::Unavailable { .. }) => {
            assert!(e.to_string().contains("did not finish"), "{e}")
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    drop(k);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_span_several_messages() {
    let Some(k) = kmip("batches_span_several_messages") else {
        return;
    };
    let name = unique("hyok-batch");
    let uri = k.create_key(&name).await;
    let store = open_key(&uri).unwrap();
    batch_round_trip(store.as_ref(), 150).await;
    k.destroy(&uri).await;
}
