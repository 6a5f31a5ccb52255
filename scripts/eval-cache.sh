#!/usr/bin/env bash
# eval-cache.sh [BUILD_DIR] — semantic-cache quality per embedder across thresholds on
# tests/data/cache-pairs.jsonl (the table in docs/caching.md comes from this output).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
cmake --build "$dir" --target sluice-cache-eval -j2 >/dev/null
"$dir/sluice-cache-eval" tests/data/cache-pairs.jsonl
