/* admin_cache.h — the cache's admin API (admin keys only).
 *
 *   GET  /admin/cache/stats        entries, bytes, partitions, evictions, lookups, hits, saved USD
 *   POST /admin/cache/invalidate   one of {"id"}, {"model"}, {"scope"}, {"all":true} or
 *                                  {"text", "threshold"?, "model"?, "scope"?}: entries whose
 *                                  builtin embedding is at least threshold close to text
 *
 * Invalidations apply to this instance's store and, with the Redis backend,
 * are deleted there and published so every instance applies them. */
#ifndef SLUICE_ADMIN_CACHE_H
#define SLUICE_ADMIN_CACHE_H

#include <stddef.h>

struct evhttp_request;
struct worker;

/* Handles a request whose path starts with /admin/cache. */
void admin_cache_handle(struct evhttp_request *http, struct worker *worker, const char *path, size_t path_length);

#endif
