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

#include "sluice/log.h"
#include "sluice/openai_chunk.h"
#include "sluice/provider.h"
#include "sluice/provider_util.h"
#include "sluice/translate.h"

/* The tool that carries a JSON answer when json_schema gives no name. */
#define ANTHROPIC_JSON_TOOL "json_response"

/* ---- the request ---------------------------------------------------------- */

static int append_text_block(json_t *blocks, const char *text, size_t length)
{
    return translate_append_new(blocks, json_pack("{s:s, s:s%}", "type", "text", "text", text, length));
}

static int append_image_block(translate_messages_t *messages, json_t *blocks, const char *url)
{
    const char *mime, *data;
    request_t *request = messages->context;
    if (url != NULL && strncmp(url, "data:", 5) == 0) {
        if (provider_parse_data_url(request, url, &mime, &data) != 0)
            return translate_fail(messages, "messages", "image data: URLs must be base64 (data:image/png;base64,...)");
        return translate_append_new(blocks, json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "image", "source", "type",
                                                      "base64", "media_type", mime, "data", data));
    }
    if (url != NULL && (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0))
        return translate_append_new(
            blocks, json_pack("{s:s, s:{s:s, s:s}}", "type", "image", "source", "type", "url", "url", url));
    return translate_fail(messages, "messages", "image_url must be a data: URL or an http(s) URL");
}

static int append_tool_use(translate_messages_t *messages, json_t *blocks, const char *id, const char *name,
                           json_t *input)
{
    (void)messages;
    return translate_append_new(blocks, json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", id, "name", name,
                                                  "input", input));
}

static int append_tool_result(translate_messages_t *messages, json_t *blocks, const json_t *message)
{
    const char *id = json_string_value(json_object_get(message, "tool_call_id"));
    if (id == NULL)
        return translate_fail(messages, "messages", "tool messages need a tool_call_id");
    const json_t *content = json_object_get(message, "content");
    json_t *result;
    if (json_is_string(content)) {
        result = json_pack("{s:s, s:s, s:O}", "type", "tool_result", "tool_use_id", id, "content", content);
    } else {
        json_t *parts = json_array();
        if (parts == NULL || translate_content(messages, parts, content, false) != 0) {
            json_decref(parts);
            return -1;
        }
        result = json_pack("{s:s, s:s, s:o}", "type", "tool_result", "tool_use_id", id, "content", parts);
    }
    return translate_append_new(blocks, result);
}

/* Anthropic's content blocks; turns merge because the API wants the roles to
 * alternate and one turn's tool results in one user message. */
static const translate_part_writer_t block_writer = {
    .append_text = append_text_block,
    .append_image = append_image_block,
    .append_tool_call = append_tool_use,
    .append_tool_result = append_tool_result,
};

static int set_tools(translate_messages_t *builder, const json_t *body, json_t *out)
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
                return translate_fail(builder, "tools", "anthropic supports function tools only; each needs a name");
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
            if (translate_append_new(list, spec) != 0)
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
            return translate_fail(builder, "tool_choice", "tool_choice must be none, auto, required or a function");
        mapped = json_pack("{s:s}", "type", type);
    } else if (json_is_object(choice)) {
        const char *name = json_string_value(json_object_get(json_object_get(choice, "function"), "name"));
        if (name == NULL)
            return translate_fail(builder, "tool_choice", "tool_choice must name a function");
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

/* True when the client asked for a JSON answer (response_format json_object
 * or json_schema), which is requested from Anthropic as a forced tool call. */
static bool wants_json_answer(const json_t *body)
{
    const char *type = json_string_value(json_object_get(json_object_get(body, "response_format"), "type"));
    return type != NULL && (strcmp(type, "json_object") == 0 || strcmp(type, "json_schema") == 0);
}

/* response_format → one tool whose input_schema is the wanted schema, forced
 * with tool_choice; the answer's tool input is then the JSON the client gets
 * as content. This works on every Claude model and API version (the newer
 * output_format needs a beta header and recent models). Client tools cannot
 * be offered alongside: forcing the format tool would forbid calling them. */
static int set_response_format(translate_messages_t *builder, const json_t *body, json_t *out)
{
    if (!wants_json_answer(body))
        return 0;
    if (json_array_size(json_object_get(body, "tools")) > 0)
        return translate_fail(builder, "response_format",
                              "anthropic providers support response_format only without tools");
    const json_t *format = json_object_get(body, "response_format");
    const json_t *json_schema = json_object_get(format, "json_schema");
    const json_t *schema = json_object_get(json_schema, "schema");
    const char *name = json_string_value(json_object_get(json_schema, "name"));
    const char *description = json_string_value(json_object_get(json_schema, "description"));
    if (name == NULL || name[0] == '\0')
        name = ANTHROPIC_JSON_TOOL;
    json_t *tool = json_pack("{s:s, s:s, s:o}", "name", name, "description",
                             description ? description : "Give the answer as this tool's input: a JSON object.",
                             "input_schema", json_is_object(schema) ? json_deep_copy(schema)
                                                                    : json_pack("{s:s}", "type", "object"));
    if (tool == NULL || json_object_set_new(out, "tools", json_pack("[o]", tool)) != 0)
        return -1;
    return json_object_set_new(out, "tool_choice", json_pack("{s:s, s:s}", "type", "tool", "name", name));
}

static int set_sampling(const request_t *request, const json_t *body, json_t *out)
{
    long max_tokens = provider_max_tokens(body);
    if (max_tokens <= 0)
        max_tokens = request->provider->default_max_tokens;
    int rc = json_object_set_new(out, "max_tokens", json_integer(max_tokens));
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
    if (request->is_stream)
        rc |= json_object_set_new(out, "stream", json_true());
    return rc == 0 ? 0 : -1;
}

/* The Messages body for the OpenAI chat body; NULL with builder->error set on
 * a client error, NULL with it empty when out of memory. */
static json_t *messages_body(translate_messages_t *builder, request_t *request)
{
    const json_t *body = request->body;
    const json_t *messages = json_object_get(body, "messages");
    const json_t *n = json_object_get(body, "n");
    if (json_is_integer(n) && json_integer_value(n) > 1) {
        translate_fail(builder, "n", "anthropic returns one choice: n must be 1");
        return NULL;
    }
    json_t *out = json_object();
    if (out == NULL || json_object_set_new(out, "model", json_string(request->upstream_model)) != 0 ||
        translate_messages_convert(builder, messages) != 0)
        goto fail;
    if (json_array_size(builder->turns) == 0) {
        translate_fail(builder, "messages", "anthropic needs at least one user or assistant message with content");
        goto fail;
    }
    if (json_array_size(builder->system) > 0 && json_object_set(out, "system", builder->system) != 0)
        goto fail;
    if (json_object_set(out, "messages", builder->turns) != 0 || set_sampling(request, body, out) != 0 ||
        set_tools(builder, body, out) != 0 || set_response_format(builder, body, out) != 0)
        goto fail;
    translate_messages_release(builder);
    return out;
fail:
    translate_messages_release(builder);
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
    translate_messages_t builder = {.provider = "anthropic",
                                    .assistant_role = "assistant",
                                    .parts_key = "content",
                                    .writer = &block_writer,
                                    .context = request};
    json_t *body = messages_body(&builder, request);
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

/* With a JSON answer the forced tool call is the answer itself: the model
 * stopped, it called no tool. */
static const char *answer_finish_reason(const request_t *request, const char *stop_reason, bool has_tool_calls)
{
    if (!wants_json_answer(request->body))
        return finish_reason(stop_reason, has_tool_calls);
    return stop_reason && strcmp(stop_reason, "tool_use") == 0 ? "stop" : finish_reason(stop_reason, false);
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
        } else if (strcmp(type, "tool_use") == 0 && wants_json_answer(request->body)) {
            char *answer = json_dumps(json_object_get(block, "input"), JSON_COMPACT | JSON_ENCODE_ANY);
            rc = answer ? buf_append_str(&text, answer) : -1;
            free(answer);
        } else if (strcmp(type, "tool_use") == 0) {
            rc = translate_append_new(tool_calls, translate_tool_call(json_string_value(json_object_get(block, "id")),
                                                                      json_string_value(json_object_get(block, "name")),
                                                                      json_object_get(block, "input")));
        } /* thinking and redacted_thinking blocks have no place in a chat completion */
    }
    long input = 0, cache_read = 0, cache_write = 0;
    read_usage(json_object_get(reply, "usage"), &request->usage, &input, &cache_read, &cache_write);
    bool has_tools = json_array_size(tool_calls) > 0;
    json_t *message = translate_assistant_message(&text, tool_calls);
    buf_free(&text);
    if (rc != 0) {
        json_decref(message);
        message = NULL;
    }
    const char *stop_reason = json_string_value(json_object_get(reply, "stop_reason"));
    const char *reason = answer_finish_reason(request, stop_reason, has_tools);
    const char *id = json_string_value(json_object_get(reply, "id"));
    json_t *choice = message ? translate_choice(0, message, reason) : NULL;
    return choice ? translate_chat_completion(request, id ? id : request->id, json_pack("[o]", choice)) : NULL;
}

static int anthropic_translate_response(request_t *request, const char *body, size_t length, buf_t *out,
                                        bool *is_unchanged)
{
    *is_unchanged = false;
    return translate_reply(request, body, length, out, chat_completion);
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


/* Tool input goes out as the call's arguments, or as content when it is the JSON answer. */
static int emit_tool_input(anthropic_stream_t *stream, request_t *request, int index, const char *piece, size_t length,
                           buf_t *out)
{
    if (wants_json_answer(request->body))
        return openai_chunk_text(&stream->writer, request, piece, length, out);
    return openai_chunk_tool_arguments(&stream->writer, request, index, piece, length, out);
}

static int on_block_start(anthropic_stream_t *stream, request_t *request, const json_t *event, buf_t *out)
{
    const json_t *block = json_object_get(event, "content_block");
    const char *type = json_string_value(json_object_get(block, "type"));
    if (type == NULL)
        return PROVIDER_EVENT_OK;
    if (strcmp(type, "text") == 0) {
        const json_t *text = json_object_get(block, "text");
        return provider_event_result(json_is_string(text) ? openai_chunk_text(&stream->writer, request, json_string_value(text),
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
    bool is_tool_call = !wants_json_answer(request->body);
    if (is_tool_call && openai_chunk_tool_start(&stream->writer, request, index, id, name, out) != 0)
        return PROVIDER_EVENT_FAILED;
    /* input is normally {} and filled by input_json_delta; a non-empty one is the whole input */
    const json_t *input = json_object_get(block, "input");
    if (json_is_object(input) && json_object_size(input) > 0) {
        char *arguments = json_dumps(input, JSON_COMPACT);
        int rc = arguments ? emit_tool_input(stream, request, index, arguments, strlen(arguments), out) : -1;
        free(arguments);
        return provider_event_result(rc);
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
        return provider_event_result(json_is_string(text) ? openai_chunk_text(&stream->writer, request, json_string_value(text),
                                                                     json_string_length(text), out)
                                                 : 0);
    }
    if (strcmp(type, "input_json_delta") == 0) {
        const json_t *piece = json_object_get(delta, "partial_json");
        int index = provider_tool_map_get(&stream->tools, provider_integer_member(event, "index"));
        if (index < 0 || !json_is_string(piece))
            return PROVIDER_EVENT_FAILED; /* tool input for a block that never started as a tool */
        return provider_event_result(
            emit_tool_input(stream, request, index, json_string_value(piece), json_string_length(piece), out));
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
                                                 : answer_finish_reason(request, NULL, stream->tools.tool_count > 0);
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
    return provider_event_error(out, mapped_type(500, type), text);
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
        result = provider_event_result(openai_chunk_text(&stream->writer, request, "", 0, out)); /* the role chunk */
    } else if (strcmp(type, "content_block_start") == 0) {
        result = on_block_start(stream, request, data, out);
    } else if (strcmp(type, "content_block_delta") == 0) {
        result = on_block_delta(stream, request, data, out);
    } else if (strcmp(type, "message_delta") == 0) {
        const char *reason = json_string_value(json_object_get(json_object_get(data, "delta"), "stop_reason"));
        if (reason != NULL) {
            stream->stop_reason = answer_finish_reason(request, reason, stream->tools.tool_count > 0);
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
    return provider_event_error(out, "upstream_error", "anthropic stream ended before the message was complete");
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
