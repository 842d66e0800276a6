#!/usr/bin/env bash
# Usage: scripts/with-redis.sh CMD [ARGS...]
#
# Runs CMD with SLICES_TEST_REDIS_URL pointing at a throwaway redis-server on a free loopback
# port, then stops it and deletes its files (also when CMD fails or the script is
# interrupted). Exits with CMD's status. When SLICES_TEST_REDIS_URL is already set (a CI
# service, a local server), CMD simply runs against it.
#
# The server persists every write before it answers (appendonly yes, appendfsync always), so a
# restart keeps every acknowledged session, as a production server configured for sessions
# would. Also exported, for the fault tests (tests/faults/redis.test.mjs):
#   SLICES_TEST_REDIS_PIDFILE  the server's pid file (SIGSTOP/SIGCONT it to hang the server)
#   SLICES_TEST_REDIS_STOP     a shell command that stops the server (a clean shutdown)
#   SLICES_TEST_REDIS_START    a shell command that starts it again, same port and data
set -euo pipefail

log() { printf 'with-redis.sh: %s\n' "$*" >&2; }

if [ "$#" -eq 0 ]; then
  log "usage: $0 CMD [ARGS...]"
  exit 2
fi

if [ -n "${SLICES_TEST_REDIS_URL:-}" ]; then
  exec "$@"
fi

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  log "no redis-server found; installing Debian's redis-server package"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y redis-server || { $sudo apt-get update && $sudo apt-get install -y redis-server; }
  if ! command -v redis-server >/dev/null 2>&1; then
    log "redis-server is still missing after installing it"
    exit 1
  fi
  # The package may start its own service on the default port; ours never uses it.
fi

free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
  else
    echo $((20000 + RANDOM % 40000))
  fi
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/slices-redis.XXXXXX")
port=$(free_port)
conf="$tmp/redis.conf"
pidfile="$tmp/redis.pid"
logfile="$tmp/redis.log"
cat >"$conf" <<EOF
bind 127.0.0.1
port $port
dir $tmp
pidfile $pidfile
logfile $logfile
daemonize yes
appendonly yes
appendfsync always
save ""
protected-mode yes
EOF

cli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }

started=""
cleanup() {
  local status=$?
  if [ -n "$started" ] && [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ]; then
      kill -CONT "$pid" 2>/dev/null || true
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$tmp"
  return "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_ready() {
  for _ in $(seq 1 100); do
    if [ "$(cli ping 2>/dev/null)" = "PONG" ]; then return 0; fi
    sleep 0.1
  done
  return 1
}

started=1
redis-server "$conf"
if ! wait_ready; then
  log "redis-server did not start; its log:"
  cat "$logfile" >&2 || true
  exit 1
fi
log "started $(redis-server --version | cut -d' ' -f1-3) on 127.0.0.1:$port (data in $tmp)"

export SLICES_TEST_REDIS_URL="redis://127.0.0.1:$port"
export SLICES_TEST_REDIS_PIDFILE="$pidfile"
# A clean shutdown (the AOF is already on disk), then waits until the port is free.
export SLICES_TEST_REDIS_STOP="redis-cli -h 127.0.0.1 -p $port shutdown >/dev/null 2>&1; for i in \$(seq 1 100); do redis-cli -h 127.0.0.1 -p $port ping >/dev/null 2>&1 || exit 0; sleep 0.1; done; exit 1"
export SLICES_TEST_REDIS_START="redis-server $(printf '%q' "$conf") && for i in \$(seq 1 100); do [ \"\$(redis-cli -h 127.0.0.1 -p $port ping 2>/dev/null)\" = PONG ] && exit 0; sleep 0.1; done; exit 1"

set +e
"$@"
status=$?
set -e
if [ "$status" -ne 0 ]; then
  log "command failed with status $status; last lines of the server log:"
  tail -n 30 "$logfile" >&2 || true
fi
exit "$status"
