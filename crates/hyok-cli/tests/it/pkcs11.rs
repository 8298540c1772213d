//! `hyok` with keys in a PKCS#11 token (SoftHSM2 from `scripts/services/softhsm.sh`): key
//! lifecycle, round trips, refusals (exit 1, one line naming the cause, no output file), and
//! escrow to an offline RSA key that decrypts alone, here and in the Python ESDK.
//!
//! Needs `HYOK_PKCS11_MODULE`, `HYOK_TEST_PKCS11_TOKEN`, `HYOK_PKCS11_PIN` (and
//! `SOFTHSM2_CONF`); each test prints `SKIPPED:` without them unless
//! `HYOK_REQUIRE_SERVICES=1`, where it fails instead. Every test uses its own key labels, and
//! the tests run one at a time: SoftHSM reads its token list when a process initialises it,
//! and a process that starts while another one rewrites the token's files may not see the
//! token at all.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serial_test::serial;

use crate::common::{self, check_failed, hyok, pseudo_random, raw_rsa_uri, Run};

fn required() -> bool {
    std::env::var("HYOK_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The token label, or None after a loud skip notice.
pub(crate) fn token(test: &str) -> Option<String> {
    let vars = [
        "HYOK_PKCS11_MODULE",
        "HYOK_TEST_PKCS11_TOKEN",
        "HYOK_PKCS11_PIN",
        "SOFTHSM2_CONF",
    ];
    let missing: Vec<&str> = vars
        .iter()
        .copied()
        .filter(|v| std::env::var_os(v).is_none_or(|x| x.is_empty()))
        .collect();
    if missing.is_empty() {
        return std::env::var("HYOK_TEST_PKCS11_TOKEN").ok();
    }
    let problem = format!("{} not set", missing.join(", "));
    if required() {
        panic!("{test}: SoftHSM is required (HYOK_REQUIRE_SERVICES=1): {problem}");
    }
    eprintln!(
        "SKIPPED: pkcs11::{test}: {problem}; run `eval \"$(scripts/services/softhsm.sh)\"` first"
    );
    None
}

pub(crate) fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "cli-{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `hyok` with extra environment settings (`None` removes the variable).
fn hyok_env<I, S>(args: I, env: &[(&str, Option<&str>)]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(common::bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd.output().expect("run hyok");
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `hyok key new KIND -o pkcs11:token=T;object=LABEL`, returning the URI it prints.
pub(crate) fn key_new(token: &str, kind: &str, label: &str) -> String {
    let run = hyok([
        "key",
        "new",
        kind,
        "-o",
        &format!("pkcs11:token={token};object={label}"),
    ]);
    assert!(run.success(), "key new {kind} {label}: {}", run.describe());
    let uri = run.stdout_text().trim().to_owned();
    assert!(uri.starts_with("pkcs11:"), "key new printed {uri:?}");
    uri
}

/// Destroys a key when dropped (test cleanup).
pub(crate) struct Cleanup(pub(crate) String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = hyok(["key", "destroy", &self.0, "--yes"]);
    }
}

fn encrypt(input: &Path, out: &Path, keys: &[&str], extra: &[&str]) -> Run {
    let mut args: Vec<String> = vec![
        "encrypt".into(),
        input.display().to_string(),
        "-o".into(),
        out.display().to_string(),
        "-c".into(),
        "purpose=hsm-test".into(),
    ];
    for k in keys {
        args.extend(["--key".into(), (*k).to_owned()]);
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    hyok(&args)
}

fn decrypt(input: &Path, out: &Path, keys: &[&str], extra: &[&str]) -> Run {
    let mut args: Vec<String> = vec![
        "decrypt".into(),
        input.display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    for k in keys {
        args.extend(["--key".into(), (*k).to_owned()]);
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    hyok(&args)
}

fn pkcs11_tool() -> Option<PathBuf> {
    ["/usr/bin/pkcs11-tool", "/usr/local/bin/pkcs11-tool"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

#[test]
#[serial(hsm)]
fn key_new_in_token_is_sensitive_and_never_extractable() {
    let Some(token) = token("key_new_in_token_is_sensitive_and_never_extractable") else {
        return;
    };
    let label = unique("aes");
    let uri = key_new(&token, "aes-256", &label);
    let _c = Cleanup(uri.clone());
    let mut fails = Vec::new();
    // A second key with the same label is refused.
    let again = hyok([
        "key",
        "new",
        "aes-256",
        "-o",
        &format!("pkcs11:token={token};object={label}"),
    ]);
    if again.success() || !again.stderr.contains("already exists") {
        fails.push(format!("second key new: {}", again.describe()));
    }
    // hyok key list shows it with its security attributes.
    let list = hyok(["key", "list", &format!("pkcs11:token={token}")]);
    let line = list
        .stdout_text()
        .lines()
        .find(|l| l.starts_with(&format!("{label}\t")))
        .map(str::to_owned);
    match line {
        None => fails.push(format!(
            "key list does not show {label}: {}",
            list.describe()
        )),
        Some(l) => {
            for want in [
                "\tAES-256\t",
                "sensitive=true",
                "extractable=false",
                "never-extractable=true",
                "usage=encrypt,decrypt",
            ] {
                if !l.contains(want) {
                    fails.push(format!("key list line {l:?} lacks {want:?}"));
                }
            }
        }
    }
    // pkcs11-tool, the vendor-neutral view.
    let module = std::env::var("HYOK_PKCS11_MODULE").unwrap();
    let pin = std::env::var("HYOK_PKCS11_PIN").unwrap();
    match pkcs11_tool() {
        None if required() => fails.push("pkcs11-tool (opensc) is not installed".into()),
        None => eprintln!("SKIPPED: part of pkcs11::key_new…: pkcs11-tool is not installed"),
        Some(tool) => {
            let base = [
                "--module",
                &module,
                "--token-label",
                &token,
                "--login",
                "--pin",
                &pin,
            ];
            let out = Command::new(&tool)
                .args(base)
                .args(["--list-objects", "--type", "secrkey", "--label", &label])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if !(text.contains(&label)
                && text.contains("sensitive")
                && text.contains("never extractable"))
            {
                fails.push(format!("pkcs11-tool --list-objects shows {text:?}"));
            }
            // Reading the key value out is refused.
            let read = Command::new(&tool)
                .args(base)
                .args(["--read-object", "--type", "secrkey", "--label", &label])
                .output()
                .unwrap();
            if read.status.success() && !read.stdout.is_empty() {
                fails.push(format!(
                    "pkcs11-tool --read-object returned {} bytes of a sensitive key",
                    read.stdout.len()
                ));
            }
        }
    }
    assert!(fails.is_empty(), "{fails:#?}");
}

#[test]
#[serial(hsm)]
fn round_trips_with_aes_rsa_and_both() {
    let Some(token) = token("round_trips_with_aes_rsa_and_both") else {
        return;
    };
    let aes = key_new(&token, "aes-256", &unique("aes"));
    let _c1 = Cleanup(aes.clone());
    let rsa = key_new(&token, "rsa-3072", &unique("rsa"));
    let _c2 = Cleanup(rsa.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut fails = Vec::new();
    let mut checks = 0;
    for (name, keys) in [
        ("aes", vec![aes.as_str()]),
        ("rsa", vec![rsa.as_str()]),
        ("aes+rsa", vec![aes.as_str(), rsa.as_str()]),
    ] {
        for size in [0usize, 1, 70_000] {
            checks += 1;
            let plain = pseudo_random(size, size as u64 + 7);
            let input = dir.path().join(format!("{name}-{size}.txt"));
            let msg = dir.path().join(format!("{name}-{size}.hyok"));
            let out = dir.path().join(format!("{name}-{size}.out"));
            fs::write(&input, &plain).unwrap();
            let run = encrypt(&input, &msg, &keys, &["--cache"]);
            if !run.success() {
                fails.push(format!("{name} {size}: encrypt: {}", run.describe()));
                continue;
            }
            // Each key of the keyring decrypts alone.
            for k in &keys {
                let _ = fs::remove_file(&out);
                let run = decrypt(&msg, &out, &[k], &[]);
                if !run.success() {
                    fails.push(format!(
                        "{name} {size}: decrypt with {k}: {}",
                        run.describe()
                    ));
                } else if fs::read(&out).unwrap() != plain {
                    fails.push(format!("{name} {size}: wrong plaintext with {k}"));
                }
            }
        }
    }
    // inspect shows the HSM key's namespace and label.
    let run = hyok([
        "inspect",
        &dir.path().join("aes+rsa-1.hyok").display().to_string(),
    ]);
    let label = aes.split("object=").nth(1).unwrap_or_default();
    if !run
        .stdout_text()
        .contains(&format!("provider \"pkcs11\", key \"{label}\""))
    {
        fails.push(format!("inspect: {}", run.stdout_text()));
    }
    common::report("pkcs11 round trips", checks, &fails);
}

#[test]
#[serial(hsm)]
fn failures_exit_1_with_one_line_naming_the_cause_and_no_output() {
    let Some(token) = token("failures_exit_1_with_one_line_naming_the_cause_and_no_output") else {
        return;
    };
    let aes = key_new(&token, "aes-256", &unique("aes"));
    let _c1 = Cleanup(aes.clone());
    let ec = key_new(&token, "ec-p256", &unique("ec"));
    let _c2 = Cleanup(ec.clone());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    fs::write(&input, b"secret payroll").unwrap();
    let good = dir.path().join("good.hyok");
    let run = encrypt(&input, &good, &[&aes], &[]);
    assert!(run.success(), "{}", run.describe());

    let aes_label = aes.split("object=").nth(1).unwrap().to_owned();
    type Env<'a> = Vec<(&'a str, Option<&'a str>)>;
    let cases: Vec<(&str, String, Env<'_>, &str)> = vec![
        (
            "wrong PIN",
            aes.clone(),
            vec![("HYOK_PKCS11_PIN", Some("000000"))],
            "C_Login: CKR_PIN_INCORRECT",
        ),
        (
            "missing module",
            aes.clone(),
            vec![(
                "HYOK_PKCS11_MODULE",
                Some("/nonexistent/libvendor-pkcs11.so"),
            )],
            "cannot load the PKCS#11 module /nonexistent/libvendor-pkcs11.so",
        ),
        (
            "missing token",
            format!("pkcs11:token=no-such-token;object={aes_label}"),
            vec![],
            "no token labelled \"no-such-token\"",
        ),
        (
            "missing key",
            format!("pkcs11:token={token};object={}", unique("absent")),
            vec![],
            "no key labelled",
        ),
        (
            "key of the wrong type",
            ec.clone(),
            vec![],
            "is an EC-P256 key",
        ),
    ];
    let mut fails = Vec::new();
    let mut checks = 0;
    for (what, key, env, cause) in &cases {
        for op in ["encrypt", "decrypt"] {
            checks += 1;
            let out = dir.path().join(format!("out-{op}"));
            let src = if op == "encrypt" { &input } else { &good };
            let run = hyok_env(
                [
                    op,
                    &src.display().to_string(),
                    "-o",
                    &out.display().to_string(),
                    "--key",
                    key,
                ],
                env,
            );
            if let Err(e) = check_failed(&run, Some(&out)) {
                fails.push(format!("{what} ({op}): {e}"));
            }
            let first = run.stderr.lines().next().unwrap_or_default();
            if !first.contains(cause) {
                fails.push(format!("{what} ({op}): {first:?} does not say {cause:?}"));
            }
            if first.contains("000000") {
                fails.push(format!("{what} ({op}): the PIN appears in the error"));
            }
            let left: Vec<String> = common::dir_entries(dir.path())
                .into_iter()
                .filter(|n| n.starts_with("out-") || n.starts_with(".tmp"))
                .collect();
            if !left.is_empty() {
                fails.push(format!("{what} ({op}): left {left:?} behind"));
            }
        }
    }
    // A PIN in the URI is refused before anything is tried, and never echoed.
    checks += 1;
    let out = dir.path().join("out-pin");
    let run = encrypt(&input, &out, &[&format!("{aes}?pin-value=424242")], &[]);
    if run.code != Some(2)
        || !run.stderr.contains("pin-value is refused")
        || run.stderr.contains("424242")
        || out.exists()
    {
        fails.push(format!("pin-value: {}", run.describe()));
    }
    common::report("pkcs11 failures", checks, &fails);
}

#[test]
#[serial(hsm)]
fn cache_flags_are_checked_and_work() {
    let Some(token) = token("cache_flags_are_checked_and_work") else {
        return;
    };
    let aes = key_new(&token, "aes-256", &unique("aes"));
    let _c = Cleanup(aes.clone());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    fs::write(&input, b"cached").unwrap();
    let msg = dir.path().join("m.hyok");
    // Bounds without --cache are a usage error.
    let run = encrypt(&input, &msg, &[&aes], &["--cache-max-age", "5m"]);
    assert_eq!(run.code, Some(2), "{}", run.describe());
    assert!(!msg.exists());
    let run = encrypt(&input, &msg, &[&aes], &["--cache", "--cache-max-age", "0s"]);
    assert_eq!(run.code, Some(2), "{}", run.describe());
    let run = encrypt(
        &input,
        &msg,
        &[&aes],
        &[
            "--cache",
            "--cache-max-age",
            "90s",
            "--cache-max-messages",
            "10",
            "--cache-max-bytes",
            "64MiB",
            "--cache-max-entries",
            "8",
        ],
    );
    assert!(run.success(), "{}", run.describe());
    let out = dir.path().join("m.out");
    let run = decrypt(&msg, &out, &[&aes], &["--cache", "--cache-max-age", "1m"]);
    assert!(run.success(), "{}", run.describe());
    assert_eq!(fs::read(&out).unwrap(), b"cached");
}

/// The ESDK peer's interpreter, or None after a loud skip notice (a panic when required).
fn python(test: &str) -> Option<PathBuf> {
    let problem = match std::env::var_os("HYOK_ESDK_PYTHON").filter(|v| !v.is_empty()) {
        None => "HYOK_ESDK_PYTHON is not set".to_string(),
        Some(p) => {
            let p = PathBuf::from(p);
            let probe = common::run_program(&p, ["-c", "import aws_encryption_sdk"], None);
            if probe.success() {
                return Some(p);
            }
            format!("{} cannot import aws_encryption_sdk", p.display())
        }
    };
    if required() {
        panic!("{test}: the Python ESDK peer is required (HYOK_REQUIRE_SERVICES=1): {problem}");
    }
    eprintln!("SKIPPED: part of pkcs11::{test}: {problem}");
    None
}

/// HSM key as generator + an offline RSA public key as second wrapping key. With the HSM key
/// destroyed (crypto-shredded), the RSA private key alone still decrypts, in hyok and in the
/// official Python ESDK.
#[test]
#[serial(hsm)]
fn escrow_hsm_generator_plus_offline_rsa_key() {
    let test = "escrow_hsm_generator_plus_offline_rsa_key";
    let Some(token) = token(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hsm = key_new(&token, "aes-256", &unique("escrow-gen"));
    let cleanup = Cleanup(hsm.clone());
    let prefix = dir.path().join("escrow-rsa");
    let run = hyok([
        "key",
        "new",
        "rsa-3072",
        "-o",
        &prefix.display().to_string(),
    ]);
    assert!(run.success(), "{}", run.describe());
    let public = dir.path().join("escrow-rsa.pub.pem");
    let private = dir.path().join("escrow-rsa.pem");
    let escrow_pub = raw_rsa_uri(
        "hyok-escrow",
        "offline-2026",
        Some(&public),
        None,
        "oaep-sha256",
    );
    let escrow_priv = raw_rsa_uri(
        "hyok-escrow",
        "offline-2026",
        None,
        Some(&private),
        "oaep-sha256",
    );

    let plain = pseudo_random(100_000, 99);
    let input = dir.path().join("records.csv");
    fs::write(&input, &plain).unwrap();
    let msg = dir.path().join("records.hyok");
    let run = encrypt(&input, &msg, &[&hsm, &escrow_pub], &[]);
    assert!(run.success(), "{}", run.describe());
    let out = dir.path().join("out1");
    let run = decrypt(&msg, &out, &[&hsm], &[]);
    assert!(run.success(), "HSM key decrypts: {}", run.describe());

    // The HSM key is destroyed: it cannot decrypt any more…
    let run = hyok(["key", "destroy", &hsm, "--yes"]);
    assert!(run.success(), "{}", run.describe());
    drop(cleanup);
    let out = dir.path().join("out2");
    let run = decrypt(&msg, &out, &[&hsm], &[]);
    check_failed(&run, Some(&out)).unwrap();
    assert!(run.stderr.contains("no key labelled"), "{}", run.stderr);

    // …but the offline RSA private key alone recovers the data, in hyok…
    let out = dir.path().join("out3");
    let run = decrypt(&msg, &out, &[&escrow_priv], &[]);
    assert!(run.success(), "escrow key decrypts: {}", run.describe());
    assert_eq!(fs::read(&out).unwrap(), plain);

    // …and in the official Python ESDK.
    let Some(python) = python(test) else {
        return;
    };
    let out = dir.path().join("out4");
    let peer = common::workspace_root().join("tests/interop/esdk_peer.py");
    let run = common::run_program(
        &python,
        [
            peer.display().to_string(),
            "decrypt".into(),
            "--rsa-private".into(),
            private.display().to_string(),
            "--rsa-padding".into(),
            "oaep-sha256".into(),
            "--key-namespace".into(),
            "hyok-escrow".into(),
            "--key-name".into(),
            "offline-2026".into(),
            "--context".into(),
            "purpose=hsm-test".into(),
            msg.display().to_string(),
            out.display().to_string(),
        ],
        None,
    );
    assert!(run.success(), "Python ESDK: {}", run.describe());
    assert_eq!(fs::read(&out).unwrap(), plain);
}
