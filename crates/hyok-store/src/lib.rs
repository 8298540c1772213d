//! # hyok-store
//!
//! Object storage for hyok on top of the [`object_store`] crate: a local folder (the embedded
//! default, no server) or any S3-compatible store (`s3` feature, on by default). The crate
//! knows nothing about encryption: it moves bytes, with bounded memory, between synchronous
//! `Read`/`Write` code (where hyok's streaming crypto runs) and the async object store.
//!
//! - [`StoreUrl`] parses `s3://BUCKET/KEY`, `file:///PATH` and plain local paths.
//! - [`Store::open`] builds the client (credentials, region and endpoint from the options, the
//!   standard `AWS_*` variables and the shared `~/.aws` files) without sending a request.
//! - [`Store::writer`] returns an [`ObjectWriter`]: a `Write` that streams into a single PUT
//!   or a parallel multipart upload, aborted on any failure so no partial object appears.
//! - [`Store::reader`] returns a [`RangedReader`]: a `Read` fed by parallel ranged GETs.
//! - [`Store::range_stream`] returns a [`RangedStream`]: the same GETs as an async `Stream`.
//!
//! ```
//! use std::io::{Read, Write};
//! use hyok_store::{Store, StoreOptions, StoreUrl, Transfer};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let rt = tokio::runtime::Runtime::new().unwrap();
//! let url = StoreUrl::local(dir.path()).unwrap().as_folder();
//! let store = Store::open(&url, &StoreOptions::default()).unwrap();
//! let key = url.join("hello.txt").unwrap();
//! let transfer = Transfer::default();
//! let mut w = store.writer(rt.handle(), &key, Default::default(), &transfer).unwrap();
//! w.write_all(b"hello").unwrap();
//! w.finish().unwrap();
//! let info = rt.block_on(store.head(&key)).unwrap();
//! let mut r = store.reader(rt.handle(), &key, 0..info.size, info.e_tag.clone(), &transfer);
//! let mut out = String::new();
//! r.read_to_string(&mut out).unwrap();
//! assert_eq!(out, "hello");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "s3")]
mod aws_files;
#[cfg(feature = "s3")]
mod complete_if_match;
mod download;
mod error;
mod local_list;
mod numbered;
mod reads;
mod small;
#[cfg(test)]
mod test_env;
mod upload;
mod url;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{Attribute, GetOptions, ObjectStore, ObjectStoreExt};

pub use download::{RangedReader, RangedStream};
pub use error::{Error, Result};
pub use numbered::MAX_COPY;
pub use reads::{Prefix, ReadCounter};
pub use upload::{ObjectWriter, Precondition, Transfer};
pub use url::{Backend, StoreUrl};

/// The folder name hyok keeps its own objects under (`PREFIX/.hyok/branches/…`, a branch key
/// store in a bucket). [`Store::list`] skips every object inside such a folder, so listing,
/// copying or re-encrypting a prefix never treats them as data.
pub const RESERVED_FOLDER: &str = ".hyok";

/// Whether `key` lies inside a [`RESERVED_FOLDER`] at any depth.
pub fn is_reserved(key: &str) -> bool {
    key.split('/')
        .rev()
        .skip(1)
        .any(|seg| seg == RESERVED_FOLDER)
}

/// Connection settings of a store. Unset fields fall back to the standard AWS variables and
/// shared files, then to AWS defaults.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    /// Endpoint URL of an S3-compatible server (`http://127.0.0.1:9000`); requests are then
    /// path-style (`ENDPOINT/BUCKET/KEY`). Default: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`,
    /// the profile's `endpoint_url`, else AWS itself.
    pub endpoint: Option<String>,
    /// Region. Default: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else
    /// `us-east-1`.
    pub region: Option<String>,
    /// Profile in the shared files. Default: `AWS_PROFILE`, else `default`.
    pub profile: Option<String>,
    /// Retries of transient errors (connection failures, 5xx, throttling). `None`: 10
    /// retries within 3 minutes, with exponential backoff.
    pub retry: Option<RetrySettings>,
    /// Directory recording multipart uploads in flight, so that an upload a crash or an
    /// unreachable server left behind is aborted by a later run. `None` disables it.
    pub journal_dir: Option<PathBuf>,
    /// An endpoint that may be reached over plain `http://` although it is not on this
    /// machine (default: `HYOK_S3_ALLOW_HTTP`). Plain HTTP carries the request signatures,
    /// session tokens and all data unprotected, so it is otherwise refused for anything but
    /// loopback, before any connection is made.
    pub allow_http: Option<String>,
    /// Sign request headers but not bodies (`x-amz-content-sha256: UNSIGNED-PAYLOAD`),
    /// which saves hashing every byte sent. Only for callers whose bodies are authenticated
    /// otherwise (ESDK messages: every frame carries a GCM tag checked on every read); over
    /// `https://` TLS protects them in transit as well.
    pub unsigned_payload: bool,
}

/// Refuse a plain-HTTP `endpoint` unless it is on this machine or named by `allowed`.
pub fn check_plain_http(endpoint: &str, allowed: Option<&str>) -> Result<()> {
    let Some(rest) = endpoint
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("http://"))
        .map(|_| &endpoint[7..])
    else {
        return Ok(());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => hostport.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let norm = |e: &str| e.trim_end_matches('/').to_ascii_lowercase();
    if loopback || allowed.is_some_and(|a| norm(a) == norm(endpoint)) {
        return Ok(());
    }
    Err(Error::Config(format!(
        "refusing plain HTTP to {endpoint}: request signatures, session tokens and data would cross the network unprotected; use https://, or name this endpoint in allow_http (the store's configuration) or HYOK_S3_ALLOW_HTTP if the network is trusted"
    )))
}

/// How transient errors are retried.
#[derive(Clone, Copy, Debug)]
pub struct RetrySettings {
    /// Most retries of one request.
    pub max_retries: usize,
    /// Give up retrying a request after this long.
    pub timeout: Duration,
}

/// What an object's listing or HEAD says about it.
#[derive(Clone, Debug)]
pub struct ObjectInfo {
    /// The object's URL.
    pub url: StoreUrl,
    /// Stored size in bytes.
    pub size: u64,
    /// Last modification time.
    pub last_modified: SystemTime,
    /// Entity tag, when the store has one.
    pub e_tag: Option<String>,
    /// User metadata (S3 `x-amz-meta-*`; empty for local folders and for listings).
    pub metadata: BTreeMap<String, String>,
}

/// An opened store: one bucket of an S3-compatible service or the local file system.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    #[cfg(feature = "s3")]
    multipart: Option<Arc<object_store::aws::AmazonS3>>,
    /// Completes multipart uploads with `If-Match` (S3 only).
    #[cfg(feature = "s3")]
    if_match: Option<Arc<complete_if_match::IfMatchCompleter>>,
    backend: Backend,
    bucket: String,
    endpoint: Option<String>,
    region: Option<String>,
    journal_dir: Option<PathBuf>,
    fetched: Arc<AtomicU64>,
    reads: Arc<ReadCounter>,
}

impl Store {
    /// Build a client for the bucket (or local file system) of `url`. Sends no request.
    pub fn open(url: &StoreUrl, opts: &StoreOptions) -> Result<Self> {
        match url.backend() {
            Backend::Local => Ok(Self {
                inner: Arc::new(object_store::local::LocalFileSystem::new()),
                #[cfg(feature = "s3")]
                multipart: None,
                #[cfg(feature = "s3")]
                if_match: None,
                backend: Backend::Local,
                bucket: String::new(),
                endpoint: None,
                region: None,
                journal_dir: None,
                fetched: Arc::default(),
                reads: Arc::default(),
            }),
            #[cfg(feature = "s3")]
            Backend::S3 => Self::open_s3(url, opts),
            #[cfg(not(feature = "s3"))]
            Backend::S3 => {
                let _ = opts;
                Err(Error::Config(
                    "this hyok was built without S3 support (feature `s3`)".into(),
                ))
            }
        }
    }

    #[cfg(feature = "s3")]
    fn open_s3(url: &StoreUrl, opts: &StoreOptions) -> Result<Self> {
        use object_store::aws::AmazonS3Builder;
        use object_store::{BackoffConfig, ClientOptions, RetryConfig};

        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let profile_name = opts
            .profile
            .clone()
            .or_else(|| env("AWS_PROFILE"))
            .unwrap_or_else(|| "default".into());
        let profile = aws_files::load(&profile_name);
        let endpoint = opts
            .endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or(profile.endpoint_url.clone());
        let region = opts
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or(profile.region.clone())
            .unwrap_or_else(|| "us-east-1".into());
        let retry = opts.retry.unwrap_or(RetrySettings {
            max_retries: 10,
            timeout: Duration::from_secs(180),
        });
        let mut client = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(120))
            .with_user_agent(http_value(concat!("hyok/", env!("CARGO_PKG_VERSION"))));
        if let Some(e) = endpoint.as_deref().filter(|e| {
            e.get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("http://"))
        }) {
            let allowed = opts
                .allow_http
                .clone()
                .or_else(|| env("HYOK_S3_ALLOW_HTTP"));
            check_plain_http(e, allowed.as_deref())?;
            client = client.with_allow_http(true);
        }
        // Start from the standard environment (container and web-identity credentials …),
        // then make the settings hyok resolved itself explicit.
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(url.bucket())
            .with_region(&region)
            .with_client_options(client.clone())
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(8),
                    base: 2.0,
                },
                max_retries: retry.max_retries,
                retry_timeout: retry.timeout,
            });
        if opts.unsigned_payload {
            b = b.with_unsigned_payload(true);
        }
        if let Some(e) = &endpoint {
            b = b
                .with_endpoint(e.trim_end_matches('/'))
                .with_virtual_hosted_style_request(false);
        }
        if env("AWS_ACCESS_KEY_ID").is_none() {
            if let (Some(id), Some(secret)) = (&profile.access_key_id, &profile.secret_access_key) {
                b = b.with_access_key_id(id).with_secret_access_key(secret);
                if let Some(t) = &profile.session_token {
                    b = b.with_token(t);
                }
            } else if env("AWS_EC2_METADATA_DISABLED")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
                && env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_none()
                && env("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_none()
                && env("AWS_WEB_IDENTITY_TOKEN_FILE").is_none()
            {
                // Without this, the client would ask the instance metadata service.
                return Err(Error::Config(format!(
                    "s3://{}: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or keys for profile {profile_name:?} in ~/.aws/credentials (instance metadata is off: AWS_EC2_METADATA_DISABLED)",
                    url.bucket()
                )));
            }
        }
        let if_match = complete_if_match::IfMatchCompleter::new(b.clone(), client);
        let s3 = Arc::new(
            b.build()
                .map_err(|e| Error::Config(format!("s3://{}: {e}", url.bucket())))?,
        );
        Ok(Self {
            inner: s3.clone(),
            multipart: Some(s3),
            if_match: Some(Arc::new(if_match)),
            backend: Backend::S3,
            bucket: url.bucket().to_owned(),
            endpoint: Some(
                endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com")),
            ),
            region: Some(region),
            journal_dir: opts.journal_dir.clone(),
            fetched: Arc::default(),
            reads: Arc::default(),
        })
    }

    /// Wrap any `ObjectStore` (tests, other backends); `bucket` names it in messages.
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, backend: Backend, bucket: &str) -> Self {
        Self {
            inner,
            #[cfg(feature = "s3")]
            multipart: None,
            #[cfg(feature = "s3")]
            if_match: None,
            backend,
            bucket: bucket.to_owned(),
            endpoint: None,
            region: None,
            journal_dir: None,
            fetched: Arc::default(),
            reads: Arc::default(),
        }
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The endpoint requests go to (S3 only).
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The region (S3 only).
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The bucket (empty for local stores).
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Object body bytes received by GETs through this handle so far.
    pub fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    pub(crate) fn path(&self, url: &StoreUrl) -> Result<Path> {
        let key = url.key().trim_end_matches('/');
        Path::parse(key).map_err(|e| Error::InvalidUrl(format!("{url}: {e}")))
    }

    fn url_of(&self, path: &Path) -> StoreUrl {
        StoreUrl::from_parts(self.backend, &self.bucket, path.as_ref())
    }

    /// HEAD one object: size, time, entity tag and user metadata.
    pub async fn head(&self, url: &StoreUrl) -> Result<ObjectInfo> {
        let path = self.path(url)?;
        self.reads.head();
        let res = self
            .inner
            .get_opts(&path, GetOptions::new().with_head(true))
            .await
            .map_err(|e| Error::store("head", url.to_string(), e))?;
        let mut metadata = BTreeMap::new();
        for (k, v) in res.attributes.iter() {
            if let Attribute::Metadata(name) = k {
                metadata.insert(name.to_ascii_lowercase(), v.to_string());
            }
        }
        Ok(ObjectInfo {
            url: url.clone(),
            size: res.meta.size,
            last_modified: res.meta.last_modified.into(),
            e_tag: res.meta.e_tag,
            metadata,
        })
    }

    /// Whether an object exists (HEAD; not-found is `Ok(None)`).
    pub async fn try_head(&self, url: &StoreUrl) -> Result<Option<ObjectInfo>> {
        match self.head(url).await {
            Ok(i) => Ok(Some(i)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET a byte range of an object (end exclusive). `e_tag` pins the version read.
    pub async fn get_range(
        &self,
        url: &StoreUrl,
        range: std::ops::Range<u64>,
        e_tag: Option<&str>,
    ) -> Result<bytes::Bytes> {
        let path = self.path(url)?;
        get_range(&self.inner, &path, range, e_tag, &self.fetched, &self.reads)
            .await
            .map_err(|e| Error::store("download", url.to_string(), e))
    }

    /// As [`Store::get_range`], with the bytes handed on as they arrive instead of collected
    /// (for ranges too large to hold). The stream is exactly the range: one that would end
    /// short of it, or run past it, ends with an error instead.
    pub async fn get_range_stream(
        &self,
        url: &StoreUrl,
        range: std::ops::Range<u64>,
        e_tag: Option<&str>,
    ) -> Result<BoxStream<'static, std::io::Result<bytes::Bytes>>> {
        let path = self.path(url)?;
        let want = range.end.saturating_sub(range.start);
        let got = download::ranged_get(&self.inner, &path, range, e_tag, &self.reads)
            .await
            .map_err(|e| Error::store("download", url.to_string(), e))?;
        let fetched = self.fetched.clone();
        let pieces = got.into_stream().map(move |piece| {
            let piece = piece.map_err(std::io::Error::other)?;
            fetched.fetch_add(piece.len() as u64, Ordering::Relaxed);
            Ok(piece)
        });
        Ok(download::exactly(pieces, want).boxed())
    }

    /// Every object under a prefix (recursive), in the store's order. The URL is read as a
    /// folder (`KEY/`): `s3://b/a` lists `a/x` but not `ab`. Objects inside a
    /// [`RESERVED_FOLDER`] (hyok's own, such as a branch key store) are not listed.
    pub fn list(&self, url: &StoreUrl) -> BoxStream<'static, Result<ObjectInfo>> {
        self.list_from(url, None)
    }

    /// [`Store::list`], only the objects whose key (the whole key in the store, as
    /// [`StoreUrl::key`] gives it) sorts after `offset` (byte order). Both backends list in
    /// key order and start there, reading only as the stream is read: S3 with `start-after`
    /// (a reader that stops early costs one request per 1,000 keys it read), a local folder
    /// by a walk that reads each directory's names and stats only what it returns
    /// (`local_list.rs`).
    pub fn list_after(
        &self,
        url: &StoreUrl,
        offset: &str,
    ) -> BoxStream<'static, Result<ObjectInfo>> {
        self.list_from(url, Some(offset))
    }

    fn list_from(
        &self,
        url: &StoreUrl,
        offset: Option<&str>,
    ) -> BoxStream<'static, Result<ObjectInfo>> {
        let prefix = url.key().trim_end_matches('/');
        let prefix = match Path::parse(prefix) {
            Ok(p) => p,
            Err(e) => {
                let err = Error::InvalidUrl(format!("{url}: {e}"));
                return futures::stream::once(async move { Err(err) }).boxed();
            }
        };
        let this = self.clone();
        let shown = url.to_string();
        let local_missing = url.local_path().is_some_and(|p| !p.exists());
        if local_missing {
            return futures::stream::empty().boxed();
        }
        if url.local_path().is_some() {
            return self.list_local(&prefix, offset, shown);
        }
        // A string that is no valid key (a client's token, say) cannot be sent as one:
        // list from the start then; the filter below keeps the result the same.
        let listed = match offset.and_then(|o| Path::parse(o).ok()) {
            Some(o) => self.inner.list_with_offset(Some(&prefix), &o),
            None => self.inner.list(Some(&prefix)),
        };
        let after = offset.map(str::to_owned);
        listed
            .filter(move |r| {
                let hidden = r.as_ref().is_ok_and(|m| {
                    let key = m.location.as_ref();
                    is_reserved(key) || after.as_deref().is_some_and(|a| key <= a)
                });
                futures::future::ready(!hidden)
            })
            .map(move |r| match r {
                Ok(m) => Ok(ObjectInfo {
                    url: this.url_of(&m.location),
                    size: m.size,
                    last_modified: m.last_modified.into(),
                    e_tag: m.e_tag,
                    metadata: BTreeMap::new(),
                }),
                Err(e) => Err(Error::store("list", shown.clone(), e)),
            })
            .boxed()
    }

    /// A local folder's listing in key order (`local_list.rs`), read on blocking threads
    /// 1,024 objects at a time when a runtime is running.
    fn list_local(
        &self,
        prefix: &Path,
        offset: Option<&str>,
        shown: String,
    ) -> BoxStream<'static, Result<ObjectInfo>> {
        let key = match prefix.as_ref() {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let walk = local_list::Walk::new(
            local_list::folder_of(prefix.as_ref()),
            key,
            offset.map(str::to_owned),
        );
        let this = self.clone();
        let failed = format!("list {shown}");
        let items = walk
            .filter(|r| !r.as_ref().is_ok_and(|f| is_reserved(&f.key)))
            .map(move |r| match r {
                Ok(f) => Ok(ObjectInfo {
                    url: StoreUrl::from_parts(this.backend, &this.bucket, &f.key),
                    size: f.size,
                    last_modified: f.last_modified,
                    e_tag: Some(f.e_tag),
                    metadata: BTreeMap::new(),
                }),
                // As object_store words its local errors (and the CLI's hint for a local
                // folder applies).
                Err(source) => Err(Error::store(
                    "list",
                    shown.clone(),
                    object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(source),
                    },
                )),
            });
        if tokio::runtime::Handle::try_current().is_err() {
            return futures::stream::iter(items).boxed();
        }
        const CHUNK: usize = 1024;
        let state = (
            Some(items),
            std::collections::VecDeque::<Result<ObjectInfo>>::new(),
        );
        futures::stream::unfold(state, move |(mut items, mut buf)| {
            let failed = failed.clone();
            async move {
                if buf.is_empty() {
                    let mut it = items.take()?;
                    match tokio::task::spawn_blocking(move || {
                        let got: std::collections::VecDeque<_> = it.by_ref().take(CHUNK).collect();
                        (it, got)
                    })
                    .await
                    {
                        Ok((it, got)) => {
                            buf = got;
                            // A short chunk was the end (an error ends the walk too).
                            if buf.len() == CHUNK {
                                items = Some(it);
                            }
                        }
                        // Never a listing cut short without a word.
                        Err(e) => buf.push_back(Err(Error::Io {
                            what: failed,
                            source: std::io::Error::other(e.to_string()),
                        })),
                    }
                }
                let next = buf.pop_front()?;
                Some((next, (items, buf)))
            }
        })
        .boxed()
    }

    /// Delete one object (deleting a missing object is not an error on S3).
    pub async fn delete(&self, url: &StoreUrl) -> Result<()> {
        let path = self.path(url)?;
        self.inner
            .delete(&path)
            .await
            .map_err(|e| Error::store("delete", url.to_string(), e))
    }

    /// Delete `url` only while `cond` holds for it, as [`Store::writer_when`] writes: on S3
    /// the DeleteObject carries `If-Match` (checked by the server with the delete), behind a
    /// HEAD for servers that ignore it; in a local folder the HEAD alone (a stat and an
    /// unlink apart). A condition that fails is [`Error::Changed`] and deletes nothing; an
    /// object gone after the HEAD counts as deleted. `Absent` deletes nothing.
    pub async fn delete_when(&self, url: &StoreUrl, cond: &Precondition) -> Result<()> {
        upload::check_precondition(self, url, cond).await?;
        if *cond == Precondition::Absent {
            return Ok(());
        }
        #[cfg(feature = "s3")]
        if let Some(c) = &self.if_match {
            return c.delete(&self.path(url)?, cond, &url.to_string()).await;
        }
        match self.delete(url).await {
            Err(Error::NotFound(_)) => Ok(()),
            r => r,
        }
    }

    /// Delete many objects: on S3 with DeleteObjects, up to 1,000 keys per request, instead
    /// of one request each. An object already missing counts as deleted. Returns the
    /// objects deleted; the first failure ends it (some may have been deleted before).
    pub async fn delete_all(&self, urls: Vec<StoreUrl>) -> Result<Vec<StoreUrl>> {
        let paths = urls
            .iter()
            .map(|u| self.path(u))
            .collect::<Result<Vec<_>>>()?;
        let mut wanted: std::collections::HashMap<Path, StoreUrl> =
            paths.iter().cloned().zip(urls).collect();
        let mut done = Vec::with_capacity(wanted.len());
        let mut results = self
            .inner
            .delete_stream(futures::stream::iter(paths.into_iter().map(Ok)).boxed());
        while let Some(r) = results.next().await {
            match r {
                Ok(p) => done.extend(wanted.remove(&p)),
                Err(object_store::Error::NotFound { path, .. }) => {
                    done.extend(Path::parse(&path).ok().and_then(|p| wanted.remove(&p)));
                }
                Err(e) => return Err(Error::store("delete", self.describe_many(&wanted), e)),
            }
        }
        Ok(done)
    }

    fn describe_many(&self, left: &std::collections::HashMap<Path, StoreUrl>) -> String {
        match left.values().next() {
            Some(u) if left.len() == 1 => u.to_string(),
            Some(u) => format!("{u} and {} more", left.len() - 1),
            None => self.url_of(&Path::default()).to_string(),
        }
    }

    /// A `Write` that stores what is written as the object `url`, with user `metadata`.
    /// Call [`ObjectWriter::finish`] to make the object visible; anything else aborts.
    /// Must be written from a thread that is not a runtime worker (e.g. `spawn_blocking`).
    pub fn writer(
        &self,
        rt: &tokio::runtime::Handle,
        url: &StoreUrl,
        metadata: BTreeMap<String, String>,
        transfer: &Transfer,
    ) -> Result<ObjectWriter> {
        ObjectWriter::start(self, rt, url, metadata, transfer, None)
    }

    /// As [`Self::writer`], but the object replaces `url` only if `url` still has entity tag
    /// `e_tag` when the upload completes (S3 `If-Match`; local folders compare before the
    /// rename); otherwise nothing is replaced and `finish` fails with [`Error::Changed`].
    /// A single PUT is checked by the server atomically. A multipart upload (objects over one
    /// part) and a local folder are checked just before completion: a writer that lands in
    /// between (milliseconds) is not detected.
    pub fn writer_if_match(
        &self,
        rt: &tokio::runtime::Handle,
        url: &StoreUrl,
        metadata: BTreeMap<String, String>,
        transfer: &Transfer,
        e_tag: &str,
    ) -> Result<ObjectWriter> {
        let cond = Precondition::Matches(e_tag.to_owned());
        self.writer_when(rt, url, metadata, transfer, cond)
    }

    /// As [`Self::writer`], with a [`Precondition`] on the object it writes: `Matches` as
    /// [`Self::writer_if_match`]; `Absent` creates the object only if there is none (S3
    /// `If-None-Match: *` on the PUT or the completion; local folders look just before the
    /// rename). A failed condition replaces nothing: `finish` fails with [`Error::Changed`].
    pub fn writer_when(
        &self,
        rt: &tokio::runtime::Handle,
        url: &StoreUrl,
        metadata: BTreeMap<String, String>,
        transfer: &Transfer,
        cond: Precondition,
    ) -> Result<ObjectWriter> {
        ObjectWriter::start(self, rt, url, metadata, transfer, Some(cond))
    }

    /// A `Read` of the bytes `range` of `url`, fetched with parallel ranged GETs (pinned to
    /// `e_tag` when given). Must be read from a thread that is not a runtime worker.
    pub fn reader(
        &self,
        rt: &tokio::runtime::Handle,
        url: &StoreUrl,
        range: std::ops::Range<u64>,
        e_tag: Option<String>,
        transfer: &Transfer,
    ) -> RangedReader {
        RangedReader::start(self, rt, url, range, e_tag, transfer)
    }

    /// As [`Store::reader`], a `Stream` of the bytes for async callers; the GETs run on `rt`.
    pub fn range_stream(
        &self,
        rt: &tokio::runtime::Handle,
        url: &StoreUrl,
        range: std::ops::Range<u64>,
        e_tag: Option<String>,
        transfer: &Transfer,
    ) -> RangedStream {
        RangedStream::start(self, rt, url, range, e_tag, transfer)
    }

    /// Abort multipart uploads to this bucket that an earlier, failed run recorded and could
    /// not abort (for example because the server was unreachable). Returns how many.
    pub async fn abort_stale_uploads(&self) -> Result<usize> {
        upload::abort_stale(self).await
    }
}

pub(crate) async fn get_range(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    range: std::ops::Range<u64>,
    e_tag: Option<&str>,
    fetched: &AtomicU64,
    reads: &ReadCounter,
) -> object_store::Result<bytes::Bytes> {
    let bytes = download::ranged_get(store, path, range, e_tag, reads)
        .await?
        .bytes()
        .await?;
    fetched.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    Ok(bytes)
}

#[cfg(feature = "s3")]
fn http_value(s: &'static str) -> object_store::HeaderValue {
    object_store::HeaderValue::from_static(s)
}

#[cfg(test)]
mod plain_http_tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_or_a_named_endpoint() {
        for ok in [
            "http://127.0.0.1:9000",
            "HTTP://127.0.0.2:9000/",
            "http://localhost:9000",
            "http://[::1]:9000",
            "https://s3.example.com",
            "https://u@10.0.0.1",
        ] {
            assert!(check_plain_http(ok, None).is_ok(), "{ok}");
        }
        for refused in [
            "http://s3.example.com",
            "http://10.0.0.5:9000",
            "http://127.0.0.1.evil.example:9000",
            "http://localhost@evil.example",
            "http://[fe80::1]:9000",
        ] {
            let e = check_plain_http(refused, None).unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{refused}");
            assert!(e.to_string().contains("allow_http"), "{e}");
        }
        assert!(check_plain_http("http://minio.lan:9000", Some("http://minio.lan:9000/")).is_ok());
        assert!(check_plain_http("http://minio.lan:9000", Some("http://other.lan:9000")).is_err());
    }

    #[cfg(feature = "s3")]
    #[test]
    fn opening_a_plain_http_store_off_loopback_fails_without_a_request() {
        let url = StoreUrl::parse("s3://bucket/prefix/").unwrap();
        let opts = StoreOptions {
            endpoint: Some("http://192.0.2.1:9".into()),
            ..Default::default()
        };
        // TEST-NET-1: nothing answers there; `open` fails on the setting alone.
        assert!(matches!(Store::open(&url, &opts), Err(Error::Config(_))));
        let opts = StoreOptions {
            allow_http: Some("http://192.0.2.1:9".into()),
            ..opts
        };
        assert!(Store::open(&url, &opts).is_ok());
    }
}
