/* fuzz_providers.c — libFuzzer target for the provider translators: what an
 * upstream (or a client of /v1/messages) sends is untrusted bytes.
 *
 * Input: byte 0 picks the adapter and the request shape, bytes 1..4 seed the
 * cuts, the rest is the upstream's reply. The reply is fed to the adapter as
 * a stream (SSE, or the adapter's own framing) twice — whole and cut into
 * random pieces — and both runs must write the same OpenAI SSE; it is also
 * given to translate_response and translate_error as a complete body, and to
 * the inbound Anthropic translator as a client request. Only memory safety,
 * determinism across cuts and the return codes are checked: the adapters
 * must never crash, leak or read out of bounds on any input. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/anthropic_in.h"
#include "sluice/provider.h"
#include "sluice/sse.h"

typedef struct run {
    request_t *request;
    const provider_adapter_t *adapter;
    void *state;
    buf_t out;
    int last;
} run_t;

static int on_event(void *argument, const sse_event_t *event)
{
    run_t *run = argument;
    if (run->last == PROVIDER_EVENT_OK)
        run->last = run->adapter->translate_event(run->request, run->state, event, &run->out);
    return 0;
}

static uint32_t next_random(uint32_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}

/* Blanks the "created" timestamps, which come from the clock: two runs may
 * straddle a second boundary. */
static void blank_created(char *text)
{
    for (char *p = strstr(text, "\"created\":"); p != NULL; p = strstr(p + 1, "\"created\":"))
        for (char *digit = p + 10; *digit >= '0' && *digit <= '9'; digit++)
            *digit = '0';
}

/* Streams bytes through the adapter in pieces (max_piece 0 = whole); returns the output. */
static char *stream_through(request_t *request, const provider_adapter_t *adapter, const uint8_t *bytes, size_t length,
                            uint32_t seed, size_t max_piece)
{
    run_t run = {.request = request, .adapter = adapter, .last = PROVIDER_EVENT_OK};
    run.state = adapter->stream_state_size ? calloc(1, adapter->stream_state_size) : NULL;
    sse_parser_t parser;
    sse_parser_init(&parser, 1 << 20);
    buf_init(&run.out);
    request->usage = (usage_t){0};
    for (size_t start = 0; start < length && run.last == PROVIDER_EVENT_OK;) {
        size_t piece = max_piece ? 1 + next_random(&seed) % max_piece : length;
        if (piece > length - start)
            piece = length - start;
        if (adapter->feed_stream != NULL)
            run.last = adapter->feed_stream(request, run.state, (const char *)bytes + start, piece, &run.out);
        else if (sse_parser_feed(&parser, (const char *)bytes + start, piece, on_event, &run) != 0)
            run.last = PROVIDER_EVENT_FAILED;
        start += piece;
    }
    if (run.last == PROVIDER_EVENT_OK && adapter->feed_stream == NULL)
        sse_parser_finish(&parser, on_event, &run);
    if (run.last == PROVIDER_EVENT_OK && adapter->finish_stream != NULL)
        adapter->finish_stream(request, run.state, &run.out);
    if (run.state != NULL && adapter->free_state != NULL)
        adapter->free_state(run.state);
    free(run.state);
    sse_parser_free(&parser);
    char *text = strndup(run.out.data ? run.out.data : "", run.out.length);
    buf_free(&run.out);
    if (text == NULL)
        abort();
    blank_created(text);
    return text;
}

static request_t *make_request(provider_config_t *provider, int is_stream, int wants_usage, int has_tools)
{
    request_t *request = calloc(1, sizeof *request);
    if (request == NULL)
        abort();
    arena_init(&request->arena);
    buf_init(&request->attempts);
    buf_init(&request->fallback_reasons);
    strcpy(request->id, "req_fuzz");
    request->endpoint = ENDPOINT_CHAT_COMPLETIONS;
    request->provider = provider;
    request->upstream_model = "model-x";
    request->body = json_pack("{s:s, s:[{s:s, s:s}], s:b}", "model", "m", "messages", "role", "user", "content", "hi",
                              "stream", is_stream);
    if (request->body == NULL)
        abort();
    if (has_tools)
        json_object_set_new(request->body, "tools",
                            json_pack("[{s:s, s:{s:s, s:{s:s}}}]", "type", "function", "function", "name", "f",
                                      "parameters", "type", "object"));
    request->model = "m";
    request->is_stream = is_stream;
    request->client_wants_usage = wants_usage;
    return request;
}

static void free_request(request_t *request)
{
    json_decref(request->body);
    buf_free(&request->attempts);
    buf_free(&request->fallback_reasons);
    arena_release(&request->arena);
    free(request);
}

static void fuzz_inbound_anthropic(const uint8_t *bytes, size_t length)
{
    json_error_t error;
    json_t *body = json_loadb((const char *)bytes, length, JSON_REJECT_DUPLICATES, &error);
    if (body == NULL)
        return;
    json_t *openai = NULL;
    char message[256], param[128];
    if (anthropic_in_request(body, &openai, message, sizeof message, param, sizeof param) == 0)
        json_decref(openai);
    json_decref(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    static const provider_type_t types[] = {PROVIDER_OPENAI, PROVIDER_ANTHROPIC, PROVIDER_GEMINI, PROVIDER_BEDROCK,
                                            PROVIDER_AZURE};
    uint8_t selector = data[0];
    uint32_t seed = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 | (uint32_t)data[4] << 24;
    seed |= 1u;
    const uint8_t *bytes = data + 5;
    size_t length = size - 5;

    provider_config_t provider = {.name = "p", .base_url = "http://127.0.0.1:1", .api_key = "sk-fuzz"};
    provider.type = types[selector % 5];
    provider.region = "us-east-1";
    provider.access_key_id = "AKIDEXAMPLE";
    provider.secret_access_key = "secret";
    provider.anthropic_version = "2023-06-01";
    provider.api_version = "2024-10-21";
    provider.default_max_tokens = 1024;
    const provider_adapter_t *adapter = provider_adapter_for(provider.type);
    if (adapter == NULL)
        return 0;
    int wants_usage = (selector >> 3) & 1, has_tools = (selector >> 4) & 1;

    request_t *request = make_request(&provider, 1, wants_usage, has_tools);
    char *whole = stream_through(request, adapter, bytes, length, seed, 0);
    char *pieces = stream_through(request, adapter, bytes, length, seed, 1 + (seed >> 8) % 48);
    if (strcmp(whole, pieces) != 0) { /* where the network cuts the stream changed the output */
        fprintf(stderr, "adapter %s: whole stream gave\n%s\ncut stream gave\n%s\n", adapter->name, whole, pieces);
        abort();
    }
    free(whole);
    free(pieces);
    free_request(request);

    request = make_request(&provider, 0, 0, has_tools);
    buf_t out;
    buf_init(&out);
    bool is_unchanged = false;
    adapter->translate_response(request, (const char *)bytes, length, &out, &is_unchanged);
    buf_free(&out);
    provider_error_t error = {0};
    adapter->translate_error(request, 400 + (long)(selector % 130), (const char *)bytes, length, &error);
    free_request(request);

    fuzz_inbound_anthropic(bytes, length);
    return 0;
}
