/* arena.h — per-request bump allocator.
 *
 * A request's small allocations (strings, header copies, route decisions) come
 * from its arena and are released together by arena_release() when the request
 * ends, so no code path has to remember to free each piece. */
#ifndef SLUICE_UTIL_ARENA_H
#define SLUICE_UTIL_ARENA_H

#include <stddef.h>

typedef struct arena_block arena_block_t;

/* Owner: embedded in the object whose lifetime it shares (e.g. request_t). */
typedef struct arena {
    arena_block_t *head;
    char inline_space[2048]; /* first allocations avoid malloc entirely */
    size_t inline_used;
} arena_t;

void arena_init(arena_t *arena);
/* Returns 8-byte aligned memory, or NULL when out of memory. */
void *arena_alloc(arena_t *arena, size_t size);
char *arena_strdup(arena_t *arena, const char *text);
char *arena_strndup(arena_t *arena, const char *text, size_t length);
char *arena_sprintf(arena_t *arena, const char *format, ...) __attribute__((format(printf, 2, 3)));
void arena_release(arena_t *arena);

#endif
