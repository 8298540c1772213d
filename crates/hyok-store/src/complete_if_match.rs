//! CompleteMultipartUpload with `If-Match` or `If-None-Match: *`: the multipart half of a
//! conditional upload ([`crate::Store::writer_when`]); and DeleteObject with `If-Match`
//! ([`crate::Store::delete_when`]), which object_store cannot send either.
//!
//! A single PUT replaces an object only while its entity tag is the one read (`If-Match`,
//! checked by the server atomically). A multipart upload used to be checked by a HEAD right
//! before CompleteMultipartUpload, which leaves a window: a writer landing between the HEAD
//! and the completion was overwritten. S3 accepts `If-Match` on CompleteMultipartUpload as
//! well (412 PreconditionFailed when the object changed, 404 when it is gone, 409 when a
//! concurrent conditional request won), so the completion itself carries the condition.
//!
//! object_store's `MultipartStore::complete_multipart` sends no such header, but it does send
//! (and sign) the client's default headers. The completion therefore goes through a second
//! client built from the same settings with one default header, `If-Match: <tag>`, used for
//! that one request only. The HEAD stays in front of it as a belt for S3-compatible servers
//! that ignore the header (docs/DESIGN.md, "Conditional multipart completion").

use http::header::{HeaderMap, HeaderValue, IF_MATCH, IF_NONE_MATCH};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::ClientOptions;

use crate::error::{Error, Result};
use crate::upload::Precondition;

/// The settings a store's S3 client was built from, to build a completion client that sends
/// `If-Match`.
#[derive(Clone, Debug)]
pub(crate) struct IfMatchCompleter {
    builder: AmazonS3Builder,
    options: ClientOptions,
}

impl IfMatchCompleter {
    /// `builder` without its client options, and those options (they get the header).
    pub(crate) fn new(builder: AmazonS3Builder, options: ClientOptions) -> Self {
        Self { builder, options }
    }

    fn client(&self, cond: &Precondition, object: &str) -> Result<AmazonS3> {
        let mut headers = HeaderMap::new();
        match cond {
            Precondition::Matches(e_tag) => {
                let value = HeaderValue::from_str(e_tag).map_err(|_| {
                    Error::Config(format!(
                        "{object}: the store's entity tag is not a valid header value"
                    ))
                })?;
                headers.insert(IF_MATCH, value);
            }
            Precondition::Absent => {
                headers.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
            }
        }
        self.builder
            .clone()
            .with_client_options(self.options.clone().with_default_headers(headers))
            .build()
            .map_err(|e| Error::Config(format!("{object}: {e}")))
    }

    /// Complete upload `id` of `path` only if `cond` holds (the object's entity tag still
    /// is the one given, or there is no object); otherwise [`Error::Changed`] (the caller
    /// aborts the upload). `object` names it in messages.
    pub(crate) async fn complete(
        &self,
        path: &Path,
        id: &str,
        parts: Vec<PartId>,
        cond: &Precondition,
        object: &str,
    ) -> Result<()> {
        let s3 = self.client(cond, object)?;
        match s3.complete_multipart(path, &id.to_owned(), parts).await {
            Ok(_) => Ok(()),
            // 409 ConditionalRequestConflict: another conditional write to the key won.
            Err(object_store::Error::AlreadyExists { .. }) => Err(Error::Changed(object.into())),
            Err(e) => Err(Error::store("upload", object, e)),
        }
    }

    /// Delete `path` only if its entity tag still is `cond`'s (S3 `If-Match` on
    /// DeleteObject); otherwise [`Error::Changed`]. An object already gone counts as deleted.
    pub(crate) async fn delete(
        &self,
        path: &Path,
        cond: &Precondition,
        object: &str,
    ) -> Result<()> {
        let s3 = self.client(cond, object)?;
        match object_store::ObjectStoreExt::delete(&s3, path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(Error::Changed(object.into())),
            Err(e) => Err(Error::store("delete", object, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use object_store::{ObjectStoreExt, PutPayload};

    use crate::{Store, StoreOptions, StoreUrl};

    use super::*;

    /// Against the S3 test server (s3s-fs): a completion conditional on a stale entity tag is
    /// refused with no HEAD in front of it, the object keeps the other writer's content, and
    /// the same completion on the current tag replaces it.
    #[test]
    fn completion_with_a_stale_entity_tag_is_refused_by_the_server() {
        let Some((rt, dir)) = crate::test_env::s3_scratch("complete_if_match", "ifmatch") else {
            return;
        };
        let url = StoreUrl::parse(&format!("{dir}obj")).unwrap();
        let store = Store::open(&url, &StoreOptions::default()).unwrap();
        let s3 = store.multipart.clone().unwrap();
        let completer = store.if_match.clone().unwrap();
        let path = store.path(&url).unwrap();
        rt.block_on(async {
            let put = |body: &'static [u8]| {
                let s3 = s3.clone();
                let path = path.clone();
                async move {
                    s3.put(&path, PutPayload::from_static(body))
                        .await
                        .unwrap()
                        .e_tag
                        .unwrap()
                }
            };
            let stale: String = put(b"first version").await;
            let current: String = put(b"another writer's version").await;
            assert_ne!(stale, current);
            let upload = |body: &'static [u8]| {
                let s3 = s3.clone();
                let path = path.clone();
                async move {
                    let id = s3.create_multipart(&path).await.unwrap();
                    let part = s3
                        .put_part(&path, &id, 0, PutPayload::from_static(body))
                        .await
                        .unwrap();
                    (id, vec![part])
                }
            };
            let (id, parts) = upload(b"re-encrypted first version").await;
            let refused = completer
                .complete(
                    &path,
                    &id,
                    parts,
                    &Precondition::Matches(stale.clone()),
                    &url.to_string(),
                )
                .await;
            assert!(matches!(refused, Err(Error::Changed(_))), "{refused:?}");
            let _ = s3.abort_multipart(&path, &id).await;
            let kept = s3.get(&path).await.unwrap().bytes().await.unwrap();
            assert_eq!(&kept[..], b"another writer's version");

            let (id, parts) = upload(b"re-encrypted current version").await;
            completer
                .complete(
                    &path,
                    &id,
                    parts,
                    &Precondition::Matches(current.clone()),
                    &url.to_string(),
                )
                .await
                .unwrap();
            let now = s3.get(&path).await.unwrap().bytes().await.unwrap();
            assert_eq!(&now[..], b"re-encrypted current version");
            s3.delete(&path).await.unwrap();
        });
    }

    /// A conditional delete, on the S3 test server and in a local folder: a stale entity tag
    /// is `Changed` and the object stays; the current one deletes it.
    #[test]
    fn conditional_deletes_delete_only_what_they_name() {
        let local = tempfile::tempdir().unwrap();
        let mut bases = vec![(
            tokio::runtime::Runtime::new().unwrap(),
            format!("{}/", local.path().display()),
        )];
        bases.extend(crate::test_env::s3_scratch("conditional delete", "conddel"));
        for (rt, dir) in bases {
            let url = StoreUrl::parse(&format!("{dir}obj")).unwrap();
            let store = Store::open(&url, &StoreOptions::default()).unwrap();
            rt.block_on(async {
                store.put_whole(&url, b"first".to_vec()).await.unwrap();
                let stale = store.head(&url).await.unwrap().e_tag.unwrap();
                store.put_whole(&url, b"second!".to_vec()).await.unwrap();
                let current = store.head(&url).await.unwrap().e_tag.unwrap();
                assert_ne!(stale, current, "{dir}");
                let e = store
                    .delete_when(&url, &Precondition::Matches(stale))
                    .await
                    .unwrap_err();
                assert!(matches!(e, Error::Changed(_)), "{dir}: {e}");
                assert_eq!(store.head(&url).await.unwrap().size, 7, "{dir}: kept");
                store
                    .delete_when(&url, &Precondition::Matches(current))
                    .await
                    .unwrap();
                assert!(
                    store.try_head(&url).await.unwrap().is_none(),
                    "{dir}: deleted"
                );
            });
        }
    }
}
