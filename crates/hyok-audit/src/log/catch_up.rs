//! Catching up with what other processes appended, resuming from a checkpoint, and
//! recovering an interrupted append.
//!
//! The writer signs checkpoints over every record in the file, so it checks what it
//! folds as strictly as `hyok audit verify` does, and refuses to append (for good, in this
//! process) when something does not hold:
//! - the checkpoint it resumes from and every checkpoint it folds must carry a valid
//!   signature of this writer's key, this log's origin, and the size and root of the
//!   records before it;
//! - every record must carry the next `seq` and link (`prev`) to the record before it;
//! - records that other writers left after the last checkpoint (no signature covers them:
//!   forged, edited, or written by a process that crashed or could not sign) are never
//!   signed over.

use std::os::unix::fs::FileExt as _;

use super::writer::Writer;
use crate::error::{Error, Result};
use crate::io::{LineReader, ReadAt};
use crate::json::{write_record, RecordView};
use crate::line::{line_hash, parse_line, Checkpoint, Line, Op, Outcome, Record};
use crate::merkle::{CompactTree, Hash};
use crate::sign::CheckpointVerifier;
use crate::time::Timestamp;

/// (offset, length, hash) of a line.
pub(super) type LineRef = (u64, u64, Hash);

impl Writer {
    /// Bring the in-memory state up to the end of the file (what other processes wrote),
    /// recovering a torn tail. Must hold the lock. Refuses (and keeps refusing) a log
    /// whose new lines do not hold.
    pub(super) fn catch_up(&mut self) -> Result<()> {
        if let Some(why) = &self.refused {
            return Err(self.refusal(why.clone()));
        }
        let path = self.config.path.clone();
        let len = self
            .file
            .metadata()
            .map_err(|e| Error::io(&path, "reading metadata of", e))?
            .len();
        if len < self.offset {
            return Err(self.refuse(format!(
                "the log shrank from {} to {len} bytes while open (truncated?)",
                self.offset
            )));
        }
        if len == self.offset {
            return Ok(());
        }
        if self.offset == 0 {
            self.recover_start(len)?;
        }
        let before = self.tree.size();
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
            if let Err(why) = self.fold(l.offset, l.len, &l.bytes, l.too_long, l.hash) {
                return Err(self.refuse(why));
            }
            self.offset = l.offset + l.len + 1;
        }
        if let Some((offset, _, _)) = self.garbage {
            return Err(self.refuse(format!(
                "the line at byte {offset} is not a valid log line and no torn-tail record names it"
            )));
        }
        match torn {
            Some(t) => self.recover_torn(before, t.offset, t.len, t.bytes, t.too_long, t.hash),
            None => self.check_signed(before),
        }
    }

    /// Records folded since the tree had `before` leaves (written by other processes)
    /// must be covered by a checkpoint.
    fn check_signed(&mut self, before: u64) -> Result<()> {
        if self.tree.size() > before && self.cp_size < self.tree.size() {
            return Err(self.refuse(format!(
                "{} records (seq {} to {}) follow the last checkpoint and no signature covers them: another writer crashed or could not sign, or they were forged or edited",
                self.tree.size() - self.cp_size,
                self.cp_size,
                self.tree.size() - 1
            )));
        }
        Ok(())
    }

    /// Remember that this log must not be appended to, and say why.
    fn refuse(&mut self, why: String) -> Error {
        tracing::error!(path = %self.config.path.display(), "audit log does not verify: {why}");
        self.refused = Some(why.clone());
        self.refusal(why)
    }

    fn refusal(&self, why: String) -> Error {
        Error::Writer {
            path: self.config.path.clone(),
            detail: format!(
                "{why}; refusing to append to it (hyok signs over no record it cannot vouch for): check it with `hyok audit verify`, keep it as evidence and move it away to start a new log"
            ),
        }
    }

    /// Account for one complete line written by anyone, checking it as a verifier would.
    pub(super) fn fold(
        &mut self,
        offset: u64,
        len: u64,
        bytes: &[u8],
        too_long: bool,
        hash: Hash,
    ) -> std::result::Result<(), String> {
        let this = (offset, len, hash);
        let parsed = if too_long {
            Err("too long".to_owned())
        } else {
            parse_line(bytes)
        };
        match parsed {
            Ok(Line::Record(r)) => self.fold_record(offset, &r, hash)?,
            Ok(Line::Checkpoint(c)) => {
                if let Some((o, _, _)) = self.garbage {
                    return Err(format!(
                        "the line at byte {o} is not a valid log line and no torn-tail record names it"
                    ));
                }
                self.fold_checkpoint(offset, &c)?;
            }
            // Not a leaf: acceptable only as the kept bytes of an interrupted append, which
            // the next line (a torn-tail record) must name.
            Err(_) => {
                if let Some((o, _, _)) = self.garbage {
                    return Err(format!(
                        "the line at byte {o} is not a valid log line and no torn-tail record names it"
                    ));
                }
                self.garbage = Some(this);
            }
        }
        self.prev_line = Some(this);
        Ok(())
    }

    fn fold_record(
        &mut self,
        offset: u64,
        r: &Record,
        hash: Hash,
    ) -> std::result::Result<(), String> {
        if r.op == Op::TornTail {
            let named = self.garbage.or(self.prev_line);
            let described = (r.torn_offset, r.torn_len, r.torn_sha256.map(|h| h.0));
            if !matches!(named, Some((o, n, h)) if described == (Some(o), Some(n), Some(h))) {
                return Err(format!(
                    "the torn-tail record at byte {offset} does not name the line before it"
                ));
            }
            self.garbage = None;
        } else if let Some((o, _, _)) = self.garbage {
            return Err(format!(
                "the line at byte {o} is not a valid log line and no torn-tail record names it"
            ));
        }
        let expected = self.tree.size();
        if r.seq != expected {
            return Err(format!(
                "the record at byte {offset} says seq {} where {expected} was expected",
                r.seq
            ));
        }
        if r.prev.0 != self.last_leaf {
            return Err(format!(
                "the record at byte {offset} (seq {expected}) does not link to the record before it"
            ));
        }
        self.tree.push(hash);
        self.last_leaf = hash;
        Ok(())
    }

    /// A checkpoint must be this writer's, of this log, over exactly the records before it.
    fn check_checkpoint(&self, offset: u64, c: &Checkpoint) -> std::result::Result<(), String> {
        c.verify(&[&self.verifier as &dyn CheckpointVerifier])
            .map_err(|e| format!("the checkpoint at byte {offset}: {e}"))?;
        if c.origin != self.config.origin {
            return Err(format!(
                "the checkpoint at byte {offset} belongs to the log {:?}, not {:?}",
                c.origin, self.config.origin
            ));
        }
        Ok(())
    }

    fn fold_checkpoint(&mut self, offset: u64, c: &Checkpoint) -> std::result::Result<(), String> {
        self.check_checkpoint(offset, c)?;
        if c.size != self.tree.size() || c.root.0 != self.tree.root() {
            return Err(format!(
                "the checkpoint at byte {offset} signs {} records with another tree than the {} records before it",
                c.size,
                self.tree.size()
            ));
        }
        self.cp_size = c.size;
        self.cp_time = c.time;
        self.dirty = false;
        Ok(())
    }

    /// Starting from an empty state on a non-empty file: resume from the last checkpoint
    /// that carries the tree's frontier (found by reading the file backwards), so opening
    /// a large log does not read all of it.
    pub(super) fn recover_start(&mut self, len: u64) -> Result<()> {
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
                        if let Some((c, tree, last)) = resume_from(line) {
                            // Never resume from a checkpoint this writer could not have
                            // signed: it vouches for everything before it.
                            let at = start + (first + line_start) as u64;
                            if let Err(why) = self.check_checkpoint(at, &c) {
                                return Err(self.refuse(why));
                            }
                            (self.tree, self.last_leaf) = (tree, last);
                            (self.cp_size, self.cp_time) = (c.size, c.time);
                            self.prev_line = Some((at, line.len() as u64, line_hash(line)));
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
    pub(super) fn recover_torn(
        &mut self,
        before: u64,
        offset: u64,
        len: u64,
        bytes: Vec<u8>,
        too_long: bool,
        hash: Hash,
    ) -> Result<()> {
        tracing::warn!(path = %self.config.path.display(), offset, len, "audit log ends in an interrupted append; keeping it and recording a torn-tail record");
        let saved = self.save();
        if !too_long && matches!(parse_line(&bytes), Ok(Line::Record(_))) {
            return Err(self.refuse(format!(
                "the interrupted append at byte {offset} is a whole record without its newline, and no signature covers it"
            )));
        }
        if let Err(why) = self.fold(offset, len, &bytes, too_long, hash) {
            return Err(self.refuse(why));
        }
        // The kept bytes may be a whole checkpoint that only lacks its newline.
        self.check_signed(before)?;
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
        (self.garbage, self.prev_line) = (None, None);
        if self.config.checkpoint_each_commit {
            // A signing failure leaves the torn-tail record unsigned; the next commit
            // retries (and key use is refused meanwhile).
            if let Err(e) = self.append_checkpoint() {
                self.sign_failed = Some(format!("checkpoint not signed: {e}"));
            }
        }
        self.commit(saved, offset + len)
    }
}

/// A checkpoint line that carries its frontier, and the tree state it gives, if the
/// frontier is consistent with the signed root (the signature is checked by the caller).
fn resume_from(line: &[u8]) -> Option<(Checkpoint, CompactTree, Hash)> {
    let Ok(Line::Checkpoint(c)) = parse_line(line) else {
        return None;
    };
    let frontier = c.frontier.as_ref()?.iter().map(|h| h.0).collect();
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
    Some((c, tree, last))
}
