// cache-bench.mjs — a cache hit end to end against a miss, through the real gateway and a mock
// upstream with 200 ms latency. Run: cd tests && node ../bench/cache-bench.mjs [N]
import { chat, post, startStack } from '../tests/lib/harness.mjs';

const n = Number(process.argv[2] ?? 30);
const stack = await startStack({
    mock: { delayMs: 200 },
    logging: { access_log: 'off' },
    configTransform: (cfg) => ({ ...cfg, cache: { exact: { ttl: 600 }, semantic: { ttl: 600 } } }),
});
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
const miss = [], hit = [];
try {
    for (let i = 0; i < n; i++) {
        const prompt = `Benchmark question number ${i} about shipping times to region ${i * 7}`;
        const a = await post(stack.gw, 'chat/completions', chat('fast', prompt), { key: stack.secrets.app });
        if (a.headers.get('x-sluice-cache') !== 'miss') throw new Error('expected a miss');
        miss.push(a.ms);
        const b = await post(stack.gw, 'chat/completions', chat('fast', prompt), { key: stack.secrets.app });
        if (b.headers.get('x-sluice-cache') !== 'hit') throw new Error('expected a hit');
        hit.push(b.ms);
    }
    const p50m = quantile(miss, 0.5), p50h = quantile(hit, 0.5);
    console.log(`requests: ${n} misses, ${n} hits (mock upstream delay 200 ms; client-measured, HTTP included)`);
    console.log(`miss p50 ${p50m.toFixed(2)} ms  p99 ${quantile(miss, 0.99).toFixed(2)} ms`);
    console.log(`hit  p50 ${p50h.toFixed(2)} ms  p99 ${quantile(hit, 0.99).toFixed(2)} ms`);
    console.log(`speed-up at p50: ${(p50m / p50h).toFixed(1)}x; at p99: ${(quantile(miss, 0.99) / quantile(hit, 0.99)).toFixed(1)}x`);
} finally {
    await stack.stop();
}
