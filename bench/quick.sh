#!/usr/bin/env bash
# A quick file-to-file check of one hyok binary against a plain dd copy of the same file,
# for before/after comparisons of a change (bench/run.sh is the full benchmark):
#
#   bench/quick.sh [HYOK_BINARY] [ROUNDS]     # defaults: target/release/hyok, 5
#
# Uses target/bench/input.bin (1 GiB, written by bench/run.sh or here). Every run starts
# after `settle` (bench/settle.sh), as in bench/run.sh. Prints every run ("name wall user sys maxrss_kib") and then the best wall time of
# each; dd runs in 256 KiB and 1 MiB blocks, and the faster is the floor.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/settle.sh
source "$REPO_ROOT/bench/settle.sh"
HYOK=${1:-$REPO_ROOT/target/release/hyok}
ROUNDS=${2:-5}
D=$REPO_ROOT/target/bench
IN=$D/input.bin
mkdir -p "$D"
[[ -f "$IN" ]] || head -c $((1024 * 1024 * 1024)) /dev/urandom >"$IN"
[[ -f "$D/aes.key" ]] || (umask 077 && head -c 32 /dev/urandom >"$D/aes.key")
KEY="raw-aes:bench/key?file=$D/aes.key"
run() {
  local name=$1
  shift
  settle "$IN" "$D"
  /usr/bin/time -f '%e %U %S %M' -o "$D/quick.time" "$@" >/dev/null
  echo "$name $(cat "$D/quick.time")"
}
"$HYOK" encrypt "$IN" -o "$D/quick.hyok" --key "$KEY" --force
for _ in $(seq "$ROUNDS"); do
  run dd_256k dd if="$IN" of="$D/out.dd" bs=256K 2>/dev/null
  rm -f "$D/out.dd"
  run dd_1m dd if="$IN" of="$D/out.dd" bs=1M 2>/dev/null
  rm -f "$D/out.dd"
  run encrypt "$HYOK" encrypt "$IN" -o "$D/out.enc" --key "$KEY"
  rm -f "$D/out.enc"
  run decrypt "$HYOK" decrypt "$D/quick.hyok" -o "$D/out.dec" --key "$KEY"
  rm -f "$D/out.dec"
done | tee "$D/quick.txt"
rm -f "$D/quick.hyok"
echo "best wall seconds:"
awk '{ if (!($1 in b) || $2 < b[$1]) b[$1] = $2 } END { for (k in b) print "  " k, b[k] }' "$D/quick.txt" | sort
