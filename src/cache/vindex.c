/* vindex.c — int8 rows with a sign-bit prefilter, one partition (see vindex.h).
 *
 * Why not HNSW: cache partitions are per tenant, model and instructions, so
 * most hold far fewer than the 100k rows the targets name; a flat layout has
 * no build cost, trivial deletion (the cache deletes all the time: TTL, LRU,
 * invalidation) and a memory cost of dim + 32 bytes per row.
 *
 * Small partitions (< prefilter_min_rows) are scanned exactly in int8. Larger
 * ones are searched in two steps: every row also carries a 256-bit SimHash
 * code (the signs of 256 fixed random ±1 projections of its int8 code), kept
 * in one contiguous array; a query XORs and popcounts its code against all of
 * them (32 bytes a row instead of dim), keeps the `candidates` rows with the
 * smallest Hamming distance, and rescores only those exactly in int8. The
 * Hamming distance between SimHash codes estimates the angle, so the true
 * nearest row is almost always among them (recall@1 measured in
 * bench/cache-bench.c); when it is not, the search returns a less similar row
 * or nothing: the threshold still applies to the exact score, so an
 * approximation can cost a hit, never serve a row below the threshold. */
#include "sluice/vindex.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { SIGN_WORDS = VINDEX_SIGN_BITS / 64, MAX_DIM = 8192 };

static size_t prefilter_min_rows = VINDEX_PREFILTER_MIN_ROWS;
static size_t prefilter_candidates = VINDEX_PREFILTER_CANDIDATES;

void vindex_set_prefilter(size_t min_rows, size_t candidates)
{
    prefilter_min_rows = min_rows;
    prefilter_candidates = candidates == 0 ? 1 : candidates > VINDEX_MAX_CANDIDATES ? VINDEX_MAX_CANDIDATES : candidates;
}

struct vindex {
    int dim;
    size_t count;
    size_t capacity;
    int8_t *codes;   /* count × dim */
    float *scales;   /* per row: value = code × scale */
    uint32_t *ids;
    uint64_t *signs; /* count × SIGN_WORDS: the SimHash codes, structure of arrays */
    const int8_t *planes; /* VINDEX_SIGN_BITS × dim of ±1, shared by all indexes of this dim */
};

/* The projection planes: one table per dimension, built on first use and kept
 * for the life of the process (deterministic, so every instance agrees). */
static pthread_mutex_t planes_lock = PTHREAD_MUTEX_INITIALIZER;
static int8_t *planes_by_dim[MAX_DIM / 32 + 1];

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static const int8_t *planes_for(int dim)
{
    pthread_mutex_lock(&planes_lock);
    int8_t *planes = planes_by_dim[dim / 32];
    if (planes == NULL) {
        planes = malloc((size_t)VINDEX_SIGN_BITS * (size_t)dim);
        if (planes != NULL) {
            uint64_t state = 0x5111ce5eedULL;
            for (size_t i = 0; i < (size_t)VINDEX_SIGN_BITS * (size_t)dim; i += 64) {
                uint64_t bits = splitmix64(&state);
                for (size_t b = 0; b < 64; b++)
                    planes[i + b] = (bits >> b) & 1 ? 1 : -1;
            }
            planes_by_dim[dim / 32] = planes;
        }
    }
    pthread_mutex_unlock(&planes_lock);
    return planes;
}

vindex_t *vindex_new(int dim)
{
    if (dim <= 0 || dim % 32 != 0 || dim > MAX_DIM)
        return NULL;
    const int8_t *planes = planes_for(dim);
    if (planes == NULL)
        return NULL;
    vindex_t *index = calloc(1, sizeof *index);
    if (index != NULL) {
        index->dim = dim;
        index->planes = planes;
    }
    return index;
}

void vindex_free(vindex_t *index)
{
    if (index == NULL)
        return;
    free(index->codes);
    free(index->scales);
    free(index->ids);
    free(index->signs);
    free(index);
}

int vindex_dim(const vindex_t *index) { return index->dim; }
size_t vindex_count(const vindex_t *index) { return index->count; }
size_t vindex_bytes(const vindex_t *index)
{
    return sizeof *index + index->capacity * vindex_row_bytes(index->dim);
}

size_t vindex_row_bytes(int dim)
{
    return (size_t)dim + SIGN_WORDS * sizeof(uint64_t) + sizeof(float) + sizeof(uint32_t);
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
    uint64_t *signs = realloc(index->signs, capacity * SIGN_WORDS * sizeof *signs);
    if (signs == NULL)
        return -1;
    index->signs = signs;
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

/* The SimHash code of an int8 code: bit b is set when the projection on plane
 * b is positive. 256 projections of dim int8 values, on the same kernel. */
static void sign_code(const int8_t *planes, int dim, const int8_t *codes, uint64_t out[SIGN_WORDS])
{
    int32_t projections[VINDEX_SIGN_BITS];
    dot_rows(planes, VINDEX_SIGN_BITS, dim, codes, projections);
    for (int w = 0; w < SIGN_WORDS; w++) {
        uint64_t word = 0;
        for (int b = 0; b < 64; b++)
            word |= (uint64_t)(projections[w * 64 + b] > 0) << b;
        out[w] = word;
    }
}

long vindex_add(vindex_t *index, uint32_t id, const float *vector)
{
    if (index->count == index->capacity && grow(index) != 0)
        return -1;
    size_t position = index->count++;
    int8_t *codes = index->codes + position * (size_t)index->dim;
    index->scales[position] = quantise(vector, index->dim, codes);
    index->ids[position] = id;
    sign_code(index->planes, index->dim, codes, index->signs + position * SIGN_WORDS);
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
    memcpy(index->signs + position * SIGN_WORDS, index->signs + last * SIGN_WORDS, SIGN_WORDS * sizeof(uint64_t));
    index->scales[position] = index->scales[last];
    index->ids[position] = index->ids[last];
    return index->ids[position];
}

enum { BLOCK_ROWS = 256 };

typedef void (*block_visit_t)(const vindex_t *index, size_t first, const int32_t *dots, size_t rows,
                              float query_scale, void *state);

static void scan_blocks(const vindex_t *index, const float *query, block_visit_t visit, void *state)
{
    int8_t query_codes[MAX_DIM];
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

static void consider(const vindex_t *index, size_t position, int32_t dot, float query_scale, search_state_t *state)
{
    float score = (float)dot * query_scale * index->scales[position];
    if (score < state->best)
        return;
    uint32_t id = index->ids[position];
    if (state->accept != NULL && !state->accept(state->argument, id))
        return;
    state->best = score;
    state->best_id = id;
}

static void search_block(const vindex_t *index, size_t first, const int32_t *dots, size_t rows, float query_scale,
                         void *argument)
{
    for (size_t r = 0; r < rows; r++)
        consider(index, first + r, dots[r], query_scale, argument);
}

/* ---- the prefilter: Hamming distances and the K nearest codes ------------- */

static void hamming_rows_generic(const uint64_t *signs, size_t rows, const uint64_t *query, uint16_t *out)
{
    for (size_t r = 0; r < rows; r++) {
        const uint64_t *row = signs + r * SIGN_WORDS;
        int distance = 0;
        for (int w = 0; w < SIGN_WORDS; w++)
            distance += __builtin_popcountll(row[w] ^ query[w]);
        out[r] = (uint16_t)distance;
    }
}

#if defined(__x86_64__)
__attribute__((target("popcnt"))) static void hamming_rows_popcnt(const uint64_t *signs, size_t rows,
                                                                 const uint64_t *query, uint16_t *out)
{
    for (size_t r = 0; r < rows; r++) {
        const uint64_t *row = signs + r * SIGN_WORDS;
        int distance = 0;
        for (int w = 0; w < SIGN_WORDS; w++)
            distance += __builtin_popcountll(row[w] ^ query[w]);
        out[r] = (uint16_t)distance;
    }
}
#endif

static void hamming_rows(const uint64_t *signs, size_t rows, const uint64_t *query, uint16_t *out)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("popcnt")) {
        hamming_rows_popcnt(signs, rows, query, out);
        return;
    }
#endif
    hamming_rows_generic(signs, rows, query, out);
}

/* Writes the positions of the k rows whose codes are nearest query's, in
 * ascending position order (so the rescoring reads the rows front to back);
 * returns how many. Two passes over the codes (32 bytes a row, cache
 * resident): a histogram of distances gives the cut-off distance, then the
 * rows below it are taken, and rows at it until k. No heap, no scratch. */
static size_t nearest_codes(const vindex_t *index, const uint64_t *query, size_t k, uint32_t *positions)
{
    uint32_t histogram[VINDEX_SIGN_BITS + 1] = {0};
    uint16_t distances[BLOCK_ROWS];
    for (size_t first = 0; first < index->count; first += BLOCK_ROWS) {
        size_t rows = index->count - first < BLOCK_ROWS ? index->count - first : BLOCK_ROWS;
        hamming_rows(index->signs + first * SIGN_WORDS, rows, query, distances);
        for (size_t r = 0; r < rows; r++)
            histogram[distances[r]]++;
    }
    size_t below = 0;
    int cutoff = 0;
    while (cutoff < VINDEX_SIGN_BITS && below + histogram[cutoff] < k)
        below += histogram[cutoff++];
    size_t at_cutoff = k - below, taken = 0;
    for (size_t first = 0; first < index->count && taken < k; first += BLOCK_ROWS) {
        size_t rows = index->count - first < BLOCK_ROWS ? index->count - first : BLOCK_ROWS;
        hamming_rows(index->signs + first * SIGN_WORDS, rows, query, distances);
        for (size_t r = 0; r < rows; r++) {
            if (distances[r] < cutoff || (distances[r] == cutoff && at_cutoff > 0)) {
                if (distances[r] == cutoff)
                    at_cutoff--;
                positions[taken++] = (uint32_t)(first + r);
            }
        }
    }
    return taken;
}

uint32_t vindex_search(const vindex_t *index, const float *query, float min_score, vindex_accept_t accept,
                       void *argument, float *score)
{
    search_state_t state = {.best = min_score, .best_id = UINT32_MAX, .accept = accept, .argument = argument};
    if (index->count < prefilter_min_rows || index->count <= prefilter_candidates) {
        scan_blocks(index, query, search_block, &state);
    } else {
        int8_t query_codes[MAX_DIM];
        float query_scale = quantise(query, index->dim, query_codes);
        if (query_scale != 0) {
            uint64_t query_signs[SIGN_WORDS];
            sign_code(index->planes, index->dim, query_codes, query_signs);
            uint32_t positions[VINDEX_MAX_CANDIDATES];
            size_t found = nearest_codes(index, query_signs, prefilter_candidates, positions);
            enum { AHEAD = 8 }; /* rows prefetched ahead of the one being scored */
            for (size_t i = 0; i < found + AHEAD; i++) {
                if (i < found) {
                    const int8_t *row = index->codes + (size_t)positions[i] * (size_t)index->dim;
                    for (int offset = 0; offset < index->dim; offset += 64)
                        __builtin_prefetch(row + offset);
                }
                if (i >= AHEAD) {
                    size_t position = positions[i - AHEAD];
                    int32_t dot;
                    dot_rows(index->codes + position * (size_t)index->dim, 1, index->dim, query_codes, &dot);
                    consider(index, position, dot, query_scale, &state);
                }
            }
        }
    }
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
