/* usage.c — token counts from provider responses and their price. */
#include "sluice/usage.h"

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
