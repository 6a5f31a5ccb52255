/* cascade.c — answer checks for cascade routing (see cascade.h). */
#include "sluice/cascade.h"

#include <regex.h>
#include <string.h>
#include <strings.h>

/* Phrases that mark a refusal rather than an answer. */
static const char *const refusal_phrases[] = {"i can't help with", "i cannot help with", "i'm sorry, but i can",
                                              "i am sorry, but i can", "i'm unable to", "i am unable to",
                                              "as an ai language model", "i can't assist", "i cannot assist", NULL};

static bool type_matches(const char *type, const json_t *value)
{
    if (strcmp(type, "object") == 0)
        return json_is_object(value);
    if (strcmp(type, "array") == 0)
        return json_is_array(value);
    if (strcmp(type, "string") == 0)
        return json_is_string(value);
    if (strcmp(type, "integer") == 0)
        return json_is_integer(value);
    if (strcmp(type, "number") == 0)
        return json_is_number(value);
    if (strcmp(type, "boolean") == 0)
        return json_is_boolean(value);
    if (strcmp(type, "null") == 0)
        return json_is_null(value);
    return true;
}

static bool type_valid(const json_t *type, const json_t *value)
{
    if (json_is_string(type))
        return type_matches(json_string_value(type), value);
    if (!json_is_array(type))
        return true;
    size_t index;
    const json_t *item;
    json_array_foreach(type, index, item) if (json_is_string(item) && type_matches(json_string_value(item), value))
        return true;
    return false;
}

static bool object_valid(const json_t *schema, const json_t *value, int depth)
{
    const json_t *properties = json_object_get(schema, "properties");
    size_t index;
    const json_t *name;
    json_array_foreach(json_object_get(schema, "required"), index, name)
        if (json_is_string(name) && json_object_get(value, json_string_value(name)) == NULL) return false;
    const char *key;
    const json_t *member;
    json_object_foreach((json_t *)value, key, member)
    {
        const json_t *property = json_object_get(properties, key);
        if (property != NULL && !cascade_schema_valid(property, member, depth + 1))
            return false;
        if (property == NULL && json_is_false(json_object_get(schema, "additionalProperties")))
            return false;
    }
    return true;
}

bool cascade_schema_valid(const json_t *schema, const json_t *value, int depth)
{
    if (!json_is_object(schema) || depth > 64)
        return true;
    if (!type_valid(json_object_get(schema, "type"), value))
        return false;
    const json_t *choices = json_object_get(schema, "enum");
    if (json_is_array(choices)) {
        bool found = false;
        size_t index;
        const json_t *choice;
        json_array_foreach(choices, index, choice) found |= json_equal(choice, value);
        if (!found)
            return false;
    }
    if (json_is_number(value)) {
        const json_t *minimum = json_object_get(schema, "minimum"), *maximum = json_object_get(schema, "maximum");
        if ((json_is_number(minimum) && json_number_value(value) < json_number_value(minimum)) ||
            (json_is_number(maximum) && json_number_value(value) > json_number_value(maximum)))
            return false;
    }
    if (json_is_string(value)) {
        const json_t *shortest = json_object_get(schema, "minLength"), *longest = json_object_get(schema, "maxLength");
        size_t length = json_string_length(value);
        if ((json_is_integer(shortest) && (json_int_t)length < json_integer_value(shortest)) ||
            (json_is_integer(longest) && (json_int_t)length > json_integer_value(longest)))
            return false;
    }
    if (json_is_object(value))
        return object_valid(schema, value, depth);
    if (json_is_array(value)) {
        const json_t *items = json_object_get(schema, "items");
        size_t index;
        const json_t *item;
        json_array_foreach(value, index, item) if (!cascade_schema_valid(items, item, depth + 1)) return false;
    }
    return true;
}

static bool is_refusal(const char *content, const json_t *message)
{
    if (json_is_string(json_object_get(message, "refusal")))
        return true;
    for (size_t i = 0; refusal_phrases[i] != NULL; i++)
        if (strcasestr(content, refusal_phrases[i]) != NULL)
            return true;
    return false;
}

const char *cascade_failed_check(const model_config_t *model, const json_t *request_body, const json_t *response)
{
    const json_t *choice = json_array_get(json_object_get(response, "choices"), 0);
    const json_t *message = json_object_get(choice, "message");
    const char *content = json_string_value(json_object_get(message, "content"));
    const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
    if (content == NULL)
        content = "";
    for (size_t i = 0; i < model->check_count; i++) {
        const cascade_check_t *check = &model->checks[i];
        json_t *parsed = NULL;
        bool passed = true;
        switch (check->kind) {
        case CHECK_JSON:
        case CHECK_JSON_SCHEMA:
            parsed = json_loads(content, JSON_DECODE_ANY, NULL);
            passed = parsed != NULL;
            if (passed && check->kind == CHECK_JSON_SCHEMA) {
                const json_t *format = json_object_get(request_body, "response_format");
                const json_t *schema = json_object_get(json_object_get(format, "json_schema"), "schema");
                passed = cascade_schema_valid(schema, parsed, 0);
            }
            json_decref(parsed);
            break;
        case CHECK_REGEX: passed = regexec(check->compiled, content, 0, NULL, 0) == 0; break;
        case CHECK_MIN_LENGTH: passed = (long)strlen(content) >= check->min_length; break;
        case CHECK_FINISH_STOP: passed = finish != NULL && strcmp(finish, "stop") == 0; break;
        case CHECK_NO_REFUSAL: passed = !is_refusal(content, message); break;
        }
        if (!passed) {
            static const char *const names[] = {"json", "json_schema", "regex", "min_length", "finish_stop",
                                                "no_refusal"};
            return names[check->kind];
        }
    }
    return NULL;
}
