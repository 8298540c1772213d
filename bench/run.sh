#!/usr/bin/env bash
# hyok's core benchmark: measures, in one run on this machine, the limits (AES-GCM per core,
# a plain dd copy), hyok file to file and in process, and the peers (age, the Python ESDK,
# Tink's Python streaming AEAD) on the same file, and writes the results as ratios into
# docs/BENCHMARKS.md between <!-- core-bench:begin --> and <!-- core-bench:end --> (other
# sections of that file are kept; the file is created when missing).
#
#   bench/run.sh        # 5 to 10 minutes on 2 cores; installs what it needs (apt, pip)
#
# Settings (environment):
#   HYOK_BENCH_DIR       scratch directory (default <repo>/target/bench; needs about 6 GiB)
#   HYOK_BENCH_MIB       size of the test file in MiB (default 1024)
#   HYOK_BENCH_REPS      rounds of the file-to-file runs; the best run of each is kept (5)
#   HYOK_BENCH_ESDK_MIB  the Python ESDK holds the whole file in memory and is slow: it runs
#                        on the first this-many MiB of the same file (default 256)
#   HYOK_BENCH_OUT       the markdown file to update (default <repo>/docs/BENCHMARKS.md)
#
# Absolute times drift on a shared machine; ratios measured in one run hold. Runs are
# interleaved round by round so that a change in load hits every tool alike.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
# shellcheck source=bench/settle.sh
source "$REPO_ROOT/bench/settle.sh"
BENCH_DIR="${HYOK_BENCH_DIR:-$REPO_ROOT/target/bench}"
MIB="${HYOK_BENCH_MIB:-1024}"
REPS="${HYOK_BENCH_REPS:-5}"
ESDK_MIB="${HYOK_BENCH_ESDK_MIB:-256}"
OUT_MD="${HYOK_BENCH_OUT:-$REPO_ROOT/docs/BENCHMARKS.md}"
TINK_REQUIREMENT="tink==1.16.1"
((ESDK_MIB <= MIB)) || ESDK_MIB=$MIB

note() { printf '== bench: %s\n' "$*" >&2; }
die() {
  printf 'bench: error: %s\n' "$*" >&2
  exit 1
}
t_start=$SECONDS

# --- tools -------------------------------------------------------------------------------
need_apt=()
command -v age >/dev/null 2>&1 && command -v age-keygen >/dev/null 2>&1 || need_apt+=(age)
[[ -x /usr/bin/time ]] || need_apt+=(time)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if ((${#need_apt[@]})); then
  note "installing ${need_apt[*]} (apt)"
  sudo_cmd=()
  [[ "$(id -u)" -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >/dev/null
fi
scripts/setup-python.sh
PY="$REPO_ROOT/.venv/bin/python"
if ! "$PY" -c 'import tink' >/dev/null 2>&1; then
  note "installing $TINK_REQUIREMENT into .venv (pip)"
  "$PY" -m pip install -q --disable-pip-version-check "$TINK_REQUIREMENT" >/dev/null
fi

note "building hyok and the in-process benchmark (release)"
cargo build --release --quiet -p hyok-cli --bin hyok
cargo build --release --quiet -p hyok --example bench
TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
mkdir -p "$BENCH_DIR/bin"
# Private copies: a later build cannot change the binaries under measurement.
cp "$TARGET/release/hyok" "$TARGET/release/examples/bench" "$BENCH_DIR/bin/"
HYOK="$BENCH_DIR/bin/hyok"
INPROC="$BENCH_DIR/bin/bench"

# --- data and keys -----------------------------------------------------------------------
D="$BENCH_DIR"
IN="$D/input.bin"
SIZE=$((MIB * 1024 * 1024))
if [[ ! -f "$IN" || "$(stat -c %s "$IN")" -ne "$SIZE" ]]; then
  note "writing $MIB MiB of random test data"
  head -c "$SIZE" /dev/urandom >"$IN.tmp"
  mv "$IN.tmp" "$IN"
fi
ESDK_IN="$D/input-esdk.bin"
if [[ ! -f "$ESDK_IN" || "$(stat -c %s "$ESDK_IN")" -ne $((ESDK_MIB * 1024 * 1024)) ]]; then
  head -c $((ESDK_MIB * 1024 * 1024)) "$IN" >"$ESDK_IN"
fi
[[ -f "$D/aes.key" ]] || head -c 32 /dev/urandom >"$D/aes.key"
KEY_URI="raw-aes:bench/key?file=$D/aes.key"
[[ -f "$D/age.key" ]] || age-keygen -o "$D/age.key" 2>/dev/null
AGE_RECIPIENT="$(age-keygen -y "$D/age.key")"
[[ -f "$D/tink.json" ]] || "$PY" bench/tink_peer.py keygen "$D/tink.json"
ESDK_PEER=(env PYTHONWARNINGS=ignore "$PY" tests/interop/esdk_peer.py)
ESDK_KEY=(--key-file "$D/aes.key" --key-namespace bench --key-name key)

# --- measuring ---------------------------------------------------------------------------
RESULTS="$D/results.txt"
: >"$RESULTS"
TIMES="$D/time.out"
ERRS="$D/stderr.out"

# run NAME CMD...: one timed run, after `settle` (bench/settle.sh); appends
# "NAME wall user sys maxrss_kib".
run() {
  local name=$1
  shift
  settle "$IN" "$D"
  if ! /usr/bin/time -f '%e %U %S %M' -o "$TIMES" "$@" >/dev/null 2>"$ERRS"; then
    cat "$ERRS" >&2
    die "$name failed: $*"
  fi
  echo "$name $(tail -n 1 "$TIMES")" >>"$RESULTS"
}

same() { cmp -s "$1" "$2" || die "$3: the decrypted file differs from the input"; }

cat >"$D/meta.txt" <<EOF
date $(date -u '+%Y-%m-%d %H:%M UTC')
cpu $(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
cores $(nproc)
kernel $(uname -r)
commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo '+changes')
load_before $(cut -d' ' -f1-3 /proc/loadavg)
mib $MIB
esdk_mib $ESDK_MIB
reps $REPS
age $(age --version 2>/dev/null || echo '?')
openssl $(openssl version | cut -d' ' -f2)
esdk $("$PY" -c 'from importlib.metadata import version; print(version("aws-encryption-sdk"))')
tink $("$PY" -c 'from importlib.metadata import version; print(version("tink"))')
EOF

note "openssl speed (AES-256-GCM, 64 KiB blocks, one core)"
openssl speed -evp aes-256-gcm -bytes 65536 -seconds 3 2>/dev/null |
  awk '/^AES-256-GCM/ { v = $2; sub(/k$/, "", v); print "openssl_gcm " v * 1000 }' >>"$D/meta.txt"

step_dd() {
  run dd dd if="$IN" of="$D/out.dd" bs=4M
  rm -f "$D/out.dd"
  run dd_256k dd if="$IN" of="$D/out.dd" bs=256K
  rm -f "$D/out.dd"
  run dd_fsync dd if="$IN" of="$D/out.dd" bs=4M conv=fsync
  rm -f "$D/out.dd"
}
step_hyok() {
  run hyok_encrypt "$HYOK" encrypt "$IN" -o "$D/enc.hyok" --key "$KEY_URI"
  run hyok_decrypt "$HYOK" decrypt "$D/enc.hyok" -o "$D/out.hyok" --key "$KEY_URI"
  ((round > 1)) || same "$IN" "$D/out.hyok" hyok
  rm -f "$D/out.hyok" "$D/enc.hyok"
}
step_hyok_fsync() {
  run hyok_encrypt_fsync "$HYOK" encrypt "$IN" -o "$D/enc.hyok" --key "$KEY_URI" --fsync
  run hyok_decrypt_fsync "$HYOK" decrypt "$D/enc.hyok" -o "$D/out.hyok" --key "$KEY_URI" --fsync
  rm -f "$D/out.hyok" "$D/enc.hyok"
}
step_age() {
  run age_encrypt age -r "$AGE_RECIPIENT" -o "$D/enc.age" "$IN"
  run age_decrypt age -d -i "$D/age.key" -o "$D/out.age" "$D/enc.age"
  ((round > 1)) || same "$IN" "$D/out.age" age
  rm -f "$D/out.age" "$D/enc.age"
}
step_tink() {
  run tink_encrypt "$PY" bench/tink_peer.py encrypt "$D/tink.json" "$IN" "$D/enc.tink"
  run tink_decrypt "$PY" bench/tink_peer.py decrypt "$D/tink.json" "$D/enc.tink" "$D/out.tink"
  ((round > 1)) || same "$IN" "$D/out.tink" tink
  rm -f "$D/out.tink" "$D/enc.tink"
}
# The order rotates from round to round: on this virtual machine a run's cost depends on
# what ran just before it (see run()), and the best of several positions is fairer than one.
steps=(step_dd step_hyok step_age step_hyok_fsync step_tink)
for ((round = 1; round <= REPS; round++)); do
  note "file to file, round $round of $REPS ($MIB MiB)"
  rm -f "$D"/out.* "$D"/enc.*
  for ((k = 0; k < ${#steps[@]}; k++)); do
    "${steps[(k + round - 1) % ${#steps[@]}]}"
  done
done
rm -f "$D"/out.* "$D"/enc.*

note "Python ESDK on $ESDK_MIB MiB (default suite, 4 KiB frames; committing unsigned, 64 KiB frames)"
run esdk_default_encrypt "${ESDK_PEER[@]}" encrypt "${ESDK_KEY[@]}" "$ESDK_IN" "$D/enc.esdk"
run esdk_default_decrypt "${ESDK_PEER[@]}" decrypt "${ESDK_KEY[@]}" "$D/enc.esdk" "$D/out.esdk"
same "$ESDK_IN" "$D/out.esdk" "esdk (default)"
rm -f "$D/out.esdk" "$D/enc.esdk"
run esdk_fast_encrypt "${ESDK_PEER[@]}" encrypt "${ESDK_KEY[@]}" --suite committing \
  --frame-length 65536 "$ESDK_IN" "$D/enc.esdk"
run esdk_fast_decrypt "${ESDK_PEER[@]}" decrypt "${ESDK_KEY[@]}" "$D/enc.esdk" "$D/out.esdk"
same "$ESDK_IN" "$D/out.esdk" "esdk (fast)"
rm -f "$D/out.esdk" "$D/enc.esdk"

note "in process (256 MiB buffer, 1 and 2 threads; 10,000 messages of 4 KiB)"
"$INPROC" --mib 256 --messages 10000 --message-size 4096 --reps 5 --threads 1,2 >"$D/inproc.txt"

echo "load_after $(cut -d' ' -f1-3 /proc/loadavg)" >>"$D/meta.txt"
echo "duration_s $((SECONDS - t_start))" >>"$D/meta.txt"
"$PY" bench/report.py --dir "$D" --out "$OUT_MD"
note "wrote $OUT_MD in $((SECONDS - t_start)) s"
