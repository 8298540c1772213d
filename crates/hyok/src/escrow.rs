//! The escrow drill (`hyok key verify-escrow`): proves, object by object, that the session's
//! keys (say the offline escrow key, or a quorum of key groups) open each message's data
//! key, before the day that is needed.
//!
//! For each object only the header is fetched (a ranged read); the keys unwrap its data key
//! and the header's key commitment and authentication tag are verified with it, which
//! proves the key is the message's. No frame of the payload is read or decrypted and
//! nothing is written; the data key is dropped (zeroized) at once. Every check is recorded
//! in the audit log (`escrow-check`, with the object and its outcome) besides the key
//! manager's own record of each key-store call.

use std::time::Instant;

use futures::StreamExt as _;
use hyok_core::EncryptionContext;
use hyok_keystore::observe::{AdminEvent, AdminOp, AuditSink};
use hyok_keystore::OpLabel;
use hyok_store::{ObjectInfo, Store, StoreUrl};
use tokio::runtime::Handle;

use crate::objects::{edk_label, Catalog};
use crate::{Client, Error, ErrorClass, Result, Session, Settings};

/// Most objects one drill samples from a listing (`--sample`).
pub const MAX_SAMPLE: usize = 1_000_000;

/// What the drill found for one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The keys open the message's data key (commitment and header tag verified).
    Opens,
    /// The message has no wrapped data key for any of the keys (`wrapped_by` lists the
    /// keys it has, escaped).
    Missing {
        /// `PROVIDER/KEY-NAME` of each wrapped data key the message carries.
        wrapped_by: Vec<String>,
    },
    /// A key matched but did not open it (tampered, wrong context, store down …).
    Fails {
        /// The one-line reason.
        reason: String,
    },
    /// The object is not a message hyok reads (foreign file, broken header).
    NotAMessage {
        /// The one-line reason.
        reason: String,
    },
}

impl Verdict {
    /// Whether the keys open this object.
    pub fn ok(&self) -> bool {
        matches!(self, Self::Opens)
    }

    /// A short word for reports: `ok`, `missing`, `failed`, `not-a-message`.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Opens => "ok",
            Self::Missing { .. } => "missing",
            Self::Fails { .. } => "failed",
            Self::NotAMessage { .. } => "not-a-message",
        }
    }
}

/// The drill's finding for one object.
#[derive(Clone, Debug)]
pub struct Finding {
    /// The object.
    pub object: StoreUrl,
    /// What was found.
    pub verdict: Verdict,
}

/// Counts of a whole drill.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrillSummary {
    /// Objects checked.
    pub checked: u64,
    /// Objects the keys open.
    pub opens: u64,
    /// Objects without a wrapped data key for the keys.
    pub missing: u64,
    /// Objects a key matched but did not open.
    pub failed: u64,
    /// Objects that are not messages.
    pub not_messages: u64,
}

impl DrillSummary {
    fn add(&mut self, v: &Verdict) {
        self.checked += 1;
        match v {
            Verdict::Opens => self.opens += 1,
            Verdict::Missing { .. } => self.missing += 1,
            Verdict::Fails { .. } => self.failed += 1,
            Verdict::NotAMessage { .. } => self.not_messages += 1,
        }
    }

    /// Whether every checked object opens (and at least one was checked).
    pub fn all_open(&self) -> bool {
        self.checked > 0 && self.opens == self.checked
    }
}

/// An escrow drill over the objects of one store, with a session's keys.
pub struct EscrowDrill<'a> {
    session: &'a Session,
    client: Client,
    catalog: Catalog,
    context: EncryptionContext,
    keys: String,
    rt: Handle,
}

impl Session {
    /// A drill over `store` with this session's keys. `context` holds pairs the messages
    /// were encrypted with but do not store (usually empty).
    pub fn escrow_drill(
        &self,
        store: Store,
        context: EncryptionContext,
        rt: Handle,
    ) -> Result<EscrowDrill<'_>> {
        let client = self.client(Settings::default())?;
        let k = client.keys().keyring().keys();
        let keys = k
            .iter()
            .map(|k| k.info().uri.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(EscrowDrill {
            session: self,
            client,
            catalog: Catalog::new(store, rt.clone()),
            context,
            keys,
            rt,
        })
    }
}

impl EscrowDrill<'_> {
    /// Check every object at `url` (one object, or every object below a prefix), or a
    /// uniformly random `sample` of them, calling `each` with every finding as it is made.
    pub fn run(
        &self,
        url: &StoreUrl,
        sample: Option<usize>,
        mut each: impl FnMut(&Finding),
    ) -> Result<DrillSummary> {
        let mut summary = DrillSummary::default();
        let single = if url.is_folder() || url.key().is_empty() {
            None
        } else {
            self.rt.block_on(self.catalog.store().try_head(url))?
        };
        if let Some(info) = single {
            let f = self.check(&info);
            summary.add(&f.verdict);
            each(&f);
            return Ok(summary);
        }
        let mut listing = self.catalog.store().list(url);
        match sample {
            None => {
                while let Some(info) = self.rt.block_on(listing.next()) {
                    let f = self.check(&info?);
                    summary.add(&f.verdict);
                    each(&f);
                }
            }
            Some(n) => {
                let n = n.clamp(1, MAX_SAMPLE);
                // Reservoir sampling: every object is equally likely to be picked, in
                // memory for `n` objects whatever the size of the listing.
                let mut picked: Vec<ObjectInfo> = Vec::with_capacity(n.min(4096));
                let mut seen: u64 = 0;
                while let Some(info) = self.rt.block_on(listing.next()) {
                    let info = info?;
                    seen += 1;
                    if picked.len() < n {
                        picked.push(info);
                    } else {
                        let j = random_below(seen)?;
                        if (j as usize) < n {
                            picked[j as usize] = info;
                        }
                    }
                }
                for info in &picked {
                    let f = self.check(info);
                    summary.add(&f.verdict);
                    each(&f);
                }
            }
        }
        Ok(summary)
    }

    /// Check one object: read its header, open its data key with the keys, verify the
    /// header with it; record the outcome.
    pub fn check(&self, info: &ObjectInfo) -> Finding {
        let started = Instant::now();
        let subject = info.url.to_string();
        let (verdict, message_id) = match self.catalog.read_header(info) {
            Err(e) => (
                Verdict::NotAMessage {
                    reason: e.to_string(),
                },
                None,
            ),
            Ok(parsed) => {
                let id = parsed.header.message_id.clone();
                let labels: Vec<String> = parsed.header.edks.iter().map(edk_label).collect();
                let label = OpLabel {
                    message_id: None,
                    subject: Some(subject.clone()),
                };
                let v = match self
                    .rt
                    .block_on(self.client.open(parsed, &self.context, &label))
                {
                    // The verified header (and the key inside it) is dropped here.
                    Ok(_verified) => Verdict::Opens,
                    Err(Error::KeyStore(hyok_keystore::Error::NoMatchingKey { .. })) => {
                        Verdict::Missing { wrapped_by: labels }
                    }
                    Err(e) => Verdict::Fails {
                        reason: e.to_string(),
                    },
                };
                (v, Some(id))
            }
        };
        if let Some(sink) = self.session.audit_sink() {
            let error = match &verdict {
                Verdict::Opens => None,
                Verdict::Missing { .. } => Some(ErrorClass::WrongKey.as_str()),
                Verdict::Fails { .. } => Some(ErrorClass::UnwrapFailed.as_str()),
                Verdict::NotAMessage { .. } => Some(ErrorClass::Format.as_str()),
            };
            sink.admin(AdminEvent {
                op: AdminOp::EscrowCheck,
                key: Some(self.keys.clone()),
                subject: Some(subject),
                message_id,
                detail: Some(verdict.word().to_owned()),
                error,
                duration: started.elapsed(),
            });
        }
        Finding {
            object: info.url.clone(),
            verdict,
        }
    }
}

/// A uniformly random number in `0..n` (n >= 1), from the system CSPRNG (rejection
/// sampling, no modulo bias).
fn random_below(n: u64) -> Result<u64> {
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let mut b = [0u8; 8];
        aws_lc_rs::rand::fill(&mut b)
            .map_err(|_| Error::Config("the system random number generator failed".into()))?;
        let v = u64::from_le_bytes(b);
        if v < zone {
            return Ok(v % n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_below_stays_in_range_and_covers_it() {
        let mut seen = [false; 5];
        for _ in 0..500 {
            let v = random_below(5).unwrap();
            assert!(v < 5);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|s| *s), "{seen:?}");
        assert_eq!(random_below(1).unwrap(), 0);
    }
}
