/* mock_bedrock.c — AWS Bedrock runtime: Converse, ConverseStream and InvokeModel (Titan
 * embeddings).
 *
 * POST /model/{modelId}/converse | converse-stream | invoke, modelId one percent-encoded path
 * segment (ids contain ':'). Authentication: with --aws-access-key-id/--aws-secret-access-key
 * every SigV4 signature is verified (mock_sigv4.c); a Bedrock API key may come as
 * `Authorization: Bearer` (checked against --require-key when given). ConverseStream answers in
 * the binary event-stream framing (mock_eventstream.c) with Bedrock's own quirks: text blocks get
 * no contentBlockStart (only toolUse blocks do) and every payload carries a random-looking `p`
 * padding field. Errors: `x-amzn-errortype` + `{"message"}`; in a stream, an exception frame. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"

const char *mock_bedrock_error_type(int status)
{
    switch (status) {
    case 400: return "ValidationException";
    case 401:
    case 403: return "AccessDeniedException";
    case 404: return "ResourceNotFoundException";
    case 408: return "ModelTimeoutException";
    case 424: return "ModelErrorException";
    case 429: return "ThrottlingException";
    case 503: return "ServiceUnavailableException";
    default: return status >= 500 ? "InternalServerException" : "ValidationException";
    }
}

static void reply_aws_error(mock_call_t *call, int status, const char *type, const char *message)
{
    char header[160];
    snprintf(header, sizeof header, "%s:http://internal.amazon.com/coral/com.amazon.bedrock/", type);
    mock_add_header(call, "x-amzn-errortype", header);
    mock_reply_json(call, status, json_pack("{s:s}", "message", message));
}

/* SigV4 when credentials are configured, a Bearer API key when --require-key is set. */
static bool is_authorized(mock_call_t *call)
{
    const char *authorization = mock_header(call, "authorization");
    bool has_credentials = mock_options.aws_access_key_id != NULL;
    if (authorization != NULL && strncmp(authorization, "Bearer ", 7) == 0) {
        if (mock_options.require_key == NULL || strcmp(authorization + 7, mock_options.require_key) == 0)
            return true;
        reply_aws_error(call, 403, "UnrecognizedClientException", "Invalid API Key format: Must start with pre-defined prefix");
        return false;
    }
    if (!has_credentials) {
        if (mock_options.require_key == NULL || authorization != NULL)
            return true; /* nothing to verify against: accept any signature */
        reply_aws_error(call, 403, "MissingAuthenticationTokenException", "Missing Authentication Token");
        return false;
    }
    char type[64];
    char message[256];
    int status = mock_sigv4_verify(call, mock_options.aws_access_key_id, mock_options.aws_secret_access_key, type,
                                   sizeof type, message, sizeof message);
    if (status == 0)
        return true;
    reply_aws_error(call, status, type, message);
    return false;
}

/* Text of content blocks; toolResult contents count too and mark the turn. */
static char *blocks_text(const json_t *blocks, size_t *length, bool *has_tool_result)
{
    char *text = NULL;
    *length = 0;
    size_t index;
    json_t *block;
    json_array_foreach(blocks, index, block) {
        const char *piece = json_string_value(json_object_get(block, "text"));
        if (piece != NULL)
            mock_text_append(piece, &text, length);
        const json_t *result = json_object_get(block, "toolResult");
        if (result != NULL) {
            if (has_tool_result != NULL)
                *has_tool_result = true;
            size_t inner_index;
            json_t *inner;
            json_array_foreach(json_object_get(result, "content"), inner_index, inner) {
                const char *inner_text = json_string_value(json_object_get(inner, "text"));
                if (inner_text != NULL)
                    mock_text_append(inner_text, &text, length);
            }
        }
    }
    return text;
}

static const char *check_messages(const json_t *messages)
{
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return "The model returned the following errors: messages: at least one message is required";
    const char *previous = NULL;
    size_t index;
    json_t *message;
    json_array_foreach(messages, index, message) {
        const char *role = json_string_value(json_object_get(message, "role"));
        if (role == NULL || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
            return "1 validation error detected: Value at 'messages.role' failed to satisfy constraint: Member must "
                   "satisfy enum value set: [user, assistant]";
        if (index == 0 && strcmp(role, "user") != 0)
            return "A conversation must start with a user message. Try again with a conversation that starts with a "
                   "user message.";
        if (previous != NULL && strcmp(previous, role) == 0)
            return "A conversation must alternate between user and assistant roles. Make sure the conversation "
                   "alternates between user and assistant roles and try again.";
        const json_t *content = json_object_get(message, "content");
        if (!json_is_array(content) || json_array_size(content) == 0)
            return "The content field in the Message object at messages.0 is empty. Add a ContentBlock object to the "
                   "content field and try again.";
        previous = role;
    }
    return NULL;
}

static const char *choose_tool(const json_t *body, const mock_directives_t *directives, bool is_tool_result_turn,
                               const json_t **schema)
{
    const json_t *tools = json_object_get(json_object_get(body, "toolConfig"), "tools");
    const json_t *chosen = NULL;
    *schema = NULL;
    size_t index;
    json_t *tool;
    json_array_foreach(tools, index, tool) {
        const json_t *spec = json_object_get(tool, "toolSpec");
        const char *name = json_string_value(json_object_get(spec, "name"));
        if (chosen == NULL && directives->tool_call == NULL && spec != NULL)
            chosen = spec;
        if (directives->tool_call != NULL && name != NULL && strcmp(name, directives->tool_call) == 0)
            chosen = spec;
    }
    if (directives->tool_call == NULL && (chosen == NULL || is_tool_result_turn))
        return NULL;
    *schema = json_object_get(json_object_get(chosen, "inputSchema"), "json");
    return directives->tool_call ? directives->tool_call : json_string_value(json_object_get(chosen, "name"));
}

static const char *stop_reason(const mock_call_t *call, const mock_answer_t *answer)
{
    if (call->directives.finish[0] != '\0')
        return call->directives.finish;
    return answer->tool_name ? "tool_use" : "end_turn";
}

static json_t *usage_json(const mock_answer_t *answer)
{
    return json_pack("{s:i, s:i, s:i}", "inputTokens", answer->prompt_tokens, "outputTokens", answer->completion_tokens,
                     "totalTokens", answer->prompt_tokens + answer->completion_tokens);
}

static void reply_body(mock_call_t *call, const mock_answer_t *answer)
{
    json_t *block = answer->tool_name
                        ? json_pack("{s:{s:s, s:s, s:o}}", "toolUse", "toolUseId", answer->tool_id, "name",
                                    answer->tool_name, "input", json_loads(answer->tool_arguments, 0, NULL))
                        : json_pack("{s:s}", "text", answer->text);
    json_t *body = json_pack("{s:{s:{s:s, s:[o]}}, s:s, s:{s:i}}", "output", "message", "role", "assistant", "content",
                             block, "stopReason", stop_reason(call, answer), "metrics", "latencyMs",
                             call->directives.delay_ms);
    if (call->directives.has_usage)
        json_object_set_new(body, "usage", usage_json(answer));
    mock_reply_json(call, 200, body);
}

/* Adds the `p` padding Bedrock puts in every event, of a length that varies by event. */
static void add_event(mock_frames_t *frames, mock_frame_kind_t kind, const char *event_type, json_t *payload,
                      int sequence)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    json_object_set_new(payload, "p", json_stringn(alphabet, (size_t)(1 + (sequence * 7) % 40)));
    char *json = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    struct evbuffer *frame = evbuffer_new();
    if (json != NULL && frame != NULL && mock_eventstream_frame(frame, "event", event_type, json, strlen(json)) == 0) {
        size_t length = evbuffer_get_length(frame);
        mock_frames_add(frames, kind, evbuffer_pullup(frame, -1), length);
    }
    if (frame != NULL)
        evbuffer_free(frame);
    free(json);
}

static void reply_stream(mock_call_t *call, const mock_answer_t *answer)
{
    mock_frames_t *frames = mock_frames_new();
    struct evbuffer *error = evbuffer_new();
    if (frames == NULL || error == NULL) {
        if (error != NULL)
            evbuffer_free(error);
        mock_frames_free(frames);
        mock_reply_stream(call, "application/vnd.amazon.eventstream", NULL);
        return;
    }
    static const char error_payload[] = "{\"message\":\"mock: injected error after HTTP 200\",\"originalStatusCode\":500}";
    if (mock_eventstream_frame(error, "exception", "modelStreamErrorException", error_payload,
                               sizeof error_payload - 1) == 0)
        mock_frames_set_error(frames, evbuffer_pullup(error, -1), evbuffer_get_length(error));
    evbuffer_free(error);

    int sequence = 0;
    add_event(frames, MOCK_FRAME_PLAIN, "messageStart", json_pack("{s:s}", "role", "assistant"), sequence++);
    const char *text = answer->text;
    int pieces = call->directives.chunks;
    if (answer->tool_name != NULL) {
        add_event(frames, MOCK_FRAME_PLAIN, "contentBlockStart",
                  json_pack("{s:i, s:{s:{s:s, s:s}}}", "contentBlockIndex", 0, "start", "toolUse", "toolUseId",
                            answer->tool_id, "name", answer->tool_name),
                  sequence++);
        text = answer->tool_arguments;
        pieces = pieces > 0 ? pieces : 4;
    }
    size_t *ends = malloc(sizeof *ends * mock_text_split_capacity(text, pieces));
    int count = ends ? mock_text_split(text, pieces, ends) : 0;
    for (int i = 0, start = 0; i < count; start = (int)ends[i], i++) {
        size_t length = ends[i] - (size_t)start;
        json_t *delta = answer->tool_name ? json_pack("{s:{s:s%}}", "toolUse", "input", text + start, length)
                                          : json_pack("{s:s%}", "text", text + start, length);
        add_event(frames, MOCK_FRAME_CONTENT, "contentBlockDelta",
                  json_pack("{s:i, s:o}", "contentBlockIndex", 0, "delta", delta), sequence++);
    }
    free(ends);
    mock_frames_begin_trailer(frames);
    add_event(frames, MOCK_FRAME_PLAIN, "contentBlockStop", json_pack("{s:i}", "contentBlockIndex", 0), sequence++);
    add_event(frames, MOCK_FRAME_PLAIN, "messageStop", json_pack("{s:s}", "stopReason", stop_reason(call, answer)),
              sequence++);
    json_t *metadata = json_pack("{s:{s:i}}", "metrics", "latencyMs", call->directives.delay_ms);
    if (call->directives.has_usage)
        json_object_set_new(metadata, "usage", usage_json(answer));
    add_event(frames, MOCK_FRAME_PLAIN, "metadata", metadata, sequence++);
    mock_reply_stream(call, "application/vnd.amazon.eventstream", frames);
}

static void handle_converse(mock_call_t *call, char *model, bool is_stream)
{
    const json_t *messages = json_object_get(call->json, "messages");
    const char *problem = check_messages(messages);
    if (problem != NULL) {
        reply_aws_error(call, 400, "ValidationException", problem);
        return;
    }
    size_t prompt_characters = 0;
    size_t length;
    free(blocks_text(json_object_get(call->json, "system"), &length, NULL));
    prompt_characters += length;
    char *last_user = NULL;
    bool is_tool_result_turn = false;
    size_t index;
    json_t *message;
    json_array_foreach(messages, index, message) {
        bool has_tool_result = false;
        char *text = blocks_text(json_object_get(message, "content"), &length, &has_tool_result);
        prompt_characters += length;
        if (strcmp(json_string_value(json_object_get(message, "role")), "user") == 0) {
            free(last_user);
            last_user = text;
            is_tool_result_turn = has_tool_result;
        } else {
            free(text);
        }
    }
    mock_directives_from_text(&call->directives, last_user);
    mock_answer_t answer = { .model = model };
    if (!mock_reply_directed_error(call)) {
        const json_t *schema;
        const char *tool = choose_tool(call->json, &call->directives, is_tool_result_turn, &schema);
        if (mock_answer_build(&answer, &call->directives, last_user, prompt_characters, tool, schema, "tooluse_") != 0)
            reply_aws_error(call, 500, "InternalServerException", "mock out of memory");
        else if (is_stream)
            reply_stream(call, &answer);
        else
            reply_body(call, &answer);
    }
    answer.model = NULL; /* owned by the caller */
    free(last_user);
    mock_answer_free(&answer);
}

/* InvokeModel for Titan text embeddings: {"inputText", "dimensions"?} -> {"embedding", ...}. */
static void handle_invoke(mock_call_t *call)
{
    const char *input = json_string_value(json_object_get(call->json, "inputText"));
    if (input == NULL) {
        reply_aws_error(call, 400, "ValidationException", "Malformed input request: required key [inputText] not found");
        return;
    }
    mock_directives_from_text(&call->directives, input);
    if (mock_reply_directed_error(call))
        return;
    int dimensions = call->directives.embed_dim;
    if (dimensions <= 0)
        dimensions = (int)json_integer_value(json_object_get(call->json, "dimensions"));
    if (dimensions <= 0 || dimensions > 65536)
        dimensions = mock_options.embed_dim;
    mock_reply_json(call, 200, json_pack("{s:o, s:i}", "embedding", mock_text_embedding_json(input, dimensions, false),
                                         "inputTextTokenCount", mock_text_tokens_for_chars(strlen(input))));
}

void mock_bedrock_handle(mock_call_t *call, const char *model_id, const char *action)
{
    char *request_id = mock_text_id("mock-");
    mock_add_header(call, "x-amzn-requestid", request_id ? request_id : "mock");
    free(request_id);
    if (!is_authorized(call))
        return;
    if (!json_is_object(call->json)) {
        reply_aws_error(call, 400, "ValidationException", "Malformed request body: not a JSON object");
        return;
    }
    char *model = mock_directives_from_model(&call->directives, model_id);
    if (model == NULL) {
        reply_aws_error(call, 500, "InternalServerException", "mock out of memory");
        return;
    }
    if (strcmp(action, "converse") == 0)
        handle_converse(call, model, false);
    else if (strcmp(action, "converse-stream") == 0)
        handle_converse(call, model, true);
    else if (strcmp(action, "invoke") == 0)
        handle_invoke(call);
    else
        reply_aws_error(call, 404, "UnknownOperationException", "mock: unknown Bedrock operation");
    free(model);
}
