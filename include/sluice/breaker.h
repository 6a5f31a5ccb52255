/* breaker.h — circuit breakers, one per target (provider + model), shared by
 * all workers so that an outage seen by one is skipped by all.
 *
 * closed → open after `failures` consecutive failures or an error rate above
 * `error_rate` over `window_ms` (with at least `min_requests`); open → half-open
 * after `cooldown_ms`, letting `half_open_requests` trial requests through;
 * a trial success closes it, a trial failure opens it again. Active health
 * checks report per provider: an unhealthy provider's targets are all open. */
#ifndef SLUICE_BREAKER_H
#define SLUICE_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/config.h"
#include "sluice/util/buf.h"

typedef enum { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN } breaker_state_t;

/* May a request go to this target now? If not, *retry_after_ms says when the
 * breaker will next let one through. A half-open breaker hands out its trial
 * slots here, so call breaker_record for every allowed request. */
bool breaker_allow(const provider_config_t *provider, const char *model, uint64_t now_ms, long *retry_after_ms);
void breaker_record(const provider_config_t *provider, const char *model, bool is_success, uint64_t now_ms);
/* A health check's verdict on a whole provider. */
void breaker_set_provider_health(const char *provider, bool is_healthy);
bool breaker_provider_is_healthy(const char *provider);
/* Appends a JSON array of every breaker that is not closed, plus unhealthy providers. */
void breaker_render_json(buf_t *out, uint64_t now_ms);
/* Forgets all state (tests). */
void breaker_reset(void);
const char *breaker_state_name(breaker_state_t state);

#endif
