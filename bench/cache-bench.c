/* cache-bench.c — builtin embed + search latency with 100,000 entries in one
 * partition (the worst case: partitions are per tenant, model and
 * instructions), and the index's recall@1 against an exact float scan, for
 * two query kinds: random texts from the same generator (their nearest
 * neighbour is often a weak match: the hard case for a prefilter) and
 * near-duplicates of stored texts (one word added: the case a cache hit is).
 * Usage: sluice-cache-bench [ENTRIES] [QUERIES] [CANDIDATES] [PREFILTER_MIN_ROWS]
 * (CANDIDATES 0: exact int8 scan). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/cache_store.h"
#include "sluice/embed.h"
#include "sluice/util/clock.h"
#include "sluice/vindex.h"

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
    size_t candidates = argc > 3 ? strtoul(argv[3], NULL, 10) : VINDEX_PREFILTER_CANDIDATES;
    size_t min_rows = argc > 4 ? strtoul(argv[4], NULL, 10) : VINDEX_PREFILTER_MIN_ROWS;
    if (candidates == 0)
        min_rows = SIZE_MAX;
    vindex_set_prefilter(min_rows, candidates);
    enum { RECALL_QUERIES = 500 };
    cache_store_t *store = cache_store_new(entries + 1, (size_t)4 << 30);
    float *vectors = malloc(entries * DIM * sizeof *vectors);
    char (*ids)[CACHE_ID_LENGTH + 1] = malloc(entries * sizeof *ids);
    unsigned *text_seeds = malloc(entries * sizeof *text_seeds);
    if (store == NULL || vectors == NULL || ids == NULL || text_seeds == NULL)
        return 1;
    unsigned seed = 42;
    char text[256];
    uint64_t t0 = clock_monotonic_us();
    for (size_t i = 0; i < entries; i++) {
        text_seeds[i] = seed;
        make_text(text, sizeof text, &seed);
        float *vector = vectors + i * DIM;
        ids[i][0] = 0;
        if (embed_builtin(text, strlen(text), vector, DIM) != 0)
            continue;
        cache_record_t record = {.partition = 7, .vector = vector, .dim = DIM, .model = "m", .scope = "s",
                                 .created_ms = 1, .exact_expires_ms = UINT64_MAX / 2,
                                 .semantic_expires_ms = UINT64_MAX / 2, .answer = "answer", .answer_length = 6};
        memcpy(record.key, &i, sizeof i);
        cache_store_id_from_key(record.key, ids[i]);
        if (cache_store_put(store, &record, 1) != 0)
            return 1;
    }
    printf("inserted %zu entries in %.1f s\n", entries, (double)(clock_monotonic_us() - t0) / 1e6);
    double *times = malloc(queries * sizeof *times);
    if (times == NULL)
        return 1;
    double *cpu_times = malloc(queries * sizeof *cpu_times);
    if (cpu_times == NULL)
        return 1;
    size_t agree[2] = {0, 0}, agree_int8[2] = {0, 0}, checked[2] = {0, 0};
    arena_t arena;
    arena_init(&arena);
    for (size_t q = 0; q < queries; q++) {
        /* odd queries: a stored text with a word added (a paraphrase-like hit) */
        int near_duplicate = q % 2 == 1;
        if (near_duplicate) {
            unsigned text_seed = text_seeds[(size_t)rand_r(&seed) % entries];
            make_text(text, sizeof text, &text_seed);
            size_t used = strlen(text);
            snprintf(text + used, sizeof text - used, " please");
        } else {
            make_text(text, sizeof text, &seed);
        }
        float query[DIM];
        cache_found_t found;
        struct timespec cpu_start, cpu_end;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu_start);
        uint64_t start = clock_monotonic_us();
        int rc = embed_builtin(text, strlen(text), query, DIM);
        if (rc == 0)
            rc = cache_store_search(store, 7, query, DIM, -1.0f, 2, &arena, &found);
        times[q] = (double)(clock_monotonic_us() - start);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu_end);
        cpu_times[q] = (double)(cpu_end.tv_sec - cpu_start.tv_sec) * 1e6 +
                       (double)(cpu_end.tv_nsec - cpu_start.tv_nsec) / 1e3;
        if (rc == 1 && checked[near_duplicate] < RECALL_QUERIES) { /* recall@1 against an exact float scan */
            float best = -2, found_score = -2;
            for (size_t i = 0; i < entries; i++) {
                float dot = 0;
                for (int k = 0; k < DIM; k++)
                    dot += query[k] * vectors[i * DIM + k];
                if (dot > best)
                    best = dot;
                if (strcmp(ids[i], found.id) == 0)
                    found_score = dot;
            }
            /* a tie (identical texts) counts as agreement: the float scores match */
            agree[near_duplicate] += found_score >= best - 1e-5f;
            /* against brute force over the same int8 rows (the prefilter's own loss) */
            cache_found_t exact;
            vindex_set_prefilter(SIZE_MAX, candidates);
            if (cache_store_search(store, 7, query, DIM, -1.0f, 2, &arena, &exact) == 1)
                agree_int8[near_duplicate] += exact.similarity <= found.similarity + 1e-6f;
            vindex_set_prefilter(min_rows, candidates);
            checked[near_duplicate]++;
        }
        if (q % 256 == 255) {
            arena_release(&arena);
            arena_init(&arena);
        }
    }
    arena_release(&arena);
    qsort(times, queries, sizeof *times, compare);
    qsort(cpu_times, queries, sizeof *cpu_times, compare);
    if (candidates == 0 || entries < min_rows)
        printf("builtin embed + search over %zu entries (%d dims, one partition, exact int8 scan), %zu queries:\n",
               entries, DIM, queries);
    else
        printf("builtin embed + search over %zu entries (%d dims, one partition, sign prefilter + %zu rescored), %zu "
               "queries:\n",
               entries, DIM, candidates, queries);
    printf("  p50 %.3f ms  p99 %.3f ms  max %.3f ms\n", times[queries / 2] / 1e3, times[queries * 99 / 100] / 1e3,
           times[queries - 1] / 1e3);
    printf("  thread CPU time: p50 %.3f ms  p99 %.3f ms  (excludes time the thread was not running)\n",
           cpu_times[queries / 2] / 1e3, cpu_times[queries * 99 / 100] / 1e3);
    printf("  recall@1 vs exact float scan: random queries %.3f (%zu), near-duplicates %.3f (%zu)\n",
           (double)agree[0] / (double)checked[0], checked[0], (double)agree[1] / (double)checked[1], checked[1]);
    printf("  recall@1 vs exact int8 scan:  random queries %.3f, near-duplicates %.3f\n",
           (double)agree_int8[0] / (double)checked[0], (double)agree_int8[1] / (double)checked[1]);
    free(times);
    free(cpu_times);
    free(ids);
    free(text_seeds);
    free(vectors);
    cache_store_free(store);
    return 0;
}
