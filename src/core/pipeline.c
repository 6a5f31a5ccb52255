/* pipeline.c — the stage list and the loop that drives a request through it.
 *
 * Reading this list top to bottom is reading the life of a request. Adding a
 * stage is one file and one line here. */
#include "sluice/pipeline.h"

#include <stddef.h>

static const stage_t *const stages[] = {
    &stage_access_log, /* completion only: runs last, sees the final outcome */
    &stage_metrics,    /* completion only: counters and latency histograms */
    &stage_parse,      /* body limits, JSON, field validation */
    &stage_auth,       /* virtual key, model allow-list */
    &stage_limits,     /* per-key rpm/tpm: 429 before anything is spent or served from cache */
    &stage_router,     /* model name → provider + upstream model */
    &stage_budget,     /* USD caps per key/team/user/feature: 429 before anything is spent; after the router for prices */
    &stage_cache_exact,    /* hit on the normalised request; admits answers on completion */
    &stage_cache_semantic, /* hit on a prompt that means the same */
    &stage_upstream,   /* provider adapter + libcurl transfer, streams back */
};

enum { STAGE_COUNT = sizeof stages / sizeof stages[0] };

static void run_from(request_t *request)
{
    while (request->next_stage < STAGE_COUNT) {
        const stage_t *stage = stages[request->next_stage++];
        request->stages_entered = request->next_stage;
        if (stage->on_request == NULL)
            continue;
        stage_result_t result = stage->on_request(request);
        if (result == STAGE_CONTINUE)
            continue;
        if (result == STAGE_PENDING)
            return;
        pipeline_resume(request, result);
        return;
    }
    /* Every stage continued: nobody answered, which is a bug in the list. */
    pipeline_resume(request, STAGE_ERROR);
}

void pipeline_start(request_t *request)
{
    request->next_stage = 0;
    run_from(request);
}

void pipeline_start_from(request_t *request, const stage_t *stage)
{
    request->next_stage = 0;
    while (request->next_stage < STAGE_COUNT && stages[request->next_stage] != stage)
        request->next_stage++;
    request->stages_entered = request->next_stage;
    run_from(request);
}

void pipeline_resume(request_t *request, stage_result_t result)
{
    switch (result) {
    case STAGE_CONTINUE:
        run_from(request);
        return;
    case STAGE_PENDING:
        return;
    case STAGE_ERROR:
        if (!request->has_replied)
            request_reply_error(request, 500, "api_error", "internal_error", NULL, "internal gateway error");
        break;
    case STAGE_RESPONDED:
        break;
    }
    pipeline_finish(request);
}

void pipeline_finish(request_t *request)
{
    for (size_t i = request->stages_entered; i-- > 0;)
        if (stages[i]->on_complete != NULL)
            stages[i]->on_complete(request);
    request_free(request);
}
