//! Issue 10: what hyok does with interrupted runs, special output files, signed messages on
//! stdout, hostile frame lengths, thread counts and key/PIN/config files that are devices.
//! Each test runs the commands of the defect report in a temporary directory.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{
    self, check_error_stderr, dir_entries, hermetic, hyok, hyok_stdin, pseudo_random, raw_aes_uri,
    Run,
};

/// A directory with a private AES key (mode 0600) and its URI.
struct Keyed {
    dir: tempfile::TempDir,
    uri: String,
}

impl Keyed {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.key");
        std::fs::write(&key, pseudo_random(32, 10)).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let uri = raw_aes_uri("hyok", "k", &key);
        Self { dir, uri }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Encrypt `plain` with extra flags; the message bytes.
    fn encrypt(&self, plain: &[u8], extra: &[&str]) -> Vec<u8> {
        let mut args = vec!["encrypt", "-k", &self.uri];
        args.extend_from_slice(extra);
        let r = hyok_stdin(&args, plain);
        assert!(r.success(), "encrypt: {}", r.describe());
        r.stdout
    }
}

/// A fresh, empty working directory (inside `k`'s) for one run.
fn workdir(k: &Keyed, name: &str) -> PathBuf {
    let d = k.path(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn spawn(args: &[&str], stdin: Stdio) -> Child {
    let mut cmd = Command::new(common::bin());
    cmd.args(args)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    hermetic(&mut cmd);
    cmd.spawn().expect("start hyok")
}

const SIGNALS: [(&str, i32); 3] = [("INT", 2), ("TERM", 15), ("HUP", 1)];

/// Send `sig` (a name for kill(1)) to `child` and return how it ended: `Ok(exit code)` or
/// `Err(signal)` if the signal's default action killed it (before hyok installed its
/// handler).
fn interrupt(child: &mut Child, sig: &str) -> Result<i32, i32> {
    let st = Command::new("kill")
        .args(["-s", sig, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -s {sig}");
    let status = child.wait().expect("wait for hyok");
    match status.code() {
        Some(c) => Ok(c),
        None => Err(status.signal().unwrap_or(0)),
    }
}

/// The acceptance check for one interrupted run: hyok exited 128+signal (or was killed by
/// it before its handler was in place, or finished first with exit 0), and the directory
/// holds nothing but the input — or, if the signal came after the output was complete
/// and named (a run may be interrupted while it sets the file's time or closes the audit
/// log), also the complete output `out`. Returns whether the signal ended the run.
fn check_interrupted(
    label: &str,
    (ended, signo): (Result<i32, i32>, i32),
    dir: &Path,
    input: &[&str],
    (out, complete): (&str, &dyn Fn() -> bool),
) -> bool {
    let files_ok = || {
        let found = dir_entries(dir);
        let mut with_out: Vec<String> = input.iter().map(|s| s.to_string()).collect();
        with_out.push(out.to_owned());
        with_out.sort();
        assert!(
            found == input || (found == with_out && complete()),
            "{label}: files left: {found:?}"
        );
    };
    match ended {
        Ok(0) => {
            assert!(complete(), "{label}: exit 0 but the output is not complete");
            false
        }
        Ok(c) => {
            assert_eq!(c, 128 + signo, "{label}: exit status");
            files_ok();
            true
        }
        Err(s) => {
            assert_eq!(s, signo, "{label}: killed by another signal");
            files_ok();
            true
        }
    }
}

/// A delay in 0..max_ms from a run number (deterministic, spread over the range).
fn delay(run: usize, max_ms: u64) -> Duration {
    let r = pseudo_random(8, run as u64 + 77);
    Duration::from_millis(u64::from_le_bytes(r.try_into().unwrap()) % max_ms)
}

#[test]
fn signals_during_encrypt_and_decrypt_leave_no_file_but_the_input() {
    let k = Keyed::new();
    let plain = pseudo_random(24 << 20, 3);
    let msg = k.encrypt(&plain, &[]);
    let mut interrupted = [0usize; 2];
    for run in 0..20 {
        let (sig, signo) = SIGNALS[run % 3];
        for (i, what) in ["encrypt", "decrypt"].iter().enumerate() {
            let dir = workdir(&k, &format!("{what}-{run}"));
            let input = if *what == "encrypt" { "in" } else { "in.hyok" };
            let data: &[u8] = if *what == "encrypt" { &plain } else { &msg };
            std::fs::write(dir.join(input), data).unwrap();
            let out = dir.join("out");
            let out_s = out.to_str().unwrap();
            let mut child = spawn(&[what, "-k", k.uri.as_str(), "-o", out_s], Stdio::piped());
            // Feed part of the input through a pipe that stays open: the run is still going
            // when the signal arrives, at a point that differs from run to run.
            let fed = (run * 1_048_573) % data.len();
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(&data[..fed]);
            std::thread::sleep(delay(run, 150));
            let ended = interrupt(&mut child, sig);
            drop(stdin);
            // The input pipe never closed, so no run can have a complete output.
            let never = || false;
            let label = format!("{what} run {run}");
            if check_interrupted(&label, (ended, signo), &dir, &[input], ("out", &never)) {
                interrupted[i] += 1;
            }
        }
    }
    // Every run kept its pipe open, so none could finish.
    assert_eq!(interrupted, [20, 20]);
}

#[test]
fn signals_during_cp_download_leave_no_file_but_the_input() {
    let k = Keyed::new();
    let store = k.path("store");
    std::fs::create_dir_all(&store).unwrap();
    let plain = pseudo_random(48 << 20, 4);
    let src = k.path("src");
    std::fs::write(&src, &plain).unwrap();
    let obj = format!("file://{}/obj", store.display());
    let r = hyok(["cp", src.to_str().unwrap(), &obj, "-k", &k.uri, "-q"]);
    assert!(r.success(), "upload: {}", r.describe());
    // One whole download first, to spread the signals over the time one takes (this
    // machine's speed is not asserted anywhere).
    let started = std::time::Instant::now();
    let whole = k.path("whole");
    let r = hyok([
        "cp",
        obj.as_str(),
        whole.to_str().unwrap(),
        "-k",
        k.uri.as_str(),
        "-q",
    ]);
    assert!(
        r.success() && std::fs::read(&whole).unwrap() == plain,
        "{}",
        r.describe()
    );
    let span = started.elapsed().as_millis().max(10) as u64;
    // Runs until 20 were interrupted (a run that finished first is checked too: its file
    // must be complete).
    let (mut interrupted, mut runs) = (0, 0);
    while interrupted < 20 && runs < 60 {
        let run = runs;
        runs += 1;
        let (sig, signo) = SIGNALS[run % 3];
        let dir = workdir(&k, &format!("cp-{run}"));
        let out = dir.join("obj");
        let mut child = spawn(
            &[
                "cp",
                obj.as_str(),
                out.to_str().unwrap(),
                "-k",
                k.uri.as_str(),
                "-q",
            ],
            Stdio::null(),
        );
        std::thread::sleep(delay(run, span / 2));
        let ended = interrupt(&mut child, sig);
        let complete = || std::fs::read(&out).is_ok_and(|b| b == plain);
        let label = format!("cp run {run}");
        if check_interrupted(&label, (ended, signo), &dir, &[], ("obj", &complete)) {
            interrupted += 1;
        }
        assert_eq!(dir_entries(&store), ["obj"], "cp run {run}: store changed");
    }
    eprintln!("cp download: {interrupted} of {runs} runs interrupted, the rest finished first");
    assert_eq!(
        interrupted, 20,
        "fewer than 20 of {runs} downloads were interrupted"
    );
}

/// `mkfifo`/`mknod` through the system tools (no unsafe code in tests either).
fn make_node(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn force_onto_a_fifo_writes_into_it_and_keeps_the_fifo() {
    let k = Keyed::new();
    let plain = pseudo_random(5 << 20, 5);
    let msg = k.encrypt(&plain, &[]);
    let fifo = k.path("fifo");
    assert!(make_node(&["mkfifo", fifo.to_str().unwrap()]), "mkfifo");
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            std::fs::File::open(&fifo)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            got
        })
    };
    let r = hyok_stdin(
        [
            "decrypt",
            "-k",
            &k.uri,
            "-o",
            fifo.to_str().unwrap(),
            "--force",
        ],
        &msg,
    );
    assert!(r.success(), "decrypt into a FIFO: {}", r.describe());
    assert!(
        reader.join().unwrap() == plain,
        "the FIFO's reader got other bytes"
    );
    let meta = std::fs::symlink_metadata(&fifo).unwrap();
    assert!(meta.file_type().is_fifo(), "the FIFO was replaced");
    assert_eq!(dir_entries(k.dir.path()), ["fifo", "k.key"]);
}

#[test]
fn force_onto_a_character_device_writes_into_it_and_keeps_the_device() {
    let k = Keyed::new();
    let dev = k.path("null");
    // The same device as /dev/null (1, 3); making one needs root (CAP_MKNOD).
    if !make_node(&["mknod", dev.to_str().unwrap(), "c", "1", "3"]) {
        eprintln!("SKIPPED: hardening::force_onto_a_character_device_writes_into_it_and_keeps_the_device: mknod needs root (CAP_MKNOD)");
        return;
    }
    let before = std::fs::symlink_metadata(&dev).unwrap();
    let plain = pseudo_random(1 << 20, 6);
    let msg = k.encrypt(&plain, &[]);
    let r = hyok_stdin(
        [
            "decrypt",
            "-k",
            &k.uri,
            "-o",
            dev.to_str().unwrap(),
            "--force",
        ],
        &msg,
    );
    assert!(r.success(), "decrypt onto a device: {}", r.describe());
    let r = hyok_stdin(
        [
            "encrypt",
            "-k",
            &k.uri,
            "-o",
            dev.to_str().unwrap(),
            "--force",
        ],
        &plain,
    );
    assert!(r.success(), "encrypt onto a device: {}", r.describe());
    let after = std::fs::symlink_metadata(&dev).unwrap();
    assert!(
        after.file_type().is_char_device(),
        "the device was replaced"
    );
    assert_eq!((after.rdev(), after.ino()), (before.rdev(), before.ino()));
    assert_eq!(dir_entries(k.dir.path()), ["k.key", "null"]);
}

/// Flip the last byte of a message (the last signature byte of a signed one).
fn flip_last(msg: &[u8]) -> Vec<u8> {
    let mut bad = msg.to_vec();
    *bad.last_mut().unwrap() ^= 1;
    bad
}

#[test]
fn signed_message_with_a_bad_signature_releases_nothing_to_stdout() {
    let k = Keyed::new();
    let plain = pseudo_random(12 << 20, 7);
    let msg = k.encrypt(&plain, &["--suite", "committed-signed"]);
    let bad = flip_last(&msg);

    let r = hyok_stdin(["decrypt", "-k", &k.uri], &bad);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert_eq!(r.stdout.len(), 0, "plaintext released before the signature");
    check_error_stderr(&r.stderr).unwrap();

    // The intact message comes out whole, and the flag that says the danger streams.
    let r = hyok_stdin(["decrypt", "-k", &k.uri], &msg);
    assert!(r.success() && r.stdout == plain, "{}", r.describe());
    let r = hyok_stdin(["decrypt", "-k", &k.uri, "--unverified-stream"], &bad);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert!(
        !r.stdout.is_empty(),
        "--unverified-stream held the plaintext back"
    );

    // Bigger than the spool limit: refused, nothing written, exit 2 with a hint.
    let r = hyok_stdin(["decrypt", "-k", &k.uri, "--spool-limit", "1MiB"], &msg);
    assert_eq!(r.code, Some(2), "{}", r.describe());
    assert_eq!(r.stdout.len(), 0);
    assert!(r.stderr.contains("--spool-limit"), "{}", r.stderr);
    check_error_stderr(&r.stderr).unwrap();

    // Unsigned messages still stream: their verified frames before a failure come out.
    let unsigned = k.encrypt(&plain, &[]);
    let r = hyok_stdin(["decrypt", "-k", &k.uri], &flip_last(&unsigned));
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert!(
        plain.starts_with(&r.stdout),
        "released bytes are not a prefix"
    );
}

#[test]
fn cat_of_a_signed_object_with_a_bad_signature_releases_nothing() {
    let k = Keyed::new();
    let store = k.path("store");
    std::fs::create_dir_all(&store).unwrap();
    let plain = pseudo_random(12 << 20, 8);
    let src = k.path("src");
    std::fs::write(&src, &plain).unwrap();
    let obj = format!("file://{}/obj", store.display());
    let r = hyok([
        "cp",
        src.to_str().unwrap(),
        obj.as_str(),
        "-k",
        k.uri.as_str(),
        "-q",
        "--suite",
        "committed-signed",
    ]);
    assert!(r.success(), "upload: {}", r.describe());
    let r = hyok(["cat", obj.as_str(), "-k", k.uri.as_str()]);
    assert!(r.success() && r.stdout == plain, "{}", r.describe());
    let stored = store.join("obj");
    let bad = flip_last(&std::fs::read(&stored).unwrap());
    std::fs::write(&stored, bad).unwrap();
    let (o, u) = (obj.as_str(), k.uri.as_str());
    for args in [vec!["cat", o, "-k", u], vec!["cp", o, "-", "-k", u]] {
        let r = hyok(&args);
        assert_eq!(r.code, Some(1), "{args:?}: {}", r.describe());
        assert_eq!(r.stdout.len(), 0, "{args:?}: plaintext released");
    }
}

/// Offset of the frame length field in a v2 message (header ends with frame length (4),
/// commitment (32), tag (16)).
fn frame_length_at(msg: &[u8]) -> usize {
    let mut r = msg;
    let h = hyok_core::ParsedHeader::read(
        &mut r,
        hyok_core::HeaderLimits {
            max_edks: 64,
            max_frame_length: hyok_core::MAX_WRITE_FRAME_LEN,
        },
    )
    .unwrap();
    h.wire_len() - 16 - 32 - 4
}

fn expect_usage(r: &Run, needle: &str) {
    assert_eq!(r.code, Some(2), "{}", r.describe());
    check_error_stderr(&r.stderr).unwrap();
    assert!(r.stderr.contains(needle), "{needle:?} not in {}", r.stderr);
}

#[test]
fn frame_lengths_beyond_the_limits_are_refused_with_exit_2() {
    let k = Keyed::new();
    let plain = pseudo_random(100_000, 9);
    let msg = k.encrypt(&plain, &[]);
    let at = frame_length_at(&msg);
    for len in [1u32 << 31, u32::MAX] {
        let mut bad = msg.clone();
        bad[at..at + 4].copy_from_slice(&len.to_be_bytes());
        let r = hyok_stdin(["decrypt", "-k", &k.uri], &bad);
        expect_usage(&r, &format!("frame length {len} exceeds"));
        assert!(r.stdout.is_empty());
    }
    // A real message with 32 MiB frames: above the default, readable when allowed.
    let big = k.encrypt(&plain, &["--frame-length", "33554432"]);
    let r = hyok_stdin(["decrypt", "-k", &k.uri], &big);
    expect_usage(&r, "maximum of 16777216");
    let r = hyok_stdin(
        ["decrypt", "-k", &k.uri, "--max-frame-length", "33554432"],
        &big,
    );
    assert!(r.success() && r.stdout == plain, "{}", r.describe());
}

/// Skip `test` where `/usr/bin/time` is missing (never under `HYOK_REQUIRE_SERVICES=1`).
fn skip_without_time(test: &str) {
    let why = "/usr/bin/time is not installed (apt-get install time; scripts/test.sh does)";
    assert!(
        std::env::var("HYOK_REQUIRE_SERVICES").as_deref() != Ok("1"),
        "HYOK_REQUIRE_SERVICES=1: {why}"
    );
    eprintln!("SKIPPED: hardening::{test}: {why}");
}

/// Peak RSS (KiB) of `hyok args` reading `input` from a pipe, by `/usr/bin/time -v`.
fn peak_rss_kib(args: &[&str], input: &[u8]) -> Option<(u64, Run)> {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        return None;
    }
    let mut full = vec!["-v", common::bin().to_str().unwrap()];
    full.extend_from_slice(args);
    let r = common::run_program(time, &full, Some(input));
    let kib = r
        .stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in /usr/bin/time -v output: {}", r.stderr));
    Some((kib, r))
}

#[test]
fn largest_accepted_frame_length_from_a_pipe_stays_under_64_mib() {
    let k = Keyed::new();
    let max = hyok_core::DEFAULT_MAX_READ_FRAME_LEN;
    let plain = pseudo_random(4 * max as usize + 12345, 11);
    let msg = k.encrypt(&plain, &["--frame-length", &max.to_string()]);
    // The valid message, and a hostile one: a valid header, then frames whose ciphertext
    // is wrong (each is read whole before its tag can fail).
    let body = frame_length_at(&msg) + 4 + 32 + 16;
    let mut hostile = msg.clone();
    for i in 0..4 {
        hostile[body + 4 + 12 + 1000 + i * (max as usize + 32)] ^= 1;
    }
    // `/dev/null` streams (through the writer thread); a regular file is written by the
    // decryptor itself from its three batch buffers.
    let file = k.path("out.bin");
    let file = file.to_str().expect("UTF-8 path");
    let runs = [
        ("valid", &msg, true, "/dev/null"),
        ("hostile", &hostile, false, "/dev/null"),
        ("valid", &msg, true, file),
        ("hostile", &hostile, false, file),
    ];
    for (what, input, ok, out) in runs {
        let args = ["decrypt", "-k", &k.uri, "-o", out, "--force"];
        let Some((kib, r)) = peak_rss_kib(&args, input) else {
            return skip_without_time(
                "largest_accepted_frame_length_from_a_pipe_stays_under_64_mib",
            );
        };
        assert_eq!(
            r.code,
            Some(if ok { 0 } else { 1 }),
            "{what}: {}",
            r.describe()
        );
        eprintln!("{what} message, {max}-byte frames, -o {out}: peak RSS {kib} KiB");
        assert!(
            kib <= 64 * 1024,
            "{what} -o {out}: peak RSS {kib} KiB > 64 MiB"
        );
    }
}

/// The shortest frames the format allows: a writer may make a message of 1-byte frames,
/// and a batch of frames costs their fields, tags and records besides the plaintext. The
/// frames in a batch are capped, so memory stays bounded (it was 0.5-1.1 GB for 16 MiB).
#[test]
fn one_byte_frames_stay_under_64_mib() {
    let k = Keyed::new();
    let plain = pseudo_random(3 << 20, 12);
    let enc_args = ["encrypt", "-k", &k.uri, "--frame-length", "1"];
    let Some((kib, r)) = peak_rss_kib(&enc_args, &plain) else {
        return skip_without_time("one_byte_frames_stay_under_64_mib");
    };
    assert_eq!(r.code, Some(0), "{}", r.describe());
    eprintln!("encrypt, 1-byte frames, to stdout: peak RSS {kib} KiB");
    assert!(kib <= 64 * 1024, "encrypt: peak RSS {kib} KiB > 64 MiB");
    let msg = r.stdout.clone();
    // Header, 3 Mi − 1 regular frames of 33 bytes (sequence number, IV, 1 byte, tag), and
    // a full final frame of 41 (marker, sequence number, IV, length, 1 byte, tag).
    let header = frame_length_at(&msg) + 4 + 32 + 16;
    assert_eq!(msg.len(), header + ((3 << 20) - 1) * 33 + 41);
    let file = k.path("out.bin");
    let file = file.to_str().expect("UTF-8 path");
    for out in ["/dev/null", file] {
        let args = ["decrypt", "-k", &k.uri, "-o", out, "--force"];
        let (kib, r) = peak_rss_kib(&args, &msg).expect("/usr/bin/time ran above");
        assert_eq!(r.code, Some(0), "-o {out}: {}", r.describe());
        eprintln!("decrypt, 1-byte frames, -o {out}: peak RSS {kib} KiB");
        assert!(
            kib <= 64 * 1024,
            "decrypt -o {out}: peak RSS {kib} KiB > 64 MiB"
        );
    }
    assert!(std::fs::read(file).unwrap() == plain);
}

#[test]
fn threads_beyond_the_cap_are_a_usage_error() {
    let k = Keyed::new();
    for n in ["4294967295", "100000"] {
        let r = hyok_stdin(["encrypt", "-k", &k.uri, "--threads", n], b"x");
        expect_usage(&r, "--threads");
        let r = hyok_stdin(["decrypt", "-k", &k.uri, "--threads", n], b"x");
        expect_usage(&r, "--threads");
    }
}

#[test]
fn devices_as_key_or_config_files_are_refused_at_once() {
    let k = Keyed::new();
    for uri in [
        "raw-aes:hyok/k?file=/dev/zero",
        "raw-rsa:hyok/k?private=/dev/zero",
        "raw-rsa:hyok/k?public=/dev/zero",
    ] {
        let r = hyok_stdin(["encrypt", "-k", uri], b"x");
        expect_usage(&r, "/dev/zero is a device");
    }
    let r = hyok_stdin(["--config", "/dev/zero", "encrypt", "-k", &k.uri], b"x");
    expect_usage(&r, "/dev/zero");
    let r = hyok(["--config", "/dev/zero", "ls", "file:///nonexistent/"]);
    expect_usage(&r, "/dev/zero");
}

#[test]
fn a_key_file_others_can_read_is_used_with_a_warning() {
    let k = Keyed::new();
    let key = k.path("k.key");
    // The test helpers set HYOK_ALLOW_SHARED_SECRET_FILES=1; this test runs without it.
    let run = |allow: bool| {
        let mut cmd = Command::new(common::bin());
        cmd.args(["encrypt", "-k", &k.uri])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        hermetic(&mut cmd);
        if !allow {
            cmd.env_remove("HYOK_ALLOW_SHARED_SECRET_FILES");
        }
        let out = cmd.output().unwrap();
        Run {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let r = run(false);
    assert!(r.success() && r.stderr.is_empty(), "{}", r.describe());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let quiet = run(true);
    assert!(
        quiet.success() && quiet.stderr.is_empty(),
        "{}",
        quiet.describe()
    );
    let r = run(false);
    assert!(r.success(), "{}", r.describe());
    assert!(
        r.stderr.starts_with("hyok: warning: key file")
            && r.stderr.contains("mode 0644")
            && r.stderr.contains("chmod 600")
            && r.stderr.lines().count() == 1,
        "{}",
        r.stderr
    );
}

#[test]
fn dev_zero_as_pin_file_is_refused_at_once() {
    let (Ok(module), Ok(token)) = (
        std::env::var("HYOK_PKCS11_MODULE"),
        std::env::var("HYOK_TEST_PKCS11_TOKEN"),
    ) else {
        let why = "HYOK_PKCS11_MODULE/HYOK_TEST_PKCS11_TOKEN not set (eval \"$(scripts/services/softhsm.sh)\")";
        assert!(
            std::env::var("HYOK_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "HYOK_REQUIRE_SERVICES=1: {why}"
        );
        eprintln!("SKIPPED: hardening::dev_zero_as_pin_file_is_refused_at_once: {why}");
        return;
    };
    let uri = format!("pkcs11:token={token};object=any?pin-source=file:/dev/zero");
    let mut cmd = Command::new(common::bin());
    cmd.args(["encrypt", "-k", &uri])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    hermetic(&mut cmd);
    cmd.env("HYOK_PKCS11_MODULE", module)
        .env_remove("HYOK_PKCS11_PIN");
    let out = cmd.output().unwrap();
    let r = Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    expect_usage(&r, "PIN file /dev/zero is a device");
}
