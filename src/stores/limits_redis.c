/* limits_redis.c — rate-limit windows shared through Redis (see limits_redis.h).
 *
 * Keys: PREFIX:limits:{NAME}:BUCKET_MS:r and :t, hashes of bucket number →
 * count (requests, tokens), expiring one window after their last write. The
 * bucket length is in the name, so changing limits.window_seconds starts
 * afresh, as it does in process; the hash tag keeps both keys in one slot.
 *
 * Every admission is one EVALSHA of the admission script (loaded on connect;
 * a NOSCRIPT reply reloads it and that request falls back) with a timer: the
 * first of the reply and the timer answers the stage. The call itself lives
 * until its reply arrives (hiredis always calls back, with NULL when the
 * connection goes), so a reply after the timeout finds no request: if Redis
 * admitted it, the late reply undoes that admission. */
#include "sluice/limits_redis.h"

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

#include "sluice/log.h"
#include "sluice/request.h"
#include "sluice/util/buf.h"
#include "sluice/util/clock.h"
#include "sluice/worker.h"

enum { RECONNECT_MS = 1000, SUSPECT_MS = 1000, KEY_SIZE = 640 };

/* KEYS: requests, tokens. ARGV: bucket_ms, buckets, rpm, tpm, reserve.
 * Returns {admitted, now_ms, head, {bucket, count, ...}, {bucket, count, ...}}
 * with what each window holds after the decision. */
const char limits_redis_admit_script[] =
    "local time = redis.call('TIME')\n"
    "local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)\n"
    "local bucket_ms, buckets = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local rpm, tpm, reserve = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local head = math.floor(now / bucket_ms)\n"
    "local oldest = head - buckets + 1\n"
    "local function load(key)\n"
    "  local flat = redis.call('HGETALL', key)\n"
    "  local live, stale, total = {}, {}, 0\n"
    "  for i = 1, #flat, 2 do\n"
    "    local bucket = tonumber(flat[i])\n"
    "    if bucket == nil or bucket < oldest then\n"
    "      stale[#stale + 1] = flat[i]\n"
    "    else\n"
    "      local count = tonumber(flat[i + 1])\n"
    "      total = total + count\n"
    "      live[#live + 1] = bucket\n"
    "      live[#live + 1] = count\n"
    "    end\n"
    "  end\n"
    "  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end\n"
    "  return live, total\n"
    "end\n"
    "local requests, request_total = load(KEYS[1])\n"
    "local tokens, token_total = load(KEYS[2])\n"
    "local admitted = 0\n"
    "if (rpm == 0 or request_total < rpm) and (tpm == 0 or token_total < tpm) then\n"
    "  admitted = 1\n"
    "  local field = string.format('%d', head)\n"
    "  local ttl = (buckets + 1) * bucket_ms\n"
    "  redis.call('HINCRBY', KEYS[1], field, 1)\n"
    "  redis.call('PEXPIRE', KEYS[1], ttl)\n"
    "  requests[#requests + 1] = head\n"
    "  requests[#requests + 1] = 1\n"
    "  if reserve > 0 then\n"
    "    redis.call('HINCRBY', KEYS[2], field, reserve)\n"
    "    redis.call('PEXPIRE', KEYS[2], ttl)\n"
    "    tokens[#tokens + 1] = head\n"
    "    tokens[#tokens + 1] = reserve\n"
    "  end\n"
    "end\n"
    "return {admitted, now, head, requests, tokens}\n";

/* KEYS: requests, tokens. ARGV: bucket_ms, buckets, bucket, request_delta,
 * token_delta (both applied to bucket if it is still in the window and
 * still exists), actual (added to the current bucket). */
const char limits_redis_record_script[] =
    "local time = redis.call('TIME')\n"
    "local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)\n"
    "local bucket_ms, buckets = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local head = math.floor(now / bucket_ms)\n"
    "local bucket = ARGV[3]\n"
    "if tonumber(bucket) > head - buckets then\n"
    "  if tonumber(ARGV[4]) ~= 0 and redis.call('HEXISTS', KEYS[1], bucket) == 1 then\n"
    "    redis.call('HINCRBY', KEYS[1], bucket, ARGV[4])\n"
    "  end\n"
    "  if tonumber(ARGV[5]) ~= 0 and redis.call('HEXISTS', KEYS[2], bucket) == 1 then\n"
    "    redis.call('HINCRBY', KEYS[2], bucket, ARGV[5])\n"
    "  end\n"
    "end\n"
    "if tonumber(ARGV[6]) > 0 then\n"
    "  redis.call('HINCRBY', KEYS[2], string.format('%d', head), ARGV[6])\n"
    "  redis.call('PEXPIRE', KEYS[2], (buckets + 1) * bucket_ms)\n"
    "end\n"
    "return 1\n";

/* ---- process-wide state: outage logging and metrics ------------------------ */

static atomic_bool is_outage; /* an outage was logged and has not ended */
static atomic_int connections_up;
static atomic_uint_fast64_t outcomes[LIMITS_REDIS_OUTCOMES];

bool limits_redis_note_down(void) { return !atomic_exchange(&is_outage, true); }
bool limits_redis_note_up(void) { return atomic_exchange(&is_outage, false); }

void limits_redis_count(limits_redis_outcome_t outcome)
{
    if (outcome < LIMITS_REDIS_OUTCOMES)
        atomic_fetch_add_explicit(&outcomes[outcome], 1, memory_order_relaxed);
}

int limits_redis_metrics_render(buf_t *out)
{
    static const char *const names[] = {"shared", "fallback_down", "fallback_timeout", "fallback_error"};
    int rc = buf_append_str(out, "# HELP sluice_limits_redis_admissions_total Rate-limit admissions by where they "
                                 "were decided (shared in redis, or locally and why).\n"
                                 "# TYPE sluice_limits_redis_admissions_total counter\n");
    for (int i = 0; i < LIMITS_REDIS_OUTCOMES; i++)
        rc |= buf_printf(out, "sluice_limits_redis_admissions_total{outcome=\"%s\"} %llu\n", names[i],
                         (unsigned long long)atomic_load(&outcomes[i]));
    rc |= buf_printf(out,
                     "# HELP sluice_limits_redis_connections Worker connections to redis for rate limits that are up.\n"
                     "# TYPE sluice_limits_redis_connections gauge\n"
                     "sluice_limits_redis_connections %d\n",
                     atomic_load(&connections_up));
    return rc;
}

/* ---- pure parts ---------------------------------------------------------- */

int limits_redis_key_names(const char *prefix, const char *key_name, uint64_t bucket_ms, char *requests,
                           char *tokens, size_t size)
{
    int a = snprintf(requests, size, "%s:limits:{%s}:%" PRIu64 ":r", prefix, key_name, bucket_ms);
    int b = snprintf(tokens, size, "%s:limits:{%s}:%" PRIu64 ":t", prefix, key_name, bucket_ms);
    return a > 0 && (size_t)a < size && b > 0 && (size_t)b < size ? 0 : -1;
}

int limits_redis_admit_args(const char *sha, const char *requests_key, const char *tokens_key, uint64_t bucket_ms,
                            long rpm, long tpm, long estimated_tokens, const char **argv, char (*numbers)[24])
{
    snprintf(numbers[0], 24, "%" PRIu64, bucket_ms);
    snprintf(numbers[1], 24, "%d", LIMITS_BUCKETS);
    snprintf(numbers[2], 24, "%ld", rpm > 0 ? rpm : 0);
    snprintf(numbers[3], 24, "%ld", tpm > 0 ? tpm : 0);
    snprintf(numbers[4], 24, "%ld", estimated_tokens > 0 ? estimated_tokens : 0);
    argv[0] = "EVALSHA";
    argv[1] = sha;
    argv[2] = "2";
    argv[3] = requests_key;
    argv[4] = tokens_key;
    for (int i = 0; i < 5; i++)
        argv[5 + i] = numbers[i];
    return 10;
}

/* Fills window (head = head) from {bucket, count, ...}; buckets outside the window are ignored. */
static int window_from(const redisReply *flat, uint64_t head, limits_window_t *window)
{
    memset(window, 0, sizeof *window);
    window->head = head;
    if (flat->type != REDIS_REPLY_ARRAY || flat->elements % 2 != 0)
        return -1;
    for (size_t i = 0; i < flat->elements; i += 2) {
        if (flat->element[i]->type != REDIS_REPLY_INTEGER || flat->element[i + 1]->type != REDIS_REPLY_INTEGER)
            return -1;
        long long bucket = flat->element[i]->integer, count = flat->element[i + 1]->integer;
        if (bucket < 0 || (uint64_t)bucket > head || (uint64_t)bucket + LIMITS_BUCKETS <= head)
            continue;
        window->counts[(uint64_t)bucket % LIMITS_BUCKETS] += count;
        window->total += count;
    }
    return 0;
}

int limits_redis_parse_admit(const redisReply *reply, limits_redis_reply_t *out)
{
    memset(out, 0, sizeof *out);
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 5)
        return -1;
    for (int i = 0; i < 3; i++)
        if (reply->element[i]->type != REDIS_REPLY_INTEGER || reply->element[i]->integer < 0)
            return -1;
    out->is_admitted = reply->element[0]->integer == 1;
    out->now_ms = (uint64_t)reply->element[1]->integer;
    out->head = (uint64_t)reply->element[2]->integer;
    if (window_from(reply->element[3], out->head, &out->requests) != 0 ||
        window_from(reply->element[4], out->head, &out->tokens) != 0)
        return -1;
    return 0;
}

/* ---- the connection ---------------------------------------------------------- */

/* Owner: worker_t.limits_redis. */
struct limits_redis {
    worker_t *worker;
    bool is_closing;
    char *host;
    int port;
    char *password; /* secret */
    int database;
    char *prefix;
    char admit_sha[41];
    char record_sha[41];
    redisAsyncContext *context;
    bool is_up;
    uint64_t suspect_until_us; /* after a timeout: decide locally until then */
    struct event *reconnect_timer;
};

/* Owner: itself; freed by its reply callback (hiredis calls every callback once). */
typedef struct limits_call {
    limits_redis_t *redis;
    request_t *request; /* NULL once the timer has answered it */
    limits_redis_done_fn *done;
    struct event *timer;
    char *key_name;
    uint64_t bucket_ms;
    long reserve;
} limits_call_t;

static void sha1_hex(const char *text, char *out)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_Digest(text, strlen(text), digest, &length, EVP_sha1(), NULL);
    for (unsigned int i = 0; i < length && i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

static void connect_now(limits_redis_t *redis);

static void log_down(limits_redis_t *redis, const char *detail)
{
    if (limits_redis_note_down())
        log_warn("limits: redis %s:%d unavailable (%s): rate limits are enforced per instance until it is back",
                 redis->host, redis->port, detail ? detail : "unknown");
}

static void schedule_reconnect(limits_redis_t *redis)
{
    if (redis->is_closing || redis->reconnect_timer == NULL)
        return;
    struct timeval delay = {.tv_sec = RECONNECT_MS / 1000, .tv_usec = (RECONNECT_MS % 1000) * 1000};
    evtimer_add(redis->reconnect_timer, &delay);
}

static void on_reconnect_timer(evutil_socket_t fd, short what, void *argument)
{
    (void)fd;
    (void)what;
    connect_now(argument);
}

static void on_disconnect(const redisAsyncContext *context, int status)
{
    limits_redis_t *redis = context->data;
    if (redis == NULL || context != redis->context)
        return;
    if (redis->is_up)
        atomic_fetch_sub(&connections_up, 1);
    redis->context = NULL;
    redis->is_up = false;
    if (redis->is_closing)
        return;
    log_down(redis, status == REDIS_OK ? "connection closed" : context->errstr);
    schedule_reconnect(redis);
}

static void on_connect(const redisAsyncContext *context, int status)
{
    limits_redis_t *redis = context->data;
    if (redis == NULL || context != redis->context)
        return;
    if (status != REDIS_OK) {
        redis->context = NULL; /* hiredis frees it after this callback */
        log_down(redis, context->errstr);
        schedule_reconnect(redis);
        return;
    }
    redis->is_up = true;
    redis->suspect_until_us = 0;
    atomic_fetch_add(&connections_up, 1);
    if (limits_redis_note_up())
        log_info("limits: redis %s:%d is back: rate limits are shared again", redis->host, redis->port);
}

static void on_setup_reply(redisAsyncContext *context, void *reply_pointer, void *argument)
{
    (void)context;
    (void)argument;
    const redisReply *reply = reply_pointer;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        log_warn("limits: redis error: %s", reply->str);
}

static void load_scripts(limits_redis_t *redis)
{
    const char *admit[] = {"SCRIPT", "LOAD", limits_redis_admit_script};
    const char *record[] = {"SCRIPT", "LOAD", limits_redis_record_script};
    redisAsyncCommandArgv(redis->context, on_setup_reply, NULL, 3, admit, NULL);
    redisAsyncCommandArgv(redis->context, on_setup_reply, NULL, 3, record, NULL);
}

static void connect_now(limits_redis_t *redis)
{
    if (redis->is_closing || redis->context != NULL)
        return;
    redisAsyncContext *context = redisAsyncConnect(redis->host, redis->port);
    if (context == NULL || context->err) {
        log_down(redis, context ? context->errstr : "out of memory");
        if (context != NULL)
            redisAsyncFree(context);
        schedule_reconnect(redis);
        return;
    }
    context->data = redis;
    if (redisLibeventAttach(context, redis->worker->base) != REDIS_OK) {
        redisAsyncFree(context);
        schedule_reconnect(redis);
        return;
    }
    redis->context = context;
    redisAsyncSetConnectCallback(context, on_connect);
    redisAsyncSetDisconnectCallback(context, on_disconnect);
    /* Queued now, sent in order once connected: before any EVALSHA. */
    if (redis->password != NULL) {
        const char *auth[] = {"AUTH", redis->password};
        redisAsyncCommandArgv(context, on_setup_reply, NULL, 2, auth, NULL);
    }
    if (redis->database != 0) {
        char database[16];
        snprintf(database, sizeof database, "%d", redis->database);
        const char *select[] = {"SELECT", database};
        redisAsyncCommandArgv(context, on_setup_reply, NULL, 2, select, NULL);
    }
    load_scripts(redis);
}

limits_redis_t *limits_redis_new(worker_t *worker, const redis_config_t *config)
{
    limits_redis_t *redis = calloc(1, sizeof *redis);
    if (redis == NULL)
        return NULL;
    redis->worker = worker;
    redis->port = config->port;
    redis->database = config->database;
    redis->host = strdup(config->host);
    redis->prefix = strdup(config->prefix ? config->prefix : "sluice");
    redis->password = config->password ? strdup(config->password) : NULL;
    redis->reconnect_timer = evtimer_new(worker->base, on_reconnect_timer, redis);
    if (redis->host == NULL || redis->prefix == NULL || redis->reconnect_timer == NULL ||
        (config->password != NULL && redis->password == NULL)) {
        limits_redis_free(redis);
        return NULL;
    }
    sha1_hex(limits_redis_admit_script, redis->admit_sha);
    sha1_hex(limits_redis_record_script, redis->record_sha);
    connect_now(redis);
    return redis;
}

void limits_redis_free(limits_redis_t *redis)
{
    if (redis == NULL)
        return;
    redis->is_closing = true;
    if (redis->context != NULL) {
        if (redis->is_up)
            atomic_fetch_sub(&connections_up, 1);
        redisAsyncContext *context = redis->context;
        redis->context = NULL;
        redisAsyncFree(context); /* calls every pending callback with NULL */
    }
    if (redis->reconnect_timer != NULL)
        event_free(redis->reconnect_timer);
    free(redis->host);
    if (redis->password != NULL)
        explicit_bzero(redis->password, strlen(redis->password));
    free(redis->password);
    free(redis->prefix);
    free(redis);
}

/* ---- admissions ------------------------------------------------------------ */

static void call_free(limits_call_t *call)
{
    if (call->timer != NULL)
        event_free(call->timer);
    free(call->key_name);
    free(call);
}

/* Answers the request (once) and forgets it. */
static void call_answer(limits_call_t *call, const limits_redis_reply_t *reply, limits_redis_outcome_t outcome)
{
    request_t *request = call->request;
    call->request = NULL;
    if (call->timer != NULL) {
        event_free(call->timer);
        call->timer = NULL;
    }
    limits_redis_count(outcome);
    call->done(request, reply, outcome);
}

static void on_timeout(evutil_socket_t fd, short what, void *argument)
{
    (void)fd;
    (void)what;
    limits_call_t *call = argument;
    limits_redis_t *redis = call->redis;
    redis->suspect_until_us = clock_monotonic_us() + SUSPECT_MS * 1000u;
    log_down(redis, "no reply within limits.redis_timeout_ms");
    call_answer(call, NULL, LIMITS_REDIS_TIMEOUT);
}

static void on_admitted(redisAsyncContext *context, void *reply_pointer, void *argument)
{
    (void)context;
    limits_call_t *call = argument;
    limits_redis_t *redis = call->redis;
    const redisReply *reply = reply_pointer;
    limits_redis_reply_t parsed;
    int rc = limits_redis_parse_admit(reply, &parsed);
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR && !redis->is_closing) {
        if (strncmp(reply->str, "NOSCRIPT", 8) == 0 && redis->context != NULL)
            load_scripts(redis); /* flushed by someone: the next admission finds it again */
        else
            log_warn("limits: redis error: %s", reply->str);
    }
    if (call->request != NULL) {
        if (rc == 0)
            call_answer(call, &parsed, LIMITS_REDIS_SHARED);
        else
            call_answer(call, NULL, reply == NULL ? LIMITS_REDIS_DOWN : LIMITS_REDIS_ERROR);
    } else if (rc == 0 && parsed.is_admitted && !redis->is_closing) {
        /* Answered locally after the timeout: undo what Redis recorded. */
        limits_redis_record(redis, call->key_name, call->bucket_ms, parsed.head, 1, call->reserve, 0);
    }
    call_free(call);
}

int limits_redis_admit(limits_redis_t *redis, request_t *request, const key_config_t *key, uint64_t bucket_ms,
                       long estimated_tokens, long timeout_ms, limits_redis_done_fn *done)
{
    if (redis == NULL || !redis->is_up || redis->context == NULL) {
        limits_redis_count(LIMITS_REDIS_DOWN);
        if (redis != NULL)
            log_down(redis, "not connected");
        return -1;
    }
    if (redis->suspect_until_us != 0 && clock_monotonic_us() < redis->suspect_until_us) {
        limits_redis_count(LIMITS_REDIS_TIMEOUT);
        return -1;
    }
    char requests_key[KEY_SIZE], tokens_key[KEY_SIZE];
    if (limits_redis_key_names(redis->prefix, key->name, bucket_ms, requests_key, tokens_key, KEY_SIZE) != 0) {
        limits_redis_count(LIMITS_REDIS_ERROR);
        return -1;
    }
    limits_call_t *call = calloc(1, sizeof *call);
    if (call == NULL || (call->key_name = strdup(key->name)) == NULL ||
        (call->timer = evtimer_new(redis->worker->base, on_timeout, call)) == NULL) {
        if (call != NULL)
            call_free(call);
        limits_redis_count(LIMITS_REDIS_ERROR);
        return -1;
    }
    call->redis = redis;
    call->request = request;
    call->done = done;
    call->bucket_ms = bucket_ms;
    call->reserve = estimated_tokens > 0 ? estimated_tokens : 0;
    const char *argv[10];
    char numbers[5][24];
    int count = limits_redis_admit_args(redis->admit_sha, requests_key, tokens_key, bucket_ms, key->rpm, key->tpm,
                                        estimated_tokens, argv, numbers);
    if (redisAsyncCommandArgv(redis->context, on_admitted, call, count, argv, NULL) != REDIS_OK) {
        call_free(call);
        limits_redis_count(LIMITS_REDIS_ERROR);
        return -1;
    }
    struct timeval delay = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    evtimer_add(call->timer, &delay);
    return 0;
}

static void on_recorded(redisAsyncContext *context, void *reply_pointer, void *argument)
{
    (void)context;
    (void)argument;
    const redisReply *reply = reply_pointer;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        log_warn("limits: redis error recording usage: %s", reply->str);
}

void limits_redis_record(limits_redis_t *redis, const char *key_name, uint64_t bucket_ms, uint64_t bucket,
                         long request_delta, long reserved_tokens, long actual_tokens)
{
    if (redis == NULL || !redis->is_up || redis->context == NULL)
        return; /* the reservation stays until the window drops it */
    char requests_key[KEY_SIZE], tokens_key[KEY_SIZE];
    if (limits_redis_key_names(redis->prefix, key_name, bucket_ms, requests_key, tokens_key, KEY_SIZE) != 0)
        return;
    char numbers[6][24];
    snprintf(numbers[0], 24, "%" PRIu64, bucket_ms);
    snprintf(numbers[1], 24, "%d", LIMITS_BUCKETS);
    snprintf(numbers[2], 24, "%" PRIu64, bucket);
    snprintf(numbers[3], 24, "%ld", -request_delta);
    snprintf(numbers[4], 24, "%ld", -reserved_tokens);
    snprintf(numbers[5], 24, "%ld", actual_tokens > 0 ? actual_tokens : 0);
    const char *argv[] = {"EVALSHA", redis->record_sha, "2", requests_key, tokens_key, numbers[0], numbers[1],
                          numbers[2], numbers[3], numbers[4], numbers[5]};
    redisAsyncCommandArgv(redis->context, on_recorded, NULL, 11, argv, NULL);
}
