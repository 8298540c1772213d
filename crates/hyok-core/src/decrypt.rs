//! Reading messages (ESDK spec `client-apis/decrypt.md`).
//!
//! The type flow makes skipping a check impossible: a [`ParsedHeader`] becomes a
//! [`VerifiedHeader`] only after the key commitment and header tag verified, and only a
//! `VerifiedHeader` can produce a [`Decryptor`]. The decryptor releases a frame's plaintext
//! only after its tag verified, treats a missing final frame as an error, holds back the
//! last frame of a signed message until the signature verified, and rejects trailing bytes.

use std::io::{self, BufRead, Read};

use crate::codec::{read_exact_into, read_exact_or_eof};
use crate::context::{EncryptionContext, PUBLIC_KEY_FIELD};
use crate::error::{Error, Result};
use crate::frame::{
    frame_iv, FrameCipher, Parallelism, BATCH_BYTES, FINAL_FRAME, FINAL_MARKER, REGULAR_FRAME,
    SINGLE_BLOCK,
};
use crate::header::{ContentType, Header, ParsedHeader, IV_LEN, TAG_LEN};
use crate::key::{derive, DataKey, DerivedKeys};
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
}

impl Default for DecryptOptions {
    fn default() -> Self {
        Self {
            parallelism: Parallelism::default(),
            max_unframed: DEFAULT_MAX_UNFRAMED,
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
            ContentType::Framed => (BATCH_BYTES / self.header.frame_length as usize).max(1),
            ContentType::NonFramed => 1,
        };
        let frame_length = self.header.frame_length;
        Decryptor {
            src: Source {
                input,
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
    input: R,
    hash: Option<VerifyingStream>,
    next_seq: u32,
    frame_length: u32,
    /// A ranged read stops after this frame (see `frame_range_decryptor`).
    stop_after: Option<u32>,
}

impl<R: Read> Source<R> {
    /// Read `n` bytes into `buf[at..]` and hash them (signed suites). Within the part of
    /// `buf` already initialized the bytes are read in place; beyond it `buf` grows only as
    /// data arrives, so a hostile length cannot make us allocate more than is sent.
    fn read_body(
        &mut self,
        buf: &mut Vec<u8>,
        at: usize,
        n: usize,
        what: &'static str,
    ) -> Result<()> {
        match at.checked_add(n) {
            Some(end) if end <= buf.len() => {
                if !read_exact_or_eof(&mut self.input, &mut buf[at..end], what)? {
                    return Err(Error::Truncated(what));
                }
            }
            _ => {
                buf.truncate(at);
                read_exact_into(&mut self.input, buf, n, what)?;
            }
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

    /// Read the next frame's fields, and its ciphertext and tag into `buf[at..]`.
    fn read_frame(&mut self, buf: &mut Vec<u8>, at: usize) -> Result<FrameIn> {
        let first: [u8; 4] = self.read_fixed("body (missing final frame)")?;
        let first = u32::from_be_bytes(first);
        let is_final = first == FINAL_MARKER;
        let seq = if is_final {
            u32::from_be_bytes(self.read_fixed("final frame")?)
        } else {
            first
        };
        if seq != self.next_seq {
            return Err(Error::MalformedBody(format!(
                "frame {seq} where frame {} was expected",
                self.next_seq
            )));
        }
        let what = if is_final { "final frame" } else { "frame" };
        let iv: [u8; IV_LEN] = self.read_fixed(what)?;
        // The IV is not free: the format fixes it to the sequence number.
        if iv != frame_iv(seq) {
            return Err(Error::MalformedBody(format!(
                "{what} {seq}: its IV is not the one the format prescribes (the sequence number)"
            )));
        }
        let len = if is_final {
            let l = u32::from_be_bytes(self.read_fixed("final frame")?);
            if l > self.frame_length {
                return Err(Error::MalformedBody(format!(
                    "final frame of {l} bytes exceeds the frame length {}",
                    self.frame_length
                )));
            }
            l as usize
        } else {
            self.frame_length as usize
        };
        self.read_body(buf, at, len + TAG_LEN, what)?;
        self.next_seq = self.next_seq.checked_add(1).unwrap_or(FINAL_MARKER);
        Ok(FrameIn {
            seq,
            content: if is_final { FINAL_FRAME } else { REGULAR_FRAME },
            iv,
            start: at,
            len,
        })
    }

    /// Read up to `max` frames into `batch`, stopping after the final frame. With
    /// `open_each`, each frame is also opened right after it was read, while it is still
    /// in cache (one core: nothing to overlap with).
    fn read_batch(
        &mut self,
        batch: &mut Batch,
        max: usize,
        open_each: Option<&FrameCipher<'_>>,
    ) -> Result<()> {
        batch.frames.clear();
        batch.ended = false;
        batch.stopped = false;
        let mut at = 0;
        while batch.frames.len() < max && !batch.ended && !batch.stopped {
            let f = self.read_frame(&mut batch.buf, at)?;
            at = f.start + f.len + TAG_LEN;
            if let Some(cipher) = open_each {
                cipher.open(f.content, f.seq, f.iv, &mut batch.buf[f.start..at])?;
            }
            batch.ended = f.content == FINAL_FRAME;
            batch.stopped = self.stop_after == Some(f.seq);
            batch.frames.push(f);
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
    let end = batch.frames.last().map_or(0, |f| f.start + f.len + TAG_LEN);
    let mut rest = &mut batch.buf[..end];
    for f in &batch.frames {
        let (this, tail) = rest.split_at_mut(f.len + TAG_LEN);
        rest = tail;
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
