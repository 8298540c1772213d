//! Issue 14: k-of-n custody from the command line (`--threshold K --key …`) and from a
//! configured keyring (`threshold = K`, `groups = [[…], …]`), through `encrypt`, `decrypt`
//! and `cp`; the escrow drill `hyok key verify-escrow`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{self, check_failed, hyok, pseudo_random, raw_aes_uri, Run};

/// A private directory with `n` raw AES keys.
struct Keys {
    dir: tempfile::TempDir,
    uris: Vec<String>,
}

impl Keys {
    fn new(n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let uris = (0..n)
            .map(|i| {
                let file = dir.path().join(format!("k{i}.key"));
                std::fs::write(&file, pseudo_random(32, 0xc0 + i as u64)).unwrap();
                raw_aes_uri("custody", &format!("k{i}"), &file)
            })
            .collect();
        Self { dir, uris }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `--key U` for each of `which`.
    fn args(&self, which: &[usize]) -> Vec<String> {
        which
            .iter()
            .flat_map(|&i| ["--key".to_owned(), self.uris[i].clone()])
            .collect()
    }

    /// Runs hyok with `hyok.toml` of this directory as its configuration.
    fn with_config(&self, args: &[&str]) -> Run {
        self.run_with(args, &[("HYOK_CONFIG", &s(&self.path("hyok.toml")))])
    }

    /// Runs hyok with a private HOME and these variables.
    fn run_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let mut c = Command::new(common::bin());
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        common::hermetic(&mut c);
        c.env("HOME", self.dir.path())
            .env("XDG_STATE_HOME", self.path("state"));
        for (k, v) in vars {
            c.env(k, v);
        }
        let out = c.output().expect("run hyok");
        Run {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn ok(r: Run, what: &str) -> Run {
    assert!(r.success(), "{what}: {}", r.describe());
    r
}

fn run(args: Vec<String>) -> Run {
    hyok(args)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// 2-of-3 over three raw keys from the command line: every pair decrypts, every single key
/// fails with "have 1 of the 2 shares" (exit 1, one line, no output file), a tampered share
/// fails cleanly, and a threshold the keys cannot meet is a usage error.
#[test]
fn two_of_three_from_the_command_line() {
    let k = Keys::new(3);
    let pt = pseudo_random(200_000, 14);
    std::fs::write(k.path("pt"), &pt).unwrap();
    let ct = k.path("ct");
    let mut args = vec!["encrypt".into(), "--threshold".into(), "2".into()];
    args.extend(k.args(&[0, 1, 2]));
    args.extend([s(&k.path("pt")), "-o".into(), s(&ct)]);
    ok(run(args), "encrypt 2-of-3");
    let edks = common::message_edks(&std::fs::read(&ct).unwrap());
    assert_eq!(edks.len(), 1);
    assert_eq!(edks[0].provider_id, "hyok-threshold");

    for pair in [[0, 1], [0, 2], [1, 2], [2, 0]] {
        let mut args = vec!["decrypt".into()];
        args.extend(k.args(&pair));
        args.extend([s(&ct), "-o".into(), "-".into()]);
        let r = ok(run(args), &format!("decrypt with {pair:?}"));
        assert!(r.stdout == pt, "pair {pair:?}: wrong plaintext");
    }
    for one in 0..3 {
        let out = k.path(&format!("out{one}"));
        let mut args = vec!["decrypt".into()];
        args.extend(k.args(&[one]));
        args.extend([s(&ct), "-o".into(), s(&out)]);
        let r = run(args);
        check_failed(&r, Some(&out)).unwrap_or_else(|e| panic!("key {one}: {e}"));
        assert!(
            r.stderr.contains("have 1 of the 2 shares needed"),
            "key {one}: {}",
            r.stderr
        );
    }
    // A flipped byte inside the split EDK: an error, never a panic or output.
    let msg = std::fs::read(&ct).unwrap();
    let mut bad = msg.clone();
    assert!(common::tamper_inside(&mut bad, &edks[0].ciphertext[20..40]));
    std::fs::write(k.path("bad"), &bad).unwrap();
    let out = k.path("bad.out");
    let mut args = vec!["decrypt".into()];
    args.extend(k.args(&[0, 1, 2]));
    args.extend([s(&k.path("bad")), "-o".into(), s(&out)]);
    check_failed(&run(args), Some(&out)).unwrap();

    let mut args = vec!["encrypt".into(), "--threshold".into(), "3".into()];
    args.extend(k.args(&[0, 1]));
    args.extend([s(&k.path("pt")), "-o".into(), s(&k.path("x"))]);
    let r = run(args);
    assert_eq!(r.code, Some(2), "{}", r.describe());
    assert!(r.stderr.contains("2 <= k <= n"), "{}", r.stderr);
}

/// A configured keyring with a group of two keys: `cp` into a folder store and back, each
/// group's second key standing in for its first, too few groups refused with have/need.
#[test]
fn configured_groups_through_cp() {
    let k = Keys::new(4);
    let store = k.path("store");
    std::fs::create_dir(&store).unwrap();
    let q = |i: usize| format!("{:?}", k.uris[i]);
    let config = format!(
        "[defaults]\nkeyring = \"quorum\"\nstore = \"vault\"\n\n\
         [keyrings.quorum]\nthreshold = 2\ngroups = [[{}, {}], [{}], [{}]]\n\n\
         [keyrings.first-pair]\nkeys = [{}, {}]\n\n\
         [keyrings.alt-pair]\nkeys = [{}, {}]\n\n\
         [keyrings.lone]\nkeys = [{}]\n\n\
         [stores.vault]\nurl = \"file://{}/\"\n",
        q(0),
        q(1),
        q(2),
        q(3),
        q(0),
        q(2),
        q(1),
        q(3),
        q(2),
        store.display()
    );
    std::fs::write(k.path("hyok.toml"), config).unwrap();
    let pt = pseudo_random(70_000, 41);
    std::fs::write(k.path("report.pdf"), &pt).unwrap();
    let src = s(&k.path("report.pdf"));
    ok(k.with_config(&["cp", &src, ":q3/report.pdf"]), "cp up");
    for ring in ["quorum", "first-pair", "alt-pair"] {
        let out = k.path(&format!("back-{ring}"));
        ok(
            k.with_config(&["cp", "--keyring", ring, ":q3/report.pdf", &s(&out)]),
            ring,
        );
        assert!(
            std::fs::read(&out).unwrap() == pt,
            "{ring}: wrong plaintext"
        );
    }
    let out = k.path("back-lone");
    let r = k.with_config(&["cp", "--keyring", "lone", ":q3/report.pdf", &s(&out)]);
    check_failed(&r, Some(&out)).unwrap();
    assert!(
        r.stderr.contains("have 1 of the 2 shares needed"),
        "{}",
        r.stderr
    );
}

/// The escrow drill over 1,000 objects plus a planted object that lacks the escrow key (and
/// a file that is no message): one line per object, the planted one found, exit 1, every
/// check audit-logged; a sample; a 2-of-3 split drilled with a quorum of its keys.
#[test]
fn escrow_drill_over_a_thousand_objects_finds_the_planted_one() {
    let k = Keys::new(3);
    let (primary, escrow) = (k.uris[0].clone(), k.uris[1].clone());
    let src = k.path("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..1000 {
        std::fs::write(src.join(format!("f{i:04}.txt")), format!("object {i}")).unwrap();
    }
    let store = format!("file://{}/", k.path("store").display());
    // The good objects under `good/`, so that a sample of that prefix cannot meet the bad ones.
    let good = format!("{store}good/");
    let r = k.run_with(
        &[
            "cp",
            "-r",
            "--key",
            &primary,
            "--key",
            &escrow,
            &s(&src),
            &good,
        ],
        &[],
    );
    ok(r, "cp -r 1000 objects");
    std::fs::write(k.path("planted.txt"), b"no escrow").unwrap();
    let planted = format!("{store}sub/planted.txt");
    ok(
        k.run_with(
            &[
                "cp",
                "--key",
                &primary,
                &s(&k.path("planted.txt")),
                &planted,
            ],
            &[],
        ),
        "cp planted",
    );
    std::fs::write(k.path("store/stray.bin"), b"not a message").unwrap();

    ok(
        k.run_with(&["key", "new", "ec-p256", "-o", &s(&k.path("cp"))], &[]),
        "checkpoint key",
    );
    let (log, signer) = (s(&k.path("audit.log")), s(&k.path("cp.pem")));
    let r = k.run_with(
        &["key", "verify-escrow", "--key", &escrow, &store],
        &[("HYOK_AUDIT_LOG", &log), ("HYOK_AUDIT_KEY", &signer)],
    );
    check_failed(&r, None).unwrap();
    assert!(r.stderr.contains("do not open 2 of 1002"), "{}", r.stderr);
    let out = r.stdout_text();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1003, "one line per object and a summary");
    assert_eq!(lines.iter().filter(|l| l.starts_with("ok ")).count(), 1000);
    let missing: Vec<&&str> = lines.iter().filter(|l| l.starts_with("missing ")).collect();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].contains("sub/planted.txt"), "{}", missing[0]);
    assert!(missing[0].contains("custody/k0"), "{}", missing[0]);
    assert!(lines
        .iter()
        .any(|l| l.starts_with("not-a-message ") && l.contains("stray.bin")));
    assert!(lines[1002].starts_with("checked 1002 object(s): 1000 open, 1 missing"));
    for i in [0, 499, 999] {
        let name = format!("/store/good/f{i:04}.txt");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("ok ") && l.ends_with(&name)),
            "object {i} not reported"
        );
    }
    // Every check is in the audit log, the planted object's as a failure.
    let text = std::fs::read_to_string(k.path("audit.log")).unwrap();
    let checks: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["op"] == "escrow-check")
        .collect();
    assert_eq!(checks.len(), 1002);
    let planted_rec: Vec<_> = checks
        .iter()
        .filter(|v| {
            v["subject"]
                .as_str()
                .is_some_and(|x| x.ends_with("sub/planted.txt"))
        })
        .collect();
    assert_eq!(planted_rec.len(), 1);
    assert_ne!(planted_rec[0]["outcome"], "ok", "{}", planted_rec[0]);

    // A sample of the prefix that holds only good objects: all open, exit 0.
    let r = k.run_with(
        &[
            "key",
            "verify-escrow",
            "--key",
            &escrow,
            "--sample",
            "25",
            &good,
        ],
        &[],
    );
    let r = ok(r, "sample");
    assert_eq!(
        r.stdout_text()
            .lines()
            .filter(|l| l.starts_with("ok "))
            .count(),
        25
    );
    // The primary key opens the planted object alone.
    ok(
        k.run_with(&["key", "verify-escrow", "--key", &primary, &planted], &[]),
        "single object",
    );

    // A 2-of-3 split: any two keys pass the drill, one key does not.
    let split = format!("{store}split/report.txt");
    let mut args: Vec<String> = vec!["cp".into(), "--threshold".into(), "2".into()];
    args.extend(k.args(&[0, 1, 2]));
    args.extend([s(&k.path("planted.txt")), split.clone()]);
    ok(run(args), "cp 2-of-3");
    let mut args: Vec<String> = vec!["key".into(), "verify-escrow".into()];
    args.extend(k.args(&[1, 2]));
    args.push(split.clone());
    ok(run(args), "quorum drill");
    let r = run(vec![
        "key".into(),
        "verify-escrow".into(),
        "--key".into(),
        k.uris[2].clone(),
        split,
    ]);
    check_failed(&r, None).unwrap();
    assert!(
        r.stdout_text().contains("have 1 of the 2 shares"),
        "{}",
        r.describe()
    );
}

/// `hyok --version` says whether this is a FIPS build (`--features fips`, docs/CUSTODY.md
/// §4) and, in one, that the module runs in FIPS mode.
#[test]
fn version_names_the_crypto_mode() {
    let r = ok(hyok(["--version"]), "--version");
    let text = r.stdout_text();
    assert!(text.starts_with("hyok "), "{text}");
    if cfg!(feature = "fips") {
        assert!(text.contains("crypto: AWS-LC FIPS "), "{text}");
        assert!(text.contains("FIPS 140-3 mode: yes"), "{text}");
    } else {
        assert!(
            text.contains("FIPS 140-3 mode: no (default build)"),
            "{text}"
        );
    }
}
