//! Issue 14, FIPS build (`--features fips`, docs/CUSTODY.md §4): what that build refuses
//! from the command line. Compiled only into the FIPS build's test binary
//! (`scripts/fips-test.sh`); the vectors' refusals (PKCS#1 v1.5) are in `vectors.rs`. The
//! signed suites are not refused: `interop::signed_suite_both_ways` runs them in that build.

use crate::common::{hyok, pseudo_random, raw_aes_uri};

/// `hyok key new mlkem768-x25519` and a `pq-escrow:` key are refused (X25519 is not an
/// approved key-establishment scheme).
#[test]
fn pq_escrow_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("pq");
    let run = hyok([
        "key".to_string(),
        "new".into(),
        "mlkem768-x25519".into(),
        "-o".into(),
        base.display().to_string(),
    ]);
    assert!(
        !run.success(),
        "key new mlkem768-x25519: {}",
        run.describe()
    );
    assert!(
        run.stderr.contains("is not available in a FIPS build"),
        "{}",
        run.describe()
    );
    assert!(
        !dir.path().join("pq.key").exists(),
        "a private key file was written"
    );
    let input = dir.path().join("in");
    std::fs::write(&input, pseudo_random(100, 1)).unwrap();
    let out = dir.path().join("ct");
    let run = hyok([
        "encrypt".to_string(),
        input.display().to_string(),
        "-o".into(),
        out.display().to_string(),
        "--key".into(),
        format!(
            "pq-escrow:ns/escrow?public={}",
            dir.path().join("pq.pub").display()
        ),
    ]);
    assert!(!run.success(), "encrypt with pq-escrow: {}", run.describe());
    assert!(!out.exists(), "output left behind");
    assert!(
        run.stderr
            .contains("pq-escrow (X-Wing) is not available in a FIPS build"),
        "{}",
        run.describe()
    );
}

/// A k-of-n keyring is refused (Shamir's scheme is not an approved key-splitting method),
/// while the same keys without a threshold encrypt.
#[test]
fn threshold_keyring_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut keys = Vec::new();
    for i in 0..3u8 {
        let f = dir.path().join(format!("k{i}.key"));
        std::fs::write(&f, [i + 1; 32]).unwrap();
        keys.push(raw_aes_uri("ns", &format!("k{i}"), &f));
    }
    let input = dir.path().join("in");
    std::fs::write(&input, pseudo_random(1000, 2)).unwrap();
    let out = dir.path().join("ct");
    let mut args = vec!["encrypt".to_string(), "--threshold".into(), "2".into()];
    for k in &keys {
        args.extend(["--key".to_string(), k.clone()]);
    }
    args.extend([
        input.display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ]);
    let run = hyok(&args);
    assert!(!run.success(), "encrypt --threshold 2: {}", run.describe());
    assert!(!out.exists(), "output left behind");
    assert_eq!(
        run.code,
        Some(2),
        "a refused keyring is a configuration error"
    );
    assert!(
        run.stderr
            .contains("a k-of-n keyring is not available in a FIPS build (Shamir"),
        "{}",
        run.describe()
    );
    args.drain(1..3);
    let run = hyok(&args);
    assert!(
        run.success(),
        "encrypt without a threshold: {}",
        run.describe()
    );
}
