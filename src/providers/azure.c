/* azure.c — adapter for Azure OpenAI (type azure).
 *
 * Azure speaks OpenAI's wire format, so bodies, streams and errors go
 * through the OpenAI adapter's translation; only the call differs. With
 * base_url the resource root (https://NAME.openai.azure.com) the deployment
 * is in the path and the api-version in the query:
 *   {base_url}/openai/deployments/{deployment}/chat/completions?api-version=…
 * With base_url ending in /openai/v1 (Azure's v1 API) the URL is OpenAI's
 * shape and the body's model names the deployment. Either way the key goes in
 * the api-key header.
 *
 * Azure's content filter adds chunks with "choices": [] (prompt filter
 * results) before the first content; they carry no usage or error, so the
 * OpenAI translation passes them through untouched. */
#include <string.h>

#include "sluice/provider.h"
#include "sluice/sigv4.h"

static bool is_v1_base_url(const char *base_url)
{
    static const char suffix[] = "/openai/v1";
    size_t length = strlen(base_url);
    return length >= sizeof suffix - 1 && strcmp(base_url + length - (sizeof suffix - 1), suffix) == 0;
}

/* The URL of an Azure call (request arena), or NULL when out of memory. */
static const char *azure_url(request_t *request)
{
    const provider_config_t *provider = request->provider;
    const char *path = provider_openai_path(request->endpoint);
    if (is_v1_base_url(provider->base_url))
        return arena_sprintf(&request->arena, "%s%s", provider->base_url, path);
    buf_t deployment, version;
    buf_init(&deployment);
    buf_init(&version);
    const char *api_version = provider->api_version ? provider->api_version : "2024-10-21";
    const char *model = request->upstream_model ? request->upstream_model : "";
    const char *url = NULL;
    if (sigv4_uri_encode(&deployment, model, strlen(model), false) == 0 &&
        sigv4_uri_encode(&version, api_version, strlen(api_version), false) == 0)
        url = arena_sprintf(&request->arena, "%s/openai/deployments/%s%s?api-version=%s", provider->base_url,
                            deployment.data ? deployment.data : "", path, version.data ? version.data : "");
    buf_free(&deployment);
    buf_free(&version);
    return url;
}

/* The OpenAI adapter builds the body and headers (model, forced stream usage,
 * extra headers); Azure's URL and api-key header replace its own. */
static int azure_build_call(request_t *request, provider_call_t *call)
{
    const provider_config_t *provider = request->provider;
    if (request->endpoint == ENDPOINT_MODELS || request->endpoint == ENDPOINT_NONE) {
        request_reply_error(request, 404, "invalid_request_error", "unsupported_endpoint", NULL,
                            "provider %s (azure) does not offer this endpoint", provider->name);
        return PROVIDER_CALL_REJECTED;
    }
    provider_config_t without_key = *provider;
    without_key.api_key = NULL; /* no Authorization: Bearer; api-key below instead */
    request->provider = &without_key;
    int rc = provider_openai.build_call(request, call);
    request->provider = provider;
    if (rc != 0)
        return rc;
    call->url = azure_url(request);
    if (provider->api_key != NULL && call->headers != NULL) {
        char *line = arena_sprintf(&request->arena, "api-key: %s", provider->api_key);
        struct curl_slist *headers = line ? curl_slist_append(call->headers, line) : NULL;
        if (line != NULL)
            explicit_bzero(line, strlen(line)); /* curl copied it */
        if (headers == NULL) {
            curl_slist_free_all(call->headers);
            call->headers = NULL;
        }
    }
    return call->url && call->headers ? 0 : -1;
}

static int azure_translate_event(request_t *request, void *state, const sse_event_t *event, buf_t *out)
{
    return provider_openai.translate_event(request, state, event, out);
}

static int azure_translate_response(request_t *request, const char *body, size_t length, buf_t *out,
                                    bool *is_unchanged)
{
    return provider_openai.translate_response(request, body, length, out, is_unchanged);
}

/* Azure's errors are OpenAI's {"error":{…}}, except those from its gateway
 * (a bad key, a quota) which are {"statusCode":401,"message":"…"}. */
static void azure_translate_error(request_t *request, long status, const char *body, size_t length,
                                  provider_error_t *error)
{
    provider_openai.translate_error(request, status, body, length, error);
    json_t *reply = body ? json_loadb(body, length, 0, NULL) : NULL;
    const char *message = json_string_value(json_object_get(reply, "message"));
    if (json_object_get(reply, "error") == NULL && message != NULL)
        error->message = arena_strdup(&request->arena, message);
    json_decref(reply);
}

const provider_adapter_t provider_azure = {
    .name = "azure",
    .build_call = azure_build_call,
    .translate_event = azure_translate_event,
    .translate_response = azure_translate_response,
    .translate_error = azure_translate_error,
};
