// budgets: USD caps per key, team, user and feature through the real binary. Prices are made
// large (input free, $1 per completion token) so the mock's `@mock words=N` (N >= 6) costs exactly
// $N and a few requests exhaust a small budget. Covered: a key budget reserves max_tokens at the
// model's price and refuses with 429 insufficient_quota, retry-after until the UTC day ends, the
// budget headers and the access-log fields; a team budget shared by two keys; per-user ("*",
// header and body user) and per-feature budgets; a concurrent burst against a nearly exhausted
// budget admits exactly what fits; alert lines at 70/90/100 % once each; streams count; SIGHUP
// keeps spend and applies a changed amount; /metrics keeps per-user budgets aggregated; an
// unpriced model reserves nothing and says so.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import {
    assertOpenAIError, chat, post, request, secret, sha256hex, startStack, streamRequest, waitFor,
} from '../lib/harness.mjs';

const names = ['fails', 'kb', 't1', 't2', 'u', 'burst', 'alerting', 'streamer', 'free'];
const secrets = Object.fromEntries(names.map((n) => [n, secret(`sk-${n}`)]));

// The alert webhook: a tiny HTTP listener recording what it is POSTed.
const webhook = { posts: [], server: null, port: 0 };

const budgetConfig = (kbUsd = 20) => (cfg) => ({
    ...cfg,
    alerts: { webhook_url: `http://127.0.0.1:${webhook.port}/hook`, timeout_ms: 2000 },
    models: { ...cfg.models, free: { targets: [{ provider: 'mock', model: 'unpriced-model' }] } },
    keys: [
        { name: 'kb', key_sha256: sha256hex(secrets.kb), budget: { usd: kbUsd, period: 'day' } },
        { name: 't1', key_sha256: sha256hex(secrets.t1), team: 'shared' },
        { name: 't2', key_sha256: sha256hex(secrets.t2), team: 'shared' },
        { name: 'u', key_sha256: sha256hex(secrets.u) },
        { name: 'burst', key_sha256: sha256hex(secrets.burst), budget: { usd: 30, period: 'day' } },
        { name: 'alerting', key_sha256: sha256hex(secrets.alerting), budget: { usd: 20, period: 'total' } },
        { name: 'streamer', key_sha256: sha256hex(secrets.streamer), budget: { usd: 15, period: 'week' } },
        { name: 'free', key_sha256: sha256hex(secrets.free), budget: { usd: 1, period: 'day' } },
        { name: 'fails', key_sha256: sha256hex(secrets.fails), budget: { usd: 10, period: 'day' } },
        { name: 'ops', key: '${OPS_KEY}' },
    ],
    teams: { shared: { budget: { usd: 14, period: 'month' } }, idle: { budget: { usd: 1 } } },
    budgets: [
        { scope: 'user', match: '*', usd: 10, period: 'day' },
        { scope: 'feature', match: 'search', usd: 7, period: 'month' },
    ],
});

/** A chat costing $words (words >= 6) that reserves $maxTokens. */
function ask(s, key, words, { maxTokens, headers = {}, extra = {}, model = 'fast', tag = '' } = {}) {
    const body = chat(model, `a @mock words=${words} ${tag}`.trim(), maxTokens === undefined ? extra : { max_tokens: maxTokens, ...extra });
    return post(s.gw, 'chat/completions', body, { key, headers });
}

function secondsToUtcMidnight() {
    const now = new Date();
    return (Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) - now.getTime()) / 1000;
}

function assertQuota(r, message) {
    assert.equal(r.status, 429, r.text);
    assertOpenAIError(r.json, { code: 'insufficient_quota', type: 'insufficient_quota' });
    assert.match(r.json.error.message, message);
}

describe('budgets', { timeout: 60000 }, () => {
    let s;
    before(async () => {
        webhook.server = http.createServer((req, res) => {
            let body = '';
            req.on('data', (d) => { body += d; });
            req.on('end', () => {
                webhook.posts.push({ method: req.method, url: req.url, type: req.headers['content-type'], body: JSON.parse(body) });
                res.writeHead(204).end();
            });
        });
        await new Promise((resolve) => webhook.server.listen(0, '127.0.0.1', resolve));
        webhook.port = webhook.server.address().port;
        s = await startStack({
            keys: null,
            pricing: { 'gpt-4o-mini': { input: 0, output: 1000000 } },
            configTransform: budgetConfig(),
            env: { OPS_KEY: secret('sk-ops') },
        });
    });
    after(async () => {
        webhook.server?.close();
        if (!s) return;
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    test('key budget: reserve, true-up, refuse until the UTC day ends', async () => {
        let r = await ask(s, secrets.kb, 8, { maxTokens: 8 });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers.get('x-sluice-budget-remaining-usd'), '12.000000', 'after reserving $8 of $20');
        assert.equal(r.headers.get('x-sluice-budget-limit-usd'), '20.000000');
        r = await ask(s, secrets.kb, 8, { maxTokens: 8 });
        assert.equal(r.status, 200, r.text);
        await s.mock.reset();
        r = await ask(s, secrets.kb, 8, { maxTokens: 8 });
        assertQuota(r, /^Budget exceeded for key 'kb': spent \$16\.00 of \$20\.00 today \(not enough left/);
        const retryAfter = Number(r.headers.get('retry-after'));
        assert.ok(Math.abs(retryAfter - secondsToUtcMidnight()) <= 5, `retry-after ${retryAfter} is the end of the UTC day`);
        assert.equal((await s.mock.requests()).length, 0, 'a refused request never reaches the provider');
        r = await ask(s, secrets.kb, 6, { maxTokens: 4 }); // fits the $4 left; costs $6 in the end
        assert.equal(r.status, 200, r.text);
        r = await ask(s, secrets.kb, 6, {});
        assertQuota(r, /^Budget exceeded for key 'kb': spent \$22\.00 of \$20\.00 today$/);
        assert.equal(r.headers.get('x-sluice-budget-remaining-usd'), '0.000000');
        const line = s.gw.accessLog().filter((l) => l.key === 'kb').at(-1);
        assert.equal(line.status, 429);
        assert.equal(line.error_type, 'insufficient_quota');
        assert.equal(line.budget_exceeded, 'key:kb:day');
        assert.equal((await ask(s, secrets.kb, 6, { model: 'fast' })).status, 429);
        // Another key is not affected.
        assert.equal((await ask(s, secrets.u, 6)).status, 200);
    });

    test('team budget is shared by the keys of the team', async () => {
        assert.equal((await ask(s, secrets.t1, 8, { maxTokens: 8 })).status, 200);
        assertQuota(await ask(s, secrets.t2, 8, { maxTokens: 8 }), /^Budget exceeded for team 'shared': spent \$8\.00 of \$14\.00 this month/);
        assert.equal((await ask(s, secrets.t2, 6, { maxTokens: 6 })).status, 200);
        const r = await ask(s, secrets.t1, 6, { maxTokens: 1 });
        assertQuota(r, /^Budget exceeded for team 'shared': spent \$14\.00 of \$14\.00 this month$/);
        const until = Number(r.headers.get('retry-after'));
        const now = new Date();
        const monthEnd = (Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) - now.getTime()) / 1000;
        assert.ok(Math.abs(until - monthEnd) <= 5, `retry-after ${until} is the first of next month 00:00 UTC`);
    });

    test('per-user budgets: each user their own, from the header or the body', async () => {
        const alice = { 'x-sluice-user': 'alice' };
        assert.equal((await ask(s, secrets.u, 8, { maxTokens: 8, headers: alice })).status, 200);
        assertQuota(await ask(s, secrets.u, 8, { maxTokens: 8, headers: alice }), /^Budget exceeded for user 'alice': spent \$8\.00 of \$10\.00 today/);
        const bob = await ask(s, secrets.u, 8, { maxTokens: 8, extra: { user: 'bob' } });
        assert.equal(bob.status, 200, bob.text);
        assert.equal(bob.headers.get('x-sluice-budget-remaining-usd'), '2.000000');
    });

    test('per-feature budget', async () => {
        const search = { 'x-sluice-feature': 'search' };
        assert.equal((await ask(s, secrets.u, 6, { maxTokens: 6, headers: search })).status, 200);
        assertQuota(await ask(s, secrets.u, 6, { maxTokens: 6, headers: search }), /^Budget exceeded for feature 'search'/);
        const other = await ask(s, secrets.u, 6, { maxTokens: 6, headers: { 'x-sluice-feature': 'other' } });
        assert.equal(other.status, 200);
        assert.equal(other.headers.get('x-sluice-budget-remaining-usd'), null, 'no budget applies: no budget headers');
    });

    test('a concurrent burst against a nearly exhausted budget admits exactly what fits', async () => {
        assert.equal((await ask(s, secrets.burst, 14, { maxTokens: 14 })).status, 200); // $16 left
        // Each costs $8 (the reply echoes 8 words) and reserves $8: two fit.
        const burst = await Promise.all(Array.from({ length: 12 }, (_, i) =>
            ask(s, secrets.burst, 8, { maxTokens: 8, tag: `delay_ms=300 b${i}` })));
        const statuses = burst.map((r) => r.status);
        assert.equal(statuses.filter((x) => x === 200).length, 2, `statuses ${statuses}`);
        assert.equal(statuses.filter((x) => x === 429).length, 10, `statuses ${statuses}`);
        for (const r of burst.filter((x) => x.status === 429))
            assert.match(r.json.error.message, /held by requests in flight|Budget exceeded/);
        assertQuota(await ask(s, secrets.burst, 6, {}), /spent \$30\.00 of \$30\.00 today$/);
    });

    test('alerts at 70, 90 and 100 % are logged once each', async () => {
        const from = s.gw.stderrLines.length;
        assert.equal((await ask(s, secrets.alerting, 14)).status, 200); // 70 %
        await s.gw.waitForLine(/"threshold_percent":70/, { from });
        assert.equal((await ask(s, secrets.alerting, 6)).status, 200); // 100 %: crosses 90 and 100
        await s.gw.waitForLine(/"threshold_percent":100/, { from });
        const refused = await ask(s, secrets.alerting, 6);
        assertQuota(refused, /^Budget exceeded for key 'alerting': spent \$20\.00 of \$20\.00 in total$/);
        assert.equal(refused.headers.get('retry-after'), null, 'a total budget never resets');
        const alerts = s.gw.stderrLines.slice(from).filter((l) => l.includes('budget_alert')).map((l) => JSON.parse(l));
        assert.deepEqual(alerts.map((a) => a.threshold_percent), [70, 90, 100]);
        for (const a of alerts) {
            assert.equal(a.level, 'warn');
            assert.equal(a.budget, 'key:alerting:total');
            assert.equal(a.scope, 'key');
            assert.equal(a.name, 'alerting');
            assert.equal(a.limit_usd, 20);
            assert.equal(a.period, 'total');
        }
        assert.equal(alerts[0].spent_usd, 14);
        assert.equal(alerts[2].spent_usd, 20);
        assert.equal(alerts[0].msg, "budget for key 'alerting' reached 70%: spent $14.00 of $20.00 in total");
        // The same alerts were POSTed to the webhook, once each.
        const posted = () => webhook.posts.filter((p) => p.body.budget === 'key:alerting:total');
        await waitFor(() => posted().length === 3, { what: 'three webhook posts' });
        assert.deepEqual(posted().map((p) => p.body.threshold_percent), [70, 90, 100]);
        for (const p of posted()) {
            assert.equal(p.method, 'POST');
            assert.equal(p.url, '/hook');
            assert.equal(p.type, 'application/json');
            assert.equal(p.body.event, 'budget_alert');
            assert.equal(p.body.limit_usd, 20);
        }
        assert.equal(posted()[1].body.message, "budget for key 'alerting' reached 90%: spent $20.00 of $20.00 in total");
    });

    test('streams count against the budget', async () => {
        const body = chat('fast', 'a @mock words=8', { max_tokens: 8, stream: true });
        const r = await streamRequest(`${s.gw.base}/chat/completions`, body, { key: secrets.streamer });
        assert.equal(r.status, 200);
        assert.ok(r.done, 'stream completed');
        assert.equal(r.headers.get('x-sluice-budget-remaining-usd'), '7.000000');
        const refused = await streamRequest(`${s.gw.base}/chat/completions`, body, { key: secrets.streamer });
        assert.equal(refused.status, 429);
        assert.match(refused.json.error.message, /^Budget exceeded for key 'streamer': spent \$8\.00 of \$15\.00 this week/);
    });

    test('a failed call releases its reservation; a stream cut short is charged its reservation', async () => {
        const failed = await ask(s, secrets.fails, 6, { maxTokens: 10, tag: 'status=500' });
        assert.ok(failed.status >= 500, `upstream failure: ${failed.status}`);
        const ok = await ask(s, secrets.fails, 6, { maxTokens: 6 });
        assert.equal(ok.status, 200, ok.text);
        assert.equal(ok.headers.get('x-sluice-budget-remaining-usd'), '4.000000', 'the failure held nothing');
        const cut = await streamRequest(`${s.gw.base}/chat/completions`,
            chat('fast', 'a @mock words=8 reset_after=2 chunks=8', { max_tokens: 3, stream: true }), { key: secrets.fails });
        assert.equal(cut.status, 200);
        assert.ok(!cut.done, 'the stream was cut');
        // $6 + the $3 reservation of the cut stream: $1 left.
        const r = await ask(s, secrets.fails, 6, { maxTokens: 2 });
        assertQuota(r, /^Budget exceeded for key 'fails': spent \$9\.00 of \$10\.00 today \(not enough left/);
    });

    test('an unpriced model reserves nothing and says so', async () => {
        const r = await ask(s, secrets.free, 6, { maxTokens: 100, model: 'free' });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers.get('x-sluice-budget-unpriced'), 'true');
        assert.equal(r.headers.get('x-sluice-budget-remaining-usd'), '1.000000');
    });

    test('/metrics: spend and limit per budget, per-user budgets aggregated', async () => {
        const text = (await request(`${s.gw.url}/metrics`)).text;
        assert.match(text, /^sluice_budget_spend_usd\{scope="key",budget="kb",period="day"\} 22\.000000$/m);
        assert.match(text, /^sluice_budget_limit_usd\{scope="key",budget="kb",period="day"\} 20\.000000$/m);
        assert.match(text, /^sluice_budget_spend_usd\{scope="team",budget="shared",period="month"\} 14\.000000$/m);
        assert.match(text, /^sluice_budget_spend_usd\{scope="user",budget="\*",period="day"\} 16\.000000$/m);
        assert.match(text, /^sluice_budget_tracked\{scope="user",period="day"\} 2$/m);
        assert.doesNotMatch(text, /budget="alice"/, 'no series per user');
        assert.match(text, /^sluice_budget_alerts_total\{scope="key",threshold="90"\} [1-9]/m);
        assert.match(text, /^sluice_budget_refusals_total\{scope="team"\} 2$/m);
    });

    test('SIGHUP keeps spend; a changed amount applies at once', async () => {
        let from = s.gw.stderrLines.length;
        await s.gw.reload(s.config());
        await s.gw.waitForLine(/config reloaded/, { from });
        assertQuota(await ask(s, secrets.kb, 6, {}), /spent \$22\.00 of \$20\.00 today$/);
        assertQuota(await ask(s, secrets.t1, 6, {}), /spent \$14\.00 of \$14\.00 this month$/);
        from = s.gw.stderrLines.length;
        await s.gw.reload(s.config({ configTransform: budgetConfig(30) }));
        await s.gw.waitForLine(/config reloaded/, { from });
        const r = await ask(s, secrets.kb, 6, { maxTokens: 6 });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers.get('x-sluice-budget-remaining-usd'), '2.000000', '$30 - $22 spent - $6 reserved');
    });
});
