/* metrics.c — the metrics stage and the /metrics renderer (see metrics.h).
 *
 * A series is one combination of endpoint, model, provider and status; each
 * holds request and token counters, spend, and latency histograms. Tables
 * are small open lists: the number of series is bounded by configured models
 * × statuses, and a cap keeps a hostile client inventing model names from
 * growing them without bound (excess goes to model="_other"). */
#include "sluice/metrics.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/pipeline.h"
#include "sluice/util/clock.h"
#include "sluice/worker.h"

enum { METRICS_MAX_SERIES = 2048, METRICS_LABEL_MAX = 96 };

static const double latency_buckets_s[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
enum { BUCKET_COUNT = sizeof latency_buckets_s / sizeof latency_buckets_s[0] };

typedef struct histogram {
    uint64_t buckets[BUCKET_COUNT]; /* cumulative counts are computed when rendering */
    uint64_t count;
    double sum;
} histogram_t;

/* Owner: metrics_t.series. */
typedef struct series {
    char endpoint[24];
    char model[METRICS_LABEL_MAX];
    char provider[METRICS_LABEL_MAX];
    int status;
    uint64_t requests;
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    double cost_usd;
    histogram_t latency;
    histogram_t ttfb;
} series_t;

/* Owner: worker_t.stage_state[STAGE_SLOT_METRICS] (one shard per worker),
 * or the renderer's stack (the merged total). */
struct metrics {
    pthread_mutex_t lock;
    series_t *series;
    size_t count;
    size_t capacity;
    const worker_t *worker;  /* whose in-flight count the page shows; NULL for a total */
    struct metrics *next;    /* in the list of shards */
};

/* Every worker's shard, for the renderer: workers register theirs at start. */
static pthread_mutex_t shards_lock = PTHREAD_MUTEX_INITIALIZER;
static metrics_t *shards;

metrics_t *metrics_new(void)
{
    metrics_t *metrics = calloc(1, sizeof *metrics);
    if (metrics != NULL)
        pthread_mutex_init(&metrics->lock, NULL);
    return metrics;
}

void metrics_free(metrics_t *metrics)
{
    if (metrics == NULL)
        return;
    pthread_mutex_destroy(&metrics->lock);
    free(metrics->series);
    free(metrics);
}

static void copy_label(char *out, const char *value)
{
    snprintf(out, METRICS_LABEL_MAX, "%s", value ? value : "");
}

/* Finds or adds a series; caller holds the lock. */
static series_t *series_for(metrics_t *metrics, const char *endpoint, const char *model, const char *provider,
                            int status)
{
    for (size_t i = 0; i < metrics->count; i++) {
        series_t *series = &metrics->series[i];
        if (series->status == status && strcmp(series->endpoint, endpoint) == 0 &&
            strncmp(series->model, model, METRICS_LABEL_MAX - 1) == 0 &&
            strncmp(series->provider, provider, METRICS_LABEL_MAX - 1) == 0)
            return series;
    }
    if (metrics->count == METRICS_MAX_SERIES)
        return strcmp(model, "_other") == 0 ? NULL : series_for(metrics, endpoint, "_other", provider, status);
    if (metrics->count == metrics->capacity) {
        size_t capacity = metrics->capacity ? metrics->capacity * 2 : 32;
        series_t *grown = realloc(metrics->series, capacity * sizeof *grown);
        if (grown == NULL)
            return NULL;
        metrics->series = grown;
        metrics->capacity = capacity;
    }
    series_t *series = &metrics->series[metrics->count++];
    memset(series, 0, sizeof *series);
    snprintf(series->endpoint, sizeof series->endpoint, "%s", endpoint);
    copy_label(series->model, model);
    copy_label(series->provider, provider);
    series->status = status;
    return series;
}

static void histogram_add(histogram_t *histogram, double seconds)
{
    for (size_t i = 0; i < BUCKET_COUNT; i++) {
        if (seconds <= latency_buckets_s[i]) {
            histogram->buckets[i]++;
            break;
        }
    }
    histogram->count++;
    histogram->sum += seconds;
}

static void histogram_merge(histogram_t *into, const histogram_t *from)
{
    for (size_t i = 0; i < BUCKET_COUNT; i++)
        into->buckets[i] += from->buckets[i];
    into->count += from->count;
    into->sum += from->sum;
}

static void metrics_on_complete(request_t *request)
{
    metrics_t *metrics = request->worker->stage_state[STAGE_SLOT_METRICS];
    if (metrics == NULL)
        return;
    uint64_t now = clock_monotonic_us();
    /* Only configured names become labels: anything a client makes up is "_other". */
    const char *model = request->provider != NULL ? request->model : request->model ? "_other" : "";
    pthread_mutex_lock(&metrics->lock);
    series_t *series = series_for(metrics, request->is_anthropic_api ? "messages" : request_endpoint_name(request->endpoint), model,
                                  request->provider ? request->provider->name : "", request->status);
    if (series != NULL) {
        series->requests++;
        if (request->usage.is_known) {
            series->prompt_tokens += (uint64_t)request->usage.prompt_tokens;
            series->completion_tokens += (uint64_t)request->usage.completion_tokens;
        }
        series->cost_usd += request->cost_usd;
        histogram_add(&series->latency, (double)(now - request->start_us) / 1e6);
        if (request->first_byte_us)
            histogram_add(&series->ttfb, (double)(request->first_byte_us - request->start_us) / 1e6);
    }
    pthread_mutex_unlock(&metrics->lock);
}

/* Each worker counts into its own shard (no lock shared between workers on the
 * hot path); the shard joins the list the renderer merges. */
static int metrics_worker_init(worker_t *worker, const config_t *config)
{
    (void)config;
    metrics_t *metrics = metrics_new();
    if (metrics == NULL)
        return -1;
    metrics->worker = worker;
    pthread_mutex_lock(&shards_lock);
    metrics->next = shards;
    shards = metrics;
    pthread_mutex_unlock(&shards_lock);
    worker->stage_state[STAGE_SLOT_METRICS] = metrics;
    return 0;
}

static void metrics_worker_free(worker_t *worker)
{
    metrics_t *metrics = worker->stage_state[STAGE_SLOT_METRICS];
    if (metrics == NULL)
        return;
    pthread_mutex_lock(&shards_lock);
    for (metrics_t **link = &shards; *link != NULL; link = &(*link)->next) {
        if (*link == metrics) {
            *link = metrics->next;
            break;
        }
    }
    pthread_mutex_unlock(&shards_lock);
    metrics_free(metrics);
    worker->stage_state[STAGE_SLOT_METRICS] = NULL;
}

const stage_t stage_metrics = {
    .name = "metrics",
    .slot = STAGE_SLOT_METRICS,
    .on_worker_init = metrics_worker_init,
    .on_worker_free = metrics_worker_free,
    .on_complete = metrics_on_complete,
};

/* ---- rendering ---------------------------------------------------------- */

static void render_labels(buf_t *out, const series_t *series, const char *extra)
{
    buf_append_str(out, "{endpoint=\"");
    buf_append_str(out, series->endpoint);
    buf_append_str(out, "\",model=\"");
    buf_append_json_escaped(out, series->model, strlen(series->model)); /* JSON escaping covers \\ \" \n */
    buf_append_str(out, "\",provider=\"");
    buf_append_json_escaped(out, series->provider, strlen(series->provider));
    buf_printf(out, "\",status=\"%d\"%s}", series->status, extra ? extra : "");
}

static void render_histogram(buf_t *out, const char *name, const series_t *series, const histogram_t *histogram)
{
    uint64_t cumulative = 0;
    for (size_t i = 0; i < BUCKET_COUNT; i++) {
        cumulative += histogram->buckets[i];
        char extra[48];
        snprintf(extra, sizeof extra, ",le=\"%g\"", latency_buckets_s[i]);
        buf_printf(out, "%s_bucket", name);
        render_labels(out, series, extra);
        buf_printf(out, " %llu\n", (unsigned long long)cumulative);
    }
    buf_printf(out, "%s_bucket", name);
    render_labels(out, series, ",le=\"+Inf\"");
    buf_printf(out, " %llu\n%s_sum", (unsigned long long)histogram->count, name);
    render_labels(out, series, NULL);
    buf_printf(out, " %.6f\n%s_count", histogram->sum, name);
    render_labels(out, series, NULL);
    buf_printf(out, " %llu\n", (unsigned long long)histogram->count);
}

static void render_counter(buf_t *out, const char *name, const series_t *series, double value)
{
    buf_append_str(out, name);
    render_labels(out, series, NULL);
    buf_printf(out, " %.10g\n", value);
}

/* Sums the shards into total; returns the requests in flight. Called with shards_lock held. */
static long merge_workers(metrics_t *total)
{
    long in_flight = 0;
    for (metrics_t *metrics = shards; metrics != NULL; metrics = metrics->next) {
        in_flight += atomic_load(&metrics->worker->in_flight);
        pthread_mutex_lock(&metrics->lock);
        for (size_t i = 0; i < metrics->count; i++) {
            const series_t *from = &metrics->series[i];
            series_t *into = series_for(total, from->endpoint, from->model, from->provider, from->status);
            if (into == NULL)
                continue;
            into->requests += from->requests;
            into->prompt_tokens += from->prompt_tokens;
            into->completion_tokens += from->completion_tokens;
            into->cost_usd += from->cost_usd;
            histogram_merge(&into->latency, &from->latency);
            histogram_merge(&into->ttfb, &from->ttfb);
        }
        pthread_mutex_unlock(&metrics->lock);
    }
    return in_flight;
}

int metrics_render(buf_t *out)
{
    metrics_t *total = metrics_new();
    if (total == NULL)
        return -1;
    pthread_mutex_lock(&shards_lock);
    long in_flight = merge_workers(total);
    pthread_mutex_unlock(&shards_lock);
    buf_printf(out, "# HELP sluice_requests_in_flight Requests being processed.\n"
                    "# TYPE sluice_requests_in_flight gauge\nsluice_requests_in_flight %ld\n",
               in_flight);
    static const char *const counters[][2] = {
        {"sluice_requests_total", "Requests answered, by endpoint, model, provider and status."},
        {"sluice_prompt_tokens_total", "Prompt tokens reported by providers."},
        {"sluice_completion_tokens_total", "Completion tokens reported by providers."},
        {"sluice_cost_usd_total", "Spend in USD from the pricing table."},
    };
    for (size_t c = 0; c < 4; c++) {
        buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", counters[c][0], counters[c][1], counters[c][0]);
        for (size_t i = 0; i < total->count; i++) {
            const series_t *series = &total->series[i];
            double value = c == 0   ? (double)series->requests
                           : c == 1 ? (double)series->prompt_tokens
                           : c == 2 ? (double)series->completion_tokens
                                    : series->cost_usd;
            render_counter(out, counters[c][0], series, value);
        }
    }
    buf_append_str(out, "# HELP sluice_request_duration_seconds Time from request to last byte.\n"
                        "# TYPE sluice_request_duration_seconds histogram\n");
    for (size_t i = 0; i < total->count; i++)
        render_histogram(out, "sluice_request_duration_seconds", &total->series[i], &total->series[i].latency);
    buf_append_str(out, "# HELP sluice_time_to_first_byte_seconds Time from request to first response byte.\n"
                        "# TYPE sluice_time_to_first_byte_seconds histogram\n");
    for (size_t i = 0; i < total->count; i++)
        render_histogram(out, "sluice_time_to_first_byte_seconds", &total->series[i], &total->series[i].ttfb);
    metrics_free(total);
    pipeline_metrics_render(out);
    return out->data ? 0 : -1;
}
