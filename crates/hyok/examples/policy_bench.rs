//! Cost of the `[policy]` engine: one decision at N rules, and 4 KiB `Session` encrypts with
//! and without a policy of N rules.
//!
//! ```text
//! cargo run --release -p hyok --example policy_bench -- [--rules 100] [--decisions 20000]
//!     [--messages 10000] [--reps 5]
//! ```
//!
//! Prints one `name value unit` line per measurement:
//! - `decide_us`: microseconds per `put` decision (request and entities built, the rules
//!   that can apply evaluated, no audit log), best of `--reps`;
//! - `decide_encrypt_us`: the same for the `encrypt` decision a `Session` encrypt makes
//!   (more rules are about `encrypt`);
//! - `decide_whole_us`: the `put` decision evaluating every rule (`Engine::decide_whole`,
//!   the engine before the policy index);
//! - `encrypt_plain` / `encrypt_policy`: 4 KiB messages per second through
//!   `Session::client` (key step with a raw AES key, then the body), one thread, without
//!   and with the policy; every encrypt is one decision.
//!
//! The policy: N/2 `permit`s for other principals or keyrings that do not apply, N/2 - 2
//! `forbid`s on context values and object prefixes that do not match, and the two rules
//! that decide (a `permit` for the caller, a `forbid` on missing `tenant` under `eu/`).

use std::io::Write;
use std::time::{Duration, Instant};

use hyok::config::{Config, Loaded};
use hyok::policy::{Action, DefaultDecision, Engine, Facts, Principal, Query, Resource};
use hyok::{EncryptionContext, KeySource, OpLabel, Session, SessionConfig, Settings};

struct Opts {
    rules: usize,
    decisions: usize,
    messages: usize,
    reps: usize,
}

fn opts() -> Opts {
    let mut o = Opts {
        rules: 100,
        decisions: 20_000,
        messages: 10_000,
        reps: 5,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v = || pair.get(1).and_then(|v| v.parse().ok()).expect("a number");
        match pair[0].as_str() {
            "--rules" => o.rules = v(),
            "--decisions" => o.decisions = v(),
            "--messages" => o.messages = v(),
            "--reps" => o.reps = v(),
            other => panic!("unknown option {other}"),
        }
    }
    o.rules = o.rules.max(2);
    o
}

/// N rules of which two apply to the measured request.
fn policy(n: usize) -> String {
    let mut p = String::new();
    p.push_str(
        "@id(\"bench-user\")\npermit(principal == Hyok::Identity::\"bench\", action, resource);\n",
    );
    p.push_str("@id(\"eu-tenant\")\nforbid(principal, action, resource is Hyok::Object)\n  when { resource.key like \"eu/*\" && !context.encryption_context.hasTag(\"tenant\") };\n");
    for i in 0..n - 2 {
        if i % 2 == 0 {
            p.push_str(&format!(
                "@id(\"team-{i}\")\npermit(principal == Hyok::Identity::\"user-{i}\", action in [Hyok::Action::\"encrypt\", Hyok::Action::\"decrypt\"], resource)\n  when {{ context.keyring == \"team-{i}\" }};\n"
            ));
        } else {
            p.push_str(&format!(
                "@id(\"rule-{i}\")\nforbid(principal, action == Hyok::Action::\"encrypt\", resource)\n  when {{ context.encryption_context.hasTag(\"class\") && context.encryption_context.getTag(\"class\") == \"level-{i}\" }};\n"
            ));
        }
    }
    p
}

fn best<F: FnMut() -> Duration>(reps: usize, mut f: F) -> Duration {
    (0..reps).map(|_| f()).min().unwrap_or_default()
}

fn session(dir: &std::path::Path, policy_file: Option<&std::path::Path>) -> Session {
    let key = dir.join("bench.key");
    std::fs::write(&key, [0x11u8; 32]).unwrap();
    let mut text = format!(
        "[keyrings.bench]\nkeys = [\"raw-aes:bench/k?file={}\"]\n",
        key.display()
    );
    if let Some(p) = policy_file {
        text.push_str(&format!(
            "[policy]\nfiles = [{:?}]\ndefault = \"deny\"\n",
            p.display().to_string()
        ));
    }
    let config = SessionConfig {
        file: Loaded {
            config: Config::parse(&text).unwrap(),
            path: Some(dir.join("hyok.toml")),
        },
        audit: hyok::audit::AuditSettings {
            identity: Some("bench".into()),
            ..Default::default()
        },
        ..SessionConfig::default()
    };
    Session::open(config.keys(KeySource::Keyring("bench".into()))).unwrap()
}

fn encrypts(s: &Session, n: usize, rt: &tokio::runtime::Runtime) -> Duration {
    let client = s.client(Settings::default()).unwrap();
    let ctx: EncryptionContext = [("tenant", "acme")].into_iter().collect();
    let body = vec![0x5au8; 4096];
    let none = Default::default();
    let t = Instant::now();
    for _ in 0..n {
        let m = rt
            .block_on(client.encryption_materials(&ctx, &none, 4096, &OpLabel::default()))
            .unwrap();
        let mut enc = client.encryptor(Vec::with_capacity(4600), m).unwrap();
        enc.write_all(&body).unwrap();
        std::hint::black_box(enc.finish().unwrap());
    }
    t.elapsed()
}

fn main() {
    let o = opts();
    let text = policy(o.rules);
    let engine = Engine::from_texts(
        &[("bench.cedar".to_owned(), text.as_str())],
        None,
        DefaultDecision::Deny,
        None,
    )
    .unwrap();
    assert_eq!(engine.len(), o.rules);
    let q = Query {
        principal: Principal::Identity("bench".into()),
        action: Action::Put,
        resource: Resource::Object {
            url: "s3://data/eu/2026/report.csv".into(),
            store: "s3".into(),
            bucket: "data".into(),
            key: "eu/2026/report.csv".into(),
        },
        facts: Facts {
            encryption_context: [("tenant".to_owned(), "acme".to_owned())].into(),
            keyring: "bench".into(),
            region: "eu-central-1".into(),
            ..Facts::default()
        },
    };
    let d = engine.decide(&q).unwrap();
    assert!(d.allowed && d.policies == ["bench-user"], "{d:?}");
    assert_eq!(d, engine.decide_whole(&q).unwrap());
    let encrypt = Query {
        action: Action::Encrypt,
        resource: Resource::Keyring("bench".into()),
        ..q.clone()
    };
    let d = engine.decide(&encrypt).unwrap();
    assert!(d.allowed && d.policies == ["bench-user"], "{d:?}");
    let per_decision = |name: &str, q: &Query, whole: bool| {
        let t = best(o.reps, || {
            let t = Instant::now();
            for _ in 0..o.decisions {
                let q = std::hint::black_box(q);
                let d = if whole {
                    engine.decide_whole(q)
                } else {
                    engine.decide(q)
                };
                std::hint::black_box(d.unwrap());
            }
            t.elapsed()
        });
        println!(
            "{name} {:.2} us ({} rules)",
            t.as_secs_f64() * 1e6 / o.decisions as f64,
            o.rules
        );
    };
    per_decision("decide_us", &q, false);
    per_decision("decide_encrypt_us", &encrypt, false);
    per_decision("decide_whole_us", &q, true);

    let dir = tempfile::tempdir().unwrap();
    let pfile = dir.path().join("bench.cedar");
    std::fs::write(&pfile, &text).unwrap();
    let plain = session(dir.path(), None);
    let guarded = session(dir.path(), Some(&pfile));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let rate = |d: Duration| o.messages as f64 / d.as_secs_f64();
    // Interleaved, so both see the same background load.
    let (mut a, mut b) = (Duration::MAX, Duration::MAX);
    for _ in 0..o.reps {
        a = a.min(encrypts(&plain, o.messages, &rt));
        b = b.min(encrypts(&guarded, o.messages, &rt));
    }
    println!("encrypt_plain {:.0} msg/s", rate(a));
    println!("encrypt_policy {:.0} msg/s ({} rules)", rate(b), o.rules);
}
