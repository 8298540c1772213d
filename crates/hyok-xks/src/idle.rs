//! A connection with no request open for a while is closed. hyper's header read timeout
//! ends an idle HTTP/1 connection, but an HTTP/2 connection with no stream open stays open
//! for as long as its client likes (hyper sends no idle GOAWAY), holding one of the
//! server's `MAX_CONNECTIONS` places. [`Requests`] counts the requests one
//! connection is answering (the proxy's answers are small and sent whole, so a request is
//! open until its answer is ready); [`serve_until_idle`] asks the connection to shut down
//! gracefully (HTTP/2: GOAWAY, its streams finish) once none has been open for the idle
//! time, and drops it if it is still open after another idle time with none open (a client
//! that never acknowledges the GOAWAY's PING keeps hyper waiting for it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::Notify;

/// The requests one connection is answering.
#[derive(Default)]
pub(crate) struct Requests {
    open: AtomicUsize,
    changed: Notify,
}

/// One request being answered; dropping it ends it.
pub(crate) struct Open(Arc<Requests>);

impl Requests {
    pub(crate) fn begin(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        Open(self.clone())
    }

    /// Resolves once no request has been open for `idle`.
    async fn idle_for(&self, idle: Duration) {
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

/// Serve `conn` to its end, shutting it down gracefully after `idle` with no request open
/// and dropping it after another.
pub(crate) async fn serve_until_idle<C: GracefulConnection>(
    conn: C,
    requests: Arc<Requests>,
    idle: Duration,
) {
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = requests.idle_for(idle) => {
                if closing {
                    return;
                }
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_last_request_and_never_while_one_is_open() {
        let r = Arc::new(Requests::default());
        let started = tokio::time::Instant::now();
        let idle = Duration::from_secs(10);
        let waiter = tokio::spawn({
            let r = r.clone();
            async move { r.idle_for(idle).await }
        });
        tokio::time::sleep(Duration::from_secs(6)).await;
        let open = r.begin();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!waiter.is_finished(), "idle while a request was open");
        drop(open);
        waiter.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(46));
    }
}
