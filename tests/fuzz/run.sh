#!/usr/bin/env bash
# run.sh — builds the libFuzzer targets and runs each for a while.
#
#   tests/fuzz/run.sh [SECONDS]      (default 20 per target)
#
# Each fuzz_<target>.c is compiled with clang against every src/**/*.c except
# main.c, with -fsanitize=fuzzer,address,undefined, and run for SECONDS with
# the seed corpus in corpus/<target>/ and the dictionary dict/<target>.dict.
# New inputs the fuzzer finds go to $FUZZ_WORK/corpus/<target> and crashing
# inputs to $FUZZ_WORK/artifacts (FUZZ_WORK defaults to /tmp/sluice-fuzz), so
# the checked-in seeds never change. Exits non-zero when a target crashed.
# Reproduce a crash with: $FUZZ_WORK/fuzz_<target> <artifact file>.
set -euo pipefail

seconds=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${FUZZ_WORK:-/tmp/sluice-fuzz}
cc=${CC_FUZZ:-clang}
mkdir -p "$work/obj" "$work/artifacts"

deps="libevent libevent_pthreads libcurl openssl jansson yaml-0.1 hiredis"
cflags="-g -O1 -std=c17 -D_GNU_SOURCE -DSLUICE_VERSION=\"fuzz\" -I$root/include $(pkg-config --cflags $deps)"
sanitize="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
libs="$(pkg-config --libs $deps) -lpthread -lm"

# The library code, instrumented for coverage but without libFuzzer's main.
objects=()
while IFS= read -r source; do
    relative=${source#"$root/src/"}
    object="$work/obj/${relative//\//_}.o"
    "$cc" $cflags $sanitize -fsanitize=fuzzer-no-link -c "$source" -o "$object"
    objects+=("$object")
done < <(find "$root/src" -name '*.c' ! -path "$root/src/core/main.c" | sort)

status=0
for target_source in "$here"/fuzz_*.c; do
    target=$(basename "$target_source" .c)
    name=${target#fuzz_}
    binary="$work/$target"
    "$cc" $cflags $sanitize -fsanitize=fuzzer -Wall -Wextra "$target_source" "${objects[@]}" $libs -o "$binary"
    mkdir -p "$work/corpus/$name"
    dict=()
    [[ -f "$here/dict/$name.dict" ]] && dict=(-dict="$here/dict/$name.dict")
    echo "== fuzz $name for ${seconds}s"
    log="$work/$name.log"
    if "$binary" "$work/corpus/$name" "$here/corpus/$name" "${dict[@]}" -max_total_time="$seconds" \
        -artifact_prefix="$work/artifacts/$name-" -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$log" | sed 's/^/   /' || true
        echo "   ok: no crash ($(find "$work/corpus/$name" -type f | wc -l) inputs in the work corpus)"
    else
        status=1
        echo "   CRASH: see $log"
        grep -E 'ERROR: |SUMMARY:|^    #[0-9]+ .* in |Test unit written to' "$log" | head -20 | sed 's/^/   /'
    fi
done
exit $status
