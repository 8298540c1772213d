//! # hyok
//!
//! The facade the CLI (and later the gateway) use: a [`Client`] ties a key manager (key
//! stores + cache + audit) to the message format. Encrypting and decrypting are split into
//! an async key step (talks to HSM / Vault / KMIP) and a blocking streaming step (frames on
//! every core), so callers can run the streaming part wherever they like.
//!
//! ```
//! use std::io::{Read, Write};
//! use hyok::{Client, EncryptionContext};
//! use hyok_keystore::{raw::RawAesKey, Keyring, KeyManager};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let key = RawAesKey::new("my-ns", "key-1", &[7u8; 32]).unwrap();
//! let client = Client::new(KeyManager::new(Keyring::new(vec![std::sync::Arc::new(key)]).unwrap()));
//! let ctx: EncryptionContext = [("tenant", "a")].into_iter().collect();
//! let materials = client.encryption_materials(&ctx, &Default::default(), 5, &Default::default()).await.unwrap();
//! let mut enc = client.encryptor(Vec::new(), materials).unwrap();
//! enc.write_all(b"hello").unwrap();
//! let (message, _) = enc.finish().unwrap();
//!
//! let mut input = &message[..];
//! let parsed = client.read_header(&mut input).unwrap();
//! let verified = client.open(parsed, &ctx, &Default::default()).await.unwrap();
//! let mut out = Vec::new();
//! client.decryptor(verified, input).read_to_end(&mut out).unwrap();
//! assert_eq!(out, b"hello");
//! # });
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod branch;
pub mod branch_objects;
mod client;
pub mod config;
pub mod custody;
mod error;
pub mod escrow;
pub mod fips;
pub mod frontend;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod inspect;
pub mod key_rate;
pub mod objects;
mod plain_out;
pub mod policy;
pub mod reencrypt;
pub mod session;

pub use client::{Client, Settings};
pub use error::{Error, ErrorClass, ErrorKind, Result};
pub use hyok_core::text;
/// Errors of the message format (inside [`Error::Format`]).
pub use hyok_core::Error as FormatError;
pub use hyok_core::{
    AlgorithmSuite, CommitmentPolicy, DecryptOptions, Decryptor, DetachedMessage, EncryptOptions,
    EncryptionContext, EncryptionMaterials, Encryptor, Header, HeaderLimits, Parallelism,
    ParsedHeader, VerifiedHeader, DEFAULT_MAX_READ_FRAME_LEN, MAX_WRITE_FRAME_LEN,
};
pub use hyok_core::{DataKey, FINAL_FRAME_OVERHEAD, REGULAR_FRAME_OVERHEAD};
/// AWS-LC's MD5, for the S3 protocol's checksums (ETags, `Content-MD5`), never for security.
pub use hyok_core::{Md5, MD5_LEN};
pub use hyok_keystore::{KeyManager, OpLabel};
pub use hyok_store as store;
pub use session::{CacheChoice, KeySource, Session, SessionConfig};

pub use fips::{crypto_module, require_fips_mode, FIPS_BUILD};

/// The data-key cache: limits and their textual forms (`5m`, `64MiB`).
pub mod cache {
    pub use hyok_keystore::cache::{parse_bytes, parse_duration, CacheLimits, MemoryCache};
}

/// Keys that encrypt with AES-256-GCM and caller-supplied AAD inside their store (the XKS
/// proxy's backends).
pub mod aead {
    pub use hyok_keystore::aead::{
        open_aead, AeadKey, Sealed, SealedRef, SharedAeadKey, IV_LEN, TAG_LEN,
    };
    pub use hyok_keystore::{Error as KeyStoreError, KeyInfo};
}

/// Key-store schemes and key administration.
pub mod keys {
    pub use hyok_keystore::admin::{Created, KeyAdmin, KeyKind, KeyListing};
    pub use hyok_keystore::{KeyUri, Registry, Scheme};

    /// A new RSA key pair of `bits` as (private PKCS#8 PEM, zeroized on drop; public SPKI
    /// PEM).
    pub fn generate_rsa_pem(bits: usize) -> crate::Result<(zeroize::Zeroizing<String>, String)> {
        Ok(hyok_keystore::raw::rsa::generate_pem(bits)?)
    }

    /// A new X-Wing (ML-KEM-768 + X25519) escrow key pair as (private key file text,
    /// zeroized on drop; public key file text) for `pq-escrow:` URIs.
    pub fn generate_pq_escrow_pem() -> crate::Result<(zeroize::Zeroizing<String>, String)> {
        Ok(hyok_keystore::pq::generate_pem()?)
    }
}
