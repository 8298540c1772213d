//! `hyok gateway` against real S3 clients on 127.0.0.1: the aws cli and boto3 (Python, from
//! the venv of `scripts/setup-python.sh`, found through `HYOK_ESDK_PYTHON`), rclone (Debian
//! package), curl for `/health` and `/metrics`. The client steps are in
//! `tests/gateway_clients.py`; this file starts the gateway from a real configuration, runs
//! them, then checks the backend: every stored object decrypts with `hyok decrypt` using the
//! keyring's key, no stored byte string contains the plaintext marker, and the audit log
//! names the credential of every key use. Backends: a local folder, and s3s-fs
//! (`scripts/services/s3.sh`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{self, bin, hermetic, par_map, pseudo_random, raw_aes_uri, skip};

const MARKER: &str = "hyok-gateway-test-marker: this plaintext must never reach the backend";

fn required() -> bool {
    std::env::var("HYOK_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The venv Python, when it has boto3 and the aws cli.
fn python(test: &str) -> Option<PathBuf> {
    let py = std::env::var_os("HYOK_ESDK_PYTHON").map(PathBuf::from);
    let usable = py.as_ref().is_some_and(|p| {
        Command::new(p)
            .args(["-c", "import boto3, awscli"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if usable {
        py
    } else {
        skip(
            test,
            "HYOK_ESDK_PYTHON is unset or lacks boto3/awscli (run scripts/setup-python.sh)",
        );
        None
    }
}

/// A client program of the tests, from a Debian package: its name when `program ARG` runs,
/// else `None` (a panic when HYOK_REQUIRE_SERVICES=1); `extra` must also hold (the
/// packages a program needs besides its binary).
fn debian_tool(program: &str, arg: &str, packages: &str, extra: bool) -> Option<String> {
    let found = extra
        && Command::new(program)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !found && required() {
        panic!(
            "{program} is not installed (apt-get install {packages}), and HYOK_REQUIRE_SERVICES=1"
        );
    }
    found.then(|| program.to_owned())
}

fn rclone() -> Option<String> {
    debian_tool("rclone", "version", "rclone", true)
}

fn s3cmd() -> Option<String> {
    debian_tool("s3cmd", "--version", "s3cmd", true)
}

fn s3fs() -> Option<String> {
    debian_tool("s3fs", "--version", "s3fs", true)
}

/// Debian's AWS SDK for Go v2 (`golang-github-aws-aws-sdk-go-v2-dev`, in GOPATH layout).
const GO_SDK_PATH: &str = "/usr/share/gocode";

/// The `go` binary, when it and Debian's AWS SDK for Go v2 are installed.
fn go_sdk() -> Option<String> {
    let sdk = Path::new(GO_SDK_PATH)
        .join("src/github.com/aws/aws-sdk-go-v2/feature/s3/manager")
        .is_dir();
    debian_tool(
        "go",
        "version",
        "golang-go golang-github-aws-aws-sdk-go-v2-dev",
        sdk,
    )
}

/// The AWS SDK for JavaScript v3 of scripts/setup-js.sh (`HYOK_JS_SDK`, which scripts/test.sh
/// sets): its folder, when it is installed and `node` runs it. A node older than the SDK's
/// minimum (20; Debian 12 ships 18) is not a missing service: the client is skipped then.
fn js_sdk() -> Option<String> {
    let dir = std::env::var("HYOK_JS_SDK").ok().filter(|d| !d.is_empty());
    let installed = dir.as_ref().is_some_and(|d| {
        Path::new(d)
            .join("node_modules/@aws-sdk/client-s3/package.json")
            .is_file()
    });
    let node_major = Command::new("node")
        .args(["-p", "process.versions.node.split('.')[0]"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u32>()
                .ok()
        });
    match node_major {
        Some(m) if m >= 20 && installed => dir,
        Some(m) if m < 20 => None,
        _ if required() => panic!(
            "the AWS SDK for JavaScript v3 is not installed (scripts/setup-js.sh; HYOK_JS_SDK), and HYOK_REQUIRE_SERVICES=1"
        ),
        _ => None,
    }
}

/// A running `hyok gateway` with its configuration, keys and backend.
struct Gateway {
    child: Child,
    endpoint: String,
    dir: Option<tempfile::TempDir>,
    key_uri: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

const KEY_ALL: &str = "HYOKGATEWAY0001";
const SECRET_ALL: &str = "gateway-test-secret-all-0001";
const KEY_LIMITED: &str = "HYOKGATEWAY0002";
const SECRET_LIMITED: &str = "gateway-test-secret-limited-02";
/// A credential whose keyring holds another key: it reaches every bucket but cannot open
/// what the others wrote.
const KEY_OTHER: &str = "HYOKGATEWAY0003";
const SECRET_OTHER: &str = "gateway-test-secret-other-0003";

impl Gateway {
    fn start(backend: &str) -> Self {
        Self::start_with(backend, "", "")
    }

    /// `gateway` is added to `[gateway]`, `tail` at the end of the configuration.
    fn start_with(backend: &str, gateway: &str, tail: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let key = d.join("gw.key");
        std::fs::write(&key, pseudo_random(32, 12)).unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let key_uri = raw_aes_uri("hyok-gateway", "test-key", &key);
        let other = d.join("other.key");
        std::fs::write(&other, pseudo_random(32, 13)).unwrap();
        std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let other_uri = raw_aes_uri("hyok-gateway", "other-key", &other);
        for (name, secret) in [
            ("all.secret", SECRET_ALL),
            ("limited.secret", SECRET_LIMITED),
            ("other.secret", SECRET_OTHER),
        ] {
            let p = d.join(name);
            std::fs::write(&p, format!("{secret}\n")).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        }
        let run = common::run_program(
            bin(),
            [
                "key",
                "new",
                "ec-p256",
                "-o",
                &d.join("checkpoint").display().to_string(),
            ],
            None,
        );
        assert!(run.success(), "{}", run.describe());
        let backend = backend.replace("{dir}", &d.display().to_string());
        let audit_key = d.join("checkpoint.pem").display().to_string();
        let config = format!(
            r#"[defaults]
keyring = "default"

[keyrings.default]
keys = [{key_uri:?}]

[keyrings.other]
keys = [{other_uri:?}]

[audit]
log = "audit.log"
key = {audit_key:?}

[gateway]
listen = "127.0.0.1:0"
backend = {backend:?}
{gateway}

[[gateway.credentials]]
access_key_id = "{KEY_ALL}"
secret_access_key_file = "all.secret"
keyring = "default"
buckets = ["*"]

[[gateway.credentials]]
access_key_id = "{KEY_LIMITED}"
secret_access_key_file = "limited.secret"
buckets = ["limited"]

[[gateway.credentials]]
access_key_id = "{KEY_OTHER}"
secret_access_key_file = "other.secret"
keyring = "other"
buckets = ["*"]
{tail}
"#
        );
        let cfg = d.join("hyok.toml");
        std::fs::write(&cfg, config).unwrap();
        std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let mut cmd = Command::new(bin());
        hermetic(&mut cmd);
        cmd.args(["--config", &cfg.display().to_string(), "gateway"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start hyok gateway");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("hyok gateway: listening on ") {
                    let _ = tx.send(url.to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let endpoint = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "hyok gateway did not start: {}",
                    stderr.lock().unwrap().join(" | ")
                );
            }
        };
        Self {
            child,
            endpoint,
            dir: Some(dir),
            key_uri,
            stderr,
        }
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("running").path()
    }

    fn curl(&self, path: &str) -> (String, String) {
        let out = Command::new("curl")
            .args([
                "-s",
                "-w",
                "\n%{http_code}",
                &format!("{}{path}", self.endpoint),
            ])
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
        (body.to_owned(), code.to_owned())
    }

    /// SIGTERM, and wait for a clean exit. Returns the stderr lines and the folder (kept
    /// until the caller drops it).
    fn stop(mut self) -> (String, tempfile::TempDir) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("hyok gateway did not stop after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(100));
        let log = self.stderr.lock().unwrap().join("\n");
        assert!(status.success(), "hyok gateway exited with {status}: {log}");
        (log, self.dir.take().expect("running"))
    }
}

impl Drop for Gateway {
    /// A failed test must not leave the server running.
    fn drop(&mut self) {
        if self.dir.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn run_clients(gw: &Gateway, py: &Path, suite: &str, backend_endpoint: Option<&str>) {
    let work = gw.dir().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway_clients.py");
    let mut cmd = Command::new(py);
    cmd.arg(&script)
        .env("GW_ENDPOINT", &gw.endpoint)
        .env("GW_KEY", KEY_ALL)
        .env("GW_SECRET", SECRET_ALL)
        .env("GW_LIMITED_KEY", KEY_LIMITED)
        .env("GW_LIMITED_SECRET", SECRET_LIMITED)
        .env("GW_OTHER_KEY", KEY_OTHER)
        .env("GW_OTHER_SECRET", SECRET_OTHER)
        .env("GW_WORK", &work)
        .env("GW_MARKER", MARKER)
        .env(
            "GW_BIG_MIB",
            std::env::var("HYOK_GATEWAY_BIG_MIB").unwrap_or_else(|_| "40".into()),
        )
        .env("GW_SUITE", suite)
        .env("GW_BUCKET_SUFFIX", format!("-{}", common::unique("t")))
        .env("RCLONE", rclone().unwrap_or_default())
        .env("S3CMD", s3cmd().unwrap_or_default())
        .env("S3FS", s3fs().unwrap_or_default())
        .env("GO", go_sdk().unwrap_or_default())
        .env("GO_PATH", GO_SDK_PATH)
        .env("JS_SDK", js_sdk().unwrap_or_default());
    match backend_endpoint {
        Some(e) => cmd.env("GW_BACKEND_ENDPOINT", e),
        None => cmd.env("GW_BACKEND_DIR", gw.dir().join("backend")),
    };
    let started = Instant::now();
    let out = cmd.output().expect("run the client script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "{stdout}(clients: {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "client script failed:\n{stdout}\n{}\ngateway stderr:\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.stderr.lock().unwrap().join("\n")
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Every stored object is an ESDK message `hyok decrypt` opens with the keyring's key, and
/// none holds the marker.
fn check_backend(dir: &Path, key_uri: &str) -> usize {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    assert!(!files.is_empty(), "nothing stored under {}", dir.display());
    let marker = MARKER.as_bytes();
    let bad: Vec<String> = par_map(&files, |f| {
        let raw = std::fs::read(f).unwrap();
        if raw.windows(marker.len()).any(|w| w == marker) {
            return Some(format!("{} holds the plaintext marker", f.display()));
        }
        let run = common::run_program(
            bin(),
            ["decrypt", &f.display().to_string(), "--key", key_uri],
            None,
        );
        (!run.success()).then(|| format!("{}: {}", f.display(), run.describe()))
    })
    .into_iter()
    .flatten()
    .collect();
    assert!(
        bad.is_empty(),
        "{} of {} objects: {:?}",
        bad.len(),
        files.len(),
        &bad[..bad.len().min(5)]
    );
    files.len()
}

fn check_audit(dir: &Path) {
    let log = std::fs::read_to_string(dir.join("audit.log")).unwrap_or_default();
    let uses: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"generate\"") || l.contains("\"unwrap\""))
        // The /health round trips are the gateway's own, not a credential's.
        .filter(|l| !l.contains("gateway /health"))
        .collect();
    assert!(!uses.is_empty(), "no key use in the audit log");
    let anonymous: Vec<&&str> = uses
        .iter()
        .filter(|l| {
            !l.contains(&format!("(for {KEY_ALL})")) && !l.contains(&format!("(for {KEY_LIMITED})"))
        })
        .collect();
    assert!(
        anonymous.is_empty(),
        "{} of {} key uses do not name the credential, e.g. {}",
        anonymous.len(),
        uses.len(),
        anonymous[0]
    );
    let verify = common::run_program(
        bin(),
        [
            "audit",
            "verify",
            "--public-key",
            &dir.join("checkpoint.pub.pem").display().to_string(),
            &dir.join("audit.log").display().to_string(),
        ],
        None,
    );
    assert!(verify.success(), "{}", verify.describe());
}

#[test]
fn gateway_with_real_clients_on_a_local_folder() {
    let test = "gateway::gateway_with_real_clients_on_a_local_folder";
    let Some(py) = python(test) else { return };
    let gw = Gateway::start("file://{dir}/backend/");
    let (health, code) = gw.curl("/health");
    assert_eq!(code, "200", "{health}");
    let lines: Vec<&str> = health.lines().collect();
    assert_eq!(lines.first(), Some(&"ok"), "{health}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("keyring default: ok (key-store round trip")),
        "{health}"
    );
    run_clients(&gw, &py, "full", None);
    let (metrics, code) = gw.curl("/metrics");
    assert_eq!(code, "200");
    assert!(
        metrics.contains("hyok_gateway_requests_total{method=\"PUT\",status=\"2xx\"}")
            // the limited credential's get, put, list and delete in another bucket, and
            // its UploadPartCopy from there
            && metrics.contains("hyok_gateway_access_denied_total 5"),
        "{metrics}"
    );
    let n = check_backend(&gw.dir().join("backend"), &gw.key_uri);
    common::note(&format!(
        "gateway: {n} stored objects decrypt with hyok decrypt"
    ));
    let (log, dir) = gw.stop();
    assert!(log.contains("hyok gateway: stopped"), "{log}");
    check_audit(dir.path());
}

#[test]
fn gateway_with_real_clients_on_s3() {
    let test = "gateway::gateway_with_real_clients_on_s3";
    let Some(py) = python(test) else { return };
    let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|e| !e.is_empty())
    else {
        skip(
            test,
            "AWS_ENDPOINT_URL is not set (eval \"$(scripts/services/s3.sh)\")",
        );
        return;
    };
    let gw = Gateway::start("s3://");
    run_clients(&gw, &py, "s3", Some(&endpoint));
    let raw = gw.dir().join("work/raw");
    let n = check_backend(&raw, &gw.key_uri);
    common::note(&format!(
        "gateway on s3: {n} stored objects decrypt with hyok decrypt"
    ));
    gw.stop();
}

#[test]
fn gateway_caps_requests_in_flight_and_applies_residency() {
    let test = "gateway::gateway_caps_requests_in_flight_and_applies_residency";
    let Some(py) = python(test) else { return };
    let gw = Gateway::start_with("file://{dir}/backend/", "max_requests = 1", "");
    run_clients(&gw, &py, "cap", None);
    let (metrics, _) = gw.curl("/metrics");
    let throttled = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hyok_gateway_throttled_total "))
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(throttled.is_some_and(|n| n >= 1), "{metrics}");
    gw.stop();

    let gw = Gateway::start_with(
        "file://{dir}/backend/",
        "",
        "[residency]\nallow_local = false\n",
    );
    run_clients(&gw, &py, "residency", None);
    let mut files = Vec::new();
    files_under(&gw.dir().join("backend"), &mut files);
    assert!(files.is_empty(), "stored despite residency: {files:?}");
    gw.stop();
}

/// `[gateway] idle_timeout`: a connection that sends nothing, headers sent a byte at a time,
/// a PUT body that stops (400 RequestTimeout, nothing stored) and a GET whose client stops
/// reading are cut off, and the gateway goes on serving (gateway_clients.py, `stall`).
#[test]
fn gateway_cuts_off_clients_that_stall() {
    let test = "gateway::gateway_cuts_off_clients_that_stall";
    let Some(py) = python(test) else { return };
    let gw = Gateway::start_with("file://{dir}/backend/", "idle_timeout = 2", "");
    run_clients(&gw, &py, "stall", None);
    let (health, code) = gw.curl("/health");
    assert_eq!(code, "200", "{health}");
    let mut files = Vec::new();
    files_under(&gw.dir().join("backend"), &mut files);
    assert!(
        !files
            .iter()
            .any(|f| f.to_string_lossy().contains("stalled")),
        "the stalled PUT left {files:?}"
    );
    gw.stop();
}

/// A signed request with `curl --aws-sigv4` to `http://HOST:PORT{path}`, HOST resolved to
/// the gateway's address (as wildcard DNS would), the secret read from stdin, not argv.
/// Returns (HTTP status, body).
fn curl_as(gw: &Gateway, method: &str, host: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use aws_lc_rs::digest::{digest, SHA256};
    use std::io::Write;
    let port = gw.endpoint.rsplit(':').next().expect("endpoint has a port");
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::write(&input, body).unwrap();
    let mut c = Command::new("curl");
    c.args(["-s", "-K", "-", "--max-time", "30", "-X", method, "-o"])
        .arg(&output)
        .args(["-w", "%{http_code}"])
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args([
            "-H",
            &format!(
                "x-amz-content-sha256: {}",
                hex::encode(digest(&SHA256, body))
            ),
        ]);
    if method == "PUT" {
        c.arg("--data-binary").arg(format!("@{}", input.display()));
    }
    c.arg(format!("http://{host}:{port}{path}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().expect("curl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("user = \"{KEY_ALL}:{SECRET_ALL}\"\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (code, std::fs::read(&output).unwrap_or_default())
}

/// `[gateway] virtual_host_domains`: `BUCKET.DOMAIN` addresses the bucket, as the Go and Java
/// SDKs send by default; the domain itself, other names and addresses stay path-style.
#[test]
fn gateway_serves_virtual_hosted_style_requests() {
    let gw = Gateway::start_with(
        "file://{dir}/backend/",
        "virtual_host_domains = [\"gw.test\"]",
        "",
    );
    let plain = format!("{MARKER}: virtual-hosted").into_bytes();
    let ok = |(code, body): (u16, Vec<u8>), what: &str| {
        assert_eq!(code, 200, "{what}: {}", String::from_utf8_lossy(&body));
        body
    };
    ok(
        curl_as(&gw, "PUT", "gw.test", "/vhbucket", b""),
        "create bucket, path-style on the domain",
    );
    ok(
        curl_as(&gw, "PUT", "vhbucket.gw.test", "/dir/file.txt", &plain),
        "put, virtual-hosted",
    );
    for (host, path) in [
        ("vhbucket.gw.test", "/dir/file.txt"),
        ("127.0.0.1", "/vhbucket/dir/file.txt"),
        ("gw.test", "/vhbucket/dir/file.txt"),
        ("localhost", "/vhbucket/dir/file.txt"),
    ] {
        let got = ok(
            curl_as(&gw, "GET", host, path, b""),
            &format!("get {host}{path}"),
        );
        assert!(got == plain, "{host}{path}: other bytes");
    }
    let list = ok(
        curl_as(
            &gw,
            "GET",
            "vhbucket.gw.test",
            // curl 7.88 signs a `/` in the query unencoded; S3 wants it encoded.
            "/?list-type=2&prefix=dir%2F",
            b"",
        ),
        "list, virtual-hosted",
    );
    assert!(
        String::from_utf8_lossy(&list).contains("<Key>dir/file.txt</Key>"),
        "{}",
        String::from_utf8_lossy(&list)
    );
    // boto3 with addressing_style "virtual": buckets, multipart, ranges, presigned URLs.
    let test = "gateway::gateway_serves_virtual_hosted_style_requests";
    let boto3 = python(test);
    if let Some(py) = &boto3 {
        run_clients(&gw, py, "vhost", None);
    }
    // Stored under the bucket and key the client named, nowhere else.
    let mut files = Vec::new();
    files_under(&gw.dir().join("backend"), &mut files);
    let mut stored: Vec<_> = files
        .iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == ".hyok-gateway"))
        .map(|f| {
            f.strip_prefix(gw.dir().join("backend"))
                .unwrap()
                .to_path_buf()
        })
        .collect();
    stored.sort();
    let mut expected = vec![PathBuf::from("vhbucket/dir/file.txt")];
    if boto3.is_some() {
        expected.insert(0, PathBuf::from("vhboto/multi/object.bin"));
    }
    assert_eq!(stored, expected, "{files:?}");
    // A label that is no bucket name is refused, not read as something else.
    let (code, body) = curl_as(&gw, "GET", "xy.gw.test", "/dir/file.txt", b"");
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("InvalidBucketName"));
    assert_eq!(
        check_backend(&gw.dir().join("backend"), &gw.key_uri),
        expected.len()
    );
    gw.stop();
}
