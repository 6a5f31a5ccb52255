/* parse.c — the parse stage: size and depth limits, JSON, field validation.
 *
 * Everything a client can get wrong is caught here and answered with a 400
 * (or 413) that names the parameter, before any upstream money is spent. The
 * checks follow OpenAI's own: types, ranges and required fields, not
 * semantics the provider will judge better. */
#include "sluice/parse.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <string.h>

#include "sluice/anthropic_in.h"
#include "sluice/pipeline.h"

bool parse_json_too_deep(const char *text, size_t length, int max_depth)
{
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < length; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return true;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return false;
}

/* ---- field checks ------------------------------------------------------- */

typedef struct check {
    char *message;
    size_t size;
    char *param;
    size_t param_size;
} check_t;

static int invalid(check_t *check, const char *param, const char *format, const char *detail)
{
    snprintf(check->param, check->param_size, "%s", param);
    snprintf(check->message, check->size, format, param, detail ? detail : "");
    return -1;
}

static int check_number(check_t *check, const json_t *body, const char *name, double min, double max)
{
    const json_t *value = json_object_get(body, name);
    if (value == NULL || json_is_null(value))
        return 0;
    if (!json_is_number(value))
        return invalid(check, name, "'%s' must be a number%s", NULL);
    double number = json_number_value(value);
    if (number < min || number > max) {
        char range[64];
        snprintf(range, sizeof range, " between %g and %g", min, max);
        return invalid(check, name, "'%s' must be%s", range);
    }
    return 0;
}

static int check_integer(check_t *check, const json_t *body, const char *name, long long min, long long max)
{
    const json_t *value = json_object_get(body, name);
    if (value == NULL || json_is_null(value))
        return 0;
    if (!json_is_integer(value))
        return invalid(check, name, "'%s' must be an integer%s", NULL);
    long long number = json_integer_value(value);
    if (number < min || number > max) {
        char range[64];
        snprintf(range, sizeof range, " between %lld and %lld", min, max);
        return invalid(check, name, "'%s' must be%s", range);
    }
    return 0;
}

static int check_type(check_t *check, const json_t *body, const char *name, json_type type, const char *what)
{
    const json_t *value = json_object_get(body, name);
    if (value == NULL || json_is_null(value) || json_typeof(value) == type)
        return 0;
    if (type == JSON_TRUE && json_is_boolean(value))
        return 0;
    return invalid(check, name, "'%s' must be %s", what);
}

static int check_stop(check_t *check, const json_t *body)
{
    const json_t *stop = json_object_get(body, "stop");
    if (stop == NULL || json_is_null(stop) || json_is_string(stop))
        return 0;
    if (!json_is_array(stop) || json_array_size(stop) > 4)
        return invalid(check, "stop", "'%s' must be a string or an array of at most 4 strings%s", NULL);
    size_t index;
    const json_t *item;
    json_array_foreach(stop, index, item) if (!json_is_string(item)) return invalid(
        check, "stop", "'%s' must be a string or an array of at most 4 strings%s", NULL);
    return 0;
}

static int check_sampling(check_t *check, const json_t *body)
{
    if (check_number(check, body, "temperature", 0, 2) || check_number(check, body, "top_p", 0, 1) ||
        check_number(check, body, "presence_penalty", -2, 2) ||
        check_number(check, body, "frequency_penalty", -2, 2) || check_integer(check, body, "n", 1, 128) ||
        check_integer(check, body, "max_tokens", 1, 100000000) ||
        check_integer(check, body, "max_completion_tokens", 1, 100000000) ||
        check_integer(check, body, "seed", -(1LL << 62), 1LL << 62) ||
        check_type(check, body, "stream", JSON_TRUE, "a boolean") ||
        check_type(check, body, "stream_options", JSON_OBJECT, "an object") ||
        check_type(check, body, "user", JSON_STRING, "a string") ||
        check_type(check, body, "metadata", JSON_OBJECT, "an object") || check_stop(check, body))
        return -1;
    const json_t *options = json_object_get(body, "stream_options");
    const json_t *include_usage = json_object_get(options, "include_usage");
    if (include_usage != NULL && !json_is_boolean(include_usage))
        return invalid(check, "stream_options.include_usage", "'%s' must be a boolean%s", NULL);
    return 0;
}

/* Formats an indexed parameter name ("messages[3].role") only when a check
 * fails: the formatting cost a sixth of validating a valid request. */
static int invalid_at(check_t *check, const char *array, size_t index, const char *member, const char *format)
{
    char param[64];
    snprintf(param, sizeof param, "%s[%zu]%s", array, index, member);
    return invalid(check, param, format, NULL);
}

/* Returns NULL when the content is valid, or the message format for messages[index].content. */
static const char *content_problem(const json_t *content)
{
    if (content == NULL || json_is_null(content) || json_is_string(content))
        return NULL;
    if (!json_is_array(content))
        return "'%s' must be a string or an array of content parts%s";
    size_t index;
    const json_t *part;
    json_array_foreach(content, index, part)
    {
        if (!json_is_object(part) || !json_is_string(json_object_get(part, "type")))
            return "'%s' parts must be objects with a string 'type'%s";
    }
    return NULL;
}

static int check_message(check_t *check, const json_t *message, size_t index)
{
    static const char *const roles[] = {"system", "developer", "user", "assistant", "tool", "function", NULL};
    if (!json_is_object(message))
        return invalid_at(check, "messages", index, "", "'%s' must be an object%s");
    const json_t *role = json_object_get(message, "role");
    if (!json_is_string(role))
        return invalid_at(check, "messages", index, ".role", "'%s' is required and must be a string%s");
    int known = 0;
    for (size_t i = 0; roles[i] != NULL; i++)
        known |= strcmp(json_string_value(role), roles[i]) == 0;
    if (!known)
        return invalid_at(check, "messages", index, ".role",
                          "'%s' must be one of system, developer, user, assistant, tool%s");
    const char *problem = content_problem(json_object_get(message, "content"));
    if (problem != NULL)
        return invalid_at(check, "messages", index, ".content", problem);
    if (strcmp(json_string_value(role), "tool") == 0 && !json_is_string(json_object_get(message, "tool_call_id")))
        return invalid_at(check, "messages", index, ".tool_call_id", "'%s' is required for tool messages%s");
    const json_t *tool_calls = json_object_get(message, "tool_calls");
    if (tool_calls != NULL && !json_is_null(tool_calls) && !json_is_array(tool_calls))
        return invalid_at(check, "messages", index, ".tool_calls", "'%s' must be an array%s");
    return 0;
}

static int check_tools(check_t *check, const json_t *body)
{
    /* tool_choice and response_format are checked with or without tools. */
    const json_t *choice = json_object_get(body, "tool_choice");
    if (choice != NULL && !json_is_null(choice) && !json_is_string(choice) && !json_is_object(choice))
        return invalid(check, "tool_choice", "'%s' must be a string or an object%s", NULL);
    if (check_type(check, body, "response_format", JSON_OBJECT, "an object") != 0)
        return -1;
    const json_t *tools = json_object_get(body, "tools");
    if (tools == NULL || json_is_null(tools))
        return 0;
    if (!json_is_array(tools))
        return invalid(check, "tools", "'%s' must be an array%s", NULL);
    size_t index;
    const json_t *tool;
    json_array_foreach(tools, index, tool)
    {
        const json_t *function = json_object_get(tool, "function");
        if (!json_is_object(tool) || !json_is_object(function) ||
            !json_is_string(json_object_get(function, "name")))
            return invalid_at(check, "tools", index, ".function.name", "'%s' is required and must be a string%s");
    }
    return 0;
}

static int check_chat(check_t *check, const json_t *body)
{
    const json_t *messages = json_object_get(body, "messages");
    if (messages == NULL)
        return invalid(check, "messages", "'%s' is a required property%s", NULL);
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return invalid(check, "messages", "'%s' must be a non-empty array%s", NULL);
    size_t index;
    const json_t *message;
    json_array_foreach(messages, index, message) if (check_message(check, message, index) != 0) return -1;
    return check_sampling(check, body) || check_tools(check, body) ? -1 : 0;
}

static int is_token_array(const json_t *value)
{
    size_t index;
    const json_t *item;
    json_array_foreach(value, index, item) if (!json_is_integer(item)) return 0;
    return 1;
}

/* A string, or an array of strings, of integers, or of integer arrays. */
static int check_text_input(check_t *check, const json_t *body, const char *name, int is_required)
{
    const json_t *input = json_object_get(body, name);
    if (input == NULL || json_is_null(input))
        return is_required ? invalid(check, name, "'%s' is a required property%s", NULL) : 0;
    if (json_is_string(input))
        return 0;
    if (!json_is_array(input) || json_array_size(input) == 0)
        return invalid(check, name, "'%s' must be a string or a non-empty array%s", NULL);
    size_t index;
    const json_t *item;
    json_array_foreach(input, index, item)
    {
        if (!json_is_string(item) && !json_is_integer(item) && !(json_is_array(item) && is_token_array(item)))
            return invalid(check, name, "'%s' items must be strings, token ids or arrays of token ids%s", NULL);
    }
    return 0;
}

static int check_embeddings(check_t *check, const json_t *body)
{
    if (check_text_input(check, body, "input", 1) != 0 || check_integer(check, body, "dimensions", 1, 65536) ||
        check_type(check, body, "user", JSON_STRING, "a string"))
        return -1;
    const json_t *format = json_object_get(body, "encoding_format");
    if (format != NULL && !json_is_null(format) &&
        (!json_is_string(format) ||
         (strcmp(json_string_value(format), "float") != 0 && strcmp(json_string_value(format), "base64") != 0)))
        return invalid(check, "encoding_format", "'%s' must be \"float\" or \"base64\"%s", NULL);
    return 0;
}

int parse_validate(endpoint_t endpoint, const json_t *body, char *message, size_t size, char *param,
                   size_t param_size)
{
    check_t check = {.message = message, .size = size, .param = param, .param_size = param_size};
    if (!json_is_object(body))
        return invalid(&check, "body", "the request %s must be a JSON object", "");
    const json_t *model = json_object_get(body, "model");
    if (model == NULL)
        return invalid(&check, "model", "'%s' is a required property%s", NULL);
    if (!json_is_string(model) || json_string_length(model) == 0)
        return invalid(&check, "model", "'%s' must be a non-empty string%s", NULL);
    switch (endpoint) {
    case ENDPOINT_CHAT_COMPLETIONS: return check_chat(&check, body);
    case ENDPOINT_COMPLETIONS:
        return check_text_input(&check, body, "prompt", 0) || check_sampling(&check, body) ? -1 : 0;
    case ENDPOINT_EMBEDDINGS: return check_embeddings(&check, body);
    case ENDPOINT_MODELS:
    case ENDPOINT_NONE: return 0;
    }
    return 0;
}

/* ---- the stage ---------------------------------------------------------- */

static stage_result_t parse_on_request(request_t *request)
{
    if (request->endpoint == ENDPOINT_MODELS)
        return STAGE_CONTINUE; /* a GET: no body */
    struct evbuffer *input = evhttp_request_get_input_buffer(request->http);
    size_t length = evbuffer_get_length(input);
    request->bytes_in = length;
    size_t limit = request->config->server.max_body_bytes;
    if (length > limit) {
        request_reply_error(request, 413, "invalid_request_error", "request_too_large", NULL,
                            "request body is %zu bytes; the limit is %zu bytes", length, limit);
        return STAGE_RESPONDED;
    }
    const char *text = (const char *)evbuffer_pullup(input, -1);
    if (length == 0 || text == NULL) {
        request_reply_error(request, 400, "invalid_request_error", NULL, NULL,
                            "the request body is empty; send a JSON object");
        return STAGE_RESPONDED;
    }
    if (parse_json_too_deep(text, length, request->config->server.max_json_depth)) {
        request_reply_error(request, 400, "invalid_request_error", NULL, NULL,
                            "the request JSON is nested deeper than %d levels", request->config->server.max_json_depth);
        return STAGE_RESPONDED;
    }
    json_error_t error;
    request->body = json_loadb(text, length, JSON_REJECT_DUPLICATES, &error);
    if (request->body == NULL) {
        /* jansson names its own flag for a \u0000; say what the client can act on. */
        const char *reason = strstr(error.text, "JSON_ALLOW_NUL") ? "strings may not contain \\u0000" : error.text;
        request_reply_error(request, 400, "invalid_request_error", NULL, NULL,
                            "the request body is not valid JSON: %s (line %d, column %d)", reason, error.line,
                            error.column);
        return STAGE_RESPONDED;
    }
    char message[256], param[96];
    if (request->is_anthropic_api) {
        json_t *openai_body = NULL;
        if (anthropic_in_request(request->body, &openai_body, message, sizeof message, param, sizeof param) != 0) {
            if (message[0] == '\0')
                return STAGE_ERROR;
            request_reply_error(request, 400, "invalid_request_error", NULL, param, "%s", message);
            return STAGE_RESPONDED;
        }
        json_decref(request->body);
        request->body = openai_body;
    } else {
        request->raw_body = arena_strndup(&request->arena, text, length);
        request->raw_body_length = request->raw_body ? length : 0;
    }
    if (parse_validate(request->endpoint, request->body, message, sizeof message, param, sizeof param) != 0) {
        request_reply_error(request, 400, "invalid_request_error", NULL, param, "%s", message);
        return STAGE_RESPONDED;
    }
    request->model = arena_strdup(&request->arena, json_string_value(json_object_get(request->body, "model")));
    if (request->model == NULL)
        return STAGE_ERROR;
    const json_t *user = json_object_get(request->body, "user");
    if (request->user == NULL && json_is_string(user))
        request->user = arena_strdup(&request->arena, json_string_value(user));
    request->is_stream = json_is_true(json_object_get(request->body, "stream")) &&
                         request->endpoint != ENDPOINT_EMBEDDINGS;
    request->client_wants_usage =
        json_is_true(json_object_get(json_object_get(request->body, "stream_options"), "include_usage"));
    return STAGE_CONTINUE;
}

const stage_t stage_parse = {.name = "parse", .on_request = parse_on_request, .on_complete = NULL};
