/* mock_openai.c — the OpenAI wire format, and Azure OpenAI, which speaks the same bodies.
 *
 * Endpoints: chat/completions (stream and not, tools, stream_options.include_usage),
 * completions (legacy), embeddings (float or base64, `dimensions`) and models. Streams are framed
 * exactly as OpenAI does: `data: {json}\n\n` chunks, then `data: [DONE]\n\n`; an injected error
 * after HTTP 200 is `data: {"error":{...}}\n\n` and the stream ends without [DONE].
 * Azure differences: the deployment in the path is the model, bodies carry content-filter
 * results, and a stream opens with a `choices: []` chunk carrying prompt_filter_results. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mock.h"

json_t *mock_openai_error_body(int status, const char *message)
{
    const char *type = status >= 500 ? "server_error" : "invalid_request_error";
    const char *code = NULL;
    switch (status) {
    case 401: code = "invalid_api_key"; break;
    case 403: code = "permission_denied"; break;
    case 404: code = "model_not_found"; break;
    case 429: type = "requests"; code = "rate_limit_exceeded"; break;
    case 503: code = "service_unavailable"; break;
    default: break;
    }
    return json_pack("{s:{s:s, s:s, s:n, s:s?}}", "error", "message", message, "type", type, "param", "code", code);
}

/* The text of a message's content: a string, or the text parts of an array joined by spaces. */
static void append_text(const char *piece, char **text, size_t *length)
{
    size_t add = strlen(piece);
    char *grown = realloc(*text, *length + add + 2);
    if (grown == NULL)
        return;
    *text = grown;
    if (*length > 0)
        (*text)[(*length)++] = ' ';
    memcpy(*text + *length, piece, add);
    *length += add;
    (*text)[*length] = '\0';
}

static void append_content_text(const json_t *content, char **text, size_t *length)
{
    if (json_is_string(content)) {
        append_text(json_string_value(content), text, length);
        return;
    }
    size_t index;
    json_t *part;
    json_array_foreach(content, index, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        const char *part_text = json_string_value(json_object_get(part, "text"));
        if (type != NULL && strcmp(type, "text") == 0 && part_text != NULL)
            append_text(part_text, text, length);
    }
}

/* Sum of text characters in all messages, and the last user message's text (heap). */
static char *scan_messages(const json_t *messages, size_t *prompt_characters, const char **last_role)
{
    char *last_user = NULL;
    *prompt_characters = 0;
    *last_role = NULL;
    size_t index;
    json_t *message;
    json_array_foreach(messages, index, message) {
        char *text = NULL;
        size_t length = 0;
        append_content_text(json_object_get(message, "content"), &text, &length);
        *prompt_characters += length;
        const char *role = json_string_value(json_object_get(message, "role"));
        *last_role = role;
        if (role != NULL && strcmp(role, "user") == 0) {
            free(last_user);
            last_user = text ? text : strdup("");
        } else {
            free(text);
        }
    }
    return last_user;
}

/* The tool to call: the `tool_call=` directive, else the first declared tool when the turn is
 * the user's (a tool result gets a text answer) and tool_choice is not "none". */
static const char *choose_tool(const json_t *body, const mock_directives_t *directives, const char *last_role,
                               const json_t **parameters)
{
    const json_t *tools = json_object_get(body, "tools");
    *parameters = NULL;
    if (directives->tool_call != NULL) {
        size_t index;
        json_t *tool;
        json_array_foreach(tools, index, tool) {
            const json_t *function = json_object_get(tool, "function");
            const char *name = json_string_value(json_object_get(function, "name"));
            if (name != NULL && strcmp(name, directives->tool_call) == 0)
                *parameters = json_object_get(function, "parameters");
        }
        return directives->tool_call;
    }
    const char *choice = json_string_value(json_object_get(body, "tool_choice"));
    if (json_array_size(tools) == 0 || (choice != NULL && strcmp(choice, "none") == 0))
        return NULL;
    if (last_role == NULL || strcmp(last_role, "user") != 0)
        return NULL;
    const json_t *function = json_object_get(json_array_get(tools, 0), "function");
    *parameters = json_object_get(function, "parameters");
    return json_string_value(json_object_get(function, "name"));
}

static bool has_quirk(const mock_call_t *call, const char *name)
{
    return strcmp(call->directives.quirk, name) == 0;
}

/* DeepSeek's usage: prompt_cache_hit_tokens / prompt_cache_miss_tokens (half the prompt a hit),
 * no prompt_tokens_details. */
static json_t *deepseek_usage_json(const mock_answer_t *answer)
{
    int hit = answer->prompt_tokens / 2;
    return json_pack("{s:i, s:i, s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", answer->prompt_tokens, "completion_tokens",
                     answer->completion_tokens, "total_tokens", answer->prompt_tokens + answer->completion_tokens,
                     "prompt_cache_hit_tokens", hit, "prompt_cache_miss_tokens", answer->prompt_tokens - hit,
                     "completion_tokens_details", "reasoning_tokens", 0);
}

static json_t *usage_json(const mock_answer_t *answer)
{
    return json_pack("{s:i, s:i, s:i, s:{s:i, s:i}, s:{s:i, s:i, s:i, s:i}}", "prompt_tokens", answer->prompt_tokens,
                     "completion_tokens", answer->completion_tokens, "total_tokens",
                     answer->prompt_tokens + answer->completion_tokens, "prompt_tokens_details", "cached_tokens", 0,
                     "audio_tokens", 0, "completion_tokens_details", "reasoning_tokens", 0, "audio_tokens", 0,
                     "accepted_prediction_tokens", 0, "rejected_prediction_tokens", 0);
}

static json_t *filter_results(void)
{
    return json_pack("{s:{s:b, s:s}, s:{s:b, s:s}, s:{s:b, s:s}, s:{s:b, s:s}}", "hate", "filtered", 0, "severity",
                     "safe", "self_harm", "filtered", 0, "severity", "safe", "sexual", "filtered", 0, "severity", "safe",
                     "violence", "filtered", 0, "severity", "safe");
}

static json_t *prompt_filter_results(void)
{
    return json_pack("[{s:i, s:o}]", "prompt_index", 0, "content_filter_results", filter_results());
}

static const char *finish_reason(const mock_directives_t *directives, const mock_answer_t *answer)
{
    if (directives->finish[0] != '\0')
        return directives->finish;
    return answer->tool_name ? "tool_calls" : "stop";
}

static json_t *tool_calls_json(const mock_answer_t *answer)
{
    return json_pack("[{s:s, s:s, s:{s:s, s:s}}]", "id", answer->tool_id, "type", "function", "function", "name",
                     answer->tool_name, "arguments", answer->tool_arguments);
}

static void reply_chat_body(mock_call_t *call, const mock_answer_t *answer, const char *id)
{
    json_t *message = json_pack("{s:s, s:s?, s:n, s:[]}", "role", "assistant", "content", answer->text, "refusal",
                                "annotations");
    if (answer->tool_name != NULL)
        json_object_set_new(message, "tool_calls", tool_calls_json(answer));
    if (has_quirk(call, "deepseek"))
        json_object_set_new(message, "reasoning_content", json_string("mock reasoning."));
    json_t *choice = json_pack("{s:i, s:o, s:n, s:s}", "index", 0, "message", message, "logprobs", "finish_reason",
                               finish_reason(&call->directives, answer));
    json_t *body = json_pack("{s:s, s:s, s:I, s:s, s:[o], s:s}", "id", id, "object", "chat.completion", "created",
                             (json_int_t)time(NULL), "model", answer->model, "choices", choice, "system_fingerprint",
                             "fp_mock");
    if (call->directives.has_usage)
        json_object_set_new(body, "usage", has_quirk(call, "deepseek") ? deepseek_usage_json(answer) : usage_json(answer));
    if (call->provider == MOCK_AZURE) {
        json_object_set_new(body, "prompt_filter_results", prompt_filter_results());
        json_object_set_new(choice, "content_filter_results", filter_results());
    }
    mock_reply_json(call, 200, body);
}

/* One chat.completion.chunk with a single choice (or none when choice is NULL). */
static json_t *chat_chunk(const char *id, const char *model, json_t *choice, bool has_usage_field)
{
    json_t *chunk = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[]}", "id", id, "object", "chat.completion.chunk",
                              "created", (json_int_t)time(NULL), "model", model, "system_fingerprint", "fp_mock",
                              "choices");
    if (choice != NULL)
        json_array_append_new(json_object_get(chunk, "choices"), choice);
    if (has_usage_field)
        json_object_set_new(chunk, "usage", json_null());
    return chunk;
}

static json_t *delta_choice(json_t *delta, const char *finish)
{
    return json_pack("{s:i, s:o, s:n, s:s?}", "index", 0, "delta", delta, "logprobs", "finish_reason", finish);
}

static void add_stream_error(mock_frames_t *frames)
{
    static const char error_event[] = "data: {\"error\":{\"message\":\"mock: injected error after HTTP 200\","
                                      "\"type\":\"server_error\",\"param\":null,\"code\":\"internal_error\"}}\n\n";
    mock_frames_set_error(frames, error_event, sizeof error_event - 1);
}

/* Adds one content frame per piece of `text`; make_delta wraps each piece. */
static void add_pieces(mock_frames_t *frames, const char *text, int pieces, const char *id, const char *model,
                       bool has_usage_field, json_t *(*make_delta)(const char *piece, size_t length))
{
    size_t capacity = mock_text_split_capacity(text, pieces);
    size_t *ends = malloc(sizeof *ends * capacity);
    if (ends == NULL)
        return;
    int count = mock_text_split(text, pieces, ends);
    size_t start = 0;
    for (int i = 0; i < count; i++) {
        json_t *delta = make_delta(text + start, ends[i] - start);
        mock_frames_add_sse(frames, MOCK_FRAME_CONTENT, NULL,
                            chat_chunk(id, model, delta_choice(delta, NULL), has_usage_field), "\n");
        start = ends[i];
    }
    free(ends);
}

static json_t *content_delta(const char *piece, size_t length)
{
    return json_pack("{s:s%}", "content", piece, length);
}

static json_t *arguments_delta(const char *piece, size_t length)
{
    return json_pack("{s:[{s:i, s:{s:s%}}]}", "tool_calls", "index", 0, "function", "arguments", piece, length);
}

static void reply_chat_stream(mock_call_t *call, const mock_answer_t *answer, const char *id)
{
    const json_t *options = json_object_get(call->json, "stream_options");
    bool wants_usage = json_is_true(json_object_get(options, "include_usage"));
    /* quirk=: servers that ignore include_usage and put usage elsewhere, or send none */
    bool is_finish_usage = has_quirk(call, "mistral") || has_quirk(call, "together"); /* on the finish chunk */
    bool is_groq = has_quirk(call, "groq"); /* x_groq.usage on the finish chunk */
    if (is_finish_usage || is_groq || has_quirk(call, "ollama") || has_quirk(call, "llamacpp"))
        wants_usage = false;
    const char *model = answer->model;
    mock_frames_t *frames = mock_frames_new();
    if (frames == NULL) {
        mock_reply_stream(call, "text/event-stream", NULL);
        return;
    }
    add_stream_error(frames);
    if (has_quirk(call, "openrouter")) {
        static const char processing[] = ": OPENROUTER PROCESSING\n\n";
        mock_frames_add(frames, MOCK_FRAME_PLAIN, processing, sizeof processing - 1);
        mock_frames_add(frames, MOCK_FRAME_PLAIN, processing, sizeof processing - 1);
    }
    if (call->provider == MOCK_AZURE) {
        json_t *opening = json_pack("{s:[], s:s, s:s, s:i, s:s, s:o}", "choices", "id", "", "object", "", "created",
                                    0, "model", "", "prompt_filter_results", prompt_filter_results());
        mock_frames_add_sse(frames, MOCK_FRAME_PLAIN, NULL, opening, "\n");
    }
    if (answer->tool_name != NULL) {
        mock_frames_add_sse(frames, MOCK_FRAME_PLAIN, NULL,
                            chat_chunk(id, model, delta_choice(json_pack("{s:s, s:n}", "role", "assistant", "content"), NULL),
                                       wants_usage),
                            "\n");
        json_t *first = json_pack("{s:[{s:i, s:s, s:s, s:{s:s, s:s}}]}", "tool_calls", "index", 0, "id",
                                  answer->tool_id, "type", "function", "function", "name", answer->tool_name,
                                  "arguments", "");
        mock_frames_add_sse(frames, MOCK_FRAME_PLAIN, NULL, chat_chunk(id, model, delta_choice(first, NULL), wants_usage),
                            "\n");
        int pieces = call->directives.chunks > 0 ? call->directives.chunks : 4;
        add_pieces(frames, answer->tool_arguments, pieces, id, model, wants_usage, arguments_delta);
    } else {
        json_t *role = json_pack("{s:s, s:s, s:n}", "role", "assistant", "content", "", "refusal");
        mock_frames_add_sse(frames, MOCK_FRAME_PLAIN, NULL, chat_chunk(id, model, delta_choice(role, NULL), wants_usage),
                            "\n");
        if (has_quirk(call, "deepseek")) {
            json_t *thinking = json_pack("{s:n, s:s}", "content", "reasoning_content", "mock reasoning.");
            mock_frames_add_sse(frames, MOCK_FRAME_PLAIN, NULL,
                                chat_chunk(id, model, delta_choice(thinking, NULL), wants_usage), "\n");
        }
        add_pieces(frames, answer->text, call->directives.chunks, id, model, wants_usage, content_delta);
    }
    mock_frames_begin_trailer(frames);
    json_t *finish_chunk =
        chat_chunk(id, model, delta_choice(json_object(), finish_reason(&call->directives, answer)), wants_usage);
    if (is_finish_usage && call->directives.has_usage)
        json_object_set_new(finish_chunk, "usage", usage_json(answer));
    if (is_groq && call->directives.has_usage)
        json_object_set_new(finish_chunk, "x_groq", json_pack("{s:s, s:o}", "id", "req_mock", "usage", usage_json(answer)));
    mock_frames_add_sse(frames, MOCK_FRAME_PLAIN, NULL, finish_chunk, "\n");
    if (wants_usage && call->directives.has_usage) {
        json_t *usage_chunk = chat_chunk(id, model, NULL, false);
        json_object_set_new(usage_chunk, "usage", has_quirk(call, "deepseek") ? deepseek_usage_json(answer) : usage_json(answer));
        mock_frames_add_sse(frames, MOCK_FRAME_PLAIN, NULL, usage_chunk, "\n");
    }
    static const char done[] = "data: [DONE]\n\n";
    mock_frames_add(frames, MOCK_FRAME_PLAIN, done, sizeof done - 1);
    mock_reply_stream(call, "text/event-stream", frames);
}

/* The model as reported, with its directives applied; Azure's deployment wins over the body. */
static char *take_model(mock_call_t *call, const char *deployment)
{
    const char *model = deployment ? deployment : json_string_value(json_object_get(call->json, "model"));
    return mock_directives_from_model(&call->directives, model);
}

static void handle_chat(mock_call_t *call, const char *deployment)
{
    mock_answer_t answer = { 0 };
    answer.model = take_model(call, deployment);
    const json_t *messages = json_object_get(call->json, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        mock_reply_error(call, 400, "'messages' must be a non-empty array");
        mock_answer_free(&answer);
        return;
    }
    size_t prompt_characters;
    const char *last_role;
    char *last_user = scan_messages(messages, &prompt_characters, &last_role);
    mock_directives_from_text(&call->directives, last_user);
    const json_t *stream_options = json_object_get(call->json, "stream_options");
    if (has_quirk(call, "mistral") && stream_options != NULL) {
        /* Mistral validates bodies strictly: stream_options is an extra input it forbids */
        mock_reply_json(call, 422, json_pack("{s:s, s:{s:[{s:s, s:[s, s], s:s, s:O}]}, s:s, s:n, s:n}", "object", "error",
                                             "message", "detail", "type", "extra_forbidden", "loc", "body",
                                             "stream_options", "msg", "Extra inputs are not permitted", "input",
                                             stream_options, "type", "invalid_request_error", "param", "code"));
    } else if (!mock_reply_directed_error(call)) {
        const json_t *parameters;
        const char *tool = choose_tool(call->json, &call->directives, last_role, &parameters);
        if (mock_answer_build(&answer, &call->directives, last_user, prompt_characters, tool, parameters, "call_") != 0) {
            mock_reply_error(call, 500, "mock out of memory");
        } else {
            char *id = mock_text_id("chatcmpl-");
            if (json_is_true(json_object_get(call->json, "stream")))
                reply_chat_stream(call, &answer, id ? id : "chatcmpl-mock");
            else
                reply_chat_body(call, &answer, id ? id : "chatcmpl-mock");
            free(id);
        }
    }
    free(last_user);
    mock_answer_free(&answer);
}

static json_t *completion_chunk(const char *id, const char *model, const char *text, size_t length, const char *finish)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:[{s:s%, s:i, s:n, s:s?}]}", "id", id, "object", "text_completion",
                     "created", (json_int_t)time(NULL), "model", model, "choices", "text", text, length, "index", 0,
                     "logprobs", "finish_reason", finish);
}

static void handle_completions(mock_call_t *call, const char *deployment)
{
    mock_answer_t answer = { 0 };
    answer.model = take_model(call, deployment);
    const json_t *prompt = json_object_get(call->json, "prompt");
    if (json_is_array(prompt))
        prompt = json_array_get(prompt, 0);
    const char *prompt_text = json_is_string(prompt) ? json_string_value(prompt) : "";
    mock_directives_from_text(&call->directives, prompt_text);
    if (mock_reply_directed_error(call)) {
        mock_answer_free(&answer);
        return;
    }
    if (mock_answer_build(&answer, &call->directives, prompt_text, strlen(prompt_text), NULL, NULL, "") != 0) {
        mock_reply_error(call, 500, "mock out of memory");
        mock_answer_free(&answer);
        return;
    }
    char *id = mock_text_id("cmpl-");
    const char *finish = call->directives.finish[0] ? call->directives.finish : "stop";
    if (!json_is_true(json_object_get(call->json, "stream"))) {
        json_t *body = completion_chunk(id, answer.model, answer.text, strlen(answer.text), finish);
        if (call->directives.has_usage)
            json_object_set_new(body, "usage", usage_json(&answer));
        mock_reply_json(call, 200, body);
    } else {
        mock_frames_t *frames = mock_frames_new();
        if (frames != NULL) {
            add_stream_error(frames);
            size_t capacity = mock_text_split_capacity(answer.text, call->directives.chunks);
            size_t *ends = malloc(sizeof *ends * capacity);
            int count = ends ? mock_text_split(answer.text, call->directives.chunks, ends) : 0;
            for (int i = 0, start = 0; i < count; start = (int)ends[i], i++)
                mock_frames_add_sse(frames, MOCK_FRAME_CONTENT, NULL,
                                    completion_chunk(id, answer.model, answer.text + start, ends[i] - (size_t)start, NULL),
                                    "\n");
            free(ends);
            mock_frames_begin_trailer(frames);
            mock_frames_add_sse(frames, MOCK_FRAME_PLAIN, NULL, completion_chunk(id, answer.model, "", 0, finish), "\n");
            static const char done[] = "data: [DONE]\n\n";
            mock_frames_add(frames, MOCK_FRAME_PLAIN, done, sizeof done - 1);
        }
        mock_reply_stream(call, "text/event-stream", frames);
    }
    free(id);
    mock_answer_free(&answer);
}

/* Token ids are embedded as their decimal text, so int inputs are deterministic too. */
static char *input_text(const json_t *input)
{
    if (json_is_string(input))
        return strdup(json_string_value(input));
    if (json_is_array(input) || json_is_integer(input))
        return json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY);
    return NULL;
}

static void handle_embeddings(mock_call_t *call, const char *deployment)
{
    char *model = take_model(call, deployment);
    const json_t *input = json_object_get(call->json, "input");
    if (json_is_string(input))
        mock_directives_from_text(&call->directives, json_string_value(input));
    if (mock_reply_directed_error(call)) {
        free(model);
        return;
    }
    /* A list of strings or of token arrays is a batch; a flat list of ints is one input. */
    bool is_batch = json_is_array(input) && json_array_size(input) > 0 && !json_is_integer(json_array_get(input, 0));
    if (input == NULL || (json_is_array(input) && json_array_size(input) == 0)) {
        mock_reply_error(call, 400, "'input' is a required property");
        free(model);
        return;
    }
    int dimensions = call->directives.embed_dim;
    if (dimensions <= 0)
        dimensions = (int)json_integer_value(json_object_get(call->json, "dimensions"));
    if (dimensions <= 0 || dimensions > 65536)
        dimensions = mock_options.embed_dim;
    const char *format = json_string_value(json_object_get(call->json, "encoding_format"));
    bool is_base64 = format != NULL && strcmp(format, "base64") == 0;
    json_t *data = json_array();
    size_t count = is_batch ? json_array_size(input) : 1;
    size_t characters = 0;
    for (size_t i = 0; i < count; i++) {
        char *text = input_text(is_batch ? json_array_get(input, i) : input);
        if (text == NULL)
            text = strdup("");
        characters += text ? strlen(text) : 0;
        json_array_append_new(data, json_pack("{s:s, s:i, s:o}", "object", "embedding", "index", (int)i, "embedding",
                                              mock_text_embedding_json(text ? text : "", dimensions, is_base64)));
        free(text);
    }
    int tokens = mock_text_tokens_for_chars(characters);
    json_t *body = json_pack("{s:s, s:o, s:s, s:{s:i, s:i}}", "object", "list", "data", data, "model", model,
                             "usage", "prompt_tokens", tokens, "total_tokens", tokens);
    mock_reply_json(call, 200, body);
    free(model);
}

static void handle_models(mock_call_t *call)
{
    static const char *const ids[] = { "gpt-4o", "gpt-4o-mini", "gpt-3.5-turbo-instruct", "text-embedding-3-small" };
    json_t *data = json_array();
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        json_array_append_new(data, json_pack("{s:s, s:s, s:i, s:s}", "id", ids[i], "object", "model", "created",
                                              1700000000, "owned_by", "sluice-mock"));
    mock_reply_json(call, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

void mock_openai_handle(mock_call_t *call, const char *kind, const char *deployment)
{
    if (strcmp(kind, "chat/completions") == 0)
        handle_chat(call, deployment);
    else if (strcmp(kind, "completions") == 0)
        handle_completions(call, deployment);
    else if (strcmp(kind, "embeddings") == 0)
        handle_embeddings(call, deployment);
    else if (strcmp(kind, "models") == 0)
        handle_models(call);
    else
        mock_reply_error(call, 404, "mock: unknown path");
}
