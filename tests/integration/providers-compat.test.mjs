// providers-compat: openai-compatible presets through the real binary against sluice-mock's
// `quirk=<preset>` emulation of each server (not live servers): the upstream body each preset
// allows (stream_options or not), usage for the client when it asked, tokens in the access log
// (estimated and marked so for servers that stream none), DeepSeek's cache hits as cached_tokens,
// Groq's x_groq.usage, OpenRouter's SSE comments, and the preset logged at start-up.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { chat, mockReplyPrefix, post, streamRequest } from '../lib/harness.mjs';
import { mockPromptTokens, startProviderGateway } from './providers-lib.mjs';

const PRESETS = ['vllm', 'ollama', 'llamacpp', 'groq', 'mistral', 'deepseek', 'together', 'openrouter', 'generic'];
const ESTIMATED = new Set(['ollama', 'llamacpp']);
const NO_STREAM_OPTIONS = new Set(['mistral']);
const MOCK_WORDS = 20; // the mock's default reply length = its completion_tokens

describe('openai-compatible presets', { timeout: 120000 }, () => {
    let s;
    const send = (body) => post(s.gw, 'chat/completions', body, { key: s.secrets.ops });
    const stream = (body) => streamRequest(`${s.gw.base}/chat/completions`, body, { key: s.secrets.ops });
    const upstreamFor = (prompt) => s.mock.findRequest((r) => r.body?.messages?.at(-1)?.content === prompt);

    before(async () => {
        s = await startProviderGateway({
            providers: (mockPort) => {
                const providers = {};
                for (const p of PRESETS)
                    providers[`c-${p}`] = { type: 'openai-compatible', base_url: `http://127.0.0.1:${mockPort}/v1`, preset: p };
                // no preset key: inferred from the URL (a local mock → generic)
                providers['c-inferred'] = { type: 'openai-compatible', base_url: `http://127.0.0.1:${mockPort}/v1` };
                return providers;
            },
            models: Object.fromEntries(PRESETS.map((p) => [
                `m-${p}`, { targets: [{ provider: `c-${p}`, model: p === 'generic' ? 'plain-model' : `${p}-model@quirk=${p}` }] },
            ])),
        });
    });
    after(async () => {
        if (!s) return;
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    test('each preset is logged at start-up, configured or inferred', () => {
        const out = s.gw.allOutput();
        for (const p of PRESETS)
            assert.match(out, new RegExp(`provider c-${p}: openai-compatible preset ${p} \\(configured\\)`));
        assert.match(out, /provider c-inferred: openai-compatible preset generic \(inferred from base_url\)/);
    });

    for (const preset of PRESETS) {
        describe(preset, () => {
            test('non-stream: answer, usage, access log, upstream body', async () => {
                const prompt = `plain ${preset} request`;
                const r = await send(chat(`m-${preset}`, prompt));
                assert.equal(r.status, 200, r.text);
                assert.ok(r.json.choices[0].message.content.startsWith(mockReplyPrefix(prompt)));
                assert.equal(r.json.usage.prompt_tokens, mockPromptTokens(prompt));
                assert.equal(r.json.usage.completion_tokens, MOCK_WORDS);
                const entry = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
                assert.equal(entry.provider, `c-${preset}`);
                assert.equal(entry.prompt_tokens, mockPromptTokens(prompt));
                assert.equal(entry.completion_tokens, MOCK_WORDS);
                assert.equal(entry.usage_estimated, undefined, 'the server reported usage');
                const upstream = await upstreamFor(prompt);
                assert.deepEqual(Object.keys(upstream.body).sort(), ['messages', 'model']);
            });

            test('stream with include_usage: one usage chunk for the client, tokens logged', async () => {
                const prompt = `stream ${preset} with usage`;
                const r = await stream(chat(`m-${preset}`, prompt, { stream: true, stream_options: { include_usage: true } }));
                assert.equal(r.status, 200, r.text);
                assert.ok(r.done, r.text.slice(-300));
                const chunks = r.events.filter((ev) => ev.data !== '[DONE]');
                for (const ev of chunks) assert.ok(ev.json && !ev.json.error, ev.data);
                assert.ok(!r.text.includes('OPENROUTER'), 'SSE comments are not forwarded');
                let content = '';
                for (const ev of chunks) content += ev.json.choices?.[0]?.delta?.content ?? '';
                assert.ok(content.startsWith(mockReplyPrefix(prompt)), content);
                const usageOnly = chunks.filter((ev) => Array.isArray(ev.json.choices) && ev.json.choices.length === 0 && ev.json.usage);
                assert.equal(usageOnly.length, 1, `one usage-only chunk: ${r.text.slice(-600)}`);
                assert.equal(chunks.at(-1), usageOnly[0], 'the usage chunk comes last, before [DONE]');
                const u = usageOnly[0].json.usage;
                assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
                assert.equal(u.prompt_tokens, mockPromptTokens(prompt));
                const entry = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
                assert.equal(entry.prompt_tokens, u.prompt_tokens);
                assert.equal(entry.completion_tokens, u.completion_tokens);
                if (ESTIMATED.has(preset)) {
                    assert.equal(u.completion_tokens, Math.ceil(content.length / 4), 'completion estimated from the streamed text');
                    assert.equal(u.estimated, true);
                    assert.equal(entry.usage_estimated, true);
                } else {
                    assert.equal(u.completion_tokens, MOCK_WORDS);
                    assert.equal(u.estimated, undefined);
                    assert.equal(entry.usage_estimated, undefined);
                }
                const upstream = await upstreamFor(prompt);
                if (NO_STREAM_OPTIONS.has(preset)) {
                    assert.equal(upstream.body.stream_options, undefined, 'stream_options is not sent');
                    assert.deepEqual(Object.keys(upstream.body).sort(), ['messages', 'model', 'stream']);
                } else {
                    assert.deepEqual(upstream.body.stream_options, { include_usage: true });
                    assert.deepEqual(Object.keys(upstream.body).sort(), ['messages', 'model', 'stream', 'stream_options']);
                }
            });

            test('stream without include_usage: no usage chunk for the client, tokens still logged', async () => {
                const prompt = `stream ${preset} quietly`;
                const r = await stream(chat(`m-${preset}`, prompt, { stream: true }));
                assert.equal(r.status, 200, r.text);
                assert.ok(r.done);
                const chunks = r.events.filter((ev) => ev.data !== '[DONE]');
                assert.ok(!chunks.some((ev) => Array.isArray(ev.json?.choices) && ev.json.choices.length === 0 && ev.json.usage),
                    `no usage-only chunk unless asked: ${r.text.slice(-400)}`);
                const entry = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
                assert.equal(entry.prompt_tokens, mockPromptTokens(prompt));
                assert.ok(entry.completion_tokens > 0, JSON.stringify(entry));
                assert.equal(entry.usage_estimated, ESTIMATED.has(preset) ? true : undefined);
                const upstream = await upstreamFor(prompt);
                assert.equal(upstream.body.stream_options === undefined, NO_STREAM_OPTIONS.has(preset));
            });
        });
    }

    test('mistral: the client\'s own stream_options are not sent either (Mistral answers 422 to them)', async () => {
        const prompt = 'mistral client options';
        const r = await stream(chat('m-mistral', prompt, { stream: true, stream_options: { include_usage: false } }));
        assert.equal(r.status, 200, r.text);
        const upstream = await upstreamFor(prompt);
        assert.equal(upstream.body.stream_options, undefined);
        // and the emulation does refuse them: a generic provider pointed at the same quirk gets the 422
        const refused = await send({ ...chat('c-generic/x@quirk=mistral', 'direct'), stream: true, stream_options: { include_usage: true } });
        assert.equal(refused.status, 422, refused.text);
    });

    test('deepseek: cache hits become prompt_tokens_details.cached_tokens; reasoning_content passes', async () => {
        const prompt = 'deepseek cache hits please';
        const hits = Math.floor(mockPromptTokens(prompt) / 2);
        const r = await send(chat('m-deepseek', prompt));
        assert.equal(r.json.usage.prompt_tokens_details.cached_tokens, hits);
        assert.equal(r.json.usage.prompt_cache_hit_tokens, hits, 'DeepSeek\'s own fields are kept');
        assert.equal(r.json.choices[0].message.reasoning_content, 'mock reasoning.');
        const entry = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
        assert.equal(entry.cached_tokens, hits);

        const st = await stream(chat('m-deepseek', `${prompt} streamed`, { stream: true, stream_options: { include_usage: true } }));
        const usage = st.events.find((ev) => ev.json?.usage && ev.json.choices?.length === 0).json.usage;
        assert.equal(usage.prompt_tokens_details.cached_tokens, Math.floor(mockPromptTokens(`${prompt} streamed`) / 2));
        assert.ok(st.events.some((ev) => ev.json?.choices?.[0]?.delta?.reasoning_content === 'mock reasoning.'));
        const streamed = await s.gw.accessLogFor(st.headers.get('x-sluice-request-id'));
        assert.equal(streamed.cached_tokens, usage.prompt_tokens_details.cached_tokens);
    });

    test('groq: usage read from x_groq.usage when no usage chunk comes', async () => {
        const prompt = 'groq x_groq usage';
        const r = await stream(chat('m-groq', prompt, { stream: true }));
        const last = r.events.filter((ev) => ev.json?.x_groq).at(-1);
        assert.ok(last?.json.x_groq.usage, 'the mock put usage in x_groq (passed through)');
        const entry = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
        assert.equal(entry.prompt_tokens, last.json.x_groq.usage.prompt_tokens);
        assert.equal(entry.completion_tokens, last.json.x_groq.usage.completion_tokens);
    });

    test('generic provider against a usage-less server: tokens stay unknown (no guessing)', async () => {
        const r = await stream(chat('c-generic/x@quirk=ollama', 'generic ollama', { stream: true }));
        assert.equal(r.status, 200);
        const entry = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
        assert.equal(entry.prompt_tokens, null);
        assert.equal(entry.usage_estimated, undefined);
    });
});
