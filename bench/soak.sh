#!/usr/bin/env bash
# bench/soak.sh — memory under sustained load: does the gateway's RSS stay flat?
#
# Starts the mock and sluice (2 workers, a virtual key, the exact + semantic cache on with a
# bounded entry count, the access log to /dev/null), then drives it with wrk in phases that
# alternate non-streaming and streaming requests, plus a burst of clients that hang up
# mid-stream after every phase. RSS and open descriptors are read from /proc after each phase.
# Growth is judged from the end of the second phase (allocator arenas, connection pools and
# caches have reached their steady size by then) to the end of the last.
#
#   bench/soak.sh [PHASES] [SECONDS_PER_PHASE]      (default 8 phases of 8 s)
#
# Prints a Markdown table and appends it to bench/results/soak-<date>.md. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
phases=${1:-8}
seconds=${2:-8}
build=${BENCH_BUILD_DIR:-build}
port_base=${SOAK_PORT_BASE:-18500}
mock_port=$((port_base + 1)) sluice_port=$((port_base + 2))
client_key=sk-soak-client
out=bench/results/soak-$(date -u +%Y-%m-%d).md

for tool in wrk curl; do
    command -v "$tool" >/dev/null || { echo "soak: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
[[ -x $build/sluice && -x $build/sluice-mock ]] || scripts/build.sh "$build"

tmp=$(mktemp -d /tmp/sluice-soak.XXXXXX)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]+"${pids[@]}"}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]+"${pids[@]}"}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

"$build/sluice-mock" --listen "127.0.0.1:$mock_port" --threads 1 --quiet --no-record >"$tmp/mock.log" 2>&1 &
pids+=($!)
key_sha=$(printf %s "$client_key" | sha256sum | cut -d' ' -f1)
cat >"$tmp/sluice.yaml" <<EOF
server: { listen: "127.0.0.1:$sluice_port", workers: 2, drain_timeout_ms: 2000 }
providers:
  mock: { type: openai, base_url: "http://127.0.0.1:$mock_port/v1", api_key: "sk-mock-soak" }
models:
  fast: { targets: [ { provider: mock, model: gpt-4o-mini } ] }
pricing:
  gpt-4o-mini: { input: 0.15, output: 0.60 }
keys:
  - { name: soak, key_sha256: "$key_sha", models: [fast] }
cache:
  exact: { ttl: 60 }
  semantic: { threshold: 0.86, ttl: 60 }
  max_entries: 5000
logging: { access_log: /dev/null, level: warn }
EOF
"$build/sluice" -c "$tmp/sluice.yaml" >"$tmp/sluice.out" 2>"$tmp/sluice.err" &
sluice_pid=$! pids+=("$sluice_pid")
for ((i = 0; i < 100; i++)); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$sluice_port/readyz" 2>/dev/null && break
    sleep 0.1
done

# Every request carries a fresh prompt (a counter), so the cache keeps admitting and evicting
# instead of serving hits: the worst case for memory.
cat >"$tmp/soak.lua" <<'EOF'
local counter = 0
local stream = os.getenv("SOAK_STREAM") == "1"
request = function()
    counter = counter + 1
    local body = string.format('{"model":"fast","stream":%s,"messages":[{"role":"user","content":' ..
        '"soak question %d about item %d @mock words=30 chunks=8"}]}', stream and "true" or "false",
        counter, math.random(1, 1e9))
    return wrk.format("POST", "/v1/chat/completions",
        { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("SOAK_KEY") }, body)
end
EOF

hang_ups() { # 50 clients that start a slow stream and hang up after its first bytes
    local i clients=()
    for ((i = 0; i < 50; i++)); do
        curl -sN --max-time 0.3 -o /dev/null -H 'content-type: application/json' -H "authorization: Bearer $client_key" \
            -d '{"model":"fast","stream":true,"messages":[{"role":"user","content":"hang up @mock chunks=50 chunk_delay_ms=50"}]}' \
            "http://127.0.0.1:$sluice_port/v1/chat/completions" &
        clients+=($!)
    done
    for i in "${clients[@]}"; do wait "$i" || true; done # not a bare wait: the servers are children too
}

rss() { awk '/^VmRSS/ {print $2}' "/proc/$sluice_pid/status"; }
fds() { ls "/proc/$sluice_pid/fd" | wc -l; }

table="| phase | mode | requests | req/s | non-2xx | RSS kB | fds |\n|---:|---|---:|---:|---:|---:|---:|\n"
declare -a rss_after
total=0
for ((phase = 1; phase <= phases; phase++)); do
    stream=$((phase % 2 == 0 ? 1 : 0))
    mode=$([[ $stream == 1 ]] && echo stream || echo plain)
    SOAK_STREAM=$stream SOAK_KEY=$client_key wrk -t1 -c16 -d"${seconds}s" -s "$tmp/soak.lua" \
        "http://127.0.0.1:$sluice_port" >"$tmp/wrk.txt" 2>&1
    hang_ups
    sleep 0.5
    requests=$(awk '/requests in/ {print $1}' "$tmp/wrk.txt")
    rate=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.txt")
    bad=$(awk '/Non-2xx/ {print $NF}' "$tmp/wrk.txt")
    total=$((total + requests))
    rss_after[$phase]=$(rss)
    table+="| $phase | $mode | $requests | $rate | ${bad:-0} | ${rss_after[$phase]} | $(fds) |\n"
done
growth=$((rss_after[phases] - rss_after[2]))
summary="RSS growth from the end of phase 2 to the end of phase $phases: ${growth} kB over $total requests"
summary+=" and $((phases * 50)) abandoned streams."
report="## Soak $(date -u +%Y-%m-%dT%H:%MZ) ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))\n\n${table}\n${summary}\n"
printf "%b\n" "$report"
mkdir -p bench/results
printf "%b\n" "$report" >>"$out"
if ! kill -0 "$sluice_pid" 2>/dev/null; then echo "soak: sluice died" >&2; exit 1; fi
