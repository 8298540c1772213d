#!/usr/bin/env bash
# PyKMIP 0.11.0 server (KMIP over mutual TLS 1.2) for hyok's tests.
#
#   eval "$(scripts/services/kmip.sh)"   # install if needed, make certs, start, print exports
#   scripts/services/kmip.sh stop        # also: restart, status, clean (stop + delete certs and db)
#
# A private CA, a server certificate (SAN IP:127.0.0.1 and DNS:localhost) and a client
# certificate (CN hyok-test-client, extendedKeyUsage clientAuth, which PyKMIP requires) are made
# once in $HYOK_STATE_DIR/kmip/certs. All keys are ECDSA P-256 in PKCS#8 PEM. EC rather than RSA
# on purpose: PyKMIP speaks TLS 1.2 only, and with an RSA certificate it offers nothing but
# CBC-SHA256 suites, which rustls does not implement; with an EC certificate it negotiates
# ECDHE-ECDSA-AES-GCM. Objects belong to the client certificate's CN. The SQLite database in the
# state dir keeps objects across restarts.
#
# Facts worth knowing (PyKMIP 0.11.0): new keys are Pre-Active until Activate; AES-GCM with AAD
# needs KMIP 1.4+ encoding; Get with a NIST key-wrap KeyWrappingSpecification works; ReKey,
# Check and asymmetric Encrypt/Decrypt are not implemented. SIGINT stops it at once (SIGTERM
# waits for a 10 s accept timeout).
#
# Optional settings: HYOK_STATE_DIR, HYOK_TOOLS_DIR, HYOK_SERVICE_TIMEOUT, HYOK_KMIP_PORT (5696).
set -euo pipefail

SVC=kmip
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${HYOK_KMIP_PORT:-5696}"
VENV="$HYOK_TOOLS_DIR/pykmip-0.11.0"
# Versions known to work together; PyKMIP is unmaintained and newer ones may break it.
PY_REQUIREMENTS=(pykmip==0.11.0 cryptography==50.0.2 sqlalchemy==2.1.9)
CERTS="$SVC_DIR/certs"
SVC_MATCH=pykmip-server
SVC_EXTRA_LOGS=("$SVC_DIR/server.log")
CHECK_KEY=hyok-service-check

install_pykmip() {
  local stamp="$VENV/.hyok-installed"
  if [[ -x "$VENV/bin/pykmip-server" && "$(cat "$stamp" 2>/dev/null)" == "${PY_REQUIREMENTS[*]}" ]]; then
    return 0
  fi
  need_python
  say "installing ${PY_REQUIREMENTS[*]} into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV" >"$SVC_DIR/install.log" 2>&1 || fail "python3 -m venv failed"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PY_REQUIREMENTS[@]}" \
    >>"$SVC_DIR/install.log" 2>&1 || { tail -n 20 "$SVC_DIR/install.log" >&2; fail "pip install failed"; }
  printf '%s\n' "${PY_REQUIREMENTS[*]}" >"$stamp"
}

# new_cert NAME SUBJECT EXTENSIONS: a P-256 key (PKCS#8) and a certificate signed by the CA.
new_cert() {
  local name="$1" subject="$2" extensions="$3"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$name.key"
  openssl req -new -key "$name.key" -subj "$subject" -out "$name.csr"
  printf '%s\n' "$extensions" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -sha256 \
    -extfile "$name.ext" -out "$name.crt"
  rm -f "$name.csr" "$name.ext"
}

make_certs() {
  local f
  for f in ca.crt server.crt server.key client.crt client.key; do
    [[ -s "$CERTS/$f" ]] || break
  done
  [[ -s "$CERTS/$f" ]] && return 0
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  # New certificates need a server restart.
  daemon_stop INT >/dev/null 2>&1 || true
  rm -rf "$CERTS"
  mkdir -p "$CERTS"
  chmod 700 "$CERTS"
  (
    cd "$CERTS"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
    openssl req -x509 -new -key ca.key -subj "/CN=hyok test KMIP CA" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out ca.crt
    new_cert server "/CN=localhost" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
    new_cert client "/CN=hyok-test-client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=clientAuth"
    rm -f ca.srl
    chmod 600 ./*.key
  ) >"$SVC_DIR/certs.log" 2>&1 || { cat "$SVC_DIR/certs.log" >&2; fail "making certificates failed"; }
  say "made a CA, a server and a client certificate (ECDSA P-256) in $CERTS"
}

write_config() {
  mkdir -p "$SVC_DIR/policies"
  cat >"$SVC_DIR/server.conf" <<CONF
# Written by scripts/services/kmip.sh
[server]
hostname=127.0.0.1
port=$PORT
certificate_path=$CERTS/server.crt
key_path=$CERTS/server.key
ca_path=$CERTS/ca.crt
auth_suite=TLS1.2
enable_tls_client_auth=True
policy_path=$SVC_DIR/policies
database_path=$SVC_DIR/pykmip.db
logging_level=INFO
CONF
}

# A pykmip-server that crashed at startup can linger (its helper processes keep it from exiting),
# so after a fresh start (SVC_STOP_SIGNAL is set by daemon_start) watch its output for a traceback
# instead of waiting for the timeout.
listening() {
  if [[ -n "$SVC_STOP_SIGNAL" ]] && grep -q '^Traceback' "$SVC_LOG" 2>/dev/null; then
    fail "pykmip-server crashed while starting"
  fi
  port_open "$PORT"
}

# End-to-end check with the PyKMIP client over mutual TLS: find or create an AES-256 key, then
# an AES-CBC encrypt / decrypt round trip and a Get.
client_check() {
  PYTHONWARNINGS=ignore "$VENV/bin/python" - "$CERTS" "$PORT" "$CHECK_KEY" <<'PY'
import logging, os, sys
logging.disable(logging.CRITICAL)
from kmip.core import enums
from kmip.core.factories.attributes import AttributeFactory
from kmip.pie.client import ProxyKmipClient

certs, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
client = ProxyKmipClient(
    hostname="127.0.0.1", port=port, cert=certs + "/client.crt", key=certs + "/client.key",
    ca=certs + "/ca.crt", ssl_version="PROTOCOL_SSLv23", config_file="/dev/null")
usage = enums.CryptographicUsageMask
params = {"cryptographic_algorithm": enums.CryptographicAlgorithm.AES,
          "block_cipher_mode": enums.BlockCipherMode.CBC,
          "padding_method": enums.PaddingMethod.PKCS5}
with client:
    found = client.locate(attributes=[
        AttributeFactory().create_attribute(enums.AttributeType.NAME, name)])
    if found:
        uid = found[0]
    else:
        uid = client.create(enums.CryptographicAlgorithm.AES, 256, name=name,
                            cryptographic_usage_mask=[usage.ENCRYPT, usage.DECRYPT])
        client.activate(uid)
    data, iv = os.urandom(32), os.urandom(16)
    ciphertext, _ = client.encrypt(data, uid=uid, cryptographic_parameters=params, iv_counter_nonce=iv)
    if client.decrypt(ciphertext, uid=uid, cryptographic_parameters=params, iv_counter_nonce=iv) != data:
        sys.exit("decrypt returned different bytes")
    if len(client.get(uid).value) != 32:
        sys.exit("Get returned a key of the wrong length")
PY
}

svc_running() { daemon_pgid >/dev/null; }

svc_start() {
  install_pykmip
  make_certs
  write_config

  if daemon_pgid >/dev/null; then
    say "already running (pid $(<"$SVC_PIDFILE"))"
  else
    PYTHONWARNINGS=ignore daemon_start INT "$PORT" "$VENV/bin/pykmip-server" \
      -f "$SVC_DIR/server.conf" -l "$SVC_DIR/server.log"
  fi
  wait_until "127.0.0.1:$PORT to accept connections" listening
  client_check >>"$SVC_LOG" 2>&1 || fail "KMIP client check (locate/create, encrypt/decrypt, get) failed"
  say "ready on 127.0.0.1:$PORT (mTLS client check OK)"

  emit HYOK_KMIP_ADDR "127.0.0.1:$PORT"
  emit HYOK_KMIP_CA "$CERTS/ca.crt"
  emit HYOK_KMIP_CERT "$CERTS/client.crt"
  emit HYOK_KMIP_KEY "$CERTS/client.key"
}

svc_stop() { daemon_stop INT; }

svc_main "$@"
