//! What a request may ask for that the gateway cannot do, answered with an error instead of
//! being skipped: skipping would store or return something other than what the client
//! asked for, without telling it.
//!
//! - Appends (`x-amz-write-offset-bytes`) would replace the object with the appended bytes.
//! - Object lock (retention, legal hold) would leave the object unprotected.
//! - SSE-C (customer-provided keys): S3 then refuses a read without the key; here the key
//!   would be ignored and anyone with access could read.
//! - Version ids other than `null`: buckets here are unversioned, so the current object
//!   is the only one, and it is not the version asked for (a delete would remove it).
//! - `partNumber` above 1 on GET and HEAD: every object answers as one part (no
//!   `x-amz-mp-parts-count`), so part 2 does not exist.
//! - `${filename}` in a POST form's key: the file's name is not known here, and the upload
//!   would land at the literal key.

use s3s::dto::{PutObjectInput, Range};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};

/// A PutObject's settings that cannot be honoured.
pub(crate) fn put(i: &PutObjectInput) -> S3Result<()> {
    if i.write_offset_bytes.is_some() {
        return Err(s3_error!(
            NotImplemented,
            "appends (x-amz-write-offset-bytes) are not supported"
        ));
    }
    object_lock!(i)?;
    sse_c(i.sse_customer_algorithm.as_deref())
}

/// Object lock settings on a write request (PutObject, CreateMultipartUpload, CopyObject:
/// the s3s inputs share these field names).
macro_rules! object_lock {
    ($i:expr) => {
        $crate::refuse::lock_asked(
            $i.object_lock_mode.is_some()
                || $i.object_lock_retain_until_date.is_some()
                || $i.object_lock_legal_hold_status.is_some(),
        )
    };
}
pub(crate) use object_lock;

/// Refuse a write that asked for object lock (`any`).
pub(crate) fn lock_asked(any: bool) -> S3Result<()> {
    if any {
        return Err(s3_error!(
            NotImplemented,
            "object lock (retention, legal hold) is not supported"
        ));
    }
    Ok(())
}

/// An SSE-C algorithm header on any request.
pub(crate) fn sse_c(algorithm: Option<&str>) -> S3Result<()> {
    if algorithm.is_some() {
        return Err(s3_error!(
            NotImplemented,
            "customer-provided keys (SSE-C) are not supported: objects are encrypted under the keyring's keys"
        ));
    }
    Ok(())
}

/// A browser-form upload (POST) whose `key` field asks for `${filename}` to be replaced by
/// the uploaded file's name, as S3 does: s3s does not pass the file's name on, and storing
/// the key as written would put every upload at the same literal key.
pub(crate) fn post_filename(method: &hyper::Method, key: &str) -> S3Result<()> {
    if method == hyper::Method::POST && key.contains("${filename}") {
        return Err(s3_error!(
            NotImplemented,
            "${{filename}} in the key of a POST form upload is not supported: give the whole key"
        ));
    }
    Ok(())
}

/// A version id on a read or delete (`null` is the current object of an unversioned bucket).
pub(crate) fn version(id: Option<&str>) -> S3Result<()> {
    match id {
        None | Some("null") => Ok(()),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "invalid version id: buckets of the gateway are not versioned"
        )),
    }
}

/// `partNumber` on GET or HEAD: part 1 is the whole object (and no range may come with it).
pub(crate) fn part_number(n: Option<i32>, range: Option<&Range>) -> S3Result<()> {
    match (n, range) {
        (None, _) | (Some(1), None) => Ok(()),
        (Some(1), Some(_)) => Err(s3_error!(
            InvalidRequest,
            "a range and partNumber cannot be given together"
        )),
        (Some(n), _) if (2..=10_000).contains(&n) => {
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("InvalidPartNumber".into()),
                "the requested part number is not satisfiable: every object here is one part",
            );
            e.set_status_code(hyper::StatusCode::RANGE_NOT_SATISFIABLE);
            Err(e)
        }
        _ => Err(s3_error!(
            InvalidArgument,
            "partNumber must be between 1 and 10000"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_filename_is_refused_only_in_post_forms() {
        let post = hyper::Method::POST;
        assert!(post_filename(&post, "up/${filename}").is_err());
        assert!(post_filename(&post, "up/name.txt").is_ok());
        assert!(post_filename(&hyper::Method::PUT, "up/${filename}").is_ok());
    }

    #[test]
    fn part_numbers_and_versions() {
        let range = Range::Int {
            first: 0,
            last: Some(9),
        };
        assert!(part_number(None, None).is_ok());
        assert!(part_number(None, Some(&range)).is_ok());
        assert!(part_number(Some(1), None).is_ok());
        assert_eq!(
            part_number(Some(1), Some(&range)).unwrap_err().code(),
            &S3ErrorCode::InvalidRequest
        );
        let e = part_number(Some(2), None).unwrap_err();
        assert_eq!(e.code().as_str(), "InvalidPartNumber");
        assert_eq!(
            e.status_code(),
            Some(hyper::StatusCode::RANGE_NOT_SATISFIABLE)
        );
        for n in [0, -1, 10_001] {
            assert_eq!(
                part_number(Some(n), None).unwrap_err().code(),
                &S3ErrorCode::InvalidArgument
            );
        }
        assert!(version(None).is_ok());
        assert!(version(Some("null")).is_ok());
        assert!(version(Some("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")).is_err());
        assert!(sse_c(None).is_ok());
        assert!(sse_c(Some("AES256")).is_err());
    }
}
