#!/usr/bin/env bash
# hyok reencrypt against `hyok cp` down + up of the same objects (the naive way to move
# objects to new keys), on a local folder and, when the s3s-fs service is up, on S3; and
# key-store calls per SMALL objects written with and without a branch key (SoftHSM AES key
# when the SoftHSM service is up, else a raw key), counted in the audit log, not timed.
#
#   scripts/bench-reencrypt.sh [SMALL_COUNT (10000)] [LARGE_COUNT (3)] [LARGE_MIB (1024)]
#
# BENCH_ONLY_CALLS=1 skips the throughput part.
# Needs: the release binary (built here unless HYOK_BIN names one); optionally `eval "$(scripts/services/s3.sh)"` and
# `eval "$(scripts/services/softhsm.sh)"` (or `source /work/services.env`).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
if [[ -z "${HYOK_BIN:-}" ]]; then cargo build --release -q -p hyok-cli; fi
H="${HYOK_BIN:-$REPO_ROOT/target/release/hyok}"
small="${1:-10000}" large="${2:-3}" large_mib="${3:-1024}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export HOME="$work" XDG_STATE_HOME="$work/state" HYOK_BRANCH_STORE="$work/branches"
head -c 32 /dev/urandom >"$work/old.key"; head -c 32 /dev/urandom >"$work/new.key"
chmod 600 "$work"/*.key
OLD="raw-aes:bench/old?file=$work/old.key" NEW="raw-aes:bench/new?file=$work/new.key"
cat >"$work/hyok.toml" <<TOML
[keyrings.old]
keys = ["$OLD"]
[keyrings.new]
keys = ["$NEW"]
TOML
chmod 600 "$work/hyok.toml"
export HYOK_CONFIG="$work/hyok.toml"

echo "# data: $small small objects (1-4 KiB) + $large x $large_mib MiB"
mkdir -p "$work/src"
python3 - "$work/src" "$small" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, f"s{i:06d}"), "wb") as f:
        f.write(os.urandom(1024 + (i * 997) % 3072))
PY
for i in $(seq 1 "$large"); do head -c "$((large_mib * 1048576))" /dev/urandom >"$work/src/large$i"; done
bytes=$(du -sb "$work/src" | cut -f1)
objects=$((small + large))

secs() { python3 -c "import time; print(time.monotonic())"; }
rate() { python3 -c "import sys; t=float(sys.argv[1]); print(f'{t:.1f} s, {int(sys.argv[2])/t:.0f} objects/s, {int(sys.argv[3])/t/1048576:.1f} MiB/s')" "$@"; }

bench_store() { # LOCATION NAME
  local loc="$1" name="$2"
  "$H" cp -r -q "$work/src" "$loc" --keyring old
  local t0 t1
  t0=$(secs)
  "$H" cp -r -q "$loc" "$work/down" --keyring old
  "$H" cp -r -q -f "$work/down" "$loc" --keyring new
  t1=$(secs)
  echo "$name: cp down + up (old keys -> new keys): $(rate "$(python3 -c "print($t1-$t0)")" "$objects" "$bytes")"
  rm -rf "$work/down"
  t0=$(secs)
  "$H" reencrypt "$loc" --keyring new --to-keyring old -q 2>"$work/re.log" || { cat "$work/re.log"; exit 1; }
  t1=$(secs)
  echo "$name: reencrypt (new keys -> old keys):          $(rate "$(python3 -c "print($t1-$t0)")" "$objects" "$bytes")"
  "$H" rm -r -y "$loc" >/dev/null 2>&1 || true
}

mkdir -p "$work/store"
if [[ -n "${BENCH_ONLY_CALLS:-}" ]]; then
  echo "throughput: skipped (BENCH_ONLY_CALLS)"
else
bench_store "file://$work/store/" "local folder"
fi
if [[ -n "${BENCH_ONLY_CALLS:-}" ]]; then
  :
elif [[ -n "${AWS_ENDPOINT_URL:-}" && -n "${HYOK_TEST_S3_BUCKET:-}" ]]; then
  bench_store "s3://$HYOK_TEST_S3_BUCKET/bench-reencrypt-$$/" "s3s-fs"
else
  echo "s3s-fs: skipped (AWS_ENDPOINT_URL / HYOK_TEST_S3_BUCKET not set)"
fi

# Key-store calls per $small objects: every key use is one audit record (generate / wrap /
# unwrap); count them for an upload without and with a branch key.
if [[ -n "${HYOK_PKCS11_MODULE:-}" && -n "${HYOK_TEST_PKCS11_TOKEN:-}" ]]; then
  MASTER="pkcs11:token=$HYOK_TEST_PKCS11_TOKEN;object=bench-master-$$"
  "$H" key new aes-256 -o "$MASTER" >/dev/null 2>&1
  kind="SoftHSM AES-256"
else
  MASTER="$OLD"; kind="raw AES (no SoftHSM)"
fi
cat >>"$work/hyok.toml" <<TOML
[keyrings.hsm]
keys = ["$MASTER"]
[keyrings.hsmbranch]
keys = ["$MASTER"]
branch = "bench"
TOML
"$H" branch new bench --keyring hsm >/dev/null 2>&1
"$H" key new ec-p256 -o "$work/audit" >/dev/null 2>&1
rm -rf "$work/src"/large*
for ring in hsm hsmbranch; do
  log="$work/audit-$ring.log"
  mkdir -p "$work/s-$ring"
  HYOK_AUDIT_LOG="$log" HYOK_AUDIT_KEY="$work/audit.pem" "$H" cp -r -q "$work/src" "file://$work/s-$ring/" --keyring "$ring"
  calls=$("$H" audit show "$log" --json | python3 -c "
import json, sys
n = 0
for line in sys.stdin:
    r = json.loads(line)
    if r.get('op') in ('generate', 'wrap', 'unwrap') and 'branch:' not in str(r.get('key', '')):
        n += 1
print(n)")
  echo "key-store ($kind) calls writing $small objects with keyring $ring: $calls"
done
[[ "$MASTER" == pkcs11:* ]] && "$H" key destroy "$MASTER" --yes >/dev/null 2>&1 || true
