#!/usr/bin/env bash
# The fault tests of issue 6; `make test-faults` runs this under scripts/with-postgres.sh, which
# exports SLICES_TEST_PG_URL and SLICES_TEST_PG_RESTART (the tests restart, stop and pause that
# throwaway cluster, so never point them at a server that matters).
#
#   1. tests/faults/*.test.mjs on the machine's `node`, one file at a time (node:test);
#   2. tests/faults/load.sh, the load test of the demo (LOAD_SECONDS, default 60).
#
# Lines starting with "# FIGURE" are the numbers that docs/reliability.md reports.
# Takes about 3 minutes; fails (never skips) without PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${SLICES_TEST_PG_URL:-}" ] || [ -z "${SLICES_TEST_PG_RESTART:-}" ]; then
  echo "run.sh: SLICES_TEST_PG_URL and SLICES_TEST_PG_RESTART must be set; run 'make test-faults'" >&2
  exit 1
fi
for tool in psql python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: '$tool' is needed" >&2; exit 1; }
done

started=$(date +%s)
echo "== fault tests on Node $(node -v)"
node --test --test-concurrency=1 --test-reporter=spec tests/faults/*.test.mjs
echo "== load test (LOAD_SECONDS=${LOAD_SECONDS:-60})"
tests/faults/load.sh
echo "== fault tests and load test passed in $(( $(date +%s) - started )) s"
