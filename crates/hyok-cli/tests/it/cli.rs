//! Behaviour of the `hyok` command line: round trips, tampering, truncation, wrong keys and
//! context, overwrite rules, `key new` and `inspect`.
//!
//! Every failing decrypt must exit 1, print exactly one `hyok: error:` line (optionally one
//! `hint:` line) and leave no output file, not even a temporary one.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use crate::common::{
    self, check_error_stderr, check_failed, dir_entries, hyok, hyok_stdin, par_map, pseudo_random,
    raw_aes_uri, raw_rsa_uri, Run,
};
use crate::format::{self, Layout};

const CONTEXT: [(&str, &str); 2] = [("tenant", "acme-7"), ("région", "Zürich-東京")];
const RSA_PADDING: &str = "oaep-sha256";

/// Wrapping keys for these tests: the public test keys of `testdata/esdk/keys.json` (so the
/// tests do not depend on `hyok key new`, which has tests of its own).
struct Keys {
    _dir: tempfile::TempDir,
    aes_bytes: Vec<u8>,
    rsa_private_pem: String,
    /// raw-aes, namespace `hyok-test`, name `aes-key`.
    aes: String,
    /// Same namespace and name, other key bytes.
    aes_other_bytes: String,
    /// Right key bytes, other name.
    aes_other_name: String,
    /// raw-rsa, namespace `hyok-escrow`, name `rsa-key`: public half only / private only.
    rsa_public: String,
    rsa_private: String,
    /// Private key, but the wrong OAEP hash.
    rsa_private_sha1: String,
}

fn keys() -> Keys {
    let doc: Value =
        serde_json::from_slice(&fs::read(common::esdk_testdata().join("keys.json")).unwrap())
            .unwrap();
    let material = |name: &str| {
        doc["keys"][name]["material"]
            .as_str()
            .unwrap_or_else(|| panic!("keys.json: no {name}"))
            .to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let aes_bytes = base64::engine::general_purpose::STANDARD
        .decode(material("aes-256"))
        .unwrap();
    let aes_file = dir.path().join("aes.key");
    fs::write(&aes_file, &aes_bytes).unwrap();
    let other_file = dir.path().join("aes-other.key");
    fs::write(&other_file, pseudo_random(32, 4242)).unwrap();
    let rsa_private_pem = material("rsa-4096-private");
    let private = dir.path().join("rsa.pem");
    let public = dir.path().join("rsa.pub.pem");
    fs::write(&private, &rsa_private_pem).unwrap();
    fs::write(&public, material("rsa-4096-public")).unwrap();
    Keys {
        aes: raw_aes_uri("hyok-test", "aes-key", &aes_file),
        aes_other_bytes: raw_aes_uri("hyok-test", "aes-key", &other_file),
        aes_other_name: raw_aes_uri("hyok-test", "aes-key-2", &aes_file),
        rsa_public: raw_rsa_uri("hyok-escrow", "rsa-key", Some(&public), None, RSA_PADDING),
        rsa_private: raw_rsa_uri("hyok-escrow", "rsa-key", None, Some(&private), RSA_PADDING),
        rsa_private_sha1: raw_rsa_uri("hyok-escrow", "rsa-key", None, Some(&private), "oaep-sha1"),
        aes_bytes,
        rsa_private_pem,
        _dir: dir,
    }
}

fn context_args() -> Vec<String> {
    CONTEXT
        .iter()
        .flat_map(|(k, v)| ["-c".to_string(), format!("{k}={v}")])
        .collect()
}

/// `hyok encrypt` of `plain` with the given keys and flags; panics if it fails.
fn encrypt(plain: &[u8], keys: &[&str], extra: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("plain");
    let msg = dir.path().join("msg");
    fs::write(&input, plain).unwrap();
    let mut args: Vec<String> = vec![
        "encrypt".into(),
        input.display().to_string(),
        "-o".into(),
        msg.display().to_string(),
    ];
    for k in keys {
        args.extend(["--key".into(), (*k).to_string()]);
    }
    args.extend(extra.iter().map(|s| (*s).to_string()));
    let run = hyok(&args);
    assert!(run.success(), "hyok {}: {}", args.join(" "), run.describe());
    fs::read(&msg).expect("encrypt wrote no output")
}

/// What one decrypt did.
struct Decrypted {
    run: Run,
    out: PathBuf,
    output: Option<Vec<u8>>,
    /// Everything in the output folder afterwards.
    left: Vec<String>,
}

impl Decrypted {
    /// The checks for a decrypt that must fail.
    fn must_fail(&self) -> Result<(), String> {
        check_failed(&self.run, Some(&self.out))?;
        if self.left.is_empty() {
            Ok(())
        } else {
            Err(format!("files left in the output folder: {:?}", self.left))
        }
    }

    fn must_leave_nothing(&self) -> Result<(), String> {
        if self.out.exists() || !self.left.is_empty() {
            return Err(format!("files left in the output folder: {:?}", self.left));
        }
        Ok(())
    }

    fn must_give(&self, plain: &[u8]) -> Result<(), String> {
        match &self.output {
            _ if !self.run.success() => Err(format!("decrypt failed: {}", self.run.describe())),
            None => Err("exit 0 but no output file".into()),
            Some(got) if got != plain => Err(common::describe_mismatch(got, plain)),
            Some(_) => Ok(()),
        }
    }
}

/// `hyok decrypt MSG -o OUT` with the given keys and extra flags, OUT in an empty folder.
fn decrypt(msg: &[u8], keys: &[&str], extra: &[String]) -> Decrypted {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("msg");
    fs::write(&input, msg).unwrap();
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("plain");
    let mut args: Vec<String> = vec![
        "decrypt".into(),
        input.display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    for k in keys {
        args.extend(["--key".into(), (*k).to_string()]);
    }
    args.extend(extra.iter().cloned());
    let run = hyok(&args);
    Decrypted {
        run,
        output: fs::read(&out).ok(),
        left: dir_entries(&out_dir),
        out,
    }
}

/// Checks what the writer put in the header and body layout.
fn check_layout(
    msg: &[u8],
    suite: u16,
    frame_length: Option<u32>,
    plain_len: usize,
) -> Result<Layout, String> {
    let l = format::parse(msg)?;
    let mut problems = Vec::new();
    if l.version != 2 {
        problems.push(format!("message format version {}", l.version));
    }
    if l.suite != suite {
        problems.push(format!("suite {:04x}, expected {suite:04x}", l.suite));
    }
    if l.content_type != 2 {
        problems.push(format!(
            "content type {} (must be framed, 2)",
            l.content_type
        ));
    }
    if let Some(f) = frame_length {
        if l.frame_length != f {
            problems.push(format!("frame length {}, expected {f}", l.frame_length));
        }
    }
    let seqs: Vec<u32> = l.frames.iter().map(|f| f.sequence).collect();
    let expected: Vec<u32> = (1..=l.frames.len() as u32).collect();
    if seqs != expected {
        problems.push(format!("frame sequence numbers {seqs:?}"));
    }
    let finals: Vec<bool> = l.frames.iter().map(|f| f.is_final).collect();
    if finals.iter().rposition(|&f| f) != Some(finals.len() - 1)
        || finals.iter().filter(|&&f| f).count() != 1
    {
        problems.push(format!("final-frame flags {finals:?}: exactly one, last"));
    }
    let total: u64 = l.frames.iter().map(|f| f.content_len).sum();
    if total != plain_len as u64 {
        problems.push(format!(
            "frames hold {total} bytes, plaintext has {plain_len}"
        ));
    }
    if problems.is_empty() {
        Ok(l)
    } else {
        Err(problems.join("; "))
    }
}

#[test]
fn round_trips_across_sizes_and_suites() {
    let k = keys();
    let mut jobs = Vec::new();
    for suite in [None, Some("committed"), Some("committed-signed")] {
        for size in [0usize, 1, 127, 128, 129, 300, 5000] {
            jobs.push((suite, size));
        }
    }
    let fails: Vec<String> = par_map(&jobs, |&(suite, size)| {
        let tag = format!("suite {suite:?}, {size} bytes");
        let plain = pseudo_random(size, size as u64);
        let mut extra = vec!["--frame-length", "128"];
        if let Some(s) = suite {
            extra.extend(["--suite", s]);
        }
        let msg = encrypt(&plain, &[&k.aes], &extra);
        let id = if suite == Some("committed-signed") {
            0x0578
        } else {
            0x0478
        };
        let mut fails = Vec::new();
        if let Err(e) = check_layout(&msg, id, Some(128), size) {
            fails.push(format!("{tag}: layout: {e}"));
        }
        if let Err(e) = decrypt(&msg, &[&k.aes], &[]).must_give(&plain) {
            fails.push(format!("{tag}: {e}"));
        }
        fails
    })
    .into_iter()
    .flatten()
    .collect();
    common::report("round trips", jobs.len(), &fails);
}

/// IN and OUT default to stdin and stdout.
#[test]
fn stdin_to_stdout() {
    let k = keys();
    let plain = pseudo_random(10_000, 1);
    let run = hyok_stdin(
        ["encrypt", "--key", &k.aes, "--suite", "committed-signed"],
        &plain,
    );
    assert!(run.success(), "encrypt from stdin: {}", run.describe());
    check_layout(&run.stdout, 0x0578, None, plain.len()).expect("layout of stdout message");
    let back = hyok_stdin(["decrypt", "--key", &k.aes], &run.stdout);
    assert!(back.success(), "decrypt from stdin: {}", back.describe());
    assert!(
        back.stdout == plain,
        "{}",
        common::describe_mismatch(&back.stdout, &plain)
    );

    let cut = &run.stdout[..run.stdout.len() - 10];
    let bad = hyok_stdin(["decrypt", "--key", &k.aes], cut);
    check_failed(&bad, None).expect("truncated message on stdin");
    // Unauthenticated plaintext must not reach stdout: the 10 000-byte plaintext fills
    // several default frames, so at most the verified leading frames may appear.
    assert!(
        bad.stdout.len() < plain.len() && plain.starts_with(&bad.stdout),
        "a truncated signed message released {} bytes that are not a verified prefix",
        bad.stdout.len()
    );
}

/// A signed and an unsigned message with two EDKs (AES generator, RSA escrow), a context and
/// four 128-byte frames.
fn tamper_subjects(k: &Keys) -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let plain = pseudo_random(3 * 128 + 50, 77);
    let mut subjects = Vec::new();
    for (name, suite) in [("0478", "committed"), ("0578", "committed-signed")] {
        let mut extra = vec!["--suite", suite, "--frame-length", "128"];
        let ctx = context_args();
        extra.extend(ctx.iter().map(String::as_str));
        let msg = encrypt(&plain, &[&k.aes, &k.rsa_public], &extra);
        subjects.push((name, msg, plain.clone()));
    }
    subjects
}

#[test]
fn flipped_bytes_fail_everywhere() {
    let k = keys();
    let mut jobs = Vec::new();
    for (name, msg, plain) in tamper_subjects(&k) {
        // The untampered message decrypts, or the rest proves nothing.
        decrypt(&msg, &[&k.aes], &[])
            .must_give(&plain)
            .unwrap_or_else(|e| panic!("untampered {name} message: {e}"));
        let layout = format::parse(&msg).unwrap_or_else(|e| panic!("{name} layout: {e}"));
        let firsts: Vec<usize> = layout.regions.iter().map(|r| r.range.start).collect();
        let frame_length_end = frame_length_end(&layout);
        for p in format::sample_positions(&layout) {
            let reads_frame_length = p < frame_length_end;
            jobs.push((
                name,
                msg.clone(),
                layout.label(p),
                p,
                0x01u8,
                reads_frame_length,
            ));
            if firsts.contains(&p) {
                jobs.push((
                    name,
                    msg.clone(),
                    layout.label(p),
                    p,
                    0xff,
                    reads_frame_length,
                ));
            }
        }
    }
    let fails: Vec<String> = par_map(&jobs, |(name, msg, label, p, mask, reads_frame_length)| {
        let mut bad = msg.clone();
        bad[*p] ^= mask;
        let d = decrypt(&bad, &[&k.aes], &[]);
        // A frame length above --max-frame-length is refused as a limit (exit 2) before
        // any key use; a smaller one fails like any other change (exit 1). The frame
        // length the reader sees can come from a flip in the field itself or from a flip in
        // an earlier length that moves where the field is read (a misaligned header).
        let limit = d.run.code == Some(2) && d.run.stderr.contains("frame length");
        let res = if *reads_frame_length && limit {
            check_error_stderr(&d.run.stderr).and_then(|()| d.must_leave_nothing())
        } else {
            d.must_fail()
        };
        res.err()
            .map(|e| format!("suite {name}, {label} ^ {mask:#04x}: {e}"))
    })
    .into_iter()
    .flatten()
    .collect();
    common::report("flipped bytes", jobs.len(), &fails);
}

/// The first byte after the header's frame length field: a flip before it can change the
/// frame length the reader sees.
fn frame_length_end(layout: &Layout) -> usize {
    layout
        .regions
        .iter()
        .find(|r| r.name == "header.frame_length")
        .map(|r| r.range.end)
        .expect("the layout has a frame length")
}

/// A flipped EDK length makes the reader take its frame length from the wrong bytes. Built
/// here so that those bytes say 32 MiB: the header is refused as a limit (exit 2, one line,
/// no output) before any key use, the case `flipped_bytes_fail_everywhere` meets by chance.
#[test]
fn a_misaligned_header_is_refused_by_the_frame_length_limit() {
    let k = keys();
    let (_, msg, _) = tamper_subjects(&k).remove(0);
    let layout = format::parse(&msg).expect("layout");
    let region = |name: &str| {
        layout
            .regions
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .range
            .clone()
    };
    let last = layout.edks.len() - 1;
    let len_at = region(&format!("edk[{last}].ciphertext_length"));
    let ciphertext = region(&format!("edk[{last}].ciphertext"));
    assert_eq!(msg[region("header.content_type")], [2], "framed message");
    assert_eq!(msg[region("header.frame_length")], 128u32.to_be_bytes());
    let mut bad = msg.clone();
    // One byte shorter: the reader takes the last ciphertext byte as the content type
    // (made 2, framed) and content type ‖ frame length[..3] = 02 00 00 00 as the frame length.
    let n = u16::from_be_bytes([msg[len_at.start], msg[len_at.start + 1]]) - 1;
    bad[len_at].copy_from_slice(&n.to_be_bytes());
    bad[ciphertext.end - 1] = 2;
    let d = decrypt(&bad, &[&k.aes], &[]);
    assert_eq!(d.run.code, Some(2), "{}", d.run.describe());
    assert!(
        d.run.stderr.contains("frame length 33554432 exceeds"),
        "{}",
        d.run.stderr
    );
    check_error_stderr(&d.run.stderr).unwrap();
    d.must_leave_nothing().unwrap();
}

#[test]
fn truncated_messages_fail() {
    let k = keys();
    let mut jobs = Vec::new();
    for (name, msg, _) in tamper_subjects(&k) {
        let layout = format::parse(&msg).unwrap_or_else(|e| panic!("{name} layout: {e}"));
        for cut in format::sample_cuts(&layout, msg.len()) {
            let label = if cut == 0 {
                "empty input".to_string()
            } else {
                format!("cut inside/after {}", layout.label(cut - 1))
            };
            jobs.push((name, msg[..cut].to_vec(), label));
        }
    }
    let fails: Vec<String> = par_map(&jobs, |(name, msg, label)| {
        decrypt(msg, &[&k.aes], &[])
            .must_fail()
            .err()
            .map(|e| format!("suite {name}, {} bytes ({label}): {e}", msg.len()))
    })
    .into_iter()
    .flatten()
    .collect();
    common::report("truncated messages", jobs.len(), &fails);
}

/// Bytes after a complete message are an error (the spec wants them rejected).
#[test]
fn trailing_bytes_fail() {
    let k = keys();
    let mut fails = Vec::new();
    let mut n = 0;
    for (name, msg, _) in tamper_subjects(&k) {
        for extra in [&[0u8][..], b"trailing garbage", &msg[..100]] {
            n += 1;
            let mut long = msg.clone();
            long.extend_from_slice(extra);
            if let Err(e) = decrypt(&long, &[&k.aes], &[]).must_fail() {
                fails.push(format!(
                    "suite {name} + {} trailing bytes: {e}",
                    extra.len()
                ));
            }
        }
    }
    common::report("trailing bytes", n, &fails);
}

#[test]
fn wrong_keys_fail() {
    let k = keys();
    let plain = pseudo_random(1000, 5);
    let mut fails = Vec::new();
    let cases: [(&str, &str, &[&str]); 2] = [
        ("AES only", "committed", &[&k.aes]),
        (
            "AES + RSA escrow",
            "committed-signed",
            &[&k.aes, &k.rsa_public],
        ),
    ];
    let mut n = 0;
    for (what, suite, enc_keys) in cases {
        let msg = encrypt(&plain, enc_keys, &["--suite", suite]);
        let mut attempts: Vec<(&str, Vec<&str>)> = vec![
            (
                "AES key with the right name, other bytes",
                vec![&k.aes_other_bytes],
            ),
            (
                "right AES bytes under another key name",
                vec![&k.aes_other_name],
            ),
        ];
        if enc_keys.len() > 1 {
            attempts.push((
                "RSA private key, wrong OAEP hash",
                vec![&k.rsa_private_sha1],
            ));
            attempts.push(("RSA public key only", vec![&k.rsa_public]));
            attempts.push((
                "two wrong keys",
                vec![&k.aes_other_bytes, &k.rsa_private_sha1],
            ));
        }
        for (label, dec_keys) in attempts {
            n += 1;
            if let Err(e) = decrypt(&msg, &dec_keys, &[]).must_fail() {
                fails.push(format!("{what}: {label}: {e}"));
            }
        }
        // And the right keys do work, each on its own.
        let mut right = vec![&k.aes];
        if enc_keys.len() > 1 {
            right.push(&k.rsa_private);
        }
        for key in right {
            n += 1;
            if let Err(e) = decrypt(&msg, &[key.as_str()], &[]).must_give(&plain) {
                fails.push(format!("{what}: right key {key}: {e}"));
            }
        }
        // A wrong key listed before the right one must not stop the right one from working.
        n += 1;
        if let Err(e) = decrypt(&msg, &[&k.aes_other_name, &k.aes], &[]).must_give(&plain) {
            fails.push(format!("{what}: non-matching key then the right key: {e}"));
        }
    }
    common::report("wrong keys", n, &fails);
}

#[test]
fn wrong_context_fails() {
    let k = keys();
    let plain = pseudo_random(700, 6);
    let mut fails = Vec::new();
    let mut n = 0;
    for suite in ["committed", "committed-signed"] {
        let mut extra = vec!["--suite", suite];
        let ctx = context_args();
        extra.extend(ctx.iter().map(String::as_str));
        let msg = encrypt(&plain, &[&k.aes], &extra);
        let bad: [(&str, Vec<String>); 4] = [
            (
                "stored key, other value",
                vec!["-c".into(), "tenant=acme-8".into()],
            ),
            (
                "non-ASCII value differs",
                vec!["-c".into(), "région=Zurich-東京".into()],
            ),
            (
                "key not stored (reproduced context)",
                vec!["-c".into(), "extra=1".into()],
            ),
            (
                "one right pair, one wrong",
                vec![
                    "-c".into(),
                    "tenant=acme-7".into(),
                    "-c".into(),
                    "région=".into(),
                ],
            ),
        ];
        for (label, args) in bad {
            n += 1;
            if let Err(e) = decrypt(&msg, &[&k.aes], &args).must_fail() {
                fails.push(format!("suite {suite}: {label}: {e}"));
            }
        }
        for (label, args) in [
            ("all stored pairs", context_args()),
            (
                "one stored pair",
                vec!["-c".into(), "région=Zürich-東京".into()],
            ),
        ] {
            n += 1;
            if let Err(e) = decrypt(&msg, &[&k.aes], &args).must_give(&plain) {
                fails.push(format!("suite {suite}: {label} must decrypt: {e}"));
            }
        }
    }
    // Context given at encrypt time but not stored is not possible from the CLI; a message
    // with none stored must refuse any -c pair (it becomes reproduced context).
    let msg = encrypt(&plain, &[&k.aes], &[]);
    n += 1;
    if let Err(e) = decrypt(&msg, &[&k.aes], &["-c".into(), "tenant=acme-7".into()]).must_fail() {
        fails.push(format!("message without context, -c given: {e}"));
    }
    common::report("wrong context", n, &fails);
}

/// `aws-crypto-` keys are reserved: encrypt must refuse them.
#[test]
fn reserved_context_key_is_refused() {
    let k = keys();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::write(&input, b"x").unwrap();
    let out = dir.path().join("out");
    let run = hyok([
        "encrypt".to_string(),
        input.display().to_string(),
        "-o".into(),
        out.display().to_string(),
        "--key".into(),
        k.aes.clone(),
        "-c".into(),
        "aws-crypto-public-key=AAAA".into(),
    ]);
    assert!(!run.success(), "encrypt accepted a reserved context key");
    check_error_stderr(&run.stderr).unwrap();
    assert!(!out.exists(), "output written despite the error");
}

#[test]
fn existing_output_needs_force() {
    let k = keys();
    let dir = tempfile::tempdir().unwrap();
    let plain_path = dir.path().join("plain");
    let msg_path = dir.path().join("msg");
    let plain = pseudo_random(2000, 8);
    fs::write(&plain_path, &plain).unwrap();
    let old = b"precious old content".to_vec();

    let enc = |force: bool| {
        let mut a = vec![
            "encrypt".to_string(),
            plain_path.display().to_string(),
            "-o".into(),
            msg_path.display().to_string(),
            "--key".into(),
            k.aes.clone(),
        ];
        if force {
            a.push("--force".into());
        }
        hyok(a)
    };
    fs::write(&msg_path, &old).unwrap();
    let run = enc(false);
    assert!(
        !run.success(),
        "encrypt overwrote an existing file without --force"
    );
    check_error_stderr(&run.stderr).unwrap();
    assert_eq!(
        fs::read(&msg_path).unwrap(),
        old,
        "encrypt changed the existing file"
    );
    let run = enc(true);
    assert!(run.success(), "encrypt --force: {}", run.describe());
    let msg = fs::read(&msg_path).unwrap();
    assert_ne!(msg, old);

    let out = dir.path().join("out");
    let dec = |force: bool, input: &Path| {
        let mut a = vec![
            "decrypt".to_string(),
            input.display().to_string(),
            "-o".into(),
            out.display().to_string(),
            "--key".into(),
            k.aes.clone(),
        ];
        if force {
            a.push("--force".into());
        }
        hyok(a)
    };
    fs::write(&out, &old).unwrap();
    let run = dec(false, &msg_path);
    assert!(
        !run.success(),
        "decrypt overwrote an existing file without --force"
    );
    check_error_stderr(&run.stderr).unwrap();
    assert_eq!(
        fs::read(&out).unwrap(),
        old,
        "decrypt changed the existing file"
    );

    // A failed decrypt with --force must leave the existing file as it was.
    let bad = dir.path().join("bad-msg");
    let mut tampered = msg.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    fs::write(&bad, &tampered).unwrap();
    let run = dec(true, &bad);
    assert_eq!(run.code, Some(1), "tampered message: {}", run.describe());
    check_error_stderr(&run.stderr).unwrap();
    assert_eq!(
        fs::read(&out).ok(),
        Some(old.clone()),
        "a failed decrypt --force destroyed or changed the existing output"
    );

    let run = dec(true, &msg_path);
    assert!(run.success(), "decrypt --force: {}", run.describe());
    assert!(
        fs::read(&out).unwrap() == plain,
        "decrypt --force wrote the wrong plaintext"
    );
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn key_new_aes_256() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k.key");
    let run = hyok(
        ["key", "new", "aes-256", "-o"]
            .iter()
            .map(|s| s.to_string())
            .chain([file.display().to_string()]),
    );
    assert!(run.success(), "key new aes-256: {}", run.describe());
    let first = fs::read(&file).unwrap();
    assert_eq!(first.len(), 32, "an AES-256 key file holds 32 raw bytes");
    assert_eq!(mode(&file), 0o600, "key file mode");

    let run = hyok(
        ["key", "new", "aes-256", "-o"]
            .iter()
            .map(|s| s.to_string())
            .chain([file.display().to_string()]),
    );
    assert!(!run.success(), "key new overwrote an existing key");
    check_error_stderr(&run.stderr).unwrap();
    assert_eq!(fs::read(&file).unwrap(), first, "existing key changed");

    let file2 = dir.path().join("k2.key");
    let run = hyok(
        ["key", "new", "aes-256", "-o"]
            .iter()
            .map(|s| s.to_string())
            .chain([file2.display().to_string()]),
    );
    assert!(run.success(), "second key new: {}", run.describe());
    assert_ne!(fs::read(&file2).unwrap(), first, "two new keys are equal");
    // Key material never goes to the terminal.
    for out in [&run.stdout_text(), &run.stderr] {
        let k2 = fs::read(&file2).unwrap();
        assert!(
            !out.to_lowercase().contains(&hex::encode(&k2)),
            "key printed as hex"
        );
        assert!(
            !out.contains(&base64::engine::general_purpose::STANDARD.encode(&k2)),
            "key printed as base64"
        );
    }

    // The new key works.
    let uri = raw_aes_uri("ns", "new-key", &file);
    let plain = pseudo_random(100, 3);
    let msg = encrypt(&plain, &[&uri], &[]);
    decrypt(&msg, &[&uri], &[]).must_give(&plain).unwrap();
}

#[test]
fn key_new_rsa_3072() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("escrow");
    let gen = || {
        hyok([
            "key".to_string(),
            "new".into(),
            "rsa-3072".into(),
            "-o".into(),
            base.display().to_string(),
        ])
    };
    let run = gen();
    assert!(run.success(), "key new rsa-3072: {}", run.describe());
    let private = dir.path().join("escrow.pem");
    let public = dir.path().join("escrow.pub.pem");
    let priv_text = fs::read_to_string(&private).expect("NAME.pem written");
    let pub_text = fs::read_to_string(&public).expect("NAME.pub.pem written");
    assert!(
        priv_text.contains("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8 private key PEM"
    );
    assert!(
        pub_text.contains("-----BEGIN PUBLIC KEY-----"),
        "SPKI public key PEM"
    );
    assert_eq!(mode(&private), 0o600, "private key file mode");
    let out = run.stdout_text() + &run.stderr;
    let body_line = priv_text.lines().nth(3).unwrap_or("-");
    assert!(!out.contains(body_line), "private key printed");

    let run = gen();
    assert!(!run.success(), "key new rsa-3072 overwrote an existing key");
    check_error_stderr(&run.stderr).unwrap();
    assert_eq!(
        fs::read_to_string(&private).unwrap(),
        priv_text,
        "existing key changed"
    );

    // The pair works: encrypt to the public half, decrypt with the private half.
    let enc = raw_rsa_uri("ns", "escrow", Some(&public), None, RSA_PADDING);
    let dec = raw_rsa_uri("ns", "escrow", None, Some(&private), RSA_PADDING);
    let plain = pseudo_random(100, 4);
    let msg = encrypt(&plain, &[&enc], &[]);
    let layout = format::parse(&msg).unwrap();
    assert_eq!(layout.edks.len(), 1);
    assert_eq!(
        layout.edks[0].provider_info, b"escrow",
        "RSA provider info is the key name"
    );
    decrypt(&msg, &[&dec], &[]).must_give(&plain).unwrap();
}

/// The key name in an EDK's provider info: all of it for RSA, the prefix before the
/// 20-byte tag-length/IV-length/IV trailer for Raw AES.
fn edk_key_name(provider_info: &[u8]) -> String {
    let n = provider_info.len();
    let aes = n >= 20 && provider_info[n - 20..n - 12] == [0, 0, 0, 0x80, 0, 0, 0, 12];
    let name = if aes {
        &provider_info[..n - 20]
    } else {
        provider_info
    };
    String::from_utf8_lossy(name).into_owned()
}

/// Checks `hyok inspect` output against the message layout; returns the problems.
fn check_inspect(msg: &[u8], secrets: &[String]) -> Vec<String> {
    let layout = format::parse(msg).expect("layout");
    let mut problems = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msg");
    fs::write(&path, msg).unwrap();
    let by_file = hyok([std::ffi::OsStr::new("inspect"), path.as_os_str()]);
    let by_stdin = hyok_stdin(["inspect"], msg);
    for (how, run) in [("file", &by_file), ("stdin", &by_stdin)] {
        if !run.success() {
            problems.push(format!("inspect ({how}): {}", run.describe()));
            continue;
        }
        let text = run.stdout_text();
        let lower = text.to_lowercase();
        let suite = format!("{:04x}", layout.suite);
        if !lower.contains(&suite) {
            problems.push(format!("inspect ({how}): suite {suite} not shown"));
        }
        let id_hex = hex::encode(&layout.message_id);
        let id_b64 = base64::engine::general_purpose::STANDARD.encode(&layout.message_id);
        if !lower.contains(&id_hex) && !text.contains(&id_b64) {
            problems.push(format!("inspect ({how}): message id {id_hex} not shown"));
        }
        for (key, _) in &layout.context {
            if !text.contains(key.as_str()) {
                problems.push(format!("inspect ({how}): context key {key:?} not shown"));
            }
        }
        for edk in &layout.edks {
            let provider = String::from_utf8_lossy(&edk.provider_id).into_owned();
            let name = edk_key_name(&edk.provider_info);
            if !text.contains(&provider) {
                problems.push(format!(
                    "inspect ({how}): EDK provider {provider:?} not shown"
                ));
            }
            if !text.contains(&name) {
                problems.push(format!("inspect ({how}): EDK key name {name:?} not shown"));
            }
        }
        let all = text.clone() + &run.stderr;
        for s in secrets {
            if all.to_lowercase().contains(&s.to_lowercase()) {
                problems.push(format!("inspect ({how}): prints key material"));
            }
        }
    }
    problems
}

#[test]
fn inspect_shows_header_but_no_secrets() {
    let k = keys();
    let secrets = vec![
        hex::encode(&k.aes_bytes),
        base64::engine::general_purpose::STANDARD.encode(&k.aes_bytes),
        k.rsa_private_pem.lines().nth(5).unwrap().to_string(),
    ];
    let mut extra = vec!["--suite", "committed-signed"];
    let ctx = context_args();
    extra.extend(ctx.iter().map(String::as_str));
    let msg = encrypt(b"inspect me", &[&k.aes, &k.rsa_public], &extra);
    let mut problems = check_inspect(&msg, &secrets);
    // Messages from the official SDKs too: three EDKs and a non-ASCII context (format 1),
    // and a committing signed one.
    for name in [
        "py-0178-multi3edk-decrypt-with-aes128",
        "py-0578-aes192-framed4096-odd-5000",
        "py-0478-aes192-framed4096-ecutf8",
    ] {
        let msg = fs::read(common::esdk_testdata().join("ciphertexts").join(name)).unwrap();
        problems.extend(
            check_inspect(&msg, &[])
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
    }
    // Garbage is an error, reported on one line.
    let run = hyok_stdin(["inspect"], b"this is not an ESDK message");
    if let Err(e) = check_failed(&run, None) {
        problems.push(format!("inspect of garbage: {e}"));
    }
    common::report("inspect", 5, &problems);
}

#[test]
fn usage_errors_exit_2() {
    let k = keys();
    for (what, args) in [
        ("unknown flag", vec!["decrypt", "--no-such-flag"]),
        ("unknown subcommand", vec!["frobnicate"]),
        ("encrypt without --key", vec!["encrypt"]),
        (
            "unknown suite",
            vec!["encrypt", "--key", &k.aes, "--suite", "fast"],
        ),
    ] {
        let run = hyok_stdin(&args, b"data");
        assert_eq!(run.code, Some(2), "{what}: {}", run.describe());
        assert!(run.stdout.is_empty(), "{what}: wrote to stdout");
    }
}

#[test]
fn fsync_flag_writes_the_same_files() {
    let k = keys();
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let plain = pseudo_random(300_000, 11);
    fs::write(p("plain"), &plain).unwrap();
    for (op, input, output) in [("encrypt", "plain", "msg"), ("decrypt", "msg", "out")] {
        let run = hyok([op, &p(input), "-o", &p(output), "--key", &k.aes, "--fsync"]);
        assert!(run.success(), "{op} --fsync: {}", run.describe());
    }
    assert!(fs::read(p("out")).unwrap() == plain, "wrong plaintext");
    assert_eq!(
        dir_entries(dir.path()),
        ["msg", "out", "plain"],
        "temporary files left"
    );
}
