// cache-embedder.test.mjs — the semantic cache with `embedder: provider`, through the real binary:
// the mock's /v1/embeddings (deterministic hashed-trigram vectors: a stand-in for a real embedding
// model, so the similarities here say nothing about real paraphrase quality) embeds the last user
// message; a close rewording hits, an unrelated question misses, and what reached the mock is
// checked. An embedder that fails (HTTP 500, closed port, timeout) degrades to a miss: the request
// still succeeds, the failure is counted, and the exact layer keeps working.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { binariesPresent, chat, closedPort, post, request, startStack } from '../lib/harness.mjs';

const present = binariesPresent();
const unique = () => Math.random().toString(36).slice(2, 8);

function cacheConfig(semantic) {
    return (cfg) => ({ ...cfg, cache: { exact: { ttl: 3600 }, semantic: { ttl: 3600, ...semantic } } });
}

const text = (body) => (typeof body === 'string' ? body : JSON.stringify(body ?? ''));
const embeddingCalls = async (stack) => (await stack.mock.requests())
    .filter((r) => r.path.endsWith('/embeddings'))
    .map((r) => ({ ...r, json: typeof r.body === 'string' ? JSON.parse(r.body) : r.body }));
const chatCalls = async (stack, needle) => (await stack.mock.requests())
    .filter((r) => r.path.endsWith('/chat/completions') && text(r.body).includes(needle)).length;
const embedErrors = async (stack) => {
    const metrics = await request(`${stack.gw.url}/metrics`);
    const match = metrics.text.match(/^sluice_cache_embed_errors_total (\d+)/m);
    assert.ok(match, 'sluice_cache_embed_errors_total is exported');
    return Number(match[1]);
};

describe('cache with a provider embedder', { skip: !present.ok && `missing ${present.missing}` }, () => {
    let stack;
    before(async () => {
        stack = await startStack({
            configTransform: cacheConfig({ embedder: 'provider', provider: 'mock', model: 'text-embedding-3-small',
                threshold: 0.9, timeout_ms: 2000 }),
        });
    });
    after(async () => {
        const problems = await stack?.stop();
        assert.deepEqual(problems ?? [], []);
    });
    const ask = (content) => post(stack.gw, 'chat/completions', chat('fast', content), { key: stack.secrets.app });

    test('a rewording hits through the provider embedding; an unrelated question misses', async () => {
        const tag = unique();
        const question = `How do I cancel my subscription to the premium plan ${tag}?`;
        const first = await ask(question);
        assert.equal(first.status, 200);
        assert.equal(first.headers.get('x-sluice-cache'), 'miss');

        const calls = await embeddingCalls(stack);
        const call = calls.find((c) => c.json.input === question);
        assert.ok(call, `the last user message was embedded as is: ${JSON.stringify(calls.map((c) => c.json))}`);
        assert.equal(call.json.model, 'text-embedding-3-small');
        assert.equal(call.path, '/v1/embeddings');
        assert.equal(call.headers.authorization, `Bearer ${stack.secrets.mockKey}`, "the provider's own key");
        assert.ok(!text(call.body).includes(stack.secrets.app), 'the caller key never reaches the embedder');

        const reworded = await ask(`how do i cancel my subscription to the premium plan ${tag}`);
        assert.equal(reworded.status, 200);
        assert.equal(reworded.headers.get('x-sluice-cache'), 'hit');
        assert.equal(reworded.headers.get('x-sluice-cache-layer'), 'semantic');
        const similarity = Number(reworded.headers.get('x-sluice-cache-similarity'));
        assert.ok(similarity >= 0.9 && similarity <= 1, `similarity ${similarity}`);
        assert.equal(reworded.json.choices[0].message.content, first.json.choices[0].message.content);
        assert.equal(await chatCalls(stack, tag), 1, 'the hit did not reach the chat endpoint');

        const unrelated = await ask(`What is the weather in Paris tomorrow ${tag}?`);
        assert.equal(unrelated.status, 200);
        assert.equal(unrelated.headers.get('x-sluice-cache'), 'miss');
        const near = await ask(`How do I upgrade my subscription to the premium plan ${tag}?`);
        assert.equal(near.headers.get('x-sluice-cache'), 'miss', 'another verb, below the threshold');
        assert.equal(await chatCalls(stack, tag), 3);
        assert.equal(await embedErrors(stack), 0);
    });

    test('an exact repeat is served by the exact layer without an embedding call', async () => {
        const question = `Which ports does the gateway listen on ${unique()}?`;
        assert.equal((await ask(question)).headers.get('x-sluice-cache'), 'miss');
        const before = (await embeddingCalls(stack)).filter((c) => c.json.input === question).length;
        const again = await ask(question);
        assert.equal(again.headers.get('x-sluice-cache'), 'hit');
        assert.equal(again.headers.get('x-sluice-cache-layer'), 'exact');
        assert.equal((await embeddingCalls(stack)).filter((c) => c.json.input === question).length, before);
    });
});

/* One stack per broken embedder: the semantic settings are process-wide. */
for (const [name, semantic, providers] of [
    ['answers 500', { model: 'text-embedding-3-small@status=500' }],
    ['is a closed port', { provider: 'deadembed' }, async () => ({
        deadembed: { type: 'openai', base_url: `http://127.0.0.1:${await closedPort()}/v1`, api_key: 'sk-none' },
    })],
    ['times out', { model: 'text-embedding-3-small@delay_ms=5000', timeout_ms: 300 }],
]) {
    describe(`cache when the embedder ${name}`, { skip: !present.ok && `missing ${present.missing}` }, () => {
        let stack;
        before(async () => {
            stack = await startStack({
                providers: providers ? await providers() : undefined,
                configTransform: cacheConfig({ embedder: 'provider', provider: 'mock', model: 'text-embedding-3-small',
                    threshold: 0.9, timeout_ms: 2000, ...semantic }),
            });
        });
        after(async () => {
            const problems = await stack?.stop();
            assert.deepEqual(problems ?? [], []);
        });

        test('the request still succeeds as a miss, the failure is counted, exact hits still work', async () => {
            const errorsBefore = await embedErrors(stack);
            const question = `How do I reset my password ${unique()}?`;
            const started = Date.now();
            const first = await post(stack.gw, 'chat/completions', chat('fast', question), { key: stack.secrets.app });
            const elapsed = Date.now() - started;
            assert.equal(first.status, 200);
            assert.equal(first.headers.get('x-sluice-cache'), 'miss');
            assert.ok(first.json.choices[0].message.content.length > 0);
            assert.ok(elapsed < 4000, `the embedder's timeout bounds the wait (${elapsed} ms)`);
            assert.equal(await chatCalls(stack, question), 1, 'the request went upstream');
            assert.equal(await embedErrors(stack), errorsBefore + 1);

            const reworded = await post(stack.gw, 'chat/completions', chat('fast', question.toLowerCase()),
                { key: stack.secrets.app });
            assert.equal(reworded.status, 200);
            assert.equal(reworded.headers.get('x-sluice-cache'), 'miss', 'no semantic layer without vectors');

            const again = await post(stack.gw, 'chat/completions', chat('fast', question), { key: stack.secrets.app });
            assert.equal(again.status, 200);
            assert.equal(again.headers.get('x-sluice-cache'), 'hit', 'the exact layer does not need the embedder');
            assert.equal(again.headers.get('x-sluice-cache-layer'), 'exact');
        });
    });
}
