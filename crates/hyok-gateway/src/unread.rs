//! Request bodies an answer left unread.
//!
//! Many refusals come before the body is read: a bad signature, AccessDenied, a failed
//! precondition, an operation the gateway refuses, SlowDown. HTTP/1.1 then needs the rest of
//! that body read off the connection before the next request on it, or the connection
//! closed. Measured with boto3 (which reuses connections): a PutObject refused with
//! NotImplemented, then a PutObject on the same connection, and about one time in ten the
//! second got a bare `400 Bad Request` from the HTTP layer, its bytes read as the rest of the
//! first body's. So a body dropped unread is finished here:
//!
//! - up to [`DRAIN_MAX`] bytes left (known from `Content-Length`), without
//!   `Expect: 100-continue`: read and discarded by a task of its own (for at most
//!   [`DRAIN_TIME`]), and the connection stays open;
//! - otherwise the answer carries `Connection: close`, so nothing more is read from the
//!   connection (a refused multi-GiB upload is not received in full for nothing).
//!
//! HTTP/2 needs neither: each request is a stream of its own, which h2 ends after the
//! answer with `RST_STREAM(NO_ERROR)` when its body was not read (RFC 9113 §8.1), and
//! `Connection` is not an HTTP/2 header.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CONNECTION, EXPECT};
use hyper::{Request, Response, Version};

/// Most bytes of an unread body read off the connection to keep it open.
pub(crate) const DRAIN_MAX: u64 = 1 << 20;
/// Longest time spent reading them.
pub(crate) const DRAIN_TIME: Duration = Duration::from_secs(10);

/// A request body that, dropped before its end, is drained or marks its connection for
/// closing (see the module documentation).
pub(crate) struct Guarded {
    inner: Option<Incoming>,
    /// HTTP/1: the body shares the connection with the requests after it.
    http1: bool,
    drain: bool,
    close: Arc<AtomicBool>,
}

/// Whether the answer to a request must close its connection (set once its body was
/// dropped unread and could not be drained).
#[derive(Clone, Default)]
pub(crate) struct CloseFlag(Arc<AtomicBool>);

impl CloseFlag {
    /// Add `Connection: close` to `res` when the body was left on the connection.
    pub(crate) fn apply<B>(&self, mut res: Response<B>) -> Response<B> {
        if self.0.load(Ordering::Acquire) {
            res.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        res
    }
}

/// Wrap `req`'s body; the flag tells the answer whether to close the connection.
pub(crate) fn guard(req: Request<Incoming>) -> (Request<Guarded>, CloseFlag) {
    let flag = CloseFlag::default();
    let http1 = req.version() < Version::HTTP_2;
    let drain = !req
        .headers()
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let req = req.map(|inner| Guarded {
        inner: Some(inner),
        http1,
        drain,
        close: flag.0.clone(),
    });
    (req, flag)
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.inner.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if !self.http1 || body.is_end_stream() {
            return;
        }
        let small = body.size_hint().upper().is_some_and(|n| n <= DRAIN_MAX);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if small && self.drain => {
                rt.spawn(drain(body));
            }
            _ => self.close.store(true, Ordering::Release),
        }
    }
}

/// Read `body` to its end (bounded by its size and [`DRAIN_TIME`]) and drop the bytes.
async fn drain(mut body: Incoming) {
    let _ = tokio::time::timeout(DRAIN_TIME, async move {
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            if frame.is_err() {
                break;
            }
        }
    })
    .await;
}
