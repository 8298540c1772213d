//! Direct frames: multipart parts of one size sealed once, as the frames they will be in the
//! finished object (docs/DESIGN.md, "S3 gateway", "Direct frames").
//!
//! CreateMultipartUpload draws a data key and message id ([`DetachedMessage`]) and keeps
//! them in the body of the upload's `info` message (encrypted under the keyring like any
//! object). UploadPart n of length L — a whole number k of frames — claims its sequence
//! numbers (`claims.rs`) and seals its bytes as frames (n−1)·k+1 … n·k into `part-NNNNN`, behind
//! an 80-byte record (magic, message id, first sequence number, frame count, length, ETag).
//! CompleteMultipartUpload, when parts 1 … N−1 are such parts of one size and nothing else
//! claimed the sequence numbers it needs, wraps the data key under the object's context,
//! seals the header once and writes header ‖ the parts' frames (copied, not decrypted) ‖
//! the last part re-sealed from its own message (when it was staged) ‖ the final frame.
//! Anything else falls back to staging's decrypt and re-encrypt, which opens direct parts
//! with the upload's key.
//!
//! The claims that keep each sequence number and the header sealed once are in `claims.rs`;
//! the body of the completed message is read by `assembly.rs`.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::sync::Arc;

use hyok::objects::Source;
use hyok::store::{ObjectInfo, Precondition, Store, StoreUrl};
use hyok::{DetachedMessage, EncryptionContext, Parallelism, Settings};
use s3s::dto::StreamingBlob;
use s3s::{s3_error, S3Result};
use zeroize::Zeroizing;

use crate::assembly::{read_ahead, Assembly, Step};
use crate::body::{self, Wanted};
use crate::claims::{claim, names_in};
use crate::meta::{self, ObjectDesc};
use crate::service::{join_error, to_s3, Caller, Gateway};

/// Context key of an upload's `info` whose body holds a data key and message id.
pub(crate) const CTX_DIRECT: &str = "hyok-gw-direct";
/// First bytes of a part sealed in place.
pub(crate) const MAGIC: &[u8; 16] = b"hyok-gw-frames01";
/// First bytes of a part sealed in place whose ETag (the MD5 of its plaintext, known only
/// at its end) follows the frames; the record's own ETag field is then zero.
pub(crate) const MAGIC_MD5: &[u8; 16] = b"hyok-gw-frames02";
/// Bytes of the record in front of the frames.
pub(crate) const RECORD_LEN: u64 = 80;
/// Bytes of the MD5 after the frames of a [`MAGIC_MD5`] part.
pub(crate) const TRAILER_LEN: u64 = 16;
/// Frames sealed or opened at once.
pub(crate) const BATCH_FRAMES: usize = 64;

/// The suite and frame length of direct uploads: the gateway's message settings.
pub(crate) fn settings() -> (hyok::AlgorithmSuite, u32) {
    let s = Settings::default();
    (s.suite, s.encrypt.frame_length)
}

/// A new upload's message, when direct parts are on.
pub(crate) fn new_message(g: &Gateway) -> Option<DetachedMessage> {
    if !g.direct_parts {
        return None;
    }
    let (suite, fl) = settings();
    DetachedMessage::generate(suite, fl).ok()
}

/// What the `info` body holds: data key ‖ message id.
pub(crate) fn key_body(m: &DetachedMessage) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(Vec::with_capacity(64));
    v.extend_from_slice(m.data_key().expose());
    v.extend_from_slice(m.message_id());
    v
}

/// The upload's message, read back from its `info` (one unwrap by the keyring).
pub(crate) async fn restore(
    g: &Gateway,
    caller: &Caller,
    bucket: &str,
    info_url: StoreUrl,
    prefix: Option<hyok::store::Prefix>,
) -> S3Result<DetachedMessage> {
    let objects = g.objects(caller, bucket)?;
    let body = tokio::task::spawn_blocking(move || {
        let mut buf = Zeroizing::new(Vec::with_capacity(64));
        let none = EncryptionContext::new();
        // With the bytes `load` read (the whole `info`), no second GET.
        match prefix {
            Some(p) => objects.get_prefetched(&info_url, p, &mut *buf, None, &none),
            None => objects.get(&info_url, &mut *buf, None, &none),
        }
        .map(|_| buf)
    })
    .await
    .map_err(join_error)?
    .map_err(to_s3)?;
    let (suite, fl) = settings();
    let n = suite.key_len();
    if body.len() != n + suite.message_id_len() {
        return Err(s3_error!(InternalError, "the upload's record is damaged"));
    }
    DetachedMessage::restore(
        suite,
        fl,
        hyok::DataKey::from_slice(&body[..n]),
        body[n..].to_vec(),
    )
    .map_err(|e| to_s3(e.into()))
}

/// The record in front of a part's frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) message_id: Vec<u8>,
    pub(crate) first_seq: u32,
    pub(crate) frames: u32,
    pub(crate) len: u64,
    pub(crate) etag: [u8; 16],
}

impl Record {
    /// The record of part `n` of `len` bytes (a whole number of frames) of `message`.
    pub(crate) fn for_part(
        message: &DetachedMessage,
        n: i32,
        len: u64,
        etag: [u8; 16],
    ) -> S3Result<Self> {
        let fl = u64::from(message.frame_len());
        let frames = u32::try_from(len / fl).map_err(|_| s3_error!(EntityTooLarge))?;
        let first_seq = u32::try_from(n - 1)
            .ok()
            .and_then(|i| i.checked_mul(frames))
            .and_then(|s| s.checked_add(1))
            .filter(|s| s.checked_add(frames).is_some_and(|e| e < u32::MAX))
            .ok_or_else(|| s3_error!(EntityTooLarge))?;
        Ok(Self {
            message_id: message.message_id().to_vec(),
            first_seq,
            frames,
            len,
            etag,
        })
    }

    pub(crate) fn encode_with(&self, magic: &[u8; 16]) -> Vec<u8> {
        let mut v = Vec::with_capacity(RECORD_LEN as usize);
        v.extend_from_slice(magic);
        v.extend_from_slice(&self.message_id);
        v.extend_from_slice(&self.first_seq.to_be_bytes());
        v.extend_from_slice(&self.frames.to_be_bytes());
        v.extend_from_slice(&self.len.to_be_bytes());
        v.extend_from_slice(&self.etag);
        v
    }

    fn decode(b: &[u8]) -> Option<Self> {
        Self::decode_with(b, MAGIC)
    }

    pub(crate) fn decode_with(b: &[u8], magic: &[u8; 16]) -> Option<Self> {
        if b.len() < RECORD_LEN as usize || &b[..16] != magic {
            return None;
        }
        let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap_or_default());
        Some(Self {
            message_id: b[16..48].to_vec(),
            first_seq: u32_at(48),
            frames: u32_at(52),
            len: u64::from_be_bytes(b[56..64].try_into().ok()?),
            etag: b[64..80].try_into().ok()?,
        })
    }

    /// Stored bytes of a part with this record.
    fn stored_len(&self) -> u64 {
        RECORD_LEN + self.frames_len()
    }

    /// Bytes of the sealed frames.
    pub(crate) fn frames_len(&self) -> u64 {
        let (_, fl) = settings();
        u64::from(self.frames) * (u64::from(fl) + hyok::REGULAR_FRAME_OVERHEAD)
    }
}

/// A stored part.
#[derive(Clone, Debug)]
pub(crate) enum PartDesc {
    /// Its own message (staging).
    Staged(ObjectDesc),
    /// Frames sealed in place, in an object of their own.
    Direct(Record),
    /// Frames sealed in place, in the backend's multipart upload (`inplace.rs`).
    InPlace(crate::inplace::InPlace),
}

impl PartDesc {
    pub(crate) fn size(&self) -> u64 {
        match self {
            Self::Staged(d) => d.size,
            Self::Direct(r) => r.len,
            Self::InPlace(p) => p.record.len,
        }
    }

    pub(crate) fn etag(&self) -> String {
        match self {
            Self::Staged(d) => d.etag.trim_end_matches("-1").to_owned(),
            Self::Direct(r) => hex::encode(r.etag),
            Self::InPlace(p) => hex::encode(p.record.etag),
        }
    }
}

/// Describe a part (one GET of its first bytes); `None` when it does not exist.
pub(crate) async fn describe_part(
    g: &Gateway,
    store: &Store,
    url: &StoreUrl,
) -> S3Result<Option<(ObjectInfo, PartDesc)>> {
    // A part in place is described by a HEAD (its record is in its metadata too); anything
    // else, or a record written without it, is read.
    if store.has_numbered_parts() {
        let Some(info) = store.try_head(url).await.map_err(|e| to_s3(e.into()))? else {
            return Ok(None);
        };
        if let Some(p) = crate::inplace::from_metadata(&info) {
            return Ok(Some((info, PartDesc::InPlace(p))));
        }
    }
    let Some(prefix) = store
        .try_get_prefix(url, meta::HEADER_PREFIX)
        .await
        .map_err(|e| to_s3(e.into()))?
    else {
        return Ok(None);
    };
    if let Some(p) = crate::inplace::InPlace::decode(&prefix.bytes) {
        return Ok(Some((prefix.info, PartDesc::InPlace(p))));
    }
    if let Some(r) = Record::decode(&prefix.bytes) {
        if r.stored_len() != prefix.info.size {
            return Err(s3_error!(InternalError, "a stored part is damaged"));
        }
        return Ok(Some((prefix.info, PartDesc::Direct(r))));
    }
    if let Some(mut r) = Record::decode_with(&prefix.bytes, MAGIC_MD5) {
        let mut info = prefix.info;
        if r.stored_len() + TRAILER_LEN != info.size {
            return Err(s3_error!(InternalError, "a stored part is damaged"));
        }
        // The ETag after the frames (in the bytes read already when the part is that small).
        let at = r.stored_len();
        let tail = match prefix.bytes.get(at as usize..) {
            Some(b) if b.len() as u64 == TRAILER_LEN => bytes::Bytes::copy_from_slice(b),
            _ => store
                .get_range(url, at..info.size, info.e_tag.as_deref())
                .await
                .map_err(|e| to_s3(e.into()))?,
        };
        r.etag = tail
            .as_ref()
            .try_into()
            .map_err(|_| s3_error!(InternalError, "a stored part is damaged"))?;
        // From here on the part is its record and frames: every reader of its frames reads
        // `RECORD_LEN..info.size`.
        info.size = at;
        return Ok(Some((info, PartDesc::Direct(r))));
    }
    let parsed = meta::header_of(store, &prefix, g.limits)
        .await
        .map_err(to_s3)?;
    let d = meta::describe(&prefix.info, &parsed);
    Ok(Some((prefix.info, PartDesc::Staged(d))))
}

/// Seal part `n` (`len` bytes, a whole number of frames, claimed) into `url`; returns
/// the part's ETag.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn store_part(
    g: &Gateway,
    bucket: &str,
    url: StoreUrl,
    message: DetachedMessage,
    n: i32,
    body: StreamingBlob,
    wanted: Wanted,
    trailers: Option<s3s::TrailingHeaders>,
    len: u64,
    etag: PartEtag,
) -> S3Result<String> {
    let (front, trailer) = match etag {
        PartEtag::Known(md5) | PartEtag::Random(md5) => (md5, false),
        PartEtag::Md5 => ([0; 16], true),
    };
    let record = Record::for_part(&message, n, len, front)?;
    let store = g.backend.store(bucket)?;
    let stored = record.stored_len() + if trailer { TRAILER_LEN } else { 0 };
    let transfer = crate::backend::write_transfer(&g.transfer, Some(stored));
    let rt = g.rt.clone();
    let (reader, pump) = body::pump(body, wanted, trailers, Some(len))?;
    let seal = tokio::task::spawn_blocking(move || -> hyok::Result<[u8; 16]> {
        let mut w = store.writer(&rt, &url, BTreeMap::new(), &transfer)?;
        let res = seal_into(&message, &record, trailer, reader, &mut w);
        match res {
            Ok(md5) => {
                w.finish()?;
                Ok(md5.unwrap_or(record.etag))
            }
            Err(e) => match w.abort() {
                Some(up) => Err(up.into()),
                None => Err(e),
            },
        }
    });
    let (sealed, pumped) = tokio::join!(seal, pump);
    pumped.map_err(join_error)??;
    let etag = sealed.map_err(join_error)?.map_err(to_s3)?;
    g.metrics.bytes_in(len);
    g.metrics.direct_part();
    Ok(hex::encode(etag))
}

/// What a part's ETag is to be.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PartEtag {
    /// The MD5 of its plaintext (S3's ETag of an unencrypted or SSE-S3 part), known before
    /// the body: a Content-MD5 (a body that fails the pump's check of it never completes
    /// the write) or a body received into memory.
    Known([u8; 16]),
    /// The MD5 of its plaintext, computed as it is sealed and stored after the frames.
    Md5,
    /// A random id: the client checks a checksum it sent instead (see `multipart.rs`).
    Random([u8; 16]),
}

fn io_err(what: &str) -> impl Fn(io::Error) -> hyok::Error + '_ {
    move |e| hyok::Error::Io {
        what: what.to_owned(),
        source: e,
    }
}

/// Read up to `buf.len()` bytes (fewer only at the end of input).
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Write `record` and the frames of `src`; with `trailer`, the record is a [`MAGIC_MD5`]
/// one and the MD5 of the plaintext follows the frames (and is returned).
fn seal_into(
    m: &DetachedMessage,
    record: &Record,
    trailer: bool,
    mut src: impl Read,
    w: &mut dyn Write,
) -> hyok::Result<Option<[u8; 16]>> {
    let magic = if trailer { MAGIC_MD5 } else { MAGIC };
    w.write_all(&record.encode_with(magic))
        .map_err(io_err("uploading"))?;
    let mut md5 = trailer
        .then(hyok::Md5::new)
        .transpose()
        .map_err(|e| hyok::Error::Config(e.to_string()))?;
    let fl = m.frame_len() as usize;
    let mut buf = vec![0u8; fl * BATCH_FRAMES];
    let mut out = Vec::new();
    let mut seq = record.first_seq;
    let mut total = 0u64;
    loop {
        let got = read_full(&mut src, &mut buf).map_err(io_err("reading the part"))?;
        if got == 0 {
            break;
        }
        total += got as u64;
        if total > record.len || (got % fl != 0) {
            return Err(hyok::Error::Config(
                "the part is not the length it announced".into(),
            ));
        }
        if let Some(h) = md5.as_mut() {
            h.update(&buf[..got]);
        }
        let k = m.seal_frames(&Parallelism::Global, seq, &buf[..got], false, &mut out)?;
        w.write_all(&out[..k]).map_err(io_err("uploading"))?;
        seq += (got / fl) as u32;
    }
    if total != record.len {
        return Err(hyok::Error::Config(
            "the part is not the length it announced".into(),
        ));
    }
    let md5 = md5
        .map(hyok::Md5::finish)
        .transpose()
        .map_err(|e| hyok::Error::Config(e.to_string()))?;
    if let Some(d) = &md5 {
        w.write_all(d).map_err(io_err("uploading"))?;
    }
    Ok(md5)
}

/// Decrypt a part sealed in place into `w` (blocking): staging's fallback.
#[allow(clippy::too_many_arguments)]
pub(crate) fn open_part(
    store: &Store,
    rt: &tokio::runtime::Handle,
    url: &StoreUrl,
    at: std::ops::Range<u64>,
    e_tag: Option<String>,
    record: &Record,
    message: &DetachedMessage,
    w: &mut dyn Write,
) -> hyok::Result<()> {
    if record.message_id != message.message_id() {
        return Err(hyok::Error::Config(
            "a part belongs to another upload".into(),
        ));
    }
    let fl = message.frame_len() as usize;
    let frame = fl + hyok::REGULAR_FRAME_OVERHEAD as usize;
    let transfer = hyok::store::Transfer::new(8 << 20, 2);
    let mut r = store.reader(rt, url, at, e_tag, &transfer);
    let mut buf = vec![0u8; frame * BATCH_FRAMES];
    let mut plain = Vec::with_capacity(fl * BATCH_FRAMES);
    let mut seq = record.first_seq;
    loop {
        let got = read_full(&mut r, &mut buf).map_err(io_err("reading a part"))?;
        if got == 0 {
            break;
        }
        plain.clear();
        message.open_frames(seq, &buf[..got], &mut plain)?;
        seq += (got / frame) as u32;
        w.write_all(&plain).map_err(io_err("re-encrypting"))?;
    }
    Ok(())
}

/// What staging's fallback needs to read parts sealed in place: the upload's message and
/// each such part's description, by URL.
pub(crate) struct Opener {
    message: DetachedMessage,
    parts: std::collections::HashMap<String, (ObjectInfo, Record)>,
    /// Parts in place, by part URL: where their frames are in the completed backend upload.
    in_place: Option<crate::inplace::Layout>,
}

impl Opener {
    pub(crate) fn new(message: DetachedMessage, listed: &[Listed]) -> Self {
        let parts = listed
            .iter()
            .filter_map(|p| match &p.desc {
                PartDesc::Direct(r) => Some((p.url.to_string(), (p.info.clone(), r.clone()))),
                PartDesc::Staged(_) | PartDesc::InPlace(_) => None,
            })
            .collect();
        Self {
            message,
            parts,
            in_place: None,
        }
    }

    /// With the parts in place found in the completed backend upload.
    pub(crate) fn with_in_place(mut self, layout: crate::inplace::Layout) -> Self {
        self.in_place = Some(layout);
        self
    }

    /// Decrypt `url` into `w` if it is a part sealed in place (`None`: it is not).
    pub(crate) fn open(
        &self,
        store: &Store,
        rt: &tokio::runtime::Handle,
        url: &StoreUrl,
        w: &mut dyn Write,
    ) -> Option<hyok::Result<()>> {
        if let Some((l, p)) = self
            .in_place
            .as_ref()
            .and_then(|l| Some((l, l.parts.get(&url.to_string())?)))
        {
            return Some(open_part(
                store,
                rt,
                &l.body,
                p.at.clone(),
                l.e_tag.clone(),
                &p.record,
                &self.message,
                w,
            ));
        }
        let (info, record) = self.parts.get(&url.to_string())?;
        Some(open_part(
            store,
            rt,
            url,
            RECORD_LEN..info.size,
            info.e_tag.clone(),
            record,
            &self.message,
            w,
        ))
    }
}

/// Claim the Complete of the upload in `dir` (only this Complete in `completes/`), and check
/// that no part number from `first_free` on was claimed (their sequence numbers are sealed
/// by the Complete). Whether the Complete may seal the header and those frames.
pub(crate) async fn claim_complete(
    store: &Store,
    dir: &StoreUrl,
    first_free: usize,
) -> S3Result<bool> {
    let completes = dir
        .join("completes/")
        .map_err(|_| s3_error!(InternalError, "bad claim folder"))?;
    if !claim(store, &completes, &crate::multipart::new_upload_id()).await? {
        return Ok(false);
    }
    let claims = dir
        .join("claims/")
        .map_err(|_| s3_error!(InternalError, "bad claim folder"))?;
    for name in names_in(store, &claims).await? {
        let n = name
            .split('/')
            .next()
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        if n >= first_free {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A second value of the upload's message (same data key and message id): one seals the
/// header, the other frames.
pub(crate) fn duplicate(message: &DetachedMessage) -> S3Result<DetachedMessage> {
    let (suite, fl) = settings();
    DetachedMessage::restore(
        suite,
        fl,
        message.data_key().duplicate(),
        message.message_id().to_vec(),
    )
    .map_err(|e| to_s3(e.into()))
}

/// One listed part of a Complete.
pub(crate) struct Listed {
    pub(crate) n: i32,
    pub(crate) url: StoreUrl,
    pub(crate) info: ObjectInfo,
    pub(crate) desc: PartDesc,
}

/// Complete the upload in `dir` into `key` by direct frames when its parts allow it and
/// the claims hold; `Ok(false)` when they do not (the caller falls back to staging).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn complete(
    g: &Gateway,
    caller: &Caller,
    bucket: &str,
    key: &str,
    dir: &StoreUrl,
    message: &DetachedMessage,
    parts: &[Listed],
    context: EncryptionContext,
    total: u64,
    pin: Option<&Precondition>,
) -> S3Result<bool> {
    let Some(PartDesc::Direct(first)) = parts.first().map(|p| &p.desc) else {
        return Ok(false);
    };
    let k = first.frames;
    let last = parts.len() - 1;
    for (i, p) in parts.iter().enumerate() {
        if usize::try_from(p.n).ok() != Some(i + 1) {
            return Ok(false);
        }
        match &p.desc {
            PartDesc::Direct(r) => {
                let expect = u32::try_from(i)
                    .ok()
                    .and_then(|i| i.checked_mul(k))
                    .and_then(|s| s.checked_add(1));
                if r.frames != k
                    || Some(r.first_seq) != expect
                    || r.message_id != message.message_id()
                {
                    return Ok(false);
                }
            }
            PartDesc::Staged(_) if i == last => {}
            PartDesc::Staged(_) | PartDesc::InPlace(_) => return Ok(false),
        }
    }
    let last_direct = matches!(parts[last].desc, PartDesc::Direct(_));
    let store = g.backend.store(bucket)?;
    // Sequence numbers past the direct parts are re-sealed here: no part claimed them.
    let n_last = parts.len();
    let first_free = if last_direct { n_last + 1 } else { n_last };
    if !claim_complete(&store, dir, first_free).await? {
        return Ok(false);
    }
    // The message and its frame sealer: the same data key and message id, two values (the
    // header is sealed by one, the tail by the other).
    let mut header_msg = duplicate(message)?;
    let sealer = Arc::new(duplicate(message)?);
    let next_seq = u32::try_from(parts.len() - usize::from(!last_direct))
        .ok()
        .and_then(|i| i.checked_mul(k))
        .and_then(|s| s.checked_add(1))
        .ok_or_else(|| s3_error!(EntityTooLarge))?;
    let mut steps = VecDeque::new();
    let copies: Vec<(StoreUrl, ObjectInfo)> = parts
        .iter()
        .filter(|p| matches!(p.desc, PartDesc::Direct(_)))
        .map(|p| (p.url.clone(), p.info.clone()))
        .collect();
    let mut prefetch = None;
    if copies
        .iter()
        .all(|(_, i)| i.size <= crate::reencrypt::READ_AHEAD_PART)
    {
        // Parts read READ_AHEAD at a time ahead of the writer (as staging's Complete).
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        prefetch = Some(tokio::spawn(read_ahead(
            store.clone(),
            g.memory.clone(),
            copies,
            tx,
        )));
        steps.push_back(Step::Chunks(rx));
    } else {
        steps.extend(copies.into_iter().map(|(u, i)| Step::Copy(u, i)));
    }
    let tail = if last_direct {
        None
    } else {
        let (w, r) = body::pipe();
        let objects = g.objects(caller, bucket)?;
        let url = parts[last].url.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut w = w;
            match objects.get(&url, &mut w, None, &EncryptionContext::new()) {
                Ok(_) => {
                    w.finish();
                    Ok(())
                }
                Err(e) => {
                    w.fail("reading the last part failed");
                    Err(to_s3(e))
                }
            }
        });
        Some((r, task))
    };
    let (tail_reader, tail_task) = match tail {
        Some((r, t)) => (Some(r), Some(t)),
        None => (None, None),
    };
    steps.push_back(Step::Seal(tail_reader, next_seq));
    let objects = g.objects(caller, bucket)?;
    let url = g.backend.object_url(bucket, key)?;
    let copy_transfer = g.transfer.clone();
    let rt = g.rt.clone();
    let pin = pin.cloned();
    let put = tokio::task::spawn_blocking(move || {
        let mut frames = Assembly {
            store: objects.store().clone(),
            rt,
            transfer: copy_transfer,
            steps,
            cur: None,
            sealer,
        };
        objects.put_presealed_when(
            &url,
            &mut header_msg,
            &mut frames,
            &Source {
                len: Some(total),
                mtime: None,
                context,
            },
            pin,
        )
    });
    let put = put.await.map_err(join_error)?;
    if let Some(t) = prefetch {
        t.await.map_err(join_error)??;
    }
    if let Some(t) = tail_task {
        t.await.map_err(join_error)??;
    }
    put.map_err(crate::conditional::write_failed)?;
    g.metrics.direct_complete();
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_are_recognised() {
        let r = Record {
            message_id: vec![7; 32],
            first_seq: 129,
            frames: 128,
            len: 8 << 20,
            etag: [3; 16],
        };
        let b = r.encode_with(MAGIC);
        assert_eq!(b.len() as u64, RECORD_LEN);
        assert_eq!(Record::decode_with(&b, MAGIC_MD5), None);
        assert_eq!(Record::decode(&b), Some(r.clone()));
        assert_eq!(Record::decode(&b[..79]), None);
        let mut other = b.clone();
        other[0] = 2;
        assert_eq!(Record::decode(&other), None);
        assert_eq!(r.stored_len(), 80 + 128 * (65536 + 32));
    }

    #[test]
    fn an_md5_etag_follows_the_frames() {
        use md5::Digest;
        let (suite, fl) = settings();
        let m = DetachedMessage::generate(suite, fl).unwrap();
        let plain: Vec<u8> = (0..3 * fl as usize).map(|i| (i % 251) as u8).collect();
        let len = plain.len() as u64;
        for trailer in [false, true] {
            let r = Record::for_part(&m, 2, len, [5; 16]).unwrap();
            let mut out = Vec::new();
            let md5 = seal_into(&m, &r, trailer, &plain[..], &mut out).unwrap();
            // An independent implementation (RustCrypto's) as the reference.
            let expected: [u8; 16] = md5::Md5::digest(&plain).into();
            if trailer {
                assert_eq!(md5, Some(expected));
                assert_eq!(out.len() as u64, r.stored_len() + TRAILER_LEN);
                assert_eq!(&out[out.len() - 16..], &expected);
                assert_eq!(Record::decode(&out), None);
                assert_eq!(Record::decode_with(&out, MAGIC_MD5), Some(r.clone()));
            } else {
                assert_eq!(md5, None);
                assert_eq!(out.len() as u64, r.stored_len());
                assert_eq!(Record::decode(&out), Some(r.clone()));
            }
            // The frames open as the part's sequence numbers either way.
            let frames = &out[RECORD_LEN as usize..r.stored_len() as usize];
            let mut opened = Vec::new();
            m.open_frames(r.first_seq, frames, &mut opened).unwrap();
            assert_eq!(opened, plain);
        }
        // A body shorter than announced is refused, trailer or not.
        let r = Record::for_part(&m, 2, len + u64::from(fl), [5; 16]).unwrap();
        assert!(seal_into(&m, &r, true, &plain[..], &mut Vec::new()).is_err());
    }
}
