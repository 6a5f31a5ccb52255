/* worker.h — one worker thread: an event loop that owns its connections.
 *
 * Each worker has its own event_base, evhttp front end on its own
 * SO_REUSEPORT listening socket (the kernel spreads connections across
 * workers), and upstream pool (a libcurl multi handle driven by the same
 * loop). A request lives and dies on one worker, so nothing on the hot path
 * takes a lock. */
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sluice/config.h"

struct event_base;
struct event;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;
struct upstream_pool;
struct latency_table;

/* Room for the stages' per-worker state (pipeline.h: stage_slot_t). */
enum { WORKER_STAGE_SLOTS = 8 };

/* What a worker is given to start: its socket, where the config is, and the
 * function that answers each HTTP request (frontend_handle). */
typedef struct worker_setup {
    int index;
    int worker_count;
    int listen_fd;
    config_current_t *config;
    void (*handle)(struct evhttp_request *http, void *worker);
} worker_setup_t;

/* Owner: server_t.workers. */
typedef struct worker {
    int index;
    int worker_count;            /* workers in the process, for per-worker shares of limits */
    config_current_t *config;    /* the server's current snapshot */
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    int listen_fd;
    struct upstream_pool *pool;
    struct latency_table *latency; /* recent latency per target, for routing */
    void *stage_state[WORKER_STAGE_SLOTS]; /* each stage's per-worker state (pipeline.h), owned by that stage */
    bool has_stage_state;                  /* the stages' worker_init hooks ran (and succeeded) */
    struct event *command_event; /* wakes the loop for commands from the main thread */
    atomic_int pending_command;
    atomic_long in_flight;       /* open requests, read by the main thread while draining */
    atomic_bool is_ready;        /* /readyz: set by the main thread */
    bool is_draining;
    uint64_t random_state;
    uint64_t request_counter;
    /* Freed request contexts kept for reuse on this worker: a request_t is
     * too large for malloc's thread cache, and its malloc + free cost ~6,000
     * instructions per request. Touched only by the worker's thread. */
    void *spare_requests[8];
    int spare_request_count;
} worker_t;

enum { WORKER_COMMAND_NONE, WORKER_COMMAND_DRAIN, WORKER_COMMAND_STOP };

/* Creates the loop, front end and pool, listening on setup->listen_fd. Returns 0 or -1. */
int worker_init(worker_t *worker, const worker_setup_t *setup);
int worker_start(worker_t *worker);
/* Thread-safe: asks the worker to stop accepting (drain) or to leave its loop (stop). */
void worker_command(worker_t *worker, int command);
void worker_join(worker_t *worker);
void worker_free(worker_t *worker);
/* The config snapshot new requests on this worker should use (referenced). */
config_t *worker_config(worker_t *worker);
uint64_t worker_random(worker_t *worker);

#endif
