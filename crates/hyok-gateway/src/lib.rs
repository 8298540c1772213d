//! # hyok-gateway
//!
//! An S3-compatible endpoint (on the `s3s` crate) that stores every object as one complete
//! ESDK message, encrypted under the keys of a hyok keyring, in a local folder or an S3
//! backend. Unchanged S3 clients (aws cli, SDKs, rclone) get client-side encryption with
//! keys that stay in the HSM / Vault / KMIP server; `hyok decrypt` and `hyok cp` read the
//! stored objects without the gateway.
//!
//! Configuration: the `[gateway]` section of `hyok.toml` ([`hyok::config::GatewayConfig`]).
//! Design: `docs/DESIGN.md`, "S3 gateway".
//!
//! ```no_run
//! # fn main() -> hyok::Result<()> {
//! let session = hyok::Session::open(hyok::SessionConfig::load(None)?)?;
//! hyok_gateway::run(session, None)
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod access;
mod assembly;
mod authorize;
mod backend;
mod body;
mod buckets;
mod claims;
mod conditional;
mod copy_part;
mod described;
mod direct;
mod encoding;
#[doc(hidden)]
pub mod fuzzing;
mod health;
mod host;
mod idle;
mod inplace;
mod keepalive;
mod limit;
mod listed;
mod meta;
pub mod metrics;
mod multipart;
mod one_complete;
mod pager;
mod presigned;
mod reencrypt;
mod refuse;
mod served;
mod server;
mod service;
pub mod settings;
mod stall;
mod tagging;
mod unread;
mod versions;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyok::{KeySource, Session, Settings};
use s3s::auth::{S3Auth, SecretKey};
use s3s::service::S3ServiceBuilder;
use s3s::{s3_error, S3Result};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use limit::DEFAULT_MAX_REQUESTS;
pub use server::DRAIN;
pub use settings::{BackendKind, GatewaySettings};

struct Auth(HashMap<String, SecretKey>);

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.0
            .get(access_key)
            .cloned()
            .ok_or_else(|| s3_error!(InvalidAccessKeyId))
    }
}

/// A gateway ready to serve: settings resolved, keyrings and backend prepared.
pub struct Gateway {
    state: Arc<service::Gateway>,
    s3: s3s::service::S3Service,
    settings_listen: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    session: Arc<Session>,
}

impl Gateway {
    /// Prepare a gateway from `session` (its configuration's `[gateway]` section; `listen`
    /// overrides the address). Must be called inside a Tokio runtime.
    pub fn new(session: Session, listen: Option<&str>) -> hyok::Result<Self> {
        let base = session
            .file_path()
            .and_then(std::path::Path::parent)
            .map(std::path::Path::to_path_buf);
        let settings =
            GatewaySettings::resolve(session.file().gateway.as_ref(), base.as_deref(), listen)?;
        let session = Arc::new(session);
        let mut by_keyring: HashMap<Option<String>, Arc<Session>> = HashMap::new();
        let mut callers = HashMap::new();
        let mut secrets = HashMap::new();
        for c in &settings.credentials {
            let s = by_keyring
                .entry(c.keyring.clone())
                .or_insert_with(|| {
                    Arc::new(session.with_keys(match &c.keyring {
                        Some(k) => KeySource::Keyring(k.clone()),
                        None => KeySource::Default,
                    }))
                })
                .clone();
            // Open the keys now: a wrong keyring is a start-up error, not a failed request.
            s.client(Settings::default())?;
            secrets.insert(c.access_key_id.clone(), SecretKey::from(c.secret.as_str()));
            callers.insert(
                c.access_key_id.clone(),
                Arc::new(service::Caller {
                    id: c.access_key_id.clone(),
                    keyring: c.keyring.clone().unwrap_or_else(|| "(default)".into()),
                    patterns: c.patterns.clone(),
                    session: s,
                }),
            );
        }
        let tls = match &settings.tls {
            Some((cert, key)) => Some(server::tls_acceptor(cert, key)?),
            None => None,
        };
        let metrics = Arc::new(metrics::Metrics::default());
        let state = Arc::new(service::Gateway {
            backend: backend::Backend::new(
                settings.backend.clone(),
                session.clone(),
                metrics.backend_reads(),
            )?,
            callers,
            transfer: session.transfer(None, None),
            rt: tokio::runtime::Handle::current(),
            metrics,
            memory: Arc::new(Semaphore::new(service::SMALL_BODY_BUDGET_KIB)),
            limits: Settings::default().limits,
            requests: Arc::new(Semaphore::new(settings.max_requests)),
            idle_timeout: settings.idle_timeout,
            keepalive_after: settings.keepalive_after,
            health: health::HealthCache::default(),
            direct_parts: settings.direct_parts,
            parts_in_place: settings.parts_in_place,
            described: Default::default(),
            listed: Default::default(),
            completing: Default::default(),
        });
        let mut b = S3ServiceBuilder::new(service::GatewayS3(state.clone()));
        b.set_auth(Auth(secrets));
        if !settings.virtual_host_domains.is_empty() {
            b.set_host(host::Domains::new(settings.virtual_host_domains.clone()));
        }
        Ok(Self {
            state,
            s3: b.build(),
            settings_listen: settings.listen,
            tls,
            session,
        })
    }

    /// The configured address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.settings_listen
    }

    /// Whether TLS is on.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serve on `listener` until `shutdown` completes; then drain (see [`DRAIN`]) and close
    /// the audit log (everything recorded on disk, an exit checkpoint signed).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> hyok::Result<()> {
        let Self {
            state,
            s3,
            tls,
            session,
            ..
        } = self;
        server::serve(state, s3, listener, tls, shutdown).await;
        tokio::task::spawn_blocking(move || match Arc::try_unwrap(session) {
            Ok(s) => s.close(),
            // A request still holds it (dropped after the drain time): at least flush.
            Err(s) => s.flush(),
        })
        .await
        .map_err(|e| hyok::Error::Io {
            what: "closing the audit log".into(),
            source: std::io::Error::other(e.to_string()),
        })?
    }
}

/// Completes on SIGINT or SIGTERM.
pub use hyok::frontend::shutdown_signal;

/// Run the gateway of `session`'s configuration until SIGINT/SIGTERM (blocking). Prints
/// the address it listens on to stderr.
pub fn run(session: Session, listen: Option<&str>) -> hyok::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| hyok::Error::Io {
            what: "starting the runtime".into(),
            source: e,
        })?;
    rt.block_on(async {
        let gw = Gateway::new(session, listen)?;
        let addr = gw.listen_addr();
        let listener = TcpListener::bind(addr).await.map_err(|e| hyok::Error::Io {
            what: format!("listening on {addr}"),
            source: e,
        })?;
        let local = listener.local_addr().unwrap_or(addr);
        eprintln!(
            "hyok gateway: listening on {}://{local}",
            if gw.is_tls() { "https" } else { "http" }
        );
        gw.serve(listener, shutdown_signal()).await?;
        eprintln!("hyok gateway: stopped");
        Ok(())
    })
}
