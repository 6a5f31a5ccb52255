// providers-gemini: the gemini adapter through the real binary against sluice-mock's Gemini API
// (the mock requires the provider key). Asserts the exact upstream request (generateContent /
// streamGenerateContent?alt=sse paths, x-goog-api-key and no key in the URL, systemInstruction,
// generationConfig, functionDeclarations, functionCall/functionResponse round trip), the
// OpenAI-form answer, streams, error mapping (RESOURCE_EXHAUSTED → 429 with RetryInfo's delay as
// retry-after, 401, 400, 503, in-stream error), embeddings (batchEmbedContents), direct naming,
// the access log, client disconnects and that no key appears in the gateway's output.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
    assembleChat, assertOpenAIError, chat, mockReplyPrefix, post, recordedHeader, secret, streamRequest,
} from '../lib/harness.mjs';
import {
    assertNoSecretsLogged, checkChatStream, hangUpMidStream, mockPromptTokens, startProviderGateway,
} from './providers-lib.mjs';

const weatherTool = {
    type: 'function',
    function: {
        name: 'get_weather', description: 'Current weather for a city',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
    },
};

describe('gemini provider', { timeout: 90000 }, () => {
    let s;
    const bodies = [];
    const wrongKey = secret('AIza-wrong');
    const send = async (body) => {
        const r = await post(s.gw, 'chat/completions', body, { key: s.secrets.ops });
        bodies.push(r.text);
        return r;
    };
    const findGemini = (text) => s.mock.findRequest((q) => q.body?.contents?.[0]?.parts?.[0]?.text === text);
    before(async () => {
        const providerKey = secret('AIza-provider');
        s = await startProviderGateway({
            secrets: { provider: providerKey },
            mockOpts: { requireKey: providerKey },
            providers: (mockPort) => ({
                gem: { type: 'gemini', base_url: `http://127.0.0.1:${mockPort}`, api_key: '${PROVIDER_KEY}' },
                gem_v1beta: { type: 'gemini', base_url: `http://127.0.0.1:${mockPort}/v1beta`, api_key: '${PROVIDER_KEY}' },
                gem_badkey: { type: 'gemini', base_url: `http://127.0.0.1:${mockPort}`, api_key: '${WRONG_KEY}' },
            }),
            models: {
                gemini: { targets: [{ provider: 'gem', model: 'gemini-2.5-flash' }] },
                'gemini-prefixed': { targets: [{ provider: 'gem', model: 'models/gemini-2.5-pro' }] },
                'gemini-badkey': { targets: [{ provider: 'gem_badkey', model: 'gemini-2.5-flash' }] },
                'gemini-embed': { targets: [{ provider: 'gem', model: 'text-embedding-004' }] },
            },
            env: { WRONG_KEY: wrongKey },
        });
    });
    after(async () => {
        if (!s) return;
        assertNoSecretsLogged(s.gw, [s.secrets.provider, wrongKey]);
        for (const text of bodies) {
            assert.ok(!text.includes(s.secrets.provider) && !text.includes(wrongKey), 'no provider key in a reply');
        }
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    test('chat: upstream request (path, x-goog-api-key, systemInstruction, generationConfig) and answer', async () => {
        const system = 'You are terse.';
        const prompt = 'hello gemini';
        const r = await send({
            model: 'gemini', temperature: 0.25, top_p: 0.9, max_tokens: 300, stop: ['END'], seed: 7,
            messages: [{ role: 'system', content: system }, { role: 'user', content: prompt }],
        });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.object, 'chat.completion');
        assert.equal(r.json.model, 'gemini-2.5-flash', 'the model that answered');
        assert.ok(r.json.choices[0].message.content.startsWith(mockReplyPrefix(prompt)), r.json.choices[0].message.content);
        assert.equal(r.json.choices[0].finish_reason, 'stop');
        const prompted = mockPromptTokens(system, prompt);
        assert.deepEqual(r.json.usage, {
            prompt_tokens: prompted, completion_tokens: 20, total_tokens: prompted + 20,
            prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 },
        });

        const up = await findGemini(prompt);
        assert.equal(up.method, 'POST');
        assert.equal(up.path, '/v1beta/models/gemini-2.5-flash:generateContent', 'no key in the URL');
        assert.equal(recordedHeader(up, 'x-goog-api-key'), s.secrets.provider);
        assert.equal(recordedHeader(up, 'authorization'), undefined);
        assert.deepEqual(up.body, {
            contents: [{ role: 'user', parts: [{ text: prompt }] }],
            systemInstruction: { parts: [{ text: system }] },
            generationConfig: { temperature: 0.25, topP: 0.9, maxOutputTokens: 300, stopSequences: ['END'], seed: 7 },
        });
    });

    test('model given with models/ prefix; direct provider/model naming', async () => {
        const r1 = await send(chat('gemini-prefixed', 'prefixed model'));
        assert.equal(r1.status, 200, r1.text);
        assert.equal((await findGemini('prefixed model')).path, '/v1beta/models/gemini-2.5-pro:generateContent');
        const r2 = await send(chat('gem/gemini-2.0-flash-lite', 'direct naming'));
        assert.equal(r2.status, 200, r2.text);
        assert.equal((await findGemini('direct naming')).path, '/v1beta/models/gemini-2.0-flash-lite:generateContent');
    });

    test('a base_url that already names the API version is used as is', async () => {
        const r = await send(chat('gem_v1beta/gemini-2.5-flash', 'versioned base url'));
        assert.equal(r.status, 200, r.text);
        assert.equal((await findGemini('versioned base url')).path, '/v1beta/models/gemini-2.5-flash:generateContent');
    });

    test('function call, then the functionResponse round trip', async () => {
        const messages = [{ role: 'user', content: 'What is the weather in Paris' }];
        const r = await send({ model: 'gemini', tools: [weatherTool], tool_choice: 'required', messages });
        assert.equal(r.status, 200, r.text);
        const choice = r.json.choices[0];
        assert.equal(choice.finish_reason, 'tool_calls', 'STOP after a function call → tool_calls');
        const call = choice.message.tool_calls[0];
        assert.match(call.id, /^call_/);
        assert.equal(call.type, 'function');
        assert.equal(call.function.name, 'get_weather');
        assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });

        const up1 = await findGemini(messages[0].content);
        assert.deepEqual(up1.body.tools, [{
            functionDeclarations: [{
                name: 'get_weather', description: 'Current weather for a city',
                parametersJsonSchema: weatherTool.function.parameters,
            }],
        }]);
        assert.deepEqual(up1.body.toolConfig, { functionCallingConfig: { mode: 'ANY' } });

        const r2 = await send({
            model: 'gemini', tools: [weatherTool],
            messages: [...messages, choice.message, { role: 'tool', tool_call_id: call.id, content: '{"temp_c":18}' }],
        });
        assert.equal(r2.status, 200, r2.text);
        assert.equal(r2.json.choices[0].finish_reason, 'stop');
        assert.ok(r2.json.choices[0].message.content.startsWith('mock reply to: '));
        const up2 = await s.mock.findRequest((q) => q.body?.contents?.length === 3);
        assert.deepEqual(up2.body.contents.slice(1), [
            { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } } }] },
            { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { temp_c: 18 } } }] },
        ]);
    });

    test('stream: alt=sse, text chunks in order, usage chunk only when asked, [DONE]', async () => {
        const text = 'stream gemini please @mock chunks=5';
        const plain = await streamRequest(`${s.gw.base}/chat/completions`, chat('gemini', text, { stream: true }),
            { key: s.secrets.ops });
        const a = checkChatStream(plain, { wantUsage: false });
        assert.ok(a.content.startsWith(mockReplyPrefix(text)), a.content);
        assert.equal(a.finish[0], 'stop');
        assert.equal(plain.events.filter((ev) => ev.json?.choices?.[0]?.delta?.content).length, 5);
        const up = await findGemini(text);
        assert.equal(up.path, '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse');
        assert.equal(recordedHeader(up, 'x-goog-api-key'), s.secrets.provider);

        const counted = await streamRequest(`${s.gw.base}/chat/completions`,
            chat('gemini', text, { stream: true, stream_options: { include_usage: true } }), { key: s.secrets.ops });
        const b = checkChatStream(counted, { wantUsage: true });
        assert.equal(b.content, a.content);
        assert.equal(b.usage[0].usage.prompt_tokens, mockPromptTokens(text));
        assert.equal(b.usage[0].usage.completion_tokens, 20, 'cumulative usageMetadata is not added up');
    });

    test('streamed function call: one call, valid JSON arguments, finish tool_calls', async () => {
        const r = await streamRequest(`${s.gw.base}/chat/completions`, {
            model: 'gemini', stream: true, stream_options: { include_usage: true }, tools: [weatherTool],
            messages: [{ role: 'user', content: 'weather in Lisbon' }],
        }, { key: s.secrets.ops });
        const a = checkChatStream(r, { wantUsage: true });
        assert.equal(a.finish[0], 'tool_calls');
        assert.equal(a.tools.length, 1);
        assert.match(a.tools[0].id, /^call_/);
        assert.equal(a.tools[0].name, 'get_weather');
        assert.deepEqual(JSON.parse(a.tools[0].arguments), { city: 'Lisbon' });
    });

    test('errors: RESOURCE_EXHAUSTED → 429 with retry-after, 400, 503, wrong key → 401', async () => {
        const r429 = await send(chat('gemini', 'fail @mock status=429'));
        assert.equal(r429.status, 429, r429.text);
        assertOpenAIError(r429.json, { type: 'rate_limit_error', code: 'RESOURCE_EXHAUSTED' });
        assert.equal(r429.headers.get('retry-after'), '1', 'RetryInfo.retryDelay "1s" → retry-after: 1');
        for (const [directive, status, type, code] of [
            ['status=400', 400, 'invalid_request_error', 'INVALID_ARGUMENT'],
            ['status=503', 503, 'api_error', 'UNAVAILABLE'],
        ]) {
            const r = await send(chat('gemini', `fail @mock ${directive}`));
            assert.equal(r.status, status, r.text);
            assertOpenAIError(r.json, { type, code }, directive);
            assert.match(r.json.error.message, /^gemini: /);
        }
        const bad = await send(chat('gemini-badkey', 'wrong key'));
        assert.equal(bad.status, 401, bad.text);
        assertOpenAIError(bad.json, { type: 'authentication_error' });
    });

    test('in-stream error → one OpenAI error event, no [DONE]', async () => {
        const r = await streamRequest(`${s.gw.base}/chat/completions`,
            chat('gemini', 'fail midway @mock chunks=4 error_after=2', { stream: true }), { key: s.secrets.ops });
        assert.equal(r.status, 200);
        assert.equal(r.done, false);
        const a = assembleChat(r.events);
        assert.equal(a.errors.length, 1);
        assert.ok(r.events.at(-1).json.error);
        assert.ok(a.content.length > 0);
    });

    test('embeddings via batchEmbedContents: several inputs, dimensions, base64', async () => {
        const r = await post(s.gw, 'embeddings', { model: 'gemini-embed', input: ['alpha', 'beta'], dimensions: 8 },
            { key: s.secrets.ops });
        bodies.push(r.text);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.object, 'list');
        assert.deepEqual(r.json.data.map((d) => d.index), [0, 1]);
        for (const d of r.json.data) {
            assert.equal(d.embedding.length, 8);
            const norm = Math.sqrt(d.embedding.reduce((n, x) => n + x * x, 0));
            assert.ok(Math.abs(norm - 1) < 1e-3, `unit vector (${norm})`);
        }
        const up = await s.mock.findRequest((q) => Array.isArray(q.body?.requests));
        assert.equal(up.path, '/v1beta/models/text-embedding-004:batchEmbedContents');
        assert.equal(recordedHeader(up, 'x-goog-api-key'), s.secrets.provider);
        assert.deepEqual(up.body.requests, [
            { model: 'models/text-embedding-004', content: { parts: [{ text: 'alpha' }] }, outputDimensionality: 8 },
            { model: 'models/text-embedding-004', content: { parts: [{ text: 'beta' }] }, outputDimensionality: 8 },
        ]);
        const b64 = await post(s.gw, 'embeddings', { model: 'gemini-embed', input: 'alpha', dimensions: 8, encoding_format: 'base64' },
            { key: s.secrets.ops });
        assert.equal(b64.status, 200, b64.text);
        const raw = Buffer.from(b64.json.data[0].embedding, 'base64');
        const floats = Array.from({ length: raw.length / 4 }, (_, i) => raw.readFloatLE(i * 4));
        assert.equal(floats.length, 8);
        r.json.data[0].embedding.forEach((x, i) => assert.ok(Math.abs(x - floats[i]) < 1e-6));
    });

    test('access log: provider, upstream_model and tokens (stream)', async () => {
        const text = 'log me gemini';
        const r = await streamRequest(`${s.gw.base}/chat/completions`, chat('gemini', text, { stream: true }), { key: s.secrets.ops });
        assert.equal(r.status, 200);
        const entry = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
        assert.equal(entry.provider, 'gem');
        assert.equal(entry.upstream_model, 'gemini-2.5-flash');
        assert.equal(entry.stream, true);
        assert.equal(entry.prompt_tokens, mockPromptTokens(text));
        assert.equal(entry.completion_tokens, 20);
        assert.equal(entry.total_tokens, mockPromptTokens(text) + 20);
    });

    test('client disconnect mid-stream closes the upstream stream', async () => {
        const { openDuring } = await hangUpMidStream(s, 'gemini');
        assert.equal(openDuring, 1);
        const r = await send(chat('gemini', 'after the disconnect'));
        assert.equal(r.status, 200);
    });
});
