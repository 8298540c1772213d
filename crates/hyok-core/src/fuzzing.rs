//! Entry points of the fuzz targets in `fuzz/` (cargo-fuzz / libFuzzer), also run over the
//! test vectors by an ordinary test. Not a stable API: hidden from the docs.
//!
//! Each function takes arbitrary bytes, must never panic on them, and panics (an
//! assertion) only when hyok-core breaks one of its promises:
//! - [`header`]: a parsed header encodes back to exactly the bytes received.
//! - [`decrypt`]: a message that was changed in any way does not decrypt; plaintext released
//!   before an error is a prefix of the real plaintext; an unchanged message decrypts to
//!   its plaintext. The same for a [`FrameOpener`] fed in pieces (unsigned framed messages).

use std::collections::BTreeSet;
use std::io::{BufRead, Read, Write};

use crate::*;

/// Data key every fuzzed message is made with (and tried on raw inputs), long enough for
/// any suite.
const FIXED_KEY: [u8; 32] = [0x42; 32];

/// Offset of the encryption context length field in a header body of `version`.
fn context_field(version: u8) -> usize {
    match version {
        1 => 1 + 1 + 2 + 16,
        _ => 1 + 2 + 32,
    }
}

/// Parse `data` as a header. When it parses, encoding the parsed header must give back the
/// received body bytes, and the header on the wire must be a prefix of `data`. The one
/// difference allowed: an encryption context received out of key order (which readers
/// accept: the header tag covers the bytes as received) comes back in canonical order,
/// same length, same pairs.
pub fn header(data: &[u8]) {
    let mut input = data;
    let Ok(parsed) = ParsedHeader::read(&mut input, HeaderLimits::default()) else {
        return;
    };
    let consumed = data.len() - input.len();
    assert_eq!(parsed.wire_bytes(), &data[..consumed], "wire bytes");
    let received = &parsed.body_bytes;
    let encoded = parsed
        .header
        .encode_body()
        .expect("a header that parsed encodes");
    if &encoded == received {
        return;
    }
    // Only the context may differ, and only in order.
    let at = context_field(received[0]) + 2;
    let len = u16::from_be_bytes([received[at - 2], received[at - 1]]) as usize;
    assert_eq!(encoded.len(), received.len(), "encoded length");
    assert_eq!(encoded[..at], received[..at], "bytes before the context");
    assert_eq!(
        encoded[at + len..],
        received[at + len..],
        "bytes after the context"
    );
    let again = EncryptionContext::deserialize(&received[at..at + len])
        .expect("the received context parsed once already");
    assert_eq!(again, parsed.header.context, "context pairs");
}

/// Decrypt `data`. The first byte picks the mode:
/// - even: `data[1..]` is a message, tried with a fixed data key (exercises parsing and
///   every early rejection);
/// - odd: `data[1..]` describes a message (suite, framed or not, frame length, plaintext)
///   and one change
///   to make to it (flip, cut, insert, or none); the message is made with the fixed key,
///   changed, and decrypted, and the promises above are checked.
pub fn decrypt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        decrypt_raw(rest);
    } else {
        mutate_and_decrypt(rest);
    }
}

fn decrypt_raw(msg: &[u8]) {
    let mut input = msg;
    let Ok(parsed) = ParsedHeader::read(&mut input, HeaderLimits::default()) else {
        return;
    };
    let suite = parsed.header.suite;
    let _ = parsed.materials_context(&EncryptionContext::new());
    let key = DataKey::from_slice(&FIXED_KEY[..suite.key_len()]);
    let Ok(verified) = parsed.verify(&key, &EncryptionContext::new()) else {
        return;
    };
    let opts = DecryptOptions {
        parallelism: Parallelism::Sequential,
        max_unframed: 1 << 20,
        ..DecryptOptions::default()
    };
    let mut dec = verified.decryptor(input, opts);
    let mut buf = [0u8; 4096];
    while let Ok(n) = dec.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

/// A little reader of the fuzz input that never fails (zeros past the end).
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

/// One change made to a message.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)] // the fields are read through `Debug`, in assertion messages
enum Change {
    None,
    Flip { at: usize, mask: u8 },
    Cut { at: usize },
    Insert { at: usize, byte: u8 },
}

fn mutate_and_decrypt(data: &[u8]) {
    let mut b = Bytes(data);
    let flags = b.u8();
    let suite = if flags & 1 == 0 {
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey
    } else {
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384
    };
    let frame_length = u32::from(b.u16() % 512) + 1;
    let read_size = usize::from(b.u16() % 700) + 1;
    // Flag 16: `Decryptor::write_to`; otherwise flag 2: `BufRead`, or `Read`.
    let style = match (flags & 16 != 0, flags & 2 != 0) {
        (true, _) => ReadStyle::WriteTo,
        (false, true) => ReadStyle::BufRead,
        (false, false) => ReadStyle::Read,
    };
    // Flag 32: the plaintext goes in through `Encryptor::copy_from`.
    let copy_from = flags & 32 != 0;
    let with_context = flags & 4 != 0;
    let change_kind = b.u8() % 4;
    let change_at = b.u32() as usize;
    let change_byte = b.u8();
    let pt_len = usize::from(b.u16() % 2048);
    let plaintext: Vec<u8> = b.0.iter().copied().cycle().take(pt_len).collect();

    let mut ctx = EncryptionContext::new();
    if with_context {
        ctx.insert("fuzz", "context");
    }
    // Flag 8: a non-framed body (legacy layout, which hyok reads but never writes), made
    // here by hand, unsigned suite only.
    let msg = if flags & 8 != 0 {
        encrypt_fixed_unframed(&ctx, &plaintext)
    } else {
        encrypt_fixed(suite, &ctx, frame_length, &plaintext, copy_from)
    };
    let mut changed = msg.clone();
    let change = match change_kind {
        1 if !msg.is_empty() => {
            let at = change_at % msg.len();
            let mask = change_byte.max(1);
            changed[at] ^= mask;
            Change::Flip { at, mask }
        }
        2 => {
            let at = change_at % msg.len();
            changed.truncate(at);
            Change::Cut { at }
        }
        3 => {
            let at = change_at % (msg.len() + 1);
            changed.insert(at, change_byte);
            Change::Insert {
                at,
                byte: change_byte,
            }
        }
        _ => Change::None,
    };

    let (released, result) = decrypt_fixed(&changed, &ctx, read_size, style);
    check_promises(&change, &plaintext, &released, &result);
    // An unsigned framed message is also opened frame by frame, fed in pieces of
    // `read_size` bytes, as a server on its runtime does (`FrameOpener`): the same promises.
    if flags & 9 == 0 {
        let (released, result) = open_fixed(&changed, &ctx, read_size);
        check_promises(&change, &plaintext, &released, &result);
    }
}

fn check_promises(change: &Change, plaintext: &[u8], released: &[u8], result: &Result<()>) {
    assert!(
        plaintext.starts_with(released),
        "{change:?}: released bytes that are not the plaintext's"
    );
    match change {
        Change::None => {
            assert!(result.is_ok(), "an unchanged message failed: {result:?}");
            assert_eq!(
                released, plaintext,
                "an unchanged message decrypted wrongly"
            );
        }
        _ => assert!(result.is_err(), "{change:?}: a changed message decrypted"),
    }
}

/// Open `msg` (made with the fixed key) with a [`FrameOpener`] fed `piece` bytes at a time.
fn open_fixed(msg: &[u8], ctx: &EncryptionContext, piece: usize) -> (Vec<u8>, Result<()>) {
    let mut input = msg;
    let opened = ParsedHeader::read(&mut input, HeaderLimits::default())
        .and_then(|p| p.verify(&DataKey::from_slice(&FIXED_KEY), ctx))
        .and_then(|v| v.frame_opener(1, None));
    match opened {
        Ok(o) => open_in_pieces(o, input, piece),
        Err(e) => (Vec::new(), Err(e)),
    }
}

/// Feed `input` to `opener` `piece` bytes at a time (at least 1), opening every frame as soon
/// as it is whole, the way a server fed by a network stream does; returns the plaintext
/// released and how it ended. Never holds more than one frame and one piece.
pub fn open_in_pieces(
    mut opener: FrameOpener,
    input: &[u8],
    piece: usize,
) -> (Vec<u8>, Result<()>) {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut rest = input;
    loop {
        loop {
            match opener.open_next(&mut buf) {
                Ok(Some(f)) => {
                    out.extend_from_slice(&buf[f.plaintext]);
                    buf.drain(..f.consumed);
                }
                Ok(None) => break,
                Err(e) => return (out, Err(e)),
            }
        }
        assert!(
            buf.len() < opener.max_frame_wire_len(),
            "a whole frame's bytes were held without being opened"
        );
        if rest.is_empty() {
            let end = if buf.is_empty() {
                opener.finish()
            } else {
                Err(Error::Truncated("frame"))
            };
            return (out, end);
        }
        let n = piece.max(1).min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
    }
}

/// Encrypt with the fixed data key and a fixed message id (and, for signed suites, a fixed
/// signing key), so the same input always gives the same message.
fn encrypt_fixed(
    suite: AlgorithmSuite,
    ctx: &EncryptionContext,
    frame_length: u32,
    plaintext: &[u8],
    copy_from: bool,
) -> Vec<u8> {
    let mut pending =
        PendingEncryption::new(suite, ctx.clone(), BTreeSet::new()).expect("valid settings");
    pending.fix_for_fuzzing();
    let edk = EncryptedDataKey {
        provider_id: "fuzz".into(),
        provider_info: b"fixed".to_vec(),
        ciphertext: vec![0; 48],
    };
    let materials = pending
        .complete(DataKey::from_slice(&FIXED_KEY), vec![edk])
        .expect("materials");
    // `copy_from` with a pool reads and seals on a helper thread (`seal_ahead`).
    let opts = EncryptOptions {
        frame_length,
        parallelism: if copy_from {
            Parallelism::Global
        } else {
            Parallelism::Sequential
        },
    };
    let mut enc = Encryptor::new(Vec::new(), materials, opts).expect("encryptor");
    if copy_from {
        let n = enc.copy_from(&mut &plaintext[..]).expect("reading a slice");
        assert_eq!(n, plaintext.len() as u64, "copy_from took every byte");
    } else {
        // Uneven writes, to cross the buffered and the direct path.
        for piece in plaintext.chunks(frame_length as usize * 2 + 3) {
            enc.write_all(piece).expect("writing to a Vec");
        }
    }
    enc.finish().expect("finish").0
}

/// A committed (0x0478) message with a non-framed body: header with content type 1 and
/// frame length 0, then IV ‖ length (8) ‖ ciphertext ‖ tag of one GCM block.
fn encrypt_fixed_unframed(ctx: &EncryptionContext, plaintext: &[u8]) -> Vec<u8> {
    use aws_lc_rs::aead::{Aad, Nonce};
    let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
    let message_id = vec![7u8; 32];
    let keys = key::derive(suite, &DataKey::from_slice(&FIXED_KEY), &message_id).expect("derive");
    let header = Header {
        suite,
        message_id: message_id.clone(),
        context: ctx.clone(),
        edks: vec![EncryptedDataKey {
            provider_id: "fuzz".into(),
            provider_info: b"fixed".to_vec(),
            ciphertext: vec![0; 48],
        }],
        content_type: ContentType::NonFramed,
        frame_length: 0,
        suite_data: keys.commitment.as_ref().expect("committing suite").to_vec(),
    };
    let mut msg = header.encode_body().expect("header encodes");
    let tag = header::seal_header(&keys, &msg, &[]).expect("header tag");
    msg.extend_from_slice(&tag);
    let iv = frame::frame_iv(1);
    let aad = frame::body_aad(&message_id, frame::SINGLE_BLOCK, 1, plaintext.len() as u64);
    let mut body = plaintext.to_vec();
    let body_tag = keys
        .aead
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(&aad), &mut body)
        .expect("seal");
    msg.extend_from_slice(&iv);
    msg.extend_from_slice(&(plaintext.len() as u64).to_be_bytes());
    msg.extend_from_slice(&body);
    msg.extend_from_slice(body_tag.as_ref());
    msg
}

/// How the fuzzer takes plaintext out of a decryptor.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadStyle {
    Read,
    BufRead,
    WriteTo,
}

/// Decrypt with the fixed data key; returns what was released and how it ended.
fn decrypt_fixed(
    msg: &[u8],
    ctx: &EncryptionContext,
    read_size: usize,
    style: ReadStyle,
) -> (Vec<u8>, Result<()>) {
    let mut released = Vec::new();
    let mut input = msg;
    let parsed = match ParsedHeader::read(&mut input, HeaderLimits::default()) {
        Ok(p) => p,
        Err(e) => return (released, Err(e)),
    };
    let key = DataKey::from_slice(&FIXED_KEY);
    let verified = match parsed.verify(&key, ctx) {
        Ok(v) => v,
        Err(e) => return (released, Err(e)),
    };
    let opts = DecryptOptions {
        parallelism: Parallelism::Sequential,
        ..DecryptOptions::default()
    };
    let mut dec = verified.decryptor(input, opts);
    if style == ReadStyle::WriteTo {
        // The first `read_size` bytes through `BufRead`, the rest written out.
        if let Ok(b) = dec.fill_buf() {
            let n = b.len().min(read_size);
            released.extend_from_slice(&b[..n]);
            dec.consume(n);
        }
        return match dec.write_to(&mut released) {
            Ok(_) if dec.is_complete() => (released, Ok(())),
            Ok(_) => (
                released,
                Err(Error::Truncated("fuzz: decryptor not complete")),
            ),
            Err(e) => (released, Err(Error::from_io(e))),
        };
    }
    let use_buf_read = style == ReadStyle::BufRead;
    let mut buf = vec![0u8; read_size];
    loop {
        let step = if use_buf_read {
            dec.fill_buf().map(|b| {
                let n = b.len().min(read_size);
                released.extend_from_slice(&b[..n]);
                n
            })
        } else {
            dec.read(&mut buf)
                .inspect(|&n| released.extend_from_slice(&buf[..n]))
        };
        match step {
            Ok(0) => break,
            Ok(n) if use_buf_read => dec.consume(n),
            Ok(_) => {}
            Err(e) => return (released, Err(Error::from_io(e))),
        }
    }
    let res = if dec.is_complete() {
        Ok(())
    } else {
        Err(Error::Truncated("fuzz: decryptor not complete"))
    };
    (released, res)
}

#[cfg(test)]
mod tests {
    //! The fuzz functions over the official vectors and changed copies of them, and over a
    //! fixed set of generated inputs: what `cargo fuzz` starts from, on the stable toolchain.

    use std::path::PathBuf;

    use super::*;

    fn vectors() -> Vec<(String, Vec<u8>)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/esdk/ciphertexts");
        let mut out: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| {
                let p = e.unwrap().path();
                (p.display().to_string(), std::fs::read(&p).unwrap())
            })
            .collect();
        out.sort();
        assert!(
            out.len() > 100,
            "expected the ESDK vectors in {}",
            dir.display()
        );
        out
    }

    /// xorshift64*: a fixed stream of pseudo-random numbers.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn header_round_trips_on_every_vector_and_its_changes() {
        let mut parsed = 0;
        for (name, msg) in vectors() {
            let mut input = &msg[..];
            if ParsedHeader::read(&mut input, HeaderLimits::default()).is_ok() {
                parsed += 1;
            }
            let header_len = msg.len() - input.len();
            header(&msg);
            // Every cut and a flipped low bit at every position of the header region;
            // other flips at every fifth position.
            for at in 0..header_len.min(msg.len()) {
                header(&msg[..at]);
                let masks: &[u8] = if at % 5 == 0 {
                    &[0x01, 0x80, 0xff]
                } else {
                    &[0x01]
                };
                for &mask in masks {
                    let mut m = msg[..header_len.max(1)].to_vec();
                    m[at] ^= mask;
                    header(&m);
                }
            }
            let _ = name;
        }
        assert!(parsed > 100, "only {parsed} vector headers parsed");
    }

    #[test]
    fn raw_decrypt_survives_every_vector_and_its_changes() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for (_, msg) in vectors() {
            let mut input = vec![0u8];
            input.extend_from_slice(&msg);
            decrypt(&input);
            for _ in 0..32 {
                let mut m = input.clone();
                let at = 1 + (rng.next() as usize) % msg.len().max(1);
                match rng.next() % 3 {
                    0 if at < m.len() => m[at] ^= (rng.next() as u8).max(1),
                    1 => m.truncate(at),
                    _ => m.insert(at.min(m.len()), rng.next() as u8),
                }
                decrypt(&m);
            }
        }
    }

    #[test]
    fn generated_messages_with_one_change_never_decrypt() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        for i in 0..1024u32 {
            let mut input = vec![1u8];
            let len = 16 + (rng.next() % 600) as usize;
            input.extend((0..len).map(|_| rng.next() as u8));
            // Cover every change kind, both suites, framed and non-framed, every read style
            // and both ways in evenly.
            input[1] = (i % 64) as u8;
            input[6] = (i / 64 % 4) as u8;
            decrypt(&input);
        }
    }

    /// The committed corpora of the `header` and `decrypt` targets (fuzz/corpus/), each
    /// input as it is and with one bit flipped at spread-out positions.
    #[test]
    fn committed_corpora_replay() {
        for (target, f) in [("header", header as fn(&[u8])), ("decrypt", decrypt)] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../fuzz/corpus")
                .join(target);
            let mut n = 0;
            for e in std::fs::read_dir(&dir).unwrap() {
                let data = std::fs::read(e.unwrap().path()).unwrap();
                f(&data);
                for i in (1..data.len()).step_by(data.len() / 97 + 1) {
                    let mut d = data.clone();
                    d[i] ^= 1 << (i % 8);
                    f(&d);
                }
                n += 1;
            }
            assert!(n >= 4, "corpus {}", dir.display());
        }
    }
}
