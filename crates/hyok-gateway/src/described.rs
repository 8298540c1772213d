//! Descriptions of backend objects this replica has read (their first bytes and what a
//! client sees of them), so that a later request confirms the object with a HEAD instead of
//! reading it again: an UploadPart its upload's `info` record.
//!
//! Why a HEAD: it is one round trip, as a small GET is, but its answer is one TCP segment.
//! A server that sends a small body in a segment of its own after the response head (s3s-fs
//! does; Nagle's algorithm then holds that segment until the head is acknowledged, and the
//! client delays its ACK) makes each small GET take about 40 ms. Once per part, that was
//! most of a 5 MiB part's time through the gateway (docs/BENCHMARKS.md). (Ranged GETs, which
//! read a header the same way, were tried too: a download in 8 MiB ranges, ten at a time,
//! hides that stall, and it got no faster.)
//!
//! Why it is sound: what is kept are bytes of the object as the backend showed it with one
//! entity tag and size, and an upload's `info` is written once and afterwards only deleted
//! (a backend gives other bytes another entity tag: S3 an MD5 or a random id). What is kept
//! is public (headers; an upload's data key is wrapped under the keyring): unwrapping still
//! goes through the key manager, with its cache and audit, on every part.

use std::collections::HashMap;
use std::sync::Mutex;

use hyok::store::Prefix;

use crate::meta::ObjectDesc;

/// Descriptions kept at most; when full, the cache starts again empty.
const MAX_ENTRIES: usize = 1024;
/// Largest first bytes kept per object (headers are usually under 4 KiB): at most 16 MiB in all.
pub(crate) const MAX_BYTES: usize = 16 * 1024;

/// A bounded map from (bucket, backend key) to an object's first bytes and description.
#[derive(Default)]
pub(crate) struct Described {
    entries: Mutex<HashMap<(String, String), (Prefix, ObjectDesc)>>,
}

impl Described {
    /// What was kept of this object, if anything.
    pub(crate) fn get(&self, bucket: &str, key: &str) -> Option<(Prefix, ObjectDesc)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(&(bucket.to_owned(), key.to_owned())).cloned()
    }

    /// Keep this object's first bytes and description (not when the bytes exceed
    /// [`MAX_BYTES`] or the backend gave no entity tag to confirm them by).
    pub(crate) fn insert(&self, bucket: &str, key: &str, prefix: Prefix, desc: ObjectDesc) {
        if prefix.bytes.len() > MAX_BYTES || prefix.info.e_tag.is_none() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert((bucket.to_owned(), key.to_owned()), (prefix, desc));
    }

    /// Forget this object (deleted, replaced, or an upload aborted or completed).
    pub(crate) fn remove(&self, bucket: &str, key: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&(bucket.to_owned(), key.to_owned()));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(len: usize, e_tag: Option<&str>) -> (Prefix, ObjectDesc) {
        let info = hyok::store::ObjectInfo {
            url: hyok::store::StoreUrl::parse("s3://b/k").unwrap(),
            size: 100_000,
            last_modified: std::time::SystemTime::UNIX_EPOCH,
            e_tag: e_tag.map(str::to_owned),
            metadata: Default::default(),
        };
        let desc = ObjectDesc {
            size: 99_000,
            etag: "abc".into(),
            last_modified: std::time::SystemTime::UNIX_EPOCH,
            attrs: Default::default(),
            context: Default::default(),
        };
        let bytes = bytes::Bytes::from(vec![7u8; len]);
        (Prefix { info, bytes }, desc)
    }

    #[test]
    fn kept_per_bucket_and_key_and_forgotten() {
        let c = Described::default();
        let (p, d) = described(300, Some("\"e1\""));
        c.insert("b", "k", p, d);
        assert_eq!(c.get("b", "k").map(|(p, _)| p.bytes.len()), Some(300));
        assert!(c.get("other", "k").is_none());
        assert!(c.get("b", "k2").is_none());
        c.remove("b", "k");
        assert!(c.get("b", "k").is_none());
    }

    #[test]
    fn large_prefixes_and_untagged_objects_are_not_kept() {
        let c = Described::default();
        let (p, d) = described(MAX_BYTES + 1, Some("\"e1\""));
        c.insert("b", "big", p, d);
        let (p, d) = described(10, None);
        c.insert("b", "untagged", p, d);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn the_cache_is_bounded() {
        let c = Described::default();
        for i in 0..MAX_ENTRIES + 10 {
            let (p, d) = described(10, Some("\"e\""));
            c.insert("b", &format!("k{i}"), p, d);
            assert!(c.len() <= MAX_ENTRIES);
        }
        assert!(c.get("b", &format!("k{}", MAX_ENTRIES + 9)).is_some());
    }
}
