#!/usr/bin/env node
// eval-cache-provider.mjs — semantic-cache quality for the *provider* embedder on the labelled pair
// sets (tests/data/cache-pairs.jsonl: tuning; cache-pairs-holdout.jsonl: held out), across thresholds.
//
//   node scripts/eval-cache-provider.mjs                      # against sluice-mock (build/sluice-mock)
//   EMBED_BASE_URL=https://api.openai.com/v1 EMBED_MODEL=text-embedding-3-small \
//   EMBED_API_KEY=sk-... node scripts/eval-cache-provider.mjs # against a real provider
//
// Each text is embedded once (POST {base}/embeddings, one string per call, as the gateway does) and
// pairs are scored by the cosine of the float vectors (the gateway's int8 index adds about ±0.005).
// With no EMBED_BASE_URL it starts the mock, whose vectors are hashed character trigrams: a stand-in
// that exercises the path and the table, not a measurement of a real embedding model.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sets = ['cache-pairs', 'cache-pairs-holdout'];

async function freePort() {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.on('error', reject);
        server.listen(0, '127.0.0.1', () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
    });
}

async function startMock() {
    const bin = process.env.SLUICE_MOCK_BIN || path.join(root, 'build', 'sluice-mock');
    const port = await freePort();
    const child = spawn(bin, ['--listen', `127.0.0.1:${port}`, '--threads', '2'], { stdio: ['ignore', 'pipe', 'ignore'] });
    await new Promise((resolve, reject) => {
        child.on('error', reject);
        child.on('exit', (code) => reject(new Error(`sluice-mock exited (${code})`)));
        child.stdout.on('data', (data) => { if (/listening on/.test(String(data))) resolve(); });
    });
    return { child, base: `http://127.0.0.1:${port}/v1` };
}

async function embed(base, model, key, text) {
    const response = await fetch(`${base}/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
        body: JSON.stringify({ model, input: text }),
        signal: AbortSignal.timeout(30000),
    });
    if (!response.ok) throw new Error(`embeddings: HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`);
    const vector = (await response.json())?.data?.[0]?.embedding;
    if (!Array.isArray(vector) || vector.length === 0) throw new Error('embeddings: no vector in the answer');
    const norm = Math.hypot(...vector);
    return vector.map((x) => x / norm);
}

function table(pairs) {
    const same = pairs.filter((p) => p.label === 'same').length;
    const different = pairs.length - same;
    const lines = ['| threshold | hit rate (same) | false-hit rate (different) | 1 - precision |', '|---:|---:|---:|---:|'];
    let chosen = null;
    for (let step = 60; step <= 99; step++) {
        const threshold = step / 100;
        const served = pairs.filter((p) => p.similarity >= threshold);
        const hits = served.filter((p) => p.label === 'same').length;
        const falseHits = served.length - hits;
        const impurity = served.length ? falseHits / served.length : 0;
        const isChosen = chosen === null && falseHits / different <= 0.01 && impurity <= 0.01;
        if (isChosen) chosen = threshold;
        if (step % 5 === 0 || isChosen) {
            lines.push(`| ${threshold.toFixed(2)}${isChosen ? ' **' : ''} | ${(100 * hits / same).toFixed(1)} % | `
                + `${(100 * falseHits / different).toFixed(1)} % | ${(100 * impurity).toFixed(1)} % |`);
        }
    }
    return { lines, chosen, same, different };
}

const mock = process.env.EMBED_BASE_URL ? null : await startMock();
try {
    const base = process.env.EMBED_BASE_URL || mock.base;
    const model = process.env.EMBED_MODEL || 'text-embedding-3-small';
    const key = process.env.EMBED_API_KEY || (mock ? 'sk-mock' : '');
    console.log(`provider embedder: ${model} at ${mock ? 'sluice-mock (hashed trigrams: a stand-in)' : base}\n`);
    const cache = new Map();
    const vectorOf = async (text) => {
        if (!cache.has(text)) cache.set(text, await embed(base, model, key, text));
        return cache.get(text);
    };
    for (const set of sets) {
        const pairs = fs.readFileSync(path.join(root, 'tests', 'data', `${set}.jsonl`), 'utf8')
            .split('\n').filter(Boolean).map((line) => JSON.parse(line));
        for (const pair of pairs) {
            const [a, b] = [await vectorOf(pair.a), await vectorOf(pair.b)];
            if (a.length !== b.length) throw new Error('embeddings of different lengths');
            pair.similarity = a.reduce((sum, x, i) => sum + x * b[i], 0);
        }
        const { lines, chosen, same, different } = table(pairs);
        console.log(`## tests/data/${set}.jsonl: ${pairs.length} pairs (${same} same, ${different} different)\n`);
        console.log(lines.join('\n'));
        console.log(`\nlowest threshold with false hits <= 1 %: ${chosen === null ? 'none' : chosen.toFixed(2)}\n`);
    }
} finally {
    mock?.child.kill('SIGTERM');
}
