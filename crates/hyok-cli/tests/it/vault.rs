//! `hyok` with Vault/OpenBao Transit keys (`vault-transit:NAME?addr=…`), against the dev
//! server of `scripts/services/openbao.sh`: key new/list/rotate/destroy, round trips, key
//! versions after rotation and after raising min_decryption_version, and every failure as
//! exit 1 with one line naming the cause, no output file, in bounded time.

use std::path::Path;
use std::time::Duration;

use hyok_keystore::uri::KeyUri;
use hyok_keystore::vault::VaultAdmin;

use crate::common::{
    dead_addr, failed, hyok_env, key_store_failure_cases, pseudo_random, skip, unique, Case, Run,
};

/// Longest any one `hyok` run may take here (the binary bounds its own waits far below it).
const LIMIT: Duration = Duration::from_secs(90);

struct Bao {
    addr: String,
}

fn bao(test: &str) -> Option<Bao> {
    match (std::env::var("VAULT_ADDR"), std::env::var("VAULT_TOKEN")) {
        (Ok(addr), Ok(_)) if !addr.is_empty() => Some(Bao { addr }),
        _ => {
            skip(
                &format!("vault::{test}"),
                "VAULT_ADDR/VAULT_TOKEN not set (eval \"$(scripts/services/openbao.sh)\")",
            );
            None
        }
    }
}

impl Bao {
    fn uri(&self, name: &str) -> String {
        format!("vault-transit:{name}?addr={}", self.addr)
    }
}

fn run(args: &[&str]) -> Run {
    hyok_env(args, &[], &[], None, LIMIT)
}

fn ok(r: Run, what: &str) -> Run {
    assert!(r.success(), "{what}: {}", r.describe());
    r
}

fn admin(uri: &str) -> VaultAdmin {
    VaultAdmin::from_uri(&KeyUri::parse(uri).unwrap()).unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn key_versions(msg: &Path) -> Vec<u64> {
    let r = ok(
        run(&["inspect", "--json", msg.to_str().unwrap()]),
        "inspect",
    );
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    v["encrypted_data_keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["key_version"].as_u64())
        .collect()
}

#[test]
fn round_trip_rotation_and_min_decryption_version() {
    let Some(b) = bao("round_trip_rotation_and_min_decryption_version") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let name = unique("hyok-cli-rot");
    let uri = b.uri(&name);

    let created = ok(run(&["key", "new", "aes-256", "-o", &uri]), "key new");
    let printed = created.stdout_text().trim().to_owned();
    assert!(
        printed.starts_with(&format!("vault-transit:{name}?addr=")),
        "{printed}"
    );
    assert!(
        created.stderr.contains("aes256-gcm96"),
        "{}",
        created.stderr
    );

    let plain = pseudo_random(200_000, 4);
    std::fs::write(p("plain"), &plain).unwrap();
    ok(
        run(&[
            "encrypt",
            "-k",
            &printed,
            "-c",
            "tenant=acme",
            &p("plain"),
            "-o",
            &p("m1"),
        ]),
        "encrypt",
    );
    ok(
        run(&["decrypt", "-k", &uri, &p("m1"), "-o", &p("o1")]),
        "decrypt",
    );
    assert_eq!(std::fs::read(p("o1")).unwrap(), plain);
    assert_eq!(key_versions(Path::new(&p("m1"))), vec![1]);

    let rotated = ok(run(&["key", "rotate", &uri]), "key rotate");
    assert!(rotated.stderr.contains("version 2"), "{}", rotated.stderr);
    ok(
        run(&[
            "encrypt",
            "-k",
            &uri,
            "-c",
            "tenant=acme",
            &p("plain"),
            "-o",
            &p("m2"),
        ]),
        "encrypt after rotate",
    );
    assert_eq!(
        key_versions(Path::new(&p("m2"))),
        vec![2],
        "new messages use v2"
    );
    ok(
        run(&["decrypt", "-k", &uri, &p("m1"), "-o", &p("o1b")]),
        "old message after rotate",
    );
    assert_eq!(std::fs::read(p("o1b")).unwrap(), plain);

    let listed = ok(run(&["key", "list", &b.uri("")]), "key list");
    let line = listed
        .stdout_text()
        .lines()
        .find(|l| l.starts_with(&format!("{name}\t")))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{name} not listed: {}", listed.stdout_text()));
    assert!(line.contains("latest_version=2"), "{line}");
    assert!(line.contains("min_decryption_version=1"), "{line}");

    block_on(admin(&uri).set_min_decryption_version(&name, 2)).unwrap();
    let r = run(&["decrypt", "-k", &uri, &p("m1"), "-o", &p("o1c")]);
    failed(
        &r,
        Path::new(&p("o1c")),
        "key version 1 is too old",
        "old message after min_decryption_version=2",
    )
    .unwrap();
    ok(
        run(&["decrypt", "-k", &uri, &p("m2"), "-o", &p("o2")]),
        "new message after min_decryption_version=2",
    );
    assert_eq!(std::fs::read(p("o2")).unwrap(), plain);
}

#[test]
fn failures_are_one_line_exit_1_without_output() {
    let Some(b) = bao("failures_are_one_line_exit_1_without_output") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let (fplain, fmsg, ftampered) = (p("plain"), p("msg"), p("tampered"));
    let name = unique("hyok-cli-fail");
    let uri = b.uri(&name);
    ok(run(&["key", "new", "aes-256", "-o", &uri]), "key new");
    let plain = pseudo_random(5000, 5);
    std::fs::write(&fplain, &plain).unwrap();
    // The tenant pair is authenticated but not stored, so a wrong value reaches Transit as
    // wrong associated data.
    ok(
        run(&[
            "encrypt",
            "-k",
            &uri,
            "-c",
            "tenant=acme",
            "--required-context",
            "tenant",
            &fplain,
            "-o",
            &fmsg,
        ]),
        "encrypt",
    );
    // Change one letter inside the base64 text of the Transit ciphertext, not its prefix.
    let mut tampered = std::fs::read(&fmsg).unwrap();
    let i = tampered.windows(9).position(|w| w == b"vault:v1:").unwrap() + 9 + 20;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    std::fs::write(&ftampered, &tampered).unwrap();

    let down = format!("vault-transit:{name}?addr=http://{}", dead_addr());
    let missing = b.uri(&unique("hyok-cli-missing"));
    let out = p("out");
    let ctx = ["-c", "tenant=acme"];
    let mut cases: Vec<Case<'_>> = vec![
        (
            "server down (encrypt)",
            vec!["encrypt", "-k", &down, &fplain, "-o", &out],
            vec![],
            "cannot reach Vault",
        ),
        (
            "server down (decrypt)",
            vec!["decrypt", "-k", &down, ctx[0], ctx[1], &fmsg, "-o", &out],
            vec![],
            "cannot reach Vault",
        ),
        (
            "wrong token (encrypt)",
            vec!["encrypt", "-k", &uri, &fplain, "-o", &out],
            vec![("VAULT_TOKEN", "s.wrong-token")],
            "permission denied",
        ),
        (
            "wrong token (decrypt)",
            vec!["decrypt", "-k", &uri, ctx[0], ctx[1], &fmsg, "-o", &out],
            vec![("VAULT_TOKEN", "s.wrong-token")],
            "permission denied",
        ),
    ];
    cases.extend(key_store_failure_cases(
        &uri, &missing, ctx, &fplain, &fmsg, &ftampered, &out,
    ));
    let mut problems = Vec::new();
    for (what, args, env, word) in &cases {
        let r = hyok_env(args, env, &[], None, LIMIT);
        if let Err(e) = failed(&r, Path::new(&out), word, what) {
            problems.push(e);
        }
        if r.stderr.contains("wrong-token") {
            problems.push(format!("{what}: the token appears in the error"));
        }
    }
    // Destroyed key: the message names the cause.
    block_on(admin(&uri).set_deletion_allowed(&name, true)).unwrap();
    ok(run(&["key", "destroy", "--yes", &uri]), "key destroy");
    let r = run(&["decrypt", "-k", &uri, ctx[0], ctx[1], &fmsg, "-o", &out]);
    if let Err(e) = failed(&r, Path::new(&out), "key not found", "destroyed key") {
        problems.push(e);
    }
    crate::common::report("vault failures", cases.len() + 1, &problems);
}

#[test]
fn tokens_are_refused_in_key_uris() {
    let r = run(&[
        "encrypt",
        "-k",
        "vault-transit:k?addr=http://127.0.0.1:8200&token=s.secret",
        "-o",
        "/dev/null",
    ]);
    assert_eq!(r.code, Some(2), "{}", r.describe());
    assert!(
        r.stderr.contains("must not be in a key URI"),
        "{}",
        r.stderr
    );
}
