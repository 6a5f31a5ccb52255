/* limits.h — per-key request and token rate limits (the limits stage).
 *
 * A virtual key may carry rpm (requests per minute) and tpm (tokens per
 * minute, prompt + completion). The stage (stage_limits in pipeline.h)
 * admits a request or answers 429 with retry-after before anything is spent
 * upstream or served from cache. The counters live in one process-wide table
 * keyed by key name, shared by all workers, each entry behind its own mutex;
 * they survive config reloads and follow the key name, while the limits are
 * read from the request's config snapshot, so a changed limit applies at once.
 *
 * The functions below take the time explicitly so the window math can be
 * tested without sleeping; the stage passes the monotonic clock. */
#ifndef SLUICE_LIMITS_H
#define SLUICE_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/config.h"

/* The window is this many buckets of window_seconds * 1000 / LIMITS_BUCKETS ms. */
enum { LIMITS_BUCKETS = 60 };

/* A sliding window: a ring of buckets summing what happened in the last
 * LIMITS_BUCKETS buckets. Owner: a limits table entry (or a test's stack). */
typedef struct limits_window {
    uint64_t head; /* absolute number (time / bucket_ms) of the newest bucket */
    int64_t counts[LIMITS_BUCKETS];
    int64_t total;
} limits_window_t;

/* Moves the window to the bucket of now_ms, dropping buckets that left it. */
void limits_window_advance(limits_window_t *window, uint64_t now_ms, uint64_t bucket_ms);
/* Adds amount (may be negative) to the bucket of now_ms. */
void limits_window_add(limits_window_t *window, uint64_t now_ms, uint64_t bucket_ms, int64_t amount);
/* What the window holds at now_ms. */
int64_t limits_window_total(limits_window_t *window, uint64_t now_ms, uint64_t bucket_ms);
/* Milliseconds from now_ms until the total drops below limit (0 if it is
 * already below): the wait before the window admits again. */
uint64_t limits_window_wait_ms(limits_window_t *window, uint64_t now_ms, uint64_t bucket_ms, int64_t limit);
/* Milliseconds until the window is empty (0 if it is): OpenAI's "reset". */
uint64_t limits_window_reset_ms(limits_window_t *window, uint64_t now_ms, uint64_t bucket_ms);

/* The state of one dimension (requests or tokens) after a decision. */
typedef struct limits_state {
    long limit; /* 0 = this key has no such limit; the rest is then unset */
    long used;  /* in the window, after this request if it was admitted */
    long remaining;
    uint64_t reset_ms;
    uint64_t wait_ms; /* over the limit: until it admits again */
    bool is_exceeded;
} limits_state_t;

/* Owner: the caller (the request's arena). What an admission reserved, for
 * the completion true-up. */
typedef struct limits_ticket {
    uint64_t epoch;           /* the entry's generation; 0 = nothing reserved */
    uint64_t bucket;          /* absolute bucket the token estimate went into */
    int64_t reserved_tokens;
    bool is_shared;           /* admitted by Redis (limits_redis.h): trued up there */
} limits_ticket_t;

/* Decides whether key may send one more request estimated at
 * estimated_tokens. Admitted (returns true): counts the request, reserves
 * the estimate and fills ticket. Refused: counts nothing. requests and
 * tokens describe both dimensions for the x-ratelimit-* headers. */
bool limits_admit(const key_config_t *key, long window_seconds, uint64_t now_ms, long estimated_tokens,
                  limits_ticket_t *ticket, limits_state_t *requests, limits_state_t *tokens);
/* On completion: replaces the ticket's reservation with the tokens actually
 * used (0 for a call that consumed nothing). A no-op for an empty ticket or
 * an entry that has since been dropped or reset. */
void limits_record(const key_config_t *key, long window_seconds, uint64_t now_ms, const limits_ticket_t *ticket,
                   long actual_tokens);
/* After a reload: drops the counters of keys that no longer exist or no
 * longer have a limit, so the table stays as large as the config. */
void limits_reconfigure(const config_t *config);
/* Frees the whole table (shutdown, tests). */
void limits_reset(void);
/* Entries in the table (tests, metrics). */
size_t limits_entry_count(void);

/* Formats a duration the way OpenAI's x-ratelimit-reset-* headers do:
 * "20ms", "1s", "1.5s", "6m0s". */
void limits_format_duration(uint64_t ms, char *out, size_t size);

#endif
