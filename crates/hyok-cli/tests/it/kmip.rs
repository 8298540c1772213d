//! `hyok` with KMIP keys (`kmip://HOST:PORT/ID`), against the PyKMIP server of
//! `scripts/services/kmip.sh`: key new/list/destroy, round trips by name and by unique
//! identifier, failures as exit 1 with one line naming the cause and no output file, and one
//! message wrapped by an HSM, Vault and KMIP at once that each store decrypts alone.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{
    dead_addr, failed, hyok_env, key_store_failure_cases, message_edks, pseudo_random, raw_aes_uri,
    skip, tamper_inside, unique, Case, Run,
};

/// Longest any one `hyok` run may take here (the binary bounds its own waits far below it).
const LIMIT: Duration = Duration::from_secs(90);

struct Server {
    addr: String,
}

fn server(test: &str) -> Option<Server> {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    match (
        var("HYOK_KMIP_ADDR"),
        var("HYOK_KMIP_CA"),
        var("HYOK_KMIP_CERT"),
        var("HYOK_KMIP_KEY"),
    ) {
        (Some(addr), Some(_), Some(_), Some(_)) => Some(Server { addr }),
        _ => {
            skip(
                &format!("kmip::{test}"),
                "HYOK_KMIP_ADDR/CA/CERT/KEY not set (eval \"$(scripts/services/kmip.sh)\")",
            );
            None
        }
    }
}

impl Server {
    fn uri(&self, id: &str) -> String {
        format!("kmip://{}/{id}", self.addr)
    }
}

fn run(args: &[&str]) -> Run {
    hyok_env(args, &[], &[], None, LIMIT)
}

fn ok(r: Run, what: &str) -> Run {
    assert!(r.success(), "{what}: {}", r.describe());
    r
}

/// `key new` prints the key's URI by unique identifier.
fn new_key(s: &Server, name: &str) -> String {
    let r = ok(
        run(&["key", "new", "aes-256", "-o", &s.uri(name)]),
        "key new",
    );
    let uri = r.stdout_text().trim().to_owned();
    assert!(uri.starts_with(&format!("kmip://{}/", s.addr)), "{uri}");
    assert!(r.stderr.contains("unique identifier"), "{}", r.stderr);
    uri
}

#[test]
fn round_trip_list_and_destroy() {
    let Some(s) = server("round_trip_list_and_destroy") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let name = unique("hyok-cli-kmip");
    let by_id = new_key(&s, &name);
    let uid = by_id.rsplit('/').next().unwrap().to_owned();
    let by_name = s.uri(&name);

    let plain = pseudo_random(300_000, 9);
    std::fs::write(p("plain"), &plain).unwrap();
    ok(
        run(&[
            "encrypt",
            "-k",
            &by_name,
            "-c",
            "app=ledger",
            &p("plain"),
            "-o",
            &p("msg"),
        ]),
        "encrypt by name",
    );
    ok(
        run(&["decrypt", "-k", &by_id, &p("msg"), "-o", &p("out")]),
        "decrypt by id",
    );
    assert_eq!(std::fs::read(p("out")).unwrap(), plain);
    let edks = message_edks(&std::fs::read(p("msg")).unwrap());
    assert_eq!(edks[0].provider_id, "kmip");
    assert_eq!(edks[0].provider_info, uid.as_bytes());

    let listed = ok(run(&["key", "list", &s.uri("")]), "key list");
    let line = listed
        .stdout_text()
        .lines()
        .find(|l| l.starts_with(&format!("{name}\t{uid}\t")))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{name} not listed: {}", listed.stdout_text()));
    assert!(
        line.contains("AES-256") && line.contains("state=Active"),
        "{line}"
    );

    let r = run(&["key", "rotate", &by_name]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert!(r.stderr.contains("no versions"), "{}", r.stderr);

    ok(run(&["key", "destroy", "--yes", &by_name]), "key destroy");
    let r = run(&["decrypt", "-k", &by_id, &p("msg"), "-o", &p("out2")]);
    failed(
        &r,
        Path::new(&p("out2")),
        "key not found",
        "decrypt after destroy",
    )
    .unwrap();
}

/// A self-signed client certificate the server does not trust; `None` without openssl.
fn rogue_certificate(dir: &Path) -> Option<(String, String)> {
    let key = dir.join("rogue.key");
    let cert = dir.join("rogue.crt");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=hyok-rogue-client"])
        .args(["-addext", "extendedKeyUsage=clientAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .is_ok_and(|o| o.status.success());
    made.then(|| (cert.display().to_string(), key.display().to_string()))
}

#[test]
fn failures_are_one_line_exit_1_without_output() {
    let Some(s) = server("failures_are_one_line_exit_1_without_output") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let (fplain, fmsg, ftampered) = (p("plain"), p("msg"), p("tampered"));
    let Some((cert, key)) = rogue_certificate(dir.path()) else {
        skip(
            "kmip::failures_are_one_line_exit_1_without_output",
            "openssl is not installed",
        );
        return;
    };
    let name = unique("hyok-cli-kfail");
    let uri = new_key(&s, &name);
    let plain = pseudo_random(5000, 10);
    std::fs::write(&fplain, &plain).unwrap();
    ok(
        run(&[
            "encrypt",
            "-k",
            &uri,
            "-c",
            "tenant=acme",
            "--required-context",
            "tenant",
            &fplain,
            "-o",
            &fmsg,
        ]),
        "encrypt",
    );
    let mut tampered = std::fs::read(&fmsg).unwrap();
    let edk = message_edks(&tampered).remove(0);
    assert!(tamper_inside(&mut tampered, &edk.ciphertext));
    std::fs::write(&ftampered, &tampered).unwrap();

    let down = format!("kmip://{}/{name}", dead_addr());
    let missing = s.uri(&unique("hyok-cli-missing"));
    let out = p("out");
    let ctx = ["-c", "tenant=acme"];
    let rogue = [
        ("HYOK_KMIP_CERT", cert.as_str()),
        ("HYOK_KMIP_KEY", key.as_str()),
    ];
    let mut cases: Vec<Case<'_>> = vec![
        (
            "server down (encrypt)",
            vec!["encrypt", "-k", &down, &fplain, "-o", &out],
            vec![],
            "cannot connect",
        ),
        (
            "server down (decrypt)",
            vec!["decrypt", "-k", &down, ctx[0], ctx[1], &fmsg, "-o", &out],
            vec![],
            "cannot connect",
        ),
        (
            "wrong client certificate (encrypt)",
            vec!["encrypt", "-k", &uri, &fplain, "-o", &out],
            rogue.to_vec(),
            "certificate",
        ),
        (
            "wrong client certificate (decrypt)",
            vec!["decrypt", "-k", &uri, ctx[0], ctx[1], &fmsg, "-o", &out],
            rogue.to_vec(),
            "certificate",
        ),
        (
            "server certificate not trusted",
            vec!["encrypt", "-k", &uri, &fplain, "-o", &out],
            vec![("HYOK_KMIP_CA", cert.as_str())],
            "not trusted",
        ),
    ];
    cases.extend(key_store_failure_cases(
        &uri, &missing, ctx, &fplain, &fmsg, &ftampered, &out,
    ));
    let mut problems = Vec::new();
    for (what, args, env, word) in &cases {
        let r = hyok_env(args, env, &[], None, LIMIT);
        if let Err(e) = failed(&r, Path::new(&out), word, what) {
            problems.push(e);
        }
    }
    crate::common::report("kmip failures", cases.len(), &problems);
    let _ = run(&["key", "destroy", "--yes", &uri]);
}

/// The acceptance case: one message wrapped by an HSM key (PKCS#11), Vault Transit and
/// KMIP at once — plus a raw AES key — decrypts with any one of them alone.
#[test]
fn one_message_hsm_vault_kmip_each_decrypts_alone() {
    let test = "one_message_hsm_vault_kmip_each_decrypts_alone";
    let Some(s) = server(test) else {
        return;
    };
    let Ok(vault_addr) = std::env::var("VAULT_ADDR") else {
        skip(
            &format!("kmip::{test}"),
            "VAULT_ADDR not set (eval \"$(scripts/services/openbao.sh)\")",
        );
        return;
    };
    let Some(token) = std::env::var("HYOK_TEST_PKCS11_TOKEN")
        .ok()
        .filter(|t| !t.is_empty() && std::env::var_os("HYOK_PKCS11_MODULE").is_some())
    else {
        skip(
            &format!("kmip::{test}"),
            "HYOK_TEST_PKCS11_TOKEN/HYOK_PKCS11_MODULE not set (eval \"$(scripts/services/softhsm.sh)\")",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let kmip_uri = new_key(&s, &unique("hyok-cli-multi"));
    let vault_uri = format!(
        "vault-transit:{}?addr={vault_addr}",
        unique("hyok-cli-multi")
    );
    ok(
        run(&["key", "new", "aes-256", "-o", &vault_uri]),
        "vault key new",
    );
    let hsm = ok(
        run(&[
            "key",
            "new",
            "aes-256",
            "-o",
            &format!("pkcs11:token={token};object={}", unique("hyok-cli-multi")),
        ]),
        "pkcs11 key new",
    );
    let hsm_uri = hsm.stdout_text().trim().to_owned();
    ok(
        run(&["key", "new", "aes-256", "-o", &p("raw.key")]),
        "raw key new",
    );
    let raw_uri = raw_aes_uri("hyok-test", "multi", Path::new(&p("raw.key")));

    let plain = pseudo_random(100_000, 11);
    std::fs::write(p("plain"), &plain).unwrap();
    ok(
        run(&[
            "encrypt",
            "-k",
            &hsm_uri,
            "-k",
            &vault_uri,
            "-k",
            &kmip_uri,
            "-k",
            &raw_uri,
            "-c",
            "x=y",
            &p("plain"),
            "-o",
            &p("msg"),
        ]),
        "encrypt for four stores",
    );
    let edks = message_edks(&std::fs::read(p("msg")).unwrap());
    let providers: Vec<&str> = edks.iter().map(|e| e.provider_id.as_str()).collect();
    assert_eq!(providers.len(), 4, "{providers:?}");
    assert_eq!(&providers[1..], ["vault-transit", "kmip", "hyok-test"]);
    for (i, key) in [&hsm_uri, &vault_uri, &kmip_uri, &raw_uri]
        .iter()
        .enumerate()
    {
        let out = p(&format!("out{i}"));
        ok(run(&["decrypt", "-k", key, &p("msg"), "-o", &out]), key);
        assert_eq!(std::fs::read(&out).unwrap(), plain, "{key}");
    }
    let _ = run(&["key", "destroy", "--yes", &kmip_uri]);
    let _ = run(&["key", "destroy", "--yes", &hsm_uri]);
}
