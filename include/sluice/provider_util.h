/* provider_util.h — small pieces the translating adapters share.
 *
 * Anthropic, Gemini and Bedrock all turn OpenAI chat requests into another
 * shape and their answers back; the pieces below are the ones each of them
 * would otherwise write again: header lines that hold secrets, data: URLs,
 * the OpenAI usage object, the sampling fields with several OpenAI spellings,
 * and the map from a provider's content-block index to OpenAI's tool-call
 * number. */
#ifndef SLUICE_PROVIDER_UTIL_H
#define SLUICE_PROVIDER_UTIL_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "sluice/request.h"
#include "sluice/usage.h"
#include "sluice/util/buf.h"

/* Appends "name: value" to *headers; the formatted copy is wiped after curl
 * copied it, since values may be credentials. On failure frees the whole list,
 * sets *headers to NULL and returns -1. A NULL *headers stays NULL (-1). */
int provider_header_append(struct curl_slist **headers, const char *name, const char *value);

/* The standard JSON call headers (content type, accept, no Expect) plus the
 * provider's extra_headers; NULL when out of memory. */
struct curl_slist *provider_json_headers(const provider_config_t *provider, bool is_event_stream);

/* Splits "data:<mime>;base64,<data>": *mime (arena) and *data (points into
 * url). Returns 0, or -1 when url is not a base64 data: URL. */
int provider_parse_data_url(request_t *request, const char *url, const char **mime, const char **data);

/* An OpenAI usage object for usage (new reference, NULL when out of memory). */
json_t *provider_usage_json(const usage_t *usage);

/* True when url's path ends with the segment version ("v1", "v1beta"), e.g.
 * a base_url already carrying the API version the adapter would add. */
bool provider_url_has_version(const char *url, const char *version);

/* max_completion_tokens, else max_tokens, else 0. */
long provider_max_tokens(const json_t *body);
/* "stop" as an array of strings (new reference), NULL when absent or empty. */
json_t *provider_stop_sequences(const json_t *body);
/* The URL of an image_url part (a string or {url}); NULL when absent. */
const char *provider_image_url(const json_t *part);

/* Maps a provider's content-block index to OpenAI's tool-call number. Owner:
 * the stream state that embeds it; release with provider_tool_map_free(). */
typedef struct provider_tool_map {
    int *tool_for_block; /* block index → tool number + 1; 0 = not a tool */
    size_t capacity;
    int tool_count;
} provider_tool_map_t;

/* Gives block the next tool number; returns it, or -1 (bad index, no memory). */
int provider_tool_map_add(provider_tool_map_t *map, long block);
/* The tool number of block, or -1 when block is not a tool. */
int provider_tool_map_get(const provider_tool_map_t *map, long block);
void provider_tool_map_free(provider_tool_map_t *map);

/* Integer member or 0. */
long provider_integer_member(const json_t *object, const char *name);

/* A stream step's result from a chunk writer's return code: PROVIDER_EVENT_OK,
 * or PROVIDER_EVENT_FAILED (out of memory). */
int provider_event_result(int rc);
/* Appends one SSE event "data: <data>\n\n" to out: PROVIDER_EVENT_OK, or
 * PROVIDER_EVENT_FAILED (out of memory). */
int provider_event_data(buf_t *out, const char *data, size_t length);
/* Ends a stream with an OpenAI error event in out: PROVIDER_EVENT_ERROR, or
 * PROVIDER_EVENT_FAILED when the event could not be written. */
int provider_event_error(buf_t *out, const char *type, const char *message);

#endif
