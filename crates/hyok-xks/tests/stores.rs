//! Real key stores behind the proxy: an AES-256 key in SoftHSM (CKM_AES_GCM in the token),
//! an `aes256-gcm96` Transit key in OpenBao (key versions in `ciphertextMetadata`) and an
//! AES-256 key in PyKMIP (KMIP 1.4 Encrypt/Decrypt in AES-GCM mode with the AAD),
//! and requests signed by an independent signer, `curl --aws-sigv4`. Each test prints
//! `SKIPPED:` without its service unless `HYOK_REQUIRE_SERVICES=1`.

mod common;

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::*;
use hyok::keys::KeyKind;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn create(uri: &str) {
    let session = hyok::Session::open(hyok::SessionConfig::default()).unwrap();
    let (admin, parsed) = session.key_admin(uri).unwrap();
    admin.create(&parsed, KeyKind::Aes256).await.unwrap();
}

async fn destroy(uri: &str) {
    let session = hyok::Session::open(hyok::SessionConfig::default()).unwrap();
    let (admin, parsed) = session.key_admin(uri).unwrap();
    if let Err(e) = admin.destroy(&parsed).await {
        eprintln!("cleanup: {uri}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn softhsm_key_in_the_token() {
    if !have(
        "softhsm_key_in_the_token",
        &[
            "HYOK_PKCS11_MODULE",
            "HYOK_TEST_PKCS11_TOKEN",
            "HYOK_PKCS11_PIN",
            "SOFTHSM2_CONF",
        ],
    ) {
        return;
    }
    let token = std::env::var("HYOK_TEST_PKCS11_TOKEN").unwrap();
    let uri = format!("pkcs11:token={token};object={}", unique("xks-hsm"));
    create(&uri).await;
    let dir = tempfile::tempdir().unwrap();
    let config = parse_config(
        dir.path(),
        &config_text(
            dir.path(),
            "",
            &format!("hsm = {{ uri = \"{uri}\" }}"),
            false,
        ),
    );
    let run = start(&config).await;
    let enc = round_trip(&run, "hsm", "pkcs11").await;
    assert!(enc.get("ciphertextMetadata").is_none());
    run.stop().await;
    // A restarted proxy (new key handles, new sessions) decrypts it.
    let run = start(&config).await;
    let aad = B64.encode(b"project=nile,department=marketing");
    let (st, v) = post(
        &client(),
        &Signer::default(),
        &run.endpoint("keys/hsm/decrypt"),
        &decrypt_body(&enc, Some(&aad)),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    run.stop().await;
    destroy(&uri).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openbao_transit_key_versions() {
    if !have(
        "openbao_transit_key_versions",
        &["VAULT_ADDR", "VAULT_TOKEN"],
    ) {
        return;
    }
    let uri = format!("vault-transit:{}", unique("xks-bao"));
    create(&uri).await;
    let dir = tempfile::tempdir().unwrap();
    let config = parse_config(
        dir.path(),
        &config_text(
            dir.path(),
            "",
            &format!("bao = {{ uri = \"{uri}\" }}"),
            false,
        ),
    );
    let run = start(&config).await;
    let v1 = round_trip(&run, "bao", "vault-transit").await;
    assert_eq!(v1["ciphertextMetadata"], json!(B64.encode(b"kv=1")));
    run.stop().await;

    // Rotate; a new proxy seals with version 2 and still opens version 1.
    let session = hyok::Session::open(hyok::SessionConfig::default()).unwrap();
    let (admin, parsed) = session.key_admin(&uri).unwrap();
    admin.rotate(&parsed).await.unwrap();
    let run = start(&config).await;
    let c = client();
    let s = Signer::default();
    let pt = B64.encode([5u8; 32]);
    let (st, v2) = post(
        &c,
        &s,
        &run.endpoint("keys/bao/encrypt"),
        &encrypt_body(&pt, None, true),
    )
    .await;
    assert_eq!(st, 200, "{v2}");
    assert_eq!(v2["ciphertextMetadata"], json!(B64.encode(b"kv=2")));
    let aad = B64.encode(b"project=nile,department=marketing");
    let (st, d) = post(
        &c,
        &s,
        &run.endpoint("keys/bao/decrypt"),
        &decrypt_body(&v1, Some(&aad)),
    )
    .await;
    assert_eq!(st, 200, "{d}");
    let (st, d) = post(
        &c,
        &s,
        &run.endpoint("keys/bao/decrypt"),
        &decrypt_body(&v2, None),
    )
    .await;
    assert_eq!((st, d["plaintext"].clone()), (200, json!(pt)));
    // The version is authenticated: claiming version 2 for a version-1 ciphertext fails.
    let mut wrong = decrypt_body(&v1, Some(&aad));
    wrong["ciphertextMetadata"] = json!(B64.encode(b"kv=2"));
    let (st, d) = post(&c, &s, &run.endpoint("keys/bao/decrypt"), &wrong).await;
    assert_eq!(
        (st, d["errorName"].as_str()),
        (400, Some("InvalidCiphertextException")),
        "{d}"
    );
    run.stop().await;
    destroy(&uri).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmip_key_in_the_key_manager() {
    if !have(
        "kmip_key_in_the_key_manager",
        &[
            "HYOK_KMIP_ADDR",
            "HYOK_KMIP_CA",
            "HYOK_KMIP_CERT",
            "HYOK_KMIP_KEY",
        ],
    ) {
        return;
    }
    let addr = std::env::var("HYOK_KMIP_ADDR").unwrap();
    let uri = format!("kmip://{addr}/{}", unique("xks-kmip"));
    create(&uri).await;
    let dir = tempfile::tempdir().unwrap();
    let config = parse_config(
        dir.path(),
        &config_text(
            dir.path(),
            "",
            &format!("km = {{ uri = \"{uri}\" }}"),
            false,
        ),
    );
    let run = start(&config).await;
    let enc = round_trip(&run, "km", "kmip").await;
    assert!(enc.get("ciphertextMetadata").is_none());
    // Plaintext of the largest size the specification allows is sealed in the server too.
    let big = B64.encode(vec![7u8; 4300]);
    let c = client();
    let s = Signer::default();
    let (st, e) = post(
        &c,
        &s,
        &run.endpoint("keys/km/encrypt"),
        &encrypt_body(&big, None, false),
    )
    .await;
    assert_eq!(st, 200, "{e}");
    run.stop().await;

    // A new proxy (new connections, the key looked up again) opens both.
    let run = start(&config).await;
    let aad = B64.encode(b"project=nile,department=marketing");
    for (body, want) in [
        (
            decrypt_body(&enc, Some(&aad)),
            B64.encode(b"Hello World! a 32-byte data key."),
        ),
        (decrypt_body(&e, None), big),
    ] {
        let (st, d) = post(&c, &s, &run.endpoint("keys/km/decrypt"), &body).await;
        assert_eq!((st, d["plaintext"].clone()), (200, json!(want)));
    }
    run.stop().await;

    // A key the server no longer has stops the start with a line naming it.
    destroy(&uri).await;
    let e = hyok_xks::bind(&config, hyok::aead::open_aead, None)
        .await
        .err()
        .expect("a destroyed KMIP key is refused at start")
        .to_string();
    assert!(e.contains("[xks.stores.main.keys] km"), "{e}");
}

/// A one-connection relay to `upstream` that changes one byte of the request body (the
/// first `Alice` becomes `Alicf`) after the client signed it.
async fn tamper_relay(upstream: std::net::SocketAddr) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = client.read(&mut buf).await.unwrap();
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                if req.len() >= end + 4 + len {
                    break;
                }
            }
            assert!(n > 0 && req.len() < 65_536);
        }
        let at = req.windows(5).position(|w| w == b"Alice").expect("marker");
        req[at + 4] = b'f';
        let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
        server.write_all(&req).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    });
    (format!("http://{addr}"), task)
}

fn curl(config_dir: &Path, url: &str, body: &str) -> (u16, serde_json::Value) {
    // The credentials go through a curl config file, not the command line.
    let cfg = config_dir.join("curl.cfg");
    private_file(&cfg, format!("user = \"{AKID}:{SECRET}\"\n").as_bytes());
    let out = Command::new("curl")
        .args(["-s", "--http1.1", "-K"])
        .arg(&cfg)
        .args([
            "--aws-sigv4",
            "aws:amz:us-east-1:kms-xks-proxy",
            "-X",
            "POST",
            "-H",
            "Content-Type:application/json",
            "--data",
            body,
            "-w",
            "\n%{http_code}",
            url,
        ])
        .output()
        .expect("curl (7.75 or later) is needed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (json_part, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(json_part).unwrap_or(json!({ "raw": json_part })),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_aws_sigv4_is_accepted_and_one_changed_byte_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let k = raw_key(dir.path(), "k");
    let config = parse_config(
        dir.path(),
        &config_text(dir.path(), "", &format!("k = {{ uri = \"{k}\" }}"), false),
    );
    let run = start(&config).await;
    let body =
        serde_json::to_string(&encrypt_body(&B64.encode(b"Hello World!"), None, true)).unwrap();
    let d = dir.path().to_owned();
    let url = run.endpoint("keys/k/encrypt");
    let b = body.clone();
    let (st, enc) = tokio::task::spawn_blocking(move || curl(&d, &url, &b))
        .await
        .unwrap();
    assert_eq!(st, 200, "{enc}");
    let dec = serde_json::to_string(&decrypt_body(&enc, None)).unwrap();
    let d = dir.path().to_owned();
    let url = run.endpoint("keys/k/decrypt");
    let (st, v) = tokio::task::spawn_blocking(move || curl(&d, &url, &dec))
        .await
        .unwrap();
    assert_eq!(
        (st, v["plaintext"].clone()),
        (200, json!(B64.encode(b"Hello World!")))
    );

    // The same request with one byte of the body changed in transit.
    let upstream: std::net::SocketAddr = run.url.trim_start_matches("http://").parse().unwrap();
    let (relay, task) = tamper_relay(upstream).await;
    let url = format!("{relay}/{PREFIX}/kms/xks/v1/keys/k/encrypt");
    let d = dir.path().to_owned();
    let (st, v) = tokio::task::spawn_blocking(move || curl(&d, &url, &body))
        .await
        .unwrap();
    assert_eq!(
        (st, v["errorName"].as_str()),
        (401, Some("AuthenticationFailedException")),
        "{v}"
    );
    task.await.unwrap();
    run.stop().await;
}
