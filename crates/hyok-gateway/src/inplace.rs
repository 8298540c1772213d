//! Parts in place: on an S3 backend, direct parts go straight into a backend multipart upload
//! (docs/DESIGN.md, "S3 gateway", "Parts in place").
//!
//! CreateMultipartUpload also starts a backend upload at the upload's staging key
//! `.hyok-gateway/uploads/ID/body` and puts 5 MiB of zeros as its part 1 (a filler: part 1
//! of the message needs the header in front, which is sealed only at Complete). UploadPart
//! n ≥ 2 whose claims win and whose length is 5 to 16 MiB, a whole number of frames, seals
//! its frames (n−1)·k+1 … n·k as its bytes arrive and streams them as backend part n
//! ([`receive`]; the frames are also kept, to put the part again if the stream fails); a
//! larger one (up to 5 GiB) is claimed before its body is read and streamed with bounded
//! memory, nothing kept ([`stream_part`]); a small record at `part-NNNNN` keeps its range,
//! client ETag and backend ETag.
//! CompleteMultipartUpload, when parts 2 … N−1 are in place and the Complete's claims hold,
//! seals the header, puts backend part 1 = header ‖ part 1's frames and the tail (the final
//! frame, after the last part's frames when that part is not in place; each held in memory
//! up to [`MAX_HELD_PART`], streamed above it), completes the backend upload, checks the
//! result starts with its header and has the expected size, and copies it to the target
//! server-side with the object's metadata.
//!
//! Anything else falls back to re-encryption, which must read parts that sit in an
//! unfinished backend upload: [`layout`] completes it with the listed parts in place and
//! fillers (part 1, and every other number up to the last listed part in place), and finds
//! each listed part's frames by offset. A fallback never puts part 1, and puts fillers only
//! at numbers that a direct Complete of the same list does not use; if two different lists
//! race, the direct Complete's size check or the fallback's authenticated decryption fails,
//! and nothing wrong is published.

use std::collections::HashMap;
use std::ops::Range;

use base64::Engine;
use bytes::Bytes;
use hyok::objects::Source;
use hyok::store::{Precondition, Store, StoreUrl};
use hyok::{DetachedMessage, EncryptionContext, Parallelism};
use s3s::{s3_error, S3Result};

use crate::body::AppendRead;
use crate::direct::{self, read_full, Listed, PartDesc, Record, RECORD_LEN};
use crate::meta;
use crate::service::{join_error, to_s3, Caller, Gateway};

/// Context key of an upload's `info`: the id of its backend upload.
pub(crate) const CTX_PARTS_UPLOAD: &str = "hyok-gw-parts-upload";
/// Context key of an upload's `info`: the backend ETag of the filler part 1.
pub(crate) const CTX_FILLER_ETAG: &str = "hyok-gw-parts-filler";
/// First bytes of the record of a part in place.
const MAGIC: &[u8; 16] = b"hyok-gw-inplace1";
/// S3's smallest part (all but the last).
pub(crate) const MIN_PART: u64 = 5 << 20;
/// Largest part received in place while its claims are decided (its plaintext and frames
/// are held in memory).
pub(crate) const MAX_PART: u64 = crate::reencrypt::READ_AHEAD_PART;
/// Largest part 1 (its frames) or last part (its plaintext and frames) a Complete holds in
/// memory to put it as a backend part (3 × 64 MiB at most, within the gateway's body budget,
/// `service::SMALL_BODY_BUDGET_KIB`, 256 MiB; such a put is retried by the store). Larger
/// ones are streamed from the stored part to the backend with bounded memory
/// ([`streamed_memory`] each).
pub(crate) const MAX_HELD_PART: u64 = 64 << 20;
/// Bytes of a filler part.
const FILLER: usize = 5 << 20;
/// Longest backend ETag kept.
const MAX_ETAG: usize = 1024;

static ZEROS: [u8; FILLER] = [0; FILLER];

/// User metadata of a part's record in place: the record again (base64), so that a HEAD
/// describes the part. A small GET of s3s-fs waits about 40 ms for a delayed ACK (see
/// `described.rs`), and a Complete describes every part.
const META_RECORD: &str = "hyok-gw-inplace";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The record in place that `info` (a HEAD of `part-NNNNN`) carries in its metadata, if it
/// is one and the object's size is the record's.
pub(crate) fn from_metadata(info: &hyok::store::ObjectInfo) -> Option<InPlace> {
    let v = info.metadata.get(META_RECORD)?;
    // A record with the longest backend ETag, in base64, and no more.
    if v.len() > (RECORD_LEN as usize + 2 + MAX_ETAG).div_ceil(3) * 4 {
        return None;
    }
    let bytes = b64().decode(v).ok()?;
    (bytes.len() as u64 == info.size).then(|| InPlace::decode(&bytes))?
}

fn filler() -> Vec<Bytes> {
    vec![Bytes::from_static(&ZEROS)]
}

/// A part in place: its record and the backend's ETag of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InPlace {
    pub(crate) record: Record,
    pub(crate) backend_etag: String,
}

impl InPlace {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = self.record.encode_with(MAGIC);
        let e = self.backend_etag.as_bytes();
        v.extend_from_slice(&u16::try_from(e.len()).unwrap_or(0).to_be_bytes());
        v.extend_from_slice(e);
        v
    }

    /// The record of a part in place, if `b` is one.
    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        let record = Record::decode_with(b, MAGIC)?;
        let at = RECORD_LEN as usize;
        let n = usize::from(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?));
        if n == 0 || n > MAX_ETAG {
            return None;
        }
        let backend_etag = std::str::from_utf8(b.get(at + 2..at + 2 + n)?)
            .ok()?
            .to_owned();
        (b.len() == at + 2 + n).then_some(Self {
            record,
            backend_etag,
        })
    }
}

/// The staging key of an upload's backend upload.
pub(crate) fn body_key(id: &str) -> String {
    format!("{}body", crate::multipart::upload_dir(id))
}

/// Whether part `n` of `len` bytes goes in place (its claims won).
pub(crate) fn fits(n: i32, len: u64) -> bool {
    n >= 2 && (MIN_PART..=MAX_PART).contains(&len)
}

/// Whether part `n` of `len` bytes goes in place by [`stream_part`] (claimed first): any
/// part over [`MAX_PART`] (up to S3's 5 GiB, `body::MAX_UPLOAD`, checked before).
pub(crate) fn fits_streamed(n: i32, len: u64) -> bool {
    n >= 2 && len > MAX_PART && len <= crate::body::MAX_UPLOAD
}

/// Memory a part streamed in place needs at most, whatever its size: the chunks in flight
/// (the one being sealed, the channel's, the backend request's).
pub(crate) fn streamed_memory() -> u64 {
    let (_, fl) = direct::settings();
    memory_for(u64::from(fl) * STREAM_FRAMES as u64) * 12
}

/// Start the backend upload of a new upload at `body`, with the filler as part 1: the
/// context pairs for its `info`.
pub(crate) async fn begin(store: &Store, body: &StoreUrl) -> S3Result<[(&'static str, String); 2]> {
    let id = store
        .start_numbered(body)
        .await
        .map_err(|e| to_s3(e.into()))?;
    match store.put_numbered(body, &id, 1, filler()).await {
        Ok(etag) => Ok([(CTX_PARTS_UPLOAD, id), (CTX_FILLER_ETAG, etag)]),
        Err(e) => {
            let _ = store.abort_numbered(body, &id).await;
            Err(to_s3(e.into()))
        }
    }
}

/// Bytes of memory a part of `len` bytes in place needs: its plaintext and its frames.
pub(crate) fn memory_for(len: u64) -> u64 {
    let (_, fl) = direct::settings();
    len + len.div_ceil(u64::from(fl)) * hyok::REGULAR_FRAME_OVERHEAD + len
}

/// Frames sealed and sent at a time while a part streams in place (1 MiB of 64 KiB frames:
/// small, so the backend request follows the client's closely).
const STREAM_FRAMES: usize = 16;

/// What a part's claims decided for [`receive`]: seal it in place (the upload's message and
/// the part's record), or not (`None`, also when the deciding side gave up).
pub(crate) type Decision = Option<(DetachedMessage, Record)>;

/// What [`receive`] made of a part's body.
pub(crate) enum Received {
    /// Sealed as the record's frames, all of them sent on the way.
    Sealed(Vec<Bytes>),
    /// Not sealed (the decision was no): the plaintext, whole and checked.
    Plain(Vec<u8>),
}

/// Bytes of a part's frames held back until the client's body has passed its length and
/// checksum checks: the last frame's tag. Without them the backend request never reaches its
/// length, so the backend never stores a part from bytes that failed those checks.
const HOLD_BACK: usize = 16;

/// Receive a part of `len` bytes (a whole number of frames) from `src`, which checks the
/// client's length and checksums before it reports the end of input. The plaintext is kept
/// until `decided` answers; from a yes on, it is sealed 16 frames at a time and each chunk
/// sent to `out` (the backend request's body) at once, all but the last [`HOLD_BACK`] bytes,
/// which wait until `src` has reported its end, so bytes that fail the client's checksum
/// never complete a backend part. An error is also sent to `out`, which abandons the backend
/// request. The caller holds the memory for the plaintext and the frames ([`memory_for`]).
pub(crate) fn receive(
    src: &mut dyn AppendRead,
    len: u64,
    decided: std::sync::mpsc::Receiver<Decision>,
    out: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) -> hyok::Result<Received> {
    let res = receive_inner(src, len, &decided, &out);
    if let Err(e) = &res {
        let _ = out.blocking_send(Err(std::io::Error::other(e.to_string())));
    }
    res
}

fn receive_inner(
    src: &mut dyn AppendRead,
    len: u64,
    decided: &std::sync::mpsc::Receiver<Decision>,
    out: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) -> hyok::Result<Received> {
    use std::sync::mpsc::TryRecvError;
    let (_, fl) = direct::settings();
    let step = fl as usize * STREAM_FRAMES;
    let want = usize::try_from(len)
        .map_err(|_| hyok::Error::Config("the part is too large to hold".into()))?;
    let io = |e| hyok::Error::Io {
        what: "receiving the part".into(),
        source: e,
    };
    let mut plain = Vec::with_capacity(want);
    // `None` until the claims answer; then whether to seal (the message and the record).
    let mut plan: Option<Decision> = None;
    let mut sealed = Vec::new();
    // Bytes of `plain` sealed so far (whole chunks, so whole frames); all of their frames
    // were sent but the held-back tail, once the last chunk is sealed.
    let mut done = 0usize;
    let mut held = Bytes::new();
    let mut seal = |plan: &Option<Decision>, plain: &[u8]| -> hyok::Result<()> {
        let Some(Some((m, record))) = plan else {
            return Ok(());
        };
        while done < plain.len() {
            let end = (done + step).min(plain.len());
            let seq = u32::try_from(done / fl as usize)
                .ok()
                .and_then(|i| record.first_seq.checked_add(i))
                .ok_or_else(|| hyok::Error::Config("the part has too many frames".into()))?;
            let mut frames = Vec::new();
            let k = m.seal_frames(
                &Parallelism::Sequential,
                seq,
                &plain[done..end],
                false,
                &mut frames,
            )?;
            frames.truncate(k);
            let chunk = Bytes::from(frames);
            let mut send = chunk.clone();
            if end == want {
                held = send.split_off(send.len().saturating_sub(HOLD_BACK));
            }
            // A backend request that already failed dropped its end: the caller puts the part
            // again from `sealed`.
            let _ = out.blocking_send(Ok(send));
            sealed.push(chunk);
            done = end;
        }
        Ok(())
    };
    let mut ended = false;
    while !ended {
        let at = plain.len();
        let n = step.min(want - at);
        // Appended without zeroing the space first (a memset of every part otherwise).
        let got = src.append(&mut plain, n).map_err(io)?;
        if got < n {
            return Err(hyok::Error::Config(
                "the part is shorter than it announced".into(),
            ));
        }
        if plan.is_none() {
            match decided.try_recv() {
                Ok(d) => plan = Some(d),
                Err(TryRecvError::Disconnected) => plan = Some(None),
                // The last chunk is not waited on: the claims answer long before it.
                Err(TryRecvError::Empty) if plain.len() == want => {
                    plan = Some(decided.recv().unwrap_or(None));
                }
                Err(TryRecvError::Empty) => {}
            }
        }
        ended = plain.len() == want;
        seal(&plan, &plain)?;
    }
    // The end of input, which `src` reports only once the checksums held.
    let mut extra = [0u8; 1];
    if read_full(src, &mut extra).map_err(io)? != 0 {
        return Err(hyok::Error::Config(
            "the part is longer than it announced".into(),
        ));
    }
    if matches!(plan, Some(Some(_))) {
        if !held.is_empty() {
            let _ = out.blocking_send(Ok(held));
        }
        Ok(Received::Sealed(sealed))
    } else {
        Ok(Received::Plain(plain))
    }
}

/// Seal a claimed part of `len` bytes (a whole number of frames) from `src` as `record`'s
/// frames and send them to `out` (the backend request's body) as they come, 16 frames at a
/// time, keeping nothing: the last [`HOLD_BACK`] bytes wait until `src` (which checks the
/// client's length and checksums before it reports its end) has ended, so bytes that fail
/// those checks never complete a backend part. Nothing is kept to put the part again: if the
/// backend request fails, the client's UploadPart fails (the claim stays, so a part sent again
/// is staged: no frame is sealed twice). An error is also sent to `out`, which abandons the
/// backend request.
pub(crate) fn stream_part(
    src: &mut dyn AppendRead,
    len: u64,
    m: &DetachedMessage,
    record: &Record,
    out: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) -> hyok::Result<()> {
    let res = stream_part_inner(src, len, m, record, &out);
    if let Err(e) = &res {
        let _ = out.blocking_send(Err(std::io::Error::other(e.to_string())));
    }
    res
}

fn stream_part_inner(
    src: &mut dyn AppendRead,
    len: u64,
    m: &DetachedMessage,
    record: &Record,
    out: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) -> hyok::Result<()> {
    let (_, fl) = direct::settings();
    let step = fl as usize * STREAM_FRAMES;
    let io = |e| hyok::Error::Io {
        what: "receiving the part".into(),
        source: e,
    };
    let mut plain = Vec::with_capacity(step);
    let mut done = 0u64;
    let mut held = Bytes::new();
    while done < len {
        let n = usize::try_from((len - done).min(step as u64)).unwrap_or(step);
        plain.clear();
        if src.append(&mut plain, n).map_err(io)? < n {
            return Err(hyok::Error::Config(
                "the part is shorter than it announced".into(),
            ));
        }
        let seq = u32::try_from(done / u64::from(fl))
            .ok()
            .and_then(|i| record.first_seq.checked_add(i))
            .ok_or_else(|| hyok::Error::Config("the part has too many frames".into()))?;
        let mut frames = Vec::new();
        let k = m.seal_frames(&Parallelism::Sequential, seq, &plain, false, &mut frames)?;
        frames.truncate(k);
        let mut send = Bytes::from(frames);
        done += n as u64;
        if done == len {
            held = send.split_off(send.len().saturating_sub(HOLD_BACK));
        }
        if out.blocking_send(Ok(send)).is_err() {
            return Err(hyok::Error::Config(
                "the backend request for the part ended early".into(),
            ));
        }
    }
    let mut extra = [0u8; 1];
    if read_full(src, &mut extra).map_err(io)? != 0 {
        return Err(hyok::Error::Config(
            "the part is longer than it announced".into(),
        ));
    }
    if !held.is_empty() && out.blocking_send(Ok(held)).is_err() {
        return Err(hyok::Error::Config(
            "the backend request for the part ended early".into(),
        ));
    }
    Ok(())
}

/// Bytes of the frames of a part of `len` bytes (a whole number of frames).
pub(crate) fn sealed_len(len: u64) -> u64 {
    let (_, fl) = direct::settings();
    len / u64::from(fl) * (u64::from(fl) + hyok::REGULAR_FRAME_OVERHEAD)
}

/// Finish part `n` in place, whose frames are backend part `n` with `backend_etag` (or, if
/// the streamed request failed, are put again from `sealed`): write its record; returns the
/// part's ETag.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn finish_part(
    g: &Gateway,
    bucket: &str,
    upload_id: &str,
    backend_upload: &str,
    n: i32,
    record: Record,
    streamed: hyok::store::Result<String>,
    sealed: Vec<Bytes>,
) -> S3Result<String> {
    let store = g.backend.store(bucket)?;
    let number = u32::try_from(n).map_err(|_| s3_error!(InvalidArgument))?;
    let backend_etag = match streamed {
        Ok(e) => e,
        Err(e) => {
            // The same ciphertext again (same frames, same nonces): safe to send twice.
            tracing::debug!(error = %e, part = n, "the streamed part failed; putting it again");
            let body_url = g.backend.object_url(bucket, &body_key(upload_id))?;
            store
                .put_numbered(&body_url, backend_upload, number, sealed)
                .await
                .map_err(|e| to_s3(e.into()))?
        }
    };
    if backend_etag.is_empty() || backend_etag.len() > MAX_ETAG {
        return Err(s3_error!(
            InternalError,
            "the backend returned no usable ETag"
        ));
    }
    let len = record.len;
    let etag = record.etag;
    let rec = InPlace {
        record,
        backend_etag,
    }
    .encode();
    let url = g
        .backend
        .object_url(bucket, &crate::multipart::part_key(upload_id, n))?;
    let meta = std::collections::BTreeMap::from([(META_RECORD.to_owned(), b64().encode(&rec))]);
    store
        .put_whole_with_metadata(&url, rec, &meta)
        .await
        .map_err(|e| to_s3(e.into()))?;
    g.metrics.bytes_in(len);
    g.metrics.direct_part();
    g.metrics.inplace_part();
    Ok(hex::encode(etag))
}

/// The frames of `seq…` for `plain`, the last frame final.
async fn seal_final(m: DetachedMessage, seq: u32, plain: Vec<u8>) -> S3Result<Bytes> {
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let k = m.seal_frames(&Parallelism::Global, seq, &plain, true, &mut out)?;
        out.truncate(k);
        Ok::<_, hyok::Error>(Bytes::from(out))
    })
    .await
    .map_err(join_error)?
    .map_err(to_s3)
}

/// Bytes of the frames `seal_frames` makes of `size` bytes of plaintext, the last frame final.
pub(crate) fn sealed_final_len(size: u64) -> u64 {
    let (_, fl) = direct::settings();
    let fl = u64::from(fl);
    size / fl * (fl + hyok::REGULAR_FRAME_OVERHEAD) + size % fl + hyok::FINAL_FRAME_OVERHEAD
}

/// The frames of a stored direct part, as the backend hands them on (pinned to the part's
/// entity tag: a part replaced since it was listed fails the read).
async fn frames_stream(
    store: &Store,
    p: &Listed,
) -> S3Result<futures::stream::BoxStream<'static, std::io::Result<Bytes>>> {
    store
        .get_range_stream(&p.url, RECORD_LEN..p.info.size, p.info.e_tag.as_deref())
        .await
        .map_err(|e| to_s3(e.into()))
}

/// Put backend part `number` of `len` bytes from `body` as it yields them (held to exactly
/// `len` by the store); a failure abandons the request and leaves no part.
async fn put_streamed<S>(
    store: &Store,
    body_url: &StoreUrl,
    backend_upload: &str,
    number: u32,
    len: u64,
    body: S,
) -> S3Result<String>
where
    S: futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
{
    store
        .put_numbered_stream(body_url, backend_upload, number, len, body)
        .await
        .map_err(|e| to_s3(e.into()))
}

/// Seal the plaintext of the staged last part `url` (`size` bytes) as the frames `seq…`, the
/// last one final, and send them to `out` as they are sealed, 16 frames at a time. The last
/// chunk is sealed only once the staged message has been read to its end and authenticated,
/// so the backend part never reaches its length from a message that fails; an error is also
/// sent to `out`, which abandons the backend request.
fn seal_staged(
    objects: &hyok::objects::Objects,
    url: &StoreUrl,
    size: u64,
    m: &DetachedMessage,
    seq: u32,
    out: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) -> hyok::Result<()> {
    let mut w = Sealing::new(m, seq, size, &out);
    let res = objects
        .get(url, &mut w, None, &EncryptionContext::new())
        .and_then(|_| w.finish());
    if let Err(e) = &res {
        let _ = out.blocking_send(Err(std::io::Error::other(e.to_string())));
    }
    res
}

/// The writer [`seal_staged`] decrypts into.
struct Sealing<'a> {
    m: &'a DetachedMessage,
    /// Plaintext bytes of a chunk (whole frames).
    step: usize,
    /// Frames of a chunk.
    per_step: u32,
    /// Sequence number of the chunk being filled.
    seq: u32,
    /// Plaintext bytes expected in all.
    size: u64,
    /// Plaintext bytes written so far.
    seen: u64,
    plain: Vec<u8>,
    out: &'a tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
}

impl<'a> Sealing<'a> {
    /// Frames from `seq` on for `size` bytes of plaintext, sent to `out` 16 at a time.
    fn new(
        m: &'a DetachedMessage,
        seq: u32,
        size: u64,
        out: &'a tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    ) -> Self {
        let (_, fl) = direct::settings();
        let step = fl as usize * STREAM_FRAMES;
        Self {
            m,
            step,
            per_step: STREAM_FRAMES as u32,
            seq,
            size,
            seen: 0,
            plain: Vec::with_capacity(step),
            out,
        }
    }

    fn send(&mut self, is_final: bool) -> hyok::Result<()> {
        let mut frames = Vec::new();
        let k = self.m.seal_frames(
            &Parallelism::Sequential,
            self.seq,
            &self.plain,
            is_final,
            &mut frames,
        )?;
        frames.truncate(k);
        self.plain.clear();
        self.seq = self
            .seq
            .checked_add(self.per_step)
            .ok_or_else(|| hyok::Error::Config("the upload has too many frames".into()))?;
        self.out
            .blocking_send(Ok(Bytes::from(frames)))
            .map_err(|_| hyok::Error::Config("the backend request for the part ended early".into()))
    }

    /// The last chunk, final, once the whole plaintext came.
    fn finish(mut self) -> hyok::Result<()> {
        if self.seen != self.size {
            return Err(hyok::Error::Config(format!(
                "the staged last part has {} bytes, not the {} listed",
                self.seen, self.size
            )));
        }
        self.send(true)
    }
}

impl std::io::Write for Sealing<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            // A full chunk is sealed as regular frames only when more bytes follow it: the
            // last chunk waits for `finish`.
            if self.plain.len() == self.step {
                self.send(false).map_err(std::io::Error::other)?;
            }
            let take = (self.step - self.plain.len()).min(rest.len());
            self.seen += take as u64;
            if self.seen > self.size {
                return Err(std::io::Error::other(
                    "the staged last part is longer than listed",
                ));
            }
            self.plain.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Complete the upload from its parts in place when its parts allow it and the claims hold;
/// `Ok(None)` when they do not (the caller falls back to re-encryption via [`layout`]).
/// Completed, it returns the upload's objects for the caller to delete, as listed while the
/// backend assembled them (`None` if that listing failed).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn complete(
    g: &Gateway,
    caller: &Caller,
    bucket: &str,
    key: &str,
    upload_id: &str,
    backend_upload: &str,
    message: &DetachedMessage,
    parts: &[Listed],
    context: EncryptionContext,
    total: u64,
    pin: Option<&Precondition>,
) -> S3Result<Option<Option<Vec<StoreUrl>>>> {
    let n_parts = parts.len();
    let Some(PartDesc::Direct(first)) = parts.first().map(|p| &p.desc) else {
        return Ok(None);
    };
    let k = first.frames;
    let seq_of = |i: usize| {
        u32::try_from(i)
            .ok()
            .and_then(|i| i.checked_mul(k))
            .and_then(|s| s.checked_add(1))
    };
    let fits_record = |i: usize, r: &Record| {
        r.frames == k && Some(r.first_seq) == seq_of(i) && r.message_id == message.message_id()
    };
    if n_parts < 2 {
        return Ok(None);
    }
    let last = n_parts - 1;
    let mut etags = Vec::with_capacity(n_parts + 1);
    let mut body_len = 0u64;
    for (i, p) in parts.iter().enumerate() {
        if usize::try_from(p.n).ok() != Some(i + 1) {
            return Ok(None);
        }
        match &p.desc {
            PartDesc::Direct(r) if (i == 0 || i == last) && fits_record(i, r) => {}
            PartDesc::InPlace(ip) if i > 0 && fits_record(i, &ip.record) => {
                etags.push(ip.backend_etag.clone());
                body_len += ip.record.frames_len();
            }
            PartDesc::Staged(_) if i == last => {}
            _ => return Ok(None),
        }
    }
    let last_in_place = matches!(parts[last].desc, PartDesc::InPlace(_));
    // Backend parts: 1, the parts in place, and the tail (N+1 when part N is in place).
    if n_parts + usize::from(last_in_place) > 10_000 {
        return Ok(None);
    }
    let store = g.backend.store(bucket)?;
    let dir = g
        .backend
        .object_url(bucket, &crate::multipart::upload_dir(upload_id))?
        .as_folder();
    let staged_last = matches!(parts[last].desc, PartDesc::Staged(_));
    let first_free = if staged_last { n_parts } else { n_parts + 1 };
    if !direct::claim_complete(&store, &dir, first_free).await? {
        return Ok(None);
    }
    // From here on this Complete alone seals the header and the tail for the message id.
    let body_url = g.backend.object_url(bucket, &body_key(upload_id))?;
    let target = g.backend.object_url(bucket, key)?;
    let objects = g.objects(caller, bucket)?;
    let mut header_msg = direct::duplicate(message)?;
    let header = {
        let objects = objects.clone();
        let target = target.clone();
        tokio::task::spawn_blocking(move || {
            objects.seal_presealed_header(
                &target,
                &mut header_msg,
                &Source {
                    len: Some(total),
                    mtime: None,
                    context,
                },
            )
        })
        .await
        .map_err(join_error)?
        .map_err(to_s3)?
    };
    let (header, metadata) = header;
    let header = Bytes::from(header);
    // Memory for part 1's frames and the tail (the last part's frames, or its plaintext and
    // frames) when they are held, for the pieces in flight when they stream; from the same
    // budget as request bodies.
    let first_held = first.frames_len() <= MAX_HELD_PART;
    let tail_held = match &parts[last].desc {
        PartDesc::InPlace(_) => true,
        PartDesc::Direct(r) => r.frames_len() <= MAX_HELD_PART,
        PartDesc::Staged(d) => d.size <= MAX_HELD_PART,
    };
    let tail_bytes = match &parts[last].desc {
        PartDesc::InPlace(_) => 0,
        _ if !tail_held => streamed_memory(),
        PartDesc::Direct(r) => r.frames_len(),
        PartDesc::Staged(d) => memory_for(d.size),
    };
    let first_bytes = if first_held {
        first.frames_len()
    } else {
        streamed_memory()
    };
    let _permit = g
        .reserve_memory(first_bytes + tail_bytes + (64 << 10))
        .await?;
    let frames_of = |p: &Listed| {
        let store = store.clone();
        let (url, info) = (p.url.clone(), p.info.clone());
        async move {
            store
                .get_range(&url, RECORD_LEN..info.size, info.e_tag.as_deref())
                .await
                .map_err(|e| to_s3(e.into()))
        }
    };
    // Part 1: header ‖ part 1's frames.
    let first_part = async {
        if !first_held {
            let frames = frames_stream(&store, &parts[0]).await?;
            let len = header.len() as u64 + (parts[0].info.size - RECORD_LEN);
            let body =
                futures::StreamExt::chain(futures::stream::iter([Ok(header.clone())]), frames);
            let etag = put_streamed(&store, &body_url, backend_upload, 1, len, body).await?;
            return Ok((etag, len));
        }
        let frames = frames_of(&parts[0]).await?;
        let len = (header.len() + frames.len()) as u64;
        let etag = store
            .put_numbered(&body_url, backend_upload, 1, vec![header.clone(), frames])
            .await
            .map_err(|e| to_s3(e.into()))?;
        Ok::<_, s3s::S3Error>((etag, len))
    };
    // The tail: the final frame, after the last part's frames when it is not in place.
    let tail = async {
        let sealer = direct::duplicate(message)?;
        let (number, chunks) = match &parts[last].desc {
            PartDesc::InPlace(_) => {
                let seq = seq_of(n_parts).ok_or_else(|| s3_error!(EntityTooLarge))?;
                (
                    n_parts + 1,
                    vec![seal_final(sealer, seq, Vec::new()).await?],
                )
            }
            PartDesc::Direct(_) if !tail_held => {
                let frames = frames_stream(&store, &parts[last]).await?;
                let seq = seq_of(n_parts).ok_or_else(|| s3_error!(EntityTooLarge))?;
                let end = seal_final(sealer, seq, Vec::new()).await?;
                let len = parts[last].info.size - RECORD_LEN + end.len() as u64;
                let body = futures::StreamExt::chain(frames, futures::stream::iter([Ok(end)]));
                let number = u32::try_from(n_parts).map_err(|_| s3_error!(EntityTooLarge))?;
                let etag =
                    put_streamed(&store, &body_url, backend_upload, number, len, body).await?;
                return Ok((etag, len));
            }
            PartDesc::Staged(d) if !tail_held => {
                let seq = seq_of(last).ok_or_else(|| s3_error!(EntityTooLarge))?;
                let len = sealed_final_len(d.size);
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                let (objects, url, size) = (objects.clone(), parts[last].url.clone(), d.size);
                let seal = tokio::task::spawn_blocking(move || {
                    seal_staged(&objects, &url, size, &sealer, seq, tx)
                });
                let body = futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|c| (c, rx))
                });
                let number = u32::try_from(n_parts).map_err(|_| s3_error!(EntityTooLarge))?;
                let put = put_streamed(&store, &body_url, backend_upload, number, len, body);
                let (sealed, put) = tokio::join!(seal, put);
                sealed.map_err(join_error)?.map_err(to_s3)?;
                return Ok((put?, len));
            }
            PartDesc::Direct(_) => {
                let frames = frames_of(&parts[last]).await?;
                let seq = seq_of(n_parts).ok_or_else(|| s3_error!(EntityTooLarge))?;
                (
                    n_parts,
                    vec![frames, seal_final(sealer, seq, Vec::new()).await?],
                )
            }
            PartDesc::Staged(d) => {
                let url = parts[last].url.clone();
                let plain = crate::reencrypt::decrypt_whole(objects.clone(), url, d.size).await?;
                let seq = seq_of(last).ok_or_else(|| s3_error!(EntityTooLarge))?;
                (n_parts, vec![seal_final(sealer, seq, plain).await?])
            }
        };
        let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        let number = u32::try_from(number).map_err(|_| s3_error!(EntityTooLarge))?;
        let etag = store
            .put_numbered(&body_url, backend_upload, number, chunks)
            .await
            .map_err(|e| to_s3(e.into()))?;
        Ok::<_, s3s::S3Error>((etag, len))
    };
    let (first_part, tail) = tokio::join!(first_part, tail);
    let ((e1, len1), (et, lent)) = (first_part?, tail?);
    etags.insert(0, e1);
    etags.push(et);
    body_len += len1 + lent;
    // The upload's objects are listed while the backend assembles the staging object (the
    // listing took 0.3 s on s3s-fs for a 1 GiB upload in 5 MiB parts; the assembly 3.5 s).
    // Nothing more of the upload is written by now but the staging object, which is added.
    // A listing that fails is made again at the end.
    let (completed, leftovers) = tokio::join!(
        store.complete_numbered(&body_url, backend_upload, etags),
        crate::multipart::upload_objects(g, bucket, upload_id)
    );
    completed.map_err(|e| to_s3(e.into()))?;
    let leftovers = leftovers.ok().map(|mut urls| {
        if !urls.contains(&body_url) {
            urls.push(body_url.clone());
        }
        urls
    });
    // The staging object must be exactly this message before it is published.
    let info = store.head(&body_url).await.map_err(|e| to_s3(e.into()))?;
    let start = store
        .get_range(&body_url, 0..header.len() as u64, info.e_tag.as_deref())
        .await
        .map_err(|e| to_s3(e.into()))?;
    if info.size != body_len || start != header {
        return Err(s3_error!(
            InternalError,
            "the assembled upload is not what was sent (another Complete of it ran at the same time); retry"
        ));
    }
    publish(
        g, &store, &body_url, &target, info.size, info.e_tag, metadata, pin,
    )
    .await?;
    g.metrics.direct_complete();
    g.metrics.inplace_complete();
    Ok(Some(leftovers))
}

/// Copy the completed staging object to the target with the object's `metadata` (what
/// `Objects::put` would have given it), only while `pin` holds for the target when given:
/// server-side up to S3's CopyObject limit, through the gateway above it.
#[allow(clippy::too_many_arguments)]
async fn publish(
    g: &Gateway,
    store: &Store,
    from: &StoreUrl,
    to: &StoreUrl,
    size: u64,
    e_tag: Option<String>,
    metadata: std::collections::BTreeMap<String, String>,
    pin: Option<&Precondition>,
) -> S3Result<()> {
    if size <= hyok::store::MAX_COPY {
        return store
            .copy_within_when(from, to, &metadata, pin)
            .await
            .map_err(|e| crate::conditional::write_failed(e.into()));
    }
    let (store, from, to, rt) = (store.clone(), from.clone(), to.clone(), g.rt.clone());
    let transfer = g.transfer.clone();
    let pin = pin.cloned();
    tokio::task::spawn_blocking(move || -> hyok::Result<()> {
        let mut r = store.reader(&rt, &from, 0..size, e_tag, &transfer);
        let mut w = match pin {
            Some(cond) => store.writer_when(&rt, &to, metadata, &transfer, cond)?,
            None => store.writer(&rt, &to, metadata, &transfer)?,
        };
        match std::io::copy(&mut r, &mut w) {
            Ok(_) => {
                w.finish()?;
                Ok(())
            }
            Err(e) => Err(match w.abort() {
                Some(up) => up.into(),
                None => hyok::Error::Io {
                    what: "copying the completed upload".into(),
                    source: e,
                },
            }),
        }
    })
    .await
    .map_err(join_error)?
    .map_err(crate::conditional::write_failed)
}

/// Where parts in place are in the completed backend upload, by part URL.
pub(crate) struct Layout {
    pub(crate) body: StoreUrl,
    pub(crate) e_tag: Option<String>,
    pub(crate) parts: HashMap<String, Found>,
}

/// A part in place found in the completed backend upload.
pub(crate) struct Found {
    pub(crate) at: Range<u64>,
    pub(crate) record: Record,
}

/// For the fallback: complete the backend upload as it stands — part 1 (the filler, or a
/// direct Complete's header ‖ part 1), every part in place, a filler for any other number up
/// to the last part in place — unless another Complete already did, and find where the
/// listed parts in place are in it.
pub(crate) async fn layout(
    g: &Gateway,
    bucket: &str,
    upload_id: &str,
    backend_upload: &str,
    filler_etag: &str,
    listed: &[Listed],
) -> S3Result<Layout> {
    let store = g.backend.store(bucket)?;
    // The listed parts in place, by number. Other backend parts (a part sent again, a
    // number left out) are not read: fillers replace them.
    let by_number: std::collections::BTreeMap<i32, (&InPlace, &StoreUrl)> = listed
        .iter()
        .filter_map(|p| match &p.desc {
            PartDesc::InPlace(ip) => Some((p.n, (ip, &p.url))),
            _ => None,
        })
        .collect();
    let body_url = g.backend.object_url(bucket, &body_key(upload_id))?;
    let max = by_number.keys().next_back().copied().unwrap_or(1);
    let mut etags = vec![filler_etag.to_owned()];
    for n in 2..=max {
        match by_number.get(&n) {
            Some((r, _)) => etags.push(r.backend_etag.clone()),
            None => {
                let number = u32::try_from(n).map_err(|_| s3_error!(InternalError))?;
                let e = store
                    .put_numbered(&body_url, backend_upload, number, filler())
                    .await
                    .map_err(|e| to_s3(e.into()))?;
                etags.push(e);
            }
        }
    }
    // Another Complete may have completed it first: then it is read as that one left it.
    let completed = store
        .complete_numbered(&body_url, backend_upload, etags)
        .await;
    let prefix = match store
        .try_get_prefix(&body_url, meta::HEADER_PREFIX)
        .await
        .map_err(|e| to_s3(e.into()))?
    {
        Some(p) => p,
        // Not completed by anyone: report why ours failed (a backend error the client may
        // retry), not a missing upload.
        None => {
            return Err(match completed {
                Err(e) => to_s3(e.into()),
                Ok(()) => s3_error!(InternalError, "the completed upload vanished; retry"),
            })
        }
    };
    // Part 1 is the filler (zeros), or a direct Complete's header ‖ part 1's frames.
    let k_len = by_number
        .values()
        .next()
        .map_or(0, |(r, _)| r.record.frames_len());
    let mut at = if prefix.bytes.first() == Some(&0) {
        FILLER as u64
    } else {
        let parsed = meta::header_of(&store, &prefix, g.limits)
            .await
            .map_err(to_s3)?;
        parsed.wire_len() as u64 + k_len
    };
    let mut found = HashMap::new();
    for n in 2..=max {
        let len = match by_number.get(&n) {
            Some((r, url)) => {
                let len = r.record.frames_len();
                found.insert(
                    url.to_string(),
                    Found {
                        at: at..at + len,
                        record: r.record.clone(),
                    },
                );
                len
            }
            None => FILLER as u64,
        };
        at += len;
    }
    if at > prefix.info.size {
        return Err(s3_error!(
            InternalError,
            "the parts of this upload cannot be read back; abort it and upload again"
        ));
    }
    Ok(Layout {
        body: body_url,
        e_tag: prefix.info.e_tag,
        parts: found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of part 2 of 8 MiB in place.
    fn in_place() -> InPlace {
        InPlace {
            record: Record {
                message_id: vec![7; 32],
                first_seq: 129,
                frames: 128,
                len: 8 << 20,
                etag: [3; 16],
            },
            backend_etag: "\"0123456789abcdef\"".into(),
        }
    }

    #[test]
    fn records_of_parts_in_place_round_trip_and_are_bounded() {
        let p = in_place();
        let b = p.encode();
        assert_eq!(InPlace::decode(&b), Some(p.clone()));
        // Truncated, extended, or with a direct part's magic: not a record in place.
        assert_eq!(InPlace::decode(&b[..b.len() - 1]), None);
        let mut longer = b.clone();
        longer.push(0);
        assert_eq!(InPlace::decode(&longer), None);
        assert_eq!(
            InPlace::decode(&p.record.encode_with(b"hyok-gw-frames01")),
            None
        );
        let mut empty = p.record.encode_with(MAGIC);
        empty.extend_from_slice(&0u16.to_be_bytes());
        assert_eq!(InPlace::decode(&empty), None);
    }

    /// Records are read back from the backend, which may be tampered with: every truncation
    /// and every single-byte change of a valid record decodes to nothing or to a record of
    /// the same length, never a panic; a backend ETag over the bound is refused.
    #[test]
    fn damaged_records_of_parts_in_place_are_refused_without_panicking() {
        let p = InPlace {
            record: Record {
                message_id: vec![1; 32],
                first_seq: 1,
                frames: 80,
                len: 5 << 20,
                etag: [9; 16],
            },
            backend_etag: "\"d41d8cd98f00b204e9800998ecf8427e\"".into(),
        };
        let b = p.encode();
        for n in 0..b.len() {
            assert_eq!(InPlace::decode(&b[..n]), None, "truncated to {n}");
        }
        for at in 0..b.len() {
            for v in [0u8, 0x7f, 0xff] {
                let mut m = b.clone();
                m[at] = v;
                if let Some(d) = InPlace::decode(&m) {
                    assert_eq!(d.encode().len(), m.len());
                }
            }
        }
        let mut long = p.clone();
        long.backend_etag = "e".repeat(MAX_ETAG + 1);
        assert_eq!(InPlace::decode(&long.encode()), None);
    }

    #[test]
    fn only_parts_of_five_to_sixteen_mib_after_the_first_go_in_place() {
        assert!(fits(2, 5 << 20));
        assert!(fits(10_000, 16 << 20));
        assert!(!fits(1, 8 << 20));
        assert!(!fits(2, (5 << 20) - 65536));
        assert!(!fits(2, (16 << 20) + 65536));
    }

    /// A client body: `data`, then the end of input or, if `fail`, the error a failed
    /// checksum check reports in its place.
    struct Body {
        data: std::io::Cursor<Vec<u8>>,
        fail: bool,
    }

    impl std::io::Read for Body {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.data.read(buf)?;
            if n == 0 && self.fail && !buf.is_empty() {
                return Err(std::io::Error::other("checksum mismatch"));
            }
            Ok(n)
        }
    }

    impl AppendRead for Body {}

    /// `receive` of `data` (announced as `len` bytes) with the claims' decision `seal`:
    /// its result and everything it sent to the backend request, in order.
    fn received(
        data: Vec<u8>,
        len: u64,
        fail: bool,
        seal: bool,
    ) -> (
        hyok::Result<Received>,
        Vec<std::io::Result<Bytes>>,
        (DetachedMessage, Record),
    ) {
        let (suite, fl) = direct::settings();
        let m = DetachedMessage::generate(suite, fl).unwrap();
        let record = Record::for_part(&m, 3, len, [7; 16]).unwrap();
        let opener = direct::duplicate(&m).unwrap();
        let (decide, decided) = std::sync::mpsc::sync_channel(1);
        decide.send(seal.then(|| (m, record.clone()))).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let mut body = Body {
            data: std::io::Cursor::new(data),
            fail,
        };
        let res = receive(&mut body, len, decided, tx);
        let mut sent = Vec::new();
        while let Ok(m) = rx.try_recv() {
            sent.push(m);
        }
        (res, sent, (opener, record))
    }

    const FRAME: u64 = 64 << 10;

    #[test]
    fn a_part_is_streamed_whole_only_after_its_end_is_confirmed() {
        // Two whole chunks of 16 frames and a last one of 2.
        let len = 34 * FRAME;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let (res, sent, upload) = received(data.clone(), len, false, true);
        let Ok(Received::Sealed(sealed)) = res else {
            panic!("not sealed");
        };
        let sent: Vec<Bytes> = sent.into_iter().map(Result::unwrap).collect();
        let all: Vec<u8> = sealed.iter().flat_map(|c| c.iter().copied()).collect();
        let streamed: Vec<u8> = sent.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(all.len() as u64, sealed_len(len));
        assert_eq!(streamed, all, "the backend got exactly the sealed frames");
        assert_eq!(
            sent.last().unwrap().len(),
            HOLD_BACK,
            "the tag came last, alone"
        );
        // They are the part's plaintext, at the record's sequence numbers.
        let (m, record) = upload;
        let mut plain = Vec::new();
        m.open_frames(record.first_seq, &all, &mut plain).unwrap();
        assert_eq!(plain, data);
    }

    #[test]
    fn a_part_that_fails_its_checks_never_reaches_its_length() {
        let len = 34 * FRAME;
        for (data, fail, why) in [
            (vec![1u8; len as usize], true, "checksum"),
            (vec![1u8; len as usize + 1], false, "longer"),
            (vec![1u8; len as usize - 1], false, "shorter"),
        ] {
            let (res, sent, _) = received(data, len, fail, true);
            assert!(res.is_err(), "{why}: accepted");
            let (ok, err): (Vec<_>, Vec<_>) = sent.into_iter().partition(Result::is_ok);
            assert_eq!(err.len(), 1, "{why}: the backend request was not abandoned");
            let streamed: u64 = ok.into_iter().map(|c| c.unwrap().len() as u64).sum();
            assert!(
                streamed < sealed_len(len),
                "{why}: the backend got all {streamed} bytes"
            );
        }
    }

    /// `stream_part` of `data` (announced as `len` bytes): its result and what it sent.
    fn streamed(
        data: Vec<u8>,
        len: u64,
        fail: bool,
    ) -> (
        hyok::Result<()>,
        Vec<std::io::Result<Bytes>>,
        (DetachedMessage, Record),
    ) {
        let (suite, fl) = direct::settings();
        let m = DetachedMessage::generate(suite, fl).unwrap();
        let record = Record::for_part(&m, 5, len, [7; 16]).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let mut body = Body {
            data: std::io::Cursor::new(data),
            fail,
        };
        let res = stream_part(&mut body, len, &m, &record, tx);
        let mut sent = Vec::new();
        while let Ok(c) = rx.try_recv() {
            sent.push(c);
        }
        (res, sent, (m, record))
    }

    #[test]
    fn a_large_part_streams_its_frames_and_keeps_nothing() {
        // Two whole chunks of 16 frames and a last one of 3.
        let len = 35 * FRAME;
        let data: Vec<u8> = (0..len).map(|i| (i % 247) as u8).collect();
        let (res, sent, (m, record)) = streamed(data.clone(), len, false);
        res.unwrap();
        let sent: Vec<Bytes> = sent.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            sent.last().unwrap().len(),
            HOLD_BACK,
            "the tag came last, alone"
        );
        let all: Vec<u8> = sent.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(all.len() as u64, sealed_len(len));
        let mut plain = Vec::new();
        m.open_frames(record.first_seq, &all, &mut plain).unwrap();
        assert_eq!(plain, data, "the record's frames of the part");
    }

    #[test]
    fn a_large_part_that_fails_its_checks_never_reaches_its_length() {
        let len = 34 * FRAME;
        for (data, fail, why) in [
            (vec![1u8; len as usize], true, "checksum"),
            (vec![1u8; len as usize + 1], false, "longer"),
            (vec![1u8; len as usize - 1], false, "shorter"),
        ] {
            let (res, sent, _) = streamed(data, len, fail);
            assert!(res.is_err(), "{why}: accepted");
            let (ok, err): (Vec<_>, Vec<_>) = sent.into_iter().partition(Result::is_ok);
            assert_eq!(err.len(), 1, "{why}: the backend request was not abandoned");
            let n: u64 = ok.into_iter().map(|c| c.unwrap().len() as u64).sum();
            assert!(n < sealed_len(len), "{why}: the backend got all {n} bytes");
        }
    }

    #[test]
    fn only_parts_over_16_mib_up_to_5_gib_stream() {
        assert!(!fits_streamed(2, 16 << 20));
        assert!(fits_streamed(2, (16 << 20) + 65536));
        assert!(fits_streamed(10_000, 64 << 20));
        assert!(fits_streamed(2, (64 << 20) + 65536));
        assert!(fits_streamed(2, crate::body::MAX_UPLOAD));
        assert!(!fits_streamed(2, crate::body::MAX_UPLOAD + 1));
        assert!(!fits_streamed(1, 32 << 20), "part 1 holds the header");
        assert!(streamed_memory() < 32 << 20);
    }

    /// A `Sealing` writer for `size` bytes from sequence number `seq`, and what it sent.
    fn sealing_run(
        m: &DetachedMessage,
        seq: u32,
        size: u64,
        writes: &[&[u8]],
    ) -> (hyok::Result<()>, Vec<Bytes>, usize) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let mut w = Sealing::new(m, seq, size, &tx);
        let mut res = Ok(());
        for piece in writes {
            if let Err(e) = std::io::Write::write_all(&mut w, piece) {
                res = Err(hyok::Error::Io {
                    what: "writing".into(),
                    source: e,
                });
                break;
            }
        }
        let mut sent = Vec::new();
        while let Ok(c) = rx.try_recv() {
            sent.push(c.unwrap());
        }
        let before_finish = sent.iter().map(Bytes::len).sum();
        let res = res.and_then(|()| w.finish());
        while let Ok(c) = rx.try_recv() {
            sent.push(c.unwrap());
        }
        (res, sent, before_finish)
    }

    #[test]
    fn a_staged_last_part_streams_as_the_frames_sealing_it_whole_makes() {
        let (suite, fl) = direct::settings();
        let m = DetachedMessage::generate(suite, fl).unwrap();
        let step = FRAME * STREAM_FRAMES as u64;
        for size in [
            0,
            1,
            FRAME - 1,
            FRAME,
            step,
            step + 1,
            2 * step,
            2 * step + FRAME + 5,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            // Written in uneven pieces, as a decryptor hands on its batches.
            let pieces: Vec<&[u8]> = data.chunks(100_003).collect();
            let (res, sent, before_finish) = sealing_run(&m, 17, size, &pieces);
            res.unwrap();
            let all: Vec<u8> = sent.iter().flat_map(|c| c.iter().copied()).collect();
            let mut whole = Vec::new();
            let k = m
                .seal_frames(&Parallelism::Sequential, 17, &data, true, &mut whole)
                .unwrap();
            whole.truncate(k);
            assert_eq!(all, whole, "{size} bytes: the same frames");
            assert_eq!(all.len() as u64, sealed_final_len(size), "{size} bytes");
            assert!(
                before_finish < all.len(),
                "{size} bytes: the last chunk waits for the end"
            );
        }
    }

    #[test]
    fn a_staged_last_part_of_another_length_is_refused() {
        let (suite, fl) = direct::settings();
        let m = DetachedMessage::generate(suite, fl).unwrap();
        let data = vec![9u8; 3 * FRAME as usize];
        // Shorter than listed: nothing final is sealed.
        let (res, sent, _) = sealing_run(&m, 1, 3 * FRAME + 1, &[&data]);
        assert!(res.is_err());
        let sent_len: usize = sent.iter().map(Bytes::len).sum();
        assert!((sent_len as u64) < sealed_final_len(3 * FRAME + 1));
        // Longer than listed: refused as it comes.
        let (res, _, _) = sealing_run(&m, 1, 3 * FRAME - 1, &[&data]);
        assert!(res.is_err());
    }

    #[test]
    fn a_part_that_may_not_go_in_place_is_kept_as_plaintext() {
        let len = 17 * FRAME;
        let data = vec![9u8; len as usize];
        let (res, sent, _) = received(data.clone(), len, false, false);
        match res {
            Ok(Received::Plain(p)) => assert_eq!(p, data),
            _ => panic!("sealed against the decision"),
        }
        assert!(sent.is_empty(), "sent {} chunks", sent.len());
    }

    #[test]
    fn a_record_in_metadata_describes_its_part_only_when_it_is_the_body() {
        let p = in_place();
        let rec = p.encode();
        let info = |size: u64, v: String| hyok::store::ObjectInfo {
            url: StoreUrl::parse("s3://b/k").unwrap(),
            size,
            last_modified: std::time::SystemTime::UNIX_EPOCH,
            e_tag: None,
            metadata: [(META_RECORD.to_owned(), v)].into(),
        };
        let good = b64().encode(&rec);
        assert_eq!(
            from_metadata(&info(rec.len() as u64, good.clone())),
            Some(p.clone())
        );
        // Another body (a part sent again and staged) or damaged metadata: not described.
        assert_eq!(
            from_metadata(&info(rec.len() as u64 + 1, good.clone())),
            None
        );
        assert_eq!(
            from_metadata(&info(rec.len() as u64, good[1..].to_owned())),
            None
        );
        assert_eq!(
            from_metadata(&info(rec.len() as u64, "!".repeat(good.len()))),
            None
        );
        let mut none = info(rec.len() as u64, good);
        none.metadata.clear();
        assert_eq!(from_metadata(&none), None);
        let mut long = p;
        long.backend_etag = "e".repeat(MAX_ETAG + 1);
        let l = long.encode();
        assert_eq!(from_metadata(&info(l.len() as u64, b64().encode(&l))), None);
    }
}
