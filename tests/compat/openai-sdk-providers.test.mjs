// openai-sdk-providers: the official `openai` SDK against every provider type through the real
// binary — openai, azure, anthropic, gemini and bedrock (SigV4 verified by the mock) — with only
// the model name changing: chat, stream with usage, tool call and its tool-result follow-up, and a
// streamed tool call assembled by the SDK's own stream helper (finalChatCompletion).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { mockReplyPrefix, secret } from '../lib/harness.mjs';
import { startProviderGateway } from '../integration/providers-lib.mjs';

const tools = [{
    type: 'function',
    function: {
        name: 'get_weather', description: 'Current weather for a city',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
}];

// model name → the upstream model, the id prefix its tool calls carry, and the "model" the answer
// reports: always the upstream model that answered — OpenAI-shaped bodies are passed through with
// the upstream's model name, and translated ones report the same, so a client sees one convention.
const MODELS = {
    'via-openai': { upstream: 'gpt-4o', prefix: /^call_/, reported: 'gpt-4o' },
    'via-azure': { upstream: 'my-gpt4o', prefix: /^call_/, reported: 'my-gpt4o' },
    'via-anthropic': { upstream: 'claude-sonnet-4-5', prefix: /^toolu_/, reported: 'claude-sonnet-4-5' },
    'via-gemini': { upstream: 'gemini-2.5-flash', prefix: /^call_/, reported: 'gemini-2.5-flash' },
    'via-bedrock': { upstream: 'anthropic.claude-3-5-haiku-20241022-v1:0', prefix: /^tooluse_/, reported: 'anthropic.claude-3-5-haiku-20241022-v1:0' },
};

describe('official openai SDK against every provider type', { timeout: 120000 }, () => {
    let s;
    let client;
    const awsSecret = secret('aws-secret');
    before(async () => {
        s = await startProviderGateway({
            mockOpts: { awsAccessKeyId: 'AKIDSDKTEST', awsSecretAccessKey: awsSecret },
            providers: (mockPort) => {
                const root = `http://127.0.0.1:${mockPort}`;
                return {
                    az: { type: 'azure', base_url: root, api_key: '${PROVIDER_KEY}' },
                    anth: { type: 'anthropic', base_url: root, api_key: '${PROVIDER_KEY}' },
                    gem: { type: 'gemini', base_url: root, api_key: '${PROVIDER_KEY}' },
                    bed: {
                        type: 'bedrock', base_url: root, region: 'us-east-1', access_key_id: 'AKIDSDKTEST',
                        secret_access_key: '${AWS_TEST_SECRET}',
                    },
                };
            },
            models: {
                'via-openai': { targets: [{ provider: 'mock', model: 'gpt-4o' }] },
                'via-azure': { targets: [{ provider: 'az', model: 'my-gpt4o' }] },
                'via-anthropic': { targets: [{ provider: 'anth', model: 'claude-sonnet-4-5' }] },
                'via-gemini': { targets: [{ provider: 'gem', model: 'gemini-2.5-flash' }] },
                'via-bedrock': { targets: [{ provider: 'bed', model: 'anthropic.claude-3-5-haiku-20241022-v1:0' }] },
            },
            env: { AWS_TEST_SECRET: awsSecret },
        });
        client = new OpenAI({ baseURL: s.gw.base, apiKey: s.secrets.ops, maxRetries: 0, timeout: 15000 });
    });
    after(async () => {
        if (!s) return;
        const out = s.gw.allOutput();
        assert.ok(!out.includes(s.secrets.provider) && !out.includes(awsSecret), 'no provider secret in the output');
        assert.deepEqual(await s.stop(), [], 'gateway shut down cleanly');
    });

    for (const [model, { upstream, prefix, reported }] of Object.entries(MODELS)) {
        describe(model, () => {
            test('chat completion', async () => {
                const prompt = `hello from the SDK to ${model}`;
                const { data, response } = await client.chat.completions
                    .create({ model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: prompt }] })
                    .withResponse();
                assert.equal(data.object, 'chat.completion');
                assert.equal(data.model, reported);
                assert.equal(response.headers.get('x-sluice-model'), upstream);
                assert.ok(data.choices[0].message.content.startsWith(mockReplyPrefix(prompt)), data.choices[0].message.content);
                assert.equal(data.choices[0].finish_reason, 'stop');
                assert.equal(data.usage.completion_tokens, 20);
                assert.equal(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);
                assert.ok(response.headers.get('x-sluice-request-id'));
            });

            test('stream with usage: same text and usage as without streaming', async () => {
                const prompt = `stream to ${model} @mock chunks=4`;
                const whole = await client.chat.completions.create({ model, messages: [{ role: 'user', content: prompt }] });
                const stream = await client.chat.completions.create({
                    model, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: prompt }],
                });
                let text = '';
                let usage = null;
                let finish = null;
                const ids = new Set();
                for await (const chunk of stream) {
                    // Azure opens with an id-less prompt_filter_results chunk (choices: []), passed through
                    if (!(chunk.id === '' && chunk.choices.length === 0 && chunk.prompt_filter_results)) ids.add(chunk.id);
                    if (chunk.usage) usage = chunk.usage;
                    for (const choice of chunk.choices) {
                        text += choice.delta?.content ?? '';
                        if (choice.finish_reason) finish = choice.finish_reason;
                    }
                }
                assert.equal(ids.size, 1, 'one id per stream');
                assert.equal(text, whole.choices[0].message.content);
                assert.equal(finish, 'stop');
                assert.ok(usage, 'usage chunk');
                assert.equal(usage.prompt_tokens, whole.usage.prompt_tokens);
                assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
            });

            test('tool call, then the tool result', async () => {
                const messages = [{ role: 'user', content: 'What is the weather in Paris' }];
                const first = await client.chat.completions.create({ model, tools, messages });
                assert.equal(first.choices[0].finish_reason, 'tool_calls');
                const call = first.choices[0].message.tool_calls[0];
                assert.match(call.id, prefix);
                assert.equal(call.function.name, 'get_weather');
                assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
                const second = await client.chat.completions.create({
                    model, tools,
                    messages: [...messages, first.choices[0].message, { role: 'tool', tool_call_id: call.id, content: '18C' }],
                });
                assert.equal(second.choices[0].finish_reason, 'stop');
                assert.ok(second.choices[0].message.content.startsWith('mock reply to:'));
            });

            test('streamed tool call assembled by the SDK stream helper', async () => {
                const stream = client.chat.completions.stream({
                    model, tools, stream_options: { include_usage: true },
                    messages: [{ role: 'user', content: 'What is the weather in Lisbon' }],
                });
                const final = await stream.finalChatCompletion();
                const choice = final.choices[0];
                assert.equal(choice.finish_reason, 'tool_calls');
                assert.equal(choice.message.tool_calls.length, 1);
                const call = choice.message.tool_calls[0];
                assert.match(call.id, prefix);
                assert.equal(call.function.name, 'get_weather');
                assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Lisbon' });
                assert.ok(final.usage && final.usage.completion_tokens > 0, JSON.stringify(final.usage));
            });
        });
    }
});
