//! The body of an upload completed from direct frames, read in order by the writer of the
//! target: the direct parts' frames (fetched ahead, copied as stored) and the last part
//! re-sealed at its offset with the final frame (`direct.rs`).

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::Arc;

use futures::StreamExt;
use hyok::store::{ObjectInfo, Store, StoreUrl};
use hyok::{DetachedMessage, Parallelism};
use s3s::{s3_error, S3Result};

use crate::body::PipeReader;
use crate::direct::{read_full, BATCH_FRAMES, RECORD_LEN};
use crate::service::to_s3;

/// Fetch the frames of `parts` (each at most `READ_AHEAD_PART`), `READ_AHEAD` at a time
/// (memory from the gateway's in-memory body budget), and send them in order.
pub(crate) async fn read_ahead(
    store: Store,
    memory: Arc<tokio::sync::Semaphore>,
    parts: Vec<(StoreUrl, ObjectInfo)>,
    tx: tokio::sync::mpsc::Sender<io::Result<(bytes::Bytes, tokio::sync::OwnedSemaphorePermit)>>,
) -> S3Result<()> {
    let mut fetched = futures::stream::iter(parts)
        .map(|(url, info)| {
            let store = store.clone();
            let memory = memory.clone();
            async move {
                let kib = u32::try_from(info.size.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
                let permit = memory
                    .acquire_many_owned(kib)
                    .await
                    .map_err(|_| s3_error!(ServiceUnavailable))?;
                let bytes = store
                    .get_range(&url, RECORD_LEN..info.size, info.e_tag.as_deref())
                    .await
                    .map_err(|e| to_s3(e.into()))?;
                Ok::<_, s3s::S3Error>((bytes, permit))
            }
        })
        .buffered(crate::reencrypt::READ_AHEAD);
    while let Some(item) = fetched.next().await {
        match item {
            Ok(chunk) => {
                if tx.send(Ok(chunk)).await.is_err() {
                    return Ok(()); // the writer stopped; its error is reported
                }
            }
            Err(e) => {
                let _ = tx
                    .send(Err(io::Error::other("reading a part failed")))
                    .await;
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The blocking side of [`read_ahead`].
struct Chunks {
    rx: tokio::sync::mpsc::Receiver<io::Result<(bytes::Bytes, tokio::sync::OwnedSemaphorePermit)>>,
    cur: bytes::Bytes,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok((b, p))) => {
                    self.cur = b;
                    self._permit = Some(p);
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        bytes::Buf::advance(&mut self.cur, n);
        Ok(n)
    }
}

pub(crate) enum Step {
    /// Frames fetched ahead, in order.
    Chunks(
        tokio::sync::mpsc::Receiver<io::Result<(bytes::Bytes, tokio::sync::OwnedSemaphorePermit)>>,
    ),
    /// Copy a direct part's frames.
    Copy(StoreUrl, ObjectInfo),
    /// Seal the plaintext (none: nothing) from sequence number `.1` on, with the final frame.
    Seal(Option<PipeReader>, u32),
}

/// The body of the completed message, read in order.
pub(crate) struct Assembly {
    pub(crate) store: Store,
    pub(crate) rt: tokio::runtime::Handle,
    pub(crate) transfer: hyok::store::Transfer,
    pub(crate) steps: VecDeque<Step>,
    pub(crate) cur: Option<Box<dyn Read + Send>>,
    pub(crate) sealer: Arc<DetachedMessage>,
}

impl Read for Assembly {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(r) = self.cur.as_mut() {
                let n = r.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.cur = None;
            }
            match self.steps.pop_front() {
                None => return Ok(0),
                Some(Step::Chunks(rx)) => {
                    self.cur = Some(Box::new(Chunks {
                        rx,
                        cur: bytes::Bytes::new(),
                        _permit: None,
                    }));
                }
                Some(Step::Copy(url, info)) => {
                    self.cur = Some(Box::new(self.store.reader(
                        &self.rt,
                        &url,
                        RECORD_LEN..info.size,
                        info.e_tag.clone(),
                        &self.transfer,
                    )));
                }
                Some(Step::Seal(src, seq)) => {
                    self.cur = Some(Box::new(Sealing {
                        src: src.map(|r| Box::new(r) as Box<dyn Read + Send>),
                        m: self.sealer.clone(),
                        seq,
                        out: Vec::new(),
                        pos: 0,
                        end: 0,
                        carry: None,
                        done: false,
                    }));
                }
            }
        }
    }
}

/// Seals plaintext as frames from `seq` on, the last one final.
struct Sealing {
    src: Option<Box<dyn Read + Send>>,
    m: Arc<DetachedMessage>,
    seq: u32,
    out: Vec<u8>,
    pos: usize,
    end: usize,
    carry: Option<u8>,
    done: bool,
}

impl Sealing {
    fn refill(&mut self) -> io::Result<()> {
        let fl = self.m.frame_len() as usize;
        let mut buf = vec![0u8; fl * BATCH_FRAMES];
        let mut got = 0;
        if let Some(b) = self.carry.take() {
            buf[0] = b;
            got = 1;
        }
        let mut is_final = true;
        if let Some(src) = self.src.as_mut() {
            got += read_full(src, &mut buf[got..])?;
            if got == buf.len() {
                let mut one = [0u8; 1];
                if read_full(src, &mut one)? == 1 {
                    self.carry = Some(one[0]);
                    is_final = false;
                }
            }
        }
        let k = self
            .m
            .seal_frames(
                &Parallelism::Global,
                self.seq,
                &buf[..got],
                is_final,
                &mut self.out,
            )
            .map_err(io::Error::other)?;
        self.seq += (got / fl) as u32;
        self.pos = 0;
        self.end = k;
        self.done = is_final;
        Ok(())
    }
}

impl Read for Sealing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.end {
            if self.done {
                return Ok(0);
            }
            self.refill()?;
        }
        let n = buf.len().min(self.end - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_ends_with_a_final_frame_even_on_a_boundary() {
        let (suite, _) = crate::direct::settings();
        let m = Arc::new(DetachedMessage::generate(suite, 16).unwrap());
        for len in [0usize, 16, 1024, 1024 + 5, 16 * BATCH_FRAMES] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut s = Sealing {
                src: Some(Box::new(io::Cursor::new(plain.clone()))),
                m: m.clone(),
                seq: 3,
                out: Vec::new(),
                pos: 0,
                end: 0,
                carry: None,
                done: false,
            };
            let mut out = Vec::new();
            s.read_to_end(&mut out).unwrap();
            let regular = len / 16;
            let last = len % 16;
            assert_eq!(out.len(), regular * (16 + 32) + last + 4 + 4 + 12 + 4 + 16);
            // The final frame's sequence number follows the regular ones.
            let at = regular * 48;
            assert_eq!(&out[at..at + 4], &u32::MAX.to_be_bytes());
            assert_eq!(&out[at + 4..at + 8], &(3 + regular as u32).to_be_bytes());
        }
    }
}
