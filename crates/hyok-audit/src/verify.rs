//! Offline verification: needs only the log and the public key(s) of its checkpoint signer.
//!
//! Every line is parsed (strictly, bounded), every record is checked against the record
//! chain (`seq`, `prev`) and folded into the Merkle tree, every checkpoint's signature is
//! checked and its size and root compared with the tree of the records before it. The
//! first line that does not hold is named, with what most likely happened to it
//! (modified, deleted, inserted, reordered, torn). With a trusted checkpoint, the log must
//! still contain exactly the tree that checkpoint signed.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::io::{lock, LineReader, RawLine};
use crate::line::{parse_line, Checkpoint, Line, Op, Record, MAX_LINE};
use crate::merkle::{empty_root, CompactTree, Hash};
use crate::sign::{CheckpointVerifier, KeyId};
use crate::time::Timestamp;

/// What to verify against.
#[derive(Debug)]
pub struct VerifyOptions<'a> {
    /// Public keys checkpoints may be signed with.
    pub keys: Vec<&'a dyn CheckpointVerifier>,
    /// A checkpoint kept earlier: the log must still extend it.
    pub trusted: Option<&'a Checkpoint>,
    /// Longest wait for writers to release the log (verification takes a shared lock so
    /// it never sees half an append).
    pub lock_timeout: Duration,
    /// Accept records after the last checkpoint (reported in [`Summary::unsigned_tail`]).
    /// By default they fail verification: nothing signed vouches for them, so they may
    /// have been edited, added, or left behind by a deleted checkpoint.
    pub allow_unsigned_tail: bool,
}

impl<'a> VerifyOptions<'a> {
    /// Verify against these keys, no trusted checkpoint, 30 s lock timeout.
    pub fn new(keys: Vec<&'a dyn CheckpointVerifier>) -> Self {
        Self {
            keys,
            trusted: None,
            lock_timeout: Duration::from_secs(30),
            allow_unsigned_tail: false,
        }
    }
}

/// A checkpoint found in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Line number (1-based).
    pub line: u64,
    /// Records covered.
    pub size: u64,
    /// Root signed.
    pub root: Hash,
    /// Signing time.
    pub time: Timestamp,
    /// Signing key.
    pub key_id: KeyId,
}

/// An interrupted append that a later writer kept and recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornInfo {
    /// Line number of the kept bytes.
    pub line: u64,
    /// Their byte offset.
    pub offset: u64,
    /// Their length.
    pub len: u64,
}

/// A log that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Records (Merkle leaves).
    pub records: u64,
    /// Checkpoints, all with valid signatures.
    pub checkpoints: u64,
    /// The last checkpoint.
    pub last_checkpoint: Option<CheckpointInfo>,
    /// Records after the last checkpoint (not yet covered by a signature).
    pub unsigned_tail: u64,
    /// Interrupted appends found and recorded by writers.
    pub torn_recovered: Vec<TornInfo>,
    /// Size of the trusted checkpoint the log extends, if one was given.
    pub extends_trusted: Option<u64>,
    /// Merkle root of all records.
    pub root: Hash,
}

/// What went wrong at the failing line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// A checkpoint's signature does not verify (or its key is unknown).
    BadSignature,
    /// Records are missing.
    Deleted,
    /// A record was added that the chain does not contain.
    Inserted,
    /// The line is not a valid log line.
    Malformed,
    /// The line's content changed.
    Modified,
    /// Records are out of order.
    Reordered,
    /// The log was rewritten below a trusted checkpoint.
    Rewritten,
    /// The last line has no newline: an interrupted append.
    TornTail,
    /// The log is shorter than a trusted checkpoint.
    Truncated,
    /// Records follow the last checkpoint (no signature covers them).
    UnsignedTail,
}

impl FailureKind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadSignature => "bad signature",
            Self::Deleted => "deleted",
            Self::Inserted => "inserted",
            Self::Malformed => "malformed",
            Self::Modified => "modified",
            Self::Reordered => "reordered",
            Self::Rewritten => "rewritten",
            Self::TornTail => "torn last line",
            Self::Truncated => "cut",
            Self::UnsignedTail => "unsigned tail",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first line that does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Line number (1-based) of the place named.
    pub line: u64,
    /// Byte offset of that line.
    pub offset: u64,
    /// What happened.
    pub kind: FailureKind,
    /// Details for a person.
    pub detail: String,
    /// Records before the failing place that are intact.
    pub intact_records: u64,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {}: {} ({} record{} before it intact)",
            self.line,
            self.kind,
            self.detail,
            self.intact_records,
            if self.intact_records == 1 { "" } else { "s" }
        )
    }
}

/// Verify the log at `path`. `Ok` only if every line holds; otherwise
/// [`Error::Verification`] names the first line that does not.
pub fn verify_file(path: &Path, opts: &VerifyOptions<'_>) -> Result<Summary> {
    let file = File::open(path).map_err(|e| Error::io(path, "opening", e))?;
    let _guard = lock(&file, path, false, opts.lock_timeout)?;
    verify_reader(&file, opts).map_err(|e| match e {
        Error::Io { op, source, .. } => Error::io(path, op, source),
        other => other,
    })
}

/// Verify a log read from `input`.
pub fn verify_reader<R: Read>(input: R, opts: &VerifyOptions<'_>) -> Result<Summary> {
    let v = Verifier {
        opts,
        reader: LineReader::new(input, 0, 0),
        tree: CompactTree::new(),
        last_leaf: [0; 32],
        last_leaf_line: (0, 0),
        before_last: None,
        checkpoints: 0,
        last_cp: None,
        torn: Vec::new(),
        pending: None,
        tail_start: None,
        prev_line: None,
        lines: 0,
        bytes: 0,
    };
    if let Some(t) = opts.trusted {
        t.verify(&opts.keys)
            .map_err(|e| Error::Checkpoint(format!("the trusted checkpoint: {e}")))?;
        if t.size == 0 && t.root.0 != empty_root() {
            return Err(fail(
                0,
                0,
                FailureKind::Rewritten,
                0,
                "the trusted checkpoint of 0 records has a root other than the empty tree's".into(),
            ));
        }
    }
    v.run()
}

fn fail(line: u64, offset: u64, kind: FailureKind, intact: u64, detail: String) -> Error {
    Error::Verification(Box::new(Failure {
        line,
        offset,
        kind,
        detail,
        intact_records: intact,
    }))
}

/// What follows a line, for diagnosis.
struct Next {
    cp_last_leaf: Option<Hash>,
    rec: Option<(RawLine, Record)>,
}

/// A line that did not parse, waiting to see whether a `torn-tail` record names it.
struct Pending {
    line: u64,
    offset: u64,
    len: u64,
    hash: Hash,
    error: String,
}

struct Verifier<'o, 'k, R: Read> {
    opts: &'o VerifyOptions<'k>,
    reader: LineReader<R>,
    tree: CompactTree,
    /// Hash and (line, offset) of the last record; and of the record before it.
    last_leaf: Hash,
    last_leaf_line: (u64, u64),
    before_last: Option<(Hash, u64)>,
    checkpoints: u64,
    last_cp: Option<CheckpointInfo>,
    torn: Vec<TornInfo>,
    pending: Option<Pending>,
    /// (line, offset) of the first record after the last checkpoint.
    tail_start: Option<(u64, u64)>,
    /// (offset, len, hash) of the previous physical line.
    prev_line: Option<(u64, u64, Hash)>,
    lines: u64,
    bytes: u64,
}

impl<R: Read> Verifier<'_, '_, R> {
    fn next(&mut self) -> Result<Option<RawLine>> {
        self.reader.next_line().map_err(|e| Error::Io {
            path: Default::default(),
            op: "reading",
            source: e,
        })
    }

    fn intact(&self) -> u64 {
        self.tree.size()
    }

    fn malformed(&self, p: &Pending) -> Error {
        fail(
            p.line,
            p.offset,
            FailureKind::Malformed,
            self.intact(),
            format!("not a valid log line ({}): modified or corrupted", p.error),
        )
    }

    fn run(mut self) -> Result<Summary> {
        while let Some(l) = self.next()? {
            if l.torn {
                if let Some(p) = &self.pending {
                    return Err(self.malformed(p));
                }
                return Err(fail(
                    l.number,
                    l.offset,
                    FailureKind::TornTail,
                    self.intact(),
                    format!(
                        "the last {} bytes have no newline: an append was interrupted (crash or full disk) and no writer has recorded it yet",
                        l.len
                    ),
                ));
            }
            let parsed = if l.too_long {
                Err(format!("longer than {MAX_LINE} bytes"))
            } else {
                parse_line(&l.bytes)
            };
            match parsed {
                Err(e) => {
                    if let Some(p) = &self.pending {
                        return Err(self.malformed(p));
                    }
                    self.pending = Some(Pending {
                        line: l.number,
                        offset: l.offset,
                        len: l.len,
                        hash: l.hash,
                        error: e,
                    });
                }
                Ok(Line::Record(rec)) => self.record(&l, &rec)?,
                Ok(Line::Checkpoint(cp)) => {
                    if let Some(p) = &self.pending {
                        return Err(self.malformed(p));
                    }
                    // Only the fields are signed: require their one canonical spelling, so
                    // that no byte of a checkpoint line can change unnoticed either.
                    let canonical = serde_json::to_vec(&Line::Checkpoint(cp.clone()))
                        .is_ok_and(|c| c == l.bytes);
                    if !canonical {
                        return Err(fail(
                            l.number,
                            l.offset,
                            FailureKind::Modified,
                            self.intact(),
                            "the checkpoint line is not written the way hyok writes it (spacing, letter case or field order changed)".into(),
                        ));
                    }
                    self.checkpoint(&l, &cp)?;
                }
            }
            self.prev_line = Some((l.offset, l.len, l.hash));
            self.lines = l.number;
            self.bytes = l.offset + l.len + 1;
        }
        if let Some(p) = &self.pending {
            return Err(self.malformed(p));
        }
        let mut extends = None;
        if let Some(t) = self.opts.trusted {
            if self.tree.size() < t.size {
                return Err(fail(
                    self.lines + 1,
                    self.bytes,
                    FailureKind::Truncated,
                    self.intact(),
                    format!(
                        "the log ends after {} records, but the trusted checkpoint (signed {}) covers {}: the log was cut below it",
                        self.tree.size(),
                        t.time,
                        t.size
                    ),
                ));
            }
            extends = Some(t.size);
        }
        let signed = self.last_cp.as_ref().map_or(0, |c| c.size);
        let unsigned = self.tree.size() - signed;
        if let (false, Some((line, offset))) = (self.opts.allow_unsigned_tail, self.tail_start) {
            let last = match &self.last_cp {
                Some(c) => format!("the last checkpoint (line {})", c.line),
                None => "any checkpoint".into(),
            };
            return Err(fail(
                line,
                offset,
                FailureKind::UnsignedTail,
                signed,
                format!(
                    "{unsigned} record{} from this line on follow {last} and no signature covers them: they may have been edited or added, or a checkpoint after them deleted (a writer that crashed mid-append or could not sign leaves them too; --allow-unsigned-tail accepts them)",
                    if unsigned == 1 { "" } else { "s" }
                ),
            ));
        }
        Ok(Summary {
            lines: self.lines,
            bytes: self.bytes,
            records: self.tree.size(),
            checkpoints: self.checkpoints,
            unsigned_tail: unsigned,
            last_checkpoint: self.last_cp,
            torn_recovered: self.torn,
            extends_trusted: extends,
            root: self.tree.root(),
        })
    }

    fn record(&mut self, l: &RawLine, rec: &Record) -> Result<()> {
        if rec.op == Op::TornTail {
            // It must describe exactly the line before it.
            let before = match &self.pending {
                Some(p) => Some((p.offset, p.len, p.hash)),
                None => self.prev_line,
            };
            let described = (rec.torn_offset, rec.torn_len, rec.torn_sha256.map(|h| h.0));
            match before {
                Some((o, n, h)) if described == (Some(o), Some(n), Some(h)) => {
                    self.torn.push(TornInfo {
                        line: l.number - 1,
                        offset: o,
                        len: n,
                    });
                    self.pending = None;
                }
                _ => {
                    if let Some(p) = &self.pending {
                        return Err(self.malformed(p));
                    }
                    return Err(fail(
                        l.number,
                        l.offset,
                        FailureKind::Modified,
                        self.intact(),
                        format!(
                            "this torn-tail record does not describe line {}",
                            l.number.saturating_sub(1)
                        ),
                    ));
                }
            }
        } else if let Some(p) = &self.pending {
            return Err(self.malformed(p));
        }
        self.check_chain(l, rec)?;
        self.before_last = Some((self.last_leaf, self.last_leaf_line.0));
        self.tree.push(l.hash);
        self.last_leaf = l.hash;
        self.last_leaf_line = (l.number, l.offset);
        self.tail_start.get_or_insert((l.number, l.offset));
        if let Some(t) = self.opts.trusted {
            if self.tree.size() == t.size && self.tree.root() != t.root.0 {
                return Err(fail(
                    l.number,
                    l.offset,
                    FailureKind::Rewritten,
                    0,
                    format!(
                        "the first {} records (through this line) do not hash to the trusted checkpoint's root (signed {}): the log was rewritten below it",
                        t.size, t.time
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The next record line after the current one (skipping checkpoints and bad lines),
    /// and the `last_leaf` of a checkpoint that comes before it, if one does.
    fn next_record(&mut self) -> Next {
        let mut cp_last_leaf = None;
        while let Ok(Some(l)) = self.next() {
            if l.torn || l.too_long {
                continue;
            }
            match parse_line(&l.bytes) {
                Ok(Line::Record(r)) => {
                    return Next {
                        cp_last_leaf,
                        rec: Some((l, r)),
                    }
                }
                Ok(Line::Checkpoint(c)) if cp_last_leaf.is_none() => {
                    cp_last_leaf = c.last_leaf.map(|h| h.0);
                }
                _ => {}
            }
        }
        Next {
            cp_last_leaf,
            rec: None,
        }
    }

    /// Line number of a later record with `seq`, starting with `first`.
    fn find_seq(&mut self, first: Option<(RawLine, Record)>, seq: u64) -> Option<u64> {
        let mut cur = first;
        while let Some((l, r)) = cur {
            if r.seq == seq {
                return Some(l.number);
            }
            cur = self.next_record().rec;
        }
        None
    }

    fn check_chain(&mut self, l: &RawLine, rec: &Record) -> Result<()> {
        let expected = self.tree.size();
        let linked = rec.prev.0 == self.last_leaf;
        let (line, offset) = (l.number, l.offset);
        let intact = self.intact();
        if linked && rec.seq == expected {
            return Ok(());
        }
        if linked {
            // Its link is intact but its number is not: the line itself changed.
            let next = self.next_record();
            let note = match (next.cp_last_leaf, next.rec) {
                (Some(h), _) if h != l.hash => {
                    " and the checkpoint after it names another record".into()
                }
                (None, Some((n, nr))) if nr.prev.0 != l.hash => format!(
                    " and record {} (line {}) no longer links to it",
                    nr.seq, n.number
                ),
                _ => String::new(),
            };
            return Err(fail(
                line,
                offset,
                FailureKind::Modified,
                intact,
                format!(
                    "record says seq {} where {expected} was expected{note}",
                    rec.seq
                ),
            ));
        }
        // The link is broken.
        if let Some((h2, l2)) = self.before_last {
            if rec.prev.0 == h2 {
                let (il, io) = self.last_leaf_line;
                return Err(fail(
                    il,
                    io,
                    FailureKind::Inserted,
                    intact.saturating_sub(1),
                    format!("the next record (line {line}) links past it to line {l2}"),
                ));
            }
        }
        let Next {
            cp_last_leaf,
            rec: next,
        } = self.next_record();
        // Does what follows this line still point at it (then this line is as written)?
        let successor_links = match (cp_last_leaf, &next) {
            (Some(h), _) => Some(h == l.hash),
            (None, Some((_, nr))) => Some(nr.prev.0 == l.hash),
            (None, None) => None,
        };
        if rec.seq > expected {
            let missing = if rec.seq - expected == 1 {
                format!("record {expected}")
            } else {
                format!("records {expected} to {}", rec.seq - 1)
            };
            return Err(match self.find_seq(next, expected) {
                Some(later) => fail(
                    line,
                    offset,
                    FailureKind::Reordered,
                    intact,
                    format!(
                        "record {} comes before record {expected}, which is at line {later}",
                        rec.seq
                    ),
                ),
                None => fail(
                    line,
                    offset,
                    FailureKind::Deleted,
                    intact,
                    format!("{missing} should come before this line and is missing"),
                ),
            });
        }
        if let Some((_, nr)) = &next {
            if nr.prev.0 == self.last_leaf && nr.seq == expected {
                return Err(fail(
                    line,
                    offset,
                    FailureKind::Inserted,
                    intact,
                    format!(
                        "this record (seq {}) is not in the chain: the next record links past it",
                        rec.seq
                    ),
                ));
            }
        }
        if rec.seq < expected {
            return Err(fail(
                line,
                offset,
                FailureKind::Reordered,
                intact,
                format!(
                    "record {} comes after record {}",
                    rec.seq,
                    expected.saturating_sub(1)
                ),
            ));
        }
        // Right number, wrong link: the previous record or this line changed.
        let (pl, po) = self.last_leaf_line;
        if expected == 0 {
            return Err(fail(
                line,
                offset,
                FailureKind::Modified,
                intact,
                "the first record's link is not the start of the log".into(),
            ));
        }
        match successor_links {
            Some(true) => Err(fail(
                pl,
                po,
                FailureKind::Modified,
                intact.saturating_sub(1),
                format!(
                    "record {} no longer matches the link in the next record (line {line})",
                    expected - 1
                ),
            )),
            Some(false) => Err(fail(
                line,
                offset,
                FailureKind::Modified,
                intact,
                format!(
                    "its link does not match record {} (line {pl}) and what follows no longer links to it",
                    expected - 1
                ),
            )),
            None => Err(fail(
                pl,
                po,
                FailureKind::Modified,
                intact.saturating_sub(1),
                format!(
                    "record {} (this line) or record {expected} (line {line}, which no longer links to it) was modified",
                    expected - 1
                ),
            )),
        }
    }

    fn checkpoint(&mut self, l: &RawLine, cp: &Checkpoint) -> Result<()> {
        let (line, offset) = (l.number, l.offset);
        let intact = self.intact();
        if let Err(e) = cp.verify(&self.opts.keys) {
            return Err(fail(
                line,
                offset,
                FailureKind::BadSignature,
                intact,
                format!("checkpoint of {} records: {e}", cp.size),
            ));
        }
        let size = self.tree.size();
        if cp.size > size {
            return Err(fail(
                line,
                offset,
                FailureKind::Deleted,
                intact,
                format!(
                    "this checkpoint signs {} records but only {size} come before it: records were deleted",
                    cp.size
                ),
            ));
        }
        if cp.size < size {
            return Err(fail(
                line,
                offset,
                FailureKind::Inserted,
                intact,
                format!(
                    "this checkpoint signs {} records but {size} come before it: records were inserted (or the checkpoint was moved)",
                    cp.size
                ),
            ));
        }
        if cp.root.0 != self.tree.root() {
            if let Some(last) = cp.last_leaf {
                if last.0 != self.last_leaf && size > 0 {
                    let (pl, po) = self.last_leaf_line;
                    return Err(fail(
                        pl,
                        po,
                        FailureKind::Modified,
                        intact.saturating_sub(1),
                        format!(
                            "record {} does not match the checkpoint that follows it (line {line})",
                            size - 1
                        ),
                    ));
                }
            }
            return Err(fail(
                line,
                offset,
                FailureKind::Rewritten,
                0,
                format!(
                    "the {size} records before this checkpoint hash to a different root than it signs: records were rewritten"
                ),
            ));
        }
        let frontier_ok = cp.frontier.as_ref().is_none_or(|f| {
            f.iter()
                .map(|h| h.0)
                .eq(self.tree.frontier().iter().copied())
        });
        let last_ok = cp
            .last_leaf
            .is_none_or(|h| size > 0 && h.0 == self.last_leaf);
        if !frontier_ok || !last_ok {
            return Err(fail(
                line,
                offset,
                FailureKind::Modified,
                intact,
                "the checkpoint's unsigned tree fields (frontier, last_leaf) were changed".into(),
            ));
        }
        self.checkpoints += 1;
        self.tail_start = None;
        self.last_cp = Some(CheckpointInfo {
            line,
            size,
            root: cp.root.0,
            time: cp.time,
            key_id: cp.key_id,
        });
        Ok(())
    }
}
