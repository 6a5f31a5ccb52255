// providers-anthropic: the anthropic adapter through the real binary against sluice-mock's
// Messages API. Asserts the exact upstream request the mock recorded (path, x-api-key,
// anthropic-version, translated body), the OpenAI-form answer the client gets, streams (text and
// tool-call deltas, usage chunk only when asked), error mapping (529 → 503, 429 with retry-after,
// 401, 400, in-stream error), direct provider/model naming, the access log, client disconnects,
// and that the provider key never shows up in the gateway's output.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
    assembleChat, assertOpenAIError, chat, mockReplyPrefix, post, recordedHeader, streamRequest,
} from '../lib/harness.mjs';
import {
    assertNoSecretsLogged, checkChatStream, hangUpMidStream, mockPromptTokens, startProviderGateway,
} from './providers-lib.mjs';

const weatherTool = {
    type: 'function',
    function: {
        name: 'get_weather', description: 'Current weather for a city',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
};

describe('anthropic provider', { timeout: 90000 }, () => {
    let s;
    const bodies = [];
    const send = async (body) => {
        const r = await post(s.gw, 'chat/completions', body, { key: s.secrets.ops });
        bodies.push(r.text);
        return r;
    };
    before(async () => {
        s = await startProviderGateway({
            providers: (mockPort) => ({
                anth: { type: 'anthropic', base_url: `http://127.0.0.1:${mockPort}`, api_key: '${PROVIDER_KEY}' },
                anth_v1: { type: 'anthropic', base_url: `http://127.0.0.1:${mockPort}/v1`, api_key: '${PROVIDER_KEY}' },
                anth_old: {
                    type: 'anthropic', base_url: `http://127.0.0.1:${mockPort}`, api_key: '${PROVIDER_KEY}',
                    anthropic_version: '2023-01-01', default_max_tokens: 123,
                },
            }),
            models: {
                claude: { targets: [{ provider: 'anth', model: 'claude-sonnet-4-5' }] },
                'claude-old': { targets: [{ provider: 'anth_old', model: 'claude-3-haiku' }] },
            },
        });
    });
    after(async () => {
        if (!s) return;
        assertNoSecretsLogged(s.gw, [s.secrets.provider]);
        for (const text of bodies) assert.ok(!text.includes(s.secrets.provider), 'no provider key in a reply');
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    test('chat: upstream request (path, headers, lifted system, max_tokens) and OpenAI answer', async () => {
        const system = 'You are terse.';
        const prompt = 'hello anthropic';
        const r = await send({
            model: 'claude', temperature: 0.25, top_p: 0.9, stop: ['END'], user: 'u-42',
            messages: [{ role: 'system', content: system }, { role: 'user', content: prompt }],
        });
        assert.equal(r.status, 200, r.text);
        const answer = r.json;
        assert.equal(answer.object, 'chat.completion');
        assert.equal(answer.model, 'claude-sonnet-4-5', 'the model that answered, as OpenAI pass-through replies report it');
        assert.equal(answer.choices[0].message.role, 'assistant');
        assert.ok(answer.choices[0].message.content.startsWith(mockReplyPrefix(prompt)), answer.choices[0].message.content);
        assert.equal(answer.choices[0].finish_reason, 'stop');
        assert.deepEqual(answer.usage, {
            prompt_tokens: mockPromptTokens(system, prompt), completion_tokens: 20, total_tokens: mockPromptTokens(system, prompt) + 20,
            prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 },
        });

        const up = await s.mock.findRequest((q) => q.body?.messages?.[0]?.content?.[0]?.text === prompt);
        assert.equal(up.method, 'POST');
        assert.equal(up.path, '/v1/messages');
        assert.equal(recordedHeader(up, 'x-api-key'), s.secrets.provider);
        assert.equal(recordedHeader(up, 'anthropic-version'), '2023-06-01');
        assert.equal(recordedHeader(up, 'authorization'), undefined, 'no Bearer to Anthropic');
        assert.deepEqual(up.body, {
            model: 'claude-sonnet-4-5',
            system: [{ type: 'text', text: system }],
            messages: [{ role: 'user', content: [{ type: 'text', text: prompt }] }],
            max_tokens: 4096, temperature: 0.25, top_p: 0.9, stop_sequences: ['END'], metadata: { user_id: 'u-42' },
        });
    });

    test('provider settings: anthropic_version and default_max_tokens; client max_tokens wins', async () => {
        const r1 = await send(chat('claude-old', 'old version'));
        assert.equal(r1.status, 200, r1.text);
        const up1 = await s.mock.findRequest((q) => q.body?.messages?.[0]?.content?.[0]?.text === 'old version');
        assert.equal(recordedHeader(up1, 'anthropic-version'), '2023-01-01');
        assert.equal(up1.body.max_tokens, 123);
        assert.equal(up1.body.model, 'claude-3-haiku');
        const r2 = await send(chat('claude-old', 'client max', { max_completion_tokens: 77 }));
        assert.equal(r2.status, 200, r2.text);
        const up2 = await s.mock.findRequest((q) => q.body?.messages?.[0]?.content?.[0]?.text === 'client max');
        assert.equal(up2.body.max_tokens, 77);
    });

    test('tool call, then the tool_result round trip', async () => {
        const messages = [{ role: 'user', content: 'What is the weather in Paris' }];
        const r = await send({ model: 'claude', tools: [weatherTool], tool_choice: 'required', messages });
        assert.equal(r.status, 200, r.text);
        const choice = r.json.choices[0];
        assert.equal(choice.finish_reason, 'tool_calls');
        assert.equal(choice.message.content, null);
        const call = choice.message.tool_calls[0];
        assert.equal(call.type, 'function');
        assert.match(call.id, /^toolu_/);
        assert.equal(call.function.name, 'get_weather');
        assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
        assert.ok(r.json.usage.completion_tokens > 0);

        const up1 = await s.mock.findRequest((q) => q.body?.messages?.[0]?.content?.[0]?.text === messages[0].content);
        assert.deepEqual(up1.body.tools, [{
            name: 'get_weather', description: 'Current weather for a city',
            input_schema: weatherTool.function.parameters,
        }]);
        assert.deepEqual(up1.body.tool_choice, { type: 'any' });

        const r2 = await send({
            model: 'claude', tools: [weatherTool],
            messages: [...messages, choice.message, { role: 'tool', tool_call_id: call.id, content: '18C and sunny' }],
        });
        assert.equal(r2.status, 200, r2.text);
        assert.equal(r2.json.choices[0].finish_reason, 'stop');
        assert.ok(r2.json.choices[0].message.content.startsWith(mockReplyPrefix('18C and sunny')));
        const up2 = await s.mock.findRequest((q) => q.body?.messages?.length === 3);
        assert.deepEqual(up2.body.messages.slice(1), [
            { role: 'assistant', content: [{ type: 'tool_use', id: call.id, name: 'get_weather', input: { city: 'Paris' } }] },
            { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: '18C and sunny' }] },
        ]);
    });

    test('stream: text chunks in order, usage chunk only when asked, [DONE]', async () => {
        const prompt = 'stream anthropic please';
        const plain = await streamRequest(`${s.gw.base}/chat/completions`,
            chat('claude', `${prompt} @mock chunks=6`, { stream: true }), { key: s.secrets.ops });
        const a = checkChatStream(plain, { wantUsage: false });
        assert.ok(a.content.startsWith(mockReplyPrefix(`${prompt} @mock chunks=6`)), a.content);
        assert.equal(a.finish[0], 'stop');
        const contentChunks = plain.events.filter((ev) => ev.json?.choices?.[0]?.delta?.content);
        assert.equal(contentChunks.length, 6, 'one OpenAI chunk per Anthropic text delta');
        const up = await s.mock.findRequest((q) => q.body?.stream === true);
        assert.equal(up.path, '/v1/messages');

        const counted = await streamRequest(`${s.gw.base}/chat/completions`,
            chat('claude', `${prompt} @mock chunks=6`, { stream: true, stream_options: { include_usage: true } }),
            { key: s.secrets.ops });
        const b = checkChatStream(counted, { wantUsage: true });
        assert.equal(b.content, a.content, 'same text with and without usage');
        const text = `${prompt} @mock chunks=6`;
        assert.equal(b.usage[0].usage.prompt_tokens, mockPromptTokens(text));
        assert.equal(b.usage[0].usage.completion_tokens, 20);
        assert.equal(b.usage[0].usage.prompt_tokens_details.cached_tokens, 0);
    });

    test('streamed tool call: deltas assemble into valid JSON arguments', async () => {
        const r = await streamRequest(`${s.gw.base}/chat/completions`, {
            model: 'claude', stream: true, stream_options: { include_usage: true }, tools: [weatherTool],
            messages: [{ role: 'user', content: 'weather in Lisbon' }],
        }, { key: s.secrets.ops });
        const a = checkChatStream(r, { wantUsage: true });
        assert.equal(a.finish[0], 'tool_calls');
        assert.equal(a.tools.length, 1);
        assert.match(a.tools[0].id, /^toolu_/);
        assert.equal(a.tools[0].type, 'function');
        assert.equal(a.tools[0].name, 'get_weather');
        assert.deepEqual(JSON.parse(a.tools[0].arguments), { city: 'Lisbon' });
        const argPieces = r.events.filter((ev) => ev.json?.choices?.[0]?.delta?.tool_calls?.[0]?.function?.arguments);
        assert.ok(argPieces.length >= 2, 'arguments arrive in several input_json_delta pieces');
    });

    test('response_format json_schema: a forced tool upstream, its input as JSON content (plain and streamed)', async () => {
        const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
        const response_format = { type: 'json_schema', json_schema: { name: 'place', schema } };
        const r = await send({ model: 'claude', messages: [{ role: 'user', content: 'where is it warm, Lisbon' }], response_format });
        assert.equal(r.status, 200, r.text);
        const choice = r.json.choices[0];
        assert.equal(choice.finish_reason, 'stop');
        assert.equal(choice.message.tool_calls, undefined);
        assert.deepEqual(JSON.parse(choice.message.content), { city: 'Lisbon' });
        const up = await s.mock.findRequest((q) => q.body?.tool_choice?.name === 'place');
        assert.deepEqual(up.body.tools, [{ name: 'place', description: "Give the answer as this tool's input: a JSON object.", input_schema: schema }]);
        assert.deepEqual(up.body.tool_choice, { type: 'tool', name: 'place' });

        const st = await streamRequest(`${s.gw.base}/chat/completions`,
            { model: 'claude', stream: true, messages: [{ role: 'user', content: 'warm place, Lisbon @mock chunks=3' }], response_format },
            { key: s.secrets.ops });
        const a = checkChatStream(st, { wantUsage: false });
        assert.equal(a.finish[0], 'stop');
        assert.equal(a.tools.length, 0);
        assert.deepEqual(JSON.parse(a.content), { city: 'Lisbon' });
    });

    test('errors: 529 → 503, 429 keeps retry-after, 401, 400; OpenAI shape', async () => {
        const cases = [
            { directive: 'status=529', status: 503, type: 'overloaded_error' },
            { directive: 'status=429 retry_after=7', status: 429, type: 'rate_limit_error', retryAfter: '7' },
            { directive: 'status=401', status: 401, type: 'authentication_error' },
            { directive: 'status=400', status: 400, type: 'invalid_request_error' },
        ];
        for (const c of cases) {
            const r = await send(chat('claude', `fail @mock ${c.directive}`));
            assert.equal(r.status, c.status, `${c.directive}: ${r.text}`);
            assertOpenAIError(r.json, { type: c.type }, c.directive);
            assert.match(r.json.error.message, /^anthropic: /);
            if (c.retryAfter) assert.equal(r.headers.get('retry-after'), c.retryAfter);
        }
    });

    test('in-stream error event → one OpenAI error event, no [DONE]', async () => {
        const r = await streamRequest(`${s.gw.base}/chat/completions`,
            chat('claude', 'fail midway @mock chunks=4 error_after=2', { stream: true }), { key: s.secrets.ops });
        assert.equal(r.status, 200);
        assert.equal(r.done, false, 'no [DONE] after an error');
        const a = assembleChat(r.events);
        assert.equal(a.errors.length, 1);
        assert.equal(a.errors[0].type, 'overloaded_error');
        assert.ok(r.events.at(-1).json.error, 'the error event is the last');
        assert.ok(a.content.length > 0, 'content before the error was forwarded');
    });

    test('direct provider/model naming', async () => {
        const r = await send(chat('anth/claude-opus-4-1', 'direct naming'));
        assert.equal(r.status, 200, r.text);
        const up = await s.mock.findRequest((q) => q.body?.messages?.[0]?.content?.[0]?.text === 'direct naming');
        assert.equal(up.body.model, 'claude-opus-4-1');
        assert.equal(up.path, '/v1/messages');
    });

    test('a base_url that already ends in /v1 is not doubled', async () => {
        const r = await send(chat('anth_v1/claude-haiku-4-5', 'versioned base url'));
        assert.equal(r.status, 200, r.text);
        const up = await s.mock.findRequest((q) => q.body?.messages?.[0]?.content?.[0]?.text === 'versioned base url');
        assert.equal(up.path, '/v1/messages');
    });

    test('embeddings are refused with a clear 400', async () => {
        const r = await post(s.gw, 'embeddings', { model: 'anth/x', input: 'hi' }, { key: s.secrets.ops });
        bodies.push(r.text);
        assert.equal(r.status, 400);
        assertOpenAIError(r.json, { code: 'unsupported_endpoint' });
    });

    test('access log: provider, upstream_model and tokens', async () => {
        const prompt = 'log me anthropic';
        const r = await send(chat('claude', prompt));
        assert.equal(r.status, 200);
        const entry = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
        assert.equal(entry.provider, 'anth');
        assert.equal(entry.upstream_model, 'claude-sonnet-4-5');
        assert.equal(entry.model, 'claude');
        assert.equal(entry.prompt_tokens, mockPromptTokens(prompt));
        assert.equal(entry.completion_tokens, 20);
        assert.equal(entry.total_tokens, mockPromptTokens(prompt) + 20);
        assert.equal(entry.status, 200);
    });

    test('client disconnect mid-stream closes the upstream stream', async () => {
        const { openDuring } = await hangUpMidStream(s, 'claude');
        assert.equal(openDuring, 1, 'the upstream stream was open while the client read');
        // and the gateway still answers
        const r = await send(chat('claude', 'after the disconnect'));
        assert.equal(r.status, 200);
    });
});
