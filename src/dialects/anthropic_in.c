/* anthropic_in.c — POST /v1/messages: Anthropic's Messages API in front of
 * the OpenAI-form pipeline (see anthropic_in.h).
 *
 * In: the top-level system becomes a system message; user text and images
 * become content parts (base64 sources as data: URLs); tool_result blocks
 * become role "tool" messages, placed before the rest of their user turn, as
 * OpenAI wants results right after the assistant's calls; assistant tool_use
 * blocks become tool_calls. Streams always ask for usage, because Anthropic's
 * events carry it.
 *
 * Out: a chat.completion becomes a message with text and tool_use blocks;
 * finish_reason becomes stop_reason; usage is split back (input_tokens
 * excludes cache reads, as Anthropic counts). A stream is re-encoded event by
 * event: the first chunk opens the message, content and tool-call deltas open
 * and fill content blocks (a block is closed when the next one starts), the
 * finish reason and the usage chunk are held until [DONE], which becomes
 * message_delta + message_stop. */
#include "sluice/anthropic_in.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/sse.h"
#include "sluice/translate.h"

/* ---- the request --------------------------------------------------------------- */

typedef struct translation {
    char *message;
    size_t message_size;
    char *param;
    size_t param_size;
} translation_t;

static int refuse(translation_t *t, const char *param, const char *message)
{
    snprintf(t->param, t->param_size, "%s", param);
    snprintf(t->message, t->message_size, "%s", message);
    return -1;
}

static int append_new(json_t *array, json_t *item)
{
    return item != NULL && json_array_append_new(array, item) == 0 ? 0 : -1;
}

/* A system value (string or text blocks) as one string (new reference), or NULL. */
static json_t *system_text(translation_t *t, const json_t *system, int *rc)
{
    *rc = 0;
    if (system == NULL || json_is_null(system))
        return NULL;
    if (json_is_string(system))
        return json_string_length(system) ? json_incref((json_t *)system) : NULL;
    if (!json_is_array(system)) {
        *rc = refuse(t, "system", "'system' must be a string or an array of text blocks");
        return NULL;
    }
    buf_t text;
    buf_init(&text);
    size_t i;
    const json_t *block;
    json_array_foreach(system, i, block) {
        const json_t *piece = json_object_get(block, "text");
        if (!json_is_string(piece)) {
            buf_free(&text);
            *rc = refuse(t, "system", "'system' blocks must be text blocks");
            return NULL;
        }
        if ((text.length && buf_append_str(&text, "\n\n") != 0) ||
            buf_append(&text, json_string_value(piece), json_string_length(piece)) != 0) {
            buf_free(&text);
            *rc = -1;
            return NULL;
        }
    }
    json_t *result = text.length ? json_stringn(text.data, text.length) : NULL;
    buf_free(&text);
    return result;
}

static json_t *image_part(translation_t *t, const json_t *block, const char *param)
{
    const json_t *source = json_object_get(block, "source");
    const char *type = json_string_value(json_object_get(source, "type"));
    if (type != NULL && strcmp(type, "base64") == 0) {
        const char *media = json_string_value(json_object_get(source, "media_type"));
        const char *data = json_string_value(json_object_get(source, "data"));
        if (media == NULL || data == NULL) {
            refuse(t, param, "a base64 image source needs media_type and data");
            return NULL;
        }
        size_t length = strlen(media) + strlen(data) + 16;
        char *url = malloc(length);
        if (url == NULL)
            return NULL;
        snprintf(url, length, "data:%s;base64,%s", media, data);
        json_t *part = json_pack("{s:s, s:{s:s}}", "type", "image_url", "image_url", "url", url);
        free(url);
        return part;
    }
    if (type != NULL && strcmp(type, "url") == 0 && json_is_string(json_object_get(source, "url")))
        return json_pack("{s:s, s:{s:O}}", "type", "image_url", "image_url", "url", json_object_get(source, "url"));
    refuse(t, param, "image sources must be base64 or url");
    return NULL;
}

/* A tool_result's content (string or blocks) as the tool message's content. */
static json_t *tool_result_content(translation_t *t, const json_t *content, const char *param)
{
    if (content == NULL || json_is_null(content))
        return json_string("");
    if (json_is_string(content))
        return json_incref((json_t *)content);
    if (!json_is_array(content)) {
        refuse(t, param, "tool_result content must be a string or an array of blocks");
        return NULL;
    }
    buf_t text;
    buf_init(&text);
    size_t i;
    const json_t *block;
    json_array_foreach(content, i, block) {
        const json_t *piece = json_object_get(block, "text");
        if (json_is_string(piece) && buf_append(&text, json_string_value(piece), json_string_length(piece)) != 0) {
            buf_free(&text);
            return NULL;
        }
    }
    json_t *result = json_stringn(text.data ? text.data : "", text.length);
    buf_free(&text);
    return result;
}

/* One user turn: tool results first (as tool messages), then the other content. */
static int convert_user(translation_t *t, const json_t *content, size_t index, json_t *messages)
{
    char param[64];
    snprintf(param, sizeof param, "messages[%zu].content", index);
    if (json_is_string(content))
        return append_new(messages, json_pack("{s:s, s:O}", "role", "user", "content", content));
    if (!json_is_array(content))
        return refuse(t, param, "'content' must be a string or an array of content blocks");
    json_t *parts = json_array();
    if (parts == NULL)
        return -1;
    size_t i;
    const json_t *block;
    json_array_foreach(content, i, block) {
        const char *type = json_string_value(json_object_get(block, "type"));
        snprintf(param, sizeof param, "messages[%zu].content[%zu]", index, i);
        int rc = 0;
        if (type == NULL) {
            rc = refuse(t, param, "content blocks need a 'type'");
        } else if (strcmp(type, "text") == 0 && json_is_string(json_object_get(block, "text"))) {
            rc = append_new(parts, json_pack("{s:s, s:O}", "type", "text", "text", json_object_get(block, "text")));
        } else if (strcmp(type, "image") == 0) {
            json_t *part = image_part(t, block, param);
            rc = part ? append_new(parts, part) : -1;
        } else if (strcmp(type, "tool_result") == 0) {
            const json_t *id = json_object_get(block, "tool_use_id");
            json_t *result = json_is_string(id) ? tool_result_content(t, json_object_get(block, "content"), param)
                                                : NULL;
            if (!json_is_string(id))
                rc = refuse(t, param, "tool_result needs a tool_use_id");
            else
                rc = result ? append_new(messages, json_pack("{s:s, s:O, s:o}", "role", "tool", "tool_call_id", id,
                                                             "content", result))
                            : -1;
        } else {
            char message[128];
            snprintf(message, sizeof message, "content block type '%s' is not supported by this gateway", type);
            rc = refuse(t, param, message);
        }
        if (rc != 0) {
            json_decref(parts);
            return -1;
        }
    }
    if (json_array_size(parts) == 0) {
        json_decref(parts);
        return 0;
    }
    return append_new(messages, json_pack("{s:s, s:o}", "role", "user", "content", parts));
}

static int convert_assistant(translation_t *t, const json_t *content, size_t index, json_t *messages)
{
    char param[64];
    snprintf(param, sizeof param, "messages[%zu].content", index);
    if (json_is_string(content))
        return append_new(messages, json_pack("{s:s, s:O}", "role", "assistant", "content", content));
    if (!json_is_array(content))
        return refuse(t, param, "'content' must be a string or an array of content blocks");
    buf_t text;
    buf_init(&text);
    json_t *calls = json_array();
    int rc = calls ? 0 : -1;
    size_t i;
    const json_t *block;
    json_array_foreach(content, i, block) {
        const char *type = json_string_value(json_object_get(block, "type"));
        if (rc != 0 || type == NULL)
            continue;
        if (strcmp(type, "text") == 0) {
            const json_t *piece = json_object_get(block, "text");
            if (json_is_string(piece))
                rc = buf_append(&text, json_string_value(piece), json_string_length(piece));
        } else if (strcmp(type, "tool_use") == 0) {
            const char *id = json_string_value(json_object_get(block, "id"));
            const char *name = json_string_value(json_object_get(block, "name"));
            if (id == NULL || name == NULL) {
                snprintf(param, sizeof param, "messages[%zu].content[%zu]", index, i);
                rc = refuse(t, param, "tool_use needs an id and a name");
            } else {
                rc = append_new(calls, translate_tool_call(id, name, json_object_get(block, "input")));
            }
        } /* thinking and redacted_thinking blocks do not travel to other providers */
    }
    json_t *message = rc == 0 ? json_pack("{s:s, s:o}", "role", "assistant", "content",
                                          text.length || json_array_size(calls) == 0
                                              ? json_stringn(text.data ? text.data : "", text.length)
                                              : json_null())
                              : NULL;
    buf_free(&text);
    if (message != NULL && json_array_size(calls) > 0)
        json_object_set(message, "tool_calls", calls);
    json_decref(calls);
    return message ? append_new(messages, message) : -1;
}

static int convert_tools(translation_t *t, const json_t *body, json_t *out)
{
    const json_t *tools = json_object_get(body, "tools");
    if (tools != NULL && !json_is_null(tools)) {
        if (!json_is_array(tools))
            return refuse(t, "tools", "'tools' must be an array");
        json_t *list = json_array();
        if (list == NULL || json_object_set_new(out, "tools", list) != 0)
            return -1;
        size_t i;
        const json_t *tool;
        json_array_foreach(tools, i, tool) {
            char param[48];
            snprintf(param, sizeof param, "tools[%zu]", i);
            const char *type = json_string_value(json_object_get(tool, "type"));
            const char *name = json_string_value(json_object_get(tool, "name"));
            if (name == NULL)
                return refuse(t, param, "tools need a name");
            if (type != NULL && strcmp(type, "custom") != 0)
                return refuse(t, param, "server tools are not supported by this gateway; only custom tools");
            const json_t *schema = json_object_get(tool, "input_schema");
            json_t *parameters = json_is_object(schema) ? json_deep_copy(schema)
                                                        : json_pack("{s:s, s:{}}", "type", "object", "properties");
            json_t *function = json_pack("{s:s, s:o}", "name", name, "parameters", parameters);
            const json_t *description = json_object_get(tool, "description");
            if (function != NULL && json_is_string(description))
                json_object_set(function, "description", (json_t *)description);
            if (append_new(list, json_pack("{s:s, s:o}", "type", "function", "function", function)) != 0)
                return -1;
        }
    }
    const json_t *choice = json_object_get(body, "tool_choice");
    if (choice == NULL || json_is_null(choice))
        return 0;
    const char *type = json_string_value(json_object_get(choice, "type"));
    json_t *mapped = NULL;
    if (type == NULL)
        return refuse(t, "tool_choice", "tool_choice needs a type");
    if (strcmp(type, "auto") == 0)
        mapped = json_string("auto");
    else if (strcmp(type, "any") == 0)
        mapped = json_string("required");
    else if (strcmp(type, "none") == 0)
        mapped = json_string("none");
    else if (strcmp(type, "tool") == 0 && json_is_string(json_object_get(choice, "name")))
        mapped = json_pack("{s:s, s:{s:O}}", "type", "function", "function", "name", json_object_get(choice, "name"));
    else
        return refuse(t, "tool_choice", "tool_choice type must be auto, any, tool (with a name) or none");
    if (mapped == NULL || json_object_set_new(out, "tool_choice", mapped) != 0)
        return -1;
    if (json_is_true(json_object_get(choice, "disable_parallel_tool_use")) &&
        json_object_set_new(out, "parallel_tool_calls", json_false()) != 0)
        return -1;
    return 0;
}

static int copy_sampling(translation_t *t, const json_t *body, json_t *out)
{
    const json_t *max_tokens = json_object_get(body, "max_tokens");
    if (!json_is_integer(max_tokens) || json_integer_value(max_tokens) < 1)
        return refuse(t, "max_tokens", "'max_tokens' is required and must be a positive integer");
    int rc = json_object_set(out, "max_tokens", (json_t *)max_tokens);
    const char *numbers[][2] = {{"temperature", "temperature"}, {"top_p", "top_p"}};
    for (size_t i = 0; i < 2; i++) {
        const json_t *value = json_object_get(body, numbers[i][0]);
        if (value != NULL && !json_is_null(value) && !json_is_number(value))
            return refuse(t, numbers[i][0], "must be a number");
        if (json_is_number(value))
            rc |= json_object_set(out, numbers[i][1], (json_t *)value);
    }
    const json_t *stop = json_object_get(body, "stop_sequences");
    if (json_is_array(stop) && json_array_size(stop) > 0)
        rc |= json_object_set(out, "stop", (json_t *)stop);
    else if (stop != NULL && !json_is_null(stop) && !json_is_array(stop))
        return refuse(t, "stop_sequences", "'stop_sequences' must be an array of strings");
    const json_t *user = json_object_get(json_object_get(body, "metadata"), "user_id");
    if (json_is_string(user))
        rc |= json_object_set(out, "user", (json_t *)user);
    const json_t *stream = json_object_get(body, "stream");
    if (json_is_true(stream)) {
        rc |= json_object_set_new(out, "stream", json_true());
        rc |= json_object_set_new(out, "stream_options", json_pack("{s:b}", "include_usage", 1));
    }
    return rc == 0 ? 0 : -1;
}

int anthropic_in_request(const json_t *body, json_t **openai_body, char *message, size_t message_size, char *param,
                         size_t param_size)
{
    translation_t t = {message, message_size, param, param_size};
    message[0] = '\0';
    param[0] = '\0';
    *openai_body = NULL;
    if (!json_is_object(body))
        return refuse(&t, "body", "the request body must be a JSON object");
    const json_t *model = json_object_get(body, "model");
    const json_t *messages = json_object_get(body, "messages");
    if (!json_is_string(model) || json_string_length(model) == 0)
        return refuse(&t, "model", "'model' is required and must be a non-empty string");
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return refuse(&t, "messages", "'messages' is required and must be a non-empty array");
    json_t *out = json_pack("{s:O, s:[]}", "model", model, "messages");
    if (out == NULL)
        return -1;
    json_t *list = json_object_get(out, "messages");
    int rc = 0;
    json_t *system = system_text(&t, json_object_get(body, "system"), &rc);
    if (rc == 0 && system != NULL)
        rc = append_new(list, json_pack("{s:s, s:o}", "role", "system", "content", system));
    size_t i;
    const json_t *turn;
    json_array_foreach(messages, i, turn) {
        if (rc != 0)
            break;
        const char *role = json_string_value(json_object_get(turn, "role"));
        const json_t *content = json_object_get(turn, "content");
        char where[48];
        snprintf(where, sizeof where, "messages[%zu].role", i);
        if (role != NULL && strcmp(role, "user") == 0)
            rc = convert_user(&t, content, i, list);
        else if (role != NULL && strcmp(role, "assistant") == 0)
            rc = convert_assistant(&t, content, i, list);
        else
            rc = refuse(&t, where, "'role' must be user or assistant");
    }
    if (rc == 0)
        rc = copy_sampling(&t, body, out);
    if (rc == 0)
        rc = convert_tools(&t, body, out);
    if (rc == 0 && json_array_size(list) == 0)
        rc = refuse(&t, "messages", "the messages have no content");
    if (rc != 0) {
        json_decref(out);
        return -1;
    }
    *openai_body = out;
    return 0;
}

/* ---- answers --------------------------------------------------------------------- */

static const char *stop_reason_for(const char *finish_reason)
{
    if (finish_reason == NULL || strcmp(finish_reason, "stop") == 0)
        return "end_turn";
    if (strcmp(finish_reason, "length") == 0)
        return "max_tokens";
    if (strcmp(finish_reason, "tool_calls") == 0 || strcmp(finish_reason, "function_call") == 0)
        return "tool_use";
    if (strcmp(finish_reason, "content_filter") == 0)
        return "refusal";
    return "end_turn";
}

static json_t *anthropic_usage(const usage_t *usage)
{
    long input = usage->prompt_tokens - usage->cached_tokens;
    return json_pack("{s:I, s:I, s:I, s:I}", "input_tokens", (json_int_t)(input > 0 ? input : 0),
                     "cache_creation_input_tokens", (json_int_t)0, "cache_read_input_tokens",
                     (json_int_t)usage->cached_tokens, "output_tokens", (json_int_t)usage->completion_tokens);
}

static const char *message_id(request_t *request, const char *openai_id)
{
    if (openai_id != NULL && strncmp(openai_id, "msg_", 4) == 0)
        return openai_id;
    return arena_sprintf(&request->arena, "msg_%s", strncmp(request->id, "req_", 4) == 0 ? request->id + 4 : request->id);
}

/* A tool call's arguments as the tool_use input object (new reference). */
static json_t *tool_input(const char *arguments)
{
    json_t *input = arguments && arguments[0] ? json_loads(arguments, 0, NULL) : NULL;
    if (json_is_object(input))
        return input;
    json_decref(input);
    return json_object(); /* Anthropic clients expect an object; malformed arguments are dropped */
}

int anthropic_in_response(request_t *request, const char *openai_body, size_t length, buf_t *out)
{
    json_t *completion = json_loadb(openai_body, length, 0, NULL);
    const json_t *choice = json_array_get(json_object_get(completion, "choices"), 0);
    const json_t *message = json_object_get(choice, "message");
    if (!json_is_object(message)) {
        json_decref(completion);
        return -1;
    }
    json_t *content = json_array();
    int rc = content ? 0 : -1;
    const json_t *text = json_object_get(message, "content");
    if (rc == 0 && json_is_string(text) && json_string_length(text) > 0)
        rc = append_new(content, json_pack("{s:s, s:O}", "type", "text", "text", text));
    size_t i;
    const json_t *call;
    json_array_foreach(json_object_get(message, "tool_calls"), i, call) {
        const json_t *function = json_object_get(call, "function");
        const char *id = json_string_value(json_object_get(call, "id"));
        const char *name = json_string_value(json_object_get(function, "name"));
        if (rc == 0)
            rc = append_new(content, json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", id ? id : "", "name",
                                               name ? name : "", "input",
                                               tool_input(json_string_value(json_object_get(function, "arguments")))));
    }
    usage_t usage = {0};
    usage_from_openai(json_object_get(completion, "usage"), &usage);
    json_t *reply = rc == 0 ? json_pack("{s:s, s:s, s:s, s:s, s:O, s:s, s:n, s:o}", "id",
                                        message_id(request, json_string_value(json_object_get(completion, "id"))),
                                        "type", "message", "role", "assistant", "model",
                                        request->model ? request->model : "", "content", content, "stop_reason",
                                        stop_reason_for(json_string_value(json_object_get(choice, "finish_reason"))),
                                        "stop_sequence", "usage", anthropic_usage(&usage))
                            : NULL;
    json_decref(content);
    json_decref(completion);
    char *encoded = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    json_decref(reply);
    rc = encoded && buf_append_str(out, encoded) == 0 ? 0 : -1;
    free(encoded);
    return rc;
}

static const char *error_type_for(int status)
{
    switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 402: return "billing_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503:
    case 529: return "overloaded_error";
    case 504: return "timeout_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

static int append_error(buf_t *out, const char *type, const char *message)
{
    json_t *body = json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type", type, "message",
                             message ? message : "error");
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    int rc = text && buf_append_str(out, text) == 0 ? 0 : -1;
    free(text);
    return rc;
}

int anthropic_in_error(int status, const char *message, buf_t *out)
{
    return append_error(out, error_type_for(status), message);
}

/* ---- streams ----------------------------------------------------------------------- */

enum { BLOCK_NONE, BLOCK_TEXT, BLOCK_TOOL };

/* Owner: the request (request->client_stream). */
struct anthropic_in_stream {
    sse_parser_t parser;
    bool has_started; /* message_start sent */
    bool is_over;     /* message_stop or error sent */
    int open_block;   /* BLOCK_*: the kind of the block still open */
    int block_count;  /* blocks opened so far; the open one is block_count - 1 */
    int tool_block[64]; /* OpenAI tool index → Anthropic block index + 1 */
    const char *stop_reason;
    usage_t usage;
    /* for the parser callback */
    request_t *request;
    buf_t *out;
};

anthropic_in_stream_t *anthropic_in_stream_new(void)
{
    anthropic_in_stream_t *stream = calloc(1, sizeof *stream);
    if (stream != NULL)
        sse_parser_init(&stream->parser, 16 << 20);
    return stream;
}

void anthropic_in_stream_free(anthropic_in_stream_t *stream)
{
    if (stream == NULL)
        return;
    sse_parser_free(&stream->parser);
    free(stream);
}

static int emit(buf_t *out, const char *name, json_t *data)
{
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    int rc = text ? buf_printf(out, "event: %s\ndata: %s\n\n", name, text) : -1;
    free(text);
    return rc;
}

static int start_message(anthropic_in_stream_t *stream, const char *openai_id)
{
    if (stream->has_started)
        return 0;
    stream->has_started = true;
    request_t *request = stream->request;
    return emit(stream->out, "message_start",
                json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:[], s:n, s:n, s:{s:i, s:i}}}", "type", "message_start",
                          "message", "id", message_id(request, openai_id), "type", "message", "role", "assistant",
                          "model", request->model ? request->model : "", "content", "stop_reason", "stop_sequence",
                          "usage", "input_tokens", 0, "output_tokens", 0));
}

static int close_block(anthropic_in_stream_t *stream)
{
    if (stream->open_block == BLOCK_NONE)
        return 0;
    stream->open_block = BLOCK_NONE;
    return emit(stream->out, "content_block_stop",
                json_pack("{s:s, s:i}", "type", "content_block_stop", "index", stream->block_count - 1));
}

static int on_text(anthropic_in_stream_t *stream, const json_t *text)
{
    if (json_string_length(text) == 0)
        return 0;
    int rc = 0;
    if (stream->open_block != BLOCK_TEXT) {
        rc = close_block(stream);
        rc |= emit(stream->out, "content_block_start",
                   json_pack("{s:s, s:i, s:{s:s, s:s}}", "type", "content_block_start", "index", stream->block_count,
                             "content_block", "type", "text", "text", ""));
        stream->block_count++;
        stream->open_block = BLOCK_TEXT;
    }
    return rc | emit(stream->out, "content_block_delta",
                     json_pack("{s:s, s:i, s:{s:s, s:O}}", "type", "content_block_delta", "index",
                               stream->block_count - 1, "delta", "type", "text_delta", "text", text));
}

static int on_tool_call(anthropic_in_stream_t *stream, const json_t *call)
{
    json_int_t index = json_integer_value(json_object_get(call, "index"));
    const char *id = json_string_value(json_object_get(call, "id"));
    const json_t *function = json_object_get(call, "function");
    const json_t *arguments = json_object_get(function, "arguments");
    if (index < 0 || index >= (json_int_t)(sizeof stream->tool_block / sizeof stream->tool_block[0]))
        return -1;
    int rc = 0;
    if (id != NULL && stream->tool_block[index] == 0) {
        const char *name = json_string_value(json_object_get(function, "name"));
        rc = close_block(stream);
        rc |= emit(stream->out, "content_block_start",
                   json_pack("{s:s, s:i, s:{s:s, s:s, s:s, s:{}}}", "type", "content_block_start", "index",
                             stream->block_count, "content_block", "type", "tool_use", "id", id, "name",
                             name ? name : "", "input"));
        stream->tool_block[index] = ++stream->block_count;
        stream->open_block = BLOCK_TOOL;
    }
    if (stream->tool_block[index] == 0)
        return -1; /* arguments for a call that never started */
    if (json_is_string(arguments) && json_string_length(arguments) > 0)
        rc |= emit(stream->out, "content_block_delta",
                   json_pack("{s:s, s:i, s:{s:s, s:O}}", "type", "content_block_delta", "index",
                             stream->tool_block[index] - 1, "delta", "type", "input_json_delta", "partial_json",
                             arguments));
    return rc;
}

static int finish_message(anthropic_in_stream_t *stream)
{
    stream->is_over = true;
    int rc = start_message(stream, NULL);
    rc |= close_block(stream);
    const usage_t *usage = &stream->usage;
    long input = usage->prompt_tokens - usage->cached_tokens;
    rc |= emit(stream->out, "message_delta",
               json_pack("{s:s, s:{s:s, s:n}, s:{s:I, s:I, s:I, s:I}}", "type", "message_delta", "delta",
                         "stop_reason", stream->stop_reason ? stream->stop_reason : "end_turn", "stop_sequence",
                         "usage", "input_tokens", (json_int_t)(input > 0 ? input : 0), "cache_creation_input_tokens",
                         (json_int_t)0, "cache_read_input_tokens", (json_int_t)usage->cached_tokens, "output_tokens",
                         (json_int_t)usage->completion_tokens));
    rc |= emit(stream->out, "message_stop", json_pack("{s:s}", "type", "message_stop"));
    return rc;
}

static int on_openai_event(void *argument, const sse_event_t *event)
{
    anthropic_in_stream_t *stream = argument;
    if (stream->is_over)
        return 0;
    if (event->data_length == 6 && memcmp(event->data, "[DONE]", 6) == 0)
        return finish_message(stream);
    json_t *chunk = json_loadb(event->data, event->data_length, 0, NULL);
    if (!json_is_object(chunk)) {
        json_decref(chunk);
        return 0; /* not JSON: nothing an Anthropic client could use */
    }
    int rc = 0;
    const json_t *error = json_object_get(chunk, "error");
    if (error != NULL) {
        stream->is_over = true;
        const char *type = json_string_value(json_object_get(error, "type"));
        const char *message = json_string_value(json_object_get(error, "message"));
        bool is_overloaded = type && (strstr(type, "overloaded") || strcmp(type, "upstream_error") == 0);
        bool is_rate_limited = type && strstr(type, "rate_limit");
        rc = emit(stream->out, "error",
                  json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type",
                            is_rate_limited ? "rate_limit_error" : is_overloaded ? "overloaded_error" : "api_error",
                            "message", message ? message : "upstream error"));
        json_decref(chunk);
        return rc;
    }
    const json_t *usage = json_object_get(chunk, "usage");
    if (json_is_object(usage))
        usage_from_openai(usage, &stream->usage);
    const json_t *choice = json_array_get(json_object_get(chunk, "choices"), 0);
    if (choice != NULL) {
        rc = start_message(stream, json_string_value(json_object_get(chunk, "id")));
        const json_t *delta = json_object_get(choice, "delta");
        const json_t *text = json_object_get(delta, "content");
        if (json_is_string(text))
            rc |= on_text(stream, text);
        size_t i;
        const json_t *call;
        json_array_foreach(json_object_get(delta, "tool_calls"), i, call) rc |= on_tool_call(stream, call);
        const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
        if (finish != NULL)
            stream->stop_reason = stop_reason_for(finish);
    }
    json_decref(chunk);
    return rc;
}

int anthropic_in_stream_encode(anthropic_in_stream_t *stream, request_t *request, const char *bytes, size_t length,
                               buf_t *out)
{
    stream->request = request;
    stream->out = out;
    return sse_parser_feed(&stream->parser, bytes, length, on_openai_event, stream) == 0 ? 0 : -1;
}

int anthropic_in_stream_finish(anthropic_in_stream_t *stream, request_t *request, buf_t *out)
{
    stream->request = request;
    stream->out = out;
    if (sse_parser_finish(&stream->parser, on_openai_event, stream) != 0)
        return -1;
    if (stream->is_over)
        return 0;
    stream->is_over = true;
    return emit(out, "error",
                json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type", "api_error", "message",
                          "the upstream stream ended before the message was complete"));
}
