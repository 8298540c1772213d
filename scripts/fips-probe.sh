#!/usr/bin/env bash
# Step 1 of the FIPS build plan (docs/CUSTODY.md §4): can this machine build the AWS-LC FIPS
# module that aws-lc-rs's `fips` feature links, and does it run in FIPS mode with the
# primitives hyok needs? Builds a throw-away crate (outside the workspace, own target
# directory) against the same aws-lc-rs version as Cargo.lock, runs it, prints the time.
# Not run by CI. Needs cmake, Go, a C compiler and libclang:
#   apt-get install cmake golang-go clang libclang-dev
#
#   scripts/fips-probe.sh [DIR]      # DIR: where to build (default: a temporary directory)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for tool in cmake go cc; do
    command -v "$tool" >/dev/null || {
        echo "fips-probe: $tool is missing (apt-get install cmake golang-go clang libclang-dev)" >&2
        exit 2
    }
done
version="$(awk '/^name = "aws-lc-rs"$/ {getline; gsub(/"/, "", $3); print $3; exit}' "$REPO_ROOT/Cargo.lock")"
dir="${1:-$(mktemp -d)}"
mkdir -p "$dir/src"
cat >"$dir/Cargo.toml" <<TOML
[package]
name = "hyok-fips-probe"
version = "0.1.0"
edition = "2021"

[dependencies]
aws-lc-rs = { version = "=$version", default-features = false, features = ["fips"] }

[workspace]
TOML
cat >"$dir/src/main.rs" <<'RS'
use aws_lc_rs::{aead, digest, kem, rand};

fn main() {
    match aws_lc_rs::try_fips_mode() {
        Ok(()) => println!("FIPS mode: yes"),
        Err(e) => {
            println!("FIPS mode: no ({e})");
            std::process::exit(1);
        }
    }
    let dk = kem::DecapsulationKey::generate(&kem::ML_KEM_768).expect("ML-KEM-768 keygen");
    let (ct, ss) = dk.encapsulation_key().unwrap().encapsulate().unwrap();
    assert_eq!(dk.decapsulate(ct).unwrap().as_ref(), ss.as_ref());
    println!("ML-KEM-768: ok");
    let d = digest::digest(&digest::SHA3_256, b"abc");
    assert_eq!(d.as_ref()[..4], [0x3a, 0x98, 0x5d, 0xa7]);
    println!("SHA3-256: ok");
    let mut k = [0u8; 32];
    rand::fill(&mut k).unwrap();
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &k).unwrap());
    let mut buf = b"data key".to_vec();
    key.seal_in_place_append_tag(aead::Nonce::assume_unique_for_key([0; 12]), aead::Aad::empty(), &mut buf)
        .unwrap();
    println!("AES-256-GCM: ok");
}
RS
start=$(date +%s)
(cd "$dir" && cargo build --release)
echo "fips-probe: built in $(( $(date +%s) - start )) s (aws-lc-rs $version, fips feature) in $dir"
"$dir/target/release/hyok-fips-probe"
