// anthropic-sdk: the official @anthropic-ai/sdk against Sluice's POST /v1/messages, backed by an
// OpenAI-type provider (the mock). Non-stream and streamed messages, tool use both ways (a
// tool_use answer, then a tool_result turn), usage, auth by x-api-key and by Bearer, and errors
// the SDK must raise as its own classes with the right status.
//
// Then the same SDK with /v1/messages backed by an anthropic-type provider (Anthropic in,
// Anthropic out, through the internal OpenAI form) and by a gemini-type one, asserting what the
// mock received upstream in each provider's own format.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';

import { mockReplyPrefix, recordedHeader } from '../lib/harness.mjs';
import { startProviderStack } from './stack.mjs';

const weatherTool = {
    name: 'get_weather',
    description: 'Current weather for a city',
    input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

describe('@anthropic-ai/sdk against /v1/messages (OpenAI-type backend)', { timeout: 60000 }, () => {
    let s;
    let client;
    before(async () => {
        s = await startProviderStack({
            models: { down: { targets: [{ provider: 'mock', model: 'gpt-4o@status=503' }] } },
        });
        client = new Anthropic({ baseURL: s.gw.url, apiKey: s.secrets.ops, maxRetries: 0 });
    });
    after(async () => {
        if (!s) return;
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    test('messages.create: text, stop_reason and usage', async () => {
        const prompt = 'Hello from the Anthropic SDK';
        const message = await client.messages.create({
            model: 'fast', max_tokens: 200, system: 'Be brief.', messages: [{ role: 'user', content: prompt }],
        });
        assert.equal(message.type, 'message');
        assert.equal(message.role, 'assistant');
        assert.match(message.id, /^msg_/);
        assert.equal(message.content[0].type, 'text');
        assert.ok(message.content[0].text.startsWith(mockReplyPrefix(prompt)), message.content[0].text);
        assert.equal(message.stop_reason, 'end_turn');
        assert.ok(message.usage.input_tokens > 0);
        assert.ok(message.usage.output_tokens > 0);
        // what went upstream is the OpenAI form, with the system prompt as a system message
        const upstream = await s.mock.findRequest((r) => r.body?.messages?.at(-1)?.content === prompt);
        assert.equal(upstream.body.model, 'gpt-4o-mini');
        assert.equal(upstream.body.max_tokens, 200);
        assert.deepEqual(upstream.body.messages[0], { role: 'system', content: 'Be brief.' });
    });

    test('messages.stream: events assemble into the same message, with usage', async () => {
        const prompt = 'Stream this please';
        const stream = client.messages.stream({
            model: 'fast', max_tokens: 200, messages: [{ role: 'user', content: prompt }],
        });
        let text = '';
        stream.on('text', (piece) => { text += piece; });
        const message = await stream.finalMessage();
        assert.ok(text.startsWith(mockReplyPrefix(prompt)), text);
        assert.equal(message.content[0].text, text);
        assert.equal(message.stop_reason, 'end_turn');
        assert.ok(message.usage.output_tokens > 0, JSON.stringify(message.usage));
        assert.ok(message.usage.input_tokens > 0, JSON.stringify(message.usage));
    });

    test('tool use, then a tool_result turn', async () => {
        const first = await client.messages.create({
            model: 'fast', max_tokens: 200, tools: [weatherTool],
            messages: [{ role: 'user', content: 'Weather in Paris? @mock tool_call=get_weather' }],
        });
        assert.equal(first.stop_reason, 'tool_use');
        const use = first.content.find((b) => b.type === 'tool_use');
        assert.ok(use, JSON.stringify(first.content));
        assert.equal(use.name, 'get_weather');
        assert.equal(typeof use.input, 'object');
        const second = await client.messages.create({
            model: 'fast', max_tokens: 200, tools: [weatherTool],
            messages: [
                { role: 'user', content: 'Weather in Paris?' },
                { role: 'assistant', content: first.content },
                { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '18C and sunny' }] },
            ],
        });
        assert.equal(second.stop_reason, 'end_turn');
        const upstream = await s.mock.findRequest((r) => r.body?.messages?.some((m) => m.role === 'tool'));
        const toolMessage = upstream.body.messages.find((m) => m.role === 'tool');
        assert.equal(toolMessage.tool_call_id, use.id);
        assert.equal(toolMessage.content, '18C and sunny');
        const assistant = upstream.body.messages.find((m) => m.role === 'assistant');
        assert.equal(assistant.tool_calls[0].function.name, 'get_weather');
        assert.equal(upstream.body.tools[0].function.name, 'get_weather');
    });

    test('streamed tool use', async () => {
        const stream = client.messages.stream({
            model: 'fast', max_tokens: 200, tools: [weatherTool],
            messages: [{ role: 'user', content: 'Weather? @mock tool_call=get_weather' }],
        });
        const message = await stream.finalMessage();
        assert.equal(message.stop_reason, 'tool_use');
        const use = message.content.find((b) => b.type === 'tool_use');
        assert.ok(use, JSON.stringify(message.content));
        assert.equal(use.name, 'get_weather');
        assert.equal(typeof use.input, 'object');
    });

    test('Bearer auth works too (authToken)', async () => {
        const bearer = new Anthropic({ baseURL: s.gw.url, authToken: s.secrets.ops, apiKey: null, maxRetries: 0 });
        const message = await bearer.messages.create({
            model: 'fast', max_tokens: 50, messages: [{ role: 'user', content: 'bearer' }],
        });
        assert.equal(message.type, 'message');
    });

    test('errors are raised as the SDK\'s own classes', async () => {
        const wrong = new Anthropic({ baseURL: s.gw.url, apiKey: 'sk-wrong', maxRetries: 0 });
        await assert.rejects(
            wrong.messages.create({ model: 'fast', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
            (err) => err instanceof Anthropic.AuthenticationError && err.status === 401);
        await assert.rejects(
            client.messages.create({ model: 'no-such-model', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
            (err) => err instanceof Anthropic.NotFoundError && err.status === 404);
        await assert.rejects(
            client.messages.create({ model: 'fast', messages: [{ role: 'user', content: 'x' }] }),
            (err) => err instanceof Anthropic.BadRequestError && err.status === 400 && /max_tokens/.test(err.message));
        await assert.rejects(
            client.messages.create({ model: 'down', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
            (err) => err instanceof Anthropic.APIError && err.status === 503);
    });
});

// /v1/messages backed by non-OpenAI providers: what the SDK gets, and what went upstream.
const BACKENDS = {
    anthropic: {
        provider: (root) => ({ type: 'anthropic', base_url: root, api_key: '${MOCK_KEY}' }),
        upstreamModel: 'claude-sonnet-4-5',
        toolId: /^toolu_/,
        /** The last user text of a recorded upstream request. */
        lastText: (q) => q.body?.messages?.at(-1)?.content?.find?.((b) => b.type === 'text')?.text,
        checkPlain(up, { secrets, system, prompt }) {
            assert.equal(up.path, '/v1/messages');
            assert.equal(recordedHeader(up, 'x-api-key'), secrets.mockKey, 'the provider key, not the client\'s');
            assert.equal(recordedHeader(up, 'anthropic-version'), '2023-06-01');
            assert.deepEqual(up.body, {
                model: 'claude-sonnet-4-5', system: [{ type: 'text', text: system }],
                messages: [{ role: 'user', content: [{ type: 'text', text: prompt }] }],
                max_tokens: 200, temperature: 0.5, stop_sequences: ['STOP'],
            });
        },
        checkToolResult(up, use) {
            assert.deepEqual(up.body.messages.slice(1), [
                { role: 'assistant', content: [{ type: 'tool_use', id: use.id, name: 'get_weather', input: use.input }] },
                { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '18C and sunny' }] },
            ]);
            assert.equal(up.body.tools[0].name, 'get_weather');
            assert.deepEqual(up.body.tools[0].input_schema, weatherTool.input_schema);
        },
    },
    gemini: {
        provider: (root) => ({ type: 'gemini', base_url: root, api_key: '${MOCK_KEY}' }),
        upstreamModel: 'gemini-2.5-flash',
        toolId: /^call_/,
        lastText: (q) => q.body?.contents?.at(-1)?.parts?.find?.((p) => typeof p.text === 'string')?.text,
        checkPlain(up, { secrets, system, prompt }) {
            assert.equal(up.path, '/v1beta/models/gemini-2.5-flash:generateContent');
            assert.equal(recordedHeader(up, 'x-goog-api-key'), secrets.mockKey);
            assert.deepEqual(up.body, {
                contents: [{ role: 'user', parts: [{ text: prompt }] }],
                systemInstruction: { parts: [{ text: system }] },
                generationConfig: { temperature: 0.5, maxOutputTokens: 200, stopSequences: ['STOP'] },
            });
        },
        checkToolResult(up, use) {
            assert.deepEqual(up.body.contents.slice(1), [
                { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: use.input } }] },
                { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { result: '18C and sunny' } } }] },
            ]);
            assert.equal(up.body.tools[0].functionDeclarations[0].name, 'get_weather');
        },
    },
};

for (const [kind, backend] of Object.entries(BACKENDS)) {
    describe(`@anthropic-ai/sdk against /v1/messages (${kind}-type backend)`, { timeout: 60000 }, () => {
        let s;
        let client;
        const model = `via-${kind}`;
        before(async () => {
            s = await startProviderStack({
                providers: (mockPort) => ({ up: backend.provider(`http://127.0.0.1:${mockPort}`) }),
                models: {
                    [model]: { targets: [{ provider: 'up', model: backend.upstreamModel }] },
                    [`${model}-busy`]: { targets: [{ provider: 'up', model: `${backend.upstreamModel}@status=${kind === 'anthropic' ? 529 : 503}` }] },
                    [`${model}-limited`]: { targets: [{ provider: 'up', model: `${backend.upstreamModel}@status=429,retry_after=9` }] },
                },
            });
            client = new Anthropic({ baseURL: s.gw.url, apiKey: s.secrets.ops, maxRetries: 0 });
        });
        after(async () => {
            if (!s) return;
            assert.ok(!s.gw.allOutput().includes(s.secrets.mockKey), 'no provider key in the output');
            const problems = await s.stop();
            assert.deepEqual(problems, [], 'gateway shut down cleanly');
        });

        test('messages.create: translated upstream request and the Anthropic answer', async () => {
            const system = 'Be brief.';
            const prompt = `Hello ${kind} through /v1/messages`;
            const message = await client.messages.create({
                model, max_tokens: 200, temperature: 0.5, stop_sequences: ['STOP'], system,
                messages: [{ role: 'user', content: prompt }],
            });
            assert.equal(message.type, 'message');
            assert.equal(message.role, 'assistant');
            assert.match(message.id, /^msg_/);
            assert.equal(message.content.length, 1);
            assert.ok(message.content[0].text.startsWith(mockReplyPrefix(prompt)), message.content[0].text);
            assert.equal(message.stop_reason, 'end_turn');
            assert.equal(message.usage.input_tokens, Math.ceil((system.length + prompt.length) / 4));
            assert.equal(message.usage.output_tokens, 20);
            const up = await s.mock.findRequest((q) => backend.lastText(q) === prompt);
            backend.checkPlain(up, { secrets: s.secrets, system, prompt });
        });

        test('messages.stream: text and usage', async () => {
            const prompt = `Stream ${kind} please @mock chunks=5`;
            const stream = client.messages.stream({ model, max_tokens: 200, messages: [{ role: 'user', content: prompt }] });
            let text = '';
            stream.on('text', (piece) => { text += piece; });
            const message = await stream.finalMessage();
            assert.ok(text.startsWith(mockReplyPrefix(prompt)), text);
            assert.equal(message.content[0].text, text);
            assert.equal(message.stop_reason, 'end_turn');
            assert.equal(message.usage.output_tokens, 20);
            assert.equal(message.usage.input_tokens, Math.ceil(prompt.length / 4));
        });

        test('tool use, then a tool_result turn', async () => {
            const first = await client.messages.create({
                model, max_tokens: 200, tools: [weatherTool],
                messages: [{ role: 'user', content: 'Weather in Paris' }],
            });
            assert.equal(first.stop_reason, 'tool_use');
            const use = first.content.find((b) => b.type === 'tool_use');
            assert.ok(use, JSON.stringify(first.content));
            assert.match(use.id, backend.toolId);
            assert.equal(use.name, 'get_weather');
            assert.deepEqual(use.input, { city: 'Paris' });
            const second = await client.messages.create({
                model, max_tokens: 200, tools: [weatherTool],
                messages: [
                    { role: 'user', content: 'Weather in Paris' },
                    { role: 'assistant', content: first.content },
                    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '18C and sunny' }] },
                ],
            });
            assert.equal(second.stop_reason, 'end_turn');
            assert.equal(second.content[0].type, 'text');
            const up = await s.mock.findRequest((q) => (q.body?.messages ?? q.body?.contents)?.length === 3);
            backend.checkToolResult(up, use);
        });

        test('streamed tool use', async () => {
            const stream = client.messages.stream({
                model, max_tokens: 200, tools: [weatherTool],
                messages: [{ role: 'user', content: 'Weather in Lisbon' }],
            });
            const message = await stream.finalMessage();
            assert.equal(message.stop_reason, 'tool_use');
            const use = message.content.find((b) => b.type === 'tool_use');
            assert.ok(use, JSON.stringify(message.content));
            assert.match(use.id, backend.toolId);
            assert.deepEqual(use.input, { city: 'Lisbon' });
        });

        test('upstream errors arrive as the SDK\'s classes', async () => {
            await assert.rejects(
                client.messages.create({ model: `${model}-busy`, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
                (err) => err instanceof Anthropic.InternalServerError && err.status === 503 &&
                    err.error?.error?.type === 'overloaded_error');
            await assert.rejects(
                client.messages.create({ model: `${model}-limited`, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
                (err) => err instanceof Anthropic.RateLimitError && err.status === 429);
            const st = client.messages.stream({
                model, max_tokens: 200, messages: [{ role: 'user', content: 'fail midway @mock chunks=4 error_after=2' }],
            });
            // the upstream's in-stream error reaches the SDK as an Anthropic `event: error`
            await assert.rejects(st.finalMessage(), (err) => {
                assert.ok(err instanceof Anthropic.APIError, String(err));
                assert.equal(err.error?.type, 'error', JSON.stringify(err.error));
                return true;
            });
        });
    });
}
