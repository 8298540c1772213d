//! Prometheus-style metrics (text exposition format 0.0.4) at `GET /metrics`: requests by
//! method and status class, request latency histogram, plaintext bytes in and out,
//! key-using operations (count, failures, latency), access denials, requests in flight.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use hyok::store::ReadCounter;
use std::time::Duration;

/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];
const METHODS: [&str; 6] = ["GET", "PUT", "POST", "DELETE", "HEAD", "OTHER"];
const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.micros
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    fn render(&self, out: &mut String, name: &str) {
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.buckets[i].load(Relaxed)
            );
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// The gateway's counters.
#[derive(Default)]
pub struct Metrics {
    requests: [[AtomicU64; CLASSES.len()]; METHODS.len()],
    latency: Histogram,
    in_flight: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    key_ops: AtomicU64,
    key_failures: AtomicU64,
    key_latency: Histogram,
    denied: AtomicU64,
    throttled: AtomicU64,
    kept_alive: AtomicU64,
    direct_completes: AtomicU64,
    direct_parts: AtomicU64,
    inplace_parts: AtomicU64,
    inplace_completes: AtomicU64,
    backend_reads: Arc<ReadCounter>,
}

impl Metrics {
    /// A request started.
    pub fn start(&self) {
        self.in_flight.fetch_add(1, Relaxed);
    }

    /// A request ended with `status` after `d`.
    pub fn end(&self, method: &str, status: u16, d: Duration) {
        self.in_flight.fetch_sub(1, Relaxed);
        let m = METHODS
            .iter()
            .position(|x| *x == method)
            .unwrap_or(METHODS.len() - 1);
        let c = match status {
            200..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            _ => 3,
        };
        self.requests[m][c].fetch_add(1, Relaxed);
        self.latency.observe(d);
    }

    /// Plaintext bytes received and stored.
    pub fn bytes_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Relaxed);
    }

    /// Plaintext bytes decrypted and sent.
    pub fn bytes_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Relaxed);
    }

    /// One encrypt or decrypt (each uses the key stores once, or the cache).
    pub fn key_use(&self, d: Duration, ok: bool) {
        self.key_ops.fetch_add(1, Relaxed);
        if !ok {
            self.key_failures.fetch_add(1, Relaxed);
        }
        self.key_latency.observe(d);
    }

    /// A request refused by a credential's bucket patterns.
    pub fn denied(&self) {
        self.denied.fetch_add(1, Relaxed);
    }

    /// A request refused with SlowDown (too many in flight).
    pub fn throttled(&self) {
        self.throttled.fetch_add(1, Relaxed);
    }

    /// A Complete ran past `[gateway] keepalive_after`: its answer was started kept alive.
    pub fn kept_alive(&self) {
        self.kept_alive.fetch_add(1, Relaxed);
    }

    /// A multipart part sealed in place (direct frames).
    pub fn direct_part(&self) {
        self.direct_parts.fetch_add(1, Relaxed);
    }

    /// A multipart upload completed by direct frames (no re-encryption).
    pub fn direct_complete(&self) {
        self.direct_completes.fetch_add(1, Relaxed);
    }

    /// A direct part put straight into the backend upload (parts in place).
    pub fn inplace_part(&self) {
        self.inplace_parts.fetch_add(1, Relaxed);
    }

    /// A multipart upload completed from parts in place (a backend Complete and a copy).
    pub fn inplace_complete(&self) {
        self.inplace_completes.fetch_add(1, Relaxed);
    }

    /// The counter the backend's stores count their read requests in.
    pub fn backend_reads(&self) -> Arc<ReadCounter> {
        self.backend_reads.clone()
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP hyok_gateway_requests_total S3 requests by method and status class.\n# TYPE hyok_gateway_requests_total counter\n");
        for (m, method) in METHODS.iter().enumerate() {
            for (c, class) in CLASSES.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "hyok_gateway_requests_total{{method=\"{method}\",status=\"{class}\"}} {}",
                    self.requests[m][c].load(Relaxed)
                );
            }
        }
        out.push_str("# HELP hyok_gateway_request_seconds Request latency (until the response head).\n# TYPE hyok_gateway_request_seconds histogram\n");
        self.latency
            .render(&mut out, "hyok_gateway_request_seconds");
        let simple = [
            (
                "hyok_gateway_requests_in_flight",
                "gauge",
                "Requests being served.",
                self.in_flight.load(Relaxed),
            ),
            (
                "hyok_gateway_plaintext_bytes_in_total",
                "counter",
                "Plaintext bytes stored.",
                self.bytes_in.load(Relaxed),
            ),
            (
                "hyok_gateway_plaintext_bytes_out_total",
                "counter",
                "Plaintext bytes served.",
                self.bytes_out.load(Relaxed),
            ),
            (
                "hyok_gateway_key_operations_total",
                "counter",
                "Encryptions and decryptions (each one key-store call or cache hit).",
                self.key_ops.load(Relaxed),
            ),
            (
                "hyok_gateway_key_operation_errors_total",
                "counter",
                "Encryptions and decryptions that failed.",
                self.key_failures.load(Relaxed),
            ),
            (
                "hyok_gateway_access_denied_total",
                "counter",
                "Requests refused by a credential's bucket patterns.",
                self.denied.load(Relaxed),
            ),
            (
                "hyok_gateway_throttled_total",
                "counter",
                "Requests refused with SlowDown because [gateway] max_requests were in flight.",
                self.throttled.load(Relaxed),
            ),
            (
                "hyok_gateway_kept_alive_total",
                "counter",
                "CompleteMultipartUploads still running after [gateway] keepalive_after, answered 200 with spaces, then the outcome.",
                self.kept_alive.load(Relaxed),
            ),
            (
                "hyok_gateway_direct_parts_total",
                "counter",
                "Multipart parts sealed in place as frames of the final object.",
                self.direct_parts.load(Relaxed),
            ),
            (
                "hyok_gateway_direct_completes_total",
                "counter",
                "Multipart uploads completed from parts sealed in place (no re-encryption).",
                self.direct_completes.load(Relaxed),
            ),
            (
                "hyok_gateway_inplace_parts_total",
                "counter",
                "Direct parts put straight into the backend's multipart upload (S3 backends).",
                self.inplace_parts.load(Relaxed),
            ),
            (
                "hyok_gateway_inplace_completes_total",
                "counter",
                "Multipart uploads completed from parts in place (backend Complete, then a copy).",
                self.inplace_completes.load(Relaxed),
            ),
        ];
        for (name, kind, help, v) in simple {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        out.push_str("# HELP hyok_gateway_backend_reads_total Read requests sent to the backend (a GET of an object up to 1 MiB is one; HEADs are counted apart).\n# TYPE hyok_gateway_backend_reads_total counter\n");
        let _ = writeln!(
            out,
            "hyok_gateway_backend_reads_total{{kind=\"get\"}} {}\nhyok_gateway_backend_reads_total{{kind=\"head\"}} {}",
            self.backend_reads.gets(),
            self.backend_reads.heads()
        );
        out.push_str("# HELP hyok_gateway_key_operation_seconds Whole encrypt/decrypt duration, key-store call included.\n# TYPE hyok_gateway_key_operation_seconds histogram\n");
        self.key_latency
            .render(&mut out, "hyok_gateway_key_operation_seconds");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histograms() {
        let m = Metrics::default();
        m.start();
        m.end("PUT", 200, Duration::from_millis(20));
        m.start();
        m.end("GET", 404, Duration::from_secs(2));
        m.bytes_in(1024);
        m.kept_alive();
        let text = m.render();
        assert!(text.contains("hyok_gateway_requests_total{method=\"PUT\",status=\"2xx\"} 1"));
        assert!(text.contains("hyok_gateway_requests_total{method=\"GET\",status=\"4xx\"} 1"));
        assert!(text.contains("hyok_gateway_request_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("hyok_gateway_request_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("hyok_gateway_plaintext_bytes_in_total 1024"));
        assert!(text.contains("hyok_gateway_requests_in_flight 0"));
        assert!(text.contains("hyok_gateway_backend_reads_total{kind=\"get\"} 0"));
        assert!(text.contains("hyok_gateway_kept_alive_total 1"));
    }
}
