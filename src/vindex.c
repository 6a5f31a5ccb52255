/* vindex.c — exact int8 scan over one partition's vectors (see vindex.h).
 *
 * Why a scan and not HNSW: cache partitions are per tenant, model and
 * instructions, so most hold far fewer than the 100k rows the targets name;
 * an exact scan has perfect recall, no build cost, trivial deletion (the
 * cache deletes all the time: TTL, LRU, invalidation) and a memory cost of
 * dim bytes per row. At 100k rows × 256 dims a pass reads 25 MB, which the
 * AVX2 loop does in about a millisecond (see bench/cache-bench.c). */
#include "sluice/vindex.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct vindex {
    int dim;
    size_t count;
    size_t capacity;
    int8_t *codes;   /* count × dim */
    float *scales;   /* per row: value = code × scale */
    uint32_t *ids;
};

vindex_t *vindex_new(int dim)
{
    if (dim <= 0 || dim % 32 != 0)
        return NULL;
    vindex_t *index = calloc(1, sizeof *index);
    if (index != NULL)
        index->dim = dim;
    return index;
}

void vindex_free(vindex_t *index)
{
    if (index == NULL)
        return;
    free(index->codes);
    free(index->scales);
    free(index->ids);
    free(index);
}

int vindex_dim(const vindex_t *index) { return index->dim; }
size_t vindex_count(const vindex_t *index) { return index->count; }
size_t vindex_bytes(const vindex_t *index)
{
    return sizeof *index + index->capacity * ((size_t)index->dim + sizeof(float) + sizeof(uint32_t));
}

static int grow(vindex_t *index)
{
    size_t capacity = index->capacity ? index->capacity * 2 : 16;
    int8_t *codes = realloc(index->codes, capacity * (size_t)index->dim);
    if (codes == NULL)
        return -1;
    index->codes = codes;
    float *scales = realloc(index->scales, capacity * sizeof *scales);
    if (scales == NULL)
        return -1;
    index->scales = scales;
    uint32_t *ids = realloc(index->ids, capacity * sizeof *ids);
    if (ids == NULL)
        return -1;
    index->ids = ids;
    index->capacity = capacity;
    return 0;
}

/* Quantises vector to codes; returns the scale. */
static float quantise(const float *vector, int dim, int8_t *codes)
{
    float largest = 0;
    for (int i = 0; i < dim; i++)
        largest = fmaxf(largest, fabsf(vector[i]));
    if (largest == 0) {
        memset(codes, 0, (size_t)dim);
        return 0;
    }
    float scale = largest / 127.0f;
    for (int i = 0; i < dim; i++)
        codes[i] = (int8_t)lrintf(vector[i] / scale);
    return scale;
}

long vindex_add(vindex_t *index, uint32_t id, const float *vector)
{
    if (index->count == index->capacity && grow(index) != 0)
        return -1;
    size_t position = index->count++;
    index->scales[position] = quantise(vector, index->dim, index->codes + position * (size_t)index->dim);
    index->ids[position] = id;
    return (long)position;
}

uint32_t vindex_remove_at(vindex_t *index, size_t position)
{
    if (position >= index->count)
        return UINT32_MAX;
    size_t last = --index->count;
    if (position == last)
        return UINT32_MAX;
    memcpy(index->codes + position * (size_t)index->dim, index->codes + last * (size_t)index->dim,
           (size_t)index->dim);
    index->scales[position] = index->scales[last];
    index->ids[position] = index->ids[last];
    return index->ids[position];
}

uint32_t vindex_id_at(const vindex_t *index, size_t position)
{
    return position < index->count ? index->ids[position] : UINT32_MAX;
}

/* The hot loop: int8 × int8 summed in int32. With AVX2 it takes 32 bytes a
 * step: maddubs multiplies |query| by the row with the query's sign moved
 * onto it (int16 pair sums cannot saturate: 2 × 127 × 127 < 32767), then
 * madd with ones widens to int32. The scalar loop is the fallback, and the
 * reference the unit tests compare against. */
static void dot_rows_scalar(const int8_t *codes, size_t rows, int dim, const int8_t *query, int32_t *out)
{
    for (size_t r = 0; r < rows; r++) {
        const int8_t *row = codes + r * (size_t)dim;
        int32_t sum = 0;
        for (int i = 0; i < dim; i++)
            sum += (int32_t)row[i] * (int32_t)query[i];
        out[r] = sum;
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2"))) static void dot_rows_avx2(const int8_t *codes, size_t rows, int dim,
                                                          const int8_t *query, int32_t *out)
{
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t r = 0; r < rows; r++) {
        const int8_t *row = codes + r * (size_t)dim;
        __m256i sum = _mm256_setzero_si256();
        for (int i = 0; i < dim; i += 32) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(query + i));
            __m256i v = _mm256_loadu_si256((const __m256i *)(row + i));
            __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(v, q));
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(pairs, ones));
        }
        __m128i half = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        half = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0x4e));
        half = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0xb1));
        out[r] = _mm_cvtsi128_si32(half);
    }
}
#endif

static void dot_rows(const int8_t *codes, size_t rows, int dim, const int8_t *query, int32_t *out)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) {
        dot_rows_avx2(codes, rows, dim, query, out);
        return;
    }
#endif
    dot_rows_scalar(codes, rows, dim, query, out);
}

enum { BLOCK_ROWS = 256 };

typedef void (*block_visit_t)(const vindex_t *index, size_t first, const int32_t *dots, size_t rows,
                              float query_scale, void *state);

static void scan_blocks(const vindex_t *index, const float *query, block_visit_t visit, void *state)
{
    int8_t query_codes[8192];
    if (index->dim > (int)sizeof query_codes)
        return;
    float query_scale = quantise(query, index->dim, query_codes);
    if (query_scale == 0)
        return;
    int32_t dots[BLOCK_ROWS];
    for (size_t first = 0; first < index->count; first += BLOCK_ROWS) {
        size_t rows = index->count - first < BLOCK_ROWS ? index->count - first : BLOCK_ROWS;
        dot_rows(index->codes + first * (size_t)index->dim, rows, index->dim, query_codes, dots);
        visit(index, first, dots, rows, query_scale, state);
    }
}

typedef struct search_state {
    float best;
    uint32_t best_id;
    vindex_accept_t accept;
    void *argument;
} search_state_t;

static void search_block(const vindex_t *index, size_t first, const int32_t *dots, size_t rows, float query_scale,
                         void *argument)
{
    search_state_t *state = argument;
    for (size_t r = 0; r < rows; r++) {
        float score = (float)dots[r] * query_scale * index->scales[first + r];
        if (score < state->best)
            continue;
        uint32_t id = index->ids[first + r];
        if (state->accept != NULL && !state->accept(state->argument, id))
            continue;
        state->best = score;
        state->best_id = id;
    }
}

uint32_t vindex_search(const vindex_t *index, const float *query, float min_score, vindex_accept_t accept,
                       void *argument, float *score)
{
    search_state_t state = {.best = min_score, .best_id = UINT32_MAX, .accept = accept, .argument = argument};
    scan_blocks(index, query, search_block, &state);
    if (score != NULL)
        *score = state.best_id == UINT32_MAX ? 0 : fminf(state.best, 1.0f);
    return state.best_id;
}

typedef struct visit_state {
    float min_score;
    vindex_visit_t visit;
    void *argument;
} visit_state_t;

static void visit_block(const vindex_t *index, size_t first, const int32_t *dots, size_t rows, float query_scale,
                        void *argument)
{
    visit_state_t *state = argument;
    for (size_t r = 0; r < rows; r++) {
        float score = (float)dots[r] * query_scale * index->scales[first + r];
        if (score >= state->min_score)
            state->visit(state->argument, index->ids[first + r], score);
    }
}

void vindex_scan(const vindex_t *index, const float *query, float min_score, vindex_visit_t visit, void *argument)
{
    visit_state_t state = {.min_score = min_score, .visit = visit, .argument = argument};
    scan_blocks(index, query, visit_block, &state);
}
