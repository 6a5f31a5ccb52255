/* bedrock.c — adapter for AWS Bedrock's Converse API (type bedrock).
 *
 * Chat requests become Converse calls: system messages move to the top-level
 * "system" list, content parts become content blocks, tool calls and tool
 * results become toolUse/toolResult blocks, consecutive turns of one role are
 * merged (tool results join the user turn) and empty turns are dropped,
 * because Bedrock rejects them. Embeddings go to a Titan model's /invoke.
 * Calls are signed with SigV4 (sigv4.c), or carry a Bedrock API key as a
 * bearer token.
 *
 * ConverseStream answers in binary event-stream frames (eventstream.c); each
 * frame's JSON becomes OpenAI chunks through the shared chunk writer. Bedrock
 * numbers content blocks (text included) while OpenAI numbers tool calls only,
 * so the stream state maps block index to tool number. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sluice/eventstream.h"
#include "sluice/log.h"
#include "sluice/openai_chunk.h"
#include "sluice/provider.h"
#include "sluice/provider_util.h"
#include "sluice/sigv4.h"
#include "sluice/translate.h"

enum { MAX_FRAME_BYTES = 16 << 20 };

/* ---- the request ---------------------------------------------------------- */

/* Owner: bedrock_build_call (on its stack). */
typedef struct converse_builder {
    request_t *request;
    bool has_tool_blocks; /* history holds toolUse/toolResult: toolConfig must be sent */
    translate_messages_t messages;
} converse_builder_t;

static int append_text_block(json_t *blocks, const char *text, size_t length)
{
    return translate_append_new(blocks, json_pack("{s:s%}", "text", text, length));
}

/* data:image/png;base64,AAAA → {image:{format:"png", source:{bytes:"AAAA"}}} */
static int append_image_block(translate_messages_t *messages, json_t *blocks, const char *url)
{
    static const char prefix[] = "data:image/";
    if (url == NULL || strncmp(url, prefix, sizeof prefix - 1) != 0)
        return translate_fail(messages, "messages",
                              "bedrock accepts images only as data: URLs (data:image/...;base64,...)");
    const char *format = url + sizeof prefix - 1;
    const char *marker = strstr(format, ";base64,");
    if (marker == NULL || marker == format)
        return translate_fail(messages, "messages", "bedrock accepts images only as base64 data: URLs");
    char name[16];
    size_t length = (size_t)(marker - format);
    if (length >= sizeof name)
        return translate_fail(messages, "messages", "unsupported image type for bedrock");
    memcpy(name, format, length);
    name[length] = '\0';
    if (strcmp(name, "jpg") == 0)
        strcpy(name, "jpeg");
    if (strcmp(name, "png") != 0 && strcmp(name, "jpeg") != 0 && strcmp(name, "gif") != 0 && strcmp(name, "webp") != 0)
        return translate_fail(messages, "messages", "bedrock accepts png, jpeg, gif and webp images");
    json_t *block = json_pack("{s:{s:s, s:{s:s}}}", "image", "format", name, "source", "bytes", marker + 8);
    return translate_append_new(blocks, block);
}

static int append_tool_use(translate_messages_t *messages, json_t *blocks, const char *id, const char *name,
                           json_t *input)
{
    converse_builder_t *builder = messages->context;
    builder->has_tool_blocks = true;
    return translate_append_new(blocks, json_pack("{s:{s:s, s:s, s:o}}", "toolUse", "toolUseId", id, "name", name,
                                                  "input", input));
}

static int append_tool_result(translate_messages_t *messages, json_t *blocks, const json_t *message)
{
    converse_builder_t *builder = messages->context;
    const char *id = json_string_value(json_object_get(message, "tool_call_id"));
    if (id == NULL)
        return translate_fail(messages, "messages", "tool messages need a tool_call_id");
    json_t *content = json_array();
    if (content == NULL || translate_content(messages, content, json_object_get(message, "content"), false) != 0) {
        json_decref(content);
        return -1;
    }
    if (json_array_size(content) == 0) /* an empty result still needs one non-blank block */
        json_array_append_new(content, json_pack("{s:s}", "text", "(empty)"));
    builder->has_tool_blocks = true;
    return translate_append_new(blocks, json_pack("{s:{s:s, s:o, s:s}}", "toolResult", "toolUseId", id, "content",
                                                  content, "status", "success"));
}

/* Converse content blocks; turns merge (tool results join the user turn) and
 * empty ones are dropped, because Bedrock rejects both. */
static const translate_part_writer_t block_writer = {
    .append_text = append_text_block,
    .append_image = append_image_block,
    .append_tool_call = append_tool_use,
    .append_tool_result = append_tool_result,
};

static json_t *inference_config(const json_t *body)
{
    json_t *config = json_object();
    const json_t *max_tokens = json_object_get(body, "max_completion_tokens");
    if (!json_is_integer(max_tokens))
        max_tokens = json_object_get(body, "max_tokens");
    if (json_is_integer(max_tokens))
        json_object_set(config, "maxTokens", (json_t *)max_tokens);
    if (json_is_number(json_object_get(body, "temperature")))
        json_object_set(config, "temperature", json_object_get(body, "temperature"));
    if (json_is_number(json_object_get(body, "top_p")))
        json_object_set(config, "topP", json_object_get(body, "top_p"));
    json_t *stop = provider_stop_sequences(body);
    if (stop != NULL)
        json_object_set_new(config, "stopSequences", stop);
    return config;
}

/* tools + tool_choice → toolConfig, or NULL when none is to be sent. */
static int tool_config(converse_builder_t *builder, const json_t *body, json_t **out)
{
    *out = NULL;
    const json_t *tools = json_object_get(body, "tools");
    const json_t *choice = json_object_get(body, "tool_choice");
    if (!json_is_array(tools) || json_array_size(tools) == 0)
        return 0;
    bool is_none = json_is_string(choice) && strcmp(json_string_value(choice), "none") == 0;
    if (is_none && !builder->has_tool_blocks)
        return 0; /* Bedrock has no "none": leave the tools out */
    json_t *specs = json_array();
    size_t i;
    const json_t *tool;
    json_array_foreach(tools, i, tool) {
        const json_t *function = json_object_get(tool, "function");
        const char *name = json_string_value(json_object_get(function, "name"));
        if (name == NULL) {
            json_decref(specs);
            return translate_fail(&builder->messages, "tools", "bedrock supports function tools only; each needs a name");
        }
        const json_t *parameters = json_object_get(function, "parameters");
        json_t *schema = json_is_object(parameters) ? json_incref((json_t *)parameters)
                                                    : json_pack("{s:s, s:{}}", "type", "object", "properties");
        json_t *spec = json_pack("{s:s, s:{s:o}}", "name", name, "inputSchema", "json", schema);
        const char *description = json_string_value(json_object_get(function, "description"));
        if (description != NULL && description[0] != '\0')
            json_object_set_new(spec, "description", json_string(description));
        json_array_append_new(specs, json_pack("{s:o}", "toolSpec", spec));
    }
    json_t *config = json_pack("{s:o}", "tools", specs);
    if (json_is_string(choice) && strcmp(json_string_value(choice), "required") == 0) {
        json_object_set_new(config, "toolChoice", json_pack("{s:{}}", "any"));
    } else if (json_is_string(choice) && strcmp(json_string_value(choice), "auto") == 0) {
        json_object_set_new(config, "toolChoice", json_pack("{s:{}}", "auto"));
    } else if (json_is_object(choice)) {
        const char *name = json_string_value(json_object_get(json_object_get(choice, "function"), "name"));
        if (name == NULL) {
            json_decref(config);
            return translate_fail(&builder->messages, "tool_choice", "tool_choice must name a function");
        }
        json_object_set_new(config, "toolChoice", json_pack("{s:{s:s}}", "tool", "name", name));
    }
    *out = config;
    return 0;
}

/* Builds the Converse body from the OpenAI chat body; on a client error sets
 * builder->messages.error and returns NULL (error empty: out of memory). */
static json_t *converse_body(converse_builder_t *builder)
{
    const json_t *body = builder->request->body;
    const json_t *messages = json_object_get(body, "messages");
    const json_t *n = json_object_get(body, "n");
    if (json_is_integer(n) && json_integer_value(n) > 1) {
        translate_fail(&builder->messages, "n", "bedrock returns one choice: n must be 1");
        return NULL;
    }
    translate_messages_t *turns = &builder->messages;
    if (translate_messages_convert(turns, messages) != 0)
        return NULL;
    json_t *converse = json_pack("{s:O}", "messages", turns->turns);
    if (json_array_size(turns->system) > 0)
        json_object_set(converse, "system", turns->system);
    translate_messages_release(turns);
    json_t *config = inference_config(body);
    if (json_object_size(config) > 0)
        json_object_set_new(converse, "inferenceConfig", config);
    else
        json_decref(config);
    json_t *tools = NULL;
    if (tool_config(builder, body, &tools) != 0) {
        json_decref(converse);
        return NULL;
    }
    if (tools != NULL)
        json_object_set_new(converse, "toolConfig", tools);
    return converse;
}

/* A Titan embeddings body: one input only. */
static json_t *embeddings_body(converse_builder_t *builder)
{
    const json_t *body = builder->request->body;
    const json_t *input = json_object_get(body, "input");
    if (json_is_array(input) && json_array_size(input) == 1)
        input = json_array_get(input, 0);
    if (json_is_array(input)) {
        translate_fail(&builder->messages, "input", "bedrock embeddings take one input per request");
        return NULL;
    }
    if (!json_is_string(input)) {
        translate_fail(&builder->messages, "input", "bedrock embeddings take text input (a string)");
        return NULL;
    }
    json_t *titan = json_pack("{s:O}", "inputText", input);
    const json_t *dimensions = json_object_get(body, "dimensions");
    if (json_is_integer(dimensions))
        json_object_set(titan, "dimensions", (json_t *)dimensions);
    return titan;
}

/* base_url "https://host[:port][/prefix]" → host and prefix (arena). */
static int split_base_url(request_t *request, const char *base_url, const char **host, const char **prefix)
{
    const char *start = strstr(base_url, "://");
    if (start == NULL)
        return -1;
    start += 3;
    const char *slash = strchr(start, '/');
    size_t length = slash ? (size_t)(slash - start) : strlen(start);
    *host = arena_strndup(&request->arena, start, length);
    *prefix = slash ? slash : "";
    return *host && length > 0 ? 0 : -1;
}

static struct curl_slist *append_header(struct curl_slist *headers, buf_t *line, const char *format, const char *name,
                                        const char *value)
{
    buf_clear(line);
    if (headers == NULL || buf_printf(line, format, name, value) != 0) {
        curl_slist_free_all(headers);
        return NULL;
    }
    struct curl_slist *grown = curl_slist_append(headers, line->data);
    explicit_bzero(line->data, line->length); /* curl copied it; it may hold a credential */
    if (grown == NULL)
        curl_slist_free_all(headers);
    return grown;
}

/* Host, x-amz-* and Authorization: a SigV4 signature, or the API key as a bearer token. */
static struct curl_slist *append_auth_headers(request_t *request, struct curl_slist *headers, const char *host,
                                              const char *path, const provider_call_t *call)
{
    const provider_config_t *provider = request->provider;
    buf_t line;
    buf_init(&line);
    headers = append_header(headers, &line, "%s: %s", "Host", host);
    if (provider->api_key != NULL) {
        headers = append_header(headers, &line, "%s: Bearer %s", "Authorization", provider->api_key);
        buf_free(&line);
        return headers;
    }
    char amz_date[SIGV4_DATE_LENGTH], payload_sha256[SIGV4_HEX_LENGTH];
    sigv4_amz_date(time(NULL), amz_date);
    if (sigv4_payload_hash(call->body, call->body_length, payload_sha256) != 0) {
        curl_slist_free_all(headers);
        buf_free(&line);
        return NULL;
    }
    sigv4_header_t signed_headers[4] = {
        {"host", host}, {"x-amz-date", amz_date}, {"x-amz-content-sha256", payload_sha256},
        {"x-amz-security-token", provider->session_token},
    };
    sigv4_request_t signing = {
        .method = "POST",
        .path = path,
        .headers = signed_headers,
        .header_count = provider->session_token ? 4 : 3,
        .payload_sha256 = payload_sha256,
        .region = provider->region ? provider->region : "us-east-1",
        .service = "bedrock",
        .amz_date = amz_date,
    };
    sigv4_credentials_t credentials = {provider->access_key_id, provider->secret_access_key};
    buf_t authorization;
    buf_init(&authorization);
    if (sigv4_sign(&signing, &credentials, &authorization) != 0) {
        curl_slist_free_all(headers);
        headers = NULL;
    }
    headers = append_header(headers, &line, "%s: %s", "X-Amz-Date", amz_date);
    headers = append_header(headers, &line, "%s: %s", "X-Amz-Content-Sha256", payload_sha256);
    if (provider->session_token != NULL)
        headers = append_header(headers, &line, "%s: %s", "X-Amz-Security-Token", provider->session_token);
    headers = append_header(headers, &line, "%s: %s", "Authorization", authorization.data ? authorization.data : "");
    buf_free(&authorization);
    buf_free(&line);
    return headers;
}

static int bedrock_build_call(request_t *request, provider_call_t *call)
{
    const provider_config_t *provider = request->provider;
    converse_builder_t builder = {.request = request,
                                  .messages = {.provider = "bedrock",
                                               .assistant_role = "assistant",
                                               .parts_key = "content",
                                               .is_any_json_input = true,
                                               .writer = &block_writer}};
    builder.messages.context = &builder;
    const char *action;
    json_t *body;
    switch (request->endpoint) {
    case ENDPOINT_CHAT_COMPLETIONS:
        action = request->is_stream ? "converse-stream" : "converse";
        body = converse_body(&builder);
        break;
    case ENDPOINT_EMBEDDINGS:
        action = "invoke";
        body = embeddings_body(&builder);
        break;
    default:
        request_reply_error(request, 400, "invalid_request_error", "unsupported_endpoint", NULL,
                            "provider %s (bedrock) offers chat completions and embeddings only", provider->name);
        return PROVIDER_CALL_REJECTED;
    }
    if (body == NULL && builder.messages.error[0] != '\0') {
        request_reply_error(request, 400, "invalid_request_error", NULL, NULL, "%s", builder.messages.error);
        return PROVIDER_CALL_REJECTED;
    }
    call->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (call->body == NULL)
        return -1;
    call->body_length = strlen(call->body);

    /* The model id is one path segment, encoded once on the wire. */
    const char *host, *prefix;
    buf_t tail;
    buf_init(&tail);
    int rc = split_base_url(request, provider->base_url, &host, &prefix);
    rc |= buf_append_str(&tail, "/model/");
    rc |= sigv4_uri_encode(&tail, request->upstream_model, strlen(request->upstream_model), false);
    rc |= buf_printf(&tail, "/%s", action);
    call->url = rc == 0 ? arena_sprintf(&request->arena, "%s%s", provider->base_url, tail.data) : NULL;
    const char *path = rc == 0 ? arena_sprintf(&request->arena, "%s%s", prefix, tail.data) : NULL;
    buf_free(&tail);
    if (call->url == NULL || path == NULL)
        return -1;

    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (headers != NULL)
        headers = curl_slist_append(headers, request->is_stream && request->endpoint == ENDPOINT_CHAT_COMPLETIONS
                                                 ? "Accept: application/vnd.amazon.eventstream"
                                                 : "Accept: application/json");
    if (headers != NULL)
        headers = curl_slist_append(headers, "Expect:");
    headers = headers ? append_auth_headers(request, headers, host, path, call) : NULL;
    for (size_t i = 0; headers != NULL && i < provider->extra_header_count; i++)
        headers = curl_slist_append(headers, provider->extra_headers[i]);
    call->headers = headers;
    return call->url && headers ? 0 : -1;
}

/* ---- complete responses ----------------------------------------------------- */

/* Bedrock's inputTokens leaves out cache reads and writes; OpenAI's prompt
 * count includes them (cached_tokens is a part of it). */
static void read_usage(const json_t *usage, usage_t *out)
{
    if (!json_is_object(usage))
        return;
    long cache_read = provider_integer_member(usage, "cacheReadInputTokens");
    long cache_write = provider_integer_member(usage, "cacheWriteInputTokens");
    out->is_known = true;
    out->prompt_tokens = provider_integer_member(usage, "inputTokens") + cache_read + cache_write;
    out->completion_tokens = provider_integer_member(usage, "outputTokens");
    out->cached_tokens = cache_read;
    out->reasoning_tokens = 0;
}

static const char *finish_reason(const char *stop_reason, bool has_tool_calls)
{
    if (stop_reason == NULL)
        return has_tool_calls ? "tool_calls" : "stop";
    if (strcmp(stop_reason, "tool_use") == 0)
        return "tool_calls";
    if (strcmp(stop_reason, "max_tokens") == 0 || strcmp(stop_reason, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(stop_reason, "guardrail_intervened") == 0 || strcmp(stop_reason, "content_filtered") == 0)
        return "content_filter";
    return "stop"; /* end_turn, stop_sequence and anything new */
}

static json_t *chat_completion(request_t *request, const json_t *reply)
{
    const json_t *content = json_object_get(json_object_get(json_object_get(reply, "output"), "message"), "content");
    if (!json_is_array(content))
        return NULL;
    buf_t text;
    buf_init(&text);
    json_t *tool_calls = json_array();
    size_t i;
    const json_t *block;
    json_array_foreach(content, i, block) {
        const json_t *piece = json_object_get(block, "text");
        const json_t *tool = json_object_get(block, "toolUse");
        if (json_is_string(piece)) {
            buf_append(&text, json_string_value(piece), json_string_length(piece));
        } else if (json_is_object(tool)) {
            json_array_append_new(tool_calls, translate_tool_call(json_string_value(json_object_get(tool, "toolUseId")),
                                                                  json_string_value(json_object_get(tool, "name")),
                                                                  json_object_get(tool, "input")));
        }
    }
    read_usage(json_object_get(reply, "usage"), &request->usage);
    bool has_tools = json_array_size(tool_calls) > 0;
    json_t *message = translate_assistant_message(&text, tool_calls);
    buf_free(&text);
    const char *reason = finish_reason(json_string_value(json_object_get(reply, "stopReason")), has_tools);
    json_t *choice = message ? translate_choice(0, message, reason) : NULL;
    const char *id = arena_sprintf(&request->arena, "chatcmpl-%s", request->id);
    if (choice == NULL || id == NULL) {
        json_decref(choice);
        return NULL;
    }
    return translate_chat_completion(request, id, json_pack("[o]", choice));
}

/* A Titan embedding: one vector per request. */
static json_t *embeddings_list(request_t *request, const json_t *reply)
{
    const json_t *values = json_object_get(reply, "embedding");
    if (!json_is_array(values))
        return NULL;
    long tokens = provider_integer_member(reply, "inputTextTokenCount");
    json_t *embedding = translate_embedding(request, values, 0);
    return embedding ? translate_embeddings_list(request, json_pack("[o]", embedding), tokens) : NULL;
}

static json_t *translate_answer(request_t *request, const json_t *reply)
{
    return request->endpoint == ENDPOINT_EMBEDDINGS ? embeddings_list(request, reply) : chat_completion(request, reply);
}

static int bedrock_translate_response(request_t *request, const char *body, size_t length, buf_t *out,
                                      bool *is_unchanged)
{
    *is_unchanged = false;
    return translate_reply(request, body, length, out, translate_answer);
}

static const char *error_type_for(long status)
{
    switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

/* The OpenAI error type for a Bedrock error kind ("ThrottlingException", or
 * "throttlingException" as stream exception frames spell it); NULL when the
 * kind is unknown. */
static const char *kind_error_type(const char *kind, size_t length)
{
    static const struct {
        const char *kind, *type;
    } known[] = {
        {"ThrottlingException", "rate_limit_error"},
        {"ServiceQuotaExceededException", "rate_limit_error"},
        {"ValidationException", "invalid_request_error"},
        {"AccessDeniedException", "permission_error"},
        {"ResourceNotFoundException", "not_found_error"},
        {"ModelTimeoutException", "api_error"},
        {"ModelErrorException", "api_error"},
        {"ModelNotReadyException", "api_error"},
        {"ModelStreamErrorException", "api_error"},
        {"ServiceUnavailableException", "api_error"},
        {"InternalServerException", "api_error"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].kind) == length && strncasecmp(known[i].kind, kind, length) == 0)
            return known[i].type;
    return NULL;
}

/* Bedrock names the error kind in the x-amzn-errortype header
 * ("ThrottlingException:http://internal.amazon.com/coral/..."): the text
 * before ':' becomes error.code and, when known, decides error.type. Some
 * errors carry it in the body's __type ("...#ValidationException") instead. */
static void bedrock_translate_error(request_t *request, long status, const char *body, size_t length,
                                    provider_error_t *error)
{
    error->status = (int)status;
    error->type = error_type_for(status);
    error->code = NULL;
    error->param = NULL;
    error->message = NULL;
    json_t *reply = body ? json_loadb(body, length, 0, NULL) : NULL;
    const char *message = json_string_value(json_object_get(reply, "message"));
    if (message == NULL)
        message = json_string_value(json_object_get(reply, "Message"));
    const char *kind = error->reply_headers ? error->reply_headers->error_type : NULL;
    size_t kind_length = kind ? strcspn(kind, ":") : 0;
    if (kind_length == 0) {
        kind = json_string_value(json_object_get(reply, "__type"));
        if (kind != NULL && strrchr(kind, '#') != NULL)
            kind = strrchr(kind, '#') + 1;
        kind_length = kind ? strcspn(kind, ":") : 0;
    }
    if (kind_length > 0) {
        error->code = arena_strndup(&request->arena, kind, kind_length);
        const char *type = kind_error_type(kind, kind_length);
        if (type != NULL)
            error->type = type;
    }
    if (message != NULL)
        error->message = arena_sprintf(&request->arena, "bedrock: %s", message);
    json_decref(reply);
    if (error->message == NULL)
        error->message = arena_sprintf(&request->arena, "upstream provider %s returned HTTP %ld",
                                       request->provider->name, status);
}

/* ---- streams ------------------------------------------------------------------ */

/* Owner: the upstream transfer (stream_state_size bytes, zeroed). */
typedef struct bedrock_stream {
    eventstream_decoder_t decoder;
    bool is_decoder_ready;
    openai_chunk_writer_t writer;
    provider_tool_map_t tools; /* contentBlockIndex → tool number */
    bool has_stop;
    bool is_over; /* DONE or ERROR was returned: later bytes are ignored */
    /* for the frame callback, set on each feed */
    request_t *request;
    buf_t *out;
    int result;
} bedrock_stream_t;

static int on_block_start(bedrock_stream_t *stream, const json_t *event)
{
    const json_t *tool = json_object_get(json_object_get(event, "start"), "toolUse");
    if (!json_is_object(tool))
        return 0;
    int index = provider_tool_map_add(&stream->tools, provider_integer_member(event, "contentBlockIndex"));
    const char *id = json_string_value(json_object_get(tool, "toolUseId"));
    const char *name = json_string_value(json_object_get(tool, "name"));
    if (index < 0 || id == NULL || name == NULL)
        return -1;
    return openai_chunk_tool_start(&stream->writer, stream->request, index, id, name, stream->out);
}

static int on_block_delta(bedrock_stream_t *stream, const json_t *event)
{
    const json_t *delta = json_object_get(event, "delta");
    const json_t *text = json_object_get(delta, "text");
    if (json_is_string(text))
        return openai_chunk_text(&stream->writer, stream->request, json_string_value(text), json_string_length(text),
                                 stream->out);
    const json_t *input = json_object_get(json_object_get(delta, "toolUse"), "input");
    if (json_is_string(input)) {
        int index = provider_tool_map_get(&stream->tools, provider_integer_member(event, "contentBlockIndex"));
        if (index < 0)
            return -1; /* tool input for a block that never started as a tool */
        return openai_chunk_tool_arguments(&stream->writer, stream->request, index, json_string_value(input),
                                           json_string_length(input), stream->out);
    }
    return 0; /* reasoningContent and kinds OpenAI chat has no place for */
}

static int on_event(bedrock_stream_t *stream, const char *type, size_t type_length, const json_t *event)
{
#define IS(name) (type_length == sizeof(name) - 1 && memcmp(type, name, type_length) == 0)
    request_t *request = stream->request;
    if (IS("messageStart"))
        return provider_event_result(openai_chunk_text(&stream->writer, request, "", 0, stream->out));
    if (IS("contentBlockStart"))
        return provider_event_result(on_block_start(stream, event));
    if (IS("contentBlockDelta"))
        return provider_event_result(on_block_delta(stream, event));
    if (IS("messageStop")) {
        stream->has_stop = true;
        const char *reason = finish_reason(json_string_value(json_object_get(event, "stopReason")),
                                           stream->tools.tool_count > 0);
        return provider_event_result(openai_chunk_finish(&stream->writer, request, reason, stream->out));
    }
    if (IS("metadata")) {
        read_usage(json_object_get(event, "usage"), &request->usage);
        if (openai_chunk_finish(&stream->writer, request, stream->tools.tool_count ? "tool_calls" : "stop", stream->out) != 0 ||
            openai_chunk_end(&stream->writer, request, stream->out) != 0)
            return PROVIDER_EVENT_FAILED;
        return PROVIDER_EVENT_DONE;
    }
    return PROVIDER_EVENT_OK; /* contentBlockStop and anything new */
#undef IS
}

/* An exception or error frame → one OpenAI error event. */
static int on_exception(bedrock_stream_t *stream, const eventstream_message_t *message)
{
    json_t *payload = json_loadb(message->payload, message->payload_length, 0, NULL);
    const char *text = json_string_value(json_object_get(payload, "message"));
    eventstream_string_t kind = message->exception_type.data ? message->exception_type : message->error_code;
    char detail[1024];
    if (text == NULL && message->error_message.data != NULL)
        snprintf(detail, sizeof detail, "bedrock %.*s: %.*s", (int)kind.length, kind.data ? kind.data : "",
                 (int)message->error_message.length, message->error_message.data);
    else
        snprintf(detail, sizeof detail, "bedrock %.*s: %s", (int)kind.length, kind.data ? kind.data : "error",
                 text ? text : "the model stream failed");
    json_decref(payload);
    log_warn("bedrock stream for request %s ended with %.*s", stream->request->id, (int)kind.length,
             kind.data ? kind.data : "an error");
    const char *type = kind.data ? kind_error_type(kind.data, kind.length) : NULL;
    return provider_event_error(stream->out, type ? type : "api_error", detail);
}

static int on_frame(void *argument, const eventstream_message_t *message)
{
    bedrock_stream_t *stream = argument;
    eventstream_string_t kind = message->message_type;
    if (kind.data != NULL && !(kind.length == 5 && memcmp(kind.data, "event", 5) == 0)) {
        stream->result = on_exception(stream, message);
        return 1;
    }
    json_t *event = json_loadb(message->payload, message->payload_length, 0, NULL);
    if (!json_is_object(event)) {
        json_decref(event);
        stream->result = PROVIDER_EVENT_FAILED;
        return 1;
    }
    stream->result = on_event(stream, message->event_type.data ? message->event_type.data : "",
                              message->event_type.length, event);
    json_decref(event);
    return stream->result == PROVIDER_EVENT_OK ? 0 : 1;
}

static int bedrock_feed_stream(request_t *request, void *state, const char *bytes, size_t length, buf_t *out)
{
    bedrock_stream_t *stream = state;
    if (stream->is_over)
        return PROVIDER_EVENT_OK;
    if (!stream->is_decoder_ready) {
        eventstream_decoder_init(&stream->decoder, MAX_FRAME_BYTES);
        stream->is_decoder_ready = true;
    }
    stream->request = request;
    stream->out = out;
    stream->result = PROVIDER_EVENT_OK;
    int rc = eventstream_decoder_feed(&stream->decoder, bytes, length, on_frame, stream);
    if (rc < 0) {
        log_warn("bedrock stream for request %s is not a valid event stream (error %d)", request->id, rc);
        return PROVIDER_EVENT_FAILED;
    }
    if (stream->result != PROVIDER_EVENT_OK)
        stream->is_over = true;
    return stream->result;
}

/* The upstream closed without a metadata frame: finish if the message had
 * ended, otherwise tell the client the answer was cut short. */
static int bedrock_finish_stream(request_t *request, void *state, buf_t *out)
{
    bedrock_stream_t *stream = state;
    if (stream->is_over)
        return PROVIDER_EVENT_OK;
    stream->is_over = true;
    bool is_cut = !stream->has_stop || (stream->is_decoder_ready && eventstream_decoder_pending(&stream->decoder) > 0);
    if (is_cut)
        return provider_event_error(out, "upstream_error", "bedrock stream ended before the message was complete");
    return openai_chunk_end(&stream->writer, request, out) == 0 ? PROVIDER_EVENT_DONE : PROVIDER_EVENT_FAILED;
}

static void bedrock_free_state(void *state)
{
    bedrock_stream_t *stream = state;
    if (stream->is_decoder_ready)
        eventstream_decoder_free(&stream->decoder);
    provider_tool_map_free(&stream->tools);
}

const provider_adapter_t provider_bedrock = {
    .name = "bedrock",
    .build_call = bedrock_build_call,
    .stream_state_size = sizeof(bedrock_stream_t),
    .feed_stream = bedrock_feed_stream,
    .finish_stream = bedrock_finish_stream,
    .free_state = bedrock_free_state,
    .translate_response = bedrock_translate_response,
    .translate_error = bedrock_translate_error,
};
