//! Conditional writes: `If-Match` and `If-None-Match` on PutObject and
//! CompleteMultipartUpload, `If-Match` on DeleteObject (docs/DESIGN.md, "Conditional
//! writes"). Applications use them as locks (`If-None-Match: *`: create only) and for
//! optimistic concurrency (`If-Match: ETAG`: replace only what was read), so a condition
//! is never ignored: it is checked against the object's S3 ETag (the one clients see) before
//! anything is written, and the write itself then carries a backend condition (the
//! backend's entity tag of what was checked, or "no object"), so a writer that lands in
//! between makes it fail rather than be overwritten.

use hyok::store::Precondition;
use s3s::dto::ETagCondition;
use s3s::{s3_error, S3Result};

use crate::meta;
use crate::service::{etag_matches, to_s3, Gateway};

impl Gateway {
    /// Check a write's conditions on `bucket`/`key`. `Ok(Some(cond))`: they held, and the
    /// write must carry `cond` to the backend (the backend entity tag of the object that
    /// `If-Match` matched, or `Absent` for `If-None-Match: *`).
    pub(crate) async fn check_write(
        &self,
        bucket: &str,
        key: &str,
        if_match: Option<&ETagCondition>,
        if_none_match: Option<&ETagCondition>,
    ) -> S3Result<Option<Precondition>> {
        if if_match.is_none() && if_none_match.is_none() {
            return Ok(None);
        }
        if if_none_match.is_some_and(|c| !c.is_any()) {
            return Err(s3_error!(
                NotImplemented,
                "If-None-Match on a write takes only `*` (create only)"
            ));
        }
        let store = self.backend.store(bucket)?;
        let url = self.backend.object_url(bucket, key)?;
        let exists = || s3_error!(PreconditionFailed, "If-None-Match: * and the object exists");
        let Some(cond) = if_match else {
            // Existence is all `If-None-Match: *` asks: a HEAD, whatever the object holds.
            return match store.try_head(&url).await.map_err(|e| to_s3(e.into()))? {
                Some(_) => Err(exists()),
                None => Ok(Some(Precondition::Absent)),
            };
        };
        let found = self
            .describe_prefix(&store, &url, meta::HEADER_PREFIX)
            .await?;
        if if_none_match.is_some() && found.is_some() {
            return Err(exists());
        }
        match found {
            None => {
                self.backend.require_bucket(bucket).await?;
                Err(s3_error!(
                    NoSuchKey,
                    "If-Match and the object does not exist"
                ))
            }
            Some((_, d)) if !etag_matches(cond, &d.etag) => Err(s3_error!(
                PreconditionFailed,
                "If-Match and the object has another ETag"
            )),
            Some((prefix, _)) => Ok(prefix.info.e_tag.map(Precondition::Matches)),
        }
    }
}

/// A write whose backend condition failed (the object changed, or appeared, after the
/// check): what S3 answers.
pub(crate) fn changed() -> s3s::S3Error {
    s3_error!(
        PreconditionFailed,
        "the object changed while the conditional write was in progress"
    )
}

/// The answer to a failed write that carried a backend condition: 412 when the condition
/// failed, what [`to_s3`] says otherwise.
pub(crate) fn write_failed(e: hyok::Error) -> s3s::S3Error {
    match e {
        hyok::Error::Store(hyok::store::Error::Changed(_)) => changed(),
        e => to_s3(e),
    }
}

/// A CopyObject's conditions on its destination, from its `If-Match` and `If-None-Match`
/// headers; one that does not parse is InvalidArgument, never dropped.
pub(crate) fn destination(
    headers: &hyper::HeaderMap,
) -> S3Result<(Option<ETagCondition>, Option<ETagCondition>)> {
    let one = |name: hyper::header::HeaderName| -> S3Result<Option<ETagCondition>> {
        match headers.get(&name) {
            None => Ok(None),
            Some(v) => ETagCondition::parse_http_header(v.as_bytes())
                .map(Some)
                .map_err(|_| s3_error!(InvalidArgument, "the {name} header is not an entity tag")),
        }
    };
    Ok((
        one(hyper::header::IF_MATCH)?,
        one(hyper::header::IF_NONE_MATCH)?,
    ))
}
