/* admin_cache.c — the cache admin API (see admin_cache.h).
 *
 * Authentication is the API's own: a configured key with admin: true, sent
 * as a bearer token. Without keys configured there is no admin key, so the
 * API answers 403: invalidating a shared cache is never open to anyone. */
#include "sluice/admin_cache.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sluice/cache.h"
#include "sluice/embed.h"
#include "sluice/log.h"
#include "sluice/store_redis.h"
#include "sluice/worker.h"

enum { ADMIN_MAX_BODY = 1 << 20 };

static void reply(struct evhttp_request *http, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    struct evbuffer *buffer = evbuffer_new();
    if (text == NULL || buffer == NULL || evbuffer_add(buffer, text, strlen(text)) != 0) {
        evhttp_send_error(http, 500, NULL);
    } else {
        evhttp_add_header(evhttp_request_get_output_headers(http), "content-type", "application/json");
        evhttp_send_reply(http, status, NULL, buffer);
    }
    if (buffer != NULL)
        evbuffer_free(buffer);
    free(text);
}

static void reply_error(struct evhttp_request *http, int status, const char *type, const char *code,
                        const char *message)
{
    reply(http, status, json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", message, "type", type, "param",
                                  "code", code));
}

/* The admin key presented, or NULL after replying 401/403. */
static const key_config_t *authenticate(struct evhttp_request *http, const config_t *config)
{
    const char *value = evhttp_find_header(evhttp_request_get_input_headers(http), "authorization");
    if (value != NULL) {
        while (*value == ' ')
            value++;
        value = strncasecmp(value, "bearer ", 7) == 0 ? value + 7 : NULL;
    }
    while (value != NULL && *value == ' ')
        value++;
    if (value == NULL || *value == '\0') {
        reply_error(http, 401, "invalid_request_error", "invalid_api_key", "an admin key is required");
        return NULL;
    }
    size_t length = strlen(value);
    while (length > 0 && value[length - 1] == ' ')
        length--;
    const key_config_t *key = config_find_key(config, value, length);
    if (key == NULL) {
        reply_error(http, 401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided.");
        return NULL;
    }
    if (!key->is_admin) {
        reply_error(http, 403, "permission_error", "admin_required", "this key is not an admin key");
        return NULL;
    }
    return key;
}

static void handle_stats(struct evhttp_request *http, worker_t *worker)
{
    cache_stats_t stats;
    cache_store_stats(cache_worker_of(worker)->store, &stats);
    buf_t metrics;
    buf_init(&metrics);
    cache_metrics_render(&metrics);
    json_t *body = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:s%}", "entries", (json_int_t)stats.entries,
                             "vectors", (json_int_t)stats.vectors, "partitions", (json_int_t)stats.partitions, "bytes",
                             (json_int_t)stats.bytes, "max_entries", (json_int_t)stats.max_entries, "max_bytes",
                             (json_int_t)stats.max_bytes, "evictions", (json_int_t)stats.evictions, "expirations",
                             (json_int_t)stats.expirations, "redis_in_step",
                             cache_worker_of(worker)->redis ? store_redis_is_in_step() : 0, "metrics",
                             metrics.data ? metrics.data : "", metrics.length);
    buf_free(&metrics);
    reply(http, 200, body);
}

typedef struct removed_ids {
    char **ids;
    size_t count;
    size_t capacity;
    bool has_failed;
} removed_ids_t;

static void collect(void *argument, const char *id)
{
    removed_ids_t *removed = argument;
    if (removed->count == removed->capacity) {
        size_t capacity = removed->capacity ? removed->capacity * 2 : 64;
        char **grown = realloc(removed->ids, capacity * sizeof *grown);
        if (grown == NULL) {
            removed->has_failed = true;
            return;
        }
        removed->ids = grown;
        removed->capacity = capacity;
    }
    if ((removed->ids[removed->count] = strdup(id)) == NULL)
        removed->has_failed = true;
    else
        removed->count++;
}

static void handle_invalidate(struct evhttp_request *http, worker_t *worker, const config_t *config)
{
    struct evbuffer *input = evhttp_request_get_input_buffer(http);
    size_t length = evbuffer_get_length(input);
    if (length == 0 || length > ADMIN_MAX_BODY) {
        reply_error(http, 400, "invalid_request_error", "invalid_body", "send a JSON object (at most 1 MiB)");
        return;
    }
    json_t *body = json_loadb((const char *)evbuffer_pullup(input, -1), length, 0, NULL);
    const char *id = json_string_value(json_object_get(body, "id"));
    const char *model = json_string_value(json_object_get(body, "model"));
    const char *scope = json_string_value(json_object_get(body, "scope"));
    const char *text = json_string_value(json_object_get(body, "text"));
    bool is_all = json_is_true(json_object_get(body, "all"));
    const json_t *threshold_value = json_object_get(body, "threshold");
    double threshold = json_is_number(threshold_value) ? json_number_value(threshold_value)
                                                       : config->cache.threshold;
    if (!json_is_object(body) || (id == NULL && model == NULL && scope == NULL && text == NULL && !is_all) ||
        (is_all && (id || model || scope || text)) || threshold <= 0 || threshold > 1) {
        json_decref(body);
        reply_error(http, 400, "invalid_request_error", "invalid_body",
                    "give one of id, model, scope, text (with optional threshold, model, scope) or all: true");
        return;
    }
    int dim = config->cache.dimensions ? config->cache.dimensions : EMBED_BUILTIN_DEFAULT_DIM;
    float *vector = NULL;
    if (text != NULL) {
        vector = malloc((size_t)dim * sizeof *vector);
        if (vector == NULL || embed_builtin(text, strlen(text), vector, dim) != 0) {
            free(vector);
            json_decref(body);
            reply_error(http, 400, "invalid_request_error", "invalid_text", "text has no words to match on");
            return;
        }
    }
    cache_match_t match = {.id = id, .model = model, .scope = scope, .vector = vector, .dim = dim,
                           .threshold = (float)threshold};
    removed_ids_t removed = {0};
    size_t count = cache_store_remove(cache_worker_of(worker)->store, &match, collect, &removed);
    bool is_shared = true;
    if (cache_worker_of(worker)->redis != NULL &&
        store_redis_invalidate(cache_worker_of(worker)->redis, &match, (const char *const *)removed.ids, removed.count) != 0) {
        is_shared = false;
        cache_count(CACHE_COUNT_STORE_ERRORS);
        log_warn("cache: invalidation could not reach redis; other instances keep their entries");
    }
    log_info("cache: admin invalidated %zu entries", count);
    json_t *ids = json_array();
    for (size_t i = 0; i < removed.count; i++) {
        if (ids != NULL && i < 1000)
            json_array_append_new(ids, json_string(removed.ids[i]));
        free(removed.ids[i]);
    }
    free(removed.ids);
    free(vector);
    json_decref(body);
    reply(http, 200, json_pack("{s:I, s:o, s:b}", "invalidated", (json_int_t)count, "ids", ids ? ids : json_array(),
                               "shared", cache_worker_of(worker)->redis == NULL || is_shared));
}

void admin_cache_handle(struct evhttp_request *http, worker_t *worker, const char *path, size_t path_length)
{
    config_t *config = worker_config(worker);
    enum evhttp_cmd_type method = evhttp_request_get_command(http);
    if (authenticate(http, config) != NULL) {
        if (path_length == 18 && memcmp(path, "/admin/cache/stats", 18) == 0 && method == EVHTTP_REQ_GET)
            handle_stats(http, worker);
        else if (path_length == 23 && memcmp(path, "/admin/cache/invalidate", 23) == 0 && method == EVHTTP_REQ_POST)
            handle_invalidate(http, worker, config);
        else
            reply_error(http, 404, "invalid_request_error", "unknown_url", "unknown admin endpoint");
    }
    config_unref(config);
}
