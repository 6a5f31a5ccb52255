/* mock_gemini.c — the Gemini API (generativelanguage v1beta).
 *
 * POST /v1beta/models/{model}:generateContent, :streamGenerateContent (with ?alt=sse: SSE whose
 * events end in CRLF CRLF, as Google sends them, to exercise parsers; without it: one JSON array
 * streamed element by element), :countTokens, :embedContent, :batchEmbedContents; GET
 * /v1beta/models. The key comes in x-goog-api-key or ?key=. Function calls arrive whole in one
 * chunk with finishReason STOP (Gemini has no tool_calls reason) and without an id.
 * usageMetadata is cumulative in every chunk. Errors are google.rpc shaped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"

static const char *rpc_status(int status)
{
    switch (status) {
    case 400: return "INVALID_ARGUMENT";
    case 401: return "UNAUTHENTICATED";
    case 403: return "PERMISSION_DENIED";
    case 404: return "NOT_FOUND";
    case 409: return "ABORTED";
    case 429: return "RESOURCE_EXHAUSTED";
    case 499: return "CANCELLED";
    case 500: return "INTERNAL";
    case 501: return "UNIMPLEMENTED";
    case 503: return "UNAVAILABLE";
    case 504: return "DEADLINE_EXCEEDED";
    default: return "UNKNOWN";
    }
}

json_t *mock_gemini_error_body(int status, const char *message)
{
    json_t *body = json_pack("{s:{s:i, s:s, s:s}}", "error", "code", status, "message", message, "status",
                             rpc_status(status));
    if (status == 429)
        json_object_set_new(json_object_get(body, "error"), "details",
                            json_pack("[{s:s, s:s}]", "@type", "type.googleapis.com/google.rpc.RetryInfo",
                                      "retryDelay", "1s"));
    return body;
}

/* Text parts of a Content object; notes whether it carries a functionResponse. */
static char *parts_text(const json_t *content, size_t *length, bool *has_function_response)
{
    char *text = NULL;
    *length = 0;
    size_t index;
    json_t *part;
    json_array_foreach(json_object_get(content, "parts"), index, part) {
        const char *piece = json_string_value(json_object_get(part, "text"));
        if (piece != NULL)
            mock_text_append(piece, &text, length);
        if (json_object_get(part, "functionResponse") != NULL && has_function_response != NULL)
            *has_function_response = true;
    }
    return text;
}

static const char *check_contents(const json_t *contents)
{
    if (!json_is_array(contents) || json_array_size(contents) == 0)
        return "* GenerateContentRequest.contents: contents is not specified";
    size_t index;
    json_t *content;
    json_array_foreach(contents, index, content) {
        const char *role = json_string_value(json_object_get(content, "role"));
        if (role != NULL && strcmp(role, "user") != 0 && strcmp(role, "model") != 0)
            return "Please use a valid role: user, model.";
        if (!json_is_array(json_object_get(content, "parts")) || json_array_size(json_object_get(content, "parts")) == 0)
            return "* GenerateContentRequest.contents[].parts: contents.parts must not be empty.";
    }
    return NULL;
}

static const char *choose_tool(const json_t *body, const mock_directives_t *directives, bool is_tool_result_turn,
                               const json_t **parameters)
{
    const char *mode = json_string_value(
        json_object_get(json_object_get(json_object_get(body, "toolConfig"), "functionCallingConfig"), "mode"));
    const json_t *first = NULL;
    *parameters = NULL;
    size_t index;
    json_t *tool;
    json_array_foreach(json_object_get(body, "tools"), index, tool) {
        size_t inner;
        json_t *declaration;
        json_array_foreach(json_object_get(tool, "functionDeclarations"), inner, declaration) {
            const char *name = json_string_value(json_object_get(declaration, "name"));
            if (first == NULL)
                first = declaration;
            if (directives->tool_call != NULL && name != NULL && strcmp(name, directives->tool_call) == 0)
                first = declaration;
        }
    }
    if (directives->tool_call == NULL &&
        (first == NULL || is_tool_result_turn || (mode != NULL && strcmp(mode, "NONE") == 0)))
        return NULL;
    if (first != NULL) {
        *parameters = json_object_get(first, "parameters");
        if (*parameters == NULL)
            *parameters = json_object_get(first, "parametersJsonSchema");
    }
    return directives->tool_call ? directives->tool_call : json_string_value(json_object_get(first, "name"));
}

static json_t *usage_json(int prompt_tokens, int candidate_tokens)
{
    return json_pack("{s:i, s:i, s:i}", "promptTokenCount", prompt_tokens, "candidatesTokenCount", candidate_tokens,
                     "totalTokenCount", prompt_tokens + candidate_tokens);
}

/* One GenerateContentResponse holding `part`; finish may be NULL. */
static json_t *response_json(const mock_call_t *call, const mock_answer_t *answer, const char *id, json_t *part,
                             const char *finish, int candidate_tokens)
{
    json_t *candidate = json_pack("{s:{s:s, s:[o]}, s:i}", "content", "role", "model", "parts", part, "index", 0);
    if (finish != NULL)
        json_object_set_new(candidate, "finishReason", json_string(finish));
    json_t *body = json_pack("{s:[o], s:s, s:s}", "candidates", candidate, "modelVersion", answer->model, "responseId", id);
    if (call->directives.has_usage)
        json_object_set_new(body, "usageMetadata", usage_json(answer->prompt_tokens, candidate_tokens));
    return body;
}

static json_t *answer_part(const mock_answer_t *answer)
{
    if (answer->tool_name != NULL)
        return json_pack("{s:{s:s, s:o}}", "functionCall", "name", answer->tool_name, "args",
                         json_loads(answer->tool_arguments, 0, NULL));
    return json_pack("{s:s}", "text", answer->text);
}

static const char *finish_reason(const mock_call_t *call)
{
    return call->directives.finish[0] ? call->directives.finish : "STOP";
}

/* Frames of a stream: SSE events, or the elements of one JSON array. */
typedef struct gemini_stream {
    mock_frames_t *frames;
    bool is_sse;
    bool is_first;
} gemini_stream_t;

static void stream_add(gemini_stream_t *stream, mock_frame_kind_t kind, json_t *chunk)
{
    if (stream->is_sse) {
        mock_frames_add_sse(stream->frames, kind, NULL, chunk, "\r\n");
        return;
    }
    char *json = json_dumps(chunk, JSON_COMPACT);
    json_decref(chunk);
    if (json == NULL)
        return;
    const char *separator = stream->is_first ? "[" : ",\r\n";
    stream->is_first = false;
    size_t length = strlen(separator) + strlen(json);
    char *framed = malloc(length + 1);
    if (framed != NULL) {
        snprintf(framed, length + 1, "%s%s", separator, json);
        mock_frames_add(stream->frames, kind, framed, length);
        free(framed);
    }
    free(json);
}

static void reply_stream(mock_call_t *call, const mock_answer_t *answer, const char *id)
{
    char *alt = mock_query_param(call->query, "alt");
    gemini_stream_t stream = { mock_frames_new(), alt != NULL && strcmp(alt, "sse") == 0, true };
    free(alt);
    if (stream.frames == NULL) {
        mock_reply_stream(call, "text/event-stream", NULL);
        return;
    }
    char *error = json_dumps(mock_gemini_error_body(500, "mock: injected error after HTTP 200"), JSON_COMPACT);
    if (error != NULL) {
        char framed[512];
        int length = stream.is_sse ? snprintf(framed, sizeof framed, "data: %s\r\n\r\n", error)
                                   : snprintf(framed, sizeof framed, ",\r\n%s\r\n]", error);
        mock_frames_set_error(stream.frames, framed, (size_t)length);
        free(error);
    }
    if (answer->tool_name != NULL) {
        stream_add(&stream, MOCK_FRAME_CONTENT,
                   response_json(call, answer, id, answer_part(answer), finish_reason(call), answer->completion_tokens));
        mock_frames_begin_trailer(stream.frames);
    } else {
        const char *text = answer->text;
        size_t *ends = malloc(sizeof *ends * mock_text_split_capacity(text, call->directives.chunks));
        int count = ends ? mock_text_split(text, call->directives.chunks, ends) : 0;
        for (int i = 0, start = 0; i < count; start = (int)ends[i], i++) {
            char *so_far = strndup(text, ends[i]);
            int words = so_far ? mock_text_count_words(so_far) : 0;
            free(so_far);
            json_t *part = json_pack("{s:s%}", "text", text + start, ends[i] - (size_t)start);
            stream_add(&stream, MOCK_FRAME_CONTENT, response_json(call, answer, id, part, NULL, words));
        }
        free(ends);
        mock_frames_begin_trailer(stream.frames);
        stream_add(&stream, MOCK_FRAME_PLAIN,
                   response_json(call, answer, id, json_pack("{s:s}", "text", ""), finish_reason(call),
                                 answer->completion_tokens));
    }
    if (!stream.is_sse)
        mock_frames_add(stream.frames, MOCK_FRAME_PLAIN, "]", 1);
    mock_reply_stream(call, stream.is_sse ? "text/event-stream" : "application/json", stream.frames);
}

static void handle_generate(mock_call_t *call, char *model, bool is_stream)
{
    const json_t *contents = json_object_get(call->json, "contents");
    const char *problem = check_contents(contents);
    if (problem != NULL) {
        mock_reply_error(call, 400, problem);
        return;
    }
    size_t prompt_characters = 0;
    size_t length;
    free(parts_text(json_object_get(call->json, "systemInstruction"), &length, NULL));
    prompt_characters += length;
    char *last_user = NULL;
    bool is_tool_result_turn = false;
    size_t index;
    json_t *content;
    json_array_foreach(contents, index, content) {
        bool has_function_response = false;
        char *text = parts_text(content, &length, &has_function_response);
        prompt_characters += length;
        const char *role = json_string_value(json_object_get(content, "role"));
        if (role == NULL || strcmp(role, "user") == 0) {
            free(last_user);
            last_user = text;
            is_tool_result_turn = has_function_response;
        } else {
            free(text);
        }
    }
    mock_directives_from_text(&call->directives, last_user);
    mock_answer_t answer = { .model = model };
    if (!mock_reply_directed_error(call)) {
        const json_t *parameters;
        const char *tool = choose_tool(call->json, &call->directives, is_tool_result_turn, &parameters);
        if (mock_answer_build(&answer, &call->directives, last_user, prompt_characters, tool, parameters, "") != 0) {
            mock_reply_error(call, 500, "mock out of memory");
        } else {
            char *id = mock_text_id("mock-");
            if (is_stream)
                reply_stream(call, &answer, id ? id : "mock");
            else
                mock_reply_json(call, 200,
                                response_json(call, &answer, id ? id : "mock", answer_part(&answer), finish_reason(call),
                                              answer.completion_tokens));
            free(id);
        }
    }
    answer.model = NULL; /* owned by the caller */
    free(last_user);
    mock_answer_free(&answer);
}

static int embedding_dimensions(const mock_call_t *call, const json_t *request)
{
    if (call->directives.embed_dim > 0)
        return call->directives.embed_dim;
    json_int_t requested = json_integer_value(json_object_get(request, "outputDimensionality"));
    return requested > 0 && requested <= 65536 ? (int)requested : mock_options.embed_dim;
}

static json_t *embedding_of(const mock_call_t *call, const json_t *request)
{
    size_t length;
    char *text = parts_text(json_object_get(request, "content"), &length, NULL);
    json_t *values = mock_text_embedding_json(text ? text : "", embedding_dimensions(call, request), false);
    free(text);
    return json_pack("{s:o}", "values", values);
}

static void handle_embed(mock_call_t *call, bool is_batch)
{
    if (mock_reply_directed_error(call))
        return;
    if (!is_batch) {
        if (json_object_get(call->json, "content") == NULL) {
            mock_reply_error(call, 400, "* EmbedContentRequest.content: contents is not specified");
            return;
        }
        mock_reply_json(call, 200, json_pack("{s:o}", "embedding", embedding_of(call, call->json)));
        return;
    }
    const json_t *requests = json_object_get(call->json, "requests");
    if (!json_is_array(requests) || json_array_size(requests) == 0) {
        mock_reply_error(call, 400, "* BatchEmbedContentsRequest.requests: requests is not specified");
        return;
    }
    json_t *embeddings = json_array();
    size_t index;
    json_t *request;
    json_array_foreach(requests, index, request) json_array_append_new(embeddings, embedding_of(call, request));
    mock_reply_json(call, 200, json_pack("{s:o}", "embeddings", embeddings));
}

static void handle_count_tokens(mock_call_t *call)
{
    size_t characters = 0;
    size_t index;
    json_t *content;
    json_array_foreach(json_object_get(call->json, "contents"), index, content) {
        size_t length;
        free(parts_text(content, &length, NULL));
        characters += length;
    }
    mock_reply_json(call, 200, json_pack("{s:i}", "totalTokens", mock_text_tokens_for_chars(characters)));
}

void mock_gemini_handle(mock_call_t *call, const char *model, const char *method)
{
    char *key = mock_query_param(call->query, "key");
    bool has_key = key != NULL || mock_header(call, "x-goog-api-key") != NULL ||
                   mock_header(call, "authorization") != NULL;
    free(key);
    if (!has_key) {
        mock_reply_error(call, 403,
                         "Method doesn't allow unregistered callers (callers without established identity). Please "
                         "use API Key or other form of API consumer identity to call this API.");
        return;
    }
    char *bare_model = mock_directives_from_model(&call->directives, model);
    if (bare_model == NULL) {
        mock_reply_error(call, 500, "mock out of memory");
        return;
    }
    if (strcmp(method, "generateContent") == 0)
        handle_generate(call, bare_model, false);
    else if (strcmp(method, "streamGenerateContent") == 0)
        handle_generate(call, bare_model, true);
    else if (strcmp(method, "embedContent") == 0)
        handle_embed(call, false);
    else if (strcmp(method, "batchEmbedContents") == 0)
        handle_embed(call, true);
    else if (strcmp(method, "countTokens") == 0)
        handle_count_tokens(call);
    else
        mock_reply_error(call, 404, "mock: unknown Gemini method");
    free(bare_model);
}

void mock_gemini_models(mock_call_t *call)
{
    static const char *const names[] = { "models/gemini-2.5-flash", "models/gemini-2.5-pro", "models/text-embedding-004" };
    json_t *models = json_array();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        json_array_append_new(models, json_pack("{s:s, s:s, s:[ss]}", "name", names[i], "displayName", names[i] + 7,
                                                "supportedGenerationMethods", "generateContent",
                                                "streamGenerateContent"));
    mock_reply_json(call, 200, json_pack("{s:o}", "models", models));
}
