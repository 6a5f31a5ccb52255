/* test_providers_gemini.c — the Gemini adapter (src/providers/gemini.c).
 *
 * Requests: contents, systemInstruction, generationConfig, function
 * declarations and the function call / response round trip (names looked up
 * by call id, thought signatures carried in the id). Answers, errors (with
 * RetryInfo as retry-after), embeddings, and streams with CRLF framing fed
 * whole, byte by byte and cut at random offsets, incl. the recorded stream in
 * fixtures/. */
#include "leak_check.h"
#include "providers_harness.h"

TestSuite(providers_gemini, .fini = unit_leak_check);

static provider_config_t provider = {
    .name = "google",
    .type = PROVIDER_GEMINI,
    .base_url = "https://gemini.test",
    .api_key = "AIza-secret",
    .default_max_tokens = 4096,
};

static json_t *built_body(const char *body, provider_call_t *call, request_t **request_out)
{
    return harness_built_body(&provider_gemini, &provider, "gemini-2.5-flash", body, call, request_out);
}

Test(providers_gemini, request_with_system_and_generation_config)
{
    provider_call_t call = {0};
    request_t *request;
    json_t *sent = built_body(
        "{\"model\":\"g\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello!\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Look\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/jpeg;base64,/9j/4AAQ\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.com/a.png?x=1\"}}]}],"
        "\"temperature\":0.3,\"top_p\":0.9,\"max_tokens\":100,\"stop\":[\"a\",\"b\"],\"seed\":7,"
        "\"response_format\":{\"type\":\"json_object\"}}",
        &call, &request);
    harness_assert_json_eq(sent,
                   "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"Hi\"}]},"
                   "{\"role\":\"model\",\"parts\":[{\"text\":\"Hello!\"}]},"
                   "{\"role\":\"user\",\"parts\":[{\"text\":\"Look\"},"
                   "{\"inlineData\":{\"mimeType\":\"image/jpeg\",\"data\":\"/9j/4AAQ\"}},"
                   "{\"fileData\":{\"mimeType\":\"image/png\",\"fileUri\":\"https://example.com/a.png?x=1\"}}]}],"
                   "\"systemInstruction\":{\"parts\":[{\"text\":\"Be brief.\"}]},"
                   "\"generationConfig\":{\"temperature\":0.3,\"topP\":0.9,\"maxOutputTokens\":100,"
                   "\"stopSequences\":[\"a\",\"b\"],\"seed\":7,\"responseMimeType\":\"application/json\"}}");
    cr_assert_str_eq(call.url, "https://gemini.test/v1beta/models/gemini-2.5-flash:generateContent");
    cr_assert_str_eq(harness_call_header(&call, "x-goog-api-key"), "AIza-secret");
    cr_assert_null(harness_call_header(&call, "Authorization"));
    json_decref(sent);
    harness_call_free(&call);
    harness_request_free(request);
}

/* Found end to end: a base_url given with its API version (Google's docs
 * show ".../v1beta"; ".../v1" is the stable API) went to /v1beta/v1beta/...
 * or /v1/v1beta/..., which Google answers with 404. */
Test(providers_gemini, base_url_with_version_is_used_as_is)
{
    const char *cases[][3] = {
        {"https://gemini.test/v1beta", "0", "https://gemini.test/v1beta/models/gemini-2.5-flash:generateContent"},
        {"https://gemini.test/v1", "1",
         "https://gemini.test/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse"},
        {"https://proxy.test/google", "0", "https://proxy.test/google/v1beta/models/gemini-2.5-flash:generateContent"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        provider_config_t versioned = provider;
        versioned.base_url = (char *)cases[i][0];
        bool stream = cases[i][1][0] == '1';
        request_t *request = harness_request(&versioned, "gemini-2.5-flash",
                                             stream ? "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"
                                                    : "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
        provider_call_t call = {0};
        cr_assert_eq(provider_gemini.build_call(request, &call), 0);
        cr_assert_str_eq(call.url, cases[i][2]);
        harness_call_free(&call);
        harness_request_free(request);
    }
}

Test(providers_gemini, stream_url_and_json_schema)
{
    provider_call_t call = {0};
    request_t *request;
    json_t *sent = built_body("{\"model\":\"g\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                              "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"n\","
                              "\"schema\":{\"type\":\"object\"}}}}",
                              &call, &request);
    cr_assert_str_eq(call.url, "https://gemini.test/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    harness_assert_json_eq(json_object_get(sent, "generationConfig"),
                   "{\"responseMimeType\":\"application/json\",\"responseJsonSchema\":{\"type\":\"object\"}}");
    json_decref(sent);
    harness_call_free(&call);
    harness_request_free(request);
}

Test(providers_gemini, function_call_round_trip)
{
    provider_call_t call = {0};
    request_t *request;
    json_t *sent = built_body(
        "{\"model\":\"g\",\"messages\":["
        "{\"role\":\"user\",\"content\":\"Weather?\"},"
        "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":["
        "{\"id\":\"call_x_0~ts~SIG+/=\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
        "{\"id\":\"call_x_1\",\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"arguments\":\"\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_x_0~ts~SIG+/=\",\"content\":\"{\\\"temp\\\":18}\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_x_1\",\"content\":\"noon\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"W\","
        "\"parameters\":{\"type\":\"object\",\"additionalProperties\":false}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}],"
        "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}}",
        &call, &request);
    harness_assert_json_eq(json_object_get(sent, "contents"),
                   "[{\"role\":\"user\",\"parts\":[{\"text\":\"Weather?\"}]},"
                   "{\"role\":\"model\",\"parts\":["
                   "{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"city\":\"Paris\"}},\"thoughtSignature\":\"SIG+/=\"},"
                   "{\"functionCall\":{\"name\":\"get_time\",\"args\":{}}}]},"
                   "{\"role\":\"user\",\"parts\":["
                   "{\"functionResponse\":{\"name\":\"get_weather\",\"response\":{\"temp\":18}}},"
                   "{\"functionResponse\":{\"name\":\"get_time\",\"response\":{\"result\":\"noon\"}}}]}]");
    harness_assert_json_eq(json_object_get(sent, "tools"),
                   "[{\"functionDeclarations\":[{\"name\":\"get_weather\",\"description\":\"W\","
                   "\"parametersJsonSchema\":{\"type\":\"object\",\"additionalProperties\":false}},"
                   "{\"name\":\"get_time\"}]}]");
    harness_assert_json_eq(json_object_get(sent, "toolConfig"),
                   "{\"functionCallingConfig\":{\"mode\":\"ANY\",\"allowedFunctionNames\":[\"get_weather\"]}}");
    json_decref(sent);
    harness_call_free(&call);
    harness_request_free(request);
}

Test(providers_gemini, tool_choice_modes)
{
    const char *cases[][2] = {{"\"auto\"", "AUTO"}, {"\"none\"", "NONE"}, {"\"required\"", "ANY"}};
    for (size_t i = 0; i < 3; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
                 "\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":%s}",
                 cases[i][0]);
        provider_call_t call = {0};
        request_t *request;
        json_t *sent = built_body(body, &call, &request);
        cr_assert_str_eq(json_string_value(json_object_get(
                             json_object_get(json_object_get(sent, "toolConfig"), "functionCallingConfig"), "mode")),
                         cases[i][1]);
        json_decref(sent);
        harness_call_free(&call);
        harness_request_free(request);
    }
}

Test(providers_gemini, rejects_what_it_cannot_translate)
{
    const char *bodies[] = {
        "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"unknown\",\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"stream\":true,\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        request_t *request = harness_request(&provider, "g", bodies[i]);
        provider_call_t call = {0};
        cr_assert_eq(provider_gemini.build_call(request, &call), PROVIDER_CALL_REJECTED, "case %zu", i);
        cr_assert_eq(request->status, 400);
        harness_request_free(request);
    }
}

Test(providers_gemini, complete_answer_with_function_call_and_thoughts)
{
    request_t *request = harness_request(&provider, "g", "{\"model\":\"smart\",\"messages\":[]}");
    const char *reply =
        "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"thinking...\",\"thought\":true},"
        "{\"text\":\"Checking.\"},{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"city\":\"Paris\"}},"
        "\"thoughtSignature\":\"abc=\"}]},\"finishReason\":\"STOP\",\"index\":0}],"
        "\"usageMetadata\":{\"promptTokenCount\":29,\"candidatesTokenCount\":15,\"thoughtsTokenCount\":45,"
        "\"cachedContentTokenCount\":8,\"totalTokenCount\":89},\"responseId\":\"resp1\"}";
    json_t *completion = harness_translated(&provider_gemini, request, reply);
    harness_assert_json_eq(completion,
                   "{\"id\":\"resp1\",\"object\":\"chat.completion\",\"model\":\"g\",\"choices\":[{\"index\":0,"
                   "\"message\":{\"role\":\"assistant\",\"content\":\"Checking.\",\"refusal\":null,\"tool_calls\":["
                   "{\"id\":\"call_test_0~ts~abc=\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                   "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],"
                   "\"usage\":{\"prompt_tokens\":29,\"completion_tokens\":60,\"total_tokens\":89,"
                   "\"prompt_tokens_details\":{\"cached_tokens\":8},\"completion_tokens_details\":{\"reasoning_tokens\":45}}}");
    json_decref(completion);
    harness_request_free(request);
}

Test(providers_gemini, finish_reasons)
{
    const char *cases[][2] = {{"STOP", "stop"},         {"MAX_TOKENS", "length"}, {"SAFETY", "content_filter"},
                              {"RECITATION", "content_filter"}, {"OTHER", "stop"}, {"MALFORMED_FUNCTION_CALL", "stop"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        request_t *request = harness_request(&provider, "g", "{\"model\":\"m\",\"messages\":[]}");
        char reply[512];
        snprintf(reply, sizeof reply,
                 "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]},\"finishReason\":\"%s\"}]}", cases[i][0]);
        buf_t out;
        buf_init(&out);
        bool is_unchanged;
        cr_assert_eq(provider_gemini.translate_response(request, reply, strlen(reply), &out, &is_unchanged), 0);
        json_t *completion = json_loads(out.data, 0, NULL);
        cr_assert_str_eq(json_string_value(json_object_get(
                             json_array_get(json_object_get(completion, "choices"), 0), "finish_reason")),
                         cases[i][1], "%s", cases[i][0]);
        json_decref(completion);
        buf_free(&out);
        harness_request_free(request);
    }
}

Test(providers_gemini, blocked_prompt_is_content_filter)
{
    request_t *request = harness_request(&provider, "g", "{\"model\":\"m\",\"messages\":[]}");
    const char *reply = "{\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":{\"promptTokenCount\":4}}";
    buf_t out;
    buf_init(&out);
    bool is_unchanged;
    cr_assert_eq(provider_gemini.translate_response(request, reply, strlen(reply), &out, &is_unchanged), 0);
    cr_assert_not_null(strstr(out.data, "\"finish_reason\":\"content_filter\""));
    buf_free(&out);
    harness_request_free(request);
}

Test(providers_gemini, errors_with_retry_info)
{
    request_t *request = harness_request(&provider, "g", "{\"model\":\"m\",\"messages\":[]}");
    const char *body =
        "{\"error\":{\"code\":429,\"message\":\"Quota exceeded\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":["
        "{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\"},"
        "{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"34.4s\"}]}}";
    provider_error_t error = {0};
    provider_gemini.translate_error(request, 429, body, strlen(body), &error);
    cr_assert_eq(error.status, 429);
    cr_assert_str_eq(error.type, "rate_limit_error");
    cr_assert_str_eq(error.code, "RESOURCE_EXHAUSTED");
    cr_assert_str_eq(error.retry_after, "35");
    cr_assert_not_null(strstr(error.message, "Quota exceeded"));
    const char *array_body = "[{\"error\":{\"code\":400,\"message\":\"bad\",\"status\":\"INVALID_ARGUMENT\"}}]";
    provider_error_t second = {0};
    provider_gemini.translate_error(request, 400, array_body, strlen(array_body), &second);
    cr_assert_str_eq(second.type, "invalid_request_error");
    cr_assert_null(second.retry_after);
    harness_request_free(request);
}

Test(providers_gemini, embeddings_batch)
{
    request_t *request = harness_request(&provider, "text-embedding-004",
                                         "{\"model\":\"emb\",\"input\":[\"a\",\"b\"],\"dimensions\":3}");
    request->endpoint = ENDPOINT_EMBEDDINGS;
    provider_call_t call = {0};
    cr_assert_eq(provider_gemini.build_call(request, &call), 0);
    cr_assert_str_eq(call.url, "https://gemini.test/v1beta/models/text-embedding-004:batchEmbedContents");
    json_t *sent = json_loads(call.body, 0, NULL);
    harness_assert_json_eq(sent, "{\"requests\":[{\"model\":\"models/text-embedding-004\",\"content\":{\"parts\":[{\"text\":\"a\"}]},"
                         "\"outputDimensionality\":3},{\"model\":\"models/text-embedding-004\",\"content\":{\"parts\":"
                         "[{\"text\":\"b\"}]},\"outputDimensionality\":3}]}");
    json_decref(sent);
    const char *reply = "{\"embeddings\":[{\"values\":[0.5,1.0,-1.0]},{\"values\":[0.0,0.25,1]}]}";
    buf_t out;
    buf_init(&out);
    bool is_unchanged;
    cr_assert_eq(provider_gemini.translate_response(request, reply, strlen(reply), &out, &is_unchanged), 0);
    json_t *list = json_loads(out.data, 0, NULL);
    harness_assert_json_eq(list, "{\"object\":\"list\",\"model\":\"text-embedding-004\",\"data\":[{\"object\":\"embedding\",\"index\":0,"
                         "\"embedding\":[0.5,1.0,-1.0]},{\"object\":\"embedding\",\"index\":1,\"embedding\":[0.0,0.25,1]}],"
                         "\"usage\":{\"prompt_tokens\":0,\"total_tokens\":0}}");
    json_decref(list);
    buf_free(&out);
    harness_call_free(&call);
    harness_request_free(request);
}

/* ---- streams ---------------------------------------------------------------- */

/* The recorded payloads, framed as Gemini frames them: "data: " + CRLF CRLF. */
static char *framed_fixture(size_t *length)
{
    size_t raw_length;
    char *raw = harness_fixture("gemini-tool-call.chunks.jsonl", &raw_length);
    buf_t framed;
    buf_init(&framed);
    for (char *line = strtok(raw, "\n"); line != NULL; line = strtok(NULL, "\n"))
        buf_printf(&framed, "data: %s\r\n\r\n", line);
    free(raw);
    *length = framed.length;
    return framed.data;
}

Test(providers_gemini, recorded_function_call_stream_at_every_cut)
{
    size_t length;
    char *stream = framed_fixture(&length);
    request_t *request = harness_request(&provider, "g",
                                         "{\"model\":\"smart\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                                         "\"messages\":[]}");
    harness_stream_t run;
    char *output = harness_run_every_cut(request, &provider_gemini, stream, length, &run);
    cr_assert(run.is_done && !run.is_error);
    harness_summary_t summary;
    harness_summarise(output, &summary);
    cr_assert(summary.has_role && summary.has_done && summary.has_usage);
    cr_assert_eq(summary.tool_count, 1);
    cr_assert_str_eq(summary.tool_names[0], "weather");
    cr_assert_str_eq(summary.tool_arguments[0], "{\"location\":\"San Francisco\"}");
    cr_assert(strncmp(summary.tool_ids[0], "call_test_0~ts~EqUCCqIC", 23) == 0, "id %s", summary.tool_ids[0]);
    cr_assert_str_eq(summary.finish_reason, "tool_calls", "STOP after a function call");
    cr_assert_eq(summary.prompt_tokens, 29);
    cr_assert_eq(summary.completion_tokens, 60);
    free(output);
    free(stream);
    harness_request_free(request);
}

Test(providers_gemini, text_stream_with_usage_after_finish)
{
    static const char stream[] =
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hel\"}]}}],\"responseId\":\"r\"}\r\n\r\n"
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"lo\"}]},\"finishReason\":\"MAX_TOKENS\"}]}\r\n\r\n"
        "data: {\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2}}\r\n\r\n";
    request_t *request = harness_request(&provider, "g",
                                         "{\"model\":\"smart\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                                         "\"messages\":[]}");
    harness_stream_t run;
    char *output = harness_run_every_cut(request, &provider_gemini, stream, strlen(stream), &run);
    harness_summary_t summary;
    harness_summarise(output, &summary);
    cr_assert_str_eq(summary.content, "Hello");
    cr_assert_str_eq(summary.finish_reason, "length");
    cr_assert_eq(summary.prompt_tokens, 3);
    cr_assert_eq(summary.completion_tokens, 2);
    cr_assert(summary.has_done);
    free(output);
    harness_request_free(request);
}

Test(providers_gemini, error_in_stream_and_stream_cut_short)
{
    static const char with_error[] =
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\r\n\r\n"
        "data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n";
    request_t *request = harness_request(&provider, "g", "{\"model\":\"smart\",\"stream\":true,\"messages\":[]}");
    harness_stream_t run;
    char *output = harness_run_every_cut(request, &provider_gemini, with_error, strlen(with_error), &run);
    cr_assert(run.is_error);
    harness_summary_t summary;
    harness_summarise(output, &summary);
    cr_assert(summary.has_error && !summary.has_done);
    cr_assert_str_eq(summary.error_type, "api_error");
    free(output);
    static const char cut[] = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\r\n\r\n";
    output = harness_run_every_cut(request, &provider_gemini, cut, strlen(cut), &run);
    cr_assert(run.is_error);
    harness_summarise(output, &summary);
    cr_assert(summary.has_error && !summary.has_done);
    free(output);
    harness_request_free(request);
}
