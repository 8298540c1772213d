//! The S3 operations. Every request is signed (s3s checks SigV4, header or presigned, and
//! decodes aws-chunked bodies); each handler first finds the caller's credential and checks
//! its bucket patterns, then works on the backend through `hyok::objects`, whose key uses
//! are audited with the credential's access key id as the actor.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::StreamExt;
use hyok::objects::{prefix_len, ByteRange, Objects, Source};
use hyok::store::{ObjectInfo, Prefix, Store, StoreUrl, Transfer};
use hyok::{EncryptionContext, ErrorClass, HeaderLimits, Session, Settings};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, S3};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use crate::access::{Pattern, Patterns};
use crate::authorize::Scope;
use crate::backend::{Backend, RESERVED};
use crate::body::{self, Wanted};
use crate::encoding::Encoding;
use crate::meta::{self, ObjectDesc};
use crate::metrics::Metrics;
use crate::pager::{past, Pager, Query, Step};

/// Bodies up to this size are read into memory, so that their MD5 (the ETag) is known
/// before the header is written; larger ones stream (see DESIGN.md).
pub(crate) const SMALL_BODY: u64 = 8 * 1024 * 1024;
/// Memory all in-memory bodies may use at once, in KiB permits.
pub(crate) const SMALL_BODY_BUDGET_KIB: usize = 256 * 1024;
/// Backend parts (8 MiB) a GET of a whole object fetches ahead of its client: a client that
/// reads slowly holds at most these, two more in the reader's channel and the one being
/// read (40 MiB), and none of the parts-in-flight cap shared by all requests.
pub(crate) const GET_AHEAD: usize = 2;

/// One credential as the server uses it.
pub(crate) struct Caller {
    /// Access key id.
    pub(crate) id: String,
    /// The keyring's name (as `/health` reports it).
    pub(crate) keyring: String,
    /// Bucket patterns.
    pub(crate) patterns: Vec<Pattern>,
    /// The session over the credential's keyring.
    pub(crate) session: Arc<Session>,
}

/// Shared state of the gateway.
pub(crate) struct Gateway {
    pub(crate) backend: Backend,
    pub(crate) callers: HashMap<String, Arc<Caller>>,
    pub(crate) transfer: Transfer,
    pub(crate) rt: Handle,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) memory: Arc<Semaphore>,
    pub(crate) limits: HeaderLimits,
    /// Places for S3 requests in flight (`[gateway] max_requests`).
    pub(crate) requests: Arc<Semaphore>,
    /// How long a client may keep the gateway waiting (`[gateway] idle_timeout`, `stall.rs`).
    pub(crate) idle_timeout: std::time::Duration,
    /// How long a Complete may run before its answer starts (`[gateway] keepalive_after`).
    pub(crate) keepalive_after: std::time::Duration,
    /// The last `/health` answer.
    pub(crate) health: crate::health::HealthCache,
    /// Seal equal multipart parts in place ("direct frames", `direct.rs`).
    pub(crate) direct_parts: bool,
    pub(crate) parts_in_place: bool,
    /// Descriptions of listed objects, reused while the listing shows the same entity tag
    /// and size (`listed.rs`).
    pub(crate) listed: crate::listed::Listed,
    /// Upload records this replica has read, confirmed later with a HEAD (`described.rs`).
    pub(crate) described: crate::described::Described,
    /// One Complete per upload at a time here (`one_complete.rs`).
    pub(crate) completing: crate::one_complete::OneComplete,
}

/// The S3 service over a [`Gateway`].
#[derive(Clone)]
pub(crate) struct GatewayS3(pub Arc<Gateway>);

/// A hyok error as an S3 error (its class decides the code; the text carries no secret).
pub(crate) fn to_s3(e: hyok::Error) -> S3Error {
    let class = e.class();
    let text = hyok::text::escape_str(&e.to_string());
    let conflict = matches!(e, hyok::Error::Store(hyok::store::Error::PathConflict(_)));
    let code = match class {
        ErrorClass::NotFound => S3ErrorCode::NoSuchKey,
        ErrorClass::Policy | ErrorClass::Denied => S3ErrorCode::AccessDenied,
        // None of the caller's keys may open the object (another keyring's object, a key
        // version retired for decryption): as S3 answers a GET of an SSE-KMS object whose
        // key the caller may not use, never a server error a client would retry.
        ErrorClass::WrongKey | ErrorClass::VersionTooOld => S3ErrorCode::AccessDenied,
        // The object's key refused its wrapped data key (damaged, or bound to another
        // context): reading it again gives the same answer.
        ErrorClass::UnwrapFailed => S3ErrorCode::InvalidObjectState,
        ErrorClass::Range => S3ErrorCode::InvalidRange,
        // A local folder's file system refused a name of the key as too long: the client's
        // to fix (400), not a server error a client would retry.
        ErrorClass::ObjectName
            if matches!(e, hyok::Error::Store(hyok::store::Error::NameTooLong(_))) =>
        {
            S3ErrorCode::KeyTooLongError
        }
        // Also a local folder that cannot hold `a` beside `a/b` (PathConflict).
        ErrorClass::ObjectName => S3ErrorCode::InvalidArgument,
        // A stored object that is no message this gateway can read (foreign bytes, a
        // damaged or moved object): not a server error a client would retry in vain.
        c if unreadable(c) => S3ErrorCode::InvalidObjectState,
        _ => S3ErrorCode::InternalError,
    };
    tracing::warn!(class = class.as_str(), "{text}");
    // Texts that name the gateway's keys or folders are for its log, not for clients.
    let told = if class == ErrorClass::WrongKey {
        "none of this credential's keys can open the object (it was written under another keyring)"
    } else if conflict {
        "this gateway's local-folder backend cannot hold both a key and keys under it as a folder (such as `a` and `a/b`)"
    } else {
        return S3Error::with_message(code, text);
    };
    S3Error::with_message(code, told)
}

/// Whether errors of this class mean that a stored object cannot be read as a message of
/// this gateway (its header does not parse or authenticate, it is cut short, or it is bound
/// to another bucket and key): reading it again gives the same answer.
pub(crate) fn unreadable(class: ErrorClass) -> bool {
    matches!(
        class,
        ErrorClass::Format
            | ErrorClass::HeaderAuth
            | ErrorClass::Tampered
            | ErrorClass::Truncated
            | ErrorClass::Context
            | ErrorClass::ObjectMoved
    )
}

/// What the backend shows of an object that is no message this gateway can read (`e` says
/// why; logged at `warn`).
fn stored_only(info: &ObjectInfo, key: &str, e: &hyok::Error) -> ObjectDesc {
    tracing::warn!(
        key = %hyok::text::escape_str(key),
        "an object that is no readable message: {}",
        hyok::text::escape_str(&e.to_string())
    );
    meta::stored_only(info)
}

pub(crate) fn join_error(e: tokio::task::JoinError) -> S3Error {
    s3_error!(InternalError, "a worker failed: {e}")
}

pub(crate) fn ts(t: SystemTime) -> Timestamp {
    Timestamp::from(t)
}

/// Each GET decrypts on the thread that serves it: the concurrency of a server comes from
/// its requests, and handing every batch to a pool as well only adds thread switches on a
/// loaded machine (DESIGN.md, "One thread per download" under "S3 gateway").
/// Plaintext a GET opens at a time: a response starts after its first batch, so small.
const READ_BATCH: usize = 256 << 10;

fn read_settings() -> Settings {
    let mut s = Settings::default();
    s.decrypt.parallelism = hyok::Parallelism::Sequential;
    s.decrypt.batch_bytes = READ_BATCH;
    s
}

fn hex_md5(m: &[u8]) -> String {
    hex::encode(m)
}

/// A body measured with `etag_md5` came back without its MD5.
pub(crate) fn no_md5() -> S3Error {
    s3_error!(InternalError, "the body's MD5 was not computed")
}

fn to_metadata(m: &BTreeMap<String, String>) -> Option<Metadata> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// A GET or HEAD response for object `d` answered with attributes `a`: the given fields,
/// then what both share (ETag, time, content headers, user metadata).
macro_rules! object_head {
    ($t:ident { $($f:ident: $v:expr),* $(,)? }, $d:expr, $a:expr) => {{
        let a: meta::Attributes = $a;
        $t {
            $($f: $v,)*
            e_tag: Some(ETag::Strong($d.etag.clone())),
            last_modified: Some(ts($d.last_modified)),
            metadata: to_metadata(&a.metadata),
            expires: a.expires_timestamp(),
            content_type: a.content_type,
            content_encoding: a.content_encoding,
            content_disposition: a.content_disposition,
            content_language: a.content_language,
            cache_control: a.cache_control,
            accept_ranges: Some("bytes".into()),
            ..Default::default()
        }
    }};
}

pub(crate) fn etag_matches(cond: &ETagCondition, etag: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value().trim_matches('"') == etag,
    }
}

fn time_of(t: &Timestamp) -> Option<SystemTime> {
    let odt: time::OffsetDateTime = t.clone().into();
    Some(odt.into())
}

/// Whole seconds (HTTP dates have no fraction).
fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The conditional request headers of GET and HEAD, in RFC 9110's order.
pub(crate) fn check_conditions(
    d: &ObjectDesc,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    if let Some(c) = if_match {
        if !etag_matches(c, &d.etag) {
            return Err(s3_error!(PreconditionFailed));
        }
    } else if let Some(t) = if_unmodified_since.and_then(time_of) {
        if secs(d.last_modified) > secs(t) {
            return Err(s3_error!(PreconditionFailed));
        }
    }
    if let Some(c) = if_none_match {
        if etag_matches(c, &d.etag) {
            return Err(not_modified(d));
        }
    } else if let Some(t) = if_modified_since.and_then(time_of) {
        if secs(d.last_modified) <= secs(t) {
            return Err(not_modified(d));
        }
    }
    Ok(())
}

/// A 304 with the validators a 200 would have carried (RFC 9110, 15.4.5: clients update
/// their cached copy from them, and check the ETag).
fn not_modified(d: &ObjectDesc) -> S3Error {
    let mut e = s3_error!(NotModified);
    let mut h = hyper::HeaderMap::new();
    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("\"{}\"", d.etag)) {
        h.insert(hyper::header::ETAG, v);
    }
    if let Some(v) = meta::http_date(&ts(d.last_modified))
        .and_then(|v| hyper::header::HeaderValue::from_str(&v).ok())
    {
        h.insert(hyper::header::LAST_MODIFIED, v);
    }
    e.set_headers(h);
    e
}

/// A copy source (CopyObject, UploadPartCopy) as (bucket, key): without a version id, as
/// buckets here are unversioned.
pub(crate) fn copy_source_of(source: &CopySource) -> S3Result<(String, String)> {
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id: None,
        } => Ok((bucket.to_string(), key.to_string())),
        _ => Err(s3_error!(
            NotImplemented,
            "only bucket/key copy sources without versions"
        )),
    }
}

/// The `x-amz-copy-source-if-*` headers of a copy request (`$i`, CopyObject or
/// UploadPartCopy: s3s's inputs share the field names) against the source `$d`: as GET's
/// conditions, but a copy answers 412 where a GET answers 304.
macro_rules! copy_source_conditions {
    ($d:expr, $i:expr) => {
        $crate::service::check_conditions(
            &$d,
            $i.copy_source_if_match.as_ref(),
            $i.copy_source_if_none_match.as_ref(),
            $i.copy_source_if_modified_since.as_ref(),
            $i.copy_source_if_unmodified_since.as_ref(),
        )
        .map_err($crate::service::not_modified_fails)
    };
}
pub(crate) use copy_source_conditions;

/// A 304 as a copy's 412 (see [`copy_source_conditions`]).
pub(crate) fn not_modified_fails(e: S3Error) -> S3Error {
    if *e.code() == S3ErrorCode::NotModified {
        s3_error!(PreconditionFailed)
    } else {
        e
    }
}

/// One page of a listing.
pub(crate) struct Page {
    pub(crate) objects: Vec<(String, ObjectDesc)>,
    pub(crate) prefixes: Vec<String>,
    pub(crate) truncated: bool,
    pub(crate) next: Option<String>,
}

impl Gateway {
    /// `bytes` of the in-memory body budget, taken at once (two separate waits could hold
    /// the whole budget between them and never get the second); returned when dropped.
    pub(crate) async fn reserve_memory(
        &self,
        bytes: u64,
    ) -> S3Result<tokio::sync::OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        self.memory
            .clone()
            .acquire_many_owned(kib)
            .await
            .map_err(|_| s3_error!(ServiceUnavailable))
    }

    /// Encrypted objects of `bucket` with the caller's keys, audited as the caller.
    pub(crate) fn objects(&self, caller: &Caller, bucket: &str) -> S3Result<Objects> {
        self.objects_with(caller, bucket, self.transfer.clone())
    }

    /// As `objects`, for answering a GET: a download of several backend parts fetches at
    /// most [`GET_AHEAD`] of them ahead of its client, whose pace it follows.
    pub(crate) fn objects_for_get(&self, caller: &Caller, bucket: &str) -> S3Result<Objects> {
        self.objects_with(caller, bucket, self.transfer.with_concurrency(GET_AHEAD))
    }

    /// As `objects`, for writing a message of `len` bytes of plaintext (one PUT when it is
    /// small enough: `backend::write_transfer`).
    fn objects_writing(
        &self,
        caller: &Caller,
        bucket: &str,
        len: Option<u64>,
    ) -> S3Result<Objects> {
        self.objects_with(
            caller,
            bucket,
            crate::backend::write_transfer(&self.transfer, len),
        )
    }

    fn objects_with(&self, caller: &Caller, bucket: &str, transfer: Transfer) -> S3Result<Objects> {
        let store = self.backend.store(bucket)?;
        Ok(caller
            .session
            .objects(store, read_settings(), transfer, self.rt.clone())
            .map_err(to_s3)?
            .acting_for(Some(caller.id.clone())))
    }

    /// Describe a backend object from its header (no key needed): one GET of its first
    /// bytes, which also says what a HEAD would.
    pub(crate) async fn describe(
        &self,
        store: &Store,
        url: &StoreUrl,
    ) -> S3Result<Option<(ObjectInfo, ObjectDesc)>> {
        Ok(self
            .describe_prefix(store, url, meta::HEADER_PREFIX)
            .await?
            .map(|(p, d)| (p.info, d)))
    }

    /// Read the first `n` bytes of a backend object (one GET) and describe the object from
    /// its header; the bytes are kept for the read that follows (see `Objects::get_prefetched`).
    pub(crate) async fn describe_prefix(
        &self,
        store: &Store,
        url: &StoreUrl,
        n: u64,
    ) -> S3Result<Option<(Prefix, ObjectDesc)>> {
        let Some(prefix) = store
            .try_get_prefix(url, n)
            .await
            .map_err(|e| to_s3(e.into()))?
        else {
            return Ok(None);
        };
        let parsed = meta::header_of(store, &prefix, self.limits)
            .await
            .map_err(to_s3)?;
        let d = meta::describe(&prefix.info, &parsed);
        Ok(Some((prefix, d)))
    }

    /// What this replica kept of `bucket`/`key` (`described.rs`), if the backend still shows
    /// the object with the same entity tag and size: one HEAD. `Ok(None)` when nothing was
    /// kept or the object is gone or changed (then it is forgotten).
    pub(crate) async fn confirmed(
        &self,
        store: &Store,
        url: &StoreUrl,
        bucket: &str,
        key: &str,
    ) -> S3Result<Option<(Prefix, ObjectDesc)>> {
        let Some((p, d)) = self.described.get(bucket, key) else {
            return Ok(None);
        };
        match store.try_head(url).await.map_err(|e| to_s3(e.into()))? {
            Some(now) if now.e_tag == p.info.e_tag && now.size == p.info.size => Ok(Some((p, d))),
            _ => {
                self.described.remove(bucket, key);
                Ok(None)
            }
        }
    }

    pub(crate) async fn object_or_404(
        &self,
        bucket: &str,
        key: &str,
    ) -> S3Result<(Store, StoreUrl, ObjectInfo, ObjectDesc)> {
        let (store, url, prefix, d) = self.prefix_or_404(bucket, key, meta::HEADER_PREFIX).await?;
        Ok((store, url, prefix.info, d))
    }

    /// As `object_or_404`, keeping the first `n` bytes read.
    pub(crate) async fn prefix_or_404(
        &self,
        bucket: &str,
        key: &str,
        n: u64,
    ) -> S3Result<(Store, StoreUrl, Prefix, ObjectDesc)> {
        let store = self.backend.store(bucket)?;
        let url = self.backend.object_url(bucket, key)?;
        match self.describe_prefix(&store, &url, n).await? {
            Some((prefix, d)) => Ok((store, url, prefix, d)),
            None => {
                self.backend.require_bucket(bucket).await?;
                Err(s3_error!(NoSuchKey))
            }
        }
    }

    /// The plaintext of the stored object `url` (its `range`, or all of it), decrypted on a
    /// blocking thread from `prefix` (its first bytes, already read) on: a body that ends
    /// with an error if decryption fails, and the thread, which returns that error.
    pub(crate) fn plaintext(
        &self,
        objects: Objects,
        url: StoreUrl,
        prefix: Prefix,
        range: Option<std::ops::Range<u64>>,
    ) -> (body::ChannelStream, tokio::task::JoinHandle<S3Result<()>>) {
        let (w, stream) = body::channel();
        let metrics = self.metrics.clone();
        let thread = tokio::task::spawn_blocking(move || {
            let mut w = w;
            let started = Instant::now();
            let r = range.map(|r| ByteRange {
                start: r.start,
                end: Some(r.end - 1),
            });
            let res = objects.get_prefetched(&url, prefix, &mut w, r, &EncryptionContext::new());
            metrics.key_use(started.elapsed(), res.is_ok());
            match res {
                Ok(rep) => {
                    metrics.bytes_out(rep.plaintext_len);
                    let _ = w.finish();
                    Ok(())
                }
                // Its reader went away: nothing failed here.
                Err(_) if w.closed() => Ok(()),
                Err(e) => {
                    let e = to_s3(e);
                    w.fail(e.message().unwrap_or("decryption failed"));
                    Err(e)
                }
            }
        });
        (stream, thread)
    }

    /// The plaintext of a GET: decrypted on the runtime as the response is sent when the
    /// object allows it (`served.rs`), else as [`Gateway::plaintext`] does. Either way it
    /// answers only once the first plaintext bytes, the end or a failure came out: a data
    /// key none of the caller's keys can unwrap, or a first frame that does not
    /// authenticate, is then an error response with its reason instead of a response head
    /// followed by a cut body, which clients retry as a network failure. The first bytes
    /// wait for the header's unwrap and the first frames, which a client waits for anyway.
    pub(crate) async fn plaintext_started(
        &self,
        objects: Objects,
        url: StoreUrl,
        prefix: Prefix,
        range: Option<std::ops::Range<u64>>,
    ) -> S3Result<StreamingBlob> {
        if objects.streams(&prefix) {
            return crate::served::plaintext(&self.metrics, objects, url, prefix, range).await;
        }
        let (mut stream, thread) = self.plaintext(objects, url, prefix, range);
        match stream.next().await {
            Some(Ok(first)) => Ok(StreamingBlob::wrap(
                futures::stream::once(std::future::ready(Ok::<_, std::io::Error>(first)))
                    .chain(stream),
            )),
            None => Ok(StreamingBlob::wrap(stream)),
            Some(Err(e)) => Err(match thread.await {
                Ok(Err(why)) => why,
                Ok(Ok(())) => s3_error!(InternalError, "reading the object failed: {e}"),
                Err(j) => join_error(j),
            }),
        }
    }

    /// Encrypt what `src` yields into `bucket`/`key` on a blocking thread, only if `pin`
    /// holds for it on the backend when given (`conditional.rs`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn store_object(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        src: Box<dyn std::io::Read + Send>,
        len: Option<u64>,
        context: EncryptionContext,
        pin: Option<hyok::store::Precondition>,
    ) -> S3Result<()> {
        let objects = self.objects_writing(caller, bucket, len)?;
        let url = self.backend.object_url(bucket, key)?;
        let started = Instant::now();
        let res = tokio::task::spawn_blocking(move || {
            let mut src = src;
            let source = Source {
                len,
                mtime: None,
                context,
            };
            match pin {
                Some(cond) => objects.put_when(&url, &mut src, &source, cond),
                None => objects.put(&url, &mut src, &source),
            }
        })
        .await
        .map_err(join_error)?;
        self.metrics.key_use(started.elapsed(), res.is_ok());
        match res {
            Ok(r) => {
                self.metrics.bytes_in(r.plaintext_len);
                Ok(())
            }
            Err(e) => Err(crate::conditional::write_failed(e)),
        }
    }

    /// What every listing (ListObjects v1 and v2, ListObjectVersions) does first: the
    /// credential and the policy may list `prefix`, the encoding and page size asked are
    /// valid; then one page from `after`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn listing_page(
        &self,
        creds: &Option<s3s::auth::Credentials>,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max: Option<i32>,
        encoding: Option<&EncodingType>,
    ) -> S3Result<(Page, Encoding)> {
        let caller = self.authorize_bucket(creds, bucket, "list", Scope::List(prefix))?;
        self.decide(&caller, hyok::policy::Action::List, bucket, prefix)?;
        let enc = Encoding::of(encoding)?;
        let max = max_keys(max)?;
        let page = self
            .list_page(&caller, bucket, prefix, delimiter, after, max)
            .await?;
        Ok((page, enc))
    }

    /// List one page of a bucket's keys (the caller is authorized for the prefix).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn list_page(
        &self,
        caller: &Caller,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max_keys: usize,
    ) -> S3Result<Page> {
        self.backend.require_bucket(bucket).await?;
        let store = self.backend.store(bucket)?;
        let root = self.backend.bucket_url(bucket)?;
        // object_store lists folders: list the prefix's folder and filter by the prefix.
        let dir = match prefix.rfind('/') {
            Some(i) => root.join(&prefix[..=i]).unwrap_or_else(|_| root.clone()),
            None => root.clone(),
        };
        let q = Query::new(prefix, delimiter, after, max_keys);
        let mut pager = Pager::new(q);
        // Both backends list in key order from an offset (`Store::list_after`).
        self.fill_in_order(caller, bucket, &store, &root, &dir, &mut pager)
            .await?;
        let (picked, prefixes, truncated, next) = (
            std::mem::take(&mut pager.picked),
            std::mem::take(&mut pager.prefixes),
            pager.truncated,
            pager.next_token(),
        );
        // Sizes and ETags come from each object's header: read them in parallel, unless
        // this replica read the same bytes before (`listed.rs`).
        let described: Vec<S3Result<Option<(String, ObjectDesc)>>> = futures::stream::iter(picked)
            .map(|(key, info)| {
                let store = store.clone();
                async move {
                    if let Some(d) = self.listed.get(bucket, &key, &info) {
                        return Ok(Some((key, d)));
                    }
                    match meta::read_header(&store, &info, self.limits).await {
                        Ok(p) => {
                            let d = meta::describe(&info, &p);
                            self.listed.insert(bucket, &key, &info, &d);
                            Ok(Some((key, d)))
                        }
                        Err(e) => Ok(self
                            .listed_anyway(&store, &info, &key, e)
                            .await?
                            .map(|d| (key, d))),
                    }
                }
            })
            .buffered(32)
            .collect()
            .await;
        let mut objects = Vec::with_capacity(described.len());
        for d in described {
            objects.extend(d?);
        }
        Ok(Page {
            objects,
            prefixes,
            truncated,
            next,
        })
    }

    /// What a listing shows of an object whose header could not be read as listed (`e`):
    /// nothing when it was deleted since; what it is now when it was replaced since; when it
    /// is no message this gateway can read (foreign or damaged bytes), what the backend
    /// shows of it (`meta::stored_only`), so that one such object neither fails the listing
    /// of a whole bucket nor hides (reading it answers InvalidObjectState). Other errors (the
    /// backend failing) fail the page.
    async fn listed_anyway(
        &self,
        store: &Store,
        info: &ObjectInfo,
        key: &str,
        e: hyok::Error,
    ) -> S3Result<Option<ObjectDesc>> {
        match e {
            hyok::Error::Store(hyok::store::Error::NotFound(_)) => Ok(None),
            hyok::Error::Store(hyok::store::Error::Changed(_)) => {
                self.described_or_stored(store, &info.url).await
            }
            e if unreadable(e.class()) => Ok(Some(stored_only(info, key, &e))),
            e => Err(to_s3(e)),
        }
    }

    /// An object's description from its header (one GET of its first bytes), or, when it is
    /// no message this gateway can read, what the backend shows of it: HEAD answers it as a
    /// listing shows it, and the GET that follows says what is wrong with it. `None` when
    /// the object does not exist.
    async fn described_or_stored(
        &self,
        store: &Store,
        url: &StoreUrl,
    ) -> S3Result<Option<ObjectDesc>> {
        let prefix = store
            .try_get_prefix(url, meta::HEADER_PREFIX)
            .await
            .map_err(|e| to_s3(e.into()))?;
        let Some(prefix) = prefix else {
            return Ok(None);
        };
        match meta::header_of(store, &prefix, self.limits).await {
            Ok(p) => Ok(Some(meta::describe(&prefix.info, &p))),
            Err(e) if unreadable(e.class()) => Ok(Some(stored_only(&prefix.info, url.key(), &e))),
            Err(e) => Err(to_s3(e)),
        }
    }

    /// Fill `pager` from the backend's listing, which comes in key order: it starts after
    /// the page's `after` point, stops when the page is full or the keys pass the prefix,
    /// and restarts past a common prefix (or the gateway's own folder) rather than read
    /// every key under it. Reads about one backend page per page answered, whatever the
    /// bucket's size, and holds at most one page.
    async fn fill_in_order(
        &self,
        caller: &Caller,
        bucket: &str,
        store: &Store,
        root: &StoreUrl,
        dir: &StoreUrl,
        pager: &mut Pager<'_, ObjectInfo>,
    ) -> S3Result<()> {
        /// Keys skipped in a row inside one common prefix before the listing restarts past
        /// it (a backend page: restarting costs a request, reading on costs a page).
        const RESTART_AFTER: usize = 1000;
        let (prefix, after) = (pager.q.prefix, pager.q.after);
        let full = |key: &str| format!("{}{}", root.key(), crate::backend::stored_key(key));
        // Start at the later of the page's `after` point and the prefix without its last
        // character (every key with the prefix sorts after that), so a prefix that ends
        // inside a folder's names skips the names before it.
        let below = prefix
            .char_indices()
            .last()
            .map(|(i, _)| &prefix[..i])
            .filter(|b| !b.is_empty());
        let start = match (after, below) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let mut stream = match start {
            Some(a) => store.list_after(dir, &full(a)),
            None => store.list(dir),
        };
        let mut skipped = 0usize;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| to_s3(e.into()))?;
            let Some(key) = self.backend.key_of(root, &info) else {
                continue;
            };
            let restart = if key.starts_with(RESERVED) {
                // (Only forward: a key even past that is just skipped.)
                Some(past(RESERVED)).filter(|o| o.as_str() > key.as_str())
            } else if !key.starts_with(prefix) {
                // The keys with the prefix sort together: past them, none follows.
                if key.as_str() > prefix {
                    break;
                }
                None
            } else if !caller.patterns.object(bucket, &key) {
                None
            } else {
                match pager.offer(key, info) {
                    Step::Next => {
                        skipped = 0;
                        None
                    }
                    Step::Skip(cp) => {
                        skipped += 1;
                        (skipped >= RESTART_AFTER).then(|| past(&cp))
                    }
                    Step::Full => break,
                }
            };
            if let Some(offset) = restart {
                stream = store.list_after(dir, &full(&offset));
                skipped = 0;
            }
        }
        Ok(())
    }
}

/// Trait methods that forward to the function of the same operation in its own file
/// (`buckets.rs`, `multipart.rs`), with the signature `#[async_trait]` gives the trait's
/// methods.
macro_rules! forward_ops {
    ($($op:ident: $input:ty => $output:ty = $f:path;)*) => {$(
        fn $op<'s, 'a>(
            &'s self,
            req: S3Request<$input>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = S3Result<S3Response<$output>>> + Send + 'a>>
        where
            's: 'a,
            Self: 'a,
        {
            Box::pin($f(&self.0, req))
        }
    )*};
}

#[async_trait::async_trait]
impl S3 for GatewayS3 {
    forward_ops! {
        list_buckets: ListBucketsInput => ListBucketsOutput = crate::buckets::list;
        create_bucket: CreateBucketInput => CreateBucketOutput = crate::buckets::create;
        head_bucket: HeadBucketInput => HeadBucketOutput = crate::buckets::head;
        get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput = crate::buckets::location;
        get_bucket_versioning: GetBucketVersioningInput => GetBucketVersioningOutput = crate::buckets::versioning;
        delete_bucket: DeleteBucketInput => DeleteBucketOutput = crate::buckets::delete;
        create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput = crate::multipart::create;
        upload_part: UploadPartInput => UploadPartOutput = crate::multipart::upload_part;
        upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput = crate::copy_part::upload_part_copy;
        get_object_tagging: GetObjectTaggingInput => GetObjectTaggingOutput = crate::tagging::get_object_tagging;
        complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput = crate::multipart::complete;
        abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput = crate::multipart::abort;
        list_parts: ListPartsInput => ListPartsOutput = crate::multipart::list_parts;
        list_multipart_uploads: ListMultipartUploadsInput => ListMultipartUploadsOutput = crate::multipart::list_uploads;
        list_object_versions: ListObjectVersionsInput => ListObjectVersionsOutput = crate::versions::list;
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let g = &self.0;
        let mut input = req.input;
        let (bucket, key) = (input.bucket.clone(), input.key.clone());
        let caller = g.authorize_bucket(&req.credentials, &bucket, "put", Scope::Write(&key))?;
        let trailers = req.trailing_headers;
        // (s3s hands POST form uploads to PutObject.)
        crate::refuse::post_filename(&req.method, &key)?;
        g.backend.require_bucket(&bucket).await?;
        crate::refuse::put(&input)?;
        let attrs = meta::attributes_of!(input);
        attrs.check()?;
        let len = body::upload_len(input.content_length, &req.headers)?;
        let pin = g
            .check_write(
                &bucket,
                &key,
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
            )
            .await?;
        let wanted = body::wanted_of!(input);
        let body = input.body.take().ok_or_else(|| s3_error!(IncompleteBody))?;
        let etag = if len <= SMALL_BODY {
            // Small: read it, so the MD5 is known before the header is written.
            let kib = u32::try_from(len.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
            let _permit = g
                .memory
                .acquire_many(kib)
                .await
                .map_err(|_| s3_error!(ServiceUnavailable))?;
            let wanted = Wanted {
                etag_md5: true,
                ..wanted
            };
            let (buf, m) = body::collect(body, wanted, trailers, len).await?;
            let etag = hex_md5(&m.md5.ok_or_else(no_md5)?);
            let ctx = meta::object_context(&attrs, Some(&etag));
            let src: Box<dyn std::io::Read + Send> = Box::new(std::io::Cursor::new(buf));
            g.store_object(&caller, &bucket, &key, src, Some(len), ctx, pin)
                .await?;
            etag
        } else if let Some(md5) = wanted.md5()? {
            // Large with Content-MD5: the ETag is known in advance and checked at the end.
            let etag = hex_md5(&md5);
            let ctx = meta::object_context(&attrs, Some(&etag));
            let (reader, pump) = body::pump(body, wanted, trailers, Some(len))?;
            let stored = g.store_object(
                &caller,
                &bucket,
                &key,
                Box::new(reader),
                Some(len),
                ctx,
                pin,
            );
            let (stored, pumped) = tokio::join!(stored, pump);
            pumped.map_err(join_error)??;
            stored?;
            etag
        } else {
            // Large without Content-MD5: stage it, then re-encrypt with its MD5 (DESIGN.md).
            crate::multipart::put_staged(
                g, &caller, &bucket, &key, body, wanted, trailers, len, attrs, pin,
            )
            .await?
        };
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            server_side_encryption: at_rest(),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let g = &self.0;
        let i = &req.input;
        let caller =
            g.authorize_bucket(&req.credentials, &i.bucket, "head", Scope::Read(&i.key))?;
        g.decide(&caller, hyok::policy::Action::Get, &i.bucket, &i.key)?;
        crate::refuse::version(i.version_id.as_deref())?;
        crate::refuse::sse_c(i.sse_customer_algorithm.as_deref())?;
        crate::refuse::part_number(i.part_number, i.range.as_ref())?;
        let store = g.backend.store(&i.bucket)?;
        let url = g.backend.object_url(&i.bucket, &i.key)?;
        let Some(d) = g.described_or_stored(&store, &url).await? else {
            g.backend.require_bucket(&i.bucket).await?;
            return Err(s3_error!(NoSuchKey));
        };
        check_conditions(
            &d,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        )?;
        let (len, range) = match satisfy(i.range.as_ref(), d.size)? {
            Some(r) => (
                r.end - r.start,
                Some(format!("bytes {}-{}/{}", r.start, r.end - 1, d.size)),
            ),
            None => (d.size, None),
        };
        Ok(S3Response::new(object_head!(
            HeadObjectOutput {
                server_side_encryption: at_rest(),
                content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
                content_range: range,
            },
            d,
            meta::answered!(d, i)
        )))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let g = &self.0;
        let i = &req.input;
        let caller = g.authorize_bucket(&req.credentials, &i.bucket, "get", Scope::Read(&i.key))?;
        // The [policy] decides before the backend is asked for the object.
        let objects = g.objects_for_get(&caller, &i.bucket)?;
        let url = g.backend.object_url(&i.bucket, &i.key)?;
        objects
            .check_policy(hyok::policy::Action::Get, &url)
            .map_err(to_s3)?;
        crate::refuse::version(i.version_id.as_deref())?;
        crate::refuse::sse_c(i.sse_customer_algorithm.as_deref())?;
        crate::refuse::part_number(i.part_number, i.range.as_ref())?;
        // One backend GET: the object's first bytes describe it (size, ETag, metadata for
        // the response head) and are the start of the body decrypted below.
        let (_, url, prefix, d) = g
            .prefix_or_404(&i.bucket, &i.key, prefix_len(i.range.is_some()))
            .await?;
        check_conditions(
            &d,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        )?;
        let range = satisfy(i.range.as_ref(), d.size)?;
        let body = g
            .plaintext_started(objects, url, prefix, range.clone())
            .await?;
        let (len, shown) = match &range {
            Some(r) => (
                r.end - r.start,
                Some(format!("bytes {}-{}/{}", r.start, r.end - 1, d.size)),
            ),
            None => (d.size, None),
        };
        Ok(S3Response::new(object_head!(
            GetObjectOutput {
                server_side_encryption: at_rest(),
                body: Some(body),
                content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
                content_range: shown,
            },
            d,
            meta::answered!(d, i)
        )))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let g = &self.0;
        let i = req.input;
        let prefix = i.prefix.clone().unwrap_or_default();
        let after = match (i.continuation_token.as_deref(), i.start_after.as_deref()) {
            (Some(t), Some(s)) => Some(if t >= s { t } else { s }),
            (t, s) => t.or(s),
        };
        let (page, enc) = g
            .listing_page(
                &req.credentials,
                &i.bucket,
                &prefix,
                i.delimiter.as_deref(),
                after,
                i.max_keys,
                i.encoding_type.as_ref(),
            )
            .await?;
        let count = page.objects.len() + page.prefixes.len();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket.clone()),
            prefix: Some(enc.apply(prefix)),
            delimiter: enc.opt(i.delimiter.clone().filter(|d| !d.is_empty())),
            max_keys: i.max_keys.or(Some(1000)),
            key_count: Some(i32::try_from(count).unwrap_or(i32::MAX)),
            continuation_token: i.continuation_token.clone(),
            start_after: enc.opt(i.start_after.clone()),
            is_truncated: Some(page.truncated),
            // Opaque to the client, which sends it back as it is: not encoded.
            next_continuation_token: page.next,
            contents: Some(listing(page.objects, enc)),
            common_prefixes: common(page.prefixes, enc),
            encoding_type: enc.answer(),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let g = &self.0;
        let i = req.input;
        let prefix = i.prefix.clone().unwrap_or_default();
        let (page, enc) = g
            .listing_page(
                &req.credentials,
                &i.bucket,
                &prefix,
                i.delimiter.as_deref(),
                i.marker.as_deref(),
                i.max_keys,
                i.encoding_type.as_ref(),
            )
            .await?;
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket.clone()),
            prefix: Some(enc.apply(prefix)),
            delimiter: enc.opt(i.delimiter.clone().filter(|d| !d.is_empty())),
            // S3 answers an empty `Marker` when none was given.
            marker: Some(enc.apply(i.marker.clone().unwrap_or_default())),
            max_keys: i.max_keys.or(Some(1000)),
            is_truncated: Some(page.truncated),
            next_marker: enc.opt(page.next),
            contents: Some(listing(page.objects, enc)),
            common_prefixes: common(page.prefixes, enc),
            encoding_type: enc.answer(),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let g = &self.0;
        let i = &req.input;
        let caller =
            g.authorize_bucket(&req.credentials, &i.bucket, "delete", Scope::Read(&i.key))?;
        g.decide(&caller, hyok::policy::Action::Delete, &i.bucket, &i.key)?;
        g.backend.require_bucket(&i.bucket).await?;
        crate::refuse::version(i.version_id.as_deref())?;
        if i.if_match_last_modified_time.is_some() || i.if_match_size.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "deletes conditional on time or size (only If-Match)"
            ));
        }
        let pin = g
            .check_write(&i.bucket, &i.key, i.if_match.as_ref(), None)
            .await?;
        delete_one(g, &i.bucket, &i.key, pin).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let g = &self.0;
        let i = req.input;
        let caller = g.authorize_bucket(&req.credentials, &i.bucket, "delete", Scope::AnyKey)?;
        g.backend.require_bucket(&i.bucket).await?;
        if i.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "at most 1000 keys per request"));
        }
        let quiet = i.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for o in &i.delete.objects {
            let res = match g
                .may_object(&caller, &i.bucket, &o.key)
                .and_then(|()| g.decide(&caller, hyok::policy::Action::Delete, &i.bucket, &o.key))
            {
                Ok(()) => delete_if(g, &i.bucket, o).await,
                Err(e) => Err(e),
            };
            match res {
                Ok(()) if quiet => {}
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(o.key.clone()),
                    ..Default::default()
                }),
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(o.key.clone()),
                    message: e.message().map(str::to_owned),
                    ..Default::default()
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let g = &self.0;
        let i = req.input;
        let caller =
            g.authorize_bucket(&req.credentials, &i.bucket, "copy", Scope::Write(&i.key))?;
        let (sb, sk) = copy_source_of(&i.copy_source)?;
        crate::refuse::object_lock!(i)?;
        crate::refuse::sse_c(i.sse_customer_algorithm.as_deref())?;
        crate::refuse::sse_c(i.copy_source_sse_customer_algorithm.as_deref())?;
        g.may_object(&caller, &sb, &sk)?;
        g.decide(&caller, hyok::policy::Action::Get, &sb, &sk)?;
        g.decide(&caller, hyok::policy::Action::Put, &i.bucket, &i.key)?;
        g.backend.require_bucket(&i.bucket).await?;
        let (_, _, _, d) = g.object_or_404(&sb, &sk).await?;
        copy_source_conditions!(d, i)?;
        // The destination's `If-Match` / `If-None-Match: *` (S3 takes them on CopyObject as
        // on PutObject; s3s 0.14 does not model them, so they are read from the headers).
        let (if_match, if_none_match) = crate::conditional::destination(&req.headers)?;
        let pin = g
            .check_write(&i.bucket, &i.key, if_match.as_ref(), if_none_match.as_ref())
            .await?;
        let replace = i
            .metadata_directive
            .as_ref()
            .is_some_and(|m| m.as_str() == MetadataDirective::REPLACE);
        if sb == i.bucket && sk == i.key && !replace {
            return Err(s3_error!(
                InvalidRequest,
                "copying an object onto itself needs the REPLACE metadata directive"
            ));
        }
        let ctx = if replace {
            let attrs = meta::attributes_of!(i);
            attrs.check()?;
            meta::object_context(&attrs, Some(&d.etag))
        } else {
            meta::object_context(&d.attrs, Some(&d.etag))
        };
        let src = g.backend.object_url(&sb, &sk)?;
        g.reencrypt(
            &caller,
            &sb,
            vec![(src, d.size)],
            &i.bucket,
            &i.key,
            d.size,
            ctx,
            None,
            pin,
        )
        .await?;
        Ok(S3Response::new(CopyObjectOutput {
            server_side_encryption: at_rest(),
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(d.etag)),
                last_modified: Some(ts(SystemTime::now())),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

/// One key of DeleteObjects, with its conditions (an ETag: as `If-Match`).
async fn delete_if(g: &Gateway, bucket: &str, o: &ObjectIdentifier) -> S3Result<()> {
    crate::refuse::version(o.version_id.as_deref())?;
    if o.last_modified_time.is_some() || o.size.is_some() {
        return Err(s3_error!(
            NotImplemented,
            "deletes conditional on time or size (only an ETag)"
        ));
    }
    let cond = o.e_tag.clone().map(ETagCondition::ETag);
    let pin = g.check_write(bucket, &o.key, cond.as_ref(), None).await?;
    delete_one(g, bucket, &o.key, pin).await
}

/// Delete `key`, only while `pin` (the backend condition of the request's `If-Match`)
/// holds when given.
async fn delete_one(
    g: &Gateway,
    bucket: &str,
    key: &str,
    pin: Option<hyok::store::Precondition>,
) -> S3Result<()> {
    let store = g.backend.store(bucket)?;
    let url = g.backend.object_url(bucket, key)?;
    let res = match &pin {
        Some(cond) => store.delete_when(&url, cond).await,
        None => store.delete(&url).await,
    };
    match res {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(crate::conditional::write_failed(e.into())),
    }
    g.backend.prune(bucket, key);
    Ok(())
}

/// The bytes a Range header selects of an object of `size` bytes (InvalidRange if none can
/// be); `None`: the whole object, also for a suffix range of an empty object, which selects
/// all of its zero bytes and has no `Content-Range` to show it.
fn satisfy(range: Option<&Range>, size: u64) -> S3Result<Option<std::ops::Range<u64>>> {
    match range {
        None => Ok(None),
        Some(r) => {
            let r = r.check(size).map_err(|_| s3_error!(InvalidRange))?;
            Ok((r.start < r.end).then_some(r))
        }
    }
}

/// The at-rest encryption every object answer reports: `AES256`, as S3 reports for its
/// default encryption of every object since 2023. Here it is the AES-256-GCM of the
/// object's ESDK message, under keys the keyring holds.
pub(crate) fn at_rest() -> Option<ServerSideEncryption> {
    Some(ServerSideEncryption::from_static(
        ServerSideEncryption::AES256,
    ))
}

/// A listing's page size: at most 1,000 (larger asks get 1,000, as on S3); a negative one
/// is InvalidArgument.
fn max_keys(asked: Option<i32>) -> S3Result<usize> {
    match asked {
        None => Ok(1000),
        Some(n) => usize::try_from(n).map(|n| n.min(1000)).map_err(|_| {
            s3_error!(
                InvalidArgument,
                "max-keys must be a whole number from 0 (got {n})"
            )
        }),
    }
}

fn listing(objects: Vec<(String, ObjectDesc)>, enc: Encoding) -> Vec<Object> {
    objects
        .into_iter()
        .map(|(key, d)| Object {
            key: Some(enc.apply(key)),
            size: Some(i64::try_from(d.size).unwrap_or(i64::MAX)),
            e_tag: Some(ETag::Strong(d.etag)),
            last_modified: Some(ts(d.last_modified)),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect()
}

pub(crate) fn common(prefixes: Vec<String>, enc: Encoding) -> Option<Vec<CommonPrefix>> {
    (!prefixes.is_empty()).then(|| {
        prefixes
            .into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc.apply(p)),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::satisfy;
    use s3s::dto::Range;

    #[test]
    fn ranges_select_bytes_or_the_whole_object_or_fail() {
        let int = |first, last| Range::Int { first, last };
        assert_eq!(satisfy(None, 10).unwrap(), None);
        assert_eq!(satisfy(Some(&int(2, Some(4))), 10).unwrap(), Some(2..5));
        assert_eq!(satisfy(Some(&int(8, None)), 10).unwrap(), Some(8..10));
        assert_eq!(
            satisfy(Some(&Range::Suffix { length: 3 }), 10).unwrap(),
            Some(7..10)
        );
        assert!(satisfy(Some(&int(10, None)), 10).is_err());
        // An empty object: a suffix range is all of it (no Content-Range can show zero
        // bytes); any other range cannot be satisfied.
        assert_eq!(
            satisfy(Some(&Range::Suffix { length: 1 }), 0).unwrap(),
            None
        );
        assert!(satisfy(Some(&int(0, None)), 0).is_err());
    }
}
