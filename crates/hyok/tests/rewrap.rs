//! Re-wrap through the facade: a message moves from one key to another without its body
//! changing, and only the new key opens it afterwards.

use std::io::{Read, Write};
use std::sync::Arc;

use hyok::{Client, EncryptionContext, OpLabel};
use hyok_keystore::raw::RawAesKey;
use hyok_keystore::{KeyManager, Keyring};

fn manager(name: &str, byte: u8) -> KeyManager {
    let key = RawAesKey::new("ns", name, &[byte; 32]).unwrap();
    KeyManager::new(Keyring::new(vec![Arc::new(key)]).unwrap())
}

#[tokio::test]
async fn rewrap_moves_a_message_to_a_new_key() {
    let old = Client::new(manager("old", 1));
    let new = Client::new(manager("new", 2));
    let ctx: EncryptionContext = [("object", "a/b")].into_iter().collect();
    let label = OpLabel::default();
    let pt: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let m = old
        .encryption_materials(&ctx, &Default::default(), pt.len() as u64, &label)
        .await
        .unwrap();
    let mut enc = old.encryptor(Vec::new(), m).unwrap();
    enc.write_all(&pt).unwrap();
    let (msg, _) = enc.finish().unwrap();

    let parsed = old.read_header(&mut &msg[..]).unwrap();
    let (header, old_len) = old.rewrap(parsed, &ctx, new.keys(), &label).await.unwrap();
    let mut moved = header;
    moved.extend_from_slice(&msg[old_len..]);
    assert_eq!(
        &moved[moved.len() - (msg.len() - old_len)..],
        &msg[old_len..]
    );

    let mut input = &moved[..];
    let parsed = new.read_header(&mut input).unwrap();
    let verified = new.open(parsed, &ctx, &label).await.unwrap();
    let mut out = Vec::new();
    new.decryptor(verified, input)
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, pt);

    let parsed = old.read_header(&mut &moved[..]).unwrap();
    let err = old.open(parsed, &ctx, &label).await.unwrap_err();
    assert!(err.to_string().contains("no configured key"), "{err}");
}
