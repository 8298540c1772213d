//! The end of the log: records after the last checkpoint fail verification (unless
//! allowed), writers refuse to sign over records they cannot vouch for, and a cut back to
//! an earlier checkpoint is found against a trusted one.
//!
//! Acceptance (issue 16): a record edited after the last checkpoint (the SHA-256 chain
//! redone), a deleted final checkpoint and a cut back to an earlier checkpoint each fail
//! verification, and the next writer refuses the edited tail.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hyok_audit::{
    line_hash, parse_line, AuditLog, Checkpoint, CheckpointSigner, FailureKind, Hex32, Line,
    LogConfig, PemSigner, SignatureAlgorithm,
};

use crate::common::{event, is_checkpoint, is_record, record_indices, TestLog};

/// A signer that can be made to fail (an HSM that went away).
#[derive(Debug)]
struct Flaky {
    inner: Arc<PemSigner>,
    down: AtomicBool,
}

impl CheckpointSigner for Flaky {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.inner.algorithm()
    }
    fn public_key_der(&self) -> &[u8] {
        self.inner.public_key_der()
    }
    fn sign(&self, message: &[u8]) -> hyok_audit::Result<Vec<u8>> {
        if self.down.load(Ordering::SeqCst) {
            return Err(hyok_audit::Error::Sign("the token is not present".into()));
        }
        self.inner.sign(message)
    }
}

fn default_config(t: &TestLog) -> LogConfig {
    LogConfig::new(&t.path)
}

/// `n` records, each its own commit, with the production configuration (every commit
/// ends with a signed checkpoint).
fn signed_log(t: &TestLog, n: usize) {
    let log = AuditLog::open(default_config(t), t.signer.clone()).unwrap();
    for i in 0..n {
        log.admin(event(i));
        log.flush().unwrap();
    }
    log.close().unwrap();
}

/// 4 signed records, then 3 the writer could not sign: a genuine unsigned tail.
fn log_with_unsigned_tail(t: &TestLog) {
    let flaky = Arc::new(Flaky {
        inner: t.signer.clone(),
        down: AtomicBool::new(false),
    });
    let log = AuditLog::open(default_config(t), flaky.clone()).unwrap();
    for i in 0..4 {
        log.admin(event(i));
        log.flush().unwrap();
    }
    flaky.down.store(true, Ordering::SeqCst);
    for i in 4..7 {
        log.admin(event(i));
        let _ = log.flush();
    }
    let closed = log.close();
    assert!(closed.is_err(), "the exit checkpoint cannot be signed");
}

fn open_fails(t: &TestLog) -> String {
    let before = std::fs::read(&t.path).unwrap();
    let e = AuditLog::open(default_config(t), t.signer.clone()).unwrap_err();
    assert_eq!(
        std::fs::read(&t.path).unwrap(),
        before,
        "a refusing writer must not append"
    );
    e.to_string()
}

#[test]
fn every_commit_ends_with_a_signed_checkpoint() {
    let t = TestLog::new();
    signed_log(&t, 5);
    let lines = t.lines();
    assert_eq!(lines.len(), 10);
    for pair in lines.chunks(2) {
        assert!(is_record(&pair[0]) && is_checkpoint(&pair[1]));
    }
    let s = t.verify().unwrap();
    assert_eq!((s.records, s.checkpoints, s.unsigned_tail), (5, 5, 0));
    // The next writer resumes from the last checkpoint and continues the chain.
    signed_log(&t, 2);
    assert_eq!(t.verify().unwrap().records, 7);
}

#[test]
fn an_unsigned_tail_fails_verification_unless_allowed() {
    let t = TestLog::new();
    log_with_unsigned_tail(&t);
    let lines = t.lines();
    let first_unsigned = record_indices(&lines)[4];
    let f = t.verify().unwrap_err();
    assert_eq!(f.kind, FailureKind::UnsignedTail, "{f}");
    assert_eq!(f.line, first_unsigned as u64 + 1, "{f}");
    assert_eq!(f.intact_records, 4, "{f}");
    let s = t.verify_opts(None, true).unwrap();
    assert_eq!((s.records, s.unsigned_tail), (7, 3));
    // Nobody signs over it: not even a writer with the right key.
    let e = open_fails(&t);
    assert!(e.contains("no signature covers them"), "{e}");
}

/// Point `prev` of every record from line `from` on at the line before it again.
fn rechain(lines: &mut [Vec<u8>], from: usize) {
    let mut last = None;
    for (i, line) in lines.iter_mut().enumerate() {
        if !is_record(line) {
            continue;
        }
        if i >= from {
            let Ok(Line::Record(r)) = parse_line(line) else {
                panic!("not a record")
            };
            let old = format!("\"prev\":\"{}\"", r.prev);
            let new = format!("\"prev\":\"{}\"", Hex32(last.unwrap()));
            let text = String::from_utf8(line.clone()).unwrap();
            assert_eq!(text.matches(&old).count(), 1);
            *line = text.replace(&old, &new).into_bytes();
        }
        last = Some(line_hash(line));
    }
}

#[test]
fn an_edited_and_rechained_tail_fails_and_is_not_signed_over() {
    let t = TestLog::new();
    log_with_unsigned_tail(&t);
    let mut lines = t.lines();
    let target = record_indices(&lines)[5];
    let text = String::from_utf8(lines[target].clone()).unwrap();
    assert!(text.contains("object-5.bin"));
    lines[target] = text.replace("object-5.bin", "object-9.bin").into_bytes();
    rechain(&mut lines, target + 1);
    t.write_lines(&lines);

    // The chain is intact again: only the missing signature gives the edit away.
    let s = t.verify_opts(None, true).unwrap();
    assert_eq!(s.records, 7);
    let f = t.verify().unwrap_err();
    assert_eq!(f.kind, FailureKind::UnsignedTail, "{f}");
    let e = open_fails(&t);
    assert!(e.contains("refusing to append"), "{e}");
    // Still refused on the next try, and by a log opened before the edit.
    open_fails(&t);
}

#[test]
fn a_running_writer_refuses_a_tail_edited_under_it() {
    let t = TestLog::new();
    let log = AuditLog::open(default_config(&t), t.signer.clone()).unwrap();
    log.admin(event(0));
    log.flush().unwrap();
    // Someone appends a correctly chained record that no signature covers.
    let mut lines = t.lines();
    let mut forged = lines[0].clone();
    let text = String::from_utf8(forged.clone()).unwrap();
    forged = text
        .replace("\"seq\":0", "\"seq\":1")
        .replace("object-0.bin", "forged.bin")
        .into_bytes();
    lines.push(forged);
    rechain(&mut lines, 2);
    t.write_lines(&lines);
    let before = std::fs::read(&t.path).unwrap();
    log.admin(event(1));
    assert!(log.flush().is_err(), "the writer must refuse");
    assert!(log.check().is_err(), "key use must stop");
    assert!(log.close().is_err());
    assert_eq!(std::fs::read(&t.path).unwrap(), before);
}

#[test]
fn a_deleted_final_checkpoint_fails_verification() {
    let t = TestLog::new();
    signed_log(&t, 4);
    let mut lines = t.lines();
    assert!(is_checkpoint(lines.last().unwrap()));
    lines.pop();
    t.write_lines(&lines);
    let f = t.verify().unwrap_err();
    assert_eq!(f.kind, FailureKind::UnsignedTail, "{f}");
    assert_eq!(f.line, lines.len() as u64, "{f}");
    let e = open_fails(&t);
    assert!(e.contains("no signature covers them"), "{e}");
}

#[test]
fn a_cut_back_to_an_earlier_checkpoint_fails_against_a_trusted_one() {
    let t = TestLog::new();
    signed_log(&t, 6);
    let lines = t.lines();
    let Ok(Line::Checkpoint(last)) = parse_line(lines.last().unwrap()) else {
        panic!("no final checkpoint")
    };
    let trusted: Checkpoint = last.exported();
    // Cut right after the checkpoint of 3 records: a valid log on its own.
    let keep = lines
        .iter()
        .position(|l| matches!(parse_line(l), Ok(Line::Checkpoint(c)) if c.size == 3))
        .unwrap();
    t.write_lines(&lines[..=keep]);
    assert_eq!(t.verify().unwrap().records, 3);
    let f = t.verify_with(Some(&trusted)).unwrap_err();
    assert_eq!(f.kind, FailureKind::Truncated, "{f}");
    assert!(f.detail.contains("covers 6"), "{f}");
}

#[test]
fn a_checkpoint_signed_by_another_key_is_not_resumed_from() {
    let t = TestLog::new();
    signed_log(&t, 2);
    let other = PemSigner::generate(SignatureAlgorithm::EcdsaP256Sha256).unwrap();
    let mut lines = t.lines();
    let Ok(Line::Checkpoint(mut c)) = parse_line(lines.last().unwrap()) else {
        panic!("no final checkpoint")
    };
    let resigned = Checkpoint::sign(&other, &c.origin, c.size, c.root.0, c.time).unwrap();
    (c.key_id, c.sig) = (resigned.key_id, resigned.sig);
    *lines.last_mut().unwrap() = serde_json::to_vec(&Line::Checkpoint(c)).unwrap();
    t.write_lines(&lines);
    let e = open_fails(&t);
    assert!(e.contains("not among the given public keys"), "{e}");
}

#[test]
fn a_record_that_breaks_the_chain_is_not_folded() {
    let t = TestLog::new();
    signed_log(&t, 2);
    let mut lines = t.lines();
    // A copy of the last record appended again: wrong seq, wrong link.
    let last_record = lines[*record_indices(&lines).last().unwrap()].clone();
    lines.push(last_record);
    t.write_lines(&lines);
    let e = open_fails(&t);
    assert!(e.contains("says seq 1 where 2 was expected"), "{e}");
}

#[test]
fn a_torn_append_after_unsigned_records_is_refused_but_one_after_a_checkpoint_is_kept() {
    let t = TestLog::new();
    signed_log(&t, 3);
    let data = std::fs::read(&t.path).unwrap();
    let lines = t.lines();
    // Torn bytes right after the last checkpoint: recovered (nothing unsigned before).
    let mut torn = data.clone();
    torn.extend_from_slice(&lines[0][..30]);
    std::fs::write(&t.path, &torn).unwrap();
    signed_log(&t, 1);
    let s = t.verify().unwrap();
    assert_eq!((s.torn_recovered.len(), s.unsigned_tail), (1, 0));

    // Whole records followed by torn bytes: the records are unsigned; refused.
    let mut data = std::fs::read(&t.path).unwrap();
    let mut lines = t.lines();
    let Ok(Line::Record(r)) = parse_line(&lines[*record_indices(&lines).last().unwrap()]) else {
        panic!()
    };
    let mut forged = lines[*record_indices(&lines).last().unwrap()].clone();
    let text = String::from_utf8(forged).unwrap();
    forged = text
        .replace(
            &format!("\"seq\":{}", r.seq),
            &format!("\"seq\":{}", r.seq + 1),
        )
        .into_bytes();
    lines.push(forged);
    let last = lines.len() - 1;
    rechain(&mut lines, last);
    data.extend_from_slice(lines.last().unwrap());
    data.push(b'\n');
    data.extend_from_slice(&lines[0][..30]);
    std::fs::write(&t.path, &data).unwrap();
    let e = open_fails(&t);
    assert!(e.contains("no signature covers them"), "{e}");
}
