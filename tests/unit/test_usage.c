/* test_usage.c — token usage and its price (include/sluice/usage.h). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "sluice/log.h"
#include "sluice/usage.h"
#include "leak_check.h"

TestSuite(usage, .fini = unit_leak_check);

static json_t *json(const char *text)
{
    json_error_t error;
    json_t *value = json_loads(text, JSON_DECODE_ANY, &error);
    cr_assert_not_null(value, "test JSON: %s", error.text);
    return value;
}

/* Sentinels show which fields a call left alone. */
static const usage_t untouched = {
    .is_known = false, .prompt_tokens = -1, .completion_tokens = -2, .cached_tokens = -3, .reasoning_tokens = -4};

Test(usage, from_openai_without_details)
{
    usage_t usage = untouched;
    json_t *object = json("{\"prompt_tokens\":25,\"completion_tokens\":12,\"total_tokens\":37}");
    usage_from_openai(object, &usage);
    json_decref(object);
    cr_expect(usage.is_known);
    cr_expect_eq(usage.prompt_tokens, 25);
    cr_expect_eq(usage.completion_tokens, 12);
    cr_expect_eq(usage.cached_tokens, 0);
    cr_expect_eq(usage.reasoning_tokens, 0);
}

Test(usage, from_openai_with_details)
{
    usage_t usage = untouched;
    json_t *object = json("{\"prompt_tokens\":2006,\"completion_tokens\":300,\"total_tokens\":2306,"
                          "\"prompt_tokens_details\":{\"cached_tokens\":1920,\"audio_tokens\":0},"
                          "\"completion_tokens_details\":{\"reasoning_tokens\":192,\"audio_tokens\":0,"
                          "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}");
    usage_from_openai(object, &usage);
    json_decref(object);
    cr_expect(usage.is_known);
    cr_expect_eq(usage.prompt_tokens, 2006);
    cr_expect_eq(usage.completion_tokens, 300);
    cr_expect_eq(usage.cached_tokens, 1920);
    cr_expect_eq(usage.reasoning_tokens, 192);
}

Test(usage, from_openai_embeddings_and_odd_members)
{
    usage_t usage = untouched;
    /* Embeddings report only prompt tokens; details may be null; wrong types count as 0. */
    json_t *object = json("{\"prompt_tokens\":8,\"total_tokens\":8,\"prompt_tokens_details\":null,"
                          "\"completion_tokens_details\":{\"reasoning_tokens\":\"7\"}}");
    usage_from_openai(object, &usage);
    json_decref(object);
    cr_expect(usage.is_known);
    cr_expect_eq(usage.prompt_tokens, 8);
    cr_expect_eq(usage.completion_tokens, 0);
    cr_expect_eq(usage.cached_tokens, 0);
    cr_expect_eq(usage.reasoning_tokens, 0);
}

static void assert_untouched(const usage_t *usage, const char *how)
{
    cr_expect_not(usage->is_known, "%s", how);
    cr_expect_eq(usage->prompt_tokens, -1, "%s", how);
    cr_expect_eq(usage->completion_tokens, -2, "%s", how);
    cr_expect_eq(usage->cached_tokens, -3, "%s", how);
    cr_expect_eq(usage->reasoning_tokens, -4, "%s", how);
}

Test(usage, from_openai_ignores_non_objects)
{
    const char *not_objects[] = {"null", "[]", "5", "\"usage\""};
    for (size_t i = 0; i < sizeof not_objects / sizeof not_objects[0]; i++) {
        usage_t usage = untouched;
        json_t *value = json(not_objects[i]);
        usage_from_openai(value, &usage);
        json_decref(value);
        assert_untouched(&usage, not_objects[i]);
    }
    usage_t usage = untouched;
    usage_from_openai(NULL, &usage);
    assert_untouched(&usage, "NULL");
}

static config_t *priced_config(void)
{
    log_set_level(LOG_ERROR);
    const char *yaml = "providers:\n"
                       "  p: { type: openai-compatible, base_url: http://upstream.test }\n"
                       "pricing:\n"
                       "  gpt-4o: { input: 2.5, output: 10 }\n"
                       "  gpt-4o-mini: { input: 0.15, output: 0.60 }\n"
                       "  free-model: { input: 0, output: 0 }\n";
    char error[512];
    config_t *config = config_load_string(yaml, strlen(yaml), "usage.yaml", error, sizeof error);
    cr_assert_not_null(config, "%s", error);
    return config;
}

Test(usage, cost_of_a_priced_model)
{
    config_t *config = priced_config();
    usage_t usage = {.is_known = true, .prompt_tokens = 1000, .completion_tokens = 500};
    bool is_priced = false;
    /* (1000 * 2.5 + 500 * 10) / 1e6 */
    cr_expect_eq(usage_cost_usd(config, "gpt-4o", &usage, &is_priced), 0.0075);
    cr_expect(is_priced);

    usage = (usage_t){.is_known = true, .prompt_tokens = 1000000, .completion_tokens = 2000000};
    cr_expect_eq(usage_cost_usd(config, "gpt-4o", &usage, &is_priced), 22.5);

    /* The access log example in docs/configuration.md: 25 in, 12 out. */
    usage = (usage_t){.is_known = true, .prompt_tokens = 25, .completion_tokens = 12};
    double cost = usage_cost_usd(config, "gpt-4o-mini", &usage, &is_priced);
    cr_expect(is_priced);
    cr_expect_float_eq(cost, 0.00001095, 1e-18, "cost %.17g", cost);

    usage = (usage_t){.is_known = true, .prompt_tokens = 0, .completion_tokens = 0};
    cr_expect_eq(usage_cost_usd(config, "gpt-4o", &usage, &is_priced), 0.0);
    cr_expect(is_priced, "zero tokens are still priced");
    usage = (usage_t){.is_known = true, .prompt_tokens = 1234, .completion_tokens = 99};
    cr_expect_eq(usage_cost_usd(config, "free-model", &usage, &is_priced), 0.0);
    cr_expect(is_priced, "a zero price is a price");
    config_unref(config);
}

Test(usage, cost_of_an_unpriced_model)
{
    config_t *config = priced_config();
    usage_t usage = {.is_known = true, .prompt_tokens = 1000, .completion_tokens = 500};
    bool is_priced = true;
    cr_expect_eq(usage_cost_usd(config, "llama3", &usage, &is_priced), 0.0);
    cr_expect_not(is_priced);
    is_priced = true;
    cr_expect_eq(usage_cost_usd(config, "GPT-4O", &usage, &is_priced), 0.0, "names are case-sensitive");
    cr_expect_not(is_priced);
    is_priced = true;
    cr_expect_eq(usage_cost_usd(config, NULL, &usage, &is_priced), 0.0);
    cr_expect_not(is_priced);
    config_unref(config);
}

Test(usage, cost_without_known_usage)
{
    config_t *config = priced_config();
    usage_t usage = {.is_known = false, .prompt_tokens = 1000, .completion_tokens = 500};
    bool is_priced = true;
    cr_expect_eq(usage_cost_usd(config, "gpt-4o", &usage, &is_priced), 0.0);
    cr_expect_not(is_priced, "no usage, no cost");
    config_unref(config);
}

/* usage_from_openai_text reads the raw text of a valid document's usage value
 * without building it: it must agree with usage_from_openai on the built one. */
Test(usage, from_openai_text_agrees_with_the_parsed_form)
{
    static const char *const values[] = {
        "{\"prompt_tokens\":25,\"completion_tokens\":12,\"total_tokens\":37}",
        "{\"prompt_tokens\":2006,\"completion_tokens\":300,\"prompt_tokens_details\":{\"cached_tokens\":1920,"
        "\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":192,\"audio_tokens\":0}}",
        "{\"prompt_tokens\":8,\"prompt_tokens_details\":null,\"completion_tokens_details\":{\"reasoning_tokens\":\"7\"}}",
        "{\"prompt_tokens\":1.5,\"completion_tokens\":-4,\"completion_tokens\":9e1}",
        "{\"prompt_tokens\":3,\"prompt_tokens\":4,\"prompt_tokens_details\":{\"cached_tokens\":1,\"cached_tokens\":2}}",
        "{\"prompt_tokens_details\":[1],\"completion_tokens_details\":{\"x\":{\"reasoning_tokens\":5}}}",
        "{\"prompt_tokens\":-9223372036854775808,\"completion_tokens\":9223372036854775807}",
        "{ \"prompt_tokens\" : 7 , \"completion_tokens\" : 0 }",
        "{}",
        "[]",
        "null",
        "12",
        "\"text\"",
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        usage_t expected = untouched, got = untouched;
        json_t *object = json(values[i]);
        usage_from_openai(object, &expected);
        json_decref(object);
        cr_assert_eq(usage_from_openai_text(values[i], strlen(values[i]), &got), 0, "%s", values[i]);
        cr_expect_eq(got.is_known, expected.is_known, "%s", values[i]);
        cr_expect_eq(got.prompt_tokens, expected.prompt_tokens, "%s", values[i]);
        cr_expect_eq(got.completion_tokens, expected.completion_tokens, "%s", values[i]);
        cr_expect_eq(got.cached_tokens, expected.cached_tokens, "%s", values[i]);
        cr_expect_eq(got.reasoning_tokens, expected.reasoning_tokens, "%s", values[i]);
    }
    /* An escaped key is left to the parser. */
    usage_t got = untouched;
    cr_expect_eq(usage_from_openai_text("{\"prompt_\\u0074okens\":3}", 24, &got), -1);
    cr_expect_not(got.is_known);
}
