//! The `[policy]` engine at the Session's decision points: a denied encrypt, decrypt, put
//! or get fails before any key-store or storage call (counted by a key store that counts
//! its calls, and by the store's contents), names the deciding policy, and every decision
//! is in the audit log with its policy ids.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use hyok::audit::{
    parse_line, AuditSettings, Line, Op, Outcome, PemSigner, Record, SignatureAlgorithm,
};
use hyok::config::Config;
use hyok::keys::{KeyUri, Registry, Scheme};
use hyok::objects::Source;
use hyok::store::StoreUrl;
use hyok::{
    EncryptionContext, ErrorClass, ErrorKind, KeySource, OpLabel, Session, SessionConfig, Settings,
};
use hyok_core::{DataKey, EncryptedDataKey};
use hyok_keystore::raw::RawAesKey;
use hyok_keystore::{KeyInfo, KeyStore, SharedKeyStore, WrapRequest};

/// Calls that reached the key store (generate, wrap, unwrap) over every test of this file.
static CALLS: AtomicUsize = AtomicUsize::new(0);
/// Tests share `CALLS`: each one that counts runs under this lock.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A raw AES key that counts the calls made to it.
#[derive(Debug)]
struct Counting(RawAesKey);

#[async_trait]
impl KeyStore for Counting {
    fn info(&self) -> &KeyInfo {
        self.0.info()
    }

    async fn generate(
        &self,
        req: WrapRequest<'_>,
    ) -> hyok_keystore::Result<(DataKey, EncryptedDataKey)> {
        CALLS.fetch_add(1, Ordering::SeqCst);
        self.0.generate(req).await
    }

    async fn wrap(
        &self,
        dk: &DataKey,
        req: WrapRequest<'_>,
    ) -> hyok_keystore::Result<EncryptedDataKey> {
        CALLS.fetch_add(1, Ordering::SeqCst);
        self.0.wrap(dk, req).await
    }

    async fn unwrap(
        &self,
        edk: &EncryptedDataKey,
        req: WrapRequest<'_>,
    ) -> hyok_keystore::Result<Option<DataKey>> {
        CALLS.fetch_add(1, Ordering::SeqCst);
        self.0.unwrap(edk, req).await
    }
}

fn open_counting(uri: &KeyUri) -> hyok_keystore::Result<SharedKeyStore> {
    Ok(Arc::new(Counting(RawAesKey::new(
        "count",
        &uri.path,
        &[0x42; 32],
    )?)))
}

const COUNTING: Scheme = Scheme {
    name: "count",
    syntax: "count:NAME",
    note: "a raw AES key that counts its calls (tests)",
    open: open_counting,
    admin: None,
};

const POLICY: &str = r#"
@id("team-may-use-hyok")
permit(principal == Hyok::Identity::"alice", action, resource);

@id("eu-needs-tenant")
forbid(principal, action in [Hyok::Action::"put", Hyok::Action::"encrypt", Hyok::Action::"decrypt"], resource is Hyok::Object)
when { (resource.key like "eu/*" || resource.key like "*/eu/*") && !context.encryption_context.hasTag("tenant") };

@id("no-secret-keyring-encrypts")
forbid(principal, action == Hyok::Action::"encrypt", resource)
when { context.encryption_context.hasTag("class") && context.encryption_context.getTag("class") == "secret" };

@id("gateway-reads-only-public")
permit(principal == Hyok::Credential::"AKIDREADER", action == Hyok::Action::"get", resource)
when { resource.key like "public/*" };
"#;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("team.cedar"), POLICY).unwrap();
        let (private, _public) =
            PemSigner::generate_pem(SignatureAlgorithm::EcdsaP256Sha256).unwrap();
        std::fs::write(dir.path().join("audit.pem"), private.as_bytes()).unwrap();
        std::fs::create_dir(dir.path().join("store")).unwrap();
        Self { dir }
    }

    fn path(&self, p: &str) -> std::path::PathBuf {
        self.dir.path().join(p)
    }

    fn session(&self, extra: &str) -> hyok::Result<Session> {
        let text = format!(
            "[policy]\nfiles = [\"team.cedar\"]\ndefault = \"deny\"\n{extra}\n[keyrings.team]\nkeys = [\"count:k1\"]\n"
        );
        let config = Config::parse(&text)?;
        let audit = AuditSettings {
            log: Some(self.path("audit.log")),
            key: Some(self.path("audit.pem").display().to_string()),
            identity: Some("alice".into()),
            ..Default::default()
        };
        Session::open(
            SessionConfig {
                file: hyok::config::Loaded {
                    config,
                    path: Some(self.path("hyok.toml")),
                },
                audit,
                ..SessionConfig::default()
            }
            .registry(Registry::builtin().with(COUNTING))
            .keys(KeySource::Keyring("team".into())),
        )
    }

    fn decisions(&self) -> Vec<Record> {
        std::fs::read(self.path("audit.log"))
            .unwrap()
            .split(|b| *b == b'\n')
            .filter_map(|l| match parse_line(l) {
                Ok(Line::Record(r)) if r.op == Op::PolicyDecision => Some(r),
                _ => None,
            })
            .collect()
    }
}

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs.iter().copied().collect()
}

fn calls() -> usize {
    CALLS.load(Ordering::SeqCst)
}

#[test]
fn denied_key_uses_make_no_key_store_call_and_name_the_policy() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let f = Fixture::new();
    let session = f.session("").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = session.client(Settings::default()).unwrap();
    let none = Default::default();

    // Denied encrypt: no key-store call.
    let before = calls();
    let e = rt
        .block_on(client.encryption_materials(
            &ctx(&[("class", "secret")]),
            &none,
            4,
            &OpLabel::default(),
        ))
        .unwrap_err();
    assert_eq!(calls(), before, "a denied encrypt reached the key store");
    assert_eq!(e.class(), ErrorClass::Denied);
    assert_eq!(e.kind(), ErrorKind::Operation);
    let text = e.to_string();
    assert!(text.contains("no-secret-keyring-encrypts"), "{text}");
    assert!(text.contains("encrypt"), "{text}");

    // Allowed encrypt, then an allowed decrypt of the message.
    let m = rt
        .block_on(client.encryption_materials(
            &ctx(&[("class", "public")]),
            &none,
            4,
            &OpLabel::default(),
        ))
        .unwrap();
    assert!(calls() > before);
    let mut enc = client.encryptor(Vec::new(), m).unwrap();
    enc.write_all(b"data").unwrap();
    let (message, _) = enc.finish().unwrap();
    let mut input = &message[..];
    let parsed = client.read_header(&mut input).unwrap();
    rt.block_on(client.open(parsed, &EncryptionContext::new(), &OpLabel::default()))
        .unwrap();

    // A session for someone no policy permits: decrypt denied before the key store.
    session.close().unwrap();
    // Same configuration, another identity.
    let bob = f
        .session("")
        .unwrap()
        .with_principal(hyok::policy::Principal::Identity("bob".into()));
    let bob_client = bob.client(Settings::default()).unwrap();
    let mut input = &message[..];
    let parsed = bob_client.read_header(&mut input).unwrap();
    let before = calls();
    let e = rt
        .block_on(bob_client.open(parsed, &EncryptionContext::new(), &OpLabel::default()))
        .unwrap_err();
    assert_eq!(calls(), before, "a denied decrypt reached the key store");
    assert_eq!(e.class(), ErrorClass::Denied);
    assert!(e.to_string().contains("default-deny"), "{e}");
    bob.close().unwrap();

    // Every decision is recorded with its policy ids.
    let d = f.decisions();
    let details: Vec<(Outcome, String)> = d
        .iter()
        .map(|r| (r.outcome, r.detail.clone().unwrap_or_default()))
        .collect();
    assert!(
        details.iter().any(|(o, t)| *o != Outcome::Ok
            && t.starts_with("deny encrypt by Identity \"alice\"")
            && t.contains("no-secret-keyring-encrypts")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|(o, t)| *o == Outcome::Ok
            && t.starts_with("allow encrypt")
            && t.contains("team-may-use-hyok")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|(o, t)| *o == Outcome::Ok && t.starts_with("allow decrypt")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|(o, t)| *o != Outcome::Ok
            && t.starts_with("deny decrypt by Identity \"bob\"")
            && t.contains("default-deny")),
        "{details:?}"
    );
}

fn local_url(root: &Path, key: &str) -> StoreUrl {
    StoreUrl::parse(&format!("file://{}/{key}", root.display())).unwrap()
}

#[test]
fn object_writes_and_reads_are_decided_before_storage_and_keys() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let f = Fixture::new();
    let session = f.session("").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let root = f.path("store");
    let url = local_url(&root, "eu/report.txt");
    let store = session
        .open_store(&url, hyok::store::StoreOptions::default())
        .unwrap();
    let objects = session
        .objects(
            store.clone(),
            Settings::default(),
            session.transfer(None, None),
            rt.handle().clone(),
        )
        .unwrap();

    // Under eu/ without a tenant: denied before the key store and before the store.
    let before = calls();
    let e = objects
        .put(&url, &mut &b"payroll"[..], &Source::default())
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Denied);
    assert!(e.to_string().contains("eu-needs-tenant"), "{e}");
    assert_eq!(calls(), before, "a denied put reached the key store");
    assert!(!root.join("eu").exists(), "a denied put reached the store");

    // With a tenant: written; read back (get, then decrypt with the stored context).
    let source = Source {
        context: ctx(&[("tenant", "acme")]),
        ..Source::default()
    };
    objects.put(&url, &mut &b"payroll"[..], &source).unwrap();
    let mut out = Vec::new();
    objects
        .get(&url, &mut out, None, &EncryptionContext::new())
        .unwrap();
    assert_eq!(out, b"payroll");

    // A gateway credential may read public/ only: its get elsewhere is refused before the
    // store is asked (a missing object would otherwise say "not found").
    let reader = objects.clone().acting_for(Some("AKIDREADER".into()));
    let missing = local_url(&root, "eu/missing.txt");
    let before = calls();
    let e = reader
        .get(&missing, &mut Vec::new(), None, &EncryptionContext::new())
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Denied, "{e}");
    assert!(e.to_string().contains("Credential \"AKIDREADER\""), "{e}");
    assert_eq!(calls(), before);

    // An object under eu/ stored without a tenant (written while no policy applied) is
    // refused on read, after its header is read and before its key is used.
    let plain = Session::open(
        SessionConfig::default()
            .registry(Registry::builtin().with(COUNTING))
            .keys(KeySource::Uris(vec!["count:k1".into()])),
    )
    .unwrap();
    let legacy = local_url(&root, "eu/legacy.txt");
    plain
        .objects(
            store,
            Settings::default(),
            plain.transfer(None, None),
            rt.handle().clone(),
        )
        .unwrap()
        .put(&legacy, &mut &b"old"[..], &Source::default())
        .unwrap();
    let before = calls();
    let e = objects
        .get(&legacy, &mut Vec::new(), None, &EncryptionContext::new())
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Denied);
    assert!(e.to_string().contains("decrypt"), "{e}");
    assert!(e.to_string().contains("eu-needs-tenant"), "{e}");
    assert_eq!(calls(), before, "a denied decrypt reached the key store");

    // The decisions with their ids.
    drop((objects, reader));
    session.close().unwrap();
    let d: Vec<String> = f.decisions().into_iter().filter_map(|r| r.detail).collect();
    for want in [
        "deny put by Identity \"alice\" on file://",
        "allow put by Identity \"alice\"",
        "allow get by Identity \"alice\"",
        "allow decrypt by Identity \"alice\"",
        "deny get by Credential \"AKIDREADER\"",
        "deny decrypt by Identity \"alice\"",
    ] {
        assert!(d.iter().any(|t| t.starts_with(want)), "{want}: {d:?}");
    }
}

#[test]
fn a_bad_policy_file_stops_the_start_with_its_position() {
    let f = Fixture::new();
    std::fs::write(
        f.path("team.cedar"),
        "permit(principal, action, resource);\n\nforbid(principal, action, resource)\n  when { context.colour == \"red\" };\n",
    )
    .unwrap();
    let e = f.session("").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert_eq!(e.kind().exit_code(), 2);
    let text = e.to_string();
    let at = format!("{}:4:", f.path("team.cedar").display());
    assert!(text.contains(&at), "{text}");
    assert!(!text.contains('\n'), "{text}");
    std::fs::write(
        f.path("team.cedar"),
        "permit(principal, action resource);\n",
    )
    .unwrap();
    let text = f.session("").unwrap_err().to_string();
    assert!(
        text.contains(&format!("{}:1:", f.path("team.cedar").display())),
        "{text}"
    );
}

/// The same through a real key server: an OpenBao Transit key (`scripts/services/openbao.sh`).
/// The key server's use is counted by the audit log's key records: a denied encrypt leaves
/// none, an allowed one leaves a `generate` by the vault backend.
#[test]
fn a_denied_encrypt_never_reaches_openbao() {
    let Some(addr) = std::env::var("VAULT_ADDR").ok().filter(|a| !a.is_empty()) else {
        assert!(
            std::env::var("HYOK_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "VAULT_ADDR is unset and HYOK_REQUIRE_SERVICES=1"
        );
        eprintln!("SKIPPED a_denied_encrypt_never_reaches_openbao: VAULT_ADDR is unset (scripts/services/openbao.sh)");
        return;
    };
    let f = Fixture::new();
    let name = format!(
        "hyok-policy-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let uri = format!("vault-transit:{name}?addr={addr}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    {
        let plain = Session::open(SessionConfig::default()).unwrap();
        let (admin, parsed) = plain.key_admin(&uri).unwrap();
        rt.block_on(admin.create(&parsed, hyok::keys::KeyKind::Aes256))
            .unwrap();
    }
    let text = "[policy]\nfiles = [\"team.cedar\"]\ndefault = \"deny\"\n";
    let session = Session::open(
        SessionConfig {
            file: hyok::config::Loaded {
                config: Config::parse(text).unwrap(),
                path: Some(f.path("hyok.toml")),
            },
            audit: AuditSettings {
                log: Some(f.path("audit.log")),
                key: Some(f.path("audit.pem").display().to_string()),
                identity: Some("alice".into()),
                ..Default::default()
            },
            ..SessionConfig::default()
        }
        .keys(KeySource::Uris(vec![uri])),
    )
    .unwrap();
    let client = session.client(Settings::default()).unwrap();
    let none = Default::default();
    let e = rt
        .block_on(client.encryption_materials(
            &ctx(&[("class", "secret")]),
            &none,
            4,
            &OpLabel::default(),
        ))
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Denied);
    assert!(e.to_string().contains("no-secret-keyring-encrypts"), "{e}");
    session.flush().unwrap();
    let key_uses = |f: &Fixture| -> Vec<Record> {
        std::fs::read(f.path("audit.log"))
            .unwrap()
            .split(|b| *b == b'\n')
            .filter_map(|l| match parse_line(l) {
                Ok(Line::Record(r)) if r.op.is_key_use() => Some(r),
                _ => None,
            })
            .collect()
    };
    assert!(key_uses(&f).is_empty(), "{:?}", key_uses(&f));
    rt.block_on(client.encryption_materials(
        &ctx(&[("class", "public")]),
        &none,
        4,
        &OpLabel::default(),
    ))
    .unwrap();
    session.close().unwrap();
    let uses = key_uses(&f);
    assert_eq!(uses.len(), 1, "{uses:?}");
    assert_eq!(uses[0].op, Op::Generate);
    assert_eq!(
        uses[0].backend.as_deref(),
        Some("vault-transit"),
        "{uses:?}"
    );
}
