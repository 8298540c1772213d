//! Round-trip and malformed-input tests of the format core.

use std::collections::BTreeSet;
use std::io::{Read, Write};

use proptest::prelude::*;

use crate::*;

const COMMIT: AlgorithmSuite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
const SIGNED: AlgorithmSuite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384;

fn edk() -> EncryptedDataKey {
    EncryptedDataKey {
        provider_id: "test".into(),
        provider_info: b"key".to_vec(),
        ciphertext: vec![7; 48],
    }
}

fn ctx() -> EncryptionContext {
    [("tenant", "a"), ("ключ", "значение")]
        .into_iter()
        .collect()
}

/// How the plaintext is fed in and read out.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// One write_all, one read_to_end, sequential crypto.
    OneShot,
    /// Many small writes and reads of odd sizes.
    Streaming,
    /// Parallel crypto on a 2-thread pool.
    Parallel,
    /// Decrypt with `Decryptor::write_to`, sequential crypto, from an input that returns
    /// at most 7 bytes per read (encrypt: as `OneShot`).
    WriteTo,
    /// Decrypt with `Decryptor::write_to` on a 2-thread pool (encrypt: as `Parallel`).
    WriteToParallel,
}

fn par(path: Path) -> Parallelism {
    match path {
        Path::Parallel | Path::WriteToParallel => Parallelism::threads(2).unwrap(),
        _ => Parallelism::Sequential,
    }
}

/// A reader that hands out at most 7 bytes per call.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = out.len().min(7).min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// Every way of reading a message body.
const DECRYPT_PATHS: [Path; 5] = [
    Path::OneShot,
    Path::Streaming,
    Path::Parallel,
    Path::WriteTo,
    Path::WriteToParallel,
];

/// An encryptor into a `Vec` for `suite` and `frame`, with the data key it uses.
fn encryptor(suite: AlgorithmSuite, frame: u32, path: Path) -> (Encryptor<Vec<u8>>, DataKey) {
    encryptor_requiring(suite, frame, path, &[])
}

/// [`encryptor`], with context keys that must be reproduced on decrypt.
fn encryptor_requiring(
    suite: AlgorithmSuite,
    frame: u32,
    path: Path,
    required: &[&str],
) -> (Encryptor<Vec<u8>>, DataKey) {
    let required: BTreeSet<String> = required.iter().map(|s| s.to_string()).collect();
    let pending = PendingEncryption::new(suite, ctx(), required).unwrap();
    let dk = DataKey::generate(suite).unwrap();
    let copy = dk.duplicate();
    let materials = pending.complete(dk, vec![edk()]).unwrap();
    let opts = EncryptOptions {
        frame_length: frame,
        parallelism: par(path),
    };
    (Encryptor::new(Vec::new(), materials, opts).unwrap(), copy)
}

fn encrypt_with(
    suite: AlgorithmSuite,
    frame: u32,
    pt: &[u8],
    path: Path,
    required: &[&str],
) -> (Vec<u8>, DataKey) {
    let (mut enc, copy) = encryptor_requiring(suite, frame, path, required);
    match path {
        Path::Streaming => {
            for chunk in pt.chunks(977) {
                enc.write_all(chunk).unwrap();
            }
        }
        _ => enc.write_all(pt).unwrap(),
    }
    let (msg, n) = enc.finish().unwrap();
    assert_eq!(n, pt.len() as u64);
    (msg, copy)
}

fn decrypt_with(
    msg: &[u8],
    dk: &DataKey,
    reproduced: &EncryptionContext,
    path: Path,
) -> Result<Vec<u8>> {
    decrypt_into(msg, dk, reproduced, path, &mut Vec::new())
}

/// Decrypt `msg` along `path` into `out`; what was released before an error stays in `out`.
fn decrypt_into(
    msg: &[u8],
    dk: &DataKey,
    reproduced: &EncryptionContext,
    path: Path,
    out: &mut Vec<u8>,
) -> Result<Vec<u8>> {
    let mut input = msg;
    let parsed = ParsedHeader::read(&mut input, HeaderLimits::default())?;
    let verified = parsed.verify(dk, reproduced)?;
    let opts = DecryptOptions {
        parallelism: par(path),
        ..Default::default()
    };
    if let Path::WriteTo | Path::WriteToParallel = path {
        let mut dec = verified.decryptor(Trickle(input), opts);
        let n = dec.write_to(out).map_err(Error::from_io)?;
        assert_eq!(n, out.len() as u64);
        assert_eq!(dec.plaintext_len(), n);
        assert!(dec.is_complete());
        return Ok(out.clone());
    }
    let mut dec = verified.decryptor(input, opts);
    match path {
        Path::Streaming => {
            let mut buf = [0u8; 1013];
            loop {
                let n = dec.read(&mut buf).map_err(Error::from_io)?;
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
        }
        _ => {
            dec.read_to_end(out).map_err(Error::from_io)?;
        }
    }
    assert!(dec.is_complete());
    Ok(out.clone())
}

fn sizes(f: usize) -> Vec<usize> {
    vec![0, 1, f - 1, f, f + 1, 3 * f, 3 * f + 5]
}

#[test]
fn round_trip_all_paths_and_edge_sizes() {
    for suite in [COMMIT, SIGNED] {
        for frame in [128u32, 4096] {
            for size in sizes(frame as usize) {
                let pt: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
                for path in [Path::OneShot, Path::Streaming, Path::Parallel] {
                    let (msg, dk) = encrypt_with(suite, frame, &pt, path, &[]);
                    for dpath in DECRYPT_PATHS {
                        let out = decrypt_with(&msg, &dk, &EncryptionContext::new(), dpath)
                            .unwrap_or_else(|e| {
                                panic!("{suite:?} {frame} {size} {path:?}/{dpath:?}: {e}")
                            });
                        assert_eq!(out, pt);
                    }
                }
            }
        }
    }
}

#[test]
fn batches_larger_than_one_buffer_round_trip() {
    let pt: Vec<u8> = (0..9 * 1024 * 1024 + 17).map(|i| (i % 253) as u8).collect();
    for path in [Path::OneShot, Path::Parallel] {
        let (msg, dk) = encrypt_with(COMMIT, 64 * 1024, &pt, path, &[]);
        for dpath in [path, Path::WriteToParallel] {
            assert_eq!(
                decrypt_with(&msg, &dk, &EncryptionContext::new(), dpath).unwrap(),
                pt
            );
        }
    }
}

/// Encrypt `pt` feeding it in writes of the sizes in `pattern` (cycled).
fn encrypt_in_writes(frame: u32, pt: &[u8], pattern: &[usize], path: Path) -> (Vec<u8>, DataKey) {
    let (mut enc, copy) = encryptor(COMMIT, frame, path);
    let mut rest = pt;
    for &n in pattern.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at(n.min(rest.len()));
        enc.write_all(now).unwrap();
        rest = later;
    }
    let (msg, n) = enc.finish().unwrap();
    assert_eq!(n, pt.len() as u64);
    (msg, copy)
}

#[test]
fn frame_layout_does_not_depend_on_write_sizes() {
    // Large writes are sealed straight from the caller's data, small ones buffered; the
    // frames must come out the same either way (same length = same frames), including a
    // full buffered batch followed by a large write.
    let f = 64 * 1024;
    let pt: Vec<u8> = (0..(4 << 20) + 5 * f + 3)
        .map(|i| (i % 241) as u8)
        .collect();
    let patterns: [&[usize]; 6] = [
        &[pt.len()],
        &[f; 1],
        &[f + 1, 7, 3 * f - 2],
        &[1 << 20],
        &[977, 5 * f + 11],
        &[f / 2; 1],
    ];
    let mut lengths = Vec::new();
    for (i, pattern) in patterns.iter().enumerate() {
        let path = if i % 2 == 0 {
            Path::Parallel
        } else {
            Path::OneShot
        };
        let (msg, dk) = encrypt_in_writes(f as u32, &pt, pattern, path);
        assert_eq!(
            decrypt_with(&msg, &dk, &EncryptionContext::new(), path).unwrap(),
            pt,
            "pattern {pattern:?}"
        );
        lengths.push(msg.len());
    }
    assert!(lengths.windows(2).all(|w| w[0] == w[1]), "{lengths:?}");
    // 4 MiB of frame-sized writes fill the buffer exactly; a large write follows.
    let mut pattern = vec![f; 64];
    pattern.push(3 * f + 9);
    let (msg, dk) = encrypt_in_writes(f as u32, &pt, &pattern, Path::OneShot);
    assert_eq!(msg.len(), lengths[0]);
    assert_eq!(
        decrypt_with(&msg, &dk, &EncryptionContext::new(), Path::Parallel).unwrap(),
        pt
    );
}

#[test]
fn buf_read_releases_the_same_plaintext_and_stops_after_an_error() {
    use std::io::BufRead;
    let pt: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
    let (msg, dk) = encrypt_with(COMMIT, 128, &pt, Path::OneShot, &[]);
    fn open<'a>(msg: &'a [u8], dk: &DataKey) -> (Decryptor<&'a [u8]>, usize) {
        let mut input = msg;
        let parsed = ParsedHeader::read(&mut input, HeaderLimits::default()).unwrap();
        let verified = parsed.verify(dk, &EncryptionContext::new()).unwrap();
        let header_len = msg.len() - input.len();
        (
            verified.decryptor(input, DecryptOptions::default()),
            header_len,
        )
    }
    let (mut dec, header_len) = open(&msg, &dk);
    let mut out = Vec::new();
    loop {
        let buf = dec.fill_buf().unwrap();
        if buf.is_empty() {
            break;
        }
        // Take odd amounts to cross frame boundaries.
        let n = buf.len().min(77);
        out.extend_from_slice(&buf[..n]);
        dec.consume(n);
    }
    assert_eq!(out, pt);
    assert!(dec.is_complete());
    assert_eq!(dec.plaintext_len(), pt.len() as u64);

    // A tag broken in frame 3: frames 1 and 2 may come out, nothing after, and the error
    // sticks.
    let mut bad = msg.clone();
    let frame_bytes = 4 + IV_LEN + 128 + TAG_LEN;
    bad[header_len + 2 * frame_bytes + 40] ^= 1;
    let (mut dec, _) = open(&bad, &dk);
    let mut out = Vec::new();
    let err = dec.read_to_end(&mut out).unwrap_err();
    assert!(matches!(Error::from_io(err), Error::FrameAuth(3)));
    assert!(
        pt.starts_with(&out) && out.len() <= 2 * 128,
        "{}",
        out.len()
    );
    assert!(dec.fill_buf().is_err());
    assert!(!dec.is_complete());
}

/// `write_to` after part of the plaintext went out through `fill_buf`, and on a message
/// whose third 4 MiB batch is broken: the batches before it come out whole, nothing of it,
/// and the error is the frame's.
#[test]
fn write_to_continues_a_read_and_stops_at_the_first_bad_batch() {
    use std::io::BufRead;
    let frame = 4096u32;
    let pt: Vec<u8> = (0..10 * 1024 * 1024 + 99u32)
        .map(|i| (i % 251) as u8)
        .collect();
    let (msg, dk) = encrypt_with(COMMIT, frame, &pt, Path::Parallel, &[]);
    let h = ParsedHeader::read(&mut &msg[..], HeaderLimits::default())
        .unwrap()
        .wire_len();
    let open = |m: &[u8], path: Path| {
        let mut input = &m[h..];
        let v = ParsedHeader::read(&mut &m[..], HeaderLimits::default())
            .unwrap()
            .verify(&dk, &EncryptionContext::new())
            .unwrap();
        let opts = DecryptOptions {
            parallelism: par(path),
            ..Default::default()
        };
        let body = std::mem::take(&mut input).to_vec();
        v.decryptor(std::io::Cursor::new(body), opts)
    };
    for path in [Path::WriteTo, Path::WriteToParallel] {
        let mut dec = open(&msg, path);
        let head = dec.fill_buf().unwrap()[..1000].to_vec();
        dec.consume(1000);
        let mut out = head;
        let n = dec.write_to(&mut out).unwrap();
        assert_eq!(n as usize + 1000, pt.len());
        assert!(out == pt, "{path:?}");
        assert!(dec.is_complete());

        let per_batch = 4 * 1024 * 1024 / frame as usize;
        let slot = 4 + IV_LEN + frame as usize + TAG_LEN;
        let mut bad = msg.clone();
        bad[h + (2 * per_batch + 5) * slot + 100] ^= 1;
        let mut dec = open(&bad, path);
        let mut out = Vec::new();
        let err = dec.write_to(&mut out).unwrap_err();
        assert!(
            matches!(Error::from_io(err), Error::FrameAuth(n) if n == 2 * per_batch as u32 + 6),
            "{path:?}"
        );
        assert_eq!(out.len(), 2 * per_batch * frame as usize, "{path:?}");
        assert!(pt.starts_with(&out));
        assert!(dec.write_to(&mut out).is_err());
        assert!(!dec.is_complete());
    }
}

/// Encrypt `pt` with `Encryptor::copy_from`, after `before` bytes of it went through
/// `Write`; from a `Trickle` reader if `trickle`.
fn encrypt_copying(
    suite: AlgorithmSuite,
    frame: u32,
    pt: &[u8],
    before: usize,
    trickle: bool,
    path: Path,
) -> (Vec<u8>, DataKey) {
    let (mut enc, copy) = encryptor(suite, frame, path);
    enc.write_all(&pt[..before]).unwrap();
    let n = if trickle {
        enc.copy_from(&mut Trickle(&pt[before..])).unwrap()
    } else {
        enc.copy_from(&mut &pt[before..]).unwrap()
    };
    assert_eq!(n as usize, pt.len() - before);
    let (msg, total) = enc.finish().unwrap();
    assert_eq!(total, pt.len() as u64);
    (msg, copy)
}

/// `copy_from` (frames read into place and sealed there) writes the same frame layout
/// as `Write` for every size around the batch boundaries, one or two frames per batch,
/// short reads, the signed suite, and bytes written through `Write` first.
#[test]
fn copy_from_makes_the_same_frames_as_write() {
    let b = 4 * 1024 * 1024usize;
    let k64 = 64 * 1024u32;
    let cases: &[(AlgorithmSuite, u32, usize, usize, bool)] = &[
        (COMMIT, k64, 0, 0, false),
        (COMMIT, k64, 1, 0, false),
        (COMMIT, k64, k64 as usize, 0, false),
        (COMMIT, k64, b - 1, 0, false),
        (COMMIT, k64, b, 0, false),
        (COMMIT, k64, b + 1, 0, true),
        (COMMIT, k64, 2 * b - k64 as usize, 0, false),
        (COMMIT, k64, 2 * b + 5, 0, false),
        (COMMIT, k64, 3 * b, 0, true),
        (COMMIT, 1000, b + 3, 0, false),
        (COMMIT, k64, 2 * b + 5, 100, false),
        (SIGNED, k64, 2 * b + 7, 0, false),
        (COMMIT, 2 * 1024 * 1024, 3 * b + 1, 0, false),
        (COMMIT, 4 * 1024 * 1024, 2 * b, 0, false),
    ];
    for &(suite, frame, size, before, trickle) in cases {
        let pt: Vec<u8> = (0..size).map(|i| (i * 13 % 251) as u8).collect();
        for path in [Path::OneShot, Path::Parallel] {
            let (msg, dk) = encrypt_copying(suite, frame, &pt, before, trickle, path);
            let what = format!("{suite:?} frame {frame} size {size} {path:?}");
            if suite == COMMIT {
                let (by_write, _) = encrypt_with(suite, frame, &pt, Path::OneShot, &[]);
                assert_eq!(msg.len(), by_write.len(), "{what}");
            }
            let out = decrypt_with(&msg, &dk, &EncryptionContext::new(), Path::OneShot)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(out == pt, "{what}");
        }
    }
}

/// A writer that takes `left` bytes and then fails.
struct FullDisk {
    left: usize,
}

impl Write for FullDisk {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if b.len() > self.left {
            return Err(std::io::Error::other("no space left"));
        }
        self.left -= b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reader of `data` that fails once it is used up.
struct BrokenInput<'a>(&'a [u8]);

impl Read for BrokenInput<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() {
            return Err(std::io::Error::other("input gone"));
        }
        let n = out.len().min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// `copy_from` with the reading and sealing on a helper thread (a pool) and on this thread
/// (sequential): a writer that fails in the second batch stops the copy with its error, and
/// an input that fails in the third batch with the input's error.
#[test]
fn copy_from_returns_the_first_error_of_either_side() {
    let pt: Vec<u8> = (0..10 * 1024 * 1024usize).map(|i| i as u8).collect();
    for path in [Path::OneShot, Path::Parallel] {
        let new = |out: FullDisk| {
            let pending = PendingEncryption::new(COMMIT, ctx(), BTreeSet::new()).unwrap();
            let materials = pending
                .complete(DataKey::generate(COMMIT).unwrap(), vec![edk()])
                .unwrap();
            let opts = EncryptOptions {
                frame_length: 64 * 1024,
                parallelism: par(path),
            };
            Encryptor::new(out, materials, opts).unwrap()
        };
        let mut enc = new(FullDisk {
            left: 6 * 1024 * 1024,
        });
        let err = enc.copy_from(&mut &pt[..]).unwrap_err();
        assert_eq!(err.to_string(), "no space left", "{path:?}");

        let mut enc = new(FullDisk { left: usize::MAX });
        let err = enc
            .copy_from(&mut BrokenInput(&pt[..9 * 1024 * 1024]))
            .unwrap_err();
        assert_eq!(err.to_string(), "input gone", "{path:?}");
    }
}

#[test]
fn required_context_must_be_reproduced() {
    let (msg, dk) = encrypt_with(COMMIT, 256, b"secret", Path::OneShot, &["tenant"]);
    let mut input = &msg[..];
    let parsed = ParsedHeader::read(&mut input, HeaderLimits::default()).unwrap();
    assert!(!parsed.header.context.contains_key("tenant"));
    let empty = EncryptionContext::new();
    assert!(matches!(
        decrypt_with(&msg, &dk, &empty, Path::OneShot),
        Err(Error::HeaderAuth)
    ));
    let good: EncryptionContext = [("tenant", "a")].into_iter().collect();
    assert_eq!(
        decrypt_with(&msg, &dk, &good, Path::OneShot).unwrap(),
        b"secret"
    );
    let wrong: EncryptionContext = [("tenant", "b")].into_iter().collect();
    assert!(decrypt_with(&msg, &dk, &wrong, Path::OneShot).is_err());
    // A stored pair with a different value is refused before any crypto.
    let conflict: EncryptionContext = [("ключ", "other")].into_iter().collect();
    assert!(matches!(
        decrypt_with(&msg, &dk, &conflict, Path::OneShot),
        Err(Error::Context(_))
    ));
}

#[test]
fn wrong_key_fails_commitment() {
    let (msg, _) = encrypt_with(COMMIT, 256, b"secret", Path::OneShot, &[]);
    let other = DataKey::generate(COMMIT).unwrap();
    assert!(matches!(
        decrypt_with(&msg, &other, &EncryptionContext::new(), Path::OneShot),
        Err(Error::Commitment)
    ));
}

#[test]
fn every_flipped_byte_and_every_cut_is_detected() {
    for suite in [COMMIT, SIGNED] {
        let pt: Vec<u8> = (0..700u32).map(|i| i as u8).collect();
        let (msg, dk) = encrypt_with(suite, 256, &pt, Path::OneShot, &[]);
        for path in [Path::OneShot, Path::WriteTo, Path::WriteToParallel] {
            for i in 0..msg.len() {
                let mut bad = msg.clone();
                bad[i] ^= 0x01;
                let mut out = Vec::new();
                let res = decrypt_into(&bad, &dk, &EncryptionContext::new(), path, &mut out);
                assert!(
                    res.is_err(),
                    "{suite:?} {path:?}: flip at {i} of {} went unnoticed",
                    msg.len()
                );
                assert!(pt.starts_with(&out), "{suite:?} {path:?}: flip at {i}");
            }
            for cut in 0..msg.len() {
                let mut out = Vec::new();
                let res = decrypt_into(&msg[..cut], &dk, &EncryptionContext::new(), path, &mut out);
                assert!(
                    res.is_err(),
                    "{suite:?} {path:?}: cut at {cut} went unnoticed"
                );
                assert!(pt.starts_with(&out), "{suite:?} {path:?}: cut at {cut}");
            }
            for tail in [&[0u8][..], &[0u8; 300][..]] {
                let mut longer = msg.clone();
                longer.extend_from_slice(tail);
                assert!(matches!(
                    decrypt_with(&longer, &dk, &EncryptionContext::new(), path),
                    Err(Error::TrailingBytes)
                ));
            }
        }
    }
}

/// The IVs are fixed by the format (frame IV = sequence number, v1 header IV = zero): a
/// message with any other IV is malformed, whatever its tags say.
#[test]
fn frame_and_header_ivs_must_be_the_prescribed_ones() {
    let pt = vec![3u8; 700];
    let none = EncryptionContext::new();
    // (hyok writes no v1 messages; the v1 header IV is checked on a test vector in
    // hyok-keystore's `nonframed` tests.)
    for suite in [COMMIT, SIGNED] {
        let (msg, dk) = encrypt_with(suite, 256, &pt, Path::OneShot, &[]);
        let h = ParsedHeader::read(&mut &msg[..], HeaderLimits::default())
            .unwrap()
            .wire_len();
        // Regular frames: sequence number (4), IV (12), 256 bytes, tag (16).
        for iv_at in [h + 4, h + 4 + 12 + 256 + 16 + 4] {
            for path in [Path::OneShot, Path::Parallel] {
                let mut bad = msg.clone();
                bad[iv_at + 3] ^= 1;
                let e = decrypt_with(&bad, &dk, &none, path).unwrap_err();
                assert!(
                    matches!(&e, Error::MalformedBody(m) if m.contains("IV")),
                    "{suite:?} {path:?}: {e}"
                );
            }
        }
    }
}

#[test]
fn signed_suite_withholds_last_frame_until_signature_verifies() {
    let pt = vec![9u8; 300];
    let (mut msg, dk) = encrypt_with(SIGNED, 128, &pt, Path::OneShot, &[]);
    let last = msg.len() - 1;
    msg[last] ^= 1;
    let mut input = &msg[..];
    let parsed = ParsedHeader::read(&mut input, HeaderLimits::default()).unwrap();
    let verified = parsed.verify(&dk, &EncryptionContext::new()).unwrap();
    let mut dec = verified.decryptor(input, DecryptOptions::default());
    let mut out = Vec::new();
    let err = dec.read_to_end(&mut out).unwrap_err();
    assert!(matches!(Error::from_io(err), Error::Signature));
    // The two regular frames may have been released, the final frame (44 bytes) not.
    assert!(out.len() <= 256, "released {} bytes", out.len());
}

fn header_bytes(msg: &[u8]) -> usize {
    let mut input = msg;
    ParsedHeader::read(&mut input, HeaderLimits::default()).unwrap();
    msg.len() - input.len()
}

#[test]
fn malformed_headers_are_rejected() {
    let (msg, _) = encrypt_with(COMMIT, 256, b"x", Path::OneShot, &[]);
    let h = header_bytes(&msg);
    let parse = |b: &[u8]| ParsedHeader::read(&mut &b[..], HeaderLimits::default());
    // Unknown version, unknown suite, suite of the wrong version.
    let mut b = msg.clone();
    b[0] = 3;
    assert!(matches!(parse(&b), Err(Error::UnsupportedVersion(3))));
    let mut b = msg.clone();
    b[1..3].copy_from_slice(&0x0999u16.to_be_bytes());
    assert!(matches!(parse(&b), Err(Error::UnknownSuite(0x0999))));
    let mut b = msg.clone();
    b[1..3].copy_from_slice(&0x0178u16.to_be_bytes());
    assert!(matches!(parse(&b), Err(Error::MalformedHeader(_))));
    // Context length longer than the input.
    let mut b = msg.clone();
    b[35..37].copy_from_slice(&0xffffu16.to_be_bytes());
    assert!(parse(&b).is_err());
    // Every truncation of the header.
    for cut in 0..h {
        assert!(parse(&msg[..cut]).is_err(), "cut {cut}");
    }
    // Zero EDKs, and more EDKs than the limit.
    let aad_len = u16::from_be_bytes([msg[35], msg[36]]) as usize;
    let count_at = 37 + aad_len;
    let mut b = msg.clone();
    b[count_at..count_at + 2].copy_from_slice(&0u16.to_be_bytes());
    assert!(matches!(parse(&b), Err(Error::MalformedHeader(_))));
    let mut b = msg.clone();
    b[count_at..count_at + 2].copy_from_slice(&40000u16.to_be_bytes());
    assert!(matches!(
        parse(&b),
        Err(Error::TooManyEncryptedDataKeys { found: 40000, .. })
    ));
    let limits = HeaderLimits {
        max_edks: 0,
        ..HeaderLimits::default()
    };
    assert!(matches!(
        ParsedHeader::read(&mut &msg[..], limits),
        Err(Error::TooManyEncryptedDataKeys { found: 1, max: 0 })
    ));
    // Base64 input gets a helpful error.
    assert!(matches!(parse(b"AYAAF..."), Err(Error::MalformedHeader(m)) if m.contains("base64")));
}

#[test]
fn frame_lengths_above_the_format_bound_or_the_limit_are_refused_before_any_key_use() {
    let (msg, _) = encrypt_with(COMMIT, 256, b"x", Path::OneShot, &[]);
    // v2 header: ... frame length (4) ‖ commitment (32) ‖ tag (16).
    let at = header_bytes(&msg) - 16 - 32 - 4;
    assert_eq!(msg[at..at + 4], 256u32.to_be_bytes());
    let with_len = |len: u32| {
        let mut b = msg.clone();
        b[at..at + 4].copy_from_slice(&len.to_be_bytes());
        b
    };
    let parse = |b: &[u8], max: u32| {
        let limits = HeaderLimits {
            max_frame_length: max,
            ..HeaderLimits::default()
        };
        ParsedHeader::read(&mut &b[..], limits)
    };
    // The format's bound holds whatever the configured limit says.
    for len in [1u32 << 31, u32::MAX] {
        assert!(matches!(
            parse(&with_len(len), u32::MAX),
            Err(Error::FrameLengthLimit { found, max: MAX_WRITE_FRAME_LEN }) if found == len
        ));
    }
    let d = DEFAULT_MAX_READ_FRAME_LEN;
    assert!(parse(&with_len(d), d).is_ok());
    assert!(matches!(
        parse(&with_len(d + 1), d),
        Err(Error::FrameLengthLimit { max, .. }) if max == d
    ));
    assert!(parse(&with_len(d + 1), d + 1).is_ok());
    assert_eq!(HeaderLimits::default().max_frame_length, d);
    assert_eq!(DecryptOptions::default().max_unframed, u64::from(d));
}

#[test]
fn reserved_context_and_non_committing_suites_are_refused_on_encrypt() {
    let bad: EncryptionContext = [("aws-crypto-public-key", "x")].into_iter().collect();
    assert!(PendingEncryption::new(COMMIT, bad, BTreeSet::new()).is_err());
    let legacy = AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha256;
    assert!(PendingEncryption::new(legacy, ctx(), BTreeSet::new()).is_err());
}

#[test]
fn header_encoding_round_trips() {
    let (msg, _) = encrypt_with(SIGNED, 512, b"abc", Path::OneShot, &[]);
    let parsed = ParsedHeader::read(&mut &msg[..], HeaderLimits::default()).unwrap();
    let h = header_bytes(&msg);
    assert_eq!(parsed.wire_bytes(), &msg[..h]);
    let mut enc = parsed.header.encode_body().unwrap();
    enc.extend_from_slice(&msg[h - TAG_LEN..h]);
    assert_eq!(enc, &msg[..h]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn prop_round_trip(
        frame in prop_oneof![Just(1u32), Just(7), Just(128), 1u32..600],
        data in proptest::collection::vec(any::<u8>(), 0..3000),
        signed in any::<bool>(),
        path in prop_oneof![Just(Path::OneShot), Just(Path::Streaming), Just(Path::Parallel)],
    ) {
        let suite = if signed { SIGNED } else { COMMIT };
        let (msg, dk) = encrypt_with(suite, frame, &data, path, &[]);
        let out = decrypt_with(&msg, &dk, &EncryptionContext::new(), path).unwrap();
        prop_assert_eq!(out, data);
    }

    #[test]
    fn prop_parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = ParsedHeader::read(&mut &data[..], HeaderLimits::default());
    }
}

/// Header-only re-wrap was removed because a second header for one message id is a second
/// AES-GCM tag under the same derived key and the zero IV. Whatever the public API is asked
/// to do — many messages under one (cached) data key, every suite, decrypting and ranged
/// reads of each — no derived key ever tags two different header byte strings.
#[test]
fn no_derived_key_ever_tags_two_different_headers() {
    use std::collections::HashMap;

    let _ = header::sealed_headers::take();
    let pt: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
    let mut messages = 0;
    for suite in [COMMIT, SIGNED] {
        // One data key serving many messages, as the data-key cache does.
        let dk = DataKey::generate(suite).unwrap();
        for i in 0..50u32 {
            let pending = PendingEncryption::new(suite, ctx(), BTreeSet::new()).unwrap();
            let edks = vec![EncryptedDataKey {
                ciphertext: vec![i as u8; 48],
                ..edk()
            }];
            let materials = pending.complete(dk.duplicate(), edks).unwrap();
            let opts = EncryptOptions {
                frame_length: 1024,
                parallelism: Parallelism::Sequential,
            };
            let mut enc = Encryptor::new(Vec::new(), materials, opts).unwrap();
            enc.write_all(&pt).unwrap();
            let (msg, _) = enc.finish().unwrap();
            messages += 1;
            let out = decrypt_with(&msg, &dk, &EncryptionContext::new(), Path::OneShot).unwrap();
            assert_eq!(out, pt);
            let mut input = &msg[..];
            let parsed = ParsedHeader::read(&mut input, HeaderLimits::default()).unwrap();
            let _verified = parsed.verify(&dk, &EncryptionContext::new()).unwrap();
        }
    }
    let sealed = header::sealed_headers::take();
    assert_eq!(
        sealed.len(),
        messages,
        "one header tag per message written, none on read"
    );
    let mut by_key: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    for (key, header) in sealed {
        if let Some(prev) = by_key.insert(key, header.clone()) {
            assert_eq!(prev, header, "a derived key tagged two different headers");
        }
    }
    assert_eq!(
        by_key.len(),
        messages,
        "every message has its own derived key"
    );
}

/// Any batch size a caller asks for reads the same plaintext, whole or by frame range:
/// smaller than a frame (one frame a batch), a few frames, not a multiple of the frame,
/// and larger than the bound (1,024 frames).
#[test]
fn batch_sizes_do_not_change_what_is_read() {
    let frame = 4096u32;
    let pt: Vec<u8> = (0..300 * 4096 + 17).map(|i| (i % 253) as u8).collect();
    let (msg, dk) = encrypt_with(COMMIT, frame, &pt, Path::Parallel, &[]);
    let frames = pt.len().div_ceil(frame as usize) as u32;
    for batch_bytes in [0, 1, 4096, 3 * 4096 + 5, 256 << 10, 64 << 20] {
        for (first, last) in [(1, frames), (2, 7), (frames, frames)] {
            let mut input = &msg[..];
            let parsed = ParsedHeader::read(&mut input, HeaderLimits::default()).unwrap();
            let start = parsed.wire_len() + parsed.header.frame_offset(first) as usize;
            let v = parsed.verify(&dk, &ctx()).unwrap();
            let opts = DecryptOptions {
                parallelism: Parallelism::Sequential,
                batch_bytes,
                ..Default::default()
            };
            let mut out = Vec::new();
            v.frame_range_decryptor(&msg[start..], first, last, opts)
                .unwrap()
                .write_to(&mut out)
                .unwrap();
            let a = (first as usize - 1) * frame as usize;
            let b = (last as usize * frame as usize).min(pt.len());
            assert!(
                out == pt[a..b],
                "batch {batch_bytes}, frames {first}..={last}"
            );
        }
    }
}

/// Ranged reads: every (first, last) frame window of small messages returns exactly those
/// frames' plaintext; the layout arithmetic matches the real body; signed suites are refused.
#[test]
fn frame_range_reads_across_batches() {
    // Ranges that span several 4 MiB batches (read ahead while the previous one opens),
    // on one core, a 2-thread pool and the global pool.
    let frame = 64 * 1024u32;
    let pt: Vec<u8> = (0..9 * 1024 * 1024 + 100)
        .map(|i| (i % 251) as u8)
        .collect();
    let (msg, dk) = encrypt_with(COMMIT, frame, &pt, Path::Parallel, &[]);
    let parsed = ParsedHeader::read(&mut &msg[..], HeaderLimits::default()).unwrap();
    let h = parsed.wire_len();
    let header = parsed.header.clone();
    let frames = pt.len().div_ceil(frame as usize) as u32;
    let pars = [
        Parallelism::Sequential,
        Parallelism::threads(2).unwrap(),
        Parallelism::Global,
    ];
    for (first, last) in [(1, 64), (3, 140), (64, 65), (100, frames), (1, frames)] {
        for parallelism in &pars {
            let v = ParsedHeader::read(&mut &msg[..], HeaderLimits::default())
                .unwrap()
                .verify(&dk, &ctx())
                .unwrap();
            let start = h + header.frame_offset(first) as usize;
            // The input goes on past `last`: reading must stop there anyway.
            let opts = DecryptOptions {
                parallelism: parallelism.clone(),
                ..Default::default()
            };
            let mut out = Vec::new();
            let mut d = v
                .frame_range_decryptor(&msg[start..], first, last, opts)
                .unwrap();
            if last % 2 == 0 {
                d.read_to_end(&mut out).unwrap();
            } else {
                d.write_to(&mut out).unwrap();
            }
            let a = (first as usize - 1) * frame as usize;
            let b = (last as usize * frame as usize).min(pt.len());
            assert!(out == pt[a..b], "frames {first}..={last} {parallelism:?}");
        }
    }
}

#[test]
fn frame_range_reads_match_the_plaintext() {
    let frame = 7u32;
    for len in [0usize, 1, 6, 7, 8, 21, 30] {
        let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let (msg, dk) = encrypt_with(COMMIT, frame, &pt, Path::OneShot, &[]);
        let mut input = &msg[..];
        let parsed = ParsedHeader::read(&mut input, HeaderLimits::default()).unwrap();
        let h = parsed.wire_len();
        let header = parsed.header.clone();
        let body_len = (msg.len() - h) as u64;
        let (n, last_len) = header.framed_layout(body_len).unwrap();
        assert_eq!(n * frame as u64 + last_len, len as u64, "len {len}");
        let frames = n as u32 + 1;
        for first in 1..=frames {
            for last in first..=frames {
                let v = ParsedHeader::read(&mut &msg[..], HeaderLimits::default())
                    .unwrap()
                    .verify(&dk, &ctx())
                    .unwrap();
                let start = h + header.frame_offset(first) as usize;
                let end = if last == frames {
                    msg.len()
                } else {
                    h + header.frame_offset(last + 1) as usize
                };
                let mut out = Vec::new();
                let opts = DecryptOptions {
                    parallelism: par(if last % 2 == 0 {
                        Path::OneShot
                    } else {
                        Path::Parallel
                    }),
                    ..Default::default()
                };
                let mut d = v
                    .frame_range_decryptor(&msg[start..end], first, last, opts)
                    .unwrap();
                if first % 2 == 0 {
                    d.read_to_end(&mut out).unwrap();
                } else {
                    d.write_to(&mut out).unwrap();
                }
                let a = (first as usize - 1) * frame as usize;
                let b = (last as usize * frame as usize).min(len);
                assert_eq!(out, &pt[a..b], "len {len} frames {first}..={last}");
            }
        }
        // A window that starts at the wrong frame is refused.
        if frames > 1 {
            let v = ParsedHeader::read(&mut &msg[..], HeaderLimits::default())
                .unwrap()
                .verify(&dk, &ctx())
                .unwrap();
            let start = h + header.frame_offset(1) as usize;
            let mut out = Vec::new();
            let r = v
                .frame_range_decryptor(&msg[start..], 2, 2, DecryptOptions::default())
                .unwrap()
                .read_to_end(&mut out);
            assert!(r.is_err());
            assert!(out.is_empty());
        }
    }
    let (msg, dk) = encrypt_with(SIGNED, frame, b"signed data", Path::OneShot, &[]);
    let v = ParsedHeader::read(&mut &msg[..], HeaderLimits::default())
        .unwrap()
        .verify(&dk, &ctx())
        .unwrap();
    assert!(v
        .frame_range_decryptor(&msg[..], 1, 1, DecryptOptions::default())
        .is_err());
}

/// Where the footer (u16 length ‖ DER signature) of a signed message starts.
/// Where the footer of a signed message starts: its 2-byte length, then a DER SEQUENCE of
/// exactly that length (the length alone also matched two random bytes of a signature
/// about once in a hundred messages).
fn footer_at(msg: &[u8]) -> usize {
    (8..=120)
        .map(|l| msg.len() - 2 - l)
        .find(|&at| {
            let l = msg.len() - at - 2;
            u16::from_be_bytes([msg[at], msg[at + 1]]) as usize == l
                && msg[at + 2] == 0x30
                && msg[at + 3] as usize == l - 2
        })
        .expect("a footer")
}

#[test]
fn signed_footers_with_malformed_der_or_another_messages_signature_are_refused() {
    let pt = vec![5u8; 1000];
    let (msg, dk) = encrypt_with(SIGNED, 256, &pt, Path::OneShot, &[]);
    assert_eq!(decrypt_with(&msg, &dk, &ctx(), Path::OneShot).unwrap(), pt);
    let at = footer_at(&msg);
    let der = msg[at + 2..].to_vec();
    assert_eq!(der[0], 0x30, "DER SEQUENCE");
    let (other, _) = encrypt_with(SIGNED, 256, &pt, Path::OneShot, &[]);
    let other_der = other[footer_at(&other) + 2..].to_vec();
    let mut trailing = der.clone();
    trailing.push(0);
    let mut high_tag = der.clone();
    high_tag[0] = 0x31;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("truncated", der[..der.len() - 1].to_vec()),
        ("trailing byte", trailing),
        ("SET instead of SEQUENCE", high_tag),
        (
            "r = s = 0",
            vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00],
        ),
        ("another message's signature", other_der),
    ];
    for (what, sig) in cases {
        let mut bad = msg[..at].to_vec();
        bad.extend_from_slice(&(sig.len() as u16).to_be_bytes());
        bad.extend_from_slice(&sig);
        for path in [Path::OneShot, Path::Streaming, Path::Parallel] {
            let r = decrypt_with(&bad, &dk, &ctx(), path);
            assert!(
                matches!(r, Err(Error::Signature)),
                "{what} ({path:?}): {r:?}"
            );
        }
    }
}

#[test]
fn malformed_public_keys_in_the_context_are_refused() {
    use crate::signature::{MessageSigner, MessageVerifier};
    use base64::Engine as _;
    use suite::SignatureAlgorithm::{EcdsaP256Sha256, EcdsaP384Sha384};
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let good = MessageSigner::generate(EcdsaP384Sha384)
        .unwrap()
        .public_key_b64();
    assert_eq!(good.len(), 68, "49 bytes of compressed P-384 point");
    assert!(MessageVerifier::from_context_value(EcdsaP384Sha384, &good).is_ok());
    let p256 = MessageSigner::generate(EcdsaP256Sha256)
        .unwrap()
        .public_key_b64();
    assert_eq!(p256.len(), 44);
    assert!(MessageVerifier::from_context_value(EcdsaP256Sha256, &p256).is_ok());
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&good)
        .unwrap();
    let mut x_too_big = vec![0x03];
    x_too_big.extend([0xff; 48]);
    let cases = [
        ("not base64", "!!!!".to_owned()),
        ("empty", String::new()),
        ("infinity", b64(&[0])),
        ("one byte short", b64(&raw[..48])),
        ("one byte long", b64(&[raw.as_slice(), &[1]].concat())),
        ("bad prefix", b64(&[&[0x07], &raw[1..]].concat())),
        ("x ≥ p", b64(&x_too_big)),
        ("a P-256 key", p256.clone()),
    ];
    for (what, value) in cases {
        let r = MessageVerifier::from_context_value(EcdsaP384Sha384, &value);
        assert!(
            matches!(r, Err(Error::MalformedHeader(ref m)) if m.contains("aws-crypto-public-key")),
            "{what}: {:?}",
            r.err()
        );
    }
}

#[test]
fn the_fuzzing_key_signs_with_the_official_length() {
    // The fixed fuzzing key makes the same message layout every time: ECDSA in the module
    // is randomized, so it signs until the DER has the length official writers use.
    for _ in 0..8 {
        let mut pending = PendingEncryption::new(SIGNED, ctx(), BTreeSet::new()).unwrap();
        pending.fix_for_fuzzing();
        let materials = pending
            .complete(DataKey::generate(SIGNED).unwrap(), vec![edk()])
            .unwrap();
        let opts = EncryptOptions {
            frame_length: 64,
            parallelism: Parallelism::Sequential,
        };
        let mut enc = Encryptor::new(Vec::new(), materials, opts).unwrap();
        enc.write_all(b"fuzz").unwrap();
        let (msg, _) = enc.finish().unwrap();
        assert_eq!(msg.len() - footer_at(&msg) - 2, 103);
    }
}

/// A verified header of `msg` and the body after it.
fn verified(msg: &[u8], dk: &DataKey) -> (VerifiedHeader, usize) {
    let parsed = ParsedHeader::read(&mut &msg[..], HeaderLimits::default()).unwrap();
    let h = parsed.wire_len();
    (parsed.verify(dk, &ctx()).unwrap(), h)
}

#[test]
fn frame_openers_release_what_the_decryptor_does_in_any_pieces() {
    let frame = 7u32;
    for len in [0usize, 1, 6, 7, 8, 21, 30] {
        let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let (msg, dk) = encrypt_with(COMMIT, frame, &pt, Path::OneShot, &[]);
        for piece in [1, 5, 23, 1 << 20] {
            let (v, h) = verified(&msg, &dk);
            let (out, end) =
                fuzzing::open_in_pieces(v.frame_opener(1, None).unwrap(), &msg[h..], piece);
            end.unwrap();
            assert_eq!(out, pt, "len {len} piece {piece}");
        }
        let (v, h) = verified(&msg, &dk);
        let header = v.header().clone();
        let (n, _) = header.framed_layout((msg.len() - h) as u64).unwrap();
        let frames = n as u32 + 1;
        for first in 1..=frames {
            for last in first..=frames {
                let start = h + header.frame_offset(first) as usize;
                let end = if last == frames {
                    msg.len()
                } else {
                    h + header.frame_offset(last + 1) as usize
                };
                let (v, _) = verified(&msg, &dk);
                let o = v.frame_opener(first, Some(last)).unwrap();
                let (out, res) = fuzzing::open_in_pieces(o, &msg[start..end], 3);
                res.unwrap();
                let a = (first as usize - 1) * frame as usize;
                let b = (last as usize * frame as usize).min(len);
                assert_eq!(out, &pt[a..b], "len {len} frames {first}..={last}");
                // A byte past the last frame asked for is refused, after its plaintext.
                let (v, _) = verified(&msg, &dk);
                let o = v.frame_opener(first, Some(last)).unwrap();
                let mut longer = msg[start..end].to_vec();
                longer.push(0);
                let (out, res) = fuzzing::open_in_pieces(o, &longer, 3);
                assert!(matches!(res, Err(Error::TrailingBytes)), "{res:?}");
                assert_eq!(out, &pt[a..b]);
            }
        }
        if frames > 1 {
            // Input that starts at another frame than the first asked for.
            let (v, _) = verified(&msg, &dk);
            let o = v.frame_opener(2, Some(2)).unwrap();
            let (out, res) = fuzzing::open_in_pieces(o, &msg[h..], 1 << 20);
            assert!(matches!(res, Err(Error::MalformedBody(_))), "{res:?}");
            assert!(out.is_empty());
        }
    }
}

#[test]
fn frame_openers_detect_every_flip_cut_and_trailing_byte() {
    let pt: Vec<u8> = (0..700u32).map(|i| i as u8).collect();
    let (msg, dk) = encrypt_with(COMMIT, 256, &pt, Path::OneShot, &[]);
    let (_, h) = verified(&msg, &dk);
    for piece in [7, 1 << 20] {
        for i in h..msg.len() {
            let mut bad = msg.clone();
            bad[i] ^= 0x01;
            let (v, _) = verified(&bad, &dk);
            let (out, res) =
                fuzzing::open_in_pieces(v.frame_opener(1, None).unwrap(), &bad[h..], piece);
            assert!(res.is_err(), "flip at {i} went unnoticed");
            assert!(pt.starts_with(&out), "flip at {i}");
        }
        for cut in h..msg.len() {
            let (v, _) = verified(&msg, &dk);
            let (out, res) =
                fuzzing::open_in_pieces(v.frame_opener(1, None).unwrap(), &msg[h..cut], piece);
            assert!(res.is_err(), "cut at {cut} went unnoticed");
            assert!(pt.starts_with(&out), "cut at {cut}");
        }
        let mut longer = msg.clone();
        longer.extend_from_slice(&[0u8; 300]);
        let (v, _) = verified(&longer, &dk);
        let (_, res) =
            fuzzing::open_in_pieces(v.frame_opener(1, None).unwrap(), &longer[h..], piece);
        assert!(matches!(res, Err(Error::TrailingBytes)), "{res:?}");
    }
    // A frame's IV other than the prescribed one is malformed even before its tag.
    let mut bad = msg.clone();
    bad[h + 4 + 3] ^= 1;
    let (v, _) = verified(&bad, &dk);
    let (_, res) = fuzzing::open_in_pieces(v.frame_opener(1, None).unwrap(), &bad[h..], 1 << 20);
    assert!(
        matches!(&res, Err(Error::MalformedBody(m)) if m.contains("IV")),
        "{res:?}"
    );
    // After a failure nothing more is opened.
    let (v, _) = verified(&msg, &dk);
    let mut o = v.frame_opener(2, None).unwrap();
    let mut body = msg[h..].to_vec();
    assert!(o.open_next(&mut body).is_err());
    let mut from_two = msg[h + 4 + 12 + 256 + 16..].to_vec();
    assert!(o.open_next(&mut from_two).is_err());
    assert!(o.finish().is_err());
}

#[test]
fn frame_openers_refuse_signed_messages_and_bad_ranges() {
    let (msg, dk) = encrypt_with(SIGNED, 64, b"signed data", Path::OneShot, &[]);
    let (v, _) = verified(&msg, &dk);
    assert!(matches!(
        v.frame_opener(1, None),
        Err(Error::InvalidParameter(_))
    ));
    let (msg, dk) = encrypt_with(COMMIT, 64, b"data", Path::OneShot, &[]);
    for (first, last) in [
        (0, None),
        (2, Some(1)),
        (1, Some(u32::MAX)),
        (u32::MAX, None),
    ] {
        let (v, _) = verified(&msg, &dk);
        assert!(
            matches!(v.frame_opener(first, last), Err(Error::InvalidParameter(_))),
            "{first}..={last:?}"
        );
    }
}
