/* upstream_pool.c — libcurl multi interface on a libevent loop (see
 * upstream_pool.h). One pool per worker; never shared between threads. */
#include "sluice/upstream_pool.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/log.h"

enum { POOL_FREE_LIST_MAX = 256 };

/* Owner: the pool; one per socket libcurl asked us to watch. */
typedef struct pool_socket {
    struct event *event;
    upstream_pool_t *pool;
    short events; /* what event watches for */
} pool_socket_t;

/* Owner: the pool; transfers to one provider, for its connection limit. */
typedef struct pool_group {
    struct pool_group *next;
    char *name;
    int running;
    struct pool_transfer *waiting_head;
    struct pool_transfer *waiting_tail;
} pool_group_t;

/* Owner: the pool; set as the easy handle's CURLOPT_PRIVATE while it waits or runs. */
typedef struct pool_transfer {
    upstream_done_t done;
    void *argument;
    CURL *easy;
    pool_group_t *group;
    struct pool_transfer *next_waiting;
    bool is_running;
} pool_transfer_t;

struct upstream_pool {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    CURL *free_list[POOL_FREE_LIST_MAX];
    int free_count;
    long running;
    pool_group_t *groups;
    bool is_in_action; /* inside curl_multi_socket_action */
};

static int pool_start(upstream_pool_t *pool, pool_transfer_t *transfer)
{
    if (curl_multi_add_handle(pool->multi, transfer->easy) != CURLM_OK)
        return -1;
    transfer->is_running = true;
    transfer->group->running++;
    pool->running++;
    return 0;
}

/* A running transfer left: its slot goes to the longest-waiting one. */
static void pool_release_slot(upstream_pool_t *pool, pool_group_t *group)
{
    group->running--;
    pool->running--;
    while (group->waiting_head != NULL) {
        pool_transfer_t *next = group->waiting_head;
        group->waiting_head = next->next_waiting;
        if (group->waiting_head == NULL)
            group->waiting_tail = NULL;
        if (pool_start(pool, next) == 0)
            return;
        /* could not start it: report the failure through its own callback */
        curl_easy_setopt(next->easy, CURLOPT_PRIVATE, NULL);
        upstream_done_t done = next->done;
        void *argument = next->argument;
        free(next);
        done(argument, CURLE_FAILED_INIT);
    }
}

static void pool_check_done(upstream_pool_t *pool)
{
    CURLMsg *message;
    int pending;
    while ((message = curl_multi_info_read(pool->multi, &pending)) != NULL) {
        if (message->msg != CURLMSG_DONE)
            continue;
        CURL *easy = message->easy_handle;
        CURLcode result = message->data.result;
        pool_transfer_t *transfer = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&transfer);
        curl_multi_remove_handle(pool->multi, easy);
        if (transfer == NULL)
            continue;
        pool_group_t *group = transfer->group;
        upstream_done_t done = transfer->done;
        void *argument = transfer->argument;
        free(transfer);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        done(argument, result);
        pool_release_slot(pool, group);
    }
}

static void pool_on_socket_event(evutil_socket_t fd, short what, void *argument)
{
    pool_socket_t *socket_state = argument;
    upstream_pool_t *pool = socket_state->pool;
    int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running = 0;
    pool->is_in_action = true;
    curl_multi_socket_action(pool->multi, fd, flags, &running);
    pool->is_in_action = false;
    pool_check_done(pool);
}

static void pool_on_timer(evutil_socket_t fd, short what, void *argument)
{
    (void)fd;
    (void)what;
    upstream_pool_t *pool = argument;
    int running = 0;
    pool->is_in_action = true;
    curl_multi_socket_action(pool->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    pool->is_in_action = false;
    pool_check_done(pool);
}

static int pool_socket_callback(CURL *easy, curl_socket_t fd, int what, void *user, void *socket_pointer)
{
    (void)easy;
    upstream_pool_t *pool = user;
    pool_socket_t *socket_state = socket_pointer;
    if (what == CURL_POLL_REMOVE) {
        if (socket_state != NULL) {
            event_free(socket_state->event);
            free(socket_state);
            curl_multi_assign(pool->multi, fd, NULL);
        }
        return 0;
    }
    short events = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (socket_state == NULL) {
        socket_state = calloc(1, sizeof *socket_state);
        if (socket_state == NULL)
            return -1;
        socket_state->pool = pool;
        socket_state->event = event_new(pool->base, fd, events, pool_on_socket_event, socket_state);
        if (socket_state->event == NULL) {
            free(socket_state);
            log_error("upstream pool: cannot watch socket %d", (int)fd);
            return -1;
        }
        curl_multi_assign(pool->multi, fd, socket_state);
    } else if (socket_state->events == events) {
        return 0; /* curl repeats itself: nothing to change */
    } else {
        /* One event per socket, re-armed in place: no free and no new allocation,
         * and with the base's changelist a del + add is at most one EPOLL_CTL_MOD. */
        event_del(socket_state->event);
        event_assign(socket_state->event, pool->base, fd, events, pool_on_socket_event, socket_state);
    }
    socket_state->events = events;
    if (event_add(socket_state->event, NULL) != 0) {
        log_error("upstream pool: cannot watch socket %d", (int)fd);
        return -1;
    }
    return 0;
}

static int pool_timer_callback(CURLM *multi, long timeout_ms, void *user)
{
    (void)multi;
    upstream_pool_t *pool = user;
    if (timeout_ms < 0) {
        evtimer_del(pool->timer);
        return 0;
    }
    if (timeout_ms == 0 && !pool->is_in_action) {
        /* "Now" for a new transfer: run it once the current callback returns,
         * in this loop iteration, rather than after a zero-timeout epoll_wait.
         * (Asked from inside curl, it stays a timer so that I/O gets its turn.) */
        evtimer_del(pool->timer);
        event_active(pool->timer, EV_TIMEOUT, 0);
        return 0;
    }
    struct timeval delay = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    return evtimer_add(pool->timer, &delay) == 0 ? 0 : -1;
}

upstream_pool_t *upstream_pool_new(struct event_base *base)
{
    upstream_pool_t *pool = calloc(1, sizeof *pool);
    if (pool == NULL)
        return NULL;
    pool->base = base;
    pool->multi = curl_multi_init();
    pool->timer = evtimer_new(base, pool_on_timer, pool);
    if (pool->multi == NULL || pool->timer == NULL) {
        upstream_pool_free(pool);
        return NULL;
    }
    curl_multi_setopt(pool->multi, CURLMOPT_SOCKETFUNCTION, pool_socket_callback);
    curl_multi_setopt(pool->multi, CURLMOPT_SOCKETDATA, pool);
    curl_multi_setopt(pool->multi, CURLMOPT_TIMERFUNCTION, pool_timer_callback);
    curl_multi_setopt(pool->multi, CURLMOPT_TIMERDATA, pool);
    /* Keep enough idle connections for the concurrency a worker sees. */
    curl_multi_setopt(pool->multi, CURLMOPT_MAXCONNECTS, 1024L);
    curl_multi_setopt(pool->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    return pool;
}

void upstream_pool_free(upstream_pool_t *pool)
{
    if (pool == NULL)
        return;
    for (int i = 0; i < pool->free_count; i++)
        curl_easy_cleanup(pool->free_list[i]);
    if (pool->multi != NULL)
        curl_multi_cleanup(pool->multi); /* closes cached connections; sockets are removed via the callback */
    while (pool->groups != NULL) {
        pool_group_t *next = pool->groups->next;
        free(pool->groups->name);
        free(pool->groups);
        pool->groups = next;
    }
    if (pool->timer != NULL)
        event_free(pool->timer);
    free(pool);
}

CURL *upstream_pool_acquire(upstream_pool_t *pool)
{
    if (pool->free_count > 0) {
        CURL *easy = pool->free_list[--pool->free_count];
        curl_easy_reset(easy);
        return easy;
    }
    return curl_easy_init();
}

void upstream_pool_release(upstream_pool_t *pool, CURL *easy)
{
    if (easy == NULL)
        return;
    if (pool->free_count < POOL_FREE_LIST_MAX)
        pool->free_list[pool->free_count++] = easy;
    else
        curl_easy_cleanup(easy);
}

static pool_group_t *pool_group(upstream_pool_t *pool, const char *name)
{
    for (pool_group_t *group = pool->groups; group != NULL; group = group->next)
        if (strcmp(group->name, name) == 0)
            return group;
    pool_group_t *group = calloc(1, sizeof *group);
    if (group == NULL || (group->name = strdup(name)) == NULL) {
        free(group);
        return NULL;
    }
    group->next = pool->groups;
    pool->groups = group;
    return group;
}

int upstream_pool_add(upstream_pool_t *pool, CURL *easy, const char *group_name, int limit, upstream_done_t done,
                      void *argument)
{
    pool_group_t *group = pool_group(pool, group_name);
    pool_transfer_t *transfer = group ? calloc(1, sizeof *transfer) : NULL;
    if (transfer == NULL)
        return -1;
    transfer->done = done;
    transfer->argument = argument;
    transfer->easy = easy;
    transfer->group = group;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer);
    if (group->running < limit) {
        if (pool_start(pool, transfer) != 0) {
            curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
            free(transfer);
            return -1;
        }
        return 0;
    }
    if (group->waiting_tail != NULL)
        group->waiting_tail->next_waiting = transfer;
    else
        group->waiting_head = transfer;
    group->waiting_tail = transfer;
    return 0;
}

void upstream_pool_remove(upstream_pool_t *pool, CURL *easy)
{
    pool_transfer_t *transfer = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&transfer);
    if (transfer == NULL)
        return; /* already finished */
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    pool_group_t *group = transfer->group;
    if (transfer->is_running) {
        curl_multi_remove_handle(pool->multi, easy);
        free(transfer);
        pool_release_slot(pool, group);
        return;
    }
    pool_transfer_t **link = &group->waiting_head;
    pool_transfer_t *previous = NULL;
    while (*link != NULL && *link != transfer) {
        previous = *link;
        link = &(*link)->next_waiting;
    }
    if (*link == transfer) {
        *link = transfer->next_waiting;
        if (group->waiting_tail == transfer)
            group->waiting_tail = previous;
    }
    free(transfer);
}

long upstream_pool_running(const upstream_pool_t *pool) { return pool->running; }
