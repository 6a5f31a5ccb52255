// reliability: fallback on refused connections, 500, 429 and hangs (with the latency each adds),
// streaming fallback before the first byte and none after it, non-retryable errors, retries with
// backoff that honour retry-after within the deadline, per-model timeout overrides, and the
// attempts / fallback reasons in headers and the access log.
//
// Targets differ by model-name directives the mock obeys (`gpt-4o@status=500`); a "dead" provider
// points at a port where nothing listens. Added latency is the median of a failure mode minus the
// median of the same request straight to the healthy target.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
    assembleChat, assertOpenAIError, chat, closedPort, post, startStack, streamRequest, waitFor,
} from '../lib/harness.mjs';
import { median, outcomes, timedChats } from './routing-lib.mjs';

const SAMPLES = 15;
const HANG_FIRST_BYTE_MS = 300;

describe('reliability: fallback, retries, timeouts', { timeout: 120000 }, () => {
    let s;
    let key;
    let baselineMs;
    before(async () => {
        const deadPort = await closedPort();
        const mock = (model) => ({ provider: 'mock', model });
        s = await startStack({
            mock: { threads: 2 },
            providers: {
                // breakers that never open: this suite measures each failure, not the skipping
                dead: {
                    type: 'openai', base_url: `http://127.0.0.1:${deadPort}/v1`, api_key: 'unused',
                    timeouts: { connect_ms: 1000, first_byte_ms: 2000 }, breaker: { failures: 0, error_rate: 0 },
                },
            },
            configTransform: (cfg) => {
                cfg.providers.mock.breaker = { failures: 0, error_rate: 0 };
                return cfg;
            },
            models: {
                refused: { targets: [{ provider: 'dead', model: 'gpt-4o-mini' }, mock('gpt-4o-mini')] },
                err500: { targets: [mock('gpt-4o@status=500'), mock('gpt-4o-mini')] },
                err503: { targets: [mock('gpt-4o@status=503'), mock('gpt-4o-mini')] },
                err429: { targets: [mock('gpt-4o@status=429,retry_after=1'), mock('gpt-4o-mini')] },
                hang: {
                    timeouts: { first_byte_ms: HANG_FIRST_BYTE_MS }, // overrides the provider's 2000
                    targets: [mock('gpt-4o@delay_ms=5000'), mock('gpt-4o-mini')],
                },
                hang_provider_timeout: { targets: [mock('gpt-4o@delay_ms=5000'), mock('gpt-4o-mini')] },
                hang_alone: { targets: [mock('gpt-4o@delay_ms=5000')] },
                backoff_long: {
                    retry: { rounds: 2, backoff_ms: 10 },
                    targets: [mock('gpt-4o@status=429,retry_after=3')],
                },
                idle: {
                    timeouts: { idle_ms: 300 },
                    targets: [mock('gpt-4o'), mock('gpt-4o-mini')],
                },
                bad_request: { targets: [mock('gpt-4o@status=400'), mock('gpt-4o-mini')] },
                only_500: { fallback_on: ['connect', 'timeout'], targets: [mock('gpt-4o@status=500'), mock('gpt-4o-mini')] },
                retry_after: {
                    retry: { rounds: 1, backoff_ms: 10, max_backoff_ms: 20 },
                    targets: [mock('gpt-4o@status=429,retry_after=1')],
                },
                retry_deadline: {
                    retry: { rounds: 10, backoff_ms: 100, max_backoff_ms: 400 }, deadline_ms: 700,
                    targets: [mock('gpt-4o@status=503')],
                },
                retry_after_past_deadline: {
                    retry: { rounds: 3, backoff_ms: 10 }, deadline_ms: 1000,
                    targets: [mock('gpt-4o@status=429,retry_after=5')],
                },
                chain: {
                    targets: [{ provider: 'dead', model: 'a' }, mock('gpt-4o@status=502'), mock('gpt-4o-mini')],
                },
            },
        });
        key = s.secrets.ops;
        await timedChats(s.gw, 'fast', 5, { key }); // warm connections
        baselineMs = median((await timedChats(s.gw, 'fast', SAMPLES, { key })).map((r) => r.ms));
    });
    after(async () => {
        if (!s) return;
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    // Added latency: the median of the failure mode minus the median of the healthy target, the
    // two interleaved request by request so that drift on the machine cancels out.
    async function fallbackAdds(model, expectedReason) {
        const responses = [];
        const baseline = [];
        for (let i = 0; i < SAMPLES; i++) {
            baseline.push((await post(s.gw, 'chat/completions', chat('fast', 'ping'), { key })).ms);
            responses.push(await post(s.gw, 'chat/completions', chat(model, 'ping'), { key }));
        }
        for (const r of responses) {
            assert.equal(r.status, 200, r.text);
            assert.equal(r.headers.get('x-sluice-model'), 'gpt-4o-mini');
            assert.equal(r.headers.get('x-sluice-attempts'), '2');
            assert.match(r.headers.get('x-sluice-fallback-reason'), expectedReason);
        }
        const added = median(responses.map((r) => r.ms)) - median(baseline);
        return { added, responses };
    }

    test('primary refuses connections: the fallback answers with < 50 ms added', async (t) => {
        const { added, responses } = await fallbackAdds('refused', /^dead\/gpt-4o-mini: connect_error/);
        t.diagnostic(`refused: median added latency ${added.toFixed(2)} ms (baseline median ${baselineMs.toFixed(2)} ms)`);
        assert.ok(added < 50, `added ${added} ms`);
        const e = await s.gw.accessLogFor(responses[0].headers.get('x-sluice-request-id'));
        assert.deepEqual(outcomes(e), ['connect_error', 'ok']);
        assert.equal(e.attempt_count, 2);
        assert.equal(e.provider, 'mock');
        assert.match(e.fallback_reason, /dead\/gpt-4o-mini: connect_error/);
    });

    test('primary answers 500 / 503: the fallback answers with < 50 ms added', async (t) => {
        for (const [model, code] of [['err500', 500], ['err503', 503]]) {
            const { added, responses } = await fallbackAdds(model, new RegExp(`^mock/gpt-4o@status=${code}: http_${code}`));
            t.diagnostic(`${code}: median added latency ${added.toFixed(2)} ms`);
            assert.ok(added < 50, `added ${added} ms`);
            const e = await s.gw.accessLogFor(responses[0].headers.get('x-sluice-request-id'));
            assert.deepEqual(outcomes(e), [`http_${code}`, 'ok']);
        }
    });

    test('primary answers 429 with retry-after: the fallback answers at once (< 50 ms added)', async (t) => {
        const { added, responses } = await fallbackAdds('err429', /http_429/);
        t.diagnostic(`429: median added latency ${added.toFixed(2)} ms`);
        assert.ok(added < 50, `added ${added} ms: the fallback does not wait for retry-after`);
        assert.equal(responses[0].headers.get('retry-after'), null, 'a served answer carries no retry-after');
    });

    test('primary hangs: the fallback answers within the first-byte timeout + 50 ms', async (t) => {
        const responses = await timedChats(s.gw, 'hang', 5, { key });
        for (const r of responses) {
            assert.equal(r.status, 200, r.text);
            assert.equal(r.headers.get('x-sluice-model'), 'gpt-4o-mini');
            assert.match(r.headers.get('x-sluice-fallback-reason'), /gpt-4o@delay_ms=5000: timeout/);
        }
        const ms = responses.map((r) => r.ms);
        t.diagnostic(`hang: ${ms.map((x) => x.toFixed(1)).join(', ')} ms (first_byte_ms ${HANG_FIRST_BYTE_MS})`);
        assert.ok(Math.max(...ms) < HANG_FIRST_BYTE_MS + 50, `slowest ${Math.max(...ms)} ms`);
        assert.ok(Math.min(...ms) >= HANG_FIRST_BYTE_MS - 5, 'the model override of first_byte_ms applied');
    });

    test('the provider first-byte timeout applies where the model sets none', async () => {
        const r = await post(s.gw, 'chat/completions', chat('hang_provider_timeout', 'x'), { key });
        assert.equal(r.status, 200);
        assert.ok(r.ms >= 1990 && r.ms < 2050 + baselineMs, `${r.ms} ms, provider first_byte_ms is 2000`);
    });

    test('streaming: fallback before the first byte, the client sees one clean stream', async () => {
        for (const model of ['refused', 'err500', 'hang']) {
            const r = await streamRequest(`${s.gw.base}/chat/completions`, chat(model, 'stream me', { stream: true }), { key });
            assert.equal(r.status, 200, r.text);
            assert.equal(r.headers.get('x-sluice-attempts'), '2', model);
            assert.ok(r.done, 'the stream ended with [DONE]');
            assert.match(assembleChat(r.events).content, /mock reply to: stream me/);
        }
    });

    test('no retry after the first byte: a stream that stalls ends with an error event', async () => {
        await s.mock.reset();
        const r = await streamRequest(`${s.gw.base}/chat/completions`,
            chat('idle', 'stall @mock chunks=5 hang_after=2', { stream: true }), { key });
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('x-sluice-attempts'), '1');
        const last = r.events.filter((e) => e.json).at(-1);
        assert.ok(last.json.error, `ends with an error event: ${JSON.stringify(last)}`);
        assert.match(last.json.error.message, /idle gap/);
        const requests = (await s.mock.requests()).filter((q) => /chat\/completions/.test(q.path));
        assert.equal(requests.length, 1, 'the second target was not tried');
        const e = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
        assert.equal(e.status, 200);
        assert.ok(e.error_type, 'the broken stream is logged');
    });

    test('a 400 is not retried: the client gets it at once', async () => {
        const r = await post(s.gw, 'chat/completions', chat('bad_request', 'x'), { key });
        assert.equal(r.status, 400, r.text);
        assertOpenAIError(r.json);
        assert.equal(r.headers.get('x-sluice-attempts'), '1');
    });

    test('fallback_on limits what moves on: 500 is returned when only connect/timeout are listed', async () => {
        const r = await post(s.gw, 'chat/completions', chat('only_500', 'x'), { key });
        assert.equal(r.status, 500, r.text);
        assert.equal(r.headers.get('x-sluice-attempts'), '1');
    });

    test('a chain of failures: every reason in order in the header and the log', async () => {
        const r = await post(s.gw, 'chat/completions', chat('chain', 'x'), { key });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers.get('x-sluice-attempts'), '3');
        assert.equal(r.headers.get('x-sluice-fallback-reason'),
            'dead/a: connect_error; mock/gpt-4o@status=502: http_502');
        const e = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
        assert.deepEqual(outcomes(e), ['connect_error', 'http_502', 'ok']);
        assert.deepEqual(e.attempts.map((a) => a.provider), ['dead', 'mock', 'mock']);
        for (const a of e.attempts) assert.equal(typeof a.latency_ms, 'number');
    });

    test('retries honour retry-after: the second round waits for it', async () => {
        const r = await post(s.gw, 'chat/completions', chat('retry_after', 'x'), { key });
        assert.equal(r.status, 429, r.text);
        assert.equal(r.headers.get('x-sluice-attempts'), '2');
        assert.equal(r.headers.get('retry-after'), '1');
        assert.ok(r.ms >= 1000 && r.ms < 1500, `${r.ms} ms: waited the 1 s retry-after once`);
    });

    test('retries stop at the deadline', async () => {
        const r = await post(s.gw, 'chat/completions', chat('retry_deadline', 'x'), { key });
        assert.equal(r.status, 503, r.text);
        const attempts = Number(r.headers.get('x-sluice-attempts'));
        assert.ok(attempts >= 2, `retried (${attempts} attempts)`);
        assert.ok(r.ms < 700 + 50, `${r.ms} ms within the 700 ms deadline`);
    });

    test('a retry-after beyond the deadline is not waited for', async () => {
        const r = await post(s.gw, 'chat/completions', chat('retry_after_past_deadline', 'x'), { key });
        assert.equal(r.status, 429, r.text);
        assert.equal(r.headers.get('x-sluice-attempts'), '1');
        assert.equal(r.headers.get('retry-after'), '5', 'the client learns when to come back');
        assert.ok(r.ms < 200, `${r.ms} ms: gave up at once`);
    });

    test('x-sluice-deadline-ms shortens the deadline for one request', async () => {
        const r = await post(s.gw, 'chat/completions', chat('hang_alone', 'x'),
            { key, headers: { 'x-sluice-deadline-ms': '400' } });
        assert.equal(r.status, 504, r.text);
        assert.ok(r.ms >= 395 && r.ms < 400 + 50, `${r.ms} ms, not the provider's 2000 ms first-byte timeout`);
    });

    test('a client that leaves during the backoff wait ends the request (499), nothing leaks', async () => {
        await assert.rejects(post(s.gw, 'chat/completions', chat('backoff_long', 'leaving'), { key, timeoutMs: 300 }));
        const e = await waitFor(() => s.gw.accessLog().find((l) => l.model === 'backoff_long'),
            { timeoutMs: 3000, what: 'the access-log line of the abandoned request' });
        assert.equal(e.status, 499);
        assert.ok(e.latency_ms < 1000, `${e.latency_ms} ms: ended when the client left, not after retry-after`);
        assert.deepEqual(outcomes(e), ['http_429']);
    });
});
