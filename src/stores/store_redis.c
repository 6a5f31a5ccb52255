/* store_redis.c — cache entries shared through Redis (see store_redis.h).
 *
 * Keys: PREFIX:cache:e:ID holds one entry (JSON), expiring with it.
 * Channel: PREFIX:cache:events carries {"op":"put","entry":{...}},
 * {"op":"del","ids":[...]}, {"op":"model"|"scope","...":...} and {"op":"all"},
 * each with the publishing instance's origin id so it skips its own.
 *
 * Connections are hiredis async contexts attached to the worker's
 * event_base, so every callback runs on the worker's thread. A lost
 * connection is retried every second; the follower (worker 0) clears and
 * reloads the local index after every reconnect, since it cannot know what
 * it missed. */
#include "sluice/store_redis.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/cache.h"
#include "sluice/log.h"
#include "sluice/util/buf.h"
#include "sluice/util/clock.h"
#include "sluice/util/crypto.h"
#include "sluice/worker.h"

enum { RECONNECT_MS = 1000, SCAN_COUNT = 500, DELETE_BATCH = 500 };

/* True while the follower is subscribed and has loaded every entry. */
static atomic_bool is_in_step;
static atomic_uint_least64_t origin_id;

/* Owner: cache_worker_t.redis. */
struct store_redis {
    worker_t *worker;
    cache_store_t *store;
    bool is_follower;
    bool is_closing;
    char *host;
    int port;
    char *password; /* secret */
    int database;
    char *key_prefix; /* "PREFIX:cache:e:" */
    char *channel;
    redisAsyncContext *commands;
    bool is_commands_up;
    redisAsyncContext *subscriber; /* follower only */
    bool is_subscribed;
    int pending_loads; /* SCAN/MGET replies the load still waits for */
    bool has_scan_ended;
    bool was_down_logged;
    struct event *reconnect_timer;
};

bool store_redis_is_in_step(void) { return atomic_load(&is_in_step); }


static char origin_text[24];

static const char *origin(void)
{
    if (origin_text[0] == '\0') {
        uint64_t id = atomic_load(&origin_id);
        snprintf(origin_text, sizeof origin_text, "%016" PRIx64, id);
    }
    return origin_text;
}

/* ---- encoding -------------------------------------------------------------- */

json_t *store_redis_encode(const cache_record_t *record)
{
    char key[2 * CACHE_KEY_LENGTH + 1], partition[17];
    crypto_hex_encode(record->key, CACHE_KEY_LENGTH, key);
    snprintf(partition, sizeof partition, "%016" PRIx64, record->partition);
    json_t *entry = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s%}", "key", key, "partition", partition,
                              "model", record->model ? record->model : "", "scope", record->scope ? record->scope : "",
                              "created_ms", (json_int_t)record->created_ms, "exact_expires_ms",
                              (json_int_t)record->exact_expires_ms, "semantic_expires_ms",
                              (json_int_t)record->semantic_expires_ms, "answer", record->answer,
                              record->answer_length);
    if (entry == NULL || record->vector == NULL)
        return entry;
    size_t raw = (size_t)record->dim * sizeof(float);
    unsigned char *text = malloc(4 * ((raw + 2) / 3) + 1);
    if (text == NULL) {
        json_decref(entry);
        return NULL;
    }
    int length = EVP_EncodeBlock(text, (const unsigned char *)record->vector, (int)raw);
    if (length < 0 || json_object_set_new(entry, "dim", json_integer(record->dim)) != 0 ||
        json_object_set_new(entry, "vector", json_stringn((const char *)text, (size_t)length)) != 0) {
        json_decref(entry);
        entry = NULL;
    }
    free(text);
    return entry;
}

int store_redis_decode(const json_t *entry, cache_record_t *record, float **vector)
{
    *vector = NULL;
    memset(record, 0, sizeof *record);
    const char *key = json_string_value(json_object_get(entry, "key"));
    const char *partition = json_string_value(json_object_get(entry, "partition"));
    const json_t *answer = json_object_get(entry, "answer");
    if (key == NULL || partition == NULL || !json_is_string(answer) ||
        crypto_hex_decode_sha256(key, record->key) != 0)
        return -1;
    record->partition = strtoull(partition, NULL, 16);
    record->model = json_string_value(json_object_get(entry, "model"));
    record->scope = json_string_value(json_object_get(entry, "scope"));
    record->created_ms = (uint64_t)json_integer_value(json_object_get(entry, "created_ms"));
    record->exact_expires_ms = (uint64_t)json_integer_value(json_object_get(entry, "exact_expires_ms"));
    record->semantic_expires_ms = (uint64_t)json_integer_value(json_object_get(entry, "semantic_expires_ms"));
    record->answer = json_string_value(answer);
    record->answer_length = json_string_length(answer);
    const char *text = json_string_value(json_object_get(entry, "vector"));
    json_int_t dim = json_integer_value(json_object_get(entry, "dim"));
    if (text == NULL)
        return 0;
    size_t length = strlen(text);
    size_t raw = (size_t)dim * sizeof(float);
    if (dim <= 0 || dim > 8192 || dim % 32 != 0 || length != 4 * ((raw + 2) / 3))
        return -1;
    unsigned char *decoded = malloc(length / 4 * 3 + 3);
    if (decoded == NULL)
        return -1;
    if (EVP_DecodeBlock(decoded, (const unsigned char *)text, (int)length) < (int)raw) {
        free(decoded);
        return -1;
    }
    *vector = (float *)(void *)decoded;
    record->vector = *vector;
    record->dim = (int)dim;
    return 0;
}

/* Applies an encoded entry to the local store (a load or another instance's put). */
static void apply_entry(store_redis_t *redis, const json_t *entry)
{
    cache_record_t record;
    float *vector = NULL;
    uint64_t now = clock_wall_ms();
    if (store_redis_decode(entry, &record, &vector) != 0) {
        log_warn("cache: ignoring a malformed entry from redis");
    } else if (record.exact_expires_ms > now || record.semantic_expires_ms > now) {
        if (cache_store_put(redis->store, &record, now) != 0)
            cache_count(CACHE_COUNT_STORE_ERRORS);
    }
    free(vector);
}

/* ---- connections ----------------------------------------------------------- */

static void connect_all(store_redis_t *redis);
static void start_load(store_redis_t *redis);

static void mark_down(store_redis_t *redis, const char *what, const char *detail)
{
    if (redis->is_follower)
        atomic_store(&is_in_step, false);
    if (!redis->was_down_logged) {
        log_warn("cache: redis %s:%d %s (%s): cache lookups are misses until it is back", redis->host, redis->port,
                 what, detail ? detail : "unknown");
        redis->was_down_logged = true;
    }
    if (!redis->is_closing && redis->reconnect_timer != NULL) {
        struct timeval delay = {.tv_sec = RECONNECT_MS / 1000, .tv_usec = (RECONNECT_MS % 1000) * 1000};
        evtimer_add(redis->reconnect_timer, &delay);
    }
}

static void on_reconnect_timer(evutil_socket_t fd, short what, void *argument)
{
    (void)fd;
    (void)what;
    connect_all(argument);
}

static void on_disconnect(const redisAsyncContext *context, int status)
{
    store_redis_t *redis = context->data;
    if (redis == NULL)
        return;
    if (context == redis->commands) {
        redis->commands = NULL;
        redis->is_commands_up = false;
    } else if (context == redis->subscriber) {
        redis->subscriber = NULL;
        redis->is_subscribed = false;
    }
    if (!redis->is_closing)
        mark_down(redis, "connection lost", status == REDIS_OK ? "closed" : context->errstr);
}

static void on_connect(const redisAsyncContext *context, int status)
{
    store_redis_t *redis = context->data;
    if (redis == NULL)
        return;
    if (status == REDIS_OK) {
        if (context == redis->commands) {
            redis->is_commands_up = true;
            if (redis->is_follower && redis->is_subscribed)
                start_load(redis); /* the subscriber stayed up: reload what this connection missed */
        }
        return;
    }
    if (context == redis->commands)
        redis->commands = NULL;
    else if (context == redis->subscriber)
        redis->subscriber = NULL;
    mark_down(redis, "unreachable", context->errstr);
}

static void on_ignored_reply(redisAsyncContext *context, void *reply_pointer, void *argument)
{
    (void)context;
    (void)argument;
    const redisReply *reply = reply_pointer;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        cache_count(CACHE_COUNT_STORE_ERRORS);
        log_warn("cache: redis error: %s", reply->str);
    }
}

static int command(redisAsyncContext *context, redisCallbackFn *callback, void *argument, int count,
                   const char **arguments, const size_t *lengths)
{
    if (context == NULL)
        return -1;
    return redisAsyncCommandArgv(context, callback, argument, count, arguments, lengths) == REDIS_OK ? 0 : -1;
}

static redisAsyncContext *open_context(store_redis_t *redis)
{
    redisAsyncContext *context = redisAsyncConnect(redis->host, redis->port);
    if (context == NULL)
        return NULL;
    if (context->err) {
        mark_down(redis, "unreachable", context->errstr);
        redisAsyncFree(context);
        return NULL;
    }
    context->data = redis;
    if (redisLibeventAttach(context, redis->worker->base) != REDIS_OK) {
        redisAsyncFree(context);
        return NULL;
    }
    redisAsyncSetConnectCallback(context, on_connect);
    redisAsyncSetDisconnectCallback(context, on_disconnect);
    if (redis->password != NULL) {
        const char *arguments[] = {"AUTH", redis->password};
        command(context, on_ignored_reply, NULL, 2, arguments, NULL);
    }
    return context;
}

/* ---- the follower ---------------------------------------------------------- */

static void load_finished_step(store_redis_t *redis)
{
    if (--redis->pending_loads == 0 && redis->has_scan_ended && redis->is_subscribed) {
        cache_stats_t stats;
        cache_store_stats(redis->store, &stats);
        log_info("cache: in step with redis %s:%d (%zu entries loaded)", redis->host, redis->port, stats.entries);
        redis->was_down_logged = false;
        atomic_store(&is_in_step, true);
    }
}

static void on_values(redisAsyncContext *context, void *reply_pointer, void *argument)
{
    (void)context;
    store_redis_t *redis = argument;
    const redisReply *reply = reply_pointer;
    if (redis->is_closing)
        return;
    for (size_t i = 0; reply != NULL && reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
        const redisReply *value = reply->element[i];
        if (value->type != REDIS_REPLY_STRING)
            continue; /* deleted or expired since the scan */
        json_t *entry = json_loadb(value->str, value->len, 0, NULL);
        if (entry != NULL)
            apply_entry(redis, entry);
        json_decref(entry);
    }
    load_finished_step(redis);
}

static void scan_from(store_redis_t *redis, const char *cursor);

static void on_scan(redisAsyncContext *context, void *reply_pointer, void *argument)
{
    (void)context;
    store_redis_t *redis = argument;
    const redisReply *reply = reply_pointer;
    if (redis->is_closing)
        return;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_ARRAY) {
        log_warn("cache: redis scan failed");
        redis->pending_loads--;
        return;
    }
    const redisReply *keys = reply->element[1];
    if (keys->elements > 0) {
        const char **arguments = calloc(keys->elements + 1, sizeof *arguments);
        size_t *lengths = calloc(keys->elements + 1, sizeof *lengths);
        if (arguments != NULL && lengths != NULL) {
            arguments[0] = "MGET";
            lengths[0] = 4;
            for (size_t i = 0; i < keys->elements; i++) {
                arguments[i + 1] = keys->element[i]->str;
                lengths[i + 1] = keys->element[i]->len;
            }
            if (command(redis->commands, on_values, redis, (int)keys->elements + 1, arguments, lengths) == 0)
                redis->pending_loads++;
        }
        free(arguments);
        free(lengths);
    }
    const char *cursor = reply->element[0]->str;
    if (strcmp(cursor, "0") == 0)
        redis->has_scan_ended = true;
    else
        scan_from(redis, cursor);
    load_finished_step(redis);
}

static void scan_from(store_redis_t *redis, const char *cursor)
{
    char pattern[512], count[16];
    snprintf(pattern, sizeof pattern, "%s*", redis->key_prefix);
    snprintf(count, sizeof count, "%d", SCAN_COUNT);
    const char *arguments[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", count};
    if (command(redis->commands, on_scan, redis, 6, arguments, NULL) == 0)
        redis->pending_loads++;
}

/* Starts over: forget local entries (we may have missed deletions), load all. */
static void start_load(store_redis_t *redis)
{
    cache_store_remove(redis->store, &(cache_match_t){0}, NULL, NULL);
    redis->has_scan_ended = false;
    redis->pending_loads = 1; /* this function's own step */
    scan_from(redis, "0");
    load_finished_step(redis);
}

static void apply_event(store_redis_t *redis, const char *text, size_t length)
{
    json_t *event = json_loadb(text, length, 0, NULL);
    const char *op = json_string_value(json_object_get(event, "op"));
    const char *from = json_string_value(json_object_get(event, "origin"));
    if (op == NULL || (from != NULL && strcmp(from, origin()) == 0)) {
        json_decref(event);
        return;
    }
    if (strcmp(op, "put") == 0) {
        apply_entry(redis, json_object_get(event, "entry"));
    } else if (strcmp(op, "del") == 0) {
        size_t index;
        const json_t *id;
        json_array_foreach(json_object_get(event, "ids"), index, id)
            if (json_is_string(id))
                cache_store_remove(redis->store, &(cache_match_t){.id = json_string_value(id)}, NULL, NULL);
    } else if (strcmp(op, "model") == 0 || strcmp(op, "scope") == 0 || strcmp(op, "all") == 0) {
        cache_match_t match = {.model = json_string_value(json_object_get(event, "model")),
                               .scope = json_string_value(json_object_get(event, "scope"))};
        if (strcmp(op, "all") == 0 || match.model != NULL || match.scope != NULL)
            cache_store_remove(redis->store, &match, NULL, NULL);
    }
    json_decref(event);
}

static void on_message(redisAsyncContext *context, void *reply_pointer, void *argument)
{
    (void)context;
    store_redis_t *redis = argument;
    const redisReply *reply = reply_pointer;
    if (redis->is_closing || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    const redisReply *kind = reply->element[0];
    if (kind->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(kind->str, "subscribe") == 0) {
        redis->is_subscribed = true;
        if (redis->commands != NULL)
            start_load(redis);
    } else if (strcmp(kind->str, "message") == 0 && reply->element[2]->type == REDIS_REPLY_STRING) {
        apply_event(redis, reply->element[2]->str, reply->element[2]->len);
    }
}

static void connect_all(store_redis_t *redis)
{
    if (redis->is_closing)
        return;
    if (redis->commands == NULL && (redis->commands = open_context(redis)) != NULL && redis->database != 0) {
        char database[16];
        snprintf(database, sizeof database, "%d", redis->database);
        const char *arguments[] = {"SELECT", database};
        command(redis->commands, on_ignored_reply, NULL, 2, arguments, NULL);
    }
    if (redis->is_follower && redis->subscriber == NULL && redis->commands != NULL &&
        (redis->subscriber = open_context(redis)) != NULL) {
        const char *arguments[] = {"SUBSCRIBE", redis->channel};
        command(redis->subscriber, on_message, redis, 2, arguments, NULL);
    }
}

store_redis_t *store_redis_new(worker_t *worker, const redis_config_t *config, cache_store_t *store, bool is_follower)
{
    uint64_t expected = 0, random = 0;
    if (crypto_random(&random, sizeof random) != 0 || random == 0)
        random = (uint64_t)time(NULL) ^ 0x5bd1e995u;
    atomic_compare_exchange_strong(&origin_id, &expected, random);
    store_redis_t *redis = calloc(1, sizeof *redis);
    if (redis == NULL)
        return NULL;
    redis->worker = worker;
    redis->store = store;
    redis->is_follower = is_follower;
    redis->port = config->port;
    redis->database = config->database;
    redis->host = strdup(config->host);
    redis->password = config->password ? strdup(config->password) : NULL;
    buf_t text;
    buf_init(&text);
    if (buf_printf(&text, "%s:cache:e:", config->prefix) == 0)
        redis->key_prefix = strdup(text.data);
    buf_clear(&text);
    if (buf_printf(&text, "%s:cache:events", config->prefix) == 0)
        redis->channel = strdup(text.data);
    buf_free(&text);
    redis->reconnect_timer = evtimer_new(worker->base, on_reconnect_timer, redis);
    if (redis->host == NULL || redis->key_prefix == NULL || redis->channel == NULL || redis->reconnect_timer == NULL ||
        (config->password != NULL && redis->password == NULL)) {
        store_redis_free(redis);
        return NULL;
    }
    connect_all(redis);
    return redis;
}

void store_redis_free(store_redis_t *redis)
{
    if (redis == NULL)
        return;
    redis->is_closing = true;
    if (redis->is_follower)
        atomic_store(&is_in_step, false);
    if (redis->commands != NULL)
        redisAsyncFree(redis->commands);
    if (redis->subscriber != NULL)
        redisAsyncFree(redis->subscriber);
    if (redis->reconnect_timer != NULL)
        event_free(redis->reconnect_timer);
    free(redis->host);
    if (redis->password != NULL)
        explicit_bzero(redis->password, strlen(redis->password));
    free(redis->password);
    free(redis->key_prefix);
    free(redis->channel);
    free(redis);
}

/* ---- writes ---------------------------------------------------------------- */

static int publish(store_redis_t *redis, json_t *event)
{
    if (event == NULL || json_object_set_new(event, "origin", json_string(origin())) != 0) {
        json_decref(event);
        return -1;
    }
    char *text = json_dumps(event, JSON_COMPACT);
    json_decref(event);
    if (text == NULL)
        return -1;
    const char *arguments[] = {"PUBLISH", redis->channel, text};
    int rc = command(redis->commands, on_ignored_reply, NULL, 3, arguments, NULL);
    free(text);
    return rc;
}

int store_redis_put(store_redis_t *redis, const cache_record_t *record, uint64_t now_ms)
{
    if (!redis->is_commands_up)
        return -1;
    json_t *entry = store_redis_encode(record);
    char *text = entry ? json_dumps(entry, JSON_COMPACT) : NULL;
    if (text == NULL) {
        json_decref(entry);
        return -1;
    }
    uint64_t expires = record->exact_expires_ms > record->semantic_expires_ms ? record->exact_expires_ms
                                                                              : record->semantic_expires_ms;
    char key[600], ttl[24], id[CACHE_ID_LENGTH + 1];
    cache_store_id_from_key(record->key, id);
    snprintf(key, sizeof key, "%s%s", redis->key_prefix, id);
    snprintf(ttl, sizeof ttl, "%" PRIu64, expires > now_ms ? expires - now_ms : 1);
    const char *arguments[] = {"SET", key, text, "PX", ttl};
    int rc = command(redis->commands, on_ignored_reply, NULL, 5, arguments, NULL);
    free(text);
    if (rc == 0)
        rc = publish(redis, json_pack("{s:s, s:o}", "op", "put", "entry", entry));
    else
        json_decref(entry);
    return rc;
}

int store_redis_invalidate(store_redis_t *redis, const cache_match_t *match, const char *const *ids, size_t count)
{
    if (!redis->is_commands_up)
        return -1;
    int rc = 0;
    for (size_t first = 0; first < count && rc == 0; first += DELETE_BATCH) {
        size_t batch = count - first < DELETE_BATCH ? count - first : DELETE_BATCH;
        const char **arguments = calloc(batch + 1, sizeof *arguments);
        char (*keys)[600] = calloc(batch, sizeof *keys);
        if (arguments == NULL || keys == NULL) {
            free(arguments);
            free(keys);
            return -1;
        }
        arguments[0] = "DEL";
        for (size_t i = 0; i < batch; i++) {
            snprintf(keys[i], sizeof keys[i], "%s%s", redis->key_prefix, ids[first + i]);
            arguments[i + 1] = keys[i];
        }
        rc = command(redis->commands, on_ignored_reply, NULL, (int)batch + 1, arguments, NULL);
        free(arguments);
        free(keys);
    }
    json_t *event;
    if (match->vector == NULL && match->id == NULL && (match->model != NULL || match->scope != NULL)) {
        event = json_pack("{s:s}", "op", match->model ? "model" : "scope");
        if (event && match->model)
            json_object_set_new(event, "model", json_string(match->model));
        if (event && match->scope)
            json_object_set_new(event, "scope", json_string(match->scope));
    } else if (match->vector == NULL && match->id == NULL) {
        event = json_pack("{s:s}", "op", "all");
    } else {
        json_t *list = json_array();
        for (size_t i = 0; list != NULL && i < count; i++)
            json_array_append_new(list, json_string(ids[i]));
        event = list ? json_pack("{s:s, s:o}", "op", "del", "ids", list) : NULL;
    }
    return rc == 0 ? publish(redis, event) : (json_decref(event), -1);
}
