//! What every network key store shares: timeouts, bounded retries with backoff, secrets read
//! from the environment or a file, and TLS material read from PEM files.
//!
//! Retries follow one rule for all backends: only calls that are safe to repeat (transit
//! encrypt/decrypt, KMIP Encrypt/Decrypt/Locate/Get …) are retried, and only after failures
//! that say nothing was done or that the service is briefly unable to answer — a refused or
//! reset connection, HTTP 429 and 5xx. A request that timed out is not retried (the service may
//! still be working on it), and neither is anything that names a cause: a refused token, a
//! missing key, a failed authentication tag. The total time is bounded by
//! [`RetryConfig::retry_timeout`] plus one request timeout.
//!
//! With several nodes of one cluster ([`crate::endpoints`]) the same budget covers rounds over
//! the nodes; a request that timed out, or whose connection broke, then goes to the next node
//! when the call is idempotent (it may have been done on the first, which is harmless for such
//! calls), never back to the same one.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Exponential backoff with full jitter between attempts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffConfig {
    /// Upper bound of the first pause.
    pub init_backoff: Duration,
    /// Largest upper bound of any pause.
    pub max_backoff: Duration,
    /// Growth factor of the upper bound per attempt.
    pub base: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        }
    }
}

/// How often and how long a failed call is tried again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryConfig {
    /// Pauses between attempts.
    pub backoff: BackoffConfig,
    /// Attempts after the first one (0 = never retry).
    pub max_retries: usize,
    /// No new attempt starts once this much time has passed since the first one.
    pub retry_timeout: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryConfig {
    /// Most retries a key URI's `retries=` may ask for.
    pub const MAX_RETRIES: usize = 10;

    /// `retries=N` of a `scheme` key URI: a number from 0 to [`Self::MAX_RETRIES`].
    pub fn max_retries_attr(value: &str, scheme: &str) -> Result<usize> {
        value
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= Self::MAX_RETRIES)
            .ok_or_else(|| {
                Error::Config(format!(
                    "{scheme}: retries={value:?} must be a number from 0 to {}",
                    Self::MAX_RETRIES
                ))
            })
    }

    /// No retries at all (non-idempotent calls such as key creation or rotation).
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }
}

/// Connection and request time limits of a network key store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect plus TLS handshake.
    pub connect: Duration,
    /// One request, from sending it to having read the whole answer.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(15),
        }
    }
}

impl Timeouts {
    /// Both limits set to `secs` seconds (the `timeout=` key URI attribute).
    pub fn from_secs_attr(value: &str, scheme: &str) -> Result<Self> {
        let secs: f64 = value
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite())
            .ok_or_else(|| {
                Error::Config(format!(
                    "{scheme}: timeout={value:?} is not a number of seconds"
                ))
            })?;
        if !(0.05..=3600.0).contains(&secs) {
            return Err(Error::Config(format!(
                "{scheme}: timeout={value} is out of range (0.05 to 3600 seconds)"
            )));
        }
        let d = Duration::from_secs_f64(secs);
        Ok(Self {
            connect: d,
            request: d,
        })
    }
}

/// One failed attempt: the error, and whether another attempt may succeed.
#[derive(Debug)]
pub struct AttemptError {
    /// What went wrong (returned as is when no retry follows).
    pub error: Error,
    /// Whether the call may be repeated (on this node or another) after this failure.
    pub retryable: bool,
    /// Whether the failure blames the node (no connection, no answer in time, 429/5xx,
    /// sealed): with several nodes it opens the node's circuit (see [`crate::endpoints`]).
    pub node_failed: bool,
}

impl AttemptError {
    /// A failure worth another attempt (refused connection, 429, 5xx).
    pub fn retryable(error: Error) -> Self {
        Self {
            error,
            retryable: true,
            node_failed: true,
        }
    }

    /// A failure that blames the node (no answer in time, a reset connection, 429/5xx) after
    /// the request may have been processed there: sent again only when `repeat` (idempotent
    /// calls, and another node to send it to).
    pub fn node(error: Error, repeat: bool) -> Self {
        Self {
            error,
            retryable: repeat,
            node_failed: true,
        }
    }

    /// A failure that another attempt will not fix.
    pub fn permanent(error: Error) -> Self {
        Self {
            error,
            retryable: false,
            node_failed: false,
        }
    }
}

impl From<Error> for AttemptError {
    fn from(error: Error) -> Self {
        Self::permanent(error)
    }
}

/// Run `attempt` until it succeeds, fails permanently, or the retry budget is spent.
pub async fn retry<T, F, Fut>(config: &RetryConfig, what: &str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, AttemptError>>,
{
    let started = Instant::now();
    let mut bound = config.backoff.init_backoff;
    let mut retries = 0;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let pause = jitter(bound);
                if !e.retryable
                    || retries >= config.max_retries
                    || started.elapsed() + pause > config.retry_timeout
                {
                    return Err(e.error);
                }
                retries += 1;
                tracing::debug!(
                    target: "hyok::retry",
                    "{what}: attempt {retries} failed ({}), retrying in {pause:?}",
                    e.error
                );
                tokio::time::sleep(pause).await;
                let next = bound.as_secs_f64() * config.backoff.base;
                bound = Duration::from_secs_f64(next.min(config.backoff.max_backoff.as_secs_f64()));
            }
        }
    }
}

/// A uniformly random duration in `[0, bound]` ("full jitter").
pub(crate) fn jitter(bound: Duration) -> Duration {
    let mut b = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        return bound;
    }
    let r = u64::from_le_bytes(b) as f64 / u64::MAX as f64;
    Duration::from_secs_f64(bound.as_secs_f64() * r)
}

/// A secret string (token, AppRole secret id): zeroized on drop, redacted in `Debug`, not
/// `Clone`.
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Take ownership of a secret.
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The secret itself; do not keep copies.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// From an environment variable, if set and not empty.
    pub fn from_env(var: &str) -> Option<Self> {
        std::env::var(var)
            .ok()
            .map(|v| Self::new(v.trim().to_owned()))
            .filter(|s| !s.0.is_empty())
    }

    /// The first line of a file (Vault agent sink files, mounted secrets), trimmed.
    pub fn from_file(path: &Path, what: &str) -> Result<Self> {
        let bytes = crate::secret_file::read(
            path,
            &format!("{what} file"),
            64 * 1024,
            crate::secret_file::Secrecy::Secret,
        )?;
        let text = Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
        let first = text.lines().next().unwrap_or("").trim();
        if first.is_empty() {
            return Err(Error::Config(format!(
                "{what} file {} is empty",
                path.display()
            )));
        }
        Ok(Self::new(first.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// Fail with a message saying why when a key URI carries a secret.
pub fn refuse_secret_attributes(uri: &crate::uri::KeyUri, secrets: &[(&str, &str)]) -> Result<()> {
    for (attr, instead) in secrets {
        if uri.query.contains_key(*attr) {
            return Err(Error::Config(format!(
                "{}: {attr}= must not be in a key URI (URIs end up in shell history, process \
                 lists and logs); {instead}",
                uri.scheme
            )));
        }
    }
    Ok(())
}

/// Text of an error and all its sources, joined (`a: b: c`), without repeats.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    one_line(&parts.join(": "), 400)
}

/// Make server-provided or error text safe for a one-line message: control characters
/// become spaces and it is cut to `max` characters.
pub fn one_line(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(any(feature = "vault", feature = "kmip"))]
/// Run a batched server call over `items` in chunks of at most `max`, one result per item in
/// order. A chunk that fails as a whole gives its error to its first item and a reference to
/// it to the others (so the full cause is reported once).
pub(crate) async fn in_chunks<'a, T, U, F, Fut>(
    key: &str,
    items: &'a [T],
    max: usize,
    mut call: F,
) -> Vec<Result<U>>
where
    F: FnMut(&'a [T]) -> Fut,
    Fut: Future<Output = Result<Vec<Result<U>>>>,
{
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(max.max(1)) {
        match call(chunk).await {
            Ok(v) => out.extend(v),
            Err(e) => {
                let text = one_line(&e.to_string(), 400);
                out.push(Err(e));
                for _ in 1..chunk.len() {
                    out.push(Err(Error::Backend {
                        key: key.to_owned(),
                        detail: format!("batch failed: {text}"),
                    }));
                }
            }
        }
    }
    out
}

#[cfg(any(feature = "vault", feature = "kmip"))]
/// Fail every item at `indices` with one failure: the error in full for the first, then a
/// reference to it (`why: …`), so the cause is reported once.
pub(crate) fn fail_each<U>(
    key: &str,
    indices: impl IntoIterator<Item = usize>,
    e: Error,
    why: &str,
    out: &mut [Option<Result<U>>],
) {
    let text = one_line(&e.to_string(), 400);
    let mut first = Some(e);
    for i in indices {
        out[i] = Some(Err(first.take().unwrap_or_else(|| Error::Backend {
            key: key.to_owned(),
            detail: format!("{why}: {text}"),
        })));
    }
}

#[cfg(any(feature = "vault", feature = "kmip"))]
/// The server half of a batched unwrap, shared by the network key stores. `out` holds one
/// slot per EDK, already filled for those decided locally (not ours, malformed); `todo`
/// pairs each remaining slot's index with what the server needs for it. They go to `call`
/// at most `max` at a time and each result lands in its slot; a chunk that fails as a whole
/// fails each of its items ([`fail_each`]). A slot the server left without a result fails.
pub(crate) async fn unwrap_in_chunks<P, F, Fut>(
    key: &str,
    mut out: Vec<Option<Result<Option<hyok_core::DataKey>>>>,
    todo: &[(usize, P)],
    max: usize,
    mut call: F,
) -> Vec<Result<Option<hyok_core::DataKey>>>
where
    P: Copy,
    F: FnMut(Vec<P>) -> Fut,
    Fut: Future<Output = Result<Vec<Result<hyok_core::DataKey>>>>,
{
    for chunk in todo.chunks(max.max(1)) {
        match call(chunk.iter().map(|(_, p)| *p).collect()).await {
            Ok(results) => {
                for ((i, _), r) in chunk.iter().zip(results) {
                    out[*i] = Some(r.map(Some));
                }
            }
            Err(e) => fail_each(
                key,
                chunk.iter().map(|(i, _)| *i),
                e,
                "batch failed",
                &mut out,
            ),
        }
    }
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(Error::Backend {
                    key: key.to_owned(),
                    detail: "batch item without result".into(),
                })
            })
        })
        .collect()
}

/// The one result of a batched call made for a single item.
pub(crate) fn single<U>(key: &str, server: &str, results: Result<Vec<Result<U>>>) -> Result<U> {
    results?.pop().unwrap_or_else(|| {
        Err(Error::Backend {
            key: key.to_owned(),
            detail: format!("{server} returned no result"),
        })
    })
}

pub(crate) mod pem_files {
    //! Certificates and keys from PEM files.

    use std::path::Path;

    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    #[cfg(feature = "kmip")]
    use rustls_pki_types::PrivateKeyDer;
    use zeroize::Zeroizing;

    use crate::error::{Error, Result};
    use crate::secret_file::Secrecy;

    fn read(path: &Path, what: &str, secrecy: Secrecy) -> Result<Zeroizing<Vec<u8>>> {
        crate::secret_file::read(path, what, 1024 * 1024, secrecy)
    }

    /// Every certificate in a PEM file (at least one).
    pub(crate) fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
        let bytes = read(path, what, Secrecy::Public)?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::Config(format!("{what} {} is not valid PEM: {e}", path.display()))
            })?;
        if certs.is_empty() {
            return Err(Error::Config(format!(
                "{what} {} holds no CERTIFICATE block",
                path.display()
            )));
        }
        Ok(certs)
    }

    /// The private key in a PEM file (PKCS#8, SEC1 or PKCS#1).
    #[cfg(feature = "kmip")]
    pub(crate) fn private_key(path: &Path, what: &str) -> Result<PrivateKeyDer<'static>> {
        let bytes = read(path, what, Secrecy::Secret)?;
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
            Error::Config(format!(
                "{what} {} holds no usable private key (PKCS#8, SEC1 or PKCS#1 PEM; \
                 encrypted keys are not supported): {e}",
                path.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable() -> Error {
        Error::Unavailable {
            key: "k".into(),
            detail: "down".into(),
        }
    }

    #[tokio::test]
    async fn retries_only_retryable_failures_and_stops_at_the_budget() {
        let cfg = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(2),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(5),
        };
        let mut calls = 0;
        let r: Result<()> = retry(&cfg, "t", || {
            calls += 1;
            async { Err(AttemptError::retryable(unavailable())) }
        })
        .await;
        assert!(matches!(r, Err(Error::Unavailable { .. })));
        assert_eq!(calls, 4, "first attempt + 3 retries");

        let mut calls = 0;
        let r: Result<()> = retry(&cfg, "t", || {
            calls += 1;
            async {
                Err(AttemptError::permanent(Error::Denied {
                    key: "k".into(),
                    detail: "no".into(),
                }))
            }
        })
        .await;
        assert!(matches!(r, Err(Error::Denied { .. })));
        assert_eq!(calls, 1, "permanent failures are not retried");

        let mut calls = 0;
        let r = retry(&cfg, "t", || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(AttemptError::retryable(unavailable()))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 3);

        let mut calls = 0;
        let r: Result<()> = retry(&RetryConfig::none(), "t", || {
            calls += 1;
            async { Err(AttemptError::retryable(unavailable())) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn jitter_stays_within_bound() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(10)) <= Duration::from_millis(10));
        }
    }

    #[test]
    fn one_line_strips_controls_and_cuts() {
        assert_eq!(one_line("a\nb\tc", 10), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }

    #[test]
    fn timeout_attribute() {
        let t = Timeouts::from_secs_attr("2.5", "x").unwrap();
        assert_eq!(t.request, Duration::from_millis(2500));
        assert!(Timeouts::from_secs_attr("0", "x").is_err());
        assert!(Timeouts::from_secs_attr("NaN", "x").is_err());
        assert!(Timeouts::from_secs_attr("abc", "x").is_err());
    }
}
