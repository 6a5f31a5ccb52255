/* vindex.h — an in-process vector index: exact int8 scan of one partition.
 *
 * Vectors (unit length) are quantised to int8 with a per-vector scale and
 * kept contiguously, row after row, so a search is one linear pass the
 * compiler turns into SIMD multiply-adds (AVX2 where the CPU has it). The
 * scan is exact over the quantised vectors: no recall loss beyond int8
 * rounding (about 0.005 in cosine). Rows are addressed by position; removal
 * moves the last row into the hole and says whose row moved, so the owner can
 * keep its id → position map in step. Not thread-safe: the cache store
 * serialises writers and lets readers share. */
#ifndef SLUICE_VINDEX_H
#define SLUICE_VINDEX_H

#include <stddef.h>
#include <stdint.h>

/* Owner: whoever created it (a cache store partition); vindex_free. */
typedef struct vindex vindex_t;

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
