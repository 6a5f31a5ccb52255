// mock.test.mjs — checks sluice-mock itself, independently of the gateway: a Bedrock request
// signed here with node:crypto (SigV4, model id with ':' so the double-encoding rule matters),
// the event-stream framing with zlib CRCs, and one request per provider format.
// Run: node --test mock/tests/   (SLUICE_MOCK_BIN overrides build/sluice-mock)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';

const here = path.dirname(fileURLToPath(import.meta.url));
const MOCK_BIN = process.env.SLUICE_MOCK_BIN || path.resolve(here, '../../build/sluice-mock');
const AKID = 'AKIDMOCKEXAMPLE';
const SECRET = 'mock/secret+key/EXAMPLE';
const REGION = 'us-east-1';

async function freePort() {
    return new Promise((resolve) => {
        const srv = net.createServer().listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

const hex = (data) => createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => createHmac('sha256', key).update(data).digest();

// RFC 3986 encoding, as AWS wants it.
const awsEncode = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** Signs a request the way the AWS SDKs do for bedrock (segments encoded twice). */
function sign({ method = 'POST', host, rawPath, body, secret = SECRET, date = new Date() }) {
    const amzDate = date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
    const day = amzDate.slice(0, 8);
    const headers = { host, 'x-amz-date': amzDate, 'content-type': 'application/json', 'x-amz-content-sha256': hex(body) };
    const signed = Object.keys(headers).sort();
    const canonicalUri = rawPath.split('/').map(awsEncode).join('/');
    const canonical = [method, canonicalUri, '', ...signed.map((h) => `${h}:${headers[h]}`), '', signed.join(';'), hex(body)].join('\n');
    const scope = `${day}/${REGION}/bedrock/aws4_request`;
    const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, hex(canonical)].join('\n');
    const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, day), REGION), 'bedrock'), 'aws4_request');
    const signature = createHmac('sha256', key).update(toSign).digest('hex');
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${AKID}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${signature}`;
    return headers;
}

/** Decodes event-stream messages, checking both CRCs of each. */
function decodeEventStream(buf) {
    const out = [];
    let off = 0;
    while (off < buf.length) {
        const total = buf.readUInt32BE(off);
        const headersLength = buf.readUInt32BE(off + 4);
        assert.equal(buf.readUInt32BE(off + 8), zlib.crc32(buf.subarray(off, off + 8)), 'prelude CRC');
        assert.equal(buf.readUInt32BE(off + total - 4), zlib.crc32(buf.subarray(off, off + total - 4)), 'message CRC');
        const headers = {};
        let h = off + 12;
        while (h < off + 12 + headersLength) {
            const nameLength = buf[h];
            const name = buf.subarray(h + 1, h + 1 + nameLength).toString();
            h += 1 + nameLength;
            assert.equal(buf[h], 7, 'string header');
            const valueLength = buf.readUInt16BE(h + 1);
            headers[name] = buf.subarray(h + 3, h + 3 + valueLength).toString();
            h += 3 + valueLength;
        }
        const payload = JSON.parse(buf.subarray(off + 12 + headersLength, off + total - 4).toString());
        out.push({ headers, payload });
        off += total;
    }
    return out;
}

describe('sluice-mock', { timeout: 30000 }, () => {
    let proc;
    let base;
    let host;
    before(async () => {
        const port = await freePort();
        host = `127.0.0.1:${port}`;
        base = `http://${host}`;
        proc = spawn(MOCK_BIN, ['--listen', host, '--quiet', '--aws-access-key-id', AKID, '--aws-secret-access-key', SECRET], { stdio: ['ignore', 'pipe', 'inherit'] });
        await new Promise((resolve, reject) => {
            proc.stdout.on('data', (d) => { if (String(d).includes('listening on')) resolve(); });
            proc.on('exit', (code) => reject(new Error(`mock exited ${code}`)));
        });
    });
    after(() => proc?.kill('SIGTERM'));

    const converse = (action, text, extra = {}) => JSON.stringify({ messages: [{ role: 'user', content: [{ text }] }], ...extra });
    const bedrockPath = (id, action) => `/model/${encodeURIComponent(id)}/${action}`;

    async function signedPost(rawPath, body, opts = {}) {
        const headers = sign({ host, rawPath, body, ...opts });
        delete headers.host;
        return fetch(`${base}${rawPath}`, { method: 'POST', headers, body });
    }

    test('Bedrock converse with a valid SigV4 signature (model id with ":")', async () => {
        const p = bedrockPath('anthropic.claude-3-haiku-20240307-v1:0', 'converse');
        assert.ok(p.includes('%3A'), p);
        const r = await signedPost(p, converse('converse', 'hello bedrock'));
        const j = await r.json();
        assert.equal(r.status, 200, JSON.stringify(j));
        assert.ok(j.output.message.content[0].text.startsWith('mock reply to: hello bedrock'));
        assert.equal(j.stopReason, 'end_turn');
        assert.equal(j.usage.totalTokens, j.usage.inputTokens + j.usage.outputTokens);
    });

    test('Bedrock: wrong secret → 403 signature mismatch', async () => {
        const r = await signedPost(bedrockPath('amazon.nova-lite-v1:0', 'converse'), converse('c', 'x'), { secret: 'wrong' });
        assert.equal(r.status, 403);
        assert.match((await r.json()).message, /signature we calculated does not match/);
        assert.match(r.headers.get('x-amzn-errortype'), /^InvalidSignatureException/);
    });

    test('Bedrock: signing the single-encoded path (the classic gateway bug) → 403', async () => {
        const p = bedrockPath('amazon.nova-lite-v1:0', 'converse');
        const body = converse('c', 'x');
        const headers = sign({ host, rawPath: decodeURIComponent(p), body });
        delete headers.host;
        const r = await fetch(`${base}${p}`, { method: 'POST', headers, body });
        assert.equal(r.status, 403);
    });

    test('Bedrock: stale x-amz-date → 403 signature expired', async () => {
        const r = await signedPost(bedrockPath('m', 'converse'), converse('c', 'x'), { date: new Date(Date.now() - 3600e3) });
        assert.equal(r.status, 403);
        assert.match((await r.json()).message, /Signature expired/);
    });

    test('Bedrock converse-stream: event-stream frames with valid CRCs', async () => {
        const r = await signedPost(bedrockPath('amazon.nova-lite-v1:0', 'converse-stream'), converse('s', 'x @mock words=9'));
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('content-type'), 'application/vnd.amazon.eventstream');
        const events = decodeEventStream(Buffer.from(await r.arrayBuffer()));
        const types = events.map((e) => e.headers[':event-type']);
        assert.equal(types[0], 'messageStart');
        assert.deepEqual(types.slice(-3), ['contentBlockStop', 'messageStop', 'metadata']);
        assert.ok(!types.includes('contentBlockStart'), 'text blocks get no contentBlockStart');
        const text = events.filter((e) => e.headers[':event-type'] === 'contentBlockDelta').map((e) => e.payload.delta.text).join('');
        assert.equal(text.split(/\s+/).length, 9);
        assert.ok(events.every((e) => typeof e.payload.p === 'string'), 'padding field');
        assert.equal(events.at(-1).payload.usage.outputTokens, 9);
    });

    test('Bedrock converse-stream: tool use and an injected exception', async () => {
        const toolConfig = { tools: [{ toolSpec: { name: 'get_weather', inputSchema: { json: { type: 'object', properties: { city: { type: 'string' } } } } } }] };
        const r = await signedPost(bedrockPath('m', 'converse-stream'), converse('s', 'weather in Lima', { toolConfig }));
        const events = decodeEventStream(Buffer.from(await r.arrayBuffer()));
        const start = events.find((e) => e.headers[':event-type'] === 'contentBlockStart');
        assert.equal(start.payload.start.toolUse.name, 'get_weather');
        const input = events.filter((e) => e.headers[':event-type'] === 'contentBlockDelta').map((e) => e.payload.delta.toolUse.input).join('');
        assert.deepEqual(JSON.parse(input), { city: 'Lima' });
        assert.equal(events.find((e) => e.headers[':event-type'] === 'messageStop').payload.stopReason, 'tool_use');

        // the @mock directives are not part of the question: the argument is still the city
        const r1 = await signedPost(bedrockPath('m', 'converse'), converse('s', 'weather in Paris @mock chunks=4', { toolConfig }));
        const body1 = await r1.json();
        const toolUse = body1.output.message.content.find((b) => b.toolUse).toolUse;
        assert.deepEqual(toolUse.input, { city: 'Paris' });

        const r2 = await signedPost(bedrockPath('m', 'converse-stream'), converse('s', 'x @mock error_after=1'));
        const ev2 = decodeEventStream(Buffer.from(await r2.arrayBuffer()));
        assert.equal(ev2.at(-1).headers[':message-type'], 'exception');
        assert.equal(ev2.at(-1).headers[':exception-type'], 'modelStreamErrorException');
    });

    test('Bedrock: status directive in the model id → x-amzn-errortype', async () => {
        const r = await signedPost(bedrockPath('m@status=429', 'converse'), converse('c', 'x'));
        assert.equal(r.status, 429);
        assert.match(r.headers.get('x-amzn-errortype'), /^ThrottlingException/);
    });

    test('Bedrock: Titan embeddings via invoke', async () => {
        const r = await signedPost(bedrockPath('amazon.titan-embed-text-v2:0', 'invoke'), JSON.stringify({ inputText: 'hi', dimensions: 8 }));
        const j = await r.json();
        assert.equal(r.status, 200, JSON.stringify(j));
        assert.equal(j.embedding.length, 8);
    });

    test('Gemini SSE uses CRLF framing', async () => {
        const r = await fetch(`${base}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse`, {
            method: 'POST', headers: { 'x-goog-api-key': 'k', 'content-type': 'application/json' },
            body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
        });
        const text = await r.text();
        assert.ok(text.includes('\r\n\r\n'));
        assert.ok(!/[^\r]\n/.test(text), 'every LF is part of a CRLF');
    });

    test('Anthropic stream event order', async () => {
        const r = await fetch(`${base}/v1/messages`, {
            method: 'POST', headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'claude', max_tokens: 5, stream: true, messages: [{ role: 'user', content: 'hi @mock words=3' }] }),
        });
        const names = [...(await r.text()).matchAll(/^event: (\w+)$/gm)].map((m) => m[1]).filter((n, i, a) => n !== a[i - 1]);
        assert.deepEqual(names, ['message_start', 'content_block_start', 'ping', 'content_block_delta',
            'content_block_stop', 'message_delta', 'message_stop']);
    });
});
