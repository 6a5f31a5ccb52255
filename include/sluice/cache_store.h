/* cache_store.h — the process's cache entries: exact map, vector partitions,
 * TTL, LRU eviction under an entry and a memory bound.
 *
 * One store serves every worker (a hit must not depend on which worker the
 * kernel gave the connection to), behind a reader/writer lock: lookups share
 * it, admissions and deletions take it alone. An entry is one cached answer
 * with up to two ways in: its exact key (a SHA-256 of the normalised request
 * and scope) and, when the semantic layer admitted it, a vector in the
 * partition named by a 64-bit partition hash (model, scope, instructions).
 * Each way has its own expiry. An entry's id is the hex of its exact key's
 * first 8 bytes, so every gateway instance sharing a Redis names it alike.
 *
 * LRU: each hit stamps the entry (an atomic store, under the shared lock);
 * when a bound is exceeded the least recently used entry is removed. Expiry
 * is never extended by a hit — a stale answer must die on time. */
#ifndef SLUICE_CACHE_STORE_H
#define SLUICE_CACHE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/util/arena.h"

enum { CACHE_KEY_LENGTH = 32, CACHE_ID_LENGTH = 16 };

/* What an admission stores (all pointers are copied). */
typedef struct cache_record {
    unsigned char key[CACHE_KEY_LENGTH];
    uint64_t partition;    /* 0: no vector */
    const float *vector;   /* unit length, dim floats; NULL: exact only */
    int dim;
    const char *model;     /* resolved model name, for invalidation by model */
    const char *scope;     /* e.g. "key:app", for invalidation by scope */
    uint64_t created_ms;   /* wall clock */
    uint64_t exact_expires_ms;    /* 0: not reachable by exact key */
    uint64_t semantic_expires_ms; /* 0: not reachable by vector */
    const char *answer;    /* the stored answer (JSON text) */
    size_t answer_length;
} cache_record_t;

/* A lookup's result; strings in the caller's arena. */
typedef struct cache_found {
    char id[CACHE_ID_LENGTH + 1];
    const char *answer;
    size_t answer_length;
    float similarity; /* 1 for an exact hit */
} cache_found_t;

typedef struct cache_stats {
    size_t entries;
    size_t vectors;
    size_t partitions;
    size_t bytes;
    uint64_t evictions;
    uint64_t expirations;
    size_t max_entries;
    size_t max_bytes;
} cache_stats_t;

/* Owner: whoever created it; the gateway's is shared by its workers
 * (cache_store_shared_acquire/release). */
typedef struct cache_store cache_store_t;

cache_store_t *cache_store_new(size_t max_entries, size_t max_bytes);
void cache_store_free(cache_store_t *store);
void cache_store_set_limits(cache_store_t *store, size_t max_entries, size_t max_bytes);

/* The process-wide store, created by the first acquire and freed by the last release. */
cache_store_t *cache_store_shared_acquire(void);
void cache_store_shared_release(void);

void cache_store_id_from_key(const unsigned char key[CACHE_KEY_LENGTH], char id[CACHE_ID_LENGTH + 1]);

/* Inserts or replaces the entry with record's key, then evicts and sweeps.
 * Returns 0, or -1 when out of memory or the vector does not fit. */
int cache_store_put(cache_store_t *store, const cache_record_t *record, uint64_t now_ms);

/* Exact lookup: 1 found (copied into arena), 0 none or expired, -1 out of memory. */
int cache_store_get_exact(cache_store_t *store, const unsigned char key[CACHE_KEY_LENGTH], uint64_t now_ms,
                          arena_t *arena, cache_found_t *found);
/* Best unexpired vector in partition with similarity >= threshold: 1, 0 or -1. */
int cache_store_search(cache_store_t *store, uint64_t partition, const float *vector, int dim, float threshold,
                       uint64_t now_ms, arena_t *arena, cache_found_t *found);

/* Invalidation: an entry is removed when every given condition holds (NULL = any). */
typedef struct cache_match {
    const char *id;
    const char *model;
    const char *scope;
    const float *vector; /* with threshold: entries at least this close */
    int dim;
    float threshold;
} cache_match_t;

/* Called with each removed entry's id (e.g. to delete it from Redis). */
typedef void (*cache_removed_t)(void *argument, const char *id);
size_t cache_store_remove(cache_store_t *store, const cache_match_t *match, cache_removed_t removed, void *argument);

void cache_store_stats(cache_store_t *store, cache_stats_t *stats);

#endif
