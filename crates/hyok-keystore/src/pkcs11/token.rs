//! One PKCS#11 context per module per process, one session pool per token.
//!
//! `C_Initialize` may run only once per process, so contexts live in a process-wide registry
//! keyed by the module path, initialised with `CKF_OS_LOCKING_OK` (SoftHSM runs lock-free
//! otherwise and corrupts its state under threads). Tokens are registered the same way, keyed
//! by (module, slot), so every key store and the audit signer on one token share one pool of
//! logged-in sessions. A session the token reports as closed, invalid or logged out is thrown
//! away, the idle ones with it (they are likely dead too: `C_CloseAllSessions`), and the
//! operation is retried on a fresh, logged-in session. Thrown-away sessions are forgotten,
//! never closed by handle: the token may already have given that handle to a new session.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::error::{describe, is_handle_stale, is_session_lost, map};
use super::uri::{Pkcs11Uri, MODULE_ENV, PIN_ENV};
use crate::error::{Error, Result};

/// Default number of sessions kept per token.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// How long an operation waits for a free session before giving up.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts of one operation when sessions keep getting lost under it.
const ATTEMPTS: usize = 3;

/// A loaded and initialised PKCS#11 module.
pub(crate) struct Module {
    pub(crate) path: PathBuf,
    pub(crate) ctx: Pkcs11,
}

fn modules() -> MutexGuard<'static, HashMap<PathBuf, Arc<Module>>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();
    MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// The process's context for the module at `path`, loading and initialising it once.
/// `who` names the key in error messages.
pub(crate) fn module(path: &Path, who: &str) -> Result<Arc<Module>> {
    let key = std::fs::canonicalize(path).map_err(|e| Error::ModuleUnavailable {
        key: who.to_owned(),
        detail: format!(
            "cannot load the PKCS#11 module {}: {e} (check {MODULE_ENV} or module-path=)",
            path.display()
        ),
    })?;
    let mut reg = modules();
    if let Some(m) = reg.get(&key) {
        return Ok(m.clone());
    }
    let ctx = Pkcs11::new(&key).map_err(|e| Error::ModuleUnavailable {
        key: who.to_owned(),
        detail: format!(
            "cannot load the PKCS#11 module {}: {}",
            path.display(),
            match &e {
                CkError::LibraryLoading(l) => l.to_string(),
                other => describe(other),
            }
        ),
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        // Someone else in this process initialised it (with their own flags): share it.
        Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(map(who, &e)),
    }
    let m = Arc::new(Module {
        path: key.clone(),
        ctx,
    });
    reg.insert(key, m.clone());
    Ok(m)
}

/// Counters of one token (process-wide).
#[derive(Debug, Default)]
pub(crate) struct TokenCounters {
    pub(crate) sessions_opened: AtomicU64,
    pub(crate) sessions_lost: AtomicU64,
}

struct PoolState {
    idle: Vec<Session>,
    /// Sessions in existence: idle + checked out + being opened.
    open: usize,
    /// Bumped whenever sessions were found lost; older sessions are not returned to the pool.
    generation: u64,
}

/// A token (slot) of a module with its pool of logged-in sessions.
pub(crate) struct Token {
    pub(crate) module: Arc<Module>,
    pub(crate) slot: Slot,
    pub(crate) label: String,
    pin: Option<Zeroizing<String>>,
    pool: Mutex<PoolState>,
    freed: Condvar,
    max: usize,
    /// `max` turns for async callers (see [`Token::blocking`]).
    turns: Arc<tokio::sync::Semaphore>,
    pub(crate) counters: TokenCounters,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("module", &self.module.path)
            .field("slot", &self.slot.id())
            .field("label", &self.label)
            .field("pin", &self.pin.as_ref().map(|_| "redacted"))
            .field("max_sessions", &self.max)
            .finish()
    }
}

/// Why an operation could not run.
#[derive(Debug)]
pub(crate) enum OpError {
    /// The token said no.
    Ck(CkError),
    /// Every session stayed busy for the whole wait.
    Busy(usize),
}

impl OpError {
    pub(crate) fn into_error(self, key: &str) -> Error {
        match self {
            Self::Ck(e) => map(key, &e),
            Self::Busy(n) => Error::Unavailable {
                key: key.to_owned(),
                detail: format!(
                    "all {n} PKCS#11 sessions stayed busy for {} s (raise pool-size=)",
                    CHECKOUT_TIMEOUT.as_secs()
                ),
            },
        }
    }
}

impl From<CkError> for OpError {
    fn from(e: CkError) -> Self {
        Self::Ck(e)
    }
}

/// Tokens by (module path, slot id).
type TokenRegistry = HashMap<(PathBuf, u64), Arc<Token>>;

fn tokens() -> MutexGuard<'static, TokenRegistry> {
    static TOKENS: OnceLock<Mutex<TokenRegistry>> = OnceLock::new();
    TOKENS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Whether a failure of a non-cryptographic call may pass on a second try. SoftHSM answers
/// CKR_GENERAL_ERROR to token-info and object lookups while another process rewrites the
/// token's files (its files are locked only per write).
fn is_transient(e: &CkError) -> bool {
    use cryptoki::context::Function as F;
    matches!(
        e,
        CkError::Pkcs11(
            RvError::GeneralError | RvError::FunctionFailed,
            F::GetTokenInfo
                | F::GetSlotList
                | F::OpenSession
                | F::Login
                | F::FindObjectsInit
                | F::FindObjects
                | F::FindObjectsFinal
                | F::GetAttributeValue
        )
    )
}

/// Pause between tries of a transient failure.
const TRANSIENT_PAUSE: Duration = Duration::from_millis(25);

fn retry_transient<T>(
    mut f: impl FnMut() -> std::result::Result<T, CkError>,
) -> std::result::Result<T, CkError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f() {
            Err(e) if is_transient(&e) && attempt < 2 * ATTEMPTS => {
                std::thread::sleep(TRANSIENT_PAUSE * attempt as u32)
            }
            r => return r,
        }
    }
}

fn trimmed(s: &str) -> &str {
    s.trim_end_matches([' ', '\0'])
}

/// Find the token a URI names and open (or share) its pool; logs in on first use so that a
/// wrong PIN shows up here rather than in the middle of a stream.
pub(crate) fn open_token(uri: &Pkcs11Uri, who: &str) -> Result<Arc<Token>> {
    if !uri.more_tokens.is_empty() {
        return Err(Error::Config(format!(
            "{who}: lists several tokens, but this use of a key (key new, list or destroy, an \
             audit signing key, an XKS key) takes one: name one token, and repeat for each"
        )));
    }
    let module_path = uri.module()?;
    let module = module(&module_path, who)?;
    let mut present = Vec::new();
    let mut found = None;
    // SoftHSM can briefly report no (or an unlabelled) token while another process rewrites
    // the token's files, so a miss is confirmed by looking again (bounded).
    for attempt in 1..=ATTEMPTS {
        present.clear();
        let slots =
            retry_transient(|| module.ctx.get_slots_with_token()).map_err(|e| map(who, &e))?;
        for slot in slots {
            let info =
                retry_transient(|| module.ctx.get_token_info(slot)).map_err(|e| map(who, &e))?;
            let label = trimmed(info.label()).to_owned();
            let serial = trimmed(info.serial_number()).to_owned();
            let matches = uri.token.as_deref().is_none_or(|t| t == label)
                && uri.serial.as_deref().is_none_or(|s| s == serial)
                && uri.slot_id.is_none_or(|n| n == slot.id());
            if matches && found.is_none() {
                found = Some((slot, label.clone(), info.login_required()));
            }
            if !label.is_empty() {
                present.push(label);
            }
        }
        if found.is_some() {
            break;
        }
        if attempt < ATTEMPTS {
            std::thread::sleep(TRANSIENT_PAUSE * 2 * attempt as u32);
        }
    }
    let Some((slot, label, login_required)) = found else {
        return Err(Error::TokenNotFound {
            key: who.to_owned(),
            detail: format!(
                "no token {} in module {} (tokens present: {})",
                match (&uri.token, &uri.serial, uri.slot_id) {
                    (Some(t), _, _) => format!("labelled {t:?}"),
                    (None, Some(s), _) => format!("with serial {s:?}"),
                    (None, None, Some(n)) => format!("in slot {n}"),
                    (None, None, None) => String::new(),
                },
                module_path.display(),
                if present.is_empty() {
                    "none".to_owned()
                } else {
                    present.join(", ")
                }
            ),
        });
    };
    let key = (module.path.clone(), slot.id());
    if let Some(t) = tokens().get(&key) {
        return Ok(t.clone());
    }
    let pin = if login_required {
        match uri.pin_source.read()? {
            Some(p) => Some(p),
            None => {
                return Err(Error::Config(format!(
                    "{who}: no PIN for token {label:?}: set {PIN_ENV} or add \
                     ?pin-source=file:PATH to the URI (PINs are never taken from arguments)"
                )))
            }
        }
    } else {
        None
    };
    let max = uri.pool_size.unwrap_or(DEFAULT_POOL_SIZE);
    let token = Arc::new(Token {
        module,
        slot,
        label,
        pin,
        pool: Mutex::new(PoolState {
            idle: Vec::new(),
            open: 0,
            generation: 0,
        }),
        freed: Condvar::new(),
        max,
        turns: Arc::new(tokio::sync::Semaphore::new(max)),
        counters: TokenCounters::default(),
    });
    // Log in now: a wrong PIN fails here, before any output is written.
    token.run(&mut |_s| Ok(())).map_err(|e| e.into_error(who))?;
    let mut reg = tokens();
    Ok(reg.entry(key).or_insert(token).clone())
}

/// Forget a session that the token has (probably) closed, without calling `C_CloseSession`.
/// A token may hand the same handle number to a session opened since by another thread,
/// and closing by number would close that one under it (tokens then fail, or crash: SoftHSM
/// frees the session object another thread is using). If the session was in fact still open,
/// the token keeps it until the process ends; that is the price of never closing a stranger.
fn abandon(session: Session) {
    std::mem::forget(session);
}

/// A checked-out session and the pool generation it belongs to.
struct Lease {
    session: Session,
    generation: u64,
}

impl Token {
    /// The pool generation: it changes whenever sessions were found lost, which also makes
    /// object handles found before suspect.
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open_session(&self) -> std::result::Result<Session, CkError> {
        let s = self.module.ctx.open_rw_session(self.slot)?;
        self.counters
            .sessions_opened
            .fetch_add(1, Ordering::Relaxed);
        if let Some(pin) = &self.pin {
            let auth = AuthPin::from(pin.as_str().to_owned());
            match s.login(UserType::User, Some(&auth)) {
                Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(s)
    }

    fn checkout(&self) -> std::result::Result<Lease, OpError> {
        let deadline = Instant::now() + CHECKOUT_TIMEOUT;
        let mut st = self.lock();
        loop {
            if let Some(session) = st.idle.pop() {
                return Ok(Lease {
                    session,
                    generation: st.generation,
                });
            }
            if st.open < self.max {
                st.open += 1;
                let generation = st.generation;
                drop(st);
                return match retry_transient(|| self.open_session()) {
                    Ok(session) => Ok(Lease {
                        session,
                        generation,
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(OpError::Ck(e))
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(OpError::Busy(self.max));
            }
            st = self
                .freed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn checkin(&self, lease: Lease, healthy: bool) {
        let mut st = self.lock();
        if healthy && lease.generation == st.generation {
            st.idle.push(lease.session);
            drop(st);
        } else {
            st.open -= 1;
            drop(st);
            abandon(lease.session);
        }
        self.freed.notify_one();
    }

    /// Throw away every idle session (they were opened before the loss was seen).
    fn invalidate(&self, seen_generation: u64) {
        let dead = {
            let mut st = self.lock();
            if st.generation != seen_generation {
                return; // another thread already did it
            }
            st.generation += 1;
            let dead = std::mem::take(&mut st.idle);
            st.open -= dead.len();
            dead
        };
        self.counters.sessions_lost.fetch_add(1, Ordering::Relaxed);
        dead.into_iter().for_each(abandon);
        self.freed.notify_all();
    }

    /// Run `f` (which uses this token) on tokio's blocking pool once one of the token's
    /// pool-size turns is free. Async callers beyond the pool size wait here as futures, in
    /// FIFO order, instead of as blocked threads racing on the pool's condition variable:
    /// there, at 64 concurrent XKS requests on a 16-session pool, late threads took freed
    /// sessions ahead of parked ones and 48 parked threads competed for 2 cores, which
    /// stretched the slowest requests to tens of milliseconds. The turn is moved into the
    /// blocking call, so a caller that gives up (a timeout) frees it only when the token has
    /// answered.
    pub(crate) async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let turn = self
            .turns
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Unavailable {
                key: "pkcs11".into(),
                detail: "the token is shutting down".into(),
            })?;
        super::blocking(move || {
            let r = f();
            drop(turn);
            r
        })
        .await
    }

    /// Run `f` on a pooled, logged-in session. When the token reports the session closed,
    /// invalid or logged out, the pool is renewed and `f` runs again (at most 3 times); a
    /// lookup that failed with CKR_GENERAL_ERROR is tried again too. So `f` must be safe to
    /// repeat (every crypto call and lookup is).
    pub(crate) fn run<T>(
        &self,
        f: &mut dyn FnMut(&Session) -> std::result::Result<T, CkError>,
    ) -> std::result::Result<T, OpError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let lease = self.checkout()?;
            match f(&lease.session) {
                Ok(v) => {
                    self.checkin(lease, true);
                    return Ok(v);
                }
                Err(e) if is_session_lost(&e) => {
                    let generation = lease.generation;
                    self.checkin(lease, false);
                    self.invalidate(generation);
                    tracing::debug!(token = %self.label, error = %describe(&e), attempt, "PKCS#11 session lost; reopening");
                    if attempt >= ATTEMPTS {
                        return Err(OpError::Ck(e));
                    }
                }
                Err(e) if is_transient(&e) && attempt < ATTEMPTS => {
                    self.checkin(lease, true);
                    std::thread::sleep(TRANSIENT_PAUSE * attempt as u32);
                }
                Err(e) => {
                    self.checkin(lease, true);
                    return Err(OpError::Ck(e));
                }
            }
        }
    }
}

/// An object handle remembered across operations, found again when the pool was renewed
/// (handles may be reassigned after all sessions closed) or when the token calls it invalid.
pub(crate) struct CachedHandle(Mutex<Option<(ObjectHandle, u64)>>);

type Lookup<'a> = &'a dyn Fn(&Session) -> std::result::Result<Option<ObjectHandle>, CkError>;

impl CachedHandle {
    pub(crate) fn new(handle: Option<ObjectHandle>, generation: u64) -> Self {
        Self(Mutex::new(handle.map(|h| (h, generation))))
    }

    fn set(&self, v: Option<(ObjectHandle, u64)>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }

    /// Run `f` with the handle on a pooled session of `token`.
    pub(crate) fn run<T>(
        &self,
        token: &Token,
        lookup: Lookup<'_>,
        f: &mut dyn FnMut(&Session, ObjectHandle) -> std::result::Result<T, CkError>,
    ) -> std::result::Result<T, OpError> {
        token.run(&mut |s| {
            let generation = token.generation();
            let cached = *self.0.lock().unwrap_or_else(|p| p.into_inner());
            let h = match cached {
                Some((h, g)) if g == generation => h,
                _ => match lookup(s)? {
                    Some(h) => {
                        self.set(Some((h, generation)));
                        h
                    }
                    None => {
                        return Err(CkError::Pkcs11(
                            RvError::KeyHandleInvalid,
                            cryptoki::context::Function::FindObjects,
                        ))
                    }
                },
            };
            match f(s, h) {
                Err(e) if is_handle_stale(&e) => match lookup(s)? {
                    Some(h2) => {
                        self.set(Some((h2, generation)));
                        f(s, h2)
                    }
                    None => Err(e),
                },
                r => r,
            }
        })
    }
}

/// The shared `cryptoki` context of the module at `path` (loaded and initialised on first
/// use, with OS locking). Use this instead of `Pkcs11::new` + `initialize` anywhere in a
/// process that also uses hyok's PKCS#11 key stores: a module may be initialised only once.
pub fn shared_context(path: &Path) -> Result<Pkcs11> {
    Ok(module(path, &path.display().to_string())?.ctx.clone())
}
