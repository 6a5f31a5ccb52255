/* breaker.c — shared circuit breakers (see breaker.h).
 *
 * A small table guarded by one mutex: it is touched once when a request picks
 * a target and once when the attempt ends, which is cheap next to an upstream
 * call. Only targets configured under a model are recorded, so the table
 * stays small; past its bound new targets are simply not tracked. */
#include "sluice/breaker.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "sluice/log.h"

enum { BREAKER_MAX = 1024, BREAKER_NAME_MAX = 192 };

typedef struct breaker {
    char provider[64];
    char model[BREAKER_NAME_MAX];
    breaker_state_t state;
    int consecutive_failures;
    uint64_t window_start_ms;
    int window_requests;
    int window_failures;
    uint64_t opened_at_ms;
    int trials_in_flight;
    uint64_t last_trial_ms; /* when the newest trial slot was handed out */
} breaker_t;

typedef struct provider_health {
    char provider[64];
    bool is_unhealthy;
} provider_health_t;

static pthread_mutex_t breakers_lock = PTHREAD_MUTEX_INITIALIZER;
static breaker_t breakers[BREAKER_MAX];
static size_t breaker_count;
static provider_health_t health[256];
static size_t health_count;

const char *breaker_state_name(breaker_state_t state)
{
    return state == BREAKER_OPEN ? "open" : state == BREAKER_HALF_OPEN ? "half_open" : "closed";
}

static breaker_t *find(const char *provider, const char *model, bool should_create)
{
    for (size_t i = 0; i < breaker_count; i++)
        if (strcmp(breakers[i].provider, provider) == 0 && strcmp(breakers[i].model, model) == 0)
            return &breakers[i];
    if (!should_create || breaker_count == BREAKER_MAX || strlen(provider) >= sizeof breakers[0].provider ||
        strlen(model) >= BREAKER_NAME_MAX)
        return NULL;
    breaker_t *breaker = &breakers[breaker_count++];
    memset(breaker, 0, sizeof *breaker);
    snprintf(breaker->provider, sizeof breaker->provider, "%s", provider);
    snprintf(breaker->model, sizeof breaker->model, "%s", model);
    return breaker;
}

static provider_health_t *find_health(const char *provider, bool should_create)
{
    for (size_t i = 0; i < health_count; i++)
        if (strcmp(health[i].provider, provider) == 0)
            return &health[i];
    if (!should_create || health_count == sizeof health / sizeof health[0] || strlen(provider) >= 64)
        return NULL;
    provider_health_t *entry = &health[health_count++];
    snprintf(entry->provider, sizeof entry->provider, "%s", provider);
    entry->is_unhealthy = false;
    return entry;
}

static void change_state(breaker_t *breaker, breaker_state_t state, uint64_t now_ms, const char *reason)
{
    if (breaker->state == state)
        return;
    log_warn("circuit breaker for %s/%s: %s -> %s (%s)", breaker->provider, breaker->model,
             breaker_state_name(breaker->state), breaker_state_name(state), reason);
    breaker->state = state;
    breaker->trials_in_flight = 0;
    if (state == BREAKER_OPEN)
        breaker->opened_at_ms = now_ms;
    if (state == BREAKER_CLOSED) {
        breaker->consecutive_failures = 0;
        breaker->window_requests = breaker->window_failures = 0;
        breaker->window_start_ms = now_ms;
    }
}

bool breaker_allow(const provider_config_t *provider, const char *model, uint64_t now_ms, long *retry_after_ms)
{
    const breaker_config_t *config = &provider->breaker;
    *retry_after_ms = 0;
    pthread_mutex_lock(&breakers_lock);
    bool is_allowed = true;
    provider_health_t *provider_health = find_health(provider->name, false);
    breaker_t *breaker = find(provider->name, model, false);
    if (provider_health != NULL && provider_health->is_unhealthy) {
        is_allowed = false;
        *retry_after_ms = provider->health_check.interval_ms;
    } else if (breaker != NULL && breaker->state == BREAKER_OPEN) {
        uint64_t reopen_at = breaker->opened_at_ms + (uint64_t)config->cooldown_ms;
        if (now_ms >= reopen_at) {
            change_state(breaker, BREAKER_HALF_OPEN, now_ms, "cool-down over");
        } else {
            is_allowed = false;
            *retry_after_ms = (long)(reopen_at - now_ms);
        }
    }
    if (is_allowed && breaker != NULL && breaker->state == BREAKER_HALF_OPEN) {
        /* A trial whose outcome never came back (its client left, or the call
         * could not be built) would hold its slot for ever; after a further
         * cool-down its slots are handed out again. */
        if (now_ms - breaker->last_trial_ms >= (uint64_t)config->cooldown_ms)
            breaker->trials_in_flight = 0;
        if (breaker->trials_in_flight < (config->half_open_requests > 0 ? config->half_open_requests : 1)) {
            breaker->trials_in_flight++;
            breaker->last_trial_ms = now_ms;
        } else {
            is_allowed = false;
            *retry_after_ms = (long)(breaker->last_trial_ms + (uint64_t)config->cooldown_ms - now_ms);
        }
    }
    pthread_mutex_unlock(&breakers_lock);
    return is_allowed;
}

void breaker_record(const provider_config_t *provider, const char *model, bool is_success, uint64_t now_ms)
{
    const breaker_config_t *config = &provider->breaker;
    pthread_mutex_lock(&breakers_lock);
    /* Successes count too: the error rate is failures over all requests in
     * the window. Targets come from the config, so the table stays small. */
    breaker_t *breaker = find(provider->name, model, true);
    if (breaker == NULL) {
        pthread_mutex_unlock(&breakers_lock);
        return;
    }
    if (now_ms - breaker->window_start_ms > (uint64_t)config->window_ms) {
        breaker->window_start_ms = now_ms;
        breaker->window_requests = breaker->window_failures = 0;
    }
    breaker->window_requests++;
    if (is_success) {
        breaker->consecutive_failures = 0;
        if (breaker->state == BREAKER_HALF_OPEN)
            change_state(breaker, BREAKER_CLOSED, now_ms, "trial request succeeded");
    } else {
        breaker->window_failures++;
        breaker->consecutive_failures++;
        if (breaker->state == BREAKER_HALF_OPEN) {
            change_state(breaker, BREAKER_OPEN, now_ms, "trial request failed");
        } else if (breaker->state == BREAKER_CLOSED) {
            bool too_many = config->failures > 0 && breaker->consecutive_failures >= config->failures;
            bool rate_too_high = breaker->window_requests >= config->min_requests && config->error_rate > 0 &&
                                 (double)breaker->window_failures / breaker->window_requests >= config->error_rate;
            if (too_many || rate_too_high)
                change_state(breaker, BREAKER_OPEN, now_ms, too_many ? "consecutive failures" : "error rate");
        }
    }
    pthread_mutex_unlock(&breakers_lock);
}

void breaker_set_provider_health(const char *provider, bool is_healthy)
{
    pthread_mutex_lock(&breakers_lock);
    provider_health_t *entry = find_health(provider, true);
    if (entry != NULL && entry->is_unhealthy == is_healthy) {
        log_warn("health check: provider %s is now %s", provider, is_healthy ? "healthy" : "unhealthy");
        entry->is_unhealthy = !is_healthy;
    }
    pthread_mutex_unlock(&breakers_lock);
}

bool breaker_provider_is_healthy(const char *provider)
{
    pthread_mutex_lock(&breakers_lock);
    provider_health_t *entry = find_health(provider, false);
    bool is_healthy = entry == NULL || !entry->is_unhealthy;
    pthread_mutex_unlock(&breakers_lock);
    return is_healthy;
}

void breaker_render_json(buf_t *out, uint64_t now_ms)
{
    pthread_mutex_lock(&breakers_lock);
    buf_append_str(out, "{\"breakers\":[");
    int first = 1;
    for (size_t i = 0; i < breaker_count; i++) {
        const breaker_t *breaker = &breakers[i];
        if (breaker->state == BREAKER_CLOSED)
            continue;
        buf_append_str(out, first ? "{\"provider\":\"" : ",{\"provider\":\"");
        first = 0;
        buf_append_json_escaped(out, breaker->provider, strlen(breaker->provider));
        buf_append_str(out, "\",\"model\":\"");
        buf_append_json_escaped(out, breaker->model, strlen(breaker->model));
        buf_printf(out, "\",\"state\":\"%s\",\"open_for_ms\":%llu}", breaker_state_name(breaker->state),
                   (unsigned long long)(now_ms - breaker->opened_at_ms));
    }
    buf_append_str(out, "],\"unhealthy_providers\":[");
    first = 1;
    for (size_t i = 0; i < health_count; i++) {
        if (!health[i].is_unhealthy)
            continue;
        buf_append_str(out, first ? "\"" : ",\"");
        first = 0;
        buf_append_json_escaped(out, health[i].provider, strlen(health[i].provider));
        buf_append_char(out, '"');
    }
    buf_append_str(out, "]}");
    pthread_mutex_unlock(&breakers_lock);
}

void breaker_reset(void)
{
    pthread_mutex_lock(&breakers_lock);
    breaker_count = 0;
    health_count = 0;
    pthread_mutex_unlock(&breakers_lock);
}
