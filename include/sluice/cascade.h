/* cascade.h — the checks a cascade route applies to an answer before it is
 * accepted; a failing answer escalates to the next (costlier) tier. */
#ifndef SLUICE_CASCADE_H
#define SLUICE_CASCADE_H

#include <jansson.h>

#include "sluice/config.h"

/* Checks an OpenAI chat.completion against the model's checks. Returns NULL
 * when all pass, else a short static reason such as "json" or "min_length".
 * request_body supplies response_format for the json_schema check. */
const char *cascade_failed_check(const model_config_t *model, const json_t *request_body, const json_t *response);

/* A small JSON Schema validator (type, properties, required, items, enum,
 * minimum/maximum, minLength/maxLength, additionalProperties: false). Returns
 * true when value satisfies schema; unknown keywords are ignored. */
bool cascade_schema_valid(const json_t *schema, const json_t *value, int depth);

#endif
