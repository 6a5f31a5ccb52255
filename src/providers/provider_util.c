/* provider_util.c — pieces shared by the translating adapters (see provider_util.h). */
#include "sluice/provider_util.h"

#include "sluice/openai_chunk.h"
#include "sluice/provider.h"

#include <stdlib.h>
#include <string.h>

#include "sluice/util/buf.h"

int provider_header_append(struct curl_slist **headers, const char *name, const char *value)
{
    if (*headers == NULL)
        return -1;
    buf_t line;
    buf_init(&line);
    struct curl_slist *grown = NULL;
    if (buf_printf(&line, "%s: %s", name, value ? value : "") == 0)
        grown = curl_slist_append(*headers, line.data);
    if (line.data != NULL)
        explicit_bzero(line.data, line.length); /* curl copied it; it may hold a credential */
    buf_free(&line);
    if (grown == NULL) {
        curl_slist_free_all(*headers);
        *headers = NULL;
        return -1;
    }
    *headers = grown;
    return 0;
}

struct curl_slist *provider_json_headers(const provider_config_t *provider, bool is_event_stream)
{
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    const char *accept = is_event_stream ? "Accept: text/event-stream" : "Accept: application/json";
    const char *lines[] = {accept, "Expect:"};
    for (size_t i = 0; headers != NULL && i < sizeof lines / sizeof lines[0]; i++) {
        struct curl_slist *grown = curl_slist_append(headers, lines[i]);
        if (grown == NULL)
            curl_slist_free_all(headers);
        headers = grown;
    }
    for (size_t i = 0; headers != NULL && i < provider->extra_header_count; i++) {
        struct curl_slist *grown = curl_slist_append(headers, provider->extra_headers[i]);
        if (grown == NULL)
            curl_slist_free_all(headers);
        headers = grown;
    }
    return headers;
}

int provider_parse_data_url(request_t *request, const char *url, const char **mime, const char **data)
{
    if (url == NULL || strncmp(url, "data:", 5) != 0)
        return -1;
    const char *marker = strstr(url, ";base64,");
    if (marker == NULL || marker == url + 5)
        return -1;
    /* parameters such as ";charset=" may sit between the type and ";base64" */
    const char *type_end = memchr(url + 5, ';', (size_t)(marker - (url + 5)) + 1);
    *mime = arena_strndup(&request->arena, url + 5, (size_t)(type_end - (url + 5)));
    *data = marker + 8;
    return *mime != NULL && **data != '\0' ? 0 : -1;
}

json_t *provider_usage_json(const usage_t *usage)
{
    return json_pack("{s:I, s:I, s:I, s:{s:I}, s:{s:I}}", "prompt_tokens", (json_int_t)usage->prompt_tokens,
                     "completion_tokens", (json_int_t)usage->completion_tokens, "total_tokens",
                     (json_int_t)(usage->prompt_tokens + usage->completion_tokens), "prompt_tokens_details",
                     "cached_tokens", (json_int_t)usage->cached_tokens, "completion_tokens_details",
                     "reasoning_tokens", (json_int_t)usage->reasoning_tokens);
}

bool provider_url_has_version(const char *url, const char *version)
{
    size_t url_length = url ? strlen(url) : 0;
    size_t version_length = strlen(version);
    if (url_length < version_length + 1)
        return false;
    const char *tail = url + url_length - version_length - 1;
    return tail[0] == '/' && memcmp(tail + 1, version, version_length) == 0;
}

long provider_integer_member(const json_t *object, const char *name)
{
    const json_t *value = json_object_get(object, name);
    return json_is_integer(value) ? (long)json_integer_value(value) : 0;
}

long provider_max_tokens(const json_t *body)
{
    long value = provider_integer_member(body, "max_completion_tokens");
    return value > 0 ? value : provider_integer_member(body, "max_tokens");
}

json_t *provider_stop_sequences(const json_t *body)
{
    const json_t *stop = json_object_get(body, "stop");
    if (json_is_string(stop))
        return json_pack("[O]", stop);
    if (json_is_array(stop) && json_array_size(stop) > 0)
        return json_deep_copy(stop);
    return NULL;
}

const char *provider_image_url(const json_t *part)
{
    const json_t *image = json_object_get(part, "image_url");
    return json_is_string(image) ? json_string_value(image) : json_string_value(json_object_get(image, "url"));
}

int provider_tool_map_add(provider_tool_map_t *map, long block)
{
    if (block < 0 || block > 65536)
        return -1;
    if ((size_t)block >= map->capacity) {
        size_t capacity = map->capacity ? map->capacity : 8;
        while (capacity <= (size_t)block)
            capacity *= 2;
        int *grown = realloc(map->tool_for_block, capacity * sizeof *grown);
        if (grown == NULL)
            return -1;
        memset(grown + map->capacity, 0, (capacity - map->capacity) * sizeof *grown);
        map->tool_for_block = grown;
        map->capacity = capacity;
    }
    if (map->tool_for_block[block] != 0)
        return map->tool_for_block[block] - 1; /* the same block started twice: keep its number */
    map->tool_for_block[block] = ++map->tool_count;
    return map->tool_count - 1;
}

int provider_tool_map_get(const provider_tool_map_t *map, long block)
{
    if (block < 0 || (size_t)block >= map->capacity)
        return -1;
    return map->tool_for_block[block] - 1;
}

void provider_tool_map_free(provider_tool_map_t *map)
{
    free(map->tool_for_block);
    map->tool_for_block = NULL;
    map->capacity = 0;
    map->tool_count = 0;
}

int provider_event_result(int rc) { return rc == 0 ? PROVIDER_EVENT_OK : PROVIDER_EVENT_FAILED; }

int provider_event_data(buf_t *out, const char *data, size_t length)
{
    int rc = buf_append(out, "data: ", 6);
    rc |= buf_append(out, data, length);
    rc |= buf_append(out, "\n\n", 2);
    return provider_event_result(rc);
}

int provider_event_error(buf_t *out, const char *type, const char *message)
{
    return openai_chunk_error(out, type, message) == 0 ? PROVIDER_EVENT_ERROR : PROVIDER_EVENT_FAILED;
}
