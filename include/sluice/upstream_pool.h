/* upstream_pool.h — a worker's libcurl multi handle, driven by its event loop.
 *
 * This is libcurl's hiperfifo pattern: libcurl tells us which sockets to
 * watch (CURLMOPT_SOCKETFUNCTION) and when to wake it (CURLMOPT_TIMERFUNCTION);
 * libevent watches them and calls curl_multi_socket_action. Connections to
 * providers stay open in the multi handle's cache and are reused; finished
 * easy handles are kept on a free list and reset for the next transfer. */
#ifndef SLUICE_UPSTREAM_POOL_H
#define SLUICE_UPSTREAM_POOL_H

#include <curl/curl.h>

struct event_base;

typedef struct upstream_pool upstream_pool_t;

/* Called once when a transfer added with upstream_pool_add ends (not after
 * upstream_pool_remove). */
typedef void (*upstream_done_t)(void *argument, CURLcode result);

upstream_pool_t *upstream_pool_new(struct event_base *base);
void upstream_pool_free(upstream_pool_t *pool);
/* A reset easy handle, or NULL. Give it back with upstream_pool_release. */
CURL *upstream_pool_acquire(upstream_pool_t *pool);
void upstream_pool_release(upstream_pool_t *pool, CURL *easy);
/* Starts the transfer, or queues it while group_name (a provider) already has
 * limit transfers running on this pool. Returns 0 or -1. */
int upstream_pool_add(upstream_pool_t *pool, CURL *easy, const char *group_name, int limit, upstream_done_t done,
                      void *argument);
/* Cancels a running or queued transfer; its done callback will not be called. */
void upstream_pool_remove(upstream_pool_t *pool, CURL *easy);
/* Number of transfers running. */
long upstream_pool_running(const upstream_pool_t *pool);

#endif
