/* openai.c — adapter for OpenAI and servers that speak its wire format
 * (types openai and openai-compatible).
 *
 * The internal form already is OpenAI's, so requests go up with only the
 * model replaced and, for streams, stream_options.include_usage forced on so
 * every request's tokens are known. Stream events pass through untouched
 * except the usage-only chunk, which is dropped when the client did not ask
 * for it. Events are parsed as JSON only when they may carry usage or an
 * error, which keeps the per-chunk cost to a substring search. */
#include <string.h>

#include "sluice/provider.h"
#include "sluice/util/json_scan.h"

static int openai_build_call(request_t *request, provider_call_t *call)
{
    const provider_config_t *provider = request->provider;
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
    call->url = arena_sprintf(&request->arena, "%s%s", provider->base_url, provider_openai_path(request->endpoint));
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, request->is_stream ? "Accept: text/event-stream" : "Accept: application/json");
    headers = curl_slist_append(headers, "Expect:");
    if (provider->api_key != NULL) {
        char *authorization = arena_sprintf(&request->arena, "Authorization: Bearer %s", provider->api_key);
        headers = authorization ? curl_slist_append(headers, authorization) : NULL;
        if (authorization)
            explicit_bzero(authorization, strlen(authorization)); /* curl copied it */
    }
    for (size_t i = 0; headers != NULL && i < provider->extra_header_count; i++)
        headers = curl_slist_append(headers, provider->extra_headers[i]);
    call->headers = headers;
    return call->url && headers ? 0 : -1;
}

static int append_event(buf_t *out, const char *data, size_t length)
{
    int rc = buf_append(out, "data: ", 6);
    rc |= buf_append(out, data, length);
    rc |= buf_append(out, "\n\n", 2);
    return rc == 0 ? PROVIDER_EVENT_OK : PROVIDER_EVENT_FAILED;
}

static int openai_translate_event(request_t *request, void *state, const sse_event_t *event, buf_t *out)
{
    (void)state;
    if (event->data_length == 6 && memcmp(event->data, "[DONE]", 6) == 0)
        return append_event(out, event->data, event->data_length) == PROVIDER_EVENT_OK ? PROVIDER_EVENT_DONE
                                                                                         : PROVIDER_EVENT_FAILED;
    int may_have_usage = strstr(event->data, "\"usage\":{") != NULL || strstr(event->data, "\"usage\": {") != NULL;
    int may_have_error = strstr(event->data, "\"error\"") != NULL;
    if (!may_have_usage && !may_have_error)
        return append_event(out, event->data, event->data_length);
    json_t *chunk = json_loadb(event->data, event->data_length, 0, NULL);
    if (chunk == NULL) /* not JSON: pass it on, the client decides */
        return append_event(out, event->data, event->data_length);
    int result = PROVIDER_EVENT_OK;
    json_t *choices = json_object_get(chunk, "choices");
    usage_from_openai(json_object_get(chunk, "usage"), &request->usage);
    if (json_object_get(chunk, "error") != NULL) {
        result = append_event(out, event->data, event->data_length) == PROVIDER_EVENT_OK ? PROVIDER_EVENT_ERROR
                                                                                          : PROVIDER_EVENT_FAILED;
    } else if (json_is_object(json_object_get(chunk, "usage")) && json_is_array(choices) &&
               json_array_size(choices) == 0 && !request->client_wants_usage) {
        /* the usage chunk we asked for on the client's behalf: keep it to ourselves */
    } else {
        result = append_event(out, event->data, event->data_length);
    }
    json_decref(chunk);
    return result;
}

static int openai_translate_response(request_t *request, const char *body, size_t length, buf_t *out,
                                     bool *is_unchanged)
{
    (void)out;
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
    .translate_event = openai_translate_event,
    .translate_response = openai_translate_response,
    .translate_error = openai_translate_error,
};
