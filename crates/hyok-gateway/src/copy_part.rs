//! UploadPartCopy: a part of a multipart upload copied from a stored object (the aws cli
//! copies objects of 8 MiB and more between S3 locations this way: `aws s3 cp s3://… s3://…`,
//! `mv`, `sync`). The source's plaintext (its `x-amz-copy-source-range`, or all of it) is
//! decrypted under the caller's keys and handed to UploadPart as the part's body, so the
//! part is sealed exactly as a client's part of that size would be (in place, direct or
//! staged) and gets the same kind of ETag. Nothing is copied on the backend: a backend copy
//! would carry the source's frames, sealed under another message's key and nonces.

use std::ops::Range;

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::authorize::Scope;
use crate::service::{copy_source_conditions, copy_source_of, Gateway};

/// Largest part a copy makes, as on S3.
const MAX_COPY_PART: u64 = 5 * 1024 * 1024 * 1024;

pub(crate) async fn upload_part_copy(
    g: &Gateway,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let i = &req.input;
    let caller = g.authorize_bucket(&req.credentials, &i.bucket, "upload", Scope::Write(&i.key))?;
    let (sb, sk) = copy_source_of(&i.copy_source)?;
    crate::refuse::sse_c(i.sse_customer_algorithm.as_deref())?;
    crate::refuse::sse_c(i.copy_source_sse_customer_algorithm.as_deref())?;
    g.may_object(&caller, &sb, &sk)?;
    g.decide(&caller, hyok::policy::Action::Get, &sb, &sk)?;
    let ranged = i.copy_source_range.is_some();
    let (_, url, prefix, d) = g
        .prefix_or_404(&sb, &sk, hyok::objects::prefix_len(ranged))
        .await?;
    copy_source_conditions!(d, i)?;
    let range = match i.copy_source_range.as_deref() {
        Some(r) => source_range(r, d.size)?,
        None => 0..d.size,
    };
    let len = range.end - range.start;
    if len > MAX_COPY_PART {
        return Err(s3_error!(
            InvalidRequest,
            "a copied part is at most 5 GiB: give x-amz-copy-source-range"
        ));
    }
    let objects = g.objects(&caller, &sb)?;
    let (body, reading) = if len > 0 {
        // Without a range, the whole object, read as a GET without one (`prefix` fits that).
        let (stream, thread) = g.plaintext(objects, url, prefix, ranged.then_some(range));
        (StreamingBlob::wrap(stream), Some(thread))
    } else {
        let none = futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
        (StreamingBlob::wrap(none), None)
    };
    let part = req.map_input(|i| UploadPartInput {
        body: Some(body),
        bucket: i.bucket,
        key: i.key,
        upload_id: i.upload_id,
        part_number: i.part_number,
        content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
        expected_bucket_owner: i.expected_bucket_owner,
        ..Default::default()
    });
    let out = match crate::multipart::upload_part(g, part).await {
        Ok(r) => r.output,
        // A source that could not be decrypted (another keyring's, damaged) is the reason,
        // not the body UploadPart saw end early.
        Err(e) => match reading {
            Some(thread) => match thread.await {
                Ok(Err(read)) => return Err(read),
                _ => return Err(e),
            },
            None => return Err(e),
        },
    };
    Ok(S3Response::new(UploadPartCopyOutput {
        server_side_encryption: crate::service::at_rest(),
        copy_part_result: Some(CopyPartResult {
            e_tag: out.e_tag,
            last_modified: Some(Timestamp::from(std::time::SystemTime::now())),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// `x-amz-copy-source-range`: `bytes=FIRST-LAST`, both given, inside an object of `size`
/// bytes (S3 accepts no other form here: no suffix, no open end).
pub(crate) fn source_range(text: &str, size: u64) -> S3Result<Range<u64>> {
    let bad = || {
        s3_error!(
            InvalidArgument,
            "x-amz-copy-source-range must be bytes=FIRST-LAST inside the source object of {size} bytes"
        )
    };
    let (first, last) = text
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (number(first), number(last)) {
        (Some(a), Some(b)) if a <= b && b < size => Ok(a..b + 1),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::source_range;

    #[test]
    fn copy_source_ranges() {
        assert_eq!(source_range("bytes=0-9", 10).unwrap(), 0..10);
        assert_eq!(source_range("bytes=5-5", 10).unwrap(), 5..6);
        for bad in [
            "bytes=0-10",
            "bytes=5-4",
            "bytes=-5",
            "bytes=5-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes= 1-2",
            "bytes=0-1,3-4",
            "0-1",
            "bytes=18446744073709551616-1",
            "",
        ] {
            assert!(source_range(bad, 10).is_err(), "{bad}");
        }
        assert!(
            source_range("bytes=0-0", 0).is_err(),
            "nothing to copy from an empty object"
        );
    }
}
