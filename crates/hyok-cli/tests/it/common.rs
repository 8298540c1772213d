//! Shared helpers: run the `hyok` binary, check its error output, build key URIs.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Path of the `hyok` binary under test.
pub(crate) fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hyok"))
}

/// The workspace root (two levels above this crate).
pub(crate) fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `testdata/esdk` in the workspace.
pub(crate) fn esdk_testdata() -> PathBuf {
    workspace_root().join("testdata/esdk")
}

/// The result of one run of a program: exit code (None if killed by a signal), stdout, stderr.
#[derive(Debug)]
pub(crate) struct Run {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub(crate) fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// One-line summary for failure reports: exit code and the stderr text, joined.
    pub(crate) fn describe(&self) -> String {
        let code = match self.code {
            Some(c) => format!("exit {c}"),
            None => "killed by a signal".to_string(),
        };
        let err = self.stderr.trim_end().replace('\n', " | ");
        if err.is_empty() {
            format!("{code}, empty stderr")
        } else {
            format!("{code}, stderr: {err}")
        }
    }
}

/// Keep a test's `hyok` independent of the developer's shell: no log settings, no audit
/// log, and no configuration file (a per-user `hyok.toml` would add keyrings, stores or an
/// `[audit]` section). Tests that want one set `HYOK_CONFIG` or `HYOK_AUDIT_*` after this.
pub(crate) fn hermetic(cmd: &mut Command) {
    for v in [
        "RUST_LOG",
        "RUST_BACKTRACE",
        "HYOK_LOG",
        "HYOK_CONFIG",
        "HYOK_AUDIT_LOG",
        "HYOK_AUDIT_KEY",
        "HYOK_AUDIT_IDENTITY",
        "HYOK_AUDIT_ORIGIN",
        "HYOK_AUDIT_CHECKPOINT_EVERY",
        "HYOK_AUDIT_CHECKPOINT_SECS",
    ] {
        cmd.env_remove(v);
    }
    cmd.env(
        "XDG_CONFIG_HOME",
        "/nonexistent/hyok-tests-have-no-user-config",
    );
    // Test key files are written with the default umask (0644); the warning about that
    // has its own test (hardening.rs).
    cmd.env("HYOK_ALLOW_SHARED_SECRET_FILES", "1");
}

/// Runs `program args...` with the given stdin bytes (an empty stdin when `None`).
pub(crate) fn run_program<I, S>(program: &Path, args: I, stdin: Option<&[u8]>) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    hermetic(&mut cmd);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let input = stdin.unwrap_or_default().to_vec();
    let mut child_stdin = child.stdin.take().expect("stdin is piped");
    // Feed stdin from a thread so a child that writes a lot before reading cannot deadlock us.
    let feeder = std::thread::spawn(move || {
        // The child may exit without reading everything (e.g. a usage error): ignore EPIPE.
        let _ = child_stdin.write_all(&input);
    });
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {}: {e}", program.display()));
    let _ = feeder.join();
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `hyok args...` with an empty stdin.
pub(crate) fn hyok<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_program(bin(), args, None)
}

/// Runs `hyok args...` feeding `input` on stdin.
pub(crate) fn hyok_stdin<I, S>(args: I, input: &[u8]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_program(bin(), args, Some(input))
}

/// Checks the error convention: exactly one line starting `hyok: error:`, optionally followed
/// by exactly one `hint:` line, and nothing else.
pub(crate) fn check_error_stderr(stderr: &str) -> Result<(), String> {
    let lines: Vec<&str> = stderr.lines().collect();
    let first_ok = lines.first().is_some_and(|l| l.starts_with("hyok: error:"));
    let hint_ok = |l: &str| {
        let l = l.trim_start();
        l.starts_with("hint:") || l.starts_with("hyok: hint:")
    };
    let rest_ok = match lines.len() {
        1 => true,
        2 => hint_ok(lines[1]),
        _ => false,
    };
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(format!(
            "stderr is not one `hyok: error:` line (+ optional `hint:` line): {:?}",
            stderr
        ))
    }
}

/// Checks a run that must have failed as an operation failure: exit code 1, the one-line
/// error convention, and `out` (if given) does not exist.
pub(crate) fn check_failed(run: &Run, out: Option<&Path>) -> Result<(), String> {
    let mut problems = Vec::new();
    if run.code != Some(1) {
        problems.push(format!("expected exit 1, got {}", run.describe()));
    }
    if let Err(e) = check_error_stderr(&run.stderr) {
        problems.push(e);
    }
    if let Some(out) = out {
        if out.exists() {
            problems.push(format!("output file {} was left behind", out.display()));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Entries of a directory (names), sorted; used to check nothing (not even a temp file) was
/// left behind by a failed run.
pub(crate) fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Where two byte strings first differ, for readable mismatch reports.
pub(crate) fn describe_mismatch(got: &[u8], want: &[u8]) -> String {
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    format!(
        "output differs: got {} bytes, expected {}, first difference at offset {first}",
        got.len(),
        want.len()
    )
}

/// Percent-encodes everything except RFC 3986 unreserved characters (and the bytes in
/// `keep`). Works on the UTF-8 bytes, so non-ASCII text becomes `%XX` sequences.
fn pct_keep(s: &[u8], keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Percent-encodes a namespace, key name or query value.
pub(crate) fn pct(s: &str) -> String {
    pct_keep(s.as_bytes(), b"")
}

/// Percent-encodes a file path for a query value; `/` stays readable (it is legal there).
pub(crate) fn pct_path(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    pct_keep(p.as_os_str().as_bytes(), b"/")
}

/// `raw-aes:NAMESPACE/NAME?file=PATH`
pub(crate) fn raw_aes_uri(namespace: &str, name: &str, key_file: &Path) -> String {
    format!(
        "raw-aes:{}/{}?file={}",
        pct(namespace),
        pct(name),
        pct_path(key_file)
    )
}

/// `raw-rsa:NAMESPACE/NAME?public=PEM&private=PEM&padding=P` (either PEM may be absent).
pub(crate) fn raw_rsa_uri(
    namespace: &str,
    name: &str,
    public: Option<&Path>,
    private: Option<&Path>,
    padding: &str,
) -> String {
    let mut query = Vec::new();
    if let Some(p) = public {
        query.push(format!("public={}", pct_path(p)));
    }
    if let Some(p) = private {
        query.push(format!("private={}", pct_path(p)));
    }
    query.push(format!("padding={}", pct(padding)));
    format!(
        "raw-rsa:{}/{}?{}",
        pct(namespace),
        pct(name),
        query.join("&")
    )
}

/// Deterministic pseudo-random bytes (xorshift64*), so tests need no RNG crate and failures
/// reproduce exactly.
pub(crate) fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Maps `f` over `items` on a few threads (processes dominate the cost, so this only keeps
/// the cores busy); results come back in input order.
pub(crate) fn par_map<T, R, F>(items: &[T], f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= items.len() {
                    break;
                }
                let r = f(&items[i]);
                *results[i]
                    .lock()
                    .expect("no thread panics while holding it") = Some(r);
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .expect("no thread panics while holding it")
                .expect("every item was processed")
        })
        .collect()
}

/// Prints a line straight to the process's stderr, so it shows even for passing tests
/// (libtest captures `println!`/`eprintln!` output).
pub(crate) fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Panics with every failure listed, or returns quietly when there are none. `total` is the
/// number of checks made (one check may report several problems).
pub(crate) fn report(what: &str, total: usize, failures: &[String]) {
    println!("{what}: {total} checks, {} problems", failures.len());
    if !failures.is_empty() {
        let mut msg = format!("{what}: {} problems in {total} checks:\n", failures.len());
        for f in failures {
            let _ = writeln!(msg, "  - {f}");
        }
        panic!("{msg}");
    }
}

/// Runs `hyok args...` with `env` set and `remove` unset on top of the test's environment,
/// stdin from `stdin`. Panics if it runs longer than `limit`: the binary must bound its own
/// waits (network timeouts, retries), so a hang is a failure, not a slow pass.
pub(crate) fn hyok_env(
    args: &[&str],
    env: &[(&str, &str)],
    remove: &[&str],
    stdin: Option<&[u8]>,
    limit: std::time::Duration,
) -> Run {
    use std::io::Read as _;
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    hermetic(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in remove {
        cmd.env_remove(k);
    }
    let mut child = cmd.spawn().expect("start hyok");
    let input = stdin.unwrap_or_default().to_vec();
    let mut child_stdin = child.stdin.take().expect("stdin is piped");
    let feeder = std::thread::spawn(move || {
        let _ = child_stdin.write_all(&input);
    });
    let mut out = child.stdout.take().expect("stdout is piped");
    let mut err = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for hyok") {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hyok {args:?} did not finish within {limit:?} (hang)");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let _ = feeder.join();
    Run {
        code: status.code(),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned(),
    }
}

/// Skips a test loudly (straight to stderr), or fails it when `HYOK_REQUIRE_SERVICES=1`.
pub(crate) fn skip(test: &str, why: &str) {
    if std::env::var("HYOK_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("{test}: {why}, and HYOK_REQUIRE_SERVICES=1");
    }
    note(&format!("SKIPPED: {test}: {why}"));
}

/// A name no other test run uses.
pub(crate) fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// `127.0.0.1:PORT` where nothing listens (a port that was free a moment ago).
pub(crate) fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = l.local_addr().expect("local addr");
    drop(l);
    addr.to_string()
}

/// Flip one byte in the middle of the first occurrence of `needle` in `msg` (to another
/// base64 letter, so text stays text).
pub(crate) fn tamper_inside(msg: &mut [u8], needle: &[u8]) -> bool {
    let Some(at) = msg.windows(needle.len()).position(|w| w == needle) else {
        return false;
    };
    let i = at + needle.len() / 2;
    msg[i] = if msg[i] == b'A' { b'B' } else { b'A' };
    true
}

/// The EDKs of a message file.
pub(crate) fn message_edks(msg: &[u8]) -> Vec<hyok_core::EncryptedDataKey> {
    let mut r = msg;
    hyok_core::ParsedHeader::read(
        &mut r,
        hyok_core::HeaderLimits {
            max_edks: 64,
            ..Default::default()
        },
    )
    .expect("a message header")
    .header
    .edks
}

/// One failure case of a key store: what, the arguments, extra environment, and a word the
/// one-line error must contain.
pub(crate) type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

/// One failure check: exit 1, the one-line convention, no output file, and `word` in the
/// message.
pub(crate) fn failed(r: &Run, out: &Path, word: &str, what: &str) -> Result<(), String> {
    check_failed(r, Some(out)).map_err(|e| format!("{what}: {e}"))?;
    let first = r.stderr.lines().next().unwrap_or("");
    if !first.contains(word) {
        return Err(format!("{what}: the error does not say {word:?}: {first}"));
    }
    Ok(())
}

/// The failures every network key store must name the same way: a key that does not exist,
/// an EDK changed inside its ciphertext, and a wrong encryption context. `ctx` is the `-c`
/// pair the message was made with.
pub(crate) fn key_store_failure_cases<'a>(
    uri: &'a str,
    missing: &'a str,
    ctx: [&'a str; 2],
    plain: &'a str,
    msg: &'a str,
    tampered: &'a str,
    out: &'a str,
) -> Vec<Case<'a>> {
    vec![
        (
            "missing key",
            vec!["encrypt", "-k", missing, plain, "-o", out],
            vec![],
            "key not found",
        ),
        (
            "tampered EDK",
            vec!["decrypt", "-k", uri, ctx[0], ctx[1], tampered, "-o", out],
            vec![],
            "unwrapping the data key failed",
        ),
        (
            "wrong context",
            vec!["decrypt", "-k", uri, "-c", "tenant=evil", msg, "-o", out],
            vec![],
            "unwrapping the data key failed",
        ),
    ]
}
