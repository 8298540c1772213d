//! File plumbing: reading lines from an offset with bounded memory, and `flock` with a
//! bounded wait.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::line::MAX_LINE;
use crate::merkle::Hash;

/// `Read` over a file from a fixed offset with `pread`, not touching the file position.
pub(crate) struct ReadAt<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl<'a> ReadAt<'a> {
    pub(crate) fn new(file: &'a File, start: u64, end: u64) -> Self {
        Self {
            file,
            pos: start,
            end,
        }
    }
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// One raw line of the log.
#[derive(Debug)]
pub(crate) struct RawLine {
    /// 1-based line number.
    pub(crate) number: u64,
    /// Byte offset of its first byte.
    pub(crate) offset: u64,
    /// Length without the newline.
    pub(crate) len: u64,
    /// The bytes, unless longer than [`MAX_LINE`] (then empty and `too_long`).
    pub(crate) bytes: Vec<u8>,
    /// Longer than [`MAX_LINE`]: bytes were hashed, not kept.
    pub(crate) too_long: bool,
    /// `SHA-256(0x00 ‖ bytes)`.
    pub(crate) hash: Hash,
    /// No newline at the end of the file: an interrupted append.
    pub(crate) torn: bool,
}

/// Splits a byte stream into lines, hashing each, keeping at most [`MAX_LINE`] bytes of any.
pub(crate) struct LineReader<R: Read> {
    inner: BufReader<R>,
    offset: u64,
    number: u64,
}

impl<R: Read> LineReader<R> {
    pub(crate) fn new(inner: R, start_offset: u64, start_number: u64) -> Self {
        Self {
            inner: BufReader::with_capacity(256 * 1024, inner),
            offset: start_offset,
            number: start_number,
        }
    }

    pub(crate) fn next_line(&mut self) -> io::Result<Option<RawLine>> {
        let mut bytes = Vec::new();
        let mut too_long = false;
        let mut len = 0u64;
        let mut h = Sha256::new();
        h.update([0u8]);
        let start = self.offset;
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                if len == 0 {
                    return Ok(None);
                }
                self.number += 1;
                return Ok(Some(RawLine {
                    number: self.number,
                    offset: start,
                    len,
                    bytes,
                    too_long,
                    hash: h.finalize().into(),
                    torn: true,
                }));
            }
            let (chunk, found) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (&buf[..i], true),
                None => (buf, false),
            };
            h.update(chunk);
            len += chunk.len() as u64;
            if !too_long {
                if bytes.len() + chunk.len() > MAX_LINE {
                    too_long = true;
                    bytes = Vec::new();
                } else {
                    bytes.extend_from_slice(chunk);
                }
            }
            let used = chunk.len() + usize::from(found);
            self.inner.consume(used);
            self.offset += used as u64;
            if found {
                self.number += 1;
                return Ok(Some(RawLine {
                    number: self.number,
                    offset: start,
                    len,
                    bytes,
                    too_long,
                    hash: h.finalize().into(),
                    torn: false,
                }));
            }
        }
    }
}

/// An `flock` held on a file; released on drop.
pub(crate) struct Locked<'a> {
    file: &'a File,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(self.file, FlockOperation::Unlock);
    }
}

/// Take an exclusive (writers) or shared (readers) `flock`, waiting at most `timeout`.
pub(crate) fn lock<'a>(
    file: &'a File,
    path: &Path,
    exclusive: bool,
    timeout: Duration,
) -> Result<Locked<'a>> {
    let op = if exclusive {
        FlockOperation::NonBlockingLockExclusive
    } else {
        FlockOperation::NonBlockingLockShared
    };
    let started = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        match rustix::fs::flock(file, op) {
            Ok(()) => return Ok(Locked { file }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => {}
            Err(e) => return Err(Error::io(path, "locking", e.into())),
        }
        if started.elapsed() >= timeout {
            return Err(Error::Locked {
                path: path.to_path_buf(),
                waited_secs: timeout.as_secs(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(data: &[u8]) -> Vec<RawLine> {
        let mut r = LineReader::new(data, 0, 0);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push(l);
        }
        out
    }

    #[test]
    fn splits_hashes_and_flags_torn_and_long_lines() {
        let mut data = b"ab\n\nc".to_vec();
        let ls = lines(&data);
        assert_eq!(ls.len(), 3);
        assert_eq!(
            (ls[0].offset, ls[0].len, &ls[0].bytes[..]),
            (0, 2, &b"ab"[..])
        );
        assert_eq!(ls[0].hash, crate::merkle::leaf_hash(b"ab"));
        assert_eq!((ls[1].offset, ls[1].len, ls[1].torn), (3, 0, false));
        assert_eq!((ls[2].offset, ls[2].len, ls[2].torn), (4, 1, true));
        assert_eq!(ls[2].number, 3);
        data = vec![b'x'; MAX_LINE + 10];
        data.push(b'\n');
        let ls = lines(&data);
        assert!(ls[0].too_long && ls[0].bytes.is_empty());
        assert_eq!(
            ls[0].hash,
            crate::merkle::leaf_hash(&data[..data.len() - 1])
        );
        assert!(lines(b"").is_empty());
    }
}
