//! Every request leaves one line in the operational log (`tracing`, target `hyok::xks`)
//! with its request metadata (once the body was read), outcome and time, and one record in
//! the tamper-evident audit log when one is configured: Encrypt and Decrypt that reached a
//! key are `encrypt`/`decrypt` records, refusals (authentication, allow-lists)
//! `policy-refusal` records, and everything else (GetKeyMetadata, GetHealthStatus, requests
//! refused before a key, including unknown paths and methods) `service-request` records.
//! Plaintext, keys and secrets never go into either.

use std::sync::Arc;
use std::time::Duration;

use hyok::audit::{AdminEvent, AdminOp, AuditSink, LogSink, MessageEvent, MessageOp};

use crate::api::RequestMetadata;
use crate::error::ErrorName;
use crate::route::KeyOp;

/// What one request did.
#[derive(Debug, Default)]
pub struct Outcome<'a> {
    /// Store name.
    pub store: &'a str,
    /// Operation (`health`, `metadata`, `encrypt`, `decrypt`, or `-` when unknown).
    pub op: &'a str,
    /// External key id.
    pub key_id: Option<&'a str>,
    /// The hyok key URI used.
    pub key_uri: Option<Arc<str>>,
    /// Request metadata, when the body was read.
    pub metadata: Option<&'a RequestMetadata>,
    /// SHA-256 of the AAD handed to the key store.
    pub aad_sha256: Option<[u8; 32]>,
    /// Plaintext or ciphertext bytes.
    pub bytes: Option<u64>,
    /// The access key id that signed.
    pub signer: Option<&'a str>,
    /// The error, if any, and its message.
    pub error: Option<(ErrorName, &'a str)>,
    /// What a successful request answered, when worth keeping (health: each backend's
    /// status).
    pub note: Option<String>,
    /// Time from receipt to answer.
    pub duration: Duration,
}

/// Write the records of one request.
pub fn request(audit: Option<&LogSink>, o: &Outcome<'_>) {
    let meta = o
        .metadata
        .map(RequestMetadata::describe)
        .unwrap_or_default();
    let error = o.error.map(|(n, _)| n.as_str()).unwrap_or("-");
    tracing::info!(
        target: "hyok::xks",
        store = o.store,
        op = o.op,
        key = o.key_id.unwrap_or("-"),
        signer = o.signer.unwrap_or("-"),
        error,
        micros = o.duration.as_micros() as u64,
        "{meta}"
    );
    let Some(sink) = audit else { return };
    let subject = format!(
        "xks {}/{} {}",
        o.store,
        o.key_id.unwrap_or("-"),
        if meta.is_empty() { "-" } else { &meta }
    );
    let message_op = match o.op {
        op if op == KeyOp::Encrypt.as_str() => Some(MessageOp::Encrypt),
        op if op == KeyOp::Decrypt.as_str() => Some(MessageOp::Decrypt),
        _ => None,
    };
    match (message_op, &o.key_uri) {
        (Some(op), Some(uri)) => sink.message(MessageEvent {
            op,
            keys: vec![uri.clone()],
            suite: None,
            context_sha256: o.aad_sha256,
            message_id: None,
            subject: Some(subject),
            bytes: o.bytes,
            error: o.error.map(|(n, _)| n.as_str()),
            duration: o.duration,
        }),
        _ => {
            let refusal = matches!(
                o.error,
                Some((ErrorName::AuthenticationFailed | ErrorName::AccessDenied, _))
            );
            let detail = match (o.error, &o.note) {
                (Some((name, why)), _) => format!("{} {}: {why}", o.op, name.as_str()),
                (None, Some(note)) => format!("{}: {note}", o.op),
                (None, None) => o.op.to_owned(),
            };
            sink.admin(AdminEvent {
                op: if refusal {
                    AdminOp::PolicyRefusal
                } else {
                    AdminOp::ServiceRequest
                },
                key: o.key_uri.as_deref().map(str::to_owned),
                subject: Some(subject),
                message_id: None,
                detail: Some(detail),
                error: o.error.map(|(n, _)| n.as_str()),
                duration: o.duration,
            });
        }
    }
}
