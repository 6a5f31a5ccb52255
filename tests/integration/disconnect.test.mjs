// disconnect: a client that goes away mid-stream (or while the gateway waits for the upstream's
// first byte) cancels the upstream transfer and frees the request: the gateway's connection to the
// mock closes, its file descriptors and memory return to their baseline after many such clients,
// the access log still records each request, and other clients are unaffected.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
    chat, gatewayIsSanitized, httpRequestBytes, post, rawConnect, sleep, startStack, waitFor,
} from '../lib/harness.mjs';

describe('client disconnect', { timeout: 120000 }, () => {
    let s;
    before(async () => {
        s = await startStack({ keys: null, server: { workers: 1 } });
    });
    after(async () => {
        if (!s) return;
        assert.deepEqual(await s.stop(), [], 'gateway shut down cleanly (no sanitizer report)');
    });

    /** Streams the mock is still writing (the gateway has not cancelled them). */
    async function openStreams() {
        const stats = await s.mock.stats();
        return stats.open_streams;
    }

    /** Opens a raw streaming request and hangs up after `afterBytes` bytes of the body arrived. */
    async function hangUpMidStream(tag, { afterBody = true } = {}) {
        const conn = rawConnect(s.gw.port);
        await conn.connected;
        const { head, body } = httpRequestBytes({
            path: '/v1/chat/completions',
            body: chat('fast', `${tag} @mock chunks=50 chunk_delay_ms=100`, { stream: true }),
        });
        await conn.write(Buffer.concat([head, body]));
        if (afterBody) await conn.waitFor((buf) => buf.includes('data: {'), 10000);
        conn.destroy();
        await conn.closed;
    }

    test('hang-up mid-stream cancels the upstream transfer', async () => {
        await hangUpMidStream('cancel-one');
        // The upstream stream would run 5 s; the gateway must drop it at once.
        await waitFor(async () => (await openStreams()) === 0,
            { timeoutMs: 1500, what: 'the mock to see its stream cancelled' });
    });

    test('every abandoned request is still logged once', async () => {
        const before = s.gw.accessLog().length;
        await hangUpMidStream('logged-one');
        await hangUpMidStream('logged-two', { afterBody: false });
        await waitFor(() => s.gw.accessLog().length >= before + 2, { timeoutMs: 5000, what: 'two access-log lines' });
        const lines = s.gw.accessLog().slice(before);
        assert.equal(lines.length, 2);
        for (const line of lines) assert.ok(line.error_type, `a disconnect is logged with an error_type: ${JSON.stringify(line)}`);
    });

    test('100 abandoned streams leak no descriptors and little memory; others are unaffected', async () => {
        // Warm up so pools and allocator arenas reach their steady size.
        for (let i = 0; i < 10; i++) await hangUpMidStream(`warm-${i}`);
        await waitFor(async () => (await openStreams()) === 0, { timeoutMs: 3000, what: 'quiet' });
        const fds0 = s.gw.fdCount();
        const rss0 = s.gw.rssKb();
        for (let round = 0; round < 10; round++) {
            await Promise.all(Array.from({ length: 10 }, (_, i) => hangUpMidStream(`leak-${round}-${i}`)));
            const ok = await post(s.gw, 'chat/completions', chat('fast', `bystander ${round}`));
            assert.equal(ok.status, 200, 'a normal request in between is served');
        }
        await waitFor(async () => (await openStreams()) === 0, { timeoutMs: 3000, what: 'all upstream streams closed' });
        await sleep(200);
        const fds1 = s.gw.fdCount();
        const rss1 = s.gw.rssKb();
        assert.ok(fds1 <= fds0 + 2, `descriptors ${fds0} → ${fds1}`);
        const allowance = gatewayIsSanitized() ? 65536 : 8192;
        assert.ok(rss1 - rss0 < allowance, `RSS grew ${rss1 - rss0} kB over 100 abandoned streams`);
    });
});
