#!/usr/bin/env bash
# eval-cache.sh [BUILD_DIR] — semantic-cache quality per embedder across thresholds on
# tests/data/cache-pairs.jsonl (the tuning set) and tests/data/cache-pairs-holdout.jsonl (written
# after tuning, never tuned on); the tables in docs/caching.md come from this output.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
cmake --build "$dir" --target sluice-cache-eval -j2 >/dev/null
default=$(sed -n 's/^#define CACHE_DEFAULT_THRESHOLD \([0-9.]*\).*/\1/p' src/config/config_cache.c)
for set in cache-pairs cache-pairs-holdout; do
    echo "## tests/data/$set.jsonl"
    echo
    "$dir/sluice-cache-eval" "tests/data/$set.jsonl" "$default"
done
