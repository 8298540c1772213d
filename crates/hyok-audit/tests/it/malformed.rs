//! The log parser and verifier read untrusted bytes: they must reject hostile input with an
//! error that names the line, and never panic, loop or allocate without bound.

use hyok_audit::{
    parse_line, verify_reader, Checkpoint, Error, FailureKind, LogReader, VerifyOptions, MAX_LINE,
};

use crate::common::{record_indices, TestLog};

fn verify_bytes(t: &TestLog, bytes: &[u8]) -> Result<hyok_audit::Summary, Error> {
    verify_reader(bytes, &VerifyOptions::new(vec![&t.public]))
}

fn expect_failure(t: &TestLog, bytes: &[u8]) -> hyok_audit::Failure {
    match verify_bytes(t, bytes) {
        Err(Error::Verification(f)) => *f,
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn hostile_lines_are_rejected_with_the_line_number() {
    let t = TestLog::new();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty line", b"\n".to_vec()),
        ("not JSON", b"hello\n".to_vec()),
        ("JSON array", b"[1,2,3]\n".to_vec()),
        ("no type", br#"{"seq":0}"#.iter().chain(b"\n").copied().collect()),
        ("unknown type", b"{\"type\":\"evil\"}\n".to_vec()),
        ("deep nesting", format!("{deep}\n").into_bytes()),
        ("invalid UTF-8", b"{\"type\":\"record\",\"host\":\"\xff\xfe\"}\n".to_vec()),
        ("NUL bytes", b"\0\0\0\n".to_vec()),
        ("CRLF", b"{\"type\":\"record\"}\r\n".to_vec()),
        ("BOM", b"\xef\xbb\xbf{\"type\":\"record\"}\n".to_vec()),
        (
            "huge number",
            b"{\"type\":\"record\",\"seq\":99999999999999999999999}\n".to_vec(),
        ),
        (
            "checkpoint with a short signature",
            br#"{"type":"checkpoint","origin":"o","size":0,"root":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","time":"2026-01-01T00:00:00Z","alg":"ecdsa-p256-sha256","key_id":"0011223344556677","sig":"AAAA"}"#
                .iter()
                .chain(b"\n")
                .copied()
                .collect(),
        ),
        ("a line longer than the limit", {
            let mut v = vec![b'{'; MAX_LINE + 5];
            v.push(b'\n');
            v
        }),
    ];
    for (what, bytes) in cases {
        let f = expect_failure(&t, &bytes);
        assert_eq!(f.line, 1, "{what}: {f}");
        assert_eq!(f.kind, FailureKind::Malformed, "{what}: {f}");
    }
}

#[test]
fn a_bad_line_inside_a_good_log_is_named() {
    let t = TestLog::new();
    t.append(6, 1000, false);
    let lines = t.lines();
    let recs = record_indices(&lines);
    for junk in [&b"garbage"[..], b"", b"{}", b"{\"type\":\"record\"}"] {
        let mut changed = lines.clone();
        changed.insert(recs[3], junk.to_vec());
        t.write_lines(&changed);
        let f = t.verify().expect_err("junk line");
        assert_eq!(f.line, recs[3] as u64 + 1, "{f}");
        assert_eq!(f.kind, FailureKind::Malformed, "{f}");
    }
}

#[test]
fn random_bytes_never_panic() {
    let t = TestLog::new();
    for seed in 0..300 {
        let len = (seed as usize * 37) % 3000;
        let mut bytes = noise(seed, len);
        // Sprinkle newlines so there are many short lines too.
        for i in (0..bytes.len()).step_by(50) {
            bytes[i] = b'\n';
        }
        let _ = verify_bytes(&t, &bytes);
        for line in bytes.split(|&b| b == b'\n') {
            let _ = parse_line(line);
        }
        let _ = Checkpoint::from_json(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn mutated_logs_never_panic_and_changed_ones_do_not_verify_as_the_original() {
    let t = TestLog::new();
    t.append(12, 5, false);
    let original = std::fs::read(&t.path).unwrap();
    let summary = verify_bytes(&t, &original).unwrap();
    let mut rejected = 0;
    for seed in 0..1500u64 {
        let r = noise(seed, 16);
        let mut m = original.clone();
        let pos = (u64::from_le_bytes(r[0..8].try_into().unwrap()) as usize) % m.len();
        match r[8] % 4 {
            0 => m[pos] ^= 1 << (r[9] % 8),
            1 => {
                let end = (pos + 1 + r[10] as usize).min(m.len());
                m.drain(pos..end);
            }
            2 => {
                let junk = noise(seed + 7, 1 + r[11] as usize % 20);
                m.splice(pos..pos, junk);
            }
            _ => m.truncate(pos),
        }
        if m == original {
            continue;
        }
        match verify_bytes(&t, &m) {
            Err(_) => rejected += 1,
            // Only a clean cut at a line boundary verifies (it is invisible without a
            // trusted checkpoint, see `tamper`); nothing else may pass.
            Ok(s) => {
                assert!(
                    original.starts_with(&m),
                    "seed {seed}: a changed log verified"
                );
                assert!(s.records <= summary.records);
            }
        }
    }
    assert!(rejected > 1300, "{rejected}");
}

#[test]
fn the_reader_reports_bad_and_torn_lines() {
    let t = TestLog::new();
    t.append(2, 1000, false);
    let mut bytes = std::fs::read(&t.path).unwrap();
    bytes.extend_from_slice(b"not json\n{\"type\":\"rec");
    std::fs::write(&t.path, &bytes).unwrap();
    let mut r = LogReader::open(&t.path).unwrap();
    let mut entries = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        entries.push(e);
    }
    assert_eq!(entries.len(), 5);
    assert!(entries[..3].iter().all(|e| e.parsed.is_ok()));
    assert!(entries[3].parsed.is_err() && !entries[3].torn);
    assert!(entries[4].parsed.is_err() && entries[4].torn);
    assert_eq!(entries[4].line, 5);
}

#[test]
fn trusted_checkpoint_files_are_parsed_strictly() {
    for bad in [
        "",
        "{}",
        "[]",
        r#"{"type":"record"}"#,
        r#"{"type":"checkpoint","origin":"a\nb","size":0}"#,
        &"x".repeat(MAX_LINE + 1),
    ] {
        assert!(Checkpoint::from_json(bad).is_err(), "{bad:.40}");
    }
}
