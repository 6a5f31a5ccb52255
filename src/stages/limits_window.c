/* limits_window.c — the sliding window of rate limits (see limits_window.h). */
#include "sluice/limits_window.h"

#include <string.h>

void limits_window_advance(limits_window_t *window, uint64_t now_ms, uint64_t bucket_ms)
{
    uint64_t now_bucket = now_ms / bucket_ms;
    if (now_bucket <= window->head)
        return;
    if (now_bucket - window->head >= LIMITS_BUCKETS) {
        memset(window->counts, 0, sizeof window->counts);
        window->total = 0;
    } else {
        for (uint64_t bucket = window->head + 1; bucket <= now_bucket; bucket++) {
            window->total -= window->counts[bucket % LIMITS_BUCKETS];
            window->counts[bucket % LIMITS_BUCKETS] = 0;
        }
    }
    window->head = now_bucket;
}

void limits_window_add(limits_window_t *window, uint64_t now_ms, uint64_t bucket_ms, int64_t amount)
{
    limits_window_advance(window, now_ms, bucket_ms);
    window->counts[window->head % LIMITS_BUCKETS] += amount;
    window->total += amount;
}

void limits_window_add_at(limits_window_t *window, uint64_t bucket, int64_t amount)
{
    if (bucket > window->head || bucket + LIMITS_BUCKETS <= window->head)
        return;
    window->counts[bucket % LIMITS_BUCKETS] += amount;
    window->total += amount;
}

int64_t limits_window_total(limits_window_t *window, uint64_t now_ms, uint64_t bucket_ms)
{
    limits_window_advance(window, now_ms, bucket_ms);
    return window->total;
}

/* Bucket b counts until the window's head reaches b + LIMITS_BUCKETS. */
static uint64_t bucket_leaves_at_ms(uint64_t bucket, uint64_t bucket_ms)
{
    return (bucket + LIMITS_BUCKETS) * bucket_ms;
}

uint64_t limits_window_wait_ms(limits_window_t *window, uint64_t now_ms, uint64_t bucket_ms, int64_t limit)
{
    limits_window_advance(window, now_ms, bucket_ms);
    if (window->total < limit)
        return 0;
    int64_t left = window->total;
    for (uint64_t age = LIMITS_BUCKETS; age-- > 0;) { /* oldest bucket first */
        if (age > window->head)
            continue;
        uint64_t bucket = window->head - age;
        left -= window->counts[bucket % LIMITS_BUCKETS];
        if (left < limit)
            return bucket_leaves_at_ms(bucket, bucket_ms) - now_ms;
    }
    return bucket_leaves_at_ms(window->head, bucket_ms) - now_ms;
}

uint64_t limits_window_reset_ms(limits_window_t *window, uint64_t now_ms, uint64_t bucket_ms)
{
    limits_window_advance(window, now_ms, bucket_ms);
    for (uint64_t age = 0; age < LIMITS_BUCKETS && age <= window->head; age++) {
        uint64_t bucket = window->head - age;
        if (window->counts[bucket % LIMITS_BUCKETS] > 0)
            return bucket_leaves_at_ms(bucket, bucket_ms) - now_ms;
    }
    return 0;
}

