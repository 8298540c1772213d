//! The concurrency cap: at most `[gateway] max_requests` S3 requests in flight, counted
//! from the request head until the response body is sent or dropped (so a download that
//! streams after its handler returned still counts). One more gets `503 SlowDown` at once,
//! which SDKs and rclone retry with backoff; nothing queues in the gateway, so its memory
//! stays bounded by the cap. `/health` and `/metrics` are not counted.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::{Response, StatusCode};
use s3s::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default of `[gateway] max_requests`.
pub const DEFAULT_MAX_REQUESTS: usize = 256;

/// A place in the cap, or `None` when it is full.
pub(crate) fn try_enter(cap: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    cap.clone().try_acquire_owned().ok()
}

/// The S3 error response for a full cap.
pub(crate) fn slow_down() -> Response<Body> {
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
               <Message>Too many requests in flight; retry later.</Message></Error>";
    let mut r = Response::new(Body::from(xml.to_owned()));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    h.insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from_static("1"),
    );
    r
}

/// A response body that keeps its request's place in the cap until it is done.
struct Held {
    inner: Body,
    _permit: OwnedSemaphorePermit,
}

impl hyper::body::Body for Held {
    type Data = Bytes;
    type Error = <Body as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `res` with its body holding `permit`.
pub(crate) fn hold(res: Response<Body>, permit: OwnedSemaphorePermit) -> Response<Body> {
    res.map(|inner| {
        Body::http_body(Held {
            inner,
            _permit: permit,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_refuses_one_more_and_frees_with_the_body() {
        let cap = Arc::new(Semaphore::new(1));
        let permit = try_enter(&cap).expect("a free place");
        assert!(try_enter(&cap).is_none());
        let res = hold(Response::new(Body::from("x".to_owned())), permit);
        assert!(try_enter(&cap).is_none(), "the body still holds the place");
        drop(res);
        assert!(try_enter(&cap).is_some());
        assert_eq!(slow_down().status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
