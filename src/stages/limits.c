/* limits.c — the limits stage: per-key request and token rate limits.
 *
 * Runs after auth (it needs the key) and before the router and the cache: a
 * refused request costs nothing upstream and is not served from cache either,
 * so a key over its limit is told so whatever it asks (docs/configuration.md).
 *
 * The idea. Each key with rpm or tpm has an entry in one process-wide table,
 * keyed by key name, holding two sliding windows (requests, tokens) of
 * LIMITS_BUCKETS buckets each — one-second buckets for the real one-minute
 * window. A request is admitted while each window's total is below its limit;
 * admission counts the request and reserves an estimate of its tokens (prompt
 * bytes / 4 + max_tokens); the completion hook replaces the estimate with the
 * usage the provider reported. Reserving first keeps a burst of concurrent
 * requests from all slipping under a token limit none of them has yet been
 * charged for.
 *
 * Sharing. Workers find entries under a read lock on the table (shared, so
 * they do not exclude each other) and update one entry under its own mutex;
 * only creating an entry or a reload's pruning takes the write lock. Entries
 * follow the key name across reloads; the limits themselves are read from the
 * request's config snapshot, so a changed limit applies to the next request.
 *
 * Instances. With a redis section (and limits.shared) the windows live in
 * Redis instead, so N instances enforce one limit (limits_redis.c): the stage
 * is then pending on one script call, and decides with this table when Redis
 * is down or slow — for that request only. */
#include "sluice/limits.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/limits_redis.h"
#include "sluice/limits_window.h"
#include "sluice/log.h"
#include "sluice/pipeline.h"
#include "sluice/util/clock.h"
#include "sluice/util/strtable.h"
#include "sluice/worker.h"
#include "sluice/provider_util.h"

void limits_format_duration(uint64_t ms, char *out, size_t size)
{
    if (ms < 1000) {
        snprintf(out, size, "%llums", (unsigned long long)ms);
        return;
    }
    unsigned long long minutes = ms / 60000, seconds = ms % 60000 / 1000, millis = ms % 1000;
    char fraction[8] = "";
    if (millis != 0) {
        snprintf(fraction, sizeof fraction, ".%03llu", millis);
        for (size_t end = strlen(fraction); fraction[end - 1] == '0'; end--)
            fraction[end - 1] = '\0';
    }
    if (minutes != 0)
        snprintf(out, size, "%llum%llu%ss", minutes, seconds, fraction);
    else
        snprintf(out, size, "%llu%ss", seconds, fraction);
}

/* ---- the table ---------------------------------------------------------- */

/* Owner: the table (entries linked in by name). */
typedef struct limits_entry {
    strtable_link_t link; /* keyed by name */
    char *name;
    pthread_mutex_t lock; /* guards everything below */
    uint64_t epoch;       /* changes whenever the windows are reset */
    uint64_t bucket_ms;
    limits_window_t requests;
    limits_window_t tokens;
} limits_entry_t;

static pthread_rwlock_t table_lock = PTHREAD_RWLOCK_INITIALIZER;
static strtable_t table = STRTABLE_INIT;
static atomic_uint_fast64_t next_epoch = 1;

static limits_entry_t *entry_of(strtable_link_t *link)
{
    return link != NULL ? STRTABLE_ENTRY(link, limits_entry_t, link) : NULL;
}

/* Under the table lock (either mode). */
static limits_entry_t *find(const char *name, uint64_t hash) { return entry_of(strtable_find(&table, name, hash)); }

/* Under the write lock. */
static limits_entry_t *insert(const char *name, uint64_t hash)
{
    limits_entry_t *entry = calloc(1, sizeof *entry);
    if (entry == NULL || (entry->name = strdup(name)) == NULL ||
        strtable_insert(&table, &entry->link, entry->name, hash) != 0) {
        if (entry != NULL)
            free(entry->name);
        free(entry);
        return NULL;
    }
    pthread_mutex_init(&entry->lock, NULL);
    entry->epoch = atomic_fetch_add(&next_epoch, 1);
    return entry;
}

static void entry_free(limits_entry_t *entry)
{
    pthread_mutex_destroy(&entry->lock);
    free(entry->name);
    free(entry);
}

/* A window's buckets are this long; 1000 ms for the one-minute window. */
static uint64_t bucket_ms_for(long window_seconds)
{
    uint64_t window_ms = (uint64_t)(window_seconds > 0 ? window_seconds : 60) * 1000;
    uint64_t bucket_ms = window_ms / LIMITS_BUCKETS;
    return bucket_ms ? bucket_ms : 1;
}

/* Under the entry's lock: a new window length starts the counts afresh. */
static void entry_use_bucket(limits_entry_t *entry, uint64_t bucket_ms)
{
    if (entry->bucket_ms == bucket_ms)
        return;
    memset(&entry->requests, 0, sizeof entry->requests);
    memset(&entry->tokens, 0, sizeof entry->tokens);
    entry->bucket_ms = bucket_ms;
    entry->epoch = atomic_fetch_add(&next_epoch, 1);
}

static void describe(limits_window_t *window, uint64_t now_ms, uint64_t bucket_ms, long limit, bool is_exceeded,
                     limits_state_t *state)
{
    memset(state, 0, sizeof *state);
    state->limit = limit;
    if (limit == 0)
        return;
    int64_t used = limits_window_total(window, now_ms, bucket_ms);
    state->used = (long)(used > 0 ? used : 0);
    state->remaining = state->used < limit ? limit - state->used : 0;
    state->reset_ms = limits_window_reset_ms(window, now_ms, bucket_ms);
    state->is_exceeded = is_exceeded;
    if (is_exceeded)
        state->wait_ms = limits_window_wait_ms(window, now_ms, bucket_ms, limit);
}

bool limits_admit(const key_config_t *key, long window_seconds, uint64_t now_ms, long estimated_tokens,
                  limits_ticket_t *ticket, limits_state_t *requests, limits_state_t *tokens)
{
    memset(ticket, 0, sizeof *ticket);
    memset(requests, 0, sizeof *requests);
    memset(tokens, 0, sizeof *tokens);
    if (key->rpm == 0 && key->tpm == 0)
        return true;
    uint64_t hash = strtable_hash(key->name);
    uint64_t bucket_ms = bucket_ms_for(window_seconds);
    pthread_rwlock_rdlock(&table_lock);
    limits_entry_t *entry = find(key->name, hash);
    if (entry == NULL) {
        /* First request of this key: create its entry under the write lock. */
        pthread_rwlock_unlock(&table_lock);
        pthread_rwlock_wrlock(&table_lock);
        entry = find(key->name, hash);
        if (entry == NULL && (entry = insert(key->name, hash)) == NULL) {
            pthread_rwlock_unlock(&table_lock);
            log_warn("limits: out of memory creating the counters of key '%s'; admitting unchecked", key->name);
            return true;
        }
    }
    pthread_mutex_lock(&entry->lock);
    entry_use_bucket(entry, bucket_ms);
    bool is_requests_over =
        key->rpm > 0 && limits_window_total(&entry->requests, now_ms, bucket_ms) >= key->rpm;
    bool is_tokens_over = key->tpm > 0 && limits_window_total(&entry->tokens, now_ms, bucket_ms) >= key->tpm;
    bool is_admitted = !is_requests_over && !is_tokens_over;
    if (is_admitted) {
        int64_t reserve = estimated_tokens > 0 ? estimated_tokens : 0;
        limits_window_add(&entry->requests, now_ms, bucket_ms, 1);
        limits_window_add(&entry->tokens, now_ms, bucket_ms, reserve);
        *ticket = (limits_ticket_t){.epoch = entry->epoch, .bucket = entry->tokens.head, .reserved_tokens = reserve};
    }
    describe(&entry->requests, now_ms, bucket_ms, key->rpm, is_requests_over, requests);
    describe(&entry->tokens, now_ms, bucket_ms, key->tpm, is_tokens_over, tokens);
    pthread_mutex_unlock(&entry->lock);
    pthread_rwlock_unlock(&table_lock);
    return is_admitted;
}

void limits_record(const key_config_t *key, long window_seconds, uint64_t now_ms, const limits_ticket_t *ticket,
                   long actual_tokens)
{
    if (ticket == NULL || ticket->epoch == 0)
        return;
    uint64_t bucket_ms = bucket_ms_for(window_seconds);
    pthread_rwlock_rdlock(&table_lock);
    limits_entry_t *entry = find(key->name, strtable_hash(key->name));
    if (entry != NULL) {
        pthread_mutex_lock(&entry->lock);
        if (entry->epoch == ticket->epoch && entry->bucket_ms == bucket_ms) {
            limits_window_advance(&entry->tokens, now_ms, bucket_ms);
            limits_window_add_at(&entry->tokens, ticket->bucket, -ticket->reserved_tokens);
            if (actual_tokens > 0)
                limits_window_add(&entry->tokens, now_ms, bucket_ms, actual_tokens);
        }
        pthread_mutex_unlock(&entry->lock);
    }
    pthread_rwlock_unlock(&table_lock);
}

static bool is_limited_in(const config_t *config, const char *name)
{
    for (size_t i = 0; i < config->key_count; i++)
        if (strcmp(config->keys[i].name, name) == 0)
            return config->keys[i].rpm > 0 || config->keys[i].tpm > 0;
    return false;
}

void limits_reconfigure(const config_t *config)
{
    pthread_rwlock_wrlock(&table_lock);
    for (strtable_link_t *link = strtable_first(&table), *next; link != NULL; link = next) {
        next = strtable_next(&table, link);
        limits_entry_t *entry = entry_of(link);
        if (is_limited_in(config, entry->name))
            continue;
        strtable_remove(&table, link);
        entry_free(entry);
    }
    pthread_rwlock_unlock(&table_lock);
}

void limits_reset(void)
{
    pthread_rwlock_wrlock(&table_lock);
    for (strtable_link_t *link = strtable_first(&table), *next; link != NULL; link = next) {
        next = strtable_next(&table, link);
        entry_free(entry_of(link));
    }
    strtable_release(&table);
    pthread_rwlock_unlock(&table_lock);
}

size_t limits_entry_count(void)
{
    pthread_rwlock_rdlock(&table_lock);
    size_t count = table.count;
    pthread_rwlock_unlock(&table_lock);
    return count;
}

/* ---- the stage ---------------------------------------------------------- */

static uint64_t now_ms(void)
{
    return clock_monotonic_us() / 1000;
}

/* What admission reserves for tokens before the provider reports usage:
 * about a token per four bytes of request body, plus the completion cap. */
static long estimate_tokens(const request_t *request)
{
    long cap = provider_max_tokens(request->body);
    return (long)(request->bytes_in / 4) + (cap > 0 ? cap : 0);
}

static void add_headers(request_t *request, const char *dimension, const limits_state_t *state)
{
    if (state->limit == 0)
        return;
    char name[48], value[32];
    snprintf(name, sizeof name, "x-ratelimit-limit-%s", dimension);
    snprintf(value, sizeof value, "%ld", state->limit);
    request_add_header(request, name, value);
    snprintf(name, sizeof name, "x-ratelimit-remaining-%s", dimension);
    snprintf(value, sizeof value, "%ld", state->remaining);
    request_add_header(request, name, value);
    snprintf(name, sizeof name, "x-ratelimit-reset-%s", dimension);
    limits_format_duration(state->reset_ms, value, sizeof value);
    request_add_header(request, name, value);
}

/* Answers the stage from a decision: headers, then continue or a 429. */
static stage_result_t decide(request_t *request, bool is_admitted, limits_ticket_t *ticket,
                             const limits_state_t *requests, const limits_state_t *tokens, long estimate)
{
    const key_config_t *key = request->key;
    long window_seconds = request->config->limits.window_seconds;
    add_headers(request, "requests", requests);
    add_headers(request, "tokens", tokens);
    if (is_admitted) {
        request->stage_context[STAGE_SLOT_LIMITS] = ticket;
        return STAGE_CONTINUE;
    }
    /* Wait for every exceeded dimension, so a client retrying then gets in. */
    uint64_t wait_ms = requests->wait_ms > tokens->wait_ms ? requests->wait_ms : tokens->wait_ms;
    long retry_after = (long)((wait_ms + 999) / 1000);
    char text[24], again[32], per[24];
    snprintf(text, sizeof text, "%ld", retry_after > 0 ? retry_after : 1);
    request_add_header(request, "retry-after", text);
    limits_format_duration(wait_ms, again, sizeof again);
    if (window_seconds == 60)
        snprintf(per, sizeof per, "min");
    else
        snprintf(per, sizeof per, "%lds", window_seconds);
    const limits_state_t *over = requests->is_exceeded ? requests : tokens;
    const char *type = requests->is_exceeded ? "requests" : "tokens";
    request_reply_error(request, 429, type, "rate_limit_exceeded", NULL,
                        "Rate limit reached for key '%s' on %s per %s (%s): Limit %ld, Used %ld, Requested %ld. "
                        "Please try again in %s.",
                        key->name, type, per, requests->is_exceeded ? "RPM" : "TPM", over->limit, over->used,
                        requests->is_exceeded ? 1L : estimate, again);
    return STAGE_RESPONDED;
}

/* The in-process window decides (no redis, or redis unavailable). */
static stage_result_t decide_locally(request_t *request, limits_ticket_t *ticket)
{
    long estimate = estimate_tokens(request);
    limits_state_t requests, tokens;
    bool is_admitted = limits_admit(request->key, request->config->limits.window_seconds, now_ms(), estimate, ticket,
                                    &requests, &tokens);
    return decide(request, is_admitted, ticket, &requests, &tokens, estimate);
}

/* The shared admission is answered (reply) or must be decided locally (NULL). */
static void on_shared_decision(request_t *request, const limits_redis_reply_t *reply, limits_redis_outcome_t outcome)
{
    (void)outcome;
    limits_ticket_t *ticket = request->stage_context[STAGE_SLOT_LIMITS];
    request->stage_context[STAGE_SLOT_LIMITS] = NULL;
    stage_result_t result;
    if (reply == NULL) {
        result = decide_locally(request, ticket);
    } else {
        const key_config_t *key = request->key;
        uint64_t bucket_ms = bucket_ms_for(request->config->limits.window_seconds);
        limits_window_t requests_window = reply->requests, tokens_window = reply->tokens;
        long estimate = estimate_tokens(request);
        bool is_requests_over = !reply->is_admitted && key->rpm > 0 && requests_window.total >= key->rpm;
        bool is_tokens_over = !reply->is_admitted && key->tpm > 0 && tokens_window.total >= key->tpm;
        limits_state_t requests, tokens;
        describe(&requests_window, reply->now_ms, bucket_ms, key->rpm, is_requests_over, &requests);
        describe(&tokens_window, reply->now_ms, bucket_ms, key->tpm, is_tokens_over, &tokens);
        memset(ticket, 0, sizeof *ticket);
        if (reply->is_admitted)
            *ticket = (limits_ticket_t){.epoch = 1, .bucket = reply->head,
                                        .reserved_tokens = estimate > 0 ? estimate : 0, .is_shared = true};
        result = decide(request, reply->is_admitted, ticket, &requests, &tokens, estimate);
    }
    if (request->is_client_gone) {
        /* Gone while we waited: nothing goes upstream; the completion gives back the reservation. */
        if (result == STAGE_CONTINUE)
            request_note_client_gone(request);
        result = STAGE_RESPONDED;
    }
    pipeline_resume(request, result);
}

static stage_result_t limits_on_request(request_t *request)
{
    const key_config_t *key = request->key;
    if (key == NULL || (key->rpm == 0 && key->tpm == 0) || request->endpoint == ENDPOINT_MODELS)
        return STAGE_CONTINUE;
    limits_ticket_t *ticket = arena_alloc(&request->arena, sizeof *ticket);
    if (ticket == NULL)
        return STAGE_ERROR;
    memset(ticket, 0, sizeof *ticket);
    const config_t *config = request->config;
    limits_redis_t *shared = request->worker != NULL ? request->worker->stage_state[STAGE_SLOT_LIMITS] : NULL;
    if (shared != NULL && config->redis.is_configured && config->limits.is_shared) {
        /* The ticket rides on the request while pending (the callback takes it back). */
        request->stage_context[STAGE_SLOT_LIMITS] = ticket;
        if (limits_redis_admit(shared, request, key, bucket_ms_for(config->limits.window_seconds),
                               estimate_tokens(request), config->limits.redis_timeout_ms, on_shared_decision) == 0)
            return STAGE_PENDING;
        request->stage_context[STAGE_SLOT_LIMITS] = NULL;
    }
    return decide_locally(request, ticket);
}

/* Tokens the call consumed: the provider's usage; nothing for a cache hit or
 * a call that failed before an answer; the estimate when an answer went out
 * but its usage is unknown (a stream cut short, a provider that sent none). */
static long consumed_tokens(const request_t *request, const limits_ticket_t *ticket)
{
    if (request->cache_outcome == CACHE_OUTCOME_HIT || request->provider == NULL)
        return 0;
    if (request->usage.is_known)
        return request->usage.prompt_tokens + request->usage.completion_tokens;
    bool has_answered = request->status >= 200 && request->status < 300;
    return has_answered ? (long)ticket->reserved_tokens : 0;
}

static void limits_on_complete(request_t *request)
{
    const limits_ticket_t *ticket = request->stage_context[STAGE_SLOT_LIMITS];
    if (ticket == NULL)
        return;
    if (ticket->is_shared) {
        limits_redis_record(request->worker->stage_state[STAGE_SLOT_LIMITS], request->key->name,
                            bucket_ms_for(request->config->limits.window_seconds), ticket->bucket, 0,
                            (long)ticket->reserved_tokens, consumed_tokens(request, ticket));
        return;
    }
    limits_record(request->key, request->config->limits.window_seconds, now_ms(), ticket,
                  consumed_tokens(request, ticket));
}

/* ---- the stage's other hooks ------------------------------------------------ */

static void limits_on_reconfigure(const config_t *old_config, const config_t *new_config)
{
    (void)old_config;
    limits_reconfigure(new_config);
}

/* With limits shared through Redis, each worker keeps its own connection. */
static int limits_worker_init(worker_t *worker, const config_t *config)
{
    if (!config->redis.is_configured || !config->limits.is_shared)
        return 0;
    worker->stage_state[STAGE_SLOT_LIMITS] = limits_redis_new(worker, &config->redis);
    return worker->stage_state[STAGE_SLOT_LIMITS] != NULL ? 0 : -1;
}

static void limits_worker_free(worker_t *worker)
{
    limits_redis_free(worker->stage_state[STAGE_SLOT_LIMITS]);
    worker->stage_state[STAGE_SLOT_LIMITS] = NULL;
}

static void limits_metrics_render(buf_t *out) { (void)limits_redis_metrics_render(out); }

const stage_t stage_limits = {
    .name = "limits",
    .slot = STAGE_SLOT_LIMITS,
    .on_reconfigure = limits_on_reconfigure,
    .on_shutdown = limits_reset,
    .on_worker_init = limits_worker_init,
    .on_worker_free = limits_worker_free,
    .on_request = limits_on_request,
    .on_complete = limits_on_complete,
    .on_metrics = limits_metrics_render,
};
