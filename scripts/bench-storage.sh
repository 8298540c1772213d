#!/usr/bin/env bash
# Storage benchmark: `hyok cp` against `aws s3 cp` (awscli) and `rclone copyto`/`copy` on the
# same S3 server and the same files, one run each:
#   - one 1 GiB file up and down (MiB/s and peak RSS), and
#   - 10,000 files of 4 KiB up and down (objects per second).
#
#   eval "$(scripts/services/s3.sh)"   # the server (s3s-fs on 127.0.0.1)
#   scripts/bench-storage.sh           # HYOK_BIN, AWS_CLI, RCLONE override the tools
#
# Needs: a release hyok (built here unless HYOK_BIN is set), `aws` (pip install awscli) and
# `rclone` (apt-get install rclone); a missing tool is reported and its rows are left out.
# Works in a temporary directory (about 2.2 GiB) that is removed at exit.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${AWS_ENDPOINT_URL:?run eval \"\$(scripts/services/s3.sh)\" first}"
: "${HYOK_TEST_S3_BUCKET:?run eval \"\$(scripts/services/s3.sh)\" first}"
BUCKET="$HYOK_TEST_S3_BUCKET"
BIG_MIB="${BENCH_BIG_MIB:-1024}"
SMALL_N="${BENCH_SMALL_N:-10000}"

if [[ -n "${HYOK_BIN:-}" ]]; then
  hyok="$HYOK_BIN"
else
  cargo build --release -p hyok-cli >&2
  hyok="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/hyok"
fi
aws="${AWS_CLI:-$(command -v aws || true)}"
rclone="${RCLONE:-$(command -v rclone || true)}"
# rclone 1.60 (Debian 12) fails with "unsupported transport" when AWS_CA_BUNDLE is set.
[[ -n "$rclone" ]] && rclone="env -u AWS_CA_BUNDLE $rclone"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export HOME="$work/home"   # hyok's journal and config, rclone's and aws's config stay in here
mkdir -p "$HOME"
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other \
  RCLONE_CONFIG_BENCH_ENDPOINT="$AWS_ENDPOINT_URL" RCLONE_CONFIG_BENCH_REGION="${AWS_REGION:-us-east-1}" \
  RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
  RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true

head -c 32 /dev/urandom >"$work/key"
key="raw-aes:bench/key?file=$work/key"
prefix="bench-$$-$(date +%s)"
head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$work/big"
# 4 KiB files cut from one random stream.
mkdir -p "$work/small"
head -c $((SMALL_N * 4096)) /dev/urandom | (cd "$work/small" && split -b 4096 -a 5 -d - f)

# run NAME CMD...: prints "seconds peak_rss_kib"
run() {
  local out
  out="$( { /usr/bin/time -f '%e %M' "$@" >/dev/null 2>"$work/err"; } 2>&1 )" || {
    echo "bench: $1 failed: $(tail -3 "$work/err")" >&2
    echo "fail 0"
    return
  }
  tail -1 "$work/err"
}

declare -A T R
measure() { # measure LABEL CMD...
  local label="$1"
  shift
  read -r t r < <(run "$@")
  T[$label]=$t
  R[$label]=$r
  printf 'bench: %-14s %8s s  %8s KiB peak RSS\n' "$label" "$t" "$r" >&2
}

measure hyok-up "$hyok" cp "$work/big" "s3://$BUCKET/$prefix/hyok.bin" --key "$key" -q
measure hyok-down "$hyok" cp "s3://$BUCKET/$prefix/hyok.bin" "$work/big.hyok" --key "$key" -q
cmp "$work/big" "$work/big.hyok" && rm "$work/big.hyok"
if [[ -n "$aws" ]]; then
  measure aws-up "$aws" --endpoint-url "$AWS_ENDPOINT_URL" s3 cp --only-show-errors "$work/big" "s3://$BUCKET/$prefix/aws.bin"
  measure aws-down "$aws" --endpoint-url "$AWS_ENDPOINT_URL" s3 cp --only-show-errors "s3://$BUCKET/$prefix/aws.bin" "$work/big.aws"
  rm -f "$work/big.aws"
fi
if [[ -n "$rclone" ]]; then
  measure rclone-up $rclone copyto "$work/big" "bench:$BUCKET/$prefix/rclone.bin"
  measure rclone-down $rclone copyto "bench:$BUCKET/$prefix/rclone.bin" "$work/big.rclone"
  rm -f "$work/big.rclone"
fi
measure hyok-sup "$hyok" cp -r "$work/small" "s3://$BUCKET/$prefix/hs/" --key "$key" -q
measure hyok-sdown "$hyok" cp -r "s3://$BUCKET/$prefix/hs/" "$work/hs" --key "$key" -q
diff -r "$work/small" "$work/hs" >/dev/null && rm -rf "$work/hs"
if [[ -n "$aws" ]]; then
  measure aws-sup "$aws" --endpoint-url "$AWS_ENDPOINT_URL" s3 cp --only-show-errors --recursive "$work/small" "s3://$BUCKET/$prefix/as/"
  measure aws-sdown "$aws" --endpoint-url "$AWS_ENDPOINT_URL" s3 cp --only-show-errors --recursive "s3://$BUCKET/$prefix/as/" "$work/as"
  rm -rf "$work/as"
fi
if [[ -n "$rclone" ]]; then
  measure rclone-sup $rclone copy "$work/small" "bench:$BUCKET/$prefix/rs/"
  measure rclone-sdown $rclone copy "bench:$BUCKET/$prefix/rs/" "$work/rs"
  rm -rf "$work/rs"
fi
"$hyok" rm -r --yes "s3://$BUCKET/$prefix/" >/dev/null 2>&1 || true

rate() { awk -v n="$1" -v t="$2" 'BEGIN { if (t ~ /^[0-9.]+$/ && t > 0) printf "%.1f", n / t; else print "-" }'; }
best() { # best OTHER-A OTHER-B KIND: the higher rate among the present other tools
  local a="${T[$1]:-}" b="${T[$2]:-}" n="$3" best=0 r
  for t in $a $b; do
    [[ "$t" == fail ]] && continue
    r=$(rate "$n" "$t")
    [[ "$r" == - ]] && continue
    awk -v r="$r" -v b="$best" 'BEGIN { exit !(r > b) }' && best=$r
  done
  echo "$best"
}
echo "| measurement | hyok | aws s3 cp | rclone | hyok ÷ faster other |"
echo "|---|---|---|---|---|"
for dir in up down; do
  h=$(rate "$BIG_MIB" "${T[hyok-$dir]}")
  a=$([[ -n "${T[aws-$dir]:-}" ]] && rate "$BIG_MIB" "${T[aws-$dir]}" || echo -)
  c=$([[ -n "${T[rclone-$dir]:-}" ]] && rate "$BIG_MIB" "${T[rclone-$dir]}" || echo -)
  b=$(best "aws-$dir" "rclone-$dir" "$BIG_MIB")
  ratio=$(awk -v h="$h" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", h / b; else print "-" }')
  echo "| $BIG_MIB MiB $dir, MiB/s | $h | $a | $c | $ratio |"
  echo "| $BIG_MIB MiB $dir, peak RSS MiB | $((R[hyok-$dir] / 1024)) | $(( ${R[aws-$dir]:-0} / 1024 )) | $(( ${R[rclone-$dir]:-0} / 1024 )) | |"
done
for dir in up down; do
  h=$(rate "$SMALL_N" "${T[hyok-s$dir]}")
  a=$([[ -n "${T[aws-s$dir]:-}" ]] && rate "$SMALL_N" "${T[aws-s$dir]}" || echo -)
  c=$([[ -n "${T[rclone-s$dir]:-}" ]] && rate "$SMALL_N" "${T[rclone-s$dir]}" || echo -)
  b=$(best "aws-s$dir" "rclone-s$dir" "$SMALL_N")
  ratio=$(awk -v h="$h" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", h / b; else print "-" }')
  echo "| $SMALL_N × 4 KiB $dir, objects/s | $h | $a | $c | $ratio |"
done
