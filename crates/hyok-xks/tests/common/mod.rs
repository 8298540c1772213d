//! Test helpers: a proxy on a loopback port, requests signed by the `aws-sigv4` crate (an
//! independent signer), key files, certificates made with the `openssl` command, and the
//! service checks (`HYOK_REQUIRE_SERVICES=1` turns a skip into a failure).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use hyok::aead::{KeyStoreError, SharedAeadKey};
use hyok_xks::XksConfig;
use serde_json::{json, Value};

pub(crate) const AKID: &str = "AKIAXKSTESTPRIMARY234567";
pub(crate) const SECRET: &str = "q8Yb2c3hW0u6kq0m3Qy5R6sVd7Xh1Zr4k2N9p8s7T6u=";
pub(crate) const AKID2: &str = "AKIAXKSTESTSECONDARY2345";
pub(crate) const SECRET2: &str = "Zr4k2N9p8s7T6u5q8Yb2c3hW0u6kq0m3Qy5R6sVd7Xh=";
pub(crate) const REGION: &str = "us-east-1";
pub(crate) const PREFIX: &str = "test/prefix";

pub(crate) fn required() -> bool {
    std::env::var("HYOK_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Whether every variable is set; prints `SKIPPED:` (or panics when services are required).
pub(crate) fn have(test: &str, vars: &[&str]) -> bool {
    let missing: Vec<&str> = vars
        .iter()
        .copied()
        .filter(|v| std::env::var_os(v).is_none_or(|x| x.is_empty()))
        .collect();
    if missing.is_empty() {
        return true;
    }
    if required() {
        panic!(
            "{test}: services required but {} not set",
            missing.join(", ")
        );
    }
    eprintln!(
        "SKIPPED: {test}: {} not set (source /work/services.env)",
        missing.join(", ")
    );
    false
}

pub(crate) fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// Write a 0600 file.
pub(crate) fn private_file(path: &Path, content: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A raw AES-256 key file and its URI.
pub(crate) fn raw_key(dir: &Path, name: &str) -> String {
    let path = dir.join(format!("{name}.key"));
    let mut k = [0u8; 32];
    aws_lc_rs_fill(&mut k);
    private_file(&path, &k);
    format!("raw-aes:xks/{name}?file={}", path.display())
}

fn aws_lc_rs_fill(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(buf)
        .unwrap();
}

/// The `[xks]` configuration text for one store `main` with `keys` (TOML inline tables),
/// secrets written into `dir`.
pub(crate) fn config_text(
    dir: &Path,
    extra_xks: &str,
    keys: &str,
    two_credentials: bool,
) -> String {
    private_file(&dir.join("xks.secret"), format!("{SECRET}\n").as_bytes());
    private_file(&dir.join("xks2.secret"), SECRET2.as_bytes());
    let second = if two_credentials {
        format!(", {{ access_key_id = \"{AKID2}\", secret_access_key_file = \"xks2.secret\" }}")
    } else {
        String::new()
    };
    format!(
        "[xks]\nlisten = \"127.0.0.1:0\"\n{extra_xks}\n\n[xks.stores.main]\nuri_prefix = \"{PREFIX}\"\nregion = \"{REGION}\"\ncredentials = [ {{ access_key_id = \"{AKID}\", secret_access_key_file = \"xks.secret\" }}{second} ]\n\n[xks.stores.main.keys]\n{keys}\n"
    )
}

pub(crate) fn parse_config(dir: &Path, text: &str) -> XksConfig {
    let table: toml::Table = toml::from_str(text).unwrap();
    let xks = table.get("xks").and_then(|v| v.as_table()).cloned();
    XksConfig::from_table(xks.as_ref(), Some(dir), None).unwrap()
}

/// A running proxy.
pub(crate) struct Running {
    pub(crate) url: String,
    pub(crate) stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub(crate) async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.task.await;
    }

    pub(crate) fn endpoint(&self, rest: &str) -> String {
        format!("{}/{PREFIX}/kms/xks/v1/{rest}", self.url)
    }
}

pub(crate) async fn start_with(
    config: &XksConfig,
    open: impl Fn(&str) -> Result<SharedAeadKey, KeyStoreError>,
    audit: Option<hyok::audit::LogSink>,
) -> Running {
    let bound = hyok_xks::bind(config, open, audit).await.unwrap();
    let url = bound.url();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.serve(async move {
        let _ = rx.await;
    }));
    Running {
        url,
        stop: Some(tx),
        task,
    }
}

pub(crate) async fn start(config: &XksConfig) -> Running {
    start_with(config, hyok::aead::open_aead, None).await
}

/// Signing choices.
#[derive(Clone)]
pub(crate) struct Signer {
    pub(crate) akid: String,
    pub(crate) secret: String,
    pub(crate) region: String,
    pub(crate) service: String,
    pub(crate) time: SystemTime,
    /// Extra headers included in the signature.
    pub(crate) extra: Vec<(String, String)>,
}

impl Default for Signer {
    fn default() -> Self {
        Self {
            akid: AKID.into(),
            secret: SECRET.into(),
            region: REGION.into(),
            service: "kms-xks-proxy".into(),
            time: SystemTime::now(),
            extra: Vec::new(),
        }
    }
}

impl Signer {
    /// The headers of a signed POST of `body` to `url`.
    pub(crate) fn headers(&self, url: &str, body: &[u8]) -> Vec<(String, String)> {
        let identity = Credentials::new(&self.akid, &self.secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(self.time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let mut headers: Vec<(String, String)> =
            vec![("content-type".into(), "application/json".into())];
        headers.extend(self.extra.iter().cloned());
        let signable = SignableRequest::new(
            "POST",
            url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        for (n, v) in instructions.headers() {
            headers.push((n.to_owned(), v.to_owned()));
        }
        headers
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// Send `headers` and `body`; the status and the JSON body.
pub(crate) async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = client.request(method, url).body(body);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes).to_string() }));
    (status, v)
}

/// A signed POST.
pub(crate) async fn post(
    client: &reqwest::Client,
    signer: &Signer,
    url: &str,
    body: &Value,
) -> (u16, Value) {
    let body = serde_json::to_vec(body).unwrap();
    let headers = signer.headers(url, &body);
    send(client, reqwest::Method::POST, url, &headers, body).await
}

pub(crate) fn meta(op: &str) -> Value {
    json!({
        "awsPrincipalArn": "arn:aws:iam::123456789012:user/Alice",
        "kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "kmsOperation": op,
        "kmsRequestId": unique("req"),
        "kmsViaService": "ebs"
    })
}

pub(crate) fn encrypt_body(plaintext_b64: &str, aad_b64: Option<&str>, cdiv: bool) -> Value {
    let mut v = json!({
        "requestMetadata": meta("Encrypt"),
        "plaintext": plaintext_b64,
        "encryptionAlgorithm": "AES_GCM",
    });
    if let Some(a) = aad_b64 {
        v["additionalAuthenticatedData"] = json!(a);
    }
    if cdiv {
        v["ciphertextDataIntegrityValueAlgorithm"] = json!("SHA_256");
    }
    v
}

/// The decrypt body for an encrypt answer.
pub(crate) fn decrypt_body(enc: &Value, aad_b64: Option<&str>) -> Value {
    let mut v = json!({
        "requestMetadata": meta("Decrypt"),
        "ciphertext": enc["ciphertext"],
        "encryptionAlgorithm": "AES_GCM",
        "initializationVector": enc["initializationVector"],
        "authenticationTag": enc["authenticationTag"],
    });
    if let Some(m) = enc.get("ciphertextMetadata") {
        v["ciphertextMetadata"] = m.clone();
    }
    if let Some(a) = aad_b64 {
        v["additionalAuthenticatedData"] = json!(a);
    }
    v
}

/// Round trip on `key`: metadata, encrypt with AAD and CDIV, decrypt, tampered tag and
/// wrong AAD refused, health. Returns the encrypt answer.
pub(crate) async fn round_trip(run: &Running, key: &str, backend: &str) -> Value {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let c = client();
    let s = Signer::default();
    let (st, v) = post(&c, &s, &run.endpoint(&format!("keys/{key}/metadata")), &json!({"requestMetadata": {"awsPrincipalArn": "arn:aws:iam::123456789012:user/Alice", "kmsOperation": "CreateKey", "kmsRequestId": "r1"}})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v,
        json!({"keySpec": "AES_256", "keyUsage": ["ENCRYPT", "DECRYPT"], "keyStatus": "ENABLED"})
    );

    let pt = b64.encode(b"Hello World! a 32-byte data key.");
    let aad = b64.encode(b"project=nile,department=marketing");
    let (st, enc) = post(
        &c,
        &s,
        &run.endpoint(&format!("keys/{key}/encrypt")),
        &encrypt_body(&pt, Some(&aad), true),
    )
    .await;
    assert_eq!(st, 200, "{enc}");
    let iv = b64
        .decode(enc["initializationVector"].as_str().unwrap())
        .unwrap();
    let ct = b64.decode(enc["ciphertext"].as_str().unwrap()).unwrap();
    let tag = b64
        .decode(enc["authenticationTag"].as_str().unwrap())
        .unwrap();
    let md = enc
        .get("ciphertextMetadata")
        .map(|m| b64.decode(m.as_str().unwrap()).unwrap())
        .unwrap_or_default();
    assert_eq!((iv.len(), ct.len(), tag.len()), (12, 32, 16));
    let cdiv = hyok_xks::framing::integrity_value(
        b"project=nile,department=marketing",
        &md,
        &iv,
        &ct,
        &tag,
    );
    assert_eq!(enc["ciphertextDataIntegrityValue"], json!(b64.encode(cdiv)));

    let (st, dec) = post(
        &c,
        &s,
        &run.endpoint(&format!("keys/{key}/decrypt")),
        &decrypt_body(&enc, Some(&aad)),
    )
    .await;
    assert_eq!(st, 200, "{dec}");
    assert_eq!(dec, json!({"plaintext": pt}));

    // Wrong AAD, no AAD, tampered tag, ciphertext metadata moved into the AAD.
    let mut cases = vec![
        decrypt_body(&enc, Some(&b64.encode(b"project=nile,department=sales"))),
        decrypt_body(&enc, None),
    ];
    let mut t = decrypt_body(&enc, Some(&aad));
    let mut tag2 = tag.clone();
    tag2[0] ^= 1;
    t["authenticationTag"] = json!(b64.encode(&tag2));
    cases.push(t);
    let mut t = decrypt_body(&enc, Some(&b64.encode(&md)));
    t.as_object_mut().unwrap().remove("ciphertextMetadata");
    cases.push(t);
    for body in cases {
        let (st, v) = post(&c, &s, &run.endpoint(&format!("keys/{key}/decrypt")), &body).await;
        assert_eq!(
            (st, v["errorName"].as_str()),
            (400, Some("InvalidCiphertextException")),
            "{v}"
        );
    }

    let (st, h) = post(
        &c,
        &s,
        &run.endpoint("health"),
        &json!({"requestMetadata": {"kmsRequestId": "h1", "kmsOperation": "KmsHealthCheck"}}),
    )
    .await;
    assert_eq!(st, 200, "{h}");
    let details = h["ekmFleetDetails"].as_array().unwrap();
    let entry = details
        .iter()
        .find(|d| d["id"] == backend)
        .unwrap_or_else(|| panic!("{h}"));
    assert_eq!(entry["healthStatus"], "ACTIVE", "{h}");
    assert_eq!(h["xksProxyFleetSize"], 1);
    enc
}

/// Certificates made with `openssl`: a CA, a server certificate for localhost/127.0.0.1,
/// a client certificate (CN=cks.kms.us-east-1.amazonaws.com), and a client certificate from
/// another CA.
pub(crate) struct Certs {
    pub(crate) ca: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
    pub(crate) client_pem: PathBuf,
    pub(crate) other_client_pem: PathBuf,
    pub(crate) wrong_cn_pem: PathBuf,
}

pub(crate) fn make_certs(dir: &Path) -> Certs {
    let script = r#"
set -e
gen() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.pem" -days 2 -subj "/CN=$2" 2>/dev/null; }
leaf() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$3" 2>/dev/null
  printf "$4\nbasicConstraints=CA:FALSE\n" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -out "$1.pem" -days 2 -extfile "$1.ext" 2>/dev/null
}
gen ca hyok-xks-test-ca
gen otherca hyok-xks-other-ca
leaf server ca localhost "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth"
leaf client ca cks.kms.us-east-1.amazonaws.com "extendedKeyUsage=clientAuth"
leaf other otherca cks.kms.us-east-1.amazonaws.com "extendedKeyUsage=clientAuth"
leaf wrongcn ca attacker.example "extendedKeyUsage=clientAuth"
cat client.pem client.key > client-bundle.pem
cat wrongcn.pem wrongcn.key > wrongcn-bundle.pem
cat other.pem other.key > other-bundle.pem
chmod 600 *.key
"#;
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("openssl and sh are needed to make test certificates");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Certs {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_pem: dir.join("client-bundle.pem"),
        other_client_pem: dir.join("other-bundle.pem"),
        wrong_cn_pem: dir.join("wrongcn-bundle.pem"),
    }
}
