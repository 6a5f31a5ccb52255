#!/usr/bin/env bash
# test.sh — builds Sluice and runs every test: unit (Criterion), integration
# (the real binary against the mock over loopback), SDK compatibility (the
# official openai npm package), then all of it again under AddressSanitizer +
# UndefinedBehaviorSanitizer, and the threaded suites under ThreadSanitizer. Exits non-zero on
# the first failing suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

run_suites() { # BUILD_DIR LABEL
    local dir=$1 label=$2
    echo "== [$label] unit tests"
    (cd "$dir" && ctest --output-on-failure -j2)
    echo "== [$label] integration and SDK compatibility tests"
    SLUICE_BIN="$PWD/$dir/sluice" SLUICE_MOCK_BIN="$PWD/$dir/sluice-mock" tests/run-node-tests.sh
}

echo "== build (RelWithDebInfo)"
scripts/build.sh build
run_suites build release

echo "== build (AddressSanitizer + UndefinedBehaviorSanitizer)"
scripts/build.sh build-asan -DSLUICE_SANITIZE=ON
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions="$PWD/tests/lsan.supp"
run_suites build-asan sanitizers

# ThreadSanitizer: the suites where worker threads share state (config snapshots and reload,
# rate-limit windows, the cache store, circuit breakers, streams and disconnects).
echo "== build (ThreadSanitizer)"
scripts/build.sh build-tsan -DSLUICE_TSAN=ON -DSLUICE_TESTS=OFF
echo "== [tsan] threaded integration tests"
unset ASAN_OPTIONS LSAN_OPTIONS
TSAN_OPTIONS="exitcode=66 suppressions=$PWD/tests/tsan.supp" SLUICE_SANITIZED=1 SLUICE_BIN="$PWD/build-tsan/sluice" SLUICE_MOCK_BIN="$PWD/build/sluice-mock" \
    tests/run-node-tests.sh integration/lifecycle.test.mjs integration/limits.test.mjs integration/cache.test.mjs \
    integration/reliability-breaker.test.mjs integration/streaming.test.mjs integration/disconnect.test.mjs \
    integration/budgets.test.mjs integration/limits-redis.test.mjs

echo "== all tests passed"
