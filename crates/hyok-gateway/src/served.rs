//! GET bodies decrypted on the runtime (`hyok::objects::PlaintextStream`): the response
//! body polls the decryption, which polls the backend, so no thread waits in between and
//! each frame's plaintext goes out from the buffer it was opened in (DESIGN.md, "Downloads
//! on the runtime"). Objects the stream cannot serve (signed, non-framed, a header longer
//! than the prefix read) go through `Gateway::plaintext`'s blocking thread.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hyok::objects::{ByteRange, Objects, PlaintextStream};
use hyok::store::{Prefix, StoreUrl};
use hyok::EncryptionContext;
use s3s::dto::StreamingBlob;
use s3s::S3Result;

use crate::metrics::Metrics;
use crate::service::to_s3;

/// The plaintext of `url` (its `range`, or all of it) from `prefix` on, answered once the
/// first plaintext bytes, the end or a failure came out (as `Gateway::plaintext_started`):
/// a key that cannot be used or a first frame that does not authenticate is an error
/// response with its reason.
pub(crate) async fn plaintext(
    metrics: &Arc<Metrics>,
    objects: Objects,
    url: StoreUrl,
    prefix: Prefix,
    range: Option<std::ops::Range<u64>>,
) -> S3Result<StreamingBlob> {
    let started = Instant::now();
    let r = range.map(|r| ByteRange {
        start: r.start,
        end: Some(r.end - 1),
    });
    let opened = objects
        .plaintext_stream(&url, prefix, r, &EncryptionContext::new())
        .await;
    let mut inner = match opened {
        Ok(s) => s,
        Err(e) => {
            metrics.key_use(started.elapsed(), false);
            return Err(to_s3(e));
        }
    };
    match inner.next().await {
        Some(Err(e)) => {
            metrics.key_use(started.elapsed(), false);
            Err(to_s3(e))
        }
        None => {
            metrics.key_use(started.elapsed(), true);
            Ok(StreamingBlob::wrap(futures::stream::empty::<
                std::io::Result<Bytes>,
            >()))
        }
        Some(Ok(first)) => {
            metrics.bytes_out(first.len() as u64);
            let rest = Served {
                inner,
                metrics: metrics.clone(),
                started,
                reported: false,
            };
            Ok(StreamingBlob::wrap(
                futures::stream::once(std::future::ready(Ok::<_, std::io::Error>(first)))
                    .chain(rest),
            ))
        }
    }
}

/// The response body: the plaintext, counted in the metrics; a failure ends it with an
/// error (the client sees a broken response, never a short body that looks complete).
struct Served {
    inner: PlaintextStream,
    metrics: Arc<Metrics>,
    started: Instant,
    reported: bool,
}

impl Served {
    fn report(&mut self, ok: bool) {
        if !self.reported {
            self.reported = true;
            self.metrics.key_use(self.started.elapsed(), ok);
        }
    }
}

impl Stream for Served {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.metrics.bytes_out(b.len() as u64);
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.report(false);
                Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
            }
            Poll::Ready(None) => {
                self.report(true);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Served {
    /// A client that went away: the key was used, nothing failed here.
    fn drop(&mut self) {
        self.report(true);
    }
}
