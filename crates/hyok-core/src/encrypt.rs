//! Writing messages (ESDK spec `client-apis/encrypt.md`): always message format 2 with a
//! committing suite, framed body, frames sealed in parallel and written in order.

use std::collections::BTreeSet;
use std::io::{self, IoSliceMut, Read, Write};

use crate::aligned::AlignedBuf;
use crate::codec::put_u16;
use crate::context::{EncryptionContext, PUBLIC_KEY_FIELD};
use crate::error::{Error, Result};
use crate::frame::{frames_per_batch, FrameCipher, Parallelism, BATCH_BYTES, IO_PIECE};
use crate::header::{
    seal_header, ContentType, Header, DEFAULT_FRAME_LEN, IV_LEN, MAX_WRITE_FRAME_LEN, TAG_LEN,
};
use crate::key::{derive, DataKey, DerivedKeys, EncryptedDataKey};
use crate::seal_ahead;
use crate::signature::{MessageSigner, SigningStream};
use crate::suite::{AlgorithmSuite, CommitmentPolicy};

/// First half of encryption: the suite and full encryption context are fixed (including
/// the signature public key for signed suites) before any key store wraps a data key,
/// because the raw AES keyring binds the full context as AAD.
#[derive(Debug)]
pub struct PendingEncryption {
    suite: AlgorithmSuite,
    context: EncryptionContext,
    required_keys: BTreeSet<String>,
    signer: Option<MessageSigner>,
    message_id: Vec<u8>,
}

impl PendingEncryption {
    /// Start encrypting with `suite` (must be committing) and the caller's context.
    /// `required_keys` names context keys that are authenticated but not stored in the
    /// header; the decrypting side must supply them again.
    pub fn new(
        suite: AlgorithmSuite,
        caller_context: EncryptionContext,
        required_keys: BTreeSet<String>,
    ) -> Result<Self> {
        CommitmentPolicy::RequireEncryptRequireDecrypt.check_encrypt(suite)?;
        caller_context.check_no_reserved_keys()?;
        if let Some(k) = required_keys
            .iter()
            .find(|k| !caller_context.contains_key(k))
        {
            return Err(Error::Context(format!(
                "required key {k:?} is not in the encryption context"
            )));
        }
        let mut context = caller_context;
        let signer = match suite.signature() {
            Some(alg) => {
                let s = MessageSigner::generate(alg)?;
                context.insert(PUBLIC_KEY_FIELD, s.public_key_b64());
                Some(s)
            }
            None => None,
        };
        let mut message_id = vec![0u8; suite.message_id_len()];
        aws_lc_rs::rand::fill(&mut message_id).map_err(|_| Error::Crypto("random"))?;
        Ok(Self {
            suite,
            context,
            required_keys,
            signer,
            message_id,
        })
    }

    /// The suite.
    pub fn suite(&self) -> AlgorithmSuite {
        self.suite
    }

    /// The message id the message will carry (fresh random bytes).
    pub fn message_id(&self) -> &[u8] {
        &self.message_id
    }

    /// The full materials context key stores must bind (stored and required pairs).
    pub fn context(&self) -> &EncryptionContext {
        &self.context
    }

    /// A fixed message id and signing key instead of fresh random ones, so that a fuzz
    /// input always makes the same message. For `fuzzing` only: never for real messages.
    pub(crate) fn fix_for_fuzzing(&mut self) {
        self.message_id.fill(7);
        if let Some(alg) = self.suite.signature() {
            let signer = MessageSigner::fixed_for_fuzzing(alg);
            self.context
                .insert(PUBLIC_KEY_FIELD, signer.public_key_b64());
            self.signer = Some(signer);
        }
    }

    /// Finish the materials with the data key and its wrapped copies.
    pub fn complete(
        self,
        data_key: DataKey,
        edks: Vec<EncryptedDataKey>,
    ) -> Result<EncryptionMaterials> {
        data_key.check_len(self.suite)?;
        if edks.is_empty() {
            return Err(Error::InvalidParameter("no encrypted data keys".into()));
        }
        Ok(EncryptionMaterials {
            pending: self,
            data_key,
            edks,
        })
    }
}

/// Everything needed to write one message.
#[derive(Debug)]
pub struct EncryptionMaterials {
    pending: PendingEncryption,
    data_key: DataKey,
    edks: Vec<EncryptedDataKey>,
}

impl EncryptionMaterials {
    /// The wrapped data keys that will be stored.
    pub fn edks(&self) -> &[EncryptedDataKey] {
        &self.edks
    }
}

/// Options for writing a message.
#[derive(Clone, Debug)]
pub struct EncryptOptions {
    /// Plaintext bytes per frame (1 ..= 2^31-1). Default 64 KiB.
    pub frame_length: u32,
    /// How frames are spread over cores.
    pub parallelism: Parallelism,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        Self {
            frame_length: DEFAULT_FRAME_LEN,
            parallelism: Parallelism::default(),
        }
    }
}

/// Streaming encryptor: write plaintext into it, then call [`Encryptor::finish`].
/// A dropped, unfinished encryptor leaves a message without final frame, which every
/// reader rejects.
pub struct Encryptor<W: Write> {
    out: W,
    keys: DerivedKeys,
    message_id: Vec<u8>,
    frame_len: usize,
    par: Parallelism,
    /// Plaintext not sealed yet; starts on a frame boundary, at most `batch` bytes.
    buf: Vec<u8>,
    /// Encoded frames sealed but not written yet: `sealed[..sealed_len]`. They are written
    /// while the next batch is sealed into `spare` (the two then swap).
    sealed: Vec<u8>,
    sealed_len: usize,
    spare: Vec<u8>,
    /// Frames sealed together (`batch` = this × `frame_len`).
    frames_per_batch: usize,
    batch: usize,
    next_seq: u32,
    /// The running footer signature (signed suites).
    hash: Option<SigningStream>,
    header: Header,
    plaintext_len: u64,
    /// Bytes of the message written to `out` so far (header included): where the next
    /// write lands, if the message starts at offset 0 of a file.
    written: u64,
}

impl<W: Write> std::fmt::Debug for Encryptor<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("suite", &self.header.suite)
            .field("frame_len", &self.frame_len)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Encryptor<W> {
    /// Write the header to `out` and return a writer for the body.
    pub fn new(mut out: W, materials: EncryptionMaterials, opts: EncryptOptions) -> Result<Self> {
        if opts.frame_length == 0 || opts.frame_length > MAX_WRITE_FRAME_LEN {
            return Err(Error::InvalidParameter(format!(
                "frame length must be between 1 and {MAX_WRITE_FRAME_LEN}"
            )));
        }
        let EncryptionMaterials {
            pending,
            data_key,
            edks,
        } = materials;
        let suite = pending.suite;
        let message_id = pending.message_id.clone();
        let keys = derive(suite, &data_key, &message_id)?;
        drop(data_key);
        let mut stored = pending.context.clone();
        let mut required = EncryptionContext::new();
        for k in &pending.required_keys {
            if let Some(v) = stored.remove(k) {
                required.insert(k.clone(), v);
            }
        }
        let header = Header {
            suite,
            message_id: message_id.clone(),
            context: stored,
            edks,
            content_type: ContentType::Framed,
            frame_length: opts.frame_length,
            suite_data: keys
                .commitment
                .as_ref()
                .map(|c| c.to_vec())
                .unwrap_or_default(),
        };
        let mut bytes = header.encode_body()?;
        let tag = seal_header(&keys, &bytes, &required.serialize()?)?;
        bytes.extend_from_slice(&tag);
        let mut hash = pending.signer.map(MessageSigner::start).transpose()?;
        if let Some(h) = hash.as_mut() {
            h.update(&bytes);
        }
        out.write_all(&bytes)?;
        let written = bytes.len() as u64;
        let frame_len = opts.frame_length as usize;
        let frames_per_batch = frames_per_batch(frame_len, BATCH_BYTES);
        let batch = frames_per_batch * frame_len;
        Ok(Self {
            out,
            keys,
            message_id,
            frame_len,
            par: opts.parallelism,
            buf: Vec::with_capacity(batch.min(BATCH_BYTES * 2)),
            sealed: Vec::new(),
            sealed_len: 0,
            spare: Vec::new(),
            frames_per_batch,
            batch,
            next_seq: 1,
            hash,
            header,
            plaintext_len: 0,
            written,
        })
    }

    /// The header that was written.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Seal the buffered frames followed by the frames of `direct` (whole frames taken
    /// straight from the caller's data) and empty the buffer. The last frame is the final
    /// frame when `is_final`. The frames sealed by the previous call are written out (and
    /// hashed, for signed suites) on this thread meanwhile; the new ones wait for the next
    /// call, or for [`Self::finish`].
    fn seal_and_write(&mut self, direct: &[u8], is_final: bool) -> Result<()> {
        let cipher = FrameCipher {
            key: &self.keys.aead,
            message_id: &self.message_id,
        };
        let frames: Vec<&[u8]> = self
            .buf
            .chunks(self.frame_len)
            .chain(direct.chunks(self.frame_len))
            .collect();
        let (par, first_seq, spare) = (&self.par, self.next_seq, &mut self.spare);
        let (out, hash, at, pending) = (
            &mut self.out,
            &mut self.hash,
            &mut self.written,
            &self.sealed[..self.sealed_len],
        );
        let bytes = self.buf.len() + direct.len();
        let (sealed, written) = par.overlap(
            bytes,
            || cipher.seal_frames(par, first_seq, &frames, is_final, spare),
            || write_sealed(out, hash, at, pending),
        );
        written?;
        self.sealed_len = 0;
        let n = sealed?;
        // `seal_frames` checked that the last sequence number fits.
        self.next_seq += frames.len().max(1) as u32;
        std::mem::swap(&mut self.sealed, &mut self.spare);
        self.sealed_len = n;
        self.buf.clear();
        Ok(())
    }

    /// Encrypt all of `input` (up to its end; [`Self::finish`] still ends the message) and
    /// return how many bytes that was: the same frames as writing the same bytes through
    /// `Write`, without copying them. Each batch is read (`readv`) straight into the frame
    /// slots of a buffer and sealed there in place. A full batch's last frame is sealed with
    /// the next batch (only more input shows it is not the final frame): its plaintext
    /// moves to the next buffer's first slot.
    ///
    /// With a thread pool (the default), a helper thread reads and seals each piece as it
    /// arrives while this thread writes the batch sealed before (module `seal_ahead`); if
    /// writing fails, the error comes back once the helper's read in progress returns.
    /// [`Parallelism::Sequential`] does all of it on this thread.
    pub fn copy_from<R: Read + Send + ?Sized>(&mut self, input: &mut R) -> io::Result<u64> {
        let (fl, k) = (self.frame_len, self.frames_per_batch);
        if !self.buf.is_empty() || k < 2 || fl < SLOTS_MIN_FRAME {
            // Bytes written before through `Write` (their frame layout goes on), one frame
            // per batch, or frames so short that a read per frame would cost more than the
            // copy it saves: in batches through `Write`.
            return self.copy_through_write(input);
        }
        if !matches!(self.par, Parallelism::Sequential) {
            return self.copy_sealing_ahead(input);
        }
        let slot = 4 + IV_LEN + fl + TAG_LEN;
        let (mut a, mut b) = (AlignedBuf::new(k * slot), AlignedBuf::new(k * slot));
        // `cur`: plaintext in its slots, to seal. `other`: `sealed` slots sealed, to write.
        let (mut cur, mut other) = (a.get(), b.get());
        let mut sealed = 0;
        let mut total = 0u64;
        let mut got = read_bodies(input, cur, fl, 0)?;
        while got == k * fl {
            let first_seq = self.next_seq;
            let cipher = FrameCipher {
                key: &self.keys.aead,
                message_id: &self.message_id,
            };
            let (par, out, hash, at) =
                (&self.par, &mut self.out, &mut self.hash, &mut self.written);
            let (to_seal, carry) = cur.split_at_mut((k - 1) * slot);
            let body = 4 + IV_LEN..4 + IV_LEN + fl;
            let (done, next) = par.overlap(
                (k - 1) * fl,
                || cipher.seal_slots(par, first_seq, fl, to_seal),
                || -> io::Result<usize> {
                    write_sealed(out, hash, at, &other[..sealed * slot])?;
                    other[body.clone()].copy_from_slice(&carry[body.clone()]);
                    read_bodies(input, other, fl, 1)
                },
            );
            done?;
            // `seal_slots` checked that the sequence numbers fit.
            self.next_seq += (k - 1) as u32;
            sealed = k - 1;
            self.plaintext_len += ((k - 1) * fl) as u64;
            total += ((k - 1) * fl) as u64;
            got = fl + next?;
            std::mem::swap(&mut cur, &mut other);
        }
        // The end of the input: what is sealed goes out, and the last plaintext (less
        // than a batch) through `Write`, so that `finish` seals the final frame.
        write_sealed(
            &mut self.out,
            &mut self.hash,
            &mut self.written,
            &other[..sealed * slot],
        )?;
        let mut rest = Vec::with_capacity(got);
        for s in cur.chunks_exact(slot) {
            let n = fl.min(got - rest.len());
            rest.extend_from_slice(&s[4 + IV_LEN..4 + IV_LEN + n]);
        }
        self.write_all(&rest)?;
        Ok(total + got as u64)
    }

    /// [`Self::copy_from`] with the reading and sealing on a helper thread.
    fn copy_sealing_ahead<R: Read + Send + ?Sized>(&mut self, input: &mut R) -> io::Result<u64> {
        let cipher = FrameCipher {
            key: &self.keys.aead,
            message_id: &self.message_id,
        };
        let (out, hash, at) = (&mut self.out, &mut self.hash, &mut self.written);
        let copied = seal_ahead::copy(
            input,
            &cipher,
            self.next_seq,
            self.frame_len,
            self.frames_per_batch,
            |frames| Ok(write_sealed(out, hash, at, frames)?),
        )?;
        // `seal_slots` checked that the sequence numbers fit.
        self.next_seq += copied.frames;
        self.plaintext_len += u64::from(copied.frames) * self.frame_len as u64;
        self.write_all(&copied.rest)?;
        Ok(copied.read)
    }

    /// [`Self::copy_from`] through `Write`, one batch-sized write at a time (sealed
    /// straight from it, see [`Self::write_direct`]).
    fn copy_through_write<R: Read + ?Sized>(&mut self, input: &mut R) -> io::Result<u64> {
        let mut buf = AlignedBuf::new(self.batch);
        let buf = buf.get();
        let mut total = 0;
        loop {
            let n = read_full(input, buf)?;
            if n == 0 {
                return Ok(total);
            }
            self.write_all(&buf[..n])?;
            total += n as u64;
        }
    }

    /// Take up to a batch of `data` into the buffer (small writes).
    fn write_buffered(&mut self, data: &[u8]) -> Result<usize> {
        // Seal a full batch only once more data follows: the last frames are sealed by
        // `finish`, so an exact multiple of the frame length ends with a full final frame.
        if self.buf.len() == self.batch {
            self.seal_and_write(&[], false)?;
        }
        let n = data.len().min(self.batch - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    /// Seal whole frames straight from `data` (more than one frame long) without copying
    /// them into the buffer first. At least one byte of `data` is left for later calls, so
    /// a frame sealed here is never the final one, and the frame layout is the same as if
    /// every byte had gone through the buffer.
    fn write_direct(&mut self, data: &[u8]) -> Result<usize> {
        let fl = self.frame_len;
        if self.buf.len() == self.batch {
            // More data follows, so none of these is the final frame.
            self.seal_and_write(&[], false)?;
        }
        // Complete a partly buffered frame first (fewer than `fl` bytes < `data.len()`).
        // Then either the buffer is full (and `used` > 0) or there is room for `k` ≥ 1
        // more frames: every call makes progress.
        let mut used = 0;
        let partial = self.buf.len() % fl;
        if partial != 0 {
            used = fl - partial;
            self.buf.extend_from_slice(&data[..used]);
        }
        let rest = &data[used..];
        let room = self.frames_per_batch - self.buf.len() / fl;
        let k = ((rest.len() - 1) / fl).min(room);
        self.seal_and_write(&rest[..k * fl], false)?;
        Ok(used + k * fl)
    }

    /// Seal what is buffered as the last frames, write the footer for signed suites, and
    /// return the inner writer. Returns the number of plaintext bytes written.
    pub fn finish(mut self) -> Result<(W, u64)> {
        self.seal_and_write(&[], true)?;
        self.drain_sealed()?;
        if let Some(hash) = self.hash.take() {
            let sig = hash.sign()?;
            let mut footer = Vec::with_capacity(sig.len() + 2);
            put_u16(&mut footer, sig.len() as u16);
            footer.extend_from_slice(&sig);
            self.out.write_all(&footer)?;
        }
        self.out.flush()?;
        Ok((self.out, self.plaintext_len))
    }

    /// Bytes of plaintext accepted so far.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// Hash and write the frames sealed so far.
    fn drain_sealed(&mut self) -> Result<()> {
        write_sealed(
            &mut self.out,
            &mut self.hash,
            &mut self.written,
            &self.sealed[..self.sealed_len],
        )?;
        self.sealed_len = 0;
        Ok(())
    }
}

/// Read from `input` until `buf` is full or the input ends; how many bytes were read.
fn read_full<R: Read + ?Sized>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let end = buf.len().min(n + IO_PIECE);
        match input.read(&mut buf[n..end]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Shortest frame that `Encryptor::copy_from` reads into place (one `iovec` per frame).
const SLOTS_MIN_FRAME: usize = 4096;

/// Read the plaintext of frames into the slots of `slots` (see
/// [`FrameCipher::seal_slots`]) from slot `from` on, until they are full or the input ends,
/// in `readv` calls of up to [`IO_PIECE`] bytes; how many bytes were read.
fn read_bodies<R: Read + ?Sized>(
    input: &mut R,
    slots: &mut [u8],
    frame_len: usize,
    from: usize,
) -> io::Result<usize> {
    let slot = 4 + IV_LEN + frame_len + TAG_LEN;
    let mut bodies: Vec<IoSliceMut<'_>> = slots
        .chunks_exact_mut(slot)
        .skip(from)
        .flat_map(|s| s[4 + IV_LEN..4 + IV_LEN + frame_len].chunks_mut(IO_PIECE))
        .map(IoSliceMut::new)
        .collect();
    let mut rest = &mut bodies[..];
    let mut total = 0;
    while !rest.is_empty() {
        // At most IO_PIECE bytes per call (see IO_PIECE).
        let mut len = 0;
        let mut count = 0;
        while count < rest.len() && len + rest[count].len() <= IO_PIECE.max(rest[0].len()) {
            len += rest[count].len();
            count += 1;
        }
        match input.read_vectored(&mut rest[..count]) {
            Ok(0) => break,
            Ok(n) => {
                total += n;
                IoSliceMut::advance_slices(&mut rest, n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// Hash (signed suites) and write encoded frames, which land at offset `at` of the
/// message (advanced by their length). The writes are `IO_PIECE` long and end on multiples
/// of `IO_PIECE` (except the last): a file written from offset 0 then takes whole pages in
/// every write but the first and last of a batch, where writes that start inside a page (a
/// header is any length, a frame is 32 bytes longer than its plaintext) cost the kernel
/// 10-25 % more (measured with 256 KiB writes of 1 GiB into the page cache: 0.25-0.28 s
/// starting 100 bytes into a page, 0.21-0.23 s page-aligned).
fn write_sealed<W: Write>(
    out: &mut W,
    hash: &mut Option<SigningStream>,
    at: &mut u64,
    frames: &[u8],
) -> Result<()> {
    if frames.is_empty() {
        return Ok(());
    }
    if let Some(h) = hash.as_mut() {
        h.update(frames);
    }
    let mut rest = frames;
    while !rest.is_empty() {
        let to_boundary = IO_PIECE - (*at % IO_PIECE as u64) as usize;
        let (piece, tail) = rest.split_at(to_boundary.min(rest.len()));
        out.write_all(piece)?;
        *at += piece.len() as u64;
        rest = tail;
    }
    Ok(())
}

impl<W: Write> Write for Encryptor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let n = if data.len() > self.frame_len {
            self.write_direct(data)?
        } else {
            self.write_buffered(data)?
        };
        self.plaintext_len += n as u64;
        Ok(n)
    }

    /// Writes out the frames sealed so far (a partial frame stays buffered until more
    /// data or `finish` completes it) and flushes the inner writer.
    fn flush(&mut self) -> io::Result<()> {
        self.drain_sealed()?;
        self.out.flush()
    }
}
