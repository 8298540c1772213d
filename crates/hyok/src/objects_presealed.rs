//! Writing a message whose body was sealed before its header ([`DetachedMessage`]): the S3
//! gateway's multipart uploads with direct frames (docs/DESIGN.md, "S3 gateway"). The data
//! key, drawn when the upload started, is wrapped here under the object's final encryption
//! context by the keyring's keys, the header is sealed once, and header ‖ the caller's
//! already sealed frames become the object, with the same metadata and location binding as
//! [`Objects::put`].

use std::io::Read;

use hyok_core::DetachedMessage;
use hyok_store::{Precondition, StoreUrl};

use super::{copy, Objects, PutReport, Source, META_HEADER_LEN};
use crate::policy::Action;
use crate::{Error, Result};

impl Objects {
    /// Write the object `url`: the header of `message` for `source`'s context (plus the
    /// location pairs, as [`Objects::put`]) followed by `frames`, which must be the whole
    /// sealed body of `message` (every frame, the final one last) for `source.len` bytes of
    /// plaintext. Seals `message`'s header: call it once per message id, after making sure
    /// no other process can (see [`DetachedMessage`]). Nothing becomes visible unless the
    /// whole object was written.
    pub fn put_presealed(
        &self,
        url: &StoreUrl,
        message: &mut DetachedMessage,
        frames: &mut dyn Read,
        source: &Source,
    ) -> Result<PutReport> {
        self.put_presealed_when(url, message, frames, source, None)
    }

    /// As [`Objects::put_presealed`], with a condition on the object it writes when given
    /// (see [`hyok_store::Store::writer_when`]): a failed one stores nothing and the error
    /// is [`hyok_store::Error::Changed`].
    pub fn put_presealed_when(
        &self,
        url: &StoreUrl,
        message: &mut DetachedMessage,
        frames: &mut dyn Read,
        source: &Source,
        cond: Option<Precondition>,
    ) -> Result<PutReport> {
        let (header, mut meta) = self.presealed_header(url, message, source)?;
        let plaintext_len = source.len.unwrap_or_default();
        meta.insert(META_HEADER_LEN.to_owned(), header.len().to_string());
        let (store, rt) = (&self.catalog.store, &self.catalog.rt);
        let mut writer = match cond {
            None => store.writer(rt, url, meta, &self.transfer)?,
            Some(cond) => store.writer_when(rt, url, meta, &self.transfer, cond)?,
        };
        let res = (|| -> Result<()> {
            use std::io::Write;
            writer.write_all(&header).map_err(|e| Error::Io {
                what: "uploading".into(),
                source: e,
            })?;
            copy(frames, &mut writer, "uploading", |e| Error::Io {
                what: "reading the sealed frames".into(),
                source: e,
            })?;
            Ok(())
        })();
        match res {
            Ok(()) => {
                let stored_len = writer.finish()?;
                Ok(PutReport {
                    plaintext_len,
                    stored_len,
                })
            }
            Err(e) => match writer.abort() {
                Some(upload_err) => Err(upload_err.into()),
                None => Err(e),
            },
        }
    }

    /// The header of `message` for the object `url` and `source`'s context (plus the
    /// location pairs, as [`Objects::put`]), authorized, audited and sealed, without writing
    /// anything, and the store metadata [`Objects::put_presealed`] would give the object:
    /// for a caller that places header ‖ frames itself (the S3 gateway's parts in place,
    /// docs/DESIGN.md). The same once-per-message-id rule as [`Objects::put_presealed`].
    pub fn seal_presealed_header(
        &self,
        url: &StoreUrl,
        message: &mut DetachedMessage,
        source: &Source,
    ) -> Result<(Vec<u8>, std::collections::BTreeMap<String, String>)> {
        let (header, mut meta) = self.presealed_header(url, message, source)?;
        meta.insert(META_HEADER_LEN.to_owned(), header.len().to_string());
        Ok((header, meta))
    }

    fn presealed_header(
        &self,
        url: &StoreUrl,
        message: &mut DetachedMessage,
        source: &Source,
    ) -> Result<(Vec<u8>, std::collections::BTreeMap<String, String>)> {
        source
            .len
            .ok_or_else(|| Error::Config("a presealed message needs its length".into()))?;
        if message.suite() != self.client.settings().suite
            || message.frame_len() != self.client.settings().encrypt.frame_length
        {
            return Err(Error::Config(
                "a presealed message must use the client's suite and frame length".into(),
            ));
        }
        let ctx = self.message_context(url, source)?;
        if let Some((k, _)) = ctx
            .iter()
            .find(|(k, _)| k.starts_with(hyok_core::RESERVED_PREFIX))
        {
            return Err(Error::ReservedContextKey(k.to_owned()));
        }
        let client = self.authorize(Action::Put, url, &ctx)?;
        if let Some(g) = client.guard() {
            g.check(Action::Encrypt, None, &ctx, Some(message.suite().id()))?;
        }
        let mut label = self.label(url);
        label.message_id = Some(message.message_id().to_vec());
        let edks = self.catalog.rt.block_on(client.keys().wrap_existing(
            message.data_key(),
            message.suite(),
            &ctx,
            &label,
        ))?;
        let meta = self.message_meta(&edks, source);
        let header = message.seal_header(ctx, edks)?;
        Ok((header, meta))
    }
}
