// anthropic-sdk: the official @anthropic-ai/sdk against Sluice's POST /v1/messages, backed by an
// OpenAI-type provider (the mock). Non-stream and streamed messages, tool use both ways (a
// tool_use answer, then a tool_result turn), usage, auth by x-api-key and by Bearer, and errors
// the SDK must raise as its own classes with the right status.
//
// Not yet covered: /v1/messages backed by an anthropic-type provider — sluice-mock does not speak
// the Anthropic wire format yet (bench/mock/mock_anthropic.c is a stub on the mock branch).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';

import { mockReplyPrefix } from '../lib/harness.mjs';
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
