/* translate.c — the translation steps the converting adapters share (see
 * translate.h): walking OpenAI messages into a provider's merged turns, and
 * building the OpenAI answer objects (completion, choice, message, tool call,
 * embeddings list) from what the adapter read out of the provider's reply. */
#include "sluice/translate.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/provider.h"
#include "sluice/provider_util.h"

/* ---- requests --------------------------------------------------------------- */

int translate_fail(translate_messages_t *messages, const char *param, const char *message)
{
    snprintf(messages->error, sizeof messages->error, "%s", message);
    snprintf(messages->param, sizeof messages->param, "%s", param ? param : "");
    return -1;
}

int translate_append_new(json_t *array, json_t *item)
{
    return item != NULL && json_array_append_new(array, item) == 0 ? 0 : -1;
}

static int append_text(translate_messages_t *messages, json_t *parts, const json_t *text)
{
    if (json_string_length(text) == 0)
        return 0;
    return messages->writer->append_text(parts, json_string_value(text), json_string_length(text));
}

int translate_content(translate_messages_t *messages, json_t *parts, const json_t *content, bool allow_images)
{
    if (content == NULL || json_is_null(content))
        return 0;
    if (json_is_string(content))
        return append_text(messages, parts, content);
    if (!json_is_array(content))
        return translate_fail(messages, "messages", "message content must be a string or an array of parts");
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        const json_t *text = json_object_get(part, "text");
        int rc;
        if (type != NULL && strcmp(type, "text") == 0 && json_is_string(text)) {
            rc = append_text(messages, parts, text);
        } else if (type != NULL && strcmp(type, "image_url") == 0 && allow_images) {
            rc = messages->writer->append_image(messages, parts, provider_image_url(part));
        } else {
            char message[160];
            snprintf(message, sizeof message, "content part type '%s' is not supported by %s here",
                     type ? type : "(none)", messages->provider);
            rc = translate_fail(messages, "messages", message);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

int translate_append_turn(json_t *turns, const char *parts_key, const char *role, json_t *parts)
{
    size_t count = json_array_size(turns);
    json_t *last = count ? json_array_get(turns, count - 1) : NULL;
    if (json_array_size(parts) == 0) {
        json_decref(parts);
        return 0;
    }
    if (last != NULL && strcmp(json_string_value(json_object_get(last, "role")), role) == 0) {
        int rc = json_array_extend(json_object_get(last, parts_key), parts);
        json_decref(parts);
        return rc;
    }
    return translate_append_new(turns, json_pack("{s:s, s:o}", "role", role, parts_key, parts));
}

/* An assistant's tool_calls: each needs an id and a name; its arguments (a
 * JSON string, "" for none) are parsed for the provider, which wants an
 * object as the tool's input (Bedrock takes any JSON value). */
static int append_tool_calls(translate_messages_t *messages, json_t *parts, const json_t *tool_calls)
{
    size_t i;
    const json_t *call;
    json_array_foreach(tool_calls, i, call) {
        const json_t *function = json_object_get(call, "function");
        const char *id = json_string_value(json_object_get(call, "id"));
        const char *name = json_string_value(json_object_get(function, "name"));
        const char *arguments = json_string_value(json_object_get(function, "arguments"));
        if (id == NULL || name == NULL)
            return translate_fail(messages, "messages", "assistant tool_calls need an id and a function name");
        json_t *input = arguments && arguments[0] ? json_loads(arguments, JSON_DECODE_ANY, NULL) : json_object();
        if (input == NULL && messages->is_any_json_input)
            return translate_fail(messages, "messages", "tool call arguments are not valid JSON");
        if (!json_is_object(input) && !messages->is_any_json_input) {
            json_decref(input);
            return translate_fail(messages, "messages", "tool call arguments must be a JSON object");
        }
        if (messages->writer->append_tool_call(messages, parts, id, name, input) != 0)
            return -1;
    }
    return 0;
}

int translate_message(translate_messages_t *messages, const json_t *message)
{
    const char *role = json_string_value(json_object_get(message, "role"));
    const json_t *content = json_object_get(message, "content");
    if (role == NULL)
        return translate_fail(messages, "messages", "every message needs a role");
    if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)
        return translate_content(messages, messages->system, content, false);
    json_t *parts = json_array();
    if (parts == NULL)
        return -1;
    int rc;
    const char *target = "user";
    if (strcmp(role, "user") == 0) {
        rc = translate_content(messages, parts, content, true);
    } else if (strcmp(role, "assistant") == 0) {
        target = messages->assistant_role;
        rc = translate_content(messages, parts, content, false);
        if (rc == 0 && json_is_array(json_object_get(message, "tool_calls")))
            rc = append_tool_calls(messages, parts, json_object_get(message, "tool_calls"));
    } else if (strcmp(role, "tool") == 0) {
        rc = messages->writer->append_tool_result(messages, parts, message);
    } else {
        char text[160];
        snprintf(text, sizeof text, "%s supports the roles system, developer, user, assistant and tool",
                 messages->provider);
        rc = translate_fail(messages, "messages", text);
    }
    if (rc != 0) {
        json_decref(parts);
        return -1;
    }
    return translate_append_turn(messages->turns, messages->parts_key, target, parts);
}

void translate_messages_release(translate_messages_t *messages)
{
    json_decref(messages->turns);
    json_decref(messages->system);
    messages->turns = NULL;
    messages->system = NULL;
}

int translate_messages_convert(translate_messages_t *messages, const json_t *list)
{
    if (!json_is_array(list))
        return translate_fail(messages, "messages", "messages must be an array");
    messages->turns = json_array();
    messages->system = json_array();
    int rc = messages->turns && messages->system ? 0 : -1;
    size_t i;
    const json_t *message;
    json_array_foreach(list, i, message) {
        if (rc == 0)
            rc = translate_message(messages, message);
    }
    if (rc != 0)
        translate_messages_release(messages);
    return rc;
}

/* ---- answers ---------------------------------------------------------------- */

json_t *translate_tool_call(const char *id, const char *name, const json_t *input)
{
    char *arguments = input ? json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (input != NULL && arguments == NULL)
        return NULL;
    json_t *call = json_pack("{s:s?, s:s, s:{s:s?, s:s}}", "id", id, "type", "function", "function", "name", name,
                             "arguments", arguments ? arguments : "{}");
    free(arguments);
    return call;
}

json_t *translate_assistant_message(const buf_t *text, json_t *tool_calls)
{
    bool has_tools = json_array_size(tool_calls) > 0;
    json_t *content = text->length || !has_tools ? json_stringn(text->data ? text->data : "", text->length)
                                                 : json_null();
    json_t *message = json_pack("{s:s, s:o, s:n}", "role", "assistant", "content", content, "refusal");
    if (message != NULL && has_tools && json_object_set(message, "tool_calls", tool_calls) != 0) {
        json_decref(message);
        message = NULL;
    }
    json_decref(tool_calls);
    return message;
}

json_t *translate_choice(int index, json_t *message, const char *finish_reason)
{
    return json_pack("{s:i, s:o, s:n, s:s}", "index", index, "message", message, "logprobs", "finish_reason",
                     finish_reason);
}

json_t *translate_chat_completion(request_t *request, const char *id, json_t *choices)
{
    json_t *completion = json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", id, "object", "chat.completion", "created",
                                   (json_int_t)time(NULL), "model", provider_reply_model(request), "choices", choices);
    if (completion != NULL && request->usage.is_known &&
        json_object_set_new(completion, "usage", provider_usage_json(&request->usage)) != 0) {
        json_decref(completion);
        return NULL;
    }
    return completion;
}

/* Floats as OpenAI's base64 embedding form (little-endian float32). */
static json_t *embedding_base64(const json_t *values)
{
    size_t count = json_array_size(values);
    unsigned char *raw = malloc(count * 4 + 1);
    char *encoded = malloc(((count * 4 + 2) / 3) * 4 + 1);
    json_t *result = NULL;
    if (raw != NULL && encoded != NULL) {
        for (size_t i = 0; i < count; i++) {
            float value = (float)json_number_value(json_array_get(values, i));
            uint32_t bits;
            memcpy(&bits, &value, 4);
            for (int b = 0; b < 4; b++)
                raw[4 * i + (size_t)b] = (unsigned char)(bits >> (8 * b));
        }
        EVP_EncodeBlock((unsigned char *)encoded, raw, (int)(count * 4));
        result = json_string(encoded);
    }
    free(raw);
    free(encoded);
    return result;
}

json_t *translate_embedding(const request_t *request, const json_t *values, size_t index)
{
    const char *format = json_string_value(json_object_get(request->body, "encoding_format"));
    bool is_base64 = format != NULL && strcmp(format, "base64") == 0;
    json_t *vector = is_base64 ? embedding_base64(values) : json_deep_copy(values);
    return json_pack("{s:s, s:i, s:o}", "object", "embedding", "index", (int)index, "embedding", vector);
}

json_t *translate_embeddings_list(request_t *request, json_t *data, long tokens)
{
    request->usage = (usage_t){.is_known = true, .prompt_tokens = tokens};
    return json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data, "model",
                     provider_reply_model(request), "usage", "prompt_tokens", (json_int_t)tokens, "total_tokens",
                     (json_int_t)tokens);
}

int translate_reply(request_t *request, const char *body, size_t length, buf_t *out,
                    json_t *(*translate)(request_t *request, const json_t *reply))
{
    json_t *reply = json_loadb(body, length, 0, NULL);
    json_t *translated = json_is_object(reply) ? translate(request, reply) : NULL;
    json_decref(reply);
    char *text = translated ? json_dumps(translated, JSON_COMPACT) : NULL;
    json_decref(translated);
    int rc = text && buf_append_str(out, text) == 0 ? 0 : -1;
    free(text);
    return rc;
}
