//! Body framing (ESDK spec `data-format/message-body.md`, `message-body-aad.md`) and the
//! parallel sealing/opening of frames. Frames depend only on (key, sequence number), so a
//! batch of them can be processed on every core and written in order.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce};

use crate::error::{Error, Result};
use crate::header::{IV_LEN, TAG_LEN};

pub(crate) const REGULAR_FRAME: &[u8] = b"AWSKMSEncryptionClient Frame";
pub(crate) const FINAL_FRAME: &[u8] = b"AWSKMSEncryptionClient Final Frame";
pub(crate) const SINGLE_BLOCK: &[u8] = b"AWSKMSEncryptionClient Single Block";
/// Marker that starts a final frame.
pub(crate) const FINAL_MARKER: u32 = u32::MAX;

/// Bytes of plaintext sealed or opened together (bounded memory).
pub(crate) const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Most frames sealed or opened together. Each frame in a batch costs its fields, its tag
/// and a record besides its plaintext, so without this bound a message of 1-byte frames
/// (which any writer may make) would batch 4 Mi frames: 0.5-1 GB of memory for 4 MiB of
/// plaintext. 1,024 keeps the batch at `BATCH_BYTES` for frames of 4 KiB (the official
/// SDKs' default) and longer.
pub(crate) const MAX_BATCH_FRAMES: usize = 1024;

/// Frames of `frame_len` bytes sealed or opened together in batches of about `batch`
/// bytes ([`BATCH_BYTES`] unless a caller asks for smaller ones).
pub(crate) fn frames_per_batch(frame_len: usize, batch: usize) -> usize {
    (batch / frame_len.max(1)).clamp(1, MAX_BATCH_FRAMES)
}

/// Background work smaller than this is not handed to the pool by `Parallelism::overlap`.
/// Largest single `read` or `write` of a message's bytes in the copy loops
/// (`Encryptor::copy_from`, `Decryptor::write_to`, gathered with `writev` on decrypt). Measured on the project
/// machine (a VM, Linux 6.18, ext4): copying 1 GiB into the page cache took 0.35 s in writes
/// of 256 KiB, 0.4-0.7 s in writes of 1 MiB and 1.5-2.9 s in writes of 4 MiB (`dd bs=…`),
/// nearly all of it system time; smaller writes only cost more system calls.
pub(crate) const IO_PIECE: usize = 256 << 10;
pub(crate) const OVERLAP_MIN_BYTES: usize = 256 * 1024;

/// How frame crypto is spread over cores.
#[derive(Clone, Debug, Default)]
pub enum Parallelism {
    /// One frame after another on the calling thread.
    Sequential,
    /// rayon's global pool (all cores by default).
    #[default]
    Global,
    /// A dedicated rayon pool (e.g. to bound the number of threads).
    #[cfg(feature = "parallel")]
    Pool(std::sync::Arc<rayon::ThreadPool>),
}

impl Parallelism {
    /// A dedicated pool with exactly `threads` workers (1 = sequential).
    pub fn threads(threads: usize) -> Result<Self> {
        if threads <= 1 {
            return Ok(Self::Sequential);
        }
        #[cfg(feature = "parallel")]
        {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("hyok-crypto-{i}"))
                .build()
                .map_err(|e| Error::InvalidParameter(format!("thread pool: {e}")))?;
            Ok(Self::Pool(std::sync::Arc::new(pool)))
        }
        #[cfg(not(feature = "parallel"))]
        Ok(Self::Sequential)
    }

    /// Number of worker threads this setting uses.
    pub fn worker_count(&self) -> usize {
        match self {
            Self::Sequential => 1,
            #[cfg(feature = "parallel")]
            Self::Global => rayon::current_num_threads(),
            #[cfg(not(feature = "parallel"))]
            Self::Global => 1,
            #[cfg(feature = "parallel")]
            Self::Pool(p) => p.current_num_threads(),
        }
    }

    pub(crate) fn run<T: Send>(
        &self,
        items: &mut [T],
        f: impl Fn(&mut T) -> Result<()> + Sync + Send,
    ) -> Result<()> {
        if items.len() < 2 {
            return items.iter_mut().try_for_each(f);
        }
        match self {
            Self::Sequential => items.iter_mut().try_for_each(f),
            #[cfg(feature = "parallel")]
            Self::Global => {
                use rayon::prelude::*;
                items.par_iter_mut().try_for_each(f)
            }
            #[cfg(not(feature = "parallel"))]
            Self::Global => items.iter_mut().try_for_each(f),
            #[cfg(feature = "parallel")]
            Self::Pool(pool) => {
                use rayon::prelude::*;
                pool.install(|| items.par_iter_mut().try_for_each(f))
            }
        }
    }
}

impl Parallelism {
    /// Run `background` on the pool (frame crypto inside it spreads over the pool) while
    /// `foreground` runs on the calling thread, and return when both are done: I/O on the
    /// caller's reader or writer (which need not be `Send`) overlaps with the crypto.
    /// Sequential, or when the background work is under [`OVERLAP_MIN_BYTES`] (waking the
    /// pool would cost more than it saves): one after the other on the calling thread.
    pub(crate) fn overlap<A, B, RA, RB>(
        &self,
        background_bytes: usize,
        background: A,
        foreground: B,
    ) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        RA: Send,
        B: FnOnce() -> RB,
    {
        if background_bytes < OVERLAP_MIN_BYTES {
            let a = background();
            return (a, foreground());
        }
        match self {
            Self::Sequential => {
                let a = background();
                (a, foreground())
            }
            #[cfg(feature = "parallel")]
            Self::Global => {
                let mut ra = None;
                let rb = rayon::in_place_scope(|s| {
                    s.spawn(|_| ra = Some(background()));
                    foreground()
                });
                // The scope returns only after the spawned job ran (or re-raises its panic).
                (ra.expect("the scope waited for the job"), rb)
            }
            #[cfg(not(feature = "parallel"))]
            Self::Global => {
                let a = background();
                (a, foreground())
            }
            #[cfg(feature = "parallel")]
            Self::Pool(pool) => {
                let mut ra = None;
                let rb = pool.in_place_scope(|s| {
                    s.spawn(|_| ra = Some(background()));
                    foreground()
                });
                (ra.expect("the scope waited for the job"), rb)
            }
        }
    }
}

/// A frame numbered `seq` where frame `expected` must come.
pub(crate) fn check_seq(seq: u32, expected: u32) -> Result<()> {
    if seq != expected {
        return Err(Error::MalformedBody(format!(
            "frame {seq} where frame {expected} was expected"
        )));
    }
    Ok(())
}

/// The IV is not free: the format fixes it to the sequence number.
pub(crate) fn check_iv(what: &str, seq: u32, iv: &[u8; IV_LEN]) -> Result<()> {
    if *iv != frame_iv(seq) {
        return Err(Error::MalformedBody(format!(
            "{what} {seq}: its IV is not the one the format prescribes (the sequence number)"
        )));
    }
    Ok(())
}

/// A final frame holds at most one frame length of plaintext.
pub(crate) fn check_final_len(len: u32, frame_length: u32) -> Result<()> {
    if len > frame_length {
        return Err(Error::MalformedBody(format!(
            "final frame of {len} bytes exceeds the frame length {frame_length}"
        )));
    }
    Ok(())
}

/// IV of frame `seq`: the sequence number, left-padded with zeros to 12 bytes.
pub(crate) fn frame_iv(seq: u32) -> [u8; IV_LEN] {
    let mut iv = [0u8; IV_LEN];
    iv[8..].copy_from_slice(&seq.to_be_bytes());
    iv
}

/// Body AAD: message id ‖ content string ‖ sequence number ‖ content length (u64).
pub(crate) fn body_aad(message_id: &[u8], content: &[u8], seq: u32, len: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(message_id.len() + content.len() + 12);
    aad.extend_from_slice(message_id);
    aad.extend_from_slice(content);
    aad.extend_from_slice(&seq.to_be_bytes());
    aad.extend_from_slice(&len.to_be_bytes());
    aad
}

/// The per-message frame sealer/opener.
pub(crate) struct FrameCipher<'a> {
    pub(crate) key: &'a LessSafeKey,
    pub(crate) message_id: &'a [u8],
}

impl FrameCipher<'_> {
    /// Open `ct_tag` (ciphertext ‖ tag) in place; returns the plaintext length.
    pub(crate) fn open(
        &self,
        content: &[u8],
        seq: u32,
        iv: [u8; IV_LEN],
        ct_tag: &mut [u8],
    ) -> Result<usize> {
        let len = ct_tag.len() - TAG_LEN;
        let aad = body_aad(self.message_id, content, seq, len as u64);
        self.key
            .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(&aad), ct_tag)
            .map_err(|_| Error::FrameAuth(seq))?;
        Ok(len)
    }

    /// Seal `frames` (each at most one frame length of plaintext) as the frames
    /// `first_seq..`, encoded one after another into `out[..n]`; returns `n`. All frames are
    /// regular except, when `last_is_final`, the last one (an empty list with
    /// `last_is_final` gives one empty final frame). Each frame is encrypted straight from
    /// its plaintext into `out` (no copy first), on the cores `par` allows. `out` only ever
    /// grows and is not cleared: every byte of `out[..n]` is overwritten.
    /// Seal regular frames laid out in place: `slots` is a whole number of slots of
    /// `4 + IV_LEN + frame_len + TAG_LEN` bytes, each holding its frame's plaintext after
    /// the first `4 + IV_LEN` bytes; the sequence numbers (from `first_seq`), IVs and tags
    /// are filled in, the plaintext is sealed where it is. Never the final frame.
    pub(crate) fn seal_slots(
        &self,
        par: &Parallelism,
        first_seq: u32,
        frame_len: usize,
        slots: &mut [u8],
    ) -> Result<()> {
        let slot = 4 + IV_LEN + frame_len + TAG_LEN;
        let n = slots.len() / slot;
        if first_seq as u64 + n as u64 >= FINAL_MARKER as u64 {
            return Err(Error::InvalidParameter(
                "message would need more than 2^32-1 frames; use a larger frame length".into(),
            ));
        }
        let mut items: Vec<(u32, &mut [u8])> = slots
            .chunks_exact_mut(slot)
            .enumerate()
            .map(|(i, s)| (first_seq + i as u32, s))
            .collect();
        par.run(&mut items, |(seq, dst)| {
            dst[..4].copy_from_slice(&seq.to_be_bytes());
            dst[4..4 + IV_LEN].copy_from_slice(&frame_iv(*seq));
            let (body, tag) = dst[4 + IV_LEN..].split_at_mut(frame_len);
            let aad = body_aad(self.message_id, REGULAR_FRAME, *seq, frame_len as u64);
            let t = self
                .key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(frame_iv(*seq)),
                    Aad::from(&aad),
                    body,
                )
                .map_err(|_| Error::Crypto("seal frame"))?;
            tag.copy_from_slice(t.as_ref());
            Ok(())
        })
    }

    pub(crate) fn seal_frames(
        &self,
        par: &Parallelism,
        first_seq: u32,
        frames: &[&[u8]],
        last_is_final: bool,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        const EMPTY: &[&[u8]] = &[&[]];
        let frames = if frames.is_empty() && last_is_final {
            EMPTY
        } else {
            frames
        };
        let n = frames.len();
        if n == 0 {
            return Ok(0);
        }
        let last = first_seq as u64 + n as u64 - 1;
        if last >= FINAL_MARKER as u64 {
            return Err(Error::InvalidParameter(
                "message would need more than 2^32-1 frames; use a larger frame length".into(),
            ));
        }
        let is_final = |i: usize| last_is_final && i == n - 1;
        let hdr = |i: usize| if is_final(i) { 12 + IV_LEN } else { 4 + IV_LEN };
        let total: usize = frames
            .iter()
            .enumerate()
            .map(|(i, pt)| hdr(i) + pt.len() + TAG_LEN)
            .sum();
        if out.len() < total {
            out.resize(total, 0);
        }
        let mut rest = &mut out[..total];
        let mut items = Vec::with_capacity(n);
        for (i, pt) in frames.iter().enumerate() {
            let (this, tail) = rest.split_at_mut(hdr(i) + pt.len() + TAG_LEN);
            rest = tail;
            items.push((first_seq + i as u32, is_final(i), *pt, this));
        }
        par.run(&mut items, |(seq, is_final, pt, dst)| {
            let mut p = 0;
            if *is_final {
                dst[..4].copy_from_slice(&FINAL_MARKER.to_be_bytes());
                p = 4;
            }
            dst[p..p + 4].copy_from_slice(&seq.to_be_bytes());
            dst[p + 4..p + 16].copy_from_slice(&frame_iv(*seq));
            p += 16;
            if *is_final {
                dst[p..p + 4].copy_from_slice(&(pt.len() as u32).to_be_bytes());
                p += 4;
            }
            let (body, tag) = dst[p..].split_at_mut(pt.len());
            self.seal_into(*seq, *is_final, pt, body, tag)
        })?;
        Ok(total)
    }

    /// Seal `pt` as frame `seq` into `body` (same length) and `tag`, in one pass.
    fn seal_into(
        &self,
        seq: u32,
        is_final: bool,
        pt: &[u8],
        body: &mut [u8],
        tag: &mut [u8],
    ) -> Result<()> {
        let content = if is_final { FINAL_FRAME } else { REGULAR_FRAME };
        let aad = body_aad(self.message_id, content, seq, pt.len() as u64);
        self.key
            .seal_out_of_place_scatter(
                Nonce::assume_unique_for_key(frame_iv(seq)),
                Aad::from(&aad),
                pt,
                body,
                &[],
                tag,
            )
            .map_err(|_| Error::Crypto("seal frame"))
    }
}
