//! # hyok-xks
//!
//! `hyok xks`: an AWS KMS External Key Store (XKS) proxy implementing the *XKS Proxy API
//! specification v1.0.3* over hyok key stores, so AWS services (S3 SSE-KMS, EBS, RDS …)
//! encrypt under keys that never leave the organisation's HSM or Vault/OpenBao.
//!
//! - Endpoints `POST {prefix}/kms/xks/v1/keys/{keyId}/metadata|encrypt|decrypt` and
//!   `POST {prefix}/kms/xks/v1/health` ([`route`], [`proxy`]); GET answers 405.
//! - AES-GCM inside the key store through [`hyok::aead`] (PKCS#11, Vault/OpenBao Transit,
//!   raw key files), AAD framed as the specification says ([`framing`]), the key version of
//!   versioned keys in `ciphertextMetadata`, the ciphertext data integrity value of
//!   Appendix C.
//! - SigV4 (`kms-xks-proxy`, up to two credential pairs per store, ±5 minutes) in
//!   [`sigv4`]; TLS and optional mutual TLS (client CA and subject name) in [`server`] and
//!   [`client_auth`].
//! - Per-key allow-lists over the request metadata ([`policy`]); every request logged
//!   ([`record`]); bounded queues and deadlines ([`capacity`]); per-backend health
//!   ([`health`]).
//!
//! Front ends start it from a [`hyok::Session`] with [`start`]; see `docs/XKS.md`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod capacity;
pub mod client_auth;
pub mod config;
pub mod error;
pub mod framing;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
mod idle;
pub mod policy;
pub mod proxy;
pub mod record;
pub mod route;
mod run;
pub mod server;
pub mod sigv4;
mod unread;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use config::XksConfig;
pub use error::{ErrorName, XksError};
pub use proxy::Proxy;
pub use run::run;

/// A proxy bound to its address, ready to serve.
pub struct Bound {
    /// The proxy.
    pub proxy: Arc<Proxy>,
    /// The listening socket.
    pub listener: tokio::net::TcpListener,
    /// TLS, when configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The address actually bound (port 0 resolved).
    pub addr: SocketAddr,
}

impl Bound {
    /// `https://ADDR` or `http://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Serve until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        server::serve(self.proxy, self.listener, self.tls, shutdown).await;
    }
}

/// Read `[xks]` from the session's configuration (`listen` overrides its address), open
/// every key, load TLS, and bind. Configuration errors are `hyok::Error::Config` (exit 2).
pub async fn start(session: &hyok::Session, listen: Option<&str>) -> hyok::Result<Bound> {
    let config = config_of(session.file(), session.file_path(), listen)?;
    let mut bound = bind(&config, hyok::aead::open_aead, session.audit_sink()).await?;
    if let Some(guard) = session.guard() {
        Arc::get_mut(&mut bound.proxy)
            .ok_or_else(|| hyok::Error::Config("the XKS proxy is already shared".into()))?
            .set_policy(Some(guard.via("xks")));
    }
    Ok(bound)
}

/// The checked `[xks]` section of a configuration file read from `path`.
pub fn config_of(
    file: &hyok::config::Config,
    path: Option<&std::path::Path>,
    listen: Option<&str>,
) -> hyok::Result<XksConfig> {
    let base = path.and_then(std::path::Path::parent);
    XksConfig::from_table(file.xks.as_ref(), base, listen).map_err(|e| hyok::Error::Config(e.0))
}

/// Open the keys of a checked configuration with `open` and bind.
pub async fn bind(
    config: &XksConfig,
    open: impl Fn(&str) -> Result<hyok::aead::SharedAeadKey, hyok::aead::KeyStoreError>,
    audit: Option<hyok::audit::LogSink>,
) -> hyok::Result<Bound> {
    let tls = config
        .tls
        .as_ref()
        .map(server::tls_config)
        .transpose()
        .map_err(hyok::Error::Config)?;
    let proxy = Proxy::open(config, open, audit)
        .await
        .map_err(hyok::Error::Config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| hyok::Error::io(format!("listening on {}", config.listen), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| hyok::Error::io("reading the bound address", e))?;
    Ok(Bound {
        proxy: Arc::new(proxy),
        listener,
        tls,
        addr,
    })
}
