//! The XKS Proxy API end to end over loopback HTTP(S): every endpoint, every error name of
//! the specification's table, SigV4 failures, both TLS modes, restarts, and the audit log.
//! Backends: a raw key file here; SoftHSM and OpenBao in `stores.rs`. Mock keys appear only
//! for the error paths a real store cannot be made to produce on demand (slow, broken).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::*;
use hyok::aead::{AeadKey, KeyInfo, KeyStoreError, Sealed, SealedRef, SharedAeadKey};
use hyok_xks::ErrorName;
use serde_json::json;
use zeroize::Zeroizing;

/// A key whose store hangs (announcing each call) or fails.
#[derive(Debug)]
struct MockKey {
    info: KeyInfo,
    hang: bool,
    entered: tokio::sync::mpsc::UnboundedSender<()>,
}

#[async_trait]
impl AeadKey for MockKey {
    fn info(&self) -> &KeyInfo {
        &self.info
    }
    async fn seal(&self, _: &[u8], _: &[u8], _: Option<u32>) -> Result<Sealed, KeyStoreError> {
        let _ = self.entered.send(());
        if self.hang {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Err(KeyStoreError::Backend {
            key: self.info.uri.to_string(),
            detail: "the HSM reported CKR_DEVICE_ERROR".into(),
        })
    }
    async fn open(&self, _: SealedRef<'_>, _: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        Err(KeyStoreError::Unavailable {
            key: self.info.uri.to_string(),
            detail: "down".into(),
        })
    }
    async fn probe(&self) -> Result<(), KeyStoreError> {
        Ok(())
    }
}

fn mock(uri: &str, hang: bool, entered: tokio::sync::mpsc::UnboundedSender<()>) -> SharedAeadKey {
    Arc::new(MockKey {
        info: KeyInfo {
            backend: "mock",
            uri: uri.into(),
            provider_id: "mock".into(),
            key_name: uri.into(),
        },
        hang,
        entered,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_round_trip_and_get_is_405() {
    let dir = tempfile::tempdir().unwrap();
    let k = raw_key(dir.path(), "k1");
    let text = config_text(dir.path(), "", &format!("k1 = {{ uri = \"{k}\" }}"), false);
    let config = parse_config(dir.path(), &text);

    // An audit log, to see every key use recorded with its request metadata.
    let keyfile = dir.path().join("audit-key.pem");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {} 2>/dev/null && chmod 600 {}",
            keyfile.display(),
            keyfile.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    let log_path = dir.path().join("audit.log");
    let settings = hyok::audit::AuditSettings {
        log: Some(log_path.clone()),
        key: Some(keyfile.display().to_string()),
        ..Default::default()
    };
    let log = settings.open().unwrap().unwrap();
    let sink = hyok::audit::LogSink::new(log.clone());

    let run = start_with(&config, hyok::aead::open_aead, Some(sink)).await;
    round_trip(&run, "k1", "raw-aes").await;

    // GET on each of the four endpoints: 405 with Allow: POST.
    let c = client();
    for rest in [
        "health",
        "keys/k1/metadata",
        "keys/k1/encrypt",
        "keys/k1/decrypt",
    ] {
        let resp = c.get(run.endpoint(rest)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 405, "{rest}");
        assert_eq!(resp.headers()["allow"], "POST");
    }
    // Without CDIV: no integrity value; unknown kmsOperation accepted.
    let mut body = encrypt_body(&B64.encode([9u8; 4300]), None, false);
    body["requestMetadata"]["kmsOperation"] = json!("BulkEncryptFromTheFuture");
    body["requestMetadata"]["someFutureField"] = json!("x");
    let (st, enc) = post(
        &c,
        &Signer::default(),
        &run.endpoint("keys/k1/encrypt"),
        &body,
    )
    .await;
    assert_eq!(st, 200, "{enc}");
    assert!(enc.get("ciphertextDataIntegrityValue").is_none());
    assert!(enc.get("ciphertextMetadata").is_none());
    assert_eq!(
        B64.decode(enc["ciphertext"].as_str().unwrap())
            .unwrap()
            .len(),
        4300
    );
    // The largest AAD the specification requires.
    let aad = B64.encode(vec![1u8; 8192]);
    let (st, enc) = post(
        &c,
        &Signer::default(),
        &run.endpoint("keys/k1/encrypt"),
        &encrypt_body(&B64.encode(b"k"), Some(&aad), false),
    )
    .await;
    assert_eq!(st, 200, "{enc}");
    let (st, dec) = post(
        &c,
        &Signer::default(),
        &run.endpoint("keys/k1/decrypt"),
        &decrypt_body(&enc, Some(&aad)),
    )
    .await;
    assert_eq!(
        (st, dec["plaintext"].as_str()),
        (200, Some(B64.encode(b"k").as_str()))
    );

    // A restart: the same configuration decrypts what the first proxy encrypted.
    run.stop().await;
    let run2 = start(&config).await;
    let (st, dec) = post(
        &c,
        &Signer::default(),
        &run2.endpoint("keys/k1/decrypt"),
        &decrypt_body(&enc, Some(&aad)),
    )
    .await;
    assert_eq!(st, 200, "{dec}");
    run2.stop().await;

    log.close().unwrap();
    let text = std::fs::read_to_string(&log_path).unwrap();
    let encrypts = text
        .lines()
        .filter(|l| l.contains("\"op\":\"encrypt\"") && l.contains("kmsRequestId="))
        .count();
    let decrypts = text
        .lines()
        .filter(|l| l.contains("\"op\":\"decrypt\"") && l.contains("kmsRequestId="))
        .count();
    assert!(
        encrypts >= 3 && decrypts >= 5,
        "encrypts {encrypts}, decrypts {decrypts}:\n{text}"
    );
    assert!(text.contains("arn:aws:iam::123456789012:user/Alice"));
    assert!(!text.contains(&B64.encode(b"Hello World! a 32-byte data key.")));
    // GetKeyMetadata and GetHealthStatus use no key but are in the audit log too, with their
    // request metadata (and, for health, what each backend answered).
    let service = |id: &str, detail: &str| {
        text.lines().any(|l| {
            l.contains("\"op\":\"service-request\"")
                && l.contains("\"outcome\":\"ok\"")
                && l.contains(&format!("kmsRequestId={id} "))
                && l.contains(&format!("\"detail\":\"{detail}\""))
        })
    };
    assert!(service("r1", "metadata"), "{text}");
    assert!(service("h1", "health: raw-aes ACTIVE"), "{text}");
    // So are requests refused before their body was read (the GETs above).
    let gets = text
        .lines()
        .filter(|l| l.contains("\"op\":\"service-request\"") && l.contains("GET is not allowed"))
        .count();
    assert_eq!(gets, 4, "{text}");
    // The records, these included, verify against the log's signing key.
    let signer =
        hyok::audit::PemSigner::from_pem(&std::fs::read_to_string(&keyfile).unwrap()).unwrap();
    let public = signer.public_key().unwrap();
    let report =
        hyok::audit::verify_file(&log_path, &hyok::audit::VerifyOptions::new(vec![&public]));
    assert!(report.is_ok(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_name_of_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let k = raw_key(dir.path(), "good");
    let keys = format!(
        "good = {{ uri = \"{k}\" }}\n\
         enc_only = {{ uri = \"{k}\", usage = [\"ENCRYPT\"] }}\n\
         dec_only = {{ uri = \"{k}\", usage = [\"DECRYPT\"] }}\n\
         neither = {{ uri = \"{k}\", usage = [] }}\n\
         off = {{ uri = \"{k}\", enabled = false }}\n\
         guarded = {{ uri = \"{k}\", aws_principal_arn = [\"arn:aws:iam::123456789012:role/app-*\"], kms_via_service = [\"ebs\"] }}\n\
         slow = {{ uri = \"mock:slow\" }}\n\
         broken = {{ uri = \"mock:broken\" }}"
    );
    let text = config_text(
        dir.path(),
        "max_in_flight = 1\nmax_queue = 0\nbackend_timeout_ms = 300",
        &keys,
        false,
    );
    let config = parse_config(dir.path(), &text);
    let (tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
    let open = move |uri: &str| match uri {
        "mock:slow" => Ok(mock(uri, true, tx.clone())),
        "mock:broken" => Ok(mock(uri, false, tx.clone())),
        u => hyok::aead::open_aead(u),
    };
    let run = start_with(&config, open, None).await;
    let c = client();
    let s = Signer::default();
    let mut seen = BTreeSet::new();
    let mut expect = |name: ErrorName, (status, v): (u16, serde_json::Value)| {
        assert_eq!(v["errorName"].as_str(), Some(name.as_str()), "{v}");
        assert_eq!(status, name.status(), "{v}");
        let msg = v["errorMessage"].as_str().unwrap();
        assert!(msg.len() < 512 && msg.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        seen.insert(name.as_str());
    };
    let pt = B64.encode(b"0123456789abcdef0123456789abcdef");
    let enc = |key: &str| {
        (
            run.endpoint(&format!("keys/{key}/encrypt")),
            encrypt_body(&pt, None, false),
        )
    };

    // ValidationException: not JSON; no requestMetadata; no kmsRequestId; ARN too long.
    let url = run.endpoint("keys/good/encrypt");
    let body = b"{not json".to_vec();
    expect(
        ErrorName::Validation,
        send(
            &c,
            reqwest::Method::POST,
            &url,
            &s.headers(&url, &body),
            body,
        )
        .await,
    );
    expect(
        ErrorName::Validation,
        post(
            &c,
            &s,
            &url,
            &json!({"plaintext": pt, "encryptionAlgorithm": "AES_GCM"}),
        )
        .await,
    );
    let mut b = encrypt_body(&pt, None, false);
    b["requestMetadata"]
        .as_object_mut()
        .unwrap()
        .remove("kmsRequestId");
    expect(ErrorName::Validation, post(&c, &s, &url, &b).await);
    let mut b = encrypt_body(&pt, None, false);
    b["requestMetadata"]["awsPrincipalArn"] = json!(format!(
        "arn:aws:iam::123456789012:user/{}",
        "a".repeat(2048)
    ));
    expect(ErrorName::Validation, post(&c, &s, &url, &b).await);
    // ... but 2,048 characters are fine.
    let mut b = encrypt_body(&pt, None, false);
    let arn = "arn:aws:iam::123456789012:user/";
    b["requestMetadata"]["awsPrincipalArn"] =
        json!(format!("{arn}{}", "a".repeat(2048 - arn.len())));
    assert_eq!(post(&c, &s, &url, &b).await.0, 200);

    // InvalidStateException: a disabled key (its metadata says DISABLED).
    let (u, b) = enc("off");
    expect(ErrorName::InvalidState, post(&c, &s, &u, &b).await);
    let (st, v) = post(
        &c,
        &s,
        &run.endpoint("keys/off/metadata"),
        &json!({"requestMetadata": meta("DescribeKey")}),
    )
    .await;
    assert_eq!((st, v["keyStatus"].as_str()), (200, Some("DISABLED")));

    // InvalidCiphertextException: a short tag, a ciphertextMetadata over 20 bytes.
    let (st, good) = post(&c, &s, &url, &encrypt_body(&pt, None, false)).await;
    assert_eq!(st, 200);
    let mut b = decrypt_body(&good, None);
    b["authenticationTag"] = json!(B64.encode([0u8; 12]));
    expect(
        ErrorName::InvalidCiphertext,
        post(&c, &s, &run.endpoint("keys/good/decrypt"), &b).await,
    );
    let mut b = decrypt_body(&good, None);
    b["ciphertextMetadata"] = json!(B64.encode([0u8; 21]));
    expect(
        ErrorName::InvalidCiphertext,
        post(&c, &s, &run.endpoint("keys/good/decrypt"), &b).await,
    );

    // InvalidKeyUsageException: encrypt with a decrypt-only key, decrypt with an
    // encrypt-only one, either with a key of no usage (whose metadata lists none).
    let (u, b) = enc("dec_only");
    expect(ErrorName::InvalidKeyUsage, post(&c, &s, &u, &b).await);
    expect(
        ErrorName::InvalidKeyUsage,
        post(
            &c,
            &s,
            &run.endpoint("keys/enc_only/decrypt"),
            &decrypt_body(&good, None),
        )
        .await,
    );
    let (u, b) = enc("neither");
    expect(ErrorName::InvalidKeyUsage, post(&c, &s, &u, &b).await);
    let (st, v) = post(
        &c,
        &s,
        &run.endpoint("keys/neither/metadata"),
        &json!({"requestMetadata": meta("CreateKey")}),
    )
    .await;
    assert_eq!((st, v["keyUsage"].clone()), (200, json!([])));
    // The shared key material: dec_only opens what good sealed.
    let (st, _) = post(
        &c,
        &s,
        &run.endpoint("keys/dec_only/decrypt"),
        &decrypt_body(&good, None),
    )
    .await;
    assert_eq!(st, 200);

    // AuthenticationFailedException: unsigned, and signed with a wrong secret.
    let body = serde_json::to_vec(&encrypt_body(&pt, None, false)).unwrap();
    expect(
        ErrorName::AuthenticationFailed,
        send(&c, reqwest::Method::POST, &url, &[], body).await,
    );
    let wrong = Signer {
        secret: SECRET2.into(),
        ..Signer::default()
    };
    expect(
        ErrorName::AuthenticationFailed,
        post(&c, &wrong, &url, &encrypt_body(&pt, None, false)).await,
    );

    // AccessDeniedException: principal not in the allow-list; via service missing.
    let (u, b) = enc("guarded");
    expect(ErrorName::AccessDenied, post(&c, &s, &u, &b).await);
    let mut b = encrypt_body(&pt, None, false);
    b["requestMetadata"]["awsPrincipalArn"] = json!("arn:aws:iam::123456789012:role/app-web");
    assert_eq!(post(&c, &s, &u, &b).await.0, 200);
    b["requestMetadata"]
        .as_object_mut()
        .unwrap()
        .remove("kmsViaService");
    expect(ErrorName::AccessDenied, post(&c, &s, &u, &b).await);

    // KeyNotFoundException.
    let (u, b) = enc("nope");
    expect(ErrorName::KeyNotFound, post(&c, &s, &u, &b).await);

    // InvalidUriPathException: unknown prefix, unknown operation, query string.
    for bad in [
        format!("{}/other/kms/xks/v1/keys/good/encrypt", run.url),
        run.endpoint("keys/good/sign"),
        format!("{}?x=1", run.endpoint("keys/good/encrypt")),
    ] {
        expect(
            ErrorName::InvalidUriPath,
            post(&c, &s, &bad, &encrypt_body(&pt, None, false)).await,
        );
    }

    // UnsupportedOperationException: another algorithm; a plaintext over this proxy's size.
    let mut b = encrypt_body(&pt, None, false);
    b["encryptionAlgorithm"] = json!("RSAES_OAEP_SHA_256");
    expect(
        ErrorName::UnsupportedOperation,
        post(&c, &s, &url, &b).await,
    );
    expect(
        ErrorName::UnsupportedOperation,
        post(
            &c,
            &s,
            &url,
            &encrypt_body(&B64.encode(vec![0u8; 9000]), None, false),
        )
        .await,
    );

    // InternalException: the store fails.
    let (u, b) = enc("broken");
    expect(ErrorName::Internal, post(&c, &s, &u, &b).await);
    assert!(entered.recv().await.is_some());

    // DependencyTimeoutException and ThrottlingException: with one slot and no queue, a
    // request arriving while the slow store holds the slot is throttled; the slow one times
    // out.
    let (u, b) = enc("slow");
    let c2 = c.clone();
    let s2 = s.clone();
    let first = tokio::spawn(async move { post(&c2, &s2, &u, &b).await });
    assert!(entered.recv().await.is_some());
    let (u, b) = enc("good");
    expect(ErrorName::Throttling, post(&c, &s, &u, &b).await);
    expect(ErrorName::DependencyTimeout, first.await.unwrap());

    let all: BTreeSet<&str> = ErrorName::ALL.iter().map(|n| n.as_str()).collect();
    assert_eq!(seen, all);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv4_failures_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let k = raw_key(dir.path(), "k");
    let text = config_text(dir.path(), "", &format!("k = {{ uri = \"{k}\" }}"), true);
    let config = parse_config(dir.path(), &text);
    let run = start(&config).await;
    let c = client();
    let url = run.endpoint("keys/k/metadata");
    let body = serde_json::to_vec(&json!({"requestMetadata": meta("DescribeKey")})).unwrap();
    let status = |r: (u16, serde_json::Value)| (r.0, r.1["errorName"].as_str().map(str::to_owned));
    let fail = (401, Some("AuthenticationFailedException".to_owned()));

    let ok = Signer::default();
    assert_eq!(
        status(
            send(
                &c,
                reqwest::Method::POST,
                &url,
                &ok.headers(&url, &body),
                body.clone()
            )
            .await
        )
        .0,
        200
    );
    // The second credential pair (rotation).
    let second = Signer {
        akid: AKID2.into(),
        secret: SECRET2.into(),
        ..Signer::default()
    };
    assert_eq!(
        status(
            send(
                &c,
                reqwest::Method::POST,
                &url,
                &second.headers(&url, &body),
                body.clone()
            )
            .await
        )
        .0,
        200
    );
    // The second access key id with the first secret.
    let mixed = Signer {
        akid: AKID2.into(),
        ..Signer::default()
    };
    let now = SystemTime::now();
    type Case<'a> = (&'a str, Vec<(String, String)>, Vec<u8>);
    let cases: Vec<Case> = vec![
        (
            "wrong secret",
            Signer {
                secret: "x".repeat(44),
                ..Signer::default()
            }
            .headers(&url, &body),
            body.clone(),
        ),
        ("mixed pair", mixed.headers(&url, &body), body.clone()),
        (
            "unknown access key",
            Signer {
                akid: "AKIAUNKNOWNUNKNOWN2345".into(),
                ..Signer::default()
            }
            .headers(&url, &body),
            body.clone(),
        ),
        (
            "stale date",
            Signer {
                time: now - Duration::from_secs(6 * 60),
                ..Signer::default()
            }
            .headers(&url, &body),
            body.clone(),
        ),
        (
            "future date",
            Signer {
                time: now + Duration::from_secs(6 * 60),
                ..Signer::default()
            }
            .headers(&url, &body),
            body.clone(),
        ),
        (
            "other region",
            Signer {
                region: "eu-west-1".into(),
                ..Signer::default()
            }
            .headers(&url, &body),
            body.clone(),
        ),
        (
            "other service",
            Signer {
                service: "kms".into(),
                ..Signer::default()
            }
            .headers(&url, &body),
            body.clone(),
        ),
        ("body changed", ok.headers(&url, &body), {
            let mut b = body.clone();
            let i = b.iter().position(|c| *c == b'A').unwrap();
            b[i] = b'B';
            b
        }),
    ];
    for (what, headers, b) in cases {
        assert_eq!(
            status(send(&c, reqwest::Method::POST, &url, &headers, b).await),
            fail,
            "{what}"
        );
    }
    // A signed header the request does not carry.
    let extra = Signer {
        extra: vec![("x-amz-meta-extra".into(), "1".into())],
        ..Signer::default()
    };
    let headers: Vec<_> = extra
        .headers(&url, &body)
        .into_iter()
        .filter(|(k, _)| k != "x-amz-meta-extra")
        .collect();
    assert_eq!(
        status(send(&c, reqwest::Method::POST, &url, &headers, body.clone()).await),
        fail,
        "absent signed header"
    );
    // Rotation without a restart: a proxy started with the first pair only refuses the
    // second until its credentials are reloaded.
    let one = parse_config(
        dir.path(),
        &config_text(dir.path(), "", &format!("k = {{ uri = \"{k}\" }}"), false),
    );
    let run1 = start(&one).await;
    let url1 = run1.endpoint("keys/k/metadata");
    assert_eq!(
        status(
            send(
                &c,
                reqwest::Method::POST,
                &url1,
                &second.headers(&url1, &body),
                body.clone()
            )
            .await
        ),
        fail
    );
    // (`start` bound a new proxy; reach its Proxy through a fresh bind to reload.)
    run1.stop().await;
    let bound = hyok_xks::bind(&one, hyok::aead::open_aead, None)
        .await
        .unwrap();
    assert_eq!(
        bound.proxy.reload_credentials(&config),
        vec!["main".to_owned()]
    );
    let proxy_url = bound.url();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.serve(async move {
        let _ = rx.await;
    }));
    let url2 = format!("{proxy_url}/{PREFIX}/kms/xks/v1/keys/k/metadata");
    assert_eq!(
        status(
            send(
                &c,
                reqwest::Method::POST,
                &url2,
                &second.headers(&url2, &body),
                body.clone()
            )
            .await
        )
        .0,
        200
    );
    let _ = tx.send(());
    let _ = task.await;
    // ... and with it the same signature verifies (the request's own signed-header list).
    let headers = extra.headers(&url, &body);
    assert_eq!(
        status(send(&c, reqwest::Method::POST, &url, &headers, body.clone()).await).0,
        200
    );
    // x-amz-date left out of SignedHeaders.
    let headers: Vec<_> = ok
        .headers(&url, &body)
        .into_iter()
        .map(|(k, v)| {
            if k == "authorization" {
                (k, v.replace(";x-amz-date", ""))
            } else {
                (k, v)
            }
        })
        .collect();
    assert_eq!(
        status(send(&c, reqwest::Method::POST, &url, &headers, body.clone()).await),
        fail,
        "x-amz-date not signed"
    );
    // A changed value of a signed header.
    let headers: Vec<_> = ok
        .headers(&url, &body)
        .into_iter()
        .map(|(k, v)| {
            if k == "content-type" {
                (k, "application/json; x=1".into())
            } else {
                (k, v)
            }
        })
        .collect();
    assert_eq!(
        status(send(&c, reqwest::Method::POST, &url, &headers, body.clone()).await),
        fail,
        "signed header changed"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let k = raw_key(dir.path(), "k");
    let keys = format!("k = {{ uri = \"{k}\" }}");
    let ca_pem = std::fs::read(&certs.ca).unwrap();
    let ca = reqwest::Certificate::from_pem(&ca_pem).unwrap();
    let health =
        json!({"requestMetadata": {"kmsRequestId": "h", "kmsOperation": "KmsHealthCheck"}});

    // Server TLS only.
    let tls = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        certs.server_cert.display(),
        certs.server_key.display()
    );
    let config = parse_config(dir.path(), &config_text(dir.path(), &tls, &keys, false));
    let run = start(&config).await;
    assert!(run.url.starts_with("https://"));
    let c = reqwest::Client::builder()
        .tls_certs_only([ca.clone()])
        .build()
        .unwrap();
    let (st, v) = post(&c, &Signer::default(), &run.endpoint("health"), &health).await;
    assert_eq!(st, 200, "{v}");
    run.stop().await;

    // Mutual TLS.
    let mtls = format!("{tls}\nclient_ca = \"{}\"", certs.ca.display());
    let config = parse_config(dir.path(), &config_text(dir.path(), &mtls, &keys, false));
    let run = start(&config).await;
    let url = run.endpoint("health");
    let body = serde_json::to_vec(&health).unwrap();
    let headers = Signer::default().headers(&url, &body);
    let attempt = |identity: Option<&std::path::Path>| {
        let mut b = reqwest::Client::builder().tls_certs_only([ca.clone()]);
        if let Some(p) = identity {
            b = b.identity(reqwest::Identity::from_pem(&std::fs::read(p).unwrap()).unwrap());
        }
        let client = b.build().unwrap();
        let mut req = client.post(&url).body(body.clone());
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        async move {
            match req.send().await {
                Ok(r) => Some(r.status().as_u16()),
                Err(_) => None,
            }
        }
    };
    assert_eq!(attempt(Some(&certs.client_pem)).await, Some(200));
    assert_eq!(attempt(None).await, None, "no client certificate");
    assert_eq!(
        attempt(Some(&certs.other_client_pem)).await,
        None,
        "client certificate from another CA"
    );
    assert_eq!(
        attempt(Some(&certs.wrong_cn_pem)).await,
        None,
        "right CA, other subject name"
    );
    let cn = hyok_xks::client_auth::subject_common_names(&first_der(
        &std::fs::read(&certs.client_pem).unwrap(),
    ));
    assert_eq!(cn, Some(vec!["cks.kms.us-east-1.amazonaws.com".to_owned()]));
    run.stop().await;
}

/// The first certificate of a PEM bundle, as DER.
fn first_der(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    B64.decode(b64).unwrap()
}

#[test]
fn configuration_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let k = raw_key(dir.path(), "k");
    let good = config_text(dir.path(), "", &format!("k = {{ uri = \"{k}\" }}"), false);
    let parse = |text: &str| {
        let table: toml::Table = toml::from_str(text).unwrap();
        let xks = table.get("xks").and_then(|v| v.as_table()).cloned();
        hyok_xks::XksConfig::from_table(xks.as_ref(), Some(dir.path()), None).map(|_| ())
    };
    assert!(parse(&good).is_ok());
    let cases = [
        (
            good.replace("127.0.0.1:0", "0.0.0.0:0"),
            "refusing plain HTTP",
        ),
        (
            good.replace(AKID, "lowercase-not-allowed-here"),
            "access_key_id",
        ),
        (good.replace("test/prefix", "bad prefix!"), "uri_prefix"),
        (good.replace("k = {", "\"k/1\" = {"), "key id"),
        (
            good.replace("uri = ", "usage = [\"SIGN\"], uri = "),
            "usage",
        ),
        (
            good.replace("region = ", "colour = \"blue\"\nregion = "),
            "unknown field",
        ),
    ];
    for (text, want) in cases {
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains(want) && !e.contains('\n'), "{want}: {e}");
    }
    // A secret file readable by everyone is refused; a short secret too.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.path().join("xks.secret"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert!(parse(&good)
        .unwrap_err()
        .to_string()
        .contains("readable by every user"));
    private_file(&dir.path().join("xks.secret"), b"short");
    let table: toml::Table = toml::from_str(&good.replace(&format!("{SECRET}\n"), "")).unwrap();
    let xks = table.get("xks").and_then(|v| v.as_table()).cloned();
    let e = hyok_xks::XksConfig::from_table(xks.as_ref(), Some(dir.path()), None).unwrap_err();
    assert!(e.to_string().contains("43 to 64"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_that_cannot_seal_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.key");
    private_file(&small, &[1u8; 16]);
    for (uri, want) in [
        (
            format!("raw-aes:xks/small?file={}", small.display()),
            "AES-256",
        ),
        (
            "raw-rsa:xks/r?public=/nonexistent.pem".to_owned(),
            "cannot encrypt with AES-256-GCM",
        ),
    ] {
        let text = config_text(dir.path(), "", &format!("k = {{ uri = \"{uri}\" }}"), false);
        let config = parse_config(dir.path(), &text);
        let e = match hyok_xks::bind(&config, hyok::aead::open_aead, None).await {
            Ok(_) => panic!("{uri} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains(want) && e.contains("[xks.stores.main.keys] k"),
            "{uri}: {e}"
        );
    }
}

/// Read one HTTP/1.1 answer off `s`: its status (None if the connection closed first) and
/// whether it said `Connection: close`.
async fn read_answer(s: &mut tokio::net::TcpStream) -> (Option<u16>, bool) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return (None, false),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head.get(9..12).and_then(|c| c.parse().ok());
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return (None, false),
        }
    }
    (status, head.contains("\r\nconnection: close\r\n"))
}

/// A request answered before its body was read (a wrong path, a method other than POST, a
/// body over the limit), whose body is sent only after the answer, then a request on the
/// same connection: that request is answered, or the first answer said `Connection: close`
/// and the connection ends there. Never the leftover body read as a request (a bare 400),
/// nor a connection dropped without saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_leaves_the_connection_clean() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let k = raw_key(dir.path(), "k1");
    let text = config_text(dir.path(), "", &format!("k1 = {{ uri = \"{k}\" }}"), false);
    let run = start(&parse_config(dir.path(), &text)).await;
    let addr = run.url.trim_start_matches("http://").to_owned();
    let health = format!("/{PREFIX}/kms/xks/v1/health");
    let cases = [
        ("POST", format!("/{PREFIX}/kms/xks/v1/nowhere"), 700, 404),
        ("PUT", health.clone(), 700, 405),
        ("POST", health.clone(), 128 * 1024, 501),
        // Nothing left unread: the connection is kept.
        ("GET", health.clone(), 0, 405),
    ];
    for (method, path, size, status) in cases {
        for round in 0..3 {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
            );
            s.write_all(head.as_bytes()).await.unwrap();
            if size > 64 * 1024 {
                // Over the limit: the part the server reads before it answers.
                let _ = s.write_all(&vec![b'x'; 64 * 1024 + 1]).await;
            }
            let (first, closes) = read_answer(&mut s).await;
            assert_eq!(
                first,
                Some(status),
                "{method} {path} ({size} bytes), round {round}"
            );
            assert!(
                size > 0 || !closes,
                "a request read whole keeps its connection"
            );
            let rest = if size > 64 * 1024 {
                size - 64 * 1024 - 1
            } else {
                size
            };
            let next = format!("GET {health} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            let mut bytes = vec![b'x'; rest];
            bytes.extend_from_slice(next.as_bytes());
            let sent = s.write_all(&bytes).await;
            let (second, _) = read_answer(&mut s).await;
            if closes {
                assert_eq!(second, None, "an answer with Connection: close, then more");
            } else {
                assert!(sent.is_ok());
                assert_eq!(
                    second,
                    Some(405),
                    "after {method} {path} ({size} bytes) answered {status} without \
                     Connection: close, the next request on the connection (round {round})"
                );
            }
        }
    }
    run.stop().await;
}

/// A connection that sends nothing, or headers that never end, is closed after the
/// handshake time (10 s), so such clients cannot hold the proxy's connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_stall_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let k = raw_key(dir.path(), "k1");
    let text = config_text(dir.path(), "", &format!("k1 = {{ uri = \"{k}\" }}"), false);
    let run = start(&parse_config(dir.path(), &text)).await;
    let addr = run.url.trim_start_matches("http://").to_owned();
    let silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut partial = tokio::net::TcpStream::connect(&addr).await.unwrap();
    partial
        .write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ").as_bytes())
        .await
        .unwrap();
    // HTTP/2 (prior knowledge) that opens no stream: GOAWAY after the idle time, then closed
    // (the client never acknowledges the GOAWAY's PING). Before, it stayed open for good.
    let mut h2 = tokio::net::TcpStream::connect(&addr).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), h2.read_to_end(&mut got))
        .await
        .expect("the proxy still holds an idle HTTP/2 connection after 60 s")
        .ok();
    let mut types = Vec::new();
    let mut at = 0;
    while at + 9 <= got.len() {
        types.push(got[at + 3]);
        at += 9
            + usize::from(got[at]) * 65536
            + usize::from(got[at + 1]) * 256
            + usize::from(got[at + 2]);
    }
    assert!(
        types.contains(&7),
        "a GOAWAY frame before the close: {types:?}"
    );
    for mut s in [silent, partial] {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf))
            .await
            .expect("the proxy still holds a stalled connection after 60 s");
        // Closed (EOF or reset), possibly after an error answer to the unfinished headers.
        if let Ok(n) = read {
            let rest = if n == 0 {
                0
            } else {
                tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf))
                    .await
                    .expect("closed after its answer")
                    .unwrap_or(0)
            };
            assert_eq!(rest, 0);
        }
    }
    run.stop().await;
}
