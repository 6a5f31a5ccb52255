// errors: every error the gateway produces or relays has the OpenAI shape
// {"error":{"message","type","param","code"}} and the exact status: 400 (malformed JSON, missing or
// ill-typed fields, JSON nested deeper than max_json_depth), 404 (unknown model → model_not_found,
// unknown path), 413 (body over max_body_bytes), 502 (upstream refused), 504 (upstream first-byte
// timeout, hang), upstream 4xx/5xx passed through with the same status. The provider api_key never
// appears in an error body.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
    assertOpenAIError, chat, closedPort, post, rawRequest, request, startStack, streamRequest,
} from '../lib/harness.mjs';

const MAX_BODY = 1048576;

describe('errors', { timeout: 120000 }, () => {
    let s;
    const bodies = []; // every error body seen, checked for the provider key at the end
    const seen = (r) => { bodies.push(r.text ?? r.body ?? ''); return r; };

    before(async () => {
        const deadPort = await closedPort();
        s = await startStack({
            server: { max_body_bytes: MAX_BODY, max_json_depth: 64 },
            providers: {
                dead: { type: 'openai-compatible', base_url: `http://127.0.0.1:${deadPort}/v1`, api_key: '${MOCK_KEY}', timeouts: { connect_ms: 1000, first_byte_ms: 2000, idle_ms: 2000, total_ms: 10000 } },
            },
            models: {
                down: { targets: [{ provider: 'dead', model: 'gpt-4o-mini' }] },
                broken: { targets: [{ provider: 'mock', model: 'gpt-4o@status=500' }] },
                overloaded: { targets: [{ provider: 'mock', model: 'gpt-4o@status=503' }] },
                sleepy: { targets: [{ provider: 'mock', model: 'gpt-4o@delay_ms=5000' }] },
            },
            timeouts: { first_byte_ms: 1500, idle_ms: 1500 },
        });
    });
    after(async () => {
        if (!s) return;
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    const chatPost = (body, opts = {}) => post(s.gw, 'chat/completions', body, { key: s.secrets.ops, ...opts }).then(seen);

    describe('400 bad request', () => {
        const cases = [
            ['malformed JSON', '{"model": "fast", "messages": ['],
            ['empty body', ''],
            ['JSON array instead of object', '[1,2,3]'],
            ['JSON string instead of object', '"hello"'],
            ['trailing garbage', '{"model":"fast","messages":[{"role":"user","content":"hi"}]} xyz'],
            ['messages missing', { model: 'fast' }],
            ['messages not an array', { model: 'fast', messages: 'hello' }],
            ['messages an object', { model: 'fast', messages: { role: 'user', content: 'hi' } }],
            ['model missing', { messages: [{ role: 'user', content: 'hi' }] }],
            ['model not a string', { model: 123, messages: [{ role: 'user', content: 'hi' }] }],
            ['model null', { model: null, messages: [{ role: 'user', content: 'hi' }] }],
            ['stream not a bool', { model: 'fast', stream: 'yes', messages: [{ role: 'user', content: 'hi' }] }],
            ['message not an object', { model: 'fast', messages: ['hi'] }],
        ];
        for (const [name, body] of cases) {
            test(name, async () => {
                const r = await chatPost(body);
                assert.equal(r.status, 400, `${name}: ${r.status} ${r.text}`);
                assert.match(r.headers.get('content-type') || '', /application\/json/);
                assertOpenAIError(r.json, {}, name);
            });
        }

        test('JSON nested deeper than max_json_depth', async () => {
            let deep = '"x"';
            for (let i = 0; i < 200; i++) deep = `[${deep}]`;
            const text = `{"model":"fast","messages":[{"role":"user","content":"hi"}],"x_deep":${deep}}`;
            const r = await chatPost(text);
            assert.equal(r.status, 400, r.text);
            assertOpenAIError(r.json);
        });

        test('deep objects (not arrays) beyond max_json_depth', async () => {
            let deep = '1';
            for (let i = 0; i < 100; i++) deep = `{"a":${deep}}`;
            const r = await chatPost(`{"model":"fast","messages":[{"role":"user","content":"hi"}],"x_deep":${deep}}`);
            assert.equal(r.status, 400, r.text);
            assertOpenAIError(r.json);
        });

        test('nesting well within max_json_depth is accepted', async () => {
            let deep = '1';
            for (let i = 0; i < 40; i++) deep = `{"a":${deep}}`;
            const r = await chatPost(`{"model":"fast","messages":[{"role":"user","content":"hi"}],"metadata_x":${deep}}`);
            assert.equal(r.status, 200, r.text);
        });

        test('extremely deep nesting does not crash the gateway', async () => {
            const n = 100000;
            const text = `{"model":"fast","messages":[{"role":"user","content":"hi"}],"x":${'['.repeat(n)}${']'.repeat(n)}}`;
            const r = await chatPost(text);
            assert.equal(r.status, 400, r.text.slice(0, 300));
            assertOpenAIError(r.json);
            const h = await request(`${s.gw.url}/healthz`);
            assert.equal(h.status, 200);
        });

        test('embeddings without input', async () => {
            const r = await post(s.gw, 'embeddings', { model: 'fast' }, { key: s.secrets.ops }).then(seen);
            assert.equal(r.status, 400, r.text);
            assertOpenAIError(r.json);
        });

        test('completions with malformed JSON', async () => {
            const r = await post(s.gw, 'completions', '{"model":', { key: s.secrets.ops }).then(seen);
            assert.equal(r.status, 400, r.text);
            assertOpenAIError(r.json);
        });
    });

    describe('404 not found', () => {
        test('unknown model → model_not_found', async () => {
            const r = await chatPost(chat('does-not-exist', 'hi'));
            assert.equal(r.status, 404, r.text);
            const e = assertOpenAIError(r.json, { code: 'model_not_found' });
            assert.ok(e.message.includes('does-not-exist'), `message names the model: ${e.message}`);
        });

        test('unknown provider in provider/model → model_not_found', async () => {
            const r = await chatPost(chat('nosuchprovider/gpt-4o', 'hi'));
            assert.equal(r.status, 404, r.text);
            assertOpenAIError(r.json, { code: 'model_not_found' });
        });

        test('unknown model on embeddings and completions', async () => {
            const e = await post(s.gw, 'embeddings', { model: 'nope', input: 'x' }, { key: s.secrets.ops }).then(seen);
            assert.equal(e.status, 404, e.text);
            assertOpenAIError(e.json, { code: 'model_not_found' });
            const c = await post(s.gw, 'completions', { model: 'nope', prompt: 'x' }, { key: s.secrets.ops }).then(seen);
            assert.equal(c.status, 404, c.text);
            assertOpenAIError(c.json, { code: 'model_not_found' });
        });

        for (const [method, p] of [['GET', '/v1/nope'], ['POST', '/v1/nope'], ['GET', '/nope'], ['POST', '/v2/chat/completions'], ['GET', '/v1/chat/completions/extra']]) {
            test(`unknown path ${method} ${p}`, async () => {
                const r = await request(`${s.gw.url}${p}`, { method, key: s.secrets.ops, body: method === 'POST' ? {} : undefined }).then(seen);
                assert.equal(r.status, 404, r.text);
                assertOpenAIError(r.json);
            });
        }

        test('wrong method on a known path is an OpenAI-shaped 404/405', async () => {
            const r = await request(`${s.gw.base}/chat/completions`, { method: 'GET', key: s.secrets.ops }).then(seen);
            assert.ok([404, 405].includes(r.status), `status ${r.status}`);
            assertOpenAIError(r.json);
        });
    });

    describe('413 too large', () => {
        test('body over max_body_bytes', async () => {
            const big = 'a'.repeat(MAX_BODY + 100000);
            const r = await rawRequest(s.gw.port, {
                method: 'POST', path: '/v1/chat/completions', key: s.secrets.ops,
                body: JSON.stringify(chat('fast', big)),
            });
            seen(r);
            assert.equal(r.status, 413, `status ${r.status}: ${r.body.slice(0, 300)}`);
            assertOpenAIError(r.json);
        });

        test('body just under max_body_bytes is accepted', async () => {
            const text = 'b '.repeat(Math.floor((MAX_BODY - 2000) / 2));
            const r = await chatPost(chat('fast', text));
            assert.equal(r.status, 200, r.text.slice(0, 300));
        });

        test('still healthy after the oversized body', async () => {
            const r = await chatPost(chat('fast', 'small again'));
            assert.equal(r.status, 200, r.text);
        });
    });

    describe('upstream failures', () => {
        test('502 when the provider refuses connections', async () => {
            const r = await chatPost(chat('down', 'hi'));
            assert.equal(r.status, 502, r.text);
            assertOpenAIError(r.json);
        });

        test('502 for a stream when the provider refuses connections', async () => {
            const r = await streamRequest(`${s.gw.base}/chat/completions`, chat('down', 'hi', { stream: true }), { key: s.secrets.ops });
            bodies.push(r.text);
            assert.equal(r.status, 502, r.text);
            assertOpenAIError(r.json);
        });

        test('504 when the upstream is slower than first_byte_ms (delay_ms)', async () => {
            const t0 = Date.now();
            const r = await chatPost(chat('fast', 'slow @mock delay_ms=5000'));
            const ms = Date.now() - t0;
            assert.equal(r.status, 504, r.text);
            assertOpenAIError(r.json);
            assert.ok(ms >= 1000 && ms < 4500, `timed out after ~first_byte_ms (1500), took ${ms} ms`);
        });

        test('504 via a config target model with @delay_ms', async () => {
            const r = await chatPost(chat('sleepy', 'hi'));
            assert.equal(r.status, 504, r.text);
            assertOpenAIError(r.json);
        });

        test('504 when the upstream hangs', async () => {
            const t0 = Date.now();
            const r = await chatPost(chat('fast', 'hang @mock hang=1'));
            assert.equal(r.status, 504, r.text);
            assertOpenAIError(r.json);
            assert.ok(Date.now() - t0 < 4500);
        });

        test('504 for a stream whose upstream hangs', async () => {
            const r = await streamRequest(`${s.gw.base}/chat/completions`, chat('fast', 'hang @mock hang=1', { stream: true }), { key: s.secrets.ops });
            bodies.push(r.text);
            assert.equal(r.status, 504, r.text);
            assertOpenAIError(r.json);
        });

        for (const status of [400, 401, 403, 404, 422, 429, 500, 503]) {
            test(`upstream ${status} is passed through`, async () => {
                const r = await chatPost(chat('fast', `pass @mock status=${status}`));
                assert.equal(r.status, status, r.text);
                assertOpenAIError(r.json, {}, `upstream ${status}`);
            });
        }

        test('upstream 429 with retry_after keeps a retry-after header', async () => {
            const r = await chatPost(chat('fast', 'limit @mock status=429 retry_after=7'));
            assert.equal(r.status, 429, r.text);
            assertOpenAIError(r.json);
            assert.equal(r.headers.get('retry-after'), '7');
        });

        test('upstream 500 via the config target model name (model@status=500)', async () => {
            const r = await chatPost(chat('broken', 'hi'));
            assert.equal(r.status, 500, r.text);
            assertOpenAIError(r.json);
            const r2 = await chatPost(chat('overloaded', 'hi'));
            assert.equal(r2.status, 503, r2.text);
            assertOpenAIError(r2.json);
        });

        test('upstream error on embeddings is passed through', async () => {
            const r = await post(s.gw, 'embeddings', { model: 'mock/emb@status=500', input: 'x' }, { key: s.secrets.ops }).then(seen);
            assert.equal(r.status, 500, r.text);
            assertOpenAIError(r.json);
        });

        test('the gateway is healthy after all the failures', async () => {
            const r = await chatPost(chat('fast', 'still alive?'));
            assert.equal(r.status, 200, r.text);
        });
    });

    test('no error body contains the provider api_key', () => {
        assert.ok(bodies.length > 20, `collected ${bodies.length} error bodies`);
        for (const b of bodies) assert.ok(!b.includes(s.secrets.mockKey), `provider key leaked in: ${b.slice(0, 300)}`);
    });
});
