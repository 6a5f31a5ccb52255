// providers-azure: the azure adapter through the real binary against sluice-mock's Azure routes,
// driven by the official openai SDK: classic deployment URLs (api-version, api-key header, no
// Bearer) and the v1 base URL; chat, stream with usage, tool calls, streamed tool calls,
// embeddings. The OpenAI SDK talks to Sluice exactly as it talks to OpenAI.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { mockReplyPrefix, recordedHeader } from '../lib/harness.mjs';
import { startProviderStack } from '../compat/stack.mjs';

const tools = [{
    type: 'function',
    function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
}];

describe('azure provider', { timeout: 60000 }, () => {
    let s;
    let client;
    before(async () => {
        s = await startProviderStack({
            providers: (mockPort) => ({
                az: { type: 'azure', base_url: `http://127.0.0.1:${mockPort}`, api_key: '${MOCK_KEY}', api_version: '2024-10-21' },
                azv1: { type: 'azure', base_url: `http://127.0.0.1:${mockPort}/openai/v1`, api_key: '${MOCK_KEY}' },
            }),
            models: {
                'az-chat': { targets: [{ provider: 'az', model: 'my-gpt4o' }] },
                'az-v1': { targets: [{ provider: 'azv1', model: 'my-gpt4o-v1' }] },
                'az-embed': { targets: [{ provider: 'az', model: 'my-embeddings' }] },
            },
        });
        client = new OpenAI({ baseURL: s.gw.base, apiKey: s.secrets.ops, maxRetries: 0 });
    });
    after(async () => {
        if (!s) return;
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    test('chat goes to the deployment URL with api-version and api-key', async () => {
        const prompt = 'hello azure';
        const completion = await client.chat.completions.create({ model: 'az-chat', messages: [{ role: 'user', content: prompt }] });
        assert.ok(completion.choices[0].message.content.startsWith(mockReplyPrefix(prompt)));
        assert.ok(completion.usage.total_tokens > 0);
        const upstream = await s.mock.findRequest((r) => r.body?.messages?.[0]?.content === prompt);
        assert.match(upstream.path, /^\/openai\/deployments\/my-gpt4o\/chat\/completions/);
        assert.equal(recordedHeader(upstream, 'api-key'), s.secrets.mockKey);
        assert.equal(recordedHeader(upstream, 'authorization'), undefined, 'no Bearer token to Azure');
    });

    test('v1 base URL: OpenAI-shaped path, deployment in the body', async () => {
        const prompt = 'hello azure v1';
        const completion = await client.chat.completions.create({ model: 'az-v1', messages: [{ role: 'user', content: prompt }] });
        assert.ok(completion.choices[0].message.content.startsWith(mockReplyPrefix(prompt)));
        const upstream = await s.mock.findRequest((r) => r.body?.messages?.[0]?.content === prompt);
        assert.match(upstream.path, /^\/openai\/v1\/chat\/completions/);
        assert.equal(upstream.body.model, 'my-gpt4o-v1');
    });

    test('stream with usage, and streamed tool call', async () => {
        const prompt = 'stream azure';
        const stream = await client.chat.completions.create({
            model: 'az-chat', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: prompt }],
        });
        let text = '';
        let usage;
        for await (const chunk of stream) {
            text += chunk.choices[0]?.delta?.content ?? '';
            if (chunk.usage) usage = chunk.usage;
        }
        assert.ok(text.startsWith(mockReplyPrefix(prompt)), text);
        assert.ok(usage && usage.completion_tokens > 0);
        const toolStream = await client.chat.completions.create({
            model: 'az-chat', stream: true, tools, messages: [{ role: 'user', content: 'weather @mock tool_call=get_weather' }],
        });
        let name = '';
        let finish;
        for await (const chunk of toolStream) {
            const call = chunk.choices[0]?.delta?.tool_calls?.[0];
            if (call?.function?.name) name = call.function.name;
            finish = chunk.choices[0]?.finish_reason ?? finish;
        }
        assert.equal(name, 'get_weather');
        assert.equal(finish, 'tool_calls');
    });

    test('tool call (non-stream) and embeddings', async () => {
        const completion = await client.chat.completions.create({
            model: 'az-chat', tools, messages: [{ role: 'user', content: 'weather @mock tool_call=get_weather' }],
        });
        assert.equal(completion.choices[0].finish_reason, 'tool_calls');
        assert.equal(completion.choices[0].message.tool_calls[0].function.name, 'get_weather');
        const embedding = await client.embeddings.create({ model: 'az-embed', input: ['a', 'b'] });
        assert.equal(embedding.data.length, 2);
        const upstream = await s.mock.findRequest((r) => Array.isArray(r.body?.input));
        assert.match(upstream.path, /^\/openai\/deployments\/my-embeddings\/embeddings\?api-version=2024-10-21/);
    });
});
