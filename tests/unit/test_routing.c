/* test_routing.c — strategies (router_order_targets), rules, breakers,
 * latency averages and cascade checks. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "sluice/breaker.h"
#include "sluice/cascade.h"
#include "sluice/config.h"
#include "sluice/latency.h"
#include "sluice/router.h"
#include "sluice/worker.h"

static config_t *load(const char *yaml)
{
    char error[512];
    config_t *config = config_load_string(yaml, strlen(yaml), "test.yaml", error, sizeof error);
    cr_assert_not_null(config, "config rejected: %s", error);
    return config;
}

#define PROVIDERS                                                                                                  \
    "providers:\n"                                                                                                 \
    "  a: { type: openai, base_url: 'http://127.0.0.1:1/v1', api_key: k }\n"                                       \
    "  b: { type: openai, base_url: 'http://127.0.0.1:2/v1', api_key: k }\n"

/* A request on a fake worker, enough for the router's decisions. */
typedef struct fixture {
    worker_t worker;
    request_t request;
    config_t *config;
} fixture_t;

static void fixture_init(fixture_t *fixture, const char *yaml, const char *body)
{
    memset(fixture, 0, sizeof *fixture);
    fixture->config = load(yaml);
    fixture->worker.latency = latency_table_new();
    fixture->worker.random_state = 88172645463325252ull;
    fixture->request.worker = &fixture->worker;
    fixture->request.config = fixture->config;
    arena_init(&fixture->request.arena);
    fixture->request.body = json_loads(body ? body : "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                                                     "\"hello there\"}]}",
                                       0, NULL);
    cr_assert_not_null(fixture->request.body);
    fixture->request.estimated_prompt_tokens = router_estimate_prompt_tokens(fixture->request.body);
}

static void fixture_free(fixture_t *fixture)
{
    json_decref(fixture->request.body);
    arena_release(&fixture->request.arena);
    latency_table_free(fixture->worker.latency);
    config_unref(fixture->config);
}

static const target_config_t *first_choice(fixture_t *fixture, const model_config_t *model)
{
    const target_config_t *order[8];
    cr_assert(router_order_targets(&fixture->request, model, order) > 0);
    return order[0];
}

Test(routing, fallback_keeps_configured_order)
{
    fixture_t fixture;
    fixture_init(&fixture, PROVIDERS "models:\n  m: { targets: [ {provider: a, model: x}, {provider: b, model: y} ] }\n",
                 NULL);
    const model_config_t *model = config_find_model(fixture.config, "m");
    const target_config_t *order[2];
    cr_assert_eq(router_order_targets(&fixture.request, model, order), 2);
    cr_expect_str_eq(order[0]->model, "x");
    cr_expect_str_eq(order[1]->model, "y");
    fixture_free(&fixture);
}

Test(routing, loadbalance_spreads_within_two_percent_of_weights)
{
    fixture_t fixture;
    fixture_init(&fixture,
                 PROVIDERS "models:\n  m:\n    strategy: loadbalance\n"
                           "    targets: [ {provider: a, model: x, weight: 3}, {provider: b, model: y, weight: 1} ]\n",
                 NULL);
    const model_config_t *model = config_find_model(fixture.config, "m");
    int to_x = 0;
    for (int i = 0; i < 10000; i++)
        to_x += strcmp(first_choice(&fixture, model)->model, "x") == 0;
    cr_expect(fabs(to_x / 10000.0 - 0.75) <= 0.02, "x got %d of 10000 (want 75%% ± 2%%)", to_x);
    fixture_free(&fixture);
}

Test(routing, loadbalance_sticky_user_always_gets_the_same_target)
{
    fixture_t fixture;
    fixture_init(&fixture,
                 PROVIDERS "models:\n  m:\n    strategy: loadbalance\n    sticky: user\n"
                           "    targets: [ {provider: a, model: x}, {provider: b, model: y} ]\n",
                 NULL);
    const model_config_t *model = config_find_model(fixture.config, "m");
    int seen_x = 0, seen_y = 0;
    char user[32];
    for (int u = 0; u < 50; u++) {
        snprintf(user, sizeof user, "user-%d", u);
        fixture.request.user = user;
        const char *first = first_choice(&fixture, model)->model;
        for (int i = 0; i < 5; i++)
            cr_expect_str_eq(first_choice(&fixture, model)->model, first);
        if (strcmp(first, "x") == 0)
            seen_x++;
        else
            seen_y++;
    }
    cr_expect(seen_x > 5 && seen_y > 5, "users spread over both targets (%d/%d)", seen_x, seen_y);
    fixture_free(&fixture);
}

Test(routing, latency_moves_traffic_to_the_faster_target)
{
    fixture_t fixture;
    fixture_init(&fixture,
                 PROVIDERS "models:\n  m:\n    strategy: latency\n"
                           "    targets: [ {provider: a, model: x}, {provider: b, model: y} ]\n",
                 NULL);
    const model_config_t *model = config_find_model(fixture.config, "m");
    for (int i = 0; i < 20; i++) { /* both fast */
        latency_record(fixture.worker.latency, "a", "x", 50, 100);
        latency_record(fixture.worker.latency, "b", "y", 60, 110);
    }
    int to_y = 0;
    for (int i = 0; i < 200; i++) { /* x slows down: each request to it reports 800 ms */
        const target_config_t *target = first_choice(&fixture, model);
        if (strcmp(target->model, "x") == 0)
            latency_record(fixture.worker.latency, "a", "x", 700, 800);
        else
            latency_record(fixture.worker.latency, "b", "y", 60, 110), to_y++;
    }
    cr_expect(to_y >= 180, "the faster target got %d of 200 requests", to_y);
    fixture_free(&fixture);
}

Test(routing, cost_picks_cheapest_meeting_quality_and_ceiling)
{
    const char *yaml = PROVIDERS
        "models:\n  m:\n    strategy: cost\n    min_quality: 0.8\n"
        "    targets:\n"
        "      - { provider: a, model: cheap, quality: { default: 0.9, code: 0.5 } }\n"
        "      - { provider: b, model: pricey, quality: 0.95 }\n"
        "pricing:\n  cheap: { input: 0.1, output: 0.4 }\n  pricey: { input: 5, output: 15 }\n";
    fixture_t fixture;
    fixture_init(&fixture, yaml, NULL);
    const model_config_t *model = config_find_model(fixture.config, "m");
    cr_expect_str_eq(first_choice(&fixture, model)->model, "cheap");
    fixture_free(&fixture);
}

Test(routing, cascade_orders_cheapest_first)
{
    const char *yaml = PROVIDERS "models:\n  m:\n    strategy: cascade\n    checks: [json]\n"
                                 "    targets: [ {provider: b, model: pricey}, {provider: a, model: cheap} ]\n"
                                 "pricing:\n  cheap: { input: 0.1, output: 0.4 }\n  pricey: { input: 5, output: 15 }\n";
    fixture_t fixture;
    fixture_init(&fixture, yaml, NULL);
    const target_config_t *order[2];
    cr_assert_eq(router_order_targets(&fixture.request, config_find_model(fixture.config, "m"), order), 2);
    cr_expect_str_eq(order[0]->model, "cheap");
    cr_expect_str_eq(order[1]->model, "pricey");
    fixture_free(&fixture);
}

Test(routing, rules_match_on_tools_tokens_and_regex)
{
    const char *yaml = PROVIDERS "models:\n  m: { targets: [ {provider: a, model: x} ] }\n"
                                 "routes:\n"
                                 "  - match: { has_tools: true }\n    model: m\n"
                                 "  - match: { min_prompt_tokens: 100 }\n    model: m\n"
                                 "  - match: { last_user_message: 'weather|forecast', model: [m, other] }\n    model: m\n";
    fixture_t fixture;
    fixture_init(&fixture, yaml,
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"What's the WEATHER?\"}]}");
    fixture.request.model = "m";
    cr_expect_not(router_rule_matches(&fixture.request, &fixture.config->routes[0]), "no tools");
    cr_expect_not(router_rule_matches(&fixture.request, &fixture.config->routes[1]), "short prompt");
    cr_expect(router_rule_matches(&fixture.request, &fixture.config->routes[2]), "regex, case-insensitive");
    fixture.request.model = "else";
    cr_expect_not(router_rule_matches(&fixture.request, &fixture.config->routes[2]), "model list");
    fixture_free(&fixture);
}

/* ---- breaker --------------------------------------------------------------- */

Test(breaker, opens_after_consecutive_failures_and_recovers_through_half_open)
{
    breaker_reset();
    config_t *config = load("providers:\n  p: { type: openai, base_url: 'http://x/v1', "
                            "breaker: { failures: 3, cooldown_ms: 1000, half_open_requests: 1 } }\n");
    const provider_config_t *provider = &config->providers[0];
    long wait = 0;
    for (int i = 0; i < 2; i++) {
        cr_assert(breaker_allow(provider, "m", 1000, &wait));
        breaker_record(provider, "m", false, 1000);
    }
    cr_expect(breaker_allow(provider, "m", 1000, &wait), "two failures: still closed");
    breaker_record(provider, "m", false, 1000);
    cr_expect_not(breaker_allow(provider, "m", 1500, &wait), "three failures: open");
    cr_expect_eq(wait, 500, "opens again after the cool-down");
    cr_expect(breaker_allow(provider, "m", 2000, &wait), "cool-down over: one trial");
    cr_expect_not(breaker_allow(provider, "m", 2000, &wait), "only one trial at a time");
    breaker_record(provider, "m", false, 2000);
    cr_expect_not(breaker_allow(provider, "m", 2100, &wait), "failed trial: open again");
    cr_expect(breaker_allow(provider, "m", 3001, &wait));
    breaker_record(provider, "m", true, 3001);
    cr_expect(breaker_allow(provider, "m", 3002, &wait), "successful trial: closed");
    cr_expect(breaker_allow(provider, "m", 3002, &wait), "closed lets everything through");
    cr_expect(breaker_allow(provider, "other", 3002, &wait), "other targets unaffected");
    config_unref(config);
}

Test(breaker, opens_on_error_rate)
{
    breaker_reset();
    config_t *config = load("providers:\n  p: { type: openai, base_url: 'http://x/v1', "
                            "breaker: { failures: 0, error_rate: 0.5, min_requests: 10, window_ms: 10000 } }\n");
    const provider_config_t *provider = &config->providers[0];
    long wait = 0;
    for (int i = 0; i < 10; i++)
        breaker_record(provider, "m", i % 2 == 0, 100); /* alternate: never 2 failures in a row */
    cr_expect_not(breaker_allow(provider, "m", 200, &wait), "50%% errors over 10 requests opens it");
    config_unref(config);
}

Test(breaker, unhealthy_provider_blocks_its_targets)
{
    breaker_reset();
    config_t *config = load("providers:\n  p: { type: openai, base_url: 'http://x/v1' }\n");
    long wait = 0;
    breaker_set_provider_health("p", false);
    cr_expect_not(breaker_allow(&config->providers[0], "m", 1, &wait));
    breaker_set_provider_health("p", true);
    cr_expect(breaker_allow(&config->providers[0], "m", 1, &wait));
    config_unref(config);
}

/* ---- cascade checks -------------------------------------------------------- */

static const char *check(const char *checks_yaml, const char *content, const char *finish)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml, PROVIDERS "models:\n  m:\n    strategy: cascade\n    checks: %s\n"
                                          "    targets: [ {provider: a, model: x} ]\n",
             checks_yaml);
    config_t *config = load(yaml);
    json_t *response = json_pack("{s:[{s:{s:s}, s:s}]}", "choices", "message", "content", content, "finish_reason",
                                 finish);
    json_t *request = json_loads("{\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":"
                                 "{\"type\":\"object\",\"required\":[\"name\"],\"properties\":{\"name\":"
                                 "{\"type\":\"string\"},\"age\":{\"type\":\"integer\",\"minimum\":0}}}}}}",
                                 0, NULL);
    const char *failed = cascade_failed_check(config_find_model(config, "m"), request, response);
    json_decref(response);
    json_decref(request);
    config_unref(config);
    return failed;
}

Test(cascade, checks)
{
    cr_expect_null(check("[json]", "{\"a\":1}", "stop"));
    cr_expect_str_eq(check("[json]", "not json {", "stop"), "json");
    cr_expect_null(check("[json_schema]", "{\"name\":\"Ada\",\"age\":36}", "stop"));
    cr_expect_str_eq(check("[json_schema]", "{\"age\":36}", "stop"), "json_schema");
    cr_expect_str_eq(check("[json_schema]", "{\"name\":\"Ada\",\"age\":-1}", "stop"), "json_schema");
    cr_expect_str_eq(check("[finish_stop]", "x", "length"), "finish_stop");
    cr_expect_str_eq(check("[no_refusal]", "I'm sorry, but I can't do that.", "stop"), "no_refusal");
    cr_expect_null(check("[{regex: '^[0-9]+$'}]", "12345", "stop"));
    cr_expect_str_eq(check("[{regex: '^[0-9]+$'}]", "12a45", "stop"), "regex");
    cr_expect_str_eq(check("[{min_length: 10}]", "short", "stop"), "min_length");
}
