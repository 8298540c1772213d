//! Messages crossing between `hyok` and the official Python ESDK, both ways.
//!
//! The peer is `tests/interop/esdk_peer.py`, run by the interpreter named in
//! `HYOK_ESDK_PYTHON` (a venv with `aws-encryption-sdk==4.0.7`). Without it each test prints a
//! `SKIPPED:` line and returns, unless `HYOK_REQUIRE_SERVICES=1`, where it fails instead.

use std::ffi::OsStr;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::common::{
    self, hyok, par_map, pseudo_random, raw_aes_uri, raw_rsa_uri, run_program, Run,
};
use crate::format;

/// Two pairs, one of them non-ASCII in both key and value.
const CONTEXT: [(&str, &str); 2] = [("tenant", "acme-7"), ("région", "Zürich-東京")];
const SIZES: [usize; 4] = [0, 1, 5000, 200 * 1024];
/// (hyok --suite, peer --suite, suite id)
const SUITES: [(&str, &str, u16); 2] = [
    ("committed", "committing", 0x0478),
    ("committed-signed", "committing-signed", 0x0578),
];
/// The suites both sides run: all of [`SUITES`], in the FIPS build too (the signed suite's
/// ECDSA runs in the module's streaming signature service, docs/CUSTODY.md §4).
fn suites() -> impl Iterator<Item = (&'static str, &'static str, u16)> {
    SUITES.into_iter()
}
const RSA_PADDING: &str = "oaep-sha256";

fn peer_script() -> PathBuf {
    common::workspace_root().join("tests/interop/esdk_peer.py")
}

/// The peer's interpreter, or None after a loud skip notice (panics instead when services
/// are required).
fn python(test: &str) -> Option<PathBuf> {
    let problem = match std::env::var_os("HYOK_ESDK_PYTHON").filter(|v| !v.is_empty()) {
        None => "HYOK_ESDK_PYTHON is not set".to_string(),
        Some(p) => {
            let p = PathBuf::from(p);
            let probe = run_program(
                &p,
                [
                    "-c",
                    "import aws_encryption_sdk; print(aws_encryption_sdk.__version__)",
                ],
                None,
            );
            if probe.success() {
                return Some(p);
            }
            format!(
                "{} cannot import aws_encryption_sdk ({})",
                p.display(),
                probe.describe()
            )
        }
    };
    let required = std::env::var("HYOK_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    if required {
        panic!("{test}: the Python ESDK peer is required (HYOK_REQUIRE_SERVICES=1): {problem}");
    }
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: interop::{test}: {problem}; set HYOK_ESDK_PYTHON to a python with \
         aws-encryption-sdk==4.0.7 to run it"
    );
    None
}

/// How the peer is told about a key.
#[derive(Clone)]
enum PeerKey {
    Aes(PathBuf),
    RsaPrivate(PathBuf),
    RsaPublic(PathBuf),
}

struct Peer {
    python: PathBuf,
}

impl Peer {
    /// Runs the peer: `encrypt` uses the key's encrypting half, `decrypt` its decrypting one.
    fn run(&self, op: &str, key: &Key, extra: &[String], input: &Path, output: &Path) -> Run {
        let peer_key = if op == "encrypt" {
            &key.peer_encrypt
        } else {
            &key.peer_decrypt
        };
        let (namespace, name) = (&key.namespace, &key.name);
        let mut args: Vec<String> = vec![peer_script().display().to_string(), op.into()];
        match peer_key {
            PeerKey::Aes(p) => args.extend(["--key-file".into(), p.display().to_string()]),
            PeerKey::RsaPrivate(p) => args.extend([
                "--rsa-private".into(),
                p.display().to_string(),
                "--rsa-padding".into(),
                RSA_PADDING.into(),
            ]),
            PeerKey::RsaPublic(p) => args.extend([
                "--rsa-public".into(),
                p.display().to_string(),
                "--rsa-padding".into(),
                RSA_PADDING.into(),
            ]),
        }
        args.extend([
            "--key-namespace".into(),
            namespace.clone(),
            "--key-name".into(),
            name.clone(),
        ]);
        args.extend(extra.iter().cloned());
        args.push(input.display().to_string());
        args.push(output.display().to_string());
        run_program(&self.python, &args, None)
    }
}

fn context_args(flag: &str) -> Vec<String> {
    CONTEXT
        .iter()
        .flat_map(|(k, v)| [flag.to_string(), format!("{k}={v}")])
        .collect()
}

/// One wrapping key as both sides name it.
#[derive(Clone)]
struct Key {
    label: &'static str,
    /// `--key` for `hyok encrypt`.
    hyok_encrypt: String,
    /// `--key` for `hyok decrypt`.
    hyok_decrypt: String,
    peer_encrypt: PeerKey,
    peer_decrypt: PeerKey,
    namespace: String,
    name: String,
}

/// Generates keys with `hyok key new` into `dir`.
fn aes_key(dir: &Path, namespace: &str, name: &str) -> Key {
    let file = dir.join(format!("aes-{}.key", common::pct(name)));
    let run = hyok([
        OsStr::new("key"),
        OsStr::new("new"),
        OsStr::new("aes-256"),
        OsStr::new("-o"),
        file.as_os_str(),
    ]);
    assert!(run.success(), "hyok key new aes-256: {}", run.describe());
    let uri = raw_aes_uri(namespace, name, &file);
    Key {
        label: "raw AES-256",
        hyok_encrypt: uri.clone(),
        hyok_decrypt: uri,
        peer_encrypt: PeerKey::Aes(file.clone()),
        peer_decrypt: PeerKey::Aes(file),
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn rsa_key(dir: &Path, namespace: &str, name: &str) -> Key {
    let base = dir.join("rsa");
    let run = hyok([
        "key".to_string(),
        "new".into(),
        "rsa-3072".into(),
        "-o".into(),
        base.display().to_string(),
    ]);
    assert!(run.success(), "hyok key new rsa-3072: {}", run.describe());
    let private = dir.join("rsa.pem");
    let public = dir.join("rsa.pub.pem");
    assert!(
        private.is_file() && public.is_file(),
        "rsa.pem / rsa.pub.pem missing"
    );
    Key {
        label: "raw RSA-3072 OAEP-SHA256",
        hyok_encrypt: raw_rsa_uri(namespace, name, Some(&public), None, RSA_PADDING),
        hyok_decrypt: raw_rsa_uri(namespace, name, None, Some(&private), RSA_PADDING),
        peer_encrypt: PeerKey::RsaPublic(public),
        peer_decrypt: PeerKey::RsaPrivate(private),
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn suite_of(msg: &[u8]) -> Option<u16> {
    msg.get(1..3).map(|b| u16::from_be_bytes([b[0], b[1]]))
}

/// Checks a message's header: suite, the context pairs, and that each EDK names a key.
fn check_header(msg: &[u8], suite: u16, keys: &[&Key]) -> Result<(), String> {
    let layout = format::parse(msg).map_err(|e| format!("message layout: {e}"))?;
    if layout.suite != suite {
        return Err(format!("suite {:04x}, expected {suite:04x}", layout.suite));
    }
    for (k, v) in CONTEXT {
        if !layout.context.iter().any(|(kk, vv)| kk == k && vv == v) {
            return Err(format!("stored context {:?} lacks {k}={v}", layout.context));
        }
    }
    for key in keys {
        let found = layout.edks.iter().any(|e| {
            e.provider_id == key.namespace.as_bytes()
                && e.provider_info.starts_with(key.name.as_bytes())
        });
        if !found {
            return Err(format!(
                "no EDK with provider {:?} / key {:?}",
                key.namespace, key.name
            ));
        }
    }
    Ok(())
}

/// One direction of one (key, suite, size) combination; returns its failures.
fn hyok_to_peer(peer: &Peer, key: &Key, suite: (&str, &str, u16), size: usize) -> Vec<String> {
    let tag = format!(
        "hyok->python {} suite {:04x} {size} bytes",
        key.label, suite.2
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let plain = pseudo_random(size, size as u64 + u64::from(suite.2));
    let input = dir.path().join("in");
    let msg = dir.path().join("msg");
    let out = dir.path().join("out");
    fs::write(&input, &plain).unwrap();
    let mut args: Vec<String> = vec![
        "encrypt".into(),
        input.display().to_string(),
        "-o".into(),
        msg.display().to_string(),
        "--key".into(),
        key.hyok_encrypt.clone(),
        "--suite".into(),
        suite.0.into(),
    ];
    args.extend(context_args("-c"));
    let run = hyok(&args);
    if !run.success() {
        return vec![format!("{tag}: hyok encrypt failed: {}", run.describe())];
    }
    let bytes = fs::read(&msg).unwrap_or_default();
    let mut fails = Vec::new();
    if let Err(e) = check_header(&bytes, suite.2, &[key]) {
        fails.push(format!("{tag}: {e}"));
    }
    let run = peer.run("decrypt", key, &context_args("--context"), &msg, &out);
    if !run.success() {
        fails.push(format!("{tag}: python decrypt failed: {}", run.describe()));
    } else {
        let got = fs::read(&out).unwrap_or_default();
        if got != plain {
            fails.push(format!(
                "{tag}: {}",
                common::describe_mismatch(&got, &plain)
            ));
        }
    }
    fails
}

fn peer_to_hyok(peer: &Peer, key: &Key, suite: (&str, &str, u16), size: usize) -> Vec<String> {
    let tag = format!(
        "python->hyok {} suite {:04x} {size} bytes",
        key.label, suite.2
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let plain = pseudo_random(size, 7 * size as u64 + u64::from(suite.2));
    let input = dir.path().join("in");
    let msg = dir.path().join("msg");
    fs::write(&input, &plain).unwrap();
    let mut extra = context_args("--context");
    extra.extend(["--suite".into(), suite.1.into()]);
    let run = peer.run("encrypt", key, &extra, &input, &msg);
    if !run.success() {
        return vec![format!("{tag}: python encrypt failed: {}", run.describe())];
    }
    let bytes = fs::read(&msg).unwrap_or_default();
    if suite_of(&bytes) != Some(suite.2) {
        return vec![format!("{tag}: peer wrote suite {:?}", suite_of(&bytes))];
    }
    let mut fails = Vec::new();
    // Once as is, once also checking the stored context with -c.
    for (label, with_context) in [("", false), (" with -c", true)] {
        let out = dir.path().join(format!("out{with_context}"));
        let mut args: Vec<String> = vec![
            "decrypt".into(),
            msg.display().to_string(),
            "-o".into(),
            out.display().to_string(),
            "--key".into(),
            key.hyok_decrypt.clone(),
        ];
        if with_context {
            args.extend(context_args("-c"));
        }
        let run = hyok(&args);
        if !run.success() {
            fails.push(format!(
                "{tag}{label}: hyok decrypt failed: {}",
                run.describe()
            ));
            continue;
        }
        let got = fs::read(&out).unwrap_or_default();
        if got != plain {
            fails.push(format!(
                "{tag}{label}: {}",
                common::describe_mismatch(&got, &plain)
            ));
        }
    }
    fails
}

/// Both directions for every suite and size with one key.
fn matrix(peer: &Peer, key: &Key) -> (usize, Vec<String>) {
    let mut jobs = Vec::new();
    for suite in suites() {
        for size in SIZES {
            jobs.push((suite, size, true));
            jobs.push((suite, size, false));
        }
    }
    let results = par_map(&jobs, |&(suite, size, from_hyok)| {
        if from_hyok {
            hyok_to_peer(peer, key, suite, size)
        } else {
            peer_to_hyok(peer, key, suite, size)
        }
    });
    (jobs.len(), results.into_iter().flatten().collect())
}

#[test]
fn raw_aes_256_both_directions() {
    let Some(python) = python("raw_aes_256_both_directions") else {
        return;
    };
    let peer = Peer { python };
    let dir = tempfile::tempdir().unwrap();
    let key = aes_key(dir.path(), "hyok-interop", "aes-key-1");
    let (n, fails) = matrix(&peer, &key);
    common::report("interop raw AES-256", n, &fails);
}

#[test]
fn raw_rsa_3072_oaep_sha256_both_directions() {
    let Some(python) = python("raw_rsa_3072_oaep_sha256_both_directions") else {
        return;
    };
    let peer = Peer { python };
    let dir = tempfile::tempdir().unwrap();
    let key = rsa_key(dir.path(), "hyok-interop", "rsa-key-1");
    let (n, fails) = matrix(&peer, &key);
    common::report("interop raw RSA-3072", n, &fails);
}

/// Namespace and key name that need percent-encoding in a URI (space, slash, `?&=%`,
/// non-ASCII): the EDK must carry the decoded bytes, as the Python side sees them.
#[test]
fn percent_encoded_key_names() {
    let Some(python) = python("percent_encoded_key_names") else {
        return;
    };
    let peer = Peer { python };
    let dir = tempfile::tempdir().unwrap();
    let key = aes_key(dir.path(), "team a/hsm?x=1&y=%", "clé 1/東京");
    let suite = SUITES[0];
    let mut fails = hyok_to_peer(&peer, &key, suite, 5000);
    fails.extend(peer_to_hyok(&peer, &key, suite, 5000));
    common::report("interop percent-encoded key names", 2, &fails);
}

/// hyok encrypts with an AES generator plus an RSA key given by its public half only (an
/// offline escrow key); each key alone must then decrypt, on either side.
#[test]
fn escrow_rsa_public_key_only() {
    let Some(python) = python("escrow_rsa_public_key_only") else {
        return;
    };
    let peer = Peer { python };
    let dir = tempfile::tempdir().unwrap();
    let aes = aes_key(dir.path(), "hyok-interop", "aes-generator");
    let rsa = rsa_key(dir.path(), "hyok-escrow", "escrow-rsa-3072");
    let mut fails = Vec::new();
    let mut checks = 0;
    for suite in suites() {
        let tag = format!("escrow suite {:04x}", suite.2);
        let plain = pseudo_random(5000, u64::from(suite.2));
        let input = dir.path().join("escrow-in");
        let msg = dir.path().join(format!("escrow-{:04x}.msg", suite.2));
        fs::write(&input, &plain).unwrap();
        let mut args: Vec<String> = vec![
            "encrypt".into(),
            input.display().to_string(),
            "-o".into(),
            msg.display().to_string(),
            "--key".into(),
            aes.hyok_encrypt.clone(),
            "--key".into(),
            rsa.hyok_encrypt.clone(),
            "--suite".into(),
            suite.0.into(),
        ];
        args.extend(context_args("-c"));
        let run = hyok(&args);
        checks += 1;
        if !run.success() {
            fails.push(format!("{tag}: hyok encrypt failed: {}", run.describe()));
            continue;
        }
        let bytes = fs::read(&msg).unwrap_or_default();
        if let Err(e) = check_header(&bytes, suite.2, &[&aes, &rsa]) {
            fails.push(format!("{tag}: {e}"));
        }
        // The generator's EDK comes first.
        if let Ok(layout) = format::parse(&bytes) {
            if layout.edks.first().map(|e| e.provider_id.as_slice()) != Some(b"hyok-interop") {
                fails.push(format!("{tag}: first EDK is not the generator's"));
            }
        }
        for (who, key) in [("RSA private key", &rsa), ("AES key", &aes)] {
            checks += 2;
            let out = dir.path().join("escrow-out");
            let _ = fs::remove_file(&out);
            let run = peer.run("decrypt", key, &[], &msg, &out);
            if !run.success() {
                fails.push(format!(
                    "{tag}: python decrypt with the {who} alone: {}",
                    run.describe()
                ));
            } else if fs::read(&out).unwrap_or_default() != plain {
                fails.push(format!(
                    "{tag}: python decrypt with the {who}: wrong plaintext"
                ));
            }
            let out = dir.path().join("escrow-out-hyok");
            let _ = fs::remove_file(&out);
            let run = hyok([
                "decrypt".to_string(),
                msg.display().to_string(),
                "-o".into(),
                out.display().to_string(),
                "--key".into(),
                key.hyok_decrypt.clone(),
            ]);
            if !run.success() {
                fails.push(format!(
                    "{tag}: hyok decrypt with the {who} alone: {}",
                    run.describe()
                ));
            } else if fs::read(&out).unwrap_or_default() != plain {
                fails.push(format!(
                    "{tag}: hyok decrypt with the {who}: wrong plaintext"
                ));
            }
        }
    }
    common::report("interop escrow", checks, &fails);
}

/// A frame length that is not a multiple of 128 (the Python SDK will not write one, but must
/// read it), with a plaintext that is an exact multiple of it.
#[test]
fn odd_frame_length_to_python() {
    let Some(python) = python("odd_frame_length_to_python") else {
        return;
    };
    let peer = Peer { python };
    let dir = tempfile::tempdir().unwrap();
    let key = aes_key(dir.path(), "hyok-interop", "aes-frames");
    let plain = pseudo_random(5000, 99);
    let input = dir.path().join("in");
    let msg = dir.path().join("msg");
    let out = dir.path().join("out");
    fs::write(&input, &plain).unwrap();
    let run = hyok([
        "encrypt".to_string(),
        input.display().to_string(),
        "-o".into(),
        msg.display().to_string(),
        "--key".into(),
        key.hyok_encrypt.clone(),
        "--frame-length".into(),
        "1000".into(),
    ]);
    assert!(
        run.success(),
        "hyok encrypt --frame-length 1000: {}",
        run.describe()
    );
    let layout = format::parse(&fs::read(&msg).unwrap()).expect("message layout");
    assert_eq!(layout.frame_length, 1000, "frame length in the header");
    assert_eq!(layout.suite, 0x0478, "default suite is committed (0x0478)");
    let run = peer.run("decrypt", &key, &[], &msg, &out);
    assert!(run.success(), "python decrypt: {}", run.describe());
    assert!(
        fs::read(&out).unwrap() == plain,
        "python decrypt: wrong plaintext"
    );
}

/// Issue 14: a message wrapped by a raw AES key and a post-quantum escrow key
/// (`pq-escrow:`, X-Wing) stays readable by the Python ESDK with the AES key alone, and
/// `hyok` opens it with the escrow key alone.
#[test]
#[cfg(not(feature = "fips"))]
fn aes_plus_pq_escrow_stays_readable_by_python() {
    let Some(python) = python("aes_plus_pq_escrow_stays_readable_by_python") else {
        return;
    };
    let peer = Peer { python };
    let dir = tempfile::tempdir().unwrap();
    let aes = aes_key(dir.path(), "hyok-interop", "aes-generator");
    let base = dir.path().join("pq");
    let run = hyok([
        "key".to_string(),
        "new".into(),
        "mlkem768-x25519".into(),
        "-o".into(),
        base.display().to_string(),
    ]);
    assert!(run.success(), "key new mlkem768-x25519: {}", run.describe());
    let pq = |attr: &str, file: &str| {
        format!(
            "pq-escrow:hyok-escrow/pq-2026?{attr}={}",
            common::pct_path(&dir.path().join(file))
        )
    };
    let plain = pseudo_random(70_000, 1414);
    let input = dir.path().join("pq-in");
    let msg = dir.path().join("pq.msg");
    fs::write(&input, &plain).unwrap();
    let mut args: Vec<String> = vec![
        "encrypt".into(),
        input.display().to_string(),
        "-o".into(),
        msg.display().to_string(),
        "--key".into(),
        aes.hyok_encrypt.clone(),
        "--key".into(),
        pq("public", "pq.pub"),
    ];
    args.extend(context_args("-c"));
    let run = hyok(&args);
    assert!(run.success(), "hyok encrypt: {}", run.describe());
    let out = dir.path().join("pq-out-python");
    let run = peer.run("decrypt", &aes, &[], &msg, &out);
    assert!(
        run.success(),
        "python decrypt with the AES key: {}",
        run.describe()
    );
    assert!(fs::read(&out).unwrap() == plain, "python: wrong plaintext");
    let out = dir.path().join("pq-out-hyok");
    let run = hyok([
        "decrypt".to_string(),
        msg.display().to_string(),
        "-o".into(),
        out.display().to_string(),
        "--key".into(),
        pq("private", "pq.key"),
    ]);
    assert!(
        run.success(),
        "hyok decrypt with the escrow key: {}",
        run.describe()
    );
    assert!(fs::read(&out).unwrap() == plain, "hyok: wrong plaintext");
}

/// The signed suite (0x0578) both ways with the Python ESDK, in any build (in the FIPS
/// build its ECDSA runs in the module, docs/CUSTODY.md §4): a multi-frame message hyok
/// signs, Python verifies and decrypts; one Python signs, hyok verifies and decrypts; and a
/// Python message whose footer signature was changed is refused by hyok with no output.
#[test]
fn signed_suite_both_ways() {
    let Some(python) = python("signed_suite_both_ways") else {
        return;
    };
    let peer = Peer { python };
    let dir = tempfile::tempdir().unwrap();
    let key = aes_key(dir.path(), "hyok-interop", "aes-signed");
    let plain = pseudo_random(300 * 1024, 5);
    let input = dir.path().join("in");
    fs::write(&input, &plain).unwrap();

    let mine = dir.path().join("hyok.msg");
    let run = hyok([
        "encrypt".to_string(),
        input.display().to_string(),
        "-o".into(),
        mine.display().to_string(),
        "--key".into(),
        key.hyok_encrypt.clone(),
        "--suite".into(),
        "committed-signed".into(),
        "--frame-length".into(),
        "65536".into(),
    ]);
    assert!(
        run.success(),
        "hyok encrypt --suite committed-signed: {}",
        run.describe()
    );
    assert_eq!(suite_of(&fs::read(&mine).unwrap()), Some(0x0578));
    let back = dir.path().join("python.out");
    let run = peer.run("decrypt", &key, &[], &mine, &back);
    assert!(
        run.success(),
        "python decrypt of hyok's 0x0578: {}",
        run.describe()
    );
    assert!(fs::read(&back).unwrap() == plain, "python: wrong plaintext");

    let theirs = dir.path().join("python.msg");
    let extra = ["--suite".to_string(), "committing-signed".into()];
    let run = peer.run("encrypt", &key, &extra, &input, &theirs);
    assert!(run.success(), "python encrypt: {}", run.describe());
    let mut bytes = fs::read(&theirs).unwrap();
    assert_eq!(suite_of(&bytes), Some(0x0578));
    let out = dir.path().join("out");
    let decrypt = |msg: &Path, out: &Path| {
        hyok([
            "decrypt".to_string(),
            msg.display().to_string(),
            "-o".into(),
            out.display().to_string(),
            "--key".into(),
            key.hyok_decrypt.clone(),
        ])
    };
    let run = decrypt(&theirs, &out);
    assert!(
        run.success(),
        "hyok decrypt of python's 0x0578: {}",
        run.describe()
    );
    assert!(fs::read(&out).unwrap() == plain, "hyok: wrong plaintext");

    // The last byte is inside the footer's DER signature (its s value).
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let tampered = dir.path().join("tampered.msg");
    fs::write(&tampered, &bytes).unwrap();
    let out2 = dir.path().join("out2");
    let run = decrypt(&tampered, &out2);
    common::check_failed(&run, Some(&out2)).unwrap_or_else(|e| panic!("tampered footer: {e}"));
    assert!(run.stderr.contains("signature"), "{}", run.describe());
}
