/* usage.c — token counts from provider responses and their price. */
#include "sluice/usage.h"

#include "sluice/util/json_scan.h"

static long integer_member(const json_t *object, const char *name)
{
    const json_t *value = json_object_get(object, name);
    return json_is_integer(value) ? (long)json_integer_value(value) : 0;
}

void usage_from_openai(const json_t *usage_object, usage_t *usage)
{
    if (!json_is_object(usage_object))
        return;
    usage->is_known = true;
    usage->prompt_tokens = integer_member(usage_object, "prompt_tokens");
    usage->completion_tokens = integer_member(usage_object, "completion_tokens");
    usage->cached_tokens = integer_member(json_object_get(usage_object, "prompt_tokens_details"), "cached_tokens");
    usage->reasoning_tokens =
        integer_member(json_object_get(usage_object, "completion_tokens_details"), "reasoning_tokens");
}

/* An integer member's value as integer_member reads it: 0 unless an integer. */
static long integer_text(json_scan_value_t value)
{
    long long integer = 0;
    return json_scan_integer(value, &integer) ? (long)integer : 0;
}

/* The details object's one counter; -1 when it cannot be read cheaply. */
static int detail_text(json_scan_value_t details, const char *name, long *count)
{
    *count = 0;
    if (details.text == NULL || details.text[0] != '{')
        return 0; /* absent or not an object: integer_member gives 0 too */
    json_scan_value_t value;
    int scan = json_scan_members(details.text, details.length, 1, &name, &value);
    if (scan != JSON_SCAN_OK)
        return -1;
    *count = integer_text(value);
    return 0;
}

int usage_from_openai_text(const char *text, size_t length, usage_t *usage)
{
    if (text == NULL || length == 0 || text[0] != '{')
        return 0; /* not an object: usage_from_openai ignores it too */
    static const char *const keys[] = {"prompt_tokens", "completion_tokens", "prompt_tokens_details",
                                       "completion_tokens_details"};
    json_scan_value_t values[4];
    long cached = 0, reasoning = 0;
    if (json_scan_members(text, length, 4, keys, values) != JSON_SCAN_OK ||
        detail_text(values[2], "cached_tokens", &cached) != 0 ||
        detail_text(values[3], "reasoning_tokens", &reasoning) != 0)
        return -1;
    usage->is_known = true;
    usage->prompt_tokens = integer_text(values[0]);
    usage->completion_tokens = integer_text(values[1]);
    usage->cached_tokens = cached;
    usage->reasoning_tokens = reasoning;
    return 0;
}

double usage_cost_usd(const config_t *config, const char *model, const usage_t *usage, bool *is_priced)
{
    const price_config_t *price = model ? config_find_price(config, model) : NULL;
    *is_priced = price != NULL && usage->is_known;
    if (!*is_priced)
        return 0.0;
    return ((double)usage->prompt_tokens * price->input_per_million +
            (double)usage->completion_tokens * price->output_per_million) /
           1e6;
}
