//! Re-encrypting stored objects into a new one (CopyObject, CompleteMultipartUpload, large
//! PUTs staged without Content-MD5): the sources are decrypted in order into a pipe whose
//! other end the encryptor of the target reads, so memory stays bounded.
//!
//! Completing an upload of many parts used to read them one after another, each a HEAD and
//! a GET that waited for the previous part's decryption, while the target's writer had
//! nothing to send: most of a Complete was spent waiting on the backend. Parts of at most
//! [`READ_AHEAD_PART`] bytes are now decrypted [`READ_AHEAD`] at a time into memory (taken
//! from the gateway's in-memory body budget) and written to the pipe in order.

use futures::StreamExt;
use std::sync::Arc;

use hyok::objects::Objects;
use hyok::store::StoreUrl;
use hyok::EncryptionContext;
use s3s::{s3_error, S3Error, S3Result};
use tokio::sync::Semaphore;

use crate::body::{self, PipeWriter};
use crate::direct::Opener;
use crate::service::{join_error, to_s3, Caller, Gateway};

/// Parts decrypted at once ahead of the writer.
pub(crate) const READ_AHEAD: usize = 4;
/// Largest part read ahead into memory; larger parts stream one at a time.
pub(crate) const READ_AHEAD_PART: u64 = 16 * 1024 * 1024;

impl Gateway {
    /// Decrypt the objects `sources` (URL, plaintext size) of `src_bucket` in order into one
    /// new object `dst_key` of `dst_bucket` of `len` bytes with `context`; `opener` reads
    /// the sources that are multipart parts sealed in place (`direct.rs`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn reencrypt(
        &self,
        caller: &Caller,
        src_bucket: &str,
        sources: Vec<(StoreUrl, u64)>,
        dst_bucket: &str,
        dst_key: &str,
        len: u64,
        context: EncryptionContext,
        opener: Option<Opener>,
        pin: Option<hyok::store::Precondition>,
    ) -> S3Result<()> {
        let objects = self.objects(caller, src_bucket)?;
        let (w, r) = body::pipe();
        let ahead = opener.is_none()
            && sources.len() > 1
            && sources.iter().all(|(_, n)| *n <= READ_AHEAD_PART);
        let get = async {
            if ahead {
                read_ahead(objects, self.memory.clone(), sources, w).await
            } else {
                read_in_turn(objects, sources, w, opener).await
            }
        };
        let put = self.store_object(
            caller,
            dst_bucket,
            dst_key,
            Box::new(r),
            Some(len),
            context,
            pin,
        );
        let (got, put) = tokio::join!(get, put);
        got?;
        put
    }
}

/// Stream each source into `w` on one blocking thread.
async fn read_in_turn(
    objects: Objects,
    sources: Vec<(StoreUrl, u64)>,
    w: PipeWriter,
    opener: Option<Opener>,
) -> S3Result<()> {
    tokio::task::spawn_blocking(move || {
        let mut w = w;
        for (url, _) in &sources {
            let opened = opener
                .as_ref()
                .and_then(|o| o.open(objects.store(), objects.runtime(), url, &mut w));
            let res = match opened {
                Some(r) => r,
                None => objects
                    .get(url, &mut w, None, &EncryptionContext::new())
                    .map(|_| ()),
            };
            if let Err(e) = res {
                w.fail("reading the source failed");
                return Err(to_s3(e));
            }
        }
        w.finish();
        Ok(())
    })
    .await
    .map_err(join_error)?
}

/// Decrypt the whole message `url` (`n` bytes of plaintext expected) into memory; the
/// caller holds the memory.
pub(crate) async fn decrypt_whole(objects: Objects, url: StoreUrl, n: u64) -> S3Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        let mut buf = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        objects
            .get(&url, &mut buf, None, &EncryptionContext::new())
            .map(|_| buf)
    })
    .await
    .map_err(join_error)?
    .map_err(to_s3)
}

/// Decrypt up to [`READ_AHEAD`] sources at once into memory (`memory`: the in-memory body
/// budget, in KiB permits); write them to `w` in order.
async fn read_ahead(
    objects: Objects,
    memory: Arc<Semaphore>,
    sources: Vec<(StoreUrl, u64)>,
    w: PipeWriter,
) -> S3Result<()> {
    let mut parts = futures::stream::iter(sources)
        .map(|(url, n)| {
            let objects = objects.clone();
            let memory = memory.clone();
            async move {
                let kib = u32::try_from(n.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
                let permit = memory
                    .acquire_many_owned(kib)
                    .await
                    .map_err(|_| s3_error!(ServiceUnavailable))?;
                let buf = decrypt_whole(objects, url, n).await?;
                Ok::<_, S3Error>((buf, permit))
            }
        })
        .buffered(READ_AHEAD);
    let mut w = Some(w);
    while let Some(part) = parts.next().await {
        let Some(writer) = w.take() else { break };
        match part {
            Ok((buf, _permit)) => {
                w = Some(write_blocking(writer, buf).await?);
            }
            Err(e) => {
                tokio::task::spawn_blocking(move || writer.fail("reading the source failed"));
                return Err(e);
            }
        }
    }
    if let Some(writer) = w {
        tokio::task::spawn_blocking(move || writer.finish())
            .await
            .map_err(join_error)?;
    }
    Ok(())
}

/// Write `buf` to the pipe on a blocking thread (the pipe blocks while its reader is busy).
async fn write_blocking(mut w: PipeWriter, buf: Vec<u8>) -> S3Result<PipeWriter> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        w.write_all(&buf).map(|()| w)
    })
    .await
    .map_err(join_error)?
    .map_err(|e| s3_error!(InternalError, "writing the new object failed: {e}"))
}
