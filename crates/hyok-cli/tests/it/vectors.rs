//! ESDK decrypt test vectors (`awses-decrypt` manifests) through `hyok decrypt`.
//!
//! Every case of every manifest is run; failures are collected and listed together at the
//! end, so one bad case hides no other.
//!
//! How a case becomes a command line (see `testdata/esdk/README.md` for the manifest format):
//! - each usable `master-keys` entry becomes one `--key`: Raw AES as
//!   `raw-aes:<provider-id>/<key-id>?file=<raw key bytes>`, Raw RSA as
//!   `raw-rsa:<provider-id>/<key-id>?private=<PEM>&padding=<pkcs1|oaep-HASH>`; entries whose key
//!   is public-only cannot decrypt and are left out;
//! - `--allow-legacy` is always passed, since many messages use format-1 suites (the separate
//!   `legacy_suites_need_allow_legacy` test checks the flag is needed for them, and only them);
//! - encryption context, `cmm: RequiredEncryptionContext`: the pairs were authenticated but not
//!   stored, so each is passed as `-c k=v` (hyok supplies it as reproduced context);
//! - encryption context, `cmm: Default`: the pairs are the stored context. Passing them as
//!   `-c` is also correct (each -c pair must be in the stored context, and a signed suite's extra
//!   `aws-crypto-public-key` pair may stay unnamed), so *must-succeed* cases are decrypted twice:
//!   once with no `-c` (what the manifest prescribes) and once with every pair as `-c`. A
//!   *must-fail* Default case is run without `-c` only: some of them alter the stored context,
//!   and a `-c` mismatch would make them fail for a reason other than the one under test.
//!
//! Extra manifests (official vector sets we do not ship) come from `HYOK_EXTRA_VECTORS`: a
//! colon-separated list of manifest files or directories searched for `awses-decrypt`
//! manifests.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use crate::common::{self, check_failed, dir_entries, hyok, par_map, raw_aes_uri, raw_rsa_uri};

/// A key from a keys manifest, decoded.
#[derive(Debug)]
struct KeyEntry {
    algorithm: String,
    /// `symmetric`, `private` or `public`.
    kind: String,
    key_id: String,
    /// Raw key bytes (AES) or PEM text (RSA).
    material: Vec<u8>,
    can_decrypt: bool,
}

#[derive(Debug)]
pub(crate) enum Expect {
    Plaintext(PathBuf),
    Error(String),
}

#[derive(Debug)]
pub(crate) struct Case {
    pub(crate) id: String,
    pub(crate) ciphertext: PathBuf,
    pub(crate) expect: Expect,
    /// `--key` URIs, built once key files exist.
    pub(crate) keys: Vec<String>,
    pub(crate) required_context: bool,
    context: Vec<(String, String)>,
    /// Why this case cannot be run by a CLI decrypt, if it cannot.
    pub(crate) skip: Option<String>,
}

pub(crate) struct Manifest {
    path: PathBuf,
    pub(crate) cases: Vec<Case>,
    /// Holds the key files for as long as the cases run.
    _keys_dir: tempfile::TempDir,
}

/// Resolves a manifest `file://` reference against the manifest's folder.
fn resolve(base: &Path, uri: &str) -> PathBuf {
    let p = uri.strip_prefix("file://").unwrap_or(uri);
    if Path::new(p).is_absolute() {
        PathBuf::from(p)
    } else {
        base.join(p)
    }
}

fn read_json(path: &Path) -> Value {
    let text = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

fn load_keys(path: &Path) -> BTreeMap<String, KeyEntry> {
    let doc = read_json(path);
    let keys = doc
        .get("keys")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("{}: no \"keys\" object", path.display()));
    let mut out = BTreeMap::new();
    for (name, k) in keys {
        let material_text = str_field(k, "material").unwrap_or("");
        let encoding = str_field(k, "encoding").unwrap_or("");
        let material = match encoding {
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(material_text.trim())
                .unwrap_or_else(|e| panic!("key {name}: bad base64: {e}")),
            "hex" => hex::decode(material_text.trim())
                .unwrap_or_else(|e| panic!("key {name}: bad hex: {e}")),
            _ => material_text.as_bytes().to_vec(), // pem, or anything we pass through as is
        };
        let kind = str_field(k, "type").unwrap_or("").to_string();
        out.insert(
            name.clone(),
            KeyEntry {
                algorithm: str_field(k, "algorithm").unwrap_or("").to_string(),
                can_decrypt: kind != "public"
                    && k.get("decrypt").and_then(Value::as_bool).unwrap_or(true),
                kind,
                key_id: str_field(k, "key-id").unwrap_or(name).to_string(),
                material,
            },
        );
    }
    out
}

/// Writes each key to a file in `dir`; returns key name → file.
fn write_key_files(keys: &BTreeMap<String, KeyEntry>, dir: &Path) -> BTreeMap<String, PathBuf> {
    keys.iter()
        .enumerate()
        .map(|(i, (name, k))| {
            let ext = if k.algorithm == "aes" { "key" } else { "pem" };
            let path = dir.join(format!("key-{i}.{ext}"));
            fs::write(&path, &k.material).expect("write key file");
            (name.clone(), path)
        })
        .collect()
}

/// `--key` URI for one `master-keys` entry: `Ok(None)` when the entry cannot decrypt
/// (public-only RSA key), `Err` when the case cannot be expressed on the command line.
fn key_uri(
    mk: &Value,
    keys: &BTreeMap<String, KeyEntry>,
    files: &BTreeMap<String, PathBuf>,
) -> Result<Option<String>, String> {
    let kind = str_field(mk, "type").unwrap_or("");
    if kind != "raw" {
        return Err(format!("master key type {kind:?} is not a raw key"));
    }
    let name = str_field(mk, "key").ok_or("master key without \"key\"")?;
    let entry = keys
        .get(name)
        .ok_or_else(|| format!("key {name:?} not in the keys manifest"))?;
    let provider = str_field(mk, "provider-id").ok_or("raw master key without provider-id")?;
    if !entry.can_decrypt {
        return Ok(None);
    }
    let file = &files[name];
    let alg = str_field(mk, "encryption-algorithm").unwrap_or(&entry.algorithm);
    match alg {
        "aes" => Ok(Some(raw_aes_uri(provider, &entry.key_id, file))),
        "rsa" => {
            let padding = match (
                str_field(mk, "padding-algorithm"),
                str_field(mk, "padding-hash"),
            ) {
                (Some("pkcs1"), _) => "pkcs1".to_string(),
                (Some("oaep-mgf1"), Some(h @ ("sha1" | "sha256" | "sha384" | "sha512"))) => {
                    format!("oaep-{h}")
                }
                (a, h) => return Err(format!("unsupported RSA padding {a:?}/{h:?}")),
            };
            if entry.kind != "private" {
                return Err(format!("RSA key {name:?} has type {:?}", entry.kind));
            }
            Ok(Some(raw_rsa_uri(
                provider,
                &entry.key_id,
                None,
                Some(file),
                &padding,
            )))
        }
        other => Err(format!("unknown encryption-algorithm {other:?}")),
    }
}

pub(crate) fn load_manifest(path: &Path) -> Manifest {
    let doc = read_json(path);
    let base = path.parent().expect("manifest has a folder").to_path_buf();
    let kind = doc.pointer("/manifest/type").and_then(Value::as_str);
    assert_eq!(
        kind,
        Some("awses-decrypt"),
        "{}: not an awses-decrypt manifest",
        path.display()
    );
    let keys_ref = str_field(&doc, "keys")
        .unwrap_or_else(|| panic!("{}: no \"keys\" reference", path.display()));
    let keys = load_keys(&resolve(&base, keys_ref));
    let keys_dir = tempfile::tempdir().expect("temp dir");
    let files = write_key_files(&keys, keys_dir.path());

    let tests = doc
        .get("tests")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("{}: no \"tests\" object", path.display()));
    let mut cases = Vec::new();
    for (id, t) in tests {
        let mut skip = None;
        let ciphertext = resolve(&base, str_field(t, "ciphertext").unwrap_or(""));
        // Manifest v3+ has `result`; older versions put `plaintext` on the case itself.
        let expect = if let Some(p) = t
            .pointer("/result/output/plaintext")
            .and_then(Value::as_str)
        {
            Expect::Plaintext(resolve(&base, p))
        } else if let Some(err) = t.pointer("/result/error") {
            Expect::Error(
                str_field(err, "error-description")
                    .unwrap_or("(no description)")
                    .to_string(),
            )
        } else if let Some(p) = str_field(t, "plaintext") {
            Expect::Plaintext(resolve(&base, p))
        } else {
            skip = Some("no result in the manifest".to_string());
            Expect::Error(String::new())
        };
        let mut uris = Vec::new();
        for mk in t
            .get("master-keys")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            match key_uri(mk, &keys, &files) {
                Ok(Some(u)) => uris.push(u),
                Ok(None) => {}
                Err(e) => skip = skip.or(Some(e)),
            }
        }
        if uris.is_empty() && skip.is_none() {
            skip = Some("no master key that can decrypt".into());
        }
        let cmm = str_field(t, "cmm").unwrap_or("Default");
        let required_context = match cmm {
            "Default" => false,
            "RequiredEncryptionContext" => true,
            other => {
                skip = skip.or(Some(format!("unknown cmm {other:?}")));
                false
            }
        };
        // A signed-suite-refusing decrypt API has no CLI equivalent: a must-fail case for it
        // may fail only because the message is signed, which `hyok decrypt` accepts.
        if let Some(method) = str_field(t, "decryption-method") {
            if method == "streaming-unsigned-only" && matches!(expect, Expect::Error(_)) {
                skip = skip.or(Some(format!("decryption-method {method:?}")));
            }
        }
        let context: Vec<(String, String)> = t
            .get("encryption-context")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        if context.iter().any(|(k, _)| k.contains('=')) {
            skip = skip.or(Some("context key contains '='".into()));
        }
        cases.push(Case {
            id: id.clone(),
            ciphertext,
            expect,
            keys: uris,
            required_context,
            context,
            skip,
        });
    }
    Manifest {
        path: path.to_path_buf(),
        cases,
        _keys_dir: keys_dir,
    }
}

/// Decrypts `case` once: `with_context` adds the `-c` pairs, `allow_legacy` the flag.
/// Returns the command's failure text, if the run did not meet `must_succeed`.
fn run_once(
    case: &Case,
    with_context: bool,
    allow_legacy: bool,
    must_succeed: bool,
) -> Result<(), String> {
    let out_dir = tempfile::tempdir().expect("temp dir");
    let out = out_dir.path().join("plaintext.out");
    let mut args: Vec<String> = vec![
        "decrypt".into(),
        case.ciphertext.display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    if allow_legacy {
        args.push("--allow-legacy".into());
    }
    for k in &case.keys {
        args.push("--key".into());
        args.push(k.clone());
    }
    if with_context {
        for (k, v) in &case.context {
            args.push("-c".into());
            args.push(format!("{k}={v}"));
        }
    }
    let run = hyok(&args);
    if let Some(reason) = fips_refusal(case) {
        // A FIPS build refuses PKCS#1 v1.5 keys (docs/CUSTODY.md §4): the case is checked as
        // a clean refusal with that reason, whatever the manifest expects.
        let problem = if run.success() || !matches!(run.code, Some(1 | 2)) {
            Some("expected a refusal (exit 1 or 2)")
        } else if out.exists() {
            Some("output file left behind")
        } else if !run.stderr.contains("is not available in a FIPS build")
            || !run.stderr.contains(&reason)
        {
            Some("failed for another reason")
        } else {
            None
        };
        return match problem {
            None => Ok(()),
            Some(p) => Err(format!("FIPS build, {reason}: {p}: {}", run.describe())),
        };
    }
    match (&case.expect, must_succeed) {
        (Expect::Plaintext(p), true) => {
            if !run.success() {
                return Err(format!("decrypt failed: {}", run.describe()));
            }
            let want = fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
            let got = fs::read(&out).map_err(|e| format!("exit 0 but no output file: {e}"))?;
            if got != want {
                return Err(common::describe_mismatch(&got, &want));
            }
            Ok(())
        }
        _ => {
            check_failed(&run, Some(&out))?;
            let left = dir_entries(out_dir.path());
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("files left in the output folder: {left:?}"))
            }
        }
    }
}

/// In a FIPS build (`--features fips`): what makes that build refuse `case` (a text its
/// error line contains), if anything: an RSA key with PKCS#1 v1.5 padding. `None` in a
/// default build. (Signed suites are not refused: their ECDSA runs in the module's
/// streaming signature service, so a FIPS build decrypts those cases as the manifest says.)
fn fips_refusal(case: &Case) -> Option<String> {
    if !cfg!(feature = "fips") {
        return None;
    }
    case.keys
        .iter()
        .any(|k| k.ends_with("padding=pkcs1"))
        .then(|| "RSA PKCS#1 v1.5".into())
}

/// Whether `case`'s message has a signed suite. The suite id sits after the version byte
/// (format 2) or after version and type bytes (format 1).
fn is_signed(case: &Case) -> bool {
    let Ok(head) = fs::read(&case.ciphertext) else {
        return false;
    };
    let at = match head.first() {
        Some(2) => 1,
        Some(1) => 2,
        _ => return false,
    };
    let (Some(&a), Some(&b)) = (head.get(at), head.get(at + 1)) else {
        return false;
    };
    hyok_core::AlgorithmSuite::from_id(u16::from_be_bytes([a, b]))
        .is_ok_and(|s| s.signature().is_some())
}

/// Runs every case of one manifest; returns (decrypt runs, cases run, skipped, failures).
fn run_manifest(m: &Manifest) -> (usize, usize, Vec<String>, Vec<String>) {
    let results = par_map(&m.cases, |case| {
        if let Some(why) = &case.skip {
            return (0, Err(why.clone()), Vec::new());
        }
        let mut plans = Vec::new(); // (with_context, label)
        match &case.expect {
            Expect::Plaintext(_) if !case.required_context => {
                plans.push((false, "no -c"));
                if !case.context.is_empty() {
                    plans.push((true, "stored pairs as -c"));
                }
            }
            _ if case.required_context => plans.push((true, "required pairs as -c")),
            _ => plans.push((false, "no -c")),
        }
        let mut fails = Vec::new();
        for (with_context, label) in &plans {
            let must_succeed = matches!(case.expect, Expect::Plaintext(_));
            if let Err(e) = run_once(case, *with_context, true, must_succeed) {
                let what = match &case.expect {
                    Expect::Plaintext(_) => "must decrypt".to_string(),
                    Expect::Error(why) => format!("must fail ({why})"),
                };
                fails.push(format!("{} [{label}; {what}]: {e}", case.id));
            }
        }
        (plans.len(), Ok(()), fails)
    });
    let mut runs = 0;
    let mut ran = 0;
    let mut skipped = Vec::new();
    let mut failures = Vec::new();
    for ((n, status, fails), case) in results.into_iter().zip(&m.cases) {
        runs += n;
        match status {
            Ok(()) => ran += 1,
            Err(why) => skipped.push(format!("{}: {why}", case.id)),
        }
        failures.extend(fails);
    }
    (runs, ran, skipped, failures)
}

fn check_manifests(paths: &[PathBuf]) {
    let mut all_failures = Vec::new();
    let mut total_cases = 0;
    for path in paths {
        let m = load_manifest(path);
        let (runs, ran, skipped, failures) = run_manifest(&m);
        total_cases += ran;
        common::note(&format!(
            "ESDK vectors {}: {} cases, {ran} run ({runs} decrypt runs), {} skipped, {} failing runs",
            m.path.display(),
            m.cases.len(),
            skipped.len(),
            failures.len()
        ));
        let signed = m
            .cases
            .iter()
            .filter(|c| c.skip.is_none() && fips_refusal(c).is_none() && is_signed(c))
            .count();
        common::note(&format!(
            "{signed} of those cases have a signed suite (ECDSA in AWS-LC's streaming EVP service, FIPS build: {})",
            cfg!(feature = "fips")
        ));
        if cfg!(feature = "fips") {
            let refused = m
                .cases
                .iter()
                .filter(|c| c.skip.is_none() && fips_refusal(c).is_some())
                .count();
            common::note(&format!(
                "FIPS build: {refused} of those cases were checked as refusals (PKCS#1 v1.5), the rest decrypted as the manifest says"
            ));
        }
        let file = m.path.file_name().unwrap().to_string_lossy().into_owned();
        // A skipped vector is a vector not checked: it fails the run like a failing one.
        all_failures.extend(skipped.iter().map(|s| format!("{file}: skipped {s}")));
        all_failures.extend(
            failures
                .into_iter()
                .map(|f| format!("{}: {f}", m.path.file_name().unwrap().to_string_lossy())),
        );
    }
    common::report("ESDK decrypt vectors", total_cases, &all_failures);
}

/// The official ESDK-NET 4.0.0 / 4.0.1 raw-key cases.
#[test]
fn official_net_vectors() {
    check_manifests(&[common::esdk_testdata().join("manifest.json")]);
}

/// Cases generated for this project with the official Python ESDK 4.0.7.
#[test]
fn generated_python_vectors() {
    check_manifests(&[common::esdk_testdata().join("generated-manifest.json")]);
}

/// Is `path` an awses-decrypt manifest? (Cheap check: JSON with manifest.type.)
fn is_decrypt_manifest(path: &Path) -> bool {
    fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| {
            v.pointer("/manifest/type")
                .and_then(Value::as_str)
                .map(|t| t == "awses-decrypt")
        })
        .unwrap_or(false)
}

fn find_manifests(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if depth > 0 {
                find_manifests(&p, depth - 1, out);
            }
        } else if p.extension().is_some_and(|e| e == "json") && is_decrypt_manifest(&p) {
            out.push(p);
        }
    }
}

/// Manifests named by `HYOK_EXTRA_VECTORS` (colon-separated files or folders).
#[test]
fn extra_vectors() {
    let Some(list) = std::env::var_os("HYOK_EXTRA_VECTORS").filter(|v| !v.is_empty()) else {
        common::note("HYOK_EXTRA_VECTORS not set: no extra vector manifests");
        return;
    };
    let mut manifests = Vec::new();
    for entry in std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()) {
        if entry.is_dir() {
            let before = manifests.len();
            find_manifests(&entry, 4, &mut manifests);
            assert!(
                manifests.len() > before,
                "HYOK_EXTRA_VECTORS: no awses-decrypt manifest under {}",
                entry.display()
            );
        } else if entry.is_file() {
            manifests.push(entry);
        } else {
            panic!("HYOK_EXTRA_VECTORS: {} does not exist", entry.display());
        }
    }
    check_manifests(&manifests);
}

/// Messages written by official ESDKs with non-committing suites (message format 1) must be
/// refused without `--allow-legacy`; committing ones must decrypt without it.
#[test]
fn legacy_suites_need_allow_legacy() {
    // The manifests own the key files: keep them alive until the runs are done.
    let manifests: Vec<Manifest> = ["manifest.json", "generated-manifest.json"]
        .iter()
        .map(|name| load_manifest(&common::esdk_testdata().join(name)))
        .collect();
    let cases: Vec<&Case> = manifests
        .iter()
        .flat_map(|m| &m.cases)
        .filter(|c| c.skip.is_none() && matches!(c.expect, Expect::Plaintext(_)))
        .collect();
    let results = par_map(&cases, |case| {
        let head = fs::read(&case.ciphertext).unwrap_or_default();
        let legacy = head.first() == Some(&1);
        let r = run_once(case, case.required_context, false, !legacy).map_err(|e| {
            let what = if legacy {
                "format-1 message must be refused without --allow-legacy"
            } else {
                "committing message must decrypt without --allow-legacy"
            };
            format!("{}: {what}: {e}", case.id)
        });
        (legacy, r)
    });
    let legacy = results.iter().filter(|(l, _)| *l).count();
    common::note(&format!(
        "commitment policy: {legacy} format-1 messages need --allow-legacy, {} format-2 do not",
        results.len() - legacy
    ));
    assert!(legacy > 0, "the vectors hold no format-1 message to check");
    let failures: Vec<String> = results.into_iter().filter_map(|(_, r)| r.err()).collect();
    common::report(
        "commitment policy without --allow-legacy",
        cases.len(),
        &failures,
    );
}
