// limits-redis.test.mjs — rate limits shared through Redis: two gateway instances and one
// redis-server (started here on a free loopback port). A key's rpm is one limit across both
// instances (a concurrent burst spread over both gets exactly rpm successes, and the provider
// sees exactly those); tokens recorded by one instance count on the other; a stalled Redis makes
// admissions fall back after limits.redis_timeout_ms (also for a client that hangs up while its
// admission waits); a killed Redis leaves each instance enforcing the limit on its own, logged
// once; a restarted Redis shares the windows again.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { spawnSync } from 'node:child_process';

import {
    binariesPresent, chat, stopAndCollectProblems, freePort, post, request, secret, sha256hex, sleep, startGateway, startProcess, startStack,
    waitFor,
} from '../lib/harness.mjs';

const present = binariesPresent();
const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
const unique = () => Math.random().toString(36).slice(2, 8);

async function startRedis(port) {
    const redis = startProcess('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
        '--appendonly', 'no'], { name: 'redis-server' });
    await redis.waitForLine(/Ready to accept connections/, { stream: 'stdout', timeoutMs: 10000 });
    return redis;
}

async function metric(gw, line) {
    const r = await request(`${gw.url}/metrics`);
    const match = r.text.match(new RegExp(`^${line.replace(/[{}"]/g, '\\$&')} (\\d+)$`, 'm'));
    return match ? Number(match[1]) : NaN;
}

// Every worker (2 per instance) is connected: admissions are shared from now on.
const connected = (gw) => waitFor(async () => (await metric(gw, 'sluice_limits_redis_connections')) === 2,
    { what: 'both workers connected to redis', timeoutMs: 8000 });

describe('limits shared through redis', { timeout: 60000,
    skip: (!present.ok && `missing ${present.missing}`) || (!hasRedis && 'no redis-server') }, () => {
    let stack, second, redis, redisPort;
    const keys = { five: secret('sk-five'), tok: secret('sk-tok'), stall: secret('sk-stall'), down: secret('sk-down'),
        again: secret('sk-again') };
    const prefix = `t${unique()}`; // one for both instances: configTransform runs once per instance
    const withRedis = (cfg) => ({
        ...cfg,
        keys: [...cfg.keys,
            { name: 'five', key_sha256: sha256hex(keys.five), rpm: 5 },
            { name: 'tok', key_sha256: sha256hex(keys.tok), tpm: 10 },
            { name: 'stall', key_sha256: sha256hex(keys.stall), rpm: 100 },
            { name: 'down', key_sha256: sha256hex(keys.down), rpm: 3 },
            { name: 'again', key_sha256: sha256hex(keys.again), rpm: 2 }],
        limits: { redis_timeout_ms: 50 },
        redis: { url: `redis://127.0.0.1:${redisPort}`, prefix },
    });
    const ask = (gw, key, content, opts) => post(gw, 'chat/completions', chat('fast', content), { key, ...opts });
    const seenByMock = async (marker) => (await stack.mock.requests())
        .filter((r) => JSON.stringify(r.body ?? '').includes(marker)).length;
    const downLines = (gw) => gw.stderrLines.filter((l) => /limits: redis .* unavailable/.test(l)).length;

    before(async () => {
        redisPort = await freePort();
        redis = await startRedis(redisPort);
        stack = await startStack({ configTransform: withRedis });
        const config = stack.config();
        second = await startGateway({ config: (port) => ({ ...config, server: { ...config.server, listen: `127.0.0.1:${port}` } }),
            env: { MOCK_KEY: stack.secrets.mockKey, OPS_KEY: stack.secrets.ops } });
        await connected(stack.gw);
        await connected(second);
    });
    after(async () => {
        redis?.kill('SIGCONT');
        const problems = [...await stopAndCollectProblems(second), ...(await stack?.stop() ?? [])];
        redis?.kill('SIGKILL');
        assert.deepEqual(problems, [], 'sanitizer reports');
    });

    test('rpm: 8 concurrent requests over both instances, rpm 5 → exactly 5 admitted, the mock sees 5', async () => {
        const marker = `burst-${unique()}`;
        const results = await Promise.all([...Array(8).keys()].map((i) =>
            ask(i % 2 ? second : stack.gw, keys.five, `${marker} ${i}`)));
        const statuses = results.map((r) => r.status).sort();
        assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429, 429], JSON.stringify(statuses));
        for (const r of results.filter((x) => x.status === 429)) {
            assert.equal(r.json.error.type, 'requests');
            assert.equal(r.headers.get('x-ratelimit-limit-requests'), '5');
            assert.equal(r.headers.get('x-ratelimit-remaining-requests'), '0');
        }
        assert.equal(await seenByMock(marker), 5);
        assert.ok(await metric(stack.gw, 'sluice_limits_redis_admissions_total{outcome="shared"}') >= 4);
        assert.equal(await metric(stack.gw, 'sluice_limits_redis_admissions_total{outcome="fallback_down"}'), 0);
    });

    test('tpm: the usage recorded by one instance counts on the other', async () => {
        const first = await ask(stack.gw, keys.tok, `tokens ${unique()}`);
        assert.equal(first.status, 200, first.text);
        const used = first.json.usage.total_tokens;
        assert.ok(used > 10, 'the answer alone is over the limit');
        let refused;
        await waitFor(async () => {
            refused = await ask(second, keys.tok, `tokens again ${unique()}`);
            assert.equal(refused.status, 429, refused.text);
            return refused.json.error.message.includes(`Used ${used},`); // the true-up replaced the estimate
        }, { what: `the other instance to see ${used} tokens used`, timeoutMs: 3000 });
        assert.equal(refused.json.error.type, 'tokens');
        assert.equal(refused.headers.get('x-ratelimit-remaining-tokens'), '0');
    });

    test('a stalled redis: admissions fall back after the timeout, also for a client that hangs up', async () => {
        const before = await metric(stack.gw, 'sluice_limits_redis_admissions_total{outcome="fallback_timeout"}');
        redis.kill('SIGSTOP');
        try {
            // A client that leaves while its admission waits on redis.
            const controller = new AbortController();
            const gone = ask(stack.gw, keys.stall, `gone ${unique()}`, { signal: controller.signal }).catch((e) => e);
            setTimeout(() => controller.abort(), 10);
            await gone;
            const t0 = performance.now();
            const r = await ask(stack.gw, keys.stall, `stalled ${unique()}`);
            assert.equal(r.status, 200, r.text);
            assert.ok(performance.now() - t0 < 2000);
            assert.ok(await metric(stack.gw, 'sluice_limits_redis_admissions_total{outcome="fallback_timeout"}') > before);
        } finally {
            redis.kill('SIGCONT');
        }
        await sleep(1200); // past the 1 s during which a timed-out connection is not asked
        const r = await ask(stack.gw, keys.stall, `after ${unique()}`);
        assert.equal(r.status, 200, r.text);
    });

    test('redis killed: each instance enforces the limit on its own, logged once; restarted: shared again', async () => {
        redis.kill('SIGKILL');
        await redis.exited;
        const linesBefore = [downLines(stack.gw), downLines(second)];
        for (const gw of [stack.gw, second]) {
            const statuses = [];
            for (let i = 0; i < 4; i++)
                statuses.push((await ask(gw, keys.down, `down ${i} ${unique()}`)).status);
            assert.deepEqual(statuses, [200, 200, 200, 429], `local limit on ${gw.url}`);
        }
        await sleep(1500); // reconnect attempts fail meanwhile: still one line
        assert.ok(await metric(stack.gw, 'sluice_limits_redis_admissions_total{outcome="fallback_down"}') >= 4);
        for (const [i, gw] of [stack.gw, second].entries()) {
            assert.equal(downLines(gw), 1, `one outage line on instance ${i}: ${gw.stderrLines.join('\n')}`);
            assert.ok(linesBefore[i] <= 1);
        }

        redis = await startRedis(redisPort);
        await connected(stack.gw);
        await connected(second);
        assert.ok(stack.gw.stderrLines.some((l) => /limits: redis .* is back/.test(l)));
        const marker = `again-${unique()}`;
        const statuses = [];
        for (let i = 0; i < 4; i++)
            statuses.push((await ask(i % 2 ? second : stack.gw, keys.again, `${marker} ${i}`)).status);
        assert.deepEqual(statuses, [200, 200, 429, 429], 'one window again');
        assert.equal(await seenByMock(marker), 2);
    });
});
