//! Bulk re-encryption (`hyok reencrypt`): objects move to other master keys, another branch
//! key version, another suite or frame length, or off message format 1, by full
//! re-encryption. Every object gets a new message: a new data key and message id, never a
//! second header for an old message (`docs/DESIGN.md`, "No second header for a message").
//!
//! - [`Target::probe`] learns what "done" looks like: the EDK labels (and branch key
//!   versions) the target keys produce, the suite, the frame length.
//! - [`examine`] reads one object's header (a ranged GET pinned to its entity tag) and says
//!   which keys, versions and suite it has and whether it already is on the target. A re-run
//!   after any interruption therefore continues where the last one stopped: objects already
//!   on the target are skipped, the rest are re-encrypted.
//! - [`reencrypt_one`] streams one object through decryption and encryption into a
//!   conditional replacement: the new object replaces the old only while the old is
//!   unchanged (S3 `If-Match` on its entity tag; local folders: compare, then rename). A
//!   concurrent writer's object is left alone and reported as [`Outcome::Changed`].
//! - [`shard_of`] splits a keyspace deterministically among N workers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Read};
use std::time::{Duration, Instant};

use hyok_core::{AlgorithmSuite, ParsedHeader, RESERVED_PREFIX};
use hyok_store::ObjectInfo;

use crate::branch::{edk_version, VersionId};
use crate::objects::{
    check_location, edk_label, Catalog, Objects, Source, CTX_BUCKET, CTX_KEY, FIRST_READ,
    META_SOURCE_MTIME,
};
use crate::{Client, EncryptionContext, Error, OpLabel, Result};

/// What an object on the target keys and settings looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// EDK labels (`PROVIDER/KEY-NAME`) of a new message, sorted.
    pub labels: BTreeSet<String>,
    /// Branch key versions a new message is wrapped under (empty without branch keys).
    pub versions: BTreeSet<VersionId>,
    /// Suite of new messages.
    pub suite: AlgorithmSuite,
    /// Frame length of new messages, when it counts (given explicitly).
    pub frame_length: Option<u32>,
}

impl Target {
    /// Ask the target keys for one set of encryption materials (one data key, dropped) and
    /// note what their EDKs look like. `frame_length`: compare frame lengths too.
    pub async fn probe(client: &Client, frame_length: Option<u32>) -> Result<Self> {
        let ctx: EncryptionContext = [("hyok-reencrypt-probe", "1")].into_iter().collect();
        let label = OpLabel {
            subject: Some("reencrypt: target keys".into()),
            ..Default::default()
        };
        let m = client
            .encryption_materials(&ctx, &BTreeSet::new(), 0, &label)
            .await?;
        let suite = client.settings().suite;
        let key_len = suite.key_len();
        Ok(Self {
            labels: m.edks().iter().map(edk_label).collect(),
            versions: m
                .edks()
                .iter()
                .filter_map(|e| edk_version(e, key_len))
                .collect(),
            suite,
            frame_length,
        })
    }
}

/// One object as [`examine`] found it.
#[derive(Clone, Debug)]
pub struct ObjectState {
    /// The object (its entity tag pins what was examined).
    pub info: ObjectInfo,
    /// EDK labels, sorted.
    pub labels: BTreeSet<String>,
    /// Branch key versions the object needs.
    pub versions: BTreeSet<VersionId>,
    /// Its suite.
    pub suite: AlgorithmSuite,
    /// Its frame length (0: non-framed).
    pub frame_length: u32,
    /// Plaintext bytes, when the layout tells (unsigned framed messages).
    pub plaintext_len: Option<u64>,
    /// Whether it already is on the target.
    pub current: bool,
    /// The whole stored object, when examining it fetched all of it (small objects): the
    /// re-encryption decrypts these bytes instead of fetching them again.
    whole: Option<Vec<u8>>,
}

impl ObjectState {
    /// Message format version (1 or 2).
    pub fn format(&self) -> u8 {
        self.suite.message_format_version()
    }
}

/// Which objects to re-encrypt (beyond the location prefix).
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Only objects with an EDK whose label starts with one of these (`PROVIDER/KEY`).
    pub keys: Vec<String>,
    /// Only objects under one of these branch key versions.
    pub versions: Vec<VersionId>,
    /// Only objects of one of these suites.
    pub suites: Vec<AlgorithmSuite>,
    /// Re-encrypt even objects already on the target.
    pub force: bool,
}

impl Selection {
    /// Whether `s` is selected (before the "already current" test).
    pub fn matches(&self, s: &ObjectState) -> bool {
        (self.keys.is_empty()
            || s.labels
                .iter()
                .any(|l| self.keys.iter().any(|k| l.starts_with(k.as_str()))))
            && (self.versions.is_empty() || self.versions.iter().any(|v| s.versions.contains(v)))
            && (self.suites.is_empty() || self.suites.contains(&s.suite))
    }

    /// Whether `s` is to be re-encrypted.
    pub fn wants(&self, s: &ObjectState) -> bool {
        self.matches(s) && (self.force || !s.current)
    }
}

/// Read an object's header and describe it; `Ok(None)` when it is not an ESDK message.
pub fn examine(
    catalog: &Catalog,
    mut info: ObjectInfo,
    target: &Target,
) -> Result<Option<ObjectState>> {
    if info.size == 0 {
        return Ok(None);
    }
    // One GET: the object's first bytes with its entity tag and metadata as of that read, so
    // what is examined here and the object replaced later are the same version (the
    // replacement is conditional on this tag) without a HEAD; some stores (s3s-fs) list no
    // entity tags at all. A header longer than the first read is read on, pinned to the tag.
    let prefix = catalog
        .runtime()
        .block_on(catalog.store().get_prefix(&info.url, FIRST_READ))?;
    if prefix.info.e_tag.is_none() {
        return Err(Error::Config(format!(
            "{}: the store reports no entity tag, so a replacement cannot be made conditional",
            info.url
        )));
    }
    let parsed = match catalog.header_of(&prefix) {
        Ok(p) => p,
        Err(Error::Format(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let whole = prefix.is_whole().then(|| prefix.bytes.to_vec());
    info = prefix.info;
    let mut s = state(info, &parsed, target);
    s.whole = whole;
    Ok(Some(s))
}

fn state(info: ObjectInfo, parsed: &ParsedHeader, target: &Target) -> ObjectState {
    let h = &parsed.header;
    let key_len = h.suite.key_len();
    let labels: BTreeSet<String> = h.edks.iter().map(edk_label).collect();
    let versions: BTreeSet<VersionId> = h
        .edks
        .iter()
        .filter_map(|e| edk_version(e, key_len))
        .collect();
    let plaintext_len = if h.suite.signature().is_none() {
        info.size
            .checked_sub(parsed.wire_len() as u64)
            .and_then(|b| h.framed_layout(b))
            .map(|(n, last)| n * u64::from(h.frame_length) + last)
    } else {
        None
    };
    let current = labels == target.labels
        && versions == target.versions
        && h.suite == target.suite
        && target.frame_length.is_none_or(|f| f == h.frame_length);
    ObjectState {
        info,
        labels,
        versions,
        suite: h.suite,
        frame_length: h.frame_length,
        plaintext_len,
        current,
        whole: None,
    }
}

/// What re-encrypting one object did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Replaced by a new message.
    Reencrypted {
        /// Plaintext bytes.
        plaintext_len: u64,
        /// Bytes of the new object.
        stored_len: u64,
    },
    /// Another writer changed (or deleted) the object since it was examined; left alone.
    Changed,
}

/// Re-encrypt one examined object: decrypt it with `old`'s keys (the entity tag pins the
/// version read), encrypt the plaintext under `new`'s keys and settings as a new message
/// with the same stored encryption context, and replace the object only if it is
/// unchanged. `bind`: refuse objects bound to no location (as downloads do). Blocking: call
/// from a thread that is not a runtime worker.
pub fn reencrypt_one(
    old: &Objects,
    new: &Objects,
    state: &ObjectState,
    reproduced: &EncryptionContext,
    bind: bool,
) -> Result<Outcome> {
    match replace(old, new, state, reproduced, bind) {
        Err(Error::Store(hyok_store::Error::Changed(_) | hyok_store::Error::NotFound(_))) => {
            Ok(Outcome::Changed)
        }
        // Reads are pinned to the entity tag, so another writer's replacement should show as
        // 412 (`Changed`) above; servers that ignore `If-Match` on GET (s3s-fs) instead return
        // the new object's bytes (a message that fails authentication) or 416 for a range
        // past its shorter end. Nothing was replaced either way (the upload is conditional):
        // if the object's tag moved, it is the same outcome.
        Err(e) => {
            let now = old
                .runtime()
                .block_on(old.store().try_head(&state.info.url));
            match now {
                Ok(Some(i)) if i.e_tag.is_some() && i.e_tag == state.info.e_tag => Err(e),
                Ok(_) => Ok(Outcome::Changed),
                Err(_) => Err(e),
            }
        }
        ok => ok,
    }
}

fn replace(
    old: &Objects,
    new: &Objects,
    state: &ObjectState,
    reproduced: &EncryptionContext,
    bind: bool,
) -> Result<Outcome> {
    let url = &state.info.url;
    // What examining read (one GET): the metadata to carry over and the entity tag that pins
    // what is read here and makes the replacement conditional.
    let info = &state.info;
    let Some(listed_tag) = info.e_tag.clone() else {
        return Err(Error::Config(format!(
            "{url}: the store reports no entity tag, so a replacement cannot be made conditional"
        )));
    };
    // A small object examining fetched whole (pinned to the same entity tag) is not fetched
    // again.
    let (body, capacity): (Box<dyn Read + Send + '_>, usize) = match &state.whole {
        Some(bytes) if bytes.len() as u64 == info.size => {
            (Box::new(std::io::Cursor::new(&bytes[..])), 8 << 10)
        }
        _ => (
            Box::new(old.store().reader(
                old.runtime(),
                url,
                0..info.size,
                Some(listed_tag.clone()),
                old.transfer(),
            )),
            1 << 20,
        ),
    };
    let mut reader = BufReader::with_capacity(capacity, body);
    let parsed = old.client().read_header(&mut reader)?;
    check_location(url, &parsed.header, bind)?;
    // The plaintext length examining derived from this same version's header (the reads are
    // pinned to its entity tag; unsigned framed messages only).
    let plaintext_len = state.plaintext_len;
    let stored = parsed.header.context.clone();
    if let Some((k, _)) = reproduced.iter().find(|(k, _)| !stored.contains_key(k)) {
        return Err(Error::Config(format!(
            "{url}: context key {k:?} is not stored in the message (required-but-not-stored context is not carried over by reencrypt)"
        )));
    }
    let bound = stored.contains_key(CTX_BUCKET) || stored.contains_key(CTX_KEY);
    let mut context = EncryptionContext::new();
    for (k, v) in stored.iter() {
        if k != CTX_BUCKET && k != CTX_KEY && !k.starts_with(RESERVED_PREFIX) {
            context.insert(k, v);
        }
    }
    let label = OpLabel {
        subject: Some(format!("{url} (reencrypt)")),
        ..Default::default()
    };
    let verified = old
        .runtime()
        .block_on(old.client().open(parsed, reproduced, &label))?;
    let mut plaintext = old.client().decryptor(verified, reader);
    let source = Source {
        len: plaintext_len,
        mtime: info
            .metadata
            .get(META_SOURCE_MTIME)
            .and_then(|t| crate::objects::decode_time(t))
            .or_else(|| {
                (old.store().backend() == hyok_store::Backend::Local).then_some(info.last_modified)
            }),
        context,
    };
    let new = new.clone().bind_location(bound);
    let r = new.put_if_match(url, &mut plaintext, &source, &listed_tag)?;
    Ok(Outcome::Reencrypted {
        plaintext_len: r.plaintext_len,
        stored_len: r.stored_len,
    })
}

/// The shard (0 ≤ shard < `n`) of an object key: FNV-1a 64 of the key modulo `n`. Stable
/// across runs, machines and versions, so `--shard I/N` workers split a keyspace with no
/// coordination (not a security function).
pub fn shard_of(key: &str, n: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % n.max(1)
}

/// Paces work to at most `per_sec` starts per second, shared by every worker.
#[derive(Debug)]
pub struct Pacer {
    gap: Duration,
    next: std::sync::Mutex<Instant>,
}

impl Pacer {
    /// At most `per_sec` (> 0) starts per second.
    pub fn new(per_sec: f64) -> Self {
        Self {
            gap: Duration::from_secs_f64(1.0 / per_sec.max(1e-3)),
            next: std::sync::Mutex::new(Instant::now()),
        }
    }

    /// Block until the next start is due.
    pub fn wait(&self) {
        let due = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let due = (*next).max(now);
            *next = due + self.gap;
            due
        };
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

/// One group of an [`Inventory`]: wrapping key labels, branch versions, suite id.
pub type GroupKey = (Vec<String>, Vec<String>, u16);

/// What an [`Inventory`] counts per group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCount {
    /// Objects.
    pub objects: u64,
    /// Stored bytes.
    pub bytes: u64,
    /// Objects already on the target.
    pub current: u64,
}

/// An inventory: objects grouped by (keys, branch versions, suite), with counts and bytes.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// Counts per group.
    pub groups: BTreeMap<GroupKey, GroupCount>,
}

impl Inventory {
    /// Count one object.
    pub fn add(&mut self, s: &ObjectState) {
        let key = (
            s.labels.iter().cloned().collect(),
            s.versions.iter().map(|v| v.to_string()).collect(),
            s.suite.id(),
        );
        let e = self.groups.entry(key).or_default();
        e.objects += 1;
        e.bytes += s.info.size;
        e.current += u64::from(s.current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_cover_the_keyspace() {
        // FNV-1a 64 test vector: "a" → 0xaf63dc4c8601ec8c.
        assert_eq!(shard_of("a", u64::MAX), 0xaf63_dc4c_8601_ec8c);
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            counts[shard_of(&format!("obj/{i}"), 4) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
        assert_eq!(shard_of("x", 1), 0);
    }
}
