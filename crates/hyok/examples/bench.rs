//! In-process throughput of hyok, measured against the crypto library's own limit.
//!
//! ```text
//! cargo run --release -p hyok --example bench -- [--mib 256] [--messages 10000]
//!     [--message-size 4096] [--reps 3] [--threads 1,2] [--suite committed|committed-signed]
//! ```
//!
//! Prints one `name value unit` line per measurement (bench/run.sh reads them):
//! - `bare_seal` / `bare_open`: aws-lc-rs AES-256-GCM over the buffer in 64 KiB chunks
//!   (sealing in place, opening into a second buffer), one thread: the limit of the crypto
//!   library (same AAD size as a hyok frame).
//!   `bare_seal_2t`: the same on two threads (what two cores give at the moment). The key
//!   and nonces are fixed and reused: this measures speed and protects nothing.
//! - `lib_encrypt_Nt` / `lib_decrypt_Nt`: a whole message through the `hyok` facade with
//!   `Parallelism::threads(N)`: encrypt with one `write_all` into a discarding writer;
//!   decrypt from memory through `BufRead` (plaintext read in place, as the CLI does).
//! - `msg_encrypt` / `msg_decrypt`: many small messages in one process, each with its own
//!   data key wrapped and unwrapped by a raw AES key (key step + body), one thread.
//!
//! `--suite committed-signed` runs the `lib_*` and `msg_*` measurements with the signed suite
//! 0x0578 (a fresh ECDSA P-384 key pair per message, footer signature); the default is 0x0478.
//!
//! Every rate is the best of `--reps` runs (the least disturbed one on a shared machine);
//! `*_cpu` lines are bytes per CPU-second of the whole process (all threads), which a busy
//! machine disturbs less than wall time.

use std::io::{self, BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use hyok::{
    Client, DecryptOptions, EncryptOptions, EncryptionContext, OpLabel, Parallelism, Settings,
};
use hyok_keystore::raw::RawAesKey;
use hyok_keystore::{KeyManager, Keyring};

/// hyok's default frame length, and the chunk of the bare loop.
const CHUNK: usize = 64 * 1024;

struct Opts {
    mib: usize,
    messages: usize,
    message_size: usize,
    reps: usize,
    threads: Vec<usize>,
    suite: hyok::AlgorithmSuite,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        mib: 256,
        messages: 10_000,
        message_size: 4096,
        reps: 3,
        threads: vec![1, 2],
        suite: hyok::AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        let num = |s: String| s.parse::<usize>().map_err(|e| format!("{s}: {e}"));
        match a.as_str() {
            "--mib" => o.mib = num(val()?)?,
            "--messages" => o.messages = num(val()?)?,
            "--message-size" => o.message_size = num(val()?)?,
            "--reps" => o.reps = num(val()?)?.max(1),
            "--threads" => {
                o.threads = val()?
                    .split(',')
                    .map(|s| num(s.to_string()))
                    .collect::<Result<_, _>>()?
            }
            "--suite" => {
                o.suite = match val()?.as_str() {
                    "committed" => hyok::AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
                    "committed-signed" => {
                        hyok::AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384
                    }
                    s => return Err(format!("--suite {s}: committed or committed-signed")),
                }
            }
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    Ok(o)
}

/// CPU time of the whole process (every thread), from /proc; `None` where unavailable.
fn cpu_time() -> Option<Duration> {
    let mut ns = 0u64;
    for t in std::fs::read_dir("/proc/self/task").ok()? {
        let path = t.ok()?.path().join("schedstat");
        let s = std::fs::read_to_string(path).ok()?;
        ns += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(ns))
}

/// Best wall time and best CPU time of `reps` runs of `f`.
fn best_of(reps: usize, mut f: impl FnMut()) -> (Duration, Option<Duration>) {
    let mut wall = Duration::MAX;
    let mut cpu: Option<Duration> = None;
    for _ in 0..reps {
        let c0 = cpu_time();
        let t0 = Instant::now();
        f();
        wall = wall.min(t0.elapsed());
        if let (Some(a), Some(b)) = (c0, cpu_time()) {
            let d = b.saturating_sub(a);
            cpu = Some(cpu.map_or(d, |c| c.min(d)));
        }
    }
    (wall, cpu)
}

fn report_rate(name: &str, bytes: usize, (wall, cpu): (Duration, Option<Duration>)) {
    println!("{name} {:.3} GB/s", bytes as f64 / wall.as_secs_f64() / 1e9);
    if let Some(c) = cpu {
        println!(
            "{name}_cpu {:.3} GB/cpu-s",
            bytes as f64 / c.as_secs_f64() / 1e9
        );
    }
}

fn client(par: Parallelism, suite: hyok::AlgorithmSuite) -> Client {
    let key = RawAesKey::new("bench", "key", &[7u8; 32]).expect("a 32-byte raw AES key");
    let keys = KeyManager::new(Keyring::new(vec![Arc::new(key)]).expect("one key"));
    Client::new(keys).with_settings(Settings {
        encrypt: EncryptOptions {
            parallelism: par.clone(),
            ..EncryptOptions::default()
        },
        decrypt: DecryptOptions {
            parallelism: par,
            ..DecryptOptions::default()
        },
        suite,
        ..Settings::default()
    })
}

fn encrypt_to<W: Write>(rt: &tokio::runtime::Runtime, c: &Client, out: W, pt: &[u8]) -> W {
    let ctx = EncryptionContext::new();
    let m = rt
        .block_on(c.encryption_materials(
            &ctx,
            &Default::default(),
            pt.len() as u64,
            &OpLabel::default(),
        ))
        .expect("materials");
    let mut enc = c.encryptor(out, m).expect("encryptor");
    enc.write_all(pt).expect("encrypt");
    enc.finish().expect("finish").0
}

/// Decrypt `msg` through `BufRead`, handing each piece of plaintext to `sink`; returns the
/// plaintext length.
fn decrypt_with(
    rt: &tokio::runtime::Runtime,
    c: &Client,
    msg: &[u8],
    mut sink: impl FnMut(&[u8]),
) -> usize {
    let mut input = msg;
    let parsed = c.read_header(&mut input).expect("header");
    let verified = rt
        .block_on(c.open(parsed, &EncryptionContext::new(), &OpLabel::default()))
        .expect("open");
    let mut dec = c.decryptor(verified, input);
    let mut n = 0;
    loop {
        let buf = dec.fill_buf().expect("decrypt");
        if buf.is_empty() {
            return n;
        }
        sink(buf);
        let k = buf.len();
        n += k;
        dec.consume(k);
    }
}

fn bare(data: &mut [u8], reps: usize) {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[9u8; 32]).expect("key"));
    // The AAD of a hyok frame: message id (32) ‖ content string (28) ‖ seq (4) ‖ len (8).
    let aad = [0u8; 72];
    let mut tags = vec![[0u8; 16]; data.len().div_ceil(CHUNK)];
    let nonce = |i: usize| {
        let mut n = [0u8; 12];
        n[8..].copy_from_slice(&(i as u32).to_be_bytes());
        Nonce::assume_unique_for_key(n)
    };
    let len = data.len();
    let seal = best_of(reps, || {
        for (i, chunk) in data.chunks_mut(CHUNK).enumerate() {
            let t = key
                .seal_in_place_separate_tag(nonce(i), Aad::from(&aad), chunk)
                .expect("seal");
            tags[i].copy_from_slice(t.as_ref());
        }
    });
    report_rate("bare_seal", len, seal);
    // The same loop on two threads, each over half of the buffer: what two cores of this
    // machine give right now (the yardstick for the library's 2-thread rate).
    let half_chunks = len / 2 / CHUNK;
    let (a, b) = data.split_at_mut(half_chunks * CHUNK);
    let (ta, tb) = tags.split_at_mut(half_chunks);
    let seal2 = best_of(reps, || {
        std::thread::scope(|s| {
            for (half, half_tags, first) in
                [(&mut *a, &mut *ta, 0), (&mut *b, &mut *tb, half_chunks)]
            {
                let key = &key;
                let aad = &aad;
                s.spawn(move || {
                    for (i, chunk) in half.chunks_mut(CHUNK).enumerate() {
                        let t = key
                            .seal_in_place_separate_tag(nonce(first + i), Aad::from(aad), chunk)
                            .expect("seal");
                        half_tags[i].copy_from_slice(t.as_ref());
                    }
                });
            }
        });
    });
    // Scoped threads are gone before their CPU time can be read: wall time only.
    report_rate("bare_seal_2t", len, (seal2.0, None));
    // Back to the ciphertext the tags belong to.
    for (i, chunk) in data.chunks_mut(CHUNK).enumerate() {
        let t = key
            .seal_in_place_separate_tag(nonce(i), Aad::from(&aad), chunk)
            .expect("seal");
        tags[i].copy_from_slice(t.as_ref());
    }
    // `data` now holds the ciphertext of the last run; open it out of place (the same memory
    // traffic as in place, and every run sees the same ciphertext).
    let mut out = vec![0u8; len];
    let open = best_of(reps, || {
        for (i, (ct, pt)) in data.chunks(CHUNK).zip(out.chunks_mut(CHUNK)).enumerate() {
            key.open_separate_gather(nonce(i), Aad::from(&aad), ct, &tags[i], pt)
                .expect("open");
        }
    });
    report_rate("bare_open", len, open);
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let len = o.mib << 20;
    let mut data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31)).collect();

    bare(&mut data, o.reps);

    for &t in &o.threads {
        let par = Parallelism::threads(t).expect("thread pool");
        let c = client(par, o.suite);
        let enc = best_of(o.reps, || {
            encrypt_to(&rt, &c, io::sink(), &data);
        });
        report_rate(&format!("lib_encrypt_{t}t"), len, enc);
        let msg = encrypt_to(&rt, &c, Vec::with_capacity(len + len / 1000 + 4096), &data);
        let dec = best_of(o.reps, || {
            let n = decrypt_with(&rt, &c, &msg, |_| {});
            assert_eq!(n, len);
        });
        report_rate(&format!("lib_decrypt_{t}t"), len, dec);
    }

    // Many small messages, one thread, each a full encrypt or decrypt with its own data key.
    let c = client(Parallelism::Sequential, o.suite);
    let pt = &data[..o.message_size];
    let mut msgs = Vec::with_capacity(o.messages);
    let (wall, _) = best_of(1, || {
        msgs.clear();
        for _ in 0..o.messages {
            msgs.push(encrypt_to(
                &rt,
                &c,
                Vec::with_capacity(o.message_size + 512),
                pt,
            ));
        }
    });
    println!(
        "msg_encrypt {:.0} msg/s",
        o.messages as f64 / wall.as_secs_f64()
    );
    let mut out = Vec::with_capacity(o.message_size);
    let (wall, _) = best_of(1, || {
        for m in &msgs {
            out.clear();
            decrypt_with(&rt, &c, m, |b| out.extend_from_slice(b));
            assert_eq!(out.len(), o.message_size);
        }
    });
    println!(
        "msg_decrypt {:.0} msg/s",
        o.messages as f64 / wall.as_secs_f64()
    );
}
