// providers-lib.mjs — shared plumbing for the per-provider end-to-end tests
// (providers-anthropic/gemini/bedrock): one mock, one gateway whose providers point at the mock,
// and the checks every provider must pass (stream shape, client disconnect, no key in any log).
import assert from 'node:assert/strict';

import {
    assembleChat, baseConfig, httpRequestBytes, rawConnect, secret, sha256hex, startGateway, startMock,
    stopAndCollectProblems, waitFor,
} from '../lib/harness.mjs';

/**
 * Starts sluice-mock (mockOpts as in startMock) and a gateway with providers(mockPort, secrets)
 * and models. The ops key (secrets.ops) may use every model; the provider key is secrets.provider,
 * handed to the gateway as $PROVIDER_KEY. The default "mock" (OpenAI-type) provider is kept.
 */
export async function startProviderGateway({ mockOpts = {}, providers, models = {}, env = {}, secrets: extra = {} }) {
    const secrets = { provider: secret('sk-provider'), ops: secret('sk-ops'), ...extra };
    const mock = await startMock(mockOpts);
    let gw;
    try {
        gw = await startGateway({
            config: (port) => baseConfig({
                port, mockPort: mock.port, mockKey: '${PROVIDER_KEY}', providers: providers(mock.port, secrets), models,
                keys: [{ name: 'ops', key_sha256: sha256hex(secrets.ops) }],
            }),
            env: { PROVIDER_KEY: secrets.provider, ...env },
        });
    } catch (err) {
        await mock.stop({ graceMs: 2000 });
        throw err;
    }
    return {
        mock, gw, secrets,
        async stop() {
            const problems = await stopAndCollectProblems(gw);
            await mock.stop({ graceMs: 3000 });
            return problems;
        },
    };
}

/** The mock's token count for a piece of prompt text: ceil(characters / 4). */
export function mockPromptTokens(...texts) {
    return Math.ceil(texts.reduce((n, t) => n + t.length, 0) / 4);
}

/**
 * Checks the OpenAI shape of a translated chat stream and returns the assembled result:
 * every chunk is a chat.completion.chunk with one id, the first carries the assistant role,
 * exactly one finish_reason, a usage chunk (choices: []) last and only when wantUsage, [DONE].
 */
export function checkChatStream(r, { wantUsage }) {
    assert.equal(r.status, 200, r.text);
    assert.ok(r.done, `stream ends with [DONE]: ${r.text.slice(-300)}`);
    const chunks = r.events.filter((ev) => ev.data !== '[DONE]');
    assert.equal(r.events.at(-1).data, '[DONE]');
    assert.ok(chunks.length >= 3, r.text);
    const ids = new Set(chunks.map((ev) => ev.json?.id));
    assert.equal(ids.size, 1, `one id for the whole stream: ${[...ids]}`);
    for (const ev of chunks) assert.equal(ev.json.object, 'chat.completion.chunk');
    assert.equal(chunks[0].json.choices[0].delta.role, 'assistant');
    const a = assembleChat(r.events);
    assert.deepEqual(a.errors, []);
    assert.equal(a.finish.length, 1, `one finish_reason: ${a.finish}`);
    const finishAt = chunks.findIndex((ev) => ev.json.choices?.[0]?.finish_reason);
    if (wantUsage) {
        assert.equal(a.usage.length, 1, 'one usage chunk');
        assert.ok(a.usage[0].choicesEmpty, 'the usage chunk has choices: []');
        assert.equal(chunks.length - 1, finishAt + 1, 'usage chunk right after the finish chunk');
        assert.ok(chunks.at(-1).json.usage, 'usage chunk is the last before [DONE]');
        const u = a.usage[0].usage;
        assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    } else {
        assert.equal(a.usage.length, 0, `no usage chunk unless asked: ${r.text.slice(-400)}`);
        assert.equal(finishAt, chunks.length - 1, 'finish chunk is the last before [DONE]');
    }
    return a;
}

/**
 * A client that hangs up mid-stream: opens a raw streaming request for model, waits for the first
 * content, drops the connection, then waits until the mock has no stream open any more.
 */
export async function hangUpMidStream(s, model, { tag = 'hang up' } = {}) {
    const conn = rawConnect(s.gw.port);
    await conn.connected;
    const { head, body } = httpRequestBytes({
        path: '/v1/chat/completions',
        key: s.secrets.ops,
        body: { model, stream: true, messages: [{ role: 'user', content: `${tag} @mock chunks=40 chunk_delay_ms=100` }] },
    });
    await conn.write(Buffer.concat([head, body]));
    await conn.waitFor((buf) => /"delta":{"content":"[^"]/.test(buf.toString('utf8')), 10000);
    const during = (await s.mock.stats()).open_streams;
    conn.destroy();
    await conn.closed;
    await waitFor(async () => (await s.mock.stats()).open_streams === 0,
        { timeoutMs: 5000, what: 'the mock to see its stream closed (open_streams 0)' });
    return { openDuring: during };
}

/** No secret may appear in anything the gateway printed (logs, access log, errors). */
export function assertNoSecretsLogged(gw, secrets) {
    const out = gw.allOutput();
    for (const value of secrets) {
        assert.ok(value && value.length >= 8, 'a real secret to look for');
        assert.ok(!out.includes(value), `secret ${value.slice(0, 6)}… appears in the gateway's output`);
    }
}
