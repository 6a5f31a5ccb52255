/* limits_redis.h — rate-limit windows shared by every instance through Redis.
 *
 * With a redis section (and limits.shared, the default), the limits stage
 * asks Redis instead of the in-process table: one Lua script per admission
 * reads both windows of the key, decides, and records the request and its
 * token reservation atomically, so N instances enforce one limit; one script
 * per completion replaces the reservation with the actual usage. Time is the
 * Redis server's clock, so instances with skewed clocks agree on buckets.
 *
 * Each worker has its own async connection on its own event_base (callbacks
 * run on the worker's thread). When it is down, or a reply takes longer than
 * limits.redis_timeout_ms, the stage falls back to the in-process window for
 * that request: the request is never failed because Redis is. The outage is
 * logged once per process (and its end once), and counted in metrics. */
#ifndef SLUICE_LIMITS_REDIS_H
#define SLUICE_LIMITS_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/config.h"
#include "sluice/limits_window.h"

struct worker;
struct redisReply;
struct request;

/* Owner: worker_t.limits_redis. */
typedef struct limits_redis limits_redis_t;

limits_redis_t *limits_redis_new(struct worker *worker, const redis_config_t *config);
void limits_redis_free(limits_redis_t *redis);

/* What the admission script answered. */
typedef struct limits_redis_reply {
    bool is_admitted;
    uint64_t now_ms;  /* the Redis server's clock */
    uint64_t head;    /* now_ms / bucket_ms: the bucket the request went into */
    limits_window_t requests;
    limits_window_t tokens;
} limits_redis_reply_t;

/* Why an admission was decided locally (metrics). */
typedef enum {
    LIMITS_REDIS_SHARED,   /* decided by Redis */
    LIMITS_REDIS_DOWN,     /* not connected */
    LIMITS_REDIS_TIMEOUT,  /* no reply within the timeout */
    LIMITS_REDIS_ERROR,    /* an error or malformed reply */
    LIMITS_REDIS_OUTCOMES,
} limits_redis_outcome_t;

/* Called once on the worker's thread: reply is NULL when the admission must
 * be decided locally (outcome says why). */
typedef void limits_redis_done_fn(struct request *request, const limits_redis_reply_t *reply,
                                  limits_redis_outcome_t outcome);

/* Starts a shared admission for key. Returns 0 when done will be called
 * later (the stage is pending), -1 when Redis cannot be asked now (the
 * caller decides locally at once; the outcome is counted). */
int limits_redis_admit(limits_redis_t *redis, struct request *request, const key_config_t *key, uint64_t bucket_ms,
                       long estimated_tokens, long timeout_ms, limits_redis_done_fn *done);
/* Completion true-up of a shared admission (fire and forget): removes
 * request_delta requests and reserved tokens from bucket, adds
 * actual_tokens to the current bucket. */
void limits_redis_record(limits_redis_t *redis, const char *key_name, uint64_t bucket_ms, uint64_t bucket,
                         long request_delta, long reserved_tokens, long actual_tokens);

/* ---- pure parts, shared with tests ---- */

/* The two Redis keys of a key's windows: PREFIX:limits:{NAME}:BUCKET_MS:r and :t. */
int limits_redis_key_names(const char *prefix, const char *key_name, uint64_t bucket_ms, char *requests,
                           char *tokens, size_t size);
/* The EVALSHA arguments of an admission (argv[0..8]); numbers are written
 * into numbers (5 slots of 24 bytes). Returns the argument count. */
int limits_redis_admit_args(const char *sha, const char *requests_key, const char *tokens_key, uint64_t bucket_ms,
                            long rpm, long tpm, long estimated_tokens, const char **argv, char (*numbers)[24]);
/* Parses the admission script's reply. Returns 0, or -1 when it is an
 * error or malformed (the caller then falls back). */
int limits_redis_parse_admit(const struct redisReply *reply, limits_redis_reply_t *out);
/* Whether a failed admission should be logged: true for the first failure
 * of an outage (process-wide); limits_redis_note_up ends the outage. */
bool limits_redis_note_down(void);
bool limits_redis_note_up(void);
/* Counts an admission by outcome. */
void limits_redis_count(limits_redis_outcome_t outcome);
/* sluice_limits_redis_* lines for /metrics. */
struct buf;
int limits_redis_metrics_render(struct buf *out);

/* The scripts (tests load them into a real redis-server). */
extern const char limits_redis_admit_script[];
extern const char limits_redis_record_script[];

#endif
