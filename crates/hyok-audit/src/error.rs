//! Errors of the audit log.

use std::path::{Path, PathBuf};

use crate::verify::Failure;

/// What went wrong. Variants name the file and the operation; never key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The log's configuration is unusable (bad origin, no signing key …).
    #[error("{0}")]
    Config(String),
    /// Reading or writing a file failed.
    #[error("{op} {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done (`opening`, `appending to` …).
        op: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process held the log's lock for too long.
    #[error("{}: the log is locked by another process (waited {waited_secs} s)", .path.display())]
    Locked {
        /// The log.
        path: PathBuf,
        /// How long we waited.
        waited_secs: u64,
    },
    /// A signing or verification key could not be loaded or is of the wrong kind.
    #[error("checkpoint key: {0}")]
    Key(String),
    /// Signing a checkpoint failed.
    #[error("signing a checkpoint: {0}")]
    Sign(String),
    /// A checkpoint file given by the auditor is malformed or its signature is invalid.
    #[error("{0}")]
    Checkpoint(String),
    /// The log writer stopped working; records may be missing (the count says how many).
    #[error("audit log {}: {detail}", .path.display())]
    Writer {
        /// The log.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The log failed verification: the first record or checkpoint that does not hold.
    #[error("{0}")]
    Verification(Box<Failure>),
}

impl Error {
    pub(crate) fn io(path: &Path, op: &'static str, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
