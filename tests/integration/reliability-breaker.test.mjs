// circuit breakers and active health checks through the real binary: a dead primary opens its
// breaker after `failures` refused connections; while open the primary is skipped with no added
// latency (the attempt is logged as circuit_open with 0 ms); /readyz shows it; when the primary
// comes back to life, traffic returns within one half-open cycle (cooldown_ms). Health checks mark
// a provider unhealthy from probes alone, before any request fails, and healthy again.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { chat, closedPort, post, request, sleep, startStack, waitFor } from '../lib/harness.mjs';
import { median, outcomes, startMockOn, timedChats } from './routing-lib.mjs';

const COOLDOWN_MS = 1500;

describe('circuit breaker and health checks', { timeout: 120000 }, () => {
    let s;
    let key;
    let primaryPort;
    let probedPort;
    const revived = [];
    before(async () => {
        primaryPort = await closedPort();
        probedPort = await closedPort();
        s = await startStack({
            providers: {
                primary: {
                    type: 'openai', base_url: `http://127.0.0.1:${primaryPort}/v1`, api_key: 'unused',
                    timeouts: { connect_ms: 1000, first_byte_ms: 2000 },
                    breaker: { failures: 3, error_rate: 0, cooldown_ms: COOLDOWN_MS, half_open_requests: 1 },
                },
                probed: {
                    type: 'openai', base_url: `http://127.0.0.1:${probedPort}/v1`, api_key: 'unused',
                    breaker: { failures: 0, error_rate: 0 },
                    health_check: { interval_ms: 200, timeout_ms: 200, path: '/models' },
                },
            },
            models: {
                guarded: { targets: [{ provider: 'primary', model: 'gpt-4o-mini' }, { provider: 'mock', model: 'gpt-4o-mini' }] },
                lonely: { targets: [{ provider: 'primary', model: 'solo' }] },
                checked: { targets: [{ provider: 'probed', model: 'gpt-4o-mini' }, { provider: 'mock', model: 'gpt-4o-mini' }] },
            },
        });
        key = s.secrets.ops;
    });
    after(async () => {
        for (const m of revived) await m.stop({ graceMs: 2000 });
        if (!s) return;
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    const ready = async () => (await request(`${s.gw.url}/readyz`)).json;

    test('opens after 3 failures, then skips the dead target with no added latency', async (t) => {
        await timedChats(s.gw, 'fast', 5, { key });
        const baseline = median((await timedChats(s.gw, 'fast', 20, { key })).map((r) => r.ms));
        for (let i = 0; i < 3; i++) {
            const r = await post(s.gw, 'chat/completions', chat('guarded', 'x'), { key });
            assert.equal(r.status, 200);
            assert.equal(r.headers.get('x-sluice-attempts'), '2', 'closed: the primary is tried');
        }
        const state = await ready();
        assert.deepEqual(state.routing.breakers.map((b) => [b.provider, b.model, b.state]),
            [['primary', 'gpt-4o-mini', 'open']]);
        assert.ok(s.gw.stderrLines.some((l) => /circuit breaker for primary\/gpt-4o-mini: closed -> open/.test(l)),
            'the change is logged');

        const open = [];
        const baselineNow = [];
        for (let i = 0; i < 20; i++) { // interleaved with the healthy target, so drift cancels out
            baselineNow.push((await post(s.gw, 'chat/completions', chat('fast', 'x'), { key })).ms);
            open.push(await post(s.gw, 'chat/completions', chat('guarded', 'x'), { key }));
        }
        for (const r of open) {
            assert.equal(r.status, 200);
            assert.equal(r.headers.get('x-sluice-attempts'), '1', 'open: the primary is not tried');
            assert.equal(r.headers.get('x-sluice-fallback-reason'), 'primary/gpt-4o-mini: circuit_open');
        }
        const added = median(open.map((r) => r.ms)) - median(baselineNow);
        t.diagnostic(`breaker open: median added latency ${added.toFixed(2)} ms (baseline median ${median(baselineNow).toFixed(2)} ms, before ${baseline.toFixed(2)} ms)`);
        assert.ok(added < 5, `added ${added} ms`);
        const e = await s.gw.accessLogFor(open[0].headers.get('x-sluice-request-id'));
        assert.deepEqual(outcomes(e), ['circuit_open', 'ok']);
        assert.equal(e.attempts[0].latency_ms, 0);
    });

    test('a model whose only target is open fails fast with 503 and retry-after', async () => {
        for (let i = 0; i < 3; i++) await post(s.gw, 'chat/completions', chat('lonely', 'x'), { key });
        const r = await post(s.gw, 'chat/completions', chat('lonely', 'x'), { key });
        assert.equal(r.status, 503, r.text);
        assert.equal(r.json.error.code, 'no_target_available');
        const wait = Number(r.headers.get('retry-after'));
        assert.ok(wait >= 1 && wait <= Math.ceil(COOLDOWN_MS / 1000), `retry-after ${wait}`);
        assert.ok(r.ms < 20, `${r.ms} ms`);
    });

    test('after the target recovers, traffic returns within one half-open cycle', async (t) => {
        // keep the breaker open right up to the revival: a trial that fails re-opens it
        const last = await post(s.gw, 'chat/completions', chat('guarded', 'x'), { key });
        assert.equal(last.status, 200);
        revived.push(await startMockOn(primaryPort));
        const revivedAt = performance.now();
        let backAt = null;
        while (performance.now() - revivedAt < COOLDOWN_MS * 2 + 1000) {
            const r = await post(s.gw, 'chat/completions', chat('guarded', 'x'), { key });
            assert.equal(r.status, 200);
            if (r.headers.get('x-sluice-provider') === 'primary') {
                backAt = performance.now();
                break;
            }
            await sleep(25);
        }
        assert.ok(backAt !== null, 'traffic came back');
        t.diagnostic(`traffic back on the primary ${(backAt - revivedAt).toFixed(0)} ms after it revived (cooldown ${COOLDOWN_MS} ms)`);
        assert.ok(backAt - revivedAt <= COOLDOWN_MS + 100, `${backAt - revivedAt} ms`);
        const after = await timedChats(s.gw, 'guarded', 10, { key });
        for (const r of after) {
            assert.equal(r.headers.get('x-sluice-provider'), 'primary', 'closed again: all traffic to the primary');
            assert.equal(r.headers.get('x-sluice-attempts'), '1');
        }
        const state = await ready();
        assert.ok(!state.routing.breakers.some((b) => b.provider === 'primary' && b.model === 'gpt-4o-mini'),
            JSON.stringify(state.routing));
        assert.ok(s.gw.stderrLines.some((l) => /primary\/gpt-4o-mini: half_open -> closed/.test(l)));
    });

    test('health checks mark a provider unhealthy from probes alone, and healthy again', async () => {
        await waitFor(async () => (await ready()).routing.unhealthy_providers.includes('probed'),
            { timeoutMs: 3000, what: 'probed to be reported unhealthy' });
        assert.ok(s.gw.stderrLines.some((l) => /provider probed is now unhealthy/.test(l)));
        const r = await post(s.gw, 'chat/completions', chat('checked', 'x'), { key });
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('x-sluice-attempts'), '1', 'skipped without a connection attempt');
        assert.equal(r.headers.get('x-sluice-fallback-reason'), 'probed/gpt-4o-mini: circuit_open');

        revived.push(await startMockOn(probedPort));
        await waitFor(async () => !(await ready()).routing.unhealthy_providers.includes('probed'),
            { timeoutMs: 3000, what: 'probed to be reported healthy' });
        assert.ok(s.gw.stderrLines.some((l) => /provider probed is now healthy/.test(l)));
        const back = await post(s.gw, 'chat/completions', chat('checked', 'x'), { key });
        assert.equal(back.headers.get('x-sluice-provider'), 'probed');
    });
});
