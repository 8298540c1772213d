//! The PKCS#11 key store against SoftHSM2: keys born in the token, round trips, refusals,
//! the shared session pool under eight streams and under C_CloseAllSessions, ECDSA signing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use hyok_keystore::admin::{KeyAdmin, KeyKind};
use hyok_keystore::pkcs11::{shared_context, EcCurve, EcSigner, Pkcs11Admin, Pkcs11Key};
use hyok_keystore::{Error, KeyManager, KeyStore, KeyUri, Keyring, WrapRequest};
use serial_test::serial;

use crate::common::{self, context, create, decrypt, encrypt, hsm, runtime, unique, Cleanup};

fn open(uri: &str) -> Pkcs11Key {
    Pkcs11Key::from_uri_str(uri).unwrap_or_else(|e| panic!("opening {uri}: {e}"))
}

fn manager(key: &Pkcs11Key) -> KeyManager {
    KeyManager::new(Keyring::new(vec![common::shared(key.clone())]).unwrap())
}

#[test]
#[serial(hsm)]
fn aes_key_round_trip_context_binding_and_tampering() {
    let Some(hsm) = hsm("pkcs11::aes_key_round_trip_context_binding_and_tampering") else {
        return;
    };
    let label = unique("aes");
    let uri = create(&hsm.uri(&label, ""), KeyKind::Aes256);
    let _cleanup = Cleanup(uri.clone());
    let key = open(&uri);
    assert_eq!(key.kind(), "AES");
    let m = manager(&key);
    let rt = runtime();
    let ctx = context(&[("tenant", "acme"), ("object", "a/b.csv")]);
    let plain = common::pseudo(70_000, 1);
    let msg = rt.block_on(encrypt(&m, &ctx, &plain)).unwrap();
    assert_eq!(rt.block_on(decrypt(&m, &ctx, &msg)).unwrap(), plain);

    // The EDK has the raw AES keyring's shape: namespace, label ‖ 128 ‖ 12 ‖ IV, 48 bytes.
    let mut input = &msg[..];
    let parsed = hyok_core::ParsedHeader::read(&mut input, Default::default()).unwrap();
    let edk = &parsed.header.edks[0];
    assert_eq!(edk.provider_id, "pkcs11");
    assert_eq!(&edk.provider_info[..label.len()], label.as_bytes());
    assert_eq!(
        &edk.provider_info[label.len()..label.len() + 8],
        &[0, 0, 0, 128, 0, 0, 0, 12]
    );
    assert_eq!(edk.ciphertext.len(), 48);

    // The context is the AAD: unwrapping under another context fails, naming the key.
    let req_ctx = context(&[("tenant", "other"), ("object", "a/b.csv")]);
    let req = WrapRequest {
        suite: common::SUITE,
        context: &req_ctx,
    };
    let e = rt.block_on(key.unwrap(edk, req)).unwrap_err();
    assert!(matches!(e, Error::UnwrapFailed { .. }), "{e}");
    assert!(e.to_string().contains(&label), "{e}");

    // A flipped tag bit (SoftHSM answers CKR_GENERAL_ERROR) is a refused unwrap too.
    let mut bad = edk.clone();
    bad.ciphertext[47] ^= 1;
    let req = WrapRequest {
        suite: common::SUITE,
        context: &ctx,
    };
    let e = rt.block_on(key.unwrap(&bad, req)).unwrap_err();
    assert!(matches!(e, Error::UnwrapFailed { .. }), "{e}");

    // An EDK of another key (other label) is "not mine".
    let mut foreign = edk.clone();
    foreign.provider_info[0] ^= 0x20;
    assert!(rt.block_on(key.unwrap(&foreign, req)).unwrap().is_none());
}

#[test]
#[serial(hsm)]
fn rsa_key_pair_round_trip_and_oaep_hash_check() {
    let Some(hsm) = hsm("pkcs11::rsa_key_pair_round_trip_and_oaep_hash_check") else {
        return;
    };
    let label = unique("rsa");
    let uri = create(&hsm.uri(&label, ""), KeyKind::Rsa(3072));
    let _cleanup = Cleanup(uri.clone());
    // Created on SoftHSM, the URI handed back already says oaep-hash=sha1.
    assert!(uri.contains("oaep-hash=sha1"), "{uri}");
    let key = open(&uri);
    assert_eq!(key.kind(), "RSA-3072");
    let m = manager(&key);
    let rt = runtime();
    let ctx = context(&[("k", "v")]);
    let plain = common::pseudo(5000, 2);
    let msg = rt.block_on(encrypt(&m, &ctx, &plain)).unwrap();
    assert_eq!(rt.block_on(decrypt(&m, &ctx, &msg)).unwrap(), plain);

    // With SHA-256, which SoftHSM 2.6 cannot decrypt, nothing is encrypted at all: the key
    // checks the token can undo its OAEP before the first wrap.
    let sha256 = open(&hsm.uri(&label, "oaep-hash=sha256"));
    let e = rt
        .block_on(encrypt(&manager(&sha256), &ctx, &plain))
        .unwrap_err();
    assert!(
        e.contains("CKR_ARGUMENTS_BAD") && e.contains("oaep-hash"),
        "{e}"
    );
}

#[test]
#[serial(hsm)]
fn keys_are_sensitive_and_cannot_be_read_or_wrapped_out() {
    let Some(hsm) = hsm("pkcs11::keys_are_sensitive_and_cannot_be_read_or_wrapped_out") else {
        return;
    };
    let aes_label = unique("aes-locked");
    let rsa_label = unique("rsa-locked");
    let aes = create(&hsm.uri(&aes_label, ""), KeyKind::Aes256);
    let _c1 = Cleanup(aes.clone());
    let rsa = create(&hsm.uri(&rsa_label, ""), KeyKind::Rsa(2048));
    let _c2 = Cleanup(rsa.clone());
    let key = open(&aes); // loads and initialises the module once for the process
    let ctx = shared_context(&key.module_path()).unwrap();
    let session = ctx
        .open_rw_session(Slot::try_from(key.slot_id()).unwrap())
        .unwrap();
    let pin = AuthPin::from(std::env::var("HYOK_PKCS11_PIN").unwrap());
    match session.login(UserType::User, Some(&pin)) {
        Ok(()) => {}
        Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("login: {e}"),
    }
    // A session key that may wrap: the token must still refuse to wrap our keys out.
    let wrapper = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32usize.try_into().unwrap()),
                Attribute::Wrap(true),
                Attribute::Encrypt(true),
            ],
        )
        .unwrap();
    for (label, class) in [
        (&aes_label, ObjectClass::SECRET_KEY),
        (&rsa_label, ObjectClass::PRIVATE_KEY),
    ] {
        let found = session
            .find_objects(&[
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Class(class),
            ])
            .unwrap();
        assert_eq!(found.len(), 1, "{label}");
        let h = found[0];
        let attrs = session
            .get_attributes(
                h,
                &[
                    AttributeType::Token,
                    AttributeType::Private,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                    AttributeType::AlwaysSensitive,
                ],
            )
            .unwrap();
        for a in &attrs {
            match a {
                Attribute::Token(v)
                | Attribute::Private(v)
                | Attribute::Sensitive(v)
                | Attribute::NeverExtractable(v)
                | Attribute::AlwaysSensitive(v) => assert!(*v, "{label}: {a:?}"),
                Attribute::Extractable(v) => assert!(!*v, "{label}: extractable"),
                _ => {}
            }
        }
        assert_eq!(attrs.len(), 6, "{label}: {attrs:?}");
        let secret = if class == ObjectClass::SECRET_KEY {
            AttributeType::Value
        } else {
            AttributeType::PrivateExponent
        };
        let info = session.get_attribute_info(h, &[secret]).unwrap();
        assert!(
            matches!(info[0], AttributeInfo::Sensitive),
            "{label}: reading the key value must be refused, got {info:?}"
        );
        let wrapped = session.wrap_key(&Mechanism::AesKeyWrapPad, wrapper, h);
        assert!(
            matches!(
                wrapped,
                Err(cryptoki::error::Error::Pkcs11(
                    cryptoki::error::RvError::KeyUnextractable
                        | cryptoki::error::RvError::KeyNotWrappable,
                    _
                ))
            ),
            "{label}: wrapping the key out must be refused, got {wrapped:?}"
        );
        // Usages: only what hyok needs.
        let usage = session
            .get_attributes(
                h,
                &[
                    AttributeType::Sign,
                    AttributeType::Derive,
                    AttributeType::Unwrap,
                ],
            )
            .unwrap();
        assert!(
            usage.iter().all(|a| matches!(
                a,
                Attribute::Sign(false) | Attribute::Derive(false) | Attribute::Unwrap(false)
            )),
            "{label}: {usage:?}"
        );
    }
    let _ = session.destroy_object(wrapper);
}

#[test]
#[serial(hsm)]
fn refusals_name_the_cause() {
    let Some(hsm) = hsm("pkcs11::refusals_name_the_cause") else {
        return;
    };
    let ec_label = unique("ec-wrong-type");
    let ec = create(&hsm.uri(&ec_label, ""), KeyKind::EcP256);
    let _c = Cleanup(ec.clone());
    let missing = unique("missing");
    let cases: Vec<(String, &str)> = vec![
        (hsm.uri(&missing, ""), "no key labelled"),
        (
            format!("pkcs11:token=no-such-token-{};object=k", std::process::id()),
            "no token",
        ),
        (ec.clone(), "is an EC-P256 key"),
        (
            hsm.uri("k", "module-path=/nonexistent/libpkcs11.so"),
            "cannot load the PKCS#11 module",
        ),
        (hsm.uri("k", "pin-value=123456"), "pin-value is refused"),
    ];
    let mut fails = Vec::new();
    for (uri, want) in &cases {
        match Pkcs11Key::from_uri_str(uri) {
            Ok(_) => fails.push(format!("{uri}: opened")),
            Err(e) => {
                let s = e.to_string();
                if !s.contains(want) || s.contains('\n') || s.contains("123456") {
                    fails.push(format!("{uri}: {s:?} does not say {want:?}"));
                }
            }
        }
    }
    // Creating over an existing label is refused.
    let again =
        runtime().block_on(Pkcs11Admin.create(&KeyUri::parse(&ec).unwrap(), KeyKind::Aes256));
    match again {
        Ok(_) => fails.push("a second key with the same label was created".into()),
        Err(e) if e.to_string().contains("already exists") => {}
        Err(e) => fails.push(format!("create twice: {e}")),
    }
    assert!(fails.is_empty(), "{fails:#?}");
}

#[test]
#[serial(hsm)]
fn list_and_destroy() {
    let Some(hsm) = hsm("pkcs11::list_and_destroy") else {
        return;
    };
    let label = unique("listed");
    let uri = create(&hsm.uri(&label, ""), KeyKind::Aes256);
    let _c = Cleanup(uri.clone());
    let rt = runtime();
    let token = KeyUri::parse(&format!("pkcs11:token={}", hsm.token)).unwrap();
    let keys = rt.block_on(Pkcs11Admin.list(&token)).unwrap();
    let k = keys
        .iter()
        .find(|k| k.name == label)
        .unwrap_or_else(|| panic!("{label} not listed in {keys:?}"));
    assert_eq!(k.kind, "AES-256");
    assert_eq!(k.id.len(), 16);
    let attr = |n: &str| {
        k.attributes
            .iter()
            .find(|(a, _)| a == n)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(attr("sensitive"), Some("true"));
    assert_eq!(attr("never-extractable"), Some("true"));
    assert_eq!(attr("extractable"), Some("false"));
    assert_eq!(attr("usage"), Some("encrypt,decrypt"));
    let msg = rt
        .block_on(Pkcs11Admin.destroy(&KeyUri::parse(&uri).unwrap()))
        .unwrap();
    assert!(msg.contains("destroyed AES-256 key"), "{msg}");
    let e = Pkcs11Key::from_uri_str(&uri).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    let e = rt
        .block_on(Pkcs11Admin.destroy(&KeyUri::parse(&uri).unwrap()))
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
}

/// Calls C_CloseAllSessions on the slot, as another part of the process (or a token reset)
/// would: every session of this process on that token is gone, and the login with it.
/// cryptoki has no safe wrapper for it, hence the direct call.
#[allow(unsafe_code)]
fn close_all_sessions(module: &std::path::Path, slot: u64) {
    // SAFETY: the library is the one already loaded and initialised by this process
    // (dlopen returns the same instance); C_CloseAllSessions takes only a slot id.
    let rv = unsafe {
        let lib = cryptoki_sys::Pkcs11::new(module).expect("load the PKCS#11 module");
        lib.C_CloseAllSessions(slot as cryptoki_sys::CK_SLOT_ID)
    };
    assert_eq!(
        rv,
        cryptoki_sys::CKR_OK,
        "C_CloseAllSessions returned {rv:#x}"
    );
}

#[test]
#[serial(hsm)]
fn eight_streams_share_the_pool_and_survive_close_all_sessions() {
    let Some(hsm) = hsm("pkcs11::eight_streams_share_the_pool_and_survive_close_all_sessions")
    else {
        return;
    };
    const STREAMS: usize = 8;
    const MESSAGES: usize = 40;
    let label = unique("pool");
    let uri = create(&hsm.uri(&label, ""), KeyKind::Aes256);
    let _c = Cleanup(uri.clone());
    let key = open(&uri);
    let m = Arc::new(manager(&key));
    let rt = Arc::new(runtime());
    let done = Arc::new(AtomicUsize::new(0));
    // Sessions are closed between operations, never under one: a token that loses its
    // sessions while a call is running inside it is undefined (SoftHSM frees the session
    // object under the caller and crashes). Streams hold the gate for reading per message.
    let gate = Arc::new(std::sync::RwLock::new(()));
    let lost_before = key.sessions_lost();
    let opened_before = key.sessions_opened();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..STREAMS)
            .map(|i| {
                let (m, rt, done, gate) = (m.clone(), rt.clone(), done.clone(), gate.clone());
                s.spawn(move || {
                    let mut out = Vec::new();
                    for j in 0..MESSAGES {
                        let ctx = context(&[("stream", &i.to_string()), ("n", &j.to_string())]);
                        let plain = common::pseudo(16 * 1024 + j, (i * 1000 + j) as u64);
                        let msg = {
                            let _running = gate.read().unwrap_or_else(|p| p.into_inner());
                            rt.block_on(encrypt(&m, &ctx, &plain))
                        }
                        .map_err(|e| format!("stream {i} message {j}: {e}"))?;
                        out.push((ctx, plain, msg));
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok::<_, String>(out)
                })
            })
            .collect();
        // Close every session twice while the streams run.
        let deadline = Instant::now() + Duration::from_secs(120);
        for at in [STREAMS * MESSAGES / 4, STREAMS * MESSAGES / 2] {
            while done.load(Ordering::SeqCst) < at && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            let _quiet = gate.write().unwrap_or_else(|p| p.into_inner());
            close_all_sessions(&key.module_path(), key.slot_id());
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut messages = Vec::new();
    for r in results {
        messages.extend(r.unwrap_or_else(|e| panic!("{e}")));
    }
    assert_eq!(messages.len(), STREAMS * MESSAGES);
    assert!(
        key.sessions_lost() > lost_before,
        "the closed sessions were never noticed (closed before any stream used them?)"
    );
    let opened = key.sessions_opened() - opened_before;
    assert!(
        opened <= 3 * hyok_keystore::pkcs11::DEFAULT_POOL_SIZE as u64,
        "{opened} sessions opened: the pool is not being reused"
    );
    for (ctx, plain, msg) in &messages {
        assert_eq!(&rt.block_on(decrypt(&m, ctx, msg)).unwrap(), plain);
    }
    eprintln!(
        "eight streams: {} messages, {} HSM calls, {opened} sessions opened, {} losses recovered",
        messages.len(),
        key.hsm_calls(),
        key.sessions_lost() - lost_before
    );
}

#[test]
#[serial(hsm)]
fn ec_key_signs_digests_verifiable_with_the_exported_public_key() {
    let Some(hsm) = hsm("pkcs11::ec_key_signs_digests_verifiable_with_the_exported_public_key")
    else {
        return;
    };
    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::pkcs8::DecodePublicKey;
    use sha2::Digest;

    let label = unique("audit-ec");
    let uri = create(&hsm.uri(&label, ""), KeyKind::EcP256);
    let _c = Cleanup(uri.clone());
    let signer = EcSigner::from_uri_str(&uri).unwrap();
    assert_eq!(signer.curve(), EcCurve::P256);
    let checkpoint = b"hyok audit\n42\nroot=abcd\n";
    let digest = sha2::Sha256::digest(checkpoint);
    let sig = signer.sign_digest(&digest).unwrap();
    assert_eq!(sig.len(), 64);
    // aws-lc-rs, from the raw point, hashing the message itself.
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, signer.public_point())
        .verify(checkpoint, &sig)
        .expect("aws-lc-rs verifies the token's signature");
    // The RustCrypto stack, from the exported SubjectPublicKeyInfo PEM.
    let pem = signer.public_key_pem();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let vk = p256::ecdsa::VerifyingKey::from_public_key_pem(&pem).unwrap();
    let s = p256::ecdsa::Signature::from_slice(&sig).unwrap();
    vk.verify_prehash(&digest, &s).unwrap();
    let mut other = digest;
    other[0] ^= 1;
    assert!(vk.verify_prehash(&other, &s).is_err());
    // An AES key cannot sign.
    let aes_label = unique("not-ec");
    let aes = create(&hsm.uri(&aes_label, ""), KeyKind::Aes256);
    let _c2 = Cleanup(aes.clone());
    let e = EcSigner::from_uri_str(&aes).unwrap_err();
    assert!(e.to_string().contains("not an EC key pair"), "{e}");
}
