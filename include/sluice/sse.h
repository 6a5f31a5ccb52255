/* sse.h — incremental Server-Sent Events parser.
 *
 * Upstream streams arrive in arbitrary pieces: an event, a line, even a CRLF
 * pair may be split across two reads. The parser keeps the partial line and
 * the event being assembled between calls and hands each complete event to a
 * callback as soon as its terminating blank line arrives. It accepts LF, CRLF
 * and CR line endings and joins multi-line data fields with "\n", as the SSE
 * specification says. */
#ifndef SLUICE_SSE_H
#define SLUICE_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice/util/buf.h"

typedef struct sse_event {
    const char *name; /* the "event:" field, "" when absent */
    size_t name_length;
    const char *data; /* data lines joined by "\n"; NUL-terminated */
    size_t data_length;
} sse_event_t;

/* Returns 0 to go on; any other value stops parsing and is returned by feed. */
typedef int (*sse_event_callback_t)(void *argument, const sse_event_t *event);

/* Owner: whoever embeds it (a transfer); release with sse_parser_free(). */
typedef struct sse_parser {
    buf_t line;
    buf_t data;
    buf_t name;
    bool has_data;
    bool last_was_cr;
    size_t max_event_bytes;
} sse_parser_t;

enum { SSE_ERROR_TOO_LARGE = -2, SSE_ERROR_MEMORY = -1 };

void sse_parser_init(sse_parser_t *parser, size_t max_event_bytes);
void sse_parser_free(sse_parser_t *parser);
int sse_parser_feed(sse_parser_t *parser, const char *bytes, size_t length, sse_event_callback_t callback,
                    void *argument);
/* Dispatches an event left without its final blank line when the stream ended. */
int sse_parser_finish(sse_parser_t *parser, sse_event_callback_t callback, void *argument);

#endif
