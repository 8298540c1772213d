#!/usr/bin/env bash
# The FIPS build of hyok (issue 14; docs/CUSTODY.md §4): builds `hyok` with `--features fips`
# (aws-lc-rs on the AWS-LC FIPS 140-3 module, aws-lc-fips-sys), checks that it runs in FIPS
# mode, and runs in that build the ESDK decrypt vectors (signed suites included), the
# interop tests against the official Python ESDK (0x0478 and the signed 0x0578, both ways),
# the FIPS refusal tests and hyok-evp's ECDSA tests (every signature and verification there
# also passes the module's service-indicator check). Not run by CI: the first build compiles
# the FIPS module from source (cmake + Go; 20 to 50 minutes on a busy 2-core machine).
#
#   scripts/fips-test.sh            # build, `hyok --version`, vectors, interop, refusals, ECDSA
#   scripts/fips-test.sh --bench    # then also FIPS vs default throughput (1 GiB file to
#                                   # file, 4 KiB messages in process), a markdown table
#   scripts/fips-test.sh --bench-only   # the measurement alone
#
# Uses the same target directory as the default build (different features make different
# artifacts; only the uplifted target/release/hyok is shared: the last build wins, so run a
# default `cargo build` afterwards before other tests). Installs cmake, Go and a C/C++
# compiler with apt-get when missing. Service settings (HYOK_ESDK_PYTHON …) come from the
# environment (e.g. `source /work/services.env`); without HYOK_ESDK_PYTHON it creates .venv
# with scripts/setup-python.sh.
# Settings for --bench: HYOK_BENCH_DIR (scratch, needs 4 × the file size; default
# target/fips-bench), HYOK_BENCH_MIB (1024), HYOK_BENCH_REPS (3).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"

bench=0
case "${1:-}" in
  "") ;;
  --bench) bench=1 ;;
  --bench-only) bench=2 ;;
  *)
    echo "usage: scripts/fips-test.sh [--bench | --bench-only]" >&2
    exit 2
    ;;
esac

note() { printf '== fips-test: %s\n' "$*" >&2; }
die() {
  printf 'fips-test: error: %s\n' "$*" >&2
  exit 1
}

# --- what the FIPS module's build needs --------------------------------------------------
need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v go >/dev/null 2>&1 || need_apt+=(golang-go)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
[[ -x /usr/bin/time ]] || need_apt+=(time)
if ((${#need_apt[@]})); then
  note "installing ${need_apt[*]} (apt)"
  sudo_cmd=()
  [[ "$(id -u)" -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >/dev/null
fi
if [[ -z "${HYOK_ESDK_PYTHON:-}" ]]; then
  scripts/setup-python.sh
  export HYOK_ESDK_PYTHON="$REPO_ROOT/.venv/bin/python"
fi

# --- build ---------------------------------------------------------------------------
if ((bench < 2)); then
# One build of the test binary and the `hyok` program it runs: `cargo test -p hyok-cli`
# unifies features with the dev-dependencies, so a separate `cargo build -p hyok-cli` would
# compile much of the graph a second time.
TESTS=(vectors:: interop:: fips:: custody::version_names_the_crypto_mode)
t0=$SECONDS
note "building hyok and its tests with --features fips (the first build compiles the AWS-LC FIPS module)"
cargo test --release -p hyok-cli --features fips --test it --no-run
note "built in $((SECONDS - t0)) s"
version="$("$TARGET/release/hyok" --version)"
printf '%s\n' "$version"
grep -q 'FIPS 140-3 mode: yes' <<<"$version" || die "the FIPS build does not run in FIPS mode"

# Which AWS-LC copies the binary holds: aws-lc-fips-sys prefixes its symbols aws_lc_fips_*,
# the default aws-lc-sys aws_lc_0_* (still compiled, as rustls asks for it, but unused).
syms="$(nm "$TARGET/release/hyok" 2>/dev/null || true)"
fips_syms=$(grep -c ' aws_lc_fips_' <<<"$syms" || true)
default_syms=$(grep -c ' aws_lc_0_' <<<"$syms" || true)
note "AWS-LC symbols in the binary: FIPS module $fips_syms, default aws-lc-sys $default_syms"
((fips_syms > 0)) || die "no symbol of the FIPS module in the binary"
((default_syms == 0)) || die "the default (non-FIPS) AWS-LC is linked into the FIPS build"

# --- tests in the FIPS build -------------------------------------------------------------
t1=$SECONDS
note "ESDK vectors, Python ESDK interop and FIPS refusals in the FIPS build"
cargo test --release -p hyok-cli --features fips --test it -- "${TESTS[@]}"
note "tests ran in $((SECONDS - t1)) s"
# ECDSA of the signed suites through the module's streaming EVP_DigestSign/Verify service
# (crates/hyok-evp): interop with RustCrypto and aws-lc-rs, malformed keys and signatures.
t2=$SECONDS
note "hyok-evp's ECDSA tests in the FIPS build"
cargo test --release -p hyok-evp --features fips
note "hyok-evp tests built and ran in $((SECONDS - t2)) s"
fi

((bench)) || exit 0

# --- FIPS vs default throughput ----------------------------------------------------------
D="${HYOK_BENCH_DIR:-$TARGET/fips-bench}"
MIB="${HYOK_BENCH_MIB:-1024}"
REPS="${HYOK_BENCH_REPS:-3}"
mkdir -p "$D"
free_kib=$(df -Pk "$D" | awk 'NR == 2 { print $4 }')
((free_kib > 5 * MIB * 1024)) || die "$D: $((free_kib / 1024)) MiB free, need $((5 * MIB)) MiB"

note "building the benchmark binaries (FIPS, then default)"
cargo build --release --quiet -p hyok-cli --bin hyok -p hyok --example bench --features fips
cp "$TARGET/release/hyok" "$D/hyok-fips"
cp "$TARGET/release/examples/bench" "$D/bench-fips"
cargo build --release --quiet -p hyok-cli --bin hyok -p hyok --example bench
cp "$TARGET/release/hyok" "$D/hyok-default"
cp "$TARGET/release/examples/bench" "$D/bench-default"
grep -q 'mode: yes' <<<"$("$D/hyok-fips" --version)" || die "hyok-fips is not a FIPS build"
grep -q 'mode: no' <<<"$("$D/hyok-default" --version)" || die "hyok-default is a FIPS build"

IN="$D/input.bin"
SIZE=$((MIB * 1024 * 1024))
if [[ ! -f "$IN" || "$(stat -c %s "$IN")" -ne "$SIZE" ]]; then
  note "writing $MIB MiB of random test data"
  head -c "$SIZE" /dev/urandom >"$IN.tmp"
  mv "$IN.tmp" "$IN"
fi
[[ -f "$D/aes.key" ]] || head -c 32 /dev/urandom >"$D/aes.key"
KEY_URI="raw-aes:bench/key?file=$D/aes.key"
RESULTS="$D/results.txt"
: >"$RESULTS"

# One timed run, as bench/run.sh does it: after `settle` (bench/settle.sh).
# shellcheck source=bench/settle.sh
source bench/settle.sh
run() {
  local name=$1
  shift
  settle "$IN" "$D"
  /usr/bin/time -f '%e' -o "$D/time.out" "$@" >/dev/null 2>"$D/stderr.out" ||
    {
      cat "$D/stderr.out" >&2
      die "$name failed"
    }
  echo "$name $(tail -n 1 "$D/time.out")" >>"$RESULTS"
}
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for ((round = 1; round <= REPS; round++)); do
  note "file to file, round $round of $REPS ($MIB MiB)"
  order=(default fips)
  ((round % 2)) || order=(fips default)
  for v in "${order[@]}"; do
    run "${v}_encrypt" "$D/hyok-$v" encrypt "$IN" -o "$D/enc" --key "$KEY_URI"
    run "${v}_decrypt" "$D/hyok-$v" decrypt "$D/enc" -o "$D/out" --key "$KEY_URI"
    ((round > 1)) || cmp -s "$IN" "$D/out" || die "$v: the decrypted file differs"
    rm -f "$D/enc" "$D/out"
    # The signed suite 0x0578: ECDSA P-384 over the whole message (hyok-evp, streaming).
    run "${v}_sencrypt" "$D/hyok-$v" encrypt "$IN" -o "$D/enc" --key "$KEY_URI" \
      --suite committed-signed
    run "${v}_sdecrypt" "$D/hyok-$v" decrypt "$D/enc" -o "$D/out" --key "$KEY_URI"
    ((round > 1)) || cmp -s "$IN" "$D/out" || die "$v: the decrypted signed file differs"
    rm -f "$D/enc" "$D/out"
  done
done
note "in process: 10,000 messages of 4 KiB, and a 256 MiB buffer (one thread)"
for v in default fips; do
  "$D/bench-$v" --mib 256 --messages 10000 --message-size 4096 --reps 3 --threads 1 \
    >"$D/inproc-$v.txt"
  # Signed suite: 4 KiB messages (a fresh P-384 key pair and signature each) and a buffer.
  "$D/bench-$v" --mib 64 --messages 5000 --message-size 4096 --reps 3 --threads 1 \
    --suite committed-signed | sed 's/^/signed_/' >>"$D/inproc-$v.txt"
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

best() { awk -v n="$1" '$1 == n { if (b == "" || $2 < b) b = $2 } END { print b }' "$RESULTS"; }
rate() { awk -v s="$1" -v m="$MIB" 'BEGIN { printf "%.0f", m / s }'; }
inproc() { awk -v n="$2" '$1 == n { print $2 }' "$D/inproc-$1.txt"; }
{
  echo "| measurement | default build | FIPS build | FIPS / default |"
  echo "|---|---:|---:|---:|"
  for op in encrypt decrypt sencrypt sdecrypt; do
    d=$(best "default_$op")
    f=$(best "fips_$op")
    label="${op#s}"
    [[ "$op" == "$label" ]] || label="$label --suite committed-signed"
    echo "| \`hyok $label\` $MIB MiB file to file, best of $REPS | $d s ($(rate "$d") MiB/s) | $f s ($(rate "$f") MiB/s) | $(awk -v d="$d" -v f="$f" 'BEGIN { printf "%.2f", d / f }') |"
  done
  for m in msg_encrypt msg_decrypt lib_encrypt_1t lib_decrypt_1t bare_seal \
    signed_msg_encrypt signed_msg_decrypt signed_lib_encrypt_1t signed_lib_decrypt_1t; do
    d=$(inproc default "$m")
    f=$(inproc fips "$m")
    unit=$(awk -v n="$m" '$1 == n { print $3 }' "$D/inproc-default.txt")
    echo "| in process \`$m\` | $d $unit | $f $unit | $(awk -v d="$d" -v f="$f" 'BEGIN { printf "%.2f", f / d }') |"
  done
  echo
  echo "Load average before $load_before, after $load_after; $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')."
} | tee "$D/table.md"
rm -f "$IN" "$D/enc" "$D/out" "$D/scratch"
note "table in $D/table.md"
