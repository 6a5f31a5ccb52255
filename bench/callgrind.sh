#!/usr/bin/env bash
# bench/callgrind.sh — instructions per proxied request, a repeatable number for hot-path work.
#
# Runs sluice (one worker) under valgrind --tool=callgrind three times against sluice-mock
# (which runs natively): an idle baseline (start, warm-up, wait, stop), N non-streaming requests
# and N streaming requests, each after the same warm-up. Instructions per request =
# (Ir of the run - Ir of the baseline) / N, so start-up, config loading, warm-up and shutdown
# cancel out. Requests go one after another on one kept-alive connection (curl -K), and every
# reply must be 200. Also prints the functions that cost the most per request (per-function Ir
# of the non-streaming run minus the baseline's, divided by N).
#
# usage: bench/callgrind.sh [--requests N (200)] [--warmup N (20)] [--port P (18410)]
#                           [--top K (25)] [--json FILE] [--keep DIR]
# --keep DIR leaves the callgrind.out files in DIR for callgrind_annotate (they are written with
# --dump-instr=yes, so `callgrind_annotate --auto=yes` can annotate by source line).
set -euo pipefail
cd "$(dirname "$0")/.."

requests=200 warmup=20 port=18410 top=25 json="" keep=""
while (($#)); do
    case $1 in
        --requests) requests=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --port) port=$2; shift 2 ;;
        --top) top=$2; shift 2 ;;
        --json) json=$2; shift 2 ;;
        --keep) keep=$2; shift 2 ;;
        *) echo "usage: $0 [--requests N] [--warmup N] [--port P] [--top K] [--json FILE] [--keep DIR]" >&2; exit 2 ;;
    esac
done
build=${BENCH_BUILD_DIR:-build}
mock_port=$port sluice_port=$((port + 1))
client_key=sk-bench-client

for tool in valgrind callgrind_annotate curl; do
    command -v "$tool" >/dev/null || { echo "callgrind: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
if [[ ! -x $build/sluice || ! -x $build/sluice-mock ]]; then
    scripts/build.sh "$build"
fi

tmp=$(mktemp -d /tmp/sluice-callgrind.XXXXXX)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]+"${pids[@]}"}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]+"${pids[@]}"}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mock_args=(--listen "127.0.0.1:$mock_port" --threads 1 --quiet)
if timeout 2 "$build/sluice-mock" --help 2>&1 </dev/null | grep -q -- '--no-record'; then mock_args+=(--no-record); fi
"$build/sluice-mock" "${mock_args[@]}" >"$tmp/mock.log" 2>&1 &
pids+=($!)
for ((i = 0; i < 100; i++)); do grep -q 'sluice-mock listening on' "$tmp/mock.log" && break; sleep 0.1; done
grep -q 'sluice-mock listening on' "$tmp/mock.log" || { echo "callgrind: the mock did not start" >&2; cat "$tmp/mock.log" >&2; exit 1; }

key_sha=$(printf %s "$client_key" | sha256sum | cut -d' ' -f1)
cat >"$tmp/sluice.yaml" <<EOF
server: { listen: "127.0.0.1:$sluice_port", workers: 1, drain_timeout_ms: 1000 }
providers:
  mock:
    type: openai
    base_url: "http://127.0.0.1:$mock_port/v1"
    api_key: "sk-mock-bench"
    timeouts: { connect_ms: 5000, first_byte_ms: 30000, idle_ms: 30000, total_ms: 60000 }
models:
  fast: { targets: [ { provider: mock, model: gpt-4o-mini } ] }
pricing:
  gpt-4o-mini: { input: 0.15, output: 0.60 }
keys:
  - { name: bench, key_sha256: "$key_sha", models: [fast] }
logging: { access_log: /dev/null, level: warn }
EOF

# A curl config that sends COUNT requests with BODY on one connection, printing each status.
curl_config() { # curl_config COUNT BODY_FILE > FILE
    local i
    for ((i = 0; i < $1; i++)); do
        printf 'url = "http://127.0.0.1:%s/v1/chat/completions"\n' "$sluice_port"
        printf 'data-binary = "@%s"\nheader = "content-type: application/json"\n' "$2"
        printf 'header = "authorization: Bearer %s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$client_key"
        if ((i + 1 < $1)); then printf 'next\n'; fi
    done
}
printf '{"model":"fast","messages":[{"role":"system","content":"You are a benchmark."},{"role":"user","content":"Say something short. @mock words=20"}]}' >"$tmp/plain.json"
printf '{"model":"fast","stream":true,"messages":[{"role":"system","content":"You are a benchmark."},{"role":"user","content":"Say something short. @mock chunks=20 words=100"}]}' >"$tmp/stream.json"
curl_config "$warmup" "$tmp/plain.json" >"$tmp/warmup.curl"
curl_config "$requests" "$tmp/plain.json" >"$tmp/nonstream.curl"
curl_config "$requests" "$tmp/stream.json" >"$tmp/stream.curl"

send() { # send CURL_CONFIG EXPECTED_COUNT: all replies must be 200
    local codes
    codes=$(curl -sS --max-time 300 -K "$1")
    if [[ $(grep -c '^200$' <<<"$codes") -ne $2 ]]; then
        echo "callgrind: expected $2 replies with status 200, got: $(sort <<<"$codes" | uniq -c | tr '\n' ' ')" >&2
        exit 1
    fi
}

phase_ns=0
profile() { # profile NAME [CURL_CONFIG]: one sluice run under callgrind; its total Ir into $tmp/NAME.ir
    local name=$1 pid i start
    valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$tmp/callgrind.out.$name" \
        "$build/sluice" -c "$tmp/sluice.yaml" >/dev/null 2>"$tmp/$name.err" &
    pid=$! pids+=("$pid")
    for ((i = 0; i < 600; i++)); do
        curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$sluice_port/readyz" 2>/dev/null && break
        sleep 0.1
    done
    send "$tmp/warmup.curl" "$warmup"
    start=$(date +%s%N)
    if [[ -n ${2:-} ]]; then
        send "$2" "$requests"
        phase_ns=$(($(date +%s%N) - start))
    else
        # Idle as long as the non-streaming run worked, so that timers cancel out too.
        sleep "$(printf '%d.%09d' $((phase_ns / 1000000000)) $((phase_ns % 1000000000)))"
    fi
    kill -TERM "$pid"
    wait "$pid" || { echo "callgrind: sluice exited with an error in the $name run:" >&2; tail -n 20 "$tmp/$name.err" >&2; exit 1; }
    awk '/^(summary|totals):/ { print $2; exit }' "$tmp/callgrind.out.$name" >"$tmp/$name.ir"
}

profile nonstream "$tmp/nonstream.curl"
profile stream "$tmp/stream.curl"
profile baseline
nonstream_ir=$(<"$tmp/nonstream.ir") stream_ir=$(<"$tmp/stream.ir") baseline_ir=$(<"$tmp/baseline.ir")
nonstream_per=$(((nonstream_ir - baseline_ir) / requests))
stream_per=$(((stream_ir - baseline_ir) / requests))

# Per-function Ir (exclusive, and inclusive for sluice's own functions): the non-streaming run
# minus the baseline, per request.
annotate() { # annotate FILE yes|no: "Ir<TAB>file:function" lines of callgrind_annotate's table
    callgrind_annotate --threshold=100 --auto=no --inclusive="$2" "$1" 2>/dev/null | awk '
        /file:function/ { table = 1; next }
        table && /^-+$/ { next }
        table && /^$/ { if (seen) exit; next }
        table { seen = 1; ir = $1; gsub(/,/, "", ir); sub(/^ *[0-9,]+ +(\([ 0-9.]+%\) +)?/, ""); print ir "\t" $0 }'
}
top_delta() { # top_delta yes|no FILTER > FILE
    annotate "$tmp/callgrind.out.baseline" "$1" >"$tmp/baseline.fn"
    annotate "$tmp/callgrind.out.nonstream" "$1" >"$tmp/nonstream.fn"
    awk -F'\t' -v filter="$2" 'NR == FNR { base[$2] = $1; next }
        $2 ~ filter { d = $1 - base[$2]; if (d > 0) print d "\t" $2 }' "$tmp/baseline.fn" "$tmp/nonstream.fn" >"$tmp/delta.fn"
    sort -t$'\t' -k1,1nr "$tmp/delta.fn" >"$tmp/sorted.fn"
    head -n "$top" "$tmp/sorted.fn"
}
top_delta no '' >"$tmp/top.fn"
# Inclusive: sluice's functions only, each once (callgrind names some with the full source path).
top=$((top * 3)) top_delta yes '(^|/)src/' | awk -F'\t' -v top="$top" '{
    fn = $2; sub(/ \[.*\]$/, "", fn); sub(/^.*\/src\//, "src/", fn)
    if (!(fn in seen) && count < top) { seen[fn] = 1; count++; print $1 "\t" fn } }' >"$tmp/top_inclusive.fn"
per_request_total=$((nonstream_ir - baseline_ir))

echo "callgrind: sluice, 1 worker, $requests requests after $warmup warm-up, minus an idle run"
printf '  %-14s %14s Ir total  %14s Ir per request\n' non-streaming "$nonstream_ir" "$nonstream_per"
printf '  %-14s %14s Ir total  %14s Ir per request\n' streaming "$stream_ir" "$stream_per"
printf '  %-14s %14s Ir total\n' "idle baseline" "$baseline_ir"
print_top() {
    awk -F'\t' -v n="$requests" -v total="$per_request_total" \
        '{ printf "  %10d  %5.1f %%  %s\n", $1 / n, 100 * $1 / total, $2 }' "$1"
}
echo "top functions per non-streaming request, exclusive Ir per request (share of the request):"
print_top "$tmp/top.fn"
echo "sluice functions per non-streaming request, inclusive Ir per request (share of the request):"
print_top "$tmp/top_inclusive.fn"

json_top() {
    awk -F'\t' -v n="$requests" -v total="$per_request_total" '{
        fn = $2; gsub(/\\/, "\\\\", fn); gsub(/"/, "\\\"", fn)
        printf "%s{\"ir\":%d,\"share\":%.2f,\"fn\":\"%s\"}", (NR > 1 ? "," : ""), $1 / n, 100 * $1 / total, fn }' "$1"
}
if [[ -n $json ]]; then
    {
        printf '{"requests":%d,"warmup":%d,"baseline_ir":%d,' "$requests" "$warmup" "$baseline_ir"
        printf '"nonstream":{"total_ir":%d,"ir_per_request":%d},' "$nonstream_ir" "$nonstream_per"
        printf '"stream":{"total_ir":%d,"ir_per_request":%d},"top":[' "$stream_ir" "$stream_per"
        json_top "$tmp/top.fn"
        printf '],"top_inclusive":['
        json_top "$tmp/top_inclusive.fn"
        printf ']}\n'
    } >"$json"
fi
if [[ -n $keep ]]; then
    mkdir -p "$keep"
    cp "$tmp"/callgrind.out.* "$keep"/
    echo "callgrind: profiles kept in $keep (callgrind_annotate --auto=yes $keep/callgrind.out.nonstream)"
fi
