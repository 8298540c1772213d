//! # hyok-audit
//!
//! A tamper-evident audit log of every key use by hyok, verifiable offline by an auditor
//! holding only a public key.
//!
//! - **Records** ([`Record`]): one JSON line per key use (generate, wrap, unwrap, data-key
//!   cache hit), per message (encrypt, decrypt) and per key lifecycle step or policy
//!   refusal: time, host, OS user, configured identity, key URI without secrets, SHA-256
//!   of the encryption context and of the EDK, message id, file or object name, outcome,
//!   duration. Never key material, plaintext, PINs or tokens.
//! - **Structure**: records are the leaves of an RFC 6962 Merkle tree ([`merkle`]), so
//!   inclusion and consistency proofs come with it; each record also names its
//!   predecessor's hash and its index, so verification can say *which* record changed.
//! - **Checkpoints** ([`Checkpoint`]): signed statements "the first N records have root R"
//!   written at the end of every append, so no record waits for its signature; a writer
//!   refuses to sign over records it finds without one (or a chain or checkpoint that
//!   does not verify), and verification fails on them unless told otherwise. Signers
//!   implement [`CheckpointSigner`] (a PEM key file: [`PemSigner`]; an HSM key: the facade
//!   plugs one in), verifiers [`CheckpointVerifier`] ([`PublicKey`]).
//! - **Concurrency and durability**: any number of processes append to one file under an
//!   `flock`, in group commits; a crash leaves at most a partial last line, which the next
//!   writer keeps and records ([`AuditLog`]).
//! - **Verification** ([`verify_file`]): names the first record or checkpoint that does not
//!   hold, and with a trusted checkpoint proves the log still extends it.
//!
//! ```
//! use std::sync::Arc;
//! use hyok_audit::{verify_file, AuditLog, LogConfig, PemSigner, SignatureAlgorithm, VerifyOptions};
//! use hyok_audit::{AdminEvent, AdminOp};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("audit.log");
//! let signer = Arc::new(PemSigner::generate(SignatureAlgorithm::EcdsaP256Sha256).unwrap());
//! let public = signer.public_key().unwrap();
//!
//! let log = AuditLog::open(LogConfig::new(&path), signer).unwrap();
//! log.admin(AdminEvent {
//!     op: AdminOp::KeyNew,
//!     key: Some("raw-aes:ns/key-1".into()),
//!     subject: None,
//!     message_id: None,
//!     detail: Some("AES-256".into()),
//!     error: None,
//!     duration: Default::default(),
//! });
//! log.close().unwrap(); // writes the exit checkpoint
//!
//! let summary = verify_file(&path, &VerifyOptions::new(vec![&public])).unwrap();
//! assert_eq!((summary.records, summary.checkpoints, summary.unsigned_tail), (1, 1, 0));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod event;
#[doc(hidden)]
pub mod fuzzing;
mod io;
mod json;
mod line;
mod log;
pub mod merkle;
mod read;
mod sign;
mod time;
mod verify;
mod who;

pub use error::{Error, Result};
pub use event::{AdminEvent, AdminOp, KeyEvent, KeyOp, KeyRef, MessageEvent, MessageOp};
pub use line::{
    line_hash, parse_line, Base64, Checkpoint, Hex32, HexBytes, Line, Op, Outcome, Record,
    CHECKPOINT_HEADER, MAX_FIELD, MAX_LINE,
};
pub use log::{redact_uri, AuditLog, CloseSummary, LogConfig};
pub use read::{describe, Filter, LogEntry, LogReader, OpFilter};
pub use sign::{
    CheckpointSigner, CheckpointVerifier, KeyId, PemSigner, PublicKey, SignatureAlgorithm,
};
pub use time::Timestamp;
pub use verify::{
    verify_file, verify_reader, CheckpointInfo, Failure, FailureKind, Summary, TornInfo,
    VerifyOptions,
};
