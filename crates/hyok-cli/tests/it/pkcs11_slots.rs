//! One key in several PKCS#11 tokens (`pkcs11:token=A,B;object=kek`, issue 15): real SoftHSM2
//! tokens in a private token directory (its own `SOFTHSM2_CONF`, so the shared test token is
//! untouched), the same AES key imported by value into two of them and a different one into a
//! third. A token is made unavailable by moving its directory out of the token directory.
//!
//! Shown: encrypt/decrypt go on with either token gone, and a message made by one token opens
//! with the other; `hyok key health` lists each token; with every token gone the error is one
//! line and exit 1 (no output file); a token holding a different key is refused at open with
//! one line. Needs `HYOK_PKCS11_MODULE` and `softhsm2-util`; skips loudly without them unless
//! `HYOK_REQUIRE_SERVICES=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serial_test::serial;

use crate::common::{self, check_error_stderr, check_failed, pseudo_random, Run};

const PIN: &str = "123456";
const SO_PIN: &str = "12345678";
const LIMIT: Duration = Duration::from_secs(120);

/// A private SoftHSM2 token directory with its own configuration file.
struct Tokens {
    dir: tempfile::TempDir,
    module: String,
}

impl Tokens {
    fn new(test: &str) -> Option<Self> {
        let module = std::env::var("HYOK_PKCS11_MODULE")
            .ok()
            .filter(|m| !m.is_empty());
        let util = Command::new("softhsm2-util")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let Some(module) = module.filter(|_| util) else {
            common::skip(
                &format!("pkcs11_slots::{test}"),
                "HYOK_PKCS11_MODULE or softhsm2-util missing (scripts/services/softhsm.sh)",
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::create_dir(dir.path().join("hidden")).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
                 slots.removable = false\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        Some(Self { dir, module })
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    fn util(&self, args: &[&str]) {
        let out = Command::new("softhsm2-util")
            .args(args)
            .env("SOFTHSM2_CONF", self.conf())
            .stdin(Stdio::null())
            .output()
            .expect("run softhsm2-util");
        assert!(
            out.status.success(),
            "softhsm2-util {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new token `label` holding the AES key `key` (imported by value) labelled `kek`.
    fn token_with_key(&self, label: &str, key: &[u8; 32]) {
        self.util(&[
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            SO_PIN,
            "--pin",
            PIN,
        ]);
        let file = self.dir.path().join("kek.bin");
        std::fs::write(&file, key).unwrap();
        self.util(&[
            "--import",
            file.to_str().unwrap(),
            "--aes",
            "--token",
            label,
            "--label",
            "kek",
            "--id",
            "01",
            "--pin",
            PIN,
        ]);
        std::fs::remove_file(&file).unwrap();
    }

    /// The directory of token `label` (SoftHSM names it by a UUID; the label is in
    /// `token.object`), under `tokens/` or `hidden/`.
    fn token_dir(&self, label: &str) -> PathBuf {
        for parent in ["tokens", "hidden"] {
            for e in std::fs::read_dir(self.dir.path().join(parent)).unwrap() {
                let p = e.unwrap().path();
                let obj = std::fs::read(p.join("token.object")).unwrap_or_default();
                let padded = format!("{label:<32}");
                if obj.windows(32).any(|w| w == padded.as_bytes()) {
                    return p;
                }
            }
        }
        panic!("no directory for token {label}");
    }

    /// Move token `label` out of (`present = false`) or back into the token directory.
    fn set_present(&self, label: &str, present: bool) {
        let from = self.token_dir(label);
        let to = self
            .dir
            .path()
            .join(if present { "tokens" } else { "hidden" })
            .join(from.file_name().unwrap());
        if from != to {
            std::fs::rename(&from, &to).unwrap();
        }
    }

    fn hyok(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let conf = self.conf();
        common::hyok_env(
            args,
            &[
                ("SOFTHSM2_CONF", conf.to_str().unwrap()),
                ("HYOK_PKCS11_MODULE", &self.module),
                ("HYOK_PKCS11_PIN", PIN),
            ],
            &[],
            stdin,
            LIMIT,
        )
    }

    fn encrypt(&self, uri: &str, plain: &[u8], out: &Path) -> Run {
        self.hyok(
            &["encrypt", "--key", uri, "-o", out.to_str().unwrap()],
            Some(plain),
        )
    }

    fn decrypt(&self, uri: &str, msg: &Path, out: &Path) -> Run {
        self.hyok(
            &[
                "decrypt",
                "--key",
                uri,
                msg.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ],
            None,
        )
    }
}

/// A test AES-256 key without NUL or line-break bytes: `softhsm2-util --import --aes` reads
/// the file as a C string and silently imports only the bytes before the first NUL (measured:
/// a 32-byte key with a zero at offset 14 became "AES length 14", and every C_EncryptInit
/// with it failed with CKR_MECHANISM_INVALID).
fn random_key(seed: u64) -> [u8; 32] {
    let mut k = [0u8; 32];
    for (o, b) in k.iter_mut().zip(pseudo_random(32, seed ^ 0x5107)) {
        *o = match b {
            0 | b'\n' | b'\r' => 0x5a,
            b => b,
        };
    }
    k
}

/// The `hyok key health` line of token `label`.
fn health_line(text: &str, label: &str) -> String {
    text.lines()
        .find(|l| l.trim_start().starts_with(&format!("token={label} ")))
        .unwrap_or_else(|| panic!("no line for token={label}: {text}"))
        .to_owned()
}

#[test]
#[serial(pkcs11_slots)]
fn two_tokens_fail_over_and_all_gone_is_one_line() {
    let Some(t) = Tokens::new("two_tokens_fail_over_and_all_gone_is_one_line") else {
        return;
    };
    let key = random_key(1);
    t.token_with_key("slots-a", &key);
    t.token_with_key("slots-b", &key);
    let uri = "pkcs11:token=slots-a,slots-b;object=kek";
    let work = t.dir.path();
    let plain = pseudo_random(100_000, 7);

    // Both present: a round trip, and health shows both tokens up.
    let m1 = work.join("m1.hyok");
    let r = t.encrypt(uri, &plain, &m1);
    assert!(r.success(), "encrypt: {}", r.describe());
    let r = t.hyok(&["key", "health", uri], None);
    assert!(r.success(), "health: {}", r.describe());
    let text = r.stdout_text();
    for l in ["slots-a", "slots-b"] {
        let line = health_line(&text, l);
        assert!(line.contains(" up ") && line.contains("AES"), "{text}");
        assert!(line.contains("closed"), "{text}");
    }

    // Token a gone: decrypt the message (a made it) with b; encrypt a new one on b.
    t.set_present("slots-a", false);
    let out = work.join("out1");
    let r = t.decrypt(uri, &m1, &out);
    assert!(r.success(), "decrypt with slots-a gone: {}", r.describe());
    assert!(std::fs::read(&out).unwrap() == plain, "round trip differs");
    let m2 = work.join("m2.hyok");
    let r = t.encrypt(uri, &plain, &m2);
    assert!(r.success(), "encrypt with slots-a gone: {}", r.describe());
    let r = t.hyok(&["key", "health", uri], None);
    assert!(r.success(), "health with slots-a gone: {}", r.describe());
    let text = r.stdout_text();
    assert!(
        health_line(&text, "slots-a").contains("unreachable"),
        "{text}"
    );
    assert!(health_line(&text, "slots-b").contains(" up "), "{text}");

    // Token b gone, a back: the message b made opens with a.
    t.set_present("slots-a", true);
    t.set_present("slots-b", false);
    let out2 = work.join("out2");
    let r = t.decrypt(uri, &m2, &out2);
    assert!(r.success(), "decrypt with slots-b gone: {}", r.describe());
    assert!(std::fs::read(&out2).unwrap() == plain, "round trip differs");

    // Every token gone: one line, exit 1, no output file; health exit 1, each unreachable.
    t.set_present("slots-a", false);
    let m3 = work.join("m3.hyok");
    let r = t.encrypt(uri, &plain, &m3);
    check_failed(&r, Some(&m3)).unwrap();
    assert!(r.stderr.contains("all 2 nodes failed"), "{}", r.stderr);
    let out3 = work.join("out3");
    let r = t.decrypt(uri, &m1, &out3);
    check_failed(&r, Some(&out3)).unwrap();
    let r = t.hyok(&["key", "health", uri], None);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    check_error_stderr(&r.stderr).unwrap();
    assert_eq!(
        r.stdout_text().matches("unreachable").count(),
        2,
        "{}",
        r.describe()
    );
}

#[test]
#[serial(pkcs11_slots)]
fn a_token_with_another_key_is_refused() {
    let Some(t) = Tokens::new("a_token_with_another_key_is_refused") else {
        return;
    };
    t.token_with_key("slots-a", &random_key(2));
    t.token_with_key("slots-c", &random_key(3));
    let uri = "pkcs11:token=slots-a,slots-c;object=kek";
    let m = t.dir.path().join("m.hyok");
    let r = t.encrypt(uri, b"secret", &m);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    check_error_stderr(&r.stderr).unwrap();
    assert!(
        r.stderr
            .contains("token=slots-c holds another AES key than token=slots-a"),
        "{}",
        r.stderr
    );
    assert!(!m.exists(), "output file left behind");
    // Each token alone is a working key (so the refusal is about the pair).
    for label in ["slots-a", "slots-c"] {
        let r = t.encrypt(&format!("pkcs11:token={label};object=kek"), b"x", &m);
        assert!(r.success(), "{label}: {}", r.describe());
        std::fs::remove_file(&m).unwrap();
    }
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |rd| rd.map_while(Result::ok).count())
}

/// `hyok cp -r SRC DST` with `uri`; once `watch` holds a tenth of `n` files, token `gone` is
/// moved away while the run goes on. The run must succeed.
fn cp_losing_a_token(
    t: &Tokens,
    uri: &str,
    src: &Path,
    dst: &str,
    watch: &Path,
    gone: &str,
    n: usize,
) {
    let err = t.dir.path().join("cp.stderr");
    let mut cmd = Command::new(common::bin());
    cmd.args(["cp", "-r", src.to_str().unwrap(), dst, "-q", "--key", uri])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap());
    common::hermetic(&mut cmd);
    cmd.env("SOFTHSM2_CONF", t.conf())
        .env("HYOK_PKCS11_MODULE", &t.module)
        .env("HYOK_PKCS11_PIN", PIN);
    let started = std::time::Instant::now();
    let mut child = cmd.spawn().expect("start hyok cp");
    while count_files(watch) < n.div_ceil(10) {
        if let Some(s) = child.try_wait().unwrap() {
            panic!(
                "hyok cp ended ({s}) before the token could be removed: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        assert!(started.elapsed() < LIMIT, "hyok cp made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    t.set_present(gone, false);
    let removed_after = count_files(watch);
    assert!(
        child.try_wait().unwrap().is_none(),
        "hyok cp finished while the token was being removed; raise the object count"
    );
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hyok cp did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(status.success(), "hyok cp failed ({status}): {stderr}");
    common::note(&format!(
        "pkcs11_slots: cp -r of {n} objects: token {gone} removed after {removed_after}, run \
         finished in {:.1?}",
        started.elapsed()
    ));
}

/// A token goes away in the middle of a `cp -r` (upload: token a; download: token b, a back):
/// every object arrives, intact.
#[test]
#[serial(pkcs11_slots)]
fn cp_r_goes_on_when_a_token_goes_away() {
    let Some(t) = Tokens::new("cp_r_goes_on_when_a_token_goes_away") else {
        return;
    };
    let key = random_key(4);
    t.token_with_key("slots-a", &key);
    t.token_with_key("slots-b", &key);
    let uri = "pkcs11:token=slots-a,slots-b;object=kek";
    let n = 5000;
    let src = t.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let body = |i: usize| format!("pkcs11 failover object {i:05}\n");
    for i in 0..n {
        std::fs::write(src.join(format!("o{i:05}")), body(i)).unwrap();
    }
    let store = t.dir.path().join("store");
    let dst = format!("file://{}/", store.display());
    cp_losing_a_token(&t, uri, &src, &dst, &store, "slots-a", n);
    assert_eq!(count_files(&store), n, "objects in the store");

    t.set_present("slots-a", true);
    let back = t.dir.path().join("back");
    cp_losing_a_token(
        &t,
        uri,
        Path::new(&dst),
        back.to_str().unwrap(),
        &back,
        "slots-b",
        n,
    );
    let mut wrong = Vec::new();
    for i in 0..n {
        match std::fs::read_to_string(back.join(format!("o{i:05}"))) {
            Ok(b) if b == body(i) => {}
            other => wrong.push(format!("o{i:05}: {other:?}")),
        }
        if wrong.len() > 5 {
            break;
        }
    }
    assert!(wrong.is_empty(), "objects lost or changed: {wrong:?}");
}
