/* strtable.c — the intrusive string-keyed hash table (see strtable.h). */
#include "sluice/util/strtable.h"

#include <stdlib.h>
#include <string.h>

#include "sluice/util/hash.h"

uint64_t strtable_hash(const char *key) { return hash_fnv1a(key, strlen(key), 0); }

strtable_link_t *strtable_find(const strtable_t *table, const char *key, uint64_t hash)
{
    if (table->slot_count == 0)
        return NULL;
    for (strtable_link_t *link = table->slots[hash & (table->slot_count - 1)]; link != NULL; link = link->next)
        if (link->hash == hash && strcmp(link->key, key) == 0)
            return link;
    return NULL;
}

/* Doubles the slots. */
static int grow(strtable_t *table)
{
    size_t count = table->slot_count ? table->slot_count * 2 : 64;
    strtable_link_t **grown = calloc(count, sizeof *grown);
    if (grown == NULL)
        return -1;
    for (size_t i = 0; i < table->slot_count; i++) {
        for (strtable_link_t *link = table->slots[i], *next; link != NULL; link = next) {
            next = link->next;
            link->next = grown[link->hash & (count - 1)];
            grown[link->hash & (count - 1)] = link;
        }
    }
    free(table->slots);
    table->slots = grown;
    table->slot_count = count;
    return 0;
}

int strtable_insert(strtable_t *table, strtable_link_t *link, const char *key, uint64_t hash)
{
    if (table->count >= table->slot_count && grow(table) != 0 && table->slot_count == 0)
        return -1;
    link->key = key;
    link->hash = hash;
    link->next = table->slots[hash & (table->slot_count - 1)];
    table->slots[hash & (table->slot_count - 1)] = link;
    table->count++;
    return 0;
}

void strtable_remove(strtable_t *table, strtable_link_t *link)
{
    for (strtable_link_t **at = &table->slots[link->hash & (table->slot_count - 1)]; *at != NULL; at = &(*at)->next) {
        if (*at == link) {
            *at = link->next;
            link->next = NULL;
            table->count--;
            return;
        }
    }
}

static strtable_link_t *first_from(const strtable_t *table, size_t slot)
{
    for (; slot < table->slot_count; slot++)
        if (table->slots[slot] != NULL)
            return table->slots[slot];
    return NULL;
}

strtable_link_t *strtable_first(const strtable_t *table) { return first_from(table, 0); }

strtable_link_t *strtable_next(const strtable_t *table, const strtable_link_t *link)
{
    return link->next != NULL ? link->next : first_from(table, (link->hash & (table->slot_count - 1)) + 1);
}

void strtable_release(strtable_t *table)
{
    free(table->slots);
    table->slots = NULL;
    table->slot_count = table->count = 0;
}
