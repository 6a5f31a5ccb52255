// access log: one JSON line per request on stdout, matched to the response by request_id, with the
// contract fields (request_id, time, key name, model, provider, upstream_model, status, latency_ms,
// ttfb_ms, prompt_tokens, completion_tokens, stream, bytes_in, bytes_out, error_type) for
// successes, streams (tokens known even when the usage chunk was stripped), gateway errors,
// upstream errors and streams that broke after 200. Also: no secret (provider api_key, virtual
// key secrets) ever appears in the gateway's stdout or stderr, and stderr is JSON lines.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
    assembleChat, chat, post, sleep, startStack, streamRequest, waitFor,
} from '../lib/harness.mjs';

describe('access log', { timeout: 60000 }, () => {
    let s;
    before(async () => {
        s = await startStack({ models: { smart: { targets: [{ provider: 'mock', model: 'gpt-4o' }] } } });
    });
    after(async () => {
        if (!s) return;
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    const FIELDS = ['request_id', 'time', 'key', 'model', 'provider', 'upstream_model', 'status', 'latency_ms',
        'ttfb_ms', 'prompt_tokens', 'completion_tokens', 'stream', 'bytes_in', 'bytes_out'];

    function checkCommon(e, { status, stream }) {
        for (const f of FIELDS) assert.ok(f in e, `access log has "${f}": ${JSON.stringify(e)}`);
        assert.equal(typeof e.request_id, 'string');
        assert.equal(e.status, status);
        assert.equal(e.stream, stream);
        const t = typeof e.time === 'number' ? (e.time > 1e12 ? e.time : e.time * 1000) : Date.parse(e.time);
        assert.ok(Number.isFinite(t) && Math.abs(Date.now() - t) < 5 * 60 * 1000, `time is a current timestamp: ${e.time}`);
        assert.equal(typeof e.latency_ms, 'number');
        assert.ok(e.latency_ms >= 0);
        if (e.ttfb_ms !== null) {
            assert.equal(typeof e.ttfb_ms, 'number');
            assert.ok(e.ttfb_ms >= 0 && e.ttfb_ms <= e.latency_ms + 1, `ttfb ${e.ttfb_ms} ≤ latency ${e.latency_ms}`);
        }
        assert.equal(typeof e.bytes_in, 'number');
        assert.equal(typeof e.bytes_out, 'number');
    }

    test('non-stream success', async () => {
        const body = chat('fast', 'log me please');
        const r = await post(s.gw, 'chat/completions', body, { key: s.secrets.app });
        assert.equal(r.status, 200, r.text);
        const e = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
        checkCommon(e, { status: 200, stream: false });
        assert.equal(e.key, 'app', 'the key name, never the secret');
        assert.equal(e.model, 'fast');
        assert.equal(e.provider, 'mock');
        assert.equal(e.upstream_model, 'gpt-4o-mini');
        assert.equal(e.prompt_tokens, r.json.usage.prompt_tokens);
        assert.equal(e.completion_tokens, r.json.usage.completion_tokens);
        assert.ok(e.error_type === null || e.error_type === undefined, `no error_type: ${e.error_type}`);
        const inLen = Buffer.byteLength(JSON.stringify(body));
        assert.ok(e.bytes_in >= inLen && e.bytes_in <= inLen + 4096, `bytes_in ${e.bytes_in} ~ body ${inLen}`);
        const outLen = Buffer.byteLength(r.text);
        assert.ok(e.bytes_out >= outLen && e.bytes_out <= outLen + 4096, `bytes_out ${e.bytes_out} ~ body ${outLen}`);
        assert.ok(e.latency_ms < 5000);
        assert.equal(typeof e.ttfb_ms, 'number');
    });

    test('exactly one line per request', async () => {
        const ids = [];
        for (let i = 0; i < 5; i++) {
            const r = await post(s.gw, 'chat/completions', chat('fast', `count ${i}`), { key: s.secrets.ops });
            ids.push(r.headers.get('x-sluice-request-id'));
        }
        await s.gw.accessLogFor(ids.at(-1));
        await sleep(200);
        for (const id of ids) {
            assert.equal(s.gw.accessLog().filter((e) => e.request_id === id).length, 1, `one line for ${id}`);
        }
        assert.equal(s.gw.accessLog().find((e) => e.request_id === ids[0]).key, 'ops');
    });

    test('stream without include_usage still logs the tokens', async () => {
        const prompt = 'stream and log';
        const r = await streamRequest(`${s.gw.base}/chat/completions`, chat('fast', prompt, { stream: true }), { key: s.secrets.ops });
        assert.equal(r.status, 200);
        assert.ok(r.done);
        const content = assembleChat(r.events).content;
        const e = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
        checkCommon(e, { status: 200, stream: true });
        assert.equal(e.key, 'ops');
        assert.equal(e.prompt_tokens, Math.ceil(prompt.length / 4));
        assert.equal(e.completion_tokens, content.split(/\s+/).filter(Boolean).length);
        assert.ok(e.error_type === null || e.error_type === undefined);
        assert.ok(e.bytes_out >= Buffer.byteLength(r.text), `bytes_out ${e.bytes_out} ≥ streamed ${Buffer.byteLength(r.text)}`);
    });

    test('stream with include_usage logs the same tokens the client saw', async () => {
        const body = chat('fast', 'stream usage log', { stream: true, stream_options: { include_usage: true } });
        const r = await streamRequest(`${s.gw.base}/chat/completions`, body, { key: s.secrets.ops });
        const u = assembleChat(r.events).usage.find((x) => x.usage)?.usage;
        assert.ok(u, 'usage chunk present');
        const e = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
        assert.equal(e.prompt_tokens, u.prompt_tokens);
        assert.equal(e.completion_tokens, u.completion_tokens);
    });

    test('ttfb of a slow stream reflects the first chunk, latency the whole stream', async () => {
        const body = chat('fast', 'timing @mock chunks=6 chunk_delay_ms=150', { stream: true });
        const r = await streamRequest(`${s.gw.base}/chat/completions`, body, { key: s.secrets.ops });
        assert.ok(r.done);
        const e = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
        assert.ok(e.latency_ms >= 600, `latency ${e.latency_ms} covers the stream`);
        assert.ok(e.ttfb_ms < e.latency_ms - 300, `ttfb ${e.ttfb_ms} well before the end (${e.latency_ms})`);
    });

    test('401 is logged with an error_type and without a key name', async () => {
        const r = await post(s.gw, 'chat/completions', chat('fast', 'x'), { key: 'sk-not-a-real-key-000' });
        assert.equal(r.status, 401);
        const id = r.headers.get('x-sluice-request-id');
        assert.ok(id, 'x-sluice-request-id is set on error responses too');
        const e = await s.gw.accessLogFor(id);
        assert.equal(e.status, 401);
        assert.equal(typeof e.error_type, 'string');
        assert.ok(e.key === null || e.key === undefined || e.key === '', `no key name on 401: ${e.key}`);
    });

    test('403 and 404 are logged with an error_type', async () => {
        const f = await post(s.gw, 'chat/completions', chat('smart', 'x'), { key: s.secrets.app });
        assert.equal(f.status, 403);
        const ef = await s.gw.accessLogFor(f.headers.get('x-sluice-request-id'));
        assert.equal(ef.status, 403);
        assert.equal(ef.key, 'app');
        assert.equal(typeof ef.error_type, 'string');

        const n = await post(s.gw, 'chat/completions', chat('nope-model', 'x'), { key: s.secrets.ops });
        assert.equal(n.status, 404);
        const en = await s.gw.accessLogFor(n.headers.get('x-sluice-request-id'));
        assert.equal(en.status, 404);
        assert.equal(en.model, 'nope-model');
        assert.equal(typeof en.error_type, 'string');
    });

    test('upstream 500 is logged with status 500, provider and error_type', async () => {
        const r = await post(s.gw, 'chat/completions', chat('fast', 'boom @mock status=500'), { key: s.secrets.ops });
        assert.equal(r.status, 500);
        const e = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
        assert.equal(e.status, 500);
        assert.equal(e.provider, 'mock');
        assert.equal(e.upstream_model, 'gpt-4o-mini');
        assert.equal(typeof e.error_type, 'string');
    });

    test('a stream that broke after 200 keeps status 200 and has an error_type', async () => {
        const body = chat('fast', 'break @mock error_after=2', { stream: true });
        const r = await streamRequest(`${s.gw.base}/chat/completions`, body, { key: s.secrets.ops });
        assert.equal(r.status, 200);
        const e = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
        assert.equal(e.status, 200);
        assert.equal(e.stream, true);
        assert.equal(typeof e.error_type, 'string', `error_type set: ${JSON.stringify(e)}`);
    });

    test('malformed request is logged', async () => {
        const r = await post(s.gw, 'chat/completions', '{"model":', { key: s.secrets.ops });
        assert.equal(r.status, 400);
        const e = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
        assert.equal(e.status, 400);
        assert.equal(typeof e.error_type, 'string');
    });

    test('no secret appears in stdout or stderr', async () => {
        // make sure the mock really received the provider key (so the check is not vacuous)
        const up = await s.mock.requests();
        assert.ok(up.some((q) => JSON.stringify(q.headers).includes(s.secrets.mockKey)), 'the mock saw the provider key');
        await sleep(200);
        const out = s.gw.allOutput();
        assert.ok(out.length > 0);
        for (const [name, value] of Object.entries(s.secrets)) {
            assert.ok(!out.includes(value), `${name} secret leaked into the gateway's output`);
            assert.ok(!out.includes(value.slice(-16)), `the tail of the ${name} secret leaked into the gateway's output`);
        }
    });

    test('stderr is JSON lines', async () => {
        await waitFor(() => s.gw.stderrLines.length > 0, { what: 'a stderr line' });
        for (const line of s.gw.stderrLines) {
            if (!line.trim()) continue;
            let obj;
            assert.doesNotThrow(() => { obj = JSON.parse(line); }, `stderr line is JSON: ${line}`);
            assert.equal(typeof obj, 'object');
        }
    });

    test('stdout carries only JSON lines', async () => {
        for (const line of s.gw.stdoutLines) {
            if (!line.trim()) continue;
            assert.doesNotThrow(() => JSON.parse(line), `stdout line is JSON: ${line}`);
        }
    });
});

describe('no secrets in the output at debug log level', { timeout: 60000 }, () => {
    let s;
    before(async () => {
        s = await startStack({ logging: { level: 'debug' } });
    });
    after(async () => {
        if (!s) return;
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    test('successes, streams and failures at debug level leak no secret', async () => {
        await post(s.gw, 'chat/completions', chat('fast', 'debug one'), { key: s.secrets.app });
        await post(s.gw, 'chat/completions', chat('fast', 'debug two'), { key: s.secrets.ops });
        await streamRequest(`${s.gw.base}/chat/completions`, chat('fast', 'debug stream', { stream: true }), { key: s.secrets.ops });
        await post(s.gw, 'chat/completions', chat('fast', 'debug 401 @mock status=401'), { key: s.secrets.ops });
        await post(s.gw, 'chat/completions', chat('fast', 'debug 500 @mock status=500'), { key: s.secrets.ops });
        await streamRequest(`${s.gw.base}/chat/completions`, chat('fast', 'x @mock error_after=1', { stream: true }), { key: s.secrets.ops });
        await post(s.gw, 'chat/completions', chat('fast', 'bad key'), { key: `${s.secrets.app}-wrong` });
        await sleep(300);
        const out = s.gw.allOutput();
        for (const [name, value] of Object.entries(s.secrets)) {
            assert.ok(!out.includes(value), `${name} secret leaked into the gateway's output at debug level`);
            assert.ok(!out.includes(value.slice(-16)), `the tail of the ${name} secret leaked at debug level`);
        }
    });
});
