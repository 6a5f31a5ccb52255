// contract: regression tests for deviations from the wire-API contract (DESIGN.md) found by an
// independent black-box review: what real clients (the official SDKs, browsers, curl) send and
// expect, beyond the happy paths the other suites cover.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import {
    assertOpenAIError, chat, makeTempDir, post, request, runSluice, sha256hex, startStack,
} from '../lib/harness.mjs';

describe('contract', { timeout: 60000 }, () => {
    let s;
    before(async () => {
        s = await startStack({
            models: { embed: { targets: [{ provider: 'mock', model: 'text-embedding-3-small' }] } },
            configTransform: (cfg) => {
                cfg.keys.push({ name: 'root', key: '${ROOT_KEY}', admin: true });
                return cfg;
            },
            env: { ROOT_KEY: 'sk-root-admin-key' },
        });
    });
    after(async () => {
        if (!s) return;
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    test('GET /v1/models/{id} retrieves one model (openai SDK models.retrieve)', async () => {
        const client = new OpenAI({ baseURL: s.gw.base, apiKey: s.secrets.ops, maxRetries: 0 });
        const model = await client.models.retrieve('fast');
        assert.equal(model.id, 'fast');
        assert.equal(model.object, 'model');
        assert.equal(typeof model.created, 'number');
        assert.equal(typeof model.owned_by, 'string');
        // provider/model names of configured providers, percent-encoded or not
        for (const path of ['mock/gpt-4o', 'mock%2Fgpt-4o']) {
            const r = await request(`${s.gw.base}/models/${path}`, { key: s.secrets.ops });
            assert.equal(r.status, 200, r.text);
            assert.equal(r.json.id, 'mock/gpt-4o');
        }
        // unknown model: 404 in OpenAI shape
        const missing = await request(`${s.gw.base}/models/nope`, { key: s.secrets.ops });
        assert.equal(missing.status, 404);
        assertOpenAIError(missing.json, { code: 'model_not_found' });
        // a model the key may not use is not revealed (the list hides it too)
        const hidden = await request(`${s.gw.base}/models/embed`, { key: s.secrets.app });
        assert.equal(hidden.status, 404, hidden.text);
        const list = await request(`${s.gw.base}/models`, { key: s.secrets.app });
        assert.deepEqual(list.json.data.map((m) => m.id), ['fast']);
        // it needs a key like every API route
        const anonymous = await request(`${s.gw.base}/models/fast`);
        assert.equal(anonymous.status, 401);
    });

    test('a trailing slash on an API path is the same route', async () => {
        const r = await request(`${s.gw.base}/chat/completions/`, { key: s.secrets.ops, body: chat('fast', 'slash') });
        assert.equal(r.status, 200, r.text);
        const models = await request(`${s.gw.base}/models/`, { key: s.secrets.ops });
        assert.equal(models.status, 200, models.text);
        assert.equal(models.json.object, 'list');
    });

    test('every /admin/ path needs an admin key before anything else', async () => {
        for (const path of ['/admin', '/admin/', '/admin/nope', '/admin/cache/nope']) {
            const anonymous = await request(`${s.gw.url}${path}`);
            assert.equal(anonymous.status, 401, `${path}: ${anonymous.text}`);
            assertOpenAIError(anonymous.json);
            const notAdmin = await request(`${s.gw.url}${path}`, { key: s.secrets.ops });
            assert.equal(notAdmin.status, 403, `${path}: ${notAdmin.text}`);
            assertOpenAIError(notAdmin.json);
        }
        const unknown = await request(`${s.gw.url}/admin/nope`, { key: 'sk-root-admin-key' });
        assert.equal(unknown.status, 404);
        assertOpenAIError(unknown.json);
        const stats = await request(`${s.gw.url}/admin/cache/stats`, { key: 'sk-root-admin-key' });
        assert.equal(stats.status, 200, stats.text);
    });

    test('CORS: a browser preflight gets 204 and responses allow the origin', async () => {
        const pre = await request(`${s.gw.base}/chat/completions`, {
            method: 'OPTIONS',
            headers: {
                origin: 'http://app.example', 'access-control-request-method': 'POST',
                'access-control-request-headers': 'authorization, content-type, x-sluice-user',
            },
        });
        assert.equal(pre.status, 204, pre.text);
        assert.equal(pre.headers.get('access-control-allow-origin'), '*');
        assert.match(pre.headers.get('access-control-allow-methods') || '', /POST/);
        assert.match(pre.headers.get('access-control-allow-headers') || '', /authorization/i);
        const r = await post(s.gw, 'chat/completions', chat('fast', 'cors'),
            { key: s.secrets.ops, headers: { origin: 'http://app.example' } });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers.get('access-control-allow-origin'), '*');
        assert.match(r.headers.get('access-control-expose-headers') || '', /x-sluice-request-id/);
        const denied = await post(s.gw, 'chat/completions', chat('fast', 'cors'), { headers: { origin: 'http://app.example' } });
        assert.equal(denied.status, 401, 'CORS does not bypass auth');
        assert.equal(denied.headers.get('access-control-allow-origin'), '*', 'errors are readable by the page');
    });

    test('a wrong method is 405 with an Allow header', async () => {
        const r = await request(`${s.gw.base}/chat/completions`, { key: s.secrets.ops });
        assert.equal(r.status, 405);
        assert.equal(r.headers.get('allow'), 'POST');
        assertOpenAIError(r.json);
        const d = await request(`${s.gw.base}/models`, { method: 'DELETE', key: s.secrets.ops });
        assert.equal(d.status, 405);
        assert.equal(d.headers.get('allow'), 'GET');
    });
});

describe('contract: CLI and config', () => {
    const designExample = (hash) => `server:   { listen: "0.0.0.0:8080", workers: auto, max_body_bytes: 8388608 }
providers:                       # name -> how to reach it
  openai:    { type: openai,    base_url: "https://api.openai.com/v1", api_key: "\${OPENAI_API_KEY}" }
  anthropic: { type: anthropic, base_url: "https://api.anthropic.com", api_key: "\${ANTHROPIC_API_KEY}" }
  local:     { type: openai-compatible, base_url: "http://127.0.0.1:11434/v1" }
models:                          # the names clients send in "model"
  fast:
    targets: [ { provider: openai, model: gpt-4o-mini } ]
  smart:
    strategy: fallback           # fallback | loadbalance | latency | cost | cascade
    targets:
      - { provider: anthropic, model: claude-sonnet-4-5 }
      - { provider: openai, model: gpt-4o }
pricing:                         # USD per million tokens
  gpt-4o-mini: { input: 0.15, output: 0.60 }
keys:                            # virtual keys; the secret itself is never stored, only its hash
  - { name: app, key_sha256: "${hash}", team: web, models: [fast, smart], rpm: 600, tpm: 200000 }
teams:
  web: { budget: { usd: 500, period: month } }
cache:   { exact: { ttl: 3600 }, semantic: { threshold: 0.95, ttl: 3600 } }
redis:   { url: "redis://127.0.0.1:6379" }
logging: { access_log: stdout }
`;

    test('the DESIGN.md example validates; -c, --config FILE, --config=FILE and SLUICE_CONFIG all name it', () => {
        const dir = makeTempDir();
        const file = path.join(dir, 'design.yaml');
        writeFileSync(file, designExample(sha256hex('sk-design-example')));
        const env = { OPENAI_API_KEY: 'sk-o', ANTHROPIC_API_KEY: 'sk-a' };
        for (const args of [['--check', '-c', file], ['--check', '--config', file], ['--check', `--config=${file}`]]) {
            const r = runSluice(args, { env });
            assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
        }
        const viaEnv = runSluice(['--check'], { env: { ...env, SLUICE_CONFIG: file } });
        assert.equal(viaEnv.code, 0, viaEnv.stderr);
        const unset = runSluice(['--check', '-c', file], { env: { OPENAI_API_KEY: '', ANTHROPIC_API_KEY: 'sk-a' } });
        assert.equal(unset.code, 1);
        assert.match(unset.stderr, /design\.yaml:3: providers\.openai\.api_key: .*OPENAI_API_KEY/);
    });
});
