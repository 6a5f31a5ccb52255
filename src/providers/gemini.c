/* gemini.c — adapter for Google's Gemini API (type gemini).
 *
 * Calls go to {base_url}/v1beta/models/{model}:generateContent, or
 * :streamGenerateContent?alt=sse for streams (SSE with CRLF framing, one
 * GenerateContentResponse per event, no end marker), with the key in the
 * x-goog-api-key header. Embeddings use :batchEmbedContents, which takes one
 * input or many.
 *
 * Requests: system and developer messages become systemInstruction; user and
 * assistant turns become "user" and "model" contents whose parts are text,
 * inlineData (data: URLs), fileData (other URLs), functionCall (an
 * assistant's tool_calls) and functionResponse (a role "tool" message, which
 * Gemini matches by function name, so the name is looked up from the call id
 * earlier in the conversation). Turns of one role are merged. Sampling fields
 * go into generationConfig; tools become functionDeclarations with their JSON
 * schema as parametersJsonSchema (plain "parameters" takes only an OpenAPI
 * subset and rejects common keys such as additionalProperties).
 *
 * Answers: Gemini gives function calls no id, so one is made up per call:
 * "call_<request>_<n>". Gemini 3 attaches a thoughtSignature to a call that
 * must come back with it on the next turn; it is carried inside the id, after
 * "~ts~" (not a base64 character), and put back on the functionCall part when
 * the client returns the call in its history. Gemini ends a turn of function
 * calls with finishReason STOP, so a STOP after a call is "tool_calls". */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sluice/log.h"
#include "sluice/openai_chunk.h"
#include "sluice/provider.h"
#include "sluice/provider_util.h"
#include "sluice/sigv4.h"
#include "sluice/translate.h"

#define SIGNATURE_MARK "~ts~"

/* ---- the request ---------------------------------------------------------- */

/* Owner: gemini_build_call (on its stack). */
typedef struct contents_builder {
    request_t *request;
    json_t *call_names; /* tool call id → function name */
    translate_messages_t messages;
} contents_builder_t;

static int append_text_part(json_t *parts, const char *text, size_t length)
{
    return translate_append_new(parts, json_pack("{s:s%}", "text", text, length));
}

/* A MIME type for a URL from its extension; Gemini's fileData needs one. */
static const char *mime_for_url(const char *url)
{
    static const struct {
        const char *extension, *mime;
    } known[] = {{".png", "image/png"},   {".jpg", "image/jpeg"},     {".jpeg", "image/jpeg"},
                 {".gif", "image/gif"},   {".webp", "image/webp"},    {".heic", "image/heic"},
                 {".pdf", "application/pdf"}, {".mp3", "audio/mp3"}, {".wav", "audio/wav"},
                 {".mp4", "video/mp4"}};
    const char *query = strpbrk(url, "?#");
    size_t length = query ? (size_t)(query - url) : strlen(url);
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        size_t extension = strlen(known[i].extension);
        if (length > extension && strncasecmp(url + length - extension, known[i].extension, extension) == 0)
            return known[i].mime;
    }
    return "image/jpeg";
}

static int append_image_part(translate_messages_t *messages, json_t *parts, const char *url)
{
    const char *mime, *data;
    contents_builder_t *builder = messages->context;
    if (url != NULL && strncmp(url, "data:", 5) == 0) {
        if (provider_parse_data_url(builder->request, url, &mime, &data) != 0)
            return translate_fail(messages, "messages", "image data: URLs must be base64 (data:image/png;base64,...)");
        return translate_append_new(parts, json_pack("{s:{s:s, s:s}}", "inlineData", "mimeType", mime, "data", data));
    }
    if (url != NULL && url[0] != '\0')
        return translate_append_new(
            parts, json_pack("{s:{s:s, s:s}}", "fileData", "mimeType", mime_for_url(url), "fileUri", url));
    return translate_fail(messages, "messages", "image_url needs a url");
}

/* A functionCall part; a thought signature carried in the id goes back with it. */
static int append_function_call(translate_messages_t *messages, json_t *parts, const char *id, const char *name,
                                json_t *args)
{
    contents_builder_t *builder = messages->context;
    json_t *part = json_pack("{s:{s:s, s:o}}", "functionCall", "name", name, "args", args);
    const char *signature = strstr(id, SIGNATURE_MARK);
    if (part != NULL && signature != NULL &&
        json_object_set_new(part, "thoughtSignature", json_string(signature + strlen(SIGNATURE_MARK))) != 0) {
        json_decref(part);
        return -1;
    }
    if (translate_append_new(parts, part) != 0)
        return -1;
    return json_object_set_new(builder->call_names, id, json_string(name));
}

/* Text of a tool message's content (a string or text parts). */
static int tool_output_text(const json_t *content, buf_t *out)
{
    if (json_is_string(content))
        return buf_append(out, json_string_value(content), json_string_length(content));
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part) {
        const json_t *text = json_object_get(part, "text");
        if (json_is_string(text) && buf_append(out, json_string_value(text), json_string_length(text)) != 0)
            return -1;
    }
    return 0;
}

static int append_function_response(translate_messages_t *messages, json_t *parts, const json_t *message)
{
    contents_builder_t *builder = messages->context;
    const char *id = json_string_value(json_object_get(message, "tool_call_id"));
    const char *name = id ? json_string_value(json_object_get(builder->call_names, id)) : NULL;
    if (name == NULL)
        name = json_string_value(json_object_get(message, "name"));
    if (name == NULL)
        return translate_fail(messages, "messages",
                              "a tool message must answer a tool call made earlier in the conversation (gemini matches "
                              "results by function name)");
    buf_t text;
    buf_init(&text);
    if (tool_output_text(json_object_get(message, "content"), &text) != 0) {
        buf_free(&text);
        return -1;
    }
    /* Gemini wants an object: a JSON object result goes as it is, anything else under "result" */
    json_t *parsed = text.length ? json_loadb(text.data, text.length, 0, NULL) : NULL;
    json_t *response = json_is_object(parsed) ? parsed
                                              : json_pack("{s:s%}", "result", text.data ? text.data : "", text.length);
    if (!json_is_object(parsed))
        json_decref(parsed);
    buf_free(&text);
    return translate_append_new(parts,
                                json_pack("{s:{s:s, s:o}}", "functionResponse", "name", name, "response", response));
}

/* Gemini's parts; turns of one role are merged, as Gemini wants user and
 * model turns to alternate. */
static const translate_part_writer_t part_writer = {
    .append_text = append_text_part,
    .append_image = append_image_part,
    .append_tool_call = append_function_call,
    .append_tool_result = append_function_response,
};

static int set_number(json_t *config, const char *name, const json_t *value)
{
    return json_is_number(value) ? json_object_set(config, name, (json_t *)value) : 0;
}

static json_t *generation_config(const json_t *body)
{
    json_t *config = json_object();
    if (config == NULL)
        return NULL;
    int rc = set_number(config, "temperature", json_object_get(body, "temperature"));
    rc |= set_number(config, "topP", json_object_get(body, "top_p"));
    rc |= set_number(config, "presencePenalty", json_object_get(body, "presence_penalty"));
    rc |= set_number(config, "frequencyPenalty", json_object_get(body, "frequency_penalty"));
    if (json_is_integer(json_object_get(body, "seed")))
        rc |= json_object_set(config, "seed", json_object_get(body, "seed"));
    long max_tokens = provider_max_tokens(body);
    if (max_tokens > 0)
        rc |= json_object_set_new(config, "maxOutputTokens", json_integer(max_tokens));
    json_t *stop = provider_stop_sequences(body);
    if (stop != NULL)
        rc |= json_object_set_new(config, "stopSequences", stop);
    const json_t *n = json_object_get(body, "n");
    if (json_is_integer(n) && json_integer_value(n) > 1)
        rc |= json_object_set(config, "candidateCount", (json_t *)n);
    const json_t *format = json_object_get(body, "response_format");
    const char *format_type = json_string_value(json_object_get(format, "type"));
    if (format_type != NULL && strcmp(format_type, "json_object") == 0) {
        rc |= json_object_set_new(config, "responseMimeType", json_string("application/json"));
    } else if (format_type != NULL && strcmp(format_type, "json_schema") == 0) {
        const json_t *schema = json_object_get(json_object_get(format, "json_schema"), "schema");
        rc |= json_object_set_new(config, "responseMimeType", json_string("application/json"));
        if (json_is_object(schema))
            rc |= json_object_set(config, "responseJsonSchema", (json_t *)schema);
    }
    if (rc != 0) {
        json_decref(config);
        return NULL;
    }
    return config;
}

static int set_tools(contents_builder_t *builder, const json_t *body, json_t *out)
{
    const json_t *tools = json_object_get(body, "tools");
    const json_t *choice = json_object_get(body, "tool_choice");
    if (!json_is_array(tools) || json_array_size(tools) == 0)
        return 0;
    json_t *declarations = json_array();
    if (declarations == NULL ||
        json_object_set_new(out, "tools", json_pack("[{s:o}]", "functionDeclarations", declarations)) != 0)
        return -1;
    size_t i;
    const json_t *tool;
    json_array_foreach(tools, i, tool) {
        const json_t *function = json_object_get(tool, "function");
        const char *name = json_string_value(json_object_get(function, "name"));
        if (name == NULL)
            return translate_fail(&builder->messages, "tools",
                                  "gemini supports function tools only; each needs a name");
        json_t *declaration = json_pack("{s:s}", "name", name);
        const char *description = json_string_value(json_object_get(function, "description"));
        const json_t *parameters = json_object_get(function, "parameters");
        int rc = declaration ? 0 : -1;
        if (rc == 0 && description != NULL && description[0] != '\0')
            rc = json_object_set_new(declaration, "description", json_string(description));
        if (rc == 0 && json_is_object(parameters))
            rc = json_object_set(declaration, "parametersJsonSchema", (json_t *)parameters);
        if (rc != 0) {
            json_decref(declaration);
            return -1;
        }
        if (translate_append_new(declarations, declaration) != 0)
            return -1;
    }
    json_t *calling = NULL;
    if (json_is_string(choice)) {
        const char *value = json_string_value(choice);
        const char *mode = strcmp(value, "required") == 0 ? "ANY" : strcmp(value, "none") == 0 ? "NONE" : "AUTO";
        calling = json_pack("{s:s}", "mode", mode);
    } else if (json_is_object(choice)) {
        const char *name = json_string_value(json_object_get(json_object_get(choice, "function"), "name"));
        if (name == NULL)
            return translate_fail(&builder->messages, "tool_choice", "tool_choice must name a function");
        calling = json_pack("{s:s, s:[s]}", "mode", "ANY", "allowedFunctionNames", name);
    } else {
        return 0;
    }
    return calling && json_object_set_new(out, "toolConfig", json_pack("{s:o}", "functionCallingConfig", calling)) == 0
               ? 0
               : -1;
}

static json_t *contents_body(contents_builder_t *builder)
{
    const json_t *body = builder->request->body;
    const json_t *messages = json_object_get(body, "messages");
    const json_t *n = json_object_get(body, "n");
    if (builder->request->is_stream && json_is_integer(n) && json_integer_value(n) > 1) {
        translate_fail(&builder->messages, "n", "gemini streams one choice: n must be 1 when streaming");
        return NULL;
    }
    translate_messages_t *turns = &builder->messages;
    builder->call_names = json_object();
    json_t *out = json_object();
    json_t *config = NULL;
    if (builder->call_names == NULL || out == NULL || translate_messages_convert(turns, messages) != 0)
        goto fail;
    if (json_array_size(turns->turns) == 0) {
        translate_fail(turns, "messages", "gemini needs at least one user or assistant message with content");
        goto fail;
    }
    if (json_object_set(out, "contents", turns->turns) != 0)
        goto fail;
    if (json_array_size(turns->system) > 0 &&
        json_object_set_new(out, "systemInstruction", json_pack("{s:O}", "parts", turns->system)) != 0)
        goto fail;
    config = generation_config(body);
    if (config == NULL)
        goto fail;
    if (json_object_size(config) > 0 && json_object_set(out, "generationConfig", config) != 0)
        goto fail;
    if (set_tools(builder, body, out) != 0)
        goto fail;
    json_decref(config);
    translate_messages_release(turns);
    json_decref(builder->call_names);
    return out;
fail:
    json_decref(config);
    translate_messages_release(turns);
    json_decref(builder->call_names);
    json_decref(out);
    return NULL;
}

/* The input strings of an embeddings request, one request each. */
static json_t *embeddings_body(contents_builder_t *builder, const char *model_path)
{
    const json_t *body = builder->request->body;
    const json_t *input = json_object_get(body, "input");
    const json_t *dimensions = json_object_get(body, "dimensions");
    json_t *requests = json_array();
    json_t *out = requests ? json_pack("{s:o}", "requests", requests) : NULL;
    if (out == NULL)
        return NULL;
    size_t count = json_is_array(input) ? json_array_size(input) : 1;
    for (size_t i = 0; i < count; i++) {
        const json_t *item = json_is_array(input) ? json_array_get(input, i) : input;
        if (!json_is_string(item)) {
            translate_fail(&builder->messages, "input", "gemini embeddings take text input (strings, not token ids)");
            json_decref(out);
            return NULL;
        }
        json_t *one = json_pack("{s:s, s:{s:[{s:O}]}}", "model", model_path, "content", "parts", "text", item);
        if (one != NULL && json_is_integer(dimensions) &&
            json_object_set(one, "outputDimensionality", (json_t *)dimensions) != 0) {
            json_decref(one);
            one = NULL;
        }
        if (translate_append_new(requests, one) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static int gemini_build_call(request_t *request, provider_call_t *call)
{
    const provider_config_t *provider = request->provider;
    if (request->endpoint != ENDPOINT_CHAT_COMPLETIONS && request->endpoint != ENDPOINT_EMBEDDINGS) {
        request_reply_error(request, 400, "invalid_request_error", "unsupported_endpoint", NULL,
                            "provider %s (gemini) offers chat completions and embeddings only", provider->name);
        return PROVIDER_CALL_REJECTED;
    }
    const char *model = request->upstream_model;
    if (strncmp(model, "models/", 7) == 0)
        model += 7;
    buf_t encoded;
    buf_init(&encoded);
    if (sigv4_uri_encode(&encoded, model, strlen(model), false) != 0) {
        buf_free(&encoded);
        return -1;
    }
    const char *model_path = arena_sprintf(&request->arena, "models/%s", encoded.data ? encoded.data : "");
    buf_free(&encoded);
    if (model_path == NULL)
        return -1;
    contents_builder_t builder = {.request = request,
                                  .messages = {.provider = "gemini",
                                               .assistant_role = "model",
                                               .parts_key = "parts",
                                               .writer = &part_writer}};
    builder.messages.context = &builder;
    json_t *body;
    const char *action;
    if (request->endpoint == ENDPOINT_EMBEDDINGS) {
        body = embeddings_body(&builder, model_path);
        action = ":batchEmbedContents";
    } else {
        body = contents_body(&builder);
        action = request->is_stream ? ":streamGenerateContent?alt=sse" : ":generateContent";
    }
    const translate_messages_t *fault = &builder.messages;
    if (body == NULL && fault->error[0] != '\0') {
        request_reply_error(request, 400, "invalid_request_error", NULL, fault->param[0] ? fault->param : NULL, "%s",
                            fault->error);
        return PROVIDER_CALL_REJECTED;
    }
    call->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (call->body == NULL)
        return -1;
    call->body_length = strlen(call->body);
    /* base_url is the host root; one that already names the API version
     * (/v1beta, or the stable /v1) is used as is instead of adding /v1beta. */
    bool has_version = provider_url_has_version(provider->base_url, "v1beta") ||
                       provider_url_has_version(provider->base_url, "v1");
    call->url = arena_sprintf(&request->arena, "%s%s/%s%s", provider->base_url, has_version ? "" : "/v1beta",
                              model_path, action);
    struct curl_slist *headers = provider_json_headers(provider, request->is_stream);
    if (provider->api_key != NULL)
        provider_header_append(&headers, "x-goog-api-key", provider->api_key);
    call->headers = headers;
    return call->url && headers ? 0 : -1;
}

/* ---- answers ---------------------------------------------------------------- */

static const char *finish_reason(const char *reason, bool has_function_call)
{
    if (reason == NULL || strcmp(reason, "STOP") == 0)
        return has_function_call ? "tool_calls" : "stop";
    if (strcmp(reason, "MAX_TOKENS") == 0)
        return "length";
    static const char *const filtered[] = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
                                           "IMAGE_SAFETY", "LANGUAGE"};
    for (size_t i = 0; i < sizeof filtered / sizeof filtered[0]; i++)
        if (strcmp(reason, filtered[i]) == 0)
            return "content_filter";
    if (strcmp(reason, "MALFORMED_FUNCTION_CALL") == 0 || strcmp(reason, "OTHER") == 0)
        log_warn("gemini finished with %s; reported as stop", reason);
    return has_function_call ? "tool_calls" : "stop";
}

static void read_usage(const json_t *metadata, usage_t *usage)
{
    if (!json_is_object(metadata))
        return;
    long thoughts = provider_integer_member(metadata, "thoughtsTokenCount");
    usage->is_known = true;
    usage->prompt_tokens = provider_integer_member(metadata, "promptTokenCount") +
                           provider_integer_member(metadata, "toolUsePromptTokenCount");
    /* OpenAI counts reasoning inside completion_tokens; Gemini keeps thoughts apart */
    usage->completion_tokens = provider_integer_member(metadata, "candidatesTokenCount") + thoughts;
    usage->reasoning_tokens = thoughts;
    usage->cached_tokens = provider_integer_member(metadata, "cachedContentTokenCount");
}

/* The id a function call gets: made up, with Gemini's thought signature kept in it. */
static char *tool_call_id(request_t *request, int number, const json_t *part)
{
    const char *signature = json_string_value(json_object_get(part, "thoughtSignature"));
    const char *given = json_string_value(json_object_get(json_object_get(part, "functionCall"), "id"));
    const char *base = strncmp(request->id, "req_", 4) == 0 ? request->id + 4 : request->id;
    char *id = given && given[0] ? arena_strdup(&request->arena, given)
                                 : arena_sprintf(&request->arena, "call_%s_%d", base, number);
    if (id != NULL && signature != NULL && signature[0] != '\0')
        return arena_sprintf(&request->arena, "%s" SIGNATURE_MARK "%s", id, signature);
    return id;
}

static bool is_thought(const json_t *part) { return json_is_true(json_object_get(part, "thought")); }

static json_t *choice_for(request_t *request, const json_t *candidate, size_t index, int *call_number)
{
    const json_t *parts = json_object_get(json_object_get(candidate, "content"), "parts");
    buf_t text;
    buf_init(&text);
    json_t *tool_calls = json_array();
    int rc = tool_calls ? 0 : -1;
    size_t i;
    const json_t *part;
    json_array_foreach(parts, i, part) {
        const json_t *piece = json_object_get(part, "text");
        const json_t *call = json_object_get(part, "functionCall");
        if (rc != 0 || is_thought(part))
            continue;
        if (json_is_string(piece)) {
            rc = buf_append(&text, json_string_value(piece), json_string_length(piece));
        } else if (json_is_object(call)) {
            const char *id = tool_call_id(request, (*call_number)++, part);
            const char *name = json_string_value(json_object_get(call, "name"));
            json_t *tool_call = id ? translate_tool_call(id, name, json_object_get(call, "args")) : NULL;
            rc = translate_append_new(tool_calls, tool_call);
        }
    }
    bool has_tools = json_array_size(tool_calls) > 0;
    json_t *message = translate_assistant_message(&text, tool_calls);
    buf_free(&text);
    if (rc != 0) {
        json_decref(message);
        return NULL;
    }
    const char *reason = finish_reason(json_string_value(json_object_get(candidate, "finishReason")), has_tools);
    return message ? translate_choice((int)index, message, reason) : NULL;
}

static json_t *chat_completion(request_t *request, const json_t *reply)
{
    const json_t *candidates = json_object_get(reply, "candidates");
    json_t *choices = json_array();
    if (choices == NULL)
        return NULL;
    int call_number = 0;
    size_t i;
    const json_t *candidate;
    json_array_foreach(candidates, i, candidate) {
        if (translate_append_new(choices, choice_for(request, candidate, i, &call_number)) != 0) {
            json_decref(choices);
            return NULL;
        }
    }
    if (json_array_size(choices) == 0) {
        /* the prompt itself was blocked (promptFeedback.blockReason): no candidates */
        buf_t empty;
        buf_init(&empty);
        json_t *message = json_object_get(reply, "promptFeedback") ? translate_assistant_message(&empty, json_array())
                                                                   : NULL;
        if (translate_append_new(choices, message ? translate_choice(0, message, "content_filter") : NULL) != 0) {
            json_decref(choices);
            return NULL;
        }
    }
    read_usage(json_object_get(reply, "usageMetadata"), &request->usage);
    const char *id = json_string_value(json_object_get(reply, "responseId"));
    return translate_chat_completion(request, id ? id : request->id, choices);
}

static json_t *embeddings_list(request_t *request, const json_t *reply)
{
    const json_t *embeddings = json_object_get(reply, "embeddings");
    if (!json_is_array(embeddings))
        return NULL;
    json_t *data = json_array();
    if (data == NULL)
        return NULL;
    size_t i;
    const json_t *embedding;
    json_array_foreach(embeddings, i, embedding) {
        const json_t *values = json_object_get(embedding, "values");
        if (!json_is_array(values) || translate_append_new(data, translate_embedding(request, values, i)) != 0) {
            json_decref(data);
            return NULL;
        }
    }
    /* batchEmbedContents reports no token count; usageMetadata when a version adds it */
    long tokens = provider_integer_member(json_object_get(reply, "usageMetadata"), "promptTokenCount");
    return translate_embeddings_list(request, data, tokens);
}

static json_t *translate_answer(request_t *request, const json_t *reply)
{
    return request->endpoint == ENDPOINT_EMBEDDINGS ? embeddings_list(request, reply) : chat_completion(request, reply);
}

static int gemini_translate_response(request_t *request, const char *body, size_t length, buf_t *out,
                                     bool *is_unchanged)
{
    *is_unchanged = false;
    return translate_reply(request, body, length, out, translate_answer);
}

static const char *error_type_for(long status, const char *google_status)
{
    if (google_status != NULL) {
        if (strcmp(google_status, "RESOURCE_EXHAUSTED") == 0)
            return "rate_limit_error";
        if (strcmp(google_status, "UNAUTHENTICATED") == 0)
            return "authentication_error";
        if (strcmp(google_status, "PERMISSION_DENIED") == 0)
            return "permission_error";
        if (strcmp(google_status, "NOT_FOUND") == 0)
            return "not_found_error";
        if (strcmp(google_status, "INVALID_ARGUMENT") == 0 || strcmp(google_status, "FAILED_PRECONDITION") == 0)
            return "invalid_request_error";
    }
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

/* RetryInfo's retryDelay ("34.4s") in whole seconds, rounded up; NULL when absent. */
static const char *retry_after_from(request_t *request, const json_t *details)
{
    size_t i;
    const json_t *detail;
    json_array_foreach(details, i, detail) {
        const char *delay = json_string_value(json_object_get(detail, "retryDelay"));
        if (delay == NULL)
            continue;
        char *end;
        double seconds = strtod(delay, &end);
        if (end != delay && *end == 's' && seconds >= 0 && seconds < 86400)
            return arena_sprintf(&request->arena, "%ld", (long)ceil(seconds));
    }
    return NULL;
}

/* Google's {"error":{"code","message","status","details"}}, also as a one-element array. */
static void gemini_translate_error(request_t *request, long status, const char *body, size_t length,
                                   provider_error_t *error)
{
    json_t *reply = body ? json_loadb(body, length, 0, NULL) : NULL;
    const json_t *root = json_is_array(reply) ? json_array_get(reply, 0) : reply;
    const json_t *detail = json_object_get(root, "error");
    const char *google_status = json_string_value(json_object_get(detail, "status"));
    const char *message = json_string_value(json_object_get(detail, "message"));
    error->status = (int)status;
    error->type = error_type_for(status, google_status);
    error->code = google_status ? arena_strdup(&request->arena, google_status) : NULL;
    error->param = NULL;
    error->message = message ? arena_sprintf(&request->arena, "gemini: %s", message)
                             : arena_sprintf(&request->arena, "upstream provider %s returned HTTP %ld",
                                             request->provider->name, status);
    error->retry_after = retry_after_from(request, json_object_get(detail, "details"));
    json_decref(reply);
}

/* ---- streams ------------------------------------------------------------------ */

/* Owner: the upstream transfer (stream_state_size bytes, zeroed). */
typedef struct gemini_stream {
    openai_chunk_writer_t writer;
    int call_count;
    bool has_finish;
    bool is_over;
} gemini_stream_t;


static int stream_parts(gemini_stream_t *stream, request_t *request, const json_t *parts, buf_t *out)
{
    size_t i;
    const json_t *part;
    json_array_foreach(parts, i, part) {
        const json_t *text = json_object_get(part, "text");
        const json_t *call = json_object_get(part, "functionCall");
        int rc = 0;
        if (is_thought(part))
            continue;
        if (json_is_string(text)) {
            rc = openai_chunk_text(&stream->writer, request, json_string_value(text), json_string_length(text), out);
        } else if (json_is_object(call)) {
            const char *name = json_string_value(json_object_get(call, "name"));
            int index = stream->call_count++;
            const char *id = tool_call_id(request, index, part);
            const json_t *args = json_object_get(call, "args");
            char *arguments = args ? json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
            rc = name && id && arguments ? openai_chunk_tool_start(&stream->writer, request, index, id, name, out) : -1;
            if (rc == 0)
                rc = openai_chunk_tool_arguments(&stream->writer, request, index, arguments, strlen(arguments), out);
            free(arguments);
        }
        if (rc != 0)
            return PROVIDER_EVENT_FAILED;
    }
    return PROVIDER_EVENT_OK;
}

static int gemini_translate_event(request_t *request, void *state, const sse_event_t *event, buf_t *out)
{
    gemini_stream_t *stream = state;
    if (stream->is_over)
        return PROVIDER_EVENT_OK;
    json_t *data = json_loadb(event->data, event->data_length, 0, NULL);
    if (!json_is_object(data)) {
        json_decref(data);
        return PROVIDER_EVENT_FAILED;
    }
    int result = PROVIDER_EVENT_OK;
    const json_t *error = json_object_get(data, "error");
    if (json_is_object(error)) {
        const char *message = json_string_value(json_object_get(error, "message"));
        char text[1024];
        snprintf(text, sizeof text, "gemini: %s", message ? message : "the stream failed");
        stream->is_over = true;
        result = provider_event_error(out, error_type_for(provider_integer_member(error, "code"),
                                                          json_string_value(json_object_get(error, "status"))),
                                      text);
        json_decref(data);
        return result;
    }
    if (stream->writer.id[0] == '\0')
        openai_chunk_begin(&stream->writer, request, json_string_value(json_object_get(data, "responseId")));
    read_usage(json_object_get(data, "usageMetadata"), &request->usage);
    const json_t *candidate = json_array_get(json_object_get(data, "candidates"), 0);
    if (candidate != NULL) {
        result = provider_event_result(openai_chunk_text(&stream->writer, request, "", 0, out)); /* the role chunk */
        if (result == PROVIDER_EVENT_OK)
            result = stream_parts(stream, request, json_object_get(json_object_get(candidate, "content"), "parts"), out);
        const char *reason = json_string_value(json_object_get(candidate, "finishReason"));
        if (result == PROVIDER_EVENT_OK && reason != NULL && !stream->has_finish) {
            stream->has_finish = true;
            result = provider_event_result(
                openai_chunk_finish(&stream->writer, request, finish_reason(reason, stream->call_count > 0), out));
        }
    } else if (json_object_get(data, "promptFeedback") != NULL && !stream->has_finish) {
        stream->has_finish = true; /* the prompt was blocked: no candidates at all */
        result = provider_event_result(openai_chunk_finish(&stream->writer, request, "content_filter", out));
    }
    json_decref(data);
    return result;
}

/* Gemini's stream has no end marker: the end of the body ends it, after a
 * finishReason. Usage may come in events after the finish, so the usage chunk
 * and [DONE] are written here. */
static int gemini_finish_stream(request_t *request, void *state, buf_t *out)
{
    gemini_stream_t *stream = state;
    if (stream->is_over)
        return PROVIDER_EVENT_OK;
    stream->is_over = true;
    if (!stream->has_finish)
        return provider_event_error(out, "upstream_error", "gemini stream ended before the answer was complete");
    return openai_chunk_end(&stream->writer, request, out) == 0 ? PROVIDER_EVENT_DONE : PROVIDER_EVENT_FAILED;
}

const provider_adapter_t provider_gemini = {
    .name = "gemini",
    .build_call = gemini_build_call,
    .stream_state_size = sizeof(gemini_stream_t),
    .translate_event = gemini_translate_event,
    .finish_stream = gemini_finish_stream,
    .translate_response = gemini_translate_response,
    .translate_error = gemini_translate_error,
};
