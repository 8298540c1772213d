//! Connections with no request open are closed after `[gateway] idle_timeout`, and every
//! connection is closed gracefully on shutdown (docs/DESIGN.md, "Clients that stall are cut
//! off").
//!
//! hyper's header read timeout ends an idle HTTP/1 connection, but an HTTP/2 connection
//! with no stream open stays open for as long as its client likes (hyper sends no idle
//! GOAWAY), holding one of the `MAX_CONNECTIONS` places: a few thousand of them would make
//! the gateway refuse everyone. [`Activity`] counts the requests a connection is answering
//! (from the request to the last byte of its answer's body, [`Tracked`]); [`drive`] asks
//! the connection to shut down gracefully once none has been open for the idle time, or
//! when the server stops, and drops it if it is still open after another idle time with
//! none open. Graceful means what hyper does: HTTP/2 sends GOAWAY and lets the streams it
//! accepted finish; HTTP/1 finishes the answer in progress, then closes.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::{watch, Notify};

/// The requests one connection is answering.
#[derive(Default)]
pub(crate) struct Activity {
    open: AtomicUsize,
    changed: Notify,
}

/// One request being answered, until its answer's body is sent (or dropped).
pub(crate) struct Open(Arc<Activity>);

/// An answer's body that keeps its request [`Open`] until it is sent whole or dropped.
pub(crate) struct Tracked<B> {
    body: B,
    _open: Open,
}

impl<B> Tracked<B> {
    pub(crate) fn new(body: B, open: Open) -> Self {
        Self { body, _open: open }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Activity {
    /// A request starts.
    pub(crate) fn begin(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        Open(self.clone())
    }

    /// Resolves once no request has been open for `idle`.
    pub(crate) async fn idle_for(&self, idle: Duration) {
        loop {
            // Created before the count is read, so a change in between still wakes it.
            let changed = self.changed.notified();
            if self.open.load(Ordering::SeqCst) == 0 {
                if tokio::time::timeout(idle, changed).await.is_err() {
                    return;
                }
            } else {
                changed.await;
            }
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// Serve `conn` to its end, asking it to shut down gracefully once `activity` has had no
/// request open for `idle`, or when `stop` turns true; and dropping it if it is still open
/// after another `idle` with no request open (an HTTP/2 client that never acknowledges
/// the shutdown's PING keeps hyper waiting for it).
pub(crate) async fn drive<C: GracefulConnection>(
    conn: C,
    activity: Arc<Activity>,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) {
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = activity.idle_for(idle) => {
                if closing {
                    return;
                }
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = stop.wait_for(|s| *s), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Time moves only when every task waits (tokio's paused clock).
    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_last_request_and_never_while_one_is_open() {
        let a = Arc::new(Activity::default());
        let started = tokio::time::Instant::now();
        let idle = Duration::from_secs(10);
        let waiter = tokio::spawn({
            let a = a.clone();
            async move { a.idle_for(idle).await }
        });
        tokio::time::sleep(Duration::from_secs(6)).await;
        let open = a.begin();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!waiter.is_finished(), "idle while a request was open");
        drop(open);
        waiter.await.unwrap();
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(46),
            "10 s after the request ended"
        );
    }

    /// A request stays open while its answer's body is being sent.
    #[tokio::test(start_paused = true)]
    async fn an_answer_body_keeps_its_request_open_until_dropped() {
        let a = Arc::new(Activity::default());
        let body = Tracked::new(
            http_body_util::Full::new(bytes::Bytes::from("x")),
            a.begin(),
        );
        let idle = tokio::spawn({
            let a = a.clone();
            async move { a.idle_for(Duration::from_secs(1)).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!idle.is_finished(), "idle while the body was not sent");
        assert_eq!(body.size_hint().exact(), Some(1));
        drop(body);
        idle.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_asks_is_idle_after_the_idle_time() {
        let a = Arc::new(Activity::default());
        let started = tokio::time::Instant::now();
        a.idle_for(Duration::from_secs(75)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(75));
    }
}
