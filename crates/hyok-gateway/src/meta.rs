//! What the gateway stores about an object besides its bytes, and where: in the message's
//! encryption context (authenticated by the header tag, readable from the header without a
//! key, the same on every backend), next to the location binding `hyok cp` uses.
//!
//! | context key | value |
//! | --- | --- |
//! | `hyok-gw-etag` | the S3 ETag (MD5 of the plaintext for single-part uploads) |
//! | `hyok-gw-content-type` | `Content-Type` |
//! | `hyok-gw-meta-NAME` | user metadata `x-amz-meta-NAME` |
//! | `hyok-gw-upload-key` | (multipart staging only) the key the upload completes into |

use std::collections::BTreeMap;
use std::time::SystemTime;

use hyok::store::{ObjectInfo, Prefix, Store};
use hyok::{EncryptionContext, Header, HeaderLimits, ParsedHeader};

/// Context key of the ETag.
pub(crate) const CTX_ETAG: &str = "hyok-gw-etag";
/// Context key of the content type.
pub(crate) const CTX_CONTENT_TYPE: &str = "hyok-gw-content-type";
/// Prefix of user metadata keys.
pub(crate) const CTX_META: &str = "hyok-gw-meta-";
/// Context key naming the object a multipart upload completes into.
pub(crate) const CTX_UPLOAD_KEY: &str = "hyok-gw-upload-key";

/// Largest header read.
const MAX_HEADER: u64 = 1 << 20;
/// What describing an object reads first (a header is usually far shorter; a longer one
/// is read on).
pub(crate) const HEADER_PREFIX: u64 = 4096;

/// What a client sees of a stored object.
#[derive(Clone, Debug)]
pub(crate) struct ObjectDesc {
    /// Plaintext length.
    pub(crate) size: u64,
    /// ETag (without quotes).
    pub(crate) etag: String,
    /// Last modification of the stored object.
    pub(crate) last_modified: SystemTime,
    /// Content type.
    pub(crate) content_type: Option<String>,
    /// User metadata.
    pub(crate) metadata: BTreeMap<String, String>,
    /// The header's context.
    pub(crate) context: EncryptionContext,
}

/// The context pairs that describe an object (content type, user metadata, ETag).
pub(crate) fn object_context(
    content_type: Option<&str>,
    metadata: Option<&BTreeMap<String, String>>,
    etag: Option<&str>,
) -> EncryptionContext {
    let mut ctx = EncryptionContext::new();
    if let Some(t) = content_type {
        ctx.insert(CTX_CONTENT_TYPE, t);
    }
    for (k, v) in metadata.into_iter().flatten() {
        ctx.insert(format!("{CTX_META}{}", k.to_ascii_lowercase()), v.as_str());
    }
    if let Some(e) = etag {
        ctx.insert(CTX_ETAG, e);
    }
    ctx
}

/// Content type and user metadata from a context.
pub(crate) fn attributes(ctx: &EncryptionContext) -> (Option<String>, BTreeMap<String, String>) {
    let meta = ctx
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(CTX_META)?.to_owned(), v.to_owned())))
        .collect();
    (ctx.get(CTX_CONTENT_TYPE).map(str::to_owned), meta)
}

/// Read an object's header without any key (a small ranged GET, grown if needed).
pub(crate) async fn read_header(
    store: &Store,
    info: &ObjectInfo,
    limits: HeaderLimits,
) -> hyok::Result<ParsedHeader> {
    let mut n = 4096u64.min(info.size);
    loop {
        let bytes = store
            .get_range(&info.url, 0..n, info.e_tag.as_deref())
            .await?;
        match ParsedHeader::read(&mut &bytes[..], limits) {
            Ok(p) => return Ok(p),
            Err(e) => {
                let truncated = matches!(e, hyok::FormatError::Truncated(_));
                if truncated && n < info.size && n < MAX_HEADER {
                    n = (n * 8).min(info.size).min(MAX_HEADER);
                    continue;
                }
                return Err(e.into());
            }
        }
    }
}

/// Parse an object's header from its first bytes, reading on (pinned to its entity tag)
/// only when the header is longer than they are.
pub(crate) async fn header_of(
    store: &Store,
    prefix: &Prefix,
    limits: HeaderLimits,
) -> hyok::Result<ParsedHeader> {
    match ParsedHeader::read(&mut &prefix.bytes[..], limits) {
        Ok(p) => Ok(p),
        Err(hyok::FormatError::Truncated(_)) if !prefix.is_whole() => {
            read_header(store, &prefix.info, limits).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The plaintext length of a framed, unsigned message of `stored` bytes.
pub(crate) fn plaintext_len(parsed: &ParsedHeader, stored: u64) -> Option<u64> {
    let h: &Header = &parsed.header;
    if h.suite.signature().is_some() {
        return None;
    }
    let (n, last) = stored
        .checked_sub(parsed.wire_len() as u64)
        .and_then(|b| h.framed_layout(b))?;
    Some(n * u64::from(h.frame_length) + last)
}

/// Describe an object from its backend listing entry and its header.
pub(crate) fn describe(info: &ObjectInfo, parsed: &ParsedHeader) -> ObjectDesc {
    let ctx = &parsed.header.context;
    let etag = ctx.get(CTX_ETAG).map(str::to_owned).unwrap_or_else(|| {
        // Not written by the gateway (e.g. `hyok cp`): a stable tag that no client takes
        // for an MD5 (the `-N` form).
        let id = &parsed.header.message_id;
        format!("{}-1", hex::encode(&id[..id.len().min(16)]))
    });
    let (content_type, metadata) = attributes(ctx);
    ObjectDesc {
        size: plaintext_len(parsed, info.size)
            .or_else(|| {
                info.metadata
                    .get(hyok::objects::META_PLAINTEXT_LEN)
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(info.size),
        etag,
        last_modified: info.last_modified,
        content_type,
        metadata,
        context: ctx.clone(),
    }
}
