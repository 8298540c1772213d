//! Several processes append to one log at once; a process killed mid-append leaves a log
//! that verifies up to its last complete record, and the next writer records the tail.
//!
//! The child processes are this test binary itself, running the ignored test
//! `concurrent::child_appender` with its instructions in environment variables.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyok_audit::{parse_line, AuditLog, FailureKind, Line, PemSigner, SignatureAlgorithm};

use crate::common::{event, is_checkpoint, is_record, TestLog};

const ENV_LOG: &str = "HYOK_AUDIT_TEST_CHILD_LOG";
const ENV_KEY: &str = "HYOK_AUDIT_TEST_CHILD_KEY";
const ENV_COUNT: &str = "HYOK_AUDIT_TEST_CHILD_COUNT";

/// Appends `$COUNT` records to `$LOG`, signing checkpoints with the PEM key `$KEY`.
#[test]
#[ignore = "a child process of two_processes_append_1000_each and kill_mid_append"]
fn child_appender() {
    let path = std::env::var_os(ENV_LOG).expect("run by the concurrent tests");
    let key = std::env::var_os(ENV_KEY).expect("run by the concurrent tests");
    let count: usize = std::env::var(ENV_COUNT).unwrap().parse().unwrap();
    let signer = Arc::new(PemSigner::from_pem_file(Path::new(&key)).unwrap());
    let mut config = hyok_audit::LogConfig::new(&path);
    config.checkpoint_every = 100;
    let log = AuditLog::open(config, signer).unwrap();
    for i in 0..count {
        log.admin(event(i));
        // Commit in small groups so the two writers interleave.
        if i % 7 == 0 {
            log.flush().unwrap();
        }
    }
    let summary = log.close().unwrap();
    assert_eq!(summary.records, count as u64);
}

fn spawn_child(log: &Path, key: &Path, count: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "concurrent::child_appender",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ENV_LOG, log)
        .env(ENV_KEY, key)
        .env(ENV_COUNT, count.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait for a child, at most `limit`; kill it after that.
fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("child did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn key_file(t: &TestLog) -> std::path::PathBuf {
    let (private, public) = PemSigner::generate_pem(SignatureAlgorithm::EcdsaP256Sha256).unwrap();
    let p = t.dir.path().join("checkpoint-key.pem");
    std::fs::write(&p, private.as_bytes()).unwrap();
    std::fs::write(t.dir.path().join("checkpoint-key.pub.pem"), public).unwrap();
    p
}

fn public_key(t: &TestLog) -> hyok_audit::PublicKey {
    hyok_audit::PublicKey::from_pem_file(&t.dir.path().join("checkpoint-key.pub.pem")).unwrap()
}

fn verify(t: &TestLog) -> Result<hyok_audit::Summary, hyok_audit::Failure> {
    let public = public_key(t);
    match hyok_audit::verify_file(&t.path, &hyok_audit::VerifyOptions::new(vec![&public])) {
        Ok(s) => Ok(s),
        Err(hyok_audit::Error::Verification(f)) => Err(*f),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn two_processes_append_1000_each() {
    let t = TestLog::new();
    let key = key_file(&t);
    let mut a = spawn_child(&t.path, &key, 1000);
    let mut b = spawn_child(&t.path, &key, 1000);
    for c in [&mut a, &mut b] {
        let status = wait_bounded(c, Duration::from_secs(300));
        let mut err = String::new();
        if let Some(mut e) = c.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        assert!(status.success(), "child failed: {err}");
    }
    let s = verify(&t).unwrap();
    assert_eq!(s.records, 2000);
    assert_eq!(s.unsigned_tail, 0);
    let mut per_pid: HashMap<u32, Vec<u64>> = HashMap::new();
    for l in t.lines().iter().filter(|l| is_record(l)) {
        let Ok(Line::Record(r)) = parse_line(l) else {
            panic!()
        };
        per_pid.entry(r.pid).or_default().push(r.seq);
    }
    assert_eq!(per_pid.len(), 2);
    for seqs in per_pid.values() {
        assert_eq!(seqs.len(), 1000);
    }
    let switches = t
        .lines()
        .iter()
        .filter(|l| is_record(l))
        .filter_map(|l| match parse_line(l) {
            Ok(Line::Record(r)) => Some(r.pid),
            _ => None,
        })
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] != w[1])
        .count();
    println!(
        "two writers: 2000 records, {} checkpoints, writer changed {switches} times",
        s.checkpoints
    );
}

#[test]
fn kill_mid_append_leaves_a_log_that_verifies_up_to_its_last_record() {
    let t = TestLog::new();
    let key = key_file(&t);
    let mut child = spawn_child(&t.path, &key, 200_000);
    // Let it write a while, then kill it without warning.
    let started = Instant::now();
    while std::fs::metadata(&t.path).map_or(0, |m| m.len()) < 200_000 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the child wrote nothing"
        );
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();

    let before = verify(&t);
    // Every append ends with a checkpoint, so a kill between appends leaves nothing
    // unsigned. A kill inside one may leave whole records of it without their checkpoint
    // (then they are unsigned and the next writer refuses them) and torn bytes.
    let data = std::fs::read(&t.path).unwrap();
    let complete = &data[..data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)];
    let last_complete = complete[..complete.len().saturating_sub(1)]
        .rsplit(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    let fragment = &data[complete.len()..];
    let unsigned =
        !is_checkpoint(last_complete) || matches!(parse_line(fragment), Ok(Line::Record(_)));
    let complete_records = match &before {
        Ok(s) => s.records,
        Err(f) if f.kind == FailureKind::UnsignedTail => {
            assert!(unsigned, "{f}");
            f.intact_records
        }
        Err(f) => {
            // Otherwise only an interrupted last line is acceptable.
            assert_eq!(f.kind, FailureKind::TornTail, "{f}");
            f.intact_records
        }
    };
    assert!(complete_records > 0);

    let signer = Arc::new(PemSigner::from_pem_file(&key).unwrap());
    let opened = AuditLog::open(hyok_audit::LogConfig::new(&t.path), signer);
    if unsigned {
        let e = opened.expect_err("whole records without their checkpoint are refused");
        assert!(e.to_string().contains("no signature covers them"), "{e}");
        return;
    }
    // The next writer keeps whatever was torn, records it, and goes on.
    let log = opened.unwrap();
    log.admin(event(0));
    log.close().unwrap();
    let after = verify(&t).unwrap();
    let torn = usize::from(before.is_err());
    assert_eq!(after.torn_recovered.len(), torn);
    // Complete records + (torn-tail record) + the new one (+ the torn bytes themselves,
    // should they happen to be a whole checkpoint that only lacked its newline).
    assert_eq!(after.records, complete_records + torn as u64 + 1);
    assert_eq!(after.unsigned_tail, 0);
}
