//! hyok-evp against independent implementations (RustCrypto p256/p384, aws-lc-rs one-shot
//! ECDSA) and against malformed keys and signatures.

use hyok_evp::{Curve, Error, Signer, SigningKey, Verifier, VerifyingKey};

const CURVES: [Curve; 2] = [Curve::P256, Curve::P384];

fn message() -> Vec<u8> {
    (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect()
}

/// Sign `msg`, fed in pieces of `piece` bytes.
fn sign(key: &SigningKey, msg: &[u8], piece: usize) -> Vec<u8> {
    let mut s = Signer::new(key).unwrap();
    for c in msg.chunks(piece) {
        s.update(c).unwrap();
    }
    s.sign().unwrap()
}

fn verify(key: &VerifyingKey, msg: &[u8], piece: usize, der: &[u8]) -> hyok_evp::Result<()> {
    let mut v = Verifier::new(key).unwrap();
    for c in msg.chunks(piece) {
        v.update(c).unwrap();
    }
    v.verify(der)
}

#[test]
fn streamed_signatures_verify_whatever_the_pieces() {
    let msg = message();
    for curve in CURVES {
        let key = SigningKey::generate(curve).unwrap();
        let vk = key.verifying_key().unwrap();
        let der = sign(&key, &msg, 7);
        for piece in [1, 4096, msg.len()] {
            verify(&vk, &msg, piece, &der).unwrap();
        }
        // The empty message too (zero updates).
        let empty = Signer::new(&key).unwrap().sign().unwrap();
        Verifier::new(&vk).unwrap().verify(&empty).unwrap();
        assert_eq!(
            verify(&vk, &msg, 4096, &empty),
            Err(Error::BadSignature),
            "{curve:?}: the empty message's signature verified another message"
        );
    }
}

#[test]
fn a_changed_message_key_or_signature_fails() {
    let msg = message();
    for curve in CURVES {
        let key = SigningKey::generate(curve).unwrap();
        let vk = key.verifying_key().unwrap();
        let der = sign(&key, &msg, 1000);
        let mut other = msg.clone();
        other[50_000] ^= 1;
        assert_eq!(verify(&vk, &other, 1000, &der), Err(Error::BadSignature));
        let other_key = SigningKey::generate(curve)
            .unwrap()
            .verifying_key()
            .unwrap();
        assert_eq!(
            verify(&other_key, &msg, 1000, &der),
            Err(Error::BadSignature)
        );
        for i in 0..der.len() {
            let mut bad = der.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                verify(&vk, &msg, 1000, &bad),
                Err(Error::BadSignature),
                "{curve:?}: flipped bit in DER byte {i} verified"
            );
        }
    }
}

#[test]
fn malformed_der_is_refused_without_panic() {
    let msg = b"message";
    for curve in CURVES {
        let key = SigningKey::generate(curve).unwrap();
        let vk = key.verifying_key().unwrap();
        let der = sign(&key, msg, 3);
        let mut trailing = der.clone();
        trailing.push(0);
        // The same SEQUENCE with a non-minimal (long form) length: BER, not DER.
        let mut long_len = vec![0x30, 0x81, der[1]];
        long_len.extend_from_slice(&der[2..]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("truncated", der[..der.len() - 1].to_vec()),
            ("only the tag", der[..1].to_vec()),
            ("trailing byte", trailing),
            ("long-form length", long_len),
            (
                "r = s = 0",
                vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00],
            ),
            ("not a sequence", vec![0x04; der.len()]),
            ("all ones", vec![0xff; 200]),
        ];
        for (what, bad) in cases {
            assert_eq!(
                Verifier::new(&vk).unwrap().verify(&bad).err(),
                Some(Error::BadSignature),
                "{curve:?}: {what}"
            );
        }
        // The real one still verifies after all these failures (no stale error state).
        let mut v = Verifier::new(&vk).unwrap();
        v.update(msg).unwrap();
        v.verify(&der).unwrap();
    }
}

#[test]
fn malformed_public_keys_are_refused_without_panic() {
    for curve in CURVES {
        let f = curve.field_len();
        let good = SigningKey::generate(curve)
            .unwrap()
            .public_key_compressed()
            .unwrap();
        assert_eq!(good.len(), 1 + f);
        assert!(matches!(good[0], 2 | 3));
        VerifyingKey::from_sec1(curve, &good).unwrap();
        let mut bad_prefix = good.clone();
        bad_prefix[0] = 0x05;
        let mut x_is_p = vec![0x02];
        x_is_p.extend(std::iter::repeat_n(0xff, f)); // ≥ p on both curves
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("infinity (0x00)", vec![0x00]),
            ("0x00 and zeros", vec![0; 1 + f]),
            ("one byte short", good[..f].to_vec()),
            ("one byte long", [good.as_slice(), &[0]].concat()),
            ("bad prefix", bad_prefix),
            ("x ≥ p", x_is_p),
            (
                "the other curve's length",
                vec![0x02; 1 + if f == 32 { 48 } else { 32 }],
            ),
        ];
        for (what, bad) in cases {
            assert_eq!(
                VerifyingKey::from_sec1(curve, &bad).err(),
                Some(Error::InvalidKey),
                "{curve:?}: {what}"
            );
        }
        // Compressed encodings whose x has no y on the curve: about half of all x do. Of 40
        // consecutive x, some must be refused and the others accepted, never a panic.
        let (mut refused, mut accepted) = (0, 0);
        for i in 0..40u8 {
            let mut p = good.clone();
            p[f] = p[f].wrapping_add(i);
            match VerifyingKey::from_sec1(curve, &p) {
                Ok(_) => accepted += 1,
                Err(e) => {
                    assert_eq!(e, Error::InvalidKey);
                    refused += 1;
                }
            }
        }
        assert!(
            refused > 0 && accepted > 0,
            "{refused} refused, {accepted} accepted"
        );
    }
}

#[test]
fn uncompressed_off_curve_points_are_refused() {
    let sk = p384::ecdsa::SigningKey::from_slice(&[0x42; 48]).unwrap();
    let mut point = sk
        .verifying_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    VerifyingKey::from_sec1(Curve::P384, &point).unwrap();
    let last = point.len() - 1;
    point[last] ^= 1;
    assert_eq!(
        VerifyingKey::from_sec1(Curve::P384, &point).err(),
        Some(Error::InvalidKey)
    );
}

#[test]
fn fixed_scalars_give_the_public_keys_of_rustcrypto() {
    let k384 = SigningKey::from_scalar(Curve::P384, &[1u8; 48]).unwrap();
    let r384 = p384::ecdsa::SigningKey::from_slice(&[1u8; 48]).unwrap();
    assert_eq!(
        k384.public_key_compressed().unwrap(),
        r384.verifying_key().to_encoded_point(true).as_bytes()
    );
    let k256 = SigningKey::from_scalar(Curve::P256, &[1u8; 32]).unwrap();
    let r256 = p256::ecdsa::SigningKey::from_slice(&[1u8; 32]).unwrap();
    assert_eq!(
        k256.public_key_compressed().unwrap(),
        r256.verifying_key().to_encoded_point(true).as_bytes()
    );
    // Out of range or the wrong length: refused.
    assert_eq!(
        SigningKey::from_scalar(Curve::P384, &[0u8; 48]).err(),
        Some(Error::InvalidKey)
    );
    assert_eq!(
        SigningKey::from_scalar(Curve::P384, &[0xffu8; 48]).err(),
        Some(Error::InvalidKey)
    );
    assert_eq!(
        SigningKey::from_scalar(Curve::P256, &[1u8; 48]).err(),
        Some(Error::InvalidKey)
    );
}

#[test]
fn signatures_interoperate_with_rustcrypto_both_ways() {
    use p256::ecdsa::signature::{Signer as _, Verifier as _};
    let msg = message();
    // hyok-evp signs, RustCrypto verifies (it hashes the whole message with SHA-384/256).
    let k = SigningKey::from_scalar(Curve::P384, &[7u8; 48]).unwrap();
    let der = sign(&k, &msg, 999);
    let r = p384::ecdsa::SigningKey::from_slice(&[7u8; 48]).unwrap();
    let s = p384::ecdsa::Signature::from_der(&der).unwrap();
    r.verifying_key().verify(&msg, &s).unwrap();
    // RustCrypto signs, hyok-evp verifies.
    let s: p384::ecdsa::Signature = r.sign(&msg);
    verify(
        &k.verifying_key().unwrap(),
        &msg,
        4096,
        s.to_der().as_bytes(),
    )
    .unwrap();

    let k = SigningKey::from_scalar(Curve::P256, &[7u8; 32]).unwrap();
    let der = sign(&k, &msg, 999);
    let r = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    let s = p256::ecdsa::Signature::from_der(&der).unwrap();
    r.verifying_key().verify(&msg, &s).unwrap();
    let s: p256::ecdsa::Signature = r.sign(&msg);
    verify(
        &k.verifying_key().unwrap(),
        &msg,
        4096,
        s.to_der().as_bytes(),
    )
    .unwrap();
}

#[test]
fn signatures_verify_with_aws_lc_rs_one_shot() {
    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1};
    let msg = message();
    for (curve, alg) in [
        (Curve::P256, &ECDSA_P256_SHA256_ASN1),
        (Curve::P384, &ECDSA_P384_SHA384_ASN1),
    ] {
        let key = SigningKey::generate(curve).unwrap();
        let der = sign(&key, &msg, 333);
        UnparsedPublicKey::new(alg, key.public_key_compressed().unwrap())
            .verify(&msg, &der)
            .unwrap();
    }
}

#[test]
fn signing_again_gives_another_valid_signature() {
    let key = SigningKey::generate(Curve::P384).unwrap();
    let vk = key.verifying_key().unwrap();
    let mut s = Signer::new(&key).unwrap();
    s.update(b"header").unwrap();
    s.update(b"body").unwrap();
    let a = s.sign().unwrap();
    let b = s.sign().unwrap();
    assert_ne!(a, b, "ECDSA signatures are randomized");
    for der in [a, b] {
        verify(&vk, b"headerbody", 3, &der).unwrap();
    }
}

#[test]
fn contexts_and_keys_move_between_threads() {
    let key = SigningKey::generate(Curve::P384).unwrap();
    let vk = key.verifying_key().unwrap();
    let mut s = Signer::new(&key).unwrap();
    s.update(b"one ").unwrap();
    let (s, key) = std::thread::spawn(move || {
        s.update(b"two").unwrap();
        (s, key)
    })
    .join()
    .unwrap();
    drop(key); // the context holds its own reference to the key
    let mut s = s;
    let der = s.sign().unwrap();
    let mut v = Verifier::new(&vk).unwrap();
    v.update(b"one two").unwrap();
    std::thread::spawn(move || v.verify(&der))
        .join()
        .unwrap()
        .unwrap();
}
