/* fuzz_sse.c — libFuzzer target for the incremental SSE parser.
 *
 * Input: 4 bytes seed a generator that cuts the rest (the stream) into
 * pieces of 1 to 64 bytes. The stream is parsed whole and in those pieces,
 * each followed by sse_parser_finish, and the two event logs must be
 * identical: where the network cuts a stream must not change what comes out.
 * A third pass with a small max_event_bytes and a callback that stops early
 * checks only memory safety and the returned codes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/sse.h"

typedef struct sink {
    buf_t log;
    size_t events;
    size_t stop_after; /* 0 = never */
} sink_t;

static int record(void *argument, const sse_event_t *event)
{
    sink_t *sink = argument;
    if (event->name[event->name_length] != '\0' || event->data[event->data_length] != '\0')
        abort(); /* both are promised NUL-terminated */
    /* Lengths first, so the log cannot be ambiguous. */
    buf_append(&sink->log, &event->name_length, sizeof event->name_length);
    buf_append(&sink->log, event->name, event->name_length);
    buf_append(&sink->log, &event->data_length, sizeof event->data_length);
    buf_append(&sink->log, event->data, event->data_length);
    sink->events++;
    return sink->stop_after != 0 && sink->events == sink->stop_after ? 99 : 0;
}

static uint32_t next_random(uint32_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    uint32_t seed;
    memcpy(&seed, data, sizeof seed);
    uint32_t state = seed | 1u;
    const char *stream = (const char *)data + 4;
    size_t length = size - 4;

    sink_t whole = {0}, pieces = {0};
    buf_init(&whole.log);
    buf_init(&pieces.log);

    sse_parser_t parser;
    sse_parser_init(&parser, 1u << 20);
    if (sse_parser_feed(&parser, stream, length, record, &whole) != 0 ||
        sse_parser_finish(&parser, record, &whole) != 0)
        abort(); /* nothing in a small input can be too large */
    sse_parser_free(&parser);

    sse_parser_init(&parser, 1u << 20);
    for (size_t offset = 0; offset < length;) {
        size_t piece = 1 + next_random(&state) % 64;
        if (piece > length - offset)
            piece = length - offset;
        if (sse_parser_feed(&parser, stream + offset, piece, record, &pieces) != 0)
            abort();
        offset += piece;
    }
    if (sse_parser_finish(&parser, record, &pieces) != 0)
        abort();
    sse_parser_free(&parser);

    if (whole.events != pieces.events || whole.log.length != pieces.log.length ||
        (whole.log.length > 0 && memcmp(whole.log.data, pieces.log.data, whole.log.length) != 0))
        abort(); /* the cut points changed the events */

    sink_t limited = {.stop_after = 1 + seed % 4};
    buf_init(&limited.log);
    sse_parser_init(&parser, 1 + seed % 64);
    int rc = 0;
    for (size_t offset = 0; offset < length && rc == 0;) {
        size_t piece = 1 + next_random(&state) % 16;
        if (piece > length - offset)
            piece = length - offset;
        rc = sse_parser_feed(&parser, stream + offset, piece, record, &limited);
        offset += piece;
    }
    if (rc == 0)
        rc = sse_parser_finish(&parser, record, &limited);
    if (rc != 0 && rc != 99 && rc != SSE_ERROR_TOO_LARGE)
        abort();
    if (rc == 99 && limited.events != limited.stop_after)
        abort(); /* an event was delivered after the callback said stop */
    sse_parser_free(&parser);

    buf_free(&whole.log);
    buf_free(&pieces.log);
    buf_free(&limited.log);
    return 0;
}
