#!/usr/bin/env bash
# SoftHSM2 PKCS#11 token for hyok's tests.
#
#   eval "$(scripts/services/softhsm.sh)"   # install if needed, create the token, print exports
#   scripts/services/softhsm.sh clean       # delete the token (and every key the tests made)
#
# SoftHSM is a library, not a server: "start" means "an initialised token exists in
# $HYOK_STATE_DIR/softhsm/tokens and the user PIN logs in". `stop` has nothing to stop and keeps
# the token. The token starts empty; tests create the keys they need.
#
# Facts worth knowing (SoftHSM 2.6.1, Debian 12):
#   * look the token up by label: --init-token moves it to a random slot number;
#   * CKM_RSA_PKCS_OAEP works with SHA-1 only, CKM_ECDSA_SHA256 is missing (hash yourself and
#     use CKM_ECDSA), CKM_AES_GCM works with C_Encrypt but not C_WrapKey, and
#     CKM_AES_KEY_WRAP_PAD is only right for lengths that are a multiple of 8;
#   * C_Initialize may be called once per process; share one context between test threads.
#
# Token hyok-test, user PIN 123456, SO PIN 12345678. Optional setting: HYOK_STATE_DIR.
set -euo pipefail

SVC=softhsm
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TOKEN_LABEL=hyok-test
USER_PIN=123456
SO_PIN=12345678
CONF="$SVC_DIR/softhsm2.conf"
TOKEN_DIR="$SVC_DIR/tokens"

find_module() {
  local candidate
  for candidate in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*-linux-gnu*/softhsm/libsofthsm2.so \
    /usr/local/lib/softhsm/libsofthsm2.so; do
    if [[ -f "$candidate" ]]; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  return 1
}

install_softhsm() {
  if find_module >/dev/null && command -v softhsm2-util >/dev/null 2>&1 \
    && command -v pkcs11-tool >/dev/null 2>&1; then
    return 0
  fi
  apt_install softhsm2 opensc
  find_module >/dev/null || fail "libsofthsm2.so not found after installing softhsm2"
}

token_exists() {
  softhsm2-util --show-slots 2>/dev/null | grep -Eq "^[[:space:]]*Label:[[:space:]]+${TOKEN_LABEL}[[:space:]]*\$"
}

svc_running() { [[ -f "$CONF" ]] && SOFTHSM2_CONF="$CONF" token_exists; }

svc_start() {
  install_softhsm
  local module
  module="$(find_module)"
  mkdir -p "$TOKEN_DIR"
  chmod 700 "$TOKEN_DIR"
  cat >"$CONF" <<CONF
# Written by scripts/services/softhsm.sh
directories.tokendir = $TOKEN_DIR
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
  export SOFTHSM2_CONF="$CONF"

  if token_exists; then
    say "token '$TOKEN_LABEL' already exists"
  else
    softhsm2-util --init-token --free --label "$TOKEN_LABEL" --so-pin "$SO_PIN" --pin "$USER_PIN" \
      >"$SVC_LOG" 2>&1 || fail "softhsm2-util --init-token failed"
    say "initialised empty token '$TOKEN_LABEL'"
  fi

  # End-to-end check through the same module the tests load: log in with the user PIN and list.
  pkcs11-tool --module "$module" --token-label "$TOKEN_LABEL" --login --pin "$USER_PIN" \
    --list-objects >"$SVC_DIR/check.log" 2>&1 \
    || { cat "$SVC_DIR/check.log" >&2; fail "cannot log in to token '$TOKEN_LABEL' (run '$0 clean' to start over)"; }
  say "ready: token '$TOKEN_LABEL' ($(grep -c '^[A-Z].* Object;' "$SVC_DIR/check.log" || true) objects), module $module"

  emit SOFTHSM2_CONF "$CONF"
  emit HYOK_PKCS11_MODULE "$module"
  emit HYOK_TEST_PKCS11_TOKEN "$TOKEN_LABEL"
  emit HYOK_PKCS11_PIN "$USER_PIN"
  emit HYOK_TEST_PKCS11_SO_PIN "$SO_PIN"
}

svc_stop() { say "nothing to stop (a token is files, kept in $TOKEN_DIR; 'clean' deletes it)"; }

svc_main "$@"
