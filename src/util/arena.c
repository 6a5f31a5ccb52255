/* arena.c — bump allocator for request-scoped memory (see arena.h). */
#include "sluice/util/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_block {
    arena_block_t *next;
    size_t capacity;
    size_t used;
    _Alignas(16) char data[];
};

enum { ARENA_BLOCK_SIZE = 8192 };

static size_t align8(size_t size) { return (size + 7u) & ~(size_t)7u; }

void arena_init(arena_t *arena)
{
    arena->head = NULL;
    arena->inline_used = 0;
}

void *arena_alloc(arena_t *arena, size_t size)
{
    /* Refuse sizes whose rounding or block header would wrap around. */
    if (size > SIZE_MAX - sizeof(arena_block_t) - 16)
        return NULL;
    size = align8(size ? size : 1);
    if (arena->inline_used + size <= sizeof arena->inline_space) {
        void *memory = arena->inline_space + arena->inline_used;
        arena->inline_used += size;
        return memory;
    }
    arena_block_t *block = arena->head;
    if (block == NULL || block->used + size > block->capacity) {
        size_t capacity = size > ARENA_BLOCK_SIZE ? size : ARENA_BLOCK_SIZE;
        block = malloc(sizeof *block + capacity);
        if (block == NULL)
            return NULL;
        block->capacity = capacity;
        block->used = 0;
        block->next = arena->head;
        arena->head = block;
    }
    void *memory = block->data + block->used;
    block->used += size;
    return memory;
}

char *arena_strndup(arena_t *arena, const char *text, size_t length)
{
    char *copy = arena_alloc(arena, length + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, text, length);
    copy[length] = '\0';
    return copy;
}

char *arena_strdup(arena_t *arena, const char *text)
{
    return text ? arena_strndup(arena, text, strlen(text)) : NULL;
}

char *arena_sprintf(arena_t *arena, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    int length = vsnprintf(NULL, 0, format, args);
    va_end(args);
    if (length < 0)
        return NULL;
    char *text = arena_alloc(arena, (size_t)length + 1);
    if (text == NULL)
        return NULL;
    va_start(args, format);
    vsnprintf(text, (size_t)length + 1, format, args);
    va_end(args);
    return text;
}

void arena_release(arena_t *arena)
{
    arena_block_t *block = arena->head;
    while (block != NULL) {
        arena_block_t *next = block->next;
        free(block);
        block = next;
    }
    arena->head = NULL;
    arena->inline_used = 0;
}
