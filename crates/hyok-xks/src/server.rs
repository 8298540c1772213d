//! The HTTP server: hyper (HTTP/1.1 and HTTP/2) over plain TCP or rustls (TLS 1.2 and 1.3,
//! the aws-lc-rs provider), optionally requiring client certificates chained to a
//! configured CA (mutual TLS). Connections are bounded in number, TLS handshakes and request
//! headers in time.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;
use crate::idle;
use crate::proxy::Proxy;

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 4096;
/// Time allowed for a connection's first bytes, a TLS handshake, and a request's headers;
/// also how long a connection may have no request open (`idle.rs`).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// The rustls configuration of the TLS files: server certificate and key, and with
/// `client_ca` a verifier that requires client certificates chained to it.
pub fn tls_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!(
            "cannot read a PEM private key from {}: {e}",
            files.key.display()
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| format!("client_ca {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("client_ca {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(Arc::new(crate::client_auth::SubjectCheck::new(
                verifier,
                files.client_names.clone(),
            )))
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("tls_cert/tls_key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serve `proxy` on `listener` until `shutdown` completes.
pub async fn serve(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => return,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(target: "hyok::xks", "accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let requests = Arc::new(idle::Requests::default());
            let counted = requests.clone();
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                let open = counted.begin();
                async move {
                    let _open = open;
                    let http1 = req.version() < http::Version::HTTP_2;
                    let (parts, body) = req.into_parts();
                    let (body, read) = crate::unread::track(body);
                    let mut a = proxy.handle(http::Request::from_parts(parts, body)).await;
                    let body = std::mem::take(&mut a.body);
                    let mut resp = hyper::Response::builder()
                        .status(a.status)
                        .header("content-type", "application/json");
                    if a.status == http::StatusCode::METHOD_NOT_ALLOWED {
                        resp = resp.header("allow", "POST");
                    }
                    // An answer that left the request body on the connection ends it
                    // (`unread.rs`; HTTP/2 resets the stream by itself).
                    if http1 && read.left_unread() {
                        resp = resp.header("connection", "close");
                    }
                    resp.body(Full::new(Bytes::from(body)))
                }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT);
            match acceptor {
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::info!(target: "hyok::xks", %peer, "TLS handshake refused: {e}");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    idle::serve_until_idle(conn, requests, HANDSHAKE_TIMEOUT).await;
                }
                None => {
                    // hyper's automatic HTTP/1-or-2 detection waits for the first bytes with
                    // no timeout of its own: a connection that sends nothing would hold its
                    // place for good.
                    let mut first = [0u8; 1];
                    if !matches!(
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await,
                        Ok(Ok(1..))
                    ) {
                        return;
                    }
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    idle::serve_until_idle(conn, requests, HANDSHAKE_TIMEOUT).await;
                }
            }
        });
    }
}
