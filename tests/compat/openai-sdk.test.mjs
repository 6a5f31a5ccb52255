// openai-sdk: the official `openai` npm package pointed at the gateway (baseURL = gateway /v1) with
// a virtual key: chat, streaming with usage, tool calls (plain and streamed), legacy completions,
// embeddings (the SDK asks for base64 by default and decodes it), the models list, and the error
// classes the SDK maps from the gateway's statuses.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { mockReplyPrefix, startStack } from '../lib/harness.mjs';

describe('official openai SDK', { timeout: 90000 }, () => {
    let s;
    let client;
    before(async () => {
        s = await startStack({
            models: {
                smart: { targets: [{ provider: 'mock', model: 'gpt-4o' }] },
                embed: { targets: [{ provider: 'mock', model: 'text-embedding-3-small' }] },
                broken: { targets: [{ provider: 'mock', model: 'gpt-4o@status=500' }] },
                limited: { targets: [{ provider: 'mock', model: 'gpt-4o@status=429,retry_after=7' }] },
            },
            pricing: { 'gpt-4o': { input: 2.5, output: 10 } },
        });
        client = new OpenAI({ baseURL: s.gw.base, apiKey: s.secrets.ops, maxRetries: 0, timeout: 15000 });
    });
    after(async () => {
        if (!s) return;
        assert.deepEqual(await s.stop(), [], 'gateway shut down cleanly');
    });

    test('chat completion', async () => {
        const prompt = 'Say hello through the SDK';
        const { data, response } = await client.chat.completions
            .create({ model: 'fast', messages: [{ role: 'user', content: prompt }] })
            .withResponse();
        assert.equal(data.object, 'chat.completion');
        assert.ok(data.choices[0].message.content.startsWith(mockReplyPrefix(prompt)));
        assert.equal(data.choices[0].finish_reason, 'stop');
        assert.ok(data.usage.prompt_tokens > 0 && data.usage.completion_tokens > 0);
        assert.ok(response.headers.get('x-sluice-request-id'));
        assert.equal(response.headers.get('x-sluice-provider'), 'mock');
    });

    test('streaming with include_usage: content assembles and the usage chunk arrives last', async () => {
        const prompt = 'stream through the SDK @mock chunks=8';
        const stream = await client.chat.completions.create({
            model: 'smart', stream: true, stream_options: { include_usage: true },
            messages: [{ role: 'user', content: prompt }],
        });
        let content = '';
        let usage = null;
        let finish = null;
        let chunks = 0;
        for await (const chunk of stream) {
            chunks++;
            if (chunk.usage) usage = chunk.usage;
            for (const choice of chunk.choices) {
                content += choice.delta?.content ?? '';
                if (choice.finish_reason) finish = choice.finish_reason;
            }
        }
        assert.ok(chunks >= 8, `${chunks} chunks`);
        assert.ok(content.startsWith(mockReplyPrefix(prompt)), content);
        assert.equal(finish, 'stop');
        assert.ok(usage && usage.completion_tokens > 0 && usage.total_tokens === usage.prompt_tokens + usage.completion_tokens,
            JSON.stringify(usage));
    });

    test('streaming without include_usage carries no usage chunk', async () => {
        const stream = await client.chat.completions.create({
            model: 'fast', stream: true, messages: [{ role: 'user', content: 'no usage please' }],
        });
        for await (const chunk of stream) assert.ok(!chunk.usage, 'no usage chunk');
    });

    test('stream helper (runTools-style accumulation) gives the final message', async () => {
        const runner = client.chat.completions.stream({
            model: 'fast', messages: [{ role: 'user', content: 'final message helper' }],
        });
        const final = await runner.finalChatCompletion();
        assert.ok(final.choices[0].message.content.startsWith(mockReplyPrefix('final message helper')));
    });

    const tools = [{
        type: 'function',
        function: {
            name: 'get_weather', description: 'Weather for a city',
            parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        },
    }];

    test('tool call (non-stream) and the tool result round trip', async () => {
        const first = await client.chat.completions.create({
            model: 'fast', tools, tool_choice: 'auto',
            messages: [{ role: 'user', content: 'weather in Paris @mock tool_call=get_weather' }],
        });
        const call = first.choices[0].message.tool_calls?.[0];
        assert.ok(call, JSON.stringify(first.choices[0]));
        assert.equal(call.function.name, 'get_weather');
        assert.doesNotThrow(() => JSON.parse(call.function.arguments));
        assert.equal(first.choices[0].finish_reason, 'tool_calls');
        const second = await client.chat.completions.create({
            model: 'fast', tools,
            messages: [
                { role: 'user', content: 'weather in Paris' },
                first.choices[0].message,
                { role: 'tool', tool_call_id: call.id, content: '{"temp_c":18}' },
            ],
        });
        assert.equal(second.choices[0].finish_reason, 'stop');
    });

    test('streamed tool call assembles through the SDK stream helper', async () => {
        const runner = client.chat.completions.stream({
            model: 'fast', tools,
            messages: [{ role: 'user', content: 'weather in Rome @mock tool_call=get_weather' }],
        });
        const final = await runner.finalChatCompletion();
        const call = final.choices[0].message.tool_calls?.[0];
        assert.ok(call, JSON.stringify(final.choices[0]));
        assert.equal(call.function.name, 'get_weather');
        assert.doesNotThrow(() => JSON.parse(call.function.arguments));
    });

    test('legacy completions', async () => {
        const r = await client.completions.create({ model: 'fast', prompt: 'Once upon a time', max_tokens: 16 });
        assert.equal(r.object, 'text_completion');
        assert.ok(r.choices[0].text.length > 0);
    });

    test('embeddings (SDK default base64 encoding, decoded by the SDK) and float', async () => {
        const r = await client.embeddings.create({ model: 'embed', input: ['alpha', 'beta'] });
        assert.equal(r.data.length, 2);
        assert.ok(Array.isArray(r.data[0].embedding) && r.data[0].embedding.length > 0);
        assert.ok(r.data[0].embedding.every((x) => Number.isFinite(x)));
        const f = await client.embeddings.create({ model: 'embed', input: 'alpha', encoding_format: 'float' });
        assert.equal(f.data[0].embedding.length, r.data[0].embedding.length);
        const close = f.data[0].embedding.every((x, i) => Math.abs(x - r.data[0].embedding[i]) < 1e-6);
        assert.ok(close, 'base64 and float encodings carry the same vector');
    });

    test('models list', async () => {
        const ids = [];
        for await (const model of client.models.list()) ids.push(model.id);
        for (const name of ['fast', 'smart', 'embed']) assert.ok(ids.includes(name), `${name} in ${ids}`);
    });

    test('error classes: 401, 403, 404, 400, 500, 429 with retry-after', async () => {
        const bad = new OpenAI({ baseURL: s.gw.base, apiKey: 'sk-wrong', maxRetries: 0 });
        const msgs = [{ role: 'user', content: 'hi' }];
        await assert.rejects(bad.chat.completions.create({ model: 'fast', messages: msgs }), OpenAI.AuthenticationError);
        const app = new OpenAI({ baseURL: s.gw.base, apiKey: s.secrets.app, maxRetries: 0 });
        await assert.rejects(app.chat.completions.create({ model: 'smart', messages: msgs }), OpenAI.PermissionDeniedError);
        await assert.rejects(client.chat.completions.create({ model: 'no-such-model', messages: msgs }),
            (err) => err instanceof OpenAI.NotFoundError && err.code === 'model_not_found');
        await assert.rejects(client.chat.completions.create({ model: 'fast', messages: 'not a list' }), OpenAI.BadRequestError);
        await assert.rejects(client.chat.completions.create({ model: 'broken', messages: msgs }), OpenAI.InternalServerError);
        await assert.rejects(client.chat.completions.create({ model: 'limited', messages: msgs }), (err) => {
            assert.ok(err instanceof OpenAI.RateLimitError);
            assert.equal(err.headers.get('retry-after'), '7');
            return true;
        });
        await assert.rejects(client.chat.completions.create({ model: 'broken', stream: true, messages: msgs }),
            OpenAI.InternalServerError);
    });
});
