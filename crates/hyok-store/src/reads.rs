//! Reading the start of an object with one request, and counting the read requests a store
//! sends (so that a front end can export them and tests can bound them).
//!
//! A ranged GET of the first bytes answers what a HEAD would (total size from
//! `Content-Range`, entity tag, last modification, user metadata) and returns the bytes:
//! reading a small object whole, or the header of a large one, costs one request instead of
//! a HEAD and a GET.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use object_store::{Attribute, GetOptions, GetRange, ObjectStore};

use crate::error::{Error, Result};
use crate::url::StoreUrl;
use crate::{ObjectInfo, Store};

/// Read requests sent (HEADs and GETs, ranged or not). Clones of a [`Store`] share one
/// counter; [`Store::counting_reads`] makes several stores share another.
#[derive(Debug, Default)]
pub struct ReadCounter {
    heads: AtomicU64,
    gets: AtomicU64,
}

impl ReadCounter {
    pub(crate) fn head(&self) {
        self.heads.fetch_add(1, Relaxed);
    }

    pub(crate) fn get(&self) {
        self.gets.fetch_add(1, Relaxed);
    }

    /// HEAD requests sent so far.
    pub fn heads(&self) -> u64 {
        self.heads.load(Relaxed)
    }

    /// GET requests sent so far.
    pub fn gets(&self) -> u64 {
        self.gets.load(Relaxed)
    }
}

/// The start of an object, read with one GET: what a HEAD says of the whole object, and
/// its first bytes (all of them when the object is shorter than what was asked).
#[derive(Clone, Debug)]
pub struct Prefix {
    /// The whole object's size, entity tag, time and user metadata.
    pub info: ObjectInfo,
    /// Its first bytes.
    pub bytes: Bytes,
}

impl Prefix {
    /// Whether the bytes are the whole object.
    pub fn is_whole(&self) -> bool {
        self.bytes.len() as u64 >= self.info.size
    }
}

impl Store {
    /// Count this store's read requests in `counter` (shared with other stores).
    pub fn counting_reads(mut self, counter: std::sync::Arc<ReadCounter>) -> Self {
        self.reads = counter;
        self
    }

    /// The read requests this store has sent.
    pub fn reads(&self) -> &ReadCounter {
        &self.reads
    }

    /// GET the first `n` bytes of `url` (`n` ≥ 1) with what a HEAD would say of the object,
    /// in one request. An empty object (which no server lets a range select from) costs a
    /// HEAD more.
    pub async fn get_prefix(&self, url: &StoreUrl, n: u64) -> Result<Prefix> {
        let path = self.path(url)?;
        self.reads.get();
        let opts = GetOptions::new().with_range(Some(GetRange::Bounded(0..n.max(1))));
        let res = match self.inner.get_opts(&path, opts).await {
            Ok(r) => r,
            Err(e) => {
                let e = Error::store("download", url.to_string(), e);
                if e.is_not_found() {
                    return Err(e);
                }
                // A range of an empty object is unsatisfiable: ask whether that is the case.
                return match self.head(url).await {
                    Ok(info) if info.size == 0 => Ok(Prefix {
                        info,
                        bytes: Bytes::new(),
                    }),
                    _ => Err(e),
                };
            }
        };
        let mut metadata = BTreeMap::new();
        for (k, v) in res.attributes.iter() {
            if let Attribute::Metadata(name) = k {
                metadata.insert(name.to_ascii_lowercase(), v.to_string());
            }
        }
        let info = ObjectInfo {
            url: url.clone(),
            size: res.meta.size,
            last_modified: res.meta.last_modified.into(),
            e_tag: res.meta.e_tag.clone(),
            metadata,
        };
        let bytes = res
            .bytes()
            .await
            .map_err(|e| Error::store("download", url.to_string(), e))?;
        self.fetched.fetch_add(bytes.len() as u64, Relaxed);
        Ok(Prefix { info, bytes })
    }

    /// As [`Self::get_prefix`], with a missing object as `Ok(None)`.
    pub async fn try_get_prefix(&self, url: &StoreUrl, n: u64) -> Result<Option<Prefix>> {
        match self.get_prefix(url, n).await {
            Ok(p) => Ok(Some(p)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}
