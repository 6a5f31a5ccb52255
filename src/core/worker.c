/* worker.c — a worker thread and its event loop (see worker.h). */
#include "sluice/worker.h"

#include <event2/event.h>
#include <event2/http.h>
#include <stdlib.h>

#include "sluice/latency.h"
#include "sluice/pipeline.h"
#include "sluice/log.h"
#include "sluice/upstream_pool.h"
#include "sluice/util/crypto.h"

_Static_assert((int)STAGE_SLOT_COUNT <= (int)WORKER_STAGE_SLOTS, "worker_t.stage_state is too small");

enum {
    WORKER_MAX_HEADER_BYTES = 64 << 10,
    /* Client connections idle (or stalled mid-request) longer than this are closed. */
    WORKER_CLIENT_TIMEOUT_S = 600,
};

static void worker_on_command(evutil_socket_t fd, short what, void *argument)
{
    (void)fd;
    (void)what;
    worker_t *worker = argument;
    int command = atomic_exchange(&worker->pending_command, WORKER_COMMAND_NONE);
    if (command == WORKER_COMMAND_DRAIN && !worker->is_draining) {
        worker->is_draining = true;
        if (worker->bound != NULL) {
            evhttp_del_accept_socket(worker->http, worker->bound); /* closes the listening socket */
            worker->bound = NULL;
        }
    } else if (command == WORKER_COMMAND_STOP) {
        event_base_loopexit(worker->base, NULL);
    }
}

int worker_init(worker_t *worker, const worker_setup_t *setup)
{
    int index = setup->index;
    worker->index = index;
    worker->worker_count = setup->worker_count;
    worker->config = setup->config;
    worker->listen_fd = setup->listen_fd;
    atomic_init(&worker->pending_command, WORKER_COMMAND_NONE);
    atomic_init(&worker->in_flight, 0);
    if (crypto_random(&worker->random_state, sizeof worker->random_state) != 0 || worker->random_state == 0)
        worker->random_state = 0x9e3779b97f4a7c15ull ^ (uint64_t)index;
    /* With a changelist, epoll sees only the net change of a loop iteration:
     * evhttp and the client watch turn reading off and on again around every
     * request, which would otherwise be an EPOLL_CTL_DEL and an ADD each time.
     * (Its one hazard, fds shared through dup(), does not arise here.) */
    struct event_config *event_config = event_config_new();
    if (event_config == NULL)
        return -1;
    event_config_set_flag(event_config, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    worker->base = event_base_new_with_config(event_config);
    event_config_free(event_config);
    if (worker->base == NULL)
        return -1;
    worker->http = evhttp_new(worker->base);
    worker->pool = upstream_pool_new(worker->base);
    worker->latency = latency_table_new();
    worker->command_event = event_new(worker->base, -1, 0, worker_on_command, worker);
    if (worker->http == NULL || worker->pool == NULL || worker->latency == NULL || worker->command_event == NULL)
        return -1;
    config_t *config = config_current_get(worker->config);
    if (pipeline_worker_init(worker, config) != 0) {
        config_unref(config);
        return -1;
    }
    worker->has_stage_state = true;
    /* evhttp's own limit is a memory backstop above max_body_bytes: bodies in
     * between reach the parse stage, which answers with an OpenAI-shaped 413. */
    size_t backstop = config->server.max_body_bytes * 2 + (16u << 20);
    config_unref(config);
    evhttp_set_max_body_size(worker->http, (ev_ssize_t)backstop);
    evhttp_set_max_headers_size(worker->http, WORKER_MAX_HEADER_BYTES);
    evhttp_set_timeout(worker->http, WORKER_CLIENT_TIMEOUT_S);
    evhttp_set_allowed_methods(worker->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                                 EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(worker->http, setup->handle, worker);
    worker->bound = evhttp_accept_socket_with_handle(worker->http, worker->listen_fd);
    return worker->bound ? 0 : -1;
}

static void *worker_main(void *argument)
{
    worker_t *worker = argument;
    event_base_loop(worker->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

int worker_start(worker_t *worker) { return pthread_create(&worker->thread, NULL, worker_main, worker) == 0 ? 0 : -1; }

void worker_command(worker_t *worker, int command)
{
    atomic_store(&worker->pending_command, command);
    event_active(worker->command_event, EV_READ, 0);
}

void worker_join(worker_t *worker) { pthread_join(worker->thread, NULL); }

void worker_free(worker_t *worker)
{
    /* The front end goes first: freeing it closes client connections, which
     * cancels their transfers while the pool still exists. */
    if (worker->http != NULL)
        evhttp_free(worker->http);
    if (worker->has_stage_state) /* Redis connections live on the loop: before the base goes */
        pipeline_worker_free(worker);
    worker->has_stage_state = false;
    upstream_pool_free(worker->pool);
    latency_table_free(worker->latency);
    if (worker->command_event != NULL)
        event_free(worker->command_event);
    if (worker->base != NULL)
        event_base_free(worker->base);
    while (worker->spare_request_count > 0)
        free(worker->spare_requests[--worker->spare_request_count]);
}

config_t *worker_config(worker_t *worker) { return config_current_get(worker->config); }

uint64_t worker_random(worker_t *worker)
{
    /* xorshift64*: fast and good enough for ids and sampling, not for secrets */
    uint64_t x = worker->random_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    worker->random_state = x;
    return x * 0x2545f4914f6cdd1dull;
}
