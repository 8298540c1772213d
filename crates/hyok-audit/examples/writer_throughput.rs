//! Raw writer throughput: N key events into a log, one thread, and the CPU time per record
//! (caller + writer thread).
//!
//! `cargo run --release -p hyok-audit --example writer_throughput -- [N] [DIR] [--no-sync]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyok_audit::{AuditLog, LogConfig, PemSigner, SignatureAlgorithm};
use hyok_audit::{KeyEvent, KeyOp, KeyRef};
use hyok_core::AlgorithmSuite;

fn cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let dir = args
        .get(1)
        .filter(|a| !a.starts_with("--"))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("writer-throughput-{}.log", std::process::id()));
    let mut config = LogConfig::new(&path);
    config.sync = !args.iter().any(|a| a == "--no-sync");
    let signer = Arc::new(PemSigner::generate(SignatureAlgorithm::EcdsaP256Sha256).unwrap());
    let log = AuditLog::open(config, signer).unwrap();
    let info = KeyRef {
        backend: "raw-aes",
        uri: "raw-aes:bench/key-1?file=/keys/bench.key".into(),
    };
    let (t, c) = (Instant::now(), cpu());
    for i in 0..n {
        log.record(KeyEvent {
            op: KeyOp::Generate,
            key: info.clone(),
            suite: AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
            context_sha256: [1; 32],
            edk_sha256: Some([2; 32]),
            message_id: Some(vec![3; 32]),
            subject: Some(format!("object-{i}")),
            error: None,
            duration: Duration::from_micros(5),
        });
    }
    let queued = t.elapsed();
    let closed = log.close().unwrap();
    let (wall, cpu_used) = (t.elapsed(), cpu() - c);
    println!(
        "{n} records: queued in {:.3} s, written in {:.3} s; {:.2} us CPU per record ({:.0} records/s)",
        queued.as_secs_f64(),
        wall.as_secs_f64(),
        cpu_used.as_secs_f64() * 1e6 / n as f64,
        n as f64 / wall.as_secs_f64()
    );
    println!(
        "writer thread: {} commits, {:.2} us CPU per record",
        closed.commits,
        closed.writer_cpu.as_secs_f64() * 1e6 / n as f64
    );
    let _ = std::fs::remove_file(&path);
}
