//! Reading a log for people and SIEMs: every line with its parse result, and record
//! filters for `hyok audit show`.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::io::LineReader;
use crate::line::{parse_line, Line, Op, Outcome, Record, MAX_LINE};
use crate::time::Timestamp;

/// One line of a log as read, parsed or not.
#[derive(Debug)]
pub struct LogEntry {
    /// Line number (1-based).
    pub line: u64,
    /// Byte offset.
    pub offset: u64,
    /// The bytes (empty if the line is longer than the parser accepts).
    pub raw: Vec<u8>,
    /// The parsed line, or why it does not parse.
    pub parsed: std::result::Result<Line, String>,
    /// The file ends inside this line (no newline): an interrupted append.
    pub torn: bool,
}

/// Reads a log line by line with bounded memory (untrusted input).
pub struct LogReader {
    path: PathBuf,
    inner: LineReader<File>,
}

impl LogReader {
    /// Open a log for reading.
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| Error::io(path, "opening", e))?;
        Ok(Self {
            path: path.to_path_buf(),
            inner: LineReader::new(f, 0, 0),
        })
    }

    /// The next line, `None` at the end.
    pub fn next_entry(&mut self) -> Result<Option<LogEntry>> {
        let Some(l) = self
            .inner
            .next_line()
            .map_err(|e| Error::io(&self.path, "reading", e))?
        else {
            return Ok(None);
        };
        let parsed = if l.too_long {
            Err(format!("longer than {MAX_LINE} bytes"))
        } else if l.torn {
            Err("no newline at the end: an interrupted append".into())
        } else {
            parse_line(&l.bytes)
        };
        Ok(Some(LogEntry {
            line: l.number,
            offset: l.offset,
            raw: l.bytes,
            parsed,
            torn: l.torn,
        }))
    }
}

/// Which operations `--op` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpFilter {
    /// Exactly this operation.
    One(Op),
    /// Both kinds of cache hit.
    CacheHit,
    /// Every key use (generate, wrap, unwrap, cache hits).
    KeyUse,
}

impl FromStr for OpFilter {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cache-hit" => return Ok(Self::CacheHit),
            "key-use" => return Ok(Self::KeyUse),
            _ => {}
        }
        Op::ALL
            .iter()
            .find(|o| o.as_str() == s)
            .map(|o| Self::One(*o))
            .ok_or_else(|| {
                let names: Vec<&str> = Op::ALL.iter().map(|o| o.as_str()).collect();
                format!(
                    "unknown operation {s:?} (one of: {}, cache-hit, key-use)",
                    names.join(", ")
                )
            })
    }
}

/// Record filter: all given conditions must hold.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Key URI, or a prefix of it (matches `key` and `keys`).
    pub key: Option<String>,
    /// Operation.
    pub op: Option<OpFilter>,
    /// Records at or after this time.
    pub since: Option<Timestamp>,
}

impl Filter {
    /// Whether `r` passes.
    pub fn matches(&self, r: &Record) -> bool {
        if let Some(k) = &self.key {
            let hit = |u: &String| u == k || u.starts_with(k.as_str());
            if !(r.key.as_ref().is_some_and(hit) || r.keys.iter().any(hit)) {
                return false;
            }
        }
        if let Some(op) = self.op {
            let ok = match op {
                OpFilter::One(o) => r.op == o,
                OpFilter::CacheHit => matches!(r.op, Op::CacheHitEncrypt | Op::CacheHitDecrypt),
                OpFilter::KeyUse => r.op.is_key_use(),
            };
            if !ok {
                return false;
            }
        }
        if let Some(t) = self.since {
            if r.time < t {
                return false;
            }
        }
        true
    }
}

/// One line of text for a record (`hyok audit show`).
pub fn describe(r: &Record) -> String {
    let mut s = format!("{}  #{:<6} {:<17} ", r.time, r.seq, r.op.as_str());
    match r.outcome {
        Outcome::Ok => s.push_str("ok   "),
        Outcome::Error => {
            let _ = write!(s, "ERROR({}) ", r.error.as_deref().unwrap_or("?"));
        }
    }
    if let Some(k) = &r.key {
        let _ = write!(s, " key={k}");
    }
    if !r.keys.is_empty() {
        let _ = write!(s, " keys={}", r.keys.join(","));
    }
    if let Some(sub) = &r.subject {
        let _ = write!(s, " subject={sub:?}");
    }
    if let Some(m) = &r.message_id {
        let h = hex::encode(&m.0);
        let _ = write!(s, " msg={}", &h[..h.len().min(16)]);
    }
    if let Some(b) = r.bytes {
        let _ = write!(s, " bytes={b}");
    }
    if let Some(d) = &r.detail {
        let _ = write!(s, " detail={d:?}");
    }
    let _ = write!(s, " by={}@{} pid={}", r.user, r.host, r.pid);
    if let Some(i) = &r.identity {
        let _ = write!(s, " identity={i:?}");
    }
    let _ = write!(s, " {}us", r.duration_us);
    s
}
