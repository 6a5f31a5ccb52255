/* providers_harness.h — drives a provider adapter the way upstream.c does,
 * without sockets, for the test_providers_*.c suites.
 *
 * A test builds a request (provider config, OpenAI body, stream flags), asks
 * the adapter for its call, and feeds recorded or hand-written upstream bytes
 * to it whole, one byte at a time, or cut at random offsets; the OpenAI SSE
 * the adapter writes must be the same however the bytes were cut. */
#ifndef SLUICE_TEST_PROVIDERS_HARNESS_H
#define SLUICE_TEST_PROVIDERS_HARNESS_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/provider.h"
#include "sluice/sse.h"

/* A request as the pipeline would hand it to the upstream stage. */
static inline request_t *harness_request(provider_config_t *provider, const char *model, const char *body_json)
{
    request_t *request = calloc(1, sizeof *request);
    cr_assert_not_null(request);
    arena_init(&request->arena);
    buf_init(&request->attempts);
    buf_init(&request->fallback_reasons);
    snprintf(request->id, sizeof request->id, "req_test");
    request->endpoint = ENDPOINT_CHAT_COMPLETIONS;
    request->provider = provider;
    request->upstream_model = model;
    json_error_t error;
    request->body = json_loads(body_json, 0, &error);
    cr_assert_not_null(request->body, "test body does not parse: %s", error.text);
    request->model = json_string_value(json_object_get(request->body, "model"));
    request->is_stream = json_is_true(json_object_get(request->body, "stream"));
    request->client_wants_usage =
        json_is_true(json_object_get(json_object_get(request->body, "stream_options"), "include_usage"));
    return request;
}

static inline void harness_request_free(request_t *request)
{
    json_decref(request->body);
    buf_free(&request->attempts);
    buf_free(&request->fallback_reasons);
    arena_release(&request->arena);
    free(request);
}

static inline void harness_call_free(provider_call_t *call)
{
    if (!call->are_headers_shared)
        curl_slist_free_all(call->headers);
    free(call->body);
    memset(call, 0, sizeof *call);
}

/* Asserts actual equals the JSON in expected_text (key order ignored). */
static inline void harness_assert_json_eq(const json_t *actual, const char *expected_text)
{
    json_error_t error;
    json_t *expected = json_loads(expected_text, 0, &error);
    cr_assert_not_null(expected, "expected JSON does not parse: %s", error.text);
    char *actual_text = json_dumps(actual, JSON_COMPACT | JSON_SORT_KEYS);
    char *wanted_text = json_dumps(expected, JSON_COMPACT | JSON_SORT_KEYS);
    cr_assert(json_equal(actual, expected), "got      %s\nexpected %s", actual_text, wanted_text);
    free(actual_text);
    free(wanted_text);
    json_decref(expected);
}

/* Builds adapter's call for an OpenAI body (must succeed) and returns the
 * upstream body parsed; *request_out gets the request. */
static inline json_t *harness_built_body(const provider_adapter_t *adapter, provider_config_t *provider,
                                         const char *model, const char *body, provider_call_t *call,
                                         request_t **request_out)
{
    request_t *request = harness_request(provider, model, body);
    cr_assert_eq(adapter->build_call(request, call), 0, "build_call failed: %s",
                 request->error_message ? request->error_message : "");
    json_error_t error;
    json_t *sent = json_loadb(call->body, call->body_length, 0, &error);
    cr_assert_not_null(sent, "upstream body is not JSON: %s", error.text);
    *request_out = request;
    return sent;
}

/* A complete 2xx body translated by adapter (must succeed), parsed, without
 * the "created" time. */
static inline json_t *harness_translated(const provider_adapter_t *adapter, request_t *request, const char *reply)
{
    buf_t out;
    buf_init(&out);
    bool is_unchanged = true;
    cr_assert_eq(adapter->translate_response(request, reply, strlen(reply), &out, &is_unchanged), 0);
    cr_assert(!is_unchanged);
    json_t *completion = json_loads(out.data, 0, NULL);
    cr_assert_not_null(completion, "translated answer is not JSON: %s", out.data);
    json_object_del(completion, "created");
    buf_free(&out);
    return completion;
}

/* The value of header name in the call (case-insensitive), or NULL. */
static inline const char *harness_call_header(const provider_call_t *call, const char *name)
{
    size_t length = strlen(name);
    for (const struct curl_slist *item = call->headers; item != NULL; item = item->next) {
        if (strncasecmp(item->data, name, length) == 0 && item->data[length] == ':') {
            const char *value = item->data + length + 1;
            while (*value == ' ')
                value++;
            return value;
        }
    }
    return NULL;
}

/* ---- streams --------------------------------------------------------------- */

typedef struct harness_stream {
    request_t *request;
    const provider_adapter_t *adapter;
    void *state;
    sse_parser_t sse;
    buf_t out;
    int final; /* the last non-OK result, or OK */
    bool is_done, is_error, is_failed;
} harness_stream_t;

static inline void harness_note(harness_stream_t *run, int result)
{
    if (result == PROVIDER_EVENT_FAILED)
        run->is_failed = true;
    if (result == PROVIDER_EVENT_DONE)
        run->is_done = true;
    if (result == PROVIDER_EVENT_ERROR)
        run->is_error = true;
    if (result != PROVIDER_EVENT_OK)
        run->final = result;
}

static inline int harness_on_event(void *argument, const sse_event_t *event)
{
    harness_stream_t *run = argument;
    int result = run->adapter->translate_event(run->request, run->state, event, &run->out);
    harness_note(run, result);
    return result == PROVIDER_EVENT_FAILED ? -1 : 0;
}

/* Replaces the digits after "created": with 0 so runs a second apart compare equal. */
static inline char *harness_normalise(const char *text)
{
    size_t length = strlen(text);
    char *copy = malloc(length + 1);
    cr_assert_not_null(copy);
    size_t at = 0;
    for (size_t i = 0; i < length;) {
        if (strncmp(text + i, "\"created\":", 10) == 0) {
            memcpy(copy + at, text + i, 10);
            at += 10;
            i += 10;
            copy[at++] = '0';
            while (i < length && text[i] >= '0' && text[i] <= '9')
                i++;
        } else {
            copy[at++] = text[i++];
        }
    }
    copy[at] = '\0';
    return copy;
}

/* Feeds bytes to adapter for request cut at cuts (ascending offsets), then
 * ends the stream like upstream.c does. Returns the normalised output
 * (malloc'ed); *run_out gets the flags. */
static inline char *harness_run_stream(request_t *request, const provider_adapter_t *adapter, const char *bytes,
                                       size_t length, const size_t *cuts, size_t cut_count, harness_stream_t *run_out)
{
    harness_stream_t run = {.request = request, .adapter = adapter};
    run.state = adapter->stream_state_size ? calloc(1, adapter->stream_state_size) : NULL;
    sse_parser_init(&run.sse, 1 << 20);
    buf_init(&run.out);
    request->usage = (usage_t){0};
    size_t start = 0;
    for (size_t i = 0; i <= cut_count && !run.is_failed; i++) {
        size_t end = i < cut_count ? cuts[i] : length;
        if (adapter->feed_stream != NULL)
            harness_note(&run, adapter->feed_stream(request, run.state, bytes + start, end - start, &run.out));
        else
            sse_parser_feed(&run.sse, bytes + start, end - start, harness_on_event, &run);
        start = end;
    }
    if (!run.is_failed) {
        if (adapter->feed_stream == NULL)
            sse_parser_finish(&run.sse, harness_on_event, &run);
        if (!run.is_done && !run.is_error && !run.is_failed && adapter->finish_stream != NULL)
            harness_note(&run, adapter->finish_stream(request, run.state, &run.out));
    }
    if (run.state != NULL && adapter->free_state != NULL)
        adapter->free_state(run.state);
    free(run.state);
    sse_parser_free(&run.sse);
    char *text = harness_normalise(run.out.data ? run.out.data : "");
    buf_free(&run.out);
    run.state = NULL;
    if (run_out != NULL)
        *run_out = run;
    return text;
}

/* Runs the stream whole, byte by byte and in many random cuts; asserts every
 * run writes the same output and returns it (malloc'ed). */
static inline char *harness_run_every_cut(request_t *request, const provider_adapter_t *adapter, const char *bytes,
                                          size_t length, harness_stream_t *run_out)
{
    char *whole = harness_run_stream(request, adapter, bytes, length, NULL, 0, run_out);
    usage_t usage = request->usage;
    size_t *cuts = malloc((length + 1) * sizeof *cuts);
    cr_assert_not_null(cuts);
    for (size_t i = 0; i < length; i++)
        cuts[i] = i + 1;
    harness_stream_t run;
    char *bytewise = harness_run_stream(request, adapter, bytes, length, cuts, length ? length - 1 : 0, &run);
    cr_assert_str_eq(bytewise, whole, "byte-by-byte output differs");
    cr_assert_eq(request->usage.prompt_tokens, usage.prompt_tokens);
    cr_assert_eq(request->usage.completion_tokens, usage.completion_tokens);
    free(bytewise);
    unsigned seed = 12345;
    for (int round = 0; round < 200; round++) {
        size_t count = 0, at = 0;
        while (length > 0) {
            at += 1 + (size_t)(rand_r(&seed) % 40);
            if (at >= length)
                break;
            cuts[count++] = at;
        }
        char *split = harness_run_stream(request, adapter, bytes, length, cuts, count, &run);
        cr_assert_str_eq(split, whole, "output differs for random cut round %d", round);
        free(split);
    }
    free(cuts);
    request->usage = usage;
    return whole;
}

/* The JSON payloads of the "data: " events in an OpenAI SSE text; "[DONE]" as a JSON string. */
static inline json_t *harness_events(const char *text)
{
    json_t *events = json_array();
    const char *p = text;
    while ((p = strstr(p, "data: ")) != NULL) {
        p += 6;
        const char *end = strstr(p, "\n\n");
        cr_assert_not_null(end, "event without its blank line");
        if (end - p == 6 && memcmp(p, "[DONE]", 6) == 0) {
            json_array_append_new(events, json_string("[DONE]"));
        } else {
            json_error_t error;
            json_t *event = json_loadb(p, (size_t)(end - p), 0, &error);
            cr_assert_not_null(event, "event is not JSON: %s", error.text);
            json_array_append_new(events, event);
        }
        p = end + 2;
    }
    return events;
}

/* What an OpenAI client would assemble from the chunks. */
typedef struct harness_summary {
    char content[4096];
    char tool_ids[4][128];
    char tool_names[4][64];
    char tool_arguments[4][1024];
    int tool_count;
    char finish_reason[32];
    bool has_role, has_done, has_usage, has_error;
    long prompt_tokens, completion_tokens, cached_tokens;
    char error_type[64];
} harness_summary_t;

static inline void harness_summarise(const char *text, harness_summary_t *summary)
{
    memset(summary, 0, sizeof *summary);
    json_t *events = harness_events(text);
    size_t i;
    json_t *event;
    json_array_foreach(events, i, event) {
        if (json_is_string(event)) {
            summary->has_done = true;
            continue;
        }
        cr_assert(!summary->has_done, "an event after [DONE]");
        if (json_object_get(event, "error") != NULL) {
            summary->has_error = true;
            snprintf(summary->error_type, sizeof summary->error_type, "%s",
                     json_string_value(json_object_get(json_object_get(event, "error"), "type")));
            continue;
        }
        cr_assert_str_eq(json_string_value(json_object_get(event, "object")), "chat.completion.chunk");
        json_t *usage = json_object_get(event, "usage");
        if (json_is_object(usage)) {
            summary->has_usage = true;
            summary->prompt_tokens = (long)json_integer_value(json_object_get(usage, "prompt_tokens"));
            summary->completion_tokens = (long)json_integer_value(json_object_get(usage, "completion_tokens"));
            summary->cached_tokens =
                (long)json_integer_value(json_object_get(json_object_get(usage, "prompt_tokens_details"), "cached_tokens"));
            cr_assert_eq(json_array_size(json_object_get(event, "choices")), 0, "the usage chunk has no choices");
            continue;
        }
        json_t *choice = json_array_get(json_object_get(event, "choices"), 0);
        json_t *delta = json_object_get(choice, "delta");
        if (json_is_string(json_object_get(delta, "role")))
            summary->has_role = true;
        const char *content = json_string_value(json_object_get(delta, "content"));
        if (content != NULL)
            strncat(summary->content, content, sizeof summary->content - strlen(summary->content) - 1);
        size_t j;
        json_t *call;
        json_array_foreach(json_object_get(delta, "tool_calls"), j, call) {
            int index = (int)json_integer_value(json_object_get(call, "index"));
            cr_assert(index >= 0 && index < 4);
            if (index + 1 > summary->tool_count)
                summary->tool_count = index + 1;
            const char *id = json_string_value(json_object_get(call, "id"));
            if (id != NULL) {
                cr_assert_eq(summary->tool_ids[index][0], '\0', "tool call %d started twice", index);
                snprintf(summary->tool_ids[index], sizeof summary->tool_ids[index], "%s", id);
            }
            json_t *function = json_object_get(call, "function");
            const char *name = json_string_value(json_object_get(function, "name"));
            if (name != NULL)
                snprintf(summary->tool_names[index], sizeof summary->tool_names[index], "%s", name);
            const char *arguments = json_string_value(json_object_get(function, "arguments"));
            if (arguments != NULL)
                strncat(summary->tool_arguments[index], arguments,
                        sizeof summary->tool_arguments[index] - strlen(summary->tool_arguments[index]) - 1);
        }
        const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
        if (finish != NULL) {
            cr_assert_eq(summary->finish_reason[0], '\0', "two finish reasons");
            snprintf(summary->finish_reason, sizeof summary->finish_reason, "%s", finish);
        }
    }
    json_decref(events);
}

/* Reads a fixture file (malloc'ed, NUL-terminated). */
static inline char *harness_fixture(const char *name, size_t *length)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SLUICE_TEST_FIXTURES, name);
    FILE *file = fopen(path, "rb");
    cr_assert_not_null(file, "cannot open %s", path);
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    char *data = malloc((size_t)size + 1);
    cr_assert_eq(fread(data, 1, (size_t)size, file), (size_t)size);
    fclose(file);
    data[size] = '\0';
    *length = (size_t)size;
    return data;
}

/* Runs bytes through adapter at every cut (harness_run_every_cut) and
 * summarises the one output they all give. */
static inline void harness_summarise_every_cut(request_t *request, const provider_adapter_t *adapter,
                                               const char *bytes, size_t length, harness_summary_t *summary)
{
    harness_stream_t run;
    char *output = harness_run_every_cut(request, adapter, bytes, length, &run);
    harness_summarise(output, summary);
    free(output);
}

#endif
