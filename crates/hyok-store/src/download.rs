//! Parallel ranged download: a synchronous `Read` fed by ranged GETs of `part_size` bytes,
//! up to [`Transfer::concurrency`](crate::Transfer) in flight, delivered in order through a
//! channel of two chunks, so memory stays at about `part_size × (concurrency + 3)`.

use std::io::{self, Read};
use std::ops::Range;

use bytes::{Buf, Bytes};
use futures::StreamExt;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::url::StoreUrl;
use crate::{get_range, Store, Transfer};

/// A `Read` of a byte range of one object. Dropping it cancels the outstanding GETs.
pub struct RangedReader {
    rx: mpsc::Receiver<Result<Bytes, Error>>,
    cur: Bytes,
    task: JoinHandle<()>,
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
                    async move {
                        let _permit = permits.acquire_owned().await;
                        get_range(&inner, &path, r, tag.as_deref(), &fetched, &reads).await
                    }
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
        Self {
            rx,
            cur: Bytes::new(),
            task,
            failed: false,
        }
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
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
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

impl Drop for RangedReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}
