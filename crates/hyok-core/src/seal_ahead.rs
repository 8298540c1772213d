//! `Encryptor::copy_from` on two threads: a helper thread reads the plaintext into the frame
//! slots of a batch and seals each piece as soon as it is read (while it is still in that
//! core's cache), and the calling thread writes the sealed batches out. Reading plus sealing
//! and writing each cost less than a plain read-and-write copy, so a file is encrypted at
//! about the speed the kernel copies it (docs/BENCHMARKS.md).

use std::io::{self, IoSliceMut, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::aligned::AlignedBuf;
use crate::frame::{FrameCipher, Parallelism, IO_PIECE};
use crate::header::{IV_LEN, TAG_LEN};

/// Buffers in turn: one being filled and sealed, one being written, one waiting.
const BUFFERS: usize = 3;

/// What [`copy`] did.
pub(crate) struct Copied {
    /// Frames sealed (sequence numbers `first_seq ..`), all regular frames.
    pub(crate) frames: u32,
    /// Plaintext read but not sealed (at most two frames): the last whole frame read, which
    /// may be the final frame, and what followed it. The caller seals it through `Write`.
    pub(crate) rest: Vec<u8>,
    /// Bytes read from the input.
    pub(crate) read: u64,
}

/// Read `input` to its end, sealing its frames (length `frame_len`, `per_batch` to a batch,
/// sequence numbers from `first_seq`) on a helper thread, and give every run of sealed
/// frames, in order, to `write` on this thread. The frame layout is the `Write` path's: a
/// frame is sealed only once a later byte shows it is not the final frame.
///
/// If `write` fails, the helper stops at its next read or hand-over, and the error is
/// returned once the read in progress has returned.
pub(crate) fn copy<R, W>(
    input: &mut R,
    cipher: &FrameCipher<'_>,
    first_seq: u32,
    frame_len: usize,
    per_batch: usize,
    mut write: W,
) -> io::Result<Copied>
where
    R: Read + Send + ?Sized,
    W: FnMut(&[u8]) -> io::Result<()>,
{
    let slot = 4 + IV_LEN + frame_len + TAG_LEN;
    let (full_tx, full_rx) = sync_channel::<(AlignedBuf, usize)>(BUFFERS);
    let (free_tx, free_rx) = sync_channel::<AlignedBuf>(BUFFERS);
    for _ in 0..BUFFERS {
        free_tx
            .send(AlignedBuf::new(per_batch * slot))
            .expect("the receiver is alive");
    }
    let reader = Reader {
        cipher,
        frame_len,
        per_batch,
        full: full_tx,
        free: free_rx,
    };
    std::thread::scope(|s| {
        let helper = s.spawn(move || reader.run(input, first_seq));
        let mut written = Ok(());
        for (mut buf, frames) in full_rx.iter() {
            written = write(&buf.get()[..frames * slot]);
            if written.is_err() {
                break;
            }
            // The helper may have finished: then the buffer is not needed.
            let _ = free_tx.send(buf);
        }
        // The helper's next hand-over or request for a buffer fails: it stops.
        drop(full_rx);
        drop(free_tx);
        let copied = helper
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        written?;
        copied
    })
}

/// The helper thread's half of [`copy`].
struct Reader<'a, 'c> {
    cipher: &'a FrameCipher<'c>,
    frame_len: usize,
    per_batch: usize,
    full: SyncSender<(AlignedBuf, usize)>,
    free: Receiver<AlignedBuf>,
}

impl Reader<'_, '_> {
    fn run<R: Read + ?Sized>(self, input: &mut R, first_seq: u32) -> io::Result<Copied> {
        let (fl, k) = (self.frame_len, self.per_batch);
        let slot = 4 + IV_LEN + fl + TAG_LEN;
        let body = 4 + IV_LEN..4 + IV_LEN + fl;
        let mut seq = first_seq;
        let mut read = 0u64;
        let mut buf = self.next_buffer()?;
        // Plaintext bytes in the bodies of `buf`'s slots, and whole frames sealed there.
        let mut filled = 0;
        loop {
            let slots = buf.get();
            let mut sealed = 0;
            let mut end = false;
            while filled < k * fl {
                let n = read_piece(input, slots, fl, filled)?;
                if n == 0 {
                    end = true;
                    break;
                }
                filled += n;
                read += n as u64;
                // Frames followed by at least one more byte are not the final frame.
                let ready = (filled - 1) / fl;
                if ready > sealed {
                    self.cipher.seal_slots(
                        &Parallelism::Sequential,
                        seq + sealed as u32,
                        fl,
                        &mut slots[sealed * slot..ready * slot],
                    )?;
                    sealed = ready;
                }
            }
            if end {
                let mut rest = Vec::with_capacity(filled - sealed * fl);
                for s in slots.chunks_exact(slot).skip(sealed) {
                    let n = fl.min(filled - sealed * fl - rest.len());
                    rest.extend_from_slice(&s[body.start..body.start + n]);
                }
                seq += sealed as u32;
                if sealed > 0 {
                    self.hand_over(buf, sealed)?;
                }
                return Ok(Copied {
                    frames: seq - first_seq,
                    rest,
                    read,
                });
            }
            // A full batch: its last frame waits for the next byte, in the next buffer.
            let mut next = self.next_buffer()?;
            next.get()[body.clone()].copy_from_slice(&slots[(k - 1) * slot..][body.clone()]);
            seq += sealed as u32;
            self.hand_over(buf, sealed)?;
            buf = next;
            filled = fl;
        }
    }

    fn next_buffer(&self) -> io::Result<AlignedBuf> {
        self.free.recv().map_err(|_| stopped())
    }

    fn hand_over(&self, buf: AlignedBuf, frames: usize) -> io::Result<()> {
        self.full.send((buf, frames)).map_err(|_| stopped())
    }
}

/// The writer stopped (its error is the one returned).
fn stopped() -> io::Error {
    io::Error::other("the writer stopped")
}

/// One `readv` of at most [`IO_PIECE`] bytes into the frame bodies of `slots`, from
/// plaintext byte `filled` of the batch on; the bytes read (0 at the end of the input).
fn read_piece<R: Read + ?Sized>(
    input: &mut R,
    slots: &mut [u8],
    frame_len: usize,
    filled: usize,
) -> io::Result<usize> {
    let slot = 4 + IV_LEN + frame_len + TAG_LEN;
    let (first, offset) = (filled / frame_len, filled % frame_len);
    let mut room = IO_PIECE;
    let mut bodies = Vec::new();
    for (i, s) in slots.chunks_exact_mut(slot).enumerate().skip(first) {
        let from = 4 + IV_LEN + if i == first { offset } else { 0 };
        let n = (4 + IV_LEN + frame_len - from).min(room);
        bodies.push(IoSliceMut::new(&mut s[from..from + n]));
        room -= n;
        if room == 0 {
            break;
        }
    }
    loop {
        match input.read_vectored(&mut bodies) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}
