/* cache_store.c — entries, exact map, vector partitions, TTL and LRU (see
 * cache_store.h).
 *
 * Entries live in one slot array; a slot's index is its handle everywhere
 * (the vector index stores slot numbers). The exact map and the partition
 * map are chained hash tables whose links live in the items, so removing is
 * unlinking and nothing else allocates. Eviction picks the least recently
 * used entry with a scan of the slots' stamps: at 100k entries that is tens
 * of microseconds, paid only by the admission that exceeded a bound. */
#include "sluice/cache_store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/vindex.h"

#define NONE UINT32_MAX

enum { SWEEP_INTERVAL_MS = 1000, ENTRY_OVERHEAD = 160 };

/* Owner: cache_store_t.entries. */
typedef struct entry {
    bool is_used;
    unsigned char key[CACHE_KEY_LENGTH];
    char id[CACHE_ID_LENGTH + 1];
    uint64_t partition;
    uint32_t partition_slot; /* NONE: no vector */
    size_t vector_position;
    char *model;
    char *scope;
    uint64_t created_ms;
    uint64_t exact_expires_ms;
    uint64_t semantic_expires_ms;
    atomic_uint_least64_t last_used_ms;
    char *answer;
    size_t answer_length;
    size_t bytes;
    uint32_t next; /* exact map chain, or the free list */
} entry_t;

/* Owner: cache_store_t.partitions. */
typedef struct partition {
    bool is_used;
    uint64_t key;
    vindex_t *index;
    uint32_t next; /* partition map chain, or the free list */
} partition_t;

struct cache_store {
    pthread_rwlock_t lock;
    entry_t *entries;
    size_t entry_capacity;
    size_t entry_count;
    uint32_t entry_free;
    uint32_t *buckets; /* exact map */
    size_t bucket_count;
    partition_t *partitions;
    size_t partition_capacity;
    size_t partition_count;
    uint32_t partition_free;
    uint32_t *partition_buckets;
    size_t partition_bucket_count;
    size_t bytes;
    size_t vectors;
    size_t max_entries;
    size_t max_bytes;
    uint64_t next_sweep_ms;
    uint64_t evictions;
    uint64_t expirations;
};

static uint64_t key_hash(const unsigned char *key)
{
    uint64_t hash;
    memcpy(&hash, key, sizeof hash);
    return hash;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

void cache_store_id_from_key(const unsigned char key[CACHE_KEY_LENGTH], char id[CACHE_ID_LENGTH + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < CACHE_ID_LENGTH / 2; i++) {
        id[2 * i] = hex[key[i] >> 4];
        id[2 * i + 1] = hex[key[i] & 15];
    }
    id[CACHE_ID_LENGTH] = '\0';
}

cache_store_t *cache_store_new(size_t max_entries, size_t max_bytes)
{
    cache_store_t *store = calloc(1, sizeof *store);
    if (store == NULL)
        return NULL;
    if (pthread_rwlock_init(&store->lock, NULL) != 0) {
        free(store);
        return NULL;
    }
    store->entry_free = NONE;
    store->partition_free = NONE;
    store->max_entries = max_entries;
    store->max_bytes = max_bytes;
    store->bucket_count = 1024;
    store->partition_bucket_count = 256;
    store->buckets = malloc(store->bucket_count * sizeof *store->buckets);
    store->partition_buckets = malloc(store->partition_bucket_count * sizeof *store->partition_buckets);
    if (store->buckets == NULL || store->partition_buckets == NULL) {
        cache_store_free(store);
        return NULL;
    }
    memset(store->buckets, 0xff, store->bucket_count * sizeof *store->buckets);
    memset(store->partition_buckets, 0xff, store->partition_bucket_count * sizeof *store->partition_buckets);
    return store;
}

void cache_store_free(cache_store_t *store)
{
    if (store == NULL)
        return;
    for (size_t i = 0; i < store->entry_capacity; i++) {
        free(store->entries[i].model);
        free(store->entries[i].scope);
        free(store->entries[i].answer);
    }
    for (size_t i = 0; i < store->partition_capacity; i++)
        vindex_free(store->partitions[i].index);
    free(store->entries);
    free(store->partitions);
    free(store->buckets);
    free(store->partition_buckets);
    pthread_rwlock_destroy(&store->lock);
    free(store);
}

void cache_store_set_limits(cache_store_t *store, size_t max_entries, size_t max_bytes)
{
    pthread_rwlock_wrlock(&store->lock);
    store->max_entries = max_entries;
    store->max_bytes = max_bytes;
    pthread_rwlock_unlock(&store->lock);
}

/* ---- the exact map --------------------------------------------------------- */

static uint32_t *bucket_for(cache_store_t *store, const unsigned char *key)
{
    return &store->buckets[mix(key_hash(key)) & (store->bucket_count - 1)];
}

static uint32_t find_slot(const cache_store_t *store, const unsigned char *key, size_t compare_length)
{
    uint32_t slot = store->buckets[mix(key_hash(key)) & (store->bucket_count - 1)];
    while (slot != NONE && memcmp(store->entries[slot].key, key, compare_length) != 0)
        slot = store->entries[slot].next;
    return slot;
}

static void unlink_slot(cache_store_t *store, uint32_t slot)
{
    uint32_t *link = bucket_for(store, store->entries[slot].key);
    while (*link != NONE && *link != slot)
        link = &store->entries[*link].next;
    if (*link == slot)
        *link = store->entries[slot].next;
}

static int grow_buckets(cache_store_t *store)
{
    size_t count = store->bucket_count * 2;
    uint32_t *buckets = malloc(count * sizeof *buckets);
    if (buckets == NULL)
        return -1;
    memset(buckets, 0xff, count * sizeof *buckets);
    free(store->buckets);
    store->buckets = buckets;
    store->bucket_count = count;
    for (uint32_t slot = 0; slot < store->entry_capacity; slot++) {
        entry_t *entry = &store->entries[slot];
        if (!entry->is_used)
            continue;
        uint32_t *bucket = bucket_for(store, entry->key);
        entry->next = *bucket;
        *bucket = slot;
    }
    return 0;
}

/* ---- partitions ------------------------------------------------------------ */

static uint32_t *partition_bucket_for(cache_store_t *store, uint64_t key)
{
    return &store->partition_buckets[mix(key) & (store->partition_bucket_count - 1)];
}

static uint32_t find_partition(const cache_store_t *store, uint64_t key)
{
    uint32_t slot = store->partition_buckets[mix(key) & (store->partition_bucket_count - 1)];
    while (slot != NONE && store->partitions[slot].key != key)
        slot = store->partitions[slot].next;
    return slot;
}

static int grow_partition_buckets(cache_store_t *store)
{
    size_t count = store->partition_bucket_count * 2;
    uint32_t *buckets = malloc(count * sizeof *buckets);
    if (buckets == NULL)
        return -1;
    memset(buckets, 0xff, count * sizeof *buckets);
    free(store->partition_buckets);
    store->partition_buckets = buckets;
    store->partition_bucket_count = count;
    for (uint32_t slot = 0; slot < store->partition_capacity; slot++) {
        partition_t *partition = &store->partitions[slot];
        if (!partition->is_used)
            continue;
        uint32_t *bucket = partition_bucket_for(store, partition->key);
        partition->next = *bucket;
        *bucket = slot;
    }
    return 0;
}

static uint32_t add_partition(cache_store_t *store, uint64_t key, int dim)
{
    if (store->partition_count >= store->partition_bucket_count && grow_partition_buckets(store) != 0)
        return NONE;
    if (store->partition_free == NONE) {
        size_t capacity = store->partition_capacity ? store->partition_capacity * 2 : 16;
        partition_t *grown = realloc(store->partitions, capacity * sizeof *grown);
        if (grown == NULL)
            return NONE;
        memset(grown + store->partition_capacity, 0, (capacity - store->partition_capacity) * sizeof *grown);
        for (size_t i = capacity; i-- > store->partition_capacity;) {
            grown[i].next = store->partition_free;
            store->partition_free = (uint32_t)i;
        }
        store->partitions = grown;
        store->partition_capacity = capacity;
    }
    vindex_t *index = vindex_new(dim);
    if (index == NULL)
        return NONE;
    uint32_t slot = store->partition_free;
    partition_t *partition = &store->partitions[slot];
    store->partition_free = partition->next;
    partition->is_used = true;
    partition->key = key;
    partition->index = index;
    uint32_t *bucket = partition_bucket_for(store, key);
    partition->next = *bucket;
    *bucket = slot;
    store->partition_count++;
    return slot;
}

static void drop_partition(cache_store_t *store, uint32_t slot)
{
    partition_t *partition = &store->partitions[slot];
    uint32_t *link = partition_bucket_for(store, partition->key);
    while (*link != NONE && *link != slot)
        link = &store->partitions[*link].next;
    if (*link == slot)
        *link = partition->next;
    vindex_free(partition->index);
    partition->index = NULL;
    partition->is_used = false;
    partition->next = store->partition_free;
    store->partition_free = slot;
    store->partition_count--;
}

/* ---- entries --------------------------------------------------------------- */

static void remove_slot(cache_store_t *store, uint32_t slot)
{
    entry_t *entry = &store->entries[slot];
    unlink_slot(store, slot);
    if (entry->partition_slot != NONE) {
        partition_t *partition = &store->partitions[entry->partition_slot];
        uint32_t moved = vindex_remove_at(partition->index, entry->vector_position);
        if (moved != NONE)
            store->entries[moved].vector_position = entry->vector_position;
        store->bytes -= vindex_row_bytes(vindex_dim(partition->index));
        store->vectors--;
        if (vindex_count(partition->index) == 0)
            drop_partition(store, entry->partition_slot);
    }
    store->bytes -= entry->bytes;
    free(entry->model);
    free(entry->scope);
    free(entry->answer);
    memset(entry, 0, sizeof *entry);
    entry->next = store->entry_free;
    store->entry_free = slot;
    store->entry_count--;
}

static uint32_t take_slot(cache_store_t *store)
{
    if (store->entry_count >= store->bucket_count && grow_buckets(store) != 0)
        return NONE;
    if (store->entry_free == NONE) {
        size_t capacity = store->entry_capacity ? store->entry_capacity * 2 : 64;
        entry_t *grown = realloc(store->entries, capacity * sizeof *grown);
        if (grown == NULL)
            return NONE;
        memset(grown + store->entry_capacity, 0, (capacity - store->entry_capacity) * sizeof *grown);
        for (size_t i = capacity; i-- > store->entry_capacity;) {
            grown[i].next = store->entry_free;
            store->entry_free = (uint32_t)i;
        }
        store->entries = grown;
        store->entry_capacity = capacity;
    }
    uint32_t slot = store->entry_free;
    store->entry_free = store->entries[slot].next;
    return slot;
}

static bool is_expired(const entry_t *entry, uint64_t now_ms)
{
    return entry->exact_expires_ms <= now_ms && entry->semantic_expires_ms <= now_ms;
}

static void sweep(cache_store_t *store, uint64_t now_ms)
{
    if (now_ms < store->next_sweep_ms)
        return;
    store->next_sweep_ms = now_ms + SWEEP_INTERVAL_MS;
    for (uint32_t slot = 0; slot < store->entry_capacity; slot++) {
        if (store->entries[slot].is_used && is_expired(&store->entries[slot], now_ms)) {
            remove_slot(store, slot);
            store->expirations++;
        }
    }
}

static void evict(cache_store_t *store, uint32_t keep)
{
    while (store->entry_count > 1 &&
           ((store->max_entries && store->entry_count > store->max_entries) ||
            (store->max_bytes && store->bytes > store->max_bytes))) {
        uint32_t oldest = NONE;
        uint64_t oldest_ms = UINT64_MAX;
        for (uint32_t slot = 0; slot < store->entry_capacity; slot++) {
            const entry_t *entry = &store->entries[slot];
            if (!entry->is_used || slot == keep)
                continue;
            uint64_t used = atomic_load_explicit(&entry->last_used_ms, memory_order_relaxed);
            if (used < oldest_ms) {
                oldest_ms = used;
                oldest = slot;
            }
        }
        if (oldest == NONE)
            return;
        remove_slot(store, oldest);
        store->evictions++;
    }
}

static int fill_entry(cache_store_t *store, uint32_t slot, const cache_record_t *record, uint64_t now_ms)
{
    entry_t *entry = &store->entries[slot];
    memset(entry, 0, sizeof *entry);
    entry->partition_slot = NONE;
    memcpy(entry->key, record->key, CACHE_KEY_LENGTH);
    cache_store_id_from_key(record->key, entry->id);
    entry->model = strdup(record->model ? record->model : "");
    entry->scope = strdup(record->scope ? record->scope : "");
    entry->answer = malloc(record->answer_length + 1);
    if (entry->model == NULL || entry->scope == NULL || entry->answer == NULL) {
        free(entry->model);
        free(entry->scope);
        free(entry->answer);
        return -1;
    }
    memcpy(entry->answer, record->answer, record->answer_length);
    entry->answer[record->answer_length] = '\0';
    entry->answer_length = record->answer_length;
    entry->created_ms = record->created_ms;
    entry->exact_expires_ms = record->exact_expires_ms;
    entry->semantic_expires_ms = record->vector ? record->semantic_expires_ms : 0;
    atomic_store_explicit(&entry->last_used_ms, now_ms, memory_order_relaxed);
    entry->bytes = ENTRY_OVERHEAD + record->answer_length + strlen(entry->model) + strlen(entry->scope);
    entry->is_used = true;
    return 0;
}

int cache_store_put(cache_store_t *store, const cache_record_t *record, uint64_t now_ms)
{
    if (record->vector != NULL && (record->dim <= 0 || record->dim % 32 != 0))
        return -1;
    pthread_rwlock_wrlock(&store->lock);
    uint32_t old = find_slot(store, record->key, CACHE_KEY_LENGTH);
    if (old != NONE)
        remove_slot(store, old);
    uint32_t slot = take_slot(store);
    int rc = -1;
    if (slot != NONE && fill_entry(store, slot, record, now_ms) == 0) {
        entry_t *entry = &store->entries[slot];
        uint32_t *bucket = bucket_for(store, entry->key);
        entry->next = *bucket;
        *bucket = slot;
        store->entry_count++;
        store->bytes += entry->bytes;
        rc = 0;
        if (record->vector != NULL) {
            uint32_t part = find_partition(store, record->partition);
            if (part == NONE)
                part = add_partition(store, record->partition, record->dim);
            long position = -1;
            if (part != NONE && vindex_dim(store->partitions[part].index) == record->dim)
                position = vindex_add(store->partitions[part].index, slot, record->vector);
            if (position >= 0) {
                entry->partition = record->partition;
                entry->partition_slot = part;
                entry->vector_position = (size_t)position;
                store->bytes += vindex_row_bytes(record->dim);
                store->vectors++;
            } else {
                if (part != NONE && vindex_count(store->partitions[part].index) == 0)
                    drop_partition(store, part);
                remove_slot(store, slot);
                rc = -1;
            }
        }
        if (rc == 0) {
            sweep(store, now_ms);
            evict(store, slot);
        }
    } else if (slot != NONE) {
        store->entries[slot].is_used = false;
        store->entries[slot].next = store->entry_free;
        store->entry_free = slot;
    }
    pthread_rwlock_unlock(&store->lock);
    return rc;
}

static int copy_found(const entry_t *entry, arena_t *arena, float similarity, cache_found_t *found)
{
    char *answer = arena_strndup(arena, entry->answer, entry->answer_length);
    if (answer == NULL)
        return -1;
    memcpy(found->id, entry->id, sizeof found->id);
    found->answer = answer;
    found->answer_length = entry->answer_length;
    found->similarity = similarity;
    return 1;
}

int cache_store_get_exact(cache_store_t *store, const unsigned char key[CACHE_KEY_LENGTH], uint64_t now_ms,
                          arena_t *arena, cache_found_t *found)
{
    pthread_rwlock_rdlock(&store->lock);
    int rc = 0;
    uint32_t slot = find_slot(store, key, CACHE_KEY_LENGTH);
    if (slot != NONE && store->entries[slot].exact_expires_ms > now_ms) {
        entry_t *entry = &store->entries[slot];
        atomic_store_explicit(&entry->last_used_ms, now_ms, memory_order_relaxed);
        rc = copy_found(entry, arena, 1.0f, found);
    }
    pthread_rwlock_unlock(&store->lock);
    return rc;
}

typedef struct accept_state {
    const cache_store_t *store;
    uint64_t now_ms;
} accept_state_t;

static int accept_unexpired(void *argument, uint32_t slot)
{
    const accept_state_t *state = argument;
    return state->store->entries[slot].semantic_expires_ms > state->now_ms;
}

int cache_store_search(cache_store_t *store, uint64_t partition, const float *vector, int dim, float threshold,
                       uint64_t now_ms, arena_t *arena, cache_found_t *found)
{
    pthread_rwlock_rdlock(&store->lock);
    int rc = 0;
    uint32_t part = find_partition(store, partition);
    if (part != NONE && vindex_dim(store->partitions[part].index) == dim) {
        accept_state_t state = {store, now_ms};
        float score = 0;
        uint32_t slot = vindex_search(store->partitions[part].index, vector, threshold, accept_unexpired, &state,
                                      &score);
        if (slot != NONE) {
            entry_t *entry = &store->entries[slot];
            atomic_store_explicit(&entry->last_used_ms, now_ms, memory_order_relaxed);
            rc = copy_found(entry, arena, score, found);
        }
    }
    pthread_rwlock_unlock(&store->lock);
    return rc;
}

/* ---- invalidation and stats ------------------------------------------------ */

typedef struct mark_state {
    bool *marks;
} mark_state_t;

static void mark_close(void *argument, uint32_t slot, float score)
{
    (void)score;
    mark_state_t *state = argument;
    state->marks[slot] = true;
}

static bool matches(const entry_t *entry, const cache_match_t *match)
{
    if (match->id != NULL && strcmp(entry->id, match->id) != 0)
        return false;
    if (match->model != NULL && strcmp(entry->model, match->model) != 0)
        return false;
    if (match->scope != NULL && strcmp(entry->scope, match->scope) != 0)
        return false;
    return true;
}

size_t cache_store_remove(cache_store_t *store, const cache_match_t *match, cache_removed_t removed, void *argument)
{
    pthread_rwlock_wrlock(&store->lock);
    bool *close = NULL;
    size_t count = 0;
    if (match->vector != NULL) {
        close = calloc(store->entry_capacity ? store->entry_capacity : 1, sizeof *close);
        if (close == NULL) {
            pthread_rwlock_unlock(&store->lock);
            return 0;
        }
        mark_state_t state = {close};
        for (size_t i = 0; i < store->partition_capacity; i++)
            if (store->partitions[i].is_used && vindex_dim(store->partitions[i].index) == match->dim)
                vindex_scan(store->partitions[i].index, match->vector, match->threshold, mark_close, &state);
    }
    for (uint32_t slot = 0; slot < store->entry_capacity; slot++) {
        const entry_t *entry = &store->entries[slot];
        if (!entry->is_used || !matches(entry, match) || (close != NULL && !close[slot]))
            continue;
        if (removed != NULL)
            removed(argument, entry->id);
        remove_slot(store, slot);
        count++;
    }
    free(close);
    pthread_rwlock_unlock(&store->lock);
    return count;
}

void cache_store_stats(cache_store_t *store, cache_stats_t *stats)
{
    pthread_rwlock_rdlock(&store->lock);
    *stats = (cache_stats_t){.entries = store->entry_count,
                             .vectors = store->vectors,
                             .partitions = store->partition_count,
                             .bytes = store->bytes,
                             .evictions = store->evictions,
                             .expirations = store->expirations,
                             .max_entries = store->max_entries,
                             .max_bytes = store->max_bytes};
    pthread_rwlock_unlock(&store->lock);
}

/* ---- the shared store ------------------------------------------------------ */

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static cache_store_t *shared_store;
static int shared_users;

cache_store_t *cache_store_shared_acquire(void)
{
    pthread_mutex_lock(&shared_lock);
    if (shared_store == NULL)
        shared_store = cache_store_new(100000, 256u << 20);
    if (shared_store != NULL)
        shared_users++;
    cache_store_t *store = shared_store;
    pthread_mutex_unlock(&shared_lock);
    return store;
}

void cache_store_shared_release(void)
{
    pthread_mutex_lock(&shared_lock);
    if (shared_users > 0 && --shared_users == 0) {
        cache_store_free(shared_store);
        shared_store = NULL;
    }
    pthread_mutex_unlock(&shared_lock);
}
