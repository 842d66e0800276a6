#!/usr/bin/env bash
# `make package`: the npm tarballs, the napi-rs way, into dist/ (git-ignored):
#   dist/slices-rs-session-<version>.tgz                  the root package (JS, types, loader)
#   dist/slices-rs-session-linux-x64-gnu-<version>.tgz    the addon built here
# The root lists every platform package of npm/package.json `napi.targets` as an exact-version
# optionalDependency; npm installs the one whose os/cpu/libc match the machine. Only the host's
# platform package (Linux x86-64, glibc) can be built on this machine; the release workflow
# (.github/workflows/release.yml) builds the others.
#
# Set SKIP_BUILD=1 to pack the addon already in npm/ (by a previous `make build`, release).
set -euo pipefail
cd "$(dirname "$0")/.."

TRIPLE_DIR=linux-x64-gnu
ADDON=session.$TRIPLE_DIR.node

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ] || ldd --version 2>&1 | grep -qi musl; then
  echo "package.sh builds the $TRIPLE_DIR package and must run on Linux x86-64 with glibc" >&2
  exit 1
fi

if [ "${SKIP_BUILD:-}" != "1" ]; then
  make build PROFILE=release
fi
[ -f "npm/$ADDON" ] || { echo "npm/$ADDON is missing: run 'make build'" >&2; exit 1; }

# Every package carries the root's version, and the root pins each platform package exactly.
node - <<'JS'
const fs = require("node:fs");
const root = JSON.parse(fs.readFileSync("npm/package.json", "utf8"));
const problems = [];
const suffixes = {
  "x86_64-unknown-linux-gnu": "linux-x64-gnu",
  "aarch64-unknown-linux-gnu": "linux-arm64-gnu",
  "x86_64-unknown-linux-musl": "linux-x64-musl",
  "x86_64-apple-darwin": "darwin-x64",
  "aarch64-apple-darwin": "darwin-arm64",
  "x86_64-pc-windows-msvc": "win32-x64-msvc",
};
const optional = root.optionalDependencies ?? {};
for (const target of root.napi.targets) {
  const suffix = suffixes[target];
  if (!suffix) { problems.push(`no package directory known for target ${target}`); continue; }
  const name = `${root.name}-${suffix}`;
  const file = `npm/${suffix}/package.json`;
  if (!fs.existsSync(file)) { problems.push(`${file} is missing (napi create-npm-dirs)`); continue; }
  const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
  if (pkg.name !== name) problems.push(`${file}: name ${pkg.name}, expected ${name}`);
  if (pkg.version !== root.version) problems.push(`${file}: version ${pkg.version}, root is ${root.version}`);
  if (optional[name] !== root.version) problems.push(`npm/package.json optionalDependencies["${name}"] is ${optional[name]}, expected exactly ${root.version}`);
}
for (const name of Object.keys(optional)) {
  if (!Object.values(suffixes).some((s) => `${root.name}-${s}` === name)) problems.push(`optionalDependency ${name} is no napi target`);
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
JS

# The addon goes into its platform package, stripped of debug symbols (the dynamic symbol table
# that Node loads from stays).
cp "npm/$ADDON" "npm/$TRIPLE_DIR/$ADDON"
strip --strip-unneeded "npm/$TRIPLE_DIR/$ADDON"

rm -rf dist
mkdir -p dist
DIST="$(pwd)/dist"
(cd "npm/$TRIPLE_DIR" && npm pack --silent --pack-destination "$DIST" >/dev/null)
(cd npm && npm pack --silent --pack-destination "$DIST" >/dev/null)

# What is in each tarball, exactly.
VERSION=$(node -p 'require("./npm/package.json").version')
ROOT_TGZ="dist/slices-rs-session-$VERSION.tgz"
PLATFORM_TGZ="dist/slices-rs-session-$TRIPLE_DIR-$VERSION.tgz"
expect_files() {
  local tgz=$1; shift
  local got want
  got=$(tar -tzf "$tgz" | sort)
  want=$(printf '%s\n' "$@" | sort)
  if [ "$got" != "$want" ]; then
    echo "unexpected contents of $tgz:" >&2
    diff <(echo "$want") <(echo "$got") >&2 || true
    exit 1
  fi
}
expect_files "$ROOT_TGZ" package/package.json package/index.js package/index.d.ts package/session.js \
  package/native.cjs package/native.d.ts
expect_files "$PLATFORM_TGZ" package/package.json package/README.md "package/$ADDON"

for tgz in "$PLATFORM_TGZ" "$ROOT_TGZ"; do
  printf '%s  %s bytes\n' "$tgz" "$(stat -c %s "$tgz")"
done
