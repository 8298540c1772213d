//! The store crate's error type.

/// Errors of object storage. Messages name the object and the operation, never credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bad store configuration (unknown option, missing region …).
    #[error("store configuration: {0}")]
    Config(String),
    /// A location that cannot be parsed.
    #[error("invalid location: {0}")]
    InvalidUrl(String),
    /// The object does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// An operation on an object failed (after retries for transient errors).
    #[error("{op} {object}: {source}")]
    Store {
        /// The operation (`upload`, `download`, `list` …).
        op: &'static str,
        /// The object URL.
        object: String,
        /// What the store said.
        #[source]
        source: object_store::Error,
    },
    /// A name in the object's path is longer than the local file system allows (ENAMETOOLONG:
    /// 255 bytes a name on most Linux file systems; writes need a few bytes more for the
    /// staging file's `#N` suffix).
    #[error("{0}: a name in this path is longer than the file system allows")]
    NameTooLong(String),
    /// A local folder cannot hold the key: a name in its path is a file where a folder is
    /// needed, or a folder where the file would go (`a` and `a/b` cannot both be keys).
    #[error("{0}: a local folder cannot hold both a file and a folder of this name (keys `a` and `a/b`)")]
    PathConflict(String),
    /// The upload was abandoned (its data source failed); the partial upload was aborted.
    #[error("upload of {0} abandoned; nothing was stored")]
    Abandoned(String),
    /// A conditional replacement found the object changed since it was read (another
    /// writer); nothing was replaced.
    #[error("{0} changed since it was read (another writer); it was not replaced")]
    Changed(String),
    /// Local I/O (the upload journal, a local file).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn store(
        op: &'static str,
        object: impl Into<String>,
        e: object_store::Error,
    ) -> Self {
        match e {
            object_store::Error::NotFound { .. } => Self::NotFound(object.into()),
            object_store::Error::Precondition { .. } => Self::Changed(object.into()),
            source if has_errno(&source, rustix::io::Errno::NAMETOOLONG) => {
                Self::NameTooLong(object.into())
            }
            source
                if has_errno(&source, rustix::io::Errno::ISDIR)
                    || has_errno(&source, rustix::io::Errno::NOTDIR) =>
            {
                // Reading `a/b` where `a` is a file: there is no such object.
                if matches!(op, "download" | "head" | "delete" | "list") {
                    Self::NotFound(object.into())
                } else {
                    Self::PathConflict(object.into())
                }
            }
            source => Self::Store {
                op,
                object: object.into(),
                source,
            },
        }
    }

    /// Whether the error means the object is missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound(_))
    }
}

/// Whether a local file system failed with `errno` (the `io::Error` object_store's local
/// store keeps as a source).
fn has_errno(e: &object_store::Error, errno: rustix::io::Errno) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.raw_os_error() == Some(errno.raw_os_error()) {
                return true;
            }
        }
        cause = c.source();
    }
    false
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
