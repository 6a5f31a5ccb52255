// cache-redis.test.mjs — the Redis backend: two gateway instances sharing one Redis (an answer
// cached through one is a hit through the other; an invalidation through one reaches the other),
// a restarted instance loads the entries, and Redis going away degrades to misses, not failures.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { spawnSync } from 'node:child_process';

import { binariesPresent, chat, freePort, post, request, secret, sha256hex, startGateway, startProcess, startStack, waitFor } from '../lib/harness.mjs';

const present = binariesPresent();
const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
const unique = () => Math.random().toString(36).slice(2, 8);

async function startRedis(port) {
    const redis = startProcess('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
        '--appendonly', 'no'], { name: 'redis-server' });
    await redis.waitForLine(/Ready to accept connections/, { stream: 'stdout', timeoutMs: 10000 });
    return redis;
}

describe('cache with redis', { skip: (!present.ok && `missing ${present.missing}`) || (!hasRedis && 'no redis-server') }, () => {
    let stack, second, redis, redisPort;
    const adminKey = secret('sk-admin');
    const prefix = `t${unique()}`;
    const withCache = (cfg) => ({
        ...cfg,
        keys: [...cfg.keys, { name: 'root', key_sha256: sha256hex(adminKey), admin: true }],
        cache: { backend: 'redis', exact: { ttl: 600 }, semantic: { threshold: 0.9, ttl: 600 } },
        redis: { url: `redis://127.0.0.1:${redisPort}`, prefix },
    });
    const ask = (gw, content) => post(gw, 'chat/completions', chat('fast', content), { key: stack.secrets.app });
    const inStep = async (gw) => waitFor(async () => {
        const r = await request(`${gw.url}/admin/cache/stats`, { key: adminKey });
        return r.json?.redis_in_step === true;
    }, { what: 'the gateway to be in step with redis', timeoutMs: 8000 });

    before(async () => {
        redisPort = await freePort();
        redis = await startRedis(redisPort);
        stack = await startStack({ configTransform: withCache });
        const config = stack.config();
        second = await startGateway({ config: (port) => ({ ...config, server: { ...config.server, listen: `127.0.0.1:${port}` } }),
            env: { MOCK_KEY: stack.secrets.mockKey, OPS_KEY: stack.secrets.ops } });
        await inStep(stack.gw);
        await inStep(second);
    });
    after(async () => {
        await second?.stop?.();
        await stack?.stop();
        redis?.kill('SIGKILL');
    });

    test('an answer cached through one instance is a hit through the other', async () => {
        const prompt = `Which ocean is the largest ${unique()}?`;
        const first = await ask(stack.gw, prompt);
        assert.equal(first.headers.get('x-sluice-cache'), 'miss');
        let hit;
        await waitFor(async () => {
            const stats = await request(`${second.url}/admin/cache/stats`, { key: adminKey });
            return stats.json.entries >= 1;
        }, { what: 'the entry to reach the second instance' });
        hit = await ask(second, prompt);
        assert.equal(hit.headers.get('x-sluice-cache'), 'hit');
        assert.equal(hit.json.choices[0].message.content, first.json.choices[0].message.content);
        const para = await ask(second, prompt.toLowerCase().replace('?', ''));
        assert.equal(para.headers.get('x-sluice-cache'), 'hit');
    });

    test('an invalidation through one instance reaches the other', async () => {
        const prompt = `What is the speed of light ${unique()}?`;
        await ask(second, prompt);
        await waitFor(async () => (await ask(stack.gw, prompt)).headers.get('x-sluice-cache') === 'hit',
            { what: 'shared entry' });
        const r = await request(`${stack.gw.url}/admin/cache/invalidate`, { key: adminKey, body: { all: true } });
        assert.equal(r.status, 200);
        assert.equal(r.json.shared, true);
        await waitFor(async () => (await request(`${second.url}/admin/cache/stats`, { key: adminKey })).json.entries === 0,
            { what: 'the second instance to apply the invalidation' });
        assert.equal((await ask(second, prompt)).headers.get('x-sluice-cache'), 'miss');
    });

    test('a new instance loads the entries already in redis', async () => {
        const prompt = `How far is the moon from the earth ${unique()}?`;
        await ask(stack.gw, prompt);
        const config = stack.config();
        const third = await startGateway({ config: (port) => ({ ...config, server: { ...config.server, listen: `127.0.0.1:${port}` } }),
            env: { MOCK_KEY: stack.secrets.mockKey, OPS_KEY: stack.secrets.ops } });
        try {
            await inStep(third);
            assert.equal((await ask(third, prompt)).headers.get('x-sluice-cache'), 'hit');
        } finally {
            await third.stop();
        }
    });

    test('redis down: requests still succeed as misses, and the cache recovers', async () => {
        const prompt = `Name the largest desert ${unique()}`;
        await ask(stack.gw, prompt);
        redis.kill('SIGKILL');
        await redis.exited;
        await waitFor(async () => (await request(`${stack.gw.url}/admin/cache/stats`, { key: adminKey })).json.redis_in_step === false,
            { what: 'the gateway to notice' });
        const during = await ask(stack.gw, prompt);
        assert.equal(during.status, 200);
        assert.equal(during.headers.get('x-sluice-cache'), 'miss');
        assert.ok(stack.gw.stderrLines.some((l) => /redis .* (connection lost|unreachable)/.test(l)), 'logged');
        const metrics = await request(`${stack.gw.url}/metrics`);
        assert.match(metrics.text, /sluice_cache_lookups_total\{outcome="error"\} [1-9]/);
        redis = await startRedis(redisPort);
        await inStep(stack.gw);
        await ask(stack.gw, prompt);
        assert.equal((await ask(stack.gw, prompt)).headers.get('x-sluice-cache'), 'hit');
    });
});
