/* health.h — active health checks of providers, run on the main thread's
 * loop so they never compete with request handling. Each provider with a
 * health_check gets a GET {base_url}{path} every interval_ms; a non-2xx reply
 * or no reply within timeout_ms marks it unhealthy (its targets are then
 * skipped like open circuit breakers), the next good reply marks it healthy
 * again. Changes are logged and shown in /readyz. */
#ifndef SLUICE_HEALTH_H
#define SLUICE_HEALTH_H

#include "sluice/config.h"

struct event_base;

typedef struct health_checker health_checker_t;

health_checker_t *health_checker_start(struct event_base *base, config_current_t *config);
void health_checker_free(health_checker_t *checker);

#endif
