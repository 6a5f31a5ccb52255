// stack.mjs — a mock + gateway pair for the provider and SDK tests, built from the shared harness.
//
// Differs from harness.startStack in two ways the provider tests need: the mock may be started with
// extra arguments (e.g. --aws-access-key-id for SigV4 verification), and the mock's readiness line
// is accepted on stdout or stderr (sluice-mock prints it on stdout while harness.startMock waits on
// stderr; reported to the mock's owner).
import {
    REQUEST_TIMEOUT_MS, SLUICE_MOCK_BIN, baseConfig, freePort, request, secret, sha256hex, startGateway,
    startProcess, stopAndCollectProblems, waitFor,
} from '../lib/harness.mjs';

export async function startProviderMock({ args = [] } = {}) {
    const port = await freePort();
    const handle = startProcess(SLUICE_MOCK_BIN, ['--listen', `127.0.0.1:${port}`, '--threads', '2', ...args],
        { name: 'sluice-mock' });
    await Promise.any([
        handle.waitForLine(/sluice-mock listening on/, { timeoutMs: 10000, stream: 'stdout' }),
        handle.waitForLine(/sluice-mock listening on/, { timeoutMs: 10000, stream: 'stderr' }),
    ]);
    const url = `http://127.0.0.1:${port}`;
    return Object.assign(handle, {
        port,
        url,
        base: `${url}/v1`,
        async requests() {
            const r = await request(`${url}/mock/requests`, { timeoutMs: REQUEST_TIMEOUT_MS });
            const list = Array.isArray(r.json) ? r.json : (r.json?.requests ?? r.json?.data ?? []);
            return list.map((req) => {
                let body = req.body;
                if (typeof body === 'string') {
                    try { body = JSON.parse(body); } catch { /* keep the string */ }
                }
                return { ...req, body };
            });
        },
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

/**
 * A mock and a gateway. providers(mockPort) returns extra providers; models as in baseConfig.
 * Keys: "ops" (secret in .secrets.ops), all models allowed.
 */
export async function startProviderStack({ providers = () => ({}), models = {}, mockArgs = [], env = {} } = {}) {
    const secrets = { mockKey: secret('sk-mock-provider'), ops: secret('sk-ops') };
    const mock = await startProviderMock({ args: mockArgs });
    let gw;
    try {
        gw = await startGateway({
            config: (port) => baseConfig({
                port, mockPort: mock.port, mockKey: '${MOCK_KEY}', providers: providers(mock.port), models,
                keys: [{ name: 'ops', key_sha256: sha256hex(secrets.ops) }],
            }),
            env: { MOCK_KEY: secrets.mockKey, ...env },
        });
    } catch (err) {
        await mock.stop({ graceMs: 2000 });
        throw err;
    }
    return {
        mock, gw, secrets,
        async stop() {
            const problems = await stopAndCollectProblems(gw);
            await mock.stop({ graceMs: 3000 });
            return problems;
        },
    };
}
