/* cache-eval.c — semantic-cache quality on tests/data/cache-pairs.jsonl.
 *
 * Protocol (DESIGN.md): for each labelled pair, side A is admitted into an
 * empty cache store and side B is looked up, through the same embedder,
 * quantised index and store the gateway uses. A "same" pair served is a
 * hit; a "different" pair served is a false hit. For each threshold it
 * prints the hit rate on same-meaning pairs, the false-hit rate on
 * different-meaning pairs and 1 − precision of all served hits, per builtin
 * embedder size, and names the lowest threshold that keeps both false-hit
 * figures at or below 1 %, and what the shipped default threshold does on
 * this set (it was chosen on the tuning set; run it on the held-out set too).
 * Usage: sluice-cache-eval PAIRS.jsonl [DEFAULT_THRESHOLD] */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/cache_store.h"
#include "sluice/embed.h"

enum { MAX_PAIRS = 4096 };

typedef struct pair {
    char *a, *b, *kind;
    int is_same;
    float similarity;
} pair_t;

static float similarity_through_store(const char *a, const char *b, int dim)
{
    float va[EMBED_MAX_DIM], vb[EMBED_MAX_DIM];
    if (embed_builtin(a, strlen(a), va, dim) != 0 || embed_builtin(b, strlen(b), vb, dim) != 0)
        return 0;
    cache_store_t *store = cache_store_new(10, 1 << 20);
    cache_record_t record = {.partition = 1, .vector = va, .dim = dim, .model = "m", .scope = "s", .created_ms = 1,
                             .exact_expires_ms = 1000, .semantic_expires_ms = 1000, .answer = "x", .answer_length = 1};
    float result = 0;
    arena_t arena;
    arena_init(&arena);
    cache_found_t found;
    if (store != NULL && cache_store_put(store, &record, 1) == 0 &&
        cache_store_search(store, 1, vb, dim, -1.0f, 2, &arena, &found) == 1)
        result = found.similarity;
    arena_release(&arena);
    cache_store_free(store);
    return result;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s PAIRS.jsonl [DEFAULT_THRESHOLD]\n", argv[0]);
        return 2;
    }
    int default_step = argc == 3 ? (int)lround(strtod(argv[2], NULL) * 100) : 82;
    FILE *file = fopen(argv[1], "r");
    if (file == NULL) {
        perror(argv[1]);
        return 1;
    }
    static pair_t pairs[MAX_PAIRS];
    size_t count = 0, same = 0;
    char line[8192];
    while (count < MAX_PAIRS && fgets(line, sizeof line, file) != NULL) {
        json_t *row = json_loads(line, 0, NULL);
        const char *a = json_string_value(json_object_get(row, "a"));
        const char *b = json_string_value(json_object_get(row, "b"));
        const char *label = json_string_value(json_object_get(row, "label"));
        const char *kind = json_string_value(json_object_get(row, "kind"));
        if (a && b && label && kind) {
            pairs[count] = (pair_t){strdup(a), strdup(b), strdup(kind), strcmp(label, "same") == 0, 0};
            same += (size_t)pairs[count].is_same;
            count++;
        }
        json_decref(row);
    }
    fclose(file);
    size_t different = count - same;
    printf("pairs: %zu (%zu same meaning, %zu different meaning)\n\n", count, same, different);
    static const int dims[] = {256, 512, 1024};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        int dim = dims[d];
        for (size_t i = 0; i < count; i++)
            pairs[i].similarity = similarity_through_store(pairs[i].a, pairs[i].b, dim);
        printf("### builtin embedder, %d dimensions\n\n", dim);
        printf("| threshold | hit rate (same) | false-hit rate (different) | 1 - precision |\n");
        printf("|---:|---:|---:|---:|\n");
        double chosen = -1;
        for (int step = 60; step <= 99; step++) {
            double threshold = step / 100.0;
            size_t hits = 0, false_hits = 0;
            for (size_t i = 0; i < count; i++) {
                if (pairs[i].similarity < threshold)
                    continue;
                if (pairs[i].is_same)
                    hits++;
                else
                    false_hits++;
            }
            double hit_rate = (double)hits / (double)same;
            double false_rate = (double)false_hits / (double)different;
            double impurity = hits + false_hits ? (double)false_hits / (double)(hits + false_hits) : 0;
            if (chosen < 0 && false_rate <= 0.01 && impurity <= 0.01)
                chosen = threshold;
            if (step % 5 == 0 || chosen == threshold || step == default_step)
                printf("| %.2f%s%s | %.1f %% | %.1f %% | %.1f %% |\n", threshold, chosen == threshold ? " **" : "",
                       step == default_step ? " (default)" : "", 100 * hit_rate, 100 * false_rate, 100 * impurity);
        }
        printf("\nlowest threshold with false hits <= 1 %%: %.2f\n", chosen);
        if (chosen > 0) {
            printf("false hits at %.2f by kind:", chosen);
            static const char *const kinds[] = {"entity", "number", "negation", "time", "other_intent", "unrelated"};
            for (size_t k = 0; k < 6; k++) {
                size_t total = 0, served = 0;
                for (size_t i = 0; i < count; i++) {
                    if (pairs[i].is_same || strcmp(pairs[i].kind, kinds[k]) != 0)
                        continue;
                    total++;
                    served += pairs[i].similarity >= chosen;
                }
                printf(" %s %zu/%zu", kinds[k], served, total);
            }
            printf("\n");
        }
        printf("\n");
    }
    for (size_t i = 0; i < count; i++) {
        free(pairs[i].a);
        free(pairs[i].b);
        free(pairs[i].kind);
    }
    return 0;
}
