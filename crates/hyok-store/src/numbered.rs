//! Multipart uploads whose part numbers the caller chooses, and server-side copies (S3 only).
//!
//! [`Store::writer`] numbers its parts itself, in the order it writes them. The S3 gateway
//! needs more: its clients send the parts of one upload to any replica, in any order, and
//! the gateway puts each one straight into the matching part of a backend upload
//! (docs/DESIGN.md, "S3 gateway", "Parts in place"). These calls are object_store's
//! `MultipartStore` with the store's error handling; a local folder has no such uploads
//! ([`Store::has_numbered_parts`] is false).

use bytes::Bytes;
use object_store::ObjectStoreExt;

use crate::error::{Error, Result};
use crate::{Store, StoreUrl};

/// Largest object S3 copies in one CopyObject request (5 GiB).
pub const MAX_COPY: u64 = 5 << 30;

/// How long a presigned part URL is valid: the request must start within it.
#[cfg(feature = "s3")]
const PRESIGNED_FOR: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Most bytes of an answer's body read: S3's answers to these requests (an error document,
/// a CopyObjectResult) are small; a longer body is cut.
#[cfg(feature = "s3")]
const MAX_ANSWER: usize = 64 * 1024;

/// What the backend answered a presigned request.
#[cfg(feature = "s3")]
struct Answer {
    status: reqwest::StatusCode,
    etag: Option<String>,
    /// The start of the body, at most [`MAX_ANSWER`] bytes.
    text: String,
}

#[cfg(feature = "s3")]
impl Answer {
    /// A one-line failure: the operation, the status and S3's error code.
    fn failure(&self, op: &str) -> String {
        format!("{op} answered {} {}", self.status, error_code(&self.text))
    }
}

/// Send a presigned request and read its answer. The error leaves the URL out: a presigned
/// URL is a credential, never in a message.
#[cfg(feature = "s3")]
async fn send_presigned(
    request: reqwest::RequestBuilder,
) -> std::result::Result<Answer, reqwest::Error> {
    let mut resp = request.send().await.map_err(reqwest::Error::without_url)?;
    let status = resp.status();
    let etag = resp
        .headers()
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .filter(|e| !e.is_empty())
        .map(str::to_owned);
    let mut body = Vec::new();
    // A body that fails half-way only shortens the text: the status decided already.
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = MAX_ANSWER - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_ANSWER {
            break;
        }
    }
    Ok(Answer {
        status,
        etag,
        text: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The `<Code>` of an S3 error document, kept to ASCII letters and digits (the server's text
/// goes into messages that reach a terminal).
#[cfg(feature = "s3")]
fn error_code(doc: &str) -> String {
    doc.split_once("<Code>")
        .and_then(|(_, r)| r.split_once("</Code>"))
        .map(|(c, _)| {
            c.chars()
                .filter(char::is_ascii_alphanumeric)
                .take(64)
                .collect()
        })
        .unwrap_or_default()
}

/// The HTTP client of streamed part uploads: one per process (its connection pool is
/// shared), with the timeouts of the store's own client.
#[cfg(feature = "s3")]
fn part_client() -> std::result::Result<reqwest::Client, reqwest::Error> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c.clone());
    }
    let c = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(120))
        .user_agent(concat!("hyok/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(CLIENT.get_or_init(|| c).clone())
}

impl Store {
    /// Whether this store has uploads with caller-numbered parts (S3).
    pub fn has_numbered_parts(&self) -> bool {
        #[cfg(feature = "s3")]
        {
            self.multipart.is_some()
        }
        #[cfg(not(feature = "s3"))]
        {
            false
        }
    }

    #[cfg(feature = "s3")]
    fn numbered(&self, url: &StoreUrl) -> Result<&std::sync::Arc<object_store::aws::AmazonS3>> {
        self.multipart.as_ref().ok_or_else(|| {
            Error::Config(format!(
                "{url}: this store has no numbered multipart uploads"
            ))
        })
    }

    /// Start an upload of `url`; returns its id.
    pub async fn start_numbered(&self, url: &StoreUrl) -> Result<String> {
        #[cfg(feature = "s3")]
        {
            use object_store::multipart::MultipartStore;
            let path = self.path(url)?;
            self.numbered(url)?
                .create_multipart(&path)
                .await
                .map_err(|e| Error::store("upload", url.to_string(), e))
        }
        #[cfg(not(feature = "s3"))]
        {
            Err(Error::Config(format!("{url}: no numbered uploads")))
        }
    }

    /// Put part `number` (1 to 10,000) of upload `id` of `url`; returns its entity tag.
    /// Putting a number again replaces that part.
    pub async fn put_numbered(
        &self,
        url: &StoreUrl,
        id: &str,
        number: u32,
        data: Vec<Bytes>,
    ) -> Result<String> {
        #[cfg(feature = "s3")]
        {
            use object_store::multipart::MultipartStore;
            if !(1..=10_000).contains(&number) {
                return Err(Error::Config(format!(
                    "{url}: part numbers are 1 to 10000, not {number}"
                )));
            }
            let path = self.path(url)?;
            let payload: object_store::PutPayload = data.into_iter().collect();
            let part = self
                .numbered(url)?
                .put_part(&path, &id.to_owned(), number as usize - 1, payload)
                .await
                .map_err(|e| Error::store("upload", url.to_string(), e))?;
            Ok(part.content_id)
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = (id, number, data);
            Err(Error::Config(format!("{url}: no numbered uploads")))
        }
    }

    /// Put part `number` of upload `id` of `url`: `len` bytes, sent as `body` yields them;
    /// returns its entity tag. Nothing is buffered and nothing retried (the body is gone once
    /// sent): on any failure, including `body` yielding an error or ending short of `len`,
    /// the request is abandoned and S3 keeps no part; the caller may put the part again.
    /// A body that would run past `len` fails the same way (`download::exactly`). The
    /// request goes to a presigned UploadPart URL (object_store signs it, with the query
    /// parameters folded in; the payload is unsigned, as for a presigned PUT).
    pub async fn put_numbered_stream<S>(
        &self,
        url: &StoreUrl,
        id: &str,
        number: u32,
        len: u64,
        body: S,
    ) -> Result<String>
    where
        S: futures::Stream<Item = std::result::Result<Bytes, std::io::Error>> + Send + 'static,
    {
        #[cfg(feature = "s3")]
        {
            use object_store::signer::{SignedUrlOptions, Signer};
            if !(1..=10_000).contains(&number) {
                return Err(Error::Config(format!(
                    "{url}: part numbers are 1 to 10000, not {number}"
                )));
            }
            let path = self.path(url)?;
            let failed = |source: Box<dyn std::error::Error + Send + Sync>| {
                Error::store(
                    "upload",
                    url.to_string(),
                    object_store::Error::Generic {
                        store: "S3",
                        source,
                    },
                )
            };
            let opts = SignedUrlOptions::default().with_query([
                ("partNumber", number.to_string()),
                ("uploadId", id.to_owned()),
            ]);
            let signed = self
                .numbered(url)?
                .signed_url_opts(http::Method::PUT, &path, PRESIGNED_FOR, &opts)
                .await
                .map_err(|e| Error::store("upload", url.to_string(), e))?;
            let request = part_client()
                .map_err(|e| failed(e.into()))?
                .put(signed)
                .header(http::header::CONTENT_LENGTH, len)
                .body(reqwest::Body::wrap_stream(crate::download::exactly(
                    body, len,
                )));
            let answer = send_presigned(request)
                .await
                .map_err(|e| failed(e.into()))?;
            if !answer.status.is_success() {
                return Err(failed(answer.failure("UploadPart").into()));
            }
            answer
                .etag
                .ok_or_else(|| failed("UploadPart answered without an ETag".into()))
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = (id, number, len, body);
            Err(Error::Config(format!("{url}: no numbered uploads")))
        }
    }

    /// Complete upload `id` of `url` from parts 1, 2, … with these entity tags, in order.
    pub async fn complete_numbered(
        &self,
        url: &StoreUrl,
        id: &str,
        e_tags: Vec<String>,
    ) -> Result<()> {
        #[cfg(feature = "s3")]
        {
            use object_store::multipart::{MultipartStore, PartId};
            let path = self.path(url)?;
            let parts = e_tags
                .into_iter()
                .map(|content_id| PartId { content_id })
                .collect();
            self.numbered(url)?
                .complete_multipart(&path, &id.to_owned(), parts)
                .await
                .map(|_| ())
                .map_err(|e| Error::store("upload", url.to_string(), e))
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = (id, e_tags);
            Err(Error::Config(format!("{url}: no numbered uploads")))
        }
    }

    /// Abort upload `id` of `url` (its parts are deleted).
    pub async fn abort_numbered(&self, url: &StoreUrl, id: &str) -> Result<()> {
        #[cfg(feature = "s3")]
        {
            use object_store::multipart::MultipartStore;
            let path = self.path(url)?;
            self.numbered(url)?
                .abort_multipart(&path, &id.to_owned())
                .await
                .map_err(|e| Error::store("upload", url.to_string(), e))
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = id;
            Err(Error::Config(format!("{url}: no numbered uploads")))
        }
    }

    /// As [`Store::copy_within`], with `metadata` as `to`'s user metadata instead of
    /// `from`'s (S3 CopyObject with `x-amz-metadata-directive: REPLACE`, presigned by
    /// object_store with those headers signed; a local folder keeps no metadata and copies the
    /// file). Up to [`MAX_COPY`] bytes.
    pub async fn copy_within_with_metadata(
        &self,
        from: &StoreUrl,
        to: &StoreUrl,
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        self.copy_within_when(from, to, metadata, None).await
    }

    /// As [`Store::copy_within_with_metadata`], replacing `to` only while `cond` holds for
    /// it, as [`Store::writer_when`] does for an upload: on S3 the CopyObject carries
    /// `If-Match` / `If-None-Match: *` for its destination (checked by the server with the
    /// copy), behind a HEAD for servers that ignore those headers; in a local folder the HEAD
    /// alone (a stat and a copy apart). A condition that fails is [`Error::Changed`] and
    /// copies nothing.
    pub async fn copy_within_when(
        &self,
        from: &StoreUrl,
        to: &StoreUrl,
        metadata: &std::collections::BTreeMap<String, String>,
        cond: Option<&crate::Precondition>,
    ) -> Result<()> {
        if let Some(want) = cond {
            crate::upload::check_precondition(self, to, want).await?;
        }
        #[cfg(feature = "s3")]
        if let Some(s3) = &self.multipart {
            use object_store::signer::{SignedUrlOptions, Signer};
            let (f, t) = (self.path(from)?, self.path(to)?);
            let failed = |source: Box<dyn std::error::Error + Send + Sync>| {
                Error::store(
                    "copy",
                    from.to_string(),
                    object_store::Error::Generic {
                        store: "S3",
                        source,
                    },
                )
            };
            let header = |v: &str| {
                http::HeaderValue::from_str(v)
                    .map_err(|_| failed("a header value is not valid".into()))
            };
            // The source as S3 wants it: /bucket/key, the key percent-encoded by segment.
            const KEY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
                .remove(b'-')
                .remove(b'.')
                .remove(b'_')
                .remove(b'~')
                .remove(b'/');
            let source = format!(
                "/{}/{}",
                self.bucket,
                percent_encoding::utf8_percent_encode(f.as_ref(), KEY)
            );
            let mut headers = http::HeaderMap::new();
            headers.insert("x-amz-copy-source", header(&source)?);
            headers.insert("x-amz-metadata-directive", header("REPLACE")?);
            match cond {
                Some(crate::Precondition::Matches(e_tag)) => {
                    headers.insert(http::header::IF_MATCH, header(e_tag)?);
                }
                Some(crate::Precondition::Absent) => {
                    headers.insert(http::header::IF_NONE_MATCH, header("*")?);
                }
                None => {}
            }
            for (k, v) in metadata {
                let name = http::HeaderName::from_bytes(
                    format!("x-amz-meta-{}", k.to_ascii_lowercase()).as_bytes(),
                )
                .map_err(|_| failed("a metadata name is not a valid header name".into()))?;
                headers.insert(name, header(&crate::upload::header_safe(v))?);
            }
            let mut opts = SignedUrlOptions::default();
            for (k, v) in &headers {
                opts = opts.with_signed_header(k.clone(), v.clone());
            }
            let signed = s3
                .signed_url_opts(http::Method::PUT, &t, PRESIGNED_FOR, &opts)
                .await
                .map_err(|e| Error::store("copy", from.to_string(), e))?;
            let request = part_client()
                .map_err(|e| failed(e.into()))?
                .put(signed)
                .headers(headers)
                .header(http::header::CONTENT_LENGTH, 0);
            let answer = send_presigned(request)
                .await
                .map_err(|e| failed(e.into()))?;
            // The destination's condition failed (412), or a concurrent conditional write to
            // it won (409 ConditionalRequestConflict).
            let lost = matches!(
                answer.status,
                reqwest::StatusCode::PRECONDITION_FAILED | reqwest::StatusCode::CONFLICT
            );
            if cond.is_some() && lost {
                return Err(Error::Changed(to.to_string()));
            }
            // CopyObject can answer 200 and still fail: the error is then in the body.
            if !answer.status.is_success() || answer.text.contains("<Error>") {
                return Err(failed(answer.failure("CopyObject").into()));
            }
            return Ok(());
        }
        let _ = metadata;
        self.copy_within(from, to).await
    }

    /// Copy `from` to `to` in this store without moving the bytes through this process
    /// (S3 CopyObject: up to [`MAX_COPY`] bytes; a local folder copies the file). The copy
    /// keeps `from`'s metadata.
    pub async fn copy_within(&self, from: &StoreUrl, to: &StoreUrl) -> Result<()> {
        let (f, t) = (self.path(from)?, self.path(to)?);
        self.inner
            .copy(&f, &t)
            .await
            .map_err(|e| Error::store("copy", from.to_string(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;

    /// Against the S3 test server (s3s-fs): parts put out of order by number come out in
    /// number order, a part put again replaces the first, and the copy is byte for byte.
    #[test]
    fn numbered_parts_assemble_in_number_order_and_copy() {
        let Some((rt, dir)) = crate::test_env::s3_scratch("numbered", "numbered") else {
            return;
        };
        let url = StoreUrl::parse(&format!("{dir}obj")).unwrap();
        let copy = StoreUrl::parse(&format!("{dir}copy")).unwrap();
        let store = Store::open(&url, &StoreOptions::default()).unwrap();
        assert!(store.has_numbered_parts());
        let five = 5 << 20;
        let part = |b: u8| vec![Bytes::from(vec![b; five])];
        rt.block_on(async {
            let id = store.start_numbered(&url).await.unwrap();
            let e3 = store
                .put_numbered(&url, &id, 3, vec![Bytes::from_static(b"end")])
                .await
                .unwrap();
            let e2 = store.put_numbered(&url, &id, 2, part(2)).await.unwrap();
            store.put_numbered(&url, &id, 1, part(9)).await.unwrap();
            let e1 = store.put_numbered(&url, &id, 1, part(1)).await.unwrap();
            assert!(store.put_numbered(&url, &id, 0, part(0)).await.is_err());
            store
                .complete_numbered(&url, &id, vec![e1, e2, e3])
                .await
                .unwrap();
            store.copy_within(&url, &copy).await.unwrap();
            for u in [&url, &copy] {
                let got = store
                    .get_range(u, 0..2 * five as u64 + 3, None)
                    .await
                    .unwrap();
                assert_eq!(got.len(), 2 * five + 3);
                assert!(got[..five].iter().all(|&b| b == 1));
                assert!(got[five..2 * five].iter().all(|&b| b == 2));
                assert_eq!(&got[2 * five..], b"end");
                store.delete(u).await.unwrap();
            }
            let id = store.start_numbered(&url).await.unwrap();
            store.put_numbered(&url, &id, 1, part(1)).await.unwrap();
            store.abort_numbered(&url, &id).await.unwrap();
            assert!(store.try_head(&url).await.unwrap().is_none());
        });
    }

    /// Against s3s-fs: a streamed part is the part; a body that fails, or ends short of its
    /// announced length, leaves no part behind, and the part can then be put again.
    #[test]
    fn streamed_parts_are_whole_or_absent() {
        let Some((rt, dir)) = crate::test_env::s3_scratch("numbered stream", "stream") else {
            return;
        };
        let url = StoreUrl::parse(&format!("{dir}obj")).unwrap();
        let store = Store::open(&url, &StoreOptions::default()).unwrap();
        let five = 5usize << 20;
        let chunks = |b: u8, n: usize| {
            (0..n)
                .map(move |_| Ok::<_, std::io::Error>(Bytes::from(vec![b; 1 << 20])))
                .collect::<Vec<_>>()
        };
        rt.block_on(async {
            let id = store.start_numbered(&url).await.unwrap();
            let put = |n, len, body: Vec<std::io::Result<Bytes>>| {
                store.put_numbered_stream(&url, &id, n, len, futures::stream::iter(body))
            };
            // The body fails half-way: no part.
            let mut failing = chunks(7, 3);
            failing.push(Err(std::io::Error::other("the client went away")));
            let e = put(1, five as u64, failing).await.unwrap_err();
            // The presigned URL is a credential: not in the message, nor in its sources.
            for shown in [e.to_string(), format!("{e:?}")] {
                assert!(!shown.contains("X-Amz-"), "{shown}");
            }
            // The body ends short of the length it announced: no part.
            assert!(put(1, five as u64, chunks(7, 4)).await.is_err());
            // Or runs past it: no part either.
            assert!(put(1, five as u64, chunks(7, 6)).await.is_err());
            let e1 = put(1, five as u64, chunks(1, 5)).await.unwrap();
            let tail = vec![Ok(Bytes::from_static(b"end"))];
            let e2 = put(2, 3, tail).await.unwrap();
            assert!(put(0, 3, Vec::new()).await.is_err());
            store
                .complete_numbered(&url, &id, vec![e1, e2])
                .await
                .unwrap();
            let got = store
                .get_range(&url, 0..five as u64 + 3, None)
                .await
                .unwrap();
            assert_eq!(got.len(), five + 3, "exactly the whole parts");
            assert!(got[..five].iter().all(|&b| b == 1));
            assert_eq!(&got[five..], b"end");
            store.delete(&url).await.unwrap();
        });
    }

    /// Against the S3 test server: a conditional copy replaces its destination only as its
    /// condition says, and a failed one is `Changed` with the destination left as it was.
    #[test]
    fn conditional_copies_replace_only_what_they_name() {
        let Some((rt, dir)) = crate::test_env::s3_scratch("conditional copy", "condcopy") else {
            return;
        };
        let from = StoreUrl::parse(&format!("{dir}from")).unwrap();
        let to = StoreUrl::parse(&format!("{dir}to")).unwrap();
        let store = Store::open(&from, &StoreOptions::default()).unwrap();
        let meta = std::collections::BTreeMap::new();
        let absent = crate::Precondition::Absent;
        rt.block_on(async {
            store.put_whole(&from, b"new".to_vec()).await.unwrap();
            let copy = |cond: crate::Precondition| {
                let (store, from, to, meta) = (&store, &from, &to, &meta);
                async move { store.copy_within_when(from, to, meta, Some(&cond)).await }
            };
            let read = || async { store.get_range(&to, 0..3, None).await.unwrap() };
            copy(absent.clone()).await.unwrap();
            assert_eq!(
                &read().await[..],
                b"new",
                "If-None-Match: * to a new key copies"
            );
            store.put_whole(&to, b"old".to_vec()).await.unwrap();
            let tag = store.head(&to).await.unwrap().e_tag.unwrap();
            for cond in [
                absent.clone(),
                crate::Precondition::Matches("\"0123456789abcdef\"".into()),
            ] {
                let e = copy(cond.clone()).await.unwrap_err();
                assert!(matches!(e, Error::Changed(_)), "{cond:?}: {e}");
                assert_eq!(&read().await[..], b"old", "{cond:?} left the object alone");
            }
            copy(crate::Precondition::Matches(tag)).await.unwrap();
            assert_eq!(
                &read().await[..],
                b"new",
                "If-Match of the current tag copies"
            );
            store.delete(&from).await.unwrap();
            store.delete(&to).await.unwrap();
        });
    }

    #[test]
    fn error_codes_are_plain_words() {
        let doc = "<?xml?><Error><Code>NoSuchUpload</Code><Message>x</Message></Error>";
        assert_eq!(error_code(doc), "NoSuchUpload");
        assert_eq!(error_code("<Code>Bad\u{1b}[31mCode</Code>"), "Bad31mCode");
        assert_eq!(error_code("no document"), "");
        assert_eq!(
            error_code(&format!("<Code>{}</Code>", "A".repeat(500))).len(),
            64
        );
    }

    /// Against s3s-fs: a copy with metadata has exactly the new metadata and the bytes.
    #[test]
    fn a_copy_with_metadata_replaces_it() {
        let Some((rt, dir)) = crate::test_env::s3_scratch("copy metadata", "copymeta") else {
            return;
        };
        // A key S3 wants percent-encoded in the copy source.
        let dir = format!("{dir}odd é+=/");
        let from = StoreUrl::parse(&format!("{dir}from")).unwrap();
        let to = StoreUrl::parse(&format!("{dir}to")).unwrap();
        let store = Store::open(&from, &StoreOptions::default()).unwrap();
        let meta: std::collections::BTreeMap<String, String> = [
            ("hyok-a".to_owned(), "1".to_owned()),
            ("hyok-b".to_owned(), "raw-aes/ké%".to_owned()),
        ]
        .into();
        rt.block_on(async {
            store.put_whole(&from, b"the bytes".to_vec()).await.unwrap();
            store
                .copy_within_with_metadata(&from, &to, &meta)
                .await
                .unwrap();
            let got = store.get_range(&to, 0..9, None).await.unwrap();
            assert_eq!(&got[..], b"the bytes");
            let info = store.head(&to).await.unwrap();
            assert_eq!(info.metadata.get("hyok-a").map(String::as_str), Some("1"));
            assert_eq!(
                info.metadata.get("hyok-b").map(String::as_str),
                Some("raw-aes/k%C3%A9%25"),
                "stored header-safe, as the writer stores it"
            );
            let missing = StoreUrl::parse(&format!("{dir}missing")).unwrap();
            assert!(store
                .copy_within_with_metadata(&missing, &to, &meta)
                .await
                .is_err());
            store.delete(&from).await.unwrap();
            store.delete(&to).await.unwrap();
        });
    }
}
