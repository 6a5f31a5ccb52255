/* strtable.h — an intrusive, string-keyed chained hash table.
 *
 * Entries embed a strtable_link_t and are found back from it with
 * STRTABLE_ENTRY. The table owns only its slots array; the entries and their
 * keys belong to the caller, who links them in, unlinks them and frees them.
 * The slots double (a power of two, from 64) once entries outnumber them.
 *
 * No locking: callers serialise as their data needs (typically a read lock
 * around find and iteration, a write lock around insert and remove). */
#ifndef SLUICE_UTIL_STRTABLE_H
#define SLUICE_UTIL_STRTABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct strtable_link {
    struct strtable_link *next;
    uint64_t hash;
    const char *key; /* the caller's; must stay put while linked */
} strtable_link_t;

typedef struct strtable {
    strtable_link_t **slots;
    size_t slot_count; /* a power of two, or 0 before the first entry */
    size_t count;
} strtable_t;

#define STRTABLE_INIT {NULL, 0, 0}
/* The entry of type that embeds link as its member. */
#define STRTABLE_ENTRY(link, type, member) ((type *)(void *)((char *)(link) - offsetof(type, member)))

/* The hash find and insert expect for key (FNV-1a). */
uint64_t strtable_hash(const char *key);
/* The link of key (whose strtable_hash is hash), or NULL. */
strtable_link_t *strtable_find(const strtable_t *table, const char *key, uint64_t hash);
/* Links link in under key and hash (key is not copied and not checked for
 * being there already). Grows first when entries outnumber slots; a failed
 * growth only lengthens the chains, so this fails (-1) only when there are
 * no slots at all yet. */
int strtable_insert(strtable_t *table, strtable_link_t *link, const char *key, uint64_t hash);
/* Unlinks link, which must be in table. */
void strtable_remove(strtable_t *table, strtable_link_t *link);
/* Iteration in slot order: first, then next until NULL. Removing the link
 * just returned is safe once next has been taken from it. */
strtable_link_t *strtable_first(const strtable_t *table);
strtable_link_t *strtable_next(const strtable_t *table, const strtable_link_t *link);
/* Frees the slots and empties the table (unlink or free the entries first). */
void strtable_release(strtable_t *table);

#endif
