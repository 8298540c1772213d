//! Small big-endian codec helpers: a bounded reader over any `Read` that keeps the bytes it
//! consumed (headers are authenticated exactly as received), and encoders into a `Vec`.

use std::io::Read;

use crate::error::{Error, Result};

/// Reads fields from an underlying stream, recording every byte read.
pub(crate) struct RecordingReader<'a, R: Read> {
    inner: &'a mut R,
    pub(crate) recorded: Vec<u8>,
    what: &'static str,
}

impl<'a, R: Read> RecordingReader<'a, R> {
    pub(crate) fn new(inner: &'a mut R, what: &'static str) -> Self {
        Self {
            inner,
            recorded: Vec::with_capacity(512),
            what,
        }
    }

    /// Read exactly `n` bytes, growing the buffer only as data arrives (a hostile length
    /// prefix cannot make us allocate more than what is really sent, bounded by u16 anyway).
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&[u8]> {
        let start = self.recorded.len();
        read_exact_into(self.inner, &mut self.recorded, n, self.what)?;
        Ok(&self.recorded[start..])
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A u16-length-prefixed field.
    pub(crate) fn var16(&mut self) -> Result<Vec<u8>> {
        let n = self.u16()? as usize;
        Ok(self.bytes(n)?.to_vec())
    }

    pub(crate) fn set_what(&mut self, what: &'static str) {
        self.what = what;
    }
}

/// Append exactly `n` bytes from `r` to `buf`, or fail with `Truncated(what)`.
pub(crate) fn read_exact_into<R: Read + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    n: usize,
    what: &'static str,
) -> Result<()> {
    let start = buf.len();
    let got = r.take(n as u64).read_to_end(buf).map_err(Error::from_io)?;
    if got != n {
        buf.truncate(start);
        return Err(Error::Truncated(what));
    }
    Ok(())
}

/// Fill `out` from `r`; `Ok(false)` on a clean EOF before the first byte.
pub(crate) fn read_exact_or_eof<R: Read + ?Sized>(
    r: &mut R,
    out: &mut [u8],
    what: &'static str,
) -> Result<bool> {
    let mut filled = 0;
    while filled < out.len() {
        match r.read(&mut out[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(Error::Truncated(what)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::from_io(e)),
        }
    }
    Ok(true)
}

pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Append a u16-length-prefixed field, failing when it does not fit.
pub(crate) fn put_var16(out: &mut Vec<u8>, v: &[u8], what: &str) -> Result<()> {
    let n = u16::try_from(v.len())
        .map_err(|_| Error::InvalidParameter(format!("{what} longer than 65535 bytes")))?;
    put_u16(out, n);
    out.extend_from_slice(v);
    Ok(())
}
