//! Reading messages (ESDK spec `client-apis/decrypt.md`).
//!
//! The type flow makes skipping a check impossible: a [`ParsedHeader`] becomes a
//! [`VerifiedHeader`] only after the key commitment and header tag verified, and only a
//! `VerifiedHeader` can produce a [`Decryptor`]. The decryptor releases a frame's plaintext
//! only after its tag verified, treats a missing final frame as an error, holds back the
//! last frame of a signed message until the signature verified, and rejects trailing bytes.

use std::io::{self, BufRead, IoSlice, Read, Write};

use crate::codec::{read_exact_into, read_exact_or_eof};
use crate::context::{EncryptionContext, PUBLIC_KEY_FIELD};
use crate::error::{Error, Result};
use crate::frame::{
    check_final_len, check_iv, check_seq, frame_iv, frames_per_batch, FrameCipher, Parallelism,
    BATCH_BYTES, FINAL_FRAME, FINAL_MARKER, IO_PIECE, REGULAR_FRAME, SINGLE_BLOCK,
};
use crate::header::{ContentType, Header, ParsedHeader, IV_LEN, TAG_LEN};
use crate::key::{derive, DataKey, DerivedKeys};
use crate::opener::FrameOpener;
use crate::signature::{MessageVerifier, VerifyingStream};

/// Largest non-framed body hyok buffers (its tag covers the whole body, so it must be held
/// in memory before any byte is released): the same bound as a frame's.
pub const DEFAULT_MAX_UNFRAMED: u64 = crate::header::DEFAULT_MAX_READ_FRAME_LEN as u64;

impl ParsedHeader {
    /// Split the caller's reproduced context into pairs that must match the stored context
    /// and pairs that were authenticated but not stored; return the full materials context
    /// (stored ∪ reproduced) that key stores bind, plus the serialized auth-only pairs.
    pub fn materials_context(
        &self,
        reproduced: &EncryptionContext,
    ) -> Result<(EncryptionContext, EncryptionContext)> {
        let stored = &self.header.context;
        let mut auth_only = EncryptionContext::new();
        for (k, v) in reproduced.iter() {
            match stored.get(k) {
                Some(sv) if sv == v => {}
                Some(_) => {
                    return Err(Error::Context(format!(
                        "the message's encryption context has a different value for {k:?}"
                    )))
                }
                None => {
                    auth_only.insert(k, v);
                }
            }
        }
        Ok((stored.merged(&auth_only)?, auth_only))
    }

    /// Verify commitment and header tag with the unwrapped data key.
    /// `reproduced` is the context the caller expects (see [`Self::materials_context`]).
    pub fn verify(
        self,
        data_key: &DataKey,
        reproduced: &EncryptionContext,
    ) -> Result<VerifiedHeader> {
        let suite = self.header.suite;
        let (_, auth_only) = self.materials_context(reproduced)?;
        let pk = self.header.context.get(PUBLIC_KEY_FIELD);
        let verifier = match (suite.signature(), pk) {
            (Some(alg), Some(pk)) => Some(MessageVerifier::from_context_value(alg, pk)?),
            (Some(_), None) => {
                return Err(Error::MalformedHeader(
                    "signed suite without aws-crypto-public-key in the context".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(Error::MalformedHeader(
                    "unsigned suite with aws-crypto-public-key in the context".into(),
                ))
            }
            (None, None) => None,
        };
        let keys = derive(suite, data_key, &self.header.message_id)?;
        let auth_only = auth_only.serialize()?;
        self.authenticate(&keys, &auth_only)?;
        let wire_len = self.wire_len();
        let verifier = match verifier {
            Some(v) => {
                let mut h = v.start()?;
                h.update(&self.wire_bytes());
                Some(h)
            }
            None => None,
        };
        Ok(VerifiedHeader {
            header: self.header,
            keys,
            verifier,
            wire_len,
        })
    }
}

/// A header whose key commitment and authentication tag verified.
pub struct VerifiedHeader {
    header: Header,
    keys: DerivedKeys,
    /// The running footer signature check (signed suites), header already fed.
    verifier: Option<VerifyingStream>,
    wire_len: usize,
}

impl std::fmt::Debug for VerifiedHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedHeader")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// Options for reading a message body.
#[derive(Clone, Debug)]
pub struct DecryptOptions {
    /// How frames are spread over cores.
    pub parallelism: Parallelism,
    /// Largest non-framed body accepted.
    pub max_unframed: u64,
    /// Plaintext opened at a time (frames are read and authenticated in batches of about
    /// this many bytes; at least one frame, at most 1,024). Smaller batches give the first
    /// bytes sooner (a server answering ranged GETs); larger ones spread over more cores.
    pub batch_bytes: usize,
}

impl Default for DecryptOptions {
    fn default() -> Self {
        Self {
            parallelism: Parallelism::default(),
            max_unframed: DEFAULT_MAX_UNFRAMED,
            batch_bytes: BATCH_BYTES,
        }
    }
}

impl VerifiedHeader {
    /// The verified header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Length of the header as it was read (body ‖ authentication).
    pub fn wire_len(&self) -> usize {
        self.wire_len
    }

    /// A reader of the plaintext of the body that follows in `input`.
    pub fn decryptor<R: Read>(self, input: R, opts: DecryptOptions) -> Decryptor<R> {
        let frames_per_batch = match self.header.content_type {
            ContentType::Framed => {
                frames_per_batch(self.header.frame_length as usize, opts.batch_bytes)
            }
            ContentType::NonFramed => 1,
        };
        let frame_length = self.header.frame_length;
        Decryptor {
            src: Source {
                input: Input {
                    inner: input,
                    back: Vec::new(),
                    pos: 0,
                },
                hash: self.verifier,
                next_seq: 1,
                frame_length,
                stop_after: None,
            },
            header: self.header,
            keys: self.keys,
            opts,
            frames_per_batch,
            ready: Batch::default(),
            ahead: Batch::default(),
            deferred: None,
            span: 0,
            pos: 0,
            state: State::Body,
            plaintext_len: 0,
        }
    }

    /// A reader of the plaintext of frames `first ..= last` (sequence numbers from 1) only,
    /// for ranged reads: `input` must start at frame `first` (see [`Header::frame_offset`])
    /// and may end after frame `last`. Every frame is authenticated before its plaintext is
    /// released, and a frame out of place (wrong sequence number) is refused. Reading ends
    /// after frame `last` or after the final frame, whichever comes first.
    ///
    /// Only unsigned framed messages: a signed message's signature covers the whole message,
    /// so no part of it can be authenticated without reading all of it.
    pub fn frame_range_decryptor<R: Read>(
        self,
        input: R,
        first: u32,
        last: u32,
        opts: DecryptOptions,
    ) -> Result<Decryptor<R>> {
        if self.header.suite.signature().is_some() {
            return Err(Error::InvalidParameter(format!(
                "suite 0x{:04X} is signed: its signature covers the whole message, so a byte range cannot be authenticated alone",
                self.header.suite.id()
            )));
        }
        if self.header.content_type != ContentType::Framed {
            return Err(Error::InvalidParameter(
                "a non-framed message cannot be read by range".into(),
            ));
        }
        if first == 0 || last < first || last == FINAL_MARKER {
            return Err(Error::InvalidParameter(format!(
                "invalid frame range {first}..={last}"
            )));
        }
        let mut d = self.decryptor(input, opts);
        d.src.next_seq = first;
        d.src.stop_after = Some(last);
        Ok(d)
    }
}

impl VerifiedHeader {
    /// An opener of the frames `first ..=` `last` (sequence numbers from 1; `None`: to the
    /// final frame), fed by its caller (see [`FrameOpener`]); `first = 1, last = None` is the
    /// whole body. Only unsigned framed messages, as [`VerifiedHeader::frame_range_decryptor`].
    pub fn frame_opener(self, first: u32, last: Option<u32>) -> Result<FrameOpener> {
        if self.header.suite.signature().is_some() {
            return Err(Error::InvalidParameter(format!(
                "suite 0x{:04X} is signed: its signature covers the whole message, which a frame opener does not read",
                self.header.suite.id()
            )));
        }
        if self.header.content_type != ContentType::Framed {
            return Err(Error::InvalidParameter(
                "a non-framed message has no frames to open".into(),
            ));
        }
        if first == 0
            || first == FINAL_MARKER
            || last.is_some_and(|l| l < first || l == FINAL_MARKER)
        {
            return Err(Error::InvalidParameter(format!(
                "invalid frame range {first}..={last:?}"
            )));
        }
        Ok(FrameOpener::new(self.header, self.keys, first, last))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Body,
    Done,
    Failed,
}

/// Streaming decryptor: `Read` (and `BufRead`, which saves a copy) yields plaintext that
/// has been authenticated.
///
/// Frames are read in batches into reused buffers, opened in place (in parallel) and
/// released from there. A framed body is read one batch ahead: the next batch is read
/// while the pool opens the current one. Memory stays at about two batches whatever the
/// message size.
pub struct Decryptor<R: Read> {
    src: Source<R>,
    header: Header,
    keys: DerivedKeys,
    opts: DecryptOptions,
    frames_per_batch: usize,
    /// The batch being released: opened, verified (and, if it holds the final frame, the
    /// footer and the end of input checked too).
    ready: Batch,
    /// The next batch, read but not opened yet.
    ahead: Batch,
    /// An error met while reading ahead, reported once the batch before it is released.
    deferred: Option<Error>,
    /// Index of the frame of `ready` being released, and the position in its buffer.
    span: usize,
    pos: usize,
    state: State,
    plaintext_len: u64,
}

impl<R: Read> std::fmt::Debug for Decryptor<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("suite", &self.header.suite)
            .field("next_seq", &self.src.next_seq)
            .finish_non_exhaustive()
    }
}

/// A frame read into a batch buffer: `len` bytes of ciphertext at `start`, then the tag
/// (after opening: `len` bytes of plaintext at `start`).
struct FrameIn {
    seq: u32,
    content: &'static [u8],
    iv: [u8; IV_LEN],
    start: usize,
    len: usize,
}

/// Frames read from the input into one buffer.
#[derive(Default)]
struct Batch {
    /// Ciphertext ‖ tag of each frame. Its length is kept at the largest batch seen, so the
    /// bytes are not initialized again for every batch.
    buf: Vec<u8>,
    frames: Vec<FrameIn>,
    /// Whether `frames` holds a batch that was read (and not yet handed on).
    filled: bool,
    /// Whether the batch ends with the final frame.
    ended: bool,
    /// Whether the batch ends with the last frame of a ranged read.
    stopped: bool,
}

/// The input side of a body: the reader, the running signature hash and the frame
/// sequence.
struct Source<R: Read> {
    input: Input<R>,
    hash: Option<VerifyingStream>,
    next_seq: u32,
    frame_length: u32,
    /// A ranged read stops after this frame (see `frame_range_decryptor`).
    stop_after: Option<u32>,
}

/// The body's reader, with the bytes a bulk read took past the last frame (the footer and
/// whatever follows) put back in front of it.
struct Input<R: Read> {
    inner: R,
    back: Vec<u8>,
    pos: usize,
}

impl<R: Read> Input<R> {
    fn put_back(&mut self, bytes: &[u8]) {
        let mut back = bytes.to_vec();
        back.extend_from_slice(&self.back[self.pos..]);
        self.back = back;
        self.pos = 0;
    }
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.back.len() {
            let n = out.len().min(self.back.len() - self.pos);
            out[..n].copy_from_slice(&self.back[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(out)
    }
}

/// Bytes of a regular frame before its ciphertext: sequence number, IV.
const REGULAR_HEAD: usize = 4 + IV_LEN;

impl<R: Read> Source<R> {
    /// Read up to `want` bytes into `buf[at..]`, fewer only at the end of the input; returns
    /// how many. Within the part of `buf` already initialized the bytes are read in place;
    /// beyond it `buf` grows only as data arrives, so a hostile length cannot make us
    /// allocate more than is sent. A ranged read is the exception: it reads frames its
    /// caller fetched for it (at most a batch at a time), so their room is set aside at once
    /// instead of growing by doubling, which copied each batch once more (measured: 4 % of a
    /// gateway's CPU serving ranged GETs).
    fn fill(&mut self, buf: &mut Vec<u8>, at: usize, want: usize) -> Result<usize> {
        let end = at
            .checked_add(want)
            .ok_or_else(|| Error::MalformedBody("frame beyond the address space".into()))?;
        if self.stop_after.is_some() && buf.len() < end {
            buf.resize(end, 0);
        }
        let mut got = at;
        let init = end.min(buf.len());
        while got < init {
            match self.input.read(&mut buf[got..init]) {
                Ok(0) => return Ok(got - at),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::from_io(e)),
            }
        }
        if got < end {
            buf.truncate(got);
            (&mut self.input)
                .take((end - got) as u64)
                .read_to_end(buf)
                .map_err(Error::from_io)?;
            got = buf.len();
        }
        Ok(got - at)
    }

    /// Make sure `buf[at..at + n]` has been read (`have` bytes of `buf` are), reading
    /// more when the batch's bulk read stopped short of it.
    fn need(
        &mut self,
        buf: &mut Vec<u8>,
        at: usize,
        n: usize,
        have: &mut usize,
        what: &'static str,
    ) -> Result<()> {
        let end = at.checked_add(n).ok_or(Error::Truncated(what))?;
        if end > *have {
            *have += self.fill(buf, *have, end - *have)?;
            if end > *have {
                return Err(Error::Truncated(what));
            }
        }
        Ok(())
    }

    /// Read `n` bytes into `buf[at..]` and hash them (signed suites).
    fn read_body(
        &mut self,
        buf: &mut Vec<u8>,
        at: usize,
        n: usize,
        what: &'static str,
    ) -> Result<()> {
        if self.fill(buf, at, n)? != n {
            return Err(Error::Truncated(what));
        }
        if let Some(h) = self.hash.as_mut() {
            h.update(&buf[at..at + n]);
        }
        Ok(())
    }

    fn read_fixed<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        if !read_exact_or_eof(&mut self.input, &mut b, what)? {
            return Err(Error::Truncated(what));
        }
        if let Some(h) = self.hash.as_mut() {
            h.update(&b);
        }
        Ok(b)
    }

    /// Parse the frame at `buf[at..]` (`have` bytes of `buf` read; more are read if the
    /// frame goes beyond them): check its sequence number, IV and length.
    fn parse_frame(&mut self, buf: &mut Vec<u8>, at: usize, have: &mut usize) -> Result<FrameIn> {
        fn be32(b: &[u8], at: usize) -> u32 {
            u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
        }
        self.need(buf, at, 4, have, "body (missing final frame)")?;
        let first = be32(buf, at);
        let is_final = first == FINAL_MARKER;
        let mut p = at + 4;
        let seq = if is_final {
            self.need(buf, p, 4, have, "final frame")?;
            p += 4;
            be32(buf, p - 4)
        } else {
            first
        };
        check_seq(seq, self.next_seq)?;
        let what = if is_final { "final frame" } else { "frame" };
        self.need(buf, p, IV_LEN, have, what)?;
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&buf[p..p + IV_LEN]);
        p += IV_LEN;
        check_iv(what, seq, &iv)?;
        let len = if is_final {
            self.need(buf, p, 4, have, "final frame")?;
            let l = be32(buf, p);
            p += 4;
            check_final_len(l, self.frame_length)?;
            l as usize
        } else {
            self.frame_length as usize
        };
        self.need(buf, p, len + TAG_LEN, have, what)?;
        self.next_seq = self.next_seq.checked_add(1).unwrap_or(FINAL_MARKER);
        Ok(FrameIn {
            seq,
            content: if is_final { FINAL_FRAME } else { REGULAR_FRAME },
            iv,
            start: p,
            len,
        })
    }

    /// Read up to `max` frames into `batch`, stopping after the final frame. The frames'
    /// bytes arrive in one bulk read straight into the batch buffer (as many bytes as `max`
    /// regular frames take) and are parsed in place; bytes read past the final frame go
    /// back to the input. With `open_each`, each frame is also opened right after it was
    /// parsed, while it is still in cache (one core: nothing to overlap with).
    fn read_batch(
        &mut self,
        batch: &mut Batch,
        max: usize,
        open_each: Option<&FrameCipher<'_>>,
    ) -> Result<()> {
        batch.frames.clear();
        batch.ended = false;
        batch.stopped = false;
        let mut max = max;
        if let Some(last) = self.stop_after {
            // A ranged read asks for no byte past frame `last`.
            max = max.min((last.saturating_sub(self.next_seq) as usize).saturating_add(1));
        }
        let slot = REGULAR_HEAD + self.frame_length as usize + TAG_LEN;
        let mut have = self.fill(&mut batch.buf, 0, slot.saturating_mul(max))?;
        let mut at = 0;
        while batch.frames.len() < max && !batch.ended && !batch.stopped {
            let f = self.parse_frame(&mut batch.buf, at, &mut have)?;
            let end = f.start + f.len + TAG_LEN;
            if let Some(h) = self.hash.as_mut() {
                h.update(&batch.buf[at..end]);
            }
            if let Some(cipher) = open_each {
                cipher.open(f.content, f.seq, f.iv, &mut batch.buf[f.start..end])?;
            }
            batch.ended = f.content == FINAL_FRAME;
            batch.stopped = self.stop_after == Some(f.seq);
            batch.frames.push(f);
            at = end;
        }
        if at < have {
            // The final frame was shorter than a regular one: what follows it (the footer,
            // or trailing bytes) is read again from the input.
            self.input.put_back(&batch.buf[at..have]);
        }
        batch.filled = true;
        Ok(())
    }

    /// Read the footer (signed suites) and make sure nothing follows.
    fn finish_message(&mut self) -> Result<()> {
        if let Some(h) = self.hash.take() {
            let mut len = [0u8; 2];
            if !read_exact_or_eof(&mut self.input, &mut len, "footer")? {
                return Err(Error::Truncated("footer"));
            }
            let mut sig = Vec::new();
            read_exact_into(
                &mut self.input,
                &mut sig,
                u16::from_be_bytes(len) as usize,
                "footer",
            )?;
            h.verify(&sig)?;
        }
        let mut probe = [0u8; 1];
        loop {
            match self.input.read(&mut probe) {
                Ok(0) => return Ok(()),
                Ok(_) => return Err(Error::TrailingBytes),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::from_io(e)),
            }
        }
    }
}

/// Open every frame of `batch` in place, on the cores `par` allows.
fn open_batch(cipher: &FrameCipher<'_>, par: &Parallelism, batch: &mut Batch) -> Result<()> {
    let mut items = Vec::with_capacity(batch.frames.len());
    let mut rest = &mut batch.buf[..];
    let mut at = 0;
    for f in &batch.frames {
        // Each frame's fields sit between its ciphertext and the previous frame's tag.
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(f.start - at);
        let (this, tail) = tail.split_at_mut(f.len + TAG_LEN);
        rest = tail;
        at = f.start + f.len + TAG_LEN;
        items.push((f, this));
    }
    par.run(&mut items, |(f, ct_tag)| {
        cipher.open(f.content, f.seq, f.iv, ct_tag)?;
        Ok(())
    })
}

impl<R: Read> Decryptor<R> {
    /// The verified header of the message being read.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Plaintext bytes released so far.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// Whether the whole message, footer included, has verified.
    pub fn is_complete(&self) -> bool {
        self.state == State::Done && !self.has_buffered()
    }

    /// Whether verified plaintext is waiting to be released.
    fn has_buffered(&self) -> bool {
        let frames = &self.ready.frames;
        frames
            .get(self.span)
            .is_some_and(|f| self.pos < f.start + f.len)
            || frames.iter().skip(self.span + 1).any(|f| f.len > 0)
    }

    /// One core: read and open the next batch frame by frame. Several: open the batch read
    /// ahead (reading it first on the first call) while reading the next one. After the final frame, the footer and the end of input are checked once
    /// the batch opened, and before any of it is released.
    fn refill_framed(&mut self) -> Result<()> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        if matches!(self.opts.parallelism, Parallelism::Sequential) {
            let cipher = FrameCipher {
                key: &self.keys.aead,
                message_id: &self.header.message_id,
            };
            self.src
                .read_batch(&mut self.ready, self.frames_per_batch, Some(&cipher))?;
            if self.ready.ended {
                // The signature (if any) must verify before the last frame is released.
                self.src.finish_message()?;
                self.state = State::Done;
            } else if self.ready.stopped {
                // A ranged read ends here; the rest of the message was not fetched.
                self.state = State::Done;
            }
            return Ok(());
        }
        if !self.ahead.filled {
            self.src
                .read_batch(&mut self.ahead, self.frames_per_batch, None)?;
        }
        std::mem::swap(&mut self.ready, &mut self.ahead);
        self.ahead.filled = false;
        let cipher = FrameCipher {
            key: &self.keys.aead,
            message_id: &self.header.message_id,
        };
        let par = &self.opts.parallelism;
        if self.ready.ended {
            open_batch(&cipher, par, &mut self.ready)?;
            // The signature (if any) must verify before the last frame is released.
            self.src.finish_message()?;
            self.state = State::Done;
            return Ok(());
        }
        if self.ready.stopped {
            // A ranged read ends here; the rest of the message was not fetched.
            open_batch(&cipher, par, &mut self.ready)?;
            self.state = State::Done;
            return Ok(());
        }
        let (ready, ahead, src) = (&mut self.ready, &mut self.ahead, &mut self.src);
        let fpb = self.frames_per_batch;
        let bytes = ready.frames.last().map_or(0, |f| f.start + f.len);
        let (opened, next) = par.overlap(
            bytes,
            || open_batch(&cipher, par, ready),
            || src.read_batch(ahead, fpb, None),
        );
        opened?;
        if let Err(e) = next {
            // This batch verified and may go out; the error comes with the next refill.
            self.deferred = Some(e);
        }
        Ok(())
    }

    fn refill_unframed(&mut self) -> Result<()> {
        let iv: [u8; IV_LEN] = self.src.read_fixed("body")?;
        if iv != frame_iv(1) {
            return Err(Error::MalformedBody(
                "non-framed body: its IV is not the one the format prescribes (00…01)".into(),
            ));
        }
        let len = u64::from_be_bytes(self.src.read_fixed("body")?);
        if len > (1u64 << 36) - 32 || len > self.opts.max_unframed {
            return Err(Error::MalformedBody(format!(
                "non-framed body of {len} bytes exceeds the limit"
            )));
        }
        let batch = &mut self.ready;
        batch.frames.clear();
        self.src
            .read_body(&mut batch.buf, 0, len as usize + TAG_LEN, "body")?;
        let cipher = FrameCipher {
            key: &self.keys.aead,
            message_id: &self.header.message_id,
        };
        let n = cipher.open(
            SINGLE_BLOCK,
            1,
            iv,
            &mut batch.buf[..len as usize + TAG_LEN],
        )?;
        self.src.finish_message()?;
        self.state = State::Done;
        batch.frames.push(FrameIn {
            seq: 1,
            content: SINGLE_BLOCK,
            iv,
            start: 0,
            len: n,
        });
        Ok(())
    }

    /// Verify and queue the next batch; nothing is queued unless all of it verified.
    fn refill(&mut self) -> Result<()> {
        self.span = 0;
        self.pos = 0;
        let res = match self.header.content_type {
            ContentType::Framed => self.refill_framed(),
            ContentType::NonFramed => self.refill_unframed(),
        };
        match res {
            Ok(()) => {
                self.pos = self.ready.frames.first().map_or(0, |f| f.start);
                Ok(())
            }
            Err(e) => {
                self.state = State::Failed;
                self.ready.frames.clear();
                Err(e)
            }
        }
    }
}

/// Write every byte of `spans` to `out`, gathered into `writev` calls of at most
/// [`IO_PIECE`] bytes.
fn write_spans<'a, W: Write + ?Sized>(
    out: &mut W,
    spans: impl IntoIterator<Item = &'a [u8]>,
) -> io::Result<u64> {
    let mut total = 0u64;
    let mut group: Vec<IoSlice<'a>> = Vec::new();
    let mut group_len = 0;
    for span in spans {
        for piece in span.chunks(IO_PIECE) {
            if group_len + piece.len() > IO_PIECE {
                write_all_vectored(out, &mut group)?;
                group_len = 0;
            }
            group.push(IoSlice::new(piece));
            group_len += piece.len();
            total += piece.len() as u64;
        }
    }
    write_all_vectored(out, &mut group)?;
    Ok(total)
}

/// `Write::write_all_vectored` (not stable yet): write all of `bufs`, then empty it.
fn write_all_vectored<W: Write + ?Sized>(
    out: &mut W,
    bufs: &mut Vec<IoSlice<'_>>,
) -> io::Result<()> {
    let mut rest = &mut bufs[..];
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        match out.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bufs.clear();
    Ok(())
}

/// The plaintext of every frame of `batch`.
fn plaintext_spans(batch: &Batch) -> impl Iterator<Item = &[u8]> {
    batch
        .frames
        .iter()
        .map(|f| &batch.buf[f.start..f.start + f.len])
}

impl<R: Read> Decryptor<R> {
    /// Write the rest of the plaintext to `out` and return how many bytes that was; the
    /// same bytes, released under the same rules, as reading to the end would give, without
    /// copying them: each frame is opened in place in the buffer the ciphertext was read
    /// into and written to `out` from there. With several cores, three buffers take turns:
    /// while the pool opens one batch, this thread writes the batch opened before it and
    /// reads the next one, so the input, the output and the crypto all keep moving.
    ///
    /// A failure of the message (a frame that did not verify, a truncated input) comes back
    /// as an `io::Error` of kind `InvalidData` carrying the [`Error`] (see
    /// [`Error::from_io`]), as from `Read`; `out`'s own errors come back as they are.
    /// Everything written to `out` verified first.
    pub fn write_to<W: Write + ?Sized>(&mut self, out: &mut W) -> io::Result<u64> {
        let mut total = self.write_ready(out)?;
        let pipelined = self.header.content_type == ContentType::Framed
            && !matches!(self.opts.parallelism, Parallelism::Sequential);
        if pipelined && self.state == State::Body {
            total += self.write_pipelined(out)?;
        }
        loop {
            match self.state {
                State::Done => return Ok(total),
                State::Failed => return Err(io::Error::other("decryption already failed")),
                State::Body => {
                    self.refill()?;
                    total += self.write_ready(out)?;
                }
            }
        }
    }

    /// Write what is left of the `ready` batch (everything `fill_buf` would still give).
    fn write_ready<W: Write + ?Sized>(&mut self, out: &mut W) -> io::Result<u64> {
        let ready = &self.ready;
        let first = ready.frames.get(self.span).map(|f| {
            let from = self.pos.clamp(f.start, f.start + f.len);
            &ready.buf[from..f.start + f.len]
        });
        let rest = ready
            .frames
            .iter()
            .skip(self.span + 1)
            .map(|f| &ready.buf[f.start..f.start + f.len]);
        let n = write_spans(out, first.into_iter().chain(rest))?;
        self.plaintext_len += n;
        self.ready.frames.clear();
        self.span = 0;
        self.pos = 0;
        Ok(n)
    }

    /// The frames of a framed body on several cores, see [`Self::write_to`]. On entry
    /// `ready` has been released; on return the body is done or failed.
    fn write_pipelined<W: Write + ?Sized>(&mut self, out: &mut W) -> io::Result<u64> {
        let mut total = 0;
        // Opened and verified, written while the next batch opens.
        let mut pending = Batch::default();
        let fpb = self.frames_per_batch;
        loop {
            if let Some(e) = self.deferred.take() {
                self.release(out, &mut pending)?;
                return Err(self.fail(e));
            }
            if !self.ahead.filled {
                if let Err(e) = self.src.read_batch(&mut self.ahead, fpb, None) {
                    self.release(out, &mut pending)?;
                    return Err(self.fail(e));
                }
            }
            std::mem::swap(&mut self.ready, &mut self.ahead);
            self.ahead.filled = false;
            let last = self.ready.ended || self.ready.stopped;
            let cipher = FrameCipher {
                key: &self.keys.aead,
                message_id: &self.header.message_id,
            };
            let par = &self.opts.parallelism;
            let (ready, ahead, src) = (&mut self.ready, &mut self.ahead, &mut self.src);
            let bytes = ready.frames.last().map_or(0, |f| f.start + f.len);
            let pending_ref = &pending;
            let (opened, (wrote, next)) = par.overlap(
                bytes,
                || open_batch(&cipher, par, ready),
                || {
                    let wrote = write_spans(out, plaintext_spans(pending_ref));
                    let next = if wrote.is_ok() && !last {
                        src.read_batch(ahead, fpb, None)
                    } else {
                        Ok(())
                    };
                    (wrote, next)
                },
            );
            let wrote = wrote?;
            total += wrote;
            self.plaintext_len += wrote;
            pending.frames.clear();
            if let Err(e) = opened {
                return Err(self.fail(e));
            }
            if last {
                if self.ready.ended {
                    // The signature (if any) must verify before the last batch is released.
                    if let Err(e) = self.src.finish_message() {
                        return Err(self.fail(e));
                    }
                }
                self.state = State::Done;
                let mut ready = std::mem::take(&mut self.ready);
                total += self.release(out, &mut ready)?;
                self.ready = ready;
                return Ok(total);
            }
            if let Err(e) = next {
                // This batch verified and goes out; the error comes after it.
                self.deferred = Some(e);
            }
            std::mem::swap(&mut self.ready, &mut pending);
        }
    }

    /// Write the opened batch `b` and empty it.
    fn release<W: Write + ?Sized>(&mut self, out: &mut W, b: &mut Batch) -> io::Result<u64> {
        let n = write_spans(out, plaintext_spans(b))?;
        self.plaintext_len += n;
        b.frames.clear();
        Ok(n)
    }

    /// Mark the decryptor failed; the error to return.
    fn fail(&mut self, e: Error) -> io::Error {
        self.state = State::Failed;
        self.ready.frames.clear();
        e.into()
    }
}

impl<R: Read> BufRead for Decryptor<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        loop {
            while let Some(f) = self.ready.frames.get(self.span) {
                if self.pos < f.start + f.len {
                    break;
                }
                self.span += 1;
                if let Some(next) = self.ready.frames.get(self.span) {
                    self.pos = next.start;
                }
            }
            if self.span < self.ready.frames.len() {
                break;
            }
            match self.state {
                State::Done => return Ok(&[]),
                State::Failed => return Err(io::Error::other("decryption already failed")),
                State::Body => self.refill()?,
            }
        }
        let f = &self.ready.frames[self.span];
        Ok(&self.ready.buf[self.pos..f.start + f.len])
    }

    fn consume(&mut self, amt: usize) {
        if let Some(f) = self.ready.frames.get(self.span) {
            let amt = amt.min(f.start + f.len - self.pos);
            self.pos += amt;
            self.plaintext_len += amt as u64;
        }
    }
}

impl<R: Read> Read for Decryptor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}
