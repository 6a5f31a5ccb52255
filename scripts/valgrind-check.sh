#!/usr/bin/env bash
# valgrind-check.sh [TEST FILES...] — runs end-to-end suites with the gateway under valgrind
# memcheck (full leak check; any definite/indirect leak or memory error makes the gateway exit 99,
# which the harness reports as a failed shutdown). Slow, so not part of scripts/test.sh, which
# covers the same ground with ASan/LSan; default files: basics, streaming, disconnect.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x build/sluice ]] || scripts/build.sh build
work=$(mktemp -d /tmp/sluice-valgrind.XXXXXX)
cat >"$work/sluice" <<WRAP
#!/bin/sh
exec valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \\
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --log-file=$work/vg-%p.log \\
    $PWD/build/sluice "\$@"
WRAP
chmod +x "$work/sluice"
files=("$@")
((${#files[@]})) || files=(integration/basics.test.mjs integration/streaming.test.mjs integration/disconnect.test.mjs)
status=0
SLUICE_SANITIZED=1 SLUICE_BIN="$work/sluice" SLUICE_MOCK_BIN="$PWD/build/sluice-mock" tests/run-node-tests.sh "${files[@]}" || status=$?
if find "$work" -name 'vg-*.log' -size +0 | grep -q .; then
    cat "$work"/vg-*.log
    status=1
fi
rm -rf "$work"
exit $status
