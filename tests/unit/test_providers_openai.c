/* test_providers_openai.c — the OpenAI adapter's call: the body spliced from
 * the client's bytes must be what the tree path (json_object_set_new +
 * json_dumps) sends, and the shared header list must be the per-call one. */
#include "providers_harness.h"

#include "sluice/config.h"

/* The body the adapter sends for raw (NULL raw_body = the tree path). */
static char *build_body(provider_config_t *provider, const char *raw, bool use_raw, size_t *length)
{
    request_t *request = harness_request(provider, "up-model", raw);
    if (use_raw) {
        request->raw_body = raw;
        request->raw_body_length = strlen(raw);
    }
    provider_call_t call = {0};
    cr_assert_eq(provider_openai.build_call(request, &call), 0);
    cr_assert_str_eq(call.url, "http://upstream.test/v1/chat/completions");
    char *body = malloc(call.body_length + 1);
    memcpy(body, call.body, call.body_length);
    body[call.body_length] = '\0';
    *length = call.body_length;
    harness_call_free(&call);
    harness_request_free(request);
    return body;
}

static provider_config_t test_provider(void)
{
    static char name[] = "up", url[] = "http://upstream.test/v1", key[] = "sk-test";
    provider_config_t provider = {.name = name, .type = PROVIDER_OPENAI, .base_url = url, .api_key = key};
    return provider;
}

static const char *const compact_bodies[] = {
    "{\"model\":\"fast\",\"messages\":[{\"role\":\"user\",\"content\":\"hi {\\\"model\\\":1}\"}]}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"model\":\"fast\",\"stream\":true}",
    "{\"model\":\"fast\",\"stream\":true,\"stream_options\":{},\"messages\":[]}",
    "{\"model\":\"fast\",\"stream\":true,\"stream_options\":null,\"messages\":[]}",
    "{\"model\":\"fast\",\"stream\":true,\"stream_options\":{\"include_usage\":false},\"messages\":[]}",
    "{\"model\":\"fast\",\"stream\":true,\"stream_options\":{\"other\":[1,{\"a\":\"]}\"}]},\"messages\":[]}",
    "{\"stream_options\":{\"include_usage\":true,\"x\":1},\"stream\":true,\"model\":\"f\\\"ast\",\"n\":1}",
    "{\"model\":\"fast\",\"stream\":false,\"stream_options\":{},\"tools\":[{\"function\":{\"name\":\"f\"}}]}",
};

Test(openai_call, spliced_body_is_the_dumped_body_for_compact_input)
{
    provider_config_t provider = test_provider();
    for (size_t i = 0; i < sizeof compact_bodies / sizeof *compact_bodies; i++) {
        size_t spliced_length, dumped_length;
        char *spliced = build_body(&provider, compact_bodies[i], true, &spliced_length);
        char *dumped = build_body(&provider, compact_bodies[i], false, &dumped_length);
        cr_expect_str_eq(spliced, dumped, "body %zu", i);
        cr_expect_eq(spliced_length, strlen(spliced));
        free(spliced);
        free(dumped);
    }
    config_free_headers(atomic_load(&provider.shared_headers[0]));
    config_free_headers(atomic_load(&provider.shared_headers[1]));
}

static const char *const spaced_bodies[] = {
    " {\n  \"model\" : \"fast\" ,\n  \"stream\" : true ,\n  \"messages\" : [ ]\n }\n",
    "{ \"model\": \"fast\", \"stream\": true, \"stream_options\": { } }",
    "{ \"model\": \"fast\", \"stream\": true, \"stream_options\": { \"include_usage\" : false } }",
    "{\"mod\\u0065l2\":\"x\",\"model\":\"fast\",\"stream\":true}", /* escaped key: the tree path */
    "{\"model\":\"fast\",\"temperature\":0.7,\"messages\":[{\"role\":\"user\",\"content\":\"\\u00e9\\n\"}]}",
};

Test(openai_call, spliced_body_means_the_dumped_body)
{
    provider_config_t provider = test_provider();
    for (size_t i = 0; i < sizeof spaced_bodies / sizeof *spaced_bodies; i++) {
        size_t spliced_length, dumped_length;
        char *spliced = build_body(&provider, spaced_bodies[i], true, &spliced_length);
        char *dumped = build_body(&provider, spaced_bodies[i], false, &dumped_length);
        json_t *a = json_loadb(spliced, spliced_length, JSON_REJECT_DUPLICATES, NULL);
        json_t *b = json_loadb(dumped, dumped_length, JSON_REJECT_DUPLICATES, NULL);
        cr_assert_not_null(a, "body %zu: %s", i, spliced);
        cr_expect(json_equal(a, b), "body %zu: %s vs %s", i, spliced, dumped);
        json_decref(a);
        json_decref(b);
        free(spliced);
        free(dumped);
    }
    config_free_headers(atomic_load(&provider.shared_headers[0]));
    config_free_headers(atomic_load(&provider.shared_headers[1]));
}

Test(openai_call, shared_headers_are_built_once_per_mode)
{
    provider_config_t provider = test_provider();
    request_t *request = harness_request(&provider, "up-model", "{\"model\":\"fast\",\"stream\":true}");
    provider_call_t first = {0}, second = {0};
    cr_assert_eq(provider_openai.build_call(request, &first), 0);
    cr_assert_eq(provider_openai.build_call(request, &second), 0);
    cr_expect(first.are_headers_shared);
    cr_expect_eq(first.headers, second.headers);
    cr_expect_str_eq(harness_call_header(&first, "Authorization"), "Bearer sk-test");
    cr_expect_str_eq(harness_call_header(&first, "Accept"), "text/event-stream");
    harness_call_free(&first);
    harness_call_free(&second);
    harness_request_free(request);
    config_free_headers(atomic_load(&provider.shared_headers[1]));
}
