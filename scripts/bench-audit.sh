#!/usr/bin/env bash
# Cost of the audit log (issue 6), measured in one run:
#  1. the library: 10,000 encrypts of 4 KiB without and with the log, interleaved in rounds
#     (crates/hyok/examples/audit_overhead.rs);
#  2. the CLI: N `hyok encrypt` processes of a 4 KiB file without and with HYOK_AUDIT_LOG,
#     alternating, so both see the same machine load.
#
#   scripts/bench-audit.sh [N_CLI=200] [DIR]
#
# DIR (default: a temporary directory) holds the logs; put it on the disk you care about,
# since every commit is fdatasync'ed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n="${1:-200}"
dir="${2:-$(mktemp -d)}"
mkdir -p "$dir"
target="${CARGO_TARGET_DIR:-target}"

cargo build --release -q -p hyok-cli -p hyok --example audit_overhead
# HYOK_BIN overrides the binary (e.g. a copy, where several checkouts share one target dir).
hyok="${HYOK_BIN:-$target/release/hyok}"

echo "== machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# A shared 2-core machine moves single runs by +-6 points: five runs, then the median.
runs="${HYOK_AUDIT_RUNS:-5}"
echo "== library (one process, $runs runs)"
for ((r = 1; r <= runs; r++)); do
  "$target/release/examples/audit_overhead" --dir "$dir"
done | tee "$dir/library.txt"
awk '/^  overhead: / { v[n++] = $2 + 0 } /calling thread/ { c[m++] = $(NF - 1) + 0 }
  function median(a, k,   i, j, t) {
    for (i = 0; i < k; i++) for (j = i + 1; j < k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (k % 2) ? a[int(k / 2)] : (a[k / 2 - 1] + a[k / 2]) / 2
  }
  END {
    printf "  median of %d runs: %+.1f %% wall time (runs: ", n, median(v, n)
    for (i = 0; i < n; i++) printf "%s%+.1f", (i ? ", " : ""), v[i]
    printf "), calling thread %+.1f %% CPU\n", median(c, m)
  }' "$dir/library.txt"

echo "== CLI ($n processes per variant)"
head -c 4096 /dev/urandom > "$dir/in.bin"
head -c 32 /dev/urandom > "$dir/k.key"
"$hyok" key new ec-p256 -o "$dir/ck" 2>/dev/null
key="raw-aes:bench/k?file=$dir/k.key"
now() { date +%s%N; }
off=0 on=0
for ((i = 0; i < n; i++)); do
  t=$(now)
  "$hyok" encrypt "$dir/in.bin" -o "$dir/out.enc" -f -k "$key"
  off=$((off + $(now) - t))
  t=$(now)
  HYOK_AUDIT_LOG="$dir/cli-audit.log" HYOK_AUDIT_KEY="$dir/ck.pem" \
    "$hyok" encrypt "$dir/in.bin" -o "$dir/out.enc" -f -k "$key"
  on=$((on + $(now) - t))
done
awk -v off="$off" -v on="$on" -v n="$n" 'BEGIN {
  printf "  without log: %.2f ms per process\n", off / n / 1e6
  printf "  with log:    %.2f ms per process (+%.2f ms, %+.1f %%)\n", on / n / 1e6, (on - off) / n / 1e6, (on / off - 1) * 100
}'
"$hyok" audit verify "$dir/cli-audit.log" --public-key "$dir/ck.pub.pem" | head -1
