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

/// Bytes a frame's plaintext is batched in before it is sealed (bounded memory).
pub(crate) const BATCH_BYTES: usize = 4 * 1024 * 1024;

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
    /// Seal `buf` in place as frame `seq`; returns the tag.
    pub(crate) fn seal(&self, seq: u32, is_final: bool, buf: &mut [u8]) -> Result<[u8; TAG_LEN]> {
        let content = if is_final { FINAL_FRAME } else { REGULAR_FRAME };
        let aad = body_aad(self.message_id, content, seq, buf.len() as u64);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(frame_iv(seq)),
                Aad::from(&aad),
                buf,
            )
            .map_err(|_| Error::Crypto("seal frame"))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

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

    /// Seal a batch of plaintext into frames starting at `first_seq`, appending the encoded
    /// frames to `out`. All frames are regular except, when `last_is_final`, the last one.
    pub(crate) fn seal_batch(
        &self,
        par: &Parallelism,
        frame_len: usize,
        first_seq: u32,
        plaintext: &[u8],
        last_is_final: bool,
        out: &mut Vec<u8>,
    ) -> Result<u32> {
        let mut n = plaintext.len().div_ceil(frame_len);
        if n == 0 {
            if !last_is_final {
                return Ok(0);
            }
            n = 1;
        }
        let last = first_seq as u64 + n as u64 - 1;
        if last >= FINAL_MARKER as u64 {
            return Err(Error::InvalidParameter(
                "message would need more than 2^32-1 frames; use a larger frame length".into(),
            ));
        }
        let start = out.len();
        let mut total = 0;
        for i in 0..n {
            let len = (plaintext.len() - i * frame_len).min(frame_len);
            let is_final = last_is_final && i == n - 1;
            total += if is_final { 8 + IV_LEN + 4 } else { 4 + IV_LEN } + len + TAG_LEN;
        }
        out.resize(start + total, 0);
        let mut rest = &mut out[start..];
        let mut items = Vec::with_capacity(n);
        for i in 0..n {
            let seq = first_seq + i as u32;
            let off = i * frame_len;
            let len = (plaintext.len().saturating_sub(off)).min(frame_len);
            let is_final = last_is_final && i == n - 1;
            let hdr = if is_final { 8 + IV_LEN + 4 } else { 4 + IV_LEN };
            let (this, tail) = rest.split_at_mut(hdr + len + TAG_LEN);
            rest = tail;
            items.push((seq, is_final, &plaintext[off..off + len], this));
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
            body.copy_from_slice(pt);
            tag.copy_from_slice(&self.seal(*seq, *is_final, body)?);
            Ok(())
        })?;
        Ok(n as u32)
    }
}
