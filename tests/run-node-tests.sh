#!/usr/bin/env bash
# run-node-tests.sh — runs the end-to-end suites with Node's test runner:
# tests/integration (the real binary against the mock provider over loopback)
# and tests/compat (the official SDKs from npm against the real binary).
# Binaries come from $SLUICE_BIN and $SLUICE_MOCK_BIN (default build/).
# Extra arguments are passed to `node --test` (e.g. a single file).
set -euo pipefail
cd "$(dirname "$0")"
[[ -d node_modules ]] || { echo "run-node-tests: run scripts/setup.sh first (tests/node_modules missing)" >&2; exit 1; }
if (($#)); then
    files=("$@")
else
    shopt -s nullglob
    files=(integration/*.test.mjs compat/*.test.mjs)
fi
# Two files at a time: each starts its own gateway and mock on free ports.
exec node --test --test-concurrency="${SLUICE_TEST_CONCURRENCY:-2}" --test-reporter=spec "${files[@]}"
