/* health.c — active provider health checks (see health.h). */
#include "sluice/health.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/breaker.h"
#include "sluice/upstream_pool.h"
#include "sluice/util/clock.h"

enum { HEALTH_TICK_MS = 100, HEALTH_MAX_PROVIDERS = 256 };

/* Owner: the checker; one per provider name ever configured with checks. */
typedef struct health_probe {
    char name[64];
    uint64_t next_due_ms;
    CURL *easy; /* non-NULL while a probe runs */
    struct curl_slist *headers;
    char url[1024];
    struct health_checker *checker;
} health_probe_t;

struct health_checker {
    config_current_t *config; /* the server's current snapshot */
    upstream_pool_t *pool;
    struct event *tick;
    health_probe_t probes[HEALTH_MAX_PROVIDERS];
    size_t probe_count;
};

static size_t discard(char *data, size_t size, size_t count, void *argument)
{
    (void)data;
    (void)argument;
    return size * count;
}

static void probe_done(void *argument, CURLcode result)
{
    health_probe_t *probe = argument;
    long status = 0;
    curl_easy_getinfo(probe->easy, CURLINFO_RESPONSE_CODE, &status);
    breaker_set_provider_health(probe->name, result == CURLE_OK && status >= 200 && status < 300);
    upstream_pool_release(probe->checker->pool, probe->easy);
    curl_slist_free_all(probe->headers);
    probe->easy = NULL;
    probe->headers = NULL;
}

/* The credentials header a provider type expects, so a probe of an
 * authenticated endpoint such as /models can succeed. */
static struct curl_slist *probe_headers(const provider_config_t *provider)
{
    char line[1200];
    const char *format = NULL;
    switch (provider->type) {
    case PROVIDER_OPENAI:
    case PROVIDER_OPENAI_COMPATIBLE: format = "Authorization: Bearer %s"; break;
    case PROVIDER_AZURE: format = "api-key: %s"; break;
    case PROVIDER_ANTHROPIC: format = "x-api-key: %s"; break;
    case PROVIDER_GEMINI: format = "x-goog-api-key: %s"; break;
    case PROVIDER_BEDROCK: format = "Authorization: Bearer %s"; break;
    }
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    if (provider->api_key != NULL && headers != NULL) {
        snprintf(line, sizeof line, format, provider->api_key);
        headers = curl_slist_append(headers, line);
        explicit_bzero(line, sizeof line);
    }
    if (headers != NULL && provider->type == PROVIDER_ANTHROPIC && provider->anthropic_version != NULL) {
        snprintf(line, sizeof line, "anthropic-version: %s", provider->anthropic_version);
        headers = curl_slist_append(headers, line);
    }
    return headers;
}

static health_probe_t *probe_for(health_checker_t *checker, const char *name)
{
    for (size_t i = 0; i < checker->probe_count; i++)
        if (strcmp(checker->probes[i].name, name) == 0)
            return &checker->probes[i];
    if (checker->probe_count == HEALTH_MAX_PROVIDERS || strlen(name) >= sizeof checker->probes[0].name)
        return NULL;
    health_probe_t *probe = &checker->probes[checker->probe_count++];
    memset(probe, 0, sizeof *probe);
    snprintf(probe->name, sizeof probe->name, "%s", name);
    probe->checker = checker;
    return probe;
}

static void start_probe(health_checker_t *checker, health_probe_t *probe, const provider_config_t *provider)
{
    const health_check_config_t *check = &provider->health_check;
    snprintf(probe->url, sizeof probe->url, "%s%s", provider->base_url, check->path);
    probe->easy = upstream_pool_acquire(checker->pool);
    probe->headers = probe_headers(provider);
    if (probe->easy == NULL || probe->headers == NULL) {
        upstream_pool_release(checker->pool, probe->easy);
        curl_slist_free_all(probe->headers);
        probe->easy = NULL;
        probe->headers = NULL;
        return;
    }
    curl_easy_setopt(probe->easy, CURLOPT_URL, probe->url);
    curl_easy_setopt(probe->easy, CURLOPT_HTTPHEADER, probe->headers);
    curl_easy_setopt(probe->easy, CURLOPT_TIMEOUT_MS, check->timeout_ms);
    curl_easy_setopt(probe->easy, CURLOPT_CONNECTTIMEOUT_MS, check->timeout_ms);
    curl_easy_setopt(probe->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(probe->easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(probe->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (upstream_pool_add(checker->pool, probe->easy, "health", 1000000, probe_done, probe) != 0) {
        upstream_pool_release(checker->pool, probe->easy);
        curl_slist_free_all(probe->headers);
        probe->easy = NULL;
        probe->headers = NULL;
    }
}

static void on_tick(evutil_socket_t fd, short what, void *argument)
{
    (void)fd;
    (void)what;
    health_checker_t *checker = argument;
    config_t *config = config_current_get(checker->config);
    uint64_t now = clock_monotonic_us() / 1000u;
    for (size_t i = 0; i < config->provider_count; i++) {
        const provider_config_t *provider = &config->providers[i];
        if (provider->health_check.interval_ms <= 0)
            continue;
        health_probe_t *probe = probe_for(checker, provider->name);
        if (probe == NULL || probe->easy != NULL || now < probe->next_due_ms)
            continue;
        probe->next_due_ms = now + (uint64_t)provider->health_check.interval_ms;
        start_probe(checker, probe, provider);
    }
    config_unref(config);
}

health_checker_t *health_checker_start(struct event_base *base, config_current_t *config)
{
    health_checker_t *checker = calloc(1, sizeof *checker);
    if (checker == NULL)
        return NULL;
    checker->config = config;
    checker->pool = upstream_pool_new(base);
    checker->tick = event_new(base, -1, EV_PERSIST, on_tick, checker);
    struct timeval interval = {.tv_sec = 0, .tv_usec = HEALTH_TICK_MS * 1000};
    if (checker->pool == NULL || checker->tick == NULL || event_add(checker->tick, &interval) != 0) {
        health_checker_free(checker);
        return NULL;
    }
    return checker;
}

void health_checker_free(health_checker_t *checker)
{
    if (checker == NULL)
        return;
    for (size_t i = 0; i < checker->probe_count; i++) {
        health_probe_t *probe = &checker->probes[i];
        if (probe->easy != NULL) {
            upstream_pool_remove(checker->pool, probe->easy);
            upstream_pool_release(checker->pool, probe->easy);
            curl_slist_free_all(probe->headers);
        }
    }
    if (checker->tick != NULL)
        event_free(checker->tick);
    upstream_pool_free(checker->pool);
    free(checker);
}
