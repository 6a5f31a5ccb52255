/* test_parse.c — request body checks (include/sluice/parse.h).
 *
 * parse_json_too_deep guards the JSON parser, so its limit is checked at
 * exactly N and N+1 levels. parse_validate must name the offending parameter
 * the way OpenAI does ("messages[1].role"), because SDKs show that path to
 * the developer; every invalid body below asserts that exact path. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/parse.h"
#include "leak_check.h"

TestSuite(parse_depth, .fini = unit_leak_check);
TestSuite(parse_validate, .fini = unit_leak_check);

/* ---- parse_json_too_deep ------------------------------------------------ */

static bool too_deep(const char *text, int max_depth) { return parse_json_too_deep(text, strlen(text), max_depth); }

/* Returns "[[[...]]]" nested depth times (malloc'ed). */
static char *nested_arrays(int depth)
{
    char *text = malloc(2 * (size_t)depth + 1);
    memset(text, '[', (size_t)depth);
    memset(text + depth, ']', (size_t)depth);
    text[2 * depth] = '\0';
    return text;
}

Test(parse_depth, exact_limit)
{
    cr_expect_not(too_deep("[[[]]]", 3));
    cr_expect(too_deep("[[[]]]", 2));
    cr_expect_not(too_deep("{\"a\":{\"b\":[1]}}", 3));
    cr_expect(too_deep("{\"a\":{\"b\":[1]}}", 2));
    cr_expect_not(too_deep("{}", 1));
    cr_expect(too_deep("{}", 0));
    cr_expect_not(too_deep("42", 0));
    cr_expect_not(too_deep("", 0));
}

Test(parse_depth, generated_depths)
{
    int depths[] = {1, 2, 63, 64, 65, 1000};
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        char *text = nested_arrays(depths[i]);
        cr_expect_not(too_deep(text, depths[i]), "depth %d with limit %d", depths[i], depths[i]);
        cr_expect(too_deep(text, depths[i] - 1), "depth %d with limit %d", depths[i], depths[i] - 1);
        free(text);
    }
}

Test(parse_depth, siblings_do_not_add_up)
{
    cr_expect_not(too_deep("[[],[],[],{},{\"a\":[]}]", 3));
    cr_expect_not(too_deep("[[1],[2],[3],[4],[5],[6]]", 2));
    cr_expect(too_deep("[[1],[2],[[3]]]", 2));
}

Test(parse_depth, brackets_inside_strings_are_ignored)
{
    cr_expect_not(too_deep("{\"a\":\"[[[[[[{{{{{\"}", 1));
    cr_expect_not(too_deep("[\"]]]]\",\"[[[[\"]", 1));
    cr_expect_not(too_deep("{\"[[[[\":1}", 1), "keys are strings too");
}

Test(parse_depth, escaped_quotes_do_not_end_strings)
{
    /* The string is  "[[[[  — the \" inside does not close it. */
    cr_expect_not(too_deep("{\"a\":\"\\\"[[[[\"}", 1));
    cr_expect_not(too_deep("[\"\\\"\",\"\\\"[[[\\\"\"]", 1));
    /* A string ending in an escaped backslash does end at the next quote. */
    const char *text = "{\"a\":\"\\\\\",\"b\":[[[]]]}";
    cr_expect_not(too_deep(text, 4));
    cr_expect(too_deep(text, 3), "after \"\\\\\" the brackets count again");
    /* \u escapes are just characters. */
    cr_expect_not(too_deep("[\"\\u005b\\u005b\"]", 1));
}

Test(parse_depth, only_length_bytes_are_read)
{
    cr_expect_not(parse_json_too_deep("[[[[", 1, 1));
    cr_expect(parse_json_too_deep("[[[[", 2, 1));
}

/* ---- parse_validate ----------------------------------------------------- */

static int validate(endpoint_t endpoint, const char *body_text, char *param, size_t param_size, char *message,
                    size_t message_size)
{
    json_error_t error;
    json_t *body = json_loads(body_text, JSON_DECODE_ANY, &error);
    cr_assert_not_null(body, "test body is not JSON: %s: %s", error.text, body_text);
    strcpy(param, "(unset)");
    strcpy(message, "(unset)");
    int rc = parse_validate(endpoint, body, message, message_size, param, param_size);
    json_decref(body);
    return rc;
}

static void assert_valid(endpoint_t endpoint, const char *body_text)
{
    char param[96], message[256];
    int rc = validate(endpoint, body_text, param, sizeof param, message, sizeof message);
    cr_assert_eq(rc, 0, "rejected (%s: %s):\n%s", param, message, body_text);
}

static void assert_invalid(endpoint_t endpoint, const char *body_text, const char *expected_param)
{
    char param[96], message[256];
    int rc = validate(endpoint, body_text, param, sizeof param, message, sizeof message);
    cr_assert_eq(rc, -1, "accepted:\n%s", body_text);
    cr_assert_str_eq(param, expected_param, "wrong param for:\n%s\n(message: %s)", body_text, message);
    cr_assert(strstr(message, expected_param) != NULL || strcmp(expected_param, "body") == 0,
              "the message \"%s\" does not name %s", message, expected_param);
}

#define CHAT ENDPOINT_CHAT_COMPLETIONS
#define USER_MESSAGE "{\"role\":\"user\",\"content\":\"hi\"}"
/* A valid chat body with extra members spliced in after messages. */
#define CHAT_WITH(extra) "{\"model\":\"gpt-4o\",\"messages\":[" USER_MESSAGE "]" extra "}"

Test(parse_validate, valid_chat_bodies)
{
    assert_valid(CHAT, CHAT_WITH(""));
    assert_valid(CHAT, "{\"model\":\"gpt-4o\","
                       "\"messages\":["
                       "{\"role\":\"system\",\"content\":\"be brief\"},"
                       "{\"role\":\"developer\",\"content\":\"really\"},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"},"
                       "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}]},"
                       "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":"
                       "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                       "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"42\"}],"
                       "\"temperature\":2,\"top_p\":0,\"n\":128,\"max_tokens\":1,\"max_completion_tokens\":100,"
                       "\"presence_penalty\":-2,\"frequency_penalty\":2.0,\"seed\":-7,"
                       "\"stream\":true,\"stream_options\":{\"include_usage\":false},"
                       "\"stop\":[\"a\",\"b\",\"c\",\"d\"],\"user\":\"u-1\",\"metadata\":{\"k\":\"v\"},"
                       "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}],"
                       "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}},"
                       "\"response_format\":{\"type\":\"json_object\"},\"logprobs\":true}");
    assert_valid(CHAT, CHAT_WITH(",\"temperature\":null,\"stop\":null,\"tools\":null,\"stream\":false"));
    assert_valid(CHAT, CHAT_WITH(",\"stop\":\"END\",\"tool_choice\":\"auto\",\"temperature\":0"));
    assert_valid(CHAT, CHAT_WITH(",\"stream_options\":{}"));
}

Test(parse_validate, body_and_model)
{
    assert_invalid(CHAT, "[]", "body");
    assert_invalid(CHAT, "\"text\"", "body");
    assert_invalid(CHAT, "{\"messages\":[" USER_MESSAGE "]}", "model");
    assert_invalid(CHAT, "{\"model\":5,\"messages\":[" USER_MESSAGE "]}", "model");
    assert_invalid(CHAT, "{\"model\":null,\"messages\":[" USER_MESSAGE "]}", "model");
    assert_invalid(CHAT, "{\"model\":\"\",\"messages\":[" USER_MESSAGE "]}", "model");
    assert_invalid(CHAT, "{\"model\":[\"gpt-4o\"],\"messages\":[" USER_MESSAGE "]}", "model");
    assert_invalid(ENDPOINT_COMPLETIONS, "{\"prompt\":\"x\"}", "model");
    assert_invalid(ENDPOINT_EMBEDDINGS, "{\"input\":\"x\"}", "model");
}

Test(parse_validate, exact_messages)
{
    char param[96], message[256];
    cr_assert_eq(validate(CHAT, "{\"messages\":[]}", param, sizeof param, message, sizeof message), -1);
    cr_expect_str_eq(message, "'model' is a required property");
    cr_assert_eq(validate(CHAT, CHAT_WITH(",\"temperature\":3"), param, sizeof param, message, sizeof message), -1);
    cr_expect_str_eq(message, "'temperature' must be between 0 and 2");
    cr_assert_eq(validate(CHAT, CHAT_WITH(",\"n\":0"), param, sizeof param, message, sizeof message), -1);
    cr_expect_str_eq(message, "'n' must be between 1 and 128");
    cr_assert_eq(validate(CHAT, "7", param, sizeof param, message, sizeof message), -1);
    cr_expect_str_eq(message, "the request body must be a JSON object");
}

Test(parse_validate, messages)
{
    assert_invalid(CHAT, "{\"model\":\"m\"}", "messages");
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":[]}", "messages");
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":\"hi\"}", "messages");
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":{\"role\":\"user\"}}", "messages");
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":null}", "messages");
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":[\"hi\"]}", "messages[0]");
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":[" USER_MESSAGE ",null]}", "messages[1]");
}

Test(parse_validate, message_roles)
{
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":[" USER_MESSAGE ",{\"role\":\"wizard\",\"content\":\"x\"}]}",
                   "messages[1].role");
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":[" USER_MESSAGE ",{\"content\":\"x\"}]}", "messages[1].role");
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":7,\"content\":\"x\"}]}", "messages[0].role");
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"User\",\"content\":\"x\"}]}", "messages[0].role");
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"\",\"content\":\"x\"}]}", "messages[0].role");
}

Test(parse_validate, tool_message_needs_tool_call_id)
{
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":[" USER_MESSAGE ",{\"role\":\"tool\",\"content\":\"42\"}]}",
                   "messages[1].tool_call_id");
    assert_invalid(CHAT,
                   "{\"model\":\"m\",\"messages\":[" USER_MESSAGE ",{\"role\":\"tool\",\"content\":\"42\","
                   "\"tool_call_id\":5}]}",
                   "messages[1].tool_call_id");
    assert_invalid(CHAT,
                   "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":{}}]}",
                   "messages[0].tool_calls");
}

Test(parse_validate, message_content_types)
{
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages[0].content");
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":{\"type\":\"text\"}}]}",
                   "messages[0].content");
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":true}]}",
                   "messages[0].content");
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":[" USER_MESSAGE ",{\"role\":\"user\",\"content\":[5]}]}",
                   "messages[1].content");
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"no type\"}]}]}",
                   "messages[0].content");
    assert_invalid(CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":1}]}]}",
                   "messages[0].content");
}

Test(parse_validate, sampling_ranges_and_types)
{
    assert_invalid(CHAT, CHAT_WITH(",\"temperature\":2.5"), "temperature");
    assert_invalid(CHAT, CHAT_WITH(",\"temperature\":-0.1"), "temperature");
    assert_invalid(CHAT, CHAT_WITH(",\"temperature\":\"hot\""), "temperature");
    assert_invalid(CHAT, CHAT_WITH(",\"temperature\":true"), "temperature");
    assert_invalid(CHAT, CHAT_WITH(",\"top_p\":1.01"), "top_p");
    assert_invalid(CHAT, CHAT_WITH(",\"presence_penalty\":-2.5"), "presence_penalty");
    assert_invalid(CHAT, CHAT_WITH(",\"frequency_penalty\":\"0\""), "frequency_penalty");
    assert_invalid(CHAT, CHAT_WITH(",\"n\":0"), "n");
    assert_invalid(CHAT, CHAT_WITH(",\"n\":129"), "n");
    assert_invalid(CHAT, CHAT_WITH(",\"n\":1.5"), "n");
    assert_invalid(CHAT, CHAT_WITH(",\"n\":\"2\""), "n");
    assert_invalid(CHAT, CHAT_WITH(",\"max_tokens\":0"), "max_tokens");
    assert_invalid(CHAT, CHAT_WITH(",\"max_completion_tokens\":-1"), "max_completion_tokens");
    assert_invalid(CHAT, CHAT_WITH(",\"seed\":\"x\""), "seed");
    assert_invalid(CHAT, CHAT_WITH(",\"user\":42"), "user");
    assert_invalid(CHAT, CHAT_WITH(",\"metadata\":[]"), "metadata");
}

Test(parse_validate, stream_and_stream_options)
{
    assert_invalid(CHAT, CHAT_WITH(",\"stream\":\"true\""), "stream");
    assert_invalid(CHAT, CHAT_WITH(",\"stream\":1"), "stream");
    assert_invalid(CHAT, CHAT_WITH(",\"stream_options\":true"), "stream_options");
    assert_invalid(CHAT, CHAT_WITH(",\"stream\":true,\"stream_options\":{\"include_usage\":\"yes\"}"),
                   "stream_options.include_usage");
    assert_invalid(CHAT, CHAT_WITH(",\"stream\":true,\"stream_options\":{\"include_usage\":1}"),
                   "stream_options.include_usage");
    assert_invalid(CHAT, CHAT_WITH(",\"stream_options\":{\"include_usage\":null}"), "stream_options.include_usage");
}

Test(parse_validate, stop)
{
    assert_valid(CHAT, CHAT_WITH(",\"stop\":[]"));
    assert_invalid(CHAT, CHAT_WITH(",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]"), "stop");
    assert_invalid(CHAT, CHAT_WITH(",\"stop\":[\"a\",1]"), "stop");
    assert_invalid(CHAT, CHAT_WITH(",\"stop\":5"), "stop");
    assert_invalid(CHAT, CHAT_WITH(",\"stop\":{\"a\":\"b\"}"), "stop");
}

Test(parse_validate, tools)
{
    assert_invalid(CHAT, CHAT_WITH(",\"tools\":[{\"type\":\"function\"}]"), "tools[0].function.name");
    assert_invalid(CHAT, CHAT_WITH(",\"tools\":[{\"type\":\"function\",\"function\":{}}]"), "tools[0].function.name");
    assert_invalid(CHAT,
                   CHAT_WITH(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"ok\"}},"
                             "{\"type\":\"function\",\"function\":{\"name\":5}}]"),
                   "tools[1].function.name");
    assert_invalid(CHAT, CHAT_WITH(",\"tools\":[\"f\"]"), "tools[0].function.name");
    assert_invalid(CHAT, CHAT_WITH(",\"tools\":{}"), "tools");
    assert_invalid(CHAT, CHAT_WITH(",\"tools\":[],\"tool_choice\":5"), "tool_choice");
    assert_invalid(CHAT, CHAT_WITH(",\"tools\":[],\"response_format\":\"json\""), "response_format");
}

/* tool_choice and response_format are request fields of their own: a body
 * without "tools" must not skip their checks. */
Test(parse_validate, tool_choice_and_response_format_without_tools)
{
    assert_invalid(CHAT, CHAT_WITH(",\"response_format\":\"json\""), "response_format");
    assert_invalid(CHAT, CHAT_WITH(",\"tool_choice\":5"), "tool_choice");
}

Test(parse_validate, completions)
{
    const endpoint_t completions = ENDPOINT_COMPLETIONS;
    assert_valid(completions, "{\"model\":\"m\",\"prompt\":\"Say hi\"}");
    assert_valid(completions, "{\"model\":\"m\"}");
    assert_valid(completions, "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}");
    assert_valid(completions, "{\"model\":\"m\",\"prompt\":[1,2,3]}");
    assert_valid(completions, "{\"model\":\"m\",\"prompt\":[[1,2],[3]]}");
    assert_valid(completions, "{\"model\":\"m\",\"prompt\":\"x\",\"max_tokens\":16,\"stream\":true,\"echo\":true,"
                              "\"stream_options\":{\"include_usage\":true},\"stop\":\"\\n\"}");
    assert_invalid(completions, "{\"model\":\"m\",\"prompt\":5}", "prompt");
    assert_invalid(completions, "{\"model\":\"m\",\"prompt\":[]}", "prompt");
    assert_invalid(completions, "{\"model\":\"m\",\"prompt\":[{\"a\":1}]}", "prompt");
    assert_invalid(completions, "{\"model\":\"m\",\"prompt\":[[1,\"x\"]]}", "prompt");
    assert_invalid(completions, "{\"model\":\"m\",\"prompt\":\"x\",\"temperature\":3}", "temperature");
    assert_invalid(completions, "{\"model\":\"m\",\"prompt\":\"x\",\"stream\":\"no\"}", "stream");
    assert_invalid(completions, "{\"model\":\"m\",\"prompt\":\"x\",\"stream_options\":{\"include_usage\":0}}",
                   "stream_options.include_usage");
    /* messages are not a completions field: not checked. */
    assert_valid(completions, "{\"model\":\"m\",\"messages\":5}");
}

Test(parse_validate, embeddings)
{
    const endpoint_t embeddings = ENDPOINT_EMBEDDINGS;
    assert_valid(embeddings, "{\"model\":\"text-embedding-3-small\",\"input\":\"hello\"}");
    assert_valid(embeddings, "{\"model\":\"m\",\"input\":[\"a\",\"b\"],\"encoding_format\":\"float\"}");
    assert_valid(embeddings, "{\"model\":\"m\",\"input\":[1,2,3],\"encoding_format\":\"base64\",\"dimensions\":256}");
    assert_valid(embeddings, "{\"model\":\"m\",\"input\":[[1,2],[3]],\"user\":\"u\",\"encoding_format\":null}");
    assert_invalid(embeddings, "{\"model\":\"m\"}", "input");
    assert_invalid(embeddings, "{\"model\":\"m\",\"input\":null}", "input");
    assert_invalid(embeddings, "{\"model\":\"m\",\"input\":[]}", "input");
    assert_invalid(embeddings, "{\"model\":\"m\",\"input\":5}", "input");
    assert_invalid(embeddings, "{\"model\":\"m\",\"input\":[true]}", "input");
    assert_invalid(embeddings, "{\"model\":\"m\",\"input\":\"x\",\"encoding_format\":\"int8\"}", "encoding_format");
    assert_invalid(embeddings, "{\"model\":\"m\",\"input\":\"x\",\"encoding_format\":1}", "encoding_format");
    assert_invalid(embeddings, "{\"model\":\"m\",\"input\":\"x\",\"encoding_format\":\"\"}", "encoding_format");
    assert_invalid(embeddings, "{\"model\":\"m\",\"input\":\"x\",\"dimensions\":0}", "dimensions");
    assert_invalid(embeddings, "{\"model\":\"m\",\"input\":\"x\",\"user\":1}", "user");
}

Test(parse_validate, small_buffers_are_not_overrun)
{
    char param[8], message[16];
    const char *body = "{\"model\":\"m\",\"messages\":[" USER_MESSAGE ",{\"role\":\"tool\",\"content\":\"x\"}]}";
    cr_assert_eq(validate(CHAT, body, param, sizeof param, message, sizeof message), -1);
    cr_expect_str_eq(param, "message", "truncated, NUL-terminated");
    cr_expect_eq(strlen(message), sizeof message - 1);
}
