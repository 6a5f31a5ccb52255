// auth: virtual keys. Missing / malformed / wrong key → 401 on every /v1 endpoint; a key stored
// as key_sha256 and a key taken from the environment (key: "${OPS_KEY}") both work; a key limited
// to some models gets 403 for the others (configured or provider/model); health endpoints need
// no key; with no keys configured the gateway runs open and warns.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
    assertOpenAIError, baseConfig, chat, post, request, secret, startGateway, startMock, startStack,
    stopAndCollectProblems,
} from '../lib/harness.mjs';

describe('auth with keys configured', { timeout: 60000 }, () => {
    let s;
    before(async () => {
        s = await startStack({
            models: {
                smart: { targets: [{ provider: 'mock', model: 'gpt-4o' }] },
                embed: { targets: [{ provider: 'mock', model: 'text-embedding-3-small' }] },
            },
            appModels: ['fast', 'embed'],
        });
    });
    after(async () => {
        if (!s) return;
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    const endpoints = () => [
        ['POST', `${s.gw.base}/chat/completions`, chat('fast', 'hi')],
        ['POST', `${s.gw.base}/completions`, { model: 'fast', prompt: 'hi' }],
        ['POST', `${s.gw.base}/embeddings`, { model: 'embed', input: 'hi' }],
        ['GET', `${s.gw.base}/models`, undefined],
    ];

    test('missing Authorization → 401 on every /v1 endpoint', async () => {
        for (const [method, url, body] of endpoints()) {
            const r = await request(url, { method, body });
            assert.equal(r.status, 401, `${method} ${url}: ${r.text}`);
            assertOpenAIError(r.json, {}, `${method} ${url}`);
        }
    });

    test('wrong key → 401', async () => {
        for (const [method, url, body] of endpoints()) {
            const r = await request(url, { method, body, key: secret('sk-wrong') });
            assert.equal(r.status, 401, `${method} ${url}: ${r.text}`);
            assertOpenAIError(r.json);
        }
    });

    test('malformed Authorization headers → 401', async () => {
        const variants = [
            `Basic ${Buffer.from(`user:${s.secrets.app}`).toString('base64')}`,
            'Bearer',
            'Bearer ',
            s.secrets.app, // no scheme
            `Bearer ${s.secrets.app}x`, // prefix of a valid key is not valid
            `Bearer ${s.secrets.app.slice(0, -1)}`,
        ];
        for (const v of variants) {
            const r = await request(`${s.gw.base}/chat/completions`, { body: chat('fast', 'hi'), headers: { authorization: v } });
            assert.equal(r.status, 401, `Authorization: ${v} → ${r.status} ${r.text}`);
            assertOpenAIError(r.json);
        }
    });

    test('the hash of a key is not accepted as the key', async () => {
        const { sha256hex } = await import('../lib/harness.mjs');
        const r = await post(s.gw, 'chat/completions', chat('fast', 'hi'), { key: sha256hex(s.secrets.app) });
        assert.equal(r.status, 401, r.text);
    });

    test('good key (key_sha256) → 200 on allowed models', async () => {
        const r = await post(s.gw, 'chat/completions', chat('fast', 'hello app'), { key: s.secrets.app });
        assert.equal(r.status, 200, r.text);
        const e = await post(s.gw, 'embeddings', { model: 'embed', input: 'x' }, { key: s.secrets.app });
        assert.equal(e.status, 200, e.text);
        const m = await request(`${s.gw.base}/models`, { key: s.secrets.app });
        assert.equal(m.status, 200, m.text);
        assert.ok(m.json.data.some((x) => x.id === 'fast'));
    });

    test('key from the environment (key: "${OPS_KEY}") → 200 on any model', async () => {
        for (const model of ['fast', 'smart', 'mock/gpt-4o']) {
            const r = await post(s.gw, 'chat/completions', chat(model, 'hello ops'), { key: s.secrets.ops });
            assert.equal(r.status, 200, `${model}: ${r.text}`);
        }
    });

    test('key restricted to models → 403 for other configured models', async () => {
        const r = await post(s.gw, 'chat/completions', chat('smart', 'hi'), { key: s.secrets.app });
        assert.equal(r.status, 403, r.text);
        assertOpenAIError(r.json);
    });

    test('key restricted to models → 403 for provider/model direct access', async () => {
        const r = await post(s.gw, 'chat/completions', chat('mock/gpt-4o', 'hi'), { key: s.secrets.app });
        assert.equal(r.status, 403, r.text);
        assertOpenAIError(r.json);
    });

    test('key restricted to models → 403 on completions for a disallowed model', async () => {
        const r = await post(s.gw, 'completions', { model: 'smart', prompt: 'x' }, { key: s.secrets.app });
        assert.equal(r.status, 403, r.text);
        assertOpenAIError(r.json);
    });

    test('403 is decided before anything goes upstream', async () => {
        const marker = `forbidden-${Date.now()}`;
        const r = await post(s.gw, 'chat/completions', chat('smart', marker), { key: s.secrets.app });
        assert.equal(r.status, 403);
        const list = await s.mock.requests();
        assert.ok(!list.some((q) => JSON.stringify(q.body).includes(marker)), 'no upstream call for a forbidden model');
    });

    test('401 is decided before anything goes upstream', async () => {
        const marker = `unauth-${Date.now()}`;
        const r = await post(s.gw, 'chat/completions', chat('fast', marker), { key: 'sk-bogus-key-123456' });
        assert.equal(r.status, 401);
        const list = await s.mock.requests();
        assert.ok(!list.some((q) => JSON.stringify(q.body).includes(marker)), 'no upstream call without a valid key');
    });

    test('health endpoints need no key', async () => {
        assert.equal((await request(`${s.gw.url}/healthz`)).status, 200);
        assert.equal((await request(`${s.gw.url}/readyz`)).status, 200);
    });

    test('error bodies do not echo the presented secret', async () => {
        const bogus = secret('sk-bogus');
        const r = await post(s.gw, 'chat/completions', chat('fast', 'hi'), { key: bogus });
        assert.equal(r.status, 401);
        assert.ok(!r.text.includes(bogus));
        const f = await post(s.gw, 'chat/completions', chat('smart', 'hi'), { key: s.secrets.app });
        assert.equal(f.status, 403);
        assert.ok(!f.text.includes(s.secrets.app));
    });
});

describe('auth with no keys configured', { timeout: 30000 }, () => {
    let mock;
    let gw;
    before(async () => {
        mock = await startMock();
        gw = await startGateway({
            config: (port) => baseConfig({ port, mockPort: mock.port, keys: null }),
        });
    });
    after(async () => {
        const problems = await stopAndCollectProblems(gw);
        if (mock) await mock.stop({ graceMs: 3000 });
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    test('requests without a key are served', async () => {
        const r = await post(gw, 'chat/completions', chat('fast', 'open door'));
        assert.equal(r.status, 200, r.text);
        const m = await request(`${gw.base}/models`);
        assert.equal(m.status, 200, m.text);
    });

    test('any bearer token is accepted too', async () => {
        const r = await post(gw, 'chat/completions', chat('fast', 'open door'), { key: 'whatever' });
        assert.equal(r.status, 200, r.text);
    });

    test('the gateway warns at start-up that it runs open', () => {
        const warn = gw.stderrLines.find((l) => /warn/i.test(l) && /(key|auth|open)/i.test(l));
        assert.ok(warn, `a warning about running without keys on stderr; got:\n${gw.stderrLines.join('\n')}`);
    });
});
