//! Multipart uploads (see DESIGN.md, "S3 gateway: multipart").
//!
//! An upload lives in the backend, under the bucket's reserved prefix, as ESDK messages
//! only: `.hyok-gateway/uploads/ID/info` (empty body; its encryption context names the
//! target key, content type and user metadata) and one message per part,
//! `.hyok-gateway/uploads/ID/part-NNNNN`, each encrypted as it streams in, in any order and
//! in parallel. CompleteMultipartUpload decrypts the listed parts in order and re-encrypts
//! them into one message at the target key through a pipe (bounded memory), then deletes
//! the upload. Nothing of an upload is visible to listings before Complete; Abort (or a
//! failed Complete) leaves the target untouched. No state is kept in the process, so any
//! replica can serve any request of an upload.

use std::sync::atomic::{AtomicU64, Ordering};

use zeroize::Zeroizing;

use futures::StreamExt;
use hyok::EncryptionContext;
use hyok::Md5;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::access::Patterns;
use crate::authorize::Scope;
use crate::backend::RESERVED;
use crate::body::{self, Wanted};
use crate::direct;
use crate::inplace;
use crate::keepalive;
use crate::meta::{self, ObjectDesc, CTX_UPLOAD_KEY};
use crate::service::{join_error, to_s3, ts, Caller, Gateway};
use hyok::store::Prefix;

const MAX_PART: i32 = 10_000;
/// Parts described (or deleted) at once by a Complete.
const DESCRIBE_AHEAD: usize = 32;
/// Upload records read at once by ListMultipartUploads.
const LIST_AHEAD: usize = 16;
/// Most uploads ListMultipartUploads sorts into pages (a bound on its memory).
const MAX_LISTED_UPLOADS: usize = 10_000;

/// A new upload id: 128 bits from the process's random hasher keys, a counter and the
/// time. Unique, not secret (every request is authorized by the key it names).
pub(crate) fn new_upload_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut out = String::with_capacity(32);
    for round in 0..2u8 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u8(round);
        h.write_u64(n);
        h.write_u128(now);
        h.write_u32(std::process::id());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

pub(crate) fn check_id(id: &str) -> S3Result<()> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(s3_error!(NoSuchUpload))
    }
}

pub(crate) fn upload_dir(id: &str) -> String {
    format!("{RESERVED}uploads/{id}/")
}

fn info_key(id: &str) -> String {
    format!("{}info", upload_dir(id))
}

pub(crate) fn part_key(id: &str, n: i32) -> String {
    format!("{}part-{n:05}", upload_dir(id))
}

/// A staged part's ETag: the MD5 in its context, or else (the client sent a flexible
/// checksum) its message id's first 16 bytes (fixed when the part was encrypted, read from
/// its header without a key).
fn part_etag(d: &ObjectDesc) -> String {
    d.etag.trim_end_matches("-1").to_owned()
}

/// The upload's description, checked against the key the client names.
async fn load(g: &Gateway, bucket: &str, key: &str, id: &str) -> S3Result<ObjectDesc> {
    load_prefix(g, bucket, key, id, false).await.map(|(_, d)| d)
}

/// As [`load`], keeping the bytes read: the whole `info` (it is small), from which the
/// upload's message is restored without reading it again. With `remember` (UploadPart), a
/// record this replica read before is confirmed with a HEAD instead of read again
/// (`described.rs` says why), and a record read is kept; one gone or changed is read again
/// (gone: NoSuchUpload, as before).
async fn load_prefix(
    g: &Gateway,
    bucket: &str,
    key: &str,
    id: &str,
    remember: bool,
) -> S3Result<(Prefix, ObjectDesc)> {
    check_id(id)?;
    let store = g.backend.store(bucket)?;
    let info = info_key(id);
    let url = g.backend.object_url(bucket, &info)?;
    let kept = if remember {
        g.confirmed(&store, &url, bucket, &info).await?
    } else {
        None
    };
    let (p, d) = match kept {
        Some(kept) => kept,
        None => {
            let (p, d) = g
                .describe_prefix(&store, &url, meta::HEADER_PREFIX)
                .await?
                .ok_or_else(|| s3_error!(NoSuchUpload))?;
            if remember {
                g.described.insert(bucket, &info, p.clone(), d.clone());
            }
            (p, d)
        }
    };
    if d.context.get(CTX_UPLOAD_KEY) == Some(key) {
        Ok((p, d))
    } else {
        Err(s3_error!(NoSuchUpload))
    }
}

/// Start an upload; returns its id.
async fn start(
    g: &Gateway,
    caller: &Caller,
    bucket: &str,
    key: &str,
    attrs: &meta::Attributes,
    direct: bool,
) -> S3Result<String> {
    let id = new_upload_id();
    let mut ctx = meta::object_context(attrs, None);
    ctx.insert(CTX_UPLOAD_KEY, key);
    // Direct parts: the upload's data key and message id, kept in the info's body.
    let body = match direct.then(|| direct::new_message(g)).flatten() {
        Some(m) => {
            ctx.insert(direct::CTX_DIRECT, "1");
            direct::key_body(&m)
        }
        None => Zeroizing::new(Vec::new()),
    };
    // Parts in place (S3 backends): the backend upload they go into.
    let store = g.backend.store(bucket)?;
    let body_url = g.backend.object_url(bucket, &inplace::body_key(&id))?;
    let backend_upload = if ctx.get(direct::CTX_DIRECT).is_some()
        && g.parts_in_place
        && store.has_numbered_parts()
    {
        let pairs = inplace::begin(&store, &body_url).await?;
        let id = pairs[0].1.clone();
        for (k, v) in pairs {
            ctx.insert(k, v);
        }
        Some(id)
    } else {
        None
    };
    let len = body.len() as u64;
    let stored = g
        .store_object(
            caller,
            bucket,
            &info_key(&id),
            Box::new(std::io::Cursor::new(body)),
            Some(len),
            ctx,
            None,
        )
        .await;
    if let (Err(_), Some(b)) = (&stored, &backend_upload) {
        let _ = store.abort_numbered(&body_url, b).await;
    }
    stored?;
    Ok(id)
}

/// Encrypt one part as it streams in; returns its ETag and plaintext MD5 (when
/// `wanted.etag_md5` or a Content-MD5 asked for it).
#[allow(clippy::too_many_arguments)]
async fn store_part(
    g: &Gateway,
    caller: &Caller,
    bucket: &str,
    id: &str,
    n: i32,
    body: StreamingBlob,
    wanted: Wanted,
    trailers: Option<s3s::TrailingHeaders>,
    len: u64,
) -> S3Result<(String, Option<[u8; 16]>)> {
    let key = part_key(id, n);
    store_staged(g, caller, bucket, &key, body, wanted, trailers, len, None).await
}

/// Encrypt a body as its own message at `key` (with `etag` in its context, when known
/// before the body); returns its ETag and plaintext MD5 (when `wanted.etag_md5` or a
/// Content-MD5 asked for it).
#[allow(clippy::too_many_arguments)]
async fn store_staged(
    g: &Gateway,
    caller: &Caller,
    bucket: &str,
    key: &str,
    body: StreamingBlob,
    wanted: Wanted,
    trailers: Option<s3s::TrailingHeaders>,
    len: u64,
    etag: Option<&str>,
) -> S3Result<(String, Option<[u8; 16]>)> {
    let mut ctx = EncryptionContext::new();
    if let Some(e) = etag {
        ctx.insert(meta::CTX_ETAG, e);
    }
    let (reader, pump) = body::pump(body, wanted, trailers, Some(len))?;
    let stored = g.store_object(caller, bucket, key, Box::new(reader), Some(len), ctx, None);
    let (stored, pumped) = tokio::join!(stored, pump);
    let measured = pumped.map_err(join_error)??;
    stored?;
    let store = g.backend.store(bucket)?;
    let url = g.backend.object_url(bucket, key)?;
    let (_, d) = g
        .describe(&store, &url)
        .await?
        .ok_or_else(|| s3_error!(InternalError, "a stored part vanished"))?;
    Ok((part_etag(&d), measured.md5))
}

/// Delete everything of an upload (`info`: its description, when it was read).
async fn remove(g: &Gateway, bucket: &str, id: &str, info: Option<&ObjectDesc>) -> S3Result<()> {
    remove_listed(g, bucket, id, info, None).await
}

/// Every object of upload `id` (its folder, listed).
pub(crate) async fn upload_objects(
    g: &Gateway,
    bucket: &str,
    id: &str,
) -> S3Result<Vec<hyok::store::StoreUrl>> {
    let store = g.backend.store(bucket)?;
    let dir = g.backend.object_url(bucket, &upload_dir(id))?.as_folder();
    let mut list = store.list(&dir);
    let mut urls = Vec::new();
    while let Some(item) = list.next().await {
        urls.push(item.map_err(|e| to_s3(e.into()))?.url);
    }
    Ok(urls)
}

/// As [`remove`]; `listed`: the upload's objects, listed once nothing more of it was to be
/// written but the staging object, which the list includes (a Complete from parts in place
/// lists them while the backend assembles them; its backend upload is then finished).
async fn remove_listed(
    g: &Gateway,
    bucket: &str,
    id: &str,
    info: Option<&ObjectDesc>,
    listed: Option<Vec<hyok::store::StoreUrl>>,
) -> S3Result<()> {
    g.described.remove(bucket, &info_key(id));
    let store = g.backend.store(bucket)?;
    let urls = match listed {
        Some(urls) => urls,
        None => {
            if let Some(b) = info.and_then(|i| i.context.get(inplace::CTX_PARTS_UPLOAD)) {
                // Gone already when a Complete finished it.
                let body = g.backend.object_url(bucket, &inplace::body_key(id))?;
                let _ = store.abort_numbered(&body, b).await;
            }
            upload_objects(g, bucket, id).await?
        }
    };
    let root = g.backend.bucket_url(bucket)?;
    // One DeleteObjects per 1,000 keys on S3 (an upload leaves about three per part).
    let deleted = store.delete_all(urls).await.map_err(|e| to_s3(e.into()))?;
    for url in deleted {
        // Claims sit in folders of their own (a local folder keeps them).
        if let Some(key) = url.key().strip_prefix(root.key()) {
            g.backend.prune(bucket, key);
        }
    }
    g.backend.prune(bucket, &info_key(id));
    Ok(())
}

pub(crate) async fn create(
    g: &Gateway,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let i = req.input;
    let caller = g.authorize_bucket(&req.credentials, &i.bucket, "upload", Scope::Write(&i.key))?;
    g.decide(&caller, hyok::policy::Action::Put, &i.bucket, &i.key)?;
    g.backend.require_bucket(&i.bucket).await?;
    crate::refuse::object_lock!(i)?;
    crate::refuse::sse_c(i.sse_customer_algorithm.as_deref())?;
    let attrs = meta::attributes_of!(i);
    attrs.check()?;
    let id = start(g, &caller, &i.bucket, &i.key, &attrs, true).await?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        server_side_encryption: crate::service::at_rest(),
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(id),
        ..Default::default()
    }))
}

pub(crate) async fn upload_part(
    g: &Gateway,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let announced_trailer = body::trailer_checksum(&req.headers);
    let headers = req.headers;
    let mut i = req.input;
    let caller = g.authorize_bucket(&req.credentials, &i.bucket, "upload", Scope::Write(&i.key))?;
    let mut trailers = req.trailing_headers;
    crate::refuse::sse_c(i.sse_customer_algorithm.as_deref())?;
    if !(1..=MAX_PART).contains(&i.part_number) {
        return Err(s3_error!(InvalidArgument, "part numbers are 1 to 10000"));
    }
    let len = body::upload_len(i.content_length, &headers)?;
    let mut wanted = body::wanted_of!(i);
    // The part's ETag is the MD5 of its plaintext, as S3's for an unencrypted or SSE-S3 part
    // (s3cmd and the AWS SDK for Java 1.x compare it with their own after every part),
    // unless the client sent a flexible checksum, which it checks instead (current aws cli,
    // boto3 and SDKs): computing an MD5 no one reads was the gateway's largest single cost.
    let md5_etag = !(wanted.flexible() || announced_trailer);
    // The MD5 of the body, once known (Content-MD5, or measured by the pump).
    let mut known_md5 = wanted.md5()?;
    let mut body = Some(i.body.take().ok_or_else(|| s3_error!(IncompleteBody))?);
    let fl = u64::from(hyok::Settings::default().encrypt.frame_length);
    // Parts under S3's smallest part size can only be last parts: never in place nor
    // claimed (their claims would only make the other parts fall back).
    let whole_frames = len >= inplace::MIN_PART && len % fl == 0;
    let store = g.backend.store(&i.bucket)?;
    let dir = g
        .backend
        .object_url(&i.bucket, &upload_dir(&i.upload_id))?
        .as_folder();
    let info_url = g.backend.object_url(&i.bucket, &info_key(&i.upload_id))?;
    let claim_id = new_upload_id();
    // The claims and the upload's message, for a part that may be sealed in place.
    let claim = |info: ObjectDesc, prefix: Option<Prefix>| {
        let store = store.clone();
        let (dir, info_url, claim_id) = (dir.clone(), info_url.clone(), claim_id.clone());
        let (caller, bucket, n, upload_id) = (&caller, &i.bucket, i.part_number, &i.upload_id);
        async move {
            let (claimed, message) = tokio::join!(
                crate::claims::claim_part(&store, &dir, n, len, &claim_id),
                direct::restore(g, caller, bucket, info_url, prefix)
            );
            let claimed = claimed?;
            if !claimed {
                // A local folder keeps the emptied claim folder otherwise.
                let dir_key = upload_dir(upload_id);
                g.backend
                    .prune(bucket, &format!("{dir_key}claims/{n:05}/{claim_id}"));
                g.backend
                    .prune(bucket, &format!("{dir_key}sizes/{len}/{claim_id}"));
            }
            Ok::<_, s3s::S3Error>((info, Some((claimed, message))))
        }
    };
    // A part that can go in place is received while the upload is looked up and the part
    // claimed (they are round trips to the backend; the body is the client's). Once the
    // claims win, it is sealed and streamed to the backend as it arrives.
    let mut plain = None;
    let mut loaded = None;
    let (info, claimed) = if whole_frames
        && g.direct_parts
        && g.parts_in_place
        && inplace::fits(i.part_number, len)
        && store.has_numbered_parts()
    {
        // Memory for the plaintext and its sealed frames.
        let permit = g.reserve_memory(inplace::memory_for(len)).await?;
        wanted.etag_md5 = md5_etag;
        let (mut reader, pump) = body::pump(
            body.take().ok_or_else(|| s3_error!(IncompleteBody))?,
            std::mem::take(&mut wanted),
            trailers.take(),
            Some(len),
        )?;
        let (decide, decided) = std::sync::mpsc::sync_channel(1);
        let (frames_tx, frames_rx) = tokio::sync::mpsc::channel(8);
        let recv = tokio::task::spawn_blocking(move || {
            inplace::receive(&mut reader, len, decided, frames_tx)
        });
        let number = u32::try_from(i.part_number).map_err(|_| s3_error!(InvalidArgument))?;
        let body_url = g
            .backend
            .object_url(&i.bucket, &inplace::body_key(&i.upload_id))?;
        let look = async {
            // Owned by this block, so that it is dropped when the block ends, an early error
            // included: the receiver then stops waiting for a decision (it waited for ever).
            let decide = decide;
            let (prefix, info) = load_prefix(g, &i.bucket, &i.key, &i.upload_id, true).await?;
            let (info, claimed) = if info.context.get(inplace::CTX_PARTS_UPLOAD).is_some()
                && info.context.get(direct::CTX_DIRECT).is_some()
            {
                claim(info, Some(prefix)).await?
            } else {
                (info, None)
            };
            let Some((true, message)) = claimed else {
                let _ = decide.send(None);
                return Ok((info, Err(claimed)));
            };
            let message = message?;
            let record =
                direct::Record::for_part(&message, i.part_number, len, claim_etag(&claim_id)?)?;
            let backend_upload = info
                .context
                .get(inplace::CTX_PARTS_UPLOAD)
                .ok_or_else(|| s3_error!(InternalError, "the upload's record is damaged"))?
                .to_owned();
            if decide.send(Some((message, record.clone()))).is_err() {
                return Err(s3_error!(InternalError));
            }
            let frames = futures::stream::unfold(frames_rx, |mut rx| async move {
                rx.recv().await.map(|c| (c, rx))
            });
            let streamed = store
                .put_numbered_stream(
                    &body_url,
                    &backend_upload,
                    number,
                    inplace::sealed_len(len),
                    frames,
                )
                .await;
            Ok((info, Ok((record, backend_upload, streamed))))
        };
        let (recv, pumped, looked) = tokio::join!(recv, pump, look);
        let measured = pumped.map_err(join_error)??;
        known_md5 = known_md5.or(measured.md5);
        let received = recv
            .map_err(join_error)?
            .map_err(|_| s3_error!(IncompleteBody))?;
        let (info, outcome) = looked?;
        match (outcome, received) {
            (Ok((mut record, backend_upload, streamed)), inplace::Received::Sealed(sealed)) => {
                if let Some(md5) = known_md5 {
                    record.etag = md5;
                }
                let etag = inplace::finish_part(
                    g,
                    &i.bucket,
                    &i.upload_id,
                    &backend_upload,
                    i.part_number,
                    record,
                    streamed,
                    sealed,
                )
                .await?;
                drop(permit);
                return Ok(S3Response::new(UploadPartOutput {
                    server_side_encryption: crate::service::at_rest(),
                    e_tag: Some(ETag::Strong(etag)),
                    ..Default::default()
                }));
            }
            (Err(claimed), inplace::Received::Plain(v)) => {
                plain = Some((v, permit));
                (info, claimed)
            }
            _ => return Err(s3_error!(InternalError, "a part was both sealed and not")),
        }
    } else if whole_frames
        && g.direct_parts
        && g.parts_in_place
        && inplace::fits_streamed(i.part_number, len)
        && store.has_numbered_parts()
    {
        // A part too large to hold while its claims are decided: claimed first, then, if
        // the claims win, streamed in place with bounded memory.
        let (prefix, info) = load_prefix(g, &i.bucket, &i.key, &i.upload_id, true).await?;
        match info
            .context
            .get(inplace::CTX_PARTS_UPLOAD)
            .map(str::to_owned)
        {
            Some(backend_upload) if info.context.get(direct::CTX_DIRECT).is_some() => {
                let (info, claimed) = claim(info, Some(prefix)).await?;
                match claimed {
                    Some((true, message)) => {
                        let etag = stream_in_place(
                            g,
                            &i.bucket,
                            &i.upload_id,
                            i.part_number,
                            message?,
                            backend_upload,
                            body.take().ok_or_else(|| s3_error!(IncompleteBody))?,
                            std::mem::take(&mut wanted),
                            trailers.take(),
                            len,
                            md5_etag,
                            known_md5,
                            claim_etag(&claim_id)?,
                        )
                        .await?;
                        return Ok(S3Response::new(UploadPartOutput {
                            server_side_encryption: crate::service::at_rest(),
                            e_tag: Some(ETag::Strong(etag)),
                            ..Default::default()
                        }));
                    }
                    claimed => (info, claimed),
                }
            }
            _ => {
                loaded = Some(prefix);
                (info, None)
            }
        }
    } else {
        let (prefix, info) = load_prefix(g, &i.bucket, &i.key, &i.upload_id, true).await?;
        loaded = Some(prefix);
        (info, None)
    };
    // Otherwise the body comes from memory (already checked) or from the client.
    if let Some((v, _)) = plain.take() {
        body = Some(StreamingBlob::wrap(futures::stream::iter([Ok::<
            _,
            std::io::Error,
        >(
            bytes::Bytes::from(v),
        )])));
    }
    let body = body.ok_or_else(|| s3_error!(IncompleteBody))?;
    let claimed = match claimed {
        Some(c) => Some(c),
        None if info.context.get(direct::CTX_DIRECT).is_some() && whole_frames => {
            claim(info.clone(), loaded.take()).await?.1
        }
        None => None,
    };
    if let Some((true, message)) = claimed {
        let etag = match known_md5 {
            Some(md5) => direct::PartEtag::Known(md5),
            None if md5_etag => direct::PartEtag::Md5,
            None => direct::PartEtag::Random(claim_etag(&claim_id)?),
        };
        let url = g
            .backend
            .object_url(&i.bucket, &part_key(&i.upload_id, i.part_number))?;
        let etag = direct::store_part(
            g,
            &i.bucket,
            url,
            message?,
            i.part_number,
            body,
            wanted,
            trailers,
            len,
            etag,
        )
        .await?;
        return Ok(S3Response::new(UploadPartOutput {
            server_side_encryption: crate::service::at_rest(),
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        }));
    }
    let key = part_key(&i.upload_id, i.part_number);
    let etag = match known_md5 {
        Some(md5) => {
            let md5 = hex::encode(md5);
            let stored = store_staged(
                g,
                &caller,
                &i.bucket,
                &key,
                body,
                wanted,
                trailers,
                len,
                Some(&md5),
            );
            stored.await?.0
        }
        None if md5_etag => {
            let (id, n) = (&i.upload_id, i.part_number);
            stage_md5(g, &caller, &i.bucket, id, n, body, wanted, trailers, len).await?
        }
        None => {
            let stored = store_staged(
                g, &caller, &i.bucket, &key, body, wanted, trailers, len, None,
            );
            stored.await?.0
        }
    };
    Ok(S3Response::new(UploadPartOutput {
        server_side_encryption: crate::service::at_rest(),
        e_tag: Some(ETag::Strong(etag)),
        ..Default::default()
    }))
}

/// Stage part `n`, whose ETag is the MD5 of its plaintext, known only at its end: first
/// as its own message at a key of its own, then re-encrypted into the part's key with the
/// MD5 in its context (the context is in the header, which precedes the body). Twice the
/// work, for parts that are neither sealed in place nor sent with a Content-MD5 or a
/// flexible checksum: a last part that is not a whole number of frames (s3cmd's), a part
/// whose claim lost.
#[allow(clippy::too_many_arguments)]
async fn stage_md5(
    g: &Gateway,
    caller: &Caller,
    bucket: &str,
    id: &str,
    n: i32,
    body: StreamingBlob,
    wanted: Wanted,
    trailers: Option<s3s::TrailingHeaders>,
    len: u64,
) -> S3Result<String> {
    // Not `part-…`: never taken for a part, and removed with the upload in any case.
    let first = format!("{}staging-{n:05}-{}", upload_dir(id), new_upload_id());
    let first_url = g.backend.object_url(bucket, &first)?;
    let res: S3Result<String> = async {
        let wanted = Wanted {
            etag_md5: true,
            ..wanted
        };
        let stored = store_staged(g, caller, bucket, &first, body, wanted, trailers, len, None);
        let (_, md5) = stored.await?;
        let etag = hex::encode(md5.ok_or_else(crate::service::no_md5)?);
        let mut ctx = EncryptionContext::new();
        ctx.insert(meta::CTX_ETAG, etag.as_str());
        let key = part_key(id, n);
        let src = vec![(first_url.clone(), len)];
        g.reencrypt(caller, bucket, src, bucket, &key, len, ctx, None, None)
            .await?;
        Ok(etag)
    }
    .await;
    let store = g.backend.store(bucket)?;
    let removed = store.delete(&first_url).await;
    g.backend.prune(bucket, &first);
    let etag = res?;
    removed.map_err(|e| to_s3(e.into()))?;
    Ok(etag)
}

/// A claim's random id as a part ETag.
fn claim_etag(claim_id: &str) -> S3Result<[u8; 16]> {
    hex::decode(claim_id)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| s3_error!(InternalError, "bad claim id"))
}

/// Part `n` of `len` bytes, whose claims won, streamed in place (`inplace::stream_part`):
/// sealed as it arrives and sent as backend part `n` with bounded memory; returns its ETag.
/// A backend failure fails the UploadPart (the client sends the part again, which is then
/// staged: its claim stays with this attempt).
#[allow(clippy::too_many_arguments)]
async fn stream_in_place(
    g: &Gateway,
    bucket: &str,
    upload_id: &str,
    n: i32,
    message: hyok::DetachedMessage,
    backend_upload: String,
    body: StreamingBlob,
    mut wanted: Wanted,
    trailers: Option<s3s::TrailingHeaders>,
    len: u64,
    md5_etag: bool,
    known_md5: Option<[u8; 16]>,
    claim_etag: [u8; 16],
) -> S3Result<String> {
    let _permit = g.reserve_memory(inplace::streamed_memory()).await?;
    let mut record = direct::Record::for_part(&message, n, len, claim_etag)?;
    wanted.etag_md5 = md5_etag;
    let (mut reader, pump) = body::pump(body, wanted, trailers, Some(len))?;
    let (frames_tx, frames_rx) = tokio::sync::mpsc::channel(8);
    let sealing = record.clone();
    let send = tokio::task::spawn_blocking(move || {
        inplace::stream_part(&mut reader, len, &message, &sealing, frames_tx)
    });
    let number = u32::try_from(n).map_err(|_| s3_error!(InvalidArgument))?;
    let body_url = g
        .backend
        .object_url(bucket, &inplace::body_key(upload_id))?;
    let store = g.backend.store(bucket)?;
    let frames = futures::stream::unfold(frames_rx, |mut rx| async move {
        rx.recv().await.map(|c| (c, rx))
    });
    let put = store.put_numbered_stream(
        &body_url,
        &backend_upload,
        number,
        inplace::sealed_len(len),
        frames,
    );
    let (sent, streamed, pumped) = tokio::join!(send, put, pump);
    // The client's faults first (length, checksums), then the backend's. A body that stopped
    // being read (InternalError) stopped because the backend request failed: its error.
    let measured = match pumped.map_err(join_error)? {
        Ok(m) => m,
        Err(e) if *e.code() == s3s::S3ErrorCode::InternalError => {
            streamed.map_err(|b| to_s3(b.into()))?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let backend_etag = streamed.map_err(|e| to_s3(e.into()))?;
    sent.map_err(join_error)?
        .map_err(|_| s3_error!(IncompleteBody))?;
    if let Some(md5) = known_md5.or(measured.md5) {
        record.etag = md5;
    }
    inplace::finish_part(
        g,
        bucket,
        upload_id,
        &backend_upload,
        n,
        record,
        Ok(backend_etag),
        Vec::new(),
    )
    .await
}

/// CompleteMultipartUpload. The work after the caller's checks runs in its own task,
/// answered as S3 answers a long Complete when it takes more than a moment (`keepalive.rs`),
/// one Complete of an upload at a time (`one_complete.rs`).
pub(crate) async fn complete(
    g: &std::sync::Arc<Gateway>,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let i = req.input;
    let caller = g.authorize_bucket(&req.credentials, &i.bucket, "upload", Scope::Write(&i.key))?;
    g.decide(&caller, hyok::policy::Action::Put, &i.bucket, &i.key)?;
    let gw = g.clone();
    let op = async move {
        let g = &*gw;
        // A retry of a Complete still running here waits for it (`one_complete.rs`).
        let _turn = g.completing.turn(&i.bucket, &i.upload_id).await;
        let (prefix, info) = match load_prefix(g, &i.bucket, &i.key, &i.upload_id, false).await {
            Ok(v) => v,
            Err(e) if *e.code() == s3s::S3ErrorCode::NoSuchUpload => {
                return completed_before(g, &caller, &i).await?.ok_or(e)
            }
            Err(e) => return Err(e),
        };
        let expected = expected_etag(&i);
        let pin = g
            .check_write(
                &i.bucket,
                &i.key,
                i.if_match.as_ref(),
                i.if_none_match.as_ref(),
            )
            .await?;
        let (bucket, key, id) = (i.bucket.clone(), i.key.clone(), i.upload_id.clone());
        let res = complete_upload(g, caller.clone(), i, info, prefix, pin).await;
        if res.is_err() {
            // A Complete that lost a race with another one that finished (and removed the
            // upload) may have written a claim after that removal: sweep it, so that
            // nothing but messages stays on the backend.
            let url = g.backend.object_url(&bucket, &info_key(&id))?;
            let store = g.backend.store(&bucket)?;
            if matches!(store.try_head(&url).await, Ok(None)) {
                let _ = remove(g, &bucket, &id, None).await;
                return match completed_as(g, &caller, &bucket, &key, expected).await? {
                    Some(done) => Ok(done),
                    None => Err(s3_error!(NoSuchUpload)),
                };
            }
        }
        res
    };
    let xml = |r: &S3Response<CompleteMultipartUploadOutput>| keepalive::element(&r.output);
    match keepalive::run(op, g.keepalive_after, xml).await {
        keepalive::Answer::Done(res) => res,
        keepalive::Answer::Later(pending) => {
            g.metrics.kept_alive();
            tracing::info!(
                "the Complete runs past {:?}: answered kept alive",
                g.keepalive_after
            );
            let mut r = S3Response::new(CompleteMultipartUploadOutput {
                server_side_encryption: crate::service::at_rest(),
                ..Default::default()
            });
            r.extensions.insert(pending);
            Ok(r)
        }
    }
}

/// The ETag an upload completed from the listed parts gets: MD5 of the parts' ETags, dash,
/// their count (`None` when the list is empty or an ETag is not 16 bytes of hex).
fn expected_etag(i: &CompleteMultipartUploadInput) -> Option<String> {
    let parts = i.multipart_upload.as_ref()?.parts.as_ref()?;
    if parts.is_empty() {
        return None;
    }
    let mut digest = Md5::new().ok()?;
    for p in parts {
        let e = p.e_tag.as_ref()?;
        let raw = hex::decode(e.value().trim_matches('"')).ok()?;
        if raw.len() != 16 {
            return None;
        }
        digest.update(&raw);
    }
    Some(format!(
        "{}-{}",
        hex::encode(digest.finish().ok()?),
        parts.len()
    ))
}

/// A Complete of an upload that is gone: if the key holds the object these parts make (its
/// ETag is theirs), the upload was completed before — by this request's first attempt,
/// whose answer the client did not get (a timeout on a long Complete, a dropped
/// connection), or by a concurrent one. S3 answers such a retry with success; so does the
/// gateway. Anything else stays NoSuchUpload. The comparison tells the caller something
/// about the object, so it is made only for a caller the policy lets read it.
async fn completed_before(
    g: &Gateway,
    caller: &Caller,
    i: &CompleteMultipartUploadInput,
) -> S3Result<Option<S3Response<CompleteMultipartUploadOutput>>> {
    completed_as(g, caller, &i.bucket, &i.key, expected_etag(i)).await
}

async fn completed_as(
    g: &Gateway,
    caller: &Caller,
    bucket: &str,
    key: &str,
    expected: Option<String>,
) -> S3Result<Option<S3Response<CompleteMultipartUploadOutput>>> {
    let Some(expected) = expected else {
        return Ok(None);
    };
    if g.decide(caller, hyok::policy::Action::Get, bucket, key)
        .is_err()
    {
        return Ok(None);
    }
    let store = g.backend.store(bucket)?;
    let url = g.backend.object_url(bucket, key)?;
    let Some((_, d)) = g.describe(&store, &url).await? else {
        return Ok(None);
    };
    Ok((d.etag == expected).then(|| {
        S3Response::new(CompleteMultipartUploadOutput {
            server_side_encryption: crate::service::at_rest(),
            bucket: Some(bucket.to_owned()),
            key: Some(key.to_owned()),
            e_tag: Some(ETag::Strong(expected)),
            ..Default::default()
        })
    }))
}

/// Complete an upload whose caller is authorized and whose `info` was read (`prefix`: its
/// bytes, from which the upload's message is restored without reading it again). `pin`:
/// the backend condition of the request's `If-Match` / `If-None-Match`, which every path
/// writes the object under (direct frames, parts in place, re-encryption).
async fn complete_upload(
    g: &Gateway,
    caller: std::sync::Arc<Caller>,
    i: CompleteMultipartUploadInput,
    info: ObjectDesc,
    prefix: Prefix,
    pin: Option<hyok::store::Precondition>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let parts = i
        .multipart_upload
        .and_then(|m| m.parts)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| s3_error!(MalformedXML, "no parts listed"))?;
    let store = g.backend.store(&i.bucket)?;
    let mut listed = Vec::with_capacity(parts.len());
    let mut digest = Md5::new().map_err(body::md5_failed)?;
    let mut total = 0u64;
    let mut prev = 0;
    let mut urls = Vec::with_capacity(parts.len());
    for p in &parts {
        let n = p.part_number.unwrap_or(0);
        if n <= prev {
            return Err(s3_error!(InvalidPartOrder));
        }
        prev = n;
        urls.push((
            n,
            g.backend
                .object_url(&i.bucket, &part_key(&i.upload_id, n))?,
        ));
    }
    // The parts' descriptions, DESCRIBE_AHEAD at a time (one small GET each).
    let mut described = futures::stream::iter(urls)
        .map(|(n, url)| {
            let store = store.clone();
            async move {
                let d = direct::describe_part(g, &store, &url).await?;
                Ok::<_, s3s::S3Error>((n, url, d))
            }
        })
        .buffered(DESCRIBE_AHEAD);
    for (at, p) in parts.iter().enumerate() {
        let Some(item) = described.next().await else {
            break;
        };
        let (n, url, d) = item?;
        let Some((info, desc)) = d else {
            return Err(s3_error!(InvalidPart, "part {n} was not uploaded"));
        };
        let etag = desc.etag();
        let given = p.e_tag.as_ref().map(|e| e.value().trim_matches('"'));
        if given.is_some_and(|e| e != etag) {
            return Err(s3_error!(InvalidPart, "part {n}'s ETag does not match"));
        }
        // As on S3: every part but the last is at least 5 MiB.
        if at + 1 < parts.len() && desc.size() < inplace::MIN_PART {
            return Err(s3_error!(
                EntityTooSmall,
                "part {n} is {} bytes; every part but the last must be at least 5 MiB",
                desc.size()
            ));
        }
        digest.update(&hex::decode(&etag).unwrap_or_default());
        total += desc.size();
        listed.push(direct::Listed { n, url, info, desc });
    }
    drop(described);
    let etag = format!(
        "{}-{}",
        hex::encode(digest.finish().map_err(body::md5_failed)?),
        parts.len()
    );
    let ctx = meta::object_context(&info.attrs, Some(&etag));
    let any_direct = listed
        .iter()
        .any(|p| matches!(p.desc, direct::PartDesc::Direct(_)));
    let any_in_place = listed
        .iter()
        .any(|p| matches!(p.desc, direct::PartDesc::InPlace(_)));
    let mut opener = None;
    let mut done = false;
    // The upload's objects, when a Complete listed them already.
    let mut leftovers = None;
    // Parts sealed in place need the upload's message (its data key and message id).
    let message = if any_in_place || any_direct {
        if info.context.get(direct::CTX_DIRECT).is_none() {
            return Err(s3_error!(InternalError, "a stored part is damaged"));
        }
        let info_url = g.backend.object_url(&i.bucket, &info_key(&i.upload_id))?;
        Some(direct::restore(g, &caller, &i.bucket, info_url, Some(prefix)).await?)
    } else {
        None
    };
    if let (true, Some(message)) = (any_in_place, &message) {
        let (Some(backend_upload), Some(filler)) = (
            info.context.get(inplace::CTX_PARTS_UPLOAD),
            info.context.get(inplace::CTX_FILLER_ETAG),
        ) else {
            return Err(s3_error!(InternalError, "a stored part is damaged"));
        };
        let completed = inplace::complete(
            g,
            &caller,
            &i.bucket,
            &i.key,
            &i.upload_id,
            backend_upload,
            message,
            &listed,
            ctx.clone(),
            total,
            pin.as_ref(),
        )
        .await?;
        done = completed.is_some();
        leftovers = completed.flatten();
        if !done {
            let layout =
                inplace::layout(g, &i.bucket, &i.upload_id, backend_upload, filler, &listed)
                    .await?;
            opener = Some(
                direct::Opener::new(direct::duplicate(message)?, &listed).with_in_place(layout),
            );
        }
    } else if let Some(message) = &message {
        let dir = g
            .backend
            .object_url(&i.bucket, &upload_dir(&i.upload_id))?
            .as_folder();
        done = direct::complete(
            g,
            &caller,
            &i.bucket,
            &i.key,
            &dir,
            message,
            &listed,
            ctx.clone(),
            total,
            pin.as_ref(),
        )
        .await?;
        if !done {
            opener = Some(direct::Opener::new(direct::duplicate(message)?, &listed));
        }
    }
    if !done {
        let sources = listed
            .iter()
            .map(|p| (p.url.clone(), p.desc.size()))
            .collect();
        g.reencrypt(
            &caller, &i.bucket, sources, &i.bucket, &i.key, total, ctx, opener, pin,
        )
        .await?;
    }
    remove_listed(g, &i.bucket, &i.upload_id, Some(&info), leftovers).await?;
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        server_side_encryption: crate::service::at_rest(),
        bucket: Some(i.bucket),
        key: Some(i.key),
        e_tag: Some(ETag::Strong(etag)),
        ..Default::default()
    }))
}

pub(crate) async fn abort(
    g: &Gateway,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let i = req.input;
    g.authorize_bucket(&req.credentials, &i.bucket, "upload", Scope::Read(&i.key))?;
    let info = load(g, &i.bucket, &i.key, &i.upload_id).await?;
    remove(g, &i.bucket, &i.upload_id, Some(&info)).await?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub(crate) async fn list_parts(
    g: &Gateway,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let i = req.input;
    g.authorize_bucket(&req.credentials, &i.bucket, "upload", Scope::Read(&i.key))?;
    load(g, &i.bucket, &i.key, &i.upload_id).await?;
    let store = g.backend.store(&i.bucket)?;
    let dir = g.backend.object_url(&i.bucket, &upload_dir(&i.upload_id))?;
    let mut found = Vec::new();
    let mut list = store.list(&dir.as_folder());
    while let Some(item) = list.next().await {
        let info = item.map_err(|e| to_s3(e.into()))?;
        let n = info
            .url
            .file_name()
            .and_then(|f| f.strip_prefix("part-"))
            .and_then(|n| n.parse::<i32>().ok());
        if let Some(n) = n {
            found.push((n, info));
        }
    }
    found.sort_by_key(|(n, _)| *n);
    let marker = i.part_number_marker.unwrap_or(0);
    let max = usize::try_from(i.max_parts.unwrap_or(1000).clamp(1, 1000)).unwrap_or(1000);
    let rest: Vec<_> = found.into_iter().filter(|(n, _)| *n > marker).collect();
    let truncated = rest.len() > max;
    let mut parts = Vec::new();
    for (n, info) in rest.into_iter().take(max) {
        let Some((info, d)) = direct::describe_part(g, &store, &info.url).await? else {
            continue;
        };
        parts.push(Part {
            part_number: Some(n),
            size: Some(i64::try_from(d.size()).unwrap_or(i64::MAX)),
            e_tag: Some(ETag::Strong(d.etag())),
            last_modified: Some(ts(info.last_modified)),
            ..Default::default()
        });
    }
    let next = parts.last().and_then(|p| p.part_number);
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(i.upload_id),
        max_parts: Some(i32::try_from(max).unwrap_or(1000)),
        is_truncated: Some(truncated),
        next_part_number_marker: if truncated { next } else { None },
        parts: Some(parts),
        ..Default::default()
    }))
}

pub(crate) async fn list_uploads(
    g: &Gateway,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let i = req.input;
    let prefix = i.prefix.clone().unwrap_or_default();
    let caller = g.authorize_bucket(
        &req.credentials,
        &i.bucket,
        "list uploads",
        Scope::List(&prefix),
    )?;
    g.backend.require_bucket(&i.bucket).await?;
    let store = g.backend.store(&i.bucket)?;
    let dir = g
        .backend
        .object_url(&i.bucket, &format!("{RESERVED}uploads/"))?
        .as_folder();
    // One level: the upload folders (`ID/`), not every part and claim under them; then each
    // upload's `info` header, a few at a time.
    let ids: Vec<String> = crate::claims::names_in(&store, &dir)
        .await?
        .into_iter()
        .filter_map(|n| n.strip_suffix('/').map(str::to_owned))
        .filter(|id| check_id(id).is_ok())
        .collect();
    let mut uploads = Vec::new();
    let mut infos = futures::stream::iter(ids)
        .map(|id| {
            let (store, bucket) = (&store, i.bucket.as_str());
            async move {
                let url = g.backend.object_url(bucket, &info_key(&id))?;
                // An upload being created or aborted has no (whole) info: not listed.
                let described = g
                    .describe_prefix(store, &url, meta::HEADER_PREFIX)
                    .await
                    .ok()
                    .flatten();
                Ok::<_, s3s::S3Error>(described.map(|(p, d)| (id, p, d)))
            }
        })
        .buffered(LIST_AHEAD);
    while let Some(item) = infos.next().await {
        let Some((id, p, d)) = item? else {
            continue;
        };
        let Some(key) = d.context.get(CTX_UPLOAD_KEY).map(str::to_owned) else {
            continue;
        };
        if !key.starts_with(&prefix) || !caller.patterns.object(&i.bucket, &key) {
            continue;
        }
        uploads.push((key, id, p.info.last_modified));
        if uploads.len() >= MAX_LISTED_UPLOADS {
            break;
        }
    }
    drop(infos);
    uploads.sort();
    let marker = i.key_marker.clone().unwrap_or_default();
    // With an upload-id-marker, the marker key's uploads after that id follow too (S3's
    // rule; uploads of one key are in id order here), so a key with uploads on two pages
    // loses none.
    let id_marker = i.upload_id_marker.clone().filter(|_| !marker.is_empty());
    let max = usize::try_from(i.max_uploads.unwrap_or(1000).clamp(1, 1000)).unwrap_or(1000);
    let rest: Vec<_> = uploads
        .into_iter()
        .filter(|(k, id, _)| {
            marker.is_empty()
                || k.as_str() > marker.as_str()
                || (k == &marker && id_marker.as_deref().is_some_and(|m| id.as_str() > m))
        })
        .collect();
    let truncated = rest.len() > max;
    let page: Vec<_> = rest.into_iter().take(max).collect();
    let next = page.last().map(|(k, id, _)| (k.clone(), id.clone()));
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(i.bucket),
        prefix: Some(prefix),
        max_uploads: Some(i32::try_from(max).unwrap_or(1000)),
        is_truncated: Some(truncated),
        next_key_marker: next.as_ref().filter(|_| truncated).map(|n| n.0.clone()),
        next_upload_id_marker: next.filter(|_| truncated).map(|n| n.1),
        uploads: Some(
            page.into_iter()
                .map(|(key, id, t)| MultipartUpload {
                    key: Some(key),
                    upload_id: Some(id),
                    initiated: Some(ts(t)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

/// A large single PUT without Content-MD5: stage it as a one-part upload (its MD5 is known
/// only at its end), then re-encrypt it into the target with the MD5 as ETag.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn put_staged(
    g: &Gateway,
    caller: &Caller,
    bucket: &str,
    key: &str,
    body: StreamingBlob,
    wanted: Wanted,
    trailers: Option<s3s::TrailingHeaders>,
    len: u64,
    attrs: meta::Attributes,
    pin: Option<hyok::store::Precondition>,
) -> S3Result<String> {
    let id = start(g, caller, bucket, key, &attrs, false).await?;
    let res: S3Result<String> = async {
        let wanted = Wanted {
            etag_md5: true,
            ..wanted
        };
        let (_, md5) = store_part(g, caller, bucket, &id, 1, body, wanted, trailers, len).await?;
        let etag = hex::encode(md5.ok_or_else(crate::service::no_md5)?);
        let ctx = meta::object_context(&attrs, Some(&etag));
        let src = g.backend.object_url(bucket, &part_key(&id, 1))?;
        g.reencrypt(
            caller,
            bucket,
            vec![(src, len)],
            bucket,
            key,
            len,
            ctx,
            None,
            pin,
        )
        .await?;
        Ok(etag)
    }
    .await;
    let cleaned = remove(g, bucket, &id, None).await;
    let etag = res?;
    cleaned?;
    Ok(etag)
}
