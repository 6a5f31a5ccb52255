// limits: per-key rpm and tpm through the real binary. A key's (rpm+1)th request in a window is a
// 429 with the OpenAI error shape (type "requests" / "tokens", code rate_limit_exceeded), a
// retry-after and x-ratelimit-* headers, and it never reaches the provider; other keys are not
// affected; the window admits again after retry-after (a 2-second test window, limits.window_seconds);
// token usage from plain and streamed answers counts against tpm; every rate-limited endpoint is
// covered (chat, completions, embeddings, messages); counters survive a reload, which applies a
// changed limit at once; a concurrent burst over 2 workers gets exactly rpm successes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
    assertOpenAIError, chat, post, request, secret, sha256hex, sleep, startStack, streamRequest,
} from '../lib/harness.mjs';

// Fixed for the file: both stacks' configs are rendered before startStack returns its secrets.
const secrets = { app: secret('sk-app'), ops: secret('sk-ops') };

const limitedKeys = (secrets, extra = []) => [
    { name: 'app', key_sha256: sha256hex(secrets.app), rpm: 3 },
    { name: 'ops', key: '${OPS_KEY}' },
    ...extra,
];

function assertRateHeaders(r, dimension, { limit, remaining }, context = '') {
    assert.equal(r.headers.get(`x-ratelimit-limit-${dimension}`), String(limit), `${context} limit`);
    if (remaining !== undefined)
        assert.equal(r.headers.get(`x-ratelimit-remaining-${dimension}`), String(remaining), `${context} remaining`);
    assert.match(r.headers.get(`x-ratelimit-reset-${dimension}`) ?? '', /^(\d+ms|(\d+m)?\d+(\.\d+)?s)$/, `${context} reset`);
}

function assertRetryAfter(r, maxSeconds) {
    const value = r.headers.get('retry-after');
    assert.match(value ?? '', /^\d+$/, 'retry-after is an integer');
    assert.ok(Number(value) >= 1 && Number(value) <= maxSeconds, `retry-after ${value} in 1..${maxSeconds}`);
    return Number(value);
}

describe('limits: one-minute window', { timeout: 60000 }, () => {
    let s;
    const extraSecrets = { tok: secret('sk-tok'), tokStream: secret('sk-tokstream'), cmp: secret('sk-cmp'),
        emb: secret('sk-emb'), msg: secret('sk-msg'), burst: secret('sk-burst') };
    before(async () => {
        s = await startStack({
            models: { embed: { targets: [{ provider: 'mock', model: 'text-embedding-3-small' }] } },
            keys: null,
            configTransform: (cfg) => ({
                ...cfg,
                keys: limitedKeys(secrets, [
                    { name: 'tok', key_sha256: sha256hex(extraSecrets.tok), tpm: 50 },
                    { name: 'tokstream', key_sha256: sha256hex(extraSecrets.tokStream), tpm: 50 },
                    { name: 'cmp', key_sha256: sha256hex(extraSecrets.cmp), rpm: 1 },
                    { name: 'emb', key_sha256: sha256hex(extraSecrets.emb), rpm: 1 },
                    { name: 'msg', key_sha256: sha256hex(extraSecrets.msg), rpm: 1 },
                    { name: 'burst', key_sha256: sha256hex(extraSecrets.burst), rpm: 10 },
                ]),
            }),
            env: { OPS_KEY: secrets.ops },
        });
    });
    after(async () => {
        if (!s) return;
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    test('rpm: N admitted with headers, then 429 that costs nothing upstream', async () => {
        await s.mock.reset();
        for (let i = 0; i < 3; i++) {
            const r = await post(s.gw, 'chat/completions', chat('fast', `hello ${i}`), { key: secrets.app });
            assert.equal(r.status, 200, r.text);
            assertRateHeaders(r, 'requests', { limit: 3, remaining: 2 - i }, `request ${i}`);
            assert.equal(r.headers.get('x-ratelimit-limit-tokens'), null, 'no tpm on this key: no token headers');
        }
        const r = await post(s.gw, 'chat/completions', chat('fast', 'one too many'), { key: secrets.app });
        assert.equal(r.status, 429, r.text);
        assertOpenAIError(r.json, { code: 'rate_limit_exceeded', type: 'requests' });
        assert.equal(r.json.error.param, null);
        assert.match(r.json.error.message, /^Rate limit reached for key 'app' on requests per min \(RPM\): Limit 3, Used 3, Requested 1\. Please try again in /);
        assertRetryAfter(r, 60);
        assertRateHeaders(r, 'requests', { limit: 3, remaining: 0 });
        const upstream = (await s.mock.requests()).filter((q) => q.path.endsWith('/chat/completions'));
        assert.equal(upstream.length, 3, 'the refused request never reached the provider');
        const id = r.headers.get('x-sluice-request-id');
        const line = await s.gw.accessLogFor(id);
        assert.equal(line.status, 429);
        assert.equal(line.error_type, 'requests');
    });

    test('a key without limits is unaffected and carries no rate headers', async () => {
        for (let i = 0; i < 5; i++) {
            const r = await post(s.gw, 'chat/completions', chat('fast', `ops ${i}`), { key: secrets.ops });
            assert.equal(r.status, 200, r.text);
            assert.equal(r.headers.get('x-ratelimit-limit-requests'), null);
            assert.equal(r.headers.get('retry-after'), null);
        }
    });

    test('tpm: a large answer uses up the window; the next request is refused', async () => {
        const first = await post(s.gw, 'chat/completions', chat('fast', 'long please @mock words=100'),
            { key: extraSecrets.tok });
        assert.equal(first.status, 200, first.text);
        assert.ok(first.json.usage.total_tokens > 50, 'the answer alone is over the limit');
        assertRateHeaders(first, 'tokens', { limit: 50 });
        const r = await post(s.gw, 'chat/completions', chat('fast', 'short'), { key: extraSecrets.tok });
        assert.equal(r.status, 429, r.text);
        assertOpenAIError(r.json, { code: 'rate_limit_exceeded', type: 'tokens' });
        assert.match(r.json.error.message, /on tokens per min \(TPM\): Limit 50, Used \d+/);
        assertRetryAfter(r, 60);
        assertRateHeaders(r, 'tokens', { limit: 50, remaining: 0 });
    });

    test('tpm: a streamed answer counts too', async () => {
        const stream = await streamRequest(`${s.gw.base}/chat/completions`,
            chat('fast', 'stream please @mock words=100', { stream: true }), { key: extraSecrets.tokStream });
        assert.equal(stream.status, 200);
        assert.ok(stream.done, 'the stream ended with [DONE]');
        assert.equal(stream.headers.get('x-ratelimit-limit-tokens'), '50');
        // One request only: each admitted one adds tokens of its own. Without the stream's usage the
        // window would hold only its estimate (about 25 tokens) and admit this one.
        await sleep(200);
        const r = await post(s.gw, 'chat/completions', chat('fast', 'next'), { key: extraSecrets.tokStream });
        assert.equal(r.status, 429, r.text);
        assert.equal(r.json.error.type, 'tokens');
    });

    test('completions, embeddings and messages are limited too; /v1/models is not', async () => {
        const cases = [
            ['completions', extraSecrets.cmp, { model: 'fast', prompt: 'hi' }, {}],
            ['embeddings', extraSecrets.emb, { model: 'embed', input: 'hi' }, {}],
            ['messages', extraSecrets.msg, { model: 'fast', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] },
                { 'anthropic-version': '2023-06-01' }],
        ];
        for (const [endpoint, key, body, headers] of cases) {
            const ok = await post(s.gw, endpoint, body, { key, headers });
            assert.equal(ok.status, 200, `${endpoint}: ${ok.text}`);
            assertRateHeaders(ok, 'requests', { limit: 1, remaining: 0 }, endpoint);
            const r = await post(s.gw, endpoint, body, { key, headers });
            assert.equal(r.status, 429, `${endpoint}: ${r.text}`);
            assertRetryAfter(r, 60);
            if (endpoint === 'messages') {
                assert.equal(r.json.type, 'error');
                assert.equal(r.json.error.type, 'rate_limit_error');
            } else {
                assertOpenAIError(r.json, { code: 'rate_limit_exceeded', type: 'requests' });
            }
        }
        const models = await request(`${s.gw.base}/models`, { key: extraSecrets.cmp });
        assert.equal(models.status, 200, models.text);
    });

    test('a concurrent burst over 2 workers gets exactly rpm successes', async () => {
        await s.mock.reset();
        const results = await Promise.all(Array.from({ length: 30 }, (_, i) =>
            post(s.gw, 'chat/completions', chat('fast', `burst ${i}`),
                { key: extraSecrets.burst, headers: { connection: 'close' } })));
        const statuses = results.map((r) => r.status);
        assert.equal(statuses.filter((x) => x === 200).length, 10, statuses.join(','));
        assert.equal(statuses.filter((x) => x === 429).length, 20, statuses.join(','));
        const stats = await s.mock.stats();
        assert.equal(stats.total, 10, 'only the admitted requests reached the provider');
    });
});

describe('limits: short window, recovery and reloads', { timeout: 60000 }, () => {
    let s;
    let window = 2;
    before(async () => {
        s = await startStack({
            keys: null,
            configTransform: (cfg) => ({ ...cfg, limits: { window_seconds: window }, keys: limitedKeys(secrets) }),
            env: { OPS_KEY: secrets.ops },
        });
    });
    after(async () => {
        if (!s) return;
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    test('after retry-after the window admits again', async () => {
        for (let i = 0; i < 3; i++)
            assert.equal((await post(s.gw, 'chat/completions', chat('fast', `w ${i}`), { key: secrets.app })).status, 200);
        const r = await post(s.gw, 'chat/completions', chat('fast', 'over'), { key: secrets.app });
        assert.equal(r.status, 429, r.text);
        assert.match(r.json.error.message, /on requests per 2s \(RPM\)/);
        const wait = assertRetryAfter(r, 2);
        await sleep(wait * 1000);
        const again = await post(s.gw, 'chat/completions', chat('fast', 'again'), { key: secrets.app });
        assert.equal(again.status, 200, again.text);
    });

    test('a reload keeps the counters and applies a changed limit at once', async () => {
        window = 60;
        const seen0 = s.gw.stderrLines.length;
        await s.gw.reload(s.config());
        await s.gw.waitForLine(/config reloaded/, { from: seen0 });
        // The window length changed: counting starts afresh under the one-minute window.
        for (let i = 0; i < 3; i++)
            assert.equal((await post(s.gw, 'chat/completions', chat('fast', `r ${i}`), { key: secrets.app })).status, 200);
        assert.equal((await post(s.gw, 'chat/completions', chat('fast', 'r over'), { key: secrets.app })).status, 429);
        // Raise the limit to 5: the 3 already made still count, so exactly 2 more get in.
        const seen = s.gw.stderrLines.length;
        await s.gw.reload(s.config({ configTransform: (cfg) => ({
            ...cfg, limits: { window_seconds: 60 },
            keys: [{ name: 'app', key_sha256: sha256hex(secrets.app), rpm: 5, tpm: 100000 }, { name: 'ops', key: '${OPS_KEY}' }],
        }) }));
        await s.gw.waitForLine(/config reloaded/, { from: seen });
        const statuses = [];
        for (let i = 0; i < 4; i++)
            statuses.push((await post(s.gw, 'chat/completions', chat('fast', `r2 ${i}`), { key: secrets.app })).status);
        assert.deepEqual(statuses, [200, 200, 429, 429]);
        // Lower it to 1: refused at once.
        const seen2 = s.gw.stderrLines.length;
        await s.gw.reload(s.config({ configTransform: (cfg) => ({
            ...cfg, limits: { window_seconds: 60 },
            keys: [{ name: 'app', key_sha256: sha256hex(secrets.app), rpm: 1 }, { name: 'ops', key: '${OPS_KEY}' }],
        }) }));
        await s.gw.waitForLine(/config reloaded/, { from: seen2 });
        const r = await post(s.gw, 'chat/completions', chat('fast', 'lowered'), { key: secrets.app });
        assert.equal(r.status, 429);
        assertRateHeaders(r, 'requests', { limit: 1, remaining: 0 });
    });
});
