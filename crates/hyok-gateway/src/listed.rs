//! Descriptions of objects this replica has listed, reused by later listings without any
//! request: a listing needs each object's size and ETag as the client sees them, which are
//! in the object's header, so describing a page of 1,000 keys costs 1,000 small GETs the
//! first time (docs/DESIGN.md, "Listings").
//!
//! Why it is sound: an entry is used only when the backend's listing shows the object with
//! the same entity tag and size as when its header was read. A backend gives other bytes
//! another entity tag (S3: the MD5 of the bytes, or of the parts' MD5s; a local folder: the
//! file's inode, modification time and size), so the header, and everything described from
//! it, is the same. The time shown is the listing's own. What is kept is public (the
//! header's context), and reading the object still decrypts and authenticates it.

use std::collections::HashMap;
use std::sync::Mutex;

use hyok::store::ObjectInfo;

use crate::meta::ObjectDesc;

/// Descriptions kept at most; when full, the cache starts again empty.
const MAX_ENTRIES: usize = 8192;
/// Largest encryption context kept per object (serialized pairs, bytes): with
/// [`MAX_ENTRIES`], a bound of about 32 MiB; a usual object's is a few hundred bytes.
const MAX_CONTEXT: usize = 2048;

/// An object's description and the entity tag and size it was read at.
struct Seen {
    e_tag: String,
    size: u64,
    desc: ObjectDesc,
}

/// A bounded map from (bucket, key) to what was seen of the object.
#[derive(Default)]
pub(crate) struct Listed {
    entries: Mutex<HashMap<(String, String), Seen>>,
}

impl Listed {
    /// The description of `bucket`/`key` if it was read when the backend showed it as in
    /// `info` (same entity tag and size), with `info`'s time.
    pub(crate) fn get(&self, bucket: &str, key: &str, info: &ObjectInfo) -> Option<ObjectDesc> {
        let tag = info.e_tag.as_deref()?;
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let seen = entries.get(&(bucket.to_owned(), key.to_owned()))?;
        (seen.e_tag == tag && seen.size == info.size).then(|| ObjectDesc {
            last_modified: info.last_modified,
            ..seen.desc.clone()
        })
    }

    /// Keep `desc`, read from the object the backend showed as in `info` (not without an
    /// entity tag, nor with a context over [`MAX_CONTEXT`]).
    pub(crate) fn insert(&self, bucket: &str, key: &str, info: &ObjectInfo, desc: &ObjectDesc) {
        let Some(e_tag) = info.e_tag.clone() else {
            return;
        };
        let context: usize = desc.context.iter().map(|(k, v)| k.len() + v.len()).sum();
        if context > MAX_CONTEXT {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        let seen = Seen {
            e_tag,
            size: info.size,
            desc: desc.clone(),
        };
        entries.insert((bucket.to_owned(), key.to_owned()), seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(tag: Option<&str>, size: u64, secs: u64) -> ObjectInfo {
        ObjectInfo {
            url: hyok::store::StoreUrl::parse("s3://b/k").unwrap(),
            size,
            last_modified: std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
            e_tag: tag.map(str::to_owned),
            metadata: Default::default(),
        }
    }

    fn desc(etag: &str) -> ObjectDesc {
        ObjectDesc {
            size: 10,
            etag: etag.into(),
            last_modified: std::time::UNIX_EPOCH,
            attrs: Default::default(),
            context: Default::default(),
        }
    }

    #[test]
    fn used_only_for_the_same_entity_tag_and_size() {
        let l = Listed::default();
        l.insert("b", "k", &info(Some("t1"), 100, 1), &desc("plain-md5"));
        let got = l.get("b", "k", &info(Some("t1"), 100, 7)).unwrap();
        assert_eq!(got.etag, "plain-md5");
        assert_eq!(
            got.last_modified,
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(7)
        );
        assert!(l.get("b", "k", &info(Some("t2"), 100, 1)).is_none());
        assert!(l.get("b", "k", &info(Some("t1"), 101, 1)).is_none());
        assert!(l.get("b", "k", &info(None, 100, 1)).is_none());
        assert!(l.get("b", "other", &info(Some("t1"), 100, 1)).is_none());
        assert!(l.get("c", "k", &info(Some("t1"), 100, 1)).is_none());
        // Without an entity tag nothing is kept.
        l.insert("b", "u", &info(None, 5, 1), &desc("x"));
        assert_eq!(l.entries.lock().unwrap().len(), 1);
        // A large context is not kept.
        let mut big = desc("y");
        big.context
            .insert("hyok-gw-meta-big", "v".repeat(MAX_CONTEXT).as_str());
        l.insert("b", "big", &info(Some("t"), 5, 1), &big);
        assert!(l.get("b", "big", &info(Some("t"), 5, 1)).is_none());
    }

    #[test]
    fn bounded() {
        let l = Listed::default();
        for i in 0..=MAX_ENTRIES {
            l.insert("b", &format!("k{i}"), &info(Some("t"), 1, 1), &desc("e"));
        }
        assert!(l.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
