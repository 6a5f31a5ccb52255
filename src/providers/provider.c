/* provider.c — maps a configured provider type to its adapter. */
#include "sluice/provider.h"

const provider_adapter_t *provider_adapter_for(provider_type_t type)
{
    switch (type) {
    case PROVIDER_OPENAI:
    case PROVIDER_OPENAI_COMPATIBLE:
        return &provider_openai;
    case PROVIDER_AZURE:
        return &provider_azure;
    case PROVIDER_BEDROCK:
        return &provider_bedrock;
    case PROVIDER_ANTHROPIC:
        return &provider_anthropic;
    case PROVIDER_GEMINI:
        return &provider_gemini;
    }
    return NULL;
}

const char *provider_openai_path(endpoint_t endpoint)
{
    switch (endpoint) {
    case ENDPOINT_CHAT_COMPLETIONS: return "/chat/completions";
    case ENDPOINT_COMPLETIONS: return "/completions";
    case ENDPOINT_EMBEDDINGS: return "/embeddings";
    case ENDPOINT_MODELS: return "/models";
    case ENDPOINT_NONE: break;
    }
    return "/";
}

const char *provider_reply_model(const request_t *request)
{
    if (request->upstream_model != NULL && request->upstream_model[0] != '\0')
        return request->upstream_model;
    return request->model ? request->model : "";
}
