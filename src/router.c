/* router.c — the router stage: which provider and model serve this request.
 *
 * A configured model name maps to its targets; this build sends each request
 * to the first target. A client may also name "provider/model" to reach any
 * model of a configured provider directly. GET /v1/models is answered here,
 * from the model names the caller's key may use. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/pipeline.h"

static stage_result_t list_models(request_t *request)
{
    const config_t *config = request->config;
    json_t *data = json_array();
    json_t *root = json_pack("{s:s, s:o}", "object", "list", "data", data);
    if (root == NULL)
        return STAGE_ERROR;
    json_int_t created = (json_int_t)time(NULL);
    for (size_t i = 0; i < config->model_count; i++) {
        const model_config_t *model = &config->models[i];
        if (request->key != NULL && !config_key_allows_model(request->key, model->name))
            continue;
        json_array_append_new(data, json_pack("{s:s, s:s, s:I, s:s}", "id", model->name, "object", "model", "created",
                                              created, "owned_by", "sluice"));
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (text == NULL)
        return STAGE_ERROR;
    request_reply_json(request, 200, text, strlen(text));
    free(text);
    return STAGE_RESPONDED;
}

static stage_result_t router_on_request(request_t *request)
{
    if (request->endpoint == ENDPOINT_MODELS)
        return list_models(request);
    const config_t *config = request->config;
    const model_config_t *model = config_find_model(config, request->model);
    if (model != NULL) {
        request->provider = model->targets[0].provider;
        request->upstream_model = model->targets[0].model;
        return STAGE_CONTINUE;
    }
    const char *slash = strchr(request->model, '/');
    if (slash != NULL && slash[1] != '\0') {
        const provider_config_t *provider =
            config_find_provider(config, request->model, (size_t)(slash - request->model));
        if (provider != NULL) {
            request->provider = provider;
            request->upstream_model = slash + 1;
            return STAGE_CONTINUE;
        }
    }
    request_reply_error(request, 404, "invalid_request_error", "model_not_found", "model",
                        "The model '%s' does not exist or is not configured on this gateway.", request->model);
    return STAGE_RESPONDED;
}

const stage_t stage_router = {.name = "router", .on_request = router_on_request, .on_complete = NULL};
