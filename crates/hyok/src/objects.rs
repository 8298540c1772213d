//! Encrypted objects in a store: each object is one complete ESDK message, plus user metadata
//! (S3) that describes it without downloading the body.
//!
//! Upload and download are blocking calls meant for a blocking thread (`spawn_blocking`):
//! the frame crypto runs there while the store's async client runs on the runtime whose
//! handle the [`Objects`] holds.
//!
//! By default the encryption context of every object includes its location,
//! [`CTX_BUCKET`] and [`CTX_KEY`], and a download refuses an object whose header names
//! another location, so a ciphertext moved or renamed by someone with write access to the
//! bucket is detected. [`Objects::bind_location`] turns this off for new objects; objects
//! written that way can be moved freely, and are read only with binding off too (with it
//! on, an unbound object is refused: it could be a message from elsewhere swapped in).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufReader, Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyok_core::{ContentType, EncryptedDataKey, Header, HeaderLimits, ParsedHeader, TAG_LEN};
use hyok_store::{Backend, ObjectInfo, Precondition, Prefix, Store, StoreUrl, Transfer};
use tokio::runtime::Handle;

#[path = "objects_presealed.rs"]
mod presealed;
#[path = "objects_streamed.rs"]
mod streamed;

pub use streamed::PlaintextStream;

use crate::policy::{Action, Principal, Resource};
use crate::{Client, EncryptionContext, Error, OpLabel, Result};

/// Encryption context key holding the object's bucket (`(local)` for local folders).
pub const CTX_BUCKET: &str = "hyok-bucket";
/// Encryption context key holding the object's key (the absolute path for local folders).
pub const CTX_KEY: &str = "hyok-key";
/// Bucket value of local-folder objects.
pub const LOCAL_BUCKET: &str = "(local)";

/// Metadata: version of this object layout (`1`).
pub const META_LAYOUT: &str = "hyok-layout";
/// Metadata: ESDK message format version (`2`).
pub const META_MESSAGE_FORMAT: &str = "hyok-message-format";
/// Metadata: algorithm suite id (`0x0478`).
pub const META_SUITE: &str = "hyok-suite";
/// Metadata: wrapping keys, `PROVIDER/KEY-NAME` separated by `,` (percent-encoded).
pub const META_KEYS: &str = "hyok-wrapping-keys";
/// Metadata: frame length.
pub const META_FRAME_LEN: &str = "hyok-frame-length";
/// Metadata: header length (where the body starts).
pub const META_HEADER_LEN: &str = "hyok-header-length";
/// Metadata: plaintext length, when known before the upload.
pub const META_PLAINTEXT_LEN: &str = "hyok-plaintext-length";
/// Metadata: modification time of the source file (`SECONDS.NANOS`), for resuming.
pub const META_SOURCE_MTIME: &str = "hyok-source-mtime";
/// Metadata: `bound` when the location is in the encryption context, else `unbound`.
pub const META_LOCATION: &str = "hyok-location";

/// Largest header read when describing or range-reading an object.
const MAX_HEADER: u64 = 16 * 1024 * 1024;
/// The first read of an object's header when examining it: most headers fit, and so do
/// small objects whole (one GET per small object when re-encrypting). Latency, not bytes, is
/// the cost here.
pub(crate) const FIRST_READ: u64 = 16 << 10;
/// What a download of a whole object reads with its first GET: objects up to this size
/// cost one request.
pub const GET_PREFIX: u64 = 1 << 20;
/// What a ranged download reads first: the header and the first 64 KiB frame of a usual
/// message, so a small object or a range in its first frame is one request, and a range
/// elsewhere moves little more than its frames (a longer header is read on).
pub const RANGE_PREFIX: u64 = 128 * 1024;

/// How many bytes the first GET of a download asks for: [`RANGE_PREFIX`] for a ranged one,
/// else [`GET_PREFIX`].
pub fn prefix_len(ranged: bool) -> u64 {
    if ranged {
        RANGE_PREFIX
    } else {
        GET_PREFIX
    }
}

const IO_BUF: usize = 1 << 20;

/// The buffer between a GET's body and its decryptor: at most one decryption batch, so that
/// the batch's reads (all but the header's and a frame's rest) bypass it instead of passing
/// through it (a copy of every byte; 4 % of the gateway's CPU on downloads, whose batches are
/// 256 KiB).
fn read_buffer(opts: &hyok_core::DecryptOptions) -> usize {
    IO_BUF.min(opts.batch_bytes.max(64 << 10))
}

/// An inclusive byte range of plaintext, as in HTTP `Range: bytes=START-END`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive); `None` means to the end.
    pub end: Option<u64>,
}

impl std::str::FromStr for ByteRange {
    type Err = String;

    /// `START-END` or `START-` (inclusive, from 0).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("expected START-END, got {s:?}"))?;
        let start: u64 = a
            .parse()
            .map_err(|_| format!("range start {a:?} is not a number"))?;
        let end = if b.is_empty() {
            None
        } else {
            let e: u64 = b
                .parse()
                .map_err(|_| format!("range end {b:?} is not a number"))?;
            if e < start {
                return Err(format!("range end {e} is before its start {start}"));
            }
            Some(e)
        };
        Ok(Self { start, end })
    }
}

/// What a stored object is, from its metadata or its header.
#[derive(Clone, Debug)]
pub struct ObjectSummary {
    /// The object.
    pub url: StoreUrl,
    /// Bytes stored.
    pub stored_len: u64,
    /// Last modification of the stored object.
    pub last_modified: SystemTime,
    /// Whether it is an ESDK message hyok can read (`false`: foreign or unreadable header).
    pub is_message: bool,
    /// Plaintext length, when known.
    pub plaintext_len: Option<u64>,
    /// Suite id (`0x0478`).
    pub suite: Option<String>,
    /// Wrapping keys, `PROVIDER/KEY-NAME`.
    pub wrapping_keys: Vec<String>,
    /// The stored encryption context (only from the header: `describe(…, true)`).
    pub context: Option<EncryptionContext>,
    /// The source's modification time recorded at upload (local folders: the file's).
    pub source_mtime: Option<SystemTime>,
}

/// What an upload did.
#[derive(Clone, Copy, Debug)]
pub struct PutReport {
    /// Plaintext bytes read.
    pub plaintext_len: u64,
    /// Bytes stored.
    pub stored_len: u64,
}

/// What a download did.
#[derive(Clone, Copy, Debug)]
pub struct GetReport {
    /// Plaintext bytes written.
    pub plaintext_len: u64,
    /// The source mtime recorded with the object (or its last modification).
    pub mtime: SystemTime,
    /// Object bytes received from the store.
    pub fetched: u64,
}

/// An upload's description of its source.
#[derive(Clone, Debug, Default)]
pub struct Source {
    /// Plaintext length, when known in advance (a file).
    pub len: Option<u64>,
    /// Modification time of a source file.
    pub mtime: Option<SystemTime>,
    /// Caller's encryption context pairs.
    pub context: EncryptionContext,
}

/// The encryption context pairs that bind an object to its location.
pub fn location_context(url: &StoreUrl) -> EncryptionContext {
    let mut ctx = EncryptionContext::new();
    match url.backend() {
        Backend::S3 => {
            ctx.insert(CTX_BUCKET, url.bucket());
            ctx.insert(CTX_KEY, url.key());
        }
        Backend::Local => {
            ctx.insert(CTX_BUCKET, LOCAL_BUCKET);
            ctx.insert(CTX_KEY, format!("/{}", url.key()));
        }
    }
    ctx
}

/// `PROVIDER/KEY-NAME` of an EDK as stored in object metadata (percent-encoded there):
/// the key name ([`hyok_keystore::edk_key_name`]) as UTF-8, or hex when it is not. Not
/// escaped: escape it before it reaches a terminal.
pub fn edk_label(edk: &EncryptedDataKey) -> String {
    let name = hyok_keystore::edk_key_name(edk);
    let name = match std::str::from_utf8(name) {
        Ok(s) => s.to_owned(),
        Err(_) => name.iter().map(|b| format!("{b:02x}")).collect(),
    };
    format!("{}/{}", edk.provider_id, name)
}

fn encode_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

pub(crate) fn decode_time(s: &str) -> Option<SystemTime> {
    let (a, b) = s.split_once('.').unwrap_or((s, "0"));
    let secs: u64 = a.parse().ok()?;
    let nanos: u32 = b.parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos.min(999_999_999)))
}

/// Whether two modification times are the same (to the millisecond: file systems differ).
pub fn same_time(a: SystemTime, b: SystemTime) -> bool {
    let d = match a.duration_since(b) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    d < Duration::from_millis(1)
}

const KEY_LIST_SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b',').add(b'%');

/// Encrypts into and decrypts out of one store.
#[derive(Clone, Debug)]
pub struct Objects {
    client: Client,
    catalog: Catalog,
    transfer: Transfer,
    bind_location: bool,
    actor: Option<String>,
}

impl Objects {
    /// Objects of `store`, with keys of `client`; async work runs on `rt`.
    pub fn new(client: Client, store: Store, transfer: Transfer, rt: Handle) -> Self {
        let mut catalog = Catalog::new(store, rt);
        catalog.limits = client.settings().limits;
        Self {
            client,
            catalog,
            transfer,
            bind_location: true,
            actor: None,
        }
    }

    /// Name the party these objects are read and written for (a gateway credential): the
    /// audit records of their key uses then say `s3://B/K (for ACTOR)`.
    /// With policies configured, the credential is also the principal of every decision.
    pub fn acting_for(mut self, actor: Option<String>) -> Self {
        if let (Some(a), Some(g)) = (&actor, self.client.guard()) {
            let g = g
                .for_principal(Principal::Credential(a.clone()))
                .via("gateway");
            self.client = self.client.clone().with_guard(Some(g));
        }
        self.actor = actor;
        self
    }

    /// Ask the policy (when one is configured) whether `action` on the object `url` is
    /// allowed, and record the decision; for front ends that touch the store before
    /// calling [`Self::get`] or [`Self::put`] (the gateway's HEAD of the object).
    pub fn check_policy(&self, action: Action, url: &StoreUrl) -> Result<()> {
        self.authorize(action, url, &EncryptionContext::new())
            .map(|_| ())
    }

    /// Ask the policy (when one is configured) whether `action` on the object `url` is
    /// allowed, before any storage or key-store call; the client returned asks again, on
    /// the same object, for the key use (`encrypt`, `decrypt`) with the message's context.
    fn authorize(&self, action: Action, url: &StoreUrl, ctx: &EncryptionContext) -> Result<Client> {
        let Some(g) = self.client.guard() else {
            return Ok(self.client.clone());
        };
        let store = &self.catalog.store;
        let g = g
            .on(Resource::object(url))
            .at(store.region(), store.endpoint());
        g.check(action, None, ctx, Some(self.client.settings().suite.id()))?;
        Ok(self.client.clone().with_guard(Some(g)))
    }

    /// The audit label of an operation on `url`.
    fn label(&self, url: &StoreUrl) -> OpLabel {
        OpLabel {
            subject: Some(match &self.actor {
                Some(a) => format!("{url} (for {a})"),
                None => url.to_string(),
            }),
            ..Default::default()
        }
    }

    /// The key-less view of the store: describing objects.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Describe an object (see [`Catalog::describe`]).
    pub fn describe(&self, info: &ObjectInfo, long: bool) -> ObjectSummary {
        self.catalog.describe(info, long)
    }

    /// HEAD and describe one object (see [`Catalog::describe_url`]).
    pub fn describe_url(&self, url: &StoreUrl) -> Result<Option<ObjectSummary>> {
        self.catalog.describe_url(url)
    }

    /// See [`Catalog::holds_copy_of`].
    pub fn holds_copy_of(&self, url: &StoreUrl, len: u64, mtime: SystemTime) -> Result<bool> {
        self.catalog.holds_copy_of(url, len, mtime)
    }

    /// Whether new objects bind their bucket and key into the encryption context (default
    /// true). Reading always checks a binding that an object has; with binding on it also
    /// refuses an object bound to no location ([`Error::ObjectUnbound`]).
    pub fn bind_location(mut self, on: bool) -> Self {
        self.bind_location = on;
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.catalog.store
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The runtime handle async store and key calls run on.
    pub fn runtime(&self) -> &Handle {
        &self.catalog.rt
    }

    /// The transfer settings (part size, parts in flight).
    pub fn transfer(&self) -> &Transfer {
        &self.transfer
    }

    /// Encrypt everything `src` yields into the object `url` (blocking). Nothing becomes
    /// visible unless the whole message was written; any failure aborts the upload.
    pub fn put(&self, url: &StoreUrl, src: &mut dyn Read, source: &Source) -> Result<PutReport> {
        self.put_inner(url, src, source, None)
    }

    /// As [`Self::put`], with a condition on the object it writes (see
    /// [`Store::writer_when`]): a failed one stores nothing and the error is
    /// [`hyok_store::Error::Changed`].
    pub fn put_when(
        &self,
        url: &StoreUrl,
        src: &mut dyn Read,
        source: &Source,
        cond: Precondition,
    ) -> Result<PutReport> {
        self.put_inner(url, src, source, Some(cond))
    }

    /// As [`Self::put`], but the new object replaces `url` only while `url` still has entity
    /// tag `e_tag` (see [`Store::writer_if_match`]); a changed object is left alone and the
    /// error is [`hyok_store::Error::Changed`].
    pub fn put_if_match(
        &self,
        url: &StoreUrl,
        src: &mut dyn Read,
        source: &Source,
        e_tag: &str,
    ) -> Result<PutReport> {
        self.put_inner(
            url,
            src,
            source,
            Some(Precondition::Matches(e_tag.to_owned())),
        )
    }

    /// The encryption context of a new message at `url`: the caller's pairs and, when
    /// bound, the location pairs.
    fn message_context(&self, url: &StoreUrl, source: &Source) -> Result<EncryptionContext> {
        let mut ctx = source.context.clone();
        if self.bind_location {
            for (k, v) in location_context(url).iter() {
                if ctx.contains_key(k) {
                    return Err(Error::Config(format!(
                        "the encryption context key {k:?} is reserved for the object's location"
                    )));
                }
                ctx.insert(k, v);
            }
        }
        Ok(ctx)
    }

    /// The backend metadata of a new message with `edks` from `source`.
    fn message_meta(&self, edks: &[EncryptedDataKey], source: &Source) -> BTreeMap<String, String> {
        let suite = self.client.settings().suite;
        let mut meta = BTreeMap::new();
        meta.insert(META_LAYOUT.to_owned(), "1".to_owned());
        meta.insert(
            META_MESSAGE_FORMAT.to_owned(),
            suite.message_format_version().to_string(),
        );
        meta.insert(META_SUITE.to_owned(), format!("0x{:04X}", suite.id()));
        let keys: Vec<String> = edks
            .iter()
            .map(|e| percent_encoding::utf8_percent_encode(&edk_label(e), KEY_LIST_SET).to_string())
            .collect();
        meta.insert(META_KEYS.to_owned(), keys.join(","));
        meta.insert(
            META_FRAME_LEN.to_owned(),
            self.client.settings().encrypt.frame_length.to_string(),
        );
        if let Some(n) = source.len {
            meta.insert(META_PLAINTEXT_LEN.to_owned(), n.to_string());
        }
        if let Some(t) = source.mtime {
            meta.insert(META_SOURCE_MTIME.to_owned(), encode_time(t));
        }
        meta.insert(
            META_LOCATION.to_owned(),
            if self.bind_location {
                "bound"
            } else {
                "unbound"
            }
            .to_owned(),
        );
        meta
    }

    fn put_inner(
        &self,
        url: &StoreUrl,
        src: &mut dyn Read,
        source: &Source,
        cond: Option<Precondition>,
    ) -> Result<PutReport> {
        let ctx = self.message_context(url, source)?;
        let client = self.authorize(Action::Put, url, &ctx)?;
        let label = self.label(url);
        let materials = self.catalog.rt.block_on(client.encryption_materials(
            &ctx,
            &BTreeSet::new(),
            source.len.unwrap_or(u64::MAX),
            &label,
        ))?;
        let meta = self.message_meta(materials.edks(), source);
        let mut writer = match cond {
            None => self
                .catalog
                .store
                .writer(&self.catalog.rt, url, meta, &self.transfer)?,
            Some(cond) => {
                self.catalog
                    .store
                    .writer_when(&self.catalog.rt, url, meta, &self.transfer, cond)?
            }
        };
        let handle = writer.metadata();
        let res = (|| -> Result<u64> {
            let mut enc = self.client.encryptor(&mut writer, materials)?;
            let header_len = enc.header().encode_body()?.len() + TAG_LEN;
            if let Ok(mut m) = handle.lock() {
                m.insert(META_HEADER_LEN.to_owned(), header_len.to_string());
            }
            let n = copy(src, &mut enc, "uploading", |e| Error::Io {
                what: "reading the source".into(),
                source: e,
            })?;
            if let Some(len) = source.len {
                if n != len {
                    return Err(Error::Io {
                        what: format!(
                            "the source changed size while being read ({len} → {n} bytes)"
                        ),
                        source: io::Error::other("source changed"),
                    });
                }
            }
            enc.finish()?;
            Ok(n)
        })();
        match res {
            Ok(n) => {
                let stored_len = writer.finish()?;
                if let (Some(path), Some(t)) = (url.local_path(), source.mtime) {
                    set_mtime(&path, t)?;
                }
                Ok(PutReport {
                    plaintext_len: n,
                    stored_len,
                })
            }
            Err(e) => match writer.abort() {
                // The store's own failure is the root cause of a failed write.
                Some(upload_err) => Err(upload_err.into()),
                None => Err(e),
            },
        }
    }

    /// Decrypt the object `url` (all of it, or `range` of its plaintext) into `out`
    /// (blocking). Every byte written has been authenticated; on error, the caller must
    /// discard what was written (an atomic output does).
    pub fn get(
        &self,
        url: &StoreUrl,
        out: &mut dyn Write,
        range: Option<ByteRange>,
        reproduced: &EncryptionContext,
    ) -> Result<GetReport> {
        self.get_inspecting(url, out, range, reproduced, &mut |_| {})
    }

    /// As [`Self::get`], calling `on_header` with the message's header after it was read
    /// and before any plaintext is written (a caller that writes to a stream uses it to hold
    /// back the plaintext of signed messages until the signature verified).
    pub fn get_inspecting(
        &self,
        url: &StoreUrl,
        out: &mut dyn Write,
        range: Option<ByteRange>,
        reproduced: &EncryptionContext,
        on_header: &mut dyn FnMut(&Header),
    ) -> Result<GetReport> {
        let client = self.authorize(Action::Get, url, reproduced)?;
        let prefix = self.catalog.rt.block_on(
            self.catalog
                .store
                .get_prefix(url, prefix_len(range.is_some())),
        )?;
        self.get_read(&client, url, prefix, out, range, reproduced, on_header)
    }

    /// As [`Self::get`], continuing a read that the caller began with
    /// [`Store::get_prefix`] (a front end that described the object from its first bytes,
    /// e.g. for response headers): the bytes already read are not asked for again, so a
    /// small object costs one GET in all. `prefix` must be of `url`; the rest of the object
    /// is read pinned to the prefix's entity tag.
    pub fn get_prefetched(
        &self,
        url: &StoreUrl,
        prefix: Prefix,
        out: &mut dyn Write,
        range: Option<ByteRange>,
        reproduced: &EncryptionContext,
    ) -> Result<GetReport> {
        let client = self.authorize(Action::Get, url, reproduced)?;
        self.get_read(&client, url, prefix, out, range, reproduced, &mut |_| {})
    }

    #[allow(clippy::too_many_arguments)] // get's arguments, plus what it looked up
    fn get_read(
        &self,
        client: &Client,
        url: &StoreUrl,
        prefix: Prefix,
        out: &mut dyn Write,
        range: Option<ByteRange>,
        reproduced: &EncryptionContext,
        on_header: &mut dyn FnMut(&Header),
    ) -> Result<GetReport> {
        let before = self.catalog.store.bytes_fetched();
        let label = self.label(url);
        let info = &prefix.info;
        let mtime = info
            .metadata
            .get(META_SOURCE_MTIME)
            .and_then(|s| decode_time(s))
            .unwrap_or(info.last_modified);
        let n = match range {
            None => {
                let reader = self.body_reader(url, &prefix, 0..info.size);
                let cap = read_buffer(&self.client.settings().decrypt);
                let mut reader = BufReader::with_capacity(cap, reader);
                let parsed = self.client.read_header(&mut reader)?;
                check_location(url, &parsed.header, self.bind_location)?;
                on_header(&parsed.header);
                let verified = self
                    .catalog
                    .rt
                    .block_on(client.open(parsed, reproduced, &label))?;
                let mut dec = self.client.decryptor(verified, reader);
                crate::plain_out::write_plaintext(&mut dec, out, 0, None, "writing the output")?
            }
            Some(r) => {
                self.get_range(client, url, &prefix, r, out, reproduced, &label, on_header)?
            }
        };
        Ok(GetReport {
            plaintext_len: n,
            mtime,
            fetched: self.catalog.store.bytes_fetched() - before + prefix.bytes.len() as u64,
        })
    }

    /// The bytes `range` of the object: from `prefix` as far as it holds them, the rest
    /// with parallel ranged GETs pinned to the prefix's entity tag.
    fn body_reader(
        &self,
        url: &StoreUrl,
        prefix: &Prefix,
        range: std::ops::Range<u64>,
    ) -> Box<dyn Read + Send> {
        let have = prefix.bytes.len() as u64;
        let held = if range.start < have {
            prefix
                .bytes
                .slice(range.start as usize..range.end.min(have) as usize)
        } else {
            Default::default()
        };
        let rest = range.start.max(have)..range.end;
        if rest.is_empty() {
            return Box::new(io::Cursor::new(held));
        }
        let transfer = self.fetch_transfer(rest.end - rest.start);
        let reader = self.catalog.store.reader(
            &self.catalog.rt,
            url,
            rest,
            prefix.info.e_tag.clone(),
            &transfer,
        );
        Box::new(io::Cursor::new(held).chain(reader))
    }

    /// The transfer that fetches `len` bytes of an object: a rest a little over one part (a
    /// client's 8 MiB range: 8 MiB of frames plus the frames' tags and the partial frames at
    /// both ends) is one GET, not a part and a sliver.
    fn fetch_transfer(&self, len: u64) -> Transfer {
        let part = self.transfer.part_size() as u64;
        if len <= part + part / 4 {
            self.transfer
                .with_part_size(usize::try_from(len).unwrap_or(usize::MAX))
        } else {
            self.transfer.clone()
        }
    }

    #[allow(clippy::too_many_arguments)] // the same arguments as get, plus what it looked up
    fn get_range(
        &self,
        client: &Client,
        url: &StoreUrl,
        prefix: &Prefix,
        r: ByteRange,
        out: &mut dyn Write,
        reproduced: &EncryptionContext,
        label: &OpLabel,
        on_header: &mut dyn FnMut(&Header),
    ) -> Result<u64> {
        let info = &prefix.info;
        if info.size == 0 {
            return Err(Error::Format(hyok_core::Error::Truncated("header")));
        }
        let parsed = self.catalog.header_of(prefix)?;
        on_header(&parsed.header);
        let suite = parsed.header.suite;
        if suite.signature().is_some() {
            return Err(Error::Range(format!(
                "{url} uses the signed suite 0x{:04X}: its signature covers the whole message, so a byte range cannot be authenticated alone; download the whole object",
                suite.id()
            )));
        }
        if parsed.header.content_type != ContentType::Framed {
            return Err(Error::Range(format!(
                "{url} is a non-framed message; download the whole object"
            )));
        }
        check_location(url, &parsed.header, self.bind_location)?;
        let w = FrameWindow::of(url, &parsed, info.size, r)?;
        let verified = self
            .catalog
            .rt
            .block_on(client.open(parsed, reproduced, label))?;
        let reader = self.body_reader(url, prefix, w.bytes.clone());
        let mut dec = verified.frame_range_decryptor(
            BufReader::with_capacity(read_buffer(&self.client.settings().decrypt), reader),
            w.first,
            w.last,
            self.client.settings().decrypt.clone(),
        )?;
        let n = crate::plain_out::write_plaintext(
            &mut dec,
            out,
            w.skip,
            Some(w.want),
            "writing the output",
        )?;
        if n != w.want {
            return Err(Error::Format(hyok_core::Error::Truncated("frame")));
        }
        Ok(n)
    }
}

/// What a ranged read of a framed message fetches and releases.
#[derive(Clone, Debug)]
struct FrameWindow {
    /// The frames that hold the range (sequence numbers from 1).
    first: u32,
    last: u32,
    /// Their bytes in the object.
    bytes: std::ops::Range<u64>,
    /// Plaintext of those frames before the range, and the range's length.
    skip: u64,
    want: u64,
}

impl FrameWindow {
    /// The window of `r` in the object `url` of `size` bytes with header `parsed`.
    fn of(url: &StoreUrl, parsed: &ParsedHeader, size: u64, r: ByteRange) -> Result<Self> {
        let h = parsed.wire_len() as u64;
        let header = &parsed.header;
        let f = u64::from(header.frame_length);
        let (n_regular, last_len) = size
            .checked_sub(h)
            .and_then(|body| header.framed_layout(body))
            .ok_or_else(|| {
                Error::Range(format!(
                    "{url}: the object's size does not match a framed message (truncated or not an unsigned message)"
                ))
            })?;
        let total = n_regular * f + last_len;
        if r.start >= total {
            return Err(Error::Range(format!(
                "range starts at byte {} but {url} has {total} bytes of plaintext",
                r.start
            )));
        }
        let end = r.end.map_or(total - 1, |e| e.min(total - 1));
        let first = u32::try_from(r.start / f + 1)
            .map_err(|_| Error::Range("range beyond the last frame".into()))?;
        let last = u32::try_from(end / f + 1)
            .map_err(|_| Error::Range("range beyond the last frame".into()))?;
        let from = h + header.frame_offset(first);
        let to = if u64::from(last) > n_regular {
            size
        } else {
            h + header.frame_offset(last + 1)
        };
        Ok(Self {
            first,
            last,
            bytes: from..to,
            skip: r.start - u64::from(first - 1) * f,
            want: end - r.start + 1,
        })
    }
}

/// Describes the objects of one store without any key: what `ls` needs.
#[derive(Clone, Debug)]
pub struct Catalog {
    store: Store,
    rt: Handle,
    limits: HeaderLimits,
}

impl Catalog {
    /// The objects of `store`; async work runs on `rt`.
    pub fn new(store: Store, rt: Handle) -> Self {
        Self {
            store,
            rt,
            limits: HeaderLimits::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The runtime handle async store calls run on.
    pub fn runtime(&self) -> &Handle {
        &self.rt
    }

    /// Describe an object from its metadata, or from its header when the metadata does not
    /// say (local folders, objects written by other tools) or `long` asks for the context.
    pub fn describe(&self, info: &ObjectInfo, long: bool) -> ObjectSummary {
        let mut s = ObjectSummary {
            url: info.url.clone(),
            stored_len: info.size,
            last_modified: info.last_modified,
            is_message: false,
            plaintext_len: None,
            suite: None,
            wrapping_keys: Vec::new(),
            context: None,
            source_mtime: info
                .metadata
                .get(META_SOURCE_MTIME)
                .and_then(|t| decode_time(t)),
        };
        if self.store.backend() == Backend::Local {
            s.source_mtime = Some(info.last_modified);
        }
        let m = &info.metadata;
        if m.contains_key(META_LAYOUT) && !long {
            s.is_message = true;
            s.suite = m.get(META_SUITE).cloned();
            s.wrapping_keys = m
                .get(META_KEYS)
                .map(|k| {
                    k.split(',')
                        .filter(|x| !x.is_empty())
                        .map(|x| {
                            percent_encoding::percent_decode_str(x)
                                .decode_utf8_lossy()
                                .into_owned()
                        })
                        .collect()
                })
                .unwrap_or_default();
            let num = |k: &str| m.get(k).and_then(|v| v.parse::<u64>().ok());
            s.plaintext_len = num(META_PLAINTEXT_LEN).or_else(|| {
                let hl = num(META_HEADER_LEN)?;
                let f = num(META_FRAME_LEN)?;
                if s.suite.as_deref() != Some("0x0478") {
                    return None;
                }
                let body = info.size.checked_sub(hl)?;
                let rest = body.checked_sub(hyok_core::FINAL_FRAME_OVERHEAD)?;
                let reg = f + hyok_core::REGULAR_FRAME_OVERHEAD;
                Some(rest / reg * f + rest % reg)
            });
            return s;
        }
        let Ok(parsed) = self.read_header(info) else {
            return s;
        };
        let h = &parsed.header;
        s.is_message = true;
        s.suite = Some(format!("0x{:04X}", h.suite.id()));
        s.wrapping_keys = h.edks.iter().map(edk_label).collect();
        s.context = Some(h.context.clone());
        if h.suite.signature().is_none() {
            s.plaintext_len = info
                .size
                .checked_sub(parsed.wire_len() as u64)
                .and_then(|b| h.framed_layout(b))
                .map(|(n, last)| n * u64::from(h.frame_length) + last);
        }
        if let Some(n) = info
            .metadata
            .get(META_PLAINTEXT_LEN)
            .and_then(|v| v.parse().ok())
        {
            s.plaintext_len = Some(n);
        }
        s
    }

    /// HEAD and describe one object (`None` when it does not exist).
    pub fn describe_url(&self, url: &StoreUrl) -> Result<Option<ObjectSummary>> {
        Ok(self
            .rt
            .block_on(self.store.try_head(url))?
            .map(|info| self.describe(&info, false)))
    }

    /// Whether `url` already holds a complete copy of a source of `len` bytes modified at
    /// `mtime` (resuming an interrupted recursive copy).
    pub fn holds_copy_of(&self, url: &StoreUrl, len: u64, mtime: SystemTime) -> Result<bool> {
        let Some(s) = self.describe_url(url)? else {
            return Ok(false);
        };
        Ok(s.is_message
            && s.plaintext_len == Some(len)
            && s.source_mtime.is_some_and(|t| same_time(t, mtime)))
    }

    /// Parse the header of an object from its first bytes, reading more (pinned to its
    /// entity tag) only when the header is longer than they are.
    pub fn header_of(&self, prefix: &Prefix) -> Result<ParsedHeader> {
        match ParsedHeader::read(&mut &prefix.bytes[..], self.limits) {
            Ok(p) => Ok(p),
            Err(hyok_core::Error::Truncated(_)) if !prefix.is_whole() => {
                self.read_header(&prefix.info)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Read and parse the header of an object (ranged GETs pinned to its entity tag): the
    /// first 16 KiB, more when the header is longer.
    pub fn read_header(&self, info: &ObjectInfo) -> Result<ParsedHeader> {
        let mut n = FIRST_READ.min(info.size);
        loop {
            let bytes =
                self.rt
                    .block_on(self.store.get_range(&info.url, 0..n, info.e_tag.as_deref()));
            let bytes = bytes?;
            match ParsedHeader::read(&mut &bytes[..], self.limits) {
                Ok(p) => return Ok(p),
                Err(hyok_core::Error::Truncated(_)) if n < info.size && n < MAX_HEADER => {
                    n = (n * 8).min(info.size).min(MAX_HEADER);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Refuse an object whose header binds it to another location, and (with binding on)
/// one that is bound to none: otherwise a message uploaded elsewhere with binding off,
/// under the same key, could be swapped in for a bound object.
pub(crate) fn check_location(url: &StoreUrl, header: &Header, bind: bool) -> Result<()> {
    let expected = location_context(url);
    let stored = &header.context;
    let (b, k) = (stored.get(CTX_BUCKET), stored.get(CTX_KEY));
    if b.is_none() && k.is_none() {
        if bind {
            return Err(Error::ObjectUnbound {
                object: url.to_string(),
            });
        }
        return Ok(());
    }
    if b != expected.get(CTX_BUCKET) || k != expected.get(CTX_KEY) {
        // The stored pairs come from the object: escaped before they are shown.
        let key = crate::text::escape_str(k.unwrap_or("?"));
        let bound = match b {
            Some(LOCAL_BUCKET) => format!("file://{key}"),
            Some(bucket) => format!("s3://{}/{key}", crate::text::escape_str(bucket)),
            None => format!("key {key}"),
        };
        return Err(Error::ObjectMoved {
            object: url.to_string(),
            bound_to: bound,
        });
    }
    Ok(())
}

/// Where the object `rel` (its key below the prefix being downloaded, `/`-separated)
/// goes under the local directory `root`. Refuses a key with an empty, `.` or `..`
/// segment or a NUL byte, whatever the store allowed: such a key could write outside
/// `root` (or onto another object's file).
pub fn local_target(root: &std::path::Path, rel: &str) -> Result<std::path::PathBuf> {
    let mut target = root.to_path_buf();
    for seg in rel.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.contains('\0') {
            return Err(Error::UnsafeObjectName {
                object: rel.to_owned(),
                root: root.display().to_string(),
            });
        }
        target.push(seg);
    }
    Ok(target)
}

/// Set a file's modification time.
pub fn set_mtime(path: &std::path::Path, t: SystemTime) -> Result<()> {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(t))
        .map_err(|e| Error::Io {
            what: format!("setting the modification time of {}", path.display()),
            source: e,
        })
}

/// Copy with a large buffer; read errors are converted by `on_read`, write errors are
/// described by `what`.
fn copy(
    r: &mut dyn Read,
    w: &mut dyn Write,
    what: &str,
    on_read: impl Fn(io::Error) -> Error,
) -> Result<u64> {
    // Reads land page-aligned: the kernel copies into a misaligned buffer several times
    // slower on some CPUs (a large Vec starts 16 bytes past a page boundary).
    let mut backing = vec![0u8; IO_BUF + 4096];
    let start = backing.as_ptr().align_offset(4096).min(4096);
    let buf = &mut backing[start..start + IO_BUF];
    let mut total = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(on_read(e)),
        };
        w.write_all(&buf[..n]).map_err(|e| Error::Io {
            what: what.to_owned(),
            source: e,
        })?;
        total += n as u64;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {

    #[test]
    fn local_targets_stay_under_the_download_directory() {
        let root = std::path::Path::new("/tmp/dl");
        assert_eq!(
            local_target(root, "a/b.txt").unwrap(),
            std::path::PathBuf::from("/tmp/dl/a/b.txt")
        );
        for bad in [
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "/abs",
            "a/",
            "",
            "..",
            "a\0b",
        ] {
            assert!(
                matches!(local_target(root, bad), Err(Error::UnsafeObjectName { .. })),
                "{bad:?}"
            );
        }
    }

    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(
            "0-9".parse::<ByteRange>().unwrap(),
            ByteRange {
                start: 0,
                end: Some(9)
            }
        );
        assert_eq!(
            "5-".parse::<ByteRange>().unwrap(),
            ByteRange {
                start: 5,
                end: None
            }
        );
        assert!("9-5".parse::<ByteRange>().is_err());
        assert!("x-5".parse::<ByteRange>().is_err());
        assert!("5".parse::<ByteRange>().is_err());
    }

    #[test]
    fn times_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(decode_time(&encode_time(t)), Some(t));
        assert!(same_time(t, t + Duration::from_micros(10)));
        assert!(!same_time(t, t + Duration::from_secs(1)));
    }
}
