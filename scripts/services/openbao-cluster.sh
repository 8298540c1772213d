#!/usr/bin/env bash
# A three-node OpenBao cluster with integrated (raft) storage, for hyok's failover tests.
#
#   eval "$(scripts/services/openbao-cluster.sh)"   # start fresh, init, unseal, mount transit, print exports
#   scripts/services/openbao-cluster.sh stop         # stop all nodes (also: restart, status, clean)
#   scripts/services/openbao-cluster.sh node-stop N  # stop node N (1, 2 or 3), as a crash would
#   scripts/services/openbao-cluster.sh node-start N # start node N again and unseal it
#   scripts/services/openbao-cluster.sh leader       # print the API address of the active node
#
# Node N listens on 127.0.0.1:(BASE + 10·(N-1)) for the API (8210, 8220, 8230 by default) and
# one port higher for cluster traffic (raft and request forwarding). Every `start` of a stopped
# cluster begins empty: the state dir is wiped, node 1 is initialised with one key share, the
# others join it through `retry_join` once they are unsealed with the same key, and transit is
# mounted with the key hyok-cluster-kek (aes256-gcm96). The unseal key and root token are kept
# in $HYOK_STATE_DIR/openbao-cluster/init.json (mode 600) so node-start can unseal a node again.
#
# Facts worth knowing (OpenBao 2.7.2, measured here):
#   * a standby forwards requests to the active node over the cluster port, so every node
#     answers transit calls; /v1/sys/health says 200 on the active node, 429 on a standby;
#   * when the active node stops, a standby takes over after a few seconds; in between the
#     standbys answer 5xx ("local node not active but active cluster node not found");
#   * a node that was stopped and started again comes back sealed, and rejoins once unsealed.
#
# Exports: HYOK_TEST_BAO_CLUSTER_ADDRS (the three API addresses, comma-separated),
# HYOK_TEST_BAO_CLUSTER_TOKEN (root token of this throwaway cluster), HYOK_TEST_BAO_CLUSTER_KEY,
# HYOK_TEST_BAO_CLUSTER_CTL (this script, for tests that stop and start nodes).
#
# Optional settings: HYOK_STATE_DIR, HYOK_TOOLS_DIR, HYOK_SERVICE_TIMEOUT,
# HYOK_OPENBAO_CLUSTER_PORT (8210).
set -euo pipefail

SVC=openbao-cluster
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=bao.sh
. "$(dirname "${BASH_SOURCE[0]}")/bao.sh"

SVC_MATCH="bao server"
BASE_PORT="${HYOK_OPENBAO_CLUSTER_PORT:-8210}"
NODES=(1 2 3)
KEY_NAME=hyok-cluster-kek
INIT_JSON="$SVC_DIR/init.json"
SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

api_port() { echo $((BASE_PORT + 10 * ($1 - 1))); }
api_addr() { echo "http://127.0.0.1:$(api_port "$1")"; }

# use_node N: point lib.sh's per-daemon variables (pid file, log) at node N.
use_node() {
  SVC_PIDFILE="$SVC_DIR/node$1/bao.pid"
  SVC_LOG="$SVC_DIR/node$1/bao.log"
}

# health_code N: the HTTP status of node N's /v1/sys/health (000 when it does not answer).
health_code() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$(api_addr "$1")/v1/sys/health" 2>/dev/null || true
}

json_field() {
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(v[0] if isinstance(v,list) else v)' "$1" "$2"
}

write_config() {
  local n="$1" dir="$SVC_DIR/node$1" port joins="" m
  port="$(api_port "$n")"
  for m in "${NODES[@]}"; do
    [[ "$m" == "$n" ]] && continue
    joins+="  retry_join {
    leader_api_addr = \"$(api_addr "$m")\"
  }
"
  done
  mkdir -p "$dir/raft"
  chmod 700 "$dir"
  cat >"$dir/config.hcl" <<EOF
storage "raft" {
  path    = "$dir/raft"
  node_id = "node$n"
$joins}
listener "tcp" {
  address         = "127.0.0.1:$port"
  cluster_address = "127.0.0.1:$((port + 1))"
  tls_disable     = true
}
api_addr     = "http://127.0.0.1:$port"
cluster_addr = "http://127.0.0.1:$((port + 1))"
ui           = false
EOF
}

# start_node N: launch node N (config already written) and wait until its API answers.
start_node() {
  local n="$1"
  use_node "$n"
  if daemon_pgid >/dev/null; then
    say "node $n already running (pid $(<"$SVC_PIDFILE"))"
  else
    daemon_start TERM "$(api_port "$n")" "$BAO_BIN" server -config="$SVC_DIR/node$n/config.hcl"
  fi
  # shellcheck disable=SC2317  # called through wait_until
  answers() { [[ "$(health_code "$n")" =~ ^(200|429|472|473|501|503)$ ]]; }
  wait_until "node $n to answer on $(api_addr "$n")" answers
}

# unseal_node N: unseal node N with the key from init.json, and wait until it is active or a
# standby (a joining node first needs the leader to accept it).
unseal_node() {
  local n="$1" key code
  use_node "$n"
  key="$(json_field "$INIT_JSON" keys_base64)"
  # shellcheck disable=SC2317  # called through wait_until
  unsealed() {
    code="$(health_code "$n")"
    [[ "$code" == 200 || "$code" == 429 ]] && return 0
    if [[ "$code" == 503 || "$code" == 501 ]]; then
      # Sealed (or not yet joined): (re)send the key; a joining node asks again after the join.
      curl -s -o /dev/null --max-time 5 -X PUT -d "{\"key\":\"$key\"}" \
        "$(api_addr "$n")/v1/sys/unseal" || true
    fi
    return 1
  }
  wait_until "node $n to be unsealed and in the cluster" unsealed
}

leader_addr() {
  local n
  for n in "${NODES[@]}"; do
    if [[ "$(health_code "$n")" == 200 ]]; then
      api_addr "$n"
      return 0
    fi
  done
  return 1
}

svc_running() {
  local n
  for n in "${NODES[@]}"; do
    use_node "$n"
    daemon_pgid >/dev/null && return 0
  done
  return 1
}

svc_stop() {
  local n
  for n in "${NODES[@]}"; do
    use_node "$n"
    daemon_stop TERM
  done
}

svc_start() {
  command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
  install_bao
  printf '%s\n' "$BAO_BIN" >"$SVC_DIR/bao-bin"
  local n token ct pt addrs="" running=0
  for n in "${NODES[@]}"; do
    use_node "$n"
    if daemon_pgid >/dev/null; then running=1; fi
  done
  if ((running == 0)); then
    # A fresh cluster each time: stale raft data would need the old unseal key.
    for n in "${NODES[@]}"; do
      rm -rf "$SVC_DIR/node$n"
      write_config "$n"
    done
    rm -f "$INIT_JSON"
  fi
  for n in "${NODES[@]}"; do start_node "$n"; done

  if [[ ! -s "$INIT_JSON" ]]; then
    curl -sf --max-time 30 -X PUT -d '{"secret_shares":1,"secret_threshold":1}' \
      "$(api_addr 1)/v1/sys/init" >"$INIT_JSON.tmp" || fail "sys/init on node 1 failed"
    chmod 600 "$INIT_JSON.tmp"
    mv -f "$INIT_JSON.tmp" "$INIT_JSON"
    say "initialised node 1 (1 key share; unseal key and root token in $INIT_JSON)"
  fi
  unseal_node 1
  # shellcheck disable=SC2317  # called through wait_until
  node1_active() { [[ "$(health_code 1)" == 200 ]] || leader_addr >/dev/null; }
  wait_until "an active node" node1_active
  for n in "${NODES[@]:1}"; do unseal_node "$n"; done

  token="$(json_field "$INIT_JSON" root_token)"
  local leader
  leader="$(leader_addr)" || fail "no active node after unsealing"
  local h="X-Vault-Token: $token"
  if ! curl -sf --max-time 10 -H "$h" "$leader/v1/sys/mounts" | grep -q '"transit/"'; then
    curl -sf --max-time 10 -H "$h" -X POST -d '{"type":"transit"}' "$leader/v1/sys/mounts/transit" \
      >/dev/null || fail "mounting transit failed"
    say "mounted transit at transit/"
  fi
  if ! curl -sf -o /dev/null --max-time 10 -H "$h" "$leader/v1/transit/keys/$KEY_NAME"; then
    curl -sf -o /dev/null --max-time 10 -H "$h" -X POST -d '{"type":"aes256-gcm96"}' \
      "$leader/v1/transit/keys/$KEY_NAME" || fail "creating transit key $KEY_NAME failed"
  fi
  # End-to-end check through every node (standbys forward to the active node): the key is there.
  for n in "${NODES[@]}"; do
    ct="$(curl -sf --max-time 10 -H "$h" -X POST -d '{"plaintext":"aHlvaw=="}' \
      "$(api_addr "$n")/v1/transit/encrypt/$KEY_NAME" | json_stdin_ciphertext)" \
      || fail "transit encrypt through node $n failed"
    pt="$(curl -sf --max-time 10 -H "$h" -X POST -d "{\"ciphertext\":\"$ct\"}" \
      "$(api_addr "$n")/v1/transit/decrypt/$KEY_NAME" | json_stdin_plaintext)" \
      || fail "transit decrypt through node $n failed"
    [[ "$pt" == "aHlvaw==" ]] || fail "transit round trip through node $n returned different bytes"
    addrs+="${addrs:+,}$(api_addr "$n")"
  done
  say "ready: 3 nodes, active $leader (transit round trip OK through each node)"

  emit HYOK_TEST_BAO_CLUSTER_ADDRS "$addrs"
  emit HYOK_TEST_BAO_CLUSTER_TOKEN "$token"
  emit HYOK_TEST_BAO_CLUSTER_KEY "$KEY_NAME"
  emit HYOK_TEST_BAO_CLUSTER_CTL "$SCRIPT_PATH"
}

json_stdin_ciphertext() { python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["ciphertext"])'; }
json_stdin_plaintext() { python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["plaintext"])'; }

check_node_arg() {
  [[ "${1:-}" =~ ^[123]$ ]] || { say "usage: $0 node-stop|node-start N (N = 1, 2 or 3)"; exit 2; }
}

case "${1:-start}" in
  node-stop)
    check_node_arg "${2:-}"
    use_node "$2"
    daemon_stop TERM
    ;;
  node-start)
    check_node_arg "${2:-}"
    [[ -s "$INIT_JSON" ]] || fail "no $INIT_JSON: start the cluster first"
    # The binary `start` used (HYOK_TOOLS_DIR may not be set the same way here, e.g. in a test).
    if [[ -s "$SVC_DIR/bao-bin" ]]; then BAO_BIN="$(<"$SVC_DIR/bao-bin")"; fi
    start_node "$2"
    unseal_node "$2"
    say "node $2 is back ($(health_code "$2"))"
    ;;
  leader)
    leader_addr || fail "no active node"
    ;;
  *)
    svc_main "$@"
    ;;
esac
