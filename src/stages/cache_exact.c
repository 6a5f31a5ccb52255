/* cache_exact.c — the exact cache stage.
 *
 * Runs after the router (the key holds the resolved model) and before the
 * semantic stage. It decides the request's cache policy for both layers
 * (cache.c), and serves a hit when the normalised request — model, messages,
 * tools, response_format, sampling parameters — and the scope hash to a live
 * entry. Its completion hook admits the answer for both layers. */
#include "sluice/cache.h"
#include "sluice/pipeline.h"
#include "sluice/util/clock.h"
#include "sluice/worker.h"

#include <time.h>


static stage_result_t cache_exact_on_request(request_t *request)
{
    cache_request_t *state = cache_request_begin(request);
    if (state == NULL)
        return STAGE_CONTINUE;
    if (state->is_exact_enabled && state->may_serve) {
        cache_found_t found;
        int rc = cache_store_get_exact(cache_worker_of(request->worker)->store, state->key, clock_wall_ms(), &request->arena, &found);
        if (rc == 1) {
            cache_serve_hit(request, &found, "exact");
            return STAGE_RESPONDED;
        }
    }
    if (!state->is_semantic_enabled)
        cache_note_miss(request);
    return STAGE_CONTINUE;
}

const stage_t stage_cache_exact = {
    .name = "cache_exact",
    .slot = STAGE_SLOT_CACHE,
    .on_worker_init = cache_worker_init,
    .on_worker_free = cache_worker_free,
    .on_request = cache_exact_on_request,
    .on_response_data = cache_capture,
    .on_complete = cache_finish,
    .on_log = cache_log_fields,
    .on_metrics = cache_metrics_render,
};
