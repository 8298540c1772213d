//! Opening the frames of a body one at a time, from buffers the caller fills (no I/O): for a
//! server that decrypts on its async runtime instead of a thread blocked in `Read`.
//!
//! The checks are the [`Decryptor`](crate::Decryptor)'s, frame for frame: the sequence
//! number is the next one, the IV is the one the format fixes to it, a final frame is no
//! longer than the frame length, the tag verifies before a byte of plaintext is handed out,
//! and nothing may follow the end. Only unsigned framed messages: a signature covers the whole
//! message and holds back its last frame, which a `Decryptor` does.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::frame::{
    check_final_len, check_iv, check_seq, FrameCipher, FINAL_FRAME, FINAL_MARKER, REGULAR_FRAME,
};
use crate::header::{Header, IV_LEN, TAG_LEN};
use crate::key::DerivedKeys;

/// Opens the frames of an unsigned framed body in place (see
/// [`VerifiedHeader::frame_opener`](crate::VerifiedHeader::frame_opener)).
pub struct FrameOpener {
    header: Header,
    keys: DerivedKeys,
    next_seq: u32,
    /// The frame after which reading stops (a range), or `None` for the final frame.
    stop_after: Option<u32>,
    state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Body,
    Done,
    Failed,
}

/// One frame opened at the start of the caller's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedFrame {
    /// Bytes of the buffer the frame took (sequence number to tag).
    pub consumed: usize,
    /// Where its plaintext is in the buffer (authenticated).
    pub plaintext: Range<usize>,
}

impl std::fmt::Debug for FrameOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameOpener")
            .field("next_seq", &self.next_seq)
            .field("stop_after", &self.stop_after)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Largest encoding of a frame's fields around its ciphertext: final marker, sequence
/// number, IV, length, tag.
const MAX_FIELDS: usize = 4 + 4 + IV_LEN + 4 + TAG_LEN;

impl FrameOpener {
    pub(crate) fn new(header: Header, keys: DerivedKeys, first: u32, last: Option<u32>) -> Self {
        Self {
            header,
            keys,
            next_seq: first,
            stop_after: last,
            state: State::Body,
        }
    }

    /// The verified header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The most bytes one frame can take: a caller that holds this many and still gets
    /// `Ok(None)` from [`FrameOpener::open_next`] was handed something else.
    pub fn max_frame_wire_len(&self) -> usize {
        self.header.frame_length as usize + MAX_FIELDS
    }

    /// Whether the last frame asked for (or the final frame) has been opened.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Open the frame at the start of `buf` in place: `Ok(None)` when `buf` does not hold all
    /// of it yet (nothing changed; call again with more). After the last frame, any byte is
    /// [`Error::TrailingBytes`]. A failure is final.
    pub fn open_next(&mut self, buf: &mut [u8]) -> Result<Option<OpenedFrame>> {
        match self.state {
            State::Failed => {
                return Err(Error::MalformedBody("decryption already failed".into()));
            }
            State::Done if buf.is_empty() => return Ok(None),
            State::Done => return Err(self.fail(Error::TrailingBytes)),
            State::Body => {}
        }
        match self.parse(buf) {
            Ok(Some((frame, content, seq, iv))) => {
                let end = frame.plaintext.end + TAG_LEN;
                let cipher = FrameCipher {
                    key: &self.keys.aead,
                    message_id: &self.header.message_id,
                };
                if let Err(e) = cipher.open(content, seq, iv, &mut buf[frame.plaintext.start..end])
                {
                    return Err(self.fail(e));
                }
                self.next_seq = seq.checked_add(1).unwrap_or(FINAL_MARKER);
                if content == FINAL_FRAME || self.stop_after == Some(seq) {
                    self.state = State::Done;
                }
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The input ended: an error unless the last frame asked for was opened.
    pub fn finish(&mut self) -> Result<()> {
        match self.state {
            State::Done => Ok(()),
            State::Failed => Err(Error::MalformedBody("decryption already failed".into())),
            State::Body => Err(self.fail(Error::Truncated("body (missing final frame)"))),
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        self.state = State::Failed;
        e
    }

    /// The frame at the start of `buf`, its fields checked, if `buf` holds all of it.
    #[allow(clippy::type_complexity)]
    fn parse(&self, buf: &[u8]) -> Result<Option<(OpenedFrame, &'static [u8], u32, [u8; IV_LEN])>> {
        fn be32(b: &[u8], at: usize) -> Option<u32> {
            let b = b.get(at..at + 4)?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
        let Some(first) = be32(buf, 0) else {
            return Ok(None);
        };
        let is_final = first == FINAL_MARKER;
        let mut p = 4;
        let seq = if is_final {
            let Some(s) = be32(buf, p) else {
                return Ok(None);
            };
            p += 4;
            s
        } else {
            first
        };
        check_seq(seq, self.next_seq)?;
        let what = if is_final { "final frame" } else { "frame" };
        let Some(iv_bytes) = buf.get(p..p + IV_LEN) else {
            return Ok(None);
        };
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(iv_bytes);
        p += IV_LEN;
        check_iv(what, seq, &iv)?;
        let len = if is_final {
            let Some(l) = be32(buf, p) else {
                return Ok(None);
            };
            p += 4;
            check_final_len(l, self.header.frame_length)?;
            l as usize
        } else {
            self.header.frame_length as usize
        };
        if buf.len() < p + len + TAG_LEN {
            return Ok(None);
        }
        let content = if is_final { FINAL_FRAME } else { REGULAR_FRAME };
        Ok(Some((
            OpenedFrame {
                consumed: p + len + TAG_LEN,
                plaintext: p..p + len,
            },
            content,
            seq,
            iv,
        )))
    }
}
