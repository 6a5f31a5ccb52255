/* mock_anthropic.c — the Anthropic Messages API (POST /v1/messages).
 *
 * Checks what Anthropic checks, so a gateway that translates badly hears about it: the x-api-key
 * (or Authorization) and anthropic-version headers, `max_tokens` present, and messages that
 * start with the user and alternate user/assistant (a translator must merge consecutive turns
 * and put one turn's tool results in one user message). Streams follow the real event sequence:
 * message_start, content_block_start, ping, content_block_delta*, content_block_stop,
 * message_delta (stop_reason, cumulative output_tokens), message_stop — each as
 * `event: NAME\ndata: JSON\n\n`. An injected failure is `event: error` with overloaded_error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"

json_t *mock_anthropic_error_body(int status, const char *message)
{
    const char *type;
    switch (status) {
    case 400: type = "invalid_request_error"; break;
    case 401: type = "authentication_error"; break;
    case 402: type = "billing_error"; break;
    case 403: type = "permission_error"; break;
    case 404: type = "not_found_error"; break;
    case 413: type = "request_too_large"; break;
    case 429: type = "rate_limit_error"; break;
    case 504: type = "timeout_error"; break;
    case 529: type = "overloaded_error"; break;
    default: type = status >= 500 ? "api_error" : "invalid_request_error"; break;
    }
    char *request_id = mock_text_id("req_mock");
    json_t *body = json_pack("{s:s, s:{s:s, s:s}, s:s}", "type", "error", "error", "type", type, "message", message,
                             "request_id", request_id ? request_id : "req_mock");
    free(request_id);
    return body;
}

/* Text of a content value (a string or blocks); tool_result blocks count their text too. */
static void collect_text(const json_t *content, char **text, size_t *length, bool *has_tool_result)
{
    if (json_is_string(content)) {
        const char *piece = json_string_value(content);
        size_t add = strlen(piece);
        char *grown = realloc(*text, *length + add + 2);
        if (grown == NULL)
            return;
        *text = grown;
        if (*length > 0)
            (*text)[(*length)++] = ' ';
        memcpy(*text + *length, piece, add + 1);
        *length += add;
        return;
    }
    size_t index;
    json_t *block;
    json_array_foreach(content, index, block) {
        const char *type = json_string_value(json_object_get(block, "type"));
        if (type == NULL)
            continue;
        if (strcmp(type, "text") == 0) {
            collect_text(json_object_get(block, "text"), text, length, has_tool_result);
        } else if (strcmp(type, "tool_result") == 0) {
            if (has_tool_result != NULL)
                *has_tool_result = true;
            collect_text(json_object_get(block, "content"), text, length, NULL);
        }
    }
}

/* NULL when the conversation is valid, else Anthropic's complaint. */
static const char *check_messages(const json_t *messages)
{
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return "messages: at least one message is required";
    const char *previous = NULL;
    size_t index;
    json_t *message;
    json_array_foreach(messages, index, message) {
        const char *role = json_string_value(json_object_get(message, "role"));
        if (role == NULL || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
            return "messages: roles must be \"user\" or \"assistant\" (the system prompt is the top-level `system` field)";
        if (index == 0 && strcmp(role, "user") != 0)
            return "messages: first message must use the \"user\" role";
        if (previous != NULL && strcmp(previous, role) == 0)
            return "messages: roles must alternate between \"user\" and \"assistant\", but found multiple turns "
                   "with the same role in a row";
        const json_t *content = json_object_get(message, "content");
        if (!json_is_string(content) && !json_is_array(content))
            return "messages: content must be a string or an array of content blocks";
        if (json_is_array(content) && json_array_size(content) == 0)
            return "messages: all messages must have non-empty content";
        previous = role;
    }
    return NULL;
}

static const char *choose_tool(const json_t *body, const mock_directives_t *directives, bool is_tool_result_turn,
                               const json_t **schema)
{
    const json_t *tools = json_object_get(body, "tools");
    const char *choice = json_string_value(json_object_get(json_object_get(body, "tool_choice"), "type"));
    *schema = NULL;
    if (directives->tool_call != NULL) {
        size_t index;
        json_t *tool;
        json_array_foreach(tools, index, tool) {
            const char *name = json_string_value(json_object_get(tool, "name"));
            if (name != NULL && strcmp(name, directives->tool_call) == 0)
                *schema = json_object_get(tool, "input_schema");
        }
        return directives->tool_call;
    }
    if (json_array_size(tools) == 0 || is_tool_result_turn || (choice != NULL && strcmp(choice, "none") == 0))
        return NULL;
    *schema = json_object_get(json_array_get(tools, 0), "input_schema");
    return json_string_value(json_object_get(json_array_get(tools, 0), "name"));
}

static json_t *usage_json(const mock_answer_t *answer)
{
    return json_pack("{s:i, s:i, s:i, s:i, s:s}", "input_tokens", answer->prompt_tokens, "cache_creation_input_tokens",
                     0, "cache_read_input_tokens", 0, "output_tokens", answer->completion_tokens, "service_tier",
                     "standard");
}

static const char *stop_reason(const mock_directives_t *directives, const mock_answer_t *answer)
{
    if (directives->finish[0] != '\0')
        return directives->finish;
    return answer->tool_name ? "tool_use" : "end_turn";
}

static void reply_body(mock_call_t *call, const mock_answer_t *answer, const char *id)
{
    json_t *block;
    if (answer->tool_name != NULL)
        block = json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", answer->tool_id, "name", answer->tool_name,
                          "input", json_loads(answer->tool_arguments, 0, NULL));
    else
        block = json_pack("{s:s, s:s}", "type", "text", "text", answer->text);
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:[o], s:s, s:n}", "id", id, "type", "message", "role", "assistant",
                             "model", answer->model, "content", block, "stop_reason",
                             stop_reason(&call->directives, answer), "stop_sequence");
    json_object_set_new(body, "usage", call->directives.has_usage ? usage_json(answer) : json_object());
    mock_reply_json(call, 200, body);
}

static void reply_stream(mock_call_t *call, const mock_answer_t *answer, const char *id)
{
    mock_frames_t *frames = mock_frames_new();
    if (frames == NULL) {
        mock_reply_stream(call, "text/event-stream", NULL);
        return;
    }
    static const char error_event[] = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                                      "\"message\":\"Overloaded\"}}\n\n";
    mock_frames_set_error(frames, error_event, sizeof error_event - 1);
    json_t *start_usage = json_pack("{s:i, s:i, s:i, s:i, s:s}", "input_tokens", answer->prompt_tokens,
                                    "cache_creation_input_tokens", 0, "cache_read_input_tokens", 0, "output_tokens", 1,
                                    "service_tier", "standard");
    json_t *message = json_pack("{s:s, s:s, s:s, s:s, s:[], s:n, s:n, s:o}", "id", id, "type", "message", "role",
                                "assistant", "model", answer->model, "content", "stop_reason", "stop_sequence", "usage",
                                start_usage);
    mock_frames_add_sse(frames, MOCK_FRAME_PLAIN, "message_start",
                        json_pack("{s:s, s:o}", "type", "message_start", "message", message), "\n");
    const char *text = answer->text;
    const char *delta_type = "text_delta";
    const char *delta_field = "text";
    int pieces = call->directives.chunks;
    json_t *block;
    if (answer->tool_name != NULL) {
        block = json_pack("{s:s, s:s, s:s, s:{}}", "type", "tool_use", "id", answer->tool_id, "name", answer->tool_name,
                          "input");
        text = answer->tool_arguments;
        delta_type = "input_json_delta";
        delta_field = "partial_json";
        pieces = pieces > 0 ? pieces : 4;
    } else {
        block = json_pack("{s:s, s:s}", "type", "text", "text", "");
    }
    mock_frames_add_sse(frames, MOCK_FRAME_PLAIN, "content_block_start",
                        json_pack("{s:s, s:i, s:o}", "type", "content_block_start", "index", 0, "content_block", block),
                        "\n");
    mock_frames_add_sse(frames, MOCK_FRAME_PLAIN, "ping", json_pack("{s:s}", "type", "ping"), "\n");
    if (answer->tool_name != NULL) /* Anthropic's first partial_json is usually empty */
        mock_frames_add_sse(frames, MOCK_FRAME_PLAIN, "content_block_delta",
                            json_pack("{s:s, s:i, s:{s:s, s:s}}", "type", "content_block_delta", "index", 0, "delta",
                                      "type", delta_type, delta_field, ""),
                            "\n");
    size_t *ends = malloc(sizeof *ends * mock_text_split_capacity(text, pieces));
    int count = ends ? mock_text_split(text, pieces, ends) : 0;
    for (int i = 0, start = 0; i < count; start = (int)ends[i], i++)
        mock_frames_add_sse(frames, MOCK_FRAME_CONTENT, "content_block_delta",
                            json_pack("{s:s, s:i, s:{s:s, s:s%}}", "type", "content_block_delta", "index", 0, "delta",
                                      "type", delta_type, delta_field, text + start, ends[i] - (size_t)start),
                            "\n");
    free(ends);
    mock_frames_begin_trailer(frames);
    mock_frames_add_sse(frames, MOCK_FRAME_PLAIN, "content_block_stop",
                        json_pack("{s:s, s:i}", "type", "content_block_stop", "index", 0), "\n");
    json_t *delta_usage = call->directives.has_usage
                              ? json_pack("{s:i}", "output_tokens", answer->completion_tokens)
                              : json_object();
    mock_frames_add_sse(frames, MOCK_FRAME_PLAIN, "message_delta",
                        json_pack("{s:s, s:{s:s, s:n}, s:o}", "type", "message_delta", "delta", "stop_reason",
                                  stop_reason(&call->directives, answer), "stop_sequence", "usage", delta_usage),
                        "\n");
    mock_frames_add_sse(frames, MOCK_FRAME_PLAIN, "message_stop", json_pack("{s:s}", "type", "message_stop"), "\n");
    mock_reply_stream(call, "text/event-stream", frames);
}

void mock_anthropic_handle(mock_call_t *call)
{
    if (mock_header(call, "x-api-key") == NULL && mock_header(call, "authorization") == NULL) {
        mock_reply_error(call, 401, "x-api-key header is required");
        return;
    }
    if (mock_header(call, "anthropic-version") == NULL) {
        mock_reply_error(call, 400, "anthropic-version: header is required");
        return;
    }
    if (!json_is_object(call->json)) {
        mock_reply_error(call, 400, "There was an issue with your request body: it is not valid JSON");
        return;
    }
    mock_answer_t answer = { 0 };
    answer.model = mock_directives_from_model(&call->directives, json_string_value(json_object_get(call->json, "model")));
    const json_t *messages = json_object_get(call->json, "messages");
    const char *problem = check_messages(messages);
    if (problem == NULL && !json_is_integer(json_object_get(call->json, "max_tokens")))
        problem = "max_tokens: Field required";
    if (problem != NULL) {
        mock_reply_error(call, 400, problem);
        mock_answer_free(&answer);
        return;
    }
    char *all_text = NULL;
    size_t prompt_characters = 0;
    collect_text(json_object_get(call->json, "system"), &all_text, &prompt_characters, NULL);
    char *last_user = NULL;
    bool is_tool_result_turn = false;
    size_t index;
    json_t *message;
    json_array_foreach(messages, index, message) {
        char *text = NULL;
        size_t length = 0;
        bool has_tool_result = false;
        collect_text(json_object_get(message, "content"), &text, &length, &has_tool_result);
        prompt_characters += length;
        if (strcmp(json_string_value(json_object_get(message, "role")), "user") == 0) {
            free(last_user);
            last_user = text;
            is_tool_result_turn = has_tool_result;
        } else {
            free(text);
        }
    }
    free(all_text);
    mock_directives_from_text(&call->directives, last_user);
    if (!mock_reply_directed_error(call)) {
        const json_t *schema;
        const char *tool = choose_tool(call->json, &call->directives, is_tool_result_turn, &schema);
        if (mock_answer_build(&answer, &call->directives, last_user, prompt_characters, tool, schema, "toolu_mock") !=
            0) {
            mock_reply_error(call, 500, "mock out of memory");
        } else {
            char *id = mock_text_id("msg_mock");
            mock_add_header(call, "request-id", id ? id : "req_mock");
            if (json_is_true(json_object_get(call->json, "stream")))
                reply_stream(call, &answer, id ? id : "msg_mock");
            else
                reply_body(call, &answer, id ? id : "msg_mock");
            free(id);
        }
    }
    free(last_user);
    mock_answer_free(&answer);
}

void mock_anthropic_models(mock_call_t *call)
{
    static const char *const ids[] = { "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1" };
    json_t *data = json_array();
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        json_array_append_new(data, json_pack("{s:s, s:s, s:s, s:s}", "type", "model", "id", ids[i], "display_name",
                                              ids[i], "created_at", "2025-01-01T00:00:00Z"));
    mock_reply_json(call, 200, json_pack("{s:o, s:b, s:s, s:s}", "data", data, "has_more", 0, "first_id", ids[0],
                                         "last_id", ids[2]));
}
