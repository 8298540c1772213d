#!/usr/bin/env bash
# Creates <repo>/.venv with the official Python AWS Encryption SDK, hyok's interop peer in tests,
# and the S3 clients the gateway tests drive (boto3, the aws cli, pyarrow).
# Idempotent: does nothing when the pinned versions are already installed. Quiet: prints only
# errors. Point the tests at it with HYOK_ESDK_PYTHON=<repo>/.venv/bin/python (scripts/test.sh
# does that).
set -euo pipefail

ESDK_REQUIREMENT="aws-encryption-sdk==4.0.7"
ESDK_VERSION="${ESDK_REQUIREMENT#*==}"
# S3 clients of the gateway tests (crates/hyok-cli/tests/gateway_clients.py); pyarrow's S3
# file system is the AWS SDK for C++.
CLIENT_REQUIREMENTS=("boto3==1.44.18" "awscli==1.46.3" "pyarrow==26.0.1")
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
PY="$VENV/bin/python"

installed_version() {
  "$PY" - <<'PY' 2>/dev/null
from importlib.metadata import version
import aws_encryption_sdk  # noqa: F401  (the import itself must work, not only the metadata)
import boto3, awscli, pyarrow.fs  # noqa: F401,E401
print(version("aws-encryption-sdk"), version("boto3"), version("awscli"), version("pyarrow"))
PY
}
wanted_versions() {
  local v=("$ESDK_VERSION")
  local r
  for r in "${CLIENT_REQUIREMENTS[@]}"; do v+=("${r#*==}"); done
  echo "${v[*]}"
}

if [[ -x "$PY" && "$(installed_version || true)" == "$(wanted_versions)" ]]; then
  exit 0
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
run() {
  if ! "$@" >>"$log" 2>&1; then
    cat "$log" >&2
    echo "setup-python.sh: failed: $*" >&2
    exit 1
  fi
}

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  # Debian's python3 ships venv/ensurepip separately.
  sudo_cmd=()
  [[ "$(id -u)" -eq 0 ]] || sudo_cmd=(sudo)
  run "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  run "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv python3-pip
fi

if [[ ! -x "$PY" ]]; then
  run python3 -m venv "$VENV"
fi
run "$PY" -m pip install -q --disable-pip-version-check "$ESDK_REQUIREMENT" "${CLIENT_REQUIREMENTS[@]}"
[[ "$(installed_version || true)" == "$(wanted_versions)" ]] || {
  cat "$log" >&2
  echo "setup-python.sh: $ESDK_REQUIREMENT ${CLIENT_REQUIREMENTS[*]} are not importable from $PY after installing" >&2
  exit 1
}
