/* auth.c — the auth stage: who is calling, and may they use this model.
 *
 * With keys configured, every API request must carry one, as
 * "Authorization: Bearer <key>" or, for Anthropic clients, "x-api-key". The
 * key is hashed and compared in constant time against the configured hashes;
 * the secret itself is never stored or logged. With no keys configured the
 * gateway is open (a warning is logged at start-up). */
#include <string.h>
#include <strings.h>

#include "sluice/pipeline.h"

static const char *presented_secret(const request_t *request, size_t *length)
{
    const char *authorization = request_header(request, "authorization");
    if (authorization != NULL) {
        while (*authorization == ' ')
            authorization++;
        if (strncasecmp(authorization, "bearer ", 7) != 0)
            return NULL;
        authorization += 7;
        while (*authorization == ' ')
            authorization++;
        *length = strlen(authorization);
        while (*length > 0 && authorization[*length - 1] == ' ')
            (*length)--;
        return *length ? authorization : NULL;
    }
    const char *api_key = request_header(request, "x-api-key");
    *length = api_key ? strlen(api_key) : 0;
    return *length ? api_key : NULL;
}

static bool is_routable(const config_t *config, const char *model)
{
    const char *slash = strchr(model, '/');
    return config_find_model(config, model) != NULL ||
           (slash != NULL && config_find_provider(config, model, (size_t)(slash - model)) != NULL);
}

static stage_result_t auth_on_request(request_t *request)
{
    const config_t *config = request->config;
    if (config->key_count == 0)
        return STAGE_CONTINUE;
    size_t length = 0;
    const char *secret = presented_secret(request, &length);
    if (secret == NULL) {
        request_reply_error(request, 401, "invalid_request_error", "invalid_api_key", NULL,
                            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.");
        return STAGE_RESPONDED;
    }
    request->key = config_find_key(config, secret, length);
    if (request->key == NULL) {
        request_reply_error(request, 401, "invalid_request_error", "invalid_api_key", NULL,
                            "Incorrect API key provided.");
        return STAGE_RESPONDED;
    }
    /* An unknown model is the router's 404; a known one the key may not use is a 403. */
    if (request->model != NULL && !config_key_allows_model(request->key, request->model) &&
        is_routable(config, request->model)) {
        request_reply_error(request, 403, "permission_error", "model_not_allowed", "model",
                            "The key '%s' is not allowed to use model '%s'.", request->key->name, request->model);
        return STAGE_RESPONDED;
    }
    return STAGE_CONTINUE;
}

const stage_t stage_auth = {.name = "auth", .on_request = auth_on_request, .on_complete = NULL};
