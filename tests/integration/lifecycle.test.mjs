// lifecycle: the CLI contract (--version, --check, SLUICE_CONFIG), SIGHUP reload under load with
// zero failed requests (new models and keys apply, a broken file is rejected naming line and key
// while the old config keeps serving), and SIGTERM drain (open streams finish, new connections are
// refused, exit 0; the drain deadline bounds the wait).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
    assembleChat, baseConfig, chat, makeTempDir, post, runSluice, sleep, startGateway, startMock, startStack,
    streamRequest, toYaml, tryConnect, waitFor,
} from '../lib/harness.mjs';

describe('CLI', { timeout: 30000 }, () => {
    let dir;
    before(() => { dir = makeTempDir('sluice-cli-'); });

    const write = (name, text) => {
        const file = path.join(dir, name);
        writeFileSync(file, text);
        return file;
    };

    test('--version prints the version and exits 0', () => {
        const r = runSluice(['--version']);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^sluice \d+\.\d+\.\d+/);
    });

    test('--check accepts a valid file (exit 0)', () => {
        const file = write('ok.yaml', toYaml(baseConfig({ port: 1, mockPort: 2 })));
        const r = runSluice(['--check', '-c', file], { env: { MOCK_KEY: 'x' } });
        assert.equal(r.code, 0, r.stderr);
    });

    test('--check rejects a bad file (exit 1) naming file, line and key', () => {
        const file = write('bad.yaml', 'providers:\n  p:\n    type: openai\n    base_url: http://x/v1\n' +
            'models:\n  m:\n    targets:\n      - { provider: nope, model: x }\n');
        const r = runSluice(['--check', '-c', file]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /bad\.yaml:8: models\.m\.targets\[0\]\.provider: unknown provider 'nope'/);
    });

    test('--check reports an unset ${VAR} with its line', () => {
        const file = write('env.yaml', 'providers:\n  p:\n    type: openai\n    base_url: http://x/v1\n' +
            '    api_key: ${SLUICE_SURELY_UNSET_VAR}\n');
        const r = runSluice(['--check', '-c', file], { env: { SLUICE_SURELY_UNSET_VAR: '' } });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /env\.yaml:5: providers\.p\.api_key: .*SLUICE_SURELY_UNSET_VAR/);
    });

    test('SLUICE_CONFIG names the file when -c is absent', () => {
        const file = write('env-ok.yaml', toYaml(baseConfig({ port: 1, mockPort: 2 })));
        const r = runSluice(['--check'], { env: { SLUICE_CONFIG: file } });
        assert.equal(r.code, 0, r.stderr);
        const none = runSluice(['--check'], { env: { SLUICE_CONFIG: '' } });
        assert.equal(none.code, 1);
    });

    test('unknown argument is refused with usage', () => {
        const r = runSluice(['--frobnicate']);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /usage/);
    });
});

describe('SIGHUP reload', { timeout: 90000 }, () => {
    let s;
    before(async () => { s = await startStack(); });
    after(async () => {
        if (!s) return;
        assert.deepEqual(await s.stop(), [], 'gateway shut down cleanly');
    });

    /** Sends requests from `workers` loops until stop() and counts outcomes. */
    function load(model, workers = 6) {
        const counts = { ok: 0, failed: 0, failures: [] };
        let running = true;
        const loops = Array.from({ length: workers }, async (_, i) => {
            let n = 0;
            while (running) {
                const stream = (n++ + i) % 3 === 0;
                try {
                    if (stream) {
                        const r = await streamRequest(`${s.gw.base}/chat/completions`,
                            chat(model, `reload load ${i} @mock chunks=4 chunk_delay_ms=5`, { stream: true }),
                            { key: s.secrets.ops });
                        if (r.status === 200 && r.done && !r.error) counts.ok++;
                        else { counts.failed++; counts.failures.push(`stream ${r.status} ${r.error}`); }
                    } else {
                        const r = await post(s.gw, 'chat/completions', chat(model, `reload load ${i}`), { key: s.secrets.ops });
                        if (r.status === 200) counts.ok++;
                        else { counts.failed++; counts.failures.push(`${r.status} ${r.text.slice(0, 200)}`); }
                    }
                } catch (err) {
                    counts.failed++;
                    counts.failures.push(String(err));
                }
            }
        });
        return { counts, async stop() { running = false; await Promise.all(loops); } };
    }

    test('new models and keys apply after SIGHUP; zero failed requests under load', async () => {
        const newKey = 'sk-added-by-reload-0123456789';
        const before = await post(s.gw, 'chat/completions', chat('added', 'hi'), { key: s.secrets.ops });
        assert.equal(before.status, 404, 'the model does not exist yet');

        const l = load('fast');
        await sleep(300);
        for (let round = 0; round < 5; round++) {
            await s.gw.reload(s.config({
                models: { added: { targets: [{ provider: 'mock', model: `gpt-4o-round-${round}` }] } },
                keys: [
                    { name: 'ops', key: '${OPS_KEY}' },
                    { name: 'added', key: newKey },
                ],
            }));
            await sleep(250);
        }
        await l.stop();
        assert.equal(l.counts.failed, 0, `failures during reload: ${l.counts.failures.slice(0, 5).join(' | ')}`);
        assert.ok(l.counts.ok >= 20, `requests were running during the reloads: ${l.counts.ok}`);

        const after = await post(s.gw, 'chat/completions', chat('added', 'hi'), { key: newKey });
        assert.equal(after.status, 200, after.text);
        assert.equal(after.headers.get('x-sluice-model'), 'gpt-4o-round-4');
        const models = await post(s.gw, 'chat/completions', chat('fast', 'hi'), { key: s.secrets.app });
        assert.equal(models.status, 401, 'the key dropped from the file no longer works');
        assert.ok(s.gw.stderrLines.some((line) => /config reloaded/.test(line)), 'the reload is logged');
    });

    test('a broken file is rejected with line and key; the old config keeps serving', async () => {
        const good = s.config({ models: { kept: { targets: [{ provider: 'mock', model: 'gpt-4o' }] } } });
        await s.gw.reload(good);
        await waitFor(async () => (await post(s.gw, 'chat/completions', chat('kept', 'x'), { key: s.secrets.ops })).status === 200,
            { what: 'the good config to apply' });
        const seen = s.gw.stderrLines.length;
        const broken = toYaml(good).replace('provider: "mock"', 'provider: "missing-provider"');
        await s.gw.reload(broken);
        const line = await waitFor(() => s.gw.stderrLines.slice(seen).find((l) => /reload rejected/.test(l)),
            { what: 'the rejection to be logged' });
        assert.match(line, /sluice\.yaml:\d+: models\.\w+\.targets\[0\]\.provider/);
        const r = await post(s.gw, 'chat/completions', chat('kept', 'still here'), { key: s.secrets.ops });
        assert.equal(r.status, 200, 'the old config still serves');
        // YAML that does not even parse.
        await s.gw.reload('models: [unclosed\n');
        await waitFor(() => s.gw.stderrLines.slice(seen).filter((l) => /reload rejected/.test(l)).length >= 2,
            { what: 'the second rejection' });
        assert.equal((await post(s.gw, 'chat/completions', chat('kept', 'x'), { key: s.secrets.ops })).status, 200);
    });
});

describe('SIGTERM drain', { timeout: 60000 }, () => {
    let mock;
    before(async () => { mock = await startMock(); });
    after(async () => { if (mock) await mock.stop({ graceMs: 2000 }); });

    const start = (server = {}) => startGateway({
        config: (port) => baseConfig({ port, mockPort: mock.port, keys: null, server }),
    });

    test('open streams finish, new connections are refused, exit 0', async () => {
        const gw = await start({ drain_timeout_ms: 10000 });
        let signalled = false;
        const streaming = streamRequest(`${gw.base}/chat/completions`,
            chat('fast', 'drain me @mock chunks=10 chunk_delay_ms=150', { stream: true }), {
                onEvent: () => {
                    if (!signalled) { signalled = true; gw.kill('SIGTERM'); }
                    return false;
                },
            });
        const plain = post(gw, 'chat/completions', chat('fast', 'in flight @mock delay_ms=600'));
        await waitFor(() => signalled, { what: 'the first chunk' });
        await sleep(150);
        assert.notEqual(await tryConnect(gw.port), 'connected', 'new connections are refused while draining');
        const r = await streaming;
        assert.equal(r.status, 200);
        assert.equal(r.error, null, `the stream was not cut: ${r.error}`);
        assert.ok(r.done, 'the stream finished with [DONE]');
        assert.deepEqual(assembleChat(r.events).finish, ['stop']);
        const p = await plain;
        assert.equal(p.status, 200, 'the in-flight request finished');
        const info = await gw.exited;
        assert.equal(info.code, 0, `exit code ${info.code} signal ${info.signal}`);
        assert.deepEqual(gw.sanitizerReports(), []);
    });

    test('the drain deadline bounds the wait for a stream that would run too long', async () => {
        const gw = await start({ drain_timeout_ms: 800 });
        const streaming = streamRequest(`${gw.base}/chat/completions`,
            chat('fast', 'too long @mock chunks=100 chunk_delay_ms=100', { stream: true }), { timeoutMs: 20000 });
        await sleep(300);
        const t0 = Date.now();
        gw.kill('SIGTERM');
        const info = await gw.exited;
        const took = Date.now() - t0;
        assert.equal(info.code, 0);
        assert.ok(took < 5000, `exited ${took} ms after SIGTERM (deadline 800 ms)`);
        const r = await streaming;
        assert.ok(!r.done, 'the cut stream did not pretend to finish');
    });

    test('an idle gateway exits promptly on SIGTERM', async () => {
        const gw = await start();
        const t0 = Date.now();
        const info = await gw.stop({ graceMs: 5000 });
        assert.equal(info.code, 0);
        assert.equal(info.killed, false);
        assert.ok(Date.now() - t0 < 3000);
    });
});
