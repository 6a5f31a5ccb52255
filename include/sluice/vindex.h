/* vindex.h — an in-process vector index for one partition.
 *
 * Vectors (unit length) are quantised to int8 with a per-vector scale and
 * kept contiguously, row after row, with a 256-bit SimHash code per row in a
 * second contiguous array. Below VINDEX_PREFILTER_MIN_ROWS rows a search is
 * an exact int8 scan (AVX2 multiply-adds; int8 rounding costs about 0.005 in
 * cosine). From there on it popcounts the query's code against every row's
 * (32 bytes a row), keeps the VINDEX_PREFILTER_CANDIDATES nearest and
 * rescores those exactly: approximate (recall@1 measured in
 * bench/cache-bench.c), but a returned score is always the exact int8 score,
 * so the minimum score is never loosened. Rows are addressed by position; removal
 * moves the last row into the hole and says whose row moved, so the owner can
 * keep its id → position map in step. Not thread-safe: the cache store
 * serialises writers and lets readers share. */
#ifndef SLUICE_VINDEX_H
#define SLUICE_VINDEX_H

#include <stddef.h>
#include <stdint.h>

/* Owner: whoever created it (a cache store partition); vindex_free. */
typedef struct vindex vindex_t;

enum {
    VINDEX_SIGN_BITS = 256,
    VINDEX_PREFILTER_MIN_ROWS = 8192,
    VINDEX_PREFILTER_CANDIDATES = 1024,
    VINDEX_MAX_CANDIDATES = 4096,
};

/* Process-wide tuning (benchmarks and tests; call before any search):
 * partitions with fewer than min_rows rows are scanned exactly; larger ones
 * rescore the `candidates` nearest codes (at most VINDEX_MAX_CANDIDATES). */
void vindex_set_prefilter(size_t min_rows, size_t candidates);

/* Bytes one row costs: int8 code, sign code, scale and id. */
size_t vindex_row_bytes(int dim);

vindex_t *vindex_new(int dim);
void vindex_free(vindex_t *index);
int vindex_dim(const vindex_t *index);
size_t vindex_count(const vindex_t *index);
size_t vindex_bytes(const vindex_t *index);

/* Appends a row for id; returns its position, or -1 when out of memory. */
long vindex_add(vindex_t *index, uint32_t id, const float *vector);
/* Removes the row at position; returns the id of the row that moved into
 * position, or UINT32_MAX when none moved (it was the last). */
uint32_t vindex_remove_at(vindex_t *index, size_t position);
uint32_t vindex_id_at(const vindex_t *index, size_t position);

/* Called for a row whose score beats the best so far and min_score; returns
 * nonzero to accept it as the new best (e.g. it has not expired). */
typedef int (*vindex_accept_t)(void *argument, uint32_t id);

/* The best row with score >= min_score: returns its id and sets *score, or
 * returns UINT32_MAX when none. accept may be NULL. */
uint32_t vindex_search(const vindex_t *index, const float *query, float min_score, vindex_accept_t accept,
                       void *argument, float *score);

/* Calls visit for every row scoring >= min_score (for invalidation). */
typedef void (*vindex_visit_t)(void *argument, uint32_t id, float score);
void vindex_scan(const vindex_t *index, const float *query, float min_score, vindex_visit_t visit, void *argument);

#endif
