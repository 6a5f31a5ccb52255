/* buf.h — growable byte buffer, used where bytes accumulate (upstream bodies,
 * the SSE parser's pending event, log lines). Always NUL-terminated. */
#ifndef SLUICE_UTIL_BUF_H
#define SLUICE_UTIL_BUF_H

#include <stdbool.h>
#include <stddef.h>

/* Owner: the struct that embeds it; release with buf_free(). */
typedef struct buf {
    char *data;
    size_t length;
    size_t capacity;
} buf_t;

void buf_init(buf_t *buffer);
void buf_free(buf_t *buffer);
void buf_clear(buf_t *buffer);
/* Each returns 0, or -1 when out of memory (the buffer is unchanged). */
int buf_reserve(buf_t *buffer, size_t extra);
int buf_append(buf_t *buffer, const void *bytes, size_t length);
int buf_append_str(buf_t *buffer, const char *text);
int buf_append_char(buf_t *buffer, char character);
/* Formats straight into the spare capacity; arguments must not point into buffer. */
int buf_printf(buf_t *buffer, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* Appends value in decimal, as printf's %lld would. */
int buf_append_integer(buf_t *buffer, long long value);
/* Appends text as the inside of a JSON string (quotes not included). */
int buf_append_json_escaped(buf_t *buffer, const char *text, size_t length);
/* Drops the first count bytes. */
void buf_consume(buf_t *buffer, size_t count);

#endif
