#!/usr/bin/env bash
# hyok's main job on the embedded default, with no server: encrypt a file under a local AES-256
# key, look at the message, decrypt it, and check the round trip.
#
#   scripts/demo.sh
#
# Builds the CLI (cargo build --release -p hyok-cli), creates the key
# ${HYOK_HOME:-~/.local/share/hyok}/keys/default.key the first time (later runs reuse it), and
# works in a temporary directory that is removed at exit. Set HYOK_BIN to use an hyok binary
# that is already built instead of building one.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

fail() {
  printf 'demo: FAILED: %s\n' "$*" >&2
  exit 1
}
step() { printf '\n$ %s\n' "$*"; }

# ms since the epoch, for rough timings
now_ms() {
  local t="${EPOCHREALTIME/[.,]/}"
  printf '%s\n' "$((t / 1000))"
}

if [[ -n "${HYOK_BIN:-}" ]]; then
  hyok="$HYOK_BIN"
else
  cargo build --release -p hyok-cli >&2 || fail "cargo build --release -p hyok-cli"
  hyok="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/hyok"
fi
[[ -x "$hyok" ]] || fail "no hyok binary at $hyok"

hyok_home="${HYOK_HOME:-$HOME/.local/share/hyok}"
key_file="$hyok_home/keys/default.key"
key_uri="raw-aes:hyok/default?file=$key_file"

if [[ -f "$key_file" ]]; then
  key_note="reused $key_file"
else
  mkdir -p "$(dirname "$key_file")"
  chmod 700 "$(dirname "$key_file")"
  step "hyok key new aes-256 -o $key_file"
  "$hyok" key new aes-256 -o "$key_file" || fail "hyok key new"
  key_note="created $key_file"
fi
mode="$(stat -c %a "$key_file")"
[[ "$mode" == 600 ]] || printf 'demo: warning: %s has mode %s, expected 600\n' "$key_file" "$mode" >&2

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

# 8 MiB of random bytes with a readable marker at both ends.
marker="hyok demo: this sentence is plaintext and must not appear in the ciphertext"
{
  printf '%s\n' "$marker"
  head -c $((8 * 1024 * 1024)) /dev/urandom
  printf '%s\n' "$marker"
} >sample

step "hyok encrypt sample --key '$key_uri' -c purpose=demo -o sample.hyok"
t=$(now_ms)
"$hyok" encrypt sample --key "$key_uri" -c purpose=demo -o sample.hyok || fail "hyok encrypt"
encrypt_ms=$(($(now_ms) - t))

step "hyok inspect sample.hyok"
"$hyok" inspect sample.hyok || fail "hyok inspect"

step "hyok decrypt sample.hyok --key '$key_uri' -c purpose=demo -o sample.out"
t=$(now_ms)
"$hyok" decrypt sample.hyok --key "$key_uri" -c purpose=demo -o sample.out || fail "hyok decrypt"
decrypt_ms=$(($(now_ms) - t))

cmp -s sample sample.out || fail "the decrypted file differs from the original"
if LC_ALL=C grep -qaF "$marker" sample.hyok; then
  fail "the plaintext marker is readable in the ciphertext"
fi

# The encryption context is authenticated: asking for a different value must be refused.
step "hyok decrypt sample.hyok --key '$key_uri' -c purpose=other -o wrong.out   (must fail)"
set +e
"$hyok" decrypt sample.hyok --key "$key_uri" -c purpose=other -o wrong.out
rc=$?
set -e
[[ "$rc" -eq 1 ]] || fail "decrypting with the wrong encryption context exited $rc, expected 1"

plain_bytes=$(stat -c %s sample)
cipher_bytes=$(stat -c %s sample.hyok)
cat <<SUMMARY

demo OK
  key:         $key_note
  plaintext:   $plain_bytes bytes
  ciphertext:  $cipher_bytes bytes ($((cipher_bytes - plain_bytes)) bytes of header, framing and tags)
  encrypt:     ${encrypt_ms} ms    decrypt: ${decrypt_ms} ms
  checks:      round trip identical; marker not in ciphertext; wrong context refused
SUMMARY
