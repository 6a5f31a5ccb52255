/* parse.h — request body checks shared by the parse stage and its tests. */
#ifndef SLUICE_PARSE_H
#define SLUICE_PARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "sluice/request.h"

/* True when the JSON text nests arrays/objects deeper than max_depth. Runs in
 * one pass before the JSON parser so a hostile body cannot make it recurse. */
bool parse_json_too_deep(const char *text, size_t length, int max_depth);

/* Checks the fields of a parsed body for an endpoint. Returns 0, or -1 with a
 * message (size bytes) and the offending parameter's path in param. */
int parse_validate(endpoint_t endpoint, const json_t *body, char *message, size_t size, char *param,
                   size_t param_size);

#endif
