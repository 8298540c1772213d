//! Local raw keys, byte-compatible with the ESDK Raw AES and Raw RSA keyrings.

pub mod aead;
pub mod aes;
pub mod rsa;

pub use aes::RawAesKey;
pub use rsa::{RawRsaKey, RsaPadding};

use crate::registry::{shared, Scheme};

/// `raw-aes:`: a local 32-byte key file (ESDK Raw AES keyring).
pub(crate) const AES_SCHEME: Scheme = Scheme {
    name: "raw-aes",
    syntax: "raw-aes:NAMESPACE/NAME?file=PATH",
    note: "a local 32-byte key file",
    open: |u| Ok(shared(RawAesKey::from_uri(u)?)),
    admin: None,
};

/// `raw-rsa:`: local PEM key files (ESDK Raw RSA keyring).
pub(crate) const RSA_SCHEME: Scheme = Scheme {
    name: "raw-rsa",
    syntax: "raw-rsa:NAMESPACE/NAME?public=PEM&private=PEM&padding=oaep-sha256",
    note: "local PEM key files",
    open: |u| Ok(shared(RawRsaKey::from_uri(u)?)),
    admin: None,
};
