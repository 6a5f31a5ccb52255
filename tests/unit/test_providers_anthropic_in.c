/* test_providers_anthropic_in.c — POST /v1/messages translation (src/anthropic_in.c).
 *
 * Anthropic request → OpenAI chat body; OpenAI answer → Anthropic message;
 * OpenAI SSE → Anthropic event sequence, the OpenAI bytes fed whole, one byte
 * at a time and cut at random offsets with identical output; errors. */
#include "leak_check.h"
#include "providers_harness.h"
#include "sluice/anthropic_in.h"

TestSuite(anthropic_in, .fini = unit_leak_check);

static provider_config_t provider = {.name = "p", .type = PROVIDER_OPENAI, .base_url = "http://x/v1"};

static json_t *translate(const char *anthropic)
{
    json_t *body = json_loads(anthropic, 0, NULL);
    cr_assert_not_null(body);
    json_t *openai = NULL;
    char message[256], param[96];
    cr_assert_eq(anthropic_in_request(body, &openai, message, sizeof message, param, sizeof param), 0, "%s (%s)",
                 message, param);
    json_decref(body);
    return openai;
}

Test(anthropic_in, request_with_system_images_tools_and_results)
{
    json_t *openai = translate(
        "{\"model\":\"claude\",\"max_tokens\":100,\"system\":[{\"type\":\"text\",\"text\":\"A\"},{\"type\":\"text\","
        "\"text\":\"B\",\"cache_control\":{\"type\":\"ephemeral\"}}],\"temperature\":0.2,\"stop_sequences\":[\"Z\"],"
        "\"metadata\":{\"user_id\":\"u\"},\"stream\":true,"
        "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Look\"},{\"type\":\"image\","
        "\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"iVBO\"}},{\"type\":\"image\","
        "\"source\":{\"type\":\"url\",\"url\":\"https://e/x.jpg\"}}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"t\",\"signature\":\"s\"},"
        "{\"type\":\"text\",\"text\":\"Checking\"},{\"type\":\"tool_use\",\"id\":\"tu1\",\"name\":\"w\",\"input\":"
        "{\"c\":\"P\"}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"tu1\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"18C\"}]},{\"type\":\"text\",\"text\":\"thanks\"}]}],"
        "\"tools\":[{\"name\":\"w\",\"description\":\"weather\",\"input_schema\":{\"type\":\"object\"}}],"
        "\"tool_choice\":{\"type\":\"any\",\"disable_parallel_tool_use\":true}}");
    harness_assert_json_eq(openai,
                   "{\"model\":\"claude\",\"max_tokens\":100,\"temperature\":0.2,\"stop\":[\"Z\"],\"user\":\"u\","
                   "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":["
                   "{\"role\":\"system\",\"content\":\"A\\n\\nB\"},"
                   "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Look\"},{\"type\":\"image_url\","
                   "\"image_url\":{\"url\":\"data:image/png;base64,iVBO\"}},{\"type\":\"image_url\",\"image_url\":"
                   "{\"url\":\"https://e/x.jpg\"}}]},"
                   "{\"role\":\"assistant\",\"content\":\"Checking\",\"tool_calls\":[{\"id\":\"tu1\",\"type\":"
                   "\"function\",\"function\":{\"name\":\"w\",\"arguments\":\"{\\\"c\\\":\\\"P\\\"}\"}}]},"
                   "{\"role\":\"tool\",\"tool_call_id\":\"tu1\",\"content\":\"18C\"},"
                   "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"thanks\"}]}],"
                   "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"w\",\"description\":\"weather\","
                   "\"parameters\":{\"type\":\"object\"}}}],\"tool_choice\":\"required\",\"parallel_tool_calls\":false}");
    json_decref(openai);
}

Test(anthropic_in, tool_choice_variants_and_string_content)
{
    json_t *openai = translate("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                               "\"tools\":[{\"name\":\"f\"}],\"tool_choice\":{\"type\":\"tool\",\"name\":\"f\"}}");
    harness_assert_json_eq(json_object_get(openai, "tool_choice"), "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}");
    harness_assert_json_eq(json_object_get(openai, "messages"), "[{\"role\":\"user\",\"content\":\"hi\"}]");
    harness_assert_json_eq(json_object_get(json_object_get(json_array_get(json_object_get(openai, "tools"), 0), "function"),
                                   "parameters"),
                   "{\"type\":\"object\",\"properties\":{}}");
    json_decref(openai);
}

Test(anthropic_in, invalid_requests_name_the_parameter)
{
    const char *cases[][2] = {
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "max_tokens"},
        {"{\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[]}", "messages"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}", "messages[0].role"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"document\"}]}]}",
         "messages[0].content[0]"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
         "\"web_search_20250305\",\"name\":\"web_search\"}]}",
         "tools[0]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *body = json_loads(cases[i][0], 0, NULL);
        json_t *openai = NULL;
        char message[256], param[96];
        cr_assert_eq(anthropic_in_request(body, &openai, message, sizeof message, param, sizeof param), -1, "case %zu", i);
        cr_assert_null(openai);
        cr_assert_str_eq(param, cases[i][1], "case %zu: %s", i, message);
        cr_assert_neq(message[0], '\0');
        json_decref(body);
    }
}

Test(anthropic_in, response_with_text_tool_use_and_usage)
{
    request_t *request = harness_request(&provider, "x", "{\"model\":\"claude-via-gateway\",\"messages\":[]}");
    const char *completion =
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
        "\"assistant\",\"content\":\"Sure.\",\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":"
        "{\"name\":\"w\",\"arguments\":\"{\\\"c\\\":1}\"}}]},\"finish_reason\":\"tool_calls\"}],\"usage\":"
        "{\"prompt_tokens\":30,\"completion_tokens\":7,\"total_tokens\":37,\"prompt_tokens_details\":{\"cached_tokens\":10}}}";
    buf_t out;
    buf_init(&out);
    cr_assert_eq(anthropic_in_response(request, completion, strlen(completion), &out), 0);
    json_t *message = json_loads(out.data, 0, NULL);
    harness_assert_json_eq(message,
                   "{\"id\":\"msg_test\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-via-gateway\","
                   "\"content\":[{\"type\":\"text\",\"text\":\"Sure.\"},{\"type\":\"tool_use\",\"id\":\"call_1\","
                   "\"name\":\"w\",\"input\":{\"c\":1}}],\"stop_reason\":\"tool_use\",\"stop_sequence\":null,"
                   "\"usage\":{\"input_tokens\":20,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":10,"
                   "\"output_tokens\":7}}");
    json_decref(message);
    buf_clear(&out);
    cr_assert_eq(anthropic_in_response(request, "{\"error\":{}}", 12, &out), -1);
    buf_free(&out);
    harness_request_free(request);
}

Test(anthropic_in, errors_are_anthropic_shaped)
{
    const int statuses[] = {400, 401, 403, 404, 413, 429, 500, 503, 504};
    const char *types[] = {"invalid_request_error", "authentication_error", "permission_error",
                           "not_found_error",       "request_too_large",    "rate_limit_error",
                           "api_error",             "overloaded_error",     "timeout_error"};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        buf_t out;
        buf_init(&out);
        cr_assert_eq(anthropic_in_error(statuses[i], "why", &out), 0);
        json_t *body = json_loads(out.data, 0, NULL);
        cr_assert_str_eq(json_string_value(json_object_get(body, "type")), "error");
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(body, "error"), "type")), types[i]);
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(body, "error"), "message")), "why");
        json_decref(body);
        buf_free(&out);
    }
}

/* ---- streams ------------------------------------------------------------------ */

static const char openai_stream[] =
    "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
    "\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
    "\"Let me \"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
    "\"check.\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":"
    "[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"w\",\"arguments\":\"\"}}]},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":"
    "[{\"index\":0,\"function\":{\"arguments\":\"{\\\"c\\\":\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":"
    "[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":"
    "[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"t\",\"arguments\":\"{}\"}}]},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},"
    "\"finish_reason\":\"tool_calls\"}]}\n\n"
    "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,"
    "\"completion_tokens\":9,\"total_tokens\":21}}\n\n"
    "data: [DONE]\n\n";

static char *encode_cut(request_t *request, const char *bytes, size_t length, const size_t *cuts, size_t count)
{
    anthropic_in_stream_t *stream = anthropic_in_stream_new();
    cr_assert_not_null(stream);
    buf_t out;
    buf_init(&out);
    size_t start = 0;
    for (size_t i = 0; i <= count; i++) {
        size_t end = i < count ? cuts[i] : length;
        cr_assert_eq(anthropic_in_stream_encode(stream, request, bytes + start, end - start, &out), 0);
        start = end;
    }
    cr_assert_eq(anthropic_in_stream_finish(stream, request, &out), 0);
    anthropic_in_stream_free(stream);
    char *text = strdup(out.data ? out.data : "");
    buf_free(&out);
    return text;
}

Test(anthropic_in, stream_is_reencoded_identically_at_every_cut)
{
    request_t *request = harness_request(&provider, "x", "{\"model\":\"claude\",\"messages\":[]}");
    size_t length = strlen(openai_stream);
    char *whole = encode_cut(request, openai_stream, length, NULL, 0);
    size_t *cuts = malloc(length * sizeof *cuts);
    for (size_t i = 0; i + 1 < length; i++)
        cuts[i] = i + 1;
    char *bytewise = encode_cut(request, openai_stream, length, cuts, length - 1);
    cr_assert_str_eq(bytewise, whole);
    free(bytewise);
    unsigned seed = 7;
    for (int round = 0; round < 100; round++) {
        size_t count = 0, at = 0;
        while ((at += 1 + (size_t)(rand_r(&seed) % 50)) < length)
            cuts[count++] = at;
        char *split = encode_cut(request, openai_stream, length, cuts, count);
        cr_assert_str_eq(split, whole, "round %d", round);
        free(split);
    }
    free(cuts);
    /* the expected event sequence */
    const char *expected[] = {"message_start",       "content_block_start", "content_block_delta",
                              "content_block_delta", "content_block_stop",  "content_block_start",
                              "content_block_delta", "content_block_delta", "content_block_stop",
                              "content_block_start", "content_block_delta", "content_block_stop",
                              "message_delta",       "message_stop"};
    const char *p = whole;
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "event: %s\ndata: ", expected[i]);
        cr_assert(strncmp(p, want, strlen(want)) == 0, "event %zu: expected %s at\n%.120s", i, expected[i], p);
        p = strstr(p, "\n\n");
        cr_assert_not_null(p);
        p += 2;
    }
    cr_assert_eq(*p, '\0', "nothing after message_stop");
    cr_assert_not_null(strstr(whole, "\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_a\",\"name\":\"w\",\"input\":{}}"));
    cr_assert_not_null(strstr(whole, "{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"c\\\":\"}"));
    cr_assert_not_null(strstr(whole, "\"stop_reason\":\"tool_use\""));
    cr_assert_not_null(strstr(whole, "\"input_tokens\":12"));
    cr_assert_not_null(strstr(whole, "\"output_tokens\":9"));
    free(whole);
    harness_request_free(request);
}

Test(anthropic_in, error_event_and_cut_stream)
{
    request_t *request = harness_request(&provider, "x", "{\"model\":\"claude\",\"messages\":[]}");
    const char *with_error =
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n"
        "data: {\"error\":{\"message\":\"anthropic: Overloaded\",\"type\":\"overloaded_error\",\"param\":null,\"code\":null}}\n\n";
    char *text = encode_cut(request, with_error, strlen(with_error), NULL, 0);
    cr_assert_not_null(strstr(text, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\""));
    cr_assert_null(strstr(text, "message_stop"));
    free(text);
    const char *cut = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
    text = encode_cut(request, cut, strlen(cut), NULL, 0);
    cr_assert_not_null(strstr(text, "event: error\n"), "a stream without [DONE] ends with an error event");
    free(text);
    harness_request_free(request);
}
