/* pipeline.c — the stage list, the loop that drives a request through it, and
 * the iteration of every other hook (see pipeline.h).
 *
 * Reading this list top to bottom is reading the life of a request. Adding a
 * stage is one file, its extern in pipeline.h and one line here. */
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
/* The front end's own replies (404, 405, CORS) are seen by the logger alone. */
enum { STAGES_LOGGING_ONLY = 1 };

/* ---- process and worker lifecycle ---------------------------------------- */

void pipeline_reconfigure(const config_t *old_config, const config_t *new_config)
{
    for (size_t i = 0; i < STAGE_COUNT; i++)
        if (stages[i]->on_reconfigure != NULL)
            stages[i]->on_reconfigure(old_config, new_config);
}

void pipeline_shutdown(void)
{
    for (size_t i = STAGE_COUNT; i-- > 0;)
        if (stages[i]->on_shutdown != NULL)
            stages[i]->on_shutdown();
}

int pipeline_worker_init(struct worker *worker, const config_t *config)
{
    for (size_t i = 0; i < STAGE_COUNT; i++) {
        if (stages[i]->on_worker_init == NULL || stages[i]->on_worker_init(worker, config) == 0)
            continue;
        /* on_worker_free hooks accept what a failed worker_init left half made. */
        for (size_t done = i + 1; done-- > 0;)
            if (stages[done]->on_worker_free != NULL)
                stages[done]->on_worker_free(worker);
        return -1;
    }
    return 0;
}

void pipeline_worker_free(struct worker *worker)
{
    for (size_t i = STAGE_COUNT; i-- > 0;)
        if (stages[i]->on_worker_free != NULL)
            stages[i]->on_worker_free(worker);
}

/* ---- a request's walk ----------------------------------------------------- */

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

void pipeline_start_logged_only(request_t *request)
{
    request->next_stage = STAGES_LOGGING_ONLY;
    request->stages_entered = STAGES_LOGGING_ONLY;
}

void pipeline_start_shadow(request_t *request)
{
    request->next_stage = 0;
    while (request->next_stage < STAGE_COUNT && stages[request->next_stage] != &stage_router)
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

void pipeline_cancel(request_t *request)
{
    if (request->next_stage == 0 || request->next_stage > STAGE_COUNT)
        return;
    const stage_t *pending = stages[request->next_stage - 1];
    if (pending->on_cancel != NULL)
        pending->on_cancel(request);
}

void pipeline_response_data(request_t *request, response_piece_t *piece)
{
    for (size_t i = 0; i < request->stages_entered; i++)
        if (stages[i]->on_response_data != NULL)
            stages[i]->on_response_data(request, piece);
}

void pipeline_finish(request_t *request)
{
    for (size_t i = request->stages_entered; i-- > 0;)
        if (stages[i]->on_complete != NULL)
            stages[i]->on_complete(request);
    request_free(request);
}

/* ---- log and metrics ------------------------------------------------------ */

/* Every stage, entered or not, so a line has the same fields whether a
 * request got far or was refused early (each hook handles its empty context). */
void pipeline_log_fields(const request_t *request, buf_t *line)
{
    for (size_t i = 0; i < STAGE_COUNT; i++)
        if (stages[i]->on_log != NULL)
            stages[i]->on_log(request, line);
}

void pipeline_metrics_render(buf_t *out)
{
    for (size_t i = 0; i < STAGE_COUNT; i++)
        if (stages[i]->on_metrics != NULL)
            stages[i]->on_metrics(out);
}
