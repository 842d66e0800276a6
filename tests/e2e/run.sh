#!/usr/bin/env bash
# `make test-e2e`: the real-browser test (tests/e2e/browser.test.mjs) over every example app:
# Hono and Express on Node, Hono and the Fresh-style middleware on Deno. Installs what it needs:
# Debian's `chromium` (apt-get, when /usr/bin/chromium is missing), playwright-core (this
# folder's package.json), the examples' npm dependencies, Deno (scripts/ensure-tools.sh).
# Expects the addon and the Deno FFI library to be built (`make build build-deno`;
# `make test-e2e` does it): the Node examples use the npm package, the Deno ones the JSR package.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Debian's chromium"
  if [ "$(id -u)" != 0 ]; then
    echo "/usr/bin/chromium is missing; install it with: sudo apt-get install -y chromium" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
echo "== $(/usr/bin/chromium --version 2>/dev/null)"

scripts/ensure-tools.sh
DENO="$REPO/.tools/deno/node_modules/deno/deno"
if [ ! -x "$DENO" ]; then
  mkdir -p .tools/deno
  npm install --prefix .tools/deno --no-audit --no-fund --no-save --loglevel=error deno@2.9.6
fi
export DENO_DIR="${DENO_DIR:-$REPO/.deno}"

# npm ci where node_modules is missing or older than the lockfile.
install_deps() {
  if [ ! -d "$1/node_modules" ] || [ "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]; then
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
install_deps tests/e2e
install_deps examples/hono-node
install_deps examples/express

if [ ! -f npm/native.cjs ] || [ ! -f npm/session.linux-x64-gnu.node ]; then
  echo "the addon is not built: run 'make build'" >&2
  exit 1
fi
if [ ! -f target/release/libslices_session_deno.so ] || [ ! -f jsr/session.js ]; then
  echo "the Deno FFI library or the JSR package's generated files are missing: run 'make build-deno'" >&2
  exit 1
fi

echo "== deno check: the Deno examples type-check against the package's types"
(cd examples/hono-deno && "$DENO" check --quiet server.ts)
(cd examples/fresh-middleware && "$DENO" check --quiet main.ts)
(cd examples/deno-kv && "$DENO" check --quiet server.ts)

SLICES_E2E_CHROMIUM=/usr/bin/chromium SLICES_E2E_DENO="$DENO" \
  node --test --test-reporter=spec tests/e2e/browser.test.mjs
