//! Parallel ranged download: a synchronous `Read` ([`RangedReader`]) or an async `Stream`
//! ([`RangedStream`]) fed by ranged GETs of `part_size` bytes, up to
//! [`Transfer::concurrency`](crate::Transfer) in flight, delivered in order through a
//! channel of two chunks, so memory stays at about `part_size × (concurrency + 3)`.
//!
//! A GET's body is kept as the pieces it arrived in, not gathered into one buffer: the
//! reader copies each byte once, into its caller's buffer (gathering copied every byte
//! downloaded once more; measured: 4 % of a gateway's CPU serving ranged GETs).
//!
//! A range of one part is one GET whose pieces are handed on as they arrive, in messages of
//! about 256 KiB, instead of once the whole part is here: a server answering a client's
//! ranged GET then starts its answer after the first bytes, not after the whole range
//! (the gateway's first byte of an 8 MiB range came 125-330 ms after the request).
//! Ranges of several parts keep whole parts, fetched in parallel.
//!
//! The transfer's permits count GETs under way, never a reader's wait: each GET of a range
//! of several parts is a task of its own (a future of a `buffered` stream stops while its
//! stream waits for the reader, and kept its permit), and a one-GET range gives its permit
//! back once the answer's head is here. A reader whose consumer waits for a writer of the
//! same transfer (a Complete's last part, decrypted ahead of the parts it follows) left that
//! writer without permits: the Complete waited for ever.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::StreamExt;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore};

use crate::error::Error;
use crate::reads::ReadCounter;
use crate::url::StoreUrl;
use crate::{Store, Transfer};

/// The bytes of one ranged GET, in the pieces they arrived in.
type Pieces = VecDeque<Bytes>;

/// A `Read` of a byte range of one object (a [`RangedStream`] waited for). Dropping it
/// cancels the outstanding GETs.
pub struct RangedReader {
    stream: RangedStream,
    rt: Handle,
    cur: Bytes,
    failed: bool,
}

impl std::fmt::Debug for RangedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangedReader").finish_non_exhaustive()
    }
}

impl RangedReader {
    pub(crate) fn start(
        store: &Store,
        rt: &Handle,
        url: &StoreUrl,
        range: Range<u64>,
        e_tag: Option<String>,
        transfer: &Transfer,
    ) -> Self {
        Self {
            stream: RangedStream::start(store, rt, url, range, e_tag, transfer),
            rt: rt.clone(),
            cur: Bytes::new(),
            failed: false,
        }
    }
}

/// The GETs of `range` of `url`, on a task of `rt`: their pieces, in order, through the
/// channel returned (two messages deep), and the task.
fn spawn_gets(
    store: &Store,
    rt: &Handle,
    url: &StoreUrl,
    range: Range<u64>,
    e_tag: Option<String>,
    transfer: &Transfer,
) -> (mpsc::Receiver<Result<Pieces, Error>>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(2);
    let chunk = transfer.part_size() as u64;
    let concurrency = transfer.concurrency();
    let permits = transfer.permits().clone();
    let inner = store.inner.clone();
    let fetched = store.fetched.clone();
    let reads = store.reads.clone();
    let path = store.path(url);
    let shown = url.to_string();
    let task = rt.spawn(async move {
        let path = match path {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if range.is_empty() {
            return;
        }
        if range.end - range.start <= chunk {
            // One GET: its pieces are handed on as they arrive (a server's ranged read
            // then answers before the whole range is here).
            let permit = permits.acquire_owned().await;
            let r = stream_pieces(
                &inner,
                &path,
                range,
                e_tag.as_deref(),
                (&fetched, &reads),
                &tx,
                permit,
            )
            .await;
            if let Err(e) = r {
                let _ = tx.send(Err(Error::store("download", shown, e))).await;
            }
            return;
        }
        let mut chunks = Vec::new();
        let mut at = range.start;
        while at < range.end {
            let end = (at + chunk).min(range.end);
            chunks.push(at..end);
            at = end;
        }
        let mut stream = futures::stream::iter(chunks)
            .map(|r| {
                let (inner, path, fetched, reads, tag, permits) = (
                    inner.clone(),
                    path.clone(),
                    fetched.clone(),
                    reads.clone(),
                    e_tag.clone(),
                    permits.clone(),
                );
                // A task of its own, so that the GET runs to its end and gives its
                // permit back while this task waits for the reader (a future of
                // `buffered` is polled only when the stream is).
                AbortOnDrop(tokio::spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    get_pieces(&inner, &path, r, tag.as_deref(), &fetched, &reads).await
                }))
            })
            .buffered(concurrency);
        while let Some(r) = stream.next().await {
            let failed = r.is_err();
            let msg = r.map_err(|e| Error::store("download", shown.clone(), e));
            if tx.send(msg).await.is_err() || failed {
                return;
            }
        }
    });
    (rx, task)
}

/// A `Stream` of a byte range of one object: the pieces as the GETs handed them on, no copy
/// (a server decrypting on its runtime reads it directly). Dropping it cancels the
/// outstanding GETs.
pub struct RangedStream {
    rx: mpsc::Receiver<Result<Pieces, Error>>,
    cur: Pieces,
    task: JoinHandle<()>,
    failed: bool,
}

impl std::fmt::Debug for RangedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangedStream").finish_non_exhaustive()
    }
}

impl RangedStream {
    pub(crate) fn start(
        store: &Store,
        rt: &Handle,
        url: &StoreUrl,
        range: Range<u64>,
        e_tag: Option<String>,
        transfer: &Transfer,
    ) -> Self {
        let (rx, task) = spawn_gets(store, rt, url, range, e_tag, transfer);
        Self {
            rx,
            cur: Pieces::new(),
            task,
            failed: false,
        }
    }
}

impl futures::Stream for RangedStream {
    type Item = Result<Bytes, Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        loop {
            if let Some(piece) = self.cur.pop_front() {
                if piece.is_empty() {
                    continue;
                }
                return Poll::Ready(Some(Ok(piece)));
            }
            if self.failed {
                return Poll::Ready(None);
            }
            match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Ok(p))) => self.cur = p,
                Poll::Ready(Some(Err(e))) => {
                    self.failed = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

impl Drop for RangedStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Read for RangedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.cur.is_empty() {
            if self.failed {
                return Err(io::Error::other("download already failed"));
            }
            // `Handle::block_on` refuses (panics) on a runtime worker, as it should.
            match self.rt.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(piece)) => self.cur = piece,
                Some(Err(e)) => {
                    self.failed = true;
                    return Err(io::Error::other(e));
                }
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur.advance(n);
        Ok(n)
    }
}

/// The ranged GET of `range` of `path`, pinned to `e_tag`, counted in `reads`.
pub(crate) async fn ranged_get(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    range: Range<u64>,
    e_tag: Option<&str>,
    reads: &ReadCounter,
) -> object_store::Result<object_store::GetResult> {
    reads.get();
    let opts = GetOptions::new()
        .with_range(Some(GetRange::Bounded(range)))
        .with_if_match(e_tag.map(str::to_owned));
    store.get_opts(path, opts).await
}

/// GET `range` of `path` (pinned to `e_tag`), keeping the body's pieces as they came. A
/// local file is read whole with one read, as `object_store` does for it.
async fn get_pieces(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    range: Range<u64>,
    e_tag: Option<&str>,
    fetched: &AtomicU64,
    reads: &ReadCounter,
) -> object_store::Result<Pieces> {
    let res = ranged_get(store, path, range, e_tag, reads).await?;
    let mut pieces = Pieces::new();
    if matches!(res.payload, GetResultPayload::File(..)) {
        pieces.push_back(res.bytes().await?);
    } else {
        let mut body = res.into_stream();
        while let Some(piece) = body.next().await {
            pieces.push_back(piece?);
        }
    }
    let n: usize = pieces.iter().map(Bytes::len).sum();
    fetched.fetch_add(n as u64, Ordering::Relaxed);
    Ok(pieces)
}

/// What one message of a streamed GET carries at least (but the last): pieces as they
/// arrive, gathered to about this size so that the reader is not woken for every one.
const STREAM_PIECES: usize = 256 << 10;

/// GET `range` of `path` (pinned to `e_tag`) and send its body to `tx` as it arrives, in
/// messages of [`STREAM_PIECES`] bytes or more. `Err` only for a failure before anything was
/// sent or while streaming (the caller reports it); a reader that went away ends it quietly.
/// `permit` (of the transfer's cap) is given back once the answer's head is here.
async fn stream_pieces<P>(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    range: Range<u64>,
    e_tag: Option<&str>,
    (fetched, reads): (&AtomicU64, &ReadCounter),
    tx: &mpsc::Sender<Result<Pieces, Error>>,
    permit: P,
) -> object_store::Result<()> {
    let res = ranged_get(store, path, range, e_tag, reads).await?;
    if matches!(res.payload, GetResultPayload::File(..)) {
        let whole = res.bytes().await?;
        drop(permit);
        fetched.fetch_add(whole.len() as u64, Ordering::Relaxed);
        let _ = tx.send(Ok(Pieces::from([whole]))).await;
        return Ok(());
    }
    // The permit bounds the GETs being started; the body then comes at the reader's pace,
    // which must not hold one (a reader that waits for a writer needing a permit of the same
    // transfer would wait for ever, and slow clients of a server would hold them all).
    drop(permit);
    let mut body = res.into_stream();
    let mut pieces = Pieces::new();
    let mut held = 0;
    while let Some(piece) = body.next().await {
        let piece = piece?;
        fetched.fetch_add(piece.len() as u64, Ordering::Relaxed);
        held += piece.len();
        pieces.push_back(piece);
        if held >= STREAM_PIECES {
            held = 0;
            if tx.send(Ok(std::mem::take(&mut pieces))).await.is_err() {
                return Ok(());
            }
        }
    }
    if !pieces.is_empty() {
        let _ = tx.send(Ok(pieces)).await;
    }
    Ok(())
}

/// A spawned GET, aborted when dropped (with the reader that waits for it).
struct AbortOnDrop<T>(JoinHandle<object_store::Result<T>>);

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = object_store::Result<T>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|r| {
            r.unwrap_or_else(|e| {
                Err(object_store::Error::Generic {
                    store: "download",
                    source: Box::new(e),
                })
            })
        })
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `body` held to exactly `len` bytes: a piece that would run past them, or an end short of
/// them, is an error (and the stream's end). The piece that completes `len` is handed on only
/// once `body` has ended, so a consumer that stops reading at `len` (an HTTP client sending
/// a body of that `Content-Length`) never completes a request from a body that was longer.
/// For streamed request bodies whose length was announced before the first byte, and
/// streamed ranges.
pub(crate) fn exactly<S>(body: S, len: u64) -> impl futures::Stream<Item = io::Result<Bytes>>
where
    S: futures::Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    let too_long = move || io::Error::other(format!("more than the {len} bytes announced"));
    futures::stream::unfold(
        (Box::pin(body), 0u64, false),
        move |(mut body, mut seen, ended)| async move {
            if ended {
                return None;
            }
            let piece = match body.next().await {
                Some(Ok(piece)) => piece,
                Some(Err(e)) => return Some((Err(e), (body, seen, true))),
                None if seen < len => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{seen} of the {len} bytes announced"),
                    );
                    return Some((Err(e), (body, seen, true)));
                }
                None => return None,
            };
            seen += piece.len() as u64;
            if seen > len {
                return Some((Err(too_long()), (body, seen, true)));
            }
            if seen == len && !piece.is_empty() {
                // The last bytes wait until the body has ended where it said.
                loop {
                    match body.next().await {
                        None => break,
                        Some(Ok(p)) if p.is_empty() => {}
                        Some(Ok(_)) => return Some((Err(too_long()), (body, seen, true))),
                        Some(Err(e)) => return Some((Err(e), (body, seen, true))),
                    }
                }
                return Some((Ok(piece), (body, seen, true)));
            }
            Some((Ok(piece), (body, seen, false)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use std::time::Duration;

    /// Against s3s-fs: readers whose consumer waits (as a Complete's last part waits for the
    /// parts before it) hold none of the transfer's permits, so a writer of the same transfer
    /// still gets them. A reader of one GET held its permit while it waited, and two of them
    /// stopped every writer of a transfer of two: a Complete of an upload whose last part was
    /// large waited for ever.
    #[test]
    fn waiting_readers_leave_the_permits_to_writers() {
        let Some((rt, dir)) = crate::test_env::s3_scratch("waiting readers", "permits") else {
            return;
        };
        let src = StoreUrl::parse(&format!("{dir}src")).unwrap();
        let dst = StoreUrl::parse(&format!("{dir}dst")).unwrap();
        let store = Store::open(&src, &crate::StoreOptions::default()).unwrap();
        let transfer = Transfer::new(5 << 20, 2);
        let len = 20u64 << 20;
        let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        rt.block_on(
            store
                .inner
                .put(&store.path(&src).unwrap(), data.clone().into()),
        )
        .unwrap();
        let h = rt.handle().clone();
        // Two readers of one GET each (a range of one part) and one of several, none read.
        let mut one = store.reader(&h, &src, 0..5 << 20, None, &transfer);
        let mut two = store.reader(&h, &src, 5 << 20..10 << 20, None, &transfer);
        let mut many = store.reader(&h, &src, 0..len, None, &transfer);
        std::thread::sleep(Duration::from_millis(500));
        // A writer of three parts needs a permit for each.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (s, d, h2, t2) = (store.clone(), dst.clone(), h.clone(), transfer.clone());
        let chunk = data[..15 << 20].to_vec();
        std::thread::spawn(move || {
            let res = (|| {
                let mut w = s.writer(&h2, &d, Default::default(), &t2)?;
                io::Write::write_all(&mut w, &chunk).map_err(|e| Error::Io {
                    what: "writing".into(),
                    source: e,
                })?;
                w.finish()
            })();
            let _ = done_tx.send(res);
        });
        let written = done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the writer got its permits while the readers waited");
        assert_eq!(written.unwrap(), 15 << 20);
        // The readers still read what they were asked.
        for (r, at) in [(&mut one, 0usize), (&mut two, 5 << 20)] {
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            assert_eq!(got, &data[at..at + (5 << 20)]);
        }
        let mut got = Vec::new();
        many.read_to_end(&mut got).unwrap();
        assert_eq!(got, data);
        rt.block_on(async {
            store.delete(&src).await.unwrap();
            store.delete(&dst).await.unwrap();
        });
    }

    fn pieces(parts: &[&'static [u8]]) -> Pieces {
        parts.iter().map(|p| Bytes::from_static(p)).collect()
    }

    /// A reader of `sent` (then the end of the download), with no GETs behind it.
    fn reader(sent: Vec<Result<Pieces, Error>>) -> (tokio::runtime::Runtime, RangedReader) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel(sent.len().max(1));
        for m in sent {
            tx.try_send(m).unwrap();
        }
        let stream = RangedStream {
            rx,
            cur: Pieces::new(),
            task: rt.spawn(async {}),
            failed: false,
        };
        let r = RangedReader {
            stream,
            rt: rt.handle().clone(),
            cur: Bytes::new(),
            failed: false,
        };
        (rt, r)
    }

    #[test]
    fn pieces_read_back_in_order_across_gets_and_empty_pieces() {
        let (_rt, mut r) = reader(vec![
            Ok(pieces(&[b"ab", b"", b"cde"])),
            Ok(Pieces::new()),
            Ok(pieces(&[b"f"])),
        ]);
        let mut got = Vec::new();
        let mut buf = [0u8; 2];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"abcdef");
    }

    #[test]
    fn a_failed_get_fails_the_read_and_every_read_after_it() {
        let (_rt, mut r) = reader(vec![
            Ok(pieces(&[b"ok"])),
            Err(Error::InvalidUrl("gone".into())),
        ]);
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 2);
        assert!(r.read(&mut buf).unwrap_err().to_string().contains("gone"));
        assert!(
            r.read(&mut buf).is_err(),
            "no read succeeds after a failure"
        );
    }
}

#[cfg(test)]
mod exactly_tests {
    use super::*;

    fn run(pieces: &[&'static [u8]], len: u64) -> Vec<io::Result<Bytes>> {
        let body = futures::stream::iter(
            pieces
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        );
        futures::executor::block_on(exactly(body, len).collect())
    }

    #[test]
    fn a_body_of_the_length_announced_passes_unchanged() {
        let got = run(&[b"abc", b"", b"de"], 5);
        let bytes: Vec<u8> = got.into_iter().flat_map(|r| r.unwrap().to_vec()).collect();
        assert_eq!(bytes, b"abcde");
        assert!(run(&[], 0).is_empty());
    }

    #[test]
    fn a_short_or_long_body_ends_with_an_error() {
        let short = run(&[b"abc"], 5);
        assert_eq!(short.len(), 2);
        assert_eq!(
            short[1].as_ref().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        let long = run(&[b"abc", b"def", b"ghi"], 5);
        assert_eq!(long.len(), 2, "nothing after the error");
        assert!(long[0].is_ok() && long[1].is_err());
        // A body that reaches the length exactly, then goes on: the piece that reached it
        // is never handed on.
        let on = run(&[b"abc", b"de", b"f"], 5);
        assert_eq!(on.len(), 2);
        assert_eq!(on[0].as_ref().unwrap().as_ref(), b"abc");
        assert!(on[1].is_err());
        // Empty pieces after the end are no bytes.
        assert_eq!(run(&[b"abcde", b""], 5).len(), 1);
    }

    #[test]
    fn an_error_of_the_body_ends_it() {
        let body = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"ab")),
            Err(io::Error::other("gone")),
            Ok(Bytes::from_static(b"cde")),
        ]);
        let got: Vec<_> = futures::executor::block_on(exactly(body, 5).collect());
        assert_eq!(got.len(), 2);
        assert!(got[1].is_err());
    }
}
