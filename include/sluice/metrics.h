/* metrics.h — Prometheus metrics, sharded per worker and summed when scraped.
 *
 * Each worker records into its own table under its own mutex, which only a
 * scrape ever contends for; GET /metrics merges the tables and renders the
 * Prometheus text format. */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include "sluice/util/buf.h"

typedef struct metrics metrics_t;

metrics_t *metrics_new(void);
void metrics_free(metrics_t *metrics);
/* Renders every worker's metrics, summed, into out. Returns 0 or -1. */
int metrics_render(buf_t *out);

#endif
