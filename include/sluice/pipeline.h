/* pipeline.h — the module interface: the stages every API request passes
 * through, and the hooks by which a stage plugs into the process, the worker,
 * the request, the response and the log.
 *
 * A stage is one descriptor (stage_t) of optional hooks, in the manner of
 * nginx modules, h2o handlers/filters/loggers and HAProxy's flt_ops. The core
 * (server.c, worker.c, request.c, access_log.c, metrics.c) iterates the hooks
 * and never calls a stage by name.
 *
 * Request hook: a stage receives the request and returns CONTINUE (go to the
 * next stage), RESPONDED (it answered the client: an error, a cache hit...),
 * PENDING (it started asynchronous work and will call pipeline_resume from its
 * callback) or ERROR (an internal failure; the pipeline answers 500).
 * Completion hooks of every stage the request entered run in reverse order
 * once the response is complete, so the logger — first in the list — always
 * runs last.
 *
 * Per-request state: each stage keeps its own context in its slot,
 * request->stage_context[slot] (arena memory, or owned by the stage and
 * released by its completion hook), as nginx modules keep ctx[]. Stages talk
 * to each other only through the request's typed fields (the parsed request,
 * the route, the outcome), never through each other's context. Per-worker
 * state lives in worker->stage_state[slot] (worker_init / worker_free). */
#ifndef SLUICE_PIPELINE_H
#define SLUICE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice/config.h"
#include "sluice/request.h"
#include "sluice/util/buf.h"

struct worker;

typedef enum { STAGE_CONTINUE, STAGE_RESPONDED, STAGE_PENDING, STAGE_ERROR } stage_result_t;

/* The context slots: one per module that keeps per-request or per-worker
 * state (both cache stages share the cache's). */
typedef enum {
    STAGE_SLOT_NONE,
    STAGE_SLOT_METRICS,
    STAGE_SLOT_LIMITS,
    STAGE_SLOT_BUDGET,
    STAGE_SLOT_CACHE,
    STAGE_SLOT_UPSTREAM,
    STAGE_SLOT_COUNT
} stage_slot_t;
_Static_assert((int)STAGE_SLOT_COUNT <= (int)REQUEST_STAGE_SLOTS, "request_t.stage_context is too small");

/* A piece of the response on its way to the client, in the internal (OpenAI)
 * form, before the client's dialect encodes it: a whole JSON answer, or one
 * or more SSE events of a stream. A filter may point data at bytes of its own
 * (the request's arena) to change what is sent. */
typedef struct response_piece {
    const char *data;
    size_t length;
    bool is_stream; /* SSE events; false: a complete JSON body */
} response_piece_t;

/* Owner: static, one per stage, defined in the file named after the stage.
 * Every hook is optional (NULL). */
typedef struct stage {
    const char *name;
    stage_slot_t slot; /* its request_t.stage_context and worker_t.stage_state index */

    /* process (main thread) */
    /* After a reload swapped the snapshot in; old may still be in use by requests. */
    void (*on_reconfigure)(const config_t *old_config, const config_t *new_config);
    /* At exit, after every worker stopped: releases process-wide tables. */
    void (*on_shutdown)(void);

    /* worker (the worker's thread, or before it starts) */
    int (*on_worker_init)(struct worker *worker, const config_t *config); /* 0, or -1: the worker cannot start */
    void (*on_worker_free)(struct worker *worker);                        /* before the loop is freed */

    /* request */
    stage_result_t (*on_request)(request_t *request);
    /* The client went away while this stage was PENDING: stop what can be
     * stopped. The stage still ends the request (pipeline_resume) — now, or
     * from the callback of work that cannot be stopped (a Redis reply). */
    void (*on_cancel)(request_t *request);

    /* response filters, in stage order, for the stages the request entered */
    void (*on_response_data)(request_t *request, response_piece_t *piece);

    /* completion, in reverse stage order */
    void (*on_complete)(request_t *request);
    /* Appends ,"name":value pairs to the request's access-log line. */
    void (*on_log)(const request_t *request, buf_t *line);
    /* Appends Prometheus text for the process-wide state the stage owns. */
    void (*on_metrics)(buf_t *out);
} stage_t;

/* The stages, each defined in the file named after it. */
extern const stage_t stage_access_log;     /* stages/access_log.c */
extern const stage_t stage_metrics;        /* stages/metrics.c */
extern const stage_t stage_parse;          /* stages/parse.c */
extern const stage_t stage_auth;           /* stages/auth.c */
extern const stage_t stage_limits;         /* stages/limits.c */
extern const stage_t stage_router;         /* stages/router.c */
extern const stage_t stage_budget;         /* stages/budget.c */
extern const stage_t stage_cache_exact;    /* stages/cache_exact.c */
extern const stage_t stage_cache_semantic; /* stages/cache_semantic.c */
extern const stage_t stage_upstream;       /* stages/upstream.c */

/* ---- process and worker lifecycle ---- */
void pipeline_reconfigure(const config_t *old_config, const config_t *new_config);
void pipeline_shutdown(void);
/* Runs every worker_init hook; on failure frees what was set up and returns -1. */
int pipeline_worker_init(struct worker *worker, const config_t *config);
void pipeline_worker_free(struct worker *worker);

/* ---- a request's walk ---- */
/* Runs the request through the stages from the start. */
void pipeline_start(request_t *request);
/* A request the front end answers itself (404, 405, CORS): only the logger
 * sees it. */
void pipeline_start_logged_only(request_t *request);
/* Runs a shadow copy from the router on: it needs no front-end stages. */
void pipeline_start_shadow(request_t *request);
/* Called by a pending stage when its work is done, with what it would have returned. */
void pipeline_resume(request_t *request, stage_result_t result);
/* The client has gone: the pending stage's cancel hook, if any. */
void pipeline_cancel(request_t *request);
/* Passes a piece of the response through the filters of the entered stages. */
void pipeline_response_data(request_t *request, response_piece_t *piece);
/* Runs completion hooks in reverse and frees the request. */
void pipeline_finish(request_t *request);

/* ---- what stages add to the log line and /metrics ---- */
void pipeline_log_fields(const request_t *request, buf_t *line);
void pipeline_metrics_render(buf_t *out);

#endif
