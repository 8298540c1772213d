//! A bounded, in-memory data-key cache in front of any key store (ESDK caching-CMM
//! semantics).
//!
//! On encrypt, one data key (and its EDKs) is reused for several messages with the same
//! keyring, suite and encryption context, within the limits of [`CacheLimits`]: maximum age,
//! messages and plaintext bytes per data key, and entries in all. Every message still has
//! its own message id, so its content key (HKDF of data key and message id) and its key
//! commitment are its own. On decrypt, a data key unwrapped for the same EDKs and context is
//! served again while it is young enough. Entries are zeroized when evicted (the data keys
//! are [`DataKey`]s), and the cache lives only in this process's memory.
//!
//! [`crate::KeyManager::with_cache`] consults it, and every hit is reported to the audit
//! sink like a key-store call. The trade-off is written down in `docs/DESIGN.md`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyok_core::{DataKey, EncryptedDataKey};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::observe::{CacheId, CachedDecryption, CachedEncryption, DataKeyCache};

/// The limits of a [`MemoryCache`]. Deserializes from a config table such as
///
/// ```toml
/// [keyrings.hsm.cache]
/// max-age = "5m"          # seconds as a number, or "90s", "5m", "1h", "1d"
/// max-messages = 1000     # messages encrypted under one data key
/// max-bytes = "1GiB"      # plaintext bytes under one data key ("64MiB", or a number)
/// max-entries = 64        # data keys held at once
/// ```
///
/// Absent fields take the defaults of [`CacheLimits::default`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct CacheLimits {
    /// How long a data key may be reused after it was made or unwrapped.
    #[serde(deserialize_with = "de_duration")]
    pub max_age: Duration,
    /// Messages one data key may encrypt (the first included).
    pub max_messages: u64,
    /// Plaintext bytes one data key may encrypt, all messages together.
    #[serde(deserialize_with = "de_bytes")]
    pub max_bytes: u64,
    /// Data keys held at once (encrypt and decrypt entries together); the least recently
    /// used goes first.
    pub max_entries: usize,
}

impl Default for CacheLimits {
    /// Five minutes, 1,000 messages, 1 GiB, 64 entries.
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(300),
            max_messages: 1000,
            max_bytes: 1 << 30,
            max_entries: 64,
        }
    }
}

/// The ESDK's cap on messages under one data key.
pub const MAX_MESSAGES_LIMIT: u64 = 1 << 32;

impl CacheLimits {
    /// Check the limits make sense: all positive, at most 2^32 messages per data key.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(format!("data-key cache: {m}")));
        if self.max_age.is_zero() {
            return bad("max-age must be more than 0");
        }
        if self.max_messages == 0 || self.max_messages > MAX_MESSAGES_LIMIT {
            return bad("max-messages must be 1 to 4294967296");
        }
        if self.max_bytes == 0 {
            return bad("max-bytes must be more than 0");
        }
        if self.max_entries == 0 {
            return bad("max-entries must be more than 0");
        }
        Ok(())
    }
}

/// Parse a duration: seconds as a bare number, or a number with `ms`, `s`, `m`, `h` or `d`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 300, 90s, 5m, 1h)"))?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?} is too long"))
    };
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" | "min" => secs(60),
        "h" => secs(3600),
        "d" => secs(86400),
        _ => Err(format!(
            "{s:?}: unknown unit (use ms, s, m, h or d, e.g. 5m)"
        )),
    }
}

/// Parse a byte count: a number, optionally with `K`/`KiB`, `M`/`MiB`, `G`/`GiB`, `T`/`TiB`
/// (all powers of 1024), or `KB`, `MB`, `GB`, `TB` (powers of 1000).
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a byte count (e.g. 1000000, 64MiB, 1G)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit (use K, M, G, T or KiB, MiB, …)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText {
    Num(u64),
    Text(String),
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    match NumOrText::deserialize(d)? {
        NumOrText::Num(n) => Ok(Duration::from_secs(n)),
        NumOrText::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

fn de_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    match NumOrText::deserialize(d)? {
        NumOrText::Num(n) => Ok(n),
        NumOrText::Text(t) => parse_bytes(&t).map_err(serde::de::Error::custom),
    }
}

enum Value {
    Encrypt {
        data_key: DataKey,
        edks: Vec<EncryptedDataKey>,
    },
    Decrypt {
        data_key: DataKey,
        /// Keyring index of the key that unwrapped it, and index of its EDK.
        key: usize,
        edk: usize,
    },
}

struct Entry {
    value: Value,
    created: Instant,
    messages: u64,
    bytes: u64,
    tick: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<CacheId, Entry>,
    /// Least recently used first.
    lru: BTreeMap<u64, CacheId>,
    tick: u64,
}

impl Inner {
    fn remove(&mut self, id: &CacheId) {
        if let Some(e) = self.entries.remove(id) {
            self.lru.remove(&e.tick);
            // `e` drops here: its data key is zeroized.
        }
    }

    fn touch(&mut self, id: &CacheId) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(e) = self.entries.get_mut(id) {
            self.lru.remove(&e.tick);
            e.tick = tick;
            self.lru.insert(tick, id.clone());
        }
    }

    fn insert(&mut self, id: CacheId, value: Value, bytes: u64, limits: &CacheLimits) -> u64 {
        self.remove(&id);
        let mut evicted = 0;
        if self.entries.len() >= limits.max_entries {
            let now = Instant::now();
            let expired: Vec<CacheId> = self
                .entries
                .iter()
                .filter(|(_, e)| now.duration_since(e.created) >= limits.max_age)
                .map(|(k, _)| k.clone())
                .collect();
            for k in expired {
                self.remove(&k);
                evicted += 1;
            }
        }
        while self.entries.len() >= limits.max_entries {
            let Some((_, oldest)) = self.lru.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
            evicted += 1;
        }
        self.tick += 1;
        self.lru.insert(self.tick, id.clone());
        self.entries.insert(
            id,
            Entry {
                value,
                created: Instant::now(),
                messages: 1,
                bytes,
                tick: self.tick,
            },
        );
        evicted
    }
}

/// Counters of a [`MemoryCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Encryption materials served from the cache.
    pub encrypt_hits: u64,
    /// Encryptions that had to ask the key stores.
    pub encrypt_misses: u64,
    /// Data keys for decryption served from the cache.
    pub decrypt_hits: u64,
    /// Decryptions that had to ask the key stores.
    pub decrypt_misses: u64,
    /// Entries dropped (and zeroized) because they were too old, used up or least recent.
    pub evictions: u64,
    /// Entries held now.
    pub entries: usize,
}

/// The in-memory [`DataKeyCache`].
pub struct MemoryCache {
    limits: CacheLimits,
    inner: Mutex<Inner>,
    encrypt_hits: AtomicU64,
    encrypt_misses: AtomicU64,
    decrypt_hits: AtomicU64,
    decrypt_misses: AtomicU64,
    evictions: AtomicU64,
}

impl fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCache")
            .field("limits", &self.limits)
            .field("stats", &self.stats())
            .finish()
    }
}

impl MemoryCache {
    /// A cache with `limits` (checked with [`CacheLimits::validate`]).
    pub fn new(limits: CacheLimits) -> Result<Self> {
        limits.validate()?;
        Ok(Self {
            limits,
            inner: Mutex::new(Inner::default()),
            encrypt_hits: AtomicU64::new(0),
            encrypt_misses: AtomicU64::new(0),
            decrypt_hits: AtomicU64::new(0),
            decrypt_misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        })
    }

    /// The limits.
    pub fn limits(&self) -> &CacheLimits {
        &self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            encrypt_hits: self.encrypt_hits.load(Ordering::Relaxed),
            encrypt_misses: self.encrypt_misses.load(Ordering::Relaxed),
            decrypt_hits: self.decrypt_hits.load(Ordering::Relaxed),
            decrypt_misses: self.decrypt_misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            entries: self.lock().entries.len(),
        }
    }

    /// Drop (and zeroize) every entry.
    pub fn clear(&self) {
        let mut inner = self.lock();
        let n = inner.entries.len() as u64;
        inner.entries.clear();
        inner.lru.clear();
        self.evictions.fetch_add(n, Ordering::Relaxed);
    }

    fn expired(&self, e: &Entry) -> bool {
        e.created.elapsed() >= self.limits.max_age
    }

    /// Tests: make every entry `by` older (instead of sleeping).
    #[cfg(test)]
    fn age_entries(&self, by: Duration) {
        for e in self.lock().entries.values_mut() {
            e.created = e.created.checked_sub(by).unwrap_or(e.created);
        }
    }
}

impl DataKeyCache for MemoryCache {
    fn get_encrypt(&self, id: &CacheId, plaintext_len: u64) -> Option<CachedEncryption> {
        let miss = || {
            self.encrypt_misses.fetch_add(1, Ordering::Relaxed);
            None
        };
        if plaintext_len > self.limits.max_bytes {
            // Too big (or of unknown size) for any entry: leave the entries alone.
            return miss();
        }
        let mut inner = self.lock();
        let Some(e) = inner.entries.get_mut(id) else {
            return miss();
        };
        let used_up = e.messages >= self.limits.max_messages
            || e.bytes.saturating_add(plaintext_len) > self.limits.max_bytes;
        if self.expired(e) || used_up || !matches!(e.value, Value::Encrypt { .. }) {
            inner.remove(id);
            self.evictions.fetch_add(1, Ordering::Relaxed);
            return miss();
        }
        e.messages += 1;
        e.bytes += plaintext_len;
        let hit = match &e.value {
            Value::Encrypt { data_key, edks } => CachedEncryption {
                data_key: data_key.duplicate(),
                edks: edks.clone(),
            },
            Value::Decrypt { .. } => return miss(),
        };
        inner.touch(id);
        self.encrypt_hits.fetch_add(1, Ordering::Relaxed);
        Some(hit)
    }

    fn put_encrypt(
        &self,
        id: CacheId,
        data_key: &DataKey,
        edks: &[EncryptedDataKey],
        plaintext_len: u64,
    ) {
        // An entry that could never serve a second message is not worth holding.
        if self.limits.max_messages < 2 || plaintext_len >= self.limits.max_bytes {
            return;
        }
        let value = Value::Encrypt {
            data_key: data_key.duplicate(),
            edks: edks.to_vec(),
        };
        let evicted = self.lock().insert(id, value, plaintext_len, &self.limits);
        self.evictions.fetch_add(evicted, Ordering::Relaxed);
    }

    fn get_decrypt(&self, id: &CacheId) -> Option<CachedDecryption> {
        let mut inner = self.lock();
        let hit = match inner.entries.get(id) {
            Some(e) if self.expired(e) => {
                inner.remove(id);
                self.evictions.fetch_add(1, Ordering::Relaxed);
                None
            }
            Some(Entry {
                value: Value::Decrypt { data_key, key, edk },
                ..
            }) => Some(CachedDecryption {
                data_key: data_key.duplicate(),
                key: *key,
                edk: *edk,
            }),
            _ => None,
        };
        match hit {
            Some(dk) => {
                inner.touch(id);
                self.decrypt_hits.fetch_add(1, Ordering::Relaxed);
                Some(dk)
            }
            None => {
                self.decrypt_misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn put_decrypt(&self, id: CacheId, data_key: &DataKey, key: usize, edk: usize) {
        let value = Value::Decrypt {
            data_key: data_key.duplicate(),
            key,
            edk,
        };
        let evicted = self.lock().insert(id, value, 0, &self.limits);
        self.evictions.fetch_add(evicted, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> CacheId {
        CacheId([n; 32])
    }

    fn edk() -> Vec<EncryptedDataKey> {
        vec![EncryptedDataKey {
            provider_id: "p".into(),
            provider_info: b"k".to_vec(),
            ciphertext: vec![1, 2, 3],
        }]
    }

    fn cache(max_messages: u64, max_bytes: u64, max_entries: usize) -> MemoryCache {
        MemoryCache::new(CacheLimits {
            max_age: Duration::from_secs(60),
            max_messages,
            max_bytes,
            max_entries,
        })
        .unwrap()
    }

    #[test]
    fn message_limit_counts_the_first_message() {
        let c = cache(3, 1 << 20, 8);
        let dk = DataKey::new(vec![9; 32]);
        assert!(c.get_encrypt(&id(1), 10).is_none());
        c.put_encrypt(id(1), &dk, &edk(), 10);
        let hit = c.get_encrypt(&id(1), 10).unwrap();
        assert_eq!(hit.data_key.expose(), dk.expose());
        assert_eq!(hit.edks, edk());
        assert!(c.get_encrypt(&id(1), 10).is_some());
        // 3 messages used: the 4th is refused and the entry dropped.
        assert!(c.get_encrypt(&id(1), 10).is_none());
        let s = c.stats();
        assert_eq!((s.encrypt_hits, s.encrypt_misses, s.entries), (2, 2, 0));
    }

    #[test]
    fn byte_limit_and_unknown_length() {
        let c = cache(100, 100, 8);
        let dk = DataKey::new(vec![9; 32]);
        c.put_encrypt(id(1), &dk, &edk(), 40);
        // Unknown length (u64::MAX) is refused but does not evict the entry.
        assert!(c.get_encrypt(&id(1), u64::MAX).is_none());
        assert!(c.get_encrypt(&id(1), 60).is_some()); // 100 bytes: at the limit
        assert!(c.get_encrypt(&id(1), 1).is_none()); // 101 > 100
        assert_eq!(c.stats().entries, 0);
        // A message bigger than the limit is never cached.
        c.put_encrypt(id(2), &dk, &edk(), 100);
        assert_eq!(c.stats().entries, 0);
    }

    #[test]
    fn age_limit() {
        let c = MemoryCache::new(CacheLimits {
            max_age: Duration::from_secs(60),
            ..CacheLimits::default()
        })
        .unwrap();
        let dk = DataKey::new(vec![9; 32]);
        c.put_decrypt(id(1), &dk, 0, 0);
        assert!(c.get_decrypt(&id(1)).is_some());
        // Entries are aged by the test, not by the clock: no sleep, no race with a slow
        // machine.
        c.age_entries(Duration::from_secs(59));
        assert!(c.get_decrypt(&id(1)).is_some());
        c.age_entries(Duration::from_secs(1));
        assert!(c.get_decrypt(&id(1)).is_none());
        assert_eq!(c.stats().evictions, 1);
    }

    #[test]
    fn entry_limit_evicts_least_recently_used() {
        let c = cache(10, 1 << 20, 2);
        let dk = DataKey::new(vec![9; 32]);
        c.put_decrypt(id(1), &dk, 0, 0);
        c.put_decrypt(id(2), &dk, 0, 0);
        assert!(c.get_decrypt(&id(1)).is_some()); // 2 is now the least recent
        c.put_decrypt(id(3), &dk, 0, 0);
        assert!(c.get_decrypt(&id(2)).is_none());
        assert!(c.get_decrypt(&id(1)).is_some());
        assert!(c.get_decrypt(&id(3)).is_some());
        assert_eq!(c.stats().entries, 2);
    }

    #[test]
    fn encrypt_and_decrypt_entries_do_not_mix() {
        let c = cache(10, 1 << 20, 8);
        let dk = DataKey::new(vec![9; 32]);
        c.put_decrypt(id(1), &dk, 0, 0);
        assert!(c.get_encrypt(&id(1), 1).is_none());
        c.put_encrypt(id(2), &dk, &edk(), 1);
        assert!(c.get_decrypt(&id(2)).is_none());
    }

    #[test]
    fn limits_parse_and_validate() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("2MB").unwrap(), 2_000_000);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("99999999999999T").is_err());
        let l: CacheLimits = serde_json::from_str(
            r#"{"max-age":"2m","max-messages":50,"max-bytes":"1MiB","max-entries":4}"#,
        )
        .unwrap();
        assert_eq!(
            l,
            CacheLimits {
                max_age: Duration::from_secs(120),
                max_messages: 50,
                max_bytes: 1 << 20,
                max_entries: 4
            }
        );
        let l: CacheLimits = serde_json::from_str(r#"{"max-age":30}"#).unwrap();
        assert_eq!(l.max_age, Duration::from_secs(30));
        assert_eq!(l.max_messages, CacheLimits::default().max_messages);
        assert!(serde_json::from_str::<CacheLimits>(r#"{"max-agee":30}"#).is_err());
        assert!(MemoryCache::new(CacheLimits {
            max_messages: 0,
            ..CacheLimits::default()
        })
        .is_err());
    }
}
