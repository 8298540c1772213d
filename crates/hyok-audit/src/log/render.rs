//! Rendering queued events as record lines.

use std::collections::HashMap;
use std::time::Duration;

use crate::event::{AdminOp, KeyOp, MessageOp};

use super::{redact_uri, Entry, EventKind};
use crate::json::{who_fragment, write_record, RecordView};
use crate::line::{cap, cap_cow, Op, Outcome, MAX_FIELD};
use crate::merkle::Hash;
use crate::who::Who;

fn suite_name(s: hyok_core::AlgorithmSuite) -> String {
    format!("0x{:04x}", s.id())
}

pub(super) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Per-writer caches that make rendering a record cheap: the process's fields rendered
/// once, redacted key URIs, suite names.
pub(super) struct Render {
    pub(super) who: Vec<u8>,
    uris: HashMap<String, String>,
    suites: Vec<(u16, String)>,
}

impl Render {
    pub(super) fn new(who: &Who) -> Self {
        Self {
            who: who_fragment(
                &who.host,
                &who.user,
                who.uid,
                who.pid,
                who.identity.as_deref(),
            ),
            uris: HashMap::new(),
            suites: Vec::new(),
        }
    }

    fn learn_uri(&mut self, uri: &str) {
        if !self.uris.contains_key(uri) {
            if self.uris.len() >= 1024 {
                self.uris.clear();
            }
            self.uris
                .insert(uri.to_owned(), cap(&redact_uri(uri), MAX_FIELD));
        }
    }

    fn learn_suite(&mut self, s: hyok_core::AlgorithmSuite) {
        if !self.suites.iter().any(|(id, _)| *id == s.id()) {
            self.suites.push((s.id(), suite_name(s)));
        }
    }

    fn uri(&self, uri: &str) -> &str {
        self.uris.get(uri).map_or("", String::as_str)
    }

    fn suite(&self, s: hyok_core::AlgorithmSuite) -> &str {
        self.suites
            .iter()
            .find(|(id, _)| *id == s.id())
            .map_or("", |(_, n)| n.as_str())
    }

    /// Append the record line of `e` (no newline) to `buf`.
    pub(super) fn entry(&mut self, e: &Entry, seq: u64, prev: &Hash, buf: &mut Vec<u8>) {
        match &e.kind {
            EventKind::Key(k) => {
                self.learn_uri(&k.key.uri);
                self.learn_suite(k.suite);
            }
            EventKind::Message(m) => {
                for k in m.keys.iter().take(MAX_KEYS) {
                    self.learn_uri(k);
                }
                if let Some(s) = m.suite {
                    self.learn_suite(s);
                }
            }
            EventKind::Admin(a) => {
                if let Some(k) = &a.key {
                    self.learn_uri(k);
                }
            }
        }
        let this = &*self;
        let outcome = |err: Option<&'static str>| {
            if err.is_some() {
                Outcome::Error
            } else {
                Outcome::Ok
            }
        };
        let mut view = RecordView {
            seq,
            time: e.time,
            op: Op::Encrypt,
            outcome: Outcome::Ok,
            error: None,
            key: None,
            keys: &[],
            backend: None,
            suite: None,
            ctx_sha256: None,
            edk_sha256: None,
            message_id: None,
            subject: None,
            bytes: None,
            detail: None,
            torn_offset: None,
            torn_len: None,
            torn_sha256: None,
            duration_us: 0,
            who: &this.who,
            prev,
        };
        let subject;
        let detail;
        let keys: Vec<&str>;
        match &e.kind {
            EventKind::Key(k) => {
                view.op = match k.op {
                    KeyOp::Generate => Op::Generate,
                    KeyOp::Wrap => Op::Wrap,
                    KeyOp::Unwrap => Op::Unwrap,
                    KeyOp::CacheHitEncrypt => Op::CacheHitEncrypt,
                    KeyOp::CacheHitDecrypt => Op::CacheHitDecrypt,
                };
                view.outcome = outcome(k.error);
                view.error = k.error;
                view.key = Some(this.uri(&k.key.uri));
                view.backend = Some(k.key.backend);
                view.suite = Some(this.suite(k.suite));
                view.ctx_sha256 = Some(&k.context_sha256);
                view.edk_sha256 = k.edk_sha256.as_ref();
                view.message_id = k.message_id.as_deref().map(cap_bytes);
                subject = k.subject.as_deref().map(|s| cap_cow(s, MAX_FIELD));
                view.subject = subject.as_deref();
                view.duration_us = micros(k.duration);
            }
            EventKind::Message(m) => {
                view.op = match m.op {
                    MessageOp::Encrypt => Op::Encrypt,
                    MessageOp::Decrypt => Op::Decrypt,
                };
                view.outcome = outcome(m.error);
                view.error = m.error;
                keys = m.keys.iter().take(MAX_KEYS).map(|k| this.uri(k)).collect();
                view.keys = &keys;
                view.suite = m.suite.map(|s| this.suite(s));
                view.ctx_sha256 = m.context_sha256.as_ref();
                view.message_id = m.message_id.as_deref().map(cap_bytes);
                subject = m.subject.as_deref().map(|s| cap_cow(s, MAX_FIELD));
                view.subject = subject.as_deref();
                view.bytes = m.bytes;
                view.duration_us = micros(m.duration);
            }
            EventKind::Admin(a) => {
                view.op = match a.op {
                    AdminOp::KeyNew => Op::KeyNew,
                    AdminOp::KeyRotate => Op::KeyRotate,
                    AdminOp::KeyDestroy => Op::KeyDestroy,
                    AdminOp::PolicyRefusal => Op::PolicyRefusal,
                    AdminOp::EscrowCheck => Op::EscrowCheck,
                    AdminOp::PolicyDecision => Op::PolicyDecision,
                    AdminOp::ServiceRequest => Op::ServiceRequest,
                };
                view.outcome = outcome(a.error);
                view.error = a.error;
                view.key = a.key.as_deref().map(|k| this.uri(k));
                subject = a.subject.as_deref().map(|s| cap_cow(s, MAX_FIELD));
                view.subject = subject.as_deref();
                view.message_id = a.message_id.as_deref().map(cap_bytes);
                detail = a.detail.as_deref().map(|s| cap_cow(s, MAX_FIELD));
                view.detail = detail.as_deref();
                view.duration_us = micros(a.duration);
            }
        }
        write_record(buf, &view);
    }
}

/// Key URIs recorded per message at most.
const MAX_KEYS: usize = 64;

/// Message ids are 16 or 32 bytes; anything longer is cut (they come from messages).
fn cap_bytes(b: &[u8]) -> &[u8] {
    &b[..b.len().min(64)]
}
