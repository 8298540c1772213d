//! `BranchKey`: a key store that wraps each message's data key under the active version of
//! a branch key, and unwraps under whichever version an EDK names. The branch key versions
//! themselves are unwrapped by the master keys (HSM, Vault, KMIP …) once per version per
//! cache lifetime, so an HSM sees a handful of calls however many objects pass.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hyok_core::{DataKey, EncryptedDataKey};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use super::store::{BranchStore, VersionRecord};
use super::wrap::{self, VersionId, PROVIDER_ID};
use crate::error::{Error, Result};
use crate::keyring::KeyManager;
use crate::store::{KeyInfo, KeyStore, WrapRequest};

/// How long unwrapped branch key versions (and which version is active) are kept.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// At most this many versions are held unwrapped at once (ESDK default cache size).
const MAX_CACHED: usize = 1000;

struct Cached {
    key: Arc<Zeroizing<Vec<u8>>>,
    fetched: Instant,
}

#[derive(Default)]
struct Cache {
    active: Option<(VersionId, Instant)>,
    keys: HashMap<VersionId, Cached>,
}

/// One branch key of a [`BranchStore`], used as a key store.
pub struct BranchKey {
    info: KeyInfo,
    name: String,
    store: BranchStore,
    master: KeyManager,
    ttl: Duration,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for BranchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BranchKey")
            .field("info", &self.info)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl BranchKey {
    /// Branch key `name` of `store`, its versions unwrapped by `master`.
    pub fn new(name: &str, store: BranchStore, master: KeyManager) -> Result<Self> {
        super::store::check_name(name)?;
        let masters: Vec<String> = master
            .keyring()
            .keys()
            .iter()
            .map(|k| k.info().uri.to_string())
            .collect();
        Ok(Self {
            info: KeyInfo {
                backend: "branch",
                uri: format!("branch:{name} (under {})", masters.join(", ")).into(),
                provider_id: PROVIDER_ID.into(),
                key_name: name.into(),
            },
            name: name.to_string(),
            store,
            master,
            ttl: DEFAULT_TTL,
            cache: Mutex::new(Cache::default()),
        })
    }

    /// Keep unwrapped versions for `ttl` (must be > 0) instead of [`DEFAULT_TTL`].
    pub fn with_ttl(mut self, ttl: Duration) -> Result<Self> {
        if ttl.is_zero() {
            return Err(Error::Config(
                "branch key cache TTL must be greater than zero".into(),
            ));
        }
        self.ttl = ttl;
        Ok(self)
    }

    /// The master keys' manager (its audit sink records every version unwrap).
    pub fn master(&self) -> &KeyManager {
        &self.master
    }

    async fn material(
        &self,
        rec: Option<VersionRecord>,
        version: VersionId,
    ) -> Result<(VersionId, Arc<Zeroizing<Vec<u8>>>)> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.keys.get(&version) {
            if c.fetched.elapsed() < self.ttl {
                return Ok((version, c.key.clone()));
            }
        }
        let rec = match rec {
            Some(r) => r,
            None => self.store.version(&self.name, &version).await?,
        };
        let key = Arc::new(self.store.unwrap(&rec, &self.master).await?);
        cache.keys.retain(|_, c| c.fetched.elapsed() < self.ttl);
        if cache.keys.len() >= MAX_CACHED {
            if let Some(oldest) = cache
                .keys
                .iter()
                .min_by_key(|(_, c)| c.fetched)
                .map(|(v, _)| *v)
            {
                cache.keys.remove(&oldest);
            }
        }
        cache.keys.insert(
            version,
            Cached {
                key: key.clone(),
                fetched: Instant::now(),
            },
        );
        Ok((version, key))
    }

    async fn active(&self) -> Result<(VersionId, Arc<Zeroizing<Vec<u8>>>)> {
        let known = {
            let cache = self.cache.lock().await;
            cache
                .active
                .filter(|(_, at)| at.elapsed() < self.ttl)
                .map(|(v, _)| v)
        };
        match known {
            Some(v) => self.material(None, v).await,
            None => {
                let rec = self.store.active(&self.name).await?;
                let version = rec.version;
                let out = self.material(Some(rec), version).await?;
                self.cache.lock().await.active = Some((version, Instant::now()));
                Ok(out)
            }
        }
    }

    fn owns(&self, edk: &EncryptedDataKey) -> bool {
        edk.provider_id == PROVIDER_ID && edk.provider_info == self.name.as_bytes()
    }
}

#[async_trait]
impl KeyStore for BranchKey {
    fn info(&self) -> &KeyInfo {
        &self.info
    }

    async fn wrap(&self, data_key: &DataKey, req: WrapRequest<'_>) -> Result<EncryptedDataKey> {
        let (version, key) = self.active().await?;
        let ciphertext = wrap::seal(&key, &self.name, &version, data_key, req.context)?;
        Ok(EncryptedDataKey {
            provider_id: PROVIDER_ID.into(),
            provider_info: self.name.as_bytes().to_vec(),
            ciphertext,
        })
    }

    async fn unwrap(
        &self,
        edk: &EncryptedDataKey,
        req: WrapRequest<'_>,
    ) -> Result<Option<DataKey>> {
        if !self.owns(edk) {
            return Ok(None);
        }
        let key_len = req.suite.key_len();
        let Some(version) = wrap::version_of(&edk.ciphertext, key_len) else {
            return Err(Error::UnwrapFailed {
                key: self.info.uri.to_string(),
            });
        };
        let (_, key) = self.material(None, version).await?;
        match wrap::open(&key, &self.name, &edk.ciphertext, key_len, req.context)? {
            Some(dk) => Ok(Some(dk)),
            None => Err(Error::UnwrapFailed {
                key: self.info.uri.to_string(),
            }),
        }
    }
}
