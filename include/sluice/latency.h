/* latency.h — recent latency per target, per worker, for latency routing.
 *
 * Exponentially weighted moving averages (alpha 0.2) of time to first byte
 * and of total latency, kept per worker so recording is lock-free. A failed
 * attempt counts as a slow one (the target's timeout), so a target that
 * errors fast does not look fast. */
#ifndef SLUICE_LATENCY_H
#define SLUICE_LATENCY_H

#include <stdbool.h>
#include <stdint.h>

typedef struct latency_table latency_table_t;

latency_table_t *latency_table_new(void);
void latency_table_free(latency_table_t *table);
void latency_record(latency_table_t *table, const char *provider, const char *model, double ttfb_ms,
                    double total_ms);
/* The average total latency (or time to first byte when is_stream); false when never seen. */
bool latency_estimate(const latency_table_t *table, const char *provider, const char *model, bool is_stream,
                      double *milliseconds);

#endif
