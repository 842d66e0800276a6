#!/usr/bin/env bash
# Usage: scripts/with-postgres.sh CMD [ARGS...]
#
# Runs CMD with SLICES_TEST_PG_URL pointing at a throwaway PostgreSQL cluster on a free
# loopback port, then stops the cluster and deletes it (also when CMD fails or the script
# is interrupted). Exits with CMD's status. When SLICES_TEST_PG_URL is already set (a CI
# service, a local server), CMD simply runs against it.
#
# Also exported: SLICES_TEST_PG_RESTART, a shell command that restarts the cluster (the
# reconnection test uses it).
set -euo pipefail

log() { printf 'with-postgres.sh: %s\n' "$*" >&2; }

if [ "$#" -eq 0 ]; then
  log "usage: $0 CMD [ARGS...]"
  exit 2
fi

if [ -n "${SLICES_TEST_PG_URL:-}" ]; then
  exec "$@"
fi

# The newest installed server, else whatever is on PATH.
find_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
    printf '%s\n' "$dir"
    return 0
  fi
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return 0
  fi
  return 1
}

if ! bindir=$(find_bindir); then
  log "no PostgreSQL server found; installing Debian's postgresql package"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y postgresql || { $sudo apt-get update && $sudo apt-get install -y postgresql; }
  if ! bindir=$(find_bindir); then
    log "PostgreSQL is still missing after installing it"
    exit 1
  fi
fi

# A free loopback port, chosen by the OS.
free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
  else
    # No python: a random high port; a clash makes pg_ctl fail loudly, not silently.
    echo $((20000 + RANDOM % 40000))
  fi
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/slices-pg.XXXXXX")
datadir="$tmp/data"
sockdir="$tmp/sock"
logfile="$tmp/postgres.log"
mkdir -p "$sockdir"

# initdb refuses to run as root: then the cluster belongs to the postgres user.
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  chown -R postgres: "$tmp"
  if command -v runuser >/dev/null 2>&1; then
    as_pg=(runuser -u postgres --)
  else
    as_pg=(su_postgres)
  fi
fi
su_postgres() {
  local cmd
  printf -v cmd '%q ' "$@"
  su postgres -s /bin/sh -c "$cmd"
}
# Run from the temp dir: the postgres user may not be allowed into the caller's directory.
pg() { (cd "$tmp" && "${as_pg[@]}" "$@"); }

started=""
cleanup() {
  local status=$?
  if [ -n "$started" ]; then
    # immediate: the data is thrown away, no need for a clean shutdown checkpoint.
    pg "$bindir/pg_ctl" -D "$datadir" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
  return "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_log() {
  if [ -f "$logfile" ]; then
    log "server log ($logfile):"
    cat "$logfile" >&2 || true
  fi
}

if ! pg "$bindir/initdb" -D "$datadir" --auth=trust -U postgres -E UTF8 --locale=C >"$tmp/initdb.log" 2>&1; then
  log "initdb failed:"
  cat "$tmp/initdb.log" >&2 || true
  exit 1
fi

port=$(free_port)
# fsync=off: a throwaway test cluster does not need to survive a power cut, and it makes
# the tests much faster on a shared machine.
pg_opts="-p $port -k $sockdir -c listen_addresses=127.0.0.1 -c fsync=off"
started=1
if ! pg "$bindir/pg_ctl" -D "$datadir" -l "$logfile" -w -t 60 -o "$pg_opts" start >/dev/null; then
  log "the PostgreSQL server did not start"
  show_log
  exit 1
fi

version=$("$bindir/postgres" --version 2>/dev/null || echo "PostgreSQL (unknown version)")
log "started $version on 127.0.0.1:$port (data in $datadir)"

export SLICES_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/postgres"
# pg_ctl restart reuses the options of the running server (postmaster.opts).
printf -v restart_cmd '%q ' "${as_pg[@]}" "$bindir/pg_ctl" -D "$datadir" -l "$logfile" -w -m fast restart
export SLICES_TEST_PG_RESTART="cd $(printf '%q' "$tmp") && $restart_cmd"
if [ "${as_pg[0]:-}" = su_postgres ]; then
  printf -v restart_cmd '%q ' "$bindir/pg_ctl" -D "$datadir" -l "$logfile" -w -m fast restart
  export SLICES_TEST_PG_RESTART="cd $(printf '%q' "$tmp") && su postgres -s /bin/sh -c $(printf '%q' "$restart_cmd")"
fi

set +e
"$@"
status=$?
set -e
if [ "$status" -ne 0 ]; then
  log "command failed with status $status; last lines of the server log:"
  tail -n 50 "$logfile" >&2 || true
fi
exit "$status"
