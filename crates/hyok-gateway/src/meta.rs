//! What the gateway stores about an object besides its bytes, and where: in the message's
//! encryption context (authenticated by the header tag, readable from the header without a
//! key, the same on every backend), next to the location binding `hyok cp` uses.
//!
//! | context key | value |
//! | --- | --- |
//! | `hyok-gw-etag` | the S3 ETag (MD5 of the plaintext for single-part uploads) |
//! | `hyok-gw-content-type` | `Content-Type` |
//! | `hyok-gw-content-encoding`, `-content-disposition`, `-content-language`, `-cache-control`, `-expires` | those headers (`Expires` as an HTTP date) |
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
/// Context keys of the other headers S3 keeps with an object.
const CTX_CONTENT_ENCODING: &str = "hyok-gw-content-encoding";
const CTX_CONTENT_DISPOSITION: &str = "hyok-gw-content-disposition";
const CTX_CONTENT_LANGUAGE: &str = "hyok-gw-content-language";
const CTX_CACHE_CONTROL: &str = "hyok-gw-cache-control";
const CTX_EXPIRES: &str = "hyok-gw-expires";
/// S3's limit on user metadata (bytes of names and values).
const MAX_USER_METADATA: usize = 2048;
/// Limit on the content headers kept with an object, together.
const MAX_CONTENT_HEADERS: usize = 8192;
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
    /// Content type, the other stored headers, user metadata.
    pub(crate) attrs: Attributes,
    /// The header's context.
    pub(crate) context: EncryptionContext,
}

/// What S3 keeps with an object as the writer set it and returns on GET and HEAD: the
/// content headers and the user metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Attributes {
    /// `Content-Type`.
    pub(crate) content_type: Option<String>,
    /// `Content-Encoding`.
    pub(crate) content_encoding: Option<String>,
    /// `Content-Disposition`.
    pub(crate) content_disposition: Option<String>,
    /// `Content-Language`.
    pub(crate) content_language: Option<String>,
    /// `Cache-Control`.
    pub(crate) cache_control: Option<String>,
    /// `Expires`, as an HTTP date.
    pub(crate) expires: Option<String>,
    /// User metadata (`x-amz-meta-NAME`), names in lower case.
    pub(crate) metadata: BTreeMap<String, String>,
}

/// The [`Attributes`] of a request that writes an object (PutObject, CreateMultipartUpload,
/// CopyObject with `REPLACE`): the s3s inputs share these field names.
macro_rules! attributes_of {
    ($i:expr) => {
        $crate::meta::Attributes {
            content_type: $i.content_type.clone(),
            content_encoding: $crate::meta::stored_encoding($i.content_encoding.as_deref()),
            content_disposition: $i.content_disposition.clone(),
            content_language: $i.content_language.clone(),
            cache_control: $i.cache_control.clone(),
            expires: $i.expires.as_ref().and_then($crate::meta::http_date),
            metadata: $i
                .metadata
                .clone()
                .map(|m| m.into_iter().collect())
                .unwrap_or_default(),
        }
    };
}
pub(crate) use attributes_of;

/// The attributes a GET or HEAD answers with: `d`'s, with the request's `response-*`
/// overrides (S3 honours them on signed requests, which every request here is).
macro_rules! answered {
    ($d:expr, $i:expr) => {{
        let mut a = $d.attrs.clone();
        let i = &$i;
        for (over, field) in [
            (&i.response_content_type, &mut a.content_type),
            (&i.response_content_encoding, &mut a.content_encoding),
            (&i.response_content_disposition, &mut a.content_disposition),
            (&i.response_content_language, &mut a.content_language),
            (&i.response_cache_control, &mut a.cache_control),
        ] {
            if let Some(v) = over {
                *field = Some(v.clone());
            }
        }
        if let Some(t) = i
            .response_expires
            .as_ref()
            .and_then($crate::meta::http_date)
        {
            a.expires = Some(t);
        }
        a
    }};
}
pub(crate) use answered;

/// The `Content-Encoding` S3 keeps: the request's as it was sent, or, when it names
/// `aws-chunked` (which only says how this request's body was framed), the other codings.
pub(crate) fn stored_encoding(e: Option<&str>) -> Option<String> {
    let e = e?;
    let chunked = |c: &str| c.trim().eq_ignore_ascii_case("aws-chunked");
    if !e.split(',').any(chunked) {
        return (!e.trim().is_empty()).then(|| e.to_owned());
    }
    let kept: Vec<&str> = e
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && !chunked(c))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// A timestamp as an HTTP date.
pub(crate) fn http_date(t: &s3s::dto::Timestamp) -> Option<String> {
    let mut out = Vec::new();
    t.format(s3s::dto::TimestampFormat::HttpDate, &mut out)
        .ok()?;
    String::from_utf8(out).ok()
}

impl Attributes {
    /// The content headers, with their context keys.
    pub(crate) fn headers(&self) -> [(&'static str, &Option<String>); 6] {
        [
            (CTX_CONTENT_TYPE, &self.content_type),
            (CTX_CONTENT_ENCODING, &self.content_encoding),
            (CTX_CONTENT_DISPOSITION, &self.content_disposition),
            (CTX_CONTENT_LANGUAGE, &self.content_language),
            (CTX_CACHE_CONTROL, &self.cache_control),
            (CTX_EXPIRES, &self.expires),
        ]
    }

    /// S3's bounds: user metadata at most 2 KiB (names and values, UTF-8 bytes), and here
    /// the content headers at most 8 KiB together, so that the header of the message (whose
    /// context holds all of them) stays small.
    pub(crate) fn check(&self) -> s3s::S3Result<()> {
        let user: usize = self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if user > MAX_USER_METADATA {
            return Err(s3s::s3_error!(
                MetadataTooLarge,
                "user metadata is {user} bytes; at most {MAX_USER_METADATA} are allowed"
            ));
        }
        let headers: usize = self
            .headers()
            .iter()
            .map(|(_, v)| v.as_ref().map_or(0, String::len))
            .sum();
        if headers > MAX_CONTENT_HEADERS {
            return Err(s3s::s3_error!(
                MetadataTooLarge,
                "the content headers are {headers} bytes; at most {MAX_CONTENT_HEADERS} are allowed"
            ));
        }
        Ok(())
    }

    /// `Expires` for a response (`None` if the stored date does not parse).
    pub(crate) fn expires_timestamp(&self) -> Option<s3s::dto::Timestamp> {
        let e = self.expires.as_deref()?;
        s3s::dto::Timestamp::parse(s3s::dto::TimestampFormat::HttpDate, e).ok()
    }
}

/// The context pairs that describe an object (its attributes, ETag).
pub(crate) fn object_context(attrs: &Attributes, etag: Option<&str>) -> EncryptionContext {
    let mut ctx = EncryptionContext::new();
    for (k, v) in attrs.headers() {
        if let Some(v) = v {
            ctx.insert(k, v.as_str());
        }
    }
    for (k, v) in &attrs.metadata {
        ctx.insert(format!("{CTX_META}{}", k.to_ascii_lowercase()), v.as_str());
    }
    if let Some(e) = etag {
        ctx.insert(CTX_ETAG, e);
    }
    ctx
}

/// An object's attributes from its context.
pub(crate) fn attributes(ctx: &EncryptionContext) -> Attributes {
    let get = |k: &str| ctx.get(k).map(str::to_owned);
    Attributes {
        content_type: get(CTX_CONTENT_TYPE),
        content_encoding: get(CTX_CONTENT_ENCODING),
        content_disposition: get(CTX_CONTENT_DISPOSITION),
        content_language: get(CTX_CONTENT_LANGUAGE),
        cache_control: get(CTX_CACHE_CONTROL),
        expires: get(CTX_EXPIRES),
        metadata: ctx
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(CTX_META)?.to_owned(), v.to_owned())))
            .collect(),
    }
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

/// Describe an object that is no message this gateway can read (see `unreadable` in
/// `service.rs`) from what the backend shows of it: its stored size and the backend's
/// entity tag. Listings and HEAD show it so; GET answers InvalidObjectState.
pub(crate) fn stored_only(info: &ObjectInfo) -> ObjectDesc {
    ObjectDesc {
        size: info.size,
        etag: info
            .e_tag
            .as_deref()
            .map(|t| t.trim_matches('"').to_owned())
            .unwrap_or_default(),
        last_modified: info.last_modified,
        attrs: Attributes::default(),
        context: EncryptionContext::default(),
    }
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
    let attrs = attributes(ctx);
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
        attrs,
        context: ctx.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_chunked_is_not_a_stored_encoding() {
        assert_eq!(stored_encoding(None), None);
        assert_eq!(stored_encoding(Some("aws-chunked")), None);
        assert_eq!(stored_encoding(Some("gzip")).as_deref(), Some("gzip"));
        assert_eq!(
            stored_encoding(Some("aws-chunked,gzip")).as_deref(),
            Some("gzip")
        );
        assert_eq!(
            stored_encoding(Some("gzip, AWS-Chunked")).as_deref(),
            Some("gzip")
        );
        assert_eq!(
            stored_encoding(Some("br, gzip")).as_deref(),
            Some("br, gzip")
        );
        // Kept as sent unless aws-chunked is taken out.
        assert_eq!(
            stored_encoding(Some("deflate,gzip")).as_deref(),
            Some("deflate,gzip")
        );
        assert_eq!(
            stored_encoding(Some("br,aws-chunked,gzip")).as_deref(),
            Some("br, gzip")
        );
        assert_eq!(stored_encoding(Some(" ")), None);
    }

    #[test]
    fn attributes_round_trip_through_the_context() {
        let a = Attributes {
            content_type: Some("text/csv".into()),
            content_encoding: Some("gzip".into()),
            content_disposition: Some("attachment; filename=\"r.csv\"".into()),
            content_language: Some("de-CH".into()),
            cache_control: Some("max-age=60".into()),
            expires: Some("Wed, 21 Oct 2037 07:28:00 GMT".into()),
            metadata: [("origin".to_owned(), "test".to_owned())].into(),
        };
        let ctx = object_context(&a, Some("abc"));
        assert_eq!(attributes(&ctx), a);
        assert_eq!(ctx.get(CTX_ETAG), Some("abc"));
        assert!(a.expires_timestamp().is_some());
        assert!(a.check().is_ok());
        let big = Attributes {
            metadata: [("k".to_owned(), "v".repeat(2048))].into(),
            ..Attributes::default()
        };
        assert!(big.check().is_err());
        let long = Attributes {
            cache_control: Some("x".repeat(8193)),
            ..Attributes::default()
        };
        assert!(long.check().is_err());
    }
}
