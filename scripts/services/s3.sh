#!/usr/bin/env bash
# S3-compatible object store for hyok's tests: s3s-fs 0.14.1 on 127.0.0.1, data on local disk.
#
#   eval "$(scripts/services/s3.sh)"    # build if needed, start, create the bucket, print exports
#   scripts/services/s3.sh stop         # also: restart, status, clean (stop + delete all objects)
#
# s3s-fs verifies SigV4 signatures and Content-MD5 / checksum headers, so client signing bugs
# show up as errors instead of being accepted silently. It keeps buckets as directories under
# $HYOK_STATE_DIR/s3/data. The binary is built with `cargo install` (about 5 minutes of CPU) into
# $HYOK_TOOLS_DIR/bin; later runs reuse it. 0.14.1 is pinned because newer releases require a
# newer rustc than 1.95.
#
# Optional settings: HYOK_STATE_DIR, HYOK_TOOLS_DIR, HYOK_SERVICE_TIMEOUT,
#   HYOK_S3_PORT (9000), HYOK_BUILD_NICE (nice level of the cargo build, 10).
# Bucket hyok-test; access key hyok-test-access, secret hyok-test-secret (fixed on purpose).
set -euo pipefail

SVC=s3
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

S3S_VERSION=0.14.1
S3S_BIN="$HYOK_TOOLS_DIR/bin/s3s-fs"
SVC_MATCH=s3s-fs
PORT="${HYOK_S3_PORT:-9000}"
ENDPOINT="http://127.0.0.1:$PORT"
# Fixed test credentials: never taken from AWS_* in the environment, which may hold real ones.
BUCKET=hyok-test
ACCESS_KEY=hyok-test-access
SECRET_KEY=hyok-test-secret
REGION=us-east-1
SVC_EXTRA_LOGS=("$SVC_DIR/cargo-install.log")

install_s3s_fs() {
  if [[ -x "$S3S_BIN" ]] && "$S3S_BIN" --version 2>/dev/null | grep -q "$S3S_VERSION"; then
    return 0
  fi
  command -v cargo >/dev/null 2>&1 || fail "cargo is needed to build s3s-fs (install a Rust toolchain)"
  mkdir -p "$HYOK_TOOLS_DIR"
  say "building s3s-fs $S3S_VERSION with cargo install (about 5 minutes on 2 cores); log $SVC_DIR/cargo-install.log"
  local t0=$SECONDS
  # Run from the tools dir so no project-local cargo config or toolchain file applies.
  (cd "$HYOK_TOOLS_DIR" && nice -n "${HYOK_BUILD_NICE:-10}" \
    cargo install --root "$HYOK_TOOLS_DIR" s3s-fs --version "$S3S_VERSION" --features binary --locked) \
    >"$SVC_DIR/cargo-install.log" 2>&1 || fail "cargo install s3s-fs $S3S_VERSION failed"
  [[ -x "$S3S_BIN" ]] || fail "cargo install finished but $S3S_BIN is missing"
  say "built s3s-fs in $((SECONDS - t0))s"
}

# s3req METHOD PATH [CURL-ARG...]: a SigV4-signed request; prints the HTTP status code.
# curl signs the request but does not add x-amz-content-sha256, which S3 requires, so the hash
# of the body is supplied here (requests below carry an empty body or a small --data-binary).
s3req() {
  local method="$1" path="$2" body_sha
  shift 2
  body_sha="$(printf '%s' "${S3_BODY:-}" | sha256sum | cut -d' ' -f1)"
  local -a how=(-X "$method")
  [[ "$method" == HEAD ]] && how=(--head)
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -H "x-amz-content-sha256: $body_sha" "${how[@]}" "$@" "$ENDPOINT$path" 2>/dev/null || true
}

list_buckets_ok() { [[ "$(s3req GET /)" == 200 ]]; }

svc_running() { daemon_pgid >/dev/null; }

svc_start() {
  command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
  install_s3s_fs
  mkdir -p "$SVC_DIR/data"

  if daemon_pgid >/dev/null; then
    say "already running (pid $(<"$SVC_PIDFILE"))"
  else
    daemon_start TERM "$PORT" "$S3S_BIN" --host 127.0.0.1 --port "$PORT" \
      --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" "$SVC_DIR/data"
  fi
  wait_until "a signed ListBuckets on $ENDPOINT" list_buckets_ok

  local code
  if [[ "$(s3req HEAD "/$BUCKET")" != 200 ]]; then
    code="$(s3req PUT "/$BUCKET")"
    [[ "$code" == 200 ]] || fail "CreateBucket $BUCKET answered HTTP $code"
    say "created bucket $BUCKET"
  fi

  # End-to-end check: signed PUT, GET and DELETE of a small object.
  local probe="/$BUCKET/.hyok-service-check"
  code="$(S3_BODY=ok s3req PUT "$probe" --data-binary ok)"
  [[ "$code" == 200 ]] || fail "PutObject answered HTTP $code"
  code="$(s3req GET "$probe")"
  [[ "$code" == 200 ]] || fail "GetObject answered HTTP $code"
  code="$(s3req DELETE "$probe")"
  [[ "$code" == 204 || "$code" == 200 ]] || fail "DeleteObject answered HTTP $code"
  say "ready on $ENDPOINT, bucket $BUCKET"

  emit AWS_ACCESS_KEY_ID "$ACCESS_KEY"
  emit AWS_SECRET_ACCESS_KEY "$SECRET_KEY"
  emit AWS_REGION "$REGION"
  emit AWS_DEFAULT_REGION "$REGION"
  emit AWS_ENDPOINT_URL "$ENDPOINT"
  emit AWS_ALLOW_HTTP true
  emit AWS_EC2_METADATA_DISABLED true
  emit HYOK_TEST_S3_BUCKET "$BUCKET"
}

svc_stop() { daemon_stop TERM; }

svc_main "$@"
