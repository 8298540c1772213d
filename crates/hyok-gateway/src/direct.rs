//! Direct frames: multipart parts of one size sealed once, as the frames they will be in the
//! finished object (docs/DESIGN.md, "S3 gateway", "Direct frames").
//!
//! CreateMultipartUpload draws a data key and message id ([`DetachedMessage`]) and keeps
//! them in the body of the upload's `info` message (encrypted under the keyring like any
//! object). UploadPart n of length L — a whole number k of frames — claims its sequence
//! numbers (below) and seals its bytes as frames (n−1)·k+1 … n·k into `part-NNNNN`, behind
//! an 80-byte record (magic, message id, first sequence number, frame count, length, ETag).
//! CompleteMultipartUpload, when parts 1 … N−1 are such parts of one size and nothing else
//! claimed the sequence numbers it needs, wraps the data key under the object's context,
//! seals the header once and writes header ‖ the parts' frames (copied, not decrypted) ‖
//! the last part re-sealed from its own message (when it was staged) ‖ the final frame.
//! Anything else falls back to staging's decrypt and re-encrypt, which opens direct parts
//! with the upload's key.
//!
//! **Claims (no conditional write needed).** A claimant PUTs an empty object with a name of
//! its own (`claims/NNNNN/RANDOM`, `sizes/L`, `completes/RANDOM` under the upload) and then
//! LISTs the folder; it goes on only if the listing shows its own name and no other. If two
//! went on, each listing missed the other's claim, so each listed before the other wrote;
//! but each wrote before it listed — a contradiction on a strongly consistent store (S3
//! since 2020, a local folder). At worst both see both and both fall back. A part also
//! lists `completes/` after claiming, and a Complete lists `claims/` after claiming, so a
//! part sealed in place and a Complete that re-seals past it cannot both proceed.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::sync::Arc;

use futures::StreamExt;
use hyok::objects::Source;
use hyok::store::{ObjectInfo, Store, StoreUrl};
use hyok::{DetachedMessage, EncryptionContext, Parallelism, Settings};
use s3s::dto::StreamingBlob;
use s3s::{s3_error, S3Result};
use zeroize::Zeroizing;

use crate::body::{self, PipeReader, Wanted};
use crate::meta::{self, ObjectDesc};
use crate::service::{join_error, to_s3, Caller, Gateway};

/// Context key of an upload's `info` whose body holds a data key and message id.
pub(crate) const CTX_DIRECT: &str = "hyok-gw-direct";
/// First bytes of a part sealed in place.
const MAGIC: &[u8; 16] = b"hyok-gw-frames01";
/// Bytes of the record in front of the frames.
pub(crate) const RECORD_LEN: u64 = 80;
/// Frames sealed or opened at once.
const BATCH_FRAMES: usize = 64;

/// The suite and frame length of direct uploads: the gateway's message settings.
fn settings() -> (hyok::AlgorithmSuite, u32) {
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
) -> S3Result<DetachedMessage> {
    let objects = g.objects(caller, bucket)?;
    let body = tokio::task::spawn_blocking(move || {
        let mut buf = Zeroizing::new(Vec::with_capacity(64));
        objects
            .get(&info_url, &mut *buf, None, &EncryptionContext::new())
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
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(RECORD_LEN as usize);
        v.extend_from_slice(MAGIC);
        v.extend_from_slice(&self.message_id);
        v.extend_from_slice(&self.first_seq.to_be_bytes());
        v.extend_from_slice(&self.frames.to_be_bytes());
        v.extend_from_slice(&self.len.to_be_bytes());
        v.extend_from_slice(&self.etag);
        v
    }

    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < RECORD_LEN as usize || &b[..16] != MAGIC {
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
        let (_, fl) = settings();
        RECORD_LEN + u64::from(self.frames) * (u64::from(fl) + hyok::REGULAR_FRAME_OVERHEAD)
    }
}

/// A stored part.
#[derive(Clone, Debug)]
pub(crate) enum PartDesc {
    /// Its own message (staging).
    Staged(ObjectDesc),
    /// Frames sealed in place.
    Direct(Record),
}

impl PartDesc {
    pub(crate) fn size(&self) -> u64 {
        match self {
            Self::Staged(d) => d.size,
            Self::Direct(r) => r.len,
        }
    }

    pub(crate) fn etag(&self) -> String {
        match self {
            Self::Staged(d) => d.etag.trim_end_matches("-1").to_owned(),
            Self::Direct(r) => hex::encode(r.etag),
        }
    }
}

/// Describe a part (one GET of its first bytes); `None` when it does not exist.
pub(crate) async fn describe_part(
    g: &Gateway,
    store: &Store,
    url: &StoreUrl,
) -> S3Result<Option<(ObjectInfo, PartDesc)>> {
    let Some(prefix) = store
        .try_get_prefix(url, meta::HEADER_PREFIX)
        .await
        .map_err(|e| to_s3(e.into()))?
    else {
        return Ok(None);
    };
    if let Some(r) = Record::decode(&prefix.bytes) {
        if r.stored_len() != prefix.info.size {
            return Err(s3_error!(InternalError, "a stored part is damaged"));
        }
        return Ok(Some((prefix.info, PartDesc::Direct(r))));
    }
    let parsed = meta::header_of(store, &prefix, g.limits)
        .await
        .map_err(to_s3)?;
    let d = meta::describe(&prefix.info, &parsed);
    Ok(Some((prefix.info, PartDesc::Staged(d))))
}

/// Put an empty claim `dir/name`, then list `dir`: whether only this claim is there.
async fn claim(store: &Store, dir: &StoreUrl, name: &str) -> S3Result<bool> {
    let url = dir
        .join(name)
        .map_err(|_| s3_error!(InternalError, "bad claim name"))?;
    store
        .put_whole(&url, Vec::new())
        .await
        .map_err(|e| to_s3(e.into()))?;
    let names = names_in(store, dir).await?;
    Ok(names.len() == 1 && names[0] == name)
}

/// The names of the objects under the folder `dir` (recursive, relative to it).
async fn names_in(store: &Store, dir: &StoreUrl) -> S3Result<Vec<String>> {
    let dir = dir.as_folder();
    let mut out = Vec::new();
    let mut list = store.list(&dir);
    while let Some(item) = list.next().await {
        let info = item.map_err(|e| to_s3(e.into()))?;
        if let Some(rest) = info.url.key().strip_prefix(dir.key()) {
            out.push(rest.to_owned());
        }
    }
    Ok(out)
}

/// Claim part `n` of length `len` of the upload in `dir` for sealing in place: the
/// upload's part size is `len` (`sizes/`), no other attempt of part `n` claimed
/// (`claims/NNNNN/`), and no Complete started (`completes/`). Returns the claim's
/// random name (the part's ETag) when all hold.
pub(crate) async fn claim_part(
    store: &Store,
    dir: &StoreUrl,
    n: i32,
    len: u64,
    claim_id: &str,
) -> S3Result<bool> {
    let sub = |s: &str| {
        dir.join(s)
            .map_err(|_| s3_error!(InternalError, "bad claim folder"))
    };
    let sizes = sub("sizes/")?;
    let claims = sub(&format!("claims/{n:05}/"))?;
    let size_name = len.to_string();
    let size_url = sizes
        .join(&size_name)
        .map_err(|_| s3_error!(InternalError, "bad claim name"))?;
    let claim_url = claims
        .join(claim_id)
        .map_err(|_| s3_error!(InternalError, "bad claim name"))?;
    // Both claims are written before anything is listed (then the three lists at once).
    let (a, b) = tokio::join!(
        store.put_whole(&size_url, Vec::new()),
        store.put_whole(&claim_url, Vec::new())
    );
    a.and(b).map_err(|e| to_s3(e.into()))?;
    let completes = sub("completes/")?;
    let (mine, all_sizes, done) = tokio::join!(
        names_in(store, &claims),
        names_in(store, &sizes),
        names_in(store, &completes)
    );
    Ok(mine? == [claim_id] && all_sizes? == [size_name] && done?.is_empty())
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
    etag: [u8; 16],
) -> S3Result<String> {
    let fl = u64::from(message.frame_len());
    let frames = u32::try_from(len / fl).map_err(|_| s3_error!(EntityTooLarge))?;
    let first_seq = u32::try_from(n - 1)
        .ok()
        .and_then(|i| i.checked_mul(frames))
        .and_then(|s| s.checked_add(1))
        .filter(|s| s.checked_add(frames).is_some_and(|e| e < u32::MAX))
        .ok_or_else(|| s3_error!(EntityTooLarge))?;
    let record = Record {
        message_id: message.message_id().to_vec(),
        first_seq,
        frames,
        len,
        etag,
    };
    let store = g.backend.store(bucket)?;
    let transfer = crate::backend::write_transfer(&g.transfer, Some(record.stored_len()));
    let rt = g.rt.clone();
    let (reader, pump) = body::pump(body, wanted, trailers, Some(len))?;
    let seal = tokio::task::spawn_blocking(move || -> hyok::Result<u64> {
        let mut w = store.writer(&rt, &url, BTreeMap::new(), &transfer)?;
        let res = seal_into(&message, &record, reader, &mut w);
        match res {
            Ok(n) => {
                w.finish()?;
                Ok(n)
            }
            Err(e) => match w.abort() {
                Some(up) => Err(up.into()),
                None => Err(e),
            },
        }
    });
    let (sealed, pumped) = tokio::join!(seal, pump);
    pumped.map_err(join_error)??;
    sealed.map_err(join_error)?.map_err(to_s3)?;
    g.metrics.bytes_in(len);
    g.metrics.direct_part();
    Ok(hex::encode(etag))
}

fn io_err(what: &str) -> impl Fn(io::Error) -> hyok::Error + '_ {
    move |e| hyok::Error::Io {
        what: what.to_owned(),
        source: e,
    }
}

/// Read up to `buf.len()` bytes (fewer only at the end of input).
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
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

fn seal_into(
    m: &DetachedMessage,
    record: &Record,
    mut src: impl Read,
    w: &mut dyn Write,
) -> hyok::Result<u64> {
    w.write_all(&record.encode()).map_err(io_err("uploading"))?;
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
        let k = m.seal_frames(&Parallelism::Global, seq, &buf[..got], false, &mut out)?;
        w.write_all(&out[..k]).map_err(io_err("uploading"))?;
        seq += (got / fl) as u32;
    }
    if total != record.len {
        return Err(hyok::Error::Config(
            "the part is not the length it announced".into(),
        ));
    }
    Ok(total)
}

/// Decrypt a part sealed in place into `w` (blocking): staging's fallback.
pub(crate) fn open_part(
    store: &Store,
    rt: &tokio::runtime::Handle,
    url: &StoreUrl,
    info: &ObjectInfo,
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
    let mut r = store.reader(
        rt,
        url,
        RECORD_LEN..info.size,
        info.e_tag.clone(),
        &transfer,
    );
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
}

impl Opener {
    pub(crate) fn new(message: DetachedMessage, listed: &[Listed]) -> Self {
        let parts = listed
            .iter()
            .filter_map(|p| match &p.desc {
                PartDesc::Direct(r) => Some((p.url.to_string(), (p.info.clone(), r.clone()))),
                PartDesc::Staged(_) => None,
            })
            .collect();
        Self { message, parts }
    }

    /// Decrypt `url` into `w` if it is a part sealed in place (`None`: it is not).
    pub(crate) fn open(
        &self,
        store: &Store,
        rt: &tokio::runtime::Handle,
        url: &StoreUrl,
        w: &mut dyn Write,
    ) -> Option<hyok::Result<()>> {
        let (info, record) = self.parts.get(&url.to_string())?;
        Some(open_part(store, rt, url, info, record, &self.message, w))
    }
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
            PartDesc::Staged(_) => return Ok(false),
        }
    }
    let last_direct = matches!(parts[last].desc, PartDesc::Direct(_));
    let store = g.backend.store(bucket)?;
    let completes = dir
        .join("completes/")
        .map_err(|_| s3_error!(InternalError, "bad claim folder"))?;
    if !claim(&store, &completes, &crate::multipart::new_upload_id()).await? {
        return Ok(false);
    }
    // Sequence numbers past the direct parts are re-sealed here: no part claimed them.
    let n_last = parts.len();
    let first_free = if last_direct { n_last + 1 } else { n_last };
    let claims = dir
        .join("claims/")
        .map_err(|_| s3_error!(InternalError, "bad claim folder"))?;
    for name in names_in(&store, &claims).await? {
        let n = name
            .split('/')
            .next()
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        if n >= first_free {
            return Ok(false);
        }
    }
    // The message and its frame sealer: the same data key and message id, two values (the
    // header is sealed by one, the tail by the other).
    let (suite, fl) = settings();
    let restore = || {
        DetachedMessage::restore(
            suite,
            fl,
            message.data_key().duplicate(),
            message.message_id().to_vec(),
        )
        .map_err(|e| to_s3(e.into()))
    };
    let mut header_msg = restore()?;
    let sealer = Arc::new(restore()?);
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
    let put = tokio::task::spawn_blocking(move || {
        let mut frames = Assembly {
            store: objects.store().clone(),
            rt,
            transfer: copy_transfer,
            steps,
            cur: None,
            sealer,
        };
        objects.put_presealed(
            &url,
            &mut header_msg,
            &mut frames,
            &Source {
                len: Some(total),
                mtime: None,
                context,
            },
        )
    });
    let put = put.await.map_err(join_error)?;
    if let Some(t) = prefetch {
        t.await.map_err(join_error)??;
    }
    if let Some(t) = tail_task {
        t.await.map_err(join_error)??;
    }
    put.map_err(to_s3)?;
    g.metrics.direct_complete();
    Ok(true)
}

/// Fetch the frames of `parts` (each at most `READ_AHEAD_PART`), `READ_AHEAD` at a time
/// (memory from the gateway's in-memory body budget), and send them in order.
async fn read_ahead(
    store: Store,
    memory: Arc<tokio::sync::Semaphore>,
    parts: Vec<(StoreUrl, ObjectInfo)>,
    tx: tokio::sync::mpsc::Sender<io::Result<(bytes::Bytes, tokio::sync::OwnedSemaphorePermit)>>,
) -> S3Result<()> {
    let mut fetched = futures::stream::iter(parts)
        .map(|(url, info)| {
            let store = store.clone();
            let memory = memory.clone();
            async move {
                let kib = u32::try_from(info.size.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
                let permit = memory
                    .acquire_many_owned(kib)
                    .await
                    .map_err(|_| s3_error!(ServiceUnavailable))?;
                let bytes = store
                    .get_range(&url, RECORD_LEN..info.size, info.e_tag.as_deref())
                    .await
                    .map_err(|e| to_s3(e.into()))?;
                Ok::<_, s3s::S3Error>((bytes, permit))
            }
        })
        .buffered(crate::reencrypt::READ_AHEAD);
    while let Some(item) = fetched.next().await {
        match item {
            Ok(chunk) => {
                if tx.send(Ok(chunk)).await.is_err() {
                    return Ok(()); // the writer stopped; its error is reported
                }
            }
            Err(e) => {
                let _ = tx
                    .send(Err(io::Error::other("reading a part failed")))
                    .await;
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The blocking side of [`read_ahead`].
struct Chunks {
    rx: tokio::sync::mpsc::Receiver<io::Result<(bytes::Bytes, tokio::sync::OwnedSemaphorePermit)>>,
    cur: bytes::Bytes,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok((b, p))) => {
                    self.cur = b;
                    self._permit = Some(p);
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        bytes::Buf::advance(&mut self.cur, n);
        Ok(n)
    }
}

enum Step {
    /// Frames fetched ahead, in order.
    Chunks(
        tokio::sync::mpsc::Receiver<io::Result<(bytes::Bytes, tokio::sync::OwnedSemaphorePermit)>>,
    ),
    /// Copy a direct part's frames.
    Copy(StoreUrl, ObjectInfo),
    /// Seal the plaintext (none: nothing) from sequence number `.1` on, with the final frame.
    Seal(Option<PipeReader>, u32),
}

/// The body of the completed message, read in order.
struct Assembly {
    store: Store,
    rt: tokio::runtime::Handle,
    transfer: hyok::store::Transfer,
    steps: VecDeque<Step>,
    cur: Option<Box<dyn Read + Send>>,
    sealer: Arc<DetachedMessage>,
}

impl Read for Assembly {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(r) = self.cur.as_mut() {
                let n = r.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.cur = None;
            }
            match self.steps.pop_front() {
                None => return Ok(0),
                Some(Step::Chunks(rx)) => {
                    self.cur = Some(Box::new(Chunks {
                        rx,
                        cur: bytes::Bytes::new(),
                        _permit: None,
                    }));
                }
                Some(Step::Copy(url, info)) => {
                    self.cur = Some(Box::new(self.store.reader(
                        &self.rt,
                        &url,
                        RECORD_LEN..info.size,
                        info.e_tag.clone(),
                        &self.transfer,
                    )));
                }
                Some(Step::Seal(src, seq)) => {
                    self.cur = Some(Box::new(Sealing {
                        src: src.map(|r| Box::new(r) as Box<dyn Read + Send>),
                        m: self.sealer.clone(),
                        seq,
                        out: Vec::new(),
                        pos: 0,
                        end: 0,
                        carry: None,
                        done: false,
                    }));
                }
            }
        }
    }
}

/// Seals plaintext as frames from `seq` on, the last one final.
struct Sealing {
    src: Option<Box<dyn Read + Send>>,
    m: Arc<DetachedMessage>,
    seq: u32,
    out: Vec<u8>,
    pos: usize,
    end: usize,
    carry: Option<u8>,
    done: bool,
}

impl Sealing {
    fn refill(&mut self) -> io::Result<()> {
        let fl = self.m.frame_len() as usize;
        let mut buf = vec![0u8; fl * BATCH_FRAMES];
        let mut got = 0;
        if let Some(b) = self.carry.take() {
            buf[0] = b;
            got = 1;
        }
        let mut is_final = true;
        if let Some(src) = self.src.as_mut() {
            got += read_full(src, &mut buf[got..])?;
            if got == buf.len() {
                let mut one = [0u8; 1];
                if read_full(src, &mut one)? == 1 {
                    self.carry = Some(one[0]);
                    is_final = false;
                }
            }
        }
        let k = self
            .m
            .seal_frames(
                &Parallelism::Global,
                self.seq,
                &buf[..got],
                is_final,
                &mut self.out,
            )
            .map_err(io::Error::other)?;
        self.seq += (got / fl) as u32;
        self.pos = 0;
        self.end = k;
        self.done = is_final;
        Ok(())
    }
}

impl Read for Sealing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.end {
            if self.done {
                return Ok(0);
            }
            self.refill()?;
        }
        let n = buf.len().min(self.end - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
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
        let b = r.encode();
        assert_eq!(b.len() as u64, RECORD_LEN);
        assert_eq!(Record::decode(&b), Some(r.clone()));
        assert_eq!(Record::decode(&b[..79]), None);
        let mut other = b.clone();
        other[0] = 2;
        assert_eq!(Record::decode(&other), None);
        assert_eq!(r.stored_len(), 80 + 128 * (65536 + 28));
    }

    #[test]
    fn sealing_ends_with_a_final_frame_even_on_a_boundary() {
        let (suite, _) = settings();
        let m = Arc::new(DetachedMessage::generate(suite, 16).unwrap());
        for len in [0usize, 16, 1024, 1024 + 5, 16 * BATCH_FRAMES] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut s = Sealing {
                src: Some(Box::new(io::Cursor::new(plain.clone()))),
                m: m.clone(),
                seq: 3,
                out: Vec::new(),
                pos: 0,
                end: 0,
                carry: None,
                done: false,
            };
            let mut out = Vec::new();
            s.read_to_end(&mut out).unwrap();
            let regular = len / 16;
            let last = len % 16;
            assert_eq!(out.len(), regular * (16 + 28) + last + 4 + 4 + 12 + 4 + 16);
            // The final frame's sequence number follows the regular ones.
            let at = regular * 44;
            assert_eq!(&out[at..at + 4], &u32::MAX.to_be_bytes());
            assert_eq!(&out[at + 4..at + 8], &(3 + regular as u32).to_be_bytes());
        }
    }
}
