//! Small objects read and written whole: the operations a tiny key-value store (hyok's
//! branch key store under `.hyok/` in a bucket) needs, with an atomic create-if-absent.

use std::collections::BTreeMap;

use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, GetRange, PutMode, PutOptions, PutPayload,
};

use crate::{Backend, Error, Result, Store, StoreUrl};

impl Store {
    /// Create `url` with `bytes` only if no object has that name: `Ok(false)` if one does.
    /// Atomic on the server (S3 `If-None-Match: *`; a local folder links a temporary file),
    /// so of two writers creating one name exactly one succeeds.
    pub async fn put_new(&self, url: &StoreUrl, bytes: Vec<u8>) -> Result<bool> {
        let path = self.path(url)?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .object_store()
            .put_opts(&path, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(Error::store("upload", url.to_string(), e)),
        }
    }

    /// Replace (or create) `url` with `bytes` in one PUT: readers see the old or the new
    /// object whole.
    pub async fn put_whole(&self, url: &StoreUrl, bytes: Vec<u8>) -> Result<()> {
        self.put_whole_with_metadata(url, bytes, &BTreeMap::new())
            .await
    }

    /// As [`Store::put_whole`], with user `metadata` (S3 `x-amz-meta-*`; a local folder
    /// keeps none). Keys are lower-cased; values must be printable ASCII.
    pub async fn put_whole_with_metadata(
        &self,
        url: &StoreUrl,
        bytes: Vec<u8>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        let path = self.path(url)?;
        let mut attributes = Attributes::new();
        if self.backend() != Backend::Local {
            for (k, v) in metadata {
                if !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                    return Err(Error::Config(format!(
                        "{url}: metadata {k} is not printable ASCII"
                    )));
                }
                attributes.insert(
                    Attribute::Metadata(k.to_ascii_lowercase().into()),
                    AttributeValue::from(v.clone()),
                );
            }
        }
        let opts = PutOptions {
            attributes,
            ..Default::default()
        };
        self.object_store()
            .put_opts(&path, PutPayload::from(bytes), opts)
            .await
            .map(|_| ())
            .map_err(|e| Error::store("upload", url.to_string(), e))
    }

    /// The whole of a small object: `Ok(None)` if it does not exist, an error if it is larger
    /// than `max` bytes (at most `max + 1` bytes are fetched).
    pub async fn get_small(&self, url: &StoreUrl, max: u64) -> Result<Option<Vec<u8>>> {
        let path = self.path(url)?;
        let opts = GetOptions::new().with_range(Some(GetRange::Bounded(0..max + 1)));
        let res = match self.object_store().get_opts(&path, opts).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::store("download", url.to_string(), e)),
        };
        let bytes = res
            .bytes()
            .await
            .map_err(|e| Error::store("download", url.to_string(), e))?;
        if bytes.len() as u64 > max {
            return Err(Error::Config(format!(
                "{url}: larger than {max} bytes, not read"
            )));
        }
        Ok(Some(bytes.to_vec()))
    }

    /// The names directly under the folder `url` (one level, like `ls`): sub-folders as
    /// `NAME/`, objects as `NAME`; at most `max` names.
    pub async fn list_names(&self, url: &StoreUrl, max: usize) -> Result<Vec<String>> {
        let key = url.key().trim_end_matches('/');
        let prefix = Path::parse(key).map_err(|e| Error::InvalidUrl(format!("{url}: {e}")))?;
        let res = self
            .object_store()
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| Error::store("list", url.to_string(), e))?;
        let strip = |p: &Path| -> Option<String> {
            let s = p.as_ref();
            let rest = if key.is_empty() {
                s
            } else {
                s.strip_prefix(key)?.strip_prefix('/')?
            };
            (!rest.is_empty()).then(|| rest.to_owned())
        };
        let mut names: Vec<String> = res
            .common_prefixes
            .iter()
            .filter_map(strip)
            .map(|n| format!("{n}/"))
            .chain(res.objects.iter().filter_map(|o| strip(&o.location)))
            .collect();
        if names.len() > max {
            return Err(Error::Config(format!(
                "{url}: more than {max} entries, not read"
            )));
        }
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use crate::{is_reserved, Store, StoreOptions, StoreUrl};

    #[test]
    fn reserved_folder_at_any_depth_but_not_its_lookalikes() {
        for hidden in [".hyok/branches/b/00000001.json", "a/b/.hyok/x", ".hyok/x"] {
            assert!(is_reserved(hidden), "{hidden}");
        }
        for shown in [
            ".hyok",
            "a/.hyok",
            ".hyok-gateway/x",
            "a/.hyokx/y",
            "x.hyok/y",
        ] {
            assert!(!is_reserved(shown), "{shown}");
        }
    }

    /// On a local folder: create-if-absent refuses the second writer, whole replacement, the
    /// size bound on reads, one-level listing, and listing skips the reserved folder.
    #[test]
    fn small_objects_on_a_local_folder() {
        use futures::StreamExt;
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let root = StoreUrl::local(dir.path()).unwrap().as_folder();
        let store = Store::open(&root, &StoreOptions::default()).unwrap();
        let a = root.join(".hyok/branches/b/00000001.json").unwrap();
        rt.block_on(async {
            assert!(store.put_new(&a, b"one".to_vec()).await.unwrap());
            assert!(!store.put_new(&a, b"two".to_vec()).await.unwrap());
            assert_eq!(store.get_small(&a, 16).await.unwrap().unwrap(), b"one");
            store.put_whole(&a, b"three".to_vec()).await.unwrap();
            assert_eq!(store.get_small(&a, 16).await.unwrap().unwrap(), b"three");
            assert!(store.get_small(&a, 4).await.is_err(), "size bound");
            let missing = root.join(".hyok/branches/b/none").unwrap();
            assert_eq!(store.get_small(&missing, 16).await.unwrap(), None);
            let branches = root.join(".hyok/branches/").unwrap();
            assert_eq!(store.list_names(&branches, 10).await.unwrap(), ["b/"]);
            let b = root.join(".hyok/branches/b/").unwrap();
            assert_eq!(store.list_names(&b, 10).await.unwrap(), ["00000001.json"]);
            assert!(store.list_names(&b, 0).await.is_err(), "count bound");

            std::fs::write(dir.path().join("data.bin"), b"x").unwrap();
            let listed: Vec<String> = store
                .list(&root)
                .map(|r| r.unwrap().url.key().to_owned())
                .collect()
                .await;
            assert_eq!(listed.len(), 1, "{listed:?}");
            assert!(listed[0].ends_with("data.bin"), "{listed:?}");
        });
    }

    /// A name longer than the local file system allows is its own error (the gateway answers
    /// it with KeyTooLongError, the CLI with a hint), on writes and reads alike; a name that
    /// fits still works.
    #[test]
    fn a_name_too_long_for_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let root = StoreUrl::local(dir.path()).unwrap().as_folder();
        let store = Store::open(&root, &StoreOptions::default()).unwrap();
        let long = root.join(&format!("a/{}", "n".repeat(300))).unwrap();
        let fits = root.join(&format!("a/{}", "n".repeat(200))).unwrap();
        rt.block_on(async {
            let put = store.put_whole(&long, b"x".to_vec()).await;
            assert!(matches!(put, Err(crate::Error::NameTooLong(_))), "{put:?}");
            let got = store.get_small(&long, 16).await;
            assert!(
                matches!(got, Err(crate::Error::NameTooLong(_)) | Ok(None)),
                "{got:?}"
            );
            store.put_whole(&fits, b"y".to_vec()).await.unwrap();
            assert_eq!(store.get_small(&fits, 16).await.unwrap().unwrap(), b"y");
        });
        let e = crate::Error::NameTooLong("file:///x/y".into()).to_string();
        assert_eq!(
            e,
            "file:///x/y: a name in this path is longer than the file system allows"
        );
    }

    /// A key that needs a file where a folder is, or a folder where a file is, cannot be
    /// written to a local folder: its own error, not a generic failure; reading such a key
    /// finds nothing.
    #[test]
    fn a_file_and_a_folder_of_one_name() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let root = StoreUrl::local(dir.path()).unwrap().as_folder();
        let store = Store::open(&root, &StoreOptions::default()).unwrap();
        let at = |k: &str| root.join(k).unwrap();
        rt.block_on(async {
            store.put_whole(&at("a/b"), b"x".to_vec()).await.unwrap();
            for k in ["a", "a/b/c"] {
                let put = store.put_whole(&at(k), b"y".to_vec()).await;
                assert!(
                    matches!(put, Err(crate::Error::PathConflict(_))),
                    "{k}: {put:?}"
                );
            }
            assert!(store.try_head(&at("a/b/c")).await.unwrap().is_none());
            let got = store.get_small(&at("a/b/c"), 16).await;
            assert!(
                matches!(got, Err(crate::Error::NotFound(_)) | Ok(None)),
                "{got:?}"
            );
            assert_eq!(
                store.get_small(&at("a/b"), 16).await.unwrap().unwrap(),
                b"x"
            );
        });
    }

    /// User metadata written with a small object comes back with its HEAD on S3; a local
    /// folder keeps none but takes the write; values that are not printable ASCII are refused.
    #[test]
    fn small_objects_carry_their_metadata() {
        let meta: std::collections::BTreeMap<String, String> =
            [("Hyok-Test".to_owned(), "a+b/c=".to_owned())].into();
        let bad: std::collections::BTreeMap<String, String> =
            [("hyok-test".to_owned(), "line\nbreak".to_owned())].into();
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let local = StoreUrl::local(dir.path())
            .unwrap()
            .as_folder()
            .join("m")
            .unwrap();
        let store = Store::open(&local, &StoreOptions::default()).unwrap();
        rt.block_on(async {
            store
                .put_whole_with_metadata(&local, b"x".to_vec(), &meta)
                .await
                .unwrap();
            assert!(store.head(&local).await.unwrap().metadata.is_empty());
        });
        let Some((rt, dir)) = crate::test_env::s3_scratch("metadata", "smallmeta") else {
            return;
        };
        let url = StoreUrl::parse(&format!("{dir}m")).unwrap();
        let store = Store::open(&url, &StoreOptions::default()).unwrap();
        rt.block_on(async {
            store
                .put_whole_with_metadata(&url, b"x".to_vec(), &meta)
                .await
                .unwrap();
            let got = store.head(&url).await.unwrap().metadata;
            assert_eq!(got.get("hyok-test").map(String::as_str), Some("a+b/c="));
            let e = store
                .put_whole_with_metadata(&url, b"y".to_vec(), &bad)
                .await
                .unwrap_err();
            assert!(e.to_string().contains("printable"), "{e}");
            assert_eq!(&store.get_range(&url, 0..1, None).await.unwrap()[..], b"x");
            store.delete(&url).await.unwrap();
        });
    }
}
