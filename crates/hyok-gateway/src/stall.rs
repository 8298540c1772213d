//! Clients that stop half-way: `[gateway] idle_timeout` bounds how long one may keep the
//! gateway waiting.
//!
//! Without a bound, a client that opens a connection and sends nothing, sends a request's
//! headers a byte at a time, stops sending a request body, or stops reading an answer holds a
//! connection (and, for the last two, one of the `max_requests` slots and the memory of its
//! request) for as long as it likes; a few thousand of them make the gateway refuse everyone
//! else (file descriptors, SlowDown). S3 closes such connections too (`400 RequestTimeout`:
//! "Your socket connection to the server was not read from or written to within the timeout
//! period"). The bound applies to:
//!
//! - the first bytes of a connection ([`Deadline`]: hyper reads them to tell HTTP/1 from
//!   HTTP/2 before any timeout of its own applies), a TLS handshake, and a request's headers,
//!   also the next request on a kept-alive connection (hyper's header read timeout;
//!   `server.rs`);
//! - the next bytes of a request body, counted only while the gateway waits for them
//!   ([`Idle`]; a body the gateway does not read for a while, because it is busy with the
//!   backend, is not the client's stall): the request fails with `400 RequestTimeout`;
//! - the next bytes of an answer, counted only while a write waits because the client does
//!   not read ([`Deadline`]): the connection is closed.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{sleep, Sleep};

/// `[gateway] idle_timeout` when the configuration does not say: 75 s, as nginx's keep-alive,
/// above the 60 s after which an AWS load balancer drops an idle connection, so that the
/// balancer, not the gateway, closes a kept-alive connection it holds (the other way round,
/// a request it sends just as the gateway closes fails with a 502).
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// A request body that sent nothing for the idle time while the gateway waited for it.
#[derive(Debug)]
pub(crate) struct Stalled(Duration);

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{STALLED}: no bytes came for {} s", self.0.as_secs())
    }
}

impl StdError for Stalled {}

/// How [`Stalled`]'s message begins.
const STALLED: &str = "the request body stalled";

/// Whether `e`, or an error it wraps, is [`Stalled`]. s3s's aws-chunked decoder wraps the
/// body's errors in a type it does not export, without exposing them as a source, but keeps
/// their message: so the message is looked at too.
pub(crate) fn is_stalled(e: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<Stalled>() || e.to_string().contains(STALLED) {
            return true;
        }
        cur = e.source();
    }
    false
}

/// A waiting period that starts when it is first polled and ends after `idle`.
struct Timer {
    idle: Duration,
    running: Option<Pin<Box<Sleep>>>,
}

impl Timer {
    fn new(idle: Duration) -> Self {
        Self {
            idle,
            running: None,
        }
    }

    /// Progress was made: the next wait starts afresh.
    fn reset(&mut self) {
        self.running = None;
    }

    /// Still waiting: whether the idle time has passed since the wait began.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let idle = self.idle;
        self.running
            .get_or_insert_with(|| Box::pin(sleep(idle)))
            .as_mut()
            .poll(cx)
            .is_ready()
    }
}

/// A request body whose reader gets [`Stalled`] when it has waited `idle` for the next frame.
pub(crate) struct Idle<B> {
    inner: B,
    timer: Timer,
}

impl<B> Idle<B> {
    pub(crate) fn new(inner: B, idle: Duration) -> Self {
        Self {
            inner,
            timer: Timer::new(idle),
        }
    }
}

impl<B> Body for Idle<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                this.timer.reset();
                Poll::Ready(r.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending if this.timer.expired(cx) => {
                this.timer.reset();
                Poll::Ready(Some(Err(Box::new(Stalled(this.timer.idle)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection whose writes fail with `TimedOut` when one has waited `idle` for the client
/// to take bytes, and whose first read fails so when the client has sent nothing for `idle`
/// (later reads pass through: hyper bounds a request's headers itself, and an idle body is
/// [`Idle`]'s).
pub(crate) struct Deadline<T> {
    inner: T,
    timer: Timer,
    /// Until the client's first bytes arrive.
    first: Option<Timer>,
}

impl<T> Deadline<T> {
    pub(crate) fn new(inner: T, idle: Duration) -> Self {
        Self {
            inner,
            timer: Timer::new(idle),
            first: Some(Timer::new(idle)),
        }
    }

    fn waited<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match r {
            Poll::Ready(r) => {
                self.timer.reset();
                Poll::Ready(r)
            }
            Poll::Pending if self.timer.expired(cx) => {
                self.timer.reset();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the client took no bytes of the answer for {} s",
                        self.timer.idle.as_secs()
                    ),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Deadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let Some(first) = this.first.as_mut() else {
            return r;
        };
        match r {
            Poll::Ready(Ok(())) if buf.filled().len() == before => Poll::Ready(Ok(())),
            Poll::Ready(r) => {
                this.first = None;
                Poll::Ready(r)
            }
            Poll::Pending if first.expired(cx) => {
                let secs = first.idle.as_secs();
                this.first = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the client sent nothing for {secs} s"),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Deadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.waited(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.waited(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.waited(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.waited(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;

    /// A body that yields one frame, then never another.
    struct OneThenNothing(bool);

    impl Body for OneThenNothing {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Pending
            } else {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first")))))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_fails_as_stalled_after_the_idle_time() {
        let mut b = Idle::new(OneThenNothing(false), Duration::from_secs(60));
        let first = b.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "first");
        let started = tokio::time::Instant::now();
        let e = b.frame().await.unwrap().unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        assert!(is_stalled(e.as_ref()), "{e}");
        assert!(e.to_string().contains("60 s"), "{e}");
        // Wrapped as s3s's aws-chunked decoder does (its message, no source), it is still
        // recognised.
        let wrapped = io::Error::other(format!("AwsChunkedStreamError: Underlying: {e}"));
        assert!(is_stalled(&wrapped));
        assert!(!is_stalled(&io::Error::other("reset by peer")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_read_late_is_not_a_stall() {
        // The gateway may leave a body unread for longer than the idle time (busy with the
        // backend); only the time it then waits counts.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, io::Error>>(4);
        let body = http_body_util::StreamBody::new(tokio_stream_from(rx));
        let b = Idle::new(body, Duration::from_secs(60));
        tx.send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .await
            .unwrap();
        sleep(Duration::from_secs(600)).await;
        tx.send(Ok(Frame::data(Bytes::from_static(b"b"))))
            .await
            .unwrap();
        drop(tx);
        let all = b.collect().await.unwrap().to_bytes();
        assert_eq!(all, "ab");
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures::Stream<Item = T> {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_nothing_times_out_and_one_that_talks_does_not() {
        use tokio::io::AsyncReadExt;
        let (a, _b) = tokio::io::duplex(64);
        let mut silent = Deadline::new(a, Duration::from_secs(60));
        let started = tokio::time::Instant::now();
        let e = silent.read(&mut [0u8; 16]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        // After its first bytes, a connection may stay quiet (hyper bounds the next request).
        let (a, mut b) = tokio::io::duplex(64);
        let mut talker = Deadline::new(a, Duration::from_secs(60));
        b.write_all(b"GET").await.unwrap();
        assert_eq!(talker.read(&mut [0u8; 16]).await.unwrap(), 3);
        let later = tokio::spawn(async move {
            sleep(Duration::from_secs(600)).await;
            b.write_all(b" /").await.unwrap();
            b
        });
        let mut buf = [0u8; 16];
        assert_eq!(talker.read(&mut buf).await.unwrap(), 2);
        drop(later.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_does_not_take_times_out() {
        // A pipe of 64 bytes whose other end never reads.
        let (a, _b) = tokio::io::duplex(64);
        let mut w = Deadline::new(a, Duration::from_secs(60));
        let started = tokio::time::Instant::now();
        let e = w.write_all(&[7u8; 1024]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_taking_bytes_is_served() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut w = Deadline::new(a, Duration::from_secs(60));
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            loop {
                // 50 s between reads: slow, but never idle for the whole minute.
                sleep(Duration::from_secs(50)).await;
                match b.read(&mut buf).await.unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        w.write_all(&[7u8; 640]).await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap(), vec![7u8; 640]);
    }
}
