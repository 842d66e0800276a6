#!/usr/bin/env bash
# Usage: scripts/fuzz.sh TARGET MINUTES
#   TARGET: cookie_parse | request_path (see fuzz/fuzz_targets/ and fuzz/common.rs)
#
# Runs the libFuzzer target for MINUTES minutes (address sanitizer; debug assertions, so an
# integer overflow is a crash too), seeded with the committed corpus fuzz/corpus/TARGET/, which
# it only reads: new inputs go to a scratch directory. A crash stops the run with a non-zero
# status and leaves the input in fuzz/artifacts/TARGET/ (replay it: the fuzzer binary takes a
# file, or copy it into the corpus and run `cargo test --test fuzz_corpus`).
#
# The first build takes a while (the core and its dependencies, instrumented): ~20 minutes on
# a busy 2-core machine; later runs reuse fuzz/target/.
#
#   FUZZ_MERGE=1   afterwards, add to the committed corpus a small set of the new inputs that
#                  covers every new edge (libFuzzer -set_cover_merge=1 -use_counters=0: edges,
#                  not hit counts, to keep the corpus small); its existing files are kept
#   FUZZ_JOBS=N    run N fuzzer processes in parallel (default 1)
#
# Needs cargo-fuzz (installed into .tools/cargo if missing) and libFuzzer's nightly-only
# compiler flags, which this stable toolchain accepts with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$#" -ne 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 TARGET MINUTES   (TARGET: cookie_parse | request_path)" >&2
  exit 2
fi
target=$1
minutes=$2
if [ ! -f "fuzz/fuzz_targets/$target.rs" ]; then
  echo "unknown fuzz target '$target'; known: $(cd fuzz/fuzz_targets && ls | sed 's/\.rs$//' | tr '\n' ' ')" >&2
  exit 2
fi

root=$PWD
export PATH="$root/.tools/cargo/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz into .tools/cargo" >&2
  cargo install cargo-fuzz --locked --root "$root/.tools/cargo"
fi
export RUSTC_BOOTSTRAP=1

scratch=$(mktemp -d "${TMPDIR:-/tmp}/slices-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/new" "fuzz/corpus/$target"

cd fuzz
jobs=${FUZZ_JOBS:-1}
echo "fuzz.sh: $target for $minutes min ($jobs job(s)), seeded with $(ls "corpus/$target" | wc -l) committed inputs" >&2
cargo fuzz run --release --debug-assertions "$target" "$scratch/new" "corpus/$target" -- \
  -max_total_time=$((minutes * 60)) -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
  $( [ "$jobs" -gt 1 ] && echo "-jobs=$jobs -workers=$jobs" )

if [ "${FUZZ_MERGE:-0}" = 1 ]; then
  before=$(ls "corpus/$target" | wc -l)
  # Into the committed corpus (its files are all kept): only inputs that add coverage.
  cargo fuzz run --release --debug-assertions "$target" "corpus/$target" "$scratch/new" -- -set_cover_merge=1 -use_counters=0
  echo "fuzz.sh: corpus/$target: $before -> $(ls "corpus/$target" | wc -l) files" >&2
fi
