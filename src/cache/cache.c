/* cache.c — policy, keys, serving and admission shared by the exact and
 * semantic cache stages (see cache.h).
 *
 * Isolation is structural: the scope (key, team or global) is part of the
 * exact key's hashed input and of the semantic partition, never of the text
 * that is embedded — so a tenant's prompt cannot reach another tenant's
 * entries however similar it is, and scoping does not stop hits within a
 * tenant. The partition also holds the system prompt, the earlier turns and
 * every output-affecting parameter, so a semantic hit only ever replaces the
 * last user message by one that means the same. */
#include "sluice/cache.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sluice/embed.h"
#include "sluice/log.h"
#include "sluice/openai_chunk.h"
#include "sluice/sse.h"
#include "sluice/store_redis.h"
#include "sluice/usage.h"
#include "sluice/util/clock.h"
#include "sluice/util/crypto.h"
#include "sluice/worker.h"

/* Request fields that change the answer; everything else (stream, user,
 * metadata...) does not take part in the key. */
static const char *const output_parameters[] = {
    "tools", "tool_choice", "functions", "function_call", "response_format", "temperature", "top_p",
    "max_tokens", "max_completion_tokens", "n", "stop", "seed", "presence_penalty", "frequency_penalty",
    "logit_bias", "logprobs", "top_logprobs", "parallel_tool_calls", "reasoning_effort", "modalities", "audio",
    "prediction", "verbosity", NULL};

static atomic_uint_least64_t counters[CACHE_COUNT_KINDS];
static atomic_uint_least64_t saved_nano_usd;
static atomic_uint_least64_t lookup_us_sum;
static atomic_uint_least64_t lookup_count;

void cache_count(cache_count_t kind) { atomic_fetch_add_explicit(&counters[kind], 1, memory_order_relaxed); }


/* ---- policy ---------------------------------------------------------------- */

static const char *scope_for(request_t *request)
{
    const cache_config_t *cache = &request->config->cache;
    const key_config_t *key = request->key;
    if (cache->scope == CACHE_SCOPE_GLOBAL)
        return "global";
    if (key == NULL)
        return "open"; /* no keys configured: every caller is the same tenant */
    if (cache->scope == CACHE_SCOPE_TEAM && key->team != NULL)
        return arena_sprintf(&request->arena, "team:%s", key->team);
    return arena_sprintf(&request->arena, "key:%s", key->name);
}

static bool header_has(const request_t *request, const char *name, const char *token)
{
    const char *value = request_header(request, name);
    return value != NULL && strcasestr(value, token) != NULL;
}

static json_t *copy_parameters(const json_t *body)
{
    json_t *parameters = json_object();
    for (size_t i = 0; parameters != NULL && output_parameters[i] != NULL; i++) {
        json_t *value = json_object_get(body, output_parameters[i]);
        if (value == NULL || json_is_null(value))
            continue;
        /* 1 and 1.0 mean the same temperature */
        json_t *copy = json_is_integer(value) ? json_real((double)json_integer_value(value)) : json_deep_copy(value);
        if (copy == NULL || json_object_set_new(parameters, output_parameters[i], copy) != 0) {
            json_decref(parameters);
            return NULL;
        }
    }
    return parameters;
}

/* Whitespace around a message does not change its meaning for the exact key. */
static json_t *trimmed_string(const char *text)
{
    size_t length = strlen(text);
    while (length > 0 && (text[length - 1] == ' ' || text[length - 1] == '\n' || text[length - 1] == '\t' ||
                          text[length - 1] == '\r'))
        length--;
    while (length > 0 && (*text == ' ' || *text == '\n' || *text == '\t' || *text == '\r'))
        text++, length--;
    return json_stringn(text, length);
}

static json_t *normalised_message(const json_t *message)
{
    json_t *copy = json_deep_copy(message);
    if (copy == NULL)
        return NULL;
    json_t *content = json_object_get(copy, "content");
    if (json_is_string(content)) {
        json_object_set_new(copy, "content", trimmed_string(json_string_value(content)));
    } else if (json_is_array(content)) {
        size_t index;
        json_t *part;
        json_array_foreach(content, index, part)
        {
            const char *text = json_string_value(json_object_get(part, "text"));
            if (text != NULL)
                json_object_set_new(part, "text", trimmed_string(text));
        }
    }
    return copy;
}

static int sha256_of_json(const char *domain, json_t *value, unsigned char out[CACHE_KEY_LENGTH])
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (text == NULL)
        return -1;
    buf_t input;
    buf_init(&input);
    int rc = buf_append_str(&input, domain) == 0 && buf_append_str(&input, text) == 0
                 ? crypto_sha256(input.data, input.length, out)
                 : -1;
    buf_free(&input);
    free(text);
    return rc;
}

/* /v1/embeddings: the same input (string, strings or token arrays, as sent),
 * resolved model, dimensions and encoding format (absent = float) in the
 * same scope give the same vectors. */
static int embeddings_key(request_t *request, const char *scope, unsigned char key[CACHE_KEY_LENGTH])
{
    const json_t *input = json_object_get(request->body, "input");
    const json_t *dimensions = json_object_get(request->body, "dimensions");
    const char *format = json_string_value(json_object_get(request->body, "encoding_format"));
    if (input == NULL)
        return -1;
    json_t *root = json_pack("{s:s, s:s, s:O, s:O, s:s}", "scope", scope, "model", request->route_model, "input",
                             input, "dimensions", dimensions ? dimensions : json_null(), "encoding_format",
                             format ? format : "float");
    if (root == NULL)
        return -1;
    int rc = sha256_of_json("sluice-cache-embeddings-v1\n", root, key);
    json_decref(root);
    return rc;
}

static int exact_key(request_t *request, const char *scope, unsigned char key[CACHE_KEY_LENGTH])
{
    if (request->endpoint == ENDPOINT_EMBEDDINGS)
        return embeddings_key(request, scope, key);
    json_t *messages = json_array();
    size_t index;
    const json_t *message;
    json_array_foreach(json_object_get(request->body, "messages"), index, message)
    {
        if (messages == NULL || json_array_append_new(messages, normalised_message(message)) != 0) {
            json_decref(messages);
            return -1;
        }
    }
    json_t *parameters = copy_parameters(request->body);
    json_t *root = messages && parameters
                       ? json_pack("{s:s, s:s, s:o, s:o}", "scope", scope, "model", request->route_model, "messages",
                                   messages, "parameters", parameters)
                       : NULL;
    if (root == NULL) {
        json_decref(messages);
        json_decref(parameters);
        return -1;
    }
    int rc = sha256_of_json("sluice-cache-exact-v1\n", root, key);
    json_decref(root);
    return rc;
}

static cache_request_t *skip(request_t *request, cache_request_t *state, const char *reason)
{
    state->outcome = "skip";
    state->reason = reason;
    request->cache_outcome = CACHE_OUTCOME_SKIP;
    cache_count(CACHE_COUNT_SKIP);
    return NULL;
}

cache_request_t *cache_request_begin(request_t *request)
{
    const config_t *config = request->config;
    const cache_config_t *cache = &config->cache;
    /* /v1/messages replies are re-encoded for Anthropic clients: hits are only served in OpenAI's format.
     * /v1/embeddings is cached exactly (the same input gives the same vectors). */
    bool is_embeddings = request->endpoint == ENDPOINT_EMBEDDINGS;
    if (!cache->is_enabled || (request->endpoint != ENDPOINT_CHAT_COMPLETIONS && !is_embeddings) ||
        request->is_anthropic_api ||
        request->shadow_of != NULL || request->body == NULL || request->route_model == NULL)
        return NULL;
    cache_request_t *state = arena_alloc(&request->arena, sizeof *state);
    if (state == NULL)
        return NULL;
    memset(state, 0, sizeof *state);
    buf_init(&state->capture);
    request->stage_context[STAGE_SLOT_CACHE] = state;
    state->started_us = clock_monotonic_us();
    state->may_serve = state->may_admit = true;
    const cache_model_config_t *model = config_find_cache_model(config, request->route_model);
    state->is_exact_enabled = model && model->is_exact_enabled >= 0 ? model->is_exact_enabled : cache->is_exact_enabled;
    state->is_semantic_enabled =
        model && model->is_semantic_enabled >= 0 ? model->is_semantic_enabled : cache->is_semantic_enabled;
    state->exact_ttl_s = model && model->exact_ttl_s > 0 ? model->exact_ttl_s : cache->exact_ttl_s;
    state->semantic_ttl_s = model && model->semantic_ttl_s > 0 ? model->semantic_ttl_s : cache->semantic_ttl_s;
    state->threshold = (float)(model && model->threshold > 0 ? model->threshold : cache->threshold);
    if (is_embeddings)
        state->is_semantic_enabled = false; /* an embedding of a paraphrase is another embedding */

    const char *control = request_header(request, "x-sluice-cache");
    if (control != NULL && strcasecmp(control, "skip") == 0)
        return skip(request, state, "header");
    if (!state->is_exact_enabled && !state->is_semantic_enabled)
        return skip(request, state, "disabled_for_model");
    const json_t *body = request->body;
    const json_t *tools = json_object_get(body, "tools");
    if (cache->skips_tools && ((json_is_array(tools) && json_array_size(tools) > 0) ||
                               json_object_get(body, "functions") != NULL))
        return skip(request, state, "tools");
    const json_t *n = json_object_get(body, "n");
    if (json_is_integer(n) && json_integer_value(n) > 1)
        return skip(request, state, "n");
    const json_t *temperature = json_object_get(body, "temperature");
    if (json_is_number(temperature) && json_number_value(temperature) > cache->max_temperature)
        return skip(request, state, "temperature");

    if (control != NULL && strcasecmp(control, "refresh") == 0)
        state->may_serve = false, state->reason = "refresh";
    if (header_has(request, "cache-control", "no-cache"))
        state->may_serve = false, state->reason = "no-cache";
    if (header_has(request, "cache-control", "no-store"))
        state->may_admit = false, state->reason = "no-store";
    if (!state->may_serve && !state->may_admit)
        return skip(request, state, state->reason);

    if (cache->uses_redis && !store_redis_is_in_step()) {
        /* The local index may miss other instances' changes: do not trust it. */
        state->outcome = "error";
        state->reason = "store_unavailable";
        request->cache_outcome = CACHE_OUTCOME_MISS;
        cache_count(CACHE_COUNT_ERROR);
        return NULL;
    }
    state->scope = scope_for(request);
    if (state->scope == NULL || exact_key(request, state->scope, state->key) != 0) {
        state->outcome = "error";
        state->reason = "key";
        cache_count(CACHE_COUNT_ERROR);
        return NULL;
    }
    char id[CACHE_ID_LENGTH + 1];
    cache_store_id_from_key(state->key, id);
    state->entry_id = arena_strdup(&request->arena, id);
    state->outcome = state->may_serve ? "miss" : "refresh";
    return state;
}

/* ---- semantic inputs ------------------------------------------------------- */

/* The text of a message's content; NULL when it has non-text parts (images, audio). */
static const char *message_text(request_t *request, const json_t *message)
{
    const json_t *content = json_object_get(message, "content");
    if (json_is_string(content))
        return json_string_value(content);
    if (!json_is_array(content))
        return NULL;
    buf_t text;
    buf_init(&text);
    size_t index;
    const json_t *part;
    bool is_text_only = true;
    json_array_foreach(content, index, part)
    {
        const char *type = json_string_value(json_object_get(part, "type"));
        const char *piece = json_string_value(json_object_get(part, "text"));
        if (type == NULL || strcmp(type, "text") != 0 || piece == NULL) {
            is_text_only = false;
            break;
        }
        if ((text.length && buf_append_char(&text, '\n')) || buf_append_str(&text, piece)) {
            is_text_only = false;
            break;
        }
    }
    const char *result = is_text_only && text.data ? arena_strdup(&request->arena, text.data) : NULL;
    buf_free(&text);
    return result;
}

const char *cache_embed_text(request_t *request, size_t *length)
{
    const json_t *messages = json_object_get(request->body, "messages");
    size_t count = json_array_size(messages);
    const json_t *last = json_array_get(messages, count - 1);
    const char *role = json_string_value(json_object_get(last, "role"));
    if (count == 0 || role == NULL || strcmp(role, "user") != 0)
        return NULL; /* a tool result or an assistant prefill: not a question to match */
    const char *text = NULL;
    if (request->config->cache.embed_input == CACHE_EMBED_LAST_USER) {
        text = message_text(request, last);
    } else {
        buf_t joined;
        buf_init(&joined);
        bool is_ok = true;
        for (size_t i = 0; i < count && is_ok; i++) {
            const json_t *message = json_array_get(messages, i);
            const char *message_role = json_string_value(json_object_get(message, "role"));
            if (message_role == NULL || strcmp(message_role, "system") == 0 || strcmp(message_role, "developer") == 0)
                continue;
            const char *piece = message_text(request, message);
            is_ok = piece != NULL && buf_printf(&joined, "%s\n", piece) == 0;
        }
        text = is_ok && joined.data ? arena_strdup(&request->arena, joined.data) : NULL;
        buf_free(&joined);
    }
    if (text != NULL)
        *length = strlen(text);
    return text;
}

uint64_t cache_partition(request_t *request, const char *embedder)
{
    const cache_request_t *state = cache_request_of(request);
    const json_t *messages = json_object_get(request->body, "messages");
    size_t count = json_array_size(messages);
    bool is_last_user = request->config->cache.embed_input == CACHE_EMBED_LAST_USER;
    json_t *roles = json_array(), *context = json_array();
    for (size_t i = 0; roles && context && i < count; i++) {
        const json_t *message = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(message, "role"));
        json_array_append_new(roles, json_string(role ? role : ""));
        bool is_instruction = role && (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0);
        /* instructions always; earlier turns too unless they are embedded */
        if (is_instruction || (is_last_user && i + 1 < count))
            json_array_append_new(context, normalised_message(message));
    }
    json_t *parameters = copy_parameters(request->body);
    json_t *root = roles && context && parameters
                       ? json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "embedder", embedder, "scope", state->scope,
                                   "model", request->route_model, "roles", roles, "context", context,
                                   "parameters", parameters)
                       : NULL;
    unsigned char digest[CACHE_KEY_LENGTH];
    uint64_t partition = 0;
    if (root != NULL && sha256_of_json("sluice-cache-partition-v1\n", root, digest) == 0)
        memcpy(&partition, digest, sizeof partition);
    if (root == NULL) {
        json_decref(roles);
        json_decref(context);
        json_decref(parameters);
    }
    json_decref(root);
    return partition ? partition : 1;
}

/* ---- serving --------------------------------------------------------------- */

static void write_stream(request_t *request, const char *content, const char *finish_reason)
{
    openai_chunk_writer_t writer = {0};
    buf_t out;
    buf_init(&out);
    openai_chunk_begin(&writer, request, NULL);
    /* pieces of about 24 bytes, cut only before a UTF-8 lead byte */
    size_t length = strlen(content), start = 0;
    while (start < length) {
        size_t end = start + 24 < length ? start + 24 : length;
        while (end < length && ((unsigned char)content[end] & 0xc0) == 0x80)
            end++;
        openai_chunk_text(&writer, request, content + start, end - start, &out);
        start = end;
    }
    if (length == 0)
        openai_chunk_text(&writer, request, "", 0, &out);
    openai_chunk_finish(&writer, request, finish_reason, &out);
    openai_chunk_end(&writer, request, &out);
    request_stream_start(request);
    request_stream_write(request, out.data, out.length);
    request_stream_end(request);
    buf_free(&out);
}

static void write_json(request_t *request, const char *content, const char *finish_reason, const char *model,
                       const usage_t *usage)
{
    char id[64];
    snprintf(id, sizeof id, "chatcmpl-%s", request->id);
    json_t *root = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s, s:n}, s:n, s:s}], s:{s:I, s:I, s:I}}",
                             "id", id, "object", "chat.completion", "created", (json_int_t)time(NULL), "model",
                             model, "choices", "index", 0, "message", "role", "assistant", "content", content,
                             "refusal", "logprobs", "finish_reason", finish_reason, "usage", "prompt_tokens",
                             (json_int_t)usage->prompt_tokens, "completion_tokens",
                             (json_int_t)usage->completion_tokens, "total_tokens",
                             (json_int_t)(usage->prompt_tokens + usage->completion_tokens));
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (text == NULL) {
        request_reply_error(request, 500, "api_error", "internal_error", NULL, "internal gateway error");
        return;
    }
    request_reply_json(request, 200, text, strlen(text));
    free(text);
}

void cache_serve_hit(request_t *request, const cache_found_t *found, const char *layer)
{
    cache_request_t *state = cache_request_of(request);
    json_t *answer = json_loadb(found->answer, found->answer_length, 0, NULL);
    const char *content = json_string_value(json_object_get(answer, "content"));
    const char *finish_reason = json_string_value(json_object_get(answer, "finish_reason"));
    const char *model = json_string_value(json_object_get(answer, "model"));
    usage_t usage = {0};
    usage_from_openai(json_object_get(answer, "usage"), &usage);
    state->lookup_us = clock_monotonic_us() - state->started_us;
    state->outcome = "hit";
    state->layer = layer;
    state->similarity = found->similarity;
    state->entry_id = arena_strdup(&request->arena, found->id);
    cache_count(strcmp(layer, "exact") == 0 ? CACHE_COUNT_HIT_EXACT : CACHE_COUNT_HIT_SEMANTIC);
    atomic_fetch_add_explicit(&lookup_us_sum, state->lookup_us, memory_order_relaxed);
    atomic_fetch_add_explicit(&lookup_count, 1, memory_order_relaxed);
    request->cache_outcome = CACHE_OUTCOME_HIT;
    request_add_header(request, "x-sluice-cache", "hit");
    request_add_header(request, "x-sluice-cache-layer", layer);
    request_add_header(request, "x-sluice-cache-id", found->id);
    if (strcmp(layer, "semantic") == 0) {
        char similarity[16];
        snprintf(similarity, sizeof similarity, "%.4f", found->similarity);
        request_add_header(request, "x-sluice-cache-similarity", similarity);
    }
    request_add_header(request, "x-sluice-provider", "cache");
    request_add_header(request, "x-sluice-model", model ? model : "");
    request_add_header(request, "x-sluice-cost-usd", "0.00000000");
    const json_t *embeddings = json_object_get(answer, "embeddings");
    char *embeddings_text = json_is_object(embeddings) ? json_dumps(embeddings, JSON_COMPACT) : NULL;
    if (embeddings_text == NULL && (content == NULL || finish_reason == NULL)) {
        json_decref(answer);
        request_reply_error(request, 500, "api_error", "internal_error", NULL, "cached answer is unreadable");
        return;
    }
    state->saved_usd = usage_cost_usd(request->config, model, &usage, &state->is_saved_priced);
    if (state->is_saved_priced)
        atomic_fetch_add_explicit(&saved_nano_usd, (uint64_t)(state->saved_usd * 1e9), memory_order_relaxed);
    request->upstream_model = arena_strdup(&request->arena, model ? model : "");
    if (embeddings_text != NULL) {
        request_reply_json(request, 200, embeddings_text, strlen(embeddings_text));
        free(embeddings_text);
    } else if (request->is_stream) {
        request->usage = usage; /* for the usage chunk, if the client asked */
        write_stream(request, content, finish_reason);
    } else {
        write_json(request, content, finish_reason, model ? model : "", &usage);
    }
    /* Nothing was consumed upstream: the log and metrics count no tokens and no spend. */
    request->usage = (usage_t){0};
    request->cost_usd = 0;
    request->is_priced = true;
    json_decref(answer);
}

void cache_note_miss(request_t *request)
{
    cache_request_t *state = cache_request_of(request);
    if (state == NULL)
        return;
    state->lookup_us = clock_monotonic_us() - state->started_us;
    if (state->may_serve) {
        atomic_fetch_add_explicit(&lookup_us_sum, state->lookup_us, memory_order_relaxed);
        atomic_fetch_add_explicit(&lookup_count, 1, memory_order_relaxed);
        cache_count(CACHE_COUNT_MISS);
    }
    request->cache_outcome = CACHE_OUTCOME_MISS;
    state->is_capturing = state->may_admit;
}

/* Answers larger than this are not admitted (the copy would cost more than it saves). */
enum { MAX_CAPTURE_BYTES = 4 << 20 };

void cache_capture(request_t *request, response_piece_t *piece)
{
    cache_request_t *state = cache_request_of(request);
    if (state == NULL || !state->is_capturing || state->is_capture_broken || piece->length == 0)
        return;
    if (state->capture.length + piece->length > MAX_CAPTURE_BYTES ||
        buf_append(&state->capture, piece->data, piece->length) != 0)
        state->is_capture_broken = true;
}

/* ---- admission ------------------------------------------------------------- */

typedef struct assembled {
    buf_t content;
    const char *finish_reason; /* static or arena */
    char model[128];
    usage_t usage;
    bool has_tool_calls;
    bool has_error;
    bool is_done;
    request_t *request;
} assembled_t;

static int on_captured_event(void *argument, const sse_event_t *event)
{
    assembled_t *answer = argument;
    if (strcmp(event->data, "[DONE]") == 0) {
        answer->is_done = true;
        return 0;
    }
    json_t *chunk = json_loadb(event->data, event->data_length, 0, NULL);
    if (chunk == NULL || json_object_get(chunk, "error") != NULL) {
        answer->has_error = true;
        json_decref(chunk);
        return 0;
    }
    const char *model = json_string_value(json_object_get(chunk, "model"));
    if (model != NULL && answer->model[0] == '\0')
        snprintf(answer->model, sizeof answer->model, "%s", model);
    usage_from_openai(json_object_get(chunk, "usage"), &answer->usage);
    const json_t *choice = json_array_get(json_object_get(chunk, "choices"), 0);
    const json_t *delta = json_object_get(choice, "delta");
    const char *piece = json_string_value(json_object_get(delta, "content"));
    if (piece != NULL && buf_append_str(&answer->content, piece) != 0)
        answer->has_error = true;
    if (json_object_get(delta, "tool_calls") != NULL)
        answer->has_tool_calls = true;
    const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
    if (finish != NULL)
        answer->finish_reason = arena_strdup(&answer->request->arena, finish);
    json_decref(chunk);
    return 0;
}

/* Rebuilds content, finish reason and usage from what the client was sent. */
static int assemble(request_t *request, const buf_t *capture, assembled_t *answer)
{
    if (capture->length > 0 && capture->data[0] == '{') {
        json_t *root = json_loadb(capture->data, capture->length, 0, NULL);
        const json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
        const json_t *message = json_object_get(choice, "message");
        const char *content = json_string_value(json_object_get(message, "content"));
        const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
        const char *model = json_string_value(json_object_get(root, "model"));
        int rc = root && content && json_array_size(json_object_get(root, "choices")) == 1 ? 0 : -1;
        if (rc == 0) {
            rc = buf_append_str(&answer->content, content);
            answer->finish_reason = finish ? arena_strdup(&request->arena, finish) : NULL;
            answer->has_tool_calls = json_array_size(json_object_get(message, "tool_calls")) > 0;
            snprintf(answer->model, sizeof answer->model, "%s", model ? model : "");
            usage_from_openai(json_object_get(root, "usage"), &answer->usage);
            answer->is_done = true;
        }
        json_decref(root);
        return rc;
    }
    sse_parser_t parser;
    sse_parser_init(&parser, 1 << 20);
    int rc = sse_parser_feed(&parser, capture->data ? capture->data : "", capture->length, on_captured_event, answer);
    if (rc == 0)
        rc = sse_parser_finish(&parser, on_captured_event, answer);
    sse_parser_free(&parser);
    return rc == 0 && answer->is_done && !answer->has_error ? 0 : -1;
}

static bool is_admissible(const config_t *config, const assembled_t *answer, const char **reason)
{
    const cache_config_t *cache = &config->cache;
    bool is_listed = false;
    for (size_t i = 0; answer->finish_reason && i < cache->admit_finish_reason_count; i++)
        is_listed |= strcmp(answer->finish_reason, cache->admit_finish_reasons[i]) == 0;
    if (!is_listed)
        *reason = "finish_reason";
    else if (answer->has_tool_calls)
        *reason = "tool_calls";
    else if ((long)answer->content.length < cache->admit_min_length)
        *reason = "too_short";
    else
        return true;
    return false;
}

static json_t *stored_completion(request_t *request, cache_request_t *state);
static void admit_text(request_t *request, cache_request_t *state, char *text);

/* An embeddings answer as the client was sent it ({"object":"list","data":[{"embedding":…}],…}),
 * wrapped for the store; NULL when it is not one. */
static json_t *stored_embeddings(const buf_t *capture)
{
    json_t *root = capture->length > 0 ? json_loadb(capture->data, capture->length, 0, NULL) : NULL;
    const json_t *data = json_object_get(root, "data");
    bool is_complete = json_is_array(data) && json_array_size(data) > 0;
    size_t index;
    const json_t *item;
    json_array_foreach(data, index, item)
    {
        const json_t *embedding = json_object_get(item, "embedding");
        is_complete &= (json_is_array(embedding) && json_array_size(embedding) > 0) || json_is_string(embedding);
    }
    if (!is_complete) {
        json_decref(root);
        return NULL;
    }
    usage_t usage = {0};
    usage_from_openai(json_object_get(root, "usage"), &usage);
    const char *model = json_string_value(json_object_get(root, "model"));
    return json_pack("{s:o, s:s, s:{s:I, s:I}}", "embeddings", root, "model", model ? model : "", "usage",
                     "prompt_tokens", (json_int_t)usage.prompt_tokens, "completion_tokens", (json_int_t)0);
}

static void admit(request_t *request, cache_request_t *state)
{
    json_t *stored = NULL;
    if (request->endpoint == ENDPOINT_EMBEDDINGS) {
        if ((stored = stored_embeddings(&state->capture)) == NULL) {
            log_debug("cache: not admitting %s: not a complete embeddings list", request->id);
            cache_count(CACHE_COUNT_REJECTED);
            return;
        }
    } else {
        stored = stored_completion(request, state);
        if (stored == NULL)
            return;
    }
    char *text = json_dumps(stored, JSON_COMPACT);
    json_decref(stored);
    if (text == NULL) {
        cache_count(CACHE_COUNT_STORE_ERRORS);
        return;
    }
    admit_text(request, state, text);
}

/* A chat answer reduced to what a hit needs; NULL (counted) when it does not qualify. */
static json_t *stored_completion(request_t *request, cache_request_t *state)
{
    assembled_t answer = {.request = request};
    buf_init(&answer.content);
    const char *reason = "incomplete";
    if (assemble(request, &state->capture, &answer) != 0 || !is_admissible(request->config, &answer, &reason)) {
        log_debug("cache: not admitting %s: %s", request->id, reason);
        cache_count(CACHE_COUNT_REJECTED);
        buf_free(&answer.content);
        return NULL;
    }
    json_t *stored = json_pack("{s:s, s:s, s:s, s:s, s:{s:I, s:I}}", "content",
                               answer.content.data ? answer.content.data : "", "finish_reason", answer.finish_reason,
                               "model", answer.model[0] ? answer.model : (request->upstream_model ? request->upstream_model : ""),
                               "provider", request->provider ? request->provider->name : "", "usage",
                               "prompt_tokens", (json_int_t)answer.usage.prompt_tokens, "completion_tokens",
                               (json_int_t)answer.usage.completion_tokens);
    buf_free(&answer.content);
    if (stored == NULL)
        cache_count(CACHE_COUNT_STORE_ERRORS);
    return stored;
}

/* Stores text (malloc'd, taken) under the request's key, locally and in Redis. */
static void admit_text(request_t *request, cache_request_t *state, char *text)
{
    uint64_t now = clock_wall_ms();
    cache_record_t record = {
        .partition = state->vector ? state->partition : 0,
        .vector = state->is_semantic_enabled ? state->vector : NULL,
        .dim = state->dim,
        .model = request->route_model,
        .scope = state->scope,
        .created_ms = now,
        .exact_expires_ms = state->is_exact_enabled ? now + (uint64_t)state->exact_ttl_s * 1000u : 0,
        .semantic_expires_ms = state->vector ? now + (uint64_t)state->semantic_ttl_s * 1000u : 0,
        .answer = text,
        .answer_length = strlen(text),
    };
    memcpy(record.key, state->key, CACHE_KEY_LENGTH);
    cache_worker_t *worker_cache = cache_worker_of(request->worker);
    const cache_config_t *cache = &request->config->cache;
    cache_store_set_limits(worker_cache->store, cache->max_entries, cache->max_bytes);
    if (cache_store_put(worker_cache->store, &record, now) != 0) {
        cache_count(CACHE_COUNT_STORE_ERRORS);
    } else {
        cache_count(CACHE_COUNT_ADMITTED);
        if (worker_cache->redis != NULL && store_redis_put(worker_cache->redis, &record, now) != 0) {
            cache_count(CACHE_COUNT_STORE_ERRORS);
            log_warn("cache: redis unavailable, entry %s kept on this instance only", state->entry_id);
        }
    }
    free(text);
}

void cache_finish(request_t *request)
{
    cache_request_t *state = cache_request_of(request);
    if (state == NULL)
        return;
    if (state->embed_call != NULL) {
        embed_call_cancel(state->embed_call);
        state->embed_call = NULL;
    }
    if (state->is_capturing && !state->is_capture_broken && request->status == 200 && request->error_type == NULL &&
        !request->is_client_gone && request->cache_outcome != CACHE_OUTCOME_NONE &&
        request->cache_outcome != CACHE_OUTCOME_HIT)
        admit(request, state);
    state->is_capturing = false;
    buf_free(&state->capture);
}

/* ---- metrics and log ------------------------------------------------------- */

static uint64_t counter(cache_count_t kind) { return atomic_load_explicit(&counters[kind], memory_order_relaxed); }

void cache_metrics_render(buf_t *out)
{
    static const char *const outcomes[] = {"hit_exact", "hit_semantic", "miss", "skip", "error"};
    int rc = buf_append_str(out, "# HELP sluice_cache_lookups_total Cache lookups by outcome.\n"
                                 "# TYPE sluice_cache_lookups_total counter\n");
    for (int i = 0; i <= CACHE_COUNT_ERROR; i++)
        rc |= buf_printf(out, "sluice_cache_lookups_total{outcome=\"%s\"} %llu\n", outcomes[i],
                         (unsigned long long)counter((cache_count_t)i));
    rc |= buf_printf(out,
                     "# HELP sluice_cache_admissions_total Answers admitted into the cache, and refused.\n"
                     "# TYPE sluice_cache_admissions_total counter\n"
                     "sluice_cache_admissions_total{result=\"admitted\"} %llu\n"
                     "sluice_cache_admissions_total{result=\"rejected\"} %llu\n"
                     "# HELP sluice_cache_store_errors_total Failed cache store writes (memory or Redis).\n"
                     "# TYPE sluice_cache_store_errors_total counter\n"
                     "sluice_cache_store_errors_total %llu\n"
                     "# HELP sluice_cache_embed_errors_total Failed provider embeddings (served as misses).\n"
                     "# TYPE sluice_cache_embed_errors_total counter\n"
                     "sluice_cache_embed_errors_total %llu\n"
                     "# HELP sluice_cache_saved_usd_total Spend avoided by cache hits, at the pricing table.\n"
                     "# TYPE sluice_cache_saved_usd_total counter\n"
                     "sluice_cache_saved_usd_total %.9f\n"
                     "# HELP sluice_cache_lookup_seconds Time spent looking up (embedding included).\n"
                     "# TYPE sluice_cache_lookup_seconds summary\n"
                     "sluice_cache_lookup_seconds_sum %.9f\n"
                     "sluice_cache_lookup_seconds_count %llu\n",
                     (unsigned long long)counter(CACHE_COUNT_ADMITTED), (unsigned long long)counter(CACHE_COUNT_REJECTED),
                     (unsigned long long)counter(CACHE_COUNT_STORE_ERRORS),
                     (unsigned long long)counter(CACHE_COUNT_EMBED_ERRORS),
                     (double)atomic_load(&saved_nano_usd) / 1e9, (double)atomic_load(&lookup_us_sum) / 1e6,
                     (unsigned long long)atomic_load(&lookup_count));
    cache_store_t *store = cache_store_shared_acquire();
    if (store != NULL) {
        cache_stats_t stats;
        cache_store_stats(store, &stats);
        rc |= buf_printf(out,
                         "# HELP sluice_cache_entries Entries in this instance's cache.\n"
                         "# TYPE sluice_cache_entries gauge\nsluice_cache_entries %zu\n"
                         "# HELP sluice_cache_bytes Approximate bytes held by the cache.\n"
                         "# TYPE sluice_cache_bytes gauge\nsluice_cache_bytes %zu\n"
                         "# HELP sluice_cache_evictions_total Entries evicted by the LRU bounds.\n"
                         "# TYPE sluice_cache_evictions_total counter\nsluice_cache_evictions_total %llu\n",
                         stats.entries, stats.bytes, (unsigned long long)stats.evictions);
        cache_store_shared_release();
    }
    (void)rc; /* a failed append leaves a short page; the scrape is retried */
}

static void log_string(buf_t *line, const char *name, const char *value)
{
    if (value == NULL)
        return;
    buf_printf(line, ",\"%s\":\"", name);
    buf_append_json_escaped(line, value, strlen(value));
    buf_append_char(line, '"');
}

void cache_log_fields(const request_t *request, buf_t *line)
{
    const cache_request_t *state = cache_request_of(request);
    if (state == NULL) {
        if (request->cache_outcome != CACHE_OUTCOME_NONE)
            log_string(line, "cache", request_cache_outcome_name(request->cache_outcome));
        return;
    }
    log_string(line, "cache", state->outcome);
    log_string(line, "cache_layer", state->layer);
    log_string(line, "cache_reason", state->reason);
    log_string(line, "cache_entry", state->entry_id);
    if (state->layer != NULL && strcmp(state->layer, "semantic") == 0)
        buf_printf(line, ",\"cache_similarity\":%.4f", state->similarity);
    if (state->lookup_us)
        buf_printf(line, ",\"cache_lookup_ms\":%.3f", (double)state->lookup_us / 1e3);
    if (state->is_saved_priced)
        buf_printf(line, ",\"cache_saved_usd\":%.8f", state->saved_usd);
}

/* ---- per worker ------------------------------------------------------------ */

cache_request_t *cache_request_of(const request_t *request) { return request->stage_context[STAGE_SLOT_CACHE]; }

cache_worker_t *cache_worker_of(const worker_t *worker) { return worker->stage_state[STAGE_SLOT_CACHE]; }

int cache_worker_init(worker_t *worker, const config_t *config)
{
    cache_worker_t *cache = calloc(1, sizeof *cache);
    if (cache == NULL)
        return -1;
    worker->stage_state[STAGE_SLOT_CACHE] = cache;
    if ((cache->store = cache_store_shared_acquire()) == NULL)
        return -1;
    int rc = 0;
    cache_store_set_limits(cache->store, config->cache.max_entries ? config->cache.max_entries : 100000,
                           config->cache.max_bytes ? config->cache.max_bytes : 256u << 20);
    if (config->cache.is_enabled && config->cache.uses_redis) {
        cache->redis = store_redis_new(worker, &config->redis, cache->store, worker->index == 0);
        rc = cache->redis ? 0 : -1;
    }
    return rc;
}

void cache_worker_free(worker_t *worker)
{
    cache_worker_t *cache = cache_worker_of(worker);
    if (cache == NULL)
        return;
    store_redis_free(cache->redis);
    if (cache->store != NULL)
        cache_store_shared_release();
    free(cache);
    worker->stage_state[STAGE_SLOT_CACHE] = NULL;
}
