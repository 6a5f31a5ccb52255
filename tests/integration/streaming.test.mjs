// streaming: SSE framing and [DONE], incremental delivery (first chunk before the upstream
// finishes), usage: always requested upstream, stripped unless the client asked, passed through
// when it did; tool-call fragments; long streams; an upstream error after 200 and an upstream
// reset mid-stream both end the client's stream promptly (error event or close, never a hang and
// never a clean [DONE] that hides the failure).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
    assembleChat, assertOpenAIError, chat, mockReplyPrefix, post, startStack, streamRequest,
} from '../lib/harness.mjs';

describe('streaming', { timeout: 90000 }, () => {
    let s;
    const url = () => `${s.gw.base}/chat/completions`;
    before(async () => {
        s = await startStack({ timeouts: { idle_ms: 3000 } });
    });
    after(async () => {
        if (!s) return;
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    function assertChunksWellFormed(events) {
        for (const ev of events) {
            if (ev.data === '[DONE]') continue;
            assert.ok(ev.json, `every event is JSON or [DONE]: ${ev.data}`);
            if (ev.json.error) continue;
            assert.equal(ev.json.object, 'chat.completion.chunk', ev.data);
            assert.ok(Array.isArray(ev.json.choices), ev.data);
        }
    }

    test('stream: SSE framing, content, finish_reason, [DONE] last; same content as non-stream', async () => {
        const prompt = 'stream me a reply';
        const r = await streamRequest(url(), chat('fast', prompt, { stream: true }), { key: s.secrets.ops });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.error, null, `stream ended cleanly: ${r.error}`);
        assert.match(r.headers.get('content-type') || '', /^text\/event-stream/);
        assert.ok(r.headers.get('x-sluice-request-id'), 'x-sluice-request-id on a stream');
        assert.equal(r.headers.get('x-sluice-provider'), 'mock');
        assert.equal(r.headers.get('x-sluice-model'), 'gpt-4o-mini');
        assert.ok(r.done, 'stream ends with data: [DONE]');
        assert.equal(r.events.at(-1).data, '[DONE]', '[DONE] is the last event');
        assert.equal(r.events.filter((e) => e.data === '[DONE]').length, 1);
        assertChunksWellFormed(r.events);
        const a = assembleChat(r.events);
        assert.equal(a.role, 'assistant');
        assert.deepEqual(a.errors, []);
        assert.deepEqual(a.finish, ['stop']);
        assert.ok(a.content.startsWith(mockReplyPrefix(prompt)), a.content);
        const ids = new Set(r.events.filter((e) => e.json).map((e) => e.json.id));
        assert.equal(ids.size, 1, 'all chunks share one id');

        const ns = await post(s.gw, 'chat/completions', chat('fast', prompt), { key: s.secrets.ops });
        assert.equal(ns.status, 200);
        assert.equal(a.content, ns.json.choices[0].message.content, 'stream assembles to the non-stream content');
    });

    test('usage chunk is stripped when the client did not ask, yet include_usage is forced upstream', async () => {
        const marker = `nousage-${Date.now()}`;
        const r = await streamRequest(url(), chat('fast', marker, { stream: true }), { key: s.secrets.ops });
        assert.equal(r.status, 200, r.text);
        assert.ok(r.done);
        const a = assembleChat(r.events);
        assert.deepEqual(a.usage.filter((u) => u.usage), [], `no usage chunk reaches the client: ${JSON.stringify(a.usage)}`);
        assert.ok(!r.events.some((e) => e.json && Array.isArray(e.json.choices) && e.json.choices.length === 0),
            'no choices:[] chunk reaches the client');
        const up = await s.mock.findRequest((q) => JSON.stringify(q.body).includes(marker));
        assert.equal(up.body.stream, true);
        assert.equal(up.body.stream_options?.include_usage, true, `upstream asked for usage: ${JSON.stringify(up.body.stream_options)}`);
    });

    test('explicit include_usage:false is also stripped and still forced upstream', async () => {
        const marker = `usagefalse-${Date.now()}`;
        const body = chat('fast', marker, { stream: true, stream_options: { include_usage: false } });
        const r = await streamRequest(url(), body, { key: s.secrets.ops });
        assert.equal(r.status, 200, r.text);
        assert.ok(r.done);
        assert.deepEqual(assembleChat(r.events).usage.filter((u) => u.usage), []);
        const up = await s.mock.findRequest((q) => JSON.stringify(q.body).includes(marker));
        assert.equal(up.body.stream_options?.include_usage, true);
    });

    test('usage chunk passes through when the client asked for it', async () => {
        const prompt = 'count my tokens please';
        const body = chat('fast', prompt, { stream: true, stream_options: { include_usage: true } });
        const r = await streamRequest(url(), body, { key: s.secrets.ops });
        assert.equal(r.status, 200, r.text);
        assert.ok(r.done);
        const a = assembleChat(r.events);
        const usageChunks = a.usage.filter((u) => u.usage);
        assert.equal(usageChunks.length, 1, `exactly one usage chunk: ${JSON.stringify(a.usage)}`);
        assert.ok(usageChunks[0].choicesEmpty, 'usage chunk has choices: []');
        const u = usageChunks[0].usage;
        assert.equal(u.prompt_tokens, Math.ceil(prompt.length / 4));
        assert.equal(u.completion_tokens, a.content.split(/\s+/).filter(Boolean).length);
        assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
        // the usage chunk comes after the finish chunk and right before [DONE]
        const usageIdx = r.events.findIndex((e) => e.json?.usage);
        const finishIdx = r.events.findIndex((e) => e.json?.choices?.[0]?.finish_reason);
        assert.ok(finishIdx >= 0 && usageIdx > finishIdx, 'usage after finish_reason');
        assert.equal(r.events[usageIdx + 1]?.data, '[DONE]');
    });

    test('chunks are forwarded as they arrive (first chunk long before the upstream finishes)', async () => {
        const body = chat('fast', 'slowly please @mock chunks=10 chunk_delay_ms=200', { stream: true });
        const r = await streamRequest(url(), body, { key: s.secrets.ops });
        assert.equal(r.status, 200, r.text);
        assert.ok(r.done);
        const contentEvents = r.events.filter((e) => e.json?.choices?.[0]?.delta?.content);
        assert.ok(contentEvents.length >= 5, `several content chunks: ${contentEvents.length}`);
        const firstAt = contentEvents[0].t - r.t0;
        const spread = contentEvents.at(-1).t - contentEvents[0].t;
        // the upstream takes ~2 s in total; the first piece must not wait for the end
        assert.ok(firstAt < 1200, `first content after ${firstAt.toFixed(0)} ms`);
        assert.ok(spread >= 1000, `content chunks spread over ${spread.toFixed(0)} ms (not buffered)`);
    });

    test('streamed tool call fragments are passed through and assemble', async () => {
        const tools = [{ type: 'function', function: { name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
        const body = chat('fast', 'what is the weather in Paris?', { stream: true, tools });
        const r = await streamRequest(url(), body, { key: s.secrets.ops });
        assert.equal(r.status, 200, r.text);
        assert.ok(r.done);
        const a = assembleChat(r.events);
        assert.equal(a.tools.length, 1);
        assert.equal(a.tools[0].name, 'get_weather');
        assert.equal(a.tools[0].type, 'function');
        assert.ok(a.tools[0].id, 'tool call id present');
        assert.deepEqual(JSON.parse(a.tools[0].arguments), { city: 'Paris' });
        assert.deepEqual(a.finish, ['tool_calls']);
    });

    test('long stream (many chunks) arrives whole', async () => {
        const prompt = 'long one @mock words=1500 chunks=300';
        const r = await streamRequest(url(), chat('fast', prompt, { stream: true }), { key: s.secrets.ops });
        assert.equal(r.status, 200, r.text);
        assert.ok(r.done);
        const a = assembleChat(r.events);
        const ns = await post(s.gw, 'chat/completions', chat('fast', prompt), { key: s.secrets.ops });
        assert.equal(ns.status, 200);
        assert.equal(a.content, ns.json.choices[0].message.content);
        assert.ok(a.content.split(/\s+/).length >= 1500);
    });

    test('upstream error after 200 ends the stream with an OpenAI-shaped error event', async () => {
        const body = chat('fast', 'fail midway @mock error_after=3 chunks=10', { stream: true });
        const r = await streamRequest(url(), body, { key: s.secrets.ops, timeoutMs: 10000 });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.timedOut, false, 'the stream did not hang');
        const errEvents = r.events.filter((e) => e.json?.error);
        assert.equal(errEvents.length, 1, `one error event: ${r.text}`);
        assertOpenAIError(errEvents[0].json, {}, 'stream error event');
        const errIdx = r.events.indexOf(errEvents[0]);
        assert.ok(r.events.slice(0, errIdx).some((e) => e.json?.choices?.[0]?.delta?.content !== undefined),
            'content chunks were forwarded before the error');
        assert.ok(r.events.slice(errIdx + 1).every((e) => e.data === '[DONE]'), 'nothing but [DONE] after the error event');
    });

    test('upstream reset mid-stream: the client stream ends (error event or close), no hang, no silent [DONE]', async () => {
        const body = chat('fast', 'reset midway @mock reset_after=3 chunks=10 chunk_delay_ms=20', { stream: true });
        const r = await streamRequest(url(), body, { key: s.secrets.ops, timeoutMs: 10000 });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.timedOut, false, `the stream ended by itself (took ${(r.tEnd - r.t0).toFixed(0)} ms)`);
        assert.ok(r.tEnd - r.t0 < 5000, 'ended well within the idle timeout window');
        const errEvents = r.events.filter((e) => e.json?.error);
        for (const e of errEvents) assertOpenAIError(e.json, {}, 'stream error event');
        const endedWithError = errEvents.length > 0 || r.error !== null;
        assert.ok(endedWithError, `the client learns the stream failed (error event or abnormal close); got: ${r.text.slice(-300)}`);
        if (r.done) assert.ok(errEvents.length > 0, '[DONE] only after an error event');
    });

    test('upstream stalls mid-stream beyond idle_ms: error event or close, no hang', async () => {
        // chunk_delay_ms 5000 > idle_ms 3000 in this gateway's config
        const body = chat('fast', 'stall @mock chunks=4 chunk_delay_ms=5000', { stream: true });
        const r = await streamRequest(url(), body, { key: s.secrets.ops, timeoutMs: 12000 });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.timedOut, false, `the stream ended by itself (took ${(r.tEnd - r.t0).toFixed(0)} ms)`);
        const errEvents = r.events.filter((e) => e.json?.error);
        for (const e of errEvents) assertOpenAIError(e.json, {}, 'stream error event');
        assert.ok(errEvents.length > 0 || r.error !== null, `stream reports the failure: ${r.text.slice(-300)}`);
        if (r.done) assert.ok(errEvents.length > 0, '[DONE] only after an error event');
    });

    test('gateway serves normally after broken streams', async () => {
        const r = await streamRequest(url(), chat('fast', 'after the storm', { stream: true }), { key: s.secrets.ops });
        assert.equal(r.status, 200);
        assert.ok(r.done);
        assert.ok(assembleChat(r.events).content.startsWith(mockReplyPrefix('after the storm')));
    });

    test('upstream error before the first byte of a stream is a plain HTTP error, not SSE', async () => {
        const body = chat('fast', 'nope @mock status=503', { stream: true });
        const r = await streamRequest(url(), body, { key: s.secrets.ops });
        assert.equal(r.status, 503, r.text);
        assert.ok(!(r.headers.get('content-type') || '').includes('text/event-stream'));
        assertOpenAIError(r.json);
    });

    test('concurrent streams are independent', async () => {
        const prompts = Array.from({ length: 8 }, (_, i) => `parallel stream ${i} @mock chunks=8 chunk_delay_ms=30`);
        const results = await Promise.all(prompts.map((p) => streamRequest(url(), chat('fast', p, { stream: true }), { key: s.secrets.ops })));
        results.forEach((r, i) => {
            assert.equal(r.status, 200);
            assert.ok(r.done, `stream ${i} completed`);
            const content = assembleChat(r.events).content;
            assert.ok(content.startsWith(`mock reply to: parallel stream ${i} `), `stream ${i} got its own content: ${content.slice(0, 60)}`);
        });
    });
});
