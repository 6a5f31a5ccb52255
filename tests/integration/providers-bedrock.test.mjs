// providers-bedrock: the bedrock adapter through the real binary against sluice-mock's Bedrock
// runtime, with SigV4 verification switched on in the mock (its own SigV4 code, not the
// gateway's). Asserts the exact upstream request (Converse/ConverseStream/invoke paths with the
// model id's ':' percent-encoded, the signed headers, x-amz-content-sha256 of the raw body, session
// token, Bearer API keys, credentials from AWS_* variables), the translated body (system,
// inferenceConfig, toolConfig, toolUse/toolResult round trip), the OpenAI answer, the binary
// event stream translated to chunks, error mapping (bad signature → 403, ThrottlingException →
// 429, ValidationException → 400, in-stream exception → error event), Titan embeddings, direct
// naming, the access log, client disconnects, and that no credential shows up in the output.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
    assembleChat, assertOpenAIError, chat, mockReplyPrefix, post, recordedHeader, request, secret, sha256hex,
    streamRequest,
} from '../lib/harness.mjs';
import {
    assertNoSecretsLogged, checkChatStream, hangUpMidStream, mockPromptTokens, startProviderGateway,
} from './providers-lib.mjs';

const weatherTool = {
    type: 'function',
    function: {
        name: 'get_weather', description: 'Current weather for a city',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
};
const MODEL_ID = 'anthropic.claude-3-5-haiku-20241022-v1:0';
const MODEL_PATH = '/model/anthropic.claude-3-5-haiku-20241022-v1%3A0';
const KEY_ID = 'AKIDSLUICETEST0001';

describe('bedrock provider', { timeout: 90000 }, () => {
    let s;
    const bodies = [];
    const creds = { secretKey: secret('aws-secret'), sessionToken: secret('aws-session'), bearer: secret('ABSK-bearer') };
    const send = async (body) => {
        const r = await post(s.gw, 'chat/completions', body, { key: s.secrets.ops });
        bodies.push(r.text);
        return r;
    };
    const findConverse = (text) => s.mock.findRequest((q) => q.body?.messages?.[0]?.content?.[0]?.text === text);
    /** The raw (unparsed) body the mock recorded for a request path + text. */
    async function rawBody(text) {
        const r = await request(`${s.mock.url}/mock/requests`);
        const found = [...r.json].reverse().find((q) => typeof q.body === 'string' && q.body.includes(JSON.stringify(text)));
        return found.body;
    }
    before(async () => {
        s = await startProviderGateway({
            mockOpts: { awsAccessKeyId: KEY_ID, awsSecretAccessKey: creds.secretKey },
            providers: (mockPort) => {
                const base = { type: 'bedrock', base_url: `http://127.0.0.1:${mockPort}` };
                return {
                    bed: { ...base, region: 'us-east-1', access_key_id: KEY_ID, secret_access_key: '${AWS_TEST_SECRET}' },
                    bed_session: {
                        ...base, region: 'eu-west-3', access_key_id: KEY_ID, secret_access_key: '${AWS_TEST_SECRET}',
                        session_token: '${AWS_TEST_SESSION}',
                    },
                    bed_env: { ...base }, // region and credentials from AWS_REGION / AWS_ACCESS_KEY_ID / ...
                    bed_badsig: { ...base, region: 'us-east-1', access_key_id: KEY_ID, secret_access_key: '${AWS_TEST_SESSION}' },
                    bed_bearer: { ...base, region: 'us-east-1', api_key: '${AWS_TEST_BEARER}' },
                };
            },
            models: {
                haiku: { targets: [{ provider: 'bed', model: MODEL_ID }] },
                'haiku-session': { targets: [{ provider: 'bed_session', model: MODEL_ID }] },
                'haiku-env': { targets: [{ provider: 'bed_env', model: MODEL_ID }] },
                'haiku-badsig': { targets: [{ provider: 'bed_badsig', model: MODEL_ID }] },
                'haiku-bearer': { targets: [{ provider: 'bed_bearer', model: MODEL_ID }] },
                titan: { targets: [{ provider: 'bed', model: 'amazon.titan-embed-text-v2:0' }] },
            },
            env: {
                AWS_TEST_SECRET: creds.secretKey, AWS_TEST_SESSION: creds.sessionToken, AWS_TEST_BEARER: creds.bearer,
                AWS_REGION: 'us-west-2', AWS_ACCESS_KEY_ID: KEY_ID, AWS_SECRET_ACCESS_KEY: creds.secretKey,
                AWS_SESSION_TOKEN: '', AWS_BEARER_TOKEN_BEDROCK: '',
            },
        });
    });
    after(async () => {
        if (!s) return;
        const all = [creds.secretKey, creds.sessionToken, creds.bearer];
        assertNoSecretsLogged(s.gw, all);
        for (const text of bodies) for (const value of all) assert.ok(!text.includes(value), 'no credential in a reply');
        const problems = await s.stop();
        assert.deepEqual(problems, [], 'gateway shut down cleanly');
    });

    test('converse: SigV4 accepted by the verifier, exact path, translated body and answer', async () => {
        const system = 'You are terse.';
        const prompt = 'hello bedrock';
        const r = await send({
            model: 'haiku', temperature: 0.25, top_p: 0.9, max_tokens: 300, stop: ['END'],
            messages: [{ role: 'system', content: system }, { role: 'user', content: prompt }],
        });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.object, 'chat.completion');
        assert.ok(r.json.choices[0].message.content.startsWith(mockReplyPrefix(prompt)));
        assert.equal(r.json.choices[0].finish_reason, 'stop');
        const prompted = mockPromptTokens(system, prompt);
        assert.deepEqual(r.json.usage, {
            prompt_tokens: prompted, completion_tokens: 20, total_tokens: prompted + 20,
            prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 },
        });

        const up = await findConverse(prompt);
        assert.equal(up.path, `${MODEL_PATH}/converse`);
        const auth = recordedHeader(up, 'authorization');
        assert.match(auth, new RegExp(`^AWS4-HMAC-SHA256 Credential=${KEY_ID}/\\d{8}/us-east-1/bedrock/aws4_request, ` +
            'SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=[0-9a-f]{64}$'));
        assert.match(recordedHeader(up, 'x-amz-date'), /^\d{8}T\d{6}Z$/);
        assert.equal(recordedHeader(up, 'x-amz-content-sha256'), sha256hex(await rawBody(prompt)));
        assert.equal(recordedHeader(up, 'x-amz-security-token'), undefined);
        assert.deepEqual(up.body, {
            messages: [{ role: 'user', content: [{ text: prompt }] }],
            system: [{ text: system }],
            inferenceConfig: { maxTokens: 300, temperature: 0.25, topP: 0.9, stopSequences: ['END'] },
        });
    });

    test('credentials: session token signed, AWS_* environment, Bearer API key', async () => {
        const r1 = await send(chat('haiku-session', 'with session'));
        assert.equal(r1.status, 200, r1.text);
        const up1 = await findConverse('with session');
        assert.equal(recordedHeader(up1, 'x-amz-security-token'), creds.sessionToken);
        assert.match(recordedHeader(up1, 'authorization'),
            /Credential=AKIDSLUICETEST0001\/\d{8}\/eu-west-3\/bedrock\/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,/);

        const r2 = await send(chat('haiku-env', 'from env'));
        assert.equal(r2.status, 200, r2.text);
        const up2 = await findConverse('from env');
        assert.match(recordedHeader(up2, 'authorization'), /\/us-west-2\/bedrock\/aws4_request/);
        assert.equal(recordedHeader(up2, 'x-amz-security-token'), undefined, 'an empty AWS_SESSION_TOKEN is no token');

        const r3 = await send(chat('haiku-bearer', 'bearer key'));
        assert.equal(r3.status, 200, r3.text);
        const up3 = await findConverse('bearer key');
        assert.equal(recordedHeader(up3, 'authorization'), `Bearer ${creds.bearer}`);
        assert.equal(recordedHeader(up3, 'x-amz-date'), undefined);
    });

    test('a bad signature is refused by the verifier → 403 permission_error', async () => {
        const r = await send(chat('haiku-badsig', 'bad signature'));
        assert.equal(r.status, 403, r.text);
        assertOpenAIError(r.json, { type: 'permission_error' });
        assert.match(r.json.error.message, /signature we calculated does not match/);
    });

    test('toolUse, then the toolResult round trip', async () => {
        const messages = [{ role: 'user', content: 'What is the weather in Paris' }];
        const r = await send({ model: 'haiku', tools: [weatherTool], tool_choice: 'required', messages });
        assert.equal(r.status, 200, r.text);
        const choice = r.json.choices[0];
        assert.equal(choice.finish_reason, 'tool_calls');
        const call = choice.message.tool_calls[0];
        assert.match(call.id, /^tooluse_/);
        assert.equal(call.function.name, 'get_weather');
        assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
        const up1 = await findConverse(messages[0].content);
        assert.deepEqual(up1.body.toolConfig, {
            tools: [{ toolSpec: { name: 'get_weather', description: 'Current weather for a city', inputSchema: { json: weatherTool.function.parameters } } }],
            toolChoice: { any: {} },
        });

        const r2 = await send({
            model: 'haiku', tools: [weatherTool],
            messages: [...messages, choice.message, { role: 'tool', tool_call_id: call.id, content: '18C and sunny' }],
        });
        assert.equal(r2.status, 200, r2.text);
        assert.equal(r2.json.choices[0].finish_reason, 'stop');
        assert.ok(r2.json.choices[0].message.content.startsWith(mockReplyPrefix('18C and sunny')));
        const up2 = await s.mock.findRequest((q) => q.body?.messages?.length === 3);
        assert.deepEqual(up2.body.messages.slice(1), [
            { role: 'assistant', content: [{ toolUse: { toolUseId: call.id, name: 'get_weather', input: { city: 'Paris' } } }] },
            { role: 'user', content: [{ toolResult: { toolUseId: call.id, content: [{ text: '18C and sunny' }], status: 'success' } }] },
        ]);
    });

    test('converse-stream: event-stream frames → chunks, usage chunk only when asked', async () => {
        const text = 'stream bedrock please @mock chunks=5';
        const plain = await streamRequest(`${s.gw.base}/chat/completions`, chat('haiku', text, { stream: true }), { key: s.secrets.ops });
        const a = checkChatStream(plain, { wantUsage: false });
        assert.ok(a.content.startsWith(mockReplyPrefix(text)), a.content);
        assert.equal(a.finish[0], 'stop');
        assert.equal(plain.events.filter((ev) => ev.json?.choices?.[0]?.delta?.content).length, 5);
        const up = await findConverse(text);
        assert.equal(up.path, `${MODEL_PATH}/converse-stream`);
        assert.equal(recordedHeader(up, 'accept'), 'application/vnd.amazon.eventstream');

        const counted = await streamRequest(`${s.gw.base}/chat/completions`,
            chat('haiku', text, { stream: true, stream_options: { include_usage: true } }), { key: s.secrets.ops });
        const b = checkChatStream(counted, { wantUsage: true });
        assert.equal(b.content, a.content);
        assert.equal(b.usage[0].usage.prompt_tokens, mockPromptTokens(text));
        assert.equal(b.usage[0].usage.completion_tokens, 20);

        const length = await streamRequest(`${s.gw.base}/chat/completions`,
            chat('haiku', 'cut short @mock chunks=2 finish=max_tokens', { stream: true }), { key: s.secrets.ops });
        assert.deepEqual(checkChatStream(length, { wantUsage: false }).finish, ['length']);
    });

    test('streamed toolUse: argument pieces assemble into valid JSON', async () => {
        const r = await streamRequest(`${s.gw.base}/chat/completions`, {
            model: 'haiku', stream: true, stream_options: { include_usage: true }, tools: [weatherTool],
            messages: [{ role: 'user', content: 'weather in Lisbon' }],
        }, { key: s.secrets.ops });
        const a = checkChatStream(r, { wantUsage: true });
        assert.equal(a.finish[0], 'tool_calls');
        assert.equal(a.tools.length, 1);
        assert.match(a.tools[0].id, /^tooluse_/);
        assert.equal(a.tools[0].name, 'get_weather');
        assert.deepEqual(JSON.parse(a.tools[0].arguments), { city: 'Lisbon' });
        const pieces = r.events.filter((ev) => ev.json?.choices?.[0]?.delta?.tool_calls?.[0]?.function?.arguments);
        assert.ok(pieces.length >= 2);
    });

    test('errors: ThrottlingException → 429 with retry-after, ValidationException → 400, 503; in-stream exception', async () => {
        for (const [directive, status, type, code] of [
            ['status=429 retry_after=3', 429, 'rate_limit_error', 'ThrottlingException'],
            ['status=400', 400, 'invalid_request_error', 'ValidationException'],
            ['status=503', 503, 'api_error', 'ServiceUnavailableException'],
        ]) {
            const r = await send(chat('haiku', `fail @mock ${directive}`));
            assert.equal(r.status, status, r.text);
            assertOpenAIError(r.json, { type }, directive);
            assert.equal(r.json.error.code, code, `${directive}: the kind from x-amzn-errortype`);
            assert.match(r.json.error.message, /^bedrock: /);
            if (status === 429) assert.equal(r.headers.get('retry-after'), '3');
        }
        const st = await streamRequest(`${s.gw.base}/chat/completions`,
            chat('haiku', 'fail midway @mock chunks=4 error_after=2', { stream: true }), { key: s.secrets.ops });
        assert.equal(st.status, 200);
        assert.equal(st.done, false);
        const a = assembleChat(st.events);
        assert.equal(a.errors.length, 1);
        assert.match(a.errors[0].message, /modelStreamErrorException/);
        assert.ok(st.events.at(-1).json.error);
        assert.ok(a.content.length > 0);
    });

    test('Titan embeddings via invoke; several inputs are refused', async () => {
        const r = await post(s.gw, 'embeddings', { model: 'titan', input: 'embed me', dimensions: 8 }, { key: s.secrets.ops });
        bodies.push(r.text);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.data.length, 1);
        assert.equal(r.json.data[0].embedding.length, 8);
        assert.ok(r.json.usage.prompt_tokens > 0);
        const up = await s.mock.findRequest((q) => q.body?.inputText === 'embed me');
        assert.equal(up.path, '/model/amazon.titan-embed-text-v2%3A0/invoke');
        assert.deepEqual(up.body, { inputText: 'embed me', dimensions: 8 });
        assert.match(recordedHeader(up, 'authorization'), /^AWS4-HMAC-SHA256 /);
        const many = await post(s.gw, 'embeddings', { model: 'titan', input: ['a', 'b'] }, { key: s.secrets.ops });
        bodies.push(many.text);
        assert.equal(many.status, 400, many.text);
        assertOpenAIError(many.json);
    });

    test('direct provider/model naming with a ":" in the model id', async () => {
        const r = await send(chat('bed/us.amazon.nova-lite-v1:0', 'direct naming'));
        assert.equal(r.status, 200, r.text);
        assert.equal((await findConverse('direct naming')).path, '/model/us.amazon.nova-lite-v1%3A0/converse');
    });

    test('access log: provider, upstream_model and tokens', async () => {
        const prompt = 'log me bedrock';
        const r = await send(chat('haiku', prompt));
        assert.equal(r.status, 200);
        const entry = await s.gw.accessLogFor(r.headers.get('x-sluice-request-id'));
        assert.equal(entry.provider, 'bed');
        assert.equal(entry.upstream_model, MODEL_ID);
        assert.equal(entry.prompt_tokens, mockPromptTokens(prompt));
        assert.equal(entry.completion_tokens, 20);
        assert.equal(entry.total_tokens, mockPromptTokens(prompt) + 20);
    });

    test('client disconnect mid-stream closes the upstream stream', async () => {
        const { openDuring } = await hangUpMidStream(s, 'haiku');
        assert.equal(openDuring, 1);
        const r = await send(chat('haiku', 'after the disconnect'));
        assert.equal(r.status, 200);
    });
});
