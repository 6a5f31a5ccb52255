/* test_providers_anthropic.c — the Anthropic Messages adapter (src/providers/anthropic.c).
 *
 * Requests: the exact Messages body and headers built from OpenAI bodies
 * (system lifted, max_tokens defaulted, images, tools, tool round trips merged
 * into alternating turns). Answers: complete bodies, errors and streams, the
 * streams fed whole, byte by byte and cut at random offsets, including the
 * recorded tool-use stream in fixtures/. */
#include "leak_check.h"
#include "providers_harness.h"

TestSuite(providers_anthropic, .fini = unit_leak_check);

static provider_config_t provider = {
    .name = "claude",
    .type = PROVIDER_ANTHROPIC,
    .base_url = "https://api.anthropic.test",
    .api_key = "sk-ant-secret",
    .anthropic_version = "2023-06-01",
    .default_max_tokens = 4096,
};

/* Builds the call for body and returns the upstream JSON body. */
static json_t *built_body(const char *body, provider_call_t *call, request_t **request_out)
{
    return harness_built_body(&provider_anthropic, &provider, "claude-sonnet-4-5", body, call, request_out);
}

Test(providers_anthropic, simple_request_lifts_system_and_defaults_max_tokens)
{
    provider_call_t call = {0};
    request_t *request;
    json_t *sent = built_body("{\"model\":\"smart\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                              "{\"role\":\"user\",\"content\":\"Hi\"}],\"temperature\":1.5,\"stop\":\"END\","
                              "\"user\":\"u1\"}",
                              &call, &request);
    harness_assert_json_eq(sent, "{\"model\":\"claude-sonnet-4-5\",\"system\":[{\"type\":\"text\",\"text\":\"Be brief.\"}],"
                         "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}],"
                         "\"max_tokens\":4096,\"temperature\":1.0,\"stop_sequences\":[\"END\"],"
                         "\"metadata\":{\"user_id\":\"u1\"}}");
    cr_assert_str_eq(call.url, "https://api.anthropic.test/v1/messages");
    cr_assert_str_eq(harness_call_header(&call, "x-api-key"), "sk-ant-secret");
    cr_assert_str_eq(harness_call_header(&call, "anthropic-version"), "2023-06-01");
    cr_assert_null(harness_call_header(&call, "Authorization"), "no bearer token goes to Anthropic");
    json_decref(sent);
    harness_call_free(&call);
    harness_request_free(request);
}

/* Found end to end: a base_url given as ".../v1" (the form many SDKs use)
 * went to /v1/v1/messages, which Anthropic answers with 404. */
Test(providers_anthropic, base_url_with_version_is_not_doubled)
{
    const char *bases[][2] = {
        {"https://api.anthropic.test/v1", "https://api.anthropic.test/v1/messages"},
        {"https://proxy.test/anthropic/v1", "https://proxy.test/anthropic/v1/messages"},
        {"https://proxy.test/anthropic", "https://proxy.test/anthropic/v1/messages"},
        {"https://proxy.test/xv1", "https://proxy.test/xv1/v1/messages"},
    };
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
        provider_config_t versioned = provider;
        versioned.base_url = (char *)bases[i][0];
        request_t *request = harness_request(&versioned, "claude-sonnet-4-5",
                                             "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
        provider_call_t call = {0};
        cr_assert_eq(provider_anthropic.build_call(request, &call), 0);
        cr_assert_str_eq(call.url, bases[i][1]);
        harness_call_free(&call);
        harness_request_free(request);
    }
}

Test(providers_anthropic, max_completion_tokens_and_stream_flag)
{
    provider_call_t call = {0};
    request_t *request;
    json_t *sent = built_body("{\"model\":\"m\",\"stream\":true,\"max_completion_tokens\":77,\"max_tokens\":5,"
                              "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                              &call, &request);
    cr_assert_eq(json_integer_value(json_object_get(sent, "max_tokens")), 77);
    cr_assert(json_is_true(json_object_get(sent, "stream")));
    cr_assert_str_eq(harness_call_header(&call, "Accept"), "text/event-stream");
    json_decref(sent);
    harness_call_free(&call);
    harness_request_free(request);
}

Test(providers_anthropic, images_become_base64_and_url_sources)
{
    provider_call_t call = {0};
    request_t *request;
    json_t *sent = built_body(
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is this?\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0KGgo=\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.com/cat.jpg\",\"detail\":\"low\"}}]}]}",
        &call, &request);
    harness_assert_json_eq(json_object_get(sent, "messages"),
                   "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is this?\"},"
                   "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"iVBORw0KGgo=\"}},"
                   "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://example.com/cat.jpg\"}}]}]");
    json_decref(sent);
    harness_call_free(&call);
    harness_request_free(request);
}

Test(providers_anthropic, tool_round_trip_merges_results_into_one_user_turn)
{
    provider_call_t call = {0};
    request_t *request;
    json_t *sent = built_body(
        "{\"model\":\"m\",\"messages\":["
        "{\"role\":\"user\",\"content\":\"Weather in Paris and Rome?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
        "{\"id\":\"toolu_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
        "{\"id\":\"toolu_2\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Rome\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_1\",\"content\":\"18C\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_2\",\"content\":[{\"type\":\"text\",\"text\":\"24C\"}]},"
        "{\"role\":\"user\",\"content\":\"Thanks\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}],"
        "\"tool_choice\":\"required\",\"parallel_tool_calls\":false}",
        &call, &request);
    harness_assert_json_eq(json_object_get(sent, "messages"),
                   "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Weather in Paris and Rome?\"}]},"
                   "{\"role\":\"assistant\",\"content\":["
                   "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}},"
                   "{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"get_weather\",\"input\":{\"city\":\"Rome\"}}]},"
                   "{\"role\":\"user\",\"content\":["
                   "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":\"18C\"},"
                   "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_2\",\"content\":[{\"type\":\"text\",\"text\":\"24C\"}]},"
                   "{\"type\":\"text\",\"text\":\"Thanks\"}]}]");
    harness_assert_json_eq(json_object_get(sent, "tools"),
                   "[{\"name\":\"get_weather\",\"description\":\"Weather\",\"input_schema\":{\"type\":\"object\","
                   "\"properties\":{\"city\":{\"type\":\"string\"}}}}]");
    harness_assert_json_eq(json_object_get(sent, "tool_choice"), "{\"type\":\"any\",\"disable_parallel_tool_use\":true}");
    json_decref(sent);
    harness_call_free(&call);
    harness_request_free(request);
}

Test(providers_anthropic, tool_choice_variants)
{
    const char *cases[][2] = {
        {"\"auto\"", "{\"type\":\"auto\"}"},
        {"\"none\"", "{\"type\":\"none\"}"},
        {"{\"type\":\"function\",\"function\":{\"name\":\"f\"}}", "{\"type\":\"tool\",\"name\":\"f\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
                 "\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":%s}",
                 cases[i][0]);
        provider_call_t call = {0};
        request_t *request;
        json_t *sent = built_body(body, &call, &request);
        harness_assert_json_eq(json_object_get(sent, "tool_choice"), cases[i][1]);
        harness_assert_json_eq(json_object_get(json_array_get(json_object_get(sent, "tools"), 0), "input_schema"),
                       "{\"type\":\"object\",\"properties\":{}}");
        json_decref(sent);
        harness_call_free(&call);
        harness_request_free(request);
    }
}

Test(providers_anthropic, rejects_what_anthropic_cannot_do)
{
    const char *bodies[] = {
        "{\"model\":\"m\",\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"only a system prompt\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"}]}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"ftp://x\"}}]}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"[1]\"}}]}]}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        request_t *request = harness_request(&provider, "claude", bodies[i]);
        provider_call_t call = {0};
        cr_assert_eq(provider_anthropic.build_call(request, &call), PROVIDER_CALL_REJECTED, "case %zu", i);
        cr_assert_eq(request->status, 400);
        cr_assert_null(call.body);
        harness_request_free(request);
    }
    request_t *request = harness_request(&provider, "claude", "{\"model\":\"m\",\"input\":\"x\"}");
    request->endpoint = ENDPOINT_EMBEDDINGS;
    provider_call_t call = {0};
    cr_assert_eq(provider_anthropic.build_call(request, &call), PROVIDER_CALL_REJECTED);
    harness_request_free(request);
}

Test(providers_anthropic, complete_answer_with_text_tools_and_cache_usage)
{
    request_t *request = harness_request(&provider, "claude", "{\"model\":\"smart\",\"messages\":[]}");
    const char *reply =
        "{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":["
        "{\"type\":\"thinking\",\"thinking\":\"hmm\",\"signature\":\"s\"},"
        "{\"type\":\"text\",\"text\":\"Let me check.\"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_9\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}}],"
        "\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,"
        "\"cache_creation_input_tokens\":5,\"cache_read_input_tokens\":100,\"output_tokens\":20}}";
    json_t *completion = harness_translated(&provider_anthropic, request, reply);
    harness_assert_json_eq(completion,
                   "{\"id\":\"msg_01\",\"object\":\"chat.completion\",\"model\":\"claude\",\"choices\":[{\"index\":0,"
                   "\"message\":{\"role\":\"assistant\",\"content\":\"Let me check.\",\"refusal\":null,\"tool_calls\":["
                   "{\"id\":\"toolu_9\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                   "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],"
                   "\"usage\":{\"prompt_tokens\":115,\"completion_tokens\":20,\"total_tokens\":135,"
                   "\"prompt_tokens_details\":{\"cached_tokens\":100},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}");
    cr_assert_eq(request->usage.prompt_tokens, 115);
    cr_assert_eq(request->usage.cached_tokens, 100);
    json_decref(completion);
    harness_request_free(request);
}

Test(providers_anthropic, stop_reasons_map_to_finish_reasons)
{
    const char *cases[][2] = {{"end_turn", "stop"},         {"stop_sequence", "stop"},
                              {"max_tokens", "length"},     {"model_context_window_exceeded", "length"},
                              {"refusal", "content_filter"}, {"pause_turn", "stop"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        request_t *request = harness_request(&provider, "claude", "{\"model\":\"m\",\"messages\":[]}");
        char reply[512];
        snprintf(reply, sizeof reply,
                 "{\"id\":\"msg\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}],\"stop_reason\":\"%s\","
                 "\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}",
                 cases[i][0]);
        buf_t out;
        buf_init(&out);
        bool is_unchanged;
        cr_assert_eq(provider_anthropic.translate_response(request, reply, strlen(reply), &out, &is_unchanged), 0);
        json_t *completion = json_loads(out.data, 0, NULL);
        const char *reason = json_string_value(
            json_object_get(json_array_get(json_object_get(completion, "choices"), 0), "finish_reason"));
        cr_assert_str_eq(reason, cases[i][1], "%s", cases[i][0]);
        json_decref(completion);
        buf_free(&out);
        harness_request_free(request);
    }
}

Test(providers_anthropic, invalid_answer_is_refused)
{
    request_t *request = harness_request(&provider, "claude", "{\"model\":\"m\",\"messages\":[]}");
    buf_t out;
    buf_init(&out);
    bool is_unchanged;
    cr_assert_eq(provider_anthropic.translate_response(request, "{\"type\":\"message\"}", 19, &out, &is_unchanged), -1);
    cr_assert_eq(provider_anthropic.translate_response(request, "not json", 8, &out, &is_unchanged), -1);
    buf_free(&out);
    harness_request_free(request);
}

Test(providers_anthropic, errors_keep_their_status_except_overloaded)
{
    struct {
        long status;
        const char *body;
        int want_status;
        const char *want_type;
    } cases[] = {
        {529, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}", 503,
         "overloaded_error"},
        {429, "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}", 429,
         "rate_limit_error"},
        {401, "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"invalid x-api-key\"}}",
         401, "authentication_error"},
        {403, "{\"type\":\"error\",\"error\":{\"type\":\"permission_error\",\"message\":\"no\"}}", 403,
         "permission_error"},
        {404, "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"model: x\"}}", 404,
         "not_found_error"},
        {400, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"bad\"}}", 400,
         "invalid_request_error"},
        {500, "<html>oops</html>", 500, "api_error"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        request_t *request = harness_request(&provider, "claude", "{\"model\":\"m\",\"messages\":[]}");
        provider_error_t error = {0};
        provider_anthropic.translate_error(request, cases[i].status, cases[i].body, strlen(cases[i].body), &error);
        cr_assert_eq(error.status, cases[i].want_status, "case %zu", i);
        cr_assert_str_eq(error.type, cases[i].want_type, "case %zu", i);
        cr_assert_not_null(error.message);
        harness_request_free(request);
    }
}

/* ---- streams ---------------------------------------------------------------- */

static request_t *stream_request(bool wants_usage)
{
    return harness_request(&provider, "claude",
                           wants_usage ? "{\"model\":\"smart\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                                         "\"messages\":[]}"
                                       : "{\"model\":\"smart\",\"stream\":true,\"messages\":[]}");
}

Test(providers_anthropic, recorded_tool_use_stream_at_every_cut)
{
    size_t length;
    char *fixture = harness_fixture("anthropic-tool-use.sse", &length);
    request_t *request = stream_request(true);
    harness_stream_t run;
    char *output = harness_run_every_cut(request, &provider_anthropic, fixture, length, &run);
    cr_assert(run.is_done && !run.is_error && !run.is_failed);
    harness_summary_t summary;
    harness_summarise(output, &summary);
    cr_assert(summary.has_role && summary.has_done && summary.has_usage);
    cr_assert_str_eq(summary.content, "I'll check the current weather in Paris for you.");
    cr_assert_eq(summary.tool_count, 1);
    cr_assert_str_eq(summary.tool_ids[0], "toolu_01NRLabsLyVHZPKxbKvkfSMn");
    cr_assert_str_eq(summary.tool_names[0], "get_weather");
    cr_assert_str_eq(summary.tool_arguments[0], "{\"location\": \"Paris\"}");
    cr_assert_str_eq(summary.finish_reason, "tool_calls");
    cr_assert_eq(summary.prompt_tokens, 377);
    cr_assert_eq(summary.completion_tokens, 65);
    cr_assert_eq(request->usage.completion_tokens, 65, "output_tokens is cumulative, not added");
    /* the chunk id is Anthropic's message id */
    cr_assert_not_null(strstr(output, "\"id\":\"msg_019Q1hrJbZG26Fb9BQhrkHEr\""));
    free(output);
    free(fixture);
    harness_request_free(request);
}

Test(providers_anthropic, usage_chunk_only_when_asked_but_usage_always_recorded)
{
    size_t length;
    char *fixture = harness_fixture("anthropic-tool-use.sse", &length);
    request_t *request = stream_request(false);
    char *output = harness_run_stream(request, &provider_anthropic, fixture, length, NULL, 0, NULL);
    harness_summary_t summary;
    harness_summarise(output, &summary);
    cr_assert(!summary.has_usage);
    cr_assert(summary.has_done);
    cr_assert(request->usage.is_known);
    cr_assert_eq(request->usage.prompt_tokens, 377);
    free(output);
    free(fixture);
    harness_request_free(request);
}

/* Two tool calls after a text block, cache usage, CRLF framing. */
static const char two_tools_stream[] =
    "event: message_start\r\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"content\":[],\"usage\":{\"input_tokens\":7,"
    "\"cache_read_input_tokens\":30,\"cache_creation_input_tokens\":3,\"output_tokens\":1}}}\r\n\r\n"
    "event: content_block_start\r\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\r\n\r\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hm\"}}\r\n\r\n"
    "event: content_block_stop\r\ndata: {\"type\":\"content_block_stop\",\"index\":0}\r\n\r\n"
    "event: content_block_start\r\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t_a\",\"name\":\"a\",\"input\":{}}}\r\n\r\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"x\\\":\"}}\r\n\r\n"
    "event: ping\r\ndata: {\"type\":\"ping\"}\r\n\r\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\r\n\r\n"
    "event: content_block_start\r\n"
    "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t_b\",\"name\":\"b\",\"input\":{}}}\r\n\r\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\r\n\r\n"
    "event: message_delta\r\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":12}}\r\n\r\n"
    "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n";

Test(providers_anthropic, parallel_tool_calls_are_numbered_from_zero)
{
    request_t *request = stream_request(true);
    harness_stream_t run;
    char *output = harness_run_every_cut(request, &provider_anthropic, two_tools_stream, strlen(two_tools_stream), &run);
    harness_summary_t summary;
    harness_summarise(output, &summary);
    cr_assert_eq(summary.tool_count, 2);
    cr_assert_str_eq(summary.tool_ids[0], "t_a");
    cr_assert_str_eq(summary.tool_arguments[0], "{\"x\":1}");
    cr_assert_str_eq(summary.tool_ids[1], "t_b");
    cr_assert_str_eq(summary.tool_arguments[1], "{}");
    cr_assert_str_eq(summary.content, "", "thinking is not content");
    cr_assert_eq(summary.prompt_tokens, 40);
    cr_assert_eq(summary.cached_tokens, 30);
    cr_assert_eq(summary.completion_tokens, 12);
    free(output);
    harness_request_free(request);
}

Test(providers_anthropic, error_event_becomes_openai_error)
{
    static const char stream[] =
        "event: message_start\n"
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_3\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n"
        "event: error\n"
        "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n";
    request_t *request = stream_request(false);
    harness_stream_t run;
    char *output = harness_run_every_cut(request, &provider_anthropic, stream, strlen(stream), &run);
    cr_assert(run.is_error && !run.is_done);
    harness_summary_t summary;
    harness_summarise(output, &summary);
    cr_assert_str_eq(summary.content, "Hel", "nothing after the error");
    cr_assert(summary.has_error);
    cr_assert_str_eq(summary.error_type, "overloaded_error");
    cr_assert(!summary.has_done);
    free(output);
    harness_request_free(request);
}

Test(providers_anthropic, stream_cut_short_ends_with_error)
{
    static const char stream[] =
        "event: message_start\n"
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_4\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n";
    request_t *request = stream_request(false);
    harness_stream_t run;
    char *output = harness_run_every_cut(request, &provider_anthropic, stream, strlen(stream), &run);
    cr_assert(run.is_error);
    harness_summary_t summary;
    harness_summarise(output, &summary);
    cr_assert_str_eq(summary.content, "Hi");
    cr_assert(summary.has_error && !summary.has_done);
    free(output);
    harness_request_free(request);
}

Test(providers_anthropic, stream_without_message_stop_but_with_stop_reason_finishes)
{
    static const char stream[] =
        "event: message_start\n"
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_5\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n"
        "event: message_delta\n"
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":2}}";
    request_t *request = stream_request(true);
    harness_stream_t run;
    char *output = harness_run_every_cut(request, &provider_anthropic, stream, strlen(stream), &run);
    cr_assert(run.is_done);
    harness_summary_t summary;
    harness_summarise(output, &summary);
    cr_assert_str_eq(summary.finish_reason, "length");
    cr_assert(summary.has_done && summary.has_usage);
    free(output);
    harness_request_free(request);
}

Test(providers_anthropic, garbage_event_fails_the_stream)
{
    static const char stream[] = "event: message_start\ndata: {not json\n\n";
    request_t *request = stream_request(false);
    harness_stream_t run;
    char *output = harness_run_stream(request, &provider_anthropic, stream, strlen(stream), NULL, 0, &run);
    cr_assert(run.is_failed);
    free(output);
    harness_request_free(request);
}

/* response_format asks for the answer as one forced tool call whose input
 * schema is the wanted schema; that tool's input comes back as the content. */
Test(providers_anthropic, response_format_becomes_a_forced_tool)
{
    provider_call_t call = {0};
    request_t *request;
    json_t *sent = built_body("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Paris?\"}],"
                              "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"city\","
                              "\"strict\":true,\"schema\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":"
                              "\"string\"}},\"required\":[\"name\"]}}}}",
                              &call, &request);
    harness_assert_json_eq(json_object_get(sent, "tools"),
                   "[{\"name\":\"city\",\"description\":\"Give the answer as this tool's input: a JSON object.\","
                   "\"input_schema\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}},"
                   "\"required\":[\"name\"]}}]");
    harness_assert_json_eq(json_object_get(sent, "tool_choice"), "{\"type\":\"tool\",\"name\":\"city\"}");
    json_decref(sent);
    harness_call_free(&call);
    harness_request_free(request);

    sent = built_body("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                      "\"response_format\":{\"type\":\"json_object\"}}",
                      &call, &request);
    harness_assert_json_eq(json_object_get(sent, "tools"),
                   "[{\"name\":\"json_response\",\"description\":\"Give the answer as this tool's input: a JSON "
                   "object.\",\"input_schema\":{\"type\":\"object\"}}]");
    harness_assert_json_eq(json_object_get(sent, "tool_choice"), "{\"type\":\"tool\",\"name\":\"json_response\"}");
    const char *reply = "{\"id\":\"msg_j\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":"
                        "\"json_response\",\"input\":{\"name\":\"Paris\"}}],\"stop_reason\":\"tool_use\","
                        "\"usage\":{\"input_tokens\":5,\"output_tokens\":7}}";
    json_t *completion = harness_translated(&provider_anthropic, request, reply);
    const json_t *choice = json_array_get(json_object_get(completion, "choices"), 0);
    harness_assert_json_eq(json_object_get(choice, "message"),
                   "{\"role\":\"assistant\",\"content\":\"{\\\"name\\\":\\\"Paris\\\"}\",\"refusal\":null}");
    cr_assert_str_eq(json_string_value(json_object_get(choice, "finish_reason")), "stop");
    json_decref(completion);
    json_decref(sent);
    harness_call_free(&call);
    harness_request_free(request);

    /* with client tools the format tool cannot be forced: refused, not silently dropped */
    request = harness_request(&provider, "claude",
                              "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                              "\"response_format\":{\"type\":\"json_object\"},"
                              "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}");
    cr_assert_eq(provider_anthropic.build_call(request, &call), PROVIDER_CALL_REJECTED);
    cr_assert_eq(request->status, 400);
    harness_request_free(request);
}

Test(providers_anthropic, response_format_stream_sends_the_tool_input_as_content)
{
    static const char stream[] =
        "event: message_start\n"
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_4\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\","
        "\"name\":\"json_response\",\"input\":{}}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"ok\\\":\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"true}\"}}\n\n"
        "event: message_delta\n"
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":4}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    request_t *request = harness_request(&provider, "claude",
                                         "{\"model\":\"m\",\"stream\":true,\"messages\":[],"
                                         "\"response_format\":{\"type\":\"json_object\"}}");
    harness_summary_t summary;
    harness_summarise_every_cut(request, &provider_anthropic, stream, strlen(stream), &summary);
    cr_assert_eq(summary.tool_count, 0, "the forced tool is the answer, not a tool call");
    cr_assert_str_eq(summary.content, "{\"ok\":true}");
    cr_assert_str_eq(summary.finish_reason, "stop");
    harness_request_free(request);
}
