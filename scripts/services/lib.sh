# shellcheck shell=bash
# Helpers shared by the service scripts in this directory. Sourced, never run.
#
# The sourcing script sets SVC (a short name such as "openbao") before sourcing this file,
# then defines svc_start / svc_stop / svc_running and calls `svc_main "$@"` at the end.
#
# Conventions every service script follows:
#   * stdout carries nothing but `export NAME=value` lines (meant for `eval "$(...)"`);
#   * progress and errors go to stderr, server and installer output to files under the state dir;
#   * every wait is bounded (HYOK_SERVICE_TIMEOUT seconds, default 60);
#   * a server is started in its own session (setsid), so `stop` can signal exactly the process
#     group whose id is in the pid file, including any helper processes the server forked.

: "${SVC:?set SVC before sourcing lib.sh}"

HYOK_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HYOK_STATE_DIR="${HYOK_STATE_DIR:-$HYOK_REPO_ROOT/.state}"
mkdir -p "$HYOK_STATE_DIR"
HYOK_STATE_DIR="$(cd "$HYOK_STATE_DIR" && pwd)"
HYOK_TOOLS_DIR="${HYOK_TOOLS_DIR:-$HYOK_STATE_DIR/tools}"
SVC_DIR="$HYOK_STATE_DIR/$SVC"
SVC_LOG="$SVC_DIR/$SVC.log"
SVC_PIDFILE="$SVC_DIR/$SVC.pid"
SVC_TIMEOUT="${HYOK_SERVICE_TIMEOUT:-60}"
# Extra log files whose tail is worth showing when something goes wrong.
SVC_EXTRA_LOGS=()

say() { printf '[%s] %s\n' "$SVC" "$*" >&2; }

SVC_T0="$(date +%s)"

# show_logs: the tail of each log file this run wrote to (older ones would only mislead).
show_logs() {
  local f
  for f in "$SVC_LOG" "${SVC_EXTRA_LOGS[@]}"; do
    if [[ -s "$f" && "$(stat -c %Y "$f")" -ge "$SVC_T0" ]]; then
      printf '[%s] ---- last lines of %s ----\n' "$SVC" "$f" >&2
      tail -n 25 "$f" >&2
    fi
  done
}

# Set by daemon_start: a start that fails after launching the server stops it again.
SVC_STOP_SIGNAL=

fail() {
  say "ERROR: $*"
  show_logs
  if [[ -n "$SVC_STOP_SIGNAL" ]]; then
    daemon_stop "$SVC_STOP_SIGNAL" quiet
  fi
  exit 1
}

# emit NAME VALUE: one line for the caller to eval.
emit() { printf 'export %s=%q\n' "$1" "$2"; }

as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    fail "root (or sudo) is needed to run: $*"
  fi
}

# apt_install PKG...: install Debian packages, refreshing the package lists once if needed.
apt_install() {
  local log="$SVC_DIR/apt.log"
  command -v apt-get >/dev/null 2>&1 || fail "apt-get not found; install by hand: $*"
  say "installing with apt-get: $*"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1; then
    say "apt-get install failed; running apt-get update and trying again"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log" 2>&1 || { tail -n 20 "$log" >&2; fail "apt-get update failed"; }
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$log" 2>&1 \
      || { tail -n 20 "$log" >&2; fail "apt-get install $* failed"; }
  fi
}

# need_python: a python3 that can create venvs and run pip.
need_python() {
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv python3-pip
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_install python3-venv python3-pip
  fi
}

# ---- processes -------------------------------------------------------------------------------

# group_alive PGID [PATTERN]: true if a live (not zombie) process is in process group PGID and,
# when PATTERN is given, at least one such process has a command line matching it (a guard
# against a stale pid file whose number now belongs to somebody else).
group_alive() {
  local pgid="$1" pattern="${2:-}" stat_path line fields cmd found=1
  for stat_path in /proc/[0-9]*/stat; do
    { read -r line <"$stat_path"; } 2>/dev/null || continue
    line="${line##*) }"                 # drop "pid (comm) ", comm may contain spaces
    read -r -a fields <<<"$line"        # [0]=state [1]=ppid [2]=pgrp
    [[ "${fields[2]:-}" == "$pgid" && "${fields[0]:-}" != Z ]] || continue
    if [[ -z "$pattern" ]]; then
      return 0
    fi
    cmd="$( { tr '\0' ' ' <"${stat_path%/stat}/cmdline"; } 2>/dev/null || true)"
    if [[ "$cmd" == *"$pattern"* ]]; then
      found=0
      break
    fi
  done
  return "$found"
}

# leader_alive PID: the process PID exists, is not a zombie, and its command line contains
# SVC_MATCH (a guard against a stale pid file whose number now belongs to somebody else).
leader_alive() {
  local line cmd
  { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
  line="${line##*) }"
  [[ "${line%% *}" != Z ]] || return 1
  cmd="$( { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null || true)"
  [[ "$cmd" == *"${SVC_MATCH:?}"* ]]
}

# recorded_pgid: the number in the pid file, if it is one.
recorded_pgid() {
  local pgid
  [[ -f "$SVC_PIDFILE" ]] || return 1
  pgid="$(<"$SVC_PIDFILE")"
  [[ "$pgid" =~ ^[0-9]+$ ]] || return 1
  printf '%s\n' "$pgid"
}

# daemon_pgid: print the process-group id of our server if its main process is alive.
daemon_pgid() {
  local pgid
  pgid="$(recorded_pgid)" || return 1
  leader_alive "$pgid" || return 1
  printf '%s\n' "$pgid"
}

# daemon_start STOP-SIGNAL PORT CMD [ARG...]: run CMD in a new session, output appended to
# SVC_LOG. The child writes its own pid (= its process-group id after setsid) to the pid file
# before exec. Leftovers of an earlier run are stopped first, and PORT must then be free. If the
# start fails later on, fail() stops the server again.
daemon_start() {
  local i port="$2"
  SVC_STOP_SIGNAL="$1"
  shift 2
  daemon_stop "$SVC_STOP_SIGNAL" quiet
  if port_open "$port"; then
    fail "port $port on 127.0.0.1 is taken by another program (see the HYOK_*_PORT settings)"
  fi
  rm -f "$SVC_PIDFILE"
  if [[ -f "$SVC_LOG" ]]; then mv -f "$SVC_LOG" "$SVC_LOG.prev"; fi
  # shellcheck disable=SC2016  # $$ and $@ are for the inner sh
  setsid sh -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$SVC_PIDFILE" "$@" \
    </dev/null >>"$SVC_LOG" 2>&1 &
  for ((i = 0; i < 100; i++)); do
    [[ -s "$SVC_PIDFILE" ]] && break
    sleep 0.05
  done
  [[ -s "$SVC_PIDFILE" ]] || fail "server did not record its pid in $SVC_PIDFILE"
  say "started pid $(<"$SVC_PIDFILE"), log $SVC_LOG"
}

# daemon_stop SIGNAL [quiet]: signal our process group (whatever is left of it, even when the
# main process died and helpers it forked did not), wait up to 15 s, then SIGKILL.
daemon_stop() {
  local sig="$1" quiet="${2:-}" pgid i
  if ! pgid="$(recorded_pgid)" || ! group_alive "$pgid" "$SVC_MATCH"; then
    [[ -n "$quiet" ]] || say "not running"
    rm -f "$SVC_PIDFILE"
    return 0
  fi
  kill -s "$sig" -- "-$pgid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    group_alive "$pgid" || break
    sleep 0.1
  done
  if group_alive "$pgid"; then
    say "process group $pgid still alive after 15 s; sending SIGKILL"
    kill -s KILL -- "-$pgid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      group_alive "$pgid" || break
      sleep 0.1
    done
  fi
  rm -f "$SVC_PIDFILE"
  say "stopped (process group $pgid)"
}

# wait_until DESCRIPTION CMD [ARG...]: retry CMD until it succeeds, the daemon dies, or the
# timeout passes.
wait_until() {
  local what="$1" deadline=$((SECONDS + SVC_TIMEOUT))
  shift
  until "$@"; do
    daemon_pgid >/dev/null || fail "server exited while waiting for: $what"
    ((SECONDS < deadline)) || fail "timed out after ${SVC_TIMEOUT}s waiting for: $what"
    sleep 0.25
  done
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  # shellcheck disable=SC2016  # $1 belongs to the inner bash
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# ---- entry point -------------------------------------------------------------------------------

svc_main() {
  local action="${1:-start}"
  case "$action" in
    start)
      mkdir -p "$SVC_DIR"
      chmod 700 "$SVC_DIR"
      svc_start
      ;;
    stop)
      svc_stop
      ;;
    restart)
      svc_stop
      mkdir -p "$SVC_DIR"
      svc_start
      ;;
    status)
      if svc_running; then say "running"; else say "not running"; return 1; fi
      ;;
    clean)
      svc_stop
      rm -rf "$SVC_DIR"
      say "removed $SVC_DIR"
      ;;
    -h | --help | help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
      ;;
    *)
      say "usage: $0 [start|stop|restart|status|clean|help]"
      return 2
      ;;
  esac
}
