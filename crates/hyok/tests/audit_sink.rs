//! The key manager hands every key use to the log through the facade's `LogSink`, data-key
//! cache hits included, and refuses key operations when the log cannot record them.

use std::path::PathBuf;
use std::sync::Arc;

use hyok::audit::{
    parse_line, verify_file, AuditLog, Line, LogConfig, LogSink, MessageEvent, MessageOp, Op,
    Outcome, PemSigner, PublicKey, Record, SignatureAlgorithm, VerifyOptions,
};
use hyok::{AlgorithmSuite, EncryptionContext};
use hyok_keystore::cache::{CacheLimits, MemoryCache};
use hyok_keystore::observe::{context_hash, edk_hash};
use hyok_keystore::raw::RawAesKey;
use hyok_keystore::{KeyManager, Keyring, OpLabel};

/// A temporary log with its signing key.
struct TestLog {
    _dir: tempfile::TempDir,
    path: PathBuf,
    signer: Arc<PemSigner>,
    public: PublicKey,
}

impl TestLog {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let signer = Arc::new(PemSigner::generate(SignatureAlgorithm::EcdsaP256Sha256).unwrap());
        let public = signer.public_key().unwrap();
        Self {
            _dir: dir,
            path,
            signer,
            public,
        }
    }

    fn open(&self) -> Arc<AuditLog> {
        Arc::new(AuditLog::open(LogConfig::new(&self.path), self.signer.clone()).unwrap())
    }

    fn lines(&self) -> Vec<Vec<u8>> {
        std::fs::read(&self.path)
            .unwrap()
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn verify(&self) -> bool {
        verify_file(&self.path, &VerifyOptions::new(vec![&self.public])).is_ok()
    }
}

fn is_record(line: &[u8]) -> bool {
    matches!(parse_line(line), Ok(Line::Record(_)))
}

const KEY_BYTES: [u8; 32] = [0x5a; 32];

fn records(t: &TestLog) -> Vec<Record> {
    t.lines()
        .iter()
        .filter(|l| is_record(l))
        .map(|l| match parse_line(l) {
            Ok(Line::Record(r)) => r,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn every_key_use_and_cache_hit_is_recorded() {
    let t = TestLog::new();
    let log = t.open();
    let key = RawAesKey::new("audit-ns", "key-1", &KEY_BYTES).unwrap();
    let manager = KeyManager::new(Keyring::new(vec![Arc::new(key)]).unwrap())
        .with_cache(Arc::new(MemoryCache::new(CacheLimits::default()).unwrap()))
        .with_audit(Arc::new(LogSink::new(log.clone())));
    let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
    let ctx: EncryptionContext = [("tenant", "a")].into_iter().collect();
    let label = OpLabel {
        message_id: Some(vec![1; 32]),
        subject: Some("reports/q1.pdf".into()),
    };
    let (dk1, edks) = manager
        .encryption_materials(suite, &ctx, 100, &label)
        .await
        .unwrap();
    let (dk2, _) = manager
        .encryption_materials(suite, &ctx, 100, &label)
        .await
        .unwrap();
    assert_eq!(dk1.expose(), dk2.expose(), "the second call is a cache hit");
    let back = manager
        .decrypt_data_key(suite, &edks, &ctx, &label)
        .await
        .unwrap();
    assert_eq!(back.expose(), dk1.expose());
    let _ = manager
        .decrypt_data_key(suite, &edks, &ctx, &label)
        .await
        .unwrap();
    // Wrong context: the store refuses, and that is recorded too.
    let other: EncryptionContext = [("tenant", "b")].into_iter().collect();
    assert!(manager
        .decrypt_data_key(suite, &edks, &other, &label)
        .await
        .is_err());
    manager.record_message(MessageEvent {
        op: MessageOp::Encrypt,
        keys: vec!["raw-aes:audit-ns/key-1".into()],
        suite: Some(suite),
        context_sha256: Some(context_hash(&ctx)),
        message_id: Some(vec![1; 32]),
        subject: Some("reports/q1.pdf".into()),
        bytes: Some(100),
        error: None,
        duration: Default::default(),
    });
    log.close().unwrap();

    let recs = records(&t);
    let ops: Vec<Op> = recs.iter().map(|r| r.op).collect();
    assert_eq!(
        ops,
        [
            Op::Generate,
            Op::CacheHitEncrypt,
            Op::Unwrap,
            Op::CacheHitDecrypt,
            Op::Unwrap,
            Op::Encrypt
        ]
    );
    let edk = edk_hash(&edks[0]);
    for r in &recs[..4] {
        assert_eq!(r.key.as_deref(), Some("raw-aes:audit-ns/key-1"));
        assert_eq!(r.backend.as_deref(), Some("raw-aes"));
        assert_eq!(r.suite.as_deref(), Some("0x0478"));
        assert_eq!(r.ctx_sha256.unwrap().0, context_hash(&ctx));
        assert_eq!(r.edk_sha256.unwrap().0, edk);
        assert_eq!(r.message_id.as_ref().unwrap().0, vec![1; 32]);
        assert_eq!(r.subject.as_deref(), Some("reports/q1.pdf"));
        assert_eq!(r.outcome, Outcome::Ok);
    }
    assert_eq!(recs[4].outcome, Outcome::Error);
    assert_eq!(recs[4].error.as_deref(), Some("unwrap-failed"));
    assert_eq!(recs[5].keys, ["raw-aes:audit-ns/key-1"]);
    assert_eq!(recs[5].bytes, Some(100));

    // No key material anywhere in the log: not the wrapping key, not the data key.
    let text = std::fs::read(&t.path).unwrap();
    for secret in [&KEY_BYTES[..], dk1.expose()] {
        for needle in [
            hex::encode(secret),
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, secret),
        ] {
            assert!(
                !text.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "key material in the log"
            );
        }
    }
    assert!(t.verify());
}

#[tokio::test]
async fn key_operations_are_refused_the_moment_the_log_cannot_record() {
    let t = TestLog::new();
    let log = t.open();
    let key = RawAesKey::new("audit-ns", "key-1", &KEY_BYTES).unwrap();
    // With a cache: the next call would be a cache hit, which must be refused too.
    let manager = KeyManager::new(Keyring::new(vec![Arc::new(key)]).unwrap())
        .with_cache(Arc::new(MemoryCache::new(CacheLimits::default()).unwrap()))
        .with_audit(Arc::new(LogSink::new(log.clone())));
    let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
    let ctx = EncryptionContext::new();
    manager
        .encryption_materials(suite, &ctx, 1, &OpLabel::default())
        .await
        .unwrap();
    log.flush().unwrap();
    let written = records(&t).len();
    // The log file is replaced by something that cannot be appended to: the very next
    // key use is refused, before the writer has even tried to write.
    std::fs::remove_file(&t.path).unwrap();
    std::fs::create_dir(&t.path).unwrap();
    for _ in 0..2 {
        let refused = manager
            .encryption_materials(suite, &ctx, 1, &OpLabel::default())
            .await
            .unwrap_err();
        assert_eq!(refused.class(), "audit", "{refused}");
        assert!(
            refused.to_string().contains("audit log unavailable"),
            "{refused}"
        );
    }
    assert!(
        log.close().is_err(),
        "the exit checkpoint cannot be written"
    );
    std::fs::remove_dir(&t.path).unwrap();
    assert_eq!(written, 1);
}

#[tokio::test]
async fn a_decrypt_cache_hit_names_the_key_that_unwrapped() {
    let t = TestLog::new();
    let log = t.open();
    let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
    let ctx = EncryptionContext::new();
    let second = || Arc::new(RawAesKey::new("audit-ns", "key-2", &[0x33; 32]).unwrap());
    // Written for the second key alone.
    let writer = KeyManager::new(Keyring::new(vec![second()]).unwrap());
    let (_, edks) = writer
        .encryption_materials(suite, &ctx, 1, &OpLabel::default())
        .await
        .unwrap();
    let first = Arc::new(RawAesKey::new("audit-ns", "key-1", &KEY_BYTES).unwrap());
    let reader = KeyManager::new(Keyring::new(vec![first, second()]).unwrap())
        .with_cache(Arc::new(MemoryCache::new(CacheLimits::default()).unwrap()))
        .with_audit(Arc::new(LogSink::new(log.clone())));
    for _ in 0..2 {
        reader
            .decrypt_data_key(suite, &edks, &ctx, &OpLabel::default())
            .await
            .unwrap();
    }
    log.close().unwrap();
    let recs = records(&t);
    assert_eq!(
        recs.iter().map(|r| r.op).collect::<Vec<_>>(),
        [Op::Unwrap, Op::CacheHitDecrypt]
    );
    for r in &recs {
        assert_eq!(r.key.as_deref(), Some("raw-aes:audit-ns/key-2"), "{r:?}");
        assert_eq!(r.edk_sha256.unwrap().0, edk_hash(&edks[0]));
    }
}
