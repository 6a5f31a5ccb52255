// bench/report.mjs — turns bench/run.sh's raw measurements into the Markdown results page.
//
// usage: node bench/report.mjs RESULTS.jsonl META.json > bench/results/<date>-<host>.md
// RESULTS.jsonl has one line per wrk run (written by bench/wrk/chat.lua, with the server CPU
// ticks added by run.sh); META.json describes the machine, the parameters and the callgrind
// counts. Per target and mode the page gives the median of the rounds, and the ratios that the
// project tracks: sluice/nginx and sluice/direct requests per second (target: sluice >= 0.8x nginx).
import { readFileSync } from 'node:fs';

const [resultsPath, metaPath] = process.argv.slice(2);
if (!resultsPath || !metaPath) {
    console.error('usage: node bench/report.mjs RESULTS.jsonl META.json');
    process.exit(2);
}
const runs = readFileSync(resultsPath, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
const meta = JSON.parse(readFileSync(metaPath, 'utf8'));

const TARGETS = ['direct', 'nginx', 'sluice'];
const MODES = ['nonstream', 'stream'];
const MODE_TITLE = { nonstream: 'non-streaming', stream: 'streaming' };
const TARGET_TITLE = { direct: 'direct (mock)', nginx: 'nginx → mock', sluice: 'sluice → mock' };

const median = (values) => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const ms = (us) => (us / 1000).toFixed(2);
const int = (x) => Math.round(x).toLocaleString('en-US');
const errorsOf = (r) => r.errors_connect + r.errors_read + r.errors_write + r.errors_status + r.errors_timeout;
const cpuUsPerRequest = (list, field) => {
    const requests = list.reduce((sum, r) => sum + r.requests, 0);
    const ticks = list.reduce((sum, r) => sum + (r[field] ?? 0), 0);
    return requests ? (ticks * 1e6) / meta.clk_tck / requests : NaN;
};

const summary = {};
for (const mode of MODES) {
    summary[mode] = {};
    for (const target of TARGETS) {
        const list = runs.filter((r) => r.mode === mode && r.target === target);
        if (!list.length) continue;
        summary[mode][target] = {
            rounds: list.map((r) => r.rps),
            rps: median(list.map((r) => r.rps)),
            p50: median(list.map((r) => r.p50_us)),
            p99: median(list.map((r) => r.p99_us)),
            errors: list.reduce((sum, r) => sum + errorsOf(r), 0),
            requests: list.reduce((sum, r) => sum + r.requests, 0),
            serverCpu: cpuUsPerRequest(list, 'server_cpu_ticks'),
            mockCpu: cpuUsPerRequest(list, 'mock_cpu_ticks'),
        };
    }
}

const lines = [];
const say = (s = '') => lines.push(s);

say(`# Sluice benchmark — ${meta.date.slice(0, 10)}, ${meta.host}`);
say();
say(`Written by \`bench/run.sh\` (\`bench/report.mjs\`). Machine: ${meta.cpu}, ${meta.kernel}. ` +
    `Sluice ${meta.sluice} at ${meta.commit}; ${meta.nginx}; ${meta.wrk}.`);
say();
say(`Setup: loopback only; ${meta.workers} worker(s) per server (sluice \`server.workers\`, nginx ` +
    `\`worker_processes\`, mock \`--threads\`); wrk \`-t1 -c${meta.connections}\`; ${meta.layout}. ` +
    `${meta.rounds} interleaved rounds of ${meta.duration_s} s per target and mode (after ${meta.warmup_s} s ` +
    `of warm-up each), medians shown. Request: a two-message chat completion; the mock answers ` +
    `\`@mock ${meta.mock_plain}\` (non-streaming) or \`@mock ${meta.mock_stream}\` (streaming; one ` +
    `request = the whole SSE stream). Sluice checks a virtual key and formats an access-log line per ` +
    `request, written to \`/dev/null\`; nginx logs to \`/dev/null\` too, proxies over an upstream ` +
    `keepalive pool, with \`proxy_buffering off\`. Wall time of the load phase: ${meta.elapsed_s} s.`);
say();

for (const mode of MODES) {
    say(`## ${MODE_TITLE[mode]}`);
    say();
    say('| target | req/s (median) | p50 ms | p99 ms | server CPU µs/req | mock CPU µs/req | errors | req/s per round |');
    say('|---|---:|---:|---:|---:|---:|---:|---|');
    for (const target of TARGETS) {
        const s = summary[mode][target];
        if (!s) continue;
        const mockCpu = target === 'direct' ? '—' : s.mockCpu.toFixed(1);
        say(`| ${TARGET_TITLE[target]} | ${int(s.rps)} | ${ms(s.p50)} | ${ms(s.p99)} | ${s.serverCpu.toFixed(1)} | ` +
            `${mockCpu} | ${s.errors} | ${s.rounds.map(int).join(', ')} |`);
    }
    say();
}

say('## Ratios');
say();
say('| mode | sluice / nginx req/s | sluice / direct req/s | sluice / nginx p50 | sluice / nginx p99 | sluice / nginx server CPU per request | target ≥ 0.8× nginx |');
say('|---|---:|---:|---:|---:|---:|---|');
for (const mode of MODES) {
    const { direct, nginx, sluice } = summary[mode];
    if (!direct || !nginx || !sluice) continue;
    const ratio = sluice.rps / nginx.rps;
    say(`| ${MODE_TITLE[mode]} | ${ratio.toFixed(2)}× | ${(sluice.rps / direct.rps).toFixed(2)}× | ` +
        `${(sluice.p50 / nginx.p50).toFixed(2)}× | ${(sluice.p99 / nginx.p99).toFixed(2)}× | ` +
        `${(sluice.serverCpu / nginx.serverCpu).toFixed(2)}× | ${ratio >= 0.8 ? 'met' : '**not met**'} |`);
}
say();
say('Server CPU µs/req is user + system CPU time of the target\'s processes (nginx: master and ' +
    'workers) during the timed runs, from `/proc`, divided by the requests served; the mock\'s own ' +
    'share is the next column. With the servers sharing one core, the mock\'s cost is part of every ' +
    'proxied request, so the req/s ratio understates the difference between the proxies themselves; ' +
    'the CPU-per-request ratio does not.');
say();

const cg = meta.callgrind;
say('## Instructions per proxied request (callgrind)');
say();
if (cg) {
    say(`\`bench/callgrind.sh\`: sluice under \`valgrind --tool=callgrind\`, 1 worker; ${cg.warmup} warm-up ` +
        `requests, then ${cg.requests} requests on one kept-alive connection (curl). Instructions per ` +
        `request = (Ir of the run − Ir of an idle run with the same warm-up and no requests) / ${cg.requests}. ` +
        `The mock runs outside valgrind.`);
    say();
    say('| mode | Ir total | Ir idle baseline | Ir per request |');
    say('|---|---:|---:|---:|');
    for (const mode of MODES) {
        const m = cg[mode];
        if (m) say(`| ${MODE_TITLE[mode]} | ${int(m.total_ir)} | ${int(cg.baseline_ir)} | ${int(m.ir_per_request)} |`);
    }
    if (cg.top?.length) {
        say();
        say('Top functions by exclusive instructions per non-streaming request (the run minus the idle baseline, ' +
            'divided by the requests; share of the instructions per request):');
        say();
        say('| Ir per request | share | function |');
        say('|---:|---:|---|');
        for (const f of cg.top) say(`| ${int(f.ir)} | ${f.share.toFixed(1)} % | \`${f.fn}\` |`);
    }
    if (cg.top_inclusive?.length) {
        say();
        say('Sluice\'s own functions by inclusive instructions per non-streaming request (callees included):');
        say();
        say('| Ir per request | share | function |');
        say('|---:|---:|---|');
        for (const f of cg.top_inclusive) say(`| ${int(f.ir)} | ${f.share.toFixed(1)} % | \`${f.fn}\` |`);
    }
} else {
    say('Not measured in this run (BENCH_CALLGRIND=0).');
}
say();

say('## Every run');
say();
say('| mode | round | target | req/s | p50 ms | p90 ms | p99 ms | max ms | requests | errors |');
say('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|');
for (const r of runs) {
    say(`| ${MODE_TITLE[r.mode]} | ${r.round} | ${r.target} | ${int(r.rps)} | ${ms(r.p50_us)} | ${ms(r.p90_us)} | ` +
        `${ms(r.p99_us)} | ${ms(r.max_us)} | ${r.requests} | ${errorsOf(r)} |`);
}
process.stdout.write(lines.join('\n') + '\n');
