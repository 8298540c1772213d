//! Helpers: build logs with known content, edit them line by line, verify.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyok_audit::{
    verify_file, AuditLog, Checkpoint, Error, Failure, LogConfig, PemSigner, PublicKey,
    SignatureAlgorithm, Summary, VerifyOptions,
};
use hyok_audit::{AdminEvent, AdminOp};

/// A temporary log with its signing key.
pub(crate) struct TestLog {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub signer: Arc<PemSigner>,
    pub public: PublicKey,
}

impl TestLog {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let signer = Arc::new(PemSigner::generate(SignatureAlgorithm::EcdsaP256Sha256).unwrap());
        let public = signer.public_key().unwrap();
        Self {
            dir,
            path,
            signer,
            public,
        }
    }

    /// Checkpoints every `checkpoint_every` records and at close only (not after every
    /// commit), so that tests of the verifier control where they fall.
    pub(crate) fn config(&self, checkpoint_every: u64) -> LogConfig {
        let mut c = LogConfig::new(&self.path);
        c.checkpoint_every = checkpoint_every;
        c.checkpoint_each_commit = false;
        c.checkpoint_interval = Duration::from_secs(3600);
        c.identity = Some("svc-test".into());
        c
    }

    pub(crate) fn open(&self, checkpoint_every: u64) -> AuditLog {
        AuditLog::open(self.config(checkpoint_every), self.signer.clone()).unwrap()
    }

    /// Append `n` records (each a flush of its own, so each is its own commit when
    /// `one_by_one`), checkpoint every `every` records, close (exit checkpoint).
    pub(crate) fn append(&self, n: usize, every: u64, one_by_one: bool) {
        let log = self.open(every);
        for i in 0..n {
            log.admin(event(i));
            if one_by_one {
                log.flush().unwrap();
            }
        }
        log.close().unwrap();
    }

    pub(crate) fn lines(&self) -> Vec<Vec<u8>> {
        read_lines(&self.path)
    }

    pub(crate) fn write_lines(&self, lines: &[Vec<u8>]) {
        write_lines(&self.path, lines);
    }

    pub(crate) fn verify(&self) -> Result<Summary, Failure> {
        self.verify_with(None)
    }

    pub(crate) fn verify_with(&self, trusted: Option<&Checkpoint>) -> Result<Summary, Failure> {
        self.verify_opts(trusted, false)
    }

    pub(crate) fn verify_opts(
        &self,
        trusted: Option<&Checkpoint>,
        allow_unsigned_tail: bool,
    ) -> Result<Summary, Failure> {
        let mut opts = VerifyOptions::new(vec![&self.public]);
        opts.trusted = trusted;
        opts.allow_unsigned_tail = allow_unsigned_tail;
        match verify_file(&self.path, &opts) {
            Ok(s) => Ok(s),
            Err(Error::Verification(f)) => Err(*f),
            Err(e) => panic!("verification did not run: {e}"),
        }
    }
}

/// A distinct admin event (so every record line differs).
pub(crate) fn event(i: usize) -> AdminEvent {
    AdminEvent {
        op: if i % 3 == 0 {
            AdminOp::KeyNew
        } else {
            AdminOp::KeyRotate
        },
        key: Some(format!("raw-aes:test/key-{i}?file=/keys/k{i}.key")),
        subject: Some(format!("object-{i}.bin")),
        message_id: Some(vec![i as u8; 32]),
        detail: Some(format!("event number {i}")),
        error: None,
        duration: Duration::from_micros(i as u64),
    }
}

pub(crate) fn read_lines(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap();
    assert!(data.ends_with(b"\n"), "log does not end with a newline");
    data[..data.len() - 1]
        .split(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

pub(crate) fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    std::fs::write(path, out).unwrap();
}

pub(crate) fn is_record(line: &[u8]) -> bool {
    line.starts_with(br#"{"type":"record""#)
}

pub(crate) fn is_checkpoint(line: &[u8]) -> bool {
    line.starts_with(br#"{"type":"checkpoint""#)
}

/// Indices (0-based) of record lines.
pub(crate) fn record_indices(lines: &[Vec<u8>]) -> Vec<usize> {
    (0..lines.len()).filter(|&i| is_record(&lines[i])).collect()
}
