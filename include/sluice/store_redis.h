/* store_redis.h — the Redis side of the cache: entries shared between gateway
 * instances.
 *
 * Redis 7.0 has no vector search, so Redis is the shared record and each
 * instance searches its own in-process index (cache_store), kept in step:
 * on start the follower connection loads every entry (SCAN + GET); every
 * admission is written (SET with PX = its longest TTL) and published on a
 * channel with the entry itself; every invalidation is deleted and published
 * as an operation (by ids, model, scope or all) that each instance applies.
 * TTLs are wall-clock instants stored in the entry, so all instances expire
 * it at the same moment without notifications.
 *
 * Every worker has its own async connection on its own event_base for
 * writes; worker 0 also owns the follower (a subscriber plus a loader
 * connection). While the follower is not connected and loaded, the local
 * index may be stale, so the cache answers miss and admits nothing — and
 * says so in logs and metrics; requests go upstream as usual. */
#ifndef SLUICE_STORE_REDIS_H
#define SLUICE_STORE_REDIS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "sluice/cache_store.h"
#include "sluice/config.h"

struct worker;

/* Owner: cache_worker (one per worker). */
typedef struct store_redis store_redis_t;

store_redis_t *store_redis_new(struct worker *worker, const redis_config_t *config, cache_store_t *store,
                               bool is_follower);
void store_redis_free(store_redis_t *redis);
/* True while the follower is connected and has loaded the entries. */
bool store_redis_is_in_step(void);
/* Writes and publishes an admitted entry. Returns 0, or -1 when not connected. */
int store_redis_put(store_redis_t *redis, const cache_record_t *record, uint64_t now_ms);
/* Deletes the ids and publishes an invalidation the other instances apply
 * (match describes it; ids are the entries this instance removed). */
int store_redis_invalidate(store_redis_t *redis, const cache_match_t *match, const char *const *ids, size_t count);

/* Entry (de)serialisation, shared with tests: a JSON object, vector in base64. */
json_t *store_redis_encode(const cache_record_t *record);
/* Fills record from entry; its strings point into entry and its vector into
 * *vector (malloc'ed, the caller frees it). Returns 0 or -1 when malformed. */
int store_redis_decode(const json_t *entry, cache_record_t *record, float **vector);

#endif
