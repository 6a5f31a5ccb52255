/* fuzz_parse.c — libFuzzer target for the parse stage's checks.
 *
 * Input: byte 0 picks the endpoint, byte 1 a depth limit, the rest is the
 * request body. The body goes through what parse_on_request does with it —
 * parse_json_too_deep, json_loadb, parse_validate — and two properties are
 * checked besides memory safety: on valid JSON the bracket counter agrees
 * exactly with the parsed tree's depth, and a rejection always names a
 * parameter. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/parse.h"

static int json_depth(const json_t *value)
{
    int deepest = 0;
    if (json_is_object(value)) {
        const char *key;
        const json_t *member;
        json_object_foreach((json_t *)value, key, member)
        {
            int depth = json_depth(member);
            deepest = depth > deepest ? depth : deepest;
        }
        return deepest + 1;
    }
    if (json_is_array(value)) {
        size_t index;
        const json_t *item;
        json_array_foreach(value, index, item)
        {
            int depth = json_depth(item);
            deepest = depth > deepest ? depth : deepest;
        }
        return deepest + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    endpoint_t endpoint = (endpoint_t)(data[0] % 5);
    int max_depth = data[1] % 80;
    const char *text = (const char *)data + 2;
    size_t length = size - 2;

    bool is_too_deep = parse_json_too_deep(text, length, max_depth);
    bool is_too_deep_for_stage = parse_json_too_deep(text, length, 64);

    json_error_t error;
    json_t *body = json_loadb(text, length, JSON_REJECT_DUPLICATES, &error);
    if (body == NULL)
        return 0;
    if (is_too_deep != (json_depth(body) > max_depth))
        abort(); /* the pre-parser check disagrees with the real nesting */
    if (!is_too_deep_for_stage) {
        char message[256], param[96];
        memset(param, 0x7f, sizeof param);
        if (parse_validate(endpoint, body, message, sizeof message, param, sizeof param) != 0) {
            if (memchr(param, '\0', sizeof param) == NULL || param[0] == '\0')
                abort(); /* a rejection must name its parameter */
            if (memchr(message, '\0', sizeof message) == NULL)
                abort();
        }
    }
    json_decref(body);
    return 0;
}
