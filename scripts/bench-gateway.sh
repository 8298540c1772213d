#!/usr/bin/env bash
# hyok gateway (backend s3s-fs) against s3s-fs directly: aws cli (and rclone, when installed)
# throughput of one large file up and down, boto3 4 KiB PUT/GET rate and p50/p99 latency under
# 32 concurrent clients, and the gateway's peak RSS. Needs the s3s-fs service
# (eval "$(scripts/services/s3.sh)") and the venv of scripts/setup-python.sh; builds the
# release binary.
#
#   scripts/bench-gateway.sh [LARGE_MIB (1024)] [SMALL_COUNT (10000; 0 = none)]
#
# BENCH_DIRECT_PARTS=false runs the gateway with `[gateway] direct_parts = false` (every
# multipart part staged and re-encrypted at Complete, as before direct frames);
# BENCH_PARTS_IN_PLACE=false keeps direct parts as objects of their own (`parts_in_place = false`);
# BENCH_COMPLETE_PARTS=N adds a timed CompleteMultipartUpload of N parts of 8 MiB;
# BENCH_REPEAT=N makes N round trips of the large file per tool and configuration, alternating
# direct and gateway, and reports medians (this machine's ratios move by 0.1-0.3 between runs).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
: "${AWS_ENDPOINT_URL:?start s3s-fs first: eval \"\$(scripts/services/s3.sh)\"}"
scripts/setup-python.sh
cargo build --release -q -p hyok-cli -p hyok-gateway   # `hyok gateway` runs the hyok-gateway program beside hyok
work="$(mktemp -d)"
trap 'kill -TERM "${gw_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
head -c 32 /dev/urandom >"$work/gw.key"
printf 'bench-gateway-secret-0001\n' >"$work/gw.secret"
chmod 600 "$work/gw.secret"
cat >"$work/hyok.toml" <<TOML
[defaults]
keyring = "default"
[keyrings.default]
keys = ["raw-aes:bench/gateway?file=$work/gw.key"]
[gateway]
listen = "127.0.0.1:0"
backend = "s3://"
direct_parts = ${BENCH_DIRECT_PARTS:-true}
parts_in_place = ${BENCH_PARTS_IN_PLACE:-true}
[[gateway.credentials]]
access_key_id = "BENCHGATEWAY"
secret_access_key_file = "gw.secret"
buckets = ["*"]
TOML
chmod 600 "$work/hyok.toml"
target/release/hyok --config "$work/hyok.toml" gateway 2>"$work/gw.log" &
gw_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/gw.log" && break; sleep 0.1; done
endpoint="$(sed -n 's/^hyok gateway: listening on //p' "$work/gw.log")"
[[ -n "$endpoint" ]] || { cat "$work/gw.log" >&2; exit 1; }
GW_ENDPOINT="$endpoint" GW_KEY=BENCHGATEWAY GW_SECRET=bench-gateway-secret-0001 GW_PID="$gw_pid" \
  DIRECT_ENDPOINT="$AWS_ENDPOINT_URL" BENCH_MIB="${1:-1024}" BENCH_SMALL="${2:-10000}" \
  BENCH_WORK="$work" RCLONE="$(command -v rclone || true)" .venv/bin/python bench/gateway.py
