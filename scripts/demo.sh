#!/usr/bin/env bash
# hyok's main job on the embedded default, with no server: `hyok init` (a local AES-256 key and
# a local folder as the object store), `hyok cp` a file in (encrypted), `hyok ls`, `hyok cp` it
# back out (decrypted), and check the round trip.
#
#   scripts/demo.sh
#
# Builds the CLI (cargo build --release -p hyok-cli) and works in a temporary directory, used as
# HOME for hyok's configuration, key and store, that is removed at exit. Set HYOK_BIN to use an
# hyok binary that is already built instead of building one.
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

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
# A private HOME: `hyok init` writes its configuration, key and local store in here, and
# nothing of the user's own hyok setup is read or changed.
export HOME="$work/home"
mkdir -p "$HOME"
unset HYOK_CONFIG XDG_CONFIG_HOME XDG_DATA_HOME XDG_STATE_HOME

step "hyok init"
"$hyok" init || fail "hyok init"
key_file="$HOME/.local/share/hyok/keys/default.key"
store_dir="$HOME/.local/share/hyok/store"
mode="$(stat -c %a "$key_file")"
[[ "$mode" == 600 ]] || fail "$key_file has mode $mode, expected 600"

# 8 MiB of random bytes with a readable marker at both ends.
marker="hyok demo: this sentence is plaintext and must not appear in the ciphertext"
{
  printf '%s\n' "$marker"
  head -c $((8 * 1024 * 1024)) /dev/urandom
  printf '%s\n' "$marker"
} >sample

step "hyok cp sample :demo/sample      # encrypt into the default (local folder) store"
t=$(now_ms)
"$hyok" cp sample :demo/sample || fail "hyok cp (upload)"
encrypt_ms=$(($(now_ms) - t))

step "hyok ls :demo/"
"$hyok" ls :demo/ || fail "hyok ls"

step "hyok cp :demo/sample sample.out  # decrypt it back"
t=$(now_ms)
"$hyok" cp :demo/sample sample.out || fail "hyok cp (download)"
decrypt_ms=$(($(now_ms) - t))

cmp -s sample sample.out || fail "the decrypted file differs from the original"
stored="$store_dir/demo/sample"
[[ -f "$stored" ]] || fail "no object at $stored"
if LC_ALL=C grep -qaF "$marker" "$stored"; then
  fail "the plaintext marker is readable in the stored object"
fi

step "hyok cat :demo/sample --range 0-20   # an authenticated byte range"
"$hyok" cat :demo/sample --range 0-20 | cmp -s - <(head -c 21 sample) || fail "hyok cat --range"
head -c 21 sample
printf '\n'

# The object is bound to its name: a ciphertext moved to another name is refused.
cp "$stored" "$store_dir/demo/moved"
step "hyok cp :demo/moved moved.out   (must fail: the object was moved)"
set +e
"$hyok" cp :demo/moved moved.out
rc=$?
set -e
[[ "$rc" -eq 1 ]] || fail "decrypting a moved object exited $rc, expected 1"
[[ ! -e moved.out ]] || fail "a refused download left moved.out behind"

plain_bytes=$(stat -c %s sample)
cipher_bytes=$(stat -c %s "$stored")
cat <<SUMMARY

demo OK
  key:         $key_file (created by hyok init)
  store:       $store_dir (local folder, ciphertext only)
  plaintext:   $plain_bytes bytes
  ciphertext:  $cipher_bytes bytes ($((cipher_bytes - plain_bytes)) bytes of header, framing and tags)
  upload:      ${encrypt_ms} ms    download: ${decrypt_ms} ms
  checks:      round trip identical; marker not in the store; byte range exact; moved object refused
SUMMARY
