/* request.h — the request context and the replies the front end can send.
 *
 * One request_t exists per client request, created by the front end and
 * passed through every pipeline stage. It owns everything allocated for the
 * request: the arena, the parsed body, the pinned config snapshot and the
 * upstream transfer. It is freed by pipeline_finish() once the response is
 * complete or the client has gone.
 *
 * The reply functions are the only place an error becomes an HTTP status and
 * an OpenAI-shaped body. They are safe to call after the client disconnected
 * (they then do nothing but record the outcome for the log). */
#ifndef SLUICE_REQUEST_H
#define SLUICE_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/config.h"
#include "sluice/usage.h"
#include "sluice/util/arena.h"
#include "sluice/util/buf.h"

struct evhttp_request;
struct evhttp_connection;
struct evbuffer;
struct event;
struct worker;
struct upstream_transfer;
struct anthropic_in_stream;

/* Room for the stages' context slots (pipeline.h: stage_slot_t). */
enum { REQUEST_STAGE_SLOTS = 8 };

/* Whether the answer came from the cache, for the x-sluice-cache header. */
typedef enum {
    CACHE_OUTCOME_NONE, /* the cache did not look: logged as nothing, sent as "skip" */
    CACHE_OUTCOME_SKIP,
    CACHE_OUTCOME_MISS,
    CACHE_OUTCOME_HIT,
} cache_outcome_t;

/* An error reply kept while other attempts are tried (strings in the arena). */
typedef struct request_error {
    int status; /* 0 = none */
    const char *type;
    const char *code;
    const char *param;
    const char *message;
    const char *retry_after;
} request_error_t;

typedef enum {
    ENDPOINT_CHAT_COMPLETIONS,
    ENDPOINT_COMPLETIONS,
    ENDPOINT_EMBEDDINGS,
    ENDPOINT_MODELS,
    ENDPOINT_NONE, /* an unknown path, answered with 404/405 */
} endpoint_t;

/* Owner: the worker that accepted it; freed by pipeline_finish(). */
typedef struct request {
    struct worker *worker;
    struct evhttp_request *http;         /* NULL once the client has gone */
    struct evhttp_connection *connection; /* NULL once the client has gone */
    struct event *client_watch;          /* notices a hang-up while no reply is being written */
    config_t *config;                    /* pinned snapshot */
    arena_t arena;
    char id[32];
    uint64_t added_header_bits; /* a bit per hash of each name request_add_header added */
    endpoint_t endpoint;
    uint64_t start_us;
    uint64_t first_byte_us; /* first response byte written to the client */
    const char *user;       /* x-sluice-user header, else the body's "user" (arena) */
    const char *feature;    /* x-sluice-feature header (arena) */
    const char *tags;       /* x-sluice-tags header (arena) */

    /* parse */
    json_t *body;
    /* The client's bytes body was parsed from (arena), for adapters that send
     * them on with small splices; NULL when body is not (or no longer) what
     * they say. Whoever changes body must set it to NULL. */
    const char *raw_body;
    size_t raw_body_length;
    size_t bytes_in;
    size_t bytes_out;
    const char *model; /* as the client named it */
    bool is_stream;
    bool client_wants_usage;
    bool is_anthropic_api; /* POST /v1/messages: body and replies in Anthropic's format (anthropic_in.h) */
    struct anthropic_in_stream *client_stream; /* its stream encoder, created with the stream */

    /* auth */
    const key_config_t *key;

    /* router */
    const char *route_model;              /* the model name after rules and experiments */
    int route_index;                      /* the rule that matched, -1 for none */
    const char *experiment;               /* A/B experiment and arm, when one applied */
    const char *arm;
    const char *shadow_model;             /* a copy of this request goes there */
    const char *shadow_of;                /* this request is a shadow copy of that request id */
    const model_config_t *model_config;   /* NULL when the client named provider/model */
    const target_config_t **candidates;   /* targets in attempt order (arena) */
    size_t candidate_count;
    size_t next_candidate;
    int round;                            /* completed passes over the candidates */
    long estimated_prompt_tokens;
    uint64_t deadline_us;                 /* 0 = none */
    bool wants_synthesized_stream;        /* cascade: stream built from the final answer */

    /* the current attempt */
    const provider_config_t *provider;
    const char *upstream_model;
    const provider_timeouts_t *timeouts;
    int attempt_count;
    buf_t attempts;                       /* JSON array body of finished attempts, for the log */
    buf_t fallback_reasons;               /* "provider/model: reason; ..." for the header */
    request_error_t last_error;           /* replied when no attempt is left */
    struct event *backoff_timer;          /* waiting before another pass over the candidates */

    /* upstream */
    struct upstream_transfer *transfer;

    /* outcome, for the client and the log */
    int status;
    const char *error_type;
    const char *error_message; /* arena; never contains secrets */
    usage_t usage;
    cache_outcome_t cache_outcome;
    double cost_usd;
    bool is_priced;
    bool has_replied;     /* a complete reply or stream end was sent */
    bool is_streaming;    /* stream headers sent; more chunks to come */
    bool is_client_gone;

    /* Each stage's own state (pipeline.h), owned by that stage. */
    void *stage_context[REQUEST_STAGE_SLOTS];

    /* pipeline position */
    size_t next_stage;
    size_t stages_entered;
} request_t;

request_t *request_new(struct worker *worker, struct evhttp_request *http, endpoint_t endpoint);
/* A detached copy of parent for shadow traffic: same body, key and caller,
 * sent to model; it has no client, so its replies go only to the log. */
request_t *request_new_shadow(const request_t *parent, const char *model);
/* Releases everything the request owns. Called by pipeline_finish(). */
void request_free(request_t *request);

/* Sends an OpenAI-shaped error: {"error":{"message","type","param","code"}}.
 * param and code may be NULL. If a stream is already open, the error goes out
 * as a final SSE event instead. */
void request_reply_error(request_t *request, int status, const char *type, const char *code, const char *param,
                         const char *format, ...) __attribute__((format(printf, 6, 7)));
/* Sends a complete JSON response (body is copied). */
void request_reply_json(request_t *request, int status, const char *body, size_t length);
/* Adds a response header (before the reply starts). */
void request_add_header(request_t *request, const char *name, const char *value);
/* Streaming: start sends 200 + SSE headers; write sends one chunk; end closes. */
void request_stream_start(request_t *request);
void request_stream_write(request_t *request, const char *bytes, size_t length);
void request_stream_end(request_t *request);
/* The endpoint as the log and the metrics name it: "chat.completions", ... */
const char *request_endpoint_name(endpoint_t endpoint);
/* The outcome of a request whose client went away before its answer: 499. */
void request_note_client_gone(request_t *request);
/* "skip", "miss" or "hit", as the x-sluice-cache header says it. */
const char *request_cache_outcome_name(cache_outcome_t outcome);
/* Reads a request header, NULL when absent or when the client has gone. */
const char *request_header(const request_t *request, const char *name);

#endif
