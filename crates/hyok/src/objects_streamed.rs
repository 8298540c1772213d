//! Downloads decrypted on the async runtime, for servers: the object's bytes arrive as a
//! `Stream` of the pieces the backend sent, each frame is opened in place as soon as it is
//! whole ([`FrameOpener`]) and its plaintext handed on as a slice of the same buffer. Against
//! [`Objects::get_prefetched`] on a blocking thread this saves two copies of every byte (into
//! a `Read` caller's buffer, out into the response's) and two thread hand-offs per piece.
//!
//! Unsigned framed messages whose header is in the prefix already read (every object hyok
//! writes, with a header of ordinary size); [`Objects::streams`] says whether an object is
//! one, the others go the blocking way. The checks are those of the blocking path: the same
//! policy decision, location binding, header verification (audited key use), window
//! arithmetic and frame checks, plaintext released only after its frame authenticated.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use hyok_core::{ContentType, FrameOpener, ParsedHeader};
use hyok_store::{Prefix, RangedStream, StoreUrl};

use super::{check_location, ByteRange, FrameWindow, Objects};
use crate::policy::Action;
use crate::{EncryptionContext, Error, Result};

/// Input taken at a time, and the room set aside for the bytes of frames not yet whole, at
/// least: about as much as the backend hands on at a time (so that the buffer is not grown
/// piece by piece), and about 0.1 ms of AES-GCM on a runtime worker.
const INPUT_ROOM: usize = 256 << 10;

impl Objects {
    /// Whether [`Objects::plaintext_stream`] can serve the object that `prefix` starts: an
    /// unsigned framed message whose header is all in the prefix.
    pub fn streams(&self, prefix: &Prefix) -> bool {
        match ParsedHeader::read(&mut &prefix.bytes[..], self.catalog.limits) {
            Ok(p) => {
                p.header.suite.signature().is_none() && p.header.content_type == ContentType::Framed
            }
            Err(_) => false,
        }
    }

    /// The plaintext of the object `url` (its `range`, or all of it) as a stream decrypted
    /// where it is polled, from `prefix` (its first bytes, already read) on. What
    /// [`Objects::get_prefetched`] checks is checked before this returns (the key use is
    /// audited then); each frame authenticates before its plaintext comes out, and a failure
    /// is the stream's last item. Only objects [`Objects::streams`] accepts.
    pub async fn plaintext_stream(
        &self,
        url: &StoreUrl,
        prefix: Prefix,
        range: Option<ByteRange>,
        reproduced: &EncryptionContext,
    ) -> Result<PlaintextStream> {
        let client = self.authorize(Action::Get, url, reproduced)?;
        let parsed = ParsedHeader::read(&mut &prefix.bytes[..], self.catalog.limits)?;
        check_location(url, &parsed.header, self.bind_location)?;
        let size = prefix.info.size;
        let (first, last, bytes, skip, left) = match range {
            Some(r) => {
                let w = FrameWindow::of(url, &parsed, size, r)?;
                (w.first, Some(w.last), w.bytes, w.skip, Some(w.want))
            }
            None => (1, None, parsed.wire_len() as u64..size, 0, None),
        };
        let label = self.label(url);
        let verified = client.open(parsed, reproduced, &label).await?;
        let opener = verified.frame_opener(first, last)?;
        let (held, rest) = self.body_pieces(url, &prefix, bytes);
        Ok(PlaintextStream {
            opener,
            held,
            rest,
            buf: BytesMut::new(),
            out: VecDeque::new(),
            failed: None,
            skip,
            left,
            ended: false,
        })
    }

    /// The bytes `range` of the object: the part the prefix holds, and a stream of the rest
    /// (parallel ranged GETs pinned to the prefix's entity tag, as `body_reader`'s).
    fn body_pieces(
        &self,
        url: &StoreUrl,
        prefix: &Prefix,
        range: std::ops::Range<u64>,
    ) -> (Option<Bytes>, Option<RangedStream>) {
        let have = prefix.bytes.len() as u64;
        let held = (range.start < have).then(|| {
            prefix
                .bytes
                .slice(range.start as usize..range.end.min(have) as usize)
        });
        let rest = range.start.max(have)..range.end;
        if rest.is_empty() {
            return (held, None);
        }
        let stream = self.catalog.store.range_stream(
            &self.catalog.rt,
            url,
            rest.clone(),
            prefix.info.e_tag.clone(),
            &self.fetch_transfer(rest.end - rest.start),
        );
        (held, Some(stream))
    }
}

/// The plaintext of one download, decrypted as it is polled (see the module doc). Dropping
/// it cancels the backend's GETs.
pub struct PlaintextStream {
    opener: FrameOpener,
    /// Bytes to feed before asking the backend for more: the prefix's, then the rest of a
    /// piece larger than [`INPUT_ROOM`].
    held: Option<Bytes>,
    /// The rest of the bytes, from the backend.
    rest: Option<RangedStream>,
    /// Bytes of frames not yet whole (less than one frame).
    buf: BytesMut,
    /// Plaintext opened and not yet handed on.
    out: VecDeque<Bytes>,
    /// The failure to report once `out` is empty.
    failed: Option<Error>,
    /// Plaintext still to drop before the range, and still to hand on (`None`: all).
    skip: u64,
    left: Option<u64>,
    ended: bool,
}

impl std::fmt::Debug for PlaintextStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaintextStream")
            .field("opener", &self.opener)
            .finish_non_exhaustive()
    }
}

impl PlaintextStream {
    /// Open every whole frame in `buf`, queueing the part of its plaintext in the window.
    fn open_frames(&mut self) -> Result<()> {
        while let Some(f) = self.opener.open_next(&mut self.buf)? {
            let frame = self.buf.split_to(f.consumed).freeze();
            let mut plain = frame.slice(f.plaintext);
            let dropped = usize::try_from(self.skip)
                .unwrap_or(usize::MAX)
                .min(plain.len());
            self.skip -= dropped as u64;
            let _ = plain.split_to(dropped);
            if let Some(left) = self.left.as_mut() {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(plain.len());
                plain.truncate(n);
                *left -= n as u64;
            }
            if !plain.is_empty() {
                self.out.push_back(plain);
            }
        }
        if self.buf.len() >= self.opener.max_frame_wire_len() {
            // Cannot happen with a frame opener that reads what it was given.
            return Err(Error::Format(hyok_core::Error::MalformedBody(
                "a frame longer than its header allows".into(),
            )));
        }
        Ok(())
    }

    /// Take `piece` of input and open what it completes.
    fn feed(&mut self, piece: &[u8]) -> Result<()> {
        if self.buf.capacity() - self.buf.len() < piece.len() {
            self.buf.reserve(piece.len().max(INPUT_ROOM));
        }
        self.buf.extend_from_slice(piece);
        self.open_frames()
    }

    /// Feed `piece`, at most [`INPUT_ROOM`] of it now and the rest on the next turn: a
    /// local folder's part comes as one piece of 8 MiB, and opening it all at once would
    /// hold the runtime's worker (and the connections it serves) for milliseconds.
    fn feed_some(&mut self, mut piece: Bytes) -> Result<()> {
        if piece.len() > INPUT_ROOM {
            self.held = Some(piece.split_off(INPUT_ROOM));
        }
        self.feed(&piece)
    }

    /// The input ended: everything asked for must have come out.
    fn end(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            return Err(Error::Format(hyok_core::Error::Truncated("frame")));
        }
        self.opener.finish()?;
        if self.left.is_some_and(|n| n > 0) {
            return Err(Error::Format(hyok_core::Error::Truncated("frame")));
        }
        Ok(())
    }
}

impl Stream for PlaintextStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(b) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(b)));
            }
            if let Some(e) = this.failed.take() {
                this.ended = true;
                this.rest = None;
                return Poll::Ready(Some(Err(e)));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            let res = if let Some(held) = this.held.take() {
                this.feed_some(held)
            } else {
                match this.rest.as_mut().map(|s| Pin::new(s).poll_next(cx)) {
                    Some(Poll::Pending) => return Poll::Pending,
                    Some(Poll::Ready(Some(Ok(piece)))) => this.feed_some(piece),
                    Some(Poll::Ready(Some(Err(e)))) => Err(e.into()),
                    Some(Poll::Ready(None)) | None => {
                        this.rest = None;
                        this.ended = true;
                        this.end()
                    }
                }
            };
            if let Err(e) = res {
                this.failed = Some(e);
            }
        }
    }
}
