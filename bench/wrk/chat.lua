-- wrk script for bench/run.sh: POSTs one chat completion per request (streamed or not) and,
-- when the run is done, appends one JSON line of results to $BENCH_OUT.
--
-- Environment: BENCH_MODEL (model name), BENCH_STREAM (1 = stream:true), BENCH_MOCK (the @mock
-- directive, e.g. "words=20" or "chunks=20 words=100"), BENCH_KEY (bearer key), BENCH_TARGET and
-- BENCH_MODE (labels copied into the output), BENCH_OUT (results file).
-- A streamed request counts as done when the whole event stream has arrived, so its latency is
-- the latency of the whole stream.

local model  = os.getenv("BENCH_MODEL") or "gpt-4o-mini"
local stream = os.getenv("BENCH_STREAM") == "1"
local mock   = os.getenv("BENCH_MOCK") or "words=20"
local key    = os.getenv("BENCH_KEY") or "sk-bench"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.body = string.format(
    '{"model":"%s","stream":%s,"messages":[{"role":"system","content":"You are a benchmark."},' ..
    '{"role":"user","content":"Say something short. @mock %s"}]}',
    model, stream and "true" or "false", mock)

function done(summary, latency, requests)
    local out = os.getenv("BENCH_OUT")
    local line = string.format(
        '{"target":"%s","mode":"%s","round":%s,"requests":%d,"duration_us":%d,"rps":%.1f,' ..
        '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
        '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"bytes":%d}',
        os.getenv("BENCH_TARGET") or "?", os.getenv("BENCH_MODE") or "?", os.getenv("BENCH_ROUND") or "0",
        summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
        summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
        summary.errors.timeout, summary.bytes)
    if out then
        local f = assert(io.open(out, "a"))
        f:write(line, "\n")
        f:close()
    end
    io.write(line, "\n")
end
