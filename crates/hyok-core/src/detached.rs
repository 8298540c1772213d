//! A message whose body is sealed before its header: frames at given sequence numbers first
//! (in any order, by any process that holds the data key), the header once at the end.
//!
//! This exists for one caller, the S3 gateway's multipart uploads ("Direct frames" in
//! docs/DESIGN.md): part n of an upload is sealed as the frames it will hold in the final
//! message, and the header, whose encryption context carries the object's ETag, is sealed
//! only when the upload completes. A frame's IV is its sequence number and its AAD is the
//! message id, the content string, the sequence number and the length (ESDK
//! `data-format/message-body-aad.md`), so frames do not depend on the header.
//!
//! **Nonces.** Under one derived key (data key + message id), a frame's nonce is its
//! sequence number and the header's nonce is all zeros. This type cannot choose its message
//! id from outside except by [`DetachedMessage::restore`], which is the same upload read
//! back; the *caller* promises that each sequence number is sealed at most once over the
//! life of the message id, and that [`DetachedMessage::seal_header`] is called once for the
//! message id across all processes (the gateway claims both in the backend; see DESIGN.md).
//! Within one value, a second `seal_header` is refused. Signed suites are refused: their
//! footer signs the whole message in order, which parts sealed apart cannot give.

use crate::context::EncryptionContext;
use crate::error::{Error, Result};
use crate::frame::{FrameCipher, Parallelism, FINAL_MARKER, REGULAR_FRAME};
use crate::header::{seal_header, ContentType, Header, IV_LEN, MAX_WRITE_FRAME_LEN, TAG_LEN};
use crate::key::{derive, DataKey, DerivedKeys, EncryptedDataKey};
use crate::suite::{AlgorithmSuite, CommitmentPolicy};

/// One message sealed body first, header last (see the module documentation).
pub struct DetachedMessage {
    suite: AlgorithmSuite,
    frame_len: u32,
    data_key: DataKey,
    message_id: Vec<u8>,
    keys: DerivedKeys,
    header_sealed: bool,
}

impl std::fmt::Debug for DetachedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetachedMessage")
            .field("suite", &self.suite)
            .field("frame_len", &self.frame_len)
            .finish_non_exhaustive()
    }
}

impl DetachedMessage {
    /// A new message: fresh random data key and message id (as [`crate::Encryptor::new`]).
    pub fn generate(suite: AlgorithmSuite, frame_len: u32) -> Result<Self> {
        let mut message_id = vec![0u8; suite.message_id_len()];
        aws_lc_rs::rand::fill(&mut message_id).map_err(|_| Error::Crypto("random"))?;
        Self::restore(suite, frame_len, DataKey::generate(suite)?, message_id)
    }

    /// The message `generate` made, from its data key and message id kept in between
    /// (another request, another replica).
    pub fn restore(
        suite: AlgorithmSuite,
        frame_len: u32,
        data_key: DataKey,
        message_id: Vec<u8>,
    ) -> Result<Self> {
        CommitmentPolicy::RequireEncryptRequireDecrypt.check_encrypt(suite)?;
        if suite.signature().is_some() {
            return Err(Error::InvalidParameter(
                "a message sealed in parts cannot use a signed suite".into(),
            ));
        }
        if frame_len == 0 || frame_len > MAX_WRITE_FRAME_LEN {
            return Err(Error::InvalidParameter(format!(
                "frame length must be between 1 and {MAX_WRITE_FRAME_LEN}"
            )));
        }
        if message_id.len() != suite.message_id_len() {
            return Err(Error::InvalidParameter("message id length".into()));
        }
        let keys = derive(suite, &data_key, &message_id)?;
        Ok(Self {
            suite,
            frame_len,
            data_key,
            message_id,
            keys,
            header_sealed: false,
        })
    }

    /// The suite.
    pub fn suite(&self) -> AlgorithmSuite {
        self.suite
    }

    /// Plaintext bytes per frame.
    pub fn frame_len(&self) -> u32 {
        self.frame_len
    }

    /// The message id.
    pub fn message_id(&self) -> &[u8] {
        &self.message_id
    }

    /// The data key (to keep it, encrypted, between requests, and to wrap it for the header).
    pub fn data_key(&self) -> &DataKey {
        &self.data_key
    }

    fn cipher(&self) -> FrameCipher<'_> {
        FrameCipher {
            key: &self.keys.aead,
            message_id: &self.message_id,
        }
    }

    /// Seal `plaintext` as frames `first_seq, first_seq + 1, …` into `out[..n]`; returns `n`.
    /// Every frame is full and regular (`plaintext` is a whole number of frames) unless
    /// `is_final`: then the last frame is the final frame (shorter, or empty when
    /// `plaintext` is empty or ends on a frame boundary — valid ESDK). The caller promises
    /// these sequence numbers were never sealed before for this message (module docs).
    pub fn seal_frames(
        &self,
        par: &Parallelism,
        first_seq: u32,
        plaintext: &[u8],
        is_final: bool,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        if first_seq == 0 {
            return Err(Error::InvalidParameter(
                "sequence numbers start at 1".into(),
            ));
        }
        let fl = self.frame_len as usize;
        let mut frames: Vec<&[u8]> = plaintext.chunks(fl).collect();
        if is_final {
            if plaintext.len() % fl == 0 {
                frames.push(&[]);
            }
        } else if plaintext.len() % fl != 0 {
            return Err(Error::InvalidParameter(
                "only the final frame may be shorter than the frame length".into(),
            ));
        }
        self.cipher()
            .seal_frames(par, first_seq, &frames, is_final, out)
    }

    /// Open `frames` (regular frames `first_seq, …`, as [`Self::seal_frames`] wrote them
    /// without `is_final`), appending their plaintext to `out`. For reading a sealed part
    /// back when it cannot stay in place.
    pub fn open_frames(&self, first_seq: u32, frames: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let fl = self.frame_len as usize;
        let size = 4 + IV_LEN + fl + TAG_LEN;
        if frames.len() % size != 0 {
            return Err(Error::Truncated("sealed frames"));
        }
        let cipher = self.cipher();
        for (i, f) in frames.chunks(size).enumerate() {
            let seq = u32::try_from(i)
                .ok()
                .and_then(|i| first_seq.checked_add(i))
                .filter(|s| *s < FINAL_MARKER)
                .ok_or_else(|| Error::MalformedBody("sealed frames out of sequence".into()))?;
            if f[..4] != seq.to_be_bytes() {
                return Err(Error::MalformedBody("sealed frames out of sequence".into()));
            }
            let mut iv = [0u8; IV_LEN];
            iv.copy_from_slice(&f[4..4 + IV_LEN]);
            let mut ct = f[4 + IV_LEN..].to_vec();
            let n = cipher.open(REGULAR_FRAME, seq, iv, &mut ct)?;
            out.extend_from_slice(&ct[..n]);
        }
        Ok(())
    }

    /// Encode and seal the header for `context` (stored as is) and `edks` (the data key
    /// wrapped under that context): the message's first bytes. Once per message id: a second
    /// call on this value is refused, and the caller makes sure no other process calls it
    /// for this message id (module docs).
    pub fn seal_header(
        &mut self,
        context: EncryptionContext,
        edks: Vec<EncryptedDataKey>,
    ) -> Result<Vec<u8>> {
        if self.header_sealed {
            return Err(Error::InvalidParameter(
                "the header of this message was sealed already".into(),
            ));
        }
        context.check_no_reserved_keys()?;
        if edks.is_empty() {
            return Err(Error::InvalidParameter("no encrypted data keys".into()));
        }
        let header = Header {
            suite: self.suite,
            message_id: self.message_id.clone(),
            context,
            edks,
            content_type: ContentType::Framed,
            frame_length: self.frame_len,
            suite_data: self
                .keys
                .commitment
                .as_ref()
                .map(|c| c.to_vec())
                .unwrap_or_default(),
        };
        let mut bytes = header.encode_body()?;
        self.header_sealed = true;
        let tag = seal_header(&self.keys, &bytes, &[])?;
        bytes.extend_from_slice(&tag);
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::{DecryptOptions, HeaderLimits, ParsedHeader};

    const S: AlgorithmSuite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;

    fn edk() -> EncryptedDataKey {
        EncryptedDataKey {
            provider_id: "test".into(),
            provider_info: b"k".to_vec(),
            ciphertext: vec![0; 48],
        }
    }

    /// Parts sealed out of order by separate values (as separate requests would), then
    /// the header, then a tail with its final frame: the standard reader accepts the result.
    fn assemble(part: usize, parts: usize, tail: usize) -> (Vec<u8>, Vec<u8>) {
        let fl = 64usize;
        let first = DetachedMessage::generate(S, fl as u32).unwrap();
        let (dk, id) = (first.data_key().duplicate(), first.message_id().to_vec());
        let plain: Vec<u8> = (0..part * parts + tail)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut sealed = vec![Vec::new(); parts];
        for n in (0..parts).rev() {
            let m = DetachedMessage::restore(S, fl as u32, dk.duplicate(), id.clone()).unwrap();
            let seq = (n * part / fl + 1) as u32;
            let mut out = Vec::new();
            let k = m
                .seal_frames(
                    &Parallelism::Sequential,
                    seq,
                    &plain[n * part..(n + 1) * part],
                    false,
                    &mut out,
                )
                .unwrap();
            out.truncate(k);
            sealed[n] = out;
        }
        let mut last = DetachedMessage::restore(S, fl as u32, dk.duplicate(), id).unwrap();
        let ctx: EncryptionContext = [("a", "b")].into_iter().collect();
        let mut msg = last.seal_header(ctx.clone(), vec![edk()]).unwrap();
        assert!(last.seal_header(ctx.clone(), vec![edk()]).is_err());
        for s in &sealed {
            msg.extend_from_slice(s);
        }
        let mut out = Vec::new();
        let k = last
            .seal_frames(
                &Parallelism::Global,
                (parts * part / fl + 1) as u32,
                &plain[parts * part..],
                true,
                &mut out,
            )
            .unwrap();
        msg.extend_from_slice(&out[..k]);
        let mut input = &msg[..];
        let parsed = ParsedHeader::read(&mut input, HeaderLimits::default()).unwrap();
        let verified = parsed.verify(&dk, &ctx).unwrap();
        let mut got = Vec::new();
        verified
            .decryptor(input, DecryptOptions::default())
            .read_to_end(&mut got)
            .unwrap();
        (got, plain)
    }

    #[test]
    fn parts_sealed_apart_and_out_of_order_make_one_valid_message() {
        for (part, parts, tail) in [(128, 3, 100), (128, 3, 0), (64, 1, 64), (192, 2, 5)] {
            let (got, plain) = assemble(part, parts, tail);
            assert_eq!(got, plain, "part {part} × {parts} + {tail}");
        }
    }

    #[test]
    fn sealed_frames_open_back_and_refuse_wrong_positions() {
        let m = DetachedMessage::generate(S, 32).unwrap();
        let plain = vec![9u8; 96];
        let mut out = Vec::new();
        let k = m
            .seal_frames(&Parallelism::Sequential, 4, &plain, false, &mut out)
            .unwrap();
        let mut back = Vec::new();
        m.open_frames(4, &out[..k], &mut back).unwrap();
        assert_eq!(back, plain);
        assert!(m.open_frames(5, &out[..k], &mut Vec::new()).is_err());
        assert!(m
            .seal_frames(&Parallelism::Sequential, 1, &plain[..40], false, &mut out)
            .is_err());
        assert!(m
            .seal_frames(&Parallelism::Sequential, 0, &plain, false, &mut out)
            .is_err());
    }

    #[test]
    fn signed_suites_are_refused() {
        let signed = AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384;
        assert!(DetachedMessage::generate(signed, 64).is_err());
    }

    #[test]
    fn the_header_is_tagged_once() {
        crate::header::sealed_headers::take();
        let _ = assemble(128, 2, 3);
        let tags = crate::header::sealed_headers::take();
        assert_eq!(tags.len(), 1, "one header tag for the message");
    }
}
