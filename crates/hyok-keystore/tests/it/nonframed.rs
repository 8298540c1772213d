//! Non-framed messages (content type 1) from the ESDK test vectors: they decrypt, any
//! change to the body fails with nothing released, and `max_unframed` bounds the body.

use std::io::Read;
use std::path::PathBuf;

use base64::Engine as _;
use hyok_core::{
    ContentType, DecryptOptions, EncryptionContext, Error, HeaderLimits, Parallelism, ParsedHeader,
};
use hyok_keystore::raw::RawAesKey;
use hyok_keystore::{KeyStore, WrapRequest};

const CASE: &str = "py-0478-aes256-nonframed-ec2";
/// A format-1 message (suite 0x0178), also non-framed.
const V1_CASE: &str = "py-0178-aes256-nonframed-ec2";

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/esdk")
}

fn file(uri: &str) -> Vec<u8> {
    std::fs::read(testdata().join(uri.trim_start_matches("file://"))).unwrap()
}

/// (message, plaintext, the key that unwraps it).
fn vector() -> (Vec<u8>, Vec<u8>, RawAesKey) {
    vector_of(CASE)
}

fn vector_of(case: &str) -> (Vec<u8>, Vec<u8>, RawAesKey) {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(testdata().join("generated-manifest.json")).unwrap())
            .unwrap();
    let case = &manifest["tests"][case];
    let msg = file(case["ciphertext"].as_str().unwrap());
    let plaintext = file(case["result"]["output"]["plaintext"].as_str().unwrap());
    let mk = &case["master-keys"][0];
    let keys: serde_json::Value =
        serde_json::from_slice(&std::fs::read(testdata().join("keys.json")).unwrap()).unwrap();
    let material = base64::engine::general_purpose::STANDARD
        .decode(
            keys["keys"][mk["key"].as_str().unwrap()]["material"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let key = RawAesKey::new(
        mk["provider-id"].as_str().unwrap(),
        mk["key"].as_str().unwrap(),
        &material,
    )
    .unwrap();
    (msg, plaintext, key)
}

/// Decrypt `msg`; returns what was released before the end or the error.
fn decrypt(msg: &[u8], key: &RawAesKey, max_unframed: u64) -> (Vec<u8>, Result<(), Error>) {
    let mut input = msg;
    let parsed = ParsedHeader::read(&mut input, HeaderLimits::default()).unwrap();
    assert_eq!(parsed.header.content_type, ContentType::NonFramed);
    let suite = parsed.header.suite;
    let (ctx, _) = parsed.materials_context(&EncryptionContext::new()).unwrap();
    let dk = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(key.unwrap(
            &parsed.header.edks[0],
            WrapRequest {
                suite,
                context: &ctx,
            },
        ))
        .unwrap()
        .unwrap();
    let verified = match parsed.verify(&dk, &EncryptionContext::new()) {
        Ok(v) => v,
        Err(e) => return (Vec::new(), Err(e)),
    };
    let mut dec = verified.decryptor(
        input,
        DecryptOptions {
            parallelism: Parallelism::Sequential,
            max_unframed,
            ..DecryptOptions::default()
        },
    );
    let mut out = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        match dec.read(&mut buf) {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Err(Error::from_io(e))),
        }
    }
}

#[test]
fn a_non_framed_vector_decrypts() {
    let (msg, plaintext, key) = vector();
    let (out, result) = decrypt(&msg, &key, u64::MAX);
    result.unwrap();
    assert_eq!(out, plaintext);
}

#[test]
fn every_changed_byte_of_a_non_framed_body_fails_and_releases_nothing() {
    let (msg, plaintext, key) = vector();
    let mut input = &msg[..];
    let header_len = ParsedHeader::read(&mut input, HeaderLimits::default())
        .unwrap()
        .wire_len();
    // Body: IV (12), length (8), ciphertext, tag (16).
    assert_eq!(msg.len() - header_len, 12 + 8 + plaintext.len() + 16);
    let positions = [
        header_len,          // IV
        header_len + 11,     // IV, last byte
        header_len + 12 + 7, // length
        header_len + 20,     // first ciphertext byte
        header_len + 20 + plaintext.len() / 2,
        msg.len() - 17, // last ciphertext byte
        msg.len() - 16, // tag
        msg.len() - 1,
    ];
    for pos in positions {
        let mut bad = msg.clone();
        bad[pos] ^= 0x01;
        let (out, result) = decrypt(&bad, &key, u64::MAX);
        assert!(result.is_err(), "byte {pos} changed and it decrypted");
        assert!(out.is_empty(), "byte {pos}: {} bytes released", out.len());
    }
    // Cut short or extended.
    for bad in [&msg[..msg.len() - 1], &[&msg[..], &[0u8][..]].concat()[..]] {
        let (out, result) = decrypt(bad, &key, u64::MAX);
        assert!(result.is_err(), "{} bytes decrypted", bad.len());
        assert!(out.is_empty());
    }
}

#[test]
fn max_unframed_bounds_the_body() {
    let (msg, plaintext, key) = vector();
    let n = plaintext.len() as u64;
    let (out, result) = decrypt(&msg, &key, n - 1);
    let e = result.unwrap_err();
    assert!(out.is_empty(), "{e}");
    assert!(
        e.to_string().contains("unframed") || e.to_string().contains("non-framed"),
        "{e}"
    );
    let (out, result) = decrypt(&msg, &key, n);
    result.unwrap();
    assert_eq!(out, plaintext);
}

/// Format 1 stores the header authentication IV, which the format fixes to zero: any
/// other value is a malformed header (not a tag failure to be explained later).
#[test]
fn a_format_1_header_iv_must_be_zero() {
    let (msg, plaintext, key) = vector_of(V1_CASE);
    let (out, result) = decrypt(&msg, &key, u64::MAX);
    result.unwrap();
    assert_eq!(out, plaintext);
    let parsed = ParsedHeader::read(&mut &msg[..], HeaderLimits::default()).unwrap();
    assert_eq!(parsed.header.suite.message_format_version(), 1);
    let iv_at = parsed.wire_len() - 16 - 12;
    for i in 0..12 {
        let mut bad = msg.clone();
        bad[iv_at + i] ^= 0x80;
        let e = ParsedHeader::read(&mut &bad[..], HeaderLimits::default()).unwrap_err();
        assert!(
            matches!(&e, Error::MalformedHeader(m) if m.contains("IV")),
            "byte {i}: {e}"
        );
    }
}
