//! `hyok xks`, the process: started from a configuration file, driven with
//! `curl --aws-sigv4`, stopped with SIGTERM. A ciphertext made by one proxy process on a
//! SoftHSM key decrypts through a second process running at the same time on the same
//! token, and through a third started after the first stopped. Needs SoftHSM (skips loudly
//! without it unless `HYOK_REQUIRE_SERVICES=1`) and curl 7.75 or later.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serial_test::serial;

use crate::common::{bin, hermetic};
use crate::pkcs11::{key_new, token, unique, Cleanup};

const AKID: &str = "AKIAXKSCLITESTKEY234567";
const SECRET: &str = "N9p8s7T6u5q8Yb2c3hW0u6kq0m3Qy5R6sVd7Xh1Zr4k=";

fn private_file(path: &Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A running `hyok xks` and the URL it printed.
struct Proxy {
    child: Child,
    url: String,
    /// Its stderr, read to the end when it stops.
    stderr: BufReader<std::process::ChildStderr>,
}

impl Proxy {
    fn start(config: &Path) -> Self {
        let mut cmd = Command::new(bin());
        cmd.arg("--config")
            .arg(config)
            .args(["xks", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        hermetic(&mut cmd);
        let mut child = cmd.spawn().expect("start hyok xks");
        let mut line = String::new();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        stderr.read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("hyok xks said {line:?}"))
            .to_owned();
        Self { child, url, stderr }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.stderr, &mut rest);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "hyok xks exited with {status}: {rest}");
        assert!(rest.contains("hyok xks: stopped"), "{rest}");
    }
}

fn curl(dir: &Path, url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let cfg = dir.join("curl.cfg");
    private_file(&cfg, &format!("user = \"{AKID}:{SECRET}\"\n"));
    let out = Command::new("curl")
        .args(["-s", "-K"])
        .arg(&cfg)
        .args([
            "--aws-sigv4",
            "aws:amz:us-east-1:kms-xks-proxy",
            "-X",
            "POST",
            "-H",
            "Content-Type:application/json",
            "--data",
            &body.to_string(),
            "-w",
            "\n%{http_code}",
            url,
        ])
        .output()
        .expect("curl is needed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (json, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(json).unwrap_or(serde_json::json!({ "raw": json })),
    )
}

#[test]
#[serial]
fn pkcs11_ciphertext_survives_restarts_and_second_process() {
    let Some(token) = token("xks_second_process") else {
        return;
    };
    let label = unique("xks");
    let uri = key_new(&token, "aes-256", &label);
    let _cleanup = Cleanup(uri.clone());
    let dir = tempfile::tempdir().unwrap();
    private_file(&dir.path().join("xks.secret"), SECRET);
    let config = dir.path().join("hyok.toml");
    private_file(
        &config,
        &format!(
            "[xks]\nlisten = \"127.0.0.1:8443\"\n\n[xks.stores.main]\nuri_prefix = \"p\"\n\
             region = \"us-east-1\"\ncredentials = [ {{ access_key_id = \"{AKID}\", \
             secret_access_key_file = \"xks.secret\" }} ]\n\n[xks.stores.main.keys]\n\
             hsm = {{ uri = \"{uri}\" }}\n"
        ),
    );
    let meta = |op: &str| {
        serde_json::json!({
            "awsPrincipalArn": "arn:aws:iam::123456789012:user/Alice",
            "kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k",
            "kmsOperation": op,
            "kmsRequestId": "4112f4d6-db54-4af4-ae30-c55a22a8dfae"
        })
    };
    let first = Proxy::start(&config);
    let (st, enc) = curl(
        dir.path(),
        &format!("{}/p/kms/xks/v1/keys/hsm/encrypt", first.url),
        &serde_json::json!({
            "requestMetadata": meta("GenerateDataKey"),
            "plaintext": "SGVsbG8gV29ybGQh",
            "encryptionAlgorithm": "AES_GCM",
            "additionalAuthenticatedData": "cHJvamVjdD1uaWxl",
            "ciphertextDataIntegrityValueAlgorithm": "SHA_256"
        }),
    );
    assert_eq!(st, 200, "{enc}");
    let decrypt = serde_json::json!({
        "requestMetadata": meta("Decrypt"),
        "ciphertext": enc["ciphertext"],
        "encryptionAlgorithm": "AES_GCM",
        "additionalAuthenticatedData": "cHJvamVjdD1uaWxl",
        "initializationVector": enc["initializationVector"],
        "authenticationTag": enc["authenticationTag"]
    });
    // A second process on the same token while the first runs.
    let second = Proxy::start(&config);
    let (st, dec) = curl(
        dir.path(),
        &format!("{}/p/kms/xks/v1/keys/hsm/decrypt", second.url),
        &decrypt,
    );
    assert_eq!(
        (st, dec["plaintext"].as_str()),
        (200, Some("SGVsbG8gV29ybGQh")),
        "{dec}"
    );
    first.stop();
    second.stop();
    // A third after both stopped.
    let third = Proxy::start(&config);
    let (st, dec) = curl(
        dir.path(),
        &format!("{}/p/kms/xks/v1/keys/hsm/decrypt", third.url),
        &decrypt,
    );
    assert_eq!(
        (st, dec["plaintext"].as_str()),
        (200, Some("SGVsbG8gV29ybGQh")),
        "{dec}"
    );
    let (st, h) = curl(
        dir.path(),
        &format!("{}/p/kms/xks/v1/health", third.url),
        &serde_json::json!({"requestMetadata": {"kmsRequestId": "h", "kmsOperation": "KmsHealthCheck"}}),
    );
    assert_eq!(
        (st, h["ekmFleetDetails"][0]["healthStatus"].as_str()),
        (200, Some("ACTIVE")),
        "{h}"
    );
    third.stop();
}
