// latency routing with two mock processes: a answers at once, b after 20 ms, so traffic settles on
// a (exploration keeps measuring b); then a slows down (restarted on the same port with a 100 ms
// delay) and ≥ 90 % of the next 200 requests must go to b — with no failed attempt, so the move is
// the latency averages' doing, not a fallback. One worker, so one latency table sees every request.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { baseConfig, chat, freePort, post, startGateway, stopAndCollectProblems } from '../lib/harness.mjs';
import { startMockOn } from './routing-lib.mjs';

describe('latency routing', { timeout: 120000 }, () => {
    let gw;
    const mocks = {};
    const ports = {};
    before(async () => {
        ports.a = await freePort();
        ports.b = await freePort();
        mocks.a = await startMockOn(ports.a);
        mocks.b = await startMockOn(ports.b, { delayMs: 20 });
        gw = await startGateway({
            config: (port) => {
                const cfg = baseConfig({ port, mockPort: ports.a, mockKey: 'sk-mock', server: { workers: 1 }, keys: null });
                cfg.providers.b = { ...cfg.providers.mock, base_url: `http://127.0.0.1:${ports.b}/v1` };
                cfg.providers.a = cfg.providers.mock;
                cfg.models.quick = {
                    strategy: 'latency', exploration: 0.05,
                    targets: [{ provider: 'a', model: 'gpt-4o-mini' }, { provider: 'b', model: 'gpt-4o-mini' }],
                };
                return cfg;
            },
        });
    });
    after(async () => {
        const problems = await stopAndCollectProblems(gw);
        for (const m of Object.values(mocks)) await m.stop({ graceMs: 2000 });
        assert.deepEqual(problems, []);
    });

    async function send(count) {
        const out = [];
        for (let i = 0; i < count; i++) {
            const r = await post(gw, 'chat/completions', chat('quick', `q${i}`));
            assert.equal(r.status, 200, r.text);
            out.push({ provider: r.headers.get('x-sluice-provider'), id: r.headers.get('x-sluice-request-id') });
        }
        return out;
    }
    const share = (list, provider) => list.filter((x) => x.provider === provider).length;

    test('≥ 90 % of traffic moves to the faster target within 200 requests after one slows down', async (t) => {
        const warm = await send(100);
        t.diagnostic(`a fast, b +20 ms: last 50 went a ${share(warm.slice(-50), 'a')} / b ${share(warm.slice(-50), 'b')}`);
        assert.ok(share(warm.slice(-50), 'a') >= 43, 'traffic settled on the faster target a');
        assert.ok(share(warm, 'b') >= 1, 'b was measured');

        await mocks.a.stop({ graceMs: 2000 });
        mocks.a = await startMockOn(ports.a, { delayMs: 100 });

        const slow = await send(200);
        const toB = share(slow, 'b');
        const firstB = slow.findIndex((x) => x.provider === 'b');
        t.diagnostic(`a now +100 ms: ${toB} of 200 went to b; first at request ${firstB + 1}; ` +
            `last 100: ${share(slow.slice(-100), 'b')}`);
        assert.ok(toB >= 180, `${toB} of 200 went to the faster target`);
        const log = gw.accessLog();
        for (const x of slow) {
            const e = log.find((l) => l.request_id === x.id);
            assert.ok(e, `access log for ${x.id}`);
            assert.deepEqual(e.attempts.map((a) => a.outcome), ['ok'], 'no attempt failed: no fallback involved');
        }
    });
});
