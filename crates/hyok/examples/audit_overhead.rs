//! Cost of the audit log: N encrypts of S bytes through the library, without and with the
//! log, in one process, interleaved in rounds so both see the same machine load.
//!
//! ```text
//! cargo run --release -p hyok --example audit_overhead -- [--messages 10000] [--size 4096]
//!     [--rounds 10] [--dir DIR] [--no-sync] [--commit-delay-ms 2]
//! ```
//!
//! Each encrypt is what `hyok encrypt` does per message: the key step (raw AES key,
//! generate + wrap: one `generate` record), the streaming step into memory, and the
//! message record (`encrypt`). With the log, records go through the group-commit writer
//! (fdatasync per commit unless `--no-sync`) and signed checkpoints every 1,000 records;
//! the log is closed (exit checkpoint) and verified inside the timed part.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyok::audit::{
    verify_file, AuditLog, LogConfig, MessageEvent, MessageOp, PemSigner, SignatureAlgorithm,
    VerifyOptions,
};
use hyok::{Client, EncryptionContext, OpLabel};
use hyok_keystore::observe::context_hash;
use hyok_keystore::raw::RawAesKey;
use hyok_keystore::{KeyManager, Keyring};

struct Args {
    messages: usize,
    size: usize,
    rounds: usize,
    dir: Option<std::path::PathBuf>,
    sync: bool,
    commit_delay: Option<Duration>,
}

fn args() -> Args {
    let mut a = Args {
        messages: 10_000,
        size: 4096,
        rounds: 10,
        dir: None,
        sync: true,
        commit_delay: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--messages" => a.messages = value().parse().expect("--messages N"),
            "--size" => a.size = value().parse().expect("--size BYTES"),
            "--rounds" => a.rounds = value().parse().expect("--rounds N"),
            "--dir" => a.dir = Some(value().into()),
            "--no-sync" => a.sync = false,
            "--commit-delay-ms" => {
                a.commit_delay = Some(Duration::from_millis(
                    value().parse().expect("--commit-delay-ms N"),
                ))
            }
            other => panic!("unknown flag {other}"),
        }
    }
    a.rounds = a.rounds.clamp(1, a.messages.max(1));
    a
}

/// One encrypt as the CLI does it; returns the ciphertext length.
async fn encrypt_one(client: &Client, plain: &[u8], ctx: &EncryptionContext, i: usize) -> usize {
    let started = Instant::now();
    let label = OpLabel {
        subject: Some(format!("object-{i}")),
        ..Default::default()
    };
    let materials = client
        .encryption_materials(ctx, &Default::default(), plain.len() as u64, &label)
        .await
        .expect("materials");
    let mut enc = client
        .encryptor(Vec::with_capacity(plain.len() + 512), materials)
        .expect("encryptor");
    let h = enc.header();
    let event = MessageEvent {
        op: MessageOp::Encrypt,
        keys: vec!["raw-aes:bench/key-1".into()],
        suite: Some(h.suite),
        context_sha256: Some(context_hash(&h.context)),
        message_id: Some(h.message_id.clone()),
        subject: label.subject.clone(),
        bytes: None,
        error: None,
        duration: Duration::ZERO,
    };
    enc.write_all(plain).expect("write");
    let (out, n) = enc.finish().expect("finish");
    client.record_message(MessageEvent {
        bytes: Some(n),
        duration: started.elapsed(),
        ..event
    });
    out.len()
}

fn main() {
    let a = args();
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().expect("tempdir");
            tmp.path().to_path_buf()
        }
    };
    let log_path = dir.join(format!("audit-bench-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log_path);
    let signer = Arc::new(PemSigner::generate(SignatureAlgorithm::EcdsaP256Sha256).unwrap());
    let public = signer.public_key().unwrap();
    let key: Arc<dyn hyok_keystore::KeyStore> =
        Arc::new(RawAesKey::new("bench", "key-1", &[7u8; 32]).unwrap());
    let plain = vec![0x42u8; a.size];
    let ctx: EncryptionContext = [("bucket", "bench")].into_iter().collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let plain_client = Client::new(KeyManager::new(Keyring::new(vec![key.clone()]).unwrap()));
    let mut config = LogConfig::new(&log_path);
    config.sync = a.sync;
    if let Some(d) = a.commit_delay {
        config.commit_delay = d;
    }
    let commit_delay = config.commit_delay;
    let log = Arc::new(AuditLog::open(config, signer).unwrap());
    let audited_client = Client::new(
        KeyManager::new(Keyring::new(vec![key]).unwrap())
            .with_audit(Arc::new(hyok::audit::LogSink::new(log.clone()))),
    );

    // Warm up both paths (allocator, rayon pool, page cache).
    rt.block_on(async {
        for i in 0..200 {
            encrypt_one(&plain_client, &plain, &ctx, i).await;
        }
    });

    let per_round = a.messages / a.rounds;
    let mut without = Duration::ZERO;
    let mut with = Duration::ZERO;
    // CPU time of the whole process (both threads: the caller and the log writer), which
    // is steadier than wall time on a loaded machine.
    let cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    };
    let mut cpu_without = Duration::ZERO;
    let mut cpu_with = Duration::ZERO;
    // CPU time of the calling thread alone: what adds to wall time when the log writer
    // thread has a core of its own.
    let thread_cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    };
    let mut caller_without = Duration::ZERO;
    let mut caller_with = Duration::ZERO;
    let mut bytes = 0usize;
    let mut flush_waits = Duration::ZERO;
    for round in 0..a.rounds {
        // Alternate which variant goes first, so neither always follows the other.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for audited in order {
            let client = if audited {
                &audited_client
            } else {
                &plain_client
            };
            let t = Instant::now();
            let c = cpu();
            let tc = thread_cpu();
            rt.block_on(async {
                for i in 0..per_round {
                    bytes += encrypt_one(client, &plain, &ctx, i).await;
                }
            });
            let caller = thread_cpu() - tc;
            if audited {
                with += t.elapsed();
                // Let the writer finish this round's records, so their CPU time is
                // counted here and not in the next (unaudited) round. The wait itself
                // (commit window + fdatasync) is not counted per round: a real run waits
                // for it once, at exit, and that wait is counted below (close).
                let f = Instant::now();
                log.flush().expect("flush");
                flush_waits += f.elapsed();
                cpu_with += cpu() - c;
                caller_with += caller;
            } else {
                without += t.elapsed();
                cpu_without += cpu() - c;
                caller_without += caller;
            }
        }
    }
    // Everything the audited run recorded must be durable and signed: part of its cost.
    let t = Instant::now();
    let c = cpu();
    let closed = log.close().expect("close");
    let close_time = t.elapsed();
    with += close_time;
    cpu_with += cpu() - c;

    let t = Instant::now();
    let summary = verify_file(&log_path, &VerifyOptions::new(vec![&public])).expect("verify");
    let verify_time = t.elapsed();
    let size = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);

    let n = (per_round * a.rounds) as f64;
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n;
    println!(
        "audit_overhead: {} encrypts of {} bytes per variant, {} rounds, fsync {}, commit window {} ms",
        per_round * a.rounds,
        a.size,
        a.rounds,
        if a.sync { "on" } else { "off" },
        commit_delay.as_millis()
    );
    println!(
        "  without log: {:8.3} s  {:7.2} us/encrypt",
        without.as_secs_f64(),
        us(without)
    );
    println!(
        "  with log:    {:8.3} s  {:7.2} us/encrypt  (close + exit checkpoint {:.1} ms included)",
        with.as_secs_f64(),
        us(with),
        close_time.as_secs_f64() * 1e3
    );
    println!(
        "  overhead:    {:+.1} % wall time",
        (with.as_secs_f64() / without.as_secs_f64() - 1.0) * 100.0
    );
    println!(
        "  (not counted: {:.1} ms waiting for the writer at the end of each of the {} audited rounds)",
        flush_waits.as_secs_f64() * 1e3,
        a.rounds
    );
    println!(
        "  CPU, all threads:    {:6.2} vs {:6.2} us/encrypt: {:+.1} %",
        us(cpu_without),
        us(cpu_with),
        (cpu_with.as_secs_f64() / cpu_without.as_secs_f64() - 1.0) * 100.0
    );
    println!(
        "  CPU, calling thread: {:6.2} vs {:6.2} us/encrypt: {:+.1} %",
        us(caller_without),
        us(caller_with),
        (caller_with.as_secs_f64() / caller_without.as_secs_f64() - 1.0) * 100.0
    );
    println!(
        "  log: {} records, {} checkpoints, {} bytes ({:.0} bytes/record); verified in {:.3} s",
        summary.records,
        summary.checkpoints,
        size,
        size as f64 / summary.records.max(1) as f64,
        verify_time.as_secs_f64()
    );
    println!(
        "  writer thread: {} commits ({:.0} records each), {:.2} us CPU per record",
        closed.commits,
        closed.records as f64 / closed.commits.max(1) as f64,
        closed.writer_cpu.as_secs_f64() * 1e6 / closed.records.max(1) as f64
    );
    assert_eq!(summary.records, closed.records);
    assert_eq!(summary.unsigned_tail, 0);
    let _ = bytes;
    let _ = std::fs::remove_file(&log_path);
}
