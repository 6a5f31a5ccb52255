/* config_routing.c — the routing sections of the config: models (targets,
 * strategy, retries, timeouts, quality scores, cascade checks), routes (rules
 * that pick a model name) and experiments (A/B splits and shadow copies).
 * Part of the config module; the YAML helpers are in config_loader.h. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_loader.h"

/* ---- targets --------------------------------------------------------------- */

static void override_timeouts(provider_timeouts_t *into, const provider_timeouts_t *from)
{
    if (from->connect_ms)
        into->connect_ms = from->connect_ms;
    if (from->first_byte_ms)
        into->first_byte_ms = from->first_byte_ms;
    if (from->idle_ms)
        into->idle_ms = from->idle_ms;
    if (from->total_ms)
        into->total_ms = from->total_ms;
}

static int parse_quality(loader_t *loader, yaml_node_t *node, const char *path, target_config_t *target)
{
    if (node->type == YAML_SCALAR_NODE)
        return loader_double(loader, node, path, &target->default_quality);
    if (loader_expect_type(loader, node, YAML_MAPPING_NODE, path) || loader_check_keys(loader, node, path, NULL))
        return -1;
    size_t count = (size_t)loader_count(node);
    target->quality_tasks = calloc(count + 1, sizeof(char *));
    target->quality_scores = calloc(count + 1, sizeof(double));
    if (target->quality_tasks == NULL || target->quality_scores == NULL)
        return -1;
    FOR_EACH_PAIR(node, pair)
    {
        const char *task = loader_key(loader, pair);
        double score = 0;
        if (loader_double(loader, loader_node(loader, pair->value), path, &score) != 0)
            return -1;
        if (strcmp(task, "default") == 0) {
            target->default_quality = score;
            continue;
        }
        target->quality_scores[target->quality_count] = score;
        if ((target->quality_tasks[target->quality_count++] = strdup(task)) == NULL)
            return -1;
    }
    return 0;
}

static int parse_target(loader_t *loader, yaml_node_t *node, const char *path, target_config_t *target,
                        const provider_timeouts_t *model_timeouts)
{
    static const char *const keys[] = {"provider", "model", "weight", "quality", "timeouts", NULL};
    if (loader_expect_type(loader, node, YAML_MAPPING_NODE, path) || loader_check_keys(loader, node, path, keys))
        return -1;
    target->weight = 1;
    target->default_quality = 1.0;
    provider_timeouts_t own = {0};
    char *provider_name = NULL;
    yaml_node_t *provider_node = NULL;
    int rc = 0;
    FOR_EACH_PAIR(node, pair)
    {
        const char *key = loader_key(loader, pair);
        yaml_node_t *value = loader_node(loader, pair->value);
        char item_path[CONFIG_PATH_LENGTH];
        snprintf(item_path, sizeof item_path, "%s.%s", path, key);
        long number = 0;
        if (strcmp(key, "provider") == 0) {
            free(provider_name);
            provider_node = value;
            rc = (provider_name = loader_string(loader, value, item_path)) ? 0 : -1;
        } else if (strcmp(key, "model") == 0) {
            rc = (target->model = loader_string(loader, value, item_path)) ? 0 : -1;
        } else if (strcmp(key, "weight") == 0) {
            rc = loader_long(loader, value, item_path, 0, 1000000, &number);
            target->weight = (int)number;
        } else if (strcmp(key, "quality") == 0) {
            rc = parse_quality(loader, value, item_path, target);
        } else {
            rc = loader_timeouts(loader, value, item_path, &own);
        }
        if (rc != 0)
            break;
    }
    if (rc == 0 && (provider_name == NULL || target->model == NULL || target->model[0] == '\0')) {
        loader_fail(loader, node, path, "a target needs 'provider' and 'model'");
        rc = -1;
    }
    if (rc == 0) {
        target->provider =
            (provider_config_t *)config_find_provider(loader->config, provider_name, strlen(provider_name));
        if (target->provider == NULL) {
            char provider_path[CONFIG_PATH_LENGTH];
            snprintf(provider_path, sizeof provider_path, "%s.provider", path);
            loader_fail(loader, provider_node, provider_path, "unknown provider '%s'", provider_name);
            rc = -1;
        } else {
            target->timeouts = target->provider->timeouts;
            override_timeouts(&target->timeouts, model_timeouts);
            override_timeouts(&target->timeouts, &own);
        }
    }
    free(provider_name);
    return rc;
}

/* ---- models ---------------------------------------------------------------- */

static int parse_retry_on(loader_t *loader, yaml_node_t *node, const char *path, unsigned *mask)
{
    static const char *const names[] = {"connect", "timeout", "429", "5xx", "4xx", NULL};
    char **items = NULL;
    size_t count = 0;
    int rc = loader_string_list(loader, node, path, &items, &count);
    *mask = 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        int found = -1;
        for (int j = 0; names[j] != NULL; j++)
            if (strcmp(items[i], names[j]) == 0)
                found = j;
        if (found < 0) {
            loader_fail(loader, node, path, "unknown condition '%s' (connect, timeout, 429, 5xx, 4xx)", items[i]);
            rc = -1;
        } else {
            *mask |= 1u << found;
        }
    }
    for (size_t i = 0; i < count; i++)
        free(items[i]);
    free(items);
    return rc;
}

static int parse_retry_on_directive(loader_t *loader, yaml_node_t *value, const char *path, void *section)
{
    return parse_retry_on(loader, value, path, &((model_config_t *)section)->retry_on);
}

static const config_directive_t retry_directives[] = {
    DIRECTIVE_NUMBER("rounds", DIRECTIVE_INT, model_config_t, retry_rounds, 0, 10),
    DIRECTIVE_NUMBER("backoff_ms", DIRECTIVE_LONG, model_config_t, backoff_ms, 0, 600000),
    DIRECTIVE_NUMBER("max_backoff_ms", DIRECTIVE_LONG, model_config_t, max_backoff_ms, 0, 600000),
    DIRECTIVE_PARSE("on", parse_retry_on_directive),
    {0},
};

static int parse_retry(loader_t *loader, yaml_node_t *node, const char *path, model_config_t *model)
{
    return loader_directives(loader, node, path, retry_directives, model);
}

static int parse_check(loader_t *loader, yaml_node_t *node, const char *path, cascade_check_t *check)
{
    static const char *const names[] = {"json", "json_schema", "finish_stop", "no_refusal", NULL};
    static const cascade_check_kind_t kinds[] = {CHECK_JSON, CHECK_JSON_SCHEMA, CHECK_FINISH_STOP, CHECK_NO_REFUSAL};
    if (node->type == YAML_SCALAR_NODE) {
        const char *text = (const char *)node->data.scalar.value;
        for (int i = 0; names[i] != NULL; i++) {
            if (strcmp(text, names[i]) == 0) {
                check->kind = kinds[i];
                return 0;
            }
        }
        loader_fail(loader, node, path, "unknown check '%s' (json, json_schema, finish_stop, no_refusal, "
                                        "{regex: ...}, {min_length: N})", text);
        return -1;
    }
    static const char *const keys[] = {"regex", "min_length", NULL};
    if (loader_expect_type(loader, node, YAML_MAPPING_NODE, path) || loader_check_keys(loader, node, path, keys) ||
        loader_count(node) != 1) {
        loader_fail(loader, node, path, "a check is a name or one of {regex: ...}, {min_length: N}");
        return -1;
    }
    yaml_node_pair_t *pair = node->data.mapping.pairs.start;
    yaml_node_t *value = loader_node(loader, pair->value);
    if (strcmp(loader_key(loader, pair), "min_length") == 0) {
        check->kind = CHECK_MIN_LENGTH;
        return loader_long(loader, value, path, 0, 100000000, &check->min_length);
    }
    check->kind = CHECK_REGEX;
    if ((check->pattern = loader_string(loader, value, path)) == NULL)
        return -1;
    regex_t *compiled = calloc(1, sizeof *compiled);
    if (compiled == NULL || regcomp(compiled, check->pattern, REG_EXTENDED | REG_NOSUB) != 0) {
        free(compiled);
        loader_fail(loader, value, path, "invalid regular expression '%s'", check->pattern);
        return -1;
    }
    check->compiled = compiled;
    return 0;
}

static int parse_checks(loader_t *loader, yaml_node_t *node, const char *path, model_config_t *model)
{
    if (loader_expect_type(loader, node, YAML_SEQUENCE_NODE, path) != 0)
        return -1;
    model->checks = calloc((size_t)loader_count(node) + 1, sizeof *model->checks);
    if (model->checks == NULL)
        return -1;
    for (yaml_node_item_t *item = node->data.sequence.items.start; item < node->data.sequence.items.top; item++) {
        char item_path[CONFIG_PATH_LENGTH];
        snprintf(item_path, sizeof item_path, "%s[%zu]", path, model->check_count);
        if (parse_check(loader, loader_node(loader, *item), item_path, &model->checks[model->check_count++]) != 0)
            return -1;
    }
    return 0;
}

static const char *const strategy_names[] = {"fallback", "loadbalance", "latency", "cost", "cascade", NULL};
static const char *const sticky_names[] = {"none", "user", "key", NULL};

/* Model-level settings other than targets. */
static int parse_model_setting(loader_t *loader, const char *key, yaml_node_t *value, const char *path,
                               model_config_t *model)
{
    int number = 0;
    if (strcmp(key, "strategy") == 0) {
        int rc = loader_enum(loader, value, path, strategy_names, &number);
        model->strategy = (strategy_t)number;
        return rc;
    }
    if (strcmp(key, "sticky") == 0) {
        int rc = loader_enum(loader, value, path, sticky_names, &number);
        model->sticky = (sticky_t)number;
        return rc;
    }
    if (strcmp(key, "retry") == 0)
        return parse_retry(loader, value, path, model);
    if (strcmp(key, "fallback_on") == 0)
        return parse_retry_on(loader, value, path, &model->retry_on);
    if (strcmp(key, "deadline_ms") == 0)
        return loader_long(loader, value, path, 0, 86400000, &model->deadline_ms);
    if (strcmp(key, "exploration") == 0)
        return loader_double(loader, value, path, &model->exploration);
    if (strcmp(key, "task_header") == 0) {
        free(model->task_header);
        return (model->task_header = loader_string(loader, value, path)) ? 0 : -1;
    }
    if (strcmp(key, "min_quality") == 0)
        return loader_double(loader, value, path, &model->min_quality);
    if (strcmp(key, "max_cost_usd") == 0)
        return loader_double(loader, value, path, &model->max_cost_usd);
    if (strcmp(key, "checks") == 0)
        return parse_checks(loader, value, path, model);
    return 0; /* targets and timeouts are read by parse_model */
}

static yaml_node_t *mapping_value(loader_t *loader, yaml_node_t *mapping, const char *key)
{
    FOR_EACH_PAIR(mapping, pair)
    if (strcmp(loader_key(loader, pair), key) == 0) return loader_node(loader, pair->value);
    return NULL;
}

static int parse_targets(loader_t *loader, yaml_node_t *node, const char *path, model_config_t *model,
                         const provider_timeouts_t *timeouts)
{
    if (loader_expect_type(loader, node, YAML_SEQUENCE_NODE, path) != 0)
        return -1;
    model->targets = calloc((size_t)loader_count(node) + 1, sizeof *model->targets);
    if (model->targets == NULL)
        return -1;
    for (yaml_node_item_t *item = node->data.sequence.items.start; item < node->data.sequence.items.top; item++) {
        char item_path[CONFIG_PATH_LENGTH];
        snprintf(item_path, sizeof item_path, "%s[%zu]", path, model->target_count);
        target_config_t *target = &model->targets[model->target_count++];
        if (parse_target(loader, loader_node(loader, *item), item_path, target, timeouts) != 0)
            return -1;
    }
    return 0;
}

static int parse_model(loader_t *loader, const char *name, yaml_node_t *node, model_config_t *model)
{
    static const char *const keys[] = {"targets",     "strategy",    "retry",       "fallback_on",  "deadline_ms",
                                       "timeouts",    "sticky",      "exploration", "task_header",  "min_quality",
                                       "max_cost_usd", "checks",     NULL};
    char path[CONFIG_PATH_LENGTH];
    snprintf(path, sizeof path, "models.%s", name);
    model->name = strdup(name);
    model->retry_on = RETRY_ON_CONNECT | RETRY_ON_TIMEOUT | RETRY_ON_429 | RETRY_ON_5XX;
    model->backoff_ms = 200;
    model->max_backoff_ms = 5000;
    model->exploration = 0.05;
    model->min_quality = 0;
    if (model->name == NULL || loader_expect_type(loader, node, YAML_MAPPING_NODE, path) ||
        loader_check_keys(loader, node, path, keys))
        return -1;
    if (name[0] == '\0') {
        loader_fail(loader, node, path, "model names must be non-empty");
        return -1;
    }
    FOR_EACH_PAIR(node, pair)
    {
        char item_path[CONFIG_PATH_LENGTH];
        snprintf(item_path, sizeof item_path, "%s.%s", path, loader_key(loader, pair));
        if (parse_model_setting(loader, loader_key(loader, pair), loader_node(loader, pair->value), item_path,
                                model) != 0)
            return -1;
    }
    provider_timeouts_t timeouts = {0};
    yaml_node_t *timeouts_node = mapping_value(loader, node, "timeouts");
    char timeouts_path[CONFIG_PATH_LENGTH];
    snprintf(timeouts_path, sizeof timeouts_path, "%s.timeouts", path);
    if (timeouts_node != NULL && loader_timeouts(loader, timeouts_node, timeouts_path, &timeouts) != 0)
        return -1;
    yaml_node_t *targets = mapping_value(loader, node, "targets");
    char targets_path[CONFIG_PATH_LENGTH];
    snprintf(targets_path, sizeof targets_path, "%s.targets", path);
    if (targets == NULL || parse_targets(loader, targets, targets_path, model, &timeouts) != 0 ||
        model->target_count == 0) {
        loader_fail(loader, node, path, "needs at least one entry in 'targets'");
        return -1;
    }
    if (model->task_header == NULL && (model->task_header = strdup("x-sluice-task")) == NULL)
        return -1;
    if (model->strategy == STRATEGY_CASCADE && model->check_count == 0)
        loader_fail(loader, node, path, "strategy cascade needs 'checks' (e.g. [json, finish_stop])");
    return loader->failed ? -1 : 0;
}

static int parse_model_entry(loader_t *loader, const char *name, yaml_node_t *node, void *entry)
{
    return parse_model(loader, name, node, entry);
}

int config_routing_parse_models(loader_t *loader, yaml_node_t *node)
{
    config_t *config = loader->config;
    if (loader_expect_entries(loader, node, "models") != 0 ||
        (config->models = calloc((size_t)loader_count(node) + 1, sizeof *config->models)) == NULL)
        return -1;
    return loader_parse_entries(loader, node, config->models, sizeof *config->models, &config->model_count,
                                parse_model_entry);
}

/* ---- routes ---------------------------------------------------------------- */

/* A model name a rule or an experiment may send requests to. */
static int check_model_reference(loader_t *loader, yaml_node_t *node, const char *path, const char *model)
{
    const char *slash = strchr(model, '/');
    if (config_find_model(loader->config, model) != NULL ||
        (slash != NULL && config_find_provider(loader->config, model, (size_t)(slash - model)) != NULL))
        return 0;
    loader_fail(loader, node, path, "unknown model '%s' (not under models:)", model);
    return -1;
}

/* A string or a list of strings. */
static int parse_one_or_more(loader_t *loader, yaml_node_t *node, const char *path, char ***out, size_t *count)
{
    if (node->type != YAML_SCALAR_NODE)
        return loader_string_list(loader, node, path, out, count);
    *out = calloc(2, sizeof(char *));
    if (*out == NULL || ((*out)[0] = loader_string(loader, node, path)) == NULL)
        return -1;
    *count = 1;
    return 0;
}

static int parse_boolean(loader_t *loader, yaml_node_t *node, const char *path, int *out)
{
    char *text = loader_string(loader, node, path);
    if (text == NULL)
        return -1;
    int rc = 0;
    if (strcmp(text, "true") == 0 || strcmp(text, "yes") == 0)
        *out = 1;
    else if (strcmp(text, "false") == 0 || strcmp(text, "no") == 0)
        *out = 0;
    else {
        loader_fail(loader, node, path, "must be true or false");
        rc = -1;
    }
    free(text);
    return rc;
}

static int parse_match_headers(loader_t *loader, yaml_node_t *node, const char *path, route_config_t *route)
{
    if (loader_expect_type(loader, node, YAML_MAPPING_NODE, path) || loader_check_keys(loader, node, path, NULL))
        return -1;
    size_t count = (size_t)loader_count(node);
    route->header_names = calloc(count + 1, sizeof(char *));
    route->header_values = calloc(count + 1, sizeof(char *));
    if (route->header_names == NULL || route->header_values == NULL)
        return -1;
    FOR_EACH_PAIR(node, pair)
    {
        route->header_names[route->header_count] = strdup(loader_key(loader, pair));
        route->header_values[route->header_count] = loader_string(loader, loader_node(loader, pair->value), path);
        if (route->header_names[route->header_count] == NULL || route->header_values[route->header_count++] == NULL)
            return -1;
    }
    return 0;
}

static int parse_match(loader_t *loader, yaml_node_t *node, const char *path, route_config_t *route)
{
    static const char *const keys[] = {"headers", "key", "team", "user", "model", "min_prompt_tokens",
                                       "max_prompt_tokens", "has_tools", "has_images", "last_user_message", NULL};
    if (loader_expect_type(loader, node, YAML_MAPPING_NODE, path) || loader_check_keys(loader, node, path, keys))
        return -1;
    FOR_EACH_PAIR(node, pair)
    {
        const char *key = loader_key(loader, pair);
        yaml_node_t *value = loader_node(loader, pair->value);
        char item_path[CONFIG_PATH_LENGTH];
        snprintf(item_path, sizeof item_path, "%s.%s", path, key);
        int rc = 0;
        if (strcmp(key, "headers") == 0)
            rc = parse_match_headers(loader, value, item_path, route);
        else if (strcmp(key, "key") == 0)
            rc = parse_one_or_more(loader, value, item_path, &route->keys, &route->key_count);
        else if (strcmp(key, "team") == 0)
            rc = parse_one_or_more(loader, value, item_path, &route->teams, &route->team_count);
        else if (strcmp(key, "user") == 0)
            rc = parse_one_or_more(loader, value, item_path, &route->users, &route->user_count);
        else if (strcmp(key, "model") == 0)
            rc = parse_one_or_more(loader, value, item_path, &route->models, &route->model_count);
        else if (strcmp(key, "min_prompt_tokens") == 0)
            rc = loader_long(loader, value, item_path, 0, 100000000, &route->min_prompt_tokens);
        else if (strcmp(key, "max_prompt_tokens") == 0)
            rc = loader_long(loader, value, item_path, 0, 100000000, &route->max_prompt_tokens);
        else if (strcmp(key, "has_tools") == 0)
            rc = parse_boolean(loader, value, item_path, &route->has_tools);
        else if (strcmp(key, "has_images") == 0)
            rc = parse_boolean(loader, value, item_path, &route->has_images);
        else {
            rc = (route->last_user_pattern = loader_string(loader, value, item_path)) ? 0 : -1;
            regex_t *compiled = rc == 0 ? calloc(1, sizeof *compiled) : NULL;
            if (compiled == NULL ||
                regcomp(compiled, route->last_user_pattern, REG_EXTENDED | REG_NOSUB | REG_ICASE) != 0) {
                free(compiled);
                loader_fail(loader, value, item_path, "invalid regular expression");
                return -1;
            }
            route->last_user_regex = compiled;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

int config_routing_parse_routes(loader_t *loader, yaml_node_t *node)
{
    static const char *const keys[] = {"match", "model", NULL};
    config_t *config = loader->config;
    if (loader_expect_type(loader, node, YAML_SEQUENCE_NODE, "routes") != 0)
        return -1;
    config->routes = calloc((size_t)loader_count(node) + 1, sizeof *config->routes);
    if (config->routes == NULL)
        return -1;
    for (yaml_node_item_t *item = node->data.sequence.items.start; item < node->data.sequence.items.top; item++) {
        char path[CONFIG_PATH_LENGTH];
        snprintf(path, sizeof path, "routes[%zu]", config->route_count);
        route_config_t *route = &config->routes[config->route_count++];
        route->has_tools = route->has_images = -1;
        yaml_node_t *rule = loader_node(loader, *item);
        if (loader_expect_type(loader, rule, YAML_MAPPING_NODE, path) || loader_check_keys(loader, rule, path, keys))
            return -1;
        yaml_node_t *match = mapping_value(loader, rule, "match");
        yaml_node_t *model = mapping_value(loader, rule, "model");
        char item_path[CONFIG_PATH_LENGTH];
        snprintf(item_path, sizeof item_path, "%s.match", path);
        if (match != NULL && parse_match(loader, match, item_path, route) != 0)
            return -1;
        snprintf(item_path, sizeof item_path, "%s.model", path);
        if (model == NULL) {
            loader_fail(loader, rule, path, "a route needs 'model'");
            return -1;
        }
        if ((route->target_model = loader_string(loader, model, item_path)) == NULL ||
            check_model_reference(loader, model, item_path, route->target_model) != 0)
            return -1;
    }
    return 0;
}

/* ---- experiments ----------------------------------------------------------- */

static int parse_arms(loader_t *loader, yaml_node_t *node, const char *path, experiment_config_t *experiment)
{
    static const char *const keys[] = {"name", "model", "percent", NULL};
    if (loader_expect_type(loader, node, YAML_SEQUENCE_NODE, path) != 0)
        return -1;
    experiment->arms = calloc((size_t)loader_count(node) + 1, sizeof *experiment->arms);
    if (experiment->arms == NULL)
        return -1;
    double total = 0;
    for (yaml_node_item_t *item = node->data.sequence.items.start; item < node->data.sequence.items.top; item++) {
        char arm_path[CONFIG_PATH_LENGTH];
        snprintf(arm_path, sizeof arm_path, "%s[%zu]", path, experiment->arm_count);
        experiment_arm_t *arm = &experiment->arms[experiment->arm_count++];
        yaml_node_t *arm_node = loader_node(loader, *item);
        if (loader_expect_type(loader, arm_node, YAML_MAPPING_NODE, arm_path) ||
            loader_check_keys(loader, arm_node, arm_path, keys))
            return -1;
        FOR_EACH_PAIR(arm_node, pair)
        {
            const char *key = loader_key(loader, pair);
            yaml_node_t *value = loader_node(loader, pair->value);
            int rc = strcmp(key, "percent") == 0 ? loader_double(loader, value, arm_path, &arm->percent)
                     : strcmp(key, "name") == 0  ? ((arm->name = loader_string(loader, value, arm_path)) ? 0 : -1)
                                                 : ((arm->model = loader_string(loader, value, arm_path)) ? 0 : -1);
            if (rc != 0)
                return -1;
        }
        if (arm->model == NULL || check_model_reference(loader, arm_node, arm_path, arm->model) != 0) {
            loader_fail(loader, arm_node, arm_path, "an arm needs a configured 'model'");
            return -1;
        }
        if (arm->name == NULL && (arm->name = strdup(arm->model)) == NULL)
            return -1;
        total += arm->percent;
    }
    if (total < 99.999 || total > 100.001) {
        loader_fail(loader, node, path, "arm percentages must add up to 100 (they add up to %g)", total);
        return -1;
    }
    return 0;
}

static int parse_shadow(loader_t *loader, yaml_node_t *node, const char *path, experiment_config_t *experiment)
{
    static const char *const keys[] = {"model", "percent", NULL};
    if (loader_expect_type(loader, node, YAML_MAPPING_NODE, path) || loader_check_keys(loader, node, path, keys))
        return -1;
    experiment->shadow_percent = 100;
    FOR_EACH_PAIR(node, pair)
    {
        yaml_node_t *value = loader_node(loader, pair->value);
        int is_model = strcmp(loader_key(loader, pair), "model") == 0;
        int rc = is_model ? ((experiment->shadow_model = loader_string(loader, value, path)) ? 0 : -1)
                          : loader_double(loader, value, path, &experiment->shadow_percent);
        if (rc != 0 || (is_model && check_model_reference(loader, value, path, experiment->shadow_model) != 0))
            return -1;
    }
    if (experiment->shadow_model == NULL) {
        loader_fail(loader, node, path, "shadow needs 'model'");
        return -1;
    }
    return 0;
}

int config_routing_parse_experiments(loader_t *loader, yaml_node_t *node)
{
    static const char *const keys[] = {"name", "model", "arms", "sticky", "shadow", NULL};
    config_t *config = loader->config;
    if (loader_expect_type(loader, node, YAML_SEQUENCE_NODE, "experiments") != 0)
        return -1;
    config->experiments = calloc((size_t)loader_count(node) + 1, sizeof *config->experiments);
    if (config->experiments == NULL)
        return -1;
    for (yaml_node_item_t *item = node->data.sequence.items.start; item < node->data.sequence.items.top; item++) {
        char path[CONFIG_PATH_LENGTH];
        snprintf(path, sizeof path, "experiments[%zu]", config->experiment_count);
        experiment_config_t *experiment = &config->experiments[config->experiment_count++];
        experiment->sticky = STICKY_USER;
        yaml_node_t *entry = loader_node(loader, *item);
        if (loader_expect_type(loader, entry, YAML_MAPPING_NODE, path) ||
            loader_check_keys(loader, entry, path, keys))
            return -1;
        FOR_EACH_PAIR(entry, pair)
        {
            const char *key = loader_key(loader, pair);
            yaml_node_t *value = loader_node(loader, pair->value);
            char item_path[CONFIG_PATH_LENGTH];
            snprintf(item_path, sizeof item_path, "%s.%s", path, key);
            int sticky = 0, rc;
            if (strcmp(key, "name") == 0)
                rc = (experiment->name = loader_string(loader, value, item_path)) ? 0 : -1;
            else if (strcmp(key, "model") == 0)
                rc = (experiment->model = loader_string(loader, value, item_path)) ? 0 : -1;
            else if (strcmp(key, "arms") == 0)
                rc = parse_arms(loader, value, item_path, experiment);
            else if (strcmp(key, "shadow") == 0)
                rc = parse_shadow(loader, value, item_path, experiment);
            else {
                rc = loader_enum(loader, value, item_path, sticky_names, &sticky);
                experiment->sticky = (sticky_t)sticky;
            }
            if (rc != 0)
                return -1;
        }
        if (experiment->name == NULL || experiment->model == NULL) {
            loader_fail(loader, entry, path, "an experiment needs 'name' and 'model'");
            return -1;
        }
        if (experiment->arm_count == 0 && experiment->shadow_model == NULL) {
            loader_fail(loader, entry, path, "an experiment needs 'arms' or 'shadow'");
            return -1;
        }
    }
    return 0;
}

/* ---- freeing --------------------------------------------------------------- */

static void free_strings(char **items, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(items[i]);
    free(items);
}

static void free_regex(void *compiled)
{
    if (compiled != NULL)
        regfree(compiled);
    free(compiled);
}

void config_routing_free(config_t *config)
{
    for (size_t i = 0; i < config->model_count; i++) {
        model_config_t *model = &config->models[i];
        for (size_t j = 0; j < model->target_count; j++) {
            free(model->targets[j].model);
            free_strings(model->targets[j].quality_tasks, model->targets[j].quality_count);
            free(model->targets[j].quality_scores);
        }
        for (size_t j = 0; j < model->check_count; j++) {
            free(model->checks[j].pattern);
            free_regex(model->checks[j].compiled);
        }
        free(model->checks);
        free(model->targets);
        free(model->name);
        free(model->task_header);
    }
    free(config->models);
    for (size_t i = 0; i < config->route_count; i++) {
        route_config_t *route = &config->routes[i];
        free_strings(route->header_names, route->header_count);
        free_strings(route->header_values, route->header_count);
        free_strings(route->keys, route->key_count);
        free_strings(route->teams, route->team_count);
        free_strings(route->users, route->user_count);
        free_strings(route->models, route->model_count);
        free(route->last_user_pattern);
        free_regex(route->last_user_regex);
        free(route->target_model);
    }
    free(config->routes);
    for (size_t i = 0; i < config->experiment_count; i++) {
        experiment_config_t *experiment = &config->experiments[i];
        for (size_t j = 0; j < experiment->arm_count; j++) {
            free(experiment->arms[j].name);
            free(experiment->arms[j].model);
        }
        free(experiment->arms);
        free(experiment->name);
        free(experiment->model);
        free(experiment->shadow_model);
    }
    free(config->experiments);
}
