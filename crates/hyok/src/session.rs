//! [`Session`]: one place that turns configuration into a working hyok. It reads
//! `hyok.toml` and the environment once ([`SessionConfig`]), opens the audit log, opens the
//! key stores of the chosen keys or keyring through the scheme [`Registry`] with the data-key
//! cache and the audit sink attached, and hands out what front ends need: [`Client`]s
//! (encrypt/decrypt streams), [`Objects`] and [`Catalog`]s (object storage), key
//! administration, and audit records of message and key-lifecycle outcomes.
//!
//! Every CLI command starts from a session; a server (S3 gateway, XKS proxy) opens one at
//! start-up and shares it between requests (see `docs/DESIGN.md`).
//!
//! ```
//! # fn main() -> Result<(), hyok::Error> {
//! use hyok::{KeySource, Session, SessionConfig, Settings};
//! let dir = tempfile::tempdir().unwrap();
//! let key = dir.path().join("k.key");
//! std::fs::write(&key, [7u8; 32]).unwrap();
//! let config = SessionConfig::default()
//!     .keys(KeySource::Uris(vec![format!("raw-aes:ns/k?file={}", key.display())]));
//! let session = Session::open(config)?;
//! let client = session.client(Settings::default())?;
//! assert_eq!(client.keys().keyring().keys().len(), 1);
//! session.close()?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hyok_keystore::admin::KeyAdmin;
use hyok_keystore::cache::{CacheLimits, MemoryCache};
use hyok_keystore::{KeyManager, KeyUri, Registry};
use hyok_store::{Backend, Store, StoreOptions, StoreUrl, Transfer};
use tokio::runtime::Handle;

use crate::audit::{
    AdminEvent, AdminOp, AuditLog, AuditSettings, AuditSink, LogSink, MessageEvent,
};
use crate::config::{self, Loaded};
use crate::custody::KeyPlan;
use crate::objects::{Catalog, Objects};
use crate::policy::{Action, Destination, Engine, Facts, Guard, Principal, Query, Resource};
use crate::{Client, Error, ErrorClass, Result, Settings};

/// Which keys a session encrypts and decrypts with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum KeySource {
    /// The configuration's `[defaults] keyring`.
    #[default]
    Default,
    /// Key URIs, generator first (`--key`).
    Uris(Vec<String>),
    /// A keyring of the configuration (`--keyring NAME`).
    Keyring(String),
    /// A k-of-n split across these key URIs, each a group of one (`--threshold K --key …`).
    Threshold {
        /// How many of the keys must take part to open a message.
        threshold: usize,
        /// The key URIs.
        keys: Vec<String>,
    },
}

/// Whether a session caches data keys.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum CacheChoice {
    /// As the configured keyring says (`[keyrings.NAME.cache]`); off for explicit keys.
    #[default]
    Keyring,
    /// Never.
    Off,
    /// With these limits, whatever the keyring says (`--cache`).
    On(CacheLimits),
}

/// Everything a [`Session`] is built from: the configuration file, the environment, and the
/// caller's explicit choices (the CLI's `--key`, `--keyring`, `--cache` flags).
#[derive(Clone, Debug, Default)]
pub struct SessionConfig {
    /// The configuration file (empty when there is none).
    pub file: Loaded,
    /// The keys.
    pub keys: KeySource,
    /// The data-key cache.
    pub cache: CacheChoice,
    /// The audit log: the environment (`HYOK_AUDIT_*`) over the file's `[audit]` section.
    pub audit: AuditSettings,
    /// The key-store schemes keys may use.
    pub registry: Registry,
}

impl SessionConfig {
    /// Read `hyok.toml` (an explicit path, `$HYOK_CONFIG`, or the per-user file) and the
    /// `HYOK_AUDIT_*` environment, which overrides the file's `[audit]` field by field.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        let file = config::Config::load(explicit)?;
        let audit = AuditSettings::from_env()?.or(file.audit_settings());
        Ok(Self {
            file,
            audit,
            ..Self::default()
        })
    }

    /// Use these keys.
    pub fn keys(mut self, keys: KeySource) -> Self {
        self.keys = keys;
        self
    }

    /// Use this cache setting.
    pub fn cache(mut self, cache: CacheChoice) -> Self {
        self.cache = cache;
        self
    }

    /// Use these key-store schemes (the default is every scheme of this build).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }
}

/// A configured hyok: key stores, cache and audit log composed once, shared by everything
/// the front end does. Cheap to share behind an `Arc`; key stores are opened on first use,
/// so commands that need no keys never touch an HSM or a key server.
#[derive(Debug)]
pub struct Session {
    file: config::Config,
    file_path: Option<PathBuf>,
    keys: KeySource,
    cache: CacheChoice,
    registry: Registry,
    audit: Option<Arc<AuditLog>>,
    manager: Mutex<Option<KeyManager>>,
    policy: Option<Arc<Engine>>,
    principal: Principal,
    pace: Option<Arc<crate::key_rate::KeyRate>>,
}

/// Environment variable: a break-glass reason; policies see `context.break_glass == true`.
pub const ENV_BREAK_GLASS: &str = "HYOK_BREAK_GLASS";

/// The local principal: the audit identity, else `$USER`, else `unknown`.
fn local_principal(audit: &AuditSettings) -> Principal {
    Principal::Identity(
        audit
            .identity
            .clone()
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "unknown".into()),
    )
}

/// The outcome of an operation for its audit record: `None` on success, else the failure's
/// class and text.
pub type Failure<'a> = Option<(ErrorClass, &'a str)>;

impl Session {
    /// Open the audit log (when configured); nothing else is opened yet.
    /// With `[policy]` (or residency rules) configured, the policy files are read and
    /// validated here: a bad one stops the start ([`Error::Config`], `FILE:LINE:COLUMN`).
    pub fn open(config: SessionConfig) -> Result<Self> {
        let policy = Engine::open(
            config.file.config.policy.as_ref(),
            &config.file.config.residency,
            config.file.path.as_deref().and_then(Path::parent),
        )?
        .map(Arc::new);
        let principal = local_principal(&config.audit);
        let audit = config.audit.open()?;
        Ok(Self {
            file: config.file.config,
            file_path: config.file.path,
            keys: config.keys,
            cache: config.cache,
            registry: config.registry,
            audit,
            manager: Mutex::new(None),
            policy,
            principal,
            pace: None,
        })
    }

    /// A session over the same configuration and audit log with other keys (a server that
    /// serves several keyrings, such as the S3 gateway, opens one per keyring).
    pub fn with_keys(&self, keys: KeySource) -> Self {
        Self {
            file: self.file.clone(),
            file_path: self.file_path.clone(),
            keys,
            cache: self.cache,
            registry: self.registry.clone(),
            audit: self.audit.clone(),
            manager: Mutex::new(None),
            policy: self.policy.clone(),
            principal: self.principal.clone(),
            pace: self.pace.clone(),
        }
    }

    /// At most `per_sec` key-store calls per second from this session's key managers and
    /// every session [`Self::with_keys`] makes from it afterwards (one shared schedule). With
    /// a `branch =` keyring the master keys' calls are paced, not the local branch-key wraps.
    pub fn with_key_rate(mut self, per_sec: f64) -> Result<Self> {
        self.pace = Some(Arc::new(crate::key_rate::KeyRate::new(per_sec)?));
        *self.manager.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(self)
    }

    /// The configuration file this session read, if any.
    pub fn file_path(&self) -> Option<&Path> {
        self.file_path.as_deref()
    }

    /// The configuration file's content (empty when there is none).
    pub fn file(&self) -> &config::Config {
        &self.file
    }

    /// The audit log as a sink, when logging is on (servers record their own events).
    pub fn audit_sink(&self) -> Option<LogSink> {
        self.audit.as_ref().map(|l| LogSink::new(l.clone()))
    }

    /// The key-store schemes of this session.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The keys this session uses and the cache limits that go with them.
    fn key_plan(&self) -> Result<(KeyPlan, Option<CacheLimits>)> {
        let (uris, keyring_cache) = match &self.keys {
            KeySource::Uris(u) if !u.is_empty() => (KeyPlan::Keys(u.clone()), None),
            KeySource::Threshold { threshold, keys } => (KeyPlan::of_cli(*threshold, keys)?, None),
            KeySource::Keyring(name) => {
                let k = self.file.keyring(name)?;
                (KeyPlan::of_keyring(name, k), k.cache)
            }
            KeySource::Default | KeySource::Uris(_) => match &self.file.defaults.keyring {
                Some(name) => {
                    let k = self.file.keyring(name)?;
                    (KeyPlan::of_keyring(name, k), k.cache)
                }
                None => {
                    return Err(Error::NoKeys {
                        has_config: self.file_path.is_some(),
                    })
                }
            },
        };
        let cache = match self.cache {
            CacheChoice::Keyring => keyring_cache,
            CacheChoice::Off => None,
            CacheChoice::On(limits) => Some(limits),
        };
        Ok((uris, cache))
    }

    /// The key manager: the keys opened (once), with the cache and the audit sink attached.
    /// For a keyring with `branch = NAME`, the one key is branch key NAME, whose versions
    /// the keyring's keys (master keys) unwrap.
    pub fn key_manager(&self) -> Result<KeyManager> {
        let mut slot = self.manager.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = &*slot {
            return Ok(m.clone());
        }
        let (plan, cache) = self.key_plan()?;
        let branch = self.keyring_branch()?;
        let is_branch = branch.is_some();
        let keyring = match branch {
            Some((name, store)) => hyok_keystore::Keyring::new(vec![Arc::new(
                crate::branch::BranchKey::new(&name, store, self.master_key_manager()?)?,
            )])?,
            None => plan.open(&self.registry, self.audit_observer())?,
        };
        let mut manager = KeyManager::new(keyring);
        if let (Some(p), false) = (&self.pace, is_branch) {
            manager = manager.with_pace(p.clone());
        }
        if let Some(limits) = cache {
            manager = manager.with_cache(Arc::new(MemoryCache::new(limits)?));
        }
        if let Some(log) = &self.audit {
            manager = manager.with_audit(Arc::new(LogSink::new(log.clone())));
        }
        *slot = Some(manager.clone());
        Ok(manager)
    }

    /// The session's keys themselves, opened with the audit sink and without the data-key
    /// cache: for a `branch =` keyring these are its master keys, which wrap branch key
    /// versions (`hyok branch`), never data keys of objects.
    pub fn master_key_manager(&self) -> Result<KeyManager> {
        let (plan, _) = self.key_plan()?;
        let mut manager = KeyManager::new(plan.open(&self.registry, self.audit_observer())?);
        if let Some(log) = &self.audit {
            manager = manager.with_audit(Arc::new(LogSink::new(log.clone())));
        }
        if let Some(p) = &self.pace {
            manager = manager.with_pace(p.clone());
        }
        Ok(manager)
    }

    /// The audit log as the observer of key managers opened inside the keyring (k-of-n
    /// groups), so their key uses are recorded like the keyring's own.
    fn audit_observer(&self) -> Option<Arc<dyn AuditSink>> {
        self.audit
            .as_ref()
            .map(|l| Arc::new(LogSink::new(l.clone())) as Arc<dyn AuditSink>)
    }

    /// The selected keyring's branch key and its store, when it has `branch = NAME`.
    fn keyring_branch(&self) -> Result<Option<(String, crate::branch::BranchStore)>> {
        let name = match &self.keys {
            KeySource::Keyring(n) => Some(n),
            KeySource::Uris(u) if !u.is_empty() => None,
            _ => self.file.defaults.keyring.as_ref(),
        };
        let Some(k) = name.map(|n| self.file.keyring(n)).transpose()? else {
            return Ok(None);
        };
        let Some(branch) = &k.branch else {
            return Ok(None);
        };
        let loc = crate::branch::store_location(
            None,
            k.branch_store.as_deref(),
            self.file_path.as_deref(),
        )?;
        Ok(Some((branch.clone(), self.open_branch_store(loc)?)))
    }

    /// The branch key store: `explicit`, else the selected keyring's `branch_store`, else
    /// `$HYOK_BRANCH_STORE` or the per-user default (see [`crate::branch::store_location`]).
    pub fn branch_store(&self, explicit: Option<&Path>) -> Result<crate::branch::BranchStore> {
        if let Some(p) = explicit {
            return self.open_branch_store(crate::branch::store_location(Some(p), None, None)?);
        }
        if let Some((_, store)) = self.keyring_branch()? {
            return Ok(store);
        }
        self.open_branch_store(crate::branch::store_location(None, None, None)?)
    }

    /// A branch key store at `loc`: a directory, or an object-store folder reached with the
    /// configuration's store settings (endpoint, region, credentials profile).
    fn open_branch_store(
        &self,
        loc: crate::branch::Location,
    ) -> Result<crate::branch::BranchStore> {
        match loc {
            crate::branch::Location::Dir(d) => Ok(crate::branch::BranchStore::new(d)),
            crate::branch::Location::Objects(s) => {
                let (url, opts) = self.resolve(&s)?;
                let store = self.open_store(&url, opts)?;
                let files = crate::branch_objects::ObjectFiles::new(store, &url)?;
                Ok(crate::branch::BranchStore::with_files(Arc::new(files)))
            }
        }
    }

    /// The selected keyring's branch key name, when it has `branch = NAME`.
    pub fn branch_name(&self) -> Result<Option<String>> {
        Ok(self.keyring_branch()?.map(|(n, _)| n))
    }

    /// A client with these settings over the session's keys.
    pub fn client(&self, settings: Settings) -> Result<Client> {
        Ok(Client::new(self.key_manager()?)
            .with_settings(settings)
            .with_guard(self.guard()))
    }

    /// Whether `s` names a store location rather than a local plaintext file:
    /// `s3://…`, `file://…`, `:KEY` (default store) or `NAME:KEY` (a configured store, or a
    /// name-like prefix that is not an existing local path).
    pub fn is_location(&self, s: &str) -> bool {
        if s.starts_with(':') || s.contains("://") {
            return true; // an unsupported scheme: `resolve` says so
        }
        match s.split_once(':') {
            Some((name, _)) => {
                self.file.stores.contains_key(name)
                    || (name.len() > 1
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                        && !Path::new(s).exists())
            }
            None => false,
        }
    }

    /// Resolve a location to its URL and its store's connection settings.
    pub fn resolve(&self, location: &str) -> Result<(StoreUrl, StoreOptions)> {
        if location.starts_with(':') && self.file.defaults.store.is_none() {
            return Err(Error::NoDefaultStore {
                location: location.to_owned(),
                config: self.file_path.clone(),
            });
        }
        self.file.resolve_location(location)
    }

    /// Open the store of a resolved location (multipart uploads are journaled under the
    /// per-user state directory unless the options say otherwise).
    pub fn open_store(&self, url: &StoreUrl, mut opts: StoreOptions) -> Result<Store> {
        if opts.journal_dir.is_none() {
            opts.journal_dir = config::user_state_dir().map(|d| d.join("uploads"));
        }
        Ok(Store::open(url, &opts)?)
    }

    /// The residency guard: refuse a destination before any request or key use.
    /// The residency rules are a Cedar policy (see [`crate::policy::residency`]): the
    /// engine decides, and a refusal explains each rule.
    pub fn permit(&self, store: &Store, url: &StoreUrl) -> Result<()> {
        let Some(guard) = self.guard() else {
            return Ok(());
        };
        let q = guard.at(store.region(), store.endpoint()).query(
            Action::Put,
            Some(Resource::object(url)),
            &Default::default(),
            None,
        );
        match guard.check_residency(&q) {
            Err(denied @ Error::Denied { .. }) => {
                let shown = url.to_string();
                let d = Destination {
                    url: &shown,
                    local: url.backend() == Backend::Local,
                    endpoint: store.endpoint(),
                    region: store.region(),
                    bucket: url.bucket(),
                    key: url.key(),
                };
                // The rule-by-rule explanation; the policy's refusal if it finds none.
                self.file.residency.permits(&d).and(Err(denied))
            }
            other => other.map(|_| ()),
        }
    }

    /// Transfer settings: explicit values over `[transfer]` over the defaults (8 MiB parts,
    /// 8 in flight).
    pub fn transfer(&self, concurrency: Option<usize>, part_size_mib: Option<usize>) -> Transfer {
        let t = &self.file.transfer;
        Transfer::new(
            part_size_mib.or(t.part_size_mib).unwrap_or(8) * 1024 * 1024,
            concurrency.or(t.concurrency).unwrap_or(8),
        )
    }

    /// Objects copied at once by recursive copies: explicit, `[transfer] jobs`, or 8.
    pub fn jobs(&self, explicit: Option<usize>) -> usize {
        explicit.unwrap_or_else(|| self.file.transfer.jobs()).max(1)
    }

    /// Whether new objects are bound to their location: unless the caller or
    /// `[defaults] bind_location = false` says not to.
    pub fn bind_location(&self, caller_says_no: bool) -> bool {
        !caller_says_no && self.file.defaults.bind_location.unwrap_or(true)
    }

    /// Encrypted objects of `store`, with the session's keys; async work runs on `rt`.
    pub fn objects(
        &self,
        store: Store,
        settings: Settings,
        transfer: Transfer,
        rt: Handle,
    ) -> Result<Objects> {
        Ok(Objects::new(self.client(settings)?, store, transfer, rt))
    }

    /// The objects of `store` described without keys (`ls`).
    pub fn catalog(&self, store: Store, rt: Handle) -> Catalog {
        Catalog::new(store, rt)
    }

    /// Whether `target` names a key in a key store (not a local key file).
    pub fn is_store_uri(&self, target: &str) -> bool {
        self.registry.is_store_uri(target)
    }

    /// `PROVIDER/KEY-NAME` of the EDKs the key `uri` writes, as
    /// [`crate::objects::edk_label`] shows an EDK: which objects a key wraps.
    pub fn key_label(&self, uri: &str) -> Result<String> {
        let key = self.registry.open_key(uri)?;
        let info = key.info();
        Ok(format!("{}/{}", info.provider_id, info.key_name))
    }

    /// The key administration of the store a URI names; with policies, `key-admin` on
    /// `Key::"URI"` is decided first.
    pub fn key_admin(&self, uri: &str) -> Result<(Box<dyn KeyAdmin>, KeyUri)> {
        self.authorize(Action::KeyAdmin, Resource::Key(uri.to_owned()))?;
        Ok(self.registry.open_admin(uri)?)
    }

    /// Record one message operation (the key manager records its key uses itself).
    pub fn record_message(&self, mut event: MessageEvent, started: Instant, failure: Failure) {
        if let Some(log) = &self.audit {
            let sink = LogSink::new(log.clone());
            if let Some((ErrorClass::Policy, detail)) = failure {
                sink.admin(AdminEvent {
                    op: AdminOp::PolicyRefusal,
                    key: None,
                    subject: event.subject.clone(),
                    message_id: event.message_id.clone(),
                    detail: Some(detail.to_owned()),
                    error: Some(ErrorClass::Policy.as_str()),
                    duration: started.elapsed(),
                });
            }
            event.error = failure.map(|(c, _)| c.as_str());
            event.duration = started.elapsed();
            sink.message(event);
        }
    }

    /// Record a key lifecycle step (`key new`, `rotate`, `destroy`) with its outcome.
    pub fn record_key_admin(
        &self,
        op: AdminOp,
        key: &str,
        detail: Option<String>,
        started: Instant,
        failure: Failure,
    ) {
        if let Some(log) = &self.audit {
            LogSink::new(log.clone()).admin(AdminEvent {
                op,
                key: Some(key.to_owned()),
                subject: None,
                message_id: None,
                detail,
                error: failure.map(|(c, _)| c.as_str()),
                duration: started.elapsed(),
            });
        }
    }

    /// Sign a checkpoint of the audit log now.
    pub fn checkpoint(&self) -> Result<crate::audit::Checkpoint> {
        match &self.audit {
            Some(l) => Ok(l.checkpoint()?),
            None => Err(Error::Audit(hyok_audit::Error::Config(
                "no audit log configured (set HYOK_AUDIT_LOG=PATH)".into(),
            ))),
        }
    }

    /// Wait until everything recorded so far is on disk (before releasing plaintext).
    pub fn flush(&self) -> Result<()> {
        match &self.audit {
            Some(l) => Ok(l.flush()?),
            None => Ok(()),
        }
    }

    /// Close the audit log (it writes its exit checkpoint).
    pub fn close(self) -> Result<()> {
        match &self.audit {
            Some(l) => l.close().map(|_| ()).map_err(Error::from),
            None => Ok(()),
        }
    }

    /// The policy engine, when `[policy]` or residency rules are configured.
    pub fn policy(&self) -> Option<&Arc<Engine>> {
        self.policy.as_ref()
    }

    /// The same session deciding for another principal.
    pub fn with_principal(mut self, principal: Principal) -> Self {
        self.principal = principal;
        self
    }

    /// The local principal of this session's decisions.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The keyring name decisions see (`keys` for explicit key URIs).
    fn keyring_name(&self) -> String {
        match &self.keys {
            KeySource::Keyring(n) => n.clone(),
            KeySource::Uris(u) if !u.is_empty() => "keys".into(),
            _ => self
                .file
                .defaults
                .keyring
                .clone()
                .unwrap_or_else(|| "keys".into()),
        }
    }

    /// The decision point of this session (`None` without policies): the local principal,
    /// the session's keyring, break glass from `HYOK_BREAK_GLASS`, the audit log.
    pub fn guard(&self) -> Option<Guard> {
        let engine = self.policy.clone()?;
        let facts = Facts {
            keyring: self.keyring_name(),
            break_glass: std::env::var_os(ENV_BREAK_GLASS).is_some_and(|v| !v.is_empty()),
            ..Facts::default()
        };
        Some(Guard::new(
            engine,
            self.principal.clone(),
            facts,
            self.audit_sink(),
        ))
    }

    /// Ask the policy about an operation the session does not run itself (`list`,
    /// `delete`, `key-admin`): recorded, and [`Error::Denied`] when denied. Allowed
    /// without policies.
    pub fn authorize(&self, action: Action, resource: Resource) -> Result<()> {
        match self.guard() {
            Some(g) => g
                .check(action, Some(resource), &Default::default(), None)
                .map(|_| ()),
            None => Ok(()),
        }
    }

    /// What the policy would decide, without recording or doing anything (`hyok policy
    /// check`). `None` without policies.
    pub fn explain(&self, q: &Query) -> Result<Option<crate::policy::Decision>> {
        match &self.policy {
            Some(e) => e.decide(q).map(Some),
            None => Ok(None),
        }
    }
}
