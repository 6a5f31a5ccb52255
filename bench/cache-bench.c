/* cache-bench.c — builtin embed + search latency with 100,000 entries in one
 * partition (the worst case: partitions are per tenant, model and
 * instructions), and the int8 index's recall@1 against an exact float scan.
 * Usage: sluice-cache-bench [ENTRIES] [QUERIES] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/cache_store.h"
#include "sluice/embed.h"
#include "sluice/util/clock.h"

enum { DIM = EMBED_BUILTIN_DEFAULT_DIM };

static const char *const words[] = {
    "account", "password", "reset", "invoice", "refund", "order", "shipping", "delivery", "plan", "upgrade",
    "cancel", "subscription", "email", "address", "payment", "card", "declined", "login", "error", "app",
    "crash", "install", "python", "docker", "windows", "linux", "mac", "printer", "wifi", "router", "weather",
    "paris", "london", "tokyo", "capital", "population", "recipe", "pancakes", "calories", "banana", "flight",
    "hotel", "booking", "ticket", "status", "report", "summary", "translate", "spanish", "french", "poem",
    "haiku", "autumn", "team", "member", "export", "import", "data", "branch", "commit", "merge", "server"};
enum { WORD_COUNT = sizeof words / sizeof words[0] };

static void make_text(char *out, size_t size, unsigned *seed)
{
    int n = 4 + rand_r(seed) % 6;
    size_t used = (size_t)snprintf(out, size, "how do I");
    for (int i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, " %s", words[rand_r(seed) % WORD_COUNT]);
    if (rand_r(seed) % 3 == 0 && used < size)
        snprintf(out + used, size - used, " %d", rand_r(seed) % 100000);
}

static int compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    size_t entries = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t queries = argc > 2 ? strtoul(argv[2], NULL, 10) : 5000;
    cache_store_t *store = cache_store_new(entries + 1, (size_t)4 << 30);
    float *vectors = malloc(entries * DIM * sizeof *vectors);
    if (store == NULL || vectors == NULL)
        return 1;
    unsigned seed = 42;
    char text[256];
    uint64_t t0 = clock_monotonic_us();
    for (size_t i = 0; i < entries; i++) {
        make_text(text, sizeof text, &seed);
        float *vector = vectors + i * DIM;
        if (embed_builtin(text, strlen(text), vector, DIM) != 0)
            continue;
        cache_record_t record = {.partition = 7, .vector = vector, .dim = DIM, .model = "m", .scope = "s",
                                 .created_ms = 1, .exact_expires_ms = UINT64_MAX / 2,
                                 .semantic_expires_ms = UINT64_MAX / 2, .answer = "answer", .answer_length = 6};
        memcpy(record.key, &i, sizeof i);
        if (cache_store_put(store, &record, 1) != 0)
            return 1;
    }
    printf("inserted %zu entries in %.1f s\n", entries, (double)(clock_monotonic_us() - t0) / 1e6);
    double *times = malloc(queries * sizeof *times);
    size_t agree = 0, recall_checked = 0;
    arena_t arena;
    arena_init(&arena);
    for (size_t q = 0; q < queries; q++) {
        make_text(text, sizeof text, &seed);
        float query[DIM];
        cache_found_t found;
        uint64_t start = clock_monotonic_us();
        int rc = embed_builtin(text, strlen(text), query, DIM);
        if (rc == 0)
            rc = cache_store_search(store, 7, query, DIM, -1.0f, 2, &arena, &found);
        times[q] = (double)(clock_monotonic_us() - start);
        if (rc == 1 && q < 300) { /* recall@1 against an exact float scan */
            float best = -2;
            size_t best_index = 0;
            for (size_t i = 0; i < entries; i++) {
                float dot = 0;
                for (int k = 0; k < DIM; k++)
                    dot += query[k] * vectors[i * DIM + k];
                if (dot > best)
                    best = dot, best_index = i;
            }
            unsigned char key[CACHE_KEY_LENGTH] = {0};
            memcpy(key, &best_index, sizeof best_index);
            char id[CACHE_ID_LENGTH + 1];
            cache_store_id_from_key(key, id);
            /* ties (identical texts) count as agreement when the scores match */
            agree += strcmp(id, found.id) == 0 || fabsf(best - found.similarity) < 0.01f;
            recall_checked++;
        }
        if (q % 256 == 255) {
            arena_release(&arena);
            arena_init(&arena);
        }
    }
    arena_release(&arena);
    qsort(times, queries, sizeof *times, compare);
    printf("builtin embed + search over %zu entries (%d dims, one partition), %zu queries:\n", entries, DIM, queries);
    printf("  p50 %.3f ms  p99 %.3f ms  max %.3f ms\n", times[queries / 2] / 1e3, times[queries * 99 / 100] / 1e3,
           times[queries - 1] / 1e3);
    printf("  recall@1 vs exact float scan: %.3f (%zu queries)\n", (double)agree / (double)recall_checked,
           recall_checked);
    free(times);
    free(vectors);
    cache_store_free(store);
    return 0;
}
