//! The `hyok-gateway` program itself: it starts from a configuration, answers on its port,
//! refuses a configuration without a `[gateway]` section in one line, and stops cleanly on
//! SIGTERM. (The S3 behaviour with real clients is tested through `hyok gateway` in the CLI's
//! suite, which runs this program.) Being an integration test of this package, it also makes
//! `cargo test --workspace` build the program the CLI's tests execute.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn program() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hyok-gateway"));
    for v in [
        "RUST_LOG",
        "HYOK_LOG",
        "HYOK_CONFIG",
        "HYOK_AUDIT_LOG",
        "HYOK_AUDIT_KEY",
    ] {
        cmd.env_remove(v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn private_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn config(dir: &Path, gateway: bool) -> std::path::PathBuf {
    let key: Vec<u8> = (0u8..32)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    private_file(&dir.join("gw.key"), &key);
    private_file(
        &dir.join("gw.secret"),
        b"programtestsecretprogramtestsecret12\n",
    );
    std::fs::create_dir(dir.join("data")).unwrap();
    let mut text = format!(
        "[keyrings.default]\nkeys = [\"raw-aes:hyok-gateway/program?file={}\"]\n",
        dir.join("gw.key").display()
    );
    if gateway {
        text.push_str(&format!(
            "\n[gateway]\nlisten = \"127.0.0.1:0\"\nbackend = \"file://{}/\"\n\n\
             [[gateway.credentials]]\naccess_key_id = \"HYOKPROGRAMTEST01\"\n\
             secret_access_key_file = \"gw.secret\"\nkeyring = \"default\"\nbuckets = [\"*\"]\n",
            dir.join("data").display()
        ));
    }
    let path = dir.join("hyok.toml");
    private_file(&path, text.as_bytes());
    path
}

#[test]
fn help_names_the_program_and_its_flags() {
    let out = program().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[gateway]"), "{text}");
    assert!(
        text.contains("--config") && text.contains("--listen"),
        "{text}"
    );
}

#[test]
fn a_configuration_without_a_gateway_section_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), false);
    let out = program()
        .arg("--config")
        .arg(&cfg)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "started without [gateway]");
    let err = String::from_utf8(out.stderr).unwrap();
    // One error line, then at most one hint.
    let lines: Vec<&str> = err.lines().collect();
    assert!(matches!(lines.len(), 1 | 2), "{err}");
    assert!(lines[0].starts_with("hyok: error: "), "{err}");
    assert!(lines[0].contains("[gateway]"), "{err}");
    if let Some(hint) = lines.get(1) {
        assert!(hint.starts_with("hint: "), "{err}");
    }
}

#[test]
fn starts_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), true);
    let mut child = program()
        .arg("--config")
        .arg(&cfg)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let url = loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => {
                if let Some(u) = l.strip_prefix("hyok gateway: listening on http://") {
                    break u.to_owned();
                }
            }
            Err(e) => {
                let _ = child.kill();
                panic!("hyok-gateway did not start: {e}");
            }
        }
    };

    // An unsigned request is an S3 error document, not a dropped connection.
    let mut s = TcpStream::connect(&url).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /bucket/key HTTP/1.1\r\nHost: {url}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("<Code>AccessDenied</Code>"), "{answer}");

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("hyok-gateway did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit after SIGTERM: {status}");
}
