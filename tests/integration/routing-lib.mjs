// routing-lib.mjs — helpers shared by the routing and reliability suites (and bench/failover.mjs):
// a mock on a port chosen in advance (so a "dead" target can come back to life), timing of
// requests, medians, and a bounded-concurrency runner.

import { SLUICE_MOCK_BIN, chat, post, startProcess } from '../lib/harness.mjs';

/** Starts sluice-mock listening on a given port (e.g. one a target already points at). */
export async function startMockOn(port, { threads = 1, delayMs } = {}) {
    const args = ['--listen', `127.0.0.1:${port}`, '--threads', String(threads)];
    if (delayMs !== undefined) args.push('--delay-ms', String(delayMs));
    const handle = startProcess(SLUICE_MOCK_BIN, args, { name: `sluice-mock:${port}` });
    // the readiness line on either stream (the mock has printed it on stdout and on stderr)
    const ready = /sluice-mock listening on/;
    await Promise.any(['stderr', 'stdout'].map((stream) => handle.waitForLine(ready, { timeoutMs: 10000, stream })));
    return handle;
}

export function median(values) {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function percentile(values, p) {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Sends `count` chat requests for model one after another; returns the responses (with .ms). */
export async function timedChats(gw, model, count, { key, content = 'ping', headers, extra } = {}) {
    const out = [];
    for (let i = 0; i < count; i++) {
        out.push(await post(gw, 'chat/completions', chat(model, content, extra), { key, headers }));
    }
    return out;
}

/** Runs fn(i) for i in [0, count) with at most `concurrency` in flight; returns results in order. */
export async function runPool(count, concurrency, fn) {
    const results = new Array(count);
    let next = 0;
    async function lane() {
        while (next < count) {
            const i = next++;
            results[i] = await fn(i);
        }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
    return results;
}

/** The `outcome`s of an access-log entry's attempts, e.g. ['connect_error', 'ok']. */
export function outcomes(entry) {
    return (entry.attempts ?? []).map((a) => a.outcome);
}
