// basics: non-stream chat, legacy completions, embeddings, model list, health endpoints, response
// headers (request id, provider, upstream model, cache, cost), what goes upstream (model name,
// provider key instead of the client's key, parameters), and provider/model direct addressing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
    assertOpenAIError, chat, mockReplyPrefix, post, recordedHeader, request, startStack,
} from '../lib/harness.mjs';

describe('basics', { timeout: 60000 }, () => {
    let s;
    before(async () => {
        s = await startStack({
            models: {
                smart: { targets: [{ provider: 'mock', model: 'gpt-4o' }] },
                embed: { targets: [{ provider: 'mock', model: 'text-embedding-3-small' }] },
                instruct: { targets: [{ provider: 'mock', model: 'gpt-3.5-turbo-instruct' }] },
            },
            pricing: { 'gpt-4o': { input: 2.5, output: 10 } },
        });
    });
    after(async () => {
        if (!s) return;
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    test('non-stream chat completion is proxied and well-formed', async () => {
        const prompt = 'Hello there, basic test';
        const r = await post(s.gw, 'chat/completions', chat('fast', prompt), { key: s.secrets.ops });
        assert.equal(r.status, 200, r.text);
        assert.match(r.headers.get('content-type') || '', /application\/json/);
        const b = r.json;
        assert.equal(b.object, 'chat.completion');
        assert.equal(typeof b.id, 'string');
        assert.equal(typeof b.model, 'string');
        assert.equal(b.choices.length, 1);
        assert.equal(b.choices[0].index, 0);
        assert.equal(b.choices[0].message.role, 'assistant');
        assert.ok(b.choices[0].message.content.startsWith(mockReplyPrefix(prompt)), b.choices[0].message.content);
        assert.equal(b.choices[0].finish_reason, 'stop');
        assert.equal(b.usage.prompt_tokens, Math.ceil(prompt.length / 4));
        assert.equal(b.usage.completion_tokens, b.choices[0].message.content.split(/\s+/).filter(Boolean).length);
        assert.equal(b.usage.total_tokens, b.usage.prompt_tokens + b.usage.completion_tokens);
    });

    test('response headers: request id, provider, upstream model, cache, cost', async () => {
        const prompt = 'headers please';
        const r1 = await post(s.gw, 'chat/completions', chat('fast', prompt), { key: s.secrets.ops });
        const r2 = await post(s.gw, 'chat/completions', chat('fast', prompt), { key: s.secrets.ops });
        assert.equal(r1.status, 200, r1.text);
        assert.equal(r2.status, 200, r2.text);
        const id1 = r1.headers.get('x-sluice-request-id');
        const id2 = r2.headers.get('x-sluice-request-id');
        assert.ok(id1 && id1.length >= 8, `request id: ${id1}`);
        assert.notEqual(id1, id2, 'request ids are unique');
        assert.equal(r1.headers.get('x-sluice-provider'), 'mock');
        assert.equal(r1.headers.get('x-sluice-model'), 'gpt-4o-mini');
        assert.match(r1.headers.get('x-sluice-cache') || '', /^(hit|miss|skip)$/);
        const cost = r1.headers.get('x-sluice-cost-usd');
        assert.ok(cost !== null, 'x-sluice-cost-usd present on a non-stream response');
        const u = r1.json.usage;
        const expected = (u.prompt_tokens * 0.15 + u.completion_tokens * 0.60) / 1e6;
        assert.ok(Number.isFinite(Number(cost)), `cost is a number: ${cost}`);
        assert.ok(Math.abs(Number(cost) - expected) <= Math.max(1e-9, expected * 0.01),
            `cost ${cost} ≈ ${expected} (pricing gpt-4o-mini 0.15/0.60 per M)`);
    });

    test('upstream receives the upstream model, the provider key and the client parameters', async () => {
        const marker = `param-check-${Date.now()}`;
        const body = {
            model: 'fast',
            messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: marker }],
            temperature: 0.3,
            max_tokens: 50,
            top_p: 0.9,
            user: 'user-42',
            seed: 7,
        };
        const r = await post(s.gw, 'chat/completions', body, { key: s.secrets.ops });
        assert.equal(r.status, 200, r.text);
        const up = await s.mock.findRequest((q) => JSON.stringify(q.body).includes(marker));
        assert.equal(up.method, 'POST');
        assert.match(up.path, /^\/v1\/chat\/completions(\?|$)/);
        assert.equal(up.body.model, 'gpt-4o-mini');
        assert.deepEqual(up.body.messages, body.messages);
        assert.equal(up.body.temperature, 0.3);
        assert.equal(up.body.max_tokens, 50);
        assert.equal(up.body.top_p, 0.9);
        assert.equal(up.body.seed, 7);
        assert.equal(recordedHeader(up, 'authorization'), `Bearer ${s.secrets.mockKey}`,
            'the provider api_key (not the client key) goes upstream');
        assert.ok(!JSON.stringify(up.headers).includes(s.secrets.ops), 'the client secret is not forwarded upstream');
    });

    test('content parts are accepted', async () => {
        const body = {
            model: 'fast',
            messages: [{ role: 'user', content: [{ type: 'text', text: 'parts hello' }] }],
        };
        const r = await post(s.gw, 'chat/completions', body, { key: s.secrets.ops });
        assert.equal(r.status, 200, r.text);
        assert.equal(typeof r.json.choices[0].message.content, 'string');
    });

    test('multi-turn conversation with tool results is forwarded intact', async () => {
        const marker = `turns-${Date.now()}`;
        const body = {
            model: 'fast',
            messages: [
                { role: 'user', content: 'weather?' },
                { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
                { role: 'tool', tool_call_id: 'call_1', content: '{"temp":21}' },
                { role: 'user', content: marker },
            ],
        };
        const r = await post(s.gw, 'chat/completions', body, { key: s.secrets.ops });
        assert.equal(r.status, 200, r.text);
        const up = await s.mock.findRequest((q) => JSON.stringify(q.body).includes(marker));
        assert.deepEqual(up.body.messages, body.messages);
    });

    test('provider/model addresses a provider model directly', async () => {
        const marker = `direct-${Date.now()}`;
        const r = await post(s.gw, 'chat/completions', chat('mock/gpt-4o', marker), { key: s.secrets.ops });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers.get('x-sluice-provider'), 'mock');
        assert.equal(r.headers.get('x-sluice-model'), 'gpt-4o');
        const up = await s.mock.findRequest((q) => JSON.stringify(q.body).includes(marker));
        assert.equal(up.body.model, 'gpt-4o');
        // gpt-4o is priced at 2.5/10 per M
        const u = r.json.usage;
        const expected = (u.prompt_tokens * 2.5 + u.completion_tokens * 10) / 1e6;
        const cost = Number(r.headers.get('x-sluice-cost-usd'));
        assert.ok(Math.abs(cost - expected) <= Math.max(1e-9, expected * 0.01), `cost ${cost} ≈ ${expected}`);
    });

    test('legacy completions endpoint', async () => {
        const marker = `complete-${Date.now()}`;
        const r = await post(s.gw, 'completions', { model: 'instruct', prompt: marker, max_tokens: 20 }, { key: s.secrets.ops });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.object, 'text_completion');
        assert.equal(typeof r.json.choices[0].text, 'string');
        assert.ok(r.json.choices[0].text.length > 0);
        assert.equal(r.headers.get('x-sluice-model'), 'gpt-3.5-turbo-instruct');
        assert.ok(r.headers.get('x-sluice-request-id'));
        const up = await s.mock.findRequest((q) => JSON.stringify(q.body).includes(marker));
        assert.match(up.path, /^\/v1\/completions(\?|$)/);
        assert.equal(up.body.model, 'gpt-3.5-turbo-instruct');
        assert.equal(up.body.prompt, marker);
    });

    test('embeddings: single input, default dimensions, deterministic', async () => {
        const r1 = await post(s.gw, 'embeddings', { model: 'embed', input: 'the quick brown fox' }, { key: s.secrets.ops });
        const r2 = await post(s.gw, 'embeddings', { model: 'embed', input: 'the quick brown fox' }, { key: s.secrets.ops });
        assert.equal(r1.status, 200, r1.text);
        assert.equal(r1.json.object, 'list');
        assert.equal(r1.json.data.length, 1);
        assert.equal(r1.json.data[0].object, 'embedding');
        assert.equal(r1.json.data[0].index, 0);
        const v = r1.json.data[0].embedding;
        assert.equal(v.length, 64);
        assert.ok(v.every((x) => typeof x === 'number' && Number.isFinite(x)));
        assert.deepEqual(r2.json.data[0].embedding, v, 'same input → same vector');
        assert.equal(r1.headers.get('x-sluice-provider'), 'mock');
        assert.equal(r1.headers.get('x-sluice-model'), 'text-embedding-3-small');
        const up = await s.mock.findRequest((q) => q.path.startsWith('/v1/embeddings'));
        assert.equal(up.body.model, 'text-embedding-3-small');
    });

    test('embeddings: batch input and dimensions', async () => {
        const r = await post(s.gw, 'embeddings', { model: 'embed', input: ['alpha', 'beta'], dimensions: 16 }, { key: s.secrets.ops });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.data.length, 2);
        assert.deepEqual(r.json.data.map((d) => d.index).sort(), [0, 1]);
        for (const d of r.json.data) assert.equal(d.embedding.length, 16);
        assert.notDeepEqual(r.json.data[0].embedding, r.json.data[1].embedding);
        assert.equal(typeof r.json.usage?.prompt_tokens, 'number');
    });

    test('GET /v1/models lists the configured models', async () => {
        const r = await request(`${s.gw.base}/models`, { key: s.secrets.ops });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.object, 'list');
        const ids = r.json.data.map((m) => m.id);
        for (const id of ['fast', 'smart', 'embed', 'instruct']) assert.ok(ids.includes(id), `models list has ${id}: ${ids}`);
        for (const m of r.json.data) assert.equal(m.object, 'model');
    });

    test('healthz and readyz answer 200 without a key', async () => {
        const h = await request(`${s.gw.url}/healthz`);
        assert.equal(h.status, 200);
        const rd = await request(`${s.gw.url}/readyz`);
        assert.equal(rd.status, 200);
    });

    test('unknown model is 404 model_not_found (sanity check of the error path)', async () => {
        const r = await post(s.gw, 'chat/completions', chat('no-such-model', 'hi'), { key: s.secrets.ops });
        assert.equal(r.status, 404, r.text);
        assertOpenAIError(r.json, { code: 'model_not_found' });
    });

    test('keep-alive: many sequential requests on one client', async () => {
        for (let i = 0; i < 20; i++) {
            const r = await post(s.gw, 'chat/completions', chat('fast', `seq ${i}`), { key: s.secrets.ops });
            assert.equal(r.status, 200, r.text);
            assert.ok(r.json.choices[0].message.content.startsWith(mockReplyPrefix(`seq ${i}`)));
        }
    });
});
