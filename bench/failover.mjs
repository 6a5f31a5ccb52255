#!/usr/bin/env node
// failover.mjs — what a failing primary costs a request, and how the circuit breaker behaves.
//
//   node bench/failover.mjs            (binaries from build/, or $SLUICE_BIN / $SLUICE_MOCK_BIN)
//   FAILOVER_N=500 node bench/failover.mjs
//
// Starts sluice-mock and a gateway (2 workers), then for each scenario sends N sequential
// requests after a warm-up and reports latency percentiles and the latency added over the
// baseline (the same request straight to the healthy target):
//   refused     primary port has no listener            → fallback
//   http_500    primary answers 500                      → fallback
//   http_429    primary answers 429, retry-after: 1      → fallback at once
//   hang        primary never answers; first_byte_ms 200 → fallback after the timeout
//   breaker     primary dead, breaker open               → primary skipped
// and the breaker cycle: failures until it opens, then the time from the primary's revival to
// the first request it serves again (bounded by cooldown_ms). Results are printed as a table and
// written to bench/results/failover-<timestamp>.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
    baseConfig, chat, closedPort, post, sleep, startGateway, startMock, stopAndCollectProblems,
} from '../tests/lib/harness.mjs';
import { median, percentile, startMockOn } from '../tests/integration/routing-lib.mjs';

const N = Number(process.env.FAILOVER_N ?? 200);
const HANG_MS = 200;
const COOLDOWN_MS = 1000;
const here = path.dirname(fileURLToPath(import.meta.url));

async function main() {
    const mock = await startMock({ threads: 2 });
    const deadPort = await closedPort();
    const breakerPort = await closedPort();
    const target = (model) => ({ provider: 'mock', model });
    const gw = await startGateway({
        config: (port) => {
            const cfg = baseConfig({ port, mockPort: mock.port, mockKey: 'sk-mock', keys: null, logging: { access_log: 'off' } });
            cfg.providers.mock.breaker = { failures: 0, error_rate: 0 };
            cfg.providers.dead = {
                type: 'openai', base_url: `http://127.0.0.1:${deadPort}/v1`, api_key: 'x',
                breaker: { failures: 0, error_rate: 0 },
            };
            cfg.providers.flaky = {
                type: 'openai', base_url: `http://127.0.0.1:${breakerPort}/v1`, api_key: 'x',
                breaker: { failures: 3, error_rate: 0, cooldown_ms: COOLDOWN_MS, half_open_requests: 1 },
            };
            Object.assign(cfg.models, {
                baseline: { targets: [target('gpt-4o-mini')] },
                refused: { targets: [{ provider: 'dead', model: 'gpt-4o-mini' }, target('gpt-4o-mini')] },
                http_500: { targets: [target('gpt-4o@status=500'), target('gpt-4o-mini')] },
                http_429: { targets: [target('gpt-4o@status=429,retry_after=1'), target('gpt-4o-mini')] },
                hang: { timeouts: { first_byte_ms: HANG_MS }, targets: [target('gpt-4o@delay_ms=10000'), target('gpt-4o-mini')] },
                breaker: { targets: [{ provider: 'flaky', model: 'gpt-4o-mini' }, target('gpt-4o-mini')] },
            });
            return cfg;
        },
    });

    async function run(model, count) {
        const ms = [];
        const attempts = new Map();
        for (let i = 0; i < count; i++) {
            const r = await post(gw, 'chat/completions', chat(model, `bench ${i}`));
            if (r.status !== 200) throw new Error(`${model}: status ${r.status} ${r.text}`);
            ms.push(r.ms);
            const a = r.headers.get('x-sluice-attempts');
            attempts.set(a, (attempts.get(a) ?? 0) + 1);
        }
        return { ms, attempts: Object.fromEntries(attempts) };
    }

    const results = { n: N, hang_first_byte_ms: HANG_MS, cooldown_ms: COOLDOWN_MS, scenarios: {} };
    await run('baseline', 50);
    const base = await run('baseline', N);
    const baseP50 = median(base.ms);
    const row = (name, r) => {
        const entry = {
            p50_ms: median(r.ms), p95_ms: percentile(r.ms, 95), p99_ms: percentile(r.ms, 99), max_ms: Math.max(...r.ms),
            added_p50_ms: median(r.ms) - baseP50, attempts: r.attempts,
        };
        results.scenarios[name] = entry;
        return entry;
    };
    row('baseline', base);
    for (const name of ['refused', 'http_500', 'http_429']) {
        await run(name, 10);
        row(name, await run(name, N));
    }
    row('hang', await run('hang', Math.min(N, 25)));

    // breaker: failures until open, then N requests with it open
    const opening = await run('breaker', 3);
    results.breaker_opening_attempts = opening.attempts;
    row('breaker_open', await run('breaker', Math.min(N, Math.floor(COOLDOWN_MS / 10))));
    // revival: the first request served by the primary again
    await sleep(10);
    const revived = await startMockOn(breakerPort);
    const t0 = performance.now();
    let back = null;
    let polls = 0;
    while (performance.now() - t0 < COOLDOWN_MS * 3) {
        const r = await post(gw, 'chat/completions', chat('breaker', 'revive'));
        polls++;
        if (r.headers.get('x-sluice-provider') === 'flaky') {
            back = performance.now() - t0;
            break;
        }
        await sleep(10);
    }
    results.breaker_recovery = { ms_from_revival_to_first_served: back, polls, cooldown_ms: COOLDOWN_MS };

    const problems = await stopAndCollectProblems(gw);
    await revived.stop({ graceMs: 2000 });
    await mock.stop({ graceMs: 2000 });
    if (problems.length) results.problems = problems;

    console.log(`failover bench: N=${N} sequential requests per scenario, 2 workers, loopback mock`);
    console.log('scenario        p50 ms   p95 ms   p99 ms   max ms   added p50 ms   attempts');
    for (const [name, e] of Object.entries(results.scenarios)) {
        console.log(`${name.padEnd(14)} ${e.p50_ms.toFixed(2).padStart(7)}  ${e.p95_ms.toFixed(2).padStart(7)}  ` +
            `${e.p99_ms.toFixed(2).padStart(7)}  ${e.max_ms.toFixed(2).padStart(7)}  ${e.added_p50_ms.toFixed(2).padStart(13)}   ` +
            `${JSON.stringify(e.attempts)}`);
    }
    const hang = results.scenarios.hang;
    results.hang_answer_after_timeout_p50_ms = hang.p50_ms - HANG_MS;
    results.hang_answer_after_timeout_max_ms = hang.max_ms - HANG_MS;
    console.log(`hang: first_byte_ms ${HANG_MS}; the fallback answered ${(hang.p50_ms - HANG_MS).toFixed(2)} ms (p50), ` +
        `${(hang.max_ms - HANG_MS).toFixed(2)} ms (max) after the timeout`);
    console.log(`breaker: failures 3, cooldown ${COOLDOWN_MS} ms`);
    console.log(`breaker recovery: primary served again ${back === null ? 'never' : back.toFixed(0) + ' ms'} after revival`);
    const dir = path.join(here, 'results');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `failover-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
    console.log(`written ${path.relative(process.cwd(), file)}`);
    if (problems.length) {
        console.error(problems.join('\n'));
        process.exitCode = 1;
    }
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
