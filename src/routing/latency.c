/* latency.c — per-worker latency averages (see latency.h). An open-addressed
 * table of fixed size: targets are few, and when it is full new targets are
 * simply unknown (latency routing then explores them). */
#include "sluice/latency.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/util/hash.h"

enum { LATENCY_SLOTS = 512 };
static const double alpha = 0.2;

typedef struct latency_entry {
    char key[160]; /* "provider\x1fmodel"; empty = free slot */
    double ttfb_ms;
    double total_ms;
    uint64_t samples;
} latency_entry_t;

/* Owner: worker_t.latency. */
struct latency_table {
    latency_entry_t entries[LATENCY_SLOTS];
};

latency_table_t *latency_table_new(void) { return calloc(1, sizeof(latency_table_t)); }

void latency_table_free(latency_table_t *table) { free(table); }

static latency_entry_t *slot(const latency_table_t *table, const char *provider, const char *model, bool create)
{
    char key[160];
    if (snprintf(key, sizeof key, "%s\x1f%s", provider, model) >= (int)sizeof key)
        return NULL;
    uint64_t start = hash_fnv1a(key, strlen(key), 0) % LATENCY_SLOTS;
    for (uint64_t i = 0; i < LATENCY_SLOTS; i++) {
        latency_entry_t *entry = (latency_entry_t *)&table->entries[(start + i) % LATENCY_SLOTS];
        if (entry->key[0] == '\0') {
            if (!create)
                return NULL;
            memcpy(entry->key, key, sizeof key);
            return entry;
        }
        if (strcmp(entry->key, key) == 0)
            return entry;
    }
    return NULL;
}

void latency_record(latency_table_t *table, const char *provider, const char *model, double ttfb_ms,
                    double total_ms)
{
    latency_entry_t *entry = table ? slot(table, provider, model, true) : NULL;
    if (entry == NULL)
        return;
    if (entry->samples == 0) {
        entry->ttfb_ms = ttfb_ms;
        entry->total_ms = total_ms;
    } else {
        entry->ttfb_ms += alpha * (ttfb_ms - entry->ttfb_ms);
        entry->total_ms += alpha * (total_ms - entry->total_ms);
    }
    entry->samples++;
}

bool latency_estimate(const latency_table_t *table, const char *provider, const char *model, bool is_stream,
                      double *milliseconds)
{
    const latency_entry_t *entry = table ? slot(table, provider, model, false) : NULL;
    if (entry == NULL || entry->samples == 0)
        return false;
    *milliseconds = is_stream ? entry->ttfb_ms : entry->total_ms;
    return true;
}
