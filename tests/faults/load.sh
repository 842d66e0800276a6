#!/usr/bin/env bash
# Load test (issue 6): the demo app (sessions in an SQLite file) under autocannon on loopback,
# with 100 000 sessions pre-created and random session cookies. Passes with zero errors, and with
# the server's RSS flat after warm-up; prints requests/s, latency percentiles (p99) and the
# server's resident memory (VmRSS) after warm-up and at the end.
#
#   LOAD_RUNTIME=node     node: demo/server.mjs on Node (node:http, npm package, N-API);
#                         deno: demo/deno.ts on Deno (Deno.serve, jsr/mod.ts, FFI);
#                         deno-node: demo/server.mjs on Deno (node:http, npm package, N-API)
#   LOAD_SECONDS=60       length of the measured run (after the warm-up)
#   LOAD_WARMUP_SECONDS=40  warm-up before RSS is taken (load.mjs says why it is that long)
#   LOAD_SESSIONS=100000  sessions pre-created in the demo's SQLite file
#   LOAD_CONNECTIONS=10   concurrent HTTP connections
#
# autocannon is installed from tests/faults/load-tools/ (package.json + lock) into .tools/load.
set -euo pipefail
cd "$(dirname "$0")/../.."

tools=.tools/load
if ! cmp -s tests/faults/load-tools/package-lock.json "$tools/package-lock.json" 2>/dev/null \
   || [ ! -f "$tools/node_modules/autocannon/package.json" ]; then
  mkdir -p "$tools"
  cp tests/faults/load-tools/package.json tests/faults/load-tools/package-lock.json "$tools/"
  npm ci --prefix "$tools" --no-audit --no-fund --loglevel=error
fi
if [ ! -f npm/session.linux-x64-gnu.node ] && ! ls npm/*.node >/dev/null 2>&1; then
  echo "load.sh: the native addon is not built; run 'make build' first" >&2
  exit 1
fi
case "${LOAD_RUNTIME:-node}" in
  deno*)
    deno="${DENO:-.tools/deno/node_modules/deno/deno}"
    [ -x "$deno" ] || { echo "load.sh: Deno is not installed at $deno; run 'make tools'" >&2; exit 1; }
    if [ "${LOAD_RUNTIME}" = deno ] && { [ ! -f jsr/session.js ] || [ ! -f target/release/libslices_session_deno.so ]; }; then
      echo "load.sh: the Deno FFI library or jsr/session.js is not built; run 'make build-deno' first" >&2
      exit 1
    fi
    export DENO_DIR="${DENO_DIR:-$PWD/.deno}"
    ;;
esac
# The load generator and the session setup always run on Node; LOAD_RUNTIME picks the server.
exec "${NODE:-node}" tests/faults/load.mjs
