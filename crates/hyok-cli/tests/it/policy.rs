//! Issue 15 (policy engine) through the binary: `[policy]` files decide `cp`, `cat`,
//! `encrypt`, `ls` and `rm`; a bad file stops the start with FILE:LINE:COLUMN (exit 2); a
//! denial is one line naming the policy (exit 1) and leaves nothing behind; `hyok policy
//! check|explain` decide without doing anything; every decision is in the audit log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{check_error_stderr, hyok_env, pseudo_random, raw_aes_uri, Run};

const POLICY: &str = r#"// The team's rules.
@id("team")
permit(principal == Hyok::Identity::"alice", action, resource);

@id("eu-needs-tenant")
forbid(principal, action in [Hyok::Action::"put", Hyok::Action::"encrypt", Hyok::Action::"decrypt"], resource is Hyok::Object)
when { resource.key like "*/eu/*" && !context.encryption_context.hasTag("tenant") };

@id("no-deletes-in-eu")
forbid(principal, action == Hyok::Action::"delete", resource is Hyok::Object)
when { resource.key like "*/eu/*" };

@id("office-hours")
forbid(principal, action == Hyok::Action::"decrypt", resource)
when { (context.hour < 7 || context.hour >= 19 || context.weekday >= 5) && !context.break_glass };
"#;

struct Box_ {
    dir: tempfile::TempDir,
}

impl Box_ {
    fn new(policy: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let key = d.join("k.key");
        std::fs::write(&key, pseudo_random(32, 0x90)).unwrap();
        std::fs::write(d.join("policy.cedar"), policy).unwrap();
        std::fs::create_dir(d.join("store")).unwrap();
        let checkpoint = d.join("checkpoint");
        let r = hyok_env(
            &["key", "new", "ec-p256", "-o", checkpoint.to_str().unwrap()],
            &[],
            &[],
            None,
            Duration::from_secs(60),
        );
        assert!(r.success(), "{}", r.describe());
        let config = format!(
            "[defaults]\nkeyring = \"team\"\n\n[keyrings.team]\nkeys = [{:?}]\n\n[policy]\nfiles = [\"policy.cedar\"]\ndefault = \"deny\"\n\n[audit]\nlog = \"audit.log\"\nkey = {:?}\nidentity = \"alice\"\n",
            raw_aes_uri("team", "k", &key),
            d.join("checkpoint.pem").display().to_string()
        );
        std::fs::write(d.join("hyok.toml"), config).unwrap();
        std::fs::write(d.join("plain.txt"), b"salaries").unwrap();
        Self { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn store(&self, key: &str) -> String {
        format!("file://{}/{key}", self.path("store").display())
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let cfg = self.path("hyok.toml");
        let mut all = vec![
            ("HYOK_CONFIG", cfg.to_str().unwrap()),
            ("HYOK_BREAK_GLASS", ""),
        ];
        all.extend_from_slice(env);
        hyok_env(
            args,
            &all,
            &[], // `hermetic` already drops the developer's HYOK_AUDIT_* settings
            None,
            Duration::from_secs(120),
        )
    }

    fn run(&self, args: &[&str]) -> Run {
        // Break glass on: office hours do not depend on when the test runs.
        self.run_env(args, &[("HYOK_BREAK_GLASS", "test suite")])
    }

    fn denied(&self, r: &Run, policy: &str) {
        assert_eq!(r.code, Some(1), "{}", r.describe());
        check_error_stderr(&r.stderr).unwrap();
        assert!(r.stderr.contains("policy denies"), "{}", r.stderr);
        assert!(r.stderr.contains(policy), "{}", r.stderr);
    }

    fn audit_details(&self) -> String {
        let r = self.run(&[
            "audit",
            "show",
            self.path("audit.log").to_str().unwrap(),
            "--op",
            "policy-decision",
        ]);
        assert!(r.success(), "{}", r.describe());
        r.stdout_text()
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in walk(dir) {
        v.push(e.display().to_string());
    }
    v
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn policies_decide_cp_cat_ls_rm_and_are_audited() {
    let b = Box_::new(POLICY);
    let plain = b.path("plain.txt");
    let plain = plain.to_str().unwrap();
    let eu = b.store("eu/pay.txt");

    // Denied upload: nothing stored (the store folder stays empty).
    let r = b.run(&["cp", plain, &eu]);
    b.denied(&r, "eu-needs-tenant");
    assert!(
        files(&b.path("store")).is_empty(),
        "{:?}",
        files(&b.path("store"))
    );

    // Allowed with the tenant; read back with break glass; refused outside office hours
    // without it is covered by `policy check --at` below (the clock is not the test's).
    b.ok_cp(&["cp", plain, &eu, "-c", "tenant=acme"]);
    let out = b.path("back.txt");
    b.ok_cp(&["cp", &eu, out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), b"salaries");

    // Another identity: nothing permits it (default deny), before any key use.
    let r = b.run_env(
        &["cat", &eu],
        &[
            ("HYOK_AUDIT_IDENTITY", "mallory"),
            ("HYOK_BREAK_GLASS", "x"),
        ],
    );
    b.denied(&r, "default-deny");
    assert!(r.stdout.is_empty());

    // ls is decided (allowed for alice); rm under eu/ is refused and deletes nothing.
    let r = b.run(&["ls", &b.store("eu/")]);
    assert!(r.success(), "{}", r.describe());
    let r = b.run(&["rm", &eu]);
    b.denied(&r, "no-deletes-in-eu");
    assert_eq!(files(&b.path("store")).len(), 1);

    // Plain encrypt decides on the keyring.
    let enc = b.path("x.hyok");
    let r = b.run(&["encrypt", plain, "-o", enc.to_str().unwrap()]);
    assert!(r.success(), "{}", r.describe());

    // Every decision is in the audit log with its policy ids.
    let log = b.audit_details();
    for want in [
        "deny put by Identity",
        "eu-needs-tenant",
        "allow put by Identity",
        "allow decrypt by Identity",
        "(break glass)",
        "deny get by Identity \\\"mallory\\\"",
        "allow list by Identity",
        "deny delete by Identity",
        "allow encrypt by Identity \\\"alice\\\" on keyring \\\"team\\\"",
    ] {
        assert!(log.contains(want), "{want}: {log}");
    }
}

impl Box_ {
    fn ok_cp(&self, args: &[&str]) {
        let r = self.run(args);
        assert!(r.success(), "{}", r.describe());
    }
}

#[test]
fn policy_check_and_explain_decide_without_doing_anything() {
    let b = Box_::new(POLICY);
    let eu = b.store("eu/pay.txt");
    // Saturday 5 December 2026, 10:30 UTC.
    let saturday = "1796466600";
    // Monday 7 December 2026, 10:30 UTC.
    let monday = "1796639400";

    let r = b.run_env(&["policy", "check", "put", &eu], &[]);
    b.denied(&r, "eu-needs-tenant");
    assert!(
        r.stdout_text().starts_with("deny (policy eu-needs-tenant)"),
        "{}",
        r.describe()
    );

    let r = b.run_env(&["policy", "check", "put", &eu, "-c", "tenant=acme"], &[]);
    assert!(r.success(), "{}", r.describe());
    assert_eq!(r.stdout_text().trim(), "allow (policy team)");

    let r = b.run_env(
        &[
            "policy", "check", "decrypt", &eu, "-c", "tenant=a", "--at", saturday,
        ],
        &[],
    );
    b.denied(&r, "office-hours");
    let r = b.run_env(
        &[
            "policy",
            "check",
            "decrypt",
            &eu,
            "-c",
            "tenant=a",
            "--at",
            saturday,
            "--break-glass",
        ],
        &[],
    );
    assert!(r.success(), "{}", r.describe());
    let r = b.run_env(
        &[
            "policy", "check", "decrypt", &eu, "-c", "tenant=a", "--at", monday,
        ],
        &[],
    );
    assert!(r.success(), "{}", r.describe());

    let r = b.run_env(
        &[
            "policy",
            "explain",
            "get",
            &eu,
            "--principal",
            "credential:AKIDX",
        ],
        &[],
    );
    b.denied(&r, "default-deny");
    let text = r.stdout_text();
    assert!(text.contains("principal: Credential \"AKIDX\""), "{text}");

    let r = b.run_env(&["policy", "explain", "delete", &eu], &[]);
    b.denied(&r, "no-deletes-in-eu");
    assert!(r.stdout_text().contains("forbid("), "{}", r.describe());

    // Nothing was done: no object, and no audit record (the log may not even exist).
    assert!(files(&b.path("store")).is_empty());
    let log = std::fs::read_to_string(b.path("audit.log")).unwrap_or_default();
    assert!(!log.contains("policy-decision"), "{log}");

    let r = b.run_env(&["policy", "schema"], &[]);
    assert!(r.success(), "{}", r.describe());
    assert!(r.stdout_text().contains("namespace Hyok"));
}

#[test]
fn a_bad_policy_file_stops_every_command_with_its_position() {
    let b = Box_::new("permit(principal, action, resource);\n\n@id(\"x\")\nforbid(principal, action, resource)\n  when { resource.colour == \"red\" };\n");
    let file = b.path("policy.cedar");
    let plain = b.path("plain.txt");
    for args in [
        vec!["cp", plain.to_str().unwrap(), &b.store("a")],
        vec!["policy", "check", "put", &b.store("a")],
    ] {
        let r = b.run(&args);
        assert_eq!(r.code, Some(2), "{}", r.describe());
        check_error_stderr(&r.stderr).unwrap();
        let first = r.stderr.lines().next().unwrap_or_default();
        assert!(
            first.contains(&format!("{}:5:", file.display())),
            "{}",
            r.stderr
        );
    }
    std::fs::write(&file, "permit(principal, action resource);\n").unwrap();
    let r = b.run(&["cp", plain.to_str().unwrap(), &b.store("a")]);
    assert_eq!(r.code, Some(2), "{}", r.describe());
    assert!(
        r.stderr.contains(&format!("{}:1:", file.display())),
        "{}",
        r.stderr
    );
    assert!(files(&b.path("store")).is_empty());
}

const GATEWAY_POLICY: &str = r#"
@id("gateway-writer")
permit(principal == Hyok::Credential::"AKIDPOLICYWRITER", action, resource);
"#;

const GATEWAY_CLIENT: &str = r#"
import sys, boto3, botocore
from botocore.config import Config
ep = sys.argv[1]
def client(ak, sk):
    return boto3.client("s3", endpoint_url=ep, aws_access_key_id=ak, aws_secret_access_key=sk,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
w = client("AKIDPOLICYWRITER", "policy-test-writer-secret-0001")
r = client("AKIDPOLICYREADER", "policy-test-reader-secret-0002")
w.put_object(Bucket="bkt", Key="ok.txt", Body=b"allowed")
print("writer put ok")
print("writer get", w.get_object(Bucket="bkt", Key="ok.txt")["Body"].read().decode())
for what, call in [("put", lambda: r.put_object(Bucket="bkt", Key="no.txt", Body=b"x")),
                   ("get", lambda: r.get_object(Bucket="bkt", Key="ok.txt"))]:
    try:
        call()
        print("reader", what, "ALLOWED")
    except botocore.exceptions.ClientError as e:
        print("reader", what, e.response["Error"]["Code"])
"#;

/// Python with boto3 (`HYOK_ESDK_PYTHON`), else the test is skipped.
fn boto3_python(test: &str) -> Option<PathBuf> {
    use std::process::{Command, Stdio};
    let py = std::env::var_os("HYOK_ESDK_PYTHON")
        .map(PathBuf::from)
        .filter(|p| {
            Command::new(p)
                .args(["-c", "import boto3"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    if py.is_none() {
        crate::common::skip(
            test,
            "HYOK_ESDK_PYTHON is unset or lacks boto3 (run scripts/setup-python.sh)",
        );
    }
    py
}

/// Start `hyok gateway` on the box's configuration over a local backend with `bkt`, one
/// credential per `(access key id, secret)` for every bucket; the child and its endpoint.
fn start_gateway(b: &Box_, credentials: &[(&str, &str)]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let d = b.dir.path();
    std::fs::create_dir_all(d.join("backend/bkt")).unwrap();
    let mut cfg = std::fs::read_to_string(b.path("hyok.toml")).unwrap();
    cfg.push_str(&format!(
        "\n[gateway]\nlisten = \"127.0.0.1:0\"\nbackend = \"file://{}/backend/\"\n",
        d.display()
    ));
    for (i, (id, secret)) in credentials.iter().enumerate() {
        let file = format!("c{i}.secret");
        std::fs::write(d.join(&file), format!("{secret}\n")).unwrap();
        std::fs::set_permissions(
            d.join(&file),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        cfg.push_str(&format!(
            "\n[[gateway.credentials]]\naccess_key_id = \"{id}\"\nsecret_access_key_file = \"{file}\"\nbuckets = [\"*\"]\n"
        ));
    }
    std::fs::write(b.path("hyok.toml"), cfg).unwrap();
    let mut cmd = Command::new(crate::common::bin());
    crate::common::hermetic(&mut cmd);
    let mut child = cmd
        .args(["--config", b.path("hyok.toml").to_str().unwrap(), "gateway"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hyok gateway");
    let pipe = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let url = line
                .strip_prefix("hyok gateway: listening on ")
                .map(str::to_owned);
            let _ = tx.send((line, url));
        }
    });
    let mut seen = Vec::new();
    let endpoint = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok((_, Some(url))) => break url,
            Ok((line, None)) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("hyok gateway did not start: {}", seen.join(" | "));
            }
        }
    };
    (child, endpoint)
}

/// Run the boto3 `script` against the gateway, stop the gateway, and return what the
/// script printed (it must succeed).
fn run_client(py: &Path, script: &str, mut child: std::process::Child, endpoint: &str) -> String {
    use std::process::Command;
    let out = Command::new(py)
        .args(["-c", script, endpoint])
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("python");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The gateway decides per credential: the credential is the principal, the object the
/// resource; a denied PUT or GET is S3 AccessDenied and reaches neither backend nor key.
#[test]
fn the_gateway_decides_per_credential() {
    let Some(py) = boto3_python("the_gateway_decides_per_credential") else {
        return;
    };
    let b = Box_::new(GATEWAY_POLICY);
    let d = b.dir.path();
    let (child, endpoint) = start_gateway(
        &b,
        &[
            ("AKIDPOLICYWRITER", "policy-test-writer-secret-0001"),
            ("AKIDPOLICYREADER", "policy-test-reader-secret-0002"),
        ],
    );
    let text = run_client(&py, GATEWAY_CLIENT, child, &endpoint);
    assert!(text.contains("writer put ok"), "{text}");
    assert!(text.contains("writer get allowed"), "{text}");
    assert!(text.contains("reader put AccessDenied"), "{text}");
    assert!(text.contains("reader get AccessDenied"), "{text}");
    // The denied PUT reached no backend.
    let stored: Vec<String> = files(&d.join("backend/bkt"))
        .into_iter()
        .filter(|f| !f.contains(".hyok-") && !f.contains("/."))
        .collect();
    assert!(stored.iter().all(|f| !f.contains("no.txt")), "{stored:?}");
    let log = b.audit_details();
    for want in [
        "allow put by Credential \\\"AKIDPOLICYWRITER\\\"",
        "deny put by Credential \\\"AKIDPOLICYREADER\\\"",
        "deny get by Credential \\\"AKIDPOLICYREADER\\\"",
    ] {
        assert!(log.contains(want), "{want}: {log}");
    }
}

const GATEWAY_POLICY_ALL_CALLS: &str = r#"
@id("gateway-writer")
permit(principal == Hyok::Credential::"AKIDPOLICYWRITER", action, resource);

@id("lister-reads")
permit(principal == Hyok::Credential::"AKIDPOLICYLISTER", action in [Hyok::Action::"get", Hyok::Action::"list", Hyok::Action::"decrypt"], resource);

@id("keep-stays")
forbid(principal, action == Hyok::Action::"delete", resource is Hyok::Object)
when { resource.key like "*/bkt/keep-*" };
"#;

/// The writer does everything once; the reader (no policy permits it) and the lister (get
/// and list only) try HEAD, LIST, DELETE, batch DELETE, COPY and multipart. The calls on
/// a missing key, bucket or upload show that the policy answers before the backend (which
/// would say NoSuchKey, NoSuchBucket, NoSuchUpload).
const GATEWAY_CLIENT_ALL_CALLS: &str = r#"
import sys, boto3, botocore
from botocore.config import Config
ep = sys.argv[1]
def client(ak, sk):
    return boto3.client("s3", endpoint_url=ep, aws_access_key_id=ak, aws_secret_access_key=sk,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
w = client("AKIDPOLICYWRITER", "policy-test-writer-secret-0001")
r = client("AKIDPOLICYREADER", "policy-test-reader-secret-0002")
l = client("AKIDPOLICYLISTER", "policy-test-lister-secret-0003")
def attempt(name, call):
    try:
        out = call()
        print(name, "ALLOWED", out)
    except botocore.exceptions.ClientError as e:
        code = e.response["Error"]["Code"]
        print(name, "AccessDenied" if code == "403" else code)
def batch(c, keys):
    res = c.delete_objects(Bucket="bkt", Delete={"Objects": [{"Key": k} for k in keys]})
    return (sorted(d["Key"] for d in res.get("Deleted", [])),
            sorted((e["Key"], e["Code"]) for e in res.get("Errors", [])))
def multipart(c, bucket, key):
    mp = c.create_multipart_upload(Bucket=bucket, Key=key)
    part = c.upload_part(Bucket=bucket, Key=key, UploadId=mp["UploadId"], PartNumber=1, Body=b"multi")
    c.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=mp["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    return "done"
def complete(c, key):
    return c.complete_multipart_upload(Bucket="bkt", Key=key, UploadId="0" * 32,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": "0" * 32}]})
def keys(c, v1=False, bucket="bkt"):
    res = c.list_objects(Bucket=bucket) if v1 else c.list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in res.get("Contents", []))
def copy(c, dst):
    c.copy_object(Bucket="bkt", Key=dst, CopySource={"Bucket": "bkt", "Key": "ok.txt"})
    return "done"

w.put_object(Bucket="bkt", Key="ok.txt", Body=b"allowed")
w.put_object(Bucket="bkt", Key="keep-1.txt", Body=b"keep")
print("writer head", w.head_object(Bucket="bkt", Key="ok.txt")["ContentLength"])
print("writer copy", copy(w, "copy.txt"))
print("writer multipart", multipart(w, "bkt", "mp.txt"))
print("writer reads", w.get_object(Bucket="bkt", Key="mp.txt")["Body"].read().decode())
print("writer list", keys(w))
w.delete_object(Bucket="bkt", Key="copy.txt")
print("writer delete done")
print("writer batch", batch(w, ["mp.txt", "keep-1.txt"]))

attempt("reader head", lambda: r.head_object(Bucket="bkt", Key="ok.txt"))
attempt("reader head-missing", lambda: r.head_object(Bucket="bkt", Key="nothing.txt"))
attempt("reader list", lambda: keys(r))
attempt("reader list-v1", lambda: keys(r, v1=True))
attempt("reader list-missing-bucket", lambda: keys(r, bucket="nobkt"))
attempt("reader delete", lambda: r.delete_object(Bucket="bkt", Key="ok.txt"))
print("reader batch", batch(r, ["ok.txt"]))
attempt("reader copy", lambda: copy(r, "stolen.txt"))
attempt("reader multipart", lambda: multipart(r, "bkt", "no-mp.txt"))
attempt("reader multipart-missing-bucket", lambda: multipart(r, "nobkt", "no-mp.txt"))
attempt("reader complete-missing-upload", lambda: complete(r, "no-mp.txt"))

print("lister list", keys(l))
print("lister head", l.head_object(Bucket="bkt", Key="ok.txt")["ContentLength"])
attempt("lister copy", lambda: copy(l, "lister-copy.txt"))
attempt("lister delete", lambda: l.delete_object(Bucket="bkt", Key="ok.txt"))
attempt("lister multipart", lambda: multipart(l, "bkt", "no-mp.txt"))
print("writer still reads", w.get_object(Bucket="bkt", Key="ok.txt")["Body"].read().decode())
"#;

/// HEAD (as `get`), LIST (`list`), DELETE and batch DELETE (`delete`, per key), COPY (`get`
/// on the source, `put` on the destination) and multipart (`put` at create and complete)
/// are decided per credential before any backend or key-store call, and audited with the
/// deciding policies.
#[test]
fn the_gateway_decides_head_list_delete_copy_and_multipart() {
    let test = "the_gateway_decides_head_list_delete_copy_and_multipart";
    let Some(py) = boto3_python(test) else {
        return;
    };
    let b = Box_::new(GATEWAY_POLICY_ALL_CALLS);
    let d = b.dir.path();
    let (child, endpoint) = start_gateway(
        &b,
        &[
            ("AKIDPOLICYWRITER", "policy-test-writer-secret-0001"),
            ("AKIDPOLICYREADER", "policy-test-reader-secret-0002"),
            ("AKIDPOLICYLISTER", "policy-test-lister-secret-0003"),
        ],
    );
    let text = run_client(&py, GATEWAY_CLIENT_ALL_CALLS, child, &endpoint);
    for want in [
        "writer head 7",
        "writer copy done",
        "writer multipart done",
        "writer reads multi",
        "writer list ['copy.txt', 'keep-1.txt', 'mp.txt', 'ok.txt']",
        "writer delete done",
        "writer batch (['mp.txt'], [('keep-1.txt', 'AccessDenied')])",
        "reader head AccessDenied",
        "reader head-missing AccessDenied",
        "reader list AccessDenied",
        "reader list-v1 AccessDenied",
        "reader list-missing-bucket AccessDenied",
        "reader delete AccessDenied",
        "reader batch ([], [('ok.txt', 'AccessDenied')])",
        "reader copy AccessDenied",
        "reader multipart AccessDenied",
        "reader multipart-missing-bucket AccessDenied",
        "reader complete-missing-upload AccessDenied",
        "lister list ['keep-1.txt', 'ok.txt']",
        "lister head 7",
        "lister copy AccessDenied",
        "lister delete AccessDenied",
        "lister multipart AccessDenied",
        "writer still reads allowed",
    ] {
        assert!(text.lines().any(|l| l == want), "{want}: {text}");
    }
    // Nothing denied reached the backend: no copy, no upload, nothing deleted.
    let stored = files(&d.join("backend"));
    for absent in ["stolen.txt", "lister-copy.txt", "no-mp.txt", "nobkt"] {
        assert!(
            stored.iter().all(|f| !f.contains(absent)),
            "{absent}: {stored:?}"
        );
    }
    let log = b.audit_details().replace("\\\"", "\"");
    let decided = |verdict: &str, action: &str, who: &str, at: &str, policy: &str| {
        let head = format!("{verdict} {action} by Credential \"AKIDPOLICY{who}\" on file://");
        let tail = format!("/backend/{at}: {policy}");
        assert!(
            log.lines().any(|l| l.contains(&head) && l.contains(&tail)),
            "{head} … {tail}: {log}"
        );
    };
    decided("allow", "get", "WRITER", "bkt/ok.txt", "gateway-writer");
    decided("allow", "list", "WRITER", "bkt/", "gateway-writer");
    decided("allow", "put", "WRITER", "bkt/copy.txt", "gateway-writer");
    decided("allow", "put", "WRITER", "bkt/mp.txt", "gateway-writer");
    decided(
        "allow",
        "delete",
        "WRITER",
        "bkt/copy.txt",
        "gateway-writer",
    );
    decided("allow", "delete", "WRITER", "bkt/mp.txt", "gateway-writer");
    decided("deny", "delete", "WRITER", "bkt/keep-1.txt", "keep-stays");
    decided("deny", "get", "READER", "bkt/ok.txt", "default-deny");
    decided("deny", "get", "READER", "bkt/nothing.txt", "default-deny");
    decided("deny", "list", "READER", "bkt/", "default-deny");
    decided("deny", "list", "READER", "nobkt/", "default-deny");
    decided("deny", "delete", "READER", "bkt/ok.txt", "default-deny");
    decided("deny", "put", "READER", "bkt/no-mp.txt", "default-deny");
    decided("deny", "put", "READER", "nobkt/no-mp.txt", "default-deny");
    decided("allow", "list", "LISTER", "bkt/", "lister-reads");
    decided("allow", "get", "LISTER", "bkt/ok.txt", "lister-reads");
    decided(
        "deny",
        "put",
        "LISTER",
        "bkt/lister-copy.txt",
        "default-deny",
    );
    decided("deny", "delete", "LISTER", "bkt/ok.txt", "default-deny");
    decided("deny", "put", "LISTER", "bkt/no-mp.txt", "default-deny");
}
