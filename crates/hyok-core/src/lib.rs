//! # hyok-core
//!
//! The AWS Encryption SDK message format (v1 read, v2 read/write) and its crypto, with no
//! I/O beyond the `Read`/`Write` the caller hands in: no files, network, clock or env.
//!
//! Encrypting is two steps around the key stores: [`PendingEncryption`] fixes the suite and
//! full encryption context, key stores wrap a data key for that context, then an
//! [`Encryptor`] writes the message. Decrypting mirrors it: [`ParsedHeader::read`], unwrap
//! one of the header's EDKs, [`ParsedHeader::verify`], then read plaintext from a
//! [`Decryptor`].
//!
//! ```
//! use std::io::{Read, Write};
//! use hyok_core::*;
//!
//! let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
//! let ctx: EncryptionContext = [("tenant", "a")].into_iter().collect();
//! let pending = PendingEncryption::new(suite, ctx.clone(), Default::default()).unwrap();
//! // A real caller asks a key store to generate and wrap the data key here.
//! let data_key = DataKey::generate(suite).unwrap();
//! let edk = EncryptedDataKey { provider_id: "demo".into(), provider_info: b"k".to_vec(), ciphertext: vec![0; 48] };
//! let dk_copy = data_key.duplicate();
//! let materials = pending.complete(data_key, vec![edk]).unwrap();
//! let mut enc = Encryptor::new(Vec::new(), materials, EncryptOptions::default()).unwrap();
//! enc.write_all(b"hello").unwrap();
//! let (message, _) = enc.finish().unwrap();
//!
//! let mut input = &message[..];
//! let parsed = ParsedHeader::read(&mut input, HeaderLimits::default()).unwrap();
//! let verified = parsed.verify(&dk_copy, &ctx).unwrap();
//! let mut out = Vec::new();
//! verified.decryptor(input, DecryptOptions::default()).read_to_end(&mut out).unwrap();
//! assert_eq!(out, b"hello");
//! ```
//!
//! Features: `parallel` (default) seals and opens frames on every core with rayon.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod aligned;
mod codec;
mod context;
mod decrypt;
mod detached;
mod encrypt;
mod error;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod header;
mod key;
mod opener;
mod seal_ahead;
mod signature;
mod suite;
pub mod text;

pub use context::{EncryptionContext, PUBLIC_KEY_FIELD, RESERVED_PREFIX};
pub use decrypt::{DecryptOptions, Decryptor, VerifiedHeader, DEFAULT_MAX_UNFRAMED};
pub use detached::DetachedMessage;
pub use encrypt::{EncryptOptions, EncryptionMaterials, Encryptor, PendingEncryption};
pub use error::{Error, Result};
pub use frame::Parallelism;
pub use header::{
    ContentType, Header, HeaderLimits, ParsedHeader, DEFAULT_FRAME_LEN, DEFAULT_MAX_READ_FRAME_LEN,
    FINAL_FRAME_OVERHEAD, IV_LEN, MAX_WRITE_FRAME_LEN, REGULAR_FRAME_OVERHEAD, TAG_LEN,
};
/// AWS-LC's MD5, for protocol checksums only (S3 ETags and `Content-MD5`; see `hyok_evp`).
pub use hyok_evp::{Md5, MD5_LEN};
pub use key::{DataKey, EncryptedDataKey};
pub use opener::{FrameOpener, OpenedFrame};
pub use signature::MessageSigner;
pub use suite::{AlgorithmSuite, CommitmentPolicy, Kdf, SignatureAlgorithm};

#[cfg(test)]
mod tests;
