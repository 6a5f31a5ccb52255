/* anthropic.c — adapter for Anthropic's Messages API (type anthropic).
 *
 * Requests: system and developer messages are lifted to the top-level
 * "system"; every other turn becomes content blocks (text, image from a
 * data: URL as a base64 source or from an http(s) URL as a url source,
 * tool_use from an assistant's tool_calls, tool_result from a role "tool"
 * message, which Anthropic wants inside a user turn); consecutive turns of
 * one role are merged, because the API requires the roles to alternate and
 * one turn's tool results to sit in one user message. max_tokens is required
 * upstream: the client's value, else the provider's default_max_tokens.
 *
 * Answers: content blocks become the message's text and tool_calls;
 * stop_reason becomes finish_reason; usage counts cache reads and writes in
 * the prompt, as OpenAI's prompt_tokens does (Anthropic's input_tokens
 * leaves them out).
 *
 * Streams: each named event is translated as it arrives through the shared
 * OpenAI chunk writer. Anthropic numbers content blocks (text included) and
 * OpenAI numbers tool calls only, so a map from block index to tool number
 * is kept. message_start carries the prompt usage, message_delta the
 * cumulative output count; message_stop ends the OpenAI stream. An "error"
 * event (e.g. overloaded_error mid-stream) becomes an OpenAI error event. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/log.h"
#include "sluice/openai_chunk.h"
#include "sluice/provider.h"
#include "sluice/provider_util.h"

/* ---- the request ---------------------------------------------------------- */

typedef struct messages_builder {
    request_t *request;
    json_t *messages;
    json_t *system; /* text blocks */
    char error[256];
    char param[64];
} messages_builder_t;

static int builder_fail(messages_builder_t *builder, const char *param, const char *message)
{
    snprintf(builder->error, sizeof builder->error, "%s", message);
    snprintf(builder->param, sizeof builder->param, "%s", param ? param : "");
    return -1;
}

static int append_new(json_t *array, json_t *item)
{
    return item != NULL && json_array_append_new(array, item) == 0 ? 0 : -1;
}

static int append_text_block(json_t *blocks, const char *text, size_t length)
{
    if (length == 0)
        return 0; /* Anthropic rejects empty text blocks */
    return append_new(blocks, json_pack("{s:s, s:s%}", "type", "text", "text", text, length));
}

static int append_image_block(messages_builder_t *builder, json_t *blocks, const char *url)
{
    const char *mime, *data;
    if (url != NULL && strncmp(url, "data:", 5) == 0) {
        if (provider_parse_data_url(builder->request, url, &mime, &data) != 0)
            return builder_fail(builder, "messages", "image data: URLs must be base64 (data:image/png;base64,...)");
        return append_new(blocks, json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "image", "source", "type", "base64",
                                            "media_type", mime, "data", data));
    }
    if (url != NULL && (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0))
        return append_new(blocks, json_pack("{s:s, s:{s:s, s:s}}", "type", "image", "source", "type", "url", "url", url));
    return builder_fail(builder, "messages", "image_url must be a data: URL or an http(s) URL");
}

/* An OpenAI content value (string, parts or null) → content blocks. */
static int append_content(messages_builder_t *builder, json_t *blocks, const json_t *content, bool allow_images)
{
    if (content == NULL || json_is_null(content))
        return 0;
    if (json_is_string(content))
        return append_text_block(blocks, json_string_value(content), json_string_length(content));
    if (!json_is_array(content))
        return builder_fail(builder, "messages", "message content must be a string or an array of parts");
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        const json_t *text = json_object_get(part, "text");
        int rc;
        if (type != NULL && strcmp(type, "text") == 0 && json_is_string(text)) {
            rc = append_text_block(blocks, json_string_value(text), json_string_length(text));
        } else if (type != NULL && strcmp(type, "image_url") == 0 && allow_images) {
            rc = append_image_block(builder, blocks, provider_image_url(part));
        } else {
            char message[160];
            snprintf(message, sizeof message, "content part type '%s' is not supported by anthropic here",
                     type ? type : "(none)");
            rc = builder_fail(builder, "messages", message);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int append_tool_uses(messages_builder_t *builder, json_t *blocks, const json_t *tool_calls)
{
    size_t i;
    const json_t *call;
    json_array_foreach(tool_calls, i, call) {
        const json_t *function = json_object_get(call, "function");
        const char *id = json_string_value(json_object_get(call, "id"));
        const char *name = json_string_value(json_object_get(function, "name"));
        const char *arguments = json_string_value(json_object_get(function, "arguments"));
        if (id == NULL || name == NULL)
            return builder_fail(builder, "messages", "assistant tool_calls need an id and a function name");
        json_t *input = arguments && arguments[0] ? json_loads(arguments, 0, NULL) : json_object();
        if (!json_is_object(input)) {
            json_decref(input);
            return builder_fail(builder, "messages", "tool call arguments must be a JSON object");
        }
        if (append_new(blocks, json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", id, "name", name, "input",
                                         input)) != 0)
            return -1;
    }
    return 0;
}

static int append_tool_result(messages_builder_t *builder, json_t *blocks, const json_t *message)
{
    const char *id = json_string_value(json_object_get(message, "tool_call_id"));
    if (id == NULL)
        return builder_fail(builder, "messages", "tool messages need a tool_call_id");
    const json_t *content = json_object_get(message, "content");
    json_t *result;
    if (json_is_string(content)) {
        result = json_pack("{s:s, s:s, s:O}", "type", "tool_result", "tool_use_id", id, "content", content);
    } else {
        json_t *parts = json_array();
        if (parts == NULL || append_content(builder, parts, content, false) != 0) {
            json_decref(parts);
            return -1;
        }
        result = json_pack("{s:s, s:s, s:o}", "type", "tool_result", "tool_use_id", id, "content", parts);
    }
    return append_new(blocks, result);
}

/* Adds a turn, merged into the previous one when the role repeats; empty turns are dropped. */
static int append_turn(messages_builder_t *builder, const char *role, json_t *blocks)
{
    size_t count = json_array_size(builder->messages);
    json_t *last = count ? json_array_get(builder->messages, count - 1) : NULL;
    if (json_array_size(blocks) == 0) {
        json_decref(blocks);
        return 0;
    }
    if (last != NULL && strcmp(json_string_value(json_object_get(last, "role")), role) == 0) {
        int rc = json_array_extend(json_object_get(last, "content"), blocks);
        json_decref(blocks);
        return rc;
    }
    return append_new(builder->messages, json_pack("{s:s, s:o}", "role", role, "content", blocks));
}

static int convert_message(messages_builder_t *builder, const json_t *message)
{
    const char *role = json_string_value(json_object_get(message, "role"));
    const json_t *content = json_object_get(message, "content");
    if (role == NULL)
        return builder_fail(builder, "messages", "every message needs a role");
    if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)
        return append_content(builder, builder->system, content, false);
    json_t *blocks = json_array();
    if (blocks == NULL)
        return -1;
    int rc;
    const char *target = "user";
    if (strcmp(role, "user") == 0) {
        rc = append_content(builder, blocks, content, true);
    } else if (strcmp(role, "assistant") == 0) {
        target = "assistant";
        rc = append_content(builder, blocks, content, false);
        if (rc == 0 && json_is_array(json_object_get(message, "tool_calls")))
            rc = append_tool_uses(builder, blocks, json_object_get(message, "tool_calls"));
    } else if (strcmp(role, "tool") == 0) {
        rc = append_tool_result(builder, blocks, message);
    } else {
        rc = builder_fail(builder, "messages", "anthropic supports the roles system, developer, user, assistant and tool");
    }
    if (rc != 0) {
        json_decref(blocks);
        return -1;
    }
    return append_turn(builder, target, blocks);
}

static int set_tools(messages_builder_t *builder, const json_t *body, json_t *out)
{
    const json_t *tools = json_object_get(body, "tools");
    const json_t *choice = json_object_get(body, "tool_choice");
    const json_t *parallel = json_object_get(body, "parallel_tool_calls");
    if (json_is_array(tools) && json_array_size(tools) > 0) {
        json_t *list = json_array();
        if (list == NULL || json_object_set_new(out, "tools", list) != 0)
            return -1;
        size_t i;
        const json_t *tool;
        json_array_foreach(tools, i, tool) {
            const json_t *function = json_object_get(tool, "function");
            const char *name = json_string_value(json_object_get(function, "name"));
            if (name == NULL)
                return builder_fail(builder, "tools", "anthropic supports function tools only; each needs a name");
            const json_t *parameters = json_object_get(function, "parameters");
            json_t *schema = json_is_object(parameters) ? json_deep_copy(parameters)
                                                        : json_pack("{s:s, s:{}}", "type", "object", "properties");
            json_t *spec = json_pack("{s:s, s:o}", "name", name, "input_schema", schema);
            const char *description = json_string_value(json_object_get(function, "description"));
            if (spec != NULL && description != NULL && description[0] != '\0' &&
                json_object_set_new(spec, "description", json_string(description)) != 0) {
                json_decref(spec);
                return -1;
            }
            if (append_new(list, spec) != 0)
                return -1;
        }
    }
    json_t *mapped = NULL;
    if (json_object_get(out, "tools") == NULL)
        return 0; /* Anthropic refuses a tool_choice without tools */
    if (json_is_string(choice)) {
        const char *value = json_string_value(choice);
        const char *type = strcmp(value, "required") == 0 ? "any" : strcmp(value, "none") == 0 ? "none" : "auto";
        if (strcmp(value, "required") != 0 && strcmp(value, "none") != 0 && strcmp(value, "auto") != 0)
            return builder_fail(builder, "tool_choice", "tool_choice must be none, auto, required or a function");
        mapped = json_pack("{s:s}", "type", type);
    } else if (json_is_object(choice)) {
        const char *name = json_string_value(json_object_get(json_object_get(choice, "function"), "name"));
        if (name == NULL)
            return builder_fail(builder, "tool_choice", "tool_choice must name a function");
        mapped = json_pack("{s:s, s:s}", "type", "tool", "name", name);
    } else if (json_is_false(parallel)) {
        mapped = json_pack("{s:s}", "type", "auto");
    }
    if (mapped == NULL)
        return choice == NULL || json_is_null(choice) ? 0 : -1;
    if (json_is_false(parallel) && strcmp(json_string_value(json_object_get(mapped, "type")), "none") != 0)
        json_object_set_new(mapped, "disable_parallel_tool_use", json_true());
    return json_object_set_new(out, "tool_choice", mapped);
}

static int set_sampling(const messages_builder_t *builder, const json_t *body, json_t *out)
{
    const provider_config_t *provider = builder->request->provider;
    long max_tokens = provider_max_tokens(body);
    int rc = json_object_set_new(out, "max_tokens", json_integer(max_tokens > 0 ? max_tokens
                                                                                : provider->default_max_tokens));
    const json_t *temperature = json_object_get(body, "temperature");
    if (json_is_number(temperature)) /* OpenAI's range is 0–2, Anthropic's 0–1 */
        rc |= json_object_set_new(out, "temperature", json_real(json_number_value(temperature) > 1.0
                                                                     ? 1.0
                                                                     : json_number_value(temperature)));
    if (json_is_number(json_object_get(body, "top_p")))
        rc |= json_object_set(out, "top_p", json_object_get(body, "top_p"));
    json_t *stop = provider_stop_sequences(body);
    if (stop != NULL)
        rc |= json_object_set_new(out, "stop_sequences", stop);
    const json_t *user = json_object_get(body, "user");
    if (json_is_string(user))
        rc |= json_object_set_new(out, "metadata", json_pack("{s:O}", "user_id", user));
    if (builder->request->is_stream)
        rc |= json_object_set_new(out, "stream", json_true());
    return rc == 0 ? 0 : -1;
}

/* The Messages body for the OpenAI chat body; NULL with builder->error set on
 * a client error, NULL with it empty when out of memory. */
static json_t *messages_body(messages_builder_t *builder)
{
    const json_t *body = builder->request->body;
    const json_t *messages = json_object_get(body, "messages");
    const json_t *n = json_object_get(body, "n");
    if (json_is_integer(n) && json_integer_value(n) > 1) {
        builder_fail(builder, "n", "anthropic returns one choice: n must be 1");
        return NULL;
    }
    if (!json_is_array(messages)) {
        builder_fail(builder, "messages", "messages must be an array");
        return NULL;
    }
    builder->messages = json_array();
    builder->system = json_array();
    json_t *out = json_object();
    if (builder->messages == NULL || builder->system == NULL || out == NULL ||
        json_object_set_new(out, "model", json_string(builder->request->upstream_model)) != 0)
        goto fail;
    size_t i;
    const json_t *message;
    json_array_foreach(messages, i, message) {
        if (convert_message(builder, message) != 0)
            goto fail;
    }
    if (json_array_size(builder->messages) == 0) {
        builder_fail(builder, "messages", "anthropic needs at least one user or assistant message with content");
        goto fail;
    }
    if (json_array_size(builder->system) > 0 && json_object_set(out, "system", builder->system) != 0)
        goto fail;
    if (json_object_set(out, "messages", builder->messages) != 0 || set_sampling(builder, body, out) != 0 ||
        set_tools(builder, body, out) != 0)
        goto fail;
    json_decref(builder->messages);
    json_decref(builder->system);
    return out;
fail:
    json_decref(builder->messages);
    json_decref(builder->system);
    json_decref(out);
    return NULL;
}

static int anthropic_build_call(request_t *request, provider_call_t *call)
{
    const provider_config_t *provider = request->provider;
    if (request->endpoint != ENDPOINT_CHAT_COMPLETIONS) {
        request_reply_error(request, 400, "invalid_request_error", "unsupported_endpoint", NULL,
                            "provider %s (anthropic) offers chat completions only", provider->name);
        return PROVIDER_CALL_REJECTED;
    }
    messages_builder_t builder = {.request = request};
    json_t *body = messages_body(&builder);
    if (body == NULL && builder.error[0] != '\0') {
        request_reply_error(request, 400, "invalid_request_error", NULL, builder.param[0] ? builder.param : NULL,
                            "%s", builder.error);
        return PROVIDER_CALL_REJECTED;
    }
    call->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (call->body == NULL)
        return -1;
    call->body_length = strlen(call->body);
    /* base_url is the host root; one that already ends in /v1 (as many SDKs'
     * base URLs do) must not become /v1/v1/messages. */
    call->url = arena_sprintf(&request->arena, "%s%s", provider->base_url,
                              provider_url_has_version(provider->base_url, "v1") ? "/messages" : "/v1/messages");
    struct curl_slist *headers = provider_json_headers(provider, request->is_stream);
    provider_header_append(&headers, "anthropic-version",
                           provider->anthropic_version ? provider->anthropic_version : "2023-06-01");
    if (provider->api_key != NULL)
        provider_header_append(&headers, "x-api-key", provider->api_key);
    call->headers = headers;
    return call->url && headers ? 0 : -1;
}

/* ---- answers ---------------------------------------------------------------- */

static const char *finish_reason(const char *stop_reason, bool has_tool_calls)
{
    if (stop_reason == NULL)
        return has_tool_calls ? "tool_calls" : "stop";
    if (strcmp(stop_reason, "tool_use") == 0)
        return "tool_calls";
    if (strcmp(stop_reason, "max_tokens") == 0 || strcmp(stop_reason, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(stop_reason, "refusal") == 0)
        return "content_filter";
    return "stop"; /* end_turn, stop_sequence, pause_turn and anything new */
}

/* Reads a usage object; members absent from it keep their value (message_delta
 * repeats only some). Output tokens are cumulative, never added. */
static void read_usage(const json_t *usage, usage_t *out, long *input, long *cache_read, long *cache_write)
{
    if (!json_is_object(usage))
        return;
    const json_t *value;
    if (json_is_integer(value = json_object_get(usage, "input_tokens")))
        *input = (long)json_integer_value(value);
    if (json_is_integer(value = json_object_get(usage, "cache_read_input_tokens")))
        *cache_read = (long)json_integer_value(value);
    if (json_is_integer(value = json_object_get(usage, "cache_creation_input_tokens")))
        *cache_write = (long)json_integer_value(value);
    if (json_is_integer(value = json_object_get(usage, "output_tokens")))
        out->completion_tokens = (long)json_integer_value(value);
    out->is_known = true;
    out->prompt_tokens = *input + *cache_read + *cache_write;
    out->cached_tokens = *cache_read;
}

static json_t *chat_completion(request_t *request, const json_t *reply)
{
    const json_t *content = json_object_get(reply, "content");
    if (!json_is_array(content))
        return NULL;
    buf_t text;
    buf_init(&text);
    json_t *tool_calls = json_array();
    int rc = tool_calls ? 0 : -1;
    size_t i;
    const json_t *block;
    json_array_foreach(content, i, block) {
        const char *type = json_string_value(json_object_get(block, "type"));
        if (type == NULL || rc != 0)
            continue;
        if (strcmp(type, "text") == 0) {
            const json_t *piece = json_object_get(block, "text");
            if (json_is_string(piece))
                rc = buf_append(&text, json_string_value(piece), json_string_length(piece));
        } else if (strcmp(type, "tool_use") == 0) {
            char *arguments = json_dumps(json_object_get(block, "input"), JSON_COMPACT | JSON_ENCODE_ANY);
            rc = append_new(tool_calls, json_pack("{s:s?, s:s, s:{s:s?, s:s}}", "id",
                                                  json_string_value(json_object_get(block, "id")), "type", "function",
                                                  "function", "name", json_string_value(json_object_get(block, "name")),
                                                  "arguments", arguments ? arguments : "{}"));
            free(arguments);
        } /* thinking and redacted_thinking blocks have no place in a chat completion */
    }
    long input = 0, cache_read = 0, cache_write = 0;
    read_usage(json_object_get(reply, "usage"), &request->usage, &input, &cache_read, &cache_write);
    bool has_tools = json_array_size(tool_calls) > 0;
    json_t *message = rc == 0 ? json_pack("{s:s, s:o, s:n}", "role", "assistant", "content",
                                          text.length || !has_tools ? json_stringn(text.data ? text.data : "", text.length)
                                                                    : json_null(),
                                          "refusal")
                              : NULL;
    buf_free(&text);
    if (message != NULL && has_tools)
        json_object_set(message, "tool_calls", tool_calls);
    json_decref(tool_calls);
    const char *reason = finish_reason(json_string_value(json_object_get(reply, "stop_reason")), has_tools);
    const char *id = json_string_value(json_object_get(reply, "id"));
    json_t *completion = message ? json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:n, s:s}]}", "id",
                                             id ? id : request->id, "object", "chat.completion", "created",
                                             (json_int_t)time(NULL), "model", provider_reply_model(request),
                                             "choices", "index", 0, "message", message, "logprobs", "finish_reason",
                                             reason)
                                 : NULL;
    if (completion != NULL && request->usage.is_known &&
        json_object_set_new(completion, "usage", provider_usage_json(&request->usage)) != 0) {
        json_decref(completion);
        return NULL;
    }
    return completion;
}

static int anthropic_translate_response(request_t *request, const char *body, size_t length, buf_t *out,
                                        bool *is_unchanged)
{
    *is_unchanged = false;
    json_t *reply = json_loadb(body, length, 0, NULL);
    json_t *translated = json_is_object(reply) ? chat_completion(request, reply) : NULL;
    json_decref(reply);
    char *text = translated ? json_dumps(translated, JSON_COMPACT) : NULL;
    json_decref(translated);
    int rc = text && buf_append_str(out, text) == 0 ? 0 : -1;
    free(text);
    return rc;
}

/* Anthropic's error type → OpenAI's status and type. 529 overloaded becomes
 * 503, what OpenAI clients retry on and the router treats as a 5xx. */
static int mapped_status(long status)
{
    return status == 529 ? 503 : (int)status;
}

static const char *mapped_type(long status, const char *anthropic_type)
{
    if (anthropic_type != NULL) {
        if (strcmp(anthropic_type, "rate_limit_error") == 0)
            return "rate_limit_error";
        if (strcmp(anthropic_type, "overloaded_error") == 0)
            return "overloaded_error";
        if (strcmp(anthropic_type, "authentication_error") == 0 || strcmp(anthropic_type, "permission_error") == 0 ||
            strcmp(anthropic_type, "not_found_error") == 0 || strcmp(anthropic_type, "invalid_request_error") == 0)
            return anthropic_type;
    }
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

static void anthropic_translate_error(request_t *request, long status, const char *body, size_t length,
                                      provider_error_t *error)
{
    json_t *reply = body ? json_loadb(body, length, 0, NULL) : NULL;
    const json_t *detail = json_object_get(reply, "error");
    const char *type = json_string_value(json_object_get(detail, "type"));
    const char *message = json_string_value(json_object_get(detail, "message"));
    error->status = mapped_status(status);
    error->type = arena_strdup(&request->arena, mapped_type(status, type));
    error->code = type ? arena_strdup(&request->arena, type) : NULL;
    error->param = NULL;
    error->message = message ? arena_sprintf(&request->arena, "anthropic: %s", message)
                             : arena_sprintf(&request->arena, "upstream provider %s returned HTTP %ld",
                                             request->provider->name, status);
    json_decref(reply);
}

/* ---- streams ------------------------------------------------------------------ */

/* Owner: the upstream transfer (stream_state_size bytes, zeroed). */
typedef struct anthropic_stream {
    openai_chunk_writer_t writer;
    provider_tool_map_t tools;
    const char *stop_reason; /* static: the finish_reason it maps to */
    bool has_stop_reason;
    bool is_over;
    long input_tokens, cache_read_tokens, cache_write_tokens;
} anthropic_stream_t;

static int ok_or_failed(int rc) { return rc == 0 ? PROVIDER_EVENT_OK : PROVIDER_EVENT_FAILED; }

static int on_block_start(anthropic_stream_t *stream, request_t *request, const json_t *event, buf_t *out)
{
    const json_t *block = json_object_get(event, "content_block");
    const char *type = json_string_value(json_object_get(block, "type"));
    if (type == NULL)
        return PROVIDER_EVENT_OK;
    if (strcmp(type, "text") == 0) {
        const json_t *text = json_object_get(block, "text");
        return ok_or_failed(json_is_string(text) ? openai_chunk_text(&stream->writer, request, json_string_value(text),
                                                                     json_string_length(text), out)
                                                 : 0);
    }
    if (strcmp(type, "tool_use") != 0)
        return PROVIDER_EVENT_OK; /* thinking blocks and kinds OpenAI chat has no place for */
    int index = provider_tool_map_add(&stream->tools, provider_integer_member(event, "index"));
    const char *id = json_string_value(json_object_get(block, "id"));
    const char *name = json_string_value(json_object_get(block, "name"));
    if (index < 0 || id == NULL || name == NULL)
        return PROVIDER_EVENT_FAILED;
    if (openai_chunk_tool_start(&stream->writer, request, index, id, name, out) != 0)
        return PROVIDER_EVENT_FAILED;
    /* input is normally {} and filled by input_json_delta; a non-empty one is the whole input */
    const json_t *input = json_object_get(block, "input");
    if (json_is_object(input) && json_object_size(input) > 0) {
        char *arguments = json_dumps(input, JSON_COMPACT);
        int rc = arguments ? openai_chunk_tool_arguments(&stream->writer, request, index, arguments, strlen(arguments), out)
                           : -1;
        free(arguments);
        return ok_or_failed(rc);
    }
    return PROVIDER_EVENT_OK;
}

static int on_block_delta(anthropic_stream_t *stream, request_t *request, const json_t *event, buf_t *out)
{
    const json_t *delta = json_object_get(event, "delta");
    const char *type = json_string_value(json_object_get(delta, "type"));
    if (type == NULL)
        return PROVIDER_EVENT_OK;
    if (strcmp(type, "text_delta") == 0) {
        const json_t *text = json_object_get(delta, "text");
        return ok_or_failed(json_is_string(text) ? openai_chunk_text(&stream->writer, request, json_string_value(text),
                                                                     json_string_length(text), out)
                                                 : 0);
    }
    if (strcmp(type, "input_json_delta") == 0) {
        const json_t *piece = json_object_get(delta, "partial_json");
        int index = provider_tool_map_get(&stream->tools, provider_integer_member(event, "index"));
        if (index < 0 || !json_is_string(piece))
            return PROVIDER_EVENT_FAILED; /* tool input for a block that never started as a tool */
        return ok_or_failed(openai_chunk_tool_arguments(&stream->writer, request, index, json_string_value(piece),
                                                        json_string_length(piece), out));
    }
    return PROVIDER_EVENT_OK; /* thinking_delta, signature_delta, citations_delta */
}

static void note_usage(anthropic_stream_t *stream, request_t *request, const json_t *usage)
{
    read_usage(usage, &request->usage, &stream->input_tokens, &stream->cache_read_tokens, &stream->cache_write_tokens);
}

static int end_stream(anthropic_stream_t *stream, request_t *request, buf_t *out)
{
    stream->is_over = true;
    const char *reason = stream->has_stop_reason ? stream->stop_reason
                                                 : finish_reason(NULL, stream->tools.tool_count > 0);
    if (openai_chunk_finish(&stream->writer, request, reason, out) != 0 ||
        openai_chunk_end(&stream->writer, request, out) != 0)
        return PROVIDER_EVENT_FAILED;
    return PROVIDER_EVENT_DONE;
}

static int on_error_event(anthropic_stream_t *stream, request_t *request, const json_t *event, buf_t *out)
{
    const json_t *detail = json_object_get(event, "error");
    const char *type = json_string_value(json_object_get(detail, "type"));
    const char *message = json_string_value(json_object_get(detail, "message"));
    stream->is_over = true;
    log_warn("anthropic stream for request %s ended with %s", request->id, type ? type : "an error");
    char text[1024];
    snprintf(text, sizeof text, "anthropic: %s", message ? message : "the stream failed");
    return openai_chunk_error(out, mapped_type(500, type), text) == 0 ? PROVIDER_EVENT_ERROR : PROVIDER_EVENT_FAILED;
}

static int anthropic_translate_event(request_t *request, void *state, const sse_event_t *event, buf_t *out)
{
    anthropic_stream_t *stream = state;
    if (stream->is_over)
        return PROVIDER_EVENT_OK;
    json_t *data = json_loadb(event->data, event->data_length, 0, NULL);
    if (!json_is_object(data)) {
        json_decref(data);
        return PROVIDER_EVENT_FAILED;
    }
    /* The data's "type" repeats the event name; it is there even when a proxy dropped "event:". */
    const char *type = json_string_value(json_object_get(data, "type"));
    if (type == NULL)
        type = event->name;
    int result = PROVIDER_EVENT_OK;
    if (strcmp(type, "message_start") == 0) {
        const json_t *message = json_object_get(data, "message");
        openai_chunk_begin(&stream->writer, request, json_string_value(json_object_get(message, "id")));
        note_usage(stream, request, json_object_get(message, "usage"));
        result = ok_or_failed(openai_chunk_text(&stream->writer, request, "", 0, out)); /* the role chunk */
    } else if (strcmp(type, "content_block_start") == 0) {
        result = on_block_start(stream, request, data, out);
    } else if (strcmp(type, "content_block_delta") == 0) {
        result = on_block_delta(stream, request, data, out);
    } else if (strcmp(type, "message_delta") == 0) {
        const char *reason = json_string_value(json_object_get(json_object_get(data, "delta"), "stop_reason"));
        if (reason != NULL) {
            stream->stop_reason = finish_reason(reason, stream->tools.tool_count > 0);
            stream->has_stop_reason = true;
        }
        note_usage(stream, request, json_object_get(data, "usage"));
    } else if (strcmp(type, "message_stop") == 0) {
        result = end_stream(stream, request, out);
    } else if (strcmp(type, "error") == 0) {
        result = on_error_event(stream, request, data, out);
    } /* ping, content_block_stop and event types added later are ignored */
    json_decref(data);
    return result;
}

/* The upstream closed without message_stop: finish if the message had a stop
 * reason, otherwise tell the client the answer was cut short. */
static int anthropic_finish_stream(request_t *request, void *state, buf_t *out)
{
    anthropic_stream_t *stream = state;
    if (stream->is_over)
        return PROVIDER_EVENT_OK;
    if (stream->has_stop_reason)
        return end_stream(stream, request, out);
    stream->is_over = true;
    if (openai_chunk_error(out, "upstream_error", "anthropic stream ended before the message was complete") != 0)
        return PROVIDER_EVENT_FAILED;
    return PROVIDER_EVENT_ERROR;
}

static void anthropic_free_state(void *state)
{
    anthropic_stream_t *stream = state;
    provider_tool_map_free(&stream->tools);
}

const provider_adapter_t provider_anthropic = {
    .name = "anthropic",
    .build_call = anthropic_build_call,
    .stream_state_size = sizeof(anthropic_stream_t),
    .translate_event = anthropic_translate_event,
    .finish_stream = anthropic_finish_stream,
    .free_state = anthropic_free_state,
    .translate_response = anthropic_translate_response,
    .translate_error = anthropic_translate_error,
};
