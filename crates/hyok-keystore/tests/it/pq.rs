//! Post-quantum escrow keys (`pq-escrow:`): the X-Wing KEM against the known answer of
//! draft-connolly-cfrg-xwing-kem-08, and whole messages through the key store alone.

use std::sync::Arc;

use hyok_keystore::pq::xwing::{self, PrivateKey};
use hyok_keystore::pq::{generate_pem, PRIVATE_PEM_TAG};
use hyok_keystore::{open_key, KeyManager, Keyring, SharedKeyStore};
use sha3::digest::{ExtendableOutput, Update, XofReader};

use crate::common::{context, decrypt, encrypt, pseudo, runtime};

struct Vector {
    sk: Vec<u8>,
    pk: Vec<u8>,
    ct: Vec<u8>,
    ss: Vec<u8>,
    mlkem_dk: Vec<u8>,
}

fn vector() -> Vector {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/xwing/draft-08-vector-1.txt"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let field = |name: &str| {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing in {path}"));
        hex::decode(line.split_whitespace().nth(1).unwrap()).unwrap()
    };
    Vector {
        sk: field("sk"),
        pk: field("pk"),
        ct: field("ct"),
        ss: field("ss"),
        mlkem_dk: field("mlkem_dk"),
    }
}

/// The draft's seed expansion: `SHAKE256(sk, 96)` = d ‖ z ‖ sk_X.
fn expand(sk: &[u8]) -> [u8; 96] {
    let mut h = sha3::Shake256::default();
    h.update(sk);
    let mut out = [0u8; 96];
    h.finalize_xof().read(&mut out);
    out
}

/// The decapsulation side of X-Wing (ML-KEM-768 decapsulation, X25519, the SHA3-256
/// combiner with its label) reproduces the draft's shared secret. The ML-KEM key is the
/// expanded form of the vector's seed (aws-lc-rs cannot expand a seed): its z and its
/// embedded public key are checked against the vector here, and `from_parts` checks H(ek)
/// and that X25519(sk_X) is the vector's pk_X.
#[test]
fn decapsulation_matches_draft_08_vector() {
    let v = vector();
    assert_eq!(
        (v.pk.len(), v.ct.len(), v.mlkem_dk.len()),
        (1216, 1120, 2400)
    );
    let exp = expand(&v.sk);
    assert_eq!(&v.mlkem_dk[2368..], &exp[32..64], "z of the expanded key");
    let mut secret = v.mlkem_dk.clone();
    secret.extend_from_slice(&exp[64..]);
    let key = PrivateKey::from_parts(&secret, &v.pk).unwrap();
    assert_eq!(key.public().as_bytes(), &v.pk[..]);
    assert_eq!(&key.decapsulate(&v.ct).unwrap()[..], &v.ss[..]);
    // The label is part of the combiner: without it (or with another order) no match.
    assert_eq!(xwing::LABEL, *b"\\.//^\\");
    // Either half of the ciphertext corrupted: another secret (ML-KEM rejects implicitly)
    // or an error, never the vector's.
    for at in [0, 500, 1087, 1088, 1100, 1119] {
        let mut ct = v.ct.clone();
        ct[at] ^= 0x01;
        if let Ok(ss) = key.decapsulate(&ct) {
            assert_ne!(&ss[..], &v.ss[..], "byte {at}");
        }
    }
    // Parts that do not belong together are refused.
    let mut other = v.pk.clone();
    other[1200] ^= 1;
    assert!(PrivateKey::from_parts(&secret, &other).is_err());
    let mut bad = secret.clone();
    bad[1152] ^= 1;
    assert!(PrivateKey::from_parts(&bad, &v.pk).is_err());
}

/// Fresh keys: encapsulation and decapsulation agree; the secret encoding round-trips.
#[test]
fn fresh_keys_round_trip() {
    let k = PrivateKey::generate().unwrap();
    let (ss, ct) = k.public().encapsulate().unwrap();
    assert_eq!(ct.len(), xwing::CIPHERTEXT_LEN);
    assert_eq!(k.decapsulate(&ct).unwrap(), ss);
    let again = PrivateKey::from_parts(&k.secret_bytes().unwrap(), k.public().as_bytes()).unwrap();
    assert_eq!(again.decapsulate(&ct).unwrap(), ss);
    let (ss2, ct2) = k.public().encapsulate().unwrap();
    assert_ne!(ct, ct2);
    assert_ne!(ss, ss2);
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = generate_pem().unwrap();
        assert!(private.contains(PRIVATE_PEM_TAG));
        let key = dir.path().join("escrow.key");
        std::fs::write(&key, private.as_bytes()).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.path().join("escrow.pub"), public).unwrap();
        Self { dir }
    }

    fn uri(&self, attr: &str) -> String {
        let file = if attr == "public" {
            "escrow.pub"
        } else {
            "escrow.key"
        };
        format!(
            "pq-escrow:archive/escrow-2026?{attr}={}",
            self.dir.path().join(file).display()
        )
    }
}

fn manager(keys: Vec<SharedKeyStore>) -> KeyManager {
    KeyManager::new(Keyring::new(keys).unwrap())
}

/// A message wrapped by the escrow key alone: the private key opens it, a public-only key
/// says it cannot decrypt, another context or a corrupted half of the KEM ciphertext fails
/// cleanly.
#[test]
fn round_trip_through_pq_escrow_alone() {
    let f = Files::new();
    let rt = runtime();
    let ctx = context(&[("archive", "2026")]);
    rt.block_on(async {
        let writer = manager(vec![open_key(&f.uri("public")).unwrap()]);
        let reader = manager(vec![open_key(&f.uri("private")).unwrap()]);
        let pt = pseudo(300_000, 3);
        let msg = encrypt(&writer, &ctx, &pt).await.unwrap();
        assert_eq!(decrypt(&reader, &ctx, &msg).await.unwrap(), pt);
        let err = decrypt(&writer, &ctx, &msg).await.unwrap_err();
        assert!(err.to_string().contains("cannot decrypt"), "{err}");
        assert!(decrypt(&reader, &context(&[("archive", "x")]), &msg)
            .await
            .is_err());
        let mut input = &msg[..];
        let parsed =
            hyok_core::ParsedHeader::read(&mut input, hyok_core::HeaderLimits::default()).unwrap();
        let edk = &parsed.header.edks[0];
        assert_eq!(edk.provider_id, "archive");
        assert_eq!(edk.ciphertext.len(), 2 + 1120 + 12 + 32 + 16);
        let at = msg
            .windows(edk.ciphertext.len())
            .position(|w| w == &edk.ciphertext[..])
            .unwrap();
        // ML-KEM half, X25519 half, nonce, sealed key, tag.
        for off in [
            2 + 10,
            2 + 1088 + 5,
            2 + 1120 + 3,
            2 + 1132 + 1,
            edk.ciphertext.len() - 1,
        ] {
            let mut bad = msg.clone();
            bad[at + off] ^= 0x20;
            let e = decrypt(&reader, &ctx, &bad).await.unwrap_err();
            assert!(
                matches!(e, hyok_keystore::Error::UnwrapFailed { .. }),
                "offset {off}: {e}"
            );
        }
        // Beside a raw AES key, either key opens the message alone.
        let aes: SharedKeyStore =
            Arc::new(hyok_keystore::testing::random_raw_aes("archive", "aes"));
        let both = manager(vec![aes.clone(), open_key(&f.uri("public")).unwrap()]);
        let msg = encrypt(&both, &ctx, &pt).await.unwrap();
        assert_eq!(decrypt(&reader, &ctx, &msg).await.unwrap(), pt);
        assert_eq!(decrypt(&manager(vec![aes]), &ctx, &msg).await.unwrap(), pt);
    });
    // A public key file given as the private key is refused with a line naming it.
    let wrong = format!(
        "pq-escrow:archive/escrow-2026?private={}",
        f.dir.path().join("escrow.pub").display()
    );
    let e = open_key(&wrong).unwrap_err().to_string();
    assert!(e.contains("expected \"HYOK XWING PRIVATE KEY\""), "{e}");
}
