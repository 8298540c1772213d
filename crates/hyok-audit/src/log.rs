//! The writer: an append-only log file shared by any number of processes.
//!
//! Callers queue events ([`AuditLog::record`], `message`, `admin`); one writer
//! thread per process takes everything queued so far (group commit), locks the file
//! (`flock`, exclusive), catches up with what other processes appended since its last
//! write, appends its records and any due checkpoint in one `write`, `fdatasync`s, and
//! unlocks. A crash can only leave a partial last line; the next writer keeps those bytes,
//! ends them with a newline and records a `torn-tail` record that names them, so nothing is
//! dropped silently.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{FileExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::event::{AdminEvent, AdminOp, KeyEvent, KeyOp, MessageEvent, MessageOp};

use crate::error::{Error, Result};
use crate::io::{lock, LineReader, ReadAt};
use crate::json::{who_fragment, write_record, RecordView};
use crate::line::{
    cap, cap_cow, line_hash, parse_line, Checkpoint, Hex32, Line, Op, Outcome, MAX_FIELD,
};
use crate::merkle::{CompactTree, Hash};
use crate::sign::CheckpointSigner;
use crate::time::Timestamp;
use crate::who::Who;

/// Most records one commit writes (bounds the write buffer).
const MAX_BATCH: usize = 16_384;
/// Capacity kept between batches (about 1 MiB of queued events).
const SPARE_ENTRIES: usize = 4096;

/// Settings of an [`AuditLog`].
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// The log file (created if missing, mode 0600).
    pub path: PathBuf,
    /// Name of the log, signed into every checkpoint. Every writer of one log uses the
    /// same origin. One line, 1 to 256 bytes.
    pub origin: String,
    /// Configured identity written into every record (service account, ticket …).
    pub identity: Option<String>,
    /// Write a checkpoint once this many records follow the last one.
    pub checkpoint_every: u64,
    /// … or once this much time has passed since it, if records follow it.
    pub checkpoint_interval: Duration,
    /// `fdatasync` after every group commit (default true).
    pub sync: bool,
    /// Longest wait for another process's lock before the writer reports failure.
    pub lock_timeout: Duration,
    /// Queued records beyond which callers wait for the writer (back-pressure).
    pub max_pending: usize,
    /// Group-commit window: once a record is queued, the writer waits this long for more
    /// before it writes (skipped when someone waits in [`AuditLog::flush`], asks for a
    /// checkpoint or closes). Default 2 ms.
    pub commit_delay: Duration,
}

impl LogConfig {
    /// Defaults: origin `hyok-audit`, a checkpoint every 1,000 records or 60 s, fsync on,
    /// 30 s lock timeout.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            origin: "hyok-audit".into(),
            identity: None,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            sync: true,
            lock_timeout: Duration::from_secs(30),
            max_pending: 65_536,
            commit_delay: Duration::from_millis(2),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.origin.is_empty() || self.origin.len() > 256 || self.origin.contains(['\n', '\r']) {
            return Err(Error::Config(
                "audit log origin must be one line of 1 to 256 bytes".into(),
            ));
        }
        if self.checkpoint_every == 0 {
            return Err(Error::Config(
                "checkpoint_every must be at least 1 record".into(),
            ));
        }
        Ok(())
    }
}

/// What [`AuditLog::close`] reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloseSummary {
    /// Records this process wrote.
    pub records: u64,
    /// Appends (group commits) it made.
    pub commits: u64,
    /// CPU time of its writer thread.
    pub writer_cpu: Duration,
    /// The final checkpoint, if one was written at close.
    pub checkpoint: Option<Checkpoint>,
}

enum EventKind {
    Key(KeyEvent),
    Message(MessageEvent),
    Admin(AdminEvent),
}

struct Entry {
    time: Timestamp,
    kind: EventKind,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Entry>,
    /// Entries ever queued / ever durably written.
    queued: u64,
    written: u64,
    /// Checkpoint requests made / served, and the last one served.
    cp_wanted: u64,
    cp_served: u64,
    cp_last: Option<std::result::Result<Checkpoint, String>>,
    /// Why the writer cannot write right now (cleared by the next successful write).
    failed: Option<String>,
    closing: bool,
    stopped: bool,
    /// The writer sleeps waiting for records (so a new one must wake it).
    writer_idle: bool,
    /// Callers blocked in `flush` (the writer then skips its commit window).
    flushers: u32,
    final_checkpoint: Option<Checkpoint>,
    /// Records this process wrote (after torn-tail markers are excluded).
    records: u64,
    commits: u64,
    writer_cpu: Duration,
}

struct Shared {
    path: PathBuf,
    queue: Mutex<Queue>,
    /// The writer waits on this for work.
    work: Condvar,
    /// Callers wait on this for progress.
    progress: Condvar,
    max_pending: usize,
    lock_timeout: Duration,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves the queue consistent (plain data).
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An open audit log: queue events with [`AuditLog::record`], `message` and `admin`, [`AuditLog::flush`] to
/// wait until they are durable, [`AuditLog::close`] at exit (writes the exit checkpoint).
pub struct AuditLog {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Open (or create) the log, recover its state and start the writer thread. Fails
    /// early on a path that cannot be written or a lock that is never released.
    pub fn open(config: LogConfig, signer: Arc<dyn CheckpointSigner>) -> Result<Self> {
        config.validate()?;
        let mut writer = Writer::open(config.clone(), signer, Who::current(&config))?;
        // Recover now, so a torn tail left by a crash is recorded even if this process
        // ends up writing nothing else.
        writer.with_lock(|w| w.catch_up())?;
        let shared = Arc::new(Shared {
            path: config.path.clone(),
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            progress: Condvar::new(),
            max_pending: config.max_pending.max(1),
            lock_timeout: config.lock_timeout,
        });
        let s = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name("hyok-audit".into())
            .spawn(move || writer.run(&s))
            .map_err(|e| Error::io(&config.path, "starting the writer thread for", e))?;
        Ok(Self {
            shared,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    fn push(&self, kind: EventKind) {
        let time = Timestamp::now();
        let s = &*self.shared;
        let mut q = s.queue();
        if q.closing || q.stopped {
            tracing::error!(path = %s.path.display(), "audit event after close; not recorded");
            q.failed = Some("the audit log was closed".into());
            return;
        }
        // Back-pressure: bounded wait for the writer to drain a full queue.
        let started = Instant::now();
        while q.pending.len() >= s.max_pending
            && q.failed.is_none()
            && started.elapsed() < s.lock_timeout
        {
            q = s
                .progress
                .wait_timeout(q, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        q.pending.push(Entry { time, kind });
        q.queued += 1;
        let wake = q.writer_idle;
        q.writer_idle = false;
        drop(q);
        if wake {
            s.work.notify_one();
        }
    }

    /// Wait until every event queued before this call is written (and synced, if
    /// configured). Bounded by the lock timeout plus a margin.
    pub fn flush(&self) -> Result<()> {
        let s = &*self.shared;
        let mut q = s.queue();
        let target = q.queued;
        if q.written >= target {
            return match &q.failed {
                Some(f) => Err(self.writer_error(f.clone())),
                None => Ok(()),
            };
        }
        q.flushers += 1;
        drop(q);
        s.work.notify_one();
        let result = self.wait_written(target);
        s.queue().flushers -= 1;
        result
    }

    fn wait_written(&self, target: u64) -> Result<()> {
        let s = &*self.shared;
        let mut q = s.queue();
        let deadline = Instant::now() + s.lock_timeout + Duration::from_secs(30);
        while q.written < target {
            if let Some(f) = &q.failed {
                return Err(self.writer_error(f.clone()));
            }
            if q.stopped {
                return Err(self.writer_error("the writer stopped".into()));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.writer_error(format!(
                    "{} records still unwritten after waiting",
                    target - q.written
                )));
            }
            q = s
                .progress
                .wait_timeout(q, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        Ok(())
    }

    /// Write a signed checkpoint now (after everything queued so far) and return it.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let s = &*self.shared;
        let mut q = s.queue();
        if q.closing || q.stopped {
            return Err(self.writer_error("the audit log is closed".into()));
        }
        q.cp_wanted += 1;
        let ticket = q.cp_wanted;
        s.work.notify_one();
        let deadline = Instant::now() + s.lock_timeout + Duration::from_secs(30);
        while q.cp_served < ticket {
            if q.stopped {
                return Err(self.writer_error("the writer stopped".into()));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.writer_error("no checkpoint after waiting".into()));
            }
            q = s
                .progress
                .wait_timeout(q, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        match &q.cp_last {
            Some(Ok(c)) => Ok(c.clone()),
            Some(Err(e)) => Err(self.writer_error(e.clone())),
            None => Err(self.writer_error("no checkpoint was written".into())),
        }
    }

    /// Write everything queued, sign the exit checkpoint (if records follow the last
    /// checkpoint) and stop the writer. Later events are refused. Idempotent.
    pub fn close(&self) -> Result<CloseSummary> {
        {
            let mut q = self.shared.queue();
            q.closing = true;
        }
        self.shared.work.notify_one();
        let handle = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                return Err(self.writer_error("the writer thread panicked".into()));
            }
        }
        let q = self.shared.queue();
        if let Some(f) = &q.failed {
            let lost = q.queued - q.written;
            let msg = if lost > 0 {
                format!("{f}; {lost} records could not be written")
            } else {
                f.clone()
            };
            return Err(self.writer_error(msg));
        }
        Ok(CloseSummary {
            records: q.records,
            commits: q.commits,
            writer_cpu: q.writer_cpu,
            checkpoint: q.final_checkpoint.clone(),
        })
    }

    fn writer_error(&self, detail: String) -> Error {
        Error::Writer {
            path: self.shared.path.clone(),
            detail,
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!("closing the audit log: {e}");
        }
    }
}

/// Queueing records: these return at once (one writer thread writes them), so they can be
/// called from any thread or async task.
impl AuditLog {
    /// Queue one key use.
    pub fn record(&self, event: KeyEvent) {
        self.push(EventKind::Key(event));
    }

    /// Queue one message operation.
    pub fn message(&self, event: MessageEvent) {
        self.push(EventKind::Message(event));
    }

    /// Queue one key lifecycle step or policy refusal.
    pub fn admin(&self, event: AdminEvent) {
        self.push(EventKind::Admin(event));
    }

    /// `Err(reason)` when the log can no longer record (key operations must then be
    /// refused: fail closed).
    pub fn check(&self) -> std::result::Result<(), String> {
        let q = self.shared.queue();
        match &q.failed {
            Some(f) => Err(format!("{}: {f}", self.shared.path.display())),
            None if q.closing || q.stopped => {
                Err(format!("{}: closed", self.shared.path.display()))
            }
            None => Ok(()),
        }
    }
}

/// Remove secret-looking query attributes and URI passwords from a key URI before it is
/// recorded. Key stores already give URIs without secrets; this is a second fence.
pub fn redact_uri(uri: &str) -> String {
    const SECRET: [&str; 7] = [
        "pin-value",
        "pin",
        "password",
        "passwd",
        "secret",
        "token",
        "passphrase",
    ];
    let (base, query) = match uri.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (uri, None),
    };
    // scheme://user:password@host → scheme://user:***@host
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (auth, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match auth.rsplit_once('@') {
                Some((userinfo, host)) if userinfo.contains(':') => {
                    let user = userinfo.split(':').next().unwrap_or_default();
                    format!("{scheme}://{user}:***@{host}{path}")
                }
                _ => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    let Some(query) = query else {
        return base;
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            let lower = name.to_ascii_lowercase();
            if SECRET
                .iter()
                .any(|s| lower == *s || lower.ends_with(&format!("-{s}")))
                || lower.contains("password")
                || lower.contains("secret")
                || lower.contains("token")
            {
                format!("{name}=***")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

fn suite_name(s: hyok_core::AlgorithmSuite) -> String {
    format!("0x{:04x}", s.id())
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Per-writer caches that make rendering a record cheap: the process's fields rendered
/// once, redacted key URIs, suite names.
struct Render {
    who: Vec<u8>,
    uris: HashMap<String, String>,
    suites: Vec<(u16, String)>,
}

impl Render {
    fn new(who: &Who) -> Self {
        Self {
            who: who_fragment(
                &who.host,
                &who.user,
                who.uid,
                who.pid,
                who.identity.as_deref(),
            ),
            uris: HashMap::new(),
            suites: Vec::new(),
        }
    }

    fn learn_uri(&mut self, uri: &str) {
        if !self.uris.contains_key(uri) {
            if self.uris.len() >= 1024 {
                self.uris.clear();
            }
            self.uris
                .insert(uri.to_owned(), cap(&redact_uri(uri), MAX_FIELD));
        }
    }

    fn learn_suite(&mut self, s: hyok_core::AlgorithmSuite) {
        if !self.suites.iter().any(|(id, _)| *id == s.id()) {
            self.suites.push((s.id(), suite_name(s)));
        }
    }

    fn uri(&self, uri: &str) -> &str {
        self.uris.get(uri).map_or("", String::as_str)
    }

    fn suite(&self, s: hyok_core::AlgorithmSuite) -> &str {
        self.suites
            .iter()
            .find(|(id, _)| *id == s.id())
            .map_or("", |(_, n)| n.as_str())
    }

    /// Append the record line of `e` (no newline) to `buf`.
    fn entry(&mut self, e: &Entry, seq: u64, prev: &Hash, buf: &mut Vec<u8>) {
        match &e.kind {
            EventKind::Key(k) => {
                self.learn_uri(&k.key.uri);
                self.learn_suite(k.suite);
            }
            EventKind::Message(m) => {
                for k in m.keys.iter().take(MAX_KEYS) {
                    self.learn_uri(k);
                }
                if let Some(s) = m.suite {
                    self.learn_suite(s);
                }
            }
            EventKind::Admin(a) => {
                if let Some(k) = &a.key {
                    self.learn_uri(k);
                }
            }
        }
        let this = &*self;
        let outcome = |err: Option<&'static str>| {
            if err.is_some() {
                Outcome::Error
            } else {
                Outcome::Ok
            }
        };
        let mut view = RecordView {
            seq,
            time: e.time,
            op: Op::Encrypt,
            outcome: Outcome::Ok,
            error: None,
            key: None,
            keys: &[],
            backend: None,
            suite: None,
            ctx_sha256: None,
            edk_sha256: None,
            message_id: None,
            subject: None,
            bytes: None,
            detail: None,
            torn_offset: None,
            torn_len: None,
            torn_sha256: None,
            duration_us: 0,
            who: &this.who,
            prev,
        };
        let subject;
        let detail;
        let keys: Vec<&str>;
        match &e.kind {
            EventKind::Key(k) => {
                view.op = match k.op {
                    KeyOp::Generate => Op::Generate,
                    KeyOp::Wrap => Op::Wrap,
                    KeyOp::Unwrap => Op::Unwrap,
                    KeyOp::CacheHitEncrypt => Op::CacheHitEncrypt,
                    KeyOp::CacheHitDecrypt => Op::CacheHitDecrypt,
                };
                view.outcome = outcome(k.error);
                view.error = k.error;
                view.key = Some(this.uri(&k.key.uri));
                view.backend = Some(k.key.backend);
                view.suite = Some(this.suite(k.suite));
                view.ctx_sha256 = Some(&k.context_sha256);
                view.edk_sha256 = k.edk_sha256.as_ref();
                view.message_id = k.message_id.as_deref().map(cap_bytes);
                subject = k.subject.as_deref().map(|s| cap_cow(s, MAX_FIELD));
                view.subject = subject.as_deref();
                view.duration_us = micros(k.duration);
            }
            EventKind::Message(m) => {
                view.op = match m.op {
                    MessageOp::Encrypt => Op::Encrypt,
                    MessageOp::Decrypt => Op::Decrypt,
                };
                view.outcome = outcome(m.error);
                view.error = m.error;
                keys = m.keys.iter().take(MAX_KEYS).map(|k| this.uri(k)).collect();
                view.keys = &keys;
                view.suite = m.suite.map(|s| this.suite(s));
                view.ctx_sha256 = m.context_sha256.as_ref();
                view.message_id = m.message_id.as_deref().map(cap_bytes);
                subject = m.subject.as_deref().map(|s| cap_cow(s, MAX_FIELD));
                view.subject = subject.as_deref();
                view.bytes = m.bytes;
                view.duration_us = micros(m.duration);
            }
            EventKind::Admin(a) => {
                view.op = match a.op {
                    AdminOp::KeyNew => Op::KeyNew,
                    AdminOp::KeyRotate => Op::KeyRotate,
                    AdminOp::KeyDestroy => Op::KeyDestroy,
                    AdminOp::PolicyRefusal => Op::PolicyRefusal,
                };
                view.outcome = outcome(a.error);
                view.error = a.error;
                view.key = a.key.as_deref().map(|k| this.uri(k));
                subject = a.subject.as_deref().map(|s| cap_cow(s, MAX_FIELD));
                view.subject = subject.as_deref();
                view.message_id = a.message_id.as_deref().map(cap_bytes);
                detail = a.detail.as_deref().map(|s| cap_cow(s, MAX_FIELD));
                view.detail = detail.as_deref();
                view.duration_us = micros(a.duration);
            }
        }
        write_record(buf, &view);
    }
}

/// Key URIs recorded per message at most.
const MAX_KEYS: usize = 64;

/// Message ids are 16 or 32 bytes; anything longer is cut (they come from messages).
fn cap_bytes(b: &[u8]) -> &[u8] {
    &b[..b.len().min(64)]
}

/// The writer thread's view of the file.
struct Writer {
    config: LogConfig,
    signer: Arc<dyn CheckpointSigner>,
    who: Who,
    file: File,
    /// A duplicate of `file` for `flock` (same open file description).
    lock_fd: Arc<File>,
    /// (device, inode) of `file`, to notice a log replaced under the same path.
    id: (u64, u64),
    /// Bytes of the file accounted for in the fields below.
    offset: u64,
    tree: CompactTree,
    /// Hash of the last record line (zeros before the first).
    last_leaf: Hash,
    /// Size and time of the last checkpoint in the file.
    cp_size: u64,
    cp_time: Timestamp,
    /// This process appended records since the last checkpoint it wrote or saw.
    dirty: bool,
    /// A checkpoint could not be signed; retry at every commit until one is.
    sign_failed: Option<String>,
    buf: Vec<u8>,
    render: Render,
    /// Events taken from the queue but not yet written (a failed append).
    backlog: Vec<Entry>,
    /// An empty vector with capacity, swapped in for the queue's at the next batch.
    spare: Vec<Entry>,
}

/// State that a failed append must roll back.
struct Saved {
    offset: u64,
    tree: CompactTree,
    last_leaf: Hash,
    cp_size: u64,
    cp_time: Timestamp,
}

impl Writer {
    fn open(config: LogConfig, signer: Arc<dyn CheckpointSigner>, who: Who) -> Result<Self> {
        let file = open_log(&config.path)?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(&config.path, "reading metadata of", e))?;
        let lock_fd = Arc::new(
            file.try_clone()
                .map_err(|e| Error::io(&config.path, "opening", e))?,
        );
        Ok(Self {
            signer,
            render: Render::new(&who),
            who,
            file,
            lock_fd,
            id: (meta.dev(), meta.ino()),
            offset: 0,
            tree: CompactTree::new(),
            last_leaf: [0; 32],
            cp_size: 0,
            cp_time: Timestamp::now(),
            dirty: false,
            sign_failed: None,
            buf: Vec::with_capacity(64 * 1024),
            backlog: Vec::new(),
            spare: Vec::new(),
            config,
        })
    }

    fn with_lock<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.reopen_if_replaced()?;
        // `lock_fd` is a duplicate of `file`: locking it locks the same open file.
        let lock_fd = Arc::clone(&self.lock_fd);
        let _guard = lock(&lock_fd, &self.config.path, true, self.config.lock_timeout)?;
        f(self)
    }

    /// If the path now names another file (rotated, replaced), start over with it.
    fn reopen_if_replaced(&mut self) -> Result<()> {
        let current = match std::fs::metadata(&self.config.path) {
            Ok(m) => Some((m.dev(), m.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&self.config.path, "reading metadata of", e)),
        };
        if current != Some(self.id) {
            tracing::warn!(path = %self.config.path.display(), "audit log was replaced; continuing in the new file");
            let fresh = Self::open(
                self.config.clone(),
                Arc::clone(&self.signer),
                self.who.clone(),
            )?;
            let backlog = std::mem::take(&mut self.backlog);
            *self = fresh;
            self.backlog = backlog;
        }
        Ok(())
    }

    /// Bring the in-memory state up to the end of the file (what other processes wrote),
    /// recovering a torn tail. Must hold the lock.
    fn catch_up(&mut self) -> Result<()> {
        let path = self.config.path.clone();
        let len = self
            .file
            .metadata()
            .map_err(|e| Error::io(&path, "reading metadata of", e))?
            .len();
        if len < self.offset {
            return Err(Error::Writer {
                path,
                detail: format!(
                    "the log shrank from {} to {len} bytes while open (truncated?); refusing to append",
                    self.offset
                ),
            });
        }
        if len == self.offset {
            return Ok(());
        }
        if self.offset == 0 {
            self.recover_start(len)?;
        }
        let read_fd = self
            .file
            .try_clone()
            .map_err(|e| Error::io(&path, "reading", e))?;
        let mut reader = LineReader::new(ReadAt::new(&read_fd, self.offset, len), self.offset, 0);
        let mut torn = None;
        while let Some(l) = reader
            .next_line()
            .map_err(|e| Error::io(&path, "reading", e))?
        {
            if l.torn {
                torn = Some(l);
                break;
            }
            self.fold(&l.bytes, l.too_long, l.hash);
            self.offset = l.offset + l.len + 1;
        }
        if let Some(t) = torn {
            self.recover_torn(t.offset, t.len, t.bytes, t.too_long, t.hash)?;
        }
        Ok(())
    }

    /// Account for one complete line written by anyone.
    fn fold(&mut self, bytes: &[u8], too_long: bool, hash: Hash) {
        if too_long {
            return;
        }
        match parse_line(bytes) {
            Ok(Line::Record(_)) => {
                self.tree.push(hash);
                self.last_leaf = hash;
            }
            Ok(Line::Checkpoint(c)) => {
                if c.size == self.tree.size() {
                    self.cp_size = c.size;
                    self.cp_time = c.time;
                    self.dirty = false;
                }
            }
            // Garbage or a recovered torn append: not a leaf; verification reports it.
            Err(_) => {}
        }
    }

    /// Starting from an empty state on a non-empty file: resume from the last checkpoint
    /// that carries the tree's frontier (found by reading the file backwards), so opening
    /// a large log does not read all of it.
    fn recover_start(&mut self, len: u64) -> Result<()> {
        let path = self.config.path.clone();
        let mut window: u64 = 256 * 1024;
        loop {
            let start = len.saturating_sub(window);
            let mut buf = vec![0u8; usize::try_from(len - start).unwrap_or(0)];
            self.file
                .read_exact_at(&mut buf, start)
                .map_err(|e| Error::io(&path, "reading", e))?;
            // Complete lines only: skip a partial first line (unless at the file start)
            // and anything after the last newline.
            let first = if start == 0 {
                0
            } else {
                match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => i + 1,
                    None => buf.len(),
                }
            };
            let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if first < end {
                let region = &buf[first..end];
                let mut line_end = region.len() - 1; // index of a '\n'
                loop {
                    let line_start = region[..line_end]
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |i| i + 1);
                    let line = &region[line_start..line_end];
                    if line.starts_with(br#"{"type":"checkpoint""#) {
                        if let Some(state) = resume_from(line) {
                            (self.tree, self.last_leaf, self.cp_size, self.cp_time) = state;
                            self.offset = start + (first + line_end + 1) as u64;
                            return Ok(());
                        }
                    }
                    if line_start == 0 {
                        break;
                    }
                    line_end = line_start - 1;
                }
            }
            if start == 0 || window >= 64 * 1024 * 1024 {
                // No usable checkpoint near the end: read from the start.
                return Ok(());
            }
            window *= 4;
        }
    }

    /// A previous writer died mid-append: keep its bytes as a line of their own and
    /// append a `torn-tail` record naming them. Must hold the lock.
    fn recover_torn(
        &mut self,
        offset: u64,
        len: u64,
        bytes: Vec<u8>,
        too_long: bool,
        hash: Hash,
    ) -> Result<()> {
        tracing::warn!(path = %self.config.path.display(), offset, len, "audit log ends in an interrupted append; keeping it and recording a torn-tail record");
        let saved = self.save();
        self.fold(&bytes, too_long, hash);
        let detail = format!(
            "an append was interrupted: {len} bytes at offset {offset} had no newline; kept as a line of their own"
        );
        self.buf.clear();
        self.buf.push(b'\n');
        let start = self.buf.len();
        let prev = self.last_leaf;
        write_record(
            &mut self.buf,
            &RecordView {
                seq: self.tree.size(),
                time: Timestamp::now(),
                op: Op::TornTail,
                outcome: Outcome::Error,
                error: Some("interrupted-append"),
                key: None,
                keys: &[],
                backend: None,
                suite: None,
                ctx_sha256: None,
                edk_sha256: None,
                message_id: None,
                subject: None,
                bytes: None,
                detail: Some(&detail),
                torn_offset: Some(offset),
                torn_len: Some(len),
                torn_sha256: Some(&hash),
                duration_us: 0,
                who: &self.render.who,
                prev: &prev,
            },
        );
        self.finish_line(start);
        self.commit(saved, offset + len)
    }

    fn save(&self) -> Saved {
        Saved {
            offset: self.offset,
            tree: self.tree.clone(),
            last_leaf: self.last_leaf,
            cp_size: self.cp_size,
            cp_time: self.cp_time,
        }
    }

    fn restore(&mut self, s: Saved) {
        self.offset = s.offset;
        self.tree = s.tree;
        self.last_leaf = s.last_leaf;
        self.cp_size = s.cp_size;
        self.cp_time = s.cp_time;
    }

    /// Render an event as the next record into `buf`.
    fn append_entry(&mut self, e: &Entry) {
        let start = self.buf.len();
        let (seq, prev) = (self.tree.size(), self.last_leaf);
        self.render.entry(e, seq, &prev, &mut self.buf);
        self.finish_line(start);
    }

    /// The record line in `buf[start..]` is complete: hash it into the chain and tree.
    fn finish_line(&mut self, start: usize) {
        let h = line_hash(&self.buf[start..]);
        self.buf.push(b'\n');
        self.tree.push(h);
        self.last_leaf = h;
    }

    /// Sign a checkpoint of the current tree into `buf`.
    fn append_checkpoint(&mut self) -> std::result::Result<Checkpoint, String> {
        let time = Timestamp::now();
        let mut c = Checkpoint::sign(
            &*self.signer,
            &self.config.origin,
            self.tree.size(),
            self.tree.root(),
            time,
        )
        .map_err(|e| e.to_string())?;
        let exported = c.clone();
        c.frontier = Some(self.tree.frontier().iter().map(|h| Hex32(*h)).collect());
        c.last_leaf = (self.tree.size() > 0).then_some(Hex32(self.last_leaf));
        serde_json::to_writer(&mut self.buf, &Line::Checkpoint(c)).map_err(|e| e.to_string())?;
        self.buf.push(b'\n');
        self.cp_size = self.tree.size();
        self.cp_time = time;
        self.dirty = false;
        Ok(exported)
    }

    /// Write `buf` in one append at `file_end` (the current end of the file) and sync;
    /// on failure undo the partial append and the in-memory state.
    fn commit(&mut self, saved: Saved, file_end: u64) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.config.path.clone();
        if let Err(e) = self.file.write_all(&self.buf) {
            let undo = self.file.set_len(file_end);
            self.restore(saved);
            self.buf.clear();
            return Err(match undo {
                Ok(()) => Error::io(&path, "appending to", e),
                Err(u) => Error::Writer {
                    path,
                    detail: format!(
                        "appending failed ({e}) and removing the partial append failed too ({u}); the next writer will record it as a torn tail"
                    ),
                },
            });
        }
        // The append is in the file from here on, whatever happens to the sync.
        self.offset = file_end + self.buf.len() as u64;
        self.buf.clear();
        if self.config.sync {
            self.file
                .sync_data()
                .map_err(|e| Error::io(&path, "syncing", e))?;
        }
        Ok(())
    }

    fn timer_due(&self) -> bool {
        self.dirty
            && Timestamp::now().as_micros() - self.cp_time.as_micros()
                >= micros(self.config.checkpoint_interval) as i64
    }

    /// The writer thread.
    fn run(mut self, s: &Shared) {
        let mut retry_at: Option<Instant> = None;
        loop {
            let (batch, cp_ticket, closing) = {
                let mut q = s.queue();
                loop {
                    let retry_ok = retry_at.is_none_or(|t| Instant::now() >= t);
                    let work = !q.pending.is_empty()
                        || !self.backlog.is_empty()
                        || q.cp_wanted > q.cp_served
                        || q.closing
                        || self.timer_due();
                    if work && retry_ok {
                        break;
                    }
                    let wait = retry_at
                        .map_or(Duration::from_secs(1), |t| {
                            t.saturating_duration_since(Instant::now())
                        })
                        .max(Duration::from_millis(1));
                    q.writer_idle = true;
                    q = s
                        .work
                        .wait_timeout(q, wait)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                    q.writer_idle = false;
                }
                // Group commit: give more records a moment to arrive, unless someone waits.
                let window_end = Instant::now() + self.config.commit_delay;
                loop {
                    let urgent = q.flushers > 0 || q.cp_wanted > q.cp_served || q.closing;
                    let now = Instant::now();
                    if urgent || now >= window_end || q.pending.len() >= MAX_BATCH {
                        break;
                    }
                    q = s
                        .work
                        .wait_timeout(q, window_end - now)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
                let ticket = (q.cp_wanted > q.cp_served).then_some(q.cp_wanted);
                let batch = if q.pending.len() > MAX_BATCH {
                    q.pending.drain(..MAX_BATCH).collect()
                } else {
                    // The emptied vector of the last batch takes its place, so callers
                    // push into reserved space instead of growing a new vector each time.
                    std::mem::replace(&mut q.pending, std::mem::take(&mut self.spare))
                };
                (batch, ticket, q.closing && q.pending.is_empty())
            };
            let result = self.write_batch(batch, cp_ticket.is_some(), closing);
            let mut q = s.queue();
            let stop = match result {
                Ok((n, checkpoint)) => {
                    q.written += n;
                    q.records += n;
                    q.commits += 1;
                    q.failed = self.sign_failed.clone();
                    if let Some(t) = cp_ticket {
                        q.cp_served = t;
                        q.cp_last = Some(checkpoint.clone().ok_or_else(|| {
                            self.sign_failed
                                .clone()
                                .unwrap_or_else(|| "no checkpoint was written".into())
                        }));
                    }
                    if closing {
                        q.final_checkpoint = checkpoint;
                    }
                    retry_at = None;
                    closing && q.pending.is_empty()
                }
                Err(e) => {
                    tracing::error!("audit log: {e}");
                    // The records stay in the backlog for the next attempt.
                    q.failed = Some(e.to_string());
                    if let Some(t) = cp_ticket {
                        q.cp_served = t;
                        q.cp_last = Some(Err(e.to_string()));
                    }
                    retry_at = Some(Instant::now() + Duration::from_millis(500));
                    // At close there is nobody left to retry for: report and stop.
                    q.closing
                }
            };
            if stop {
                q.stopped = true;
                let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
                q.writer_cpu = Duration::new(
                    u64::try_from(t.tv_sec).unwrap_or(0),
                    u32::try_from(t.tv_nsec).unwrap_or(0),
                );
            }
            drop(q);
            s.progress.notify_all();
            if stop {
                return;
            }
        }
    }

    /// Append the backlog and one group of new records (and any due checkpoint) under
    /// the lock. Returns how many were written; on failure they stay in the backlog.
    fn write_batch(
        &mut self,
        batch: Vec<Entry>,
        force_cp: bool,
        closing: bool,
    ) -> Result<(u64, Option<Checkpoint>)> {
        let mut records = if self.backlog.is_empty() {
            batch
        } else {
            let mut r = std::mem::take(&mut self.backlog);
            r.extend(batch);
            r
        };
        let res = self.with_lock(|w| {
            w.catch_up()?;
            let saved = w.save();
            let file_end = w.offset;
            w.buf.clear();
            let mut checkpoint = None;
            let mut sign_error = w.sign_failed.clone();
            for r in &records {
                w.append_entry(r);
                w.dirty = true;
                if w.tree.size() - w.cp_size >= w.config.checkpoint_every {
                    match w.append_checkpoint() {
                        Ok(c) => {
                            checkpoint = Some(c);
                            sign_error = None;
                        }
                        Err(e) => sign_error = Some(e),
                    }
                }
            }
            let behind = w.tree.size() > w.cp_size;
            if force_cp || (behind && (closing || sign_error.is_some() || w.timer_due())) {
                match w.append_checkpoint() {
                    Ok(c) => {
                        checkpoint = Some(c);
                        sign_error = None;
                    }
                    Err(e) => sign_error = Some(e),
                }
            }
            w.commit(saved, file_end)?;
            w.sign_failed = sign_error.map(|e| format!("checkpoint not signed: {e}"));
            Ok(checkpoint)
        });
        match res {
            Ok(c) => {
                let n = records.len() as u64;
                // Events are freed here; the vector is kept for the next batch.
                records.clear();
                records.shrink_to(SPARE_ENTRIES);
                self.spare = records;
                Ok((n, c))
            }
            Err(e) => {
                self.backlog = records;
                Err(e)
            }
        }
    }
}

/// Tree state from a checkpoint line that carries its frontier, if it is consistent.
fn resume_from(line: &[u8]) -> Option<(CompactTree, Hash, u64, Timestamp)> {
    let Ok(Line::Checkpoint(c)) = parse_line(line) else {
        return None;
    };
    let frontier = c.frontier?.into_iter().map(|h| h.0).collect();
    let tree = CompactTree::from_parts(c.size, frontier)?;
    if tree.root() != c.root.0 {
        return None;
    }
    let last = match (c.size, c.last_leaf) {
        (0, _) => [0; 32],
        (_, Some(h)) => h.0,
        (_, None) => return None,
    };
    // For an odd size the last leaf is the frontier's last (single-leaf) subtree.
    if c.size % 2 == 1 && tree.frontier().last() != Some(&last) {
        return None;
    }
    Some((tree, last, c.size, c.time))
}

fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, "opening", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets_in_uris() {
        assert_eq!(
            redact_uri("pkcs11:token=t;object=k?pin-value=1234&module-path=/x.so"),
            "pkcs11:token=t;object=k?pin-value=***&module-path=/x.so"
        );
        assert_eq!(
            redact_uri("kmip://alice:hunter2@kms.example:5696/key"),
            "kmip://alice:***@kms.example:5696/key"
        );
        assert_eq!(
            redact_uri("vault-transit://v:8200/transit/k?token=s.abc&x-vault-token=s.def"),
            "vault-transit://v:8200/transit/k?token=***&x-vault-token=***"
        );
        assert_eq!(
            redact_uri("raw-aes:ns/k?file=/keys/a.key"),
            "raw-aes:ns/k?file=/keys/a.key"
        );
    }
}
