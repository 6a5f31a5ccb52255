// cache-reload.test.mjs — cache settings changed by SIGHUP apply to the next requests: the semantic
// threshold, a per-model switch, the entry limit, and the whole cache section (off — requests then
// say `x-sluice-cache: skip` and go upstream — then on again:
// entries admitted before are still there until their TTL — disabling is not invalidation).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { binariesPresent, chat, post, request, secret, sha256hex, startStack, waitFor } from '../lib/harness.mjs';

const present = binariesPresent();
const unique = () => Math.random().toString(36).slice(2, 8);

describe('cache settings on SIGHUP', { skip: !present.ok && `missing ${present.missing}` }, () => {
    let stack;
    const adminKey = secret('sk-admin');
    const withCache = (cache) => (cfg) => {
        const next = { ...cfg, keys: [...cfg.keys, { name: 'root', key_sha256: sha256hex(adminKey), admin: true }] };
        if (cache) next.cache = cache;
        return next;
    };
    const base = { exact: { ttl: 3600 }, semantic: { threshold: 0.9, ttl: 3600 } };
    let reloads = 0;
    const reload = async (cache) => {
        const seen = stack.gw.stderrLines.filter((line) => /config reloaded/.test(line)).length;
        await stack.gw.reload(stack.config({ configTransform: withCache(cache) }));
        reloads++;
        await waitFor(() => stack.gw.stderrLines.filter((line) => /config reloaded/.test(line)).length > seen,
            { what: `reload ${reloads} applied` });
    };
    const ask = (content) => post(stack.gw, 'chat/completions', chat('fast', content), { key: stack.secrets.app });
    const upstreamCalls = async (needle) => (await stack.mock.requests())
        .filter((r) => r.path.endsWith('/chat/completions') && JSON.stringify(r.body ?? '').includes(needle)).length;

    before(async () => {
        stack = await startStack({ configTransform: withCache(base) });
    });
    after(async () => {
        const problems = await stack?.stop();
        assert.deepEqual(problems ?? [], []);
    });

    test('threshold, per-model switch, limits and the cache section itself follow the file', async () => {
        const tag = unique();
        const question = `How do I cancel my subscription to plan ${tag}?`;
        const reworded = `cancel my subscription to plan ${tag}, how?`;
        assert.equal((await ask(question)).headers.get('x-sluice-cache'), 'miss');
        const hit = await ask(reworded);
        assert.equal(hit.headers.get('x-sluice-cache'), 'hit');
        assert.equal(hit.headers.get('x-sluice-cache-layer'), 'semantic');
        const similarity = Number(hit.headers.get('x-sluice-cache-similarity'));
        assert.ok(similarity < 0.999, `similarity ${similarity}`);

        /* a stricter threshold: the same rewording is now a miss (hits are not admitted, so it was
         * not stored under its own exact key) */
        await reload({ ...base, semantic: { threshold: 0.999, ttl: 3600 } });
        assert.equal((await ask(reworded)).headers.get('x-sluice-cache'), 'miss');

        /* the model switched to exact only: an exact repeat still hits, a new rewording misses */
        await reload({ ...base, models: { fast: { semantic: false } } });
        assert.equal((await ask(question)).headers.get('x-sluice-cache'), 'hit');
        const plain = await ask(`How can I cancel my subscription to plan ${tag}`);
        assert.equal(plain.headers.get('x-sluice-cache'), 'miss');

        /* no cache section: no lookup, the request goes upstream (the gateway says skip) */
        const before = await upstreamCalls(question);
        await reload(null);
        const off = await ask(question);
        assert.equal(off.status, 200);
        assert.equal(off.headers.get('x-sluice-cache'), 'skip');
        assert.equal(await upstreamCalls(question), before + 1);

        /* back on: what was admitted before is served again (disabling is not invalidation) */
        await reload(base);
        assert.equal((await ask(question)).headers.get('x-sluice-cache'), 'hit');

        /* a smaller entry limit applies at the next admissions */
        await reload({ ...base, max_entries: 2 });
        for (let i = 0; i < 3; i++)
            assert.equal((await ask(`Limit test ${i} ${tag}`)).headers.get('x-sluice-cache'), 'miss');
        const stats = await request(`${stack.gw.url}/admin/cache/stats`, { key: adminKey });
        assert.equal(stats.status, 200);
        assert.ok(stats.json.entries <= 2, `entries ${stats.json.entries} within the reloaded limit`);
        assert.equal(stats.json.max_entries, 2);
    });
});
