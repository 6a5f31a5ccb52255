/* test_util.c — the small utilities (include/sluice/util/): the request
 * arena, the growable buffer, the crypto helpers, FNV-1a and the string
 * table. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/util/arena.h"
#include "sluice/util/buf.h"
#include "sluice/util/crypto.h"
#include "sluice/util/hash.h"
#include "sluice/util/strtable.h"
#include "leak_check.h"

TestSuite(arena, .fini = unit_leak_check);
TestSuite(buf, .fini = unit_leak_check);
TestSuite(crypto, .fini = unit_leak_check);
TestSuite(hash, .fini = unit_leak_check);
TestSuite(strtable, .fini = unit_leak_check);

/* ---- arena -------------------------------------------------------------- */

static bool is_aligned8(const void *pointer) { return ((uintptr_t)pointer & 7u) == 0; }

Test(arena, many_small_allocations_are_distinct_and_aligned)
{
    arena_t arena;
    arena_init(&arena);
    enum { COUNT = 5000 };
    unsigned char *pointers[COUNT];
    for (size_t i = 0; i < COUNT; i++) {
        size_t size = 1 + i % 37;
        pointers[i] = arena_alloc(&arena, size);
        cr_assert_not_null(pointers[i]);
        cr_assert(is_aligned8(pointers[i]), "allocation %zu of %zu bytes is not 8-byte aligned", i, size);
        memset(pointers[i], (int)(i & 0xff), size);
    }
    /* Nothing overlapped: every block still holds its own pattern. */
    for (size_t i = 0; i < COUNT; i++)
        for (size_t j = 0; j < 1 + i % 37; j++)
            cr_assert_eq(pointers[i][j], (unsigned char)(i & 0xff), "allocation %zu was overwritten", i);
    cr_assert_not_null(arena.head, "5000 allocations outgrow the inline space");
    arena_release(&arena);
}

Test(arena, zero_size_gets_a_distinct_pointer)
{
    arena_t arena;
    arena_init(&arena);
    void *a = arena_alloc(&arena, 0), *b = arena_alloc(&arena, 0);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_neq(a, b);
    arena_release(&arena);
}

Test(arena, large_allocation_beyond_block_size)
{
    arena_t arena;
    arena_init(&arena);
    char *small = arena_strdup(&arena, "before");
    size_t size = 100000; /* larger than the inline space and a standard block */
    unsigned char *large = arena_alloc(&arena, size);
    cr_assert_not_null(large);
    cr_assert(is_aligned8(large));
    memset(large, 0xab, size); /* ASan catches a block that is too small */
    cr_assert_eq(large[size - 1], 0xab);
    char *after = arena_strdup(&arena, "after");
    cr_assert_str_eq(small, "before");
    cr_assert_str_eq(after, "after");
    cr_assert(is_aligned8(after));
    arena_release(&arena);
}

Test(arena, inline_space_exactly_used)
{
    arena_t arena;
    arena_init(&arena);
    char *first = arena_alloc(&arena, sizeof arena.inline_space);
    cr_assert_eq(first, arena.inline_space);
    cr_assert_null(arena.head);
    char *next = arena_alloc(&arena, 1);
    cr_assert_not_null(arena.head, "the next byte comes from a block");
    cr_assert(next < arena.inline_space || next >= arena.inline_space + sizeof arena.inline_space);
    arena_release(&arena);
}

/* arena.h: "Returns 8-byte aligned memory, or NULL when out of memory." A size
 * no allocator can satisfy must give NULL, not a pointer to less memory. */
Test(arena, impossible_size_returns_null)
{
    arena_t arena;
    arena_init(&arena);
    cr_expect_null(arena_alloc(&arena, SIZE_MAX), "arena_alloc(SIZE_MAX) returned memory");
    cr_expect_null(arena_alloc(&arena, SIZE_MAX - 16), "arena_alloc(SIZE_MAX - 16) returned memory");
    arena_release(&arena);
}

Test(arena, strdup_strndup_sprintf)
{
    arena_t arena;
    arena_init(&arena);
    cr_expect_str_eq(arena_strdup(&arena, "hello"), "hello");
    cr_expect_str_eq(arena_strdup(&arena, ""), "");
    cr_expect_null(arena_strdup(&arena, NULL));
    cr_expect_str_eq(arena_strndup(&arena, "hello world", 5), "hello");
    cr_expect_str_eq(arena_sprintf(&arena, "%s-%d-%.2f", "req", 42, 1.5), "req-42-1.50");
    cr_expect_str_eq(arena_sprintf(&arena, "%s", ""), "");
    char long_text[5000];
    memset(long_text, 'z', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    char *copy = arena_sprintf(&arena, "<%s>", long_text);
    cr_assert_eq(strlen(copy), sizeof long_text + 1);
    cr_expect_eq(copy[0], '<');
    cr_expect_eq(copy[sizeof long_text], '>');
    arena_release(&arena);
}

Test(arena, release_and_reuse)
{
    arena_t arena;
    arena_init(&arena);
    for (int round = 0; round < 3; round++) {
        char *first = arena_strdup(&arena, "first");
        cr_assert_eq(first, arena.inline_space, "after release the inline space is used again");
        for (int i = 0; i < 100; i++)
            cr_assert_not_null(arena_alloc(&arena, 1000));
        cr_assert_not_null(arena.head);
        arena_release(&arena);
        cr_assert_null(arena.head);
        cr_assert_eq(arena.inline_used, 0);
    }
    arena_release(&arena); /* releasing an empty arena is harmless */
}

/* ---- buf ---------------------------------------------------------------- */

Test(buf, append_grows_and_stays_terminated)
{
    buf_t buffer;
    buf_init(&buffer);
    cr_assert_null(buffer.data);
    cr_assert_eq(buffer.length, 0);
    cr_assert_eq(buf_append(&buffer, "abc", 3), 0);
    cr_assert_eq(buf_append_str(&buffer, "def"), 0);
    cr_assert_eq(buf_append_char(&buffer, 'g'), 0);
    cr_assert_eq(buf_append(&buffer, "ignored", 0), 0);
    cr_assert_str_eq(buffer.data, "abcdefg");
    cr_assert_eq(buffer.length, 7);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(buf_append(&buffer, "0123456789", 10), 0);
    cr_assert_eq(buffer.length, 10007);
    cr_assert_eq(buffer.data[buffer.length], '\0');
    cr_assert_geq(buffer.capacity, buffer.length + 1);
    cr_assert_eq(memcmp(buffer.data + 10007 - 10, "0123456789", 10), 0);
    buf_free(&buffer);
    cr_assert_null(buffer.data);
    cr_assert_eq(buffer.length, 0);
}

Test(buf, binary_bytes)
{
    buf_t buffer;
    buf_init(&buffer);
    cr_assert_eq(buf_append(&buffer, "a\0b", 3), 0);
    cr_assert_eq(buffer.length, 3);
    cr_assert_eq(memcmp(buffer.data, "a\0b", 4), 0);
    buf_free(&buffer);
}

Test(buf, printf)
{
    buf_t buffer;
    buf_init(&buffer);
    cr_assert_eq(buf_printf(&buffer, "%d:%s", 42, "x"), 0);
    cr_assert_eq(buf_printf(&buffer, "|%05.1f|", 3.14159), 0);
    cr_assert_eq(buf_printf(&buffer, "%s", ""), 0);
    cr_assert_str_eq(buffer.data, "42:x|003.1|");
    cr_assert_eq(buffer.length, strlen("42:x|003.1|"));
    char long_text[1000];
    memset(long_text, 'q', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    cr_assert_eq(buf_printf(&buffer, "[%s]", long_text), 0);
    cr_assert_eq(buffer.length, strlen("42:x|003.1|") + sizeof long_text + 1);
    cr_assert_eq(buffer.data[buffer.length - 1], ']');
    cr_assert_eq(buffer.data[buffer.length], '\0');
    buf_free(&buffer);
}

Test(buf, clear_keeps_memory)
{
    buf_t buffer;
    buf_init(&buffer);
    buf_clear(&buffer); /* on an empty buffer */
    buf_append_str(&buffer, "something");
    size_t capacity = buffer.capacity;
    buf_clear(&buffer);
    cr_assert_eq(buffer.length, 0);
    cr_assert_str_eq(buffer.data, "");
    cr_assert_eq(buffer.capacity, capacity);
    buf_free(&buffer);
}

static void assert_escaped(const char *text, size_t length, const char *expected)
{
    buf_t buffer;
    buf_init(&buffer);
    cr_assert_eq(buf_append_str(&buffer, "\""), 0);
    cr_assert_eq(buf_append_json_escaped(&buffer, text, length), 0);
    cr_assert_eq(buf_append_str(&buffer, "\""), 0);
    cr_assert_str_eq(buffer.data, expected);
    cr_assert_eq(buffer.length, strlen(expected));
    buf_free(&buffer);
}

Test(buf, json_escaping)
{
    assert_escaped("plain", 5, "\"plain\"");
    assert_escaped("", 0, "\"\"");
    assert_escaped("say \"hi\"", 8, "\"say \\\"hi\\\"\"");
    assert_escaped("C:\\path", 7, "\"C:\\\\path\"");
    assert_escaped("a\nb\r\nc\td", 8, "\"a\\nb\\r\\nc\\td\"");
    assert_escaped("\x01\x1f\x08\x0c", 4, "\"\\u0001\\u001f\\u0008\\u000c\"");
    assert_escaped("nul\0byte", 8, "\"nul\\u0000byte\"");
    assert_escaped("caf\xc3\xa9 \x7f /", 9, "\"caf\xc3\xa9 \x7f /\"");
}

Test(buf, json_escaping_round_trips_through_a_parser)
{
    char all[128]; /* every ASCII byte, NUL included */
    for (int i = 0; i < 128; i++)
        all[i] = (char)i;
    buf_t buffer;
    buf_init(&buffer);
    buf_append_str(&buffer, "\"");
    cr_assert_eq(buf_append_json_escaped(&buffer, all, sizeof all), 0);
    buf_append_str(&buffer, "\"");
    for (size_t i = 0; i < buffer.length; i++)
        cr_assert_geq((unsigned char)buffer.data[i], 0x20, "raw control byte at %zu", i);
    json_error_t error;
    json_t *parsed = json_loadb(buffer.data, buffer.length, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    cr_assert_not_null(parsed, "not valid JSON: %s", error.text);
    cr_assert_eq(json_string_length(parsed), sizeof all);
    cr_assert_eq(memcmp(json_string_value(parsed), all, sizeof all), 0);
    json_decref(parsed);
    buf_free(&buffer);
}

Test(buf, consume)
{
    buf_t buffer;
    buf_init(&buffer);
    buf_append_str(&buffer, "line one\nline two\n");
    buf_consume(&buffer, 9);
    cr_assert_str_eq(buffer.data, "line two\n");
    cr_assert_eq(buffer.length, 9);
    buf_consume(&buffer, 0);
    cr_assert_str_eq(buffer.data, "line two\n");
    buf_consume(&buffer, 9);
    cr_assert_str_eq(buffer.data, "");
    cr_assert_eq(buffer.length, 0);
    buf_append_str(&buffer, "abc");
    buf_consume(&buffer, 100);
    cr_assert_eq(buffer.length, 0);
    cr_assert_str_eq(buffer.data, "");
    buf_free(&buffer);
    buf_consume(&buffer, 1); /* on a freed buffer */
    cr_assert_eq(buffer.length, 0);
}

/* ---- crypto ------------------------------------------------------------- */

Test(crypto, sha256_known_vectors)
{
    unsigned char digest[CRYPTO_SHA256_LENGTH];
    char hex[2 * CRYPTO_SHA256_LENGTH + 1];
    cr_assert_eq(crypto_sha256("abc", 3, digest), 0);
    crypto_hex_encode(digest, sizeof digest, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cr_assert_eq(crypto_sha256("", 0, digest), 0);
    crypto_hex_encode(digest, sizeof digest, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *long_vector = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    cr_assert_eq(crypto_sha256(long_vector, strlen(long_vector), digest), 0);
    crypto_hex_encode(digest, sizeof digest, hex);
    cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(crypto, hex_encode)
{
    const unsigned char bytes[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char hex[2 * sizeof bytes + 1];
    crypto_hex_encode(bytes, sizeof bytes, hex);
    cr_assert_str_eq(hex, "00017f80abff");
    crypto_hex_encode(bytes, 0, hex);
    cr_assert_str_eq(hex, "");
}

Test(crypto, hex_decode_round_trip)
{
    const char *hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    unsigned char digest[CRYPTO_SHA256_LENGTH], expected[CRYPTO_SHA256_LENGTH];
    cr_assert_eq(crypto_hex_decode_sha256(hex, digest), 0);
    crypto_sha256("abc", 3, expected);
    cr_assert_eq(memcmp(digest, expected, sizeof digest), 0);
    cr_assert_eq(crypto_hex_decode_sha256("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", digest),
                 0, "upper case is hex too");
    cr_assert_eq(memcmp(digest, expected, sizeof digest), 0);
}

Test(crypto, hex_decode_rejects_bad_input)
{
    unsigned char digest[CRYPTO_SHA256_LENGTH];
    const char *valid = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    char text[80];
    snprintf(text, sizeof text, "%.63s", valid);
    cr_expect_eq(crypto_hex_decode_sha256(text, digest), -1, "63 digits");
    snprintf(text, sizeof text, "%s0", valid);
    cr_expect_eq(crypto_hex_decode_sha256(text, digest), -1, "65 digits");
    snprintf(text, sizeof text, "%.62s", valid);
    cr_expect_eq(crypto_hex_decode_sha256(text, digest), -1, "62 digits");
    cr_expect_eq(crypto_hex_decode_sha256("", digest), -1);
    snprintf(text, sizeof text, "%.63sg", valid);
    cr_expect_eq(crypto_hex_decode_sha256(text, digest), -1, "a g at the end");
    snprintf(text, sizeof text, " %.63s", valid);
    cr_expect_eq(crypto_hex_decode_sha256(text, digest), -1, "a leading space");
    snprintf(text, sizeof text, "%s\n", valid);
    cr_expect_eq(crypto_hex_decode_sha256(text, digest), -1, "a trailing newline");
    snprintf(text, sizeof text, "0x%.62s", valid);
    cr_expect_eq(crypto_hex_decode_sha256(text, digest), -1, "a 0x prefix");
}

Test(crypto, equal)
{
    cr_expect(crypto_equal("same bytes", "same bytes", 10));
    cr_expect_not(crypto_equal("same bytes", "same bytez", 10));
    cr_expect_not(crypto_equal("Xame bytes", "same bytes", 10));
    cr_expect(crypto_equal("abc", "abd", 2), "only length bytes are compared");
    cr_expect(crypto_equal("a", "b", 0));
}

Test(crypto, random)
{
    unsigned char a[32] = {0}, b[32] = {0};
    cr_assert_eq(crypto_random(a, sizeof a), 0);
    cr_assert_eq(crypto_random(b, sizeof b), 0);
    cr_assert_neq(memcmp(a, b, sizeof a), 0);
}

/* ---- hash --------------------------------------------------------------- */

Test(hash, fnv1a_known_values)
{
    /* FNV-1a with Sluice's offset basis (1469598103934665603, see hash.c):
     * pinned, because sticky routing draws derive from these values. */
    cr_expect_eq(hash_fnv1a("", 0, 0), 1469598103934665603ull);
    cr_expect_eq(hash_fnv1a("a", 1, 0), 0x44bd8ad473cd9906ull);
    cr_expect_eq(hash_fnv1a("foobar", 6, 0), 0x88fad7c0a8ff07f2ull);
    cr_expect_eq(hash_fnv1a(NULL, 0, 0), 1469598103934665603ull, "no bytes need no data");
    cr_expect_eq(hash_fnv1a("", 0, 42), 1469598103934665603ull ^ 42, "the seed is XORed into the basis");
    cr_expect_neq(hash_fnv1a("a", 1, 1), hash_fnv1a("a", 1, 0));
    cr_expect_eq(hash_fnv1a("ab\0cd", 5, 0), hash_fnv1a("ab\0cd", 5, 0));
    cr_expect_neq(hash_fnv1a("ab\0cd", 5, 0), hash_fnv1a("ab", 2, 0), "length, not a NUL, ends the data");
    cr_expect_eq(strtable_hash("foobar"), 0x88fad7c0a8ff07f2ull);
}

/* ---- strtable ----------------------------------------------------------- */

typedef struct item {
    int value;
    strtable_link_t link;
    char name[16];
} item_t;

static item_t *item_of(strtable_link_t *link) { return link ? STRTABLE_ENTRY(link, item_t, link) : NULL; }

static item_t *lookup(const strtable_t *table, const char *name)
{
    return item_of(strtable_find(table, name, strtable_hash(name)));
}

static void add(strtable_t *table, item_t *item, int value)
{
    item->value = value;
    snprintf(item->name, sizeof item->name, "item-%d", value);
    cr_assert_eq(strtable_insert(table, &item->link, item->name, strtable_hash(item->name)), 0);
}

Test(strtable, empty_table_finds_nothing)
{
    strtable_t table = STRTABLE_INIT;
    cr_expect_null(strtable_find(&table, "x", strtable_hash("x")));
    cr_expect_null(strtable_first(&table));
    cr_expect_eq(table.count, 0);
    strtable_release(&table);
}

Test(strtable, insert_find_remove)
{
    strtable_t table = STRTABLE_INIT;
    item_t a, b;
    add(&table, &a, 1);
    add(&table, &b, 2);
    cr_expect_eq(table.count, 2);
    cr_expect_eq(table.slot_count, 64, "the first insert makes 64 slots");
    cr_expect_eq(lookup(&table, "item-1"), &a);
    cr_expect_eq(lookup(&table, "item-2"), &b);
    cr_expect_null(lookup(&table, "item-3"));
    cr_expect_null(lookup(&table, "item-"), "a prefix is not the key");
    cr_expect_null(strtable_find(&table, "item-1", strtable_hash("item-1") ^ 1), "the hash must match as well");
    strtable_remove(&table, &a.link);
    cr_expect_eq(table.count, 1);
    cr_expect_null(lookup(&table, "item-1"));
    cr_expect_eq(lookup(&table, "item-2"), &b);
    strtable_remove(&table, &b.link);
    cr_expect_eq(table.count, 0);
    cr_expect_null(strtable_first(&table));
    strtable_release(&table);
    cr_expect_null(table.slots);
    cr_expect_eq(table.slot_count, 0);
}

Test(strtable, colliding_hashes_chain)
{
    /* Equal hashes land in one chain; the keys still tell them apart. */
    strtable_t table = STRTABLE_INIT;
    item_t a = {.value = 1, .name = "alpha"}, b = {.value = 2, .name = "beta"}, c = {.value = 3, .name = "gamma"};
    cr_assert_eq(strtable_insert(&table, &a.link, a.name, 7), 0);
    cr_assert_eq(strtable_insert(&table, &b.link, b.name, 7), 0);
    cr_assert_eq(strtable_insert(&table, &c.link, c.name, 7 + 64), 0); /* same slot, other hash */
    cr_expect_eq(item_of(strtable_find(&table, "alpha", 7)), &a);
    cr_expect_eq(item_of(strtable_find(&table, "beta", 7)), &b);
    cr_expect_eq(item_of(strtable_find(&table, "gamma", 7 + 64)), &c);
    cr_expect_null(strtable_find(&table, "gamma", 7));
    strtable_remove(&table, &b.link); /* the middle of the chain */
    cr_expect_eq(item_of(strtable_find(&table, "alpha", 7)), &a);
    cr_expect_null(strtable_find(&table, "beta", 7));
    cr_expect_eq(item_of(strtable_find(&table, "gamma", 7 + 64)), &c);
    cr_expect_eq(table.count, 2);
    strtable_release(&table);
}

Test(strtable, grows_by_doubling_and_keeps_every_entry)
{
    enum { COUNT = 1000 };
    strtable_t table = STRTABLE_INIT;
    item_t *items = calloc(COUNT, sizeof *items);
    cr_assert_not_null(items);
    for (int i = 0; i < COUNT; i++) {
        add(&table, &items[i], i);
        /* Slots double once entries outnumber them: never fewer than entries - 1. */
        cr_assert_geq(table.slot_count + 1, table.count);
        cr_assert_eq(table.slot_count & (table.slot_count - 1), 0, "%zu slots is not a power of two", table.slot_count);
    }
    cr_expect_eq(table.count, COUNT);
    cr_expect_eq(table.slot_count, 1024);
    for (int i = 0; i < COUNT; i++) {
        char name[16];
        snprintf(name, sizeof name, "item-%d", i);
        cr_assert_eq(lookup(&table, name), &items[i], "%s lost in growth", name);
    }
    strtable_release(&table);
    free(items);
}

Test(strtable, iterates_every_entry_once_and_allows_removal)
{
    enum { COUNT = 300 };
    strtable_t table = STRTABLE_INIT;
    item_t *items = calloc(COUNT, sizeof *items);
    cr_assert_not_null(items);
    for (int i = 0; i < COUNT; i++)
        add(&table, &items[i], i);
    int seen[COUNT] = {0};
    size_t visited = 0;
    for (strtable_link_t *link = strtable_first(&table); link != NULL; link = strtable_next(&table, link)) {
        seen[item_of(link)->value]++;
        visited++;
    }
    cr_expect_eq(visited, COUNT);
    for (int i = 0; i < COUNT; i++)
        cr_expect_eq(seen[i], 1, "item %d seen %d times", i, seen[i]);
    /* Remove the odd ones while iterating, taking next first. */
    for (strtable_link_t *link = strtable_first(&table), *next; link != NULL; link = next) {
        next = strtable_next(&table, link);
        if (item_of(link)->value % 2 == 1)
            strtable_remove(&table, link);
    }
    cr_expect_eq(table.count, COUNT / 2);
    visited = 0;
    for (strtable_link_t *link = strtable_first(&table); link != NULL; link = strtable_next(&table, link)) {
        cr_expect_eq(item_of(link)->value % 2, 0);
        visited++;
    }
    cr_expect_eq(visited, COUNT / 2);
    for (int i = 0; i < COUNT; i++)
        cr_expect_eq(lookup(&table, items[i].name) != NULL, i % 2 == 0, "item %d", i);
    strtable_release(&table);
    free(items);
}
