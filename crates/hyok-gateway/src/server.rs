//! The HTTP(S) server: accepts connections (TLS when configured), answers unsigned
//! `GET /health` and `GET /metrics` itself, hands everything else to the S3 service (at
//! most `[gateway] max_requests` at once, see `limit.rs`), counts every request, and shuts
//! down gracefully: on the shutdown signal it stops accepting, lets requests in flight
//! finish for up to [`DRAIN`], then drops the rest (an upload cut off that way is aborted,
//! so it leaves nothing visible). At most [`MAX_CONNECTIONS`] connections are served at
//! once (more wait in the listen backlog), and a client that stalls is cut off after
//! `[gateway] idle_timeout` (`stall.rs`), as is a connection with no request open
//! (`idle.rs`).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::service::S3Service;
use s3s::Body;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::idle::{self, Activity, Tracked};
use crate::service::Gateway;
use crate::stall::Deadline;

/// How long requests in flight may take to finish after the shutdown signal.
pub const DRAIN: Duration = Duration::from_secs(30);
/// Connections served at once; more wait in the listen backlog until one ends.
pub(crate) const MAX_CONNECTIONS: usize = 4096;

fn is_signed(req: &Request<Incoming>) -> bool {
    req.headers().contains_key(hyper::header::AUTHORIZATION)
        || req
            .uri()
            .query()
            .is_some_and(|q| q.contains("X-Amz-Signature=") || q.contains("Signature="))
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// `/health` (see `health.rs`).
async fn health(g: &Gateway) -> Response<Body> {
    let (healthy, text) = crate::health::report(g).await;
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    self::text(status, text)
}

/// Every answer carries `x-amz-request-id`, as S3's do, and the gateway's log lines about
/// the request carry the same id (`request{id=…}`), so that an operator can find what a
/// client reports (SDKs show it as the request id of an error).
async fn handle(
    g: Arc<Gateway>,
    s3: S3Service,
    req: Request<Incoming>,
) -> Result<Response<Body>, s3s::HttpError> {
    use tracing::Instrument;
    let id = crate::multipart::new_upload_id()[..16].to_ascii_uppercase();
    let span = tracing::info_span!("request", id = %id);
    let mut res = handle_one(g, s3, req, &id).instrument(span).await;
    if let (Ok(r), Ok(v)) = (&mut res, hyper::header::HeaderValue::from_str(&id)) {
        r.headers_mut().insert("x-amz-request-id", v);
    }
    res
}

/// An S3 error body (`<Error>…</Error>`, a body held whole) gets `<RequestId>`, as S3's:
/// tools that log the body, not the headers, then show the id the gateway's log carries.
fn error_body_with_id(r: &mut Response<Body>, id: &str) {
    if r.status().as_u16() < 400 {
        return;
    }
    let Some(xml) = r.body().bytes() else {
        return;
    };
    let Some(end) = xml.strip_suffix(b"</Error>".as_slice()) else {
        return;
    };
    if xml.windows(11).any(|w| w == b"<RequestId>") {
        return;
    }
    let mut with = Vec::with_capacity(xml.len() + id.len() + 32);
    with.extend_from_slice(end);
    with.extend_from_slice(b"<RequestId>");
    with.extend_from_slice(id.as_bytes());
    with.extend_from_slice(b"</RequestId></Error>");
    if r.headers().contains_key(hyper::header::CONTENT_LENGTH) {
        r.headers_mut()
            .insert(hyper::header::CONTENT_LENGTH, with.len().into());
    }
    *r.body_mut() = Body::from(bytes::Bytes::from(with));
}

/// An answer whose outcome is still to come (a long Complete, `keepalive.rs`) gets the body
/// that keeps the client waiting and then carries the outcome.
fn keep_alive(r: &mut Response<Body>, id: &str) {
    let Some(pending) = r.extensions_mut().remove::<crate::keepalive::Pending>() else {
        return;
    };
    if let Some(body) = crate::keepalive::body(&pending, id) {
        r.headers_mut().remove(hyper::header::CONTENT_LENGTH);
        *r.body_mut() = body;
    }
}

async fn handle_one(
    g: Arc<Gateway>,
    s3: S3Service,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response<Body>, s3s::HttpError> {
    let started = Instant::now();
    g.metrics.start();
    let method = req.method().as_str().to_owned();
    let own = req.method() == hyper::Method::GET && !is_signed(&req);
    let res = match req.uri().path() {
        "/health" if own => Ok(health(&g).await),
        "/metrics" if own => Ok(text(StatusCode::OK, g.metrics.render())),
        _ => {
            // A body the answer leaves unread is drained or closes the connection.
            let refused = crate::presigned::refused(req.uri().query());
            let (req, close) = crate::unread::guard(req);
            let idle = g.idle_timeout;
            match (refused, crate::limit::try_enter(&g.requests)) {
                (Some(mut refused), _) => {
                    drop(req);
                    error_body_with_id(&mut refused, id);
                    Ok(close.apply(refused))
                }
                (None, Some(permit)) => s3
                    .call(req.map(|b| Body::http_body(crate::stall::Idle::new(b, idle))))
                    .await
                    .map(|mut r| {
                        error_body_with_id(&mut r, id);
                        keep_alive(&mut r, id);
                        close.apply(crate::limit::hold(r, permit))
                    }),
                (None, None) => {
                    g.metrics.throttled();
                    drop(req);
                    let mut busy = crate::limit::slow_down();
                    error_body_with_id(&mut busy, id);
                    Ok(close.apply(busy))
                }
            }
        }
    };
    let status = res.as_ref().map_or(500, |r| r.status().as_u16());
    g.metrics.end(&method, status, started.elapsed());
    res
}

/// TLS settings from PEM files.
pub(crate) fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> hyok::Result<TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        hyok::Error::Config(format!("[gateway] {what}: {e}"))
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(&format!("tls_cert {}", cert.display()), &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&format!("tls_cert {}", cert.display()), &e))?;
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(&format!("tls_key {}", key.display()), &e))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad("TLS certificate and key", &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serve until `shutdown` completes, then drain.
pub(crate) async fn serve(
    g: Arc<Gateway>,
    s3: S3Service,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop, stopping) = watch::channel(false);
    let idle = g.idle_timeout;
    let mut builder = ConnBuilder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(idle);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (socket, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = socket.set_nodelay(true);
        let socket = Deadline::new(socket, idle);
        let activity = Arc::new(Activity::default());
        let (g2, s32, a2) = (g.clone(), s3.clone(), activity.clone());
        let service = hyper::service::service_fn(move |req| {
            let open = a2.begin();
            let answer = handle(g2.clone(), s32.clone(), req);
            async move {
                let res = answer.await;
                res.map(|r| r.map(|body| Tracked::new(body, open)))
            }
        });
        let builder = builder.clone();
        let mut stopping = stopping.clone();
        match &tls {
            None => {
                tokio::spawn(async move {
                    let _permit = permit;
                    let conn = builder.serve_connection(TokioIo::new(socket), service);
                    idle::drive(conn.into_owned(), activity, idle, stopping).await;
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    // A client that does not finish its handshake is not waited for.
                    let stream = tokio::select! {
                        r = tokio::time::timeout(idle, acceptor.accept(socket)) => match r {
                            Ok(Ok(stream)) => stream,
                            _ => return,
                        },
                        _ = stopping.wait_for(|s| *s) => return,
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    idle::drive(conn.into_owned(), activity, idle, stopping).await;
                });
            }
        }
    }
    drop(listener);
    tracing::info!(in_flight = g.metrics.in_flight(), "shutting down");
    let _ = stop.send(true);
    // Every connection holds a place until it ends: all places free means all ended.
    let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("requests still running after {DRAIN:?}: dropped (their uploads abort)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Response<Body> {
        let mut r = Response::new(Body::from(body.to_owned()));
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        r.headers_mut()
            .insert(hyper::header::CONTENT_LENGTH, body.len().into());
        r
    }

    #[test]
    fn error_bodies_carry_the_request_id() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code></Error>"#;
        let mut r = answer(404, xml);
        error_body_with_id(&mut r, "0123ABCD");
        let got = String::from_utf8(r.body().bytes().unwrap().to_vec()).unwrap();
        assert!(got.ends_with("<Code>NoSuchKey</Code><RequestId>0123ABCD</RequestId></Error>"));
        assert_eq!(
            r.headers()[hyper::header::CONTENT_LENGTH],
            got.len().to_string()
        );
        // Not twice, not into answers that are not errors or not S3 error documents.
        error_body_with_id(&mut r, "FFFF");
        let again = String::from_utf8(r.body().bytes().unwrap().to_vec()).unwrap();
        assert_eq!(again, got);
        for (status, body) in [(200, "<Error>in an object</Error>"), (503, "down\n")] {
            let mut r = answer(status, body);
            error_body_with_id(&mut r, "0123ABCD");
            assert_eq!(r.body().bytes().unwrap(), body.as_bytes());
        }
    }
}
