//! The one error type of the format core.

/// Everything that can go wrong while writing or reading a message.
///
/// Decryption errors name the stage that failed, never key material or plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The header could not be parsed (bad length, bad value, invalid UTF-8 …).
    #[error("malformed header: {0}")]
    MalformedHeader(String),
    /// The message body or footer is not well-formed.
    #[error("malformed body: {0}")]
    MalformedBody(String),
    /// The input ended before the message was complete.
    #[error("truncated message: input ended in the {0}")]
    Truncated(&'static str),
    /// The message carries a version byte we do not know.
    #[error("unsupported message format version 0x{0:02x}")]
    UnsupportedVersion(u8),
    /// The algorithm suite is unknown or not an ESDK message suite.
    #[error("unknown or unsupported algorithm suite 0x{0:04x}")]
    UnknownSuite(u16),
    /// The commitment policy forbids this suite.
    #[error("algorithm suite 0x{0:04x} does not commit to its key; refused by the commitment policy (allow with --allow-legacy)")]
    CommitmentPolicy(u16),
    /// The header lists more encrypted data keys than the configured maximum.
    #[error("message has {found} encrypted data key{}, more than the allowed maximum of {max}", if *.found == 1 { "" } else { "s" })]
    TooManyEncryptedDataKeys {
        /// How many the header declares.
        found: usize,
        /// The configured limit.
        max: usize,
    },
    /// The header declares a frame length above the format's bound (2^31 − 1) or the
    /// configured maximum.
    #[error("message frame length {found} exceeds the accepted maximum of {max} bytes")]
    FrameLengthLimit {
        /// The frame length the header declares.
        found: u32,
        /// The limit in force.
        max: u32,
    },
    /// The key commitment stored in the header does not match the data key.
    #[error("key commitment mismatch: the data key does not match this message")]
    Commitment,
    /// The header authentication tag did not verify.
    #[error("header authentication failed (wrong encryption context or tampered header)")]
    HeaderAuth,
    /// A frame's authentication tag did not verify.
    #[error("authentication of frame {0} failed (tampered or corrupted ciphertext)")]
    FrameAuth(u32),
    /// The footer signature did not verify.
    #[error("signature verification failed")]
    Signature,
    /// Bytes follow the end of the message.
    #[error("unexpected bytes after the end of the message")]
    TrailingBytes,
    /// The encryption context is invalid for this operation.
    #[error("encryption context: {0}")]
    Context(String),
    /// A data key had the wrong length for the suite.
    #[error("data key has {found} bytes, the suite needs {expected}")]
    DataKeyLength {
        /// Bytes required.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// A parameter given by the caller is invalid.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The underlying crypto library failed unexpectedly.
    #[error("crypto failure: {0}")]
    Crypto(&'static str),
    /// Reading or writing the stream failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(io) => io,
            other => Self::new(std::io::ErrorKind::InvalidData, other),
        }
    }
}

impl Error {
    /// Recover a core error that travelled through an `io::Error` (e.g. via `Read`).
    pub fn from_io(e: std::io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<Self>()) {
            match e.into_inner().map(|b| b.downcast::<Self>()) {
                Some(Ok(inner)) => return *inner,
                Some(Err(other)) => return Self::Io(std::io::Error::other(other)),
                None => return Self::Io(std::io::Error::other("lost error")),
            }
        }
        Self::Io(e)
    }
}
