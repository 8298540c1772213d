//! The writer: an append-only log file shared by any number of processes.
//!
//! Callers queue events ([`AuditLog::record`], `message`, `admin`); one writer
//! thread per process takes everything queued so far (group commit), locks the file
//! (`flock`, exclusive), catches up with what other processes appended since its last
//! write (checking it as a verifier would), appends its records and a signed checkpoint
//! over them in one `write`, `fdatasync`s, and unlocks. A crash can only leave a partial
//! last line; the next writer keeps those bytes, ends them with a newline and records a
//! `torn-tail` record that names them, so nothing is dropped silently.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::event::{AdminEvent, KeyEvent, MessageEvent};

use crate::error::{Error, Result};
use crate::line::Checkpoint;
use crate::sign::CheckpointSigner;
use crate::time::Timestamp;
use crate::who::Who;

mod catch_up;
mod redact;
mod render;
mod writer;

pub use redact::redact_uri;
use writer::Writer;

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
    /// End every append (group commit) with a signed checkpoint (default true). Then no
    /// record ever waits for a signature in the file, and a writer that finds records no
    /// signature covers refuses them (forged, edited, or left by a writer that crashed
    /// mid-append or could not sign). Turn it off only for a log with a single writer
    /// process: checkpoints then follow `checkpoint_every` / `checkpoint_interval` and the
    /// exit, and another process refuses to append while records wait for theirs.
    pub checkpoint_each_commit: bool,
    /// Group-commit window: once a record is queued, the writer waits this long for more
    /// before it writes (skipped when someone waits in [`AuditLog::flush`], asks for a
    /// checkpoint or closes). Default 2 ms.
    pub commit_delay: Duration,
}

impl LogConfig {
    /// Defaults: origin `hyok-audit`, a signed checkpoint at the end of every append (and
    /// every 1,000 records within one), fsync on, 30 s lock timeout.
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
            checkpoint_each_commit: true,
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
        let path = &self.shared.path;
        {
            let q = self.shared.queue();
            match &q.failed {
                Some(f) => return Err(format!("{}: {f}", path.display())),
                None if q.closing || q.stopped => {
                    return Err(format!("{}: closed", path.display()))
                }
                None => {}
            }
        }
        // Fail closed the moment the log cannot be written, not only after the writer
        // has tried: the path must still name a file this process may append to (or be
        // free, after a rotation: the writer then starts a new file there).
        writable(path).map_err(|why| format!("{}: {why}", path.display()))
    }
}

/// Can the log at `path` be appended to (or created, if it was moved away)?
fn writable(path: &Path) -> std::result::Result<(), String> {
    use rustix::fs::{access, Access};
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {
            access(path, Access::WRITE_OK).map_err(|e| format!("the log cannot be written: {e}"))
        }
        Ok(_) => Err("the log path no longer names a regular file".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            access(dir, Access::WRITE_OK | Access::EXEC_OK)
                .map_err(|e| format!("the log is gone and cannot be created again: {e}"))
        }
        Err(e) => Err(format!("the log cannot be checked: {e}")),
    }
}
