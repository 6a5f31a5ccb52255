/* cache.h — what the two cache stages share: the per-request policy (is this
 * request cacheable, may it be served, may it be admitted), the keys and the
 * partition, serving a hit as JSON or as an OpenAI stream, admitting a
 * complete answer, and the cache's metrics and log fields.
 *
 * Stages: cache_exact.c (stage_cache_exact) runs first and decides the policy
 * for both; cache_semantic.c (stage_cache_semantic) embeds and searches. The
 * exact stage's completion hook admits the answer for both layers, with the
 * vector the semantic stage left in the request's cache state. */
#ifndef SLUICE_CACHE_H
#define SLUICE_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/cache_store.h"
#include "sluice/pipeline.h"
#include "sluice/request.h"
#include "sluice/util/buf.h"

struct worker;
struct embed_call;
struct store_redis;

/* Owner: worker_t.stage_state[STAGE_SLOT_CACHE] (cache_worker_init / cache_worker_free). */
typedef struct cache_worker {
    cache_store_t *store;       /* the process-wide store, shared by workers */
    struct store_redis *redis;  /* this worker's Redis connection; NULL with the memory backend */
} cache_worker_t;

/* Owner: the request's arena (request->stage_context[STAGE_SLOT_CACHE]);
 * capture is freed by cache_finish. */
typedef struct cache_request {
    bool may_serve;          /* not refresh / no-cache */
    bool may_admit;          /* not no-store, store reachable */
    bool is_exact_enabled;   /* for this model */
    bool is_semantic_enabled;
    long exact_ttl_s;
    long semantic_ttl_s;
    float threshold;
    const char *scope;       /* "key:NAME", "team:NAME", "global", "open" */
    unsigned char key[CACHE_KEY_LENGTH];
    uint64_t partition;
    float *vector;           /* arena; NULL until embedded (or when embedding failed) */
    int dim;
    const char *outcome;     /* log: hit | miss | skip | refresh | error */
    const char *layer;       /* exact | semantic, on a hit */
    const char *reason;      /* why skip / error */
    const char *entry_id;
    float similarity;
    uint64_t lookup_us;      /* time spent looking (both layers, embedding included) */
    double saved_usd;
    bool is_saved_priced;
    uint64_t started_us;
    buf_t capture;           /* a copy of the answer the client is sent, for admission */
    bool is_capturing;       /* a miss the cache may admit: the response filter copies */
    bool is_capture_broken;  /* a copy failed or was too long: never admit it */
    struct embed_call *embed_call; /* a provider embedding in flight */
} cache_request_t;

/* The request's cache state (NULL when the cache stages did not look) and the
 * worker's cache resources. */
cache_request_t *cache_request_of(const request_t *request);
cache_worker_t *cache_worker_of(const struct worker *worker);
/* Decides the policy and computes the exact key. Returns the state, or NULL
 * when the cache does not apply (then request->cache_outcome says why). */
cache_request_t *cache_request_begin(request_t *request);
/* Serves found as the answer (JSON or SSE), sets headers and log fields. */
void cache_serve_hit(request_t *request, const cache_found_t *found, const char *layer);
/* Called before the request goes upstream on a miss: ask for the answer copy. */
void cache_note_miss(request_t *request);
/* Response filter: copies what the client is sent while a miss may be admitted. */
void cache_capture(request_t *request, response_piece_t *piece);
/* Completion: admit the captured answer if it qualifies; free the capture. */
void cache_finish(request_t *request);
/* The text the semantic layer embeds (arena), NULL when there is none. */
const char *cache_embed_text(request_t *request, size_t *length);
/* The semantic partition: model, scope, embedder, instructions, earlier turns, params. */
uint64_t cache_partition(request_t *request, const char *embedder);

/* Lookup results, for metrics. */
typedef enum { CACHE_COUNT_HIT_EXACT, CACHE_COUNT_HIT_SEMANTIC, CACHE_COUNT_MISS, CACHE_COUNT_SKIP,
               CACHE_COUNT_ERROR, CACHE_COUNT_ADMITTED, CACHE_COUNT_REJECTED, CACHE_COUNT_STORE_ERRORS,
               CACHE_COUNT_EMBED_ERRORS, CACHE_COUNT_KINDS } cache_count_t;
void cache_count(cache_count_t kind);
/* Prometheus lines for the cache. */
void cache_metrics_render(buf_t *out);
/* ,"cache":... fields for the access log line. */
void cache_log_fields(const request_t *request, buf_t *line);

/* Per-worker cache resources: the shared store and, with backend redis, the
 * worker's Redis connection (the exact stage's worker hooks). */
int cache_worker_init(struct worker *worker, const config_t *config);
void cache_worker_free(struct worker *worker);

#endif
