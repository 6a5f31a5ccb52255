/* test_providers_bedrock.c — SigV4 (sigv4.c), the AWS event stream decoder
 * (eventstream.c) and the Bedrock Converse adapter (bedrock.c), plus the
 * Azure adapter's URLs and headers (azure.c).
 *
 * SigV4 is checked against AWS's published examples (the get-vanilla and
 * post-vanilla cases of the SigV4 test suite and the IAM ListUsers example of
 * the signing guide); the decoder against hand-built frames cut at every byte
 * boundary and against corrupted CRCs; the adapter against the exact Converse
 * body, a signature recomputed from the call it built, and ConverseStream
 * frames cut at every byte. */
#include "leak_check.h"
#include "providers_harness.h"
#include "sluice/eventstream.h"
#include "sluice/sigv4.h"

TestSuite(sigv4, .fini = unit_leak_check);
TestSuite(eventstream, .fini = unit_leak_check);
TestSuite(providers_bedrock, .fini = unit_leak_check);
TestSuite(providers_azure, .fini = unit_leak_check);

static const sigv4_credentials_t example_credentials = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"};
static const char empty_sha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* ---- SigV4 ------------------------------------------------------------------ */

Test(sigv4, get_vanilla)
{
    sigv4_header_t headers[] = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
    sigv4_request_t request = {.method = "GET", .path = "/", .headers = headers, .header_count = 2,
                               .payload_sha256 = empty_sha256, .region = "us-east-1", .service = "service",
                               .amz_date = "20150830T123600Z"};
    buf_t canonical, authorization;
    buf_init(&canonical);
    buf_init(&authorization);
    cr_assert_eq(sigv4_canonical_request(&request, &canonical), 0);
    cr_assert_str_eq(canonical.data, "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                                     "host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    buf_t to_sign;
    buf_init(&to_sign);
    cr_assert_eq(sigv4_string_to_sign(&request, canonical.data, canonical.length, &to_sign), 0);
    cr_assert_str_eq(to_sign.data, "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
                                   "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
    cr_assert_eq(sigv4_sign(&request, &example_credentials, &authorization), 0);
    cr_assert_str_eq(authorization.data,
                     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                     "SignedHeaders=host;x-amz-date, "
                     "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    buf_free(&canonical);
    buf_free(&to_sign);
    buf_free(&authorization);
}

Test(sigv4, post_vanilla)
{
    sigv4_header_t headers[] = {{"X-Amz-Date", "20150830T123600Z"}, {"Host", "example.amazonaws.com"}};
    sigv4_request_t request = {.method = "POST", .path = "/", .headers = headers, .header_count = 2,
                               .payload_sha256 = empty_sha256, .region = "us-east-1", .service = "service",
                               .amz_date = "20150830T123600Z"};
    buf_t authorization;
    buf_init(&authorization);
    cr_assert_eq(sigv4_sign(&request, &example_credentials, &authorization), 0);
    cr_assert_not_null(strstr(authorization.data,
                              "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
                       "%s", authorization.data);
    buf_free(&authorization);
}

Test(sigv4, iam_list_users_example_with_query)
{
    sigv4_header_t headers[] = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
                                {"Host", "iam.amazonaws.com"},
                                {"X-Amz-Date", "20150830T123600Z"}};
    sigv4_request_t request = {.method = "GET", .path = "/", .query = "Version=2010-05-08&Action=ListUsers",
                               .headers = headers, .header_count = 3, .payload_sha256 = empty_sha256,
                               .region = "us-east-1", .service = "iam", .amz_date = "20150830T123600Z"};
    buf_t canonical, authorization;
    buf_init(&canonical);
    buf_init(&authorization);
    cr_assert_eq(sigv4_canonical_request(&request, &canonical), 0);
    cr_assert_str_eq(canonical.data,
                     "GET\n/\nAction=ListUsers&Version=2010-05-08\n"
                     "content-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\n"
                     "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n"
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cr_assert_eq(sigv4_sign(&request, &example_credentials, &authorization), 0);
    cr_assert_not_null(strstr(authorization.data,
                              "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"),
                       "%s", authorization.data);
    buf_free(&canonical);
    buf_free(&authorization);
}

Test(sigv4, model_id_path_is_signed_double_encoded)
{
    sigv4_header_t headers[] = {{"host", "bedrock-runtime.us-east-1.amazonaws.com"}, {"x-amz-date", "20250101T000000Z"}};
    sigv4_request_t request = {.method = "POST", .path = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
                               .headers = headers, .header_count = 2, .payload_sha256 = empty_sha256,
                               .region = "us-east-1", .service = "bedrock", .amz_date = "20250101T000000Z"};
    buf_t canonical;
    buf_init(&canonical);
    cr_assert_eq(sigv4_canonical_request(&request, &canonical), 0);
    cr_assert(strncmp(canonical.data, "POST\n/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse\n", 64) == 0,
              "%s", canonical.data);
    buf_free(&canonical);
}

Test(sigv4, header_values_are_trimmed_and_spaces_collapsed)
{
    sigv4_header_t headers[] = {{"My-Header1", "  a   b   c  "}, {"host", "h"}, {"x-amz-date", "20150830T123600Z"}};
    sigv4_request_t request = {.method = "GET", .path = "/", .headers = headers, .header_count = 3,
                               .payload_sha256 = empty_sha256, .region = "r", .service = "s",
                               .amz_date = "20150830T123600Z"};
    buf_t canonical;
    buf_init(&canonical);
    cr_assert_eq(sigv4_canonical_request(&request, &canonical), 0);
    cr_assert_not_null(strstr(canonical.data, "\nmy-header1:a b c\n"), "%s", canonical.data);
    buf_free(&canonical);
}

/* ---- event stream ------------------------------------------------------------ */

Test(eventstream, crc32_check_value)
{
    cr_assert_eq(eventstream_crc32(0, "123456789", 9), 0xCBF43926u);
    uint32_t crc = eventstream_crc32(0, "1234", 4);
    cr_assert_eq(eventstream_crc32(crc, "56789", 5), 0xCBF43926u, "continuable");
}

typedef struct frames_seen {
    char types[16][32];
    char payloads[16][128];
    int count;
} frames_seen_t;

static int collect_frame(void *argument, const eventstream_message_t *message)
{
    frames_seen_t *seen = argument;
    cr_assert_lt(seen->count, 16);
    snprintf(seen->types[seen->count], 32, "%.*s", (int)message->event_type.length,
             message->event_type.data ? message->event_type.data : "");
    snprintf(seen->payloads[seen->count], 128, "%.*s", (int)message->payload_length, message->payload);
    seen->count++;
    return 0;
}

static void build_frames(buf_t *stream)
{
    const char *payloads[] = {"{\"role\":\"assistant\"}", "", "{\"delta\":{\"text\":\"hi\"}}"};
    const char *types[] = {"messageStart", "empty", "contentBlockDelta"};
    for (int i = 0; i < 3; i++) {
        eventstream_header_t headers[] = {
            {":event-type", types[i]}, {":content-type", "application/json"}, {":message-type", "event"}};
        cr_assert_eq(eventstream_encode(stream, headers, 3, payloads[i], strlen(payloads[i])), 0);
    }
}

Test(eventstream, frames_cut_at_every_byte_boundary)
{
    buf_t stream;
    buf_init(&stream);
    build_frames(&stream);
    for (size_t cut = 0; cut <= stream.length; cut++) {
        for (size_t second = cut; second <= stream.length; second += 7) {
            eventstream_decoder_t decoder;
            eventstream_decoder_init(&decoder, 1 << 20);
            frames_seen_t seen = {0};
            cr_assert_eq(eventstream_decoder_feed(&decoder, stream.data, cut, collect_frame, &seen), 0);
            cr_assert_eq(eventstream_decoder_feed(&decoder, stream.data + cut, second - cut, collect_frame, &seen), 0);
            cr_assert_eq(eventstream_decoder_feed(&decoder, stream.data + second, stream.length - second, collect_frame,
                                                  &seen),
                         0);
            cr_assert_eq(seen.count, 3, "cuts %zu/%zu", cut, second);
            cr_assert_str_eq(seen.types[0], "messageStart");
            cr_assert_str_eq(seen.payloads[0], "{\"role\":\"assistant\"}");
            cr_assert_str_eq(seen.payloads[1], "");
            cr_assert_str_eq(seen.types[2], "contentBlockDelta");
            cr_assert_eq(eventstream_decoder_pending(&decoder), 0);
            eventstream_decoder_free(&decoder);
        }
    }
    /* one byte at a time */
    eventstream_decoder_t decoder;
    eventstream_decoder_init(&decoder, 1 << 20);
    frames_seen_t seen = {0};
    for (size_t i = 0; i < stream.length; i++)
        cr_assert_eq(eventstream_decoder_feed(&decoder, stream.data + i, 1, collect_frame, &seen), 0);
    cr_assert_eq(seen.count, 3);
    eventstream_decoder_free(&decoder);
    buf_free(&stream);
}

Test(eventstream, corrupted_crcs_and_lengths_are_refused)
{
    buf_t stream;
    buf_init(&stream);
    build_frames(&stream);
    for (size_t at = 0; at < stream.length; at++) {
        buf_t copy;
        buf_init(&copy);
        buf_append(&copy, stream.data, stream.length);
        copy.data[at] ^= 0x5a;
        eventstream_decoder_t decoder;
        eventstream_decoder_init(&decoder, 1 << 20);
        frames_seen_t seen = {0};
        int rc = eventstream_decoder_feed(&decoder, copy.data, copy.length, collect_frame, &seen);
        /* a flipped length may leave the decoder waiting for bytes that never come; it never passes a bad frame */
        cr_assert(rc < 0 || eventstream_decoder_pending(&decoder) > 0, "flip at %zu went unnoticed", at);
        cr_assert_lt(seen.count, 3, "flip at %zu", at);
        eventstream_decoder_free(&decoder);
        buf_free(&copy);
    }
    eventstream_decoder_t decoder;
    eventstream_decoder_init(&decoder, 16);
    frames_seen_t seen = {0};
    cr_assert_eq(eventstream_decoder_feed(&decoder, stream.data, stream.length, collect_frame, &seen),
                 EVENTSTREAM_ERROR_TOO_LARGE);
    eventstream_decoder_free(&decoder);
    buf_free(&stream);
}

/* ---- Bedrock ----------------------------------------------------------------- */

static provider_config_t bedrock = {
    .name = "aws",
    .type = PROVIDER_BEDROCK,
    .base_url = "https://bedrock-runtime.us-west-2.amazonaws.com",
    .region = "us-west-2",
    .access_key_id = "AKIDEXAMPLE",
    .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    .session_token = "session-token-example",
    .default_max_tokens = 4096,
};

Test(providers_bedrock, converse_body_url_and_a_signature_that_verifies)
{
    request_t *request = harness_request(
        &bedrock, "anthropic.claude-3-haiku-20240307-v1:0",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Look\"},{\"type\":\"image_url\","
        "\"image_url\":{\"url\":\"data:image/png;base64,iVBO\"}}]},"
        "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"t1\",\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"t1\",\"content\":\"ok\"},{\"role\":\"user\",\"content\":\"and?\"}],"
        "\"max_tokens\":50,\"temperature\":0.5,\"stop\":\"X\","
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}}],"
        "\"tool_choice\":\"required\"}");
    provider_call_t call = {0};
    cr_assert_eq(provider_bedrock.build_call(request, &call), 0);
    cr_assert_str_eq(call.url, "https://bedrock-runtime.us-west-2.amazonaws.com/model/"
                               "anthropic.claude-3-haiku-20240307-v1%3A0/converse");
    json_t *sent = json_loadb(call.body, call.body_length, 0, NULL);
    harness_assert_json_eq(sent,
                   "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"Look\"},{\"image\":{\"format\":\"png\","
                   "\"source\":{\"bytes\":\"iVBO\"}}}]},"
                   "{\"role\":\"assistant\",\"content\":[{\"toolUse\":{\"toolUseId\":\"t1\",\"name\":\"f\",\"input\":{\"a\":1}}}]},"
                   "{\"role\":\"user\",\"content\":[{\"toolResult\":{\"toolUseId\":\"t1\",\"content\":[{\"text\":\"ok\"}],"
                   "\"status\":\"success\"}},{\"text\":\"and?\"}]}],"
                   "\"system\":[{\"text\":\"Be brief.\"}],"
                   "\"inferenceConfig\":{\"maxTokens\":50,\"temperature\":0.5,\"stopSequences\":[\"X\"]},"
                   "\"toolConfig\":{\"tools\":[{\"toolSpec\":{\"name\":\"f\",\"inputSchema\":{\"json\":{\"type\":\"object\"}}}}],"
                   "\"toolChoice\":{\"any\":{}}}}");
    json_decref(sent);
    /* recompute the signature from what the call carries, as the service would */
    const char *date = harness_call_header(&call, "X-Amz-Date");
    const char *content_sha = harness_call_header(&call, "X-Amz-Content-Sha256");
    const char *token = harness_call_header(&call, "X-Amz-Security-Token");
    const char *authorization = harness_call_header(&call, "Authorization");
    cr_assert_not_null(date);
    cr_assert_not_null(content_sha);
    cr_assert_str_eq(token, "session-token-example");
    char body_sha[SIGV4_HEX_LENGTH];
    cr_assert_eq(sigv4_payload_hash(call.body, call.body_length, body_sha), 0);
    cr_assert_str_eq(content_sha, body_sha);
    sigv4_header_t headers[] = {{"host", harness_call_header(&call, "Host")},
                                {"x-amz-date", date},
                                {"x-amz-content-sha256", content_sha},
                                {"x-amz-security-token", token}};
    cr_assert_str_eq(headers[0].value, "bedrock-runtime.us-west-2.amazonaws.com");
    sigv4_request_t signing = {.method = "POST", .path = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
                               .headers = headers, .header_count = 4, .payload_sha256 = body_sha,
                               .region = "us-west-2", .service = "bedrock", .amz_date = date};
    buf_t expected;
    buf_init(&expected);
    sigv4_credentials_t credentials = {bedrock.access_key_id, bedrock.secret_access_key};
    cr_assert_eq(sigv4_sign(&signing, &credentials, &expected), 0);
    cr_assert_str_eq(authorization, expected.data);
    cr_assert_not_null(strstr(authorization, "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token"));
    buf_free(&expected);
    harness_call_free(&call);
    harness_request_free(request);
}

Test(providers_bedrock, api_key_goes_as_bearer_and_stream_uses_converse_stream)
{
    provider_config_t keyed = bedrock;
    keyed.api_key = "bedrock-api-key";
    request_t *request = harness_request(&keyed, "us.amazon.nova-lite-v1:0",
                                         "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    provider_call_t call = {0};
    cr_assert_eq(provider_bedrock.build_call(request, &call), 0);
    cr_assert_str_eq(call.url, "https://bedrock-runtime.us-west-2.amazonaws.com/model/us.amazon.nova-lite-v1%3A0/"
                               "converse-stream");
    cr_assert_str_eq(harness_call_header(&call, "Authorization"), "Bearer bedrock-api-key");
    cr_assert_null(harness_call_header(&call, "X-Amz-Date"));
    harness_call_free(&call);
    harness_request_free(request);
}

Test(providers_bedrock, complete_answer_and_errors)
{
    request_t *request = harness_request(&bedrock, "x", "{\"model\":\"smart\",\"messages\":[]}");
    const char *reply =
        "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"text\":\"Sure.\"},{\"toolUse\":{\"toolUseId\":"
        "\"tooluse_1\",\"name\":\"f\",\"input\":{\"a\":1}}}]}},\"stopReason\":\"tool_use\",\"usage\":{\"inputTokens\":"
        "10,\"outputTokens\":5,\"totalTokens\":15,\"cacheReadInputTokens\":4}}";
    json_t *completion = harness_translated(&provider_bedrock, request, reply);
    json_object_del(completion, "id");
    harness_assert_json_eq(completion,
                   "{\"object\":\"chat.completion\",\"model\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                   "\"assistant\",\"content\":\"Sure.\",\"refusal\":null,\"tool_calls\":[{\"id\":\"tooluse_1\",\"type\":"
                   "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]},\"logprobs\":null,"
                   "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":14,\"completion_tokens\":5,"
                   "\"total_tokens\":19,\"prompt_tokens_details\":{\"cached_tokens\":4},\"completion_tokens_details\":"
                   "{\"reasoning_tokens\":0}}}");
    json_decref(completion);
    provider_error_t error = {0};
    const char *throttled = "{\"message\":\"Too many requests, please wait before trying again.\"}";
    provider_bedrock.translate_error(request, 429, throttled, strlen(throttled), &error);
    cr_assert_eq(error.status, 429);
    cr_assert_str_eq(error.type, "rate_limit_error");
    cr_assert_not_null(strstr(error.message, "Too many requests"));
    harness_request_free(request);
}

/* A ConverseStream answer as Bedrock frames it: text without contentBlockStart,
 * a toolUse block, random "p" padding, messageStop, then metadata. */
static void converse_stream(buf_t *stream, bool with_exception)
{
    struct {
        const char *type;
        const char *payload;
    } events[] = {
        {"messageStart", "{\"role\":\"assistant\",\"p\":\"abcdefgh\"}"},
        {"contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Let me \"},\"p\":\"abcd\"}"},
        {"contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"check.\"},\"p\":\"ab\"}"},
        {"contentBlockStop", "{\"contentBlockIndex\":0,\"p\":\"abcdefghijk\"}"},
        {"contentBlockStart", "{\"contentBlockIndex\":1,\"start\":{\"toolUse\":{\"toolUseId\":\"tooluse_X\",\"name\":"
                              "\"get_weather\"}},\"p\":\"a\"}"},
        {"contentBlockDelta", "{\"contentBlockIndex\":1,\"delta\":{\"toolUse\":{\"input\":\"{\\\"city\\\":\"}},\"p\":\"ab\"}"},
        {"contentBlockDelta", "{\"contentBlockIndex\":1,\"delta\":{\"toolUse\":{\"input\":\"\\\"Paris\\\"}\"}},\"p\":\"a\"}"},
        {"contentBlockStop", "{\"contentBlockIndex\":1,\"p\":\"abc\"}"},
        {"messageStop", "{\"stopReason\":\"tool_use\",\"p\":\"abcdef\"}"},
        {"metadata", "{\"usage\":{\"inputTokens\":20,\"outputTokens\":9,\"totalTokens\":29},\"metrics\":{\"latencyMs\":"
                     "300},\"p\":\"abcdefgh\"}"},
    };
    size_t count = with_exception ? 3 : sizeof events / sizeof events[0];
    for (size_t i = 0; i < count; i++) {
        eventstream_header_t headers[] = {
            {":event-type", events[i].type}, {":content-type", "application/json"}, {":message-type", "event"}};
        cr_assert_eq(eventstream_encode(stream, headers, 3, events[i].payload, strlen(events[i].payload)), 0);
    }
    if (with_exception) {
        eventstream_header_t headers[] = {{":exception-type", "throttlingException"},
                                          {":content-type", "application/json"},
                                          {":message-type", "exception"}};
        const char *payload = "{\"message\":\"Too many tokens, please wait before trying again.\"}";
        cr_assert_eq(eventstream_encode(stream, headers, 3, payload, strlen(payload)), 0);
    }
}

Test(providers_bedrock, converse_stream_at_every_cut)
{
    buf_t stream;
    buf_init(&stream);
    converse_stream(&stream, false);
    request_t *request = harness_request(&bedrock, "x",
                                         "{\"model\":\"smart\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                                         "\"messages\":[]}");
    harness_stream_t run;
    char *output = harness_run_every_cut(request, &provider_bedrock, stream.data, stream.length, &run);
    cr_assert(run.is_done && !run.is_error);
    harness_summary_t summary;
    harness_summarise(output, &summary);
    cr_assert(summary.has_role && summary.has_done && summary.has_usage);
    cr_assert_str_eq(summary.content, "Let me check.");
    cr_assert_eq(summary.tool_count, 1, "block 1 is tool call 0");
    cr_assert_str_eq(summary.tool_ids[0], "tooluse_X");
    cr_assert_str_eq(summary.tool_names[0], "get_weather");
    cr_assert_str_eq(summary.tool_arguments[0], "{\"city\":\"Paris\"}");
    cr_assert_str_eq(summary.finish_reason, "tool_calls");
    cr_assert_eq(summary.prompt_tokens, 20);
    cr_assert_eq(summary.completion_tokens, 9);
    free(output);
    buf_free(&stream);
    harness_request_free(request);
}

Test(providers_bedrock, exception_frame_becomes_openai_error)
{
    buf_t stream;
    buf_init(&stream);
    converse_stream(&stream, true);
    request_t *request = harness_request(&bedrock, "x", "{\"model\":\"smart\",\"stream\":true,\"messages\":[]}");
    harness_stream_t run;
    char *output = harness_run_every_cut(request, &provider_bedrock, stream.data, stream.length, &run);
    cr_assert(run.is_error && !run.is_done);
    harness_summary_t summary;
    harness_summarise(output, &summary);
    cr_assert_str_eq(summary.content, "Let me check.");
    cr_assert(summary.has_error && !summary.has_done);
    cr_assert_str_eq(summary.error_type, "rate_limit_error");
    free(output);
    buf_free(&stream);
    harness_request_free(request);
}

Test(providers_bedrock, corrupt_frame_fails_and_truncated_stream_errors)
{
    buf_t stream;
    buf_init(&stream);
    converse_stream(&stream, false);
    request_t *request = harness_request(&bedrock, "x", "{\"model\":\"smart\",\"stream\":true,\"messages\":[]}");
    stream.data[stream.length - 1] ^= 1; /* the last frame's message CRC */
    harness_stream_t run;
    char *output = harness_run_stream(request, &provider_bedrock, stream.data, stream.length, NULL, 0, &run);
    cr_assert(run.is_failed);
    free(output);
    output = harness_run_stream(request, &provider_bedrock, stream.data, stream.length / 2, NULL, 0, &run);
    cr_assert(run.is_error, "a stream cut mid-message ends with an error event");
    free(output);
    buf_free(&stream);
    harness_request_free(request);
}

/* ---- Azure --------------------------------------------------------------------- */

Test(providers_azure, deployment_url_and_api_key_header)
{
    provider_config_t azure = {.name = "az", .type = PROVIDER_AZURE, .base_url = "https://res.openai.azure.com",
                               .api_key = "azure-key", .api_version = "2024-10-21"};
    request_t *request = harness_request(&azure, "gpt-4o deploy",
                                         "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    provider_call_t call = {0};
    cr_assert_eq(provider_azure.build_call(request, &call), 0);
    cr_assert_str_eq(call.url, "https://res.openai.azure.com/openai/deployments/gpt-4o%20deploy/chat/completions"
                               "?api-version=2024-10-21");
    cr_assert_str_eq(harness_call_header(&call, "api-key"), "azure-key");
    cr_assert_null(harness_call_header(&call, "Authorization"));
    json_t *sent = json_loadb(call.body, call.body_length, 0, NULL);
    cr_assert(json_is_true(json_object_get(json_object_get(sent, "stream_options"), "include_usage")));
    json_decref(sent);
    harness_call_free(&call);
    request->endpoint = ENDPOINT_EMBEDDINGS;
    cr_assert_eq(provider_azure.build_call(request, &call), 0);
    cr_assert_str_eq(call.url, "https://res.openai.azure.com/openai/deployments/gpt-4o%20deploy/embeddings"
                               "?api-version=2024-10-21");
    harness_call_free(&call);
    harness_request_free(request);
}

Test(providers_azure, v1_base_url_is_openai_shaped)
{
    provider_config_t azure = {.name = "az", .type = PROVIDER_AZURE, .base_url = "https://res.openai.azure.com/openai/v1",
                               .api_key = "azure-key", .api_version = "2024-10-21"};
    request_t *request = harness_request(&azure, "my-deployment",
                                         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    provider_call_t call = {0};
    cr_assert_eq(provider_azure.build_call(request, &call), 0);
    cr_assert_str_eq(call.url, "https://res.openai.azure.com/openai/v1/chat/completions");
    json_t *sent = json_loadb(call.body, call.body_length, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(sent, "model")), "my-deployment");
    json_decref(sent);
    const char *gateway_error = "{\"statusCode\":401,\"message\":\"Access denied due to invalid subscription key.\"}";
    provider_error_t error = {0};
    provider_azure.translate_error(request, 401, gateway_error, strlen(gateway_error), &error);
    cr_assert_eq(error.status, 401);
    cr_assert_str_eq(error.message, "Access denied due to invalid subscription key.");
    harness_call_free(&call);
    harness_request_free(request);
}

/* The error kind comes from the x-amzn-errortype header (text before ':'),
 * else the body's __type; it is error.code and, when known, sets the type. */
Test(providers_bedrock, error_kind_from_the_errortype_header)
{
    request_t *request = harness_request(&bedrock, "m", "{\"model\":\"m\",\"messages\":[]}");
    static const struct {
        long status;
        const char *header, *body, *code, *type;
    } cases[] = {
        {429, "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
         "{\"message\":\"Too many requests\"}", "ThrottlingException", "rate_limit_error"},
        {400, "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
         "{\"message\":\"bad input\"}", "ValidationException", "invalid_request_error"},
        {404, "ResourceNotFoundException:http://internal.amazon.com/coral/com.amazon.bedrock/",
         "{\"message\":\"no such model\"}", "ResourceNotFoundException", "not_found_error"},
        {408, "ModelTimeoutException", "{\"message\":\"slow\"}", "ModelTimeoutException", "api_error"},
        {403, "UnrecognizedClientException:http://internal.amazon.com/coral/com.amazon.coral.service/",
         "{\"message\":\"bad token\"}", "UnrecognizedClientException", "permission_error"},
        {400, NULL, "{\"__type\":\"com.amazon.coral.validate#ValidationException\",\"message\":\"x\"}",
         "ValidationException", "invalid_request_error"},
        {500, NULL, "{\"message\":\"boom\"}", NULL, "api_error"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        provider_reply_headers_t headers = {.error_type = cases[i].header};
        provider_error_t error = {.reply_headers = &headers};
        provider_bedrock.translate_error(request, cases[i].status, cases[i].body, strlen(cases[i].body), &error);
        cr_assert_eq(error.status, cases[i].status);
        cr_assert_str_eq(error.type, cases[i].type, "case %zu", i);
        if (cases[i].code == NULL)
            cr_assert_null(error.code, "case %zu", i);
        else
            cr_assert_str_eq(error.code, cases[i].code, "case %zu", i);
    }
    provider_error_t without_headers = {0};
    const char *body = "{\"message\":\"slow down\"}";
    provider_bedrock.translate_error(request, 429, body, strlen(body), &without_headers);
    cr_assert_null(without_headers.code);
    cr_assert_str_eq(without_headers.type, "rate_limit_error");
    harness_request_free(request);
}
