#!/usr/bin/env bash
# Installs the AWS SDK for JavaScript v3 that the gateway tests drive (the versions pinned in
# crates/hyok-cli/tests/gateway_js/package-lock.json) into <repo>/.state/js/node_modules, with
# `npm ci`. Needs node and npm; installs Debian's (apt) when they are missing. That SDK needs
# node 20 or later (Debian 12's own is 18): with an older node this script installs nothing,
# says so, and exits 0; the gateway tests then skip the JavaScript client and say why.
# Idempotent: does nothing when the installed lock file is the pinned one. Quiet: prints only
# errors and that notice. Point the tests at it with HYOK_JS_SDK=<repo>/.state/js
# (scripts/test.sh does that).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$REPO_ROOT/crates/hyok-cli/tests/gateway_js"
DEST="${HYOK_STATE_DIR:-$REPO_ROOT/.state}/js"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  sudo_cmd=()
  [[ "$(id -u)" -eq 0 ]] || sudo_cmd=(sudo)
  { "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; } >/dev/null 2>&1 ||
    { echo "setup-js.sh: installing nodejs and npm failed" >&2; exit 1; }
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if ((major < 20)); then
  echo "setup-js.sh: node $(node --version) is older than the SDK's minimum (20): the JavaScript client is not installed" >&2
  exit 0
fi

if [[ -d "$DEST/node_modules" ]] && cmp -s "$SRC/package-lock.json" "$DEST/package-lock.json"; then
  exit 0
fi
rm -rf "$DEST"
mkdir -p "$DEST"
cp "$SRC/package.json" "$SRC/package-lock.json" "$DEST/"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! (cd "$DEST" && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
  cat "$log" >&2
  rm -rf "$DEST"
  echo "setup-js.sh: npm ci failed" >&2
  exit 1
fi
