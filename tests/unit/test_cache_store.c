/* test_cache_store.c — the cache store: exact and vector lookups, per-way
 * expiry, LRU eviction by count and by bytes, invalidation. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/cache_store.h"
#include "sluice/embed.h"
#include "sluice/vindex.h"
#include "leak_check.h"

TestSuite(cache_store, .fini = unit_leak_check);

enum { DIM = 256 };

static void key_for(const char *name, unsigned char key[CACHE_KEY_LENGTH])
{
    memset(key, 0, CACHE_KEY_LENGTH);
    /* distinct first bytes so ids differ */
    for (size_t i = 0; name[i] && i < CACHE_KEY_LENGTH; i++)
        key[i] = (unsigned char)name[i];
}

static int put(cache_store_t *store, const char *name, const char *text, const char *scope, uint64_t now,
               uint64_t ttl)
{
    static float vector[DIM];
    cache_record_t record = {.partition = 42, .dim = DIM, .model = "fast", .scope = scope, .created_ms = now,
                             .exact_expires_ms = now + ttl, .semantic_expires_ms = now + ttl,
                             .answer = name, .answer_length = strlen(name)};
    key_for(name, record.key);
    if (text != NULL) {
        cr_assert_eq(embed_builtin(text, strlen(text), vector, DIM), 0);
        record.vector = vector;
    }
    return cache_store_put(store, &record, now);
}

static const char *search(cache_store_t *store, arena_t *arena, const char *text, uint64_t now, float *similarity)
{
    float vector[DIM];
    cr_assert_eq(embed_builtin(text, strlen(text), vector, DIM), 0);
    cache_found_t found;
    int rc = cache_store_search(store, 42, vector, DIM, 0.8f, now, arena, &found);
    cr_assert_geq(rc, 0);
    if (similarity)
        *similarity = rc ? found.similarity : 0;
    return rc ? found.answer : NULL;
}

Test(cache_store, exact_and_semantic_lookup)
{
    cache_store_t *store = cache_store_new(100, 1 << 20);
    arena_t arena;
    arena_init(&arena);
    cr_assert_eq(put(store, "capital", "What is the capital of France?", "key:a", 1000, 5000), 0);
    cr_assert_eq(put(store, "refund", "How do I get a refund for my order?", "key:a", 1000, 5000), 0);
    unsigned char key[CACHE_KEY_LENGTH];
    key_for("capital", key);
    cache_found_t found;
    cr_assert_eq(cache_store_get_exact(store, key, 1001, &arena, &found), 1);
    cr_assert_str_eq(found.answer, "capital");
    float similarity;
    cr_assert_str_eq(search(store, &arena, "what's the capital of france", 1001, &similarity), "capital");
    cr_assert_gt(similarity, 0.9f);
    cr_assert_null(search(store, &arena, "What is the capital of Spain?", 1001, NULL));
    cr_assert_eq(cache_store_search(store, 43, (float[DIM]){1}, DIM, 0.5f, 1001, &arena, &found), 0,
                 "another partition sees nothing");
    arena_release(&arena);
    cache_store_free(store);
}

Test(cache_store, entries_expire_and_are_swept)
{
    cache_store_t *store = cache_store_new(100, 1 << 20);
    arena_t arena;
    arena_init(&arena);
    put(store, "old", "the weather in Paris today", "key:a", 1000, 100);
    unsigned char key[CACHE_KEY_LENGTH];
    key_for("old", key);
    cache_found_t found;
    cr_assert_eq(cache_store_get_exact(store, key, 1099, &arena, &found), 1);
    cr_assert_eq(cache_store_get_exact(store, key, 1100, &arena, &found), 0, "expired at created + ttl");
    cr_assert_null(search(store, &arena, "the weather in Paris today", 1100, NULL));
    put(store, "new", "something else entirely", "key:a", 5000, 100);
    cache_stats_t stats;
    cache_store_stats(store, &stats);
    cr_assert_eq(stats.entries, 1u, "the sweep removed the expired entry");
    cr_assert_eq(stats.expirations, 1u);
    arena_release(&arena);
    cache_store_free(store);
}

Test(cache_store, evicts_least_recently_used_by_count)
{
    cache_store_t *store = cache_store_new(3, 1 << 20);
    arena_t arena;
    arena_init(&arena);
    put(store, "a", "alpha question one", "s", 1, 100000);
    put(store, "b", "bravo question two", "s", 2, 100000);
    put(store, "c", "charlie question three", "s", 3, 100000);
    unsigned char key[CACHE_KEY_LENGTH];
    cache_found_t found;
    key_for("a", key);
    cr_assert_eq(cache_store_get_exact(store, key, 4, &arena, &found), 1); /* a is now recent; b is oldest */
    put(store, "d", "delta question four", "s", 5, 100000);
    key_for("b", key);
    cr_assert_eq(cache_store_get_exact(store, key, 6, &arena, &found), 0, "b was evicted");
    key_for("a", key);
    cr_assert_eq(cache_store_get_exact(store, key, 6, &arena, &found), 1);
    cr_assert_null(search(store, &arena, "bravo question two", 6, NULL), "its vector went too");
    cache_stats_t stats;
    cache_store_stats(store, &stats);
    cr_assert_eq(stats.entries, 3u);
    cr_assert_eq(stats.vectors, 3u);
    cr_assert_eq(stats.evictions, 1u);
    arena_release(&arena);
    cache_store_free(store);
}

Test(cache_store, evicts_by_memory_bound)
{
    cache_store_t *store = cache_store_new(0, 4000);
    for (int i = 0; i < 50; i++) {
        char name[32];
        snprintf(name, sizeof name, "entry-%02d-%0100d", i, 0);
        put(store, name, NULL, "s", (uint64_t)i + 1, 100000);
    }
    cache_stats_t stats;
    cache_store_stats(store, &stats);
    cr_assert_leq(stats.bytes, 4000u);
    cr_assert_gt(stats.evictions, 0u);
    cache_store_free(store);
}

Test(cache_store, replacing_a_key_keeps_one_entry)
{
    cache_store_t *store = cache_store_new(10, 1 << 20);
    put(store, "same", "where is my parcel", "s", 1, 1000);
    put(store, "same", "where is my parcel", "s", 2, 1000);
    cache_stats_t stats;
    cache_store_stats(store, &stats);
    cr_assert_eq(stats.entries, 1u);
    cr_assert_eq(stats.vectors, 1u);
    cache_store_free(store);
}

static void count_removed(void *argument, const char *id)
{
    (void)id;
    (*(int *)argument)++;
}

Test(cache_store, invalidation_by_id_model_scope_text_and_all)
{
    cache_store_t *store = cache_store_new(100, 1 << 20);
    put(store, "one", "How do I reset my password?", "key:a", 1, 100000);
    put(store, "two", "What are your opening hours?", "key:b", 1, 100000);
    put(store, "three", "Where is my parcel?", "key:b", 1, 100000);
    int removed = 0;
    unsigned char key[CACHE_KEY_LENGTH];
    char id[CACHE_ID_LENGTH + 1];
    key_for("one", key);
    cache_store_id_from_key(key, id);
    cr_assert_eq(cache_store_remove(store, &(cache_match_t){.id = id}, count_removed, &removed), 1u);
    float vector[DIM];
    const char *text = "what are the opening hours";
    embed_builtin(text, strlen(text), vector, DIM);
    cr_assert_eq(cache_store_remove(store, &(cache_match_t){.vector = vector, .dim = DIM, .threshold = 0.8f}, NULL,
                                    NULL),
                 1u);
    cr_assert_eq(cache_store_remove(store, &(cache_match_t){.scope = "key:a"}, NULL, NULL), 0u);
    cr_assert_eq(cache_store_remove(store, &(cache_match_t){.model = "fast"}, count_removed, &removed), 1u);
    cr_assert_eq(removed, 2);
    cache_stats_t stats;
    cache_store_stats(store, &stats);
    cr_assert_eq(stats.entries, 0u);
    cr_assert_eq(stats.partitions, 0u, "empty partitions are released");
    cache_store_free(store);
}

/* One big partition searched through the sign-bit prefilter (forced on at 32
 * rows): expired and evicted entries are never served, live ones are found,
 * and the byte count returns to its start when everything is gone. */
static void random_vector(float *vector, unsigned *seed)
{
    double norm = 0;
    for (int i = 0; i < DIM; i++) {
        vector[i] = (float)rand_r(seed) / (float)RAND_MAX - 0.5f;
        norm += (double)vector[i] * vector[i];
    }
    for (int i = 0; i < DIM; i++)
        vector[i] = (float)(vector[i] / sqrt(norm));
}

static int put_vector(cache_store_t *store, int n, const float *vector, uint64_t now, uint64_t ttl)
{
    char name[16];
    snprintf(name, sizeof name, "e%04d", n);
    cache_record_t record = {.partition = 42, .dim = DIM, .vector = vector, .model = "fast", .scope = "key:a",
                             .created_ms = now, .exact_expires_ms = now + ttl, .semantic_expires_ms = now + ttl,
                             .answer = name, .answer_length = strlen(name)};
    key_for(name, record.key);
    return cache_store_put(store, &record, now);
}

static int found_answer(cache_store_t *store, arena_t *arena, const float *vector, uint64_t now, int n)
{
    cache_found_t found;
    int rc = cache_store_search(store, 42, vector, DIM, 0.95f, now, arena, &found);
    cr_assert_geq(rc, 0);
    if (rc == 0)
        return 0;
    char name[16];
    snprintf(name, sizeof name, "e%04d", n);
    cr_assert_str_eq(found.answer, name, "a vector finds its own entry");
    return 1;
}

Test(cache_store, prefilter_partition_under_ttl_and_eviction)
{
    enum { ROWS = 300, LIMIT = 200 };
    vindex_set_prefilter(32, 16);
    unsigned seed = 5;
    static float vectors[ROWS][DIM];
    cache_store_t *store = cache_store_new(LIMIT, 64 << 20);
    cr_assert_not_null(store);
    arena_t arena;
    arena_init(&arena);
    /* rows 0..99: short TTL; all inserted one millisecond apart */
    for (int n = 0; n < ROWS; n++) {
        random_vector(vectors[n], &seed);
        cr_assert_eq(put_vector(store, n, vectors[n], 1000 + (uint64_t)n, n < 100 ? 150 : 100000), 0);
    }
    /* LIMIT entries: the 100 least recently used (0..99) were evicted */
    for (int n = 0; n < ROWS; n++)
        cr_assert_eq(found_answer(store, &arena, vectors[n], 1400, n), n >= 100, "entry %d", n);
    /* refill 0..99 with a short TTL: that evicts 100 of 100..299 (the searches
     * above stamped them all at 1400, so which 100 is the store's choice) */
    for (int n = 0; n < 100; n++)
        cr_assert_eq(put_vector(store, n, vectors[n], 2000 + (uint64_t)n, 150), 0);
    int live = 0;
    for (int n = 0; n < ROWS; n++) {
        int found = found_answer(store, &arena, vectors[n], 2100, n);
        if (n < 100)
            cr_assert(found, "entry %d", n);
        live += n >= 100 && found;
    }
    cr_assert_eq(live, 100);
    /* after their TTL, 0..99 are not served though they are still stored */
    int still = 0;
    for (int n = 0; n < ROWS; n++) {
        int found = found_answer(store, &arena, vectors[n], 2500, n);
        if (n < 100)
            cr_assert_not(found, "entry %d after TTL", n);
        still += n >= 100 && found;
    }
    cr_assert_eq(still, 100);
    arena_release(&arena);
    cache_store_free(store);
}
