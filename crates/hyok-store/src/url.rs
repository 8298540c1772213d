//! Store URLs: `s3://BUCKET/KEY-OR-PREFIX`, `file:///ABSOLUTE/PATH` and plain local paths.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Which kind of store a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A folder on the local file system (the embedded default; no server).
    Local,
    /// An S3-compatible object store.
    S3,
}

impl Backend {
    /// `file` or `s3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "file",
            Self::S3 => "s3",
        }
    }
}

/// A parsed store URL: a backend, a bucket (S3 only) and a key or key prefix.
///
/// Invariants: `key` never starts with `/`, and has no empty, `.` or `..` segments except a
/// trailing `/` that marks a folder-like prefix. For local URLs the key is the absolute path
/// without its leading `/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreUrl {
    backend: Backend,
    bucket: String,
    key: String,
}

fn check_key(key: &str, whole: &str) -> Result<()> {
    let trimmed = key.strip_suffix('/').unwrap_or(key);
    if trimmed.is_empty() {
        return Ok(());
    }
    for seg in trimmed.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(Error::InvalidUrl(format!(
                "{whole:?}: empty, `.` or `..` path segments are not allowed"
            )));
        }
    }
    Ok(())
}

impl StoreUrl {
    /// Parse a URL or a local path. Relative local paths are made absolute against the
    /// current directory (without resolving symbolic links).
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(Error::InvalidUrl("empty location".into()));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::InvalidUrl(format!("{s:?} has no bucket name")));
            }
            if !bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
            {
                return Err(Error::InvalidUrl(format!(
                    "{s:?}: bucket names use lowercase letters, digits, `-`, `.` and `_`"
                )));
            }
            check_key(key, s)?;
            return Ok(Self {
                backend: Backend::S3,
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        }
        if let Some(rest) = s.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(Error::InvalidUrl(format!(
                    "{s:?}: file URLs need an absolute path (file:///DIR/NAME)"
                )));
            }
            return Self::local(Path::new(rest));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(Error::InvalidUrl(format!(
                "unsupported URL scheme {scheme:?} (supported: s3://, file://, local paths)"
            )));
        }
        Self::local(Path::new(s))
    }

    /// A local path as a store URL.
    pub fn local(path: &Path) -> Result<Self> {
        let abs = std::path::absolute(path).map_err(|e| {
            Error::InvalidUrl(format!("cannot make {} absolute: {e}", path.display()))
        })?;
        let text = abs
            .to_str()
            .ok_or_else(|| Error::InvalidUrl(format!("{} is not valid UTF-8", path.display())))?;
        // Normalise `a/./b` and drop a repeated separator; keep a trailing `/` as a folder mark.
        let dir_mark = text.ends_with('/') && text.len() > 1;
        let mut segs: Vec<&str> = Vec::new();
        for seg in text.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    segs.pop();
                }
                s => segs.push(s),
            }
        }
        let mut key = segs.join("/");
        if dir_mark && !key.is_empty() {
            key.push('/');
        }
        Ok(Self {
            backend: Backend::Local,
            bucket: String::new(),
            key,
        })
    }

    pub(crate) fn from_parts(backend: Backend, bucket: &str, key: &str) -> Self {
        Self {
            backend,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        }
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The bucket (empty for local URLs).
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key or prefix inside the bucket (for local URLs: the absolute path without `/`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the URL ends with `/` or names a bucket root (a folder, not an object).
    pub fn is_folder(&self) -> bool {
        self.key.is_empty() || self.key.ends_with('/')
    }

    /// The same URL with a trailing `/` (a prefix to put objects under).
    pub fn as_folder(&self) -> Self {
        let mut u = self.clone();
        if !u.key.is_empty() && !u.key.ends_with('/') {
            u.key.push('/');
        }
        u
    }

    /// The last path segment (the object's file name), if any.
    pub fn file_name(&self) -> Option<&str> {
        self.key
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
    }

    /// A URL below this one: `rel` is a `/`-separated relative key.
    pub fn join(&self, rel: &str) -> Result<Self> {
        let mut u = self.as_folder();
        u.key.push_str(rel.trim_start_matches('/'));
        check_key(&u.key, &u.to_string())?;
        Ok(u)
    }

    /// The same key in another bucket (S3 only) — used to describe the store root.
    pub fn root(&self) -> Self {
        Self {
            backend: self.backend,
            bucket: self.bucket.clone(),
            key: String::new(),
        }
    }

    /// The local file system path of a local URL.
    pub fn local_path(&self) -> Option<PathBuf> {
        (self.backend == Backend::Local).then(|| PathBuf::from(format!("/{}", self.key)))
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.backend {
            Backend::Local => write!(f, "file:///{}", self.key),
            Backend::S3 => write!(f, "s3://{}/{}", self.bucket, self.key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_and_local() {
        let u = StoreUrl::parse("s3://my-bucket/a/b.txt").unwrap();
        assert_eq!(u.backend(), Backend::S3);
        assert_eq!(u.bucket(), "my-bucket");
        assert_eq!(u.key(), "a/b.txt");
        assert!(!u.is_folder());
        assert_eq!(u.file_name(), Some("b.txt"));
        assert_eq!(u.to_string(), "s3://my-bucket/a/b.txt");
        let f = StoreUrl::parse("s3://b").unwrap();
        assert!(f.is_folder());
        assert_eq!(f.join("x/y").unwrap().key(), "x/y");
        assert!(StoreUrl::parse("s3:///k").is_err());
        assert!(StoreUrl::parse("s3://B/k").is_err());
        assert!(StoreUrl::parse("s3://b/a//b").is_err());
        assert!(StoreUrl::parse("s3://b/../b").is_err());
        assert!(StoreUrl::parse("gs://b/k").is_err());
        assert!(StoreUrl::parse("file://rel/x").is_err());
        let l = StoreUrl::parse("file:///tmp/./x/../y/").unwrap();
        assert_eq!(l.key(), "tmp/y/");
        assert_eq!(l.local_path().unwrap(), PathBuf::from("/tmp/y/"));
        assert_eq!(l.to_string(), "file:///tmp/y/");
        let rel = StoreUrl::parse("some/file").unwrap();
        assert!(rel.key().ends_with("some/file"));
    }
}
