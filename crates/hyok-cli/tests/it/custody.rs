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
        let mut c = Command::new(common::bin());
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        common::hermetic(&mut c);
        c.env("HYOK_CONFIG", self.path("hyok.toml"))
            .env("HOME", self.dir.path())
            .env("XDG_STATE_HOME", self.path("state"));
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
