/* test_vindex.c — the int8 scan index: search finds the true nearest row,
 * respects the minimum and the accept callback, and removal keeps ids right. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "sluice/vindex.h"
#include "leak_check.h"

TestSuite(vindex, .fini = unit_leak_check);

enum { DIM = 64 };

static void random_unit(float *vector, unsigned *seed)
{
    double norm = 0;
    for (int i = 0; i < DIM; i++) {
        vector[i] = (float)rand_r(seed) / (float)RAND_MAX - 0.5f;
        norm += (double)vector[i] * vector[i];
    }
    for (int i = 0; i < DIM; i++)
        vector[i] = (float)(vector[i] / sqrt(norm));
}

static float dot(const float *a, const float *b)
{
    float sum = 0;
    for (int i = 0; i < DIM; i++)
        sum += a[i] * b[i];
    return sum;
}

Test(vindex, rejects_bad_dimensions) { cr_assert_null(vindex_new(50)); }

Test(vindex, search_matches_brute_force)
{
    enum { ROWS = 2000, QUERIES = 200 };
    unsigned seed = 7;
    float (*rows)[DIM] = malloc(sizeof(float[ROWS][DIM]));
    vindex_t *index = vindex_new(DIM);
    cr_assert_not_null(index);
    for (uint32_t i = 0; i < ROWS; i++) {
        random_unit(rows[i], &seed);
        cr_assert_eq(vindex_add(index, i, rows[i]), (long)i);
    }
    int agree = 0;
    for (int q = 0; q < QUERIES; q++) {
        float query[DIM];
        /* a query near a random row, as a paraphrase would be */
        int target = rand_r(&seed) % ROWS;
        random_unit(query, &seed);
        for (int i = 0; i < DIM; i++)
            query[i] = rows[target][i] + 0.3f * query[i];
        float best = -2;
        int best_id = -1;
        for (int i = 0; i < ROWS; i++) {
            float score = dot(query, rows[i]) / sqrtf(dot(query, query));
            if (score > best)
                best = score, best_id = i;
        }
        float norm = sqrtf(dot(query, query));
        for (int i = 0; i < DIM; i++)
            query[i] /= norm;
        float score = 0;
        uint32_t found = vindex_search(index, query, -1.0f, NULL, NULL, &score);
        agree += (int)found == best_id;
        cr_assert_float_eq(score, best, 0.02f);
    }
    cr_assert_geq(agree, QUERIES * 98 / 100, "recall@1 %d/%d", agree, QUERIES);
    vindex_free(index);
    free(rows);
}

static int reject_odd(void *argument, uint32_t id)
{
    (void)argument;
    return id % 2 == 0;
}

Test(vindex, min_score_and_accept_filter)
{
    unsigned seed = 3;
    float a[DIM], b[DIM];
    random_unit(a, &seed);
    random_unit(b, &seed);
    vindex_t *index = vindex_new(DIM);
    vindex_add(index, 1, a); /* odd: rejected by the callback */
    vindex_add(index, 2, b);
    float score;
    cr_assert_eq(vindex_search(index, a, 0.9f, NULL, NULL, &score), 1u);
    cr_assert_eq(vindex_search(index, a, 0.9f, reject_odd, NULL, &score), UINT32_MAX);
    cr_assert_eq(vindex_search(index, b, 0.99f, reject_odd, NULL, &score), 2u);
    vindex_free(index);
}

Test(vindex, remove_moves_last_row_and_reports_it)
{
    unsigned seed = 11;
    float rows[3][DIM];
    vindex_t *index = vindex_new(DIM);
    for (uint32_t i = 0; i < 3; i++) {
        random_unit(rows[i], &seed);
        vindex_add(index, 10 + i, rows[i]);
    }
    cr_assert_eq(vindex_remove_at(index, 0), 12u, "the last row moved into position 0");
    cr_assert_eq(vindex_id_at(index, 0), 12u);
    cr_assert_eq(vindex_count(index), 2u);
    float score;
    cr_assert_eq(vindex_search(index, rows[2], 0.99f, NULL, NULL, &score), 12u);
    cr_assert_eq(vindex_search(index, rows[0], 0.99f, NULL, NULL, &score), UINT32_MAX);
    cr_assert_eq(vindex_remove_at(index, 1), UINT32_MAX, "removing the last row moves nothing");
    vindex_free(index);
}

/* The sign-bit prefilter path (forced on small indexes here): the found row
 * is the brute-force best for near queries, and the returned score is the
 * exact int8 score, never a Hamming estimate. */
Test(vindex, prefilter_search_matches_brute_force)
{
    enum { ROWS = 3000, QUERIES = 200 };
    vindex_set_prefilter(64, 64);
    unsigned seed = 17;
    float (*rows)[DIM] = malloc(sizeof(float[ROWS][DIM]));
    cr_assert_not_null(rows);
    vindex_t *index = vindex_new(DIM);
    cr_assert_not_null(index);
    for (uint32_t i = 0; i < ROWS; i++) {
        random_unit(rows[i], &seed);
        cr_assert_eq(vindex_add(index, i, rows[i]), (long)i);
    }
    int agree = 0;
    for (int q = 0; q < QUERIES; q++) {
        float query[DIM], noise[DIM];
        int target = rand_r(&seed) % ROWS;
        random_unit(noise, &seed);
        for (int i = 0; i < DIM; i++)
            query[i] = rows[target][i] + 0.3f * noise[i];
        float norm = sqrtf(dot(query, query));
        for (int i = 0; i < DIM; i++)
            query[i] /= norm;
        float best = -2;
        int best_id = -1;
        for (int i = 0; i < ROWS; i++) {
            float score = dot(query, rows[i]);
            if (score > best)
                best = score, best_id = i;
        }
        float score = 0;
        uint32_t found = vindex_search(index, query, -1.0f, NULL, NULL, &score);
        cr_assert_neq(found, UINT32_MAX);
        agree += (int)found == best_id;
        cr_assert_float_eq(score, dot(query, rows[found]), 0.02f, "the score is the row's own, exactly");
        cr_assert_eq(vindex_search(index, query, best + 0.03f, NULL, NULL, &score), UINT32_MAX,
                     "nothing above the true best is ever reported");
    }
    cr_assert_geq(agree, QUERIES * 98 / 100, "recall@1 %d/%d", agree, QUERIES);
    vindex_free(index);
    free(rows);
}

/* Swap-removal moves the sign code with the row: after removing half the rows
 * at random, every remaining row is found by its own vector and no removed
 * one is. */
Test(vindex, prefilter_follows_removals)
{
    enum { ROWS = 400 };
    vindex_set_prefilter(16, 8);
    unsigned seed = 23;
    float (*rows)[DIM] = malloc(sizeof(float[ROWS][DIM]));
    cr_assert_not_null(rows);
    size_t position_of[ROWS];
    int removed[ROWS] = {0};
    vindex_t *index = vindex_new(DIM);
    for (uint32_t i = 0; i < ROWS; i++) {
        random_unit(rows[i], &seed);
        position_of[i] = (size_t)vindex_add(index, i, rows[i]);
    }
    for (int n = 0; n < ROWS / 2;) {
        uint32_t id = (uint32_t)(rand_r(&seed) % ROWS);
        if (removed[id])
            continue;
        uint32_t moved = vindex_remove_at(index, position_of[id]);
        if (moved != UINT32_MAX)
            position_of[moved] = position_of[id];
        removed[id] = 1;
        n++;
    }
    cr_assert_eq(vindex_count(index), ROWS / 2);
    for (uint32_t i = 0; i < ROWS; i++) {
        float score = 0;
        uint32_t found = vindex_search(index, rows[i], 0.99f, NULL, NULL, &score);
        if (removed[i])
            cr_assert_eq(found, UINT32_MAX, "removed row %u", i);
        else
            cr_assert_eq(found, i, "row %u found %u", i, found);
    }
    vindex_free(index);
    free(rows);
}
