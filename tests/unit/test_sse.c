/* test_sse.c — the incremental SSE parser (include/sluice/sse.h).
 *
 * Upstream bytes arrive cut anywhere, so the central test feeds the same
 * stream cut at every offset (and byte by byte) and demands the events come
 * out identical to feeding it whole. The recorded provider streams in
 * fixtures/ check the parser against real output. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/sse.h"
#include "leak_check.h"

enum { MAX_EVENTS = 64, NO_LIMIT = 1 << 20 };

TestSuite(sse, .fini = unit_leak_check);

typedef struct collected_event {
    char *name;
    char *data;
    size_t data_length;
} collected_event_t;

/* Records every event the parser hands over; optionally stops after one. */
typedef struct collector {
    collected_event_t events[MAX_EVENTS];
    size_t count;
    size_t stop_after; /* 0 = never */
    int stop_code;
} collector_t;

static int collect(void *argument, const sse_event_t *event)
{
    collector_t *collector = argument;
    cr_assert_lt(collector->count, MAX_EVENTS, "too many events");
    cr_assert_not_null(event->name);
    cr_assert_not_null(event->data);
    cr_assert_eq(event->name[event->name_length], '\0', "the name is NUL-terminated");
    cr_assert_eq(event->data[event->data_length], '\0', "the data is NUL-terminated");
    collected_event_t *copy = &collector->events[collector->count++];
    copy->name = strndup(event->name, event->name_length);
    copy->data = malloc(event->data_length + 1);
    memcpy(copy->data, event->data, event->data_length + 1);
    copy->data_length = event->data_length;
    if (collector->stop_after != 0 && collector->count == collector->stop_after)
        return collector->stop_code;
    return 0;
}

static void collector_free(collector_t *collector)
{
    for (size_t i = 0; i < collector->count; i++) {
        free(collector->events[i].name);
        free(collector->events[i].data);
    }
    collector->count = 0;
}

/* Feeds stream to a fresh parser cut at the offsets in cuts (ascending), then
 * finishes it; every call must return 0. */
static void parse_cut(const char *stream, size_t length, const size_t *cuts, size_t cut_count, collector_t *out)
{
    sse_parser_t parser;
    sse_parser_init(&parser, NO_LIMIT);
    size_t start = 0;
    for (size_t i = 0; i <= cut_count; i++) {
        size_t end = i < cut_count ? cuts[i] : length;
        int rc = sse_parser_feed(&parser, stream + start, end - start, collect, out);
        cr_assert_eq(rc, 0, "feed of bytes [%zu, %zu) returned %d", start, end, rc);
        start = end;
    }
    cr_assert_eq(sse_parser_finish(&parser, collect, out), 0);
    sse_parser_free(&parser);
}

static void parse_whole(const char *stream, size_t length, collector_t *out) { parse_cut(stream, length, NULL, 0, out); }

static void parse_byte_by_byte(const char *stream, size_t length, collector_t *out)
{
    size_t *cuts = malloc((length + 1) * sizeof *cuts);
    for (size_t i = 0; i < length; i++)
        cuts[i] = i + 1;
    parse_cut(stream, length, cuts, length > 0 ? length - 1 : 0, out);
    free(cuts);
}

static void assert_same_events(const collector_t *actual, const collector_t *expected, const char *how)
{
    cr_assert_eq(actual->count, expected->count, "%s: %zu events instead of %zu", how, actual->count, expected->count);
    for (size_t i = 0; i < expected->count; i++) {
        cr_assert_str_eq(actual->events[i].name, expected->events[i].name, "%s: event %zu name", how, i);
        cr_assert_eq(actual->events[i].data_length, expected->events[i].data_length, "%s: event %zu length", how, i);
        cr_assert(memcmp(actual->events[i].data, expected->events[i].data, expected->events[i].data_length) == 0,
                  "%s: event %zu data \"%s\" instead of \"%s\"", how, i, actual->events[i].data,
                  expected->events[i].data);
    }
}

static void assert_event(const collector_t *collector, size_t index, const char *name, const char *data)
{
    cr_assert_lt(index, collector->count, "no event %zu (only %zu)", index, collector->count);
    cr_assert_str_eq(collector->events[index].name, name, "event %zu name", index);
    cr_assert_str_eq(collector->events[index].data, data, "event %zu data", index);
    cr_assert_eq(collector->events[index].data_length, strlen(data), "event %zu data_length", index);
}

static char *read_fixture(const char *name, size_t *length)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", SLUICE_TEST_FIXTURES, name);
    FILE *file = fopen(path, "rb");
    cr_assert_not_null(file, "cannot open %s", path);
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    cr_assert_eq(fread(text, 1, (size_t)size, file), (size_t)size);
    text[size] = '\0';
    fclose(file);
    *length = (size_t)size;
    return text;
}

/* ---- line endings and fields -------------------------------------------- */

static void assert_two_events(const char *stream)
{
    collector_t collector = {0};
    parse_whole(stream, strlen(stream), &collector);
    cr_assert_eq(collector.count, 2);
    assert_event(&collector, 0, "", "one");
    assert_event(&collector, 1, "update", "two");
    collector_free(&collector);
}

Test(sse, lf_line_endings) { assert_two_events("data: one\n\nevent: update\ndata: two\n\n"); }

Test(sse, crlf_line_endings) { assert_two_events("data: one\r\n\r\nevent: update\r\ndata: two\r\n\r\n"); }

Test(sse, cr_line_endings) { assert_two_events("data: one\r\revent: update\rdata: two\r\r"); }

Test(sse, mixed_line_endings) { assert_two_events("data: one\r\n\nevent: update\rdata: two\n\r\n"); }

Test(sse, multi_line_data_is_joined_with_newline)
{
    collector_t collector = {0};
    const char *stream = "data: first\ndata: second\ndata:\ndata: fourth\n\n";
    parse_whole(stream, strlen(stream), &collector);
    cr_assert_eq(collector.count, 1);
    assert_event(&collector, 0, "", "first\nsecond\n\nfourth");
    collector_free(&collector);
}

Test(sse, leading_space_is_optional_and_only_one_is_removed)
{
    collector_t collector = {0};
    const char *stream = "data:no-space\n\ndata: one-space\n\ndata:  two-spaces\n\ndata\n\ndata:\n\n";
    parse_whole(stream, strlen(stream), &collector);
    cr_assert_eq(collector.count, 5);
    assert_event(&collector, 0, "", "no-space");
    assert_event(&collector, 1, "", "one-space");
    assert_event(&collector, 2, "", " two-spaces");
    assert_event(&collector, 3, "", "");
    assert_event(&collector, 4, "", "");
    collector_free(&collector);
}

Test(sse, event_names)
{
    collector_t collector = {0};
    const char *stream = "event: message_start\ndata: a\n\n"
                         "event:ping\ndata: b\n\n"
                         "data: c\n\n"                                /* the name does not carry over */
                         "event: first\nevent: second\ndata: d\n\n"   /* the last one wins */
                         "data: e\nevent: after-data\n\n";            /* order inside an event is free */
    parse_whole(stream, strlen(stream), &collector);
    cr_assert_eq(collector.count, 5);
    assert_event(&collector, 0, "message_start", "a");
    assert_event(&collector, 1, "ping", "b");
    assert_event(&collector, 2, "", "c");
    assert_event(&collector, 3, "second", "d");
    assert_event(&collector, 4, "after-data", "e");
    collector_free(&collector);
}

Test(sse, comments_and_unknown_fields_are_ignored)
{
    collector_t collector = {0};
    const char *stream = ": keep-alive\n\n"
                         ":\n"
                         "id: 42\n"
                         "retry: 1000\n"
                         "colour: blue\n"
                         "database: not data\n"
                         "Data: wrong case\n"
                         "data: kept\n"
                         ": in the middle\n"
                         "data: too\n"
                         "\n";
    parse_whole(stream, strlen(stream), &collector);
    cr_assert_eq(collector.count, 1, "a comment-only block is not an event");
    assert_event(&collector, 0, "", "kept\ntoo");
    collector_free(&collector);
}

Test(sse, blank_lines_without_data_dispatch_nothing)
{
    collector_t collector = {0};
    const char *stream = "\n\n\r\n\revent: lonely\n\ndata: x\n\n";
    parse_whole(stream, strlen(stream), &collector);
    cr_assert_eq(collector.count, 1);
    assert_event(&collector, 0, "", "x"); /* an event: line without data is dropped with its name */
    collector_free(&collector);
}

/* ---- arbitrary cuts ----------------------------------------------------- */

static const char mixed_stream[] = ": keep-alive\r\n"
                                   "event: greeting\r\n"
                                   "data: hello\r\n"
                                   "data:world\r\n"
                                   "id: 7\r\n"
                                   "\r\n"
                                   "data: second\n"
                                   "\n"
                                   "event: third\r"
                                   "data: {\"a\":1}\r"
                                   "\r"
                                   "retry: 100\n"
                                   "data\n"
                                   "\n"
                                   "data: [DONE]\r\n"
                                   "\r\n";

static void assert_mixed_stream_events(const collector_t *collector)
{
    cr_assert_eq(collector->count, 5);
    assert_event(collector, 0, "greeting", "hello\nworld");
    assert_event(collector, 1, "", "second");
    assert_event(collector, 2, "third", "{\"a\":1}");
    assert_event(collector, 3, "", "");
    assert_event(collector, 4, "", "[DONE]");
}

Test(sse, whole_stream)
{
    collector_t collector = {0};
    parse_whole(mixed_stream, strlen(mixed_stream), &collector);
    assert_mixed_stream_events(&collector);
    collector_free(&collector);
}

Test(sse, every_split_point_gives_the_same_events)
{
    size_t length = strlen(mixed_stream);
    collector_t expected = {0};
    parse_whole(mixed_stream, length, &expected);
    assert_mixed_stream_events(&expected);
    for (size_t cut = 0; cut <= length; cut++) {
        collector_t actual = {0};
        parse_cut(mixed_stream, length, &cut, 1, &actual);
        char how[64];
        snprintf(how, sizeof how, "cut at %zu", cut);
        assert_same_events(&actual, &expected, how);
        collector_free(&actual);
    }
    collector_free(&expected);
}

Test(sse, every_pair_of_split_points_gives_the_same_events)
{
    size_t length = strlen(mixed_stream);
    collector_t expected = {0};
    parse_whole(mixed_stream, length, &expected);
    for (size_t first = 0; first <= length; first++) {
        for (size_t second = first + 1; second <= length; second++) {
            size_t cuts[2] = {first, second};
            collector_t actual = {0};
            parse_cut(mixed_stream, length, cuts, 2, &actual);
            char how[64];
            snprintf(how, sizeof how, "cuts at %zu and %zu", first, second);
            assert_same_events(&actual, &expected, how);
            collector_free(&actual);
        }
    }
    collector_free(&expected);
}

Test(sse, byte_by_byte_gives_the_same_events)
{
    collector_t collector = {0};
    parse_byte_by_byte(mixed_stream, strlen(mixed_stream), &collector);
    assert_mixed_stream_events(&collector);
    collector_free(&collector);
}

Test(sse, crlf_split_between_reads)
{
    sse_parser_t parser;
    sse_parser_init(&parser, NO_LIMIT);
    collector_t collector = {0};
    cr_assert_eq(sse_parser_feed(&parser, "data: a\r", 8, collect, &collector), 0);
    cr_assert_eq(sse_parser_feed(&parser, "\ndata: b\r", 9, collect, &collector), 0);
    cr_assert_eq(collector.count, 0, "\\r\\n is one line end, not a line end and a blank line");
    cr_assert_eq(sse_parser_feed(&parser, "\n\r", 2, collect, &collector), 0);
    cr_assert_eq(collector.count, 1);
    cr_assert_eq(sse_parser_feed(&parser, "\n", 1, collect, &collector), 0);
    cr_assert_eq(collector.count, 1, "the LF after the blank line's CR is part of it");
    assert_event(&collector, 0, "", "a\nb");
    sse_parser_free(&parser);
    collector_free(&collector);
}

/* A read of zero bytes carries no bytes, so it must not change how the CR
 * before it and the LF after it are read. */
Test(sse, empty_read_between_cr_and_lf)
{
    sse_parser_t parser;
    sse_parser_init(&parser, NO_LIMIT);
    collector_t collector = {0};
    cr_assert_eq(sse_parser_feed(&parser, "data: a\r", 8, collect, &collector), 0);
    cr_assert_eq(sse_parser_feed(&parser, "", 0, collect, &collector), 0);
    cr_assert_eq(sse_parser_feed(&parser, "\ndata: b\n\n", 10, collect, &collector), 0);
    cr_expect_eq(collector.count, 1, "the CR LF became a blank line: %zu events", collector.count);
    if (collector.count > 0)
        cr_expect_str_eq(collector.events[0].data, "a\nb");
    sse_parser_free(&parser);
    collector_free(&collector);
}

/* ---- end of stream, limits, stopping ------------------------------------ */

Test(sse, finish_dispatches_an_unterminated_event)
{
    collector_t collector = {0};
    sse_parser_t parser;
    sse_parser_init(&parser, NO_LIMIT);
    cr_assert_eq(sse_parser_feed(&parser, "event: last\ndata: partial", 25, collect, &collector), 0);
    cr_assert_eq(collector.count, 0);
    cr_assert_eq(sse_parser_finish(&parser, collect, &collector), 0);
    cr_assert_eq(collector.count, 1);
    assert_event(&collector, 0, "last", "partial");
    cr_assert_eq(sse_parser_finish(&parser, collect, &collector), 0);
    cr_assert_eq(collector.count, 1, "a second finish dispatches nothing");
    sse_parser_free(&parser);
    collector_free(&collector);

    sse_parser_init(&parser, NO_LIMIT);
    cr_assert_eq(sse_parser_feed(&parser, "data: x\n", 8, collect, &collector), 0);
    cr_assert_eq(sse_parser_finish(&parser, collect, &collector), 0);
    cr_assert_eq(collector.count, 1);
    assert_event(&collector, 0, "", "x");
    sse_parser_free(&parser);
    collector_free(&collector);
}

Test(sse, finish_with_nothing_pending)
{
    collector_t collector = {0};
    sse_parser_t parser;
    sse_parser_init(&parser, NO_LIMIT);
    cr_assert_eq(sse_parser_finish(&parser, collect, &collector), 0);
    cr_assert_eq(sse_parser_feed(&parser, "data: x\n\n: bye", 14, collect, &collector), 0);
    cr_assert_eq(sse_parser_finish(&parser, collect, &collector), 0);
    cr_assert_eq(collector.count, 1);
    sse_parser_free(&parser);
    collector_free(&collector);
}

Test(sse, event_at_the_size_limit_passes)
{
    collector_t collector = {0};
    sse_parser_t parser;
    sse_parser_init(&parser, 16);
    const char *stream = "data: 0123456789abcdef\n\n";
    cr_assert_eq(sse_parser_feed(&parser, stream, strlen(stream), collect, &collector), 0);
    cr_assert_eq(collector.count, 1);
    assert_event(&collector, 0, "", "0123456789abcdef");
    sse_parser_free(&parser);
    collector_free(&collector);
}

Test(sse, event_over_the_size_limit)
{
    collector_t collector = {0};
    sse_parser_t parser;
    sse_parser_init(&parser, 16);
    const char *stream = "data: 0123456789abcdefg\n\n";
    cr_assert_eq(sse_parser_feed(&parser, stream, strlen(stream), collect, &collector), SSE_ERROR_TOO_LARGE);
    cr_assert_eq(collector.count, 0);
    sse_parser_free(&parser);

    /* Many small lines add up to one large event. */
    sse_parser_init(&parser, 16);
    stream = "data: 01234567\ndata: 01234567\n\n";
    cr_assert_eq(sse_parser_feed(&parser, stream, strlen(stream), collect, &collector), SSE_ERROR_TOO_LARGE);
    cr_assert_eq(collector.count, 0);
    sse_parser_free(&parser);
}

Test(sse, line_without_end_over_the_size_limit)
{
    collector_t collector = {0};
    sse_parser_t parser;
    sse_parser_init(&parser, 64);
    char chunk[32];
    memset(chunk, 'x', sizeof chunk);
    cr_assert_eq(sse_parser_feed(&parser, "data: ", 6, collect, &collector), 0);
    cr_assert_eq(sse_parser_feed(&parser, chunk, sizeof chunk, collect, &collector), 0);
    cr_assert_eq(sse_parser_feed(&parser, chunk, sizeof chunk, collect, &collector), SSE_ERROR_TOO_LARGE,
                 "a line that never ends must not grow without bound");
    cr_assert_eq(collector.count, 0);
    sse_parser_free(&parser);
}

Test(sse, callback_result_stops_feeding)
{
    collector_t collector = {.stop_after = 2, .stop_code = 7};
    sse_parser_t parser;
    sse_parser_init(&parser, NO_LIMIT);
    const char *stream = "data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n";
    cr_assert_eq(sse_parser_feed(&parser, stream, strlen(stream), collect, &collector), 7);
    cr_assert_eq(collector.count, 2, "no event is delivered after the callback said stop");
    assert_event(&collector, 1, "", "2");
    sse_parser_free(&parser);
    collector_free(&collector);

    collector = (collector_t){.stop_after = 1, .stop_code = -5};
    sse_parser_init(&parser, NO_LIMIT);
    cr_assert_eq(sse_parser_feed(&parser, "data: tail", 10, collect, &collector), 0);
    cr_assert_eq(sse_parser_finish(&parser, collect, &collector), -5, "finish returns the callback's result too");
    sse_parser_free(&parser);
    collector_free(&collector);
}

/* ---- recorded provider streams ------------------------------------------ */

static const char *const anthropic_event_names[] = {
    "message_start",       "content_block_start", "ping",                "content_block_delta",
    "content_block_delta", "content_block_stop",  "content_block_start", "content_block_delta",
    "content_block_delta", "content_block_delta", "content_block_delta", "content_block_delta",
    "content_block_stop",  "message_delta",       "message_stop",
};

static void assert_anthropic_events(const collector_t *collector)
{
    size_t expected = sizeof anthropic_event_names / sizeof anthropic_event_names[0];
    cr_assert_eq(collector->count, expected, "%zu events instead of %zu", collector->count, expected);
    for (size_t i = 0; i < expected; i++) {
        cr_assert_str_eq(collector->events[i].name, anthropic_event_names[i], "event %zu", i);
        /* Anthropic repeats the event name as the payload's "type". */
        json_error_t error;
        json_t *payload = json_loads(collector->events[i].data, 0, &error);
        cr_assert_not_null(payload, "event %zu data is not JSON: %s", i, error.text);
        cr_assert_str_eq(json_string_value(json_object_get(payload, "type")), anthropic_event_names[i]);
        json_decref(payload);
    }
    json_t *start = json_loads(collector->events[0].data, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_object_get(start, "message"), "usage"),
                                                    "input_tokens")),
                 377);
    json_decref(start);
    json_t *delta = json_loads(collector->events[13].data, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(delta, "delta"), "stop_reason")), "tool_use");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(delta, "usage"), "output_tokens")), 65);
    json_decref(delta);
}

Test(sse, anthropic_fixture)
{
    size_t length;
    char *stream = read_fixture("anthropic-tool-use.sse", &length);
    collector_t whole = {0}, bytes = {0};
    parse_whole(stream, length, &whole);
    assert_anthropic_events(&whole);
    parse_byte_by_byte(stream, length, &bytes);
    assert_same_events(&bytes, &whole, "byte by byte");
    for (size_t cut = 0; cut <= length; cut += 7) {
        collector_t cut_events = {0};
        parse_cut(stream, length, &cut, 1, &cut_events);
        assert_same_events(&cut_events, &whole, "one cut");
        collector_free(&cut_events);
    }
    collector_free(&whole);
    collector_free(&bytes);
    free(stream);
}

Test(sse, gemini_fixture_framed_with_crlf)
{
    size_t length;
    char *lines = read_fixture("gemini-tool-call.chunks.jsonl", &length);
    char *framed = malloc(2 * length + 64);
    size_t framed_length = 0, line_count = 0;
    char *line_starts[8];
    for (char *line = strtok(lines, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        cr_assert_lt(line_count, 8);
        line_starts[line_count++] = line;
        framed_length += (size_t)sprintf(framed + framed_length, "data: %s\r\n\r\n", line);
    }
    cr_assert_eq(line_count, 2);

    collector_t whole = {0}, bytes = {0};
    parse_whole(framed, framed_length, &whole);
    cr_assert_eq(whole.count, line_count);
    for (size_t i = 0; i < line_count; i++)
        assert_event(&whole, i, "", line_starts[i]);
    parse_byte_by_byte(framed, framed_length, &bytes);
    assert_same_events(&bytes, &whole, "byte by byte");
    for (size_t cut = 0; cut <= framed_length; cut++) {
        collector_t cut_events = {0};
        parse_cut(framed, framed_length, &cut, 1, &cut_events);
        assert_same_events(&cut_events, &whole, "one cut");
        collector_free(&cut_events);
    }

    json_t *last = json_loads(whole.events[1].data, 0, NULL);
    cr_assert_not_null(last);
    json_t *candidate = json_array_get(json_object_get(last, "candidates"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(candidate, "finishReason")), "STOP");
    json_decref(last);
    collector_free(&whole);
    collector_free(&bytes);
    free(framed);
    free(lines);
}
