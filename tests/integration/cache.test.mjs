// cache.test.mjs — exact and semantic caching through the real binary against sluice-mock:
// hit, miss, scope isolation, TTL expiry, control headers, admission rules, invalidation (admin),
// a streamed hit parsed by the official openai SDK, and the cache's log and metric fields.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';

import { binariesPresent, chat, post, request, secret, sha256hex, sleep, startStack, streamRequest, waitFor } from '../lib/harness.mjs';

const present = binariesPresent();
const unique = () => Math.random().toString(36).slice(2, 8);

describe('cache', { skip: !present.ok && `missing ${present.missing}` }, () => {
    let stack;
    const adminKey = secret('sk-admin');
    const mockCalls = async (needle) => (await stack.mock.requests())
        .filter((r) => JSON.stringify(r.body ?? '').includes(needle)).length;

    before(async () => {
        stack = await startStack({
            appModels: ['fast', 'short', 'plain'],
            models: {
                short: { targets: [{ provider: 'mock', model: 'gpt-4o-mini' }] },
                plain: { targets: [{ provider: 'mock', model: 'gpt-4o-mini' }] },
            },
            configTransform: (cfg) => ({
                ...cfg,
                keys: [...cfg.keys, { name: 'root', key_sha256: sha256hex(adminKey), admin: true }],
                cache: {
                    exact: { ttl: 3600 },
                    semantic: { threshold: 0.9, ttl: 3600 },
                    max_temperature: 1.0,
                    models: { short: { ttl: 1 }, plain: { semantic: false } },
                },
            }),
        });
    });
    after(async () => {
        const problems = await stack?.stop();
        assert.deepEqual(problems ?? [], []);
    });

    const ask = (content, { key = stack.secrets.app, model = 'fast', headers = {}, extra = {} } = {}) =>
        post(stack.gw, 'chat/completions', chat(model, content, extra), { key, headers });

    test('a repeated request is an exact hit and does not reach the provider', async () => {
        const prompt = `What is the boiling point of water at sea level ${unique()}?`;
        const first = await ask(prompt);
        assert.equal(first.status, 200);
        assert.equal(first.headers.get('x-sluice-cache'), 'miss');
        const second = await ask(`  ${prompt}  `); /* surrounding whitespace is normalised away */
        assert.equal(second.status, 200);
        assert.equal(second.headers.get('x-sluice-cache'), 'hit');
        assert.equal(second.headers.get('x-sluice-cache-layer'), 'exact');
        assert.equal(second.json.choices[0].message.content, first.json.choices[0].message.content);
        assert.equal(second.json.choices[0].finish_reason, 'stop');
        assert.equal(second.json.object, 'chat.completion');
        assert.equal(await mockCalls(prompt.slice(0, 30)), 1);
    });

    test('a paraphrase is a semantic hit with its similarity; a different question is a miss', async () => {
        const tag = unique();
        const first = await ask(`How do I cancel my subscription to plan ${tag}?`);
        assert.equal(first.headers.get('x-sluice-cache'), 'miss');
        const para = await ask(`how can I cancel my subscription for plan ${tag}`);
        assert.equal(para.headers.get('x-sluice-cache'), 'hit');
        assert.equal(para.headers.get('x-sluice-cache-layer'), 'semantic');
        const similarity = Number(para.headers.get('x-sluice-cache-similarity'));
        assert.ok(similarity >= 0.9 && similarity <= 1, `similarity ${similarity}`);
        assert.equal(para.json.choices[0].message.content, first.json.choices[0].message.content);
        const other = await ask(`How do I upgrade my subscription to plan ${tag}?`);
        assert.equal(other.headers.get('x-sluice-cache'), 'miss');
        const number = await ask(`How do I cancel my subscription to plan ${tag}9?`);
        assert.equal(number.headers.get('x-sluice-cache'), 'miss', 'another number is another question');
    });

    test('entries are isolated per key: another tenant never gets the answer', async () => {
        const prompt = `Summarise our private roadmap ${unique()}`;
        assert.equal((await ask(prompt)).headers.get('x-sluice-cache'), 'miss');
        assert.equal((await ask(prompt)).headers.get('x-sluice-cache'), 'hit');
        const other = await ask(prompt, { key: stack.secrets.ops });
        assert.equal(other.status, 200);
        assert.equal(other.headers.get('x-sluice-cache'), 'miss');
        const paraphrase = await ask(`${prompt}.`, { key: stack.secrets.ops });
        assert.equal(paraphrase.headers.get('x-sluice-cache'), 'hit', 'ops now hits its own entry');
    });

    test('a system prompt or a parameter change is another partition', async () => {
        const prompt = `Translate good morning into French ${unique()}`;
        await ask(prompt);
        const withSystem = await post(stack.gw, 'chat/completions', {
            model: 'fast', messages: [{ role: 'system', content: 'Answer like a pirate.' }, { role: 'user', content: prompt }],
        }, { key: stack.secrets.app });
        assert.equal(withSystem.headers.get('x-sluice-cache'), 'miss');
        const withTokens = await ask(prompt, { extra: { max_tokens: 7 } });
        assert.equal(withTokens.headers.get('x-sluice-cache'), 'miss');
    });

    test('entries expire after their TTL', async () => {
        const prompt = `Current exchange rate of euro to dollar ${unique()}`;
        assert.equal((await ask(prompt, { model: 'short' })).headers.get('x-sluice-cache'), 'miss');
        assert.equal((await ask(prompt, { model: 'short' })).headers.get('x-sluice-cache'), 'hit');
        await sleep(1200);
        assert.equal((await ask(prompt, { model: 'short' })).headers.get('x-sluice-cache'), 'miss');
    });

    test('x-sluice-cache: skip neither reads nor writes', async () => {
        const prompt = `Name three prime numbers ${unique()}`;
        const skipped = await ask(prompt, { headers: { 'x-sluice-cache': 'skip' } });
        assert.equal(skipped.headers.get('x-sluice-cache'), 'skip');
        assert.equal((await ask(prompt)).headers.get('x-sluice-cache'), 'miss', 'skip did not store');
        assert.equal((await ask(prompt, { headers: { 'x-sluice-cache': 'skip' } })).headers.get('x-sluice-cache'), 'skip');
    });

    test('x-sluice-cache: refresh and Cache-Control: no-cache go upstream and store the new answer', async () => {
        for (const headers of [{ 'x-sluice-cache': 'refresh' }, { 'cache-control': 'no-cache' }]) {
            const prompt = `${unique()} List the planets of the solar system`;
            await ask(prompt, { extra: { max_tokens: 50 } });
            const fresh = await ask(prompt, { headers, extra: { max_tokens: 50 } });
            assert.equal(fresh.headers.get('x-sluice-cache'), 'miss');
            assert.equal(await mockCalls(prompt.slice(0, 30)), 2, `${JSON.stringify(headers)} went upstream`);
            assert.equal((await ask(prompt, { extra: { max_tokens: 50 } })).headers.get('x-sluice-cache'), 'hit');
        }
    });

    test('Cache-Control: no-store serves hits but stores nothing', async () => {
        const prompt = `Explain photosynthesis briefly ${unique()}`;
        const first = await ask(prompt, { headers: { 'cache-control': 'no-store' } });
        assert.equal(first.headers.get('x-sluice-cache'), 'miss');
        assert.equal((await ask(prompt)).headers.get('x-sluice-cache'), 'miss', 'nothing was stored');
        assert.equal((await ask(prompt, { headers: { 'cache-control': 'no-store' } })).headers.get('x-sluice-cache'), 'hit');
    });

    test('tools, a high temperature and a model with semantic off are handled by policy', async () => {
        const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {} } } }];
        const withTools = await ask(`Call the tool ${unique()}`, { extra: { tools } });
        assert.equal(withTools.headers.get('x-sluice-cache'), 'skip');
        const hot = await ask(`Write a wild poem ${unique()}`, { extra: { temperature: 1.5 } });
        assert.equal(hot.headers.get('x-sluice-cache'), 'skip');
        const tag = unique();
        await ask(`How do I reset my router ${tag}?`, { model: 'plain' });
        const para = await ask(`how can I reset my router ${tag}`, { model: 'plain' });
        assert.equal(para.headers.get('x-sluice-cache'), 'miss', 'semantic disabled for model plain');
    });

    test('incomplete answers are not admitted', async () => {
        const prompt = `Tell a long story @mock finish=length ${unique()}`;
        const first = await ask(prompt);
        assert.equal(first.json.choices[0].finish_reason, 'length');
        assert.equal((await ask(prompt)).headers.get('x-sluice-cache'), 'miss');
        const failed = `Broken upstream @mock status=500 ${unique()}`;
        assert.equal((await ask(failed)).status >= 500, true);
        assert.equal((await ask(failed)).headers.get('x-sluice-cache'), 'miss');
    });

    test('a streamed hit is a valid OpenAI stream, parsed by the openai SDK', async () => {
        const prompt = `Describe the water cycle in one paragraph ${unique()}`;
        const miss = await ask(prompt);
        const client = new OpenAI({ apiKey: stack.secrets.app, baseURL: stack.gw.base, maxRetries: 0 });
        const { data: stream, response } = await client.chat.completions.create({
            model: 'fast', messages: [{ role: 'user', content: prompt }], stream: true,
            stream_options: { include_usage: true },
        }).withResponse();
        assert.equal(response.headers.get('x-sluice-cache'), 'hit');
        let text = '';
        let finish = null;
        let usage = null;
        let first = true;
        for await (const chunk of stream) {
            assert.equal(chunk.object, 'chat.completion.chunk');
            if (first) assert.equal(chunk.choices[0].delta.role, 'assistant');
            first = false;
            if (chunk.choices.length) {
                text += chunk.choices[0].delta.content ?? '';
                finish = chunk.choices[0].finish_reason ?? finish;
            }
            if (chunk.usage) usage = chunk.usage;
        }
        assert.equal(text, miss.json.choices[0].message.content);
        assert.equal(finish, 'stop');
        assert.equal(usage.completion_tokens, miss.json.usage.completion_tokens);
        const raw = await streamRequest(`${stack.gw.base}/chat/completions`, chat('fast', prompt, { stream: true }),
            { key: stack.secrets.app });
        assert.equal(raw.done, true);
        assert.ok(raw.events.every((e) => e.data === '[DONE]' || !e.json.usage), 'no usage chunk unless asked');
    });

    test('a streamed miss is admitted and later served as JSON', async () => {
        const prompt = `Give me a haiku about autumn leaves ${unique()}`;
        const streamed = await streamRequest(`${stack.gw.base}/chat/completions`, chat('fast', prompt, { stream: true }),
            { key: stack.secrets.app });
        assert.equal(streamed.headers.get('x-sluice-cache'), 'miss');
        const text = streamed.events.filter((e) => e.json?.choices?.length).map((e) => e.json.choices[0].delta.content ?? '').join('');
        const hit = await ask(prompt);
        assert.equal(hit.headers.get('x-sluice-cache'), 'hit');
        assert.equal(hit.json.choices[0].message.content, text);
    });

    test('admin API: stats and invalidation by id, model, text, scope and all; admin keys only', async () => {
        const admin = (path, body) => request(`${stack.gw.url}/admin/cache/${path}`, { key: adminKey, body });
        assert.equal((await request(`${stack.gw.url}/admin/cache/stats`, { key: stack.secrets.app })).status, 403);
        assert.equal((await request(`${stack.gw.url}/admin/cache/stats`)).status, 401);
        const stats = await admin('stats');
        assert.equal(stats.status, 200);
        assert.ok(stats.json.entries > 0);

        const one = `What is the tallest mountain in Europe ${unique()}`;
        await ask(one);
        const hit = await ask(one);
        const id = hit.headers.get('x-sluice-cache-id');
        assert.equal((await admin('invalidate', { id })).json.invalidated, 1);
        assert.equal((await ask(one)).headers.get('x-sluice-cache'), 'miss');

        const tag = unique();
        await ask(`Where can I find my invoices ${tag}?`);
        const byText = await admin('invalidate', { text: `where do I find my invoices ${tag}`, threshold: 0.85 });
        assert.equal(byText.json.invalidated, 1);
        assert.equal((await ask(`Where can I find my invoices ${tag}?`)).headers.get('x-sluice-cache'), 'miss');

        const scoped = `Scoped question about pricing tiers ${unique()}`;
        await ask(scoped, { key: stack.secrets.ops });
        assert.ok((await admin('invalidate', { scope: 'key:ops' })).json.invalidated >= 1);
        assert.equal((await ask(scoped, { key: stack.secrets.ops })).headers.get('x-sluice-cache'), 'miss');

        await ask(`Model-wide question ${unique()}`, { model: 'plain' });
        assert.ok((await admin('invalidate', { model: 'plain' })).json.invalidated >= 1);

        const all = await admin('invalidate', { all: true });
        assert.equal(all.status, 200);
        assert.equal((await admin('stats')).json.entries, 0);
        assert.equal((await admin('invalidate', {})).status, 400);
    });

    test('/v1/embeddings is cached exactly: same input, model, dimensions and scope', async () => {
        const input = `Embed this sentence ${unique()}`;
        const embed = (body, key = stack.secrets.app) =>
            post(stack.gw, 'embeddings', { model: 'fast', input, ...body }, { key });
        const embedCalls = async () => (await stack.mock.requests())
            .filter((r) => r.path.endsWith('/embeddings') && JSON.stringify(r.body ?? '').includes(input)).length;
        const first = await embed({});
        assert.equal(first.status, 200, first.text);
        assert.equal(first.headers.get('x-sluice-cache'), 'miss');
        const second = await embed({});
        assert.equal(second.status, 200);
        assert.equal(second.headers.get('x-sluice-cache'), 'hit');
        assert.equal(second.headers.get('x-sluice-cache-layer'), 'exact');
        assert.equal(second.headers.get('x-sluice-provider'), 'cache');
        assert.deepEqual(second.json.data, first.json.data, 'the same vectors');
        assert.equal(second.json.object, 'list');
        assert.equal(await embedCalls(), 1);

        assert.equal((await embed({ dimensions: 32 })).headers.get('x-sluice-cache'), 'miss', 'other dimensions');
        assert.equal((await embed({ encoding_format: 'base64' })).headers.get('x-sluice-cache'), 'miss');
        assert.equal((await embed({ encoding_format: 'float' })).headers.get('x-sluice-cache'), 'hit',
            'float is the default format');
        assert.equal((await embed({ input: [input] })).headers.get('x-sluice-cache'), 'miss', 'a list is another input');
        assert.equal((await embed({}, stack.secrets.ops)).headers.get('x-sluice-cache'), 'miss', 'another key');
        assert.equal((await embed({ input: `${input}.` })).headers.get('x-sluice-cache'), 'miss',
            'no semantic layer for embeddings');
        assert.equal(await embedCalls(), 6);
    });

    test('access log and metrics carry the cache fields and the cost saved', async () => {
        const prompt = `How many days are in a leap year ${unique()}`;
        await ask(prompt);
        await ask(prompt);
        let line;
        await waitFor(() => {
            line = stack.gw.stdoutLines.map((l) => { try { return JSON.parse(l); } catch { return null; } })
                .filter((l) => l?.type === 'access' && l.cache === 'hit').pop();
            return line !== undefined;
        }, { what: 'an access-log line for the hit' });
        assert.equal(line.cache_layer, 'exact');
        assert.ok(line.cache_lookup_ms >= 0);
        assert.ok(line.cache_saved_usd > 0, 'priced from the pricing table');
        assert.equal(line.cost_usd, 0);
        const metrics = await request(`${stack.gw.url}/metrics`);
        assert.match(metrics.text, /sluice_cache_lookups_total\{outcome="hit_exact"\} [1-9]/);
        assert.match(metrics.text, /sluice_cache_saved_usd_total [0-9.]+/);
    });
});
