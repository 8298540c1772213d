//! Request bodies an answer left unread.
//!
//! Some answers come before the request body is read: a path outside the XKS API, a method
//! other than POST, a body over [`crate::proxy::MAX_BODY`]. HTTP/1.1 then needs the rest of
//! that body off the connection before the next request on it; the HTTP layer instead
//! dropped such a connection without saying so (measured: `an_early_answer_leaves_the_
//! connection_clean` in `tests/api.rs`). The server marks those answers
//! `Connection: close`: a client knows the connection ends there, and nothing left of the
//! body can be read as a request. AWS KMS sends only POSTs of small bodies to the
//! configured path, so its connections are kept.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, SizeHint};

/// A request body that records whether it was read to its end.
pub(crate) struct Tracked<B> {
    inner: B,
    read: Arc<AtomicBool>,
}

/// Whether a [`Tracked`] body was read to its end (an empty body counts as read).
#[derive(Clone)]
pub(crate) struct ReadFlag(Arc<AtomicBool>);

impl ReadFlag {
    /// Whether the connection must close after the answer: its request body is not all
    /// read.
    pub(crate) fn left_unread(&self) -> bool {
        !self.0.load(Ordering::Acquire)
    }
}

/// Wrap a request body.
pub(crate) fn track<B: Body>(inner: B) -> (Tracked<B>, ReadFlag) {
    let read = Arc::new(AtomicBool::new(inner.is_end_stream()));
    let flag = ReadFlag(read.clone());
    (Tracked { inner, read }, flag)
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};

    #[tokio::test]
    async fn a_body_read_to_its_end_is_marked_read() {
        let (body, flag) = track(Full::new(Bytes::from_static(b"{}")));
        assert!(flag.left_unread());
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], b"{}");
        assert!(!flag.left_unread());
    }

    #[test]
    fn an_empty_body_counts_as_read_and_a_dropped_one_does_not() {
        let (_, flag) = track(Empty::<Bytes>::new());
        assert!(!flag.left_unread());
        let (body, flag) = track(Full::new(Bytes::from_static(b"{}")));
        drop(body);
        assert!(flag.left_unread());
    }
}
