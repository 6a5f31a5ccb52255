/* test_json_scan.c — the allocation-free JSON checker (util/json_scan.h) must
 * accept exactly what jansson's json_loadb accepts as an object, and find the
 * same top-level member json_object_get would. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/util/json_scan.h"
#include "leak_check.h"

TestSuite(json_scan, .fini = unit_leak_check);

static const char reply[] =
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":\"gpt-4o-mini\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"h\\u00e9llo \\ud83d\\ude00 "
    "w\\u00f6rld\\n\\t\\\"q\\\" \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"},\"logprobs\":null,\"finish_reason\":"
    "\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":-3,\"total_tokens\":9,"
    "\"prompt_tokens_details\":{\"cached_tokens\":0},\"x\":[1.5e3,-0.25,true,false,null,[],{}]},"
    "\"system_fingerprint\":null}";

/* Checks one document against jansson; returns 1 when both accept it. */
static int agree(const char *text, size_t length)
{
    const char *value = NULL;
    size_t value_length = 0;
    int scan = json_scan_member(text, length, "usage", &value, &value_length);
    json_t *full = json_loadb(text, length, 0, NULL);
    bool is_valid = json_is_object(full);
    if (!is_valid) {
        cr_assert_eq(scan, JSON_SCAN_INVALID, "scanner accepted what jansson rejects: [%.*s]", (int)length, text);
    } else {
        cr_assert_neq(scan, JSON_SCAN_INVALID, "scanner rejected what jansson accepts: [%.*s]", (int)length, text);
        json_t *expected = json_object_get(full, "usage");
        if (scan == JSON_SCAN_OK) {
            if (expected == NULL) {
                cr_assert_null(value, "found a usage that is not there: [%.*s]", (int)length, text);
            } else {
                cr_assert_not_null(value, "missed the usage: [%.*s]", (int)length, text);
                json_t *found = json_loadb(value, value_length, JSON_DECODE_ANY, NULL);
                cr_assert(json_equal(found, expected), "wrong usage [%.*s] in [%.*s]", (int)value_length, value,
                          (int)length, text);
                json_decref(found);
            }
        }
    }
    json_decref(full);
    return is_valid;
}

static void agree_str(const char *text) { agree(text, strlen(text)); }

Test(json_scan, finds_the_usage_of_a_reply)
{
    const char *value = NULL;
    size_t value_length = 0;
    cr_assert_eq(json_scan_member(reply, strlen(reply), "usage", &value, &value_length), JSON_SCAN_OK);
    cr_assert_not_null(value);
    cr_assert_eq(value[0], '{');
    cr_assert_eq(value[value_length - 1], '}');
    cr_assert_eq(agree(reply, strlen(reply)), 1);
}

Test(json_scan, handpicked_documents_agree_with_jansson)
{
    static const char *const documents[] = {
        "{}", " {} ", "{ }", "[]", "\"x\"", "1", "null", "", " ", "{", "}", "{]", "{\"a\":1,}", "{\"a\":1 \"b\":2}",
        "{\"a\"}", "{\"a\":}", "{a:1}", "{\"a\":01}", "{\"a\":-0}", "{\"a\":-}", "{\"a\":1.}", "{\"a\":.5}",
        "{\"a\":1e}", "{\"a\":1e+}", "{\"a\":1E-2}", "{\"a\":1.5e308}", "{\"a\":1e309}", "{\"a\":-1e309}",
        "{\"a\":1e-400}", "{\"a\":9223372036854775807}", "{\"a\":9223372036854775808}",
        "{\"a\":-9223372036854775808}", "{\"a\":-9223372036854775809}", "{\"a\":12345678901234567890}",
        "{\"a\":tru}", "{\"a\":true}", "{\"a\":truex}", "{\"a\":True}", "{\"a\":nul}", "{\"a\":false1}",
        "{\"a\":\"\\u0000\"}", "{\"\\u0000\":1}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}",
        "{\"a\":\"\\ud800\\udc00\"}", "{\"a\":\"\\ud800\\u0041\"}", "{\"a\":\"\\ud800\\n\"}", "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12\"}", "{\"a\":\"\\u12g4\"}", "{\"a\":\"\\/\\b\\f\"}", "{\"a\":\"\t\"}", "{\"a\":\"\x7f\"}",
        "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\xe0\x80\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xf0\x90\x80\x80\"}", "{\"a\":\"\xff\"}", "{\"a\":1}x",
        "{\"a\":1} \n\r\t", "{\"a\":1}\f", "\xef\xbb\xbf{}", "{\"usage\":1,\"usage\":{\"prompt_tokens\":2}}",
        "{\"usage\":{\"prompt_tokens\":2},\"usage\":3}", "{\"x\":{\"usage\":{}}}", "{\"us\\u0061ge\":{}}",
        "{\"usage\" : { \"a\" : [ 1 , 2 ] } , \"b\":2}", "{\"usage\":[]}", "{\"usagex\":{}}", "{\"usag\":{}}",
        "{\"a\":[1,]}", "{\"a\":[,1]}", "{\"a\":[1 2]}", "{\"a\":{\"b\":{\"c\":[[[]]]}}}", "{\"a\":1}}",
        "{\"a\":\"b\"", "{\"a\":\"b", "{\"a\":\"b\\", "{\"a\":\"b\\u00",
    };
    for (size_t i = 0; i < sizeof documents / sizeof documents[0]; i++)
        agree_str(documents[i]);
    agree("{\"a\":\"\0\"}", 8);
    agree("{\"a\":1}\0", 8);
    agree("{\"a\":1,\0}", 9);
}

/* {"a":[[...inner...]]} with arrays arrays around inner, into text; returns the length. */
static size_t nested(char *text, size_t arrays, const char *inner)
{
    size_t n = (size_t)sprintf(text, "{\"a\":");
    for (size_t i = 0; i < arrays; i++)
        text[n++] = '[';
    n += (size_t)sprintf(text + n, "%s", inner);
    for (size_t i = 0; i < arrays; i++)
        text[n++] = ']';
    text[n++] = '}';
    return n;
}

Test(json_scan, nesting_depth_matches_jansson)
{
    static char text[2 * JSON_PARSER_MAX_DEPTH + 64];
    /* the object is level 1; with k arrays the innermost scalar is at level k + 2 */
    for (size_t arrays = JSON_PARSER_MAX_DEPTH - 4; arrays <= JSON_PARSER_MAX_DEPTH; arrays++) {
        agree(text, nested(text, arrays, "1"));
        agree(text, nested(text, arrays, "[]"));
        agree(text, nested(text, arrays, "{}"));
        agree(text, nested(text, arrays, ""));
    }
}

Test(json_scan, mutations_of_a_reply_agree_with_jansson)
{
    static const char alphabet[] = "{}[]:,\"\\u0123456789abcdefEe+-.tnrlsx \n\t\x01\x7f\xc3\xa9\xed\xf0\xff";
    size_t length = strlen(reply);
    char *text = malloc(length + 8);
    cr_assert_not_null(text);
    unsigned seed = 12345;
    int valid = 0;
    for (int round = 0; round < 20000; round++) {
        memcpy(text, reply, length);
        size_t n = length;
        int edits = 1 + round % 3;
        for (int e = 0; e < edits && n > 0; e++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % n;
            seed = seed * 1103515245u + 12345u;
            char c = alphabet[(seed >> 8) % (sizeof alphabet - 1)];
            switch ((seed >> 20) % 4) {
            case 0: text[at] = c; break;
            case 1: memmove(text + at, text + at + 1, n - at - 1); n--; break;
            case 2: memmove(text + at + 1, text + at, n - at); text[at] = c; n++; break;
            default: n = at + 1; break;
            }
        }
        valid += agree(text, n);
    }
    free(text);
    cr_assert_gt(valid, 100, "the mutations should leave some documents valid");
}
