//! Per-message ECDSA P-384 cost of a signed ESDK message, before and after hyok-evp.
//!
//! ```text
//! cargo run --release -p hyok-evp --example ecdsa_bench -- [--messages 2000] [--size 4096]
//! ```
//!
//! `rustcrypto_*`: what hyok-core did before hyok-evp: a random scalar into the RustCrypto
//! `p384` crate, SHA-384 of the message with aws-lc-rs, `sign_prehash`; on the reading side
//! `from_sec1_bytes` and `verify_prehash`. `evp_*`: what it does now: key generation in
//! AWS-LC, the compressed public point, `EVP_DigestSign*` over the message; on the reading
//! side the point parsed and `EVP_DigestVerify*`. `*_sign` includes key generation and the
//! public key encoding (one key per message), `*_verify` the parsing of the public key.
//! Prints `name value msg/s` lines, each the best of 3 runs.

use std::time::Instant;

use aws_lc_rs::digest;
use hyok_evp::{Curve, Signer, SigningKey, Verifier, VerifyingKey};
use p384::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};

fn best_rate(n: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    n as f64 / best
}

fn main() {
    let mut n = 2000usize;
    let mut size = 4096usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v: usize = args
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{a} needs a number"));
        match a.as_str() {
            "--messages" => n = v,
            "--size" => size = v,
            _ => panic!("unknown argument {a}"),
        }
    }
    let msg: Vec<u8> = (0..size).map(|i| i as u8).collect();

    // Before: RustCrypto p384 over an aws-lc-rs SHA-384 prehash.
    let mut sigs = Vec::with_capacity(n);
    let rate = best_rate(n, || {
        sigs.clear();
        for _ in 0..n {
            let mut scalar = [0u8; 48];
            aws_lc_rs::rand::fill(&mut scalar).unwrap();
            let key = p384::ecdsa::SigningKey::from_slice(&scalar).unwrap();
            let public = key.verifying_key().to_encoded_point(true);
            let d = digest::digest(&digest::SHA384, &msg);
            let s: p384::ecdsa::Signature = key.sign_prehash(d.as_ref()).unwrap();
            sigs.push((public.as_bytes().to_vec(), s.to_der().as_bytes().to_vec()));
        }
    });
    println!("rustcrypto_sign {rate:.0} msg/s");
    let rate = best_rate(n, || {
        for (public, der) in &sigs {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(public).unwrap();
            let d = digest::digest(&digest::SHA384, &msg);
            let s = p384::ecdsa::Signature::from_der(der).unwrap();
            vk.verify_prehash(d.as_ref(), &s).unwrap();
        }
    });
    println!("rustcrypto_verify {rate:.0} msg/s");

    // Now: AWS-LC's streaming EVP service.
    let rate = best_rate(n, || {
        sigs.clear();
        for _ in 0..n {
            let key = SigningKey::generate(Curve::P384).unwrap();
            let public = key.public_key_compressed().unwrap();
            let mut s = Signer::new(&key).unwrap();
            s.update(&msg).unwrap();
            sigs.push((public, s.sign().unwrap()));
        }
    });
    println!("evp_sign {rate:.0} msg/s");
    let rate = best_rate(n, || {
        for (public, der) in &sigs {
            let vk = VerifyingKey::from_sec1(Curve::P384, public).unwrap();
            let mut v = Verifier::new(&vk).unwrap();
            v.update(&msg).unwrap();
            v.verify(der).unwrap();
        }
    });
    println!("evp_verify {rate:.0} msg/s");
}
