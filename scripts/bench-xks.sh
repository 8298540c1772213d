#!/usr/bin/env bash
# XKS proxy benchmark: signed Encrypt/Decrypt requests/s and p50/p99 latency at several
# client concurrencies against `hyok xks` over a raw key file, a SoftHSM key, an OpenBao
# Transit key and, when HYOK_KMIP_ADDR is set, a PyKMIP key; with XKS_REFERENCE_BIN=path/to/xks-proxy (the aws-samples reference proxy,
# built outside this tree, see ../shared/anchors/README.md) also against the reference proxy
# on the same SoftHSM token.
#
#   source /work/services.env   # or eval "$(scripts/services/softhsm.sh)" etc.
#   scripts/bench-xks.sh [REQUESTS_PER_POINT=2000] [CONCURRENCIES=1,8,64] [KEYS=raw,hsm,bao,kmip]
#
# XKS_ONLY_REFERENCE=1 skips hyok's runs (the reference proxy alone); XKS_REFERENCE_SETTINGS
# names its settings file when ../shared/anchors is elsewhere (from a git worktree).
# Plain HTTP on loopback: TLS cost is the same for both proxies and not what is compared.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
requests=${1:-2000}
levels=${2:-1,8,64}
keys=${3:-raw,hsm,bao,kmip}
: "${HYOK_TEST_PKCS11_TOKEN:?source the services environment first}"
: "${VAULT_ADDR:?source the services environment first}"

cargo build --release -q -p hyok-cli -p hyok-xks   # `hyok xks` runs the hyok-xks program beside hyok
cargo build --release -q -p hyok-xks --example xks_bench
hyok=target/release/hyok
bench=target/release/examples/xks_bench

work=$(mktemp -d)
pids=()
hsm_uri=
kmip_uri=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -n "$hsm_uri" ]] && "$hyok" key destroy "$hsm_uri" --yes >/dev/null 2>&1
  [[ -n "$kmip_uri" ]] && "$hyok" key destroy "$kmip_uri" --yes >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

akid=BETWEEN2TENAND3TENCHARACTERS
(umask 077; printf 'PleaseReplaceThisWithSomeSecretOfLength43To64\n' > "$work/xks.secret")
head -c 32 /dev/urandom > "$work/raw.key"; chmod 600 "$work/raw.key"
label="foo-bench-$$"
hsm_uri=$("$hyok" key new aes-256 -o "pkcs11:token=$HYOK_TEST_PKCS11_TOKEN;object=$label")
bao_uri=$("$hyok" key new aes-256 -o "vault-transit:xks-bench-$$")
kmip_line=
if [[ -n "${HYOK_KMIP_ADDR:-}" && ",$keys," == *,kmip,* ]]; then
  kmip_uri=$("$hyok" key new aes-256 -o "kmip://$HYOK_KMIP_ADDR/xks-bench-$$")
  kmip_line="kmip = { uri = \"$kmip_uri\" }"
else
  keys=${keys//kmip/}
fi
cat > "$work/hyok.toml" <<TOML
[xks]
listen = "127.0.0.1:18444"
max_queue = 1024

[xks.stores.main]
uri_prefix = "example/uri/path/prefix"
region = "us-east-1"
credentials = [ { access_key_id = "$akid", secret_access_key_file = "xks.secret" } ]

[xks.stores.main.keys]
raw = { uri = "raw-aes:bench/raw?file=$work/raw.key" }
hsm = { uri = "$hsm_uri" }
bao = { uri = "$bao_uri" }
$kmip_line
TOML
"$hyok" --config "$work/hyok.toml" xks 2> "$work/xks.log" &
pids+=($!)
for _ in $(seq 50); do grep -q listening "$work/xks.log" && break; sleep 0.2; done

export XKS_ACCESS_KEY_ID=$akid XKS_SECRET_FILE="$work/xks.secret"
base=http://127.0.0.1:18444/example/uri/path/prefix/kms/xks/v1
if [[ -z "${XKS_ONLY_REFERENCE:-}" ]]; then
  for key in ${keys//,/ }; do
    echo "### hyok xks, key $key ($(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg))"
    "$bench" "$base" "$key" "$requests" "$levels"
  done
fi

if [[ -n "${XKS_REFERENCE_BIN:-}" ]]; then
  # The reference proxy reads its key by label: give the same token key the label "foo"
  # is not possible, so it gets its own AES-256 key "foo" on the same token.
  "$hyok" key new aes-256 -o "pkcs11:token=$HYOK_TEST_PKCS11_TOKEN;object=foo" >/dev/null 2>&1 || true
  sed -e "s/^user_pin = .*/user_pin = \"$HYOK_PKCS11_PIN\"/" \
      -e "s/^PKCS11_TOKEN_LABEL = .*/PKCS11_TOKEN_LABEL = \"$HYOK_TEST_PKCS11_TOKEN\"/" \
      -e "s|^PKCS11_HSM_MODULE = .*|PKCS11_HSM_MODULE = \"$HYOK_PKCS11_MODULE\"|" \
      "${XKS_REFERENCE_SETTINGS:-../shared/anchors/aws-kms-xks-proxy/settings-local-softhsm.toml}" > "$work/ref.toml"
  (cd "$work" && XKS_PROXY_SETTINGS_TOML="$work/ref.toml" exec "$XKS_REFERENCE_BIN") > "$work/ref.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -s -o /dev/null -X POST http://127.0.0.1:18443/ && break
    sleep 0.2
  done
  echo "### reference proxy (aws-samples v3.1.2), key foo ($(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$bench" http://127.0.0.1:18443/example/uri/path/prefix/kms/xks/v1 foo "$requests" "$levels"
fi
