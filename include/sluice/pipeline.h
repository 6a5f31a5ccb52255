/* pipeline.h — the ordered list of stages every API request passes through.
 *
 * A stage receives the request and returns CONTINUE (go to the next stage),
 * RESPONDED (it answered the client: an error, a cache hit...), PENDING (it
 * started asynchronous work and will call pipeline_resume from its callback)
 * or ERROR (an internal failure; the pipeline answers 500). Completion hooks
 * of every stage the request entered run in reverse order once the response
 * is complete, so the logger — first in the list — always runs last. */
#ifndef SLUICE_PIPELINE_H
#define SLUICE_PIPELINE_H

#include "sluice/request.h"

typedef enum { STAGE_CONTINUE, STAGE_RESPONDED, STAGE_PENDING, STAGE_ERROR } stage_result_t;

typedef struct stage {
    const char *name;
    stage_result_t (*on_request)(request_t *request); /* NULL: completion hook only */
    void (*on_complete)(request_t *request);          /* NULL: none */
} stage_t;

/* The stages, each defined in the file named after it. */
extern const stage_t stage_access_log; /* access_log.c */
extern const stage_t stage_metrics;    /* metrics.c */
extern const stage_t stage_parse;      /* parse.c */
extern const stage_t stage_auth;       /* auth.c */
extern const stage_t stage_limits;     /* limits.c */
extern const stage_t stage_router;     /* router.c */
extern const stage_t stage_budget;     /* budget.c */
extern const stage_t stage_cache_exact;    /* cache_exact.c */
extern const stage_t stage_cache_semantic; /* cache_semantic.c */
extern const stage_t stage_upstream;   /* upstream.c */

/* Runs the request through the stages from the start. */
void pipeline_start(request_t *request);
/* Runs a request that needs no front-end stages (a shadow copy) from stage on. */
void pipeline_start_from(request_t *request, const stage_t *stage);
/* Called by a pending stage when its work is done, with what it would have returned. */
void pipeline_resume(request_t *request, stage_result_t result);
/* Runs completion hooks in reverse and frees the request. */
void pipeline_finish(request_t *request);

#endif
