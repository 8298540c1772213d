//! Large inputs through the CLI's I/O pipeline (a reader thread and a writer thread around
//! the frame crypto, 4 MiB chunks, 4 MiB batches): round trips file to file and through
//! pipes on one and on two crypto threads, and a message broken or cut deep in its body
//! fails with no output file and no unverified byte on stdout.

use std::fs;

use crate::common::{
    self, check_failed, dir_entries, hyok, hyok_stdin, pseudo_random, raw_aes_uri,
};

/// More than three chunks and batches, not a multiple of the frame length.
const SIZE: usize = 13 * 1024 * 1024 + 7;

struct Setup {
    dir: tempfile::TempDir,
    key: String,
    plain: Vec<u8>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("aes.key");
    fs::write(&key_file, pseudo_random(32, 9)).unwrap();
    let key = raw_aes_uri("hyok-test", "pipeline", &key_file);
    let plain = pseudo_random(SIZE, 31);
    fs::write(dir.path().join("plain.bin"), &plain).unwrap();
    Setup { dir, key, plain }
}

#[test]
fn large_inputs_round_trip_file_to_file_and_through_pipes() {
    let s = setup();
    let p = |name: &str| s.dir.path().join(name).display().to_string();
    let mut fails = Vec::new();
    for threads in ["1", "2"] {
        let (enc, dec) = (p(&format!("enc-{threads}")), p(&format!("dec-{threads}")));
        let run = hyok([
            "encrypt",
            &p("plain.bin"),
            "-o",
            &enc,
            "--key",
            &s.key,
            "--threads",
            threads,
        ]);
        if !run.success() {
            fails.push(format!(
                "encrypt file, {threads} threads: {}",
                run.describe()
            ));
            continue;
        }
        let run = hyok([
            "decrypt",
            &enc,
            "-o",
            &dec,
            "--key",
            &s.key,
            "--threads",
            threads,
        ]);
        if !run.success() {
            fails.push(format!(
                "decrypt file, {threads} threads: {}",
                run.describe()
            ));
        } else if fs::read(&dec).unwrap() != s.plain {
            fails.push(format!("decrypt file, {threads} threads: wrong plaintext"));
        }
        let piped = hyok_stdin(["encrypt", "--key", &s.key, "--threads", threads], &s.plain);
        if !piped.success() {
            fails.push(format!(
                "encrypt pipe, {threads} threads: {}",
                piped.describe()
            ));
            continue;
        }
        let back = hyok_stdin(
            ["decrypt", "--key", &s.key, "--threads", threads],
            &piped.stdout,
        );
        if !back.success() {
            fails.push(format!(
                "decrypt pipe, {threads} threads: {}",
                back.describe()
            ));
        } else if back.stdout != s.plain {
            fails.push(format!(
                "decrypt pipe, {threads} threads: {}",
                common::describe_mismatch(&back.stdout, &s.plain)
            ));
        }
    }
    common::report("large round trips", 8, &fails);
}

#[test]
fn large_messages_broken_deep_in_the_body_leave_nothing() {
    let s = setup();
    let p = |name: &str| s.dir.path().join(name);
    let enc = p("enc");
    let run = hyok([
        "encrypt",
        &p("plain.bin").display().to_string(),
        "-o",
        &enc.display().to_string(),
        "--key",
        &s.key,
    ]);
    assert!(run.success(), "encrypt: {}", run.describe());
    let msg = fs::read(&enc).unwrap();
    let mut flipped = msg.clone();
    flipped[9 * 1024 * 1024] ^= 0x10; // a frame in the third batch
    let cut = msg[..10 * 1024 * 1024].to_vec();
    let before = dir_entries(s.dir.path());
    let mut fails = Vec::new();
    for (what, bad) in [("flipped", &flipped), ("cut", &cut)] {
        fs::write(p("bad"), bad).unwrap();
        for threads in ["1", "2"] {
            let out = p("out");
            let run = hyok([
                "decrypt",
                &p("bad").display().to_string(),
                "-o",
                &out.display().to_string(),
                "--key",
                &s.key,
                "--threads",
                threads,
            ]);
            if let Err(e) = check_failed(&run, Some(&out)) {
                fails.push(format!("{what}, file, {threads} threads: {e}"));
            }
            let mut left = dir_entries(s.dir.path());
            left.retain(|n| n != "bad");
            if left != before {
                fails.push(format!("{what}, {threads} threads: left {left:?}"));
            }
            let run = hyok_stdin(["decrypt", "--key", &s.key, "--threads", threads], bad);
            if let Err(e) = check_failed(&run, None) {
                fails.push(format!("{what}, pipe, {threads} threads: {e}"));
            }
            // Only whole verified batches may have gone out before the error.
            if run.stdout.len() >= 9 * 1024 * 1024 || !s.plain.starts_with(&run.stdout) {
                fails.push(format!(
                    "{what}, pipe, {threads} threads: released {} bytes that are not a verified prefix",
                    run.stdout.len()
                ));
            }
        }
    }
    common::report("large broken messages", 8, &fails);
}
