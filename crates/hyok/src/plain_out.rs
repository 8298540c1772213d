//! Writing a decryptor's plaintext straight to its destination: the decryptor hands out
//! slices of its own verified buffers (`Decryptor::write_to`), so no bounce buffer sits
//! between the two, and a window cuts a ranged read's first and last frames to the bytes
//! asked for.

use std::io::{self, Read, Write};

use hyok_core::Decryptor;

use crate::{Error, Result};

/// Write `dec`'s plaintext to `out`, leaving out its first `skip` bytes and everything after
/// the `take` that follow (all of it when `take` is `None`); returns the bytes written.
/// A failure of `out` is an [`Error::Io`] about `what`; one of the message, the format error.
pub(crate) fn write_plaintext<R: Read>(
    dec: &mut Decryptor<R>,
    out: &mut dyn Write,
    skip: u64,
    take: Option<u64>,
    what: &str,
) -> Result<u64> {
    let mut w = Window {
        out,
        skip,
        left: take.unwrap_or(u64::MAX),
        written: 0,
        failed: None,
    };
    match dec.write_to(&mut w) {
        Ok(_) => Ok(w.written),
        Err(e) => Err(match w.failed.take() {
            Some(source) => Error::Io {
                what: what.to_owned(),
                source,
            },
            None => Error::Format(hyok_core::Error::from_io(e)),
        }),
    }
}

/// `out`, seen through a window of the stream written to it. Bytes outside the window are
/// accepted and dropped, so that the decryptor still reads (and checks) its frames to the
/// end of the range.
struct Window<'a> {
    out: &'a mut dyn Write,
    skip: u64,
    left: u64,
    written: u64,
    /// `out`'s own error, kept apart from the message's.
    failed: Option<io::Error>,
}

impl Write for Window<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let dropped = usize::try_from(self.skip)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        self.skip -= dropped as u64;
        let rest = &buf[dropped..];
        let n = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(rest.len());
        if n > 0 {
            if let Err(e) = self.out.write_all(&rest[..n]) {
                let shown = io::Error::new(e.kind(), e.to_string());
                self.failed = Some(e);
                return Err(shown);
            }
            self.left -= n as u64;
            self.written += n as u64;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush().inspect_err(|e| {
            self.failed = Some(io::Error::new(e.kind(), e.to_string()));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_passes_only_the_bytes_asked_for() {
        let mut out = Vec::new();
        let mut w = Window {
            out: &mut out,
            skip: 3,
            left: 4,
            written: 0,
            failed: None,
        };
        for piece in [&b"ab"[..], b"cdef", b"", b"ghij"] {
            assert_eq!(w.write(piece).unwrap(), piece.len());
        }
        assert_eq!(w.written, 4);
        assert_eq!(out, b"defg");
    }

    #[test]
    fn a_failing_destination_is_told_apart_from_the_message() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut full = Full;
        let mut w = Window {
            out: &mut full,
            skip: 0,
            left: u64::MAX,
            written: 0,
            failed: None,
        };
        let e = w.write(b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(
            w.failed.as_ref().map(io::Error::kind),
            Some(io::ErrorKind::StorageFull)
        );
    }
}
