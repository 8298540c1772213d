//! ListObjectVersions of the gateway's buckets, which are unversioned and never were: every
//! object is its own only version, `null`, and the latest; there are no delete markers. S3
//! answers the same for such a bucket. Tools list versions to empty a bucket before deleting
//! it (Terraform's `force_destroy`, the Ceph s3-tests' clean-up, consoles) or to find
//! every copy of a key, and failed on NotImplemented.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::service::{common, ts, Gateway};

/// The only version id an object of an unversioned bucket has.
const NULL: &str = "null";

pub(crate) async fn list(
    g: &Gateway,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let i = req.input;
    let prefix = i.prefix.clone().unwrap_or_default();
    let after = markers(i.key_marker.as_deref(), i.version_id_marker.as_deref())?;
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
    let versions = page
        .objects
        .into_iter()
        .map(|(key, d)| ObjectVersion {
            key: Some(enc.apply(key)),
            version_id: Some(NULL.to_owned()),
            is_latest: Some(true),
            size: Some(i64::try_from(d.size).unwrap_or(i64::MAX)),
            e_tag: Some(ETag::Strong(d.etag)),
            last_modified: Some(ts(d.last_modified)),
            storage_class: Some(ObjectVersionStorageClass::from_static(
                ObjectVersionStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect();
    // Where the next page starts: after this key (or common prefix), all its versions.
    let next = page.truncated.then_some(page.next).flatten();
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(i.bucket.clone()),
        prefix: Some(enc.apply(prefix)),
        delimiter: enc.opt(i.delimiter.clone().filter(|d| !d.is_empty())),
        key_marker: Some(enc.apply(i.key_marker.clone().unwrap_or_default())),
        version_id_marker: Some(i.version_id_marker.clone().unwrap_or_default()),
        max_keys: i.max_keys.or(Some(1000)),
        is_truncated: Some(page.truncated),
        next_version_id_marker: next.as_ref().map(|_| NULL.to_owned()),
        next_key_marker: enc.opt(next),
        versions: Some(versions),
        common_prefixes: common(page.prefixes, enc),
        encoding_type: enc.answer(),
        ..Default::default()
    }))
}

/// The key a listing starts after. With one version per key, a page that ended at key K
/// (version `null`) goes on after K whether or not the version marker is given; a version
/// marker needs a key marker and can only be `null`, as S3 answers.
fn markers<'a>(key: Option<&'a str>, version: Option<&str>) -> S3Result<Option<&'a str>> {
    let key = key.filter(|k| !k.is_empty());
    match (key, version.filter(|v| !v.is_empty())) {
        (None, Some(_)) => Err(s3_error!(
            InvalidArgument,
            "A version-id marker cannot be specified without a key marker."
        )),
        (_, Some(v)) if v != NULL => {
            Err(s3_error!(InvalidArgument, "Invalid version id specified"))
        }
        (k, _) => Ok(k),
    }
}

#[cfg(test)]
mod tests {
    use super::markers;

    #[test]
    fn version_markers_are_null_and_need_a_key_marker() {
        assert_eq!(markers(None, None).unwrap(), None);
        assert_eq!(markers(Some(""), None).unwrap(), None);
        assert_eq!(markers(Some("k"), None).unwrap(), Some("k"));
        assert_eq!(markers(Some("k"), Some("null")).unwrap(), Some("k"));
        assert_eq!(markers(Some("k"), Some("")).unwrap(), Some("k"));
        assert!(markers(None, Some("null")).is_err());
        assert!(markers(Some("k"), Some("3HL4kqtJlcpXroDTDmJ")).is_err());
    }
}
