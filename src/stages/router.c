/* router.c — the router stage (see router.h).
 *
 * Everything here is a decision on data already in memory: no I/O. The
 * stage leaves request->candidates ordered for the upstream stage, which
 * walks them on failure (fallback), skips those whose circuit breaker is
 * open, and escalates through them for cascade. GET /v1/models is answered
 * here too, from the model names the caller's key may use. */
#include "sluice/router.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/http.h>

#include "sluice/latency.h"
#include "sluice/pipeline.h"
#include "sluice/util/hash.h"
#include "sluice/worker.h"
#include "sluice/provider_util.h"

/* ---- estimates ------------------------------------------------------------- */

static size_t content_characters(const json_t *content, bool *has_image)
{
    if (json_is_string(content))
        return json_string_length(content);
    size_t total = 0, index;
    const json_t *part;
    json_array_foreach(content, index, part)
    {
        const char *type = json_string_value(json_object_get(part, "type"));
        if (type != NULL && strcmp(type, "image_url") == 0 && has_image != NULL)
            *has_image = true;
        total += json_string_length(json_object_get(part, "text"));
    }
    return total;
}

long router_estimate_prompt_tokens(const json_t *body)
{
    size_t characters = 0, index;
    const json_t *message;
    json_array_foreach(json_object_get(body, "messages"), index, message)
        characters += content_characters(json_object_get(message, "content"), NULL);
    const json_t *prompt = json_object_get(body, "prompt");
    if (json_is_string(prompt))
        characters += json_string_length(prompt);
    return (long)(characters + 3) / 4;
}

static bool has_images(const json_t *body)
{
    bool found = false;
    size_t index;
    const json_t *message;
    json_array_foreach(json_object_get(body, "messages"), index, message)
        content_characters(json_object_get(message, "content"), &found);
    return found;
}

/* The text of the last user message (arena), or "". */
static const char *last_user_text(request_t *request)
{
    const json_t *messages = json_object_get(request->body, "messages");
    for (size_t i = json_array_size(messages); i-- > 0;) {
        const json_t *message = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(message, "role"));
        if (role == NULL || strcmp(role, "user") != 0)
            continue;
        const json_t *content = json_object_get(message, "content");
        if (json_is_string(content))
            return json_string_value(content);
        buf_t text;
        buf_init(&text);
        size_t index;
        const json_t *part;
        json_array_foreach(content, index, part)
        {
            const char *piece = json_string_value(json_object_get(part, "text"));
            if (piece != NULL)
                buf_append_str(&text, piece), buf_append_char(&text, '\n');
        }
        const char *copy = arena_strdup(&request->arena, text.data ? text.data : "");
        buf_free(&text);
        return copy ? copy : "";
    }
    return "";
}

/* ---- rules ----------------------------------------------------------------- */

static bool is_listed(char *const *items, size_t count, const char *value)
{
    if (items == NULL)
        return true;
    for (size_t i = 0; value != NULL && i < count; i++)
        if (strcmp(items[i], value) == 0)
            return true;
    return false;
}

bool router_rule_matches(const request_t *request, const route_config_t *route)
{
    for (size_t i = 0; i < route->header_count; i++) {
        const char *value = request_header(request, route->header_names[i]);
        if (value == NULL || strcmp(value, route->header_values[i]) != 0)
            return false;
    }
    if (!is_listed(route->keys, route->key_count, request->key ? request->key->name : NULL) ||
        !is_listed(route->teams, route->team_count, request->key ? request->key->team : NULL) ||
        !is_listed(route->users, route->user_count, request->user) ||
        !is_listed(route->models, route->model_count, request->model))
        return false;
    long tokens = request->estimated_prompt_tokens;
    if ((route->min_prompt_tokens && tokens < route->min_prompt_tokens) ||
        (route->max_prompt_tokens && tokens > route->max_prompt_tokens))
        return false;
    if (route->has_tools >= 0) {
        bool has_tools = json_array_size(json_object_get(request->body, "tools")) > 0;
        if (has_tools != (route->has_tools == 1))
            return false;
    }
    if (route->has_images >= 0 && has_images(request->body) != (route->has_images == 1))
        return false;
    if (route->last_user_regex != NULL &&
        regexec(route->last_user_regex, last_user_text((request_t *)request), 0, NULL, 0) != 0)
        return false;
    return true;
}

/* ---- experiments ----------------------------------------------------------- */

/* FNV-1a of text (NULL hashes as empty) under seed, finalised. */
static uint64_t hash_text(const char *text, uint64_t seed)
{
    uint64_t value = hash_fnv1a(text, text ? strlen(text) : 0, seed);
    value ^= value >> 33; /* finalise so nearby names spread */
    value *= 0xff51afd7ed558ccdull;
    value ^= value >> 33;
    return value;
}

/* A point in [0, 1): stable for a sticky caller, random otherwise. */
static double draw(request_t *request, sticky_t sticky, const char *salt)
{
    const char *identity = sticky == STICKY_USER && request->user ? request->user
                           : sticky != STICKY_NONE && request->key ? request->key->name
                                                                    : NULL;
    if (sticky == STICKY_USER && identity == NULL && request->key)
        identity = request->key->name;
    uint64_t value = identity ? hash_text(identity, hash_text(salt, 0)) : worker_random(request->worker);
    return (double)(value >> 11) / 9007199254740992.0;
}

static void apply_experiments(request_t *request)
{
    const config_t *config = request->config;
    for (size_t i = 0; i < config->experiment_count; i++) {
        const experiment_config_t *experiment = &config->experiments[i];
        if (strcmp(experiment->model, request->route_model) != 0)
            continue;
        if (experiment->shadow_model != NULL && draw(request, STICKY_NONE, "") * 100.0 < experiment->shadow_percent)
            request->shadow_model = experiment->shadow_model;
        if (experiment->arm_count == 0)
            continue;
        double point = draw(request, experiment->sticky, experiment->name) * 100.0, cumulative = 0;
        for (size_t j = 0; j < experiment->arm_count; j++) {
            cumulative += experiment->arms[j].percent;
            if (point < cumulative || j + 1 == experiment->arm_count) {
                request->experiment = experiment->name;
                request->arm = experiment->arms[j].name;
                request->route_model = experiment->arms[j].model;
                break;
            }
        }
        return; /* one experiment per request */
    }
}

/* ---- strategies ------------------------------------------------------------ */

static double target_quality(const target_config_t *target, const char *task)
{
    for (size_t i = 0; task != NULL && i < target->quality_count; i++)
        if (strcmp(target->quality_tasks[i], task) == 0)
            return target->quality_scores[i];
    return target->default_quality;
}

/* Estimated USD of this request on a target; unpriced targets cost 0 but sort after priced ones. */
static double target_cost(const request_t *request, const target_config_t *target, bool *is_priced)
{
    const price_config_t *price = config_find_price(request->config, target->model);
    *is_priced = price != NULL;
    if (price == NULL)
        return 0;
    long limit = provider_max_tokens(request->body);
    double completion = limit > 0 ? (double)limit : 256.0; /* no cap given: a typical answer */
    return ((double)request->estimated_prompt_tokens * price->input_per_million +
            completion * price->output_per_million) / 1e6;
}

typedef struct ranked {
    const target_config_t *target;
    double score;
    size_t position;
} ranked_t;

static int compare_ranked(const void *a, const void *b)
{
    const ranked_t *left = a, *right = b;
    if (left->score != right->score)
        return left->score < right->score ? -1 : 1;
    return left->position < right->position ? -1 : left->position > right->position;
}

static size_t order_by_score(const target_config_t **out, ranked_t *ranked, size_t count)
{
    qsort(ranked, count, sizeof *ranked, compare_ranked);
    for (size_t i = 0; i < count; i++)
        out[i] = ranked[i].target;
    return count;
}

static size_t order_loadbalance(request_t *request, const model_config_t *model, const target_config_t **out)
{
    long total = 0;
    for (size_t i = 0; i < model->target_count; i++)
        total += model->targets[i].weight;
    size_t chosen = 0;
    if (total > 0) {
        double point = draw(request, model->sticky, model->name) * (double)total;
        for (long cumulative = 0; chosen < model->target_count; chosen++) {
            cumulative += model->targets[chosen].weight;
            if (point < (double)cumulative)
                break;
        }
        if (chosen == model->target_count)
            chosen = model->target_count - 1;
    }
    size_t count = 0;
    out[count++] = &model->targets[chosen];
    for (size_t i = 0; i < model->target_count; i++) /* the rest stay as fallbacks, in order */
        if (i != chosen)
            out[count++] = &model->targets[i];
    return count;
}

static size_t order_latency(request_t *request, const model_config_t *model, const target_config_t **out,
                            ranked_t *ranked)
{
    for (size_t i = 0; i < model->target_count; i++) {
        double milliseconds = 0; /* never measured: try it first, to learn */
        latency_estimate(request->worker->latency, model->targets[i].provider->name, model->targets[i].model,
                         request->is_stream, &milliseconds);
        ranked[i] = (ranked_t){&model->targets[i], milliseconds, i};
    }
    size_t count = order_by_score(out, ranked, model->target_count);
    /* Exploration: now and then try another target first, so one that recovered is seen again. */
    if (count > 1 && draw(request, STICKY_NONE, "") < model->exploration) {
        size_t pick = 1 + (size_t)(worker_random(request->worker) % (count - 1));
        const target_config_t *swap = out[0];
        out[0] = out[pick];
        out[pick] = swap;
    }
    return count;
}

static size_t order_by_cost(request_t *request, const model_config_t *model, const target_config_t **out,
                            ranked_t *ranked, bool apply_quality)
{
    const char *task = request_header(request, model->task_header);
    const char *ceiling_header = request_header(request, "x-sluice-max-cost-usd");
    double ceiling = ceiling_header ? strtod(ceiling_header, NULL) : model->max_cost_usd;
    /* The key's own ceiling: the lower of the two wins, and a header cannot lift it. */
    double key_ceiling = request->key != NULL ? request->key->max_cost_usd : 0;
    if (key_ceiling > 0 && (!(ceiling > 0) || key_ceiling < ceiling))
        ceiling = key_ceiling;
    size_t count = 0;
    for (size_t i = 0; i < model->target_count; i++) {
        const target_config_t *target = &model->targets[i];
        bool is_priced = false;
        double cost = target_cost(request, target, &is_priced);
        if (apply_quality && target_quality(target, task) < model->min_quality)
            continue;
        if (ceiling > 0 && is_priced && cost > ceiling)
            continue;
        ranked[count] = (ranked_t){target, is_priced ? cost : HUGE_VAL, i};
        count++;
    }
    return order_by_score(out, ranked, count);
}

size_t router_order_targets(request_t *request, const model_config_t *model, const target_config_t **out)
{
    ranked_t ranked[model->target_count > 0 ? model->target_count : 1];
    switch (model->strategy) {
    case STRATEGY_LOADBALANCE: return order_loadbalance(request, model, out);
    case STRATEGY_LATENCY: return order_latency(request, model, out, ranked);
    case STRATEGY_COST: return order_by_cost(request, model, out, ranked, true);
    case STRATEGY_CASCADE: return order_by_cost(request, model, out, ranked, model->min_quality > 0);
    case STRATEGY_FALLBACK: break;
    }
    for (size_t i = 0; i < model->target_count; i++)
        out[i] = &model->targets[i];
    return model->target_count;
}

long router_backoff_ms(int round, long base_ms, long max_ms, double unit_random, long retry_after_ms)
{
    double ceiling = fmin((double)max_ms, (double)base_ms * pow(2.0, round));
    long delay = (long)(unit_random * ceiling);
    return retry_after_ms > delay ? retry_after_ms : delay;
}

/* ---- the stage ------------------------------------------------------------- */

/* GET /v1/models/{id}: the id after the prefix, percent-decoded (malloc'd), or
 * NULL for the list itself. */
static char *requested_model_id(request_t *request)
{
    const char *uri = request->http ? evhttp_request_get_uri(request->http) : NULL;
    if (uri == NULL)
        return NULL;
    const char *rest = strncmp(uri, "/v1/models/", 11) == 0 ? uri + 11 : strncmp(uri, "/models/", 8) == 0 ? uri + 8 : NULL;
    if (rest == NULL)
        return NULL;
    size_t length = strcspn(rest, "?#");
    while (length > 0 && rest[length - 1] == '/')
        length--;
    if (length == 0)
        return NULL;
    char *raw = strndup(rest, length);
    char *id = raw ? evhttp_uridecode(raw, 0, NULL) : NULL;
    free(raw);
    return id;
}

/* The model object for GET /v1/models/{id}: configured names the key may use,
 * and provider/model names of configured providers; else 404. */
static stage_result_t retrieve_model(request_t *request, const char *id)
{
    const config_t *config = request->config;
    const char *owner = NULL;
    if (config_find_model(config, id) != NULL) {
        owner = "sluice";
    } else {
        const char *slash = strchr(id, '/');
        const provider_config_t *provider =
            slash && slash[1] ? config_find_provider(config, id, (size_t)(slash - id)) : NULL;
        owner = provider ? provider->name : NULL;
    }
    if (owner == NULL || (request->key != NULL && !config_key_allows_model(request->key, id))) {
        request_reply_error(request, 404, "invalid_request_error", "model_not_found", "model",
                            "The model '%s' does not exist or is not configured on this gateway.", id);
        return STAGE_RESPONDED;
    }
    json_t *object = json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model", "created",
                               (json_int_t)time(NULL), "owned_by", owner);
    char *text = object ? json_dumps(object, JSON_COMPACT) : NULL;
    json_decref(object);
    if (text == NULL)
        return STAGE_ERROR;
    request_reply_json(request, 200, text, strlen(text));
    free(text);
    return STAGE_RESPONDED;
}

static stage_result_t list_models(request_t *request)
{
    const config_t *config = request->config;
    char *id = requested_model_id(request);
    if (id != NULL) {
        stage_result_t result = retrieve_model(request, id);
        free(id);
        return result;
    }
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

/* Cascade validates whole answers, so the upstream call is non-streaming and a
 * streaming client gets a stream built from the final answer. */
static int prepare_cascade(request_t *request)
{
    if (!request->is_stream)
        return 0;
    request->wants_synthesized_stream = true;
    request->is_stream = false;
    request->raw_body = NULL; /* the body changes */
    json_object_del(request->body, "stream_options");
    return json_object_set_new(request->body, "stream", json_false());
}

static stage_result_t route_to_model(request_t *request, const model_config_t *model)
{
    request->model_config = model;
    request->candidates = arena_alloc(&request->arena, model->target_count * sizeof *request->candidates);
    if (request->candidates == NULL)
        return STAGE_ERROR;
    request->candidate_count = router_order_targets(request, model, request->candidates);
    if (request->candidate_count == 0) {
        request_reply_error(request, 400, "invalid_request_error", "no_eligible_target", "model",
                            "No target of model '%s' meets its quality bar within the cost ceiling.", model->name);
        return STAGE_RESPONDED;
    }
    /* The caller may shorten (never lengthen) the model's deadline. */
    long deadline_ms = model->deadline_ms;
    const char *asked = request_header(request, "x-sluice-deadline-ms");
    long asked_ms = asked ? strtol(asked, NULL, 10) : 0;
    if (asked_ms > 0 && (deadline_ms == 0 || asked_ms < deadline_ms))
        deadline_ms = asked_ms;
    if (deadline_ms > 0)
        request->deadline_us = request->start_us + (uint64_t)deadline_ms * 1000u;
    if (model->strategy == STRATEGY_CASCADE && prepare_cascade(request) != 0)
        return STAGE_ERROR;
    return STAGE_CONTINUE;
}

static stage_result_t route_direct(request_t *request, const provider_config_t *provider, const char *model)
{
    target_config_t *target = arena_alloc(&request->arena, sizeof *target);
    request->candidates = arena_alloc(&request->arena, sizeof *request->candidates);
    if (target == NULL || request->candidates == NULL)
        return STAGE_ERROR;
    *target = (target_config_t){.provider = (provider_config_t *)provider, .model = (char *)model, .weight = 1,
                                .default_quality = 1.0, .timeouts = provider->timeouts};
    request->candidates[0] = target;
    request->candidate_count = 1;
    return STAGE_CONTINUE;
}

static stage_result_t router_on_request(request_t *request)
{
    if (request->endpoint == ENDPOINT_MODELS)
        return list_models(request);
    const config_t *config = request->config;
    request->estimated_prompt_tokens = router_estimate_prompt_tokens(request->body);
    if (request->route_model == NULL) {
        request->route_model = request->model;
        for (size_t i = 0; request->shadow_of == NULL && i < config->route_count; i++) {
            if (router_rule_matches(request, &config->routes[i])) {
                request->route_index = (int)i;
                request->route_model = config->routes[i].target_model;
                break;
            }
        }
        if (request->shadow_of == NULL)
            apply_experiments(request);
    }
    const model_config_t *model = config_find_model(config, request->route_model);
    if (model != NULL)
        return route_to_model(request, model);
    const char *slash = strchr(request->route_model, '/');
    if (slash != NULL && slash[1] != '\0') {
        const provider_config_t *provider =
            config_find_provider(config, request->route_model, (size_t)(slash - request->route_model));
        if (provider != NULL)
            return route_direct(request, provider, slash + 1);
    }
    request_reply_error(request, 404, "invalid_request_error", "model_not_found", "model",
                        "The model '%s' does not exist or is not configured on this gateway.", request->model);
    return STAGE_RESPONDED;
}

const stage_t stage_router = {.name = "router", .on_request = router_on_request, .on_complete = NULL};
