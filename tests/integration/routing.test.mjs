// routing through the real binary: weighted load balancing over 10,000 requests, sticky users,
// cost with quality bars and ceilings, cascade escalation on a failed check, rules (routes:) on
// every kind of condition, A/B arms recorded in headers and log, and shadow traffic that is logged
// but never returned. Upstream model names carry mock directives where a target must misbehave.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { assembleChat, chat, post, startStack, streamRequest, waitFor } from '../lib/harness.mjs';
import { outcomes, runPool } from './routing-lib.mjs';

const enc = encodeURIComponent;

describe('routing strategies, rules and experiments', { timeout: 180000 }, () => {
    let s;
    let key;
    const mock = (model, extra = {}) => ({ provider: 'mock', model, ...extra });
    before(async () => {
        s = await startStack({
            mock: { threads: 2 },
            env: { RESEARCH_KEY: 'sk-research-0123456789', FRUGAL_KEY: 'sk-frugal-0123456789' },
            keys: [
                { name: 'ops', key: '${OPS_KEY}' },
                { name: 'researcher', key: '${RESEARCH_KEY}', team: 'research' },
                { name: 'frugal', key: '${FRUGAL_KEY}', max_cost_usd: 0.0005 },
            ],
            models: {
                lb: { strategy: 'loadbalance', targets: [mock('lb-heavy', { weight: 3 }), mock('lb-light', { weight: 1 })] },
                lb_sticky: { strategy: 'loadbalance', sticky: 'user', targets: [mock('st-a'), mock('st-b')] },
                priced: {
                    strategy: 'cost', min_quality: 0.8,
                    targets: [
                        mock('cost-cheap', { quality: { default: 0.5, chat: 0.9 } }),
                        mock('cost-mid', { quality: 0.85 }),
                        mock('cost-big', { quality: 0.99 }),
                    ],
                },
                cascade_bad_json: {
                    strategy: 'cascade', checks: ['json'],
                    targets: [mock(`tier2@reply=${enc('{"ok":true}')}`), mock(`tier1@reply=${enc('{not json')}`)],
                },
                cascade_good_json: {
                    strategy: 'cascade', checks: ['json'],
                    targets: [mock(`tier2@reply=${enc('{"ok":true}')}`), mock(`tier1@reply=${enc('{"a":1}')}`)],
                },
                general: { targets: [mock('general-model')] },
                r_autocomplete: { targets: [mock('autocomplete-model')] },
                r_tools: { targets: [mock('tools-model')] },
                r_vision: { targets: [mock('vision-model')] },
                r_long: { targets: [mock('long-model')] },
                r_weather: { targets: [mock('weather-model')] },
                r_team: { targets: [mock('team-model')] },
                r_user: { targets: [mock('user-model')] },
                r_requested: { targets: [mock('requested-model')] },
                ab: { targets: [mock('ab-control')] },
                ab_treatment: { targets: [mock('ab-treatment')] },
                shadowed: { targets: [mock('main-model')] },
                shadow_candidate: { targets: [mock('shadow-model')] },
                shadowed_failing: { targets: [mock('main-model-2')] },
                shadow_failing: { targets: [mock('shadow-model@status=500')] },
            },
            pricing: {
                'cost-cheap': { input: 0.1, output: 0.4 },
                'cost-mid': { input: 1, output: 4 },
                'cost-big': { input: 10, output: 40 },
                [`tier1@reply=${enc('{not json')}`]: { input: 0.1, output: 0.4 },
                [`tier1@reply=${enc('{"a":1}')}`]: { input: 0.1, output: 0.4 },
                [`tier2@reply=${enc('{"ok":true}')}`]: { input: 5, output: 15 },
            },
            configTransform: (cfg) => ({
                ...cfg,
                routes: [
                    { match: { headers: { 'x-sluice-feature': 'autocomplete' } }, model: 'r_autocomplete' },
                    { match: { model: 'general', has_tools: true }, model: 'r_tools' },
                    { match: { model: 'general', has_images: true }, model: 'r_vision' },
                    { match: { model: 'general', min_prompt_tokens: 1000 }, model: 'r_long' },
                    { match: { model: 'general', last_user_message: 'weather|forecast' }, model: 'r_weather' },
                    { match: { model: 'general', team: 'research' }, model: 'r_team' },
                    { match: { model: 'general', user: ['alice', 'bob'] }, model: 'r_user' },
                    { match: { model: 'requested' }, model: 'r_requested' },
                ],
                experiments: [
                    {
                        name: 'cheaper', model: 'ab', sticky: 'user',
                        arms: [{ name: 'control', model: 'ab', percent: 50 }, { name: 'treatment', model: 'ab_treatment', percent: 50 }],
                    },
                    { name: 'shadow-test', model: 'shadowed', shadow: { model: 'shadow_candidate', percent: 100 } },
                    { name: 'shadow-fail', model: 'shadowed_failing', shadow: { model: 'shadow_failing', percent: 100 } },
                ],
            }),
        });
        key = s.secrets.ops;
    });
    after(async () => {
        if (!s) return;
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    const ask = (model, content, opts = {}) =>
        post(s.gw, 'chat/completions', chat(model, content, opts.extra), { key: opts.key ?? key, headers: opts.headers });

    test('loadbalance: 10,000 requests land within 2 % of the 3:1 weights', async (t) => {
        const t0 = performance.now();
        const models = await runPool(10000, 16, async () => {
            const r = await ask('lb', 'balance');
            assert.equal(r.status, 200, r.text);
            return r.headers.get('x-sluice-model');
        });
        const heavy = models.filter((m) => m === 'lb-heavy').length;
        const light = models.filter((m) => m === 'lb-light').length;
        t.diagnostic(`lb-heavy ${heavy}, lb-light ${light} of 10000 in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        assert.equal(heavy + light, 10000);
        assert.ok(Math.abs(heavy / 10000 - 0.75) <= 0.02, `heavy share ${heavy / 10000}`);
    });

    test('loadbalance sticky by user: a user keeps their target, users spread over both', async () => {
        const seen = { 'st-a': 0, 'st-b': 0 };
        for (let u = 0; u < 40; u++) {
            const headers = { 'x-sluice-user': `user-${u}` };
            const first = (await ask('lb_sticky', 'hi', { headers })).headers.get('x-sluice-model');
            for (let i = 0; i < 3; i++) {
                assert.equal((await ask('lb_sticky', `again ${i}`, { headers })).headers.get('x-sluice-model'), first);
            }
            seen[first]++;
        }
        assert.ok(seen['st-a'] >= 8 && seen['st-b'] >= 8, JSON.stringify(seen));
        // the body's "user" field counts too
        const byBody = await Promise.all([1, 2, 3].map(() =>
            post(s.gw, 'chat/completions', chat('lb_sticky', 'x', { user: 'body-user' }), { key })));
        assert.equal(new Set(byBody.map((r) => r.headers.get('x-sluice-model'))).size, 1);
    });

    test('cost: cheapest target meeting the quality bar for the task, within the ceiling', async () => {
        let r = await ask('priced', 'hi');
        assert.equal(r.headers.get('x-sluice-model'), 'cost-mid', 'cheap is below the bar by default');
        r = await ask('priced', 'hi', { headers: { 'x-sluice-task': 'chat' } });
        assert.equal(r.headers.get('x-sluice-model'), 'cost-cheap', 'cheap is good enough for chat');
        r = await ask('priced', 'hi', { headers: { 'x-sluice-max-cost-usd': '0.0000001' } });
        assert.equal(r.status, 400, r.text);
        assert.equal(r.json.error.code, 'no_eligible_target');
    });

    test('cost: a key ceiling (keys[].max_cost_usd) excludes dearer targets; a header cannot lift it', async () => {
        const frugal = 'sk-frugal-0123456789';
        // cost-mid: 256 output tokens at $4/M ≈ $0.001 > the key's $0.0005; cost-cheap is under the bar
        let r = await ask('priced', 'hi', { key: frugal });
        assert.equal(r.status, 400, r.text);
        assert.equal(r.json.error.code, 'no_eligible_target');
        r = await ask('priced', 'hi', { key: frugal, headers: { 'x-sluice-max-cost-usd': '1' } });
        assert.equal(r.status, 400, 'the lower ceiling (the key\'s) wins');
        r = await ask('priced', 'hi', { key: frugal, headers: { 'x-sluice-task': 'chat' } });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers.get('x-sluice-model'), 'cost-cheap');
    });

    test('cascade: invalid JSON from the cheap tier escalates, valid JSON does not; the log shows both', async () => {
        const bad = await ask('cascade_bad_json', 'give me json');
        assert.equal(bad.status, 200, bad.text);
        assert.equal(bad.json.choices[0].message.content, '{"ok":true}');
        assert.equal(bad.headers.get('x-sluice-attempts'), '2');
        assert.match(bad.headers.get('x-sluice-fallback-reason'), /tier1@.*: check_failed:json/);
        const good = await ask('cascade_good_json', 'give me json');
        assert.equal(good.status, 200, good.text);
        assert.equal(good.json.choices[0].message.content, '{"a":1}');
        assert.equal(good.headers.get('x-sluice-attempts'), '1');
        assert.equal(good.headers.get('x-sluice-fallback-reason'), null);

        const badLog = await s.gw.accessLogFor(bad.headers.get('x-sluice-request-id'));
        assert.deepEqual(outcomes(badLog), ['check_failed:json', 'ok']);
        assert.match(badLog.attempts[0].model, /^tier1@/);
        assert.match(badLog.upstream_model, /^tier2@/);
        const goodLog = await s.gw.accessLogFor(good.headers.get('x-sluice-request-id'));
        assert.deepEqual(outcomes(goodLog), ['ok']);
        assert.match(goodLog.upstream_model, /^tier1@/);
    });

    test('cascade with a streaming client: the accepted answer arrives as a stream', async () => {
        const r = await streamRequest(`${s.gw.base}/chat/completions`,
            chat('cascade_bad_json', 'json please', { stream: true }), { key });
        assert.equal(r.status, 200, r.text);
        assert.ok(r.done);
        assert.equal(assembleChat(r.events).content, '{"ok":true}');
        assert.equal(r.headers.get('x-sluice-attempts'), '2');
    });

    test('rules: each condition sends the request to its model; no match keeps the asked model', async () => {
        const cases = [
            [{ content: 'hello' }, 'general-model', null],
            [{ content: 'hello', headers: { 'x-sluice-feature': 'autocomplete' } }, 'autocomplete-model', 0],
            [{ content: 'hello', extra: { tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }] } }, 'tools-model', 1],
            [{ content: [{ type: 'text', text: 'what is it' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] }, 'vision-model', 2],
            [{ content: 'x'.repeat(4400) }, 'long-model', 3],
            [{ content: 'Will it rain? Check the Forecast' }, 'weather-model', 4],
            [{ content: 'hello', key: 'sk-research-0123456789' }, 'team-model', 5],
            [{ content: 'hello', headers: { 'x-sluice-user': 'bob' } }, 'user-model', 6],
        ];
        for (const [c, expected, routeIndex] of cases) {
            const r = await ask('general', c.content, c);
            assert.equal(r.status, 200, r.text);
            assert.equal(r.headers.get('x-sluice-model'), expected, JSON.stringify(c).slice(0, 120));
            const e = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
            assert.equal(e.model, 'general', 'the log keeps the name the client sent');
            if (routeIndex === null) assert.equal(e.route, undefined);
            else {
                assert.equal(e.route, routeIndex);
                assert.ok(e.route_model.startsWith('r_'));
            }
        }
        const r = await ask('requested', 'by model name');
        assert.equal(r.headers.get('x-sluice-model'), 'requested-model');
    });

    test('A/B: arms split about evenly, stickily per user, with the arm in headers and log', async () => {
        const arms = { control: 0, treatment: 0 };
        const byUser = new Map();
        await runPool(200, 8, async (u) => {
            const r = await ask('ab', 'which arm', { headers: { 'x-sluice-user': `ab-user-${u}` } });
            assert.equal(r.status, 200, r.text);
            const arm = r.headers.get('x-sluice-arm');
            assert.equal(r.headers.get('x-sluice-experiment'), 'cheaper');
            assert.equal(r.headers.get('x-sluice-model'), arm === 'control' ? 'ab-control' : 'ab-treatment');
            arms[arm]++;
            byUser.set(u, { arm, id: r.headers.get('x-sluice-request-id') });
        });
        assert.ok(arms.control >= 70 && arms.treatment >= 70, JSON.stringify(arms));
        for (let u = 0; u < 20; u++) {
            const r = await ask('ab', 'again', { headers: { 'x-sluice-user': `ab-user-${u}` } });
            assert.equal(r.headers.get('x-sluice-arm'), byUser.get(u).arm, 'sticky');
        }
        const e = await s.gw.accessLogFor(byUser.get(0).id);
        assert.equal(e.experiment, 'cheaper');
        assert.equal(e.arm, byUser.get(0).arm);
    });

    test('shadow: the copy goes to the candidate and is logged, never returned', async () => {
        await s.mock.reset();
        const r = await ask('shadowed', 'shadow me');
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers.get('x-sluice-model'), 'main-model');
        assert.ok(!r.text.includes('shadow-model'), 'nothing of the shadow reaches the client');
        const id = r.headers.get('x-sluice-request-id');
        let shadow;
        await waitFor(() => {
            shadow = s.gw.accessLog().find((e) => e.shadow_of === id);
            return shadow;
        }, { timeoutMs: 5000, what: 'the shadow access-log line' });
        assert.equal(shadow.status, 200);
        assert.equal(shadow.upstream_model, 'shadow-model');
        assert.equal(shadow.model, 'shadow_candidate');
        assert.notEqual(shadow.request_id, id);
        const upstream = await s.mock.requests();
        assert.ok(upstream.some((q) => q.body?.model === 'shadow-model'), 'the candidate was called');
        const main = await s.gw.accessLogFor(id);
        assert.equal(main.shadow_of, null);
    });

    test('shadow: a failing candidate does not touch the client answer', async () => {
        const r = await ask('shadowed_failing', 'shadow fail');
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers.get('x-sluice-model'), 'main-model-2');
        const id = r.headers.get('x-sluice-request-id');
        let shadow;
        await waitFor(() => (shadow = s.gw.accessLog().find((e) => e.shadow_of === id)), { timeoutMs: 5000 });
        assert.equal(shadow.status, 500);
    });
});
