//! Entry points of the fuzz targets `audit_line` and `audit_verify` in `fuzz/`
//! (cargo-fuzz), also run over the committed corpora by an ordinary test. Not a stable API:
//! hidden from the docs.
//!
//! Each function takes arbitrary bytes, must never panic on them, and panics (an
//! assertion) only when a promise breaks:
//! - [`line`]: the line parser refuses or accepts; an accepted line serializes to JSON that
//!   parses back to the same line, and a checkpoint's signature check answers without
//!   panicking.
//! - [`verify_log`]: the whole-log verifier (hash chain, Merkle tree, checkpoint signatures
//!   under a fixed public key, torn tails) reports a summary or a failure, never panics,
//!   and a verified log's counts fit its size.

use crate::{parse_line, verify_reader, CheckpointVerifier, Line, PublicKey, VerifyOptions};

/// Public half of `fuzz/keys/audit-p256.pem`, a P-256 key made for fuzzing only (its
/// private half is committed too: the corpus logs carry checkpoints signed with it).
pub const FUZZ_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEr+Quu3uu5BWCiVt/ip16QtVrH8ti
KaDq1XmlgOOQgdJwkoWQQKa40CtbSD3KhDynxCyrw5Q7E2/m+4U2oBhZ0w==
-----END PUBLIC KEY-----
";

fn key() -> PublicKey {
    PublicKey::from_pem(FUZZ_PUBLIC_KEY).expect("the fuzzing key parses")
}

/// Parse `data` as one log line.
pub fn line(data: &[u8]) {
    let Ok(parsed) = parse_line(data) else {
        return;
    };
    let json = serde_json::to_string(&parsed).expect("a parsed line serializes");
    let again = parse_line(json.as_bytes()).expect("a serialized line parses");
    assert_eq!(again, parsed, "line round trip");
    if let Line::Checkpoint(c) = &parsed {
        let k = key();
        let keys: [&dyn CheckpointVerifier; 1] = [&k];
        let _ = c.verify(&keys);
    }
}

/// Verify `data` as a whole log against the fuzzing key.
pub fn verify_log(data: &[u8]) {
    let k = key();
    let opts = VerifyOptions::new(vec![&k]);
    if let Ok(s) = verify_reader(data, &opts) {
        assert!(
            s.records + s.checkpoints <= s.lines,
            "more entries than lines"
        );
        assert!(
            s.unsigned_tail <= s.records,
            "unsigned tail larger than the log"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays the committed corpus of a target, plus truncated and changed copies.
    fn replay(target: &str, f: fn(&[u8])) -> usize {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for p in &paths {
            let data = std::fs::read(p).unwrap();
            f(&data);
            for cut in (0..data.len()).step_by(data.len() / 64 + 1) {
                f(&data[..cut]);
            }
            for i in (0..data.len()).step_by(data.len() / 256 + 1) {
                let mut d = data.clone();
                d[i] ^= 1 << (i % 8);
                f(&d);
            }
        }
        paths.len()
    }

    #[test]
    fn audit_line_corpus_replays() {
        assert!(replay("audit_line", line) >= 3);
    }

    #[test]
    fn audit_verify_corpus_replays() {
        assert!(replay("audit_verify", verify_log) >= 2);
    }

    #[test]
    fn the_corpus_log_verifies_against_the_fuzzing_key() {
        let log = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../fuzz/corpus/audit_verify/signed.log"),
        )
        .unwrap();
        let k = key();
        let s = verify_reader(&log[..], &VerifyOptions::new(vec![&k])).unwrap();
        assert!(s.records > 0, "{s:?}");
    }
}
