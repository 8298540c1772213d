//! Where a client's bucket and key live on the backend, and the backend's bucket-level
//! operations. A local folder keeps client bucket B in the folder `ROOT/B/`; S3 keeps it in
//! backend bucket B (connection settings from a `[stores]` entry of that bucket, else the
//! standard AWS environment).
//!
//! Keys under `.hyok-gateway/` are the gateway's own (multipart staging): clients can
//! neither see nor write them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hyok::store::{ObjectInfo, ReadCounter, Store, StoreOptions, StoreUrl, Transfer};
use hyok::Session;
use s3s::{s3_error, S3Result};

use crate::settings::BackendKind;

/// Prefix of the gateway's own keys inside a bucket.
pub(crate) const RESERVED: &str = ".hyok-gateway/";
/// Longest key accepted (as S3).
const MAX_KEY: usize = 1024;

/// The backend.
pub(crate) struct Backend {
    kind: BackendKind,
    session: Arc<Session>,
    local: Option<Store>,
    stores: Mutex<HashMap<String, Store>>,
    /// S3 buckets seen to exist, and when (object_store cannot HEAD a bucket, so the check
    /// is a LIST, which some servers answer slowly for large buckets).
    seen: Mutex<HashMap<String, Instant>>,
    /// Counts the read requests of every store (the metrics export it).
    reads: Arc<ReadCounter>,
}

/// How long an S3 bucket seen to exist is taken to exist without asking again.
const BUCKET_TTL: Duration = Duration::from_secs(30);

/// Whether a bucket name is acceptable (S3's rules, simplified: 3-63 of `a-z0-9.-`,
/// starting and ending with a letter or digit).
pub(crate) fn check_bucket(b: &str) -> S3Result<()> {
    let ok = (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric()
        && !b.contains("..");
    if ok {
        Ok(())
    } else {
        Err(s3_error!(InvalidBucketName))
    }
}

/// The name a folder marker (a client key ending in `/`, as S3 consoles, s3fs and Hadoop's
/// s3a create for folders) is stored under inside its folder, since a backend path cannot
/// end in `/`: `a/b/` is stored as `a/b/␠`. A single space sorts before every other name a
/// segment can have (control characters are refused), so stored keys sort as client keys do
/// and listings can page through the backend in its order (DESIGN.md, "Folder markers").
pub(crate) const MARKER: &str = " ";

/// The backend key (below the bucket) of the client key `key`.
pub(crate) fn stored_key(key: &str) -> std::borrow::Cow<'_, str> {
    if key.ends_with('/') && !key.starts_with(RESERVED) {
        format!("{key}{MARKER}").into()
    } else {
        key.into()
    }
}

/// The client key of the backend key `stored` (below the bucket): [`stored_key`] undone.
pub(crate) fn client_key(stored: &str) -> &str {
    match stored.strip_suffix(MARKER) {
        Some(k) if k.ends_with('/') && !k.starts_with(RESERVED) => k,
        _ => stored,
    }
}

/// Whether a client key is acceptable: not empty, at most 1024 bytes, no control
/// characters, no empty, `.` or `..` segment (they cannot be stored as paths), not named
/// like a stored folder marker, not under the reserved prefix.
pub(crate) fn check_key(k: &str) -> S3Result<()> {
    if k.is_empty() || k.len() > MAX_KEY {
        return Err(s3_error!(KeyTooLongError));
    }
    // `.hyok/` folders hold hyok's own objects (a branch key store) and are never listed, so
    // a client's object there could be written but not listed: refused instead.
    if k.starts_with(RESERVED) || hyok::store::is_reserved(k) {
        return Err(s3_error!(
            InvalidArgument,
            "keys under .hyok-gateway/ and inside .hyok/ folders are reserved"
        ));
    }
    // A folder marker `a/b/` is the path `a/b` with a name of its own (`MARKER`).
    let path = k.strip_suffix('/').unwrap_or(k);
    if k.chars().any(char::is_control)
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(s3_error!(
            InvalidArgument,
            "this gateway stores keys as paths: no empty, `.` or `..` segments, no control characters"
        ));
    }
    if !k.ends_with('/') && path.rsplit('/').next() == Some(MARKER) {
        return Err(s3_error!(
            InvalidArgument,
            "a key whose last name is a single space is reserved: it stores the folder marker of the key ending in `/`"
        ));
    }
    Ok(())
}

/// Largest plaintext written to the backend as one PUT (the aws cli's 8 MiB parts, rclone's
/// 5 MiB chunks and boto3's 8 MiB threshold are below it).
const ONE_PUT_MAX: u64 = 16 * 1024 * 1024;

/// How to write a message of `len` bytes of plaintext: up to [`ONE_PUT_MAX`], with parts
/// larger than the whole message, so that it is one PUT. With the default 8 MiB parts an
/// 8 MiB client part (8 MiB + its header and frame tags once encrypted) became a backend
/// multipart upload of 8 MiB and 4 KiB — four requests, and a backend that assembles parts
/// by copying (s3s-fs) wrote every byte twice. Memory is unchanged: the writer buffers at
/// most one part either way. The bound on the message's overhead (header, 28 bytes per
/// 64 KiB frame, a signature) is generous; if it were short, the write is a multipart upload
/// as before, still correct.
pub(crate) fn write_transfer(base: &Transfer, len: Option<u64>) -> Transfer {
    match len {
        Some(n) if n <= ONE_PUT_MAX => {
            let whole = n + n / 1024 + 64 * 1024;
            let rounded = whole.div_ceil(64 * 1024) * 64 * 1024;
            base.with_part_size(usize::try_from(rounded).unwrap_or(usize::MAX))
        }
        _ => base.clone(),
    }
}

fn internal(e: hyok::Error) -> s3s::S3Error {
    crate::service::to_s3(e)
}

impl Backend {
    /// Open the backend (no request is sent); its read requests are counted in `reads`.
    pub(crate) fn new(
        kind: BackendKind,
        session: Arc<Session>,
        reads: Arc<ReadCounter>,
    ) -> hyok::Result<Self> {
        let local = match &kind {
            BackendKind::File(root) => {
                std::fs::create_dir_all(root).map_err(|e| hyok::Error::Io {
                    what: format!("creating the backend folder {}", root.display()),
                    source: e,
                })?;
                let url = StoreUrl::local(root)?;
                Some(
                    session
                        .open_store(&url, StoreOptions::default())?
                        .counting_reads(reads.clone()),
                )
            }
            BackendKind::S3 => None,
        };
        Ok(Self {
            kind,
            session,
            local,
            stores: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            reads,
        })
    }

    /// The kind.
    pub(crate) fn kind(&self) -> &BackendKind {
        &self.kind
    }

    fn root(&self) -> Option<&PathBuf> {
        match &self.kind {
            BackendKind::File(r) => Some(r),
            BackendKind::S3 => None,
        }
    }

    /// The store that holds `bucket`.
    pub(crate) fn store(&self, bucket: &str) -> S3Result<Store> {
        if let Some(s) = &self.local {
            return Ok(s.clone());
        }
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = stores.get(bucket) {
            return Ok(s.clone());
        }
        let (url, opts) = self
            .session
            .resolve(&format!("s3://{bucket}/"))
            .map_err(internal)?;
        let mut opts = opts;
        // The gateway aborts failed uploads itself; it keeps no per-user journal.
        opts.journal_dir = None;
        // It writes only ESDK messages, authenticated frame by frame: hashing every body
        // for the request signature as well cost a sixth of an upload's CPU (DESIGN.md).
        opts.unsigned_payload = true;
        let store = Store::open(&url, &opts)
            .map_err(|e| internal(e.into()))?
            .counting_reads(self.reads.clone());
        stores.insert(bucket.to_owned(), store.clone());
        Ok(store)
    }

    /// The folder URL of a client bucket.
    pub(crate) fn bucket_url(&self, bucket: &str) -> S3Result<StoreUrl> {
        let url = match self.root() {
            Some(root) => StoreUrl::local(&root.join(bucket)),
            None => StoreUrl::parse(&format!("s3://{bucket}/")),
        };
        Ok(url.map_err(|e| internal(e.into()))?.as_folder())
    }

    /// The backend URL of a client object (or of a reserved key).
    pub(crate) fn object_url(&self, bucket: &str, key: &str) -> S3Result<StoreUrl> {
        self.bucket_url(bucket)?
            .join(&stored_key(key))
            .map_err(|_| s3_error!(InvalidArgument, "this key cannot be stored"))
    }

    /// The client key of a listed backend object of `bucket` (`None`: not below it).
    pub(crate) fn key_of(&self, bucket_url: &StoreUrl, info: &ObjectInfo) -> Option<String> {
        info.url
            .key()
            .strip_prefix(bucket_url.key())
            .map(|k| client_key(k).to_owned())
    }

    /// Whether the client bucket exists.
    pub(crate) async fn bucket_exists(&self, bucket: &str) -> S3Result<bool> {
        match self.root() {
            Some(root) => Ok(root.join(bucket).is_dir()),
            None => {
                let fresh = |m: &HashMap<String, Instant>| {
                    m.get(bucket).is_some_and(|t| t.elapsed() < BUCKET_TTL)
                };
                if fresh(&self.seen.lock().unwrap_or_else(|p| p.into_inner())) {
                    return Ok(true);
                }
                let exists = self.s3_bucket_exists(bucket).await?;
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                if exists {
                    seen.insert(bucket.to_owned(), Instant::now());
                } else {
                    seen.remove(bucket);
                }
                Ok(exists)
            }
        }
    }

    async fn s3_bucket_exists(&self, bucket: &str) -> S3Result<bool> {
        // object_store cannot HEAD a bucket: list a folder that stays empty instead, one
        // level deep. (A recursive listing of the bucket made s3s-fs walk all of it, and
        // S3 send up to 1,000 keys, for every check.)
        let store = self.store(bucket)?;
        let probe = self
            .bucket_url(bucket)?
            .join(&format!("{RESERVED}probe/"))
            .map_err(|e| internal(e.into()))?;
        match store.list_names(&probe, 1_000).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => {
                if e.to_string().contains("NoSuchBucket") {
                    Ok(false)
                } else {
                    Err(internal(e.into()))
                }
            }
        }
    }

    /// Fail with NoSuchBucket unless the bucket exists.
    pub(crate) async fn require_bucket(&self, bucket: &str) -> S3Result<()> {
        if self.bucket_exists(bucket).await? {
            Ok(())
        } else {
            Err(s3_error!(NoSuchBucket))
        }
    }

    /// The client buckets (local folders only: object_store cannot list S3 buckets, so an
    /// S3 backend lists the buckets of `candidates` that exist).
    pub(crate) async fn buckets(
        &self,
        candidates: &[String],
    ) -> S3Result<Vec<(String, std::time::SystemTime)>> {
        match self.root() {
            Some(root) => {
                let mut out = Vec::new();
                let rd = std::fs::read_dir(root).map_err(|e| io_error("listing buckets", e))?;
                for entry in rd.flatten() {
                    let Ok(name) = entry.file_name().into_string() else {
                        continue;
                    };
                    let Ok(meta) = entry.metadata() else { continue };
                    if meta.is_dir() && check_bucket(&name).is_ok() {
                        out.push((
                            name,
                            meta.created()
                                .or_else(|_| meta.modified())
                                .unwrap_or(std::time::UNIX_EPOCH),
                        ));
                    }
                }
                out.sort();
                Ok(out)
            }
            None => {
                let mut out = Vec::new();
                for b in candidates {
                    if check_bucket(b).is_ok() && self.bucket_exists(b).await? {
                        out.push((b.clone(), std::time::UNIX_EPOCH));
                    }
                }
                Ok(out)
            }
        }
    }

    /// Create a client bucket (local folders; an S3 backend's buckets are made by its
    /// operator, so this only succeeds when it exists). A bucket that exists already is
    /// left as it is and answered `200`, as S3 answers in us-east-1, the only region the
    /// gateway presents (other regions answer `409 BucketAlreadyOwnedByYou`).
    pub(crate) async fn create_bucket(&self, bucket: &str) -> S3Result<()> {
        check_bucket(bucket)?;
        match self.root() {
            Some(root) => match std::fs::create_dir(root.join(bucket)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if root.join(bucket).is_dir() {
                        Ok(())
                    } else {
                        Err(s3_error!(
                            InvalidBucketName,
                            "the backend folder holds a file of that name"
                        ))
                    }
                }
                Err(e) => Err(io_error("creating the bucket", e)),
            },
            None => {
                if self.bucket_exists(bucket).await? {
                    Ok(())
                } else {
                    Err(s3_error!(
                        NotImplemented,
                        "an S3 backend's buckets are created by its operator, not through the gateway"
                    ))
                }
            }
        }
    }

    /// Delete an empty client bucket.
    pub(crate) async fn delete_bucket(&self, bucket: &str) -> S3Result<()> {
        let store = self.store(bucket)?;
        let url = self.bucket_url(bucket)?;
        let mut list = store.list(&url);
        while let Some(item) = list.next().await {
            let info = item.map_err(|e| internal(e.into()))?;
            let staged = self
                .key_of(&url, &info)
                .is_some_and(|k| k.starts_with(RESERVED));
            if !staged {
                return Err(s3_error!(BucketNotEmpty));
            }
        }
        match self.root() {
            Some(root) => {
                let dir = root.join(bucket);
                if !dir.is_dir() {
                    return Err(s3_error!(NoSuchBucket));
                }
                // Uploads in progress do not keep a bucket from being deleted (S3 aborts
                // them; only its directory buckets refuse): their state goes first. Then
                // the empty folders left by deleted keys, then the bucket folder.
                match std::fs::remove_dir_all(dir.join(RESERVED.trim_end_matches('/'))) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error("deleting the bucket's uploads", e)),
                }
                remove_empty_dirs(&dir).map_err(|e| io_error("deleting the bucket", e))?;
                match std::fs::remove_dir(&dir) {
                    Ok(()) => Ok(()),
                    Err(_) => Err(s3_error!(BucketNotEmpty)),
                }
            }
            None => Err(s3_error!(
                NotImplemented,
                "an S3 backend's buckets are deleted by its operator, not through the gateway"
            )),
        }
    }

    /// After deleting a local object, remove the folders it leaves empty (up to the bucket).
    pub(crate) fn prune(&self, bucket: &str, key: &str) {
        if let Some(root) = self.root() {
            let top = root.join(bucket);
            let mut dir = top.join(&*stored_key(key));
            while dir.pop() && dir.starts_with(&top) && dir != top {
                if std::fs::remove_dir(&dir).is_err() {
                    break;
                }
            }
        }
    }
}

fn remove_empty_dirs(dir: &std::path::Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_empty_dirs(&entry.path())?;
            let _ = std::fs::remove_dir(entry.path());
        }
    }
    Ok(())
}

fn io_error(what: &str, e: std::io::Error) -> s3s::S3Error {
    tracing::warn!("{what}: {e}");
    s3_error!(InternalError, "{what} failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_up_to_16_mib_are_one_put_and_share_the_cap() {
        let base = Transfer::new(8 << 20, 3);
        let t = write_transfer(&base, Some(8 << 20));
        // 8 MiB of plaintext in 64 KiB frames is 8 MiB + 128 × 28 bytes + the header.
        assert!(t.part_size() as u64 >= (8 << 20) + 128 * 28 + 16 * 1024);
        assert!(t.part_size() <= (8 << 20) + (1 << 20));
        assert_eq!(write_transfer(&base, Some(100)).part_size(), 5 << 20);
        assert_eq!(write_transfer(&base, Some(64 << 20)).part_size(), 8 << 20);
        assert_eq!(write_transfer(&base, None).part_size(), 8 << 20);
        assert_eq!(t.concurrency(), 3);
    }

    #[test]
    fn names() {
        assert!(check_bucket("photos-2026").is_ok());
        assert!(check_bucket("ab").is_err());
        assert!(check_bucket("Upper").is_err());
        assert!(check_bucket("-x-").is_err());
        assert!(check_key("a/b.txt").is_ok());
        assert!(check_key("a//b").is_err());
        assert!(check_key("../etc/passwd").is_err());
        assert!(check_key("dir/").is_ok(), "a folder marker");
        assert!(check_key("a/ /").is_ok() && check_key("a/ /b").is_ok() && check_key(" x").is_ok());
        assert!(
            check_key("a/ ").is_err() && check_key(" ").is_err(),
            "a marker's stored name"
        );
        assert!(check_key("/").is_err() && check_key("a//").is_err() && check_key("a/./").is_err());
        assert!(check_key(".hyok-gateway/uploads/x").is_err());
        assert!(check_key(".hyok/branches/b/00000001.json").is_err());
        assert!(check_key("a/.hyok/x").is_err());
        assert!(check_key("a/.hyok").is_ok(), "a file named .hyok is listed");
        assert!(check_key("").is_err());
    }

    /// Stored keys sort as the client keys they store, and give them back: every pair of
    /// valid keys built from names that sort around the marker's space and the `/`.
    #[test]
    fn folder_markers_keep_the_order_of_keys() {
        let names = [
            " x", "!", "-", ".a", "0", "a", "a b", "a!", "a-", "b", "\u{e9}", " /",
        ];
        let mut keys: Vec<String> = Vec::new();
        for a in names {
            keys.push(a.to_owned());
            keys.push(format!("{a}/"));
            for b in names {
                keys.push(format!("{a}/{b}"));
                keys.push(format!("{a}/{b}/"));
            }
        }
        keys.retain(|k| check_key(k).is_ok());
        keys.sort();
        keys.dedup();
        assert!(keys.len() > 250 && keys.iter().any(|k| k.ends_with('/')));
        for k in &keys {
            assert_eq!(client_key(&stored_key(k)), k.as_str());
        }
        let mut stored: Vec<String> = keys.iter().map(|k| stored_key(k).into_owned()).collect();
        stored.sort();
        let back: Vec<&str> = stored.iter().map(|s| client_key(s)).collect();
        assert_eq!(back, keys);
        assert_eq!(stored_key("a/b/"), "a/b/ ");
        assert_eq!(
            stored_key(".hyok-gateway/uploads/x/"),
            ".hyok-gateway/uploads/x/"
        );
    }
}
