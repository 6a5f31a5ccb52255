/* test_router_rules.c — the router stage's choices before a strategy runs:
 * routing rules (routes:, first match wins) on every kind of condition, and
 * experiments (A/B arms with sticky hashing, shadow sampling). The stage is
 * driven directly on a request with a standalone evhttp request for headers. */
#include <criterion/criterion.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <math.h>
#include <string.h>

#include "sluice/config.h"
#include "sluice/latency.h"
#include "sluice/pipeline.h"
#include "sluice/router.h"
#include "sluice/worker.h"

#define CONFIG_HEAD                                                                                                \
    "providers:\n"                                                                                                 \
    "  a: { type: openai, base_url: 'http://127.0.0.1:1/v1', api_key: k }\n"                                       \
    "models:\n"                                                                                                    \
    "  general: { targets: [ {provider: a, model: g} ] }\n"                                                        \
    "  coder: { targets: [ {provider: a, model: c} ] }\n"                                                          \
    "  vision: { targets: [ {provider: a, model: v} ] }\n"                                                         \
    "  long: { targets: [ {provider: a, model: l} ] }\n"                                                           \
    "  cheap: { targets: [ {provider: a, model: ch} ] }\n"                                                         \
    "  candidate: { targets: [ {provider: a, model: cand} ] }\n"

typedef struct fixture {
    worker_t worker;
    request_t request;
    config_t *config;
    struct evhttp_request *http;
} fixture_t;

static void fixture_init(fixture_t *fixture, const char *yaml)
{
    memset(fixture, 0, sizeof *fixture);
    char error[512];
    fixture->config = config_load_string(yaml, strlen(yaml), "test.yaml", error, sizeof error);
    cr_assert_not_null(fixture->config, "config rejected: %s", error);
    fixture->worker.latency = latency_table_new();
    fixture->worker.random_state = 0x2545F4914F6CDD1Dull;
    fixture->http = evhttp_request_new(NULL, NULL);
    cr_assert_not_null(fixture->http);
}

/* Resets the request for a new decision with body (JSON text) and model. */
static void fixture_request(fixture_t *fixture, const char *model, const char *body)
{
    request_t *request = &fixture->request;
    if (request->body != NULL) {
        json_decref(request->body);
        arena_release(&request->arena);
    }
    memset(request, 0, sizeof *request);
    arena_init(&request->arena);
    request->worker = &fixture->worker;
    request->config = fixture->config;
    request->http = fixture->http;
    request->endpoint = ENDPOINT_CHAT_COMPLETIONS;
    request->route_index = -1;
    request->model = model;
    request->body = json_loads(body, 0, NULL);
    cr_assert_not_null(request->body, "bad test body %s", body);
}

static void fixture_free(fixture_t *fixture)
{
    json_decref(fixture->request.body);
    arena_release(&fixture->request.arena);
    evhttp_request_free(fixture->http);
    latency_table_free(fixture->worker.latency);
    config_unref(fixture->config);
}

static void set_header(fixture_t *fixture, const char *name, const char *value)
{
    struct evkeyvalq *headers = evhttp_request_get_input_headers(fixture->http);
    evhttp_remove_header(headers, name);
    if (value != NULL)
        evhttp_add_header(headers, name, value);
}

/* Runs the router stage; returns the model name it routed to. */
static const char *route(fixture_t *fixture, const char *model, const char *body)
{
    fixture_request(fixture, model, body);
    stage_result_t result = stage_router.on_request(&fixture->request);
    cr_assert_eq(result, STAGE_CONTINUE, "router answered itself for %s", body);
    return fixture->request.route_model;
}

static const char *user_says(const char *text)
{
    static char body[512];
    snprintf(body, sizeof body, "{\"model\":\"general\",\"messages\":[{\"role\":\"system\",\"content\":\"be nice\"},"
                                "{\"role\":\"user\",\"content\":\"%s\"}]}",
             text);
    return body;
}

Test(rules, first_match_wins_on_each_condition)
{
    fixture_t fixture;
    fixture_init(&fixture, CONFIG_HEAD
                 "routes:\n"
                 "  - { match: { headers: { x-sluice-feature: autocomplete } }, model: cheap }\n"
                 "  - { match: { has_images: true }, model: vision }\n"
                 "  - { match: { has_tools: true }, model: coder }\n"
                 "  - { match: { min_prompt_tokens: 1000 }, model: long }\n"
                 "  - { match: { last_user_message: '\\b(code|function|bug)\\b' }, model: coder }\n"
                 "  - { match: { team: research, model: general }, model: candidate }\n");
    cr_expect_str_eq(route(&fixture, "general", user_says("hello")), "general", "no rule: as asked");
    cr_expect_eq(fixture.request.route_index, -1);
    cr_expect_str_eq(route(&fixture, "general", user_says("fix this BUG please")), "coder", "regex, any case");
    cr_expect_eq(fixture.request.route_index, 4);
    cr_expect_str_eq(route(&fixture, "general", user_says("debugging")), "general", "word boundaries hold");

    set_header(&fixture, "x-sluice-feature", "autocomplete");
    cr_expect_str_eq(route(&fixture, "general", user_says("fix this bug")), "cheap", "the header rule comes first");
    cr_expect_eq(fixture.request.route_index, 0);
    set_header(&fixture, "x-sluice-feature", "chat");
    cr_expect_str_eq(route(&fixture, "general", user_says("hi")), "general", "header value must be equal");
    set_header(&fixture, "x-sluice-feature", NULL);

    cr_expect_str_eq(route(&fixture, "general",
                           "{\"model\":\"general\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                           "\"text\":\"what is this\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}"),
                     "vision");
    cr_expect_str_eq(route(&fixture, "general",
                           "{\"model\":\"general\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
                           "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"),
                     "coder");
    cr_expect_str_eq(route(&fixture, "general", "{\"model\":\"general\",\"tools\":[],\"messages\":[{\"role\":\"user\","
                                                "\"content\":\"hi\"}]}"),
                     "general", "an empty tools list is no tools");

    char long_text[4200];
    memset(long_text, 'x', 4100);
    long_text[4100] = '\0';
    char *body = malloc(5000);
    snprintf(body, 5000, "{\"model\":\"general\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", long_text);
    cr_expect_str_eq(route(&fixture, "general", body), "long", "~1025 tokens");
    free(body);

    key_config_t research = {.name = "r1", .team = "research"};
    fixture_request(&fixture, "general", user_says("hi"));
    fixture.request.key = &research;
    cr_assert_eq(stage_router.on_request(&fixture.request), STAGE_CONTINUE);
    cr_expect_str_eq(fixture.request.route_model, "candidate", "team + requested model");
    fixture_request(&fixture, "coder", user_says("hi"));
    fixture.request.key = &research;
    cr_assert_eq(stage_router.on_request(&fixture.request), STAGE_CONTINUE);
    cr_expect_str_eq(fixture.request.route_model, "coder", "rule's model list does not include coder");
    fixture_free(&fixture);
}

Test(rules, key_user_and_prompt_size_bounds)
{
    fixture_t fixture;
    fixture_init(&fixture, CONFIG_HEAD
                 "routes:\n"
                 "  - { match: { key: [vip, ops] }, model: candidate }\n"
                 "  - { match: { user: alice }, model: coder }\n"
                 "  - { match: { max_prompt_tokens: 3, has_images: false }, model: cheap }\n"
                 "  - { match: { headers: { x-task: summarise, x-tier: gold } }, model: long }\n");
    key_config_t vip = {.name = "vip"}, other = {.name = "web"};
    fixture_request(&fixture, "general", user_says("a much longer question"));
    fixture.request.key = &vip;
    cr_assert_eq(stage_router.on_request(&fixture.request), STAGE_CONTINUE);
    cr_expect_str_eq(fixture.request.route_model, "candidate");

    fixture_request(&fixture, "general", user_says("a much longer question"));
    fixture.request.key = &other;
    fixture.request.user = "alice";
    cr_assert_eq(stage_router.on_request(&fixture.request), STAGE_CONTINUE);
    cr_expect_str_eq(fixture.request.route_model, "coder");

    cr_expect_str_eq(route(&fixture, "general", user_says("hi")), "cheap", "'hi' + 'be nice' is 9 characters, 3 tokens");
    cr_expect_str_eq(route(&fixture, "general", user_says("a much longer question")), "general");

    set_header(&fixture, "x-task", "summarise");
    cr_expect_str_eq(route(&fixture, "general", user_says("a much longer question")), "general",
                     "every listed header must match");
    set_header(&fixture, "X-Tier", "gold");
    cr_expect_str_eq(route(&fixture, "general", user_says("a much longer question")), "long",
                     "header names are case-insensitive");
    fixture_free(&fixture);
}

Test(rules, unknown_model_is_404_and_provider_slash_model_is_direct)
{
    fixture_t fixture;
    fixture_init(&fixture, CONFIG_HEAD);
    fixture_request(&fixture, "a/raw-model", user_says("hi"));
    cr_assert_eq(stage_router.on_request(&fixture.request), STAGE_CONTINUE);
    cr_expect_null(fixture.request.model_config);
    cr_assert_eq(fixture.request.candidate_count, 1);
    cr_expect_str_eq(fixture.request.candidates[0]->model, "raw-model");
    fixture_free(&fixture);
}

/* ---- experiments ------------------------------------------------------------ */

Test(experiments, ab_split_by_percent_sticky_per_user_with_the_arm_recorded)
{
    fixture_t fixture;
    fixture_init(&fixture, CONFIG_HEAD
                 "experiments:\n"
                 "  - name: cheaper-general\n"
                 "    model: general\n"
                 "    arms:\n"
                 "      - { name: control, model: general, percent: 80 }\n"
                 "      - { name: treatment, model: cheap, percent: 20 }\n");
    int treatment = 0;
    char user[32];
    for (int u = 0; u < 10000; u++) {
        snprintf(user, sizeof user, "user-%d", u);
        fixture_request(&fixture, "general", user_says("hi"));
        fixture.request.user = user;
        cr_assert_eq(stage_router.on_request(&fixture.request), STAGE_CONTINUE);
        cr_assert_str_eq(fixture.request.experiment, "cheaper-general");
        bool is_treatment = strcmp(fixture.request.arm, "treatment") == 0;
        cr_assert_str_eq(fixture.request.route_model, is_treatment ? "cheap" : "general");
        treatment += is_treatment;
        if (u % 100 == 0) { /* the same user always lands in the same arm */
            const char *arm = fixture.request.arm;
            for (int again = 0; again < 3; again++) {
                fixture_request(&fixture, "general", user_says("another question"));
                fixture.request.user = user;
                cr_assert_eq(stage_router.on_request(&fixture.request), STAGE_CONTINUE);
                cr_assert_str_eq(fixture.request.arm, arm);
            }
        }
    }
    cr_expect(fabs(treatment / 10000.0 - 0.2) <= 0.02, "treatment got %d of 10000 users (want 20%% ± 2%%)",
              treatment);
    /* other models take no part */
    fixture_request(&fixture, "coder", user_says("hi"));
    cr_assert_eq(stage_router.on_request(&fixture.request), STAGE_CONTINUE);
    cr_expect_null(fixture.request.experiment);
    fixture_free(&fixture);
}

Test(experiments, shadow_samples_the_configured_share)
{
    fixture_t fixture;
    fixture_init(&fixture, CONFIG_HEAD
                 "experiments:\n"
                 "  - { name: try-candidate, model: general, shadow: { model: candidate, percent: 25 } }\n");
    int shadowed = 0;
    for (int i = 0; i < 4000; i++) {
        cr_assert_str_eq(route(&fixture, "general", user_says("hi")), "general", "the client's answer is unchanged");
        if (fixture.request.shadow_model != NULL) {
            cr_assert_str_eq(fixture.request.shadow_model, "candidate");
            shadowed++;
        }
    }
    cr_expect(fabs(shadowed / 4000.0 - 0.25) <= 0.03, "shadowed %d of 4000 (want 25%%)", shadowed);
    fixture_free(&fixture);
}

Test(experiments, arms_must_add_up_to_100)
{
    const char *yaml = CONFIG_HEAD "experiments:\n"
                                   "  - { name: e, model: general, arms: [ {model: general, percent: 50},"
                                   " {model: cheap, percent: 40} ] }\n";
    char error[512];
    config_t *config = config_load_string(yaml, strlen(yaml), "test.yaml", error, sizeof error);
    cr_expect_null(config);
    cr_expect(strstr(error, "add up to 100") != NULL, "%s", error);
    config_unref(config);
}
