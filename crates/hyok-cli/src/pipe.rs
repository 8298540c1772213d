//! Overlapping I/O with the crypto: a reader thread fills chunks ahead of the consumer and a
//! writer thread drains them behind the producer, so reading the input, sealing or opening
//! frames (on the crypto pool) and writing the output run at the same time. Memory is a
//! fixed number of chunks per direction, whatever the input size.

use std::io::{self, BufRead, Read, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

/// Bytes per chunk handed between threads.
pub(crate) const CHUNK: usize = 4 << 20;
/// Largest single `write` the writer thread issues. Measured on the project machine (Linux
/// 6.18, ext4, a VM): copying 1 GiB into the page cache took 0.35 s in writes of up to
/// 256 KiB, 0.4-0.7 s in 1 MiB writes and 1.5-2.9 s in 4 MiB writes (`dd bs=…`), nearly all
/// of it system time; smaller writes cost only more syscalls (4,096 per GiB).
const WRITE_PIECE: usize = 256 << 10;
/// Chunks in flight per direction (one being filled, one queued, one being drained).
const DEPTH: usize = 2;

/// A `BufRead` over a reader that a helper thread reads [`CHUNK`]s ahead of the consumer.
pub(crate) struct ReadAhead {
    filled: Receiver<io::Result<Chunk>>,
    recycle: SyncSender<Chunk>,
    cur: Option<Chunk>,
    pos: usize,
    done: bool,
}

/// Where reads land, with its start aligned to [`ALIGN`] bytes. The kernel's copy into a
/// misaligned destination is several times slower on some CPUs (measured on AMD EPYC: a
/// 4 MiB `read` from the page cache took 0.4 ms into an aligned buffer, 2 ms at offset 16,
/// which is where a large `Vec` starts), so reading 1 GiB cost 0.5 s of system time more.
struct Chunk {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

/// Alignment of read buffers (a page: also right for O_DIRECT-style readers).
const ALIGN: usize = 4096;

impl Chunk {
    fn new() -> Self {
        let buf = vec![0u8; CHUNK + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        Self { buf, start, len: 0 }
    }

    fn space(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + CHUNK]
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl ReadAhead {
    /// Start reading `inner` on a helper thread.
    pub(crate) fn new(inner: Box<dyn Read + Send>) -> io::Result<Self> {
        let (fill_tx, filled) = mpsc::sync_channel(DEPTH);
        let (recycle, recycled) = mpsc::sync_channel(DEPTH);
        thread::Builder::new()
            .name("hyok-read".into())
            .spawn(move || read_loop(inner, fill_tx, recycled))?;
        Ok(Self {
            filled,
            recycle,
            cur: None,
            pos: 0,
            done: false,
        })
    }
}

/// Fill chunks until EOF (sent as an empty chunk) or an error (sent after the bytes read
/// before it), or until the consumer is gone. At most `DEPTH` chunks exist: after that a
/// used chunk comes back before the next read. Chunks keep their initialized length, so
/// refilling one costs no zeroing.
fn read_loop(
    mut inner: Box<dyn Read + Send>,
    filled: SyncSender<io::Result<Chunk>>,
    recycled: Receiver<Chunk>,
) {
    let mut made = 0;
    loop {
        let mut chunk = if made < DEPTH {
            made += 1;
            Chunk::new()
        } else {
            match recycled.recv() {
                Ok(c) => c,
                Err(_) => return,
            }
        };
        let space = chunk.space();
        let mut n = 0;
        let res = loop {
            if n == CHUNK {
                break Ok(());
            }
            match inner.read(&mut space[n..]) {
                Ok(0) => break Ok(()),
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        chunk.len = n;
        let end = n < CHUNK;
        if n > 0 && filled.send(Ok(chunk)).is_err() {
            return;
        }
        if end {
            // EOF (an empty chunk) or the error.
            let _ = filled.send(res.map(|()| Chunk {
                buf: Vec::new(),
                start: 0,
                len: 0,
            }));
            return;
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ReadAhead {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let used_up = self.cur.as_ref().is_none_or(|c| self.pos == c.len);
        if used_up && !self.done {
            self.pos = 0;
            if let Some(used) = self.cur.take() {
                // The reader may have stopped already; then the chunk is simply freed.
                let _ = self.recycle.try_send(used);
            }
            match self.filled.recv() {
                Ok(Ok(c)) if c.len == 0 => self.done = true,
                Ok(Ok(c)) => self.cur = Some(c),
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("the input reader thread stopped"));
                }
            }
        }
        Ok(match &self.cur {
            Some(c) => &c.data()[self.pos..],
            None => &[],
        })
    }

    fn consume(&mut self, amt: usize) {
        let len = self.cur.as_ref().map_or(0, |c| c.len);
        self.pos = (self.pos + amt).min(len);
    }
}

/// A `Write` whose bytes a helper thread writes to the inner writer, [`CHUNK`]s behind.
/// [`WriteBehind::finish`] waits for every byte to be written and reports the first error;
/// dropping it without `finish` abandons what is queued.
pub(crate) struct WriteBehind<W: Write + Send + 'static> {
    queue: Option<SyncSender<Vec<u8>>>,
    recycled: Receiver<Vec<u8>>,
    cur: Vec<u8>,
    made: usize,
    worker: Option<JoinHandle<io::Result<W>>>,
}

impl<W: Write + Send + 'static> WriteBehind<W> {
    /// Start a writer thread for `inner`.
    pub(crate) fn new(inner: W) -> io::Result<Self> {
        let (queue, queued) = mpsc::sync_channel::<Vec<u8>>(DEPTH);
        let (recycle, recycled) = mpsc::sync_channel(DEPTH);
        let worker = thread::Builder::new()
            .name("hyok-write".into())
            .spawn(move || {
                let mut inner = inner;
                for mut buf in queued {
                    for piece in buf.chunks(WRITE_PIECE) {
                        inner.write_all(piece)?;
                    }
                    buf.clear();
                    let _ = recycle.try_send(buf);
                }
                inner.flush()?;
                Ok(inner)
            })?;
        Ok(Self {
            queue: Some(queue),
            recycled,
            cur: Vec::new(),
            made: 0,
            worker: Some(worker),
        })
    }

    /// Queue the current chunk; on failure, the writer thread's own error.
    fn send(&mut self) -> io::Result<()> {
        if self.cur.is_empty() {
            return Ok(());
        }
        let next = if self.made < DEPTH {
            self.made += 1;
            Vec::with_capacity(CHUNK)
        } else {
            // Blocks until the writer has drained a chunk: memory stays at DEPTH chunks.
            self.recycled.recv().unwrap_or_default()
        };
        let full = std::mem::replace(&mut self.cur, next);
        let sent = self.queue.as_ref().is_some_and(|q| q.send(full).is_ok());
        if sent {
            Ok(())
        } else {
            Err(self.join_error())
        }
    }

    /// The writer thread stopped early: collect its error.
    fn join_error(&mut self) -> io::Error {
        self.queue = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("the output writer thread stopped"),
        }
    }

    /// Write out everything queued and return the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.send()?;
        self.queue = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(res)) => res,
            _ => Err(io::Error::other("the output writer thread stopped")),
        }
    }
}

impl<W: Write + Send + 'static> Write for WriteBehind<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.cur.capacity() == 0 {
            self.cur = Vec::with_capacity(CHUNK);
            self.made += 1;
        }
        let n = data.len().min(CHUNK - self.cur.len());
        self.cur.extend_from_slice(&data[..n]);
        if self.cur.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    /// Hands the current chunk to the writer thread; it does not wait for the write.
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that fails after `limit` bytes.
    struct Failing {
        written: usize,
        limit: usize,
    }

    impl Write for Failing {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.written + b.len() > self.limit {
                return Err(io::Error::other("disk full"));
            }
            self.written += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A reader that returns `data` in pieces of `step`, then fails if `fail`.
    struct Pieces {
        data: Vec<u8>,
        pos: usize,
        step: usize,
        fail: bool,
    }

    impl Read for Pieces {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.pos == self.data.len() {
                return if self.fail {
                    Err(io::Error::other("device gone"))
                } else {
                    Ok(0)
                };
            }
            let n = out.len().min(self.step).min(self.data.len() - self.pos);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn read_ahead_yields_every_byte_in_order() {
        for len in [0, 1, CHUNK - 1, CHUNK, 3 * CHUNK + 17, 7 * CHUNK] {
            let d = data(len);
            let src = Pieces {
                data: d.clone(),
                pos: 0,
                step: 100_003,
                fail: false,
            };
            let mut r = ReadAhead::new(Box::new(src)).unwrap();
            let mut out = Vec::new();
            // Mix small reads and whole-chunk BufRead access.
            let mut small = [0u8; 1000];
            let n = r.read(&mut small).unwrap();
            out.extend_from_slice(&small[..n]);
            loop {
                let b = r.fill_buf().unwrap();
                if b.is_empty() {
                    break;
                }
                let k = b.len();
                out.extend_from_slice(b);
                r.consume(k);
            }
            assert_eq!(out, d, "len {len}");
            assert!(r.fill_buf().unwrap().is_empty());
        }
    }

    #[test]
    fn read_ahead_reports_a_read_error_after_the_data_before_it() {
        let d = data(CHUNK + 5);
        let src = Pieces {
            data: d.clone(),
            pos: 0,
            step: 1 << 20,
            fail: true,
        };
        let mut r = ReadAhead::new(Box::new(src)).unwrap();
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.to_string(), "device gone");
        // Every byte read before the error came out first.
        assert_eq!(out, d);
    }

    #[test]
    fn write_behind_writes_every_byte_in_order() {
        for len in [0, 1, CHUNK, 5 * CHUNK + 3] {
            let d = data(len);
            let mut w = WriteBehind::new(Vec::new()).unwrap();
            for piece in d.chunks(333_333) {
                w.write_all(piece).unwrap();
            }
            w.flush().unwrap();
            assert_eq!(w.finish().unwrap(), d, "len {len}");
        }
    }

    #[test]
    fn write_behind_reports_the_writers_error() {
        let d = data(6 * CHUNK);
        let mut w = WriteBehind::new(Failing {
            written: 0,
            limit: CHUNK + 10,
        })
        .unwrap();
        // The error surfaces on a later write or at the latest in finish.
        let early = d.chunks(CHUNK / 2).try_for_each(|p| w.write_all(p));
        let res = match early {
            Err(e) => Err(e),
            Ok(()) => w.finish().map(|_| ()),
        };
        assert_eq!(res.unwrap_err().to_string(), "disk full");
    }
}
