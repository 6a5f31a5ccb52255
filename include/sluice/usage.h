/* usage.h — token usage and its cost. */
#ifndef SLUICE_USAGE_H
#define SLUICE_USAGE_H

#include <jansson.h>
#include <stdbool.h>

#include "sluice/config.h"

typedef struct usage {
    bool is_known;
    bool is_estimated; /* counted by Sluice (compat_presets.h), not reported by the provider */
    long prompt_tokens;
    long completion_tokens;
    long cached_tokens;
    long reasoning_tokens;
} usage_t;

/* Reads an OpenAI "usage" object; leaves usage unchanged when it is not one. */
void usage_from_openai(const json_t *usage_object, usage_t *usage);
/* The same from the raw text of a usage value in a document json_scan
 * accepted (see util/json_scan.h), without building it; returns -1, leaving
 * usage unchanged, when it cannot decide cheaply (escaped keys): parse then. */
int usage_from_openai_text(const char *text, size_t length, usage_t *usage);
/* USD for usage at the model's configured price; sets *is_priced. */
double usage_cost_usd(const config_t *config, const char *model, const usage_t *usage, bool *is_priced);

#endif
