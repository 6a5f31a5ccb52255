// harness.mjs — shared plumbing for Sluice's end-to-end tests.
//
// Starts the mock provider (sluice-mock) and the gateway (sluice) as child processes on free
// loopback ports, writes a generated YAML config per gateway into a temp dir, waits until they are
// ready, collects their stdout/stderr as lines, and kills everything it started when the test
// process ends (also on failure or interruption). Plus helpers: fetch with a timeout, SSE parsing
// from a fetch response, raw-socket HTTP for disconnect tests, /proc readings, polling.
//
// Binaries: $SLUICE_BIN (default <repo>/build/sluice), $SLUICE_MOCK_BIN (default
// <repo>/build/sluice-mock).

import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export { sleep };

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..');
export const SLUICE_BIN = process.env.SLUICE_BIN || path.join(REPO_ROOT, 'build', 'sluice');
export const SLUICE_MOCK_BIN = process.env.SLUICE_MOCK_BIN || path.join(REPO_ROOT, 'build', 'sluice-mock');

/** Default per-request timeout for HTTP calls made by tests (ms). */
export const REQUEST_TIMEOUT_MS = 15000;

// ---------------------------------------------------------------------------------------------
// process bookkeeping: everything we spawn is killed when this process exits
// ---------------------------------------------------------------------------------------------

const live = new Set();
const tempDirs = new Set();

function killAllSync() {
    for (const child of live) {
        try { child.kill('SIGKILL'); } catch { /* already gone */ }
    }
    live.clear();
    for (const dir of tempDirs) {
        try { rmSync(dir, { recursive: true, force: true }); } catch { /* ignore */ }
    }
    tempDirs.clear();
}
process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => { killAllSync(); process.exit(130); });
}

export function makeTempDir(prefix = 'sluice-test-') {
    const dir = mkdtempSync(path.join(tmpdir(), prefix));
    tempDirs.add(dir);
    return dir;
}

/** A random secret-looking string, unique per test run so greps for it are meaningful. */
export function secret(prefix = 'sk-test') {
    return `${prefix}-${randomBytes(12).toString('hex')}`;
}

export function sha256hex(text) {
    return createHash('sha256').update(text).digest('hex');
}

/** Binary exists and is executable? Tests use this to report a clear reason. */
export function binariesPresent() {
    const missing = [SLUICE_BIN, SLUICE_MOCK_BIN].filter((p) => !existsSync(p));
    return { ok: missing.length === 0, missing };
}

/** True when the gateway binary was built with AddressSanitizer (RSS checks are then loosened). */
export function gatewayIsSanitized() {
    if (process.env.SLUICE_SANITIZED) return process.env.SLUICE_SANITIZED !== '0';
    try {
        return readFileSync(SLUICE_BIN).includes('__asan_init');
    } catch {
        return false;
    }
}

// ---------------------------------------------------------------------------------------------
// ports
// ---------------------------------------------------------------------------------------------

const handedOut = new Set();

/** A loopback TCP port that is free right now (and not handed out before by this process). */
export async function freePort() {
    for (let attempt = 0; attempt < 50; attempt++) {
        const port = await new Promise((resolve, reject) => {
            const srv = net.createServer();
            srv.unref();
            srv.on('error', reject);
            srv.listen(0, '127.0.0.1', () => {
                const { port: p } = srv.address();
                srv.close(() => resolve(p));
            });
        });
        if (!handedOut.has(port)) {
            handedOut.add(port);
            return port;
        }
    }
    throw new Error('freePort: no free port found');
}

/** A port where nothing listens (for 502 tests). */
export async function closedPort() {
    return freePort();
}

// ---------------------------------------------------------------------------------------------
// child processes
// ---------------------------------------------------------------------------------------------

function lineCollector(stream, sink, listeners) {
    let pending = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
        pending += chunk;
        let nl;
        while ((nl = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, nl).replace(/\r$/, '');
            pending = pending.slice(nl + 1);
            sink.push(line);
            for (const fn of [...listeners]) fn(line);
        }
    });
    stream.on('end', () => {
        if (pending) {
            sink.push(pending);
            for (const fn of [...listeners]) fn(pending);
            pending = '';
        }
    });
}

/**
 * Spawns a process and collects its output. Returns a handle with stdoutLines/stderrLines,
 * waitForLine(regex, ms), exited (promise of {code, signal}), kill(signal), stop().
 */
export function startProcess(bin, args, { env = {}, cwd, name = path.basename(bin) } = {}) {
    const child = spawn(bin, args, {
        env: { ...process.env, ...env },
        cwd,
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(child);
    const stdoutLines = [];
    const stderrLines = [];
    const outListeners = new Set();
    const errListeners = new Set();
    lineCollector(child.stdout, stdoutLines, outListeners);
    lineCollector(child.stderr, stderrLines, errListeners);
    let exitInfo = null;
    const exited = new Promise((resolve) => {
        child.on('error', (err) => {
            exitInfo = { code: null, signal: null, error: err };
            live.delete(child);
            resolve(exitInfo);
        });
        child.on('exit', (code, signal) => {
            exitInfo = { code, signal };
            live.delete(child);
            resolve(exitInfo);
        });
    });

    const handle = {
        name,
        proc: child,
        pid: child.pid,
        stdoutLines,
        stderrLines,
        exited,
        get exitInfo() { return exitInfo; },
        get running() { return exitInfo === null; },
        kill(signal = 'SIGTERM') {
            if (exitInfo === null) {
                try { child.kill(signal); } catch { /* gone */ }
            }
        },
        /** Waits for a line matching re on stderr (or stdout with {stream:'stdout'}). */
        waitForLine(re, { timeoutMs = 10000, stream = 'stderr', from = 0 } = {}) {
            const lines = stream === 'stdout' ? stdoutLines : stderrLines;
            const listeners = stream === 'stdout' ? outListeners : errListeners;
            for (let i = from; i < lines.length; i++) if (re.test(lines[i])) return Promise.resolve(lines[i]);
            return new Promise((resolve, reject) => {
                const timer = setTimeout(() => {
                    listeners.delete(fn);
                    reject(new Error(`${name}: no ${stream} line matching ${re} within ${timeoutMs} ms; ` +
                        `last lines:\n${lines.slice(-15).join('\n')}`));
                }, timeoutMs);
                const fn = (line) => {
                    if (re.test(line)) {
                        clearTimeout(timer);
                        listeners.delete(fn);
                        resolve(line);
                    }
                };
                listeners.add(fn);
                exited.then((info) => {
                    if (listeners.has(fn)) {
                        clearTimeout(timer);
                        listeners.delete(fn);
                        reject(new Error(`${name} exited (${info.error ? info.error.message : JSON.stringify(info)}) before printing ${re}; ` +
                            `last lines:\n${lines.slice(-15).join('\n')}`));
                    }
                });
            });
        },
        /** SIGTERM, wait up to graceMs, then SIGKILL. Resolves to {code, signal, killed}. */
        async stop({ signal = 'SIGTERM', graceMs = 15000 } = {}) {
            if (exitInfo !== null) return { ...exitInfo, killed: false };
            handle.kill(signal);
            let timer;
            const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve('timeout'), graceMs); });
            const result = await Promise.race([exited, timeout]);
            clearTimeout(timer);
            if (result === 'timeout') {
                handle.kill('SIGKILL');
                const info = await exited;
                return { ...info, killed: true };
            }
            return { ...result, killed: false };
        },
    };
    return handle;
}

// ---------------------------------------------------------------------------------------------
// mock provider
// ---------------------------------------------------------------------------------------------

/**
 * Starts sluice-mock on a free port. opts: {threads, status, delayMs, chunks, chunkDelayMs, words,
 * requireKey, awsAccessKeyId, awsSecretAccessKey (Bedrock SigV4 verification), args (extra flags)}.
 * Returns {port, url (http://127.0.0.1:PORT), base (url + '/v1'), requests(), stats(), reset(),
 * stop(), ...process handle}.
 */
export async function startMock(opts = {}) {
    const port = await freePort();
    const args = ['--listen', `127.0.0.1:${port}`, '--threads', String(opts.threads ?? 2)];
    const flags = {
        status: '--status', delayMs: '--delay-ms', chunks: '--chunks', chunkDelayMs: '--chunk-delay-ms',
        words: '--words', requireKey: '--require-key',
        awsAccessKeyId: '--aws-access-key-id', awsSecretAccessKey: '--aws-secret-access-key',
    };
    for (const [k, flag] of Object.entries(flags)) {
        if (opts[k] !== undefined) args.push(flag, String(opts[k]));
    }
    if (Array.isArray(opts.args)) args.push(...opts.args.map(String));
    const handle = startProcess(SLUICE_MOCK_BIN, args, { name: 'sluice-mock' });
    // The mock announces itself on stdout (its logs go to stderr).
    await handle.waitForLine(/sluice-mock listening on/, { timeoutMs: 10000, stream: 'stdout' });
    const url = `http://127.0.0.1:${port}`;
    return Object.assign(handle, {
        port,
        url,
        base: `${url}/v1`,
        /** Last (up to 50) requests the mock received: [{method,path,headers,body}] (body parsed if JSON). */
        async requests() {
            const r = await request(`${url}/mock/requests`);
            if (r.status !== 200) throw new Error(`GET /mock/requests -> ${r.status}`);
            const list = Array.isArray(r.json) ? r.json : (r.json?.requests ?? r.json?.data ?? []);
            return list.map((req) => {
                let body = req.body;
                if (typeof body === 'string') {
                    try { body = JSON.parse(body); } catch { /* keep the string */ }
                }
                return { ...req, body };
            });
        },
        async stats() {
            const r = await request(`${url}/mock/stats`);
            return r.json;
        },
        async reset() {
            const r = await request(`${url}/mock/reset`, { method: 'POST' });
            if (r.status >= 300) throw new Error(`POST /mock/reset -> ${r.status}`);
        },
        /** The most recent request the mock received whose JSON body satisfies pred. */
        async findRequest(pred, { timeoutMs = 3000 } = {}) {
            let found;
            await waitFor(async () => {
                const list = await this.requests();
                found = [...list].reverse().find((req) => { try { return pred(req); } catch { return false; } });
                return found !== undefined;
            }, { timeoutMs, what: 'the mock to record the expected upstream request' });
            return found;
        },
    });
}

/** Header lookup on a mock-recorded request (headers may be an object or a list of pairs). */
export function recordedHeader(req, name) {
    const lower = name.toLowerCase();
    const h = req.headers;
    if (!h) return undefined;
    if (Array.isArray(h)) {
        for (const entry of h) {
            if (Array.isArray(entry) && String(entry[0]).toLowerCase() === lower) return String(entry[1]);
            if (entry && typeof entry === 'object' && String(entry.name ?? '').toLowerCase() === lower) return String(entry.value);
        }
        return undefined;
    }
    for (const [k, v] of Object.entries(h)) if (k.toLowerCase() === lower) return Array.isArray(v) ? v.join(', ') : String(v);
    return undefined;
}

// ---------------------------------------------------------------------------------------------
// config generation
// ---------------------------------------------------------------------------------------------

const plainKey = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

function yamlScalar(v) {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    return JSON.stringify(String(v)); // a JSON string is a valid YAML double-quoted scalar
}

/** Block-style YAML from a plain JS value (objects, arrays, strings, numbers, booleans, null). */
export function toYaml(value, indent = 0) {
    const pad = ' '.repeat(indent);
    if (Array.isArray(value)) {
        if (value.length === 0) return `${pad}[]\n`;
        let out = '';
        for (const item of value) {
            if (item !== null && typeof item === 'object' && !Array.isArray(item) && Object.keys(item).length) {
                const inner = toYaml(item, indent + 2);
                out += `${pad}- ${inner.slice(indent + 2)}`;
            } else if (Array.isArray(item) && item.length) {
                out += `${pad}-\n${toYaml(item, indent + 2)}`;
            } else {
                out += `${pad}- ${Array.isArray(item) ? '[]' : (item !== null && typeof item === 'object') ? '{}' : yamlScalar(item)}\n`;
            }
        }
        return out;
    }
    if (value !== null && typeof value === 'object') {
        let out = '';
        for (const [k, v] of Object.entries(value)) {
            const key = plainKey.test(k) ? k : JSON.stringify(k);
            if (v !== null && typeof v === 'object' && (Array.isArray(v) ? v.length : Object.keys(v).length)) {
                out += `${pad}${key}:\n${toYaml(v, indent + 2)}`;
            } else if (v !== null && typeof v === 'object') {
                out += `${pad}${key}: ${Array.isArray(v) ? '[]' : '{}'}\n`;
            } else {
                out += `${pad}${key}: ${yamlScalar(v)}\n`;
            }
        }
        return out;
    }
    return `${pad}${yamlScalar(value)}\n`;
}

/**
 * The standard test config as a JS object. opts:
 *   port, mockPort (required), mockKey (provider api_key value or ${ENV} reference),
 *   timeouts, server (merged into server), providers/models/pricing/keys (merged / replaced),
 *   keys: array (replaces) or null (no keys section), logging.
 */
export function baseConfig({ port, mockPort, mockKey = '${MOCK_KEY:-sk-mock-secret}', timeouts, server = {},
    providers = {}, models = {}, pricing = {}, keys, logging = {} }) {
    const cfg = {
        server: {
            listen: `127.0.0.1:${port}`, workers: 2, max_body_bytes: 8388608, max_json_depth: 64,
            drain_timeout_ms: 10000, ...server,
        },
        providers: {
            mock: {
                type: 'openai', base_url: `http://127.0.0.1:${mockPort}/v1`, api_key: mockKey,
                timeouts: { connect_ms: 1000, first_byte_ms: 2000, idle_ms: 2000, total_ms: 30000, ...(timeouts || {}) },
            },
            ...providers,
        },
        models: {
            fast: { targets: [{ provider: 'mock', model: 'gpt-4o-mini' }] },
            ...models,
        },
        pricing: {
            'gpt-4o-mini': { input: 0.15, output: 0.60 },
            ...pricing,
        },
        logging: { access_log: 'stdout', ...logging },
    };
    if (keys !== null && keys !== undefined) cfg.keys = keys;
    return cfg;
}

// ---------------------------------------------------------------------------------------------
// gateway
// ---------------------------------------------------------------------------------------------

/**
 * Starts the gateway. opts:
 *   config: object (rendered with toYaml) | string (raw YAML) | (port) => object|string
 *   env: extra environment; port: fixed port (default: a free one); ready: wait for /readyz (default true)
 *   args: extra CLI args; useEnvConfig: pass the file via SLUICE_CONFIG instead of -c
 * Returns {url, base, port, pid, proc, configPath, stdoutLines, stderrLines, accessLog(), stop(),
 * reload(newConfig), kill(signal), waitForLine, exited}.
 */
export async function startGateway({ config, env = {}, port, ready = true, args = [], useEnvConfig = false } = {}) {
    port = port ?? await freePort();
    const dir = makeTempDir('sluice-gw-');
    const configPath = path.join(dir, 'sluice.yaml');
    const render = (c) => {
        const value = typeof c === 'function' ? c(port) : c;
        return typeof value === 'string' ? value : toYaml(value);
    };
    writeFileSync(configPath, render(config));
    const cliArgs = useEnvConfig ? [...args] : ['-c', configPath, ...args];
    const childEnv = useEnvConfig ? { ...env, SLUICE_CONFIG: configPath } : env;
    const handle = startProcess(SLUICE_BIN, cliArgs, { env: childEnv, name: 'sluice' });
    const url = `http://127.0.0.1:${port}`;
    const gw = Object.assign(handle, {
        port,
        url,
        base: `${url}/v1`,
        configPath,
        dir,
        /** Rewrites the config file and sends SIGHUP. */
        async reload(newConfig) {
            writeFileSync(configPath, render(newConfig));
            handle.kill('SIGHUP');
        },
        /** Parsed access-log lines (JSON objects on stdout that carry a request_id). */
        accessLog() {
            const out = [];
            for (const line of handle.stdoutLines) {
                const t = line.trim();
                if (!t.startsWith('{')) continue;
                try {
                    const obj = JSON.parse(t);
                    if (obj && typeof obj === 'object' && 'request_id' in obj) out.push(obj);
                } catch { /* not JSON */ }
            }
            return out;
        },
        /** Waits for the access-log line of a request id. */
        async accessLogFor(requestId, { timeoutMs = 5000 } = {}) {
            let entry;
            await waitFor(() => {
                entry = gw.accessLog().find((e) => e.request_id === requestId);
                return entry !== undefined;
            }, { timeoutMs, what: `access log line for ${requestId}` });
            return entry;
        },
        /** Everything the gateway printed, stdout and stderr. */
        allOutput() {
            return [...handle.stdoutLines, ...handle.stderrLines].join('\n');
        },
        /** Sanitizer reports seen on stderr (ASan/UBSan/LSan). */
        sanitizerReports() {
            return handle.stderrLines.filter((l) => /(AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|ThreadSanitizer|runtime error:)/.test(l));
        },
        rssKb() { return procStatusKb(handle.pid, 'VmRSS'); },
        fdCount() { return procFdCount(handle.pid); },
    });
    if (ready) {
        try {
            await waitReady(url, { timeoutMs: 10000, proc: gw });
        } catch (err) {
            await gw.stop({ graceMs: 2000 });
            throw err;
        }
    }
    return gw;
}

/** Polls GET /readyz until 200 (default 10 s). */
export async function waitReady(url, { timeoutMs = 10000, proc } = {}) {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
        if (proc && !proc.running) {
            const info = proc.exitInfo;
            throw new Error(`gateway exited early (${info.error ? info.error.message : JSON.stringify(info)}); stderr:\n${proc.stderrLines.slice(-20).join('\n')}`);
        }
        try {
            const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) });
            await r.arrayBuffer();
            if (r.status === 200) return;
            last = `status ${r.status}`;
        } catch (err) {
            last = err.cause?.code || err.message;
        }
        await sleep(50);
    }
    throw new Error(`gateway at ${url} not ready within ${timeoutMs} ms (${last})` +
        (proc ? `; stderr:\n${proc.stderrLines.slice(-20).join('\n')}` : ''));
}

/**
 * Stops a gateway at the end of a test file and returns problems found (non-zero exit, needed
 * SIGKILL, sanitizer reports) as a list of strings; empty when all is well.
 */
export async function stopAndCollectProblems(gw, { graceMs = 15000 } = {}) {
    if (!gw) return [];
    const info = await gw.stop({ graceMs });
    const problems = [];
    if (info.killed) problems.push(`gateway did not exit within ${graceMs} ms of SIGTERM (killed)`);
    else if (info.code !== 0) problems.push(`gateway exited with code ${info.code} signal ${info.signal} after SIGTERM`);
    const reports = gw.sanitizerReports();
    if (reports.length) problems.push(`sanitizer reports on stderr:\n${gw.stderrLines.slice(-60).join('\n')}`);
    return problems;
}

/** Runs the gateway binary to completion (for --check / --version). */
export function runSluice(args, { env = {}, timeoutMs = 10000 } = {}) {
    const r = spawnSync(SLUICE_BIN, args, {
        env: { ...process.env, ...env }, encoding: 'utf8', timeout: timeoutMs,
    });
    return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------------------------

/**
 * fetch with a timeout; reads the whole body. Returns {status, headers, text, json, ms}.
 * opts: method, headers, body (object → JSON), key (Bearer), timeoutMs.
 */
export async function request(url, { method, headers = {}, body, key, timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
    const h = { ...headers };
    let payload = body;
    if (body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) {
        payload = JSON.stringify(body);
        h['content-type'] = h['content-type'] ?? 'application/json';
    } else if (typeof body === 'string' && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) {
        h['content-type'] = 'application/json';
    }
    if (key) h.authorization = `Bearer ${key}`;
    const t0 = performance.now();
    const res = await fetch(url, {
        method: method ?? (body === undefined ? 'GET' : 'POST'),
        headers: h,
        body: payload,
        signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, headers: res.headers, text, json, ms: performance.now() - t0 };
}

/** POST JSON to the gateway's /v1/<endpoint>. */
export function post(gw, endpoint, body, opts = {}) {
    return request(`${gw.base}/${endpoint}`, { ...opts, body });
}

/** A chat body. */
export function chat(model, content, extra = {}) {
    return { model, messages: [{ role: 'user', content }], ...extra };
}

/**
 * Streams a POST and parses SSE as it arrives. Returns {status, headers, events, done, error,
 * text, tFirst, tEnd, t0, json (for non-SSE replies)}. events: [{data, event, t, json}].
 * done = a `data: [DONE]` was seen; error = transport error that ended the stream (or null).
 * opts.onEvent(ev, events) may return true to abort the stream early.
 */
export async function streamRequest(url, body, { key, headers = {}, timeoutMs = REQUEST_TIMEOUT_MS, onEvent } = {}) {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error(`stream timed out after ${timeoutMs} ms`)), timeoutMs);
    const h = { 'content-type': 'application/json', ...headers };
    if (key) h.authorization = `Bearer ${key}`;
    const t0 = performance.now();
    const result = { status: 0, headers: null, events: [], done: false, error: null, text: '', tFirst: null, tEnd: null, t0, timedOut: false };
    try {
        const res = await fetch(url, {
            method: 'POST', headers: h, body: typeof body === 'string' ? body : JSON.stringify(body), signal: ac.signal,
        });
        result.status = res.status;
        result.headers = res.headers;
        const ctype = res.headers.get('content-type') || '';
        if (!ctype.includes('text/event-stream')) {
            result.text = await res.text();
            try { result.json = JSON.parse(result.text); } catch { /* not JSON */ }
            result.tEnd = performance.now();
            return result;
        }
        const parser = new SSEParser();
        const decoder = new TextDecoder();
        let aborted = false;
        for await (const chunk of res.body) {
            const s = decoder.decode(chunk, { stream: true });
            result.text += s;
            const now = performance.now();
            for (const ev of parser.push(s)) {
                ev.t = now;
                if (result.tFirst === null) result.tFirst = now;
                if (ev.data === '[DONE]') result.done = true;
                else {
                    try { ev.json = JSON.parse(ev.data); } catch { ev.json = undefined; }
                }
                result.events.push(ev);
                if (onEvent && onEvent(ev, result.events)) { aborted = true; break; }
            }
            if (aborted) break;
        }
        if (aborted) ac.abort(new Error('aborted by test'));
    } catch (err) {
        if (ac.signal.aborted && String(ac.signal.reason?.message || '').startsWith('stream timed out')) result.timedOut = true;
        result.error = err;
    } finally {
        clearTimeout(timer);
        result.tEnd = performance.now();
    }
    return result;
}

/** Incremental SSE parser (accepts LF, CRLF and CR line endings; joins multi-line data). */
export class SSEParser {
    constructor() { this.buf = ''; this.data = []; this.event = null; this.sawField = false; }
    push(text) {
        this.buf += text;
        const out = [];
        // Split into complete lines; keep the trailing partial line (and a lone trailing CR, which
        // may be the first half of a CRLF).
        const re = /\r\n|\n|\r(?!$)/g;
        let start = 0;
        let m;
        while ((m = re.exec(this.buf)) !== null) {
            const line = this.buf.slice(start, m.index);
            start = m.index + m[0].length;
            this._line(line, out);
        }
        this.buf = this.buf.slice(start);
        return out;
    }
    _line(line, out) {
        if (line === '') {
            if (this.sawField) out.push({ event: this.event, data: this.data.join('\n') });
            this.data = []; this.event = null; this.sawField = false;
            return;
        }
        if (line.startsWith(':')) return; // comment / keep-alive
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') { this.data.push(value); this.sawField = true; }
        else if (field === 'event') { this.event = value; this.sawField = true; }
    }
}

/** Parses a complete SSE body into events. */
export function parseSSE(text) {
    const p = new SSEParser();
    const events = p.push(text.endsWith('\n') ? text : `${text}\n`);
    for (const ev of events) {
        if (ev.data !== '[DONE]') { try { ev.json = JSON.parse(ev.data); } catch { ev.json = undefined; } }
    }
    return events;
}

/** Content, tool calls, finish reasons and usage assembled from chat.completion.chunk events. */
export function assembleChat(events) {
    let content = '';
    let role = null;
    const finish = [];
    const usage = [];
    const errors = [];
    const tools = [];
    for (const ev of events) {
        const j = ev.json;
        if (!j) continue;
        if (j.error) { errors.push(j.error); continue; }
        if (j.usage) usage.push({ usage: j.usage, choicesEmpty: Array.isArray(j.choices) && j.choices.length === 0 });
        for (const ch of j.choices ?? []) {
            const d = ch.delta ?? {};
            if (d.role) role = d.role;
            if (typeof d.content === 'string') content += d.content;
            for (const tc of d.tool_calls ?? []) {
                const i = tc.index ?? 0;
                tools[i] = tools[i] ?? { id: null, type: null, name: '', arguments: '' };
                if (tc.id) tools[i].id = tc.id;
                if (tc.type) tools[i].type = tc.type;
                if (tc.function?.name) tools[i].name += tc.function.name;
                if (typeof tc.function?.arguments === 'string') tools[i].arguments += tc.function.arguments;
            }
            if (ch.finish_reason) finish.push(ch.finish_reason);
        }
    }
    return { content, role, finish, usage, errors, tools };
}

// ---------------------------------------------------------------------------------------------
// raw sockets
// ---------------------------------------------------------------------------------------------

/** Serialises an HTTP/1.1 request. body: string | Buffer | object (JSON). */
export function httpRequestBytes({ method = 'POST', path: p, host = '127.0.0.1', headers = {}, body, key, close = true }) {
    let payload = body;
    if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) payload = JSON.stringify(body);
    const buf = payload === undefined ? Buffer.alloc(0) : Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
    const h = { host, ...headers };
    if (payload !== undefined) {
        h['content-type'] = h['content-type'] ?? 'application/json';
        h['content-length'] = String(buf.length);
    }
    if (key) h.authorization = `Bearer ${key}`;
    if (close) h.connection = 'close';
    let head = `${method} ${p} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(h)) head += `${k}: ${v}\r\n`;
    return { head: Buffer.from(`${head}\r\n`), body: buf };
}

/** Parses the status line and headers of a raw HTTP response buffer (null until complete). */
export function parseRawHead(buf) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const lines = buf.slice(0, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    const headers = {};
    for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    return { status: m ? Number(m[1]) : 0, headers, bodyStart: end + 4 };
}

/**
 * Opens a raw TCP connection and sends a request. The returned object exposes the socket,
 * the bytes received so far (data), and helpers:
 *   waitFor(pred(buffer) => bool, ms)  resolves when pred holds on the received bytes
 *   closed                              promise resolved when the socket closes ({error})
 *   destroy()                           abrupt close (what a client that goes away does)
 */
export function rawConnect(port, { host = '127.0.0.1', timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
    const sock = net.connect({ port, host });
    const state = { socket: sock, data: Buffer.alloc(0), error: null, ended: false };
    const waiters = new Set();
    const check = () => { for (const w of [...waiters]) w(); };
    const connected = new Promise((resolve, reject) => {
        sock.once('connect', resolve);
        sock.once('error', reject);
    });
    connected.catch(() => {});
    state.connected = connected;
    sock.on('data', (d) => { state.data = Buffer.concat([state.data, d]); check(); });
    sock.on('error', (err) => { state.error = err; check(); });
    state.closed = new Promise((resolve) => sock.on('close', () => { state.ended = true; check(); resolve({ error: state.error }); }));
    const killTimer = setTimeout(() => sock.destroy(), timeoutMs);
    killTimer.unref();
    sock.on('close', () => clearTimeout(killTimer));
    state.write = (b) => new Promise((resolve) => {
        if (sock.destroyed) return resolve(false);
        sock.write(b, (err) => resolve(!err));
    });
    state.waitFor = (pred, ms = timeoutMs) => new Promise((resolve, reject) => {
        let timer;
        const w = () => {
            let ok = false;
            try { ok = pred(state.data); } catch { ok = false; }
            if (ok) { clearTimeout(timer); waiters.delete(w); resolve(state.data); }
            else if (state.ended) {
                clearTimeout(timer); waiters.delete(w);
                reject(new Error(`connection closed before condition; received: ${state.data.toString('utf8').slice(0, 500)}`));
            }
        };
        timer = setTimeout(() => {
            waiters.delete(w);
            reject(new Error(`raw socket: condition not met within ${ms} ms; received: ${state.data.toString('utf8').slice(0, 500)}`));
        }, ms);
        waiters.add(w);
        w();
    });
    state.destroy = () => sock.destroy();
    return state;
}

/**
 * Sends one request over a fresh raw connection and reads the full response until the server
 * closes (Connection: close). Body may be streamed in pieces (pieceBytes) so a server that
 * answers early (e.g. 413) is still heard. Resolves {status, headers, body (string), raw, error}.
 */
export async function rawRequest(port, reqOpts, { timeoutMs = REQUEST_TIMEOUT_MS, pieceBytes = 65536 } = {}) {
    const conn = rawConnect(port, { timeoutMs });
    await conn.connected;
    const { head, body } = httpRequestBytes(reqOpts);
    await conn.write(head);
    for (let off = 0; off < body.length; off += pieceBytes) {
        if (conn.ended || conn.error) break;
        if (parseRawHead(conn.data)) break; // answered already
        const ok = await conn.write(body.subarray(off, off + pieceBytes));
        if (!ok) break;
    }
    // Response complete when the server closes, or when Content-Length bytes are in.
    try {
        await conn.waitFor((buf) => {
            const h = parseRawHead(buf);
            if (!h) return false;
            const cl = h.headers['content-length'];
            return cl !== undefined && buf.length >= h.bodyStart + Number(cl);
        }, timeoutMs);
    } catch { /* closed or timed out: use what we have */ }
    conn.destroy();
    const h = parseRawHead(conn.data);
    if (!h) return { status: 0, headers: {}, body: '', raw: conn.data, error: conn.error };
    let bodyText = conn.data.subarray(h.bodyStart).toString('utf8');
    if ((h.headers['transfer-encoding'] || '').includes('chunked')) bodyText = dechunk(bodyText);
    let json;
    try { json = JSON.parse(bodyText); } catch { json = undefined; }
    return { status: h.status, headers: h.headers, body: bodyText, json, raw: conn.data, error: conn.error };
}

/** Decodes a chunked transfer-encoded body (best effort, text). */
export function dechunk(text) {
    let out = '';
    let rest = text;
    for (;;) {
        const nl = rest.indexOf('\r\n');
        if (nl < 0) break;
        const size = parseInt(rest.slice(0, nl), 16);
        if (!Number.isFinite(size) || size === 0) break;
        out += rest.slice(nl + 2, nl + 2 + size);
        rest = rest.slice(nl + 2 + size + 2);
    }
    return out;
}

/** Resolves to the connect error code (e.g. 'ECONNREFUSED') or 'connected'. */
export function tryConnect(port, { host = '127.0.0.1', timeoutMs = 2000 } = {}) {
    return new Promise((resolve) => {
        const sock = net.connect({ port, host });
        const timer = setTimeout(() => { sock.destroy(); resolve('timeout'); }, timeoutMs);
        sock.once('connect', () => { clearTimeout(timer); sock.destroy(); resolve('connected'); });
        sock.once('error', (err) => { clearTimeout(timer); resolve(err.code || err.message); });
    });
}

// ---------------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------------

export function procStatusKb(pid, field) {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(text);
    return m ? Number(m[1]) : NaN;
}

export function procFdCount(pid) {
    return readdirSync(`/proc/${pid}/fd`).length;
}

/** Socket inodes owned by pid. */
function socketInodes(pid) {
    const set = new Set();
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        try {
            const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
            if (m) set.add(m[1]);
        } catch { /* fd closed meanwhile */ }
    }
    return set;
}

/** Number of ESTABLISHED TCP connections owned by pid whose remote port is remotePort. */
export function establishedTo(pid, remotePort) {
    const inodes = socketInodes(pid);
    let n = 0;
    for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
        let text;
        try { text = readFileSync(file, 'utf8'); } catch { continue; }
        for (const line of text.split('\n').slice(1)) {
            const cols = line.trim().split(/\s+/);
            if (cols.length < 10) continue;
            const rem = cols[2];
            const st = cols[3];
            const inode = cols[9];
            const port = parseInt(rem.split(':')[1], 16);
            if (port === remotePort && st === '01' && inodes.has(inode)) n++;
        }
    }
    return n;
}

// ---------------------------------------------------------------------------------------------
// assertions & polling
// ---------------------------------------------------------------------------------------------

/** Polls fn (sync or async) until truthy; throws after timeoutMs. */
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 50, what = 'condition' } = {}) {
    const deadline = Date.now() + timeoutMs;
    let lastErr;
    for (;;) {
        try {
            const v = await fn();
            if (v) return v;
        } catch (err) { lastErr = err; }
        if (Date.now() >= deadline) {
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${lastErr.message})` : ''}`);
        }
        await sleep(intervalMs);
    }
}

/** Throws unless body is {"error":{"message","type","param","code"}} with a non-empty message. */
export function assertOpenAIError(json, { code, type } = {}, context = '') {
    const where = context ? ` (${context})` : '';
    if (!json || typeof json !== 'object' || !json.error || typeof json.error !== 'object') {
        throw new Error(`expected an OpenAI error body {"error":{...}}${where}, got ${JSON.stringify(json)}`);
    }
    const e = json.error;
    for (const k of ['message', 'type', 'param', 'code']) {
        if (!(k in e)) throw new Error(`error body lacks "${k}"${where}: ${JSON.stringify(json)}`);
    }
    if (typeof e.message !== 'string' || e.message.length === 0) throw new Error(`error.message must be a non-empty string${where}: ${JSON.stringify(json)}`);
    if (typeof e.type !== 'string' || e.type.length === 0) throw new Error(`error.type must be a non-empty string${where}: ${JSON.stringify(json)}`);
    if (e.param !== null && typeof e.param !== 'string') throw new Error(`error.param must be a string or null${where}: ${JSON.stringify(json)}`);
    if (e.code !== null && typeof e.code !== 'string' && typeof e.code !== 'number') throw new Error(`error.code must be a string, number or null${where}: ${JSON.stringify(json)}`);
    if (code !== undefined && e.code !== code) throw new Error(`expected error.code ${JSON.stringify(code)}${where}, got ${JSON.stringify(e.code)}`);
    if (type !== undefined && e.type !== type) throw new Error(`expected error.type ${JSON.stringify(type)}${where}, got ${JSON.stringify(e.type)}`);
    return e;
}

/** The deterministic prefix the mock puts in front of every reply. */
export function mockReplyPrefix(lastUserMessage) {
    return `mock reply to: ${lastUserMessage.slice(0, 40)}`;
}

// ---------------------------------------------------------------------------------------------
// the usual stack: one mock + one gateway with two virtual keys
// ---------------------------------------------------------------------------------------------

/**
 * Starts a mock and a gateway configured with:
 *   provider "mock" (api_key from $MOCK_KEY = a random secret), model "fast" (+ extra models),
 *   keys "app" (key_sha256 of a random secret, limited to appModels) and "ops" (key from $OPS_KEY).
 * opts: mock (startMock opts), models, providers, pricing, server, timeouts, appModels,
 *       keys (replace; null = none), logging, env, configTransform(cfg) → cfg.
 * Returns {mock, gw, secrets: {mockKey, app, ops}, config(port) (the config factory), stop()}.
 */
export async function startStack(opts = {}) {
    const secrets = { mockKey: secret('sk-mock-provider'), app: secret('sk-app'), ops: secret('sk-ops') };
    const mock = await startMock(opts.mock ?? {});
    const appModels = opts.appModels ?? ['fast'];
    const makeConfig = (port, overrides = {}) => {
        const o = { ...opts, ...overrides };
        let cfg = baseConfig({
            port,
            mockPort: mock.port,
            mockKey: '${MOCK_KEY}',
            timeouts: o.timeouts,
            server: o.server,
            providers: o.providers,
            models: o.models,
            pricing: o.pricing,
            logging: o.logging,
            keys: o.keys === null ? null : (o.keys ?? [
                { name: 'app', key_sha256: sha256hex(secrets.app), models: appModels },
                { name: 'ops', key: '${OPS_KEY}' },
            ]),
        });
        if (o.configTransform) cfg = o.configTransform(cfg);
        return cfg;
    };
    let gw;
    try {
        gw = await startGateway({
            config: (port) => makeConfig(port),
            env: { MOCK_KEY: secrets.mockKey, OPS_KEY: secrets.ops, ...(opts.env ?? {}) },
        });
    } catch (err) {
        await mock.stop({ graceMs: 2000 });
        throw err;
    }
    return {
        mock,
        gw,
        secrets,
        config: (overrides) => makeConfig(gw.port, overrides),
        /** Stops both; returns the gateway's problems (see stopAndCollectProblems). */
        async stop() {
            const problems = await stopAndCollectProblems(gw);
            await mock.stop({ graceMs: 3000 });
            return problems;
        },
    };
}
