//! Outputs that are written in place — stdout, and existing FIFOs, devices, sockets —
//! where whatever is written is seen at once and cannot be taken back.
//!
//! Unsigned messages stream: the decryptor releases a frame only after its tag verified,
//! so a reader sees a prefix of the real plaintext even if the message later fails. A
//! signed message is different: its frames are authenticated by a key that anyone who
//! could decrypt it also holds; only the footer signature says who wrote it, and it comes
//! last. So plaintext of a signed message (or of a message whose suite is not known yet) is
//! spooled into a private temporary file — no name (`O_TMPFILE` or unlinked at once), mode
//! 0600 — and copied out only after the whole message verified. The spool holds at most
//! `spool_limit` bytes; a bigger message is refused with a hint. `unverified_stream` turns
//! the spool off (the plaintext of a signed message is then released before its signature
//! is checked).

use std::fs::File;
use std::io::{self, Seek, Write};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::pipe::WriteBehind;

/// How a streamed output releases plaintext.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Release {
    /// Release the plaintext of signed messages before the signature verified.
    pub(crate) unverified_stream: bool,
    /// Most plaintext bytes held back for a signed message.
    pub(crate) spool_limit: u64,
}

const UNKNOWN: u8 = 0;
const UNSIGNED: u8 = 1;
const SIGNED: u8 = 2;

/// Tells a [`Stream`] whether the message being written is signed; must be told before the
/// first byte, otherwise the stream treats the message as signed.
#[derive(Clone, Debug)]
pub(crate) struct Gate(Arc<AtomicU8>);

impl Gate {
    pub(crate) fn set_signed(&self, signed: bool) {
        self.0
            .store(if signed { SIGNED } else { UNSIGNED }, Ordering::SeqCst);
    }
}

/// Where streamed bytes finally go.
pub(crate) enum Sink {
    Stdout(io::Stdout),
    /// An existing non-regular file opened for writing (FIFO, device, socket).
    Special(File),
}

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Self::Stdout(s) => s.write(b),
            Self::Special(f) => f.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Stdout(s) => s.flush(),
            Self::Special(f) => f.flush(),
        }
    }
}

enum State {
    /// Nothing written yet, the mode not chosen.
    Undecided(Sink),
    /// Straight to the sink (behind a writer thread).
    Direct(WriteBehind<Sink>),
    /// Into the spool; the sink gets it on `finish`.
    Spool {
        sink: Sink,
        pipe: WriteBehind<File>,
        held: u64,
    },
    /// After a failure.
    Gone,
}

/// An output written in place; see the module docs.
pub(crate) struct Stream {
    state: State,
    release: Release,
    signed: Arc<AtomicU8>,
    overflowed: bool,
}

impl Stream {
    /// A stream for plaintext (`release` given: spool signed messages) or for ciphertext
    /// (`None`: always direct).
    pub(crate) fn new(sink: Sink, release: Option<Release>) -> Self {
        let (mark, release) = match release {
            Some(r) => (UNKNOWN, r),
            None => (
                UNSIGNED,
                Release {
                    unverified_stream: true,
                    spool_limit: 0,
                },
            ),
        };
        Self {
            state: State::Undecided(sink),
            release,
            signed: Arc::new(AtomicU8::new(mark)),
            overflowed: false,
        }
    }

    /// The handle that says whether the message is signed.
    pub(crate) fn gate(&self) -> Gate {
        Gate(self.signed.clone())
    }

    /// Whether a write failed because the spool was full.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Choose direct or spooled output (once, before the first byte).
    fn decide(&mut self) -> io::Result<()> {
        let State::Undecided(_) = self.state else {
            return Ok(());
        };
        let State::Undecided(sink) = std::mem::replace(&mut self.state, State::Gone) else {
            return Ok(());
        };
        let hold =
            self.signed.load(Ordering::SeqCst) != UNSIGNED && !self.release.unverified_stream;
        self.state = if hold {
            // No name (O_TMPFILE, or unlinked right after creation), mode 0600.
            let file = tempfile::tempfile()?;
            State::Spool {
                sink,
                pipe: WriteBehind::new(file)?,
                held: 0,
            }
        } else {
            State::Direct(WriteBehind::new(sink)?)
        };
        Ok(())
    }

    /// Everything written reaches the sink (spooled bytes are copied out now: the message
    /// verified), flushed.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.decide()?;
        match std::mem::replace(&mut self.state, State::Gone) {
            State::Direct(pipe) => {
                pipe.finish()?;
            }
            State::Spool { mut sink, pipe, .. } => {
                let mut file = pipe.finish()?;
                file.rewind()?;
                match &mut sink {
                    // Concrete types, so std can use copy_file_range/splice/sendfile.
                    Sink::Stdout(out) => {
                        io::copy(&mut file, out)?;
                    }
                    Sink::Special(out) => {
                        io::copy(&mut file, out)?;
                    }
                }
                sink.flush()?;
            }
            State::Undecided(_) | State::Gone => {}
        }
        Ok(())
    }
}

impl Write for Stream {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.decide()?;
        match &mut self.state {
            State::Direct(pipe) => pipe.write(b),
            State::Spool { pipe, held, .. } => {
                let limit = self.release.spool_limit;
                if *held + b.len() as u64 > limit {
                    self.overflowed = true;
                    return Err(io::Error::other(format!(
                        "the signed message's plaintext exceeds the spool limit of {limit} bytes"
                    )));
                }
                let n = pipe.write(b)?;
                *held += n as u64;
                Ok(n)
            }
            State::Undecided(_) | State::Gone => Err(io::Error::other("output closed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.state {
            State::Direct(pipe) => pipe.flush(),
            State::Spool { pipe, .. } => pipe.flush(),
            State::Undecided(_) | State::Gone => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_suite_is_held_like_a_signed_one_and_limits_apply() {
        let release = Release {
            unverified_stream: false,
            spool_limit: 10,
        };
        let dev_null = || Sink::Special(File::create("/dev/null").unwrap());
        let mut s = Stream::new(dev_null(), Some(release));
        s.write_all(b"0123456789").unwrap();
        assert!(matches!(s.state, State::Spool { .. }));
        assert!(s.write_all(b"x").is_err());
        assert!(s.overflowed());

        let mut s = Stream::new(dev_null(), Some(release));
        s.gate().set_signed(false);
        s.write_all(&[0u8; 100]).unwrap();
        assert!(matches!(s.state, State::Direct(_)));
        s.finish().unwrap();

        let mut s = Stream::new(dev_null(), None);
        s.write_all(&[0u8; 100]).unwrap();
        assert!(matches!(s.state, State::Direct(_)));
    }
}
