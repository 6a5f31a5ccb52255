/* cache_semantic.c — the semantic cache stage.
 *
 * Embeds the prompt (by default the last user message; the whole
 * conversation by config) and searches the request's partition — model,
 * scope, embedder, instructions, earlier turns and output parameters — for
 * the closest live entry; at or above the model's threshold it is served.
 * The builtin embedder runs inline (microseconds); the provider embedder is
 * an HTTP call on the worker's pool, so the stage is then pending and resumes
 * the pipeline from its callback. Any embedding failure is a miss. The vector
 * stays in the request's cache state for admission. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sluice/cache.h"
#include "sluice/embed.h"
#include "sluice/log.h"
#include "sluice/pipeline.h"
#include "sluice/util/clock.h"
#include "sluice/worker.h"


/* Searches with the vector now in state; serves a hit or notes the miss. */
static stage_result_t search(request_t *request)
{
    cache_request_t *state = cache_request_of(request);
    if (state->vector != NULL && state->may_serve) {
        cache_found_t found;
        int rc = cache_store_search(cache_worker_of(request->worker)->store, state->partition, state->vector, state->dim,
                                    state->threshold, clock_wall_ms(), &request->arena, &found);
        if (rc == 1) {
            cache_serve_hit(request, &found, "semantic");
            return STAGE_RESPONDED;
        }
    }
    cache_note_miss(request);
    return STAGE_CONTINUE;
}

static void on_embedded(void *argument, const float *vector, int dim, const char *failure)
{
    request_t *request = argument;
    cache_request_t *state = cache_request_of(request);
    state->embed_call = NULL;
    if (vector == NULL) {
        cache_count(CACHE_COUNT_EMBED_ERRORS);
        state->reason = failure;
        log_warn("cache: embedding for %s failed (%s): served as a miss", request->id, failure);
    } else if ((state->vector = arena_alloc(&request->arena, (size_t)dim * sizeof *vector)) != NULL) {
        memcpy(state->vector, vector, (size_t)dim * sizeof *vector);
        state->dim = dim % 32 == 0 ? dim : 0;
        if (state->dim == 0)
            state->vector = NULL; /* the index needs a multiple of 32 */
    }
    if (request->is_client_gone) {
        request_note_client_gone(request);
        pipeline_resume(request, STAGE_RESPONDED);
        return;
    }
    pipeline_resume(request, search(request));
}

static stage_result_t cache_semantic_on_request(request_t *request)
{
    cache_request_t *state = cache_request_of(request);
    if (state == NULL || request->cache_outcome != CACHE_OUTCOME_NONE)
        return STAGE_CONTINUE; /* no policy, or the exact stage already decided */
    if (!state->is_semantic_enabled)
        return STAGE_CONTINUE;
    size_t length = 0;
    const char *text = cache_embed_text(request, &length);
    if (text == NULL)
        return search(request);
    const cache_config_t *cache = &request->config->cache;
    if (!cache->uses_provider_embedder) {
        char embedder[32];
        snprintf(embedder, sizeof embedder, "builtin-v1:%d", cache->dimensions);
        state->partition = cache_partition(request, embedder);
        float *vector = arena_alloc(&request->arena, (size_t)cache->dimensions * sizeof *vector);
        if (vector != NULL && embed_builtin(text, length, vector, cache->dimensions) == 0) {
            state->vector = vector;
            state->dim = cache->dimensions;
        }
        return search(request);
    }
    char *embedder = arena_sprintf(&request->arena, "provider:%s:%s", cache->embed_provider->name, cache->embed_model);
    state->partition = cache_partition(request, embedder ? embedder : "provider");
    state->embed_call = embed_provider_start(request->worker, cache->embed_provider, cache->embed_model, text,
                                             length, cache->embed_timeout_ms, on_embedded, request);
    if (state->embed_call == NULL) {
        cache_count(CACHE_COUNT_EMBED_ERRORS);
        state->reason = "embedding could not start";
        return search(request);
    }
    return STAGE_PENDING;
}

/* The client went away during a provider embedding: stop it and end here. */
static void cache_semantic_cancel(request_t *request)
{
    cache_request_t *state = cache_request_of(request);
    if (state == NULL || state->embed_call == NULL)
        return;
    embed_call_cancel(state->embed_call);
    state->embed_call = NULL;
    request_note_client_gone(request);
    pipeline_resume(request, STAGE_RESPONDED);
}

const stage_t stage_cache_semantic = {
    .name = "cache_semantic",
    .slot = STAGE_SLOT_CACHE,
    .on_request = cache_semantic_on_request,
    .on_cancel = cache_semantic_cancel,
};
