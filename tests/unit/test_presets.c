/* test_presets.c — openai-compatible presets (compat_presets.c): names and
 * inference from base_url, the body each preset sends, and what each does to
 * stream events and complete answers (usage found, mapped, estimated; the
 * client's usage chunk). */
#include "providers_harness.h"

#include "sluice/compat_presets.h"
#include "sluice/config.h"

static provider_config_t preset_provider(compat_preset_t preset)
{
    static char name[] = "compat", url[] = "http://upstream.test/v1";
    return (provider_config_t){.name = name, .type = PROVIDER_OPENAI_COMPATIBLE, .base_url = url,
                               .preset = (int)preset};
}

static void free_shared(provider_config_t *provider)
{
    config_free_headers(atomic_load(&provider->shared_headers[0]));
    config_free_headers(atomic_load(&provider->shared_headers[1]));
}

Test(presets, names_round_trip)
{
    for (int i = 0; i < COMPAT_PRESET_COUNT; i++) {
        compat_preset_t preset = COMPAT_PRESET_COUNT;
        cr_assert_eq(compat_preset_from_name(compat_preset_name((compat_preset_t)i), &preset), 0);
        cr_assert_eq(preset, (compat_preset_t)i);
    }
    compat_preset_t preset;
    cr_assert_eq(compat_preset_from_name("lmstudio", &preset), -1);
    cr_assert_eq(compat_preset_from_name("Groq", &preset), -1);
}

Test(presets, inferred_from_base_url)
{
    static const struct {
        const char *url;
        compat_preset_t preset;
    } cases[] = {
        {"https://api.groq.com/openai/v1", COMPAT_PRESET_GROQ},
        {"https://API.Groq.com/openai/v1", COMPAT_PRESET_GROQ},
        {"https://api.mistral.ai/v1", COMPAT_PRESET_MISTRAL},
        {"https://api.deepseek.com", COMPAT_PRESET_DEEPSEEK},
        {"https://api.deepseek.com/v1", COMPAT_PRESET_DEEPSEEK},
        {"https://api.together.xyz/v1", COMPAT_PRESET_TOGETHER},
        {"https://openrouter.ai/api/v1", COMPAT_PRESET_OPENROUTER},
        {"http://localhost:11434/v1", COMPAT_PRESET_OLLAMA},
        {"http://10.0.0.5:11434", COMPAT_PRESET_OLLAMA},
        {"http://localhost:8000/v1", COMPAT_PRESET_GENERIC},
        {"http://localhost:114340/v1", COMPAT_PRESET_GENERIC},
        {"https://api.groq.com.example.net/v1", COMPAT_PRESET_GENERIC},
        {"https://proxy.example/api.groq.com/v1", COMPAT_PRESET_GENERIC},
        {"https://api.openai.com/v1", COMPAT_PRESET_GENERIC},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_expect_eq(compat_preset_infer(cases[i].url), cases[i].preset, "%s", cases[i].url);
    cr_expect_eq(compat_preset_infer(NULL), COMPAT_PRESET_GENERIC);
}

Test(presets, only_openai_compatible_providers_have_one)
{
    provider_config_t provider = preset_provider(COMPAT_PRESET_MISTRAL);
    provider.type = PROVIDER_OPENAI;
    request_t *request = harness_request(&provider, "m", "{\"model\":\"x\",\"messages\":[]}");
    cr_assert_eq(compat_preset_of(request), COMPAT_PRESET_GENERIC);
    harness_request_free(request);
}

/* The upstream body for a client body through the openai adapter. */
static json_t *sent_body(compat_preset_t preset, const char *client_body, bool use_raw)
{
    provider_config_t provider = preset_provider(preset);
    request_t *request = harness_request(&provider, "up-model", client_body);
    if (use_raw) {
        request->raw_body = client_body;
        request->raw_body_length = strlen(client_body);
    }
    char *before = json_dumps(request->body, JSON_COMPACT | JSON_SORT_KEYS);
    provider_call_t call = {0};
    cr_assert_eq(provider_openai.build_call(request, &call), 0);
    json_t *sent = json_loadb(call.body, call.body_length, 0, NULL);
    cr_assert_not_null(sent);
    char *after = json_dumps(request->body, JSON_COMPACT | JSON_SORT_KEYS);
    if (preset == COMPAT_PRESET_MISTRAL)
        cr_expect_str_eq(after, before, "the client's tree is left as it was");
    free(before);
    free(after);
    harness_call_free(&call);
    harness_request_free(request);
    free_shared(&provider);
    return sent;
}

Test(presets, mistral_sends_no_stream_options)
{
    static const char *const bodies[] = {
        "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0.5}",
        "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":[],\"temperature\":0.5}",
        "{\"model\":\"m\",\"stream\":false,\"stream_options\":null,\"messages\":[],\"temperature\":0.5}",
    };
    for (size_t i = 0; i < 3; i++) {
        for (int raw = 0; raw < 2; raw++) {
            json_t *sent = sent_body(COMPAT_PRESET_MISTRAL, bodies[i], raw);
            cr_expect_null(json_object_get(sent, "stream_options"), "body %zu", i);
            cr_expect_str_eq(json_string_value(json_object_get(sent, "model")), "up-model");
            cr_expect(json_real_value(json_object_get(sent, "temperature")) == 0.5);
            json_decref(sent);
        }
    }
}

Test(presets, others_ask_for_stream_usage)
{
    const char *body = "{\"model\":\"m\",\"stream\":true,\"messages\":[]}";
    for (int i = 0; i < COMPAT_PRESET_COUNT; i++) {
        if (i == COMPAT_PRESET_MISTRAL)
            continue;
        for (int raw = 0; raw < 2; raw++) {
            json_t *sent = sent_body((compat_preset_t)i, body, raw);
            harness_assert_json_eq(json_object_get(sent, "stream_options"), "{\"include_usage\":true}");
            json_decref(sent);
        }
    }
}

typedef struct fed {
    char *text; /* what the client was sent */
    int last_result;
} fed_t;

/* Feeds the data events (NULL-terminated) to the adapter for a preset, as a stream. */
static fed_t feed(request_t *request, const char *const *events)
{
    compat_stream_t state = {0};
    buf_t out;
    buf_init(&out);
    fed_t fed = {0};
    for (size_t i = 0; events[i] != NULL; i++) {
        sse_event_t event = {.name = "", .data = events[i], .data_length = strlen(events[i])};
        fed.last_result = provider_openai.translate_event(request, &state, &event, &out);
    }
    buf_append_char(&out, '\0');
    fed.text = out.data;
    return fed;
}

static request_t *stream_request(provider_config_t *provider, bool wants_usage)
{
    request_t *request = harness_request(
        provider, "up",
        wants_usage ? "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                      "\"messages\":[{\"role\":\"user\",\"content\":\"twelve chars\"}]}"
                    : "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"twelve chars\"}]}");
    return request;
}

#define CHUNK(extra) "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"srv\"," extra "}"

Test(presets, groq_usage_from_x_groq_when_no_usage_chunk)
{
    provider_config_t provider = preset_provider(COMPAT_PRESET_GROQ);
    request_t *request = stream_request(&provider, true);
    const char *const events[] = {
        CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]"),
        CHUNK("\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"x_groq\":{\"id\":\"req_1\","
              "\"usage\":{\"queue_time\":0.01,\"prompt_tokens\":23,\"completion_tokens\":19,\"total_tokens\":42}}"),
        "[DONE]", NULL};
    fed_t fed = feed(request, events);
    cr_assert_eq(fed.last_result, PROVIDER_EVENT_DONE);
    cr_expect(request->usage.is_known && !request->usage.is_estimated);
    cr_expect_eq(request->usage.prompt_tokens, 23);
    cr_expect_eq(request->usage.completion_tokens, 19);
    cr_expect(strstr(fed.text, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":"
                               "\"srv\",\"choices\":[],\"usage\":{\"prompt_tokens\":23,\"completion_tokens\":19,"
                               "\"total_tokens\":42}}\n\ndata: [DONE]\n\n") != NULL,
              "%s", fed.text);
    free(fed.text);
    harness_request_free(request);
}

Test(presets, groq_standard_usage_wins_over_x_groq)
{
    provider_config_t provider = preset_provider(COMPAT_PRESET_GROQ);
    request_t *request = stream_request(&provider, false);
    const char *const events[] = {
        CHUNK("\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6,\"total_tokens\":11}"),
        CHUNK("\"choices\":[],\"x_groq\":{\"usage\":{\"prompt_tokens\":99,\"completion_tokens\":99}}"), "[DONE]",
        NULL};
    fed_t fed = feed(request, events);
    cr_expect_eq(request->usage.prompt_tokens, 5);
    cr_expect_eq(request->usage.completion_tokens, 6);
    cr_expect(strstr(fed.text, "\"usage\":{\"prompt_tokens\":5") == NULL, "usage chunk kept from the client: %s",
              fed.text);
    free(fed.text);
    harness_request_free(request);
}

Test(presets, usage_on_finish_chunk_gets_a_usage_chunk_only_when_asked)
{
    const char *const events[] = {
        CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]"),
        CHUNK("\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
              "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}"),
        "[DONE]", NULL};
    compat_preset_t presets[] = {COMPAT_PRESET_MISTRAL, COMPAT_PRESET_TOGETHER, COMPAT_PRESET_OPENROUTER};
    for (size_t i = 0; i < 3; i++) {
        for (int wants = 0; wants < 2; wants++) {
            provider_config_t provider = preset_provider(presets[i]);
            request_t *request = stream_request(&provider, wants);
            fed_t fed = feed(request, events);
            cr_expect_eq(request->usage.prompt_tokens, 3);
            bool has_chunk = strstr(fed.text, "\"choices\":[],\"usage\"") != NULL;
            cr_expect_eq(has_chunk, (bool)wants, "%s wants=%d: %s", compat_preset_name(presets[i]), wants, fed.text);
            free(fed.text);
            harness_request_free(request);
        }
    }
}

Test(presets, upstream_usage_chunk_is_not_doubled)
{
    provider_config_t provider = preset_provider(COMPAT_PRESET_TOGETHER);
    request_t *request = stream_request(&provider, true);
    const char *const events[] = {
        CHUNK("\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]"),
        CHUNK("\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}"), "[DONE]",
        NULL};
    fed_t fed = feed(request, events);
    const char *first = strstr(fed.text, "\"choices\":[],\"usage\"");
    cr_assert_not_null(first);
    cr_expect_null(strstr(first + 1, "\"choices\":[],\"usage\""), "%s", fed.text);
    free(fed.text);
    harness_request_free(request);
}

Test(presets, deepseek_cache_hits_become_cached_tokens)
{
    provider_config_t provider = preset_provider(COMPAT_PRESET_DEEPSEEK);
    request_t *request = stream_request(&provider, true);
    const char *const events[] = {
        CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"content\":null,\"reasoning_content\":\"think\"}}]"),
        CHUNK("\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":4,\"total_tokens\":14,"
              "\"prompt_cache_hit_tokens\":6,\"prompt_cache_miss_tokens\":4}"),
        "[DONE]", NULL};
    fed_t fed = feed(request, events);
    cr_expect_eq(request->usage.cached_tokens, 6);
    cr_expect(strstr(fed.text, "\"reasoning_content\":\"think\"") != NULL, "reasoning passes: %s", fed.text);
    cr_expect(strstr(fed.text, "\"prompt_tokens_details\":{\"cached_tokens\":6}") != NULL, "%s", fed.text);
    cr_expect(strstr(fed.text, "\"prompt_cache_hit_tokens\":6") != NULL, "%s", fed.text);
    free(fed.text);
    harness_request_free(request);

    /* complete answers too */
    request = harness_request(&provider, "up", "{\"model\":\"m\",\"messages\":[]}");
    const char *answer = "{\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":4,"
                         "\"prompt_cache_hit_tokens\":8,\"prompt_cache_miss_tokens\":2}}";
    buf_t out;
    buf_init(&out);
    bool is_unchanged = true;
    cr_assert_eq(provider_openai.translate_response(request, answer, strlen(answer), &out, &is_unchanged), 0);
    cr_assert(!is_unchanged);
    json_t *sent = json_loadb(out.data, out.length, 0, NULL);
    harness_assert_json_eq(json_object_get(json_object_get(sent, "usage"), "prompt_tokens_details"),
                           "{\"cached_tokens\":8}");
    cr_expect_eq(request->usage.cached_tokens, 8);
    json_decref(sent);
    buf_free(&out);
    harness_request_free(request);
}

Test(presets, deepseek_own_cached_tokens_win)
{
    json_t *usage = json_loads("{\"prompt_cache_hit_tokens\":8,\"prompt_tokens_details\":{\"cached_tokens\":3}}", 0, NULL);
    cr_expect(!compat_presets_fix_usage(COMPAT_PRESET_DEEPSEEK, usage));
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(usage, "prompt_tokens_details"), "cached_tokens")), 3);
    cr_expect(!compat_presets_fix_usage(COMPAT_PRESET_GROQ, usage));
    json_decref(usage);
}

Test(presets, ollama_without_stream_usage_is_estimated)
{
    provider_config_t provider = preset_provider(COMPAT_PRESET_OLLAMA);
    for (int wants = 0; wants < 2; wants++) {
        request_t *request = stream_request(&provider, wants);
        const char *const events[] = {
            CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"12345\"}}]"),
            CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"content\":\"6789\"}}]"),
            CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
                  "\"{}\"}}]},\"finish_reason\":\"stop\"}]"),
            "[DONE]", NULL};
        fed_t fed = feed(request, events);
        cr_expect(request->usage.is_known && request->usage.is_estimated);
        cr_expect_eq(request->usage.prompt_tokens, 3);     /* "twelve chars" = 12 characters */
        cr_expect_eq(request->usage.completion_tokens, 3); /* 5 + 4 + 2 = 11 characters */
        bool has_chunk = strstr(fed.text, "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":3,\"total_tokens\":6,"
                                          "\"estimated\":true}") != NULL;
        cr_expect_eq(has_chunk, (bool)wants, "%s", fed.text);
        free(fed.text);
        harness_request_free(request);
    }
}

Test(presets, ollama_reported_usage_is_not_estimated)
{
    provider_config_t provider = preset_provider(COMPAT_PRESET_LLAMACPP);
    request_t *request = stream_request(&provider, false);
    const char *const events[] = {
        CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"content\":\"12345\"}}]"),
        CHUNK("\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":50}"), "[DONE]", NULL};
    fed_t fed = feed(request, events);
    cr_expect(!request->usage.is_estimated);
    cr_expect_eq(request->usage.completion_tokens, 50);
    free(fed.text);
    harness_request_free(request);
}

Test(presets, generic_does_not_estimate)
{
    provider_config_t provider = preset_provider(COMPAT_PRESET_GENERIC);
    request_t *request = stream_request(&provider, true);
    const char *const events[] = {CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"content\":\"12345\"}}]"), "[DONE]",
                                  NULL};
    fed_t fed = feed(request, events);
    cr_expect(!request->usage.is_known);
    free(fed.text);
    harness_request_free(request);
}

Test(presets, errors_end_the_stream)
{
    provider_config_t provider = preset_provider(COMPAT_PRESET_MISTRAL);
    request_t *request = stream_request(&provider, true);
    const char *const events[] = {"{\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}", NULL};
    fed_t fed = feed(request, events);
    cr_expect_eq(fed.last_result, PROVIDER_EVENT_ERROR);
    cr_expect(strstr(fed.text, "boom") != NULL);
    free(fed.text);
    harness_request_free(request);
}

Test(presets, ollama_answer_without_usage_is_estimated)
{
    provider_config_t provider = preset_provider(COMPAT_PRESET_OLLAMA);
    request_t *request = harness_request(&provider, "up",
                                         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"abcdefgh\"}]}");
    const char *answer = "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                         "\"abcde\"},\"finish_reason\":\"stop\"}]}";
    buf_t out;
    buf_init(&out);
    bool is_unchanged = false;
    cr_assert_eq(provider_openai.translate_response(request, answer, strlen(answer), &out, &is_unchanged), 0);
    cr_expect(is_unchanged, "the body goes as it is");
    cr_expect(request->usage.is_estimated);
    cr_expect_eq(request->usage.prompt_tokens, 2);
    cr_expect_eq(request->usage.completion_tokens, 2);
    buf_free(&out);
    harness_request_free(request);
}
