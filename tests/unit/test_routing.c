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

Test(routing, loadbalance_three_targets_within_two_percent_and_rest_as_fallbacks)
{
    fixture_t fixture;
    fixture_init(&fixture,
                 PROVIDERS "models:\n  m:\n    strategy: loadbalance\n"
                           "    targets: [ {provider: a, model: x, weight: 50}, {provider: b, model: y, weight: 30},"
                           " {provider: a, model: z, weight: 20} ]\n",
                 NULL);
    const model_config_t *model = config_find_model(fixture.config, "m");
    int counts[3] = {0};
    for (int i = 0; i < 10000; i++) {
        const target_config_t *order[3];
        cr_assert_eq(router_order_targets(&fixture.request, model, order), 3);
        counts[order[0] - model->targets]++;
        /* the targets not drawn follow in configured order, as fallbacks */
        cr_assert(order[1] != order[0] && order[2] != order[0] && order[1] != order[2]);
        cr_assert(order[1] < order[2]);
    }
    const double want[3] = {0.5, 0.3, 0.2};
    for (int i = 0; i < 3; i++)
        cr_expect(fabs(counts[i] / 10000.0 - want[i]) <= 0.02, "target %d got %d of 10000 (want %.0f%% ± 2%%)", i,
                  counts[i], want[i] * 100);
    fixture_free(&fixture);
}

Test(routing, loadbalance_zero_weight_target_is_only_a_fallback)
{
    fixture_t fixture;
    fixture_init(&fixture,
                 PROVIDERS "models:\n  m:\n    strategy: loadbalance\n"
                           "    targets: [ {provider: a, model: x, weight: 0}, {provider: b, model: y, weight: 1} ]\n",
                 NULL);
    const model_config_t *model = config_find_model(fixture.config, "m");
    for (int i = 0; i < 1000; i++) {
        const target_config_t *order[2];
        cr_assert_eq(router_order_targets(&fixture.request, model, order), 2);
        cr_assert_str_eq(order[0]->model, "y");
        cr_assert_str_eq(order[1]->model, "x");
    }
    fixture_free(&fixture);
}

Test(routing, loadbalance_sticky_key_and_user_fall_back_to_key)
{
    fixture_t fixture;
    fixture_init(&fixture,
                 PROVIDERS "models:\n  m:\n    strategy: loadbalance\n    sticky: key\n"
                           "    targets: [ {provider: a, model: x}, {provider: b, model: y} ]\n",
                 NULL);
    model_config_t *model = (model_config_t *)config_find_model(fixture.config, "m");
    key_config_t keys[40];
    int seen_x = 0;
    for (int k = 0; k < 40; k++) {
        char *name = arena_sprintf(&fixture.request.arena, "key-%d", k);
        keys[k] = (key_config_t){.name = name};
        fixture.request.key = &keys[k];
        fixture.request.user = k % 2 ? "someone" : NULL; /* sticky: key ignores the user */
        const char *first = first_choice(&fixture, model)->model;
        for (int i = 0; i < 5; i++)
            cr_expect_str_eq(first_choice(&fixture, model)->model, first);
        seen_x += strcmp(first, "x") == 0;
        /* sticky: user without a user keeps the caller on their key's target */
        model->sticky = STICKY_USER;
        fixture.request.user = NULL;
        const char *by_user = first_choice(&fixture, model)->model;
        cr_expect_str_eq(first_choice(&fixture, model)->model, by_user);
        model->sticky = STICKY_KEY;
    }
    cr_expect(seen_x > 5 && seen_x < 35, "keys spread over both targets (%d of 40 on x)", seen_x);
    fixture_free(&fixture);
}

Test(routing, latency_tries_unmeasured_targets_first)
{
    fixture_t fixture;
    fixture_init(&fixture,
                 PROVIDERS "models:\n  m:\n    strategy: latency\n    exploration: 0\n"
                           "    targets: [ {provider: a, model: x}, {provider: b, model: y} ]\n",
                 NULL);
    const model_config_t *model = config_find_model(fixture.config, "m");
    latency_record(fixture.worker.latency, "a", "x", 5, 10);
    cr_expect_str_eq(first_choice(&fixture, model)->model, "y", "y was never measured: learn it");
    latency_record(fixture.worker.latency, "b", "y", 50, 100);
    cr_expect_str_eq(first_choice(&fixture, model)->model, "x");
    fixture_free(&fixture);
}

Test(routing, latency_uses_time_to_first_byte_for_streams)
{
    fixture_t fixture;
    fixture_init(&fixture,
                 PROVIDERS "models:\n  m:\n    strategy: latency\n    exploration: 0\n"
                           "    targets: [ {provider: a, model: x}, {provider: b, model: y} ]\n",
                 NULL);
    const model_config_t *model = config_find_model(fixture.config, "m");
    latency_record(fixture.worker.latency, "a", "x", 20, 2000); /* quick to start, long answers */
    latency_record(fixture.worker.latency, "b", "y", 300, 400);
    fixture.request.is_stream = false;
    cr_expect_str_eq(first_choice(&fixture, model)->model, "y", "non-stream: total latency");
    fixture.request.is_stream = true;
    cr_expect_str_eq(first_choice(&fixture, model)->model, "x", "stream: time to first byte");
    fixture_free(&fixture);
}

Test(routing, latency_exploration_sees_a_recovered_target_again)
{
    fixture_t fixture;
    fixture_init(&fixture,
                 PROVIDERS "models:\n  m:\n    strategy: latency\n    exploration: 0.05\n"
                           "    targets: [ {provider: a, model: x}, {provider: b, model: y} ]\n",
                 NULL);
    const model_config_t *model = config_find_model(fixture.config, "m");
    latency_record(fixture.worker.latency, "a", "x", 2000, 3000); /* x was slow */
    latency_record(fixture.worker.latency, "b", "y", 100, 200);
    /* x has recovered (answers in 50 ms) but only exploration can show it */
    int explored = 0, requests = 0;
    while (requests < 2000 && strcmp(first_choice(&fixture, model)->model, "x") != 0)
        requests++;
    for (int i = 0; i < 2000; i++) {
        const target_config_t *target = first_choice(&fixture, model);
        if (strcmp(target->model, "x") == 0)
            latency_record(fixture.worker.latency, "a", "x", 30, 50), explored++;
        else
            latency_record(fixture.worker.latency, "b", "y", 100, 200);
    }
    cr_expect(requests < 200, "exploration tried x within %d requests", requests);
    cr_expect(explored > 1500, "x won back most of the traffic (%d of 2000)", explored);
    fixture_free(&fixture);
}

Test(routing, latency_average_is_an_ewma)
{
    latency_table_t *table = latency_table_new();
    double ms = 0;
    cr_expect_not(latency_estimate(table, "a", "x", false, &ms));
    latency_record(table, "a", "x", 10, 100);
    cr_assert(latency_estimate(table, "a", "x", false, &ms));
    cr_expect_float_eq(ms, 100, 1e-9);
    latency_record(table, "a", "x", 60, 600);
    cr_assert(latency_estimate(table, "a", "x", false, &ms));
    cr_expect_float_eq(ms, 100 + 0.2 * 500, 1e-9);
    cr_assert(latency_estimate(table, "a", "x", true, &ms));
    cr_expect_float_eq(ms, 10 + 0.2 * 50, 1e-9);
    cr_expect_not(latency_estimate(table, "a", "y", false, &ms), "per target");
    latency_table_free(table);
}

Test(routing, cost_excludes_targets_over_the_ceiling_or_under_the_bar)
{
    const char *yaml = PROVIDERS
        "models:\n  m:\n    strategy: cost\n    min_quality: 0.8\n    max_cost_usd: 0.001\n"
        "    targets:\n"
        "      - { provider: a, model: cheap, quality: { default: 0.9, code: 0.5 } }\n"
        "      - { provider: b, model: mid, quality: 0.85 }\n"
        "      - { provider: b, model: pricey, quality: 0.99 }\n"
        "      - { provider: a, model: unpriced, quality: 0.99 }\n"
        "pricing:\n  cheap: { input: 0.1, output: 0.4 }\n  mid: { input: 1, output: 2 }\n"
        "  pricey: { input: 50, output: 150 }\n";
    fixture_t fixture;
    fixture_init(&fixture, yaml, NULL);
    const model_config_t *model = config_find_model(fixture.config, "m");
    const target_config_t *order[4];
    /* pricey: 256 output tokens at $150/M = $0.0384 > $0.001 ceiling */
    cr_assert_eq(router_order_targets(&fixture.request, model, order), 3);
    cr_expect_str_eq(order[0]->model, "cheap");
    cr_expect_str_eq(order[1]->model, "mid");
    cr_expect_str_eq(order[2]->model, "unpriced", "unpriced targets come after priced ones");
    fixture_free(&fixture);
}

Test(routing, cost_key_ceiling_is_the_lower_of_key_and_model)
{
    const char *yaml = PROVIDERS
        "models:\n  m:\n    strategy: cost\n    max_cost_usd: 0.01\n"
        "    targets:\n"
        "      - { provider: a, model: cheap }\n"
        "      - { provider: b, model: mid }\n"
        "pricing:\n  cheap: { input: 0.1, output: 0.4 }\n  mid: { input: 10, output: 20 }\n";
    fixture_t fixture;
    fixture_init(&fixture, yaml, NULL);
    const model_config_t *model = config_find_model(fixture.config, "m");
    const target_config_t *order[2];
    /* mid: 256 output tokens at $20/M = ~$0.0051, under the model's $0.01 */
    cr_assert_eq(router_order_targets(&fixture.request, model, order), 2);
    key_config_t key = {.name = "k", .max_cost_usd = 0.001};
    fixture.request.key = &key;
    cr_assert_eq(router_order_targets(&fixture.request, model, order), 1, "the key's lower ceiling wins");
    cr_expect_str_eq(order[0]->model, "cheap");
    key.max_cost_usd = 0.5;
    cr_expect_eq(router_order_targets(&fixture.request, model, order), 2, "the model's lower ceiling wins");
    key.max_cost_usd = 0;
    cr_expect_eq(router_order_targets(&fixture.request, model, order), 2, "0 = no key ceiling");
    fixture_free(&fixture);
    /* a model without a ceiling: the key's alone applies */
    fixture_init(&fixture, PROVIDERS "models:\n  m:\n    strategy: cost\n    targets:\n"
                                     "      - { provider: a, model: cheap }\n      - { provider: b, model: mid }\n"
                                     "pricing:\n  cheap: { input: 0.1, output: 0.4 }\n  mid: { input: 10, output: 20 }\n",
                 NULL);
    key.max_cost_usd = 0.001;
    fixture.request.key = &key;
    cr_expect_eq(router_order_targets(&fixture.request, config_find_model(fixture.config, "m"), order), 1);
    fixture_free(&fixture);
}

Test(routing, cost_uses_max_tokens_for_the_estimate)
{
    const char *yaml = PROVIDERS
        "models:\n  m:\n    strategy: cost\n"
        "    targets:\n"
        "      - { provider: a, model: out_cheap }\n"
        "      - { provider: b, model: in_cheap }\n"
        "pricing:\n  out_cheap: { input: 10, output: 1 }\n  in_cheap: { input: 1, output: 10 }\n";
    fixture_t fixture;
    /* ~3 prompt tokens: with many output tokens the output price decides */
    fixture_init(&fixture, yaml, "{\"model\":\"m\",\"max_tokens\":1000,\"messages\":[{\"role\":\"user\",\"content\":"
                                 "\"hello there\"}]}");
    cr_expect_str_eq(first_choice(&fixture, config_find_model(fixture.config, "m"))->model, "out_cheap");
    fixture_free(&fixture);
    /* a long prompt and one output token: the input price decides */
    char body[9000];
    char text[8001];
    memset(text, 'a', 8000);
    text[8000] = '\0';
    snprintf(body, sizeof body, "{\"model\":\"m\",\"max_completion_tokens\":1,\"messages\":[{\"role\":\"user\","
                                "\"content\":\"%s\"}]}", text);
    fixture_init(&fixture, yaml, body);
    cr_expect_eq(fixture.request.estimated_prompt_tokens, 2000);
    cr_expect_str_eq(first_choice(&fixture, config_find_model(fixture.config, "m"))->model, "in_cheap");
    fixture_free(&fixture);
}

Test(routing, cost_with_no_eligible_target_orders_none)
{
    const char *yaml = PROVIDERS "models:\n  m:\n    strategy: cost\n    min_quality: 0.99\n"
                                 "    targets: [ {provider: a, model: x, quality: 0.5} ]\n";
    fixture_t fixture;
    fixture_init(&fixture, yaml, NULL);
    const target_config_t *order[1];
    cr_expect_eq(router_order_targets(&fixture.request, config_find_model(fixture.config, "m"), order), 0);
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

Test(breaker, error_rate_needs_min_requests_and_forgets_old_windows)
{
    breaker_reset();
    config_t *config = load("providers:\n  p: { type: openai, base_url: 'http://x/v1', "
                            "breaker: { failures: 0, error_rate: 0.5, min_requests: 10, window_ms: 1000 } }\n");
    const provider_config_t *provider = &config->providers[0];
    long wait = 0;
    for (int i = 0; i < 9; i++)
        breaker_record(provider, "m", false, 100);
    cr_expect(breaker_allow(provider, "m", 150, &wait), "9 requests < min_requests: still closed");
    /* a new window: the nine failures are forgotten */
    for (int i = 0; i < 10; i++)
        breaker_record(provider, "m", i < 6, 1200); /* 4 of 10 fail */
    cr_expect(breaker_allow(provider, "m", 1300, &wait), "40%% < 50%%: closed");
    breaker_record(provider, "m", false, 1300); /* 5 of 11 */
    cr_expect(breaker_allow(provider, "m", 1300, &wait), "45%%: closed");
    breaker_record(provider, "m", false, 1300); /* 6 of 12 */
    cr_expect_not(breaker_allow(provider, "m", 1300, &wait), "50%%: open");
    config_unref(config);
}

Test(breaker, success_resets_the_consecutive_count)
{
    breaker_reset();
    config_t *config = load("providers:\n  p: { type: openai, base_url: 'http://x/v1', "
                            "breaker: { failures: 3, error_rate: 0 } }\n");
    const provider_config_t *provider = &config->providers[0];
    long wait = 0;
    for (int i = 0; i < 30; i++)
        breaker_record(provider, "m", i % 3 == 2, 100); /* fail, fail, succeed, ... */
    cr_expect(breaker_allow(provider, "m", 100, &wait), "never 3 failures in a row");
    config_unref(config);
}

Test(breaker, half_open_lets_a_limited_number_of_trials_through)
{
    breaker_reset();
    config_t *config = load("providers:\n  p: { type: openai, base_url: 'http://x/v1', "
                            "breaker: { failures: 1, cooldown_ms: 500, half_open_requests: 2 } }\n");
    const provider_config_t *provider = &config->providers[0];
    long wait = 0;
    breaker_record(provider, "m", false, 0);
    cr_expect_not(breaker_allow(provider, "m", 499, &wait));
    cr_expect_eq(wait, 1);
    cr_expect(breaker_allow(provider, "m", 500, &wait), "first trial");
    cr_expect(breaker_allow(provider, "m", 500, &wait), "second trial");
    cr_expect_not(breaker_allow(provider, "m", 501, &wait), "no third while two are out");
    cr_expect_eq(wait, 499, "next slot when the trials are given up on");
    breaker_record(provider, "m", true, 510);
    cr_expect(breaker_allow(provider, "m", 511, &wait), "a trial success closes it");
    breaker_record(provider, "m", true, 511); /* the other trial returns late: still closed */
    for (int i = 0; i < 5; i++)
        cr_expect(breaker_allow(provider, "m", 512, &wait));
    config_unref(config);
}

Test(breaker, a_lost_trial_does_not_wedge_half_open)
{
    breaker_reset();
    config_t *config = load("providers:\n  p: { type: openai, base_url: 'http://x/v1', "
                            "breaker: { failures: 1, cooldown_ms: 1000, half_open_requests: 1 } }\n");
    const provider_config_t *provider = &config->providers[0];
    long wait = 0;
    breaker_record(provider, "m", false, 0);
    cr_expect(breaker_allow(provider, "m", 1000, &wait), "trial handed out; its outcome never comes back");
    cr_expect_not(breaker_allow(provider, "m", 1500, &wait));
    cr_expect(breaker_allow(provider, "m", 2000, &wait), "after another cool-down a new trial goes out");
    breaker_record(provider, "m", true, 2050);
    cr_expect(breaker_allow(provider, "m", 2060, &wait));
    config_unref(config);
}

Test(breaker, readiness_json_lists_open_breakers_and_unhealthy_providers)
{
    breaker_reset();
    config_t *config = load("providers:\n  p: { type: openai, base_url: 'http://x/v1', breaker: { failures: 1 } }\n"
                            "  q: { type: openai, base_url: 'http://y/v1' }\n");
    buf_t out;
    buf_init(&out);
    breaker_render_json(&out, 0);
    cr_expect_str_eq(out.data, "{\"breakers\":[],\"unhealthy_providers\":[]}");
    breaker_record(&config->providers[0], "m", false, 100);
    breaker_set_provider_health("q", false);
    buf_clear(&out);
    breaker_render_json(&out, 350);
    cr_expect_str_eq(out.data, "{\"breakers\":[{\"provider\":\"p\",\"model\":\"m\",\"state\":\"open\","
                               "\"open_for_ms\":250}],\"unhealthy_providers\":[\"q\"]}");
    buf_free(&out);
    breaker_reset();
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

Test(cascade, schema_keywords)
{
    json_t *schema = json_loads("{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"tags\"],"
                                "\"properties\":{\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
                                "\"enum\":[\"a\",\"b\"]}},\"n\":{\"type\":[\"integer\",\"null\"],\"maximum\":3},"
                                "\"s\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}}}",
                                0, NULL);
    cr_assert_not_null(schema);
    const char *good[] = {"{\"tags\":[]}", "{\"tags\":[\"a\",\"b\"],\"n\":3,\"s\":\"xy\"}", "{\"tags\":[],\"n\":null}"};
    const char *bad[] = {"{\"tags\":[\"c\"]}", "{\"tags\":[],\"n\":4}", "{\"tags\":[],\"n\":1.5}",
                         "{\"tags\":[],\"s\":\"x\"}", "{\"tags\":[],\"s\":\"wxyz\"}", "{\"tags\":[],\"extra\":1}",
                         "{\"n\":1}", "[]"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        json_t *value = json_loads(good[i], JSON_DECODE_ANY, NULL);
        cr_expect(cascade_schema_valid(schema, value, 0), "valid: %s", good[i]);
        json_decref(value);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *value = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        cr_expect_not(cascade_schema_valid(schema, value, 0), "invalid: %s", bad[i]);
        json_decref(value);
    }
    json_decref(schema);
}

Test(cascade, all_checks_in_order_and_refusal_field)
{
    cr_expect_str_eq(check("[json, {min_length: 100}]", "[1,2]", "stop"), "min_length");
    cr_expect_str_eq(check("[finish_stop, json]", "{}", "length"), "finish_stop");
    cr_expect_null(check("[json, finish_stop, no_refusal, {min_length: 2}]", "{\"ok\":true}", "stop"));
}

/* ---- retries ------------------------------------------------------------------- */

Test(retry, backoff_is_full_jitter_capped_and_honours_retry_after)
{
    /* full jitter: uniform over [0, min(max, base × 2^round)] */
    cr_expect_eq(router_backoff_ms(0, 200, 5000, 0.0, 0), 0);
    cr_expect_eq(router_backoff_ms(0, 200, 5000, 0.5, 0), 100);
    cr_expect_eq(router_backoff_ms(2, 200, 5000, 0.999, 0), 799);
    cr_expect_eq(router_backoff_ms(10, 200, 5000, 0.5, 0), 2500, "capped at max_backoff_ms");
    cr_expect_eq(router_backoff_ms(1, 200, 5000, 0.1, 1000), 1000, "retry-after wins when longer");
    cr_expect_eq(router_backoff_ms(3, 200, 5000, 0.9, 1000), 1440, "the draw wins when longer");
    /* the mean of the draws is half the ceiling */
    uint64_t state = 88172645463325252ull;
    double sum = 0;
    for (int i = 0; i < 10000; i++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        sum += (double)router_backoff_ms(1, 200, 5000, (double)(state >> 11) / 9007199254740992.0, 0);
    }
    cr_expect(fabs(sum / 10000 - 200) < 5, "mean %.1f ms, want 200", sum / 10000);
}
