/* config_budget.c — spending caps in the config: keys[].budget, the teams
 * section and the budgets section. Part of the config module; the YAML
 * helpers are in config_loader.h. All three forms end up in one flat list,
 * config_t.budgets, which the budget stage (budget.c) reads:
 *
 *   keys:    [ { name: app, ..., budget: { usd: 20, period: day } } ]
 *   teams:   { web: { budget: { usd: 500, period: month } } }
 *   budgets:
 *     - { scope: user, match: "*", usd: 5, period: day }        # each user their own $5 a day
 *     - { scope: feature, match: search, usd: 100, period: week }
 *
 *   alerts:  { webhook_url: "https://hooks.example.com/sluice", timeout_ms: 5000 }
 *
 * period is day | week | month | total (default month); weeks start on Monday. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_loader.h"

static const char *const period_names[] = {"day", "week", "month", "total", NULL};
static const char *const scope_names[] = {"key", "team", "user", "feature", NULL};

/* Appends an empty budget to the config's list. */
static budget_config_t *budget_append(config_t *config)
{
    budget_config_t *grown = realloc(config->budgets, (config->budget_count + 1) * sizeof *grown);
    if (grown == NULL)
        return NULL;
    config->budgets = grown;
    budget_config_t *budget = &grown[config->budget_count++];
    memset(budget, 0, sizeof *budget);
    budget->period = BUDGET_PERIOD_MONTH;
    return budget;
}

/* The usd and period members of node (a budget mapping) into budget. */
static int parse_amount(loader_t *loader, yaml_node_t *node, const char *path, budget_config_t *budget)
{
    char item_path[CONFIG_PATH_LENGTH];
    yaml_node_t *usd = loader_child_or_self(loader, node, "usd");
    snprintf(item_path, sizeof item_path, "%s.usd", path);
    if (usd == node) {
        loader_fail(loader, node, path, "missing required key 'usd'");
        return -1;
    }
    if (loader_double(loader, usd, item_path, &budget->usd) != 0)
        return -1;
    if (budget->usd <= 0) {
        loader_fail(loader, usd, item_path, "must be a positive amount of USD");
        return -1;
    }
    yaml_node_t *period = loader_child_or_self(loader, node, "period");
    snprintf(item_path, sizeof item_path, "%s.period", path);
    int choice = BUDGET_PERIOD_MONTH;
    if (period != node && loader_enum(loader, period, item_path, period_names, &choice) != 0)
        return -1;
    budget->period = (budget_period_t)choice;
    return 0;
}

int config_budget_add(loader_t *loader, yaml_node_t *node, const char *path, budget_scope_t scope, const char *match)
{
    static const char *const keys[] = {"usd", "period", NULL};
    if (loader_expect_type(loader, node, YAML_MAPPING_NODE, path) || loader_check_keys(loader, node, path, keys))
        return -1;
    budget_config_t *budget = budget_append(loader->config);
    if (budget == NULL || (budget->match = strdup(match)) == NULL)
        return -1;
    budget->scope = scope;
    return parse_amount(loader, node, path, budget);
}

int config_budget_parse_teams(loader_t *loader, yaml_node_t *node)
{
    static const char *const keys[] = {"budget", NULL};
    if (loader_expect_type(loader, node, YAML_MAPPING_NODE, "teams") || loader_check_keys(loader, node, "teams", NULL))
        return -1;
    FOR_EACH_PAIR(node, pair)
    {
        const char *team = loader_key(loader, pair);
        yaml_node_t *value = loader_node(loader, pair->value);
        char path[CONFIG_PATH_LENGTH];
        snprintf(path, sizeof path, "teams.%s", team);
        if (loader_expect_type(loader, value, YAML_MAPPING_NODE, path) || loader_check_keys(loader, value, path, keys))
            return -1;
        yaml_node_t *budget = loader_child_or_self(loader, value, "budget");
        if (budget == value)
            continue;
        snprintf(path, sizeof path, "teams.%s.budget", team);
        if (config_budget_add(loader, budget, path, BUDGET_SCOPE_TEAM, team) != 0)
            return -1;
    }
    return 0;
}

int config_budget_parse_list(loader_t *loader, yaml_node_t *node)
{
    static const char *const keys[] = {"scope", "match", "usd", "period", NULL};
    if (loader_expect_type(loader, node, YAML_SEQUENCE_NODE, "budgets") != 0)
        return -1;
    size_t index = 0;
    for (yaml_node_item_t *item = node->data.sequence.items.start; item < node->data.sequence.items.top;
         item++, index++) {
        yaml_node_t *value = loader_node(loader, *item);
        char path[CONFIG_PATH_LENGTH], item_path[CONFIG_PATH_LENGTH];
        snprintf(path, sizeof path, "budgets[%zu]", index);
        if (loader_expect_type(loader, value, YAML_MAPPING_NODE, path) || loader_check_keys(loader, value, path, keys))
            return -1;
        yaml_node_t *scope = loader_child_or_self(loader, value, "scope");
        yaml_node_t *match = loader_child_or_self(loader, value, "match");
        if (scope == value || match == value) {
            loader_fail(loader, value, path, "missing required key '%s'", scope == value ? "scope" : "match");
            return -1;
        }
        budget_config_t *budget = budget_append(loader->config);
        if (budget == NULL)
            return -1;
        int choice = 0;
        snprintf(item_path, sizeof item_path, "%s.scope", path);
        if (loader_enum(loader, scope, item_path, scope_names, &choice) != 0)
            return -1;
        budget->scope = (budget_scope_t)choice;
        snprintf(item_path, sizeof item_path, "%s.match", path);
        if ((budget->match = loader_string(loader, match, item_path)) == NULL)
            return -1;
        if (budget->match[0] == '\0') {
            loader_fail(loader, match, item_path, "must name a %s or be \"*\"", scope_names[choice]);
            return -1;
        }
        if (parse_amount(loader, value, path, budget) != 0)
            return -1;
    }
    return 0;
}

/* alerts: { webhook_url: URL, timeout_ms: 5000 } — where budget alerts are POSTed. */
int config_budget_parse_alerts(loader_t *loader, yaml_node_t *node)
{
    static const char *const keys[] = {"webhook_url", "timeout_ms", NULL};
    config_t *config = loader->config;
    if (loader_expect_type(loader, node, YAML_MAPPING_NODE, "alerts") || loader_check_keys(loader, node, "alerts", keys))
        return -1;
    yaml_node_t *url = loader_child_or_self(loader, node, "webhook_url");
    if (url != node) {
        if ((config->alert_webhook_url = loader_string(loader, url, "alerts.webhook_url")) == NULL)
            return -1;
        if (strncmp(config->alert_webhook_url, "http://", 7) != 0 && strncmp(config->alert_webhook_url, "https://", 8) != 0) {
            loader_fail(loader, url, "alerts.webhook_url", "must start with http:// or https://");
            return -1;
        }
    }
    yaml_node_t *timeout = loader_child_or_self(loader, node, "timeout_ms");
    return timeout == node ? 0
                           : loader_long(loader, timeout, "alerts.timeout_ms", 1, 600000, &config->alert_webhook_timeout_ms);
}

void config_budget_free(config_t *config)
{
    free(config->alert_webhook_url);
    for (size_t i = 0; i < config->budget_count; i++)
        free(config->budgets[i].match);
    free(config->budgets);
}
