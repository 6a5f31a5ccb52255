/* server.c — process lifecycle: sockets, workers, reload and drain (see server.h). */
#include "sluice/server.h"

#include <errno.h>
#include <event2/event.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/access_log.h"
#include "sluice/frontend.h"
#include "sluice/health.h"
#include "sluice/pipeline.h"
#include "sluice/log.h"
#include "sluice/util/clock.h"

enum { LISTEN_BACKLOG = 4096, DRAIN_POLL_MS = 20 };

/* Owner: server_run's stack; the signal callbacks' shared state. */
typedef struct server_loop {
    server_t *server;
    struct event_base *base;
    struct event *drain_timer;
    uint64_t drain_deadline_us;
    bool is_draining;
} server_loop_t;

config_t *server_config(server_t *server) { return config_current_get(&server->config); }

/* /readyz: ready once every worker runs, not ready from the start of a drain. */
static void set_ready(server_t *server, bool is_ready)
{
    for (int i = 0; i < server->worker_count; i++)
        atomic_store(&server->workers[i].is_ready, is_ready);
}

/* One listening socket per worker, all bound to the same address with
 * SO_REUSEPORT so the kernel spreads new connections evenly. */
static int open_listener(const char *host, int port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *addresses = NULL;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int rc = getaddrinfo(host, service, &hints, &addresses);
    if (rc != 0) {
        log_error("cannot resolve listen address %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(addresses->ai_family, addresses->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, addresses->ai_addr, addresses->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        log_error("cannot listen on %s:%d: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(addresses);
    return fd;
}

static int resolve_worker_count(const config_t *config)
{
    if (config->server.workers > 0)
        return config->server.workers;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)cores : 1;
}

static void apply_logging(const config_t *config)
{
    log_level_t level = LOG_INFO;
    if (log_level_parse(config->logging.level, &level) == 0)
        log_set_level(level);
}

/* ---- reload -------------------------------------------------------------- */

static void server_reload(server_t *server)
{
    char error[1024];
    config_t *next = config_load(server->config_path, error, sizeof error);
    if (next == NULL) {
        log_error("config reload rejected, keeping the running config: %s", error);
        return;
    }
    config_t *current = server_config(server);
    if (strcmp(current->server.listen_host, next->server.listen_host) != 0 ||
        current->server.listen_port != next->server.listen_port ||
        resolve_worker_count(current) != resolve_worker_count(next))
        log_warn("server.listen and server.workers changes take effect only after a restart");
    config_unref(current);
    if (access_log_open(next->logging.access_log, error, sizeof error) != 0) {
        log_error("config reload rejected, keeping the running config: %s", error);
        config_unref(next);
        return;
    }
    apply_logging(next);
    config_t *old = config_current_swap(&server->config, next);
    pipeline_reconfigure(old, next);
    config_unref(old); /* requests still using it keep it alive */
    log_info("config reloaded from %s: %zu providers, %zu models, %zu keys", server->config_path,
             next->provider_count, next->model_count, next->key_count);
}

/* ---- drain --------------------------------------------------------------- */

static long total_in_flight(const server_t *server)
{
    long total = 0;
    for (int i = 0; i < server->worker_count; i++)
        total += atomic_load(&server->workers[i].in_flight);
    return total;
}

static void on_drain_tick(evutil_socket_t fd, short what, void *argument)
{
    (void)fd;
    (void)what;
    server_loop_t *loop = argument;
    long open = total_in_flight(loop->server);
    if (open > 0 && clock_monotonic_us() < loop->drain_deadline_us)
        return;
    if (open > 0)
        log_warn("drain deadline reached with %ld requests still open; closing them", open);
    event_base_loopbreak(loop->base);
}

static void start_drain(server_loop_t *loop)
{
    server_t *server = loop->server;
    config_t *config = server_config(server);
    long timeout_ms = config->server.drain_timeout_ms;
    config_unref(config);
    log_info("draining: no new connections, waiting up to %ld ms for %ld open requests", timeout_ms,
             total_in_flight(server));
    loop->is_draining = true;
    set_ready(server, false);
    for (int i = 0; i < server->worker_count; i++)
        worker_command(&server->workers[i], WORKER_COMMAND_DRAIN);
    loop->drain_deadline_us = clock_monotonic_us() + (uint64_t)timeout_ms * 1000u;
    struct timeval interval = {.tv_sec = 0, .tv_usec = DRAIN_POLL_MS * 1000};
    event_add(loop->drain_timer, &interval);
}

static void on_signal(evutil_socket_t signal_number, short what, void *argument)
{
    (void)what;
    server_loop_t *loop = argument;
    if (signal_number == SIGHUP) {
        server_reload(loop->server);
    } else if (!loop->is_draining) {
        start_drain(loop);
    } else {
        log_warn("second stop signal: exiting without waiting for the drain");
        event_base_loopbreak(loop->base);
    }
}

/* ---- run ----------------------------------------------------------------- */

static int start_workers(server_t *server, const config_t *config)
{
    server->worker_count = resolve_worker_count(config);
    server->workers = calloc((size_t)server->worker_count, sizeof *server->workers);
    if (server->workers == NULL)
        return -1;
    for (int i = 0; i < server->worker_count; i++) {
        int fd = open_listener(config->server.listen_host, config->server.listen_port);
        worker_setup_t setup = {.index = i, .worker_count = server->worker_count, .listen_fd = fd,
                                .config = &server->config, .handle = frontend_handle};
        if (fd < 0 || worker_init(&server->workers[i], &setup) != 0) {
            if (fd >= 0 && server->workers[i].bound == NULL)
                close(fd);
            log_error("cannot start worker %d", i);
            return -1;
        }
    }
    /* Workers must not take the process's signals: the main loop handles them. */
    sigset_t blocked, previous;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGHUP);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    pthread_sigmask(SIG_BLOCK, &blocked, &previous);
    int rc = 0;
    for (int i = 0; i < server->worker_count && rc == 0; i++)
        rc = worker_start(&server->workers[i]);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    return rc;
}

static void stop_workers(server_t *server)
{
    for (int i = 0; i < server->worker_count; i++)
        if (server->workers[i].thread)
            worker_command(&server->workers[i], WORKER_COMMAND_STOP);
    for (int i = 0; i < server->worker_count; i++)
        if (server->workers[i].thread)
            worker_join(&server->workers[i]);
    for (int i = 0; i < server->worker_count; i++)
        worker_free(&server->workers[i]);
    free(server->workers);
}

int server_run(const char *config_path, config_t *config)
{
    server_t server = {.config_path = (char *)config_path};
    config_current_init(&server.config, config);
    signal(SIGPIPE, SIG_IGN);
    char error[512];
    apply_logging(config);
    if (access_log_open(config->logging.access_log, error, sizeof error) != 0) {
        log_error("%s", error);
        config_current_destroy(&server.config);
        return 1;
    }
    server_loop_t loop = {.server = &server};
    loop.base = event_base_new();
    struct event *signals[3] = {NULL, NULL, NULL};
    const int numbers[3] = {SIGHUP, SIGTERM, SIGINT};
    for (int i = 0; loop.base != NULL && i < 3; i++) {
        signals[i] = evsignal_new(loop.base, numbers[i], on_signal, &loop);
        if (signals[i] != NULL)
            event_add(signals[i], NULL);
    }
    loop.drain_timer = loop.base ? event_new(loop.base, -1, EV_PERSIST, on_drain_tick, &loop) : NULL;
    int exit_code = 1;
    if (loop.drain_timer != NULL && start_workers(&server, config) == 0) {
        set_ready(&server, true);
        log_info("sluice %s listening on %s:%d with %d workers (%zu providers, %zu models, %zu keys)", SLUICE_VERSION,
                 config->server.listen_host, config->server.listen_port, server.worker_count,
                 config->provider_count, config->model_count, config->key_count);
        health_checker_t *health = health_checker_start(loop.base, &server.config);
        if (health == NULL)
            log_warn("health checks could not start");
        event_base_loop(loop.base, EVLOOP_NO_EXIT_ON_EMPTY);
        health_checker_free(health);
        exit_code = 0;
    }
    stop_workers(&server);
    for (int i = 0; i < 3; i++)
        if (signals[i] != NULL)
            event_free(signals[i]);
    if (loop.drain_timer != NULL)
        event_free(loop.drain_timer);
    if (loop.base != NULL)
        event_base_free(loop.base);
    config_current_destroy(&server.config);
    pipeline_shutdown();
    log_info("sluice stopped");
    return exit_code;
}
