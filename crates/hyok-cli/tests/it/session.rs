//! Issue 9: every command starts from one session (same key and cache flags everywhere),
//! errors are one line with a typed exit status and hint, untrusted text is escaped, and
//! the rough edges a new user met are gone. Each case asserts the exit code and the exact
//! first line of stderr.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{check_error_stderr, hyok, hyok_env, hyok_stdin, raw_aes_uri, Run};

/// A temporary folder with a raw AES key, its URI and a configuration naming it.
struct Setup {
    dir: tempfile::TempDir,
    key: String,
    config: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("k.key");
        fs::write(&key_file, [0x42u8; 32]).unwrap();
        let key = raw_aes_uri("issue9", "key-1", &key_file);
        let store = dir.path().join("store");
        fs::create_dir(&store).unwrap();
        let config = dir.path().join("hyok.toml");
        fs::write(
            &config,
            format!(
                "[keyrings.team]\nkeys = [{key:?}]\n\n[stores.local]\nurl = \"file://{}/\"\n",
                store.display()
            ),
        )
        .unwrap();
        Self { dir, key, config }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        fs::write(self.dir.path().join(name), bytes).unwrap();
        self.path(name)
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        hyok(all)
    }
}

fn first_line(r: &Run) -> &str {
    r.stderr.lines().next().unwrap_or("")
}

fn second_line(r: &Run) -> &str {
    r.stderr.lines().nth(1).unwrap_or("")
}

/// Exit code and exact first line, and the one-line error convention.
fn expect(r: &Run, code: i32, line: &str) {
    assert_eq!(r.code, Some(code), "{}", r.describe());
    assert_eq!(first_line(r), line, "{}", r.describe());
    check_error_stderr(&r.stderr).unwrap();
}

/// The help text of each key and cache flag, as `hyok CMD --help` prints it (the flag's
/// line and its continuation lines).
fn flag_help(cmd: &[&str], flag: &str) -> String {
    let mut args = cmd.to_vec();
    args.push("--help");
    let run = hyok(args);
    assert!(run.success(), "{cmd:?} --help: {}", run.describe());
    let text = run.stdout_text();
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with(flag) && t[flag.len()..].starts_with([' ', '\0', '=']) || t == flag {
            inside = true;
            out.push(t.to_owned());
            continue;
        }
        if inside {
            if t.starts_with('-') || t.is_empty() || !line.starts_with("  ") {
                break;
            }
            out.push(t.to_owned());
        }
    }
    out.join(" ")
}

#[test]
fn every_command_that_takes_keys_has_the_same_key_and_cache_flags() {
    let commands: [&[&str]; 4] = [&["encrypt"], &["decrypt"], &["cp"], &["cat"]];
    let flags = [
        "-k, --key <URI>",
        "--keyring <NAME>",
        "--cache",
        "--cache-max-age <DURATION>",
        "--cache-max-messages <N>",
        "--cache-max-bytes <BYTES>",
        "--cache-max-entries <N>",
    ];
    for flag in flags {
        let reference = flag_help(commands[0], flag);
        assert!(!reference.is_empty(), "encrypt --help has no {flag}");
        for cmd in &commands[1..] {
            assert_eq!(
                flag_help(cmd, flag),
                reference,
                "{flag} differs between encrypt and {cmd:?}"
            );
        }
    }
    // The --key help is the registry's own text (a scheme added to the registry appears
    // here with no other change: crates/hyok/tests/registry.rs adds one).
    let key = flag_help(&["encrypt"], "-k, --key <URI>");
    let registry = hyok::keys::Registry::builtin().help();
    assert!(
        key.contains(&registry),
        "--key help is not the registry's: {key}"
    );
    for scheme in [
        "raw-aes:",
        "raw-rsa:",
        "pkcs11:",
        "vault-transit:",
        "kmip://",
    ] {
        assert!(key.contains(scheme), "--key help lacks {scheme}: {key}");
    }
}

#[test]
fn a_server_that_is_not_installed_is_one_line_with_a_hint() {
    // `hyok gateway` and `hyok xks` run the server programs found next to hyok or on PATH:
    // a lone hyok (hard-linked into an empty folder, PATH empty) finds neither.
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("hyok");
    if fs::hard_link(crate::common::bin(), &lone).is_err() {
        fs::copy(crate::common::bin(), &lone).unwrap();
    }
    for (cmd, program) in [("gateway", "hyok-gateway"), ("xks", "hyok-xks")] {
        let out = std::process::Command::new(&lone)
            .arg(cmd)
            .env("PATH", "")
            .env("HYOK_CONFIG", dir.path().join("absent.toml"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let mut lines = stderr.lines();
        assert_eq!(
            lines.next(),
            Some(
                format!("hyok: error: {program} is not installed (not next to hyok, not on PATH)")
                    .as_str()
            ),
            "{stderr}"
        );
        assert_eq!(
            lines.next(),
            Some(
                format!(
                    "hint: install it beside hyok: cargo install --locked --path crates/{program}"
                )
                .as_str()
            ),
            "{stderr}"
        );
        assert_eq!(lines.next(), None, "{stderr}");
    }
}

#[test]
fn encrypt_and_decrypt_take_a_configured_keyring() {
    let s = Setup::new();
    let plain = s.write("plain", b"keyring round trip");
    let (msg, out) = (s.path("msg"), s.path("out"));
    let r = s.run(&["encrypt", &plain, "-o", &msg, "--keyring", "team"]);
    assert!(r.success(), "encrypt --keyring: {}", r.describe());
    let r = s.run(&["decrypt", &msg, "-o", &out, "--keyring", "team", "--cache"]);
    assert!(r.success(), "decrypt --keyring --cache: {}", r.describe());
    assert_eq!(fs::read(&out).unwrap(), b"keyring round trip");
    let r = s.run(&["encrypt", &plain, "-o", &s.path("x"), "--keyring", "nope"]);
    expect(
        &r,
        2,
        "hyok: error: configuration: no keyring named \"nope\" in the configuration (known: team)",
    );
}

#[test]
fn cp_and_cat_take_the_cache_flags() {
    let s = Setup::new();
    let plain = s.write("plain", b"cached upload");
    let r = s.run(&[
        "cp",
        &plain,
        "local:a.txt",
        "--key",
        &s.key,
        "--cache",
        "--cache-max-age",
        "30s",
    ]);
    assert!(r.success(), "cp --cache: {}", r.describe());
    let out = s.path("back");
    let r = s.run(&["cp", "local:a.txt", &out, "--keyring", "team", "--cache"]);
    assert!(r.success(), "cp download --cache: {}", r.describe());
    assert_eq!(fs::read(&out).unwrap(), b"cached upload");
    let r = s.run(&[
        "cat",
        "local:a.txt",
        "--keyring",
        "team",
        "--cache-max-entries",
        "4",
        "--cache",
    ]);
    assert!(r.success(), "cat --cache: {}", r.describe());
    assert_eq!(r.stdout, b"cached upload");
}

#[test]
fn clap_usage_errors_are_one_line_with_a_hint() {
    let r = hyok(["encrypt", "--no-such-flag"]);
    expect(
        &r,
        2,
        "hyok: error: unexpected argument '--no-such-flag' found",
    );
    assert!(second_line(&r).starts_with("hint: "), "{}", r.describe());
    let r = hyok(["frobnicate"]);
    expect(&r, 2, "hyok: error: unrecognized subcommand 'frobnicate'");
    let r = hyok(["encrypt", "--suite", "fast"]);
    expect(
        &r,
        2,
        "hyok: error: invalid value 'fast' for '--suite <SUITE>'",
    );
}

#[test]
fn a_missing_command_is_a_one_line_usage_error() {
    let r = hyok(["key"]);
    expect(&r, 2, "hyok: error: a command is required");
    assert_eq!(
        second_line(&r),
        "hint: usage: hyok key [OPTIONS] <COMMAND> (more with --help)"
    );
}

#[test]
fn key_administration_errors_come_from_the_scheme_registry() {
    let r = hyok(["key", "list", "nope:x"]);
    expect(
        &r,
        2,
        "hyok: error: unknown key URI scheme \"nope\" (supported: raw-aes, raw-rsa, pkcs11, vault-transit, kmip, pq-escrow)",
    );
    let r = hyok(["key", "rotate", "raw-aes:ns/k?file=/nonexistent"]);
    expect(
        &r,
        2,
        "hyok: error: raw-aes: keys are local files, not kept in a key store; key management works on pkcs11, vault-transit, kmip",
    );
}

#[test]
fn a_reserved_context_key_on_encrypt_is_a_usage_error() {
    let s = Setup::new();
    let plain = s.write("plain", b"x");
    let out = s.path("out");
    let r = hyok([
        "encrypt",
        &plain,
        "-o",
        &out,
        "--key",
        &s.key,
        "-c",
        "aws-crypto-x=1",
    ]);
    expect(
        &r,
        2,
        "hyok: error: encryption context key \"aws-crypto-x\" is reserved: keys starting with \"aws-crypto-\" belong to the ESDK",
    );
    assert_eq!(
        second_line(&r),
        "hint: choose another context key; the ESDK adds aws-crypto-* pairs itself"
    );
    assert!(!Path::new(&out).exists());
}

#[test]
fn a_dangling_symlink_as_output_is_an_existing_file() {
    let s = Setup::new();
    let plain = s.write("plain", b"x");
    let link = s.dir.path().join("link");
    std::os::unix::fs::symlink(s.dir.path().join("nowhere"), &link).unwrap();
    let r = hyok([
        "encrypt",
        &plain,
        "-o",
        link.to_str().unwrap(),
        "--key",
        &s.key,
    ]);
    expect(
        &r,
        2,
        &format!(
            "hyok: error: {} already exists (a symbolic link)",
            link.display()
        ),
    );
    assert_eq!(second_line(&r), "hint: pass --force to overwrite it");
}

#[test]
fn ls_of_a_missing_location_fails() {
    let r = hyok(["ls", "/nonexistent/hyok-issue-9"]);
    expect(
        &r,
        1,
        "hyok: error: file:///nonexistent/hyok-issue-9 does not exist",
    );
}

#[test]
fn the_default_store_without_a_configuration_says_run_init() {
    let s = Setup::new();
    let plain = s.write("plain", b"x");
    let r = hyok(["cp", &plain, ":x", "--key", &s.key]);
    expect(
        &r,
        2,
        "hyok: error: \":x\" refers to the default store, but there is no configuration file",
    );
    assert!(
        second_line(&r).starts_with("hint: run `hyok init`"),
        "{}",
        r.describe()
    );
}

#[test]
fn an_extra_context_pair_on_decrypt_is_named() {
    let s = Setup::new();
    let plain = s.write("plain", b"x");
    let msg = s.path("msg");
    let r = hyok(["encrypt", &plain, "-o", &msg, "--key", &s.key, "-c", "a=1"]);
    assert!(r.success(), "{}", r.describe());
    let out = s.path("out");
    let r = hyok([
        "decrypt", &msg, "-o", &out, "--key", &s.key, "-c", "a=1", "-c", "z=1",
    ]);
    expect(
        &r,
        1,
        &format!(
            "hyok: error: the message's encryption context has no \"z\"; decrypting with it as required context failed (raw-aes:issue9/key-1?file={}: unwrapping the data key failed (wrong encryption context, tampered data key, or a different key with this name))",
            s.dir.path().join("k.key").display()
        ),
    );
    assert!(
        second_line(&r).contains("drop the -c pairs"),
        "{}",
        r.describe()
    );
    assert!(!Path::new(&out).exists());
}

#[test]
fn random_input_is_not_an_esdk_message() {
    let s = Setup::new();
    let r = hyok_stdin(
        ["decrypt", "--key", &s.key],
        b"hello, this is not a message",
    );
    expect(
        &r,
        1,
        "hyok: error: unsupported message format version 0x68",
    );
    assert_eq!(
        second_line(&r),
        "hint: this input is not an AWS Encryption SDK message (hyok messages start with byte 0x02)"
    );
}

#[test]
fn one_encrypted_data_key_is_singular() {
    let s = Setup::new();
    let plain = s.write("plain", b"x");
    let msg = s.path("msg");
    assert!(hyok(["encrypt", &plain, "-o", &msg, "--key", &s.key]).success());
    let r = hyok(["decrypt", &msg, "--key", &s.key, "--max-edks", "0"]);
    expect(
        &r,
        1,
        "hyok: error: message has 1 encrypted data key, more than the allowed maximum of 0",
    );
}

#[test]
fn an_audit_log_that_cannot_open_names_the_os_error_once() {
    let s = Setup::new();
    let signer = s.path("audit");
    let r = hyok(["key", "new", "ec-p256", "-o", &signer]);
    assert!(r.success(), "{}", r.describe());
    let plain = s.write("plain", b"x");
    let log = "/nonexistent/hyok-issue-9/audit.log";
    let pem = format!("{signer}.pem");
    let r = hyok_env(
        &["encrypt", &plain, "-o", &s.path("msg"), "--key", &s.key],
        &[("HYOK_AUDIT_LOG", log), ("HYOK_AUDIT_KEY", &pem)],
        &[],
        None,
        std::time::Duration::from_secs(60),
    );
    expect(
        &r,
        1,
        &format!("hyok: error: opening {log}: No such file or directory (os error 2)"),
    );
}

#[test]
fn key_new_refuses_dash_as_output() {
    let s = Setup::new();
    let r = hyok(["key", "new", "aes-256", "-o", "-"]);
    expect(
        &r,
        2,
        "hyok: error: key new writes key files: `-o -` (stdout) is not a key file",
    );
    assert!(!s.dir.path().join("-").exists() && !Path::new("-").exists());
}

#[test]
fn secrets_in_key_uris_are_never_echoed() {
    let s = Setup::new();
    let plain = s.write("plain", b"x");
    let r = hyok([
        "encrypt",
        &plain,
        "-o",
        &s.path("m1"),
        "--key",
        "kmip://user:S3CRET-PASSWORD@127.0.0.1:5696/k",
    ]);
    expect(
        &r,
        2,
        "hyok: error: kmip: the address has a user part (USER:PASSWORD@), which is not shown; KMIP clients authenticate with a certificate (cert=, key= or HYOK_KMIP_CERT/KEY), never a password in the URI",
    );
    assert!(!r.stderr.contains("S3CRET"), "{}", r.describe());
    let r = hyok_env(
        &[
            "encrypt",
            &plain,
            "-o",
            &s.path("m2"),
            "--key",
            "pkcs11:token=t;object=k?pin-source=271828&module-path=/nonexistent/libsofthsm2.so",
        ],
        &[],
        &["HYOK_PKCS11_MODULE", "HYOK_PKCS11_PIN"],
        None,
        std::time::Duration::from_secs(60),
    );
    assert!(!r.success(), "{}", r.describe());
    assert!(!r.stderr.contains("271828"), "{}", r.describe());
    assert!(!r.stdout_text().contains("271828"));
    check_error_stderr(&r.stderr).unwrap();
}

#[test]
fn decrypt_help_says_what_holds_for_files_and_stdout() {
    // Help text wraps: compare with the whitespace collapsed.
    let flat = |r: Run| {
        r.stdout_text()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let text = flat(hyok(["decrypt", "--help"]));
    assert!(
        text.contains("An output file appears only after the whole message verified"),
        "{text}"
    );
    assert!(
        text.contains("a reader has seen a prefix of the real plaintext"),
        "{text}"
    );
    let top = flat(hyok(["--help"]));
    assert!(
        !top.contains("output appears only after the whole message verified"),
        "{top}"
    );
}

/// A file name that is not UTF-8: no object key can hold it.
fn bad_name() -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    std::ffi::OsString::from_vec(b"bad-\xff-name".to_vec())
}

#[test]
fn one_unrepresentable_name_fails_alone() {
    let s = Setup::new();
    let src = s.dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("good.txt"), b"good").unwrap();
    fs::write(src.join(bad_name()), b"bad").unwrap();
    let r = s.run(&[
        "cp",
        "-r",
        src.to_str().unwrap(),
        "local:up/",
        "--key",
        &s.key,
        "-q",
    ]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert!(
        r.stderr.starts_with("hyok: uploaded 1 object(s)"),
        "{}",
        r.describe()
    );
    let last = r
        .stderr
        .lines()
        .find(|l| l.starts_with("hyok: error:"))
        .unwrap_or("");
    assert_eq!(
        last,
        format!(
            "hyok: error: 1 of 2 object(s) failed; {}/bad-\\xff-name: the file name is not UTF-8: no object key can hold it",
            src.display()
        ),
        "{}",
        r.describe()
    );
    assert!(s.store().join("up/good.txt").exists());

    // A store folder holding such a name: ls lists the rest and fails at the end.
    fs::write(s.store().join("up").join(bad_name()), b"junk").unwrap();
    let r = s.run(&["ls", "local:up/"]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert!(r.stdout_text().contains("good.txt"), "{}", r.describe());
    let err = r
        .stderr
        .lines()
        .find(|l| l.starts_with("hyok: error:"))
        .unwrap_or("");
    // The store's own words follow the location; the bad name is shown escaped by it.
    let up = format!("{}/up", s.store().display());
    assert_eq!(
        err,
        format!(
            "hyok: error: 1 object(s) under file://{up}/ could not be listed: list file://{up}/: \
             Generic LocalFileSystem error: {up}/bad-%FF-name: the name is not UTF-8: no object \
             key can hold it"
        ),
        "{}",
        r.describe()
    );
    // A local folder's hint says nothing of S3 credentials.
    let hint = r.stderr.lines().skip_while(|l| *l != err).nth(1);
    assert_eq!(
        hint,
        Some("hint: check that the folder exists and that this user can read and write it"),
        "{}",
        r.describe()
    );
}

const HOSTILE: &str = "a\u{1b}]0;pwned\u{7}b\rforged\nline\u{202e}txt";
const HOSTILE_SHOWN: &str = "a\\x1b]0;pwned\\x07b\\rforged\\nline\\u{202e}txt";

/// A message whose context holds ESC, BEL, CR, LF and U+202E, and whose EDK key name holds
/// invalid UTF-8 and control bytes (patched into the header: `inspect` reads it unverified).
fn hostile_message(s: &Setup) -> Vec<u8> {
    let plain = s.write("plain", b"x");
    let key_file = s.dir.path().join("h.key");
    fs::write(&key_file, [7u8; 32]).unwrap();
    let key = raw_aes_uri("ns", "KEYNAME_", &key_file);
    let msg = s.path("hostile.enc");
    let ctx = format!("v={HOSTILE}");
    let r = hyok(["encrypt", &plain, "-o", &msg, "--key", &key, "-c", &ctx]);
    assert!(r.success(), "{}", r.describe());
    let mut bytes = fs::read(&msg).unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == b"KEYNAME_")
        .expect("key name in the header");
    bytes[at..at + 8].copy_from_slice(b"K\xff\x1b[2J\x07\n");
    bytes
}

#[test]
fn inspect_escapes_untrusted_text_and_json_keeps_it_exact() {
    let s = Setup::new();
    let msg = hostile_message(&s);
    let r = hyok_stdin(["inspect"], &msg);
    assert!(r.success(), "{}", r.describe());
    let text = r.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.contains(&format!("  v = {HOSTILE_SHOWN}").as_str()),
        "{text}"
    );
    assert!(
        lines.contains(&"  provider \"ns\", key \"K\\xff\\x1b[2J\\x07\\n\" (48 bytes)"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{202e}'));

    let r = hyok_stdin(["inspect", "--json"], &msg);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["encryption_context"]["v"], HOSTILE);
    assert_eq!(
        v["encrypted_data_keys"][0]["key_name"],
        format!("0x{}", hex::encode(b"K\xff\x1b[2J\x07\n"))
    );
}

#[test]
fn ls_long_and_errors_escape_untrusted_text() {
    let s = Setup::new();
    let msg = hostile_message(&s);
    fs::write(s.store().join("hostile.enc"), &msg).unwrap();
    let r = s.run(&["ls", "-l", "local:"]);
    assert!(r.success(), "{}", r.describe());
    let text = r.stdout_text();
    assert!(
        text.lines()
            .any(|l| l == format!("    context: v={HOSTILE_SHOWN}")),
        "{text}"
    );
    assert!(!text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{202e}'));

    // "encrypted for …": the EDK names in an error are escaped too.
    let r = hyok_stdin(["decrypt", "--key", &s.key], &msg);
    expect(
        &r,
        1,
        &format!(
            "hyok: error: no configured key can decrypt this message: it was encrypted for ns/K\\xff\\x1b[2J\\x07\\n; configured: {}",
            "issue9/key-1"
        ),
    );
}
