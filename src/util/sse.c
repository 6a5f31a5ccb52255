/* sse.c — incremental SSE parser (see sse.h). */
#include "sluice/sse.h"

#include <string.h>

void sse_parser_init(sse_parser_t *parser, size_t max_event_bytes)
{
    buf_init(&parser->line);
    buf_init(&parser->data);
    buf_init(&parser->name);
    parser->has_data = false;
    parser->last_was_cr = false;
    parser->max_event_bytes = max_event_bytes;
}

void sse_parser_free(sse_parser_t *parser)
{
    buf_free(&parser->line);
    buf_free(&parser->data);
    buf_free(&parser->name);
}

static int dispatch(sse_parser_t *parser, sse_event_callback_t callback, void *argument)
{
    int rc = 0;
    if (parser->has_data) {
        sse_event_t event = {
            .name = parser->name.data ? parser->name.data : "",
            .name_length = parser->name.length,
            .data = parser->data.data ? parser->data.data : "",
            .data_length = parser->data.length,
        };
        rc = callback(argument, &event);
    }
    buf_clear(&parser->data);
    buf_clear(&parser->name);
    parser->has_data = false;
    return rc;
}

/* Handles one complete line (without its ending). */
static int process_line(sse_parser_t *parser, const char *line, size_t length, sse_event_callback_t callback,
                        void *argument)
{
    if (length == 0)
        return dispatch(parser, callback, argument);
    if (line[0] == ':')
        return 0; /* comment, e.g. a keep-alive */
    const char *colon = memchr(line, ':', length);
    size_t field_length = colon ? (size_t)(colon - line) : length;
    const char *value = colon ? colon + 1 : line + length;
    size_t value_length = length - (size_t)(value - line);
    if (value_length > 0 && value[0] == ' ') {
        value++;
        value_length--;
    }
    if (field_length == 4 && memcmp(line, "data", 4) == 0) {
        if (parser->has_data && buf_append_char(&parser->data, '\n') != 0)
            return SSE_ERROR_MEMORY;
        if (buf_append(&parser->data, value, value_length) != 0)
            return SSE_ERROR_MEMORY;
        parser->has_data = true;
        if (parser->data.length > parser->max_event_bytes)
            return SSE_ERROR_TOO_LARGE;
    } else if (field_length == 5 && memcmp(line, "event", 5) == 0) {
        buf_clear(&parser->name);
        if (buf_append(&parser->name, value, value_length) != 0)
            return SSE_ERROR_MEMORY;
    }
    return 0; /* id, retry and unknown fields are ignored */
}

static const char *find_or_end(const char *p, const char *end, char c)
{
    const char *found = p < end ? memchr(p, c, (size_t)(end - p)) : NULL;
    return found != NULL ? found : end;
}

int sse_parser_feed(sse_parser_t *parser, const char *bytes, size_t length, sse_event_callback_t callback,
                    void *argument)
{
    const char *end = bytes + length;
    const char *p = bytes;
    if (p == end)
        return 0; /* an empty read must not forget a pending CR */
    if (parser->last_was_cr && *p == '\n')
        p++; /* second half of a CRLF split across reads */
    parser->last_was_cr = false;
    /* The next LF and the next CR at or after p (end when there is none), each
     * found with memchr and looked for again only once p has passed it, so a
     * read is scanned about twice in all rather than byte by byte. */
    const char *next_lf = find_or_end(p, end, '\n'), *next_cr = find_or_end(p, end, '\r');
    while (p < end) {
        if (next_lf < p)
            next_lf = find_or_end(p, end, '\n');
        if (next_cr < p)
            next_cr = find_or_end(p, end, '\r');
        const char *line_end = next_lf < next_cr ? next_lf : next_cr;
        if (line_end == end) { /* partial line: keep it for the next read */
            if (buf_append(&parser->line, p, (size_t)(end - p)) != 0)
                return SSE_ERROR_MEMORY;
            if (parser->line.length > parser->max_event_bytes)
                return SSE_ERROR_TOO_LARGE;
            break;
        }
        int rc;
        if (parser->line.length > 0) {
            if (buf_append(&parser->line, p, (size_t)(line_end - p)) != 0)
                return SSE_ERROR_MEMORY;
            rc = process_line(parser, parser->line.data, parser->line.length, callback, argument);
            buf_clear(&parser->line);
        } else {
            rc = process_line(parser, p, (size_t)(line_end - p), callback, argument);
        }
        if (rc != 0)
            return rc;
        if (*line_end == '\r') {
            if (line_end + 1 == end)
                parser->last_was_cr = true;
            else if (line_end[1] == '\n')
                line_end++;
        }
        p = line_end + 1;
    }
    return 0;
}

int sse_parser_finish(sse_parser_t *parser, sse_event_callback_t callback, void *argument)
{
    int rc = 0;
    if (parser->line.length > 0) {
        rc = process_line(parser, parser->line.data, parser->line.length, callback, argument);
        buf_clear(&parser->line);
    }
    if (rc == 0)
        rc = dispatch(parser, callback, argument);
    return rc;
}
