//! URI paths: `{prefix}/kms/xks/v1/keys/{keyId}/metadata|encrypt|decrypt` and
//! `{prefix}/kms/xks/v1/health`, with the specification's limits (path of at most 256
//! characters, key ids of at most 128 characters of `A–Z a–z 0–9 - . _`).

use crate::config::{valid_key_id, MAX_KEY_ID};
use crate::error::{err, ErrorName, XksError};

/// Longest request path (the specification bounds the whole URI to 256 characters).
pub const MAX_PATH: usize = 256;

/// A key operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOp {
    /// GetKeyMetadata.
    Metadata,
    /// Encrypt.
    Encrypt,
    /// Decrypt.
    Decrypt,
}

impl KeyOp {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Metadata => "metadata",
            Self::Encrypt => "encrypt",
            Self::Decrypt => "decrypt",
        }
    }
}

/// What a path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// GetHealthStatus.
    Health,
    /// A key operation.
    Key {
        /// External key id.
        id: String,
        /// Operation.
        op: KeyOp,
    },
}

/// The store (index into `bases`) and endpoint a path names. `bases` are the stores'
/// `/PREFIX/kms/xks/v1`; the longest matching one wins.
pub fn route(bases: &[String], path: &str) -> Result<(usize, Endpoint), XksError> {
    let invalid = || {
        err(
            ErrorName::InvalidUriPath,
            "the URI path is not an XKS API path",
        )
    };
    if path.len() > MAX_PATH {
        return Err(err(
            ErrorName::InvalidUriPath,
            format!("the URI path is longer than {MAX_PATH} characters"),
        ));
    }
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'))
    {
        return Err(invalid());
    }
    let (index, rest) = bases
        .iter()
        .enumerate()
        .filter_map(|(i, b)| Some((i, path.strip_prefix(b.as_str())?.strip_prefix('/')?)))
        .max_by_key(|(i, _)| bases[*i].len())
        .ok_or_else(invalid)?;
    if rest == "health" {
        return Ok((index, Endpoint::Health));
    }
    let rest = rest.strip_prefix("keys/").ok_or_else(invalid)?;
    let (id, op) = rest.rsplit_once('/').ok_or_else(invalid)?;
    let op = match op {
        "metadata" => KeyOp::Metadata,
        "encrypt" => KeyOp::Encrypt,
        "decrypt" => KeyOp::Decrypt,
        _ => return Err(invalid()),
    };
    if id.contains('/') || id.is_empty() {
        return Err(invalid());
    }
    if !valid_key_id(id) {
        return Err(err(
            ErrorName::Validation,
            format!("the key id has more than {MAX_KEY_ID} characters"),
        ));
    }
    Ok((
        index,
        Endpoint::Key {
            id: id.to_owned(),
            op,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bases() -> Vec<String> {
        vec!["/kms/xks/v1".into(), "/a/b/kms/xks/v1".into()]
    }

    #[test]
    fn paths() {
        let b = bases();
        assert_eq!(
            route(&b, "/kms/xks/v1/health").unwrap(),
            (0, Endpoint::Health)
        );
        assert_eq!(
            route(&b, "/a/b/kms/xks/v1/keys/k-1.x_y/encrypt").unwrap(),
            (
                1,
                Endpoint::Key {
                    id: "k-1.x_y".into(),
                    op: KeyOp::Encrypt
                }
            )
        );
        for bad in [
            "/kms/xks/v1",
            "/kms/xks/v1/",
            "/kms/xks/v2/health",
            "/kms/xks/v1/keys/k/sign",
            "/kms/xks/v1/keys//encrypt",
            "/kms/xks/v1/keys/a/b/encrypt",
            "/kms/xks/v1/keys/k%20/encrypt",
            "/x/kms/xks/v1/health",
        ] {
            assert_eq!(
                route(&b, bad).unwrap_err().name,
                ErrorName::InvalidUriPath,
                "{bad}"
            );
        }
        let long_id = format!("/kms/xks/v1/keys/{}/metadata", "k".repeat(129));
        assert_eq!(route(&b, &long_id).unwrap_err().name, ErrorName::Validation);
        let long_path = format!("/kms/xks/v1/keys/{}/metadata", "k".repeat(250));
        assert_eq!(
            route(&b, &long_path).unwrap_err().name,
            ErrorName::InvalidUriPath
        );
    }
}
