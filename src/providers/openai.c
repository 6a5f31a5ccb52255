/* openai.c — adapter for OpenAI and servers that speak its wire format
 * (types openai and openai-compatible).
 *
 * The internal form already is OpenAI's, so requests go up with only the
 * model replaced and, for streams, stream_options.include_usage forced on so
 * every request's tokens are known. Stream events pass through untouched
 * except the usage-only chunk, which is dropped when the client did not ask
 * for it. Events are parsed as JSON only when they may carry usage or an
 * error, which keeps the per-chunk cost to a substring search. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/compat_presets.h"
#include "sluice/provider.h"
#include "sluice/provider_util.h"
#include "sluice/util/json_scan.h"

/* Appends line to headers; frees the list and returns NULL when out of memory. */
static struct curl_slist *append_header(struct curl_slist *headers, const char *line)
{
    struct curl_slist *appended = curl_slist_append(headers, line);
    if (appended == NULL)
        curl_slist_free_all(headers);
    return appended;
}

/* The upstream headers of a call, which depend only on the provider and
 * whether it streams. NULL when out of memory. */
static struct curl_slist *new_headers(const provider_config_t *provider, bool is_stream)
{
    struct curl_slist *headers = append_header(NULL, "Content-Type: application/json");
    if (headers != NULL)
        headers = append_header(headers, is_stream ? "Accept: text/event-stream" : "Accept: application/json");
    if (headers != NULL)
        headers = append_header(headers, "Expect:");
    if (headers != NULL && provider->api_key != NULL) {
        static const char prefix[] = "Authorization: Bearer ";
        size_t key_length = strlen(provider->api_key);
        char *authorization = malloc(sizeof prefix + key_length);
        if (authorization != NULL) {
            memcpy(authorization, prefix, sizeof prefix - 1);
            memcpy(authorization + sizeof prefix - 1, provider->api_key, key_length + 1);
        }
        headers = authorization ? append_header(headers, authorization) : (curl_slist_free_all(headers), NULL);
        if (authorization != NULL) {
            explicit_bzero(authorization, sizeof prefix + key_length); /* curl copied it */
            free(authorization);
        }
    }
    for (size_t i = 0; headers != NULL && i < provider->extra_header_count; i++)
        headers = append_header(headers, provider->extra_headers[i]);
    return headers;
}

/* The same list built once per provider and config snapshot and shared by
 * every transfer of every worker (curl only reads it); the snapshot frees it
 * (config_free). Only for the provider's own type: Azure calls this adapter
 * with a modified copy of its provider. */
static struct curl_slist *shared_headers(const provider_config_t *provider, bool is_stream)
{
    _Atomic(struct curl_slist *) *slot = &((provider_config_t *)provider)->shared_headers[is_stream ? 1 : 0];
    struct curl_slist *headers = atomic_load_explicit(slot, memory_order_acquire);
    if (headers != NULL)
        return headers;
    headers = new_headers(provider, is_stream);
    struct curl_slist *installed = NULL;
    if (headers != NULL &&
        !atomic_compare_exchange_strong_explicit(slot, &installed, headers, memory_order_acq_rel, memory_order_acquire)) {
        config_free_headers(headers); /* another worker was first */
        headers = installed;
    }
    return headers;
}

static int append_model(buf_t *out, const char *model)
{
    int rc = buf_append_char(out, '"');
    rc |= buf_append_json_escaped(out, model, strlen(model));
    return rc | buf_append_char(out, '"');
}

static bool is_blank(const char *text, size_t length)
{
    for (size_t i = 0; i < length; i++)
        if (text[i] != ' ' && text[i] != '\n' && text[i] != '\r' && text[i] != '\t')
            return false;
    return true;
}

/* The body as json_object_set_new + json_dumps would send it, made from the
 * client's own bytes (request->raw_body): the model's value replaced and, for
 * a stream, stream_options.include_usage set to true (replaced in place, or
 * added at the end of its object, as jansson would). Returns 0, -1 when out of
 * memory, 1 when the text is unusual (a top-level key with escapes): the
 * caller then builds the body from the tree. */
static int splice_body(request_t *request, provider_call_t *call)
{
    static const char *const keys[] = {"model", "stream_options"};
    static const char *const option_keys[] = {"include_usage"};
    const char *text = request->raw_body;
    size_t length = request->raw_body_length;
    json_scan_value_t values[2], include_usage;
    size_t close, options_close;
    if (json_locate_members(text, length, 2, keys, values, &close) != JSON_SCAN_OK || values[0].text == NULL ||
        values[0].text[0] != '"')
        return 1;
    /* At most two edits, model first or second: {at, cut, replacement (NULL = the model)}. */
    struct edit {
        size_t at, cut;
        const char *replacement;
    } edits[2] = {{(size_t)(values[0].text - text), values[0].length, NULL}};
    size_t edit_count = 1;
    if (request->is_stream) {
        json_scan_value_t options = values[1];
        struct edit *edit = &edits[edit_count++];
        if (options.text == NULL) {
            *edit = (struct edit){close, 0, ",\"stream_options\":{\"include_usage\":true}"};
        } else if (options.length == 4 && memcmp(options.text, "null", 4) == 0) {
            *edit = (struct edit){(size_t)(options.text - text), 4, "{\"include_usage\":true}"};
        } else if (options.text[0] == '{' && json_locate_members(options.text, options.length, 1, option_keys,
                                                                  &include_usage, &options_close) == JSON_SCAN_OK) {
            if (include_usage.text != NULL)
                *edit = (struct edit){(size_t)(include_usage.text - text), include_usage.length, "true"};
            else
                *edit = (struct edit){(size_t)(options.text - text) + options_close, 0,
                                      is_blank(options.text + 1, options_close - 1) ? "\"include_usage\":true"
                                                                                    : ",\"include_usage\":true"};
        } else {
            return 1;
        }
        if (edits[1].at < edits[0].at) {
            struct edit first = edits[1];
            edits[1] = edits[0];
            edits[0] = first;
        }
    }
    buf_t out;
    buf_init(&out);
    int rc = buf_reserve(&out, length + 64 + 6 * strlen(request->upstream_model));
    size_t position = 0;
    for (size_t i = 0; rc == 0 && i < edit_count; i++) {
        rc |= buf_append(&out, text + position, edits[i].at - position);
        rc |= edits[i].replacement ? buf_append_str(&out, edits[i].replacement)
                                   : append_model(&out, request->upstream_model);
        position = edits[i].at + edits[i].cut;
    }
    if (rc == 0)
        rc = buf_append(&out, text + position, length - position);
    if (rc != 0) {
        buf_free(&out);
        return -1;
    }
    call->body = out.data; /* malloc'ed, freed with free() */
    call->body_length = out.length;
    return 0;
}

static int build_body_from_tree(request_t *request, provider_call_t *call)
{
    json_t *body = request->body;
    if (json_object_set_new(body, "model", json_string(request->upstream_model)) != 0)
        return -1;
    if (request->is_stream) {
        json_t *options = json_object_get(body, "stream_options");
        if (!json_is_object(options)) {
            options = json_object();
            if (options == NULL || json_object_set_new(body, "stream_options", options) != 0)
                return -1;
        }
        if (json_object_set_new(options, "include_usage", json_true()) != 0)
            return -1;
    }
    call->body = json_dumps(body, JSON_COMPACT);
    if (call->body == NULL)
        return -1;
    call->body_length = strlen(call->body);
    return 0;
}

static int openai_build_call(request_t *request, provider_call_t *call)
{
    const provider_config_t *provider = request->provider;
    int spliced = compat_presets_build_body(request, call); /* 1: the preset built it */
    if (spliced == 0)
        spliced = request->raw_body != NULL ? splice_body(request, call) : 1;
    else if (spliced > 0)
        spliced = 0;
    if (spliced < 0 || (spliced > 0 && build_body_from_tree(request, call) != 0))
        return -1;
    const char *path = provider_openai_path(request->endpoint);
    size_t base_length = strlen(provider->base_url), path_length = strlen(path);
    char *url = arena_alloc(&request->arena, base_length + path_length + 1);
    if (url != NULL) {
        memcpy(url, provider->base_url, base_length);
        memcpy(url + base_length, path, path_length + 1);
    }
    call->url = url;
    if (provider->type == PROVIDER_OPENAI || provider->type == PROVIDER_OPENAI_COMPATIBLE) {
        call->headers = shared_headers(provider, request->is_stream);
        call->are_headers_shared = true;
    } else {
        call->headers = new_headers(provider, request->is_stream);
    }
    return call->url && call->headers ? 0 : -1;
}


/* The chunk read with json_loadb: for top-level keys with escapes. */
static int translate_event_from_tree(request_t *request, const sse_event_t *event, buf_t *out)
{
    json_t *chunk = json_loadb(event->data, event->data_length, 0, NULL);
    if (chunk == NULL) /* not JSON: pass it on, the client decides */
        return provider_event_data(out, event->data, event->data_length);
    int result = PROVIDER_EVENT_OK;
    json_t *choices = json_object_get(chunk, "choices");
    usage_from_openai(json_object_get(chunk, "usage"), &request->usage);
    if (json_object_get(chunk, "error") != NULL) {
        result = provider_event_data(out, event->data, event->data_length) == PROVIDER_EVENT_OK ? PROVIDER_EVENT_ERROR
                                                                                          : PROVIDER_EVENT_FAILED;
    } else if (json_is_object(json_object_get(chunk, "usage")) && json_is_array(choices) &&
               json_array_size(choices) == 0 && !request->client_wants_usage) {
        /* the usage chunk we asked for on the client's behalf: keep it to ourselves */
    } else {
        result = provider_event_data(out, event->data, event->data_length);
    }
    json_decref(chunk);
    return result;
}

static int openai_translate_event(request_t *request, void *state, const sse_event_t *event, buf_t *out)
{
    if (state != NULL && compat_preset_hooks_stream(compat_preset_of(request)))
        return compat_presets_translate_event(request, state, event, out);
    if (event->data_length == 6 && memcmp(event->data, "[DONE]", 6) == 0)
        return provider_event_data(out, event->data, event->data_length) == PROVIDER_EVENT_OK ? PROVIDER_EVENT_DONE
                                                                                         : PROVIDER_EVENT_FAILED;
    bool may_have_usage = false; /* "usage":{ or "usage": { somewhere */
    for (const char *at = event->data; !may_have_usage && (at = strstr(at, "\"usage\":")) != NULL; at += 8)
        may_have_usage = at[8] == '{' || (at[8] == ' ' && at[9] == '{');
    int may_have_error = strstr(event->data, "\"error\"") != NULL;
    if (!may_have_usage && !may_have_error)
        return provider_event_data(out, event->data, event->data_length);
    /* Read usage, choices and error without building the chunk (json_loadb
     * of the usage chunk was a sixth of a streamed request's instructions);
     * the scan accepts exactly what json_loadb accepts. */
    static const char *const keys[] = {"usage", "choices", "error"};
    json_scan_value_t values[3];
    int scan = json_scan_members(event->data, event->data_length, 3, keys, values);
    if (scan == JSON_SCAN_UNDECIDED)
        return translate_event_from_tree(request, event, out);
    if (scan == JSON_SCAN_INVALID) /* not JSON, or not an object: pass it on, the client decides */
        return provider_event_data(out, event->data, event->data_length);
    json_scan_value_t usage = values[0], choices = values[1];
    if (usage.text != NULL && usage_from_openai_text(usage.text, usage.length, &request->usage) != 0) {
        json_t *tree = json_loadb(usage.text, usage.length, 0, NULL);
        usage_from_openai(tree, &request->usage);
        json_decref(tree);
    }
    if (values[2].text != NULL)
        return provider_event_data(out, event->data, event->data_length) == PROVIDER_EVENT_OK ? PROVIDER_EVENT_ERROR
                                                                                        : PROVIDER_EVENT_FAILED;
    bool is_usage_only = usage.text != NULL && usage.text[0] == '{' && choices.text != NULL &&
                         choices.text[0] == '[' && is_blank(choices.text + 1, choices.length - 2);
    if (is_usage_only && !request->client_wants_usage)
        return PROVIDER_EVENT_OK; /* the usage chunk we asked for on the client's behalf: keep it to ourselves */
    return provider_event_data(out, event->data, event->data_length);
}

static int openai_translate_response(request_t *request, const char *body, size_t length, buf_t *out,
                                     bool *is_unchanged)
{
    if (compat_preset_hooks_response(compat_preset_of(request)))
        return compat_presets_translate_response(request, body, length, out, is_unchanged);
    /* The body goes to the client as it is: check it is a JSON object and
     * read its usage without building the tree (json_loadb was a quarter of
     * a proxied request's instructions). */
    const char *usage_text = NULL;
    size_t usage_length = 0;
    int scan = json_scan_member(body, length, "usage", &usage_text, &usage_length);
    if (scan == JSON_SCAN_INVALID)
        return -1;
    if (scan == JSON_SCAN_UNDECIDED) {
        json_t *response = json_loadb(body, length, 0, NULL);
        if (!json_is_object(response)) {
            json_decref(response);
            return -1;
        }
        usage_from_openai(json_object_get(response, "usage"), &request->usage);
        json_decref(response);
    } else if (usage_from_openai_text(usage_text, usage_length, &request->usage) != 0) {
        json_t *usage = json_loadb(usage_text, usage_length, 0, NULL);
        usage_from_openai(usage, &request->usage);
        json_decref(usage);
    }
    *is_unchanged = true;
    return 0;
}

static const char *default_error_type(long status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

static const char *string_member(request_t *request, const json_t *object, const char *name)
{
    const json_t *value = json_object_get(object, name);
    if (json_is_string(value))
        return arena_strdup(&request->arena, json_string_value(value));
    if (json_is_integer(value))
        return arena_sprintf(&request->arena, "%lld", (long long)json_integer_value(value));
    return NULL;
}

static void openai_translate_error(request_t *request, long status, const char *body, size_t length,
                                   provider_error_t *error)
{
    error->status = (int)status;
    error->type = default_error_type(status);
    error->code = NULL;
    error->param = NULL;
    error->message = arena_sprintf(&request->arena, "upstream provider %s returned HTTP %ld", request->provider->name,
                                   status);
    json_t *reply = json_loadb(body, length, 0, NULL);
    json_t *detail = json_object_get(reply, "error");
    if (json_is_object(detail)) {
        const char *message = string_member(request, detail, "message");
        const char *type = string_member(request, detail, "type");
        if (message != NULL)
            error->message = message;
        if (type != NULL)
            error->type = type;
        error->code = string_member(request, detail, "code");
        error->param = string_member(request, detail, "param");
    } else if (json_is_string(detail)) {
        error->message = arena_strdup(&request->arena, json_string_value(detail));
    }
    json_decref(reply);
}

const provider_adapter_t provider_openai = {
    .name = "openai",
    .build_call = openai_build_call,
    .stream_state_size = sizeof(compat_stream_t), /* used only by openai-compatible presets */
    .translate_event = openai_translate_event,
    .translate_response = openai_translate_response,
    .translate_error = openai_translate_error,
};
