/* buf.c — growable byte buffer (see buf.h). */
#include "sluice/util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(buf_t *buffer)
{
    buffer->data = NULL;
    buffer->length = 0;
    buffer->capacity = 0;
}

void buf_free(buf_t *buffer)
{
    free(buffer->data);
    buf_init(buffer);
}

void buf_clear(buf_t *buffer)
{
    buffer->length = 0;
    if (buffer->data != NULL)
        buffer->data[0] = '\0';
}

int buf_reserve(buf_t *buffer, size_t extra)
{
    size_t needed = buffer->length + extra + 1;
    if (needed <= buffer->capacity)
        return 0;
    size_t capacity = buffer->capacity ? buffer->capacity : 256;
    while (capacity < needed)
        capacity *= 2;
    char *data = realloc(buffer->data, capacity);
    if (data == NULL)
        return -1;
    buffer->data = data;
    buffer->capacity = capacity;
    return 0;
}

int buf_append(buf_t *buffer, const void *bytes, size_t length)
{
    if (buf_reserve(buffer, length) != 0)
        return -1;
    if (length > 0)
        memcpy(buffer->data + buffer->length, bytes, length);
    buffer->length += length;
    buffer->data[buffer->length] = '\0';
    return 0;
}

int buf_append_str(buf_t *buffer, const char *text) { return buf_append(buffer, text, strlen(text)); }

int buf_append_char(buf_t *buffer, char character) { return buf_append(buffer, &character, 1); }

int buf_printf(buf_t *buffer, const char *format, ...)
{
    /* One pass when the result fits the spare capacity, which it nearly always does. */
    size_t spare = buffer->capacity > buffer->length ? buffer->capacity - buffer->length : 0;
    va_list args;
    va_start(args, format);
    int length = vsnprintf(spare ? buffer->data + buffer->length : NULL, spare, format, args);
    va_end(args);
    if (length < 0) {
        if (spare)
            buffer->data[buffer->length] = '\0';
        return -1;
    }
    if ((size_t)length >= spare) {
        if (buf_reserve(buffer, (size_t)length) != 0) {
            if (spare)
                buffer->data[buffer->length] = '\0';
            return -1;
        }
        va_start(args, format);
        vsnprintf(buffer->data + buffer->length, (size_t)length + 1, format, args);
        va_end(args);
    }
    buffer->length += (size_t)length;
    return 0;
}

int buf_append_integer(buf_t *buffer, long long value)
{
    char digits[24];
    char *end = digits + sizeof digits, *p = end;
    unsigned long long magnitude = value < 0 ? 0ull - (unsigned long long)value : (unsigned long long)value;
    do
        *--p = (char)('0' + magnitude % 10);
    while ((magnitude /= 10) != 0);
    if (value < 0)
        *--p = '-';
    return buf_append(buffer, p, (size_t)(end - p));
}

int buf_append_json_escaped(buf_t *buffer, const char *text, size_t length)
{
    static const char hex[] = "0123456789abcdef";
    if (buf_reserve(buffer, length + 8) != 0)
        return -1;
    size_t plain = 0; /* start of the run of bytes that need no escape */
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        char escape[7];
        size_t escape_length = 2;
        switch (c) {
        case '"': memcpy(escape, "\\\"", 2); break;
        case '\\': memcpy(escape, "\\\\", 2); break;
        case '\n': memcpy(escape, "\\n", 2); break;
        case '\r': memcpy(escape, "\\r", 2); break;
        case '\t': memcpy(escape, "\\t", 2); break;
        default:
            memcpy(escape, "\\u00", 4);
            escape[4] = hex[c >> 4];
            escape[5] = hex[c & 15];
            escape_length = 6;
        }
        if (buf_append(buffer, text + plain, i - plain) != 0 || buf_append(buffer, escape, escape_length) != 0)
            return -1;
        plain = i + 1;
    }
    return buf_append(buffer, text + plain, length - plain);
}

void buf_consume(buf_t *buffer, size_t count)
{
    if (count >= buffer->length) {
        buf_clear(buffer);
        return;
    }
    memmove(buffer->data, buffer->data + count, buffer->length - count);
    buffer->length -= count;
    buffer->data[buffer->length] = '\0';
}
