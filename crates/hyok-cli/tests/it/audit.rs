//! The audit log through the `hyok` binary: every encrypt/decrypt with logging on leaves a
//! record of each key use and of the message; `hyok audit verify` passes on an untouched
//! log and names the line of every kind of tampering; `show`, `checkpoint`, `public-key`.

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::{self, check_error_stderr, pseudo_random, raw_aes_uri, raw_rsa_uri, Run};

/// A directory with keys, a checkpoint key pair and a log path.
struct Env {
    dir: tempfile::TempDir,
    log: PathBuf,
    signing_key: PathBuf,
    public_key: PathBuf,
    aes: String,
    rsa_public: String,
    rsa_private: String,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let aes_file = d.join("aes.key");
    std::fs::write(&aes_file, pseudo_random(32, 6)).unwrap();
    let run = hyok_in(d, &[], ["key", "new", "ec-p256", "-o", "checkpoint"]);
    assert!(run.success(), "{}", run.describe());
    let run = hyok_in(d, &[], ["key", "new", "rsa-3072", "-o", "escrow"]);
    assert!(run.success(), "{}", run.describe());
    Env {
        log: d.join("audit.log"),
        signing_key: d.join("checkpoint.pem"),
        public_key: d.join("checkpoint.pub.pem"),
        aes: raw_aes_uri("audit-test", "aes-key", &aes_file),
        rsa_public: raw_rsa_uri(
            "audit-escrow",
            "rsa-key",
            Some(&d.join("escrow.pub.pem")),
            None,
            "oaep-sha256",
        ),
        rsa_private: raw_rsa_uri(
            "audit-escrow",
            "rsa-key",
            None,
            Some(&d.join("escrow.pem")),
            "oaep-sha256",
        ),
        dir,
    }
}

/// Runs `hyok` in `cwd` with only the given HYOK_AUDIT_* (or HYOK_CONFIG) variables set.
fn hyok_in<I, S>(cwd: &Path, vars: &[(&str, &OsStr)], args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(common::bin());
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    common::hermetic(&mut cmd);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Env {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `hyok` with logging on.
    fn logged<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        hyok_in(
            self.dir.path(),
            &[
                ("HYOK_AUDIT_LOG", self.log.as_os_str()),
                ("HYOK_AUDIT_KEY", self.signing_key.as_os_str()),
                ("HYOK_AUDIT_IDENTITY", OsStr::new("svc-backup")),
            ],
            args,
        )
    }

    fn plain<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        hyok_in(self.dir.path(), &[], args)
    }

    fn records(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_slice::<Value>(l).unwrap())
            .filter(|v| v["type"] == "record")
            .collect()
    }

    fn lines(&self) -> Vec<Vec<u8>> {
        let data = std::fs::read(&self.log).unwrap();
        data.strip_suffix(b"\n")
            .unwrap_or(&data)
            .split(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn write_lines(&self, lines: &[Vec<u8>]) {
        let mut f = std::fs::File::create(&self.log).unwrap();
        for l in lines {
            f.write_all(l).unwrap();
            f.write_all(b"\n").unwrap();
        }
    }

    fn verify(&self, extra: &[&str]) -> Run {
        let mut args = vec![
            "audit".to_string(),
            "verify".into(),
            self.log.display().to_string(),
            "--public-key".into(),
            self.public_key.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        self.plain(args)
    }

    /// Encrypt `name` (created with some content) to `name.enc` with logging on.
    fn encrypt(&self, name: &str, keys: &[&str]) -> Run {
        std::fs::write(self.path(name), pseudo_random(5000, name.len() as u64)).unwrap();
        let mut args = vec![
            "encrypt".to_string(),
            name.into(),
            "-o".into(),
            format!("{name}.enc"),
        ];
        for k in keys {
            args.push("-k".into());
            args.push(k.to_string());
        }
        args.extend(["-c".into(), "case=4711".into()]);
        self.logged(args)
    }

    fn decrypt(&self, name: &str, key: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            "decrypt".to_string(),
            format!("{name}.enc"),
            "-o".into(),
            format!("{name}.out"),
            "-k".into(),
            key.into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        self.logged(args)
    }
}

fn ops(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["op"].as_str().unwrap().to_string())
        .collect()
}

fn message_id(msg: &Path) -> String {
    let run = common::hyok(["inspect", "--json", &msg.display().to_string()]);
    assert!(run.success(), "{}", run.describe());
    let v: Value = serde_json::from_slice(&run.stdout).unwrap();
    let id = v["message_id"].as_str().unwrap().to_string();
    // `inspect` may print base64 or hex; normalise to hex.
    if id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()) {
        id
    } else {
        use base64::Engine as _;
        hex::encode(
            base64::engine::general_purpose::STANDARD
                .decode(id)
                .unwrap(),
        )
    }
}

#[test]
fn encrypt_and_decrypt_record_every_key_use_and_message() {
    let e = env();
    let run = e.encrypt("a.bin", &[&e.aes, &e.rsa_public]);
    assert!(run.success(), "{}", run.describe());
    let run = e.decrypt("a.bin", &e.aes, &["-c", "case=4711"]);
    assert!(run.success(), "{}", run.describe());
    let run = e.decrypt("a.bin", &e.rsa_private, &["-c", "case=4711", "--force"]);
    assert!(run.success(), "{}", run.describe());

    let recs = e.records();
    assert_eq!(
        ops(&recs),
        ["generate", "wrap", "encrypt", "unwrap", "decrypt", "unwrap", "decrypt"]
    );
    let id = message_id(&e.path("a.bin.enc"));
    for r in &recs {
        assert_eq!(r["message_id"], id.as_str(), "{r}");
        assert_eq!(r["outcome"], "ok", "{r}");
        assert_eq!(r["identity"], "svc-backup");
        assert_eq!(r["suite"], "0x0478");
        assert!(r["ctx_sha256"].as_str().unwrap().len() == 64);
        assert!(r["host"].is_string() && r["user"].is_string() && r["pid"].is_u64());
        assert!(r["time"].as_str().unwrap().ends_with('Z'));
        assert!(r["duration_us"].is_u64());
    }
    assert_eq!(recs[0]["subject"], "a.bin");
    assert_eq!(recs[3]["subject"], "a.bin.enc");
    assert!(recs[0]["key"]
        .as_str()
        .unwrap()
        .starts_with("raw-aes:audit-test/aes-key"));
    assert!(recs[1]["key"]
        .as_str()
        .unwrap()
        .starts_with("raw-rsa:audit-escrow/rsa-key"));
    assert!(recs[5]["key"]
        .as_str()
        .unwrap()
        .starts_with("raw-rsa:audit-escrow/rsa-key"));
    for r in [&recs[0], &recs[1], &recs[3], &recs[5]] {
        assert!(r["edk_sha256"].as_str().unwrap().len() == 64, "{r}");
    }
    assert_eq!(recs[2]["bytes"], 5000);
    assert_eq!(recs[4]["bytes"], 5000);
    assert_eq!(recs[2]["keys"].as_array().unwrap().len(), 2);

    // Every append ends with a checkpoint (so each process at least one); everything
    // verifies.
    let run = e.verify(&[]);
    assert!(run.success(), "{}", run.describe());
    let out = run.stdout_text();
    assert!(out.contains("OK: 7 records, "), "{out}");
    let checkpoints: usize = out
        .split("7 records, ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((3..=7).contains(&checkpoints), "{out}");
    assert!(!out.contains("warning"), "{out}");

    // No key material in the log.
    let log = std::fs::read_to_string(&e.log).unwrap();
    let aes = std::fs::read(e.path("aes.key")).unwrap();
    assert!(!log.contains(&hex::encode(&aes)));
    {
        use base64::Engine as _;
        assert!(!log.contains(&base64::engine::general_purpose::STANDARD.encode(&aes)));
    }
    assert!(!log.contains("PRIVATE KEY"));
}

#[test]
fn failures_and_policy_refusals_are_recorded() {
    let e = env();
    assert!(e.encrypt("b.bin", &[&e.aes]).success());
    // A context value that contradicts the message: refused before any key use.
    let run = e.decrypt("b.bin", &e.aes, &["-c", "case=9999"]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    check_error_stderr(&run.stderr).unwrap();
    // A key with the right name but other bytes: the key store fails to unwrap.
    let other = e.path("other.key");
    std::fs::write(&other, pseudo_random(32, 99)).unwrap();
    let wrong = raw_aes_uri("audit-test", "aes-key", &other);
    let run = e.decrypt("b.bin", &wrong, &["-c", "case=4711"]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    check_error_stderr(&run.stderr).unwrap();
    // A policy (the EDK limit) refuses the message before any key is used.
    let run = e.decrypt("b.bin", &e.aes, &["--max-edks", "0"]);
    assert_eq!(run.code, Some(1), "{}", run.describe());

    let recs = e.records();
    assert_eq!(
        ops(&recs),
        [
            "generate",
            "encrypt",
            "decrypt",
            "unwrap",
            "decrypt",
            "policy-refusal",
            "decrypt"
        ]
    );
    assert_eq!(recs[2]["outcome"], "error");
    assert_eq!(recs[2]["error"], "context");
    assert_eq!(recs[3]["outcome"], "error");
    assert_eq!(recs[3]["error"], "unwrap-failed");
    assert_eq!(recs[4]["error"], "unwrap-failed");
    assert_eq!(recs[5]["error"], "policy");
    assert!(
        recs[5]["detail"]
            .as_str()
            .unwrap()
            .contains("encrypted data key"),
        "{}",
        recs[5]
    );
    assert_eq!(recs[6]["error"], "policy");
    assert!(e.verify(&[]).success());
}

#[test]
fn key_lifecycle_is_recorded() {
    let e = env();
    let run = e.logged(["key", "new", "aes-256", "-o", "new.key"]);
    assert!(run.success(), "{}", run.describe());
    // Refused (exists): recorded as a failed key-new.
    let run = e.logged(["key", "new", "aes-256", "-o", "new.key"]);
    assert_eq!(run.code, Some(2));
    let recs = e.records();
    assert_eq!(ops(&recs), ["key-new", "key-new"]);
    assert_eq!(recs[0]["key"], "new.key");
    assert_eq!(recs[0]["outcome"], "ok");
    assert_eq!(recs[1]["outcome"], "error");
    assert!(e.verify(&[]).success());
}

#[test]
fn verify_names_the_place_of_every_kind_of_tampering() {
    let e = env();
    for i in 0..4 {
        assert!(e.encrypt(&format!("f{i}.bin"), &[&e.aes]).success());
    }
    let run = e.logged(["audit", "checkpoint", "-o", "trusted.json"]);
    assert!(run.success(), "{}", run.describe());
    for i in 4..6 {
        assert!(e.encrypt(&format!("f{i}.bin"), &[&e.aes]).success());
    }
    let trusted = e.path("trusted.json").display().to_string();
    let run = e.verify(&["--trusted-checkpoint", &trusted]);
    assert!(run.success(), "{}", run.describe());
    assert!(run
        .stdout_text()
        .contains("extends the trusted checkpoint of 8 records"));

    let original = e.lines();
    let record_lines: Vec<usize> = (0..original.len())
        .filter(|&i| original[i].starts_with(br#"{"type":"record""#))
        .collect();
    let checkpoint_lines: Vec<usize> = (0..original.len())
        .filter(|&i| original[i].starts_with(br#"{"type":"checkpoint""#))
        .collect();
    // Records 2 and 3 are the two of f1's encrypt; a checkpoint follows them.
    let (r2, r3) = (record_lines[2], record_lines[3]);
    let cases: Vec<(&str, Vec<Vec<u8>>, usize, &str)> = vec![
        (
            "one byte changed",
            {
                let mut l = original.clone();
                let pos = l[r2].len() / 2;
                l[r2][pos] ^= 0x01;
                l
            },
            r2,
            "",
        ),
        (
            "a record deleted",
            {
                let mut l = original.clone();
                l.remove(r2);
                l
            },
            r2,
            "deleted",
        ),
        (
            "a record inserted",
            {
                let mut l = original.clone();
                l.insert(record_lines[6], original[r2].clone());
                l
            },
            record_lines[6],
            "inserted",
        ),
        (
            "two records swapped",
            {
                let mut l = original.clone();
                l.swap(r2, r3);
                l
            },
            r2,
            "reordered",
        ),
        (
            "a checkpoint signature altered",
            {
                let mut l = original.clone();
                let i = checkpoint_lines[1];
                let text = String::from_utf8(l[i].clone()).unwrap();
                let at = text.find("\"sig\":\"").unwrap() + 10;
                let mut b = text.into_bytes();
                b[at] = if b[at] == b'A' { b'B' } else { b'A' };
                l[i] = b;
                l
            },
            checkpoint_lines[1],
            "bad signature",
        ),
    ];
    for (what, lines, bad, word) in cases {
        e.write_lines(&lines);
        let run = e.verify(&[]);
        assert_eq!(run.code, Some(1), "{what}: {}", run.describe());
        check_error_stderr(&run.stderr).unwrap();
        let first = run.stderr.lines().next().unwrap();
        assert!(
            first.contains(&format!(": line {}: ", bad + 1)),
            "{what}: expected line {}: {first}",
            bad + 1
        );
        assert!(first.contains(word), "{what}: {first}");
        assert!(first.contains(&e.log.display().to_string()), "{first}");
    }

    // A torn last line.
    e.write_lines(&original);
    let data = std::fs::read(&e.log).unwrap();
    std::fs::write(&e.log, &data[..data.len() - 30]).unwrap();
    let run = e.verify(&[]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stderr
            .contains(&format!("line {}: torn last line", original.len())),
        "{}",
        run.stderr
    );

    // Cut below the trusted checkpoint, right after the exit checkpoint of f2's encrypt
    // (so the rest verifies).
    e.write_lines(&original[..record_lines[6]]);
    assert!(e.verify(&[]).success(), "a clean cut alone is invisible");
    let run = e.verify(&["--trusted-checkpoint", &trusted]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(run.stderr.contains("cut below it"), "{}", run.stderr);
    check_error_stderr(&run.stderr).unwrap();
}

#[test]
fn show_filters_and_exports() {
    let e = env();
    assert!(e.encrypt("s.bin", &[&e.aes, &e.rsa_public]).success());
    assert!(e.decrypt("s.bin", &e.aes, &["-c", "case=4711"]).success());
    let log = e.log.display().to_string();

    let run = e.plain(["audit", "show", &log]);
    assert!(run.success(), "{}", run.describe());
    assert_eq!(run.stdout_text().lines().count(), 5);

    let run = e.plain(["audit", "show", &log, "--op", "unwrap", "--json"]);
    assert!(run.success(), "{}", run.describe());
    let out = run.stdout_text();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1);
    // Exactly the logged line, byte for byte.
    let logged = std::fs::read_to_string(&e.log).unwrap();
    assert!(logged.lines().any(|l| l == lines[0]));

    let run = e.plain([
        "audit",
        "show",
        &log,
        "--key",
        "raw-rsa:audit-escrow",
        "--json",
    ]);
    let out = run.stdout_text();
    // The wrap record and the encrypt record (which lists both keys).
    assert_eq!(out.lines().count(), 2, "{out}");

    let run = e.plain(["audit", "show", &log, "--since", "2999-01-01"]);
    assert!(run.success() && run.stdout.is_empty());
    let run = e.plain(["audit", "show", &log, "--since", "1h", "--op", "key-use"]);
    assert_eq!(run.stdout_text().lines().count(), 3);

    let run = e.plain(["audit", "show", &log, "--op", "steal"]);
    assert_eq!(run.code, Some(2));
    let run = e.plain(["audit", "show", &log, "--since", "yesterday"]);
    assert_eq!(run.code, Some(2));
}

#[test]
fn exported_public_key_alone_verifies_the_log() {
    let e = env();
    assert!(e.encrypt("p.bin", &[&e.aes]).success());
    let run = e.logged(["audit", "public-key"]);
    assert!(run.success(), "{}", run.describe());
    let exported = e.path("exported.pub.pem");
    std::fs::write(&exported, &run.stdout).unwrap();
    let run = e.plain([
        "audit",
        "verify",
        &e.log.display().to_string(),
        "--public-key",
        &exported.display().to_string(),
    ]);
    assert!(run.success(), "{}", run.describe());

    // Another key does not verify it.
    assert!(e.plain(["key", "new", "ec-p384", "-o", "other"]).success());
    let run = e.plain([
        "audit",
        "verify",
        &e.log.display().to_string(),
        "--public-key",
        &e.path("other.pub.pem").display().to_string(),
    ]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("bad signature"), "{}", run.stderr);
}

#[test]
fn checkpoint_prints_one_json_line() {
    let e = env();
    assert!(e.encrypt("c.bin", &[&e.aes]).success());
    let run = e.logged(["audit", "checkpoint"]);
    assert!(run.success(), "{}", run.describe());
    let out = run.stdout_text();
    assert_eq!(out.lines().count(), 1);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["type"], "checkpoint");
    assert_eq!(v["size"], 2);
    assert!(v.get("frontier").is_none());
    // Without a log to name: usage error.
    let run = e.plain(["audit", "checkpoint"]);
    assert_eq!(run.code, Some(2), "{}", run.describe());
}

#[test]
fn audit_configuration_errors_exit_2_and_do_nothing() {
    let e = env();
    std::fs::write(e.path("x.bin"), b"data").unwrap();
    let args = ["encrypt", "x.bin", "-o", "x.enc", "-k", &e.aes];
    // A log without a signing key.
    let run = hyok_in(e.dir.path(), &[("HYOK_AUDIT_LOG", e.log.as_os_str())], args);
    assert_eq!(run.code, Some(2), "{}", run.describe());
    check_error_stderr(&run.stderr).unwrap();
    assert!(run.stderr.contains("HYOK_AUDIT_KEY"), "{}", run.stderr);
    // A signing key that is not an EC private key.
    let run = hyok_in(
        e.dir.path(),
        &[
            ("HYOK_AUDIT_LOG", e.log.as_os_str()),
            ("HYOK_AUDIT_KEY", e.public_key.as_os_str()),
        ],
        args,
    );
    assert_eq!(run.code, Some(2), "{}", run.describe());
    check_error_stderr(&run.stderr).unwrap();
    assert!(!e.path("x.enc").exists());
    // A log that cannot be written: the encrypt fails and leaves nothing.
    let nowhere = e.path("no/such/dir/audit.log");
    let run = hyok_in(
        e.dir.path(),
        &[
            ("HYOK_AUDIT_LOG", nowhere.as_os_str()),
            ("HYOK_AUDIT_KEY", e.signing_key.as_os_str()),
        ],
        args,
    );
    assert_eq!(run.code, Some(1), "{}", run.describe());
    check_error_stderr(&run.stderr).unwrap();
    assert!(!e.path("x.enc").exists());
    // verify: a public key file that is not one is a usage error.
    let run = e.plain([
        "audit",
        "verify",
        &e.log.display().to_string(),
        "--public-key",
        &e.path("x.bin").display().to_string(),
    ]);
    assert_eq!(run.code, Some(2), "{}", run.describe());
}

#[test]
fn logging_off_writes_nothing() {
    let e = env();
    std::fs::write(e.path("q.bin"), b"data").unwrap();
    let run = e.plain(["encrypt", "q.bin", "-o", "q.enc", "-k", &e.aes]);
    assert!(run.success(), "{}", run.describe());
    assert!(!e.log.exists());
}

/// Acceptance: a checkpoint signed by an EC key inside SoftHSM verifies with its exported
/// public key alone (no token, no PIN, no PKCS#11 module at verification time).
#[test]
#[serial_test::serial]
fn checkpoints_signed_in_softhsm_verify_with_the_exported_public_key_alone() {
    let Some(token) = crate::pkcs11::token("audit_checkpoint_key_in_softhsm") else {
        return;
    };
    for kind in ["ec-p256", "ec-p384"] {
        let e = env();
        let label = crate::pkcs11::unique(&format!("audit-{kind}"));
        let uri = crate::pkcs11::key_new(&token, kind, &label);
        let _cleanup = crate::pkcs11::Cleanup(uri.clone());
        let vars = |log: &Path| -> Vec<(&'static str, std::ffi::OsString)> {
            vec![
                ("HYOK_AUDIT_LOG", log.as_os_str().to_owned()),
                ("HYOK_AUDIT_KEY", uri.clone().into()),
            ]
        };
        let with = |args: &[&str]| {
            let v = vars(&e.log);
            let refs: Vec<(&str, &OsStr)> = v.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
            hyok_in(e.dir.path(), &refs, args)
        };
        std::fs::write(e.path("h.bin"), b"signed in the HSM").unwrap();
        let run = with(&["encrypt", "h.bin", "-o", "h.enc", "-k", &e.aes]);
        assert!(run.success(), "{kind}: {}", run.describe());
        let run = with(&["audit", "checkpoint", "-o", "trusted.json"]);
        assert!(run.success(), "{kind}: {}", run.describe());
        let run = with(&["audit", "public-key"]);
        assert!(run.success(), "{kind}: {}", run.describe());
        let exported = e.path("hsm.pub.pem");
        std::fs::write(&exported, &run.stdout).unwrap();

        // Verify with nothing but the log and the PEM: no PKCS#11 settings at all.
        let mut cmd = Command::new(common::bin());
        cmd.args([
            "audit",
            "verify",
            &e.log.display().to_string(),
            "--public-key",
            &exported.display().to_string(),
            "--trusted-checkpoint",
            &e.path("trusted.json").display().to_string(),
        ])
        .env_clear()
        .current_dir(e.dir.path());
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{kind}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // One checkpoint per append of the encrypt (its two records in one or two
        // appends) and the one `audit checkpoint` signed.
        assert!(
            stdout.contains("OK: 2 records, 2 signed checkpoints")
                || stdout.contains("OK: 2 records, 3 signed checkpoints"),
            "{kind}: {stdout}"
        );
        let alg = if kind == "ec-p256" {
            "ecdsa-p256-sha256"
        } else {
            "ecdsa-p384-sha384"
        };
        let trusted = std::fs::read_to_string(e.path("trusted.json")).unwrap();
        assert!(trusted.contains(alg), "{kind}: {trusted}");

        // An altered signature from the token fails.
        let mut lines = e.lines();
        let last = lines.len() - 1;
        let text = String::from_utf8(lines[last].clone()).unwrap();
        let at = text.find("\"sig\":\"").unwrap() + 8;
        let mut b = text.into_bytes();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        lines[last] = b;
        e.write_lines(&lines);
        let run = e.plain([
            "audit",
            "verify",
            &e.log.display().to_string(),
            "--public-key",
            &exported.display().to_string(),
        ]);
        assert_eq!(run.code, Some(1), "{kind}: {}", run.describe());
        assert!(
            run.stderr.contains("bad signature"),
            "{kind}: {}",
            run.stderr
        );
    }
}

#[test]
fn cp_records_every_key_use_of_every_object() {
    let e = env();
    let src = e.path("tree");
    std::fs::create_dir(&src).unwrap();
    for i in 0..3 {
        std::fs::write(src.join(format!("f{i}.txt")), format!("object {i}")).unwrap();
    }
    let store = format!("file://{}/", e.path("store").display());
    std::fs::create_dir(e.path("store")).unwrap();
    let run = e.logged(["cp", "-r", "tree", &store, "-k", &e.aes]);
    assert!(run.success(), "{}", run.describe());
    let run = e.logged(["cp", "-r", &store, "back", "-k", &e.aes]);
    assert!(run.success(), "{}", run.describe());
    let recs = e.records();
    assert_eq!(
        ops(&recs),
        ["generate", "generate", "generate", "unwrap", "unwrap", "unwrap"]
    );
    for r in &recs {
        assert!(r["subject"].as_str().unwrap().starts_with("file://"), "{r}");
        assert!(r["message_id"].is_string(), "{r}");
    }
    let run = e.verify(&[]);
    assert!(run.success(), "{}", run.describe());
    // Each command's records end under a signed checkpoint; how many checkpoints a command
    // writes depends on how its records were batched (one per append), so count, don't fix.
    let text = run.stdout_text();
    let checkpoints: usize = text
        .split(" signed checkpoints")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no checkpoint count in {text}"));
    assert!((2..=6).contains(&checkpoints), "{text}");
}

#[test]
fn config_audit_section_turns_logging_on_and_env_overrides_it() {
    let e = env();
    // A relative log path is taken relative to the configuration file.
    std::fs::create_dir(e.path("etc")).unwrap();
    let cfg = e.path("etc/hyok.toml");
    std::fs::write(
        &cfg,
        format!(
            "[audit]\nlog = \"from-config.log\"\nkey = {:?}\nidentity = \"cfg-job\"\n",
            e.signing_key.display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(e.path("c.bin"), b"configured").unwrap();
    let with_cfg = [("HYOK_CONFIG", cfg.as_os_str())];
    let run = hyok_in(
        e.dir.path(),
        &with_cfg,
        ["encrypt", "c.bin", "-o", "c.enc", "-k", &e.aes],
    );
    assert!(run.success(), "{}", run.describe());
    let log = e.path("etc/from-config.log");
    let text = std::fs::read_to_string(&log).expect("the [audit] log was not written");
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "record")
        .collect();
    assert_eq!(ops(&records), ["generate", "encrypt"], "{text}");
    assert!(
        text.contains("cfg-job"),
        "identity from [audit] missing: {text}"
    );
    let run = e.plain([
        "audit",
        "verify",
        &log.display().to_string(),
        "--public-key",
        &e.public_key.display().to_string(),
    ]);
    assert!(run.success(), "{}", run.describe());

    // The environment overrides the file field by field: HYOK_AUDIT_LOG moves the log,
    // the key still comes from the file.
    let run = hyok_in(
        e.dir.path(),
        &[
            ("HYOK_CONFIG", cfg.as_os_str()),
            ("HYOK_AUDIT_LOG", e.log.as_os_str()),
        ],
        ["decrypt", "c.enc", "-o", "c.out", "-k", &e.aes],
    );
    assert!(run.success(), "{}", run.describe());
    assert_eq!(ops(&e.records()), ["unwrap", "decrypt"]);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        text,
        "the overridden log was written to"
    );

    // A broken [audit] section is a configuration error (exit 2) before anything is done.
    std::fs::write(&cfg, "[audit]\ncheckpoint_every = 0\n").unwrap();
    let run = hyok_in(
        e.dir.path(),
        &with_cfg,
        ["encrypt", "c.bin", "-o", "c2.enc", "-k", &e.aes],
    );
    assert_eq!(run.code, Some(2), "{}", run.describe());
    assert!(!e.path("c2.enc").exists());
}

/// `prev` of every record from line `from` on points at the record line before it again
/// (what someone who edits a record must do to keep the SHA-256 chain intact).
fn rechain(lines: &mut [Vec<u8>], from: usize) {
    let mut last: Option<[u8; 32]> = None;
    for (i, line) in lines.iter_mut().enumerate() {
        if !line.starts_with(br#"{"type":"record""#) {
            continue;
        }
        if i >= from {
            let v: Value = serde_json::from_slice(line).unwrap();
            let old = format!("\"prev\":\"{}\"", v["prev"].as_str().unwrap());
            let new = format!("\"prev\":\"{}\"", hex::encode(last.unwrap()));
            let text = String::from_utf8(line.clone()).unwrap();
            *line = text.replace(&old, &new).into_bytes();
        }
        last = Some(hyok::audit::merkle::leaf_hash(line));
    }
}

/// Acceptance (issue 16): a record edited after the last checkpoint with the chain redone,
/// a deleted final checkpoint and a cut back to an earlier checkpoint each make `audit
/// verify` exit 1 (the cut with `--trusted-checkpoint`), and the next writer refuses to
/// sign over the edited tail.
#[test]
fn verify_fails_on_records_no_checkpoint_covers_and_writers_refuse_them() {
    let e = env();
    for i in 0..3 {
        assert!(e.encrypt(&format!("t{i}.bin"), &[&e.aes]).success());
    }
    let original = e.lines();
    let is_cp = |l: &Vec<u8>| l.starts_with(br#"{"type":"checkpoint""#);
    assert!(is_cp(original.last().unwrap()));

    // The final checkpoint deleted.
    let mut cut = original.clone();
    cut.pop();
    e.write_lines(&cut);
    let run = e.verify(&[]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    check_error_stderr(&run.stderr).unwrap();
    assert!(run.stderr.contains("unsigned tail"), "{}", run.stderr);
    let run = e.verify(&["--allow-unsigned-tail"]);
    assert!(run.success(), "{}", run.describe());
    assert!(
        run.stdout_text().contains("warning: the last"),
        "{}",
        run.stdout_text()
    );

    // A record after the (now) last checkpoint edited, the chain redone after it.
    let mut edited = cut.clone();
    let first_tail = edited.iter().rposition(is_cp).unwrap() + 1;
    assert!(first_tail < edited.len());
    let text = String::from_utf8(edited[first_tail].clone()).unwrap();
    assert!(text.contains("t2.bin"), "{text}");
    edited[first_tail] = text.replace("t2.bin", "t9.bin").into_bytes();
    rechain(&mut edited, first_tail + 1);
    e.write_lines(&edited);
    let run = e.verify(&["--allow-unsigned-tail"]);
    assert!(run.success(), "the chain is intact: {}", run.describe());
    let run = e.verify(&[]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(run.stderr.contains("unsigned tail"), "{}", run.stderr);
    // The next writer refuses to sign over it: the command fails, the log is unchanged.
    let before = std::fs::read(&e.log).unwrap();
    let run = e.encrypt("t3.bin", &[&e.aes]);
    assert!(!run.success(), "{}", run.describe());
    check_error_stderr(&run.stderr).unwrap();
    assert!(run.stderr.contains("refusing to append"), "{}", run.stderr);
    assert_eq!(std::fs::read(&e.log).unwrap(), before);
    assert!(!e.path("t3.bin.enc").exists());

    // A cut back to an earlier checkpoint: valid on its own, not against a trusted one.
    e.write_lines(&original);
    let run = e.logged(["audit", "checkpoint", "-o", "trusted.json"]);
    assert!(run.success(), "{}", run.describe());
    let first_cp = original.iter().position(is_cp).unwrap();
    e.write_lines(&original[..=first_cp]);
    assert!(e.verify(&[]).success());
    let trusted = e.path("trusted.json").display().to_string();
    let run = e.verify(&["--trusted-checkpoint", &trusted]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    check_error_stderr(&run.stderr).unwrap();
    assert!(run.stderr.contains("cut below it"), "{}", run.stderr);
}

/// Acceptance (issue 16): with `padding=pkcs1`, an EDK whose padding does not check and one
/// with good padding around the wrong data key fail with byte-identical errors and the
/// same audit records (implicit rejection: no padding oracle).
#[test]
fn pkcs1_bad_padding_and_wrong_key_fail_identically() {
    let e = env();
    let d = e.dir.path();
    let public = raw_rsa_uri(
        "audit-escrow",
        "rsa-key",
        Some(&d.join("escrow.pub.pem")),
        None,
        "pkcs1",
    );
    let private = raw_rsa_uri(
        "audit-escrow",
        "rsa-key",
        None,
        Some(&d.join("escrow.pem")),
        "pkcs1",
    );
    assert!(e.encrypt("p.bin", &[&public]).success());
    let good = std::fs::read(e.path("p.bin.enc")).unwrap();
    assert!(e.encrypt("q.bin", &[&public]).success());
    let other = std::fs::read(e.path("q.bin.enc")).unwrap();
    let run = e.decrypt("p.bin", &private, &["-c", "case=4711"]);
    assert!(run.success(), "{}", run.describe());

    let ct = common::message_edks(&good)[0].ciphertext.clone();
    let at = good.windows(ct.len()).position(|w| w == ct).unwrap();
    // Good padding, wrong data key: q's EDK in p's header.
    let mut wrong_key = good.clone();
    wrong_key[at..at + ct.len()].copy_from_slice(&common::message_edks(&other)[0].ciphertext);
    // Bad padding: bytes below the modulus that do not decrypt to a PKCS#1 block.
    let mut bad_padding = good.clone();
    let mut noise = pseudo_random(ct.len(), 16);
    noise[0] = 0;
    bad_padding[at..at + ct.len()].copy_from_slice(&noise);

    let mut outputs = Vec::new();
    for (what, msg) in [("wrong key", &wrong_key), ("bad padding", &bad_padding)] {
        std::fs::write(e.path("x.enc"), msg).unwrap();
        let before = e.records().len();
        let run = e.decrypt("x", &private, &["-c", "case=4711", "--force"]);
        assert_eq!(run.code, Some(1), "{what}: {}", run.describe());
        check_error_stderr(&run.stderr).unwrap();
        assert!(!e.path("x.out").exists(), "{what}");
        let recs: Vec<(String, String, String)> = e.records()[before..]
            .iter()
            .map(|r| {
                (
                    r["op"].to_string(),
                    r["outcome"].to_string(),
                    r["error"].to_string(),
                )
            })
            .collect();
        outputs.push((run.stderr.clone(), run.stdout.clone(), recs));
    }
    assert_eq!(outputs[0], outputs[1]);
    // Both look like a key that unwrapped and then failed the commitment check.
    assert_eq!(
        outputs[0]
            .2
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>(),
        ["\"unwrap\"", "\"decrypt\""]
    );
}

/// Acceptance (issue 16): no PIN, token or password in any `--key` form, accepted or
/// refused, reaches the audit log.
#[test]
fn no_secret_in_any_key_form_reaches_the_log() {
    let e = env();
    let (pin, token, password) = ("493817", "s.TOPSECRETTOKEN", "Hunter2Pass");
    let key_file = e.path("aes.key").display().to_string();
    let forms = [
        format!("pkcs11:token=t;object=k?pin-value={pin}"),
        format!("pkcs11:token=t;object=k;pin-value={pin}"),
        format!("pkcs11:token=t;object=k?pin%2Dvalue={pin}"),
        format!("pkcs11:token=t;object=k;pin-value%3D{pin}"),
        format!("vault-transit:k?addr=https://u:{password}@127.0.0.1:1"),
        format!("vault-transit:k?addr=https%3A%2F%2Fu%3A{password}%40127.0.0.1%3A1"),
        format!("vault-transit:k?token={token}"),
        format!("vault-transit:k?x-vault-token={token}"),
        format!("kmip://alice:{password}@127.0.0.1:1/key"),
        format!("kmip://{token}@127.0.0.1:1/key"),
        format!("raw-aes:audit-test/aes-key?file={key_file}&password={password}"),
        format!("raw-aes:audit-test/aes-key?file={key_file}#{password}"),
        format!("pin-value={pin}"),
    ];
    for form in &forms {
        let run = e.encrypt("r.bin", &[form]);
        assert!(!run.success(), "{form}: {}", run.describe());
        // Refused, or (the last form, a plain file name) a key file made: either way
        // recorded.
        e.logged(["key", "new", "aes-256", "-o", form.as_str()]);
    }
    // An accepted key next to them, so the log holds key uses too.
    assert!(e.encrypt("r.bin", &[&e.aes]).success());
    let log = std::fs::read_to_string(&e.log).unwrap();
    assert!(e.records().len() > forms.len(), "{log}");
    for secret in [pin, token, password] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    assert!(e.verify(&[]).success());
}
