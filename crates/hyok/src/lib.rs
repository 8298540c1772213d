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
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod objects;
pub mod policy;

use std::collections::BTreeSet;
use std::io::{Read, Write};

use hyok_core::PendingEncryption;
pub use hyok_core::{
    AlgorithmSuite, CommitmentPolicy, DecryptOptions, Decryptor, EncryptOptions, EncryptionContext,
    EncryptionMaterials, Encryptor, Header, HeaderLimits, Parallelism, ParsedHeader,
    VerifiedHeader,
};
pub use hyok_keystore::{KeyManager, OpLabel};
pub use hyok_store as store;

/// Errors of the facade: a format error or a key store error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Message format or crypto.
    #[error(transparent)]
    Format(#[from] hyok_core::Error),
    /// A key store.
    #[error(transparent)]
    KeyStore(#[from] hyok_keystore::Error),
    /// The audit log.
    #[error(transparent)]
    Audit(#[from] hyok_audit::Error),
    /// Object storage.
    #[error(transparent)]
    Store(#[from] hyok_store::Error),
    /// The configuration file or a setting in it.
    #[error("configuration: {0}")]
    Config(String),
    /// The residency guard refused a destination.
    #[error("residency: {0}")]
    Residency(String),
    /// A stored object's header binds it to another location (moved or renamed).
    #[error("{object} was encrypted for {bound_to}; refusing an object that was moved or renamed")]
    ObjectMoved {
        /// Where the object was read from.
        object: String,
        /// The location in its encryption context.
        bound_to: String,
    },
    /// Location binding is on and a stored object's header binds it to no location: it
    /// may be a message uploaded elsewhere without binding and swapped in.
    #[error("{object} is not bound to a location (uploaded with --no-bind-location?); refusing it while location binding is on, since any unbound message under the same key could have been put there")]
    ObjectUnbound {
        /// Where the object was read from.
        object: String,
    },
    /// An object whose name cannot be a local file name under the download directory.
    #[error("refusing to download {object:?}: its name has an empty, \".\" or \"..\" part or a NUL byte, which could write outside {root}")]
    UnsafeObjectName {
        /// The object's name below the downloaded prefix.
        object: String,
        /// The download directory.
        root: String,
    },
    /// A ranged read that cannot be served.
    #[error("{0}")]
    Range(String),
    /// Local I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Settings of a [`Client`].
#[derive(Clone, Debug)]
pub struct Settings {
    /// Suite used for new messages (committing).
    pub suite: AlgorithmSuite,
    /// Frame length and parallelism of new messages.
    pub encrypt: EncryptOptions,
    /// Which suites may be decrypted.
    pub policy: CommitmentPolicy,
    /// Limits on untrusted headers (maximum EDKs).
    pub limits: HeaderLimits,
    /// Body reading options.
    pub decrypt: DecryptOptions,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            suite: AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
            encrypt: EncryptOptions::default(),
            policy: CommitmentPolicy::default(),
            limits: HeaderLimits::default(),
            decrypt: DecryptOptions::default(),
        }
    }
}

/// Encrypts and decrypts messages with the keys of one key manager.
#[derive(Clone, Debug)]
pub struct Client {
    keys: KeyManager,
    settings: Settings,
}

impl Client {
    /// A client with default settings (suite 0x0478, 64 KiB frames, all cores,
    /// REQUIRE_ENCRYPT_REQUIRE_DECRYPT).
    pub fn new(keys: KeyManager) -> Self {
        Self {
            keys,
            settings: Settings::default(),
        }
    }

    /// Replace the settings.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The key manager.
    pub fn keys(&self) -> &KeyManager {
        &self.keys
    }

    /// Record one message operation in the audit log, if one is attached (the key uses
    /// of the message are recorded by the key manager itself).
    pub fn record_message(&self, event: audit::MessageEvent) {
        self.keys.record_message(event);
    }

    /// Record a key lifecycle step or policy refusal in the audit log, if one is attached.
    pub fn record_admin(&self, event: audit::AdminEvent) {
        self.keys.record_admin(event);
    }

    /// Key step of encryption: fix the context, have the key stores produce a data key and
    /// its EDKs. `required` names context keys authenticated but not stored in the header.
    /// `plaintext_len` (or `u64::MAX` when unknown) lets a data-key cache count bytes.
    pub async fn encryption_materials(
        &self,
        context: &EncryptionContext,
        required: &BTreeSet<String>,
        plaintext_len: u64,
        label: &OpLabel,
    ) -> Result<EncryptionMaterials> {
        let pending =
            PendingEncryption::new(self.settings.suite, context.clone(), required.clone())?;
        let mut label = label.clone();
        label.message_id = Some(pending.message_id().to_vec());
        let (dk, edks) = self
            .keys
            .encryption_materials(pending.suite(), pending.context(), plaintext_len, &label)
            .await?;
        Ok(pending.complete(dk, edks)?)
    }

    /// Streaming step of encryption: writes the header to `out` and returns the body writer.
    pub fn encryptor<W: Write>(
        &self,
        out: W,
        materials: EncryptionMaterials,
    ) -> Result<Encryptor<W>> {
        Ok(Encryptor::new(
            out,
            materials,
            self.settings.encrypt.clone(),
        )?)
    }

    /// Read a header from `input` under this client's limits.
    pub fn read_header<R: Read>(&self, input: &mut R) -> Result<ParsedHeader> {
        Ok(ParsedHeader::read(input, self.settings.limits)?)
    }

    /// Key step of decryption: check the commitment policy, unwrap one EDK, verify the key
    /// commitment and header tag. `reproduced` pairs must match the stored context or are
    /// supplied as authenticated-but-not-stored pairs.
    pub async fn open(
        &self,
        parsed: ParsedHeader,
        reproduced: &EncryptionContext,
        label: &OpLabel,
    ) -> Result<VerifiedHeader> {
        let h = &parsed.header;
        self.settings.policy.check_decrypt(h.suite)?;
        let (materials_ctx, _) = parsed.materials_context(reproduced)?;
        let mut label = label.clone();
        label.message_id = Some(h.message_id.clone());
        let dk = self
            .keys
            .decrypt_data_key(h.suite, &h.edks, &materials_ctx, &label)
            .await?;
        Ok(parsed.verify(&dk, reproduced)?)
    }

    /// Streaming step of decryption: a reader of verified plaintext.
    pub fn decryptor<R: Read>(&self, verified: VerifiedHeader, input: R) -> Decryptor<R> {
        verified.decryptor(input, self.settings.decrypt.clone())
    }
}
