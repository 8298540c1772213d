//! The writer thread: group commits under the file lock, checkpoints, rollback of a
//! failed append.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::catch_up::LineRef;
use super::render::{micros, Render};
use super::{Entry, LogConfig, Shared, MAX_BATCH, SPARE_ENTRIES};
use crate::error::{Error, Result};
use crate::io::lock;
use crate::line::{line_hash, Checkpoint, Hex32, Line};
use crate::merkle::{CompactTree, Hash};
use crate::sign::{CheckpointSigner, PublicKey};
use crate::time::Timestamp;
use crate::who::Who;

/// The writer thread's view of the file.
pub(super) struct Writer {
    pub(super) config: LogConfig,
    pub(super) signer: Arc<dyn CheckpointSigner>,
    /// The signer's public key: checkpoints in the file must verify with it.
    pub(super) verifier: PublicKey,
    /// Why this file must not be appended to (found when catching up); sticky.
    pub(super) refused: Option<String>,
    /// The last line folded, and an unparsable line waiting for the torn-tail record
    /// that must name it.
    pub(super) prev_line: Option<LineRef>,
    pub(super) garbage: Option<LineRef>,
    pub(super) who: Who,
    pub(super) file: File,
    /// A duplicate of `file` for `flock` (same open file description).
    pub(super) lock_fd: Arc<File>,
    /// (device, inode) of `file`, to notice a log replaced under the same path.
    pub(super) id: (u64, u64),
    /// Bytes of the file accounted for in the fields below.
    pub(super) offset: u64,
    pub(super) tree: CompactTree,
    /// Hash of the last record line (zeros before the first).
    pub(super) last_leaf: Hash,
    /// Size and time of the last checkpoint in the file.
    pub(super) cp_size: u64,
    pub(super) cp_time: Timestamp,
    /// This process appended records since the last checkpoint it wrote or saw.
    pub(super) dirty: bool,
    /// A checkpoint could not be signed; retry at every commit until one is.
    pub(super) sign_failed: Option<String>,
    pub(super) buf: Vec<u8>,
    pub(super) render: Render,
    /// Events taken from the queue but not yet written (a failed append).
    pub(super) backlog: Vec<Entry>,
    /// An empty vector with capacity, swapped in for the queue's at the next batch.
    pub(super) spare: Vec<Entry>,
}

/// State that a failed append must roll back.
pub(super) struct Saved {
    pub(super) offset: u64,
    pub(super) tree: CompactTree,
    pub(super) last_leaf: Hash,
    pub(super) cp_size: u64,
    pub(super) cp_time: Timestamp,
    pub(super) prev_line: Option<LineRef>,
    pub(super) garbage: Option<LineRef>,
}

impl Writer {
    pub(super) fn open(
        config: LogConfig,
        signer: Arc<dyn CheckpointSigner>,
        who: Who,
    ) -> Result<Self> {
        let file = open_log(&config.path)?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(&config.path, "reading metadata of", e))?;
        let lock_fd = Arc::new(
            file.try_clone()
                .map_err(|e| Error::io(&config.path, "opening", e))?,
        );
        let verifier = PublicKey::from_der(signer.public_key_der())?;
        Ok(Self {
            signer,
            verifier,
            refused: None,
            prev_line: None,
            garbage: None,
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

    pub(super) fn with_lock<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.reopen_if_replaced()?;
        // `lock_fd` is a duplicate of `file`: locking it locks the same open file.
        let lock_fd = Arc::clone(&self.lock_fd);
        let _guard = lock(&lock_fd, &self.config.path, true, self.config.lock_timeout)?;
        f(self)
    }

    /// If the path now names another file (rotated, replaced), start over with it.
    pub(super) fn reopen_if_replaced(&mut self) -> Result<()> {
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

    pub(super) fn save(&self) -> Saved {
        Saved {
            offset: self.offset,
            tree: self.tree.clone(),
            last_leaf: self.last_leaf,
            cp_size: self.cp_size,
            cp_time: self.cp_time,
            prev_line: self.prev_line,
            garbage: self.garbage,
        }
    }

    pub(super) fn restore(&mut self, s: Saved) {
        self.offset = s.offset;
        self.tree = s.tree;
        self.last_leaf = s.last_leaf;
        self.prev_line = s.prev_line;
        self.garbage = s.garbage;
        self.cp_size = s.cp_size;
        self.cp_time = s.cp_time;
    }

    /// Render an event as the next record into `buf`.
    pub(super) fn append_entry(&mut self, e: &Entry) {
        let start = self.buf.len();
        let (seq, prev) = (self.tree.size(), self.last_leaf);
        self.render.entry(e, seq, &prev, &mut self.buf);
        self.finish_line(start);
    }

    /// The record line in `buf[start..]` is complete: hash it into the chain and tree.
    pub(super) fn finish_line(&mut self, start: usize) {
        let h = line_hash(&self.buf[start..]);
        self.buf.push(b'\n');
        self.tree.push(h);
        self.last_leaf = h;
    }

    /// Sign a checkpoint of the current tree into `buf`.
    pub(super) fn append_checkpoint(&mut self) -> std::result::Result<Checkpoint, String> {
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
    pub(super) fn commit(&mut self, saved: Saved, file_end: u64) -> Result<()> {
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
        (self.prev_line, self.garbage) = (None, None);
        if self.config.sync {
            self.file
                .sync_data()
                .map_err(|e| Error::io(&path, "syncing", e))?;
        }
        Ok(())
    }

    pub(super) fn timer_due(&self) -> bool {
        self.dirty
            && Timestamp::now().as_micros() - self.cp_time.as_micros()
                >= micros(self.config.checkpoint_interval) as i64
    }

    /// The writer thread.
    pub(super) fn run(mut self, s: &Shared) {
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
    pub(super) fn write_batch(
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
            // Every commit ends signed (unless configured otherwise): other writers then
            // never find records that no signature covers, and refuse any they do find.
            let behind = w.tree.size() > w.cp_size;
            let due =
                closing || sign_error.is_some() || w.config.checkpoint_each_commit || w.timer_due();
            if force_cp || (behind && due) {
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

fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, "opening", e))
}
