//! The `[policy]` engine in the XKS proxy: Encrypt and Decrypt are decided per AWS caller,
//! external key and via-service before the key store is called (counted), a denial is the
//! specification's AccessDeniedException naming the policy, and an allowed request works.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::*;
use hyok::aead::{AeadKey, KeyInfo, KeyStoreError, Sealed, SealedRef, SharedAeadKey};
use hyok::policy::{DefaultDecision, Engine, Facts, Guard, Principal};
use serde_json::json;
use zeroize::Zeroizing;

/// A real key (raw AES file) that counts the calls made to its store.
#[derive(Debug)]
struct Counting {
    inner: SharedAeadKey,
    calls: Arc<AtomicUsize>,
}

#[async_trait]
impl AeadKey for Counting {
    fn info(&self) -> &KeyInfo {
        self.inner.info()
    }
    async fn seal(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        version: Option<u32>,
    ) -> Result<Sealed, KeyStoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.seal(plaintext, aad, version).await
    }
    async fn open(
        &self,
        sealed: SealedRef<'_>,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.open(sealed, aad).await
    }
    async fn probe(&self) -> Result<(), KeyStoreError> {
        self.inner.probe().await
    }
}

/// Key `foo` serves only S3 for the account of `meta()`'s caller (123456789012).
const POLICY: &str = r#"
@id("xks-callers")
permit(principal is Hyok::Caller, action in [Hyok::Action::"xks-encrypt", Hyok::Action::"xks-decrypt"], resource);

@id("foo-serves-s3-of-123456789012")
forbid(principal, action in [Hyok::Action::"xks-encrypt", Hyok::Action::"xks-decrypt"], resource == Hyok::Key::"foo")
unless { principal.account == "123456789012" && context.via_service == "s3" };
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xks_requests_are_decided_per_caller_before_the_key_store() {
    let dir = tempfile::tempdir().unwrap();
    let k = raw_key(dir.path(), "foo");
    let text = config_text(dir.path(), "", &format!("foo = {{ uri = \"{k}\" }}"), false);
    let config = parse_config(dir.path(), &text);
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let open = move |uri: &str| -> Result<SharedAeadKey, KeyStoreError> {
        Ok(Arc::new(Counting {
            inner: hyok::aead::open_aead(uri)?,
            calls: counter.clone(),
        }))
    };
    let mut bound = hyok_xks::bind(&config, open, None).await.unwrap();
    let engine = Engine::from_texts(
        &[("xks.cedar".to_owned(), POLICY)],
        None,
        DefaultDecision::Deny,
        None,
    )
    .unwrap();
    let guard = Guard::new(
        Arc::new(engine),
        Principal::Identity("xks".into()),
        Facts::default(),
        None,
    );
    Arc::get_mut(&mut bound.proxy)
        .unwrap()
        .set_policy(Some(guard.via("xks")));
    let url = bound.url();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.serve(async move {
        let _ = rx.await;
    }));
    let run = Running {
        url,
        stop: Some(tx),
        task,
    };
    let c = client();
    let s = Signer::default();
    let u = run.endpoint("keys/foo/encrypt");

    // Via EBS: denied before the key store, with the spec's error and the policy's id.
    let plaintext = B64.encode(b"a data key for S3 only");
    let body = encrypt_body(&plaintext, None, false);
    let before = calls.load(Ordering::SeqCst);
    let (st, v) = post(&c, &s, &u, &body).await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(v["errorName"], "AccessDeniedException", "{v}");
    let msg = v["errorMessage"].as_str().unwrap();
    assert!(msg.contains("foo-serves-s3-of-123456789012"), "{msg}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before,
        "the key store was called"
    );

    // Via S3 from the right account: encrypted by the key store, and decrypts again.
    let mut body = encrypt_body(&plaintext, None, false);
    body["requestMetadata"]["kmsViaService"] = json!("s3");
    let (st, enc) = post(&c, &s, &u, &body).await;
    assert_eq!(st, 200, "{enc}");
    assert!(calls.load(Ordering::SeqCst) > before);
    let mut dec = decrypt_body(&enc, None);
    dec["requestMetadata"]["kmsViaService"] = json!("s3");
    let (st, out) = post(&c, &s, &run.endpoint("keys/foo/decrypt"), &dec).await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(out["plaintext"], plaintext);

    // Another account, via S3: its decrypt is refused before the key store.
    dec["requestMetadata"]["awsPrincipalArn"] = json!("arn:aws:iam::999999999999:root");
    let before = calls.load(Ordering::SeqCst);
    let (st, v) = post(&c, &s, &run.endpoint("keys/foo/decrypt"), &dec).await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(v["errorName"], "AccessDeniedException");
    assert_eq!(calls.load(Ordering::SeqCst), before);
    run.stop().await;
}
