//! Limits of presigned URLs that s3s does not apply. SigV4 presigned URLs live at most seven
//! days (`X-Amz-Expires` of 1 to 604,800 seconds, as S3 enforces); s3s accepts any expiry
//! the signer chose, so a URL signed for ten years would open the object for ten years. The
//! check runs before the request reaches s3s and answers as S3 does. (SigV2 URLs carry an
//! absolute `Expires` time and S3 sets them no limit; nor does the gateway.)

use hyper::{Response, StatusCode};
use s3s::Body;

/// Longest lifetime of a SigV4 presigned URL, in seconds.
pub(crate) const MAX_EXPIRES: u64 = 7 * 24 * 3600;

/// The answer to a request whose `X-Amz-Expires` is out of range (`None`: it may go on).
pub(crate) fn refused(query: Option<&str>) -> Option<Response<Body>> {
    let value = query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "X-Amz-Expires")?
        .1;
    let message = match value.parse::<u64>() {
        Ok(n) if (1..=MAX_EXPIRES).contains(&n) => return None,
        Ok(0) => "X-Amz-Expires must be positive",
        Ok(_) => "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        Err(_) => "X-Amz-Expires should be a number",
    };
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AuthorizationQueryParametersError\
         </Code><Message>{message}</Message></Error>"
    );
    let mut r = Response::new(Body::from(xml));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::refused;

    #[test]
    fn presigned_lifetimes_are_one_second_to_a_week() {
        assert!(refused(None).is_none());
        assert!(refused(Some("uploads")).is_none());
        assert!(refused(Some("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600")).is_none());
        assert!(refused(Some("X-Amz-Expires=604800")).is_none());
        assert!(refused(Some("X-Amz-Expires=1")).is_none());
        for bad in ["604801", "0", "-1000", "1e3", "", "99999999999999999999999"] {
            let r = refused(Some(&format!("a=b&X-Amz-Expires={bad}&c=d")));
            assert_eq!(
                r.map(|r| r.status().as_u16()),
                Some(400),
                "X-Amz-Expires={bad}"
            );
        }
        // Only the exact parameter name counts (SigV2's `Expires` is an absolute time).
        assert!(refused(Some("Expires=9999999999&Signature=x")).is_none());
    }
}
