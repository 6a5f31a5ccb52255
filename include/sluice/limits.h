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
#include "sluice/limits_window.h"

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
