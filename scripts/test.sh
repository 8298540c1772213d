#!/usr/bin/env bash
# hyok's test command: sets up everything the test suite talks to, then runs it.
#
#   scripts/test.sh [extra cargo test arguments]
#
# On a fresh Debian machine with a Rust toolchain this
#   1. creates .venv with the Python AWS Encryption SDK, boto3 and the aws cli
#      (scripts/setup-python.sh), installs rclone, s3cmd, s3fs and the AWS SDK for Go v2 (Debian
#      packages) and the AWS SDK for JavaScript v3 (npm, into .state/js: scripts/setup-js.sh),
#   2. installs and starts SoftHSM2, OpenBao, s3s-fs and PyKMIP on 127.0.0.1, and a
#      three-node OpenBao raft cluster for the failover tests
#      (scripts/services/*.sh; state and tools under $HYOK_STATE_DIR, default .state/),
#   3. type-checks (does not build or run) the fuzz targets in fuzz/,
#   4. runs `cargo test --workspace --release` with their settings in the environment,
# and stops the services it started when it exits, with cargo's exit status.
#
# Failures to set something up are warnings (the tests that need it skip and say so), unless
# CI is set or HYOK_REQUIRE_SERVICES=1, when they are fatal.
# The first run builds s3s-fs (about 5 minutes on 2 cores); later runs reuse .state/tools.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

strict=0
if [[ -n "${CI:-}" || "${HYOK_REQUIRE_SERVICES:-}" == 1 ]]; then
  strict=1
  # The tests read this too: with it they fail instead of skipping when a service is missing.
  export HYOK_REQUIRE_SERVICES=1
fi

note() { printf '== test.sh: %s\n' "$*" >&2; }

problem() {
  if ((strict)); then
    note "FATAL: $* (CI / HYOK_REQUIRE_SERVICES=1: every service is required)"
    exit 1
  fi
  note "WARNING: $*; the tests that need it will skip"
}

# Services this run started, stopped again on exit (ones that were already running are left be).
started=()
# shellcheck disable=SC2317  # run by the EXIT trap
stop_started() {
  local svc
  for svc in "${started[@]}"; do
    scripts/services/"$svc".sh stop || note "WARNING: could not stop $svc"
  done
}
trap stop_started EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Credentials of a developer's real AWS session must not leak into the S3 tests' requests.
unset AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE

t0=$SECONDS
if scripts/setup-python.sh; then
  export HYOK_ESDK_PYTHON="$REPO_ROOT/.venv/bin/python"
else
  problem "setting up the Python AWS Encryption SDK failed"
fi
# The AWS SDK for JavaScript v3 (npm), a real client of the `hyok gateway` tests.
if scripts/setup-js.sh; then
  export HYOK_JS_SDK="${HYOK_STATE_DIR:-$REPO_ROOT/.state}/js"
else
  problem "setting up the AWS SDK for JavaScript v3 failed"
fi

# rclone, s3cmd, s3fs-fuse and the AWS SDK for Go v2 (Debian packages): real clients of
# the `hyok gateway` tests.
missing=()
for tool in rclone s3cmd s3fs; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
command -v go >/dev/null 2>&1 || missing+=(golang-go)
[[ -d /usr/share/gocode/src/github.com/aws/aws-sdk-go-v2/feature/s3/manager ]] ||
  missing+=(golang-github-aws-aws-sdk-go-v2-dev)
if ((${#missing[@]})); then
  sudo_cmd=()
  [[ "$(id -u)" -eq 0 ]] || sudo_cmd=(sudo)
  if ! { "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } >/dev/null 2>&1; then
    problem "installing ${missing[*]} failed"
  fi
fi

# GNU time measures the peak memory of hostile inputs (hyok-cli tests, `hardening`).
if [[ ! -x /usr/bin/time ]]; then
  if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    apt-get install -y -qq time >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq time) >/dev/null 2>&1 || true
  fi
  [[ -x /usr/bin/time ]] || problem "GNU time (/usr/bin/time) is missing: apt-get install time"
fi

for svc in softhsm openbao s3 kmip; do
  t_svc=$SECONDS
  if ! scripts/services/"$svc".sh status >/dev/null 2>&1; then
    started+=("$svc")
  fi
  if exports="$(scripts/services/"$svc".sh start)"; then
    eval "$exports"
    note "$svc ready ($((SECONDS - t_svc))s)"
  else
    problem "$svc did not start"
  fi
done
# The three-node OpenBao cluster of the failover tests (after openbao.sh, which installs the
# bao binary) needs about 20 s to elect a leader and join its nodes: it starts in the
# background while the fuzz targets are checked.
t_cluster=$SECONDS
if ! scripts/services/openbao-cluster.sh status >/dev/null 2>&1; then
  started+=(openbao-cluster)
fi
cluster_exports="$(mktemp)"
scripts/services/openbao-cluster.sh start >"$cluster_exports" &
cluster_pid=$!
# The fuzz targets live in their own workspace (fuzz/); type-check them (`cargo check`: no
# code generation, no linking) so that a change to the crates that breaks them fails here,
# not in the next fuzzing session. Their corpora are replayed by `cargo test` below, through
# the crates' own `fuzzing` modules. (Building them took 480-500 s of CI's set-up here.)
t_fuzz=$SECONDS
if ! cargo check --manifest-path fuzz/Cargo.toml --bins --target-dir target; then
  note "the fuzz targets (fuzz/) do not compile"
  exit 1
fi
note "fuzz targets checked ($((SECONDS - t_fuzz))s)"
if wait "$cluster_pid"; then
  eval "$(cat "$cluster_exports")"
  note "openbao-cluster ready ($((SECONDS - t_cluster))s, in the background)"
else
  problem "openbao-cluster did not start"
fi
rm -f "$cluster_exports"

note "setup took $((SECONDS - t0))s; running cargo test --workspace --release $*"

set +e
cargo test --workspace --release "$@"
status=$?
set -e
note "cargo test exited with status $status after $((SECONDS - t0))s in all"
exit "$status"
