//! Request and response bodies between the async server and the blocking crypto.
//!
//! An upload's body is pumped by an async task into a channel of a few chunks; the
//! encryptor, on a blocking thread, reads it through [`BodyReader`]. The pump computes the
//! plaintext's MD5 and the checksums the client announced (`x-amz-checksum-*`, in headers or
//! in aws-chunked trailers) and checks them, and the length, *before* it lets the reader see
//! the end of the body: a body that does not match never becomes a complete object, because
//! the reader gets an error instead of the end and the upload is aborted.
//!
//! A download's plaintext goes the other way: the decryptor writes into [`ChannelWriter`],
//! whose chunks become the response body stream.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hyok::Md5;
use s3s::checksum::ChecksumHasher;
use s3s::dto::StreamingBlob;
use s3s::{s3_error, S3Error, S3Result, TrailingHeaders};
use tokio::sync::mpsc;

/// Chunks in flight between the network and the crypto, each way.
const CHANNEL_CHUNKS: usize = 4;
/// Size of the response body chunks.
const OUT_CHUNK: usize = 256 * 1024;

/// The [`Wanted`] of a PutObject or UploadPart input (their checksum fields have the same
/// names).
macro_rules! wanted_of {
    ($i:expr) => {
        $crate::body::Wanted {
            content_md5: $i.content_md5.clone(),
            crc32: $i.checksum_crc32.clone(),
            crc32c: $i.checksum_crc32c.clone(),
            sha1: $i.checksum_sha1.clone(),
            sha256: $i.checksum_sha256.clone(),
            crc64nvme: $i.checksum_crc64nvme.clone(),
            algorithm: $i
                .checksum_algorithm
                .as_ref()
                .map(|a| a.as_str().to_owned()),
            etag_md5: false,
        }
    };
}
pub(crate) use wanted_of;

/// Checksums a client announced for a body (`x-amz-checksum-*` headers or trailers, and
/// `x-amz-sdk-checksum-algorithm`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Wanted {
    /// `Content-MD5` (base64), when sent.
    pub(crate) content_md5: Option<String>,
    /// Announced checksums, base64.
    pub(crate) crc32: Option<String>,
    /// CRC32C.
    pub(crate) crc32c: Option<String>,
    /// SHA-1.
    pub(crate) sha1: Option<String>,
    /// SHA-256.
    pub(crate) sha256: Option<String>,
    /// CRC64NVME.
    pub(crate) crc64nvme: Option<String>,
    /// The algorithm whose checksum follows in a trailer.
    pub(crate) algorithm: Option<String>,
    /// Whether the body's MD5 is wanted without a Content-MD5 (it becomes the ETag). The
    /// MD5 is computed only then or to check a Content-MD5: on large uploads it was the
    /// gateway's largest single cost.
    pub(crate) etag_md5: bool,
}

/// What the pump measured of a verified body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Measured {
    /// MD5, when it was computed (`etag_md5` or a Content-MD5).
    pub(crate) md5: Option<[u8; 16]>,
}

impl Wanted {
    /// The Content-MD5 as raw bytes (`InvalidDigest` when malformed).
    pub(crate) fn md5(&self) -> S3Result<Option<[u8; 16]>> {
        use base64::Engine;
        self.content_md5
            .as_deref()
            .map(|m| {
                base64::engine::general_purpose::STANDARD
                    .decode(m.trim())
                    .ok()
                    .and_then(|v| <[u8; 16]>::try_from(v).ok())
                    .ok_or_else(|| s3_error!(InvalidDigest, "Content-MD5 is not a base64 MD5"))
            })
            .transpose()
    }

    /// Whether the client sent a flexible checksum (`x-amz-checksum-*` or
    /// `x-amz-sdk-checksum-algorithm`).
    pub(crate) fn flexible(&self) -> bool {
        self.crc32.is_some()
            || self.crc32c.is_some()
            || self.sha1.is_some()
            || self.sha256.is_some()
            || self.crc64nvme.is_some()
            || self.algorithm.is_some()
    }

    fn hasher(&self) -> S3Result<ChecksumHasher> {
        let mut h = ChecksumHasher::default();
        if self.crc32.is_some() {
            h.crc32 = Some(Default::default());
        }
        if self.crc32c.is_some() {
            h.crc32c = Some(Default::default());
        }
        if self.sha1.is_some() {
            h.sha1 = Some(Default::default());
        }
        if self.sha256.is_some() {
            h.sha256 = Some(Default::default());
        }
        if self.crc64nvme.is_some() {
            h.crc64nvme = Some(Default::default());
        }
        match self
            .algorithm
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None => {}
            Some("CRC32") => h.crc32 = Some(Default::default()),
            Some("CRC32C") => h.crc32c = Some(Default::default()),
            Some("SHA1") => h.sha1 = Some(Default::default()),
            Some("SHA256") => h.sha256 = Some(Default::default()),
            Some("CRC64NVME") => h.crc64nvme = Some(Default::default()),
            Some(_) => return Err(s3_error!(InvalidArgument, "unsupported checksum algorithm")),
        }
        Ok(h)
    }
}

/// The largest body of one PutObject or UploadPart: S3's 5 GiB. Larger objects are
/// multipart uploads (up to 10,000 parts of up to 5 GiB each), as on S3; a client that
/// announces more gets `EntityTooLarge` before a byte of its body is read.
pub(crate) const MAX_UPLOAD: u64 = 5 * 1024 * 1024 * 1024;

/// The plaintext length of an upload's body: its `Content-Length`, or, for an aws-chunked
/// body (`x-amz-content-sha256: STREAMING-…`, which s3s decodes) sent with
/// `Transfer-Encoding: chunked` and no `Content-Length` (the AWS SDK for C++ and the
/// CRT-based SDKs do this), its `x-amz-decoded-content-length`, the length the chunk decoder
/// holds the body to. The pump checks the body against it either way. Over [`MAX_UPLOAD`]:
/// `EntityTooLarge`, as S3.
pub(crate) fn upload_len(content_length: Option<i64>, headers: &hyper::HeaderMap) -> S3Result<u64> {
    let len = match content_length {
        Some(n) => u64::try_from(n).map_err(|_| s3_error!(InvalidArgument, "a negative length"))?,
        None => {
            let chunked =
                tokens(headers, "x-amz-content-sha256").any(|t| t.starts_with("STREAMING-"));
            let decoded = headers
                .get("x-amz-decoded-content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            match decoded {
                Some(n) if chunked => n,
                _ => return Err(s3_error!(MissingContentLength)),
            }
        }
    };
    if len > MAX_UPLOAD {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size (5 GiB a request; larger objects are multipart uploads)"
        ));
    }
    Ok(len)
}

/// Whether a request announces a flexible checksum in an aws-chunked trailer
/// (`x-amz-trailer: x-amz-checksum-…`).
pub(crate) fn trailer_checksum(headers: &hyper::HeaderMap) -> bool {
    tokens(headers, "x-amz-trailer").any(|t| t.to_ascii_lowercase().starts_with("x-amz-checksum-"))
}

/// The comma-separated values of every `name` header, trimmed.
fn tokens<'a>(headers: &'a hyper::HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Running digests of a body and the final check against what the client announced.
struct Digests {
    md5: Option<Md5>,
    sums: ChecksumHasher,
    len: u64,
    wanted: Wanted,
    expected_len: Option<u64>,
}

impl Digests {
    fn new(wanted: Wanted, expected_len: Option<u64>) -> S3Result<Self> {
        Ok(Self {
            md5: (wanted.etag_md5 || wanted.content_md5.is_some())
                .then(Md5::new)
                .transpose()
                .map_err(md5_failed)?,
            sums: wanted.hasher()?,
            len: 0,
            wanted,
            expected_len,
        })
    }

    fn update(&mut self, b: &[u8]) -> S3Result<()> {
        self.len += b.len() as u64;
        if self.expected_len.is_some_and(|n| self.len > n) {
            return Err(s3_error!(
                IncompleteBody,
                "the body is longer than its Content-Length"
            ));
        }
        if let Some(m) = self.md5.as_mut() {
            m.update(b);
        }
        self.sums.update(b);
        Ok(())
    }

    fn finish(self, trailers: Option<TrailingHeaders>) -> S3Result<Measured> {
        if self.expected_len.is_some_and(|n| self.len != n) {
            return Err(s3_error!(
                IncompleteBody,
                "the body is shorter than its Content-Length"
            ));
        }
        let md5 = self.md5.map(Md5::finish).transpose().map_err(md5_failed)?;
        if let Some(want) = self.wanted.md5()? {
            if Some(want) != md5 {
                return Err(s3_error!(BadDigest, "Content-MD5 does not match the body"));
            }
        }
        let mut w = self.wanted;
        if let Some(map) = trailers.and_then(|t| t.take()) {
            let get = |name: &str| {
                map.get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            w.crc32 = get("x-amz-checksum-crc32").or(w.crc32);
            w.crc32c = get("x-amz-checksum-crc32c").or(w.crc32c);
            w.sha1 = get("x-amz-checksum-sha1").or(w.sha1);
            w.sha256 = get("x-amz-checksum-sha256").or(w.sha256);
            w.crc64nvme = get("x-amz-checksum-crc64nvme").or(w.crc64nvme);
        }
        let got = self.sums.finalize();
        let pairs = [
            ("CRC32", &w.crc32, &got.checksum_crc32),
            ("CRC32C", &w.crc32c, &got.checksum_crc32c),
            ("SHA1", &w.sha1, &got.checksum_sha1),
            ("SHA256", &w.sha256, &got.checksum_sha256),
            ("CRC64NVME", &w.crc64nvme, &got.checksum_crc64nvme),
        ];
        for (name, want, got) in pairs {
            if let (Some(want), Some(got)) = (want, got) {
                if want != got {
                    return Err(s3_error!(
                        BadDigest,
                        "the {name} checksum does not match the body"
                    ));
                }
            }
        }
        Ok(Measured { md5 })
    }
}

/// AWS-LC could not set up or finish an MD5 (an allocation failure).
pub(crate) fn md5_failed(e: impl std::fmt::Display) -> S3Error {
    s3_error!(InternalError, "{e}")
}

fn body_error(e: s3s::StdError) -> S3Error {
    if crate::stall::is_stalled(e.as_ref()) {
        // S3's answer to a client that stops sending, which SDKs retry.
        return s3_error!(RequestTimeout, "{e}");
    }
    s3_error!(IncompleteBody, "reading the request body failed: {e}")
}

/// Read a whole (small) body into memory and verify it.
pub(crate) async fn collect(
    mut body: StreamingBlob,
    wanted: Wanted,
    trailers: Option<TrailingHeaders>,
    len: u64,
) -> S3Result<(Vec<u8>, Measured)> {
    let mut d = Digests::new(wanted, Some(len))?;
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(body_error)?;
        d.update(&chunk)?;
        buf.extend_from_slice(&chunk);
    }
    let m = d.finish(trailers)?;
    Ok((buf, m))
}

/// Start pumping `body` into a [`BodyReader`]. The task's result is the verified
/// measurement, or why the body was refused (the reader then saw an error, not the end).
pub(crate) fn pump(
    mut body: StreamingBlob,
    wanted: Wanted,
    trailers: Option<TrailingHeaders>,
    len: Option<u64>,
) -> S3Result<(BodyReader, tokio::task::JoinHandle<S3Result<Measured>>)> {
    let mut d = Digests::new(wanted, len)?;
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    let task = tokio::spawn(async move {
        let fail = |tx: mpsc::Sender<io::Result<Bytes>>, e: S3Error| async move {
            let _ = tx
                .send(Err(io::Error::other("the request body was refused")))
                .await;
            Err(e)
        };
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => return fail(tx, body_error(e)).await,
            };
            if let Err(e) = d.update(&chunk) {
                return fail(tx, e).await;
            }
            if tx.send(Ok(chunk)).await.is_err() {
                // The reader gave up (the upload failed): its error is the one to report.
                return Err(s3_error!(
                    InternalError,
                    "the upload stopped reading the body"
                ));
            }
        }
        match d.finish(trailers) {
            Ok(m) => Ok(m), // dropping `tx` ends the reader's input
            Err(e) => fail(tx, e).await,
        }
    });
    Ok((
        BodyReader {
            rx,
            cur: Bytes::new(),
        },
        task,
    ))
}

/// The blocking side of [`pump`].
pub(crate) struct BodyReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// A reader that appends to a vector without zeroing its spare capacity first, as
/// `read_to_end` does for a reader without `read_buf` (a memset of every part received).
pub(crate) trait AppendRead: Read {
    /// Append up to `n` bytes to `v`, fewer only at the end of input; returns how many.
    fn append(&mut self, v: &mut Vec<u8>, n: usize) -> io::Result<usize> {
        Read::read_to_end(&mut Read::take(self, n as u64), v)
    }
}

impl AppendRead for BodyReader {
    fn append(&mut self, v: &mut Vec<u8>, n: usize) -> io::Result<usize> {
        let mut got = 0;
        while got < n {
            if self.cur.is_empty() {
                match self.rx.blocking_recv() {
                    Some(Ok(b)) => self.cur = b,
                    Some(Err(e)) => return Err(e),
                    None => break,
                }
                continue;
            }
            let k = (n - got).min(self.cur.len());
            v.extend_from_slice(&self.cur.split_to(k));
            got += k;
        }
        Ok(got)
    }
}

/// A `Write` (for the blocking decryptor) whose chunks become a response body.
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

/// The response side of a [`ChannelWriter`].
pub(crate) struct ChannelStream(Mutex<mpsc::Receiver<io::Result<Bytes>>>);

/// A writer and the stream its bytes come out of.
pub(crate) fn channel() -> (ChannelWriter, ChannelStream) {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    (
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(OUT_CHUNK),
        },
        ChannelStream(Mutex::new(rx)),
    )
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let b = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(OUT_CHUNK),
        ));
        self.tx
            .blocking_send(Ok(b))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }

    /// Whether the body's reader is gone (a client that went away, a request that failed).
    pub(crate) fn closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Send the rest (the body then ends when the writer is dropped).
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.send()
    }

    /// End the body with an error: the client sees a broken response, never a short
    /// body that looks complete.
    pub(crate) fn fail(self, why: &str) {
        let _ = self.tx.blocking_send(Err(io::Error::other(why.to_owned())));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(OUT_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == OUT_CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for ChannelStream {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut rx = self.0.lock().unwrap_or_else(|p| p.into_inner());
        rx.poll_recv(cx)
    }
}

/// A blocking pipe between two blocking threads (a decryptor writing, an encryptor
/// reading): copies and completed uploads re-encrypt without holding the object.
pub(crate) fn pipe() -> (PipeWriter, PipeReader) {
    let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_CHUNKS);
    (
        PipeWriter {
            tx,
            buf: Vec::with_capacity(OUT_CHUNK),
        },
        PipeReader {
            rx,
            cur: Bytes::new(),
        },
    )
}

/// The writing end of [`pipe`].
pub(crate) struct PipeWriter {
    tx: std::sync::mpsc::SyncSender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

/// The reading end of [`pipe`]: the end of input only after [`PipeWriter::finish`].
pub(crate) struct PipeReader {
    rx: std::sync::mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl PipeWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let b = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(OUT_CHUNK),
        ));
        self.tx
            .send(Ok(b))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the reader stopped"))
    }

    /// Send the rest and end the input.
    pub(crate) fn finish(mut self) {
        if self.send().is_ok() {
            let _ = self.tx.send(Ok(Bytes::new()));
        }
    }

    /// End the input with an error.
    pub(crate) fn fail(self, why: &str) {
        let _ = self.tx.send(Err(io::Error::other(why.to_owned())));
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(OUT_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == OUT_CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                // An empty chunk is the writer's explicit end.
                Ok(Ok(b)) if b.is_empty() => return Ok(0),
                Ok(Ok(b)) => self.cur = b,
                Ok(Err(e)) => return Err(e),
                // The writer vanished without finishing: never a silent end.
                Err(_) => return Err(io::Error::other("the source stopped early")),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader fed `chunks` (then `end`: an error, or the end of input).
    fn reader(chunks: &[&[u8]], end: Option<&str>) -> BodyReader {
        let (tx, rx) = mpsc::channel(chunks.len() + 1);
        for c in chunks {
            tx.try_send(Ok(Bytes::copy_from_slice(c))).unwrap();
        }
        if let Some(why) = end {
            tx.try_send(Err(io::Error::other(why.to_owned()))).unwrap();
        }
        BodyReader {
            rx,
            cur: Bytes::new(),
        }
    }

    #[test]
    fn append_reads_what_read_reads() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let pieces: Vec<&[u8]> = vec![
            &data[..1],
            &[],
            &data[1..4096],
            &data[4096..9999],
            &data[9999..],
        ];
        for step in [1usize, 7, 4096, 5000, 10_000, 20_000] {
            let mut r = reader(&pieces, None);
            let mut got = vec![0xAA; 3];
            loop {
                let before = got.len();
                let n = r.append(&mut got, step).unwrap();
                assert_eq!(got.len(), before + n, "step {step}");
                assert!(n <= step);
                if n < step {
                    break;
                }
            }
            assert_eq!(&got[..3], &[0xAA; 3]);
            assert_eq!(&got[3..], &data[..], "step {step}");
            // After the end, nothing more.
            assert_eq!(r.append(&mut got, 10).unwrap(), 0);
        }
    }

    #[test]
    fn append_passes_on_a_failed_body() {
        let mut r = reader(&[b"abc"], Some("checksum mismatch"));
        let mut got = Vec::new();
        let e = r.append(&mut got, 10).unwrap_err();
        assert_eq!(e.to_string(), "checksum mismatch");
        assert_eq!(got, b"abc");
        // A limit reached before the error does not see it.
        let mut r = reader(&[b"abc"], Some("checksum mismatch"));
        let mut got = Vec::new();
        assert_eq!(r.append(&mut got, 3).unwrap(), 3);
        assert!(r.append(&mut got, 1).is_err());
    }

    #[test]
    fn flexible_checksums_are_recognised() {
        assert!(!Wanted::default().flexible());
        let md5_only = Wanted {
            content_md5: Some("1B2M2Y8AsgTpgAmY7PhCfg==".into()),
            ..Default::default()
        };
        assert!(!md5_only.flexible());
        for w in [
            Wanted {
                crc32: Some("AAAAAA==".into()),
                ..Default::default()
            },
            Wanted {
                crc64nvme: Some("AAAAAAAAAAA=".into()),
                ..Default::default()
            },
            Wanted {
                algorithm: Some("CRC32".into()),
                ..Default::default()
            },
        ] {
            assert!(w.flexible(), "{w:?}");
        }
        let mut h = hyper::HeaderMap::new();
        assert_eq!(upload_len(Some(5), &h).unwrap(), 5);
        assert!(upload_len(Some(-1), &h).is_err());
        assert!(upload_len(None, &h).is_err());
        h.insert("x-amz-decoded-content-length", "10485760".parse().unwrap());
        assert!(
            upload_len(None, &h).is_err(),
            "only for an aws-chunked body"
        );
        h.insert("x-amz-content-sha256", "UNSIGNED-PAYLOAD".parse().unwrap());
        assert!(upload_len(None, &h).is_err());
        h.insert(
            "x-amz-content-sha256",
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER".parse().unwrap(),
        );
        assert_eq!(upload_len(None, &h).unwrap(), 10485760);
        assert_eq!(upload_len(Some(7), &h).unwrap(), 7);
        h.insert("x-amz-decoded-content-length", "-3".parse().unwrap());
        assert!(upload_len(None, &h).is_err());
        // S3's 5 GiB a request, announced either way.
        let max = i64::try_from(MAX_UPLOAD).unwrap();
        assert_eq!(upload_len(Some(max), &h).unwrap(), MAX_UPLOAD);
        let over = upload_len(Some(max + 1), &h).unwrap_err();
        assert_eq!(over.code(), &s3s::S3ErrorCode::EntityTooLarge);
        h.insert(
            "x-amz-decoded-content-length",
            (MAX_UPLOAD + 1).to_string().parse().unwrap(),
        );
        let over = upload_len(None, &h).unwrap_err();
        assert_eq!(over.code(), &s3s::S3ErrorCode::EntityTooLarge);
        let mut h = hyper::HeaderMap::new();
        assert!(!trailer_checksum(&h));
        h.insert("x-amz-trailer", "x-amz-something-else".parse().unwrap());
        assert!(!trailer_checksum(&h));
        h.insert("x-amz-trailer", "X-Amz-Checksum-CRC32".parse().unwrap());
        assert!(trailer_checksum(&h));
        h.insert(
            "x-amz-trailer",
            "x-amz-other, x-amz-checksum-sha256".parse().unwrap(),
        );
        assert!(trailer_checksum(&h));
    }
}
