//! Load generator for an XKS proxy (hyok's or any other): signed Encrypt and Decrypt
//! requests from N concurrent clients, each over its own keep-alive connection; prints
//! requests/s and p50/p99 latency per operation and concurrency.
//!
//! What is timed is the steady state KMS sees: every client opens its connection and sends
//! one untimed request before the clock starts (all clients start together), and each
//! latency runs from sending the signed request to reading the whole answer (signing the
//! request, client-side work, is outside it).
//!
//! ```sh
//! XKS_ACCESS_KEY_ID=… XKS_SECRET_FILE=xks.secret \
//!   cargo run --release -p hyok-xks --example xks_bench -- \
//!   http://127.0.0.1:8443/example/uri/path/prefix/kms/xks/v1 foo 2000 1,8,64
//! ```
//! Arguments: base URL (up to `/kms/xks/v1`), external key id, requests per point,
//! concurrencies. The region is `XKS_REGION` (default us-east-1).

use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

struct Signer {
    akid: String,
    secret: String,
    region: String,
}

impl Signer {
    fn headers(&self, url: &str, body: &[u8]) -> Vec<(String, String)> {
        let identity = Credentials::new(&self.akid, &self.secret, None, None, "bench").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("kms-xks-proxy")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("signing parameters")
            .into();
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        let signable = SignableRequest::new(
            "POST",
            url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .expect("signable request");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        for (n, v) in instructions.headers() {
            headers.push((n.to_owned(), v.to_owned()));
        }
        headers
    }
}

/// The answer, or the errorName of a refused request, and the time from sending the signed
/// request to reading the answer.
async fn call(
    client: &reqwest::Client,
    signer: &Signer,
    url: &str,
    body: &Value,
) -> (Result<Value, String>, Duration) {
    let body = serde_json::to_vec(body).expect("json");
    let mut req = client.post(url).body(body.clone());
    for (k, v) in signer.headers(url, &body) {
        req = req.header(k, v);
    }
    let t = Instant::now();
    let r = answer(req).await;
    (r, t.elapsed())
}

async fn answer(req: reqwest::RequestBuilder) -> Result<Value, String> {
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let bytes = resp.bytes().await.expect("answer");
    let v: Value = serde_json::from_slice(&bytes).expect("json answer");
    if status.is_success() {
        Ok(v)
    } else {
        Err(v["errorName"].as_str().unwrap_or("unknown").to_owned())
    }
}

fn metadata(op: &str, i: usize) -> Value {
    json!({
        "awsPrincipalArn": "arn:aws:iam::123456789012:user/bench",
        "kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/bench",
        "kmsOperation": op,
        "kmsRequestId": format!("bench-{i}"),
    })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: xks_bench BASE_URL KEY_ID REQUESTS CONCURRENCIES (e.g. 1,8,64)");
        std::process::exit(2);
    }
    let (base, key, total) = (
        args[1].clone(),
        args[2].clone(),
        args[3].parse::<usize>().unwrap(),
    );
    let levels: Vec<usize> = args[4].split(',').map(|c| c.parse().unwrap()).collect();
    let secret_file = std::env::var("XKS_SECRET_FILE").expect("XKS_SECRET_FILE");
    let signer = std::sync::Arc::new(Signer {
        akid: std::env::var("XKS_ACCESS_KEY_ID").expect("XKS_ACCESS_KEY_ID"),
        secret: std::fs::read_to_string(secret_file)
            .unwrap()
            .trim()
            .to_owned(),
        region: std::env::var("XKS_REGION").unwrap_or_else(|_| "us-east-1".into()),
    });
    let enc_url = format!("{base}/keys/{key}/encrypt");
    let dec_url = format!("{base}/keys/{key}/decrypt");
    let warm = reqwest::Client::new();
    let sample = call(
        &warm,
        &signer,
        &enc_url,
        &json!({"requestMetadata": metadata("Encrypt", 0), "plaintext": B64.encode([7u8; 32]),
                "encryptionAlgorithm": "AES_GCM", "additionalAuthenticatedData": B64.encode(b"bench")}),
    )
    .await
    .0
    .expect("a first encrypt");
    println!("| operation | clients | requests/s | p50 ms | p99 ms | errors |");
    println!("|---|---:|---:|---:|---:|---|");
    for op in ["encrypt", "decrypt"] {
        for &n in &levels {
            let per = total.div_ceil(n);
            let ready = std::sync::Arc::new(tokio::sync::Barrier::new(n + 1));
            let mut tasks = Vec::new();
            for c in 0..n {
                let signer = signer.clone();
                let url = if op == "encrypt" {
                    enc_url.clone()
                } else {
                    dec_url.clone()
                };
                let sample = sample.clone();
                let ready = ready.clone();
                tasks.push(tokio::spawn(async move {
                    let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
                    let mut lat = Vec::with_capacity(per);
                    let mut errors = Vec::new();
                    // Request 0 opens the connection, untimed; then all clients start at once.
                    for i in 0..=per {
                        let body = if op == "encrypt" {
                            json!({"requestMetadata": metadata("GenerateDataKey", c * (per + 1) + i),
                                   "plaintext": B64.encode([7u8; 32]), "encryptionAlgorithm": "AES_GCM",
                                   "additionalAuthenticatedData": B64.encode(b"bench")})
                        } else {
                            let mut b = json!({"requestMetadata": metadata("Decrypt", c * (per + 1) + i),
                                   "ciphertext": sample["ciphertext"], "encryptionAlgorithm": "AES_GCM",
                                   "additionalAuthenticatedData": B64.encode(b"bench"),
                                   "initializationVector": sample["initializationVector"],
                                   "authenticationTag": sample["authenticationTag"]});
                            if let Some(m) = sample.get("ciphertextMetadata") {
                                b["ciphertextMetadata"] = m.clone();
                            }
                            b
                        };
                        let (r, took) = call(&client, &signer, &url, &body).await;
                        if i == 0 {
                            // A refused warm-up (a slow store) is counted, not timed.
                            if let Err(e) = r {
                                errors.push(format!("{e} (warm-up)"));
                            }
                            ready.wait().await;
                            continue;
                        }
                        if let Err(e) = r {
                            errors.push(e);
                        }
                        lat.push(took);
                    }
                    (lat, errors)
                }));
            }
            ready.wait().await;
            let started = Instant::now();
            let mut all = Vec::new();
            let mut errors: std::collections::BTreeMap<String, usize> = Default::default();
            for t in tasks {
                let (lat, errs) = t.await.unwrap();
                all.extend(lat);
                for e in errs {
                    *errors.entry(e).or_default() += 1;
                }
            }
            let secs = started.elapsed().as_secs_f64();
            all.sort();
            let errors: Vec<String> = errors.iter().map(|(k, v)| format!("{v} {k}")).collect();
            println!(
                "| {op} | {n} | {:.0} | {:.2} | {:.2} | {} |",
                all.len() as f64 / secs,
                percentile(&all, 0.50),
                percentile(&all, 0.99),
                if errors.is_empty() {
                    "-".to_owned()
                } else {
                    errors.join(", ")
                }
            );
        }
    }
}
