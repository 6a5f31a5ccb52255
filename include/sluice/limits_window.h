/* limits_window.h — the sliding window that rate limits count in: a ring of
 * buckets summing what happened in the last LIMITS_BUCKETS buckets. Used by
 * the limits stage's process-wide table (limits.c) and, as the shape of a
 * reply, by the Redis store that shares windows across instances
 * (limits_redis.c). Time is passed in, so the math is tested without sleeping. */
#ifndef SLUICE_LIMITS_WINDOW_H
#define SLUICE_LIMITS_WINDOW_H

#include <stdint.h>

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
/* Adds amount to an absolute bucket, if it is still inside the window. */
void limits_window_add_at(limits_window_t *window, uint64_t bucket, int64_t amount);
/* What the window holds at now_ms. */
int64_t limits_window_total(limits_window_t *window, uint64_t now_ms, uint64_t bucket_ms);
/* Milliseconds from now_ms until the total drops below limit (0 if it is
 * already below): the wait before the window admits again. */
uint64_t limits_window_wait_ms(limits_window_t *window, uint64_t now_ms, uint64_t bucket_ms, int64_t limit);
/* Milliseconds until the window is empty (0 if it is): OpenAI's "reset". */
uint64_t limits_window_reset_ms(limits_window_t *window, uint64_t now_ms, uint64_t bucket_ms);

#endif
