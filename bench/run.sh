#!/usr/bin/env bash
# bench/run.sh — the one-command benchmark: Sluice against nginx and against no proxy at all.
#
# Three targets answer the same OpenAI chat request from the same mock provider (sluice-mock):
#   direct  wrk -> mock                       (the ceiling)
#   nginx   wrk -> nginx proxy_pass -> mock   (the reference proxy, upstream keepalive)
#   sluice  wrk -> sluice -> mock             (the gateway: parse, auth, route, proxy, log)
# each non-streaming and streaming (a whole SSE stream is one request), with the same
# connections and the same worker count (sluice workers = nginx worker_processes = mock threads).
# Rounds are interleaved (every round runs every target, in a rotated order) so that noise on a
# shared machine spreads over all targets; the report gives the median of the rounds per target,
# the ratios sluice/nginx and sluice/direct, and server CPU time per request read from /proc.
# Then bench/callgrind.sh counts instructions per proxied request (BENCH_CALLGRIND=0 skips it).
#
# Writes bench/results/<date>-<host>.md (and prints it). Loopback only; about 4 minutes.
#
# Environment (defaults in brackets):
#   BENCH_ROUNDS [3]  BENCH_DURATION [10] seconds per measurement  BENCH_WARMUP [2] seconds
#   BENCH_CONNECTIONS [32]  BENCH_WORKERS [1]  BENCH_STREAM_MOCK ["chunks=20 words=100"]
#   BENCH_MOCK ["words=20"]  BENCH_PIN [1]: wrk on CPU 0, the servers on CPU 1 (needs 2 CPUs)
#   BENCH_BUILD_DIR [build]  BENCH_PORT_BASE [18400]  BENCH_OUT [bench/results/<date>-<host>.md]
#   BENCH_CALLGRIND [1]  BENCH_CALLGRIND_REQUESTS [200]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

rounds=${BENCH_ROUNDS:-3}
duration=${BENCH_DURATION:-10}
warmup=${BENCH_WARMUP:-2}
connections=${BENCH_CONNECTIONS:-32}
workers=${BENCH_WORKERS:-1}
mock_plain=${BENCH_MOCK:-words=20}
mock_stream=${BENCH_STREAM_MOCK:-chunks=20 words=100}
build=${BENCH_BUILD_DIR:-build}
port_base=${BENCH_PORT_BASE:-18400}
mock_port=$((port_base + 1)) nginx_port=$((port_base + 2)) sluice_port=$((port_base + 3))
host=$(hostname -s 2>/dev/null || hostname)
stamp=$(date -u +%Y-%m-%d)
out=${BENCH_OUT:-bench/results/${stamp}-${host}.md}
client_key=sk-bench-client

for tool in wrk nginx curl node taskset; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
if [[ ! -x $build/sluice || ! -x $build/sluice-mock ]]; then
    scripts/build.sh "$build"
fi
[[ -x $build/sluice-mock ]] || { echo "bench: $build/sluice-mock was not built" >&2; exit 1; }

# CPU layout: the load generator on one core, the servers on the other, so that wrk does not
# steal the servers' CPU. With one CPU (or BENCH_PIN=0) nothing is pinned.
pin_load=() pin_server=() layout="not pinned"
if [[ ${BENCH_PIN:-1} == 1 && $(nproc) -ge 2 ]]; then
    pin_load=(taskset -c 0) pin_server=(taskset -c 1)
    layout="wrk on CPU 0; mock, nginx and sluice on CPU 1"
fi

tmp=$(mktemp -d /tmp/sluice-bench.XXXXXX)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]+"${pids[@]}"}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]+"${pids[@]}"}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() { # wait_http URL WHAT: until URL answers 2xx, for up to 10 s
    local i
    for ((i = 0; i < 100; i++)); do
        curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "bench: $2 did not come up on $1" >&2
    return 1
}

# --- the mock provider ------------------------------------------------------------------------
mock_args=(--listen "127.0.0.1:$mock_port" --threads "$workers" --quiet)
# Recording every request for /mock/requests costs the mock time the benchmark should not pay.
if timeout 2 "$build/sluice-mock" --help 2>&1 </dev/null | grep -q -- '--no-record'; then mock_args+=(--no-record); fi
"${pin_server[@]}" "$build/sluice-mock" "${mock_args[@]}" >"$tmp/mock.log" 2>&1 &
mock_pid=$! pids+=("$mock_pid")
for ((i = 0; i < 100; i++)); do grep -q 'sluice-mock listening on' "$tmp/mock.log" && break; sleep 0.1; done
grep -q 'sluice-mock listening on' "$tmp/mock.log" || { echo "bench: the mock did not start:" >&2; cat "$tmp/mock.log" >&2; exit 1; }

# --- nginx ------------------------------------------------------------------------------------
mkdir -p "$tmp/nginx"
sed -e "s|@WORKERS@|$workers|" -e "s|@PREFIX@|$tmp/nginx|g" -e "s|@UPSTREAM@|127.0.0.1:$mock_port|" \
    -e "s|@LISTEN@|127.0.0.1:$nginx_port|" bench/nginx.conf.template >"$tmp/nginx/nginx.conf"
"${pin_server[@]}" nginx -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" &
nginx_pid=$! pids+=("$nginx_pid")

# --- sluice -----------------------------------------------------------------------------------
# One worker, one virtual key (so auth runs as in production), the access log formatted and
# written for every request but to /dev/null, so that no terminal or disk is the bottleneck.
key_sha=$(printf %s "$client_key" | sha256sum | cut -d' ' -f1)
cat >"$tmp/sluice.yaml" <<EOF
server:
  listen: "127.0.0.1:$sluice_port"
  workers: $workers
  max_body_bytes: 8388608
  max_json_depth: 64
  drain_timeout_ms: 2000
providers:
  mock:
    type: openai
    base_url: "http://127.0.0.1:$mock_port/v1"
    api_key: "sk-mock-bench"
    max_connections: 1024
    timeouts: { connect_ms: 2000, first_byte_ms: 10000, idle_ms: 10000, total_ms: 30000 }
models:
  fast:
    targets: [ { provider: mock, model: gpt-4o-mini } ]
pricing:
  gpt-4o-mini: { input: 0.15, output: 0.60 }
keys:
  - { name: bench, key_sha256: "$key_sha", models: [fast] }
logging:
  access_log: /dev/null
  level: warn
EOF
"${pin_server[@]}" "$build/sluice" -c "$tmp/sluice.yaml" >"$tmp/sluice.out" 2>"$tmp/sluice.err" &
sluice_pid=$! pids+=("$sluice_pid")

wait_http "http://127.0.0.1:$nginx_port/v1/models" nginx
wait_http "http://127.0.0.1:$sluice_port/readyz" sluice

# --- targets ----------------------------------------------------------------------------------
targets=(direct nginx sluice)
declare -A url model
url[direct]="http://127.0.0.1:$mock_port/v1/chat/completions" model[direct]=gpt-4o-mini
url[nginx]="http://127.0.0.1:$nginx_port/v1/chat/completions" model[nginx]=gpt-4o-mini
url[sluice]="http://127.0.0.1:$sluice_port/v1/chat/completions" model[sluice]=fast

# Every target must answer correctly before it is timed: a fast wrong answer is no result.
for target in "${targets[@]}"; do
    body=$(printf '{"model":"%s","messages":[{"role":"user","content":"check @mock %s"}]}' "${model[$target]}" "$mock_plain")
    reply=$(curl -sS --max-time 5 -H 'content-type: application/json' -H "authorization: Bearer $client_key" -d "$body" "${url[$target]}")
    grep -q '"chat.completion"' <<<"$reply" || { echo "bench: $target gave a wrong reply: $reply" >&2; exit 1; }
    body=$(printf '{"model":"%s","stream":true,"messages":[{"role":"user","content":"check @mock %s"}]}' "${model[$target]}" "$mock_stream")
    reply=$(curl -sS -N --max-time 5 -H 'content-type: application/json' -H "authorization: Bearer $client_key" -d "$body" "${url[$target]}")
    grep -q 'data: \[DONE\]' <<<"$reply" || { echo "bench: $target gave a wrong stream: $reply" >&2; exit 1; }
done

# CPU time (user + system, clock ticks) of a process and its children (nginx's workers).
cpu_ticks() {
    local total=0 pid stat fields
    for pid in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
        stat=$(<"/proc/$pid/stat") || continue
        read -ra fields <<<"${stat##*) }"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}
declare -A server_pid=([direct]=$mock_pid [nginx]=$nginx_pid [sluice]=$sluice_pid)

results=$tmp/results.jsonl
: >"$results"
measure() { # measure TARGET MODE ROUND SECONDS: one wrk run; round 0 is a warm-up and not kept
    local target=$1 mode=$2 round=$3 seconds=$4 stream=0 directive=$mock_plain before after mock_before mock_after line
    [[ $mode == stream ]] && stream=1 directive=$mock_stream
    before=$(cpu_ticks "${server_pid[$target]}") mock_before=$(cpu_ticks "$mock_pid")
    line=$(BENCH_MODEL=${model[$target]} BENCH_STREAM=$stream BENCH_MOCK=$directive BENCH_KEY=$client_key \
        BENCH_TARGET=$target BENCH_MODE=$mode BENCH_ROUND=$round \
        "${pin_load[@]}" wrk -t1 -c"$connections" -d"${seconds}s" --timeout 5s -s bench/wrk/chat.lua "${url[$target]}" | tail -n1)
    after=$(cpu_ticks "${server_pid[$target]}") mock_after=$(cpu_ticks "$mock_pid")
    [[ $line == '{'* ]] || { echo "bench: wrk gave no result for $target $mode" >&2; exit 1; }
    if ((round > 0)); then
        echo "${line%\}},\"server_cpu_ticks\":$((after - before)),\"mock_cpu_ticks\":$((mock_after - mock_before))}" >>"$results"
    fi
    printf 'bench: %-6s %-9s round %s: %s\n' "$target" "$mode" "$round" \
        "$(node -e 'const r=JSON.parse(process.argv[1]);console.log(`${r.rps.toFixed(0)} req/s p50 ${(r.p50_us/1000).toFixed(2)} ms p99 ${(r.p99_us/1000).toFixed(2)} ms errors ${r.errors_status+r.errors_connect+r.errors_read+r.errors_timeout}`)' "$line")" >&2
}

started=$(date +%s)
for mode in nonstream stream; do
    for target in "${targets[@]}"; do measure "$target" "$mode" 0 "$warmup"; done
done
for ((round = 1; round <= rounds; round++)); do
    for mode in nonstream stream; do
        for ((k = 0; k < ${#targets[@]}; k++)); do
            measure "${targets[$(((k + round - 1) % ${#targets[@]}))]}" "$mode" "$round" "$duration"
        done
    done
done
elapsed=$(($(date +%s) - started))

# Sluice must have stayed healthy throughout.
curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$sluice_port/healthz" || { echo "bench: sluice is not healthy after the run" >&2; exit 1; }

# --- instructions per request -----------------------------------------------------------------
callgrind_json=""
if [[ ${BENCH_CALLGRIND:-1} == 1 ]]; then
    callgrind_json=$tmp/callgrind.json
    BENCH_BUILD_DIR=$build bench/callgrind.sh --requests "${BENCH_CALLGRIND_REQUESTS:-200}" --json "$callgrind_json" \
        --port "$((port_base + 10))" >&2
fi

# --- report -----------------------------------------------------------------------------------
cat >"$tmp/meta.json" <<EOF
{
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "host": "$host",
  "cpu": $(node -e 'const c=require("os").cpus();console.log(JSON.stringify(`${c.length} × ${c[0]?.model ?? "?"}`))'),
  "kernel": "$(uname -sr)",
  "sluice": "$("$build/sluice" --version 2>&1 | head -n1)",
  "commit": "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src include 2>/dev/null || echo '+dirty')",
  "nginx": "$(nginx -v 2>&1 | sed 's/^nginx version: //')",
  "wrk": "$(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)",
  "rounds": $rounds, "duration_s": $duration, "warmup_s": $warmup, "connections": $connections,
  "workers": $workers, "layout": "$layout", "mock_plain": "$mock_plain", "mock_stream": "$mock_stream",
  "clk_tck": $(getconf CLK_TCK), "elapsed_s": $elapsed,
  "callgrind": $([[ -n $callgrind_json && -s $callgrind_json ]] && cat "$callgrind_json" || echo null)
}
EOF
mkdir -p "$(dirname "$out")"
node bench/report.mjs "$results" "$tmp/meta.json" >"$out"
cat "$out"
echo "bench: written to $out" >&2
