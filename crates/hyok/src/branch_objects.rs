//! A branch key store kept in an object store: the version files of [`crate::branch`] under
//! `PREFIX/.hyok/branches/NAME/SEQ.json` of a bucket (or of any store URL), next to the
//! objects they protect. Versions are created with the store's atomic create-if-absent
//! (S3 `If-None-Match: *`), so two writers rotating at once never lose a version; a
//! re-wrap replaces a version file in one PUT. `hyok ls`, `cp -r` and `reencrypt` skip the
//! `.hyok/` folder ([`hyok_store::RESERVED_FOLDER`]).

use async_trait::async_trait;
use hyok_keystore::branch::{BranchFiles, MAX_FILE_BYTES, MAX_VERSIONS};
use hyok_keystore::Error;
use hyok_store::{Store, StoreUrl, RESERVED_FOLDER};

type Result<T> = std::result::Result<T, Error>;

/// Branch key version files in an object store.
#[derive(Clone, Debug)]
pub struct ObjectFiles {
    store: Store,
    /// `PREFIX/.hyok/branches/`.
    base: StoreUrl,
}

impl ObjectFiles {
    /// The store under `PREFIX/.hyok/branches/` of the folder `url`, reached through `store`.
    pub fn new(store: Store, url: &StoreUrl) -> crate::Result<Self> {
        let base = url
            .as_folder()
            .join(&format!("{RESERVED_FOLDER}/branches/"))?;
        Ok(Self { store, base })
    }

    fn url(&self, name: &str, file: Option<&str>) -> Result<StoreUrl> {
        let rel = match file {
            Some(f) => format!("{name}/{f}"),
            None => format!("{name}/"),
        };
        self.base.join(&rel).map_err(|e| self.err(e))
    }

    fn err(&self, e: hyok_store::Error) -> Error {
        match e {
            hyok_store::Error::Config(d) | hyok_store::Error::InvalidUrl(d) => {
                Error::Config(format!("branch key store {}: {d}", self.base))
            }
            other => Error::Unavailable {
                key: format!("branch key store {}", self.base),
                detail: other.to_string(),
            },
        }
    }
}

#[async_trait]
impl BranchFiles for ObjectFiles {
    fn location(&self) -> String {
        self.base.to_string()
    }

    async fn names(&self) -> Result<Vec<String>> {
        let names = self
            .store
            .list_names(&self.base, MAX_VERSIONS)
            .await
            .map_err(|e| self.err(e))?;
        Ok(names
            .into_iter()
            .filter_map(|n| n.strip_suffix('/').map(str::to_owned))
            .collect())
    }

    async fn files(&self, name: &str) -> Result<Option<Vec<(String, Vec<u8>)>>> {
        let folder = self.url(name, None)?;
        let names = self
            .store
            .list_names(&folder, MAX_VERSIONS)
            .await
            .map_err(|e| self.err(e))?;
        if names.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for file in names {
            if file.ends_with('/') || file.starts_with('.') {
                continue;
            }
            let url = self.url(name, Some(&file))?;
            // Listed, then gone: destroyed by another writer in between.
            if let Some(bytes) = self
                .store
                .get_small(&url, MAX_FILE_BYTES)
                .await
                .map_err(|e| self.err(e))?
            {
                out.push((file, bytes));
            }
        }
        Ok(Some(out))
    }

    async fn create(&self, name: &str, file: &str, bytes: &[u8]) -> Result<bool> {
        let url = self.url(name, Some(file))?;
        self.store
            .put_new(&url, bytes.to_vec())
            .await
            .map_err(|e| self.err(e))
    }

    async fn replace(&self, name: &str, file: &str, bytes: &[u8]) -> Result<()> {
        let url = self.url(name, Some(file))?;
        self.store
            .put_whole(&url, bytes.to_vec())
            .await
            .map_err(|e| self.err(e))
    }

    async fn remove(&self, name: &str, file: &str) -> Result<()> {
        let url = self.url(name, Some(file))?;
        self.store.delete(&url).await.map_err(|e| self.err(e))
    }
}
