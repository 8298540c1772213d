//! The error codes of the XKS Proxy API (spec "Error codes" table): each error answers its
//! HTTP status with a `{"errorName", "errorMessage"}` body.

use std::fmt;

/// Every `errorName` of the specification's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorName {
    /// 400: one or more input parameters is invalid.
    Validation,
    /// 400: the external key or key store is disabled.
    InvalidState,
    /// 400: ciphertext, IV, AAD or tag is corrupted, missing or invalid (decrypt).
    InvalidCiphertext,
    /// 400: the key does not support the operation (encrypt, decrypt).
    InvalidKeyUsage,
    /// 401: invalid SigV4 signature.
    AuthenticationFailed,
    /// 403: refused by the per-key allow-lists (request metadata).
    AccessDenied,
    /// 404: no such external key.
    KeyNotFound,
    /// 404: the URI path is not valid.
    InvalidUriPath,
    /// 429: the request rate is too high (the proxy's queue is full).
    Throttling,
    /// 501: operation or parameter size not supported.
    UnsupportedOperation,
    /// 503: the key store did not answer in time.
    DependencyTimeout,
    /// 500: the key store failed.
    Internal,
}

impl ErrorName {
    /// Every error name, in the specification's order.
    pub const ALL: [Self; 12] = [
        Self::Validation,
        Self::InvalidState,
        Self::InvalidCiphertext,
        Self::InvalidKeyUsage,
        Self::AuthenticationFailed,
        Self::AccessDenied,
        Self::KeyNotFound,
        Self::InvalidUriPath,
        Self::Throttling,
        Self::UnsupportedOperation,
        Self::DependencyTimeout,
        Self::Internal,
    ];

    /// The `errorName` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validation => "ValidationException",
            Self::InvalidState => "InvalidStateException",
            Self::InvalidCiphertext => "InvalidCiphertextException",
            Self::InvalidKeyUsage => "InvalidKeyUsageException",
            Self::AuthenticationFailed => "AuthenticationFailedException",
            Self::AccessDenied => "AccessDeniedException",
            Self::KeyNotFound => "KeyNotFoundException",
            Self::InvalidUriPath => "InvalidUriPathException",
            Self::Throttling => "ThrottlingException",
            Self::UnsupportedOperation => "UnsupportedOperationException",
            Self::DependencyTimeout => "DependencyTimeoutException",
            Self::Internal => "InternalException",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Self::Validation | Self::InvalidState | Self::InvalidCiphertext => 400,
            Self::InvalidKeyUsage => 400,
            Self::AuthenticationFailed => 401,
            Self::AccessDenied => 403,
            Self::KeyNotFound | Self::InvalidUriPath => 404,
            Self::Throttling => 429,
            Self::UnsupportedOperation => 501,
            Self::DependencyTimeout => 503,
            Self::Internal => 500,
        }
    }
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer: its name and a message (printable ASCII, under 512 characters, never
/// secrets or plaintext).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XksError {
    /// The error name (fixes the status).
    pub name: ErrorName,
    /// The message sent as `errorMessage`.
    pub message: String,
}

/// Longest `errorMessage` sent (the specification requires fewer than 512 characters).
pub const MAX_MESSAGE: usize = 400;

impl XksError {
    /// An error with a message; the message is made printable ASCII and cut to
    /// [`MAX_MESSAGE`] characters.
    pub fn new(name: ErrorName, message: impl AsRef<str>) -> Self {
        Self {
            name,
            message: printable(message.as_ref(), MAX_MESSAGE),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::json!({ "errorName": self.name.as_str(), "errorMessage": self.message })
            .to_string()
            .into_bytes()
    }
}

impl fmt::Display for XksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for XksError {}

/// `s` with every character outside 0x20..=0x7e replaced by `?`, cut to `max` characters.
pub fn printable(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect();
    if s.chars().count() > max {
        out.truncate(max.saturating_sub(3));
        out.push_str("...");
    }
    out
}

/// Shorthand constructors.
pub(crate) fn err(name: ErrorName, message: impl AsRef<str>) -> XksError {
    XksError::new(name, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_table() {
        let table: Vec<(u16, &str)> = ErrorName::ALL
            .iter()
            .map(|n| (n.status(), n.as_str()))
            .collect();
        assert_eq!(
            table,
            [
                (400, "ValidationException"),
                (400, "InvalidStateException"),
                (400, "InvalidCiphertextException"),
                (400, "InvalidKeyUsageException"),
                (401, "AuthenticationFailedException"),
                (403, "AccessDeniedException"),
                (404, "KeyNotFoundException"),
                (404, "InvalidUriPathException"),
                (429, "ThrottlingException"),
                (501, "UnsupportedOperationException"),
                (503, "DependencyTimeoutException"),
                (500, "InternalException"),
            ]
        );
    }

    #[test]
    fn messages_are_short_printable_ascii() {
        let e = XksError::new(
            ErrorName::Internal,
            format!("a\u{1b}[31mb\n{}", "x".repeat(900)),
        );
        assert!(e.message.len() <= MAX_MESSAGE);
        assert!(e.message.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        assert!(e.message.starts_with("a?[31mb?"));
        let body: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(body["errorName"], "InternalException");
    }
}
