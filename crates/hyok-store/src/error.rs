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

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
