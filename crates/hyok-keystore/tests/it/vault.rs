//! Vault/OpenBao Transit against the dev server: rotation and min_decryption_version, key
//! management, token sources and policies, AppRole with renewal, batches, TLS with a custom
//! CA, and the error paths (server down, silent server, 5xx with retries).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyok_core::DataKey;
use hyok_keystore::admin::{open_admin, KeyKind};
use hyok_keystore::net::Secret;
use hyok_keystore::testing::context;
use hyok_keystore::vault::{ciphertext_version, VaultAdmin, VaultTransitBuilder};
use hyok_keystore::{open_key, Error, KeyStore};

use crate::common::{
    batch_round_trip, bounded, dead_addr, parse, req, required, silent_listener, skip, unique,
    vault, SUITE,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_old_messages_until_min_decryption_version_rises() {
    let Some(v) = vault("rotation") else { return };
    let name = unique("hyok-rot");
    v.create_key(&name).await;
    let uri = v.uri(&name);
    let store = open_key(&uri).unwrap();
    let ctx = context(1);
    let (dk1, edk1) = store.generate(req(&ctx)).await.unwrap();
    assert_eq!(ciphertext_version(&edk1.ciphertext), Some(1));
    assert_eq!(edk1.provider_id, "vault-transit");
    assert_eq!(edk1.provider_info, name.as_bytes());

    let (admin, parsed) = open_admin(&uri).unwrap();
    let msg = admin.rotate(&parsed).await.unwrap();
    assert!(msg.contains("version 2"), "{msg}");
    let (dk2, edk2) = store.generate(req(&ctx)).await.unwrap();
    assert_eq!(ciphertext_version(&edk2.ciphertext), Some(2));
    let back1 = store.unwrap(&edk1, req(&ctx)).await.unwrap().unwrap();
    assert_eq!(back1.expose(), dk1.expose(), "old messages still decrypt");

    VaultAdmin::from_uri(&parsed)
        .unwrap()
        .set_min_decryption_version(&name, 2)
        .await
        .unwrap();
    match store.unwrap(&edk1, req(&ctx)).await {
        Err(e @ Error::KeyVersionTooOld { .. }) => {
            let text = e.to_string();
            assert!(text.contains("key version 1 is too old"), "{text}");
            assert_eq!(e.class(), "version-too-old");
        }
        other => panic!("expected version-too-old, got {other:?}"),
    }
    let back2 = store.unwrap(&edk2, req(&ctx)).await.unwrap().unwrap();
    assert_eq!(back2.expose(), dk2.expose());

    let listed = admin.list(&parse(&v.uri(""))).await.unwrap();
    let k = listed.iter().find(|k| k.name == name).expect("key listed");
    assert!(k
        .attributes
        .contains(&("latest_version".into(), "2".into())));
    assert!(k
        .attributes
        .contains(&("min_decryption_version".into(), "2".into())));
    assert_eq!(k.kind, "aes256-gcm96");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_lifecycle() {
    let Some(v) = vault("key_lifecycle") else {
        return;
    };
    let name = unique("hyok-life");
    let uri = v.uri(&name);
    let (admin, parsed) = open_admin(&uri).unwrap();
    let created = admin.create(&parsed, KeyKind::Aes256).await.unwrap();
    assert!(created.uri.starts_with(&format!("vault-transit:{name}?")));
    assert!(
        created.detail.contains("not exportable"),
        "{}",
        created.detail
    );
    let again = admin.create(&parsed, KeyKind::Aes256).await.unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");
    let rsa = admin
        .create(&parse(&v.uri(&unique("hyok-rsa"))), KeyKind::Rsa(3072))
        .await
        .unwrap_err();
    assert_eq!(rsa.class(), "config");

    let ctx = context(1);
    let store = open_key(&uri).unwrap();
    let (_, edk) = store.generate(req(&ctx)).await.unwrap();

    let refused = admin.destroy(&parsed).await.unwrap_err();
    assert!(
        refused.to_string().contains("deletion_allowed"),
        "{refused}"
    );
    let vadmin = VaultAdmin::from_uri(&parsed).unwrap();
    vadmin.set_deletion_allowed(&name, true).await.unwrap();
    admin.destroy(&parsed).await.unwrap();
    let listed = admin.list(&parse(&v.uri(""))).await.unwrap();
    assert!(listed.iter().all(|k| k.name != name));

    // Gone: decrypting names the cause, and a fresh store refuses to wrap (no upsert).
    match store.unwrap(&edk, req(&ctx)).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("expected not-found, got {other:?}"),
    }
    let fresh = open_key(&uri).unwrap();
    let dk = DataKey::generate(SUITE).unwrap();
    match fresh.wrap(&dk, req(&ctx)).await {
        Err(e @ Error::NotFound { .. }) => {
            assert!(e.to_string().contains("does not create"), "{e}")
        }
        other => panic!("expected not-found, got {other:?}"),
    }
    assert!(
        vadmin.read_key(&name).await.unwrap().is_none(),
        "wrap created the key"
    );
    match admin.rotate(&parsed).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("rotating a missing key: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_and_wrong_tokens() {
    let Some(v) = vault("token_file_and_wrong_tokens") else {
        return;
    };
    let name = unique("hyok-tok");
    v.create_key(&name).await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("token");
    std::fs::write(&good, format!("{}\n", v.token)).unwrap();
    let bad = dir.path().join("bad-token");
    std::fs::write(&bad, "s.not-a-real-token\n").unwrap();
    let ctx = context(1);
    let dk = DataKey::generate(SUITE).unwrap();

    let store = open_key(&format!("{}&token_file={}", v.uri(&name), good.display())).unwrap();
    let edk = store.wrap(&dk, req(&ctx)).await.unwrap();

    let wrong = open_key(&format!("{}&token_file={}", v.uri(&name), bad.display())).unwrap();
    for r in [
        wrong.wrap(&dk, req(&ctx)).await.map(|_| ()),
        wrong.unwrap(&edk, req(&ctx)).await.map(|_| ()),
    ] {
        match r {
            Err(e @ Error::Denied { .. }) => {
                let text = e.to_string();
                assert!(text.contains("invalid or expired"), "{text}");
                assert!(
                    !text.contains("not-a-real-token"),
                    "the token leaked: {text}"
                );
            }
            other => panic!("expected denied, got {other:?}"),
        }
    }
    let built = VaultTransitBuilder::new()
        .with_uri(&parse(&v.uri(&name)))
        .unwrap()
        .with_token(Secret::new("s.wrong".into()))
        .build()
        .unwrap();
    assert_eq!(
        built.wrap(&dk, req(&ctx)).await.unwrap_err().class(),
        "denied"
    );
    // A token file that does not exist is a configuration error, found at first use.
    let missing = open_key(&format!(
        "{}&token_file={}",
        v.uri(&name),
        dir.path().join("nope").display()
    ))
    .unwrap();
    assert_eq!(
        missing.wrap(&dk, req(&ctx)).await.unwrap_err().class(),
        "config"
    );
}

/// A token whose policy allows only encrypt: the existence check is skipped, wrap works,
/// unwrap is refused with a message naming the missing capability.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_without_decrypt() {
    let Some(v) = vault("policy_without_decrypt") else {
        return;
    };
    let name = unique("hyok-pol");
    v.create_key(&name).await;
    let policy = format!("path \"transit/encrypt/{name}\" {{ capabilities = [\"update\"] }}");
    let (s, _) = v
        .api(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(serde_json::json!({ "policy": policy })),
        )
        .await;
    assert_eq!(s, 204, "creating the policy");
    let (s, body) = v
        .api(
            "POST",
            "auth/token/create",
            Some(serde_json::json!({ "policies": [name], "ttl": "10m" })),
        )
        .await;
    assert_eq!(s, 200, "creating the token: {body}");
    let token = body["auth"]["client_token"].as_str().unwrap().to_owned();
    let store = VaultTransitBuilder::new()
        .with_uri(&parse(&v.uri(&name)))
        .unwrap()
        .with_token(Secret::new(token))
        .build()
        .unwrap();
    let ctx = context(1);
    let (_, edk) = store.generate(req(&ctx)).await.unwrap();
    match store.unwrap(&edk, req(&ctx)).await {
        Err(e @ Error::Denied { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(&format!("do not allow update on transit/decrypt/{name}")),
                "{text}"
            );
        }
        other => panic!("expected denied, got {other:?}"),
    }
    let _ = v
        .api("DELETE", &format!("sys/policies/acl/{name}"), None)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approle_login_and_renewal() {
    let Some(v) = vault("approle_login_and_renewal") else {
        return;
    };
    let name = unique("hyok-ar");
    v.create_key(&name).await;
    let mount = unique("approle");
    let (s, body) = v
        .api(
            "POST",
            &format!("sys/auth/{mount}"),
            Some(serde_json::json!({ "type": "approle" })),
        )
        .await;
    assert_eq!(s, 204, "enabling AppRole: {body}");
    let policy = format!(
        "path \"transit/encrypt/{name}\" {{ capabilities = [\"update\"] }}\n\
         path \"transit/decrypt/{name}\" {{ capabilities = [\"update\"] }}\n\
         path \"transit/keys/{name}\" {{ capabilities = [\"read\"] }}"
    );
    v.api(
        "PUT",
        &format!("sys/policies/acl/{name}"),
        Some(serde_json::json!({ "policy": policy })),
    )
    .await;
    // A 3-second token: the second round below runs after the first token's lease.
    let (s, body) = v
        .api(
            "POST",
            &format!("auth/{mount}/role/hyok"),
            Some(serde_json::json!({
                "token_policies": [name], "token_ttl": "3s", "token_max_ttl": "1h"
            })),
        )
        .await;
    assert_eq!(s, 204, "creating the role: {body}");
    let (_, body) = v
        .api("GET", &format!("auth/{mount}/role/hyok/role-id"), None)
        .await;
    let role_id = body["data"]["role_id"].as_str().unwrap().to_owned();
    let (_, body) = v
        .api("POST", &format!("auth/{mount}/role/hyok/secret-id"), None)
        .await;
    let secret_id = body["data"]["secret_id"].as_str().unwrap().to_owned();

    let uri = parse(&format!(
        "{}&auth=approle&approle_mount={mount}",
        v.uri(&name)
    ));
    let store = VaultTransitBuilder::new()
        .with_uri(&uri)
        .unwrap()
        .with_approle(Secret::new(role_id.clone()), Secret::new(secret_id))
        .build()
        .unwrap();
    let ctx = context(1);
    for round in 0..2 {
        let (dk, edk) = store.generate(req(&ctx)).await.unwrap_or_else(|e| {
            panic!("round {round}: {e}");
        });
        let back = store.unwrap(&edk, req(&ctx)).await.unwrap().unwrap();
        assert_eq!(back.expose(), dk.expose());
        if round == 0 {
            tokio::time::sleep(Duration::from_millis(3500)).await;
        }
    }

    let wrong = VaultTransitBuilder::new()
        .with_uri(&uri)
        .unwrap()
        .with_approle(Secret::new(role_id), Secret::new("wrong-secret".into()))
        .build()
        .unwrap();
    match wrong.generate(req(&ctx)).await {
        Err(e @ Error::Denied { .. }) => {
            let text = e.to_string();
            assert!(text.contains("AppRole login"), "{text}");
            assert!(!text.contains("wrong-secret"), "the secret leaked: {text}");
        }
        other => panic!("expected denied, got {other:?}"),
    }
    let _ = v.api("DELETE", &format!("sys/auth/{mount}"), None).await;
    let _ = v
        .api("DELETE", &format!("sys/policies/acl/{name}"), None)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_span_several_requests() {
    let Some(v) = vault("batches_span_several_requests") else {
        return;
    };
    let name = unique("hyok-batch");
    v.create_key(&name).await;
    let store = open_key(&v.uri(&name)).unwrap();
    batch_round_trip(store.as_ref(), 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_and_silent_server_fail_in_bounded_time() {
    let ctx = context(1);
    let dk = DataKey::generate(SUITE).unwrap();
    let token = || Secret::new("unused".into());
    let down = VaultTransitBuilder::new()
        .with_uri(&parse(&format!(
            "vault-transit:k?addr=http://{}&retries=2",
            dead_addr()
        )))
        .unwrap()
        .with_token(token())
        .build()
        .unwrap();
    match bounded(down.wrap(&dk, req(&ctx))).await {
        Err(e @ Error::Unavailable { .. }) => {
            assert!(e.to_string().contains("cannot reach Vault"), "{e}")
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    let (_listener, addr) = silent_listener();
    let silent = VaultTransitBuilder::new()
        .with_uri(&parse(&format!(
            "vault-transit:k?addr=http://{addr}&timeout=1"
        )))
        .unwrap()
        .with_token(token())
        .build()
        .unwrap();
    match bounded(silent.wrap(&dk, req(&ctx))).await {
        Err(e @ Error::Unavailable { .. }) => {
            assert!(e.to_string().contains("no answer"), "{e}")
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

/// A stand-in HTTP server that answers every request with `status` and `body`, counting
/// requests; it stops after `max` requests or 30 seconds.
fn canned_server(status: &str, body: &str, max: usize) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && seen.load(Ordering::SeqCst) < max {
            match l.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut buf = [0u8; 8192];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    let _ = s.write_all(response.as_bytes());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_and_throttled_answers_are_retried_then_reported() {
    let ctx = context(1);
    let dk = DataKey::generate(SUITE).unwrap();
    for (status, body, word) in [
        (
            "503 Service Unavailable",
            r#"{"errors":["Vault is sealed"]}"#,
            "sealed",
        ),
        (
            "429 Too Many Requests",
            r#"{"errors":["rate limit quota exceeded"]}"#,
            "429",
        ),
    ] {
        let (addr, count) = canned_server(status, body, 20);
        let store = VaultTransitBuilder::new()
            .with_uri(&parse(&format!(
                "vault-transit:k?addr=http://{addr}&retries=2"
            )))
            .unwrap()
            .with_token(Secret::new("t".into()))
            .build()
            .unwrap();
        match store.wrap(&dk, req(&ctx)).await {
            Err(e @ Error::Unavailable { .. }) => {
                assert!(e.to_string().contains(word), "{e}")
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
        assert_eq!(
            count.load(Ordering::SeqCst),
            3,
            "{status}: one attempt and two retries"
        );
    }
    // A 400 is not retried.
    let (addr, count) = canned_server("400 Bad Request", r#"{"errors":["bad"]}"#, 20);
    let store = VaultTransitBuilder::new()
        .with_uri(&parse(&format!(
            "vault-transit:k?addr=http://{addr}&retries=2"
        )))
        .unwrap()
        .with_token(Secret::new("t".into()))
        .build()
        .unwrap();
    assert!(store.wrap(&dk, req(&ctx)).await.is_err());
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

/// The bao binary the service script installed, if it is there.
fn bao_binary() -> Option<PathBuf> {
    let tools = std::env::var_os("HYOK_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HYOK_STATE_DIR").map(|s| PathBuf::from(s).join("tools")))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.state/tools"));
    let bin = tools.join("bin/bao");
    bin.is_file().then_some(bin)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A second, TLS-only dev server with its own CA: `ca=` makes it trusted; without it (system
/// roots) or with another CA the handshake fails with a message about the certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_custom_ca() {
    let Some(bao) = bao_binary() else {
        skip(
            "tls_with_a_custom_ca",
            "no bao binary (run scripts/services/openbao.sh once)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = dead_addr().rsplit_once(':').unwrap().1.to_owned();
    let log = std::fs::File::create(dir.path().join("bao.log")).unwrap();
    let child = Command::new(&bao)
        .args([
            "server",
            "-dev",
            "-dev-tls",
            "-dev-no-store-token",
            "-dev-root-token-id=root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
            &format!("-dev-tls-cert-dir={}", dir.path().display()),
        ])
        .env_remove("VAULT_ADDR")
        .env_remove("BAO_ADDR")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start bao");
    let _guard = KillOnDrop(child);
    // The cluster port (PORT+1) may be taken; then the server exits and the test skips.
    let ca = dir.path().join("vault-ca.pem");
    let deadline = Instant::now() + Duration::from_secs(30);
    // The server creates the file, then writes it: wait for a whole certificate, not the name
    // (reading it between the two failed once under load with "no CERTIFICATE block").
    let written =
        || std::fs::read_to_string(&ca).is_ok_and(|t| t.contains("-----END CERTIFICATE-----"));
    while !written() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !written() {
        let msg = "the TLS dev server did not start";
        if required() {
            panic!(
                "{msg}: {}",
                std::fs::read_to_string(dir.path().join("bao.log")).unwrap_or_default()
            );
        }
        skip("tls_with_a_custom_ca", msg);
        return;
    }
    let addr = format!("https://127.0.0.1:{port}");
    let uri = |extra: &str| {
        parse(&format!(
            "vault-transit:tls-key?addr={addr}&retries=0&timeout=5{extra}"
        ))
    };
    let root = || Secret::new("root".into());
    // Wait (bounded) until it answers, then mount transit and create the key.
    let admin = VaultTransitBuilder::new()
        .with_uri(&uri(&format!("&ca={}", ca.display())))
        .unwrap()
        .with_token(root())
        .build_admin()
        .unwrap();
    let mut ready = false;
    for _ in 0..100 {
        if admin.read_key("tls-key").await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the TLS dev server did not answer");
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap()])
        .build()
        .unwrap();
    let r = client
        .post(format!("{addr}/v1/sys/mounts/transit"))
        .header("X-Vault-Token", "root")
        .body(r#"{"type":"transit"}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "mounting transit: {}", r.status());
    hyok_keystore::admin::KeyAdmin::create(&admin, &uri(""), KeyKind::Aes256)
        .await
        .unwrap();

    let ctx = context(1);
    let store = VaultTransitBuilder::new()
        .with_uri(&uri(&format!("&ca={}", ca.display())))
        .unwrap()
        .with_token(root())
        .build()
        .unwrap();
    let (dk, edk) = store.generate(req(&ctx)).await.unwrap();
    assert_eq!(
        store
            .unwrap(&edk, req(&ctx))
            .await
            .unwrap()
            .unwrap()
            .expose(),
        dk.expose()
    );
    // Another CA: the server's certificate is not trusted.
    let other_ca = PathBuf::from(std::env::var("HYOK_KMIP_CA").unwrap_or_default());
    let untrusted = if other_ca.is_file() {
        uri(&format!("&ca={}", other_ca.display()))
    } else {
        uri("")
    };
    let store = VaultTransitBuilder::new()
        .with_uri(&untrusted)
        .unwrap()
        .with_token(root())
        .build()
        .unwrap();
    match store.generate(req(&ctx)).await {
        Err(e @ Error::Denied { .. }) => {
            assert!(e.to_string().contains("certificate"), "{e}")
        }
        other => panic!("expected a TLS failure, got {other:?}"),
    }
}
